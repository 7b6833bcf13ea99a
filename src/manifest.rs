//! The manifest file: its on-disk format, and the encoder and decoder for it.
//!
//! Layout (all integers little-endian; `docs/FORMAT.md` is the full description):
//!
//! ```text
//! header  64 bytes, fixed layout (RawHeader): magic "TREESEAL", format version, flags,
//!         reserved, entry count, body length, blake3 of the body
//! body    postcard: Meta { rules, origin }, then `entry count` entries, each
//!         (shared, suffix, head) and, by kind, (size, hash) or a symlink target
//! ```
//!
//! Entries are stored in [path order](crate::tree::path_order) with their path
//! prefix-compressed against the previous entry's path, and the kind and mode packed into
//! one varint (`head`), so a typical source file costs its file name, five or six varint
//! bytes and its 32-byte hash.
//!
//! [`decode`] takes bytes, never a path, and treats them as hostile: every length is
//! bounded by the bytes that are actually there, every entry is validated (relative path,
//! no empty, `.` or `..` components, no NUL, strictly increasing, parent directory listed,
//! sane mode), and any corrupted byte is caught by the body checksum before the body is
//! read. Errors are one-line reasons; the decoder never panics.

use std::fmt;
use std::mem::{align_of, offset_of, size_of};
use std::path::Path;

use serde::{Deserialize, Serialize};
use static_assertions::const_assert_eq;

use crate::error::{Error, Result};
use crate::tree::{self, Entries, Hash, Kind, NodeRef, Rules};

/// The first eight bytes of every manifest.
pub const MAGIC: [u8; 8] = *b"TREESEAL";

/// The format version this build writes and reads. Changing the layout of the header or
/// the body is a format break and must bump it.
pub const FORMAT_VERSION: u16 = 2;

pub use crate::tree::DEFAULT_NAME;

/// The fixed-layout header. Every field is a byte array so the layout has no padding and
/// no alignment; the assertions below pin it, and changing it is a format break.
#[repr(C)]
struct RawHeader {
    magic: [u8; 8],
    version: [u8; 2],
    flags: [u8; 2],
    reserved: [u8; 4],
    entries: [u8; 8],
    body_len: [u8; 8],
    body_blake3: [u8; 32],
}

/// The largest manifest [`Manifest::load`] reads (1 GiB, some 20 million entries).
pub const MAX_LEN: u64 = 1 << 30;

/// Size of the header in bytes.
pub const HEADER_LEN: usize = 64;
const_assert_eq!(size_of::<RawHeader>(), HEADER_LEN);
const_assert_eq!(align_of::<RawHeader>(), 1);
const_assert_eq!(offset_of!(RawHeader, version), 8);
const_assert_eq!(offset_of!(RawHeader, entries), 16);
const_assert_eq!(offset_of!(RawHeader, body_len), 24);
const_assert_eq!(offset_of!(RawHeader, body_blake3), 32);

/// The smallest encoding of one entry (shared, suffix length, one suffix byte, head);
/// bounds the entry count a body of a given length can claim.
const MIN_ENTRY_LEN: usize = 4;

/// Where and when a manifest was made. Informational: not part of the digest, so locking
/// the same tree twice gives the same digest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// Seconds since the Unix epoch when `lock` ran.
    pub created_unix: u64,
    /// The source commit, when known (from `SOURCE_COMMIT`-style variables or git).
    pub source: Option<String>,
    /// The treeseal version that wrote the manifest.
    pub tool: String,
}

/// A decoded manifest: the rules, where it came from, and the entries in path order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    /// The rules the tree was locked with.
    pub rules: Rules,
    /// Where and when it was made.
    pub origin: Origin,
    /// The entries, in [`tree::path_order`], unique.
    pub entries: Entries,
}

#[derive(Serialize, Deserialize)]
struct Meta {
    rules: Rules,
    origin: Origin,
}

/// The kind tags in the low [`TAG_BITS`] bits of an entry's `head`; the bits above hold
/// its mode XORed with [`usual_mode`] of its kind, so a typical entry's head is one byte.
const TAG_BITS: u32 = 3;
const TAG_FILE: u32 = 0;
const TAG_DIR: u32 = 1;
const TAG_SYMLINK: u32 = 2;
const TAG_FIFO: u32 = 3;
const TAG_SOCKET: u32 = 4;
const TAG_DEVICE: u32 = 5;

