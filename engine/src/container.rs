//! The container model: Docker-shaped config (so the API can pass it through), the
//! state machine, and the on-disk record `<root>/containers/<id>/container.json`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{Error, Result};
use crate::spec::PortSpec;

/// Treats JSON `null` as the type's default: the docker CLI sends `"Cmd": null`.
pub fn nullable<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `Config` of the create request and of `inspect`, in Docker's field names.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerConfig {
    #[serde(deserialize_with = "nullable")]
    pub hostname: String,
    #[serde(deserialize_with = "nullable")]
    pub domainname: String,
    #[serde(deserialize_with = "nullable")]
    pub user: String,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "BTreeMap::is_empty")]
    pub exposed_ports: BTreeMap<String, serde_json::Value>,
    pub tty: bool,
    pub open_stdin: bool,
    pub stdin_once: bool,
    #[serde(deserialize_with = "nullable")]
    pub env: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub cmd: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub image: String,
    #[serde(deserialize_with = "nullable")]
    pub volumes: BTreeMap<String, serde_json::Value>,
    #[serde(deserialize_with = "nullable")]
    pub working_dir: String,
    /// None: the image's; Some([]) or Some([""]): none.
    pub entrypoint: Option<Vec<String>>,
    #[serde(deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    /// `--health-*`, `--no-healthcheck`; after create, merged with the image's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<crate::health::HealthConfig>,
    /// `--mac-address`: the main network's MAC address, as given. Clients of API
    /// < 1.44 send it here, newer ones in the endpoint's settings (then it is copied
    /// here, where Docker shows it too).
    #[serde(deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub mac_address: String,
    /// Fields Berth has no member for: refused when set (see `unsupported`).
    #[serde(flatten, skip_serializing)]
    pub unknown: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct PortBinding {
    #[serde(deserialize_with = "nullable")]
    pub host_ip: String,
    #[serde(deserialize_with = "nullable")]
    pub host_port: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct RestartPolicy {
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    pub maximum_retry_count: i64,
}

/// `HostConfig`, in Docker's field names: what Berth acts on, and in `unknown` the rest.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostConfig {
    #[serde(deserialize_with = "nullable")]
    pub binds: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub port_bindings: BTreeMap<String, Vec<PortBinding>>,
    pub publish_all_ports: bool,
    pub auto_remove: bool,
    pub restart_policy: RestartPolicy,
    pub memory: i64,
    pub nano_cpus: i64,
    pub cpu_quota: i64,
    pub cpu_period: i64,
    /// `--pids-limit`: null when not given, 0 for none (-1 is taken for 0, as dockerd does).
    pub pids_limit: Option<i64>,
    /// `--memory-swap`: memory plus swap, -1 unlimited; after create, Docker's
    /// default of twice `memory` (see `resources`).
    pub memory_swap: i64,
    /// `--memory-reservation`: the soft limit.
    pub memory_reservation: i64,
    /// `--oom-kill-disable`; null where the host's cgroups cannot (v2).
    pub oom_kill_disable: Option<bool>,
    /// `--memory-swappiness` 0..100; null (the CLI's -1) when not set.
    pub memory_swappiness: Option<i64>,
    /// `--cpu-shares`: the relative CPU weight (v2: converted to `cpu.weight`).
    pub cpu_shares: i64,
    #[serde(deserialize_with = "nullable")]
    pub cpuset_cpus: String,
    #[serde(deserialize_with = "nullable")]
    pub cpuset_mems: String,
    /// `--blkio-weight` and the `--blkio-weight-device`, `--device-*-bps/iops` lists.
    pub blkio_weight: u16,
    #[serde(deserialize_with = "nullable")]
    pub blkio_weight_device: Vec<crate::resources::WeightDevice>,
    #[serde(deserialize_with = "nullable")]
    pub blkio_device_read_bps: Vec<crate::resources::ThrottleDevice>,
    #[serde(deserialize_with = "nullable")]
    pub blkio_device_write_bps: Vec<crate::resources::ThrottleDevice>,
    #[serde(rename = "BlkioDeviceReadIOps", deserialize_with = "nullable")]
    pub blkio_device_read_i_ops: Vec<crate::resources::ThrottleDevice>,
    #[serde(rename = "BlkioDeviceWriteIOps", deserialize_with = "nullable")]
    pub blkio_device_write_i_ops: Vec<crate::resources::ThrottleDevice>,
    /// `--cgroup-parent`: the container's cgroup is `<parent>/<id>` (a lab session's
    /// envelope, see `envelope`); empty: `berth/<id>`.
    #[serde(deserialize_with = "nullable")]
    pub cgroup_parent: String,
    /// `--log-driver`, `--log-opt`.
    #[serde(deserialize_with = "nullable")]
    pub log_config: crate::log_config::LogConfig,
    pub readonly_rootfs: bool,
    #[serde(deserialize_with = "nullable")]
    pub volumes_from: Vec<String>,
    pub privileged: bool,
    #[serde(deserialize_with = "nullable")]
    pub cap_add: Vec<String>,
    /// `--cap-drop` (`ALL` drops every capability; `--cap-add` then adds back).
    #[serde(deserialize_with = "nullable")]
    pub cap_drop: Vec<String>,
    /// `--security-opt`: seccomp, no-new-privileges (see `security`).
    #[serde(deserialize_with = "nullable")]
    pub security_opt: Vec<String>,
    /// `--userns`: only the host's (the default) is implemented, kept so
    /// `security::validate` refuses the rest instead of ignoring them.
    #[serde(deserialize_with = "nullable")]
    pub userns_mode: String,
    /// The API's MaskedPaths and ReadonlyPaths. None (absent or null) keeps Docker's
    /// defaults; a list replaces them, and an empty one is what the CLI sends for
    /// `--security-opt systempaths=unconfined`. See [`crate::security::system_paths`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub masked_paths: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readonly_paths: Option<Vec<String>>,
    /// Namespace and device settings Berth has no mechanism for yet (`--uts`,
    /// `--cgroupns`, `--cgroup`, `--device-cgroup-rule`): kept so `security::validate`
    /// refuses them by name.
    #[serde(rename = "UTSMode", deserialize_with = "nullable")]
    pub uts_mode: String,
    #[serde(deserialize_with = "nullable")]
    pub cgroupns_mode: String,
    #[serde(deserialize_with = "nullable")]
    pub cgroup: String,
    /// `--mount`: binds, volumes and tmpfs in Docker's long form.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
    /// `--tmpfs PATH[:OPTIONS]`.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "BTreeMap::is_empty")]
    pub tmpfs: BTreeMap<String, String>,
    /// `--sysctl`: the namespaced ones Docker allows (see `settings::check_sysctl`).
    #[serde(deserialize_with = "nullable", skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
    /// `--add-host NAME:IP`: lines of /etc/hosts.
    #[serde(deserialize_with = "nullable")]
    pub extra_hosts: Vec<String>,
    /// `--dns`, `--dns-search`, `--dns-option`: the container's resolv.conf (on a
    /// user-defined network, the embedded DNS's upstream servers).
    #[serde(deserialize_with = "nullable")]
    pub dns: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub dns_search: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub dns_options: Vec<String>,
    /// `--init`: tini runs as PID 1 (as `/sbin/docker-init`) and starts the command.
    pub init: Option<bool>,
    /// `--shm-size` in bytes; 0: Docker's 64 MiB.
    pub shm_size: i64,
    /// `--group-add`: supplementary groups (names from the image's /etc/group, or ids).
    #[serde(deserialize_with = "nullable")]
    pub group_add: Vec<String>,
    /// `--ulimit NAME=SOFT[:HARD]`.
    #[serde(deserialize_with = "nullable")]
    pub ulimits: Vec<Ulimit>,
    /// `--oom-score-adj`.
    pub oom_score_adj: i64,
    #[serde(deserialize_with = "nullable")]
    pub device_cgroup_rules: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub network_mode: String,
    #[serde(deserialize_with = "nullable")]
    pub pid_mode: String,
    #[serde(deserialize_with = "nullable")]
    pub ipc_mode: String,
    /// `--device HOST[:CONTAINER[:PERMISSIONS]]` (refused in lab sessions).
    #[serde(deserialize_with = "nullable")]
    pub devices: Vec<DeviceMapping>,
    /// `--link NAME:ALIAS`.
    #[serde(deserialize_with = "nullable")]
    pub links: Vec<String>,
    /// `--runtime`: after create, the runtime chosen (`runtime::RUNC` or
    /// `runtime::WASMTIME`).
    #[serde(deserialize_with = "nullable")]
    pub runtime: String,
    /// Fields Berth has no member for: refused when set (see `unsupported`).
    #[serde(flatten, skip_serializing)]
    pub unknown: BTreeMap<String, serde_json::Value>,
}

