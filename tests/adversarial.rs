//! Adversarial trees and manifests, through the real binary.
//!
//! Each test builds a tree or a manifest that tries to make treeseal crash, hang, follow
//! something it must not, or pass when it could not check, and asserts what treeseal does
//! instead: a named difference (exit 1) or a one-line "could not check" (exit 2). Commands
//! that could hang run under a deadline ([`within`]), so a hang fails the test instead of
//! stalling the suite.
//!
//! Some tests need root (to run the binary as `nobody`, to `mknod`, to mount a tmpfs).
//! When a privilege is missing they say so on stderr with `SKIPPED:` and skip that part;
//! they never pass silently on something they did not check.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{openat, OFlag, AT_FDCWD};
use nix::libc;
use nix::sys::stat::{mkdirat, Mode};

use common::{cmd, lock, ts, Run, Tree};
use treeseal::escape::escape;
use treeseal::manifest::{decode, Manifest, Origin, HEADER_LEN};
use treeseal::tree::{format_digest, Entries, Kind, NodeRef, Rules};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// How long any single treeseal run may take before it counts as a hang.
const DEADLINE: Duration = Duration::from_secs(120);

/// Runs `c` with stdin closed, failing the test if it is still running after `limit`.
fn within(c: &mut Command, limit: Duration) -> Run {
    let mut child = c
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn treeseal");
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("treeseal hung: still running after {limit:?}: {c:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().expect("collect output");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `treeseal ARGS` under the deadline.
fn tsd<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    within(cmd().args(args), DEADLINE)
}

/// `treeseal verify DIR EXTRA...` under the deadline.
fn verify_d(dir: &Path, extra: &[&OsStr]) -> Run {
    let mut c = cmd();
    c.arg("verify").arg(dir).args(extra);
    within(&mut c, DEADLINE)
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail and has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Makes `c` run as `nobody` (65534:65534, no supplementary groups). Needs root.
fn as_nobody(c: &mut Command) -> &mut Command {
    // SAFETY: only async-signal-safe system calls between fork and exec.
    unsafe {
        c.pre_exec(|| {
            if libc::setgroups(0, std::ptr::null()) != 0
                || libc::setgid(65534) != 0
                || libc::setuid(65534) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// Sets RLIMIT_NOFILE to `n` in the child.
fn with_nofile(c: &mut Command, n: u64) -> &mut Command {
    // SAFETY: only an async-signal-safe system call between fork and exec.
    unsafe {
        c.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: n,
                rlim_max: n,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// Sets RLIMIT_NPROC to `n` in the child. Root is exempt from it: register this after
/// [`as_nobody`] (set before the switch, it would make the `execve` itself fail).
fn with_nproc(c: &mut Command, n: u64) -> &mut Command {
    // SAFETY: only an async-signal-safe system call between fork and exec.
    unsafe {
        c.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: n,
                rlim_max: n,
            };
            if libc::setrlimit(libc::RLIMIT_NPROC, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// The manifest file of a locked tree.
fn manifest_of(t: &Tree) -> Manifest {
    Manifest::load(&t.at(".treeseal")).expect("load manifest")
}

fn symlinks(m: &Manifest) -> Vec<(String, String)> {
    m.entries
        .iter()
        .filter_map(|e| match e.node {
            NodeRef::Symlink { target } => Some((
                String::from_utf8_lossy(e.path).into_owned(),
                String::from_utf8_lossy(target).into_owned(),
            )),
            _ => None,
        })
        .collect()
}

/// Asserts a one-line "could not check" (exit 2) and returns the line.
fn cannot_check(r: &Run) -> String {
    r.code(2);
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    r.line().to_string()
}

/// A mounted tmpfs, unmounted (lazily) on drop, even when the test fails.
struct Mount(PathBuf);

impl Mount {
    /// Mounts a small tmpfs at `at`; `None` (with a loud SKIPPED line) when not permitted.
    fn tmpfs(at: &Path, why: &str) -> Option<Mount> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=16m,mode=0755", "treeseal-test"])
            .arg(at)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Mount(at.to_path_buf())),
            Ok(o) => {
                eprintln!(
                    "SKIPPED: {why}: cannot mount a tmpfs here: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: {why}: cannot run mount: {e}");
                None
            }
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

// ---------------------------------------------------------------------------------------
// Symlinks
// ---------------------------------------------------------------------------------------

#[test]
fn symlink_loops_are_sealed_as_targets_and_never_followed() {
    let t = Tree::new();
    t.file("app/main.py", "print('hi')\n")
        .symlink("self", "self")
        .symlink("a", "b")
        .symlink("b", "a")
        .symlink("app/up", "..")
        .symlink("app/loop", "../app/loop")
        .symlink("app/deeper", "../app/up/app/up/app");
    lock(t.path());
    verify_d(t.path(), &[]).code(0);
    let m = manifest_of(&t);
    assert_eq!(m.entries.len(), 8, "{:?}", m.entries);
    assert_eq!(
        symlinks(&m),
        [
            ("a", "b"),
            ("app/deeper", "../app/up/app/up/app"),
            ("app/loop", "../app/loop"),
            ("app/up", ".."),
            ("b", "a"),
            ("self", "self"),
        ]
        .map(|(p, t)| (p.to_string(), t.to_string()))
    );
    t.remove("a").symlink("a", "c");
    let r = verify_d(t.path(), &[]);
    r.code(1);
    assert_eq!(r.line(), "treeseal: symlink target changed: a (b -> c)");
}

#[test]
fn symlinks_out_of_the_root_or_into_proc_are_sealed_as_text_only() {
    let outside = Tree::new();
    outside.file("secret", "v1");
    let out_target = outside.at("secret").to_str().unwrap().to_string();
    let t = Tree::new();
    t.file("app/x", "x")
        .symlink("proc_root", "/proc/self/root")
        .symlink("proc_mem", "/proc/self/mem")
        .symlink("etc", "/etc")
        .symlink("out", &out_target)
        .symlink("app/escape", "../../../../../../../../etc/passwd");
    let digest = lock(t.path());
    verify_d(t.path(), &[]).code(0);
    let m = manifest_of(&t);
    // Nothing below /etc or /proc was walked: 2 + 5 entries.
    assert_eq!(m.entries.len(), 7, "{:?}", m.entries);
    assert_eq!(
        symlinks(&m),
        [
            ("app/escape", "../../../../../../../../etc/passwd"),
            ("etc", "/etc"),
            ("out", out_target.as_str()),
            ("proc_mem", "/proc/self/mem"),
            ("proc_root", "/proc/self/root"),
        ]
        .map(|(p, t)| (p.to_string(), t.to_string()))
    );
    // What a link points at is not sealed: changing it changes nothing.
    outside.file("secret", "v2, and longer");
    verify_d(t.path(), &[]).code(0);
    let r = tsd(["digest".as_ref(), t.path().as_os_str()]);
    r.code(0);
    assert_eq!(r.stdout.trim(), digest);
}

// ---------------------------------------------------------------------------------------
// Special files and type swaps
// ---------------------------------------------------------------------------------------

/// Puts a FIFO, socket or `/dev/zero`-like device at `path`; `false` when not permitted.
fn make_special(path: &Path, kind: Kind) -> (bool, Option<std::os::unix::net::UnixListener>) {
    match kind {
        Kind::Fifo => {
            nix::unistd::mkfifo(path, Mode::from_bits_truncate(0o644)).unwrap();
            (true, None)
        }
        Kind::Socket => (
            true,
            Some(std::os::unix::net::UnixListener::bind(path).unwrap()),
        ),
        Kind::Device => {
            // char 1,5 is /dev/zero: a reader that opened it would hash forever.
            match nix::sys::stat::mknod(
                path,
                nix::sys::stat::SFlag::S_IFCHR,
                Mode::from_bits_truncate(0o666),
                nix::sys::stat::makedev(1, 5),
            ) {
                Ok(()) => (true, None),
                Err(e) => {
                    eprintln!("SKIPPED: device node test: mknod is not permitted here: {e}");
                    (false, None)
                }
            }
        }
        _ => unreachable!(),
    }
}

#[test]
fn a_fifo_socket_or_device_where_a_file_was_is_never_opened() {
    for kind in [Kind::Fifo, Kind::Socket, Kind::Device] {
        let t = Tree::new();
        t.file("app/config", "x = 1\n").file("app/z", "zzz");
        lock(t.path());
        t.remove("app/config");
        let (made, _listener) = make_special(&t.at("app/config"), kind);
        if !made {
            continue;
        }
        let r = verify_d(t.path(), &[]);
        r.code(1);
        assert_eq!(
            r.line(),
            format!("treeseal: type changed: app/config (expected file, found {kind})")
        );
        // The gate refuses the same way, without hanging.
        let mut c = cmd();
        c.arg("run")
            .env("TREESEAL_ROOT", t.path())
            .env("TREESEAL_STATE", t.path().join("../state-unused"))
            .args(["--", "true"]);
        within(&mut c, DEADLINE).code(1);
    }
}

#[test]
fn special_files_in_the_tree_are_sealed_by_type() {
    let t = Tree::new();
    t.file("data", "d");
    let (_, _l) = make_special(&t.at("sock"), Kind::Socket);
    make_special(&t.at("pipe"), Kind::Fifo);
    let (dev, _) = make_special(&t.at("zero"), Kind::Device);
    lock(t.path());
    verify_d(t.path(), &[]).code(0);
    let kinds: Vec<Kind> = manifest_of(&t)
        .entries
        .iter()
        .map(|e| e.node.kind())
        .collect();
    let mut want = vec![Kind::File, Kind::Fifo, Kind::Socket];
    if dev {
        want.push(Kind::Device);
    }
    assert_eq!(kinds, want);
    // A regular file where the FIFO was is a difference, not an "equal".
    t.remove("pipe").file("pipe", "");
    let r = verify_d(t.path(), &[]);
    r.code(1);
    assert_eq!(
        r.line(),
        "treeseal: type changed: pipe (expected fifo, found file)"
    );
}

#[test]
fn a_file_swapped_back_and_forth_with_a_fifo_or_device_during_verify_never_hangs() {
    // A regular file and, in turns, a FIFO or a /dev/zero node, renamed over it while
    // verify runs: whichever treeseal sees, it must finish, and never hash the special.
    let t = Tree::new();
    let spare = Tree::new(); // same file system: rename works
    t.file("app/config", "x = 1\n");
    for i in 0..20 {
        t.file(format!("app/f{i:02}"), format!("{i}"));
    }
    lock(t.path());
    let can_mknod = make_special(&spare.at("probe"), Kind::Device).0;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let stop = stop.clone();
        let (config, fifo, file) = (t.at("app/config"), spare.at("s"), spare.at("f"));
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if n % 2 == 0 || !can_mknod {
                    nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o644)).unwrap();
                } else {
                    nix::sys::stat::mknod(
                        &fifo,
                        nix::sys::stat::SFlag::S_IFCHR,
                        Mode::from_bits_truncate(0o644),
                        nix::sys::stat::makedev(1, 5),
                    )
                    .unwrap();
                }
                fs::rename(&fifo, &config).unwrap();
                fs::write(&file, "x = 1\n").unwrap();
                fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
                fs::rename(&file, &config).unwrap();
                n += 1;
            }
            n
        })
    };
    let mut outcomes = [0usize; 3];
    for _ in 0..150 {
        let r = verify_d(t.path(), &[]);
        assert!(
            matches!(r.code, 0..=2) && r.stderr.lines().count() == 1,
            "{}",
            r.stderr
        );
        if r.code == 1 {
            assert!(
                r.stderr.contains("app/config"),
                "a difference elsewhere: {}",
                r.stderr
            );
        }
        outcomes[r.code as usize] += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    eprintln!(
        "swap race: 150 verifies during {swaps} swaps: {} equal, {} differs, {} could not check, 0 hangs",
        outcomes[0], outcomes[1], outcomes[2]
    );
}

#[test]
fn a_directory_swapped_for_a_file_and_a_file_for_a_symlink() {
    // Each change gets the tree and a spare directory on the same file system.
    type Change = Box<dyn Fn(&Tree, &Tree)>;
    let cases: Vec<(Change, &str)> = vec![
        (
            Box::new(|t, _| {
                t.remove("app").file("app", "not a dir");
            }),
            "type changed: app (expected dir, found file)",
        ),
        (
            Box::new(|t, _| {
                t.remove("README").symlink("README", "/etc/passwd");
            }),
            "type changed: README (expected file, found symlink)",
        ),
        (
            // A symlink to an identical copy of the directory is not the directory.
            Box::new(|t, spare| {
                fs::rename(t.at("app"), spare.at("app-copy")).unwrap();
                t.symlink("app", spare.at("app-copy").to_str().unwrap());
            }),
            "type changed: app (expected dir, found symlink)",
        ),
        (
            Box::new(|t, _| {
                t.remove("current").file("current", "app");
            }),
            "type changed: current (expected symlink, found file)",
        ),
        (
            Box::new(|t, _| {
                t.remove("var/empty").file("var/empty", "");
            }),
            "type changed: var/empty (expected dir, found file)",
        ),
    ];
    for (change, want) in cases {
        let t = Tree::sample();
        let spare = Tree::new();
        lock(t.path());
        change(&t, &spare);
        let r = verify_d(t.path(), &[]);
        r.code(1);
        assert_eq!(r.line(), format!("treeseal: {want}"));
    }
}

// ---------------------------------------------------------------------------------------
// Permissions
// ---------------------------------------------------------------------------------------

/// A sample tree that `nobody` can reach (temp dirs are 0700).
fn reachable_sample() -> Tree {
    let t = Tree::sample();
    t.dir("app/sub").file("app/sub/m.py", "m = 1\n");
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
    t
}

#[test]
fn access_times_are_left_alone_where_the_kernel_allows_it() {
    if !is_root() {
        eprintln!("SKIPPED: access times as nobody: needs root to switch to nobody");
        return;
    }
    let verify_as_nobody = |t: &Tree| {
        let mut c = cmd();
        c.arg("verify").arg(t.path());
        within(as_nobody(&mut c), DEADLINE)
    };
    // The owner may read without moving access times: nobody's own tree stays as it was.
    let t = reachable_sample();
    lock(t.path());
    let chown = Command::new("chown")
        .args(["-R", "65534:65534"])
        .arg(t.path())
        .status()
        .unwrap();
    assert!(chown.success());
    let Some(aged) = common::AgedAtimes::of(t.path()) else {
        eprintln!("SKIPPED: access times: this file system does not record reads");
        return;
    };
    verify_as_nobody(&t).code(0);
    assert_eq!(aged.changed(), None);
    // Not the owner: the kernel refuses O_NOATIME, and the check reads the usual way,
    // whatever that does to access times, rather than fail.
    let t = reachable_sample();
    lock(t.path());
    verify_as_nobody(&t).code(0);
    t.file("app/views.py", "changed");
    let r = verify_as_nobody(&t);
    r.code(1);
    assert!(r.line().contains("app/views.py"), "{}", r.stderr);
}

#[test]
fn unreadable_files_and_directories_never_pass() {
    if !is_root() {
        eprintln!("SKIPPED: unreadable-as-nobody test: needs root to switch to nobody");
        return;
    }
    let verify_as_nobody = |t: &Tree, threads: &str| {
        let mut c = cmd();
        c.args(["verify", "--threads", threads]).arg(t.path());
        within(as_nobody(&mut c), DEADLINE)
    };

    // Sanity: nobody can verify a readable tree.
    let t = reachable_sample();
    lock(t.path());
    verify_as_nobody(&t, "2").code(0);

    let root = |t: &Tree| t.path().display().to_string();
    // (what to make unreadable, mode, the start of the one line expected)
    for (rel, mode, want) in [
        (
            "app/settings.py",
            0o000,
            "cannot read {root}/app/settings.py: Permission denied",
        ),
        (
            "app",
            0o000,
            "cannot read directory {root}/app: Permission denied",
        ),
        // Search but no read permission: the names cannot be listed.
        (
            "app",
            0o311,
            "cannot read directory {root}/app: Permission denied",
        ),
        // Read but no search permission: listed, but nothing in it can be looked at.
        (
            "app",
            0o644,
            "cannot stat {root}/app/__init__.py: Permission denied",
        ),
    ] {
        let t = reachable_sample();
        lock(t.path());
        t.chmod(rel, mode);
        let r = verify_as_nobody(&t, "2");
        let line = cannot_check(&r);
        assert_eq!(
            line,
            format!("treeseal: {}", want.replace("{root}", &root(&t))),
            "{rel} {mode:o}"
        );
        // Also when the tree differs elsewhere, later in path order: still not a pass.
        t.file("var/new", "x");
        let r = verify_as_nobody(&t, "2");
        assert_ne!(r.code, 0, "{}", r.stderr);
    }

    // Two unreadable directories at different depths: the one first in path order is
    // reported, whatever the thread count.
    let t = reachable_sample();
    lock(t.path());
    t.chmod("app/sub", 0o000).chmod("bin", 0o000);
    for threads in ["1", "2", "8"] {
        let line = cannot_check(&verify_as_nobody(&t, threads));
        assert_eq!(
            line,
            format!(
                "treeseal: cannot read directory {}/app/sub: Permission denied",
                root(&t)
            ),
            "threads {threads}"
        );
    }
    t.chmod("app/sub", 0o755).chmod("bin", 0o755);

    // The same in a tree large enough to be streamed by the workers: an unreadable
    // directory last in path order still decides, over a difference in the first file.
    let t = reachable_sample();
    for d in 0..40 {
        for f in 0..20 {
            t.file(format!("many/{d:02}/{f:02}"), format!("{d} {f}"));
        }
    }
    t.file("zz/last", "last");
    lock(t.path());
    t.file("README", "changed").chmod("zz", 0o000);
    for threads in ["1", "2", "8"] {
        let line = cannot_check(&verify_as_nobody(&t, threads));
        let want = format!(
            "treeseal: cannot read directory {}/zz: Permission denied",
            root(&t)
        );
        assert_eq!(line, want, "threads {threads}");
    }
    t.chmod("zz", 0o755);

    // lock as nobody on a tree with an unreadable file: exit 2, no manifest written.
    let out = Tree::new();
    fs::set_permissions(out.path(), fs::Permissions::from_mode(0o777)).unwrap();
    t.chmod("README", 0o000);
    let mut c = cmd();
    c.arg("lock").arg(t.path()).arg("-o").arg(out.at("m"));
    let line = cannot_check(&within(as_nobody(&mut c), DEADLINE));
    assert_eq!(
        line,
        format!(
            "treeseal: cannot read {}/README: Permission denied",
            root(&t)
        )
    );
    assert_eq!(fs::read_dir(out.path()).unwrap().count(), 0);
}

// ---------------------------------------------------------------------------------------
// Content and size changes
// ---------------------------------------------------------------------------------------

#[test]
fn files_that_grow_or_shrink_after_lock() {
    let big: Vec<u8> = (0..1_048_576u32).map(|i| (i * 7 % 251) as u8).collect();
    let t = Tree::new();
    t.file("log", "0123456789").file("blob", &big);
    lock(t.path());
    let differs = |t: &Tree| {
        let r = verify_d(t.path(), &[]);
        r.code(1);
        r.line().to_string()
    };
    let append = |rel: &str, bytes: &[u8]| {
        fs::OpenOptions::new()
            .append(true)
            .open(t.at(rel))
            .unwrap()
            .write_all(bytes)
            .unwrap()
    };
    let set_len = |rel: &str, len: u64| {
        fs::OpenOptions::new()
            .write(true)
            .open(t.at(rel))
            .unwrap()
            .set_len(len)
            .unwrap()
    };

    append("log", b"!");
    assert_eq!(
        differs(&t),
        "treeseal: content differs: log (size 10 -> 11 bytes)"
    );
    set_len("log", 9);
    assert_eq!(
        differs(&t),
        "treeseal: content differs: log (size 10 -> 9 bytes)"
    );
    set_len("log", 0);
    assert_eq!(
        differs(&t),
        "treeseal: content differs: log (size 10 -> 0 bytes)"
    );
    t.file("log", "0123456789");
    verify_d(t.path(), &[]).code(0);

    append("blob", b"\0");
    assert_eq!(
        differs(&t),
        "treeseal: content differs: blob (size 1048576 -> 1048577 bytes)"
    );
    set_len("blob", 1_048_575);
    assert_eq!(
        differs(&t),
        "treeseal: content differs: blob (size 1048576 -> 1048575 bytes)"
    );
    let mut same_size = big.clone();
    *same_size.last_mut().unwrap() ^= 1;
    t.file("blob", &same_size);
    assert_eq!(differs(&t), "treeseal: content differs: blob (same size)");
}

// ---------------------------------------------------------------------------------------
// Depth and path length
// ---------------------------------------------------------------------------------------

/// Creates `depth` nested directories named `name` below `root` with `mkdirat`/`openat`
/// (the absolute path grows past PATH_MAX), a file `leaf` with `content` at the bottom,
/// and returns the leaf's tree path.
fn nest(root: &Path, name: &str, depth: usize, content: &[u8]) -> Vec<u8> {
    let mut fd = openat(
        AT_FDCWD,
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY,
        Mode::empty(),
    )
    .unwrap();
    let mut rel = Vec::new();
    for _ in 0..depth {
        mkdirat(&fd, name, Mode::from_bits_truncate(0o755)).unwrap();
        fd = openat(&fd, name, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        rel.extend_from_slice(name.as_bytes());
        rel.push(b'/');
    }
    write_at(&fd, "leaf", content);
    rel.extend_from_slice(b"leaf");
    rel
}

fn write_at(dir: &OwnedFd, name: &str, content: &[u8]) {
    let f = openat(
        dir,
        name,
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    assert_eq!(nix::unistd::write(&f, content).unwrap(), content.len());
}

/// The directory holding `leaf` (a tree path from [`nest`]), opened one component at a
/// time.
fn leaf_dir(root: &Path, leaf: &[u8]) -> OwnedFd {
    let mut fd = openat(
        AT_FDCWD,
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY,
        Mode::empty(),
    )
    .unwrap();
    let parts: Vec<&[u8]> = leaf.split(|&c| c == b'/').collect();
    for part in &parts[..parts.len() - 1] {
        fd = openat(
            &fd,
            *part,
            OFlag::O_PATH | OFlag::O_DIRECTORY,
            Mode::empty(),
        )
        .unwrap();
    }
    fd
}

/// The manifest of `root` built with the library (walk, then hash every file through
/// `beneath::Root::hash_file`), independent of `lock`'s own hashing.
fn library_manifest(root: &Path) -> Manifest {
    let rules = Rules::default();
    let found = treeseal::walk::walk(root, &rules.matcher().unwrap()).unwrap();
    let handle = treeseal::beneath::Root::open(root).unwrap();
    let mut entries = Entries::new();
    for f in found {
        let hashed = match f.kind {
            Kind::File => Some(handle.hash_file(&f.path, f.size).unwrap()),
            _ => None,
        };
        let node = match (f.kind, &hashed) {
            (Kind::File, Some(treeseal::hash::Hashed::File { hash, size })) => {
                NodeRef::File { size: *size, hash }
            }
            (Kind::File, other) => panic!("{other:?}"),
            (Kind::Dir, _) => NodeRef::Dir,
            (Kind::Symlink, _) => NodeRef::Symlink { target: &f.target },
            (other, _) => NodeRef::Special(other),
        };
        entries.push(&f.path, f.mode, node);
    }
    Manifest {
        rules,
        origin: Origin::default(),
        entries,
    }
}

#[test]
fn nesting_deeper_than_path_max() {
    // 60 levels of 100-byte names: a 6 KB path, well past PATH_MAX (4096).
    let t = Tree::new();
    let leaf = nest(t.path(), &"d".repeat(100), 60, b"deep");
    assert!(t.path().as_os_str().len() + leaf.len() > 6000);
    let shown = escape(&leaf);

    // The binary's own lock, and its manifest equals the library's.
    tsd(["lock".as_ref(), t.path().as_os_str()]).code(0);
    verify_d(t.path(), &[]).code(0);
    assert_eq!(manifest_of(&t).entries, library_manifest(t.path()).entries);

    // verify, against a manifest made by the library: equal, then the leaf changed,
    // then removed.
    let elsewhere = Tree::new();
    let m = elsewhere.at("m");
    library_manifest(t.path()).save(&m).unwrap();
    let run_verify = || verify_d(t.path(), &["--manifest".as_ref(), m.as_os_str()]);
    run_verify().code(0);
    write_at(&leaf_dir(t.path(), &leaf), "leaf", b"deeper");
    let r = run_verify();
    r.code(1);
    assert_eq!(
        r.line(),
        format!("treeseal: content differs: {shown} (size 4 -> 6 bytes)")
    );
    write_at(&leaf_dir(t.path(), &leaf), "leaf", b"DEEP");
    let r = run_verify();
    r.code(1);
    assert_eq!(
        r.line(),
        format!("treeseal: content differs: {shown} (same size)")
    );
    nix::unistd::unlinkat(
        leaf_dir(t.path(), &leaf),
        "leaf",
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    )
    .unwrap();
    let r = run_verify();
    r.code(1);
    assert_eq!(r.line(), format!("treeseal: missing file: {shown}"));
}

#[test]
fn thousands_of_levels_do_not_overflow_a_stack() {
    // Before the walker was made iterative, 2040 levels crashed the debug binary with a
    // stack overflow (SIGABRT, exit 134).
    let t = Tree::new();
    let leaf = nest(t.path(), "d", 2200, b"bottom");
    let elsewhere = Tree::new();
    let m = elsewhere.at("m");
    let manifest = library_manifest(t.path());
    assert_eq!(manifest.entries.len(), 2201);
    manifest.save(&m).unwrap();
    for threads in ["1", "4"] {
        let mut c = cmd();
        c.args(["verify", "--threads", threads])
            .arg(t.path())
            .arg("--manifest")
            .arg(&m);
        within(&mut c, DEADLINE).code(0);
    }
    write_at(&leaf_dir(t.path(), &leaf), "leaf", b"BOTTOM");
    let r = verify_d(t.path(), &["--manifest".as_ref(), m.as_os_str()]);
    r.code(1);
    assert!(r.line().starts_with("treeseal: content differs: d/d/d/"));
    let r = tsd(["digest".as_ref(), t.path().as_os_str()]);
    assert!(r.code == 0 || r.code == 2, "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), usize::from(r.code == 2));
}

// ---------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------

#[test]
fn awkward_names_are_sealed_and_reported_escaped_on_one_line() {
    let long = vec![b'n'; 255];
    let mut long_dir = vec![b'D'; 255];
    long_dir.push(b'/');
    long_dir.extend_from_slice(&long);
    let names: Vec<Vec<u8>> = vec![
        long.clone(),
        long_dir,
        b"line\nbreak".to_vec(),
        b"treeseal: ok\ntreeseal: verified".to_vec(),
        b"\x1b[31mred\x1b[0m".to_vec(),
        b"\x1b]0;pwned\x07title".to_vec(),
        b"caf\xe9".to_vec(),
        b"\xff\xfe".to_vec(),
        b"back\\slash".to_vec(),
        b"cr\rreturn".to_vec(),
        b"tab\there".to_vec(),
        b" spaced ".to_vec(),
        b"-n".to_vec(),
        b"*?[x]".to_vec(),
        "\u{202e}txt.exe".as_bytes().to_vec(),
    ];
    let t = Tree::new();
    for n in &names {
        t.file(n, b"x");
    }
    lock(t.path());
    verify_d(t.path(), &[]).code(0);
    assert_eq!(
        manifest_of(&t).entries.len(),
        names.len() + 1,
        "one directory"
    );
    for n in &names {
        t.file(n, b"y");
        let r = verify_d(t.path(), &[]);
        r.code(1);
        assert_eq!(
            r.line(),
            format!("treeseal: content differs: {} (same size)", escape(n))
        );
        assert!(
            !r.stderr.bytes().any(|b| b < 0x20 && b != b'\n'),
            "raw control bytes in {:?}",
            r.stderr
        );
        t.file(n, b"x");
    }
    for n in &names {
        t.file(n, b"z");
    }
    let r = verify_d(t.path(), &["--all".as_ref()]);
    r.code(1);
    assert_eq!(r.stderr.lines().count(), names.len() + 1);
    assert!(!r.stderr.bytes().any(|b| b < 0x20 && b != b'\n'));
}

#[test]
fn hard_links_are_sealed_as_two_files() {
    let t = Tree::new();
    t.file("a", "same inode").dir("d");
    fs::hard_link(t.at("a"), t.at("d/b")).unwrap();
    lock(t.path());
    verify_d(t.path(), &[]).code(0);
    let m = manifest_of(&t);
    let files: Vec<(&[u8], NodeRef)> = m
        .entries
        .iter()
        .filter(|e| e.node.kind() == Kind::File)
        .map(|e| (e.path, e.node))
        .collect();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0].0, b"a");
    assert_eq!(files[1].0, b"d/b");
    assert_eq!(files[0].1, files[1].1);
    // A write through one name changes both.
    fs::OpenOptions::new()
        .write(true)
        .open(t.at("d/b"))
        .unwrap()
        .write_all(b"SAME")
        .unwrap();
    let r = verify_d(t.path(), &["--all".as_ref()]);
    r.code(1);
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(
        lines[..2],
        [
            "content differs: a (same size)",
            "content differs: d/b (same size)"
        ]
    );
    // Breaking the link and restoring the content is equal again: inodes are not sealed.
    fs::remove_file(t.at("d/b")).unwrap();
    t.file("a", "same inode").file("d/b", "same inode");
    verify_d(t.path(), &[]).code(0);
}

#[test]
fn a_sparse_file_over_4_gib() {
    const LEN: u64 = (4 << 30) + 4097;
    let t = Tree::new();
    t.file("small", "s");
    let f = fs::File::create(t.at("huge.img")).unwrap();
    f.set_len(LEN).unwrap();
    drop(f);
    fs::set_permissions(t.at("huge.img"), fs::Permissions::from_mode(0o644)).unwrap();
    lock(t.path());
    let m = manifest_of(&t);
    assert_eq!(
        m.entries.at(0).node,
        NodeRef::File {
            size: LEN,
            hash: &{
                // blake3 of LEN zero bytes, computed in pieces.
                let mut h = blake3::Hasher::new();
                let zeros = vec![0u8; 1 << 20];
                let mut left = LEN;
                while left > 0 {
                    let n = left.min(zeros.len() as u64) as usize;
                    h.update(&zeros[..n]);
                    left -= n as u64;
                }
                *h.finalize().as_bytes()
            }
        }
    );
    verify_d(t.path(), &[]).code(0);
    // One byte at the very end.
    use std::os::unix::fs::FileExt;
    let f = fs::OpenOptions::new()
        .write(true)
        .open(t.at("huge.img"))
        .unwrap();
    f.write_all_at(b"\x01", LEN - 1).unwrap();
    drop(f);
    let r = verify_d(t.path(), &[]);
    r.code(1);
    assert_eq!(r.line(), "treeseal: content differs: huge.img (same size)");
    fs::remove_file(t.at("huge.img")).unwrap();
}

// ---------------------------------------------------------------------------------------
// Resource limits
// ---------------------------------------------------------------------------------------

#[test]
fn a_low_open_file_limit_works_or_fails_closed() {
    let t = Tree::new();
    for a in 0..20 {
        for b in 0..15 {
            for f in 0..2 {
                t.file(format!("d{a:02}/e{b:02}/f{f}.py"), format!("{a} {b} {f}"));
            }
        }
    }
    t.file("big/blob", vec![9u8; 600_000]);
    let out = Tree::new();
    let m = out.at("m");
    let run = |sub: &str, limit: u64, threads: &str| {
        let mut c = cmd();
        c.args([sub, "--threads", threads]).arg(t.path());
        if sub == "lock" {
            c.arg("-o").arg(&m);
        } else {
            c.arg("--manifest").arg(&m);
        }
        within(with_nofile(&mut c, limit), DEADLINE)
    };
    // RLIMIT_NOFILE = 32 with 8 threads: the walker holds one directory per thread.
    run("lock", 32, "8").code(0);
    let r = run("verify", 32, "8");
    r.code(0);
    assert!(r.line().contains("(922 entries, 601 files"), "{}", r.stderr);

    // Lower limits: equal or could-not-check, never a wrong answer.
    let mut seen = Vec::new();
    for limit in [4u64, 6, 8, 12, 16] {
        let r = run("verify", limit, "8");
        assert!(r.code == 0 || r.code == 2, "limit {limit}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        if r.code == 2 {
            assert!(r.stderr.contains("Too many open files"), "{}", r.stderr);
        }
        seen.push((limit, r.code));
    }
    t.file("d07/e03/f1.py", "changed");
    for limit in [4u64, 6, 8, 12, 16, 32] {
        let r = run("verify", limit, "8");
        assert!(r.code == 1 || r.code == 2, "limit {limit}: {}", r.stderr);
        seen.push((limit, r.code));
    }
    // A lock that runs out of descriptors writes no manifest.
    fs::remove_file(&m).unwrap();
    let r = run("lock", 4, "8");
    cannot_check(&r);
    assert!(!m.exists());
    eprintln!("RLIMIT_NOFILE (limit, exit code): {seen:?}");
}

// ---------------------------------------------------------------------------------------
// Mounts
// ---------------------------------------------------------------------------------------

#[test]
fn a_root_that_is_a_mount_point_and_a_mount_inside_the_tree() {
    let base = Tree::new();
    let root = base.at("mnt");
    fs::create_dir(&root).unwrap();
    let Some(_outer) = Mount::tmpfs(&root, "mount-point root test") else {
        return;
    };
    fs::create_dir_all(root.join("app/data")).unwrap();
    fs::write(root.join("app/main.py"), "print(1)\n").unwrap();
    let Some(inner) = Mount::tmpfs(&root.join("app/data"), "nested mount test") else {
        return;
    };
    fs::write(root.join("app/data/seed.json"), "{}").unwrap();
    let m = base.at("m");
    tsd([
        "lock".as_ref(),
        root.as_os_str(),
        "-o".as_ref(),
        m.as_os_str(),
    ])
    .code(0);
    let v = || verify_d(&root, &["--manifest".as_ref(), m.as_os_str()]);
    v().code(0);
    // The mounted file system's files are part of the tree like any others.
    let sealed: Vec<String> = Manifest::load(&m)
        .unwrap()
        .entries
        .iter()
        .map(|e| String::from_utf8_lossy(e.path).into_owned())
        .collect();
    assert_eq!(
        sealed,
        ["app", "app/data", "app/data/seed.json", "app/main.py"]
    );
    // Unmounting the inner file system uncovers an empty directory: a difference.
    drop(inner);
    let r = v();
    r.code(1);
    assert_eq!(r.line(), "treeseal: missing file: app/data/seed.json");
}

#[test]
fn app_mounted_over_by_an_empty_volume_refuses() {
    let t = Tree::sample();
    let elsewhere = Tree::new();
    let m = elsewhere.at("app.seal");
    tsd([
        "lock".as_ref(),
        t.path().as_os_str(),
        "-o".as_ref(),
        m.as_os_str(),
    ])
    .code(0);
    tsd(["lock".as_ref(), t.path().as_os_str()]).code(0); // and one inside
    let mounted = Mount::tmpfs(t.path(), "empty-volume test (emulated by emptying instead)");
    if mounted.is_none() {
        for entry in fs::read_dir(t.path()).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() && !p.is_symlink() {
                fs::remove_dir_all(p).unwrap();
            } else {
                fs::remove_file(p).unwrap();
            }
        }
    }
    // The manifest kept elsewhere: exit 1, naming the first missing entry.
    let r = verify_d(t.path(), &["--manifest".as_ref(), m.as_os_str()]);
    r.code(1);
    assert_eq!(
        r.line(),
        "treeseal: missing file: README (+4 more; --all lists every one)"
    );
    let mut c = cmd();
    c.arg("run")
        .env("TREESEAL_ROOT", t.path())
        .env("TREESEAL_MANIFEST", &m)
        .env("TREESEAL_STATE", elsewhere.at("state"))
        .args(["--", "true"]);
    let r = within(&mut c, DEADLINE);
    r.code(1);
    assert!(
        r.line().ends_with(
            "differs from its manifest: missing file: README (+4 more; --all lists every one)"
        ),
        "{}",
        r.stderr
    );
    // The manifest inside the covered tree is hidden too: could not check.
    let line = cannot_check(&verify_d(t.path(), &[]));
    assert!(line.contains("no manifest at"), "{line}");
    drop(mounted);
}

// ---------------------------------------------------------------------------------------
// Odd manifest paths
// ---------------------------------------------------------------------------------------

#[test]
fn a_manifest_path_that_is_a_directory_device_or_fifo() {
    let t = Tree::sample();
    lock(t.path());
    let bytes = fs::read(t.at(".treeseal")).unwrap();
    let elsewhere = Tree::new();

    let dir = elsewhere.at("dir");
    fs::create_dir(&dir).unwrap();
    let line = cannot_check(&verify_d(
        t.path(),
        &["--manifest".as_ref(), dir.as_os_str()],
    ));
    assert_eq!(
        line,
        format!(
            "treeseal: cannot read manifest {}: Is a directory",
            dir.display()
        )
    );

    // A device that never ends, or one that blocks: refused before reading.
    for dev in ["/dev/zero", "/dev/urandom", "/dev/null"] {
        let line = cannot_check(&verify_d(t.path(), &["--manifest".as_ref(), dev.as_ref()]));
        assert_eq!(
            line,
            format!("treeseal: cannot read manifest {dev}: not a regular file or a pipe")
        );
    }

    // A FIFO blocks on open until a writer comes (as any reader of a FIFO does), then
    // is decoded like any manifest: a valid one passes, an empty one is corrupt.
    let fifo = elsewhere.at("fifo");
    nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o600)).unwrap();
    for (payload, want) in [(&bytes[..], 0), (&b""[..], 2)] {
        let mut child = cmd()
            .arg("verify")
            .arg(t.path())
            .arg("--manifest")
            .arg(&fifo)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            child.try_wait().unwrap().is_none(),
            "verify did not wait for the FIFO's writer"
        );
        let started = Instant::now();
        let mut w = loop {
            // O_NONBLOCK: fails with ENXIO instead of blocking while no reader is there.
            match fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&fifo)
            {
                Ok(w) => break w,
                Err(_) if started.elapsed() < DEADLINE => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(e) => panic!("no reader on the FIFO: {e}"),
            }
        };
        // Back to blocking writes for the payload (a manifest may exceed the pipe buffer).
        nix::fcntl::fcntl(&w, nix::fcntl::FcntlArg::F_SETFL(OFlag::empty())).unwrap();
        w.write_all(payload).unwrap();
        drop(w);
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(want), "{:?}", out);
        if want == 2 {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("wrong magic"), "{err}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Damaged and hostile manifests
// ---------------------------------------------------------------------------------------

/// Writes `bytes` as a manifest outside the tree and verifies the tree against it.
fn verify_with(t: &Tree, bytes: &[u8], extra: &[&str]) -> Run {
    let m = t.path().join("../treeseal-adversarial-manifest");
    let m = m.with_file_name(format!(
        "treeseal-adversarial-{}-{}",
        std::process::id(),
        t.path().file_name().unwrap().to_string_lossy()
    ));
    fs::write(&m, bytes).unwrap();
    let mut args = vec![
        "verify".as_ref(),
        t.path().as_os_str(),
        "--manifest".as_ref(),
        m.as_os_str(),
    ];
    args.extend(extra.iter().map(OsStr::new));
    let r = ts(args);
    fs::remove_file(&m).unwrap();
    r
}

/// Puts a valid header (real body length and checksum) in front of a body.
fn reseal(mut bytes: Vec<u8>) -> Vec<u8> {
    treeseal::manifest::reseal(&mut bytes);
    bytes
}

/// A header with `count` entries followed by `body`, resealed.
fn with_body(count: u64, body: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEADER_LEN + body.len());
    b.extend_from_slice(b"TREESEAL");
    b.extend_from_slice(&treeseal::manifest::FORMAT_VERSION.to_le_bytes());
    b.extend_from_slice(&[0; 6]);
    b.extend_from_slice(&count.to_le_bytes());
    b.extend_from_slice(&[0; 40]);
    b.extend_from_slice(body);
    reseal(b)
}

#[test]
fn every_truncation_flip_and_bad_header_is_one_line_and_exit_2() {
    let t = Tree::sample();
    lock(t.path());
    let good = fs::read(t.at(".treeseal")).unwrap();
    fs::remove_file(t.at(".treeseal")).unwrap();
    verify_with(&t, &good, &[]).code(0);

    let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
    for len in 0..good.len() {
        cases.push((format!("truncated to {len}"), good[..len].to_vec()));
    }
    for i in 0..good.len() {
        let mut b = good.clone();
        b[i] ^= 0xff;
        cases.push((format!("byte {i} flipped"), b));
    }
    for extra in [&b"\0"[..], b"TREESEAL", &[0xaa; 4096]] {
        let mut b = good.clone();
        b.extend_from_slice(extra);
        cases.push((format!("{} trailing bytes", extra.len()), b));
    }
    for (at, value, what) in [
        (0usize, &b"treeseal"[..], "lowercase magic"),
        (0, b"\x7fELF\x02\x01\x01\0", "an ELF header"),
        (8, &0u16.to_le_bytes(), "version 0"),
        (8, &1u16.to_le_bytes(), "version 1"),
        (8, &3u16.to_le_bytes(), "version 3"),
        (8, &u16::MAX.to_le_bytes(), "version 65535"),
        (10, &1u16.to_le_bytes(), "a flag"),
        (12, &[0, 0, 0, 1], "reserved bytes"),
        (16, &u64::MAX.to_le_bytes(), "count u64::MAX"),
        (24, &u64::MAX.to_le_bytes(), "body length u64::MAX"),
        (24, &0u64.to_le_bytes(), "body length 0"),
    ] {
        let mut b = good.clone();
        b[at..at + value.len()].copy_from_slice(value);
        cases.push((what.to_string(), b));
    }
    for (what, bytes) in &cases {
        let r = verify_with(&t, bytes, &[]);
        let line = cannot_check(&r);
        assert!(line.contains("is corrupt: "), "{what}: {line}");
        if what.starts_with("version 3") || what.starts_with("version 65535") {
            assert!(line.contains("is newer than this treeseal reads"), "{line}");
        }
        if what.starts_with("version 1") {
            assert!(line.contains("older than this treeseal reads"), "{line}");
        }
    }
    eprintln!(
        "damaged manifests through the CLI: {} cases, all exit 2 with one line",
        cases.len()
    );
}

#[test]
fn resealed_corruption_never_passes_against_the_expected_digest() {
    // Every body byte flipped, with a valid checksum recomputed (as an attacker who edits
    // the manifest would): the decoder rejects it (2), or it decodes to another tree
    // (1 against the expected digest), or — only when the flip hit something outside the
    // digest (origin, or permission bits the mode policy ignores) — it is the same tree.
    let t = Tree::sample();
    let digest = lock(t.path());
    let good = fs::read(t.at(".treeseal")).unwrap();
    let mut counts = [0usize; 3];
    for i in HEADER_LEN..good.len() {
        for mask in [0x01u8, 0x80] {
            let mut b = good.clone();
            b[i] ^= mask;
            let b = reseal(b);
            let r = verify_with(&t, &b, &["--digest", &digest]);
            assert!(matches!(r.code, 0..=2), "{}", r.stderr);
            assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
            if r.code == 0 {
                let m = decode(&b).unwrap();
                assert_eq!(format_digest(&m.digest()), digest, "byte {i}");
            }
            counts[r.code as usize] += 1;
        }
    }
    eprintln!(
        "resealed body flips: {} same tree (origin or ignored bits), {} other tree (exit 1), {} rejected (exit 2)",
        counts[0], counts[1], counts[2]
    );
    // Invalid patterns in a well-formed manifest: could not check.
    let mut m = Manifest::load(&t.at(".treeseal")).unwrap();
    m.rules.patterns = vec!["[z-a]".into()];
    let line = cannot_check(&verify_with(&t, &m.encode(), &[]));
    assert!(line.contains("bad ignore pattern \"[z-a]\""), "{line}");
}

// --- allocation accounting, for the decoder limits -------------------------------------

/// Counts the bytes allocated by the current thread, to bound what decoding allocates.
struct Counting;

thread_local! {
    static LIVE: Cell<i64> = const { Cell::new(0) };
    static PEAK: Cell<i64> = const { Cell::new(0) };
}

fn track(delta: i64) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: forwards to the system allocator; the bookkeeping only touches const-initialised
// thread-locals without destructors, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            track(layout.size() as i64);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            track(layout.size() as i64);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) };
        track(-(layout.size() as i64));
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as ours.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            track(new_size as i64 - layout.size() as i64);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` and returns its result with the peak growth of this thread's live heap.
fn peak_growth<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let out = f();
    (out, (PEAK.with(Cell::get) - start).max(0) as u64)
}

/// postcard's varint for an unsigned integer.
fn varint(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

#[test]
fn no_length_field_makes_the_decoder_allocate_beyond_the_bytes_present() {
    // The smallest Meta: no patterns, Exec, created 0, no source, empty tool name.
    let meta: &[u8] = &[0, 0, 0, 0, 0];
    let huge = [u64::MAX >> 1, u64::from(u32::MAX), 1 << 40];
    let mut cases: Vec<(String, u64, Vec<u8>)> = Vec::new();
    for n in huge {
        // Vec<String> of patterns claiming n elements.
        cases.push((format!("{n} patterns"), 0, [varint(n), vec![0; 4]].concat()));
        // One pattern of n bytes.
        cases.push((
            format!("pattern of {n} bytes"),
            0,
            [vec![1], varint(n), b"x".to_vec()].concat(),
        ));
        // A source commit of n bytes.
        cases.push((
            format!("source of {n} bytes"),
            0,
            [vec![0, 0, 0, 1], varint(n), b"abc".to_vec()].concat(),
        ));
        // An entry suffix of n bytes.
        cases.push((
            format!("suffix of {n} bytes"),
            1,
            [meta.to_vec(), vec![0], varint(n), b"abcdef".to_vec()].concat(),
        ));
        // A symlink target of n bytes (entry "l", mode 0o777, Symlink).
        cases.push((
            format!("symlink target of {n} bytes"),
            1,
            [
                meta.to_vec(),
                vec![0, 1, b'l'],
                varint(0o777),
                vec![2],
                varint(n),
                b"t".to_vec(),
            ]
            .concat(),
        ));
    }
    // `shared` beyond the previous path's length, and beyond u32.
    for shared in [2, u64::from(u32::MAX), 1 << 40] {
        cases.push((
            format!("shared {shared}"),
            2,
            [
                meta.to_vec(),
                vec![0, 1, b'a', 0, 1],
                varint(shared),
                vec![1, b'b', 0, 1],
            ]
            .concat(),
        ));
    }
    for (what, count, body) in &cases {
        let bytes = with_body(*count, body);
        let (result, peak) = peak_growth(|| decode(&bytes));
        let err = result.expect_err(what).to_string();
        assert!(!err.contains('\n'), "{what}: {err}");
        // serde caps a sequence's preallocation at 1 MiB; everything else is bounded by
        // the bytes that are there.
        assert!(
            peak <= (1 << 20) + 64 * bytes.len() as u64,
            "{what}: decoding {} bytes allocated {peak} bytes ({err})",
            bytes.len()
        );
    }
}

#[test]
fn a_million_entries_decode_in_bounded_memory_and_a_false_count_fails_fast() {
    // 1,000 directories of 999 files each: 1,000,000 entries, built in memory.
    let mut entries = Entries::new();
    for d in 0..1000u32 {
        let dir = format!("pkg{d:04}").into_bytes();
        entries.push(&dir, 0o755, NodeRef::Dir);
        for f in 0..999u32 {
            let mut hash = [0x5a; 32];
            hash[..4].copy_from_slice(&d.to_le_bytes());
            hash[4..8].copy_from_slice(&f.to_le_bytes());
            entries.push(
                &[&dir[..], format!("/mod_{f:03}.py").as_bytes()].concat(),
                if f % 10 == 0 { 0o755 } else { 0o644 },
                NodeRef::File {
                    size: u64::from(f * 37),
                    hash: &hash,
                },
            );
        }
    }
    let m = Manifest {
        rules: Rules::default(),
        origin: Origin {
            created_unix: 1_700_000_000,
            source: Some("0e421ef".into()),
            tool: "adversarial".into(),
        },
        entries,
    };
    let bytes = m.encode();
    let (decoded, peak) = peak_growth(|| decode(&bytes).unwrap());
    assert_eq!(decoded.entries.len(), 1_000_000);
    assert!(decoded == m, "the decoded manifest differs");
    assert_eq!(decoded.digest(), m.digest());
    // What the decoded manifest holds: the records and the path arena. While decoding,
    // the arena has room for as many bytes as the body (never touched beyond the paths,
    // and given back at the end), and nothing else is allocated per entry.
    let held = decoded.entries.allocated() as u64;
    assert!(
        peak <= held + bytes.len() as u64 + (1 << 20),
        "decoding allocated {peak} bytes at its peak for {held} bytes of result"
    );
    assert!(
        held <= 1_000_000 * (Entries::RECORD_LEN as u64 + 20),
        "{held}"
    );
    eprintln!(
        "1,000,000 entries: manifest {} bytes ({:.1} per entry); decode peak heap growth {} bytes, result {} bytes (records of {} bytes)",
        bytes.len(),
        bytes.len() as f64 / 1e6,
        peak,
        held,
        Entries::RECORD_LEN
    );
    drop(decoded);

    // Loading it from a file streams the body through a window: the file's bytes are
    // never all in memory beside the result, so the peak is the same as decoding's.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m");
    fs::write(&path, &bytes).unwrap();
    let (loaded, peak) = peak_growth(|| Manifest::load(&path).unwrap());
    assert!(loaded == m, "the loaded manifest differs");
    assert!(
        peak <= held + bytes.len() as u64 + (1 << 20),
        "loading allocated {peak} bytes at its peak for {held} bytes of result"
    );
    eprintln!("loading it from a file: peak heap growth {peak} bytes");
    drop(loaded);

    // A header that claims a million entries over a tiny body fails on the count, before
    // anything is allocated for them.
    let tiny = with_body(1_000_000, &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let (result, peak) = peak_growth(|| decode(&tiny));
    assert_eq!(
        result.unwrap_err().to_string(),
        "header claims 1000000 entries, more than 10 body bytes can hold"
    );
    assert!(peak < 4096, "{peak}");
    // The largest count the check lets through for a body that then ends: the decoder
    // preallocates no more entries than the body could hold.
    let body = [&[0u8, 0, 0, 0, 0][..], &[0; 995]].concat();
    let (result, peak) = peak_growth(|| decode(&with_body(200, &body)));
    assert!(result.is_err());
    assert!(
        peak <= 200 * Entries::RECORD_LEN as u64 + 4 * 1024 + 2 * body.len() as u64,
        "{peak}"
    );
}

// ---------------------------------------------------------------------------------------
// Threads
// ---------------------------------------------------------------------------------------

#[test]
fn no_worker_thread_can_start_and_the_check_still_completes() {
    // Enough files for the pool, two directories per level, and one file large enough to
    // be hashed by several threads.
    let t = Tree::new();
    for d in ["a", "b"] {
        for i in 0..300 {
            t.file(format!("{d}/{i}"), format!("{d} {i}\n"));
        }
    }
    t.file("big", vec![5u8; 9 << 20]);
    fs::set_permissions(t.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let digest = lock(t.path());
    // With RLIMIT_NPROC 1, every thread creation fails with EAGAIN: the process already
    // uses up its user's limit (nobody runs nothing else; any other user runs this test).
    // With 3 (as nobody), a pool of 4 fails part-way and a smaller one may or may not
    // start, depending on how soon the first attempt's threads are gone: the result must
    // be the same either way.
    let limited = |nproc: u64, args: &[&OsStr]| {
        let mut c = cmd();
        c.args(args);
        if is_root() {
            as_nobody(&mut c);
        }
        within(with_nproc(&mut c, nproc), DEADLINE)
    };
    let dir = t.path().as_os_str();
    for (nproc, threads) in [(1, "1"), (1, "4"), (3, "4")] {
        let threads = OsStr::new(threads);
        let r = limited(
            nproc,
            &["digest".as_ref(), "--threads".as_ref(), threads, dir],
        );
        r.code(0);
        assert_eq!(r.stdout.trim(), digest);
        limited(
            nproc,
            &["verify".as_ref(), "--threads".as_ref(), threads, dir],
        )
        .code(0);
    }
    t.file("b/299", "B 299\n");
    let r = limited(1, &["verify".as_ref(), dir]);
    r.code(1);
    assert_eq!(r.line(), "treeseal: content differs: b/299 (same size)");
}
