//! Command-line syntax: clap definitions only. What each subcommand does lives in
//! [`crate::commands`]; this module imports nothing from the rest of treeseal.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// `treeseal --version`: the crate version and the commit it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("TREESEAL_BUILD_COMMIT"),
    ")"
);

/// The closing section of `--help`: the exit codes (see [`crate::exit`]).
const EXIT_CODES: &str = "\
Exit codes:
  0    the tree equals its manifest (and the expected digest); success
  1    the tree differs (verify, run, diff); unhealthy (healthcheck)
  2    could not check: bad arguments or settings, missing or corrupt manifest, I/O error
  126  run: the command exists but cannot be executed
  127  run: the command was not found
  141  standard output was closed before everything was written
  143  run: stopped by SIGTERM while verifying (128 + the signal number)
healthcheck exits only 0 or 1.";

/// Seal a directory tree at build time; prove at start-up that it is still the same.
#[derive(Debug, Parser)]
#[command(name = "treeseal", version = VERSION, about, max_term_width = 100, after_help = EXIT_CODES)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands. Each one's arguments are built only when it is the one run
/// (`defer`; building them all was a tenth of a millisecond of every `run`). The text
/// on a variant is what the command list shows; its arguments' struct repeats it for the
/// subcommand's own help, which the struct's text would otherwise replace.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Walk DIR as `COPY . /app` would, write its manifest, print the root digest.
    Lock(LockArgs),
    /// Print the root digest of DIR without writing anything.
    Digest(DigestArgs),
    /// Check DIR against its manifest; name the first difference.
    Verify(VerifyArgs),
    /// List a manifest's entries.
    Show(ShowArgs),
    /// Explain what differs between two trees (each a manifest or a directory).
    Diff(DiffArgs),
    /// Verify the gated trees, then exec CMD in treeseal's place (for ENTRYPOINT).
    Run(RunArgs),
    /// Cheap re-check for Docker HEALTHCHECK / Kubernetes exec probes (exit 0 or 1).
    Healthcheck(HealthcheckArgs),
    /// Check, compare or list a saved image (docker save, OCI layout) without running it.
    #[cfg(feature = "image")]
    Image(image::ImageArgs),
}

/// Which permission bits count (`--modes`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Modes {
    /// Only the owner-execute bit of regular files (what git tracks).
    #[default]
    Exec,
    /// All permission bits of files and directories.
    Full,
}

/// `--threads`, on the commands that hash.
#[derive(Debug, Args, Clone, Copy, Default)]
pub struct ThreadArgs {
    /// Worker threads, reading in parallel; at most as many as the CPUs this process may
    /// use hash at once (default: 32, 64 to verify a tree found cold, or the CPU count if
    /// larger; also TREESEAL_THREADS).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

/// Options that decide what the tree is, for commands that walk a directory from scratch.
#[derive(Debug, Args, Clone, Default)]
pub struct RuleArgs {
    /// Read ignore rules from FILE instead of DIR/.dockerignore (e.g. Dockerfile.dockerignore).
    #[arg(long, value_name = "FILE", conflicts_with = "no_dockerignore")]
    pub dockerignore: Option<PathBuf>,
    /// Do not read DIR/.dockerignore.
    #[arg(long)]
    pub no_dockerignore: bool,
    /// Also exclude PAT (.dockerignore syntax; repeatable; `!PAT` re-includes).
    #[arg(long, value_name = "PAT")]
    pub exclude: Vec<String>,
    /// Which permission bits count for verification and the digest.
    #[arg(long, value_enum, default_value = "exec")]
    pub modes: Modes,
}

/// Walk DIR as `COPY . /app` would, write its manifest, print the root digest.
#[derive(Debug, Args)]
pub struct LockArgs {
    /// The tree (the build context).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// Where to write the manifest (default DIR/.treeseal).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// The source commit to record (default: SOURCE_COMMIT-style variables, then git).
    #[arg(long, value_name = "COMMIT")]
    pub source: Option<String>,
    /// What the tree is.
    #[command(flatten)]
    pub rules: RuleArgs,
    /// How many threads hash.
    #[command(flatten)]
    pub threads: ThreadArgs,
}

/// Print the root digest of DIR without writing anything.
#[derive(Debug, Args)]
pub struct DigestArgs {
    /// The tree (the build context).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// What the tree is.
    #[command(flatten)]
    pub rules: RuleArgs,
    /// How many threads hash.
    #[command(flatten)]
    pub threads: ThreadArgs,
}

/// Check DIR against its manifest; name the first difference.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The tree to check.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// The manifest (default DIR/.treeseal).
    #[arg(short, long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// Also require the manifest's root digest to be this (blake3:HEX).
    #[arg(long, value_name = "DIGEST")]
    pub digest: Option<String>,
    /// List every difference, not only the first.
    #[arg(long)]
    pub all: bool,
    /// Do not report extra paths matching PAT (files the app creates; repeatable).
    #[arg(long, value_name = "PAT")]
    pub allow_extra: Vec<String>,
    /// Print nothing on success.
    #[arg(short, long)]
    pub quiet: bool,
    /// How many threads hash.
    #[command(flatten)]
    pub threads: ThreadArgs,
}

/// List a manifest's entries.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The manifest file.
    pub file: PathBuf,
    /// One JSON object per line and entry.
    #[arg(long)]
    pub json: bool,
}

