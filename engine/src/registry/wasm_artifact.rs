//! Pulling a WebAssembly OCI artifact: a manifest whose layers are raw `.wasm`
//! modules rather than tars (the CNCF "Wasm OCI Artifact" layout, `application/wasm`,
//! and the older wasm-to-oci `application/vnd.wasm.content.layer.v1+wasm`), and whose
//! config is a wasm config, not an image config.
//!
//! Berth stores images as layers of tar and an image config, so such an artifact is
//! turned into one on the way in: each module becomes a one-file tar layer (named by
//! the layer's `org.opencontainers.image.title`, else `module.wasm`), and the config
//! says the artifact's os (`wasip1` by default) and architecture `wasm`, with the first
//! module as its entrypoint. The image then runs under the wasm runtime like any
//! wasm image; its id is that of the made config, not of the artifact's.

use serde::Deserialize;

use super::{RResult, RegistryError};
use crate::image::MEDIA_TYPE_LAYER_TAR;
use crate::manifest::{Descriptor, Manifest};
use crate::store::Store;

/// Layer media types that hold a raw wasm module.
const LAYER_TYPES: &[&str] = &[
    "application/wasm",
    "application/vnd.wasm.content.layer.v1+wasm",
    "application/vnd.module.wasm.content.layer.v1+wasm",
    "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm",
];
/// Config media types of wasm artifacts.
const CONFIG_TYPES: &[&str] = &["application/vnd.wasm.config.v0+json", "application/vnd.wasm.config.v1+json"];

/// The largest module accepted (it is read whole to be wrapped in a tar).
const MAX_MODULE: u64 = 512 << 20;

/// Whether `m` is a wasm artifact rather than an image manifest.
pub fn is_artifact(m: &Manifest) -> bool {
    m.config.as_ref().is_some_and(|c| CONFIG_TYPES.contains(&c.media_type.as_str())) || m.layers.iter().any(|l| LAYER_TYPES.contains(&l.media_type.as_str()))
}

/// The fields of a wasm config that matter here; the rest is ignored.
#[derive(Deserialize, Default)]
struct WasmConfig {
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    os: String,
}

/// A converted artifact: the image config and its tar layers (digest, media type,
/// size), all in the store.
pub struct Converted {
    pub config: Vec<u8>,
    pub layers: Vec<(String, String, u64)>,
    /// Blobs the conversion added.
    pub added: Vec<String>,
}

/// Makes an image from an artifact whose blobs (config and modules) are in the store.
pub fn convert(store: &Store, config: &[u8], layers: &[Descriptor]) -> RResult<Converted> {
    // Any JSON (even `{}`, which many artifacts use) is a config; only its os matters.
    let cfg: WasmConfig = serde_json::from_slice(config).unwrap_or_default();
    let mut out = Converted { config: vec![], layers: vec![], added: vec![] };
    let mut names = Vec::new();
    for (i, d) in layers.iter().enumerate() {
        if !LAYER_TYPES.contains(&d.media_type.as_str()) {
            return Err(RegistryError::Unsupported(format!("wasm artifact with a layer of type {}: only wasm modules are supported", d.media_type)));
        }
        let name = module_name(d, i);
        let path = store.blob_path(&d.digest)?;
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if len > MAX_MODULE {
            return Err(RegistryError::Unsupported(format!("wasm module {} is larger than {MAX_MODULE} bytes", d.digest)));
        }
        let module = store.read_blob(&d.digest)?;
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(module.len() as u64);
        tar.append_data(&mut h, &name, &module[..]).map_err(|e| RegistryError::Transport(format!("wrap {name}: {e}")))?;
        let tar = tar.into_inner().map_err(|e| RegistryError::Transport(format!("wrap {name}: {e}")))?;
        let digest = store.put_blob(&tar)?;
        out.added.push(digest.clone());
        out.layers.push((digest, MEDIA_TYPE_LAYER_TAR.to_string(), tar.len() as u64));
        names.push(name);
    }
    let first = names.first().ok_or_else(|| RegistryError::Protocol("wasm artifact without a module".into()))?;
    let os = if cfg.os.is_empty() { "wasip1".to_string() } else { cfg.os };
    let diff_ids: Vec<&String> = out.layers.iter().map(|l| &l.0).collect();
    let mut image = serde_json::json!({
        "architecture": "wasm",
        "os": os,
        "config": { "Entrypoint": [format!("/{first}")] },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
        "history": names.iter().map(|n| serde_json::json!({ "created_by": format!("wasm artifact layer {n}") })).collect::<Vec<_>>(),
    });
    if let Some(c) = cfg.created {
        image["created"] = serde_json::json!(c);
    }
    out.config = serde_json::to_vec(&image).map_err(|e| RegistryError::Protocol(format!("image config: {e}")))?;
    let id = store.put_blob(&out.config)?;
    out.added.push(id);
    Ok(out)
}

/// The module's file name in the image: its title annotation (a plain file name),
/// else `module.wasm` (`module-N.wasm` after the first).
fn module_name(d: &Descriptor, i: usize) -> String {
    let title = d.annotations.get("org.opencontainers.image.title").map(|t| t.trim());
    match title {
        Some(t) if !t.is_empty() && !t.contains('/') && t != "." && t != ".." => t.to_string(),
        _ if i == 0 => "module.wasm".to_string(),
        _ => format!("module-{i}.wasm"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(media_type: &str, title: Option<&str>) -> Descriptor {
        let mut d = Descriptor { media_type: media_type.into(), digest: String::new(), size: 0, annotations: Default::default(), platform: None };
        if let Some(t) = title {
            d.annotations.insert("org.opencontainers.image.title".into(), t.into());
        }
        d
    }

    #[test]
    fn names_come_from_titles_when_safe() {
        assert_eq!(module_name(&desc("application/wasm", Some("hello.wasm")), 0), "hello.wasm");
        assert_eq!(module_name(&desc("application/wasm", Some("../../etc/passwd")), 0), "module.wasm");
        assert_eq!(module_name(&desc("application/wasm", None), 2), "module-2.wasm");
    }

    #[test]
    fn converts_a_module_into_a_wasm_image() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path()).unwrap();
        let module = b"\0asm\x01\0\0\0".to_vec();
        let digest = store.put_blob(&module).unwrap();
        let mut d = desc("application/wasm", Some("app.wasm"));
        d.digest = digest;
        let c = convert(&store, br#"{"os":"wasip1","architecture":"wasm","layerDigests":[]}"#, &[d]).unwrap();
        let cfg = crate::image::ImageConfig::parse(&c.config).unwrap();
        assert_eq!((cfg.os.as_str(), cfg.architecture.as_str()), ("wasip1", "wasm"));
        assert_eq!(cfg.config.entrypoint, Some(vec!["/app.wasm".to_string()]));
        assert_eq!(cfg.rootfs.diff_ids, vec![c.layers[0].0.clone()]);
        let tar = store.read_blob(&c.layers[0].0).unwrap();
        let mut a = tar::Archive::new(&tar[..]);
        let e = a.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(e.path().unwrap().to_str(), Some("app.wasm"));
        assert!(convert(&store, b"{}", &[desc("application/vnd.oci.image.layer.v1.tar", None)]).is_err());
    }
}
