//! The budgeted healthcheck probe: what one `healthcheck` with a trusted snapshot checks,
//! and how much of it fits in its time budget.
//!
//! A probe does three things per tree, and writes back where it stopped
//! ([`crate::snapshot::Progress`]) so the next probe continues there:
//!
//! 1. **Stamp windows.** The manifest's entries are taken in consecutive windows from the
//!    saved cursor; each window is compared with the disk by metadata
//!    ([`crate::verify::Options::window`]: kind, mode, size, symlink target, and each
//!    file's inode/mtime/ctime stamp against the snapshot). A window covers the paths
//!    from its first entry up to the next window's first entry, so the windows together
//!    cover every path, including extra files before the first entry and after the last.
//! 2. **Hashing what metadata could not vouch for.** Files without a stamp or with a
//!    changed one are hashed, the ones carried over from earlier probes first; the ones
//!    that do not fit are carried to the next probe (never forgotten). A file hashed equal
//!    gets its new stamp saved (unless it is within the racy window of the probe's start),
//!    so a file that was only touched is hashed once, not on every pass.
//! 3. **A rotating content slice.** Files are re-hashed from the saved content cursor
//!    onwards, whatever their stamps say, so a change that moves no timestamp (a second
//!    write through an already-dirty `MAP_SHARED` page keeps ctime on tmpfs) is found when
//!    the slice comes round to it. A file longer than [`PIECE_LEN`] is hashed a piece at a
//!    time ([`crate::piecewise`]), so that a probe reaching a file of hundreds of MiB
//!    still ends within its budget; the file's hash is completed by later probes. Files
//!    that step 2 hashes (their stamps moved) are hashed whole.
//!
//! Windows (1) stop at [`STAMP_SHARE`] of the time left once the tree's manifest is
//! loaded; hashing (2, 3) stops at the budget. Every probe makes progress whatever the
//! clock says: at least one window, one carried file and one content file or piece. On a tree whose whole check fits the budget, the
//! window covers every entry and the slice every file, so every change is found by the
//! next probe. [`Pace`] can fix the window and the slice in entries and bytes instead of
//! time, which makes probes deterministic (tests use it).
//!
//! The time starts when the healthcheck command does, so the budget includes reading the
//! manifest and the snapshot, but not starting the process nor writing the snapshot back.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::beneath::{self, Root};
use crate::error::{Error, Result};
use crate::gate::{self, Config, Env, GatedTree, Refusal};
use crate::hash::{self, Hashed};
use crate::manifest::Manifest;
use crate::piecewise::{Partial, Step, PIECE_LEN};
use crate::snapshot::{Snapshot, TreeState, RACY_WINDOW_NS};
use crate::tree::{Kind, NodeRef};
use crate::verify::{self, Difference, Options, Report, What};
use crate::walk::Stamp;

/// The default budget of a probe, in milliseconds. A default Kubernetes exec probe
/// times out after 1 s; measured at `docker run --cpus 0.5` on a 2-core host, a probe of
/// the 150k-file benchmark tree with this budget took 382 ms median and 399 ms at most
/// from `docker exec` to exit (docs/BENCHMARKS.md), which leaves 0.6 s for a slower start
/// and a busier node.
pub const DEFAULT_BUDGET_MS: u64 = 300;

/// The largest budget accepted: a minute is twice Docker's default HEALTHCHECK timeout;
/// for an unbounded check there is `--full`.
pub const MAX_BUDGET_MS: u64 = 60_000;

/// The share (in percent) of the time left once a tree is loaded that stamp windows may
/// use; hashing gets the rest. Stamp checks find most changes (`write(2)`, `truncate`,
/// `chmod`, a rename or a new file all move a stamp or a path), so they get most of it.
pub const STAMP_SHARE: u32 = 60;

/// The first window of a probe, in entries: small enough that the least a probe does (one
/// window) stays inside the default budget on the 150k-file benchmark tree at half a CPU.
/// Later windows are sized from the pace of the earlier ones.
const FIRST_WINDOW: usize = 2048;

/// How much a probe does.
#[derive(Clone, Debug)]
pub struct Pace {
    /// The time budget, from the start of the healthcheck command.
    pub budget: Duration,
    /// Exactly one window of this many entries per probe, whatever the clock says
    /// (`TREESEAL_HEALTH_WINDOW`).
    pub window: Option<usize>,
    /// Hash this many bytes per probe (at least one carried file and one content file),
    /// whatever the clock says (`TREESEAL_HEALTH_SLICE`).
    pub slice: Option<u64>,
}

