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
//!   shell's exit status convention (127 not found, 126 not executable).
//! - [`exit_on_termination_signals`]: make `SIGTERM`/`SIGINT`/`SIGHUP`/`SIGQUIT`
//!   end treeseal promptly. As PID 1 in a container a signal left at its
//!   default action is dropped by the kernel, so without handlers
//!   `docker stop` would wait out its whole grace period.
//!
//! Nothing else in the crate should call `execve`/`execvp` or change signal
//! dispositions or the signal mask.

use std::ffi::{CString, OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::io::{Read, Write as _};
use std::mem::MaybeUninit;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::Path;
use std::ptr;

use crate::escape::escape_quoted;
use nix::errno::Errno;
// nix re-exports the libc it is built against; it is used directly where nix
// has no safe wrapper that fits (see `exec` and `SavedSignals`).
use nix::libc;
use nix::sys::signal::{SigSet, SigmaskHow};
use nix::unistd::AccessFlags;

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

#[derive(Debug, Clone, PartialEq, Eq)]
enum Reason {
    /// `argv` was empty.
    NoCommand,
    /// `argv[0]` was the empty string.
    EmptyName,
    /// Argument number `.0` (0 = the command) contains a NUL byte.
    NulByte(usize),
    /// No file of that name in any `PATH` directory. `None`: `PATH` was unset.
    NotInPath(Option<OsString>),
    /// The file does not exist.
    NoSuchFile,
    /// A component of the path is not a directory.
    NotADirectory,
    /// The file is a symbolic link whose target does not exist.
    DanglingSymlink(OsString),
    /// The `#!` interpreter does not exist.
    MissingInterpreter(OsString),
    /// The ELF interpreter (dynamic loader) does not exist.
    MissingLoader(OsString),
    /// The `#!` interpreter exists but its dynamic loader does not.
    InterpreterMissingLoader {
        interpreter: OsString,
        loader: OsString,
    },
    /// The file is a directory.
    IsADirectory,
    /// `EACCES`, with what could be found out about it.
    PermissionDenied(Denied),
    /// `ENOEXEC`, with what could be found out about it.
    BadFormat(Format),
    /// Any other `errno` from `execve`.
    Os(Errno),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Denied {
    /// No execute bit at all.
    NoExecBit,
    /// Not a regular file (device, FIFO, socket).
    NotRegular,
    /// The `#!` interpreter may not be executed.
    Interpreter(OsString),
    /// The file is executable for this user: a `noexec` mount is the likely cause.
    Noexec,
    /// Something else: execute bits for others only, or an unsearchable directory.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Format {
    /// Neither `#!` nor ELF.
    NoShebang,
    /// An ELF binary for another machine (`e_machine`).
    ForeignElf(u16),
    /// An ELF binary for this machine that the kernel would not load.
    BadElf,
    /// Starts with `#!` but the kernel could not use the line (`None`: no interpreter named).
    BadShebang(Option<OsString>),
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
        let q = |s: &OsString| escape_quoted(s.as_bytes());
        match &self.reason {
            Reason::NoCommand => unreachable!("handled above"),
            Reason::EmptyName => f.write_str("the command name is empty"),
            Reason::NulByte(0) => f.write_str("the command name contains a NUL byte"),
            Reason::NulByte(i) => write!(f, "argument {i} contains a NUL byte"),
            Reason::NotInPath(Some(path)) if path.is_empty() => {
                f.write_str("not found in PATH (PATH is empty, so only the current directory was searched)")
            }
            Reason::NotInPath(Some(path)) => write!(f, "not found in PATH ({})", q(path)),
            Reason::NotInPath(None) => {
                write!(f, "not found in PATH (PATH is unset; searched {DEFAULT_PATH})")
            }
            Reason::NoSuchFile => f.write_str("no such file or directory"),
            Reason::NotADirectory => {
                f.write_str("no such file (a component of its path is not a directory)")
            }
            Reason::DanglingSymlink(target) => write!(
                f,
                "it is a symbolic link to \"{}\", which does not exist",
                q(target)
            ),
            Reason::MissingInterpreter(interp) => write!(
                f,
                "its interpreter \"{}\" (from the #! line) does not exist",
                q(interp)
            ),
            Reason::MissingLoader(loader) => write!(
                f,
                "its dynamic loader \"{}\" does not exist (the binary is dynamically linked; \
                 link it statically or add the libc it was built for to the image)",
                q(loader)
            ),
            Reason::InterpreterMissingLoader {
                interpreter,
                loader,
            } => write!(
                f,
                "its interpreter \"{}\" (from the #! line) cannot start: \
                 its dynamic loader \"{}\" does not exist",
                q(interpreter),
                q(loader)
            ),
            Reason::IsADirectory => f.write_str("it is a directory"),
            Reason::PermissionDenied(denied) => match denied {
                Denied::NoExecBit => f.write_str("permission denied (not executable)"),
                Denied::NotRegular => f.write_str("permission denied (not a regular file)"),
                Denied::Interpreter(interp) => write!(
                    f,
                    "permission denied: its interpreter \"{}\" (from the #! line) is not executable",
                    q(interp)
                ),
                Denied::Noexec => f.write_str(
                    "permission denied (the file is executable, so its file system is probably mounted noexec)",
                ),
                Denied::Other => f.write_str(
                    "permission denied (this user may not execute it, or may not search one of its directories)",
                ),
            },
            Reason::BadFormat(format) => {
                f.write_str("not executable: ")?;
                match format {
                    Format::NoShebang => f.write_str(
                        "it has no \"#!\" line and is not a binary for this machine",
                    ),
                    Format::ForeignElf(machine) => write!(
                        f,
                        "it is a binary for {}, not for this machine ({})",
                        machine_name(*machine),
                        std::env::consts::ARCH
                    ),
                    Format::BadElf => f.write_str(
                        "the kernel refused to load this binary (corrupt, or a kind this kernel does not support)",
                    ),
                    Format::BadShebang(Some(interp)) => write!(
                        f,
                        "its interpreter \"{}\" (from the #! line) could not be executed as an interpreter",
                        q(interp)
                    ),
                    Format::BadShebang(None) => {
                        f.write_str("its \"#!\" line names no interpreter")
                    }
                }
            }
            Reason::Os(errno) => write!(f, "{} ({errno:?})", errno.desc()),
        }
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

/// Works out why `execve(file)` failed with `errno`, by looking at the file.
fn diagnose(file: &OsStr, errno: Errno) -> Reason {
    let path = Path::new(file);
    match errno {
        Errno::ENOENT => {
            let Ok(meta) = path.symlink_metadata() else {
                return Reason::NoSuchFile;
            };
            if meta.file_type().is_symlink() && path.metadata().is_err() {
                let target = std::fs::read_link(path).unwrap_or_default();
                return Reason::DanglingSymlink(target.into_os_string());
            }
            // The file exists, so what is missing is what the kernel needs to
            // start it: the #! interpreter or the ELF dynamic loader.
            match Head::read(path) {
                Some(Head::Shebang(Some(interp))) => {
                    let interp_path = Path::new(&interp);
                    if interp_path.metadata().is_err() {
                        return Reason::MissingInterpreter(interp);
                    }
                    if let Some(Head::Elf(elf)) = Head::read(interp_path) {
                        if let Some(loader) = elf.missing_loader() {
                            return Reason::InterpreterMissingLoader {
                                interpreter: interp,
                                loader,
                            };
                        }
                    }
                    Reason::Os(errno)
                }
                Some(Head::Elf(elf)) => elf
                    .missing_loader()
                    .map_or(Reason::Os(errno), Reason::MissingLoader),
                _ => Reason::Os(errno),
            }
        }
        Errno::ENOTDIR => Reason::NotADirectory,
        Errno::EACCES => {
            let Ok(meta) = path.metadata() else {
                return Reason::PermissionDenied(Denied::Other);
            };
            if meta.is_dir() {
                return Reason::IsADirectory;
            }
            if !meta.is_file() {
                return Reason::PermissionDenied(Denied::NotRegular);
            }
            if meta.permissions().mode() & 0o111 == 0 {
                return Reason::PermissionDenied(Denied::NoExecBit);
            }
            if nix::unistd::access(path, AccessFlags::X_OK).is_err() {
                return Reason::PermissionDenied(Denied::Other);
            }
            if let Some(Head::Shebang(Some(interp))) = Head::read(path) {
                if nix::unistd::access(Path::new(&interp), AccessFlags::X_OK).is_err() {
                    return Reason::PermissionDenied(Denied::Interpreter(interp));
                }
            }
            Reason::PermissionDenied(Denied::Noexec)
        }
        Errno::ENOEXEC => Reason::BadFormat(match Head::read(path) {
            Some(Head::Elf(elf)) if Some(elf.machine) != OUR_MACHINE => {
                Format::ForeignElf(elf.machine)
            }
            Some(Head::Elf(_)) => Format::BadElf,
            Some(Head::Shebang(interp)) => Format::BadShebang(interp),
            Some(Head::Other) | None => Format::NoShebang,
        }),
        errno => Reason::Os(errno),
    }
}

/// What the start of a file says about how the kernel would run it.
enum Head {
    /// `#!` line, with the interpreter it names, if any.
    Shebang(Option<OsString>),
    /// An ELF file.
    Elf(Elf),
    /// Anything else.
    Other,
}

struct Elf {
    machine: u16,
    /// `PT_INTERP`, without the trailing NUL.
    interp: Option<OsString>,
}

impl Elf {
    /// The dynamic loader, when the binary names one that does not exist.
    fn missing_loader(&self) -> Option<OsString> {
        let loader = self.interp.as_ref()?;
        Path::new(loader)
            .metadata()
            .is_err()
            .then(|| loader.clone())
    }
}

/// `e_machine` of this build's target, to tell "foreign binary" from "bad binary".
const OUR_MACHINE: Option<u16> = if cfg!(target_arch = "x86_64") {
    Some(62)
} else if cfg!(target_arch = "aarch64") {
    Some(183)
} else if cfg!(target_arch = "x86") {
    Some(3)
} else if cfg!(target_arch = "arm") {
    Some(40)
} else if cfg!(target_arch = "riscv64") {
    Some(243)
} else if cfg!(target_arch = "powerpc64") {
    Some(21)
} else if cfg!(target_arch = "s390x") {
    Some(22)
} else {
    None
};

fn machine_name(machine: u16) -> String {
    match machine {
        3 => "x86 (32-bit)".into(),
        8 => "mips".into(),
        20 => "powerpc (32-bit)".into(),
        21 => "powerpc64".into(),
        22 => "s390x".into(),
        40 => "arm (32-bit)".into(),
        62 => "x86_64".into(),
        183 => "aarch64".into(),
        243 => "riscv".into(),
        258 => "loongarch".into(),
        other => format!("another machine (ELF machine type {other})"),
    }
}

impl Head {
    /// Reads the start of `path`; `None` if it cannot be read.
    fn read(path: &Path) -> Option<Head> {
        let mut file = File::open(path).ok()?;
        // Linux reads at most this much of a #! line (BINPRM_BUF_SIZE).
        let mut buf = [0u8; 256];
        let mut len = 0;
        while len < buf.len() {
            match file.read(&mut buf[len..]) {
                Ok(0) => break,
                Ok(n) => len += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
        let head = &buf[..len];
        if let Some(line) = head.strip_prefix(b"#!") {
            let line = line.split(|&b| b == b'\n').next().unwrap_or_default();
            let interp = line
                .split(|&b| b == b' ' || b == b'\t' || b == 0)
                .find(|word| !word.is_empty())
                .map(|word| OsStr::from_bytes(word).to_owned());
            return Some(Head::Shebang(interp));
        }
        if head.starts_with(b"\x7fELF") {
            return Some(parse_elf(head, &file).map_or(Head::Other, Head::Elf));
        }
        Some(Head::Other)
    }
}

/// Reads `e_machine` and `PT_INTERP` from an ELF file whose first bytes are `head`.
fn parse_elf(head: &[u8], file: &File) -> Option<Elf> {
    let is64 = match head.get(4)? {
        1 => false,
        2 => true,
        _ => return None,
    };
    let le = match head.get(5)? {
        1 => true,
        2 => false,
        _ => return None,
    };
    let uint = |bytes: &[u8]| -> u64 {
        let fold = |acc: u64, &b: &u8| (acc << 8) | u64::from(b);
        if le {
            bytes.iter().rev().fold(0, fold)
        } else {
            bytes.iter().fold(0, fold)
        }
    };
    let field = |at: usize, len: usize| head.get(at..at + len).map(uint);
    let machine = u16::try_from(field(18, 2)?).ok()?;
    let (phoff, phentsize, phnum) = if is64 {
        (field(32, 8)?, field(54, 2)?, field(56, 2)?)
    } else {
        (field(28, 4)?, field(42, 2)?, field(44, 2)?)
    };
    let min_entry = if is64 { 56 } else { 32 };
    let mut interp = None;
    if phentsize >= min_entry && phnum <= 4096 {
        let mut entry = vec![0u8; usize::try_from(phentsize).ok()?];
        for i in 0..phnum {
            let at = phoff.checked_add(i.checked_mul(phentsize)?)?;
            if file.read_exact_at(&mut entry, at).is_err() {
                break;
            }
            let get = |at: usize, len: usize| uint(&entry[at..at + len]);
            const PT_INTERP: u64 = 3;
            if get(0, 4) != PT_INTERP {
                continue;
            }
            let (offset, size) = if is64 {
                (get(8, 8), get(32, 8))
            } else {
                (get(4, 4), get(16, 4))
            };
            if size == 0 || size > 4096 {
                break;
            }
            let mut name = vec![0u8; usize::try_from(size).ok()?];
            if file.read_exact_at(&mut name, offset).is_ok() {
                let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
                name.truncate(end);
                interp = Some(OsString::from_vec(name));
            }
            break;
        }
    }
    Some(Elf { machine, interp })
}

/// Signal state changed for `execve`, to put back if every `execve` failed.
struct SavedSignals {
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
fn disposition(signo: libc::c_int) -> Option<libc::sighandler_t> {
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
fn set_disposition(signo: libc::c_int, handler: libc::sighandler_t) -> bool {
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
    fn reset_for_exec() -> Self {
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
    fn restore(self) {
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

extern "C" fn exit_on_signal(signo: libc::c_int) {
    for (sig, name) in TERMINATION_SIGNALS {
        if sig == signo {
            // The note, in the log format chosen before the check (text or JSON), built
            // on the stack: `termination_note` neither allocates nor locks.
            let mut now = MaybeUninit::<libc::timespec>::zeroed();
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
/// left ignored, as POSIX shells do. The handlers do not outlive [`exec`]:
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

#[cfg(test)]
mod tests {
    //! The exec tests fork: the child calls [`Prepared::run`] and, if that
    //! returns, writes the error text to a pipe and `_exit`s with its exit
    //! code; the parent reads the pipe to EOF (the write end is close-on-exec)
    //! and reaps the child. Everything the child needs is prepared before the
    //! fork; the child only makes system calls, except for formatting the
    //! error after a failed exec (glibc's malloc is fork-safe). `FORK` keeps
    //! these tests from forking concurrently with each other.

    use super::*;
    use nix::sys::signal::{self, SigHandler, Signal};
    use nix::sys::wait::{waitpid, WaitStatus};
    use nix::unistd::{fork, pipe2, ForkResult};
    use std::fs;
    use std::os::fd::AsRawFd;
    use std::sync::Mutex;

    static FORK: Mutex<()> = Mutex::new(());

    struct Outcome {
        code: i32,
        message: String,
    }

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    /// Runs `prepared` in a forked child after `setup` (which must only make
    /// async-signal-safe calls).
    fn run_forked(prepared: Prepared, setup: impl FnOnce()) -> Outcome {
        let _guard = FORK.lock().unwrap_or_else(|e| e.into_inner());
        let (reader, writer) = pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe2");
        // SAFETY: the child only makes system calls, then formats a message
        // and calls `_exit`; it never returns into the test harness.
        match unsafe { fork() }.expect("fork") {
            ForkResult::Child => {
                drop(reader);
                let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    setup();
                    let err = prepared.run();
                    let message = err.to_string();
                    let _ = nix::unistd::write(&writer, message.as_bytes());
                    i32::from(err.exit_code().code())
                }))
                .unwrap_or(99);
                // SAFETY: ends the child without running the parent's atexit
                // handlers or destructors.
                unsafe { libc::_exit(code) }
            }
            ForkResult::Parent { child } => {
                drop(writer);
                drop(prepared);
                let mut message = Vec::new();
                File::from(reader)
                    .read_to_end(&mut message)
                    .expect("read pipe");
                let code = match waitpid(child, None).expect("waitpid") {
                    WaitStatus::Exited(_, code) => code,
                    other => panic!("child did not exit normally: {other:?}"),
                };
                Outcome {
                    code,
                    message: String::from_utf8(message).expect("utf-8 message"),
                }
            }
        }
    }

    /// Like [`run_forked`]; retries when the exec hit `ETXTBSY`, which happens
    /// if another test thread forked while this one still had the freshly
    /// written file open (the fork's copy of the descriptor lives until its exec).
    fn run_with_path(argv: &[&str], path: Option<&str>, setup: impl Fn()) -> Outcome {
        let mut attempts = 0;
        loop {
            let prepared = Prepared::new(&os(argv), path.map(OsStr::new)).expect("prepare");
            let outcome = run_forked(prepared, &setup);
            attempts += 1;
            if attempts == 5 || !outcome.message.ends_with("(ETXTBSY)") {
                return outcome;
            }
        }
    }

    fn run(argv: &[&str]) -> Outcome {
        run_with_path(argv, Some("/usr/bin:/bin"), || {})
    }

    fn write_file(path: &Path, contents: &[u8], mode: u32) {
        fs::write(path, contents).expect("write file");
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
    }

    /// Sends the child's stdout to `file` (called in the child).
    fn stdout_to(file: &File) -> impl FnOnce() + '_ {
        move || {
            // SAFETY: dup2 on valid descriptors; async-signal-safe.
            unsafe { libc::dup2(file.as_raw_fd(), libc::STDOUT_FILENO) };
        }
    }

    #[test]
    fn missing_command_is_127() {
        let out = run_with_path(
            &["treeseal-no-such-command"],
            Some("/nonexistent-a:/nonexistent-b"),
            || {},
        );
        assert_eq!(out.code, 127);
        assert_eq!(
            out.message,
            "cannot run \"treeseal-no-such-command\": not found in PATH (/nonexistent-a:/nonexistent-b)"
        );
    }

    #[test]
    fn missing_file_with_slash_is_127() {
        let out = run(&["/nonexistent/treeseal-app"]);
        assert_eq!(out.code, 127);
        assert_eq!(
            out.message,
            "cannot run \"/nonexistent/treeseal-app\": no such file or directory"
        );
    }

    #[test]
    fn non_executable_file_is_126() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x");
        write_file(&file, b"#!/bin/sh\nexit 0\n", 0o644);
        let out = run(&[file.to_str().unwrap()]);
        assert_eq!(out.code, 126);
        assert_eq!(
            out.message,
            format!(
                "cannot run \"{}\": permission denied (not executable)",
                file.display()
            )
        );
    }

    #[test]
    fn directory_is_126() {
        let dir = tempfile::tempdir().unwrap();
        let out = run(&[dir.path().to_str().unwrap()]);
        assert_eq!(out.code, 126);
        assert_eq!(
            out.message,
            format!("cannot run \"{}\": it is a directory", dir.path().display())
        );
    }

    #[test]
    fn file_without_shebang_is_126_and_not_run_by_sh() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain");
        let marker = dir.path().join("ran");
        write_file(
            &file,
            format!("touch {}\n", marker.display()).as_bytes(),
            0o755,
        );
        let out = run(&[file.to_str().unwrap()]);
        assert_eq!(out.code, 126);
        assert!(
            out.message.ends_with(
                "not executable: it has no \"#!\" line and is not a binary for this machine"
            ),
            "{}",
            out.message
        );
        assert!(!marker.exists(), "the file was run by a shell");
    }

    #[test]
    fn missing_interpreter_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("run.sh");
        write_file(&file, b"#!/nonexistent/bash -e\necho hi\n", 0o755);
        let out = run(&[file.to_str().unwrap()]);
        assert_eq!(out.code, 127);
        assert_eq!(
            out.message,
            format!(
                "cannot run \"{}\": its interpreter \"/nonexistent/bash\" (from the #! line) does not exist",
                file.display()
            )
        );
    }

    #[test]
    fn missing_interpreter_found_through_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tool");
        write_file(&file, b"#!/nonexistent/python3\n", 0o755);
        let path = format!("/nonexistent:{}", dir.path().display());
        let out = run_with_path(&["tool"], Some(&path), || {});
        assert_eq!(out.code, 127);
        assert_eq!(
            out.message,
            format!(
                "cannot run \"tool\" (found as \"{}\"): its interpreter \"/nonexistent/python3\" (from the #! line) does not exist",
                file.display()
            )
        );
    }

    /// A minimal x86-64-style ELF header with one program header, optionally
    /// `PT_INTERP` naming `interp`.
    fn tiny_elf(machine: u16, interp: Option<&[u8]>) -> Vec<u8> {
        let mut elf = vec![0u8; 120];
        elf[..8].copy_from_slice(b"\x7fELF\x02\x01\x01\x00");
        elf[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        elf[18..20].copy_from_slice(&machine.to_le_bytes());
        elf[20..24].copy_from_slice(&1u32.to_le_bytes());
        elf[24..32].copy_from_slice(&0x40_0000u64.to_le_bytes());
        elf[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        elf[52..54].copy_from_slice(&64u16.to_le_bytes());
        elf[54..56].copy_from_slice(&56u16.to_le_bytes());
        elf[56..58].copy_from_slice(&1u16.to_le_bytes());
        elf[58..60].copy_from_slice(&64u16.to_le_bytes());
        if let Some(interp) = interp {
            let len = interp.len() as u64 + 1;
            elf[64..68].copy_from_slice(&3u32.to_le_bytes()); // PT_INTERP
            elf[68..72].copy_from_slice(&4u32.to_le_bytes());
            elf[72..80].copy_from_slice(&120u64.to_le_bytes());
            elf[96..104].copy_from_slice(&len.to_le_bytes());
            elf[104..112].copy_from_slice(&len.to_le_bytes());
            elf[112..120].copy_from_slice(&1u64.to_le_bytes());
            elf.extend_from_slice(interp);
            elf.push(0);
        }
        elf
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn missing_dynamic_loader_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("app");
        write_file(
            &file,
            &tiny_elf(62, Some(b"/nonexistent/ld-treeseal.so.2")),
            0o755,
        );
        let out = run(&[file.to_str().unwrap()]);
        assert_eq!(out.code, 127);
        assert!(
            out.message
                .contains(": its dynamic loader \"/nonexistent/ld-treeseal.so.2\" does not exist"),
            "{}",
            out.message
        );
    }

    #[test]
    fn foreign_binary_is_126() {
        let foreign = if OUR_MACHINE == Some(183) { 62 } else { 183 };
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("app");
        write_file(&file, &tiny_elf(foreign, None), 0o755);
        let out = run(&[file.to_str().unwrap()]);
        assert_eq!(out.code, 126);
        assert!(
            out.message.ends_with(&format!(
                "not executable: it is a binary for {}, not for this machine ({})",
                machine_name(foreign),
                std::env::consts::ARCH
            )),
            "{}",
            out.message
        );
    }

    #[test]
    fn path_lookup_skips_non_executable_and_finds_script() {
        let dir = tempfile::tempdir().unwrap();
        let (first, second) = (dir.path().join("a"), dir.path().join("b"));
        fs::create_dir(&first).unwrap();
        fs::create_dir(&second).unwrap();
        let out_file = dir.path().join("out");
        write_file(&first.join("treeseal-probe"), b"#!/bin/sh\nexit 3\n", 0o644);
        write_file(
            &second.join("treeseal-probe"),
            b"#!/bin/sh\nprintf '%s|%s' \"$0\" \"$1\" > \"$2\"\n",
            0o755,
        );
        let path = format!("/nonexistent:{}:{}:/bin", first.display(), second.display());
        let out = run_with_path(
            &["treeseal-probe", "arg", out_file.to_str().unwrap()],
            Some(&path),
            || {},
        );
        assert_eq!((out.code, out.message.as_str()), (0, ""));
        let script = second.join("treeseal-probe");
        assert_eq!(
            fs::read_to_string(&out_file).unwrap(),
            format!("{}|arg", script.display())
        );
    }

    #[test]
    fn path_lookup_reports_eacces_when_nothing_runs() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("treeseal-probe");
        write_file(&file, b"#!/bin/sh\n", 0o644);
        let path = format!("{}:/nonexistent", dir.path().display());
        let out = run_with_path(&["treeseal-probe"], Some(&path), || {});
        assert_eq!(out.code, 126);
        assert_eq!(
            out.message,
            format!(
                "cannot run \"treeseal-probe\" (found as \"{}\"): permission denied (not executable)",
                file.display()
            )
        );
    }

    #[test]
    fn empty_path_element_is_current_directory() {
        let dir = tempfile::tempdir().unwrap();
        write_file(
            &dir.path().join("treeseal-here"),
            b"#!/bin/sh\nexit 7\n",
            0o755,
        );
        let cwd = CString::new(dir.path().as_os_str().as_bytes()).unwrap();
        let out = run_with_path(&["treeseal-here"], Some("/nonexistent:"), || {
            // SAFETY: chdir with a valid C string; async-signal-safe.
            unsafe { libc::chdir(cwd.as_ptr()) };
        });
        assert_eq!(out.code, 7);
    }

    #[test]
    fn candidates_follow_path_and_default() {
        let p = Prepared::new(&os(&["app"]), Some(OsStr::new("/a::/b/"))).unwrap();
        let c: Vec<_> = p.candidates.iter().map(|c| c.to_str().unwrap()).collect();
        assert_eq!(c, ["/a/app", "app", "/b//app"]);
        let p = Prepared::new(&os(&["app"]), None).unwrap();
        assert_eq!(p.candidates.len(), DEFAULT_PATH.split(':').count());
        assert_eq!(p.candidates[0].to_str().unwrap(), "/usr/local/sbin/app");
        let p = Prepared::new(&os(&["./app", "x"]), Some(OsStr::new("/a"))).unwrap();
        assert_eq!(p.candidates, [CString::new("./app").unwrap()]);
        assert!(p.searched.is_none());
    }

    #[test]
    fn bad_argv_is_rejected_before_exec() {
        let err = exec(&[]);
        assert_eq!(
            (err.exit_code().code(), err.to_string().as_str()),
            (127, "cannot run: no command was given")
        );
        let err = exec(&os(&[""]));
        assert_eq!(
            (err.exit_code().code(), err.to_string().as_str()),
            (127, "cannot run \"\": the command name is empty")
        );
        let err = exec(&[
            OsString::from("/bin/true"),
            OsString::from_vec(b"a\0b".to_vec()),
        ]);
        assert_eq!(
            (err.exit_code().code(), err.to_string().as_str()),
            (
                126,
                "cannot run \"/bin/true\": argument 1 contains a NUL byte"
            )
        );
    }

    #[test]
    fn argv_and_pid_and_environment_arrive_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let out_path = dir.path().join("out");
        let out_file = File::create(&out_path).unwrap();
        let mut argv = os(&[
            "/bin/sh",
            "-c",
            r#"printf '%s|' "$$" "$PATH" "$@""#,
            "sh",
            "a b",
            "",
            "c",
        ]);
        argv.push(OsString::from_vec(b"new\nline\xff".to_vec()));
        let prepared = Prepared::new(&argv, Some(OsStr::new("/bin"))).unwrap();
        // The child's PID is only known after the fork: it writes it first.
        let pid_path = dir.path().join("pid");
        let pid_file = File::create(&pid_path).unwrap();
        let out = run_forked(prepared, || {
            stdout_to(&out_file)();
            let mut buf = [0u8; 16];
            let mut n = std::process::id();
            let mut i = buf.len();
            loop {
                i -= 1;
                buf[i] = b'0' + (n % 10) as u8;
                n /= 10;
                if n == 0 {
                    break;
                }
            }
            // SAFETY: write on a valid descriptor; async-signal-safe.
            unsafe {
                libc::write(
                    pid_file.as_raw_fd(),
                    buf[i..].as_ptr().cast(),
                    buf.len() - i,
                )
            };
        });
        assert_eq!((out.code, out.message.as_str()), (0, ""));
        let pid = fs::read_to_string(&pid_path).unwrap();
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut expected = format!("{pid}|").into_bytes();
        expected.extend_from_slice(path.as_bytes());
        expected.extend_from_slice(b"|a b||c|new\nline\xff|");
        assert_eq!(fs::read(&out_path).unwrap(), expected);
    }

    #[test]
    fn app_starts_with_no_ignored_or_blocked_signals() {
        if !Path::new("/proc/self/status").exists() || !Path::new("/bin/cat").exists() {
            eprintln!("skipped: needs /proc and /bin/cat");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let status_path = dir.path().join("status");
        let status_file = File::create(&status_path).unwrap();
        let prepared = Prepared::new(&os(&["/bin/cat", "/proc/self/status"]), None).unwrap();
        let rt_ignored = libc::SIGRTMIN() + 3;
        let out = run_forked(prepared, || {
            stdout_to(&status_file)();
            // SAFETY: setting dispositions to SIG_IGN and the mask; async-signal-safe.
            unsafe {
                for sig in [Signal::SIGPIPE, Signal::SIGUSR1, Signal::SIGCHLD] {
                    signal::signal(sig, SigHandler::SigIgn).unwrap();
                }
                set_disposition(rt_ignored, libc::SIG_IGN);
                signal::signal(Signal::SIGTERM, SigHandler::Handler(exit_on_signal)).unwrap();
            }
            let mut block = SigSet::empty();
            block.add(Signal::SIGUSR2);
            block.add(Signal::SIGTERM);
            block.thread_block().unwrap();
        });
        assert_eq!((out.code, out.message.as_str()), (0, ""));
        let status = fs::read_to_string(&status_path).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(str::trim)
                .unwrap_or_else(|| panic!("no {name} in {status}"))
                .to_owned()
        };
        assert_eq!(field("SigIgn:"), "0000000000000000");
        assert_eq!(field("SigBlk:"), "0000000000000000");
    }

    #[test]
    fn failed_exec_restores_signal_state() {
        let prepared = Prepared::new(&os(&["/nonexistent/app"]), None).unwrap();
        let (reader, writer) = pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let _guard = FORK.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: see `run_forked`.
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => {
                // SAFETY: as above.
                unsafe { signal::signal(Signal::SIGUSR1, SigHandler::SigIgn).unwrap() };
                let mut block = SigSet::empty();
                block.add(Signal::SIGUSR2);
                block.thread_block().unwrap();
                let _ = prepared.run();
                let ignored = disposition(libc::SIGUSR1) == Some(libc::SIG_IGN);
                let blocked = SigSet::thread_get_mask().is_ok_and(|m| m.contains(Signal::SIGUSR2));
                let report = [u8::from(ignored), u8::from(blocked)];
                let _ = nix::unistd::write(&writer, &report);
                // SAFETY: see `run_forked`.
                unsafe { libc::_exit(0) }
            }
            ForkResult::Parent { child } => {
                drop(writer);
                let mut report = Vec::new();
                File::from(reader).read_to_end(&mut report).unwrap();
                waitpid(child, None).unwrap();
                assert_eq!(
                    report,
                    [1, 1],
                    "SIGUSR1 ignored, SIGUSR2 blocked after a failed exec"
                );
            }
        }
    }

    #[test]
    fn termination_signal_exits_with_128_plus_signo() {
        let (reader, writer) = pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let _guard = FORK.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: see `run_forked`.
        match unsafe { fork() }.unwrap() {
            ForkResult::Child => {
                drop(reader);
                exit_on_termination_signals();
                // Tell the parent the handler is in place, then wait for the signal.
                let _ = nix::unistd::write(&writer, b"r");
                loop {
                    // SAFETY: pause is async-signal-safe.
                    unsafe { libc::pause() };
                }
            }
            ForkResult::Parent { child } => {
                drop(writer);
                let mut ready = [0u8; 1];
                File::from(reader).read_exact(&mut ready).unwrap();
                signal::kill(child, Signal::SIGTERM).unwrap();
                assert_eq!(
                    waitpid(child, None).unwrap(),
                    WaitStatus::Exited(child, 128 + 15)
                );
            }
        }
    }
}
