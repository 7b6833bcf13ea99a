//! Which trees an image's gate checks, read from the image config's `Env` by the gate's
//! own rules: [`crate::gate::Config::resolve`] over a lookup in that `Env`, so that an
//! image is read exactly as `treeseal run` reads its environment inside the container (a
//! set-but-empty variable, `TREESEAL_TREES` beside `TREESEAL_DIGEST`, a malformed digest:
//! the same refusal). What is particular to an image is only where paths start — a
//! relative path is taken from the image's `WorkingDir`, as the container would — and
//! `--root`/`--digest`, which choose and anchor trees.

use std::ffi::OsString;
use std::path::Path;

use crate::error::{Error, Result};
use crate::gate::{self, Config, Flags, GatedTree};
use crate::tree::Hash;

/// The default gated root, as for `treeseal run`.
pub const DEFAULT_ROOT: &str = gate::DEFAULT_ROOT;

/// Where the expected digest of a tree is set when it comes from `--digest`.
const DIGEST_FLAG: &str = "--digest";

/// One gated tree, with absolute paths inside the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tree {
    /// The root directory.
    pub root: String,
    /// Its manifest.
    pub manifest: String,
    /// The expected digest, when anchored.
    pub digest: Option<Hash>,
    /// Where that digest is (or would be) set, for messages.
    pub digest_origin: &'static str,
}

/// What the image's gate checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gated {
    /// The trees, in order.
    pub trees: Vec<Tree>,
    /// `TREESEAL_ALLOW_EXTRA` patterns.
    pub allow_extra: Vec<String>,
}

/// Looks `name` up in a container environment (`KEY=VALUE` strings); the last
/// definition wins, as it does in the container. A set-but-empty variable is `Some("")`.
pub fn lookup(env: &[String], name: &str) -> Option<OsString> {
    env.iter()
        .rev()
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        .map(OsString::from)
}

