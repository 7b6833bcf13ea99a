//! The in-memory model of a sealed tree, and the root digest defined over it.
//!
//! A tree is a list of [`Entry`] values in [path order](path_order) plus the [`Rules`] that
//! decided what belongs to it. The root digest ([`digest`]) is computed from a canonical
//! description of exactly that — not from the manifest's bytes — so the digest stays the
//! same across manifest format changes that keep the content, and a tree locked with other
//! rules (patterns, mode policy) has another digest. `docs/FORMAT.md` is the written
//! definition; the golden test in `tests/cli.rs` pins it.

use std::cmp::Ordering;
use std::fmt;

use nix::libc;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ignore::Matcher;

/// The file name `lock` writes at the root of the tree by default. It is never part of
/// the tree it describes: the walker skips this name at the root.
pub const DEFAULT_NAME: &str = ".treeseal";

/// A blake3 hash of a file's content (or of the canonical tree description).
pub type Hash = [u8; 32];

/// What kind of file system object an entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Kind {
    /// A regular file: its size and content hash are sealed.
    File,
    /// A directory, empty or not (COPY creates empty ones too).
    Dir,
    /// A symbolic link: its target text is sealed; it is never followed.
    Symlink,
    /// A named pipe: recorded by type, never opened.
    Fifo,
    /// A Unix socket: recorded by type, never opened.
    Socket,
    /// A character or block device: recorded by type, never opened.
    Device,
}

impl Kind {
    /// The kind of a file from its `st_mode`.
    pub fn from_mode(mode: u32) -> Kind {
        match mode & libc::S_IFMT {
            libc::S_IFREG => Kind::File,
            libc::S_IFDIR => Kind::Dir,
            libc::S_IFLNK => Kind::Symlink,
            libc::S_IFIFO => Kind::Fifo,
            libc::S_IFSOCK => Kind::Socket,
            _ => Kind::Device,
        }
    }

    /// The lowercase name used in messages and in `show --json`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Dir => "dir",
            Kind::Symlink => "symlink",
            Kind::Fifo => "fifo",
            Kind::Socket => "socket",
            Kind::Device => "device",
        }
    }

    /// The byte that stands for this kind in the canonical digest input.
    fn code(self) -> u8 {
        match self {
            Kind::File => 1,
            Kind::Dir => 2,
            Kind::Symlink => 3,
            Kind::Fifo => 4,
            Kind::Socket => 5,
            Kind::Device => 6,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// Which permission bits take part in verification and in the digest.
///
/// Full bits are always recorded (so `diff` can explain a mode difference); the policy
/// decides which of them count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ModePolicy {
    /// Only a regular file's owner-execute bit counts (what git tracks). Group and other
    /// bits vary with the checkout's umask and are not the content.
    #[default]
    Exec,
    /// All permission bits (`0o7777`) of files and directories count.
    Full,
}

impl ModePolicy {
    /// The part of `mode` that counts under this policy for an entry of `kind`.
    /// Symlink permissions mean nothing on Linux and never count.
    pub fn effective(self, kind: Kind, mode: u32) -> u32 {
        match (self, kind) {
            (_, Kind::Symlink) => 0,
            (ModePolicy::Exec, Kind::File) => mode & 0o100,
            (ModePolicy::Exec, _) => 0,
            (ModePolicy::Full, _) => mode & 0o7777,
        }
    }

    /// The name used on the command line and in messages.
    pub fn name(self) -> &'static str {
        match self {
            ModePolicy::Exec => "exec",
            ModePolicy::Full => "full",
        }
    }
}

/// The rules that decided what the tree is. Stored in the manifest and part of the digest,
/// so `verify` applies them exactly as `lock` did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rules {
    /// Normalised `.dockerignore`-syntax patterns, in order (later ones win).
    pub patterns: Vec<String>,
    /// Which permission bits count.
    pub modes: ModePolicy,
}

impl Rules {
    /// Compiles the patterns into the matcher that decides what belongs to the tree.
    pub fn matcher(&self) -> Result<Matcher> {
        Matcher::new(&self.patterns).map_err(|source| Error::Pattern {
            origin: "ignore rules".into(),
            source,
        })
    }
}

