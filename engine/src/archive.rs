//! Image archives: `docker save` / `docker load` tars and `docker import` rootfs tars.
//!
//! `save` writes what Docker 25+ writes, a tar that is both a docker-archive and an OCI
//! image layout, so any loader (old Docker, new Docker, skopeo) reads it:
//!
//! ```text
//! blobs/sha256/<hex>   configs, uncompressed layer tars, OCI manifests
//! index.json           OCI index, one entry per tag (io.containerd.image.name)
//! manifest.json        [{"Config": "blobs/sha256/…", "RepoTags": [...], "Layers": [...]}]
//! oci-layout           {"imageLayoutVersion": "1.0.0"}
//! repositories         legacy {"busybox": {"latest": "<hex>"}}
//! ```
//!
//! `load` accepts that, the legacy layout (`<id>.json`, `<v1id>/layer.tar`, symlinks
//! between duplicate layers) and a bare OCI layout (`index.json` only). It works in
//! three phases so a bad archive changes nothing: [`extract`] spools the tar into a
//! temp dir, [`Extracted::images`] parses and checks every manifest, and only then
//! [`store_images`] puts blobs in the store, after which the caller moves tags.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::error::{Context, Error, Result};
use crate::fsutil;
use crate::image::{Images, RunConfig, MEDIA_TYPE_LAYER_GZIP, MEDIA_TYPE_LAYER_TAR};
use crate::reference::{self, Reference};
use crate::store::Store;

use crate::manifest::{Descriptor, Manifest, DOCKER_LIST as DOCKER_MANIFEST_LIST, OCI_CONFIG as MEDIA_TYPE_CONFIG, OCI_INDEX as MEDIA_TYPE_INDEX, OCI_MANIFEST as MEDIA_TYPE_MANIFEST};
/// Metadata files (manifests, configs) are read into memory; nothing legitimate is
/// this big, and the cap keeps a hostile archive from exhausting memory.
const MAX_METADATA: u64 = 16 << 20;

fn invalid(m: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("invalid image archive: {m}"))
}

/// A directory under the store's tmp dir, removed with everything in it on drop, so
/// an aborted load or save leaves nothing behind.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(tmp: &Path, prefix: &str) -> Result<TempDir> {
        let path = tmp.join(format!("{prefix}-{}", fsutil::random_id()));
        fs::create_dir_all(&path).ctx(|| format!("create {}", path.display()))?;
        Ok(TempDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// The architecture name Docker and OCI use for this machine.
pub fn host_arch() -> String {
    match std::env::consts::ARCH {
        "x86_64" => "amd64".into(),
        "aarch64" => "arm64".into(),
        "x86" => "386".into(),
        a => a.into(),
    }
}

/// Wraps `r` in a gzip decoder when it starts with gzip's magic; refuses the other
/// compressions Docker accepts (bzip2, xz, zstd) with a clear message rather than a
/// confusing tar error.
pub fn decompress<'a>(r: impl Read + 'a) -> Result<Box<dyn Read + 'a>> {
    let mut r = BufReader::with_capacity(256 * 1024, r);
    let head = r.fill_buf().ctx(|| "read archive".into())?;
    if head.starts_with(&[0x1f, 0x8b]) {
        return Ok(Box::new(flate2::read::GzDecoder::new(r)));
    }
    for (magic, name) in [(&b"BZh"[..], "bzip2"), (&[0xfd, b'7', b'z', b'X', b'Z'][..], "xz"), (&[0x28, 0xb5, 0x2f, 0xfd][..], "zstd")] {
        if head.starts_with(magic) {
            return Err(Error::InvalidArgument(format!("{name}-compressed archives are not supported: decompress it first, or use gzip")));
        }
    }
    Ok(Box::new(r))
}

fn hex_of_path(path: &str) -> Option<String> {
    let hex = path.strip_prefix("blobs/sha256/")?;
    reference::validate_digest(&format!("sha256:{hex}")).ok()?;
    Some(format!("sha256:{hex}"))
}

/// Normalises a path inside an archive (`./a//b/` → `a/b`); `..` and absolute paths
/// are refused because archive paths must never name anything outside the archive.
fn normalize(p: &Path) -> Result<String> {
    let mut parts: Vec<String> = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                if parts.pop().is_none() {
                    return Err(invalid(format!("path escapes the archive: {}", p.display())));
                }
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(invalid(format!("absolute path in archive: {}", p.display())))
            }
        }
    }
    Ok(parts.join("/"))
}

/// A spooled archive: its regular files in a temp dir, by path inside the archive.
pub struct Extracted {
    /// Holds the spooled files; removed when the load is over.
    _dir: TempDir,
    files: HashMap<String, PathBuf>,
    /// Symlinks and hard links (legacy archives link duplicate layers), already
    /// resolved to archive paths.
    links: HashMap<String, String>,
}

