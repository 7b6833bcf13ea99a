//! The exec tests fork: the child calls [`Prepared::run`] and, if that
//! returns, writes the error text to a pipe and `_exit`s with its exit
//! code; the parent reads the pipe to EOF (the write end is close-on-exec)
//! and reaps the child. Everything the child needs is prepared before the
//! fork; the child only makes system calls, except for formatting the
//! error after a failed exec (glibc's malloc is fork-safe). `FORK` keeps
//! these tests from forking concurrently with each other.

use super::diagnose::*;
use super::signals::*;
use super::*;
use nix::sys::signal::SigSet;
use nix::sys::signal::{self, SigHandler, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, pipe2, ForkResult};
use std::fs;
use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::PermissionsExt;
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
            // As the mapped-file guard in `hash` does.
            signal::signal(Signal::SIGBUS, SigHandler::Handler(exit_on_signal)).unwrap();
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
    assert_eq!(field("SigCgt:"), "0000000000000000");
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
