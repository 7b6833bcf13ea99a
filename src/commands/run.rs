//! `treeseal run`: verify the gated trees, record the healthcheck snapshot, exec the
//! command. Every line it prints follows `--log`/`TREESEAL_LOG`, configuration errors
//! included.

use std::time::Instant;

use crate::cli::RunArgs;
use crate::exit::ExitCode;
use crate::gate::{self, root_text, Config, Env};
use crate::output::{Level, Output};
use crate::tree::format_digest;
use crate::words::{count, human_bytes};

/// Runs `treeseal run`. Returns only on refusal or when the command cannot be executed.
pub fn run(args: RunArgs, out: &mut Output, env: Env) -> ExitCode {
    // As PID 1 a process has no default action for SIGTERM/SIGINT: without handlers,
    // `docker stop` would wait out its grace period while we verify.
    crate::exec::exit_on_termination_signals();
    let started = Instant::now();
    let refuse = |out: &mut Output, e: crate::error::Error| {
        out.log(
            Level::Error,
            &format!("refusing to start: {e}"),
            &[("event", "cannot-check".into())],
        );
        e.exit_code()
    };
    match gate::log_format(args.gate.log.as_deref(), env) {
        Ok(format) => out.set_format(format),
        Err(e) => return refuse(out, e),
    }
    if args.command.is_empty() {
        return refuse(
            out,
            crate::error::Error::Usage(
                "run: no command after -- (treeseal run [OPTIONS] -- CMD [ARGS]...)".into(),
            ),
        );
    }
    let config = match Config::resolve(&super::gate_flags(&args.gate), env)
        .and_then(|c| gate::thread_count(args.gate.threads.threads, env).map(|n| (c, n)))
    {
        Ok((config, threads)) => {
            crate::pool::configure(threads);
            config
        }
        Err(e) => return refuse(out, e),
    };
    let mut checked = match gate::check(&config, None) {
        Ok(Ok(checked)) => checked,
        Ok(Err((tree, refusal))) => {
            let (line, fields) = refusal.describe(&tree);
            out.log(Level::Error, &format!("refusing to start: {line}"), &fields);
            return ExitCode::Differs;
        }
        Err(e) => return refuse(out, e),
    };
    let saved = match config.snapshot_path() {
        None => Err("no safe directory for it".to_string()),
        Some(path) => checked.take_snapshot().keep_or_save(&path).map_err(|e| {
            format!(
                "{}: {e}",
                crate::escape::escape(path.as_os_str().as_encoded_bytes())
            )
        }),
    };
    let warning = checked.unanchored_warning();
    if !config.quiet {
        let (files, bytes) = checked.trees.iter().fold((0, 0), |(f, b), (_, _, r)| {
            (f + r.files_hashed, b + r.bytes_hashed)
        });
        let roots: Vec<String> = checked
            .trees
            .iter()
            .map(|(t, d, _)| format!("{} {}", root_text(t), format_digest(d)))
            .collect();
        let mut line = format!(
            "verified {} ({}, {}, {} ms)",
            roots.join(", "),
            count(files, "file", "files"),
            human_bytes(bytes),
            started.elapsed().as_millis()
        );
        if let Some(w) = &warning {
            line.push_str(&format!("; {w}"));
        }
        if let Err(why) = &saved {
            line.push_str(&format!(
                "; no healthcheck snapshot ({why}): healthchecks will re-hash"
            ));
        }
        let level = if warning.is_some() {
            Level::Warn
        } else {
            Level::Info
        };
        out.log(level, &line, &[("event", "verified".into())]);
    } else if let Some(w) = &warning {
        // Quiet silences the success line, never the warning that the check is weaker.
        out.log(Level::Warn, w, &[("event", "unanchored".into())]);
    }
    let err = crate::exec::exec(&args.command);
    out.log(
        Level::Error,
        &err.to_string(),
        &[("event", "exec-failed".into())],
    );
    err.exit_code()
}
