//! `floor [--threads N] [--mode read|mmap|auto|stat|lean|ahead] DIR...`
//!
//! The I/O floor for treeseal's benchmarks: walk DIR (not following symlinks) and bring
//! every byte of every regular file through the CPU with N threads, without hashing.
//!
//! * `read`: `read(2)` into one reused 1 MiB buffer per thread (what `cat` does).
//! * `mmap`: map each non-empty file and fold it 8 bytes at a time (no copy).
//! * `auto` (default): like treeseal, `read` below 1 MiB and `mmap` from 1 MiB on.
//! * `stat`: read nothing; `lstat` every entry (directories, files, symlinks, others). The
//!   metadata floor: what any check that looks at every entry's metadata costs at least.
//! * `lean`: the fewest plain system calls that see every name, every file's metadata and
//!   every byte: per directory `open`, `fstat`, `getdents64` until it returns 0, `close`;
//!   per regular file `openat` relative to its directory, `fstat`, one `read` of its size
//!   plus one byte (more only for a file that grew), `close`. Files are read into one reused
//!   buffer by the thread that lists their directory. What a checker that lists every
//!   directory costs at least before it hashes anything; the other modes use whole paths
//!   and a `stat` before each open, as a simple tool would.
//!   Kinds come from the listing's `d_type` (ext4 and overlayfs give it; a name without
//!   one is skipped).
//! * `ahead`: `lean`, but a directory's regular files are opened 32 at a time and each
//!   advised `POSIX_FADV_WILLNEED` (which queues its reads and returns) before the 32 are
//!   `fstat`ed, read and closed in turn: on a cold cache the storage gets each thread's
//!   next files at once and can merge those that lie side by side. What a checker that
//!   starts its reads ahead costs at least (`treeseal verify` does so once a tree shows
//!   cold).
//!
//! Prints `files bytes fold` on stdout; the fold only keeps the work observable.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Condvar, Mutex};

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Read,
    Mmap,
    Auto,
    Stat,
    Lean,
    Ahead,
}

const BIG: u64 = 1 << 20;

struct Queue {
    state: Mutex<State>,
    cv: Condvar,
}

struct State {
    items: VecDeque<(PathBuf, bool)>, // (path, is_dir)
    busy: usize,                      // items being processed by some thread
}

fn fold(bytes: &[u8]) -> u64 {
    let mut acc = 0u64;
    let (chunks, rest) = bytes.split_at(bytes.len() & !7);
    for c in chunks.chunks_exact(8) {
        acc ^= u64::from_le_bytes(c.try_into().unwrap());
    }
    for &b in rest {
        acc = acc.rotate_left(8) ^ b as u64;
    }
    acc
}

