//! Proving a tree equal to its manifest in one parallel pass, or finding that it may not be.
//!
//! Most checks find nothing: an image's files are the files it was built from. The exact
//! comparison ([`super::verify`]) pays for its determinism in that case too: the walk
//! lists directories ahead of one consumer, which takes every object in path order, with
//! its whole path, and merges it with its manifest entry. Here, instead, each directory of
//! the manifest is checked by whichever worker lists it: its names against the manifest's
//! children of it, each file opened beside the listing, `fstat`ed, read and hashed while
//! the directory is open. Directories are checked in no particular order, nothing is kept
//! but counts (and, for the gate, stamps), and no path is built but the one the
//! `.dockerignore` rules are asked about.
//!
//! The answer is only ever "equal" ([`prove`] gives the [`Report`]) or "not proven"
//! (`None`): at the first sign of a difference, of an error, or of a case this pass does
//! not decide, every worker stops, and the caller runs the exact comparison, which finds
//! what differs (or which error comes first) the one deterministic way. So no difference
//! and no error is ever decided here. "Equal" needs every condition under which the exact
//! comparison finds the tree equal:
//!
//! - every directory of the manifest (and the root) is a directory that lists, under the
//!   rules and as the walk decides them, exactly the manifest's children of it: the same
//!   names, the same kinds (from the listing's `d_type`, confirmed by opening the file,
//!   listing the directory or reading the link);
//! - every file has its sealed size, exec bit (all permission bits with `--modes full`, as
//!   for every kind), and content, or the stamp the snapshot vouches for;
//! - every symlink has its target, and FIFOs, sockets and devices their kind;
//! - a name the manifest lacks is one `allow_extra` allows, and whatever the walk would
//!   read below it (`fstatat` of every included name, `readlinkat` of every symlink, the
//!   listing of every directory) succeeds, since the walk would fail on it;
//! - an excluded directory that exceptions may re-include, absent from the manifest, holds
//!   nothing the rules include, and lists as the walk would list it;
//! - a re-included directory the manifest has is not empty (the walk leaves out one that
//!   is, so the exact comparison finds it missing).
//!
//! The syscalls are those of the walk (see [`crate::walk`]) minus two: a directory is not
//! `fstatat`ed beside its listing (opening it with `O_DIRECTORY | O_NOFOLLOW` proves what
//! it is, and under `--modes exec` a directory's mode does not count), and a symlink is
//! only read, not also `stat`ed.
//!
//! # Descriptors stay on their thread
//!
//! No descriptor is ever used on another thread than the one that opened it, and the pass
//! runs on a pool of its own ([`pool`]) whose threads each take a private descriptor
//! table where the system allows it (`unshare(CLONE_FILES)`; Docker's default seccomp
//! profile does not). The kernel then takes no lock shared by the threads to open or close
//! a file, and no reference on the open file for each `fstat` and `read`: on the 150k-file
//! tree the pass took 7% less CPU. So that subdirectories are still opened beside their
//! parent (`openat` of one name, not a lookup of every component from `/`), each thread
//! keeps the handles of the last few directories it listed ([`Kept`]); a directory whose
//! parent another thread listed is opened by its path. A large directory's names are
//! checked in runs by any thread, each of which opens the directory itself and checks that
//! it is the one that was listed.

use std::cell::RefCell;
use std::ffi::CStr;
use std::fs::File;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};

use rustix::fs::{AtFlags, FileType, RawDir};

use super::{Options, Report};
use crate::beneath::open_beneath;
use crate::hash::{self, Hashed};
use crate::ignore::{Decision, DirState, Matcher};
use crate::tree::{is_below, path_order, EntrySlice, Kind, ModePolicy, NodeRef, DEFAULT_NAME};
use crate::walk::{kind_hint, Stamp, PARALLEL_NAMES, RUN};

/// Checks the tree at `root` against `expected` (the manifest's entries, decided by
/// `matcher` under `policy`) in one parallel pass. `Some` only when the tree is equal; the
/// report is then the one the exact comparison gives. `None` when it may not be, or when
/// anything went wrong: the exact comparison decides.
pub(super) fn prove(
    root: &Path,
    expected: EntrySlice<'_>,
    policy: ModePolicy,
    matcher: &Matcher,
    options: &Options,
) -> Option<Report> {
    prove_as(root, expected, policy, matcher, options, false)
}

