//! The real binary on real temporary trees: lock, digest, verify, show, diff.

mod common;

use std::fs;

use common::{lock, ts, verify, Tree};

#[test]
fn lock_prints_one_digest_line_and_verify_passes() {
    let t = Tree::sample();
    let digest = lock(t.path());
    assert!(
        digest.starts_with("blake3:") && digest.len() == 71,
        "{digest}"
    );
    assert!(digest[7..]
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    assert!(t.at(".treeseal").is_file());
    let r = verify(t.path(), &[]);
    r.code(0);
    assert!(r.line().starts_with(&format!("treeseal: ok {digest} (")));
    verify(t.path(), &["--quiet"]).code(0);
    assert_eq!(verify(t.path(), &["--quiet"]).stderr, "");
}

#[test]
fn digest_matches_lock_and_writes_nothing() {
    let t = Tree::sample();
    let r = ts(["digest".as_ref(), t.path().as_os_str()]);
    r.code(0);
    assert!(!t.at(".treeseal").exists());
    assert_eq!(r.stdout.trim(), lock(t.path()));
}

#[test]
fn lock_is_deterministic_across_thread_counts() {
    let t = Tree::sample();
    for i in 0..50 {
        t.file(format!("many/{i:03}.txt"), format!("{i}").repeat(i * 100));
    }
    let mut seen = None;
    for threads in ["1", "2", "8"] {
        let out = t.path().join(format!("../{threads}.seal"));
        let r = ts([
            "lock".as_ref(),
            t.path().as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
            "--threads".as_ref(),
            threads.as_ref(),
        ]);
        r.code(0);
        let bytes = fs::read(&out).unwrap();
        fs::remove_file(&out).unwrap();
        match &seen {
            None => seen = Some((r.stdout.clone(), bytes)),
            Some((digest, first)) => {
                assert_eq!(&r.stdout, digest, "digest with {threads} threads");
                assert!(*first == bytes, "manifest bytes with {threads} threads");
            }
        }
    }
}

/// Locks the sample tree, applies `change`, and returns verify's one stderr line.
fn first_difference(change: impl FnOnce(&Tree), extra: &[&str]) -> String {
    let t = Tree::sample();
    ts([
        "lock".as_ref(),
        t.path().as_os_str(),
        "--modes".as_ref(),
        extra.first().copied().unwrap_or("exec").as_ref(),
    ])
    .code(0);
    change(&t);
    let r = verify(t.path(), &[]);
    r.code(1);
    r.line().to_string()
}

#[test]
fn every_kind_of_difference_is_named() {
    type Change = Box<dyn FnOnce(&Tree)>;
    let cases: Vec<(Change, &str)> = vec![
        (
            Box::new(|t| {
                t.file("app/settings.py", "AWS_REGION = 'eu-west-1'\n");
            }),
            "treeseal: content differs: app/settings.py (same size)",
        ),
        (
            Box::new(|t| {
                t.file("app/settings.py", "");
            }),
            "treeseal: content differs: app/settings.py (size 25 -> 0 bytes)",
        ),
        (
            Box::new(|t| {
                t.remove("app/views.py");
            }),
            "treeseal: missing file: app/views.py",
        ),
        (
            Box::new(|t| {
                t.remove("app");
            }),
            "treeseal: missing dir: app and 3 entries below it",
        ),
        (
            Box::new(|t| {
                t.file("app/new.py", "x");
            }),
            "treeseal: extra file: app/new.py",
        ),
        (
            Box::new(|t| {
                t.file("zz/a", "").file("zz/b", "");
            }),
            "treeseal: extra dir: zz and 2 entries below it",
        ),
        (
            Box::new(|t| {
                t.remove("README").dir("README");
            }),
            "treeseal: type changed: README (expected file, found dir)",
        ),
        (
            Box::new(|t| {
                t.remove("README").symlink("README", "app/views.py");
            }),
            "treeseal: type changed: README (expected file, found symlink)",
        ),
        (
            Box::new(|t| {
                t.chmod("bin/start", 0o644);
            }),
            "treeseal: exec bit removed: bin/start",
        ),
        (
            Box::new(|t| {
                t.chmod("README", 0o744);
            }),
            "treeseal: exec bit added: README",
        ),
        (
            Box::new(|t| {
                t.remove("current").symlink("current", "bin");
            }),
            "treeseal: symlink target changed: current (app -> bin)",
        ),
        (
            Box::new(|t| {
                t.remove("var/empty");
            }),
            "treeseal: missing dir: var/empty",
        ),
    ];
    for (change, want) in cases {
        assert_eq!(first_difference(change, &[]), want);
    }
}

#[test]
fn group_write_bits_count_only_with_modes_full() {
    let t = Tree::sample();
    lock(t.path());
    t.chmod("README", 0o664);
    verify(t.path(), &[]).code(0);
    let line = first_difference(
        |t| {
            t.chmod("README", 0o664);
        },
        &["full"],
    );
    assert_eq!(line, "treeseal: mode changed: README (0644 -> 0664)");
}

#[test]
fn the_first_difference_is_the_same_for_every_thread_count() {
    let t = Tree::new();
    for i in 0..400 {
        t.file(format!("d{:02}/f{i:03}", i % 17), vec![b'x'; 1000 + i]);
    }
    lock(t.path());
    // Same-size changes, so each one needs hashing; several threads race for them.
    for i in (7..400).step_by(37) {
        t.file(format!("d{:02}/f{i:03}", i % 17), vec![b'y'; 1000 + i]);
    }
    let mut lines = Vec::new();
    for threads in ["1", "2", "8", "8", "8"] {
        let r = verify(t.path(), &["--threads", threads]);
        r.code(1);
        lines.push(r.line().to_string());
    }
    assert!(lines.iter().all(|l| l == &lines[0]), "{lines:#?}");
    assert!(
        lines[0].starts_with("treeseal: content differs: d00/f"),
        "{}",
        lines[0]
    );
    let all = verify(t.path(), &["--all", "--threads", "8"]);
    all.code(1);
    assert_eq!(all.stderr.lines().count(), 11 + 1, "{}", all.stderr);
}

#[test]
fn verify_all_lists_every_difference_in_path_order() {
    let t = Tree::sample();
    lock(t.path());
    t.file("README", "changed\n")
        .remove("app/views.py")
        .file("extra", "");
    let r = verify(t.path(), &["--all"]);
    r.code(1);
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(
        lines,
        [
            "content differs: README (size 6 -> 8 bytes)",
            "missing file: app/views.py",
            "extra file: extra",
            &format!(
                "treeseal: 3 differences from {}",
                t.at(".treeseal").display()
            ),
        ]
    );
}

#[test]
fn digest_flag_catches_a_manifest_from_another_tree() {
    let t = Tree::sample();
    let old = lock(t.path());
    t.file("app/settings.py", "AWS_REGION = 'eu-west-1'\n");
    let new = lock(t.path());
    assert_ne!(old, new);
    verify(t.path(), &["--digest", &new]).code(0);
    let r = verify(t.path(), &["--digest", &old]);
    r.code(1);
    let line = r.line();
    assert!(
        line.contains(&format!("the manifest is {new}, expected {old}")),
        "{line}"
    );
    assert!(
        line.contains("commit 0e421ef at 2023-11-14T22:13:20Z"),
        "{line}"
    );
}

#[test]
fn exit_code_2_when_the_check_cannot_be_made() {
    let t = Tree::sample();
    let r = verify(t.path(), &[]);
    r.code(2);
    assert!(
        r.line().starts_with("treeseal: no manifest at "),
        "{}",
        r.stderr
    );

    fs::write(t.at(".treeseal"), b"TREESEAL garbage").unwrap();
    let r = verify(t.path(), &[]);
    r.code(2);
    assert!(r.line().contains("is corrupt: truncated"), "{}", r.stderr);

    fs::write(t.at(".treeseal"), b"#!/bin/sh\n").unwrap();
    assert!(verify(t.path(), &[]).code(2).line().contains("wrong magic"));

    lock(t.path());
    let mut bytes = fs::read(t.at(".treeseal")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(t.at(".treeseal"), &bytes).unwrap();
    assert!(verify(t.path(), &[])
        .code(2)
        .line()
        .contains("checksum mismatch"));

    let missing = t.at("nope");
    let r = ts(["lock".as_ref(), missing.as_os_str()]);
    r.code(2);
    assert!(r.line().ends_with("does not exist"), "{}", r.stderr);

    let r = verify(t.path(), &["--digest", "sha256:abc"]);
    r.code(2);
    assert!(r.line().contains("is not a digest of the form blake3:"));

    let r = ts(["verify", "--no-such-flag"]);
    r.code(2);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    let r = ts(["frobnicate"]);
    r.code(2);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
}

#[test]
fn an_empty_root_never_passes() {
    let t = Tree::sample();
    let manifest = t.path().join("../sample.seal");
    ts([
        "lock".as_ref(),
        t.path().as_os_str(),
        "-o".as_ref(),
        manifest.as_os_str(),
    ])
    .code(0);
    let empty = Tree::new();
    let r = ts([
        "verify".as_ref(),
        empty.path().as_os_str(),
        "--manifest".as_ref(),
        manifest.as_os_str(),
    ]);
    fs::remove_file(&manifest).unwrap();
    r.code(1);
    assert_eq!(
        r.line(),
        "treeseal: missing file: README (+4 more; --all lists every one)"
    );
}

#[test]
fn non_utf8_names_and_a_fifo_work_without_hanging() {
    let t = Tree::new();
    t.file(b"caf\xe9.txt", "latin-1 name")
        .file("line\nbreak", "x")
        .fifo("pipe");
    lock(t.path());
    verify(t.path(), &[]).code(0);
    let show = ts(["show".as_ref(), t.at(".treeseal").as_os_str()]);
    show.code(0);
    let lines: Vec<&str> = show.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "files only: {lines:?}");
    assert!(
        lines[0].starts_with('\\') && lines[0].ends_with("  caf\\xe9.txt"),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with('\\') && lines[1].ends_with("  line\\nbreak"),
        "{lines:?}"
    );
    t.file(b"caf\xe9.txt", "changed name");
    let r = verify(t.path(), &[]);
    r.code(1);
    assert_eq!(
        r.line(),
        "treeseal: content differs: caf\\xe9.txt (same size)"
    );
    t.remove("pipe").file("pipe", "");
    assert_eq!(
        verify(t.path(), &[]).code(1).stderr.lines().next().unwrap(),
        "treeseal: content differs: caf\\xe9.txt (same size) (+ at least 1 more; --all lists every one)"
    );
}

#[test]
fn show_json_lists_every_entry() {
    let t = Tree::sample();
    lock(t.path());
    let r = ts([
        "show".as_ref(),
        t.at(".treeseal").as_os_str(),
        "--json".as_ref(),
    ]);
    r.code(0);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 10, "{}", r.stdout);
    let readme = blake3::hash(b"hello\n").to_hex();
    assert_eq!(
        lines[0],
        format!(r#"{{"path":"README","kind":"file","size":6,"mode":"0644","hash":"{readme}"}}"#)
    );
    assert!(lines
        .contains(&r#"{"path":"current","kind":"symlink","size":3,"mode":"0777","target":"app"}"#));
    assert!(lines.contains(&r#"{"path":"var/empty","kind":"dir","size":0,"mode":"0755"}"#));
}

#[test]
fn manifest_written_inside_the_tree_is_not_part_of_it() {
    let t = Tree::sample();
    let out = t.at("seals/app.seal");
    fs::create_dir_all(out.parent().unwrap()).unwrap();
    let r = ts([
        "lock".as_ref(),
        t.path().as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    r.code(0);
    let r = ts([
        "verify".as_ref(),
        t.path().as_os_str(),
        "--manifest".as_ref(),
        out.as_os_str(),
    ]);
    // The `seals` directory itself is part of the tree (it existed before the lock).
    r.code(0);
    fs::write(t.at("seals/other"), "x").unwrap();
    let r = ts([
        "verify".as_ref(),
        t.path().as_os_str(),
        "--manifest".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(r.code(1).line(), "treeseal: extra file: seals/other");
}

/// The digest definition, pinned: a fixed tree whose digest is written here. If this test
/// fails, every digest users have recorded would change: that is a format break.
#[test]
fn golden_digest() {
    let t = Tree::new();
    t.file("a.txt", "hello\n")
        .file("bin/run", "#!/bin/sh\n")
        .chmod("bin/run", 0o755)
        .dir("empty")
        .symlink("link", "a.txt");
    let digest = lock(t.path());
    assert_eq!(
        digest,
        "blake3:ae5c9b1e95fb75c8cbd580797c9d2aa96efa8d519243256ba72074b92136559e"
    );
    assert_eq!(digest, format!("blake3:{}", independent_digest()));
}

/// The digest of the golden tree computed from the written definition in docs/FORMAT.md,
/// independently of the library.
fn independent_digest() -> String {
    let mut h = blake3::Hasher::new();
    let bytes = |h: &mut blake3::Hasher, b: &[u8]| {
        h.update(&(b.len() as u64).to_le_bytes());
        h.update(b);
    };
    h.update(b"treeseal tree digest v1\0");
    h.update(&[0]); // mode policy: exec
    h.update(&0u64.to_le_bytes()); // no patterns
    h.update(&5u64.to_le_bytes()); // five entries
    let file = |h: &mut blake3::Hasher, path: &[u8], exec: u32, content: &[u8]| {
        bytes(h, path);
        h.update(&[1]);
        h.update(&exec.to_le_bytes());
        h.update(&(content.len() as u64).to_le_bytes());
        h.update(blake3::hash(content).as_bytes());
    };
    file(&mut h, b"a.txt", 0, b"hello\n");
    bytes(&mut h, b"bin");
    h.update(&[2]);
    h.update(&0u32.to_le_bytes());
    file(&mut h, b"bin/run", 0o100, b"#!/bin/sh\n");
    bytes(&mut h, b"empty");
    h.update(&[2]);
    h.update(&0u32.to_le_bytes());
    bytes(&mut h, b"link");
    h.update(&[3]);
    h.update(&0u32.to_le_bytes());
    bytes(&mut h, b"a.txt");
    h.finalize().to_hex().to_string()
}

#[test]
fn diff_names_mode_and_git_differences_between_two_checkouts() {
    let a = Tree::sample();
    let b = Tree::sample();
    for f in [
        "README",
        "app/__init__.py",
        "app/settings.py",
        "app/views.py",
    ] {
        b.chmod(f, 0o664);
    }
    for i in 0..3 {
        b.file(format!(".git/objects/{i}"), "blob");
    }
    let r = ts(["diff".as_ref(), a.path().as_os_str(), b.path().as_os_str()]);
    r.code(1);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(
        lines[..6],
        [
            "added     dir     .git/ (and 4 entries below)",
            "mode      0644 -> 0664 README; not sealed under --modes exec, but the build cache sees it",
            "mode      0644 -> 0664 app/__init__.py; not sealed under --modes exec, but the build cache sees it",
            "mode      0644 -> 0664 app/settings.py; not sealed under --modes exec, but the build cache sees it",
            "mode      0644 -> 0664 app/views.py; not sealed under --modes exec, but the build cache sees it",
            lines[5],
        ]
    );
    assert!(
        lines[5].starts_with("summary: 5 added, 0 removed, 4 changed; digests differ: A blake3:"),
        "{}",
        lines[5]
    );

    // A manifest against a directory: the directory is walked under the manifest's rules.
    fs::write(a.at(".dockerignore"), ".git\n").unwrap();
    lock(a.path());
    let r = ts([
        "diff".as_ref(),
        a.at(".treeseal").as_os_str(),
        b.path().as_os_str(),
    ]);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[0], "removed   file    .dockerignore");
    assert!(!r.stdout.contains(".git/"), "{}", r.stdout);
    let same = ts([
        "diff".as_ref(),
        a.at(".treeseal").as_os_str(),
        a.path().as_os_str(),
    ]);
    same.code(0);
    assert!(same
        .stdout
        .starts_with("summary: 0 added, 0 removed, 0 changed; same digest blake3:"));
}

#[test]
fn version_names_the_source_commit() {
    let r = ts(["--version"]);
    r.code(0);
    assert!(
        r.stdout
            .starts_with(&format!("treeseal {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{}",
        r.stdout
    );
}

/// The paths `show --json` lists for the manifest at `path`.
fn listed(path: &std::path::Path) -> Vec<String> {
    let r = ts(["show".as_ref(), path.as_os_str(), "--json".as_ref()]);
    r.code(0);
    r.stdout
        .lines()
        .map(|l| l.split('"').nth(3).unwrap().to_string())
        .collect()
}

#[test]
fn dockerignore_rules_are_dockers_not_gitignores() {
    let t = Tree::new();
    t.file(
        ".dockerignore",
        "# a comment, only in column 0\n \
         #x\n\
         \x20 node_modules  \n\
         build/\n\
         **/*.pyc\n\
         !keep.pyc\n\
         /secret.txt\n\
         docs/**\n\
         vendor\n\
         !vendor/keep/me.txt\n\
         ./tmp/../cache\n",
    )
    .file("app.py", "")
    .file("secret.txt", "")
    .file("a/secret.txt", "")
    .file("node_modules/x.js", "")
    .file("build", "a file named build")
    .file("src/build/out.o", "")
    .file("src/m.pyc", "")
    .file("keep.pyc", "")
    .file("docs/a.md", "")
    .file("docs/sub/b.md", "")
    .file("vendor/lib.js", "")
    .file("vendor/keep/me.txt", "")
    .file("#x", "")
    .file("cache/c", "");
    lock(t.path());
    assert_eq!(
        listed(&t.at(".treeseal")),
        [
            ".dockerignore",
            "a",            // `secret.txt` patterns are anchored at the root:
            "a/secret.txt", // a/secret.txt stays
            "app.py",
            "docs",     // docs/** leaves an empty docs/
            "keep.pyc", // the last matching pattern wins
            "src",
            "src/build", // `build/` is anchored too, and its `/` is not "dirs only":
            "src/build/out.o",
            "vendor",      // an exception re-includes below an excluded directory,
            "vendor/keep", // whose parents come back with it
            "vendor/keep/me.txt",
        ]
    );

    // Another ignore file replaces the root one; --exclude adds rules; --no-dockerignore.
    let other = t.path().join("../Dockerfile.dockerignore");
    fs::write(&other, "*\n!app.py\n").unwrap();
    let out = t.path().join("../other.seal");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "lock".as_ref(),
            t.path().as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
        ];
        args.extend(extra.iter().map(|s| std::ffi::OsStr::new(*s)));
        ts(args).code(0);
        listed(&out)
    };
    assert_eq!(
        run(&["--dockerignore", other.to_str().unwrap()]),
        ["app.py"]
    );
    assert_eq!(
        run(&[
            "--no-dockerignore",
            "--exclude",
            "**",
            "--exclude",
            "!keep.pyc"
        ]),
        ["keep.pyc"]
    );
    fs::remove_file(&other).unwrap();
    fs::remove_file(&out).unwrap();

    // Verify applies the recorded rules: excluded paths are neither hashed nor reported.
    t.file("node_modules/new.js", "x").file("docs/c.md", "x");
    verify(t.path(), &[]).code(0);
    t.file("vendor/keep/me.txt", "changed");
    assert_eq!(
        verify(t.path(), &[]).code(1).line(),
        "treeseal: content differs: vendor/keep/me.txt (size 0 -> 7 bytes)"
    );
}

/// Runs treeseal with its standard output a pipe whose reader is already gone.
fn with_closed_stdout(args: &[&std::ffi::OsStr]) -> common::Run {
    let (read, write) = nix::unistd::pipe().unwrap();
    drop(read);
    let out = common::cmd()
        .args(args)
        .stdout(std::process::Stdio::from(write))
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    common::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::new(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn a_closed_stdout_is_a_quiet_141_not_an_abort() {
    let t = Tree::sample();
    lock(t.path());
    let seal = t.at(".treeseal");
    let other = Tree::sample();
    other.file("README", "changed\n");
    let o = |s: &'static str| std::ffi::OsStr::new(s);
    let out = Tree::new();
    let m = out.at("m");
    #[allow(unused_mut)]
    let mut cases = vec![
        vec![o("digest"), t.path().as_os_str()],
        vec![o("lock"), t.path().as_os_str(), o("-o"), m.as_os_str()],
        vec![o("show"), seal.as_os_str()],
        vec![o("show"), o("--json"), seal.as_os_str()],
        vec![o("diff"), t.path().as_os_str(), other.path().as_os_str()],
    ];
    // `image show` and `image diff` read manifests and directories as well as images.
    #[cfg(feature = "image")]
    cases.extend([
        vec![o("image"), o("show"), seal.as_os_str()],
        vec![o("image"), o("show"), o("--json"), seal.as_os_str()],
        vec![
            o("image"),
            o("diff"),
            t.path().as_os_str(),
            other.path().as_os_str(),
        ],
    ]);
    for args in cases {
        let r = with_closed_stdout(&args);
        assert_eq!(r.code, 141, "{args:?}: {}", r.stderr);
        assert!(
            !r.stderr.contains("internal error"),
            "{args:?}: {}",
            r.stderr
        );
    }
}

#[test]
fn a_missing_argument_is_named() {
    for (args, want) in [
        (&["run"][..], "treeseal: run: no command after -- "),
        (&["run", "--"][..], "treeseal: run: no command after -- "),
        (
            &["diff", "d"][..],
            "treeseal: diff: needs two trees, A and B ",
        ),
        (&["show"][..], "treeseal: show: missing <FILE> "),
    ] {
        let r = ts(args);
        r.code(2);
        assert!(r.line().starts_with(want), "{args:?}: {}", r.stderr);
    }
}

#[test]
fn dir_must_be_a_directory() {
    let t = Tree::sample();
    for sub in ["lock", "verify", "digest"] {
        let r = ts([std::ffi::OsStr::new(sub), t.at("README").as_os_str()]);
        r.code(2);
        assert!(
            r.line().ends_with(
                "is not a directory (DIR must be a directory: the tree, not a file in it)"
            ),
            "{sub}: {}",
            r.stderr
        );
    }
}

#[test]
fn counts_agree_in_number() {
    let t = Tree::new();
    t.file("only", "x");
    let r = ts([std::ffi::OsStr::new("lock"), t.path().as_os_str()]);
    r.code(0);
    assert!(
        r.line()
            .starts_with("treeseal: locked 1 entry (1 file, 1 B) in "),
        "{}",
        r.stderr
    );
}

#[test]
fn threads_is_offered_only_where_it_is_used_and_help_lists_exit_codes() {
    let t = Tree::sample();
    lock(t.path());
    let r = ts([
        std::ffi::OsStr::new("show"),
        std::ffi::OsStr::new("--threads"),
        std::ffi::OsStr::new("2"),
        t.at(".treeseal").as_os_str(),
    ]);
    r.code(2);
    assert!(r.line().contains("--threads"), "{}", r.stderr);
    let r = ts(["show", "--help"]);
    r.code(0);
    assert!(!r.stdout.contains("--threads"), "{}", r.stdout);
    let r = ts(["--help"]);
    r.code(0);
    assert!(r.stdout.contains("Exit codes:\n  0 "), "{}", r.stdout);
    assert!(r.stdout.contains("\n  141  "), "{}", r.stdout);
}

/// A manifest written inside the tree under a name that reads as a pattern (`!x` is an
/// exception, `#x` a comment, spaces at the ends are trimmed, `*` `[` `\` `|` are syntax)
/// excludes exactly that file: the manifest is not an extra file, and the look-alike
/// `seal` beside it is still sealed.
#[test]
fn a_manifest_name_that_looks_like_a_pattern_excludes_only_itself() {
    for name in [
        "!seal", "#seal", " seal", "seal ", "*", "*seal", "[", "\\", "a|b*", "{1}*",
    ] {
        let t = Tree::new();
        t.file("seal", "sealed").file("other", "x");
        let out = t.at(name);
        let lock = ts([
            "lock".as_ref(),
            t.path().as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
        ]);
        lock.code(0);
        let verify = || {
            ts([
                "verify".as_ref(),
                t.path().as_os_str(),
                "--manifest".as_ref(),
                out.as_os_str(),
            ])
        };
        let r = verify();
        assert_eq!(r.code, 0, "manifest {name:?}: {}", r.stderr);
        fs::write(t.at("seal"), "changed").unwrap();
        let r = verify();
        assert_eq!(r.code, 1, "manifest {name:?} hid `seal`: {}", r.stderr);
        assert!(r.line().contains(": seal ("), "{name:?}: {}", r.stderr);
    }
}

/// `COPY .` follows the same `.dockerignore` as `lock`: when it leaves out the manifest
/// that `lock` writes inside the tree, the image would have none, so `lock` refuses and
/// names the pattern and the line that fixes it.
#[test]
fn lock_refuses_a_dockerignore_that_keeps_the_manifest_out_of_the_image() {
    let lock_in = |t: &Tree, extra: &[&str]| {
        let mut args = vec![std::ffi::OsStr::new("lock"), t.path().as_os_str()];
        args.extend(extra.iter().map(std::ffi::OsStr::new));
        ts(args)
    };
    for (rules, pattern) in [
        (".*\n", ".*"),
        ("*\n!app\n", "*"),
        ("**/.treeseal\n", "**/.treeseal"),
        ("README\n.treeseal\n", ".treeseal"),
    ] {
        let t = Tree::sample();
        fs::write(t.at(".dockerignore"), rules).unwrap();
        let r = lock_in(&t, &[]);
        let line = r.code(2).line();
        assert!(line.contains(&format!("(pattern {pattern:?})")), "{line}");
        assert!(line.contains("add the line \"!.treeseal\""), "{line}");
        assert!(
            line.contains(".dockerignore excludes the manifest .treeseal"),
            "{line}"
        );
        assert!(
            !t.at(".treeseal").exists(),
            "{rules:?}: a manifest was written"
        );
        // The line it names is the fix.
        fs::write(t.at(".dockerignore"), format!("{rules}!.treeseal\n")).unwrap();
        lock_in(&t, &[]).code(0);
        verify(t.path(), &[]).code(0);
    }

    // Another name inside an excluded directory: the fix names that path.
    let t = Tree::sample();
    fs::write(t.at(".dockerignore"), "var\n").unwrap();
    let out = t.at("var/app.seal");
    let r = lock_in(&t, &["-o", out.to_str().unwrap()]);
    let line = r.code(2).line();
    assert!(
        line.contains("manifest var/app.seal (pattern \"var\")"),
        "{line}"
    );
    assert!(line.contains("\"!var/app.seal\""), "{line}");
    fs::write(t.at(".dockerignore"), "var\n!var/app.seal\n").unwrap();
    lock_in(&t, &["-o", out.to_str().unwrap()]).code(0);

    // Not a question for Docker: a manifest outside the tree, a treeseal-only --exclude,
    // or no ignore file read at all.
    let t = Tree::sample();
    fs::write(t.at(".dockerignore"), ".*\n").unwrap();
    let outside = t.path().join("../outside.seal");
    lock_in(&t, &["-o", outside.to_str().unwrap()]).code(0);
    fs::remove_file(&outside).unwrap();
    lock_in(&t, &["--no-dockerignore"]).code(0);
    fs::remove_file(t.at(".dockerignore")).unwrap();
    lock_in(&t, &["--exclude", ".*"]).code(0);

    // --dockerignore FILE is the file COPY follows: it is the one named.
    let t = Tree::sample();
    let other = t.path().join("../Dockerfile.dockerignore");
    fs::write(&other, "*\n!app\n!bin\n").unwrap();
    let r = lock_in(&t, &["--dockerignore", other.to_str().unwrap()]);
    fs::remove_file(&other).unwrap();
    let line = r.code(2).line();
    assert!(
        line.contains("Dockerfile.dockerignore excludes the manifest"),
        "{line}"
    );
}

#[test]
fn checking_a_tree_leaves_its_access_times_alone() {
    let t = Tree::sample();
    t.file("app/data.bin", vec![7u8; 3 << 20]);
    let m = t.path().with_extension("manifest");
    let m = m.to_str().unwrap();
    let Some(aged) = common::AgedAtimes::of(t.path()) else {
        eprintln!("SKIPPED: access times: this file system does not record reads");
        return;
    };
    ts([&["lock", "-o", m][..], &[t.path().to_str().unwrap()]].concat()).code(0);
    for threads in ["1", "2"] {
        ts([
            "verify",
            "--threads",
            threads,
            "-m",
            m,
            t.path().to_str().unwrap(),
        ])
        .code(0);
    }
    ts(["diff", m, t.path().to_str().unwrap()]).code(0);
    assert_eq!(
        aged.changed(),
        None,
        "a passing check read a file the usual way"
    );
    // A tree that differs goes through the exact comparison too.
    t.file("app/views.py", "def index():\n    return 'changed'\n");
    let aged = common::AgedAtimes::of(t.path()).unwrap();
    ts(["verify", "--all", "-m", m, t.path().to_str().unwrap()]).code(1);
    assert_eq!(
        aged.changed(),
        None,
        "a failing check read a file the usual way"
    );
}
