//! Process plumbing: the one place where treeseal hands the process over to
//! the application, and where it decides what termination signals do while
//! treeseal itself still runs.
//!
//! This module owns:
//!
//! - [`exec`]: replace the current process with the real command (same PID,
//!   same environment, argv passed through untouched), looking it up in `PATH`
//!   the way glibc's `execvp` does, but without `execvp`'s `/bin/sh` fallback
//!   (images built `FROM scratch` have no shell). Just before `execve` it
//!   leaves the application a clean signal state: no ignored signals (Rust's
//!   runtime ignores `SIGPIPE`, and ignored dispositions survive `execve`) and
//!   an empty signal mask.
//! - [`ExecError`]: why that failed, as one line a user can act on, with the
//!   shell's exit status convention (127 not found, 126 not executable); the
//!   file inspection behind it (`#!` line, ELF machine and loader) is in
//!   `diagnose`.
//! - [`exit_on_termination_signals`]: make `SIGTERM`/`SIGINT`/`SIGHUP`/`SIGQUIT`
//!   end treeseal promptly. As PID 1 in a container a signal left at its
//!   default action is dropped by the kernel, so without handlers
//!   `docker stop` would wait out its whole grace period. Signal state lives in
//!   `signals`.
//!
//! Nothing else in the crate calls `execve`/`execvp` or changes the signal
//! mask. The one other signal disposition is [`crate::hash`]'s `SIGBUS`
//! handler for memory-mapped reads; like every handler, `execve` resets it to
//! the default, so the application never inherits it (a test checks that the
//! started application catches no signal).

mod diagnose;
// Signal dispositions and the mask have no safe interface that covers real-time
// signals and the two glibc reserves.
#[allow(unsafe_code)]
mod signals;
// The tests fork, and set up the child with raw system calls.
#[cfg(test)]
#[allow(unsafe_code)]
mod tests;

use std::ffi::{CString, OsStr, OsString};
use std::fmt;
use std::io::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr;

use nix::errno::Errno;
// nix re-exports the libc it is built against; it is used directly where nix
// has no safe wrapper that fits (`execv` below, and in `signals`).
use nix::libc;

use crate::escape::escape_quoted;
use diagnose::{diagnose, Reason};
pub use signals::exit_on_termination_signals;
use signals::SavedSignals;

/// The search path used when `PATH` is not set at all (Docker's default
/// `PATH`; glibc's own fallback `/bin:/usr/bin` misses most images' layout).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Why the command could not be executed.
///
/// [`Display`](fmt::Display) gives one line a user can act on, naming the
/// command (escaped with [`crate::escape::escape_quoted`]) and the concrete cause, e.g.
/// `cannot run "app": not found in PATH (/usr/local/bin:/usr/bin:/bin)` or
/// `cannot run "/app/run.sh": its interpreter "/bin/bash" (from the #! line)
/// does not exist`. [`exit_code`](ExecError::exit_code) is what a shell or
/// `docker run` would exit with: 127 when the command (or the interpreter or
/// dynamic loader it needs) does not exist, 126 when it exists but cannot be
/// executed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecError {
    /// `argv[0]` as given.
    command: OsString,
    /// The file the failure is about, when it is not `command` itself (PATH lookup).
    file: Option<OsString>,
    reason: Reason,
}

impl ExecError {
    /// The exit status a shell would use for this failure: 127 when the
    /// command, its `#!` interpreter or its dynamic loader does not exist
    /// (like `bash`, `dash` and `docker run`), 126 when it exists but cannot
    /// be executed (permission denied, a directory, not a binary for this
    /// machine, any other `execve` error).
    pub fn exit_code(&self) -> crate::exit::ExitCode {
        use crate::exit::ExitCode;
        match &self.reason {
            Reason::NoCommand
            | Reason::EmptyName
            | Reason::NotInPath(_)
            | Reason::NoSuchFile
            | Reason::NotADirectory
            | Reason::DanglingSymlink(_)
            | Reason::MissingInterpreter(_)
            | Reason::MissingLoader(_)
            | Reason::InterpreterMissingLoader { .. }
            | Reason::Os(Errno::ENOENT) => ExitCode::NotFound,
            Reason::NulByte(_)
            | Reason::IsADirectory
            | Reason::PermissionDenied(_)
            | Reason::BadFormat(_)
            | Reason::Os(_) => ExitCode::NotExecutable,
        }
    }

