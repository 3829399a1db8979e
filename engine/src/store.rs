//! The content store: blobs addressed by sha256, and layers unpacked once per chain id
//! so overlayfs can use them as read-only lower directories.
//!
//! ```text
//! <root>/blobs/sha256/<hex>      bytes, verified before they become visible
//! <root>/layers/<chain-hex>/     unpacked layer (overlay whiteouts)
//! <root>/layers/<chain-hex>.json { diff_id, size }
//! ```

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::{Condvar, Mutex};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Context, Error, Result};
use crate::fsutil;

pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The chain id of a stack of layers (OCI image spec, config.md "Layer ChainID").
pub fn chain_id(diff_ids: &[String]) -> String {
    let mut chain = diff_ids[0].clone();
    for d in &diff_ids[1..] {
        chain = sha256_digest(format!("{chain} {d}").as_bytes());
    }
    chain
}

fn hex_of(digest: &str) -> Result<&str> {
    crate::reference::validate_digest(digest)?;
    Ok(&digest[7..])
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerInfo {
    pub diff_id: String,
    /// Bytes of the unpacked files, what `docker images` adds up as SIZE.
    pub size: u64,
}

pub struct Store {
    root: PathBuf,
    /// Blobs some pull is fetching now (see [`Store::fetching`]).
    fetching: Mutex<HashSet<String>>,
    fetched: Condvar,
}

/// A blob being fetched: while it is held, others asking for the same digest wait.
pub struct Fetching<'a> {
    store: &'a Store,
    digest: String,
}

impl Drop for Fetching<'_> {
    fn drop(&mut self) {
        self.store.fetching.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.digest);
        self.store.fetched.notify_all();
    }
}

impl Store {
    pub fn open(root: &Path) -> Result<Store> {
        for d in ["blobs/sha256", "layers", "tmp"] {
            fs::create_dir_all(root.join(d)).ctx(|| format!("create {}", root.join(d).display()))?;
        }
        Ok(Store { root: root.to_path_buf(), fetching: Mutex::new(HashSet::new()), fetched: Condvar::new() })
    }

