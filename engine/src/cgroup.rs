//! Cgroups for one container, v1 (one hierarchy per controller) or v2 (unified),
//! chosen by what the host mounts at /sys/fs/cgroup.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Context, Result};
use crate::spec::Limits;

const ROOT: &str = "/sys/fs/cgroup";
const V1_CONTROLLERS: &[&str] = &["memory", "cpu", "pids", "freezer", "cpuacct"];

#[derive(Debug, Clone)]
pub struct Cgroup {
    /// v2: one directory; v1: one per controller.
    dirs: Vec<PathBuf>,
    v2: bool,
}

pub fn is_v2() -> bool {
    Path::new(ROOT).join("cgroup.controllers").exists()
}

impl Cgroup {
    /// The cgroup named `name` (e.g. `berth/<id>`), not created yet.
    pub fn new(name: &str) -> Cgroup {
        if is_v2() {
            Cgroup { dirs: vec![Path::new(ROOT).join(name)], v2: true }
        } else {
            let dirs = V1_CONTROLLERS
                .iter()
                .map(|c| Path::new(ROOT).join(c).join(name))
                .filter(|d| d.parent().and_then(|p| p.parent()).is_some_and(Path::exists))
                .collect();
            Cgroup { dirs, v2: false }
        }
    }

    pub fn create(&self, limits: &Limits) -> Result<()> {
        if self.v2 {
            let dir = &self.dirs[0];
            // Controllers must be enabled in every ancestor's subtree_control.
            let mut p = PathBuf::from(ROOT);
            for comp in dir.strip_prefix(ROOT).unwrap_or(dir).parent().into_iter().flat_map(|x| x.components()) {
                let _ = fs::write(p.join("cgroup.subtree_control"), "+memory +cpu +pids");
                p.push(comp);
                fs::create_dir_all(&p).ctx(|| format!("create {}", p.display()))?;
            }
            let _ = fs::write(p.join("cgroup.subtree_control"), "+memory +cpu +pids");
            fs::create_dir_all(dir).ctx(|| format!("create {}", dir.display()))?;
        } else {
            for d in &self.dirs {
                fs::create_dir_all(d).ctx(|| format!("create {}", d.display()))?;
            }
        }
        if limits.memory > 0 {
            self.write_v("memory.max", "memory", "memory.limit_in_bytes", &limits.memory.to_string())?;
        }
        if limits.nano_cpus > 0 {
            let quota = limits.nano_cpus / 10_000; // period 100000us
            if self.v2 {
                self.write_v("cpu.max", "cpu", "", &format!("{quota} 100000"))?;
            } else {
                self.write_v("", "cpu", "cpu.cfs_period_us", "100000")?;
                self.write_v("", "cpu", "cpu.cfs_quota_us", &quota.to_string())?;
            }
        }
        if limits.pids > 0 {
            self.write_v("pids.max", "pids", "pids.max", &limits.pids.to_string())?;
        }
        Ok(())
    }

    fn dir_for(&self, controller: &str) -> Option<&PathBuf> {
        if self.v2 {
            self.dirs.first()
        } else {
            self.dirs.iter().find(|d| d.strip_prefix(ROOT).ok().and_then(|r| r.components().next()).is_some_and(|c| c.as_os_str() == controller))
        }
    }

    fn write_v(&self, v2_file: &str, controller: &str, v1_file: &str, value: &str) -> Result<()> {
        let file = if self.v2 { v2_file } else { v1_file };
        if let Some(d) = self.dir_for(controller) {
            let p = d.join(file);
            fs::write(&p, value).ctx(|| format!("write {value} to {}", p.display()))?;
        }
        Ok(())
    }

    /// Moves process `pid` into this cgroup.
    pub fn add(&self, pid: i32) -> Result<()> {
        for d in &self.dirs {
            let p = d.join("cgroup.procs");
            fs::write(&p, pid.to_string()).ctx(|| format!("add {pid} to {}", p.display()))?;
        }
        Ok(())
    }

    pub fn freeze(&self, frozen: bool) -> Result<()> {
        if self.v2 {
            self.write_v("cgroup.freeze", "", "", if frozen { "1" } else { "0" })
        } else {
            self.write_v("", "freezer", "freezer.state", if frozen { "FROZEN" } else { "THAWED" })
        }
    }

    pub fn memory_usage(&self) -> u64 {
        let file = if self.v2 { "memory.current" } else { "memory.usage_in_bytes" };
        self.read_u64("memory", file)
    }

    pub fn memory_limit(&self) -> u64 {
        let file = if self.v2 { "memory.max" } else { "memory.limit_in_bytes" };
        self.read_u64("memory", file)
    }

    /// CPU time used, in nanoseconds.
    pub fn cpu_usage_ns(&self) -> u64 {
        if self.v2 {
            let Some(d) = self.dir_for("cpu") else { return 0 };
            let s = fs::read_to_string(d.join("cpu.stat")).unwrap_or_default();
            s.lines()
                .find_map(|l| l.strip_prefix("usage_usec "))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map_or(0, |u| u * 1000)
        } else {
            self.read_u64("cpuacct", "cpuacct.usage")
        }
    }

    /// How many times the kernel's OOM killer killed a process here.
    pub fn oom_kills(&self) -> u64 {
        let file = if self.v2 { "memory.events" } else { "memory.oom_control" };
        let Some(d) = self.dir_for("memory") else { return 0 };
        fs::read_to_string(d.join(file))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    pub fn pids_current(&self) -> u64 {
        self.read_u64("pids", "pids.current")
    }

    fn read_u64(&self, controller: &str, file: &str) -> u64 {
        self.dir_for(controller)
            .and_then(|d| fs::read_to_string(d.join(file)).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    /// The pids in the cgroup, for `top`.
    pub fn pids(&self) -> Vec<i32> {
        let Some(d) = self.dir_for("pids").or(self.dirs.first()) else { return vec![] };
        fs::read_to_string(d.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Removes the cgroup directories (they must be empty of processes).
    pub fn remove(&self) {
        for d in &self.dirs {
            let _ = fs::remove_dir(d);
        }
    }
}
