//! Why `execve` failed, in words a user can act on: the [`Reason`] taxonomy and its text,
//! and [`diagnose`], which looks at the file (and the `#!` interpreter or ELF dynamic
//! loader it names) to tell "not found" from "its interpreter is missing" and "not
//! executable" from "a binary for another machine".

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::Path;

use nix::errno::Errno;
use nix::unistd::AccessFlags;

use crate::escape::escape_quoted;

use super::DEFAULT_PATH;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Reason {
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
pub(super) enum Denied {
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
pub(super) enum Format {
    /// Neither `#!` nor ELF.
    NoShebang,
    /// An ELF binary for another machine (`e_machine`).
    ForeignElf(u16),
    /// An ELF binary for this machine that the kernel would not load.
    BadElf,
    /// Starts with `#!` but the kernel could not use the line (`None`: no interpreter named).
    BadShebang(Option<OsString>),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let q = |s: &OsString| escape_quoted(s.as_bytes());
        match self {
            Reason::NoCommand => f.write_str("no command was given"),
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

/// Works out why `execve(file)` failed with `errno`, by looking at the file.
pub(super) fn diagnose(file: &OsStr, errno: Errno) -> Reason {
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
pub(super) const OUR_MACHINE: Option<u16> = if cfg!(target_arch = "x86_64") {
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

pub(super) fn machine_name(machine: u16) -> String {
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
