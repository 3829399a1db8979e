//! The `Engine` facade: one per state root, shared by every API endpoint and session.
//! Operations are grouped by concept in the submodules; each is synchronous (callers
//! in async code use `spawn_blocking`).

mod archive_ops;
mod commit;
mod container_ops;
mod exec;
mod health;
mod system_df;
mod update;
mod image_ops;
mod network_ops;
mod standby;
mod volume_ops;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use archive_ops::{cp_extract_main, ArchiveReader};
pub use commit::CommitOptions;
pub use container_ops::{AttachStream, CreateRequest, WaitCondition, Waiter};
pub use exec::{nsexec_main, ExecConfig, ExecIo, ExecRecord};
pub use image_ops::{ImageSummary, RemovedImages};
pub use network_ops::{EndpointRequest, NetworkCreate};
pub use system_df::{ContainerSize, DiskUsage, ImageUsage, VolumeUsage};

use crate::container::Container;
use crate::fsutil;
use crate::policy::Policy;
use crate::error::{Context, Error, Result};
use crate::events::{Event, Events};
use crate::image::Images;
use crate::store::Store;
use crate::volume::Volumes;

pub struct EngineOptions {
    pub root: PathBuf,
    /// The `berth` binary, run as `berth shim DIR` and `berth nsexec`.
    pub helper_exe: PathBuf,
    /// The static busybox for the seed image.
    pub busybox: PathBuf,
    /// Registries (`HOST[:PORT]`) reached over plain HTTP besides loopback ones.
    pub insecure_registries: Vec<String>,
    /// Docker's `registry-mirrors`: base URLs (`http://127.0.0.1:5000`) tried in turn
    /// before Docker Hub when pulling a `docker.io` image.
    pub registry_mirrors: Vec<String>,
}

pub struct Engine {
    root: PathBuf,
    helper_exe: PathBuf,
    /// A shim started ahead of the next start (see `standby`).
    standby: std::sync::Arc<standby::Standby>,
    busybox: PathBuf,
    pub(crate) insecure_registries: Vec<String>,
    /// `EngineOptions::registry_mirrors`; `berth serve` sets it once its registry listens.
    registry_mirrors: std::sync::RwLock<Vec<String>>,
    /// What lab sessions' registry requests may reach; `berth serve` sets it once its
    /// registry listens.
    lab_guard: std::sync::RwLock<crate::registry::guard::Guard>,
    pub(crate) store: Store,
    pub(crate) images: Images,
    pub(crate) volumes: Volumes,
    /// Which running containers use each volume whose options mount a file system.
    volume_mounts: crate::volume_mount::Mounts,
    pub(crate) networks: crate::network::Networks,
    events: Events,
    /// Every container of every namespace, by id. The lock also serialises changes to
    /// names and tags, so checks and writes cannot interleave.
    containers: Mutex<HashMap<String, Container>>,
    /// Attach requests waiting for a container to start (`docker run`, `start -a`).
    pending_attach: Mutex<HashMap<String, Vec<container_ops::PendingAttach>>>,
    /// Containers whose shim is being started now: a policy restart and a start asked
    /// for at the same moment (a lab session reopening after a reboot) launch one.
    launching: Mutex<std::collections::HashSet<String>>,
    /// The shim of each container whose exit was recorded, by container id: it still
    /// tidies up after telling (writes `exit.json`, removes its socket and cgroup, which
    /// have the same names in the container's next run), so the next start, and a
    /// removal of the container's files, wait for it to be gone (see
    /// `wait_for_ending_shim`).
    ending_shims: Mutex<HashMap<String, i32>>,
    /// The shims this server started that have not been reaped yet, by pid: a pid
    /// stays ours until then, so waiting on one cannot wait on a stranger that got
    /// the same pid later.
    live_shims: Arc<(Mutex<std::collections::HashSet<i32>>, std::sync::Condvar)>,
    execs: Mutex<HashMap<String, ExecRecord>>,
    /// The pty master of each running exec with a TTY, for resize.
    exec_ttys: Mutex<HashMap<String, Arc<std::os::fd::OwnedFd>>>,
    /// Serialises image metadata changes (tags, namespace indexes).
    image_lock: Mutex<()>,
    /// Build steps being made now, which other builds of the same step wait for.
    pub(crate) build_steps: crate::build::cache::InFlight,
    /// The seed images made in this run, by reference (see `seed_images`).
    seeded: Mutex<HashMap<&'static str, String>>,
    /// Network homes whose uplink was checked in this run (see `network::uplink`).
    uplinks: Mutex<std::collections::HashSet<PathBuf>>,
    /// Namespace policies read from `namespaces/<ns>/policy.json`, by namespace.
    policies: Mutex<HashMap<String, Option<Policy>>>,
    /// Namespace disks read from `namespaces/<ns>/disk.json`, by namespace.
    disks: Mutex<HashMap<String, Option<crate::disk::Disk>>>,
    /// Whether Linux containers can run here (see `runtime::probe_linux`); without
    /// them only wasm images run, in the shim's own namespaces.
    pub(crate) linux_runtime: bool,
    /// Why Linux containers cannot run here, when they cannot.
    linux_missing: Option<String>,
    /// Compiled seccomp programs (`<root>/seccomp/`).
    pub(crate) seccomp: crate::seccomp::Compiler,
    /// Id ranges of the namespaces whose containers run in a user namespace.
    userns: crate::userns::Allocator,
    /// Why lab sessions cannot get user namespaces here, when they cannot.
    userns_missing: Option<String>,
}

