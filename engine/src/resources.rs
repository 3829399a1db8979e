//! The cgroup resource settings of `docker run` beyond `--memory`, `--cpus` and
//! `--pids-limit`: swap, soft limit, OOM killer, swappiness, CPU shares, period and
//! quota, cpusets and block I/O. At create they are checked and adapted as dockerd
//! does (`verifyPlatformContainerResources` and `adaptContainerSettings`): a setting
//! the host's cgroups cannot apply is discarded with dockerd's warning, a bad value
//! fails with dockerd's message. At start they become [`Limits`] for the cgroup files
//! (see [`crate::cgroup`]), device paths resolved to their numbers as runc does.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::container::HostConfig;
use crate::error::{Error, Result};
use crate::spec::{DeviceLimit, Limits};

/// dockerd's smallest memory limit and reservation (`linuxMinMemory`).
const MIN_MEMORY: i64 = 6 * 1024 * 1024;

/// `--blkio-weight-device PATH:WEIGHT`, in the API's shape.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct WeightDevice {
    pub path: String,
    pub weight: u16,
}

/// `--device-{read,write}-{bps,iops} PATH:RATE`, in the API's shape.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct ThrottleDevice {
    pub path: String,
    pub rate: u64,
}

/// What the host's cgroups can apply, found as dockerd's `sysinfo` finds it: on v1
/// by the files at each controller's root, on v2 by the root's controllers.
#[derive(Debug, Clone, PartialEq)]
pub struct Support {
    pub v2: bool,
    pub swap: bool,
    pub reservation: bool,
    pub oom_kill_disable: bool,
    pub swappiness: bool,
    pub cpu_shares: bool,
    pub cfs: bool,
    pub cpuset: bool,
    /// The CPUs and memory nodes a cpuset may name, as the kernel lists them ("0-1").
    pub cpus: String,
    pub mems: String,
    pub blkio_weight: bool,
    pub blkio_weight_device: bool,
    pub read_bps: bool,
    pub write_bps: bool,
    pub read_iops: bool,
    pub write_iops: bool,
}

impl Support {
    /// Read once: a dozen files, on every `create`, for what does not change while
    /// the server runs (CPUs plugged in meanwhile are seen after a restart).
    pub fn detect() -> &'static Support {
        static SUPPORT: std::sync::OnceLock<Support> = std::sync::OnceLock::new();
        SUPPORT.get_or_init(|| {
            let (v2, own) = (crate::cgroup::is_v2(), crate::cgroup::own_v2());
            if v2 && own.as_deref().is_none_or(|g| g.trim_matches('/').is_empty()) {
                // Made now (as at the first container's start) so that it can be asked.
                let made = crate::cgroup::Cgroup::new(crate::cgroup::DEFAULT_PARENT).create(&Limits::default());
                if let Err(err) = made {
                    tracing::warn!("cgroup {}: {err}", crate::cgroup::DEFAULT_PARENT);
                }
            }
            Support::at(Path::new("/sys/fs/cgroup"), v2, own.as_deref())
        })
    }

    /// `own`: the server's own cgroup on v2 (`/proc/self/cgroup`), where dockerd looks
    /// for swap accounting.
    fn at(root: &Path, v2: bool, own: Option<&str>) -> Support {
        let read = |p: PathBuf| fs::read_to_string(p).unwrap_or_default().trim().to_string();
        if v2 {
            // cgroup v2 has no OOM-killer switch and no swappiness: dockerd's sysinfo
            // says so, and discards both with a warning.
            let controllers = read(root.join("cgroup.controllers"));
            let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
            let io = has("io");
            return Support {
                v2,
                // Swap accounting is there when a cgroup has `memory.swap.max`: dockerd
                // looks in its own (getSwapLimitV2). The root cgroup never has one, so
                // a server run there (no init system) looks in the cgroup its
                // containers go below, where dockerd would wrongly find no swap limits.
                swap: has("memory") && {
                    let probe = match own.map(|g| g.trim_matches('/')) {
                        Some(g) if !g.is_empty() => root.join(g),
                        _ => root.join(crate::cgroup::DEFAULT_PARENT),
                    };
                    probe.join("memory.swap.max").exists()
                },
                reservation: has("memory"),
                oom_kill_disable: false,
                swappiness: false,
                cpu_shares: has("cpu"),
                cfs: has("cpu"),
                cpuset: has("cpuset"),
                cpus: read(root.join("cpuset.cpus.effective")),
                mems: read(root.join("cpuset.mems.effective")),
                blkio_weight: io,
                blkio_weight_device: io,
                read_bps: io,
                write_bps: io,
                read_iops: io,
                write_iops: io,
            };
        }
        let has = |controller: &str, file: &str| root.join(controller).join(file).exists();
        Support {
            v2,
            swap: has("memory", "memory.memsw.limit_in_bytes"),
            reservation: has("memory", "memory.soft_limit_in_bytes"),
            oom_kill_disable: has("memory", "memory.oom_control"),
            swappiness: has("memory", "memory.swappiness"),
            cpu_shares: has("cpu", "cpu.shares"),
            cfs: has("cpu", "cpu.cfs_quota_us"),
            cpuset: has("cpuset", "cpuset.cpus"),
            cpus: read(root.join("cpuset/cpuset.cpus")),
            mems: read(root.join("cpuset/cpuset.mems")),
            // Missing with the none and mq-deadline schedulers (only CFQ had them).
            blkio_weight: has("blkio", "blkio.weight"),
            blkio_weight_device: has("blkio", "blkio.weight_device"),
            read_bps: has("blkio", "blkio.throttle.read_bps_device"),
            write_bps: has("blkio", "blkio.throttle.write_bps_device"),
            read_iops: has("blkio", "blkio.throttle.read_iops_device"),
            write_iops: has("blkio", "blkio.throttle.write_iops_device"),
        }
    }
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidArgument(msg.into())
}

