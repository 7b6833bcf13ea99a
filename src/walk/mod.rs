//! Enumerating a tree the way `COPY . /app` lays it out.
//!
//! The walk is top-down and sorted: each directory's names are read, sorted as bytes, and
//! decided one by one by the `.dockerignore` [`Matcher`] with the state of their parent,
//! as BuildKit's context walker does. An excluded directory is not entered unless an
//! exception may re-include something below it; such a directory is then part of the tree
//! only when something below it is (BuildKit creates it as a parent). Symlinks are
//! recorded with their target and never followed; FIFOs, sockets and devices are recorded
//! by type and never opened. Subdirectories (and the names of a large directory) are
//! walked in parallel and the results stitched back in order, so the output is in
//! [`path_order`] whatever the thread count.
//!
//! A name's kind comes from the directory entry's `d_type` when the file system gives it
//! (else from `fstatat`), so an excluded name costs no system call. The walk itself reads
//! only metadata; a caller that hashes ([`walk_with`] and its [`Visitor`]) is handed each
//! regular file opened relative to its directory, with `O_NOFOLLOW | O_NONBLOCK`
//! ([`crate::hash::OPEN_FLAGS`]), and its metadata then comes from `fstat` on that
//! descriptor: open, `fstat`, read, close per file. Whatever the `fstat` says decides: a
//! name listed as a file that is now a FIFO, device or symlink is recorded as such and
//! never read, and a file that cannot be opened is `fstatat`ed and left to the caller.
//! Hashing file contents is [`crate::hash`]'s job, and opening a tree path safely from
//! the root is [`crate::beneath`]'s.
//!
//! # Robustness
//!
//! The walk is iterative, not recursive: directories to list wait in a queue (a stack on
//! the calling thread, rayon's queues on the workers), so a tree nested thousands of
//! levels deep cannot overflow a thread's stack. Each directory is opened, listed, and
//! every name in it `fstatat`ed (or opened) and `readlinkat`ed relative to the open
//! directory, then closed before its subdirectories are queued: at most one directory
//! handle and one file handle per worker thread are open at a time, whatever the depth
//! or width, so a low `RLIMIT_NOFILE` is enough. Directories below the root are opened with `O_NOFOLLOW`, so one swapped for a
//! symlink during the walk is an error, never followed out of the tree. A path longer
//! than the kernel's `PATH_MAX` is opened in pieces with `openat` (see [`open_beneath`]),
//! so depth is not limited by path length either. When several directories cannot be
//! read, the error reported is the one first in path order, whatever the thread count.

use std::io;
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

use std::ops::Range;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use nix::fcntl::{openat, readlinkat, AtFlags, OFlag};
use nix::sys::stat::{fstat, fstatat, FileStat, Mode};
use rayon::prelude::*;
use rustix::fs::{FileType, RawDir};

/// Checks that a root to walk is an existing directory (see [`crate::beneath`]).
pub use crate::beneath::check_root;
use crate::beneath::{join, open_beneath};
use crate::error::{Error, Result};
use crate::ignore::{Decision, DirState, Matcher};
use crate::tree::{path_order, Kind, DEFAULT_NAME};

/// When a file's metadata says it may have changed (for the cheap healthcheck).
///
/// Times are nanoseconds since the epoch in an `i64`, which holds 1677-09-21 to
/// 2262-04-11. A file whose mtime or ctime lies outside that range has no stamp at all
/// (`Stamp::of` gives none) rather than a clamped one: clamping would give every time past
/// the limit the same value, so a change from one such time to another would look like
/// no change to the cheap check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stamp {
    /// Device number.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Status change time, nanoseconds since the epoch.
    pub ctime_ns: i64,
}

impl Stamp {
    /// The stamp of `st`, or `None` when a time does not fit (the file is then always
    /// hashed, never trusted from a snapshot).
    fn of(st: &FileStat) -> Option<Stamp> {
        Some(Stamp {
            dev: st.st_dev,
            ino: st.st_ino,
            mtime_ns: nanos(st.st_mtime, st.st_mtime_nsec)?,
            ctime_ns: nanos(st.st_ctime, st.st_ctime_nsec)?,
        })
    }

