//! Hashing file contents: the per-file read path and the parallel engine.
//!
//! Small files are read into a per-thread buffer that is reused from file to file (no
//! allocation per file, one `read` for most source files). Files of at least
//! [`MMAP_THRESHOLD`] bytes are memory-mapped, and files of at least
//! [`SPLIT_THRESHOLD`] bytes are additionally split across threads by blake3's rayon
//! support, so one huge file does not leave the other cores idle; one that is not in the
//! page cache is hashed a window at a time while the next windows are read.
//!
//! A mapped file that another process truncates while we hash it would make the kernel
//! raise SIGBUS on the lost pages and kill the process. The `guard` module catches exactly those
//! faults: the lost page is replaced by zeros, the hash goes on, and the result is thrown
//! away and reported as "changed while being read" — an error, never a pass, never a
//! crash. To do so it installs a process-wide `SIGBUS` handler on the first mapping
//! (`execve` resets it, so the application started by `run` never inherits it; see
//! [`crate::exec`]). A mapped file that another process writes to while we hash it gives
//! a hash of a mix of old and new bytes: see the SAFETY note in `hash_mapped` for why
//! that is still fail-closed.
//!
//! The `unsafe` here is the mapping itself and the signal handler; both are confined to
//! `hash_mapped` and `guard`, which with `close` (a raw `close` system call) and
//! `page_cached` (a raw `cachestat` system call) are the only items allowed `unsafe_code`.
//!
//! Files are opened with `O_NOFOLLOW | O_NONBLOCK` and checked with `fstat` after opening:
//! if a regular file was swapped for a symlink, FIFO or device since the walk, it is
//! reported as [`Hashed::NotRegular`] and never read (a FIFO cannot make us hang).

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::fcntl::OFlag;
use rayon::ThreadPool;

use crate::tree::Hash;

/// Files at least this large are memory-mapped instead of read into a buffer.
/// Below it, one `read` into a warm reused buffer is cheaper than setting up and tearing
/// down a mapping (mmap + page faults + munmap). Measured on the 40k-file python tree,
/// 2 cores, warm cache, 25 runs each, both orders: 1 MiB 439-462 ms, 512 KiB 490 ms,
/// 256 KiB 461-500 ms; mapping everything from 8 MiB on, 600 ms; never, 650 ms.
pub const MMAP_THRESHOLD: u64 = 1024 * 1024;

/// Files at least this large are hashed with several threads (blake3's rayon support).
pub const SPLIT_THRESHOLD: u64 = 8 * 1024 * 1024;

/// Buffers at least this large are hashed holding a hashing permit ([`crate::pool::hashing`]),
/// so that no more threads hash than there are CPUs. Below it, hashing takes about as
/// long as taking the permit would (blake3 does some 2 GB/s per core here: 64 KiB in
/// ~30 µs, a 4 KiB file in ~2 µs), and many workers reading tiny files would queue on the
/// permits' lock instead of reading.
pub const PERMIT_THRESHOLD: usize = 64 * 1024;

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

/// The flags every file to hash is opened with: never follow a final symlink, never block
/// on a FIFO, never become a controlling terminal.
pub const OPEN_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_NONBLOCK)
    .union(OFlag::O_NOCTTY)
    .union(OFlag::O_CLOEXEC);

/// [`OPEN_FLAGS`] for `rustix`'s raw system calls.
pub const RAW_OPEN_FLAGS: rustix::fs::OFlags = rustix::fs::OFlags::RDONLY
    .union(rustix::fs::OFlags::NOFOLLOW)
    .union(rustix::fs::OFlags::NONBLOCK)
    .union(rustix::fs::OFlags::NOCTTY)
    .union(rustix::fs::OFlags::CLOEXEC);

/// Whether opens for reading still ask the kernel to leave access times alone; see
/// [`leave_atime`].
static NOATIME: AtomicBool = AtomicBool::new(true);

/// Runs `open(noatime)`, which opens something for reading, with `O_NOATIME` when
/// `noatime` is true. Checking a tree should not write to it, and on a tree written a
/// moment ago (a fresh checkout, a new extraction) `relatime` would make the first read of
/// each file and directory write its inode back: measured on ext4 here, the first `lock`
/// of a fresh 300k-file tree took 2.3-3.3 s without the flag, 1.95 s with it. The kernel
/// grants the flag only to the owner of the file or a holder of `CAP_FOWNER`, and refuses
/// it with `EPERM`: then `open(false)` runs, and the flag stays off for the rest of the
/// process. (When that second open is refused as well, something else refused it, e.g. a
/// seccomp profile, and the flag stays on.)
pub fn leave_atime<T, E: Refused>(open: impl FnMut(bool) -> Result<T, E>) -> Result<T, E> {
    leave_atime_with(&NOATIME, open)
}

