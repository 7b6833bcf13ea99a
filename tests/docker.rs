//! End-to-end tests of the Docker side (`docker/`): they build the images of `docker/` and
//! `docker/examples/` with the docker CLI, from the files as they are in the repository,
//! and run them the way a user would. One test per scenario of issue 4.
//!
//! Run: `cargo test --test docker -- --test-threads=1` (about a minute and a half here).
//!
//! Needs a Docker engine, a static busybox at `/bin/busybox` (Debian's `busybox-static`:
//! nothing can be pulled, so every image is built `FROM scratch`), a static tini at
//! `/usr/bin/tini-static` (Debian's `tini`) and git. Without them
//! every test prints `SKIPPED: ...` to stderr and returns; with `TREESEAL_REQUIRE_DOCKER=1`
//! (CI) it fails instead.
//!
//! The treeseal binary is the one cargo built for this test run (`CARGO_BIN_EXE_treeseal`):
//! `.cargo/config.toml` makes every binary static, the debug one too, and the tests check
//! that it is (a dynamic binary cannot run `FROM scratch`). `TREESEAL_DOCKER_BIN=PATH`
//! runs them with another binary, e.g. the release one.
//!
//! Builds use the legacy builder (`DOCKER_BUILDKIT=0`): the only builder of this engine
//! (20.10 daemon, no buildx plugin); cache hits show as ` ---> Using cache`.
//!
//! Every image and container is named `treeseal-test-<pid>-...` and removed when the test
//! that made it ends, pass or fail (a drop guard); images shared by the tests are removed
//! by the last test to end. Leftovers of runs that were killed are removed by the next run.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// Debian's static tini (package `tini`), the init of `docker/examples/tini`.
const TINI: &str = "/usr/bin/tini-static";

/// The number of `#[test]` functions below: the last one to end removes the shared images.
const TESTS: usize = 10;
static TESTS_LEFT: AtomicUsize = AtomicUsize::new(TESTS);

/// Name prefix of everything this run creates.
fn run_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| format!("treeseal-test-{}", std::process::id()))
}

// ---------------------------------------------------------------------------------------
// Environment: engine, busybox, binary.

/// Whether the tests can run here; otherwise says so loudly (or fails under CI).
fn ready(test: &str) -> bool {
    static CHECK: OnceLock<Result<(), String>> = OnceLock::new();
    common::engine_ready(CHECK.get_or_init(check_environment), "Docker", test)
}

fn check_environment() -> Result<(), String> {
    match Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .output()
    {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            return Err(format!(
                "no Docker engine (docker info: {})",
                first_line(&String::from_utf8_lossy(&out.stderr))
            ))
        }
        Err(e) => return Err(format!("no Docker engine (cannot run docker: {e})")),
    }
    if !Path::new("/bin/busybox").is_file() || has_interpreter(Path::new("/bin/busybox")) {
        return Err("no static busybox at /bin/busybox (apt-get install busybox-static)".into());
    }
    if !Path::new(TINI).is_file() || has_interpreter(Path::new(TINI)) {
        return Err(format!("no static tini at {TINI} (apt-get install tini)"));
    }
    if !Command::new("git")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Err("no git".into());
    }
    sweep_dead_runs();
    Ok(())
}

/// The treeseal binary under test; panics when it is not static.
fn treeseal_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let bin = std::env::var_os("TREESEAL_DOCKER_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_treeseal")));
        assert!(
            !has_interpreter(&bin),
            "{} is dynamically linked, so it cannot run FROM scratch: build with \
             .cargo/config.toml's +crt-static target settings (readelf -l shows INTERP)",
            bin.display()
        );
        bin
    })
}

/// Whether an ELF file asks for a program interpreter (PT_INTERP): a dynamic executable.
fn has_interpreter(path: &Path) -> bool {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert!(
        bytes.len() > 64 && &bytes[..4] == b"\x7fELF" && bytes[4] == 2,
        "not ELF64"
    );
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(bytes[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).any(|i| {
        let o = phoff + i * phentsize;
        u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap()) == 3 // PT_INTERP
    })
}

// ---------------------------------------------------------------------------------------
// Commands.

fn first_line(text: &str) -> &str {
    text.lines().find(|l| !l.trim().is_empty()).unwrap_or("")
}

/// A line of build output without the legacy builder's colour codes (ESC [ .. m).
fn plain(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(i) = rest.find('\x1b') {
        out.push_str(&rest[..i]);
        rest = rest[i..].find('m').map_or("", |j| &rest[i + j + 1..]);
    }
    out.push_str(rest);
    out
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn docker(args: &[&str]) -> Output {
    Command::new("docker")
        .args(args)
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .expect("run docker")
}

/// Runs docker and returns stdout, panicking with both streams on failure.
fn docker_ok(args: &[&str]) -> String {
    let out = docker(args);
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "docker {args:?} failed:\n{stdout}\n{stderr}"
    );
    stdout
}

/// A treeseal command with the origin variables cleared, so `lock` records the checkout's
/// git HEAD (or `--source`) and the real time, whatever CI sets.
fn treeseal(args: &[&str]) -> Command {
    let mut cmd = Command::new(treeseal_bin());
    cmd.args(args);
    for var in [
        "TREESEAL_SOURCE",
        "SOURCE_COMMIT",
        "GITHUB_SHA",
        "CI_COMMIT_SHA",
        "SOURCE_DATE_EPOCH",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// `treeseal lock DIR [ARGS]`: the digest it prints.
fn lock(dir: &Path, extra: &[&str]) -> String {
    let out = treeseal(&["lock", dir.to_str().unwrap()])
        .args(extra)
        .output()
        .expect("run treeseal");
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "treeseal lock {}: {stderr}",
        dir.display()
    );
    let digest = stdout.trim().to_string();
    assert!(
        digest.starts_with("blake3:") && digest.len() == 71,
        "{digest:?}"
    );
    digest
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=treeseal test",
            "-c",
            "user.email=test@treeseal.invalid",
        ])
        .args([
            "-c",
            "commit.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .output()
        .expect("run git");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "git {args:?}: {stderr}");
    stdout.trim().to_string()
}