impl Manifest {
    /// The root digest of the tree this manifest describes.
    pub fn digest(&self) -> Hash {
        tree::digest(&self.rules, &self.entries)
    }

    /// Encodes the manifest into its file format.
    pub fn encode(&self) -> Vec<u8> {
        // The header goes in front of the body in the same buffer and is filled in last:
        // a second buffer for the whole file would hold the manifest twice.
        let mut body = Vec::with_capacity(HEADER_LEN + 64 + self.entries.len() * 48);
        body.resize(HEADER_LEN, 0);
        body = append(
            body,
            &Meta {
                rules: self.rules.clone(),
                origin: self.origin.clone(),
            },
        );
        let mut prev: &[u8] = &[];
        for e in &self.entries {
            let shared = common_prefix(prev, e.path);
            let tag = match e.node {
                NodeRef::File { .. } => TAG_FILE,
                NodeRef::Dir => TAG_DIR,
                NodeRef::Symlink { .. } => TAG_SYMLINK,
                NodeRef::Special(Kind::Fifo) => TAG_FIFO,
                NodeRef::Special(Kind::Socket) => TAG_SOCKET,
                NodeRef::Special(_) => TAG_DEVICE,
            };
            let head = (e.mode ^ usual_mode(e.node.kind())) << TAG_BITS | tag;
            body = append(body, &(shared as u32, &e.path[shared..], head));
            body = match e.node {
                NodeRef::File { size, hash } => append(body, &(size, hash)),
                NodeRef::Symlink { target } => append(body, &target),
                _ => body,
            };
            prev = e.path;
        }
        let (header, rest) = body.split_at_mut(HEADER_LEN);
        let mut header = &mut header[..];
        for field in [
            &MAGIC[..],
            &FORMAT_VERSION.to_le_bytes(),
            &0u16.to_le_bytes(),
            &0u32.to_le_bytes(),
            &(self.entries.len() as u64).to_le_bytes(),
            &(rest.len() as u64).to_le_bytes(),
            blake3::hash(rest).as_bytes(),
        ] {
            let (to, after) = header.split_at_mut(field.len());
            to.copy_from_slice(field);
            header = after;
        }
        debug_assert!(header.is_empty());
        body
    }

    /// Reads and decodes the manifest at `path`.
    ///
    /// `path` must be a regular file or a pipe (`--manifest <(...)`), of at most
    /// [`MAX_LEN`] bytes: a device, a socket or a directory is refused, so that a path
    /// such as `/dev/zero` cannot make the reader allocate without end or block forever on
    /// a terminal. A named pipe blocks on opening until a writer opens it, as any reader
    /// of a FIFO does; what it then delivers is decoded like any other manifest.
    pub fn load(path: &Path) -> Result<Manifest> {
        use std::io::Read;
        use std::os::unix::fs::FileTypeExt;
        let corrupt = |reason: String| Error::ManifestCorrupt {
            path: path.to_path_buf(),
            reason,
        };
        let too_long = || {
            corrupt(format!(
                "longer than {MAX_LEN} bytes, the most treeseal reads"
            ))
        };
        let file = std::fs::File::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::ManifestMissing(path.to_path_buf()),
            _ => Error::io("read manifest", path, e),
        })?;
        let meta = file
            .metadata()
            .map_err(|e| Error::io("read manifest", path, e))?;
        let kind = meta.file_type();
        if kind.is_dir() {
            let e = std::io::Error::from_raw_os_error(nix::libc::EISDIR);
            return Err(Error::io("read manifest", path, e));
        }
        if !kind.is_file() && !kind.is_fifo() {
            let e = std::io::Error::other("not a regular file or a pipe");
            return Err(Error::io("read manifest", path, e));
        }
        if meta.len() > MAX_LEN {
            return Err(too_long());
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.take(MAX_LEN + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io("read manifest", path, e))?;
        if bytes.len() as u64 > MAX_LEN {
            return Err(too_long());
        }
        decode(&bytes).map_err(|e| corrupt(e.to_string()))
    }

    /// Writes the manifest to `path` atomically and durably (see [`crate::atomic::write`]:
    /// a temporary file created exclusively, synced, renamed, and its directory synced),
    /// so a reader never sees half a manifest.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::atomic::write(path, &self.encode(), true, MANIFEST_MODE)
            .map_err(|e| Error::io("write manifest", path, e))
    }
}

