//! `treeseal diff`: explain what differs between two trees (manifests or directories).

use std::path::Path;

use super::{configure_threads, rules_for};
use crate::cli::{DiffArgs, RuleArgs};
use crate::diff::Change;
use crate::error::{Error, Result};
use crate::escape::escape;
use crate::exit::ExitCode;
use crate::manifest::{Manifest, Origin};
use crate::output::Output;
use crate::tree::{format_digest, Kind, Rules};

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
    crate::lock::lock(path, rules, Origin::default())
}

/// Runs `treeseal diff`.
pub fn diff(args: DiffArgs, out: &mut Output) -> Result<ExitCode> {
    configure_threads(args.threads.threads)?;
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
    print_explanation(&a, &b, out)
}

/// Prints what differs between two manifests ([`explain`]'s lines): exit 0 when they are
/// the same tree, 1 when they differ.
pub fn print_explanation(a: &Manifest, b: &Manifest, out: &mut Output) -> Result<ExitCode> {
    let lines = explain(a, b);
    for line in &lines {
        out.data(line)?;
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
    let changes = crate::diff::diff(a, b);
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