/// Reads a (maybe gzipped) tar into a temp dir under `tmp`.
pub fn extract(r: impl Read, tmp: &Path) -> Result<Extracted> {
    let dir = TempDir::new(tmp, "load")?;
    let mut ar = tar::Archive::new(decompress(r)?);
    let mut files = HashMap::new();
    let mut links = HashMap::new();
    let mut entries = 0usize;
    for entry in ar.entries().map_err(invalid)? {
        let mut entry = entry.map_err(invalid)?;
        entries += 1;
        let raw = entry.path().map_err(invalid)?.into_owned();
        let path = normalize(&raw)?;
        let kind = entry.header().entry_type();
        if kind.is_file() {
            let dest = dir.path().join(files.len().to_string());
            let mut f = fs::File::create(&dest).ctx(|| format!("create {}", dest.display()))?;
            io::copy(&mut entry, &mut f).map_err(|e| invalid(format!("{path}: {e}")))?;
            files.insert(path, dest);
        } else if kind.is_symlink() || kind.is_hard_link() {
            let target = entry.link_name().map_err(invalid)?.ok_or_else(|| invalid(format!("{path}: link without a target")))?;
            // Symlinks are relative to their directory, hard links to the archive root.
            let base = if kind.is_symlink() { Path::new(&path).parent().map(Path::to_path_buf).unwrap_or_default() } else { PathBuf::new() };
            links.insert(path, normalize(&base.join(target))?);
        }
    }
    if entries == 0 {
        return Err(invalid("the archive is empty or not a tar file"));
    }
    Ok(Extracted { _dir: dir, files, links })
}

/// One image found in an archive, checked but not stored yet.
#[derive(Debug, Clone)]
pub struct ArchiveImage {
    pub config: Vec<u8>,
    /// Archive path of each layer, bottom first, with its digest when the archive
    /// names it (content-addressed paths), so the store can verify it.
    pub layers: Vec<(String, Option<String>)>,
    pub tags: Vec<Reference>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

impl Extracted {
    /// The spooled file behind an archive path, following links.
    pub fn file(&self, path: &str) -> Result<&Path> {
        let mut p = normalize(Path::new(path))?;
        for _ in 0..16 {
            if let Some(f) = self.files.get(&p) {
                return Ok(f);
            }
            match self.links.get(&p) {
                Some(t) => p = t.clone(),
                None => break,
            }
        }
        Err(invalid(format!("{path} is missing from the archive")))
    }

    fn read(&self, path: &str) -> Result<Vec<u8>> {
        let f = self.file(path)?;
        let len = fs::metadata(f).ctx(|| format!("stat {}", f.display()))?.len();
        if len > MAX_METADATA {
            return Err(invalid(format!("{path} is too large ({len} bytes) for a manifest or config")));
        }
        fs::read(f).ctx(|| format!("read {}", f.display()))
    }

    /// Reads a metadata blob and checks it against its digest.
    fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        reference::validate_digest(digest).map_err(|_| invalid(format!("bad digest {digest}")))?;
        let bytes = self.read(&format!("blobs/sha256/{}", &digest[7..]))?;
        verify(&bytes, digest)?;
        Ok(bytes)
    }

    /// Parses the archive's manifests: `manifest.json` when present (it names the
    /// tags the way `docker save` meant them), the OCI `index.json` otherwise.
    pub fn images(&self) -> Result<Vec<ArchiveImage>> {
        let mut out: Vec<ArchiveImage> = if self.file("manifest.json").is_ok() {
            self.docker_images()?
        } else if self.file("index.json").is_ok() {
            self.oci_images()?
        } else {
            return Err(invalid("neither manifest.json nor index.json found: is this an image archive from `docker save`?"));
        };
        // The same image may appear once per tag: merge, keeping the first order.
        let mut merged: Vec<ArchiveImage> = Vec::new();
        for img in out.drain(..) {
            match merged.iter_mut().find(|m| m.config == img.config) {
                Some(m) => {
                    for t in img.tags {
                        if !m.tags.contains(&t) {
                            m.tags.push(t);
                        }
                    }
                }
                None => merged.push(img),
            }
        }
        if merged.is_empty() {
            return Err(invalid("the archive lists no images"));
        }
        Ok(merged)
    }

    fn docker_images(&self) -> Result<Vec<ArchiveImage>> {
        let entries: Vec<ManifestEntry> =
            serde_json::from_slice(&self.read("manifest.json")?).map_err(|e| invalid(format!("manifest.json: {e}")))?;
        let mut out = Vec::new();
        for e in entries {
            let config = self.read(&e.config)?;
            // Content-addressed names (blobs/sha256/<hex>, legacy <hex>.json) must match.
            let named = hex_of_path(&normalize(Path::new(&e.config))?).or_else(|| {
                let hex = e.config.strip_suffix(".json")?;
                reference::validate_digest(&format!("sha256:{hex}")).ok().map(|_| format!("sha256:{hex}"))
            });
            if let Some(d) = named {
                verify(&config, &d)?;
            }
            let layers = e
                .layers
                .iter()
                .map(|l| Ok((l.clone(), hex_of_path(&normalize(Path::new(l))?))))
                .collect::<Result<Vec<_>>>()?;
            let tags = e.repo_tags.unwrap_or_default().iter().map(|t| parse_tag(t)).collect::<Result<Vec<_>>>()?;
            out.push(self.checked(config, layers, tags)?);
        }
        Ok(out)
    }

