//! Reading a saved image — a `docker save` archive, an OCI image layout, an `oci-archive` —
//! and rebuilding its file system in memory, so that its gated trees can be checked
//! without extracting, running or pulling anything.
//!
//! The path from bytes to a checked tree: [`store`] reads the archive or layout,
//! [`format`](mod@format) finds the one image (and platform) in it, [`layer`] reads each
//! layer's tar (with [`guard`] bounding what its metadata entries may cost), [`fs`] applies
//! the layers, whiteouts and hard links, [`gated`] says from the image's `Env`, by the
//! gate's own rules, which trees its gate checks, and [`compare`] checks a tree against
//! its manifest with the gate's own notion of a difference; [`Image::check`] puts these
//! together for one gated tree. `treeseal image` itself is `crate::commands`' (this
//! module neither parses flags nor prints).

pub mod compare;
pub mod error;
pub mod format;
pub mod fs;
pub mod gated;
pub mod guard;
pub mod layer;
pub mod store;

use std::path::{Path, PathBuf};

pub use error::ImageError;

use crate::error::{Error, Result};
use crate::ignore::Matcher;
use crate::manifest::{self, Manifest, Origin};
use crate::tree::{Entries, Hash, Rules};
use crate::verify::Report;
use format::{Config, Platform};
use fs::{Fs, Object};
use gated::{Gated, Tree};
use store::{sha_hex, Store};

/// An image, read: its config and its rebuilt file system.
#[derive(Debug)]
pub struct Image {
    /// The image config.
    pub config: Config,
    /// The file system its layers make.
    pub fs: Fs,
}

/// Reads the image at `path` (`-`: standard input) for `platform` (default: the only one,
/// else the host's), checking every digest the format carries.
pub fn load(path: &Path, platform: Option<&Platform>) -> Result<Image, ImageError> {
    let mut store = Store::open(path)?;
    let found = format::find(&mut store, platform)?;
    let mut fs = Fs::default();
    for l in &found.layers {
        let layer = store.layer(&l.name)?;
        if let Some((sha, size)) = l.blob {
            if layer.blob_sha256 != sha {
                return Err(ImageError::Digest {
                    name: l.name.clone(),
                    expected: format!("sha256:{}", sha_hex(&sha)),
                    found: sha_hex(&layer.blob_sha256),
                });
            }
            if let Some(size) = size.filter(|s| *s != layer.blob_len) {
                return Err(ImageError::Format(format!(
                    "layer {} is {} bytes, its descriptor says {size}",
                    l.name, layer.blob_len
                )));
            }
        }
        if let Some(c) = l.compression {
            if c != layer.compression {
                return Err(ImageError::Format(format!(
                    "layer {} is {} but its media type says {}",
                    l.name,
                    layer.compression.name(),
                    c.name()
                )));
            }
        }
        if layer.diff_sha256 != l.diff_id {
            return Err(ImageError::Digest {
                name: format!("{} (uncompressed)", l.name),
                expected: format!("sha256:{}", sha_hex(&l.diff_id)),
                found: sha_hex(&layer.diff_sha256),
            });
        }
        fs.apply(&layer)?;
    }
    Ok(Image {
        config: found.config,
        fs,
    })
}

/// What checking one gated tree of an image found.
#[derive(Debug)]
pub enum Checked {
    /// The manifest's digest is not the tree's expected one: the image's gate would refuse.
    Stale {
        /// The manifest's digest.
        found: Hash,
        /// The expected digest.
        expected: Hash,
        /// Where the manifest says it was locked.
        origin: Origin,
    },
    /// The tree differs from its manifest.
    Differs(Report),
    /// The tree equals its manifest, and the manifest the expected digest when there is one.
    Equal {
        /// The manifest's digest.
        digest: Hash,
        /// The comparison (its entry count).
        report: Report,
    },
}

