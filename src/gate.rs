//! PLACEHOLDER
#![allow(missing_docs)]
use crate::cli::{HealthcheckArgs, RunArgs};
use crate::error::{Error, Result};
use crate::exit::ExitCode;
pub fn thread_count(flag: Option<usize>) -> Result<usize> {
    Ok(flag.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())))
}
pub fn run(_a: RunArgs) -> Result<ExitCode> {
    Err(Error::Usage("todo".into()))
}
pub fn healthcheck(_a: HealthcheckArgs) -> ExitCode {
    ExitCode::Differs
}
