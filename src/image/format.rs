//! The image formats' JSON documents, and finding one image's config and layers in them.
//!
//! Two entry points exist: an OCI layout's `index.json` (an OCI image layout directory,
//! an `oci-archive`, and what newer Docker engines' `docker save` writes), and the legacy
//! `docker save` `manifest.json` (Docker 20.10 and earlier). When both are present the
//! OCI index is used, since its descriptors carry digests for every blob.
//!
//! Every blob reached through a descriptor is checked against the descriptor's digest
//! and size; every layer's uncompressed SHA-256 against the config's `diff_ids`.
//!
//! The types below hold only the fields treeseal needs (the `oci-spec` crate has them all,
//! but doubles the binary's JSON code for fields nobody reads here).

use std::collections::HashMap;

use serde::Deserialize;

use super::error::ImageError;
use super::layer::{Compression, Sha256Hash};
use super::store::{sha_hex, Store};

/// How deep nested indexes are followed (an index of indexes of manifests is 2).
const MAX_INDEX_DEPTH: usize = 4;

/// OCI image index (and Docker manifest list) media types.
const INDEX_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];
/// Image manifest media types.
const MANIFEST_TYPES: [&str; 2] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];
/// Image config media types.
const CONFIG_TYPES: [&str; 2] = [
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];
/// Layer media types and how each is compressed.
const LAYER_TYPES: [(&str, Compression); 5] = [
    ("application/vnd.oci.image.layer.v1.tar", Compression::None),
    (
        "application/vnd.oci.image.layer.v1.tar+gzip",
        Compression::Gzip,
    ),
    (
        "application/vnd.oci.image.layer.v1.tar+zstd",
        Compression::Zstd,
    ),
    (
        "application/vnd.docker.image.rootfs.diff.tar",
        Compression::None,
    ),
    (
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        Compression::Gzip,
    ),
];

/// A content descriptor.
#[derive(Clone, Debug, Deserialize)]
pub struct Descriptor {
    /// What it points at.
    #[serde(rename = "mediaType", default)]
    pub media_type: String,
    /// `sha256:<hex>`.
    pub digest: String,
    /// Length in bytes.
    #[serde(default)]
    pub size: Option<u64>,
    /// For an index entry: the platform.
    #[serde(default)]
    pub platform: Option<Platform>,
    /// Annotations (attestation manifests are recognised by one).
    #[serde(default)]
    pub annotations: Option<HashMap<String, String>>,
}

/// An OS and architecture.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Platform {
    /// e.g. `amd64`.
    #[serde(default)]
    pub architecture: String,
    /// e.g. `linux`.
    #[serde(default)]
    pub os: String,
    /// e.g. `v8`.
    #[serde(default)]
    pub variant: Option<String>,
}

impl Platform {
    /// `os/arch[/variant]`.
    pub fn text(&self) -> String {
        match &self.variant {
            Some(v) if !v.is_empty() => format!("{}/{}/{v}", self.os, self.architecture),
            _ => format!("{}/{}", self.os, self.architecture),
        }
    }

    /// Parses `os/arch[/variant]`.
    pub fn parse(text: &str) -> Result<Platform, ImageError> {
        let parts: Vec<&str> = text.split('/').collect();
        if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.trim().is_empty()) {
            return Err(ImageError::Platform(format!(
                "--platform {text:?} is not of the form os/arch[/variant], e.g. linux/arm64"
            )));
        }
        Ok(Platform {
            os: parts[0].into(),
            architecture: parts[1].into(),
            variant: parts.get(2).map(|v| v.to_string()),
        })
    }

    /// The platform this treeseal runs on.
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            "loongarch64" => "loong64",
            other => other,
        };
        Platform {
            os: std::env::consts::OS.into(),
            architecture: arch.into(),
            variant: None,
        }
    }

    /// Whether `self` (an image's platform) is what `want` asks for; a variant counts only
    /// when asked for.
    fn matches(&self, want: &Platform) -> bool {
        self.os == want.os
            && self.architecture == want.architecture
            && (want.variant.is_none() || self.variant == want.variant)
    }
}

#[derive(Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct ImageManifest {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct LegacyEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// The image config: only what treeseal reads.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Config {
    /// The platform's architecture.
    #[serde(default)]
    pub architecture: String,
    /// The platform's OS.
    #[serde(default)]
    pub os: String,
    /// The platform's variant.
    #[serde(default)]
    pub variant: Option<String>,
    /// How containers are run.
    #[serde(default)]
    pub config: Option<RunConfig>,
    /// The layers' uncompressed digests.
    pub rootfs: RootFs,
}

