//! Checking a tree rebuilt from an image against its manifest, with the gate's own notion
//! of a difference ([`crate::verify::Difference`]), so that `image verify` names the first
//! difference exactly as `treeseal run` would name it inside the container.
//!
//! Every file's hash is already known from the layer, so the comparison is complete: no
//! difference is skipped, and the count after the first one is exact.

use crate::diff::{self, Change};
use crate::ignore::Matcher;
use crate::manifest::{Manifest, Origin};
use crate::tree::{Entries, Kind, ModePolicy};
use crate::verify::{Difference, Report, What};

/// Compares `found` (the image's tree, already selected under the manifest's rules) with
/// `manifest`. Extra paths matching `allow_extra` are not differences.
pub fn compare(manifest: &Manifest, found: Entries, allow_extra: Option<&Matcher>) -> Report {
    let image = Manifest {
        rules: manifest.rules.clone(),
        origin: Origin::default(),
        entries: found,
    };
    let policy = manifest.rules.modes;
    let differences = diff::diff(manifest, &image)
        .into_iter()
        .filter_map(|c| {
            let what = match &c {
                Change::Removed { kind, below, .. } => What::Missing {
                    kind: *kind,
                    below: *below,
                },
                Change::Added { kind, below, path } => {
                    if allow_extra.is_some_and(|m| m.excludes(path, *kind == Kind::Dir)) {
                        return None;
                    }
                    What::Extra {
                        kind: *kind,
                        below: *below,
                    }
                }
                Change::Content { a, b, .. } => What::Content {
                    expected_size: *a,
                    found_size: *b,
                },
                Change::Type { a, b, .. } => What::Type {
                    expected: *a,
                    found: *b,
                },
                Change::Target { a, b, .. } => What::Target {
                    expected: a.clone(),
                    found: b.clone(),
                },
                Change::Mode { counts: false, .. } => return None,
                Change::Mode { a, b, .. } => match policy {
                    ModePolicy::Exec => What::ExecBit {
                        expected: a & 0o100 != 0,
                    },
                    ModePolicy::Full => What::Mode {
                        expected: *a,
                        found: *b,
                    },
                },
            };
            Some(Difference {
                path: c.path().to_vec(),
                what,
            })
        })
        .collect();
    Report {
        differences,
        complete: true,
        entries: manifest.entries.len(),
        ..Report::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{NodeRef, Rules};

    /// Files of one byte, each with its path, mode and hash byte.
    fn files(list: &[(&str, u32, u8)]) -> Entries {
        let mut entries = Entries::new();
        for &(path, mode, byte) in list {
            let node = NodeRef::File {
                size: 1,
                hash: &[byte; 32],
            };
            entries.push(path.as_bytes(), mode, node);
        }
        entries
    }

    #[test]
    fn differences_read_as_the_gate_reads_them() {
        let m = Manifest {
            rules: Rules::default(),
            origin: Origin::default(),
            entries: files(&[("a", 0o644, 1), ("b", 0o755, 2), ("c", 0o644, 3)]),
        };
        let found = files(&[("a", 0o600, 1), ("b", 0o644, 2), ("d", 0o644, 4)]);
        let r = compare(&m, found, None);
        let lines: Vec<String> = r.differences.iter().map(|d| d.to_string()).collect();
        assert_eq!(
            lines,
            ["exec bit removed: b", "missing file: c", "extra file: d"]
        );
        let allow = Matcher::new(&["d".into()]).unwrap();
        let r = compare(
            &m,
            files(&[
                ("a", 0o644, 1),
                ("b", 0o755, 2),
                ("c", 0o644, 3),
                ("d", 0o644, 4),
            ]),
            Some(&allow),
        );
        assert!(r.is_equal());
    }
}