    /// The stamp of a file's metadata (from `fstat` on an open descriptor): `None` when a
    /// time does not fit, as for the walk's own stamps.
    pub fn of_metadata(m: &std::fs::Metadata) -> Option<Stamp> {
        use std::os::unix::fs::MetadataExt;
        Some(Stamp {
            dev: m.dev(),
            ino: m.ino(),
            mtime_ns: nanos(m.mtime(), m.mtime_nsec())?,
            ctime_ns: nanos(m.ctime(), m.ctime_nsec())?,
        })
    }
}

/// `secs` seconds and `nsec` nanoseconds since the epoch, in nanoseconds, if that fits an
/// `i64` and `nsec` is a proper fraction of a second (so that distinct times give
/// distinct values).
fn nanos(secs: i64, nsec: i64) -> Option<i64> {
    if !(0..1_000_000_000).contains(&nsec) {
        return None;
    }
    secs.checked_mul(1_000_000_000)?.checked_add(nsec)
}

/// One object found by the walk: metadata, and what a [`Visitor`] made of a regular file
/// while its directory was open (`check`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found<C = ()> {
    /// Relative to the root, `/`-separated, raw bytes.
    pub path: Box<[u8]>,
    /// What it is.
    pub kind: Kind,
    /// Permission bits (`0o7777`).
    pub mode: u32,
    /// Size in bytes for regular files, 0 otherwise.
    pub size: u64,
    /// Symlink target; empty for other kinds.
    pub target: Box<[u8]>,
    /// Change-detection metadata; `None` when the file's times are out of range (see
    /// [`Stamp`]).
    pub stamp: Option<Stamp>,
    /// What the visitor made of a regular file; `None` when it was not visited (the
    /// caller then opens it itself, with its own error handling).
    pub check: Option<C>,
}

/// What a caller does with each regular file of the tree while the walk has its directory
/// open (see [`walk_with`]): the file is opened relative to that directory with
/// [`crate::hash::OPEN_FLAGS`] and checked with `fstat` on the descriptor, which gives its
/// metadata too: open, `fstat`, read and close per file, instead of a `stat` by the walk
/// and an open from the root (which resolves every component again) by the hashing.
pub trait Visitor: Sync {
    /// What it makes of a file (kept in [`Found::check`]).
    type Out: Send;
    /// Where it is in one directory's names (they come in byte order); one per directory,
    /// or per run of names when a large directory is split across threads.
    type Cursor;
    /// A cursor for the names of the directory at `dir` (empty for the root).
    fn cursor(&self, dir: &[u8]) -> Self::Cursor;
    /// Whether to open the regular file at `path` and hand it to [`Visitor::visit`]; when
    /// not, it is only `fstatat`ed, as by [`walk`].
    fn wants(&self, cursor: &mut Self::Cursor, path: &[u8]) -> bool;
    /// Visits the regular file at `path`, right after [`Visitor::wants`] said yes, with the
    /// file opened and `meta` from `fstat` on it. `None` when nothing came of it.
    fn visit(
        &self,
        cursor: &mut Self::Cursor,
        path: &[u8],
        file: std::fs::File,
        meta: &FileStat,
    ) -> Option<Self::Out>;
}

/// The visitor of a metadata-only walk: opens nothing.
pub struct NoVisit;

impl Visitor for NoVisit {
    type Out = ();
    type Cursor = ();
    fn cursor(&self, _: &[u8]) {}
    fn wants(&self, _: &mut (), _: &[u8]) -> bool {
        false
    }
    fn visit(&self, _: &mut (), _: &[u8], _: std::fs::File, _: &FileStat) -> Option<()> {
        None
    }
}

/// Walks `root` and returns what `COPY` would copy, in path order.
///
/// The root itself is followed if it is a symlink (it is the context), but nothing below
/// it is. The file named [`DEFAULT_NAME`] at the root is never part of the tree.
///
/// Every directory is listed before this returns (so an unreadable directory anywhere is
/// an error here, never half-way through the iteration); the returned [`Walk`] then hands
/// out the objects in path order, freeing each directory's listing as it goes, so a
/// caller that consumes it as it goes never holds the tree twice.
pub fn walk(root: &Path, matcher: &Matcher) -> Result<Walk> {
    walk_within(root, matcher, &|_| true)
}