/// What an entry is, with the data that is sealed for that kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// A regular file of `size` bytes whose content hashes to `hash`.
    File {
        /// Length in bytes.
        size: u64,
        /// blake3 of the content.
        hash: Hash,
    },
    /// A directory.
    Dir,
    /// A symbolic link with this target (raw bytes, never followed).
    Symlink {
        /// The link's target text.
        target: Vec<u8>,
    },
    /// A FIFO, socket or device: only the kind is sealed.
    Special(Kind),
}

impl Node {
    /// The kind of this node.
    pub fn kind(&self) -> Kind {
        match self {
            Node::File { .. } => Kind::File,
            Node::Dir => Kind::Dir,
            Node::Symlink { .. } => Kind::Symlink,
            Node::Special(kind) => *kind,
        }
    }

    /// The size of a file; 0 for everything else.
    pub fn size(&self) -> u64 {
        match self {
            Node::File { size, .. } => *size,
            _ => 0,
        }
    }
}

/// One object of the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Relative to the root, `/`-separated, raw bytes, no leading `./`, never empty.
    pub path: Vec<u8>,
    /// Permission bits (`mode & 0o7777`) as found at lock time.
    pub mode: u32,
    /// The kind and the sealed data.
    pub node: Node,
}

/// The order of entries in a manifest: component by component, each component compared
/// as bytes. A directory comes right before everything inside it (`a`, `a/b`, `a.txt`) —
/// the order of a sorted depth-first walk. Equivalent to comparing the paths as bytes
/// with `/` ranked below every other byte.
pub fn path_order(a: &[u8], b: &[u8]) -> Ordering {
    let rank = |c: u8| if c == b'/' { 0u16 } else { u16::from(c) + 1 };
    // The first differing byte decides; with none, the shorter path comes first.
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(i) => rank(a[i]).cmp(&rank(b[i])),
        None => a.len().cmp(&b.len()),
    }
}

/// Whether `path` lies below the directory `dir` (both tree paths).
pub fn is_below(path: &[u8], dir: &[u8]) -> bool {
    path.len() > dir.len() && path[dir.len()] == b'/' && path.starts_with(dir)
}

/// How many items at the start of `rest`, a list in path order, lie below `dir` (all of
/// them are contiguous, right after `dir` itself).
pub fn count_below<T>(rest: &[T], dir: &[u8], path: impl Fn(&T) -> &[u8]) -> usize {
    rest.iter().take_while(|x| is_below(path(x), dir)).count()
}

/// Domain separation for the root digest; changing it changes every digest.
const DIGEST_DOMAIN: &[u8] = b"treeseal tree digest v1\0";

/// The root digest of a tree: blake3 over the canonical description of `rules` and
/// `entries` (which must be in [`path_order`]). See `docs/FORMAT.md`.
pub fn digest(rules: &Rules, entries: &[Entry]) -> Hash {
    let mut h = Feed::default();
    h.put(DIGEST_DOMAIN);
    h.put(&[match rules.modes {
        ModePolicy::Exec => 0,
        ModePolicy::Full => 1,
    }]);
    h.put(&(rules.patterns.len() as u64).to_le_bytes());
    for p in &rules.patterns {
        h.put_bytes(p.as_bytes());
    }
    h.put(&(entries.len() as u64).to_le_bytes());
    for e in entries {
        let kind = e.node.kind();
        h.put_bytes(&e.path);
        h.put(&[kind.code()]);
        h.put(&rules.modes.effective(kind, e.mode).to_le_bytes());
        match &e.node {
            Node::File { size, hash } => {
                h.put(&size.to_le_bytes());
                h.put(hash);
            }
            Node::Symlink { target } => h.put_bytes(target),
            Node::Dir | Node::Special(_) => {}
        }
    }
    h.finish()
}

/// Feeds the digest's many small fields to blake3 in 64 KiB pieces. The hash is the same
/// however the input is split, but blake3 only hashes several chunks at once with SIMD
/// when it is given several at once: field by field, the digest of a 44k-entry manifest
/// took 9 ms, about a third of loading it.
#[derive(Default)]
struct Feed {
    hasher: blake3::Hasher,
    buf: Vec<u8>,
}

impl Feed {
    const PIECE: usize = 64 * 1024;

    fn put(&mut self, bytes: &[u8]) {
        if self.buf.len() + bytes.len() > Self::PIECE {
            self.hasher.update(&self.buf);
            self.buf.clear();
        }
        self.buf.extend_from_slice(bytes);
    }

    /// A length-prefixed byte string.
    fn put_bytes(&mut self, bytes: &[u8]) {
        self.put(&(bytes.len() as u64).to_le_bytes());
        self.put(bytes);
    }

