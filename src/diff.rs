//! Explaining what differs between two trees, each given as a manifest or a directory.
//!
//! This is how a user finds out why `COPY .` keeps missing the build cache: the build
//! cache keys on everything `COPY` copies — including permission bits that treeseal's
//! default `exec` policy does not seal, and directories such as `.git` that nobody meant to
//! send. So `diff` compares the *full* recorded modes, not only the bits that count for
//! the digest, and says which differences count for the digest and which do not. Whole
//! added or removed directories are one line each, with the number of entries below them.

use std::cmp::Ordering;

use crate::manifest::Manifest;
use crate::tree::{path_order, Kind, NodeRef};

/// One difference between tree A and tree B.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Only in B; `below` entries under it are only in B too.
    Added {
        /// Path.
        path: Vec<u8>,
        /// Kind in B.
        kind: Kind,
        /// Entries below it.
        below: usize,
    },
    /// Only in A; `below` entries under it are only in A too.
    Removed {
        /// Path.
        path: Vec<u8>,
        /// Kind in A.
        kind: Kind,
        /// Entries below it.
        below: usize,
    },
    /// Both have a file here, with different content.
    Content {
        /// Path.
        path: Vec<u8>,
        /// Size in A.
        a: u64,
        /// Size in B.
        b: u64,
    },
    /// Different kinds of object.
    Type {
        /// Path.
        path: Vec<u8>,
        /// Kind in A.
        a: Kind,
        /// Kind in B.
        b: Kind,
    },
    /// Different symlink targets.
    Target {
        /// Path.
        path: Vec<u8>,
        /// Target in A.
        a: Vec<u8>,
        /// Target in B.
        b: Vec<u8>,
    },
    /// Different permission bits. `counts` says whether the difference is part of the
    /// digest under A's mode policy.
    Mode {
        /// Path.
        path: Vec<u8>,
        /// Mode in A.
        a: u32,
        /// Mode in B.
        b: u32,
        /// Whether it changes the digest.
        counts: bool,
    },
}

impl Change {
    /// The path the change is about.
    pub fn path(&self) -> &[u8] {
        match self {
            Change::Added { path, .. }
            | Change::Removed { path, .. }
            | Change::Content { path, .. }
            | Change::Type { path, .. }
            | Change::Target { path, .. }
            | Change::Mode { path, .. } => path,
        }
    }
}

/// Compares the entries of two manifests, in path order.
pub fn diff(a: &Manifest, b: &Manifest) -> Vec<Change> {
    let (ea, eb) = (a.entries.as_slice(), b.entries.as_slice());
    let policy = a.rules.modes;
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < ea.len() || j < eb.len() {
        let order = match (ea.get(i), eb.get(j)) {
            (Some(x), Some(y)) => path_order(x.path, y.path),
            (Some(_), None) => Ordering::Less,
            _ => Ordering::Greater,
        };
        match order {
            Ordering::Less => {
                let x = ea.at(i);
                let n = ea.slice(i + 1..).count_below(x.path);
                out.push(Change::Removed {
                    path: x.path.to_vec(),
                    kind: x.node.kind(),
                    below: n,
                });
                i += 1 + n;
            }
            Ordering::Greater => {
                let y = eb.at(j);
                let n = eb.slice(j + 1..).count_below(y.path);
                out.push(Change::Added {
                    path: y.path.to_vec(),
                    kind: y.node.kind(),
                    below: n,
                });
                j += 1 + n;
            }
            Ordering::Equal => {
                let (x, y) = (ea.at(i), eb.at(j));
                i += 1;
                j += 1;
                let path = x.path.to_vec();
                let (kx, ky) = (x.node.kind(), y.node.kind());
                if kx != ky {
                    i += ea.slice(i..).count_below(x.path);
                    j += eb.slice(j..).count_below(y.path);
                    out.push(Change::Type { path, a: kx, b: ky });
                    continue;
                }
                if kx != Kind::Symlink && x.mode != y.mode {
                    out.push(Change::Mode {
                        path: path.clone(),
                        a: x.mode,
                        b: y.mode,
                        counts: policy.effective(kx, x.mode) != policy.effective(kx, y.mode),
                    });
                }
                match (x.node, y.node) {
                    (
                        NodeRef::File { size: sa, hash: ha },
                        NodeRef::File { size: sb, hash: hb },
                    ) if sa != sb || ha != hb => out.push(Change::Content { path, a: sa, b: sb }),
                    (NodeRef::Symlink { target: ta }, NodeRef::Symlink { target: tb })
                        if ta != tb =>
                    {
                        out.push(Change::Target {
                            path,
                            a: ta.to_vec(),
                            b: tb.to_vec(),
                        })
                    }
                    _ => {}
                }
            }
        }
    }
    out
}
