//! Hashing file contents: the per-file read path and the parallel engine.
//!
//! Small files are read into a per-thread buffer that is reused from file to file (no
//! allocation per file, one `read` for most source files). Files of at least
//! [`MMAP_THRESHOLD`] bytes are memory-mapped, and files of at least
//! [`SPLIT_THRESHOLD`] bytes are additionally split across threads by blake3's rayon
//! support, so one huge file does not leave the other cores idle.
//!
//! Files are opened with `O_NOFOLLOW | O_NONBLOCK` and checked with `fstat` after opening:
//! if a regular file was swapped for a symlink, FIFO or device since the walk, it is
//! reported as [`Hashed::NotRegular`] and never read (a FIFO cannot make us hang).

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::fcntl::OFlag;

use crate::tree::Hash;

/// Files at least this large are memory-mapped instead of read into a buffer.
/// Below it, one `read` into a warm reused buffer is cheaper than setting up and tearing
/// down a mapping (mmap + page faults + munmap).
pub const MMAP_THRESHOLD: u64 = 256 * 1024;

/// Files at least this large are hashed with several threads (blake3's rayon support).
pub const SPLIT_THRESHOLD: u64 = 8 * 1024 * 1024;

/// The result of hashing one path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hashed {
    /// A regular file with this content hash and length.
    File {
        /// blake3 of the content.
        hash: Hash,
        /// Bytes hashed.
        size: u64,
    },
    /// The path is no longer a regular file (it was replaced since the walk).
    NotRegular,
}

thread_local! {
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Hashes the regular file at `path`; `size_hint` is its size from the walk.
pub fn hash_file(path: &Path, size_hint: u64) -> io::Result<Hashed> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY).bits())
        .open(path)
    {
        Ok(f) => f,
        // ELOOP: the last component became a symlink.
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => return Ok(Hashed::NotRegular),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Ok(Hashed::NotRegular);
    }
    let size = meta.len().max(size_hint);
    if size >= MMAP_THRESHOLD {
        hash_mapped(&file, meta.len())
    } else {
        hash_read(file)
    }
}

fn hash_read(mut file: File) -> io::Result<Hashed> {
    BUFFER.with(|buf| {
        let mut buf = buf.borrow_mut();
        buf.clear();
        file.read_to_end(&mut buf)?;
        Ok(Hashed::File {
            hash: *blake3::hash(&buf).as_bytes(),
            size: buf.len() as u64,
        })
    })
}

fn hash_mapped(file: &File, len: u64) -> io::Result<Hashed> {
    if len == 0 {
        return hash_read(file.try_clone()?);
    }
    // SAFETY: the mapping is read-only and private to this call. If another process
    // truncates the file while we hash it, touching the lost pages raises SIGBUS; treeseal
    // only maps files that the tree owner could change anyway, and a changed file is a
    // difference either way.
    let map = unsafe { memmap2::MmapOptions::new().len(len as usize).map(file)? };
    let mut hasher = blake3::Hasher::new();
    if len >= SPLIT_THRESHOLD {
        hasher.update_rayon(&map);
    } else {
        hasher.update(&map);
    }
    Ok(Hashed::File {
        hash: *hasher.finalize().as_bytes(),
        size: len,
    })
}
