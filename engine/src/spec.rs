//! What the shim needs to run one container: written by the engine as
//! `<container dir>/spec.json`, read by `berth shim`. Everything is resolved already
//! (paths, argv, environment), so the shim never looks at images or metadata.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuntimeSpec {
    pub id: String,
    /// Where the overlay is mounted (inside the container's own mount namespace).
    pub rootfs: PathBuf,
    /// Read-only image layers, top first (overlayfs `lowerdir` order).
    pub lowerdirs: Vec<PathBuf>,
    pub upperdir: PathBuf,
    pub workdir: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    /// `user`, `uid`, `user:group` or `uid:gid`, resolved against the container's
    /// /etc/passwd and /etc/group.
    pub user: String,
    pub hostname: String,
    /// `--domainname` (the UTS namespace's NIS domain name).
    #[serde(default)]
    pub domainname: String,
    pub tty: bool,
    pub open_stdin: bool,
    pub readonly_rootfs: bool,
    pub mounts: Vec<MountSpec>,
    /// Files bind-mounted over /etc/hosts, /etc/hostname, /etc/resolv.conf.
    pub etc_files: Vec<(PathBuf, String)>,
    pub ports: Vec<PortSpec>,
    pub limits: Limits,
    /// Cgroup path below each controller's root (see [`crate::cgroup`] for the layout).
    pub cgroup: String,
    /// Where the shim itself goes (a container with a cgroup parent, such as a lab
    /// session's envelope: `<parent>/shims`), so the CPU it spends on the container's
    /// output (a log flood) is the parent's, not the server's. None: where it started.
    #[serde(default)]
    pub shim_cgroup: Option<String>,
    /// The shim enters this network namespace first, so published ports bind there
    /// (a lab session's network) rather than on the host.
    #[serde(default)]
    pub network: Option<PathBuf>,
    /// The container gets a network namespace of its own (else it stays in `network`).
    #[serde(default = "yes")]
    pub new_network: bool,
    /// The embedded DNS's names file: the shim answers at 127.0.0.11:53 inside the
    /// container when set (see `dns`).
    #[serde(default)]
    pub dns: Option<PathBuf>,
    /// Whether a network it starts on has the embedded DNS (its resolv.conf names it):
    /// the DNS is then up before its init runs. Otherwise (the default bridge) it is
    /// started alongside, for a network connected later.
    #[serde(default = "yes")]
    pub dns_on_start: bool,
    pub log_path: PathBuf,
    /// How the log is kept (rotated, or not at all); see [`crate::log_config`].
    #[serde(default)]
    pub log_mode: crate::log_config::LogMode,
    /// Bytes a second the container's output is taken at (see [`crate::throttle`]);
    /// 0 for no limit.
    #[serde(default)]
    pub output_rate: u64,
    pub exit_path: PathBuf,
    /// `exit.json` is fsynced; not for an `--rm` container, which goes once it exits
    /// (see `Engine::save`).
    #[serde(default)]
    pub exit_durable: bool,
    pub socket_path: PathBuf,
    /// Capabilities, seccomp and no_new_privs for every process of the container.
    #[serde(default)]
    pub security: Security,
    /// The container runs in a user namespace with this mapping (a lab session's);
    /// see [`crate::userns`].
    #[serde(default)]
    pub userns: Option<crate::userns::IdMap>,
    /// `--init`: this host file (tini, static) is bound at `/sbin/docker-init` and
    /// `args` already start with it.
    #[serde(default)]
    pub init: Option<PathBuf>,
    /// `/dev/shm`'s size in bytes (`--shm-size`; Docker's 64 MiB when 0).
    #[serde(default)]
    pub shm_size: i64,
    /// Sysctls written in the container's namespaces before it runs (`--sysctl`, and
    /// Docker's defaults `net.ipv4.ping_group_range` and `ip_unprivileged_port_start`).
    #[serde(default)]
    pub sysctls: BTreeMap<String, String>,
    /// `--oom-score-adj`.
    #[serde(default)]
    pub oom_score_adj: i64,
    /// Paths hidden from the container and paths made read-only in it (see
    /// [`crate::security::system_paths`]); a spec without them gets Docker's defaults.
    #[serde(default = "default_masked")]
    pub masked_paths: Vec<String>,
    #[serde(default = "default_readonly")]
    pub readonly_paths: Vec<String>,
    /// `--cgroupns private`: the container gets a cgroup namespace rooted at its own
    /// cgroup (Docker's default on cgroup v2).
    #[serde(default)]
    pub cgroupns: bool,
    /// `--pid`, `--ipc`, `--uts`: a new namespace, the host's, or another container's.
    #[serde(default)]
    pub pid_ns: Namespace,
    #[serde(default)]
    pub ipc_ns: Namespace,
    #[serde(default)]
    pub uts_ns: Namespace,
    /// The /dev/shm of a shareable container (its own, or the one whose IPC namespace
    /// it joins), bound over the container's own.
    #[serde(default)]
    pub shm_from: Option<PathBuf>,
    /// Set for a WebAssembly container: `args[0]` is the module's path in the root,
    /// run under wasmtime instead of exec'd (see `runtime::wasm`).
    #[serde(default)]
    pub wasm: Option<WasmSpec>,
}

/// How the wasm runtime runs a container's module.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WasmSpec {
    /// The export to call: `_start`, or the `func` of an entrypoint `module.wasm#func`.
    pub func: String,
    /// Cap on the guest's linear memory in bytes (`--memory`); 0: none.
    pub memory: i64,
    /// Compiled modules, shared by all containers (keyed by the module's SHA-256).
    pub cache_dir: PathBuf,
    /// The guest gets namespaces and an overlay root like a Linux container. False on
    /// a host without them: it then runs beside the shim, on a copy of the image root.
    pub isolated: bool,
}