    fn finish(mut self) -> Hash {
        self.hasher.update(&self.buf);
        *self.hasher.finalize().as_bytes()
    }
}

/// Formats a digest the way treeseal prints and parses it: `blake3:<64 lowercase hex>`.
pub fn format_digest(hash: &Hash) -> String {
    format!("blake3:{}", hex(hash))
}

/// Parses `blake3:<64 hex>`: the prefix is required, hex digits may be either case, and
/// nothing else is accepted inside (no sign, no space); whitespace around it is ignored.
pub fn parse_digest(text: &str) -> Option<Hash> {
    let hex_part = text.trim().strip_prefix("blake3:")?;
    // `from_str_radix` alone would also take a leading `+`.
    if hex_part.len() != 64 || !hex_part.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex_part.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Lowercase hex of a hash.
pub fn hex(hash: &Hash) -> String {
    blake3::Hash::from(*hash).to_hex().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_order_puts_children_right_after_their_directory() {
        let mut paths: Vec<&[u8]> = vec![b"a.txt", b"a/b", b"a", b"a-b", b"a/b/c", b"b"];
        paths.sort_by(|a, b| path_order(a, b));
        let want: Vec<&[u8]> = vec![b"a", b"a/b", b"a/b/c", b"a-b", b"a.txt", b"b"];
        assert_eq!(paths, want);
    }

    #[test]
    fn path_order_is_bytes_with_the_slash_ranked_lowest() {
        // The definition, checked on every string of up to 3 bytes over an alphabet with
        // the bytes around '/' and the extremes.
        let rank = |c: u8| if c == b'/' { 0u16 } else { u16::from(c) + 1 };
        let alphabet = [0u8, b'.', b'/', b'0', b'a', 0xff];
        let mut all: Vec<Vec<u8>> = vec![vec![]];
        for len in 1..=3 {
            let start = all.len() - alphabet.len().pow(len - 1);
            for i in start..all.len() {
                for &c in &alphabet {
                    let mut p = all[i].clone();
                    p.push(c);
                    all.push(p);
                }
            }
        }
        for a in &all {
            for b in &all {
                let want = a.iter().map(|&c| rank(c)).cmp(b.iter().map(|&c| rank(c)));
                assert_eq!(path_order(a, b), want, "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn digest_round_trips_through_text() {
        let h = digest(&Rules::default(), &[]);
        let text = format_digest(&h);
        assert!(text.starts_with("blake3:") && text.len() == 7 + 64);
        assert_eq!(parse_digest(&text), Some(h));
        assert_eq!(
            parse_digest(&text.to_uppercase().replace("BLAKE3", "blake3")),
            Some(h)
        );
        assert_eq!(parse_digest(&text[7..]), None);
        assert_eq!(parse_digest("blake3:zz"), None);
        // Two hex digits at a time through `from_str_radix` took `+f` as 15.
        let signed = format!("blake3:+{}", &text[8..]);
        assert_eq!(signed.len(), text.len());
        assert_eq!(parse_digest(&signed), None);
        assert_eq!(parse_digest(&format!("blake3:-{}", &text[8..])), None);
        assert_eq!(parse_digest(&format!("blake3: {}", &text[8..])), None);
        assert_eq!(parse_digest(&format!("{text}\n")), Some(h));
    }

    #[test]
    fn exec_policy_ignores_umask_bits_but_not_the_exec_bit() {
        let e = |mode| Entry {
            path: b"f".to_vec(),
            mode,
            node: Node::File {
                size: 0,
                hash: [0; 32],
            },
        };
        let exec = Rules::default();
        assert_eq!(digest(&exec, &[e(0o664)]), digest(&exec, &[e(0o644)]));
        assert_ne!(digest(&exec, &[e(0o644)]), digest(&exec, &[e(0o744)]));
        let full = Rules {
            modes: ModePolicy::Full,
            ..Rules::default()
        };
        assert_ne!(digest(&full, &[e(0o664)]), digest(&full, &[e(0o644)]));
        assert_ne!(digest(&exec, &[e(0o644)]), digest(&full, &[e(0o644)]));
    }

    #[test]
    fn patterns_take_part_in_the_digest() {
        let a = Rules::default();
        let b = Rules {
            patterns: vec!["x".into()],
            ..Rules::default()
        };
        assert_ne!(digest(&a, &[]), digest(&b, &[]));
    }
}