impl Engine {
    /// Opens (or creates) the state root, recovers containers whose shims survived a
    /// restart, and seeds the default namespace's images.
    pub fn open(opts: EngineOptions) -> Result<Arc<Engine>> {
        let root = opts.root;
        let linux_missing = crate::runtime::probe_linux().err();
        if let Some(why) = &linux_missing {
            tracing::warn!("{}: {why}; only WebAssembly images will run", crate::runtime::NO_LINUX);
        }
        for d in ["containers", "run", "layers"] {
            std::fs::create_dir_all(root.join(d)).ctx(|| format!("create {}", root.join(d).display()))?;
        }
        let userns_missing = match &linux_missing {
            Some(_) => Some("no Linux containers".to_string()),
            None => crate::userns::probe(&root.join("layers")).err(),
        };
        if let Some(why) = &userns_missing {
            tracing::warn!("user namespaces are not available ({why}): lab containers will run as the host's root");
        }
        let engine = Arc::new(Engine {
            store: Store::open(&root)?,
            images: Images::open(&root)?,
            volumes: Volumes::open(&root),
            volume_mounts: Default::default(),
            networks: crate::network::Networks::open(&root),
            events: Events::default(),
            containers: Mutex::new(HashMap::new()),
            pending_attach: Mutex::new(HashMap::new()),
            launching: Mutex::new(Default::default()),
            ending_shims: Mutex::new(HashMap::new()),
            live_shims: Default::default(),
            execs: Mutex::new(HashMap::new()),
            exec_ttys: Mutex::new(HashMap::new()),
            image_lock: Mutex::new(()),
            seeded: Mutex::new(HashMap::new()),
            build_steps: Default::default(),
            policies: Mutex::new(HashMap::new()),
            disks: Mutex::new(HashMap::new()),
            uplinks: Mutex::new(Default::default()),
            standby: standby::Standby::new(opts.helper_exe.clone(), root.clone()),
            helper_exe: opts.helper_exe,
            busybox: opts.busybox,
            insecure_registries: opts.insecure_registries,
            registry_mirrors: std::sync::RwLock::new(opts.registry_mirrors),
            lab_guard: Default::default(),
            linux_runtime: linux_missing.is_none(),
            linux_missing,
            seccomp: crate::seccomp::Compiler::new(root.join("seccomp")),
            userns: crate::userns::Allocator::new(&root),
            userns_missing,
            root,
        });
        // Disks first: recovered containers (and restarts) write to them.
        engine.mount_disks();
        engine.recover()?;
        if engine.linux_runtime {
            engine.standby.refill();
        }
        Ok(engine)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Why this host cannot run Linux containers (None: it can).
    pub fn linux_missing(&self) -> Option<&str> {
        self.linux_missing.as_deref()
    }

    /// Why lab sessions run without user namespaces here (None: they get them).
    pub fn userns_missing(&self) -> Option<&str> {
        self.userns_missing.as_deref()
    }

    /// Gives `namespaces` (a lab session's) one id range: their containers created from
    /// now on run in a user namespace with it. None where the host cannot (see
    /// [`Engine::userns_missing`]).
    pub fn assign_userns(&self, namespaces: &[&str]) -> Result<Option<crate::userns::IdMap>> {
        if self.userns_missing.is_some() {
            return Ok(None);
        }
        self.userns.assign(namespaces).map(Some)
    }

    /// The id range of `ns`'s containers, if they run in a user namespace.
    pub fn userns(&self, ns: &str) -> Option<crate::userns::IdMap> {
        self.userns.get(ns)
    }

    pub fn events(&self) -> &Events {
        &self.events
    }

    fn policy_path(&self, ns: &str) -> PathBuf {
        self.root.join("namespaces").join(ns).join("policy.json")
    }

    /// The namespace's policy (a lab session's limits), if it has one.
    pub fn policy(&self, ns: &str) -> Option<Policy> {
        let mut cache = self.policies.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = cache.get(ns) {
            return p.clone();
        }
        let p: Option<Policy> = fsutil::read_json(&self.policy_path(ns)).ok().flatten();
        cache.insert(ns.to_string(), p.clone());
        p
    }

    /// Sets (or with None, lifts) a namespace's policy; it is kept on disk, so
    /// containers restarted before the lab server is back are still held to it.
    /// Its envelope's cgroup is made (its limits written again) now; an envelope the
    /// policy no longer has is removed with whatever still runs in it.
    pub fn set_policy(&self, ns: &str, policy: Option<Policy>) -> Result<()> {
        let old = self.policy(ns).and_then(|p| p.envelope);
        let new = policy.as_ref().and_then(|p| p.envelope.clone());
        if let Some(env) = &new {
            if self.linux_runtime {
                env.ensure()?;
            }
        }
        if let Some(env) = old.filter(|o| new.as_ref().is_none_or(|n| n.cgroup != o.cgroup)) {
            env.remove()?;
        }
        let path = self.policy_path(ns);
        match &policy {
            Some(p) => fsutil::write_json(&path, p)?,
            None => {
                let _ = std::fs::remove_file(&path);
            }
        }
        self.policies.lock().unwrap_or_else(|p| p.into_inner()).insert(ns.to_string(), policy);
        Ok(())
    }

    /// Freezes a namespace that has a policy (`why`: the message its refusals give) or
    /// thaws it (None). Does nothing to a namespace without a policy.
    pub fn set_frozen(&self, ns: &str, why: Option<String>) -> Result<()> {
        let Some(mut p) = self.policy(ns) else { return Ok(()) };
        if p.frozen == why {
            return Ok(());
        }
        p.frozen = why;
        self.set_policy(ns, Some(p))
    }

    /// Refuses work in a namespace whose policy is frozen (see [`Policy::frozen`]).
    pub(crate) fn check_frozen(&self, ns: &str) -> Result<()> {
        match self.policy(ns).and_then(|p| p.frozen) {
            Some(why) => Err(Error::Conflict(why)),
            None => Ok(()),
        }
    }

    fn disk_path(&self, ns: &str) -> PathBuf {
        self.root.join("namespaces").join(ns).join("disk.json")
    }

    /// The namespace's own disk (a lab session's), if it has one.
    pub fn disk(&self, ns: &str) -> Option<crate::disk::Disk> {
        let mut cache = self.disks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(d) = cache.get(ns) {
            return d.clone();
        }
        let d: Option<crate::disk::Disk> = fsutil::read_json(&self.disk_path(ns)).ok().flatten();
        cache.insert(ns.to_string(), d.clone());
        d
    }

    /// Gives a namespace a disk of its own (made and mounted now): its containers'
    /// writable layers and logs and its volumes go there from now on. Volumes made
    /// before stay where they are.
    pub fn set_disk(&self, ns: &str, disk: &crate::disk::Disk) -> Result<()> {
        disk.ensure().map_err(|e| Error::Runtime(format!("the disk of {ns}: {e}")))?;
        let volumes = self.root.join("volumes").join(ns);
        let real = disk.mountpoint.join("volumes").join(ns);
        std::fs::create_dir_all(&real).ctx(|| format!("create {}", real.display()))?;
        if std::fs::symlink_metadata(&volumes).is_err() {
            std::fs::create_dir_all(self.root.join("volumes")).ctx(|| "create volumes".into())?;
            std::os::unix::fs::symlink(&real, &volumes).ctx(|| format!("link {}", volumes.display()))?;
        }
        fsutil::write_json(&self.disk_path(ns), disk)?;
        self.disks.lock().unwrap_or_else(|p| p.into_inner()).insert(ns.to_string(), Some(disk.clone()));
        Ok(())
    }

    /// Mounts the namespaces' disks again after a reboot (a no-op when they are).
    fn mount_disks(&self) {
        let Ok(entries) = std::fs::read_dir(self.root.join("namespaces")) else { return };
        for e in entries.flatten() {
            let ns = e.file_name().to_string_lossy().to_string();
            if let Some(d) = self.disk(&ns) {
                match d.ensure() {
                    Ok(()) => container_ops::sweep_removed(&d.mountpoint.join("containers")),
                    Err(err) => tracing::warn!("the disk of namespace {ns} cannot be mounted: {err}"),
                }
            }
        }
    }

    /// Removes everything a namespace holds: containers (killed), volumes, tags and its
    /// policy. Shared blobs and layers stay for other namespaces (and image GC).
    pub fn remove_namespace(&self, ns: &str) -> Result<()> {
        for c in self.containers(ns) {
            self.remove_container(ns, &c.id, true, true)?;
        }
        for v in self.list_volumes(ns) {
            self.remove_volume(ns, &v.name, true)?;
        }
        // Newest first, and again while any goes: an image others were made on (a
        // build's base) can go only after them.
        loop {
            let mut progress = false;
            for i in self.list_images(ns, true)? {
                for t in i.repo_tags.iter().filter(|t| !t.ends_with("<none>:<none>")) {
                    progress |= self.remove_image(ns, t, true).is_ok();
                }
                progress |= self.remove_image(ns, &i.id, true).is_ok();
            }
            if !progress {
                break;
            }
        }
        self.set_policy(ns, None)?;
        // A link to the namespace's disk, if it had one (the disk is its owner's to
        // release: a lab session's two namespaces share it).
        if std::fs::read_link(self.root.join("volumes").join(ns)).is_ok() {
            let _ = std::fs::remove_file(self.root.join("volumes").join(ns));
        }
        let _ = std::fs::remove_dir_all(self.root.join("namespaces").join(ns));
        self.policies.lock().unwrap_or_else(|p| p.into_inner()).remove(ns);
        self.disks.lock().unwrap_or_else(|p| p.into_inner()).remove(ns);
        Ok(())
    }

    /// Bytes a namespace takes on disk: its volumes, its containers' writable layers,
    /// and the layers of its images, each once however many of its images share it (a
    /// build keeps an image per step, all on the same layers); a layer shared with
    /// another namespace counts in full for each: that is what a student would take
    /// alone.
    pub fn disk_usage(&self, ns: &str) -> u64 {
        let images = self.image_layer_bytes(ns);
        // With a disk of its own, what is on it (the home and the workstation's share
        // included) is what the file system says.
        if let Some(used) = self.disk(ns).and_then(|d| d.used()) {
            return used + images;
        }
        let mut total: u64 = self.list_volumes(ns).iter().map(|v| fsutil::dir_size(&v.mountpoint)).sum();
        total += self.containers(ns).iter().map(|c| self.container_size(c).rw).sum::<u64>();
        total += images;
        // A lab session's home lives outside the namespace (with its workstation).
        if let Some(home) = self.policy(ns).and_then(|p| p.home) {
            total += fsutil::dir_size(&home.host_path);
        }
        total
    }

    /// The bytes of the distinct layers of a namespace's images.
    fn image_layer_bytes(&self, ns: &str) -> u64 {
        let Ok(idx) = self.images.namespace(ns) else { return 0 };
        let mut seen = std::collections::BTreeSet::new();
        let mut total = 0;
        for rec in idx.images.keys().filter_map(|id| self.images.record(id).ok()) {
            for l in rec.layers {
                if seen.insert(l.chain_id.clone()) {
                    total += self.store.layer_info(&l.chain_id).ok().flatten().map_or(0, |i| i.size);
                }
            }
        }
        total
    }

    /// Refuses to add to a namespace that is at its disk limit (a lab session's).
    pub(crate) fn check_disk(&self, ns: &str) -> Result<()> {
        let Some(limit) = self.policy(ns).map(|p| p.disk).filter(|d| *d > 0) else { return Ok(()) };
        let used = self.disk_usage(ns);
        if used >= limit {
            let mb = |b: u64| format!("{:.1}MB", b as f64 / 1e6);
            return Err(crate::error::Error::Conflict(format!(
                "this lab session uses {} of disk, its limit is {}: remove images (docker image prune -a), volumes (docker volume prune -a) or containers (docker container prune) first",
                mb(used),
                mb(limit)
            )));
        }
        Ok(())
    }

    /// A container event, with the attributes Docker puts on each: its labels, then
    /// `name` and `image` (which win over labels of those names).
    pub(crate) fn emit_container(&self, c: &Container, action: &str, extra: &[(&str, &str)]) {
        let mut attrs: Vec<(&str, &str)> = c.config.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        attrs.extend_from_slice(&[("name", &c.name), ("image", &c.config.image)]);
        attrs.extend_from_slice(extra);
        self.emit(&c.namespace, "container", action, &c.id, &attrs);
    }

    /// Records a read-only request (`ps`, `logs`, `search`, ...) as a Berth-only
    /// `request` event: Docker has no events for them, but lesson checks need them.
    /// `/events` leaves these out.
    pub fn note_request(&self, ns: &str, action: &str, attrs: &[(&str, &str)]) {
        self.emit(ns, "request", action, "", attrs);
    }

    pub(crate) fn emit(&self, ns: &str, kind: &str, action: &str, id: &str, attrs: &[(&str, &str)]) {
        self.events.publish(Event {
            namespace: ns.to_string(),
            kind: kind.to_string(),
            action: action.to_string(),
            id: id.to_string(),
            attributes: attrs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            time: chrono::Utc::now(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::ContainerConfig;
    use crate::error::Error;

    fn engine(dir: &Path) -> Arc<Engine> {
        Engine::open(EngineOptions {
            root: dir.to_path_buf(),
            helper_exe: PathBuf::from("/nonexistent/berth"),
            busybox: PathBuf::from(crate::seed::BUSYBOX_PATH),
            insecure_registries: vec![],
            registry_mirrors: vec![],
        })
        .expect("open engine")
    }

    #[test]
    fn namespaces_never_see_each_other() {
        let t = tempfile::tempdir().unwrap();
        let e = engine(t.path());
        e.seed_images("a").expect("seed a (needs busybox-static)");
        e.seed_images("b").unwrap();
        e.tag_image("a", "busybox", "mine:1").unwrap();
        assert!(e.image_config("a", "mine:1").is_ok());
        assert!(matches!(e.image_config("b", "mine:1"), Err(Error::NotFound(_))));
        let req = |name: &str| CreateRequest {
            name: Some(name.into()),
            config: ContainerConfig { image: "busybox".into(), ..Default::default() },
            ..Default::default()
        };
        let c = e.create_container("a", req("web")).unwrap();
        assert!(e.containers("b").is_empty());
        assert!(matches!(e.container("b", "web"), Err(Error::NotFound(_))));
        assert!(matches!(e.container("b", &c.id), Err(Error::NotFound(_))));
        // The same name is free in another namespace.
        e.create_container("b", req("web")).unwrap();
        e.create_volume("a", Some("data"), Default::default()).unwrap();
        assert!(e.volume("b", "data").is_err());
        assert!(e.list_volumes("b").is_empty());
        // Removing the shared image from one namespace leaves it in the other.
        e.remove_container("b", "web", false, false).unwrap();
        e.remove_image("b", "busybox", false).unwrap();
        assert!(e.image_config("a", "busybox").is_ok());
        assert!(e.image_config("b", "busybox").is_err());
    }

    #[test]
    fn a_namespace_policy_is_kept_and_removed_with_the_namespace() {
        let t = tempfile::tempdir().unwrap();
        let req = |name: &str| CreateRequest {
            name: Some(name.into()),
            config: ContainerConfig { image: "busybox".into(), ..Default::default() },
            ..Default::default()
        };
        {
            let e = engine(t.path());
            e.seed_images("lab").unwrap();
            e.set_policy("lab", Some(Policy { max_containers: 1, pids: 64, ..Default::default() })).unwrap();
            let c = e.create_container("lab", req("one")).unwrap();
            assert_eq!(c.host_config.pids_limit, Some(64));
        }
        // A reopened engine (a restarted server) still holds the namespace to it.
        let e = engine(t.path());
        assert!(matches!(e.create_container("lab", req("two")), Err(Error::Conflict(_))));
        // Berth's own containers (a workstation) are not counted against it.
        e.create_container("lab", CreateRequest { system: true, ..req("ws") }).unwrap();
        e.create_volume("lab", Some("home"), Default::default()).unwrap();
        e.remove_namespace("lab").unwrap();
        assert!(e.containers("lab").is_empty());
        assert!(e.list_volumes("lab").is_empty());
        assert!(e.list_images("lab", true).unwrap().is_empty());
        assert!(e.policy("lab").is_none());
    }

    #[test]
    fn a_frozen_namespace_refuses_new_work_with_its_reason_until_thawed() {
        let t = tempfile::tempdir().unwrap();
        let e = engine(t.path());
        e.seed_images("lab").unwrap();
        let req = || CreateRequest { name: Some("one".into()), config: ContainerConfig { image: "busybox".into(), ..Default::default() }, ..Default::default() };
        // Without a policy there is nothing to freeze.
        e.set_frozen("other", Some("closed".into())).unwrap();
        assert!(e.policy("other").is_none());
        e.set_policy("lab", Some(Policy { max_containers: 5, ..Default::default() })).unwrap();
        e.set_frozen("lab", Some("the class has closed".into())).unwrap();
        match e.create_container("lab", req()) {
            Err(Error::Conflict(m)) => assert_eq!(m, "the class has closed"),
            other => panic!("{other:?}"),
        }
        // Kept on disk, like the rest of the policy.
        let e = engine(t.path());
        assert!(e.create_container("lab", req()).is_err());
        e.set_frozen("lab", None).unwrap();
        e.create_container("lab", req()).unwrap();
        assert_eq!(e.policy("lab").unwrap().max_containers, 5);
    }

    #[test]
    fn metadata_survives_reopening() {
        let t = tempfile::tempdir().unwrap();
        let id = {
            let e = engine(t.path());
            e.seed_images("default").unwrap();
            let c = e
                .create_container("default", CreateRequest {
                    name: Some("keep".into()),
                    config: ContainerConfig { image: "busybox".into(), cmd: vec!["true".into()], ..Default::default() },
                    ..Default::default()
                })
                .unwrap();
            c.id
        };
        let e = engine(t.path());
        assert_eq!(e.container("default", "keep").unwrap().id, id);
        assert!(e.image_config("default", "busybox:latest").is_ok());
    }
}
