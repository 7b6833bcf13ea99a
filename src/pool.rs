//! The worker threads: how many, when they start, and what happens when they cannot.
//!
//! Two widths, because a tree check waits on two different things. Reading a cold tree
//! waits on storage, which reaches its speed only with many requests in flight (measured
//! on 2 cores, page cache dropped: reading a 150k-file tree with 2 threads takes 3x as
//! long as with 32); hashing waits on CPUs. So the pool is wide ([`workers`]: at least
//! [`IO_WIDTH`] threads, which open, `fstat`, read and list), and hashing is limited to the
//! CPUs this process may use: a worker holds one of that many permits ([`hashing`]) while
//! it hashes anything but a small buffer, and a file large enough to be split is hashed by
//! a second pool of that size ([`hashers`]). A container limited to one CPU
//! (`docker run --cpus 1`; std reads the cgroup quota) still has its reads in flight, and
//! hashes on one CPU. The pool that proves a tree equal (`verify`, `run`) is wider still,
//! [`COLD_IO_WIDTH`], when the tree's first file was not in the page cache ([`cold_width`]).
//!
//! `--threads N` / `TREESEAL_THREADS` sets the pool's width, the total number of worker
//! threads (at most [`MAX_THREADS`]; see [`check_count`]): it is the knob for a process
//! that may start only so many threads, so it bounds everything, hashing included (at
//! most `min(N, CPUs)` threads hash at once). Unset, the width is the larger of
//! [`IO_WIDTH`] and the CPU count.
//!
//! The pool is built on the first work that [`worth_threads`] says is large enough, not
//! at start-up: a tree is walked and hashed on the calling thread until it has shown that
//! many names, so a small tree starts no thread at all. Starting the pool and handing it
//! work costs a few hundred microseconds of thread creation, spinning and wake-ups, more
//! than hashing a 10-file tree.
//!
//! One thread means the calling thread: no pool is built (a pool of one worker would only
//! add a hand-off while the caller waits). Threads can fail to start (`docker run
//! --pids-limit`, `RLIMIT_NPROC`: `clone` returns `EAGAIN`). Then the pool is built again
//! with half as many threads, down to two, and when that fails too, [`workers`] says so
//! and every caller does its work on the calling thread, which gives the same result.
//! Running short of threads is never an error and never a crash; it only makes the check
//! slower.
//!
//! The pools are rayon pools of our own, not rayon's global one: a failed attempt to build
//! the global pool cannot be retried, and any later parallel call would then abort.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};

use rayon::ThreadPool;

/// The most worker threads `--threads` / `TREESEAL_THREADS` may ask for. Hashing is
/// bound by CPUs (a few per container) and, on a cold cache, by storage latency, where
/// up to 64 reads in flight still pay; 256 leaves room above both. Beyond it a value is
/// more likely a typo than a plan, and each thread costs a stack.
pub const MAX_THREADS: usize = 256;

/// The least width of the pool when no thread count is configured: reads in flight on a
/// cold cache. Measured on 2 cores (busy), page cache dropped, the I/O floor reading every
/// file of the 40k-file benchmark tree: 2 threads 2.5 s, 8 threads 1.4-1.5 s, 32 threads
/// 0.85-1.1 s, 64 threads 0.91-0.97 s; of the 150k-file tree: 2 threads 9.0 s, 32 threads
/// 1.9-3.1 s, 64 threads 1.8-2.8 s. Past 32 the gain is a few percent for twice the
/// threads (each a stack, and a `clone` at start-up).
pub const IO_WIDTH: usize = 32;

/// The least width, when no thread count is configured, of the pool that checks a tree
/// found cold ([`cold_width`]). A cold tree of small files waits mostly on metadata
/// reads (`openat`, listings), which only more threads put in flight. Measured on 2
/// cores, page cache dropped, the 150k-file tree: `verify` with 32 threads 1.87-1.91 s,
/// 64 threads 1.68-1.69 s; the I/O floor (files opened and advised ahead) 32 threads
/// 1.58-1.81 s, 64 threads 1.36-1.78 s. Warm, the 64 threads cost nothing measurable
/// there, but on a warm tree they are not started at all.
pub const COLD_IO_WIDTH: usize = 64;
static_assertions::const_assert!(IO_WIDTH < COLD_IO_WIDTH && COLD_IO_WIDTH <= MAX_THREADS);

/// The configured thread count; 0 means the default width (see [`width`]).
static THREADS: AtomicUsize = AtomicUsize::new(0);

/// The wide pool once built; `None` inside when no worker thread could be started.
static POOL: OnceLock<Option<ThreadPool>> = OnceLock::new();

/// The CPU-sized pool that splits one large file's hashing, once built.
static HASHERS: OnceLock<Option<ThreadPool>> = OnceLock::new();

/// The hashing permits once sized.
static PERMITS: OnceLock<Permits> = OnceLock::new();

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

/// Sets the thread count for the pool (checked with [`check_count`]; 0 means the default,
/// see [`width`]). Takes effect only before the pool is built.
pub fn configure(threads: usize) {
    THREADS.store(threads, Ordering::Relaxed);
}

/// Whether hashing `files` files of `bytes` bytes in all is worth the worker threads.
pub fn worth_threads(files: usize, bytes: u64) -> bool {
    files >= SEQUENTIAL_FILES || bytes >= SEQUENTIAL_BYTES
}

/// The CPUs this process may use (std reads the cgroup CPU quota and the affinity mask).
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The width of the pool: the configured thread count, else the larger of
/// [`IO_WIDTH`] and the CPU count; never more than [`MAX_THREADS`].
pub fn width() -> usize {
    width_for(THREADS.load(Ordering::Relaxed), cpus())
}

