//! `floor [--threads N] [--mode read|mmap|auto|stat] DIR...`
//!
//! The I/O floor for treeseal's benchmarks: walk DIR (not following symlinks) and bring
//! every byte of every regular file through the CPU with N threads, without hashing.
//!
//! * `read`: `read(2)` into one reused 1 MiB buffer per thread (what `cat` does).
//! * `mmap`: map each non-empty file and fold it 8 bytes at a time (no copy).
//! * `auto` (default): like treeseal, `read` below 1 MiB and `mmap` from 1 MiB on.
//! * `stat`: read nothing; `lstat` every entry (directories, files, symlinks, others). The
//!   metadata floor: what any check that looks at every entry's metadata costs at least.
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
        Mode::Stat => unreachable!("stat mode reads nothing"),
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
        if is_dir {
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
            let len = std::fs::symlink_metadata(&path).map(|m| m.len()).unwrap_or(0);
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

fn main() {
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut mode = Mode::Auto;
    let mut dirs = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--threads" | "-j" => threads = args.next().and_then(|v| v.parse().ok()).expect("--threads N"),
            "--mode" => {
                mode = match args.next().as_deref() {
                    Some("read") => Mode::Read,
                    Some("mmap") => Mode::Mmap,
                    Some("auto") => Mode::Auto,
                    Some("stat") => Mode::Stat,
                    _ => panic!("--mode read|mmap|auto|stat"),
                }
            }
            "-h" | "--help" => {
                println!("usage: floor [--threads N] [--mode read|mmap|auto|stat] DIR...");
                return;
            }
            _ => dirs.push((PathBuf::from(a), true)),
        }
    }
    if dirs.is_empty() {
        eprintln!("usage: floor [--threads N] [--mode read|mmap|auto|stat] DIR...");
        std::process::exit(2);
    }
    let q = Queue {
        state: Mutex::new(State { items: dirs.into(), busy: 0 }),
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
