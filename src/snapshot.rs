//! The healthcheck's snapshot: what `run` records after a successful check (the metadata
//! stamps of every verified file) so that `healthcheck` can re-check cheaply, where it
//! lives, and when it may be believed.
//!
//! # Where
//! `TREESEAL_STATE` / `--state` when given; otherwise `treeseal-<euid>-<key>.state` in the
//! first of [`STATE_DIRS`] that exists, is a directory, is owned by this user or root, and
//! is not writable by others unless it is sticky (`/dev/shm` and `/tmp` are 1777). `<key>`
//! hashes the gated roots. `run` and `healthcheck` resolve the same path by the same rule;
//! neither falls back to another directory, so a file squatted at that path cannot send
//! `run`'s snapshot elsewhere while `healthcheck` reads the squatter's.
//!
//! # When it is believed
//! Only when the file at that path is a regular file (not followed through a symlink),
//! owned by the effective user, not writable by group or others, starts with [`MAGIC`],
//! and its checksum matches. Anything else is [`Loaded::Untrusted`]: the healthcheck then
//! re-hashes everything and says why. A snapshot can only ever save work: a stamp it
//! vouches for lets a file skip hashing, and the walk still compares every path, kind and
//! mode.
//!
//! # Progress
//! Each probe of the budgeted healthcheck ([`crate::probe`]) checks one part of a tree and
//! writes back where it stopped ([`Progress`]): the next stamp window, the next file of
//! the content slice, and the files it found but could not hash in time. A probe that
//! cannot write its progress back is unhealthy: a cursor that never moves would check the
//! same part of the tree forever.
//!
//! # Format
//! [`MAGIC`] (whose last byte is the format version), the blake3 of the body, then the
//! postcard-encoded [`Snapshot`]. A file of another version is not believed.

use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::escape::escape;
use crate::tree::Hash;
use crate::walk::Stamp;

/// Where the snapshot goes when no path is given: the first of these that is safe (see
/// the module documentation). `/dev/shm` is a tmpfs in every Docker container and
/// Kubernetes pod, even `FROM scratch` ones with a read-only root file system.
pub const STATE_DIRS: [&str; 3] = ["/dev/shm", "/run", "/tmp"];

/// The first bytes of a snapshot file; the last byte is the format version.
pub const MAGIC: &[u8; 8] = b"TSSTATE3";

/// A snapshot larger than this is not read (200k files' stamps are about 8 MB).
const MAX_LEN: u64 = 1 << 30;

/// Files whose ctime or mtime is this close to the start of a verification are not put in
/// the snapshot: a change in the same file-system timestamp tick as our `stat` could
/// otherwise go unseen by the cheap check (the "racy git" problem). Two seconds also
/// covers coarse file systems. Image files are older than that, so this costs nothing in
/// practice.
pub const RACY_WINDOW_NS: i64 = 2_000_000_000;

/// What `run` records for `healthcheck`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Snapshot {
    /// One record per verified tree.
    pub trees: Vec<TreeState>,
}

/// The stamps of one verified tree.
#[derive(Debug, Serialize, Deserialize)]
pub struct TreeState {
    /// The tree's root as given.
    pub root: Vec<u8>,
    /// The digest of the manifest it was verified against.
    pub digest: Hash,
    /// (manifest entry index, stamp), sorted by index.
    pub stamps: Vec<(u32, Stamp)>,
    /// Where the next probe continues.
    pub progress: Progress,
}

/// Where the budgeted healthcheck stopped in one tree (all manifest entry indices).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The first entry of the next stamp window.
    pub window: u32,
    /// The entry the next content slice starts at.
    pub content: u32,
    /// Regular files that a window found unvouched for (no stamp, or a different one) and
    /// that were not hashed in time, oldest first: the next probes hash them first.
    pub carried: Vec<u32>,
    /// The content slice's file, when it is longer than one piece and was hashed part of
    /// the way ([`crate::piecewise`]): its entry and how far. Used only while the content
    /// cursor is still at that entry.
    pub partial: Option<(u32, crate::piecewise::Partial)>,
}

impl TreeState {
    /// The record of a tree verified from `started_ns` on: stamps inside the racy window
    /// are left out, so those files are always hashed.
    /// The stamps are filtered in place, not copied (1M files' stamps are 40 MB).
    pub fn new(
        root: &Path,
        digest: Hash,
        mut stamps: Vec<(u32, Stamp)>,
        started_ns: i64,
    ) -> TreeState {
        let racy_after = started_ns - RACY_WINDOW_NS;
        stamps.retain(|(_, s)| s.ctime_ns < racy_after && s.mtime_ns < racy_after);
        TreeState {
            root: root.as_os_str().as_bytes().to_vec(),
            digest,
            stamps,
            progress: Progress::default(),
        }
    }
}