    fn new(command: &OsStr, reason: Reason) -> Self {
        ExecError {
            command: command.to_owned(),
            file: None,
            reason,
        }
    }
}

impl fmt::Display for ExecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.reason == Reason::NoCommand {
            return f.write_str("cannot run: no command was given");
        }
        write!(
            f,
            "cannot run \"{}\"",
            escape_quoted(self.command.as_bytes())
        )?;
        if let Some(file) = &self.file {
            write!(f, " (found as \"{}\")", escape_quoted(file.as_bytes()))?;
        }
        f.write_str(": ")?;
        write!(f, "{}", self.reason)
    }
}

impl std::error::Error for ExecError {}

/// Replaces the current process with `argv[0]`, passing `argv` unchanged and
/// keeping the environment (`environ`) and the PID. Returns only on failure.
///
/// `argv[0]` containing a `/` is executed as is. Otherwise it is searched in
/// `PATH` like glibc's `execvp`: each element in order, an empty element
/// meaning the current directory, [`DEFAULT_PATH`] when `PATH` is unset; a
/// candidate failing with `EACCES` is remembered and the search goes on,
/// `ENOENT`/`ENOTDIR` (and the other "not here" errors glibc skips) go on, any
/// other error stops the search. Unlike `execvp` there is no fallback to
/// `/bin/sh` for files without a `#!` line (`ENOEXEC`): that is reported as
/// not executable.
///
/// Before calling `execve` it flushes Rust's stdout, then sets every ignored
/// signal (any signal from 1 to `SIGRTMAX`) back to `SIG_DFL` and clears the
/// signal mask, so the application starts with `SigIgn` and `SigBlk` all
/// zeros. Signals with a handler (such as those installed by
/// [`exit_on_termination_signals`]) are deliberately left alone: `execve`
/// itself resets them to `SIG_DFL`, atomically, so a `SIGTERM` arriving just
/// before the exec still ends treeseal instead of being lost. If every
/// `execve` fails, the previous dispositions and mask are restored before
/// the error is built.
pub fn exec(argv: &[OsString]) -> ExecError {
    // Anything treeseal printed without a newline would be lost with the process image.
    let _ = std::io::stdout().flush();
    let path_var = std::env::var_os("PATH");
    match Prepared::new(argv, path_var.as_deref()) {
        Ok(prepared) => prepared.run(),
        Err(err) => err,
    }
}

/// Everything `execve` needs, built before signals are touched so that
/// nothing between the signal reset and `execve` allocates or can fail.
struct Prepared {
    command: OsString,
    /// Owns the strings `argv_ptrs` points into (a `CString`'s heap buffer
    /// does not move when the `Vec` does).
    _argv: Vec<CString>,
    /// `argv` as a NULL-terminated array for `execv`.
    argv_ptrs: Vec<*const libc::c_char>,
    /// Files to try, in order: `argv[0]` itself, or one per `PATH` element.
    candidates: Vec<CString>,
    /// `Some(PATH)` when `candidates` came from a PATH search (inner `None`: unset).
    searched: Option<Option<OsString>>,
}

