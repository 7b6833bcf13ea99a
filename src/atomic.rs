//! Replacing a file atomically, without following or reusing anything an attacker
//! planted beside it.
//!
//! The bytes go to a new temporary file in the same directory, created with
//! `O_CREAT|O_EXCL|O_NOFOLLOW` (a planted symlink or file at that name makes the create
//! fail instead of writing through it), then a rename puts it in place: a reader sees the
//! old file or the new one, never half of one.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Attempts at a fresh temporary name before giving up (each name is taken only by a
/// concurrent writer or a planted file).
const TEMP_ATTEMPTS: u32 = 16;

/// Writes `bytes` to `path` atomically. With `durable`, the data and then the directory
/// entry are synced to disk (the manifest); the healthcheck snapshot, rebuilt at every
/// start, skips that cost. `mode` is the new file's permission bits (before the umask).
pub fn write(path: &Path, bytes: &[u8], durable: bool, mode: u32) -> io::Result<()> {
    let (tmp, mut file) = create_temp(path, mode)?;
    let mut write = || -> io::Result<()> {
        file.write_all(bytes)?;
        if durable {
            file.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        if durable {
            sync_parent(path)?;
        }
        Ok(())
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// A new file beside `path`, created exclusively and never through a symlink.
fn create_temp(path: &Path, mode: u32) -> io::Result<(PathBuf, File)> {
    let mut last = io::Error::from(io::ErrorKind::AlreadyExists);
    for attempt in 0..TEMP_ATTEMPTS {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".tmp.{}.{attempt}", std::process::id()));
        let tmp = PathBuf::from(name);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// Syncs the directory holding `path`, so that a rename into it survives a crash.
fn sync_parent(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_planted_symlink_at_the_temporary_name_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        let path = dir.path().join("state");
        for attempt in 0..TEMP_ATTEMPTS {
            let tmp = format!("state.tmp.{}.{attempt}", std::process::id());
            std::os::unix::fs::symlink(&target, dir.path().join(tmp)).unwrap();
        }
        assert!(write(&path, b"x", true, 0o600).is_err());
        assert!(!target.exists(), "wrote through a planted symlink");
        assert!(!path.exists());
    }

    #[test]
    fn the_file_is_replaced_whole_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m");
        write(&path, b"old", false, 0o600).unwrap();
        write(&path, b"new", true, 0o600).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