/// The result of looking for a snapshot.
#[derive(Debug)]
pub enum Loaded {
    /// None at the path (or no safe directory for one): a full check, nothing to say.
    Absent,
    /// A snapshot that may be believed.
    Trusted(Snapshot),
    /// Something is at the path that must not be believed; the text says what.
    Untrusted(String),
}

impl Snapshot {
    /// The stamps recorded for `root`, if they were recorded for this same manifest;
    /// moved out, not copied (200k stamps are 8 MB).
    pub fn take_stamps(&mut self, root: &Path, digest: &Hash) -> Vec<(u32, Stamp)> {
        self.trees
            .iter_mut()
            .find(|t| t.root == root.as_os_str().as_bytes() && &t.digest == digest)
            .map(|t| std::mem::take(&mut t.stamps))
            .unwrap_or_default()
    }

    /// The record of `root` verified against the manifest with `digest`, if there is one.
    pub fn tree_mut(&mut self, root: &Path, digest: &Hash) -> Option<&mut TreeState> {
        self.trees
            .iter_mut()
            .find(|t| t.root == root.as_os_str().as_bytes() && &t.digest == digest)
    }

    /// The file's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let body = postcard::to_stdvec(self).expect("encoding to a Vec cannot fail");
        let mut out = Vec::with_capacity(40 + body.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(blake3::hash(&body).as_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Decodes a file's bytes; `None` for anything but a whole snapshot of this version.
    pub fn decode(bytes: &[u8]) -> Option<Snapshot> {
        let rest = bytes.strip_prefix(MAGIC)?;
        if rest.len() < 32 {
            return None;
        }
        let (sum, body) = rest.split_at(32);
        if blake3::hash(body).as_bytes() != sum {
            return None;
        }
        postcard::from_bytes(body).ok()
    }

    /// Writes the snapshot to `path` atomically, readable and writable by this user only
    /// (a probe's progress: a probe that cannot write it is unhealthy).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        crate::atomic::write(path, &self.encode(), false, 0o600)
    }

    /// [`Snapshot::save`], except that a file at `path` that would be believed and
    /// already holds these bytes is left alone (`run`: a restarted container records what
    /// its previous start recorded, and replacing a file by rename makes ext4 write the
    /// new one out at once, 0.2 ms of a start).
    pub fn keep_or_save(&self, path: &Path) -> std::io::Result<()> {
        let bytes = self.encode();
        if holds(path, &bytes) {
            return Ok(());
        }
        crate::atomic::write(path, &bytes, false, 0o600)
    }
}

/// The snapshot path for these roots: `explicit` when given, else the default described
/// in the module documentation; `None` when no candidate directory is safe.
pub fn path(explicit: Option<&Path>, roots: &[&Path]) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    let euid = nix::unistd::geteuid().as_raw();
    let mut key = blake3::Hasher::new();
    for root in roots {
        key.update(root.as_os_str().as_bytes());
        key.update(b"\0");
    }
    let name = format!("treeseal-{euid}-{}.state", &key.finalize().to_hex()[..16]);
    STATE_DIRS
        .iter()
        .map(Path::new)
        .find(|d| safe_dir(d, euid))
        .map(|d| d.join(name))
}

/// Whether `dir` is a directory in which only this user (or root) can replace our files.
fn safe_dir(dir: &Path, euid: u32) -> bool {
    const STICKY: u32 = 0o1000;
    std::fs::metadata(dir).is_ok_and(|m| {
        m.is_dir()
            && (m.uid() == euid || m.uid() == 0)
            && (m.mode() & 0o022 == 0 || m.mode() & STICKY != 0)
    })
}

/// Reads the snapshot at `path` and decides whether to believe it.
pub fn load(path: &Path) -> Loaded {
    let (file, shown) = match open_believable(path) {
        Ok(opened) => opened,
        Err(why) => return why,
    };
    let mut bytes = Vec::new();
    if let Err(e) = file.take(MAX_LEN).read_to_end(&mut bytes) {
        return Loaded::Untrusted(format!("snapshot {shown} cannot be read ({e})"));
    }
    match Snapshot::decode(&bytes) {
        Some(s) => Loaded::Trusted(s),
        None => Loaded::Untrusted(format!(
            "snapshot {shown} is not a treeseal snapshot of this version"
        )),
    }
}