/// The part of the config that says how a container runs.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct RunConfig {
    /// `KEY=VALUE` strings.
    #[serde(rename = "Env", default)]
    pub env: Option<Vec<String>>,
    /// The working directory (relative gated roots are resolved against it, as the gate
    /// does at run time).
    #[serde(rename = "WorkingDir", default)]
    pub working_dir: Option<String>,
}

/// `rootfs` of the config.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct RootFs {
    /// `sha256:<hex>` of each uncompressed layer, bottom first.
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

impl Config {
    /// The platform the config declares.
    pub fn platform(&self) -> Platform {
        Platform {
            os: self.os.clone(),
            architecture: self.architecture.clone(),
            variant: self.variant.clone(),
        }
    }
}

/// One layer to apply: where it is, and what it must hash to.
#[derive(Clone, Debug)]
pub struct LayerRef {
    /// Its name in the store.
    pub name: String,
    /// The descriptor's digest of the stored bytes, and its size, when the format has one.
    pub blob: Option<(Sha256Hash, Option<u64>)>,
    /// The compression its media type declares, when the format has one.
    pub compression: Option<Compression>,
    /// The config's `diff_id`.
    pub diff_id: Sha256Hash,
}

/// An image found in the store.
#[derive(Clone, Debug)]
pub struct Found {
    /// Its config.
    pub config: Config,
    /// Its layers, bottom first.
    pub layers: Vec<LayerRef>,
}

fn parse<T: serde::de::DeserializeOwned>(name: &str, bytes: &[u8]) -> Result<T, ImageError> {
    serde_json::from_slice(bytes).map_err(|e| ImageError::Json {
        name: name.into(),
        reason: e.to_string(),
    })
}

