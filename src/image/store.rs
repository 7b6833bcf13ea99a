//! Where an image's files come from: a tar archive (`docker save`, `oci-archive`; a file or
//! standard input) or an OCI image layout directory.
//!
//! An archive is read once, as a stream, in whatever order its members come (a legacy
//! `docker save` puts `manifest.json` last, so nothing can be chosen before the end):
//! members that look like JSON documents (a `{` or `[` first, at most [`MAX_JSON`] bytes) are kept
//! whole; every other member is read as a layer right away and only its summary is kept
//! (see [`super::layer`]). A layer that cannot be read is an error only when the image
//! actually uses it. A layout directory is read on demand, blob by blob.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use sha2::{Digest, Sha256};

use super::error::ImageError;
use super::layer::{normalise, read_layer, Budget, Layer, Sha256Hash};

/// The largest JSON document read (index, manifest, config). Real ones are a few KiB; a
/// config with a long history stays well under a MiB.
pub const MAX_JSON: u64 = 4 * 1024 * 1024;

/// All JSON documents of one archive together: bounds the memory small members may take.
pub const MAX_JSON_TOTAL: u64 = 64 * 1024 * 1024;

enum Member {
    Json(Rc<Vec<u8>>, Sha256Hash),
    Layer(Rc<Layer>),
    Unreadable(super::layer::LayerError),
}

enum Source {
    Dir(PathBuf),
    Archive(HashMap<Vec<u8>, Member>),
}

/// The files of one image.
pub struct Store {
    source: Source,
    budget: Budget,
    /// Layers already read from a directory, by name.
    cache: HashMap<String, Rc<Layer>>,
}

/// A file name from the image's JSON as a store key: normalised, never `..`, never empty.
fn key(name: &str) -> Result<Vec<u8>, ImageError> {
    match normalise(name.as_bytes()) {
        Ok(k) if !k.is_empty() => Ok(k),
        _ => Err(ImageError::Format(format!(
            "{name:?} is not a file name inside the image"
        ))),
    }
}

/// Lowercase hex of a SHA-256.
pub fn sha_hex(h: &Sha256Hash) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

fn open_err(path: &Path, source: std::io::Error) -> ImageError {
    ImageError::Open {
        path: path.display().to_string(),
        source,
    }
}

impl Store {
    /// Opens `path`: `-` is standard input; a directory is an OCI layout; anything else is
    /// read as a tar archive.
    pub fn open(path: &Path) -> Result<Store, ImageError> {
        if path == Path::new("-") {
            return Store::from_archive(std::io::stdin().lock());
        }
        let meta = std::fs::metadata(path).map_err(|e| open_err(path, e))?;
        if meta.is_dir() {
            return Ok(Store {
                source: Source::Dir(path.to_path_buf()),
                budget: Budget::default(),
                cache: HashMap::new(),
            });
        }
        if !meta.is_file() && !std::os::unix::fs::FileTypeExt::is_fifo(&meta.file_type()) {
            let e = std::io::Error::other("not a regular file, a pipe or a directory");
            return Err(open_err(path, e));
        }
        let file = std::fs::File::open(path).map_err(|e| open_err(path, e))?;
        Store::from_archive(file)
    }

