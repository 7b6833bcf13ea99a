//! Enumerating a tree the way `COPY . /app` lays it out.
//!
//! The walk is top-down and sorted: each directory's names are read, sorted as bytes, and
//! decided one by one by the `.dockerignore` [`Matcher`] with the state of their parent,
//! as BuildKit's context walker does. An excluded directory is not entered unless an
//! exception may re-include something below it; such a directory is then part of the tree
//! only when something below it is (BuildKit creates it as a parent). Symlinks are
//! recorded with their target and never followed; FIFOs, sockets and devices are recorded
//! by type and never opened. Subdirectories are walked in parallel and the results
//! stitched back in order, so the output is in [`path_order`]
//! whatever the thread count.
//!
//! The walk only reads metadata. Hashing file contents is [`crate::hash`]'s job, and
//! opening a tree path safely is [`crate::beneath`]'s.
//!
//! # Robustness
//!
//! The walk is iterative, one level of directories at a time, not recursive: a tree nested
//! thousands of levels deep cannot overflow a thread's stack. Each directory is opened,
//! listed, and every name in it `fstatat`ed and `readlinkat`ed relative to the open
//! directory, then closed before the next level: at most one directory handle per worker
//! thread is open at a time, whatever the depth or width, so a low `RLIMIT_NOFILE` is
//! enough. Directories below the root are opened with `O_NOFOLLOW`, so one swapped for a
//! symlink during the walk is an error, never followed out of the tree. A path longer
//! than the kernel's `PATH_MAX` is opened in pieces with `openat` (see [`open_beneath`]),
//! so depth is not limited by path length either. When several directories cannot be
//! read, the error reported is the one first in path order, whatever the thread count.

use std::io;
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

use nix::fcntl::{readlinkat, AtFlags, OFlag};
use nix::sys::stat::{fstatat, FileStat};
use rayon::prelude::*;
use rustix::fs::RawDir;

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

/// One object found by the walk: metadata only, no content hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
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
    list_dir: &dyn Fn(&[u8]) -> bool,
) -> Result<Walk> {
    check_root(root)?;
    // Every directory listed so far, by index; the root is 0. A directory's `Slot::Dir`
    // children point at their own listing. Listing happens level by level (all the
    // directories of one depth in parallel), so nothing recurses.
    let mut listings: Vec<Vec<Slot>> = vec![Vec::new()];
    let mut level: Vec<(usize, Vec<u8>, DirState)> = vec![(0, Vec::new(), matcher.root_state())];
    let mut errors: Vec<(Vec<u8>, Error)> = Vec::new();
    let mut len = 0;
    while !level.is_empty() {
        let list_one =
            |(_, rel, state): &(usize, Vec<u8>, DirState)| list(root, rel, state, matcher);
        // A level of one directory (the root's, or a chain of lone subdirectories) is
        // listed on the calling thread: no worker threads for a narrow tree.
        let pool = match level.len() {
            1 => None,
            _ => crate::pool::workers(),
        };
        let listed: Vec<_> = match pool {
            Some(pool) => pool.install(|| level.par_iter().map(list_one).collect()),
            None => level.iter().map(list_one).collect(),
        };
        let mut next = Vec::new();
        for ((index, _, _), listing) in level.into_iter().zip(listed) {
            match listing {
                Ok(mut slots) => {
                    for slot in &mut slots {
                        if let Slot::Dir(dir) = slot {
                            dir.listing = listings.len();
                            listings.push(Vec::new());
                            if dir.include && !list_dir(&dir.found.path) {
                                continue;
                            }
                            let state = std::mem::take(&mut dir.state);
                            next.push((dir.listing, dir.found.path.to_vec(), state));
                        }
                    }
                    len += slots.len();
                    listings[index] = slots;
                }
                Err(e) => errors.push(e),
            }
        }
        level = next;
    }
    // Which directories were listed does not depend on timing, so neither does this.
    if let Some((_, e)) = errors.into_iter().min_by(|a, b| path_order(&a.0, &b.0)) {
        return Err(e);
    }

    // Children are listed after their parents, so walking the indices backwards visits
    // every directory after everything below it.
    let mut nonempty = vec![false; listings.len()];
    for index in (0..listings.len()).rev() {
        nonempty[index] = listings[index].iter().any(|slot| match slot {
            Slot::Leaf(_) => true,
            Slot::Dir(dir) => dir.include || nonempty[dir.listing],
        });
    }
    let root_listing = std::mem::take(&mut listings[0]);
    Ok(Walk {
        listings,
        nonempty,
        stack: vec![root_listing.into_iter()],
        len,
    })
}

/// The objects of a walked tree, in path order (see [`walk()`]).
///
/// The directory listings are stitched together depth first with an explicit stack; each
/// listing is freed once its last object has been handed out.
pub struct Walk {
    listings: Vec<Vec<Slot>>,
    nonempty: Vec<bool>,
    stack: Vec<std::vec::IntoIter<Slot>>,
    len: usize,
}

