//! What a namespace's user may do. The plain `docker` endpoint has no policy; a lab
//! session's namespace has one: its own network, a home that is the only place bind
//! mounts may come from, resource limits and refused flags. The engine enforces it on
//! every container it creates for that namespace, whoever asks (API, builder).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::container::HostConfig;
use crate::envelope::Envelope;
use crate::error::{Error, Result};
use crate::security::{Seccomp, SecurityOpts};
use crate::log_config::{self, LogMode, Rotation};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// The network namespace (a kept nsfs file, see [`crate::netns`]) where the
    /// namespace's containers publish their ports instead of the host's.
    pub network: Option<PathBuf>,
    /// The only place bind mounts may come from.
    pub home: Option<Home>,
    /// Per container: the default and the most a user may ask for. 0 = no limit.
    pub memory: i64,
    pub nano_cpus: i64,
    pub pids: i64,
    /// Containers the namespace may hold at once. 0 = no limit.
    pub max_containers: usize,
    /// Bytes of disk the namespace's images, volumes and container layers may take,
    /// checked before anything that adds to them. 0 = no limit.
    #[serde(default)]
    pub disk: u64,
    /// The cgroup every container of the namespace runs in, with limits for all of
    /// them together (a lab session's; its workstation joins it too).
    #[serde(default)]
    pub envelope: Option<Envelope>,
    /// json-file rotation: the default and the most a user may ask for, so the logs of
    /// a namespace stay bounded. `--log-driver none` is allowed (it keeps nothing).
    #[serde(default)]
    pub log: Option<Rotation>,
    /// Bytes a second each container's output is taken at, counted as its log
    /// entries are written (as its bare output when it keeps no log): a faster writer
    /// waits (see [`crate::throttle`]). 0 = no limit.
    #[serde(default)]
    pub output_rate: u64,
    /// Why nothing may run in the namespace now (a lab session whose class has
    /// closed): creating, starting and exec'ing containers, builds and pulls are
    /// refused with this message. What is there stays, to be looked at.
    #[serde(default)]
    pub frozen: Option<String>,
}

/// A user's home: the path they see in their workstation, and where it is on the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Home {
    pub user_path: String,
    pub host_path: PathBuf,
}

fn refuse(what: &str) -> Error {
    Error::InvalidArgument(format!("{what} is not allowed in a lab session"))
}

impl Policy {
    /// Checks a container's host config against the policy and fills in its limits;
    /// bind sources are rewritten from the user's home to where it is on the host.
    pub fn apply(&self, h: &mut HostConfig, containers: usize) -> Result<()> {
        if h.privileged {
            return Err(refuse("--privileged"));
        }
        if !h.cap_add.is_empty() {
            return Err(refuse("--cap-add"));
        }
        if !h.devices.is_empty() {
            return Err(refuse("--device"));
        }
        if h.network_mode == "host" {
            return Err(refuse("--network host"));
        }
        if h.pid_mode == "host" {
            return Err(refuse("--pid host"));
        }
        if h.ipc_mode == "host" {
            return Err(refuse("--ipc host"));
        }
        if h.uts_mode == "host" {
            return Err(refuse("--uts host"));
        }
        if h.oom_score_adj < 0 {
            // A container the OOM killer spares takes the others' memory instead.
            return Err(refuse("a negative --oom-score-adj"));
        }
        // Tightening settings (--cap-drop, no-new-privileges) are the student's to
        // choose; a way out of Docker's default seccomp profile is not.
        match SecurityOpts::parse(&h.security_opt)?.seccomp {
            Seccomp::Default => {}
            Seccomp::Unconfined => return Err(refuse("--security-opt seccomp=unconfined")),
            Seccomp::Profile(_) => return Err(refuse("a seccomp profile of your own (--security-opt seccomp=FILE)")),
        }
        if !h.userns_mode.is_empty() {
            return Err(refuse(&format!("--userns {}", h.userns_mode)));
        }
        // Docker's masked and read-only paths keep the host's kernel details and
        // settings out of reach: a student may add to them, not take any away.
        for (name, list, defaults) in [("MaskedPaths", &h.masked_paths, crate::security::MASKED), ("ReadonlyPaths", &h.readonly_paths, crate::security::READONLY)] {
            let Some(list) = list else { continue };
            if list.is_empty() {
                return Err(refuse("--security-opt systempaths=unconfined"));
            }
            if let Some(d) = defaults.iter().find(|d| !list.iter().any(|p| p == *d)) {
                return Err(refuse(&format!("a {name} list without {d}")));
            }
        }
        if self.max_containers > 0 && containers >= self.max_containers {
            return Err(Error::Conflict(format!(
                "this lab session already has {containers} containers, its limit: remove some (docker container prune) first"
            )));
        }
        self.apply_limits(h)?;
        if let Some(env) = &self.envelope {
            if !h.cgroup_parent.is_empty() && h.cgroup_parent.trim_matches('/') != env.cgroup {
                return Err(refuse("--cgroup-parent"));
            }
            h.cgroup_parent = env.cgroup.clone();
        }
        if let Some(max) = self.log {
            self.limit_log(h, max)?;
        }
        let mut binds = Vec::with_capacity(h.binds.len());
        for b in &h.binds {
            binds.push(self.map_bind(b)?);
        }
        h.binds = binds;
        for m in h.mounts.iter_mut().filter(|m| m.kind == "bind") {
            m.source = self.map_source(&m.source)?.display().to_string();
        }
        Ok(())
    }

