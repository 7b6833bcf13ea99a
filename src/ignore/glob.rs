//! Go's `path/filepath.Match` on Unix, emulated on bytes: patternmatcher's `New` runs it
//! once per pattern (against `.`) as its only up-front syntax check.

/// The syntax check patternmatcher's `New` makes: Go's `filepath.Match(pattern, ".")`, which
/// reports `ErrBadPattern` for a trailing `\`, or a character class that is unterminated,
/// empty, starts with `]` or `-`, has an unescaped `-` or `]` member, or a range with a missing
/// end or a second `-` (`[a-]`, `[a-b-c]`). Go's `filepath.Match` checks only as far as it
/// gets: it gives up at the first `*`-separated chunk that cannot match `.`, and what follows
/// that chunk is not checked (unlike `path.Match`, it has no final syntax pass). So `[a-]`
/// and `*/[a-]` are errors while `a*/[a-]` is not. This is an emulation of that function.
pub(super) fn check_glob_syntax(pattern: &[u8]) -> Result<(), &'static str> {
    go_filepath_match(pattern, b".").map(|_| ())
}

/// Go's `path/filepath.Match` on Unix, on bytes.
fn go_filepath_match(mut pattern: &[u8], mut name: &[u8]) -> Result<bool, &'static str> {
    'chunks: while !pattern.is_empty() {
        let (star, chunk, rest) = scan_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            // A trailing `*` matches the rest of the name unless it has a `/`.
            return Ok(!name.contains(&b'/'));
        }
        if let Some(after) = match_chunk(chunk, name)? {
            if after.is_empty() || !pattern.is_empty() {
                name = after;
                continue;
            }
        }
        if star {
            let mut i = 0;
            while i < name.len() && name[i] != b'/' {
                if let Some(after) = match_chunk(chunk, &name[i + 1..])? {
                    if pattern.is_empty() && !after.is_empty() {
                        i += 1;
                        continue;
                    }
                    name = after;
                    continue 'chunks;
                }
                i += 1;
            }
        }
        return Ok(false);
    }
    Ok(name.is_empty())
}

/// Go's `scanChunk`: leading stars, then everything up to the next `*` outside brackets.
fn scan_chunk(pattern: &[u8]) -> (bool, &[u8], &[u8]) {
    let stars = pattern.iter().take_while(|&&b| b == b'*').count();
    let pattern = &pattern[stars..];
    let mut in_range = false;
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            b'\\' if i + 1 < pattern.len() => i += 1,
            b'[' => in_range = true,
            b']' => in_range = false,
            b'*' if !in_range => break,
            _ => {}
        }
        i += 1;
    }
    (stars > 0, &pattern[..i], &pattern[i..])
}

/// Go's `matchChunk`: `Some(rest of s)` if `chunk` matches the start of `s`. After a
/// mismatch it keeps parsing the chunk, so a malformed chunk is an error either way.
fn match_chunk<'s>(mut chunk: &[u8], mut s: &'s [u8]) -> Result<Option<&'s [u8]>, &'static str> {
    const UNTERMINATED: &str = "unterminated character class (missing `]`)";
    let mut failed = false;
    while let Some(&first) = chunk.first() {
        if !failed && s.is_empty() {
            failed = true;
        }
        match first {
            b'[' => {
                let mut r = 0;
                if !failed {
                    let (c, n) = go_decode_rune(s);
                    r = c;
                    s = &s[n..];
                }
                chunk = &chunk[1..];
                let negated = chunk.first() == Some(&b'^');
                if negated {
                    chunk = &chunk[1..];
                }
                let mut matched = false;
                let mut ranges = 0;
                loop {
                    if chunk.first() == Some(&b']') && ranges > 0 {
                        chunk = &chunk[1..];
                        break;
                    }
                    let (lo, rest) = get_esc(chunk).map_err(|e| e.unwrap_or(UNTERMINATED))?;
                    chunk = rest;
                    let mut hi = lo;
                    if chunk[0] == b'-' {
                        let (end, rest) =
                            get_esc(&chunk[1..]).map_err(|e| e.unwrap_or(UNTERMINATED))?;
                        hi = end;
                        chunk = rest;
                    }
                    if lo <= r && r <= hi {
                        matched = true;
                    }
                    ranges += 1;
                }
                if matched == negated {
                    failed = true;
                }
            }
            b'?' => {
                if !failed {
                    if s[0] == b'/' {
                        failed = true;
                    }
                    s = &s[go_decode_rune(s).1..];
                }
                chunk = &chunk[1..];
            }
            _ => {
                if first == b'\\' {
                    chunk = &chunk[1..];
                    if chunk.is_empty() {
                        return Err("trailing backslash (a `\\` must escape something)");
                    }
                }
                if !failed {
                    if chunk[0] != s[0] {
                        failed = true;
                    }
                    s = &s[1..];
                }
                chunk = &chunk[1..];
            }
        }
    }
    Ok(if failed { None } else { Some(s) })
}

/// Go's `getEsc`: one (possibly escaped) class member and what follows it; the error is
/// `None` when the class simply runs out.
fn get_esc(mut chunk: &[u8]) -> Result<(u32, &[u8]), Option<&'static str>> {
    match chunk.first() {
        None => return Err(None),
        Some(b'-') | Some(b']') => {
            return Err(Some(
                "`-` or `]` must be escaped with `\\` here in a character class",
            ))
        }
        Some(b'\\') => {
            chunk = &chunk[1..];
            if chunk.is_empty() {
                return Err(None);
            }
        }
        Some(_) => {}
    }
    let (r, n) = go_decode_rune(chunk);
    if r == 0xFFFD && n == 1 {
        return Err(Some("invalid UTF-8 in a character class"));
    }
    let rest = &chunk[n..];
    if rest.is_empty() {
        return Err(None);
    }
    Ok((r, rest))
}

/// Go's `utf8.DecodeRune` on a non-empty slice: the character and its width, or U+FFFD and
/// width 1 for a byte that does not start a valid sequence.
fn go_decode_rune(bytes: &[u8]) -> (u32, usize) {
    let width = match bytes[0] {
        0x00..=0x7F => 1,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => return (0xFFFD, 1),
    };
    match bytes.get(..width).map(std::str::from_utf8) {
        Some(Ok(text)) => (text.chars().next().map_or(0xFFFD, u32::from), width),
        _ => (0xFFFD, 1),
    }
}
