//! Unpacking the build context, and hashing its files on the way.
//!
//! The context arrives as one tar stream. It is unpacked as [`crate::store::unpack_tar`]
//! unpacks a layer (same checks, same whiteout handling, same errors), and every
//! regular file's digest is computed from the bytes as they pass, so COPY/ADD can
//! work out their cache key without reading the files again: a fully cached build
//! then touches the context's bytes once.
//!
//! Large files are not even written: their content stays in memory ([`Kept`]) and the
//! file on disk is a hole of the right size, mode and mtime, which is all a cache
//! check looks at. A step that needs the bytes (a COPY that misses the cache, an
//! ADD, the Dockerfile itself) writes them first. Writing a big context to disk and
//! deleting it again was most of a cached build's time.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::store::{unpack_entries, UnpackObserver, KEPT_PIECE as PIECE};

/// The content digest of each regular file the context unpacked, by its path on disk
/// (`<context dir>/<relative path>`, as [`super::copy::Tree::lookup`] gives it).
pub type Digests = HashMap<PathBuf, [u8; 32]>;

/// The hash of a file's content in a COPY/ADD cache key: BLAKE3, as collision-proof as
/// SHA-256 for a cache shared by a class, and several times faster, which a cached
/// build of a large context waits for. Every file digest in a key comes from here.
pub type FileHasher = blake3::Hasher;

/// What the unpacking thread tells the hashing thread. Hashing runs beside the
/// writing of the files (hashing a 50 MB context takes about as long as writing it),
/// so a cached build waits for the slower of the two, not for both.
enum Work {
    Start,
    Bytes(Arc<Vec<u8>>),
    /// The file's bytes are all sent: keep its digest under this path.
    Done(PathBuf),
    /// The file was not written whole: drop what was hashed.
    Drop,
    /// An entry replaced whatever was at this path.
    Forget(PathBuf),
}

/// Files of at least this size are kept in memory rather than written (smaller ones
/// cost little to write, and the Dockerfile is among them).
const KEEP_FROM: u64 = 1 << 20;
/// At most this much is kept by all builds at once (a class may build together);
/// beyond it files are written as they come, as smaller ones are.
const KEEP_AT_MOST: u64 = 1 << 30;
/// What all builds keep now.
static KEPT_NOW: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Pieces kept for the next build once this one is done, at most this many bytes:
/// fresh memory costs a page fault per 4 KiB, which a large context then pays again
/// on every build. The pool stays resident (up to this much) after a big build.
const POOL_AT_MOST: usize = 256 << 20;

static POOL: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());

/// A buffer of `len` (at most `PIECE`) bytes, from the pool when it has one.
fn buffer(len: usize) -> Vec<u8> {
    let reused = POOL.lock().unwrap_or_else(|p| p.into_inner()).pop();
    let mut b = reused.unwrap_or_else(|| vec![0; PIECE]);
    b.truncate(len);
    b
}

/// Gives pieces no one else holds back to the pool.
fn recycle(pieces: Vec<Arc<Vec<u8>>>) {
    let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
    for p in pieces {
        if let Ok(mut b) = Arc::try_unwrap(p) {
            if b.capacity() == PIECE && (pool.len() + 1) * PIECE <= POOL_AT_MOST {
                // Its bytes are initialised up to the old length; the rest is zeroed once.
                b.resize(PIECE, 0);
                pool.push(b);
            }
        }
    }
}

/// The content of the context's large files, not yet on disk (see the module doc).
#[derive(Default)]
pub struct Kept {
    /// Each file's content, in the pieces it came in.
    files: HashMap<PathBuf, Vec<Arc<Vec<u8>>>>,
    /// The sizes of those files, counted in `KEPT_NOW`.
    sizes: HashMap<PathBuf, u64>,
}