    /// Waits until no one else is fetching `digest`, then marks it as ours until the
    /// guard drops. When a whole class pulls the same image at once, the first pull
    /// downloads each layer and the others, finding it stored after the wait, do not
    /// fetch it again.
    pub fn fetching(&self, digest: &str) -> Fetching<'_> {
        let mut busy = self.fetching.lock().unwrap_or_else(|p| p.into_inner());
        while busy.contains(digest) {
            busy = self.fetched.wait(busy).unwrap_or_else(|p| p.into_inner());
        }
        busy.insert(digest.to_string());
        Fetching { store: self, digest: digest.to_string() }
    }

    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        Ok(self.root.join("blobs/sha256").join(hex_of(digest)?))
    }

    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).map(|p| p.exists()).unwrap_or(false)
    }

    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let p = self.blob_path(digest)?;
        fs::read(&p).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::NotFound(format!("blob unknown: {digest}")),
            _ => Error::Io { context: format!("read {}", p.display()), source: e },
        })
    }

    /// Stores bytes and returns their digest.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<String> {
        let digest = sha256_digest(bytes);
        let path = self.blob_path(&digest)?;
        if !path.exists() {
            fsutil::write_atomic(&path, bytes)?;
        }
        Ok(digest)
    }

    /// Streams a blob in; it becomes visible only if its bytes hash to `expected`
    /// (when given). Returns (digest, size).
    pub fn put_blob_from(&self, mut r: impl Read, expected: Option<&str>) -> Result<(String, u64)> {
        let tmp = self.root.join("tmp").join(fsutil::random_id());
        let mut f = fs::File::create(&tmp).ctx(|| format!("create {}", tmp.display()))?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut size = 0u64;
        let result = (|| -> Result<String> {
            loop {
                let n = r.read(&mut buf).ctx(|| "read blob stream".into())?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
                f.write_all(&buf[..n]).ctx(|| format!("write {}", tmp.display()))?;
                size += n as u64;
            }
            f.sync_all().ctx(|| format!("fsync {}", tmp.display()))?;
            let digest = format!("sha256:{}", hex::encode(h.finalize_reset()));
            if let Some(e) = expected {
                if e != digest {
                    return Err(Error::InvalidArgument(format!(
                        "digest mismatch: expected {e}, got {digest}"
                    )));
                }
            }
            let path = self.blob_path(&digest)?;
            fs::rename(&tmp, &path).ctx(|| format!("rename to {}", path.display()))?;
            Ok(digest)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result.map(|d| (d, size))
    }

    pub fn remove_blob(&self, digest: &str) -> Result<()> {
        match fs::remove_file(self.blob_path(digest)?) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e).ctx(|| format!("remove blob {digest}")),
            _ => Ok(()),
        }
    }

    pub fn layer_dir(&self, chain_id: &str) -> Result<PathBuf> {
        Ok(self.root.join("layers").join(hex_of(chain_id)?))
    }

    pub fn layer_info(&self, chain_id: &str) -> Result<Option<LayerInfo>> {
        fsutil::read_json(&self.root.join("layers").join(format!("{}.json", hex_of(chain_id)?)))
    }

    /// Unpacks the layer blob `blob` (tar, maybe gzip) as the layer on top of `parents`
    /// (their diff ids). Returns the new layer's diff id and chain id; a layer already
    /// unpacked is not unpacked again.
    pub fn unpack_layer(&self, blob: &str, parents: &[String]) -> Result<(String, String)> {
        let path = self.blob_path(blob)?;
        let raw = fs::File::open(&path).ctx(|| format!("open layer {blob}"))?;
        let mut head = [0u8; 2];
        let n = { (&raw).read(&mut head).ctx(|| "read layer".into())? };
        drop(raw);
        let file = fs::File::open(&path).ctx(|| format!("open layer {blob}"))?;
        let gz = n == 2 && head == [0x1f, 0x8b];
        // diff id = sha256 of the uncompressed tar; hash while unpacking.
        let mut hashing = HashingReader { inner: decompressor(file, gz), hasher: Sha256::new() };
        let tmp = self.root.join("tmp").join(format!("layer-{}", fsutil::random_id()));
        fs::create_dir_all(&tmp).ctx(|| format!("create {}", tmp.display()))?;
        let unpacked = unpack_tar(&mut hashing, &tmp).and_then(|size| {
            // Drain what tar did not read (padding) so the hash covers the whole stream.
            io::copy(&mut hashing, &mut io::sink()).ctx(|| "read layer".into())?;
            Ok(size)
        });
        let size = match unpacked {
            Ok(s) => s,
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                return Err(e);
            }
        };
        let diff_id = format!("sha256:{}", hex::encode(hashing.hasher.finalize()));
        let mut ids = parents.to_vec();
        ids.push(diff_id.clone());
        let chain = chain_id(&ids);
        let dir = self.layer_dir(&chain)?;
        if dir.exists() {
            let _ = fs::remove_dir_all(&tmp);
        } else {
            fs::rename(&tmp, &dir).ctx(|| format!("rename to {}", dir.display()))?;
        }
        fsutil::write_json(
            &self.root.join("layers").join(format!("{}.json", hex_of(&chain)?)),
            &LayerInfo { diff_id: diff_id.clone(), size },
        )?;
        Ok((diff_id, chain))
    }

    pub fn remove_layer(&self, chain_id: &str) -> Result<()> {
        let dir = self.layer_dir(chain_id)?;
        let _ = fs::remove_file(self.root.join("layers").join(format!("{}.json", hex_of(chain_id)?)));
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e).ctx(|| format!("remove {}", dir.display())),
            _ => Ok(()),
        }
    }
}

