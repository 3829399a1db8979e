//! Pulling: manifest (Docker schema 2, OCI, and their indexes), config, layers.
//! Every blob streams into the store through `put_blob_from` with its digest, so a
//! blob that is cut off or does not match is never visible.

use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::Method;

use super::client::Client;
use super::wasm_artifact;
use super::{short_id, LayerState, Progress, ProgressFn, RResult, RegistryError, Transfer};
use crate::error::Error;
use crate::image::{ImageConfig, MEDIA_TYPE_LAYER_GZIP, MEDIA_TYPE_LAYER_TAR};
use crate::platform;
use crate::reference::{self, Reference};
use crate::store::Store;

pub use crate::manifest::{DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1";
/// Manifests are small JSON; the cap keeps a hostile registry from exhausting memory.
const MAX_MANIFEST: u64 = 4 << 20;
/// Docker's default `max-concurrent-downloads`.
const CONCURRENT_DOWNLOADS: usize = 3;

pub use crate::manifest::{Descriptor, Manifest, Platform};

/// An image whose blobs are all in the store, ready to be recorded.
#[derive(Debug)]
pub struct Fetched {
    pub config: Vec<u8>,
    /// (blob digest as stored, media type, size), bottom first, for `Images::create`.
    pub layers: Vec<(String, String, u64)>,
    /// The digest of the manifest (or index) the reference named: the RepoDigest.
    pub digest: String,
    /// Blobs this pull added to the store, to drop again if recording fails.
    pub new_blobs: Vec<String>,
    /// Layer digests as the registry has them (for cross-repository mounts).
    pub remote_layers: Vec<String>,
    /// The image manifest's annotations (see `runtime::is_wasm_image`).
    pub annotations: std::collections::BTreeMap<String, String>,
}

/// A layer's kind from its media type.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Compression {
    None,
    Gzip,
    Zstd,
}

fn compression(media_type: &str) -> RResult<Compression> {
    match media_type {
        "application/vnd.docker.image.rootfs.diff.tar.gzip" | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" | MEDIA_TYPE_LAYER_GZIP
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip" => Ok(Compression::Gzip),
        "application/vnd.oci.image.layer.v1.tar+zstd" | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => Ok(Compression::Zstd),
        MEDIA_TYPE_LAYER_TAR | "application/vnd.docker.image.rootfs.diff.tar" | "application/vnd.oci.image.layer.nondistributable.v1.tar" => Ok(Compression::None),
        other => Err(RegistryError::Unsupported(format!("unsupported layer media type {other}"))),
    }
}

/// Reads a body with a cap and checks it against `digest` when one is expected.
fn read_capped(r: impl Read, cap: u64, what: &str) -> RResult<Vec<u8>> {
    let mut buf = Vec::new();
    r.take(cap + 1).read_to_end(&mut buf).map_err(|e| RegistryError::Transport(format!("reading {what}: {e}")))?;
    if buf.len() as u64 > cap {
        return Err(RegistryError::Protocol(format!("{what} is larger than {cap} bytes")));
    }
    Ok(buf)
}

fn check_digest(bytes: &[u8], expected: &str, what: &str) -> RResult<()> {
    let got = crate::store::sha256_digest(bytes);
    if got != expected {
        return Err(RegistryError::DigestMismatch { what: what.to_string(), expected: expected.to_string(), got });
    }
    Ok(())
}

/// Fetches a manifest by tag or digest. Returns (bytes, media type, digest).
fn get_manifest(client: &Client, r: &Reference, reference: &str) -> RResult<(Vec<u8>, String, String)> {
    let accept = [OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST].join(", ");
    let what = format!("manifest for {}:{reference}", r.familiar_name());
    let resp = client.send(client.request(Method::GET, &format!("/v2/{}/manifests/{reference}", r.repository)).header(ACCEPT, accept))?;
    if resp.status() == reqwest::StatusCode::NOT_FOUND {
        let e = super::client::error_from(&format!("{what} not found"), resp);
        return Err(RegistryError::NotFound(e.to_string()));
    }
    if resp.status() == reqwest::StatusCode::UNAUTHORIZED || resp.status() == reqwest::StatusCode::FORBIDDEN {
        // Docker Hub answers so for a repository that does not exist, too.
        let what = format!("pull access denied for {}, repository does not exist or may require 'docker login'", r.familiar_name());
        return Err(super::client::error_from(&what, resp));
    }
    if !resp.status().is_success() {
        return Err(super::client::error_from(&what, resp));
    }
    let media_type = resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").split(';').next().unwrap_or("").trim().to_string();
    let header_digest = resp.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()).map(str::to_string);
    let bytes = read_capped(resp, MAX_MANIFEST, &what)?;
    let digest = crate::store::sha256_digest(&bytes);
    if reference.starts_with("sha256:") {
        check_digest(&bytes, reference, &what)?;
    } else if let Some(h) = header_digest.filter(|h| h.starts_with("sha256:")) {
        check_digest(&bytes, &h, &what)?;
    }
    Ok((bytes, media_type, digest))
}

