//! Unit tests of [`super`].

use super::*;
use crate::beneath::{kind_now, Root};
use crate::hash::Hashed;
use nix::fcntl::{openat, AT_FDCWD};
use nix::sys::stat::Mode;

/// Makes `depth` nested directories named `name` below `dir` with relative `mkdir` +
/// `openat` (the absolute path soon exceeds `PATH_MAX`), and a file at the bottom.
fn deep(dir: &Path, name: &str, depth: usize) -> Vec<u8> {
    let mut fd = openat(
        AT_FDCWD,
        dir,
        OFlag::O_PATH | OFlag::O_DIRECTORY,
        Mode::empty(),
    )
    .unwrap();
    let mut rel = Vec::new();
    for _ in 0..depth {
        nix::sys::stat::mkdirat(&fd, name, Mode::from_bits_truncate(0o755)).unwrap();
        fd = openat(&fd, name, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        rel.extend_from_slice(name.as_bytes());
        rel.push(b'/');
    }
    let file = openat(
        &fd,
        "leaf",
        OFlag::O_WRONLY | OFlag::O_CREAT,
        Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    nix::unistd::write(&file, b"deep").unwrap();
    rel.extend_from_slice(b"leaf");
    rel
}

#[test]
fn paths_longer_than_path_max_are_walked_and_hashed() {
    let t = tempfile::tempdir().unwrap();
    let leaf = deep(t.path(), &"d".repeat(100), 60);
    assert!(join(t.path(), &leaf).as_os_str().len() > 6000);
    let found: Vec<_> = walk(t.path(), &Matcher::new(&[]).unwrap())
        .unwrap()
        .collect();
    assert_eq!(found.len(), 61);
    assert_eq!(*found[60].path, *leaf);
    assert_eq!((found[60].kind, found[60].size), (Kind::File, 4));
    assert_eq!(
        Root::open(t.path()).unwrap().hash_file(&leaf, 4).unwrap(),
        Hashed::File {
            hash: *blake3::hash(b"deep").as_bytes(),
            size: 4
        }
    );
    assert_eq!(kind_now(t.path(), &leaf).unwrap(), Kind::File);
    let parent = &leaf[..leaf.len() - 5];
    assert_eq!(kind_now(t.path(), parent).unwrap(), Kind::Dir);
}

/// Records the paths it is handed, and hashes them.
struct Recorder(std::sync::Mutex<Vec<Vec<u8>>>);

impl Visitor for Recorder {
    type Out = Hashed;
    type Cursor = Vec<u8>;
    fn cursor(&self, _: &[u8]) -> Vec<u8> {
        Vec::new()
    }
    fn wants(&self, last: &mut Vec<u8>, path: &[u8]) -> bool {
        // Names come in order within a cursor.
        assert!(path_order(last, path).is_lt());
        *last = path.to_vec();
        path != b"big/skip"
    }
    fn visit(
        &self,
        last: &mut Vec<u8>,
        path: &[u8],
        file: std::fs::File,
        meta: &FileStat,
    ) -> Option<Hashed> {
        assert_eq!(*last, path);
        self.0.lock().unwrap().push(path.to_vec());
        let len = meta.st_size as u64;
        crate::hash::hash_regular(file, len, len).ok()
    }
}

#[test]
fn regular_files_and_only_those_are_visited_in_large_directories_too() {
    let t = tempfile::tempdir().unwrap();
    let big = t.path().join("big");
    std::fs::create_dir(&big).unwrap();
    for i in 0..3 * PARALLEL_NAMES {
        std::fs::write(big.join(format!("{i:04}")), i.to_string()).unwrap();
    }
    std::fs::write(big.join("skip"), b"not visited").unwrap();
    nix::unistd::mkfifo(&big.join("fifo"), Mode::from_bits_truncate(0o644)).unwrap();
    std::os::unix::fs::symlink("0001", big.join("link")).unwrap();
    std::fs::write(t.path().join("ignored"), b"x").unwrap();
    let recorder = Recorder(Default::default());
    let m = Matcher::new(&["ignored".to_string()]).unwrap();
    let found = walk_with(t.path(), &m, &recorder, &|_| true, |f| {
        f.collect::<Vec<_>>()
    })
    .unwrap();
    // big, its numbered files, fifo, link, skip.
    assert_eq!(found.len(), 1 + 3 * PARALLEL_NAMES + 3);
    let mut visited = recorder.0.into_inner().unwrap();
    visited.sort();
    assert_eq!(visited.len(), 3 * PARALLEL_NAMES);
    for f in &found {
        let visited = visited.binary_search(&f.path.to_vec()).is_ok();
        assert_eq!(visited, f.check.is_some(), "{:?}", f.path);
        match &*f.path {
            b"big/fifo" => assert_eq!(f.kind, Kind::Fifo),
            b"big/link" => assert_eq!((f.kind, &*f.target), (Kind::Symlink, &b"0001"[..])),
            b"big/skip" => assert_eq!((f.kind, f.size), (Kind::File, 11)),
            b"big" => assert_eq!(f.kind, Kind::Dir),
            p => {
                let i: usize = std::str::from_utf8(&p[4..]).unwrap().parse().unwrap();
                let content = i.to_string();
                assert_eq!(f.size, content.len() as u64);
                assert_eq!(
                    f.check,
                    Some(Hashed::File {
                        hash: *blake3::hash(content.as_bytes()).as_bytes(),
                        size: content.len() as u64
                    })
                );
            }
        }
    }
    // The metadata-only walk finds the same objects.
    let plain: Vec<_> = walk(t.path(), &m).unwrap().collect();
    let strip = |f: &Found<Hashed>| (f.path.clone(), f.kind, f.mode, f.size, f.stamp);
    let plain: Vec<_> = plain
        .iter()
        .map(|f| (f.path.clone(), f.kind, f.mode, f.size, f.stamp))
        .collect();
    assert_eq!(found.iter().map(strip).collect::<Vec<_>>(), plain);
}

#[test]
fn a_directory_outside_the_range_is_handed_out_but_not_listed() {
    let t = tempfile::tempdir().unwrap();
    for f in ["a/x", "b/y", "b/z/w", "c"] {
        let p = t.path().join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, f).unwrap();
    }
    let m = Matcher::new(&[]).unwrap();
    let paths = |keep: &(dyn Fn(&[u8]) -> bool + Sync)| -> Vec<String> {
        walk_within(t.path(), &m, keep)
            .unwrap()
            .map(|f| String::from_utf8(f.path.into_vec()).unwrap())
            .collect()
    };
    assert_eq!(
        paths(&|_| true),
        ["a", "a/x", "b", "b/y", "b/z", "b/z/w", "c"]
    );
    assert_eq!(paths(&|d| d != b"b"), ["a", "a/x", "b", "c"]);
    assert_eq!(
        paths(&|d| d != b"b/z"),
        ["a", "a/x", "b", "b/y", "b/z", "c"]
    );
}

#[test]
fn thousands_of_levels_do_not_overflow_the_stack() {
    let t = tempfile::tempdir().unwrap();
    let leaf = deep(t.path(), "d", 2500);
    let found: Vec<_> = walk(t.path(), &Matcher::new(&[]).unwrap())
        .unwrap()
        .collect();
    assert_eq!(found.len(), 2501);
    assert_eq!(*found.last().unwrap().path, *leaf);
    // An exception deep down: the excluded directories are walked into, and kept only
    // because something below them is.
    let rule = format!("!{}", String::from_utf8_lossy(&leaf));
    let m = Matcher::new(&["d".to_string(), rule]).unwrap();
    assert_eq!(walk(t.path(), &m).unwrap().count(), 2501);
}

#[test]
fn the_walk_streams_holding_only_so_much_ahead_of_a_slow_consumer() {
    let t = tempfile::tempdir().unwrap();
    let (dirs, files) = (400, 100);
    for d in 0..dirs {
        let dir = t.path().join(format!("{d:03}"));
        std::fs::create_dir(&dir).unwrap();
        for f in 0..files {
            std::fs::write(dir.join(format!("{f:02}")), b"x").unwrap();
        }
    }
    assert!(dirs * files > 2 * AHEAD_OBJECTS);
    let m = Matcher::new(&[]).unwrap();
    let (seen, most, in_flight) = walk_with(t.path(), &m, &NoVisit, &|_| true, |walk| {
        let (mut seen, mut most, mut in_flight) = (Vec::new(), 0, 0);
        while let Some(found) = walk.next() {
            // A consumer slower than the listing: the workers get ahead until the limit.
            let mut h = blake3::Hasher::new();
            h.update(&[0; 4096]);
            std::hint::black_box(h.finalize());
            let (waiting, max_in_flight) = walk.waiting();
            (most, in_flight) = (most.max(waiting), max_in_flight);
            seen.push(found.path);
        }
        (seen, most, in_flight)
    })
    .unwrap();
    assert_eq!(seen.len(), dirs * (files + 1));
    assert!(seen.windows(2).all(|w| path_order(&w[0], &w[1]).is_lt()));
    // Past the limit, only directories already in a worker's hands are added.
    assert!(
        most <= AHEAD_OBJECTS + in_flight.max(1) * (files + 1),
        "{most} objects waited at once"
    );
}

/// Panics on the file named `boom`.
struct Boom;

impl Visitor for Boom {
    type Out = ();
    type Cursor = ();
    fn cursor(&self, _: &[u8]) {}
    fn wants(&self, _: &mut (), path: &[u8]) -> bool {
        path.ends_with(b"boom")
    }
    fn visit(&self, _: &mut (), _: &[u8], _: std::fs::File, _: &FileStat) -> Option<()> {
        panic!("boom");
    }
}

#[test]
fn a_panic_while_listing_ends_the_walk_instead_of_hanging_it() {
    let t = tempfile::tempdir().unwrap();
    for d in 0..40 {
        let dir = t.path().join(format!("{d:02}"));
        std::fs::create_dir(&dir).unwrap();
        for f in 0..20 {
            std::fs::write(dir.join(format!("{f:02}")), b"x").unwrap();
        }
    }
    std::fs::write(t.path().join("20/boom"), b"x").unwrap();
    let m = Matcher::new(&[]).unwrap();
    let walked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        walk_with(t.path(), &m, &Boom, &|_| true, |f| f.count())
    }));
    assert!(walked.is_err(), "the panic must reach the caller");
}
