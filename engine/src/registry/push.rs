//! Pushing: each blob the registry lacks (HEAD) is mounted from another repository
//! of the same registry when we know one that has it, else uploaded, in one PUT
//! when small and in PATCH chunks when large; the manifest goes last, so the
//! registry never holds a manifest naming a missing blob.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::blocking::Body;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde_json::json;

use super::client::{error_from, Client};
use super::lab_names::LabNames;
use crate::manifest::OCI_MANIFEST;
use super::{short_id, BlobSources, LayerState, Progress, ProgressFn, RResult, RegistryError, Transfer};
use crate::error::Error;
use crate::image::LayerRef;
use crate::reference::Reference;
use crate::store::Store;

use crate::manifest::OCI_CONFIG as MEDIA_TYPE_CONFIG;
/// Docker's default `max-concurrent-uploads`.
const CONCURRENT_UPLOADS: usize = 5;
/// Blobs up to this size go in one PUT; larger ones in PATCH chunks of this size, so
/// one request never holds a huge body and a registry's request limits are respected.
pub const CHUNK: u64 = 8 << 20;

/// What to push: an image's config and layers as recorded.
pub struct PushImage<'a> {
    pub config: &'a [u8],
    pub config_digest: &'a str,
    pub layers: &'a [LayerRef],
}

fn io_err(what: String) -> impl FnOnce(std::io::Error) -> RegistryError {
    move |e| RegistryError::Engine(Error::Io { context: what, source: e })
}

/// Whether the registry already has `digest` in `repo`.
fn has_blob(client: &Client, repo: &str, digest: &str) -> RResult<bool> {
    let r = client.send(client.request(Method::HEAD, &format!("/v2/{repo}/blobs/{digest}")))?;
    match r.status() {
        s if s.is_success() => Ok(true),
        StatusCode::NOT_FOUND => Ok(false),
        _ => Err(error_from(&format!("checking blob {digest}"), r)),
    }
}

fn with_digest(location: &str, digest: &str) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={digest}")
}

/// Sends `len` bytes of the file at `offset` as a request body, counting them into
/// `sent` as the HTTP client reads them.
fn body_of(path: &Path, offset: u64, len: u64, sent: Arc<AtomicU64>) -> RResult<Body> {
    let mut f = std::fs::File::open(path).map_err(io_err(format!("open {}", path.display())))?;
    f.seek(SeekFrom::Start(offset)).map_err(io_err(format!("seek {}", path.display())))?;
    struct Counting<R> {
        inner: R,
        sent: Arc<AtomicU64>,
    }
    impl<R: Read> Read for Counting<R> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.sent.fetch_add(n as u64, Ordering::Relaxed);
            Ok(n)
        }
    }
    Ok(Body::sized(Counting { inner: f.take(len), sent }, len))
}

/// Uploads one blob from the store. `location` is an upload session already opened
/// (by a mount attempt the registry answered with 202), else one is opened here.
fn upload(client: &Client, store: &Store, repo: &str, digest: &str, location: Option<String>, id: Option<&str>, progress: &ProgressFn) -> RResult<()> {
    let path = store.blob_path(digest)?;
    let size = std::fs::metadata(&path).map_err(io_err(format!("stat {}", path.display())))?.len();
    let mut location = match location {
        Some(l) => l,
        None => {
            let r = client.send_ok(client.request(Method::POST, &format!("/v2/{repo}/blobs/uploads/")).header(CONTENT_LENGTH, "0"), &format!("starting the upload of {digest}"))?;
            client.location(r.headers())?
        }
    };
    let sent = Arc::new(AtomicU64::new(0));
    let done = AtomicBool::new(false);
    std::thread::scope(|s| -> RResult<()> {
        // Reports bytes sent while the HTTP client streams the body.
        if let Some(id) = id {
            let (sent, done) = (sent.clone(), &done);
            s.spawn(move || {
                let mut last = u64::MAX;
                while !done.load(Ordering::SeqCst) {
                    let now = sent.load(Ordering::Relaxed);
                    if now != last {
                        progress(Progress::Bytes { id: id.to_string(), action: Transfer::Pushing, current: now, total: size });
                        last = now;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
        }
        let result = (|| {
            let what = format!("uploading {digest}");
            if size <= CHUNK {
                let req = client
                    .request(Method::PUT, &with_digest(&location, digest))
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, size)
                    .body(body_of(&path, 0, size, sent.clone())?);
                client.send_ok(req, &what)?;
                return Ok(());
            }
            let mut offset = 0;
            while offset < size {
                let len = CHUNK.min(size - offset);
                let req = client
                    .request(Method::PATCH, &location)
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, len)
                    .header("Content-Range", format!("{offset}-{}", offset + len - 1))
                    .body(body_of(&path, offset, len, sent.clone())?);
                let r = client.send_ok(req, &what)?;
                location = client.location(r.headers())?;
                offset += len;
            }
            client.send_ok(client.request(Method::PUT, &with_digest(&location, digest)).header(CONTENT_LENGTH, "0"), &what)?;
            Ok(())
        })();
        done.store(true, Ordering::SeqCst);
        result
    })
}

/// Where a push goes: the repository, and for a lab session its names (see
/// [`LabNames`]).
struct Dest<'a> {
    target: &'a Reference,
    names: Option<&'a LabNames>,
}

/// Puts one blob in the destination's repository unless it is there: HEAD, then a
/// mount from a repository of the same registry known to hold it, then an upload.
/// A lab session mounts only from repositories it may see, and sees them by its own
/// names: another session's would tell it who has which layers.
/// Returns the layer's final state for the progress line.
fn put_blob(client: &Client, store: &Store, root: &Path, dest: &Dest, digest: &str, id: Option<&str>, progress: &ProgressFn) -> RResult<LayerState> {
    let (target, names) = (dest.target, dest.names);
    let repo = &target.repository;
    if has_blob(client, repo, digest)? {
        return Ok(LayerState::LayerAlreadyExists);
    }
    let mut location = None;
    let prefix = format!("{}/", target.registry);
    let sources = BlobSources::get(root, digest);
    let visible = sources
        .iter()
        .filter_map(|s| s.strip_prefix(&prefix))
        .filter(|r| *r != repo)
        .filter_map(|r| match names {
            Some(n) => n.shown(r).map(|shown| (r, shown)),
            None => Some((r, r.to_string())),
        });
    for (from, shown) in visible {
        let req = client.request(Method::POST, &format!("/v2/{repo}/blobs/uploads/?mount={digest}&from={from}")).header(CONTENT_LENGTH, "0");
        let r = client.send(req)?;
        match r.status() {
            StatusCode::CREATED => return Ok(LayerState::MountedFrom(shown)),
            // The registry could not mount (no access to `from`, or it lost the blob)
            // and opened an ordinary upload instead: use it.
            StatusCode::ACCEPTED => {
                location = Some(client.location(r.headers())?);
                break;
            }
            _ => continue,
        }
    }
    upload(client, store, repo, digest, location, id, progress)?;
    Ok(LayerState::Pushed)
}

/// The OCI image manifest of `img` as pushed (and as Berth publishes its seed images
/// into its own registry).
pub fn image_manifest(store: &Store, img: &PushImage) -> RResult<Vec<u8>> {
    let mut layers = Vec::new();
    for l in img.layers {
        let size = std::fs::metadata(store.blob_path(&l.digest)?).map(|m| m.len()).unwrap_or(l.size);
        layers.push(json!({ "mediaType": l.media_type, "digest": l.digest, "size": size }));
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": MEDIA_TYPE_CONFIG, "digest": img.config_digest, "size": img.config.len() },
        "layers": layers,
    });
    Ok(serde_json::to_vec(&manifest).map_err(|e| Error::Json { context: "encode manifest".into(), source: e })?)
}

