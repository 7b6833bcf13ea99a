//! One function per subcommand: turn parsed arguments into library calls and print the
//! result. `run` and `healthcheck` live in [`crate::gate`].

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use crate::cli::{Cli, Command, DiffArgs, LockArgs, RuleArgs, ShowArgs, VerifyArgs};
use crate::diff::{self, Change};
use crate::error::{Error, Result};
use crate::escape::{escape, json_string};
use crate::exit::ExitCode;
use crate::ignore::{self, Matcher};
use crate::lock;
use crate::manifest::{Manifest, Origin, DEFAULT_NAME};
use crate::tree::{format_digest, hex, parse_digest, Kind, Node, Rules};
use crate::verify::{self, Options};

/// Runs the parsed command line.
pub fn dispatch(cli: Cli) -> Result<ExitCode> {
    crate::pool::configure(crate::gate::thread_count(cli.threads)?);
    match cli.command {
        Command::Lock(args) => lock_cmd(args),
        Command::Digest(args) => {
            let rules = rules_for(&args.dir, &args.rules, None)?;
            let m = lock::lock(&args.dir, rules, Origin::default())?;
            println!("{}", format_digest(&m.digest()));
            Ok(ExitCode::Ok)
        }
        Command::Verify(args) => verify_cmd(args),
        Command::Show(args) => show_cmd(args),
        Command::Diff(args) => diff_cmd(args),
        Command::Run(args) => crate::gate::run(args),
        Command::Healthcheck(args) => Ok(crate::gate::healthcheck(args)),
        #[cfg(feature = "image")]
        Command::Image(args) => crate::image::command::run(args),
    }
}

/// Builds the rules for walking `dir` (see [`lock::rules`]).
pub fn rules_for(dir: &Path, args: &RuleArgs, output: Option<&Path>) -> Result<Rules> {
    let file = match (&args.dockerignore, args.no_dockerignore) {
        (_, true) => lock::IgnoreFile::Skip,
        (Some(f), false) => lock::IgnoreFile::Given(f.clone()),
        (None, false) => lock::IgnoreFile::InTree,
    };
    lock::rules(dir, &file, &args.exclude, args.modes.into(), output)
}

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

fn lock_cmd(args: LockArgs) -> Result<ExitCode> {
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
    let manifest = lock::lock(&args.dir, rules, origin)?;
    manifest.save(&output)?;
    let (files, bytes) = file_totals(&manifest);
    println!("{}", format_digest(&manifest.digest()));
    eprintln!(
        "treeseal: locked {} entries ({files} files, {}) in {} ms -> {}",
        manifest.entries.len(),
        human_bytes(bytes),
        started.elapsed().as_millis(),
        escape(output.as_os_str().as_encoded_bytes()),
    );
    Ok(ExitCode::Ok)
}

fn file_totals(m: &Manifest) -> (usize, u64) {
    m.entries.iter().fold((0, 0), |(n, b), e| match e.node {
        Node::File { size, .. } => (n + 1, b + size),
        _ => (n, b),
    })
}

/// Bytes in a short human form (KiB, MiB, GiB).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Parses a `blake3:HEX` digest argument.
pub fn digest_arg(text: &str, origin: &str) -> Result<crate::tree::Hash> {
    parse_digest(text).ok_or_else(|| {
        Error::Usage(format!(
            "{origin}: {:?} is not a digest of the form blake3:<64 hex digits>",
            text
        ))
    })
}

/// Compiles `--allow-extra` style patterns.
pub fn allow_matcher(patterns: &[String], origin: &str) -> Result<Option<Matcher>> {
    let patterns: Vec<String> = patterns
        .iter()
        .filter_map(|p| ignore::normalize_pattern(p))
        .collect();
    if patterns.is_empty() {
        return Ok(None);
    }
    Matcher::new(&patterns)
        .map(Some)
        .map_err(|source| Error::Pattern {
            origin: origin.into(),
            source,
        })
}

