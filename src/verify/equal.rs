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

use std::ffi::CStr;
use std::fs::File;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;
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
    let (files, bytes) = expected
        .iter()
        .filter_map(|e| match e.node {
            NodeRef::File { size, .. } => Some(size),
            _ => None,
        })
        .fold((0usize, 0u64), |(n, b), size| {
            (n + 1, b.saturating_add(size))
        });
    let prover = Prover {
        root,
        expected,
        policy,
        matcher,
        options,
        stop: AtomicBool::new(false),
        hashed: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        trusted: AtomicU64::new(0),
        stamps: Mutex::new(match options.stamps {
            true => Vec::with_capacity(files),
            false => Vec::new(),
        }),
        pool: None,
    };
    let root_unit = Unit::Sealed {
        at: Place {
            rel: Vec::new(),
            parent: None,
        },
        index: None,
        end: expected.len(),
        state: matcher.root_state(),
        include: true,
    };
    match crate::pool::worth_threads(files, bytes).then(crate::pool::workers) {
        Some(Some(pool)) => {
            let prover = Prover {
                pool: Some(pool),
                ..prover
            };
            pool.scope(|scope| prover.spawn(scope, root_unit));
            prover.report()
        }
        _ => {
            // One thread: depth first, with an explicit stack.
            let mut stack = vec![root_unit];
            while let Some(unit) = stack.pop() {
                prover.check(unit, &mut |child| stack.push(child));
            }
            prover.report()
        }
    }
}

/// The pass's shared state.
struct Prover<'a> {
    root: &'a Path,
    expected: EntrySlice<'a>,
    policy: ModePolicy,
    matcher: &'a Matcher,
    options: &'a Options,
    /// Set on the first sign that the tree may differ, or of an error: every worker stops.
    stop: AtomicBool,
    hashed: AtomicU64,
    bytes: AtomicU64,
    trusted: AtomicU64,
    /// With [`Options::stamps`], the stamps of the files hashed and found equal.
    stamps: Mutex<Vec<(u32, Stamp)>>,
    /// The pool a large directory's names are split across (none on one thread).
    pool: Option<&'static rayon::ThreadPool>,
}

/// A directory to check.
enum Unit {
    /// A directory the manifest has (entry `index`; the root has none), whose entries end
    /// before `end`. `include` is false for a directory the rules exclude but walk into
    /// for exceptions.
    Sealed {
        at: Place,
        index: Option<usize>,
        end: usize,
        state: DirState,
        include: bool,
    },
    /// A directory the manifest does not have, listed as the walk would list it, for its
    /// errors only: below an extra path `allow_extra` allows (`allowed`), where anything
    /// may be, or an excluded directory walked into for exceptions, which must hold
    /// nothing the rules include.
    Unsealed {
        at: Place,
        state: DirState,
        allowed: bool,
    },
}

/// Where a directory to check is: its tree path, and its parent's handle when that was
/// kept open for it.
struct Place {
    rel: Vec<u8>,
    parent: Option<Arc<Held>>,
}

/// How many directory handles this module has open: listed directories are kept open for
/// their subdirectories to be opened beside them (`openat` of one name, instead of a
/// lookup of every component from the root), while fewer than [`held_limit`] are.
static HELD: AtomicUsize = AtomicUsize::new(0);

/// A directory handle counted in [`HELD`].
struct Held(OwnedFd);

impl Held {
    fn new(fd: OwnedFd) -> Held {
        HELD.fetch_add(1, Relaxed);
        Held(fd)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        HELD.fetch_sub(1, Relaxed);
    }
}

