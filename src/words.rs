//! How results are put in words: byte counts, times, a manifest's origin, the first
//! difference of a report. Shared by the commands and the gate; prints nothing.

use crate::escape::escape;
use crate::manifest::Origin;
use crate::verify::Report;

/// Bytes in a short human form (KiB, MiB, GiB).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// `n` and the noun, singular for 1 (`1 entry`, `2 entries`).
pub fn count(n: impl Into<u64>, singular: &str, plural: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { singular } else { plural })
}

/// The one line that names the first difference, with a count of the others.
pub fn first_difference_line(report: &Report) -> String {
    let first = &report.differences[0];
    let more = report.differences.len() - 1;
    let tail = match (more, report.complete) {
        // Nothing more was found, either because there is nothing or because the check
        // stopped at the first difference; the count below is a lower bound.
        (0, _) => String::new(),
        (n, true) => format!(" (+{n} more; --all lists every one)"),
        (n, false) => format!(" (+ at least {n} more; --all lists every one)"),
    };
    format!("{first}{tail}")
}

/// Where and when a manifest was made, in words.
pub fn origin_text(origin: &Origin) -> String {
    let source = origin
        .source
        .as_deref()
        .map_or("an unknown commit".to_string(), |s| {
            format!("commit {}", escape(s.as_bytes()))
        });
    format!(
        "locked from {source} at {} by {}",
        format_time(origin.created_unix),
        escape(origin.tool.as_bytes())
    )
}

/// The length of an RFC 3339 UTC timestamp with seconds (`2024-01-02T03:04:05Z`).
pub const TIME_LEN: usize = 20;

/// Formats Unix seconds as an RFC 3339 UTC timestamp (no time zone database needed).
pub fn format_time(secs: u64) -> String {
    let mut buf = [0u8; TIME_LEN];
    format_time_into(secs, &mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// [`format_time`] into a fixed buffer, without allocating: usable from a signal
/// handler. Years past 9999 wrap in the four year digits.
pub fn format_time_into(secs: u64, out: &mut [u8; TIME_LEN]) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm), proleptic Gregorian calendar.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let digits = |out: &mut [u8], mut v: u64| {
        for slot in out.iter_mut().rev() {
            *slot = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    digits(&mut out[0..4], year.unsigned_abs());
    out[4] = b'-';
    digits(&mut out[5..7], month as u64);
    out[7] = b'-';
    digits(&mut out[8..10], day as u64);
    out[10] = b'T';
    digits(&mut out[11..13], rem / 3600);
    out[13] = b':';
    digits(&mut out[14..16], rem / 60 % 60);
    out[16] = b':';
    digits(&mut out[17..19], rem % 60);
    out[19] = b'Z';
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_time(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn counts_agree_in_number() {
        assert_eq!(count(1u32, "entry", "entries"), "1 entry");
        assert_eq!(count(0u32, "entry", "entries"), "0 entries");
        assert_eq!(count(2u32, "entry", "entries"), "2 entries");
    }
}
