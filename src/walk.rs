//! Enumerating a tree the way `COPY . /app` lays it out.
//!
//! The walk is top-down and sorted: each directory's names are read, sorted as bytes, and
//! decided one by one by the `.dockerignore` [`Matcher`] with the state of their parent,
//! as BuildKit's context walker does. An excluded directory is not entered unless an
//! exception may re-include something below it; such a directory is then part of the tree
//! only when something below it is (BuildKit creates it as a parent). Symlinks are
//! recorded with their target and never followed; FIFOs, sockets and devices are recorded
//! by type and never opened. Subdirectories are walked in parallel and the results
//! stitched back in order, so the output is in [`path_order`](crate::tree::path_order)
//! whatever the thread count.
//!
//! The walk only reads metadata. Hashing file contents is [`crate::hash`]'s job.

use std::ffi::OsStr;
use std::fs::{self, Metadata};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::ignore::{Decision, DirState, Matcher};
use crate::manifest::DEFAULT_NAME;
use crate::tree::Kind;

/// When a file's metadata says it may have changed (for the cheap healthcheck).
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
    fn of(meta: &Metadata) -> Stamp {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            ctime_ns: meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
        }
    }
}

/// One object found by the walk: metadata only, no content hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// Relative to the root, `/`-separated, raw bytes.
    pub path: Vec<u8>,
    /// What it is.
    pub kind: Kind,
    /// Permission bits (`0o7777`).
    pub mode: u32,
    /// Size in bytes for regular files, 0 otherwise.
    pub size: u64,
    /// Symlink target; empty for other kinds.
    pub target: Vec<u8>,
    /// Change-detection metadata.
    pub stamp: Stamp,
}

/// Walks `root` and returns what `COPY` would copy, in path order.
///
/// The root itself is followed if it is a symlink (it is the context), but nothing below
/// it is. The file named [`DEFAULT_NAME`] at the root is never part of the tree.
pub fn walk(root: &Path, matcher: &Matcher) -> Result<Vec<Found>> {
    check_root(root)?;
    walk_dir(root, &[], &matcher.root_state(), matcher)
}

/// Checks that `root` is an existing directory.
pub fn check_root(root: &Path) -> Result<()> {
    match fs::metadata(root) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::Root {
            path: root.to_path_buf(),
            problem: "is not a directory",
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::Root {
            path: root.to_path_buf(),
            problem: "does not exist",
        }),
        Err(e) => Err(Error::io("open", root, e)),
    }
}

/// The absolute path of a relative tree path.
pub fn join(root: &Path, rel: &[u8]) -> PathBuf {
    if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(OsStr::from_bytes(rel))
    }
}

/// A child of a directory after its decision.
enum Slot {
    /// A non-directory that is part of the tree.
    Leaf(Found),
    /// A directory to walk into; `include` says whether it is part of the tree itself, or
    /// only if something below it is.
    Dir {
        found: Found,
        state: DirState,
        include: bool,
    },
}

fn walk_dir(root: &Path, rel: &[u8], state: &DirState, matcher: &Matcher) -> Result<Vec<Found>> {
    let abs = join(root, rel);
    let mut names: Vec<(Vec<u8>, fs::DirEntry)> = fs::read_dir(&abs)
        .map_err(|e| Error::io("read directory", &abs, e))?
        .map(|entry| {
            let entry = entry.map_err(|e| Error::io("read directory", &abs, e))?;
            Ok((entry.file_name().as_bytes().to_vec(), entry))
        })
        .collect::<Result<_>>()?;
    names.sort_unstable_by(|a, b| a.0.cmp(&b.0));

    let mut slots = Vec::with_capacity(names.len());
    for (name, entry) in names {
        if rel.is_empty() && name == DEFAULT_NAME.as_bytes() {
            continue;
        }
        let mut path = Vec::with_capacity(rel.len() + 1 + name.len());
        if !rel.is_empty() {
            path.extend_from_slice(rel);
            path.push(b'/');
        }
        path.extend_from_slice(&name);
        let meta = entry
            .metadata()
            .map_err(|e| Error::io("stat", &entry.path(), e))?;
        let kind = kind_of(&meta);
        let decision = matcher.decide(&path, kind == Kind::Dir, state);
        if decision == Decision::Exclude {
            continue;
        }
        let target = if kind == Kind::Symlink {
            fs::read_link(entry.path())
                .map_err(|e| Error::io("read symlink", &entry.path(), e))?
                .into_os_string()
                .into_vec()
        } else {
            Vec::new()
        };
        let found = Found {
            path,
            kind,
            mode: meta.mode() & 0o7777,
            size: if kind == Kind::File { meta.len() } else { 0 },
            target,
            stamp: Stamp::of(&meta),
        };
        slots.push(match (decision, kind) {
            (Decision::Include(state), Kind::Dir) => Slot::Dir {
                found,
                state,
                include: true,
            },
            (Decision::Descend(state), Kind::Dir) => Slot::Dir {
                found,
                state,
                include: false,
            },
            (Decision::Include(_), _) => Slot::Leaf(found),
            // Only directories can be walked into; a non-directory that is excluded
            // itself is not part of the tree.
            (_, _) => continue,
        });
    }

    let subtrees: Vec<Result<Vec<Found>>> = slots
        .par_iter()
        .map(|slot| match slot {
            Slot::Dir { found, state, .. } => walk_dir(root, &found.path, state, matcher),
            Slot::Leaf(_) => Ok(Vec::new()),
        })
        .collect();

    let mut out = Vec::new();
    for (slot, subtree) in slots.into_iter().zip(subtrees) {
        let subtree = subtree?;
        match slot {
            Slot::Leaf(found) => out.push(found),
            Slot::Dir { found, include, .. } => {
                if include || !subtree.is_empty() {
                    out.push(found);
                }
                out.extend(subtree);
            }
        }
    }
    Ok(out)
}

/// The kind of a file from its (not followed) metadata.
pub fn kind_of(meta: &Metadata) -> Kind {
    let t = meta.file_type();
    if t.is_file() {
        Kind::File
    } else if t.is_dir() {
        Kind::Dir
    } else if t.is_symlink() {
        Kind::Symlink
    } else if t.is_fifo() {
        Kind::Fifo
    } else if t.is_socket() {
        Kind::Socket
    } else {
        Kind::Device
    }
}