/// [`leave_atime`] with its switch given.
fn leave_atime_with<T, E: Refused>(
    noatime: &AtomicBool,
    mut open: impl FnMut(bool) -> Result<T, E>,
) -> Result<T, E> {
    if !noatime.load(Ordering::Relaxed) {
        return open(false);
    }
    match open(true) {
        Err(e) if e.refused() => {}
        done => return done,
    }
    let again = open(false);
    if !matches!(&again, Err(e) if e.refused()) {
        noatime.store(false, Ordering::Relaxed);
    }
    again
}

/// [`OPEN_FLAGS`], with `O_NOATIME` when `noatime` (see [`leave_atime`]).
pub fn open_flags(noatime: bool) -> OFlag {
    match noatime {
        true => OPEN_FLAGS | OFlag::O_NOATIME,
        false => OPEN_FLAGS,
    }
}

/// Opens `name` beside it in `dir` to be hashed: [`RAW_OPEN_FLAGS`], the access time left
/// alone where the kernel allows it ([`leave_atime`]).
pub fn open_at<P: rustix::path::Arg + Copy>(
    dir: impl std::os::fd::AsFd,
    name: P,
) -> rustix::io::Result<std::os::fd::OwnedFd> {
    leave_atime(|noatime| {
        rustix::fs::openat(
            &dir,
            name,
            raw_open_flags(noatime),
            rustix::fs::Mode::empty(),
        )
    })
}

/// [`RAW_OPEN_FLAGS`], with `O_NOATIME` when `noatime` (see [`leave_atime`]).
fn raw_open_flags(noatime: bool) -> rustix::fs::OFlags {
    match noatime {
        true => RAW_OPEN_FLAGS | rustix::fs::OFlags::NOATIME,
        false => RAW_OPEN_FLAGS,
    }
}

/// An open's error that says whether the kernel refused it (`EPERM`), for [`leave_atime`].
pub trait Refused {
    /// Whether this is `EPERM`.
    fn refused(&self) -> bool;
}

impl Refused for nix::errno::Errno {
    fn refused(&self) -> bool {
        *self == nix::errno::Errno::EPERM
    }
}

impl Refused for rustix::io::Errno {
    fn refused(&self) -> bool {
        *self == rustix::io::Errno::PERM
    }
}

impl Refused for io::Error {
    fn refused(&self) -> bool {
        self.raw_os_error() == Some(nix::libc::EPERM)
    }
}

/// Hashes the regular file at `path`; `size_hint` is its size from the walk.
pub fn hash_path(path: &Path, size_hint: u64) -> io::Result<Hashed> {
    let opened = leave_atime(|noatime| {
        OpenOptions::new()
            .read(true)
            .custom_flags(open_flags(noatime).bits())
            .open(path)
    });
    let file = match opened {
        Ok(f) => f,
        // ELOOP: the last component became a symlink.
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => return Ok(Hashed::NotRegular),
        Err(e) => return Err(e),
    };
    hash_opened(file, size_hint)
}

/// Hashes a file opened with [`OPEN_FLAGS`], after checking with `fstat` that it is still
/// a regular file (it could have been replaced since the walk).
pub fn hash_opened(file: File, size_hint: u64) -> io::Result<Hashed> {
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Ok(Hashed::NotRegular);
    }
    hash_regular(file, meta.len().max(size_hint), meta.len())
}

/// Hashes a regular file (opened with [`OPEN_FLAGS`] and checked with `fstat` by the
/// caller) of `len` bytes by that `fstat`; `size_hint` picks reading or mapping.
pub fn hash_regular(file: File, size_hint: u64, len: u64) -> io::Result<Hashed> {
    if len.max(size_hint) >= MMAP_THRESHOLD {
        hash_mapped(&file, len)
    } else {
        hash_read(file, len, false).map(|(hashed, _)| hashed)
    }
}

