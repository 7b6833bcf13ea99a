//! The gate's library side: which trees `run` and `healthcheck` check and how (a
//! [`Config`] resolved from flag values and an environment lookup), and the check itself
//! ([`check`]), which returns an outcome. Nothing here parses flags or prints; the
//! commands in `crate::commands` do.
//!
//! `run` verifies every gated tree, each against its manifest and, when one is given, its
//! expected digest; anything short of proof — a difference, a manifest from another
//! source tree, a manifest or root that cannot be read — is a refusal. After a successful
//! check `run` records a [`crate::snapshot`] so that `healthcheck` can re-check cheaply.
//!
//! Configuration comes from flags or, so Dockerfiles stay short, from the environment
//! (flags win). `healthcheck` runs without the `ENTRYPOINT`, so it reads the same `ENV`:
//!
//! | variable | meaning |
//! |---|---|
//! | `TREESEAL_ROOT` | the gated tree (default `/app`) |
//! | `TREESEAL_MANIFEST` | its manifest (default `$TREESEAL_ROOT/.treeseal`) |
//! | `TREESEAL_DIGEST` | its expected root digest (a build arg passed into `ENV`) |
//! | `TREESEAL_TREES` | several trees: `ROOT[=DIGEST] ...` (space-separated; not together with the three above) |
//! | `TREESEAL_ALLOW_EXTRA` | space-separated patterns for paths the app creates at run time |
//! | `TREESEAL_STATE` | the snapshot file (default: see [`crate::snapshot`]) |
//! | `TREESEAL_THREADS` | worker threads |
//! | `TREESEAL_HEALTH_BUDGET` | `healthcheck`: a probe's time budget in ms (see [`crate::probe`]) |
//! | `TREESEAL_HEALTH_WINDOW`, `TREESEAL_HEALTH_SLICE` | `healthcheck`: a fixed number of entries and bytes per probe instead of the clock (deterministic probes, for tests) |
//! | `TREESEAL_LOG` | `text` (default) or `json` |
//! | `TREESEAL_QUIET` | `1`: no line on success (the missing-digest warning stays); `0`: the default |
//!
//! A variable that is set but empty or blank is an error (except `TREESEAL_ALLOW_EXTRA`,
//! where empty means no patterns): in a Dockerfile it is almost always
//! `ENV X=${X}` for a build arg that was not passed, and reading it as "not set" would
//! quietly drop the check it was meant to configure.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::escape::escape;
use crate::ignore::{self, Matcher};
use crate::manifest::{Manifest, DEFAULT_NAME};
use crate::output::Format;
use crate::snapshot::{Snapshot, TreeState};
use crate::tree::{format_digest, parse_digest, Hash};
use crate::verify::{self, Options, Report};
use crate::words::{first_difference_line, origin_text};

/// The default gated root.
pub const DEFAULT_ROOT: &str = "/app";

/// An environment lookup: `std::env::var_os` in the binary, a table in tests.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<OsString>;

/// The single-tree variables that `TREESEAL_TREES` and `--tree` must not be mixed with.
const SINGLE_TREE_VARS: [&str; 3] = ["TREESEAL_ROOT", "TREESEAL_DIGEST", "TREESEAL_MANIFEST"];

/// The values of the gate's flags (`None`/empty: not given).
#[derive(Clone, Debug, Default)]
pub struct Flags {
    /// `--tree ROOT[=DIGEST]`, repeatable.
    pub trees: Vec<String>,
    /// `--manifest FILE`.
    pub manifest: Option<PathBuf>,
    /// `--allow-extra PAT`, repeatable.
    pub allow_extra: Vec<String>,
    /// `--state FILE`.
    pub state: Option<PathBuf>,
}

/// Where the expected digest of a tree comes from, for messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestSource {
    /// `TREESEAL_DIGEST` (the single-tree form).
    DigestVar,
    /// The tree's `ROOT=DIGEST` entry in `TREESEAL_TREES`.
    TreesVar,
    /// The tree's `--tree ROOT=DIGEST` flag.
    TreeFlag,
}

impl DigestSource {
    /// Where to set the digest, in words.
    pub fn text(self) -> &'static str {
        match self {
            DigestSource::DigestVar => "TREESEAL_DIGEST",
            DigestSource::TreesVar => "ROOT=DIGEST in TREESEAL_TREES",
            DigestSource::TreeFlag => "--tree ROOT=DIGEST",
        }
    }
}