/// Parses `sha256:<64 lowercase hex>`; other algorithms are refused.
pub fn parse_sha(text: &str, what: &str) -> Result<Sha256Hash, ImageError> {
    let bad = || ImageError::Format(format!("{what}: {text:?} is not a sha256:<64 hex> digest"));
    let hex = text.strip_prefix("sha256:").ok_or_else(bad)?;
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

fn blob_name(d: &Descriptor) -> Result<(String, Sha256Hash), ImageError> {
    let sha = parse_sha(&d.digest, "descriptor")?;
    Ok((format!("blobs/sha256/{}", sha_hex(&sha)), sha))
}

/// Loads a JSON blob through its descriptor, checking digest and size.
fn load_blob(
    store: &mut Store,
    d: &Descriptor,
) -> Result<(String, std::rc::Rc<Vec<u8>>), ImageError> {
    let (name, want) = blob_name(d)?;
    let (bytes, sha) = store.json(&name)?;
    if sha != want {
        return Err(ImageError::Digest {
            name,
            expected: d.digest.clone(),
            found: sha_hex(&sha),
        });
    }
    if let Some(size) = d.size {
        if size != bytes.len() as u64 {
            return Err(ImageError::Format(format!(
                "{name} is {} bytes, its descriptor says {size}",
                bytes.len()
            )));
        }
    }
    Ok((name, bytes))
}

fn is_attestation(d: &Descriptor) -> bool {
    d.annotations
        .as_ref()
        .and_then(|a| a.get("vnd.docker.reference.type"))
        .is_some_and(|t| t == "attestation-manifest")
}

/// Finds the one image in `store` (choosing by `platform`, else the host's, when there are
/// several).
pub fn find(store: &mut Store, platform: Option<&Platform>) -> Result<Found, ImageError> {
    let mut images = if store.has("index.json") {
        let (bytes, _) = store.json("index.json")?;
        let index: Index = parse("index.json", &bytes)?;
        let mut out = Vec::new();
        collect(store, &index.manifests, 0, &mut out)?;
        out
    } else if store.has("manifest.json") {
        legacy(store)?
    } else {
        return Err(ImageError::Missing("index.json or manifest.json".into()));
    };
    if images.is_empty() {
        return Err(ImageError::Format("the image index lists no image".into()));
    }
    let names = |list: &[(Platform, Found)]| {
        list.iter()
            .map(|(p, _)| p.text())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(want) = platform {
        let all = names(&images);
        images.retain(|(p, _)| p.matches(want));
        return match images.len() {
            1 => Ok(images.remove(0).1),
            0 => Err(ImageError::Platform(format!(
                "no image for {} here (found {all})",
                want.text()
            ))),
            _ => Err(ImageError::Platform(format!(
                "several images for {} here ({}); save one image per archive",
                want.text(),
                names(&images)
            ))),
        };
    }
    if images.len() == 1 {
        return Ok(images.remove(0).1);
    }
    let host = Platform::host();
    let all = names(&images);
    images.retain(|(p, _)| p.matches(&host));
    match images.len() {
        1 => Ok(images.remove(0).1),
        _ => Err(ImageError::Platform(format!(
            "the archive holds several images ({all}); choose one with --platform"
        ))),
    }
}

/// Follows an index's descriptors down to image manifests.
fn collect(
    store: &mut Store,
    list: &[Descriptor],
    depth: usize,
    out: &mut Vec<(Platform, Found)>,
) -> Result<(), ImageError> {
    if depth > MAX_INDEX_DEPTH {
        return Err(ImageError::Format(format!(
            "image indexes nested deeper than {MAX_INDEX_DEPTH}"
        )));
    }
    let mut seen = std::collections::HashSet::new();
    for d in list {
        if !seen.insert(d.digest.clone()) || is_attestation(d) {
            continue;
        }
        let media = d.media_type.as_str();
        if INDEX_TYPES.contains(&media) {
            let (name, bytes) = load_blob(store, d)?;
            let index: Index = parse(&name, &bytes)?;
            collect(store, &index.manifests, depth + 1, out)?;
        } else if MANIFEST_TYPES.contains(&media) {
            let found = image(store, d)?;
            let platform = d
                .platform
                .clone()
                .unwrap_or_else(|| found.config.platform());
            out.push((platform, found));
        } else {
            return Err(ImageError::MediaType {
                name: d.digest.clone(),
                media_type: d.media_type.clone(),
            });
        }
    }
    Ok(())
}

/// Reads one OCI/Docker v2 image manifest and its config.
fn image(store: &mut Store, d: &Descriptor) -> Result<Found, ImageError> {
    let (name, bytes) = load_blob(store, d)?;
    let manifest: ImageManifest = parse(&name, &bytes)?;
    if let Some(m) = &manifest.media_type {
        if !MANIFEST_TYPES.contains(&m.as_str()) {
            return Err(ImageError::MediaType {
                name,
                media_type: m.clone(),
            });
        }
    }
    if !CONFIG_TYPES.contains(&manifest.config.media_type.as_str()) {
        return Err(ImageError::MediaType {
            name: manifest.config.digest.clone(),
            media_type: manifest.config.media_type.clone(),
        });
    }
    let (config_name, config_bytes) = load_blob(store, &manifest.config)?;
    let config: Config = parse(&config_name, &config_bytes)?;
    let diff_ids = diff_ids(&config, manifest.layers.len())?;
    let layers = manifest
        .layers
        .iter()
        .zip(diff_ids)
        .map(|(l, diff_id)| {
            let compression = LAYER_TYPES
                .iter()
                .find(|(t, _)| *t == l.media_type)
                .map(|(_, c)| *c)
                .ok_or_else(|| ImageError::MediaType {
                    name: l.digest.clone(),
                    media_type: l.media_type.clone(),
                })?;
            let (name, sha) = blob_name(l)?;
            Ok(LayerRef {
                name,
                blob: Some((sha, l.size)),
                compression: Some(compression),
                diff_id,
            })
        })
        .collect::<Result<_, ImageError>>()?;
    Ok(Found { config, layers })
}

fn diff_ids(config: &Config, layers: usize) -> Result<Vec<Sha256Hash>, ImageError> {
    if config.rootfs.diff_ids.len() != layers {
        return Err(ImageError::Format(format!(
            "the config lists {} layer digests (rootfs.diff_ids) for {layers} layers",
            config.rootfs.diff_ids.len()
        )));
    }
    config
        .rootfs
        .diff_ids
        .iter()
        .map(|d| parse_sha(d, "rootfs.diff_ids"))
        .collect()
}

/// The legacy `docker save` format: `manifest.json` lists each image's config file and
/// layer tars; the config is named after its SHA-256, and its `diff_ids` cover the layers.
fn legacy(store: &mut Store) -> Result<Vec<(Platform, Found)>, ImageError> {
    let (bytes, _) = store.json("manifest.json")?;
    let entries: Vec<LegacyEntry> = parse("manifest.json", &bytes)?;
    let mut out = Vec::new();
    for e in entries {
        let (cbytes, csha) = store.json(&e.config)?;
        let stem = e
            .config
            .rsplit('/')
            .next()
            .unwrap_or("")
            .trim_end_matches(".json");
        if let Ok(named) = parse_sha(&format!("sha256:{stem}"), "config") {
            if named != csha {
                return Err(ImageError::Digest {
                    name: e.config.clone(),
                    expected: format!("sha256:{stem}"),
                    found: sha_hex(&csha),
                });
            }
        }
        let config: Config = parse(&e.config, &cbytes)?;
        let diff_ids = diff_ids(&config, e.layers.len())?;
        let layers = e
            .layers
            .iter()
            .zip(diff_ids)
            .map(|(name, diff_id)| LayerRef {
                name: name.clone(),
                blob: None,
                compression: None,
                diff_id,
            })
            .collect();
        out.push((config.platform(), Found { config, layers }));
    }
    Ok(out)
}
