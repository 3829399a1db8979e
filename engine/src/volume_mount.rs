//! The local volume driver's mounts: `docker volume create --opt type=tmpfs --opt
//! device=tmpfs --opt o=size=64m` (or a device, a bind of a host directory, NFS) makes a
//! volume whose `_data` has that file system mounted on it while a container using it
//! runs. As dockerd's local driver: mounted when the first of its containers starts,
//! unmounted when the last one stops (a tmpfs volume's files go with it), and mounted
//! for a moment when a new container fills it from its image.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::ToSocketAddrs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::mount::{MntFlags, MsFlags};

use crate::error::{Error, Result};

/// What `-o type=… -o device=… -o o=…` asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// The file system type (`mount -t`); `none` with `o=bind` for a bind.
    pub fstype: String,
    /// What is mounted: a device, a directory to bind, `:/export` of NFS; for tmpfs any
    /// name.
    pub device: String,
    /// `mount -o`: flags and the file system's own options.
    pub options: String,
}

/// The option keys dockerd's local driver takes, and which others each needs.
const KEYS: &[&str] = &["type", "o", "device", "size"];
const NEEDS: &[(&str, &[&str])] = &[
    ("device", &["type"]),
    ("type", &["device"]),
    ("o", &["device", "type"]),
];

/// Checks a local volume's options as dockerd does (its messages) and returns the mount
/// they ask for; `None` for a plain directory volume.
pub fn parse(options: &BTreeMap<String, String>) -> Result<Option<MountOptions>> {
    if let Some(k) = options.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(Error::InvalidArgument(format!("invalid option: {k:?}")));
    }
    if let Some(size) = options.get("size") {
        crate::log_config::parse_size(size)?;
        // dockerd sizes a volume with the file system's project quotas; Berth has
        // none per volume (a lab session's disk bounds all of its volumes together).
        return Err(Error::InvalidArgument(
            "quota size requested but no quota support".into(),
        ));
    }
    for (key, needs) in NEEDS {
        if options.contains_key(*key) {
            if let Some(missing) = needs.iter().find(|n| !options.contains_key(**n)) {
                return Err(Error::InvalidArgument(format!(
                    "missing required option: {missing:?}"
                )));
            }
        }
    }
    if options.is_empty() {
        return Ok(None);
    }
    let get = |k: &str| options.get(k).cloned().unwrap_or_default();
    Ok(Some(MountOptions {
        fstype: get("type"),
        device: get("device"),
        options: get("o"),
    }))
}

/// The `o=` options a lab session's volume may not have: they would bind or move a
/// host's tree, change how mounts propagate to the host, or allow devices and setuid
/// programs.
const LAB_REFUSED: &[&str] = &[
    "bind",
    "rbind",
    "remount",
    "move",
    "dev",
    "suid",
    "mand",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "private",
    "rprivate",
    "unbindable",
    "runbindable",
];

impl MountOptions {
    /// What a lab session may mount: a tmpfs (its pages are charged to the memory of
    /// the session's containers that write them), nothing from the host or the network.
    pub fn check_for_lab(&self) -> Result<()> {
        if self.fstype != "tmpfs" {
            return Err(Error::InvalidArgument(format!(
                "volume option type={}: only tmpfs volumes (--opt type=tmpfs --opt device=tmpfs) can be made in a lab session",
                self.fstype
            )));
        }
        for o in self.options.split(',') {
            let key = o.split_once('=').map_or(o, |(k, _)| k);
            if LAB_REFUSED.contains(&key) {
                return Err(Error::InvalidArgument(format!(
                    "volume option o={key} is not allowed in a lab session"
                )));
            }
        }
        Ok(())
    }

    /// Mounts it on `target` (dockerd's mount and its error's shape). `hardened` (a lab
    /// session's) adds `nosuid,nodev`.
    fn mount(&self, target: &Path, hardened: bool) -> Result<()> {
        let (mut flags, data) = crate::mounts::mount_options(&self.options);
        if hardened {
            flags |= MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
        }
        let data = match self.fstype.as_str() {
            "nfs" | "nfs4" => resolve_addr(&data)?,
            _ => data,
        };
        let fstype =
            (!self.fstype.is_empty() && self.fstype != "none").then_some(self.fstype.as_str());
        nix::mount::mount(
            Some(self.device.as_str()),
            target,
            fstype,
            flags,
            (!data.is_empty()).then_some(data.as_str()),
        )
        .map_err(|e| {
            let mut what = format!("mount {}:{}", self.device, target.display());
            if !flags.is_empty() {
                what.push_str(&format!(", flags: {:#x}", flags.bits()));
            }
            if !data.is_empty() {
                what.push_str(&format!(", data: {}", hide_password(&data)));
            }
            Error::Runtime(format!(
                "error while mounting volume '{}': failed to mount local volume: {what}: {}",
                target.display(),
                crate::error::go_errno(e)
            ))
        })
    }
}

