//! `--mount` and `--tmpfs`: Docker's long mount syntax and tmpfs mounts, checked at
//! create with Docker's messages, and turned into what the runtime mounts.

use std::collections::BTreeMap;

use crate::container::{HostConfig, Mount};
use crate::error::{Error, Result};

fn invalid(m: &Mount, why: &str) -> Error {
    Error::InvalidArgument(format!("invalid mount config for type \"{}\": {why}", m.kind))
}

fn unsupported(what: &str) -> Error {
    Error::InvalidArgument(format!("{what} is not supported by Berth"))
}

/// Checks every `--mount` and `--tmpfs` of a host config: each option works or the
/// request fails here, at create.
pub fn validate(h: &HostConfig) -> Result<()> {
    let mut targets: Vec<&str> = Vec::new();
    for m in &h.mounts {
        crate::unsupported::check(&m.unknown)?;
        if m.target.is_empty() {
            return Err(invalid(m, "field Target must not be empty"));
        }
        if !m.target.starts_with('/') {
            return Err(invalid(m, &format!("invalid mount path: '{}' mount path must be absolute", m.target)));
        }
        if m.target == "/" {
            return Err(invalid(m, "invalid specification: destination can't be '/'"));
        }
        if targets.contains(&m.target.as_str()) {
            return Err(Error::InvalidArgument(format!("Duplicate mount point: {}", m.target)));
        }
        targets.push(&m.target);
        if !matches!(m.consistency.as_str(), "" | "default" | "consistent" | "cached" | "delegated") {
            return Err(invalid(m, &format!("unknown consistency {:?}", m.consistency)));
        }
        let wrong = |field: &str| invalid(m, &format!("field {field} must not be specified"));
        match m.kind.as_str() {
            "bind" => {
                if m.source.is_empty() {
                    return Err(invalid(m, "field Source must not be empty"));
                }
                if !m.source.starts_with('/') {
                    return Err(invalid(m, &format!("invalid mount path: '{}' mount path must be absolute", m.source)));
                }
                if m.volume_options.is_some() {
                    return Err(wrong("VolumeOptions"));
                }
                if m.tmpfs_options.is_some() {
                    return Err(wrong("TmpfsOptions"));
                }
                if let Some(b) = &m.bind_options {
                    crate::unsupported::check(&b.unknown)?;
                    // Every mount of a container is private (no propagation either way).
                    if !matches!(b.propagation.as_str(), "" | "rprivate" | "private") {
                        return Err(unsupported(&format!("bind-propagation={}", b.propagation)));
                    }
                }
            }
            "volume" => {
                if m.bind_options.is_some() {
                    return Err(wrong("BindOptions"));
                }
                if m.tmpfs_options.is_some() {
                    return Err(wrong("TmpfsOptions"));
                }
                if let Some(v) = &m.volume_options {
                    crate::unsupported::check(&v.unknown)?;
                    if !v.subpath.is_empty() && (v.subpath.starts_with('/') || v.subpath.split('/').any(|c| c == "..")) {
                        return Err(invalid(m, "subpath must be a relative path within the volume"));
                    }
                }
            }
            "tmpfs" => {
                if !m.source.is_empty() {
                    return Err(wrong("Source"));
                }
                if m.bind_options.is_some() {
                    return Err(wrong("BindOptions"));
                }
                if m.volume_options.is_some() {
                    return Err(wrong("VolumeOptions"));
                }
                if let Some(t) = &m.tmpfs_options {
                    crate::unsupported::check(&t.unknown)?;
                    if t.size_bytes < 0 {
                        return Err(invalid(m, "invalid tmpfs size"));
                    }
                }
            }
            "npipe" | "cluster" | "image" => return Err(unsupported(&format!("--mount type={}", m.kind))),
            other => return Err(Error::InvalidArgument(format!("invalid mount config: mount type unknown: {other:?}"))),
        }
    }
    for (path, opts) in &h.tmpfs {
        if !path.starts_with('/') || path == "/" {
            return Err(Error::InvalidArgument(format!("invalid mount path: '{path}' mount path must be absolute")));
        }
        if targets.contains(&path.as_str()) {
            return Err(Error::InvalidArgument(format!("Duplicate mount point: {path}")));
        }
        tmpfs_data(opts)?;
    }
    Ok(())
}

