//! Reading one image layer: a tar stream, stored uncompressed, gzip- or zstd-compressed.
//!
//! A layer is read once, as a stream, and summarised: for every tar entry its normalised
//! path, its mode and what it is (a file's size and blake3, a symlink's target, a hard
//! link's target path, a whiteout, an opaque-directory marker). Nothing is written to
//! disk. While the stream passes through, the SHA-256 of the bytes as stored (the OCI
//! descriptor digest) and of the uncompressed tar (the config's `diff_id`) are computed,
//! so that the archive's own integrity can be checked against its descriptors.
//!
//! The content of a file is kept in memory only when it starts with the manifest magic
//! bytes: those are the candidate treeseal manifests the gate will read.
//!
//! Everything here reads untrusted bytes. Every bad input is a [`LayerError`], never a
//! panic; memory is bounded by [`Budget`] and by the decompression ratio limit.

use std::cell::Cell;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read};
use std::rc::Rc;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::escape::escape;
use crate::manifest::{MAGIC, MAX_LEN};
use crate::tree::{Hash, Kind};

/// A SHA-256 digest (OCI descriptors and `diff_id`s).
pub type Sha256Hash = [u8; 32];

/// The longest entry path accepted (bytes). No file system lets one create a path this
/// long through a single name lookup, and it bounds what one entry can cost in memory.
pub const MAX_PATH: usize = 64 * 1024;

/// A compressed layer may expand to at most this many times its compressed size (plus
/// [`BOMB_SLACK`]). gzip's best case is about 1032:1, so a legitimate gzip layer never
/// reaches it; anything beyond is treated as a decompression bomb.
pub const BOMB_RATIO: u64 = 1024;

/// Extra uncompressed bytes always allowed, so that tiny compressed layers (a few bytes of
/// zstd for a run of zeros) are not refused by the ratio alone.
pub const BOMB_SLACK: u64 = 64 * 1024 * 1024;

/// The limits shared by every layer of one image read, so that the memory one read may
/// use is bounded however many layers or entries an archive holds.
#[derive(Clone, Debug)]
pub struct Budget {
    /// Entries that may still be recorded. Each costs its path plus about 80 bytes.
    pub entries: u64,
    /// Bytes of candidate manifests that may still be kept in memory.
    pub kept: u64,
    /// A compressed layer may expand to this many times its stored size...
    pub ratio: u64,
    /// ...plus this many bytes.
    pub slack: u64,
}

/// Entries all layers of one image may hold together: four times the 1 GiB manifest's
/// entry count would be far beyond any real image, yet stays within a few GiB of memory.
pub const MAX_ENTRIES: u64 = 4_000_000;

impl Default for Budget {
    fn default() -> Budget {
        Budget {
            entries: MAX_ENTRIES,
            kept: MAX_LEN,
            ratio: BOMB_RATIO,
            slack: BOMB_SLACK,
        }
    }
}

/// How a layer is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip (RFC 1952), possibly several members.
    Gzip,
    /// Zstandard frames.
    Zstd,
}

impl Compression {
    /// The name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }
}

/// What one layer entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// A regular file; `manifest` holds its content when it starts with the manifest magic.
    File {
        /// Length in bytes.
        size: u64,
        /// blake3 of the content.
        hash: Hash,
        /// The content, for a candidate treeseal manifest.
        manifest: Option<Arc<Vec<u8>>>,
    },
    /// A directory.
    Dir,
    /// A symbolic link with this target.
    Symlink(Vec<u8>),
    /// A hard link to this (normalised) path, in this layer or a lower one.
    HardLink(Vec<u8>),
    /// A FIFO or device.
    Special(Kind),
    /// `.wh.NAME`: the entry's path is removed from the lower layers.
    Whiteout,
    /// `.wh..wh..opq`: everything below the entry's path in the lower layers is removed.
    Opaque,
}

/// One entry of a layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerEntry {
    /// Normalised: relative to the image root, no `.` or empty components, never `..`.
    pub path: Vec<u8>,
    /// Permission bits (`mode & 0o7777`).
    pub mode: u32,
    /// What it is.
    pub item: Item,
}

