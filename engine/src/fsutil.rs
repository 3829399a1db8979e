//! Crash-safe file helpers: write to a temp file, fsync, rename.

use std::fs;
use std::io::Write;
use std::path::Path;

use serde::{de::DeserializeOwned, Serialize};

use crate::error::{Context, Result};

/// Replaces `path` atomically with `bytes`: readers see the old or the new file, never half.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    make_parent(path)?;
    let (tmp, f) = write_temp(path, bytes)?;
    f.sync_all().ctx(|| format!("fsync {}", tmp.display()))?;
    fs::rename(&tmp, path).ctx(|| format!("rename to {}", path.display()))?;
    Ok(())
}

/// [`write_atomic`] for a writer that cannot wait for the disk now: `path` is replaced
/// before the data is on disk, and the caller fsyncs the returned file when it can
/// (until then a power cut may leave `path` empty; readers never see half of it).
pub fn write_atomic_unsynced(path: &Path, bytes: &[u8]) -> Result<fs::File> {
    make_parent(path)?;
    write_atomic_unsynced_in_dir(path, bytes)
}

fn make_parent(path: &Path) -> Result<()> {
    let dir = path.parent().expect("atomic write target has a parent");
    fs::create_dir_all(dir).ctx(|| format!("create {}", dir.display()))
}

/// Removes a directory tree that a process not (or no longer) ours may still be
/// writing into for a moment (the shim of a container from before a restart of the
/// server writes its `exit.json` as it ends): a tree that gained an entry while it
/// was being emptied is emptied again, a few times.
pub fn remove_tree(dir: &Path) -> std::io::Result<()> {
    let mut tries = 0;
    loop {
        match fs::remove_dir_all(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty && tries < 20 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            r => return r,
        }
    }
}

/// [`write_atomic_unsynced`] into a directory that must exist: one removed meanwhile
/// (a container's, by its `docker rm`) is not made again, the write fails instead.
pub fn write_atomic_unsynced_in_dir(path: &Path, bytes: &[u8]) -> Result<fs::File> {
    let (tmp, f) = write_temp(path, bytes)?;
    fs::rename(&tmp, path).ctx(|| format!("rename to {}", path.display()))?;
    Ok(f)
}

/// [`write_atomic`] whose fsync runs on a thread of its own once `path` is replaced:
/// for records written on a command's way (a container's record, on every create,
/// start and exit), where the fsync took 1-3 ms. A crash of the process loses nothing;
/// only a power cut in the milliseconds before the fsync ends may leave `path` empty.
pub fn write_atomic_sync_later(path: &Path, bytes: &[u8]) -> Result<()> {
    let f = write_atomic_unsynced(path, bytes)?;
    crate::background::spawn(move || {
        let _ = f.sync_all();
    });
    Ok(())
}

/// `bytes` in a new temporary file next to `path` (in a directory that exists), to be
/// renamed over it.
fn write_temp(path: &Path, bytes: &[u8]) -> Result<(std::path::PathBuf, fs::File)> {
    let dir = path.parent().expect("atomic write target has a parent");
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("f"),
        rand::random::<u32>()
    ));
    let mut f = fs::File::create(&tmp).ctx(|| format!("create {}", tmp.display()))?;
    f.write_all(bytes).ctx(|| format!("write {}", tmp.display()))?;
    Ok((tmp, f))
}

pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(value).ctx(|| format!("encode {}", path.display()))?;
    write_atomic(path, &bytes)
}

/// Reads JSON, or `None` when the file does not exist.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match fs::read(path) {
        Ok(b) => Ok(Some(serde_json::from_slice(&b).ctx(|| format!("decode {}", path.display()))?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).ctx(|| format!("read {}", path.display())),
    }
}

/// A new random 64-hex-digit id, like Docker's container ids.
pub fn random_id() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

/// Total size in bytes of the regular files under `dir` (not following symlinks).
pub fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(md) = e.path().symlink_metadata() else { continue };
            if md.is_dir() {
                stack.push(e.path());
            } else {
                total += md.len();
            }
        }
    }
    total
}
