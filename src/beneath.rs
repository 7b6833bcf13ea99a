//! Opening paths beneath a tree root safely.
//!
//! Every file the tree check reads is named by a path relative to a root (the build
//! context or the gated directory). This module owns how such a path is opened: beneath
//! an open handle on the root, never through a symlink on the way (a directory swapped
//! for a symlink since the walk cannot redirect a read out of the tree), and however long
//! the path is: one longer than the kernel's `PATH_MAX` is opened in pieces with `openat`
//! (see [`open_beneath`]), so a tree's depth is not limited by path length.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;
use nix::fcntl::{openat, openat2, OFlag, OpenHow, ResolveFlag, AT_FDCWD};
use nix::sys::stat::Mode;

use crate::error::{Error, Result};
use crate::hash::{self, Hashed};
use crate::tree::Kind;

/// Checks that `root` is an existing directory.
pub fn check_root(root: &Path) -> Result<()> {
    match std::fs::metadata(root) {
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

/// The absolute path of a relative tree path (for messages, and for opening when it is
/// short enough; see [`with_openable_path`]).
pub fn join(root: &Path, rel: &[u8]) -> PathBuf {
    if rel.is_empty() {
        root.to_path_buf()
    } else {
        root.join(OsStr::from_bytes(rel))
    }
}

/// Paths at least this long are opened in pieces: comfortably below Linux's `PATH_MAX`
/// (4096 bytes with the final NUL) and above any name (`NAME_MAX` is 255).
const CHUNK: usize = 3072;

/// Opens `root/rel` with `flags`, however long the path: a path of `CHUNK` bytes or
/// more is resolved a piece at a time with `openat`, each piece's directory opened with
/// `O_PATH | O_NOFOLLOW` (only search permission needed, as for an ordinary lookup).
/// At most two descriptors are open at any moment.
pub fn open_beneath(root: &Path, rel: &[u8], flags: OFlag) -> io::Result<OwnedFd> {
    let full = join(root, rel);
    // What is opened to be read keeps its access time (see `hash::leave_atime`).
    let last = |dir: BorrowedFd<'_>, name: &Path| {
        hash::leave_atime(|noatime| {
            let atime = match noatime && !flags.contains(OFlag::O_PATH) {
                true => OFlag::O_NOATIME,
                false => OFlag::empty(),
            };
            openat(dir, name, flags | atime | OFlag::O_CLOEXEC, Mode::empty())
        })
    };
    if full.as_os_str().len() < CHUNK {
        return Ok(last(AT_FDCWD, &full)?);
    }
    let step = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let mut dir = openat(AT_FDCWD, root, step, Mode::empty())?;
    let mut rest = rel;
    while rest.len() >= CHUNK {
        let cut = rest[..CHUNK]
            .iter()
            .rposition(|&c| c == b'/')
            .filter(|&cut| cut > 0)
            .ok_or_else(|| io::Error::from_raw_os_error(nix::libc::ENAMETOOLONG))?;
        dir = openat(&dir, &rest[..cut], step | OFlag::O_NOFOLLOW, Mode::empty())?;
        rest = &rest[cut + 1..];
    }
    Ok(last(dir.as_fd(), Path::new(OsStr::from_bytes(rest)))?)
}

/// Runs `f` on a path through which `root/rel` can be opened by name, however long it
/// is: the joined path when it is short enough for the kernel, else
/// `/proc/self/fd/N/NAME` with `N` a handle on the parent directory (opened with
/// [`open_beneath`]) that lives for the call. Only the last component is looked up by
/// `f`, so `O_NOFOLLOW` there keeps its meaning.
pub fn with_openable_path<T>(
    root: &Path,
    rel: &[u8],
    f: impl FnOnce(&Path) -> io::Result<T>,
) -> io::Result<T> {
    let full = join(root, rel);
    if full.as_os_str().len() < CHUNK {
        return f(&full);
    }
    let (parent, name) = match rel.iter().rposition(|&c| c == b'/') {
        Some(slash) => (&rel[..slash], &rel[slash + 1..]),
        None => (&rel[..0], rel),
    };
    let mut flags = OFlag::O_PATH | OFlag::O_DIRECTORY;
    if !parent.is_empty() {
        flags |= OFlag::O_NOFOLLOW;
    }
    let dir = open_beneath(root, parent, flags)?;
    let proc = Path::new("/proc/self/fd");
    if !proc.is_dir() {
        return Err(io::Error::other(
            "the path is longer than PATH_MAX and /proc is not mounted to open it through",
        ));
    }
    f(&proc
        .join(dir.as_raw_fd().to_string())
        .join(OsStr::from_bytes(name)))
}

/// Whether `openat2` is usable here; cleared on the first refusal.
static OPENAT2: AtomicBool = AtomicBool::new(true);

/// A tree root: its path, and a handle that files are opened beneath.
#[derive(Debug)]
pub struct Root {
    /// The root as given (the context; followed if it is a symlink).
    pub path: PathBuf,
    fd: OwnedFd,
}

impl Root {
    /// Opens the root directory.
    pub fn open(path: &Path) -> Result<Root> {
        check_root(path)?;
        let fd = openat(
            AT_FDCWD,
            path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io("open", path, e.into()))?;
        Ok(Root {
            path: path.to_path_buf(),
            fd,
        })
    }

    /// Hashes the regular file at `self/rel`; `size_hint` is its size from the walk.
    ///
    /// The file is opened with `openat2` beneath the root's handle with `RESOLVE_NO_SYMLINKS`:
    /// a directory on the way that was swapped for a symlink since the walk cannot redirect
    /// the read, and the root's own path is not resolved again for every file. Where
    /// `openat2` is unavailable, or for a path longer than `PATH_MAX`, it is opened through
    /// [`with_openable_path`] (only the last component is then guarded against symlinks).
    pub fn hash_file(&self, rel: &[u8], size_hint: u64) -> io::Result<Hashed> {
        match self.open_file(rel)? {
            Some(file) => hash::hash_opened(file, size_hint),
            None => Ok(Hashed::NotRegular),
        }
    }

    /// Opens `rel` for reading as [`Root::hash_file`] does (with [`hash::OPEN_FLAGS`]):
    /// `None` when a component on the way, or the file itself, is a symlink. The caller
    /// still has to `fstat` the descriptor: it may be a FIFO or a device (opened without
    /// blocking, never read by treeseal).
    pub fn open_file(&self, rel: &[u8]) -> io::Result<Option<File>> {
        if rel.len() < CHUNK && OPENAT2.load(Ordering::Relaxed) {
            let opened = hash::leave_atime(|noatime| {
                let how = OpenHow::new()
                    .flags(hash::open_flags(noatime))
                    .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_BENEATH);
                openat2(&self.fd, rel, how)
            });
            match opened {
                Ok(fd) => return Ok(Some(File::from(fd))),
                // Some component (the file itself, or a directory swapped in since the walk)
                // is a symlink: not the regular file that was sealed.
                Err(Errno::ELOOP) => return Ok(None),
                // A kernel before 5.6, or a seccomp profile that refuses the call.
                Err(Errno::ENOSYS | Errno::EPERM) => OPENAT2.store(false, Ordering::Relaxed),
                Err(e) => return Err(e.into()),
            }
        }
        let opened = with_openable_path(&self.path, rel, |path| {
            hash::leave_atime(|noatime| {
                std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(hash::open_flags(noatime).bits())
                    .open(path)
            })
        });
        match opened {
            Ok(file) => Ok(Some(file)),
            // ELOOP: the last component is a symlink.
            Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The kind of whatever is at `root/rel` now, without following a symlink there.
pub fn kind_now(root: &Path, rel: &[u8]) -> io::Result<Kind> {
    with_openable_path(root, rel, |path| {
        Ok(Kind::from_mode(std::fs::symlink_metadata(path)?.mode()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_swapped_for_a_symlink_cannot_redirect_the_read() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::fs::create_dir_all(root.join("copy")).unwrap();
        std::fs::write(root.join("a/f"), b"same").unwrap();
        std::fs::write(root.join("copy/f"), b"same").unwrap();
        let handle = Root::open(root).unwrap();
        assert!(matches!(
            handle.hash_file(b"a/f", 4).unwrap(),
            Hashed::File { .. }
        ));
        std::fs::remove_dir_all(root.join("a")).unwrap();
        std::os::unix::fs::symlink("copy", root.join("a")).unwrap();
        assert_eq!(handle.hash_file(b"a/f", 4).unwrap(), Hashed::NotRegular);
    }
}
