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
    if !h.masked_paths.is_empty() || !h.readonly_paths.is_empty() {
        return Err(unsupported("MaskedPaths and ReadonlyPaths"));
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
}
