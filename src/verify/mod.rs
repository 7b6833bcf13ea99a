//! Comparing a tree on disk with its manifest.
//!
//! The tree is walked under the manifest's own rules, and the walk is merged with the
//! manifest's entries in path order. Everything that metadata can decide (missing, extra,
//! type, mode, symlink target, size) is decided during the merge, without reading a byte.
//! Only regular files whose size matches are hashed, in parallel.
//!
//! The first difference is defined by path order, never by which thread finishes first:
//! each comparison has a sequence number in merge order, and the report is sorted by it.
//! Unless every difference is asked for, hashing skips files that come after the earliest
//! difference known so far — they cannot change which difference is first. An I/O error
//! counts as an event at its position too, so the outcome (the first difference, or "could
//! not check") is the same on every run and for every thread count.
//!
//! A mismatch is a [`Report`], not an error; [`Error`] means "could not check".

use std::cmp::Ordering;
use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering as AtomicOrdering};

use rayon::prelude::*;

use crate::beneath;
use crate::error::{Error, Result};
use crate::escape::escape;
use crate::hash::Hashed;
use crate::ignore::Matcher;
use crate::manifest::Manifest;
use crate::tree::{is_below, path_order, EntryRef, EntrySlice, Kind, ModePolicy, NodeRef};
use crate::walk::{self, Found, Stamp};

mod equal;
#[cfg(test)]
mod tests;

/// What differs at one path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum What {
    /// In the manifest, not on disk. `below` counts the manifest entries under it.
    Missing {
        /// Its kind in the manifest.
        kind: Kind,
        /// How many manifest entries below it are missing with it.
        below: usize,
    },
    /// On disk, not in the manifest. `below` counts the entries under it.
    Extra {
        /// Its kind on disk.
        kind: Kind,
        /// How many entries below it are extra with it.
        below: usize,
    },
    /// A different kind of object (e.g. a file where a directory was).
    Type {
        /// Kind in the manifest.
        expected: Kind,
        /// Kind on disk.
        found: Kind,
    },
    /// Same kind, different content (size or hash).
    Content {
        /// Size in the manifest.
        expected_size: u64,
        /// Size on disk.
        found_size: u64,
    },
    /// The owner-execute bit differs (mode policy `exec`).
    ExecBit {
        /// Whether the manifest has it set.
        expected: bool,
    },
    /// Permission bits differ (mode policy `full`).
    Mode {
        /// Mode in the manifest.
        expected: u32,
        /// Mode on disk.
        found: u32,
    },
    /// A symlink points somewhere else.
    Target {
        /// Target in the manifest.
        expected: Vec<u8>,
        /// Target on disk.
        found: Vec<u8>,
    },
}

/// One difference between the manifest and the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    /// The path, relative to the root.
    pub path: Vec<u8>,
    /// What differs.
    pub what: What,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = escape(&self.path);
        let below = |n: usize| match n {
            0 => String::new(),
            1 => " and 1 entry below it".to_string(),
            n => format!(" and {n} entries below it"),
        };
        match &self.what {
            What::Missing { kind, below: n } => write!(f, "missing {kind}: {path}{}", below(*n)),
            What::Extra { kind, below: n } => write!(f, "extra {kind}: {path}{}", below(*n)),
            What::Type { expected, found } => {
                write!(
                    f,
                    "type changed: {path} (expected {expected}, found {found})"
                )
            }
            What::Content {
                expected_size,
                found_size,
            } if expected_size != found_size => write!(
                f,
                "content differs: {path} (size {expected_size} -> {found_size} bytes)"
            ),
            What::Content { .. } => write!(f, "content differs: {path} (same size)"),
            What::ExecBit { expected: true } => write!(f, "exec bit removed: {path}"),
            What::ExecBit { expected: false } => write!(f, "exec bit added: {path}"),
            What::Mode { expected, found } => {
                write!(f, "mode changed: {path} ({expected:04o} -> {found:04o})")
            }
            What::Target { expected, found } => write!(
                f,
                "symlink target changed: {path} ({} -> {})",
                escape(expected),
                escape(found)
            ),
        }
    }
}

