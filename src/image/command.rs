//! `treeseal image verify|diff|show`: the command-line side of checking saved images.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use crate::cli::RuleArgs;
use crate::commands::explain;
use crate::error::{Error, Result};
use crate::escape::{escape, json_string};
use crate::exit::ExitCode;
use crate::lock;
use crate::manifest::{self, Manifest, Origin, MAGIC};
use crate::tree::{format_digest, hex, Node, Rules};
use crate::words::{first_difference_line, origin_text};

use super::format::Platform;
use super::fs::{Fs, Object};
use super::gated::{self, Tree};
use super::{load, ImageError};

/// `treeseal image`.
#[derive(Debug, Args)]
pub struct ImageArgs {
    /// What to do with the image.
    #[command(subcommand)]
    pub command: ImageCommand,
}

/// The `image` subcommands.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Check a saved image's gated trees as its `treeseal run` would, without running it.
    Verify(VerifyArgs),
    /// What differs between two trees, each an image, a manifest or a directory.
    Diff(DiffArgs),
    /// List the tree at --root of a saved image, as `show` lists a manifest.
    Show(ShowArgs),
}

/// Which image, from where.
#[derive(Debug, Args, Clone)]
pub struct Source {
    /// A `docker save` archive or `oci-archive` tar (`-`: standard input), or an OCI
    /// image layout directory.
    pub image: PathBuf,
    /// For a multi-platform image: os/arch[/variant] (default: the only one, else this
    /// machine's).
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,
}

/// `treeseal image verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The image.
    #[command(flatten)]
    pub source: Source,
    /// Check this tree instead of those the image's ENV names (repeatable).
    #[arg(long = "root", value_name = "DIR")]
    pub roots: Vec<String>,
    /// The expected root digest (blake3:HEX), instead of the image's TREESEAL_DIGEST.
    #[arg(long, value_name = "DIGEST")]
    pub digest: Option<String>,
    /// Also require the image's expected digest to be `treeseal digest DIR`.
    #[arg(long, value_name = "DIR")]
    pub checkout: Option<PathBuf>,
    /// List every difference, not only the first.
    #[arg(long)]
    pub all: bool,
}

/// `treeseal image diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The first tree: an image, a manifest file or a directory.
    pub a: PathBuf,
    /// The second tree: an image, a manifest file or a directory.
    pub b: PathBuf,
    /// The tree inside an image.
    #[arg(long, value_name = "DIR", default_value = gated::DEFAULT_ROOT)]
    pub root: String,
    /// For a multi-platform image: os/arch[/variant].
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,
}

/// `treeseal image show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The image.
    #[command(flatten)]
    pub source: Source,
    /// The tree inside the image.
    #[arg(long, value_name = "DIR", default_value = gated::DEFAULT_ROOT)]
    pub root: String,
    /// One JSON object per line and entry.
    #[arg(long)]
    pub json: bool,
}

impl From<ImageError> for Error {
    fn from(e: ImageError) -> Error {
        Error::Image(e)
    }
}

fn platform(text: Option<&str>) -> Result<Option<Platform>> {
    Ok(text.map(Platform::parse).transpose()?)
}

/// Runs `treeseal image ...`.
pub fn run(args: ImageArgs) -> Result<ExitCode> {
    match args.command {
        ImageCommand::Verify(a) => verify(a),
        ImageCommand::Diff(a) => diff(a),
        ImageCommand::Show(a) => show(a),
    }
}

fn shown(path: &Path) -> String {
    if path == Path::new("-") {
        return "standard input".into();
    }
    escape(path.as_os_str().as_encoded_bytes())
}

/// The manifest at `path` inside the image.
fn manifest_in(fs: &Fs, path: &str) -> Result<Manifest> {
    let corrupt = |reason: String| Error::ManifestCorrupt {
        path: PathBuf::from(path),
        reason: format!("{reason} (in the image)"),
    };
    let at = fs
        .resolve(path.as_bytes(), true)
        .map_err(ImageError::from)?;
    match fs.get(&at) {
        None => Err(ImageError::NotInImage(format!(
            "no manifest at {path} (was `treeseal lock` run before the COPY, and does .dockerignore keep .treeseal?)"
        ))
        .into()),
        Some((_, Object::File { manifest: Some(bytes), .. })) => {
            manifest::decode(bytes).map_err(|e| corrupt(e.to_string()))
        }
        Some((_, Object::File { .. })) => {
            Err(corrupt("not a treeseal manifest (wrong magic bytes)".into()))
        }
        Some(_) => Err(corrupt("not a regular file".into())),
    }
}