/// A manifest's permission bits before the umask: readable by everyone, because `COPY`
/// keeps them and the app's user in the image must read it.
const MANIFEST_MODE: u32 = 0o666;

/// The mode most entries of a kind have. Entries store their mode XORed with it, so the
/// common case is 0: a one-byte varint instead of two (about 1 byte per entry, 2% of a
/// typical manifest).
fn usual_mode(kind: Kind) -> u32 {
    match kind {
        Kind::File => 0o644,
        Kind::Dir => 0o755,
        Kind::Symlink => 0o777,
        _ => 0,
    }
}

/// Rewrites the body length and body checksum of a header-plus-body so that they match the
/// body. For tests and fuzzing: it lets an edited body reach the validation behind the
/// checksum. Shorter input than a header is left alone.
pub fn reseal(bytes: &mut [u8]) {
    if bytes.len() < HEADER_LEN {
        return;
    }
    let (header, body) = bytes.split_at_mut(HEADER_LEN);
    header[offset_of!(RawHeader, body_len)..][..8]
        .copy_from_slice(&(body.len() as u64).to_le_bytes());
    header[offset_of!(RawHeader, body_blake3)..][..32]
        .copy_from_slice(blake3::hash(body).as_bytes());
}

/// Appends the postcard encoding of `value` to `body`.
fn append<T: Serialize + ?Sized>(body: Vec<u8>, value: &T) -> Vec<u8> {
    postcard::to_extend(value, body).expect("writing to a Vec cannot fail")
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

fn le_u16(b: &[u8]) -> u16 {
    u16::from_le_bytes(b.try_into().expect("2 bytes"))
}

fn le_u64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b.try_into().expect("8 bytes"))
}

/// Why bytes are not a manifest this build can read. Each variant's message is one line
/// that says what is wrong (and, for a version mismatch, what to do).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes do not start with the manifest's magic bytes.
    WrongMagic,
    /// Shorter than the fixed-size header.
    ShortHeader {
        /// How many bytes there are.
        len: usize,
    },
    /// Written in a newer format version than this build reads.
    NewerVersion(u16),
    /// Written in an older format version than this build reads.
    OlderVersion(u16),
    /// Header flags or reserved bytes are set (a newer writer's feature).
    UnknownFlags(u16),
    /// The body is shorter than the header says.
    TruncatedBody {
        /// Body bytes the header promises.
        promised: u64,
        /// Body bytes there are.
        found: u64,
    },
    /// Bytes follow the body the header describes.
    TrailingGarbage(u64),
    /// The body does not hash to the header's checksum.
    ChecksumMismatch,
    /// The header claims more entries than the body's bytes could hold.
    TooManyEntries {
        /// The entry count in the header.
        count: u64,
        /// The body's length in bytes.
        body_len: usize,
    },
    /// The rules/origin block at the start of the body cannot be decoded.
    BadMeta(postcard::Error),
    /// Entry `index` cannot be decoded (cut short or malformed).
    Undecodable {
        /// The entry's position in the manifest.
        index: u64,
        /// postcard's reason; `None` when a file's hash is cut short.
        source: Option<postcard::Error>,
    },
    /// Entry `index` says it shares more bytes with the previous path than that has.
    SharedPrefixTooLong {
        /// The entry's position in the manifest.
        index: u64,
        /// The bytes it claims to share.
        shared: usize,
        /// The previous path's length.
        previous: usize,
    },
    /// Entry `index` decoded, but is not a valid entry.
    BadEntry {
        /// The entry's position in the manifest.
        index: u64,
        /// Its path (raw bytes; escaped when shown).
        path: Vec<u8>,
        /// What is wrong with it.
        problem: EntryProblem,
    },
    /// Bytes are left in the body after the last entry.
    LeftOver(usize),
    /// An ignore pattern in the rules is empty or contains NUL.
    BadPattern,
}

/// What is wrong with one decoded manifest entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryProblem {
    /// Its path is empty.
    EmptyPath,
    /// Its path contains a NUL byte.
    NulInPath,
    /// Its path starts with `/`.
    AbsolutePath,
    /// Its path has an empty component (`a//b`, or a trailing `/`).
    EmptyComponent,
    /// Its path has a `.` or `..` component.
    DotComponent,
    /// It does not sort after the previous entry (or repeats it).
    OutOfOrder,
    /// Its parent directory is not the entry's nearest listed ancestor.
    ParentMissing,
    /// Its mode has bits outside `0o7777`.
    ModeBits,
    /// A file size no file system can hold.
    ImpossibleSize,
    /// A symlink target that is empty or contains NUL.
    BadSymlinkTarget,
    /// A kind tag this build does not know.
    UnknownTag(u32),
}