/// [`walk()`], but a directory that is part of the tree is only listed when `list_dir`
/// says so for its path: the budgeted healthcheck walks one range of paths at a time and
/// skips the directories wholly outside it. A skipped directory is still handed out
/// itself, with nothing below it. Directories walked only for exceptions are always
/// listed, since whether they are part of the tree depends on what is below them.
pub fn walk_within(
    root: &Path,
    matcher: &Matcher,
    list_dir: &(dyn Fn(&[u8]) -> bool + Sync),
) -> Result<Walk> {
    walk_with(root, matcher, &NoVisit, list_dir)
}

/// Walks `root` as [`walk_within`] does, handing each regular file of the tree that
/// `visitor` wants to it while its directory is open (in parallel, in no particular
/// order).
pub fn walk_with<V: Visitor>(
    root: &Path,
    matcher: &Matcher,
    visitor: &V,
    list_dir: &(dyn Fn(&[u8]) -> bool + Sync),
) -> Result<Walk<V::Out>> {
    check_root(root)?;
    let listed = Listed {
        root,
        matcher,
        visitor,
        list_dir,
        listings: Mutex::new(vec![Listing::default()]),
        errors: Mutex::new(Vec::new()),
        names: AtomicUsize::new(0),
    };
    // A small tree is listed on the calling thread, and starts no thread (see
    // `crate::pool`). Once it has shown more names than that, each directory is listed as
    // soon as its parent is, by whichever worker is free: no level waits for the slowest
    // directory of the one above (on a cold cache, that wait would leave the disk idle).
    // Either way directories wait in a queue, never in a recursion, so depth does not
    // grow any thread's stack.
    let mut pending = listed.one(0, Vec::new(), matcher.root_state());
    let mut pool = None;
    while let Some((index, rel, state)) = pending.pop() {
        pending.extend(listed.one(index, rel, state));
        if crate::pool::worth_threads(listed.names.load(Ordering::Relaxed), 0) {
            pool = crate::pool::workers();
            if pool.is_some() {
                break;
            }
        }
    }
    if let Some(pool) = pool {
        pool.scope(|scope| {
            for (index, rel, state) in pending {
                let listed = &listed;
                scope.spawn(move |scope| listed.spawn(scope, index, rel, state));
            }
        });
    }
    let listed_names = listed.names.load(Ordering::Relaxed);
    let Listed {
        listings, errors, ..
    } = listed;
    let (mut listings, errors) = (lock(listings), lock(errors));
    let len = listed_names;
    // Which directories were listed does not depend on timing, so neither does this.
    if let Some((_, e)) = errors.into_iter().min_by(|a, b| path_order(&a.0, &b.0)) {
        return Err(e);
    }

    // Children are listed after their parents, so walking the indices backwards visits
    // every directory after everything below it.
    let mut nonempty = vec![false; listings.len()];
    for index in (0..listings.len()).rev() {
        nonempty[index] = listings[index].slots.iter().any(|slot| match slot {
            Slot::Leaf(_) => true,
            Slot::Dir(dir) => dir.include || nonempty[dir.listing],
        });
    }
    let root_listing = std::mem::take(&mut listings[0]);
    Ok(Walk {
        listings,
        nonempty,
        stack: vec![Frame::new(Vec::new(), root_listing)],
        len,
        handed: 0,
    })
}

/// The directories a walk lists, as it lists them.
struct Listed<'a, V: Visitor> {
    root: &'a Path,
    matcher: &'a Matcher,
    visitor: &'a V,
    /// Whether to list a directory that is part of the tree (see [`walk_within`]).
    list_dir: &'a (dyn Fn(&[u8]) -> bool + Sync),
    /// Every directory's listing, by index; the root's is 0. A directory's `Slot::Dir`
    /// children point at their own listing, whose index is always above its parent's.
    listings: Mutex<Vec<Listing<V::Out>>>,
    /// The directories that could not be listed, with their paths.
    errors: Mutex<Vec<Failure>>,
    /// How many objects the listings hold so far.
    names: AtomicUsize,
}