/// `sh -c SCRIPT` (for `umask`), panicking on failure.
fn sh(script: &str) {
    let out = Command::new("sh")
        .args(["-c", script])
        .output()
        .expect("run sh");
    assert!(out.status.success(), "sh -c {script:?}: {}", text(&out).1);
}

/// Copies a directory tree, keeping permission bits.
fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &dest);
        } else {
            fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

fn example(name: &str) -> PathBuf {
    Path::new(REPO).join("docker/examples").join(name)
}

/// Polls `probe` until it returns Some, or panics after `limit` saying what it waited for.
fn wait_for<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

// ---------------------------------------------------------------------------------------
// Scope: what one test (or the shared fixture) created, removed on drop.

struct Scope {
    prefix: String,
    containers: Mutex<Vec<String>>,
    images: Mutex<Vec<String>>,
    /// Image ids seen in build output: intermediate images a failed build leaves behind.
    layers: Mutex<Vec<String>>,
    dirs: Mutex<Vec<PathBuf>>,
    /// Counts down TESTS_LEFT on drop (a test's scope; not the shared one).
    counts: bool,
}

/// The legacy builder's view of one build.
struct Build {
    ok: bool,
    log: String,
}

impl Build {
    /// The output lines of the step running `instruction` (up to the next step).
    fn step(&self, instruction: &str) -> Vec<&str> {
        let mut lines = self.log.lines().skip_while(|l| {
            !(l.starts_with("Step ") && l.split_once(" : ").is_some_and(|(_, i)| i == instruction))
        });
        let first = lines
            .next()
            .unwrap_or_else(|| panic!("no step {instruction:?}:\n{}", self.log));
        std::iter::once(first)
            .chain(lines.take_while(|l| !l.starts_with("Step ")))
            .collect()
    }

    /// Whether the step was served from the build cache (` ---> Using cache`).
    fn cached(&self, instruction: &str) -> bool {
        self.step(instruction)
            .iter()
            .any(|l| l.trim() == "---> Using cache")
    }

    /// The image id the step produced (the last ` ---> <id>` of the step).
    fn layer(&self, instruction: &str) -> String {
        self.step(instruction)
            .iter()
            .rev()
            .find_map(|l| image_id(l))
            .unwrap_or_else(|| panic!("step {instruction:?} made no image:\n{}", self.log))
    }
}

/// The id in a ` ---> 0123456789ab` line.
fn image_id(line: &str) -> Option<String> {
    let id = line.trim().strip_prefix("---> ")?;
    (id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_string())
}

impl Scope {
    fn new(name: &str, counts: bool) -> Scope {
        Scope {
            prefix: format!("{}-{name}", run_id()),
            containers: Mutex::new(vec![]),
            images: Mutex::new(vec![]),
            layers: Mutex::new(vec![]),
            dirs: Mutex::new(vec![]),
            counts,
        }
    }

    /// A test's scope.
    fn test(name: &str) -> Scope {
        Scope::new(name, true)
    }

    /// An image tag in this scope.
    fn tag(&self, name: &str) -> String {
        let tag = format!("{}-{name}:test", self.prefix);
        self.images.lock().unwrap().push(tag.clone());
        tag
    }

    /// A container name in this scope.
    fn container(&self, name: &str) -> String {
        let name = format!("{}-{name}", self.prefix);
        self.containers.lock().unwrap().push(name.clone());
        name
    }

    /// A fresh scratch directory, removed with the scope.
    fn dir(&self, name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("{}-{name}", self.prefix));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        self.dirs.lock().unwrap().push(dir.clone());
        dir
    }

    /// `docker build` of `context` as `tag` with build args and an optional `--target`.
    fn build(
        &self,
        context: &Path,
        tag: &str,
        args: &[(&str, &str)],
        target: Option<&str>,
    ) -> Build {
        let mut cmd = Command::new("docker");
        cmd.env("DOCKER_BUILDKIT", "0")
            .args(["build", "--force-rm", "-t", tag]);
        if let Some(t) = target {
            cmd.args(["--target", t]);
        }
        for (k, v) in args {
            cmd.arg("--build-arg").arg(format!("{k}={v}"));
        }
        let out = cmd.arg(context).output().expect("run docker build");
        let (stdout, stderr) = text(&out);
        let log = format!("{stdout}{stderr}");
        self.layers
            .lock()
            .unwrap()
            .extend(log.lines().filter_map(image_id));
        Build {
            ok: out.status.success(),
            log,
        }
    }

    /// Like [`Scope::build`], panicking when the build fails.
    fn build_ok(
        &self,
        context: &Path,
        tag: &str,
        args: &[(&str, &str)],
        target: Option<&str>,
    ) -> Build {
        let build = self.build(context, tag, args, target);
        assert!(
            build.ok,
            "docker build of {} failed:\n{}",
            context.display(),
            build.log
        );
        build
    }

    fn cleanup(&self) {
        for c in self.containers.lock().unwrap().drain(..) {
            let _ = docker(&["rm", "-f", "-v", &c]);
        }
        let images: Vec<String> = self.images.lock().unwrap().drain(..).collect();
        if !images.is_empty() {
            let mut args = vec!["rmi", "-f"];
            args.extend(images.iter().map(String::as_str));
            let _ = docker(&args);
        }
        // Intermediate images a failed build left behind: only untagged ones, and only
        // when nothing is built on them (`docker rmi` refuses otherwise).
        for id in self.layers.lock().unwrap().drain(..) {
            let tags = docker(&["image", "inspect", "-f", "{{len .RepoTags}}", &id]);
            if tags.status.success() && text(&tags).0.trim() == "0" {
                let _ = docker(&["rmi", &id]);
            }
        }
        for dir in self.dirs.lock().unwrap().drain(..) {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        self.cleanup();
        if self.counts && TESTS_LEFT.fetch_sub(1, Ordering::SeqCst) == 1 {
            if let Some(shared) = SHARED_SCOPE.get() {
                shared.cleanup();
            }
        }
    }
}

/// Removes containers and images of earlier runs whose process is gone.
fn sweep_dead_runs() {
    let dead = |name: &str| -> bool {
        let Some(rest) = name.strip_prefix("treeseal-test-") else {
            return false;
        };
        let pid: String = rest.chars().take_while(char::is_ascii_digit).collect();
        !pid.is_empty()
            && pid != std::process::id().to_string()
            && !Path::new("/proc").join(&pid).exists()
    };
    let containers = text(&docker(&["ps", "-a", "--format", "{{.Names}}"])).0;
    for name in containers.lines().filter(|n| dead(n)) {
        let _ = docker(&["rm", "-f", "-v", name]);
    }
    let images = text(&docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"])).0;
    for name in images.lines().filter(|n| dead(n)) {
        let _ = docker(&["rmi", "-f", name]);
    }
    if let Ok(entries) = fs::read_dir(std::env::temp_dir()) {
        for e in entries.flatten() {
            if dead(&e.file_name().to_string_lossy()) {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The shared fixture: the treeseal image, the base image (v2.0) and the app, built once.

static SHARED_SCOPE: OnceLock<Scope> = OnceLock::new();

fn shared_scope() -> &'static Scope {
    SHARED_SCOPE.get_or_init(|| {
        // Removed when the test process exits, however many tests ran (a filtered run
        // too); the last test to end also removes them (see Drop for Scope).
        extern "C" fn at_exit() {
            if let Some(shared) = SHARED_SCOPE.get() {
                shared.cleanup();
            }
        }
        // SAFETY: registers a plain function; it only runs docker and removes files.
        unsafe { nix::libc::atexit(at_exit) };
        Scope::new("shared", false)
    })
}

struct Fixture {
    treeseal_image: String,
    base_image: String,
    /// The digest the base's release publishes for its /deps (what apps pin).
    deps_digest: String,
    /// A repository with the app at two commits: `old_sha` (seed 000: settings.sh has no
    /// AWS_REGION yet) and `new_sha` (docker/examples/app as it is).
    repo: PathBuf,
    old_sha: String,
    new_sha: String,
    /// A checkout of `new_sha`, locked.
    app: PathBuf,
    app_digest: String,
    /// docker/examples/app built from `app`: the good image.
    app_image: String,
}

impl Fixture {
    /// The build args of the app example for the shared images.
    fn app_args<'a>(&'a self, digest: &'a str) -> Vec<(&'a str, &'a str)> {
        vec![
            ("TREESEAL_IMAGE", &self.treeseal_image),
            ("BASE_IMAGE", &self.base_image),
            ("TREESEAL_DIGEST", digest),
            ("DEPS_DIGEST", &self.deps_digest),
        ]
    }

    /// A fresh checkout of `commit` in `dir` (a clone: `.git` included, as in CI).
    fn checkout(&self, dir: &Path, commit: &str) {
        git(
            Path::new("/"),
            &[
                "clone",
                "-q",
                self.repo.to_str().unwrap(),
                dir.to_str().unwrap(),
            ],
        );
        git(dir, &["checkout", "-q", commit]);
    }
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let s = shared_scope();

        // The treeseal image, with the documented command.
        let treeseal_image = s.tag("treeseal");
        let out = Command::new(Path::new(REPO).join("docker/build-image"))
            .arg(&treeseal_image)
            .env("TREESEAL_BIN", treeseal_bin())
            .env("DOCKER_BUILDKIT", "0")
            .output()
            .expect("run docker/build-image");
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "docker/build-image: {stdout}{stderr}");
        assert!(stdout.contains("treeseal 0.1"), "{stdout}");

        // The base image, release 2.0, its /deps sealed before the build.
        let base = s.dir("base");
        copy_tree(&example("base"), &base);
        fs::copy("/bin/busybox", base.join("busybox")).unwrap();
        let deps_digest = lock(&base.join("deps"), &["--source", "base-2.0"]);
        let base_image = s.tag("base");
        s.build_ok(&base, &base_image, &[], None);

        // The app's history: the old commit lacks the settings field, as in seed 000.
        let repo = s.dir("repo");
        git(&repo, &["init", "-q"]);
        copy_tree(&example("app"), &repo);
        let settings = fs::read_to_string(repo.join("settings.sh")).unwrap();
        let old_settings: String = settings
            .lines()
            .filter(|l| !l.starts_with("AWS_REGION="))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_ne!(settings, old_settings, "settings.sh has no AWS_REGION line");
        fs::write(repo.join("settings.sh"), old_settings).unwrap();
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-q", "-m", "app without AWS_REGION"]);
        let old_sha = git(&repo, &["rev-parse", "HEAD"]);
        fs::write(repo.join("settings.sh"), settings).unwrap();
        git(&repo, &["commit", "-q", "-am", "add AWS_REGION"]);
        let new_sha = git(&repo, &["rev-parse", "HEAD"]);

        let mut f = Fixture {
            treeseal_image,
            base_image,
            deps_digest,
            repo,
            old_sha,
            new_sha,
            app: PathBuf::new(),
            app_digest: String::new(),
            app_image: s.tag("app"),
        };
        f.app = s.dir("checkout-new");
        fs::remove_dir(&f.app).unwrap();
        f.checkout(&f.app, &f.new_sha.clone());
        f.app_digest = lock(&f.app, &[]);
        let build = s.build_ok(&f.app, &f.app_image, &f.app_args(&f.app_digest), None);
        assert!(
            build.log.contains("treeseal: verified /app"),
            "{}",
            build.log
        );
        f
    })
}

/// Seed 000's stale image: built from the previous commit's checkout (what a stale cached
/// `COPY . /app` layer holds) while the build arg carries the new checkout's digest.
struct Stale {
    /// The full build (with the build-time check): expected to fail.
    full: Build,
    /// The `runtime` stage of that build (no build-time check), tagged.
    image: String,
}

fn stale() -> &'static Stale {
    static STALE: OnceLock<Stale> = OnceLock::new();
    STALE.get_or_init(|| {
        let f = fixture();
        let s = shared_scope();
        let old = s.dir("checkout-old");
        fs::remove_dir(&old).unwrap();
        f.checkout(&old, &f.old_sha);
        lock(&old, &[]);
        let args = f.app_args(&f.app_digest);
        let full = s.build(&old, &s.tag("stale-full"), &args, None);
        let image = s.tag("stale");
        s.build_ok(&old, &image, &args, Some("runtime"));
        Stale { full, image }
    })
}

