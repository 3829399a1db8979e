//! Cgroups for one container (or one lab session's envelope, see [`crate::envelope`]),
//! v1 (one hierarchy per controller) or v2 (unified), chosen by what the host mounts
//! at /sys/fs/cgroup.
//!
//! Layout: a container's cgroup is `<parent>/<id>` below each controller's root, with
//! `parent` [`DEFAULT_PARENT`] or the container's `CgroupParent` (a lab session's
//! envelope, e.g. `berth/lab-0123456789ab`).

use std::fs;
use std::path::{Path, PathBuf};

use crate::cpus::CpuSet;
use crate::error::{Context, Result};
use crate::spec::Limits;

const ROOT: &str = "/sys/fs/cgroup";
/// Every container joins them all, as under runc (cpuset and blkio hold only
/// `--cpuset-*` and `--blkio-*`/`--device-*` limits but are joined all the same).
const V1_CONTROLLERS: &[&str] = &["memory", "cpu", "pids", "freezer", "cpuacct", "cpuset", "blkio"];
/// The v2 controllers enabled for the subtree, one at a time: a write naming one
/// the host lacks would enable none of them.
const V2_CONTROLLERS: &[&str] = &["memory", "cpu", "pids", "cpuset", "io"];
/// The CFS period when only a quota is given (the kernel's default).
const DEFAULT_PERIOD: i64 = 100_000;
/// Where containers without a `CgroupParent` go (Docker's is `docker`).
pub const DEFAULT_PARENT: &str = "berth";

/// The cgroup name of container `id` below `parent` (empty: [`DEFAULT_PARENT`]).
pub fn container_name(parent: &str, id: &str) -> String {
    let parent = parent.trim_matches('/');
    format!("{}/{id}", if parent.is_empty() { DEFAULT_PARENT } else { parent })
}

/// Checks a cgroup parent given by a user (`--cgroup-parent`): a path below the
/// cgroup root that cannot climb out of it.
pub fn validate_parent(parent: &str) -> Result<()> {
    let bad = parent.split('/').any(|c| c == ".." || c == ".");
    if bad || parent.contains('\0') {
        return Err(crate::error::Error::InvalidArgument(format!("invalid cgroup parent {parent:?}: a path below the cgroup root, without . or ..")));
    }
    Ok(())
}

/// The directories of cgroup `name`: one on v2; on v1 one per controller mounted.
fn dirs_for(root: &Path, v2: bool, name: &str, mounted: impl Fn(&Path) -> bool) -> Vec<PathBuf> {
    let name = name.trim_matches('/');
    if v2 {
        vec![root.join(name)]
    } else {
        V1_CONTROLLERS.iter().map(|c| root.join(c)).filter(|d| mounted(d)).map(|d| d.join(name)).collect()
    }
}

#[derive(Debug, Clone)]
pub struct Cgroup {
    /// v2: one directory; v1: one per controller.
    dirs: Vec<PathBuf>,
    v2: bool,
}

pub fn is_v2() -> bool {
    Path::new(ROOT).join("cgroup.controllers").exists()
}

/// The calling process's cgroup on v2 (its `0::` line in `/proc/self/cgroup`, e.g.
/// `/system.slice/berth.service`); None where there is none (v1 only).
pub fn own_v2() -> Option<String> {
    let text = fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines().find_map(|l| l.strip_prefix("0::")).map(str::to_string)
}

impl Cgroup {
    /// The cgroup named `name` (e.g. `berth/<id>`), not created yet.
    pub fn new(name: &str) -> Cgroup {
        let v2 = is_v2();
        Cgroup { dirs: dirs_for(Path::new(ROOT), v2, name, Path::exists), v2 }
    }

    /// Whether the cgroup's directories are all there.
    pub fn exists(&self) -> bool {
        !self.dirs.is_empty() && self.dirs.iter().all(|d| d.is_dir())
    }