    /// The session's limits on a container's memory, swap, CPUs and processes: filled
    /// in where none is asked, refused above the session's. Also what `docker update`
    /// is held to.
    pub fn apply_limits(&self, h: &mut HostConfig) -> Result<()> {
        // An OOM killer that never comes lets one container sit on the session's
        // memory for good, its siblings starved.
        if h.oom_kill_disable == Some(true) {
            return Err(refuse("--oom-kill-disable"));
        }
        let mib = |v: i64| format!("{}m", v / (1024 * 1024));
        limit(&mut h.memory, self.memory, "--memory", mib)?;
        if self.memory > 0 {
            // Swap is memory too: at most Docker's default for a container at the
            // limit (twice it, memory plus as much swap).
            if h.memory_swap == -1 {
                return Err(refuse("--memory-swap -1 (unlimited swap)"));
            }
            if h.memory_swap > 2 * self.memory {
                return Err(Error::InvalidArgument(format!("--memory-swap {} is above this lab session's limit of {}", mib(h.memory_swap), mib(2 * self.memory))));
            }
        }
        self.limit_cpus(h)?;
        let mut pids = h.pids_limit.unwrap_or(0);
        limit(&mut pids, self.pids, "--pids-limit", |v| v.to_string())?;
        if self.pids > 0 {
            h.pids_limit = Some(pids);
        }
        Ok(())
    }

    /// The home directory a bind source of this session must stay beneath, on the host
    /// (the runtime opens the source from it without following a way out).
    pub fn bind_root(&self) -> Option<&std::path::Path> {
        self.home.as_ref().map(|h| h.host_path.as_path())
    }

    /// `--cpus`, or `--cpu-quota`/`--cpu-period` (which Docker does not let go
    /// with `--cpus`): within the policy's CPUs, which are the default.
    fn limit_cpus(&self, h: &mut HostConfig) -> Result<()> {
        let cpus = |v: i64| format!("{:.2}", v as f64 / 1e9);
        if self.nano_cpus <= 0 || h.nano_cpus > 0 || (h.cpu_quota == 0 && h.cpu_period == 0) {
            return limit(&mut h.nano_cpus, self.nano_cpus, "--cpus", cpus);
        }
        let period = if h.cpu_period > 0 { h.cpu_period } else { 100_000 };
        if h.cpu_quota <= 0 {
            // No quota (or -1, none): the policy's CPUs over the period asked for.
            h.cpu_quota = self.nano_cpus * period / 1_000_000_000;
        } else if h.cpu_quota * 1_000_000_000 / period > self.nano_cpus {
            return Err(Error::InvalidArgument(format!(
                "--cpu-quota {} over a period of {period} ({} CPUs) is above this lab session's limit of {}",
                h.cpu_quota,
                cpus(h.cpu_quota * 1_000_000_000 / period),
                cpus(self.nano_cpus)
            )));
        }
        Ok(())
    }

