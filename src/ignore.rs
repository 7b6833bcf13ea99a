//! `.dockerignore` rules with Docker's own semantics.
//!
//! This module owns one question: given the patterns of a `.dockerignore` file (and any
//! `--exclude` patterns), which paths of a build context end up in the image that
//! `COPY . /app` produces? treeseal must answer exactly as Docker does, and Docker's rules
//! are not gitignore's, so no general-purpose ignore crate fits. What is reproduced here is
//! the BuildKit path:
//!
//! * parsing: `ReadAll` of moby/patternmatcher `ignorefile` (the same code as moby/buildkit
//!   `frontend/dockerfile/dockerignore`), see [`parse_dockerignore`];
//! * compiling and matching: moby/patternmatcher `patternmatcher.go` (`New`, `Pattern.compile`,
//!   `Pattern.match`, `MatchesUsingParentResults`), see [`Matcher`];
//! * the top-down walk: tonistiigi/fsutil `filter.go` (`filterFS.Walk`: the `parentDirs`
//!   stack, the lazily emitted parent directories and the `onlyPrefixExcludeExceptions`
//!   `SkipDir` optimisation), see [`Matcher::decide`] and [`Decision`].
//!
//! The glob matcher is our own: patternmatcher translates a pattern into a Go regular
//! expression and relies on Go's `regexp` semantics, so this module translates the pattern the
//! same way and runs it on a small matcher for the subset of Go's regexp syntax that such a
//! translation can produce (with Go's error checks, so a pattern Docker chokes on is an error
//! here too).
//!
//! # The rules in plain words
//!
//! * One pattern per line. A line whose very first byte is `#` is a comment; ` #x` (a space
//!   first) is the pattern `#x`. Lines are trimmed of white space; blank lines are skipped.
//!   A UTF-8 byte-order mark is dropped from the first line. Lines may end in `\r\n`.
//! * A leading `!` makes the line an exception (it re-includes). Spaces after the `!` are
//!   trimmed too, so `! foo` is `!foo`. A lone `!` is an error.
//! * Each pattern is cleaned like a path (`a//b/./c/../d` is `a/b/d`, a trailing `/` is
//!   dropped) and a leading `/` is removed: every pattern is relative to the context root.
//! * A pattern is anchored at the context root: `foo` matches `foo` only, never `a/foo`;
//!   write `**/foo` for "anywhere".
//! * `*` matches any run of characters except `/`; `?` matches one character except `/`;
//!   `[a-z]`, `[^a-z]` are character classes; `\` escapes the next character; `**` matches
//!   any number of whole directories, including none (`a/**/b` matches `a/b`).
//! * A pattern that matches a directory matches everything below it. A trailing `/` does
//!   **not** restrict a pattern to directories: `build/` also excludes a file named `build`.
//! * Every pattern is tried in order and the last one that matches decides; a path that no
//!   pattern matches is included. An exception can re-include a path below an excluded
//!   directory; that directory then appears in the image, but only because something inside
//!   it does.
//! * `foo/**` excludes what is inside `foo` but not `foo` itself (an empty `foo/` remains);
//!   `foo` removes `foo` altogether.
//! * `.dockerignore` and `Dockerfile` are ordinary paths: copied unless a pattern excludes them.
//!
//! # Surprises reproduced on purpose
//!
//! These follow from the upstream code and are pinned by the tests below.
//!
//! * `[!a]` is **not** a negated class (Go's `filepath.Match` only knows `[^a]`): it is the
//!   class of `!` and `a`.
//! * A pattern starting with `**` followed by plain text is a *suffix* test
//!   (`Pattern.match`, `suffixMatch`): `**foo` matches any path ending in `foo`, such as
//!   `barfoo` or `a/xfoo`, while `**/foo` matches `foo` and `…/foo`.
//! * `**` in the middle without a `/` still only spans whole directories: `a**b` matches `ab`
//!   and `a/x/b`, not `axb` (the translation is `a(.*/)?b`).
//! * The characters `^` and `$` and the other regexp metacharacters are literal in a pattern
//!   that has no wildcard. In a pattern that has one, `^` (which patternmatcher does not
//!   escape) is a start-of-text anchor: `^foo*` matches `foobar`, not `^foobar`. Likewise a
//!   `\` escape is passed to Go's regexp as is, so `\d` is a digit and `\n` a newline, and
//!   `[*]` becomes the odd class that patternmatcher's translation produces.
//! * Outside character classes, `**` never matches across a newline character in a name
//!   (Go's `.` does not match `\n`), though `*` and `?` do.
//! * The patterns `.` and `/` (and anything that cleans to them) exclude nothing.
//! * Exceptions are only tried while the path is currently excluded, and what a directory
//!   learnt is passed to its children (`MatchesUsingParentResults`). An exception that did not
//!   apply to a directory therefore does not apply to its children through it: with
//!   `a/b` then `!a`, `a/b` stays excluded.
//! * A line that is only `!` (or `!` and spaces) makes the whole file an error; so does a line
//!   ending in a lone `\` (`foo\ ` is trimmed to `foo\`).
//! * The syntax check is partial. patternmatcher's `New` calls Go's `filepath.Match(p, ".")`,
//!   which stops at the first `*`-separated chunk that cannot match `.`: `*/[a-]` is an
//!   error, `a*/[a-]` is not, and Go's regexp then reads `[a-]` as the class of `a` and `-`.
//!   What the regexp itself rejects (`a*/[`, `[z-a]`) fails when the pattern is first tried.
//!
//! # Paths that are not UTF-8
//!
//! Paths are raw bytes, as on Linux. Literal text in a pattern compares byte-wise. Where a
//! pattern has wildcards, the path is read the way Go's `regexp` reads a string: a valid
//! UTF-8 sequence is one character, and every byte that is not part of one is a character of
//! its own (U+FFFD). So `?` and `[...]` match one UTF-8 character, or one stray byte.
//!
//! # Deliberate differences from Docker
//!
//! * Patterns must be UTF-8; a `.dockerignore` line (other than a comment) that is not is
//!   an error, where Docker would match its bytes.
//! * Docker compiles a pattern's regular expression lazily, the first time a path is tried
//!   against it, and fails the build then; a broken pattern that never gets tried (an
//!   exception after which nothing was ever excluded, say) goes unnoticed. Here every
//!   pattern is checked when the [`Matcher`] is built.
//! * The regexp escapes `\p…` and `\P…` (Unicode classes) and `\Q…\E` are refused, where
//!   Docker accepts them; `\b`, `\B`, `\A`, `\z`, `\d` and its kin, octal, `\xHH`, the C
//!   escapes and POSIX classes such as `[[:alpha:]]` are supported as in Go.
//! * Unix semantics only: on a Windows client `\` is a path separator, not an escape.
//!
//! The legacy builder (`DOCKER_BUILDKIT=0`) parses and matches the same way but walks
//! differently: it skips an excluded directory unless an exception *starts with* its path,
//! even when an exception with a wildcard (`!**/*.md`) would re-include something inside it.
//! BuildKit walks into it; this module follows BuildKit.

use std::fmt;

/// Error for a bad pattern or ignore file; its `Display` is one line a user can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    pattern: String,
    reason: String,
}

impl PatternError {
    fn new(pattern: impl Into<String>, reason: impl Into<String>) -> Self {
        PatternError {
            pattern: pattern.into(),
            reason: reason.into(),
        }
    }

    /// The offending pattern, or line, as written (lossily decoded if it was not UTF-8).
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Why it was rejected.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `{:?}` keeps the message on one line whatever the pattern holds.
        write!(f, "bad ignore pattern {:?}: {}", self.pattern, self.reason)
    }
}

impl std::error::Error for PatternError {}

/// UTF-8 byte-order mark, dropped from the first line only (as `ReadAll` does).
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Go's `bufio.MaxScanTokenSize`: `ReadAll` fails with "token too long" on a line
/// (without its `\n`) of this many bytes or more.
const MAX_LINE: usize = 64 * 1024;

/// Parse the contents of a `.dockerignore` file into patterns, exactly as Docker does
/// (`ReadAll` of moby/patternmatcher `ignorefile`, which moby/buildkit's `dockerignore`
/// aliases).
///
/// Lines are split at `\n` with one trailing `\r` dropped (Go's `bufio.ScanLines`); a UTF-8
/// BOM is dropped from the first line; a line whose first byte is `#` is a comment (only in
/// column 0); lines are trimmed and blank ones skipped; a leading `!` marks an exception and
/// what follows it is trimmed again; the rest is cleaned like a path (Go's `filepath.Clean`)
/// and one leading `/` is dropped. Returns the normalised patterns in order, exceptions
/// keeping their leading `!` (a lone `!` is kept as is: [`Matcher::new`] rejects it).
///
/// A non-comment line that is not UTF-8, or a line of 64 KiB or more, is a [`PatternError`].
pub fn parse_dockerignore(contents: &[u8]) -> Result<Vec<String>, PatternError> {
    let mut patterns = Vec::new();
    if contents.is_empty() {
        return Ok(patterns);
    }
    // A final '\n' ends the last line rather than starting an empty one.
    let body = contents.strip_suffix(b"\n").unwrap_or(contents);
    for (index, raw) in body.split(|&b| b == b'\n').enumerate() {
        let number = index + 1;
        if raw.len() >= MAX_LINE {
            let start = String::from_utf8_lossy(&raw[..32]);
            return Err(PatternError::new(
                format!("{start}..."),
                format!(
                    "line {number} is 64 KiB or longer (Docker's reader fails with \"token too long\")"
                ),
            ));
        }
        let mut line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if index == 0 {
            line = line.strip_prefix(BOM).unwrap_or(line);
        }
        if line.first() == Some(&b'#') {
            continue;
        }
        let text = std::str::from_utf8(line).map_err(|_| {
            PatternError::new(
                String::from_utf8_lossy(line),
                format!("line {number} is not valid UTF-8 (treeseal only accepts UTF-8 patterns)"),
            )
        })?;
        patterns.extend(normalize_line(text));
    }
    Ok(patterns)
}

/// Normalise one pattern given on the command line (`--exclude PAT`) the same way a
/// `.dockerignore` line is normalised by [`parse_dockerignore`]: `None` for a line that is
/// blank or a comment (first character `#`).
pub fn normalize_pattern(line: &str) -> Option<String> {
    if line.starts_with('#') {
        return None;
    }
    normalize_line(line)
}

