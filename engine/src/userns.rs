//! User namespaces for lab sessions: root in a session's containers is an unprivileged
//! id range on the host, one range per session (Docker's userns-remap, per tenant).
//!
//! How a container of such a session is built (see `runtime::linux`):
//! - the shim makes a user namespace with the session's mapping ([`create`]) and hands
//!   it to the container's first process;
//! - that process, still the host's root, mounts the overlay (overlayfs keeps its
//!   `trusted.` whiteouts only for a mounter of the host's), with each image layer
//!   seen through an *idmapped mount* ([`shift_in_place`]): the layers stay shared on
//!   disk, owned by the ids the image says, and appear to the container shifted into
//!   its range. Volumes and the home are idmapped binds the same way, so what a student
//!   writes there is stored with the container's own ids;
//! - the container's upper dir is not idmapped: overlayfs writes into it with the ids
//!   it sees, so it holds host ids (`base + id`), as with Docker's userns-remap. Readers
//!   of it (`commit`, build layers, `cp`) shift back with [`IdMap::to_container`];
//! - the process then joins the namespace ([`enter`]) and makes its network namespace
//!   inside it, so that namespace is the container's own (raw sockets for `ping`, ports
//!   below 1024), while its mount, pid, ipc and uts namespaces stay the host root's
//!   (container root cannot mount anything, as under Docker's default profile).
//!
//! Ranges are handed out per session and kept in `namespaces/<ns>/userns.json`
//! ([`Allocator`]), so a restarted server gives a session its ids back.

use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Ids in a range: 65536, as `/etc/subuid` gives a user (every id a distro image uses).
pub const RANGE: u32 = 65536;
/// The first range starts high, well clear of the host's users and of systemd's
/// dynamic users (below 2^31 only, since some tools treat ids as signed).
const FIRST_BASE: u32 = 0x4000_0000;
const SLOTS: u32 = (0x7fff_0000 - FIRST_BASE) / RANGE;

/// Container id `n` is host id `base + n`, for `n < size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdMap {
    pub base: u32,
    pub size: u32,
}

impl IdMap {
    /// The host id of a container id (ids past the range stay as they are, which the
    /// kernel then treats as unmapped).
    pub fn to_host(&self, id: u32) -> u32 {
        if id < self.size { self.base + id } else { id }
    }

    /// The container id of a host id; a host id outside the range (a mount point the
    /// runtime made as the host's root) is the container's root.
    pub fn to_container(&self, id: u32) -> u32 {
        if id >= self.base && id - self.base < self.size { id - self.base } else { 0 }
    }

    /// The line for `/proc/PID/uid_map` and `gid_map`.
    fn line(&self) -> String {
        format!("0 {} {}\n", self.base, self.size)
    }
}

fn os_err(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

/// Makes a user namespace with `map` and returns a descriptor of it (which keeps it
/// alive). A child process unshares it and waits while we write its maps; it then
/// exits. Safe in a threaded process: the child makes only async-signal-safe calls.
/// A failed fork is the OS error itself (EAGAIN: the caller's cgroup is full).
pub fn create(map: IdMap) -> std::io::Result<OwnedFd> {
    let pipe = || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from);
    let (ready_r, ready_w) = pipe()?;
    let (done_r, done_w) = pipe()?;
    // SAFETY: the child only calls close, unshare, write, read and _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: async-signal-safe calls on descriptors we own; never returns.
        unsafe {
            // Our copies of the parent's ends: the wait below ends when the parent
            // closes its end, which it could not while we held one too.
            libc::close(done_w.as_raw_fd());
            libc::close(ready_r.as_raw_fd());
            let code: u8 = if libc::unshare(libc::CLONE_NEWUSER) == 0 { 0 } else { (*libc::__errno_location()).clamp(1, 255) as u8 };
            libc::write(ready_w.as_raw_fd(), (&code as *const u8).cast(), 1);
            let mut b = 0u8;
            libc::read(done_r.as_raw_fd(), (&mut b as *mut u8).cast(), 1);
            libc::_exit(0);
        }
    }
    drop((ready_w, done_r));
    let reap = |done: OwnedFd| {
        drop(done);
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
    };
    let mut code = [0u8; 1];
    let got = fs::File::from(ready_r).read(&mut code).unwrap_or(0);
    if got != 1 || code[0] != 0 {
        reap(done_w);
        let err = if got == 1 { std::io::Error::from_raw_os_error(code[0] as i32).to_string() } else { "the child died".into() };
        return Err(std::io::Error::other(format!("create a user namespace: {err}")));
    }
    let result = (|| -> Result<OwnedFd, String> {
        for file in ["uid_map", "gid_map"] {
            let path = format!("/proc/{pid}/{file}");
            fs::OpenOptions::new().write(true).open(&path).and_then(|mut f| f.write_all(map.line().as_bytes())).map_err(|e| format!("write {path}: {e}"))?;
        }
        let f = fs::File::open(format!("/proc/{pid}/ns/user")).map_err(|e| format!("open the user namespace: {e}"))?;
        Ok(OwnedFd::from(f))
    })();
    reap(done_w);
    result.map_err(std::io::Error::other)
}

