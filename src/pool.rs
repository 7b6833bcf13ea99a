//! The worker threads: how many, when they start, and what happens when they cannot.
//!
//! The pool is sized by `--threads` / `TREESEAL_THREADS` (at most [`MAX_THREADS`]; see
//! [`check_count`]) and built on the first work that [`worth_threads`] says is large
//! enough, not at start-up. Hashing a tree below that size runs on the calling thread and
//! starts no hashing thread (the walk may still list two directories of one level in
//! parallel: that is where a small tree with several directories starts the pool).
//! Starting the pool and handing it work costs a few hundred microseconds of thread
//! creation, spinning and wake-ups, more than hashing a 10-file tree.
//!
//! One thread means the calling thread: no pool is built (a pool of one worker would only
//! add a hand-off while the caller waits). Threads can fail to start (`docker run
//! --pids-limit`, `RLIMIT_NPROC`: `clone` returns `EAGAIN`). Then the pool is built again
//! with half as many threads, down to two, and when that fails too, [`workers`] says so
//! and every caller does its work on the calling thread, which gives the same result. Running short of threads is never an
//! error and never a crash; it only makes the check slower.
//!
//! The pool is a rayon pool of our own, not rayon's global one: a failed attempt to build
//! the global pool cannot be retried, and any later parallel call would then abort.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use rayon::ThreadPool;

/// The most worker threads `--threads` / `TREESEAL_THREADS` may ask for. Hashing is
/// bound by CPUs (a few per container) and, on a cold cache, by storage latency, where
/// up to 64 reads in flight still pay; 256 leaves room above both. Beyond it a value is
/// more likely a typo than a plan, and each thread costs a stack.
pub const MAX_THREADS: usize = 256;

/// The configured thread count; 0 means the CPUs this process may use.
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// The pool once built; `None` inside when no worker thread could be started.
static POOL: OnceLock<Option<ThreadPool>> = OnceLock::new();

/// Hashing work below both of these runs on the calling thread, so a 10-file tree's
/// `run` starts no thread. Measured with 2 cores (`verify`, 4 KB files): 64 files take
/// 1.6 ms either way; 255 files take 3.6 ms on one thread and 3.3 ms with the pool, for
/// 0.9 ms more CPU. Around here the pool starts to pay.
const SEQUENTIAL_FILES: usize = 256;
const SEQUENTIAL_BYTES: u64 = 1 << 20;

/// A thread count outside `1..=MAX_THREADS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CountError(pub usize);

impl fmt::Display for CountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the thread count must be between 1 and {MAX_THREADS}, not {}",
            self.0
        )
    }
}

impl std::error::Error for CountError {}

/// Checks a thread count asked for by the user: at least 1, at most [`MAX_THREADS`].
pub fn check_count(threads: usize) -> Result<usize, CountError> {
    match threads {
        1..=MAX_THREADS => Ok(threads),
        _ => Err(CountError(threads)),
    }
}

/// Sets the thread count for the pool (checked with [`check_count`]; 0 means the CPUs
/// available). Takes effect only before the pool is built.
pub fn configure(threads: usize) {
    THREADS.store(threads, Ordering::Relaxed);
}

/// Whether hashing `files` files of `bytes` bytes in all is worth the worker threads.
pub fn worth_threads(files: usize, bytes: u64) -> bool {
    files >= SEQUENTIAL_FILES || bytes >= SEQUENTIAL_BYTES
}

/// The worker pool, built on the first call; `None` when one thread is configured or
/// no pool of at least two threads can be started: the caller then runs the work on its
/// own thread.
pub fn workers() -> Option<&'static ThreadPool> {
    POOL.get_or_init(|| {
        let wanted = match THREADS.load(Ordering::Relaxed) {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        build(wanted.min(MAX_THREADS))
    })
    .as_ref()
}

/// Builds a pool of `threads` threads, or of fewer (at least two) when threads cannot be
/// started. Each failed attempt stops the threads it started.
fn build(mut threads: usize) -> Option<ThreadPool> {
    while threads >= 2 {
        match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
            Ok(pool) => return Some(pool),
            Err(_) => threads /= 2,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_outside_the_bounds_are_refused() {
        assert_eq!(check_count(0), Err(CountError(0)));
        assert_eq!(check_count(1), Ok(1));
        assert_eq!(check_count(MAX_THREADS), Ok(MAX_THREADS));
        assert_eq!(
            check_count(MAX_THREADS + 1).unwrap_err().to_string(),
            "the thread count must be between 1 and 256, not 257"
        );
    }

    #[test]
    fn the_threshold_is_a_question_only() {
        assert!(!worth_threads(SEQUENTIAL_FILES - 1, SEQUENTIAL_BYTES - 1));
        assert!(worth_threads(SEQUENTIAL_FILES, 0));
        assert!(worth_threads(1, SEQUENTIAL_BYTES));
    }
}