/// What the runtime applies to a container's processes (init, `exec`) just before
/// they exec (see `security` for where it comes from).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Security {
    /// Capabilities kept (canonical names, `CAP_CHOWN`); all others are dropped from
    /// every set, the inheritable and ambient sets are empty.
    pub capabilities: Vec<String>,
    /// The compiled seccomp program (a file of `struct sock_filter`); None: unconfined.
    pub seccomp: Option<PathBuf>,
    pub no_new_privileges: bool,
    /// `--group-add`: more supplementary groups (names resolved in the container).
    #[serde(default)]
    pub extra_groups: Vec<String>,
    /// `--ulimit`: resource limits set before the program runs.
    #[serde(default)]
    pub rlimits: Vec<crate::container::Ulimit>,
}

impl Default for Security {
    /// Docker's default capabilities, no filter: what a spec written before these
    /// settings existed ran with.
    fn default() -> Self {
        Security {
            capabilities: crate::capabilities::DEFAULT.iter().map(|c| c.to_string()).collect(),
            seccomp: None,
            no_new_privileges: false,
            extra_groups: Vec::new(),
            rlimits: Vec::new(),
        }
    }
}

/// Where a container gets one of its namespaces.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub enum Namespace {
    /// A new one of its own (Docker's `private`).
    #[default]
    New,
    /// The host's (`host`): the shim's own, which it keeps.
    Host,
    /// Another container's (`container:X`): this `/proc/PID/ns/…` file, entered by the
    /// shim before it clones the container.
    Join(PathBuf),
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MountSpec {
    pub source: PathBuf,
    /// Absolute path inside the container.
    pub destination: String,
    pub readonly: bool,
    /// A tmpfs with these mount options (`source` unused) instead of a bind.
    #[serde(default)]
    pub tmpfs: Option<String>,
    /// A bind of the source alone, not the mounts below it (`bind-nonrecursive`).
    #[serde(default)]
    pub non_recursive: bool,
    /// A device node (`--device`): bound without `nodev`, so it opens.
    #[serde(default)]
    pub device: bool,
    /// The source must be reached from this directory without leaving it (a lab
    /// session's home: a symlink there must not lead to the host's files).
    #[serde(default)]
    pub beneath: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct PortSpec {
    pub host_ip: String,
    /// 0: pick a free port (`-P`, `-p 80`).
    pub host_port: u16,
    pub container_port: u16,
    /// "tcp" or "udp".
    pub proto: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Limits {
    /// Bytes; 0 = none.
    pub memory: i64,
    /// Billionths of a CPU; 0 = none.
    pub nano_cpus: i64,
    /// 0 = none.
    pub pids: i64,
    /// The settings of `resources`, as Docker's HostConfig has them (0, empty: none).
    #[serde(default)]
    pub memory_swap: i64,
    #[serde(default)]
    pub memory_reservation: i64,
    #[serde(default)]
    pub oom_kill_disable: bool,
    #[serde(default)]
    pub swappiness: Option<i64>,
    #[serde(default)]
    pub cpu_shares: i64,
    /// Microseconds; used when `nano_cpus` is 0.
    #[serde(default)]
    pub cpu_period: i64,
    #[serde(default)]
    pub cpu_quota: i64,
    #[serde(default)]
    pub cpuset_cpus: String,
    #[serde(default)]
    pub cpuset_mems: String,
    #[serde(default)]
    pub blkio_weight: u16,
    #[serde(default)]
    pub blkio_weight_device: Vec<DeviceLimit>,
    #[serde(default)]
    pub read_bps: Vec<DeviceLimit>,
    #[serde(default)]
    pub write_bps: Vec<DeviceLimit>,
    #[serde(default)]
    pub read_iops: Vec<DeviceLimit>,
    #[serde(default)]
    pub write_iops: Vec<DeviceLimit>,
}

/// A per-device limit: the device's `MAJOR:MINOR` and the weight or rate.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DeviceLimit {
    pub device: String,
    pub value: u64,
}

/// What the shim reports once the container's process runs (or failed to).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "status")]
pub enum StartReport {
    /// The container's own network namespace exists (made at the clone), while its
    /// root is still being set up: the engine plugs it into its networks meanwhile.
    /// Sent only when the clone made it, before `Ready`.
    Network { pid: i32 },
    /// The listener for attach is up; the process waits for the engine's "go".
    Ready { pid: i32 },
    Started { pid: i32, shim_pid: i32, ports: Vec<PortSpec> },
    Failed { message: String },
}

/// Written by the shim when the container's init has exited.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExitInfo {
    pub exit_code: i32,
    pub finished_at: chrono::DateTime<chrono::Utc>,
    #[serde(default)]
    pub oom_killed: bool,
}

/// A request on the shim's socket (one JSON line), then raw bytes for `attach`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "op")]
pub enum ShimRequest {
    /// Output: raw bytes with a TTY, else Docker's 8-byte-header frames.
    /// Input (when `stdin`): raw bytes to the container's stdin.
    Attach { stdin: bool, stdout: bool, stderr: bool, detach_keys: Vec<u8>, stdin_once: bool },
    Resize { height: u16, width: u16 },
    /// The shim answers with one `ExitInfo` line when the container exits.
    Wait,
}

fn default_masked() -> Vec<String> {
    crate::security::MASKED.iter().map(|p| p.to_string()).collect()
}

fn default_readonly() -> Vec<String> {
    crate::security::READONLY.iter().map(|p| p.to_string()).collect()
}
