//! Images: their configs (Docker's image config JSON, a superset of OCI's), the
//! records tying a config to its layers, and the per-namespace tags.
//!
//! We keep our own serde types for the config rather than oci-spec's because Docker's
//! config carries fields OCI drops (Healthcheck, OnBuild, Shell, ArgsEscaped) that the
//! builder and `inspect` need; unknown fields are kept in `extra` so nothing is lost.
//!
//! ```text
//! <root>/images/<hex>.json                  ImageRecord, shared by all namespaces
//! <root>/namespaces/<ns>/images.json        which images a namespace has, and its tags
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsutil;
use crate::reference::Reference;
use crate::store::Store;

pub const MEDIA_TYPE_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MEDIA_TYPE_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Reads `null` as the type's default. Configs written by other tools (Go's
/// encoding/json marshals a nil slice or map as `null`) say `"Env": null`,
/// `"Labels": null`, `"config": null`, `"history": null`; Docker reads those as empty.
fn null_default<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    #[serde(default, deserialize_with = "null_default", skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(default, deserialize_with = "null_default", skip_serializing_if = "BTreeMap::is_empty")]
    pub exposed_ports: BTreeMap<String, serde_json::Value>,
    #[serde(default, deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, deserialize_with = "null_default", skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, serde_json::Value>,
    #[serde(default, deserialize_with = "null_default", skip_serializing_if = "String::is_empty")]
    pub working_dir: String,
    #[serde(default, deserialize_with = "null_default", skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, deserialize_with = "null_default", skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RootFs {
    #[serde(rename = "type", default, deserialize_with = "null_default")]
    pub kind: String,
    #[serde(default, deserialize_with = "null_default")]
    pub diff_ids: Vec<String>,
}

/// The image config blob (application/vnd.oci.image.config.v1+json).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    // Missing in some hand-made and old configs; Docker shows them empty.
    #[serde(default, deserialize_with = "null_default")]
    pub architecture: String,
    #[serde(default, deserialize_with = "null_default")]
    pub os: String,
    #[serde(default, deserialize_with = "null_default")]
    pub config: RunConfig,
    pub rootfs: RootFs,
    #[serde(default, deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl ImageConfig {
    pub fn parse(bytes: &[u8]) -> Result<ImageConfig> {
        serde_json::from_slice(bytes)
            .map_err(|e| Error::InvalidArgument(format!("invalid image config: {e}")))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerRef {
    /// Digest of the layer blob as stored (maybe compressed).
    pub digest: String,
    pub media_type: String,
    /// Size of the blob.
    pub size: u64,
    pub diff_id: String,
    pub chain_id: String,
}

/// One image: its config and layers, bottom first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageRecord {
    /// `sha256:` digest of the config blob: Docker's image ID.
    pub id: String,
    pub layers: Vec<LayerRef>,
    /// Digests the image is known by in registries (`name@sha256:…`).
    #[serde(default)]
    pub repo_digests: Vec<String>,
    /// The manifest's annotations when it was pulled (`module.wasm.image/variant`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The image this one was made on here (`docker commit`, a build step): Docker's
    /// `Parent`, local knowledge that pushes and pulls do not carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct NamespaceImages {
    /// Image ids this namespace has (tagged or dangling), with when they arrived here.
    pub images: BTreeMap<String, chrono::DateTime<chrono::Utc>>,
    /// Fully qualified reference (`docker.io/library/busybox:latest`) → image id.
    pub tags: BTreeMap<String, String>,
}

/// What `rmi` did, in order, for the "Untagged:"/"Deleted:" lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemovedItem {
    Untagged(String),
    Deleted(String),
}

pub struct Images {
    root: PathBuf,
}

impl Images {
    pub fn open(root: &Path) -> Result<Images> {
        std::fs::create_dir_all(root.join("images"))
            .map_err(|e| Error::Io { context: "create images dir".into(), source: e })?;
        Ok(Images { root: root.to_path_buf() })
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.root.join("images").join(format!("{}.json", id.trim_start_matches("sha256:")))
    }

    fn ns_path(&self, ns: &str) -> PathBuf {
        self.root.join("namespaces").join(ns).join("images.json")
    }

    pub fn namespace(&self, ns: &str) -> Result<NamespaceImages> {
        Ok(fsutil::read_json(&self.ns_path(ns))?.unwrap_or_default())
    }

    pub fn save_namespace(&self, ns: &str, idx: &NamespaceImages) -> Result<()> {
        fsutil::write_json(&self.ns_path(ns), idx)
    }

    /// Every namespace that has an index, for garbage collection.
    pub fn namespaces(&self) -> Vec<String> {
        let Ok(rd) = std::fs::read_dir(self.root.join("namespaces")) else { return vec![] };
        rd.flatten().filter_map(|e| e.file_name().into_string().ok()).collect()
    }

    pub fn record(&self, id: &str) -> Result<ImageRecord> {
        fsutil::read_json(&self.record_path(id))?
            .ok_or_else(|| Error::NotFound(format!("No such image: {id}")))
    }

