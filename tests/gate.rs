//! The ENTRYPOINT gate and the healthcheck, through the real binary.

mod common;

use std::fs;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{cmd, lock, run, ts, Run, Tree};

/// A gated tree with its digest and a private snapshot path.
struct Gate {
    tree: Tree,
    digest: String,
    state: tempfile::TempDir,
}

impl Gate {
    fn new() -> Gate {
        let tree = Tree::sample();
        let digest = lock(tree.path());
        Gate {
            tree,
            digest,
            state: tempfile::tempdir().unwrap(),
        }
    }

    /// `treeseal <sub>` with TREESEAL_ROOT, TREESEAL_DIGEST and TREESEAL_STATE set.
    fn cmd(&self, sub: &str) -> Command {
        let mut c = self.bare();
        c.arg(sub);
        c
    }

    /// `treeseal` without arguments, with the environment of [`Gate::cmd`].
    fn bare(&self) -> Command {
        let mut c = cmd();
        c.env("TREESEAL_ROOT", self.tree.path())
            .env("TREESEAL_DIGEST", &self.digest)
            .env("TREESEAL_STATE", self.state.path().join("state"));
        c
    }

    /// `treeseal run -- sh -c SCRIPT sh ARGS...`
    fn run_sh(&self, script: &str, args: &[&str]) -> Run {
        let mut c = self.cmd("run");
        c.args(["--", "sh", "-c", script, "sh"]).args(args);
        run(&mut c)
    }

    fn health(&self, extra: &[&str]) -> Run {
        run(self.cmd("healthcheck").args(extra))
    }

    /// Runs the gate with a command that would leave a marker, and asserts it did not run.
    fn refuses(&self, c: &mut Command, code: i32) -> Run {
        let marker = self.state.path().join("ran");
        c.args(["--", "sh", "-c", "touch \"$0\""]).arg(&marker);
        let r = run(c);
        r.code(code);
        assert!(!marker.exists(), "the command ran:\n{}", r.stderr);
        r
    }
}

#[test]
fn the_command_replaces_treeseal_with_the_same_pid() {
    let g = Gate::new();
    let child = g
        .cmd("run")
        .args(["--", "sh", "-c", "echo $$"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), pid.to_string());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "treeseal: verified {} {} (5 files, ",
            g.tree.path().display(),
            g.digest
        )),
        "{stderr}"
    );
}

#[test]
fn argv_and_exit_status_pass_through_untouched() {
    let g = Gate::new();
    let r = g.run_sh(
        "printf '[%s]' \"$@\"; exit 42",
        &["a b", "", "c\nd", "--", "-x"],
    );
    r.code(42);
    assert_eq!(r.stdout, "[a b][][c\nd][--][-x]");
}

#[test]
fn the_app_inherits_no_ignored_or_blocked_signals() {
    let g = Gate::new();
    let r = g.run_sh("grep -E '^Sig(Ign|Blk):' /proc/self/status", &[]);
    r.code(0);
    assert_eq!(
        r.stdout,
        "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n"
    );
}

#[test]
fn quiet_means_no_line_on_success() {
    let g = Gate::new();
    let mut c = g.cmd("run");
    c.env("TREESEAL_QUIET", "1").args(["--", "true"]);
    let r = run(&mut c);
    r.code(0);
    assert_eq!(r.stderr, "");
}

