//! Signal state around treeseal's own run and around `execve`.
//!
//! - [`exit_on_termination_signals`]: `SIGTERM`/`SIGINT`/`SIGHUP`/`SIGQUIT` end treeseal
//!   promptly (as PID 1 a signal left at its default action is dropped).
//! - [`SavedSignals`]: just before `execve`, every ignored signal goes back to `SIG_DFL`
//!   and the mask is cleared (both survive `execve`); after a failed `execve` they are put
//!   back. Signals with a handler need no reset: `execve` itself resets every handled
//!   signal to `SIG_DFL`. That covers the termination handlers here and the `SIGBUS`
//!   handler that [`crate::hash`] installs while it reads memory-mapped files: the
//!   application never inherits either.

use std::mem::MaybeUninit;
use std::ptr;

use nix::libc;
use nix::sys::signal::{SigSet, SigmaskHow};

/// Signal state changed for `execve`, to put back if every `execve` failed.
pub(super) struct SavedSignals {
    /// Bit `n` set: signal `n` was `SIG_IGN` and is now `SIG_DFL`.
    ignored: u128,
    /// The calling thread's mask before it was cleared.
    mask: Option<SigSet>,
}

/// Highest signal number to reset (`SIGRTMAX`, 64 on Linux), capped to fit `u128`.
fn max_signal() -> libc::c_int {
    libc::SIGRTMAX().clamp(1, 127)
}

/// The current disposition of `signo` (`SIG_DFL`, `SIG_IGN` or a handler).
pub(super) fn disposition(signo: libc::c_int) -> Option<libc::sighandler_t> {
    let mut old = MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: a null `act` only queries; `old` is valid for writes.
    let rc = unsafe { libc::sigaction(signo, ptr::null(), old.as_mut_ptr()) };
    if rc == 0 {
        // SAFETY: on success the kernel filled `old`; it was zeroed anyway.
        Some(unsafe { old.assume_init() }.sa_sigaction)
    } else {
        raw::disposition(signo)
    }
}

/// Sets `signo` to `SIG_DFL` or `SIG_IGN`; false if that was refused.
pub(super) fn set_disposition(signo: libc::c_int, handler: libc::sighandler_t) -> bool {
    // SAFETY: `sigaction` is a plain C struct for which all-zero is valid.
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    act.sa_sigaction = handler;
    // SAFETY: `act` is a valid, initialized struct; no old action is requested.
    let rc = unsafe { libc::sigaction(signo, &act, ptr::null_mut()) };
    rc == 0 || raw::set(signo, handler)
}

/// The `rt_sigaction` system call itself, for the signals that glibc's
/// `sigaction` refuses with `EINVAL` because glibc reserves them (32 and 33,
/// used for thread cancellation and `setuid` across threads). A parent can
/// still leave them ignored (`cargo` does, for one), and an ignored signal
/// survives `execve`, so they must be reset like the others. Only `SIG_DFL`
/// and `SIG_IGN` with no flags and an empty mask go through here, so the
/// only field whose position matters is the handler, first in the kernel's
/// `struct sigaction` on the architectures listed (not on MIPS).
#[cfg(all(
    target_os = "linux",
    any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        target_arch = "riscv64"
    )
))]
mod raw {
    use super::libc;

    /// The kernel's `struct sigaction` (large enough for every listed arch).
    #[repr(C)]
    #[derive(Default)]
    struct KernelSigaction {
        handler: libc::sighandler_t,
        flags: libc::c_ulong,
        restorer: usize,
        mask: u64,
    }

    /// The kernel's `sizeof(sigset_t)` on these architectures.
    const SIGSET_SIZE: usize = 8;

    pub(super) fn disposition(signo: libc::c_int) -> Option<libc::sighandler_t> {
        let mut old = KernelSigaction::default();
        // SAFETY: null `act` only queries; `old` is valid for writes and at
        // least as large as the kernel's struct.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                signo,
                std::ptr::null::<KernelSigaction>(),
                &mut old as *mut KernelSigaction,
                SIGSET_SIZE,
            )
        };
        (rc == 0).then_some(old.handler)
    }

    pub(super) fn set(signo: libc::c_int, handler: libc::sighandler_t) -> bool {
        debug_assert!(handler == libc::SIG_DFL || handler == libc::SIG_IGN);
        let act = KernelSigaction {
            handler,
            ..KernelSigaction::default()
        };
        // SAFETY: `act` is valid for reads; no old action is requested.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                signo,
                &act as *const KernelSigaction,
                std::ptr::null_mut::<KernelSigaction>(),
                SIGSET_SIZE,
            )
        };
        rc == 0
    }
}

/// Elsewhere the reserved signals are left as they are.
#[cfg(not(all(
    target_os = "linux",
    any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        target_arch = "riscv64"
    )
)))]
mod raw {
    use super::libc;