/// [`prove`], from the start as if the tree were cold (`cold`: files are opened ahead,
/// see [`Ahead`]), which tests use to hold that way to the same verdicts.
pub(super) fn prove_as(
    root: &Path,
    expected: EntrySlice<'_>,
    policy: ModePolicy,
    matcher: &Matcher,
    options: &Options,
    cold: bool,
) -> Option<Report> {
    let (files, bytes) = expected
        .iter()
        .filter_map(|e| match e.node {
            NodeRef::File { size, .. } => Some(size),
            _ => None,
        })
        .fold((0usize, 0u64), |(n, b), size| {
            (n + 1, b.saturating_add(size))
        });
    let opens_ahead = opens_ahead(root);
    let pool = crate::pool::worth_threads(files, bytes)
        .then(|| pool(|| opens_ahead && starts_cold(root, expected)))
        .flatten();
    static PASSES: AtomicU64 = AtomicU64::new(0);
    let prover = Prover {
        root,
        expected,
        policy,
        matcher,
        options,
        pass: PASSES.fetch_add(1, Relaxed) + 1,
        stop: AtomicBool::new(false),
        hashed: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        trusted: AtomicU64::new(0),
        stamps: Mutex::new(match options.stamps {
            true => Vec::with_capacity(files),
            false => Vec::new(),
        }),
        split: false,
        coldness: Coldness::new(cold),
        ahead: AtomicU64::new(0),
        opens_ahead,
        ahead_width: ahead_width(pool.map_or(1, rayon::ThreadPool::current_num_threads)),
    };
    let root_unit = Unit::Sealed {
        rel: Vec::new(),
        index: None,
        end: expected.len(),
        state: matcher.root_state(),
        include: true,
    };
    match pool {
        Some(pool) => {
            let prover = Prover {
                split: true,
                ..prover
            };
            pool.scope(|scope| prover.spawn(scope, root_unit));
            // The handles the threads kept are closed by the threads that opened them.
            pool.broadcast(|_| Kept::clear());
            prover.report()
        }
        None => {
            // One thread: depth first, with an explicit stack.
            let mut stack = vec![root_unit];
            while let Some(unit) = stack.pop() {
                prover.check(unit, &mut |child| stack.push(child));
            }
            Kept::clear();
            prover.report()
        }
    }
}

/// The pass's worker threads, built by the first pass that needs them: as wide as
/// [`crate::pool::workers`], or [`crate::pool::cold_width`] when that is wider and
/// `cold()` says the tree is not in the page cache (asked only then). Each takes a
/// private descriptor table when it starts, where the system allows it (see the module
/// docs). `None` when no two threads could be started.
fn pool(cold: impl FnOnce() -> bool) -> Option<&'static rayon::ThreadPool> {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        let (warm, wide) = (crate::pool::width(), crate::pool::cold_width());
        let width = match wide > warm && cold() {
            true => wide,
            false => warm,
        };
        crate::pool::build_with(width, private_table)
    })
    .as_ref()
}

/// Whether the first file of `expected` with any content is not in the page cache (see
/// [`hash::waits_for_storage`]): one open beneath `root`, an `fstat` and that probe. A
/// tree where that cannot be told counts as warm.
pub(super) fn starts_cold(root: &Path, expected: EntrySlice<'_>) -> bool {
    let first = expected
        .iter()
        .find(|e| matches!(e.node, NodeRef::File { size, .. } if size > 0));
    let Some(first) = first else {
        return false;
    };
    open_beneath(root, first.path, hash::OPEN_FLAGS).is_ok_and(|fd| {
        rustix::fs::fstat(&fd).is_ok_and(|st| FileType::from_raw_mode(st.st_mode).is_file())
            && hash::waits_for_storage(&File::from(fd), 0)
    })
}

/// Gives the calling thread a descriptor table of its own, a copy of the process's; when
/// the system refuses (a seccomp profile), the thread goes on with the shared one.
#[allow(unsafe_code)]
fn private_table(_: usize) {
    // SAFETY: a descriptor opened on another thread means nothing (or another file) in a
    // private table. Only this module's code runs on the pool's threads (rayon's own uses
    // no descriptor), and it never uses a descriptor on another thread than the one that
    // opened it: the directories a thread keeps ([`Kept`]) are thread-local and closed by
    // it, a file is opened, read and closed by one call, and a run of a large directory
    // opens the directory itself. Hashing a large file on the hashers pool reads memory
    // mapped here, never a descriptor. Inherited descriptors keep their numbers in the
    // copy, and none is used by these threads.
    let _ = unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::FILES) };
}

/// The pass's shared state.
struct Prover<'a> {
    root: &'a Path,
    expected: EntrySlice<'a>,
    policy: ModePolicy,
    matcher: &'a Matcher,
    options: &'a Options,
    /// This pass's number, for the directories a thread keeps ([`Kept`]).
    pass: u64,
    /// Set on the first sign that the tree may differ, or of an error: every worker stops.
    stop: AtomicBool,
    hashed: AtomicU64,
    bytes: AtomicU64,
    trusted: AtomicU64,
    /// With [`Options::stamps`], the stamps of the files hashed and found equal.
    stamps: Mutex<Vec<(u32, Stamp)>>,
    /// Whether a large directory's names are split into runs for other threads.
    split: bool,
    /// Whether the probed reads show the tree is not in the page cache ([`Coldness`]):
    /// once they do, the files of a directory are opened a few ahead and their reading
    /// started at once ([`Ahead`]).
    coldness: Coldness,
    /// The bytes of files opened ahead and not yet hashed ([`Ahead`]).
    ahead: AtomicU64,
    /// Whether files may be opened ahead here (see [`opens_ahead`]).
    opens_ahead: bool,
    /// How many files each thread opens ahead ([`ahead_width`]).
    ahead_width: usize,
}

/// A directory to check, or part of one.
enum Unit {
    /// A directory the manifest has (entry `index`; the root has none), whose entries end
    /// before `end`. `include` is false for a directory the rules exclude but walk into
    /// for exceptions.
    Sealed {
        rel: Vec<u8>,
        index: Option<usize>,
        end: usize,
        state: DirState,
        include: bool,
    },
    /// Run `run` of a large directory's names (see [`Prover::split`]), with the manifest
    /// entries `range`.
    Run {
        listing: Arc<Listing>,
        run: usize,
        range: std::ops::Range<usize>,
    },
    /// A directory the manifest does not have, listed as the walk would list it, for its
    /// errors only: below an extra path `allow_extra` allows (`allowed`), where anything
    /// may be, or an excluded directory walked into for exceptions, which must hold
    /// nothing the rules include.
    Unsealed {
        rel: Vec<u8>,
        state: DirState,
        allowed: bool,
    },
}

