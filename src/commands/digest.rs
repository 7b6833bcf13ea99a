//! `treeseal digest`: print DIR's root digest without writing anything.

use super::rules_for;
use crate::cli::DigestArgs;
use crate::error::Result;
use crate::exit::ExitCode;
use crate::manifest::Origin;
use crate::output::Output;
use crate::tree::format_digest;

/// Runs `treeseal digest`.
pub fn digest(args: DigestArgs, out: &mut Output) -> Result<ExitCode> {
    let rules = rules_for(&args.dir, &args.rules, None)?;
    let m = crate::lock::lock(&args.dir, rules, Origin::default())?;
    out.data(&format_digest(&m.digest()))?;
    Ok(ExitCode::Ok)
}
