//! Shared test helpers: a temp tree builder and a wrapper that runs the real binary.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A directory tree in a fresh temporary directory.
pub struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    pub fn new() -> Tree {
        Tree {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn at(&self, rel: impl AsRef<[u8]>) -> PathBuf {
        self.path().join(OsStr::from_bytes(rel.as_ref()))
    }

    /// Writes a file (creating parents) with mode 0644.
    pub fn file(&self, rel: impl AsRef<[u8]>, content: impl AsRef<[u8]>) -> &Tree {
        let p = self.at(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, content).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        self
    }

    pub fn dir(&self, rel: impl AsRef<[u8]>) -> &Tree {
        fs::create_dir_all(self.at(rel)).unwrap();
        self
    }

    pub fn symlink(&self, rel: impl AsRef<[u8]>, target: &str) -> &Tree {
        let p = self.at(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        symlink(target, p).unwrap();
        self
    }

    pub fn chmod(&self, rel: impl AsRef<[u8]>, mode: u32) -> &Tree {
        fs::set_permissions(self.at(rel), fs::Permissions::from_mode(mode)).unwrap();
        self
    }

    pub fn fifo(&self, rel: impl AsRef<[u8]>) -> &Tree {
        nix::unistd::mkfifo(
            &self.at(rel),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        self
    }

    pub fn remove(&self, rel: impl AsRef<[u8]>) -> &Tree {
        let p = self.at(rel);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => fs::remove_dir_all(&p).unwrap(),
            Ok(_) => fs::remove_file(&p).unwrap(),
            Err(e) => panic!("remove {}: {e}", p.display()),
        }
        self
    }

    /// A small realistic tree: sources, an empty dir, a symlink, an executable.
    pub fn sample() -> Tree {
        let t = Tree::new();
        t.file("app/__init__.py", "")
            .file("app/settings.py", "AWS_REGION = 'us-east-1'\n")
            .file("app/views.py", "def index():\n    return 'ok'\n")
            .file("bin/start", "#!/bin/sh\nexec python -m app\n")
            .chmod("bin/start", 0o755)
            .dir("var/empty")
            .symlink("current", "app")
            .file("README", "hello\n");
        t
    }
}

/// The result of one run of the binary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Asserts the exit code, showing the output when it is not as expected.
    pub fn code(&self, want: i32) -> &Run {
        assert_eq!(
            self.code, want,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// The only stderr line (asserting there is exactly one).
    pub fn line(&self) -> &str {
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "expected one stderr line, got:\n{}",
            self.stderr
        );
        lines[0]
    }
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_treeseal"))
}

/// A command for the real binary with a clean, reproducible environment.
pub fn cmd() -> Command {
    let mut c = Command::new(bin());
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .env("TREESEAL_SOURCE", "0e421ef");
    c
}

/// Runs the binary with `args`.
pub fn ts<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Run::from(cmd().args(args).output().expect("run treeseal"))
}

/// Runs a prepared command.
pub fn run(c: &mut Command) -> Run {
    Run::from(c.output().expect("run treeseal"))
}

/// `treeseal lock DIR` → the digest line.
pub fn lock(dir: &Path) -> String {
    let r = ts([OsStr::new("lock"), dir.as_os_str()]);
    r.code(0);
    assert_eq!(r.stdout.lines().count(), 1, "lock prints one line");
    r.stdout.trim().to_string()
}

/// `treeseal verify DIR` with extra args.
pub fn verify(dir: &Path, extra: &[&str]) -> Run {
    let mut args = vec![OsStr::new("verify"), dir.as_os_str()];
    args.extend(extra.iter().map(OsStr::new));
    ts(args)
}

/// Whether a test that needs the engine can run, given what checking the machine found:
/// without what it needs the test says so loudly on stderr and is skipped, and under CI
/// (`TREESEAL_REQUIRE_DOCKER=1`) that is a failure instead.
pub fn engine_ready(check: &Result<(), String>, kind: &str, test: &str) -> bool {
    use std::io::Write;
    match check {
        Ok(()) => true,
        Err(why) => {
            if std::env::var("TREESEAL_REQUIRE_DOCKER").as_deref() == Ok("1") {
                panic!("{why}; TREESEAL_REQUIRE_DOCKER=1, so this is a failure, not a skip");
            }
            // Straight to the file descriptor: libtest captures eprintln! of passing tests.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: {why}: the {kind} test `{test}` did NOT run \
                 (set TREESEAL_REQUIRE_DOCKER=1 to make this a failure)"
            );
            false
        }
    }
}

/// Access times made old enough that `relatime` (and `strictatime`) would move them on the
/// next read, for the tests that a check leaves them alone. `None` when this file system
/// does not record reads at all (mounted `noatime`): then such a test cannot fail, and says so.
pub struct AgedAtimes {
    /// Every regular file and directory of the tree, with the access time it was given.
    entries: Vec<(PathBuf, std::time::SystemTime)>,
}

impl AgedAtimes {
    /// Sets the access time of every regular file and directory under `root` to three days
    /// before its modification time.
    pub fn of(root: &Path) -> Option<AgedAtimes> {
        let canary = root.with_extension("atime-canary");
        fs::write(&canary, "read me").unwrap();
        let aged = AgedAtimes {
            entries: vec![(canary.clone(), age(&canary))],
        };
        let _ = fs::read(&canary).unwrap();
        let moved = aged.changed().is_some();
        fs::remove_file(&canary).unwrap();
        if !moved {
            return None;
        }
        // Listed first and aged after: listing a directory is a read of it.
        let mut paths = vec![root.to_path_buf()];
        let mut next = 0;
        while let Some(dir) = paths.get(next).cloned() {
            next += 1;
            if !fs::symlink_metadata(&dir).unwrap().is_dir() {
                continue;
            }
            for e in fs::read_dir(&dir).unwrap() {
                let e = e.unwrap();
                let kind = e.file_type().unwrap();
                if kind.is_dir() || kind.is_file() {
                    paths.push(e.path());
                }
            }
        }
        let entries = paths.into_iter().map(|p| (p.clone(), age(&p))).collect();
        Some(AgedAtimes { entries })
    }

    /// The first path whose access time is no longer the one it was given.
    pub fn changed(&self) -> Option<&Path> {
        self.entries
            .iter()
            .find(|(path, atime)| fs::metadata(path).unwrap().accessed().unwrap() != *atime)
            .map(|(path, _)| path.as_path())
    }
}

fn age(path: &Path) -> std::time::SystemTime {
    let modified = fs::metadata(path).unwrap().modified().unwrap();
    let atime = modified - std::time::Duration::from_secs(3 * 24 * 3600);
    let times = fs::FileTimes::new()
        .set_accessed(atime)
        .set_modified(modified);
    fs::File::open(path).unwrap().set_times(times).unwrap();
    atime
}