#[test]
fn every_refusal_leaves_the_command_unrun() {
    // A difference.
    let g = Gate::new();
    g.tree.file("app/settings.py", "AWS_REGION = None\n");
    let r = g.refuses(&mut g.cmd("run"), 1);
    assert_eq!(
        r.line(),
        format!(
            "treeseal: refusing to start: {} differs from its manifest: content differs: app/settings.py (size 25 -> 18 bytes)",
            g.tree.path().display()
        )
    );

    // An empty root where the manifest lists files (the manifest kept elsewhere).
    let g = Gate::new();
    let manifest = g.state.path().join("m");
    fs::rename(g.tree.at(".treeseal"), &manifest).unwrap();
    for entry in fs::read_dir(g.tree.path()).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() && !p.is_symlink() {
            fs::remove_dir_all(p).unwrap()
        } else {
            fs::remove_file(p).unwrap()
        }
    }
    let r = g.refuses(g.cmd("run").env("TREESEAL_MANIFEST", &manifest), 1);
    assert!(
        r.line()
            .contains("differs from its manifest: missing file: README (+4 more"),
        "{}",
        r.stderr
    );

    // No manifest, a corrupt one, no root.
    let g = Gate::new();
    fs::remove_file(g.tree.at(".treeseal")).unwrap();
    let r = g.refuses(&mut g.cmd("run"), 2);
    assert!(
        r.line().contains("refusing to start: no manifest at"),
        "{}",
        r.stderr
    );
    fs::write(g.tree.at(".treeseal"), b"TREESEAL\x01\x00").unwrap();
    let r = g.refuses(&mut g.cmd("run"), 2);
    assert!(r.line().contains("is corrupt"), "{}", r.stderr);
    let r = g.refuses(g.cmd("run").env("TREESEAL_ROOT", g.tree.at("nope")), 2);
    assert!(r.line().ends_with("nope does not exist"), "{}", r.stderr);

    // Bad configuration is a refusal too.
    let r = g.refuses(g.cmd("run").env("TREESEAL_DIGEST", "blake3:123"), 2);
    assert!(r.line().contains("TREESEAL_DIGEST"), "{}", r.stderr);
    let r = g.refuses(g.cmd("run").env("TREESEAL_LOG", "xml"), 2);
    assert!(r.line().contains("TREESEAL_LOG"), "{}", r.stderr);
}

#[test]
fn a_stale_manifest_names_both_digests_and_its_origin() {
    let g = Gate::new();
    let old = g.digest.clone();
    // CI locked a newer checkout; the image still has the old tree and its old manifest.
    let newer = Tree::sample();
    newer.file("app/settings.py", "AWS_REGION: str = 'us-east-1'\n");
    let new = lock(newer.path());
    let r = g.refuses(g.cmd("run").env("TREESEAL_DIGEST", &new), 1);
    assert_eq!(
        r.line(),
        format!(
            "treeseal: refusing to start: this image's files come from a different source tree than the one it was built from: {root} is {old}, expected {new}; locked from commit 0e421ef at 2023-11-14T22:13:20Z by treeseal {} (commit {}); rebuild the stage that copies {root} without the build cache (for a base image: rebuild it, or pull it by digest)",
            env!("CARGO_PKG_VERSION"),
            treeseal::cli::VERSION.split("(commit ").nth(1).unwrap().trim_end_matches(')'),
            root = g.tree.path().display(),
        )
    );
}

#[test]
fn without_an_expected_digest_one_warning_says_freshness_is_not_anchored() {
    let g = Gate::new();
    let mut c = g.cmd("run");
    c.env_remove("TREESEAL_DIGEST").args(["--", "true"]);
    let r = run(&mut c);
    r.code(0);
    assert!(
        r.line()
            .contains("warning: no expected digest (TREESEAL_DIGEST)"),
        "{}",
        r.stderr
    );
}

#[test]
fn exec_failures_use_126_and_127_with_the_reason() {
    let g = Gate::new();
    let mut c = g.cmd("run");
    c.args(["--", "no-such-command-anywhere"]);
    let r = run(&mut c);
    r.code(127);
    assert!(
        r.stderr.lines().last().unwrap().contains("not found"),
        "{}",
        r.stderr
    );

    let mut c = g.cmd("run");
    c.arg("--").arg(g.tree.at("README"));
    let r = run(&mut c);
    r.code(126);
    assert!(r.stderr.contains("permission denied"), "{}", r.stderr);

    // Written by a child process: a descriptor open for writing in this (multi-threaded)
    // process could leak into a concurrent test's fork, and exec would then fail with
    // ETXTBSY (126) instead of reaching the interpreter lookup.
    let script = g.state.path().join("script");
    let made = std::process::Command::new("sh")
        .arg("-c")
        .arg("printf '#!/no/such/interpreter\\necho hi\\n' > \"$1\" && chmod 755 \"$1\"")
        .arg("sh")
        .arg(&script)
        .status()
        .unwrap();
    assert!(made.success());
    let mut c = g.cmd("run");
    c.arg("--").arg(&script);
    let r = run(&mut c);
    r.code(127);
    assert!(
        r.stderr.contains("interpreter") && r.stderr.contains("/no/such/interpreter"),
        "{}",
        r.stderr
    );
}