fn verify_cmd(args: VerifyArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let expected = args
        .digest
        .as_deref()
        .map(|d| digest_arg(d, "--digest"))
        .transpose()?;
    let allow_extra = allow_matcher(&args.allow_extra, "--allow-extra")?;
    let path = args
        .manifest
        .clone()
        .unwrap_or_else(|| args.dir.join(DEFAULT_NAME));
    let manifest = Manifest::load(&path)?;
    let digest = manifest.digest();
    if let Some(want) = expected {
        if want != digest {
            eprintln!(
                "treeseal: digest mismatch: the manifest is {}, expected {}: {}",
                format_digest(&digest),
                format_digest(&want),
                origin_text(&manifest.origin)
            );
            return Ok(ExitCode::Differs);
        }
    }
    let options = Options {
        all: args.all,
        allow_extra,
        ..Options::default()
    };
    let report = verify::verify(&args.dir, &manifest, &options)?;
    if report.is_equal() {
        if !args.quiet {
            eprintln!(
                "treeseal: ok {} ({} entries, {} files, {} hashed in {} ms)",
                format_digest(&digest),
                report.entries,
                report.files_hashed,
                human_bytes(report.bytes_hashed),
                started.elapsed().as_millis()
            );
        }
        return Ok(ExitCode::Ok);
    }
    if args.all {
        for d in &report.differences {
            eprintln!("{d}");
        }
        eprintln!(
            "treeseal: {} differences from {}",
            report.differences.len(),
            escape(path.as_os_str().as_encoded_bytes())
        );
    } else {
        eprintln!("treeseal: {}", first_difference_line(&report));
    }
    Ok(ExitCode::Differs)
}

/// The one line that names the first difference, with a count of the others.
pub fn first_difference_line(report: &verify::Report) -> String {
    let first = &report.differences[0];
    let more = report.differences.len() - 1;
    let tail = match (more, report.complete) {
        // Nothing more was found, either because there is nothing or because the check
        // stopped at the first difference; the count below is a lower bound.
        (0, _) => String::new(),
        (n, true) => format!(" (+{n} more; --all lists every one)"),
        (n, false) => format!(" (+ at least {n} more; --all lists every one)"),
    };
    format!("{first}{tail}")
}

/// Where and when a manifest was made, in words.
pub fn origin_text(origin: &Origin) -> String {
    let source = origin
        .source
        .as_deref()
        .map_or("an unknown commit".to_string(), |s| {
            format!("commit {}", escape(s.as_bytes()))
        });
    format!(
        "locked from {source} at {} by {}",
        format_time(origin.created_unix),
        escape(origin.tool.as_bytes())
    )
}

/// Formats Unix seconds as an RFC 3339 UTC timestamp (no time zone database needed).
pub fn format_time(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm), proleptic Gregorian calendar.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn show_cmd(args: ShowArgs) -> Result<ExitCode> {
    let manifest = Manifest::load(&args.file)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = (|| -> std::io::Result<()> {
        for e in &manifest.entries {
            if args.json {
                let path = String::from_utf8_lossy(&e.path);
                write!(
                    out,
                    "{{\"path\":{},\"kind\":\"{}\",",
                    json_string(&path),
                    e.node.kind()
                )?;
                if std::str::from_utf8(&e.path).is_err() {
                    write!(out, "\"path_hex\":\"{}\",", hex_bytes(&e.path))?;
                }
                match &e.node {
                    Node::File { size, hash } => write!(
                        out,
                        "\"size\":{size},\"mode\":\"{:04o}\",\"hash\":\"{}\"}}",
                        e.mode,
                        hex(hash)
                    )?,
                    Node::Symlink { target } => write!(
                        out,
                        "\"size\":{},\"mode\":\"{:04o}\",\"target\":{}}}",
                        target.len(),
                        e.mode,
                        json_string(&String::from_utf8_lossy(target))
                    )?,
                    _ => write!(out, "\"size\":0,\"mode\":\"{:04o}\"}}", e.mode)?,
                }
                writeln!(out)?;
            } else if let Node::File { hash, .. } = &e.node {
                // b3sum's convention: a line whose name needed escaping starts with `\`.
                let name = escape(&e.path);
                let mark = if name.as_bytes() != e.path.as_slice() {
                    "\\"
                } else {
                    ""
                };
                writeln!(out, "{mark}{}  {name}", hex(hash))?;
            }
        }
        out.flush()
    })();
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::Ok),
        Err(e) => Err(Error::io("write", Path::new("standard output"), e)),
        Ok(()) => Ok(ExitCode::Ok),
    }
}

fn hex_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Loads a diff side: a manifest file, or a directory locked in memory (with `rules`).
fn load_side(path: &Path, rules: Option<&Rules>, args: &RuleArgs) -> Result<Manifest> {
    let meta = std::fs::metadata(path).map_err(|e| Error::io("open", path, e))?;
    if !meta.is_dir() {
        return Manifest::load(path);
    }
    let rules = match rules {
        Some(r) => r.clone(),
        None => rules_for(path, args, None)?,
    };
    lock::lock(path, rules, Origin::default())
}