    pub fn create(&self, limits: &Limits) -> Result<()> {
        if self.v2 {
            let dir = &self.dirs[0];
            // Controllers must be enabled in every ancestor's subtree_control.
            let mut p = PathBuf::from(ROOT);
            for comp in dir.strip_prefix(ROOT).unwrap_or(dir).parent().into_iter().flat_map(|x| x.components()) {
                enable_v2_controllers(&p);
                p.push(comp);
                fs::create_dir_all(&p).ctx(|| format!("create {}", p.display()))?;
            }
            enable_v2_controllers(&p);
            fs::create_dir_all(dir).ctx(|| format!("create {}", dir.display()))?;
        } else {
            for d in &self.dirs {
                if d.strip_prefix(ROOT).is_ok_and(|r| r.starts_with("cpuset")) {
                    create_v1_cpuset(d)?;
                } else {
                    fs::create_dir_all(d).ctx(|| format!("create {}", d.display()))?;
                }
            }
        }
        self.write_memory(limits)?;
        self.write_cpu(limits)?;
        if limits.pids > 0 {
            self.write_v("pids.max", "pids", "pids.max", &limits.pids.to_string())?;
        }
        if !limits.cpuset_cpus.is_empty() {
            self.write("cpuset", "cpuset.cpus", &limits.cpuset_cpus)?;
        }
        if !limits.cpuset_mems.is_empty() {
            self.write("cpuset", "cpuset.mems", &limits.cpuset_mems)?;
        }
        self.write_blkio(limits)
    }

    /// Writes new limits to the cgroup of a running container (`docker update`):
    /// every limit `limits` sets, and no pids limit where it sets none.
    pub fn update(&self, limits: &Limits) -> Result<()> {
        self.write_memory(limits)?;
        self.write_cpu(limits)?;
        let pids = if limits.pids > 0 { limits.pids.to_string() } else { "max".into() };
        self.write_v("pids.max", "pids", "pids.max", &pids)?;
        if !limits.cpuset_cpus.is_empty() {
            self.write("cpuset", "cpuset.cpus", &limits.cpuset_cpus)?;
        }
        if !limits.cpuset_mems.is_empty() {
            self.write("cpuset", "cpuset.mems", &limits.cpuset_mems)?;
        }
        self.write_blkio(limits)
    }

    fn write_memory(&self, limits: &Limits) -> Result<()> {
        // Memory plus swap: v1 takes the sum (never below the memory limit), v2 the
        // swap alone, as runc converts it.
        let swap_file = if self.v2 { "memory.swap.max" } else { "memory.memsw.limit_in_bytes" };
        let swap_there = self.dir_for("memory").is_some_and(|d| d.join(swap_file).exists());
        let swap = match limits.memory_swap {
            0 => None,
            -1 if self.v2 => Some("max".to_string()),
            -1 => Some("-1".to_string()),
            total if self.v2 => Some((total - limits.memory).max(0).to_string()),
            total => Some(total.to_string()),
        };
        // Without swap accounting, create warned and made it -1 (unlimited): nothing to write.
        let swap = swap.filter(|_| swap_there);
        // v1 keeps memory <= memory+swap at every write: a limit that grows past the
        // current sum needs the sum raised first, one that shrinks needs it after (runc's
        // order). A new cgroup's limit is unlimited, so there memory goes first.
        let current = self.read_u64("memory", "memory.limit_in_bytes");
        let swap_first = !self.v2 && limits.memory > 0 && (limits.memory_swap == -1 || (limits.memory_swap > 0 && current < limits.memory_swap as u64));
        if swap_first {
            if let Some(swap) = &swap {
                self.write("memory", swap_file, swap)?;
            }
        }
        if limits.memory > 0 {
            self.write_v("memory.max", "memory", "memory.limit_in_bytes", &limits.memory.to_string())?;
        }
        if let (Some(swap), false) = (swap, swap_first) {
            self.write("memory", swap_file, &swap)?;
        }
        if limits.memory_reservation > 0 {
            self.write_v("memory.low", "memory", "memory.soft_limit_in_bytes", &limits.memory_reservation.to_string())?;
        }
        // v2 has neither (create discarded them there).
        if !self.v2 {
            if limits.oom_kill_disable {
                self.write("memory", "memory.oom_control", "1")?;
            }
            if let Some(s) = limits.swappiness {
                self.write("memory", "memory.swappiness", &s.to_string())?;
            }
        }
        Ok(())
    }