/// The part of `ReadAll` after the comment test: trim, split off `!`, clean, drop a leading `/`.
fn normalize_line(line: &str) -> Option<String> {
    // Go's strings.TrimSpace and str::trim agree: both trim Unicode White_Space.
    let mut pattern = line.trim();
    if pattern.is_empty() {
        return None;
    }
    let invert = pattern.starts_with('!');
    let mut out = String::new();
    if invert {
        pattern = pattern[1..].trim();
        out.push('!');
    }
    if !pattern.is_empty() {
        let cleaned = go_clean(pattern);
        match cleaned.strip_prefix('/') {
            Some(rest) if !rest.is_empty() => out.push_str(rest),
            _ => out.push_str(&cleaned),
        }
    }
    Some(out)
}

/// Go's `path/filepath.Clean` for a `/`-separated path: collapse `//`, drop `.` elements,
/// resolve `x/..`, drop `..` at the root, and return `.` for an empty result.
fn go_clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(".."),
            },
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    if rooted {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".to_owned()
    } else {
        joined
    }
}

/// Compiled rules. Cheap to share across threads (`Send + Sync`).
#[derive(Debug, Clone)]
pub struct Matcher {
    patterns: Vec<Pattern>,
    /// Some pattern is an exception (patternmatcher's `Exclusions()`).
    has_exceptions: bool,
    /// fsutil's `onlyPrefixExcludeExceptions`: no exception has a wildcard once a trailing
    /// `/**` or `/*` is stripped, so an excluded directory needs walking only when some
    /// exception lies below it.
    only_prefix_exceptions: bool,
    /// For each exception, `patternWithoutTrailingGlob(pattern) + "/"`.
    exception_prefixes: Vec<Vec<u8>>,
}

/// One compiled pattern.
#[derive(Debug, Clone)]
struct Pattern {
    exception: bool,
    how: MatchKind,
}

/// patternmatcher's `matchType`, with what each kind compares against.
#[derive(Debug, Clone)]
enum MatchKind {
    /// The path equals the pattern.
    Exact(Vec<u8>),
    /// The path starts with the pattern minus its trailing `**`.
    Prefix(Vec<u8>),
    /// The path ends with the pattern minus its leading `**` (or equals it minus `**/`).
    Suffix(Vec<u8>),
    /// The pattern's regular expression matches.
    Regex(goregex::Program),
}

impl Pattern {
    fn matches(&self, path: &[u8]) -> bool {
        match &self.how {
            MatchKind::Exact(text) => path == text.as_slice(),
            MatchKind::Prefix(prefix) => path.starts_with(prefix),
            MatchKind::Suffix(suffix) => {
                path.ends_with(suffix) || (suffix.first() == Some(&b'/') && path == &suffix[1..])
            }
            MatchKind::Regex(program) => program.is_match(path),
        }
    }
}

/// Per-directory state carried from a directory to its children: which patterns matched the
/// directory (patternmatcher's `MatchInfo`). The default value, the root's, carries nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirState {
    /// One bit per pattern; empty means "no information" (the context root).
    matched: Vec<u64>,
}

impl DirState {
    fn get(&self, index: usize) -> bool {
        self.matched
            .get(index / 64)
            .is_some_and(|word| word & (1 << (index % 64)) != 0)
    }
}

/// What the walker must do with one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Part of the tree. For a directory, walk into it with this state.
    Include(DirState),
    /// Not part of the tree; for a directory, do not walk into it at all.
    Exclude,
    /// Directory only: excluded itself, but an exception may re-include something below it.
    /// Walk into it with this state; the directory is part of the tree only if something
    /// below it is included (BuildKit then creates it, lazily, as a parent). Like BuildKit, a
    /// walker may ignore a permission error when reading such a directory (fsutil's filter
    /// does, for paths it has excluded).
    Descend(DirState),
}

impl Matcher {
    /// Compile normalised patterns (as returned by [`parse_dockerignore`] /
    /// [`normalize_pattern`]); each is trimmed and cleaned again, as patternmatcher's `New`
    /// does, and blank ones are skipped.
    ///
    /// A syntactically bad pattern is a [`PatternError`], as Docker fails the build on it:
    /// what Go's `filepath.Match` calls `ErrBadPattern` (an unterminated `[`, a trailing `\`,
    /// `[a-b-c]`, …), a lone `!`, and a pattern whose regular-expression translation Go's
    /// `regexp` rejects (such as `[Local-Only]`, whose range `l-O` runs backwards).
    pub fn new(patterns: &[String]) -> Result<Matcher, PatternError> {
        let mut compiled = Vec::with_capacity(patterns.len());
        let mut exception_prefixes = Vec::new();
        let mut only_prefix_exceptions = true;
        for original in patterns {
            let trimmed = original.trim();
            if trimmed.is_empty() {
                continue;
            }
            let cleaned = go_clean(trimmed);
            let (exception, body) = match cleaned.strip_prefix('!') {
                Some("") => {
                    return Err(PatternError::new(
                        original.as_str(),
                        "an exception needs a path after the `!`",
                    ))
                }
                Some(rest) => (true, rest),
                None => (false, cleaned.as_str()),
            };
            check_glob_syntax(body.as_bytes()).map_err(|reason| {
                PatternError::new(
                    original.as_str(),
                    format!("syntax error in pattern: {reason}"),
                )
            })?;
            let how = compile(body).map_err(|reason| {
                PatternError::new(
                    original.as_str(),
                    format!(
                        "Docker's regular-expression translation of this pattern is invalid \
                         ({reason}), so Docker fails the build on it"
                    ),
                )
            })?;
            if exception {
                let stem = pattern_without_trailing_glob(body);
                if stem.contains(['*', '[', ']', '?', '^', '\\']) {
                    only_prefix_exceptions = false;
                }
                let mut prefix = stem.as_bytes().to_vec();
                prefix.push(b'/');
                exception_prefixes.push(prefix);
            }
            compiled.push(Pattern { exception, how });
        }
        Ok(Matcher {
            has_exceptions: !exception_prefixes.is_empty(),
            patterns: compiled,
            only_prefix_exceptions,
            exception_prefixes,
        })
    }

    /// True when there are no patterns (everything is included).
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The state to use for children of the context root.
    pub fn root_state(&self) -> DirState {
        DirState::default()
    }

    /// Decide for `path`: relative to the context root, `/`-separated, raw bytes (may be
    /// non-UTF-8), no leading `./`, no leading or trailing `/`. `parent` is the state of the
    /// directory containing it ([`Matcher::root_state`] for top-level names).
    ///
    /// `is_dir` is whether the entry itself is a directory (from `lstat`: a symlink to a
    /// directory is not one, as in fsutil's walk). For a file the state inside
    /// [`Decision::Include`] is empty: only directories pass state on.
    pub fn decide(&self, path: &[u8], is_dir: bool, parent: &DirState) -> Decision {
        if self.patterns.is_empty() {
            return Decision::Include(DirState::default());
        }
        let mut state = DirState::default();
        let excluded = self.evaluate(path, parent, is_dir.then_some(&mut state));
        if !excluded {
            return Decision::Include(state);
        }
        if !is_dir {
            return Decision::Exclude;
        }
        // fsutil filter.go: an excluded directory is skipped (SkipDir) unless an exception
        // might re-include something inside it. When some exception has a wildcard, fsutil
        // cannot tell and always walks in.
        if !self.only_prefix_exceptions {
            return Decision::Descend(state);
        }
        if !self.has_exceptions {
            return Decision::Exclude;
        }
        let below = self.exception_prefixes.iter().any(|prefix| {
            prefix.len() > path.len() && prefix.starts_with(path) && prefix[path.len()] == b'/'
        });
        if below {
            Decision::Descend(state)
        } else {
            Decision::Exclude
        }
    }

    /// patternmatcher's `MatchesUsingParentResults`: whether `path` is excluded, recording in
    /// `record` (for a directory) which patterns matched it.
    fn evaluate(&self, path: &[u8], parent: &DirState, mut record: Option<&mut DirState>) -> bool {
        let known = !parent.matched.is_empty();
        if let Some(state) = record.as_deref_mut() {
            state.matched = vec![0; self.patterns.len().div_ceil(64)];
        }
        let mut excluded = false;
        for (index, pattern) in self.patterns.iter().enumerate() {
            let mut hit = known && parent.get(index);
            if !hit {
                // Only try an exclusion while not excluded and an exception while excluded;
                // a pattern not tried is recorded as not matching (as upstream does).
                if pattern.exception != excluded {
                    continue;
                }
                hit = pattern.matches(path);
                if !hit && !known {
                    // No parent information (the root's state): try every ancestor, as
                    // MatchesOrParentMatches does. Top-level names have none.
                    hit = ancestors(path).any(|dir| pattern.matches(dir));
                }
            }
            if hit {
                if let Some(state) = record.as_deref_mut() {
                    state.matched[index / 64] |= 1 << (index % 64);
                }
                excluded = !pattern.exception;
            }
        }
        excluded
    }
}

/// The proper ancestors of a `/`-separated path, shortest first: `a`, `a/b` for `a/b/c`.
fn ancestors(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'/')
        .map(move |(i, _)| &path[..i])
}

/// fsutil's `patternWithoutTrailingGlob`: the pattern without a trailing `/**`, then without a
/// trailing `/*`.
fn pattern_without_trailing_glob(pattern: &str) -> &str {
    let pattern = pattern.strip_suffix("/**").unwrap_or(pattern);
    pattern.strip_suffix("/*").unwrap_or(pattern)
}

/// The syntax check patternmatcher's `New` makes: Go's `filepath.Match(pattern, ".")`, which
/// reports `ErrBadPattern` for a trailing `\`, or a character class that is unterminated,
/// empty, starts with `]` or `-`, has an unescaped `-` or `]` member, or a range with a missing
/// end or a second `-` (`[a-]`, `[a-b-c]`). Go's `filepath.Match` checks only as far as it
/// gets: it gives up at the first `*`-separated chunk that cannot match `.`, and what follows
/// that chunk is not checked (unlike `path.Match`, it has no final syntax pass). So `[a-]`
/// and `*/[a-]` are errors while `a*/[a-]` is not. This is an emulation of that function.
fn check_glob_syntax(pattern: &[u8]) -> Result<(), &'static str> {
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

/// Which of patternmatcher's match types a pattern compiles to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Exact,
    Prefix,
    Suffix,
    Regex,
}