/// A layer, read.
#[derive(Clone, Debug)]
pub struct Layer {
    /// The entries, in archive order.
    pub entries: Vec<LayerEntry>,
    /// How it was stored.
    pub compression: Compression,
    /// SHA-256 of the bytes as stored.
    pub blob_sha256: Sha256Hash,
    /// The number of bytes as stored.
    pub blob_len: u64,
    /// SHA-256 of the uncompressed tar.
    pub diff_sha256: Sha256Hash,
}

/// Why a layer could not be read.
#[derive(Clone, Debug)]
pub enum LayerError {
    /// The stream is truncated or corrupt (tar, gzip or zstd), with the reader's reason.
    Corrupt(String),
    /// An entry name has a `..` component.
    DotDot(Vec<u8>),
    /// A whiteout names `.` or `..` or nothing: it would delete outside its directory.
    WhiteoutEscapes(Vec<u8>),
    /// An entry path longer than [`MAX_PATH`].
    PathTooLong(usize),
    /// An entry type treeseal does not know (the tar type flag).
    UnsupportedType(Vec<u8>, u8),
    /// The stream expands beyond [`BOMB_RATIO`] times its compressed size.
    Bomb,
    /// More entries or kept manifest bytes than [`Budget`] allows.
    TooBig(&'static str),
}

impl fmt::Display for LayerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayerError::Corrupt(reason) => write!(f, "truncated or corrupt: {reason}"),
            LayerError::DotDot(p) => {
                write!(f, "entry {} has a `..` component", escape(p))
            }
            LayerError::WhiteoutEscapes(p) => write!(
                f,
                "whiteout {} would delete outside its directory",
                escape(p)
            ),
            LayerError::PathTooLong(n) => {
                write!(
                    f,
                    "an entry path of {n} bytes (at most {MAX_PATH} accepted)"
                )
            }
            LayerError::UnsupportedType(p, t) => write!(
                f,
                "entry {} has the unsupported tar type {}",
                escape(p),
                escape(&[*t])
            ),
            LayerError::Bomb => write!(
                f,
                "decompresses to more than {BOMB_RATIO} times its size (a decompression bomb)"
            ),
            LayerError::TooBig(what) => write!(f, "too many {what} for one image"),
        }
    }
}

impl std::error::Error for LayerError {}

fn corrupt(e: io::Error) -> LayerError {
    // The bomb guard's error travels through the decoders as an io::Error.
    if e.get_ref().is_some_and(|inner| inner.is::<BombError>()) {
        return LayerError::Bomb;
    }
    LayerError::Corrupt(one_line(&e.to_string()))
}

fn one_line(text: &str) -> String {
    escape(text.as_bytes())
}

/// A reader that counts and hashes what passes through it.
struct Tap<R> {
    inner: R,
    hasher: Option<Sha256>,
    count: Rc<Cell<u64>>,
    /// When set, the compressed byte count this stream's length is held against, with the
    /// ratio and slack allowed.
    bomb_base: Option<(Rc<Cell<u64>>, u64, u64)>,
}

#[derive(Debug)]
struct BombError;

impl fmt::Display for BombError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("decompression bomb")
    }
}

impl std::error::Error for BombError {}

impl<R: Read> Read for Tap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        let total = self.count.get() + n as u64;
        self.count.set(total);
        if let Some((base, ratio, slack)) = &self.bomb_base {
            if total > base.get().saturating_mul(*ratio).saturating_add(*slack) {
                return Err(io::Error::other(BombError));
            }
        }
        Ok(n)
    }
}

/// Reads consecutive zstd frames until the input ends.
struct ZstdFrames<R: BufRead> {
    decoder: Option<ruzstd::decoding::StreamingDecoder<R, ruzstd::decoding::FrameDecoder>>,
    source: Option<R>,
}

