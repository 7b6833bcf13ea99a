//! The one-pass proof of equality against the exact comparison: whenever the pass says
//! "equal", the exact comparison finds the tree equal too, with the same report; and the
//! cases the pass is meant to decide (rules with exceptions, allowed extras, a snapshot,
//! large directories) it does decide, instead of leaving every tree to the exact pass.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use super::*;
use crate::manifest::Origin;
use crate::tree::{Rules, DEFAULT_NAME};

/// What the pass and the exact comparison say of `root` against `manifest`. The pass runs
/// twice, as on a warm tree and as on a cold one (files opened ahead), and must say the
/// same both times.
fn both(root: &Path, manifest: &Manifest, options: &Options) -> (Option<Report>, Result<Report>) {
    let matcher = manifest.rules.matcher().unwrap();
    let (expected, policy) = (manifest.entries.as_slice(), manifest.rules.modes);
    let proven = equal::prove(root, expected, policy, &matcher, options);
    let cold = equal::prove_as(root, expected, policy, &matcher, options, true);
    let counts = |r: &Report| (r.files_hashed, r.files_trusted, r.stamps.clone());
    assert_eq!(
        proven.as_ref().map(counts),
        cold.as_ref().map(counts),
        "the pass says one thing warm and another cold"
    );
    let exact = exact(
        root,
        beneath::Root::open(root).unwrap(),
        manifest,
        &matcher,
        options,
    );
    (proven, exact)
}

/// The pass is never wrong: "equal" only where the exact comparison agrees, with the same
/// counts and stamps. Returns whether it proved equality.
fn agree(root: &Path, manifest: &Manifest, options: &Options) -> bool {
    let (proven, exact) = both(root, manifest, options);
    let Some(p) = proven else {
        return false;
    };
    let e = exact.expect("proven equal, but the exact comparison could not check");
    assert!(
        e.differences.is_empty(),
        "proven equal, but the exact comparison finds {:?}",
        e.differences
    );
    assert_eq!(
        (p.complete, p.entries, p.files_hashed, p.bytes_hashed),
        (e.complete, e.entries, e.files_hashed, e.bytes_hashed)
    );
    assert_eq!(p.files_trusted, e.files_trusted);
    assert_eq!(p.stamps, e.stamps);
    assert!(p.unhashed.is_empty() && e.unhashed.is_empty());
    true
}

/// Whether the exact comparison finds `root` equal to `manifest`.
fn exactly_equal(root: &Path, manifest: &Manifest, options: &Options) -> bool {
    both(root, manifest, options)
        .1
        .is_ok_and(|r| r.differences.is_empty())
}

fn lock(root: &Path, patterns: &[&str], modes: ModePolicy) -> Manifest {
    let patterns = patterns
        .iter()
        .filter_map(|p| crate::ignore::normalize_pattern(p))
        .collect();
    crate::lock::lock(root, Rules { patterns, modes }, Origin::default()).unwrap()
}

fn write(root: &Path, rel: &str, content: &[u8]) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, content).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
}

