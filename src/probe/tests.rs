//! Unit tests of [`super`].

use super::*;
use crate::gate::DigestSource;
use crate::manifest::Origin;
use crate::tree::Rules;
use std::path::PathBuf;

/// A tree of `files` (path, content) locked into a manifest kept outside it.
struct Fixture {
    _dir: tempfile::TempDir,
    config: Config,
}

impl Fixture {
    fn new(in_dir: &Path, files: &[(&str, &str)]) -> Fixture {
        let dir = tempfile::tempdir_in(in_dir).unwrap();
        let root = dir.path().join("root");
        for (path, content) in files {
            let p = root.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        let manifest_path = dir.path().join("seal");
        crate::lock::lock(&root, Rules::default(), Origin::default())
            .unwrap()
            .save(&manifest_path)
            .unwrap();
        let config = Config {
            trees: vec![GatedTree {
                root,
                manifest: manifest_path,
                digest: None,
                digest_source: DigestSource::DigestVar,
            }],
            allow_extra: Vec::new(),
            state: None,
            quiet: false,
        };
        Fixture { _dir: dir, config }
    }

    fn root(&self) -> PathBuf {
        self.config.trees[0].root.clone()
    }

    /// What `run` records, as if it had started ten seconds after the files were
    /// written: every file's stamp is then outside the racy window and trusted.
    fn snapshot(&self) -> Snapshot {
        let mut checked = gate::check(&self.config, None).unwrap().unwrap();
        checked.started_ns += 10_000_000_000;
        checked.take_snapshot()
    }

    #[allow(clippy::result_large_err)] // the crate's own `Outcome` type
    fn probe(&self, snapshot: &mut Snapshot, pace: &Pace) -> Outcome {
        probe(&self.config, snapshot, pace, Instant::now()).unwrap()
    }

    /// A probe ten seconds from now: files written by the test are past the racy window.
    #[allow(clippy::result_large_err)]
    fn probe_later(&self, snapshot: &mut Snapshot, pace: &Pace) -> Outcome {
        let later = gate::now_ns() + 10_000_000_000;
        probe_at(&self.config, snapshot, pace, Instant::now(), later).unwrap()
    }
}

fn fixed(window: usize, slice: u64) -> Pace {
    Pace {
        budget: Duration::from_millis(MAX_BUDGET_MS),
        window: Some(window),
        slice: Some(slice),
    }
}

fn first_difference(outcome: Outcome) -> Option<String> {
    match outcome {
        Ok(_) => None,
        Err((_, Refusal::Differs(r))) => Some(r.differences[0].to_string()),
        Err((_, other)) => panic!("unexpected refusal {other:?}"),
    }
}

/// A shared, writable mapping of `path`, a file of the test's own.
#[allow(unsafe_code)]
fn map_shared(path: &Path) -> memmap2::MmapMut {
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    // SAFETY: the mapping is of a file this test owns, and nothing else maps or
    // truncates it while the test runs.
    unsafe { memmap2::MmapMut::map_mut(&file) }.unwrap()
}

fn stamp(path: &Path) -> (i64, i64, i64, i64) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).unwrap();
    (m.mtime(), m.mtime_nsec(), m.ctime(), m.ctime_nsec())
}

/// A second write through an already-dirty shared mapping changes the content without
/// moving mtime or ctime (tmpfs keeps them for good). The stamp check cannot see it;
/// the content slice finds it within the bound, and on a small tree by the next probe.
#[test]
fn a_write_through_a_mapped_page_that_moves_no_timestamp_is_found() {
    let files: Vec<(String, String)> = (0..6)
        .map(|i| (format!("f{i}"), format!("content {i}\n")))
        .collect();
    let files: Vec<(&str, &str)> = files.iter().map(|(p, c)| (&**p, &**c)).collect();
    let fx = Fixture::new(Path::new("/dev/shm"), &files);
    let target = fx.root().join("f3");
    let mut map = map_shared(&target);
    // The first write stores the sealed byte again: the page is now dirty and
    // writable, the content still the sealed one, so `run` passes.
    let sealed = std::hint::black_box(map[0]);
    map[0] = sealed;
    let snapshots = [fx.snapshot(), fx.snapshot(), fx.snapshot()];
    let [stamps_only, snapshot, small] = snapshots;
    let before = stamp(&target);
    map[0] = b'X'; // a second write through the same, already-dirty page
    assert_eq!(before, stamp(&target), "the premise: no timestamp moved");

    // The stamp check alone (the cheap check before the content slice) passes.
    let cheap = gate::check(&fx.config, Some(stamps_only)).unwrap();
    assert!(cheap.is_ok(), "stamps alone cannot see it");

    // One file per probe: found within the bound that the first probe states.
    let mut s = snapshot;
    let mut bound = None;
    let mut found = None;
    for n in 1..=20 {
        let outcome = fx.probe(&mut s, &fixed(100, 1));
        if let Ok(covered) = &outcome {
            bound.get_or_insert(covered[0].1.bounds().1.unwrap());
        }
        if let Some(d) = first_difference(outcome) {
            found = Some((n, d));
            break;
        }
    }
    let (n, d) = found.expect("found");
    assert_eq!(d, "content differs: f3 (same size)");
    assert!(n <= bound.unwrap(), "found by probe {n}, bound {bound:?}");

    // A small tree fits the default budget whole: the next probe finds it.
    let mut s = small;
    let pace = Pace {
        budget: Duration::from_millis(MAX_BUDGET_MS),
        window: None,
        slice: None,
    };
    let d = first_difference(fx.probe(&mut s, &pace));
    assert_eq!(d.as_deref(), Some("content differs: f3 (same size)"));
}