impl Walk {
    /// At most this many objects remain: the exact count, less the directories walked
    /// only for exceptions that turn out to hold nothing of the tree.
    pub fn len_bound(&self) -> usize {
        self.len
    }
}

impl Iterator for Walk {
    type Item = Found;

    fn next(&mut self) -> Option<Found> {
        while let Some(top) = self.stack.last_mut() {
            match top.next() {
                None => {
                    self.stack.pop();
                }
                Some(Slot::Leaf(found)) => {
                    self.len -= 1;
                    return Some(found);
                }
                Some(Slot::Dir(dir)) => {
                    self.len -= 1;
                    // A directory that is only walked for possible exceptions is part of
                    // the tree only when something below it is.
                    if dir.include || self.nonempty[dir.listing] {
                        let below = std::mem::take(&mut self.listings[dir.listing]);
                        self.stack.push(below.into_iter());
                        return Some(dir.found);
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

/// A child of a directory after its decision.
enum Slot {
    /// A non-directory that is part of the tree.
    Leaf(Found),
    /// A directory to walk into (boxed: directories are few, and a slot is then no larger
    /// than a [`Found`]).
    Dir(Box<DirSlot>),
}
static_assertions::const_assert_eq!(size_of::<Slot>(), size_of::<Found>());

/// A directory to walk into; `include` says whether it is part of the tree itself, or only
/// if something below it is. `listing` is the index of its own listing.
struct DirSlot {
    found: Found,
    state: DirState,
    include: bool,
    listing: usize,
}

/// Lists one directory: its names in byte order, each stat'ed (not followed) and decided.
/// An error comes with the tree path it is about, to pick the first one in path order.
fn list(
    root: &Path,
    rel: &[u8],
    state: &DirState,
    matcher: &Matcher,
) -> std::result::Result<Vec<Slot>, (Vec<u8>, Error)> {
    let fail = |path: &[u8], action, e: io::Error| {
        (path.to_vec(), Error::io(action, &join(root, path), e))
    };
    let flags = match rel.is_empty() {
        // The root is the context: followed if it is a symlink.
        true => OFlag::O_RDONLY | OFlag::O_DIRECTORY,
        false => OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
    };
    let dir = open_beneath(root, rel, flags).map_err(|e| fail(rel, "read directory", e))?;
    // The names, back to back in one buffer, and where each one is in it. `getdents64`
    // straight into a stack buffer: libc's `opendir`/`readdir` would add two `fcntl`s and
    // an `lseek` per directory, and one allocation per name.
    let (mut bytes, mut names) = (Vec::new(), Vec::new());
    let mut buf = [MaybeUninit::<u8>::uninit(); 32 * 1024];
    let mut entries = RawDir::new(&dir, &mut buf);
    while let Some(entry) = entries.next() {
        let entry = entry.map_err(|e| fail(rel, "read directory", e.into()))?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(bytes.len()..bytes.len() + name.len());
            bytes.extend_from_slice(name);
        }
    }
    names.sort_unstable_by(|a, b| bytes[a.clone()].cmp(&bytes[b.clone()]));

    let mut slots = Vec::with_capacity(names.len());
    for range in names {
        let name = &bytes[range];
        if rel.is_empty() && name == DEFAULT_NAME.as_bytes() {
            continue;
        }
        let mut path = Vec::with_capacity(rel.len() + 1 + name.len());
        if !rel.is_empty() {
            path.extend_from_slice(rel);
            path.push(b'/');
        }
        path.extend_from_slice(name);
        let st = fstatat(&dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(|e| fail(&path, "stat", e.into()))?;
        let kind = Kind::from_mode(st.st_mode);
        let decision = matcher.decide(&path, kind == Kind::Dir, state);
        if decision == Decision::Exclude {
            continue;
        }
        let target = if kind == Kind::Symlink {
            readlinkat(&dir, name)
                .map_err(|e| fail(&path, "read symlink", e.into()))?
                .into_vec()
                .into_boxed_slice()
        } else {
            Box::default()
        };
        let found = Found {
            path: path.into_boxed_slice(),
            kind,
            mode: st.st_mode & 0o7777,
            size: if kind == Kind::File {
                st.st_size as u64
            } else {
                0
            },
            target,
            stamp: Stamp::of(&st),
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
            (_, _) => continue,
        });
    }
    Ok(slots)
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn a_directory_outside_the_range_is_handed_out_but_not_listed() {
        let t = tempfile::tempdir().unwrap();
        for f in ["a/x", "b/y", "b/z/w", "c"] {
            let p = t.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, f).unwrap();
        }
        let m = Matcher::new(&[]).unwrap();
        let paths = |keep: &dyn Fn(&[u8]) -> bool| -> Vec<String> {
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
}
