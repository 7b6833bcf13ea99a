//! `treeseal verify`: check DIR against its manifest; name the first difference.

use std::time::Instant;

use super::{configure_threads, require_dir};
use crate::cli::VerifyArgs;
use crate::error::Result;
use crate::escape::escape;
use crate::exit::ExitCode;
use crate::gate::{allow_matcher, expect_digest};
use crate::manifest::{Manifest, DEFAULT_NAME};
use crate::output::{Level, Output};
use crate::tree::format_digest;
use crate::verify::Options;
use crate::words::{count, first_difference_line, human_bytes, origin_text};

/// Runs `treeseal verify`.
pub fn verify(args: VerifyArgs, out: &mut Output) -> Result<ExitCode> {
    configure_threads(args.threads.threads)?;
    let started = Instant::now();
    let expected = args
        .digest
        .as_deref()
        .map(|d| expect_digest(d, "--digest"))
        .transpose()?;
    let allow_extra = allow_matcher(&args.allow_extra, "--allow-extra")?;
    let path = args
        .manifest
        .clone()
        .unwrap_or_else(|| args.dir.join(DEFAULT_NAME));
    require_dir(&args.dir)?;
    let manifest = Manifest::load(&path)?;
    let digest = manifest.digest();
    if let Some(want) = expected {
        if want != digest {
            out.log(
                Level::Error,
                &format!(
                    "digest mismatch: the manifest is {}, expected {}: {}",
                    format_digest(&digest),
                    format_digest(&want),
                    origin_text(&manifest.origin)
                ),
                &[("event", "stale".into())],
            );
            return Ok(ExitCode::Differs);
        }
    }
    let options = Options {
        all: args.all,
        allow_extra,
        ..Options::default()
    };
    let report = crate::verify::verify(&args.dir, &manifest, &options)?;
    if report.is_equal() {
        if !args.quiet {
            out.log(
                Level::Info,
                &format!(
                    "ok {} ({}, {}, {} hashed in {} ms)",
                    format_digest(&digest),
                    count(report.entries as u64, "entry", "entries"),
                    count(report.files_hashed, "file", "files"),
                    human_bytes(report.bytes_hashed),
                    started.elapsed().as_millis()
                ),
                &[("event", "verified".into())],
            );
        }
        return Ok(ExitCode::Ok);
    }
    if args.all {
        // The list itself is plain lines, one per difference (for grep and diff).
        let lines: Vec<String> = report.differences.iter().map(|d| d.to_string()).collect();
        out.list(Level::Error, &lines);
        out.log(
            Level::Error,
            &format!(
                "{} from {}",
                count(report.differences.len() as u64, "difference", "differences"),
                escape(path.as_os_str().as_encoded_bytes())
            ),
            &[("event", "differs".into())],
        );
    } else {
        out.log(
            Level::Error,
            &first_difference_line(&report),
            &[("event", "differs".into())],
        );
    }
    Ok(ExitCode::Differs)
}
