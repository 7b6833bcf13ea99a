//! Why a saved image cannot be checked: one typed enum, one line per case. Every one of
//! them means "could not check" (exit 2).

use std::fmt;
use std::io;

use crate::escape::escape;

use super::fs::FsError;
use super::layer::LayerError;

/// Why an image could not be read.
#[derive(Debug)]
pub enum ImageError {
    /// The image file or directory cannot be opened or read.
    Open {
        /// The path given (or "standard input").
        path: String,
        /// The operating system's error.
        source: io::Error,
    },
    /// The outer archive is truncated or corrupt.
    Archive(String),
    /// A file the format requires is not in the image.
    Missing(String),
    /// A JSON document of the image cannot be decoded.
    Json {
        /// Which document.
        name: String,
        /// The decoder's reason.
        reason: String,
    },
    /// A layer cannot be read.
    Layer {
        /// Which layer (its name or digest).
        name: String,
        /// Why.
        source: LayerError,
    },
    /// The layers cannot be applied.
    Fs(FsError),
    /// A blob's SHA-256 is not the one its descriptor (or the config's `diff_ids`) names.
    Digest {
        /// Which blob.
        name: String,
        /// What the descriptor says.
        expected: String,
        /// What the bytes hash to.
        found: String,
    },
    /// A media type treeseal does not read.
    MediaType {
        /// Where it was found.
        name: String,
        /// The media type.
        media_type: String,
    },
    /// No image, or more than one, matches the platform asked for.
    Platform(String),
    /// Anything else structurally wrong with the image's JSON documents.
    Format(String),
    /// A gated root or manifest is not in the image.
    NotInImage(String),
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = |t: &str| escape(t.as_bytes());
        match self {
            ImageError::Open { path, source } => {
                write!(f, "cannot read image {}: {}", s(path), s(&source.to_string()))
            }
            ImageError::Archive(reason) => write!(
                f,
                "the image archive is truncated or corrupt: {}",
                s(reason)
            ),
            ImageError::Missing(name) => write!(
                f,
                "the image has no {} (is it a `docker save` archive, an OCI layout or an oci-archive?)",
                s(name)
            ),
            ImageError::Json { name, reason } => {
                write!(f, "image {} is not valid: {}", s(name), s(reason))
            }
            ImageError::Layer { name, source } => write!(f, "layer {}: {source}", s(name)),
            ImageError::Fs(e) => write!(f, "cannot rebuild the image's files: {e}"),
            ImageError::Digest {
                name,
                expected,
                found,
            } => write!(
                f,
                "{} does not match its digest: expected {}, found sha256:{} (a corrupt or altered archive)",
                s(name),
                s(expected),
                s(found)
            ),
            ImageError::MediaType { name, media_type } => write!(
                f,
                "{}: media type {} is not one treeseal reads",
                s(name),
                s(media_type)
            ),
            ImageError::NotInImage(m) => write!(f, "the image has {}", s(m)),
            ImageError::Platform(m) | ImageError::Format(m) => {
                f.write_str(&s(m))
            }
        }
    }
}

impl std::error::Error for ImageError {}

impl From<ImageError> for crate::error::Error {
    fn from(e: ImageError) -> crate::error::Error {
        crate::error::Error::Image(Box::new(e))
    }
}

impl From<FsError> for ImageError {
    fn from(e: FsError) -> ImageError {
        ImageError::Fs(e)
    }
}