    fn write_cpu(&self, limits: &Limits) -> Result<()> {
        if limits.cpu_shares < 0 {
            return Err(crate::error::Error::InvalidArgument("shares: invalid argument".into()));
        }
        if limits.cpu_shares > 0 {
            if self.v2 {
                self.write("cpu", "cpu.weight", &shares_to_weight(limits.cpu_shares).to_string())?;
            } else {
                // The kernel clamps what it cannot take; runc reads it back and says so.
                self.write("cpu", "cpu.shares", &limits.cpu_shares.to_string())?;
                let got = self.read_u64("cpu", "cpu.shares") as i64;
                if limits.cpu_shares > got {
                    return Err(crate::error::Error::InvalidArgument(format!("the maximum allowed cpu-shares is {got}")));
                }
                if limits.cpu_shares < got {
                    return Err(crate::error::Error::InvalidArgument(format!("the minimum allowed cpu-shares is {got}")));
                }
            }
        }
        let (period, quota) = if limits.nano_cpus > 0 {
            (DEFAULT_PERIOD, limits.nano_cpus * DEFAULT_PERIOD / 1_000_000_000)
        } else if limits.cpu_period > 0 || limits.cpu_quota != 0 {
            (if limits.cpu_period > 0 { limits.cpu_period } else { DEFAULT_PERIOD }, limits.cpu_quota)
        } else {
            return Ok(());
        };
        if self.v2 {
            let quota = if quota > 0 { quota.to_string() } else { "max".into() };
            return self.write("cpu", "cpu.max", &format!("{quota} {period}"));
        }
        // v1 refuses a share of CPU time above the parent's (v2 takes it and applies
        // the parent's anyway): the parent's is what the child gets either way.
        let parent = self.dir_for("cpu").and_then(|d| d.parent()).map(|p| {
            let read = |f: &str| fs::read_to_string(p.join(f)).ok().and_then(|v| v.trim().parse::<i64>().ok());
            (read("cpu.cfs_quota_us"), read("cpu.cfs_period_us"))
        });
        let quota = match parent {
            Some((Some(pq), Some(pp))) if pq > 0 && pp > 0 => {
                let most = pq * period / pp;
                if quota > 0 { quota.min(most) } else { most }
            }
            _ => quota,
        };
        self.write("cpu", "cpu.cfs_period_us", &period.to_string())?;
        if quota != 0 {
            self.write("cpu", "cpu.cfs_quota_us", &quota.to_string())?;
        }
        Ok(())
    }

    /// v1 blkio files; on v2 `io.max`, and the BFQ scheduler's weights where it is
    /// there (else `io.weight`, converted), as runc writes them.
    fn write_blkio(&self, limits: &Limits) -> Result<()> {
        if self.v2 {
            let bfq = self.dir_for("io").is_some_and(|d| d.join("io.bfq.weight").exists());
            if limits.blkio_weight > 0 {
                if bfq {
                    self.write("io", "io.bfq.weight", &limits.blkio_weight.to_string())?;
                } else {
                    self.write("io", "io.weight", &blkio_to_io_weight(limits.blkio_weight).to_string())?;
                }
            }
            if bfq {
                for d in &limits.blkio_weight_device {
                    self.write("io", "io.bfq.weight", &format!("{} {}", d.device, d.value))?;
                }
            }
            for (key, devices) in [("rbps", &limits.read_bps), ("wbps", &limits.write_bps), ("riops", &limits.read_iops), ("wiops", &limits.write_iops)] {
                for d in devices {
                    self.write("io", "io.max", &format!("{} {key}={}", d.device, d.value))?;
                }
            }
            return Ok(());
        }
        if limits.blkio_weight > 0 {
            self.write("blkio", "blkio.weight", &limits.blkio_weight.to_string())?;
        }
        let files = [
            ("blkio.weight_device", &limits.blkio_weight_device),
            ("blkio.throttle.read_bps_device", &limits.read_bps),
            ("blkio.throttle.write_bps_device", &limits.write_bps),
            ("blkio.throttle.read_iops_device", &limits.read_iops),
            ("blkio.throttle.write_iops_device", &limits.write_iops),
        ];
        for (file, devices) in files {
            for d in devices {
                self.write("blkio", file, &format!("{} {}", d.device, d.value))?;
            }
        }
        Ok(())
    }

    /// Gives the cgroup the kernel's default CPU weight (v1 `cpu.shares` 1024, v2
    /// `cpu.weight` 100), written rather than inherited: siblings share the CPU by
    /// weight, so a lab session counts as one, however many containers it runs.
    pub fn set_default_cpu_weight(&self) -> Result<()> {
        if self.v2 {
            self.write_v("cpu.weight", "cpu", "", "100")
        } else {
            self.write_v("", "cpu", "cpu.shares", "1024")
        }
    }

