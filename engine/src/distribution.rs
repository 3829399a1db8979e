//! Berth's own registry storage: what the OCI distribution API (`/v2/…`, served by
//! `berth serve` on its own listener) reads and writes. No HTTP here.
//!
//! Blob bytes live once, in the engine's content store (`<root>/blobs/sha256/<hex>`).
//! The registry keeps a hard link to each blob it holds, so an `rmi` that lets the
//! image store drop a blob never takes it from the registry (and the other way round),
//! and there is still one copy of the bytes on disk.
//!
//! ```text
//! <root>/registry/blobs/sha256/<hex>        hard link to the content store's blob
//! <root>/registry/repos/<name>/_repo.json   tags, manifests, blobs of one repository
//! <root>/registry/uploads/<id>              bytes of an upload in progress
//! <root>/registry/uploads/<id>.json         which repository the upload belongs to
//! ```
//!
//! Registry repositories are not the engine's per-namespace tags: pushing to the
//! registry never tags an image in any namespace. A repository name component starts
//! with a letter or digit, so `_repo.json` can never clash with a nested repository.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::Context;
use crate::fsutil;
use crate::store::Store;

/// Largest manifest accepted, as distribution does (4 MiB): manifests are read whole.
pub const MAX_MANIFEST_SIZE: usize = 4 << 20;

pub use crate::manifest::{
    DOCKER_LIST as MEDIA_TYPE_DOCKER_LIST, DOCKER_MANIFEST as MEDIA_TYPE_DOCKER_MANIFEST, OCI_INDEX as MEDIA_TYPE_OCI_INDEX,
    OCI_MANIFEST as MEDIA_TYPE_OCI_MANIFEST,
};

/// The distribution spec's error codes; the HTTP layer maps each to its status.
#[derive(Debug, thiserror::Error)]
pub enum DistError {
    #[error("blob unknown to registry: {0}")]
    BlobUnknown(String),
    #[error("blob upload invalid: {0}")]
    BlobUploadInvalid(String),
    #[error("blob upload unknown to registry: {0}")]
    BlobUploadUnknown(String),
    /// A chunk that does not start where the upload ends (HTTP 416).
    #[error("requested range not satisfiable: {0}")]
    RangeInvalid(String),
    #[error("provided digest did not match uploaded content: {0}")]
    DigestInvalid(String),
    #[error("blob unknown to registry: {0}")]
    ManifestBlobUnknown(String),
    #[error("manifest invalid: {0}")]
    ManifestInvalid(String),
    #[error("manifest unknown: {0}")]
    ManifestUnknown(String),
    #[error("invalid repository name: {0}")]
    NameInvalid(String),
    #[error("repository name not known to registry: {0}")]
    NameUnknown(String),
    #[error("provided length did not match content length: {0}")]
    SizeInvalid(String),
    #[error("pagination number invalid: {0}")]
    PaginationInvalid(String),
    #[error(transparent)]
    Engine(#[from] crate::Error),
}

impl DistError {
    /// The spec's code string (`BLOB_UNKNOWN`, …); internal failures are `UNKNOWN`.
    pub fn code(&self) -> &'static str {
        match self {
            DistError::BlobUnknown(_) => "BLOB_UNKNOWN",
            DistError::BlobUploadInvalid(_) | DistError::RangeInvalid(_) => "BLOB_UPLOAD_INVALID",
            DistError::BlobUploadUnknown(_) => "BLOB_UPLOAD_UNKNOWN",
            DistError::DigestInvalid(_) => "DIGEST_INVALID",
            DistError::ManifestBlobUnknown(_) => "MANIFEST_BLOB_UNKNOWN",
            DistError::ManifestInvalid(_) => "MANIFEST_INVALID",
            DistError::ManifestUnknown(_) => "MANIFEST_UNKNOWN",
            DistError::NameInvalid(_) => "NAME_INVALID",
            DistError::NameUnknown(_) => "NAME_UNKNOWN",
            DistError::SizeInvalid(_) => "SIZE_INVALID",
            DistError::PaginationInvalid(_) => "PAGINATION_NUMBER_INVALID",
            DistError::Engine(_) => "UNKNOWN",
        }
    }

    /// The `detail` member of the error body: the offending name, digest or reference.
    pub fn detail(&self) -> String {
        match self {
            DistError::Engine(e) => e.to_string(),
            DistError::BlobUnknown(d)
            | DistError::BlobUploadInvalid(d)
            | DistError::BlobUploadUnknown(d)
            | DistError::RangeInvalid(d)
            | DistError::DigestInvalid(d)
            | DistError::ManifestBlobUnknown(d)
            | DistError::ManifestInvalid(d)
            | DistError::ManifestUnknown(d)
            | DistError::NameInvalid(d)
            | DistError::NameUnknown(d)
            | DistError::SizeInvalid(d)
            | DistError::PaginationInvalid(d) => d.clone(),
        }
    }
}

pub type DResult<T> = std::result::Result<T, DistError>;