    /// Reads a whole tar archive.
    pub fn from_archive<R: Read>(input: R) -> Result<Store, ImageError> {
        let mut budget = Budget::default();
        let mut members = HashMap::new();
        let mut json_total = 0;
        let mut archive = tar::Archive::new(super::guard::Guard::new(input));
        let bad = |e: std::io::Error| ImageError::Archive(e.to_string());
        let mut seen = 0usize;
        for entry in archive.entries().map_err(bad)? {
            let entry = entry.map_err(bad)?;
            seen += 1;
            if !matches!(
                entry.header().entry_type(),
                tar::EntryType::Regular | tar::EntryType::Continuous
            ) {
                continue;
            }
            let name = normalise(&entry.path_bytes())
                .map_err(|e| ImageError::Archive(format!("member name: {e}")))?;
            let size = entry.size();
            let mut reader = BufReader::with_capacity(64 * 1024, entry);
            let head = reader.fill_buf().map_err(bad)?;
            let looks_json = head
                .iter()
                .find(|c| !c.is_ascii_whitespace())
                .is_some_and(|&c| c == b'{' || c == b'[');
            let member = if looks_json && size <= MAX_JSON {
                json_total += size;
                if json_total > MAX_JSON_TOTAL {
                    return Err(ImageError::Archive(format!(
                        "more than {MAX_JSON_TOTAL} bytes of JSON documents"
                    )));
                }
                let mut bytes = Vec::with_capacity(size as usize);
                reader.read_to_end(&mut bytes).map_err(bad)?;
                if bytes.len() as u64 != size {
                    return Err(ImageError::Archive(format!(
                        "{} ends early",
                        String::from_utf8_lossy(&name)
                    )));
                }
                let sha = Sha256::digest(&bytes).into();
                Member::Json(Rc::new(bytes), sha)
            } else {
                match read_layer(&mut reader, &mut budget) {
                    Ok(layer) => Member::Layer(Rc::new(layer)),
                    Err(e @ super::layer::LayerError::TooBig(_)) => {
                        return Err(ImageError::Layer {
                            name: String::from_utf8_lossy(&name).into_owned(),
                            source: e,
                        })
                    }
                    Err(e) => Member::Unreadable(e),
                }
            };
            // Whatever the layer reader left unread is skipped by the tar reader; a
            // truncated archive then fails on the next header.
            members.insert(name, member);
        }
        if seen == 0 {
            return Err(ImageError::Archive("no members (an empty file?)".into()));
        }
        Ok(Store {
            source: Source::Archive(members),
            budget,
            cache: HashMap::new(),
        })
    }

    /// Whether the image has a file of this name.
    pub fn has(&self, name: &str) -> bool {
        let Ok(key) = key(name) else { return false };
        match &self.source {
            Source::Dir(dir) => dir.join(OsStr::from_bytes(&key)).is_file(),
            Source::Archive(m) => m.contains_key(&key),
        }
    }

    /// A JSON document and its SHA-256.
    pub fn json(&mut self, name: &str) -> Result<(Rc<Vec<u8>>, Sha256Hash), ImageError> {
        let missing = || ImageError::Missing(name.to_string());
        let key = key(name)?;
        match &self.source {
            Source::Dir(dir) => {
                let path = dir.join(OsStr::from_bytes(&key));
                let file = std::fs::File::open(&path).map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => missing(),
                    _ => open_err(&path, e),
                })?;
                let mut bytes = Vec::new();
                file.take(MAX_JSON + 1)
                    .read_to_end(&mut bytes)
                    .map_err(|e| open_err(&path, e))?;
                if bytes.len() as u64 > MAX_JSON {
                    return Err(ImageError::Json {
                        name: name.into(),
                        reason: format!("longer than {MAX_JSON} bytes"),
                    });
                }
                let sha = Sha256::digest(&bytes).into();
                Ok((Rc::new(bytes), sha))
            }
            Source::Archive(members) => match members.get(&key) {
                Some(Member::Json(bytes, sha)) => Ok((bytes.clone(), *sha)),
                Some(_) => Err(ImageError::Json {
                    name: name.into(),
                    reason: format!("not a JSON document of at most {MAX_JSON} bytes"),
                }),
                None => Err(missing()),
            },
        }
    }

    /// A layer, read.
    pub fn layer(&mut self, name: &str) -> Result<Rc<Layer>, ImageError> {
        let as_layer = |source| ImageError::Layer {
            name: name.to_string(),
            source,
        };
        let key = key(name)?;
        match &self.source {
            Source::Dir(dir) => {
                if let Some(l) = self.cache.get(name) {
                    return Ok(l.clone());
                }
                let path = dir.join(OsStr::from_bytes(&key));
                let file = std::fs::File::open(&path).map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => ImageError::Missing(name.into()),
                    _ => open_err(&path, e),
                })?;
                let layer = Rc::new(read_layer(file, &mut self.budget).map_err(as_layer)?);
                self.cache.insert(name.to_string(), layer.clone());
                Ok(layer)
            }
            Source::Archive(members) => match members.get(&key) {
                Some(Member::Layer(l)) => Ok(l.clone()),
                Some(Member::Json(bytes, _)) => {
                    let bytes = bytes.clone();
                    read_layer(&bytes[..], &mut self.budget)
                        .map(Rc::new)
                        .map_err(as_layer)
                }
                Some(Member::Unreadable(e)) => Err(as_layer(e.clone())),
                None => Err(ImageError::Missing(name.into())),
            },
        }
    }
}
