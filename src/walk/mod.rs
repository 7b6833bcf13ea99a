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
//! The tree streams through: workers list the known directories earliest in path order
//! first, and only so far ahead of the consumer ([`AHEAD_OBJECTS`]), which takes each
//! listing when it reaches its directory. Checking a million-entry tree thus holds a few
//! thousand listed objects, not a million, and the consumer's work (the merge with the
//! manifest) overlaps the reading.
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
//! the calling thread, a path-ordered heap for the workers), so a tree nested thousands of
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

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::ops::Range;
use std::os::fd::OwnedFd;
use std::sync::{Condvar, Mutex};

use nix::fcntl::{readlinkat, AtFlags, OFlag};
use nix::sys::stat::{fstat, fstatat, FileStat};
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

    /// The stamp of `st` from a raw `fstat` or `fstatat` ([`rustix::fs::Stat`]), as
    /// the walk takes it from the same call through libc.
    // The fields' integer types differ between architectures; on x86_64 some casts are
    // to the type they have.
    #[allow(clippy::unnecessary_cast)]
    pub fn of_raw(st: &rustix::fs::Stat) -> Option<Stamp> {
        Some(Stamp {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            mtime_ns: nanos(st.st_mtime as i64, st.st_mtime_nsec as i64)?,
            ctime_ns: nanos(st.st_ctime as i64, st.st_ctime_nsec as i64)?,
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
/// Every directory is listed before this returns, so an unreadable directory anywhere is
/// an error. For tests and tools; checking a tree streams it ([`walk_with`]).
pub fn walk(root: &Path, matcher: &Matcher) -> Result<std::vec::IntoIter<Found>> {
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
) -> Result<std::vec::IntoIter<Found>> {
    walk_with(root, matcher, &NoVisit, list_dir, |found| {
        found.collect::<Vec<_>>().into_iter()
    })
}

/// Walks `root` as [`walk_within`] does, handing each regular file of the tree that
/// `visitor` wants to it while its directory is open (in parallel, in no particular
/// order), and the tree's objects, in path order, to `consume` as they are listed.
///
/// The tree is streamed, not held: directories are listed by the workers ahead of
/// `consume`, earliest in path order first, and only so far ahead (see [`AHEAD_OBJECTS`]),
/// and each listing is freed once `consume` has taken its last object. So the walk's
/// memory does not grow with the tree, and `consume` works while the walk reads.
///
/// Whatever `consume` returns is returned only when every directory could be listed:
/// when one could not (the first in path order, whatever the thread count), that error is
/// returned instead, even if `consume` had finished with what it was given (an unreadable
/// directory then looks empty to it). Directories `consume` did not reach are listed
/// after it returns, so the outcome does not depend on how far it read.
pub fn walk_with<V: Visitor, R>(
    root: &Path,
    matcher: &Matcher,
    visitor: &V,
    list_dir: &(dyn Fn(&[u8]) -> bool + Sync),
    consume: impl FnOnce(&mut Walk<'_, '_, V>) -> R,
) -> Result<R> {
    check_root(root)?;
    let shared = Shared {
        root,
        matcher,
        visitor,
        list_dir,
        sched: Mutex::new(Sched {
            dirs: vec![Dir::Known(matcher.root_state())],
            queue: BinaryHeap::from([Reverse(ByPath(Vec::new(), 0))]),
            ready: BTreeSet::new(),
            in_flight: 0,
            ready_objects: 0,
            listed_objects: 0,
            errors: Vec::new(),
            drain: false,
            waiting: None,
        }),
        changed: Condvar::new(),
        in_flight_max: 0,
    };
    // A small tree is listed on the calling thread, and starts no thread (see
    // `crate::pool`): earliest first (depth first), until it has shown more names than
    // that. The rest stays queued; with a pool, workers list it ahead of the consumer, and
    // without one (a single thread, or none could start) the consumer lists each
    // directory when it gets to it.
    loop {
        let next = lock_ref(&shared.sched).queue.pop();
        let Some(Reverse(ByPath(rel, index))) = next else {
            break;
        };
        shared.list_here(index, &rel);
        if crate::pool::worth_threads(lock_ref(&shared.sched).listed_objects, 0) {
            break;
        }
    }
    let pool = match lock_ref(&shared.sched).queue.is_empty() {
        true => None,
        false => crate::pool::workers(),
    };
    let out = match pool {
        Some(pool) => {
            let shared = Shared {
                // Enough directories in flight to keep every worker busy, and a few more
                // for those that finish while the consumer is behind.
                in_flight_max: 2 * pool.current_num_threads(),
                ..shared
            };
            let out = pool.in_place_scope(|scope| {
                shared.pump(&mut lock_ref(&shared.sched), Some(scope));
                let mut walk = Walk::new(&shared, Some(scope));
                let out = consume(&mut walk);
                drop(walk);
                shared.finish(Some(scope));
                out
            });
            (out, shared.sched)
        }
        None => {
            let mut walk = Walk::new(&shared, None);
            let out = consume(&mut walk);
            drop(walk);
            shared.finish(None);
            (out, shared.sched)
        }
    };
    let (out, sched) = out;
    let errors = lock(sched).errors;
    // Every directory was listed, whatever the timing, so this does not depend on it.
    match errors.into_iter().min_by(|a, b| path_order(&a.0, &b.0)) {
        Some((_, e)) => Err(e),
        None => Ok(out),
    }
}

/// How many of the tree's objects may wait, listed, for the consumer: about the most the
/// walk holds at once (some 80 bytes an object, so about 1.3 MiB, plus the directories
/// being listed), except for a single directory larger than that, which is held whole.
/// Workers stop taking new directories while this many wait, except those the consumer
/// needs soon ([`NEAR_DIRS`]).
pub const AHEAD_OBJECTS: usize = 1 << 14;

/// A directory with fewer than this many listed directories before it in path order is
/// listed whatever [`AHEAD_OBJECTS`] says: the consumer needs it soon. (With the limit
/// alone, a warm check of the 200k-entry tree took 1.5x as long, the consumer waiting on
/// directories it had to ask for one at a time; with only the very next directory let
/// through, a cold check of the 150k-file tree took 1.17x as long.)
pub const NEAR_DIRS: usize = 64;

/// The walk's state shared by the workers and the consumer.
struct Shared<'a, V: Visitor> {
    root: &'a Path,
    matcher: &'a Matcher,
    visitor: &'a V,
    /// Whether to list a directory that is part of the tree (see [`walk_within`]).
    list_dir: &'a (dyn Fn(&[u8]) -> bool + Sync),
    sched: Mutex<Sched<V::Out>>,
    /// Signalled when the directory the consumer waits for has been listed
    /// ([`Sched::waiting`]).
    changed: Condvar,
    /// The most directories being listed at once by the workers (0 without a pool).
    in_flight_max: usize,
}

/// Which directories are known, being listed, listed, or done with.
struct Sched<C> {
    /// Every directory met so far, by index; the root's is 0. A directory's `Slot::Dir`
    /// children point at their own entries, whose indices are always above its parent's.
    dirs: Vec<Dir<C>>,
    /// The known directories not yet handed to a worker, earliest in path order first.
    queue: BinaryHeap<Reverse<ByPath>>,
    /// The listed directories waiting for the consumer, in path order.
    ready: BTreeSet<ByPath>,
    /// Directories handed to a worker and not listed yet.
    in_flight: usize,
    /// Objects in listings that wait for the consumer.
    ready_objects: usize,
    /// Objects listed so far.
    listed_objects: usize,
    /// The directories that could not be listed, with their paths.
    errors: Vec<Failure>,
    /// Set once the consumer is done: what is left is listed for its errors only.
    drain: bool,
    /// The directory whose listing the consumer waits for on `changed`, if it waits. The
    /// worker that files that listing signals; the others do not. On 2 cores a warm walk
    /// is bound by the workers, so the consumer waits often, and a signal for every
    /// listing filed meanwhile woke it to find its directory still being listed: a
    /// `futex` call and a context switch each.
    waiting: Option<usize>,
}

/// A directory of the tree, as far as the walk has got with it.
enum Dir<C> {
    /// Its parent is listed; it is not, yet. Its rules' state.
    Known(DirState),
    /// A worker is listing it.
    Listing,
    /// Listed, waiting for the consumer.
    Ready(Listing<C>),
    /// Handed to the consumer, not to be listed (see [`walk_within`]), could not be
    /// listed, or found to hold nothing of the tree: empty.
    Done,
}

/// A directory's path and index, ordered by path.
#[derive(PartialEq, Eq)]
struct ByPath(Vec<u8>, usize);

impl PartialOrd for ByPath {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for ByPath {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        path_order(&self.0, &other.0).then(self.1.cmp(&other.1))
    }
}

type Scope<'s> = rayon::Scope<'s>;

impl<'a, V: Visitor> Shared<'a, V> {
    /// Marks a known directory as being listed and returns its state.
    fn claim(&self, index: usize) -> DirState {
        let mut s = lock_ref(&self.sched);
        match std::mem::replace(&mut s.dirs[index], Dir::Listing) {
            Dir::Known(state) => state,
            _ => unreachable!("only a known directory is claimed"),
        }
    }

    /// Lists the directory at `rel`, without holding the lock.
    fn list(&self, rel: &[u8], state: DirState) -> std::result::Result<Listing<V::Out>, Failure> {
        list(self.root, rel, &state, self.matcher, self.visitor)
    }

    /// Lists the known directory `index` at `rel` on this thread, and files the outcome.
    fn list_here(&self, index: usize, rel: &[u8]) {
        let state = self.claim(index);
        let listed = self.list(rel, state);
        self.adopt(&mut lock_ref(&self.sched), index, rel, listed);
    }

    /// Files the outcome of listing directory `index` at `rel`, and queues its
    /// subdirectories to be listed.
    fn adopt(
        &self,
        s: &mut Sched<V::Out>,
        index: usize,
        rel: &[u8],
        listed: std::result::Result<Listing<V::Out>, Failure>,
    ) {
        match listed {
            Ok(mut listing) => {
                for slot in &mut listing.slots {
                    if let Slot::Dir(dir) = slot {
                        dir.listing = s.dirs.len();
                        let path = join_rel(rel, dir.found.name(&listing.names));
                        if dir.include && !(self.list_dir)(&path) {
                            s.dirs.push(Dir::Done);
                            continue;
                        }
                        s.dirs.push(Dir::Known(std::mem::take(&mut dir.state)));
                        s.queue.push(Reverse(ByPath(path, dir.listing)));
                    }
                }
                s.listed_objects += listing.slots.len();
                s.dirs[index] = match s.drain {
                    true => Dir::Done,
                    false => {
                        s.ready_objects += listing.slots.len();
                        s.ready.insert(ByPath(rel.to_vec(), index));
                        Dir::Ready(listing)
                    }
                };
            }
            Err(e) => {
                s.errors.push(e);
                s.dirs[index] = Dir::Done;
            }
        }
    }

    /// Hands known directories to the workers, earliest first, while fewer than
    /// `in_flight_max` are being listed (once draining, all of them), and either fewer
    /// than [`AHEAD_OBJECTS`] objects wait or the directory is among the next few the
    /// consumer takes ([`NEAR_DIRS`]). Directories are listed in no fixed order, so the
    /// limit can fill with listings far ahead of the consumer while those it needs next
    /// are still only known (among them the children of the listings it is about to
    /// take); holding those back would leave it waiting for one directory at a time.
    fn pump<'s>(&'s self, s: &mut Sched<V::Out>, scope: Option<&Scope<'s>>)
    where
        'a: 's,
    {
        let Some(scope) = scope else { return };
        while let Some(Reverse(next)) = s.queue.peek() {
            // Whether the consumer takes fewer than NEAR_DIRS listed directories before it.
            let near = || {
                s.ready
                    .iter()
                    .take(NEAR_DIRS)
                    .take_while(|r| *r < next)
                    .count()
                    < NEAR_DIRS
            };
            let room =
                s.in_flight < self.in_flight_max && (s.ready_objects < AHEAD_OBJECTS || near());
            if !s.drain && !room {
                return;
            }
            let Some(Reverse(ByPath(rel, index))) = s.queue.pop() else {
                return;
            };
            self.submit(s, scope, index, rel);
        }
    }

    /// Hands directory `index` at `rel` to a worker, unless it is no longer only known
    /// (the consumer may have claimed it first).
    fn submit<'s>(&'s self, s: &mut Sched<V::Out>, scope: &Scope<'s>, index: usize, rel: Vec<u8>)
    where
        'a: 's,
    {
        let Dir::Known(state) = std::mem::replace(&mut s.dirs[index], Dir::Listing) else {
            return;
        };
        s.in_flight += 1;
        scope.spawn(move |scope| {
            let unwinding = Unwinding {
                shared: self,
                index,
            };
            let listed = self.list(&rel, state);
            std::mem::forget(unwinding);
            let mut s = lock_ref(&self.sched);
            s.in_flight -= 1;
            self.adopt(&mut s, index, &rel, listed);
            self.pump(&mut s, Some(scope));
            let waited_for = s.waiting == Some(index);
            drop(s);
            if waited_for {
                self.changed.notify_all();
            }
        });
    }

    /// Waits until directory `index` (at `rel`) is listed, listing it on this thread
    /// when no worker has it and there are none, or handing it to one ahead of the rest.
    fn wait_listed<'s>(&'s self, scope: Option<&Scope<'s>>, index: usize, rel: &[u8])
    where
        'a: 's,
    {
        let mut s = lock_ref(&self.sched);
        loop {
            match &s.dirs[index] {
                Dir::Ready(_) | Dir::Done => return,
                Dir::Listing => {
                    // Set and cleared under the lock, so the worker that files this
                    // listing after this sees it and signals.
                    s.waiting = Some(index);
                    s = self.changed.wait(s).unwrap_or_else(|e| e.into_inner());
                    s.waiting = None;
                }
                Dir::Known(_) => match scope {
                    Some(scope) => self.submit(&mut s, scope, index, rel.to_vec()),
                    None => {
                        drop(s);
                        self.list_here(index, rel);
                        s = lock_ref(&self.sched);
                    }
                },
            }
        }
    }

    /// Takes directory `index`'s listing for the consumer (empty when it is done with).
    fn take<'s>(&'s self, scope: Option<&Scope<'s>>, index: usize, rel: &[u8]) -> Listing<V::Out>
    where
        'a: 's,
    {
        self.wait_listed(scope, index, rel);
        let mut s = lock_ref(&self.sched);
        let Dir::Ready(listing) = std::mem::replace(&mut s.dirs[index], Dir::Done) else {
            return Listing::default();
        };
        s.ready_objects -= listing.slots.len();
        s.ready.remove(&ByPath(rel.to_vec(), index));
        self.pump(&mut s, scope);
        listing
    }

    /// Whether anything below directory `index` (at `rel`) is part of the tree: for a
    /// directory walked only for exceptions, which is part of the tree only then. Waits
    /// for everything below it to be listed; when nothing is, drops those listings.
    fn nonempty<'s>(&'s self, scope: Option<&Scope<'s>>, index: usize, rel: &[u8]) -> bool
    where
        'a: 's,
    {
        // Iterative, not recursive: such chains can be as deep as the tree.
        let mut visited = Vec::new();
        let mut stack = vec![(index, rel.to_vec())];
        while let Some((index, rel)) = stack.pop() {
            self.wait_listed(scope, index, &rel);
            let s = lock_ref(&self.sched);
            let Dir::Ready(listing) = &s.dirs[index] else {
                continue;
            };
            for slot in &listing.slots {
                match slot {
                    Slot::Leaf(_) => return true,
                    Slot::Dir(dir) if dir.include => return true,
                    Slot::Dir(dir) => {
                        stack.push((dir.listing, join_rel(&rel, dir.found.name(&listing.names))))
                    }
                }
            }
            drop(s);
            visited.push((index, rel));
        }
        let mut s = lock_ref(&self.sched);
        for (index, rel) in visited {
            if let Dir::Ready(listing) = std::mem::replace(&mut s.dirs[index], Dir::Done) {
                s.ready_objects -= listing.slots.len();
                s.ready.remove(&ByPath(rel, index));
            }
        }
        self.pump(&mut s, scope);
        false
    }

    /// After the consumer: lists every directory it did not reach, for its errors only,
    /// and drops the listings nobody took.
    fn finish<'s>(&'s self, scope: Option<&Scope<'s>>)
    where
        'a: 's,
    {
        let mut s = lock_ref(&self.sched);
        s.drain = true;
        for dir in &mut s.dirs {
            if matches!(dir, Dir::Ready(_)) {
                *dir = Dir::Done;
            }
        }
        s.ready_objects = 0;
        s.ready.clear();
        if scope.is_some() {
            // The workers list the rest; the scope waits for them.
            self.pump(&mut s, scope);
            return;
        }
        while let Some(Reverse(ByPath(rel, index))) = s.queue.pop() {
            drop(s);
            self.wait_listed(None, index, &rel);
            s = lock_ref(&self.sched);
        }
    }
}

/// Armed while a worker lists a directory: should listing panic (a bug), the directory is
/// marked done on the way out, so that the consumer does not wait for it for ever; the
/// scope re-raises the panic once every job has ended, and the walk never returns.
struct Unwinding<'s, 'a, V: Visitor> {
    shared: &'s Shared<'a, V>,
    index: usize,
}

impl<V: Visitor> Drop for Unwinding<'_, '_, V> {
    fn drop(&mut self) {
        let mut s = lock_ref(&self.shared.sched);
        s.in_flight -= 1;
        s.dirs[self.index] = Dir::Done;
        drop(s);
        self.shared.changed.notify_all();
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

/// The objects of a tree being walked, in path order (see [`walk_with`]).
///
/// The directory listings are stitched together depth first with an explicit stack; each
/// listing is taken from the walk when its directory is reached, and freed once its last
/// object has been handed out.
pub struct Walk<'w, 's, V: Visitor> {
    shared: &'s Shared<'s, V>,
    scope: Option<&'w Scope<'s>>,
    stack: Vec<Frame<V::Out>>,
    /// Objects handed out since the allocator was last asked to give freed pages back.
    handed: usize,
}

impl<'w, 's, V: Visitor> Walk<'w, 's, V> {
    fn new(shared: &'s Shared<'s, V>, scope: Option<&'w Scope<'s>>) -> Self {
        let root = shared.take(scope, 0, b"");
        Walk {
            shared,
            scope,
            stack: vec![Frame::new(Vec::new(), root)],
            handed: 0,
        }
    }
}

#[cfg(test)]
impl<V: Visitor> Walk<'_, '_, V> {
    /// Listed objects waiting for the consumer right now, and the most directories that
    /// may be in the workers' hands at once.
    fn waiting(&self) -> (usize, usize) {
        let s = lock_ref(&self.shared.sched);
        (s.ready_objects, self.shared.in_flight_max)
    }
}

impl<V: Visitor> Iterator for Walk<'_, '_, V> {
    type Item = Found<V::Out>;

    fn next(&mut self) -> Option<Found<V::Out>> {
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
                    self.handed += 1;
                    return Some(top.found(rec));
                }
                Some(Slot::Dir(dir)) => {
                    self.handed += 1;
                    let found = top.found(dir.found);
                    // A directory that is only walked for possible exceptions is part of
                    // the tree only when something below it is.
                    if dir.include || self.shared.nonempty(self.scope, dir.listing, &found.path) {
                        let below = self.shared.take(self.scope, dir.listing, &found.path);
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
}

/// How many objects the walk hands out between two calls of [`release_freed`]: the
/// listings they came from (some 80 bytes an object) are freed by then, about 1 MiB of
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
/// directory of a million files is held whole. Whole paths are made as the objects are
/// handed out.
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
pub(crate) fn join_rel(rel: &[u8], name: &[u8]) -> Vec<u8> {
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
pub(crate) const PARALLEL_NAMES: usize = 2 * RUN;

/// Names per run when a directory's names are split across threads.
pub(crate) const RUN: usize = 64;

/// What a directory entry's `d_type` says it is; `None` when the file system does not
/// say (then it is `fstatat`ed before it is decided).
pub(crate) fn kind_hint(t: FileType) -> Option<Kind> {
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
                if let Ok(fd) = crate::hash::open_at(dir, name) {
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