    /// On v1, asks for hierarchical memory accounting (limits of this cgroup then
    /// cover its children); returns whether it is on. Kernels since 5.16 only have it
    /// on; older ones default to off unless the init system turned it on. Must run
    /// before the cgroup has children. Always true on v2.
    pub fn memory_hierarchy(&self) -> bool {
        if self.v2 {
            return true;
        }
        let Some(d) = self.dir_for("memory") else { return false };
        let file = d.join("memory.use_hierarchy");
        if fs::read_to_string(&file).is_ok_and(|s| s.trim() == "1") {
            return true;
        }
        let _ = fs::write(&file, "1");
        fs::read_to_string(&file).is_ok_and(|s| s.trim() == "1")
    }

    /// Marks the cgroup's CPU scheduling idle (`cpu.idle`, Linux 5.15+): any task
    /// outside it that wakes up preempts it at once. Returns false where the kernel
    /// has no such setting.
    pub fn set_cpu_idle(&self, idle: bool) -> Result<bool> {
        let Some(d) = self.dir_for("cpu") else { return Ok(false) };
        let file = d.join("cpu.idle");
        if !file.exists() {
            return Ok(false);
        }
        fs::write(&file, if idle { "1" } else { "0" }).ctx(|| format!("write {} to {}", u8::from(idle), file.display()))?;
        Ok(true)
    }

    /// The CPUs the cgroup may use now (its effective cpuset); None without a cpuset
    /// controller for it.
    pub fn effective_cpus(&self) -> Option<CpuSet> {
        let d = self.dir_for("cpuset")?;
        let file = if self.v2 { "cpuset.cpus.effective" } else { "cpuset.effective_cpus" };
        CpuSet::parse(&fs::read_to_string(d.join(file)).ok()?).ok()
    }

    /// Keeps the cgroup, and everything below it, to `cpus`; `None` gives it its
    /// parent's CPUs back. On v2 that is the cgroup's own `cpuset.cpus` (the children's
    /// effective sets follow). On v1 every cgroup must stay within its parent's set, so
    /// a shrink writes the deepest first and a grow the shallowest first; a cgroup
    /// below with CPUs of its own (`--cpuset-cpus`) keeps those within the new set.
    pub fn set_cpus_tree(&self, cpus: Option<&CpuSet>) -> Result<()> {
        let Some(dir) = self.dir_for("cpuset") else { return Ok(()) };
        let file = dir.join("cpuset.cpus");
        if self.v2 {
            // The parent's set, written out: a cgroup with processes may not go back
            // to an empty set (the kernel's "inherit"), ENOSPC.
            let value = match cpus {
                Some(c) => c.to_string(),
                None => {
                    let parent = dir.parent().map(|p| p.join("cpuset.cpus.effective")).unwrap_or_default();
                    fs::read_to_string(&parent).ctx(|| format!("read {}", parent.display()))?.trim().to_string()
                }
            };
            return fs::write(&file, &value).ctx(|| format!("write {value:?} to {}", file.display()));
        }
        let read = |d: &Path| -> Result<CpuSet> {
            let f = d.join("cpuset.cpus");
            CpuSet::parse(&fs::read_to_string(&f).ctx(|| format!("read {}", f.display()))?)
        };
        let write = |d: &Path, set: &CpuSet| -> Result<()> {
            let f = d.join("cpuset.cpus");
            match fs::write(&f, set.to_string()) {
                // A cgroup below removed meanwhile (its container ended) is no matter.
                Err(_) if !d.exists() => Ok(()),
                r => r.ctx(|| format!("write {set} to {}", f.display())),
            }
        };
        let before = read(dir)?;
        let mut below = Vec::new();
        dirs_below(dir, 1, &mut below);
        match cpus {
            Some(set) => {
                below.sort_by_key(|(_, depth)| std::cmp::Reverse(*depth));
                for (d, _) in &below {
                    let Ok(mine) = read(d) else { continue };
                    let own = mine.intersection(set);
                    write(d, if mine == before || own.is_empty() { set } else { &own })?;
                }
                write(dir, set)
            }
            None => {
                let parent = dir.parent().map(read).transpose()?.unwrap_or_default();
                write(dir, &parent)?;
                below.sort_by_key(|(_, depth)| *depth);
                for (d, _) in &below {
                    // Those that had the cgroup's set get the new one; the others keep theirs.
                    if read(d).is_ok_and(|mine| mine == before) {
                        write(d, &parent)?;
                    }
                }
                Ok(())
            }
        }
    }