impl Kept {
    /// Counts `size` more bytes for `path` if all builds stay within `KEEP_AT_MOST`.
    fn reserve(&mut self, path: &Path, size: u64) -> bool {
        use std::sync::atomic::Ordering;
        let fits = KEPT_NOW.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| (now + size <= KEEP_AT_MOST).then_some(now + size)).is_ok();
        if fits {
            self.sizes.insert(path.to_path_buf(), size);
            self.files.insert(path.to_path_buf(), Vec::new());
        }
        fits
    }

    /// Forgets a file (written, or replaced by a later entry) and its memory.
    fn release(&mut self, path: &Path) -> Option<Vec<Arc<Vec<u8>>>> {
        if let Some(size) = self.sizes.remove(path) {
            KEPT_NOW.fetch_sub(size, std::sync::atomic::Ordering::SeqCst);
        }
        self.files.remove(path)
    }

    /// Writes every kept file into its place, so the context on disk is whole.
    pub fn write_all(&mut self) -> Result<()> {
        let paths: Vec<PathBuf> = self.files.keys().cloned().collect();
        for path in paths {
            if let Some(content) = self.release(&path) {
                write_kept(&path, &content)?;
                recycle(content);
            }
        }
        Ok(())
    }

    /// Writes one kept file (`path` as the unpacking named it, or symlinks resolved).
    pub fn write(&mut self, path: &Path) -> Result<()> {
        let real = std::fs::canonicalize(path).ok();
        let key = self.files.keys().find(|k| *k == path || real.as_deref().is_some_and(|r| std::fs::canonicalize(k).is_ok_and(|c| c == r))).cloned();
        if let Some(k) = key {
            if let Some(content) = self.release(&k) {
                write_kept(&k, &content)?;
                recycle(content);
            }
        }
        Ok(())
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        let paths: Vec<PathBuf> = self.files.keys().cloned().collect();
        for path in paths {
            if let Some(content) = self.release(&path) {
                recycle(content);
            }
        }
    }
}

/// Fills a kept file's hole, keeping its mtime and file capabilities (the kernel
/// drops `security.capability` on a write). What is at `path` now must still be
/// the regular file of that size the unpacking made (not followed through a symlink).
fn write_kept(path: &Path, content: &[Arc<Vec<u8>>]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io_err = |e: io::Error| Error::Io { context: format!("write the context file {}", path.display()), source: e };
    let Ok(mut f) = std::fs::OpenOptions::new().write(true).custom_flags(libc::O_NOFOLLOW).open(path) else {
        return Ok(());
    };
    let md = f.metadata().map_err(io_err)?;
    if !md.is_file() || md.len() != content.iter().map(|p| p.len() as u64).sum::<u64>() {
        return Ok(());
    }
    let caps = xattr::FileExt::get_xattr(&f, crate::xattrs::CAPABILITY).map_err(io_err)?;
    for piece in content {
        f.write_all(piece).map_err(io_err)?;
    }
    if let Some(caps) = caps {
        xattr::FileExt::set_xattr(&f, crate::xattrs::CAPABILITY, &caps).map_err(io_err)?;
    }
    f.set_modified(md.modified().map_err(io_err)?).map_err(io_err)
}

/// Batches in flight before the unpacking waits for the hasher (bounded memory).
const IN_FLIGHT: usize = 16;

/// Bytes gathered before they go to the hasher: the tar reader reads a file in 8 KiB
/// pieces, and one message (an allocation and a wake-up) per piece cost more than
/// the hashing.
const BATCH: usize = 256 * 1024;

/// The entry being unpacked: the bytes still expected, how many came, and those not
/// yet sent to the hasher.
struct Tapping {
    left: u64,
    seen: u64,
    batch: Vec<u8>,
}

impl Tapping {
    fn flush(&mut self, work: &SyncSender<Work>) {
        if !self.batch.is_empty() {
            // A closed channel means the hasher died: the digests are then missing,
            // which only costs COPY a re-read.
            let _ = work.send(Work::Bytes(Arc::new(std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH)))));
        }
    }
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
            t.batch.extend_from_slice(&buf[..k]);
            if t.batch.len() >= BATCH {
                t.flush(&self.work);
            }
            t.left -= k as u64;
            t.seen += k as u64;
        }
        Ok(n)
    }
}