/// Options for [`verify`].
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Find every difference instead of stopping at the first.
    pub all: bool,
    /// Patterns (`.dockerignore` syntax) for paths the application may create at run time:
    /// such paths are not reported as extra. They never hide a missing or changed entry.
    pub allow_extra: Option<Matcher>,
    /// A snapshot from an earlier successful verification: (manifest entry index, stamp)
    /// pairs sorted by index. A file whose metadata still equals its stamp (same device,
    /// inode, mtime and ctime) is trusted without hashing (the cheap healthcheck); any
    /// other file is hashed. ctime cannot be set from user space, and `write(2)`, chmod
    /// or a rename since the stamp was taken change it; a second write through an
    /// already-dirty shared mapping does not, which is why the healthcheck also re-hashes
    /// the content in turn (`crate::probe`).
    pub trusted: Vec<(u32, Stamp)>,
    /// Compare only these manifest entries, and only the paths on disk from the first
    /// one's path (or the start, for a range from 0) up to the path of the entry after the
    /// range (or the end, for a range that reaches it): consecutive windows thus cover
    /// every path, extra ones included. Files that would be hashed are listed in
    /// [`Report::unhashed`] instead (the budgeted healthcheck decides when to hash them).
    pub window: Option<Range<usize>>,
    /// Collect [`Report::stamps`] (for a snapshot). Off, the report has none, and a
    /// 1M-file tree's check needs 40 MB less.
    pub stamps: bool,
}

/// The outcome of a verification.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Differences in path order; the first is *the* first difference.
    pub differences: Vec<Difference>,
    /// True when every comparison was made (no work was skipped after a difference).
    pub complete: bool,
    /// Entries compared (from the manifest).
    pub entries: usize,
    /// Regular files hashed.
    pub files_hashed: u64,
    /// Bytes hashed.
    pub bytes_hashed: u64,
    /// Regular files trusted from the snapshot without hashing.
    pub files_trusted: u64,
    /// With [`Options::stamps`], for every regular file hashed and found equal: (manifest
    /// entry index, its metadata stamp), sorted by index — the snapshot a later cheap
    /// check compares against. Files trusted from [`Options::trusted`] are not repeated
    /// here, nor are files whose times are out of range for a stamp (they are hashed every
    /// time).
    pub stamps: Vec<(u32, Stamp)>,
    /// With [`Options::window`]: the manifest entry indices of the regular files that
    /// metadata could not vouch for (no stamp, or a different one), in order, unhashed.
    pub unhashed: Vec<u32>,
}

impl Report {
    /// True when the tree equals the manifest.
    pub fn is_equal(&self) -> bool {
        self.differences.is_empty()
    }
}

/// A file the walk did not hash (it could not open it, it changed while read, or fail-fast
/// let it go): the manifest entry's index, and the file's stamp (none when its times are
/// out of range: such a file is never trusted later).
struct Job {
    index: u32,
    stamp: Option<Stamp>,
}

/// What hashing a file during the walk found. One byte, so that it fits in the padding
/// of a walked object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Checked {
    /// Its content is the sealed content.
    Same,
    /// Its content differs, at the sealed size.
    Differs,
}
static_assertions::const_assert_eq!(
    size_of::<walk::Found<Checked>>(),
    size_of::<walk::Found<()>>()
);

/// Hashes the files of the tree during the walk, each while its directory is open (see
/// [`walk::Visitor`]), and compares it with its manifest entry. Files the merge may not
/// need hashed are left alone: not in the manifest, of another size, trusted from the
/// snapshot, or (unless every difference is wanted) after the first difference known so
/// far. Whatever goes wrong here (an error, a file that changed) is left to the hashing
/// after the merge, which decides it the one deterministic way.
struct Checker<'a> {
    expected: EntrySlice<'a>,
    trusted: &'a [(u32, Stamp)],
    all: bool,
    first: &'a AtomicUsize,
    /// False with [`Options::window`], whose files are listed unhashed, never hashed here.
    hash: bool,
}

/// Where a [`Checker`] is in one directory: the manifest entries that may be its
/// children lie in `next..end`, and `at` is the entry of the file being visited.
struct Cursor {
    next: usize,
    end: usize,
    at: usize,
    /// Where the snapshot's entries for `next..` begin (indices only grow in a cursor).
    trusted: usize,
}