/// A listed directory whose names are checked in runs.
struct Listing {
    rel: Vec<u8>,
    state: DirState,
    names: Names,
    /// The names' indices in byte order.
    order: Vec<u32>,
    /// Which directory was listed (`st_dev`, `st_ino`): every run opens it again.
    id: (u64, u64),
}

/// Not proven: a difference, an error, or a case left to the exact comparison.
struct NotProven;

type Proven = std::result::Result<(), NotProven>;

impl<'a> Prover<'a> {
    fn spawn<'s>(&'s self, scope: &rayon::Scope<'s>, unit: Unit)
    where
        'a: 's,
    {
        scope.spawn(move |scope| self.check(unit, &mut |child| self.spawn(scope, child)));
    }

    /// Checks one directory (or run), handing what it finds to check next to `more`; on
    /// any doubt, stops the pass.
    fn check(&self, unit: Unit, more: &mut dyn FnMut(Unit)) {
        if self.stop.load(Relaxed) {
            return;
        }
        let done = match unit {
            Unit::Sealed {
                rel,
                index,
                end,
                state,
                include,
            } => self.sealed(rel, index, end, state, include, more),
            Unit::Run {
                listing,
                run,
                range,
            } => self.run(&listing, run, range, more),
            Unit::Unsealed {
                rel,
                state,
                allowed,
            } => self.unsealed(&rel, &state, allowed, more),
        };
        if done.is_err() {
            self.stop.store(true, Relaxed);
        }
    }

    /// The report of a pass that found nothing, `None` if it stopped.
    fn report(self) -> Option<Report> {
        if self.stop.into_inner() {
            return None;
        }
        let mut stamps = self.stamps.into_inner().unwrap_or_else(|e| e.into_inner());
        stamps.sort_unstable_by_key(|(index, _)| *index);
        Some(Report {
            differences: Vec::new(),
            complete: true,
            entries: self.expected.len(),
            files_hashed: self.hashed.into_inner(),
            bytes_hashed: self.bytes.into_inner(),
            files_trusted: self.trusted.into_inner(),
            stamps,
            unhashed: Vec::new(),
        })
    }

    /// Checks the directory of the manifest at `rel` (entry `index`, whose entries end
    /// before `end`) against its children in the manifest.
    fn sealed(
        &self,
        rel: Vec<u8>,
        index: Option<usize>,
        end: usize,
        state: DirState,
        include: bool,
        more: &mut dyn FnMut(Unit),
    ) -> Proven {
        let dir = self.open_dir(&rel)?;
        let start = index.map_or(0, |i| i + 1);
        if let Some(index) = index {
            if self.policy == ModePolicy::Full {
                let st = rustix::fs::fstat(&*dir).map_err(|_| NotProven)?;
                let want = self
                    .policy
                    .effective(Kind::Dir, self.expected.at(index).mode);
                if self.policy.effective(Kind::Dir, st.st_mode) != want {
                    return Err(NotProven);
                }
            }
        }
        if !include && start == end {
            // Re-included and empty in the manifest: the walk leaves such a directory out.
            return Err(NotProven);
        }
        let names = Names::list(&dir)?;
        let order = names.sorted();
        if !self.split || order.len() < PARALLEL_NAMES {
            let has_dirs = self.children(&dir, &rel, &state, &names, &order, start..end, more)?;
            if has_dirs {
                Kept::keep(self.pass, rel, dir);
            }
            return Ok(());
        }
        // Runs of names for any thread, each with the manifest's children from its first
        // name up to the next run's first name.
        let st = rustix::fs::fstat(&*dir).map_err(|_| NotProven)?;
        Kept::keep(self.pass, rel.clone(), dir);
        let listing = Arc::new(Listing {
            rel,
            state,
            names,
            order,
            id: (st.st_dev as u64, st.st_ino as u64),
        });
        let mut lo = start;
        for (run, names) in listing.order.chunks(RUN).enumerate() {
            let hi = match listing.order.chunks(RUN).nth(run + 1) {
                Some(next) => {
                    let first = crate::walk::join_rel(&listing.rel, listing.names.bytes(next[0]));
                    lo + self
                        .expected
                        .slice(lo..end)
                        .partition_point(|e| path_order(e.path, &first).is_lt())
                }
                None => end,
            };
            debug_assert!(!names.is_empty());
            more(Unit::Run {
                listing: Arc::clone(&listing),
                run,
                range: lo..hi,
            });
            lo = hi;
        }
        Ok(())
    }

