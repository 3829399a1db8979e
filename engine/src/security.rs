//! A container's security settings: `--security-opt`, `--cap-add`, `--cap-drop`,
//! read from its host config (with Docker's rules and error messages) and turned into
//! what the runtime applies ([`crate::spec::Security`]).

use crate::container::HostConfig;
use crate::error::{Error, Result};

/// Which seccomp profile a container runs under.
#[derive(Debug, Clone, PartialEq)]
pub enum Seccomp {
    /// Docker's default profile (also `seccomp=builtin`).
    Default,
    /// `seccomp=unconfined`: no filter.
    Unconfined,
    /// A profile in Docker's JSON format (the CLI sends the file's content).
    Profile(String),
}

/// The `--security-opt` values of one container.
#[derive(Debug, Clone, PartialEq)]
pub struct SecurityOpts {
    pub seccomp: Seccomp,
    pub no_new_privileges: bool,
}

impl SecurityOpts {
    /// Parses `HostConfig.SecurityOpt` as dockerd does (`key=value`, the legacy
    /// `key:value`, bare `no-new-privileges`). Settings Berth has no mechanism for are
    /// refused; those that name the state Berth is always in (no AppArmor, no SELinux)
    /// are accepted.
    pub fn parse(opts: &[String]) -> Result<SecurityOpts> {
        let mut out = SecurityOpts { seccomp: Seccomp::Default, no_new_privileges: false };
        for opt in opts {
            if opt == "no-new-privileges" {
                out.no_new_privileges = true;
                continue;
            }
            if opt == "disable" {
                // The legacy spelling of `label=disable`.
                continue;
            }
            let (key, value) = opt.split_once('=').or_else(|| opt.split_once(':')).ok_or_else(|| Error::InvalidArgument(format!("invalid --security-opt 1: {opt:?}")))?;
            match key {
                "seccomp" => {
                    out.seccomp = match value {
                        "unconfined" => Seccomp::Unconfined,
                        "builtin" | "" => Seccomp::Default,
                        json => {
                            // Checked now, so a bad profile fails `create`, not `start`.
                            crate::seccomp::Profile::from_json(json.as_bytes()).map_err(|e| Error::InvalidArgument(e.to_string()))?;
                            Seccomp::Profile(json.to_string())
                        }
                    }
                }
                "no-new-privileges" => {
                    out.no_new_privileges = parse_bool(value).ok_or_else(|| Error::InvalidArgument(format!("invalid --security-opt 2: {opt:?}")))?;
                }
                "apparmor" if value == "unconfined" => {}
                "apparmor" => return Err(unsupported(&format!("AppArmor profile {value:?} (this host runs no AppArmor)"))),
                "label" if value == "disable" => {}
                "label" => return Err(unsupported("SELinux labels (label=...)")),
                "writable-cgroups" => return Err(unsupported("--security-opt writable-cgroups")),
                "systempaths" => return Err(unsupported("--security-opt systempaths")),
                _ => return Err(Error::InvalidArgument(format!("invalid --security-opt 2: {opt:?}"))),
            }
        }
        Ok(out)
    }
}

/// The paths a Linux container gets hidden (a file under /dev/null, a directory under
/// an empty read-only tmpfs) and made read-only: the config's own lists, or Docker's
/// defaults (moby `oci/defaults.go`) where it names none.
pub fn system_paths(h: &HostConfig) -> (Vec<String>, Vec<String>) {
    let or_default = |list: &Option<Vec<String>>, default: &[&str]| match list {
        Some(l) => l.clone(),
        None => default.iter().map(|p| p.to_string()).collect(),
    };
    (or_default(&h.masked_paths, MASKED), or_default(&h.readonly_paths, READONLY))
}

/// Docker's masked paths: kernel details of the host no container needs.
pub const MASKED: &[&str] = &[
    "/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
    "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
    "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
];
/// Docker's read-only paths: kernel settings and triggers of the whole host.
pub const READONLY: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

fn unsupported(what: &str) -> Error {
    Error::InvalidArgument(format!("{what} is not supported by Berth"))
}

