//! Escaping of file names (and other untrusted bytes) before they reach a log line or a
//! terminal.
//!
//! A file name may contain newlines, terminal escape sequences or bytes that are not
//! UTF-8. Printed raw, such a name could forge a log line ("verified OK") or rewrite the
//! terminal. Everything treeseal prints about a tree goes through [`escape`].

use std::fmt::Write;

/// Escapes `bytes` for one-line output: printable characters (including printable
/// non-ASCII) are kept; `\\` becomes `\\\\`; `\n`, `\r`, `\t` become their escapes; other
/// control characters, invisible or non-printable characters (bidi overrides, line
/// separators, zero-width marks) and bytes that are not valid UTF-8 become `\xNN` per byte.
pub fn escape(bytes: &[u8]) -> String {
    escape_with(bytes, false)
}

/// Like [`escape`], and `"` becomes `\"`: for text shown between double quotes.
pub fn escape_quoted(bytes: &[u8]) -> String {
    escape_with(bytes, true)
}

fn escape_with(bytes: &[u8], quotes: bool) -> String {
    let mut out = String::with_capacity(bytes.len());
    let hex = |out: &mut String, bytes: &[u8]| {
        for b in bytes {
            let _ = write!(out, "\\x{b:02x}");
        }
    };
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' if quotes => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                ' '..='~' => out.push(c),
                c if c.is_ascii() || is_format_char(c) || c.escape_debug().next() == Some('\\') => {
                    hex(&mut out, c.encode_utf8(&mut [0; 4]).as_bytes())
                }
                c => out.push(c),
            }
        }
        hex(&mut out, chunk.invalid());
    }
    out
}

/// Invisible characters that can reorder or hide text on a terminal (bidi controls,
/// zero-width characters); escaped like control characters.
fn is_format_char(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// A JSON string literal (with quotes) for `text`: `"` and `\\` escaped, control and
/// invisible formatting characters as `\uXXXX`, so a JSON log line stays one line.
pub fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() || is_format_char(c) => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{u:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::{escape, escape_quoted, json_string};

    #[test]
    fn json_strings_stay_on_one_line() {
        assert_eq!(json_string("a\"b\\c\nd\x1b"), r#""a\"b\\c\nd\u001b""#);
        assert_eq!(json_string("caf\u{e9}"), "\"caf\u{e9}\"");
    }

    #[test]
    fn keeps_plain_names() {
        assert_eq!(escape(b"src/main.rs"), "src/main.rs");
        assert_eq!(
            escape("caf\u{e9}/\u{1f600}".as_bytes()),
            "caf\u{e9}/\u{1f600}"
        );
    }

    #[test]
    fn escapes_what_could_forge_a_line() {
        assert_eq!(escape(b"a\nOK verified"), "a\\nOK verified");
        assert_eq!(escape(b"\x1b[2Jx"), "\\x1b[2Jx");
        assert_eq!(escape(b"a\\b\tc\r"), "a\\\\b\\tc\\r");
        assert_eq!(escape(b"\xff\xfeok"), "\\xff\\xfeok");
        assert_eq!(escape("x\u{202e}y".as_bytes()), "x\\xe2\\x80\\xaey");
        assert_eq!(escape("\u{85}".as_bytes()), "\\xc2\\x85");
        assert_eq!(escape("\u{2028}".as_bytes()), "\\xe2\\x80\\xa8");
        assert_eq!(escape(b"\x1b[31mred\x7f\0"), "\\x1b[31mred\\x7f\\x00");
        assert_eq!(escape(b"a\"b"), "a\"b");
        assert_eq!(escape_quoted(b"a b\"c\\d"), "a b\\\"c\\\\d");
        assert_eq!(escape(b""), "");
    }
}