/// Checks each `--device`: a character or block device on the host, an absolute path
/// in the container, permissions from `rwm`. Docker's messages.
pub fn validate_devices(h: &HostConfig) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    for d in &h.devices {
        let md = std::fs::metadata(&d.path_on_host).map_err(|e| {
            Error::InvalidArgument(format!("error gathering device information while adding custom device \"{}\": {}", d.path_on_host, e.kind().to_string().to_lowercase()))
        })?;
        if md.is_dir() {
            return Err(unsupported(&format!("--device {} (a directory of devices)", d.path_on_host)));
        }
        if !md.file_type().is_char_device() && !md.file_type().is_block_device() {
            return Err(Error::InvalidArgument(format!("error gathering device information while adding custom device \"{}\": not a device node", d.path_on_host)));
        }
        let inside = if d.path_in_container.is_empty() { &d.path_on_host } else { &d.path_in_container };
        if !inside.starts_with('/') || inside.split('/').any(|c| c == "..") {
            return Err(Error::InvalidArgument(format!("bad format for path: {inside}")));
        }
        if d.cgroup_permissions.chars().any(|c| !"rwm".contains(c)) {
            return Err(Error::InvalidArgument(format!("invalid device mode: {}", d.cgroup_permissions)));
        }
        // Docker narrows a device with its device cgroup; a read-only mount does not
        // stop writes to a device node, and Berth keeps no device cgroup.
        let rw = d.cgroup_permissions.contains('r') && d.cgroup_permissions.contains('w');
        if !d.cgroup_permissions.is_empty() && !rw {
            return Err(unsupported(&format!("--device {}:{} (only rw and rwm)", d.path_on_host, d.cgroup_permissions)));
        }
    }
    Ok(())
}

/// Options a tmpfs takes as mount flags rather than as data.
const FLAG_OPTIONS: &[&str] = &["ro", "rw", "exec", "noexec", "suid", "nosuid", "dev", "nodev", "atime", "noatime", "diratime", "nodiratime", "relatime", "strictatime"];

/// Checks `--tmpfs` options (`rw,size=64m,mode=1777,uid=…`) as Docker does and returns
/// them as mount options, Docker's defaults first (`noexec,nosuid,nodev`), later
/// options winning.
pub fn tmpfs_data(opts: &str) -> Result<String> {
    let mut out: Vec<String> = vec!["noexec".into(), "nosuid".into(), "nodev".into()];
    for o in opts.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        let (key, value) = o.split_once('=').unwrap_or((o, ""));
        match key {
            k if FLAG_OPTIONS.contains(&k) && value.is_empty() => {}
            "size" => {
                parse_size(value).ok_or_else(|| Error::InvalidArgument(format!("invalid tmpfs option {o:?}")))?;
            }
            "mode" => {
                u32::from_str_radix(value, 8).map_err(|_| Error::InvalidArgument(format!("invalid tmpfs option {o:?}")))?;
            }
            "uid" | "gid" | "nr_inodes" | "nr_blocks" => {
                value.parse::<u64>().map_err(|_| Error::InvalidArgument(format!("invalid tmpfs option {o:?}")))?;
            }
            "tmpcopyup" | "notmpcopyup" => return Err(unsupported(&format!("tmpfs option {key}"))),
            _ => return Err(Error::InvalidArgument(format!("invalid tmpfs option {o:?}"))),
        }
        out.push(o.to_string());
    }
    Ok(out.join(","))
}

/// `--mount type=tmpfs`'s options as mount options: Docker mounts these
/// `nosuid,nodev,noexec` too.
pub fn mount_tmpfs_data(m: &Mount) -> String {
    let mut out = String::from("noexec,nosuid,nodev");
    if let Some(t) = &m.tmpfs_options {
        if t.size_bytes > 0 {
            out.push_str(&format!(",size={}", t.size_bytes));
        }
        if t.mode != 0 {
            out.push_str(&format!(",mode={:o}", t.mode));
        }
    }
    if m.read_only {
        out.push_str(",ro");
    }
    out
}

/// A tmpfs size as tmpfs takes it: bytes with an optional k/m/g suffix, or a percentage.
fn parse_size(v: &str) -> Option<()> {
    let digits = v.trim_end_matches(['k', 'K', 'm', 'M', 'g', 'G', '%']);
    (!digits.is_empty() && digits.len() + 1 >= v.len() && digits.parse::<u64>().is_ok()).then_some(())
}

/// Splits a tmpfs's mount options into mount(2) flags and the data string tmpfs gets.
/// A tmpfs is never a way to devices: `dev` leaves it `nodev`.
pub fn split_options(opts: &str) -> (nix::mount::MsFlags, String) {
    let (mut flags, data) = mount_options(opts);
    if opts.split(',').any(|o| o == "dev" || o == "nodev") {
        flags |= nix::mount::MsFlags::MS_NODEV;
    }
    (flags, data)
}