/// `docker run --name NAME [OPTS] IMAGE` in the foreground: (exit code, stdout, stderr).
fn run_to_exit(scope: &Scope, name: &str, opts: &[&str], image: &str) -> (i32, String, String) {
    let name = scope.container(name);
    let mut args = vec!["run", "--name", &name];
    args.extend_from_slice(opts);
    args.push(image);
    let out = docker(&args);
    let (stdout, stderr) = text(&out);
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

/// Starts a detached container with a 1 s healthcheck interval.
fn start(scope: &Scope, name: &str, image: &str) -> String {
    let name = scope.container(name);
    docker_ok(&["run", "-d", "--name", &name, "--health-interval=1s", image]);
    name
}

fn health(container: &str) -> String {
    docker_ok(&["inspect", "-f", "{{.State.Health.Status}}", container])
        .trim()
        .to_string()
}

/// The output of the latest healthcheck run.
fn last_health_output(container: &str) -> String {
    // Docker's templates have no arithmetic: print every entry, keep the last.
    let all = docker_ok(&[
        "inspect",
        "-f",
        "{{range .State.Health.Log}}{{.Output}}\u{1e}{{end}}",
        container,
    ]);
    all.split('\u{1e}')
        .map(str::trim)
        .rfind(|o| !o.is_empty())
        .unwrap_or("")
        .to_string()
}

fn logs(container: &str) -> String {
    let (stdout, stderr) = text(&docker(&["logs", container]));
    format!("{stdout}{stderr}")
}

// ---------------------------------------------------------------------------------------
// The scenarios.

/// Scenario 1: A fresh build starts; the app is PID 1; the healthcheck says healthy; `docker stop`
/// reaches the app directly.
#[test]
fn fresh_build_starts_as_pid_1_and_is_healthy() {
    let scope = Scope::test("fresh");
    if !ready("fresh_build_starts_as_pid_1_and_is_healthy") {
        return;
    }
    let f = fixture();
    let c = start(&scope, "app", &f.app_image);

    let line = wait_for("the app's first line", Duration::from_secs(20), || {
        logs(&c)
            .lines()
            .find(|l| l.starts_with("app: pid"))
            .map(str::to_string)
    });
    eprintln!("{line}");
    assert!(
        line.starts_with("app: pid 1, example in us-east-1"),
        "{line}"
    );
    let log = logs(&c);
    assert!(
        log.contains(&format!("treeseal: verified /app {}", f.app_digest)),
        "{log}"
    );
    assert!(log.contains(&format!("/deps {}", f.deps_digest)), "{log}");

    wait_for("healthy", Duration::from_secs(30), || {
        match health(&c).as_str() {
            "healthy" => Some(()),
            "starting" => None,
            other => panic!("health {other}: {}", last_health_output(&c)),
        }
    });
    eprintln!("{}", last_health_output(&c).trim());

    // PID 1 gets SIGTERM itself: the app's trap runs and the stop is quick.
    let t = Instant::now();
    docker_ok(&["stop", "-t", "20", &c]);
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "stop took {:?}",
        t.elapsed()
    );
    assert!(logs(&c).contains("app: stopping"), "{}", logs(&c));

    // The minimal example: FROM scratch, no shell; busybox httpd serves the sealed /app.
    let site = scope.dir("minimal");
    copy_tree(&example("minimal"), &site);
    let digest = lock(&site, &["--source", "site"]);
    let image = scope.tag("minimal");
    let args = [
        ("TREESEAL_IMAGE", f.treeseal_image.as_str()),
        ("BASE_IMAGE", f.base_image.as_str()),
        ("TREESEAL_DIGEST", digest.as_str()),
    ];
    scope.build_ok(&site, &image, &args, None);
    let name = scope.container("minimal");
    docker_ok(&["run", "-d", "--name", &name, &image]);
    let page = wait_for("the minimal site", Duration::from_secs(20), || {
        let out = docker(&[
            "exec",
            &name,
            "/bin/busybox",
            "wget",
            "-qO-",
            "http://127.0.0.1:8080/",
        ]);
        out.status.success().then(|| text(&out).0)
    });
    assert!(page.contains("Served from a sealed /app."), "{page}");
    let cmdline = docker_ok(&["exec", &name, "/bin/busybox", "cat", "/proc/1/cmdline"]);
    assert!(
        cmdline.starts_with("/bin/busybox\0httpd"),
        "PID 1 is {cmdline:?}"
    );
    assert!(
        logs(&name).contains(&format!("treeseal: verified /app {digest}")),
        "{}",
        logs(&name)
    );

    // The same image built without the digest build arg: `ENV TREESEAL_DIGEST=${...}` sets
    // it to the empty string, which is refused at start (never read as "not set").
    let no_arg = scope.tag("minimal-no-digest");
    scope.build_ok(&site, &no_arg, &args[..2], None);
    // A command that exits at once, so a gate that let it through fails the test, not hangs it.
    let name = scope.container("minimal-no-digest");
    let out = docker(&["run", "--name", &name, &no_arg, "/bin/busybox", "true"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(
        first_line(&stderr).contains("TREESEAL_DIGEST is set but empty"),
        "{stderr}"
    );
}

/// Scenario 2: Seed 000: /app from the previous commit, the build arg from the new one. The
/// build-time check fails the build; the image without it refuses to start and says where its files
/// came from.
#[test]
fn stale_copy_fails_the_build_and_refuses_to_start() {
    let scope = Scope::test("stale");
    if !ready("stale_copy_fails_the_build_and_refuses_to_start") {
        return;
    }
    let f = fixture();
    let st = stale();

    assert!(
        !st.full.ok,
        "the build-time check let a stale /app through:\n{}",
        st.full.log
    );
    let refusal = st
        .full
        .log
        .lines()
        .find(|l| l.contains("treeseal: refusing"))
        .map(plain)
        .unwrap_or_else(|| panic!("no refusal in the build log:\n{}", st.full.log));
    eprintln!("build: {refusal}");
    assert!(refusal.contains("different source tree"), "{refusal}");
    assert!(
        st.full.log.contains("returned a non-zero code: 1"),
        "{}",
        st.full.log
    );

    let (code, stdout, stderr) = run_to_exit(&scope, "run", &[], &st.image);
    eprintln!("run: exit {code}: {}", stderr.trim());
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(!stdout.contains("app: pid"), "the stale app ran: {stdout}");
    let line = first_line(&stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(
        line.contains(
            "this image's files come from a different source tree than the one it was built from"
        ),
        "{line}"
    );
    assert!(
        line.contains(&format!("expected {}", f.app_digest)),
        "{line}"
    );
    assert!(
        line.contains(&format!("commit {}", f.old_sha)),
        "origin missing: {line}"
    );
    assert!(line.contains(" at 20"), "lock time missing: {line}");
    assert!(line.contains("without the build cache"), "{line}");
}

/// Scenario 3: Seed 002: a layer that lost files. The container refuses and names the first missing
/// file; an empty /app never passes.
#[test]
fn layer_that_lost_files_refuses_and_names_the_first() {
    let scope = Scope::test("lost");
    if !ready("layer_that_lost_files_refuses_and_names_the_first") {
        return;
    }
    let f = fixture();
    let args = f.app_args(&f.app_digest);

    // The manifest made it into the layer, the files did not.
    let lost = scope.dir("checkout");
    fs::remove_dir(&lost).unwrap();
    f.checkout(&lost, &f.new_sha);
    assert_eq!(lock(&lost, &[]), f.app_digest);
    fs::remove_file(lost.join("app.sh")).unwrap();
    fs::remove_file(lost.join("settings.sh")).unwrap();
    let image = scope.tag("lost");
    let full = scope.build(&lost, &scope.tag("lost-full"), &args, None);
    assert!(!full.ok, "the build-time check let a partial /app through");
    assert!(full.log.contains("missing file: app.sh"), "{}", full.log);
    scope.build_ok(&lost, &image, &args, Some("runtime"));
    let (code, stdout, stderr) = run_to_exit(&scope, "lost", &[], &image);
    eprintln!("lost files: exit {code}: {}", stderr.trim());
    assert_eq!(code, 1, "{stdout}{stderr}");
    let line = first_line(&stderr);
    assert!(
        line.contains("/app differs from its manifest: missing file: app.sh"),
        "{line}"
    );
    assert!(!stdout.contains("app: pid"), "{stdout}");

    // A build that forgot the digest build arg: the check fails closed, the build fails.
    let no_arg: Vec<(&str, &str)> = args
        .iter()
        .filter(|(k, _)| *k != "TREESEAL_DIGEST")
        .cloned()
        .collect();
    let full = scope.build(&f.app, &scope.tag("no-digest"), &no_arg, None);
    assert!(
        !full.ok,
        "a build without TREESEAL_DIGEST passed:\n{}",
        full.log
    );
    assert!(
        full.log.contains("is not a digest of the form blake3:"),
        "{}",
        full.log
    );

    // Nothing at all in /app (seed 002's 0 B layer): no manifest, no start.
    let empty = scope.dir("empty");
    fs::copy(lost.join("Dockerfile"), empty.join("Dockerfile")).unwrap();
    fs::copy(lost.join(".dockerignore"), empty.join(".dockerignore")).unwrap();
    let image = scope.tag("empty");
    scope.build_ok(&empty, &image, &args, Some("runtime"));
    let listing = docker_ok(&[
        "run",
        "--rm",
        "--entrypoint",
        "/bin/ls",
        &image,
        "-A",
        "/app",
    ]);
    assert_eq!(listing.trim(), "", "/app is not empty");
    let (code, stdout, stderr) = run_to_exit(&scope, "empty", &[], &image);
    eprintln!("empty /app: exit {code}: {}", stderr.trim());
    assert_ne!(code, 0, "an empty /app passed: {stdout}{stderr}");
    assert_eq!(code, 2, "{stderr}");
    assert!(first_line(&stderr).contains("/app/.treeseal"), "{stderr}");
    assert!(!stdout.contains("app: pid"), "{stdout}");
}

/// Scenario 4: Seed 003: the app is built on a stale local copy of the base tag; the base's /deps
/// is sealed with its own digest, which the app pins: refused, naming /deps.
#[test]
fn stale_base_image_dependency_tree_is_refused() {
    let scope = Scope::test("base");
    if !ready("stale_base_image_dependency_tree_is_refused") {
        return;
    }
    let f = fixture();

    // Release 1.0 of the base, still under the tag on this machine.
    let old = scope.dir("base-1.0");
    copy_tree(&example("base"), &old);
    fs::copy("/bin/busybox", old.join("busybox")).unwrap();
    let greeting = old.join("deps/lib/greeting.sh");
    let v2 = fs::read_to_string(&greeting).unwrap();
    assert!(v2.contains("greeting 2.0"), "{v2}");
    fs::write(&greeting, v2.replace("greeting 2.0", "greeting 1.0")).unwrap();
    let old_digest = lock(&old.join("deps"), &["--source", "base-1.0"]);
    assert_ne!(old_digest, f.deps_digest);
    let stale_base = scope.tag("base");
    scope.build_ok(&old, &stale_base, &[], None);

    let args = vec![
        ("TREESEAL_IMAGE", f.treeseal_image.as_str()),
        ("BASE_IMAGE", stale_base.as_str()),
        ("TREESEAL_DIGEST", f.app_digest.as_str()),
        ("DEPS_DIGEST", f.deps_digest.as_str()),
    ];
    let full = scope.build(&f.app, &scope.tag("app-full"), &args, None);
    assert!(!full.ok, "the build-time check let a stale /deps through");
    assert!(
        full.log.contains(&format!("/deps is {old_digest}")),
        "{}",
        full.log
    );

    let image = scope.tag("app");
    scope.build_ok(&f.app, &image, &args, Some("runtime"));
    let (code, stdout, stderr) = run_to_exit(&scope, "app", &[], &image);
    eprintln!("stale base: exit {code}: {}", stderr.trim());
    assert_eq!(code, 1, "{stdout}{stderr}");
    let line = first_line(&stderr);
    assert!(line.contains("different source tree"), "{line}");
    assert!(
        line.contains(&format!(
            "/deps is {old_digest}, expected {}",
            f.deps_digest
        )),
        "{line}"
    );
    assert!(line.contains("commit base-1.0"), "{line}");
    assert!(!stdout.contains("app: pid"), "{stdout}");
}

/// Scenario 5: Seeds 001 and 004: the same Dockerfile (the minimal example) from two checkouts of
/// the same commit that differ only in file modes (umask 022 vs 002), or only in an unignored
/// `.git`: the COPY step misses the cache, and `treeseal diff` names why.
#[test]
fn mode_and_git_differences_bust_the_copy_cache_and_diff_names_them() {
    let scope = Scope::test("cache");
    if !ready("mode_and_git_differences_bust_the_copy_cache_and_diff_names_them") {
        return;
    }
    let f = fixture();
    let dir = scope.dir("checkouts");
    let src = dir.join("src");
    copy_tree(&example("minimal"), &src);
    git(&src, &["init", "-q"]);
    git(&src, &["add", "-A"]);
    git(&src, &["commit", "-q", "-m", "site"]);
    let (a, b, c) = (
        dir.join("umask022"),
        dir.join("umask002"),
        dir.join("with-git"),
    );
    let clone = |umask: &str, to: &Path| {
        sh(&format!(
            "umask {umask} && git clone -q '{}' '{}'",
            src.display(),
            to.display()
        ))
    };
    clone("022", &a);
    clone("002", &b);
    clone("022", &c);
    fs::remove_dir_all(a.join(".git")).unwrap();
    fs::remove_dir_all(b.join(".git")).unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        (mode(&a.join("index.html")), mode(&b.join("index.html"))),
        (0o644, 0o664)
    );

    // The same manifest bytes (and mode) in all three, so only the files above differ.
    let digest = lock(&a, &[]);
    for other in [&b, &c] {
        fs::copy(a.join(".treeseal"), other.join(".treeseal")).unwrap();
        fs::set_permissions(
            other.join(".treeseal"),
            fs::Permissions::from_mode(mode(&a.join(".treeseal"))),
        )
        .unwrap();
    }

    let args = [
        ("TREESEAL_IMAGE", f.treeseal_image.as_str()),
        ("BASE_IMAGE", f.base_image.as_str()),
        ("TREESEAL_DIGEST", digest.as_str()),
    ];
    const COPY: &str = "COPY . /app";
    const BEFORE: &str = "COPY --from=busybox /bin/busybox /bin/busybox";
    let first = scope.build_ok(&a, &scope.tag("a"), &args, None);
    let again = scope.build_ok(&a, &scope.tag("a2"), &args, None);
    assert!(
        again.cached(COPY),
        "control: the same checkout again must hit:\n{}",
        again.log
    );
    assert_eq!(again.layer(COPY), first.layer(COPY));
    for (name, checkout) in [("umask 002", &b), (".git", &c)] {
        let other = scope.build_ok(
            checkout,
            &scope.tag(if name == ".git" { "c" } else { "b" }),
            &args,
            None,
        );
        assert!(
            other.cached(BEFORE),
            "{name}: the steps before COPY should hit:\n{}",
            other.log
        );
        assert!(
            !other.cached(COPY),
            "{name}: the COPY step hit the cache:\n{}",
            other.log
        );
        assert_ne!(other.layer(COPY), first.layer(COPY), "{name}");
        eprintln!("{name}: {}", other.step(COPY).join(" | "));
    }

    // What `treeseal diff` says about each pair.
    let diff = |x: &Path, y: &Path| {
        let out = treeseal(&["diff", x.to_str().unwrap(), y.to_str().unwrap()])
            .output()
            .unwrap();
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
        eprint!("treeseal diff {} {}:\n{stdout}", x.display(), y.display());
        stdout
    };
    let modes = diff(&a, &b);
    assert!(modes.contains("0644 -> 0664"), "{modes}");
    assert!(modes.contains("but the build cache sees it"), "{modes}");
    assert!(modes.contains(&format!("same digest {digest}")), "{modes}");
    let dotgit = diff(&a, &c);
    assert!(
        dotgit
            .lines()
            .any(|l| l.starts_with("added") && l.contains(".git/ (and")),
        "{dotgit}"
    );
    assert!(dotgit.contains("digests differ"), "{dotgit}");
}

/// Scenario 6: A file changed inside a running container: the healthcheck turns unhealthy within a
/// bounded wait and says what changed.
#[test]
fn file_changed_in_running_container_turns_unhealthy() {
    let scope = Scope::test("tamper");
    if !ready("file_changed_in_running_container_turns_unhealthy") {
        return;
    }
    let f = fixture();
    let c = start(&scope, "app", &f.app_image);
    wait_for("healthy", Duration::from_secs(30), || {
        (health(&c) == "healthy").then_some(())
    });
    docker_ok(&[
        "exec",
        &c,
        "sh",
        "-c",
        "echo 'AWS_REGION=eu-west-1' >> /app/settings.sh",
    ]);
    let t = Instant::now();
    wait_for("unhealthy", Duration::from_secs(20), || {
        (health(&c) == "unhealthy").then_some(())
    });
    let out = last_health_output(&c);
    eprintln!("unhealthy after {:?}: {}", t.elapsed(), out.trim());
    assert!(out.contains("/app"), "{out}");
    assert!(out.contains("content differs: settings.sh"), "{out}");
}

/// Scenario 7: The post-build check (docker/check-image): passes on the good image, fails on the
/// stale image of scenario 2, one verdict line each.
#[test]
fn check_image_passes_good_image_and_fails_stale_image() {
    let _scope = Scope::test("check");
    if !ready("check_image_passes_good_image_and_fails_stale_image") {
        return;
    }
    let f = fixture();
    let check = |image: &str| {
        let out = Command::new(Path::new(REPO).join("docker/check-image"))
            .args([image, "/app", f.app.to_str().unwrap()])
            .env("TREESEAL", treeseal_bin())
            .output()
            .expect("run docker/check-image");
        let (stdout, stderr) = text(&out);
        (out.status.code(), format!("{stdout}{stderr}"))
    };

    let (code, out) = check(&f.app_image);
    eprint!("{out}");
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out.trim().lines().count(), 1, "{out}");
    assert!(out.starts_with("check-image: OK:"), "{out}");
    assert!(out.contains(&f.app_digest), "{out}");

    let (code, out) = check(&stale().image);
    eprint!("{out}");
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(out.trim().lines().count(), 1, "{out}");
    assert!(out.starts_with("check-image: FAILED:"), "{out}");
    assert!(out.contains("digest mismatch"), "{out}");
    assert!(out.contains(&f.old_sha), "{out}");
}

/// Issue 6: the gate works inside the limits people give containers — half a CPU and
/// 32 MiB of memory — on a 40,000-file tree, and still refuses a wrong digest there.
#[test]
fn forty_thousand_files_under_half_a_cpu_and_32_mib() {
    let scope = Scope::test("limits");
    if !ready("forty_thousand_files_under_half_a_cpu_and_32_mib") {
        return;
    }
    let f = fixture();
    let context = scope.dir("limits");
    let app = context.join("app");
    for i in 0..40_000u32 {
        let dir = app.join(format!("pkg{:03}/sub{}", i % 400, i % 7));
        if i < 2800 {
            fs::create_dir_all(&dir).unwrap();
        }
        let len = 200 + (i as usize * 7919) % 3000;
        let body: Vec<u8> = (0..len).map(|j| (i as usize + j * 31) as u8).collect();
        fs::write(dir.join(format!("m{i}.py")), body).unwrap();
    }
    let digest = lock(&app, &[]);
    fs::write(
        context.join("Dockerfile"),
        "ARG TREESEAL_IMAGE\nARG BASE_IMAGE\n\
         FROM ${TREESEAL_IMAGE} AS treeseal\nFROM ${BASE_IMAGE} AS busybox\n\
         FROM scratch\n\
         ENTRYPOINT [\"/usr/local/bin/treeseal\", \"run\", \"--\"]\n\
         CMD [\"/bin/busybox\", \"echo\", \"app started\"]\n\
         COPY --from=treeseal /usr/local/bin/treeseal /usr/local/bin/treeseal\n\
         COPY --from=busybox /bin/busybox /bin/busybox\n\
         COPY app /app\n\
         ARG TREESEAL_DIGEST\nENV TREESEAL_DIGEST=${TREESEAL_DIGEST}\n",
    )
    .unwrap();
    let image = scope.tag("limits");
    let args = [
        ("TREESEAL_IMAGE", f.treeseal_image.as_str()),
        ("BASE_IMAGE", f.base_image.as_str()),
        ("TREESEAL_DIGEST", digest.as_str()),
    ];
    scope.build_ok(&context, &image, &args, None);

    let limits = ["--cpus", "0.5", "--memory", "32m"];
    let (code, stdout, stderr) = run_to_exit(&scope, "limits-ok", &limits, &image);
    eprintln!("40k files, 0.5 CPU, 32 MiB: exit {code}: {}", stderr.trim());
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(stdout.trim(), "app started");
    assert!(stderr.contains("(40000 files, "), "{stderr}");

    let mut refused = limits.to_vec();
    let other = format!("TREESEAL_DIGEST={}", f.app_digest);
    refused.extend(["-e", &other]);
    let (code, stdout, stderr) = run_to_exit(&scope, "limits-stale", &refused, &image);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stderr.contains("different source tree"), "{stderr}");
    assert!(!stdout.contains("app started"), "{stdout}");
}