    fn dir_for(&self, controller: &str) -> Option<&PathBuf> {
        if self.v2 {
            self.dirs.first()
        } else {
            self.dirs.iter().find(|d| d.strip_prefix(ROOT).ok().and_then(|r| r.components().next()).is_some_and(|c| c.as_os_str() == controller))
        }
    }

    /// Writes `file` of `controller` (v2: of the one directory).
    fn write(&self, controller: &str, file: &str, value: &str) -> Result<()> {
        if let Some(d) = self.dir_for(controller) {
            let p = d.join(file);
            fs::write(&p, value).ctx(|| format!("write {value} to {}", p.display()))?;
        }
        Ok(())
    }

    fn write_v(&self, v2_file: &str, controller: &str, v1_file: &str, value: &str) -> Result<()> {
        let file = if self.v2 { v2_file } else { v1_file };
        if let Some(d) = self.dir_for(controller) {
            let p = d.join(file);
            fs::write(&p, value).ctx(|| format!("write {value} to {}", p.display()))?;
        }
        Ok(())
    }

    /// Moves the calling process into this cgroup. The caller must be single-threaded
    /// (the shim before its first thread, a container's init before it execs, `nsexec`).
    ///
    /// Why not [`Cgroup::add`] with our own pid: on v1 this writes 0 ("the caller") to
    /// `tasks`, which moves the calling thread alone, and for a lone thread the kernel
    /// does not take the global threadgroup lock that a `cgroup.procs` write takes.
    /// Taking that lock waits for an RCU grace period whenever no migration happened
    /// in the last one: 6-14 ms on this 2-core v1 host against 0.5 ms (a start's
    /// critical path). A single-threaded process is its one thread, so the move is
    /// whole. On v2 `tasks` is gone and `cgroup.procs` is the way in.
    pub fn enter(&self) -> Result<()> {
        let file = if self.v2 { "cgroup.procs" } else { "tasks" };
        for d in &self.dirs {
            let p = d.join(file);
            fs::write(&p, "0").ctx(|| format!("enter {}", p.display()))?;
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

    /// Removes the cgroup with every cgroup below it, killing what still runs there
    /// (a lab session's envelope when the session goes: nothing in it may outlive
    /// it). Gives up after a few seconds and says what is left.
    pub fn remove_tree(&self) -> Result<()> {
        let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let mut left = Vec::new();
            for d in &self.dirs {
                remove_dir_tree(d, &mut left);
            }
            if left.is_empty() {
                return Ok(());
            }
            if std::time::Instant::now() > end {
                let left: Vec<String> = left.iter().map(|p| p.display().to_string()).collect();
                return Err(crate::error::Error::Conflict(format!("cgroups still busy: {}", left.join(", "))));
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

fn enable_v2_controllers(dir: &Path) {
    for c in V2_CONTROLLERS {
        let _ = fs::write(dir.join("cgroup.subtree_control"), format!("+{c}"));
    }
}

/// Makes a v1 cpuset cgroup and its missing ancestors. A new cpuset starts with no
/// CPUs and no memory nodes, and no process can join it: each level gets its
/// parent's, as runc does.
fn create_v1_cpuset(dir: &Path) -> Result<()> {
    let root = Path::new(ROOT).join("cpuset");
    let mut p = root.clone();
    for comp in dir.strip_prefix(&root).unwrap_or(dir).components() {
        let parent = p.clone();
        p.push(comp);
        fs::create_dir_all(&p).ctx(|| format!("create {}", p.display()))?;
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let mine = fs::read_to_string(p.join(file)).unwrap_or_default();
            if mine.trim().is_empty() {
                let theirs = fs::read_to_string(parent.join(file)).ctx(|| format!("read {}", parent.join(file).display()))?;
                fs::write(p.join(file), theirs.trim()).ctx(|| format!("write {}", p.join(file).display()))?;
            }
        }
    }
    Ok(())
}

/// Every cgroup directory below `dir`, with its depth (children 1).
fn dirs_below(dir: &Path, depth: usize, out: &mut Vec<(PathBuf, usize)>) {
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            dirs_below(&e.path(), depth + 1, out);
            out.push((e.path(), depth));
        }
    }
}

/// runc's conversion of v1 `cpu.shares` (2..262144) to v2 `cpu.weight` (1..10000).
fn shares_to_weight(shares: i64) -> i64 {
    1 + ((shares - 2) * 9999) / 262142
}

/// runc's conversion of a blkio weight (10..1000) to v2 `io.weight` (1..10000).
fn blkio_to_io_weight(weight: u16) -> u64 {
    1 + (u64::from(weight).saturating_sub(10)) * 9999 / 990
}

/// Depth first: kills the processes of each cgroup and removes it; what could not be
/// removed yet (processes still dying) goes to `left`.
fn remove_dir_tree(dir: &Path, left: &mut Vec<PathBuf>) {
    if !dir.is_dir() {
        return;
    }
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_dir_tree(&e.path(), left);
            }
        }
    }
    for pid in fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default().lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
    if fs::remove_dir(dir).is_err() && dir.is_dir() {
        left.push(dir.to_path_buf());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_go_below_their_parent() {
        assert_eq!(container_name("", "abc"), "berth/abc");
        assert_eq!(container_name("berth/lab-0123456789ab", "abc"), "berth/lab-0123456789ab/abc");
        assert_eq!(container_name("/custom/", "abc"), "custom/abc");
    }

    #[test]
    fn v1_has_one_directory_per_mounted_controller() {
        let root = Path::new("/sys/fs/cgroup");
        let name = container_name("berth/lab-x", "id");
        let v1 = dirs_for(root, false, &name, |d| !d.ends_with("freezer"));
        let shown: Vec<String> = v1.iter().map(|d| d.display().to_string()).collect();
        assert_eq!(
            shown,
            [
                "/sys/fs/cgroup/memory/berth/lab-x/id",
                "/sys/fs/cgroup/cpu/berth/lab-x/id",
                "/sys/fs/cgroup/pids/berth/lab-x/id",
                "/sys/fs/cgroup/cpuacct/berth/lab-x/id",
                "/sys/fs/cgroup/cpuset/berth/lab-x/id",
                "/sys/fs/cgroup/blkio/berth/lab-x/id"
            ]
        );
        assert_eq!(dirs_for(root, true, &name, |_| false), [PathBuf::from("/sys/fs/cgroup/berth/lab-x/id")]);
    }

    #[test]
    fn v2_weights_convert_as_runc_does() {
        assert_eq!((shares_to_weight(2), shares_to_weight(1024), shares_to_weight(262144)), (1, 39, 10000));
        assert_eq!((blkio_to_io_weight(10), blkio_to_io_weight(500), blkio_to_io_weight(1000)), (1, 4950, 10000));
    }

    /// `enter` moves the calling process (a forked child here: single-threaded, as the
    /// shim, a container's init and `nsexec` are when they call it) into the cgroup on
    /// every controller. Root only.
    #[test]
    fn a_process_enters_on_every_controller() {
        use std::os::fd::AsRawFd;
        struct Cleanup(Cgroup, Cgroup, Option<nix::unistd::Pid>);
        impl Drop for Cleanup {
            fn drop(&mut self) {
                if let Some(pid) = self.2 {
                    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                    let _ = nix::sys::wait::waitpid(pid, None);
                }
                self.0.remove();
                self.1.remove();
            }
        }
        let name = format!("berth-test/enter-{}", std::process::id());
        let mut guard = Cleanup(Cgroup::new(&name), Cgroup::new("berth-test"), None);
        guard.0.create(&Limits::default()).expect("make a cgroup (the test needs root)");
        let (r, w) = nix::unistd::pipe().unwrap();
        // SAFETY: the child only enters the cgroup, writes one byte and waits to be killed.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let _ = nix::unistd::write(&w, if guard.0.enter().is_ok() { b"y" } else { b"n" });
                loop {
                    nix::unistd::pause();
                }
            }
            nix::unistd::ForkResult::Parent { child } => {
                guard.2 = Some(child);
                drop(w);
                let mut b = [0u8; 1];
                assert_eq!(nix::unistd::read(r.as_raw_fd(), &mut b), Ok(1));
                assert_eq!(&b, b"y", "enter failed in the child");
                assert!(guard.0.pids().contains(&child.as_raw()), "{:?}", guard.0.pids());
                let shown = fs::read_to_string(format!("/proc/{child}/cgroup")).unwrap();
                let inside = shown.lines().filter(|l| l.ends_with(&format!(":/{name}"))).count();
                let want = if guard.0.v2 { 1 } else { guard.0.dirs.len() };
                assert_eq!(inside, want, "{shown}");
            }
        }
    }

    #[test]
    fn parents_stay_below_the_root() {
        assert!(validate_parent("berth/lab-x").is_ok());
        for bad in ["../x", "berth/../../x", "a/./b"] {
            assert!(validate_parent(bad).is_err(), "{bad}");
        }
    }
}