/// Splits `mount -o` style options into mount(2) flags and the data string the file
/// system gets, as dockerd does (moby/sys/mount's flag table): the flags it knows set
/// or clear bits, in order; anything else is data, the last of a repeated key winning.
pub fn mount_options(opts: &str) -> (nix::mount::MsFlags, String) {
    use nix::mount::MsFlags as F;
    let mut flags = F::empty();
    let mut data: BTreeMap<&str, &str> = BTreeMap::new();
    let mut order: Vec<&str> = Vec::new();
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        let (k, v) = o.split_once('=').unwrap_or((o, ""));
        let (clear, set) = match k {
            "defaults" => (F::empty(), F::empty()),
            "ro" => (F::empty(), F::MS_RDONLY),
            "rw" => (F::MS_RDONLY, F::empty()),
            "suid" => (F::MS_NOSUID, F::empty()),
            "nosuid" => (F::empty(), F::MS_NOSUID),
            "dev" => (F::MS_NODEV, F::empty()),
            "nodev" => (F::empty(), F::MS_NODEV),
            "exec" => (F::MS_NOEXEC, F::empty()),
            "noexec" => (F::empty(), F::MS_NOEXEC),
            "sync" => (F::empty(), F::MS_SYNCHRONOUS),
            "async" => (F::MS_SYNCHRONOUS, F::empty()),
            "dirsync" => (F::empty(), F::MS_DIRSYNC),
            "remount" => (F::empty(), F::MS_REMOUNT),
            "mand" => (F::empty(), F::MS_MANDLOCK),
            "nomand" => (F::MS_MANDLOCK, F::empty()),
            "atime" => (F::MS_NOATIME, F::empty()),
            "noatime" => (F::empty(), F::MS_NOATIME),
            "diratime" => (F::MS_NODIRATIME, F::empty()),
            "nodiratime" => (F::empty(), F::MS_NODIRATIME),
            "bind" => (F::empty(), F::MS_BIND),
            "rbind" => (F::empty(), F::MS_BIND | F::MS_REC),
            "unbindable" => (F::empty(), F::MS_UNBINDABLE),
            "runbindable" => (F::empty(), F::MS_UNBINDABLE | F::MS_REC),
            "private" => (F::empty(), F::MS_PRIVATE),
            "rprivate" => (F::empty(), F::MS_PRIVATE | F::MS_REC),
            "shared" => (F::empty(), F::MS_SHARED),
            "rshared" => (F::empty(), F::MS_SHARED | F::MS_REC),
            "slave" => (F::empty(), F::MS_SLAVE),
            "rslave" => (F::empty(), F::MS_SLAVE | F::MS_REC),
            "relatime" => (F::empty(), F::MS_RELATIME),
            "norelatime" => (F::MS_RELATIME, F::empty()),
            "strictatime" => (F::empty(), F::MS_STRICTATIME),
            "nostrictatime" => (F::MS_STRICTATIME, F::empty()),
            _ => {
                if data.insert(k, v).is_none() {
                    order.push(k);
                }
                continue;
            }
        };
        flags.remove(clear);
        flags |= set;
    }
    let data = order.iter().map(|k| if data[k].is_empty() { k.to_string() } else { format!("{k}={}", data[k]) }).collect::<Vec<_>>().join(",");
    (flags, data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::mount::MsFlags as F;

    #[test]
    fn tmpfs_options() {
        assert_eq!(tmpfs_data("").unwrap(), "noexec,nosuid,nodev");
        assert_eq!(tmpfs_data("rw,exec,size=64m,mode=1770").unwrap(), "noexec,nosuid,nodev,rw,exec,size=64m,mode=1770");
        assert!(tmpfs_data("size=lots").is_err());
        assert!(tmpfs_data("mode=999").is_err());
        assert!(tmpfs_data("bogus").is_err());
        let (flags, data) = split_options(&tmpfs_data("exec,size=1m,mode=700,uid=5").unwrap());
        assert_eq!(flags, F::MS_NOSUID | F::MS_NODEV);
        assert_eq!(data, "size=1m,mode=700,uid=5");
        let (flags, data) = split_options("noexec,nosuid,nodev,size=1m,size=2m,dev");
        assert_eq!(flags, F::MS_NOEXEC | F::MS_NOSUID | F::MS_NODEV);
        assert_eq!(data, "size=2m");
    }

    #[test]
    fn mount_checks() {
        let m = |v: serde_json::Value| -> Result<()> {
            let h: HostConfig = serde_json::from_value(serde_json::json!({ "Mounts": [v] })).unwrap();
            validate(&h)
        };
        m(serde_json::json!({"Type": "bind", "Source": "/tmp", "Target": "/x", "ReadOnly": true})).unwrap();
        m(serde_json::json!({"Type": "volume", "Source": "v", "Target": "/x", "VolumeOptions": {"Subpath": "a/b", "NoCopy": true}})).unwrap();
        m(serde_json::json!({"Type": "tmpfs", "Target": "/x", "TmpfsOptions": {"SizeBytes": 1048576, "Mode": 448}})).unwrap();
        let err = |v| m(v).unwrap_err().to_string();
        assert!(err(serde_json::json!({"Type": "bind", "Source": "rel", "Target": "/x"})).contains("must be absolute"));
        assert!(err(serde_json::json!({"Type": "volume", "Target": "/x", "VolumeOptions": {"Subpath": "../up"}})).contains("subpath"));
        assert!(err(serde_json::json!({"Type": "tmpfs", "Source": "x", "Target": "/x"})).contains("Source must not be specified"));
        assert!(err(serde_json::json!({"Type": "bind", "Source": "/a", "Target": "/x", "BindOptions": {"Propagation": "rshared"}})).contains("not supported by Berth"));
        // The driver and its options are checked when the volume is made.
        m(serde_json::json!({"Type": "volume", "Target": "/x", "VolumeOptions": {"DriverConfig": {"Name": "local", "Options": {"type": "tmpfs"}}}})).unwrap();
    }
}