    /// Checks run `run` of a large directory's names against the manifest entries `range`.
    fn run(
        &self,
        listing: &Listing,
        run: usize,
        range: std::ops::Range<usize>,
        more: &mut dyn FnMut(Unit),
    ) -> Proven {
        let dir = match Kept::find(self.pass, &listing.rel) {
            Some(dir) => dir,
            None => self.open_dir(&listing.rel)?,
        };
        let st = rustix::fs::fstat(&*dir).map_err(|_| NotProven)?;
        if (st.st_dev as u64, st.st_ino as u64) != listing.id {
            // Not the directory that was listed any more.
            return Err(NotProven);
        }
        let order = listing.order.chunks(RUN).nth(run).ok_or(NotProven)?;
        let has_dirs = self.children(
            &dir,
            &listing.rel,
            &listing.state,
            &listing.names,
            order,
            range,
            more,
        )?;
        if has_dirs && Kept::find(self.pass, &listing.rel).is_none() {
            Kept::keep(self.pass, listing.rel.clone(), dir);
        }
        Ok(())
    }

    /// Merges the names `order` of the directory `dir` at `rel` (indices into `names`, in
    /// byte order) with the manifest entries `range`, which hold the manifest's children
    /// of the directory with those names (and what lies below them). Returns whether a
    /// subdirectory was handed to `more`.
    #[allow(clippy::too_many_arguments)]
    fn children(
        &self,
        dir: &OwnedFd,
        rel: &[u8],
        state: &DirState,
        names: &Names,
        order: &[u32],
        range: std::ops::Range<usize>,
        more: &mut dyn FnMut(Unit),
    ) -> std::result::Result<bool, NotProven> {
        let prefix = if rel.is_empty() { 0 } else { rel.len() + 1 };
        let mut next = range.start;
        let mut has_dirs = false;
        let mut stamps = Vec::new();
        let mut path = Vec::with_capacity(prefix + 64);
        path.extend_from_slice(rel);
        if prefix > 0 {
            path.push(b'/');
        }
        // Where the snapshot's stamps for the entries from `next` on begin.
        let trusted = &self.options.trusted;
        let mut vouched = trusted.partition_point(|(i, _)| (*i as usize) < range.start);
        let mut ahead = Ahead::new(&self.ahead);
        for (pos, &at) in order.iter().enumerate() {
            if self.stop.load(Relaxed) {
                return Err(NotProven);
            }
            if self.opens_ahead && self.coldness.is_cold() {
                let listed = Listed {
                    dir,
                    rel,
                    state,
                    names,
                    order,
                    range: range.clone(),
                };
                ahead.fill(self, &listed, pos);
            }
            let (name, file_type) = names.get(at);
            let bytes = name.to_bytes();
            if prefix == 0 && bytes == DEFAULT_NAME.as_bytes() {
                continue;
            }
            path.truncate(prefix);
            path.extend_from_slice(bytes);
            let kind = match kind_hint(file_type) {
                Some(kind) => kind,
                None => Kind::from_mode(stat(dir, name)?.st_mode),
            };
            let (state, include) = match self.matcher.decide(&path, kind == Kind::Dir, state) {
                Decision::Exclude => continue,
                Decision::Include(state) => (state, true),
                Decision::Descend(state) => (state, false),
            };
            let entry = (next < range.end).then(|| self.expected.at(next));
            let sealed = match entry {
                Some(e) => match e.path[prefix..].cmp(bytes) {
                    // A child of the manifest's that is not on disk (or not included).
                    std::cmp::Ordering::Less => return Err(NotProven),
                    std::cmp::Ordering::Equal => Some(e),
                    std::cmp::Ordering::Greater => None,
                },
                None => None,
            };
            let Some(entry) = sealed else {
                has_dirs |= kind == Kind::Dir;
                self.unsealed_name(dir, name, &path, kind, state, include, more)?;
                continue;
            };
            if entry.node.kind() != kind {
                return Err(NotProven);
            }
            let index = next;
            match entry.node {
                NodeRef::Dir => {
                    let below = self
                        .expected
                        .slice(index + 1..range.end)
                        .partition_point(|e| is_below(e.path, entry.path));
                    next = index + 1 + below;
                    has_dirs = true;
                    more(Unit::Sealed {
                        rel: path.clone(),
                        index: Some(index),
                        end: next,
                        state,
                        include,
                    });
                    continue;
                }
                NodeRef::File { size, hash } => {
                    while trusted
                        .get(vouched)
                        .is_some_and(|(i, _)| (*i as usize) < index)
                    {
                        vouched += 1;
                    }
                    let stamp = trusted
                        .get(vouched)
                        .filter(|(i, _)| *i as usize == index)
                        .map(|(_, s)| *s);
                    let sealed = Sealed {
                        index,
                        mode: entry.mode,
                        size,
                        hash,
                        vouched: stamp,
                    };
                    let opened = ahead.take(pos);
                    self.file(dir, name, sealed, opened, &mut stamps)?;
                }
                NodeRef::Symlink { target } => {
                    let found =
                        rustix::fs::readlinkat(dir, name, Vec::new()).map_err(|_| NotProven)?;
                    if found.as_bytes() != target {
                        return Err(NotProven);
                    }
                }
                NodeRef::Special(_) => {
                    let st = stat(dir, name)?;
                    let found = Kind::from_mode(st.st_mode);
                    let (want, have) = (
                        self.policy.effective(found, entry.mode),
                        self.policy.effective(found, st.st_mode),
                    );
                    if found != kind || want != have {
                        return Err(NotProven);
                    }
                }
            }
            next = index + 1;
        }
        if next < range.end {
            // Children of the manifest's past the last name on disk.
            return Err(NotProven);
        }
        if !stamps.is_empty() {
            self.stamps
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(stamps);
        }
        Ok(has_dirs)
    }

