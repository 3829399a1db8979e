//! Container lifecycle: create, start (through a shim), stop, kill, wait, remove,
//! attach, pause, rename, and recovery after a server restart.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use super::Engine;
use crate::cgroup::Cgroup;
use crate::container::{self, Container, ContainerConfig, HostConfig, MountPoint, State, Status};
use crate::error::{Context, Error, Result};
use crate::fsutil;
use crate::reference::Reference;
use crate::runtime::{self, NO_LINUX};
use crate::security::{Seccomp, SecurityOpts};
use super::network_ops::{EndpointRequest, Mode};
use crate::spec::{ExitInfo, Limits, MountSpec, PortSpec, RuntimeSpec, ShimRequest, StartReport, WasmSpec};

#[derive(Default)]
pub struct CreateRequest {
    pub name: Option<String>,
    pub config: ContainerConfig,
    pub host_config: HostConfig,
    /// Made by Berth itself for the namespace (a lab workstation), not by its user:
    /// the namespace's policy does not apply.
    pub system: bool,
    /// Run in this kept network namespace (see `netns`) instead of a new one.
    pub join_network: Option<PathBuf>,
    /// Per network: aliases and a fixed address (`NetworkingConfig.EndpointsConfig`).
    pub endpoints_config: BTreeMap<String, EndpointRequest>,
    /// `--platform` (`os/arch`): `wasi/wasm` picks the wasm runtime.
    pub platform: Option<String>,
}

/// A connection to the shim carrying one attach: raw or framed output, raw input.
pub type AttachStream = UnixStream;

pub(crate) struct PendingAttach {
    request: ShimRequest,
    reply: Sender<AttachStream>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    NotRunning,
    NextExit,
    Removed,
}

/// Blocks until a container reaches a wait condition; see [`Engine::wait`].
pub struct Waiter {
    immediate: Option<i32>,
    rx: Option<Receiver<crate::events::Event>>,
    id: String,
    condition: WaitCondition,
}

impl Waiter {
    /// The exit code, once the condition holds.
    pub fn wait(self) -> i32 {
        if let Some(code) = self.immediate {
            return code;
        }
        let Some(rx) = self.rx else { return 0 };
        let mut code = 0;
        for e in rx.iter().filter(|e| e.id == self.id && e.kind == "container") {
            match e.action.as_str() {
                "die" => {
                    code = e.attributes.get("exitCode").and_then(|c| c.parse().ok()).unwrap_or(0);
                    if self.condition != WaitCondition::Removed {
                        return code;
                    }
                }
                "destroy" => return code,
                _ => {}
            }
        }
        code
    }
}

pub(super) fn dir_of(engine: &Engine, id: &str) -> PathBuf {
    engine.root.join("containers").join(id)
}

/// The shim's socket. Not in the container's directory: a unix socket path must fit
/// in 108 bytes, and `<root>/containers/<64 hex>/…` may not.
pub(crate) fn shim_socket(engine: &Engine, id: &str) -> PathBuf {
    engine.root.join("run").join(format!("{}.sock", &id[..16.min(id.len())]))
}

/// When a removed container's files go.
#[derive(Clone, Copy)]
enum Files {
    /// Before the removal returns (`docker rm`: its disk space is free when it returns).
    Now,
    /// On a thread, after the container is gone (`run --rm`, which returns once it is:
    /// the unlinks were 2-3 ms of every `docker run --rm`).
    Later,
}

/// The prefix of a removed container's directory whose files are being deleted.
const REMOVED: &str = ".removed-";

/// Renames a removed container's directory out of the way (a hidden sibling, on the
/// same file system) for its files to be deleted later.
fn hide_removed(dir: &std::path::Path) -> std::io::Result<PathBuf> {
    let name = dir.file_name().ok_or_else(|| std::io::Error::other("no directory name"))?;
    let hidden = dir.with_file_name(format!("{REMOVED}{}", name.to_string_lossy()));
    fs::rename(dir, &hidden)?;
    Ok(hidden)
}

/// Deletes the removed containers' directories in `containers` that a stop of the server
/// left before their files were gone.
pub(super) fn sweep_removed(containers: &std::path::Path) {
    let Ok(rd) = fs::read_dir(containers) else { return };
    for e in rd.flatten().filter(|e| e.file_name().to_string_lossy().starts_with(REMOVED)) {
        if let Err(err) = fs::remove_dir_all(e.path()) {
            tracing::warn!("remove {}: {err}", e.path().display());
        }
    }
}

fn no_such(name: &str) -> Error {
    Error::NotFound(format!("No such container: {name}"))
}