    fn oci_images(&self) -> Result<Vec<ArchiveImage>> {
        let index: Manifest =
            serde_json::from_slice(&self.read("index.json")?).map_err(|e| invalid(format!("index.json: {e}")))?;
        let mut out = Vec::new();
        for desc in &index.manifests {
            let tag = desc
                .annotations
                .get("io.containerd.image.name")
                // A bare tag ("latest") in ref.name names no repository: only a full
                // reference is usable.
                .or_else(|| desc.annotations.get("org.opencontainers.image.ref.name").filter(|n| n.contains(':') || n.contains('/')))
                .map(|n| parse_tag(n))
                .transpose()?;
            let manifest = self.resolve_manifest(desc, 0)?;
            let cfg = manifest.config.ok_or_else(|| invalid(format!("manifest {} has no config", desc.digest)))?;
            let config = self.read_blob(&cfg.digest)?;
            let mut layers = Vec::new();
            for l in &manifest.layers {
                if l.media_type.contains("zstd") {
                    return Err(Error::InvalidArgument(format!("layer {} is zstd-compressed, which is not supported yet", l.digest)));
                }
                reference::validate_digest(&l.digest).map_err(|_| invalid(format!("bad layer digest {}", l.digest)))?;
                layers.push((format!("blobs/sha256/{}", &l.digest[7..]), Some(l.digest.clone())));
            }
            out.push(self.checked(config, layers, tag.into_iter().collect())?);
        }
        Ok(out)
    }

    /// Follows an index (multi-platform image) down to this machine's manifest.
    fn resolve_manifest(&self, desc: &Descriptor, depth: usize) -> Result<Manifest> {
        if depth > 4 {
            return Err(invalid("indexes nested too deeply"));
        }
        let m: Manifest = serde_json::from_slice(&self.read_blob(&desc.digest)?)
            .map_err(|e| invalid(format!("manifest {}: {e}", desc.digest)))?;
        let is_index = [MEDIA_TYPE_INDEX, DOCKER_MANIFEST_LIST].contains(&desc.media_type.as_str())
            || [MEDIA_TYPE_INDEX, DOCKER_MANIFEST_LIST].contains(&m.media_type.as_str())
            || (m.config.is_none() && !m.manifests.is_empty());
        if !is_index {
            return Ok(m);
        }
        let arch = host_arch();
        let fits = |d: &&Descriptor| d.platform.as_ref().is_some_and(|p| p.os == "linux" && p.architecture == arch);
        // Only manifests whose blobs are in the archive count (saves often hold one platform).
        let present = |d: &&Descriptor| reference::validate_digest(&d.digest).is_ok() && self.file(&format!("blobs/sha256/{}", &d.digest[7..])).is_ok();
        let pick = m.manifests.iter().filter(present).find(fits).or_else(|| m.manifests.iter().find(present));
        match pick {
            Some(d) => self.resolve_manifest(d, depth + 1),
            None => Err(invalid(format!("index {} has no manifest for linux/{arch} in the archive", desc.digest))),
        }
    }

    /// Checks what can be checked before storing: the config parses, lists as many
    /// layers as the manifest, and every layer file is present.
    fn checked(&self, config: Vec<u8>, layers: Vec<(String, Option<String>)>, tags: Vec<Reference>) -> Result<ArchiveImage> {
        let parsed = crate::image::ImageConfig::parse(&config)?;
        if parsed.rootfs.diff_ids.len() != layers.len() {
            return Err(invalid(format!(
                "the config lists {} layers, the manifest {}",
                parsed.rootfs.diff_ids.len(),
                layers.len()
            )));
        }
        for (path, _) in &layers {
            self.file(path)?;
        }
        Ok(ArchiveImage { config, layers, tags })
    }
}

fn parse_tag(t: &str) -> Result<Reference> {
    let r = Reference::parse(t).map_err(|e| invalid(format!("bad tag {t:?}: {e}")))?;
    if r.digest.is_some() {
        return Err(invalid(format!("bad tag {t:?}: a tag cannot carry a digest")));
    }
    Ok(r)
}

fn verify(bytes: &[u8], digest: &str) -> Result<()> {
    let got = crate::store::sha256_digest(bytes);
    if got != digest {
        return Err(invalid(format!("digest mismatch: {digest} holds content with digest {got}")));
    }
    Ok(())
}

