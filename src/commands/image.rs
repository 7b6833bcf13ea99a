//! `treeseal image verify|diff|show`: check, compare or list a saved image without
//! running it. The image is read by [`crate::image`]; this module chooses what to read,
//! prints through [`Output`] and picks the exit code: 0 equal, 1 differs or stale, 2
//! could not check, 141 standard output closed.

use std::io::Read;
use std::path::Path;

use super::{require_dir, rules_for};
use crate::cli::image::{DiffArgs, ImageArgs, ImageCommand, ShowArgs, VerifyArgs};
use crate::cli::RuleArgs;
use crate::error::{Error, Result};
use crate::escape::escape;
use crate::exit::ExitCode;
use crate::image::format::Platform;
use crate::image::gated::Tree;
use crate::image::{load, Checked};
use crate::manifest::{self, Manifest, Origin, MAGIC};
use crate::output::{Level, Output};
use crate::tree::{format_digest, Hash, Rules};
use crate::words::{count, first_difference_line, origin_text};

/// Runs `treeseal image ...`.
pub fn image(args: ImageArgs, out: &mut Output) -> Result<ExitCode> {
    match args.command {
        ImageCommand::Verify(a) => verify(a, out),
        ImageCommand::Diff(a) => diff(a, out),
        ImageCommand::Show(a) => show(a, out),
    }
}

fn platform(text: Option<&str>) -> Result<Option<Platform>> {
    Ok(text.map(Platform::parse).transpose()?)
}

/// An image argument, for messages.
fn shown(path: &Path) -> String {
    if path == Path::new("-") {
        return "standard input".into();
    }
    escape(path.as_os_str().as_encoded_bytes())
}

fn verify(args: VerifyArgs, out: &mut Output) -> Result<ExitCode> {
    let image = load(
        &args.source.image,
        platform(args.source.platform.as_deref())?.as_ref(),
    )?;
    let gated = image.gated(&args.roots, args.digest.as_deref())?;
    if args.checkout.is_some() && gated.trees.len() != 1 {
        return Err(Error::Usage(format!(
            "--checkout compares one tree, but the image gates {}; choose one with --root",
            gated.trees.len()
        )));
    }
    let allow = crate::gate::allow_matcher(&gated.allow_extra, "TREESEAL_ALLOW_EXTRA")?;
    let name = shown(&args.source.image);
    for tree in &gated.trees {
        let root = escape(tree.root.as_bytes());
        let (digest, report) = match image.check(tree, allow.as_ref())? {
            Checked::Stale {
                found,
                expected,
                origin,
            } => {
                out.log(
                    Level::Error,
                    &format!(
                        "{name}: digest mismatch: {root} is {}, expected {} ({}): the image's files come from a different source tree than the one it was built from, and its gate would refuse to start; {}",
                        format_digest(&found),
                        format_digest(&expected),
                        tree.digest_origin,
                        origin_text(&origin)
                    ),
                    &[("event", "stale".into())],
                );
                return Ok(ExitCode::Differs);
            }
            Checked::Differs(report) => {
                if args.all {
                    let lines: Vec<String> =
                        report.differences.iter().map(|d| d.to_string()).collect();
                    out.list(Level::Error, &lines);
                    out.log(
                        Level::Error,
                        &format!(
                            "{name}: {root}: {} from its manifest",
                            count(report.differences.len() as u64, "difference", "differences")
                        ),
                        &[("event", "differs".into())],
                    );
                } else {
                    out.log(
                        Level::Error,
                        &format!(
                            "{name}: {root} differs from its manifest: {}",
                            first_difference_line(&report)
                        ),
                        &[("event", "differs".into())],
                    );
                }
                return Ok(ExitCode::Differs);
            }
            Checked::Equal { digest, report } => (digest, report),
        };
        if let Some(dir) = &args.checkout {
            if let Some(code) = check_checkout(&name, tree, &digest, dir, out)? {
                return Ok(code);
            }
        }
        if tree.digest.is_none() {
            out.log(
                Level::Warn,
                &format!(
                    "warning: {name}: no expected digest for {root} ({} is not set): its freshness is not anchored",
                    tree.digest_origin
                ),
                &[("event", "unanchored".into())],
            );
        }
        out.log(
            Level::Info,
            &format!(
                "ok {name}: {root} {} ({})",
                format_digest(&digest),
                count(report.entries as u64, "entry", "entries")
            ),
            &[("event", "verified".into())],
        );
    }
    Ok(ExitCode::Ok)
}