fn read_file(path: &PathBuf, len: u64, mode: Mode, buf: &mut [u8]) -> std::io::Result<(u64, u64)> {
    let mut f = File::open(path)?;
    let use_mmap = match mode {
        Mode::Read => false,
        Mode::Mmap => len > 0,
        Mode::Auto => len >= BIG,
        Mode::Stat | Mode::Lean | Mode::Ahead => {
            unreachable!("stat, lean and ahead modes do not read by path")
        }
    };
    if use_mmap {
        // SAFETY: benchmark input is not modified while it is read.
        let map = unsafe { memmap2::Mmap::map(&f)? };
        return Ok((map.len() as u64, fold(&map)));
    }
    let mut total = 0u64;
    let mut acc = 0u64;
    loop {
        let n = f.read(buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        acc ^= buf[0] as u64 ^ buf[n - 1] as u64;
    }
    Ok((total, acc))
}

fn worker(q: &Queue, mode: Mode) -> (u64, u64, u64) {
    let mut buf = vec![0u8; 1 << 20];
    let (mut files, mut bytes, mut acc) = (0u64, 0u64, 0u64);
    loop {
        let item = {
            let mut st = q.state.lock().unwrap();
            loop {
                if let Some(it) = st.items.pop_front() {
                    st.busy += 1;
                    break Some(it);
                }
                if st.busy == 0 {
                    break None;
                }
                st = q.cv.wait(st).unwrap();
            }
        };
        let Some((path, is_dir)) = item else {
            q.cv.notify_all();
            return (files, bytes, acc);
        };
        if is_dir && matches!(mode, Mode::Lean | Mode::Ahead) {
            let (found, f, b, a) = lean_dir(&path, &mut buf, mode == Mode::Ahead);
            files += f;
            bytes += b;
            acc ^= a;
            let mut st = q.state.lock().unwrap();
            st.items.extend(found.into_iter().map(|p| (p, true)));
            st.busy -= 1;
            drop(st);
            q.cv.notify_all();
        } else if is_dir {
            if mode == Mode::Stat {
                let _ = std::fs::symlink_metadata(&path);
            }
            let mut found = Vec::new();
            match std::fs::read_dir(&path) {
                Ok(rd) => {
                    for e in rd.flatten() {
                        if let Ok(t) = e.file_type() {
                            if t.is_dir() {
                                found.push((e.path(), true));
                            } else if t.is_file() || mode == Mode::Stat {
                                found.push((e.path(), false));
                            }
                        }
                    }
                }
                Err(e) => eprintln!("floor: {}: {e}", path.display()),
            }
            let mut st = q.state.lock().unwrap();
            st.items.extend(found);
            st.busy -= 1;
            drop(st);
            q.cv.notify_all();
        } else {
            let len = std::fs::symlink_metadata(&path)
                .map(|m| m.len())
                .unwrap_or(0);
            let done = match mode {
                Mode::Stat => Ok((0, len)),
                _ => read_file(&path, len, mode, &mut buf),
            };
            match done {
                Ok((n, a)) => {
                    files += 1;
                    bytes += n;
                    acc ^= a.rotate_left((files % 64) as u32);
                }
                Err(e) => eprintln!("floor: {}: {e}", path.display()),
            }
            let mut st = q.state.lock().unwrap();
            st.busy -= 1;
            let wake = st.busy == 0 && st.items.is_empty();
            drop(st);
            if wake {
                q.cv.notify_all();
            }
        }
    }
}

/// Files a thread opens and advises at once in `ahead` mode.
const AHEAD: usize = 32;

/// `lean` mode: lists the directory at `path` through one descriptor and reads each of
/// its regular files relative to it; `ahead` mode (`ahead`): reads them after the listing,
/// [`AHEAD`] at a time, each opened and advised `POSIX_FADV_WILLNEED` before any of them
/// is read. Returns its subdirectories, and the files, bytes and fold of what it read.
fn lean_dir(
    path: &std::path::Path,
    buf: &mut Vec<u8>,
    ahead: bool,
) -> (Vec<PathBuf>, u64, u64, u64) {
    use std::ffi::{CStr, CString};
    use std::os::unix::ffi::OsStrExt;
    let (mut subdirs, mut files, mut bytes, mut acc) = (Vec::new(), 0u64, 0u64, 0u64);
    let cpath = CString::new(path.as_os_str().as_bytes()).expect("no NUL in a path");
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    let fflags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;
    // SAFETY (all calls below): plain system calls on descriptors this function owns and
    // buffers it holds, with their lengths.
    let dfd = unsafe { libc::open(cpath.as_ptr(), flags) };
    if dfd < 0 {
        eprintln!(
            "floor: {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
        return (subdirs, 0, 0, 0);
    }
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    unsafe { libc::fstat(dfd, &mut st) };
    let mut read_one = |fd: i32, buf: &mut Vec<u8>| {
        let mut fst: libc::stat = unsafe { std::mem::zeroed() };
        unsafe { libc::fstat(fd, &mut fst) };
        let want = fst.st_size as usize + 1;
        if buf.len() < want {
            buf.resize(want, 0);
        }
        let mut filled = 0;
        loop {
            let r =
                unsafe { libc::read(fd, buf[filled..].as_mut_ptr().cast(), buf.len() - filled) };
            if r <= 0 {
                break;
            }
            filled += r as usize;
            if filled < buf.len() {
                break;
            }
            buf.resize(buf.len() * 2, 0);
        }
        unsafe { libc::close(fd) };
        files += 1;
        bytes += filled as u64;
        if filled > 0 {
            acc ^= (buf[0] as u64 ^ buf[filled - 1] as u64).rotate_left((files % 64) as u32);
        }
    };
    let mut later: Vec<CString> = Vec::new();
    let mut dents = vec![0u8; 32 * 1024];
    loop {
        let n =
            unsafe { libc::syscall(libc::SYS_getdents64, dfd, dents.as_mut_ptr(), dents.len()) };
        if n <= 0 {
            break;
        }
        let mut at = 0;
        while at < n as usize {
            // struct linux_dirent64: d_ino u64, d_off i64, d_reclen u16, d_type u8, d_name.
            let reclen = u16::from_ne_bytes([dents[at + 16], dents[at + 17]]) as usize;
            let d_type = dents[at + 18];
            let name = unsafe { CStr::from_ptr(dents.as_ptr().add(at + 19).cast()) };
            at += reclen;
            if name.to_bytes() == b"." || name.to_bytes() == b".." {
                continue;
            }
            match d_type {
                libc::DT_DIR => {
                    subdirs.push(path.join(std::ffi::OsStr::from_bytes(name.to_bytes())))
                }
                libc::DT_REG if ahead => later.push(name.to_owned()),
                libc::DT_REG => {
                    let fd = unsafe { libc::openat(dfd, name.as_ptr(), fflags) };
                    if fd >= 0 {
                        read_one(fd, buf);
                    }
                }
                _ => {}
            }
        }
    }
    for batch in later.chunks(AHEAD) {
        let fds: Vec<i32> = batch
            .iter()
            .map(|name| {
                let fd = unsafe { libc::openat(dfd, name.as_ptr(), fflags) };
                if fd >= 0 {
                    unsafe { libc::posix_fadvise(fd, 0, 0, libc::POSIX_FADV_WILLNEED) };
                }
                fd
            })
            .collect();
        for fd in fds.into_iter().filter(|&fd| fd >= 0) {
            read_one(fd, buf);
        }
    }
    unsafe { libc::close(dfd) };
    (subdirs, files, bytes, acc)
}

fn main() {
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut mode = Mode::Auto;
    let mut dirs = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--threads" | "-j" => {
                threads = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--threads N")
            }
            "--mode" => {
                mode = match args.next().as_deref() {
                    Some("read") => Mode::Read,
                    Some("mmap") => Mode::Mmap,
                    Some("auto") => Mode::Auto,
                    Some("stat") => Mode::Stat,
                    Some("lean") => Mode::Lean,
                    Some("ahead") => Mode::Ahead,
                    _ => panic!("--mode read|mmap|auto|stat|lean|ahead"),
                }
            }
            "-h" | "--help" => {
                println!(
                    "usage: floor [--threads N] [--mode read|mmap|auto|stat|lean|ahead] DIR..."
                );
                return;
            }
            _ => dirs.push((PathBuf::from(a), true)),
        }
    }
    if dirs.is_empty() {
        eprintln!("usage: floor [--threads N] [--mode read|mmap|auto|stat|lean|ahead] DIR...");
        std::process::exit(2);
    }
    let q = Queue {
        state: Mutex::new(State {
            items: dirs.into(),
            busy: 0,
        }),
        cv: Condvar::new(),
    };
    let threads = threads.max(1);
    let (mut files, mut bytes, mut acc) = (0u64, 0u64, 0u64);
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads).map(|_| s.spawn(|| worker(&q, mode))).collect();
        for h in hs {
            let (f, b, a) = h.join().unwrap();
            files += f;
            bytes += b;
            acc ^= a;
        }
    });
    println!("{files} {bytes} {acc:016x}");
}