impl Pace {
    /// The pace from `--budget` (else `TREESEAL_HEALTH_BUDGET`, else
    /// [`DEFAULT_BUDGET_MS`]) and the deterministic `TREESEAL_HEALTH_WINDOW` (entries) and
    /// `TREESEAL_HEALTH_SLICE` (bytes). Each must be a whole number from 1 up to its limit.
    pub fn resolve(budget_flag: Option<&str>, env: Env) -> Result<Pace> {
        let budget = match budget_flag {
            Some(text) => Some(("--budget", text.to_string())),
            None => {
                gate::var(env, "TREESEAL_HEALTH_BUDGET")?.map(|t| ("TREESEAL_HEALTH_BUDGET", t))
            }
        };
        let budget = match budget {
            Some((origin, text)) => number(origin, &text, "milliseconds", MAX_BUDGET_MS)?,
            None => DEFAULT_BUDGET_MS,
        };
        let knob = |name: &str, unit: &str, max: u64| {
            gate::var(env, name)?
                .map(|t| number(name, &t, unit, max))
                .transpose()
        };
        Ok(Pace {
            budget: Duration::from_millis(budget),
            window: knob("TREESEAL_HEALTH_WINDOW", "entries", u64::from(u32::MAX))?
                .map(|n| n as usize),
            slice: knob("TREESEAL_HEALTH_SLICE", "bytes", 1 << 50)?,
        })
    }
}