fn hash_file(path: &Path) -> Result<String> {
    let mut f = fs::File::open(path).ctx(|| format!("open {}", path.display()))?;
    let mut h = Sha256::new();
    io::copy(&mut f, &mut h).ctx(|| format!("read {}", path.display()))?;
    Ok(format!("sha256:{}", hex::encode(h.finalize())))
}

fn is_gzip(path: &Path) -> Result<bool> {
    let mut head = [0u8; 2];
    let mut f = fs::File::open(path).ctx(|| format!("open {}", path.display()))?;
    let n = f.read(&mut head).ctx(|| format!("read {}", path.display()))?;
    Ok(n == 2 && head == [0x1f, 0x8b])
}

/// Puts the images' blobs in the store and creates their records (unpacking layers).
/// Returns the image ids in order. On failure, whatever this call added and nothing
/// uses is removed again. The caller holds the engine's image lock, so garbage
/// collection cannot run between storing a blob and recording the image.
pub fn store_images(store: &Store, images: &Images, ex: &Extracted, list: &[ArchiveImage]) -> Result<Vec<String>> {
    let mut new_blobs: Vec<String> = Vec::new();
    let result = (|| -> Result<Vec<String>> {
        let mut ids = Vec::new();
        for img in list {
            let diff_ids = crate::image::ImageConfig::parse(&img.config)?.rootfs.diff_ids;
            let mut layers = Vec::new();
            for ((path, named), diff_id) in img.layers.iter().zip(&diff_ids) {
                let file = ex.file(path)?;
                let digest = match named {
                    Some(d) => d.clone(),
                    None => hash_file(file)?,
                };
                let gz = is_gzip(file)?;
                // An uncompressed layer's digest is its diff id: a mismatch is caught
                // here, before anything is unpacked.
                if !gz && &digest != diff_id {
                    return Err(invalid(format!("layer {path} has digest {digest}, the config expects {diff_id}")));
                }
                let had = store.has_blob(&digest);
                let f = fs::File::open(file).ctx(|| format!("open {}", file.display()))?;
                let (d, size) = store.put_blob_from(f, Some(&digest)).map_err(|e| match e {
                    Error::InvalidArgument(m) => invalid(format!("{path}: {m}")),
                    e => e,
                })?;
                if !had {
                    new_blobs.push(d.clone());
                }
                layers.push((d, if gz { MEDIA_TYPE_LAYER_GZIP } else { MEDIA_TYPE_LAYER_TAR }.to_string(), size));
            }
            let config_digest = crate::store::sha256_digest(&img.config);
            if !store.has_blob(&config_digest) {
                new_blobs.push(config_digest);
            }
            ids.push(images.create(store, &img.config, &layers)?);
        }
        Ok(ids)
    })();
    if result.is_err() {
        forget_unused(store, images, &new_blobs);
    }
    result
}

/// Drops records no namespace has (made by a failed load) and blobs no record uses.
fn forget_unused(store: &Store, images: &Images, blobs: &[String]) {
    let _ = images.collect_garbage(store);
    let used: BTreeSet<String> = images
        .all_records()
        .into_iter()
        .flat_map(|r| std::iter::once(r.id.clone()).chain(r.layers.into_iter().map(|l| l.digest)))
        .collect();
    for b in blobs {
        if !used.contains(b) {
            let _ = store.remove_blob(b);
        }
    }
}

/// A rootfs tar spooled to a temp file, decompressed, with its digest (= diff id).
pub struct SpooledLayer {
    _dir: TempDir,
    pub path: PathBuf,
    pub digest: String,
    pub size: u64,
}

/// Spools a `docker import` input (tar, maybe gzipped) uncompressed into `tmp`,
/// hashing it on the way, and checks that it is a tar.
pub fn spool_layer(r: impl Read, tmp: &Path) -> Result<SpooledLayer> {
    let dir = TempDir::new(tmp, "import")?;
    let path = dir.path().join("layer.tar");
    let mut f = fs::File::create(&path).ctx(|| format!("create {}", path.display()))?;
    let mut h = Sha256::new();
    let mut r = decompress(r)?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = r.read(&mut buf).map_err(|e| Error::InvalidArgument(format!("read import stream: {e}")))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        f.write_all(&buf[..n]).ctx(|| format!("write {}", path.display()))?;
        size += n as u64;
    }
    f.sync_all().ctx(|| format!("fsync {}", path.display()))?;
    if size == 0 {
        return Err(Error::InvalidArgument("import: the archive is empty".into()));
    }
    // Walk the entries once so garbage is refused before it reaches the store.
    let mut ar = tar::Archive::new(BufReader::new(fs::File::open(&path).ctx(|| format!("open {}", path.display()))?));
    let bad = |e: io::Error| Error::InvalidArgument(format!("import: not a valid tar archive: {e}"));
    let mut n = 0;
    for e in ar.entries().map_err(bad)? {
        let mut e = e.map_err(bad)?;
        io::copy(&mut e, &mut io::sink()).map_err(bad)?;
        n += 1;
    }
    if n == 0 {
        return Err(Error::InvalidArgument("import: not a valid tar archive: no entries".into()));
    }
    Ok(SpooledLayer { _dir: dir, path, digest: format!("sha256:{}", hex::encode(h.finalize())), size })
}