/// What the registry remembers of one manifest, enough to answer HEAD, the referrers
/// API and search without reparsing it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ManifestMeta {
    pub media_type: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// The config blob (image manifests) or the first child (indexes), for search.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<String>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct RepoMeta {
    tags: BTreeMap<String, String>,
    manifests: BTreeMap<String, ManifestMeta>,
    /// Blobs pushed to or mounted into this repository.
    blobs: BTreeSet<String>,
    /// Manifest downloads, shown by search as the pull count.
    #[serde(default)]
    pulls: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct UploadMeta {
    repo: String,
}

/// One line of `docker search`: the same type the registry client reads.
pub use crate::registry::search::SearchResult;

/// A manifest as served: its bytes, digest and media type.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub digest: String,
    pub media_type: String,
    pub bytes: Vec<u8>,
}

/// The answer to a manifest PUT.
#[derive(Debug, Clone)]
pub struct PutManifest {
    pub digest: String,
    /// The `subject` the manifest refers to, echoed as `OCI-Subject`.
    pub subject: Option<String>,
}

/// A running upload's hash, kept in memory between PATCH requests so the bytes are
/// hashed once, as they stream in. Lost on restart; the file is then rehashed.
struct UploadHash {
    offset: u64,
    hasher: Sha256,
}

pub struct Registry {
    dir: PathBuf,
    store: Store,
    /// Serialises read-modify-write of the repositories' metadata files.
    meta_lock: Mutex<()>,
    hashes: Mutex<HashMap<String, UploadHash>>,
}

/// Repository names as the distribution spec allows them: lower-case components
/// joined by `/`, each `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`. This also keeps names from
/// escaping `repos/` (`..`, absolute paths).
pub fn validate_name(name: &str) -> DResult<()> {
    let bad = || DistError::NameInvalid(name.to_string());
    if name.is_empty() || name.len() > 255 {
        return Err(bad());
    }
    for comp in name.split('/') {
        let b = comp.as_bytes();
        let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        if b.is_empty() || !alnum(&b[0]) || !alnum(&b[b.len() - 1]) {
            return Err(bad());
        }
        let mut i = 0;
        while i < b.len() {
            if alnum(&b[i]) {
                i += 1;
                continue;
            }
            // A separator run: ".", "_", "__" or "-+", always followed by alnum.
            let start = i;
            while i < b.len() && !alnum(&b[i]) {
                i += 1;
            }
            let sep = &comp[start..i];
            let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-');
            if !ok {
                return Err(bad());
            }
        }
    }
    Ok(())
}

fn validate_tag(tag: &str) -> DResult<()> {
    let b = tag.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(DistError::ManifestInvalid(format!("invalid tag: {tag}")))
    }
}

fn validate_digest(d: &str) -> DResult<()> {
    crate::reference::validate_digest(d).map_err(|_| DistError::DigestInvalid(format!("unsupported or invalid digest: {d}")))
}

fn is_digest(reference: &str) -> bool {
    reference.contains(':')
}

/// Pages a sorted list as the spec's `n` and `last` ask: entries after `last`, at most
/// `n`. Returns the page and whether more follow.
fn paginate(all: impl Iterator<Item = String>, n: Option<usize>, last: Option<&str>) -> (Vec<String>, bool) {
    let mut rest = all.filter(|x| last.is_none_or(|l| x.as_str() > l));
    match n {
        None => (rest.collect(), false),
        Some(n) => {
            let page: Vec<String> = rest.by_ref().take(n).collect();
            let more = rest.next().is_some();
            (page, more)
        }
    }
}

impl Registry {
    /// Opens the registry of the engine state root `root` (creating it).
    pub fn open(root: &Path) -> DResult<Registry> {
        let dir = root.join("registry");
        for d in ["blobs/sha256", "repos", "uploads"] {
            fs::create_dir_all(dir.join(d)).ctx(|| format!("create {}", dir.join(d).display()))?;
        }
        Ok(Registry { store: Store::open(root)?, dir, meta_lock: Mutex::new(()), hashes: Mutex::new(HashMap::new()) })
    }

    fn repo_path(&self, name: &str) -> PathBuf {
        self.dir.join("repos").join(name).join("_repo.json")
    }

    fn link_path(&self, digest: &str) -> PathBuf {
        self.dir.join("blobs/sha256").join(&digest[7..])
    }

    fn load(&self, name: &str) -> DResult<Option<RepoMeta>> {
        validate_name(name)?;
        Ok(fsutil::read_json(&self.repo_path(name))?)
    }

    fn load_existing(&self, name: &str) -> DResult<RepoMeta> {
        self.load(name)?.ok_or_else(|| DistError::NameUnknown(name.to_string()))
    }

    fn save(&self, name: &str, meta: &RepoMeta) -> DResult<()> {
        Ok(fsutil::write_json(&self.repo_path(name), meta)?)
    }

    /// Changes one repository's metadata under the lock (created when missing).
    fn update<T>(&self, name: &str, f: impl FnOnce(&mut RepoMeta) -> DResult<T>) -> DResult<T> {
        let _g = self.meta_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut meta = self.load(name)?.unwrap_or_default();
        let out = f(&mut meta)?;
        self.save(name, &meta)?;
        Ok(out)
    }

    pub fn repo_exists(&self, name: &str) -> bool {
        matches!(self.load(name), Ok(Some(_)))
    }

