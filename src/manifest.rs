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
//! [`decode`] (bytes) and [`Manifest::load`] (a file) treat the manifest as hostile: every
//! length is bounded by the bytes that are actually there, every entry is validated
//! (relative path, no empty, `.` or `..` components, no NUL, strictly increasing, parent
//! directory listed, sane mode), and any corrupted byte is reported as a checksum mismatch.
//! Both go through one decoder that reads the body through a window and hashes it as it
//! goes, so a manifest file is never all in memory beside what it decodes to; nothing
//! decoded is returned, and no error from inside the body reported, before the whole body
//! hashed to the header's checksum. Errors are one-line reasons; the decoder never panics.

use std::fmt;
use std::mem::{align_of, offset_of, size_of};
use std::os::unix::fs::OpenOptionsExt;
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
    ///
    /// A regular file is decoded as it is read, through a window, after its length was
    /// checked against the header; the errors are those [`decode`] gives for its bytes.
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
        // It is often inside the tree, whose access times a check leaves alone.
        let opened = crate::hash::leave_atime(|noatime| {
            let flags = if noatime { nix::libc::O_NOATIME } else { 0 };
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(flags)
                .open(path)
        });
        let file = opened.map_err(|e| match e.kind() {
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
        let file = file.take(MAX_LEN + 1);
        if kind.is_file() {
            // Streamed through a window: the file's bytes are never all in memory at once
            // (at 1M entries they are 40 MB beside the 76 MB of decoded entries).
            return decode_from(file, meta.len(), WINDOW).map_err(|fail| match fail {
                Fail::Decode(e) => corrupt(e.to_string()),
                Fail::Io(e) => Error::io("read manifest", path, e),
            });
        }
        // A pipe has no length to check the header's numbers against before anything is
        // reserved from them, so it is read whole, as the rare thing it is.
        let mut bytes = Vec::new();
        let mut file = file;
        file.read_to_end(&mut bytes)
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
    // Fuzzing reads through a window of a few bytes, so that every entry straddles a
    // window's edge somewhere and the refill and growth paths get the hostile input too.
    let window = if cfg!(fuzzing) {
        1 + bytes.len() % 13
    } else {
        WINDOW
    };
    match decode_from(bytes, bytes.len() as u64, window) {
        Ok(m) => Ok(m),
        Err(Fail::Decode(e)) => Err(e),
        Err(Fail::Io(e)) => unreachable!("reading a slice cannot fail: {e}"),
    }
}

/// The window a manifest's body is read and decoded through; grown only for an entry
/// longer than it (a very long path or symlink target).
const WINDOW: usize = 256 << 10;

/// Why [`decode_from`] failed: the bytes are not a manifest, or reading them failed.
#[derive(Debug)]
enum Fail {
    Decode(DecodeError),
    Io(std::io::Error),
}

impl From<DecodeError> for Fail {
    fn from(e: DecodeError) -> Fail {
        Fail::Decode(e)
    }
}

impl From<std::io::Error> for Fail {
    fn from(e: std::io::Error) -> Fail {
        Fail::Io(e)
    }
}

/// Decodes the manifest that `src` holds, `len` bytes long, reading its body through a
/// window of `window` bytes. The errors and their precedence are those of decoding the
/// whole file at once: the header's own checks, then its body length against `len`, then
/// (after the whole body was read) a body cut short or followed by more bytes than `len`
/// said, then the checksum, and only then what is wrong inside the body. So a corrupted
/// byte is reported as a checksum mismatch even when it breaks an entry, and nothing
/// decoded is returned before the checksum matched.
fn decode_from(
    mut src: impl std::io::Read,
    len: u64,
    window: usize,
) -> std::result::Result<Manifest, Fail> {
    let mut header = [0; HEADER_LEN];
    let got = read_full(&mut src, &mut header)?;
    if got < MAGIC.len() || header[..MAGIC.len()] != MAGIC {
        return Err(DecodeError::WrongMagic.into());
    }
    if got < HEADER_LEN {
        return Err(DecodeError::ShortHeader { len: got }.into());
    }
    let version = le_u16(&header[offset_of!(RawHeader, version)..][..2]);
    if version != FORMAT_VERSION {
        return Err(if version > FORMAT_VERSION {
            DecodeError::NewerVersion(version)
        } else {
            DecodeError::OlderVersion(version)
        }
        .into());
    }
    let flags = le_u16(&header[offset_of!(RawHeader, flags)..][..2]);
    let reserved = &header[offset_of!(RawHeader, reserved)..][..4];
    if flags != 0 || reserved != [0; 4] {
        return Err(DecodeError::UnknownFlags(flags).into());
    }
    let count = le_u64(&header[offset_of!(RawHeader, entries)..][..8]);
    let body_len = le_u64(&header[offset_of!(RawHeader, body_len)..][..8]);
    let found = len.saturating_sub(HEADER_LEN as u64);
    if body_len != found {
        return Err(if body_len > found {
            DecodeError::TruncatedBody {
                promised: body_len,
                found,
            }
        } else {
            DecodeError::TrailingGarbage(found - body_len)
        }
        .into());
    }
    // From here on `body_len` is the real length: what is reserved from it is there.
    let mut body = Body::new(src, body_len, window);
    let decoded = match decode_body(&mut body, count) {
        Err(Fail::Io(e)) => return Err(e.into()),
        decoded => decoded,
    };
    let hash = body.finish()?;
    if hash.as_bytes() != &header[offset_of!(RawHeader, body_blake3)..][..32] {
        return Err(DecodeError::ChecksumMismatch.into());
    }
    decoded
}

/// Decodes the body: the rules and origin, then `count` entries.
fn decode_body(
    body: &mut Body<impl std::io::Read>,
    count: u64,
) -> std::result::Result<Manifest, Fail> {
    let body_len = body.len as usize;
    if count > (body_len / MIN_ENTRY_LEN) as u64 {
        return Err(DecodeError::TooManyEntries { count, body_len }.into());
    }
    let meta: Meta = body
        .take(|w| postcard::take_from_bytes(w).map(|(m, rest)| (m, w.len() - rest.len())))?
        .map_err(DecodeError::BadMeta)?;
    // The full paths usually take less than the body (m1m: 19 MB of paths in a 41 MB
    // body, whose files also hold 32-byte hashes); what is not used is given back below.
    // Unused capacity is never touched, so it costs address space, not resident memory.
    let mut entries = Entries::with_capacity(count as usize, body_len);
    let mut dirs: Vec<usize> = Vec::new(); // lengths of the open ancestor directory paths
                                           // The path being decoded: the previous one, cut to what it shares, and the suffix.
    let mut path: Vec<u8> = Vec::new();
    let mut target: Vec<u8> = Vec::new();
    for index in 0..count {
        let cannot = |e: postcard::Error| DecodeError::Undecodable {
            index,
            source: Some(e),
        };
        let previous = path.len();
        let (shared, head) = body
            .take(|w| {
                let ((shared, suffix, head), rest): ((u32, &[u8], u32), _) =
                    postcard::take_from_bytes(w)?;
                if shared as usize <= path.len() {
                    path.truncate(shared as usize);
                    path.extend_from_slice(suffix);
                }
                Ok(((shared as usize, head), w.len() - rest.len()))
            })?
            .map_err(cannot)?;
        if shared > previous {
            return Err(DecodeError::SharedPrefixTooLong {
                index,
                shared,
                previous,
            }
            .into());
        }
        let prev: &[u8] = entries.last().map_or(&[], |e| e.path);
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
            return Err(at(EntryProblem::OutOfOrder).into());
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
            return Err(at(EntryProblem::ParentMissing).into());
        }
        let xmode = head >> TAG_BITS;
        if xmode > 0o7777 {
            return Err(at(EntryProblem::ModeBits).into());
        }
        let hash: Hash;
        let node = match head & ((1 << TAG_BITS) - 1) {
            TAG_FILE => {
                // postcard writes a [u8; 32] as its 32 bytes; taken as they are, not one
                // element at a time through serde (7% of loading a manifest).
                let size;
                (size, hash) = body
                    .take(|w| {
                        let (size, rest): (u64, _) = postcard::take_from_bytes(w).map_err(Some)?;
                        let (hash, rest) = rest.split_first_chunk::<32>().ok_or(None)?;
                        Ok(((size, *hash), w.len() - rest.len()))
                    })?
                    .map_err(|source| DecodeError::Undecodable { index, source })?;
                if size > i64::MAX as u64 {
                    return Err(at(EntryProblem::ImpossibleSize).into());
                }
                NodeRef::File { size, hash: &hash }
            }
            TAG_DIR => NodeRef::Dir,
            TAG_SYMLINK => {
                body.take(|w| {
                    let (t, rest): (&[u8], _) = postcard::take_from_bytes(w)?;
                    target.clear();
                    target.extend_from_slice(t);
                    Ok(((), w.len() - rest.len()))
                })?
                .map_err(cannot)?;
                if target.is_empty() || target.contains(&0) {
                    return Err(at(EntryProblem::BadSymlinkTarget).into());
                }
                NodeRef::Symlink { target: &target }
            }
            TAG_FIFO => NodeRef::Special(Kind::Fifo),
            TAG_SOCKET => NodeRef::Special(Kind::Socket),
            TAG_DEVICE => NodeRef::Special(Kind::Device),
            tag => return Err(at(EntryProblem::UnknownTag(tag)).into()),
        };
        if node == NodeRef::Dir {
            dirs.push(path.len());
        }
        let mode = xmode ^ usual_mode(node.kind());
        entries.push(&path, mode, node);
    }
    let left = body.left();
    if left != 0 {
        return Err(DecodeError::LeftOver(left as usize).into());
    }
    for p in &meta.rules.patterns {
        if p.is_empty() || p.contains('\0') {
            return Err(DecodeError::BadPattern.into());
        }
    }
    entries.shrink_to_fit();
    Ok(Manifest {
        rules: meta.rules,
        origin: meta.origin,
        entries,
    })
}

