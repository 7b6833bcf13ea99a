//! The worker threads: how many, when they start, and when work is too small for them.
//!
//! The pool is rayon's global pool, sized by `--threads` / `TREESEAL_THREADS` (see
//! [`crate::gate::thread_count`]) and built on the first parallel work rather than at
//! start-up. A gate in front of a small tree then never starts a thread: the check runs
//! on the main thread and `execve` follows. (Starting the pool and handing it work costs
//! a few hundred microseconds of thread creation, spinning and wake-ups, more than
//! hashing a 10-file tree.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

/// The configured thread count; 0 means rayon's default (the CPUs available).
static THREADS: AtomicUsize = AtomicUsize::new(0);
static BUILT: Once = Once::new();

/// Hashing work below both of these runs on the calling thread, so a 10-file tree's
/// `run` starts no thread. Measured with 2 cores (`verify`, 4 KB files): 64 files take
/// 1.6 ms either way; 255 files take 3.6 ms on one thread and 3.3 ms with the pool, for
/// 0.9 ms more CPU. Around here the pool starts to pay.
const SEQUENTIAL_FILES: usize = 256;
const SEQUENTIAL_BYTES: u64 = 1 << 20;

/// Sets the thread count for the pool. Takes effect only before the pool is built.
pub fn configure(threads: usize) {
    THREADS.store(threads, Ordering::Relaxed);
}

/// Builds the pool if it is not built yet. Call before any rayon work.
pub fn ensure() {
    BUILT.call_once(|| {
        let threads = THREADS.load(Ordering::Relaxed);
        // Fails only when the pool already exists (a library user built it): then
        // that pool is used as it is.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build_global();
    });
}

/// Whether hashing `files` files of `bytes` bytes in all is worth the worker threads.
/// When it is, the pool is built.
pub fn worth_it(files: usize, bytes: u64) -> bool {
    let parallel = files >= SEQUENTIAL_FILES || bytes >= SEQUENTIAL_BYTES;
    if parallel {
        ensure();
    }
    parallel
}