/// One `--device`, as the API sends it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeviceMapping {
    #[serde(deserialize_with = "nullable")]
    pub path_on_host: String,
    #[serde(deserialize_with = "nullable")]
    pub path_in_container: String,
    #[serde(deserialize_with = "nullable")]
    pub cgroup_permissions: String,
}

/// One `--ulimit`, as the API sends it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Ulimit {
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

/// One `--mount`, in the API's shape.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct Mount {
    /// `bind`, `volume` or `tmpfs` (others are refused).
    #[serde(rename = "Type", deserialize_with = "nullable")]
    pub kind: String,
    #[serde(deserialize_with = "nullable")]
    pub source: String,
    #[serde(deserialize_with = "nullable")]
    pub target: String,
    pub read_only: bool,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub consistency: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind_options: Option<BindOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_options: Option<VolumeOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tmpfs_options: Option<TmpfsOptions>,
    /// Fields Berth has no member for: refused when set (see `unsupported`).
    #[serde(flatten, skip_serializing)]
    pub unknown: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct BindOptions {
    #[serde(deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub propagation: String,
    pub non_recursive: bool,
    pub create_mountpoint: bool,
    #[serde(flatten, skip_serializing)]
    pub unknown: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct VolumeOptions {
    pub no_copy: bool,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "String::is_empty")]
    pub subpath: String,
    /// `volume-driver=` and `volume-opt=`: the volume is made with them if it is new.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver_config: Option<DriverConfig>,
    #[serde(flatten, skip_serializing)]
    pub unknown: BTreeMap<String, serde_json::Value>,
}