/// A manifest's body, read from its source through a window and hashed as it is read.
struct Body<R> {
    src: R,
    /// The body's length, from the header, checked against the source's length.
    len: u64,
    /// The window; `buf[start..end]` is read and not yet decoded.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Body bytes not yet read from the source.
    unread: u64,
    /// The source ended before the body did.
    cut: bool,
    hasher: blake3::Hasher,
}

/// An error that may only mean the window ends too soon: the value may be whole once
/// more of the body is read.
trait CutShort {
    fn cut_short(&self) -> bool;
}

impl CutShort for postcard::Error {
    fn cut_short(&self) -> bool {
        matches!(self, postcard::Error::DeserializeUnexpectedEnd)
    }
}

/// `None` is a file hash cut short.
impl CutShort for Option<postcard::Error> {
    fn cut_short(&self) -> bool {
        self.as_ref().is_none_or(CutShort::cut_short)
    }
}

impl<R: std::io::Read> Body<R> {
    fn new(src: R, len: u64, window: usize) -> Body<R> {
        Body {
            src,
            len,
            buf: vec![0; window.min(usize::try_from(len).unwrap_or(usize::MAX))],
            start: 0,
            end: 0,
            unread: len,
            cut: false,
            hasher: blake3::Hasher::new(),
        }
    }