    /// A name on disk, part of the tree, that the manifest does not have: extra, which
    /// only `allow_extra` may excuse, unless it is a directory walked into for exceptions
    /// that turns out to hold nothing the rules include.
    #[allow(clippy::too_many_arguments)]
    fn unsealed_name(
        &self,
        dir: &OwnedFd,
        name: &CStr,
        path: &[u8],
        kind: Kind,
        state: DirState,
        include: bool,
        more: &mut dyn FnMut(Unit),
    ) -> Proven {
        let allowed = self
            .options
            .allow_extra
            .as_ref()
            .is_some_and(|m| m.excludes(path, kind == Kind::Dir));
        if include && !allowed {
            return Err(NotProven);
        }
        match kind {
            Kind::Dir => more(Unit::Unsealed {
                rel: path.to_vec(),
                state,
                allowed,
            }),
            _ => as_walked(dir, name, kind)?,
        }
        Ok(())
    }

    /// Lists the directory at `rel`, which the manifest does not have, as the walk would:
    /// with `allowed`, for its errors only; without, it must hold nothing the rules
    /// include.
    fn unsealed(
        &self,
        rel: &[u8],
        state: &DirState,
        allowed: bool,
        more: &mut dyn FnMut(Unit),
    ) -> Proven {
        let dir = self.open_dir(rel)?;
        let names = Names::list(&dir)?;
        let mut path = rel.to_vec();
        path.push(b'/');
        let prefix = path.len();
        let mut has_dirs = false;
        for at in 0..names.len() {
            if self.stop.load(Relaxed) {
                return Err(NotProven);
            }
            let (name, file_type) = names.get(at as u32);
            path.truncate(prefix);
            path.extend_from_slice(name.to_bytes());
            let kind = match kind_hint(file_type) {
                Some(kind) => kind,
                None => Kind::from_mode(stat(&dir, name)?.st_mode),
            };
            let (state, include) = match self.matcher.decide(&path, kind == Kind::Dir, state) {
                Decision::Exclude => continue,
                Decision::Include(state) => (state, true),
                Decision::Descend(state) => (state, false),
            };
            if include && !allowed {
                return Err(NotProven);
            }
            match kind {
                Kind::Dir => {
                    has_dirs = true;
                    more(Unit::Unsealed {
                        rel: path.clone(),
                        state,
                        allowed,
                    })
                }
                _ => as_walked(&dir, name, kind)?,
            }
        }
        if has_dirs {
            Kept::keep(self.pass, rel.to_vec(), dir);
        }
        Ok(())
    }

    /// Checks the regular file `name` in `dir` against its entry.
    /// `opened` is the file opened ahead of time, if it was.
    fn file(
        &self,
        dir: &OwnedFd,
        name: &CStr,
        sealed: Sealed<'_>,
        opened: Option<OwnedFd>,
        stamps: &mut Vec<(u32, Stamp)>,
    ) -> Proven {
        let same_meta = |st: &rustix::fs::Stat| {
            Kind::from_mode(st.st_mode) == Kind::File
                && st.st_size as u64 == sealed.size
                && self.policy.effective(Kind::File, st.st_mode)
                    == self.policy.effective(Kind::File, sealed.mode)
        };
        if let Some(vouched) = sealed.vouched {
            // As the walk does: the stamp decides, without opening it.
            let st = stat(dir, name)?;
            if same_meta(&st) && Stamp::of_raw(&st) == Some(vouched) {
                self.trusted.fetch_add(1, Relaxed);
                return Ok(());
            }
        }
        let fd = match opened {
            Some(fd) => fd,
            None => hash::open_at(dir, name).map_err(|_| NotProven)?,
        };
        let st = rustix::fs::fstat(&fd).map_err(|_| NotProven)?;
        if !same_meta(&st) {
            return Err(NotProven);
        }
        let size = sealed.size;
        let probe = self.coldness.probes_next();
        let hashed = match probe {
            true => hash::hash_regular_probed(File::from(fd), size, size),
            false => hash::hash_regular(File::from(fd), size, size).map(|h| (h, false)),
        };
        match hashed {
            Ok((Hashed::File { hash, size: n }, waited)) if hash == *sealed.hash && n == size => {
                if probe {
                    self.coldness.record(waited);
                }
            }
            _ => return Err(NotProven),
        }
        self.hashed.fetch_add(1, Relaxed);
        self.bytes.fetch_add(size, Relaxed);
        if self.options.stamps {
            if let Some(stamp) = Stamp::of_raw(&st) {
                stamps.push((sealed.index as u32, stamp));
            }
        }
        Ok(())
    }

    /// Opens the directory at `rel`: the root followed if it is a symlink, nothing below
    /// it; beside its parent when this thread kept the parent's handle.
    fn open_dir(&self, rel: &[u8]) -> std::result::Result<Rc<OwnedFd>, NotProven> {
        use nix::fcntl::OFlag;
        if let Some((parent, name)) = Kept::parent_of(self.pass, rel) {
            let fd = hash::leave_atime(|noatime| {
                let mut flags = rustix::fs::OFlags::RDONLY
                    | rustix::fs::OFlags::DIRECTORY
                    | rustix::fs::OFlags::NOFOLLOW
                    | rustix::fs::OFlags::CLOEXEC;
                flags.set(rustix::fs::OFlags::NOATIME, noatime);
                rustix::fs::openat(&*parent, name, flags, rustix::fs::Mode::empty())
            })
            .map_err(|_| NotProven)?;
            return Ok(Rc::new(fd));
        }
        let flags = match rel.is_empty() {
            true => OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            false => OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
        };
        let fd = open_beneath(self.root, rel, flags).map_err(|_| NotProven)?;
        Ok(Rc::new(fd))
    }
}