/// Checks the resource settings of `h` and adapts them as dockerd does at create;
/// returns dockerd's warnings for what it discarded.
pub fn adapt(h: &mut HostConfig, host: &Support) -> Result<Vec<String>> {
    // No pids limit is null at create (an update keeps 0, see `verify`).
    if h.pids_limit.is_some_and(|p| p <= 0) {
        h.pids_limit = None;
    }
    // adaptContainerSettings: swap defaults to as much again as the memory.
    if h.memory > 0 && h.memory_swap == 0 {
        h.memory_swap = h.memory * 2;
    }
    verify(h, host, false)
}

/// dockerd's `verifyPlatformContainerResources`: checks the settings of `h` (at
/// create, or the fields a `docker update` asks to change when `update`), discards
/// what the host cannot apply and returns the warnings saying so.
pub fn verify(h: &mut HostConfig, host: &Support, update: bool) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    // -1 (the old word for no limit) is 0: no limit.
    if h.pids_limit.is_some_and(|p| p < 0) {
        h.pids_limit = Some(0);
    }
    // The CLI sends -1 for "not set"; dockerd keeps null.
    if h.memory_swappiness.is_some_and(|s| s == -1) {
        h.memory_swappiness = None;
    }

    // Memory.
    if h.memory > 0 && h.memory_swap != -1 && !host.swap {
        warnings.push("Your kernel does not support swap limit capabilities or the cgroup is not mounted. Memory limited without swap.".into());
        h.memory_swap = -1;
    }
    if h.memory > 0 && h.memory_swap > 0 && h.memory_swap < h.memory {
        return Err(invalid(
            "Minimum memoryswap limit should be larger than memory limit, see usage",
        ));
    }
    // An update may change the swap alone: the memory limit is the container's.
    if h.memory == 0 && h.memory_swap > 0 && !update {
        return Err(invalid(
            "You should always set the Memory limit when using Memoryswap limit, see usage",
        ));
    }
    if h.memory_swappiness.is_some() && !host.swappiness {
        warnings.push("Your kernel does not support memory swappiness capabilities or the cgroup is not mounted. Memory swappiness discarded.".into());
        h.memory_swappiness = None;
    }
    if let Some(s) = h.memory_swappiness {
        if !(0..=100).contains(&s) {
            return Err(invalid(format!(
                "Invalid value: {s}, valid memory swappiness range is 0-100"
            )));
        }
    }
    if h.memory_reservation > 0 && !host.reservation {
        warnings.push("Your kernel does not support memory soft limit capabilities or the cgroup is not mounted. Limitation discarded.".into());
        h.memory_reservation = 0;
    }
    if h.memory_reservation > 0 && h.memory_reservation < MIN_MEMORY {
        return Err(invalid("Minimum memory reservation allowed is 6MB"));
    }
    if h.memory > 0 && h.memory_reservation > 0 && h.memory < h.memory_reservation {
        return Err(invalid(
            "Minimum memory limit can not be less than memory reservation limit, see usage",
        ));
    }
    if h.oom_kill_disable.is_some() && !host.oom_kill_disable {
        if h.oom_kill_disable == Some(true) {
            warnings.push(
                "Your kernel does not support OomKillDisable. OomKillDisable discarded.".into(),
            );
        }
        h.oom_kill_disable = None;
    }
    if h.oom_kill_disable == Some(true) && h.memory == 0 {
        warnings.push("OOM killer is disabled for the container, but no memory limit is set, this can result in the system running out of resources.".into());
    }

    // CPU.
    if h.nano_cpus > 0 && h.cpu_period > 0 {
        return Err(invalid(
            "Conflicting options: Nano CPUs and CPU Period cannot both be set",
        ));
    }
    if h.nano_cpus > 0 && h.cpu_quota > 0 {
        return Err(invalid(
            "Conflicting options: Nano CPUs and CPU Quota cannot both be set",
        ));
    }
    if h.cpu_shares > 0 && !host.cpu_shares {
        warnings.push("Your kernel does not support CPU shares or the cgroup is not mounted. Shares discarded.".into());
        h.cpu_shares = 0;
    }
    if (h.cpu_period != 0 || h.cpu_quota != 0) && !host.cfs {
        warnings.push(
            "Your kernel does not support CPU CFS scheduler. CPU period/quota discarded.".into(),
        );
        h.cpu_period = 0;
        h.cpu_quota = 0;
    }
    if h.cpu_period != 0 && !(1000..=1_000_000).contains(&h.cpu_period) {
        return Err(invalid(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        ));
    }
    if h.cpu_quota > 0 && h.cpu_quota < 1000 {
        return Err(invalid(
            "CPU cfs quota can not be less than 1ms (i.e. 1000)",
        ));
    }

    // Cpusets.
    if (!h.cpuset_cpus.is_empty() || !h.cpuset_mems.is_empty()) && !host.cpuset {
        warnings.push(
            "Your kernel does not support cpuset or the cgroup is not mounted. Cpuset discarded."
                .into(),
        );
        h.cpuset_cpus.clear();
        h.cpuset_mems.clear();
    }
    check_cpuset(&h.cpuset_cpus, &host.cpus, "cpus", "CPUs")?;
    check_cpuset(&h.cpuset_mems, &host.mems, "mems", "memory nodes")?;

    // Block I/O.
    if h.blkio_weight > 0 && !host.blkio_weight {
        warnings.push("Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.".into());
        h.blkio_weight = 0;
    }
    if h.blkio_weight > 0 && !(10..=1000).contains(&h.blkio_weight) {
        return Err(invalid("Range of blkio weight is from 10 to 1000"));
    }
    if !h.blkio_weight_device.is_empty() && !host.blkio_weight_device {
        warnings.push("Your kernel does not support Block I/O weight_device or the cgroup is not mounted. Weight-device discarded.".into());
        h.blkio_weight_device.clear();
    }
    let throttles = [
        (
            &mut h.blkio_device_read_bps,
            host.read_bps,
            "BPS Block I/O read limit",
            "Block I/O BPS read limit",
        ),
        (
            &mut h.blkio_device_write_bps,
            host.write_bps,
            "BPS Block I/O write limit",
            "Block I/O BPS write limit",
        ),
        (
            &mut h.blkio_device_read_i_ops,
            host.read_iops,
            "IOPS Block I/O read limit",
            "Block I/O IOPS read limit",
        ),
        (
            &mut h.blkio_device_write_i_ops,
            host.write_iops,
            "IOPS Block I/O write limit",
            "Block I/O IOPS write limit",
        ),
    ];
    for (devices, supported, what, limit) in throttles {
        if !devices.is_empty() && !supported {
            warnings.push(format!("Your kernel does not support {what} or the cgroup is not mounted. {limit} discarded."));
            devices.clear();
        }
    }
    Ok(warnings)
}