    /// `SRC:DEST[:MODE]` with SRC a path in the user's home: the same bind with SRC on
    /// the host. Named volumes pass unchanged.
    fn map_bind(&self, bind: &str) -> Result<String> {
        let (src, rest) = bind.split_once(':').unwrap_or((bind, ""));
        if !src.starts_with('/') {
            return Ok(bind.to_string());
        }
        Ok(format!("{}:{rest}", self.map_source(src)?.display()))
    }

    /// A bind source path as the user sees it (in their home) to the host's path.
    /// A symlink in the home that leads out of it is refused here; the runtime checks
    /// again when it mounts (the link could change in between).
    fn map_source(&self, src: &str) -> Result<PathBuf> {
        let Some(home) = &self.home else { return Err(refuse("a bind mount")) };
        let inside = normalize(src).ok_or_else(|| refuse(&format!("bind mount {src}")))?;
        let under = if inside == home.user_path {
            Some("")
        } else {
            inside.strip_prefix(&home.user_path).and_then(|r| r.strip_prefix('/'))
        };
        let Some(rel) = under else {
            return Err(Error::InvalidArgument(format!(
                "bind mount {src}: only paths in your home ({}) can be mounted in a lab session",
                home.user_path
            )));
        };
        let host = if rel.is_empty() { home.host_path.clone() } else { home.host_path.join(rel) };
        // The longest part that exists, with its symlinks resolved, must still be in
        // the home (the rest is made as directories by the bind).
        let root = home.host_path.canonicalize().unwrap_or_else(|_| home.host_path.clone());
        let mut existing = host.as_path();
        while !existing.exists() && existing != home.host_path {
            match existing.parent() {
                Some(p) => existing = p,
                None => break,
            }
        }
        if existing.exists() && existing.canonicalize().map(|real| !real.starts_with(&root)).unwrap_or(false) {
            return Err(Error::InvalidArgument(format!("bind mount {src}: it leads out of your home ({}) through a symbolic link", home.user_path)));
        }
        Ok(host)
    }

    /// Fills in the log rotation and refuses more than `max` (the host config was
    /// validated already: its options parse).
    fn limit_log(&self, h: &mut HostConfig, max: Rotation) -> Result<()> {
        let over = |opt: &str, asked: String, limit: String| {
            Error::InvalidArgument(format!("--log-opt {opt}={asked} is above this lab session's limit of {limit}"))
        };
        match h.log_config.mode()? {
            LogMode::Discard => return Ok(()),
            LogMode::Unbounded => {
                if let Some(f) = h.log_config.config.get("max-file") {
                    // max-file alone is allowed by Docker (and means nothing): checked
                    // against the limit all the same.
                    let n: u32 = f.parse().unwrap_or(u32::MAX);
                    if n > max.max_file {
                        return Err(over("max-file", f.clone(), max.max_file.to_string()));
                    }
                    h.log_config.config.insert("max-size".into(), log_config::show_size(max.max_size));
                } else {
                    max.set_in(&mut h.log_config.config);
                }
            }
            LogMode::Rotated(r) => {
                if r.max_size > max.max_size {
                    return Err(over("max-size", h.log_config.config["max-size"].clone(), log_config::show_size(max.max_size)));
                }
                if r.max_file > max.max_file {
                    return Err(over("max-file", r.max_file.to_string(), max.max_file.to_string()));
                }
                if !h.log_config.config.contains_key("max-file") {
                    // Docker's default of one file is within any limit; the lab's
                    // default is kept instead, so a student's max-size alone does not
                    // lose the history the instructor allows.
                    h.log_config.config.insert("max-file".into(), max.max_file.to_string());
                }
            }
        }
        Ok(())
    }

    /// The policy's network, if it has one.
    pub fn network(&self) -> Option<&Path> {
        self.network.as_deref()
    }
}

/// Applies a policy limit: the default when the user gave none, refused above it.
fn limit(asked: &mut i64, max: i64, flag: &str, show: impl Fn(i64) -> String) -> Result<()> {
    if max <= 0 {
        return Ok(());
    }
    if *asked <= 0 {
        *asked = max;
    } else if *asked > max {
        return Err(Error::InvalidArgument(format!("{flag} {} is above this lab session's limit of {}", show(*asked), show(max))));
    }
    Ok(())
}

