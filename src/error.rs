//! Everything that can stop treeseal from completing a check, as one typed enum.
//!
//! A difference between a tree and its manifest is *not* an error: it is a result
//! ([`crate::verify::Report`]). An [`Error`] means "could not check", which the gate treats
//! exactly like a difference: it refuses. Each message is one line that names the path and
//! says what to do about it.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::exit::ExitCode;
use crate::ignore::PatternError;

/// Why a check could not be completed.
#[derive(Debug)]
pub enum Error {
    /// An I/O operation on `path` failed.
    Io {
        /// What treeseal was doing, e.g. "read directory".
        action: &'static str,
        /// The path it was done on.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// The root to lock or verify does not exist or is not a directory.
    Root {
        /// The root path.
        path: PathBuf,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The manifest file does not exist.
    ManifestMissing(PathBuf),
    /// The manifest could not be decoded; `reason` says where and why.
    ManifestCorrupt {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A `.dockerignore` file or `--exclude` pattern is invalid.
    Pattern {
        /// Where the pattern came from (file path or "--exclude").
        origin: String,
        /// The problem.
        source: PatternError,
    },
    /// A file changed type while it was being read (e.g. replaced during `lock`).
    Unstable(PathBuf),
    /// Bad arguments or configuration (flags, environment variables).
    Usage(String),
    /// Standard output was closed by its reader (`| head`): nothing more to say.
    ClosedOutput,
    /// `lock` would write its manifest inside the tree, where the tree's `.dockerignore`
    /// excludes it: `COPY .` would leave the manifest out of the image.
    ManifestIgnored {
        /// The `.dockerignore` file (escaped for printing).
        ignore_file: String,
        /// The manifest's path inside the tree (escaped for printing).
        manifest: String,
        /// The pattern that excludes it (the last one that does).
        pattern: String,
        /// The line that re-includes it, e.g. `!.treeseal`.
        fix: String,
    },
    /// A saved image cannot be read (an `ImageError` of `crate::image`, held as a trait
    /// object so that this module, which every other imports, imports nothing above it).
    #[cfg(feature = "image")]
    Image(Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// Shorthand for an [`Error::Io`].
    pub fn io(action: &'static str, path: &Path, source: io::Error) -> Error {
        Error::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    /// The documented exit code: "could not check", except for a closed standard output.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Error::ClosedOutput => ExitCode::ClosedOutput,
            _ => ExitCode::CannotCheck,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |p: &Path| crate::escape::escape(p.as_os_str().as_encoded_bytes());
        match self {
            Error::Io {
                action,
                path,
                source,
            } => write!(f, "cannot {action} {}: {}", show(path), io_reason(source)),
            Error::Root { path, problem } => write!(f, "root {} {problem}", show(path)),
            Error::ManifestMissing(path) => write!(
                f,
                "no manifest at {} (create it with `treeseal lock`, or pass --manifest)",
                show(path)
            ),
            Error::ManifestCorrupt { path, reason } => {
                write!(f, "manifest {} is corrupt: {reason}", show(path))
            }
            Error::Pattern { origin, source } => write!(f, "{origin}: {source}"),
            Error::Unstable(path) => write!(
                f,
                "{} changed while it was being read; run again on a tree that is not being written",
                show(path)
            ),
            Error::Usage(message) => f.write_str(message),
            Error::ClosedOutput => f.write_str("standard output was closed"),
            Error::ManifestIgnored {
                ignore_file,
                manifest,
                pattern,
                fix,
            } => write!(
                f,
                "{ignore_file} excludes the manifest {manifest} (pattern {pattern:?}), so \
                 `COPY .` would leave it out of the image; add the line {fix:?} at the end of \
                 {ignore_file}, or write the manifest outside the tree with -o"
            ),
            #[cfg(feature = "image")]
            Error::Image(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Pattern { source, .. } => Some(source),
            #[cfg(feature = "image")]
            Error::Image(source) => Some(source.as_ref()),
            _ => None,
        }
    }
}

/// The OS error text without Rust's " (os error N)" suffix.
fn io_reason(err: &io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// Result alias for the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;