/// patternmatcher's `Pattern.compile` translation: the match type and, for
/// [`Kind::Regex`], the Go regular expression (already with its `^` and `$`).
fn translate(pattern: &str) -> (Kind, String) {
    let mut chars = pattern.chars().peekable();
    // Go's text/scanner skips a byte-order mark at the very start.
    chars.next_if_eq(&'\u{FEFF}');
    let mut regex = String::from("^");
    let mut kind = Kind::Exact;
    let mut first = true;
    while let Some(ch) = chars.next() {
        match ch {
            '*' if chars.next_if_eq(&'*').is_some() => {
                // `**`, possibly `**/`: any number of directories.
                chars.next_if_eq(&'/');
                if chars.peek().is_none() {
                    if kind == Kind::Exact {
                        kind = Kind::Prefix;
                    } else {
                        regex.push_str(".*");
                        kind = Kind::Regex;
                    }
                } else {
                    regex.push_str("(.*/)?");
                    kind = Kind::Regex;
                }
                if first {
                    kind = Kind::Suffix;
                }
            }
            '*' => {
                regex.push_str("[^/]*");
                kind = Kind::Regex;
            }
            '?' => {
                regex.push_str("[^/]");
                kind = Kind::Regex;
            }
            '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$' => {
                regex.push('\\');
                regex.push(ch);
            }
            '\\' => match chars.next() {
                Some(next) => {
                    regex.push('\\');
                    regex.push(next);
                    kind = Kind::Regex;
                }
                None => regex.push('\\'),
            },
            '[' | ']' => {
                regex.push(ch);
                kind = Kind::Regex;
            }
            _ => regex.push(ch),
        }
        first = false;
    }
    if kind == Kind::Regex {
        regex.push('$');
    }
    (kind, regex)
}

/// Compile a pattern (without its `!`) into what [`Pattern::matches`] runs.
fn compile(pattern: &str) -> Result<MatchKind, String> {
    let bytes = pattern.as_bytes();
    Ok(match translate(pattern) {
        (Kind::Exact, _) => MatchKind::Exact(bytes.to_vec()),
        // Upstream slices bytes: drop the trailing `**` / the leading `**`.
        (Kind::Prefix, _) => MatchKind::Prefix(bytes[..bytes.len() - 2].to_vec()),
        (Kind::Suffix, _) => MatchKind::Suffix(bytes[2..].to_vec()),
        (Kind::Regex, regex) => MatchKind::Regex(goregex::Program::new(&regex)?),
    })
}

/// Just enough of Go's `regexp` (RE2 syntax with Go's `Perl` flags, as `regexp.Compile`
/// uses) to run what patternmatcher's translation produces: literals, `.`, classes (ranges,
/// negation, `[:alpha:]`, `\d`…), groups, `*` `+` `?`, `^` `$` `\A` `\z` `\b` `\B`, and the
/// escapes; with Go's parse errors. Matching is a Thompson-style NFA simulation over the
/// path decoded as Go decodes a string (one U+FFFD per byte that is not valid UTF-8).
mod goregex {
    /// A zero-width assertion.
    #[derive(Debug, Clone, Copy)]
    enum Look {
        Begin,
        End,
        WordBoundary,
        NotWordBoundary,
    }

    /// A set of characters: ranges, possibly negated.
    #[derive(Debug, Clone)]
    struct Class {
        ranges: Vec<(u32, u32)>,
        negated: bool,
    }

    impl Class {
        fn single(c: char) -> Class {
            Class {
                ranges: vec![(c as u32, c as u32)],
                negated: false,
            }
        }

        fn contains(&self, c: u32) -> bool {
            self.ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != self.negated
        }
    }

    #[derive(Debug, Clone, Copy)]
    enum Repeat {
        Star,
        Plus,
        Quest,
    }

    #[derive(Debug, Clone)]
    enum Node {
        Class(Class),
        AnyButNewline,
        Look(Look),
        Group(Vec<Node>),
        Repeat(Box<Node>, Repeat),
    }

    #[derive(Debug, Clone)]
    enum Inst {
        Class(Class),
        AnyButNewline,
        Look(Look),
        Split(usize, usize),
        Jump(usize),
        Match,
    }

    /// A compiled regular expression.
    #[derive(Debug, Clone)]
    pub(super) struct Program {
        insts: Vec<Inst>,
        /// The expression starts with `^`: only a match starting at 0 counts.
        anchored: bool,
        /// Bytes every matching path must end with: the UTF-8 encoding of the literal
        /// characters just before a final `$` (a quick reject; U+FFFD never counts, since a
        /// literal U+FFFD also matches a stray byte).
        suffix: Vec<u8>,
        /// Bit-parallel tables, for programs of at most 64 instructions.
        fast: Option<Box<Fast>>,
    }

    /// The same automaton with thread sets as bit masks (bit `pc` set = thread at `pc`).
    /// Consuming instructions always continue at `pc + 1`, so a step is a mask and a shift;
    /// the epsilon closures are precomputed for each of the 16 contexts a position can be in
    /// (at the start?, at the end?, word character before?, word character after?).
    #[derive(Debug, Clone)]
    struct Fast {
        /// `closure[context * 64 + pc]`: what `pc` reaches without consuming input.
        closure: Vec<u64>,
        /// For each ASCII character, the consuming instructions that accept it.
        ascii: [u64; 128],
        /// The bit of the `Match` instruction.
        matched: u64,
    }

    const MAX_RUNE: u32 = 0x10FFFF;

    fn perl_class(letter: char) -> Option<(&'static [(u32, u32)], bool)> {
        const DIGIT: &[(u32, u32)] = &[(0x30, 0x39)];
        const SPACE: &[(u32, u32)] = &[(0x09, 0x0A), (0x0C, 0x0D), (0x20, 0x20)];
        const WORD: &[(u32, u32)] = &[(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)];
        Some(match letter {
            'd' => (DIGIT, false),
            'D' => (DIGIT, true),
            's' => (SPACE, false),
            'S' => (SPACE, true),
            'w' => (WORD, false),
            'W' => (WORD, true),
            _ => return None,
        })
    }

