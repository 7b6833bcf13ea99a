//! treeseal: prove that a container's files are the files it was built from.
//!
//! `treeseal lock` walks a build context exactly as `COPY . /app` lays it out (honouring
//! `.dockerignore` with Docker's rules), hashes it, and writes a compact manifest whose
//! root digest CI passes into the image. At container start, `treeseal run -- CMD` checks
//! the tree against the manifest and the manifest against that digest, and only then
//! `execve`s the real command.
//!
//! # What treeseal proves
//! That the gated tree equals, entry for entry, the tree that was locked: the same paths,
//! kinds, file contents (blake3), symlink targets and exec bits (all permission bits with
//! `--modes full`), and nothing else outside the excluded paths. With an expected digest,
//! that the locked tree is the one CI locked from the checkout — which is what catches a
//! stale or empty `COPY` layer served by a build cache.
//!
//! # What it does not prove
//! Nothing about paths excluded by the rules or outside the gated roots; nothing against
//! someone who can rewrite both the image's files and its environment (the expected
//! digest); ownership and timestamps are not sealed (`COPY` resets them).
//!
//! # Fail closed
//! A difference is a result ([`verify::Report`]); anything that prevents completing the
//! check is an [`error::Error`]. The gate treats both the same way: it refuses to run the
//! command. There is no path from "could not check" to "ran the command".
//!
//! # Unsafe code
//! Denied crate-wide. It is allowed only where the operating system offers no safe
//! interface: memory-mapping a file, catching `SIGBUS` on it and closing a descriptor
//! with the raw system call ([`hash`]), giving the threads of the one-pass proof private
//! descriptor tables ([`verify`]), and `execve` and signal dispositions ([`exec`]). Each
//! block there carries a SAFETY note
//! (`clippy::undocumented_unsafe_blocks` is on).

#![deny(unsafe_code)]

#[cfg(test)]
mod architecture;
pub mod atomic;
pub mod beneath;
pub mod cli;
pub mod commands;
pub mod diff;
pub mod error;
pub mod escape;
pub mod exec;
pub mod exit;
pub mod gate;
pub mod hash;
pub mod ignore;
#[cfg(feature = "image")]
pub mod image;
pub mod lock;
pub mod manifest;
pub mod output;
pub mod piecewise;
pub mod pool;
pub mod probe;
pub mod snapshot;
pub mod tree;
pub mod verify;
pub mod walk;
pub mod words;