/// Joins the user namespace `ns` and becomes its root (host id `base`), keeping every
/// capability inside it. The caller must be single-threaded and still the host's root.
pub fn enter(ns: BorrowedFd<'_>) -> Result<(), String> {
    nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWUSER).map_err(|e| format!("join the user namespace: {e}"))?;
    // Our host root ids are not mapped inside: take the namespace's root (its
    // capabilities stay, since we held none of its ids before).
    let root_g = nix::unistd::Gid::from_raw(0);
    let root_u = nix::unistd::Uid::from_raw(0);
    nix::unistd::setresgid(root_g, root_g, root_g).map_err(|e| format!("become root in the user namespace (gid): {e}"))?;
    nix::unistd::setresuid(root_u, root_u, root_u).map_err(|e| format!("become root in the user namespace (uid): {e}"))?;
    Ok(())
}

fn cstr(p: &Path) -> Result<std::ffi::CString, String> {
    std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(|_| format!("path contains a NUL byte: {}", p.display()))
}

/// A detached copy of the mount tree at `source` (recursive) whose files appear with
/// ids shifted by the namespace `ns`'s mapping, plus `attrs` (`MOUNT_ATTR_RDONLY`,
/// `MOUNT_ATTR_NODEV`). Attach it with [`attach`].
pub fn idmapped(source: &Path, ns: BorrowedFd<'_>, attrs: u64) -> Result<OwnedFd, String> {
    let path = cstr(source)?;
    let flags = libc::OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_RECURSIVE as libc::c_uint;
    // SAFETY: open_tree with a NUL-terminated path; returns a new descriptor or -1.
    // (libc has the constants but no wrapper for these mount API calls.)
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) };
    if fd < 0 {
        return Err(os_err(&format!("clone the mount at {}", source.display())));
    }
    // SAFETY: the kernel just gave us this descriptor.
    let tree = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    let attr = libc::mount_attr { attr_set: libc::MOUNT_ATTR_IDMAP | attrs, attr_clr: 0, propagation: 0, userns_fd: ns.as_raw_fd() as u64 };
    if set_mount_attrs(tree.as_raw_fd(), c"", libc::AT_EMPTY_PATH | libc::AT_RECURSIVE, &attr).is_err() {
        return Err(os_err(&format!("idmap the mount of {}", source.display())));
    }
    Ok(tree)
}

/// Binds `source` on `target` as the user namespace `ns` sees it: [`idmapped`], then
/// [`attach`]ed. Returns false, having mounted nothing, where `source` is a tmpfs
/// that takes no idmapped mount (before Linux 6.3): the caller then binds it plainly.
/// That is right for the tmpfs a session binds (its tmpfs volumes, a shareable
/// /dev/shm): only the session's own processes wrote there, with ids already in its
/// range, which a plain bind shows as they are.
pub fn bind_mapped(source: &Path, ns: BorrowedFd<'_>, attrs: u64, target: &Path) -> Result<bool, String> {
    match idmapped(source, ns, attrs) {
        Ok(tree) => attach(tree, target).map(|()| true),
        Err(_) if on_tmpfs(source) => Ok(false),
        Err(err) => Err(err),
    }
}

fn on_tmpfs(path: &Path) -> bool {
    nix::sys::statfs::statfs(path).is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
}

/// mount_setattr(2): `attr` on the mount at `path` relative to `dirfd` (`flags`:
/// `AT_EMPTY_PATH` for `dirfd` itself, `AT_RECURSIVE` for the mounts below too).
pub(crate) fn set_mount_attrs(dirfd: RawFd, path: &std::ffi::CStr, flags: libc::c_int, attr: &libc::mount_attr) -> std::io::Result<()> {
    // SAFETY: mount_setattr with a NUL-terminated path and a mount_attr of the size
    // passed. (libc has the constants but no wrapper for the mount API calls.)
    let rc = unsafe { libc::syscall(libc::SYS_mount_setattr, dirfd, path.as_ptr(), flags as libc::c_uint, attr as *const libc::mount_attr, std::mem::size_of::<libc::mount_attr>()) };
    if rc != 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
}