/// dockerd's check of `--cpuset-cpus`/`--cpuset-mems` against what the host has.
fn check_cpuset(asked: &str, available: &str, flag: &str, what: &str) -> Result<()> {
    let want = parse_list(asked).ok_or_else(|| {
        invalid(format!(
            "Invalid value {asked} for cpuset {flag}: invalid format: {asked}"
        ))
    })?;
    // The host's list is the kernel's: well formed.
    let have = parse_list(available).unwrap_or_default();
    if want.iter().any(|n| !have.contains(n)) {
        return Err(invalid(format!(
            "Requested {what} are not available - requested {asked}, available: {available}"
        )));
    }
    Ok(())
}

/// A kernel list ("0-3,5"); None when malformed. Empty: none.
fn parse_list(list: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    if list.is_empty() {
        return Some(out);
    }
    for part in list.split(',') {
        match part.split_once('-') {
            None => out.push(part.parse().ok()?),
            Some((lo, hi)) => {
                let (lo, hi): (u32, u32) = (lo.parse().ok()?, hi.parse().ok()?);
                if hi < lo {
                    return None;
                }
                out.extend(lo..=hi);
            }
        }
    }
    Some(out)
}

/// The `MAJOR:MINOR` of a device node, as runc names it in the cgroup files; fails at
/// start, as dockerd does, when the path is not there.
fn device_number(path: &str) -> Result<String> {
    let md =
        fs::metadata(path).map_err(|e| invalid(format!("stat {path}: {}", go_error_text(&e))))?;
    let rdev = md.rdev();
    Ok(format!(
        "{}:{}",
        nix::sys::stat::major(rdev),
        nix::sys::stat::minor(rdev)
    ))
}