/// The width of a pool that checks a tree found cold: the configured thread count, else
/// the larger of [`COLD_IO_WIDTH`] and the CPU count; never more than [`MAX_THREADS`].
pub fn cold_width() -> usize {
    cold_width_for(THREADS.load(Ordering::Relaxed), cpus())
}

/// The pool's width for a configured count (0: none) on `cpus` CPUs.
fn width_for(configured: usize, cpus: usize) -> usize {
    match configured {
        0 => cpus.max(IO_WIDTH),
        n => n,
    }
    .min(MAX_THREADS)
}

/// [`cold_width`] for a configured count (0: none) on `cpus` CPUs.
fn cold_width_for(configured: usize, cpus: usize) -> usize {
    match configured {
        0 => cpus.clamp(COLD_IO_WIDTH, MAX_THREADS),
        n => width_for(n, cpus),
    }
}

/// The wide worker pool, built on the first call; `None` when one thread is configured
/// or no pool of at least two threads can be started: the caller then runs the work on
/// its own thread.
pub fn workers() -> Option<&'static ThreadPool> {
    POOL.get_or_init(|| build(width())).as_ref()
}

/// The CPU-sized pool for hashing one large file in pieces; `None` when only one thread
/// may hash (or none could be started): the file is then hashed on the calling thread.
pub fn hashers() -> Option<&'static ThreadPool> {
    HASHERS.get_or_init(|| build(hash_width())).as_ref()
}

/// How many threads may hash at once: the CPUs, and no more than the pool's width.
fn hash_width() -> usize {
    cpus().min(width()).max(1)
}

/// Runs `f`, which hashes, holding one of the hashing permits: at most as many threads
/// hash at once as there are CPUs to run them; the other workers meanwhile read.
///
/// `f` must not run parallel work (`join`, `install`, a parallel iterator): a rayon
/// worker waiting for such work runs other queued jobs meanwhile, and a job that waits
/// for a permit while its thread holds one could wait for ever.
pub fn hashing<T>(f: impl FnOnce() -> T) -> T {
    let permits = PERMITS.get_or_init(|| Permits::new(hash_width()));
    let _permit = permits.acquire();
    f()
}

/// A counting semaphore: `free` permits left of a fixed number.
struct Permits {
    free: Mutex<usize>,
    released: Condvar,
}

/// A held permit; given back on drop.
struct Permit<'a>(&'a Permits);

impl Permits {
    fn new(n: usize) -> Permits {
        Permits {
            free: Mutex::new(n),
            released: Condvar::new(),
        }
    }

    fn acquire(&self) -> Permit<'_> {
        // The counter stays consistent even if a holder panicked (the guard's drop ran).
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.released.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        Permit(self)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.0.released.notify_one();
    }
}

/// Builds a pool of `threads` threads, or of fewer (at least two) when threads cannot be
/// started. Each failed attempt stops the threads it started.
fn build(threads: usize) -> Option<ThreadPool> {
    build_with(threads, |_| {})
}

/// A pool of `threads` threads (or fewer, as for [`workers`], when threads cannot be
/// started), each of which runs `start` (with its index) as it starts: for a pool whose
/// work needs its threads set up in some way of its own.
pub fn build_with(mut threads: usize, start: fn(usize)) -> Option<ThreadPool> {
    while threads >= 2 {
        let builder = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .start_handler(start);
        match builder.build() {
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
    fn the_width_is_wide_by_default_and_what_was_asked_otherwise() {
        // Unset: wide enough for reads in flight, or the CPUs if there are more.
        assert_eq!(width_for(0, 1), IO_WIDTH);
        assert_eq!(width_for(0, 2), IO_WIDTH);
        assert_eq!(width_for(0, 48), 48);
        assert_eq!(width_for(0, 1000), MAX_THREADS);
        // Asked for: exactly that, fewer than the CPUs included.
        assert_eq!(width_for(1, 8), 1);
        assert_eq!(width_for(4, 2), 4);
        assert_eq!(width_for(MAX_THREADS + 1, 2), MAX_THREADS);
    }

    #[test]
    fn a_cold_tree_gets_more_threads_only_when_none_were_asked_for() {
        assert_eq!(cold_width_for(0, 1), COLD_IO_WIDTH);
        assert_eq!(cold_width_for(0, 2), COLD_IO_WIDTH);
        assert_eq!(cold_width_for(0, 96), 96);
        assert_eq!(cold_width_for(0, 1000), MAX_THREADS);
        for (asked, cpus) in [(1, 8), (4, 2), (32, 2), (MAX_THREADS + 1, 2)] {
            assert_eq!(cold_width_for(asked, cpus), width_for(asked, cpus));
        }
    }

    #[test]
    fn permits_bound_how_many_hold_one_at_once() {
        let permits = Permits::new(2);
        let (held, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..200 {
                        let _p = permits.acquire();
                        let now = held.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::yield_now();
                        held.fetch_sub(1, Ordering::SeqCst);
                    }
                });
            }
        });
        assert!((1..=2).contains(&most.into_inner()));
        assert_eq!(*permits.free.lock().unwrap(), 2);
    }

    #[test]
    fn the_threshold_is_a_question_only() {
        assert!(!worth_threads(SEQUENTIAL_FILES - 1, SEQUENTIAL_BYTES - 1));
        assert!(worth_threads(SEQUENTIAL_FILES, 0));
        assert!(worth_threads(1, SEQUENTIAL_BYTES));
    }
}
