//! Reading a saved image — a `docker save` archive, an OCI image layout, an `oci-archive` —
//! and rebuilding its file system in memory, so that its gated trees can be checked
//! without extracting, running or pulling anything.
//!
//! The path from bytes to a checked tree: [`store`] reads the archive or layout,
//! [`format`](mod@format) finds the one image (and platform) in it, [`layer`] reads each layer's tar,
//! [`fs`] applies the layers, whiteouts and hard links, [`env`](mod@env) says from the image's
//! `Env` which trees its gate checks, [`compare`] checks a tree against its manifest with
//! the gate's own notion of a difference, and [`command`] is `treeseal image`.

pub mod command;
pub mod compare;
pub mod env;
pub mod error;
pub mod format;
pub mod fs;
pub mod layer;
pub mod store;

use std::path::Path;

pub use error::ImageError;

use format::{Config, Platform};
use fs::Fs;
use store::{sha_hex, Store};

/// An image, read: its config and its rebuilt file system.
#[derive(Debug)]
pub struct Image {
    /// The image config.
    pub config: Config,
    /// The file system its layers make.
    pub fs: Fs,
}

/// Reads the image at `path` (`-`: standard input) for `platform` (default: the only one,
/// else the host's), checking every digest the format carries.
pub fn load(path: &Path, platform: Option<&Platform>) -> Result<Image, ImageError> {
    let mut store = Store::open(path)?;
    let found = format::find(&mut store, platform)?;
    let mut fs = Fs::default();
    for l in &found.layers {
        let layer = store.layer(&l.name)?;
        if let Some((sha, size)) = l.blob {
            if layer.blob_sha256 != sha {
                return Err(ImageError::Digest {
                    name: l.name.clone(),
                    expected: format!("sha256:{}", sha_hex(&sha)),
                    found: sha_hex(&layer.blob_sha256),
                });
            }
            let _ = size;
        }
        if let Some(c) = l.compression {
            if c != layer.compression {
                return Err(ImageError::Format(format!(
                    "layer {} is {} but its media type says {}",
                    l.name,
                    layer.compression.name(),
                    c.name()
                )));
            }
        }
        if layer.diff_sha256 != l.diff_id {
            return Err(ImageError::Digest {
                name: format!("{} (uncompressed)", l.name),
                expected: format!("sha256:{}", sha_hex(&l.diff_id)),
                found: sha_hex(&layer.diff_sha256),
            });
        }
        fs.apply(&layer)?;
    }
    Ok(Image {
        config: found.config,
        fs,
    })
}