/// One gated tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatedTree {
    /// The root directory.
    pub root: PathBuf,
    /// Its manifest.
    pub manifest: PathBuf,
    /// The expected root digest, when anchored.
    pub digest: Option<Hash>,
    /// Where that digest is (or would be) set.
    pub digest_source: DigestSource,
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
    /// No line on success.
    pub quiet: bool,
}

/// Reads one variable: `None` when unset; an error when set but blank or not UTF-8.
pub fn var(env: Env, name: &str) -> Result<Option<String>> {
    let Some(value) = env(name) else {
        return Ok(None);
    };
    let value = value
        .into_string()
        .map_err(|_| Error::Usage(format!("{name} is not valid UTF-8")))?;
    let value = value.trim();
    if value.is_empty() {
        return Err(Error::Usage(format!(
            "{name} is set but empty: most likely a build arg that was not passed \
             (docker build --build-arg {name}=...); give it a value or do not set it"
        )));
    }
    Ok(Some(value.to_string()))
}

/// Parses an expected digest, naming where it came from when it is malformed.
pub fn expect_digest(text: &str, origin: &str) -> Result<Hash> {
    parse_digest(text).ok_or_else(|| {
        Error::Usage(format!(
            "{origin}: {:?} is not a digest of the form blake3:<64 hex digits>",
            text
        ))
    })
}

/// The log format: `--log`, else `TREESEAL_LOG`, else text. Only `text` and `json`.
pub fn log_format(flag: Option<&str>, env: Env) -> Result<Format> {
    let (value, origin) = match flag {
        Some(v) => (Some(v.to_string()), "--log"),
        None => (var(env, "TREESEAL_LOG")?, "TREESEAL_LOG"),
    };
    match value.as_deref() {
        None | Some("text") => Ok(Format::Text),
        Some("json") => Ok(Format::Json),
        Some(other) => Err(Error::Usage(format!(
            "{origin}={other:?} is not a log format: use text or json"
        ))),
    }
}

/// A setting's whole number: decimal digits only (surrounding whitespace aside), so that
/// `+4`, `-0` or `4k` are refused rather than read as something the user may not mean.
pub fn whole_number(text: &str) -> Option<u64> {
    let digits = text.trim();
    match !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        true => digits.parse().ok(),
        false => None,
    }
}

/// The worker thread count: the flag, else `TREESEAL_THREADS`, else 0, which means the
/// pool's default width (see [`crate::pool`]: wide for reads, hashing on the CPUs this
/// process may use). A count asked for must lie in `1..=`[`crate::pool::MAX_THREADS`].
pub fn thread_count(flag: Option<usize>, env: Env) -> Result<usize> {
    let n = match (flag, var(env, "TREESEAL_THREADS")?) {
        (Some(n), _) => n,
        (None, Some(text)) => whole_number(&text)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| {
                Error::Usage(format!("TREESEAL_THREADS={text:?} is not a whole number"))
            })?,
        (None, None) => return Ok(0),
    };
    crate::pool::check_count(n).map_err(|e| Error::Usage(e.to_string()))
}