/// The tree at `root` in the image, under `rules`.
fn tree_in(fs: &Fs, root: &str, rules: &Rules) -> Result<Vec<crate::tree::Entry>> {
    let matcher = lock::matcher(rules)?;
    match fs
        .tree(root.as_bytes(), &matcher)
        .map_err(ImageError::from)?
    {
        Some(entries) => Ok(entries),
        None => {
            Err(ImageError::NotInImage(format!("no directory at {root} (the gated root)")).into())
        }
    }
}

fn verify(args: VerifyArgs) -> Result<ExitCode> {
    let image = load(
        &args.source.image,
        platform(args.source.platform.as_deref())?.as_ref(),
    )?;
    let run = image.config.config.clone().unwrap_or_default();
    let gate = gated::resolve(
        &run.env.unwrap_or_default(),
        run.working_dir.as_deref(),
        &args.roots,
        args.digest.as_deref(),
    )?;
    if args.checkout.is_some() && gate.trees.len() != 1 {
        return Err(Error::Usage(format!(
            "--checkout compares one tree, but the image gates {}; choose one with --root",
            gate.trees.len()
        )));
    }
    let allow = crate::gate::allow_matcher(&gate.allow_extra, "TREESEAL_ALLOW_EXTRA")?;
    let name = shown(&args.source.image);
    for tree in &gate.trees {
        let manifest = manifest_in(&image.fs, &tree.manifest)?;
        let digest = manifest.digest();
        if let Some(expected) = tree.digest {
            if expected != digest {
                eprintln!(
                    "treeseal: {name}: digest mismatch: {} is {}, expected {} ({}): the image's files come from a different source tree than the one it was built from, and its gate would refuse to start; {}",
                    escape(tree.root.as_bytes()),
                    format_digest(&digest),
                    format_digest(&expected),
                    tree.digest_origin,
                    origin_text(&manifest.origin)
                );
                return Ok(ExitCode::Differs);
            }
        }
        let found = tree_in(&image.fs, &tree.root, &manifest.rules)?;
        let report = super::compare::compare(&manifest, found, allow.as_ref());
        if !report.is_equal() {
            let root = escape(tree.root.as_bytes());
            if args.all {
                for d in &report.differences {
                    eprintln!("{d}");
                }
                eprintln!(
                    "treeseal: {name}: {root}: {} differences from its manifest",
                    report.differences.len()
                );
            } else {
                eprintln!(
                    "treeseal: {name}: {root} differs from its manifest: {}",
                    first_difference_line(&report)
                );
            }
            return Ok(ExitCode::Differs);
        }
        if let Some(dir) = &args.checkout {
            if let Some(code) = check_checkout(&name, tree, &digest, dir)? {
                return Ok(code);
            }
        }
        if tree.digest.is_none() {
            eprintln!(
                "treeseal: warning: {name}: no expected digest for {} ({} is not set): its freshness is not anchored",
                escape(tree.root.as_bytes()),
                tree.digest_origin
            );
        }
        eprintln!(
            "treeseal: ok {name}: {} {} ({} entries)",
            escape(tree.root.as_bytes()),
            format_digest(&digest),
            report.entries
        );
    }
    Ok(ExitCode::Ok)
}

/// `--checkout DIR`: the image's expected digest (or, without one, its manifest's) must be
/// the checkout's.
fn check_checkout(
    name: &str,
    tree: &Tree,
    digest: &crate::tree::Hash,
    dir: &Path,
) -> Result<Option<ExitCode>> {
    let rules = crate::commands::rules_for(dir, &RuleArgs::default(), None)?;
    let checkout = lock::lock(dir, rules, Origin::default())?.digest();
    let expected = tree.digest.unwrap_or(*digest);
    if expected == checkout {
        return Ok(None);
    }
    eprintln!(
        "treeseal: {name}: {} expects {}, but the checkout {} is {}: the image was not built from this checkout",
        escape(tree.root.as_bytes()),
        format_digest(&expected),
        shown(dir),
        format_digest(&checkout)
    );
    Ok(Some(ExitCode::Differs))
}