    pub fn all_records(&self) -> Vec<ImageRecord> {
        let Ok(rd) = std::fs::read_dir(self.root.join("images")) else { return vec![] };
        rd.flatten()
            .filter_map(|e| fsutil::read_json::<ImageRecord>(&e.path()).ok().flatten())
            .collect()
    }

    pub fn config(&self, store: &Store, id: &str) -> Result<ImageConfig> {
        ImageConfig::parse(&store.read_blob(id)?)
    }

    /// Stores an image from a config and layer blobs already in the store, unpacking
    /// the layers. Returns the image id.
    pub fn create(
        &self,
        store: &Store,
        config: &[u8],
        layers: &[(String, String, u64)],
    ) -> Result<String> {
        let parsed = ImageConfig::parse(config)?;
        if parsed.rootfs.diff_ids.len() != layers.len() {
            return Err(Error::InvalidArgument(format!(
                "image config lists {} layers, the image has {}",
                parsed.rootfs.diff_ids.len(),
                layers.len()
            )));
        }
        let id = store.put_blob(config)?;
        let mut refs = Vec::new();
        let mut diff_ids = Vec::new();
        for ((digest, media_type, size), expected) in layers.iter().zip(&parsed.rootfs.diff_ids) {
            // A layer already unpacked on the same parents (same chain id) is not
            // unpacked again: pulls and loads of images sharing layers stay cheap.
            let mut with_this = diff_ids.clone();
            with_this.push(expected.clone());
            let known = crate::store::chain_id(&with_this);
            let (diff_id, chain_id) = match store.layer_info(&known)? {
                Some(info) if info.diff_id == *expected && store.layer_dir(&known)?.is_dir() => (info.diff_id, known),
                _ => store.unpack_layer(digest, &diff_ids)?,
            };
            if &diff_id != expected {
                return Err(Error::InvalidArgument(format!(
                    "layer {digest} has diff id {diff_id}, the config says {expected}"
                )));
            }
            diff_ids.push(diff_id.clone());
            refs.push(LayerRef { digest: digest.clone(), media_type: media_type.clone(), size: *size, diff_id, chain_id });
        }
        let mut record = ImageRecord { id: id.clone(), layers: refs, repo_digests: vec![], annotations: BTreeMap::new(), parent: None };
        if let Ok(old) = self.record(&id) {
            record.repo_digests = old.repo_digests;
            record.annotations = old.annotations;
            record.parent = old.parent;
        }
        fsutil::write_json(&self.record_path(&id), &record)?;
        Ok(id)
    }

    /// Records the image `id` was made on, unless it has one already.
    pub fn set_parent(&self, id: &str, parent: &str) -> Result<()> {
        let mut rec = self.record(id)?;
        if rec.parent.is_some() || id == parent {
            return Ok(());
        }
        rec.parent = Some(parent.to_string());
        fsutil::write_json(&self.record_path(id), &rec)
    }

    /// Keeps the annotations of the manifest `id` was pulled with.
    pub fn set_annotations(&self, id: &str, annotations: &BTreeMap<String, String>) -> Result<()> {
        let mut rec = self.record(id)?;
        if rec.annotations == *annotations {
            return Ok(());
        }
        rec.annotations = annotations.clone();
        fsutil::write_json(&self.record_path(id), &rec)
    }

    /// Records that `id` is known in a registry as `name@sha256:…` (one digest per
    /// repository name: a newer push or pull replaces the older).
    pub fn add_repo_digest(&self, id: &str, repo_digest: &str) -> Result<()> {
        let mut rec = self.record(id)?;
        let name = repo_digest.split('@').next().unwrap_or(repo_digest);
        rec.repo_digests.retain(|d| d.split('@').next() != Some(name));
        rec.repo_digests.push(repo_digest.to_string());
        rec.repo_digests.sort();
        fsutil::write_json(&self.record_path(id), &rec)
    }

    /// Adds `id` to a namespace and points `reference` (if any) at it. Returns the id
    /// the tag pointed at before, if it moved.
    pub fn tag(&self, ns: &str, id: &str, reference: Option<&Reference>) -> Result<Option<String>> {
        let mut idx = self.namespace(ns)?;
        let mut changed = false;
        idx.images.entry(id.to_string()).or_insert_with(|| {
            changed = true;
            chrono::Utc::now()
        });
        let old = match reference {
            Some(r) => {
                let prev = idx.tags.insert(r.to_string(), id.to_string());
                changed |= prev.as_deref() != Some(id);
                prev.filter(|o| o != id)
            }
            None => None,
        };
        // A rebuild that ends at the same image (all cached) rewrites nothing: the
        // index is fsynced, which is most of a cached build's time otherwise.
        if changed {
            self.save_namespace(ns, &idx)?;
        }
        Ok(old)
    }

