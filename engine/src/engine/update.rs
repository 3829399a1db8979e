//! `docker update`: new resource limits and restart policy for a container, in its
//! record and, while it runs, in its cgroup, as dockerd's `ContainerUpdate` does.

use crate::cgroup::Cgroup;
use crate::container::{HostConfig, Status};
use crate::error::{Error, Result};

use super::container_ops::{cgroup_limits, cgroup_name, validate_limits};
use super::Engine;

/// The request's fields that `docker update` changes (dockerd's `UpdateContainer`):
/// each one given (not zero) replaces the container's. dockerd ignores the other
/// fields of the request's `Resources`, and so does Berth.
fn merge(current: &HostConfig, req: &HostConfig) -> Result<HostConfig> {
    let conflict = |m: &str| Err(Error::InvalidArgument(m.to_string()));
    // `--cpus` writes the period and quota: it cannot change once they are set
    // separately, nor they once it is.
    if req.nano_cpus > 0 && current.cpu_period > 0 {
        return conflict(
            "Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set",
        );
    }
    if req.nano_cpus > 0 && current.cpu_quota > 0 {
        return conflict(
            "Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set",
        );
    }
    if req.cpu_period > 0 && current.nano_cpus > 0 {
        return conflict(
            "Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set",
        );
    }
    if req.cpu_quota > 0 && current.nano_cpus > 0 {
        return conflict(
            "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set",
        );
    }
    let mut h = current.clone();
    if req.blkio_weight != 0 {
        h.blkio_weight = req.blkio_weight;
    }
    if req.cpu_shares != 0 {
        h.cpu_shares = req.cpu_shares;
    }
    if req.nano_cpus != 0 {
        h.nano_cpus = req.nano_cpus;
    }
    if req.cpu_period != 0 {
        h.cpu_period = req.cpu_period;
    }
    if req.cpu_quota != 0 {
        h.cpu_quota = req.cpu_quota;
    }
    if !req.cpuset_cpus.is_empty() {
        h.cpuset_cpus = req.cpuset_cpus.clone();
    }
    if !req.cpuset_mems.is_empty() {
        h.cpuset_mems = req.cpuset_mems.clone();
    }
    if req.memory != 0 {
        if current.memory_swap > 0 && req.memory > current.memory_swap && req.memory_swap == 0 {
            return conflict("Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time");
        }
        h.memory = req.memory;
    }
    if req.memory_swap != 0 {
        h.memory_swap = req.memory_swap;
    }
    if req.memory_reservation != 0 {
        h.memory_reservation = req.memory_reservation;
    }
    if req.pids_limit.is_some() {
        h.pids_limit = req.pids_limit;
    }
    if !req.restart_policy.name.is_empty() {
        if current.auto_remove {
            return conflict(
                "Restart policy cannot be updated because AutoRemove is enabled for the container",
            );
        }
        h.restart_policy = req.restart_policy.clone();
    }
    Ok(h)
}

impl Engine {
    /// Applies `req` (the body of `POST /containers/{id}/update`) to the container;
    /// returns dockerd's warnings for settings the host cannot apply.
    pub fn update_container(
        &self,
        ns: &str,
        name: &str,
        mut req: HostConfig,
    ) -> Result<Vec<String>> {
        // The fields dockerd would apply that Berth has no member for (`KernelMemory`,
        // the realtime CPU budget): refused by name, as at create.
        let applied = ["KernelMemory", "CpuRealtimePeriod", "CpuRealtimeRuntime"];
        let unknown = req
            .unknown
            .iter()
            .filter(|(k, _)| applied.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        crate::unsupported::check(&unknown)?;
        let c = self.container(ns, name)?;
        let cannot = |e: Error| match e {
            Error::InvalidArgument(m) => {
                Error::InvalidArgument(format!("Cannot update container {}: {m}", c.id))
            }
            Error::Conflict(m) => Error::Conflict(format!("Cannot update container {}: {m}", c.id)),
            e => e,
        };
        if c.state.status == Status::Dead || c.state.status == Status::Removing {
            return Err(cannot(Error::Conflict(
                "container is marked for removal and cannot be \"update\"".into(),
            )));
        }
        // dockerd checks the request's own fields first (its update skips the rule
        // that swap needs a memory limit in the same request: the container has one).
        validate_limits(&req)?;
        let warnings =
            crate::resources::verify(&mut req, crate::resources::Support::detect(), true)?;
        let mut h = merge(&c.host_config, &req).map_err(cannot)?;
        if let Some(policy) = self.policy(ns) {
            // The session's limits hold for an update as for a new container (only
            // those: the rest of the policy was applied at create, binds mapped).
            policy.apply_limits(&mut h).map_err(cannot)?;
        }
        let running = c.state.status.is_live();
        if running && h.runtime == crate::runtime::WASMTIME && h.memory != c.host_config.memory {
            // The guest's linear memory was sized at its start.
            return Err(cannot(Error::Conflict("the memory limit of a running WebAssembly container cannot change: stop it, update, start it".into())));
        }
        if running {
            let mut live = c.clone();
            live.host_config = h.clone();
            let limits = cgroup_limits(&h)?;
            Cgroup::new(&cgroup_name(&live))
                .update(&limits)
                .map_err(|e| cannot(Error::InvalidArgument(e.to_string())))?;
        }
        let c = self.update(&c.id, |c| {
            c.host_config = h;
            c.clone()
        })?;
        self.emit_container(&c, "update", &[]);
        Ok(warnings)
    }
}
