//! The exit codes treeseal documents, in one place.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | the tree equals its manifest (and the expected digest); or the command succeeded |
//! | 1 | the tree differs (verify, run, diff); unhealthy (healthcheck) |
//! | 2 | could not check: bad arguments or settings, missing/unreadable/corrupt manifest, missing root, I/O error |
//! | 126 | `run`: the command was found but cannot be executed |
//! | 127 | `run`: the command was not found |
//! | 141 | standard output was closed before everything was written (`treeseal show M \| head`) |
//! | 128+N | `run`: stopped by signal N while still verifying (written by the signal handler) |
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
    /// 141: the reader of standard output went away. 128 + SIGPIPE is what a shell
    /// reports for a program that a closed pipe stopped, so pipelines read it as usual.
    ClosedOutput,
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
            ExitCode::ClosedOutput => 141,
        }
    }
}

impl From<ExitCode> for std::process::ExitCode {
    fn from(code: ExitCode) -> std::process::ExitCode {
        std::process::ExitCode::from(code.code())
    }
}