/// `--mount …,volume-driver=local,volume-opt=type=tmpfs,…`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct DriverConfig {
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct TmpfsOptions {
    pub size_bytes: i64,
    pub mode: u32,
    #[serde(flatten, skip_serializing)]
    pub unknown: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl Status {
    /// Every state, for counts that show the empty ones too.
    pub const ALL: [Status; 7] = [Status::Created, Status::Running, Status::Paused, Status::Restarting, Status::Removing, Status::Exited, Status::Dead];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }

    /// Whether a shim (and the container's process) is alive.
    pub fn is_live(self) -> bool {
        matches!(self, Status::Running | Status::Paused)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct State {
    pub status: Status,
    pub pid: i32,
    pub shim_pid: i32,
    pub exit_code: i32,
    pub error: String,
    pub oom_killed: bool,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Set when the user stopped it, so `unless-stopped` and `always` know.
    #[serde(default)]
    pub stopped_by_user: bool,
    /// Its probes' results, when its health check has probes (see `health`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::health::Health>,
}

/// A volume or bind mounted into the container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MountPoint {
    /// "volume", "bind" or "tmpfs" (`--mount type=tmpfs`).
    pub kind: String,
    /// Volume name (empty for binds).
    pub name: String,
    pub source: String,
    pub destination: String,
    pub rw: bool,
    #[serde(default)]
    pub anonymous: bool,
    /// A tmpfs's mount options (`size=…,mode=…`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tmpfs: String,
    /// `--mount type=bind,bind-nonrecursive`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub non_recursive: bool,
    /// The source must be opened beneath this directory (a volume's, for
    /// `volume-subpath`): see `spec::MountSpec::beneath`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub beneath: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Container {
    pub id: String,
    pub namespace: String,
    /// Without Docker's leading `/`.
    pub name: String,
    pub created: DateTime<Utc>,
    /// Image id (`sha256:…`).
    pub image: String,
    pub config: ContainerConfig,
    pub host_config: HostConfig,
    pub state: State,
    /// The argv actually run (entrypoint + cmd).
    pub path: String,
    pub args: Vec<String>,
    pub mounts: Vec<MountPoint>,
    /// Host ports actually bound while running.
    #[serde(default)]
    pub ports: Vec<PortSpec>,
    #[serde(default)]
    pub restart_count: u32,
    /// A kept network namespace the container runs in instead of a new one.
    #[serde(default)]
    pub join_network: Option<std::path::PathBuf>,
    /// The networks it is on (the first has the default route), with its address on each.
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    /// The id range it runs in (a lab session's user namespace), fixed at create: its
    /// upper dir holds ids shifted by it (see `userns`).
    #[serde(default)]
    pub userns: Option<crate::userns::IdMap>,
    /// dockerd's warnings from create (settings the host cannot apply, discarded),
    /// for the create response only.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// A container's place on one network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    pub network_id: String,
    /// The network's name (networks cannot be renamed).
    pub network: String,
    pub endpoint_id: String,
    pub ip: String,
    pub prefix: u8,
    pub gateway: String,
    pub mac: String,
    /// `--network-alias`: names it answers to in the network's DNS besides its own
    /// name and short id (records of older Berth builds may list its name first).
    pub aliases: Vec<String>,
    /// The request's `IPAMConfig` (its IPv4 address, maybe empty), None when it had
    /// none: inspect shows it back, as Docker does.
    #[serde(default)]
    pub ipam_config: Option<String>,
    /// Whether the request had a `DriverOpts` object (options set are refused).
    #[serde(default)]
    pub driver_opts: bool,
}

impl Container {
    /// Docker's STATUS column: "Up 3 seconds", "Exited (0) 5 seconds ago", "Created".
    pub fn status_text(&self, now: DateTime<Utc>) -> String {
        let s = &self.state;
        match s.status {
            Status::Created => "Created".into(),
            Status::Running | Status::Paused => {
                let up = format!("Up {}", human_duration(now - s.started_at.unwrap_or(now)));
                match &s.health {
                    _ if s.status == Status::Paused => format!("{up} (Paused)"),
                    Some(h) => format!("{up} ({})", h.status.ps_text()),
                    None => up,
                }
            }
            Status::Restarting => format!("Restarting ({}) {} ago", s.exit_code, human_duration(now - s.finished_at.unwrap_or(now))),
            Status::Removing => "Removal In Progress".into(),
            Status::Exited => format!("Exited ({}) {} ago", s.exit_code, human_duration(now - s.finished_at.unwrap_or(now))),
            Status::Dead => "Dead".into(),
        }
    }
}

/// go-units' HumanDuration, which `docker ps` uses.
pub fn human_duration(d: chrono::Duration) -> String {
    let secs = d.num_seconds().max(0);
    if secs < 1 {
        return "Less than a second".into();
    }
    if secs == 1 {
        return "1 second".into();
    }
    if secs < 60 {
        return format!("{secs} seconds");
    }
    let mins = d.num_minutes();
    if mins == 1 {
        return "About a minute".into();
    }
    if mins < 60 {
        return format!("{mins} minutes");
    }
    let hours = (d.num_seconds() as f64 / 3600.0).round() as i64;
    if hours == 1 {
        return "About an hour".into();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", hours / 24 / 365)
}

/// Docker's container name rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn validate_name(name: &str) -> Result<()> {
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )))
    }
}

