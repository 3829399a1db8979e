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
        match loop_device::attach(&self.image) {
            Ok(dev) => {
                // nodev because nothing on it is ever a device the server should open.
                nix::mount::mount(Some(dev.path()), &self.mountpoint, Some("ext4"), nix::mount::MsFlags::MS_NODEV, Some("discard"))
                    .map_err(|e| DiskError::Io { what: format!("mount {} on {}", dev.path().display(), self.mountpoint.display()), source: e.into() })?;
                // Dropping `dev` now leaves the mount as the device's only user: it is
                // freed when the file system is unmounted (autoclear).
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOTTY) || e.raw_os_error() == Some(libc::EINVAL) => {
                // A kernel before 5.8 (no LOOP_CONFIGURE): mount(8) sets the device up,
                // then losetup(8) turns direct I/O on, which costs a queue freeze.
                tracing::debug!("LOOP_CONFIGURE: {e}; the disk is set up with mount -o loop");
                run(Command::new("mount").args(["-t", "ext4", "-o", "loop,discard,nodev"]).arg(&self.image).arg(&self.mountpoint))?;
                if let Some(dev) = source_of(&self.mountpoint) {
                    if let Err(e) = run(Command::new("losetup").args(["--direct-io=on", &dev])) {
                        tracing::warn!("{dev} (the disk of {}) stays on buffered I/O: {e}", self.mountpoint.display());
                    }
                }
            }
            Err(e) => return Err(io(format!("set up a loop device for {}", self.image.display()))(e)),
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

/// Loop devices set up in one step (LOOP_CONFIGURE, Linux 5.8): bound to the image,
/// with direct I/O (its blocks are cached once, by the file system on it, not a second
/// time as pages of the image file, so a session flooding its disk leaves the host
/// half the cache and writeback work) and autoclear (freed at the last close, i.e.
/// when its file system is unmounted). Turning direct I/O on afterwards, as
/// `losetup --direct-io` does, freezes the device's queue: ~35 ms per session here.
mod loop_device {
    use std::fs::{File, OpenOptions};
    use std::io;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    use std::path::{Path, PathBuf};

    // <linux/loop.h>; the libc crate has neither the requests nor the structs.
    const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
    const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
    const LO_FLAGS_AUTOCLEAR: u32 = 4;
    const LO_FLAGS_DIRECT_IO: u32 = 16;
    const LOOP_MAJOR: u64 = 7;

    #[repr(C)]
    struct LoopInfo64 {
        lo_device: u64,
        lo_inode: u64,
        lo_rdevice: u64,
        lo_offset: u64,
        lo_sizelimit: u64,
        lo_number: u32,
        lo_encrypt_type: u32,
        lo_encrypt_key_size: u32,
        lo_flags: u32,
        lo_file_name: [u8; 64],
        lo_crypt_name: [u8; 64],
        lo_encrypt_key: [u8; 32],
        lo_init: [u64; 2],
    }

    #[repr(C)]
    struct LoopConfig {
        fd: u32,
        block_size: u32,
        info: LoopInfo64,
        reserved: [u64; 8],
    }

    /// A configured loop device, open. Mount it before dropping it: autoclear frees a
    /// device nobody holds.
    pub struct LoopDevice {
        _file: File,
        path: PathBuf,
    }

    impl LoopDevice {
        pub fn path(&self) -> &Path {
            &self.path
        }
    }

    /// Binds a free loop device to `image`.
    pub fn attach(image: &Path) -> io::Result<LoopDevice> {
        let backing = OpenOptions::new().read(true).write(true).custom_flags(libc::O_CLOEXEC).open(image)?;
        let control = OpenOptions::new().read(true).write(true).custom_flags(libc::O_CLOEXEC).open("/dev/loop-control")?;
        // Another process (a session starting beside this one) may take the free
        // device between asking and binding: EBUSY, ask again.
        let mut last = io::Error::from_raw_os_error(libc::EBUSY);
        for _ in 0..32 {
            // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a number.
            let n = unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE as _) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let path = PathBuf::from(format!("/dev/loop{n}"));
            let device = open_node(&path, n as u64)?;
            let mut name = [0u8; 64];
            let shown = image.as_os_str().as_encoded_bytes();
            let len = shown.len().min(63);
            name[..len].copy_from_slice(&shown[..len]);
            let config = LoopConfig {
                fd: backing.as_raw_fd() as u32,
                block_size: 0,
                info: LoopInfo64 {
                    lo_device: 0, lo_inode: 0, lo_rdevice: 0, lo_offset: 0, lo_sizelimit: 0, lo_number: 0,
                    lo_encrypt_type: 0, lo_encrypt_key_size: 0,
                    lo_flags: LO_FLAGS_AUTOCLEAR | LO_FLAGS_DIRECT_IO,
                    lo_file_name: name, lo_crypt_name: [0; 64], lo_encrypt_key: [0; 32], lo_init: [0; 2],
                },
                reserved: [0; 8],
            };
            // SAFETY: `config` is a valid struct loop_config that outlives the call.
            if unsafe { libc::ioctl(device.as_raw_fd(), LOOP_CONFIGURE as _, &config as *const LoopConfig) } == 0 {
                return Ok(LoopDevice { _file: device, path });
            }
            last = io::Error::last_os_error();
            if last.raw_os_error() != Some(libc::EBUSY) {
                return Err(last);
            }
        }
        Err(last)
    }

    /// Opens `/dev/loopN`, making the node when this `/dev` lacks it (a container's
    /// `/dev` is a copy made when it started; the kernel adds devices as they are asked
    /// for).
    fn open_node(path: &Path, n: u64) -> io::Result<File> {
        let open = || OpenOptions::new().read(true).write(true).custom_flags(libc::O_CLOEXEC).open(path);
        match open() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                nix::sys::stat::mknod(path, nix::sys::stat::SFlag::S_IFBLK, nix::sys::stat::Mode::from_bits_truncate(0o660), nix::sys::stat::makedev(LOOP_MAJOR, n))
                    .or_else(|e| if e == nix::errno::Errno::EEXIST { Ok(()) } else { Err(e) })?;
                open()
            }
            Err(e) => Err(e),
            Ok(f) => {
                if !f.metadata()?.file_type().is_block_device() {
                    return Err(io::Error::other(format!("{} is not a block device", path.display())));
                }
                Ok(f)
            }
        }
    }
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
