//! Sealing a tree: walk it, hash every regular file in parallel, and build the manifest.

use std::path::Path;

use rayon::prelude::*;

use crate::beneath;
use crate::error::{Error, Result};
use crate::hash::Hashed;
use crate::ignore::Matcher;
use crate::manifest::{Manifest, Origin};
use crate::tree::{Entry, Kind, Node, Rules};
use crate::walk::{self, Found};

/// Compiles the rules' patterns into a matcher.
pub fn matcher(rules: &Rules) -> Result<Matcher> {
    rules.matcher()
}

/// Walks and hashes `root` under `rules`, returning the manifest of what is there now.
pub fn lock(root: &Path, rules: Rules, origin: Origin) -> Result<Manifest> {
    let walk = walk::walk(root, &matcher(&rules)?)?;
    let mut found = Vec::with_capacity(walk.len_bound());
    found.extend(walk);
    let entries = seal(root, found)?;
    Ok(Manifest {
        rules,
        origin,
        entries,
    })
}

/// Turns walked objects into entries, hashing the regular files in parallel.
pub fn seal(root: &Path, found: Vec<Found>) -> Result<Vec<Entry>> {
    let root_dir = beneath::Root::open(root)?;
    let seal_one = |f: Found| {
        let node = match f.kind {
            Kind::File => {
                // Through the walker, so paths longer than PATH_MAX work too.
                let abs = || beneath::join(root, &f.path);
                match root_dir
                    .hash_file(&f.path, f.size)
                    .map_err(|e| Error::io("read", &abs(), e))?
                {
                    Hashed::File { hash, size } => Node::File { size, hash },
                    Hashed::NotRegular => return Err(Error::Unstable(abs())),
                }
            }
            Kind::Dir => Node::Dir,
            Kind::Symlink => Node::Symlink {
                target: f.target.into_vec(),
            },
            other => Node::Special(other),
        };
        Ok(Entry {
            path: f.path.into_vec(),
            mode: f.mode,
            node,
        })
    };
    let files = found.iter().filter(|f| f.kind == Kind::File);
    let bytes = files.clone().map(|f| f.size).sum();
    let pool = crate::pool::worth_threads(files.count(), bytes).then(crate::pool::workers);
    match pool.flatten() {
        Some(pool) => pool.install(|| found.into_par_iter().map(seal_one).collect()),
        None => found.into_iter().map(seal_one).collect(),
    }
}