const ADJECTIVES: &[&str] = &[
    "brave", "calm", "clever", "eager", "gentle", "happy", "jolly", "keen", "kind", "lucid",
    "merry", "nifty", "quiet", "quirky", "sharp", "sleepy", "swift", "tender", "vibrant", "wise",
];
const NAMES: &[&str] = &[
    "hopper", "lovelace", "turing", "curie", "noether", "ritchie", "thompson", "knuth",
    "hamilton", "babbage", "shannon", "dijkstra", "liskov", "torvalds", "sejong", "jang",
    "heo", "goldberg", "kare", "wozniak",
];

/// A random `adjective_name`, as Docker gives unnamed containers.
pub fn random_name() -> String {
    use rand::seq::SliceRandom;
    let mut rng = rand::thread_rng();
    format!(
        "{}_{}",
        ADJECTIVES.choose(&mut rng).unwrap_or(&"brave"),
        NAMES.choose(&mut rng).unwrap_or(&"hopper")
    )
}

/// Parses Docker's signal names and numbers: `SIGTERM`, `TERM`, `15`.
pub fn parse_signal(s: &str) -> Result<nix::sys::signal::Signal> {
    use std::str::FromStr;
    let bad = || Error::InvalidArgument(format!("Invalid signal: {s}"));
    if let Ok(n) = s.parse::<i32>() {
        return nix::sys::signal::Signal::try_from(n).map_err(|_| bad());
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") { up } else { format!("SIG{up}") };
    nix::sys::signal::Signal::from_str(&name).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_texts_match_docker() {
        let now = Utc::now();
        let mut c = Container {
            id: "x".into(), namespace: "default".into(), name: "n".into(), created: now,
            image: String::new(), config: Default::default(), host_config: Default::default(),
            state: Default::default(), path: String::new(), args: vec![], mounts: vec![],
            ports: vec![], restart_count: 0, join_network: None, endpoints: vec![], userns: None, warnings: vec![],
        };
        assert_eq!(c.status_text(now), "Created");
        c.state.status = Status::Running;
        c.state.started_at = Some(now - chrono::Duration::seconds(3));
        assert_eq!(c.status_text(now), "Up 3 seconds");
        c.state.health = Some(crate::health::Health { status: crate::health::HealthStatus::Starting, failing_streak: 0, log: vec![] });
        assert_eq!(c.status_text(now), "Up 3 seconds (health: starting)");
        c.state.status = Status::Paused;
        assert_eq!(c.status_text(now), "Up 3 seconds (Paused)");
        c.state.status = Status::Exited;
        c.state.exit_code = 137;
        c.state.finished_at = Some(now - chrono::Duration::seconds(90));
        assert_eq!(c.status_text(now), "Exited (137) About a minute ago");
        assert_eq!(human_duration(chrono::Duration::milliseconds(300)), "Less than a second");
        assert_eq!(human_duration(chrono::Duration::hours(3)), "3 hours");
    }

    #[test]
    fn create_body_with_nulls_parses() {
        let c: ContainerConfig = serde_json::from_str(r#"{"Cmd":null,"Env":null,"Entrypoint":null,"Image":"busybox","Tty":true,"Unknown":1}"#).unwrap();
        assert!(c.cmd.is_empty());
        assert!(c.tty);
        let h: HostConfig = serde_json::from_str(r#"{"PidsLimit":null,"PortBindings":{"80/tcp":[{"HostIp":"","HostPort":"8080"}]}}"#).unwrap();
        assert_eq!(h.port_bindings["80/tcp"][0].host_port, "8080");
    }

    #[test]
    fn names_and_signals() {
        assert!(validate_name("web-1.a_b").is_ok());
        assert!(validate_name("-x").is_err());
        assert!(validate_name("a/b").is_err());
        assert_eq!(parse_signal("TERM").unwrap(), nix::sys::signal::Signal::SIGTERM);
        assert_eq!(parse_signal("9").unwrap(), nix::sys::signal::Signal::SIGKILL);
        assert!(parse_signal("NOPE").is_err());
    }
}