/// A whole number from 1 to `max`, or an error naming where it came from.
fn number(origin: &str, text: &str, unit: &str, max: u64) -> Result<u64> {
    match gate::whole_number(text) {
        Some(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(Error::Usage(format!(
            "{origin}={text:?} is not a whole number of {unit} from 1 to {max}"
        ))),
    }
}

/// What one probe covered in one tree.
#[derive(Clone, Debug, Default)]
pub struct Coverage {
    /// Entries in the manifest.
    pub entries: u64,
    /// Entries whose stamps (and metadata) this probe compared.
    pub entries_checked: u64,
    /// Bytes of regular files in the manifest.
    pub bytes: u64,
    /// Bytes the content slice re-hashed.
    pub slice_bytes: u64,
    /// Files hashed because metadata could not vouch for them.
    pub unvouched_hashed: u64,
    /// Files still waiting to be hashed (carried to the next probe).
    pub carried: u64,
    /// Whether some file is longer than a piece, so hashed across probes.
    pub pieced: bool,
}

impl Coverage {
    /// How many probes at this probe's pace it takes to compare every entry's stamps, and
    /// to re-hash every byte: the bounds on finding a change that moves a timestamp, and
    /// one that does not. `None` when this probe covered nothing of that kind.
    pub fn bounds(&self) -> (Option<u64>, Option<u64>) {
        let per = |total: u64, done: u64| match (total, done) {
            (0, _) => Some(1),
            (_, 0) => None,
            // A slice stops after the file that crosses its quota, so a change may sit in
            // the file just behind the cursor: one more probe.
            (t, d) if d >= t => Some(1),
            (t, d) => Some(t.div_ceil(d) + 1),
        };
        // A file hashed in pieces across probes may change in a piece already hashed: that
        // change is seen on the file's next pass, one rotation later.
        let content = match self.pieced {
            false => per(self.bytes, self.slice_bytes),
            true => per(self.bytes, self.slice_bytes)
                .map(|n| n + self.bytes.div_ceil(self.slice_bytes.max(1))),
        };
        (per(self.entries, self.entries_checked), content)
    }
}

/// What a probe found.
pub type Outcome = std::result::Result<Vec<(GatedTree, Coverage)>, (GatedTree, Refusal)>;

/// When a probe must stop.
struct Clock {
    pace: Pace,
    hash_until: Instant,
    /// Stamps with a time after this are too recent to vouch for a file.
    racy_after_ns: i64,
}

impl Clock {
    fn new(pace: &Pace, started: Instant, wall_ns: i64) -> Clock {
        Clock {
            pace: pace.clone(),
            hash_until: started + pace.budget,
            racy_after_ns: wall_ns.saturating_sub(RACY_WINDOW_NS),
        }
    }

    /// When the stamp windows of a tree whose manifest and snapshot are loaded now must
    /// stop: at [`STAMP_SHARE`] of the time left, so that loading (which grows with the
    /// tree, and slows down under a CPU limit) does not eat the content slice's share.
    fn stamps_until(&self) -> Instant {
        let now = Instant::now();
        now + self.hash_until.saturating_duration_since(now) * STAMP_SHARE / 100
    }
}

/// Probes every tree: budgeted where `snapshot` has progress for it, a full check
/// otherwise. Updates `snapshot` in place; the caller saves it.
pub fn probe(
    config: &Config,
    snapshot: &mut Snapshot,
    pace: &Pace,
    started: Instant,
) -> Result<Outcome> {
    probe_at(config, snapshot, pace, started, gate::now_ns())
}

/// [`probe`] with the wall clock (nanoseconds since the epoch) as a parameter: a file
/// hashed equal gets its stamp saved only when the stamp is older than
/// [`RACY_WINDOW_NS`] before `wall_ns`.
fn probe_at(
    config: &Config,
    snapshot: &mut Snapshot,
    pace: &Pace,
    started: Instant,
    wall_ns: i64,
) -> Result<Outcome> {
    let clock = Clock::new(pace, started, wall_ns);
    let allow_extra = gate::allow_matcher(&config.allow_extra, "TREESEAL_ALLOW_EXTRA")?;
    let mut covered = Vec::new();
    for tree in &config.trees {
        let (manifest, digest) = match gate::open_tree(tree)? {
            Ok(opened) => opened,
            Err(refusal) => return Ok(Err((tree.clone(), refusal))),
        };
        let options = Options {
            allow_extra: allow_extra.clone(),
            ..Options::default()
        };
        let found = match snapshot.tree_mut(&tree.root, &digest) {
            Some(state) => probe_tree(&tree.root, &manifest, state, options, &clock)?,
            None => {
                let report = verify::verify(&tree.root, &manifest, &options)?;
                let coverage = Coverage {
                    entries: manifest.entries.len() as u64,
                    entries_checked: manifest.entries.len() as u64,
                    bytes: report.bytes_hashed,
                    slice_bytes: report.bytes_hashed,
                    ..Coverage::default()
                };
                match report.is_equal() {
                    true => Ok(coverage),
                    false => Err(report),
                }
            }
        };
        match found {
            Ok(coverage) => covered.push((tree.clone(), coverage)),
            Err(report) => return Ok(Err((tree.clone(), Refusal::Differs(report)))),
        }
    }
    Ok(Ok(covered))
}

/// One tree's probe; `Err` is the report of a difference.
fn probe_tree(
    root: &Path,
    manifest: &Manifest,
    state: &mut TreeState,
    mut options: Options,
    clock: &Clock,
) -> Result<std::result::Result<Coverage, Report>> {
    let entries = &manifest.entries;
    let len = entries.len();
    let mut coverage = Coverage {
        entries: len as u64,
        bytes: entries.iter().map(|e| e.node.size()).sum(),
        pieced: entries.iter().any(|e| e.node.size() > PIECE_LEN),
        ..Coverage::default()
    };
    let progress = &mut state.progress;
    // A cursor past the end (a snapshot is only used for the manifest it was made for, so
    // this is only defensive) starts over.
    let at = |cursor: u32| (cursor as usize).min(len) % len.max(1);

    // 1. Stamp windows, from the saved cursor, until the stamp share of the budget is
    // used (at least one window) or every entry was compared once.
    let stamps_until = clock.stamps_until();
    options.trusted = std::mem::take(&mut state.stamps);
    let mut start = at(progress.window);
    let mut size = clock.pace.window.unwrap_or(FIRST_WINDOW).max(1);
    let mut unvouched = Vec::new();
    loop {
        let window_started = Instant::now();
        let end = (start + size).min(len);
        options.window = Some(start..end);
        let report = verify::verify(root, manifest, &options)?;
        if !report.is_equal() {
            state.stamps = options.trusted;
            return Ok(Err(report));
        }
        unvouched.extend(report.unhashed);
        let checked = end - start;
        coverage.entries_checked += checked as u64;
        start = if end >= len { 0 } else { end };
        let now = Instant::now();
        if clock.pace.window.is_some()
            || coverage.entries_checked >= len as u64
            || now >= stamps_until
        {
            break;
        }
        // Size the next window to the time left, at the pace of this one, with a margin.
        let per_entry = now.duration_since(window_started).as_secs_f64() / checked.max(1) as f64;
        let left = stamps_until.duration_since(now).as_secs_f64();
        size = ((left * 0.8 / per_entry.max(1e-9)) as usize)
            .max(FIRST_WINDOW)
            .min(len - coverage.entries_checked as usize);
    }
    state.stamps = options.trusted;
    progress.window = start as u32;

    // 2. Hash what metadata could not vouch for: the oldest carried first, then this
    // probe's; what does not fit stays carried.
    let root_dir = Root::open(root)?;
    let mut queue = std::mem::take(&mut progress.carried);
    let mut queued: HashSet<u32> = queue.iter().copied().collect();
    queue.extend(unvouched.into_iter().filter(|i| queued.insert(*i)));
    let mut hashed_bytes = 0u64;
    let mut next = 0;
    let racy_after = clock.racy_after_ns;
    let mut fresh = Vec::new();
    while next < queue.len() {
        let over = match clock.pace.slice {
            Some(quota) => hashed_bytes >= quota,
            None => Instant::now() >= clock.hash_until,
        };
        if next > 0 && over {
            break;
        }
        let index = queue[next] as usize;
        next += 1;
        if let Some(index) = (index < len).then_some(index) {
            match hash_entry(root, &root_dir, manifest, index)? {
                Err(what) => return Ok(Err(differs(manifest, index, what))),
                // The sealed content: its stamp now vouches for it, unless it is too
                // recent to tell a later change in the same timestamp tick apart.
                Ok(Some(stamp)) if stamp.ctime_ns < racy_after && stamp.mtime_ns < racy_after => {
                    fresh.push((index as u32, stamp))
                }
                Ok(_) => {}
            }
            hashed_bytes += entries.at(index).node.size();
            coverage.unvouched_hashed += 1;
        }
    }
    state.stamps = with_stamps(std::mem::take(&mut state.stamps), fresh);
    progress.carried = queue.split_off(next);
    coverage.carried = progress.carried.len() as u64;

    // 3. The content slice: every file in turn from the saved cursor, whatever its stamp,
    // until the budget is used (at least one file or piece) or every file was hashed once.
    // A file longer than a piece is hashed a piece at a time, across probes if need be.
    let first = at(progress.content);
    let mut partial = progress
        .partial
        .take()
        .filter(|(i, _)| *i as usize == first);
    let mut cursor = first;
    let (mut units, mut passed) = (0u64, 0usize);
    while passed < len {
        let over = match clock.pace.slice {
            Some(quota) => hashed_bytes >= quota,
            None => Instant::now() >= clock.hash_until,
        };
        if units > 0 && over {
            break;
        }
        let index = cursor;
        let size = entries.at(index).node.size();
        if matches!(entries.at(index).node, NodeRef::File { .. }) {
            let done = match size > PIECE_LEN {
                false => match hash_entry(root, &root_dir, manifest, index)? {
                    Err(what) => return Ok(Err(differs(manifest, index, what))),
                    Ok(_) => size,
                },
                true => {
                    let state = partial.take().map(|(_, p)| p).unwrap_or_default();
                    match hash_piece(root, &root_dir, manifest, index, state)? {
                        Piece::Differs(what) => return Ok(Err(differs(manifest, index, what))),
                        Piece::More(state, bytes) => {
                            // Stay on this file: the next piece, in this probe or the next.
                            partial = Some((index as u32, state));
                            units += 1;
                            hashed_bytes += bytes;
                            coverage.slice_bytes += bytes;
                            continue;
                        }
                        Piece::Done(bytes) => bytes,
                    }
                }
            };
            units += 1;
            hashed_bytes += done;
            coverage.slice_bytes += done;
        }
        cursor = (index + 1) % len;
        passed += 1;
    }
    progress.content = cursor as u32;
    progress.partial = partial;
    Ok(Ok(coverage))
}

/// One more piece of a large file of the content slice.
enum Piece {
    /// Hashed this many bytes; more to go.
    More(Partial, u64),
    /// Hashed the last piece (this many bytes): the file is the sealed one.
    Done(u64),
    /// The file is not the sealed one.
    Differs(What),
}

/// Hashes the next piece of manifest entry `index`, a regular file longer than
/// [`PIECE_LEN`], from `state` (which starts over when it cannot belong to the file).
fn hash_piece(
    root: &Path,
    dir: &Root,
    manifest: &Manifest,
    index: usize,
    state: Partial,
) -> Result<Piece> {
    use std::os::unix::fs::FileExt;
    let entry = manifest.entries.at(index);
    let NodeRef::File { size, hash } = entry.node else {
        return Ok(Piece::Done(0));
    };
    let io_error = |e| Error::io("read", &beneath::join(root, entry.path), e);
    let (file, meta) = match open_sealed_file(root, dir, entry.path)? {
        Ok(opened) => opened,
        Err(what) => return Ok(Piece::Differs(what)),
    };
    let changed_size = |found_size| {
        Piece::Differs(What::Content {
            expected_size: size,
            found_size,
        })
    };
    if meta.len() != size {
        return Ok(changed_size(meta.len()));
    }
    let state = match state.fits(size) {
        true => state,
        false => Partial::default(),
    };
    let range = state.next_piece(size);
    let mut data = vec![0; (range.end - range.start) as usize];
    match file.read_exact_at(&mut data, range.start) {
        Ok(()) => {}
        // It shrank since the fstat: not the sealed file.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Ok(changed_size(file.metadata().map_err(io_error)?.len()))
        }
        Err(e) => return Err(io_error(e)),
    }
    let bytes = data.len() as u64;
    Ok(match state.step(&data, size) {
        Step::More(state) => Piece::More(state, bytes),
        Step::Done(found) if found == *hash => Piece::Done(bytes),
        Step::Done(_) => changed_size(size),
    })
}

