//! `--sysctl` and `--ulimit`: the kernel settings a container may set for itself,
//! checked with Docker's rules at create.

use crate::container::{HostConfig, Ulimit};
use crate::error::{Error, Result};

/// The IPC namespace's sysctls Docker allows (besides `fs.mqueue.*`).
const IPC_SYSCTLS: &[&str] = &["kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"];

/// Checks one sysctl as Docker does: only those of namespaces the container has of
/// its own (IPC; network unless it shares the host's network).
pub fn check(key: &str, value: &str, h: &HostConfig) -> Result<()> {
    let not_allowed = || Error::InvalidArgument(format!("sysctl '{key}={value}' is not allowed"));
    if key.is_empty() || key.contains("..") || key.contains('/') || key.starts_with('.') || key.ends_with('.') {
        return Err(not_allowed());
    }
    if is_ipc(key) {
        if h.ipc_mode == "host" {
            return Err(Error::InvalidArgument(format!("sysctl '{key}' is not allowed in host IPC namespace")));
        }
        return Ok(());
    }
    if key.starts_with("net.") {
        if h.network_mode == "host" {
            return Err(Error::InvalidArgument(format!("sysctl '{key}' is not allowed in host network namespace")));
        }
        return Ok(());
    }
    Err(not_allowed())
}

/// Whether `key` is a setting of the IPC namespace (the rest Docker allows are the
/// network namespace's).
pub fn is_ipc(key: &str) -> bool {
    IPC_SYSCTLS.contains(&key) || key.starts_with("fs.mqueue.")
}

/// The file under /proc/sys that sets `key`.
pub fn proc_path(key: &str) -> String {
    key.replace('.', "/")
}

/// The `--ulimit` names the kernel has, with their resource numbers.
pub fn resource(name: &str) -> Option<libc::c_int> {
    Some(match name {
        "core" => libc::RLIMIT_CORE as libc::c_int,
        "cpu" => libc::RLIMIT_CPU as libc::c_int,
        "data" => libc::RLIMIT_DATA as libc::c_int,
        "fsize" => libc::RLIMIT_FSIZE as libc::c_int,
        "locks" => libc::RLIMIT_LOCKS as libc::c_int,
        "memlock" => libc::RLIMIT_MEMLOCK as libc::c_int,
        "msgqueue" => libc::RLIMIT_MSGQUEUE as libc::c_int,
        "nice" => libc::RLIMIT_NICE as libc::c_int,
        "nofile" => libc::RLIMIT_NOFILE as libc::c_int,
        "nproc" => libc::RLIMIT_NPROC as libc::c_int,
        "rss" => libc::RLIMIT_RSS as libc::c_int,
        "rtprio" => libc::RLIMIT_RTPRIO as libc::c_int,
        "rttime" => libc::RLIMIT_RTTIME as libc::c_int,
        "sigpending" => libc::RLIMIT_SIGPENDING as libc::c_int,
        "stack" => libc::RLIMIT_STACK as libc::c_int,
        "as" => libc::RLIMIT_AS as libc::c_int,
        _ => return None,
    })
}

/// Checks the sysctls and ulimits of a host config.
pub fn validate(h: &HostConfig) -> Result<()> {
    for (k, v) in &h.sysctls {
        check(k, v, h)?;
    }
    for Ulimit { name, soft, hard } in &h.ulimits {
        if resource(name).is_none() {
            return Err(Error::InvalidArgument(format!("invalid ulimit type: {name}")));
        }
        // -1 is unlimited, as the CLI sends it.
        if *soft != -1 && (*hard != -1 && soft > hard || *soft < -1) || *hard < -1 {
            return Err(Error::InvalidArgument(format!("ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockers_rules() {
        let h = HostConfig::default();
        check("net.ipv4.ip_forward", "1", &h).unwrap();
        check("kernel.shmmax", "1000", &h).unwrap();
        check("fs.mqueue.msg_max", "20", &h).unwrap();
        assert_eq!(check("kernel.hostname", "x", &h).unwrap_err().to_string(), "sysctl 'kernel.hostname=x' is not allowed");
        assert!(check("vm.swappiness", "1", &h).is_err());
        assert!(check("net/../../x", "1", &h).is_err());
        let host_net = HostConfig { network_mode: "host".into(), ..Default::default() };
        assert!(check("net.ipv4.ip_forward", "1", &host_net).unwrap_err().to_string().contains("host network namespace"));
        assert_eq!(proc_path("net.ipv4.ping_group_range"), "net/ipv4/ping_group_range");
    }

    #[test]
    fn ulimits() {
        let h = |n: &str, s, hd| HostConfig { ulimits: vec![Ulimit { name: n.into(), soft: s, hard: hd }], ..Default::default() };
        validate(&h("nofile", 1024, 2048)).unwrap();
        validate(&h("core", -1, -1)).unwrap();
        assert!(validate(&h("nofile", 4096, 1024)).is_err());
        assert_eq!(validate(&h("bogus", 1, 1)).unwrap_err().to_string(), "invalid ulimit type: bogus");
    }
}