impl<R: BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(d) = &mut self.decoder {
                let n = d.read(buf)?;
                if n > 0 || buf.is_empty() {
                    return Ok(n);
                }
                let (source, _) = self.decoder.take().expect("present").into_parts();
                self.source = Some(source);
            }
            let mut source = self.source.take().expect("a source");
            if source.fill_buf()?.is_empty() {
                self.source = Some(source);
                return Ok(0);
            }
            let decoder = ruzstd::decoding::StreamingDecoder::new(source)
                .map_err(|e| io::Error::other(format!("zstd: {e}")))?;
            self.decoder = Some(decoder);
        }
    }
}

/// Normalises a tar entry name: no leading `/` or `./`, no empty or `.` components, no
/// trailing `/`. A `..` component is refused. The image root is the empty path.
pub fn normalise(raw: &[u8]) -> Result<Vec<u8>, LayerError> {
    if raw.len() > MAX_PATH {
        return Err(LayerError::PathTooLong(raw.len()));
    }
    let mut out = Vec::with_capacity(raw.len());
    for part in raw.split(|&c| c == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err(LayerError::DotDot(raw.to_vec())),
            _ => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(part);
            }
        }
    }
    Ok(out)
}

/// The whiteout prefix (OCI image spec, "Whiteouts").
const WHITEOUT: &[u8] = b".wh.";
/// The opaque-directory marker.
const OPAQUE: &[u8] = b".wh..wh..opq";
/// Names starting with this are aufs bookkeeping (`.wh..wh.plnk`, …), not whiteouts;
/// Docker skips them when it applies a layer, and so does treeseal.
const AUFS_META: &[u8] = b".wh..wh.";

/// Detects the compression of a stream from its first bytes.
fn sniff(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Reads one layer from `input` (stored bytes: compression is detected from the magic
/// bytes), charging its entries and kept manifests to `budget`.
pub fn read_layer<R: Read>(input: R, budget: &mut Budget) -> Result<Layer, LayerError> {
    let raw_count = Rc::new(Cell::new(0));
    let raw = Tap {
        inner: input,
        hasher: Some(Sha256::new()),
        count: raw_count.clone(),
        bomb_base: None,
    };
    let mut buffered = BufReader::with_capacity(64 * 1024, raw);
    let compression = sniff(buffered.fill_buf().map_err(corrupt)?);
    let decoded: Box<dyn Read + '_> = match compression {
        Compression::None => Box::new(&mut buffered),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(&mut buffered)),
        Compression::Zstd => Box::new(ZstdFrames {
            decoder: None,
            source: Some(&mut buffered),
        }),
    };
    let tar_stream = Tap {
        inner: decoded,
        hasher: (compression != Compression::None).then(Sha256::new),
        count: Rc::new(Cell::new(0)),
        bomb_base: (compression != Compression::None).then_some((
            raw_count,
            budget.ratio,
            budget.slack,
        )),
    };
    let mut archive = tar::Archive::new(super::guard::Guard::new(tar_stream));
    let entries = read_entries(&mut archive, budget)?;
    // Read to the end, past the tar's end-of-archive blocks: the trailer of a gzip member
    // (its CRC) and every byte count towards the digests.
    let mut rest = archive.into_inner().into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(corrupt)?;
    let diff = rest.hasher.take().map(|h| h.finalize().into());
    drop(rest);
    io::copy(&mut buffered, &mut io::sink()).map_err(corrupt)?;
    let mut raw = buffered.into_inner();
    let blob: Sha256Hash = raw
        .hasher
        .take()
        .expect("the raw tap hashes")
        .finalize()
        .into();
    Ok(Layer {
        entries,
        compression,
        blob_sha256: blob,
        blob_len: raw.count.get(),
        diff_sha256: diff.unwrap_or(blob),
    })
}

