//! `treeseal digest`: print DIR's root digest without writing anything.

use super::{configure_threads, require_dir, rules_for};
use crate::cli::DigestArgs;
use crate::error::Result;
use crate::exit::ExitCode;
use crate::manifest::Origin;
use crate::output::Output;
use crate::tree::format_digest;

/// Runs `treeseal digest`.
pub fn digest(args: DigestArgs, out: &mut Output) -> Result<ExitCode> {
    configure_threads(args.threads.threads)?;
    require_dir(&args.dir)?;
    let rules = rules_for(&args.dir, &args.rules, None)?;
    let m = crate::lock::lock(&args.dir, rules, Origin::default())?;
    out.data(&format_digest(&m.digest()))?;
    Ok(ExitCode::Ok)
}