/// A directory still to list: the index of its listing, its path, its rules' state.
type Pending = (usize, Vec<u8>, DirState);

impl<V: Visitor> Listed<'_, V> {
    /// Lists the directory at `rel` into listing `index`; returns its subdirectories.
    fn one(&self, index: usize, rel: Vec<u8>, state: DirState) -> Vec<Pending> {
        let mut below = Vec::new();
        match list(self.root, &rel, &state, self.matcher, self.visitor) {
            Ok(mut listing) => {
                let mut listings = lock_ref(&self.listings);
                for slot in &mut listing.slots {
                    if let Slot::Dir(dir) = slot {
                        dir.listing = listings.len();
                        listings.push(Listing::default());
                        let path = join_rel(&rel, dir.found.name(&listing.names));
                        if dir.include && !(self.list_dir)(&path) {
                            continue;
                        }
                        let state = std::mem::take(&mut dir.state);
                        below.push((dir.listing, path, state));
                    }
                }
                self.names.fetch_add(listing.slots.len(), Ordering::Relaxed);
                listings[index] = listing;
            }
            Err(e) => lock_ref(&self.errors).push(e),
        }
        below
    }

    /// Lists a directory on a worker, and queues its subdirectories.
    fn spawn<'s>(&'s self, scope: &rayon::Scope<'s>, index: usize, rel: Vec<u8>, state: DirState)
    where
        V::Out: 's,
    {
        for (index, rel, state) in self.one(index, rel, state) {
            scope.spawn(move |scope| self.spawn(scope, index, rel, state));
        }
    }
}

/// The value in a mutex, even if a thread panicked while holding it (the walk then fails
/// with that panic anyway).
fn lock<T>(m: Mutex<T>) -> T {
    m.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// The guard of a mutex, even if a thread panicked while holding it.
fn lock_ref<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The objects of a walked tree, in path order (see [`walk()`]).
///
/// The directory listings are stitched together depth first with an explicit stack; each
/// listing is freed once its last object has been handed out.
pub struct Walk<C = ()> {
    listings: Vec<Listing<C>>,
    nonempty: Vec<bool>,
    stack: Vec<Frame<C>>,
    len: usize,
    /// Objects handed out since the allocator was last asked to give freed pages back.
    handed: usize,
}

impl<C> Walk<C> {
    /// At most this many objects remain: the exact count, less the directories walked
    /// only for exceptions that turn out to hold nothing of the tree.
    pub fn len_bound(&self) -> usize {
        self.len
    }
}

impl<C> Iterator for Walk<C> {
    type Item = Found<C>;

    fn next(&mut self) -> Option<Found<C>> {
        while let Some(top) = self.stack.last_mut() {
            match top.slots.next() {
                None => {
                    self.stack.pop();
                    if self.handed >= RELEASE_EVERY {
                        self.handed = 0;
                        release_freed();
                    }
                }
                Some(Slot::Leaf(rec)) => {
                    self.len -= 1;
                    self.handed += 1;
                    return Some(top.found(rec));
                }
                Some(Slot::Dir(dir)) => {
                    self.len -= 1;
                    self.handed += 1;
                    // A directory that is only walked for possible exceptions is part of
                    // the tree only when something below it is.
                    if dir.include || self.nonempty[dir.listing] {
                        let below = std::mem::take(&mut self.listings[dir.listing]);
                        let found = top.found(dir.found);
                        let mut prefix = found.path.to_vec();
                        prefix.push(b'/');
                        self.stack.push(Frame::new(prefix, below));
                        return Some(found);
                    }
                }
            }
        }
        None
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.len))
    }
}

/// How many objects the walk hands out between two calls of [`release_freed`]: the
/// listings they came from (some 130 bytes an object) are freed by then, about 2 MiB of
/// them, so what is built from the objects (a manifest's entries, a report) reuses or
/// replaces that memory instead of adding to it. A call costs well under a millisecond.
const RELEASE_EVERY: usize = 1 << 14;