fn read_entries<R: Read>(
    archive: &mut tar::Archive<R>,
    budget: &mut Budget,
) -> Result<Vec<LayerEntry>, LayerError> {
    let mut out = Vec::new();
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            continue;
        }
        let raw_path = entry.path_bytes().into_owned();
        let path = normalise(&raw_path)?;
        let mode = entry.header().mode().map_err(corrupt)? & 0o7777;
        let (dir, name) = match path.iter().rposition(|&c| c == b'/') {
            Some(at) => (&path[..at], &path[at + 1..]),
            None => (&path[..0], &path[..]),
        };
        let item = if name == OPAQUE {
            Some((dir.to_vec(), Item::Opaque))
        } else if name.starts_with(AUFS_META) {
            None
        } else if let Some(victim) = name.strip_prefix(WHITEOUT) {
            if matches!(victim, b"" | b"." | b"..") {
                return Err(LayerError::WhiteoutEscapes(raw_path));
            }
            let mut target = dir.to_vec();
            if !target.is_empty() {
                target.push(b'/');
            }
            target.extend_from_slice(victim);
            Some((target, Item::Whiteout))
        } else {
            let item = match kind {
                tar::EntryType::Regular
                | tar::EntryType::Continuous
                | tar::EntryType::GNUSparse => read_file(&mut entry, budget)?,
                tar::EntryType::Directory => Item::Dir,
                tar::EntryType::Symlink => {
                    let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                    if target.len() > MAX_PATH {
                        return Err(LayerError::PathTooLong(target.len()));
                    }
                    Item::Symlink(target)
                }
                tar::EntryType::Link => {
                    let target = entry.link_name_bytes().unwrap_or_default();
                    Item::HardLink(normalise(&target)?)
                }
                tar::EntryType::Char | tar::EntryType::Block => Item::Special(Kind::Device),
                tar::EntryType::Fifo => Item::Special(Kind::Fifo),
                other => return Err(LayerError::UnsupportedType(raw_path, other.as_byte())),
            };
            // The root directory's own entry (`./`) describes nothing that is sealed.
            (!path.is_empty() || item != Item::Dir).then_some((path, item))
        };
        let Some((path, item)) = item else { continue };
        if path.is_empty() && item != Item::Opaque {
            return Err(LayerError::WhiteoutEscapes(raw_path));
        }
        if budget.entries == 0 {
            return Err(LayerError::TooBig("entries"));
        }
        budget.entries -= 1;
        out.push(LayerEntry { path, mode, item });
    }
    Ok(out)
}

