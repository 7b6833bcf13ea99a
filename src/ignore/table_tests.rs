use super::*;
use std::collections::BTreeMap;

/// Simulates the walker (fsutil's filterFS.Walk) over a virtual tree: top-down, sorted,
/// `Exclude` skips the subtree, `Descend` walks in and emits the directory only if
/// something below it is emitted. Entries ending in '/' are directories; parents are
/// added implicitly. Returns the emitted paths (directories with a trailing '/'), sorted.
pub(super) fn simulate(ignore: &[u8], tree: &[&[u8]]) -> Result<Vec<Vec<u8>>, PatternError> {
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
        // patternmatcher's escape bitmap drops `|`: `^a|b[^/]*$` is "starts with a" or
        // "ends in b and a name's tail", whole directories included.
        name: "surprise: | after a wildcard is alternation of the whole pattern",
        ignore: "a|b*\n",
        tree: &["a/x", "abc", "xb", "c", "d/bz", "d/c", "a|b"],
        want: Paths(&["c", "d/", "d/c"]),
    },
    Case {
        name: "| without a wildcard is an ordinary character",
        ignore: "a|b\n",
        tree: &["a|b", "a", "b"],
        want: Paths(&["a", "b"]),
    },
    Case {
        name: "surprise: {n} after a wildcard counts, {a,b} is literal",
        ignore: "x{2}*\n*.{md,txt}\n",
        tree: &["xx", "xxy", "x", "x{2}", "a.md", "a.{md,txt}"],
        want: Paths(&["a.md", "x", "x{2}"]),
    },
    Case {
        name: "bad: a count over Go's 1000",
        ignore: "x{1001}*\n",
        tree: &["x"],
        want: Fails,
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
                let mut want: Vec<Vec<u8>> = want.iter().map(|p| p.as_bytes().to_vec()).collect();
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