/// Tells the hasher where each file starts and ends, and keeps large files.
struct Hashes {
    state: Rc<RefCell<Option<Tapping>>>,
    work: SyncSender<Work>,
    kept: Kept,
    /// The kept file being read, and the bytes of it still to come.
    keeping: Option<(PathBuf, u64)>,
}

impl UnpackObserver for Hashes {
    fn replaced(&mut self, on_disk: &Path) {
        // Whatever an entry makes at a path replaces an earlier file's digest.
        let _ = self.work.send(Work::Forget(on_disk.to_path_buf()));
        if let Some(old) = self.kept.release(on_disk) {
            recycle(old);
        }
        self.keeping = None;
    }

    fn keep(&mut self, on_disk: &Path, size: u64) -> bool {
        // Counted now: a file cut short fails the whole unpacking anyway.
        if size < KEEP_FROM || !self.kept.reserve(on_disk, size) {
            return false;
        }
        self.keeping = Some((on_disk.to_path_buf(), size));
        let _ = self.work.send(Work::Start);
        true
    }

    fn kept_buffer(&mut self, len: usize) -> Vec<u8> {
        buffer(len)
    }

    fn kept_chunk(&mut self, chunk: Vec<u8>) {
        let Some((path, left)) = &mut self.keeping else { return };
        *left = left.saturating_sub(chunk.len() as u64);
        let chunk = Arc::new(chunk);
        // The hasher works on this piece while the next one is read.
        let _ = self.work.send(Work::Bytes(chunk.clone()));
        self.kept.files.entry(path.clone()).or_default().push(chunk);
        if *left == 0 {
            let _ = self.work.send(Work::Done(path.clone()));
            self.keeping = None;
        }
    }

    fn file_starts(&mut self, _on_disk: &Path, size: u64) {
        *self.state.borrow_mut() = Some(Tapping { left: size, seen: 0, batch: Vec::with_capacity(BATCH.min(size as usize)) });
        let _ = self.work.send(Work::Start);
    }

    fn file_done(&mut self, on_disk: &Path, size: u64, written: bool) {
        let mut tapped = self.state.borrow_mut().take();
        if let Some(t) = tapped.as_mut() {
            t.flush(&self.work);
        }
        let whole = written && tapped.is_some_and(|t| t.seen == size);
        let _ = self.work.send(if whole { Work::Done(on_disk.to_path_buf()) } else { Work::Drop });
    }
}

fn hasher(work: std::sync::mpsc::Receiver<Work>) -> Digests {
    let mut digests = Digests::new();
    let mut current = FileHasher::new();
    for w in work {
        match w {
            Work::Start => current = FileHasher::new(),
            Work::Bytes(b) => {
                current.update(&b);
            }
            Work::Done(path) => {
                digests.insert(path, *std::mem::take(&mut current).finalize().as_bytes());
            }
            Work::Drop => current = FileHasher::new(),
            Work::Forget(path) => {
                digests.remove(&path);
            }
        }
    }
    digests
}