fn parse_manifest(bytes: &[u8], what: &str) -> RResult<Manifest> {
    serde_json::from_slice(bytes).map_err(|e| RegistryError::Protocol(format!("{what}: invalid manifest: {e}")))
}

/// Resolves `r` to an image manifest for `want` (None: linux on this machine's
/// architecture, else a wasm image). Returns (manifest, the digest of what `r` named:
/// the index's when it is one, as Docker records it).
fn resolve(client: &Client, r: &Reference, want: Option<&platform::Platform>) -> RResult<(Manifest, String)> {
    let host = platform::Platform { os: "linux".into(), architecture: crate::archive::host_arch(), variant: String::new() };
    let reference = r.digest.clone().or_else(|| r.tag.clone()).unwrap_or_else(|| reference::DEFAULT_TAG.to_string());
    let (bytes, media_type, top_digest) = get_manifest(client, r, &reference)?;
    let mut m = parse_manifest(&bytes, &reference)?;
    let mut media_type = if m.media_type.is_empty() { media_type } else { m.media_type.clone() };
    for _ in 0..2 {
        if media_type.starts_with(DOCKER_SCHEMA1) || m.schema_version == 1 {
            return Err(RegistryError::Unsupported(format!(
                "{}:{reference} has a schema 1 manifest, which Docker no longer pulls either: push it again with a current client",
                r.familiar_name()
            )));
        }
        let is_index = media_type == OCI_INDEX || media_type == DOCKER_LIST || (m.config.is_none() && !m.manifests.is_empty());
        if !is_index {
            return Ok((m, top_digest));
        }
        let entry_for = |p: &platform::Platform| m.manifests.iter().find(|d| d.platform.as_ref().is_some_and(|e| p.matches_entry(e)));
        let pick = match want {
            Some(p) => entry_for(p),
            // Wasm runs on any host: an index with no entry for this one may still
            // have a wasm image.
            None => entry_for(&host).or_else(|| m.manifests.iter().find(|d| d.platform.as_ref().is_some_and(|p| p.architecture == "wasm"))),
        }
        .cloned()
        .ok_or_else(|| {
            let have: Vec<String> = m.manifests.iter().filter_map(|d| d.platform.as_ref()).filter(|p| p.os != "unknown").map(|p| format!("{}/{}", p.os, p.architecture)).collect();
            RegistryError::NotFound(format!("no matching manifest for {} in the manifest list entries (the image has: {})", want.unwrap_or(&host), have.join(", ")))
        })?;
        reference::validate_digest(&pick.digest).map_err(|_| RegistryError::Protocol(format!("bad digest {} in index", pick.digest)))?;
        let (bytes, mt, _) = get_manifest(client, r, &pick.digest)?;
        m = parse_manifest(&bytes, &pick.digest)?;
        media_type = if m.media_type.is_empty() { if pick.media_type.is_empty() { mt } else { pick.media_type.clone() } } else { m.media_type.clone() };
    }
    Err(RegistryError::Protocol(format!("{}: indexes nested too deeply", r.familiar_name())))
}

/// What the registry says of `r` without a pull (`GET /distribution/{name}/json`):
/// the descriptor of what the name points at, and the platforms it has.
#[derive(Debug, Clone)]
pub struct Distribution {
    pub descriptor: Descriptor,
    pub platforms: Vec<Platform>,
}

