//! Linux capabilities of a container's processes: Docker's default set changed by
//! `--cap-add` / `--cap-drop` (moby `oci/caps`), and applying a set in the runtime.

use std::str::FromStr;

use caps::{CapSet, Capability, CapsHashSet};

use crate::error::{Error, Result};

/// The capabilities Docker grants by default (moby `oci/caps/defaults.go`).
pub const DEFAULT: &[Capability] = &[
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FOWNER,
    Capability::CAP_FSETID,
    Capability::CAP_KILL,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_NET_RAW,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_MKNOD,
    Capability::CAP_AUDIT_WRITE,
    Capability::CAP_SETFCAP,
];

/// A capability name as Docker takes it: any case, with or without `CAP_`.
pub fn parse(name: &str) -> Result<Capability> {
    Capability::from_str(&caps::to_canonical(name)).map_err(|_| Error::InvalidArgument(format!("unknown capability: \"{}\"", caps::to_canonical(name))))
}

/// The set a container gets: Docker's rules for `ALL` in either list, otherwise the
/// defaults less the drops plus the adds. Names come back canonical and sorted
/// (`CAP_CHOWN`), as the spec and seccomp rules use them.
pub fn container_set(add: &[String], drop: &[String]) -> Result<Vec<String>> {
    let is_all = |l: &[String]| l.iter().any(|c| c.eq_ignore_ascii_case("ALL"));
    let parse_list = |l: &[String]| -> Result<Vec<Capability>> { l.iter().filter(|c| !c.eq_ignore_ascii_case("ALL")).map(|c| parse(c)).collect() };
    let (adds, drops) = (parse_list(add)?, parse_list(drop)?);
    let set: CapsHashSet = if is_all(add) {
        caps::all().into_iter().filter(|c| !drops.contains(c)).collect()
    } else if is_all(drop) {
        adds.into_iter().collect()
    } else {
        DEFAULT.iter().copied().filter(|c| !drops.contains(c)).chain(adds).collect()
    };
    let mut names: Vec<String> = set.iter().map(|c| c.to_string()).collect();
    names.sort();
    Ok(names)
}

/// Drops every capability but `keep` (canonical names) from the bounding set: done
/// before the user changes, so nothing outside `keep` can ever come back.
pub fn limit_bounding(keep: &[String]) -> std::result::Result<(), String> {
    let keep = to_set(keep);
    // The kernel may know capabilities the crate does not: drop by number up to the last.
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap").ok().and_then(|s| s.trim().parse::<u8>().ok()).unwrap_or(40);
    for cap in 0..=last {
        if !keep.iter().any(|c| c.index() == cap) {
            // SAFETY: prctl with integer arguments only.
            if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } != 0 {
                return Err(format!("drop capability {cap}: {}", std::io::Error::last_os_error()));
            }
        }
    }
    Ok(())
}

/// Sets the process's own sets once its user is final: root keeps `keep` effective
/// and permitted, other users none (as Docker does). The inheritable and ambient sets
/// are always emptied, so nothing is handed on to a program through file
/// capabilities (CVE-2022-24769).
pub fn set_process(keep: &[String], root: bool) -> std::result::Result<(), String> {
    let keep = if root { to_set(keep) } else { CapsHashSet::new() };
    let err = |what: &str, e: caps::errors::CapsError| format!("{what}: {e}");
    caps::clear(None, CapSet::Ambient).map_err(|e| err("clear ambient capabilities", e))?;
    caps::clear(None, CapSet::Inheritable).map_err(|e| err("clear inheritable capabilities", e))?;
    // Effective must stay within permitted at every step: shrink it first.
    caps::set(None, CapSet::Effective, &keep).map_err(|e| err("set effective capabilities", e))?;
    caps::set(None, CapSet::Permitted, &keep).map_err(|e| err("set permitted capabilities", e))?;
    Ok(())
}

fn to_set(names: &[String]) -> CapsHashSet {
    names.iter().filter_map(|n| Capability::from_str(n).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(l: &[&str]) -> Vec<String> {
        l.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn docker_rules() {
        let d = container_set(&[], &[]).unwrap();
        assert_eq!(d.len(), DEFAULT.len());
        let dropped = container_set(&[], &v(&["net_raw", "CAP_CHOWN"])).unwrap();
        assert!(!dropped.contains(&"CAP_NET_RAW".into()) && !dropped.contains(&"CAP_CHOWN".into()));
        assert_eq!(dropped.len(), DEFAULT.len() - 2);
        assert_eq!(container_set(&v(&["kill"]), &v(&["ALL"])).unwrap(), v(&["CAP_KILL"]));
        assert!(container_set(&[], &v(&["all"])).unwrap().is_empty());
        let all = container_set(&v(&["ALL"]), &v(&["SYS_ADMIN"])).unwrap();
        assert!(all.contains(&"CAP_NET_ADMIN".into()) && !all.contains(&"CAP_SYS_ADMIN".into()));
        let e = container_set(&[], &v(&["FLY"])).unwrap_err().to_string();
        assert_eq!(e, "unknown capability: \"CAP_FLY\"");
    }
}