/// `--checkout DIR`: the image's expected digest (or, without one, its manifest's) must be
/// the checkout's. `Some(exit code)` when it is not.
fn check_checkout(
    name: &str,
    tree: &Tree,
    digest: &Hash,
    dir: &Path,
    out: &mut Output,
) -> Result<Option<ExitCode>> {
    require_dir(dir)?;
    let rules = rules_for(dir, &RuleArgs::default(), None)?;
    let checkout = crate::lock::lock(dir, rules, Origin::default())?.digest();
    let expected = tree.digest.unwrap_or(*digest);
    if expected == checkout {
        return Ok(None);
    }
    out.log(
        Level::Error,
        &format!(
            "{name}: {} expects {}, but the checkout {} is {}: the image was not built from this checkout",
            escape(tree.root.as_bytes()),
            format_digest(&expected),
            shown(dir),
            format_digest(&checkout)
        ),
        &[("event", "other-checkout".into())],
    );
    Ok(Some(ExitCode::Differs))
}

/// Whether `path` is a directory that is not an OCI image layout.
fn is_plain_dir(path: &Path) -> bool {
    path.is_dir() && !path.join("oci-layout").exists() && !path.join("index.json").exists()
}

/// Whether `path` is a file that starts with a treeseal manifest's magic bytes.
fn is_manifest(path: &Path) -> Result<bool> {
    if !path.is_file() {
        return Ok(false);
    }
    let mut head = [0u8; MAGIC.len()];
    let mut f = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("read", path, e)),
        }
    }
    Ok(n == MAGIC.len() && head == MAGIC)
}

/// One side of `image diff` (or the tree of `image show`): a directory (locked in memory,
/// under `rules` when the other side gives them), a manifest file, or an image's tree at
/// `root`.
fn side(
    path: &Path,
    root: &str,
    platform: Option<&Platform>,
    rules: Option<&Rules>,
) -> Result<Manifest> {
    if path != Path::new("-") {
        std::fs::metadata(path).map_err(|e| Error::io("open", path, e))?;
        if is_plain_dir(path) {
            let rules = match rules {
                Some(r) => r.clone(),
                None => rules_for(path, &RuleArgs::default(), None)?,
            };
            return crate::lock::lock(path, rules, Origin::default());
        }
        if is_manifest(path)? {
            return Manifest::load(path);
        }
    }
    let image = load(path, platform)?;
    let manifest_path = format!("{}/{}", root.trim_end_matches('/'), manifest::DEFAULT_NAME);
    // The image's own manifest says what its tree is; without one, the other side's rules.
    let rules = match image.manifest(&manifest_path)? {
        Some(m) => m.rules,
        None => rules.cloned().unwrap_or_default(),
    };
    let entries = image.tree(root, &rules)?;
    Ok(Manifest {
        rules,
        origin: Origin::default(),
        entries,
    })
}

fn diff(args: DiffArgs, out: &mut Output) -> Result<ExitCode> {
    let p = platform(args.platform.as_deref())?;
    if args.a == Path::new("-") && args.b == Path::new("-") {
        return Err(Error::Usage("only one side can be standard input".into()));
    }
    let a = side(&args.a, &args.root, p.as_ref(), None)?;
    let b = side(&args.b, &args.root, p.as_ref(), Some(&a.rules))?;
    super::diff::print_explanation(&a, &b, out)
}

fn show(args: ShowArgs, out: &mut Output) -> Result<ExitCode> {
    let m = side(
        &args.source.image,
        &args.root,
        platform(args.source.platform.as_deref())?.as_ref(),
        None,
    )?;
    super::show::print(&m.entries, args.json, out)?;
    Ok(ExitCode::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn the_default_root_is_the_gates() {
        assert_eq!(crate::cli::image::DEFAULT_ROOT, crate::gate::DEFAULT_ROOT);
        let cli = crate::cli::Cli::try_parse_from(["treeseal", "image", "show", "x.tar"]).unwrap();
        match cli.command {
            crate::cli::Command::Image(ImageArgs {
                command: ImageCommand::Show(s),
            }) => assert_eq!(s.root, crate::gate::DEFAULT_ROOT),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_manifest_is_told_from_an_image_by_its_magic_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("m");
        std::fs::write(&m, MAGIC).unwrap();
        assert!(is_manifest(&m).unwrap());
        let short = dir.path().join("short");
        std::fs::write(&short, &MAGIC[..MAGIC.len() - 1]).unwrap();
        assert!(!is_manifest(&short).unwrap());
        assert!(!is_manifest(dir.path()).unwrap());
        assert!(is_plain_dir(dir.path()));
        std::fs::write(dir.path().join("index.json"), "{}").unwrap();
        assert!(!is_plain_dir(dir.path()));
    }
}