/// A file longer than a piece is hashed a piece per probe, never whole in one, and a
/// change that moves no timestamp in its last piece is found when its hash completes,
/// within the bound the first probe states.
#[test]
fn a_large_file_is_hashed_a_piece_per_probe_and_a_change_in_it_is_found() {
    let len = 2 * PIECE_LEN as usize + 100;
    let big: String = (0..len).map(|i| (b'a' + (i % 23) as u8) as char).collect();
    let fx = Fixture::new(Path::new("/dev/shm"), &[("big", &big), ("small", "s\n")]);
    let target = fx.root().join("big");
    let mut map = map_shared(&target);
    let last = len - 1;
    let sealed = std::hint::black_box(map[last]);
    map[last] = sealed; // dirty the page; the content is still the sealed one
    let mut s = fx.snapshot();

    // A full rotation with nothing changed: healthy, one piece or file per probe.
    let pace = fixed(100, 1);
    let mut bound = None;
    let mut slices = Vec::new();
    for _ in 0..4 {
        let covered = fx.probe(&mut s, &pace).expect("healthy");
        let coverage = &covered[0].1;
        bound.get_or_insert(coverage.bounds().1.unwrap());
        slices.push(coverage.slice_bytes);
        assert!(coverage.slice_bytes <= PIECE_LEN, "{slices:?}");
    }
    let piece = PIECE_LEN;
    assert_eq!(
        slices,
        [piece, piece, 100, 2],
        "big in three pieces, then small"
    );

    // A second write through the dirty page: no timestamp moves.
    let before = stamp(&target);
    map[last] = b'#';
    assert_eq!(before, stamp(&target), "the premise: no timestamp moved");
    let mut found = None;
    for n in 1..=20 {
        if let Some(d) = first_difference(fx.probe(&mut s, &pace)) {
            found = Some((n, d));
            break;
        }
    }
    let (n, d) = found.expect("found");
    assert_eq!(d, "content differs: big (same size)");
    assert!(n <= bound.unwrap(), "found by probe {n}, bound {bound:?}");
}

/// A file whose stamp moved but whose content did not (a `touch`) is hashed by the probe
/// that finds it, and its new stamp then vouches for it: the next pass hashes nothing.
/// A stamp inside the racy window of the probe is not saved.
#[test]
fn a_touched_file_is_hashed_once_and_then_trusted() {
    let fx = Fixture::new(&std::env::temp_dir(), &[("a", "1"), ("b", "2"), ("c", "3")]);
    let mut s = fx.snapshot();
    let pace = fixed(100, 1);
    let touch = || {
        let f = std::fs::File::options()
            .write(true)
            .open(fx.root().join("b"))
            .unwrap();
        f.set_modified(std::time::SystemTime::now()).unwrap();
    };
    touch();
    let unvouched = |outcome: Outcome| outcome.expect("healthy")[0].1.unvouched_hashed;
    // Within the racy window (a probe now): hashed, and again on the next pass.
    assert_eq!(unvouched(fx.probe(&mut s, &pace)), 1);
    assert_eq!(unvouched(fx.probe(&mut s, &pace)), 1);
    // Later: hashed once more, and from then on its new stamp vouches for it.
    assert_eq!(unvouched(fx.probe_later(&mut s, &pace)), 1);
    assert_eq!(unvouched(fx.probe_later(&mut s, &pace)), 0);
    assert_eq!(unvouched(fx.probe_later(&mut s, &pace)), 0);
    // A real change after that still moves the stamp and is found.
    std::fs::write(fx.root().join("b"), "changed").unwrap();
    let d = first_difference(fx.probe_later(&mut s, &pace));
    assert_eq!(d.as_deref(), Some("content differs: b (size 1 -> 7 bytes)"));
}

