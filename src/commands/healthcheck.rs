//! `treeseal healthcheck`: the cheap re-check for Docker HEALTHCHECK and Kubernetes exec
//! probes. Exits 0 (healthy) or 1 (unhealthy) for every input, with one line on standard
//! output; Docker reserves 2.

use std::time::Instant;

use crate::cli::HealthcheckArgs;
use crate::error::Error;
use crate::exit::ExitCode;
use crate::gate::{self, root_text, Config, Env};
use crate::output::{Level, Output};
use crate::snapshot::{self, Loaded};

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
    let (snapshot, note) = match (args.full, config.snapshot_path()) {
        (true, _) | (false, None) => (None, None),
        (false, Some(path)) => match snapshot::load(&path) {
            Loaded::Absent => (None, None),
            Loaded::Trusted(s) => (Some(s), None),
            Loaded::Untrusted(why) => (None, Some(why)),
        },
    };
    let mode = if snapshot.is_some() { "cheap" } else { "full" };
    let note = note.map_or(String::new(), |n| format!("; {n}, so it was not used"));
    match gate::check(&config, snapshot) {
        Ok(Ok(checked)) => {
            let (hashed, trusted) = checked.trees.iter().fold((0, 0), |(h, t), (_, _, r)| {
                (h + r.files_hashed, t + r.files_trusted)
            });
            let roots: Vec<String> = checked.trees.iter().map(|(t, _, _)| root_text(t)).collect();
            out.health(
                Level::Info,
                &format!(
                    "healthy: {} ({mode} check: {trusted} files unchanged, {hashed} hashed, {} ms{note})",
                    roots.join(", "),
                    started.elapsed().as_millis()
                ),
                &[("event", "healthy".into())],
            );
            ExitCode::Ok
        }
        Ok(Err((tree, refusal))) => {
            let (line, fields) = refusal.describe(&tree);
            out.health(Level::Error, &format!("unhealthy: {line}{note}"), &fields);
            ExitCode::Differs
        }
        Err(e) => cannot(out, e),
    }
}