/// [`hash_regular`], and whether a small file's bytes had to be read from storage: its
/// first `read` asks not to wait (`RWF_NOWAIT`), which fails at once when they are not
/// all in the page cache (then it reads as usual). The same system calls as
/// [`hash_regular`] when they are; where the file system does not take the flag, the
/// answer is always "no" after the first try. A mapped file says "no".
pub fn hash_regular_probed(file: File, size_hint: u64, len: u64) -> io::Result<(Hashed, bool)> {
    if len.max(size_hint) >= MMAP_THRESHOLD {
        hash_mapped(&file, len).map(|hashed| (hashed, false))
    } else {
        hash_read(file, len, true)
    }
}

/// Whether reading the byte at `offset` of `file` would wait for storage. "No" wherever
/// that cannot be told (the file system does not take the flags, past the end, any error).
/// Always asked, even where an earlier file's file system refused: it is asked once per
/// tree and once per large mapped file, each of which may lie on another file system.
///
/// A read that may not wait (`RWF_NOWAIT`) fails with `EAGAIN` when the page is not in
/// the page cache, but it also starts reading that page, and a read served fast enough
/// (one byte from a fast device) completes before the page is looked at: 11 of 4,000
/// reads of a page just evicted returned it, on an idle machine. So the page cache is
/// first asked without reading (`cachestat`): a page there is warm. Where it is not, the
/// read tells; when the read returns the byte, the page cache is asked again, and the
/// page is there only now if this read put it there (cold). "Not there" alone is never
/// taken for cold: a stacked file system keeps the pages with the file beneath
/// (overlayfs, which also refuses the flag, says "not there" of a file just read).
pub fn waits_for_storage(file: &File, offset: u64) -> bool {
    let before = page_cached(file, offset);
    if before == Some(true) {
        return false;
    }
    let mut byte = [0u8; 1];
    loop {
        match rustix::io::preadv2(
            file,
            &mut [io::IoSliceMut::new(&mut byte)],
            offset,
            rustix::io::ReadWriteFlags::NOWAIT,
        ) {
            Err(rustix::io::Errno::INTR) => continue,
            Err(rustix::io::Errno::AGAIN) => return true,
            Err(
                rustix::io::Errno::OPNOTSUPP
                | rustix::io::Errno::INVAL
                | rustix::io::Errno::NOSYS
                | rustix::io::Errno::PERM,
            ) => {
                NOWAIT.store(false, Ordering::Relaxed);
                return false;
            }
            Ok(1) => return before == Some(false) && page_cached(file, offset) == Some(true),
            _ => return false,
        }
    }
}

/// Whether the page cache holds the page of the byte at `offset` of `file`, asked of the
/// kernel without reading it (`cachestat(2)`, Linux 6.5); `None` where it cannot say: an
/// older kernel, a seccomp profile that refuses the call, a file the caller may not ask
/// about. Past the end of the file the answer is "no".
#[allow(unsafe_code)]
fn page_cached(file: &File, offset: u64) -> Option<bool> {
    use nix::libc;
    use std::os::fd::AsRawFd;
    /// `cachestat`'s number, the same on every architecture (new calls share one table).
    const SYS_CACHESTAT: libc::c_long = 451;
    /// `struct cachestat_range`: the bytes asked about.
    #[repr(C)]
    struct Range {
        off: u64,
        len: u64,
    }
    /// `struct cachestat`: pages in the cache, and of those dirty, under writeback; pages
    /// evicted, and of those recently.
    #[repr(C)]
    #[derive(Default)]
    struct Stat {
        cached: u64,
        dirty: u64,
        writeback: u64,
        evicted: u64,
        recently_evicted: u64,
    }
    let range = Range {
        off: offset,
        len: 1,
    };
    let mut stat = Stat::default();
    // SAFETY: `cachestat(fd, range, cstat, flags)` reads one `cachestat_range` and writes
    // one `cachestat`, both `repr(C)` with the kernel's layout (two and five `__u64`) and
    // alive for the call; it touches no other memory and neither keeps the pointers.
    let done = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            file.as_raw_fd(),
            &range as *const Range,
            &mut stat as *mut Stat,
            0u32,
        )
    };
    (done == 0).then_some(stat.cached > 0)
}

/// Drops the pages of the file at `path` from the page cache (clean once synced), for tests
/// of a cold cache; false on a file system that keeps them anyway (tmpfs).
#[cfg(test)]
pub(crate) fn evict(path: &Path) -> bool {
    const TMPFS_MAGIC: u64 = 0x0102_1994;
    let file = File::open(path).unwrap();
    file.sync_all().unwrap();
    nix::fcntl::posix_fadvise(
        &file,
        0,
        0,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
    )
    .unwrap();
    rustix::fs::fstatfs(&file).unwrap().f_type as u64 != TMPFS_MAGIC
}