/// Reads `r`'s manifest and, for a single image, its config (where its platform is
/// written), as dockerd's distribution inspect does.
pub fn inspect(client: &Client, r: &Reference) -> RResult<Distribution> {
    let reference = r.digest.clone().or_else(|| r.tag.clone()).unwrap_or_else(|| reference::DEFAULT_TAG.to_string());
    let (bytes, header_type, digest) = get_manifest(client, r, &reference)?;
    let m = parse_manifest(&bytes, &reference)?;
    let media_type = if m.media_type.is_empty() { header_type } else { m.media_type.clone() };
    let platforms = match &m.config {
        Some(cfg) if m.manifests.is_empty() => {
            let what = format!("config {}", cfg.digest);
            let resp = client.send_ok(client.request(Method::GET, &format!("/v2/{}/blobs/{}", r.repository, cfg.digest)), &what)?;
            let config = read_capped(resp, MAX_MANIFEST, "image config")?;
            check_digest(&config, &cfg.digest, "image config")?;
            let p: Platform = serde_json::from_slice(&config).map_err(|e| RegistryError::Protocol(format!("image config: {e}")))?;
            vec![p]
        }
        _ => m.manifests.iter().filter_map(|d| d.platform.clone()).collect(),
    };
    Ok(Distribution { descriptor: Descriptor { media_type, digest, size: bytes.len() as u64, annotations: Default::default(), platform: None }, platforms })
}

/// Wraps a download: reports `Downloading` at most every 100 ms and `Verifying
/// Checksum` when the stream ends (the store hashes while it writes).
struct Meter<'a, R> {
    inner: R,
    id: &'a str,
    total: u64,
    done: u64,
    last: Instant,
    action: Transfer,
    progress: &'a ProgressFn<'a>,
    at_end: Option<LayerState>,
}

impl<R: Read> Read for Meter<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        if n == 0 {
            if let Some(s) = self.at_end.take() {
                (self.progress)(Progress::Layer { id: self.id.to_string(), state: s });
            }
        } else if self.last.elapsed() >= Duration::from_millis(100) || self.done == self.total {
            self.last = Instant::now();
            (self.progress)(Progress::Bytes { id: self.id.to_string(), action: self.action, current: self.done, total: self.total });
        }
        Ok(n)
    }
}

/// Streams blob `desc` into the store, verified. Returns the stored size.
fn download(client: &Client, store: &Store, repo: &str, desc: &Descriptor, id: &str, progress: &ProgressFn) -> RResult<u64> {
    let what = format!("blob {}", desc.digest);
    let resp = client.send_ok(client.request(Method::GET, &format!("/v2/{repo}/blobs/{}", desc.digest)), &what)?;
    let meter = Meter {
        // One byte past the declared size is enough to notice a lie; a registry that
        // streams forever cannot fill the disk.
        inner: resp.take(desc.size.saturating_add(1)),
        id,
        total: desc.size,
        done: 0,
        last: Instant::now(),
        action: Transfer::Downloading,
        progress,
        at_end: Some(LayerState::VerifyingChecksum),
    };
    match store.put_blob_from(meter, Some(&desc.digest)) {
        Ok((_, size)) => Ok(size),
        Err(Error::InvalidArgument(m)) if m.starts_with("digest mismatch") => {
            Err(RegistryError::DigestMismatch { what, expected: desc.digest.clone(), got: m.rsplit(' ').next().unwrap_or("").to_string() })
        }
        Err(Error::Io { context, source }) if context == "read blob stream" => {
            Err(RegistryError::Transport(format!("{what}: the transfer broke off: {source}")))
        }
        Err(e) => Err(e.into()),
    }
}

/// A zstd layer becomes its uncompressed tar in the store (the store unpacks tar and
/// gzip only); its digest is then the diff id, checked while it streams.
fn decompress_zstd(store: &Store, blob: &str, diff_id: &str) -> RResult<u64> {
    let f = std::fs::File::open(store.blob_path(blob)?).map_err(|e| Error::Io { context: format!("open {blob}"), source: e })?;
    let dec = zstd::stream::read::Decoder::new(f).map_err(|e| Error::Io { context: format!("zstd {blob}"), source: e })?;
    let (_, size) = store.put_blob_from(dec, Some(diff_id)).map_err(|e| match e {
        Error::InvalidArgument(m) => RegistryError::DigestMismatch { what: format!("layer {blob} (uncompressed)"), expected: diff_id.to_string(), got: m },
        e => e.into(),
    })?;
    Ok(size)
}