/// The names of a run being checked, for [`Ahead`].
struct Listed<'l> {
    dir: &'l OwnedFd,
    rel: &'l [u8],
    state: &'l DirState,
    names: &'l Names,
    order: &'l [u32],
    range: std::ops::Range<usize>,
}

/// Files of a run opened before their turn, once the tree is known to be cold: each is
/// opened and its reading started (`POSIX_FADV_WILLNEED`, which queues the reads and
/// returns), so that the storage has the next few files' reads at once from each thread,
/// and can merge those that lie side by side, instead of one read per thread at a time.
/// Measured on the 150k-file tree, page cache dropped, 32 threads: reading every file this
/// way took 1.9 s against 2.7 s one at a time (and 2.4-2.5 s with 64 threads).
///
/// Only a hint: a file opened ahead is checked exactly as one opened in its turn (the
/// `fstat` and everything after it), and one that is not used is closed. Only regular
/// files the manifest has, that the rules include and the snapshot does not vouch for,
/// are opened ahead, and only while the files opened ahead by all threads and not yet
/// hashed hold less than [`AHEAD_BYTES`] in all: what is read ahead must still be in the
/// page cache when its turn comes, in a container with little memory too.
struct Ahead<'p> {
    /// Opened files, by position in the run, in order, with their sizes.
    open: std::collections::VecDeque<(usize, OwnedFd, u64)>,
    /// The next position to consider.
    next: usize,
    /// The bytes of files opened ahead by every thread and not hashed yet.
    pending: &'p AtomicU64,
}

/// See [`Ahead`]: the page cache a check may fill ahead of its hashing.
const AHEAD_BYTES: u64 = 64 << 20;

impl<'p> Ahead<'p> {
    fn new(pending: &'p AtomicU64) -> Self {
        Ahead {
            open: Default::default(),
            next: 0,
            pending,
        }
    }

    /// Opens the files after position `pos` up to [`ahead_width`] ahead.
    fn fill(&mut self, prover: &Prover<'_>, listed: &Listed<'_>, pos: usize) {
        let width = prover.ahead_width;
        let end = listed.order.len().min(pos + 1 + width);
        let prefix = if listed.rel.is_empty() {
            0
        } else {
            listed.rel.len() + 1
        };
        let mut path = Vec::new();
        self.next = self.next.max(pos + 1);
        while self.next < end {
            let j = self.next;
            let (name, file_type) = listed.names.get(listed.order[j]);
            let bytes = name.to_bytes();
            if file_type != FileType::RegularFile
                || (prefix == 0 && bytes == DEFAULT_NAME.as_bytes())
            {
                self.next += 1;
                continue;
            }
            path.clear();
            path.extend_from_slice(listed.rel);
            if prefix > 0 {
                path.push(b'/');
            }
            path.extend_from_slice(bytes);
            let entries = prover.expected.slice(listed.range.clone());
            let at = entries.partition_point(|e| path_order(e.path, &path).is_lt());
            let size = match entries.get(at) {
                Some(e) if e.path == path.as_slice() => match e.node {
                    NodeRef::File { size, .. } => Some(size),
                    _ => None,
                },
                _ => None,
            };
            let index = (listed.range.start + at) as u32;
            let vouched = || {
                prover
                    .options
                    .trusted
                    .binary_search_by_key(&index, |(i, _)| *i)
                    .is_ok()
            };
            let included = || {
                matches!(
                    prover.matcher.decide(&path, false, listed.state),
                    Decision::Include(_)
                )
            };
            let Some(size) = size.filter(|_| included() && !vouched()) else {
                self.next += 1;
                continue;
            };
            if self.pending.load(Relaxed).saturating_add(size) > AHEAD_BYTES {
                // Considered again when more has been hashed.
                break;
            }
            self.next += 1;
            if let Ok(fd) = hash::open_at(listed.dir, name) {
                let _ = rustix::fs::fadvise(&fd, 0, None, rustix::fs::Advice::WillNeed);
                self.pending.fetch_add(size, Relaxed);
                self.open.push_back((j, fd, size));
            }
        }
    }

    /// The file at position `pos`, if it was opened ahead (those before it are closed).
    fn take(&mut self, pos: usize) -> Option<OwnedFd> {
        while let Some((j, _, size)) = self.open.front() {
            if *j > pos {
                return None;
            }
            self.pending.fetch_sub(*size, Relaxed);
            let (j, fd, _) = self.open.pop_front()?;
            if j == pos {
                return Some(fd);
            }
        }
        None
    }
}

impl Drop for Ahead<'_> {
    fn drop(&mut self) {
        for (_, _, size) in self.open.drain(..) {
            self.pending.fetch_sub(size, Relaxed);
        }
    }
}