impl Config {
    /// Resolves the configuration: flags first, then the environment.
    pub fn resolve(flags: &Flags, env: Env) -> Result<Config> {
        let trees_var = var(env, "TREESEAL_TREES")?;
        let mut single = Vec::new();
        for name in SINGLE_TREE_VARS {
            if let Some(value) = var(env, name)? {
                single.push((name, value));
            }
        }
        let multi = match (flags.trees.is_empty(), &trees_var) {
            (false, _) => Some("--tree"),
            (true, Some(_)) => Some("TREESEAL_TREES"),
            (true, None) => None,
        };
        if let Some(multi) = multi {
            let other = single
                .first()
                .map(|(name, _)| *name)
                .or(flags.manifest.as_ref().map(|_| "--manifest"));
            if let Some(other) = other {
                return Err(Error::Usage(format!(
                    "{multi} and {other} are both set, and {multi} would silently replace it: \
                     keep one form, {multi} listing every tree as ROOT=DIGEST, or \
                     TREESEAL_ROOT/TREESEAL_DIGEST/TREESEAL_MANIFEST for a single tree"
                )));
            }
        }
        let get = |name: &str| {
            single
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
        };
        let trees = match multi {
            None => {
                let root = PathBuf::from(get("TREESEAL_ROOT").unwrap_or(DEFAULT_ROOT.into()));
                let manifest = flags
                    .manifest
                    .clone()
                    .or_else(|| get("TREESEAL_MANIFEST").map(PathBuf::from))
                    .unwrap_or_else(|| root.join(DEFAULT_NAME));
                let digest = get("TREESEAL_DIGEST")
                    .map(|d| expect_digest(&d, "TREESEAL_DIGEST"))
                    .transpose()?;
                vec![GatedTree {
                    root,
                    manifest,
                    digest,
                    digest_source: DigestSource::DigestVar,
                }]
            }
            Some(origin) => {
                let (specs, source): (Vec<String>, _) = if flags.trees.is_empty() {
                    let list = trees_var.unwrap_or_default();
                    let specs = list.split_whitespace().map(str::to_string).collect();
                    (specs, DigestSource::TreesVar)
                } else {
                    (flags.trees.clone(), DigestSource::TreeFlag)
                };
                specs
                    .iter()
                    .map(|spec| tree_spec(spec, origin, source))
                    .collect::<Result<_>>()?
            }
        };
        let allow_extra = if flags.allow_extra.is_empty() {
            match env("TREESEAL_ALLOW_EXTRA") {
                Some(v) => v
                    .into_string()
                    .map_err(|_| Error::Usage("TREESEAL_ALLOW_EXTRA is not valid UTF-8".into()))?
                    .split_whitespace()
                    .map(str::to_string)
                    .collect(),
                None => Vec::new(),
            }
        } else {
            flags.allow_extra.clone()
        };
        let quiet = match var(env, "TREESEAL_QUIET")?.as_deref() {
            None | Some("0") => false,
            Some("1") => true,
            Some(other) => {
                return Err(Error::Usage(format!(
                    "TREESEAL_QUIET={other:?} is not 1 (quiet) or 0 (not quiet)"
                )))
            }
        };
        let state = match &flags.state {
            Some(p) => Some(p.clone()),
            None => var(env, "TREESEAL_STATE")?.map(PathBuf::from),
        };
        Ok(Config {
            trees,
            allow_extra,
            state,
            quiet,
        })
    }

    /// Where the snapshot for these trees lives (see [`crate::snapshot::path`]).
    pub fn snapshot_path(&self) -> Option<PathBuf> {
        let roots: Vec<&Path> = self.trees.iter().map(|t| t.root.as_path()).collect();
        crate::snapshot::path(self.state.as_deref(), &roots)
    }
}

/// One `ROOT[=DIGEST]` entry of `--tree` or `TREESEAL_TREES`.
fn tree_spec(spec: &str, origin: &str, source: DigestSource) -> Result<GatedTree> {
    let (root, digest) = match spec.split_once('=') {
        Some((root, d)) => (
            root,
            Some(expect_digest(d, &format!("{origin}: tree {root}"))?),
        ),
        None => (spec, None),
    };
    if root.is_empty() {
        return Err(Error::Usage(format!("{origin}: tree {spec:?} has no root")));
    }
    Ok(GatedTree {
        root: root.into(),
        manifest: Path::new(root).join(DEFAULT_NAME),
        digest,
        digest_source: source,
    })
}

/// Compiles `--allow-extra` style patterns (`None` when there are none).
pub fn allow_matcher(patterns: &[String], origin: &str) -> Result<Option<Matcher>> {
    let patterns: Vec<String> = patterns
        .iter()
        .filter_map(|p| ignore::normalize_pattern(p))
        .collect();
    if patterns.is_empty() {
        return Ok(None);
    }
    Matcher::new(&patterns)
        .map(Some)
        .map_err(|source| Error::Pattern {
            origin: origin.into(),
            source,
        })
}

/// Why the gate refuses, for one tree.
#[derive(Debug)]
pub enum Refusal {
    /// The manifest's digest is not the expected one: stale layer.
    Stale {
        /// The manifest's digest.
        found: Hash,
        /// The expected digest.
        expected: Hash,
        /// The manifest (for its origin).
        manifest: Box<Manifest>,
    },
    /// The tree differs from its manifest.
    Differs(Report),
}

