//! A namespace's own disk: a fixed-size ext4 filesystem in a sparse file, loop-mounted,
//! holding what the namespace writes (its containers' layers and logs, its volumes).
//! A write past its size fails inside the container with ENOSPC, as on a full disk;
//! the server's own disk and the other namespaces never notice. A lab session's two
//! namespaces (the student's and the workstation's, with the home) share one.
//!
//! Why a file system of its own: project quotas would need the state root's file
//! system mounted with them (a host setting Berth cannot count on), and polling sizes
//! only notices a flood after it happened. The image is sparse and mounted with
//! `discard`, so the host pays only for what is in use.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// mkfs.ext4 or mount failed; their own words.
    #[error("{0}")]
    Command(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Disk {
    /// The sparse file holding the file system.
    pub image: PathBuf,
    /// Where it is mounted.
    pub mountpoint: PathBuf,
    /// Bytes.
    pub size: u64,
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DiskError {
    let what = what.into();
    move |source| DiskError::Io { what, source }
}

fn run(cmd: &mut Command) -> Result<(), DiskError> {
    let out = cmd.output().map_err(io(format!("run {:?}", cmd.get_program())))?;
    if !out.status.success() {
        return Err(DiskError::Command(format!("{:?} failed: {}", cmd.get_program(), String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(())
}

impl Disk {
    /// Makes the file system if it does not exist yet and mounts it if it is not
    /// mounted (after a reboot). Safe to call again.
    pub fn ensure(&self) -> Result<(), DiskError> {
        if is_mounted(&self.mountpoint) {
            return Ok(());
        }
        fs::create_dir_all(&self.mountpoint).map_err(io(format!("create {}", self.mountpoint.display())))?;
        if !self.image.exists() {
            // Made under another name and renamed: a crash never leaves half a file
            // system where the next start would mount it.
            let tmp = self.image.with_extension("new");
            let f = fs::File::create(&tmp).map_err(io(format!("create {}", tmp.display())))?;
            f.set_len(self.size).map_err(io(format!("size {}", tmp.display())))?;
            drop(f);
            let mut mkfs = Command::new("mkfs.ext4");
            // No reserved blocks (there is no root to keep them for), fewer inodes than
            // a general-purpose disk, and nothing written up front but the metadata.
            mkfs.args(["-q", "-F", "-m", "0", "-i", "32768", "-E", "lazy_itable_init=1,lazy_journal_init=1,nodiscard"]);
            if self.size >= 512 << 20 {
                mkfs.args(["-J", "size=16"]);
            }
            run(mkfs.arg(&tmp))?;
            fs::rename(&tmp, &self.image).map_err(io(format!("place {}", self.image.display())))?;
        }
        // `loop` sets the loop device up (and frees it at unmount); nodev because
        // nothing on it is ever a device the server should open.
        run(Command::new("mount").args(["-t", "ext4", "-o", "loop,discard,nodev"]).arg(&self.image).arg(&self.mountpoint))?;
        // Direct I/O to the image: its blocks are cached once (by the file system on
        // it), not a second time as pages of the image file, so a session flooding its
        // disk leaves the host half the cache and writeback work to do.
        if let Some(dev) = source_of(&self.mountpoint) {
            if let Err(e) = run(Command::new("losetup").args(["--direct-io=on", &dev])) {
                tracing::warn!("{dev} (the disk of {}) stays on buffered I/O: {e}", self.mountpoint.display());
            }
        }
        Ok(())
    }

    /// Unmounts the file system and deletes it, with everything on it.
    pub fn release(&self) -> Result<(), DiskError> {
        if is_mounted(&self.mountpoint) {
            nix::mount::umount2(&self.mountpoint, nix::mount::MntFlags::MNT_DETACH)
                .map_err(|e| DiskError::Io { what: format!("unmount {}", self.mountpoint.display()), source: e.into() })?;
        }
        let _ = fs::remove_dir(&self.mountpoint);
        match fs::remove_file(&self.image) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(format!("remove {}", self.image.display()))(e)),
            _ => Ok(()),
        }
    }

    /// Bytes of its size no longer free: what is on it, and what the file system
    /// itself takes (its journal and tables are room a student cannot use either).
    pub fn used(&self) -> Option<u64> {
        let v = nix::sys::statvfs::statvfs(&self.mountpoint).ok()?;
        Some(self.size.saturating_sub(v.blocks_available() as u64 * v.fragment_size() as u64))
    }
}

/// Whether something is mounted exactly at `path` (`/proc/self/mountinfo`).
pub fn is_mounted(path: &Path) -> bool {
    let Ok(path) = path.canonicalize() else { return false };
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else { return false };
    let want = path.to_string_lossy();
    // Field 5 is the mount point, with spaces and such escaped as \040.
    info.lines().filter_map(|l| l.split(' ').nth(4)).any(|m| unescape(m) == want)
}

/// The device mounted at `path` (`/dev/loop3`), from `/proc/self/mountinfo`.
fn source_of(path: &Path) -> Option<String> {
    let want = path.canonicalize().ok()?.to_string_lossy().into_owned();
    let info = fs::read_to_string("/proc/self/mountinfo").ok()?;
    // After the optional fields, " - " then the file system type and the source.
    info.lines()
        .filter(|l| l.split(' ').nth(4).is_some_and(|m| unescape(m) == want))
        .filter_map(|l| l.split_once(" - ").and_then(|(_, rest)| rest.split(' ').nth(1)).map(unescape))
        .next_back()
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                out.push(d.iter().fold(0u8, |acc, c| acc.wrapping_mul(8).wrapping_add(c - b'0')));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
        assert!(is_mounted(Path::new("/")));
        assert!(!is_mounted(Path::new("/no/such/place")));
    }
}