/// Hashes a file entry's content; keeps it when it is a candidate manifest.
fn read_file<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    budget: &mut Budget,
) -> Result<Item, LayerError> {
    let size = entry.size();
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut read = 0u64;
    let mut kept: Option<Vec<u8>> = None;
    // The first bytes, while fewer than the magic's have come: a decompressor may hand
    // out a short read (at a gzip member's end), and the magic is decided on whole.
    let mut head: Option<Vec<u8>> = Some(Vec::new());
    loop {
        let n = entry.read(&mut buf).map_err(corrupt)?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        hasher.update(chunk);
        read += n as u64;
        if let Some(k) = &mut kept {
            k.extend_from_slice(chunk);
            continue;
        }
        let Some(mut first) = head.take() else {
            continue;
        };
        first.extend_from_slice(&chunk[..chunk.len().min(MAGIC.len())]);
        if first.len() < MAGIC.len() {
            head = Some(first);
        } else if first[..MAGIC.len()] == MAGIC && size <= MAX_LEN {
            if size > budget.kept {
                return Err(LayerError::TooBig("bytes of manifests"));
            }
            budget.kept -= size;
            // The bytes before this chunk, then the whole chunk.
            let mut k = Vec::with_capacity(size as usize);
            let before = (read - n as u64) as usize;
            k.extend_from_slice(&first[..before]);
            k.extend_from_slice(chunk);
            kept = Some(k);
        }
    }
    if read != size {
        return Err(LayerError::Corrupt(format!(
            "a file entry ends after {read} of its {size} bytes"
        )));
    }
    Ok(Item::File {
        size,
        hash: *hasher.finalize().as_bytes(),
        manifest: kept.map(Arc::new),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A tar built in memory from (path, type, content-or-target) triples.
    pub fn tar_of(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(if *kind == tar::EntryType::Directory {
                0o755
            } else {
                0o644
            });
            match kind {
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    h.set_size(0);
                    b.append_link(&mut h, path, std::str::from_utf8(data).unwrap())
                        .unwrap();
                }
                _ if path.contains("..") => {
                    // The builder refuses such names; a hostile archive has them anyway.
                    h.set_size(data.len() as u64);
                    h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
                    h.set_cksum();
                    b.append(&h, *data).unwrap();
                }
                _ => {
                    h.set_size(data.len() as u64);
                    b.append_data(&mut h, path, *data).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    fn read(bytes: &[u8]) -> Result<Layer, LayerError> {
        read_layer(bytes, &mut Budget::default())
    }

    #[test]
    fn paths_are_normalised_and_dotdot_is_refused() {
        assert_eq!(normalise(b"./a//b/./c/").unwrap(), b"a/b/c");
        assert_eq!(normalise(b"/").unwrap(), b"");
        assert!(matches!(normalise(b"a/../b"), Err(LayerError::DotDot(_))));
        let t = tar_of(&[("x/../../etc/passwd", tar::EntryType::Regular, b"")]);
        assert!(matches!(read(&t), Err(LayerError::DotDot(_))));
    }

    #[test]
    fn whiteouts_and_opaque_markers_are_recognised() {
        let t = tar_of(&[
            ("app/.wh.gone", tar::EntryType::Regular, b""),
            ("app/lib/.wh..wh..opq", tar::EntryType::Regular, b""),
            ("app/.wh..wh.plnk", tar::EntryType::Directory, b""),
            ("app/new", tar::EntryType::Regular, b"hi"),
        ]);
        let layer = read(&t).unwrap();
        let items: Vec<_> = layer
            .entries
            .iter()
            .map(|e| (String::from_utf8_lossy(&e.path).to_string(), e.item.clone()))
            .collect();
        assert_eq!(items[0], ("app/gone".into(), Item::Whiteout));
        assert_eq!(items[1], ("app/lib".into(), Item::Opaque));
        assert_eq!(items[2].0, "app/new");
        assert_eq!(items.len(), 3);
    }

    #[test]
    fn a_whiteout_of_dot_or_dotdot_is_refused() {
        for name in ["app/.wh..", "app/.wh...", "app/.wh."] {
            let t = tar_of(&[(name, tar::EntryType::Regular, b"")]);
            assert!(
                matches!(read(&t), Err(LayerError::WhiteoutEscapes(_))),
                "{name}"
            );
        }
    }

    #[test]
    fn long_names_are_read_whole() {
        let long = format!("app/{}/f", "d".repeat(300));
        let t = tar_of(&[(&long, tar::EntryType::Regular, b"x")]);
        let layer = read(&t).unwrap();
        assert_eq!(layer.entries[0].path, long.as_bytes());
    }

    #[test]
    fn pax_and_gnu_long_names_from_another_writer_are_read() {
        // Written by Python's tarfile (fuzz/corpus/image_layer/): PAX and GNU formats.
        let pax = read(include_bytes!("../../fuzz/corpus/image_layer/pax_long")).unwrap();
        let want = format!("app/{}/f", "d".repeat(200));
        assert_eq!(pax.entries[0].path, want.as_bytes());
        assert_eq!(pax.entries[1].path, "app/ü".as_bytes());
        let gnu = read(include_bytes!("../../fuzz/corpus/image_layer/gnu_long")).unwrap();
        assert_eq!(
            gnu.entries[0].path,
            format!("app/{}", "e".repeat(300)).as_bytes()
        );
        assert_eq!(
            gnu.entries[1].item,
            Item::Symlink("t".repeat(150).into_bytes())
        );
    }

    #[test]
    fn gzip_and_zstd_give_the_same_entries_and_diff_id() {
        let t = tar_of(&[
            ("app/a", tar::EntryType::Regular, b"hello"),
            ("app/l", tar::EntryType::Symlink, b"a"),
        ]);
        let plain = read(&t).unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        io::Write::write_all(&mut gz, &t).unwrap();
        let gz = gz.finish().unwrap();
        let zst =
            ruzstd::encoding::compress_to_vec(&t[..], ruzstd::encoding::CompressionLevel::Fastest);
        for (bytes, kind) in [(gz, Compression::Gzip), (zst, Compression::Zstd)] {
            let layer = read(&bytes).unwrap();
            assert_eq!(layer.compression, kind);
            assert_eq!(layer.entries, plain.entries);
            assert_eq!(layer.diff_sha256, plain.diff_sha256);
            assert_eq!(layer.blob_sha256, <[u8; 32]>::from(Sha256::digest(&bytes)));
            assert_eq!(layer.blob_len, bytes.len() as u64);
        }
        assert_eq!(plain.blob_sha256, plain.diff_sha256);
    }

    #[test]
    fn a_manifest_split_across_gzip_members_is_kept() {
        // A multi-member gzip stream may hand out the first bytes of a file in a short
        // read; the manifest's magic bytes must still be recognised.
        let mut content = MAGIC.to_vec();
        content.extend_from_slice(&[1; 100]);
        let t = tar_of(&[("app/.treeseal", tar::EntryType::Regular, &content)]);
        let data = t.windows(MAGIC.len()).position(|w| w == MAGIC).unwrap();
        let mut gz = Vec::new();
        for part in [&t[..data + 3], &t[data + 3..]] {
            let mut member =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            io::Write::write_all(&mut member, part).unwrap();
            gz.extend(member.finish().unwrap());
        }
        let layer = read(&gz).unwrap();
        assert_eq!(layer.diff_sha256, read(&t).unwrap().diff_sha256);
        match &layer.entries[0].item {
            Item::File { manifest, .. } => assert_eq!(manifest.as_deref(), Some(&content)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn truncation_is_an_error() {
        let t = tar_of(&[("app/a", tar::EntryType::Regular, &[7u8; 3000])]);
        assert!(matches!(read(&t[..1500]), Err(LayerError::Corrupt(_))));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        io::Write::write_all(&mut gz, &t).unwrap();
        let gz = gz.finish().unwrap();
        assert!(read(&gz[..gz.len() - 4]).is_err());
    }

    #[test]
    fn a_decompression_bomb_is_refused() {
        let zeros = vec![0u8; 1 << 20];
        let big = tar_of(&[("app/zeros", tar::EntryType::Regular, &zeros)]);
        let zst = ruzstd::encoding::compress_to_vec(
            &big[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        let limits = |ratio| Budget {
            ratio,
            slack: 0,
            ..Budget::default()
        };
        let ratio = big.len() as u64 / zst.len() as u64;
        assert!(read_layer(&zst[..], &mut limits(ratio + 1)).is_ok());
        assert!(matches!(
            read_layer(&zst[..], &mut limits(ratio / 2)),
            Err(LayerError::Bomb)
        ));
    }

    #[test]
    fn manifests_are_kept_and_charged_to_the_budget() {
        let mut content = MAGIC.to_vec();
        content.extend_from_slice(&[1; 100]);
        let t = tar_of(&[
            ("app/.treeseal", tar::EntryType::Regular, &content),
            ("app/other", tar::EntryType::Regular, b"not one"),
        ]);
        let layer = read(&t).unwrap();
        match &layer.entries[0].item {
            Item::File {
                manifest: Some(m), ..
            } => assert_eq!(**m, content),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            layer.entries[1].item,
            Item::File { manifest: None, .. }
        ));
        let mut small = Budget {
            kept: 50,
            ..Budget::default()
        };
        assert!(matches!(
            read_layer(&t[..], &mut small),
            Err(LayerError::TooBig(_))
        ));
        let mut few = Budget {
            entries: 1,
            ..Budget::default()
        };
        assert!(matches!(
            read_layer(&t[..], &mut few),
            Err(LayerError::TooBig(_))
        ));
    }
}