/// Downloads everything `r` needs that the store lacks. `want` is the platform to
/// pick from an index (see [`resolve`]). Emits "Pulling from" once the manifest is
/// known, so a missing image fails before any progress line.
pub fn fetch(client: &Client, store: &Store, r: &Reference, want: Option<&platform::Platform>, progress: &ProgressFn) -> RResult<Fetched> {
    let (manifest, digest) = resolve(client, r, want)?;
    let tag_or_digest = r.tag.clone().or_else(|| r.digest.clone()).unwrap_or_default();
    progress(Progress::Status { id: Some(tag_or_digest), text: format!("Pulling from {}", r.repository) });
    let mut new_blobs = Vec::new();
    let result = fetch_blobs(client, store, r, &manifest, progress, &mut new_blobs);
    match result {
        Ok((config, layers)) => Ok(Fetched {
            config,
            layers,
            digest,
            new_blobs,
            remote_layers: manifest.layers.iter().map(|l| l.digest.clone()).collect(),
            annotations: manifest.annotations.clone(),
        }),
        Err(e) => {
            // Complete blobs this pull added are dropped too: nothing uses them yet.
            for b in &new_blobs {
                let _ = store.remove_blob(b);
            }
            Err(e)
        }
    }
}

/// A layer as fetched: (digest, media type, size).
type LayerBlob = (String, String, u64);

fn fetch_blobs(client: &Client, store: &Store, r: &Reference, m: &Manifest, progress: &ProgressFn, new_blobs: &mut Vec<String>) -> RResult<(Vec<u8>, Vec<LayerBlob>)> {
    let repo = &r.repository;
    let cfg = m.config.as_ref().ok_or_else(|| RegistryError::Protocol(format!("{}: manifest without a config", r.familiar_name())))?;
    for d in std::iter::once(cfg).chain(&m.layers) {
        reference::validate_digest(&d.digest).map_err(|_| RegistryError::Protocol(format!("bad digest {} in manifest", d.digest)))?;
    }
    if !store.has_blob(&cfg.digest) {
        let resp = client.send_ok(client.request(Method::GET, &format!("/v2/{repo}/blobs/{}", cfg.digest)), &format!("config {}", cfg.digest))?;
        let bytes = read_capped(resp, MAX_MANIFEST, "image config")?;
        check_digest(&bytes, &cfg.digest, "image config")?;
        store.put_blob(&bytes)?;
        new_blobs.push(cfg.digest.clone());
    }
    let config = store.read_blob(&cfg.digest)?;
    if wasm_artifact::is_artifact(m) {
        return fetch_wasm_artifact(client, store, repo, m, &config, progress, new_blobs);
    }
    let diff_ids = ImageConfig::parse(&config)?.rootfs.diff_ids;
    if diff_ids.len() != m.layers.len() {
        return Err(RegistryError::Protocol(format!("the image config lists {} layers, the manifest {}", diff_ids.len(), m.layers.len())));
    }
    // What each layer is stored as: zstd ones as their uncompressed tar.
    let mut plan = Vec::new();
    for (d, diff_id) in m.layers.iter().zip(&diff_ids) {
        let c = compression(&d.media_type)?;
        let stored = if c == Compression::Zstd { diff_id.clone() } else { d.digest.clone() };
        let present = store.has_blob(&stored);
        let id = short_id(&d.digest);
        progress(Progress::Layer { id, state: if present { LayerState::AlreadyExists } else { LayerState::PullingFsLayer } });
        plan.push((d.clone(), c, stored, present, diff_id.clone()));
    }
    let todo: Vec<usize> = (0..plan.len()).filter(|i| !plan[*i].3).collect();
    for i in todo.iter().skip(CONCURRENT_DOWNLOADS) {
        progress(Progress::Layer { id: short_id(&plan[*i].0.digest), state: LayerState::Waiting });
    }
    // A few worker threads take layers in order; the first error stops the others
    // from starting more.
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<RegistryError>> = Mutex::new(None);
    let added: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let sizes: Mutex<Vec<(usize, u64)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..CONCURRENT_DOWNLOADS.min(todo.len()) {
            s.spawn(|| loop {
                if failed.load(Ordering::SeqCst) {
                    return;
                }
                let k = next.fetch_add(1, Ordering::SeqCst);
                let Some(&i) = todo.get(k) else { return };
                let (d, c, stored, _, diff_id) = &plan[i];
                let id = short_id(&d.digest);
                let _fetching = store.fetching(stored);
                if store.has_blob(stored) {
                    // Another pull fetched it while this one waited.
                    let size = store.blob_path(stored).ok().and_then(|p| std::fs::metadata(p).ok()).map_or(d.size, |m| m.len());
                    progress(Progress::Layer { id, state: LayerState::DownloadComplete });
                    sizes.lock().unwrap_or_else(|p| p.into_inner()).push((i, size));
                    continue;
                }
                let res = download(client, store, repo, d, &id, progress).and_then(|size| {
                    added.lock().unwrap_or_else(|p| p.into_inner()).push(d.digest.clone());
                    if *c == Compression::Zstd {
                        let size = decompress_zstd(store, &d.digest, diff_id)?;
                        added.lock().unwrap_or_else(|p| p.into_inner()).push(stored.clone());
                        // The compressed copy is not needed once its tar is stored.
                        let _ = store.remove_blob(&d.digest);
                        Ok(size)
                    } else {
                        Ok(size)
                    }
                });
                match res {
                    Ok(size) => {
                        progress(Progress::Layer { id, state: LayerState::DownloadComplete });
                        sizes.lock().unwrap_or_else(|p| p.into_inner()).push((i, size));
                    }
                    Err(e) => {
                        failed.store(true, Ordering::SeqCst);
                        first_error.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
                        return;
                    }
                }
            });
        }
    });
    new_blobs.extend(added.into_inner().unwrap_or_else(|p| p.into_inner()));
    if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    let sizes = sizes.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut layers = Vec::new();
    for (i, (d, c, stored, _, _)) in plan.iter().enumerate() {
        let size = match sizes.iter().find(|(j, _)| *j == i) {
            Some((_, s)) => *s,
            None => std::fs::metadata(store.blob_path(stored)?).map(|m| m.len()).unwrap_or(d.size),
        };
        let media_type = match c {
            Compression::Gzip => MEDIA_TYPE_LAYER_GZIP,
            Compression::None | Compression::Zstd => MEDIA_TYPE_LAYER_TAR,
        };
        layers.push((stored.clone(), media_type.to_string(), size));
    }
    Ok((config, layers))
}