    /// The registry's own link to a blob, re-linked from the content store (or back
    /// into it) when one side lost it; `None` when neither has it.
    fn blob_file(&self, digest: &str) -> DResult<Option<PathBuf>> {
        validate_digest(digest)?;
        let link = self.link_path(digest);
        let stored = self.store.blob_path(digest)?;
        match (link.exists(), stored.exists()) {
            (true, false) => {
                // The image store collected it; give the bytes back their store name.
                let _ = fs::hard_link(&link, &stored);
                Ok(Some(link))
            }
            (true, true) => Ok(Some(link)),
            (false, true) => {
                self.link(digest)?;
                Ok(Some(link))
            }
            (false, false) => Ok(None),
        }
    }

    fn link(&self, digest: &str) -> DResult<()> {
        let link = self.link_path(digest);
        let stored = self.store.blob_path(digest)?;
        match fs::hard_link(&stored, &link) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            // Another filesystem (should not happen under one root): keep a copy.
            Err(_) => {
                let bytes = fs::read(&stored).ctx(|| format!("read {}", stored.display()))?;
                Ok(fsutil::write_atomic(&link, &bytes)?)
            }
        }
    }

    /// A blob of repository `name`: its file and size. BLOB_UNKNOWN when the
    /// repository does not hold it.
    pub fn blob(&self, name: &str, digest: &str) -> DResult<(PathBuf, u64)> {
        validate_digest(digest)?;
        let meta = self.load_existing(name)?;
        if !meta.blobs.contains(digest) {
            return Err(DistError::BlobUnknown(digest.to_string()));
        }
        let path = self.blob_file(digest)?.ok_or_else(|| DistError::BlobUnknown(digest.to_string()))?;
        let size = fs::metadata(&path).ctx(|| format!("stat {}", path.display()))?.len();
        Ok((path, size))
    }

    /// Moves a verified temp file into the content store and the registry, and records
    /// the blob in repository `name`. The temp file is consumed.
    fn commit_blob(&self, name: &str, tmp: &Path, digest: &str) -> DResult<()> {
        let stored = self.store.blob_path(digest)?;
        if stored.exists() || self.link_path(digest).exists() {
            let _ = fs::remove_file(tmp);
            self.blob_file(digest)?;
        } else {
            fs::rename(tmp, &stored).ctx(|| format!("rename to {}", stored.display()))?;
            self.link(digest)?;
        }
        self.update(name, |m| {
            m.blobs.insert(digest.to_string());
            Ok(())
        })
    }

    /// Streams a whole blob in (monolithic upload, or a mirror's download): it becomes
    /// visible only if its bytes hash to `digest`; otherwise nothing is kept.
    pub fn ingest_blob(&self, name: &str, digest: &str, mut r: impl Read) -> DResult<u64> {
        validate_name(name)?;
        validate_digest(digest)?;
        let tmp = self.dir.join("uploads").join(format!("ingest-{}", fsutil::random_id()));
        let result = (|| -> DResult<u64> {
            let mut f = fs::File::create(&tmp).ctx(|| format!("create {}", tmp.display()))?;
            let mut h = Sha256::new();
            let size = copy_hashing(&mut r, &mut f, &mut h)?;
            f.sync_all().ctx(|| format!("fsync {}", tmp.display()))?;
            let got = format!("sha256:{}", hex::encode(h.finalize()));
            if got != digest {
                return Err(DistError::DigestInvalid(format!("expected {digest}, got {got}")));
            }
            self.commit_blob(name, &tmp, digest)?;
            Ok(size)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    /// Starts an upload session; returns its id.
    pub fn start_upload(&self, name: &str) -> DResult<String> {
        validate_name(name)?;
        let id = fsutil::random_id();
        let data = self.dir.join("uploads").join(&id);
        fs::File::create(&data).ctx(|| format!("create {}", data.display()))?;
        fsutil::write_json(&self.upload_meta_path(&id), &UploadMeta { repo: name.to_string() })?;
        self.hashes.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone(), UploadHash { offset: 0, hasher: Sha256::new() });
        Ok(id)
    }

    fn upload_meta_path(&self, id: &str) -> PathBuf {
        self.dir.join("uploads").join(format!("{id}.json"))
    }

    /// The data file of upload `id` of repository `name`, checked.
    fn upload_file(&self, name: &str, id: &str) -> DResult<PathBuf> {
        validate_name(name)?;
        let unknown = || DistError::BlobUploadUnknown(id.to_string());
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(unknown());
        }
        let meta: UploadMeta = fsutil::read_json(&self.upload_meta_path(id))?.ok_or_else(unknown)?;
        if meta.repo != name {
            return Err(unknown());
        }
        Ok(self.dir.join("uploads").join(id))
    }

    /// Bytes received so far by upload `id`.
    pub fn upload_offset(&self, name: &str, id: &str) -> DResult<u64> {
        let p = self.upload_file(name, id)?;
        Ok(fs::metadata(&p).ctx(|| format!("stat {}", p.display()))?.len())
    }

    /// Appends a chunk. `start` is the chunk's first byte (from `Content-Range`), which
    /// must be where the upload ends. A chunk cut off halfway is rolled back, so the
    /// client can ask for the offset and resend. Returns the new length.
    pub fn append_upload(&self, name: &str, id: &str, start: Option<u64>, mut r: impl Read) -> DResult<u64> {
        let path = self.upload_file(name, id)?;
        let mut f = fs::OpenOptions::new().append(true).open(&path).ctx(|| format!("open {}", path.display()))?;
        let offset = f.metadata().ctx(|| format!("stat {}", path.display()))?.len();
        if let Some(s) = start {
            if s != offset {
                return Err(DistError::RangeInvalid(format!("chunk starts at {s}, upload is at {offset}")));
            }
        }
        let mut state = self.hashes.lock().unwrap_or_else(|p| p.into_inner()).remove(id).filter(|h| h.offset == offset);
        let mut scratch = Sha256::new();
        let hasher = state.as_mut().map(|s| &mut s.hasher).unwrap_or(&mut scratch);
        match copy_hashing(&mut r, &mut f, hasher).and_then(|n| {
            f.sync_data().ctx(|| format!("fsync {}", path.display()))?;
            Ok(n)
        }) {
            Ok(n) => {
                if let Some(mut s) = state {
                    s.offset = offset + n;
                    self.hashes.lock().unwrap_or_else(|p| p.into_inner()).insert(id.to_string(), s);
                }
                Ok(offset + n)
            }
            Err(e) => {
                // Roll back to the chunk's start; the in-memory hash is dropped and the
                // file rehashed at the end.
                let _ = f.set_len(offset);
                Err(e)
            }
        }
    }

    /// Completes an upload with its last chunk (maybe empty): the bytes must hash to
    /// `digest`, or the upload is refused with DIGEST_INVALID and nothing is stored.
    pub fn finish_upload(&self, name: &str, id: &str, digest: &str, start: Option<u64>, last: impl Read) -> DResult<u64> {
        validate_digest(digest)?;
        let size = self.append_upload(name, id, start, last)?;
        let path = self.upload_file(name, id)?;
        let state = self.hashes.lock().unwrap_or_else(|p| p.into_inner()).remove(id).filter(|h| h.offset == size);
        let got = match state {
            Some(s) => format!("sha256:{}", hex::encode(s.hasher.finalize())),
            None => {
                let mut f = fs::File::open(&path).ctx(|| format!("open {}", path.display()))?;
                let mut h = Sha256::new();
                copy_hashing(&mut f, &mut io::sink(), &mut h)?;
                format!("sha256:{}", hex::encode(h.finalize()))
            }
        };
        let result = if got != digest {
            Err(DistError::DigestInvalid(format!("expected {digest}, got {got}")))
        } else {
            self.commit_blob(name, &path, digest)
        };
        // Either way the session is over: a refused upload is not kept.
        self.cancel_upload_files(id);
        result.map(|()| size)
    }

    fn cancel_upload_files(&self, id: &str) {
        let _ = fs::remove_file(self.dir.join("uploads").join(id));
        let _ = fs::remove_file(self.upload_meta_path(id));
        self.hashes.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }

    /// DELETE of an upload session.
    pub fn cancel_upload(&self, name: &str, id: &str) -> DResult<()> {
        self.upload_file(name, id)?;
        self.cancel_upload_files(id);
        Ok(())
    }

    /// Cross-repository mount: makes `digest` of repository `from` part of `name`
    /// without sending the bytes. `false` when `from` does not hold it (the client then
    /// uploads as usual).
    pub fn mount_blob(&self, name: &str, digest: &str, from: &str) -> DResult<bool> {
        validate_name(name)?;
        validate_digest(digest)?;
        if validate_name(from).is_err() || self.blob(from, digest).is_err() {
            return Ok(false);
        }
        self.update(name, |m| {
            m.blobs.insert(digest.to_string());
            Ok(())
        })?;
        Ok(true)
    }

    /// Removes a blob from a repository (the bytes stay while anything else uses them).
    pub fn delete_blob(&self, name: &str, digest: &str) -> DResult<()> {
        validate_digest(digest)?;
        self.load_existing(name)?;
        self.update(name, |m| {
            if m.blobs.remove(digest) {
                Ok(())
            } else {
                Err(DistError::BlobUnknown(digest.to_string()))
            }
        })
    }

    /// Resolves a tag or digest to a manifest digest in a repository.
    fn resolve(&self, meta: &RepoMeta, reference: &str) -> DResult<String> {
        let unknown = || DistError::ManifestUnknown(reference.to_string());
        if is_digest(reference) {
            validate_digest(reference)?;
            meta.manifests.contains_key(reference).then(|| reference.to_string()).ok_or_else(unknown)
        } else {
            meta.tags.get(reference).cloned().ok_or_else(unknown)
        }
    }

    /// A manifest by tag or digest. `count_pull` adds one to the repository's pull
    /// count (GET, not HEAD).
    pub fn manifest(&self, name: &str, reference: &str, count_pull: bool) -> DResult<Manifest> {
        let meta = self.load_existing(name)?;
        let digest = self.resolve(&meta, reference)?;
        let media_type = meta.manifests.get(&digest).map(|m| m.media_type.clone()).unwrap_or_default();
        let file = self.blob_file(&digest)?.ok_or_else(|| DistError::ManifestUnknown(reference.to_string()))?;
        let bytes = fs::read(&file).ctx(|| format!("read {}", file.display()))?;
        if count_pull {
            // Best effort: a lost count must not fail a pull.
            let _ = self.update(name, |m| {
                m.pulls += 1;
                Ok(())
            });
        }
        Ok(Manifest { digest, media_type, bytes })
    }

    /// Stores a manifest under `reference` (a tag, or its own digest). The media type
    /// comes from the body's `mediaType` or else `content_type`. With `check_refs`,
    /// every blob (config, layers) or child manifest (index) it names must already be
    /// in the repository: MANIFEST_BLOB_UNKNOWN otherwise. A mirror storing what its
    /// upstream sent passes `false`, since it fetches those lazily.
    pub fn put_manifest(
        &self,
        name: &str,
        reference: &str,
        content_type: Option<&str>,
        bytes: &[u8],
        check_refs: bool,
    ) -> DResult<PutManifest> {
        validate_name(name)?;
        if bytes.len() > MAX_MANIFEST_SIZE {
            return Err(DistError::SizeInvalid(format!("manifest larger than {MAX_MANIFEST_SIZE} bytes")));
        }
        let digest = crate::store::sha256_digest(bytes);
        if is_digest(reference) {
            validate_digest(reference)?;
            if reference != digest {
                return Err(DistError::DigestInvalid(format!("manifest digest is {digest}, not {reference}")));
            }
        } else {
            validate_tag(reference)?;
        }
        let parsed = parse_manifest(bytes, content_type)?;
        let existing = self.load(name)?.unwrap_or_default();
        if check_refs {
            for b in &parsed.blobs {
                if !existing.blobs.contains(b) || self.blob_file(b)?.is_none() {
                    return Err(DistError::ManifestBlobUnknown(b.clone()));
                }
            }
            for c in &parsed.meta.children {
                if !existing.manifests.contains_key(c) {
                    return Err(DistError::ManifestBlobUnknown(c.clone()));
                }
            }
        }
        let stored = self.store.put_blob(bytes)?;
        self.link(&stored)?;
        let subject = parsed.meta.subject.clone();
        self.update(name, |m| {
            m.manifests.insert(digest.clone(), parsed.meta);
            if !is_digest(reference) {
                m.tags.insert(reference.to_string(), digest.clone());
            }
            Ok(())
        })?;
        Ok(PutManifest { digest, subject })
    }

    /// Deletes a manifest by digest (and every tag on it) or, spec 1.1, just a tag.
    pub fn delete_manifest(&self, name: &str, reference: &str) -> DResult<()> {
        self.load_existing(name)?;
        self.update(name, |m| {
            if is_digest(reference) {
                validate_digest(reference)?;
                if m.manifests.remove(reference).is_none() {
                    return Err(DistError::ManifestUnknown(reference.to_string()));
                }
                m.tags.retain(|_, d| d != reference);
            } else if m.tags.remove(reference).is_none() {
                return Err(DistError::ManifestUnknown(reference.to_string()));
            }
            Ok(())
        })
    }

    /// A repository's tags, sorted, paged by `n` and `last`; `true` when more follow.
    pub fn tags(&self, name: &str, n: Option<usize>, last: Option<&str>) -> DResult<(Vec<String>, bool)> {
        let meta = self.load_existing(name)?;
        Ok(paginate(meta.tags.into_keys(), n, last))
    }

    /// Every repository name, sorted.
    pub fn repositories(&self) -> DResult<Vec<String>> {
        let base = self.dir.join("repos");
        let mut out = Vec::new();
        let mut stack = vec![base.clone()];
        while let Some(d) = stack.pop() {
            let Ok(rd) = fs::read_dir(&d) else { continue };
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if e.file_name() == "_repo.json" {
                    if let Some(name) = d.strip_prefix(&base).ok().and_then(|r| r.to_str()) {
                        out.push(name.to_string());
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// `_catalog`: repository names, paged like tags.
    pub fn catalog(&self, n: Option<usize>, last: Option<&str>) -> DResult<(Vec<String>, bool)> {
        Ok(paginate(self.repositories()?.into_iter(), n, last))
    }

    /// The referrers API: an OCI index of the manifests in `name` whose `subject` is
    /// `digest`, filtered by artifact type when asked. An unknown subject gives an
    /// empty index, as the spec wants.
    pub fn referrers(&self, name: &str, digest: &str, artifact_type: Option<&str>) -> DResult<serde_json::Value> {
        validate_digest(digest)?;
        let meta = self.load_existing(name)?;
        let manifests: Vec<serde_json::Value> = meta
            .manifests
            .iter()
            .filter(|(_, m)| m.subject.as_deref() == Some(digest))
            .filter(|(_, m)| artifact_type.is_none_or(|t| m.artifact_type.as_deref() == Some(t)))
            .map(|(d, m)| {
                let mut v = serde_json::json!({ "mediaType": m.media_type, "digest": d, "size": m.size });
                if let Some(t) = &m.artifact_type {
                    v["artifactType"] = t.clone().into();
                }
                if let Some(a) = &m.annotations {
                    v["annotations"] = serde_json::json!(a);
                }
                v
            })
            .collect();
        Ok(serde_json::json!({ "schemaVersion": 2, "mediaType": MEDIA_TYPE_OCI_INDEX, "manifests": manifests }))
    }

    /// Repositories whose name contains `term`, in Docker Hub's search shape, at most
    /// `limit`. The description is the image label `org.opencontainers.image.description`
    /// of the `latest` tag (or any tag).
    pub fn search(&self, term: &str, limit: usize) -> DResult<Vec<SearchResult>> {
        self.search_as(term, limit, &|name| Some(name.to_string()))
    }

    /// [`Registry::search`] as someone who sees repositories by other names: `view`
    /// gives the name shown for a repository, or None to hide it (a lab session sees
    /// its own without their prefix and never another session's). The term is
    /// matched against the names shown.
    pub fn search_as(&self, term: &str, limit: usize, view: &dyn Fn(&str) -> Option<String>) -> DResult<Vec<SearchResult>> {
        let term = term.to_ascii_lowercase();
        let mut out = Vec::new();
        for real in self.repositories()? {
            if out.len() >= limit {
                break;
            }
            let Some(name) = view(&real) else { continue };
            if !name.contains(&term) {
                continue;
            }
            let Ok(meta) = self.load_existing(&real) else { continue };
            let description = self.description(&meta).unwrap_or_default();
            // Docker Hub shows official images without `library/`.
            let (shown, official) = match name.strip_prefix("library/") {
                Some(short) => (short.to_string(), true),
                None => (name.clone(), false),
            };
            out.push(SearchResult {
                name: shown,
                description,
                star_count: 0,
                pull_count: meta.pulls,
                is_official: official,
                is_automated: false,
            });
        }
        Ok(out)
    }

    fn description(&self, meta: &RepoMeta) -> Option<String> {
        let digest = meta.tags.get("latest").or_else(|| meta.tags.values().next())?;
        let mut m = meta.manifests.get(digest)?;
        // An index: describe its first image.
        if m.config.is_none() {
            m = meta.manifests.get(m.children.first()?)?;
        }
        let config = fs::read(self.blob_file(m.config.as_deref()?).ok()??).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&config).ok()?;
        v["config"]["Labels"]["org.opencontainers.image.description"].as_str().map(str::to_string)
    }
}

struct ParsedManifest {
    meta: ManifestMeta,
    /// Blobs it needs: config and layers.
    blobs: Vec<String>,
}

/// Reads what the registry needs from a manifest or index: media type, referenced
/// blobs and children, subject, artifact type.
fn parse_manifest(bytes: &[u8], content_type: Option<&str>) -> DResult<ParsedManifest> {
    let v: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| DistError::ManifestInvalid(format!("not JSON: {e}")))?;
    let invalid = |m: &str| DistError::ManifestInvalid(m.to_string());
    if v["schemaVersion"].as_u64() != Some(2) {
        return Err(invalid("only schemaVersion 2 manifests are supported"));
    }
    let media_type = v["mediaType"]
        .as_str()
        .or(content_type.map(|c| c.split(';').next().unwrap_or(c).trim()))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| {
            // Neither says: OCI's own rule, an index has `manifests`.
            if v.get("manifests").is_some() { MEDIA_TYPE_OCI_INDEX } else { MEDIA_TYPE_OCI_MANIFEST }.to_string()
        });
    let digest_of = |d: &serde_json::Value| -> DResult<String> {
        let s = d["digest"].as_str().ok_or_else(|| invalid("descriptor without a digest"))?;
        validate_digest(s).map_err(|_| invalid(&format!("bad descriptor digest {s}")))?;
        Ok(s.to_string())
    };
    let mut blobs = Vec::new();
    let mut children = Vec::new();
    let mut config = None;
    let is_index = media_type == MEDIA_TYPE_OCI_INDEX || media_type == MEDIA_TYPE_DOCKER_LIST;
    if is_index {
        for m in v["manifests"].as_array().ok_or_else(|| invalid("index without manifests"))? {
            children.push(digest_of(m)?);
        }
    } else {
        let c = digest_of(&v["config"])?;
        config = Some(c.clone());
        blobs.push(c);
        for l in v["layers"].as_array().ok_or_else(|| invalid("manifest without layers"))? {
            blobs.push(digest_of(l)?);
        }
    }
    let subject = match v.get("subject") {
        Some(s) => Some(digest_of(s)?),
        None => None,
    };
    let artifact_type = v["artifactType"]
        .as_str()
        .or_else(|| v["config"]["mediaType"].as_str().filter(|_| v.get("subject").is_some()))
        .map(str::to_string);
    let annotations = v
        .get("annotations")
        .and_then(|a| serde_json::from_value::<BTreeMap<String, String>>(a.clone()).ok());
    Ok(ParsedManifest {
        meta: ManifestMeta { media_type, size: bytes.len() as u64, subject, artifact_type, annotations, config, children },
        blobs,
    })
}

fn copy_hashing(r: &mut impl Read, w: &mut impl Write, h: &mut Sha256) -> DResult<u64> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0u64;
    loop {
        let k = match r.read(&mut buf) {
            Ok(0) => return Ok(n),
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(crate::Error::Io { context: "read blob stream".into(), source: e }.into()),
        };
        h.update(&buf[..k]);
        w.write_all(&buf[..k]).ctx(|| "write upload".into())?;
        n += k as u64;
    }
}

