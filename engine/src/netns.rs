//! Persistent network namespaces: a lab session's own network, where its workstation
//! lives and its containers publish their ports, so two students' `-p 8080:80` never
//! collide and neither reaches the host's ports.
//!
//! A namespace is kept alive by bind-mounting its nsfs file on a plain file, as
//! `ip netns add` does; the mount outlives the server (not a reboot: [`ensure`]
//! makes it again then).

use std::fs;
use std::path::Path;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

use crate::error::{Context, Error, Result};

/// statfs(2) magic of nsfs: the file is a live namespace, not an empty placeholder.
const NSFS_MAGIC: i64 = 0x6e73_6673;

/// Whether `path` holds a live network namespace.
pub fn is_live(path: &Path) -> bool {
    nix::sys::statfs::statfs(path).map(|s| s.filesystem_type() == nix::sys::statfs::FsType(NSFS_MAGIC as _)).unwrap_or(false)
}

/// Makes `path` a live network namespace with loopback up, unless it already is one.
pub fn ensure(path: &Path) -> Result<()> {
    // One check-and-make at a time: two containers starting at once in a namespace
    // whose home is not made yet (Compose starts a project's together) would each
    // see no namespace and mount one, the second over the first. The first start's
    // bridge then lies in a namespace the path no longer opens, and its next netlink
    // step there fails with "No such device".
    static MAKING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = MAKING.lock().unwrap_or_else(|p| p.into_inner());
    if is_live(path) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).ctx(|| format!("create {}", dir.display()))?;
    }
    fs::write(path, b"").ctx(|| format!("create {}", path.display()))?;
    let target = path.to_path_buf();
    // unshare(CLONE_NEWNET) moves only the calling thread: do it on a thread of its own
    // that ends right after, so no other work ever runs in the new namespace by accident.
    std::thread::spawn(move || -> Result<()> {
        unshare(CloneFlags::CLONE_NEWNET).map_err(|e| Error::Runtime(format!("new network namespace: {e}")))?;
        crate::runtime::linux::loopback_up().map_err(Error::Runtime)?;
        // A new namespace may inherit the host's forwarding: a kept one routes nothing
        // unless it is given an uplink (see `network::uplink`). This thread is in it,
        // so /proc/sys/net is its own.
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "0").map_err(|e| Error::Runtime(format!("turn off forwarding: {e}")))?;
        let tid = nix::unistd::gettid();
        let own = format!("/proc/self/task/{tid}/ns/net");
        mount(Some(own.as_str()), &target, None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .map_err(|e| Error::Runtime(format!("keep network namespace at {}: {e}", target.display())))
    })
    .join()
    .map_err(|_| Error::Runtime("network namespace thread panicked".into()))?
}

/// Releases the namespace kept at `path` (it ends once no process is left in it).
pub fn remove(path: &Path) -> Result<()> {
    if is_live(path) {
        umount2(path, MntFlags::MNT_DETACH).map_err(|e| Error::Runtime(format!("unmount {}: {e}", path.display())))?;
    }
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).ctx(|| format!("remove {}", path.display())),
        _ => Ok(()),
    }
}

/// Runs `f` on a short-lived thread inside the namespace at `path`: a socket made there
/// (a listener, a connection) stays in that namespace after the thread ends.
pub fn run_in<T: Send + 'static>(path: &Path, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let file = fs::File::open(path).ctx(|| format!("open {}", path.display()))?;
    std::thread::spawn(move || -> Result<T> {
        nix::sched::setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| Error::Runtime(format!("enter network namespace: {e}")))?;
        Ok(f())
    })
    .join()
    .map_err(|_| Error::Runtime("network namespace thread panicked".into()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_namespace_has_its_own_ports() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ns");
        ensure(&path).unwrap();
        assert!(is_live(&path));
        ensure(&path).unwrap(); // idempotent
        // A port bound inside is free outside, and loopback works inside.
        let inside = run_in(&path, || std::net::TcpListener::bind("127.0.0.1:0").unwrap()).unwrap();
        let port = inside.local_addr().unwrap().port();
        let outside = std::net::TcpListener::bind(("127.0.0.1", port));
        assert!(outside.is_ok(), "port {port} taken outside too");
        let connected = run_in(&path, move || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()).unwrap();
        assert!(connected);
        remove(&path).unwrap();
        assert!(!path.exists());
    }
}
