//! Fuzz target: `.dockerignore` parsing, compiling and matching on hostile bytes.
//!
//! Errors are fine, panics are bugs. The input is parsed as a `.dockerignore` file; if it
//! parses, the patterns are compiled; if they compile, the matcher decides a few paths
//! derived from the input itself (each line, and each line's second half, read as a path)
//! and a few fixed ones, top-down as the walker does, as directories and as files.
//!
//! Invariants checked besides "no panic, no hang":
//! - every error message is one line;
//! - a file is never `Descend`ed into, and a file's `Include` carries no state;
//! - `Matcher::excludes` (used for `--allow-extra` and lock's manifest check) agrees with
//!   the top-down walk;
//! - `literal_pattern` of each derived path (when UTF-8) compiles and excludes that path,
//!   as a pattern and as a `.dockerignore` line, and nothing else of the paths tried.
#![no_main]

use libfuzzer_sys::fuzz_target;
use treeseal::ignore::{literal_pattern, parse_dockerignore, Decision, DirState, Matcher};

const FIXED: &[&[u8]] = &[
    b"a",
    b"a/b",
    b"a/b/c.txt",
    b"node_modules/pkg/index.js",
    b".git/HEAD",
    b"src/main.rs",
    b"app/__pycache__/x.cpython-311.pyc",
    b"Dockerfile",
    b".dockerignore",
    b"caf\xe9/\xff\xfe",
    b"line\nbreak/x",
    b"**/x",
];

/// A walker-shaped path: `/`-separated, no empty, `.` or `..` components.
fn as_path(raw: &[u8]) -> Option<Vec<u8>> {
    let parts: Vec<&[u8]> = raw
        .split(|&c| c == b'/')
        .filter(|p| !p.is_empty() && *p != b"." && *p != b".." && !p.contains(&0))
        .take(16)
        .collect();
    (!parts.is_empty()).then(|| parts.join(&b'/'))
}

/// Decides `path` top-down (every ancestor as a directory), as the walker would; `None`
/// when an ancestor is excluded outright (the walker never gets to the path).
fn walk_decide(m: &Matcher, path: &[u8], is_dir: bool) -> Option<Decision> {
    let mut state = m.root_state();
    let mut start = 0;
    while let Some(slash) = path[start..].iter().position(|&c| c == b'/') {
        let end = start + slash;
        match m.decide(&path[..end], true, &state) {
            Decision::Exclude => return None,
            Decision::Include(s) | Decision::Descend(s) => state = s,
        }
        start = end + 1;
    }
    let d = m.decide(path, is_dir, &state);
    if !is_dir {
        match &d {
            Decision::Descend(_) => panic!("a file was descended into"),
            Decision::Include(s) => assert_eq!(*s, DirState::default(), "file with state"),
            Decision::Exclude => {}
        }
    }
    Some(d)
}

fn check_path(m: &Matcher, path: &[u8]) {
    for is_dir in [false, true] {
        let walked = walk_decide(m, path, is_dir);
        let included = matches!(walked, Some(Decision::Include(_)));
        assert_eq!(
            m.excludes(path, is_dir),
            !included,
            "Matcher::excludes disagrees with the walk for {:?}",
            String::from_utf8_lossy(path)
        );
    }
}

/// The literal pattern of `path` excludes `path` and none of `others`.
fn check_literal(path: &[u8], others: &[Vec<u8>]) {
    let Ok(text) = std::str::from_utf8(path) else {
        return;
    };
    let pattern = literal_pattern(text);
    let from_file = parse_dockerignore(pattern.as_bytes())
        .unwrap_or_else(|e| panic!("literal {pattern:?} of {text:?} does not parse: {e}"));
    for patterns in [vec![pattern.clone()], from_file] {
        let m = Matcher::new(&patterns)
            .unwrap_or_else(|e| panic!("literal {pattern:?} of {text:?}: {e}"));
        assert!(
            m.excludes(path, false),
            "literal {pattern:?} misses {text:?}"
        );
        for other in others {
            // Below the path itself counts as excluded too (a directory's contents).
            let below = other.starts_with(path) && other.get(path.len()) == Some(&b'/');
            // A U+FFFD in a regexp also matches a stray byte (Go's decoding, Docker's too).
            let stray = text.contains('\u{FFFD}') && std::str::from_utf8(other).is_err();
            if other.as_slice() != path && !below && !stray {
                assert!(
                    !m.excludes(other, false),
                    "literal {pattern:?} of {text:?} also excludes {:?}",
                    String::from_utf8_lossy(other)
                );
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut derived: Vec<Vec<u8>> = FIXED.iter().map(|p| p.to_vec()).collect();
    for line in data.split(|&c| c == b'\n').take(8) {
        derived.extend(as_path(line));
    }
    for path in &derived {
        check_literal(path, &derived);
    }
    let patterns = match parse_dockerignore(data) {
        Ok(p) => p,
        Err(e) => {
            assert!(!e.to_string().contains('\n'), "multi-line error: {e}");
            return;
        }
    };
    let matcher = match Matcher::new(&patterns) {
        Ok(m) => m,
        Err(e) => {
            assert!(!e.to_string().contains('\n'), "multi-line error: {e}");
            return;
        }
    };
    for path in FIXED {
        check_path(&matcher, path);
    }
    for line in data.split(|&c| c == b'\n').take(8) {
        let line = line.strip_prefix(b"!").unwrap_or(line);
        if let Some(p) = as_path(line) {
            check_path(&matcher, &p);
        }
        if let Some(p) = as_path(&line[line.len() / 2..]) {
            check_path(&matcher, &p);
        }
    }
});
