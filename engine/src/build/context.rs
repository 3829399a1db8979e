//! Unpacking the build context, and hashing its files on the way.
//!
//! The context arrives as one tar stream. It is unpacked as [`crate::store::unpack_tar`]
//! unpacks a layer (same checks, same whiteout handling, same errors), and every
//! regular file's SHA-256 is computed from the bytes as they pass, so COPY/ADD can
//! work out their cache key without reading the files again: a fully cached build
//! then touches the context's bytes once.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::mpsc::{sync_channel, SyncSender};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::store::{unpack_entries, UnpackObserver};

/// SHA-256 of the content of each regular file the context unpacked, by its path
/// on disk (`<context dir>/<relative path>`, as [`super::copy::Tree::lookup`] gives it).
pub type Digests = HashMap<PathBuf, [u8; 32]>;

/// What the unpacking thread tells the hashing thread. Hashing runs beside the
/// writing of the files (SHA-256 of a 50 MB context takes as long as writing it),
/// so a cached build waits for the slower of the two, not for both.
enum Work {
    Start,
    Bytes(Vec<u8>),
    /// The file's bytes are all sent: keep its digest under this path.
    Done(PathBuf),
    /// The file was not written whole: drop what was hashed.
    Drop,
    /// An entry replaced whatever was at this path.
    Forget(PathBuf),
}

/// Chunks in flight before the unpacking waits for the hasher (bounded memory).
const IN_FLIGHT: usize = 512;

/// The entry being unpacked: the bytes still expected, and how many came.
struct Tapping {
    left: u64,
    seen: u64,
}

/// Passes the archive's bytes through, sending them to the hasher while `state` is
/// set. The tar reader reads an entry's data straight from here (it has no buffer of
/// its own) and only that entry's data while it unpacks the entry, so what passes
/// during `unpack_in` is exactly the file's content. `seen == size` afterwards is
/// checked, and a file whose count does not match gets no digest (COPY then reads it).
struct Tap<R> {
    inner: R,
    state: Rc<RefCell<Option<Tapping>>>,
    work: SyncSender<Work>,
}

impl<R: Read> Read for Tap<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(t) = self.state.borrow_mut().as_mut() {
            let k = (n as u64).min(t.left) as usize;
            if k > 0 {
                // A closed channel means the hasher died: the digests are then missing,
                // which only costs COPY a re-read.
                let _ = self.work.send(Work::Bytes(buf[..k].to_vec()));
            }
            t.left -= k as u64;
            t.seen += k as u64;
        }
        Ok(n)
    }
}

/// Tells the hasher where each file starts and ends.
struct Hashes {
    state: Rc<RefCell<Option<Tapping>>>,
    work: SyncSender<Work>,
}

impl UnpackObserver for Hashes {
    fn replaced(&mut self, on_disk: &Path) {
        // Whatever an entry makes at a path replaces an earlier file's digest.
        let _ = self.work.send(Work::Forget(on_disk.to_path_buf()));
    }

    fn file_starts(&mut self, _on_disk: &Path, size: u64) {
        *self.state.borrow_mut() = Some(Tapping { left: size, seen: 0 });
        let _ = self.work.send(Work::Start);
    }

    fn file_done(&mut self, on_disk: &Path, size: u64, written: bool) {
        let tapped = self.state.borrow_mut().take();
        let whole = written && tapped.is_some_and(|t| t.seen == size);
        let _ = self.work.send(if whole { Work::Done(on_disk.to_path_buf()) } else { Work::Drop });
    }
}

fn hasher(work: std::sync::mpsc::Receiver<Work>) -> Digests {
    let mut digests = Digests::new();
    let mut current = Sha256::new();
    for w in work {
        match w {
            Work::Start => current = Sha256::new(),
            Work::Bytes(b) => current.update(&b),
            Work::Done(path) => {
                digests.insert(path, std::mem::take(&mut current).finalize().into());
            }
            Work::Drop => current = Sha256::new(),
            Work::Forget(path) => {
                digests.remove(&path);
            }
        }
    }
    digests
}

/// Unpacks the context tar `r` into `dest` and returns the digests of its regular
/// files. Errors read like [`crate::store::unpack_tar`]'s: it is the same unpacking.
pub fn unpack(r: impl Read, dest: &Path) -> Result<Digests> {
    let (tx, rx) = sync_channel(IN_FLIGHT);
    let hashing = std::thread::Builder::new()
        .name("context-hash".into())
        .spawn(move || hasher(rx))
        .map_err(|e| Error::Runtime(format!("start hashing the context: {e}")))?;
    let state = Rc::new(RefCell::new(None));
    let unpacked = {
        let mut ar = tar::Archive::new(Tap { inner: r, state: state.clone(), work: tx.clone() });
        let mut hashes = Hashes { state, work: tx };
        unpack_entries(&mut ar, dest, &mut hashes)
        // Both senders drop here: the hasher finishes what is queued and returns.
    };
    let digests = hashing.join().map_err(|_| Error::Runtime("hashing the context failed".into()))?;
    unpacked?;
    Ok(digests)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::tar_of;

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
            assert_eq!(std::fs::read(&path).unwrap(), want);
            assert_eq!(d[&path], <[u8; 32]>::from(Sha256::digest(want)), "{p}");
        }
        // A truncated archive is an error.
        let t2 = tempfile::tempdir().unwrap();
        let ar = tar_of(&[("big", &big)]);
        assert!(unpack(&ar[..100_000], t2.path()).is_err());
    }
}