/// After `execve` the app's signals and zombies are PID 1's job: with tini in front
/// (`ENTRYPOINT ["/sbin/tini", "--", "treeseal", "run", "--"]`) the gate still refuses a
/// wrong tree (tini passes the status on), and a good tree runs the app as tini's child in
/// treeseal's place: tini forwards `docker stop`'s SIGTERM to it and reaps its orphans.
#[test]
fn tini_in_front_of_the_gate_forwards_signals_and_reaps() {
    let scope = Scope::test("tini");
    if !ready("tini_in_front_of_the_gate_forwards_signals_and_reaps") {
        return;
    }
    let f = fixture();
    let context = scope.dir("tini");
    copy_tree(&example("tini"), &context);
    fs::copy(TINI, context.join("tini")).unwrap();
    let digest = lock(&context.join("app"), &[]);
    let image = scope.tag("tini");
    let args = [
        ("TREESEAL_IMAGE", f.treeseal_image.as_str()),
        ("BASE_IMAGE", f.base_image.as_str()),
        ("TREESEAL_DIGEST", digest.as_str()),
    ];
    scope.build_ok(&context, &image, &args, None);

    // Another tree's digest: refused through tini, with the gate's status and line.
    let wrong = format!("TREESEAL_DIGEST={}", f.app_digest);
    let (code, stdout, stderr) = run_to_exit(&scope, "tini-stale", &["-e", &wrong], &image);
    eprintln!("tini, wrong digest: exit {code}: {}", stderr.trim());
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        first_line(&stderr).contains("different source tree"),
        "{stderr}"
    );
    assert!(!stdout.contains("app: pid"), "{stdout}");

    let c = start(&scope, "tini-app", &image);
    let (pid, orphan) = wait_for("the app's first lines", Duration::from_secs(20), || {
        let log = logs(&c);
        let pid = log.lines().find_map(|l| l.strip_prefix("app: pid "))?;
        let orphan = log
            .lines()
            .find_map(|l| l.strip_prefix("app: left orphan "))?;
        Some((pid.to_string(), orphan.trim().to_string()))
    });
    eprintln!("app: pid {pid}; orphan {orphan}");
    let (pid, parent) = pid.split_once(", parent ").expect("pid N, parent M");
    assert_eq!(parent, "1", "the app's parent is not PID 1");
    assert_ne!(pid, "1", "the app is PID 1: tini is not in front");
    let comm = |p: &str| docker_ok(&["exec", &c, "cat", &format!("/proc/{p}/comm")]);
    assert_eq!(comm("1").trim(), "tini");
    // treeseal exec'd the app in its own place: nothing named treeseal is left running.
    let all = docker_ok(&["exec", &c, "sh", "-c", "cat /proc/[0-9]*/comm"]);
    assert!(!all.lines().any(|l| l.trim() == "treeseal"), "{all}");
    assert_eq!(comm(pid).trim(), "sh");

    // The orphan (re-parented to tini) is reaped once it exits: no zombie stays behind.
    wait_for("the orphan reaped", Duration::from_secs(20), || {
        let state = docker(&["exec", &c, "cat", &format!("/proc/{orphan}/stat")]);
        (!state.status.success()).then_some(())
    });

    wait_for("healthy", Duration::from_secs(30), || {
        match health(&c).as_str() {
            "healthy" => Some(()),
            "starting" => None,
            other => panic!("health {other}: {}", last_health_output(&c)),
        }
    });

    // tini forwards SIGTERM to its child, the app: its trap runs and the stop is quick.
    let t = Instant::now();
    docker_ok(&["stop", "-t", "20", &c]);
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "stop took {:?}",
        t.elapsed()
    );
    assert!(logs(&c).contains("app: stopping"), "{}", logs(&c));
    let status = docker_ok(&["inspect", "-f", "{{.State.ExitCode}}", &c]);
    assert_eq!(status.trim(), "0");
}