/// Attaches a detached mount (from [`idmapped`]) at `target`.
pub fn attach(tree: OwnedFd, target: &Path) -> Result<(), String> {
    let to = cstr(target)?;
    let empty = c"";
    // SAFETY: move_mount of our detached tree onto a NUL-terminated path.
    let rc = unsafe {
        libc::syscall(libc::SYS_move_mount, tree.as_raw_fd(), empty.as_ptr(), libc::AT_FDCWD, to.as_ptr(), libc::MOVE_MOUNT_F_EMPTY_PATH)
    };
    if rc != 0 {
        return Err(os_err(&format!("mount on {}", target.display())));
    }
    Ok(())
}

/// Covers `dir` with an idmapped view of itself (in the caller's mount namespace,
/// which must be a private one): how image layers are stacked under a container.
pub fn shift_in_place(dir: &Path, ns: BorrowedFd<'_>) -> Result<(), String> {
    attach(idmapped(dir, ns, 0)?, dir)
}

/// Checks that this host can run lab sessions in user namespaces: one can be made,
/// and a directory of `root` (where layers and volumes live) can be idmapped.
pub fn probe(root: &Path) -> Result<(), String> {
    let ns = create(IdMap { base: FIRST_BASE, size: RANGE }).map_err(|e| format!("make a user namespace: {e}"))?;
    idmapped(root, ns.as_fd(), 0).map(|_| ()).map_err(|e| format!("{e} (idmapped mounts need Linux 5.12+ and a filesystem that supports them)"))
}

/// Hands out id ranges to namespaces; a session's namespaces share one.
pub struct Allocator {
    namespaces: PathBuf,
    lock: std::sync::Mutex<()>,
}

impl Allocator {
    pub fn new(root: &Path) -> Allocator {
        Allocator { namespaces: root.join("namespaces"), lock: std::sync::Mutex::new(()) }
    }

    fn path(&self, ns: &str) -> PathBuf {
        self.namespaces.join(ns).join("userns.json")
    }

    /// The range of `ns`, if it has one.
    pub fn get(&self, ns: &str) -> Option<IdMap> {
        crate::fsutil::read_json(&self.path(ns)).ok().flatten()
    }

    /// The range of the first of `namespaces` that has one, else a free range; given
    /// to all of them.
    pub fn assign(&self, namespaces: &[&str]) -> crate::error::Result<IdMap> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let map = match namespaces.iter().find_map(|ns| self.get(ns)) {
            Some(m) => m,
            None => {
                let used: std::collections::BTreeSet<u32> = fs::read_dir(&self.namespaces)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter_map(|e| self.get(&e.file_name().to_string_lossy()))
                    .map(|m| m.base)
                    .collect();
                let slot = (0..SLOTS)
                    .find(|s| !used.contains(&(FIRST_BASE + s * RANGE)))
                    .ok_or_else(|| crate::error::Error::Runtime("no user id range left for a new lab session".into()))?;
                IdMap { base: FIRST_BASE + slot * RANGE, size: RANGE }
            }
        };
        for ns in namespaces {
            crate::fsutil::write_json(&self.path(ns), &map)?;
        }
        Ok(map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_shift_both_ways() {
        let m = IdMap { base: 0x4001_0000, size: RANGE };
        assert_eq!(m.to_host(0), 0x4001_0000);
        assert_eq!(m.to_host(1000), 0x4001_03e8);
        assert_eq!(m.to_container(0x4001_03e8), 1000);
        // What the runtime made as the host's root reads as the container's root.
        assert_eq!(m.to_container(0), 0);
        assert_eq!(m.to_container(0x4002_0000), 0);
        assert_eq!(m.line(), "0 1073807360 65536\n");
    }

    #[test]
    fn ranges_are_shared_by_a_session_and_never_reused_while_held() {
        let t = tempfile::tempdir().unwrap();
        let a = Allocator::new(t.path());
        let first = a.assign(&["lab-1", "lab-1-ws"]).unwrap();
        assert_eq!(a.get("lab-1-ws"), Some(first));
        let second = a.assign(&["lab-2"]).unwrap();
        assert_ne!(first.base, second.base);
        assert_eq!(a.assign(&["lab-1"]).unwrap(), first, "a session keeps its range");
        fs::remove_dir_all(t.path().join("namespaces/lab-1")).unwrap();
        fs::remove_dir_all(t.path().join("namespaces/lab-1-ws")).unwrap();
        assert_eq!(a.assign(&["lab-3"]).unwrap(), first, "a freed range is handed out again");
    }

    #[test]
    fn a_namespace_and_an_idmapped_mount_can_be_made() {
        let t = tempfile::tempdir().unwrap();
        probe(t.path()).expect("user namespaces and idmapped mounts (needs root, Linux 5.12+)");
    }
}
