//! A lab session's envelope: one cgroup that holds everything the session runs (the
//! student's containers, the workstation, `docker exec` processes, build steps), with
//! limits for the whole session. Per-container limits still apply inside it; the
//! envelope is what keeps twenty containers of one student from taking twenty CPUs
//! and five thousand processes.
//!
//! Containers join it through their `CgroupParent` (set by the namespace's policy, or
//! by the lab for its workstation): their cgroup is `<envelope>/<id>`. The envelope
//! itself holds no process, so on cgroup v2 it may enable controllers for its children.

use serde::{Deserialize, Serialize};

use crate::cgroup::{self, Cgroup};
use crate::cpus::CpuSet;
use crate::error::Result;
use crate::spec::Limits;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The cgroup's name below each controller's root, e.g. `berth/lab-0123456789ab`.
    pub cgroup: String,
    /// For the whole session. 0 = no limit.
    pub memory: i64,
    pub nano_cpus: i64,
    pub pids: i64,
}

impl Envelope {
    /// The envelope of the lab session whose student namespace is `ns`.
    pub fn for_namespace(ns: &str, memory: i64, nano_cpus: i64, pids: i64) -> Envelope {
        Envelope { cgroup: format!("{}/{ns}", cgroup::DEFAULT_PARENT), memory, nano_cpus, pids }
    }

    fn cgroup(&self) -> Cgroup {
        Cgroup::new(&self.cgroup)
    }

    /// Makes the cgroup (or finds it again) and writes its limits, so limits changed
    /// by the instructor apply when the session is opened again.
    pub fn ensure(&self) -> Result<()> {
        cgroup::validate_parent(&self.cgroup)?;
        let cg = self.cgroup();
        cg.create(&Limits::default())?;
        if self.memory > 0 && !cg.memory_hierarchy() {
            tracing::warn!(cgroup = %self.cgroup, "memory.use_hierarchy is off on this host: the session's memory limit covers none of its containers");
        }
        cg.set_default_cpu_weight()?;
        cg.create(&Limits { memory: self.memory, nano_cpus: self.nano_cpus, pids: self.pids, ..Default::default() })
    }

    /// Keeps everything the session runs to `cpus`, with `idle`, its scheduling idle
    /// while it is (the other sessions' and the server's tasks that wake up on those
    /// CPUs then run ahead of it), or (`None`) lets it use all the CPUs sessions may
    /// use again, as before (see [`crate::hogs`]). `cpu.idle` is written either way:
    /// a session made idle by a server run with the other setting is not left so.
    pub fn keep_to_cpus(&self, cpus: Option<&CpuSet>, idle: bool) -> Result<()> {
        cgroup::validate_parent(&self.cgroup)?;
        let cg = self.cgroup();
        cg.set_cpus_tree(cpus)?;
        cg.set_cpu_idle(cpus.is_some() && idle)?;
        Ok(())
    }

    /// The CPUs this session may use now.
    pub fn cpus(&self) -> Option<CpuSet> {
        self.cgroup().effective_cpus()
    }

    /// Whether the cgroup is there (it is gone after a reboot of the host).
    pub fn exists(&self) -> bool {
        self.cgroup().exists()
    }

    /// Removes the cgroup and all below it, killing what is left there.
    pub fn remove(&self) -> Result<()> {
        cgroup::validate_parent(&self.cgroup)?;
        self.cgroup().remove_tree()
    }

    /// Processes in the whole session now.
    pub fn pids_current(&self) -> u64 {
        self.cgroup().pids_current()
    }

    /// Memory the whole session is charged now, in bytes (its page cache included: the
    /// limit counts it too).
    pub fn memory_usage(&self) -> u64 {
        self.cgroup().memory_usage()
    }

    /// CPU time the whole session has used since its envelope was made, in nanoseconds.
    pub fn cpu_usage_ns(&self) -> u64 {
        self.cgroup().cpu_usage_ns()
    }
}

/// The CPUs lab sessions may use: those of the cgroup all envelopes are made in.
pub fn host_cpus() -> Option<CpuSet> {
    Cgroup::new(cgroup::DEFAULT_PARENT).effective_cpus()
}
