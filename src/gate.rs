//! The `ENTRYPOINT` gate (`treeseal run`) and the healthcheck (`treeseal healthcheck`).
//!
//! `run` verifies every gated tree, each against its manifest and, when one is given, its
//! expected digest; only then does it `execve` the command, which takes over treeseal's
//! PID. Anything short of proof — a difference, a manifest from another source tree, a
//! manifest or root that cannot be read — refuses with one line and a non-zero exit. After
//! a successful check, `run` records a snapshot (the metadata stamps of every verified
//! file) so that `healthcheck` can later re-check cheaply: it re-walks the trees and
//! hashes only the files whose metadata changed.
//!
//! Configuration comes from flags or, so Dockerfiles stay short, from the environment
//! (flags win). `healthcheck` runs without the `ENTRYPOINT`, so it reads the same `ENV`:
//!
//! | variable | meaning |
//! |---|---|
//! | `TREESEAL_ROOT` | the gated tree (default `/app`) |
//! | `TREESEAL_MANIFEST` | its manifest (default `$TREESEAL_ROOT/.treeseal`) |
//! | `TREESEAL_DIGEST` | its expected root digest (a build arg passed into `ENV`) |
//! | `TREESEAL_TREES` | several trees: `ROOT[=DIGEST] ...` (space-separated; replaces the three above) |
//! | `TREESEAL_ALLOW_EXTRA` | space-separated patterns for paths the app creates at run time |
//! | `TREESEAL_STATE` | the snapshot file (default: `/dev/shm`, `/run` or `/tmp`, first writable) |
//! | `TREESEAL_THREADS` | worker threads |
//! | `TREESEAL_LOG` | `text` (default) or `json` |
//! | `TREESEAL_QUIET` | `1`: no line on success |

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::cli::{GateArgs, HealthcheckArgs, RunArgs};
use crate::commands::{allow_matcher, digest_arg, first_difference_line, human_bytes, origin_text};
use crate::error::{Error, Result};
use crate::escape::{escape, json_string};
use crate::exit::ExitCode;
use crate::manifest::{Manifest, DEFAULT_NAME};
use crate::tree::{format_digest, Hash};
use crate::verify::{self, Options, Report};
use crate::walk::Stamp;

/// The default gated root.
pub const DEFAULT_ROOT: &str = "/app";

/// Where the snapshot goes when `TREESEAL_STATE` is not set: the first writable of these.
/// `/dev/shm` is a tmpfs in every Docker container and Kubernetes pod, even `FROM scratch`
/// ones with a read-only root file system.
const STATE_DIRS: [&str; 3] = ["/dev/shm", "/run", "/tmp"];

/// Files whose ctime is this close to the start of a verification are not put in the
/// snapshot: a change in the same file-system timestamp tick as our `stat` could otherwise
/// go unseen by the cheap check (the "racy git" problem). Two seconds also covers coarse
/// file systems. Image files are older than that, so this costs nothing in practice.
const RACY_WINDOW_NS: i64 = 2_000_000_000;

/// One gated tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatedTree {
    /// The root directory.
    pub root: PathBuf,
    /// Its manifest.
    pub manifest: PathBuf,
    /// The expected root digest, when anchored.
    pub digest: Option<Hash>,
}

/// Everything `run` and `healthcheck` need, resolved from flags and environment.
#[derive(Debug)]
pub struct Config {
    /// The trees to check, in order.
    pub trees: Vec<GatedTree>,
    /// Patterns for paths the app may create.
    pub allow_extra: Vec<String>,
    /// Explicit snapshot path.
    pub state: Option<PathBuf>,
    /// One JSON object per line instead of text.
    pub json: bool,
    /// No line on success.
    pub quiet: bool,
}