impl Engine {
    pub(super) fn save(&self, c: &Container) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(c).ctx(|| format!("encode container {}", c.id))?;
        let path = dir_of(self, &c.id).join("container.json");
        if c.host_config.auto_remove {
            // Not made durable: after a power cut an `--rm` container's process is gone
            // and the container is removed as the server comes back, so its record has
            // nothing to keep; and each fsync commits ext4's journal, which holds up
            // every other file change on the disk meanwhile (the next command's).
            fsutil::write_atomic_unsynced(&path, &bytes).map(drop)
        } else {
            fsutil::write_atomic_sync_later(&path, &bytes)
        }
    }

    /// Writes the container's record as it is now; nothing if it was removed, or if it
    /// is an `--rm` container that has exited (it is removed next; see `on_exit`).
    fn save_current(&self, id: &str) -> Result<()> {
        let map = self.containers.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(id) {
            Some(c) if !c.host_config.auto_remove || c.state.status.is_live() => self.save(c),
            _ => Ok(()),
        }
    }

    /// Finds a container by full id, name, or unique id prefix, in one namespace.
    pub(super) fn lookup<'a>(map: &'a HashMap<String, Container>, ns: &str, name: &str) -> Result<&'a Container> {
        let name = name.trim_start_matches('/');
        if name.is_empty() {
            return Err(no_such(name));
        }
        let in_ns = || map.values().filter(|c| c.namespace == ns);
        if let Some(c) = map.get(name).filter(|c| c.namespace == ns) {
            return Ok(c);
        }
        if let Some(c) = in_ns().find(|c| c.name == name) {
            return Ok(c);
        }
        let mut prefix = in_ns().filter(|c| c.id.starts_with(name));
        match (prefix.next(), prefix.next()) {
            (Some(c), None) => Ok(c),
            (Some(_), Some(_)) => Err(Error::NotFound(format!("Multiple IDs found with provided prefix: {name}"))),
            _ => Err(no_such(name)),
        }
    }

    pub fn container(&self, ns: &str, name: &str) -> Result<Container> {
        let map = self.containers.lock().unwrap_or_else(|p| p.into_inner());
        Self::lookup(&map, ns, name).cloned()
    }

    pub fn containers(&self, ns: &str) -> Vec<Container> {
        let map = self.containers.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<Container> = map.values().filter(|c| c.namespace == ns).cloned().collect();
        v.sort_by_key(|c| std::cmp::Reverse(c.created));
        v
    }

    /// How many containers are in each state, in all namespaces (lab sessions' and
    /// their workstations' too): counted under the lock, without cloning them.
    pub fn container_counts(&self) -> Vec<(Status, usize)> {
        let map = self.containers.lock().unwrap_or_else(|p| p.into_inner());
        Status::ALL.iter().map(|s| (*s, map.values().filter(|c| c.state.status == *s).count())).collect()
    }

    pub(super) fn update<T>(&self, id: &str, f: impl FnOnce(&mut Container) -> T) -> Result<T> {
        self.update_then_save(id, true, f)
    }

    /// [`Engine::update`], written to disk only when `save`: an exit of an `--rm`
    /// container is not, as it is removed next and `docker run --rm` waits for that (a
    /// crash in between leaves the record of a running container whose shim is gone,
    /// which recovery records as exited and removes).
    fn update_then_save<T>(&self, id: &str, save: bool, f: impl FnOnce(&mut Container) -> T) -> Result<T> {
        let mut map = self.containers.lock().unwrap_or_else(|p| p.into_inner());
        let c = map.get_mut(id).ok_or_else(|| no_such(id))?;
        let out = f(c);
        if save {
            self.save(c)?;
        }
        Ok(out)
    }

    pub fn create_container(&self, ns: &str, req: CreateRequest) -> Result<Container> {
        let CreateRequest { name, mut config, mut host_config, system, join_network, mut endpoints_config, platform } = req;
        // Checked before the image, as dockerd does.
        if let Some(h) = &config.healthcheck {
            h.validate()?;
        }
        crate::unsupported::check(&config.unknown)?;
        crate::unsupported::check(&host_config.unknown)?;
        for mac in std::iter::once(&config.mac_address).chain(endpoints_config.values().filter_map(|r| r.mac_address.as_ref())).filter(|m| !m.is_empty()) {
            crate::network::parse_mac(mac)?;
        }
        let image_id = self.images.resolve(ns, &config.image).map_err(|_| {
            let shown = Reference::parse(&config.image).map(|r| r.familiar()).unwrap_or(config.image.clone());
            Error::NotFound(format!("No such image: {shown}"))
        })?;
        let image = self.images.config(&self.store, &image_id)?;
        let annotations = self.images.record(&image_id)?.annotations;
        let wasm_image = runtime::is_wasm_image(&image, &annotations);
        // `--platform`: the image must be one for it (Docker's NotFound, on which the
        // CLI pulls the name for that platform and tries again).
        let platform = platform.filter(|p| !p.is_empty()).map(|p| crate::platform::Platform::parse(&p)).transpose()?;
        if let Some(want) = &platform {
            if !want.matches_image(&image.os, &image.architecture) {
                return Err(Error::NotFound(want.mismatch(&config.image, &image.os, &image.architecture)));
            }
        }
        host_config.runtime = runtime::select(&host_config.runtime, platform.as_ref(), wasm_image)?.to_string();
        if !self.linux_runtime {
            let why = self.linux_missing().unwrap_or("no namespaces");
            if host_config.runtime == runtime::RUNC {
                return Err(Error::InvalidArgument(format!("{NO_LINUX} ({why}): run WebAssembly images (os wasip1, architecture wasm) or use --runtime {}", runtime::WASMTIME)));
            }
            // Networks and published ports are made of network namespaces: a guest
            // here gets none (WASI preview 1 has no sockets of its own anyway).
            match host_config.network_mode.as_str() {
                "" | "default" | "bridge" | "none" => {
                    host_config.network_mode = "none".into();
                    // The CLI names the default network in the endpoints too.
                    endpoints_config.retain(|k, _| !matches!(k.as_str(), "" | "default" | "bridge" | "none"));
                }
                other => return Err(Error::InvalidArgument(format!("network {other}: {NO_LINUX} ({why}), so it has no networks"))),
            }
            if !host_config.port_bindings.is_empty() || host_config.publish_all_ports {
                return Err(Error::InvalidArgument(format!("publishing ports: {NO_LINUX} ({why}), so it has no networks")));
            }
        }
        // The log options' form first: the policy reads them.
        host_config.log_config.validate()?;
        if !system {
            self.check_frozen(ns)?;
            self.check_disk(ns)?;
            if let Some(policy) = self.policy(ns) {
                let count = self.containers.lock().unwrap_or_else(|p| p.into_inner()).values().filter(|c| c.namespace == ns).count();
                policy.apply(&mut host_config, count)?;
            }
        }
        // After the policy: a lab session's refusal says it is the session's rule.
        validate_host_config(&host_config)?;
        let warnings = crate::resources::adapt(&mut host_config, crate::resources::Support::detect())?;
        // The image's defaults, overridden by the request, as Docker merges them.
        let ic = &image.config;
        let mut env = ic.env.clone();
        for kv in &config.env {
            let key = kv.split('=').next().unwrap_or(kv);
            env.retain(|e| e.split('=').next() != Some(key));
            env.push(kv.clone());
        }
        config.env = env;
        let entrypoint_given = config.entrypoint.is_some();
        let entrypoint = match &config.entrypoint {
            Some(e) if e.len() == 1 && e[0].is_empty() => vec![],
            Some(e) => e.clone(),
            None => ic.entrypoint.clone().unwrap_or_default(),
        };
        if config.cmd.is_empty() && !entrypoint_given {
            config.cmd = ic.cmd.clone().unwrap_or_default();
        }
        config.entrypoint = if entrypoint.is_empty() { None } else { Some(entrypoint.clone()) };
        if config.working_dir.is_empty() {
            config.working_dir = ic.working_dir.clone();
        }
        if config.user.is_empty() {
            config.user = ic.user.clone();
        }
        for (k, v) in &ic.exposed_ports {
            config.exposed_ports.entry(k.clone()).or_insert(v.clone());
        }
        for (k, v) in &ic.labels {
            config.labels.entry(k.clone()).or_insert(v.clone());
        }
        if config.stop_signal.is_none() {
            config.stop_signal = ic.stop_signal.clone();
        }
        // The builder keeps the image's HEALTHCHECK among the config's other fields.
        let image_health = ic.extra.get("Healthcheck").and_then(|v| serde_json::from_value(v.clone()).ok());
        config.healthcheck = crate::health::merge(config.healthcheck.take(), image_health);
        let mut argv: Vec<String> = entrypoint;
        argv.extend(config.cmd.iter().cloned());
        if argv.is_empty() {
            return Err(Error::InvalidArgument("no command specified".into()));
        }
        if let Some(sig) = &config.stop_signal {
            container::parse_signal(sig)?;
        }
        // Port bindings are checked now so a bad one fails `create`, not `start`.
        port_specs(&config, &host_config)?;

        let mut map = self.containers.lock().unwrap_or_else(|p| p.into_inner());
        let name = match name.filter(|n| !n.is_empty()) {
            Some(n) => {
                let n = n.trim_start_matches('/').to_string();
                container::validate_name(&n)?;
                if let Some(other) = map.values().find(|c| c.namespace == ns && c.name == n) {
                    return Err(Error::Conflict(format!(
                        "Conflict. The container name \"/{n}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                        other.id
                    )));
                }
                n
            }
            None => loop {
                let n = container::random_name();
                if !map.values().any(|c| c.namespace == ns && c.name == n) {
                    break n;
                }
            },
        };
        let id = fsutil::random_id();
        share_namespaces(&map, ns, &mut config, &mut host_config)?;
        if config.hostname.is_empty() {
            config.hostname = id[..12].to_string();
        }
        let mut volumes_src: Vec<PathBuf> = Vec::new();
        let rec = self.images.record(&image_id)?;
        for l in rec.layers.iter().rev() {
            volumes_src.push(self.store.layer_dir(&l.chain_id)?);
        }
        let mounts = self.resolve_mounts(ns, &map, &config, &host_config, &image, &volumes_src)?;
        // A 404 from create makes the CLI try to pull the image: these are 400s.
        let not_found_is_bad = |e: Error| match e {
            Error::NotFound(m) => Error::InvalidArgument(m),
            e => e,
        };
        host_config.links = Self::check_links(&map, ns, &host_config.links).map_err(not_found_is_bad)?;
        let mode = self.network_mode(ns, &host_config).map_err(not_found_is_bad)?;
        let endpoints = match (&join_network, mode) {
            // No interface of its own to give the address to (`none` has one to give
            // none: Docker takes the address there and uses it nowhere).
            (None, Mode::Host | Mode::Container) if !config.mac_address.is_empty() || endpoints_config.values().any(|r| r.mac_address.is_some()) => {
                return Err(Error::InvalidArgument("conflicting options: mac-address and the network mode".into()));
            }
            // Another network beside none, host or a container's: nowhere to plug it.
            (None, Mode::None | Mode::Host | Mode::Container) if endpoints_config.keys().any(|k| *k != host_config.network_mode) => {
                let names: Vec<&str> = endpoints_config.keys().map(String::as_str).collect();
                return Err(Error::InvalidArgument(format!("Container cannot be connected to network endpoints: {}", names.join(", "))));
            }
            (Some(_), _) | (None, Mode::None | Mode::Host | Mode::Container) => vec![],
            (None, Mode::Network(net)) => {
                let mut req = endpoints_config.get(&net.name).or_else(|| endpoints_config.get(&host_config.network_mode)).cloned().unwrap_or_default();
                // `Config.MacAddress` (clients of API < 1.44) is the main network's;
                // Docker shows the main network's in it whichever way it came.
                match (&req.mac_address, config.mac_address.as_str()) {
                    (None, "") => {}
                    (None, m) => req.mac_address = Some(m.to_string()),
                    (Some(e), "") => config.mac_address = e.clone(),
                    (Some(e), m) => {
                        if crate::network::parse_mac(e)? != crate::network::parse_mac(m)? {
                            return Err(Error::InvalidArgument(
                                "the container-wide MAC address must match the endpoint-specific MAC address for the main network, or be left empty".into(),
                            ));
                        }
                    }
                }
                let mut endpoints = vec![self.new_endpoint(&map, ns, &net, &req)?];
                // API 1.44+ (`docker run --network a --network b`): the other networks
                // of `EndpointsConfig` too, in name order after the main one.
                for (key, req) in &endpoints_config {
                    if *key == net.name || *key == net.id || *key == host_config.network_mode {
                        continue;
                    }
                    let other = self.networks.find(ns, key).map_err(not_found_is_bad)?;
                    if other.driver != "bridge" {
                        return Err(Error::InvalidArgument(format!("container cannot be connected to network {key} and to another one")));
                    }
                    if endpoints.iter().any(|e| e.network_id == other.id) {
                        continue;
                    }
                    endpoints.push(self.new_endpoint(&map, ns, &other, req)?);
                }
                endpoints
            }
        };
        let dir = dir_of(self, &id);
        if let Some(disk) = self.disk(ns) {
            // On the namespace's own disk, reached through the usual path.
            let real = disk.mountpoint.join("containers").join(&id);
            fs::create_dir_all(&real).ctx(|| format!("create {}", real.display()))?;
            std::os::unix::fs::symlink(&real, &dir).ctx(|| format!("link {}", dir.display()))?;
        }
        for d in ["upper", "work", "rootfs"] {
            fs::create_dir_all(dir.join(d)).ctx(|| format!("create {}", dir.join(d).display()))?;
        }
        // wasm guests stay outside user namespaces: wasmtime starts threads before the
        // guest could join one (and a guest makes no system calls of its own).
        let userns = self.userns(ns).filter(|_| host_config.runtime != runtime::WASMTIME);
        if let Some(map) = userns {
            // The upper dir's root is the container's `/`: its root owns it.
            nix::unistd::chown(&dir.join("upper"), Some(nix::unistd::Uid::from_raw(map.base)), Some(nix::unistd::Gid::from_raw(map.base)))
                .ctx(|| "chown the container's root to its user namespace".into())?;
        }
        write_etc_files(&dir, &config, &host_config)?;
        let c = Container {
            id: id.clone(),
            namespace: ns.to_string(),
            name: name.clone(),
            created: Utc::now(),
            image: image_id.clone(),
            path: argv[0].clone(),
            args: argv[1..].to_vec(),
            config,
            host_config,
            state: State::default(),
            mounts,
            ports: vec![],
            restart_count: 0,
            join_network,
            userns,
            endpoints,
            warnings,
        };
        self.save(&c)?;
        map.insert(id.clone(), c.clone());
        drop(map);
        let extra = create_attributes(&c);
        let extra: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.emit_container(&c, "create", &extra);
        Ok(c)
    }

    fn resolve_mounts(
        &self,
        ns: &str,
        map: &HashMap<String, Container>,
        config: &ContainerConfig,
        host: &HostConfig,
        image: &crate::image::ImageConfig,
        layers: &[PathBuf],
    ) -> Result<Vec<MountPoint>> {
        let mut mounts: Vec<MountPoint> = Vec::new();
        let add = |m: MountPoint, mounts: &mut Vec<MountPoint>| {
            mounts.retain(|x| x.destination != m.destination);
            mounts.push(m);
        };
        for from in &host.volumes_from {
            let (name, mode) = match from.rsplit_once(':') {
                Some((n, m)) if m == "ro" || m == "rw" => (n, Some(m)),
                _ => (from.as_str(), None),
            };
            let other = Self::lookup(map, ns, name)?;
            for m in &other.mounts {
                let mut m = m.clone();
                if let Some(mode) = mode {
                    m.rw = mode == "rw";
                }
                m.anonymous = false;
                add(m, &mut mounts);
            }
        }
        let anon: Vec<String> = config.volumes.keys().chain(image.config.volumes.keys()).cloned().collect();
        for dest in anon {
            let explicit = host.binds.iter().any(|b| bind_dest(b) == Some(dest.as_str())) || host.mounts.iter().any(|m| m.target == dest) || host.tmpfs.contains_key(&dest);
            if !mounts.iter().any(|m| m.destination == dest) && !explicit {
                let v = self.create_volume(ns, None, BTreeMap::new())?;
                self.copy_up(ns, &v, layers, &dest)?;
                add(MountPoint { kind: "volume".into(), name: v.name.clone(), source: v.mountpoint.display().to_string(), destination: dest, rw: true, anonymous: true, tmpfs: String::new(), non_recursive: false, beneath: String::new() }, &mut mounts);
            }
        }
        for m in &host.mounts {
            let dest = m.target.clone();
            match m.kind.as_str() {
                "bind" => {
                    // Unlike -v, --mount does not make a missing source (unless asked).
                    if fs::metadata(&m.source).is_err() {
                        if m.bind_options.as_ref().is_some_and(|b| b.create_mountpoint) {
                            fs::create_dir_all(&m.source).ctx(|| format!("create bind source {}", m.source))?;
                        } else {
                            return Err(Error::InvalidArgument(format!("invalid mount config for type \"bind\": bind source path does not exist: {}", m.source)));
                        }
                    }
                    let non_recursive = m.bind_options.as_ref().is_some_and(|b| b.non_recursive);
                    add(MountPoint { kind: "bind".into(), name: String::new(), source: m.source.clone(), destination: dest, rw: !m.read_only, anonymous: false, tmpfs: String::new(), non_recursive, beneath: String::new() }, &mut mounts);
                }
                "volume" => {
                    let named = !m.source.is_empty();
                    let opts = m.volume_options.clone().unwrap_or_default();
                    let (driver, driver_opts) = opts.driver_config.clone().map(|d| (d.name, d.options)).unwrap_or_default();
                    let v = self.make_volume(ns, named.then_some(m.source.as_str()), &driver, &driver_opts, opts.labels.clone())?;
                    if !opts.no_copy && opts.subpath.is_empty() {
                        self.copy_up(ns, &v, layers, &dest)?;
                    }
                    // With the volume's file system mounted, if it has one: the subpath
                    // is looked for there.
                    let (source, beneath) = if opts.subpath.is_empty() {
                        (v.mountpoint.clone(), String::new())
                    } else {
                        self.fill_volume(ns, &v, || {
                            let source = v.mountpoint.join(&opts.subpath);
                            // Docker: the subpath must exist in the volume.
                            let Ok(real) = source.canonicalize() else {
                                return Err(Error::InvalidArgument(format!("cannot access path {}: no such file or directory in volume {}", source.display(), v.name)));
                            };
                            // A symlink in the volume (which its users write) must not lead
                            // to the host's files; the runtime checks again when it mounts.
                            if !real.starts_with(v.mountpoint.canonicalize().unwrap_or(v.mountpoint.clone())) {
                                return Err(Error::InvalidArgument(format!("volume-subpath {}: it leads out of volume {}", opts.subpath, v.name)));
                            }
                            Ok((source, v.mountpoint.display().to_string()))
                        })?
                    };
                    add(MountPoint { kind: "volume".into(), name: v.name.clone(), source: source.display().to_string(), destination: dest, rw: !m.read_only, anonymous: !named, tmpfs: String::new(), non_recursive: false, beneath }, &mut mounts);
                }
                _ => add(MountPoint { kind: "tmpfs".into(), name: String::new(), source: String::new(), destination: dest, rw: !m.read_only, anonymous: false, tmpfs: crate::mounts::mount_tmpfs_data(m), non_recursive: false, beneath: String::new() }, &mut mounts),
            }
        }
        for b in &host.binds {
            let parts: Vec<&str> = b.split(':').collect();
            let (src, dest, mode) = match parts.as_slice() {
                [s, d] => (*s, *d, ""),
                [s, d, m] => (*s, *d, *m),
                _ => return Err(Error::InvalidArgument(format!("invalid volume specification: '{b}'"))),
            };
            if !dest.starts_with('/') || dest == "/" {
                return Err(Error::InvalidArgument(format!("invalid volume specification: '{b}': invalid mount config for type \"bind\": invalid specification: destination can't be '/'")));
            }
            let rw = !mode.split(',').any(|m| m == "ro");
            if src.starts_with('/') {
                // Docker creates a missing bind source directory.
                if fs::metadata(src).is_err() {
                    fs::create_dir_all(src).ctx(|| format!("create bind source {src}"))?;
                }
                add(MountPoint { kind: "bind".into(), name: String::new(), source: src.to_string(), destination: dest.to_string(), rw, anonymous: false, tmpfs: String::new(), non_recursive: false, beneath: String::new() }, &mut mounts);
            } else {
                let v = self.create_volume(ns, Some(src), BTreeMap::new())?;
                self.copy_up(ns, &v, layers, dest)?;
                add(MountPoint { kind: "volume".into(), name: v.name.clone(), source: v.mountpoint.display().to_string(), destination: dest.to_string(), rw, anonymous: false, tmpfs: String::new(), non_recursive: false, beneath: String::new() }, &mut mounts);
            }
        }
        Ok(mounts)
    }

    /// Starts a created or exited container. `Err(NotModified)` if it already runs.
    pub fn start(self: &Arc<Self>, ns: &str, name: &str) -> Result<()> {
        let c = self.container(ns, name)?;
        // The workstation's namespace has no policy: it stays usable.
        self.check_frozen(ns)?;
        match c.state.status {
            Status::Running => return Err(Error::NotModified("container already started".into())),
            Status::Paused => return Err(Error::Conflict("cannot start a paused container, try unpause instead".into())),
            Status::Removing | Status::Dead => return Err(Error::Conflict(format!("container {} is marked for removal and cannot be started", c.id))),
            _ => {}
        }
        if let Err(e) = self.links_ready(&c) {
            // `run --rm` waits for the removal: Docker removes it when it cannot start.
            if c.host_config.auto_remove {
                self.pending_attach.lock().unwrap_or_else(|p| p.into_inner()).remove(&c.id);
                let _ = self.remove_container(ns, &c.id, true, true);
            }
            return Err(e);
        }
        if c.state.stopped_by_user {
            self.update(&c.id, |c| {
                c.state.stopped_by_user = false;
            })?;
        }
        self.launch(&c)
    }

    /// Runs a container's process under a new shim and records it as running.
    fn launch(self: &Arc<Self>, c: &Container) -> Result<()> {
        if !self.launching.lock().unwrap_or_else(|p| p.into_inner()).insert(c.id.clone()) {
            return Err(Error::NotModified("container already started".into()));
        }
        let r = self.launch_now(c);
        self.launching.lock().unwrap_or_else(|p| p.into_inner()).remove(&c.id);
        r
    }

    fn launch_now(self: &Arc<Self>, c: &Container) -> Result<()> {
        if let Err(e) = self.mount_volumes(c) {
            return Err(self.start_failed(c, e.to_string(), 128));
        }
        let spawned = self.spawn_shim(c);
        // Once this start is done: the next spare's exec does not compete with it.
        self.standby.refill();
        match spawned {
            Ok((pid, shim_pid, ports)) => {
                // Recorded on disk below, once the exit is watched.
                let (stopped, running) = self.update_then_save(&c.id, false, |c| {
                    let stopped_by_user = c.state.stopped_by_user;
                    let health = crate::health::Health::on_start(c.config.healthcheck.as_ref(), c.state.health.take());
                    c.state = State { status: Status::Running, pid, shim_pid, started_at: Some(Utc::now()), stopped_by_user, health, ..Default::default() };
                    c.ports = ports;
                    (stopped_by_user, c.clone())
                })?;
                // Docker reports each volume a starting container mounts.
                for m in c.mounts.iter().filter(|m| m.kind == "volume") {
                    let rw = m.rw.to_string();
                    self.emit(&c.namespace, "volume", "mount", &m.name, &[("container", &c.id), ("destination", &m.destination), ("driver", "local"), ("read/write", &rw)]);
                }
                // "start" goes out before the watch on the exit begins, so a "die" never
                // comes first; the watch begins before anything else, as a short command
                // (`run --rm … echo`) may have ended already.
                self.emit_container(c, "start", &[]);
                self.monitor(c.id.clone());
                // Then on disk, before `start` returns (a server killed after that finds
                // it running). Written after the watch began: the write (its rename over
                // the old record starts ext4's writeback, 1-4 ms here) no longer delays
                // the watch of a short command's exit. Whatever the container is now is
                // what is written: it may have exited already.
                self.save_current(&c.id)?;
                // The names were written as it started; containers started alongside it
                // (Compose starts a project's at once) each counted only themselves as
                // running then, so write them again now that this one runs.
                self.refresh_names(&c.namespace);
                self.watch_health(&running);
                if stopped {
                    // A `docker stop` came while a policy restart was starting it.
                    let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
                Ok(())
            }
            Err(msg) => {
                self.unmount_volumes(c);
                let message = format!("failed to create task for container: unable to start container process: {msg}: unknown");
                let code = crate::runtime::linux::start_failure_code(&msg, &c.path, 128);
                Err(self.start_failed(c, message, code))
            }
        }
    }

    /// A start that failed (its volumes could not be mounted, or its process not
    /// started): recorded on the container as dockerd records it, and the error to
    /// return. `run --rm` waits for the removal: Docker removes it then.
    fn start_failed(self: &Arc<Self>, c: &Container, message: String, exit_code: i32) -> Error {
        let recorded = self.update(&c.id, |c| {
            c.state.error = message.clone();
            c.state.exit_code = exit_code;
            if c.state.status == Status::Restarting {
                c.state.status = Status::Exited;
            }
        });
        if let Err(e) = recorded {
            return e;
        }
        // Attach clients waiting for this start get nothing more.
        self.pending_attach.lock().unwrap_or_else(|p| p.into_inner()).remove(&c.id);
        if c.host_config.auto_remove {
            let _ = self.remove_container(&c.namespace, &c.id, true, true);
        }
        Error::Runtime(message)
    }

    fn runtime_spec(&self, c: &Container) -> Result<RuntimeSpec> {
        let dir = dir_of(self, &c.id);
        let rec = self.images.record(&c.image)?;
        let mut lowerdirs = Vec::new();
        for l in rec.layers.iter().rev() {
            lowerdirs.push(self.store.layer_dir(&l.chain_id)?);
        }
        if lowerdirs.is_empty() {
            // overlayfs needs a lower dir: an image from scratch with no layers.
            let empty = self.root.join("layers/empty");
            fs::create_dir_all(&empty).ctx(|| "create empty layer".into())?;
            lowerdirs.push(empty);
        }
        let h = &c.host_config;
        let (module, func) = runtime::wasm::split_entry(&c.path);
        let mut args: Vec<String> = std::iter::once(c.path.clone()).chain(c.args.iter().cloned()).collect();
        if h.init == Some(true) {
            // As Docker runs tini: `/sbin/docker-init -- CMD…`.
            args.splice(0..0, [runtime::INIT_PATH.to_string(), "--".to_string()]);
        }
        let wasm = (h.runtime == runtime::WASMTIME)
            .then(|| WasmSpec { func: func.to_string(), memory: h.memory, cache_dir: self.root.join("wasm-cache"), isolated: self.linux_runtime });
        if wasm.is_none() && !self.linux_runtime {
            return Err(Error::InvalidArgument(format!("{NO_LINUX}: {}", self.linux_missing().unwrap_or("no namespaces"))));
        }
        self.ensure_envelope(c)?;
        // A namespace shared with a running container: its init's, by /proc.
        let running = |id: &str, what: &str| -> Result<Container> {
            let other = self.container(&c.namespace, id)?;
            if !other.state.status.is_live() {
                return Err(Error::Conflict(format!("cannot join {what} of a non running container: {id}")));
            }
            Ok(other)
        };
        let namespace = |mode: &str, kind: &str, what: &str| -> Result<crate::spec::Namespace> {
            Ok(match mode {
                "host" => crate::spec::Namespace::Host,
                m if m.starts_with("container:") => {
                    let other = running(&m["container:".len()..], what)?;
                    crate::spec::Namespace::Join(PathBuf::from(format!("/proc/{}/ns/{kind}", other.state.pid)))
                }
                _ => crate::spec::Namespace::New,
            })
        };
        let pid_ns = namespace(&h.pid_mode, "pid", "PID")?;
        let ipc_ns = namespace(&h.ipc_mode, "ipc", "IPC")?;
        let uts_ns = namespace(&h.uts_mode, "uts", "UTS")?;
        let shm_from = match h.ipc_mode.strip_prefix("container:") {
            Some(id) => Some(self.shareable_shm(&running(id, "IPC")?)?),
            None if h.ipc_mode == "shareable" => Some(self.shareable_shm(c)?),
            None => None,
        };
        // `--network container:X`: X's network namespace, and X's /etc files.
        let net_donor = match h.network_mode.strip_prefix("container:") {
            Some(id) => Some(running(id, "network")?),
            None => None,
        };
        let bind_root: Option<PathBuf> = self.policy(&c.namespace).and_then(|p| p.bind_root().map(std::path::Path::to_path_buf));
        let etc_dir = net_donor.as_ref().map(|o| dir_of(self, &o.id)).unwrap_or_else(|| dir.clone());
        let (masked_paths, readonly_paths) = crate::security::system_paths(h);
        Ok(RuntimeSpec {
            id: c.id.clone(),
            rootfs: dir.join("rootfs"),
            lowerdirs,
            upperdir: dir.join("upper"),
            workdir: dir.join("work"),
            args: if wasm.is_some() { std::iter::once(module.to_string()).chain(c.args.iter().cloned()).collect() } else { args },
            env: {
                // Link variables first: the container's own settings win.
                let mut env = self.link_env(c);
                env.extend(c.config.env.iter().cloned());
                env
            },
            cwd: c.config.working_dir.clone(),
            user: c.config.user.clone(),
            hostname: c.config.hostname.clone(),
            domainname: c.config.domainname.clone(),
            tty: c.config.tty,
            open_stdin: c.config.open_stdin,
            readonly_rootfs: h.readonly_rootfs,
            mounts: {
                let mut mounts: Vec<MountSpec> = c
                    .mounts
                    .iter()
                    .map(|m| MountSpec {
                        source: PathBuf::from(&m.source),
                        destination: m.destination.clone(),
                        readonly: !m.rw,
                        tmpfs: (m.kind == "tmpfs").then(|| m.tmpfs.clone()),
                        non_recursive: m.non_recursive,
                        beneath: if m.beneath.is_empty() {
                            bind_root.as_ref().filter(|root| m.kind == "bind" && std::path::Path::new(&m.source).starts_with(root)).cloned()
                        } else {
                            Some(PathBuf::from(&m.beneath))
                        },
                        device: false,
                    })
                    .collect();
                // `--device`: the host's node at its path (`rw`, see `validate_devices`).
                for d in &h.devices {
                    let inside = if d.path_in_container.is_empty() { d.path_on_host.clone() } else { d.path_in_container.clone() };
                    mounts.push(MountSpec { source: PathBuf::from(&d.path_on_host), destination: inside, readonly: false, tmpfs: None, non_recursive: true, beneath: None, device: true });
                }
                // `--tmpfs` mounts are not in `Mounts` (Docker does not list them there).
                for (path, opts) in &h.tmpfs {
                    mounts.retain(|m| &m.destination != path);
                    let data = crate::mounts::tmpfs_data(opts)?;
                    mounts.push(MountSpec { source: PathBuf::new(), destination: path.clone(), readonly: false, tmpfs: Some(data), non_recursive: false, beneath: None, device: false });
                }
                // Parents before children, so a tmpfs does not hide a bind below it.
                mounts.sort_by_key(|m| m.destination.trim_end_matches('/').matches('/').count());
                mounts
            },
            etc_files: vec![
                (etc_dir.join("hostname"), "/etc/hostname".into()),
                (etc_dir.join("hosts"), "/etc/hosts".into()),
                (etc_dir.join("resolv.conf"), "/etc/resolv.conf".into()),
            ],
            ports: port_specs(&c.config, h)?,
            limits: cgroup_limits(h)?,
            cgroup: cgroup_name(c),
            shim_cgroup: (!h.cgroup_parent.is_empty()).then(|| format!("{}/shims", h.cgroup_parent.trim_matches('/'))),
            network: match &net_donor {
                Some(o) => Some(PathBuf::from(format!("/proc/{}/ns/net", o.state.pid))),
                None => c.join_network.clone().or_else(|| self.policy(&c.namespace).and_then(|p| p.network)),
            },
            // `--network host`: the namespace's host network (a lab session's own network
            // is refused by its policy before it gets here).
            new_network: c.join_network.is_none() && h.network_mode != "host" && net_donor.is_none(),
            dns: (!c.endpoints.is_empty()).then(|| dir.join("dns.json")),
            dns_on_start: c.endpoints.iter().any(|e| self.networks.find(&c.namespace, &e.network_id).is_ok_and(|n| n.has_dns())),
            log_path: dir.join("container.log"),
            log_mode: h.log_config.mode()?,
            output_rate: self.policy(&c.namespace).map_or(0, |p| p.output_rate),
            exit_path: dir.join("exit.json"),
            exit_durable: !h.auto_remove,
            socket_path: shim_socket(self, &c.id),
            security: self.container_security(c)?,
            userns: c.userns,
            init: if h.init == Some(true) { Some(runtime::init_binary()?) } else { None },
            shm_size: h.shm_size,
            sysctls: {
                let mut sysctls = h.sysctls.clone();
                // Docker's defaults for a container with a network of its own: any group
                // may open ICMP sockets, so `ping` works without CAP_NET_RAW, and any
                // user may bind ports below 1024 (a non-root `nginx` or
                // `http.server 80` works as on Docker). Written from inside a user
                // namespace, the range must be ids mapped there.
                if h.network_mode != "host" && c.join_network.is_none() && net_donor.is_none() {
                    let top = c.userns.map_or(2147483647, |m| m.size.saturating_sub(1));
                    sysctls.entry("net.ipv4.ping_group_range".into()).or_insert(format!("0 {top}"));
                    sysctls.entry("net.ipv4.ip_unprivileged_port_start".into()).or_insert("0".into());
                }
                sysctls
            },
            oom_score_adj: h.oom_score_adj,
            masked_paths,
            readonly_paths,
            pid_ns,
            ipc_ns,
            uts_ns,
            shm_from,
            // Docker's default: private on cgroup v2, the host's on v1.
            cgroupns: match h.cgroupns_mode.as_str() {
                "private" => true,
                "host" => false,
                _ => crate::cgroup::is_v2(),
            },
            wasm,
        })
    }

    /// The /dev/shm of a shareable container: a tmpfs on the host (a mount in another
    /// container's mount namespace cannot be bound from outside it), made at its first
    /// start and bound into it and into each container that joins its IPC namespace,
    /// as Docker does. Unmounted when the container is removed.
    fn shareable_shm(&self, c: &Container) -> Result<PathBuf> {
        let path = dir_of(self, &c.id).join("shm");
        fs::create_dir_all(&path).ctx(|| format!("create {}", path.display()))?;
        let mounted = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default().lines().any(|l| l.split(' ').nth(4) == Some(path.to_str().unwrap_or("")));
        if !mounted {
            let size = if c.host_config.shm_size > 0 { c.host_config.shm_size.to_string() } else { "65536k".into() };
            let owner = c.userns.map(|m| format!(",uid={},gid={}", m.base, m.base)).unwrap_or_default();
            use nix::mount::MsFlags;
            nix::mount::mount(Some("shm"), &path, Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC, Some(format!("mode=1777,size={size}{owner}").as_str()))
                .map_err(|e| Error::Runtime(format!("mount the shareable /dev/shm: {e}")))?;
        }
        Ok(path)
    }

    /// What the runtime applies to the container's processes: its capabilities and
    /// its seccomp program (compiled for those capabilities), from its host config.
    pub(super) fn container_security(&self, c: &Container) -> Result<crate::spec::Security> {
        let h = &c.host_config;
        let opts = SecurityOpts::parse(&h.security_opt)?;
        let capabilities = crate::capabilities::container_set(&h.cap_add, &h.cap_drop)?;
        let seccomp = match &opts.seccomp {
            Seccomp::Unconfined => None,
            Seccomp::Default => Some(self.seccomp.program(None, &capabilities)),
            Seccomp::Profile(json) => Some(self.seccomp.program(Some(json), &capabilities)),
        };
        let seccomp = seccomp.transpose().map_err(|e| Error::InvalidArgument(e.to_string()))?;
        Ok(crate::spec::Security {
            capabilities,
            seccomp,
            no_new_privileges: opts.no_new_privileges,
            extra_groups: h.group_add.clone(),
            rlimits: h.ulimits.clone(),
        })
    }

    /// Runs `berth shim DIR` and walks it through the start handshake (see `shim`).
    fn spawn_shim(&self, c: &Container) -> std::result::Result<(i32, i32, Vec<PortSpec>), String> {
        let spec = self.runtime_spec(c).map_err(|e| e.to_string())?;
        let dir = dir_of(self, &c.id);
        // Read once, by the shim started next, and written again by every start: not
        // fsynced (a crash loses nothing the next start needs).
        let bytes = serde_json::to_vec(&spec).map_err(|e| format!("encode spec: {e}"))?;
        fs::write(dir.join("spec.json"), bytes).map_err(|e| format!("write spec: {e}"))?;
        self.wait_for_ending_shim(&c.id);
        let _ = fs::remove_file(&spec.exit_path);
        // Emptied here, written by the shim (its stderr).
        fs::File::create(dir.join("shim.log")).map_err(|e| format!("shim log: {e}"))?;
        let mut child = self.standby.take(&dir).map_err(|e| e.to_string())?;
        let mut out = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut stdin = child.stdin.take().expect("piped stdin");
        // Reap the shim when it ends while we are alive; after a restart, init does.
        let live = self.live_shims.clone();
        live.0.lock().unwrap_or_else(|p| p.into_inner()).insert(child.id() as i32);
        std::thread::spawn(move || {
            let _ = child.wait();
            live.0.lock().unwrap_or_else(|p| p.into_inner()).remove(&(child.id() as i32));
            live.1.notify_all();
        });
        let read_report = |out: &mut BufReader<std::process::ChildStdout>| -> std::result::Result<StartReport, String> {
            let mut line = String::new();
            out.read_line(&mut line).map_err(|e| format!("read shim: {e}"))?;
            if line.is_empty() {
                let log = fs::read_to_string(dir.join("shim.log")).unwrap_or_default();
                return Err(format!("shim exited: {}", log.trim()));
            }
            serde_json::from_str(&line).map_err(|e| format!("bad shim report {line:?}: {e}"))
        };
        // Plugged into its networks before its init runs, so it starts connected: while
        // the container's root is being set up when the clone made its network
        // namespace (a veth pair and its addresses are a good part of a start), else
        // once it is ready.
        std::thread::scope(|s| -> std::result::Result<(), String> {
            let mut report = read_report(&mut out)?;
            let mut early = None;
            if let StartReport::Network { pid } = report {
                early = Some(s.spawn(move || self.plumb(c, pid)));
                report = read_report(&mut out)?;
            }
            let plumbed = early.map(|t| t.join().unwrap_or_else(|_| Err(Error::Runtime("network set-up panicked".into()))));
            match report {
                StartReport::Ready { pid } => plumbed.unwrap_or_else(|| self.plumb(c, pid)).map_err(|e| e.to_string()),
                StartReport::Failed { message } => Err(message),
                StartReport::Network { .. } | StartReport::Started { .. } => Err("shim skipped the handshake".into()),
            }
        })?;
        let pending = self.pending_attach.lock().unwrap_or_else(|p| p.into_inner()).remove(&c.id).unwrap_or_default();
        for p in pending {
            if let Ok(stream) = connect_attach(&spec.socket_path, &p.request) {
                let _ = p.reply.send(stream);
            }
        }
        stdin.write_all(b"go\n").map_err(|e| format!("signal shim: {e}"))?;
        drop(stdin);
        match read_report(&mut out)? {
            StartReport::Started { pid, shim_pid, ports } => Ok((pid, shim_pid, ports)),
            StartReport::Failed { message } => Err(message),
            StartReport::Network { .. } | StartReport::Ready { .. } => Err("shim repeated its handshake".into()),
        }
    }

    /// Waits (a few seconds at most) until the shim of the container's last run is gone:
    /// after it told of the exit it still writes `exit.json` and removes its socket and
    /// cgroup, which would otherwise land in the next run's (a `docker restart` whose
    /// new run lost its socket was seen as exited at once) or in a directory being
    /// deleted. A shim started before a restart of the server is not waited for.
    fn wait_for_ending_shim(&self, id: &str) {
        let Some(pid) = self.ending_shims.lock().unwrap_or_else(|p| p.into_inner()).remove(id) else { return };
        let (live, gone) = &*self.live_shims;
        let live = live.lock().unwrap_or_else(|p| p.into_inner());
        let (live, waited) = gone.wait_timeout_while(live, Duration::from_secs(5), |live| live.contains(&pid)).unwrap_or_else(|p| p.into_inner());
        drop(live);
        if waited.timed_out() {
            tracing::warn!(container = %id, "the shim of its last run (pid {pid}) has not ended; going on");
        }
    }

    /// Watches a running container's shim and records the exit.
    fn monitor(self: &Arc<Self>, id: String) {
        let engine = self.clone();
        std::thread::spawn(move || {
            let sock = shim_socket(&engine, &id);
            let info = wait_shim(&sock).or_else(|| fsutil::read_json::<ExitInfo>(&dir_of(&engine, &id).join("exit.json")).ok().flatten());
            let info = info.unwrap_or(ExitInfo { exit_code: 255, finished_at: Utc::now(), oom_killed: false });
            engine.on_exit(&id, info);
        });
    }

    fn on_exit(self: &Arc<Self>, id: &str, info: ExitInfo) {
        // The exit and the restart decision are one update: a `docker stop` sees
        // either a running container or one already marked Restarting, never a gap.
        let (auto_remove, shim_pid) = self.containers.lock().unwrap_or_else(|p| p.into_inner()).get(id).map_or((false, 0), |c| (c.host_config.auto_remove, c.state.shim_pid));
        if shim_pid > 0 && !auto_remove {
            // Before the exit is visible: a `docker rm -f` waiting for it must find the
            // shim to wait for.
            self.ending_shims.lock().unwrap_or_else(|p| p.into_inner()).insert(id.to_string(), shim_pid);
        }
        let exited = self.update_then_save(id, !auto_remove, |c| {
            let policy = &c.host_config.restart_policy;
            let restart = !c.host_config.auto_remove
                && !c.state.stopped_by_user
                && match policy.name.as_str() {
                    "always" | "unless-stopped" => true,
                    "on-failure" => info.exit_code != 0 && (policy.maximum_retry_count == 0 || (c.restart_count as i64) < policy.maximum_retry_count),
                    _ => false,
                };
            c.state.status = if restart { Status::Restarting } else { Status::Exited };
            c.state.exit_code = info.exit_code;
            c.state.finished_at = Some(info.finished_at);
            c.state.oom_killed = info.oom_killed;
            if let Some(h) = &mut c.state.health {
                h.on_probes_stopped();
            }
            c.state.pid = 0;
            c.state.shim_pid = 0;
            c.ports.clear();
            (c.clone(), restart)
        });
        let (c, restart) = match exited {
            Ok(v) => v,
            Err(err) => {
                // The exit is recorded in memory all the same and told (`docker run`
                // and `wait` wait for it): a session whose student filled its disk
                // has no room left for the state file.
                let Some(c) = self.containers.lock().unwrap_or_else(|p| p.into_inner()).get(id).cloned() else { return };
                tracing::warn!(container = %id, "the exit is not saved: {err}");
                let restart = c.state.status == Status::Restarting;
                (c, restart)
            }
        };
        self.unmount_volumes(&c);
        let code = info.exit_code.to_string();
        self.emit_container(&c, "die", &[("exitCode", &code)]);
        self.refresh_names(&c.namespace);
        if c.host_config.auto_remove {
            let _ = self.remove_container_with(&c.namespace, id, true, true, Files::Later);
            return;
        }
        if !restart {
            return;
        }
        std::thread::sleep(Duration::from_millis(100 * (1 << c.restart_count.min(6))));
        if let Some(net) = self.network_missing(&c.namespace) {
            // Stays Restarting: the namespace's owner starts it once the network is back
            // (see `start_by_restart_policy`).
            tracing::debug!(container = %id, "restart policy: waits for its namespace's network {}", net.display());
            return;
        }
        // A `docker stop` or `rm` during the back-off wins over the policy.
        let go = self.update(id, |c| {
            let go = c.state.status == Status::Restarting && !c.state.stopped_by_user;
            if go {
                c.restart_count += 1;
            } else if c.state.status == Status::Restarting {
                c.state.status = Status::Exited;
            }
            go
        });
        if let Ok(true) = go {
            match self.launch(&c) {
                // Started meanwhile (see `start_by_restart_policy`).
                Ok(()) | Err(Error::NotModified(_)) => {}
                Err(e) => tracing::warn!(container = %id, "restart policy: {e}"),
            }
        }
    }

    /// Reloads containers after a restart: live shims are watched again, containers
    /// whose shim ended meanwhile get their exit code from `exit.json`.
    pub(super) fn recover(self: &Arc<Self>) -> Result<()> {
        sweep_removed(&self.root.join("containers"));
        let rd = fs::read_dir(self.root.join("containers")).ctx(|| "read containers".into())?;
        let mut live = Vec::new();
        {
            let mut map = self.containers.lock().unwrap_or_else(|p| p.into_inner());
            // Hidden ones are removed containers' (see `sweep_removed`).
            for e in rd.flatten().filter(|e| !e.file_name().to_string_lossy().starts_with('.')) {
                let Some(c) = fsutil::read_json::<Container>(&e.path().join("container.json")).ok().flatten() else { continue };
                if c.state.status.is_live() {
                    live.push(c.clone());
                }
                map.insert(c.id.clone(), c);
            }
        }
        for c in &live {
            // Counted as its volumes' user before its exit can be seen.
            if let Err(e) = self.mount_volumes(c) {
                tracing::warn!(container = %c.id, "{e}");
            }
        }
        self.sweep_volume_mounts();
        for c in live {
            self.monitor(c.id.clone());
            // The health state was kept with the container: probes go on from it.
            self.watch_health(&c);
        }
        // Docker starts `always` (and `unless-stopped` not stopped by the user)
        // containers when the daemon starts.
        self.start_by_restart_policy(None);
        Ok(())
    }

    /// The network of its own a namespace's policy gives it, when it is not there (not
    /// made again yet after a reboot): its containers cannot start until it is.
    fn network_missing(&self, ns: &str) -> Option<PathBuf> {
        self.policy(ns).and_then(|p| p.network).filter(|n| !crate::netns::is_live(n))
    }

    /// Starts the containers (of namespace `only`, or all) that Docker would start when
    /// the daemon starts: `always`, `unless-stopped` not stopped by the user, and
    /// restarts the policy had scheduled. A namespace whose policy has a network of its
    /// own waits until that network is there: its owner (a lab session, which makes the
    /// network and mounts its disk when it opens) calls this for it then. After a reboot,
    /// or a lab node's pod made again, the engine opens before the lab does.
    pub fn start_by_restart_policy(self: &Arc<Self>, only: Option<&str>) {
        let to_start: Vec<(String, String)> = {
            let map = self.containers.lock().unwrap_or_else(|p| p.into_inner());
            map.values()
                .filter(|c| only.is_none_or(|ns| c.namespace == ns))
                .filter(|c| !c.state.status.is_live() && c.state.started_at.is_some())
                .filter(|c| !c.state.stopped_by_user)
                // A restart the policy had scheduled when the server went down, too.
                .filter(|c| c.state.status == Status::Restarting || matches!(c.host_config.restart_policy.name.as_str(), "always" | "unless-stopped"))
                .map(|c| (c.namespace.clone(), c.id.clone()))
                .collect()
        };
        for (ns, id) in to_start {
            if let Some(net) = self.network_missing(&ns) {
                tracing::debug!(container = %id, "restart policy: waits for its namespace's network {}", net.display());
                continue;
            }
            match self.start(&ns, &id) {
                // Its own policy restart (the monitor's) got there first.
                Ok(()) | Err(Error::NotModified(_)) => {}
                Err(e) => tracing::warn!(container = %id, "restart policy: {e}"),
            }
        }
    }

    pub fn wait(&self, ns: &str, name: &str, condition: WaitCondition) -> Result<Waiter> {
        let (_, rx) = self.events.subscribe(None);
        let c = self.container(ns, name)?;
        let immediate = match condition {
            WaitCondition::NotRunning if !c.state.status.is_live() => Some(c.state.exit_code),
            _ => None,
        };
        Ok(Waiter { immediate, rx: Some(rx), id: c.id, condition })
    }

    /// Sends a signal to the container's init.
    pub fn kill(&self, ns: &str, name: &str, signal: Option<&str>) -> Result<()> {
        let c = self.container(ns, name)?;
        if !c.state.status.is_live() {
            return Err(Error::Conflict(format!("Cannot kill container: {name}: Container {} is not running", c.id)));
        }
        let sig = container::parse_signal(signal.unwrap_or("SIGKILL"))?;
        let signame = (sig as i32).to_string();
        // As dockerd: a SIGKILL returns once the container is dead, so `kill` then
        // `rm` or `inspect` sees it exited. Subscribed first: the exit may be quick.
        let rx = (sig == Signal::SIGKILL).then(|| self.events.subscribe(None).1);
        self.emit_container(&c, "kill", &[("signal", &signame)]);
        nix::sys::signal::kill(Pid::from_raw(c.state.pid), sig).ctx(|| format!("kill {}", c.state.pid))?;
        if let Some(rx) = rx {
            if c.state.status == Status::Paused {
                // A frozen process takes its SIGKILL once thawed.
                let _ = Cgroup::new(&cgroup_name(&c)).freeze(false);
            }
            if !died(&rx, &c.id, Duration::from_secs(10)) {
                return Err(Error::Runtime(format!("container {} did not die after SIGKILL", c.id)));
            }
        }
        Ok(())
    }

    /// Stops a container: its stop signal, then SIGKILL after `timeout` seconds.
    pub fn stop(&self, ns: &str, name: &str, timeout: Option<i64>) -> Result<()> {
        // Subscribe first: the exit may come right after the state is read.
        let (_, rx) = self.events.subscribe(None);
        let found = self.container(ns, name)?;
        // Mark and read in one update, so an exit racing with us cannot slip between:
        // a container waiting for its policy restart just stays stopped.
        let (c, was_restarting) = self.update(&found.id, |c| {
            let was_restarting = c.state.status == Status::Restarting;
            if c.state.status.is_live() || was_restarting {
                c.state.stopped_by_user = true;
            }
            if was_restarting {
                c.state.status = Status::Exited;
            }
            (c.clone(), was_restarting)
        })?;
        if was_restarting {
            return Ok(());
        }
        if !c.state.status.is_live() {
            return Err(Error::NotModified("container already stopped".into()));
        }
        let sig = container::parse_signal(c.config.stop_signal.as_deref().unwrap_or("SIGTERM"))?;
        let _ = nix::sys::signal::kill(Pid::from_raw(c.state.pid), sig);
        if c.state.status == Status::Paused {
            let _ = Cgroup::new(&cgroup_name(&c)).freeze(false);
        }
        let t = timeout.or(c.config.stop_timeout).unwrap_or(10).max(0) as u64;
        if !died(&rx, &c.id, Duration::from_secs(t)) {
            let _ = nix::sys::signal::kill(Pid::from_raw(c.state.pid), Signal::SIGKILL);
            if !died(&rx, &c.id, Duration::from_secs(30)) {
                return Err(Error::Runtime(format!("container {} did not stop", c.id)));
            }
        }
        self.emit_container(&c, "stop", &[]);
        Ok(())
    }

    pub fn restart(self: &Arc<Self>, ns: &str, name: &str, timeout: Option<i64>) -> Result<()> {
        match self.stop(ns, name, timeout) {
            Ok(()) | Err(Error::NotModified(_)) => {}
            Err(e) => return Err(e),
        }
        self.start(ns, name)
    }

    pub fn pause(&self, ns: &str, name: &str, pause: bool) -> Result<()> {
        let c = self.container(ns, name)?;
        let (want, verb) = if pause { (Status::Running, "pause") } else { (Status::Paused, "unpause") };
        if c.state.status != want {
            return Err(Error::Conflict(if pause {
                if c.state.status == Status::Paused { format!("Container {} is already paused", c.id) } else { format!("Container {} is not running", c.id) }
            } else {
                format!("Container {} is not paused", c.id)
            }));
        }
        Cgroup::new(&cgroup_name(&c)).freeze(pause)?;
        self.update(&c.id, |c| {
            c.state.status = if pause { Status::Paused } else { Status::Running };
            // dockerd stops the probes of a paused container: it shows unhealthy.
            if let Some(h) = c.state.health.as_mut().filter(|_| pause) {
                h.on_probes_stopped();
            }
        })?;
        self.emit_container(&c, verb, &[]);
        Ok(())
    }

    pub fn rename(&self, ns: &str, name: &str, new_name: &str) -> Result<()> {
        let new_name = new_name.trim_start_matches('/');
        container::validate_name(new_name)?;
        let mut map = self.containers.lock().unwrap_or_else(|p| p.into_inner());
        let id = Self::lookup(&map, ns, name)?.id.clone();
        if let Some(other) = map.values().find(|c| c.namespace == ns && c.name == new_name) {
            return Err(Error::Conflict(format!(
                "Error when allocating new name: Conflict. The container name \"/{new_name}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                other.id
            )));
        }
        let c = map.get_mut(&id).ok_or_else(|| no_such(name))?;
        let old = std::mem::replace(&mut c.name, new_name.to_string());
        self.save(c)?;
        let c = c.clone();
        drop(map);
        self.emit_container(&c, "rename", &[("oldName", &format!("/{old}"))]);
        self.refresh_names(ns);
        Ok(())
    }

    /// Removes a container; `force` kills a running one, `volumes` removes its
    /// anonymous volumes.
    pub fn remove_container(&self, ns: &str, name: &str, force: bool, volumes: bool) -> Result<()> {
        self.remove_container_with(ns, name, force, volumes, Files::Now)
    }

    fn remove_container_with(&self, ns: &str, name: &str, force: bool, volumes: bool, files: Files) -> Result<()> {
        let mut c = self.container(ns, name)?;
        let status = c.state.status;
        if (status.is_live() || status == Status::Restarting) && !force {
            // Docker's words (a container waiting for its policy restart counts as running).
            return Err(Error::Conflict(match status {
                Status::Paused => format!("cannot remove container \"/{}\": container is paused and must be unpaused first", c.name),
                s => format!("cannot remove container \"/{}\": container is {}: stop the container before removing or force remove", c.name, s.as_str()),
            }));
        }
        if status == Status::Restarting {
            // Its pending restart must not bring it back while it is removed.
            c = self.update(&c.id, |c| {
                c.state.stopped_by_user = true;
                if c.state.status == Status::Restarting {
                    c.state.status = Status::Exited;
                }
                c.clone()
            })?;
        }
        if c.state.status.is_live() {
            let (_, rx) = self.events.subscribe(None);
            if c.state.status == Status::Paused {
                let _ = Cgroup::new(&cgroup_name(&c)).freeze(false);
            }
            let _ = nix::sys::signal::kill(Pid::from_raw(c.state.pid), Signal::SIGKILL);
            let end = std::time::Instant::now() + Duration::from_secs(30);
            loop {
                if self.container(ns, &c.id).map(|c| !c.state.status.is_live()).unwrap_or(true) {
                    break;
                }
                match end.checked_duration_since(std::time::Instant::now()) {
                    Some(left) => { let _ = rx.recv_timeout(left.min(Duration::from_millis(200))); }
                    None => return Err(Error::Runtime(format!("could not kill container {}", c.id))),
                }
            }
        }
        {
            let mut map = self.containers.lock().unwrap_or_else(|p| p.into_inner());
            self.pending_attach.lock().unwrap_or_else(|p| p.into_inner()).remove(&c.id);
            if map.remove(&c.id).is_none() {
                // Removed meanwhile (e.g. --rm raced with `rm -f`).
                return Ok(());
            }
        }
        // Its last shim may still be writing in the directory deleted below.
        self.wait_for_ending_shim(&c.id);
        // Its shim removes the container's cgroup as it ends, once; a process still
        // leaving it at that moment (EBUSY) left an empty cgroup behind for good: an
        // `exec`'s helper (outside the container's PID namespace, so not killed with
        // it) that has not seen its process die yet. Whatever is left goes here.
        if let Err(e) = Cgroup::new(&cgroup_name(&c)).remove_tree() {
            tracing::warn!(container = %c.id, "{e}");
        }
        let dir = dir_of(self, &c.id);
        let _ = nix::mount::umount2(&dir.join("rootfs"), nix::mount::MntFlags::MNT_DETACH);
        // A shareable container's /dev/shm (see `shareable_shm`).
        let _ = nix::mount::umount2(&dir.join("shm"), nix::mount::MntFlags::MNT_DETACH);
        let _ = fs::remove_file(shim_socket(self, &c.id));
        // On the namespace's disk the directory is there, reached through a link.
        let real = fs::read_link(&dir).ok();
        let hidden = match files {
            Files::Later => hide_removed(real.as_ref().unwrap_or(&dir)).ok(),
            Files::Now => None,
        };
        if hidden.is_none() {
            let files = real.as_ref().unwrap_or(&dir);
            fsutil::remove_tree(files).ctx(|| format!("remove {}", files.display()))?;
        }
        if real.is_some() {
            fs::remove_file(&dir).ctx(|| format!("remove {}", dir.display()))?;
        }
        if let Some(hidden) = hidden {
            crate::background::spawn(move || {
                if let Err(e) = fs::remove_dir_all(&hidden) {
                    tracing::warn!("remove {}: {e}", hidden.display());
                }
            });
        }
        if volumes {
            for m in c.mounts.iter().filter(|m| m.anonymous) {
                let _ = self.volumes.remove(ns, &m.name);
            }
        }
        self.emit_container(&c, "destroy", &[]);
        Ok(())
    }

    /// Attaches to a container's streams. For a container not running yet the stream
    /// arrives when it starts (the CLI attaches before `start`).
    pub fn attach(&self, ns: &str, name: &str, request: ShimRequest) -> Result<Receiver<AttachStream>> {
        let c = self.container(ns, name)?;
        let (tx, rx) = std::sync::mpsc::channel();
        if c.state.status.is_live() {
            let stream = connect_attach(&shim_socket(self, &c.id), &request)?;
            let _ = tx.send(stream);
        } else {
            self.pending_attach
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(c.id.clone())
                .or_default()
                .push(PendingAttach { request, reply: tx });
        }
        self.emit_container(&c, "attach", &[]);
        Ok(rx)
    }

    /// Reports that an attached client went away while the container kept running.
    pub fn detached(&self, ns: &str, id: &str) {
        if let Ok(c) = self.container(ns, id) {
            // The shim writes exit.json before it closes attach streams, so a stream
            // that ended because the container exited is never taken for a detach.
            let exited = dir_of(self, &c.id).join("exit.json").exists();
            if c.state.status.is_live() && !exited {
                self.emit_container(&c, "detach", &[]);
            }
        }
    }

    pub fn resize(&self, ns: &str, name: &str, height: u16, width: u16) -> Result<()> {
        let c = self.container(ns, name)?;
        if !c.state.status.is_live() {
            return Err(Error::Conflict(format!("Container {} is not running", c.id)));
        }
        let mut s = UnixStream::connect(shim_socket(self, &c.id)).ctx(|| "connect shim".into())?;
        let line = serde_json::to_string(&ShimRequest::Resize { height, width }).unwrap_or_default();
        writeln!(s, "{line}").ctx(|| "resize".into())?;
        let mut ack = String::new();
        let _ = BufReader::new(s).read_line(&mut ack);
        Ok(())
    }

    /// Where a container's log is (rotated files beside it: json-file and local keep
    /// the same files); None for a driver that keeps no file (`none`).
    pub fn log_path(&self, ns: &str, name: &str) -> Result<Option<PathBuf>> {
        let c = self.container(ns, name)?;
        Ok((c.host_config.log_config.driver() != crate::log_config::NONE).then(|| dir_of(self, &c.id).join("container.log")))
    }

    /// `docker logs`: the entries that pass the filter, across rotated files, and a
    /// follower for `-f`. Docker's error for a driver that cannot be read.
    pub fn logs(&self, ns: &str, name: &str, filter: &crate::logs::LogFilter) -> Result<(Vec<crate::logs::LogEntry>, crate::logs::Follower)> {
        let Some(path) = self.log_path(ns, name)? else {
            return Err(Error::NotImplemented("configured logging driver does not support reading".into()));
        };
        crate::logs::read(&path, filter)
    }

    /// Makes the envelope of the container's namespace when it is missing (after a
    /// reboot of the host, before the lab opens the session again): a container must
    /// never start in a parent without the session's limits.
    fn ensure_envelope(&self, c: &Container) -> Result<()> {
        let Some(env) = self.policy(&c.namespace).and_then(|p| p.envelope) else { return Ok(()) };
        if env.cgroup == c.host_config.cgroup_parent.trim_matches('/') && !env.exists() {
            env.ensure()?;
        }
        Ok(())
    }

    /// `docker top`: the container's processes as the host's `ps` shows them with
    /// `ps_args` (dockerd's `-ef` when empty); see [`crate::top`].
    pub fn top(&self, ns: &str, name: &str, ps_args: &str) -> Result<crate::top::Table> {
        crate::top::validate_args(ps_args)?;
        let c = self.container(ns, name)?;
        if !c.state.status.is_live() {
            return Err(Error::Conflict(format!("Container {} is not running", c.id)));
        }
        let (pids, _) = container_processes(&c);
        crate::top::run(ps_args, &pids)
    }

    /// (memory usage, memory limit, cpu ns, pids) for `stats`.
    pub fn stats(&self, ns: &str, name: &str) -> Result<(u64, u64, u64, u64)> {
        let c = self.container(ns, name)?;
        let cg = Cgroup::new(&cgroup_name(&c));
        // Without the exec helpers (see `container_processes`), as dockerd counts.
        let helpers = if c.state.status.is_live() { container_processes(&c).1 } else { 0 };
        Ok((cg.memory_usage(), cg.memory_limit(), cg.cpu_usage_ns(), cg.pids_current().saturating_sub(helpers)))
    }

    /// Files changed in the container layer: (path, kind) with kind 0 modified,
    /// 1 added, 2 deleted, as `docker diff` reports them.
    pub fn diff(&self, ns: &str, name: &str) -> Result<Vec<(String, u8)>> {
        let c = self.container(ns, name)?;
        let upper = dir_of(self, &c.id).join("upper");
        let rec = self.images.record(&c.image)?;
        let lowers: Vec<PathBuf> = rec.layers.iter().rev().filter_map(|l| self.store.layer_dir(&l.chain_id).ok()).collect();
        let mut out = Vec::new();
        let mut stack = vec![PathBuf::from("/")];
        while let Some(rel) = stack.pop() {
            let Ok(rd) = fs::read_dir(upper.join(rel.strip_prefix("/").unwrap_or(&rel))) else { continue };
            for e in rd.flatten() {
                let path = rel.join(e.file_name());
                let relp = path.strip_prefix("/").unwrap_or(&path).to_path_buf();
                let md = match e.path().symlink_metadata() { Ok(m) => m, Err(_) => continue };
                use std::os::unix::fs::FileTypeExt;
                let rel_s = relp.to_string_lossy();
                if md.is_file() && md.len() == 0 && super::commit::MOUNT_STANDINS.contains(&rel_s.as_ref()) {
                    // The mount points of /etc/hosts & co: Docker's are outside the
                    // layer, so they are not the container's changes.
                    continue;
                }
                if md.is_dir() && only_standins(&e.path(), &relp) {
                    // `/etc`, copied up only to hold those mount points.
                    continue;
                }
                let in_lower = lowers.iter().any(|l| l.join(&relp).symlink_metadata().is_ok());
                let kind = if md.file_type().is_char_device() && md.len() == 0 { 2 } else if in_lower { 0 } else { 1 };
                out.push((path.display().to_string(), kind));
                if md.is_dir() {
                    stack.push(path);
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

fn connect_attach(sock: &std::path::Path, request: &ShimRequest) -> Result<UnixStream> {
    let mut s = UnixStream::connect(sock).ctx(|| format!("connect {}", sock.display()))?;
    let line = serde_json::to_string(request).ctx(|| "encode attach".into())?;
    writeln!(s, "{line}").ctx(|| "send attach".into())?;
    // Read the one-line ack byte by byte so no output after it is swallowed.
    let mut ack = Vec::new();
    let mut b = [0u8; 1];
    while ack.len() < 64 {
        use std::io::Read;
        match s.read(&mut b) {
            Ok(1) if b[0] == b'\n' => break,
            Ok(1) => ack.push(b[0]),
            _ => return Err(Error::Conflict("container exited before attach".into())),
        }
    }
    if ack != b"ok" {
        return Err(Error::Runtime(format!("attach refused: {}", String::from_utf8_lossy(&ack))));
    }
    Ok(s)
}

/// Blocks until the shim reports the exit; None if the shim is gone.
fn wait_shim(sock: &std::path::Path) -> Option<ExitInfo> {
    let mut s = UnixStream::connect(sock).ok()?;
    writeln!(s, "{}", serde_json::to_string(&ShimRequest::Wait).ok()?).ok()?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).ok()?;
    serde_json::from_str(&line).ok()
}

/// The limits of a container's cgroup, from its settings.
pub(super) fn cgroup_limits(h: &HostConfig) -> Result<Limits> {
    let memory = if h.runtime == runtime::WASMTIME && h.memory > 0 {
        // `--memory` caps a wasm guest's linear memory exactly; the process around it
        // (wasmtime, its code) gets an allowance on top in the cgroup.
        h.memory + runtime::wasm::RUNTIME_ALLOWANCE
    } else {
        h.memory
    };
    let mut limits = crate::resources::limits(h, Limits { memory, nano_cpus: h.nano_cpus, pids: h.pids_limit.unwrap_or(0).max(0), ..Default::default() })?;
    if limits.memory_swap > 0 {
        // Memory plus swap: the same allowance on top.
        limits.memory_swap += memory - h.memory;
    }
    Ok(limits)
}

pub(crate) fn cgroup_name(c: &Container) -> String {
    crate::cgroup::container_name(&c.host_config.cgroup_parent, &c.id)
}

/// What a `create` event tells beyond name and image (Berth's additions, for lesson
/// checks): whether it has a TTY, its port bindings, network, links and mounts.
fn create_attributes(c: &Container) -> Vec<(&'static str, String)> {
    let h = &c.host_config;
    let mut ports: Vec<String> = Vec::new();
    for (k, bindings) in &h.port_bindings {
        for b in bindings {
            ports.push(format!("{}:{k}", b.host_port));
        }
    }
    let volumes: Vec<String> = c.mounts.iter().map(|m| format!("{}:{}", if m.kind == "volume" { &m.name } else { &m.source }, m.destination)).collect();
    vec![
        ("tty", c.config.tty.to_string()),
        ("ports", ports.join(",")),
        ("network", h.network_mode.clone()),
        ("links", h.links.join(",")),
        ("volumes", volumes.join(",")),
    ]
}

fn bind_dest(b: &str) -> Option<&str> {
    b.split(':').nth(1)
}

/// The checks of the settings `docker update` may also change: memory, CPUs and
/// restart policy.
pub(super) fn validate_limits(h: &HostConfig) -> Result<()> {
    if h.memory < 0 {
        return Err(Error::InvalidArgument("invalid memory limit: must be positive".into()));
    }
    if h.memory > 0 && h.memory < 6 * 1024 * 1024 {
        return Err(Error::InvalidArgument("Minimum memory limit allowed is 6MB".into()));
    }
    if h.nano_cpus < 0 {
        return Err(Error::InvalidArgument("invalid CPU limit: must be positive".into()));
    }
    let ncpu = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as i64;
    if h.nano_cpus > ncpu * 1_000_000_000 {
        return Err(Error::InvalidArgument(format!(
            "range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
        )));
    }
    match h.restart_policy.name.as_str() {
        "" | "no" | "always" | "unless-stopped" | "on-failure" => {}
        other => return Err(Error::InvalidArgument(format!("invalid restart policy '{other}'"))),
    }
    Ok(())
}

fn validate_host_config(h: &HostConfig) -> Result<()> {
    validate_limits(h)?;
    if h.auto_remove && !matches!(h.restart_policy.name.as_str(), "" | "no") {
        return Err(Error::InvalidArgument("can't create 'AutoRemove' container with restart policy".into()));
    }
    if !h.cgroup_parent.is_empty() {
        crate::cgroup::validate_parent(&h.cgroup_parent)?;
    }
    if h.shm_size < 0 {
        return Err(Error::InvalidArgument("SHM size can not be less than 0".into()));
    }
    if !(-1000..=1000).contains(&h.oom_score_adj) {
        return Err(Error::InvalidArgument(format!("Invalid value {}, range for oom score adj is [-1000, 1000]", h.oom_score_adj)));
    }
    if h.init == Some(true) {
        if h.runtime == runtime::WASMTIME {
            return Err(Error::InvalidArgument("--init is not supported by Berth for WebAssembly containers".into()));
        }
        runtime::init_binary()?;
    }
    crate::mounts::validate(h)?;
    crate::mounts::validate_devices(h)?;
    crate::etc_files::validate(h)?;
    crate::sysctl::validate(h)?;
    crate::security::validate(h)
}

/// Host port bindings for a container: `-p` bindings, plus every exposed port on a
/// free host port with `-P`.
fn port_specs(config: &ContainerConfig, h: &HostConfig) -> Result<Vec<PortSpec>> {
    let mut out = Vec::new();
    let parse_key = |k: &str| -> Result<(u16, String)> {
        let (p, proto) = k.split_once('/').unwrap_or((k, "tcp"));
        let port = p.parse::<u16>().map_err(|_| Error::InvalidArgument(format!("invalid port specification: \"{k}\"")))?;
        Ok((port, proto.to_string()))
    };
    for (k, bindings) in &h.port_bindings {
        let (cport, proto) = parse_key(k)?;
        for b in bindings {
            let host_port = if b.host_port.is_empty() { 0 } else { b.host_port.parse::<u16>().map_err(|_| Error::InvalidArgument(format!("invalid port specification: \"{}\"", b.host_port)))? };
            out.push(PortSpec { host_ip: b.host_ip.clone(), host_port, container_port: cport, proto: proto.clone() });
        }
    }
    if h.publish_all_ports {
        for k in config.exposed_ports.keys() {
            let (cport, proto) = parse_key(k)?;
            if !out.iter().any(|p| p.container_port == cport && p.proto == proto) {
                out.push(PortSpec { host_ip: String::new(), host_port: 0, container_port: cport, proto });
            }
        }
    }
    Ok(out)
}

/// Whether the upper-dir directory `dir` (at `rel` in the root) holds nothing but
/// the runtime's mount points (see `commit::MOUNT_STANDINS`).
fn only_standins(dir: &std::path::Path, rel: &std::path::Path) -> bool {
    let Ok(rd) = fs::read_dir(dir) else { return false };
    let mut any = false;
    for e in rd.flatten() {
        let child = rel.join(e.file_name());
        if !super::commit::MOUNT_STANDINS.contains(&child.to_string_lossy().as_ref()) {
            return false;
        }
        any = true;
    }
    any
}

/// Whether container `id` dies (its `die` event) within `d`.
fn died(rx: &Receiver<crate::events::Event>, id: &str, d: Duration) -> bool {
    let end = std::time::Instant::now() + d;
    while let Some(left) = end.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(e) if e.id == id && e.action == "die" => return true,
            Ok(_) => continue,
            Err(_) => return false,
        }
    }
    false
}

/// `--pid`, `--ipc`, `--network` `container:X` and `--uts host`: Docker's conflicts
/// checked, X resolved to its id (as Docker records it) and, sharing X's network, X's
/// host name taken, as in Docker.
fn share_namespaces(map: &HashMap<String, Container>, ns: &str, config: &mut ContainerConfig, h: &mut HostConfig) -> Result<()> {
    let conflict = |what: &str| Error::InvalidArgument(format!("conflicting options: {what}"));
    if h.uts_mode == "host" && !config.hostname.is_empty() {
        return Err(conflict("hostname and the UTS mode"));
    }
    if h.network_mode.starts_with("container:") {
        if !config.hostname.is_empty() {
            return Err(conflict("hostname and the network mode"));
        }
        if !h.links.is_empty() {
            return Err(conflict("container type network can't be used with links. This would result in undefined behavior"));
        }
        if !h.dns.is_empty() || !h.dns_search.is_empty() || !h.dns_options.is_empty() {
            return Err(conflict("dns and the network mode"));
        }
        if !h.extra_hosts.is_empty() {
            return Err(conflict("custom host-to-IP mapping and the network mode"));
        }
        if !h.port_bindings.is_empty() || h.publish_all_ports {
            return Err(conflict("port publishing and the container type network mode"));
        }
        if !config.exposed_ports.is_empty() {
            return Err(conflict("port exposing and the container type network mode"));
        }
    }
    for (kind, mode) in [("pid", &mut h.pid_mode), ("ipc", &mut h.ipc_mode), ("net", &mut h.network_mode)] {
        let Some(name) = mode.strip_prefix("container:") else { continue };
        let other = Engine::lookup(map, ns, name).map_err(|e| match e {
            Error::NotFound(m) => Error::InvalidArgument(m),
            e => e,
        })?;
        if kind == "ipc" && other.host_config.ipc_mode != "shareable" {
            return Err(Error::InvalidArgument("non-shareable IPC (hint: use IpcMode:shareable for the donor container)".into()));
        }
        if kind == "net" {
            config.hostname = other.config.hostname.clone();
            config.domainname = other.config.domainname.clone();
        }
        *mode = format!("container:{}", other.id);
    }
    if h.uts_mode == "host" {
        config.hostname = nix::unistd::gethostname().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    }
    Ok(())
}

/// The container's processes (host pids), and how many others its cgroup holds: an
/// `exec`'s helper (`berth nsexec`, the parent of what it runs) waits there, outside
/// the container's PID namespace. It is not one of the container's processes (runc
/// leaves none behind), so `top` and `stats` leave it out.
fn container_processes(c: &Container) -> (Vec<u32>, u64) {
    let mut pids: Vec<u32> = Cgroup::new(&cgroup_name(c)).pids().into_iter().map(|p| p as u32).collect();
    let pid_ns = |pid: u32| fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let all = pids.len();
    if let Some(own) = pid_ns(c.state.pid as u32) {
        pids.retain(|p| pid_ns(*p).is_none_or(|ns| ns == own));
    }
    let others = (all - pids.len()) as u64;
    (pids, others)
}

fn write_etc_files(dir: &std::path::Path, config: &ContainerConfig, h: &HostConfig) -> Result<()> {
    use crate::etc_files;
    fs::write(dir.join("hostname"), format!("{}\n", config.hostname)).ctx(|| "write hostname".into())?;
    // Until a start gives it its addresses (see `network_ops::plumb`).
    fs::write(dir.join("hosts"), etc_files::hosts(config, h, "127.0.0.1", "")).ctx(|| "write hosts".into())?;
    fs::write(dir.join("resolv.conf"), etc_files::resolv_conf(h, false)).ctx(|| "write resolv.conf".into())?;
    Ok(())
}