#[test]
fn errors_are_one_line_even_with_rust_backtrace() {
    let g = Gate::new();
    fs::write(g.tree.at(".treeseal"), b"junk").unwrap();
    let mut c = g.cmd("run");
    c.env("RUST_BACKTRACE", "full").args(["--", "true"]);
    let r = run(&mut c);
    r.code(2);
    r.line();
}

#[test]
fn file_names_cannot_forge_log_lines() {
    let g = Gate::new();
    g.tree.file("app/x\ntreeseal: verified OK", "sneaky");
    let mut c = g.cmd("run");
    c.args(["--", "true"]);
    let r = run(&mut c);
    r.code(1);
    assert!(
        r.line()
            .ends_with("extra file: app/x\\ntreeseal: verified OK"),
        "{}",
        r.stderr
    );

    let mut c = g.cmd("run");
    c.env("TREESEAL_LOG", "json").args(["--", "true"]);
    let r = run(&mut c);
    r.code(1);
    assert!(
        r.line().starts_with("{\"time\":\"")
            && r.line().contains("\"level\":\"error\",\"msg\":")
            && r.line().contains("app/x\\\\ntreeseal"),
        "{}",
        r.stderr
    );
}

#[test]
fn several_trees_each_with_its_own_digest() {
    let app = Gate::new();
    let deps = Tree::new();
    deps.file("lib/requests/__init__.py", "v = 2\n");
    let deps_digest = lock(deps.path());
    let trees = format!(
        "{}={} {}={}",
        app.tree.path().display(),
        app.digest,
        deps.path().display(),
        deps_digest
    );
    // TREESEAL_TREES replaces the single-tree variables: they must not be set beside it.
    let multi = |sub: &str| {
        let mut c = app.cmd(sub);
        c.env_remove("TREESEAL_ROOT")
            .env_remove("TREESEAL_DIGEST")
            .env("TREESEAL_TREES", &trees);
        c
    };
    let mut c = multi("run");
    c.args(["--", "true"]);
    run(&mut c).code(0);

    // The base image's dependency tree is stale: refused, naming that tree.
    deps.file("lib/requests/__init__.py", "v = 1\n");
    let stale = lock(deps.path());
    let r = app.refuses(&mut multi("run"), 1);
    assert!(r.line().contains(&format!(
        "different source tree than the one it was built from: {} is {stale}, expected {deps_digest}",
        deps.path().display()
    )), "{}", r.stderr);
}

#[test]
fn files_the_app_creates_can_be_allowed() {
    let g = Gate::new();
    g.tree
        .file("app/__pycache__/views.cpython-311.pyc", "bytecode");
    g.refuses(&mut g.cmd("run"), 1);
    let mut c = g.cmd("run");
    c.env("TREESEAL_ALLOW_EXTRA", "**/__pycache__ *.log")
        .args(["--", "true"]);
    run(&mut c).code(0);
    // Allowing extras never hides a change to a sealed file.
    g.tree.file("app/views.py", "def index(): pass\n");
    g.refuses(
        g.cmd("run")
            .env("TREESEAL_ALLOW_EXTRA", "**/__pycache__ app"),
        1,
    );
}

#[test]
fn healthcheck_is_healthy_then_names_the_changed_file() {
    let g = Gate::new();
    // No snapshot yet: a full check.
    let r = g.health(&[]);
    r.code(0);
    assert!(
        r.stdout
            .contains("(full check: 0 files unchanged, 5 hashed"),
        "{}",
        r.stdout
    );
    let mut c = g.cmd("run");
    c.args(["--", "true"]);
    run(&mut c).code(0);
    let r = g.health(&[]);
    r.code(0);
    assert!(r.stdout.starts_with("healthy: "), "{}", r.stdout);
    assert!(r.stdout.contains("(cheap check: "), "{}", r.stdout);

    g.tree
        .file("app/views.py", "def index():\n    return 'pwned'\n");
    let r = g.health(&[]);
    r.code(1);
    assert_eq!(r.stdout.lines().count(), 1);
    assert!(
        r.stdout.contains("content differs: app/views.py"),
        "{}",
        r.stdout
    );
    let r = g.health(&["--full"]);
    r.code(1);
    assert!(
        r.stdout.contains("content differs: app/views.py"),
        "{}",
        r.stdout
    );
}