    fn posix_class(name: &str) -> Option<(&'static [(u32, u32)], bool)> {
        let (negated, name) = match name.strip_prefix('^') {
            Some(rest) => (true, rest),
            None => (false, name),
        };
        let ranges: &'static [(u32, u32)] = match name {
            "alnum" => &[(0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)],
            "alpha" => &[(0x41, 0x5A), (0x61, 0x7A)],
            "ascii" => &[(0x00, 0x7F)],
            "blank" => &[(0x09, 0x09), (0x20, 0x20)],
            "cntrl" => &[(0x00, 0x1F), (0x7F, 0x7F)],
            "digit" => &[(0x30, 0x39)],
            "graph" => &[(0x21, 0x7E)],
            "lower" => &[(0x61, 0x7A)],
            "print" => &[(0x20, 0x7E)],
            "punct" => &[(0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)],
            "space" => &[(0x09, 0x0D), (0x20, 0x20)],
            "upper" => &[(0x41, 0x5A)],
            "word" => &[(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)],
            "xdigit" => &[(0x30, 0x39), (0x41, 0x46), (0x61, 0x66)],
            _ => return None,
        };
        Some((ranges, negated))
    }

    /// Append `ranges` (sorted, disjoint), or their complement, to `out`.
    fn append_ranges(out: &mut Vec<(u32, u32)>, ranges: &[(u32, u32)], negated: bool) {
        if !negated {
            out.extend_from_slice(ranges);
            return;
        }
        let mut next = 0;
        for &(lo, hi) in ranges {
            if lo > next {
                out.push((next, lo - 1));
            }
            next = hi + 1;
        }
        if next <= MAX_RUNE {
            out.push((next, MAX_RUNE));
        }
    }

    struct Parser {
        chars: Vec<char>,
        pos: usize,
    }

    impl Parser {
        fn peek_at(&self, offset: usize) -> Option<char> {
            self.chars.get(self.pos + offset).copied()
        }

        fn text(&self, from: usize, to: usize) -> String {
            self.chars[from..to.min(self.chars.len())].iter().collect()
        }

        /// Parse the whole expression into a sequence.
        fn parse(&mut self) -> Result<Vec<Node>, String> {
            let mut frames: Vec<Vec<Node>> = vec![Vec::new()];
            let mut after_repeat = false;
            while let Some(c) = self.peek_at(0) {
                let start = self.pos;
                self.pos += 1;
                let mut repeated = false;
                let node = match c {
                    '(' => {
                        if self.peek_at(0) == Some('?') {
                            return Err("unsupported group syntax `(?`".into());
                        }
                        frames.push(Vec::new());
                        None
                    }
                    ')' => {
                        if frames.len() < 2 {
                            return Err("unexpected `)`".into());
                        }
                        let inner = frames.pop().unwrap_or_default();
                        Some(Node::Group(inner))
                    }
                    '|' => return Err("unsupported alternation `|`".into()),
                    '^' => Some(Node::Look(Look::Begin)),
                    '$' => Some(Node::Look(Look::End)),
                    '.' => Some(Node::AnyButNewline),
                    '[' => {
                        self.pos = start;
                        Some(Node::Class(self.parse_class()?))
                    }
                    '*' | '+' | '?' => {
                        let op = match c {
                            '*' => Repeat::Star,
                            '+' => Repeat::Plus,
                            _ => Repeat::Quest,
                        };
                        // Go accepts one `?` after an operator (non-greedy); it changes
                        // nothing for a yes/no match.
                        if self.peek_at(0) == Some('?') {
                            self.pos += 1;
                        }
                        if after_repeat {
                            return Err(format!(
                                "invalid nested repetition operator `{}`",
                                self.text(start, self.pos)
                            ));
                        }
                        let frame = frames.last_mut().ok_or("internal: no frame")?;
                        let Some(last) = frame.pop() else {
                            return Err(format!("missing argument to repetition operator `{c}`"));
                        };
                        frame.push(Node::Repeat(Box::new(last), op));
                        repeated = true;
                        None
                    }
                    '\\' => {
                        self.pos = start;
                        Some(self.parse_escape_atom()?)
                    }
                    other => Some(Node::Class(Class::single(other))),
                };
                after_repeat = repeated;
                if let Some(node) = node {
                    frames.last_mut().ok_or("internal: no frame")?.push(node);
                }
            }
            if frames.len() != 1 {
                return Err("missing closing `)`".into());
            }
            Ok(frames.pop().unwrap_or_default())
        }

        /// A `\` outside a class, at `self.pos`.
        fn parse_escape_atom(&mut self) -> Result<Node, String> {
            let start = self.pos;
            let look = match self.peek_at(1) {
                Some('A') => Some(Look::Begin),
                Some('z') => Some(Look::End),
                Some('b') => Some(Look::WordBoundary),
                Some('B') => Some(Look::NotWordBoundary),
                Some('C') | Some('Q') | Some('E') | Some('p') | Some('P') => {
                    return Err(format!(
                        "escape `{}` is not supported",
                        self.text(start, start + 2)
                    ))
                }
                _ => None,
            };
            if let Some(look) = look {
                self.pos += 2;
                return Ok(Node::Look(look));
            }
            if let Some((ranges, negated)) = self.peek_at(1).and_then(perl_class) {
                self.pos += 2;
                return Ok(Node::Class(Class {
                    ranges: ranges.to_vec(),
                    negated,
                }));
            }
            let c = self.parse_escape()?;
            Ok(Node::Class(Class {
                ranges: vec![(c, c)],
                negated: false,
            }))
        }

        /// Go's `parseEscape`: the character a `\` escape at `self.pos` stands for.
        fn parse_escape(&mut self) -> Result<u32, String> {
            let start = self.pos;
            self.pos += 1;
            let Some(c) = self.peek_at(0) else {
                return Err("trailing backslash at end of expression".into());
            };
            self.pos += 1;
            let bad = |p: &Parser| format!("invalid escape sequence `{}`", p.text(start, p.pos));
            let is_octal = |c: Option<char>| matches!(c, Some('0'..='7'));
            match c {
                c if c.is_ascii() && !c.is_ascii_alphanumeric() => Ok(c as u32),
                '1'..='7' | '0' => {
                    if c != '0' && !is_octal(self.peek_at(0)) {
                        // A single non-zero digit would be a backreference.
                        return Err(bad(self));
                    }
                    let mut value = c as u32 - '0' as u32;
                    for _ in 1..3 {
                        match self.peek_at(0) {
                            Some(d @ '0'..='7') => {
                                value = value * 8 + (d as u32 - '0' as u32);
                                self.pos += 1;
                            }
                            _ => break,
                        }
                    }
                    Ok(value)
                }
                'x' => {
                    let hi = self.peek_at(0).and_then(|d| d.to_digit(16));
                    let lo = self.peek_at(1).and_then(|d| d.to_digit(16));
                    match (hi, lo) {
                        (Some(hi), Some(lo)) => {
                            self.pos += 2;
                            Ok(hi * 16 + lo)
                        }
                        _ => {
                            self.pos = (self.pos + 2).min(self.chars.len());
                            Err(bad(self))
                        }
                    }
                }
                'a' => Ok(0x07),
                'f' => Ok(0x0C),
                'n' => Ok(0x0A),
                'r' => Ok(0x0D),
                't' => Ok(0x09),
                'v' => Ok(0x0B),
                _ => Err(bad(self)),
            }
        }

        /// Go's `parseClassChar`.
        fn parse_class_char(&mut self, class_start: usize) -> Result<u32, String> {
            match self.peek_at(0) {
                None => Err(format!(
                    "missing closing ]: `{}`",
                    self.text(class_start, self.chars.len())
                )),
                Some('\\') => self.parse_escape(),
                Some(c) => {
                    self.pos += 1;
                    Ok(c as u32)
                }
            }
        }

        /// Go's `parseClass`, at the `[`.
        fn parse_class(&mut self) -> Result<Class, String> {
            let class_start = self.pos;
            self.pos += 1;
            let mut negated = false;
            if self.peek_at(0) == Some('^') {
                negated = true;
                self.pos += 1;
            }
            let mut ranges = Vec::new();
            let mut first = true;
            loop {
                if self.peek_at(0) == Some(']') && !first {
                    self.pos += 1;
                    break;
                }
                first = false;
                // POSIX class `[:name:]`; Go looks for the closing `:]` anywhere further on.
                if self.peek_at(0) == Some('[')
                    && self.peek_at(1) == Some(':')
                    && self.pos + 2 < self.chars.len()
                {
                    let rest = &self.chars[self.pos + 2..];
                    if let Some(end) = rest.windows(2).position(|w| w == [':', ']']) {
                        let name: String = rest[..end].iter().collect();
                        let whole = self.text(self.pos, self.pos + 2 + end + 2);
                        let (group, neg) = posix_class(&name)
                            .ok_or_else(|| format!("invalid character class range `{whole}`"))?;
                        append_ranges(&mut ranges, group, neg);
                        self.pos += 2 + end + 2;
                        continue;
                    }
                }
                if self.peek_at(0) == Some('\\') {
                    if let Some(letter @ ('p' | 'P')) = self.peek_at(1) {
                        return Err(format!("escape `\\{letter}` is not supported"));
                    }
                    if let Some((group, neg)) = self.peek_at(1).and_then(perl_class) {
                        append_ranges(&mut ranges, group, neg);
                        self.pos += 2;
                        continue;
                    }
                }
                let range_start = self.pos;
                let lo = self.parse_class_char(class_start)?;
                let mut hi = lo;
                if self.peek_at(0) == Some('-') && self.peek_at(1).is_some_and(|c| c != ']') {
                    self.pos += 1;
                    hi = self.parse_class_char(class_start)?;
                    if hi < lo {
                        return Err(format!(
                            "invalid character class range `{}`",
                            self.text(range_start, self.pos)
                        ));
                    }
                }
                ranges.push((lo, hi));
            }
            Ok(Class { ranges, negated })
        }
    }

    fn emit(node: &Node, insts: &mut Vec<Inst>) {
        match node {
            Node::Class(class) => insts.push(Inst::Class(class.clone())),
            Node::AnyButNewline => insts.push(Inst::AnyButNewline),
            Node::Look(look) => insts.push(Inst::Look(*look)),
            Node::Group(nodes) => nodes.iter().for_each(|n| emit(n, insts)),
            Node::Repeat(inner, Repeat::Star) => {
                let split = insts.len();
                insts.push(Inst::Split(0, 0));
                emit(inner, insts);
                insts.push(Inst::Jump(split));
                insts[split] = Inst::Split(split + 1, insts.len());
            }
            Node::Repeat(inner, Repeat::Plus) => {
                let start = insts.len();
                emit(inner, insts);
                insts.push(Inst::Split(start, insts.len() + 1));
            }
            Node::Repeat(inner, Repeat::Quest) => {
                let split = insts.len();
                insts.push(Inst::Split(0, 0));
                emit(inner, insts);
                insts[split] = Inst::Split(split + 1, insts.len());
            }
        }
    }

    fn is_word(c: Option<u32>) -> bool {
        c.and_then(char::from_u32)
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
    }

    /// A set of program counters, in insertion order.
    #[derive(Default)]
    struct Threads {
        seen: Vec<bool>,
        list: Vec<usize>,
    }

    impl Threads {
        /// Empty the set and make room for `size` program counters.
        fn reset(&mut self, size: usize) {
            self.clear();
            if self.seen.len() < size {
                self.seen.resize(size, false);
            }
        }

        fn clear(&mut self) {
            for &pc in &self.list {
                self.seen[pc] = false;
            }
            self.list.clear();
        }
    }

    /// Buffers reused across matches on one thread.
    #[derive(Default)]
    struct Scratch {
        current: Threads,
        next: Threads,
        stack: Vec<usize>,
        text: Vec<u32>,
    }

    thread_local! {
        static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::default();
    }

    impl Program {
        /// Parse and compile `regex` with Go's syntax rules.
        pub(super) fn new(regex: &str) -> Result<Program, String> {
            let mut parser = Parser {
                chars: regex.chars().collect(),
                pos: 0,
            };
            let nodes = parser.parse()?;
            let mut insts = Vec::new();
            for node in &nodes {
                emit(node, &mut insts);
            }
            insts.push(Inst::Match);
            let anchored = matches!(nodes.first(), Some(Node::Look(Look::Begin)));
            let mut suffix = Vec::new();
            if let Some((Node::Look(Look::End), before)) = nodes.split_last() {
                let literals = before.iter().rev().map_while(|node| match node {
                    Node::Class(Class {
                        ranges,
                        negated: false,
                    }) if ranges.len() == 1 && ranges[0].0 == ranges[0].1 => {
                        char::from_u32(ranges[0].0).filter(|&c| c != '\u{FFFD}')
                    }
                    _ => None,
                });
                let mut chars: Vec<char> = literals.collect();
                chars.reverse();
                suffix = chars.into_iter().collect::<String>().into_bytes();
            }
            let mut program = Program {
                insts,
                anchored,
                suffix,
                fast: None,
            };
            program.fast = program.build_fast().map(Box::new);
            Ok(program)
        }

        fn build_fast(&self) -> Option<Fast> {
            let size = self.insts.len();
            if size > 64 {
                return None;
            }
            let mut closure = vec![0u64; 16 * 64];
            let mut stack = Vec::new();
            for context in 0..16 {
                for start in 0..size {
                    let mut mask = 0u64;
                    stack.push(start);
                    while let Some(pc) = stack.pop() {
                        if mask & (1 << pc) != 0 {
                            continue;
                        }
                        mask |= 1 << pc;
                        match &self.insts[pc] {
                            Inst::Jump(to) => stack.push(*to),
                            Inst::Split(a, b) => {
                                stack.push(*b);
                                stack.push(*a);
                            }
                            Inst::Look(look) if Self::holds_in(*look, context) => {
                                stack.push(pc + 1)
                            }
                            _ => {}
                        }
                    }
                    closure[context * 64 + start] = mask;
                }
            }
            let mut ascii = [0u64; 128];
            for (c, accept) in (0u32..).zip(ascii.iter_mut()) {
                *accept = self.accepting(c);
            }
            Some(Fast {
                closure,
                ascii,
                matched: 1 << (size - 1),
            })
        }

        /// The consuming instructions that accept `c`, as a mask (fast path only).
        fn accepting(&self, c: u32) -> u64 {
            let mut mask = 0;
            for (pc, inst) in self.insts.iter().enumerate() {
                let accepts = match inst {
                    Inst::Class(class) => class.contains(c),
                    Inst::AnyButNewline => c != u32::from('\n'),
                    _ => false,
                };
                if accepts {
                    mask |= 1 << pc;
                }
            }
            mask
        }

        /// Whether `look` holds in a context numbered as in [`Fast`].
        fn holds_in(look: Look, context: usize) -> bool {
            let (begin, end) = (context & 1 != 0, context & 2 != 0);
            let (word_before, word_after) = (context & 4 != 0, context & 8 != 0);
            match look {
                Look::Begin => begin,
                Look::End => end,
                Look::WordBoundary => word_before != word_after,
                Look::NotWordBoundary => word_before == word_after,
            }
        }

        fn run_fast(&self, fast: &Fast, text: &[u32]) -> bool {
            let context = |at: usize| {
                let before = at.checked_sub(1).map(|i| text[i]);
                let after = text.get(at).copied();
                usize::from(at == 0)
                    | usize::from(at == text.len()) << 1
                    | usize::from(is_word(before)) << 2
                    | usize::from(is_word(after)) << 3
            };
            let closure_of = |mut mask: u64, context: usize| {
                let table = &fast.closure[context * 64..context * 64 + 64];
                let mut out = 0;
                while mask != 0 {
                    out |= table[mask.trailing_zeros() as usize];
                    mask &= mask - 1;
                }
                out
            };
            let mut current = fast.closure[context(0) * 64];
            for (at, &c) in text.iter().enumerate() {
                if current & fast.matched != 0 {
                    return true;
                }
                let accept = match fast.ascii.get(c as usize) {
                    Some(&mask) => mask,
                    None => self.accepting(c),
                };
                let stepped = (current & accept) << 1;
                let next_context = context(at + 1);
                current = closure_of(stepped, next_context);
                if !self.anchored {
                    current |= fast.closure[next_context * 64];
                } else if current == 0 {
                    return false;
                }
            }
            current & fast.matched != 0
        }

        fn holds(look: Look, at: usize, text: &[u32]) -> bool {
            let before = at.checked_sub(1).map(|i| text[i]);
            let after = text.get(at).copied();
            match look {
                Look::Begin => at == 0,
                Look::End => at == text.len(),
                Look::WordBoundary => is_word(before) != is_word(after),
                Look::NotWordBoundary => is_word(before) == is_word(after),
            }
        }

        /// Add `pc` and everything reachable from it without consuming input.
        fn add(
            &self,
            threads: &mut Threads,
            pc: usize,
            at: usize,
            text: &[u32],
            stack: &mut Vec<usize>,
        ) {
            stack.push(pc);
            while let Some(pc) = stack.pop() {
                if threads.seen[pc] {
                    continue;
                }
                threads.seen[pc] = true;
                threads.list.push(pc);
                match &self.insts[pc] {
                    Inst::Jump(to) => stack.push(*to),
                    Inst::Split(a, b) => {
                        stack.push(*b);
                        stack.push(*a);
                    }
                    Inst::Look(look) if Self::holds(*look, at, text) => stack.push(pc + 1),
                    _ => {}
                }
            }
        }

        /// Go's `Regexp.Match`: whether the expression matches somewhere in `path`.
        pub(super) fn is_match(&self, path: &[u8]) -> bool {
            if !path.ends_with(&self.suffix) {
                return false;
            }
            SCRATCH.with(|scratch| self.run(path, &mut scratch.borrow_mut(), true))
        }

        /// Both engines' answers, bit-parallel (if the program is small enough) and not.
        #[cfg(test)]
        pub(super) fn both_engines(&self, path: &[u8]) -> (Option<bool>, bool) {
            let mut scratch = Scratch::default();
            let fast = self
                .fast
                .as_ref()
                .map(|_| self.run(path, &mut scratch, true));
            (fast, self.run(path, &mut scratch, false))
        }

        fn run(&self, path: &[u8], scratch: &mut Scratch, allow_fast: bool) -> bool {
            let Scratch {
                current,
                next,
                stack,
                text,
            } = scratch;
            decode(path, text);
            if let Some(fast) = self.fast.as_deref().filter(|_| allow_fast) {
                return self.run_fast(fast, text);
            }
            current.reset(self.insts.len());
            next.reset(self.insts.len());
            for at in 0..=text.len() {
                // Go's MatchString searches the whole text; with a leading `^` (which the
                // translation always has) a match can only start at 0.
                if at == 0 || !self.anchored {
                    self.add(current, 0, at, text, stack);
                } else if current.list.is_empty() {
                    return false;
                }
                for index in 0..current.list.len() {
                    let pc = current.list[index];
                    let step = match &self.insts[pc] {
                        Inst::Match => return true,
                        Inst::Class(class) => text.get(at).is_some_and(|&c| class.contains(c)),
                        Inst::AnyButNewline => text.get(at).is_some_and(|&c| c != u32::from('\n')),
                        _ => false,
                    };
                    if step {
                        self.add(next, pc + 1, at + 1, text, stack);
                    }
                }
                std::mem::swap(current, next);
                next.clear();
            }
            false
        }
    }

    /// The characters of `path` as Go's regexp sees them: valid UTF-8 sequences decoded,
    /// every other byte read as U+FFFD on its own.
    fn decode(path: &[u8], out: &mut Vec<u32>) {
        out.clear();
        for chunk in path.utf8_chunks() {
            out.extend(chunk.valid().chars().map(u32::from));
            out.extend(std::iter::repeat_n(0xFFFD, chunk.invalid().len()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Simulates the walker (fsutil's filterFS.Walk) over a virtual tree: top-down, sorted,
    /// `Exclude` skips the subtree, `Descend` walks in and emits the directory only if
    /// something below it is emitted. Entries ending in '/' are directories; parents are
    /// added implicitly. Returns the emitted paths (directories with a trailing '/'), sorted.
    fn simulate(ignore: &[u8], tree: &[&[u8]]) -> Result<Vec<Vec<u8>>, PatternError> {
        let matcher = Matcher::new(&parse_dockerignore(ignore)?)?;
        let mut children: BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, bool>> = BTreeMap::new();
        children.insert(Vec::new(), BTreeMap::new());
        for entry in tree {
            let is_dir = entry.ends_with(b"/");
            let path = entry.strip_suffix(b"/").unwrap_or(entry);
            let mut dir = Vec::new();
            let parts: Vec<&[u8]> = path.split(|&b| b == b'/').collect();
            for (i, name) in parts.iter().enumerate() {
                let last = i + 1 == parts.len();
                let child_is_dir = !last || is_dir;
                let mut full = dir.clone();
                if !full.is_empty() {
                    full.push(b'/');
                }
                full.extend_from_slice(name);
                let slot = children.entry(dir.clone()).or_default();
                let flag = slot.entry(name.to_vec()).or_insert(child_is_dir);
                *flag |= child_is_dir;
                if child_is_dir {
                    children.entry(full.clone()).or_default();
                }
                dir = full;
            }
        }
        fn walk(
            m: &Matcher,
            children: &BTreeMap<Vec<u8>, BTreeMap<Vec<u8>, bool>>,
            dir: &[u8],
            state: &DirState,
            out: &mut Vec<Vec<u8>>,
        ) {
            for (name, &is_dir) in &children[dir] {
                let mut path = dir.to_vec();
                if !path.is_empty() {
                    path.push(b'/');
                }
                path.extend_from_slice(name);
                let mut shown = path.clone();
                if is_dir {
                    shown.push(b'/');
                }
                match m.decide(&path, is_dir, state) {
                    Decision::Include(s) => {
                        out.push(shown);
                        if is_dir {
                            walk(m, children, &path, &s, out);
                        }
                    }
                    Decision::Exclude => {}
                    Decision::Descend(s) => {
                        assert!(
                            is_dir,
                            "Descend for a file: {:?}",
                            String::from_utf8_lossy(&path)
                        );
                        let mut below = Vec::new();
                        walk(m, children, &path, &s, &mut below);
                        if !below.is_empty() {
                            out.push(shown);
                            out.extend(below);
                        }
                    }
                }
            }
        }
        let mut out = Vec::new();
        walk(&matcher, &children, b"", &matcher.root_state(), &mut out);
        out.sort();
        Ok(out)
    }

    /// What a table case expects.
    enum Want {
        /// The exact set of paths in the image (directories with a trailing '/').
        Paths(&'static [&'static str]),
        /// The ignore file is rejected.
        Error,
    }
    use Want::{Error as Fails, Paths};

    struct Case {
        name: &'static str,
        ignore: &'static str,
        tree: &'static [&'static str],
        want: Want,
    }

    const CASES: &[Case] = &[
        Case {
            name: "no patterns: everything",
            ignore: "",
            tree: &["a/b/c", "d", "e/"],
            want: Paths(&["a/", "a/b/", "a/b/c", "d", "e/"]),
        },
        Case {
            name: "comments and blank lines",
            ignore: "# a comment\n\n   \n\t\nfoo\n# bar\n",
            tree: &["foo", "bar", "# bar"],
            want: Paths(&["# bar", "bar"]),
        },
        Case {
            // ReadAll only tests strings.HasPrefix(line, "#") before trimming.
            name: "a # not in column 0 is a pattern",
            ignore: "  #notes\n",
            tree: &["#notes", "notes"],
            want: Paths(&["notes"]),
        },
        Case {
            name: "escaped # and ! are literal",
            ignore: "\\#x\n\\!y\n",
            tree: &["#x", "!y", "x", "y"],
            want: Paths(&["x", "y"]),
        },
        Case {
            name: "patterns are anchored at the root",
            ignore: "foo\n",
            tree: &["foo/bar", "a/foo", "a/foo/x", "foobar"],
            want: Paths(&["a/", "a/foo/", "a/foo/x", "foobar"]),
        },
        Case {
            name: "**/ matches at any depth, including the root",
            ignore: "**/foo\n",
            tree: &["foo", "a/foo", "a/b/foo/x", "a/xfoo", "foox"],
            want: Paths(&["a/", "a/b/", "a/xfoo", "foox"]),
        },
        Case {
            name: "* does not cross /",
            ignore: "*.log\n",
            tree: &["a.log", "b.txt", "d/c.log"],
            want: Paths(&["b.txt", "d/", "d/c.log"]),
        },
        Case {
            name: "**/*.log at any depth",
            ignore: "**/*.log\n",
            tree: &["a.log", "b.txt", "d/c.log", "d/e/f.log", "d/e/g"],
            want: Paths(&["b.txt", "d/", "d/e/", "d/e/g"]),
        },
        Case {
            name: "a/*/c: one directory exactly",
            ignore: "a/*/c\n",
            tree: &["a/b/c", "a/b/x/c", "a/c"],
            want: Paths(&["a/", "a/b/", "a/b/x/", "a/b/x/c", "a/c"]),
        },
        Case {
            name: "a/**/c: any number of directories, including none",
            ignore: "a/**/c\n",
            tree: &["a/c", "a/b/c", "a/b/d/c", "a/b/d/e", "c"],
            want: Paths(&["a/", "a/b/", "a/b/d/", "a/b/d/e", "c"]),
        },
        Case {
            name: "? is one character, not /",
            ignore: "file?.txt\n",
            tree: &[
                "file1.txt",
                "file10.txt",
                "file.txt",
                "file/.txt",
                "fileé.txt",
            ],
            want: Paths(&["file.txt", "file/", "file/.txt", "file10.txt"]),
        },
        Case {
            name: "character class range",
            ignore: "[a-c].txt\n",
            tree: &["a.txt", "c.txt", "d.txt", "-.txt"],
            want: Paths(&["-.txt", "d.txt"]),
        },
        Case {
            name: "negated class [^a]",
            ignore: "[^a].txt\n",
            tree: &["a.txt", "b.txt", "ab.txt"],
            want: Paths(&["a.txt", "ab.txt"]),
        },
        Case {
            // Go's filepath.Match negates with '^' only; patternmatcher passes '!' through to
            // the regexp, where it is an ordinary class member.
            name: "surprise: [!a] is the class of ! and a",
            ignore: "[!a].txt\n",
            tree: &["a.txt", "b.txt", "!.txt"],
            want: Paths(&["b.txt"]),
        },
        Case {
            name: "backslash escapes a wildcard",
            ignore: "\\*.txt\n",
            tree: &["*.txt", "a.txt"],
            want: Paths(&["a.txt"]),
        },
        Case {
            name: "regexp metacharacters are literal",
            ignore: "a(b)c.d+e$\n*.x+y\n",
            tree: &["a(b)c.d+e$", "abcxd+e$", "1.x+y", "1.xxy"],
            want: Paths(&["1.xxy", "abcxd+e$"]),
        },
        Case {
            name: "a directory pattern excludes everything below it",
            ignore: "build\n",
            tree: &["build/a/b", "build/c", "builder/x"],
            want: Paths(&["builder/", "builder/x"]),
        },
        Case {
            // filepath.Clean drops the trailing '/': it is not "directories only".
            name: "surprise: trailing / also matches a file",
            ignore: "build/\nlogs/\n",
            tree: &["build", "logs/x", "src/build"],
            want: Paths(&["src/", "src/build"]),
        },
        Case {
            // foo/** compiles to a prefix test on "foo/": foo itself does not match.
            name: "foo/** leaves an empty foo/",
            ignore: "foo/**\n",
            tree: &["foo/a", "foo/b/c", "bar"],
            want: Paths(&["bar", "foo/"]),
        },
        Case {
            name: "foo/* leaves foo/ too",
            ignore: "foo/*\n",
            tree: &["foo/a", "foo/b/c"],
            want: Paths(&["foo/"]),
        },
        Case {
            name: "exception under an excluded directory",
            ignore: "docs\n!docs/README.md\n",
            tree: &["docs/README.md", "docs/other.md", "docs/sub/x.md", "top"],
            want: Paths(&["docs/", "docs/README.md", "top"]),
        },
        Case {
            name: "exception listed first does nothing: last match wins",
            ignore: "!a.txt\n*.txt\n",
            tree: &["a.txt", "b.txt", "c"],
            want: Paths(&["c"]),
        },
        Case {
            name: "exception listed last wins",
            ignore: "*.txt\n!a.txt\n",
            tree: &["a.txt", "b.txt", "c"],
            want: Paths(&["a.txt", "c"]),
        },
        Case {
            name: "exclude, re-include, exclude again",
            ignore: "*\n!src\nsrc/tmp\n",
            tree: &["src/a.rs", "src/tmp/x", "src/tmpfile", "README"],
            want: Paths(&["src/", "src/a.rs", "src/tmpfile"]),
        },
        Case {
            // An exception with a wildcard makes fsutil walk into every excluded directory
            // (onlyPrefixExcludeExceptions is false); parents appear lazily.
            name: "wildcard exception walks excluded directories",
            ignore: "docs\n!docs/**/*.md\n",
            tree: &["docs/a.md", "docs/x/y.md", "docs/x/z.txt", "docs/w/z.txt"],
            want: Paths(&["docs/", "docs/a.md", "docs/x/", "docs/x/y.md"]),
        },
        Case {
            name: "wildcard exception elsewhere still reaches into an excluded directory",
            ignore: "docs\nlib\n!**/*.md\n",
            tree: &["docs/a.md", "docs/b.txt", "lib/c/d.md", "e.md"],
            want: Paths(&["docs/", "docs/a.md", "e.md", "lib/", "lib/c/", "lib/c/d.md"]),
        },
        Case {
            name: "an excluded directory with nothing re-included vanishes",
            ignore: "docs\n!docs/keep.md\n",
            tree: &["docs/other.md", "docs/sub/"],
            want: Paths(&[]),
        },
        Case {
            name: "exception for a directory re-includes its whole subtree",
            ignore: "a\n!a/b\n",
            tree: &["a/b/c/d", "a/b/e", "a/c", "a/bb"],
            want: Paths(&["a/", "a/b/", "a/b/c/", "a/b/c/d", "a/b/e"]),
        },
        Case {
            // MatchesUsingParentResults only tries an exception while the path is excluded,
            // and records "no match" for patterns it did not try. `!a` was not tried for `a`
            // (nothing excluded it), so `a/b` does not inherit it: a/b stays excluded.
            // (MatchesOrParentMatches, used elsewhere in moby, would re-include a/b.)
            name: "surprise: an exception does not reach down through an included parent",
            ignore: "a/b\n!a\n",
            tree: &["a/b/f", "a/c"],
            want: Paths(&["a/", "a/c"]),
        },
        Case {
            name: "lazy parents all the way down",
            ignore: "*\n!a/b/c/d.txt\n",
            tree: &["a/b/c/d.txt", "a/b/c/e.txt", "a/x", "z"],
            want: Paths(&["a/", "a/b/", "a/b/c/", "a/b/c/d.txt"]),
        },
        Case {
            // "!a/**" is a prefix test on "a/": it re-includes a's contents, not a itself.
            name: "exception with /** re-includes contents, empty dir vanishes",
            ignore: "a\ne\n!a/**\n!e/**\n",
            tree: &["a/x", "a/y/z", "e/"],
            want: Paths(&["a/", "a/x", "a/y/", "a/y/z"]),
        },
        Case {
            name: "* excludes everything",
            ignore: "*\n",
            tree: &["a/b", "c", ".hidden"],
            want: Paths(&[]),
        },
        Case {
            name: "** excludes everything, exceptions still apply",
            ignore: "**\n!keep\n",
            tree: &["a/b", "keep/x", "c"],
            want: Paths(&["keep/", "keep/x"]),
        },
        Case {
            name: "*/ is * (the slash is cleaned away)",
            ignore: "*/\n",
            tree: &["a/b", "c"],
            want: Paths(&[]),
        },
        Case {
            // A leading "**" followed by plain text compiles to a suffix test (suffixMatch),
            // not to the regexp "(.*/)?foo".
            name: "surprise: **foo is any path ending in foo",
            ignore: "**foo\n",
            tree: &["foo", "barfoo", "a/xfoo", "a/foo.c"],
            want: Paths(&["a/", "a/foo.c"]),
        },
        Case {
            name: "surprise: a**b only spans whole directories",
            ignore: "a**b\n",
            tree: &["ab", "axb", "a/b", "ax/y/b"],
            want: Paths(&["a/", "ax/", "ax/y/", "axb"]),
        },
        Case {
            // '^' is not escaped by patternmatcher: in a regexp pattern it anchors.
            name: "surprise: ^ is an anchor once the pattern has a wildcard",
            ignore: "^foo*\n^bar\n",
            tree: &["foobar", "^foobar", "^bar", "bar"],
            want: Paths(&["^foobar", "bar"]),
        },
        Case {
            name: "surprise: . and / exclude nothing",
            ignore: ".\n/\n./\n/..\n",
            tree: &["a", "b/c"],
            want: Paths(&["a", "b/", "b/c"]),
        },
        Case {
            name: "leading / is the root",
            ignore: "/abs/path\n//x\n",
            tree: &["abs/path", "abs/other", "x", "y/abs/path"],
            want: Paths(&["abs/", "abs/other", "y/", "y/abs/", "y/abs/path"]),
        },
        Case {
            name: "patterns are cleaned: a/../b, ./x, a//b/./c",
            ignore: "a/../b\n./x\na//b/./c\n",
            tree: &["a/b/c", "a/b/d", "b", "x"],
            want: Paths(&["a/", "a/b/", "a/b/d"]),
        },
        Case {
            name: "a pattern that cleans to ../ matches nothing",
            ignore: "../a\n",
            tree: &["a"],
            want: Paths(&["a"]),
        },
        Case {
            name: "CRLF line endings",
            ignore: "foo\r\nbar\r\n# c\r\n",
            tree: &["foo", "bar", "baz"],
            want: Paths(&["baz"]),
        },
        Case {
            name: "UTF-8 BOM before a comment on the first line",
            ignore: "\u{FEFF}# comment\nfoo\n",
            tree: &["foo", "# comment", "bar"],
            want: Paths(&["# comment", "bar"]),
        },
        Case {
            name: "UTF-8 BOM before a pattern",
            ignore: "\u{FEFF}foo",
            tree: &["foo", "bar"],
            want: Paths(&["bar"]),
        },
        Case {
            name: "! with spaces, trimmed twice",
            ignore: "*\n  !  keep.txt  \n! /also/ \n",
            tree: &["keep.txt", "also/x", "drop"],
            want: Paths(&["also/", "also/x", "keep.txt"]),
        },
        Case {
            name: "!! is an exception for a name starting with !",
            ignore: "*\n!!bang\n",
            tree: &["!bang", "bang"],
            want: Paths(&["!bang"]),
        },
        Case {
            name: ".dockerignore and Dockerfile are ordinary paths",
            ignore: ".dockerignore\nDockerfile\n",
            tree: &[
                ".dockerignore",
                "Dockerfile",
                "Dockerfile.dev",
                "sub/Dockerfile",
            ],
            want: Paths(&["Dockerfile.dev", "sub/", "sub/Dockerfile"]),
        },
        Case {
            name: "hidden files are not special",
            ignore: ".*\n",
            tree: &[".git/HEAD", ".env", "a/.b", "c"],
            want: Paths(&["a/", "a/.b", "c"]),
        },
        Case {
            name: "node_modules anywhere",
            ignore: "**/node_modules\n!**/node_modules/keep\n",
            tree: &[
                "node_modules/x",
                "a/node_modules/keep/y",
                "a/node_modules/z",
                "a/b",
            ],
            want: Paths(&[
                "a/",
                "a/b",
                "a/node_modules/",
                "a/node_modules/keep/",
                "a/node_modules/keep/y",
            ]),
        },
        Case {
            name: "a trailing ** after a wildcard is a regexp .*",
            ignore: "**/cache/**\n",
            tree: &["cache/x", "a/cache/y/z", "a/cachex"],
            want: Paths(&["a/", "a/cache/", "a/cachex", "cache/"]),
        },
        Case {
            name: "Unicode: ? and classes take whole characters",
            ignore: "?.txt\n[é-ê]x\n",
            tree: &["é.txt", "ab.txt", "éx", "ëx"],
            want: Paths(&["ab.txt", "ëx"]),
        },
        Case {
            name: "escape sequences go to the regexp: \\d is a digit",
            ignore: "v\\d\n",
            tree: &["v1", "vd", "v"],
            want: Paths(&["v", "vd"]),
        },
        Case {
            // patternmatcher turns `\b` into the regexp `\b`: a word boundary.
            name: "surprise: \\b is a word boundary",
            ignore: "a\\b*\n",
            tree: &["a", "ab", "a-b"],
            want: Paths(&["ab"]),
        },
        Case {
            // Pattern.compile translates the `*` inside the brackets too: `[*]` becomes the
            // regexp `[[^/]*]`, any run of '[', '^', '/' followed by a literal ']'.
            name: "surprise: [*] is not the class of *",
            ignore: "[*]\n",
            tree: &["]", "[^]", "*", "a"],
            want: Paths(&["*", "a"]),
        },
        Case {
            name: "escaped ] and - in a class",
            ignore: "[\\]\\-]x\n",
            tree: &["]x", "-x", "ax"],
            want: Paths(&["ax"]),
        },
        Case {
            name: "POSIX class inside a class (Go regexp syntax)",
            ignore: "[[:digit:]]*\n",
            tree: &["1abc", "abc", "[x"],
            want: Paths(&["[x", "abc"]),
        },
        Case {
            // Go's filepath.Match, which patternmatcher's New uses as a syntax check, stops at
            // the first chunk that cannot match "." and never looks at the rest. `[a-]` then
            // reaches Go's regexp, where it is the class of 'a' and '-'.
            name: "surprise: a syntax error after a `*` may go unchecked",
            ignore: "a*/[a-]\n",
            tree: &["ab/-", "ab/a", "ab/b", "a/a"],
            want: Paths(&["ab/", "ab/b", "a/"]),
        },
        Case {
            name: "bad: the same class where filepath.Match reaches it",
            ignore: "*/[a-]\n",
            tree: &["x"],
            want: Fails,
        },
        Case {
            // filepath.Match does not reach the `[`, but the regexp `^a[^/]*/[$` is invalid, and
            // patternmatcher fails the first time it tries the pattern.
            name: "bad: unterminated [ after a `*` (caught by the regexp)",
            ignore: "a*/[\n",
            tree: &["x"],
            want: Fails,
        },
        Case {
            name: "bad: lone !",
            ignore: "foo\n!\n",
            tree: &["foo"],
            want: Fails,
        },
        Case {
            name: "bad: ! followed by spaces only",
            ignore: "! \n",
            tree: &["foo"],
            want: Fails,
        },
        Case {
            // "!/" normalises to "!/", which New cleans to "!": illegal.
            name: "bad: !/",
            ignore: "!/\n",
            tree: &["foo"],
            want: Fails,
        },
        Case {
            name: "bad: unterminated [",
            ignore: "foo[\n",
            tree: &["foo"],
            want: Fails,
        },
        Case {
            name: "bad: trailing backslash (trailing space trimmed first)",
            ignore: "foo\\ \n",
            tree: &["foo"],
            want: Fails,
        },
        Case {
            name: "bad: [a-b-c], []a], [-a], [a-]",
            ignore: "[a-b-c]\n",
            tree: &["a"],
            want: Fails,
        },
        Case {
            name: "bad: class starting with ]",
            ignore: "[]a]\n",
            tree: &["a"],
            want: Fails,
        },
        Case {
            name: "bad: class member -",
            ignore: "[-a]\n",
            tree: &["a"],
            want: Fails,
        },
        Case {
            name: "bad: range without end",
            ignore: "[a-]\n",
            tree: &["a"],
            want: Fails,
        },
        Case {
            // filepath.Match accepts it; Go's regexp rejects the backwards range l-O, and
            // patternmatcher then fails every match with ErrBadPattern (moby/moby#52203).
            name: "bad: [Local-Only] (backwards range in the regexp)",
            ignore: "[Local-Only]/\n",
            tree: &["x"],
            want: Fails,
        },
        Case {
            name: "bad: invalid regexp escape",
            ignore: "*\\o\n",
            tree: &["x"],
            want: Fails,
        },
        Case {
            name: "bad: an exception is checked even if never reached",
            ignore: "!a[\n",
            tree: &["x"],
            want: Fails,
        },
    ];

    /// Every case but three was also checked against a real `docker build` (Docker CLI 28,
    /// legacy builder, which shares ReadAll and patternmatcher with BuildKit): same paths, same
    /// failures. The three cases whose names say "wildcard exception" or "node_modules" differ
    /// there on purpose: the legacy builder's archive walk skips an excluded directory unless
    /// an exception starts with its path, while BuildKit's fsutil walks into every excluded
    /// directory once any exception has a wildcard.
    #[test]
    fn table() {
        let mut failures = Vec::new();
        for case in CASES {
            let tree: Vec<&[u8]> = case.tree.iter().map(|p| p.as_bytes()).collect();
            let got = simulate(case.ignore.as_bytes(), &tree);
            let ok = match (&case.want, &got) {
                (Paths(want), Ok(got)) => {
                    let mut want: Vec<Vec<u8>> =
                        want.iter().map(|p| p.as_bytes().to_vec()).collect();
                    want.sort();
                    &want == got
                }
                (Fails, Err(_)) => true,
                _ => false,
            };
            if !ok {
                let got = got.map(|paths| {
                    paths
                        .iter()
                        .map(|p| String::from_utf8_lossy(p).into_owned())
                        .collect::<Vec<_>>()
                });
                failures.push(format!("{}: got {:?}", case.name, got));
            }
        }
        assert!(
            failures.is_empty(),
            "{} case(s) failed:\n{}",
            failures.len(),
            failures.join("\n")
        );
        assert!(CASES.len() >= 40);
    }

    #[test]
    fn parse_like_read_all() {
        // The vector of ignorefile_test.go's TestReadAll, re-expressed.
        let content = "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n!\n! ";
        assert_eq!(
            parse_dockerignore(content.as_bytes()).unwrap(),
            [
                "test1",
                "test2",
                "a/file/here",
                "lastfile",
                "!inverted/abs/path",
                "!",
                "!"
            ]
        );
        assert_eq!(parse_dockerignore(b"").unwrap(), Vec::<String>::new());
        assert_eq!(parse_dockerignore(b"\n\n").unwrap(), Vec::<String>::new());
        assert_eq!(
            parse_dockerignore(b"a\r\nb\rc\r\n\r").unwrap(),
            ["a", "b\rc"]
        );
        assert_eq!(
            parse_dockerignore(b"a/b/../../../c\n/\n//\n.\n").unwrap(),
            ["../c", "/", "/", "."]
        );
        assert_eq!(
            parse_dockerignore(b"!./x/\n!!y\n\t!\tz\n").unwrap(),
            ["!x", "!!y", "!z"]
        );
        // A BOM is only dropped from the first line.
        assert_eq!(
            parse_dockerignore("a\n\u{FEFF}b".as_bytes()).unwrap(),
            ["a", "\u{FEFF}b"]
        );
        // Unicode white space is trimmed, as Go's strings.TrimSpace does.
        assert_eq!(
            parse_dockerignore("\u{00A0}x\u{3000}\n".as_bytes()).unwrap(),
            ["x"]
        );
    }

    #[test]
    fn parse_errors() {
        let err = parse_dockerignore(b"ok\nbad\xff\n").unwrap_err();
        assert_eq!(err.pattern(), "bad\u{FFFD}");
        assert!(err.to_string().contains("line 2"), "{err}");
        assert!(!err.to_string().contains('\n'));
        // A comment that is not UTF-8 is still a comment.
        assert_eq!(parse_dockerignore(b"# caf\xe9\nx").unwrap(), ["x"]);
        let long = vec![b'a'; MAX_LINE];
        let err = parse_dockerignore(&long).unwrap_err();
        assert!(err.reason().contains("line 1"), "{err}");
        let fits = vec![b'a'; MAX_LINE - 1];
        assert_eq!(parse_dockerignore(&fits).unwrap().len(), 1);
    }

    #[test]
    fn normalize_command_line_patterns() {
        assert_eq!(normalize_pattern("  /foo/bar/ "), Some("foo/bar".into()));
        assert_eq!(normalize_pattern("# note"), None);
        assert_eq!(normalize_pattern(" # note"), Some("# note".into()));
        assert_eq!(normalize_pattern("   "), None);
        assert_eq!(normalize_pattern("! x/./y"), Some("!x/y".into()));
        assert_eq!(normalize_pattern("!"), Some("!".into()));
        assert_eq!(normalize_pattern("/"), Some("/".into()));
    }

    #[test]
    fn go_clean_cases() {
        for (input, want) in [
            ("", "."),
            (".", "."),
            ("a/b", "a/b"),
            ("a//b", "a/b"),
            ("a/b/", "a/b"),
            ("./a", "a"),
            ("a/./b", "a/b"),
            ("a/../b", "b"),
            ("a/..", "."),
            ("..", ".."),
            ("../..", "../.."),
            ("a/../..", ".."),
            ("/", "/"),
            ("//", "/"),
            ("/..", "/"),
            ("/../a", "/a"),
            ("!../..", "."),
            ("abc/def/../../..", ".."),
        ] {
            assert_eq!(go_clean(input), want, "Clean({input:?})");
        }
    }

    /// The match types and regexps of patternmatcher_test.go's TestCompile.
    #[test]
    fn translation_matches_upstream() {
        for (pattern, kind, regex) in [
            ("*", Kind::Regex, "^[^/]*$"),
            ("file*", Kind::Regex, "^file[^/]*$"),
            ("*file", Kind::Regex, "^[^/]*file$"),
            ("a*/b", Kind::Regex, "^a[^/]*/b$"),
            ("**", Kind::Suffix, ""),
            ("**/**", Kind::Regex, "^(.*/)?.*$"),
            ("dir/**", Kind::Prefix, ""),
            ("**/dir", Kind::Suffix, ""),
            ("**/dir2/*", Kind::Regex, "^(.*/)?dir2/[^/]*$"),
            ("**/dir2/**", Kind::Regex, "^(.*/)?dir2/.*$"),
            ("**file", Kind::Suffix, ""),
            ("**/file*txt", Kind::Regex, "^(.*/)?file[^/]*txt$"),
            ("**/**/*.txt", Kind::Regex, "^(.*/)?(.*/)?[^/]*\\.txt$"),
            ("a[b-d]e", Kind::Regex, "^a[b-d]e$"),
            (".*", Kind::Regex, "^\\.[^/]*$"),
            ("abc.def", Kind::Exact, ""),
            ("abc?def", Kind::Regex, "^abc[^/]def$"),
            ("**/foo/bar", Kind::Suffix, ""),
            ("a(b)c/def", Kind::Exact, ""),
            ("a.|)$(}+{bc", Kind::Exact, ""),
            ("[*]", Kind::Regex, "^[[^/]*]$"),
        ] {
            let (got_kind, got_regex) = translate(pattern);
            assert_eq!(got_kind, kind, "kind of {pattern:?}");
            if kind == Kind::Regex {
                assert_eq!(got_regex, regex, "regexp of {pattern:?}");
            }
        }
    }

    /// Whether `path` is excluded, deciding its ancestors first (MatchesUsingParentResults).
    fn excluded(patterns: &[&str], path: &str) -> bool {
        let patterns: Vec<String> = patterns.iter().map(|p| p.to_string()).collect();
        let m = Matcher::new(&patterns).unwrap();
        let mut state = m.root_state();
        for dir in ancestors(path.as_bytes()) {
            let mut next = DirState::default();
            m.evaluate(dir, &state, Some(&mut next));
            state = next;
        }
        m.evaluate(path.as_bytes(), &state, None)
    }

    /// Single-pattern vectors in the spirit of patternmatcher_test.go's TestMatches.
    #[test]
    fn single_pattern_matches() {
        for (pattern, path, want) in [
            ("**", "file", true),
            ("**", "dir/file", true),
            ("**/", "file", true),
            ("**/**", "dir/file", true),
            ("dir/**", "dir/file", true),
            ("dir/**", "dir/dir2/file", true),
            ("dir/**", "dir", false),
            ("**/dir", "dir", true),
            ("**/dir", "dir/file", true),
            ("**/dir2/*", "dir/dir2/file", true),
            ("**/dir2/**", "dir/dir2/dir3/file", true),
            ("**file", "dir/dir/file", true),
            ("**/file*", "dir/dir/file.txt", true),
            ("**/file*.txt*", "dir/dir/file.txt", true),
            ("**/**/*.txt2", "dir/dir/file.txt", false),
            ("**/*.txt", "file.txt", true),
            ("a**/*.txt", "a/dir/dir/file.txt", true),
            ("a/*.txt", "a/dir/file.txt", false),
            ("a/*.txt**", "a/file.txt", true),
            ("a[b-d]e", "ae", false),
            ("a[b-d]e", "ace", true),
            ("a[^b-d]e", "aze", true),
            (".*", ".foo", true),
            (".*", "foo", false),
            ("abc.def", "abcZdef", false),
            ("abc?def", "abcZdef", true),
            ("**/.foo", "bar.foo", false),
            ("a\\\\", "a\\", true),
            ("a\\*b", "a*b", true),
            ("a\\*b", "ab", false),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false),
            ("a*b?c*x", "abxbbxdbxebxczzx", true),
            ("a*b?c*x", "abxbbxdbxebxczzy", false),
            ("a?b", "a☺b", true),
            ("a???b", "a☺b", false),
            ("[a-ζ]*", "α", true),
            ("*[a-ζ]", "A", false),
            ("a?b", "a/b", false),
            ("[\\]a]", "]", true),
            ("[x\\-]", "-", true),
            ("[x\\-]", "z", false),
            ("*x", "xxx", true),
            ("a*", "ab/c", true),
            (
                "*.whl",
                "proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                true,
            ),
        ] {
            assert_eq!(excluded(&[pattern], path), want, "{pattern:?} on {path:?}");
        }
        assert!(!excluded(
            &["**", "!util/docker/web"],
            "util/docker/web/foo"
        ));
        assert!(excluded(
            &["**", "!util/docker/web", "util/docker/web/foo"],
            "util/docker/web/foo"
        ));
        assert!(!excluded(&["**", "!dist/*.whl"], "dist/a.whl"));
    }

    #[test]
    fn bad_patterns() {
        for bad in [
            "[",
            "[^",
            "[^bc",
            "a[",
            "\\",
            "[]a]",
            "[-]",
            "[x-]",
            "[-x]",
            "[a-b-c]",
            "!",
            "[z-a]",
            "x\\o*",
            "*\\1",
            "*\\x4",
            "*\\pL",
            "*\\Q",
            "[\\pL]",
            "[[:foo:]]",
        ] {
            let err = Matcher::new(&[bad.to_string()]).unwrap_err();
            assert!(!err.to_string().contains('\n'), "{err}");
        }
        for good in [
            "[\\]a]",
            "[\\-]",
            "[x\\-]",
            "*\\x41",
            "*\\101",
            "*\\t",
            "[[:alpha:]]",
            "[[:x]",
            "a]",
            // filepath.Match gives up before the bad class; Go's regexp accepts it.
            "a*/[a-]",
            "a/*[a-]",
            "*a*/[a-]",
            "a*[]a]",
        ] {
            assert!(Matcher::new(&[good.to_string()]).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn regexp_escapes_behave_like_go() {
        assert!(excluded(&["*\\x41"], "xA"));
        assert!(excluded(&["*\\101"], "xA"));
        assert!(
            excluded(&["a\\b*"], "a"),
            "\\b is a word boundary: a then end"
        );
        assert!(!excluded(&["a\\bb*"], "ab"));
        assert!(excluded(&["*\\W"], "x-"));
        assert!(excluded(&["[[:^alpha:]]*"], "1a"));
        assert!(!excluded(&["[[:^alpha:]]*"], "a1"));
        // `[*]` becomes the regexp `[[^/]*]`: runs of '[', '^', '/' then a literal ']'.
        assert!(excluded(&["[*]"], "]"));
        assert!(excluded(&["[*]"], "[^]"));
        assert!(!excluded(&["[*]"], "*"));
        // `.` in the translation does not match a newline; classes do.
        assert!(!excluded(&["a/**/b*"], "a/x\ny/b"));
        assert!(excluded(&["a/*/b*"], "a/x\ny/b"));
        assert!(excluded(&["a/**"], "a/x\ny/b"));
    }

    /// The bit-parallel engine and the plain NFA simulation agree, and long patterns (more
    /// than 64 instructions) work.
    #[test]
    fn both_engines_agree() {
        let patterns = [
            "**/*_test.*",
            "a**b",
            "a/**/b*",
            "[^a]?[!b]*",
            "^x*",
            "a\\b*",
            "*\\B*",
            "**/**/*.txt",
            "[[:digit:]]*[[:^alpha:]]",
            "?\u{FFFD}*",
            "*.log",
            "a/*/c*",
            "[*]",
            "x\\Wy*",
            "some/very/long/directory/name/that/goes/on/and/on/and/on/for/ever/*.txt",
        ];
        let paths: &[&[u8]] = &[
            b"",
            b"a",
            b"ab",
            b"axb",
            b"a/b",
            b"a/x/y/b",
            b"a/b.c",
            b"x_test.go",
            b"d/e/x_test",
            b"1a",
            b"a1",
            b"]",
            b"[^]",
            b"x-y",
            b"xWy",
            b"a\xffb",
            b"\xff\xfe",
            b"q\xff",
            b"a/x\ny/b",
            b"f.txt",
            b"d/f.txt",
            b"some/very/long/directory/name/that/goes/on/and/on/and/on/for/ever/x.txt",
            b"some/very/long/directory/name/that/goes/on/and/on/and/on/for/ever/x/y.txt",
            "\u{e9}\u{FFFD}z".as_bytes(),
        ];
        let mut slow_only = 0;
        for pattern in patterns {
            let MatchKind::Regex(program) = compile(pattern).unwrap() else {
                panic!("{pattern:?} is not a regexp pattern");
            };
            for path in paths {
                let (fast, slow) = program.both_engines(path);
                match fast {
                    Some(fast) => assert_eq!(
                        fast,
                        slow,
                        "{pattern:?} on {:?}",
                        String::from_utf8_lossy(path)
                    ),
                    None => slow_only += 1,
                }
                assert_eq!(program.is_match(path), slow);
            }
        }
        assert!(
            slow_only > 0,
            "the long pattern should exceed the bit-parallel limit"
        );
        let long = "some/very/long/directory/name/that/goes/on/and/on/and/on/for/ever/*.txt";
        assert!(excluded(
            &[long],
            "some/very/long/directory/name/that/goes/on/and/on/and/on/for/ever/x.txt"
        ));
        assert!(!excluded(
            &[long],
            "some/very/long/directory/name/that/goes/on/and/on/and/on/for/ever/x/y.tx"
        ));
    }

    #[test]
    fn non_utf8_paths() {
        let m = Matcher::new(&[
            "a?b".to_string(),
            "c*".to_string(),
            "x\u{FFFD}y*".to_string(),
        ])
        .unwrap();
        let root = m.root_state();
        assert_eq!(m.decide(b"a\xffb", false, &root), Decision::Exclude);
        assert_eq!(
            m.decide(b"a\xff\xfeb", false, &root),
            Decision::Include(DirState::default())
        );
        assert_eq!(m.decide(b"c\xff", false, &root), Decision::Exclude);
        // A literal U+FFFD in a regexp pattern matches a stray byte, as in Go.
        assert_eq!(m.decide(b"x\xffy", false, &root), Decision::Exclude);
        // Literal text is compared byte-wise.
        let m = Matcher::new(&["caf\u{e9}".to_string()]).unwrap();
        assert_eq!(
            m.decide(b"caf\xe9", false, &root),
            Decision::Include(DirState::default())
        );
        assert_eq!(
            m.decide("caf\u{e9}".as_bytes(), false, &root),
            Decision::Exclude
        );
        // A whole tree with a non-UTF-8 directory.
        let got = simulate(b"d?\n!d?/keep\n", &[b"d\xff/keep", b"d\xff/drop", b"dx"]).unwrap();
        assert_eq!(got, [b"d\xff/".to_vec(), b"d\xff/keep".to_vec()]);
    }

    #[test]
    fn decisions_and_skipdir() {
        let m = Matcher::new(&["a".into(), "!a/keep".into(), "b".into()]).unwrap();
        let root = m.root_state();
        assert!(matches!(m.decide(b"a", true, &root), Decision::Descend(_)));
        assert_eq!(m.decide(b"b", true, &root), Decision::Exclude);
        assert_eq!(m.decide(b"a", false, &root), Decision::Exclude);
        // "a/keep/" starts with "a/" but not with "ab/".
        let m = Matcher::new(&["a*".into(), "!a/keep".into()]).unwrap();
        assert_eq!(m.decide(b"ab", true, &root), Decision::Exclude);
        // No exceptions at all: excluded directories are never walked.
        let m = Matcher::new(&["*".into()]).unwrap();
        assert_eq!(m.decide(b"x", true, &root), Decision::Exclude);
        // A wildcard exception anywhere: every excluded directory is walked.
        let m = Matcher::new(&["*".into(), "!z/*.md".into()]).unwrap();
        assert!(matches!(m.decide(b"x", true, &root), Decision::Descend(_)));
        // Trailing /* and /** do not count as wildcards for this.
        let m = Matcher::new(&["*".into(), "!z/**".into(), "!y/*".into()]).unwrap();
        assert_eq!(m.decide(b"x", true, &root), Decision::Exclude);
        assert!(matches!(m.decide(b"y", true, &root), Decision::Descend(_)));
        assert!(!m.is_empty() && Matcher::new(&[]).unwrap().is_empty());
        assert!(Matcher::new(&["  ".into()]).unwrap().is_empty());
        assert_eq!(
            Matcher::new(&[]).unwrap().decide(b"x", true, &root),
            Decision::Include(DirState::default())
        );
    }

    #[test]
    fn matcher_is_send_sync() {
        fn check<T: Send + Sync + Clone>() {}
        check::<Matcher>();
        check::<DirState>();
        check::<PatternError>();
    }
}