/// Hashes the file of manifest entry `index`: `Ok` when it is the sealed one, with the
/// stamp of the file that was read (from `fstat` on the open file, before reading; `None`
/// when its times do not fit), `Err` with what differs when it is not.
fn hash_entry(
    root: &Path,
    dir: &Root,
    manifest: &Manifest,
    index: usize,
) -> Result<std::result::Result<Option<Stamp>, What>> {
    let entry = manifest.entries.at(index);
    let NodeRef::File { size, hash } = entry.node else {
        return Ok(Ok(None));
    };
    let (file, meta) = match open_sealed_file(root, dir, entry.path)? {
        Ok(opened) => opened,
        Err(what) => return Ok(Err(what)),
    };
    let stamp = Stamp::of_metadata(&meta);
    Ok(match hash::hash_opened(file, size) {
        Ok(Hashed::File { hash: h, size: s }) if h == *hash && s == size => Ok(stamp),
        Ok(Hashed::File { size: found, .. }) => Err(What::Content {
            expected_size: size,
            found_size: found,
        }),
        Ok(Hashed::NotRegular) => Err(not_regular(root, entry.path)),
        Err(e) => return Err(Error::io("read", &beneath::join(root, entry.path), e)),
    })
}

/// Opens the sealed regular file at `rel` beneath `dir` and `fstat`s it: `Err` with what
/// differs when it is gone or is not a regular file any more.
fn open_sealed_file(
    root: &Path,
    dir: &Root,
    rel: &[u8],
) -> Result<std::result::Result<(std::fs::File, std::fs::Metadata), What>> {
    let io_error = |e| Error::io("read", &beneath::join(root, rel), e);
    let file = match dir.open_file(rel) {
        Ok(Some(file)) => file,
        Ok(None) => return Ok(Err(not_regular(root, rel))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Err(What::Missing {
                kind: Kind::File,
                below: 0,
            }))
        }
        Err(e) => return Err(io_error(e)),
    };
    let meta = file.metadata().map_err(io_error)?;
    match meta.file_type().is_file() {
        true => Ok(Ok((file, meta))),
        false => Ok(Err(not_regular(root, rel))),
    }
}