fn env(name: &str) -> Option<String> {
    std::env::var_os(name)
        .map(|v| v.to_string_lossy().trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The worker thread count: the flag, else `TREESEAL_THREADS`, else the CPUs this process
/// may use (std reads the cgroup CPU quota, so a container limited to one CPU gets one).
pub fn thread_count(flag: Option<usize>) -> Result<usize> {
    let n = match (flag, env("TREESEAL_THREADS")) {
        (Some(n), _) => n,
        (None, Some(text)) => text.parse().map_err(|_| {
            Error::Usage(format!("TREESEAL_THREADS={text:?} is not a whole number"))
        })?,
        (None, None) => return Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
    };
    if n == 0 {
        return Err(Error::Usage("the thread count must be at least 1".into()));
    }
    Ok(n)
}

impl Config {
    /// Resolves the configuration: flags first, then the environment.
    pub fn resolve(args: &GateArgs) -> Result<Config> {
        let specs: Vec<String> = if !args.trees.is_empty() {
            args.trees.clone()
        } else if let Some(list) = env("TREESEAL_TREES") {
            list.split_whitespace().map(str::to_string).collect()
        } else {
            vec![]
        };
        let trees = if specs.is_empty() {
            let root = PathBuf::from(env("TREESEAL_ROOT").unwrap_or(DEFAULT_ROOT.into()));
            let manifest = args
                .manifest
                .clone()
                .or_else(|| env("TREESEAL_MANIFEST").map(PathBuf::from))
                .unwrap_or_else(|| root.join(DEFAULT_NAME));
            let digest = env("TREESEAL_DIGEST")
                .map(|d| digest_arg(&d, "TREESEAL_DIGEST"))
                .transpose()?;
            vec![GatedTree {
                root,
                manifest,
                digest,
            }]
        } else {
            if args.manifest.is_some() {
                return Err(Error::Usage(
                    "--manifest goes with a single tree; with --tree/TREESEAL_TREES each tree's manifest is ROOT/.treeseal".into(),
                ));
            }
            specs
                .iter()
                .map(|spec| {
                    let (root, digest) = match spec.split_once('=') {
                        Some((root, d)) => (root, Some(digest_arg(d, &format!("tree {root}"))?)),
                        None => (spec.as_str(), None),
                    };
                    if root.is_empty() {
                        return Err(Error::Usage(format!("tree {spec:?} has no root")));
                    }
                    Ok(GatedTree {
                        root: root.into(),
                        manifest: Path::new(root).join(DEFAULT_NAME),
                        digest,
                    })
                })
                .collect::<Result<_>>()?
        };
        let allow_extra = if args.allow_extra.is_empty() {
            env("TREESEAL_ALLOW_EXTRA")
                .map(|v| v.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default()
        } else {
            args.allow_extra.clone()
        };
        let json = match args.log.clone().or_else(|| env("TREESEAL_LOG")).as_deref() {
            None | Some("text") => false,
            Some("json") => true,
            Some(other) => {
                return Err(Error::Usage(format!(
                    "log format {other:?} is not text or json (TREESEAL_LOG)"
                )))
            }
        };
        Ok(Config {
            trees,
            allow_extra,
            state: args
                .state
                .clone()
                .or_else(|| env("TREESEAL_STATE").map(PathBuf::from)),
            json,
            quiet: env("TREESEAL_QUIET").is_some_and(|v| v != "0"),
        })
    }

    /// Candidate snapshot paths, in order of preference.
    fn state_paths(&self) -> Vec<PathBuf> {
        if let Some(p) = &self.state {
            return vec![p.clone()];
        }
        let mut key = blake3::Hasher::new();
        for t in &self.trees {
            key.update(t.root.as_os_str().as_bytes());
            key.update(b"\0");
        }
        let name = format!("treeseal-{}.state", &key.finalize().to_hex()[..16]);
        STATE_DIRS
            .iter()
            .map(|d| Path::new(d).join(&name))
            .collect()
    }
}

/// Why the gate refuses, for one tree.
enum Refusal {
    /// The manifest's digest is not the expected one: stale layer.
    Stale {
        found: Hash,
        expected: Hash,
        manifest: Box<Manifest>,
    },
    /// The tree differs from its manifest.
    Differs(Report),
}

/// The outcome of checking every tree.
struct Checked {
    /// (tree, manifest digest, report) per tree, in order.
    trees: Vec<(GatedTree, Hash, Report)>,
    started_ns: i64,
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// Checks every tree in order; stops at the first that fails. With a snapshot, files whose
/// stamps it vouches for are not hashed (the cheap healthcheck).
fn check_all(
    config: &Config,
    mut snapshot: Option<State>,
) -> Result<std::result::Result<Checked, (GatedTree, Refusal)>> {
    let started_ns = now_ns();
    let allow_extra = allow_matcher(&config.allow_extra, "TREESEAL_ALLOW_EXTRA")?;
    let mut trees = Vec::new();
    for tree in &config.trees {
        crate::walk::check_root(&tree.root)?;
        let manifest = Manifest::load(&tree.manifest)?;
        let digest = manifest.digest();
        if let Some(expected) = tree.digest {
            if expected != digest {
                return Ok(Err((
                    tree.clone(),
                    Refusal::Stale {
                        found: digest,
                        expected,
                        manifest: Box::new(manifest),
                    },
                )));
            }
        }
        let trusted = snapshot
            .as_mut()
            .map(|state| state.take_stamps(tree, &digest))
            .unwrap_or_default();
        let options = Options {
            all: false,
            allow_extra: allow_extra.clone(),
            trusted,
        };
        let report = verify::verify(&tree.root, &manifest, &options)?;
        if !report.is_equal() {
            return Ok(Err((tree.clone(), Refusal::Differs(report))));
        }
        trees.push((tree.clone(), digest, report));
    }
    Ok(Ok(Checked { trees, started_ns }))
}

/// Prints one log line in the configured format. `fields` are extra JSON members.
fn log(config: &Config, level: &str, message: &str, fields: &[(&str, String)]) {
    let line = if config.json {
        let mut obj = format!("{{\"level\":\"{level}\",\"msg\":{}", json_string(message));
        for (k, v) in fields {
            obj.push_str(&format!(",\"{k}\":{}", json_string(v)));
        }
        obj.push('}');
        obj
    } else {
        format!("treeseal: {message}")
    };
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn root_text(tree: &GatedTree) -> String {
    escape(tree.root.as_os_str().as_bytes())
}

/// The one line that says why the gate refuses.
fn refusal_line(tree: &GatedTree, refusal: &Refusal) -> (String, Vec<(&'static str, String)>) {
    let root = root_text(tree);
    match refusal {
        Refusal::Stale {
            found,
            expected,
            manifest,
        } => (
            format!(
                "refusing to start: this image's files come from a different source tree than the one it was built from: {root} is {}, expected {}; {}; rebuild the stage that copies {root} without the build cache (for a base image: rebuild it, or pull it by digest)",
                format_digest(found),
                format_digest(expected),
                origin_text(&manifest.origin),
            ),
            vec![
                ("event", "stale".into()),
                ("root", root),
                ("digest", format_digest(found)),
                ("expected", format_digest(expected)),
            ],
        ),
        Refusal::Differs(report) => (
            format!(
                "refusing to start: {root} differs from its manifest: {}",
                first_difference_line(report)
            ),
            vec![
                ("event", "differs".into()),
                ("root", root),
                ("difference", report.differences[0].to_string()),
            ],
        ),
    }
}

/// `treeseal run`: verify, snapshot, exec. Returns only on refusal or exec failure.
pub fn run(args: RunArgs) -> Result<ExitCode> {
    // As PID 1 a process has no default action for SIGTERM/SIGINT: without handlers,
    // `docker stop` would wait out its grace period while we verify.
    crate::exec::exit_on_termination_signals();
    let started = Instant::now();
    let config = Config::resolve(&args.gate)?;
    let checked = match check_all(&config, None) {
        Ok(Ok(checked)) => checked,
        Ok(Err((tree, refusal))) => {
            let (line, fields) = refusal_line(&tree, &refusal);
            log(&config, "error", &line, &fields);
            return Ok(ExitCode::Differs);
        }
        Err(e) => {
            log(
                &config,
                "error",
                &format!("refusing to start: {e}"),
                &[("event", "cannot-check".into())],
            );
            return Ok(e.exit_code());
        }
    };
    let saved = save_state(&config, &checked);
    if !config.quiet {
        let (files, bytes) = checked.trees.iter().fold((0, 0), |(f, b), (_, _, r)| {
            (f + r.files_hashed, b + r.bytes_hashed)
        });
        let roots: Vec<String> = checked
            .trees
            .iter()
            .map(|(t, d, _)| format!("{} {}", root_text(t), format_digest(d)))
            .collect();
        let mut line = format!(
            "verified {} ({files} files, {}, {} ms)",
            roots.join(", "),
            human_bytes(bytes),
            started.elapsed().as_millis()
        );
        let unanchored: Vec<String> = checked
            .trees
            .iter()
            .filter(|(t, _, _)| t.digest.is_none())
            .map(|(t, _, _)| root_text(t))
            .collect();
        if !unanchored.is_empty() {
            line.push_str(&format!(
                "; warning: no expected digest (TREESEAL_DIGEST) for {}, so freshness is not anchored: a stale image with a self-consistent manifest would pass",
                unanchored.join(", ")
            ));
        }
        if let Err(why) = saved {
            line.push_str(&format!(
                "; no healthcheck snapshot ({why}): healthchecks will re-hash"
            ));
        }
        log(&config, "info", &line, &[("event", "verified".into())]);
    }
    let err = crate::exec::exec(&args.command);
    log(
        &config,
        "error",
        &err.to_string(),
        &[("event", "exec-failed".into())],
    );
    Ok(match err.exit_code() {
        127 => ExitCode::NotFound,
        _ => ExitCode::NotExecutable,
    })
}

/// `treeseal healthcheck`: exit 0 healthy, 1 unhealthy — never anything else.
pub fn healthcheck(args: HealthcheckArgs) -> ExitCode {
    let started = Instant::now();
    let say = |line: String| {
        let _ = writeln!(std::io::stdout(), "{line}");
    };
    let config = match Config::resolve(&args.gate) {
        Ok(c) => c,
        Err(e) => {
            say(format!("unhealthy: cannot check: {e}"));
            return ExitCode::Differs;
        }
    };
    let state = if args.full { None } else { load_state(&config) };
    let mode = if state.is_some() { "cheap" } else { "full" };
    match check_all(&config, state) {
        Ok(Ok(checked)) => {
            let (hashed, trusted) = checked.trees.iter().fold((0, 0), |(h, t), (_, _, r)| {
                (h + r.files_hashed, t + r.files_trusted)
            });
            let roots: Vec<String> = checked.trees.iter().map(|(t, _, _)| root_text(t)).collect();
            say(format!(
                "healthy: {} ({mode} check: {trusted} files unchanged, {hashed} hashed, {} ms)",
                roots.join(", "),
                started.elapsed().as_millis()
            ));
            ExitCode::Ok
        }
        Ok(Err((tree, refusal))) => {
            let (line, _) = refusal_line(&tree, &refusal);
            let line = line.strip_prefix("refusing to start: ").unwrap_or(&line);
            say(format!("unhealthy: {line}"));
            ExitCode::Differs
        }
        Err(e) => {
            say(format!("unhealthy: cannot check: {e}"));
            ExitCode::Differs
        }
    }
}

/// The snapshot `run` leaves for `healthcheck`.
#[derive(Debug, Serialize, Deserialize)]
struct State {
    trees: Vec<TreeState>,
}

#[derive(Debug, Serialize, Deserialize)]
struct TreeState {
    root: Vec<u8>,
    digest: Hash,
    /// (manifest entry index, stamp), sorted by index.
    stamps: Vec<(u32, Stamp)>,
}

const STATE_MAGIC: &[u8; 8] = b"TSSTATE1";

impl State {
    /// The stamps recorded for `tree`, if they were recorded for this same manifest;
    /// moved out, not copied (200k stamps are 8 MB).
    fn take_stamps(&mut self, tree: &GatedTree, digest: &Hash) -> Vec<(u32, Stamp)> {
        self.trees
            .iter_mut()
            .find(|t| t.root == tree.root.as_os_str().as_bytes() && &t.digest == digest)
            .map(|t| std::mem::take(&mut t.stamps))
            .unwrap_or_default()
    }

    fn encode(&self) -> Vec<u8> {
        let body = postcard::to_stdvec(self).expect("encoding to a Vec cannot fail");
        let mut out = Vec::with_capacity(40 + body.len());
        out.extend_from_slice(STATE_MAGIC);
        out.extend_from_slice(blake3::hash(&body).as_bytes());
        out.extend_from_slice(&body);
        out
    }

    fn decode(bytes: &[u8]) -> Option<State> {
        let rest = bytes.strip_prefix(STATE_MAGIC)?;
        if rest.len() < 32 {
            return None;
        }
        let (sum, body) = rest.split_at(32);
        if blake3::hash(body).as_bytes() != sum {
            return None;
        }
        postcard::from_bytes(body).ok()
    }
}

/// Writes the snapshot atomically to the first writable candidate. A read-only file
/// system must not stop the app: failure is reported, not fatal.
fn save_state(config: &Config, checked: &Checked) -> std::result::Result<(), String> {
    let racy_after = checked.started_ns - RACY_WINDOW_NS;
    let state = State {
        trees: checked
            .trees
            .iter()
            .map(|(tree, digest, report)| TreeState {
                root: tree.root.as_os_str().as_bytes().to_vec(),
                digest: *digest,
                stamps: report
                    .stamps
                    .iter()
                    .filter(|(_, s)| s.ctime_ns < racy_after && s.mtime_ns < racy_after)
                    .copied()
                    .collect(),
            })
            .collect(),
    };
    let bytes = state.encode();
    let mut last_error = String::from("no candidate directory");
    for path in config.state_paths() {
        match crate::atomic::write(&path, &bytes, false, 0o600) {
            Ok(()) => return Ok(()),
            Err(e) => last_error = format!("{}: {e}", escape(path.as_os_str().as_bytes())),
        }
    }
    Err(last_error)
}

/// Reads the snapshot, if there is a valid one.
fn load_state(config: &Config) -> Option<State> {
    config
        .state_paths()
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .and_then(|bytes| State::decode(&bytes))
}