/// Pushes `img` as `target` (which carries the tag; for a lab session, the session's
/// own repository, see [`LabNames`]). Returns the manifest's digest and size.
pub fn push(client: &Client, store: &Store, root: &Path, target: &Reference, names: Option<&LabNames>, img: &PushImage, progress: &ProgressFn) -> RResult<(String, usize)> {
    let tag = target.tag.clone().unwrap_or_else(|| crate::reference::DEFAULT_TAG.to_string());
    // Top layer first, as Docker lists them; a layer shared twice is pushed once.
    let mut order: Vec<&LayerRef> = Vec::new();
    for l in img.layers.iter().rev() {
        if !order.iter().any(|o| o.digest == l.digest) {
            order.push(l);
        }
    }
    for l in &order {
        progress(Progress::Layer { id: short_id(&l.digest), state: LayerState::Preparing });
    }
    for l in order.iter().skip(CONCURRENT_UPLOADS) {
        progress(Progress::Layer { id: short_id(&l.digest), state: LayerState::Waiting });
    }
    let dest = Dest { target, names };
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<RegistryError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..CONCURRENT_UPLOADS.min(order.len()) {
            s.spawn(|| loop {
                if failed.load(Ordering::SeqCst) {
                    return;
                }
                let Some(l) = order.get(next.fetch_add(1, Ordering::SeqCst)) else { return };
                let id = short_id(&l.digest);
                match put_blob(client, store, root, &dest, &l.digest, Some(&id), progress) {
                    Ok(state) => progress(Progress::Layer { id, state }),
                    Err(e) => {
                        failed.store(true, Ordering::SeqCst);
                        first_error.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(e);
                        return;
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    put_blob(client, store, root, &dest, img.config_digest, None, progress)?;
    let bytes = image_manifest(store, img)?;
    let digest = crate::store::sha256_digest(&bytes);
    let size = bytes.len();
    let req = client.request(Method::PUT, &format!("/v2/{}/manifests/{tag}", target.repository)).header(CONTENT_TYPE, OCI_MANIFEST).body(bytes);
    client.send_ok(req, &format!("pushing the manifest of {}", target.familiar()))?;
    let mut blobs: Vec<String> = img.layers.iter().map(|l| l.digest.clone()).collect();
    blobs.push(img.config_digest.to_string());
    BlobSources::add(root, &target.registry, &target.repository, &blobs);
    progress(Progress::Status { id: None, text: format!("{tag}: digest: {digest} size: {size}") });
    progress(Progress::Pushed { tag, digest: digest.clone(), size });
    Ok((digest, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_goes_into_the_upload_location() {
        assert_eq!(with_digest("http://r/v2/x/blobs/uploads/u?_state=s", "sha256:ab"), "http://r/v2/x/blobs/uploads/u?_state=s&digest=sha256:ab");
        assert_eq!(with_digest("http://r/v2/x/blobs/uploads/u", "sha256:ab"), "http://r/v2/x/blobs/uploads/u?digest=sha256:ab");
    }
}