/// What a diff side is.
fn side(
    path: &Path,
    root: &str,
    platform: Option<&Platform>,
    rules: Option<&Rules>,
) -> Result<Manifest> {
    if path != Path::new("-") {
        let meta = std::fs::metadata(path).map_err(|e| Error::io("open", path, e))?;
        if meta.is_dir() && !path.join("oci-layout").exists() && !path.join("index.json").exists() {
            let rules = match rules {
                Some(r) => r.clone(),
                None => crate::commands::rules_for(path, &RuleArgs::default(), None)?,
            };
            return lock::lock(path, rules, Origin::default());
        }
        if meta.is_file() {
            let mut head = [0u8; 8];
            let mut f = std::fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
            let n =
                std::io::Read::read(&mut f, &mut head).map_err(|e| Error::io("read", path, e))?;
            if n == MAGIC.len() && head == MAGIC {
                return Manifest::load(path);
            }
        }
    }
    let image = load(path, platform)?;
    let manifest_path = format!("{}/{}", root.trim_end_matches('/'), manifest::DEFAULT_NAME);
    // The image's own manifest says what its tree is; without one, the other side's rules.
    let rules = match manifest_in(&image.fs, &manifest_path) {
        Ok(m) => m.rules,
        Err(Error::Image(ImageError::NotInImage(_))) => rules.cloned().unwrap_or_default(),
        Err(e) => return Err(e),
    };
    let entries = tree_in(&image.fs, root, &rules)?;
    Ok(Manifest {
        rules,
        origin: Origin::default(),
        entries,
    })
}

fn diff(args: DiffArgs) -> Result<ExitCode> {
    let p = platform(args.platform.as_deref())?;
    if args.a == Path::new("-") && args.b == Path::new("-") {
        return Err(Error::Usage("only one side can be standard input".into()));
    }
    let a = side(&args.a, &args.root, p.as_ref(), None)?;
    let b = side(&args.b, &args.root, p.as_ref(), Some(&a.rules))?;
    let lines = explain(&a, &b);
    let out = std::io::stdout();
    let mut out = out.lock();
    for line in &lines {
        if let Err(e) = writeln!(out, "{line}") {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                break;
            }
            return Err(Error::io("write", Path::new("standard output"), e));
        }
    }
    Ok(if lines.len() > 1 {
        ExitCode::Differs
    } else {
        ExitCode::Ok
    })
}

fn show(args: ShowArgs) -> Result<ExitCode> {
    let m = side(
        &args.source.image,
        &args.root,
        platform(args.source.platform.as_deref())?.as_ref(),
        None,
    )?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = (|| -> std::io::Result<()> {
        for e in &m.entries {
            if args.json {
                write!(
                    out,
                    "{{\"path\":{},\"kind\":\"{}\",",
                    json_string(&String::from_utf8_lossy(&e.path)),
                    e.node.kind()
                )?;
                if std::str::from_utf8(&e.path).is_err() {
                    let hex: String = e.path.iter().map(|b| format!("{b:02x}")).collect();
                    write!(out, "\"path_hex\":\"{hex}\",")?;
                }
                match &e.node {
                    Node::File { size, hash } => write!(
                        out,
                        "\"size\":{size},\"mode\":\"{:04o}\",\"hash\":\"{}\"}}",
                        e.mode,
                        hex(hash)
                    )?,
                    Node::Symlink { target } => write!(
                        out,
                        "\"size\":{},\"mode\":\"{:04o}\",\"target\":{}}}",
                        target.len(),
                        e.mode,
                        json_string(&String::from_utf8_lossy(target))
                    )?,
                    _ => write!(out, "\"size\":0,\"mode\":\"{:04o}\"}}", e.mode)?,
                }
                writeln!(out)?;
            } else if let Node::File { hash, .. } = &e.node {
                let name = escape(&e.path);
                let mark = if name.as_bytes() != e.path.as_slice() {
                    "\\"
                } else {
                    ""
                };
                writeln!(out, "{mark}{}  {name}", hex(hash))?;
            }
        }
        out.flush()
    })();
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::Ok),
        Err(e) => Err(Error::io("write", Path::new("standard output"), e)),
        Ok(()) => Ok(ExitCode::Ok),
    }
}
