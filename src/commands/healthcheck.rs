//! `treeseal healthcheck`: the cheap re-check for Docker HEALTHCHECK and Kubernetes exec
//! probes. Exits 0 (healthy) or 1 (unhealthy) for every input, with one line on standard
//! output (and, with `--explain`, a second one saying what the probe covered); Docker
//! reserves 2. With a trusted snapshot it is a budgeted probe ([`crate::probe`]) whose
//! progress is written back to the snapshot; without one, a full check.

use std::time::Instant;

use crate::cli::HealthcheckArgs;
use crate::error::Error;
use crate::exit::ExitCode;
use crate::gate::{self, root_text, Config, Env, Refusal};
use crate::output::{Level, Output};
use crate::probe::{self, Coverage, Pace};
use crate::snapshot::{self, Loaded};
use crate::words::{count, human_bytes};

/// Runs `treeseal healthcheck`.
pub fn healthcheck(args: HealthcheckArgs, out: &mut Output, env: Env) -> ExitCode {
    let started = Instant::now();
    let cannot = |out: &mut Output, e: Error| {
        out.health(
            Level::Error,
            &format!("unhealthy: cannot check: {e}"),
            &[("event", "cannot-check".into())],
        );
        ExitCode::Differs
    };
    match gate::log_format(args.gate.log.as_deref(), env) {
        Ok(format) => out.set_format(format),
        Err(e) => return cannot(out, e),
    }
    let config = match Config::resolve(&super::gate_flags(&args.gate), env)
        .and_then(|c| gate::thread_count(args.gate.threads.threads, env).map(|n| (c, n)))
    {
        Ok((config, threads)) => {
            crate::pool::configure(threads);
            config
        }
        Err(e) => return cannot(out, e),
    };
    let pace = match Pace::resolve(args.budget.as_deref(), env) {
        Ok(pace) => pace,
        Err(e) => return cannot(out, e),
    };
    let (snapshot, note) = match (args.full, config.snapshot_path()) {
        (true, _) | (false, None) => (None, None),
        (false, Some(path)) => match snapshot::load(&path) {
            Loaded::Absent => (None, None),
            Loaded::Trusted(s) => (Some((s, path)), None),
            Loaded::Untrusted(why) => (None, Some(why)),
        },
    };
    let note = note.map_or(String::new(), |n| format!("; {n}, so it was not used"));
    let unhealthy = |out: &mut Output, tree, refusal: Refusal| {
        let (line, fields) = refusal.describe(&tree);
        out.health(Level::Error, &format!("unhealthy: {line}{note}"), &fields);
        ExitCode::Differs
    };
    let Some((mut snapshot, path)) = snapshot else {
        return match gate::check(&config, None) {
            Ok(Ok(checked)) => {
                let hashed: u64 = checked.trees.iter().map(|(_, _, r)| r.files_hashed).sum();
                let roots: Vec<String> =
                    checked.trees.iter().map(|(t, _, _)| root_text(t)).collect();
                out.health(
                    Level::Info,
                    &format!(
                        "healthy: {} (full check: 0 files unchanged, {hashed} hashed, {} ms{note})",
                        roots.join(", "),
                        started.elapsed().as_millis()
                    ),
                    &[("event", "healthy".into())],
                );
                ExitCode::Ok
            }
            Ok(Err((tree, refusal))) => unhealthy(out, tree, refusal),
            Err(e) => cannot(out, e),
        };
    };
    let covered = match probe::probe(&config, &mut snapshot, &pace, started) {
        Ok(Ok(covered)) => covered,
        Ok(Err((tree, refusal))) => return unhealthy(out, tree, refusal),
        Err(e) => return cannot(out, e),
    };
    if let Err(e) = snapshot.save(&path) {
        let e = Error::io("write the probe's progress to", &path, e);
        return cannot(out, e);
    }
    let mut sum = Coverage::default();
    for (_, c) in &covered {
        sum.entries += c.entries;
        sum.entries_checked += c.entries_checked;
        sum.bytes += c.bytes;
        sum.slice_bytes += c.slice_bytes;
        sum.unvouched_hashed += c.unvouched_hashed;
        sum.carried += c.carried;
    }
    let roots: Vec<String> = covered.iter().map(|(t, _)| root_text(t)).collect();
    out.health(
        Level::Info,
        &format!(
            "healthy: {} (cheap check: stamps of {} of {} entries, {} of {} re-hashed, \
             {} with new or missing stamps hashed, {} carried, {} ms)",
            roots.join(", "),
            sum.entries_checked,
            sum.entries,
            human_bytes(sum.slice_bytes),
            human_bytes(sum.bytes),
            count(sum.unvouched_hashed, "file", "files"),
            sum.carried,
            started.elapsed().as_millis()
        ),
        &[
            ("event", "healthy".into()),
            ("entries_checked", sum.entries_checked.to_string()),
            ("entries", sum.entries.to_string()),
            ("bytes_rehashed", sum.slice_bytes.to_string()),
            ("bytes", sum.bytes.to_string()),
            ("carried", sum.carried.to_string()),
        ],
    );
    if args.explain {
        let (mut stamps, mut content) = (Some(1), Some(1));
        for (_, c) in &covered {
            let (s, b) = c.bounds();
            stamps = stamps.zip(s).map(|(a, b)| a.max(b));
            content = content.zip(b).map(|(a, b)| a.max(b));
        }
        let probes =
            |n: Option<u64>| n.map_or("no bound yet".to_string(), |n| count(n, "probe", "probes"));
        out.health(
            Level::Info,
            &format!(
                "explain: budget {} ms (stamp windows get {}% of what is left after \
                 loading); at this probe's pace a change that moves a timestamp is found \
                 within {}, one that moves none (e.g. a write through a mapped page) within \
                 {}, plus the probes needed to hash {} carried files",
                pace.budget.as_millis(),
                probe::STAMP_SHARE,
                probes(stamps),
                probes(content),
                sum.carried,
            ),
            &[
                ("event", "explain".into()),
                (
                    "stamp_bound",
                    stamps.map_or(String::new(), |n| n.to_string()),
                ),
                (
                    "content_bound",
                    content.map_or(String::new(), |n| n.to_string()),
                ),
            ],
        );
    }
    ExitCode::Ok
}
