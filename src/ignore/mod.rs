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
//! Layout: this file holds the parsing, the translation and the [`Matcher`]; `glob` emulates
//! Go's `filepath.Match` (the up-front syntax check); `goregex` is the Go-regexp subset and
//! its engine; `literal` writes a pattern that stands for one path; `table_tests` pins whole
//! `.dockerignore` files against walks, `tests` the single functions.
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
//! These follow from the upstream code and are pinned by the tests.
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
//! * `|`, `{` and `}` are not escaped either (patternmatcher lists them for escaping, but the
//!   bitmap it keeps them in has room only for bytes below 64). In a pattern that has a
//!   wildcard, `|` is alternation over the *whole* anchored expression: `a|b*` becomes
//!   `^a|b[^/]*$` and excludes every path that starts with `a` or ends in a name part that
//!   starts with `b`; `*|` and `|*` exclude everything (an empty alternative matches any
//!   path). `{n}`, `{n,}` and `{n,m}` after a character, class or `?` are Go's counted
//!   repetition (counts up to 1000, no leading zeros): `x{2}*` matches `xx…`, not `x{2}…`.
//!   A `{` that does not start such a count is literal (`*.{md,txt}` matches `a.{md,txt}`,
//!   not `a.md`), and `}` always is. A count after another repetition (`*{2}`) or after
//!   `|` is an error, as in Go. Without a wildcard (`a|b`, `x{2}`) all three are plain
//!   characters; `\|`, `\{` escape them.
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
//! * A pattern whose counted repetitions expand to more than 10,000 matching steps (say,
//!   eleven `[^/]{1000}`) is refused; Go's limit is about three million. It keeps every
//!   pattern, including those in a manifest, cheap to match.
//! * Unix semantics only: on a Windows client `\` is a path separator, not an escape.
//!
//! The legacy builder (`DOCKER_BUILDKIT=0`) parses and matches the same way but walks
//! differently: it skips an excluded directory unless an exception *starts with* its path,
//! even when an exception with a wildcard (`!**/*.md`) would re-include something inside it.
//! BuildKit walks into it; this module follows BuildKit.

use std::fmt;

mod glob;
mod goregex;
mod literal;
#[cfg(test)]
mod table_tests;
#[cfg(test)]
mod tests;

use glob::check_glob_syntax;
pub use literal::literal_pattern;

/// Error for a bad pattern or ignore file; its `Display` is one line a user can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    pattern: String,
    problem: Problem,
}

/// What is wrong with a pattern or a line of an ignore file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Line `line` (from 1) is 64 KiB or longer: Docker's reader fails with "token too long".
    LineTooLong {
        /// The line number.
        line: usize,
    },
    /// Line `line` (from 1) is not a comment and not UTF-8 (treeseal only reads UTF-8
    /// patterns).
    NotUtf8 {
        /// The line number.
        line: usize,
    },
    /// A lone `!`: an exception without a path.
    EmptyException,
    /// Go's `filepath.Match` rejects the pattern (`ErrBadPattern`): the reason given.
    Glob(&'static str),
    /// Go's `regexp` rejects the pattern's regular-expression translation, so Docker fails
    /// the build on it: the reason given.
    Regexp(String),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::LineTooLong { line } => write!(
                f,
                "line {line} is 64 KiB or longer (Docker's reader fails with \"token too long\")"
            ),
            Problem::NotUtf8 { line } => write!(
                f,
                "line {line} is not valid UTF-8 (treeseal only accepts UTF-8 patterns)"
            ),
            Problem::EmptyException => f.write_str("an exception needs a path after the `!`"),
            Problem::Glob(reason) => write!(f, "syntax error in pattern: {reason}"),
            Problem::Regexp(reason) => write!(
                f,
                "Docker's regular-expression translation of this pattern is invalid \
                 ({reason}), so Docker fails the build on it"
            ),
        }
    }
}

impl PatternError {
    fn new(pattern: impl Into<String>, problem: Problem) -> Self {
        PatternError {
            pattern: pattern.into(),
            problem,
        }
    }

    /// The offending pattern, or line, as written (lossily decoded if it was not UTF-8).
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Why it was rejected.
    pub fn problem(&self) -> &Problem {
        &self.problem
    }
}