/// Reads `len` bytes of a blob from `start` (Range requests).
pub fn open_range(path: &Path, start: u64) -> DResult<fs::File> {
    let mut f = fs::File::open(path).ctx(|| format!("open {}", path.display()))?;
    f.seek(io::SeekFrom::Start(start)).ctx(|| format!("seek {}", path.display()))?;
    Ok(f)
}

impl crate::Engine {
    /// `docker search` over Berth's own registry (the `/v1/search` answer, offline):
    /// repositories whose name contains `term`, at most `limit`; for a lab session
    /// (`names`), only the class's and its own, by the names it uses.
    pub fn search_local_registry(&self, term: &str, limit: usize, names: Option<&crate::registry::lab_names::LabNames>) -> DResult<Vec<SearchResult>> {
        let reg = Registry::open(self.root())?;
        match names {
            Some(n) => reg.search_as(term, limit, &|real| n.shown(real)),
            None => reg.search(term, limit),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(b: &[u8]) -> String {
        crate::store::sha256_digest(b)
    }

    fn reg(t: &Path) -> Registry {
        Registry::open(t).unwrap()
    }

    fn image_manifest(config: &str, layers: &[&str]) -> Vec<u8> {
        let layers: Vec<_> = layers
            .iter()
            .map(|d| serde_json::json!({"mediaType": crate::image::MEDIA_TYPE_LAYER_TAR, "digest": d, "size": 1}))
            .collect();
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": MEDIA_TYPE_OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
            "layers": layers,
        }))
        .unwrap()
    }

    #[test]
    fn names_follow_the_spec() {
        for ok in ["a", "library/busybox", "my-app/x.y", "a__b/c", "a--b"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "A", "../x", "a/../b", "/a", "a/", "a_-b", "_a", "a//b", "a..b"] {
            assert!(matches!(validate_name(bad), Err(DistError::NameInvalid(_))), "{bad}");
        }
    }

    #[test]
    fn mismatched_digest_is_refused_and_never_stored() {
        let t = tempfile::tempdir().unwrap();
        let r = reg(t.path());
        let wrong = digest(b"other");
        let id = r.start_upload("x").unwrap();
        let e = r.finish_upload("x", &id, &wrong, None, &b"hello"[..]).unwrap_err();
        assert_eq!(e.code(), "DIGEST_INVALID");
        assert!(!r.store.has_blob(&digest(b"hello")));
        assert!(!r.link_path(&digest(b"hello")).exists());
        assert!(matches!(r.blob("x", &digest(b"hello")), Err(DistError::BlobUnknown(_)) | Err(DistError::NameUnknown(_))));
        let e = r.ingest_blob("x", &wrong, &b"hello"[..]).unwrap_err();
        assert_eq!(e.code(), "DIGEST_INVALID");
        assert_eq!(fs::read_dir(t.path().join("registry/uploads")).unwrap().count(), 0, "nothing left behind");
    }

    #[test]
    fn chunked_upload_checks_offsets_and_survives_a_lost_hash() {
        let t = tempfile::tempdir().unwrap();
        let r = reg(t.path());
        let id = r.start_upload("team/app").unwrap();
        assert_eq!(r.append_upload("team/app", &id, Some(0), &b"hello "[..]).unwrap(), 6);
        let e = r.append_upload("team/app", &id, Some(3), &b"x"[..]).unwrap_err();
        assert!(matches!(e, DistError::RangeInvalid(_)));
        assert_eq!(r.upload_offset("team/app", &id).unwrap(), 6);
        // A chunk cut off halfway is rolled back.
        struct Broken(bool);
        impl Read for Broken {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if std::mem::replace(&mut self.0, true) {
                    Err(io::Error::new(io::ErrorKind::ConnectionReset, "cut"))
                } else {
                    buf[..3].copy_from_slice(b"zzz");
                    Ok(3)
                }
            }
        }
        assert!(r.append_upload("team/app", &id, Some(6), Broken(false)).is_err());
        assert_eq!(r.upload_offset("team/app", &id).unwrap(), 6);
        // Another repository cannot touch it.
        assert!(matches!(r.upload_offset("other", &id), Err(DistError::BlobUploadUnknown(_))));
        let d = digest(b"hello world");
        assert_eq!(r.finish_upload("team/app", &id, &d, Some(6), &b"world"[..]).unwrap(), 11);
        let (path, size) = r.blob("team/app", &d).unwrap();
        assert_eq!(size, 11);
        let mut f = open_range(&path, 6).unwrap();
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        assert_eq!(s, "world");
        // One copy of the bytes: the registry's link is the content store's file.
        use std::os::unix::fs::MetadataExt;
        assert_eq!(fs::metadata(&path).unwrap().ino(), fs::metadata(r.store.blob_path(&d).unwrap()).unwrap().ino());
        // The image store dropping it does not take it from the registry.
        r.store.remove_blob(&d).unwrap();
        assert!(r.blob("team/app", &d).is_ok());
        assert!(r.store.has_blob(&d));
    }

    #[test]
    fn manifests_need_their_blobs_and_mount_shares_them() {
        let t = tempfile::tempdir().unwrap();
        let r = reg(t.path());
        let (c, l) = (digest(b"{}"), digest(b"layer"));
        r.ingest_blob("a", &c, &b"{}"[..]).unwrap();
        let m = image_manifest(&c, &[&l]);
        let e = r.put_manifest("a", "v1", None, &m, true).unwrap_err();
        assert_eq!(e.code(), "MANIFEST_BLOB_UNKNOWN");
        assert!(matches!(r.manifest("a", "v1", false), Err(DistError::ManifestUnknown(_))));
        r.ingest_blob("a", &l, &b"layer"[..]).unwrap();
        let put = r.put_manifest("a", "v1", None, &m, true).unwrap();
        assert_eq!(put.digest, digest(&m));
        let got = r.manifest("a", "v1", true).unwrap();
        assert_eq!((got.bytes, got.media_type.as_str()), (m.clone(), MEDIA_TYPE_OCI_MANIFEST));
        // Mount into b, then the same manifest by digest works there.
        assert!(!r.mount_blob("b", &l, "nope").unwrap());
        assert!(r.mount_blob("b", &c, "a").unwrap() && r.mount_blob("b", &l, "a").unwrap());
        r.put_manifest("b", &put.digest, None, &m, true).unwrap();
        assert!(r.tags("b", None, None).unwrap().0.is_empty());
        let e = r.put_manifest("b", &digest(b"x"), None, &m, true).unwrap_err();
        assert_eq!(e.code(), "DIGEST_INVALID");
        assert!(matches!(r.tags("zzz", None, None), Err(DistError::NameUnknown(_))));
        // Deleting the manifest by digest drops its tags too.
        r.delete_manifest("a", &put.digest).unwrap();
        assert!(r.tags("a", None, None).unwrap().0.is_empty());
        r.delete_blob("b", &l).unwrap();
        assert!(matches!(r.blob("b", &l), Err(DistError::BlobUnknown(_))));
        assert!(r.blob("a", &l).is_ok(), "still in a");
    }

    #[test]
    fn tags_and_catalog_paginate() {
        let t = tempfile::tempdir().unwrap();
        let r = reg(t.path());
        let c = digest(b"{}");
        for repo in ["b", "a/x", "c"] {
            r.ingest_blob(repo, &c, &b"{}"[..]).unwrap();
        }
        let m = image_manifest(&c, &[]);
        for tag in ["3", "1", "2", "4"] {
            r.put_manifest("a/x", tag, None, &m, true).unwrap();
        }
        assert_eq!(r.tags("a/x", Some(2), None).unwrap(), (vec!["1".into(), "2".into()], true));
        assert_eq!(r.tags("a/x", Some(2), Some("2")).unwrap(), (vec!["3".into(), "4".into()], false));
        assert_eq!(r.tags("a/x", Some(0), None).unwrap(), (vec![], true));
        assert_eq!(r.catalog(None, None).unwrap().0, ["a/x", "b", "c"]);
        assert_eq!(r.catalog(Some(1), Some("a/x")).unwrap(), (vec!["b".into()], true));
    }

    #[test]
    fn referrers_and_search() {
        let t = tempfile::tempdir().unwrap();
        let r = reg(t.path());
        let cfg = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},
            "config":{"Labels":{"org.opencontainers.image.description":"A tiny shell"}}}"#;
        let c = digest(cfg);
        r.ingest_blob("library/busybox", &c, &cfg[..]).unwrap();
        let m = image_manifest(&c, &[]);
        let put = r.put_manifest("library/busybox", "latest", None, &m, true).unwrap();
        let empty = digest(b"{}");
        r.ingest_blob("library/busybox", &empty, &b"{}"[..]).unwrap();
        let sig = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": MEDIA_TYPE_OCI_MANIFEST, "artifactType": "application/example.sig",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
            "layers": [], "subject": {"mediaType": MEDIA_TYPE_OCI_MANIFEST, "digest": put.digest, "size": m.len()},
        }))
        .unwrap();
        let p = r.put_manifest("library/busybox", &digest(&sig), None, &sig, true).unwrap();
        assert_eq!(p.subject.as_deref(), Some(put.digest.as_str()));
        let idx = r.referrers("library/busybox", &put.digest, None).unwrap();
        assert_eq!(idx["manifests"][0]["digest"], p.digest);
        assert_eq!(idx["manifests"][0]["artifactType"], "application/example.sig");
        assert_eq!(r.referrers("library/busybox", &put.digest, Some("other")).unwrap()["manifests"], serde_json::json!([]));
        let found = r.search("busy", 10).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].name.as_str(), found[0].description.as_str(), found[0].is_official), ("busybox", "A tiny shell", true));
        assert!(r.search("nothing", 10).unwrap().is_empty());
    }
}
