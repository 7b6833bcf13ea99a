//! Sealing a tree: gather its rules, walk it, hash every regular file in parallel, and
//! build the manifest.

use std::fs::File;
use std::path::{Path, PathBuf};

use nix::sys::stat::FileStat;

use rayon::prelude::*;

use crate::beneath;
use crate::error::{Error, Result};
use crate::escape::escape;
use crate::hash::Hashed;
use crate::ignore::{self, Matcher};
use crate::manifest::{Manifest, Origin, DEFAULT_NAME};
use crate::tree::{Entries, Hash, Kind, ModePolicy, NodeRef, Rules};
use crate::walk;

/// Which `.dockerignore` file a tree's rules start from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IgnoreFile {
    /// None (`--no-dockerignore`).
    Skip,
    /// `DIR/.dockerignore`, when there is one.
    InTree,
    /// This file, which must exist (`--dockerignore FILE`, e.g. `Dockerfile.dockerignore`).
    Given(PathBuf),
}

/// Builds the rules for walking `dir` from scratch: the patterns of `file`, then `exclude`
/// (command-line patterns, normalised like `.dockerignore` lines), then — when `output`, the
/// manifest `lock` is about to write, lies inside the tree under another name than the
/// default — a pattern for that file alone.
///
/// With an `output` inside the tree, this is also where `lock` refuses a `.dockerignore`
/// that would keep that manifest out of the image ([`Error::ManifestIgnored`]): `COPY .`
/// follows the same file, so the image would have no manifest.
pub fn rules(
    dir: &Path,
    file: &IgnoreFile,
    exclude: &[String],
    modes: ModePolicy,
    output: Option<&Path>,
) -> Result<Rules> {
    let (path, required) = match file {
        IgnoreFile::Skip => (None, false),
        IgnoreFile::InTree => (Some(dir.join(".dockerignore")), false),
        IgnoreFile::Given(path) => (Some(path.clone()), true),
    };
    let mut docker = Vec::new();
    if let Some(path) = &path {
        match std::fs::read(path) {
            Ok(bytes) => {
                docker = ignore::parse_dockerignore(&bytes).map_err(|source| Error::Pattern {
                    origin: escape(path.as_os_str().as_encoded_bytes()),
                    source,
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {}
            Err(e) => return Err(Error::io("read", path, e)),
        }
    }
    let mut patterns = docker.clone();
    patterns.extend(exclude.iter().filter_map(|p| ignore::normalize_pattern(p)));
    let manifest = output.and_then(|o| inside(dir, o));
    if let Some(rel) = manifest
        .as_deref()
        .filter(|rel| *rel != DEFAULT_NAME.as_bytes())
    {
        let text = std::str::from_utf8(rel).map_err(|_| {
            Error::Usage(
                "the manifest path inside the tree must be UTF-8 (or write it outside)".into(),
            )
        })?;
        patterns.push(ignore::literal_pattern(text));
    }
    let rules = Rules { patterns, modes };
    matcher(&rules)?;
    if let (Some(rel), Some(path)) = (&manifest, &path) {
        keeps_manifest(&docker, rel, path)?;
    }
    Ok(rules)
}

/// Refuses when the `.dockerignore` patterns `docker` (read from `file`) exclude the
/// manifest at `rel`: the question is whether `COPY .` would leave it out of the image, so
/// only Docker's own rules count, not `--exclude` nor the manifest's exclusion of itself.
fn keeps_manifest(docker: &[String], rel: &[u8], file: &Path) -> Result<()> {
    let compile = |patterns: &[String]| {
        Matcher::new(patterns).map_err(|source| Error::Pattern {
            origin: escape(file.as_os_str().as_encoded_bytes()),
            source,
        })
    };
    if !compile(docker)?.excludes(rel, false) {
        return Ok(());
    }
    // The last exclusion that matches the manifest or one of its directories on its own.
    let mut culprit = None;
    for pattern in docker.iter().filter(|p| !p.starts_with('!')) {
        if compile(std::slice::from_ref(pattern))?.excludes(rel, false) {
            culprit = Some(pattern.clone());
        }
    }
    let name = String::from_utf8_lossy(rel);
    Err(Error::ManifestIgnored {
        ignore_file: escape(file.as_os_str().as_encoded_bytes()),
        manifest: escape(rel),
        pattern: culprit.unwrap_or_else(|| "?".into()),
        fix: format!("!{}", ignore::literal_pattern(&name)),
    })
}

/// The path of `file` relative to `dir`, when it lies strictly inside it.
fn inside(dir: &Path, file: &Path) -> Option<Vec<u8>> {
    let dir = std::fs::canonicalize(dir).ok()?;
    let parent = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let full = std::fs::canonicalize(parent).ok()?.join(file.file_name()?);
    let rel = full.strip_prefix(&dir).ok()?;
    let rel = rel.as_os_str().as_encoded_bytes();
    (!rel.is_empty()).then(|| rel.to_vec())
}

/// Compiles the rules' patterns into a matcher.
pub fn matcher(rules: &Rules) -> Result<Matcher> {
    rules.matcher()
}

/// Hashes every regular file during the walk, while its directory is open.
struct Hasher;

impl walk::Visitor for Hasher {
    type Out = Hashed;
    type Cursor = ();

    fn cursor(&self, _: &[u8]) {}

    fn wants(&self, _: &mut (), _: &[u8]) -> bool {
        true
    }

    fn visit(&self, _: &mut (), _: &[u8], file: File, meta: &FileStat) -> Option<Hashed> {
        let len = meta.st_size as u64;
        // An error is left to `seal`, which opens the file again and reports it.
        crate::hash::hash_regular(file, len, len).ok()
    }
}

/// Walks and hashes `root` under `rules`, returning the manifest of what is there now.
pub fn lock(root: &Path, rules: Rules, origin: Origin) -> Result<Manifest> {
    let matcher = matcher(&rules)?;
    let entries = walk::walk_with(root, &matcher, &Hasher, &|_| true, |found| {
        seal(root, found)
    })??;
    Ok(Manifest {
        rules,
        origin,
        entries,
    })
}

/// Turns walked objects into entries as they come (the walk streams the tree, so it is
/// never held twice), then hashes in parallel the regular files that the walk did not
/// hash. Of several files that cannot be hashed, the first in path
/// order is reported, whatever the thread count.
fn seal(root: &Path, found: impl Iterator<Item = walk::Found<Hashed>>) -> Result<Entries> {
    let mut entries = Entries::new();
    // Entries whose file the walk did not hash: their size and hash are set below.
    let mut left = Vec::new();
    for f in found {
        let node = match (f.kind, &f.check) {
            (Kind::File, Some(Hashed::File { hash, size })) => NodeRef::File { size: *size, hash },
            (Kind::File, _) => {
                left.push(entries.len());
                NodeRef::File {
                    size: f.size,
                    hash: &[0; 32],
                }
            }
            (Kind::Dir, _) => NodeRef::Dir,
            (Kind::Symlink, _) => NodeRef::Symlink { target: &f.target },
            (other, _) => NodeRef::Special(other),
        };
        entries.push(&f.path, f.mode, node);
    }
    let root_dir = beneath::Root::open(root)?;
    let seal_one = |&i: &usize| {
        let e = entries.at(i);
        // Through the walker, so paths longer than PATH_MAX work too.
        let abs = || beneath::join(root, e.path);
        match root_dir
            .hash_file(e.path, e.node.size())
            .map_err(|err| Error::io("read", &abs(), err))?
        {
            Hashed::File { hash, size } => Ok((size, hash)),
            Hashed::NotRegular => Err(Error::Unstable(abs())),
        }
    };
    let bytes = left.iter().map(|&i| entries.at(i).node.size()).sum();
    let pool = crate::pool::worth_threads(left.len(), bytes).then(crate::pool::workers);
    let sealed: Vec<Result<(u64, Hash)>> = match pool.flatten() {
        Some(pool) => pool.install(|| left.par_iter().map(seal_one).collect()),
        None => left.iter().map(seal_one).collect(),
    };
    // In path order: the first error is the first file that could not be hashed.
    for (i, file) in left.into_iter().zip(sealed) {
        let (size, hash) = file?;
        entries.set_file(i, size, hash);
    }
    Ok(entries)
}