/// A sealed file found replaced by something else: what is there now, if it can be told.
fn not_regular(root: &Path, rel: &[u8]) -> What {
    What::Type {
        expected: Kind::File,
        found: beneath::kind_now(root, rel).unwrap_or(Kind::File),
    }
}

/// `stamps` (sorted by entry index) with `fresh` (any order) put in: a fresh stamp
/// replaces the one of its entry.
fn with_stamps(stamps: Vec<(u32, Stamp)>, mut fresh: Vec<(u32, Stamp)>) -> Vec<(u32, Stamp)> {
    if fresh.is_empty() {
        return stamps;
    }
    fresh.sort_by_key(|(index, _)| *index);
    fresh.dedup_by_key(|(index, _)| *index);
    let mut out = Vec::with_capacity(stamps.len() + fresh.len());
    let mut fresh = fresh.into_iter().peekable();
    for (index, stamp) in stamps {
        while let Some(f) = fresh.next_if(|(at, _)| *at < index) {
            out.push(f);
        }
        match fresh.next_if(|(at, _)| *at == index) {
            Some(f) => out.push(f),
            None => out.push((index, stamp)),
        }
    }
    out.extend(fresh);
    out
}

/// The report of one difference found by hashing.
fn differs(manifest: &Manifest, index: usize, what: What) -> Report {
    Report {
        differences: vec![Difference {
            path: manifest.entries.at(index).path.to_vec(),
            what,
        }],
        entries: manifest.entries.len(),
        ..Report::default()
    }
}

#[cfg(test)]
mod tests;