/// The config of an imported image: one layer, the `changes` applied, `message` as
/// comment (Docker says "Imported from -" when there is none).
pub fn import_config(diff_id: &str, run: &RunConfig, message: &str) -> Result<Vec<u8>> {
    let created = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let mut v = json!({
        "architecture": host_arch(),
        "os": "linux",
        "created": created,
        "config": run,
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
        "history": [{ "created": created, "comment": message }],
    });
    if !message.is_empty() {
        v["comment"] = json!(message);
    }
    serde_json::to_vec(&v).ctx(|| "encode image config".into())
}

/// Changes are Dockerfile instructions: split them with the Dockerfile's rules.
fn words(s: &str) -> Result<Vec<String>> {
    crate::build::dockerfile::words(s, '\\')
}

/// `["a", "b"]` (exec form) when it parses as a JSON string array, else None.
fn json_form(rest: &str) -> Option<Vec<String>> {
    rest.trim_start().starts_with('[').then(|| serde_json::from_str(rest).ok()).flatten()
}

fn key_values(keyword: &str, rest: &str) -> Result<Vec<(String, String)>> {
    crate::build::dockerfile::key_values(keyword, rest, '\\')
}

/// Applies `docker import -c` / `docker commit -c` changes: the Dockerfile
/// instructions that only touch the config.
pub fn apply_changes(run: &mut RunConfig, changes: &[String]) -> Result<()> {
    for line in changes.iter().flat_map(|c| c.lines()).map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (kw, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let rest = rest.trim();
        let keyword = kw.to_ascii_uppercase();
        let shell = || vec!["/bin/sh".to_string(), "-c".to_string(), rest.to_string()];
        match keyword.as_str() {
            "CMD" => run.cmd = Some(json_form(rest).unwrap_or_else(shell)),
            "ENTRYPOINT" => {
                run.entrypoint = Some(json_form(rest).unwrap_or_else(shell));
            }
            "ENV" => {
                for (k, v) in key_values(&keyword, rest)? {
                    run.env.retain(|e| e.split_once('=').map_or(e.as_str(), |(ek, _)| ek) != k);
                    run.env.push(format!("{k}={v}"));
                }
            }
            "LABEL" => {
                for (k, v) in key_values(&keyword, rest)? {
                    run.labels.insert(k, v);
                }
            }
            "EXPOSE" => {
                for p in words(rest)? {
                    let (port, proto) = p.split_once('/').unwrap_or((&p, "tcp"));
                    let ok = port.split('-').all(|n| n.parse::<u16>().is_ok()) && ["tcp", "udp", "sctp"].contains(&proto);
                    if !ok {
                        return Err(Error::InvalidArgument(format!("invalid containerPort: {p}")));
                    }
                    run.exposed_ports.insert(format!("{port}/{proto}"), json!({}));
                }
            }
            "VOLUME" => {
                for v in json_form(rest).map_or_else(|| words(rest), Ok)? {
                    run.volumes.insert(v, json!({}));
                }
            }
            "WORKDIR" => {
                // Relative workdirs build on the previous one, as in a Dockerfile.
                run.working_dir = if rest.starts_with('/') || run.working_dir.is_empty() {
                    format!("/{}", rest.trim_start_matches('/'))
                } else {
                    format!("{}/{rest}", run.working_dir.trim_end_matches('/'))
                };
            }
            "USER" => run.user = rest.to_string(),
            "STOPSIGNAL" => run.stop_signal = Some(rest.to_string()),
            "ONBUILD" => {
                let list = run.extra.entry("OnBuild".into()).or_insert_with(|| json!([]));
                // Another tool's config may say `"OnBuild": null`.
                if list.is_null() {
                    *list = json!([]);
                }
                if let Value::Array(a) = list {
                    a.push(json!(rest));
                }
            }
            _ => return Err(Error::InvalidArgument(format!("{kw} is not a valid change command"))),
        }
        if rest.is_empty() && keyword != "CMD" && keyword != "ENTRYPOINT" {
            return Err(Error::InvalidArgument(format!("{keyword} requires at least one argument")));
        }
    }
    Ok(())
}

/// What `docker load` did for one image, for its "Loaded image:" lines.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub id: String,
    /// Familiar tags now pointing at the image.
    pub tags: Vec<String>,
    /// Tags that moved here from another image: (tag, the old image id).
    pub replaced: Vec<(String, String)>,
}

/// One image to save, with the tags to record for it in the archive.
#[derive(Debug, Clone)]
pub struct SaveItem {
    pub id: String,
    pub tags: Vec<Reference>,
}