fn diff_cmd(args: DiffArgs) -> Result<ExitCode> {
    // A directory compared with a manifest is walked under the manifest's rules, so
    // that the comparison is like for like.
    let (a, b) = match (args.a.is_dir(), args.b.is_dir()) {
        (false, true) => {
            let a = load_side(&args.a, None, &args.rules)?;
            let b = load_side(&args.b, Some(&a.rules), &args.rules)?;
            (a, b)
        }
        _ => {
            let b = load_side(&args.b, None, &args.rules)?;
            let a = load_side(
                &args.a,
                Some(&b.rules).filter(|_| !args.b.is_dir()),
                &args.rules,
            )?;
            (a, b)
        }
    };
    let out = std::io::stdout();
    let mut out = out.lock();
    let lines = explain(&a, &b);
    for line in &lines {
        if let Err(e) = writeln!(out, "{line}") {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                break;
            }
            return Err(Error::io("write", Path::new("standard output"), e));
        }
    }
    Ok(if lines.len() > 1 {
        ExitCode::Differs
    } else {
        ExitCode::Ok
    })
}

/// Mode changes shared by more than this many files are summarised on one line.
const MODE_GROUP_MIN: usize = 5;

/// The lines `diff` prints: rule differences, changes in path order (mass mode changes
/// grouped), and a summary line last.
pub fn explain(a: &Manifest, b: &Manifest) -> Vec<String> {
    let mut lines = Vec::new();
    if a.rules.patterns != b.rules.patterns {
        lines.push(format!(
            "rules: ignore patterns differ: A [{}], B [{}]",
            a.rules.patterns.join(", "),
            b.rules.patterns.join(", ")
        ));
    }
    if a.rules.modes != b.rules.modes {
        lines.push(format!(
            "rules: mode policy differs: A {}, B {}",
            a.rules.modes.name(),
            b.rules.modes.name()
        ));
    }
    let changes = diff::diff(a, b);
    let mut groups: std::collections::BTreeMap<(u32, u32), Vec<&Change>> = Default::default();
    for c in &changes {
        if let Change::Mode { a, b, .. } = c {
            groups.entry((*a, *b)).or_default().push(c);
        }
    }
    let (mut added, mut removed, mut changed) = (0, 0, 0);
    for c in &changes {
        let path = escape(c.path());
        let slash = |k: &Kind| if *k == Kind::Dir { "/" } else { "" };
        let below = |n: &usize| match n {
            0 => String::new(),
            n => format!(" (and {n} entries below)"),
        };
        match c {
            Change::Added { kind, below: n, .. } => {
                added += 1 + n;
                lines.push(format!(
                    "added     {kind:<7} {path}{}{}",
                    slash(kind),
                    below(n)
                ));
            }
            Change::Removed { kind, below: n, .. } => {
                removed += 1 + n;
                lines.push(format!(
                    "removed   {kind:<7} {path}{}{}",
                    slash(kind),
                    below(n)
                ));
            }
            Change::Content { a, b, .. } => {
                changed += 1;
                lines.push(format!("content   file    {path} ({a} -> {b} bytes)"));
            }
            Change::Type { a, b, .. } => {
                changed += 1;
                lines.push(format!("type      {a:<7} {path} ({a} -> {b})"));
            }
            Change::Target { a, b, .. } => {
                changed += 1;
                lines.push(format!(
                    "target    symlink {path} ({} -> {})",
                    escape(a),
                    escape(b)
                ));
            }
            Change::Mode {
                a: ma,
                b: mb,
                counts,
                ..
            } => {
                changed += 1;
                let group = &groups[&(*ma, *mb)];
                let note = if *counts {
                    ""
                } else {
                    "; not sealed under --modes exec, but the build cache sees it"
                };
                if group.len() > MODE_GROUP_MIN {
                    if std::ptr::eq(group[0], c) {
                        lines.push(format!(
                            "mode      {:04o} -> {:04o} on {} entries, first {path}{note}",
                            ma,
                            mb,
                            group.len()
                        ));
                    }
                } else {
                    lines.push(format!("mode      {ma:04o} -> {mb:04o} {path}{note}"));
                }
            }
        }
    }
    let (da, db) = (a.digest(), b.digest());
    let verdict = if da == db {
        format!("same digest {}", format_digest(&da))
    } else {
        format!(
            "digests differ: A {}, B {}",
            format_digest(&da),
            format_digest(&db)
        )
    };
    lines.push(format!(
        "summary: {added} added, {removed} removed, {changed} changed; {verdict}"
    ));
    lines
}