/// A small tree with every kind of object, files in one directory of more than
/// `walk::PARALLEL_NAMES` names (split across threads), and enough files in all that the
/// worker pool is used.
fn sample(root: &Path) {
    for i in 0..300 {
        write(
            root,
            &format!("big/f{i:03}.txt"),
            format!("file {i}\n").as_bytes(),
        );
    }
    write(root, "src/app.py", b"print('hi')\n");
    write(root, "src/pkg/__init__.py", b"");
    write(root, "src/pkg/mod.py", &[7u8; 5000]);
    write(root, "bin/run", b"#!/bin/sh\nexec app\n");
    fs::set_permissions(root.join("bin/run"), fs::Permissions::from_mode(0o755)).unwrap();
    write(
        root,
        "large.bin",
        &vec![3u8; (crate::hash::MMAP_THRESHOLD + 17) as usize],
    );
    fs::create_dir_all(root.join("empty/inner")).unwrap();
    symlink("src/app.py", root.join("link")).unwrap();
    symlink("../nowhere", root.join("src/dangling")).unwrap();
    nix::unistd::mkfifo(
        &root.join("pipe"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
}

/// One change to the sample tree, and whether the tree is still equal afterwards.
type Change = (&'static str, fn(&Path), bool);

const CHANGES: &[Change] = &[
    ("nothing", |_| {}, true),
    (
        "content, same size",
        |r| write(r, "big/f150.txt", b"file X\n\n"),
        false,
    ),
    (
        "content, last of a large directory",
        |r| write(r, "big/f299.txt", b"file Y\n\n"),
        false,
    ),
    (
        "size",
        |r| write(r, "src/app.py", b"print('hello')\n"),
        false,
    ),
    (
        "large file content",
        |r| {
            let mut data = fs::read(r.join("large.bin")).unwrap();
            data[1000] ^= 1;
            fs::write(r.join("large.bin"), data).unwrap();
        },
        false,
    ),
    (
        "exec bit",
        |r| fs::set_permissions(r.join("src/app.py"), fs::Permissions::from_mode(0o744)).unwrap(),
        false,
    ),
    (
        "group bits only",
        |r| fs::set_permissions(r.join("src/app.py"), fs::Permissions::from_mode(0o664)).unwrap(),
        true,
    ),
    (
        "directory mode",
        |r| fs::set_permissions(r.join("src/pkg"), fs::Permissions::from_mode(0o700)).unwrap(),
        true,
    ),
    (
        "missing file",
        |r| fs::remove_file(r.join("src/pkg/__init__.py")).unwrap(),
        false,
    ),
    (
        "missing file in a large directory",
        |r| fs::remove_file(r.join("big/f200.txt")).unwrap(),
        false,
    ),
    (
        "missing first name",
        |r| fs::remove_file(r.join("big/f000.txt")).unwrap(),
        false,
    ),
    (
        "missing directory",
        |r| fs::remove_dir_all(r.join("src/pkg")).unwrap(),
        false,
    ),
    (
        "missing empty directory",
        |r| fs::remove_dir(r.join("empty/inner")).unwrap(),
        false,
    ),
    ("extra file", |r| write(r, "src/new.py", b"x"), false),
    (
        "extra file in a large directory",
        |r| write(r, "big/f150a.txt", b"x"),
        false,
    ),
    (
        "extra file after every name",
        |r| write(r, "zzz", b"x"),
        false,
    ),
    (
        "extra empty directory",
        |r| fs::create_dir(r.join("empty/other")).unwrap(),
        false,
    ),
    (
        "extra fifo",
        |r| {
            nix::unistd::mkfifo(
                &r.join("src/p2"),
                nix::sys::stat::Mode::from_bits_truncate(0o644),
            )
            .unwrap()
        },
        false,
    ),
    (
        "file becomes a directory",
        |r| {
            fs::remove_file(r.join("src/app.py")).unwrap();
            fs::create_dir(r.join("src/app.py")).unwrap();
        },
        false,
    ),
    (
        "directory becomes a file",
        |r| {
            fs::remove_dir_all(r.join("empty")).unwrap();
            write(r, "empty", b"");
        },
        false,
    ),
    (
        "file becomes a symlink",
        |r| {
            fs::remove_file(r.join("bin/run")).unwrap();
            symlink("../src/app.py", r.join("bin/run")).unwrap();
        },
        false,
    ),
    (
        "directory becomes a symlink",
        |r| {
            fs::rename(r.join("src/pkg"), r.join("pkg.real")).unwrap();
            symlink("../pkg.real", r.join("src/pkg")).unwrap();
        },
        false,
    ),
    (
        "symlink target",
        |r| {
            fs::remove_file(r.join("link")).unwrap();
            symlink("src/app.pyc", r.join("link")).unwrap();
        },
        false,
    ),
    (
        "fifo becomes a file",
        |r| {
            fs::remove_file(r.join("pipe")).unwrap();
            write(r, "pipe", b"");
        },
        false,
    ),
    (
        "manifest file at the root",
        |r| write(r, DEFAULT_NAME, b"not part of the tree"),
        true,
    ),
];

#[test]
fn every_change_is_either_proven_equal_or_left_to_the_exact_comparison() {
    for modes in [ModePolicy::Exec, ModePolicy::Full] {
        for (what, change, still_equal) in CHANGES {
            let dir = tempfile::tempdir().unwrap();
            sample(dir.path());
            let manifest = lock(dir.path(), &[], modes);
            change(dir.path());
            let options = Options::default();
            let equal = exactly_equal(dir.path(), &manifest, &options);
            let expected = *still_equal
                && !(modes == ModePolicy::Full && what.contains("mode"))
                && !(modes == ModePolicy::Full && *what == "group bits only");
            assert_eq!(equal, expected, "{what} ({modes:?}): the exact comparison");
            assert_eq!(
                agree(dir.path(), &manifest, &options),
                equal,
                "{what} ({modes:?})"
            );
        }
    }
}

#[test]
fn the_report_and_its_stamps_are_those_of_the_exact_comparison() {
    let dir = tempfile::tempdir().unwrap();
    sample(dir.path());
    let manifest = lock(dir.path(), &[], ModePolicy::Exec);
    let with_stamps = Options {
        stamps: true,
        ..Options::default()
    };
    assert!(agree(dir.path(), &manifest, &with_stamps));
    let report = verify(dir.path(), &manifest, &with_stamps).unwrap();
    assert_eq!(report.stamps.len() as u64, report.files_hashed);
    // A snapshot of those stamps: every file is trusted, and none is hashed.
    let trusted = Options {
        trusted: report.stamps.clone(),
        stamps: true,
        ..Options::default()
    };
    assert!(agree(dir.path(), &manifest, &trusted));
    let again = verify(dir.path(), &manifest, &trusted).unwrap();
    assert_eq!(again.files_trusted, report.files_hashed);
    assert_eq!(again.files_hashed, 0);
    // A file whose stamp moved is hashed again; a changed one is not proven equal.
    write(dir.path(), "src/app.py", b"print('hi')\n");
    assert!(agree(dir.path(), &manifest, &trusted));
    write(dir.path(), "src/app.py", b"print('ho')\n");
    assert!(!agree(dir.path(), &manifest, &trusted));
    assert!(!exactly_equal(dir.path(), &manifest, &trusted));
}

#[test]
fn rules_with_exceptions_are_decided_as_the_walk_decides_them() {
    // An allow-list, and an exception below an excluded directory (walked into for it).
    let patterns: &[&str] = &["*", "!src", "!build/keep.txt", "**/*.tmp", "!**/keep.tmp"];
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "src/a.py", b"a");
    write(root, "src/cache.tmp/keep.tmp", b"k");
    write(root, "src/cache.tmp/x", b"x");
    write(root, "build/keep.txt", b"keep");
    write(root, "build/other.o", b"o");
    write(root, "notes.md", b"n");
    let manifest = lock(root, patterns, ModePolicy::Exec);
    let paths: Vec<_> = manifest.entries.iter().map(|e| e.path.to_vec()).collect();
    assert!(paths.contains(&b"build/keep.txt".to_vec()) && !paths.contains(&b"notes.md".to_vec()));
    let options = Options::default();
    assert!(agree(root, &manifest, &options));
    // Excluded additions change nothing, and are proven so.
    write(root, "more.md", b"m");
    write(root, "build/more.o", b"m");
    write(root, "src/other.tmp/y", b"y");
    assert!(exactly_equal(root, &manifest, &options));
    assert!(agree(root, &manifest, &options));
    // What an exception re-includes counts.
    write(root, "src/other.tmp/keep.tmp", b"new");
    assert!(!exactly_equal(root, &manifest, &options));
    assert!(!agree(root, &manifest, &options));
    fs::remove_file(root.join("src/other.tmp/keep.tmp")).unwrap();
    assert!(agree(root, &manifest, &options));
    // A re-included directory left with nothing included is missing.
    fs::remove_file(root.join("build/keep.txt")).unwrap();
    assert!(!exactly_equal(root, &manifest, &options));
    assert!(!agree(root, &manifest, &options));
}

#[test]
fn allowed_extra_paths_are_proven_equal_and_only_they() {
    let dir = tempfile::tempdir().unwrap();
    sample(dir.path());
    let manifest = lock(dir.path(), &[], ModePolicy::Exec);
    let options = Options {
        allow_extra: Some(
            crate::ignore::Matcher::new(&["logs".into(), "empty/*.pid".into()]).unwrap(),
        ),
        ..Options::default()
    };
    write(dir.path(), "logs/app/today.log", b"started");
    symlink("today.log", dir.path().join("logs/app/latest")).unwrap();
    write(dir.path(), "empty/app.pid", b"1");
    assert!(exactly_equal(dir.path(), &manifest, &options));
    assert!(agree(dir.path(), &manifest, &options));
    write(dir.path(), "empty/app.sock", b"1");
    assert!(!exactly_equal(dir.path(), &manifest, &options));
    assert!(!agree(dir.path(), &manifest, &options));
}

#[test]
fn a_tree_too_small_for_the_pool_is_proven_on_the_calling_thread() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a", b"1");
    write(dir.path(), "d/b", b"2");
    let manifest = lock(dir.path(), &[], ModePolicy::Exec);
    assert!(agree(dir.path(), &manifest, &Options::default()));
    write(dir.path(), "d/b", b"3");
    assert!(!agree(dir.path(), &manifest, &Options::default()));
}

#[test]
fn a_sealed_directory_the_rules_only_walk_into_must_not_be_empty() {
    // Only a manifest made by hand has such a directory with nothing below it: the walk
    // leaves a re-included directory out when nothing in it is included.
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "build/other.o", b"o");
    let mut manifest = lock(dir.path(), &["build", "!build/keep.txt"], ModePolicy::Exec);
    assert!(manifest.entries.is_empty());
    manifest.entries.push(b"build", 0o755, NodeRef::Dir);
    assert!(!exactly_equal(dir.path(), &manifest, &Options::default()));
    assert!(!agree(dir.path(), &manifest, &Options::default()));
}