    /// Finds an image in a namespace by reference, full id, or unique id prefix.
    pub fn resolve(&self, ns: &str, name: &str) -> Result<String> {
        let idx = self.namespace(ns)?;
        let not_found = || Error::NotFound(format!("No such image: {name}"));
        if let Ok(r) = Reference::parse(name) {
            if let Some(id) = idx.tags.get(&r.to_string()) {
                return Ok(id.clone());
            }
            if let Some(d) = &r.digest {
                if idx.images.contains_key(d) {
                    return Ok(d.clone());
                }
                // name@digest: look for a record with that repo digest.
                for id in idx.images.keys() {
                    if let Ok(rec) = self.record(id) {
                        if rec.repo_digests.iter().any(|rd| rd.ends_with(d.as_str())) {
                            return Ok(id.clone());
                        }
                    }
                }
            }
        }
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        if hex.len() >= 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let matches: Vec<_> = idx
                .images
                .keys()
                .filter(|id| id.trim_start_matches("sha256:").starts_with(hex))
                .collect();
            if matches.len() == 1 {
                return Ok(matches[0].clone());
            }
        }
        Err(not_found())
    }

    /// The tags (familiar form) that point at `id` in a namespace.
    pub fn tags_of(idx: &NamespaceImages, id: &str) -> Vec<String> {
        idx.tags
            .iter()
            .filter(|(_, v)| v.as_str() == id)
            .filter_map(|(k, _)| Reference::parse(k).ok().map(|r| r.familiar()))
            .collect()
    }

    /// Deletes images no namespace has any more, then their layers and blobs when no
    /// other image uses them. Returns the deleted image ids and layer chain ids.
    pub fn collect_garbage(&self, store: &Store) -> Result<Vec<String>> {
        let mut live: BTreeSet<String> = BTreeSet::new();
        for ns in self.namespaces() {
            live.extend(self.namespace(&ns)?.images.into_keys());
        }
        let records = self.all_records();
        let (keep, drop): (Vec<_>, Vec<_>) = records.into_iter().partition(|r| live.contains(&r.id));
        let mut used_blobs: BTreeSet<String> = BTreeSet::new();
        let mut used_chains: BTreeSet<String> = BTreeSet::new();
        for r in &keep {
            used_blobs.insert(r.id.clone());
            for l in &r.layers {
                used_blobs.insert(l.digest.clone());
                used_chains.insert(l.chain_id.clone());
            }
        }
        let mut deleted = Vec::new();
        for r in drop {
            let _ = std::fs::remove_file(self.record_path(&r.id));
            if !used_blobs.contains(&r.id) {
                store.remove_blob(&r.id)?;
            }
            deleted.push(r.id.clone());
            for l in r.layers.iter().rev() {
                if used_chains.insert(l.chain_id.clone()) {
                    store.remove_layer(&l.chain_id)?;
                    deleted.push(l.chain_id.clone());
                }
                if used_blobs.insert(l.digest.clone()) {
                    store.remove_blob(&l.digest)?;
                }
            }
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keeps_unknown_fields() {
        let json = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},
            "config":{"Cmd":["sh"],"Healthcheck":{"Test":["NONE"]}},"docker_version":"28"}"#;
        let c = ImageConfig::parse(json).unwrap();
        assert_eq!(c.config.cmd, Some(vec!["sh".to_string()]));
        let back = serde_json::to_value(&c).unwrap();
        assert_eq!(back["config"]["Healthcheck"]["Test"][0], "NONE");
        assert_eq!(back["docker_version"], "28");
    }

    /// Go tools marshal nil slices and maps as `null`; some configs leave whole
    /// sections out. Both read as empty, as Docker reads them.
    #[test]
    fn config_reads_null_and_missing_as_empty() {
        let json = br#"{"architecture":"amd64","os":"linux","created":null,
            "rootfs":{"type":"layers","diff_ids":null},"history":null,
            "config":{"Env":null,"Cmd":null,"Entrypoint":null,"Volumes":null,"ExposedPorts":null,
                "Labels":null,"OnBuild":null,"Shell":null,"User":null,"WorkingDir":null}}"#;
        let c = ImageConfig::parse(json).unwrap();
        assert!(c.config.env.is_empty() && c.config.labels.is_empty() && c.config.volumes.is_empty());
        assert_eq!((c.config.cmd, c.config.entrypoint), (None, None));
        assert!(c.history.is_empty() && c.rootfs.diff_ids.is_empty() && c.created.is_none());
        let c = ImageConfig::parse(br#"{"config":null,"rootfs":{"type":"layers","diff_ids":[]},
            "history":[{"created":null,"created_by":null,"empty_layer":null}]}"#).unwrap();
        assert_eq!(c.config, RunConfig::default());
        assert_eq!((c.architecture.as_str(), c.os.as_str()), ("", ""));
        assert_eq!(c.history, vec![History::default()]);
        let c = ImageConfig::parse(br#"{"rootfs":{"type":"layers","diff_ids":[]}}"#).unwrap();
        assert_eq!(c.config, RunConfig::default());
    }

    #[test]
    fn bad_config_is_a_clear_error() {
        let e = ImageConfig::parse(b"{").unwrap_err().to_string();
        assert!(e.starts_with("invalid image config"), "{e}");
    }
}