impl Prepared {
    fn new(argv: &[OsString], path_var: Option<&OsStr>) -> Result<Self, ExecError> {
        let Some(command) = argv.first() else {
            return Err(ExecError::new(OsStr::new(""), Reason::NoCommand));
        };
        let name = command.as_bytes();
        if name.is_empty() {
            return Err(ExecError::new(command, Reason::EmptyName));
        }
        let mut owned = Vec::with_capacity(argv.len());
        for (i, arg) in argv.iter().enumerate() {
            match CString::new(arg.as_bytes()) {
                Ok(c) => owned.push(c),
                Err(_) => return Err(ExecError::new(command, Reason::NulByte(i))),
            }
        }
        let mut argv_ptrs: Vec<*const libc::c_char> = owned.iter().map(|c| c.as_ptr()).collect();
        argv_ptrs.push(ptr::null());

        let (candidates, searched) = if name.contains(&b'/') {
            (vec![owned[0].clone()], None)
        } else {
            let search = path_var.map_or(DEFAULT_PATH.as_bytes(), OsStrExt::as_bytes);
            let candidates = search
                .split(|&b| b == b':')
                .filter_map(|dir| {
                    let mut full = Vec::with_capacity(dir.len() + 1 + name.len());
                    if !dir.is_empty() {
                        full.extend_from_slice(dir);
                        full.push(b'/');
                    }
                    full.extend_from_slice(name);
                    CString::new(full).ok()
                })
                .collect();
            (candidates, Some(path_var.map(OsStr::to_owned)))
        };
        Ok(Prepared {
            command: command.clone(),
            _argv: owned,
            argv_ptrs,
            candidates,
            searched,
        })
    }

    /// Tries each candidate; returns only if none could be executed.
    // `execv` itself: nix's wrapper allocates, which must not happen after the reset.
    #[allow(unsafe_code)]
    fn run(self) -> ExecError {
        // Pushes below stay within this capacity: no allocation after the reset.
        let mut outcomes: Vec<Errno> = Vec::with_capacity(self.candidates.len());
        let saved = SavedSignals::reset_for_exec();
        for candidate in &self.candidates {
            // SAFETY: `candidate` is NUL-terminated; `argv_ptrs` is a
            // NULL-terminated array of pointers into `self._argv`'s strings,
            // which outlive the call. `execv` only returns on failure.
            unsafe { libc::execv(candidate.as_ptr(), self.argv_ptrs.as_ptr()) };
            let errno = Errno::last();
            outcomes.push(errno);
            if !search_continues_after(errno) {
                break;
            }
        }
        saved.restore();
        self.explain(&outcomes)
    }

    /// Turns the `errno` of each tried candidate into an [`ExecError`].
    fn explain(&self, outcomes: &[Errno]) -> ExecError {
        let tried = self.candidates.iter().zip(outcomes.iter().copied());
        let Some(path_var) = &self.searched else {
            let errno = outcomes.first().copied().unwrap_or(Errno::ENOENT);
            return ExecError::new(&self.command, diagnose(self.command.as_ref(), errno));
        };
        // A stopping error ends the search: it is the answer (as in glibc).
        // Otherwise the first candidate that exists but failed is the most
        // useful answer (glibc would say EACCES, or ENOENT for a script with
        // a missing interpreter); if none exists, the command is not in PATH.
        let last = outcomes.last().copied();
        let chosen = match last {
            Some(errno) if !search_continues_after(errno) => {
                Some((self.candidates[outcomes.len() - 1].as_bytes(), errno))
            }
            _ => tried.map(|(c, e)| (c.as_bytes(), e)).find(|&(c, errno)| {
                errno == Errno::EACCES
                    || (errno == Errno::ENOENT
                        && Path::new(OsStr::from_bytes(c)).symlink_metadata().is_ok())
            }),
        };
        match chosen {
            Some((file, errno)) => ExecError {
                command: self.command.clone(),
                file: Some(OsStr::from_bytes(file).to_owned()),
                reason: diagnose(OsStr::from_bytes(file), errno),
            },
            None => ExecError::new(&self.command, Reason::NotInPath(path_var.clone())),
        }
    }
}

/// glibc `execvp`: these errors mean "not usable here, try the next PATH element".
fn search_continues_after(errno: Errno) -> bool {
    matches!(
        errno,
        Errno::EACCES
            | Errno::ENOENT
            | Errno::ESTALE
            | Errno::ENOTDIR
            | Errno::ENODEV
            | Errno::ETIMEDOUT
    )
}