/// Unpacks the context tar `r` into `dest` and returns the digests of its regular
/// files and the content of those it kept. Errors read like
/// [`crate::store::unpack_tar`]'s: it is the same unpacking.
pub fn unpack(r: impl Read, dest: &Path) -> Result<(Digests, Kept)> {
    let (tx, rx) = sync_channel(IN_FLIGHT);
    let hashing = std::thread::Builder::new()
        .name("context-hash".into())
        .spawn(move || hasher(rx))
        .map_err(|e| Error::Runtime(format!("start hashing the context: {e}")))?;
    let state = Rc::new(RefCell::new(None));
    let unpacked = {
        let mut ar = tar::Archive::new(Tap { inner: r, state: state.clone(), work: tx.clone() });
        let mut hashes = Hashes { state, work: tx, kept: Kept::default(), keeping: None };
        unpack_entries(&mut ar, dest, &mut hashes).map(|_| hashes.kept)
        // Both senders drop here: the hasher finishes what is queued and returns.
    };
    let digests = hashing.join().map_err(|_| Error::Runtime("hashing the context failed".into()))?;
    Ok((digests, unpacked?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::{header, tar_of};

    #[test]
    fn large_files_are_kept_until_written() {
        use std::os::unix::fs::MetadataExt;
        let t = tempfile::tempdir().unwrap();
        let big: Vec<u8> = (0..KEEP_FROM as u32 * 2).map(|i| (i % 253) as u8).collect();
        let other = vec![1u8; KEEP_FROM as usize];
        let mut b = tar::Builder::new(Vec::new());
        for (name, data, mode, mtime) in [("app/big.bin", &big, 0o755, 1_700_000_000u64), ("gone", &other, 0o644, 0), ("gone", &b"small now"[..].to_vec(), 0o644, 0)] {
            b.append_data(&mut header(tar::EntryType::Regular, data.len() as u64, mode, mtime), name, &data[..]).unwrap();
        }
        let ar = b.into_inner().unwrap();
        let (d, mut kept) = unpack(&ar[..], t.path()).unwrap();
        let path = t.path().join("app/big.bin");
        // On disk: the metadata and size, not the bytes (yet); the digest is there.
        let md = std::fs::metadata(&path).unwrap();
        assert_eq!((md.len(), md.mode() & 0o7777, md.mtime()), (big.len() as u64, 0o755, 1_700_000_000));
        assert!(md.blocks() < 8, "a hole, not written: {} blocks", md.blocks());
        assert_eq!(d[&path], *blake3::hash(&big).as_bytes());
        // A kept file that a later entry replaced is not written over it.
        assert_eq!(kept.files.len(), 1);
        kept.write_all().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), big);
        assert_eq!(std::fs::metadata(&path).unwrap().mtime(), 1_700_000_000, "writing keeps the mtime");
        assert_eq!(std::fs::read(t.path().join("gone")).unwrap(), b"small now");
    }

    #[test]
    fn a_kept_file_cannot_escape_through_a_symlink() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let mut b = tar::Builder::new(Vec::new());
        b.append_link(&mut header(tar::EntryType::Symlink, 0, 0o777, 0), "out", outside.path()).unwrap();
        let big = vec![9u8; KEEP_FROM as usize];
        b.append_data(&mut header(tar::EntryType::Regular, big.len() as u64, 0o644, 0), "out/planted", &big[..]).unwrap();
        let ar = b.into_inner().unwrap();
        let err = unpack(&ar[..], t.path()).err().expect("must fail");
        assert!(err.to_string().contains("escapes"), "{err}");
        assert!(!outside.path().join("planted").exists());
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
        let (d, _) = unpack(Slow(&ar), t.path()).unwrap();
        assert_eq!(d.len(), 3);
        for (p, want) in [("Dockerfile", &b"FROM busybox\n"[..]), ("dir/big", b"again"), ("empty", b"")] {
            let path = t.path().join(p);
            assert_eq!(std::fs::read(&path).unwrap(), want);
            assert_eq!(d[&path], *blake3::hash(want).as_bytes(), "{p}");
        }
        // A truncated archive is an error.
        let t3 = tempfile::tempdir().unwrap();
        let ar = tar_of(&[("big", &vec![7u8; KEEP_FROM as usize + 10][..])]);
        assert!(unpack(&ar[..ar.len() / 2], t3.path()).is_err(), "a kept file cut short");
        let t2 = tempfile::tempdir().unwrap();
        let ar = tar_of(&[("big", &big)]);
        assert!(unpack(&ar[..100_000], t2.path()).is_err());
    }
}