/// Whether this file's first read should tell whether it waited for storage
/// ([`hash::hash_regular_probed`]): one file in [`PROBE_EVERY`] of each thread's, the
/// first included. A read that may not wait costs a little more than a plain one (3% of a
/// warm check's CPU when every file asked), and a cold tree shows within a few files.
fn probe_now() -> bool {
    thread_local! {
        static READS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
    }
    READS.with(|reads| {
        let n = reads.get();
        reads.set(n.wrapping_add(1));
        n % PROBE_EVERY == 0
    })
}

/// See [`probe_now`].
const PROBE_EVERY: u32 = 16;

/// Whether the probed reads show a cold tree: a score that rises by one for each read
/// that would have waited for storage and falls by one, never below zero, for each that
/// would not. The tree is cold once the score reaches [`COLD_SCORE`], and stays cold: no
/// read is probed after that. While the score is above zero every read is probed, not
/// one in [`PROBE_EVERY`] ([`probe_now`]), so that a cold tree is known a few files after
/// its first read that waits (and a warm part before does not delay that), and a warm
/// one goes back to probing seldom as soon.
///
/// One read that would have waited proves nothing: `RWF_NOWAIT` also fails on pages in
/// the cache when the read would wait for a lock, and a "warm" page cache may have lost a
/// few pages. Measured on the 150k-file tree just read, 2 cores: 146-338 of a `verify`'s
/// 9,400 probes failed (1.5-3.6%), so that the first of them put every warm check into
/// the cold way, 130,000 `POSIX_FADV_WILLNEED` calls and 4% more CPU. Under this rule, in
/// a simulation of checks of a million files on one thread: with 5% of the reads failing
/// at random, none of 100 checks turned cold (10%: 5 of 100; 20%, a tree partly cold:
/// all); with 95% failing, every check was cold within 44 files (half within 6).
pub(super) struct Coldness {
    score: std::sync::atomic::AtomicU32,
}

impl Coldness {
    /// No evidence yet; `cold`: the tree counts as cold from the start.
    pub(super) fn new(cold: bool) -> Self {
        let score = if cold { COLD_SCORE } else { 0 };
        Coldness {
            score: score.into(),
        }
    }

    /// Counts one probed read (`waited`: it would have waited for storage).
    pub(super) fn record(&self, waited: bool) {
        let update = |score: u32| Some(next_score(score, waited));
        let _ = self.score.fetch_update(Relaxed, Relaxed, update);
    }

    /// Whether the tree is cold.
    pub(super) fn is_cold(&self) -> bool {
        self.score.load(Relaxed) >= COLD_SCORE
    }

    /// Whether the next read should be probed: not once the tree is cold; every read
    /// while a read has waited since the score was last zero; else one in [`PROBE_EVERY`].
    fn probes_next(&self) -> bool {
        match self.score.load(Relaxed) {
            0 => probe_now(),
            score => score < COLD_SCORE,
        }
    }
}

/// See [`Coldness`].
pub(super) const COLD_SCORE: u32 = 6;

/// [`Coldness`]'s score after one more probed read; at [`COLD_SCORE`] it stays (a read
/// probed by another thread just before cannot make the tree warm again).
fn next_score(score: u32, waited: bool) -> u32 {
    match (score >= COLD_SCORE, waited) {
        (true, _) => score,
        (false, true) => score + 1,
        (false, false) => score.saturating_sub(1),
    }
}

/// Whether files of the tree at `root` are opened ahead on a cold cache ([`Ahead`]): not
/// through FUSE (`fuse-overlayfs`, rootless Docker's storage), which gained nothing from
/// it on the 150k-file tree (25 s cold either way, the daemon being the bottleneck) while
/// its daemon, which holds a descriptor per open file until the kernel's asynchronous
/// release reaches it, went from 3,500 open descriptors to 7,000-14,000 of its 20,000;
/// past its limit its listings come back incomplete.
fn opens_ahead(root: &Path) -> bool {
    const FUSE_SUPER_MAGIC: u64 = 0x6573_5546;
    rustix::fs::statfs(root).is_ok_and(|fs| fs.f_type as u64 != FUSE_SUPER_MAGIC)
}

/// How many files each of `threads` threads opens ahead ([`Ahead`]): 32, or fewer when
/// the descriptors the process may open are few (a quarter of them shared by the
/// threads), none below 2.
fn ahead_width(threads: usize) -> usize {
    static SOFT: OnceLock<Option<u64>> = OnceLock::new();
    let soft =
        *SOFT.get_or_init(|| rustix::process::getrlimit(rustix::process::Resource::Nofile).current);
    ahead_share(soft, threads)
}

/// [`ahead_width`] under a soft descriptor limit of `soft` (`None`: unlimited).
pub(super) fn ahead_share(soft: Option<u64>, threads: usize) -> usize {
    let share = soft.map_or(u64::MAX, |n| n / 4 / threads.max(1) as u64);
    match share.min(32) {
        n if n < 2 => 0,
        n => n as usize,
    }
}

/// A regular file's manifest entry, as [`Prover::file`] checks it: entry `index`, with
/// `mode`, `size` and `hash`, and the stamp the snapshot vouches for, if any.
struct Sealed<'a> {
    index: usize,
    mode: u32,
    size: u64,
    hash: &'a crate::tree::Hash,
    vouched: Option<Stamp>,
}