impl walk::Visitor for Checker<'_> {
    type Out = Checked;
    type Cursor = Cursor;

    fn cursor(&self, dir: &[u8]) -> Cursor {
        let e = self.expected;
        let (next, end) = match dir.is_empty() {
            true => (0, e.len()),
            false => {
                // Everything below `dir` comes right after it, in path order.
                let next = e.partition_point(|x| path_order(x.path, dir).is_le());
                (
                    next,
                    next + e.slice(next..).partition_point(|x| is_below(x.path, dir)),
                )
            }
        };
        let trusted = self.trusted.partition_point(|(i, _)| (*i as usize) < next);
        Cursor {
            next,
            end,
            at: 0,
            trusted,
        }
    }

    fn wants(&self, cursor: &mut Cursor, path: &[u8]) -> bool {
        if !self.hash {
            return false;
        }
        let below = self.expected.slice(cursor.next..cursor.end);
        // Names come in byte order, which is path order for names of one directory: most
        // often the entry is the very next one (a file after a file), and a search of the
        // rest is only needed past a subdirectory's entries or a missing name.
        let at = match below.first() {
            Some(next) if next.path == path => cursor.next,
            _ => cursor.next + below.partition_point(|x| path_order(x.path, path).is_lt()),
        };
        cursor.next = at;
        let Some(entry) = self.expected.slice(..cursor.end).get(at) else {
            return false;
        };
        if entry.path != path || !matches!(entry.node, NodeRef::File { .. }) {
            return false;
        }
        cursor.next = at + 1;
        if !self.all && position(at) > self.first.load(AtomicOrdering::Relaxed) {
            return false;
        }
        // The snapshot is sorted by index, and indices only grow within a cursor: walked
        // along, not searched (a search of a 200k-entry snapshot per file is cache misses).
        let index = at as u32;
        let snapshot = &self.trusted[cursor.trusted..];
        cursor.trusted += snapshot.iter().take_while(|(i, _)| *i < index).count();
        if self
            .trusted
            .get(cursor.trusted)
            .is_some_and(|(i, _)| *i == index)
        {
            // Its stamp decides, without opening it.
            return false;
        }
        cursor.at = at;
        true
    }

    fn visit(
        &self,
        cursor: &mut Cursor,
        _: &[u8],
        file: std::fs::File,
        meta: &nix::sys::stat::FileStat,
    ) -> Option<Checked> {
        let NodeRef::File { size, hash } = self.expected.at(cursor.at).node else {
            return None;
        };
        let differs = || {
            if !self.all {
                self.first
                    .fetch_min(position(cursor.at), AtomicOrdering::Relaxed);
            }
        };
        if meta.st_size as u64 != size {
            // The merge reports it from the size alone.
            differs();
            return None;
        }
        match crate::hash::hash_regular(file, size, size) {
            Ok(Hashed::File { hash: h, size: n }) if h == *hash && n == size => Some(Checked::Same),
            Ok(Hashed::File { size: n, .. }) if n == size => {
                differs();
                Some(Checked::Differs)
            }
            // It changed size while it was read, or could not be read: the hashing after
            // the merge opens it again and reports what it finds.
            _ => None,
        }
    }
}

/// Where a comparison lies in path order: differences are reported in this order, and
/// fail-fast skips every job after the first difference. Manifest entry `i` is at `2i + 1`;
/// an extra path that sorts just before entry `i` is at `2i` (several extras in a row share
/// it, and keep their path order through the stable sort of the report).
fn position(index: usize) -> usize {
    2 * index + 1
}

/// Verifies the tree at `root` against `manifest`.
///
/// Most trees are equal to their manifest, and one parallel pass proves that (see
/// `equal`); when it cannot, or with [`Options::window`], the tree is compared exactly:
/// every difference and error is decided there, in path order.
pub fn verify(root: &Path, manifest: &Manifest, options: &Options) -> Result<Report> {
    let matcher = manifest.rules.matcher()?;
    let root_dir = beneath::Root::open(root)?;
    if options.window.is_none() {
        let (expected, policy) = (manifest.entries.as_slice(), manifest.rules.modes);
        if let Some(report) = equal::prove(root, expected, policy, &matcher, options) {
            return Ok(report);
        }
    }
    exact(root, root_dir, manifest, &matcher, options)
}