/// The most directory handles kept open for subdirectories: a quarter of the descriptors
/// the process may open (the rest is for the workers' files and directories, and for
/// whatever else is open), and at most 1024. Past it, a subdirectory is opened by its path
/// from the root.
fn held_limit() -> usize {
    static LIMIT: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *LIMIT.get_or_init(|| {
        let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        soft.map_or(1024, |n| usize::try_from(n / 4).unwrap_or(1024).min(1024))
    })
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

    /// Checks one directory, handing its subdirectories to `more`; on any doubt, stops
    /// the pass.
    fn check(&self, unit: Unit, more: &mut dyn FnMut(Unit)) {
        if self.stop.load(Relaxed) {
            return;
        }
        let done = match unit {
            Unit::Sealed {
                at,
                index,
                end,
                state,
                include,
            } => self.sealed(at, index, end, &state, include, more),
            Unit::Unsealed { at, state, allowed } => self.unsealed(at, &state, allowed, more),
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
        at: Place,
        index: Option<usize>,
        end: usize,
        state: &DirState,
        include: bool,
        more: &mut dyn FnMut(Unit),
    ) -> Proven {
        let dir = self.open_dir(at.parent, &at.rel)?;
        let rel = &at.rel[..];
        let start = index.map_or(0, |i| i + 1);
        if let Some(index) = index {
            if self.policy == ModePolicy::Full {
                let st = rustix::fs::fstat(&dir.0).map_err(|_| NotProven)?;
                let want = self.expected.at(index).mode;
                if self.policy.effective(Kind::Dir, want)
                    != self.policy.effective(Kind::Dir, st.st_mode)
                {
                    return Err(NotProven);
                }
            }
        }
        if !include && start == end {
            // Re-included and empty in the manifest: the walk leaves such a directory out.
            return Err(NotProven);
        }
        let names = Names::list(&dir.0)?;
        let listed = Listed {
            dir: &dir,
            rel,
            state,
            names: &names,
        };
        let order = names.sorted();
        match self.pool.filter(|_| order.len() >= PARALLEL_NAMES) {
            None => self.children(&listed, &order, start..end, more),
            Some(pool) => {
                // Runs of names on several threads, each with the manifest's children from
                // its first name up to the next run's first name.
                let bounds: Vec<usize> = order
                    .chunks(RUN)
                    .skip(1)
                    .map(|run| {
                        let first = listed.path(names.name(run[0]));
                        start
                            + self
                                .expected
                                .slice(start..end)
                                .partition_point(|e| path_order(e.path, &first).is_lt())
                    })
                    .collect();
                let found = Mutex::new(Vec::new());
                let outcome = pool.install(|| {
                    order.par_chunks(RUN).enumerate().try_for_each(|(i, run)| {
                        let lo = if i == 0 { start } else { bounds[i - 1] };
                        let hi = bounds.get(i).copied().unwrap_or(end);
                        let mut units = Vec::new();
                        self.children(&listed, run, lo..hi, &mut |u| units.push(u))?;
                        found
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .extend(units);
                        Ok(())
                    })
                });
                outcome?;
                for unit in found.into_inner().unwrap_or_else(|e| e.into_inner()) {
                    more(unit);
                }
                Ok(())
            }
        }
    }

    /// Merges the names `order` (indices into the listing, in byte order) with the
    /// manifest entries `range`, which hold the manifest's children of the directory with
    /// those names (and what lies below them).
    fn children(
        &self,
        listed: &Listed<'_>,
        order: &[u32],
        range: std::ops::Range<usize>,
        more: &mut dyn FnMut(Unit),
    ) -> Proven {
        let prefix = if listed.rel.is_empty() {
            0
        } else {
            listed.rel.len() + 1
        };
        let mut next = range.start;
        let mut stamps = Vec::new();
        let mut path = Vec::with_capacity(prefix + 64);
        path.extend_from_slice(listed.rel);
        if prefix > 0 {
            path.push(b'/');
        }
        // Where the snapshot's stamps for the entries from `next` on begin.
        let trusted = &self.options.trusted;
        let mut vouched = trusted.partition_point(|(i, _)| (*i as usize) < range.start);
        for &at in order {
            if self.stop.load(Relaxed) {
                return Err(NotProven);
            }
            let (name, file_type) = listed.names.get(at);
            let bytes = name.to_bytes();
            if prefix == 0 && bytes == DEFAULT_NAME.as_bytes() {
                continue;
            }
            path.truncate(prefix);
            path.extend_from_slice(bytes);
            let kind = match kind_hint(file_type) {
                Some(kind) => kind,
                None => Kind::from_mode(self.stat(&listed.dir.0, name)?.st_mode),
            };
            let decision = self.matcher.decide(&path, kind == Kind::Dir, listed.state);
            let (state, include) = match decision {
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
                self.unsealed_name(listed, name, &path, kind, state, include, more)?;
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
                    more(Unit::Sealed {
                        at: listed.place(&path),
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
                    self.file(
                        &listed.dir.0,
                        name,
                        index,
                        entry.mode,
                        size,
                        hash,
                        stamp,
                        &mut stamps,
                    )?;
                }
                NodeRef::Symlink { target } => {
                    let found = rustix::fs::readlinkat(&listed.dir.0, name, Vec::new())
                        .map_err(|_| NotProven)?;
                    if found.as_bytes() != target {
                        return Err(NotProven);
                    }
                }
                NodeRef::Special(_) => {
                    let st = self.stat(&listed.dir.0, name)?;
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
        Ok(())
    }

    /// A name on disk, part of the tree, that the manifest does not have: extra, which
    /// only `allow_extra` may excuse, unless it is a directory walked into for exceptions
    /// that turns out to hold nothing the rules include.
    #[allow(clippy::too_many_arguments)]
    fn unsealed_name(
        &self,
        listed: &Listed<'_>,
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
                at: listed.place(path),
                state,
                allowed,
            }),
            _ => self.as_walked(&listed.dir.0, name, kind)?,
        }
        Ok(())
    }

    /// Lists the directory at `rel`, which the manifest does not have, as the walk would:
    /// with `allowed`, for its errors only; without, it must hold nothing the rules
    /// include.
    fn unsealed(
        &self,
        at: Place,
        state: &DirState,
        allowed: bool,
        more: &mut dyn FnMut(Unit),
    ) -> Proven {
        let dir = self.open_dir(at.parent, &at.rel)?;
        let names = Names::list(&dir.0)?;
        let listed = Listed {
            dir: &dir,
            rel: &at.rel,
            state,
            names: &names,
        };
        let mut path = at.rel.clone();
        path.push(b'/');
        let prefix = path.len();
        for at in 0..names.len() {
            if self.stop.load(Relaxed) {
                return Err(NotProven);
            }
            let (name, file_type) = names.get(at as u32);
            path.truncate(prefix);
            path.extend_from_slice(name.to_bytes());
            let kind = match kind_hint(file_type) {
                Some(kind) => kind,
                None => Kind::from_mode(self.stat(&dir.0, name)?.st_mode),
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
                Kind::Dir => more(Unit::Unsealed {
                    at: listed.place(&path),
                    state,
                    allowed,
                }),
                _ => self.as_walked(&dir.0, name, kind)?,
            }
        }
        Ok(())
    }

    /// What the walk does with an object it does not hash, for its errors: `fstatat`, and
    /// `readlinkat` for a symlink.
    fn as_walked(&self, dir: &OwnedFd, name: &CStr, kind: Kind) -> Proven {
        self.stat(dir, name)?;
        if kind == Kind::Symlink {
            rustix::fs::readlinkat(dir, name, Vec::new()).map_err(|_| NotProven)?;
        }
        Ok(())
    }

    /// Checks the regular file `name` in `dir`, entry `index` of `mode`, `size` bytes and
    /// `hash`, or trusted from the snapshot when its stamp is still `vouched`.
    #[allow(clippy::too_many_arguments)]
    fn file(
        &self,
        dir: &OwnedFd,
        name: &CStr,
        index: usize,
        mode: u32,
        size: u64,
        hash: &crate::tree::Hash,
        vouched: Option<Stamp>,
        stamps: &mut Vec<(u32, Stamp)>,
    ) -> Proven {
        let same_meta = |st: &rustix::fs::Stat| {
            Kind::from_mode(st.st_mode) == Kind::File
                && st.st_size as u64 == size
                && self.policy.effective(Kind::File, st.st_mode)
                    == self.policy.effective(Kind::File, mode)
        };
        if let Some(vouched) = vouched {
            // As the walk does: the stamp decides, without opening it.
            let st = self.stat(dir, name)?;
            if same_meta(&st) && Stamp::of_raw(&st) == Some(vouched) {
                self.trusted.fetch_add(1, Relaxed);
                return Ok(());
            }
        }
        let fd = rustix::fs::openat(dir, name, hash::RAW_OPEN_FLAGS, rustix::fs::Mode::empty())
            .map_err(|_| NotProven)?;
        let st = rustix::fs::fstat(&fd).map_err(|_| NotProven)?;
        if !same_meta(&st) {
            return Err(NotProven);
        }
        match hash::hash_regular(File::from(fd), size, size) {
            Ok(Hashed::File { hash: h, size: n }) if h == *hash && n == size => {}
            _ => return Err(NotProven),
        }
        self.hashed.fetch_add(1, Relaxed);
        self.bytes.fetch_add(size, Relaxed);
        if self.options.stamps {
            if let Some(stamp) = Stamp::of_raw(&st) {
                stamps.push((index as u32, stamp));
            }
        }
        Ok(())
    }

    /// Opens the directory at `rel`: the root followed if it is a symlink, nothing below
    /// it, and beside its parent when the parent's handle was kept.
    fn open_dir(
        &self,
        parent: Option<Arc<Held>>,
        rel: &[u8],
    ) -> std::result::Result<Arc<Held>, NotProven> {
        use nix::fcntl::OFlag;
        let fd = match (parent, rel.iter().rposition(|&c| c == b'/')) {
            (Some(parent), slash) => {
                let name = &rel[slash.map_or(0, |i| i + 1)..];
                let flags = rustix::fs::OFlags::RDONLY
                    | rustix::fs::OFlags::DIRECTORY
                    | rustix::fs::OFlags::NOFOLLOW
                    | rustix::fs::OFlags::CLOEXEC;
                rustix::fs::openat(&parent.0, name, flags, rustix::fs::Mode::empty())
                    .map_err(|_| NotProven)?
            }
            (None, _) => {
                let flags = match rel.is_empty() {
                    true => OFlag::O_RDONLY | OFlag::O_DIRECTORY,
                    false => OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
                };
                open_beneath(self.root, rel, flags).map_err(|_| NotProven)?
            }
        };
        Ok(Arc::new(Held::new(fd)))
    }

    /// `fstatat` without following a symlink.
    fn stat(&self, dir: &OwnedFd, name: &CStr) -> std::result::Result<rustix::fs::Stat, NotProven> {
        rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(|_| NotProven)
    }
}

/// A listed directory, for the runs of its names.
struct Listed<'a> {
    dir: &'a Arc<Held>,
    rel: &'a [u8],
    state: &'a DirState,
    names: &'a Names,
}

impl Listed<'_> {
    /// Where the subdirectory at `path` is: beside this one's handle while not too many
    /// are kept open.
    fn place(&self, path: &[u8]) -> Place {
        Place {
            rel: path.to_vec(),
            parent: (HELD.load(Relaxed) < held_limit()).then(|| Arc::clone(self.dir)),
        }
    }

    /// The tree path of `name` in this directory.
    fn path(&self, name: &CStr) -> Vec<u8> {
        crate::walk::join_rel(self.rel, name.to_bytes())
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

    fn name(&self, i: u32) -> &CStr {
        self.get(i).0
    }

    /// The names' indices in byte order of the names.
    fn sorted(&self) -> Vec<u32> {
        let mut order: Vec<u32> = (0..self.at.len() as u32).collect();
        order.sort_unstable_by(|&a, &b| self.bytes(a).cmp(self.bytes(b)));
        order
    }
}
