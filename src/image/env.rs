//! Which trees an image gates, read from its config's `Env` as `treeseal run` would read
//! them inside the container, with `--root`/`--digest` overriding.
//!
//! The rules are the strict ones: a variable that is set but empty or blank
//! (`ENV TREESEAL_DIGEST=${TREESEAL_DIGEST}` built without `--build-arg`) is an error, not
//! "unset"; `TREESEAL_TREES` next to `TREESEAL_ROOT`/`TREESEAL_DIGEST`/`TREESEAL_MANIFEST`
//! is an error; a digest is exactly `blake3:` and 64 hex digits.

use crate::manifest::DEFAULT_NAME;
use crate::tree::{parse_digest, Hash};

use super::error::ImageError;

/// The default gated root, as for `treeseal run`.
pub const DEFAULT_ROOT: &str = "/app";

/// One gated tree, with absolute paths inside the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tree {
    /// The root directory.
    pub root: String,
    /// Its manifest.
    pub manifest: String,
    /// The expected digest, when anchored.
    pub digest: Option<Hash>,
    /// Where the digest came from (for messages).
    pub digest_origin: String,
}

/// What the image's gate checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gate {
    /// The trees, in order.
    pub trees: Vec<Tree>,
    /// `TREESEAL_ALLOW_EXTRA` patterns.
    pub allow_extra: Vec<String>,
}

/// `KEY=VALUE` list lookup; the last definition wins, as in a container's environment.
fn lookup<'a>(env: &'a [String], key: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find_map(|kv| kv.strip_prefix(key).and_then(|rest| rest.strip_prefix('=')))
}

/// A variable's value; set but blank is an error.
fn value<'a>(env: &'a [String], key: &str) -> Result<Option<&'a str>, ImageError> {
    match lookup(env, key) {
        Some(v) if v.trim().is_empty() => Err(ImageError::Config(format!(
            "the image sets {key} to an empty value (was the build arg not passed? `docker build --build-arg {key}=...`)"
        ))),
        Some(v) => Ok(Some(v.trim())),
        None => Ok(None),
    }
}

/// `blake3:` and exactly 64 hex digits.
pub fn strict_digest(text: &str, origin: &str) -> Result<Hash, ImageError> {
    let ok = text
        .strip_prefix("blake3:")
        .is_some_and(|h| h.len() == 64 && h.bytes().all(|c| c.is_ascii_hexdigit()));
    match ok.then(|| parse_digest(text)).flatten() {
        Some(h) => Ok(h),
        None => Err(ImageError::Config(format!(
            "{origin}: {text:?} is not a digest of the form blake3:<64 hex digits>"
        ))),
    }
}

/// An absolute, clean path inside the image (relative ones are taken from `cwd`).
fn absolute(path: &str, cwd: &str) -> String {
    let joined = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{cwd}/{path}")
    };
    let parts: Vec<&str> = joined
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

fn manifest_of(root: &str) -> String {
    format!("{}/{DEFAULT_NAME}", root.trim_end_matches('/'))
}

/// Resolves the gated trees from the image's `env` and working directory, then applies
/// `--root` (which trees; repeatable) and `--digest` (one tree's expected digest).
pub fn resolve(
    env: &[String],
    working_dir: Option<&str>,
    roots: &[String],
    digest: Option<&str>,
) -> Result<Gate, ImageError> {
    let cwd = working_dir.filter(|w| !w.is_empty()).unwrap_or("/");
    let trees_var = value(env, "TREESEAL_TREES")?;
    let single = ["TREESEAL_ROOT", "TREESEAL_DIGEST", "TREESEAL_MANIFEST"]
        .into_iter()
        .map(|k| value(env, k).map(|v| (k, v)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut trees = Vec::new();
    if let Some(list) = trees_var {
        if let Some((k, _)) = single.iter().find(|(_, v)| v.is_some()) {
            return Err(ImageError::Config(format!(
                "the image sets both TREESEAL_TREES and {k}; keep one form (TREESEAL_TREES=\"ROOT=DIGEST ...\" for several trees)"
            )));
        }
        for spec in list.split_whitespace() {
            let (root, d) = match spec.split_once('=') {
                Some((r, d)) => (r, Some(d)),
                None => (spec, None),
            };
            if root.is_empty() {
                return Err(ImageError::Config(format!(
                    "TREESEAL_TREES: {spec:?} has no root"
                )));
            }
            let root = absolute(root, cwd);
            trees.push(Tree {
                manifest: manifest_of(&root),
                digest: d
                    .map(|d| strict_digest(d, &format!("TREESEAL_TREES ({root})")))
                    .transpose()?,
                digest_origin: "TREESEAL_TREES".into(),
                root,
            });
        }
    } else {
        let root = absolute(single[0].1.unwrap_or(DEFAULT_ROOT), cwd);
        trees.push(Tree {
            manifest: single[2]
                .1
                .map_or_else(|| manifest_of(&root), |m| absolute(m, cwd)),
            digest: single[1]
                .1
                .map(|d| strict_digest(d, "TREESEAL_DIGEST"))
                .transpose()?,
            digest_origin: "TREESEAL_DIGEST".into(),
            root,
        });
    }
    if !roots.is_empty() {
        trees = roots
            .iter()
            .map(|r| {
                if r.trim().is_empty() {
                    return Err(ImageError::Config("--root is empty".into()));
                }
                let root = absolute(r, cwd);
                Ok(trees
                    .iter()
                    .find(|t| t.root == root)
                    .cloned()
                    .unwrap_or_else(|| Tree {
                        manifest: manifest_of(&root),
                        digest: None,
                        digest_origin: String::new(),
                        root,
                    }))
            })
            .collect::<Result<_, _>>()?;
    }
    if let Some(d) = digest {
        if trees.len() != 1 {
            return Err(ImageError::Config(format!(
                "--digest names one tree's digest, but {} trees are gated; choose one with --root",
                trees.len()
            )));
        }
        trees[0].digest = Some(strict_digest(d.trim(), "--digest")?);
        trees[0].digest_origin = "--digest".into();
    }
    let allow_extra = lookup(env, "TREESEAL_ALLOW_EXTRA")
        .map(|v| v.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default();
    Ok(Gate { trees, allow_extra })
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
        }
        let g = resolve(&env(&[&format!("TREESEAL_DIGEST={D}")]), None, &[], None).unwrap();
        assert!(g.trees[0].digest.is_some());
    }

    #[test]
    fn trees_roots_and_overrides() {
        let e = env(&[&format!("TREESEAL_TREES=/app={D} deps"), "X=1"]);
        let g = resolve(&e, Some("/srv"), &[], None).unwrap();
        assert_eq!(g.trees[1].root, "/srv/deps");
        assert_eq!(g.trees[1].digest, None);
        let g = resolve(&e, None, &["/app/".into()], None).unwrap();
        assert_eq!(g.trees.len(), 1);
        assert!(g.trees[0].digest.is_some());
        assert!(resolve(&e, None, &[], Some(D)).is_err());
        let g = resolve(&e, None, &["/deps".into()], Some(D)).unwrap();
        assert_eq!(g.trees[0].digest_origin, "--digest");
    }
}