impl Image {
    /// The trees the image's gate checks, from its `Env` and `WorkingDir` (see [`gated`]),
    /// with `--root` and `--digest` applied.
    pub fn gated(&self, roots: &[String], digest: Option<&str>) -> Result<Gated> {
        let run = self.config.config.clone().unwrap_or_default();
        gated::resolve(
            &run.env.unwrap_or_default(),
            run.working_dir.as_deref(),
            roots,
            digest,
        )
    }

    /// The manifest at the absolute `path` inside the image; `None` when nothing is there.
    pub fn manifest(&self, path: &str) -> Result<Option<Manifest>> {
        let corrupt = |reason: String| Error::ManifestCorrupt {
            path: PathBuf::from(path),
            reason: format!("{reason} (in the image)"),
        };
        let at = self
            .fs
            .resolve(path.as_bytes(), true)
            .map_err(ImageError::from)?;
        match self.fs.get(&at) {
            None => Ok(None),
            Some((
                _,
                Object::File {
                    manifest: Some(bytes),
                    ..
                },
            )) => manifest::decode(bytes)
                .map(Some)
                .map_err(|e| corrupt(e.to_string())),
            Some((_, Object::File { .. })) => Err(corrupt(
                "not a treeseal manifest (wrong magic bytes)".into(),
            )),
            Some(_) => Err(corrupt("not a regular file".into())),
        }
    }

    /// The tree at the absolute `root` inside the image, under `rules`.
    pub fn tree(&self, root: &str, rules: &Rules) -> Result<Entries> {
        let matcher = crate::lock::matcher(rules)?;
        match self
            .fs
            .tree(root.as_bytes(), &matcher)
            .map_err(ImageError::from)?
        {
            Some(entries) => Ok(entries),
            None => Err(
                ImageError::NotInImage(format!("no directory at {root} (the gated root)")).into(),
            ),
        }
    }