/// Whether the file at `path` would be believed and holds exactly `bytes`, compared a
/// block at a time (1M files' snapshot is 40 MB; a second copy would double the peak).
fn holds(path: &Path, bytes: &[u8]) -> bool {
    let Ok((mut file, _)) = open_believable(path) else {
        return false;
    };
    let mut block = [0u8; 16 << 10];
    let mut rest = bytes;
    loop {
        match file.read(&mut block) {
            Ok(0) => return rest.is_empty(),
            Ok(n) if n <= rest.len() && block[..n] == rest[..n] => rest = &rest[n..],
            Ok(_) => return false,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

/// The file at `path`, opened for reading if its kind, owner and mode let it be believed
/// (see the module documentation), with its name as messages show it; otherwise what
/// [`load`] makes of it.
fn open_believable(path: &Path) -> Result<(File, String), Loaded> {
    let shown = escape(path.as_os_str().as_bytes());
    // O_NONBLOCK: a FIFO planted at the path must not hang the probe.
    let file = match File::options()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Loaded::Absent),
        Err(e) => {
            return Err(Loaded::Untrusted(format!(
                "snapshot {shown} cannot be opened ({e})"
            )))
        }
    };
    let meta = match file.metadata() {
        Ok(m) => m,
        Err(e) => {
            return Err(Loaded::Untrusted(format!(
                "snapshot {shown} cannot be read ({e})"
            )))
        }
    };
    let euid = nix::unistd::geteuid().as_raw();
    let problem = if !meta.is_file() {
        Some("is not a regular file".to_string())
    } else if meta.uid() != euid {
        Some(format!("belongs to uid {}, not {euid}", meta.uid()))
    } else if meta.mode() & 0o022 != 0 {
        Some(format!(
            "is writable by group or others (mode {:04o})",
            meta.mode() & 0o7777
        ))
    } else if meta.len() > MAX_LEN {
        Some("is too large".to_string())
    } else {
        None
    };
    match problem {
        Some(problem) => Err(Loaded::Untrusted(format!("snapshot {shown} {problem}"))),
        None => Ok((file, shown)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn sample() -> Snapshot {
        Snapshot {
            trees: vec![TreeState {
                root: b"/app".to_vec(),
                digest: [7; 32],
                stamps: vec![],
                progress: Progress {
                    window: 3,
                    content: 5,
                    carried: vec![1, 9],
                    partial: Some((
                        5,
                        crate::piecewise::Partial {
                            offset: 8 << 20,
                            stack: vec![[3; 32]],
                        },
                    )),
                },
            }],
        }
    }

    #[test]
    fn a_saved_snapshot_is_believed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        sample().save(&p).unwrap();
        assert!(
            matches!(load(&p), Loaded::Trusted(s) if s.trees[0].progress == sample().trees[0].progress)
        );
        assert!(matches!(load(&dir.path().join("none")), Loaded::Absent));
    }

    #[test]
    fn a_writable_symlinked_or_other_version_file_is_not_believed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        sample().save(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(
            matches!(load(&p), Loaded::Untrusted(w) if w.contains("writable by group or others"))
        );

        let link = dir.path().join("link");
        let q = dir.path().join("q");
        sample().save(&q).unwrap();
        std::os::unix::fs::symlink(&q, &link).unwrap();
        assert!(matches!(load(&link), Loaded::Untrusted(_)));

        let mut bytes = sample().encode();
        bytes[7] = b'1';
        std::fs::write(&q, bytes).unwrap();
        assert!(matches!(load(&q), Loaded::Untrusted(w) if w.contains("of this version")));
    }

    #[test]
    fn keeping_the_bytes_already_there_leaves_the_file_alone() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s");
        sample().keep_or_save(&p).unwrap();
        let first = std::fs::metadata(&p).unwrap().ino();
        sample().keep_or_save(&p).unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().ino(),
            first,
            "an equal snapshot was rewritten"
        );
        // A probe's progress is always written.
        sample().save(&p).unwrap();
        let resaved = std::fs::metadata(&p).unwrap().ino();
        assert_ne!(resaved, first, "save() kept the old file");
        let first = resaved;

        // Different bytes, or the same bytes in a file that would not be believed, are written.
        let mut other = sample();
        other.trees[0].progress.window = 4;
        other.keep_or_save(&p).unwrap();
        let second = std::fs::metadata(&p).unwrap().ino();
        assert_ne!(second, first);
        assert!(matches!(load(&p), Loaded::Trusted(s) if s.trees[0].progress.window == 4));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o620)).unwrap();
        other.keep_or_save(&p).unwrap();
        assert_ne!(std::fs::metadata(&p).unwrap().ino(), second);
        assert!(matches!(load(&p), Loaded::Trusted(_)));
    }

    #[test]
    fn run_and_healthcheck_resolve_one_path() {
        let a = path(None, &[Path::new("/app")]);
        assert_eq!(a, path(None, &[Path::new("/app")]));
        assert_ne!(a, path(None, &[Path::new("/deps")]));
        let given = Path::new("/x/state");
        assert_eq!(path(Some(given), &[]).as_deref(), Some(given));
    }
}