/// `.dockerignore` patterns whose regexp holds `|` or a count `{n}`: the engine never
/// escapes them, so `a|b*` is an alternation and `x{2}*` a repetition, while `*.{md,txt}`
/// stays literal. What `COPY .` puts in the image and what `treeseal lock` seals are the same
/// files. (This engine's legacy builder reads these wildcard patterns as patternmatcher
/// does; without a wildcard it would read `|` as syntax too, where BuildKit does not, so
/// every pattern here has one.)
#[test]
fn alternation_and_counted_repetition_in_dockerignore_match_the_engine() {
    let scope = Scope::test("regexp");
    if !ready("alternation_and_counted_repetition_in_dockerignore_match_the_engine") {
        return;
    }
    let context = scope.dir("regexp");
    let names = [
        "a",
        "abc",
        "xb",
        "c",
        "cb",
        "x.md",
        "x.{md,txt}",
        "filee",
        "file",
        "xx",
        "x",
    ];
    for name in names {
        fs::write(context.join(name), name).unwrap();
    }
    fs::write(context.join("Dockerfile"), "FROM scratch\nCOPY . /app/\n").unwrap();
    fs::write(
        context.join(".dockerignore"),
        "a|b*\nfile{2}*\n*.{md,txt}\nx{2}*\nDockerfile\n.dockerignore\n",
    )
    .unwrap();
    lock(&context, &[]);
    let manifest = treeseal(&["show", context.join(".treeseal").to_str().unwrap()])
        .output()
        .expect("run treeseal show");
    let (shown, stderr) = text(&manifest);
    assert!(manifest.status.success(), "treeseal show: {stderr}");
    let mut sealed: Vec<String> = shown
        .lines()
        .filter_map(|line| line.rsplit("  ").next())
        .map(str::to_string)
        .collect();
    sealed.sort();

    let image = scope.tag("regexp");
    scope.build_ok(&context, &image, &[], None);
    let container = scope.container("regexp");
    docker_ok(&["create", "--name", &container, &image, "/none"]);
    let copied = scope.dir("copied").join("app");
    docker_ok(&["cp", &format!("{container}:/app"), copied.to_str().unwrap()]);
    let mut in_image: Vec<String> = fs::read_dir(&copied)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name != ".treeseal")
        .collect();
    in_image.sort();
    assert_eq!(in_image, ["c", "file", "x", "x.md"], "the engine's COPY");
    assert_eq!(sealed, in_image, "treeseal lock against the engine's COPY");
}