/// Downloads a wasm artifact's modules and turns it into an image (see
/// `wasm_artifact`). Modules are small: one at a time.
fn fetch_wasm_artifact(client: &Client, store: &Store, repo: &str, m: &Manifest, config: &[u8], progress: &ProgressFn, new_blobs: &mut Vec<String>) -> RResult<(Vec<u8>, Vec<LayerBlob>)> {
    for d in &m.layers {
        let id = short_id(&d.digest);
        if store.has_blob(&d.digest) {
            progress(Progress::Layer { id, state: LayerState::AlreadyExists });
            continue;
        }
        progress(Progress::Layer { id: id.clone(), state: LayerState::PullingFsLayer });
        download(client, store, repo, d, &id, progress)?;
        new_blobs.push(d.digest.clone());
        progress(Progress::Layer { id, state: LayerState::DownloadComplete });
    }
    let converted = wasm_artifact::convert(store, config, &m.layers)?;
    new_blobs.extend(converted.added);
    Ok((converted.config, converted.layers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_media_types() {
        assert_eq!(compression("application/vnd.docker.image.rootfs.diff.tar.gzip").unwrap(), Compression::Gzip);
        assert_eq!(compression("application/vnd.oci.image.layer.v1.tar+zstd").unwrap(), Compression::Zstd);
        assert_eq!(compression(MEDIA_TYPE_LAYER_TAR).unwrap(), Compression::None);
        assert!(matches!(compression("application/x-foo"), Err(RegistryError::Unsupported(_))));
    }

    #[test]
    fn zstd_layers_are_stored_as_their_tar() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let tar = b"pretend this is a tar".repeat(100);
        let z = zstd::stream::encode_all(&tar[..], 3).unwrap();
        let zd = s.put_blob(&z).unwrap();
        let diff_id = crate::store::sha256_digest(&tar);
        assert_eq!(decompress_zstd(&s, &zd, &diff_id).unwrap(), tar.len() as u64);
        assert_eq!(s.read_blob(&diff_id).unwrap(), tar);
        let wrong = format!("sha256:{}", "1".repeat(64));
        assert!(matches!(decompress_zstd(&s, &zd, &wrong), Err(RegistryError::DigestMismatch { .. })));
        assert!(!s.has_blob(&wrong));
    }
}