    pub(super) fn disposition(_: libc::c_int) -> Option<libc::sighandler_t> {
        None
    }

    pub(super) fn set(_: libc::c_int, _: libc::sighandler_t) -> bool {
        false
    }
}

impl SavedSignals {
    /// Sets every ignored signal to `SIG_DFL` and clears this thread's mask.
    ///
    /// nix's `sigaction` only takes its `Signal` enum, which cannot name the
    /// real-time signals (`SIGRTMIN..=SIGRTMAX`), so this uses libc directly,
    /// and the raw system call for the two signals glibc reserves.
    pub(super) fn reset_for_exec() -> Self {
        let mut ignored = 0u128;
        for signo in 1..=max_signal() {
            if signo == libc::SIGKILL || signo == libc::SIGSTOP {
                continue;
            }
            if disposition(signo) == Some(libc::SIG_IGN) && set_disposition(signo, libc::SIG_DFL) {
                ignored |= 1 << signo;
            }
        }
        // Last, so that a termination signal blocked until now is delivered
        // to treeseal's handler (and exits) rather than carried into the app.
        let mask = SigSet::empty()
            .thread_swap_mask(SigmaskHow::SIG_SETMASK)
            .ok();
        SavedSignals { ignored, mask }
    }

    /// Puts back what [`SavedSignals::reset_for_exec`] changed.
    pub(super) fn restore(self) {
        for signo in 1..=max_signal() {
            if self.ignored & (1 << signo) != 0 {
                set_disposition(signo, libc::SIG_IGN);
            }
        }
        if let Some(mask) = self.mask {
            let _ = mask.thread_set_mask();
        }
    }
}

/// Signals that end treeseal while it runs, with the name the note on receipt uses.
const TERMINATION_SIGNALS: [(libc::c_int, &[u8]); 4] = [
    (libc::SIGTERM, b"SIGTERM"),
    (libc::SIGINT, b"SIGINT"),
    (libc::SIGHUP, b"SIGHUP"),
    (libc::SIGQUIT, b"SIGQUIT"),
];

pub(super) extern "C" fn exit_on_signal(signo: libc::c_int) {
    for (sig, name) in TERMINATION_SIGNALS {
        if sig == signo {
            // The note, in the log format chosen before the check (text or JSON), built
            // on the stack: `termination_note` neither allocates nor locks.
            let mut now = std::mem::MaybeUninit::<libc::timespec>::zeroed();
            // SAFETY: `clock_gettime` is async-signal-safe and writes only `now`.
            let secs = match unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, now.as_mut_ptr()) }
            {
                // SAFETY: zero-initialised, and filled in by the successful call.
                0 => u64::try_from(unsafe { now.assume_init() }.tv_sec).unwrap_or(0),
                _ => 0,
            };
            let mut note = [0u8; crate::output::NOTE_MAX];
            let len = crate::output::termination_note(name, secs, &mut note);
            // SAFETY: `write` is async-signal-safe; the buffer is ours and `len` long.
            unsafe { libc::write(libc::STDERR_FILENO, note.as_ptr().cast(), len) };
        }
    }
    // SAFETY: `_exit` is async-signal-safe and never returns.
    unsafe { libc::_exit(128 + signo) }
}

/// Makes `SIGTERM`, `SIGINT`, `SIGHUP` and `SIGQUIT` end the process at once
/// with exit status 128 + the signal number (143 for `SIGTERM`), after a
/// one-line note on stderr.
///
/// As PID 1 in a container, a signal whose action is the default is dropped
/// by the kernel, so without these handlers `docker stop` (SIGTERM) and
/// Ctrl-C would be ignored while treeseal verifies, and Docker would wait its
/// whole grace period before killing the container. `SIGHUP` and `SIGQUIT`
/// are included because their default action would also end a non-PID-1
/// process, and an interactive `docker run -it` user expects Ctrl-\ to work.
///
/// A signal that was already ignored when this is called (say, `nohup`) is
/// left ignored, as POSIX shells do. The handlers do not outlive [`super::exec`]:
/// `execve` resets every handled signal to its default action. Calling this
/// more than once is harmless.
pub fn exit_on_termination_signals() {
    let action = nix::sys::signal::SigAction::new(
        nix::sys::signal::SigHandler::Handler(exit_on_signal),
        nix::sys::signal::SaFlags::empty(),
        SigSet::all(),
    );
    for (signo, _) in TERMINATION_SIGNALS {
        if disposition(signo) == Some(libc::SIG_IGN) {
            continue;
        }
        let Ok(signal) = nix::sys::signal::Signal::try_from(signo) else {
            continue;
        };
        // SAFETY: the handler calls only `clock_gettime`, `write` and `_exit`, which
        // are async-signal-safe, formats into a stack buffer without allocating, and
        // reads shared state only through one atomic load.
        let _ = unsafe { nix::sys::signal::sigaction(signal, &action) };
    }
}