impl fmt::Display for EntryProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EntryProblem::EmptyPath => f.write_str("empty path"),
            EntryProblem::NulInPath => f.write_str("NUL byte in path"),
            EntryProblem::AbsolutePath => f.write_str("absolute path"),
            EntryProblem::EmptyComponent => f.write_str("empty path component"),
            EntryProblem::DotComponent => f.write_str("`.` or `..` component"),
            EntryProblem::OutOfOrder => f.write_str("out of order or duplicate"),
            EntryProblem::ParentMissing => f.write_str("its parent directory is not listed"),
            EntryProblem::ModeBits => f.write_str("mode has bits outside 0o7777"),
            EntryProblem::ImpossibleSize => f.write_str("impossible file size"),
            EntryProblem::BadSymlinkTarget => f.write_str("empty symlink target or NUL byte in it"),
            EntryProblem::UnknownTag(tag) => write!(f, "unknown kind tag {tag}"),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::WrongMagic => f.write_str("not a treeseal manifest (wrong magic bytes)"),
            DecodeError::ShortHeader { len } => write!(
                f,
                "truncated: {len} bytes, shorter than the {HEADER_LEN}-byte header"
            ),
            DecodeError::NewerVersion(v) => write!(
                f,
                "format version {v} is newer than this treeseal reads ({FORMAT_VERSION}); use a newer treeseal"
            ),
            DecodeError::OlderVersion(v) => write!(
                f,
                "format version {v} is older than this treeseal reads ({FORMAT_VERSION}); lock the tree again"
            ),
            DecodeError::UnknownFlags(flags) => write!(
                f,
                "unknown header flags {flags:#06x} (written by a newer treeseal?)"
            ),
            DecodeError::TruncatedBody { promised, found } => write!(
                f,
                "truncated: header promises {promised} body bytes, file has {found}"
            ),
            DecodeError::TrailingGarbage(n) => {
                write!(f, "{n} bytes of trailing garbage after the body")
            }
            DecodeError::ChecksumMismatch => {
                f.write_str("checksum mismatch: the file was damaged or edited")
            }
            DecodeError::TooManyEntries { count, body_len } => write!(
                f,
                "header claims {count} entries, more than {body_len} body bytes can hold"
            ),
            DecodeError::BadMeta(e) => write!(f, "bad rules/origin block: {e}"),
            DecodeError::Undecodable { index, source } => match source {
                Some(e) => write!(f, "entry {index}: cannot decode: {e}"),
                None => write!(f, "entry {index}: cannot decode: the hash is cut short"),
            },
            DecodeError::SharedPrefixTooLong {
                index,
                shared,
                previous,
            } => write!(
                f,
                "entry {index}: shares {shared} bytes with a {previous}-byte path"
            ),
            DecodeError::BadEntry {
                index,
                path,
                problem,
            } => write!(
                f,
                "entry {index} ({}): {problem}",
                crate::escape::escape(path)
            ),
            DecodeError::LeftOver(n) => write!(f, "{n} bytes left over after the last entry"),
            DecodeError::BadPattern => f.write_str("an ignore pattern is empty or contains NUL"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Decodes a manifest from its bytes.
pub fn decode(bytes: &[u8]) -> std::result::Result<Manifest, DecodeError> {
    if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
        return Err(DecodeError::WrongMagic);
    }
    if bytes.len() < HEADER_LEN {
        return Err(DecodeError::ShortHeader { len: bytes.len() });
    }
    let (header, body) = bytes.split_at(HEADER_LEN);
    let version = le_u16(&header[offset_of!(RawHeader, version)..][..2]);
    if version != FORMAT_VERSION {
        return Err(if version > FORMAT_VERSION {
            DecodeError::NewerVersion(version)
        } else {
            DecodeError::OlderVersion(version)
        });
    }
    let flags = le_u16(&header[offset_of!(RawHeader, flags)..][..2]);
    let reserved = &header[offset_of!(RawHeader, reserved)..][..4];
    if flags != 0 || reserved != [0; 4] {
        return Err(DecodeError::UnknownFlags(flags));
    }
    let count = le_u64(&header[offset_of!(RawHeader, entries)..][..8]);
    let body_len = le_u64(&header[offset_of!(RawHeader, body_len)..][..8]);
    if body_len != body.len() as u64 {
        return Err(if body_len > body.len() as u64 {
            DecodeError::TruncatedBody {
                promised: body_len,
                found: body.len() as u64,
            }
        } else {
            DecodeError::TrailingGarbage(body.len() as u64 - body_len)
        });
    }
    if blake3::hash(body).as_bytes() != &header[offset_of!(RawHeader, body_blake3)..][..32] {
        return Err(DecodeError::ChecksumMismatch);
    }
    if count > (body.len() / MIN_ENTRY_LEN) as u64 {
        return Err(DecodeError::TooManyEntries {
            count,
            body_len: body.len(),
        });
    }

    let (meta, mut rest): (Meta, _) =
        postcard::take_from_bytes(body).map_err(DecodeError::BadMeta)?;
    // The full paths usually take less than the body (m1m: 19 MB of paths in a 41 MB
    // body, whose files also hold 32-byte hashes); what is not used is given back below.
    // Unused capacity is never touched, so it costs address space, not resident memory.
    let mut entries = Entries::with_capacity(count as usize, body.len());
    let mut dirs: Vec<usize> = Vec::new(); // lengths of the open ancestor directory paths
                                           // The path being decoded: the previous one, cut to what it shares, and the suffix.
    let mut path: Vec<u8> = Vec::new();
    for index in 0..count {
        let cannot = |e: postcard::Error| DecodeError::Undecodable {
            index,
            source: Some(e),
        };
        let ((shared, suffix, head), tail): ((u32, &[u8], u32), _) =
            postcard::take_from_bytes(rest).map_err(cannot)?;
        rest = tail;
        let prev: &[u8] = entries.last().map_or(&[], |e| e.path);
        let shared = shared as usize;
        if shared > prev.len() {
            return Err(DecodeError::SharedPrefixTooLong {
                index,
                shared,
                previous: prev.len(),
            });
        }
        path.truncate(shared);
        path.extend_from_slice(suffix);
        let at = |problem| DecodeError::BadEntry {
            index,
            path: path.clone(),
            problem,
        };
        // Whole components shared with the previous path were checked with it.
        let from = prev[..shared]
            .iter()
            .rposition(|&c| c == b'/')
            .map_or(0, |i| i + 1);
        check_path(&path, from).map_err(at)?;
        if !entries.is_empty() && tree::path_order(&prev[shared..], &path[shared..]).is_ge() {
            return Err(at(EntryProblem::OutOfOrder));
        }
        while let Some(&len) = dirs.last() {
            // Open directories are ancestors of (or equal to) the previous path.
            if path.len() > len && path[len] == b'/' && path[..len] == prev[..len] {
                break;
            }
            dirs.pop();
        }
        let parent_len = path.iter().rposition(|&c| c == b'/').unwrap_or(0);
        if dirs.last().copied().unwrap_or(0) != parent_len {
            return Err(at(EntryProblem::ParentMissing));
        }
        let xmode = head >> TAG_BITS;
        if xmode > 0o7777 {
            return Err(at(EntryProblem::ModeBits));
        }
        let node = match head & ((1 << TAG_BITS) - 1) {
            TAG_FILE => {
                let (size, tail): (u64, _) = postcard::take_from_bytes(rest).map_err(cannot)?;
                // postcard writes a [u8; 32] as its 32 bytes; taken as they are, not one
                // element at a time through serde (7% of loading a manifest).
                let Some((hash, tail)) = tail.split_first_chunk::<32>() else {
                    return Err(DecodeError::Undecodable {
                        index,
                        source: None,
                    });
                };
                rest = tail;
                if size > i64::MAX as u64 {
                    return Err(at(EntryProblem::ImpossibleSize));
                }
                NodeRef::File { size, hash }
            }
            TAG_DIR => NodeRef::Dir,
            TAG_SYMLINK => {
                let (target, tail): (&[u8], _) = postcard::take_from_bytes(rest).map_err(cannot)?;
                rest = tail;
                if target.is_empty() || target.contains(&0) {
                    return Err(at(EntryProblem::BadSymlinkTarget));
                }
                NodeRef::Symlink { target }
            }
            TAG_FIFO => NodeRef::Special(Kind::Fifo),
            TAG_SOCKET => NodeRef::Special(Kind::Socket),
            TAG_DEVICE => NodeRef::Special(Kind::Device),
            tag => return Err(at(EntryProblem::UnknownTag(tag))),
        };
        if node == NodeRef::Dir {
            dirs.push(path.len());
        }
        let mode = xmode ^ usual_mode(node.kind());
        entries.push(&path, mode, node);
    }
    if !rest.is_empty() {
        return Err(DecodeError::LeftOver(rest.len()));
    }
    for p in &meta.rules.patterns {
        if p.is_empty() || p.contains('\0') {
            return Err(DecodeError::BadPattern);
        }
    }
    entries.shrink_to_fit();
    Ok(Manifest {
        rules: meta.rules,
        origin: meta.origin,
        entries,
    })
}

