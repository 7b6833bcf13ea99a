//! The exit codes treeseal documents, in one place.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | the tree equals its manifest (and the expected digest); or the command succeeded |
//! | 1 | the tree differs (verify, run, diff); unhealthy (healthcheck) |
//! | 2 | could not check: bad arguments, missing/unreadable/corrupt manifest, missing root, I/O error |
//! | 126 | `run`: the command was found but cannot be executed |
//! | 127 | `run`: the command was not found |
//! | 128+N | `run`: stopped by signal N while still verifying |
//!
//! `healthcheck` only ever exits 0 or 1, because Docker reserves 2.

/// A documented exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitCode {
    /// 0: equal / success.
    Ok,
    /// 1: the tree differs, or is unhealthy.
    Differs,
    /// 2: the check could not be completed.
    CannotCheck,
    /// 126: the gated command cannot be executed.
    NotExecutable,
    /// 127: the gated command was not found.
    NotFound,
    /// 128+N: terminated by signal N.
    Signal(u8),
}

impl ExitCode {
    /// The numeric status.
    pub fn code(self) -> u8 {
        match self {
            ExitCode::Ok => 0,
            ExitCode::Differs => 1,
            ExitCode::CannotCheck => 2,
            ExitCode::NotExecutable => 126,
            ExitCode::NotFound => 127,
            ExitCode::Signal(n) => 128u8.saturating_add(n),
        }
    }
}