/// An absolute, clean path inside the image (a relative one is taken from `cwd`).
fn absolute(path: &Path, cwd: &str) -> String {
    let path = path.to_string_lossy();
    let joined = if path.starts_with('/') {
        path.into_owned()
    } else {
        format!("{cwd}/{path}")
    };
    let parts: Vec<&str> = joined
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

/// The default manifest of an absolute `root`.
fn manifest_of(root: &str) -> String {
    format!(
        "{}/{}",
        root.trim_end_matches('/'),
        crate::manifest::DEFAULT_NAME
    )
}

/// Resolves the gated trees from the image's `env` and working directory by the gate's
/// rules, then applies `--root` (which trees; repeatable: a root the image does not gate
/// is checked against its own manifest, unanchored) and `--digest` (one tree's expected
/// digest). Settings the gate would refuse to start with (`TREESEAL_LOG`,
/// `TREESEAL_THREADS`, `TREESEAL_QUIET`, ...) are refused here too.
pub fn resolve(
    env: &[String],
    working_dir: Option<&str>,
    roots: &[String],
    digest: Option<&str>,
) -> Result<Gated> {
    let cwd = working_dir.filter(|w| !w.is_empty()).unwrap_or("/");
    let var = |name: &str| lookup(env, name);
    let config = Config::resolve(&Flags::default(), &var)?;
    gate::log_format(None, &var)?;
    gate::thread_count(None, &var)?;
    let tree = |t: &GatedTree| {
        let root = absolute(&t.root, cwd);
        Tree {
            manifest: absolute(&t.manifest, cwd),
            digest: t.digest,
            digest_origin: t.digest_source.text(),
            root,
        }
    };
    let mut trees: Vec<Tree> = config.trees.iter().map(tree).collect();
    if !roots.is_empty() {
        trees = roots
            .iter()
            .map(|r| {
                if r.trim().is_empty() {
                    return Err(Error::Usage("--root is empty".into()));
                }
                let root = absolute(Path::new(r), cwd);
                Ok(trees
                    .iter()
                    .find(|t| t.root == root)
                    .cloned()
                    .unwrap_or_else(|| Tree {
                        manifest: manifest_of(&root),
                        digest: None,
                        digest_origin: DIGEST_FLAG,
                        root,
                    }))
            })
            .collect::<Result<_>>()?;
    }
    if let Some(d) = digest {
        if trees.len() != 1 {
            return Err(Error::Usage(format!(
                "--digest names one tree's digest, but {} trees are gated; choose one with --root",
                trees.len()
            )));
        }
        trees[0].digest = Some(gate::expect_digest(d, DIGEST_FLAG)?);
        trees[0].digest_origin = DIGEST_FLAG;
    }
    Ok(Gated {
        trees,
        allow_extra: config.allow_extra,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "blake3:0000000000000000000000000000000000000000000000000000000000000001";

    fn env(vars: &[&str]) -> Vec<String> {
        vars.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn defaults_follow_the_gate() {
        let g = resolve(&env(&["PATH=/bin"]), None, &[], None).unwrap();
        assert_eq!(g.trees.len(), 1);
        assert_eq!(g.trees[0].root, "/app");
        assert_eq!(g.trees[0].manifest, "/app/.treeseal");
        assert_eq!(g.trees[0].digest, None);
    }

    #[test]
    fn set_but_empty_is_an_error() {
        for var in [
            "TREESEAL_DIGEST=",
            "TREESEAL_ROOT= ",
            "TREESEAL_MANIFEST=",
            "TREESEAL_TREES=",
        ] {
            let e = resolve(&env(&[var]), None, &[], None).unwrap_err();
            assert!(e.to_string().contains("build arg"), "{var}: {e}");
        }
    }

    #[test]
    fn a_set_but_empty_variable_is_the_gates_own_error() {
        for name in ["TREESEAL_DIGEST", "TREESEAL_ROOT", "TREESEAL_STATE"] {
            let from_image = resolve(&env(&[&format!("{name}=")]), None, &[], None)
                .unwrap_err()
                .to_string();
            let in_container = |n: &str| (n == name).then(OsString::new);
            let from_gate = Config::resolve(&Flags::default(), &in_container)
                .unwrap_err()
                .to_string();
            assert_eq!(from_image, from_gate);
        }
    }

    #[test]
    fn what_the_gate_refuses_to_start_with_is_refused() {
        for var in [
            "TREESEAL_QUIET=yes",
            "TREESEAL_LOG=xml",
            "TREESEAL_THREADS=0",
        ] {
            assert!(resolve(&env(&[var]), None, &[], None).is_err(), "{var}");
        }
    }

    #[test]
    fn the_last_definition_wins() {
        let e = env(&["TREESEAL_ROOT=/a", "TREESEAL_ROOTX=/x", "TREESEAL_ROOT=/b"]);
        assert_eq!(lookup(&e, "TREESEAL_ROOT"), Some("/b".into()));
        assert_eq!(lookup(&e, "TREESEAL_ROO"), None);
        assert_eq!(lookup(&env(&["X="]), "X"), Some("".into()));
    }

    #[test]
    fn trees_next_to_the_single_form_is_an_error() {
        let e = resolve(
            &env(&["TREESEAL_TREES=/app", &format!("TREESEAL_DIGEST={D}")]),
            None,
            &[],
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("TREESEAL_DIGEST"), "{e}");
    }

    #[test]
    fn digests_are_strict() {
        for bad in [
            "blake3:+000000000000000000000000000000000000000000000000000000000000001",
            "blake3:-000000000000000000000000000000000000000000000000000000000000001",
            "0000000000000000000000000000000000000000000000000000000000000001",
            "blake3:00",
        ] {
            let e = resolve(&env(&[&format!("TREESEAL_DIGEST={bad}")]), None, &[], None);
            assert!(e.is_err(), "{bad}");
            assert!(resolve(&env(&[]), None, &[], Some(bad)).is_err(), "{bad}");
        }
        let g = resolve(&env(&[&format!("TREESEAL_DIGEST={D}")]), None, &[], None).unwrap();
        assert!(g.trees[0].digest.is_some());
    }

    #[test]
    fn trees_roots_and_overrides() {
        let e = env(&[&format!("TREESEAL_TREES=/app={D} deps"), "X=1"]);
        let g = resolve(&e, Some("/srv"), &[], None).unwrap();
        assert_eq!(g.trees[1].root, "/srv/deps");
        assert_eq!(g.trees[1].manifest, "/srv/deps/.treeseal");
        assert_eq!(g.trees[1].digest, None);
        let g = resolve(&e, None, &["/app/".into()], None).unwrap();
        assert_eq!(g.trees.len(), 1);
        assert!(g.trees[0].digest.is_some());
        assert!(resolve(&e, None, &[], Some(D)).is_err());
        let g = resolve(&e, None, &["/deps".into()], Some(D)).unwrap();
        assert_eq!(g.trees[0].digest_origin, "--digest");
        assert!(resolve(&e, None, &[" ".into()], None).is_err());
    }

    #[test]
    fn a_relative_manifest_is_taken_from_the_working_directory() {
        let e = env(&["TREESEAL_ROOT=app", "TREESEAL_MANIFEST=m/./seal"]);
        let g = resolve(&e, Some("/srv/"), &[], None).unwrap();
        assert_eq!(g.trees[0].root, "/srv/app");
        assert_eq!(g.trees[0].manifest, "/srv/m/seal");
    }
}
