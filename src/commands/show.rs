//! `treeseal show`: list a manifest's entries (b3sum lines, or JSON). The printer is
//! shared with `treeseal image show`, so that a tree in an image lists as its manifest.

use crate::cli::ShowArgs;
use crate::error::Result;
use crate::escape::{escape, json_string};
use crate::exit::ExitCode;
use crate::manifest::Manifest;
use crate::output::Output;
use crate::tree::{hex, Entries, NodeRef};

/// Runs `treeseal show`.
pub fn show(args: ShowArgs, out: &mut Output) -> Result<ExitCode> {
    let manifest = Manifest::load(&args.file)?;
    print(&manifest.entries, args.json, out)?;
    Ok(ExitCode::Ok)
}

/// Lists `entries` on standard output: one b3sum line per file, or one JSON object per
/// entry.
pub(super) fn print(entries: &Entries, json: bool, out: &mut Output) -> Result<()> {
    for e in entries {
        if json {
            let path = String::from_utf8_lossy(e.path);
            let mut line = format!(
                "{{\"path\":{},\"kind\":\"{}\",",
                json_string(&path),
                e.node.kind()
            );
            if std::str::from_utf8(e.path).is_err() {
                line.push_str(&format!("\"path_hex\":\"{}\",", hex_bytes(e.path)));
            }
            line.push_str(&match e.node {
                NodeRef::File { size, hash } => format!(
                    "\"size\":{size},\"mode\":\"{:04o}\",\"hash\":\"{}\"}}",
                    e.mode,
                    hex(hash)
                ),
                NodeRef::Symlink { target } => format!(
                    "\"size\":{},\"mode\":\"{:04o}\",\"target\":{}}}",
                    target.len(),
                    e.mode,
                    json_string(&String::from_utf8_lossy(target))
                ),
                _ => format!("\"size\":0,\"mode\":\"{:04o}\"}}", e.mode),
            });
            out.data(&line)?;
        } else if let NodeRef::File { hash, .. } = e.node {
            // b3sum's convention: a line whose name needed escaping starts with `\`.
            let name = escape(e.path);
            let mark = if name.as_bytes() != e.path { "\\" } else { "" };
            out.data(&format!("{mark}{}  {name}", hex(hash)))?;
        }
    }
    Ok(())
}

fn hex_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