impl fmt::Display for PatternError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `{:?}` keeps the message on one line whatever the pattern holds.
        write!(f, "bad ignore pattern {:?}: {}", self.pattern, self.problem)
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
                Problem::LineTooLong { line: number },
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
                Problem::NotUtf8 { line: number },
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
                        Problem::EmptyException,
                    ))
                }
                Some(rest) => (true, rest),
                None => (false, cleaned.as_str()),
            };
            check_glob_syntax(body.as_bytes())
                .map_err(|reason| PatternError::new(original.as_str(), Problem::Glob(reason)))?;
            let how = compile(body)
                .map_err(|reason| PatternError::new(original.as_str(), Problem::Regexp(reason)))?;
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

    /// Whether `path` is left out of the tree, deciding its directories top-down as the
    /// walker does (an excluded directory's contents are excluded unless an exception
    /// re-includes them). `is_dir` is whether `path` itself is a directory.
    pub fn excludes(&self, path: &[u8], is_dir: bool) -> bool {
        let mut state = self.root_state();
        for dir in ancestors(path) {
            match self.decide(dir, true, &state) {
                Decision::Exclude => return true,
                Decision::Include(next) | Decision::Descend(next) => state = next,
            }
        }
        !matches!(self.decide(path, is_dir, &state), Decision::Include(_))
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

/// Which of patternmatcher's match types a pattern compiles to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MatchType {
    Exact,
    Prefix,
    Suffix,
    Regex,
}

/// patternmatcher's `Pattern.compile` translation: the match type and, for
/// [`MatchType::Regex`], the Go regular expression (already with its `^` and `$`).
fn translate(pattern: &str) -> (MatchType, String) {
    let mut chars = pattern.chars().peekable();
    // Go's text/scanner skips a byte-order mark at the very start.
    chars.next_if_eq(&'\u{FEFF}');
    let mut regex = String::from("^");
    let mut kind = MatchType::Exact;
    let mut first = true;
    while let Some(ch) = chars.next() {
        match ch {
            '*' if chars.next_if_eq(&'*').is_some() => {
                // `**`, possibly `**/`: any number of directories.
                chars.next_if_eq(&'/');
                if chars.peek().is_none() {
                    if kind == MatchType::Exact {
                        kind = MatchType::Prefix;
                    } else {
                        regex.push_str(".*");
                        kind = MatchType::Regex;
                    }
                } else {
                    regex.push_str("(.*/)?");
                    kind = MatchType::Regex;
                }
                if first {
                    kind = MatchType::Suffix;
                }
            }
            '*' => {
                regex.push_str("[^/]*");
                kind = MatchType::Regex;
            }
            '?' => {
                regex.push_str("[^/]");
                kind = MatchType::Regex;
            }
            // patternmatcher's `shouldEscape` set is `.+()|{}$`, but its bitmap drops every
            // byte >= 64, so `|`, `{` and `}` are passed to the regexp unescaped.
            '.' | '+' | '(' | ')' | '$' => {
                regex.push('\\');
                regex.push(ch);
            }
            '\\' => match chars.next() {
                Some(next) => {
                    regex.push('\\');
                    regex.push(next);
                    kind = MatchType::Regex;
                }
                None => regex.push('\\'),
            },
            '[' | ']' => {
                regex.push(ch);
                kind = MatchType::Regex;
            }
            _ => regex.push(ch),
        }
        first = false;
    }
    if kind == MatchType::Regex {
        regex.push('$');
    }
    (kind, regex)
}

/// Compile a pattern (without its `!`) into what [`Pattern::matches`] runs.
fn compile(pattern: &str) -> Result<MatchKind, String> {
    let bytes = pattern.as_bytes();
    Ok(match translate(pattern) {
        (MatchType::Exact, _) => MatchKind::Exact(bytes.to_vec()),
        // Upstream slices bytes: drop the trailing `**` / the leading `**`.
        (MatchType::Prefix, _) => MatchKind::Prefix(bytes[..bytes.len() - 2].to_vec()),
        (MatchType::Suffix, _) => MatchKind::Suffix(bytes[2..].to_vec()),
        (MatchType::Regex, regex) => MatchKind::Regex(goregex::Program::new(&regex)?),
    })
}
