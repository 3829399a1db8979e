//! Unpacking the build context, and hashing its files on the way.
//!
//! The context arrives as one tar stream. It is unpacked as [`crate::store::unpack_tar`]
//! unpacks a layer (same checks, same whiteout handling, same errors), and every
//! regular file's SHA-256 is computed from the bytes as they pass, so COPY/ADD can
//! work out their cache key without reading the files again: a fully cached build
//! then touches the context's bytes once.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use sha2::{Digest, Sha256};

use crate::error::{Context, Error, Result};

/// SHA-256 of the content of each regular file the context unpacked, by its path
/// on disk (`<context dir>/<relative path>`, as [`super::copy::Tree::lookup`] gives it).
pub type Digests = HashMap<PathBuf, [u8; 32]>;

/// The hash of the entry being unpacked: the bytes still expected, and how many came.
struct Tapping {
    hasher: Sha256,
    left: u64,
    seen: u64,
}

/// Passes the archive's bytes through, hashing them while `state` is set. The tar
/// reader reads an entry's data straight from here (it has no buffer of its own) and
/// only that entry's data while it unpacks the entry, so what passes during
/// `unpack_in` is exactly the file's content. `seen == size` afterwards is checked,
/// and a file whose count does not match gets no digest (COPY then reads it).
struct Tap<R> {
    inner: R,
    state: Rc<RefCell<Option<Tapping>>>,
}

impl<R: Read> Read for Tap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(t) = self.state.borrow_mut().as_mut() {
            let k = (n as u64).min(t.left) as usize;
            t.hasher.update(&buf[..k]);
            t.left -= k as u64;
            t.seen += k as u64;
        }
        Ok(n)
    }
}

/// Unpacks the context tar `r` into `dest` and returns the digests of its regular
/// files. Errors read like [`crate::store::unpack_tar`]'s.
pub fn unpack(r: impl Read, dest: &Path) -> Result<Digests> {
    let state = Rc::new(RefCell::new(None));
    let mut ar = tar::Archive::new(Tap { inner: r, state: state.clone() });
    ar.set_preserve_permissions(true);
    ar.set_preserve_ownerships(true);
    ar.set_unpack_xattrs(true);
    ar.set_overwrite(true);
    let mut digests = Digests::new();
    let bad = |m: String| Error::InvalidArgument(format!("invalid layer tar: {m}"));
    for entry in ar.entries().map_err(|e| bad(e.to_string()))? {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        let path = entry.path().map_err(|e| bad(e.to_string()))?.into_owned();
        if path.components().any(|c| matches!(c, Component::ParentDir)) {
            return Err(bad(format!("path escapes the layer: {}", path.display())));
        }
        // Where the tar crate puts it: the normal components under dest.
        let on_disk = path.components().filter(|c| matches!(c, Component::Normal(_))).fold(dest.to_path_buf(), |p, c| p.join(c));
        // Whatever this entry makes at that path replaces an earlier file's digest.
        digests.remove(&on_disk);
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name == ".wh..wh..opq" {
            let dir = dest.join(path.parent().unwrap_or(Path::new("")));
            fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
            set_opaque(&dir)?;
            continue;
        }
        if let Some(hidden) = name.strip_prefix(".wh.") {
            let parent = dest.join(path.parent().unwrap_or(Path::new("")));
            fs::create_dir_all(&parent).ctx(|| format!("create {}", parent.display()))?;
            let target = parent.join(hidden);
            let _ = fs::remove_file(&target);
            nix::sys::stat::mknod(&target, nix::sys::stat::SFlag::S_IFCHR, nix::sys::stat::Mode::empty(), 0)
                .ctx(|| format!("whiteout {}", target.display()))?;
            digests.remove(&target);
            continue;
        }
        if let Some(parent) = path.parent() {
            // Layers may omit parent directory entries.
            fs::create_dir_all(dest.join(parent)).ctx(|| format!("create {}", parent.display()))?;
        }
        // Only plain files: their data is read in one piece (a sparse entry's is not).
        let kind = entry.header().entry_type();
        let size = entry.header().size().ok().filter(|_| matches!(kind, tar::EntryType::Regular | tar::EntryType::Continuous));
        if let Some(size) = size {
            *state.borrow_mut() = Some(Tapping { hasher: Sha256::new(), left: size, seen: 0 });
        }
        let unpacked = entry.unpack_in(dest);
        let tapped = state.borrow_mut().take();
        let unpacked = unpacked.map_err(|e| {
            let cause = std::error::Error::source(&e).map(|s| format!(": {s}")).unwrap_or_default();
            bad(format!("{}: {e}{cause}", path.display()))
        })?;
        if let (true, Some(size), Some(t)) = (unpacked, size, tapped) {
            if t.seen == size {
                digests.insert(on_disk, t.hasher.finalize().into());
            }
        }
    }
    Ok(digests)
}

/// Marks `dir` opaque as overlayfs does (`trusted.overlay.opaque=y`).
fn set_opaque(dir: &Path) -> Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let p = CString::new(dir.as_os_str().as_bytes()).map_err(|e| Error::InvalidArgument(e.to_string()))?;
    let n = CString::new("trusted.overlay.opaque").map_err(|e| Error::InvalidArgument(e.to_string()))?;
    // SAFETY: both strings are NUL-terminated and outlive the call; the value is 1 byte.
    let rc = unsafe { libc::lsetxattr(p.as_ptr(), n.as_ptr(), b"y".as_ptr().cast(), 1, 0) };
    if rc != 0 {
        return Err(io::Error::last_os_error()).ctx(|| format!("setxattr trusted.overlay.opaque on {}", dir.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, content) in files {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(0);
            h.set_size(content.len() as u64);
            b.append_data(&mut h, path, *content).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn digests_match_the_unpacked_files() {
        let t = tempfile::tempdir().unwrap();
        let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let ar = tar_of(&[("./Dockerfile", b"FROM busybox\n"), ("dir/big", &big), ("empty", b""), ("dir/big", b"again")]);
        // One byte at a time: the digests must not depend on how the reads fall.
        struct Slow<'a>(&'a [u8]);
        impl Read for Slow<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(buf.len()).min(1);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let d = unpack(Slow(&ar), t.path()).unwrap();
        assert_eq!(d.len(), 3);
        for (p, want) in [("Dockerfile", &b"FROM busybox\n"[..]), ("dir/big", b"again"), ("empty", b"")] {
            let path = t.path().join(p);
            assert_eq!(fs::read(&path).unwrap(), want);
            assert_eq!(d[&path], <[u8; 32]>::from(Sha256::digest(want)), "{p}");
        }
        // A truncated archive is an error.
        let t2 = tempfile::tempdir().unwrap();
        let ar = tar_of(&[("big", &big)]);
        assert!(unpack(&ar[..100_000], t2.path()).is_err());
    }
}