/// Explain what differs between two trees (each a manifest or a directory).
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The first tree: a manifest file or a directory.
    pub a: PathBuf,
    /// The second tree: a manifest file or a directory.
    pub b: PathBuf,
    /// Rules for a directory side. When the other side is a manifest, its rules are used.
    /// What the tree is.
    #[command(flatten)]
    pub rules: RuleArgs,
    /// How many threads hash.
    #[command(flatten)]
    pub threads: ThreadArgs,
}

/// Verify the gated trees, then exec CMD in treeseal's place (for ENTRYPOINT).
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Which trees are gated and how.
    #[command(flatten)]
    pub gate: GateArgs,
    /// The command to exec once the trees are verified.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// Cheap re-check for Docker HEALTHCHECK / Kubernetes exec probes (exit 0 or 1).
#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// Which trees are gated and how.
    #[command(flatten)]
    pub gate: GateArgs,
    /// Re-hash every file instead of comparing against the start-up snapshot, with no
    /// time budget.
    #[arg(long)]
    pub full: bool,
    /// The time budget of a probe in milliseconds, 1 to 60000 (TREESEAL_HEALTH_BUDGET;
    /// default 300). What does not fit is checked by the next probes.
    #[arg(long, value_name = "MS")]
    pub budget: Option<String>,
    /// Also print what this probe covered and within how many probes a change is found.
    #[arg(long)]
    pub explain: bool,
}

/// Configuration shared by `run` and `healthcheck`; every flag has an environment
/// variable so Dockerfiles stay short (flags win over the environment).
#[derive(Debug, Args, Clone, Default)]
pub struct GateArgs {
    /// A gated tree, as ROOT or ROOT=DIGEST (repeatable; TREESEAL_ROOT, TREESEAL_DIGEST,
    /// or TREESEAL_TREES="ROOT=DIGEST ..." for several).
    #[arg(long = "tree", value_name = "ROOT[=DIGEST]")]
    pub trees: Vec<String>,
    /// Manifest for a single tree (default ROOT/.treeseal; TREESEAL_MANIFEST).
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// Patterns for paths the app creates at run time (TREESEAL_ALLOW_EXTRA, space-separated).
    #[arg(long, value_name = "PAT")]
    pub allow_extra: Vec<String>,
    /// Where `run` records its snapshot for healthchecks (TREESEAL_STATE).
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Log format: text or json (TREESEAL_LOG).
    #[arg(long, value_name = "FORMAT")]
    pub log: Option<String>,
    /// How many threads hash.
    #[command(flatten)]
    pub threads: ThreadArgs,
}

/// `treeseal image` (the `image` cargo feature).
#[cfg(feature = "image")]
pub mod image {
    use std::path::PathBuf;

    use clap::{Args, Subcommand};

    /// The tree inside an image that `diff` and `show` read by default: the gate's default
    /// root (`crate::gate::DEFAULT_ROOT`; a unit test of the command keeps them equal).
    pub const DEFAULT_ROOT: &str = "/app";

    /// Check, compare or list a saved image (docker save, OCI layout) without running it.
    #[derive(Debug, Args)]
    pub struct ImageArgs {
        /// What to do with the image.
        #[command(subcommand)]
        pub command: ImageCommand,
    }

    /// The `image` subcommands, deferred and documented as [`super::Command`]'s are.
    #[derive(Debug, Subcommand)]
    #[command(defer = true)]
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

    /// Check a saved image's gated trees as its `treeseal run` would, without running it.
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

    /// What differs between two trees, each an image, a manifest or a directory.
    #[derive(Debug, Args)]
    pub struct DiffArgs {
        /// The first tree: an image, a manifest file or a directory.
        pub a: PathBuf,
        /// The second tree: an image, a manifest file or a directory.
        pub b: PathBuf,
        /// The tree inside an image.
        #[arg(long, value_name = "DIR", default_value = DEFAULT_ROOT)]
        pub root: String,
        /// For a multi-platform image: os/arch[/variant].
        #[arg(long, value_name = "OS/ARCH")]
        pub platform: Option<String>,
    }

    /// List the tree at --root of a saved image, as `show` lists a manifest.
    #[derive(Debug, Args)]
    pub struct ShowArgs {
        /// The image.
        #[command(flatten)]
        pub source: Source,
        /// The tree inside the image.
        #[arg(long, value_name = "DIR", default_value = DEFAULT_ROOT)]
        pub root: String,
        /// One JSON object per line and entry.
        #[arg(long)]
        pub json: bool,
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every subcommand's own help starts with the line the command list shows for it
    /// (deferred arguments would otherwise bring their struct's text).
    #[test]
    fn each_subcommand_is_described_as_the_list_describes_it() {
        fn check(listed: &clap::Command, path: &str) {
            for sub in listed.get_subcommands() {
                let name = format!("{path} {}", sub.get_name());
                let mut built = sub.clone();
                built.build();
                let about = |c: &clap::Command| c.get_about().map(ToString::to_string);
                assert!(about(sub).is_some(), "{name} has no description");
                assert_eq!(about(&built), about(sub), "{name}");
                check(&built, &name);
            }
        }
        check(&super::Cli::command(), "treeseal");
    }
}