#[test]
fn healthcheck_trusts_unchanged_files_only() {
    let g = Gate::new();
    // Files written within the last two seconds are never trusted (racy window), so
    // make the tree look old first.
    for f in [
        "README",
        "app/__init__.py",
        "app/settings.py",
        "app/views.py",
        "bin/start",
    ] {
        let old = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
        fs::File::options()
            .write(true)
            .open(g.tree.at(f))
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    let mut c = g.cmd("run");
    c.args(["--", "true"]);
    run(&mut c).code(0);
    // ctime is "now" after set_modified, so the snapshot skipped them: sleep-free check
    // that the racy rule applies.
    let r = g.health(&[]);
    r.code(0);
    assert!(
        r.stdout
            .contains("5 files with new or missing stamps hashed"),
        "{}",
        r.stdout
    );
}

#[test]
fn healthcheck_never_exits_2() {
    let g = Gate::new();
    let r = run(g.cmd("healthcheck").env("TREESEAL_DIGEST", "nonsense"));
    r.code(1);
    assert!(
        r.stdout.starts_with("unhealthy: cannot check: "),
        "{}",
        r.stdout
    );
    let r = run(g.cmd("healthcheck").arg("--bogus"));
    r.code(1);
    fs::remove_file(g.tree.at(".treeseal")).unwrap();
    g.health(&[]).code(1);
}

#[test]
fn sigterm_while_verifying_exits_promptly_with_143() {
    for log in ["text", "json"] {
        let stderr = sigterm_while_verifying(log);
        let want = match log {
            "text" => stderr == "treeseal: stopped by SIGTERM\n",
            _ => stderr.starts_with("{\"time\":\"")
                && stderr.ends_with(
                    "\",\"level\":\"error\",\"msg\":\"stopped by SIGTERM\",\"event\":\"signal\"}\n",
                ),
        };
        assert!(want, "{log}: {stderr:?}");
    }
}

/// Sends SIGTERM to a gate pinned inside its check; asserts 143 and returns its stderr.
fn sigterm_while_verifying(log: &str) -> String {
    let g = Gate::new();
    // A manifest that is a FIFO: reading it blocks until we write, which pins the gate
    // in the middle of its check without any timing assumption.
    let fifo = g.state.path().join("manifest.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let mut child = g
        .cmd("run")
        .env("TREESEAL_LOG", log)
        .env("TREESEAL_MANIFEST", &fifo)
        .args(["--", "true"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Opening the write end without blocking succeeds only once the gate has the read end
    // open, i.e. once it is past signal setup and waiting inside the check.
    let deadline = Instant::now() + Duration::from_secs(20);
    let _writer = loop {
        match fs::OpenOptions::new()
            .write(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(&fifo)
        {
            Ok(w) => break w,
            Err(e) if e.raw_os_error() == Some(nix::libc::ENXIO) && Instant::now() < deadline => {
                std::thread::yield_now()
            }
            Err(e) => panic!("the gate never opened its manifest: {e}"),
        }
    };
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(143), "{stderr}");
    stderr
}

#[test]
fn version_and_help_work_without_a_tree() {
    ts(["run", "--help"]).code(0);
    let r = ts(["run"]);
    r.code(2);
    assert!(Path::new(&common::bin()).exists());
}

#[test]
fn a_set_but_empty_variable_refuses_and_names_the_build_arg() {
    let g = Gate::new();
    for name in [
        "TREESEAL_DIGEST",
        "TREESEAL_ROOT",
        "TREESEAL_MANIFEST",
        "TREESEAL_TREES",
    ] {
        for blank in ["", " "] {
            let mut c = g.cmd("run");
            if name == "TREESEAL_TREES" {
                c.env_remove("TREESEAL_ROOT").env_remove("TREESEAL_DIGEST");
            }
            let r = g.refuses(c.env(name, blank), 2);
            assert!(
                r.line().contains(&format!("{name} is set but empty"))
                    && r.line().contains(&format!("--build-arg {name}=")),
                "{}",
                r.stderr
            );
            let r = run(g.cmd("healthcheck").env(name, blank));
            r.code(1);
            assert!(
                r.stdout
                    .starts_with(&format!("unhealthy: cannot check: {name} is set but empty")),
                "{}",
                r.stdout
            );
        }
    }
}

#[test]
fn quiet_never_hides_the_missing_digest_warning() {
    let g = Gate::new();
    let mut c = g.cmd("run");
    c.env_remove("TREESEAL_DIGEST")
        .env("TREESEAL_QUIET", "1")
        .args(["--", "true"]);
    let r = run(&mut c);
    r.code(0);
    assert!(
        r.line()
            .starts_with("treeseal: warning: no expected digest (TREESEAL_DIGEST) for "),
        "{}",
        r.stderr
    );
    let mut c = g.cmd("run");
    c.env("TREESEAL_QUIET", "0").args(["--", "true"]);
    run(&mut c).code(0).line();
}

#[test]
fn quiet_and_log_accept_only_their_documented_values() {
    let g = Gate::new();
    for (name, value) in [
        ("TREESEAL_QUIET", "yes"),
        ("TREESEAL_QUIET", "true"),
        ("TREESEAL_LOG", "JSON"),
    ] {
        let r = g.refuses(g.cmd("run").env(name, value), 2);
        assert!(r.line().contains(name), "{}", r.stderr);
        let r = run(g.cmd("healthcheck").env(name, value));
        r.code(1);
        assert!(
            r.stdout.starts_with("unhealthy: cannot check: "),
            "{}",
            r.stdout
        );
    }
}

#[test]
fn trees_beside_the_single_tree_variables_is_refused() {
    let g = Gate::new();
    let trees = format!("{}={}", g.tree.path().display(), g.digest);
    // Gate::cmd sets TREESEAL_ROOT and TREESEAL_DIGEST: with TREES beside them, which applies?
    let r = g.refuses(g.cmd("run").env("TREESEAL_TREES", &trees), 2);
    assert!(
        r.line()
            .contains("TREESEAL_TREES and TREESEAL_ROOT are both set")
            && r.line().contains("keep one form"),
        "{}",
        r.stderr
    );
    let r = g.refuses(
        g.cmd("run")
            .env_remove("TREESEAL_ROOT")
            .arg("--tree")
            .arg(g.tree.path()),
        2,
    );
    assert!(
        r.line().contains("--tree and TREESEAL_DIGEST are both set"),
        "{}",
        r.stderr
    );
    // The missing-digest warning names the variable that applies.
    let mut c = g.cmd("run");
    c.env_remove("TREESEAL_ROOT")
        .env_remove("TREESEAL_DIGEST")
        .env("TREESEAL_TREES", g.tree.path())
        .args(["--", "true"]);
    let r = run(&mut c);
    r.code(0);
    assert!(
        r.line()
            .contains("warning: no expected digest (ROOT=DIGEST in TREESEAL_TREES)"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_digest_is_blake3_and_64_hex_digits_and_nothing_else() {
    let g = Gate::new();
    let hex = &g.digest["blake3:".len()..];
    for bad in [
        format!("blake3:+{}", &hex[1..]),
        format!("blake3:-{}", &hex[1..]),
        format!("blake3:{} ", &hex[..63]),
        format!("blake3: {}", &hex[1..]),
        format!("sha256:{hex}"),
    ] {
        let r = g.refuses(g.cmd("run").env("TREESEAL_DIGEST", &bad), 2);
        assert!(r.line().contains("is not a digest"), "{bad}: {}", r.stderr);
    }
    let mut c = g.cmd("run");
    c.env(
        "TREESEAL_DIGEST",
        g.digest.to_uppercase().replace("BLAKE3", "blake3"),
    )
    .args(["--", "true"]);
    run(&mut c).code(0);
}

#[test]
fn healthcheck_exits_0_or_1_for_every_command_line() {
    let g = Gate::new();
    let cases: Vec<(Vec<&str>, Option<&str>)> = vec![
        (vec!["healthcheck"], Some("x")),
        (vec!["healthcheck"], Some("0")),
        (vec!["healthcheck"], Some("")),
        (vec!["healthcheck", "--threads", "0"], None),
        (vec!["--threads", "x", "healthcheck"], None),
        (vec!["--bogus", "healthcheck"], None),
        (vec!["healthcheck", "--bogus"], None),
        (vec!["healthcheck", "--log", "xml"], None),
        (vec!["healthcheck", "extra", "args"], None),
    ];
    for (args, threads) in cases {
        let mut c = g.bare();
        c.args(&args);
        if let Some(t) = threads {
            c.env("TREESEAL_THREADS", t);
        }
        let r = run(&mut c);
        r.code(1);
        assert_eq!(r.stdout.lines().count(), 1, "{args:?}: {}", r.stdout);
        assert!(
            r.stdout.starts_with("unhealthy: cannot check: "),
            "{args:?} {threads:?}: {}",
            r.stdout
        );
    }
}

#[test]
fn json_mode_makes_every_line_json_configuration_errors_included() {
    let g = Gate::new();
    let is_json = |line: &str| {
        line.starts_with("{\"time\":\"")
            && line.contains("\",\"level\":\"")
            && line.contains("\"msg\":\"")
            && line.ends_with('}')
    };
    for (name, value) in [
        ("TREESEAL_DIGEST", "nonsense"),
        ("TREESEAL_DIGEST", ""),
        ("TREESEAL_QUIET", "yes"),
        ("TREESEAL_THREADS", "x"),
    ] {
        let r = g.refuses(g.cmd("run").env("TREESEAL_LOG", "json").env(name, value), 2);
        assert!(is_json(r.line()), "{name}={value:?}: {}", r.stderr);
        assert!(r.line().contains("\"level\":\"error\""), "{}", r.stderr);
        let r = run(g
            .cmd("healthcheck")
            .env("TREESEAL_LOG", "json")
            .env(name, value));
        r.code(1);
        assert!(is_json(r.stdout.trim_end()), "{}", r.stdout);
        assert!(r.stdout.contains("unhealthy: cannot check"), "{}", r.stdout);
    }
    // A command line clap rejects: only the environment can ask for JSON, and it does.
    let r = g.refuses(g.cmd("run").env("TREESEAL_LOG", "json").arg("--bogus"), 2);
    assert!(is_json(r.line()), "{}", r.stderr);
    let r = run(g
        .cmd("healthcheck")
        .env("TREESEAL_LOG", "json")
        .arg("--bogus"));
    r.code(1);
    assert!(is_json(r.stdout.trim_end()), "{}", r.stdout);
    // Success, the missing-digest warning, and the healthcheck's line.
    let mut c = g.cmd("run");
    c.env("TREESEAL_LOG", "json")
        .env_remove("TREESEAL_DIGEST")
        .args(["--", "true"]);
    let r = run(&mut c);
    r.code(0);
    assert!(
        is_json(r.line()) && r.line().contains("\"level\":\"warn\""),
        "{}",
        r.stderr
    );
    let r = run(g.cmd("healthcheck").env("TREESEAL_LOG", "json"));
    r.code(0);
    assert!(is_json(r.stdout.trim_end()), "{}", r.stdout);
}

#[test]
fn a_snapshot_anyone_else_could_have_written_is_not_believed() {
    use std::os::unix::fs::PermissionsExt;
    let g = Gate::new();
    let state = g.state.path().join("state");
    let mut c = g.cmd("run");
    c.args(["--", "true"]);
    run(&mut c).code(0);
    let mode = fs::metadata(&state).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "the snapshot is private: {mode:o}");
    let r = g.health(&[]);
    r.code(0);
    assert!(r.stdout.contains("(cheap check: "), "{}", r.stdout);

    // Writable by others: whoever could write it decides what it says. Full check + note.
    fs::set_permissions(&state, fs::Permissions::from_mode(0o666)).unwrap();
    let r = g.health(&[]);
    r.code(0);
    assert!(
        r.stdout.contains("(full check: ")
            && r.stdout
                .contains("is writable by group or others (mode 0666), so it was not used"),
        "{}",
        r.stdout
    );
    fs::set_permissions(&state, fs::Permissions::from_mode(0o600)).unwrap();

    // Owned by someone else (needs root to give it away).
    if nix::unistd::geteuid().is_root() {
        std::os::unix::fs::chown(&state, Some(65534), None).unwrap();
        let r = g.health(&[]);
        r.code(0);
        assert!(
            r.stdout.contains("(full check: ") && r.stdout.contains("belongs to uid 65534"),
            "{}",
            r.stdout
        );
        // A changed tree is unhealthy whatever a foreign snapshot says.
        g.tree.file("app/views.py", "changed\n");
        let r = g.health(&[]);
        r.code(1);
        assert!(
            r.stdout.contains("content differs: app/views.py"),
            "{}",
            r.stdout
        );
    } else {
        eprintln!("SKIPPED: foreign-owned snapshot: needs root to chown");
    }
}

#[test]
fn a_snapshot_path_that_is_a_symlink_is_neither_followed_nor_believed() {
    let g = Gate::new();
    let state = g.state.path().join("state");
    let elsewhere = g.state.path().join("elsewhere");
    std::os::unix::fs::symlink(&elsewhere, &state).unwrap();
    let mut c = g.cmd("run");
    c.args(["--", "true"]);
    run(&mut c).code(0);
    // `run` replaced the link with its own file (rename), never wrote through it.
    assert!(!elsewhere.exists());
    assert!(!fs::symlink_metadata(&state).unwrap().is_symlink());
    let r = g.health(&[]);
    r.code(0);
    assert!(r.stdout.contains("(cheap check: "), "{}", r.stdout);
}

/// Probes with a fixed window and slice until one is unhealthy; returns the 1-based
/// number of that probe, its line, and the stamp bound the first probe's `--explain`
/// stated. Every probe before it must be healthy.
fn probes_until_unhealthy(g: &Gate, window: &str, slice: &str) -> (usize, String, usize) {
    let mut bound = None;
    for n in 1..=50 {
        let r = run(g
            .cmd("healthcheck")
            .arg("--explain")
            .env("TREESEAL_HEALTH_WINDOW", window)
            .env("TREESEAL_HEALTH_SLICE", slice));
        if r.code == 1 {
            return (n, r.stdout, bound.expect("a healthy probe first"));
        }
        r.code(0);
        let explain = r
            .stdout
            .lines()
            .nth(1)
            .expect("an explain line")
            .to_string();
        let within = explain
            .split("moves a timestamp is found within ")
            .nth(1)
            .and_then(|t| t.split(' ').next())
            .and_then(|t| t.parse::<usize>().ok())
            .unwrap_or_else(|| panic!("no bound in {explain}"));
        bound.get_or_insert(within);
    }
    panic!("never unhealthy");
}

#[test]
fn windows_cover_paths_before_the_first_entry_between_entries_and_after_the_last() {
    // The sample's entries run from README to var/empty; `AAA` sorts before all of them,
    // `c-extra` between bin/start and current, `zzz` after var/empty.
    for extra in ["AAA", "c-extra", "zzz", "var/empty/x"] {
        let g = Gate::new();
        let mut c = g.cmd("run");
        c.args(["--", "true"]);
        run(&mut c).code(0);
        // The first probe leaves the cursor after two entries, so the windows that follow
        // do not start at the beginning.
        run(g
            .cmd("healthcheck")
            .env("TREESEAL_HEALTH_WINDOW", "2")
            .env("TREESEAL_HEALTH_SLICE", "1"))
        .code(0);
        g.tree.file(extra, "planted");
        let (n, line, bound) = probes_until_unhealthy(&g, "2", "1");
        assert!(
            line.starts_with(&format!(
                "unhealthy: {} differs from its manifest: extra file: {extra}",
                g.tree.path().display()
            )),
            "{line}"
        );
        assert!(n <= bound, "{extra}: found by probe {n}, bound {bound}");
    }
}

#[test]
fn a_budget_too_small_for_the_tree_still_converges() {
    let g = Gate::new();
    let mut c = g.cmd("run");
    c.args(["--", "true"]);
    run(&mut c).code(0);
    // One entry's stamps and one file per probe: every probe covers part of the tree.
    let r = run(g
        .cmd("healthcheck")
        .env("TREESEAL_HEALTH_BUDGET", "1")
        .env("TREESEAL_HEALTH_WINDOW", "1")
        .env("TREESEAL_HEALTH_SLICE", "1"));
    r.code(0);
    assert!(
        r.stdout.contains("(cheap check: stamps of 1 of 10 entries"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains(" carried, "), "{}", r.stdout);
    // The last file in path order, changed in content only (same size).
    g.tree.file("bin/start", "#!/bin/sh\nexec python -m evl\n");
    let (n, line, _) = probes_until_unhealthy(&g, "1", "1");
    assert!(
        line.contains("content differs: bin/start (same size)"),
        "{line}"
    );
    // These files are too new for stamps, so every one is hashed in turn: at one file
    // per probe, the sample's five files take at most five probes, and one more when the
    // slice had just passed the changed file.
    assert!(n <= 6, "found by probe {n}");
}

#[test]
fn a_bad_budget_or_knob_is_unhealthy_with_one_line() {
    let g = Gate::new();
    for (name, value) in [
        ("TREESEAL_HEALTH_BUDGET", ""),
        ("TREESEAL_HEALTH_BUDGET", " "),
        ("TREESEAL_HEALTH_BUDGET", "0"),
        ("TREESEAL_HEALTH_BUDGET", "soon"),
        ("TREESEAL_HEALTH_BUDGET", "60001"),
        ("TREESEAL_HEALTH_BUDGET", "184467440737095516160"),
        ("TREESEAL_HEALTH_WINDOW", "0"),
        ("TREESEAL_HEALTH_SLICE", "lots"),
    ] {
        let r = run(g.cmd("healthcheck").env(name, value));
        r.code(1);
        assert_eq!(r.stdout.lines().count(), 1, "{}", r.stdout);
        assert!(
            r.stdout
                .starts_with(&format!("unhealthy: cannot check: {name}")),
            "{}",
            r.stdout
        );
    }
    for value in ["", "0", "1s", "60001"] {
        let r = g.health(&["--budget", value]);
        r.code(1);
        assert!(
            r.stdout.starts_with("unhealthy: cannot check: --budget="),
            "{}",
            r.stdout
        );
    }
    g.health(&["--budget", "60000"]).code(0);
}

/// Makes a directory immutable (`chattr +i`) while it lives; `None` where that is not
/// possible (not root, or a file system without the attribute).
struct Immutable<'a>(&'a Path);

impl<'a> Immutable<'a> {
    fn new(dir: &'a Path) -> Option<Immutable<'a>> {
        let set = Command::new("chattr")
            .arg("+i")
            .arg(dir)
            .stderr(Stdio::null())
            .status();
        set.is_ok_and(|s| s.success()).then_some(Immutable(dir))
    }
}

impl Drop for Immutable<'_> {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(self.0).status();
    }
}

#[test]
fn a_probe_that_cannot_record_its_progress_is_unhealthy() {
    let g = Gate::new();
    let mut c = g.cmd("run");
    c.args(["--", "true"]);
    run(&mut c).code(0);
    // The snapshot stays readable; only replacing it fails.
    let Some(_immutable) = Immutable::new(g.state.path()) else {
        eprintln!("SKIPPED: chattr +i needs root and a file system that supports it");
        return;
    };
    let r = g.health(&[]);
    r.code(1);
    assert_eq!(r.stdout.lines().count(), 1, "{}", r.stdout);
    assert!(
        r.stdout
            .starts_with("unhealthy: cannot check: cannot write the probe's progress to "),
        "{}",
        r.stdout
    );
}

#[test]
fn the_gate_and_the_probes_leave_access_times_alone() {
    let g = Gate::new();
    let Some(aged) = common::AgedAtimes::of(g.tree.path()) else {
        eprintln!("SKIPPED: access times: this file system does not record reads");
        return;
    };
    // Without a snapshot the probe hashes everything; after `run` it checks metadata.
    g.health(&[]).code(0);
    let mut c = g.cmd("run");
    c.args(["--", "true"]);
    run(&mut c).code(0);
    g.health(&[]).code(0);
    g.health(&["--full"]).code(0);
    assert_eq!(aged.changed(), None);
}