fn decompressor(f: fs::File, gz: bool) -> Box<dyn Read> {
    let r = io::BufReader::new(f);
    if gz {
        Box::new(flate2::read::GzDecoder::new(r))
    } else {
        Box::new(r)
    }
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Unpacks a layer tar into `dest`, turning AUFS-style whiteouts (`.wh.name`,
/// `.wh..wh..opq`) into overlayfs ones (0/0 char device, `trusted.overlay.opaque`).
/// Returns the bytes of regular files written.
pub fn unpack_tar(r: impl Read, dest: &Path) -> Result<u64> {
    unpack_entries(&mut tar::Archive::new(r), dest, &mut NoObserver)
}

/// Told about each entry [`unpack_entries`] writes, for callers that learn something
/// per file on the way (the build context hashes its files).
pub(crate) trait UnpackObserver {
    /// Something new is at `on_disk` (or a whiteout hid what was there).
    fn replaced(&mut self, _on_disk: &Path) {}
    /// A regular file of `size` bytes is about to be read and written at `on_disk`.
    fn file_starts(&mut self, _on_disk: &Path, _size: u64) {}
    /// That file is done; `written` is false if the tar reader skipped it.
    fn file_done(&mut self, _on_disk: &Path, _size: u64, _written: bool) {}
    /// Whether to keep this regular file's content in memory rather than write it:
    /// the file is then made at its full size with no data (a hole), and
    /// `kept_chunk` gets the content, in order, a piece at a time as it is read.
    fn keep(&mut self, _on_disk: &Path, _size: u64) -> bool {
        false
    }
    /// A buffer of `len` bytes to read the next piece of a kept file into.
    fn kept_buffer(&mut self, len: usize) -> Vec<u8> {
        vec![0; len]
    }
    /// The next piece of the content of the file `keep` chose last.
    fn kept_chunk(&mut self, _chunk: Vec<u8>) {}
}

struct NoObserver;
impl UnpackObserver for NoObserver {}

/// The body of [`unpack_tar`], on an archive the caller made (e.g. over a reader
/// that watches the bytes).
pub(crate) fn unpack_entries<R: Read>(ar: &mut tar::Archive<R>, dest: &Path, obs: &mut dyn UnpackObserver) -> Result<u64> {
    // Only root can give files away or set trusted xattrs. A server that is not root
    // runs wasm images only (see `runtime::probe_linux`), whose files it then owns.
    let root = nix::unistd::geteuid().is_root();
    ar.set_preserve_permissions(true);
    ar.set_preserve_ownerships(root);
    // Attributes are set here, after each entry is in place (the tar crate sets them
    // on regular files only), and only those a layer keeps (see `xattrs`).
    ar.set_unpack_xattrs(false);
    ar.set_overwrite(true);
    let mut size = 0;
    let bad = |m: String| Error::InvalidArgument(format!("invalid layer tar: {m}"));
    for entry in ar.entries().map_err(|e| bad(e.to_string()))? {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        let path = entry.path().map_err(|e| bad(e.to_string()))?.into_owned();
        if path.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(bad(format!("path escapes the layer: {}", path.display())));
        }
        // Where the tar crate puts it: the normal components under dest.
        let on_disk = path.components().filter(|c| matches!(c, Component::Normal(_))).fold(dest.to_path_buf(), |p, c| p.join(c));
        obs.replaced(&on_disk);
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name == ".wh..wh..opq" {
            let dir = dest.join(path.parent().unwrap_or(Path::new("")));
            fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
            set_xattr(&dir, "trusted.overlay.opaque", b"y")?;
            continue;
        }
        if let Some(hidden) = name.strip_prefix(".wh.") {
            let parent = dest.join(path.parent().unwrap_or(Path::new("")));
            fs::create_dir_all(&parent).ctx(|| format!("create {}", parent.display()))?;
            let target = parent.join(hidden);
            let _ = fs::remove_file(&target);
            nix::sys::stat::mknod(
                &target,
                nix::sys::stat::SFlag::S_IFCHR,
                nix::sys::stat::Mode::empty(),
                0,
            )
            .ctx(|| format!("whiteout {}", target.display()))?;
            obs.replaced(&target);
            continue;
        }
        let kind = entry.header().entry_type();
        if kind.is_file() {
            size += entry.header().size().unwrap_or(0);
        }
        if let Some(parent) = path.parent() {
            // Layers may omit parent directory entries.
            fs::create_dir_all(dest.join(parent)).ctx(|| format!("create {}", parent.display()))?;
        }
        // Only root may set trusted.* and security.* attributes.
        let mut attrs = crate::xattrs::from_pax(&mut entry).map_err(|e| bad(format!("{}: {e}", path.display())))?;
        attrs.retain(|(n, _)| root || n.starts_with("user."));
        let with_attrs = |placed: io::Result<()>| placed.and_then(|()| crate::xattrs::apply(&on_disk, &attrs)).map_err(|e| bad(format!("{}: {e}", path.display())));
        if matches!(kind, tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo) {
            // The tar crate would write these as regular files.
            with_attrs(place_node(&entry, dest, &on_disk, root))?;
            continue;
        }
        // Only plain files are read in one piece (a sparse entry's data is not).
        let file_size = entry.header().size().ok().filter(|_| matches!(kind, tar::EntryType::Regular | tar::EntryType::Continuous));
        if let Some(sz) = file_size.filter(|sz| obs.keep(&on_disk, *sz)) {
            with_attrs(place_kept_file(&mut entry, dest, &on_disk, sz, obs))?;
            continue;
        }
        if let Some(sz) = file_size {
            obs.file_starts(&on_disk, sz);
        }
        let unpacked = entry.unpack_in(dest);
        if let Some(sz) = file_size {
            obs.file_done(&on_disk, sz, matches!(unpacked, Ok(true)));
        }
        let placed = unpacked.map_err(|e| {
            let cause = std::error::Error::source(&e).map(|s| format!(": {s}")).unwrap_or_default();
            bad(format!("{}: {e}{cause}", path.display()))
        })?;
        if placed && !attrs.is_empty() {
            // After the owner and mode: a chown clears security.capability.
            with_attrs(Ok(()))?;
        }
    }
    Ok(size)
}

/// Makes a device node or FIFO entry, with its mode, owner and mtime. Checks what
/// `unpack_in` checks: it lands inside `dest` even through symlinks, and replaces
/// anything but a directory. Without root, device nodes cannot be made and are left
/// out (as a rootless Docker does); FIFOs can.
fn place_node<R: Read>(entry: &tar::Entry<R>, dest: &Path, on_disk: &Path, root: bool) -> io::Result<()> {
    use nix::sys::stat::{Mode, SFlag};
    let header = entry.header();
    let kind = match header.entry_type() {
        tar::EntryType::Char => SFlag::S_IFCHR,
        tar::EntryType::Block => SFlag::S_IFBLK,
        _ => SFlag::S_IFIFO,
    };
    if kind != SFlag::S_IFIFO && !root {
        tracing::debug!("{}: a device node, which only root can make", on_disk.display());
        return Ok(());
    }
    let parent = on_disk.parent().ok_or_else(|| io::Error::other("no parent directory"))?;
    if !fs::canonicalize(parent)?.starts_with(fs::canonicalize(dest)?) {
        return Err(io::Error::other("the path escapes the archive's root through a symlink"));
    }
    match fs::symlink_metadata(on_disk) {
        Ok(m) if m.is_dir() => return Err(io::Error::other("a directory is in the way")),
        Ok(_) => fs::remove_file(on_disk)?,
        Err(_) => {}
    }
    let dev = nix::sys::stat::makedev(u64::from(header.device_major()?.unwrap_or(0)), u64::from(header.device_minor()?.unwrap_or(0)));
    nix::sys::stat::mknod(on_disk, kind, Mode::empty(), dev)?;
    if root {
        std::os::unix::fs::lchown(on_disk, Some(header.uid()? as u32), Some(header.gid()? as u32))?;
    }
    // After the chown, which clears set-id bits; not through the node (never opened).
    fs::set_permissions(on_disk, std::os::unix::fs::PermissionsExt::from_mode(header.mode()? & 0o7777))?;
    let mtime = nix::sys::time::TimeSpec::new(header.mtime().unwrap_or(0) as i64, 0);
    nix::sys::stat::utimensat(None, on_disk, &mtime, &mtime, nix::sys::stat::UtimensatFlags::NoFollowSymlink)?;
    Ok(())
}

/// The size of the pieces a kept file's content is read in (the last may be shorter).
pub(crate) const KEPT_PIECE: usize = 1 << 20;

/// Makes a regular file whose content the observer keeps: the entry's metadata
/// (mode, mtime, owner when root) and size, but a hole for data. Checks what
/// `unpack_in` checks: the file lands inside `dest` even through symlinks, and
/// replaces anything but a directory.
fn place_kept_file<R: Read>(entry: &mut tar::Entry<R>, dest: &Path, on_disk: &Path, size: u64, obs: &mut dyn UnpackObserver) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let parent = on_disk.parent().ok_or_else(|| io::Error::other("no parent directory"))?;
    if !fs::canonicalize(parent)?.starts_with(fs::canonicalize(dest)?) {
        return Err(io::Error::other("the path escapes the archive's root through a symlink"));
    }
    match fs::symlink_metadata(on_disk) {
        Ok(m) if m.is_dir() => return Err(io::Error::other("a directory is in the way")),
        Ok(_) => fs::remove_file(on_disk)?,
        Err(_) => {}
    }
    let header = entry.header();
    let mode = header.mode()? & 0o7777;
    let mtime = std::time::UNIX_EPOCH + std::time::Duration::from_secs(header.mtime().unwrap_or(0));
    let owner = (header.uid()?, header.gid()?);
    // In pieces, so whoever keeps them can work on each (hash it) while the next one
    // is still arriving.
    let mut read = 0;
    while read < size {
        let want = (KEPT_PIECE as u64).min(size - read);
        let mut piece = obs.kept_buffer(want as usize);
        entry.read_exact(&mut piece).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => io::Error::other(format!("the archive ended inside the file (at {read} of {size} bytes)")),
            _ => e,
        })?;
        read += want;
        obs.kept_chunk(piece);
    }
    let f = fs::OpenOptions::new().write(true).create_new(true).custom_flags(libc::O_NOFOLLOW).open(on_disk)?;
    f.set_len(size)?;
    if nix::unistd::geteuid().is_root() {
        std::os::unix::fs::fchown(&f, Some(owner.0 as u32), Some(owner.1 as u32))?;
    }
    // After the chown, which clears set-id bits.
    f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
    f.set_modified(mtime)
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) -> Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let p = CString::new(path.as_os_str().as_bytes()).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    let n = CString::new(name).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    // SAFETY: both strings are NUL-terminated and outlive the call.
    let rc = unsafe { libc::lsetxattr(p.as_ptr(), n.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    if rc != 0 {
        return Err(io::Error::last_os_error()).ctx(|| format!("setxattr {name} on {}", path.display()));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A tar of regular files (path, content), owned by root, mtime 0: the test
    /// input of the layer and build-context unpacking tests.
    pub(crate) fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            b.append_data(&mut header(tar::EntryType::Regular, data.len() as u64, 0o644, 0), name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    /// A root-owned tar header, for tests that need another kind, mode or mtime.
    pub(crate) fn header(kind: tar::EntryType, size: u64, mode: u32, mtime: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(mtime);
        h
    }

    #[test]
    fn blobs_are_content_addressed_and_verified() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let d = s.put_blob(b"hello").unwrap();
        assert_eq!(d, "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824");
        assert_eq!(s.read_blob(&d).unwrap(), b"hello");
        let wrong = format!("sha256:{}", "0".repeat(64));
        assert!(s.put_blob_from(&b"other"[..], Some(&wrong)).is_err());
        assert!(!s.has_blob(&wrong));
        assert_eq!(fs::read_dir(t.path().join("tmp")).unwrap().count(), 0, "no partial blob left");
    }

    #[test]
    fn unpacks_layers_with_whiteouts() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let l1 = s.put_blob(&tar_of(&[("a/file", b"x"), ("b", b"yy")])).unwrap();
        let (d1, c1) = s.unpack_layer(&l1, &[]).unwrap();
        assert_eq!(d1, l1, "uncompressed: diff id is the blob digest");
        assert_eq!(c1, d1);
        assert_eq!(fs::read(s.layer_dir(&c1).unwrap().join("a/file")).unwrap(), b"x");
        assert_eq!(s.layer_info(&c1).unwrap().unwrap().size, 3);
        let l2 = s.put_blob(&tar_of(&[(".wh.b", b"")])).unwrap();
        let (_, c2) = s.unpack_layer(&l2, std::slice::from_ref(&d1)).unwrap();
        use std::os::unix::fs::FileTypeExt;
        let wh = fs::symlink_metadata(s.layer_dir(&c2).unwrap().join("b")).unwrap();
        assert!(wh.file_type().is_char_device());
    }

    /// Attributes in PAX records land on every kind of entry (a directory here);
    /// overlayfs' own never do, so a layer cannot make a directory opaque but by
    /// `.wh..wh..opq`.
    #[test]
    fn pax_attributes_land_but_overlay_ones_do_not() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        let attrs = vec![("trusted.overlay.opaque".to_string(), b"y".to_vec()), ("user.kind".to_string(), b"dir".to_vec())];
        crate::xattrs::append_pax(&mut b, &attrs).unwrap();
        b.append_data(&mut header(tar::EntryType::Directory, 0, 0o755, 0), "d/", io::empty()).unwrap();
        b.append_data(&mut header(tar::EntryType::Regular, 0, 0o644, 0), "e/.wh..wh..opq", io::empty()).unwrap();
        let l = s.put_blob(&b.into_inner().unwrap()).unwrap();
        let (_, c) = s.unpack_layer(&l, &[]).unwrap();
        let dir = s.layer_dir(&c).unwrap();
        assert_eq!(xattr::get(dir.join("d"), "user.kind").unwrap().as_deref(), Some(&b"dir"[..]));
        assert!(!crate::xattrs::is_opaque(&dir.join("d")));
        assert!(crate::xattrs::is_opaque(&dir.join("e")));
        assert!(!dir.join("e/.wh..wh..opq").exists());
    }

    #[test]
    fn refuses_escaping_paths() {
        let t = tempfile::tempdir().unwrap();
        let s = Store::open(t.path()).unwrap();
        // tar::Builder refuses "..", so write the header by hand.
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..7].copy_from_slice(b"../evil");
        h.set_size(0);
        h.set_cksum();
        let mut bytes = h.as_bytes().to_vec();
        bytes.extend_from_slice(&[0u8; 1024]);
        let l = s.put_blob(&bytes).unwrap();
        let e = s.unpack_layer(&l, &[]).unwrap_err().to_string();
        assert!(e.contains("escapes"), "{e}");
        assert!(!t.path().join("evil").exists());
    }
}