fn header(size: u64, dir: bool) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(if dir { tar::EntryType::Directory } else { tar::EntryType::Regular });
    h.set_mode(if dir { 0o755 } else { 0o644 });
    h.set_size(size);
    h.set_uid(0);
    h.set_gid(0);
    // A fixed mtime makes saving the same image twice give the same bytes.
    h.set_mtime(0);
    h
}

fn append<W: Write>(b: &mut tar::Builder<W>, path: &str, size: u64, r: impl Read) -> Result<()> {
    b.append_data(&mut header(size, false), path, r).ctx(|| format!("write {path} to the archive"))
}

/// Writes `items` as one archive (see the module docs) to `out`.
pub fn write_archive(store: &Store, images: &Images, tmp: &Path, items: &[SaveItem], out: impl Write) -> Result<()> {
    let mut b = tar::Builder::new(out);
    for d in ["blobs/", "blobs/sha256/"] {
        b.append_data(&mut header(0, true), d, io::empty()).ctx(|| "write the archive".into())?;
    }
    let mut written: BTreeMap<String, u64> = BTreeMap::new();
    let mut manifest = Vec::new();
    let mut index = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let blob = |b: &mut tar::Builder<_>, digest: &str, bytes: &[u8], written: &mut BTreeMap<String, u64>| -> Result<()> {
        if !written.contains_key(digest) {
            append(b, &format!("blobs/sha256/{}", &digest[7..]), bytes.len() as u64, bytes)?;
            written.insert(digest.to_string(), bytes.len() as u64);
        }
        Ok(())
    };
    for item in items {
        let rec = images.record(&item.id)?;
        let config = store.read_blob(&item.id)?;
        blob(&mut b, &item.id, &config, &mut written)?;
        let mut layers = Vec::new();
        for l in &rec.layers {
            // Archives carry uncompressed layers, named by diff id, as Docker's do.
            if !written.contains_key(&l.diff_id) {
                let path = store.blob_path(&l.digest)?;
                let size = if l.digest == l.diff_id {
                    let f = fs::File::open(&path).ctx(|| format!("open layer {}", l.digest))?;
                    let size = f.metadata().ctx(|| format!("stat layer {}", l.digest))?.len();
                    append(&mut b, &format!("blobs/sha256/{}", &l.diff_id[7..]), size, f)?;
                    size
                } else {
                    let dir = TempDir::new(tmp, "save")?;
                    let plain = dir.path().join("layer.tar");
                    let mut out = fs::File::create(&plain).ctx(|| format!("create {}", plain.display()))?;
                    let f = fs::File::open(&path).ctx(|| format!("open layer {}", l.digest))?;
                    let size = io::copy(&mut flate2::read::GzDecoder::new(BufReader::new(f)), &mut out)
                        .ctx(|| format!("decompress layer {}", l.digest))?;
                    let f = fs::File::open(&plain).ctx(|| format!("open {}", plain.display()))?;
                    append(&mut b, &format!("blobs/sha256/{}", &l.diff_id[7..]), size, f)?;
                    size
                };
                written.insert(l.diff_id.clone(), size);
            }
            layers.push(json!({ "mediaType": MEDIA_TYPE_LAYER_TAR, "digest": l.diff_id, "size": written[&l.diff_id] }));
        }
        let oci = json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_MANIFEST,
            "config": { "mediaType": MEDIA_TYPE_CONFIG, "digest": item.id, "size": config.len() },
            "layers": layers,
        });
        let oci_bytes = serde_json::to_vec(&oci).ctx(|| "encode manifest".into())?;
        let oci_digest = crate::store::sha256_digest(&oci_bytes);
        blob(&mut b, &oci_digest, &oci_bytes, &mut written)?;
        let desc = json!({ "mediaType": MEDIA_TYPE_MANIFEST, "digest": oci_digest, "size": oci_bytes.len() });
        if item.tags.is_empty() {
            index.push(desc.clone());
        }
        for t in &item.tags {
            let mut d = desc.clone();
            d["annotations"] = json!({
                "io.containerd.image.name": t.to_string(),
                "org.opencontainers.image.ref.name": t.tag.clone().unwrap_or_default(),
            });
            index.push(d);
            repositories
                .entry(t.familiar_name())
                .or_default()
                .insert(t.tag.clone().unwrap_or_default(), item.id[7..].to_string());
        }
        let tags: Vec<String> = item.tags.iter().map(Reference::familiar).collect();
        manifest.push(json!({
            "Config": format!("blobs/sha256/{}", &item.id[7..]),
            "RepoTags": if tags.is_empty() { Value::Null } else { json!(tags) },
            "Layers": rec.layers.iter().map(|l| format!("blobs/sha256/{}", &l.diff_id[7..])).collect::<Vec<_>>(),
        }));
    }
    let index = json!({ "schemaVersion": 2, "mediaType": MEDIA_TYPE_INDEX, "manifests": index });
    for (name, v) in [
        ("index.json", index),
        ("manifest.json", Value::Array(manifest)),
        ("oci-layout", json!({ "imageLayoutVersion": "1.0.0" })),
        ("repositories", json!(repositories)),
    ] {
        let mut bytes = serde_json::to_vec(&v).ctx(|| format!("encode {name}"))?;
        bytes.push(b'\n');
        append(&mut b, name, bytes.len() as u64, &bytes[..])?;
    }
    b.into_inner().ctx(|| "finish the archive".into())?.flush().ctx(|| "write the archive".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            append(&mut b, name, data.len() as u64, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn setup() -> (tempfile::TempDir, Store, Images) {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let i = Images::open(t.path()).unwrap();
        (t, s, i)
    }

    fn sample_image(s: &Store, i: &Images) -> String {
        let layer = tar_of(&[("hello.txt", b"hi\n")]);
        let d = s.put_blob(&layer).unwrap();
        let config = import_config(&d, &RunConfig { cmd: Some(vec!["sh".into()]), ..Default::default() }, "").unwrap();
        i.create(s, &config, &[(d, MEDIA_TYPE_LAYER_TAR.into(), layer.len() as u64)]).unwrap()
    }

    #[test]
    fn save_then_load_round_trips() {
        let (t, s, i) = setup();
        let id = sample_image(&s, &i);
        let mut out = Vec::new();
        let tag = Reference::parse("demo:v1").unwrap();
        write_archive(&s, &i, &t.path().join("tmp"), &[SaveItem { id: id.clone(), tags: vec![tag.clone()] }], &mut out).unwrap();

        let (t2, s2, i2) = setup();
        let ex = extract(&out[..], &t2.path().join("tmp")).unwrap();
        let imgs = ex.images().unwrap();
        assert_eq!(imgs.len(), 1);
        assert_eq!(imgs[0].tags, vec![tag]);
        let ids = store_images(&s2, &i2, &ex, &imgs).unwrap();
        assert_eq!(ids, vec![id.clone()]);
        let rec = i2.record(&id).unwrap();
        assert_eq!(fs::read(s2.layer_dir(&rec.layers[0].chain_id).unwrap().join("hello.txt")).unwrap(), b"hi\n");
        drop(ex);
        assert_eq!(fs::read_dir(t2.path().join("tmp")).unwrap().count(), 0, "temp files are cleaned up");
    }

    #[test]
    fn saves_gzipped_layers_uncompressed() {
        let (t, s, i) = setup();
        let layer = tar_of(&[("z.txt", b"zipped\n")]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&layer).unwrap();
        let gz = gz.finish().unwrap();
        let blob = s.put_blob(&gz).unwrap();
        let diff_id = crate::store::sha256_digest(&layer);
        let config = import_config(&diff_id, &RunConfig::default(), "").unwrap();
        let id = i.create(&s, &config, &[(blob, MEDIA_TYPE_LAYER_GZIP.into(), gz.len() as u64)]).unwrap();
        let mut out = Vec::new();
        write_archive(&s, &i, &t.path().join("tmp"), &[SaveItem { id: id.clone(), tags: vec![] }], &mut out).unwrap();
        let (t2, s2, i2) = setup();
        let ex = extract(&out[..], &t2.path().join("tmp")).unwrap();
        assert_eq!(fs::read(ex.file(&format!("blobs/sha256/{}", &diff_id[7..])).unwrap()).unwrap(), layer);
        let imgs = ex.images().unwrap();
        assert!(imgs[0].tags.is_empty());
        assert_eq!(store_images(&s2, &i2, &ex, &imgs).unwrap(), vec![id]);
    }

    #[test]
    fn loads_an_oci_layout_and_gzip() {
        let (t, s, i) = setup();
        let id = sample_image(&s, &i);
        let mut out = Vec::new();
        let tag = Reference::parse("localhost:5000/a/b:t").unwrap();
        write_archive(&s, &i, &t.path().join("tmp"), &[SaveItem { id: id.clone(), tags: vec![tag.clone()] }], &mut out).unwrap();
        // Drop manifest.json: what remains is a plain OCI layout.
        let mut ar = tar::Archive::new(&out[..]);
        let mut b = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let p = e.path().unwrap().to_string_lossy().to_string();
            if p != "manifest.json" {
                let mut h = e.header().clone();
                b.append_data(&mut h, &p, &mut e).unwrap();
            }
        }
        let gz = b.into_inner().unwrap().finish().unwrap();
        let (t2, _s2, _i2) = setup();
        let ex = extract(&gz[..], &t2.path().join("tmp")).unwrap();
        let imgs = ex.images().unwrap();
        assert_eq!(imgs[0].tags, vec![tag]);
        assert_eq!(crate::store::sha256_digest(&imgs[0].config), id);
    }

    #[test]
    fn bad_archives_are_clear_errors() {
        let (t, s, i) = setup();
        let tmp = t.path().join("tmp");
        let garbage: Vec<u8> = (0..4096u32).map(|x| (x * 7 + 3) as u8).collect();
        let e = extract(&garbage[..], &tmp).err().unwrap();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
        let e = extract(&tar_of(&[("x", b"y")])[..], &tmp).unwrap().images().unwrap_err().to_string();
        assert!(e.contains("neither manifest.json nor index.json"), "{e}");
        // tar::Builder refuses "..", so write the header by hand.
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..4].copy_from_slice(b"../x");
        h.set_size(0);
        h.set_cksum();
        let mut evil = h.as_bytes().to_vec();
        evil.extend_from_slice(&[0u8; 1024]);
        let e = extract(&evil[..], &tmp).err().unwrap().to_string();
        assert!(e.contains("escapes"), "{e}");
        // A layer whose bytes do not match its name: nothing may be stored.
        let layer = tar_of(&[("f", b"1")]);
        let d = crate::store::sha256_digest(&layer);
        let config = import_config(&d, &RunConfig::default(), "").unwrap();
        let cd = crate::store::sha256_digest(&config);
        let manifest = format!(r#"[{{"Config":"blobs/sha256/{}","RepoTags":["x:1"],"Layers":["blobs/sha256/{}"]}}]"#, &cd[7..], &d[7..]);
        let archive = tar_of(&[
            (&format!("blobs/sha256/{}", &cd[7..]), &config[..]),
            (&format!("blobs/sha256/{}", &d[7..]), b"tampered"),
            ("manifest.json", manifest.as_bytes()),
        ]);
        let ex = extract(&archive[..], &tmp).unwrap();
        let imgs = ex.images().unwrap();
        let e = store_images(&s, &i, &ex, &imgs).unwrap_err().to_string();
        assert!(e.contains("digest"), "{e}");
        assert!(!s.has_blob(&cd) && i.all_records().is_empty(), "nothing half-written");
    }

    #[test]
    fn legacy_layout_with_symlinked_layers() {
        let (t, s, i) = setup();
        let layer = tar_of(&[("f", b"1")]);
        let d = crate::store::sha256_digest(&layer);
        let config = import_config(&d, &RunConfig::default(), "").unwrap();
        let cd = crate::store::sha256_digest(&config);
        let manifest = format!(r#"[{{"Config":"{}.json","RepoTags":null,"Layers":["b/layer.tar"]}}]"#, &cd[7..]);
        let mut b = tar::Builder::new(Vec::new());
        append(&mut b, &format!("{}.json", &cd[7..]), config.len() as u64, &config[..]).unwrap();
        append(&mut b, "a/layer.tar", layer.len() as u64, &layer[..]).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "b/layer.tar", "../a/layer.tar").unwrap();
        append(&mut b, "manifest.json", manifest.len() as u64, manifest.as_bytes()).unwrap();
        let archive = b.into_inner().unwrap();
        let ex = extract(&archive[..], &t.path().join("tmp")).unwrap();
        let imgs = ex.images().unwrap();
        assert!(imgs[0].tags.is_empty());
        assert_eq!(store_images(&s, &i, &ex, &imgs).unwrap(), vec![cd]);
    }

    #[test]
    fn changes_follow_dockerfile_syntax() {
        let mut r = RunConfig::default();
        let changes = [
            r#"CMD ["sh", "-c", "echo hi"]"#, "ENTRYPOINT /bin/echo", "ENV A=1 B=\"two words\"", "ENV C three four",
            "EXPOSE 80 53/udp", "LABEL k=v", "WORKDIR /app", "WORKDIR sub", "USER daemon", "VOLUME /data",
        ]
        .map(String::from);
        apply_changes(&mut r, &changes).unwrap();
        assert_eq!(r.cmd, Some(vec!["sh".into(), "-c".into(), "echo hi".into()]));
        assert_eq!(r.entrypoint, Some(vec!["/bin/sh".into(), "-c".into(), "/bin/echo".into()]));
        assert_eq!(r.env, ["A=1", "B=two words", "C=three four"]);
        assert!(r.exposed_ports.contains_key("80/tcp") && r.exposed_ports.contains_key("53/udp"));
        assert_eq!(r.labels["k"], "v");
        assert_eq!(r.working_dir, "/app/sub");
        assert_eq!(r.user, "daemon");
        assert!(r.volumes.contains_key("/data"));
        let e = apply_changes(&mut r, &["RUN echo".into()]).unwrap_err().to_string();
        assert_eq!(e, "RUN is not a valid change command");
    }

    #[test]
    fn spool_refuses_garbage_and_accepts_gzip() {
        let t = tempfile::tempdir().unwrap();
        let e = spool_layer(&b"definitely not a tar archive, just some words"[..], t.path()).err().unwrap();
        assert!(e.to_string().contains("not a valid tar"), "{e}");
        let layer = tar_of(&[("f", b"1")]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&layer).unwrap();
        let s = spool_layer(&gz.finish().unwrap()[..], t.path()).unwrap();
        assert_eq!(s.digest, crate::store::sha256_digest(&layer));
    }
}