/// `fstatat` without following a symlink.
fn stat(dir: &OwnedFd, name: &CStr) -> std::result::Result<rustix::fs::Stat, NotProven> {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(|_| NotProven)
}

/// What the walk does with an object it does not hash, for its errors: `fstatat`, and
/// `readlinkat` for a symlink.
fn as_walked(dir: &OwnedFd, name: &CStr, kind: Kind) -> Proven {
    stat(dir, name)?;
    if kind == Kind::Symlink {
        rustix::fs::readlinkat(dir, name, Vec::new()).map_err(|_| NotProven)?;
    }
    Ok(())
}

/// The handles of the last directories a thread listed that have subdirectories, kept so
/// that the subdirectories this thread checks next are opened beside them. Thread-local:
/// each handle is used and closed by the thread that opened it. Tagged with the pass they
/// belong to (another pass may be of another tree), and closed when a pass ends.
#[derive(Default)]
struct Kept {
    pass: u64,
    dirs: Vec<(Vec<u8>, Rc<OwnedFd>)>,
}

thread_local! {
    static KEPT: RefCell<Kept> = RefCell::new(Kept::default());
}

impl Kept {
    /// How many directory handles a thread keeps: enough for the depth-first order in
    /// which a thread takes the subdirectories it found itself (a handle per level), few
    /// enough that the pool's threads together keep a few hundred at most.
    const MOST: usize = 8;

    /// Keeps the handle `dir` of the directory at `rel` for this thread.
    fn keep(pass: u64, rel: Vec<u8>, dir: Rc<OwnedFd>) {
        KEPT.with_borrow_mut(|kept| {
            if kept.pass != pass {
                kept.dirs.clear();
                kept.pass = pass;
            }
            if kept.dirs.len() == Self::MOST {
                kept.dirs.remove(0);
            }
            kept.dirs.push((rel, dir));
        });
    }

    /// The kept handle of `rel`'s parent directory, if this thread has it, and `rel`'s
    /// last name.
    fn parent_of(pass: u64, rel: &[u8]) -> Option<(Rc<OwnedFd>, &[u8])> {
        if rel.is_empty() {
            return None;
        }
        let (parent, name) = match rel.iter().rposition(|&c| c == b'/') {
            Some(slash) => (&rel[..slash], &rel[slash + 1..]),
            None => (&rel[..0], rel),
        };
        KEPT.with_borrow(|kept| {
            if kept.pass != pass {
                return None;
            }
            let (_, dir) = kept
                .dirs
                .iter()
                .rev()
                .find(|(r, _)| r.as_slice() == parent)?;
            Some((Rc::clone(dir), name))
        })
    }

    /// The kept handle of the directory at `rel` itself, if this thread has it.
    fn find(pass: u64, rel: &[u8]) -> Option<Rc<OwnedFd>> {
        KEPT.with_borrow(|kept| {
            let found = kept.dirs.iter().rev().find(|(r, _)| r.as_slice() == rel);
            found
                .filter(|_| kept.pass == pass)
                .map(|(_, dir)| Rc::clone(dir))
        })
    }

    /// Closes this thread's kept handles.
    fn clear() {
        KEPT.with_borrow_mut(|kept| kept.dirs.clear());
    }
}

/// One directory's names (without `.` and `..`), each with its terminating NUL, back to
/// back in one buffer, so that each can be handed to `openat` as it is.
struct Names {
    bytes: Vec<u8>,
    /// Where each name starts in `bytes`, its length without the NUL, and its `d_type`.
    at: Vec<(u32, u8, FileType)>,
}

impl Names {
    /// Lists `dir` to its end with `getdents64`.
    fn list(dir: &OwnedFd) -> std::result::Result<Names, NotProven> {
        let mut names = Names {
            bytes: Vec::new(),
            at: Vec::new(),
        };
        let mut buf = [MaybeUninit::<u8>::uninit(); 32 * 1024];
        let mut entries = RawDir::new(dir, &mut buf);
        while let Some(entry) = entries.next() {
            let entry = entry.map_err(|_| NotProven)?;
            let name = entry.file_name().to_bytes_with_nul();
            if name != b".\0" && name != b"..\0" {
                // Names are at most 255 bytes (NAME_MAX).
                let len = u8::try_from(name.len() - 1).map_err(|_| NotProven)?;
                let at = u32::try_from(names.bytes.len()).map_err(|_| NotProven)?;
                names.at.push((at, len, entry.file_type()));
                names.bytes.extend_from_slice(name);
            }
        }
        Ok(names)
    }

    fn len(&self) -> usize {
        self.at.len()
    }

    /// Name `i` (with its NUL) and its `d_type`.
    fn get(&self, i: u32) -> (&CStr, FileType) {
        let (at, len, file_type) = self.at[i as usize];
        let with_nul = &self.bytes[at as usize..][..len as usize + 1];
        let name = CStr::from_bytes_with_nul(with_nul).expect("a name ends in its NUL");
        (name, file_type)
    }

    /// Name `i`, without its NUL.
    fn bytes(&self, i: u32) -> &[u8] {
        let (at, len, _) = self.at[i as usize];
        &self.bytes[at as usize..][..len as usize]
    }

    /// The names' indices in byte order of the names.
    fn sorted(&self) -> Vec<u32> {
        let mut order: Vec<u32> = (0..self.at.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| self.bytes(a).cmp(self.bytes(b)));
        order
    }
}