/// Compares the tree at `root` (opened as `root_dir`) with `manifest`, whose rules
/// `matcher` holds, merging the walk with the entries in path order.
fn exact(
    root: &Path,
    root_dir: beneath::Root,
    manifest: &Manifest,
    matcher: &Matcher,
    options: &Options,
) -> Result<Report> {
    let policy = manifest.rules.modes;
    let expected = manifest.entries.as_slice();
    // The earliest position of a difference or error so far; unless all differences are
    // wanted, files after it are not hashed.
    let first = AtomicUsize::new(usize::MAX);
    let checker = Checker {
        expected,
        trusted: &options.trusted,
        all: options.all,
        first: &first,
        hash: options.window.is_none(),
    };
    // Merged as it is walked: the walk streams the tree, listing only so far ahead of
    // the merge, so the tree is never held whole.
    let range = options.window.clone().unwrap_or(0..expected.len());
    let end = range.end.min(expected.len());
    let lo = (range.start > 0).then(|| expected.at(range.start.min(end)).path);
    let hi = (end < expected.len()).then(|| expected.at(end).path);
    let before = |p: &[u8], bound: Option<&[u8]>| bound.is_some_and(|b| path_order(p, b).is_lt());
    let in_range = move |p: &[u8]| !before(p, lo) && hi.is_none_or(|h| before(p, Some(h)));
    // A directory is listed unless everything below it lies before `lo` or from `hi` on.
    let list_dir = |d: &[u8]| {
        hi.is_none_or(|h| before(d, Some(h)))
            && (!before(d, lo) || lo.is_some_and(|l| is_below(l, d)))
    };
    let merged = walk::walk_with(root, matcher, &checker, &list_dir, |found| {
        let found = found.filter(|f| in_range(&f.path)).peekable();
        merge(expected, range.start..end, policy, options, found)
    })?;
    let Merged {
        mut diffs,
        jobs,
        last_job,
        walk_diffs,
        hashed,
        bytes,
        files_trusted,
        mut stamps,
    } = merged;

    if options.window.is_some() {
        diffs.sort_by_key(|d| d.0);
        return Ok(Report {
            differences: diffs.into_iter().map(|(_, d)| d).collect(),
            complete: true,
            entries: end - range.start,
            files_trusted,
            unhashed: jobs.iter().map(|j| j.index).collect(),
            ..Report::default()
        });
    }

    // Hash the rest in parallel; unless all differences are wanted, jobs after the first
    // difference are skipped.
    if !options.all {
        let known = diffs
            .iter()
            .map(|d| d.0)
            .chain(walk_diffs.iter().map(|d| d.0))
            .min();
        first.fetch_min(known.unwrap_or(usize::MAX), AtomicOrdering::Relaxed);
    }
    // Only failures are collected; successes are counted. (One outcome per file would
    // cost ~100 bytes per file: 15 MB on a 150k-file tree.)
    let (hashed, bytes) = (AtomicU64::new(hashed), AtomicU64::new(bytes));
    let check = |job: &Job| {
        let (seq, entry) = (
            position(job.index as usize),
            expected.at(job.index as usize),
        );
        if !options.all && seq > first.load(AtomicOrdering::Relaxed) {
            return None;
        }
        hashed.fetch_add(1, AtomicOrdering::Relaxed);
        let what = match root_dir.hash_file(entry.path, entry.node.size()) {
            Ok(Hashed::File { hash, size }) => match entry.node {
                NodeRef::File {
                    hash: want,
                    size: want_size,
                } if *want == hash && want_size == size => {
                    bytes.fetch_add(size, AtomicOrdering::Relaxed);
                    return None;
                }
                _ => Ok(What::Content {
                    expected_size: entry.node.size(),
                    found_size: size,
                }),
            },
            Ok(Hashed::NotRegular) => Ok(What::Type {
                expected: Kind::File,
                // Whatever replaced it; if even that cannot be looked at, it is
                // still not the file that was sealed.
                found: beneath::kind_now(root, entry.path).unwrap_or(Kind::File),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(What::Missing {
                kind: Kind::File,
                below: 0,
            }),
            Err(e) => Err(Error::io("read", &beneath::join(root, entry.path), e)),
        };
        if !options.all {
            first.fetch_min(seq, AtomicOrdering::Relaxed);
        }
        let path = entry.path.to_vec();
        Some((seq, what.map(|what| Difference { path, what })))
    };
    let bytes_to_hash = jobs
        .iter()
        .map(|j| expected.at(j.index as usize).node.size())
        .sum();
    let pool = crate::pool::worth_threads(jobs.len(), bytes_to_hash).then(crate::pool::workers);
    let mut failures: Vec<(usize, Result<Difference>)> = match pool.flatten() {
        Some(pool) => pool.install(|| jobs.par_iter().filter_map(check).collect()),
        None => jobs.iter().filter_map(check).collect(),
    };
    failures.extend(walk_diffs);

    let mut report = Report {
        entries: expected.len(),
        files_hashed: hashed.into_inner(),
        bytes_hashed: bytes.into_inner(),
        files_trusted,
        ..Report::default()
    };
    let mut error: Option<(usize, Error)> = None;
    let mut hashed_diffs = Vec::new();
    for (seq, failure) in failures {
        match failure {
            Ok(d) => hashed_diffs.push((seq, d)),
            Err(e) => {
                if error.as_ref().is_none_or(|(s, _)| seq < *s) {
                    error = Some((seq, e));
                }
            }
        }
    }
    let first_seq = diffs
        .iter()
        .chain(&hashed_diffs)
        .map(|d| d.0)
        .min()
        .unwrap_or(usize::MAX);
    if let Some((seq, e)) = error {
        if seq < first_seq {
            return Err(e);
        }
    }
    // Which files after the first difference were hashed depends on thread timing; so
    // that the report does not, fail-fast keeps only the hashed differences at the first
    // position, and says the count is a lower bound when any file after it went unchecked.
    if !options.all {
        hashed_diffs.retain(|d| d.0 == first_seq);
    }
    report.complete = options.all || last_job.is_none_or(|j| position(j as usize) <= first_seq);
    diffs.extend(hashed_diffs);
    // A stable sort keeps a mode difference before a content difference at the same path.
    diffs.sort_by_key(|d| d.0);
    report.differences = diffs.into_iter().map(|(_, d)| d).collect();
    if report.differences.is_empty() && options.stamps {
        // The walk's stamps and those of the files hashed after it, each list in index
        // order: sorted once together.
        let hashed_here = jobs.into_iter().filter_map(|j| Some((j.index, j.stamp?)));
        stamps.extend(hashed_here);
        stamps.sort_unstable_by_key(|(index, _)| *index);
        report.stamps = stamps;
    }
    Ok(report)
}

/// What the merge of the manifest with the walk found, before the hashing of the files
/// the walk did not hash.
struct Merged {
    /// Differences metadata decided, with their positions.
    diffs: Vec<(usize, Difference)>,
    /// The files left to hash, in path order.
    jobs: Vec<Job>,
    /// The index of the last file compared or left to hash (every job, and every file
    /// the walk hashed), to tell whether fail-fast left any comparison out.
    last_job: Option<u32>,
    /// Differences the walk's hashing found, kept like those of the hashing after it.
    walk_diffs: Vec<(usize, Result<Difference>)>,
    /// Files the walk hashed and found equal, and their bytes.
    hashed: u64,
    bytes: u64,
    /// Files trusted from the snapshot.
    files_trusted: u64,
    /// With [`Options::stamps`], the stamps of the files the walk found equal, by index.
    stamps: Vec<(u32, Stamp)>,
}

/// Merges the manifest's entries in `range` with the walked objects, both in path order.
fn merge(
    expected: EntrySlice<'_>,
    range: Range<usize>,
    policy: ModePolicy,
    options: &Options,
    mut found: std::iter::Peekable<impl Iterator<Item = Found<Checked>>>,
) -> Merged {
    let end = range.end;
    let mut diffs: Vec<(usize, Difference)> = Vec::new();
    let mut note = |seq, path: &[u8], what| {
        diffs.push((
            seq,
            Difference {
                path: path.to_vec(),
                what,
            },
        ))
    };
    let mut jobs: Vec<Job> = Vec::new();
    // Differences the walk's hashing found, kept like those of the hashing below.
    let mut walk_diffs: Vec<(usize, Result<Difference>)> = Vec::new();
    let (mut hashed, mut bytes) = (0, 0);
    // Files whose stamps the snapshot vouches for are trusted here and never become jobs.
    let mut snapshot = options.trusted.iter().peekable();
    let mut files_trusted = 0;
    let (mut last_job, mut stamps) = (None, Vec::new());
    let mut i = range.start;
    loop {
        let order = match ((i < end).then(|| expected.at(i)), found.peek()) {
            (Some(e), Some(f)) => path_order(e.path, &f.path),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => break,
        };
        match order {
            Ordering::Less => {
                let e = expected.at(i);
                let below = expected.slice(i + 1..).count_below(e.path);
                let kind = e.node.kind();
                note(position(i), e.path, What::Missing { kind, below });
                i += 1 + below;
            }
            Ordering::Greater => {
                let f = found.next().expect("peeked");
                let below = skip_below(&mut found, &f.path);
                if !allowed_extra(options, &f) {
                    let kind = f.kind;
                    note(position(i) - 1, &f.path, What::Extra { kind, below });
                }
            }
            Ordering::Equal => {
                let (seq, e, f) = (position(i), expected.at(i), found.next().expect("peeked"));
                i += 1;
                let expected_kind = e.node.kind();
                if expected_kind != f.kind {
                    // Whatever was below either side is covered by this difference.
                    i += expected.slice(i..).count_below(e.path);
                    skip_below(&mut found, &f.path);
                    let what = What::Type {
                        expected: expected_kind,
                        found: f.kind,
                    };
                    note(seq, e.path, what);
                    continue;
                }
                if let Some(what) = mode_difference(policy, &e, &f) {
                    note(seq, e.path, what);
                }
                match e.node {
                    NodeRef::File { size, .. } if size != f.size => {
                        let what = What::Content {
                            expected_size: size,
                            found_size: f.size,
                        };
                        note(seq, e.path, what);
                    }
                    NodeRef::File { .. } => {
                        let index = (i - 1) as u32;
                        // The snapshot is sorted by index, and so are these visits.
                        while snapshot.next_if(|(at, _)| *at < index).is_some() {}
                        match snapshot.next_if(|(at, _)| *at == index) {
                            Some((_, stamp)) if Some(*stamp) == f.stamp => files_trusted += 1,
                            _ => {
                                last_job = Some(index);
                                match f.check {
                                    Some(Checked::Same) => {
                                        hashed += 1;
                                        bytes += f.size;
                                        if let Some(stamp) = f.stamp.filter(|_| options.stamps) {
                                            stamps.push((index, stamp));
                                        }
                                    }
                                    Some(Checked::Differs) => {
                                        hashed += 1;
                                        let what = What::Content {
                                            expected_size: f.size,
                                            found_size: f.size,
                                        };
                                        let path = e.path.to_vec();
                                        walk_diffs.push((seq, Ok(Difference { path, what })));
                                    }
                                    None => jobs.push(Job {
                                        index,
                                        stamp: f.stamp,
                                    }),
                                }
                            }
                        }
                    }
                    NodeRef::Symlink { target } if *target != *f.target => {
                        let what = What::Target {
                            expected: target.to_vec(),
                            found: f.target.into_vec(),
                        };
                        note(seq, e.path, what);
                    }
                    _ => {}
                }
            }
        }
    }

    Merged {
        diffs,
        jobs,
        last_job,
        walk_diffs,
        hashed,
        bytes,
        files_trusted,
        stamps,
    }
}

/// Takes every object below `dir` off the front of the walk (all of them come right after
/// it, in path order) and returns how many there were.
fn skip_below<C>(
    found: &mut std::iter::Peekable<impl Iterator<Item = Found<C>>>,
    dir: &[u8],
) -> usize {
    let mut n = 0;
    while found.next_if(|f| is_below(&f.path, dir)).is_some() {
        n += 1;
    }
    n
}

fn mode_difference<C>(policy: ModePolicy, e: &EntryRef, f: &Found<C>) -> Option<What> {
    let kind = e.node.kind();
    let (want, have) = (
        policy.effective(kind, e.mode),
        policy.effective(kind, f.mode),
    );
    if want == have {
        return None;
    }
    Some(match policy {
        ModePolicy::Exec => What::ExecBit {
            expected: want != 0,
        },
        ModePolicy::Full => What::Mode {
            expected: e.mode,
            found: f.mode,
        },
    })
}

/// Whether an extra path is one the application may create (`allow_extra` patterns).
fn allowed_extra<C>(options: &Options, f: &Found<C>) -> bool {
    options
        .allow_extra
        .as_ref()
        .is_some_and(|m| m.excludes(&f.path, f.kind == Kind::Dir))
}