/// Whether reads without waiting work here; cleared when the file system refuses one.
static NOWAIT: AtomicBool = AtomicBool::new(true);

/// Reads a file of `size` bytes (from `fstat`) into the thread's buffer and hashes it.
///
/// Syscalls are the cost of small files (about 2 µs each in a VM), so this asks for
/// `size + 1` bytes in one `read`: a file that has not grown comes back whole, and the
/// short count proves the end was reached, with no second `read` returning 0. (`read_to_end`
/// would add an `fstat`, an `lseek` and that second `read` per file.) A read that stops
/// before `size` bytes, or a file that grew, keeps reading until a `read` returns 0.
///
/// With `probe`, the first `read` does not wait for storage (`RWF_NOWAIT`, see
/// [`hash_regular_probed`]); the second value says whether it would have had to.
fn hash_read(file: File, size: u64, probe: bool) -> io::Result<(Hashed, bool)> {
    BUFFER.with(|buf| {
        let mut buf = buf.borrow_mut();
        let mut want = size as usize + 1;
        if buf.len() < want {
            buf.resize(want, 0);
        }
        let (mut filled, mut waited) = (0, false);
        let mut first = probe && size > 0 && NOWAIT.load(Ordering::Relaxed);
        loop {
            let read = match first {
                // At the file's offset, which it moves, as `read` does.
                true => rustix::io::preadv2(
                    &file,
                    &mut [io::IoSliceMut::new(&mut buf[filled..want])],
                    u64::MAX,
                    rustix::io::ReadWriteFlags::NOWAIT,
                ),
                false => rustix::io::read(&file, &mut buf[filled..want]),
            };
            let n = match read {
                Ok(n) => n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::AGAIN) if first => {
                    (first, waited) = (false, true);
                    continue;
                }
                // The flag, or the call itself, is not supported here (or not allowed).
                Err(
                    rustix::io::Errno::OPNOTSUPP
                    | rustix::io::Errno::INVAL
                    | rustix::io::Errno::NOSYS
                    | rustix::io::Errno::PERM,
                ) if first => {
                    NOWAIT.store(false, Ordering::Relaxed);
                    first = false;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            first = false;
            filled += n;
            if n == 0 || (filled as u64 == size && filled < want) {
                break;
            }
            if filled == want {
                // It grew since fstat: make room and read on to the real end.
                want *= 2;
                if buf.len() < want {
                    buf.resize(want, 0);
                }
            }
        }
        close(file);
        let data = &buf[..filled];
        let hash = match filled >= PERMIT_THRESHOLD {
            true => crate::pool::hashing(|| blake3::hash(data)),
            false => blake3::hash(data),
        };
        let hashed = Hashed::File {
            hash: *hash.as_bytes(),
            size: filled as u64,
        };
        Ok((hashed, waited))
    })
}

/// Closes `file` with the system call itself. Dropping a `File` closes it through libc,
/// whose `close` is a cancellation point: in a process with threads it brackets the call
/// with two calls into libc's thread machinery. With `read` (also called raw, through
/// rustix) and `openat` that was 1.9% of `verify`'s samples on the 150k-file tree.
#[allow(unsafe_code)]
fn close(file: File) {
    use std::os::fd::IntoRawFd;
    let fd = file.into_raw_fd();
    // SAFETY: `into_raw_fd` gave up the only owner of `fd`, and nothing uses it after
    // this call. (An error from `close` leaves the descriptor closed on Linux; a file
    // only read has nothing to report there.)
    unsafe { rustix::io::close(fd) }
}

/// Maps a file of `len` bytes (from `fstat`) and hashes it, with several threads from
/// [`SPLIT_THRESHOLD`] on.
#[allow(unsafe_code)]
fn hash_mapped(file: &File, len: u64) -> io::Result<Hashed> {
    if len == 0 {
        return hash_read(file.try_clone()?, 0, false).map(|(hashed, _)| hashed);
    }
    // SAFETY: the mapping is read-only (`PROT_READ`, `MAP_PRIVATE`), lives only for this
    // call, and is only read, by blake3, through the slice below. A `&[u8]` promises that
    // its bytes do not change while it is borrowed; the kernel does not promise that for
    // a file mapping, and two things can really happen while we read:
    // - Another process truncates the file: reads of the pages past the new end raise
    //   SIGBUS. `guard` catches exactly those faults, maps zeros over the lost page so
    //   the read completes, and the result is discarded as an error ("it shrank while it
    //   was being read"): never a pass, never a crash.
    // - Another process writes to the file (`write(2)`, or through its own shared
    //   mapping): pages of a private mapping that we have not written (we never do)
    //   show the page cache, so we may read some bytes before the write and some after.
    //   No memory is unsafe for it: the mapping stays valid, blake3 only loads the bytes
    //   and makes no decision whose safety depends on their values (no indexing by
    //   content, no UTF-8 assumption), and nothing else reads the slice. The hash is then
    //   that of bytes each of which was in the file when it was read; it equals the
    //   sealed hash only if every byte read was the sealed byte, so a concurrent writer
    //   can make a sealed file look changed (it is reported, the gate refuses), never a
    //   changed one look sealed. A change after a byte was read goes unseen, exactly as
    //   with `read(2)`: a check sees the file as it was while it was checked.
    let map = unsafe { memmap2::MmapOptions::new().len(len as usize).map(file)? };
    let Some(watch) = guard::Watch::new(&map) else {
        // No guard (every slot taken by concurrent mappings, or no handler): read instead.
        drop(map);
        return hash_read(file.try_clone()?, len, false).map(|(hashed, _)| hashed);
    };
    let mut hasher = blake3::Hasher::new();
    let split = len >= SPLIT_THRESHOLD;
    let pool = split.then(crate::pool::hashers).flatten();
    if split && read_in_windows(file, len) {
        hash_windows(file, &map, &mut hasher, pool);
    } else {
        // Ask for the whole file now: on a cold cache the reads are in flight while this
        // worker waits for a hashing permit, instead of page by page as blake3 faults
        // them in.
        advise(file, 0, len);
        hash_mapping(&mut hasher, &map, pool);
    }
    if watch.faulted() {
        return Err(io::Error::other("it shrank while it was being read"));
    }
    Ok(Hashed::File {
        hash: *hasher.finalize().as_bytes(),
        size: len,
    })
}

/// Whether a large file of `len` bytes is hashed in windows ([`hash_windows`]): when its
/// last byte is not in the page cache. Not its first: the first file of a cold tree has
/// had its first byte read to tell that the tree is cold (`verify`'s `starts_cold`), and
/// so read warm there; a file hashed in part before (a check cut short) is warm at the
/// start too.
fn read_in_windows(file: &File, len: u64) -> bool {
    waits_for_storage(file, len - 1)
}

/// The length of the windows a large file not in the page cache is hashed in
/// ([`hash_windows`]). Windows of 8, 16 and 32 MiB took the same time within 4% (page
/// cache dropped, four 256 MiB files, 1 and 2 CPUs, reads limited to 400 MB/s).
const WINDOW: usize = 16 << 20;

/// Hashes `map`, all of `file`, one [`WINDOW`] at a time, asking for the reads of the next
/// two windows before hashing each. On a cold cache, advice for the whole file has the
/// file read before its hashing begins (`POSIX_FADV_WILLNEED` returns once its reads are
/// queued, and the device's queue holds only so many), so reading and hashing take their
/// sum; in windows they take the longer of the two and one window more. Measured on the
/// 3.2 GiB benchmark tree (4 files), page cache dropped, 10 runs each taking turns:
/// medians 4.01 s advised whole, 3.27 s in windows with 1 CPU (the I/O floor 3.69 s);
/// 3.02 s and 2.88 s with 2 CPUs (floor 2.82 s). Only for a file found cold: on a warm
/// one the windows cost ~20% more time than hashing the mapping at once (each `install`
/// wakes the pool, which then idles).
fn hash_windows(file: &File, map: &[u8], hasher: &mut blake3::Hasher, pool: Option<&ThreadPool>) {
    let len = map.len() as u64;
    let window = WINDOW as u64;
    advise(file, 0, 2 * window);
    for (i, piece) in (1..).zip(map.chunks(WINDOW)) {
        let ahead = (i + 1) * window;
        if ahead < len {
            advise(file, ahead, window);
        }
        hash_mapping(hasher, piece, pool);
    }
}

/// Feeds `bytes` to `hasher`: split across `pool` if there is one, else on this thread
/// holding a hashing permit.
fn hash_mapping(hasher: &mut blake3::Hasher, bytes: &[u8], pool: Option<&ThreadPool>) {
    match pool {
        // The CPU-sized pool bounds this hashing by itself. No permit is held across
        // `install`: a worker waiting there runs other queued work meanwhile, and work
        // that waits for a permit while the worker holds one would never finish.
        Some(pool) => pool.install(|| hasher.update_rayon(bytes)),
        None => crate::pool::hashing(|| hasher.update(bytes)),
    };
}

/// Asks the kernel to start reading `len` bytes of `file` from `offset`. Only a hint: if
/// it fails, the page faults read the pages anyway.
fn advise(file: &File, offset: u64, len: u64) {
    let _ = nix::fcntl::posix_fadvise(
        file,
        offset as i64,
        len as i64,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_WILLNEED,
    );
}

/// Survives SIGBUS on mapped files that shrink while being hashed.
///
/// Each live mapping registers its address range in a fixed table of atomics (a signal
/// handler may not lock or allocate). The SIGBUS handler looks the faulting address up:
/// inside a registered mapping, it maps a zero page over the lost one (`MAP_FIXED`, so the
/// faulting read is retried and succeeds) and marks the mapping as faulted; anywhere else,
/// it restores the default action and returns, so the fault repeats and kills the process
/// as it would have without us. The table is global, not per thread, because blake3's
/// rayon hashing reads one mapping from several threads.
mod guard {
    #![allow(unsafe_code)]

    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Once;

    use nix::libc;

    /// More mappings than this at once fall back to reading (one per worker thread is
    /// the normal case).
    const SLOTS: usize = 64;

    struct Slot {
        start: AtomicUsize,
        end: AtomicUsize,
        faulted: AtomicBool,
    }

    #[allow(clippy::declare_interior_mutable_const)]
    const EMPTY: Slot = Slot {
        start: AtomicUsize::new(0),
        end: AtomicUsize::new(0),
        faulted: AtomicBool::new(false),
    };
    static TABLE: [Slot; SLOTS] = [EMPTY; SLOTS];
    static INSTALL: Once = Once::new();
    /// Whether the handler is in place.
    static INSTALLED: AtomicBool = AtomicBool::new(false);
    /// The page size, read before the handler is installed: `sysconf` is not
    /// async-signal-safe, so the handler must not call it.
    static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);

    /// A registered mapping; unregisters on drop.
    pub struct Watch {
        slot: &'static Slot,
    }

    impl Watch {
        /// Registers `map`'s range; `None` when the table is full or the handler could
        /// not be installed (the caller then reads the file instead of mapping it).
        pub fn new(map: &[u8]) -> Option<Watch> {
            INSTALL.call_once(|| INSTALLED.store(install(), Ordering::Release));
            if !INSTALLED.load(Ordering::Acquire) {
                return None;
            }
            let start = map.as_ptr() as usize;
            for slot in &TABLE {
                if slot
                    .start
                    .compare_exchange(0, start, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                {
                    slot.faulted.store(false, Ordering::Relaxed);
                    slot.end.store(start + map.len(), Ordering::Release);
                    return Some(Watch { slot });
                }
            }
            None
        }

        /// Whether any page of the mapping was lost while it was read.
        pub fn faulted(&self) -> bool {
            self.slot.faulted.load(Ordering::Acquire)
        }
    }

    impl Drop for Watch {
        fn drop(&mut self) {
            self.slot.end.store(0, Ordering::Release);
            self.slot.start.store(0, Ordering::Release);
        }
    }

    /// Installs the handler; false when it could not be (the page size unknown, or
    /// `sigaction` refused).
    fn install() -> bool {
        // SAFETY: `sysconf` has no preconditions; it runs here, outside any handler.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        match usize::try_from(page) {
            Ok(page) if page.is_power_of_two() => PAGE_SIZE.store(page, Ordering::Release),
            _ => return false,
        }
        // SAFETY: `sigaction` is a plain C struct for which all-zero is valid; `act` is
        // fully initialised before the call, and no old action is requested. The handler
        // only loads and stores atomics and calls `mmap` and `signal`, both
        // async-signal-safe system calls.
        unsafe {
            let mut act: libc::sigaction = std::mem::zeroed();
            act.sa_sigaction = on_sigbus as *const () as usize;
            act.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER;
            libc::sigemptyset(&mut act.sa_mask);
            libc::sigaction(libc::SIGBUS, &act, std::ptr::null_mut()) == 0
        }
    }

    extern "C" fn on_sigbus(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
        // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
        let addr = unsafe { (*info).si_addr() } as usize;
        let page = PAGE_SIZE.load(Ordering::Acquire);
        for slot in &TABLE {
            let start = slot.start.load(Ordering::Acquire);
            let end = slot.end.load(Ordering::Acquire);
            if page != 0 && start != 0 && (start..end).contains(&addr) {
                let base = addr & !(page - 1);
                // SAFETY: `mmap` is async-signal-safe. `base..base + page` lies inside a
                // registered mapping (mappings start on a page boundary and are still
                // owned by the `hash_mapped` call that registered them, which is blocked
                // in this fault), so MAP_FIXED replaces one of our own read-only pages in
                // place with zeros and touches no other memory.
                let p = unsafe {
                    libc::mmap(
                        base as *mut libc::c_void,
                        page,
                        libc::PROT_READ,
                        libc::MAP_PRIVATE | libc::MAP_FIXED | libc::MAP_ANONYMOUS,
                        -1,
                        0,
                    )
                };
                if p != libc::MAP_FAILED {
                    slot.faulted.store(true, Ordering::Release);
                    return;
                }
            }
        }
        // Not ours: let the fault kill the process as it would have.
        // SAFETY: `signal` with SIG_DFL only resets a disposition; async-signal-safe.
        unsafe {
            libc::signal(libc::SIGBUS, libc::SIG_DFL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_probed_read_hashes_as_a_plain_one_and_finds_a_fresh_file_cached() {
        let dir = tempfile::tempdir().unwrap();
        for len in [
            0,
            1,
            4096,
            MMAP_THRESHOLD as usize - 1,
            MMAP_THRESHOLD as usize,
        ] {
            let path = dir.path().join(format!("f{len}"));
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            std::fs::write(&path, &data).unwrap();
            let plain = hash_regular(File::open(&path).unwrap(), len as u64, len as u64);
            let probed = hash_regular_probed(File::open(&path).unwrap(), len as u64, len as u64);
            // Just written: in the page cache, so the read did not wait.
            assert_eq!(probed.unwrap(), (plain.unwrap(), false), "length {len}");
        }
    }

    #[test]
    fn o_noatime_is_dropped_for_good_only_when_it_was_the_reason() {
        use nix::errno::Errno;
        let calls = std::cell::RefCell::new(Vec::new());
        let open = |refuse: &'static [bool]| {
            let calls = &calls;
            move |noatime: bool| {
                calls.borrow_mut().push(noatime);
                match refuse.contains(&noatime) {
                    true => Err(Errno::EPERM),
                    false => Ok(noatime),
                }
            }
        };
        let run = |switch: &AtomicBool, refuse: &'static [bool]| {
            calls.borrow_mut().clear();
            let got = leave_atime_with(switch, open(refuse));
            (got, calls.borrow().clone(), switch.load(Ordering::Relaxed))
        };
        // Granted: one open, with the flag, which stays on.
        let on = AtomicBool::new(true);
        assert_eq!(run(&on, &[]), (Ok(true), vec![true], true));
        // Refused for the flag (not the owner): again without it, and off from then on.
        assert_eq!(run(&on, &[true]), (Ok(false), vec![true, false], false));
        assert_eq!(run(&on, &[]), (Ok(false), vec![false], false));
        // Refused with and without it: not the flag's doing; the error, and the flag stays on.
        let on = AtomicBool::new(true);
        let got = run(&on, &[true, false]);
        assert_eq!(got, (Err(Errno::EPERM), vec![true, false], true));
        // Any other error is the open's answer.
        let on = AtomicBool::new(true);
        let got = leave_atime_with(&on, |_| Err::<(), _>(Errno::ENOENT));
        assert_eq!(
            (got, on.load(Ordering::Relaxed)),
            (Err(Errno::ENOENT), true)
        );
    }

    #[test]
    fn both_spellings_of_the_open_flags_agree() {
        for noatime in [false, true] {
            assert_eq!(
                raw_open_flags(noatime).bits() as i32,
                open_flags(noatime).bits()
            );
        }
        assert_eq!(RAW_OPEN_FLAGS.bits() as i32, OPEN_FLAGS.bits());
    }

    #[test]
    fn a_file_truncated_under_the_mapping_is_an_error_not_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        let len = 4 * MMAP_THRESHOLD as usize;
        std::fs::File::create(&path)
            .unwrap()
            .write_all(&vec![7u8; len])
            .unwrap();
        let file = File::open(&path).unwrap();
        // Shrink it after we learned its length, as a concurrent writer would.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(4096)
            .unwrap();
        let err = hash_mapped(&file, len as u64).unwrap_err();
        assert_eq!(err.to_string(), "it shrank while it was being read");
        // The guard is released: a later intact file hashes normally.
        let file = File::open(&path).unwrap();
        assert_eq!(
            hash_mapped(&file, 4096).unwrap(),
            Hashed::File {
                hash: *blake3::hash(&[7u8; 4096]).as_bytes(),
                size: 4096
            }
        );
    }

    #[test]
    fn a_file_that_grew_since_fstat_is_read_to_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![1u8; 10_000]).unwrap();
        let file = File::open(&path).unwrap();
        assert_eq!(
            hash_read(file, 100, false).unwrap().0,
            Hashed::File {
                hash: *blake3::hash(&[1u8; 10_000]).as_bytes(),
                size: 10_000
            }
        );
        let file = File::open(&path).unwrap();
        assert_eq!(
            hash_read(file, 20_000, true).unwrap().0,
            Hashed::File {
                hash: *blake3::hash(&[1u8; 10_000]).as_bytes(),
                size: 10_000
            }
        );
    }

    #[test]
    fn mapped_and_read_paths_agree() {
        let dir = tempfile::tempdir().unwrap();
        for len in [
            0,
            1,
            MMAP_THRESHOLD - 1,
            MMAP_THRESHOLD,
            SPLIT_THRESHOLD + 3,
        ] {
            let path = dir.path().join(format!("f{len}"));
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            std::fs::write(&path, &data).unwrap();
            assert_eq!(
                hash_path(&path, len).unwrap(),
                Hashed::File {
                    hash: *blake3::hash(&data).as_bytes(),
                    size: len
                },
                "length {len}"
            );
        }
    }

    #[test]
    fn hashing_in_windows_equals_hashing_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::create(dir.path().join("advised")).unwrap();
        let pool = crate::pool::build_with(2, |_| {});
        assert!(pool.is_some(), "no pool of two threads");
        let data: Vec<u8> = (0..5 * WINDOW / 2 + 7)
            .map(|i| (i * 7 % 253) as u8)
            .collect();
        for len in [1, WINDOW - 1, WINDOW, WINDOW + 1, 2 * WINDOW, data.len()] {
            for pool in [None, pool.as_ref()] {
                let mut hasher = blake3::Hasher::new();
                hash_windows(&file, &data[..len], &mut hasher, pool);
                assert_eq!(
                    hasher.finalize(),
                    blake3::hash(&data[..len]),
                    "length {len}, pool: {}",
                    pool.is_some()
                );
            }
        }
    }

    #[test]
    fn a_page_just_evicted_is_found_cold_every_time_where_the_page_cache_can_be_asked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("small");
        std::fs::write(&path, b"first").unwrap();
        let file = File::open(&path).unwrap();
        if page_cached(&file, 0) != Some(true) {
            eprintln!("skipped: the page cache cannot be asked about this file here");
            return;
        }
        assert!(!waits_for_storage(&file, 0), "a file just written is warm");
        // A read that may not wait starts reading the page, and now and then (a few times
        // in 1,000) has it before it looks: that must not read as warm.
        for round in 0..2000 {
            if !evict(&path) {
                eprintln!("skipped: this file system keeps every page in memory");
                return;
            }
            assert!(
                waits_for_storage(&file, 0),
                "round {round}: evicted, found warm"
            );
        }
        std::fs::read(&path).unwrap();
        assert!(!waits_for_storage(&file, 0), "read again, it is warm");
    }

    #[test]
    fn a_large_file_out_of_the_page_cache_hashes_as_one_in_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cold");
        let data: Vec<u8> = (0..2 * WINDOW + 4099)
            .map(|i| (i * 13 % 241) as u8)
            .collect();
        std::fs::write(&path, &data).unwrap();
        let want = Hashed::File {
            hash: *blake3::hash(&data).as_bytes(),
            size: data.len() as u64,
        };
        let len = data.len() as u64;
        assert_eq!(hash_path(&path, len).unwrap(), want, "warm");
        if !evict(&path) {
            eprintln!("skipped: this file system keeps every page in memory");
            return;
        }
        let file = File::open(&path).unwrap();
        // The first byte is read as `verify` reads a cold tree's first file to tell.
        assert!(waits_for_storage(&file, 0), "still in the page cache");
        assert!(read_in_windows(&file, len), "cold but for its first page");
        assert_eq!(hash_path(&path, len).unwrap(), want, "cold");
    }
}
