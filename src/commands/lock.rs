//! `treeseal lock`: walk DIR, write its manifest, print the root digest.

use std::path::Path;
use std::time::Instant;

use super::{configure_threads, require_dir, rules_for};
use crate::cli::LockArgs;
use crate::error::Result;
use crate::escape::escape;
use crate::exit::ExitCode;
use crate::manifest::{Manifest, Origin, DEFAULT_NAME};
use crate::output::{Level, Output};
use crate::tree::{format_digest, NodeRef};
use crate::words::{count, human_bytes};

/// The source commit to record: `--source`, then well-known CI variables, then git.
fn source_commit(dir: &Path, explicit: Option<String>) -> Option<String> {
    const VARS: [&str; 6] = [
        "TREESEAL_SOURCE",
        "SOURCE_COMMIT",
        "GITHUB_SHA",
        "CI_COMMIT_SHA",
        "BUILDKITE_COMMIT",
        "GIT_COMMIT",
    ];
    explicit
        .or_else(|| {
            VARS.iter()
                .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
        })
        .or_else(|| {
            let out = std::process::Command::new("git")
                .arg("-C")
                .arg(dir)
                .args(["rev-parse", "HEAD"])
                .stderr(std::process::Stdio::null())
                .output()
                .ok()?;
            let sha = String::from_utf8(out.stdout).ok()?.trim().to_string();
            (out.status.success() && !sha.is_empty()).then_some(sha)
        })
        .map(|s| {
            s.trim()
                .chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect()
        })
}

/// The lock time to record: `SOURCE_DATE_EPOCH` when set (reproducible builds: the same
/// tree then gives the same manifest bytes), else now.
fn now_unix() -> u64 {
    if let Some(epoch) = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse().ok())
    {
        return epoch;
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Runs `treeseal lock`.
pub fn lock(args: LockArgs, out: &mut Output) -> Result<ExitCode> {
    configure_threads(args.threads.threads)?;
    require_dir(&args.dir)?;
    let started = Instant::now();
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| args.dir.join(DEFAULT_NAME));
    let rules = rules_for(&args.dir, &args.rules, Some(&output))?;
    let origin = Origin {
        created_unix: now_unix(),
        source: source_commit(&args.dir, args.source),
        tool: format!("treeseal {}", crate::cli::VERSION),
    };
    let manifest = crate::lock::lock(&args.dir, rules, origin)?;
    manifest.save(&output)?;
    let (files, bytes) = file_totals(&manifest);
    out.data(&format_digest(&manifest.digest()))?;
    out.flush()?;
    out.log(
        Level::Info,
        &format!(
            "locked {} ({}, {}) in {} ms -> {}",
            count(manifest.entries.len() as u64, "entry", "entries"),
            count(files as u64, "file", "files"),
            human_bytes(bytes),
            started.elapsed().as_millis(),
            escape(output.as_os_str().as_encoded_bytes()),
        ),
        &[("event", "locked".into())],
    );
    Ok(ExitCode::Ok)
}

fn file_totals(m: &Manifest) -> (usize, u64) {
    m.entries.iter().fold((0, 0), |(n, b), e| match e.node {
        NodeRef::File { size, .. } => (n + 1, b + size),
        _ => (n, b),
    })
}