/// An OS error as Go prints it ("no such file or directory"), as dockerd's messages
/// show it.
fn go_error_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).desc().to_lowercase(),
        None => e.to_string(),
    }
}

/// The limits of `h` beyond memory, CPUs and pids, for the cgroup at start.
pub fn limits(h: &HostConfig, base: Limits) -> Result<Limits> {
    let throttle = |devices: &[ThrottleDevice]| -> Result<Vec<DeviceLimit>> {
        devices
            .iter()
            .map(|d| {
                Ok(DeviceLimit {
                    device: device_number(&d.path)?,
                    value: d.rate,
                })
            })
            .collect()
    };
    Ok(Limits {
        memory_swap: h.memory_swap,
        memory_reservation: h.memory_reservation,
        oom_kill_disable: h.oom_kill_disable == Some(true),
        swappiness: h.memory_swappiness,
        cpu_shares: h.cpu_shares,
        cpu_period: h.cpu_period,
        cpu_quota: h.cpu_quota,
        cpuset_cpus: h.cpuset_cpus.clone(),
        cpuset_mems: h.cpuset_mems.clone(),
        blkio_weight: h.blkio_weight,
        blkio_weight_device: h
            .blkio_weight_device
            .iter()
            .map(|d| {
                Ok(DeviceLimit {
                    device: device_number(&d.path)?,
                    value: u64::from(d.weight),
                })
            })
            .collect::<Result<_>>()?,
        read_bps: throttle(&h.blkio_device_read_bps)?,
        write_bps: throttle(&h.blkio_device_write_bps)?,
        read_iops: throttle(&h.blkio_device_read_i_ops)?,
        write_iops: throttle(&h.blkio_device_write_i_ops)?,
        ..base
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v1_host() -> Support {
        Support {
            v2: false,
            swap: true,
            reservation: true,
            oom_kill_disable: true,
            swappiness: true,
            cpu_shares: true,
            cfs: true,
            cpuset: true,
            cpus: "0-1".into(),
            mems: "0".into(),
            blkio_weight: false,
            blkio_weight_device: false,
            read_bps: true,
            write_bps: true,
            read_iops: true,
            write_iops: true,
        }
    }

    fn err(h: HostConfig) -> String {
        adapt(&mut h.clone(), &v1_host()).unwrap_err().to_string()
    }

    #[test]
    fn swap_defaults_to_twice_the_memory() {
        let mut h = HostConfig {
            memory: 64 << 20,
            memory_swappiness: Some(-1),
            ..Default::default()
        };
        assert!(adapt(&mut h, &v1_host()).unwrap().is_empty());
        assert_eq!((h.memory_swap, h.memory_swappiness), (128 << 20, None));
        let mut h = HostConfig {
            memory: 64 << 20,
            memory_swap: -1,
            ..Default::default()
        };
        adapt(&mut h, &v1_host()).unwrap();
        assert_eq!(h.memory_swap, -1);
    }

    #[test]
    fn bad_values_fail_with_dockerds_messages() {
        let m = 64 << 20;
        assert_eq!(
            err(HostConfig {
                memory: m,
                memory_swap: m / 2,
                ..Default::default()
            }),
            "Minimum memoryswap limit should be larger than memory limit, see usage"
        );
        assert_eq!(
            err(HostConfig {
                memory_swap: m,
                ..Default::default()
            }),
            "You should always set the Memory limit when using Memoryswap limit, see usage"
        );
        assert_eq!(
            err(HostConfig {
                memory: m,
                memory_reservation: 2 * m,
                ..Default::default()
            }),
            "Minimum memory limit can not be less than memory reservation limit, see usage"
        );
        assert_eq!(
            err(HostConfig {
                memory_reservation: 1 << 20,
                ..Default::default()
            }),
            "Minimum memory reservation allowed is 6MB"
        );
        assert_eq!(
            err(HostConfig {
                memory_swappiness: Some(101),
                ..Default::default()
            }),
            "Invalid value: 101, valid memory swappiness range is 0-100"
        );
        assert_eq!(
            err(HostConfig {
                nano_cpus: 1_000_000_000,
                cpu_period: 50_000,
                ..Default::default()
            }),
            "Conflicting options: Nano CPUs and CPU Period cannot both be set"
        );
        assert_eq!(
            err(HostConfig {
                nano_cpus: 1_000_000_000,
                cpu_quota: 50_000,
                ..Default::default()
            }),
            "Conflicting options: Nano CPUs and CPU Quota cannot both be set"
        );
        assert_eq!(
            err(HostConfig {
                cpu_period: 500,
                ..Default::default()
            }),
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"
        );
        assert_eq!(
            err(HostConfig {
                cpu_quota: 500,
                ..Default::default()
            }),
            "CPU cfs quota can not be less than 1ms (i.e. 1000)"
        );
        assert_eq!(
            err(HostConfig {
                cpuset_cpus: "0-7".into(),
                ..Default::default()
            }),
            "Requested CPUs are not available - requested 0-7, available: 0-1"
        );
        assert_eq!(
            err(HostConfig {
                cpuset_cpus: "1-0".into(),
                ..Default::default()
            }),
            "Invalid value 1-0 for cpuset cpus: invalid format: 1-0"
        );
        assert_eq!(
            err(HostConfig {
                cpuset_mems: "1".into(),
                ..Default::default()
            }),
            "Requested memory nodes are not available - requested 1, available: 0"
        );
        let mut weighted = v1_host();
        weighted.blkio_weight = true;
        let e = adapt(
            &mut HostConfig {
                blkio_weight: 5,
                ..Default::default()
            },
            &weighted,
        )
        .unwrap_err()
        .to_string();
        assert_eq!(e, "Range of blkio weight is from 10 to 1000");
    }

    #[test]
    fn what_the_host_cannot_apply_is_discarded_with_a_warning() {
        let mut h = HostConfig {
            blkio_weight: 5,
            blkio_weight_device: vec![WeightDevice {
                path: "/dev/vda".into(),
                weight: 300,
            }],
            ..Default::default()
        };
        let w = adapt(&mut h, &v1_host()).unwrap();
        assert_eq!(w[0], "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded.");
        assert_eq!((h.blkio_weight, h.blkio_weight_device.len()), (0, 0));
        // cgroup v2: no OOM-killer switch, no swappiness.
        let v2 = Support {
            v2: true,
            oom_kill_disable: false,
            swappiness: false,
            ..v1_host()
        };
        let mut h = HostConfig {
            memory: 64 << 20,
            oom_kill_disable: Some(true),
            memory_swappiness: Some(10),
            ..Default::default()
        };
        let w = adapt(&mut h, &v2).unwrap();
        assert_eq!(w, ["Your kernel does not support memory swappiness capabilities or the cgroup is not mounted. Memory swappiness discarded.", "Your kernel does not support OomKillDisable. OomKillDisable discarded."]);
        assert_eq!((h.oom_kill_disable, h.memory_swappiness), (None, None));
        let mut h = HostConfig {
            oom_kill_disable: Some(true),
            ..Default::default()
        };
        assert!(adapt(&mut h, &v1_host()).unwrap()[0]
            .starts_with("OOM killer is disabled for the container, but no memory limit is set"));
    }

    /// v2: swap limits are there when the server's own cgroup has `memory.swap.max`,
    /// as dockerd decides; from the root cgroup, which has none, Berth asks its own.
    #[test]
    fn v2_swap_support_is_read_in_the_servers_own_cgroup() {
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join("cgroup.controllers"), "cpuset cpu io memory pids\n").unwrap();
        fs::create_dir_all(root.path().join("system.slice/berth.service")).unwrap();
        fs::write(root.path().join("system.slice/berth.service/memory.swap.max"), "max\n").unwrap();
        let s = Support::at(root.path(), true, Some("/system.slice/berth.service"));
        assert!(s.swap && s.reservation && s.cfs && s.cpuset && s.read_bps);
        // In the root cgroup: where the containers go.
        assert!(!Support::at(root.path(), true, Some("/")).swap);
        fs::create_dir_all(root.path().join("berth")).unwrap();
        fs::write(root.path().join("berth/memory.swap.max"), "max\n").unwrap();
        assert!(Support::at(root.path(), true, Some("/")).swap);
        assert!(Support::at(root.path(), true, None).swap);
        fs::remove_file(root.path().join("system.slice/berth.service/memory.swap.max")).unwrap();
        assert!(!Support::at(root.path(), true, Some("/system.slice/berth.service")).swap);
        fs::write(root.path().join("system.slice/berth.service/memory.swap.max"), "max\n").unwrap();
        fs::write(root.path().join("cgroup.controllers"), "cpu pids\n").unwrap();
        let s = Support::at(root.path(), true, Some("/system.slice/berth.service"));
        assert!(!s.swap && !s.reservation && s.cfs && !s.cpuset);
    }

    #[test]
    fn lists_parse_as_the_kernel_writes_them() {
        assert_eq!(parse_list("0-2,5"), Some(vec![0, 1, 2, 5]));
        assert_eq!(parse_list(""), Some(vec![]));
        assert_eq!(parse_list("abc"), None);
        assert_eq!(parse_list("3-1"), None);
    }

    #[test]
    fn devices_are_named_by_number() {
        assert_eq!(device_number("/dev/null").unwrap(), "1:3");
        assert_eq!(
            device_number("/dev/nope").unwrap_err().to_string(),
            "stat /dev/nope: no such file or directory"
        );
    }
}