    /// Decodes one value with `parse`, which gets the window's undecoded bytes and says
    /// how many of them the value took. When it fails for want of bytes and the body has
    /// more, the window is refilled and `parse` tried again, so `parse` must not change
    /// anything unless it succeeds.
    fn take<T, E: CutShort>(
        &mut self,
        mut parse: impl FnMut(&[u8]) -> std::result::Result<(T, usize), E>,
    ) -> std::io::Result<std::result::Result<T, E>> {
        loop {
            match parse(&self.buf[self.start..self.end]) {
                Ok((value, used)) => {
                    self.start += used;
                    return Ok(Ok(value));
                }
                Err(e) if e.cut_short() && self.unread > 0 && !self.cut => self.refill()?,
                Err(e) => return Ok(Err(e)),
            }
        }
    }

    /// Moves the undecoded bytes to the front of the window and reads more of the body
    /// after them, growing the window when they fill it (one entry longer than it).
    fn refill(&mut self) -> std::io::Result<()> {
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        let unread = usize::try_from(self.unread).unwrap_or(usize::MAX);
        if self.end == self.buf.len() {
            let grown = self.end + self.end.max(1).min(unread);
            self.buf.resize(grown, 0);
        }
        let want = (self.buf.len() - self.end).min(unread);
        let to = &mut self.buf[self.end..self.end + want];
        let got = read_full(&mut self.src, to)?;
        self.hasher.update(&to[..got]);
        self.end += got;
        self.unread -= got as u64;
        self.cut = got < want;
        Ok(())
    }