/// Drops `rel`'s pages from the page cache; false on a file system that keeps them anyway.
fn evict(root: &Path, rel: &str) -> bool {
    crate::hash::evict(&root.join(rel))
}

#[test]
fn a_tree_starts_cold_when_its_first_file_with_content_is_not_in_the_page_cache() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "a/empty", b"");
    write(root, "a/first", b"first");
    write(root, "b/second", b"second");
    let manifest = lock(root, &[], ModePolicy::Exec);
    let starts_cold = || equal::starts_cold(root, manifest.entries.as_slice());
    assert!(!starts_cold(), "a file just written is in the page cache");
    if !evict(root, "a/first") {
        eprintln!("skipped: this file system keeps every page in memory");
        return;
    }
    assert!(starts_cold());
    // Read again, it is warm; a later file out of the cache does not count.
    fs::read(root.join("a/first")).unwrap();
    assert!(!starts_cold());
    assert!(evict(root, "b/second"));
    assert!(!starts_cold());
    // Whatever is at the first file's path now is only opened, never waited on.
    fs::remove_file(root.join("a/first")).unwrap();
    nix::unistd::mkfifo(
        &root.join("a/first"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    assert!(!starts_cold());
    fs::remove_file(root.join("a/first")).unwrap();
    assert!(!starts_cold());
}

#[test]
fn the_threads_open_ahead_a_quarter_of_the_descriptors_at_most() {
    use equal::ahead_share;
    assert_eq!(ahead_share(None, 64), 32);
    assert_eq!(ahead_share(Some(1 << 20), 64), 32);
    assert_eq!(ahead_share(Some(1024), 1), 32);
    assert_eq!(ahead_share(Some(1024), 32), 8);
    assert_eq!(ahead_share(Some(1024), 64), 4);
    assert_eq!(ahead_share(Some(512), 64), 2);
    // Fewer than two each: none.
    assert_eq!(ahead_share(Some(511), 64), 0);
    assert_eq!(ahead_share(Some(0), 0), 0);
}

#[test]
fn a_tree_turns_cold_when_most_probed_reads_wait_not_at_the_first_one() {
    use equal::{Coldness, COLD_SCORE};
    let record = |c: &Coldness, waited: bool| {
        c.record(waited);
        c.is_cold()
    };
    // A warm tree where one probed read in 16 would have waited (a lock, a lost page).
    let warm = Coldness::new(false);
    for i in 0..100_000 {
        assert!(!record(&warm, i % 16 == 0), "turned cold at probe {i}");
    }
    // A cold tree: cold at the COLD_SCORE-th read that waits, not before.
    let cold = Coldness::new(false);
    for i in 1..COLD_SCORE {
        assert!(!record(&cold, true), "cold after {i} reads");
    }
    assert!(record(&cold, true));
    // Once cold, it stays cold, whatever is recorded after.
    assert!(record(&cold, false));
    assert!(Coldness::new(true).is_cold());
    // A long warm part does not delay the cold part after it.
    let later = Coldness::new(false);
    for _ in 0..100_000 {
        assert!(!record(&later, false));
    }
    let waits = (1..).find(|_| record(&later, true)).unwrap();
    assert_eq!(waits, COLD_SCORE);
    // Two reads in three waiting is cold too, within a few dozen probes.
    let mostly = Coldness::new(false);
    let probes = (0..).find(|i| record(&mostly, i % 3 != 0)).unwrap();
    assert!(probes < 3 * COLD_SCORE as usize * 2, "{probes} probes");
}