#[test]
fn fresh_stamps_replace_or_join_the_sorted_ones() {
    let st = |n: u64| Stamp {
        ino: n,
        ..Stamp::default()
    };
    let old = vec![(1, st(1)), (4, st(4)), (9, st(9))];
    let fresh = vec![
        (9, st(90)),
        (0, st(100)),
        (4, st(40)),
        (5, st(50)),
        (12, st(120)),
    ];
    let got = with_stamps(old.clone(), fresh);
    let want = vec![
        (0, st(100)),
        (1, st(1)),
        (4, st(40)),
        (5, st(50)),
        (9, st(90)),
        (12, st(120)),
    ];
    assert_eq!(got, want);
    assert_eq!(with_stamps(old.clone(), vec![]), old);
}

/// A file whose stamp changed but that did not fit the probe's hashing is carried, and
/// the next probe hashes it first.
#[test]
fn a_changed_file_not_hashed_in_time_is_hashed_by_the_next_probe() {
    let files = [("a", "1"), ("b", "2"), ("c", "3"), ("d", "4"), ("e", "5")];
    let fx = Fixture::new(&std::env::temp_dir(), &files);
    let mut s = fx.snapshot();
    // The content slice is at the last file, so only the carry can find `d`.
    s.trees[0].progress.content = 4;
    std::fs::write(fx.root().join("a"), "1").unwrap(); // new stamp, same content
    std::fs::write(fx.root().join("d"), "X").unwrap(); // new stamp, new content
    let covered = fx.probe(&mut s, &fixed(100, 1)).unwrap();
    assert_eq!(covered[0].1.unvouched_hashed, 1, "only `a` fits");
    assert_eq!(covered[0].1.carried, 1);
    assert_eq!(s.trees[0].progress.carried, [3]);
    let d = first_difference(fx.probe(&mut s, &fixed(100, 1)));
    assert_eq!(d.as_deref(), Some("content differs: d (same size)"));
}

#[test]
fn budgets_and_knobs_are_whole_numbers_within_their_limits() {
    let env = |vars: &'static [(&'static str, &'static str)]| {
        move |n: &str| {
            vars.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| std::ffi::OsString::from(v))
        }
    };
    let p = Pace::resolve(None, &env(&[])).unwrap();
    assert_eq!(p.budget, Duration::from_millis(DEFAULT_BUDGET_MS));
    assert_eq!((p.window, p.slice), (None, None));
    let p = Pace::resolve(Some("250"), &env(&[("TREESEAL_HEALTH_BUDGET", "9")])).unwrap();
    assert_eq!(p.budget, Duration::from_millis(250));
    let p = Pace::resolve(
        None,
        &env(&[
            ("TREESEAL_HEALTH_WINDOW", "7"),
            ("TREESEAL_HEALTH_SLICE", "1"),
        ]),
    )
    .unwrap();
    assert_eq!((p.window, p.slice), (Some(7), Some(1)));
    for bad in [
        "",
        " ",
        "0",
        "-5",
        "+5",
        "5ms",
        "1.5",
        "fast",
        "60001",
        "99999999999999999999999",
    ] {
        assert!(
            Pace::resolve(Some(bad), &env(&[])).is_err(),
            "--budget {bad:?}"
        );
    }
    for name in [
        "TREESEAL_HEALTH_BUDGET",
        "TREESEAL_HEALTH_WINDOW",
        "TREESEAL_HEALTH_SLICE",
    ] {
        for bad in ["", " ", "0", "x", "99999999999999999999999"] {
            let vars: &'static [(&'static str, &'static str)] =
                Box::leak(vec![(name, bad)].into_boxed_slice());
            let e = Pace::resolve(None, &env(vars)).unwrap_err().to_string();
            assert!(e.contains(name), "{e}");
        }
    }
}

/// Cursors and carried entries past the end of the manifest (a snapshot is only used
/// for its own manifest, so only a damaged one has them) start over and are skipped.
#[test]
fn progress_out_of_range_starts_over() {
    let fx = Fixture::new(&std::env::temp_dir(), &[("a", "1"), ("b", "2")]);
    let mut s = fx.snapshot();
    s.trees[0].progress = crate::snapshot::Progress {
        window: 99,
        content: u32::MAX,
        carried: vec![7, 1, u32::MAX],
        partial: Some((u32::MAX, Partial::default())),
    };
    let covered = fx.probe(&mut s, &fixed(100, u64::MAX)).unwrap();
    assert_eq!(covered[0].1.entries_checked, 2);
    assert_eq!(covered[0].1.carried, 0);
    std::fs::write(fx.root().join("b"), "X").unwrap();
    let d = first_difference(fx.probe(&mut s, &fixed(100, u64::MAX)));
    assert_eq!(d.as_deref(), Some("content differs: b (same size)"));
}