/// Gives the pages of freed listings back to the kernel. glibc's allocator keeps freed
/// small blocks for reuse and returns only the top of each heap by itself; the listings,
/// allocated by the worker threads in their own arenas and freed by the consumer, would
/// otherwise stay resident until the process exits, so the walk's peak and whatever the
/// consumer builds from it would add up.
#[allow(unsafe_code)]
fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` has no preconditions; it takes the allocator's own locks.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

/// One directory's children after their decisions, in name order. Their names (and
/// symlink targets) lie back to back in one buffer, not a path allocated per object: a
/// walk holds every listing of the tree at once, so an object's size is the walk's peak.
/// Whole paths are made as the objects are handed out.
struct Listing<C> {
    /// Each child's name, then its symlink target, child after child.
    names: Vec<u8>,
    slots: Vec<Slot<C>>,
}

impl<C> Default for Listing<C> {
    fn default() -> Self {
        Listing {
            names: Vec::new(),
            slots: Vec::new(),
        }
    }
}

impl<C> Listing<C> {
    /// Appends `other`, a listing of the names that follow.
    fn append(&mut self, other: Listing<C>) {
        let shift = self.names.len();
        self.names.extend_from_slice(&other.names);
        self.slots.extend(other.slots.into_iter().map(|mut slot| {
            match &mut slot {
                Slot::Leaf(rec) => rec.at += shift,
                Slot::Dir(dir) => dir.found.at += shift,
            }
            slot
        }));
    }
}

/// A child of a directory after its decision.
enum Slot<C> {
    /// A non-directory that is part of the tree.
    Leaf(Rec<C>),
    /// A directory to walk into (boxed: directories are few, and a slot is then no larger
    /// than a [`Rec`]).
    Dir(Box<DirSlot<C>>),
}
static_assertions::const_assert_eq!(size_of::<Slot<()>>(), size_of::<Rec<()>>());

/// A [`Found`] as a listing holds it: its name and target are in the listing's buffer.
struct Rec<C> {
    /// Where its name starts in [`Listing::names`]; its target follows the name.
    at: usize,
    name_len: u32,
    target_len: u32,
    kind: Kind,
    mode: u32,
    size: u64,
    /// `Found::stamp`, kept as a stamp and a flag: an `Option<Stamp>` would take 8 bytes
    /// more, per object of the tree.
    stamp: Stamp,
    stamped: bool,
    check: Option<C>,
}
static_assertions::const_assert!(size_of::<Rec<()>>() <= 64);

impl<C> Rec<C> {
    fn name<'a>(&self, names: &'a [u8]) -> &'a [u8] {
        &names[self.at..][..self.name_len as usize]
    }

    fn target<'a>(&self, names: &'a [u8]) -> &'a [u8] {
        &names[self.at + self.name_len as usize..][..self.target_len as usize]
    }
}

/// A listing being handed out: the path of its directory with a trailing `/` (empty for
/// the root), its names, and the children not handed out yet.
struct Frame<C> {
    prefix: Vec<u8>,
    names: Vec<u8>,
    slots: std::vec::IntoIter<Slot<C>>,
}

impl<C> Frame<C> {
    fn new(prefix: Vec<u8>, listing: Listing<C>) -> Self {
        Frame {
            prefix,
            names: listing.names,
            slots: listing.slots.into_iter(),
        }
    }

    /// The object `rec` of this listing, with its whole path.
    fn found(&self, rec: Rec<C>) -> Found<C> {
        let name = rec.name(&self.names);
        let mut path = Vec::with_capacity(self.prefix.len() + name.len());
        path.extend_from_slice(&self.prefix);
        path.extend_from_slice(name);
        Found {
            path: path.into_boxed_slice(),
            kind: rec.kind,
            mode: rec.mode,
            size: rec.size,
            target: rec.target(&self.names).into(),
            stamp: rec.stamped.then_some(rec.stamp),
            check: rec.check,
        }
    }
}

/// `rel/name`, or `name` at the root.
fn join_rel(rel: &[u8], name: &[u8]) -> Vec<u8> {
    let mut path = Vec::with_capacity(rel.len() + 1 + name.len());
    if !rel.is_empty() {
        path.extend_from_slice(rel);
        path.push(b'/');
    }
    path.extend_from_slice(name);
    path
}

/// A directory to walk into; `include` says whether it is part of the tree itself, or only
/// if something below it is. `listing` is the index of its own listing.
struct DirSlot<C> {
    found: Rec<C>,
    state: DirState,
    include: bool,
    listing: usize,
}

/// Directories with at least this many names have their names decided, stat'ed and
/// visited by several threads, in runs of [`RUN`] names: a flat directory of thousands of
/// files would otherwise be read and hashed by one thread.
const PARALLEL_NAMES: usize = 2 * RUN;

/// Names per run when a directory's names are split across threads.
const RUN: usize = 64;

/// What a directory entry's `d_type` says it is; `None` when the file system does not
/// say (then it is `fstatat`ed before it is decided).
fn kind_hint(t: FileType) -> Option<Kind> {
    match t {
        FileType::RegularFile => Some(Kind::File),
        FileType::Directory => Some(Kind::Dir),
        FileType::Symlink => Some(Kind::Symlink),
        FileType::Fifo => Some(Kind::Fifo),
        FileType::Socket => Some(Kind::Socket),
        FileType::CharacterDevice | FileType::BlockDevice => Some(Kind::Device),
        FileType::Unknown => None,
    }
}

/// An error with the tree path it is about, to pick the first one in path order.
type Failure = (Vec<u8>, Error);

/// Lists one directory: its names in byte order, each decided and stat'ed (never
/// followed), regular files handed to `visitor`.
fn list<V: Visitor>(
    root: &Path,
    rel: &[u8],
    state: &DirState,
    matcher: &Matcher,
    visitor: &V,
) -> std::result::Result<Listing<V::Out>, Failure> {
    let flags = match rel.is_empty() {
        // The root is the context: followed if it is a symlink.
        true => OFlag::O_RDONLY | OFlag::O_DIRECTORY,
        false => OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
    };
    let dir = open_beneath(root, rel, flags).map_err(|e| fail(root, rel, "read directory", e))?;
    // The names, back to back in one buffer, and where each one is in it, with its
    // `d_type`. `getdents64` straight into a stack buffer: libc's `opendir`/`readdir`
    // would add two `fcntl`s and an `lseek` per directory, and one allocation per name.
    let (mut bytes, mut names) = (Vec::new(), Vec::new());
    let mut buf = [MaybeUninit::<u8>::uninit(); 32 * 1024];
    let mut entries = RawDir::new(&dir, &mut buf);
    while let Some(entry) = entries.next() {
        let entry = entry.map_err(|e| fail(root, rel, "read directory", e.into()))?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push((bytes.len()..bytes.len() + name.len(), entry.file_type()));
            bytes.extend_from_slice(name);
        }
    }
    names.sort_unstable_by(|a, b| bytes[a.0.clone()].cmp(&bytes[b.0.clone()]));
    let one = Names {
        root,
        rel,
        state,
        matcher,
        visitor,
        dir: &dir,
        bytes: &bytes,
    };
    let pool = match names.len() >= PARALLEL_NAMES {
        true => crate::pool::workers(),
        false => None,
    };
    let Some(pool) = pool else {
        return one.decide(&names);
    };
    let runs: Vec<_> = pool.install(|| names.par_chunks(RUN).map(|run| one.decide(run)).collect());
    // In name order, so the error reported is the first in path order.
    let mut listing = Listing::default();
    listing.slots.reserve(names.len());
    for run in runs {
        listing.append(run?);
    }
    Ok(listing)
}

fn fail(root: &Path, path: &[u8], action: &'static str, e: io::Error) -> Failure {
    (path.to_vec(), Error::io(action, &join(root, path), e))
}

/// One listed directory, whose names are decided a run at a time.
struct Names<'a, V> {
    root: &'a Path,
    rel: &'a [u8],
    state: &'a DirState,
    matcher: &'a Matcher,
    visitor: &'a V,
    dir: &'a OwnedFd,
    bytes: &'a [u8],
}

impl<V: Visitor> Names<'_, V> {
    /// Decides a run of names (in byte order): each one's kind (from `d_type`, else
    /// `fstatat`), whether it is part of the tree, and for those that are, its metadata;
    /// a regular file the visitor wants is opened and visited.
    fn decide(
        &self,
        names: &[(Range<usize>, FileType)],
    ) -> std::result::Result<Listing<V::Out>, Failure> {
        let (root, rel, dir) = (self.root, self.rel, self.dir);
        let mut cursor = self.visitor.cursor(rel);
        let mut slots = Vec::with_capacity(names.len());
        let mut kept = Vec::new();
        for (range, file_type) in names {
            let name = &self.bytes[range.clone()];
            if rel.is_empty() && name == DEFAULT_NAME.as_bytes() {
                continue;
            }
            let path = join_rel(rel, name);
            let stat = || {
                fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)
                    .map_err(|e| fail(root, &path, "stat", e.into()))
            };
            let (mut st, hinted) = match kind_hint(*file_type) {
                Some(kind) => (None, kind),
                None => {
                    let st = stat()?;
                    (Some(st), Kind::from_mode(st.st_mode))
                }
            };
            let decide = |kind: Kind| self.matcher.decide(&path, kind == Kind::Dir, self.state);
            let mut decision = decide(hinted);
            if decision == Decision::Exclude {
                continue;
            }
            let mut check = None;
            if st.is_none()
                && hinted == Kind::File
                && matches!(decision, Decision::Include(_))
                && self.visitor.wants(&mut cursor, &path)
            {
                // Opened relative to its directory, metadata from the descriptor. If it
                // cannot be opened (no read permission, or it changed), it is `fstatat`ed
                // below like any other entry, and its owner opens it later and reports.
                if let Ok(fd) = openat(dir, name, crate::hash::OPEN_FLAGS, Mode::empty()) {
                    let meta = fstat(&fd).map_err(|e| fail(root, &path, "stat", e.into()))?;
                    st = Some(meta);
                    if Kind::from_mode(meta.st_mode) == Kind::File {
                        check = self.visitor.visit(&mut cursor, &path, fd.into(), &meta);
                    }
                }
            }
            let st = match st {
                Some(st) => st,
                None => stat()?,
            };
            let kind = Kind::from_mode(st.st_mode);
            if kind != hinted {
                // Replaced since it was listed: decided again as what it is now.
                decision = decide(kind);
                if decision == Decision::Exclude {
                    continue;
                }
            }
            let target = if kind == Kind::Symlink {
                readlinkat(dir, name)
                    .map_err(|e| fail(root, &path, "read symlink", e.into()))?
                    .into_vec()
            } else {
                Vec::new()
            };
            // Names are at most 255 bytes; a target longer than 4 GiB cannot be read.
            let target_len = u32::try_from(target.len()).map_err(|_| {
                let e = io::Error::from_raw_os_error(nix::libc::ENAMETOOLONG);
                fail(root, &path, "read symlink", e)
            })?;
            let at = kept.len();
            kept.extend_from_slice(name);
            kept.extend_from_slice(&target);
            let stamp = Stamp::of(&st);
            let found = Rec {
                at,
                name_len: name.len() as u32,
                target_len,
                kind,
                mode: st.st_mode & 0o7777,
                size: if kind == Kind::File {
                    st.st_size as u64
                } else {
                    0
                },
                stamp: stamp.unwrap_or_default(),
                stamped: stamp.is_some(),
                check,
            };
            slots.push(match (decision, kind) {
                (Decision::Include(state), Kind::Dir) => Slot::Dir(Box::new(DirSlot {
                    found,
                    state,
                    include: true,
                    listing: 0,
                })),
                (Decision::Descend(state), Kind::Dir) => Slot::Dir(Box::new(DirSlot {
                    found,
                    state,
                    include: false,
                    listing: 0,
                })),
                (Decision::Include(_), _) => Slot::Leaf(found),
                // Only directories can be walked into; a non-directory that is excluded
                // itself is not part of the tree.
                (_, _) => {
                    kept.truncate(at);
                    continue;
                }
            });
        }
        kept.shrink_to_fit();
        Ok(Listing { names: kept, slots })
    }
}

#[cfg(test)]
mod tests;
