//! The command layer: from parsed arguments and the environment to a resolved
//! configuration, library calls, and the one place that prints (through
//! [`Output`]) and picks the exit code. One module per subcommand.
//!
//! The library never imports from here or from [`crate::cli`].

mod diff;
mod digest;
mod healthcheck;
#[cfg(feature = "image")]
mod image;
mod lock;
mod run;
mod show;
mod verify;

use std::ffi::OsString;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, Parser};

use crate::cli::{Cli, Command, Modes, RuleArgs};
use crate::error::{Error, Result};
use crate::escape::escape;
use crate::exit::ExitCode;
use crate::output::{Level, Output};
use crate::tree::{ModePolicy, Rules};

pub use diff::explain;

/// Set while the healthcheck runs, so that even a bug ends in its exit contract (0 or 1).
static HEALTHCHECK: AtomicBool = AtomicBool::new(false);

/// The process environment, as the library's lookups take it.
fn process_env(name: &str) -> Option<OsString> {
    std::env::var_os(name)
}

/// Parses the command line, runs the command and returns the process exit code.
pub fn main() -> std::process::ExitCode {
    install_panic_hook();
    let args: Vec<OsString> = std::env::args_os().collect();
    let sub = subcommand_named(&args);
    let health = sub.as_deref() == Some("healthcheck");
    HEALTHCHECK.store(health, Ordering::Relaxed);
    // Until the command line is parsed, only the environment can ask for JSON; `run` and
    // `healthcheck` honour it for their usage errors too.
    let gated = matches!(sub.as_deref(), Some("run" | "healthcheck"));
    let early = match gated {
        true => crate::gate::log_format(None, &process_env).unwrap_or_default(),
        false => Default::default(),
    };
    let mut out = Output::new(early);
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version: clap prints them; a closed stdout is not our error.
            let _ = e.print();
            return ExitCode::Ok.into();
        }
        Err(e) => {
            let line = usage_line(&e, sub.as_deref());
            if health {
                out.health(
                    Level::Error,
                    &format!("unhealthy: cannot check: {line}"),
                    &[],
                );
                return ExitCode::Differs.into();
            }
            out.log(Level::Error, &line, &[("event", "usage".into())]);
            return ExitCode::CannotCheck.into();
        }
    };
    let result = match cli.command {
        Command::Healthcheck(args) => Ok(healthcheck::healthcheck(args, &mut out, &process_env)),
        Command::Run(args) => Ok(run::run(args, &mut out, &process_env)),
        Command::Lock(args) => lock::lock(args, &mut out),
        Command::Digest(args) => digest::digest(args, &mut out),
        Command::Verify(args) => verify::verify(args, &mut out),
        Command::Show(args) => show::show(args, &mut out),
        Command::Diff(args) => diff::diff(args, &mut out),
        #[cfg(feature = "image")]
        Command::Image(args) => image::image(args, &mut out),
    };
    let code = result.and_then(|code| out.flush().map(|()| code));
    match code {
        Ok(code) => code.into(),
        Err(e) => {
            if !matches!(e, Error::ClosedOutput) {
                out.log(Level::Error, &e.to_string(), &[("event", "error".into())]);
            }
            e.exit_code().into()
        }
    }
}

/// The subcommand argv names: the first argument (before `--`) that is a subcommand's
/// name. Known even when clap cannot parse the rest, so that a bad `healthcheck` command
/// line still gets the healthcheck's exit contract.
fn subcommand_named(args: &[OsString]) -> Option<String> {
    let cli = Cli::command();
    let names: Vec<&str> = cli.get_subcommands().map(|c| c.get_name()).collect();
    args.iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .filter_map(|a| a.to_str())
        .find(|a| names.contains(a))
        .map(str::to_string)
}

/// One line for a command-line error that names what is wrong, for every kind of error
/// (clap's own message spreads the missing argument over several lines).
fn usage_line(e: &clap::Error, sub: Option<&str>) -> String {
    if e.kind() == ErrorKind::MissingRequiredArgument {
        match sub {
            Some("run") => {
                return "run: no command after -- (treeseal run [OPTIONS] -- CMD [ARGS]...)".into()
            }
            Some("diff") => {
                return "diff: needs two trees, A and B (each a manifest file or a directory)"
                    .into()
            }
            _ => {}
        }
        if let Some(ContextValue::Strings(missing)) = e.get(ContextKind::InvalidArg) {
            let sub = sub.map_or(String::new(), |s| format!("{s}: "));
            return format!("{sub}missing {} (see treeseal --help)", missing.join(", "));
        }
    }
    let text = e.to_string();
    let first = text.lines().next().unwrap_or("invalid arguments");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    format!("{first} (see treeseal --help)")
}