/// NFS's `addr=` must be an address for the kernel; dockerd looks a name up first.
fn resolve_addr(data: &str) -> Result<String> {
    let mut out = Vec::new();
    for o in data.split(',') {
        match o.strip_prefix("addr=") {
            Some(host) if host.parse::<std::net::IpAddr>().is_err() => {
                let found: Vec<std::net::IpAddr> = (host, 0)
                    .to_socket_addrs()
                    .map(|a| a.map(|a| a.ip()).collect())
                    .unwrap_or_default();
                // IPv4 first, as Go's resolver for "ip" gives it.
                let ip = found
                    .iter()
                    .find(|ip| ip.is_ipv4())
                    .or(found.first())
                    .ok_or_else(|| Error::InvalidArgument(format!("error resolving passed in network volume address: lookup {host}: no such host")))?;
                out.push(format!("addr={ip}"));
            }
            _ => out.push(o.to_string()),
        }
    }
    Ok(out.join(","))
}

/// A CIFS password in a mount error is shown as dockerd shows it: starred.
fn hide_password(data: &str) -> String {
    data.split(',')
        .map(|o| {
            if o.starts_with("password=") {
                "password=********"
            } else {
                o
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Which containers use each mounted volume: a volume's file system is mounted while
/// any does. One lock for all, so a start and the last user's exit cannot interleave.
#[derive(Default)]
pub struct Mounts {
    users: Mutex<HashMap<PathBuf, BTreeSet<String>>>,
}

impl Mounts {
    /// Mounts `opts` on `dir` (a volume's `_data`) unless it is mounted, and counts
    /// `user` (a container) as using it.
    pub fn acquire(
        &self,
        dir: &Path,
        opts: &MountOptions,
        hardened: bool,
        user: &str,
    ) -> Result<()> {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        if !crate::disk::is_mounted(dir) {
            opts.mount(dir, hardened)?;
        }
        users
            .entry(dir.to_path_buf())
            .or_default()
            .insert(user.to_string());
        Ok(())
    }

    /// `user` (a container that stopped) no longer uses any volume: each it was the
    /// last to use is unmounted. By user, not by volume: the volume may be gone
    /// already (`rm -v` of an anonymous one).
    pub fn release(&self, user: &str) {
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        let mut emptied = Vec::new();
        for (dir, set) in users.iter_mut() {
            if set.remove(user) && set.is_empty() {
                emptied.push(dir.clone());
            }
        }
        for dir in emptied {
            users.remove(&dir);
            unmount(&dir);
        }
    }

    /// Runs `f` with `dir` mounted (a new container filling the volume from its image),
    /// then unmounts it again unless a container uses it.
    pub fn with_mounted<T>(
        &self,
        dir: &Path,
        opts: &MountOptions,
        hardened: bool,
        f: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        if !crate::disk::is_mounted(dir) {
            opts.mount(dir, hardened)?;
        }
        let r = f();
        if !users.contains_key(dir) {
            unmount(dir);
        }
        r
    }

    /// Unmounts `dir` if no container uses it: left mounted by a server that ended
    /// while a container used it, which has ended too since.
    pub fn sweep(&self, dir: &Path) {
        let users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        if !users.contains_key(dir) {
            unmount(dir);
        }
    }
}

/// Detaches whatever is mounted on `dir` (a container that still has it keeps its copy
/// until it ends).
pub fn unmount(dir: &Path) {
    if crate::disk::is_mounted(dir) {
        if let Err(e) = nix::mount::umount2(dir, MntFlags::MNT_DETACH) {
            tracing::warn!("unmount volume {}: {e}", dir.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::go_errno;
    use proptest::prelude::*;

    fn opts(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn err(kv: &[(&str, &str)]) -> String {
        parse(&opts(kv)).unwrap_err().to_string()
    }

    #[test]
    fn dockerds_checks_and_messages() {
        assert_eq!(parse(&opts(&[])).unwrap(), None);
        let m = parse(&opts(&[
            ("type", "tmpfs"),
            ("device", "tmpfs"),
            ("o", "size=10m,uid=1000"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            m,
            MountOptions {
                fstype: "tmpfs".into(),
                device: "tmpfs".into(),
                options: "size=10m,uid=1000".into()
            }
        );
        assert_eq!(err(&[("foo", "bar")]), "invalid option: \"foo\"");
        assert_eq!(
            go_errno(nix::errno::Errno::ENOENT),
            "no such file or directory"
        );
        assert_eq!(go_errno(nix::errno::Errno::EINVAL), "invalid argument");
        assert_eq!(
            err(&[("type", "tmpfs")]),
            "missing required option: \"device\""
        );
        assert_eq!(
            err(&[("device", "/dev/sdb1")]),
            "missing required option: \"type\""
        );
        assert_eq!(
            err(&[("o", "size=1m"), ("type", "tmpfs")]),
            "missing required option: \"device\""
        );
        assert_eq!(
            err(&[("size", "10m")]),
            "quota size requested but no quota support"
        );
        assert_eq!(err(&[("size", "lots")]), "invalid size: 'lots'");
    }

    #[test]
    fn lab_sessions_get_tmpfs_only() {
        let m = |t: &str, o: &str| {
            MountOptions {
                fstype: t.into(),
                device: "x".into(),
                options: o.into(),
            }
            .check_for_lab()
        };
        m("tmpfs", "size=64m,mode=1777,uid=1000,noexec").unwrap();
        m("tmpfs", "").unwrap();
        assert!(m("none", "bind")
            .unwrap_err()
            .to_string()
            .contains("only tmpfs volumes"));
        assert!(m("nfs", "addr=10.0.0.1")
            .unwrap_err()
            .to_string()
            .contains("type=nfs"));
        for o in [
            "bind",
            "rbind",
            "remount",
            "dev",
            "suid",
            "rshared",
            "size=1m,bind",
        ] {
            assert!(
                m("tmpfs", o)
                    .unwrap_err()
                    .to_string()
                    .contains("is not allowed in a lab session"),
                "{o}"
            );
        }
    }

    #[test]
    fn nfs_names_are_resolved_and_passwords_hidden() {
        assert_eq!(
            resolve_addr("addr=10.1.2.3,rw").unwrap(),
            "addr=10.1.2.3,rw"
        );
        assert_eq!(
            resolve_addr("addr=localhost,nolock").unwrap(),
            "addr=127.0.0.1,nolock"
        );
        assert!(resolve_addr("addr=no-such-host.invalid")
            .unwrap_err()
            .to_string()
            .contains("no such host"));
        assert_eq!(
            hide_password("user=a,password=secret,vers=3"),
            "user=a,password=********,vers=3"
        );
    }

    #[test]
    fn mounted_while_any_user_runs() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("_data");
        std::fs::create_dir(&dir).unwrap();
        // Unmounted even when an assertion fails (dropped before the temp dir).
        struct Unmount(PathBuf);
        impl Drop for Unmount {
            fn drop(&mut self) {
                unmount(&self.0);
            }
        }
        let _unmount = Unmount(dir.clone());
        let tmpfs = MountOptions {
            fstype: "tmpfs".into(),
            device: "tmpfs".into(),
            options: "size=1m".into(),
        };
        let m = Mounts::default();
        // Filling it mounts it for that only.
        m.with_mounted(&dir, &tmpfs, true, || {
            std::fs::write(dir.join("f"), "x").map_err(|e| Error::Runtime(e.to_string()))
        })
        .unwrap();
        assert!(!crate::disk::is_mounted(&dir) && !dir.join("f").exists());
        m.acquire(&dir, &tmpfs, true, "a").unwrap();
        m.acquire(&dir, &tmpfs, true, "b").unwrap();
        std::fs::write(dir.join("g"), "y").unwrap();
        m.release("a");
        assert!(
            crate::disk::is_mounted(&dir) && dir.join("g").exists(),
            "b still uses it"
        );
        m.release("nobody");
        m.release("b");
        assert!(!crate::disk::is_mounted(&dir) && !dir.join("g").exists());
        // One that fails to mount counts no user.
        let bad = MountOptions {
            fstype: "tmpfs".into(),
            device: "tmpfs".into(),
            options: "bogus=1".into(),
        };
        let e = m.acquire(&dir, &bad, false, "c").unwrap_err().to_string();
        assert!(
            e.contains("failed to mount local volume: mount tmpfs:")
                && e.ends_with("data: bogus=1: invalid argument"),
            "{e}"
        );
        m.sweep(&dir);
        assert!(!crate::disk::is_mounted(&dir));
    }

    proptest! {
        /// Any options map either parses or is refused with a message; none panics,
        /// and what parses holds exactly what was given.
        #[test]
        fn parse_never_panics(keys in proptest::collection::btree_map("(type|o|device|size|[a-z]{1,6})", "[ -~]{0,20}", 0..5)) {
            match parse(&keys) {
                Ok(Some(m)) => {
                    prop_assert_eq!(&m.fstype, &keys["type"]);
                    prop_assert_eq!(&m.device, &keys["device"]);
                    prop_assert_eq!(m.options, keys.get("o").cloned().unwrap_or_default());
                }
                Ok(None) => prop_assert!(keys.is_empty()),
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }
    }
}
