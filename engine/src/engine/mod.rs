//! The `Engine` facade: one per state root, shared by every API endpoint and session.
//! Operations are grouped by concept in the submodules; each is synchronous (callers
//! in async code use `spawn_blocking`).

mod archive_ops;
mod commit;
mod container_ops;
mod exec;
mod image_ops;
mod volume_ops;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use commit::CommitOptions;
pub use container_ops::{AttachStream, CreateRequest, WaitCondition, Waiter};
pub use exec::{nsexec_main, ExecConfig, ExecIo, ExecRecord};
pub use image_ops::{ImageSummary, RemovedImages};

use crate::container::Container;
use crate::error::{Context, Result};
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
}

pub struct Engine {
    root: PathBuf,
    helper_exe: PathBuf,
    busybox: PathBuf,
    pub(crate) insecure_registries: Vec<String>,
    pub(crate) store: Store,
    pub(crate) images: Images,
    pub(crate) volumes: Volumes,
    events: Events,
    /// Every container of every namespace, by id. The lock also serialises changes to
    /// names and tags, so checks and writes cannot interleave.
    containers: Mutex<HashMap<String, Container>>,
    /// Attach requests waiting for a container to start (`docker run`, `start -a`).
    pending_attach: Mutex<HashMap<String, Vec<container_ops::PendingAttach>>>,
    execs: Mutex<HashMap<String, ExecRecord>>,
    /// The pty master of each running exec with a TTY, for resize.
    exec_ttys: Mutex<HashMap<String, Arc<std::os::fd::OwnedFd>>>,
    /// Serialises image metadata changes (tags, namespace indexes).
    image_lock: Mutex<()>,
}

impl Engine {
    /// Opens (or creates) the state root, recovers containers whose shims survived a
    /// restart, and seeds the default namespace's images.
    pub fn open(opts: EngineOptions) -> Result<Arc<Engine>> {
        let root = opts.root;
        for d in ["containers", "run"] {
            std::fs::create_dir_all(root.join(d)).ctx(|| format!("create {}", root.join(d).display()))?;
        }
        let engine = Arc::new(Engine {
            store: Store::open(&root)?,
            images: Images::open(&root)?,
            volumes: Volumes::open(&root),
            events: Events::default(),
            containers: Mutex::new(HashMap::new()),
            pending_attach: Mutex::new(HashMap::new()),
            execs: Mutex::new(HashMap::new()),
            exec_ttys: Mutex::new(HashMap::new()),
            image_lock: Mutex::new(()),
            helper_exe: opts.helper_exe,
            busybox: opts.busybox,
            insecure_registries: opts.insecure_registries,
            root,
        });
        engine.recover()?;
        Ok(engine)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn events(&self) -> &Events {
        &self.events
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
            host_config: Default::default(),
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
    fn metadata_survives_reopening() {
        let t = tempfile::tempdir().unwrap();
        let id = {
            let e = engine(t.path());
            e.seed_images("default").unwrap();
            let c = e
                .create_container("default", CreateRequest {
                    name: Some("keep".into()),
                    config: ContainerConfig { image: "busybox".into(), cmd: vec!["true".into()], ..Default::default() },
                    host_config: Default::default(),
                })
                .unwrap();
            c.id
        };
        let e = engine(t.path());
        assert_eq!(e.container("default", "keep").unwrap().id, id);
        assert!(e.image_config("default", "busybox:latest").is_ok());
    }
}