    /// Checks one gated tree as the image's gate would: its manifest against the expected
    /// digest, then the tree against its manifest (extra paths matching `allow_extra` are
    /// not differences). An error means the tree could not be checked.
    pub fn check(&self, tree: &Tree, allow_extra: Option<&Matcher>) -> Result<Checked> {
        let Some(manifest) = self.manifest(&tree.manifest)? else {
            return Err(ImageError::NotInImage(format!(
                "no manifest at {} (was `treeseal lock` run before the COPY, and does .dockerignore keep .treeseal?)",
                tree.manifest
            ))
            .into());
        };
        let digest = manifest.digest();
        if let Some(expected) = tree.digest.filter(|e| *e != digest) {
            return Ok(Checked::Stale {
                found: digest,
                expected,
                origin: manifest.origin,
            });
        }
        let found = self.tree(&tree.root, &manifest.rules)?;
        let report = compare::compare(&manifest, found, allow_extra);
        if report.is_equal() {
            Ok(Checked::Equal { digest, report })
        } else {
            Ok(Checked::Differs(report))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::layer::tests::tar_of;
    use super::*;
    use sha2::{Digest, Sha256};

    fn sha(b: &[u8]) -> String {
        format!("sha256:{}", sha_hex(&Sha256::digest(b).into()))
    }

    /// An oci-archive built in memory: one image per (arch, layer tar), with `edit` applied
    /// to each image's manifest JSON before it is stored.
    fn oci_archive(images: &[(&str, Vec<u8>)], edit: impl Fn(&mut serde_json::Value)) -> Vec<u8> {
        let mut blobs: Vec<(String, Vec<u8>)> = Vec::new();
        let mut index = Vec::new();
        for (arch, layer) in images {
            let config = serde_json::json!({
                "architecture": arch, "os": "linux",
                "config": {"Env": ["TREESEAL_ROOT=/app"]},
                "rootfs": {"type": "layers", "diff_ids": [sha(layer)]},
            });
            let config = serde_json::to_vec(&config).unwrap();
            let mut manifest = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": sha(&config), "size": config.len()},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                            "digest": sha(layer), "size": layer.len()}],
            });
            edit(&mut manifest);
            let manifest = serde_json::to_vec(&manifest).unwrap();
            index.push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": sha(&manifest), "size": manifest.len(),
                "platform": {"architecture": arch, "os": "linux"},
            }));
            for b in [config, manifest, layer.clone()] {
                blobs.push((format!("blobs/sha256/{}", &sha(&b)[7..]), b));
            }
        }
        let index =
            serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": index}))
                .unwrap();
        let mut t = tar::Builder::new(Vec::new());
        for (name, data) in [("index.json".to_string(), index)].into_iter().chain(blobs) {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            t.append_data(&mut h, name, &data[..]).unwrap();
        }
        t.into_inner().unwrap()
    }

    fn find(archive: &[u8], platform: Option<&str>) -> Result<format::Found, ImageError> {
        let mut store = Store::from_archive(archive)?;
        let p = platform.map(|p| Platform::parse(p).unwrap());
        format::find(&mut store, p.as_ref())
    }

    #[test]
    fn a_multi_platform_index_needs_a_platform_unless_the_host_is_in_it() {
        let amd = tar_of(&[("app/a", tar::EntryType::Regular, b"amd")]);
        let arm = tar_of(&[("app/a", tar::EntryType::Regular, b"arm")]);
        let both = oci_archive(&[("amd64", amd.clone()), ("arm64", arm)], |_| {});
        let got = find(&both, Some("linux/arm64")).unwrap();
        assert_eq!(got.config.architecture, "arm64");
        let e = find(&both, Some("linux/s390x")).unwrap_err().to_string();
        assert!(
            e.contains("no image for linux/s390x") && e.contains("linux/arm64"),
            "{e}"
        );
        let host = Platform::host();
        match find(&both, None) {
            Ok(f) => assert_eq!(f.config.architecture, host.architecture),
            Err(e) => assert!(e.to_string().contains("--platform"), "{e}"),
        }
        let one = oci_archive(&[("arm64", amd)], |_| {});
        assert_eq!(find(&one, None).unwrap().config.architecture, "arm64");
    }

    #[test]
    fn a_descriptor_naming_a_missing_blob_is_refused() {
        let layer = tar_of(&[("app/a", tar::EntryType::Regular, b"x")]);
        let other = tar_of(&[("app/a", tar::EntryType::Regular, b"y")]);
        // The manifest names another layer digest than the stored blob's.
        let archive = oci_archive(&[("amd64", layer)], |m| {
            m["layers"][0]["digest"] = sha(&other).into();
        });
        let mut store = Store::from_archive(&archive[..]).unwrap();
        let found = format::find(&mut store, None);
        let e = match found {
            Ok(f) => store.layer(&f.layers[0].name).map(|_| ()).unwrap_err(),
            Err(e) => e,
        };
        assert!(matches!(e, ImageError::Missing(_)), "{e}");
    }

    #[test]
    fn an_unknown_layer_media_type_is_refused() {
        let layer = tar_of(&[("app/a", tar::EntryType::Regular, b"x")]);
        let archive = oci_archive(&[("amd64", layer)], |m| {
            m["layers"][0]["mediaType"] = "application/vnd.example.layer.v1.tar+lz4".into();
        });
        let e = find(&archive, None).unwrap_err();
        assert!(matches!(e, ImageError::MediaType { .. }), "{e}");
    }

    #[test]
    fn a_layer_that_is_not_its_diff_id_is_refused_on_load() {
        let dir = tempfile::tempdir().unwrap();
        let layer = tar_of(&[("app/a", tar::EntryType::Regular, b"x")]);
        let mut archive = oci_archive(&[("amd64", layer.clone())], |_| {});
        // Flip one byte of the layer's content inside the archive: its blob digest no
        // longer matches.
        let at = archive
            .windows(layer.len())
            .position(|w| w == &layer[..])
            .unwrap();
        archive[at + 512] ^= 1;
        let path = dir.path().join("img.tar");
        std::fs::write(&path, &archive).unwrap();
        let e = load(&path, None).unwrap_err();
        assert!(matches!(e, ImageError::Digest { .. }), "{e}");
        assert!(e.to_string().contains("does not match its digest"), "{e}");
    }
}