    /// The body bytes after what was decoded.
    fn left(&self) -> u64 {
        (self.end - self.start) as u64 + self.unread
    }

    /// Reads (and hashes) the rest of the body, checks that the source ends where the
    /// body does, and gives the body's hash.
    fn finish(mut self) -> std::result::Result<blake3::Hash, Fail> {
        while self.unread > 0 && !self.cut {
            self.start = self.end;
            self.refill()?;
        }
        if self.unread > 0 {
            return Err(DecodeError::TruncatedBody {
                promised: self.len,
                found: self.len - self.unread,
            }
            .into());
        }
        // The source was as long as the header says when it was checked; a file that
        // grew since has trailing bytes all the same.
        let trailing = std::io::copy(&mut self.src, &mut std::io::sink())?;
        if trailing > 0 {
            return Err(DecodeError::TrailingGarbage(trailing).into());
        }
        Ok(self.hasher.finalize())
    }
}

/// Reads until `buf` is full or the source ends; gives the bytes read.
fn read_full(src: &mut impl std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match src.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
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

    /// A source that hands out at most `step` bytes per read.
    struct Trickle<'a> {
        bytes: &'a [u8],
        step: usize,
    }

    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(self.step).min(self.bytes.len());
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    /// Decodes `bytes` through a window of `window` bytes, read `step` bytes at a time.
    fn chunked(
        bytes: &[u8],
        window: usize,
        step: usize,
    ) -> std::result::Result<Manifest, DecodeError> {
        let src = Trickle { bytes, step };
        decode_from(src, bytes.len() as u64, window).map_err(|fail| match fail {
            Fail::Decode(e) => e,
            Fail::Io(e) => panic!("{e}"),
        })
    }

    /// Many entries, a path and a symlink target each longer than [`WINDOW`], and an
    /// entry with `middle` in its name halfway.
    fn big() -> Manifest {
        let mut entries = Entries::new();
        entries.push(b"d", 0o755, NodeRef::Dir);
        for i in 0..20_000 {
            let name = match i {
                10_000 => format!("d/f{i:05}middle"),
                _ => format!("d/f{i:05}"),
            };
            entries.push(
                name.as_bytes(),
                0o644,
                NodeRef::File {
                    size: i,
                    hash: &[i as u8; 32],
                },
            );
        }
        let long_name = [b'l'; WINDOW + 1000];
        entries.push(&[b"d/", &long_name[..]].concat(), 0o644, NodeRef::Dir);
        let target = [b'x'; 3 * WINDOW];
        entries.push(b"e", 0o777, NodeRef::Symlink { target: &target });
        Manifest {
            entries,
            ..sample()
        }
    }

    #[test]
    fn every_window_decodes_as_the_whole_buffer_does() {
        let bytes = sample().encode();
        let mut inputs: Vec<Vec<u8>> = (0..=bytes.len()).map(|n| bytes[..n].to_vec()).collect();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            inputs.push(b.clone());
            // Behind a valid checksum, so that the entry errors are compared too.
            reseal(&mut b);
            inputs.push(b);
            let mut b = bytes.clone();
            b.insert(i, 0x80);
            reseal(&mut b);
            inputs.push(b);
        }
        for input in &inputs {
            let whole = decode(input);
            for (window, step) in [(1, 1), (1, 64), (7, 7), (7, 3), (64, 1), (WINDOW, 1 << 20)] {
                assert_eq!(
                    chunked(input, window, step),
                    whole,
                    "window {window}, reads of {step}, input {input:?}"
                );
            }
        }
        let big = big();
        let bytes = big.encode();
        assert!(bytes.len() > 4 * WINDOW);
        for (window, step) in [(1, 1 << 20), (7, 7), (4096, 1000), (WINDOW, 1 << 20)] {
            assert_eq!(chunked(&bytes, window, step).as_ref(), Ok(&big));
        }
    }

    #[test]
    fn load_reports_what_decode_does() {
        let dir = tempfile::tempdir().unwrap();
        let load = |bytes: &[u8]| {
            let path = dir.path().join("m");
            std::fs::write(&path, bytes).unwrap();
            match Manifest::load(&path) {
                Ok(m) => Ok(m),
                Err(Error::ManifestCorrupt { reason, .. }) => Err(reason),
                Err(e) => panic!("{e}"),
            }
        };
        let big = big();
        let bytes = big.encode();
        assert_eq!(load(&bytes).as_ref(), Ok(&big));
        let body = (bytes.len() - HEADER_LEN) as u64;
        let truncated = DecodeError::TruncatedBody {
            promised: body,
            found: body - 1,
        };
        assert_eq!(load(&bytes[..bytes.len() - 1]), Err(truncated.to_string()));
        let longer = [&bytes[..], b"xyz"].concat();
        assert_eq!(
            load(&longer),
            Err("3 bytes of trailing garbage after the body".into())
        );
        // A corrupted byte halfway that breaks an entry is a checksum mismatch...
        let middle = bytes.windows(6).position(|w| w == b"middle").unwrap();
        assert!(WINDOW < middle && middle < bytes.len() - WINDOW);
        let mut b = bytes.clone();
        b[middle] = b'/';
        let mismatch = Err(DecodeError::ChecksumMismatch.to_string());
        assert_eq!(load(&b), mismatch);
        // ...which resealed would be the entry's error.
        reseal(&mut b);
        let missing = "entry 10001 (d/f10000/iddle): its parent directory is not listed";
        assert_eq!(load(&b), Err(missing.into()));
        // So is a suffix length that runs past the body's end (the window grows to it).
        let mut b = bytes.clone();
        let suffix_len = middle - "10000".len() - 1;
        assert_eq!(b[suffix_len], "10000middle".len() as u8);
        b[suffix_len..][..4].copy_from_slice(&[0xff, 0xff, 0xff, 0x7f]);
        assert_eq!(load(&b), mismatch);
        reseal(&mut b);
        assert!(load(&b)
            .unwrap_err()
            .starts_with("entry 10001: cannot decode"));
        // The checksum comes before the entry count too, and the count before the body.
        let mut b = bytes.clone();
        b[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(load(&b).unwrap_err().starts_with("header claims"));
        b[middle] = b'/';
        assert_eq!(load(&b), mismatch);
    }

    #[test]
    fn a_read_error_is_not_a_decode_error() {
        struct Failing<'a>(&'a [u8]);
        impl std::io::Read for Failing<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.0.is_empty() {
                    return Err(std::io::Error::other("disk on fire"));
                }
                let n = buf.len().min(self.0.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let bytes = sample().encode();
        let half = Failing(&bytes[..bytes.len() / 2]);
        match decode_from(half, bytes.len() as u64, 16) {
            Err(Fail::Io(e)) => assert_eq!(e.to_string(), "disk on fire"),
            other => panic!("{other:?}"),
        }
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