/// Checks the security fields of a host config wherever the container comes from:
/// every value either works or is refused here.
pub fn validate(h: &HostConfig) -> Result<()> {
    SecurityOpts::parse(&h.security_opt)?;
    crate::capabilities::container_set(&h.cap_add, &h.cap_drop)?;
    if h.privileged {
        return Err(unsupported("--privileged"));
    }
    if !matches!(h.userns_mode.as_str(), "" | "host") {
        return Err(unsupported(&format!("--userns {}", h.userns_mode)));
    }
    for (name, list) in [("MaskedPaths", &h.masked_paths), ("ReadonlyPaths", &h.readonly_paths)] {
        let Some(list) = list else { continue };
        if h.runtime == crate::runtime::WASMTIME {
            return Err(unsupported(&format!("{name} for a WebAssembly container (it has no /proc or /sys)")));
        }
        if let Some(p) = list.iter().find(|p| !p.starts_with('/') || p.contains('\0')) {
            return Err(Error::InvalidArgument(format!("invalid {name}: {p:?} is not an absolute path")));
        }
    }
    // Namespaces: private, the host's, or another container's (`container:X`); an
    // `--ipc none` (no /dev/shm) or a private cgroup namespace would be quietly wrong.
    for (flag, value, fine) in [
        ("--pid", &h.pid_mode, &["", "private", "host"][..]),
        ("--ipc", &h.ipc_mode, &["", "private", "shareable", "host"][..]),
        ("--uts", &h.uts_mode, &["", "host"][..]),
        ("--cgroupns", &h.cgroupns_mode, &["", "host", "private"][..]),
    ] {
        let shared = value.strip_prefix("container:").is_some_and(|n| !n.is_empty()) && flag != "--uts" && flag != "--cgroupns";
        if !fine.contains(&value.as_str()) && !shared {
            return Err(unsupported(&format!("{flag} {value}")));
        }
        if h.runtime == crate::runtime::WASMTIME && !matches!(value.as_str(), "" | "private" | "shareable") && flag != "--cgroupns" {
            return Err(unsupported(&format!("{flag} {value} for WebAssembly containers")));
        }
    }
    let set = [
        (!h.device_cgroup_rules.is_empty(), "--device-cgroup-rule"),
        (!h.cgroup.is_empty(), "--cgroup"),
    ];
    if let Some((_, flag)) = set.iter().find(|(on, _)| *on) {
        return Err(unsupported(flag));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(opts: &[&str]) -> Result<SecurityOpts> {
        SecurityOpts::parse(&opts.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn docker_forms() {
        assert_eq!(p(&[]).unwrap().seccomp, Seccomp::Default);
        assert_eq!(p(&["seccomp=unconfined"]).unwrap().seccomp, Seccomp::Unconfined);
        assert_eq!(p(&["seccomp:unconfined"]).unwrap().seccomp, Seccomp::Unconfined);
        assert!(p(&["no-new-privileges"]).unwrap().no_new_privileges);
        assert!(p(&["no-new-privileges=true"]).unwrap().no_new_privileges);
        assert!(!p(&["no-new-privileges=false"]).unwrap().no_new_privileges);
        assert!(p(&["apparmor=unconfined", "label=disable"]).is_ok());
        let json = r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#;
        assert_eq!(p(&[&format!("seccomp={json}")]).unwrap().seccomp, Seccomp::Profile(json.into()));
    }

    #[test]
    fn refusals_say_why() {
        for (opt, want) in [
            ("nonsense", "invalid --security-opt 1"),
            ("color=blue", "invalid --security-opt 2"),
            ("no-new-privileges=maybe", "invalid --security-opt 2"),
            ("apparmor=docker-default", "not supported by Berth"),
            ("label=type:svirt_apache_t", "not supported by Berth"),
            ("seccomp={", "decoding seccomp profile failed"),
        ] {
            let e = p(&[opt]).unwrap_err().to_string();
            assert!(e.contains(want), "{opt}: {e}");
        }
        let h = HostConfig { userns_mode: "private".into(), ..Default::default() };
        assert!(validate(&h).is_err());
        let h = HostConfig { uts_mode: "container:abc".into(), ..Default::default() };
        assert!(validate(&h).unwrap_err().to_string().contains("--uts container:abc is not supported by Berth"));
        validate(&HostConfig { pid_mode: "container:abc".into(), ipc_mode: "container:abc".into(), ..Default::default() }).unwrap();
        let h = HostConfig { device_cgroup_rules: vec!["c 1:3 rwm".into()], ..Default::default() };
        assert!(validate(&h).unwrap_err().to_string().contains("--device-cgroup-rule"));
        validate(&HostConfig { ipc_mode: "private".into(), cgroupns_mode: "host".into(), ..Default::default() }).unwrap();
    }

    #[test]
    fn system_paths_are_dockers_unless_the_config_names_its_own() {
        let read = |json: &str| serde_json::from_str::<HostConfig>(json).unwrap();
        // Absent or null: the defaults. Empty lists: `systempaths=unconfined`.
        for json in [r#"{}"#, r#"{"MaskedPaths":null,"ReadonlyPaths":null}"#] {
            let (masked, readonly) = system_paths(&read(json));
            assert_eq!((masked.len(), readonly.len()), (MASKED.len(), READONLY.len()), "{json}");
            assert!(masked.iter().any(|p| p == "/proc/kcore") && readonly.iter().any(|p| p == "/proc/sys"));
        }
        let unconfined = read(r#"{"MaskedPaths":[],"ReadonlyPaths":[]}"#);
        assert_eq!(system_paths(&unconfined), (vec![], vec![]));
        validate(&unconfined).unwrap();
        // What was read is what is kept (a container's config is saved and read back).
        let again: HostConfig = serde_json::from_str(&serde_json::to_string(&unconfined).unwrap()).unwrap();
        assert_eq!(system_paths(&again), (vec![], vec![]));
        let own = read(r#"{"MaskedPaths":["/etc/motd"],"ReadonlyPaths":["/srv"]}"#);
        assert_eq!(system_paths(&own), (vec!["/etc/motd".to_string()], vec!["/srv".to_string()]));
        let e = validate(&read(r#"{"MaskedPaths":["proc/kcore"]}"#)).unwrap_err().to_string();
        assert_eq!(e, r#"invalid MaskedPaths: "proc/kcore" is not an absolute path"#);
        let wasm = HostConfig { runtime: crate::runtime::WASMTIME.into(), ..unconfined };
        assert!(validate(&wasm).unwrap_err().to_string().contains("MaskedPaths for a WebAssembly container"));
    }
}