/// A bug must not print a multi-line debug dump (even with RUST_BACKTRACE=1) nor let the
/// gate pass: one line, and a non-zero exit (the release build aborts after the hook).
/// In the healthcheck the line is its `unhealthy:` line and the exit is 1, which the hook
/// does itself because an abort would exit 134.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let healthcheck = HEALTHCHECK.load(Ordering::Relaxed);
        let (line, exit) = panic_report(&msg, healthcheck, crate::output::json_notes());
        use std::io::Write;
        if let Some(code) = exit {
            let _ = std::io::stdout().write_all(line.as_bytes());
            let _ = std::io::stdout().flush();
            std::process::exit(code.code().into());
        }
        let _ = std::io::stderr().write_all(line.as_bytes());
    }));
}

/// What the panic hook writes for a panic with `msg`, and the exit it makes itself: for
/// the healthcheck, its `unhealthy:` line (for stdout) and 1; otherwise the error line
/// (for stderr) and `None`, leaving the exit to the panic runtime.
fn panic_report(msg: &str, healthcheck: bool, json: bool) -> (String, Option<ExitCode>) {
    let msg = escape(msg.as_bytes());
    let (text, exit) = if healthcheck {
        (
            format!("unhealthy: cannot check: internal error: {msg}"),
            Some(ExitCode::Differs),
        )
    } else {
        (format!("internal error: {msg}; refusing"), None)
    };
    let line = match (json, healthcheck) {
        (true, _) => {
            crate::output::json_line(Level::Error, &text, &[("event", "internal-error".into())])
        }
        (false, true) => format!("{text}\n"),
        (false, false) => format!("treeseal: {text}\n"),
    };
    (line, exit)
}

/// Sizes the worker pool from `--threads` / `TREESEAL_THREADS`.
fn configure_threads(flag: Option<usize>) -> Result<()> {
    crate::pool::configure(crate::gate::thread_count(flag, &process_env)?);
    Ok(())
}

/// Refuses a DIR argument that is not a directory before anything is read beneath it,
/// so the message says what is wrong with the argument.
fn require_dir(dir: &Path) -> Result<()> {
    crate::walk::check_root(dir).map_err(|e| match e {
        Error::Root {
            path,
            problem: "is not a directory",
        } => Error::Root {
            path,
            problem: "is not a directory (DIR must be a directory: the tree, not a file in it)",
        },
        e => e,
    })
}

impl From<Modes> for ModePolicy {
    fn from(m: Modes) -> ModePolicy {
        match m {
            Modes::Exec => ModePolicy::Exec,
            Modes::Full => ModePolicy::Full,
        }
    }
}

/// Builds the rules for walking `dir` (see [`crate::lock::rules`]).
pub(crate) fn rules_for(dir: &Path, args: &RuleArgs, output: Option<&Path>) -> Result<Rules> {
    let file = match (&args.dockerignore, args.no_dockerignore) {
        (_, true) => crate::lock::IgnoreFile::Skip,
        (Some(f), false) => crate::lock::IgnoreFile::Given(f.clone()),
        (None, false) => crate::lock::IgnoreFile::InTree,
    };
    crate::lock::rules(dir, &file, &args.exclude, args.modes.into(), output)
}

/// The gate's flag values, for [`crate::gate::Config::resolve`].
fn gate_flags(args: &crate::cli::GateArgs) -> crate::gate::Flags {
    crate::gate::Flags {
        trees: args.trees.clone(),
        manifest: args.manifest.clone(),
        allow_extra: args.allow_extra.clone(),
        state: args.state.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_in_the_healthcheck_is_its_unhealthy_line_and_exit_1() {
        let (line, exit) = panic_report("boom\nline two", true, false);
        assert_eq!(
            line,
            "unhealthy: cannot check: internal error: boom\\nline two\n"
        );
        assert_eq!(exit, Some(ExitCode::Differs));
        let (line, exit) = panic_report("boom", true, true);
        assert!(line.contains("\"msg\":\"unhealthy: cannot check: internal error: boom\""));
        assert_eq!(exit, Some(ExitCode::Differs));
        let (line, exit) = panic_report("boom", false, false);
        assert_eq!(line, "treeseal: internal error: boom; refusing\n");
        assert_eq!(exit, None);
    }

    #[test]
    fn the_subcommand_is_found_when_clap_cannot_parse_the_line() {
        let argv = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        let sub = |a: &[&str]| subcommand_named(&argv(a));
        assert_eq!(
            sub(&["ts", "--threads", "x", "healthcheck"]).as_deref(),
            Some("healthcheck")
        );
        assert_eq!(
            sub(&["ts", "--bogus", "healthcheck", "--x"]).as_deref(),
            Some("healthcheck")
        );
        // A directory named like a subcommand is an argument of the first one.
        assert_eq!(sub(&["ts", "lock", "healthcheck"]).as_deref(), Some("lock"));
        assert_eq!(
            sub(&["ts", "run", "--", "healthcheck"]).as_deref(),
            Some("run")
        );
        assert_eq!(sub(&["ts", "--", "healthcheck"]), None);
    }
}
