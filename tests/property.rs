//! Properties of lock + verify over random trees, through the library.
//!
//! Every single change of every kind is detected; an untouched tree never differs; the
//! snapshot a successful verify returns lets a later check trust exactly the files that
//! did not change.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use proptest::prelude::*;
use treeseal::manifest::Origin;
use treeseal::tree::{ModePolicy, Rules};
use treeseal::verify::{verify, Options};

const DIRS: [&str; 5] = ["", "src", "src/pkg", "lib", "lib/x/y"];

/// A random tree: files (dir, name, content, exec), symlinks, empty directories.
#[derive(Clone, Debug)]
struct Spec {
    files: Vec<(usize, usize, Vec<u8>, bool)>,
    links: Vec<(usize, String)>,
    empty: Vec<bool>,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop::collection::vec(
            (
                0..DIRS.len(),
                0..6usize,
                prop::collection::vec(any::<u8>(), 0..300),
                any::<bool>(),
            ),
            1..25,
        ),
        prop::collection::vec((0..3usize, "[a-z./]{1,12}"), 0..3),
        prop::collection::vec(any::<bool>(), 2),
    )
        .prop_map(|(files, links, empty)| Spec {
            files,
            links,
            empty,
        })
}

/// One mutation, with selectors that are reduced modulo what the tree has.
#[derive(Clone, Debug)]
enum Mutation {
    FlipByte(usize, usize, u8),
    Truncate(usize),
    Append(usize, u8),
    Delete(usize),
    Add(usize),
    Rename(usize),
    ToggleExec(usize),
    Retarget(usize),
    FileToDir(usize),
    RemoveEmptyDir,
    AddEmptyDir(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let n = any::<usize>();
    prop_oneof![
        (n, any::<usize>(), 1..=255u8).prop_map(|(a, b, c)| Mutation::FlipByte(a, b, c)),
        n.prop_map(Mutation::Truncate),
        (n, any::<u8>()).prop_map(|(a, b)| Mutation::Append(a, b)),
        n.prop_map(Mutation::Delete),
        n.prop_map(Mutation::Add),
        n.prop_map(Mutation::Rename),
        n.prop_map(Mutation::ToggleExec),
        n.prop_map(Mutation::Retarget),
        n.prop_map(Mutation::FileToDir),
        Just(Mutation::RemoveEmptyDir),
        n.prop_map(Mutation::AddEmptyDir),
    ]
}

fn build(spec: &Spec) -> common::Tree {
    let t = common::Tree::new();
    for (d, n, content, exec) in &spec.files {
        let path = format!("{}/f{n}", DIRS[*d])
            .trim_start_matches('/')
            .to_string();
        t.file(&path, content);
        t.chmod(&path, if *exec { 0o755 } else { 0o644 });
    }
    for (i, target) in &spec.links {
        if !t.at(format!("l{i}")).exists() && fs::symlink_metadata(t.at(format!("l{i}"))).is_err() {
            t.symlink(format!("l{i}"), target);
        }
    }
    // One empty directory always exists so that removing one is always possible.
    t.dir("empty");
    if spec.empty[0] {
        t.dir("src/empty2");
    }
    t
}

/// Applies `m`; returns false when it does not apply to this tree (nothing changed).
fn apply(t: &common::Tree, m: &Mutation) -> bool {
    let manifest = treeseal::lock::lock(t.path(), Rules::default(), Origin::default()).unwrap();
    let files: Vec<String> = manifest
        .entries
        .iter()
        .filter(|e| matches!(e.node, treeseal::tree::NodeRef::File { .. }))
        .map(|e| String::from_utf8(e.path.to_vec()).unwrap())
        .collect();
    let links: Vec<String> = manifest
        .entries
        .iter()
        .filter(|e| matches!(e.node, treeseal::tree::NodeRef::Symlink { .. }))
        .map(|e| String::from_utf8(e.path.to_vec()).unwrap())
        .collect();
    let pick = |list: &[String], i: usize| list[i % list.len()].clone();
    match m {
        Mutation::FlipByte(f, at, x) => {
            let f = pick(&files, *f);
            let mut bytes = fs::read(t.at(&f)).unwrap();
            if bytes.is_empty() {
                return false;
            }
            let at = at % bytes.len();
            bytes[at] ^= x;
            fs::write(t.at(&f), bytes).unwrap();
        }
        Mutation::Truncate(f) => {
            let f = pick(&files, *f);
            let len = fs::metadata(t.at(&f)).unwrap().len();
            if len == 0 {
                return false;
            }
            fs::File::options()
                .write(true)
                .open(t.at(&f))
                .unwrap()
                .set_len(len - 1)
                .unwrap();
        }
        Mutation::Append(f, b) => {
            let f = pick(&files, *f);
            let mut bytes = fs::read(t.at(&f)).unwrap();
            bytes.push(*b);
            fs::write(t.at(&f), bytes).unwrap();
        }
        Mutation::Delete(f) => {
            t.remove(pick(&files, *f));
        }
        Mutation::Add(d) => {
            t.file(
                format!("{}/new", DIRS[d % DIRS.len()]).trim_start_matches('/'),
                "x",
            );
        }
        Mutation::Rename(f) => {
            let f = pick(&files, *f);
            fs::rename(t.at(&f), t.at(format!("{f}.renamed"))).unwrap();
        }
        Mutation::ToggleExec(f) => {
            let f = pick(&files, *f);
            let mode = fs::metadata(t.at(&f)).unwrap().permissions().mode();
            t.chmod(&f, (mode ^ 0o100) & 0o7777);
        }
        Mutation::Retarget(l) => {
            if links.is_empty() {
                return false;
            }
            let l = pick(&links, *l);
            let old = fs::read_link(t.at(&l)).unwrap();
            t.remove(&l);
            t.symlink(&l, &format!("{}x", old.display()));
        }
        Mutation::FileToDir(f) => {
            let f = pick(&files, *f);
            t.remove(&f);
            t.dir(&f);
        }
        Mutation::RemoveEmptyDir => {
            t.remove("empty");
        }
        Mutation::AddEmptyDir(d) => {
            t.dir(format!("{}/newdir", DIRS[d % DIRS.len()]).trim_start_matches('/'));
        }
    }
    true
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_single_change_is_detected(spec in spec(), m in mutation(), all in any::<bool>()) {
        let t = build(&spec);
        let manifest = treeseal::lock::lock(t.path(), Rules::default(), Origin::default()).unwrap();
        let options = Options { all, ..Options::default() };
        let untouched = verify(t.path(), &manifest, &options).unwrap();
        prop_assert!(untouched.is_equal(), "{:?}", untouched.differences);
        if apply(&t, &m) {
            let report = verify(t.path(), &manifest, &options).unwrap();
            prop_assert!(!report.is_equal(), "{m:?} went unseen");
        }
    }
}

#[test]
fn a_snapshot_trusts_exactly_the_unchanged_files() {
    let t = common::Tree::sample();
    let manifest = treeseal::lock::lock(t.path(), Rules::default(), Origin::default()).unwrap();
    let snapshot = Options {
        stamps: true,
        ..Options::default()
    };
    let first = verify(t.path(), &manifest, &snapshot).unwrap();
    assert!(first.is_equal());
    assert_eq!((first.files_hashed, first.files_trusted), (5, 0));
    assert_eq!(first.stamps.len(), 5);

    let cheap = Options {
        trusted: first.stamps.clone(),
        ..Options::default()
    };
    let again = verify(t.path(), &manifest, &cheap).unwrap();
    assert!(again.is_equal());
    assert_eq!((again.files_hashed, again.files_trusted), (0, 5));

    // Rewriting a file with the same bytes changes its ctime: hashed again, still equal.
    t.file("README", "hello\n");
    let r = verify(t.path(), &manifest, &cheap).unwrap();
    assert!(r.is_equal());
    assert_eq!((r.files_hashed, r.files_trusted), (1, 4));

    // A same-size change is caught although the size matches.
    t.file("README", "HELLO\n");
    let r = verify(t.path(), &manifest, &cheap).unwrap();
    assert_eq!(
        r.differences[0].to_string(),
        "content differs: README (same size)"
    );

    // A stamp recorded for another entry vouches for nothing.
    let shifted = Options {
        trusted: first.stamps.iter().map(|&(i, s)| (i + 1, s)).collect(),
        ..Options::default()
    };
    let r = verify(t.path(), &manifest, &shifted).unwrap();
    assert_eq!(r.files_trusted, 0);
}

#[test]
fn modes_full_catches_what_exec_policy_ignores() {
    let t = common::Tree::sample();
    let rules = Rules {
        modes: ModePolicy::Full,
        ..Rules::default()
    };
    let manifest = treeseal::lock::lock(t.path(), rules, Origin::default()).unwrap();
    t.chmod("app", 0o775);
    let r = verify(t.path(), &manifest, &Options::default()).unwrap();
    assert_eq!(
        r.differences[0].to_string(),
        "mode changed: app (0755 -> 0775)"
    );
}

/// Sets a file's modification time `secs` seconds from the epoch (negative: before it).
fn set_mtime(path: &std::path::Path, secs: i64) {
    let epoch = std::time::UNIX_EPOCH;
    let offset = std::time::Duration::from_secs(secs.unsigned_abs());
    let when = match secs < 0 {
        true => epoch - offset,
        false => epoch + offset,
    };
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_times(fs::FileTimes::new().set_modified(when))
        .unwrap();
}

#[test]
fn timestamps_beyond_the_nanosecond_range_are_never_trusted() {
    // 2300-01-01 and 1600-01-01 (both outside what i64 nanoseconds hold), and 1960
    // (negative, inside it). ext4 stores 1901 to 2446 and clamps the rest: what counts is
    // the time the file system kept, and 2300 must be kept as it is.
    let limit = i64::MAX / 1_000_000_000;
    for secs in [10_413_792_000, -11_676_096_000, -315_619_200] {
        let t = common::Tree::new();
        t.file("a", "same size 1\n").file("b", "other\n");
        set_mtime(&t.at("a"), secs);
        let kept = fs::metadata(t.at("a")).unwrap().mtime();
        assert!(secs < 0 || kept == secs);
        let trusted = (-limit..limit).contains(&kept);
        let manifest = treeseal::lock::lock(t.path(), Rules::default(), Origin::default()).unwrap();
        let snapshot = Options {
            stamps: true,
            ..Options::default()
        };
        let first = verify(t.path(), &manifest, &snapshot).unwrap();
        assert!(first.is_equal(), "{secs}: {:?}", first.differences);
        let cheap = Options {
            trusted: first.stamps.clone(),
            ..Options::default()
        };
        let again = verify(t.path(), &manifest, &cheap).unwrap();
        assert!(again.is_equal());
        let expect = if trusted { (0, 2) } else { (1, 1) };
        assert_eq!((again.files_hashed, again.files_trusted), expect, "{secs}");
        // A same-size change that puts the time back where it was is still found.
        t.file("a", "same size 2\n");
        set_mtime(&t.at("a"), secs);
        let r = verify(t.path(), &manifest, &cheap).unwrap();
        assert_eq!(
            r.differences[0].to_string(),
            "content differs: a (same size)",
            "{secs}"
        );
    }
}
