//! A bound on what a tar stream's metadata entries may cost in memory.
//!
//! The `tar` crate reads a GNU long name or long link (`L`, `K`) and a PAX extended header
//! (`x`, `g`) whole into memory, as long as the header says it is. A hostile layer can
//! claim gigabytes there, and from a pipe or a compressed layer nothing else stops it.
//! [`Guard`] sits between the stream and the tar reader and follows the tar framing itself
//! (512-byte headers; data padded to 512 bytes; a PAX `size` record overriding the next
//! entry's size; GNU sparse extension headers): a metadata entry longer than [`MAX_META`]
//! is an error before a byte of it is read.

use std::io::{self, Read};

/// The longest metadata entry accepted: far beyond any real long name or PAX header (a
/// 64 KiB path and its link fit many times), and a bound on what one may cost.
pub const MAX_META: u64 = 1024 * 1024;

const BLOCK: usize = 512;

/// Follows the tar framing of what passes through it; see the module documentation.
pub struct Guard<R> {
    inner: R,
    header: Vec<u8>,
    /// Bytes of data and padding left in the current entry.
    skip: u64,
    /// Data bytes of the current entry that belong to a PAX header being collected.
    pax_left: u64,
    pax: Vec<u8>,
    /// A PAX `size` for the next entry that is not itself a metadata entry.
    pax_size: Option<u64>,
    /// GNU sparse extension headers still to come.
    sparse_ext: bool,
    /// The data size of the entry whose sparse extension headers are being read.
    sparse_size: u64,
    /// After the end-of-archive block, bytes pass unexamined.
    ended: bool,
}

impl<R> Guard<R> {
    /// Wraps a tar stream.
    pub fn new(inner: R) -> Guard<R> {
        Guard {
            inner,
            header: Vec::with_capacity(BLOCK),
            skip: 0,
            pax_left: 0,
            pax: Vec::new(),
            pax_size: None,
            sparse_ext: false,
            sparse_size: 0,
            ended: false,
        }
    }

    /// The wrapped stream.
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn feed(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() && !self.ended {
            if self.skip > 0 {
                let n = (self.skip.min(bytes.len() as u64)) as usize;
                if self.pax_left > 0 {
                    let m = (self.pax_left.min(n as u64)) as usize;
                    self.pax.extend_from_slice(&bytes[..m]);
                    self.pax_left -= m as u64;
                    if self.pax_left == 0 {
                        self.pax_size = pax_size(&self.pax);
                        self.pax.clear();
                    }
                }
                self.skip -= n as u64;
                bytes = &bytes[n..];
                continue;
            }
            let n = (BLOCK - self.header.len()).min(bytes.len());
            self.header.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.header.len() == BLOCK {
                let header = std::mem::replace(&mut self.header, Vec::with_capacity(BLOCK));
                self.block(&header)?;
            }
        }
        Ok(())
    }

    fn block(&mut self, h: &[u8]) -> io::Result<()> {
        if self.sparse_ext {
            self.sparse_ext = h[504] != 0;
            if !self.sparse_ext {
                self.skip = padded(self.sparse_size);
            }
            return Ok(());
        }
        if h.iter().all(|&b| b == 0) {
            self.ended = true;
            return Ok(());
        }
        let size = numeric(&h[124..136])
            .ok_or_else(|| io::Error::other("a tar header with an unreadable size"))?;
        let kind = h[156];
        let meta = matches!(kind, b'L' | b'K' | b'x' | b'g');
        if meta {
            if size > MAX_META {
                return Err(io::Error::other(format!(
                    "a tar metadata entry (type {}) of {size} bytes; at most {MAX_META} are accepted",
                    kind as char
                )));
            }
            if kind == b'x' {
                self.pax_left = size;
                self.pax.clear();
            }
            self.skip = padded(size);
            if size == 0 && kind == b'x' {
                self.pax_size = None;
            }
            return Ok(());
        }
        let size = self.pax_size.take().unwrap_or(size);
        if kind == b'S' && h[482] != 0 {
            self.sparse_ext = true;
            self.sparse_size = size;
            return Ok(());
        }
        self.skip = padded(size);
        Ok(())
    }
}

impl<R: Read> Read for Guard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.feed(&buf[..n])?;
        Ok(n)
    }
}

fn padded(size: u64) -> u64 {
    size.div_ceil(BLOCK as u64).saturating_mul(BLOCK as u64)
}

/// A tar numeric field: octal text, or GNU base-256 when the high bit is set.
fn numeric(field: &[u8]) -> Option<u64> {
    if field[0] & 0x80 != 0 {
        let mut v: u64 = 0;
        for (i, &b) in field.iter().enumerate() {
            let b = if i == 0 { b & 0x7f } else { b };
            v = v.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(v);
    }
    let text: Vec<u8> = field
        .iter()
        .copied()
        .skip_while(|&c| c == b' ')
        .take_while(|&c| c != 0 && c != b' ')
        .collect();
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(std::str::from_utf8(&text).ok()?, 8).ok()
}

/// The `size` record of a PAX extended header (`LEN size=N\n` records).
fn pax_size(data: &[u8]) -> Option<u64> {
    let mut rest = data;
    let mut found = None;
    while !rest.is_empty() {
        let space = rest.iter().position(|&c| c == b' ')?;
        let len: usize = std::str::from_utf8(&rest[..space]).ok()?.parse().ok()?;
        if len <= space || len > rest.len() {
            return found;
        }
        let record = &rest[space + 1..len];
        if let Some(v) = record.strip_prefix(b"size=") {
            let v = v.strip_suffix(b"\n").unwrap_or(v);
            found = std::str::from_utf8(v).ok()?.parse().ok();
        }
        rest = &rest[len..];
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn through(bytes: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        Guard::new(bytes).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn ordinary_archives_pass_untouched() {
        let long = format!("app/{}/f", "x".repeat(3000));
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(5);
        b.append_data(&mut h, &long, &b"hello"[..]).unwrap();
        b.append_data(&mut h, "short", &b"world"[..]).unwrap();
        let t = b.into_inner().unwrap();
        assert_eq!(through(&t).unwrap(), t);
        let mut a = tar::Archive::new(Guard::new(&t[..]));
        let names: Vec<Vec<u8>> = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path_bytes().into_owned())
            .collect();
        assert_eq!(names, [long.into_bytes(), b"short".to_vec()]);
    }

    #[test]
    fn a_huge_long_name_header_is_refused_before_it_is_read() {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::GNULongName);
        h.set_size(8 << 30);
        h.set_cksum();
        let mut t = h.as_bytes().to_vec();
        t.extend_from_slice(&[b'a'; 4096]);
        let e = through(&t).unwrap_err();
        assert!(e.to_string().contains("at most"), "{e}");
    }

    #[test]
    fn a_pax_size_record_moves_the_next_header() {
        assert_eq!(pax_size(b"16 size=1234567\n"), Some(1_234_567));
        assert_eq!(pax_size(b"12 path=abc\n16 size=1234567\n"), Some(1_234_567));
        assert_eq!(pax_size(b"garbage"), None);
        assert_eq!(numeric(b"0000644\0"), Some(0o644));
        assert_eq!(numeric(&[0x80, 0, 0, 0, 0, 0, 0, 1, 0]), Some(256));
    }
}
