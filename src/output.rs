//! The one place treeseal writes to standard output and standard error.
//!
//! Every command writes through an [`Output`]: data (digests, `show` and `diff` lines) to
//! standard output, where a closed pipe becomes [`Error::ClosedOutput`] (a quiet exit 141,
//! never an abort); log lines (results, warnings, errors) to standard error; and the
//! healthcheck's one line to standard output. With [`Format::Json`] every log and
//! healthcheck line is one JSON object with `time`, `level` and `msg` beside the
//! structured fields. The note a termination signal leaves is formatted here too
//! ([`termination_note`]), allocation-free, in the format chosen by [`Output::new`].

use std::io::{self, BufWriter, Stdout, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};
use crate::escape::json_string;
use crate::words::{format_time, format_time_into, TIME_LEN};

/// The format of log and healthcheck lines (`--log`, `TREESEAL_LOG`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// `treeseal: message` on standard error.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// How serious a log line is; JSON's `level` field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// A result.
    Info,
    /// Something the user should change, that did not stop the command.
    Warn,
    /// The command failed or refused.
    Error,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// Whether the note written on a termination signal is JSON (see [`termination_note`]).
static JSON_NOTES: AtomicBool = AtomicBool::new(false);

/// The print site: see the module documentation.
pub struct Output {
    format: Format,
    stdout: BufWriter<Stdout>,
}

impl Output {
    /// An output in `format`; also selects the format of the termination-signal note.
    pub fn new(format: Format) -> Output {
        JSON_NOTES.store(format == Format::Json, Ordering::Relaxed);
        Output {
            format,
            stdout: BufWriter::new(io::stdout()),
        }
    }

    /// Switches the format once the configuration that names it is resolved.
    pub fn set_format(&mut self, format: Format) {
        JSON_NOTES.store(format == Format::Json, Ordering::Relaxed);
        self.format = format;
    }

    /// One line of data on standard output.
    pub fn data(&mut self, line: &str) -> Result<()> {
        writeln!(self.stdout, "{line}").map_err(write_error)
    }

    /// Writes buffered data out.
    pub fn flush(&mut self) -> Result<()> {
        self.stdout.flush().map_err(write_error)
    }

    /// One log line on standard error. A closed standard error has no one left to tell,
    /// so a failure to write it is ignored; the exit code still says what happened.
    pub fn log(&mut self, level: Level, msg: &str, fields: &[(&str, String)]) {
        let line = match self.format {
            Format::Text => format!("treeseal: {msg}\n"),
            Format::Json => json_line(level, msg, fields),
        };
        let _ = self.flush();
        let _ = io::stderr().write_all(line.as_bytes());
    }

    /// Plain lines on standard error, one per item (`verify --all`'s list), as they
    /// are in text; one JSON object each in JSON.
    pub fn list(&mut self, level: Level, lines: &[String]) {
        let _ = self.flush();
        let mut text = String::new();
        for line in lines {
            match self.format {
                Format::Text => {
                    text.push_str(line);
                    text.push('\n');
                }
                Format::Json => text.push_str(&json_line(level, line, &[])),
            }
        }
        let _ = io::stderr().write_all(text.as_bytes());
    }

    /// The healthcheck's one line, on standard output (where Docker keeps it in
    /// `docker inspect`). `msg` starts with `healthy:` or `unhealthy:`.
    pub fn health(&mut self, level: Level, msg: &str, fields: &[(&str, String)]) {
        let line = match self.format {
            Format::Text => format!("{msg}\n"),
            Format::Json => json_line(level, msg, fields),
        };
        let _ = self.stdout.write_all(line.as_bytes());
        let _ = self.stdout.flush();
    }
}

/// Whether log lines are JSON (for the panic hook, which has no [`Output`]).
pub fn json_notes() -> bool {
    JSON_NOTES.load(Ordering::Relaxed)
}

/// A closed pipe is the reader's choice, not a failure to report.
fn write_error(e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Error::ClosedOutput
    } else {
        Error::io("write", std::path::Path::new("standard output"), e)
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// One JSON log object and its newline.
pub fn json_line(level: Level, msg: &str, fields: &[(&str, String)]) -> String {
    let mut obj = format!(
        "{{\"time\":\"{}\",\"level\":\"{}\",\"msg\":{}",
        format_time(now_secs()),
        level.name(),
        json_string(msg)
    );
    for (k, v) in fields {
        obj.push_str(&format!(",{}:{}", json_string(k), json_string(v)));
    }
    obj.push_str("}\n");
    obj
}

/// Room for the longest [`termination_note`].
pub const NOTE_MAX: usize = 128;

/// The line written when termination signal `name` (`SIGTERM`, ...) stops treeseal at
/// `now` (Unix seconds), into `out`; returns its length. Async-signal-safe: no
/// allocation, no locks, only an atomic load and byte copies.
pub fn termination_note(name: &[u8], now: u64, out: &mut [u8; NOTE_MAX]) -> usize {
    let mut len = 0;
    let mut put = |bytes: &[u8]| {
        let n = bytes.len().min(NOTE_MAX - len);
        out[len..len + n].copy_from_slice(&bytes[..n]);
        len += n;
    };
    if JSON_NOTES.load(Ordering::Relaxed) {
        let mut time = [0u8; TIME_LEN];
        format_time_into(now, &mut time);
        put(b"{\"time\":\"");
        put(&time);
        put(b"\",\"level\":\"error\",\"msg\":\"stopped by ");
        put(name);
        put(b"\",\"event\":\"signal\"}\n");
    } else {
        put(b"treeseal: stopped by ");
        put(name);
        put(b"\n");
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_carry_time_level_msg_and_fields() {
        let line = json_line(Level::Warn, "a \"b\"", &[("event", "x".into())]);
        assert!(line.starts_with("{\"time\":\""), "{line}");
        assert!(
            line.ends_with("\"level\":\"warn\",\"msg\":\"a \\\"b\\\"\",\"event\":\"x\"}\n"),
            "{line}"
        );
    }

    #[test]
    fn termination_notes_follow_the_format() {
        let mut buf = [0u8; NOTE_MAX];
        JSON_NOTES.store(false, Ordering::Relaxed);
        let n = termination_note(b"SIGTERM", 0, &mut buf);
        assert_eq!(&buf[..n], b"treeseal: stopped by SIGTERM\n");
        JSON_NOTES.store(true, Ordering::Relaxed);
        let n = termination_note(b"SIGQUIT", 0, &mut buf);
        JSON_NOTES.store(false, Ordering::Relaxed);
        assert_eq!(
            &buf[..n],
            &b"{\"time\":\"1970-01-01T00:00:00Z\",\"level\":\"error\",\"msg\":\"stopped by SIGQUIT\",\"event\":\"signal\"}\n"[..]
        );
    }
}