/// An absolute path with `.` and `..` resolved lexically; None if it climbs above `/`.
fn normalize(p: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab() -> Policy {
        Policy {
            network: None,
            home: Some(Home { user_path: "/root".into(), host_path: "/srv/home".into() }),
            memory: 256 << 20,
            nano_cpus: 1_000_000_000,
            pids: 256,
            max_containers: 2,
            disk: 0,
            envelope: Some(Envelope::for_namespace("lab-0123456789ab", 1 << 30, 1_000_000_000, 512)),
            log: Some(Rotation { max_size: 10_000_000, max_file: 2 }),
            output_rate: 1_000_000,
            frozen: None,
        }
    }

    #[test]
    fn binds_map_into_the_home_only() {
        let p = lab();
        assert_eq!(p.map_bind("/root/site:/www:ro").unwrap(), "/srv/home/site:/www:ro");
        assert_eq!(p.map_bind("/root:/data").unwrap(), "/srv/home:/data");
        assert_eq!(p.map_bind("data:/data").unwrap(), "data:/data");
        for bad in ["/etc:/x", "/root/../etc:/x", "/rootx:/x", "/:/x", "/root/../../..:/x"] {
            let e = p.map_bind(bad).unwrap_err().to_string();
            assert!(e.contains("lab session"), "{bad}: {e}");
        }
    }

    #[test]
    fn system_paths_may_grow_but_not_shrink() {
        let p = lab();
        let apply = |masked: Option<Vec<&str>>, readonly: Option<Vec<&str>>| {
            let own = |l: Option<Vec<&str>>| l.map(|l| l.into_iter().map(String::from).collect());
            let mut h = HostConfig { masked_paths: own(masked), readonly_paths: own(readonly), ..Default::default() };
            p.apply(&mut h, 0).map_err(|e| e.to_string())
        };
        apply(None, None).unwrap();
        assert_eq!(apply(Some(vec![]), Some(vec![])).unwrap_err(), "--security-opt systempaths=unconfined is not allowed in a lab session");
        let mut more = crate::security::MASKED.to_vec();
        more.push("/etc/motd");
        apply(Some(more), None).unwrap();
        let fewer = crate::security::READONLY.iter().copied().filter(|p| *p != "/proc/sys").collect();
        assert_eq!(apply(None, Some(fewer)).unwrap_err(), "a ReadonlyPaths list without /proc/sys is not allowed in a lab session");
    }

    #[test]
    fn limits_default_and_cap() {
        let p = lab();
        let mut h = HostConfig::default();
        p.apply(&mut h, 0).unwrap();
        assert_eq!((h.memory, h.nano_cpus, h.pids_limit), (256 << 20, 1_000_000_000, Some(256)));
        let mut h = HostConfig { memory: 1 << 30, ..Default::default() };
        assert!(p.apply(&mut h, 0).unwrap_err().to_string().contains("--memory 1024m is above"));
        let mut h = HostConfig::default();
        assert!(matches!(p.apply(&mut h, 2), Err(Error::Conflict(_))));
    }

    #[test]
    fn resources_stay_in_the_envelope() {
        let p = lab();
        let apply = |h: HostConfig| {
            let mut h = h;
            p.apply(&mut h, 0).map(|_| h).map_err(|e| e.to_string())
        };
        let e = apply(HostConfig { oom_kill_disable: Some(true), ..Default::default() }).unwrap_err();
        assert_eq!(e, "--oom-kill-disable is not allowed in a lab session");
        apply(HostConfig { oom_kill_disable: Some(false), ..Default::default() }).unwrap();
        let e = apply(HostConfig { memory_swap: -1, ..Default::default() }).unwrap_err();
        assert_eq!(e, "--memory-swap -1 (unlimited swap) is not allowed in a lab session");
        let e = apply(HostConfig { memory: 128 << 20, memory_swap: 1 << 30, ..Default::default() }).unwrap_err();
        assert_eq!(e, "--memory-swap 1024m is above this lab session's limit of 512m");
        apply(HostConfig { memory: 128 << 20, memory_swap: 512 << 20, ..Default::default() }).unwrap();
        // --cpu-quota/--cpu-period instead of --cpus: kept, within the session's CPUs.
        let h = apply(HostConfig { cpu_quota: 50_000, ..Default::default() }).unwrap();
        assert_eq!((h.nano_cpus, h.cpu_quota, h.cpu_period), (0, 50_000, 0));
        let h = apply(HostConfig { cpu_period: 50_000, ..Default::default() }).unwrap();
        assert_eq!((h.nano_cpus, h.cpu_quota, h.cpu_period), (0, 50_000, 50_000));
        let e = apply(HostConfig { cpu_quota: 200_000, ..Default::default() }).unwrap_err();
        assert_eq!(e, "--cpu-quota 200000 over a period of 100000 (2.00 CPUs) is above this lab session's limit of 1.00");
    }

    #[test]
    fn containers_go_in_the_envelope() {
        let p = lab();
        let mut h = HostConfig::default();
        p.apply(&mut h, 0).unwrap();
        assert_eq!(h.cgroup_parent, "berth/lab-0123456789ab");
        assert_eq!(crate::cgroup::container_name(&h.cgroup_parent, "c1"), "berth/lab-0123456789ab/c1");
        let mut h = HostConfig { cgroup_parent: "/berth/lab-0123456789ab".into(), ..Default::default() };
        p.apply(&mut h, 0).unwrap();
        let mut h = HostConfig { cgroup_parent: "elsewhere".into(), ..Default::default() };
        assert!(p.apply(&mut h, 0).unwrap_err().to_string().contains("--cgroup-parent is not allowed"));
    }

    #[test]
    fn logs_default_and_cap() {
        let p = lab();
        let opts = |h: &HostConfig| h.log_config.config.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
        let with = |pairs: &[(&str, &str)]| {
            let mut h = HostConfig::default();
            h.log_config.config = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            h
        };
        let mut h = HostConfig::default();
        p.apply(&mut h, 0).unwrap();
        assert_eq!(opts(&h), "max-file=2,max-size=10m");
        let mut h = with(&[("max-size", "1k")]);
        p.apply(&mut h, 0).unwrap();
        assert_eq!(opts(&h), "max-file=2,max-size=1k");
        let mut h = with(&[("max-size", "1k"), ("max-file", "1")]);
        p.apply(&mut h, 0).unwrap();
        assert_eq!(opts(&h), "max-file=1,max-size=1k");
        let mut h = with(&[("max-size", "20m")]);
        assert_eq!(p.apply(&mut h, 0).unwrap_err().to_string(), "--log-opt max-size=20m is above this lab session's limit of 10m");
        let mut h = with(&[("max-size", "1m"), ("max-file", "5")]);
        assert_eq!(p.apply(&mut h, 0).unwrap_err().to_string(), "--log-opt max-file=5 is above this lab session's limit of 2");
        let mut h = with(&[("max-file", "9")]);
        assert!(p.apply(&mut h, 0).is_err());
        let mut h = HostConfig::default();
        h.log_config.r#type = "none".into();
        p.apply(&mut h, 0).unwrap();
        assert!(h.log_config.config.is_empty());
    }

    #[test]
    fn refused_flags() {
        let p = lab();
        let cases: Vec<(HostConfig, &str)> = vec![
            (HostConfig { privileged: true, ..Default::default() }, "--privileged"),
            (HostConfig { cap_add: vec!["NET_ADMIN".into()], ..Default::default() }, "--cap-add"),
            (HostConfig { network_mode: "host".into(), ..Default::default() }, "--network host"),
            (HostConfig { pid_mode: "host".into(), ..Default::default() }, "--pid host"),
            (HostConfig { security_opt: vec!["seccomp=unconfined".into()], ..Default::default() }, "seccomp=unconfined is not allowed"),
            (HostConfig { security_opt: vec![r#"seccomp={"defaultAction":"SCMP_ACT_ALLOW"}"#.into()], ..Default::default() }, "seccomp profile of your own"),
            (HostConfig { userns_mode: "host".into(), ..Default::default() }, "--userns host"),
        ];
        for (mut h, flag) in cases {
            let e = p.apply(&mut h, 0).unwrap_err().to_string();
            assert!(e.contains(flag), "{e}");
        }
        let mut tighter = HostConfig { cap_drop: vec!["ALL".into()], security_opt: vec!["no-new-privileges".into()], ..Default::default() };
        p.apply(&mut tighter, 0).unwrap();
    }
}
