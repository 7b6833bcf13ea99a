//! Patterns that stand for one path, character for character, whatever it contains.

/// A pattern that matches exactly `path` (relative to the context root, `/`-separated, no
/// `.` or `..` components, no leading or trailing `/`) and nothing else, both as a line of a
/// `.dockerignore` file and as a pattern given to [`super::Matcher::new`].
///
/// Everything a line or a pattern could read as more than a character is neutralised:
/// the glob characters `*` `?` `[` `]` `\`, and the regexp characters patternmatcher does
/// not escape (`^`, and `|` `{` `}`, see the module doc) get a `\`; a leading `!` (an
/// exception) or `#` (a comment) gets a `\`; white space at either end (which would be
/// trimmed) and a leading byte-order mark (which Go's scanner would skip) become a one-character
/// class such as `[ ]`. `.` `+` `(` `)` `$` need nothing: patternmatcher escapes them itself.
/// A newline, which no `.dockerignore` line can hold, is written `\n` (Go's regexp escape
/// for it). A name without any of these is returned unchanged, so `.treeseal` stays
/// `.treeseal`.
///
/// One ambiguity is Docker's own: once a pattern has an escape it is matched as a regexp,
/// on the path decoded as Go decodes it, so a U+FFFD in such a name also matches a byte
/// that is not valid UTF-8 at that place.
pub fn literal_pattern(path: &str) -> String {
    let chars: Vec<char> = path.chars().collect();
    let mut out = String::with_capacity(path.len() + 2);
    for (index, &c) in chars.iter().enumerate() {
        let first = index == 0;
        let at_an_end = first || index + 1 == chars.len();
        match c {
            '*' | '?' | '[' | ']' | '\\' | '^' | '|' | '{' | '}' => out.push('\\'),
            '!' | '#' if first => out.push('\\'),
            '\n' => {
                out.push_str("\\n");
                continue;
            }
            c if (c.is_whitespace() && at_an_end) || (c == '\u{FEFF}' && first) => {
                out.extend(['[', c, ']']);
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{normalize_pattern, parse_dockerignore, Matcher};
    use super::*;

    /// Names that look like patterns, each locked next to look-alikes it must not match.
    const NAMES: &[&str] = &[
        "!seal",
        "#seal",
        " seal",
        "seal ",
        "  seal\t",
        "\u{a0}seal\u{3000}",
        "\u{FEFF}seal",
        "*",
        "**",
        "*seal",
        "?",
        "[",
        "[ab]",
        "]",
        "\\",
        "se\\al",
        "a|b*",
        "x{2}*",
        "{a,b}",
        "^seal*",
        "seal$",
        "s.e+a(l)",
        "dir/!seal",
        "dir/ seal /x",
        "line\nbreak",
        "\nseal\n",
        "tab\tin",
        "!",
        ".treeseal",
        "seal",
    ];

    const LOOK_ALIKES: &[&str] = &[
        "seal", "!seal", "#seal", "xseal", "sealx", "a", "b", "ab", "xx", "a|b", "dir", "x", "",
    ];

    /// Whether the rules built from `pattern` exclude `path` (a file), deciding its
    /// directories first as the walker does.
    fn excludes(m: &Matcher, path: &str) -> bool {
        let mut state = m.root_state();
        let mut at = 0;
        let bytes = path.as_bytes();
        while let Some(slash) = bytes[at..].iter().position(|&c| c == b'/') {
            let end = at + slash;
            match m.decide(&bytes[..end], true, &state) {
                super::super::Decision::Exclude => return true,
                super::super::Decision::Include(s) | super::super::Decision::Descend(s) => {
                    state = s
                }
            }
            at = end + 1;
        }
        !matches!(
            m.decide(bytes, false, &state),
            super::super::Decision::Include(_)
        )
    }

    #[test]
    fn a_literal_pattern_matches_its_path_and_nothing_else() {
        for name in NAMES {
            let pattern = literal_pattern(name);
            // As a pattern handed to the matcher (how the manifest keeps it), as a
            // `.dockerignore` line and as `--exclude`.
            let from_file = parse_dockerignore(pattern.as_bytes()).unwrap();
            let from_flag: Vec<String> = normalize_pattern(&pattern).into_iter().collect();
            for patterns in [vec![pattern.clone()], from_file, from_flag] {
                let m = Matcher::new(&patterns)
                    .unwrap_or_else(|e| panic!("{name:?} as {pattern:?}: {e}"));
                assert!(excludes(&m, name), "{name:?} as {pattern:?} ({patterns:?})");
                for other in LOOK_ALIKES.iter().chain(NAMES) {
                    if other != name && !other.is_empty() {
                        assert!(
                            !excludes(&m, other),
                            "{name:?} as {pattern:?} also excludes {other:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn plain_names_stay_readable() {
        assert_eq!(literal_pattern(".treeseal"), ".treeseal");
        assert_eq!(literal_pattern("sub dir/app.seal"), "sub dir/app.seal");
        assert_eq!(literal_pattern("!seal"), "\\!seal");
        assert_eq!(literal_pattern("x!#"), "x!#");
        assert_eq!(literal_pattern(" seal "), "[ ]seal[ ]");
        assert_eq!(literal_pattern("*.seal"), "\\*.seal");
    }
}