/// Checks one manifest path: relative, non-empty components, no `.`/`..`, no NUL.
/// Checks `path[from..]`, where `path[..from]` is whole components already checked (`from`
/// is 0 or just after a `/`).
fn check_path(path: &[u8], from: usize) -> std::result::Result<(), EntryProblem> {
    if path.is_empty() {
        return Err(EntryProblem::EmptyPath);
    }
    let tail = &path[from..];
    if tail.contains(&0) {
        return Err(EntryProblem::NulInPath);
    }
    if from == 0 && path[0] == b'/' {
        return Err(EntryProblem::AbsolutePath);
    }
    for component in tail.split(|&c| c == b'/') {
        match component {
            b"" => return Err(EntryProblem::EmptyComponent),
            b"." | b".." => return Err(EntryProblem::DotComponent),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::EntryRef;

    fn sample() -> Manifest {
        let file = |p: &'static [u8], size, hash| EntryRef {
            path: p,
            mode: 0o644,
            node: NodeRef::File { size, hash },
        };
        let dir = |p: &'static [u8]| EntryRef {
            path: p,
            mode: 0o755,
            node: NodeRef::Dir,
        };
        Manifest {
            rules: Rules {
                patterns: vec!["**/*.pyc".into(), "!keep.pyc".into()],
                modes: tree::ModePolicy::Exec,
            },
            origin: Origin {
                created_unix: 1_700_000_000,
                source: Some("0e421ef".into()),
                tool: "treeseal test".into(),
            },
            entries: [
                dir(b"a"),
                file(b"a/b.txt", 3, &[1; 32]),
                dir(b"a/sub"),
                EntryRef {
                    path: b"a/sub/link",
                    mode: 0o777,
                    node: NodeRef::Symlink {
                        target: b"../b.txt",
                    },
                },
                EntryRef {
                    path: b"a/sub/pipe",
                    mode: 0o600,
                    node: NodeRef::Special(Kind::Fifo),
                },
                file(b"a.txt", 0, &[2; 32]),
                file(b"z\xff", 10, &[3; 32]),
            ]
            .into_iter()
            .collect(),
        }
    }

    #[test]
    fn round_trip() {
        let m = sample();
        let bytes = m.encode();
        assert_eq!(&bytes[..8], b"TREESEAL");
        assert_eq!(decode(&bytes).unwrap(), m);
    }

    #[test]
    fn every_truncation_and_every_byte_flip_is_an_error() {
        let bytes = sample().encode();
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "truncated to {len}");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            assert!(decode(&b).is_err(), "flip at {i}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(decode(&longer), Err(DecodeError::TrailingGarbage(1)));
    }

    #[test]
    fn reseal_makes_an_edited_body_pass_the_checksum() {
        let mut bytes = sample().encode();
        bytes.push(0);
        assert_eq!(decode(&bytes), Err(DecodeError::TrailingGarbage(1)));
        reseal(&mut bytes);
        assert_eq!(decode(&bytes), Err(DecodeError::LeftOver(1)));
        assert_eq!(
            DecodeError::LeftOver(1).to_string(),
            "1 bytes left over after the last entry"
        );
    }

    fn with_entries(entries: Vec<EntryRef>) -> std::result::Result<Manifest, DecodeError> {
        let m = Manifest {
            entries: entries.into_iter().collect(),
            ..sample()
        };
        let mut bytes = m.encode();
        reseal(&mut bytes);
        decode(&bytes)
    }

    fn e<'a>(path: &'a [u8], node: NodeRef<'a>) -> EntryRef<'a> {
        EntryRef {
            path,
            mode: 0o644,
            node,
        }
    }

    #[test]
    fn rejects_bad_paths_and_order() {
        use EntryProblem::*;
        let f = || NodeRef::File {
            size: 1,
            hash: &[0; 32],
        };
        for (entries, want) in [
            (vec![e(b"../x", f())], DotComponent),
            (vec![e(b"./x", f())], DotComponent),
            (vec![e(b"/x", f())], AbsolutePath),
            (vec![e(b"a//b", f())], EmptyComponent),
            (vec![e(b"a\0b", f())], NulInPath),
            (vec![e(b"b", f()), e(b"a", f())], OutOfOrder),
            (vec![e(b"a", f()), e(b"a", f())], OutOfOrder),
            (vec![e(b"a/b", f())], ParentMissing),
            (vec![e(b"a", f()), e(b"a/b", f())], ParentMissing),
            (
                vec![
                    e(b"a", NodeRef::Dir),
                    e(b"a/b", NodeRef::Dir),
                    e(b"a/bc/d", f()),
                ],
                ParentMissing,
            ),
            (
                vec![e(b"l", NodeRef::Symlink { target: b"" })],
                BadSymlinkTarget,
            ),
            // The bad component starts inside the part shared with the previous path.
            (
                vec![
                    e(b"a", NodeRef::Dir),
                    e(b"a/b", NodeRef::Dir),
                    e(b"a/b/..", f()),
                ],
                DotComponent,
            ),
            (
                vec![
                    e(b"a", NodeRef::Dir),
                    e(b"a/bc", NodeRef::Dir),
                    e(b"a/b\0", f()),
                ],
                NulInPath,
            ),
            (vec![e(b"a", NodeRef::Dir), e(b"a/", f())], EmptyComponent),
        ] {
            let err = with_entries(entries).unwrap_err();
            assert!(
                matches!(err, DecodeError::BadEntry { problem, .. } if problem == want),
                "{err} should be {want:?}"
            );
        }
        // The line names the entry, escaped.
        assert_eq!(
            with_entries(vec![e(b"b", f()), e(b"a\nb", f())])
                .unwrap_err()
                .to_string(),
            "entry 1 (a\\nb): out of order or duplicate"
        );
        let ok = vec![
            e(b"a", NodeRef::Dir),
            e(b"a/b", NodeRef::Dir),
            e(b"a/b/c", f()),
            e(b"a/d", f()),
            e(b"a.x", f()),
        ];
        assert!(with_entries(ok).is_ok());
    }

    #[test]
    fn rejects_unknown_kind_tags_and_mode_bits() {
        // One directory with its usual mode: its head, the body's last byte, is its tag.
        let mut entries = Entries::new();
        entries.push(b"a", 0o755, NodeRef::Dir);
        let good = Manifest {
            entries,
            ..sample()
        }
        .encode();
        assert_eq!(good.last(), Some(&(TAG_DIR as u8)));
        let with_head = |head: &[u8]| {
            let mut b = good[..good.len() - 1].to_vec();
            b.extend_from_slice(head);
            reseal(&mut b);
            decode(&b)
        };
        assert!(with_head(&[TAG_DIR as u8]).is_ok());
        for tag in [6u8, 7] {
            let err = with_head(&[tag]).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("entry 0 (a): unknown kind tag {tag}")
            );
        }
        // Mode 0o10000 (one bit too many) on a directory: 0o10000 << 3 | 1 as a varint.
        let err = with_head(&[0x81, 0x80, 0x02]).unwrap_err();
        assert!(
            matches!(
                err,
                DecodeError::BadEntry {
                    problem: EntryProblem::ModeBits,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn rejects_unknown_versions_and_impossible_counts() {
        let mut b = sample().encode();
        b[8] = 9;
        assert_eq!(decode(&b), Err(DecodeError::NewerVersion(9)));
        b[8] = 1;
        let err = decode(&b).unwrap_err();
        assert_eq!(err, DecodeError::OlderVersion(1));
        assert!(err.to_string().ends_with("; lock the tree again"), "{err}");
        let mut b = sample().encode();
        b[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            decode(&b),
            Err(DecodeError::TooManyEntries {
                count: u64::MAX,
                ..
            })
        ));
        let mut b = sample().encode();
        b[10] = 1;
        assert_eq!(decode(&b), Err(DecodeError::UnknownFlags(1)));
    }

    #[test]
    fn origin_is_not_part_of_the_digest() {
        let a = sample();
        let mut b = sample();
        b.origin.created_unix += 1;
        b.origin.source = None;
        assert_eq!(a.digest(), b.digest());
    }
}