impl Refusal {
    /// Why, in one line (without a "refusing" prefix), and the structured fields for JSON.
    pub fn describe(&self, tree: &GatedTree) -> (String, Vec<(&'static str, String)>) {
        let root = root_text(tree);
        match self {
            Refusal::Stale {
                found,
                expected,
                manifest,
            } => (
                format!(
                    "this image's files come from a different source tree than the one it was built from: {root} is {}, expected {}; {}; rebuild the stage that copies {root} without the build cache (for a base image: rebuild it, or pull it by digest)",
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
                    "{root} differs from its manifest: {}",
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
}

/// A tree's root, escaped for printing.
pub fn root_text(tree: &GatedTree) -> String {
    escape(tree.root.as_os_str().as_encoded_bytes())
}

/// Every tree proved equal.
#[derive(Debug)]
pub struct Checked {
    /// (tree, manifest digest, report) per tree, in order.
    pub trees: Vec<(GatedTree, Hash, Report)>,
    /// When the check started (Unix nanoseconds), for the snapshot's racy window.
    pub started_ns: i64,
}

impl Checked {
    /// The snapshot that lets a later healthcheck trust these trees' unchanged files. The
    /// reports' stamps move into it.
    pub fn take_snapshot(&mut self) -> Snapshot {
        let started_ns = self.started_ns;
        Snapshot {
            trees: self
                .trees
                .iter_mut()
                .map(|(tree, digest, report)| {
                    let stamps = std::mem::take(&mut report.stamps);
                    TreeState::new(&tree.root, *digest, stamps, started_ns)
                })
                .collect(),
        }
    }

    /// The warning for trees without an expected digest, naming where to set it.
    pub fn unanchored_warning(&self) -> Option<String> {
        let unanchored: Vec<&GatedTree> = self
            .trees
            .iter()
            .filter(|(t, _, _)| t.digest.is_none())
            .map(|(t, _, _)| t)
            .collect();
        let first = unanchored.first()?;
        let roots: Vec<String> = unanchored.iter().map(|t| root_text(t)).collect();
        Some(format!(
            "warning: no expected digest ({}) for {}, so freshness is not anchored: a stale image with a self-consistent manifest would pass",
            first.digest_source.text(),
            roots.join(", ")
        ))
    }
}

/// What a check found: every tree equal, or the first tree that is not and why.
pub type Outcome = std::result::Result<Checked, (GatedTree, Refusal)>;

/// The wall clock in nanoseconds since the epoch (0 before it, saturating after 2262).
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Opens a gated tree: its root must be a directory, its manifest must load, and the
/// manifest's digest must be the expected one (else [`Refusal::Stale`]).
pub fn open_tree(tree: &GatedTree) -> Result<std::result::Result<(Manifest, Hash), Refusal>> {
    crate::walk::check_root(&tree.root)?;
    let manifest = Manifest::load(&tree.manifest)?;
    let digest = manifest.digest();
    match tree.digest {
        Some(expected) if expected != digest => Ok(Err(Refusal::Stale {
            found: digest,
            expected,
            manifest: Box::new(manifest),
        })),
        _ => Ok(Ok((manifest, digest))),
    }
}

/// Checks every tree in order; stops at the first that fails. With a snapshot, files whose
/// stamps it vouches for are not hashed (the cheap healthcheck). An error means the check
/// could not be completed, which callers treat as a refusal.
pub fn check(config: &Config, mut snapshot: Option<Snapshot>) -> Result<Outcome> {
    let started_ns = now_ns();
    let allow_extra = allow_matcher(&config.allow_extra, "TREESEAL_ALLOW_EXTRA")?;
    let mut trees = Vec::new();
    for tree in &config.trees {
        let (manifest, digest) = match open_tree(tree)? {
            Ok(opened) => opened,
            Err(refusal) => return Ok(Err((tree.clone(), refusal))),
        };
        let trusted = snapshot
            .as_mut()
            .map(|s| s.take_stamps(&tree.root, &digest))
            .unwrap_or_default();
        let options = Options {
            all: false,
            allow_extra: allow_extra.clone(),
            trusted,
            window: None,
            stamps: true,
        };
        let report = verify::verify(&tree.root, &manifest, &options)?;
        if !report.is_equal() {
            return Ok(Err((tree.clone(), Refusal::Differs(report))));
        }
        trees.push((tree.clone(), digest, report));
    }
    Ok(Ok(Checked { trees, started_ns }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "blake3:0000000000000000000000000000000000000000000000000000000000000000";

    fn resolve(vars: &[(&str, &str)], flags: &Flags) -> Result<Config> {
        let env = |name: &str| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| OsString::from(v))
        };
        Config::resolve(flags, &env)
    }

    fn usage(r: Result<Config>) -> String {
        match r {
            Err(Error::Usage(m)) => m,
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn defaults_gate_app_without_a_digest() {
        let c = resolve(&[], &Flags::default()).unwrap();
        assert_eq!(c.trees.len(), 1);
        assert_eq!(c.trees[0].root, Path::new("/app"));
        assert_eq!(c.trees[0].manifest, Path::new("/app/.treeseal"));
        assert_eq!(c.trees[0].digest, None);
        assert!(!c.quiet);
    }

    #[test]
    fn a_set_but_blank_variable_names_the_missing_build_arg() {
        for name in [
            "TREESEAL_DIGEST",
            "TREESEAL_ROOT",
            "TREESEAL_MANIFEST",
            "TREESEAL_TREES",
            "TREESEAL_QUIET",
            "TREESEAL_STATE",
        ] {
            for blank in ["", " ", "\t\n"] {
                let m = usage(resolve(&[(name, blank)], &Flags::default()));
                assert!(m.starts_with(&format!("{name} is set but empty")), "{m}");
                assert!(m.contains(&format!("--build-arg {name}=")), "{m}");
            }
        }
        // Empty allow-extra patterns allow nothing more: not an error.
        let c = resolve(&[("TREESEAL_ALLOW_EXTRA", "")], &Flags::default()).unwrap();
        assert!(c.allow_extra.is_empty());
    }

    #[test]
    fn quiet_and_log_take_only_their_documented_values() {
        assert!(
            resolve(&[("TREESEAL_QUIET", "1")], &Flags::default())
                .unwrap()
                .quiet
        );
        assert!(
            !resolve(&[("TREESEAL_QUIET", "0")], &Flags::default())
                .unwrap()
                .quiet
        );
        for bad in ["yes", "true", "2", "01"] {
            let m = usage(resolve(&[("TREESEAL_QUIET", bad)], &Flags::default()));
            assert!(m.contains("is not 1 (quiet) or 0"), "{m}");
        }
        let env = |v: &'static str| move |n: &str| (n == "TREESEAL_LOG").then(|| OsString::from(v));
        assert_eq!(log_format(None, &env("json")).unwrap(), Format::Json);
        assert_eq!(log_format(None, &env("text")).unwrap(), Format::Text);
        assert_eq!(log_format(None, &|_: &str| None).unwrap(), Format::Text);
        for bad in ["JSON", "yaml", " "] {
            assert!(log_format(None, &env(bad)).is_err(), "{bad}");
        }
        assert!(log_format(Some("xml"), &|_: &str| None).is_err());
    }

    #[test]
    fn trees_next_to_the_single_tree_form_is_refused() {
        let trees = format!("/app={D} /deps={D}");
        for single in SINGLE_TREE_VARS {
            let value = if single == "TREESEAL_DIGEST" { D } else { "/x" };
            let m = usage(resolve(
                &[("TREESEAL_TREES", &trees), (single, value)],
                &Flags::default(),
            ));
            assert!(
                m.starts_with(&format!("TREESEAL_TREES and {single} are both set")),
                "{m}"
            );
            let flags = Flags {
                trees: vec!["/app".into()],
                ..Flags::default()
            };
            let m = usage(resolve(&[(single, value)], &flags));
            assert!(
                m.starts_with(&format!("--tree and {single} are both set")),
                "{m}"
            );
        }
        let flags = Flags {
            manifest: Some("/m".into()),
            ..Flags::default()
        };
        let m = usage(resolve(&[("TREESEAL_TREES", &trees)], &flags));
        assert!(m.starts_with("TREESEAL_TREES and --manifest"), "{m}");
        let c = resolve(&[("TREESEAL_TREES", &trees)], &Flags::default()).unwrap();
        assert_eq!(c.trees.len(), 2);
        assert_eq!(c.trees[1].digest_source, DigestSource::TreesVar);
    }

    #[test]
    fn thread_counts_refuse_zero_blank_and_words() {
        let env =
            |v: &'static str| move |n: &str| (n == "TREESEAL_THREADS").then(|| OsString::from(v));
        assert_eq!(thread_count(None, &env("3")).unwrap(), 3);
        assert_eq!(thread_count(Some(2), &env("3")).unwrap(), 2);
        assert_eq!(thread_count(None, &env(" 5 ")).unwrap(), 5);
        for bad in ["", "x", "0", "-1", "257", "+4", "4k", "0x4", "4 4"] {
            assert!(thread_count(None, &env(bad)).is_err(), "{bad:?}");
        }
        assert!(thread_count(Some(0), &|_: &str| None).is_err());
        // Unset: 0, the pool's own default (wide for reads, hashing on the CPUs).
        assert_eq!(thread_count(None, &|_: &str| None).unwrap(), 0);
    }
}
