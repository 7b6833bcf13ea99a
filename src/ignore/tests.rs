use super::table_tests::simulate;
use super::*;

#[test]
fn parse_like_read_all() {
    // The vector of ignorefile_test.go's TestReadAll, re-expressed.
    let content =
        "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n!\n! ";
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
    assert_eq!(err.problem(), &Problem::NotUtf8 { line: 2 });
    assert!(err.to_string().contains("line 2"), "{err}");
    assert!(!err.to_string().contains('\n'));
    // A comment that is not UTF-8 is still a comment.
    assert_eq!(parse_dockerignore(b"# caf\xe9\nx").unwrap(), ["x"]);
    let long = vec![b'a'; MAX_LINE];
    let err = parse_dockerignore(&long).unwrap_err();
    assert_eq!(err.problem(), &Problem::LineTooLong { line: 1 }, "{err}");
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
        ("*", MatchType::Regex, "^[^/]*$"),
        ("file*", MatchType::Regex, "^file[^/]*$"),
        ("*file", MatchType::Regex, "^[^/]*file$"),
        ("a*/b", MatchType::Regex, "^a[^/]*/b$"),
        ("**", MatchType::Suffix, ""),
        ("**/**", MatchType::Regex, "^(.*/)?.*$"),
        ("dir/**", MatchType::Prefix, ""),
        ("**/dir", MatchType::Suffix, ""),
        ("**/dir2/*", MatchType::Regex, "^(.*/)?dir2/[^/]*$"),
        ("**/dir2/**", MatchType::Regex, "^(.*/)?dir2/.*$"),
        ("**file", MatchType::Suffix, ""),
        ("**/file*txt", MatchType::Regex, "^(.*/)?file[^/]*txt$"),
        ("**/**/*.txt", MatchType::Regex, "^(.*/)?(.*/)?[^/]*\\.txt$"),
        ("a[b-d]e", MatchType::Regex, "^a[b-d]e$"),
        (".*", MatchType::Regex, "^\\.[^/]*$"),
        ("abc.def", MatchType::Exact, ""),
        ("abc?def", MatchType::Regex, "^abc[^/]def$"),
        ("**/foo/bar", MatchType::Suffix, ""),
        ("a(b)c/def", MatchType::Exact, ""),
        ("a.|)$(}+{bc", MatchType::Exact, ""),
        ("[*]", MatchType::Regex, "^[[^/]*]$"),
    ] {
        let (got_kind, got_regex) = translate(pattern);
        assert_eq!(got_kind, kind, "kind of {pattern:?}");
        if kind == MatchType::Regex {
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
    let problem = |p: &str| {
        Matcher::new(&[p.to_string()])
            .unwrap_err()
            .problem()
            .clone()
    };
    assert_eq!(problem("!"), Problem::EmptyException);
    assert!(matches!(problem("["), Problem::Glob(_)));
    assert!(matches!(problem("a*/["), Problem::Regexp(_)));
    assert!(matches!(problem("[z-a]"), Problem::Regexp(_)));
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
        "a|b*",
        "*|",
        "|*",
        "x{2,3}y*",
        "[ab]{2,}*",
        "a/**/b|c",
        "{2}*",
        "?{0}*",
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
        b"xxy",
        b"xxxxy",
        b"aab",
        b"zc",
        b"a/bz",
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
    assert!(!m.patterns.is_empty() && Matcher::new(&[]).unwrap().patterns.is_empty());
    assert!(Matcher::new(&["  ".into()]).unwrap().patterns.is_empty());
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

/// `|` and `{…}`: patternmatcher means to escape them but its escape bitmap only has room
/// for bytes below 64, so in a pattern that becomes a regexp Go reads `|` as alternation of
/// the whole anchored expression and `{n}`, `{n,}`, `{n,m}` as counted repetition; a `{` that
/// does not start a valid count stays literal.
#[test]
fn alternation_and_counted_repetition_like_docker() {
    for (pattern, kind, regex) in [
        ("a|b*", MatchType::Regex, "^a|b[^/]*$"),
        ("x{2}*", MatchType::Regex, "^x{2}[^/]*$"),
        ("*.{md,txt}", MatchType::Regex, "^[^/]*\\.{md,txt}$"),
        ("a\\|b", MatchType::Regex, "^a\\|b$"),
        ("a|b", MatchType::Exact, ""),
        ("x{2}", MatchType::Exact, ""),
        ("**/a|b", MatchType::Suffix, ""),
    ] {
        let (got_kind, got_regex) = translate(pattern);
        assert_eq!(got_kind, kind, "kind of {pattern:?}");
        if kind == MatchType::Regex {
            assert_eq!(got_regex, regex, "regexp of {pattern:?}");
        }
    }
    for (pattern, path, want) in [
        // `^a|b[^/]*$`: anything that starts with `a`, or ends in `b` plus a name's tail.
        ("a|b*", "a", true),
        ("a|b*", "abc", true),
        ("a|b*", "a/deep/file", true),
        ("a|b*", "x/yb", true),
        ("a|b*", "dir/bcd", true),
        ("a|b*", "c", false),
        ("a|b*", "cb/x", true), // through its directory `cb`
        ("a|b*", "c/x", false),
        // An empty alternative matches every path: `$` (or `^`) holds somewhere in any text.
        ("*|", "any/thing", true),
        ("|*", "any/thing", true),
        ("x?|", "y", true),
        // Without a wildcard `|` is an ordinary character.
        ("a|b", "a|b", true),
        ("a|b", "a", false),
        ("a\\|b", "a|b", true),
        ("a\\|b", "a", false),
        ("[|]*", "|x", true),
        ("**/a|b", "d/a|b", true),
        ("**/a|b", "a", false),
        // `^a/(.*/)?b|c$`.
        ("a/**/b|c", "a/x/bz", true),
        ("a/**/b|c", "zc", true),
        ("a/**/b|c", "b", false),
        // Counted repetition.
        ("file{2}*", "filee", true),
        ("file{2}*", "fileex", true),
        ("file{2}*", "file", false),
        ("x{2,}*", "xx", true),
        ("x{2,}*", "x", false),
        ("x{1,2}y*", "xy", true),
        ("x{1,2}y*", "xxy", true),
        ("x{1,2}y*", "xxxy", false),
        ("[0-9]{3}*", "123abc", true),
        ("[0-9]{3}*", "12a", false),
        ("x{0}*", "abc", true),
        ("x{1000}*", &"x".repeat(1000), true),
        ("x{1000}*", &"x".repeat(999), false),
        // `^{2}`: Go repeats the empty `^`, so this is `^[^/]*$`.
        ("{2}*", "abc", true),
        ("{2}*", "{2}abc", true),
        // Not a valid count: the `{` is literal (and `}` always is).
        ("*.{md,txt}", "x.{md,txt}", true),
        ("*.{md,txt}", "x.md", false),
        ("*.{txt}", "a.{txt}", true),
        ("*.{txt}", "a.txt", false),
        ("x{01}*", "x{01}z", true),
        ("x{01}*", "x", false),
        ("x{,2}*", "x{,2}", true),
        ("x{1,2*", "x{1,2", true),
        ("x{1{2}}*", "x{11}", true),
        ("x}*", "x}y", true),
        // `?` is `[^/]`, so `?{2}` is two characters.
        ("x?{2}", "xab", true),
        ("x?{2}", "xa", false),
    ] {
        assert_eq!(excluded(&[pattern], path), want, "{pattern:?} on {path:?}");
    }
    for bad in [
        "x{1001}*",
        "x{0,1001}*",
        "x{2,1}*",
        "x{99999999999}*",
        // Repeating a repetition, or nothing.
        "*{2}",
        "x{2}{3}*",
        "a|{2}*",
        "**/x/**{2}",
        // Counted repetition that expands past the size limit.
        "[^/]{1000}[^/]{1000}[^/]{1000}[^/]{1000}[^/]{1000}[^/]{1000}[^/]{1000}[^/]{1000}\
         [^/]{1000}[^/]{1000}*",
    ] {
        let err = Matcher::new(&[bad.to_string()]).unwrap_err();
        assert!(
            matches!(err.problem(), Problem::Regexp(_)),
            "{bad:?}: {err}"
        );
    }
    for good in ["x{1000}*", "x{0,1000}*", "x{2,2}*", "x{2}?*", "[^/]{1000}*"] {
        assert!(Matcher::new(&[good.to_string()]).is_ok(), "{good:?}");
    }
}

#[test]
fn excludes_decides_directories_first() {
    let m = |patterns: &[&str]| {
        Matcher::new(&patterns.iter().map(|p| p.to_string()).collect::<Vec<_>>()).unwrap()
    };
    assert!(m(&[".*"]).excludes(b".treeseal", false));
    assert!(m(&["*", "!src"]).excludes(b".treeseal", false));
    assert!(!m(&["*", "!src"]).excludes(b"src/x", false));
    assert!(m(&["var"]).excludes(b"var/x/y", false));
    assert!(!m(&["var", "!var/x/y"]).excludes(b"var/x/y", false));
    // `a/b` then `!a`: the exception did not apply to `a/b`'s directory through `a`.
    assert!(m(&["a/b", "!a"]).excludes(b"a/b/c", false));
    // `dir/**` keeps the directory itself.
    assert!(!m(&["dir/**"]).excludes(b"dir", true));
    assert!(m(&["dir/**"]).excludes(b"dir/x", false));
    assert!(!m(&[]).excludes(b"x", false));
}
