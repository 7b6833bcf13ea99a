//! Build script: records which source commit the binary was built from, for
//! `treeseal --version`, as the compile-time variable `TREESEAL_BUILD_COMMIT`
//! (read it with `env!("TREESEAL_BUILD_COMMIT")`).
//!
//! The value is, in order of preference:
//! 1. the environment variable `TREESEAL_BUILD_COMMIT`, when set and not
//!    empty: for builds without a `.git` directory (a source tarball, a
//!    Docker build context that excludes `.git`), e.g.
//!    `docker build --build-arg TREESEAL_BUILD_COMMIT=$(git rev-parse HEAD)`
//!    with a matching `ARG`/`ENV` in the Dockerfile;
//! 2. for a package unpacked from a `.crate` file (`cargo install`, a
//!    vendored copy), the commit `cargo package` recorded in
//!    `.cargo_vcs_info.json`, rather than whatever repository the unpacked
//!    copy happens to sit in;
//! 3. `git rev-parse HEAD` run in the package directory, with `-dirty`
//!    appended when tracked files differ from that commit (untracked files
//!    do not count);
//! 4. `unknown`.
//!
//! It never fails the build: a missing `git`, a directory that is not a
//! repository, a repository without commits or one `git` refuses to read
//! (ownership checks) all give `unknown`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const VAR: &str = "TREESEAL_BUILD_COMMIT";

fn main() {
    println!("cargo:rerun-if-env-changed={VAR}");
    println!("cargo:rerun-if-changed=build.rs");
    if Path::new(".cargo_vcs_info.json").exists() {
        println!("cargo:rerun-if-changed=.cargo_vcs_info.json");
    }
    let commit = match std::env::var(VAR) {
        Ok(value) if !clean(&value).is_empty() => clean(&value),
        _ => from_vcs_info()
            .or_else(from_git)
            .unwrap_or_else(|| "unknown".to_owned()),
    };
    println!("cargo:rustc-env={VAR}={commit}");
}

/// Keeps the value to one token that is safe in a cargo directive and in
/// `--version` output: printable ASCII, no spaces, at most 100 characters.
fn clean(value: &str) -> String {
    value
        .trim()
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(100)
        .collect()
}

/// Runs `git ARGS` in the package directory; its trimmed stdout on success.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    Some(String::from_utf8(output.stdout).ok()?.trim().to_owned())
}

fn is_sha(text: &str) -> bool {
    text.len() >= 40 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The commit in `.cargo_vcs_info.json`, which `cargo package` writes as
/// `{"git": {"sha1": "<sha>", "dirty": true}, ...}` (`dirty` only when true).
fn from_vcs_info() -> Option<String> {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    let text = std::fs::read_to_string(dir.join(".cargo_vcs_info.json")).ok()?;
    let after_key = text.split_once("\"sha1\"")?.1;
    let sha = after_key.split('"').nth(1)?;
    if !is_sha(sha) {
        return None;
    }
    let dirty = text.split_once("\"dirty\"").is_some_and(|(_, rest)| {
        rest.trim_start_matches([' ', ':', '\t', '\n', '\r'])
            .starts_with("true")
    });
    Some(if dirty {
        format!("{sha}-dirty")
    } else {
        sha.to_owned()
    })
}

fn from_git() -> Option<String> {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    // Watch what moves HEAD before asking for it, so that a repository whose
    // first commit is made later still triggers a rerun.
    watch_git_state(&dir);
    let sha = git(&dir, &["rev-parse", "--verify", "--quiet", "HEAD"])?;
    if !is_sha(&sha) {
        return None;
    }
    // `--no-optional-locks`: a plain `git status` may rewrite the index,
    // which is watched below, and would make every build rerun this script.
    let status = git(
        &dir,
        &[
            "--no-optional-locks",
            "status",
            "--porcelain",
            "--untracked-files=no",
        ],
    );
    Some(match status {
        Some(changes) if changes.is_empty() => sha,
        Some(_) => format!("{sha}-dirty"),
        // Could read HEAD but not the status: do not claim the tree is clean.
        None => format!("{sha}-dirty"),
    })
}

/// Asks cargo to rerun this script when HEAD, the branch it points to or
/// the package's sources change (the sources for `-dirty`; edits to tracked
/// files that do not go into the binary, such as docs, are not watched and
/// show up as `-dirty` only at the next rerun).
///
/// Paths come from `git rev-parse --git-path`, which also handles worktrees
/// and `.git` files. Only existing paths are watched, since cargo reruns a
/// script on every build while a watched path is missing: a branch without
/// commits yet (or whose ref is only in `packed-refs`) is watched through its
/// directory, `refs/heads`, where its first commit creates it.
fn watch_git_state(dir: &Path) {
    let mut paths = Vec::new();
    for name in ["HEAD", "packed-refs"] {
        if let Some(path) = git(dir, &["rev-parse", "--git-path", name]) {
            paths.push(dir.join(path));
        }
    }
    if let Some(reference) = git(dir, &["symbolic-ref", "--quiet", "HEAD"]) {
        if let Some(path) = git(dir, &["rev-parse", "--git-path", &reference]) {
            // `--git-path` answers relative to `dir` unless it is absolute.
            let path = dir.join(path);
            match path.parent() {
                Some(parent) if !path.exists() => paths.push(parent.to_owned()),
                _ => paths.push(path),
            }
        }
    }
    for path in paths.iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    for source in ["src", "Cargo.toml", "Cargo.lock"] {
        if dir.join(source).exists() {
            println!("cargo:rerun-if-changed={source}");
        }
    }
}
