//! One lab session: a namespace for the student's containers, a workstation (busybox
//! tools + the docker CLI) in a namespace of its own that the student cannot see or
//! stop, a network namespace both live in, the student's home, and a Docker API socket
//! that serves the student's namespace only.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use berth_engine::container::{ContainerConfig, HostConfig};
use berth_engine::log_config::{self, LogConfig};
use berth_engine::policy::{Home, Policy};
use berth_engine::disk::Disk;
use berth_engine::{netns, CreateRequest, Engine};
use chrono::{DateTime, Utc};
use tower::Layer;

use super::progress::Tracker;
use super::terminal::Terminal;
use super::LabOptions;
use crate::api::{self, ApiState};

/// The workstation's container name (in the session's workstation namespace).
pub const WORKSTATION: &str = "workstation";
/// Where the student's home is inside the workstation.
pub const HOME: &str = "/root";
/// Where the workstation finds the session's Docker API socket.
const API_DIR: &str = "/run/berth";

pub struct Session {
    pub id: String,
    /// The student's namespace: what their docker CLI sees.
    pub namespace: String,
    /// The workstation's own namespace, out of the student's sight.
    pub ws_namespace: String,
    pub created: DateTime<Utc>,
    pub dir: PathBuf,
    pub terminal: Arc<Terminal>,
    pub last_seen: Mutex<DateTime<Utc>>,
    pub tracker: Mutex<Tracker>,
    /// Terminal pages connected now.
    viewers: AtomicUsize,
    /// Instructors who have taken over the terminal now.
    controllers: Mutex<Vec<String>>,
    activity: Mutex<Activity>,
    api: tokio::task::JoinHandle<()>,
}

/// What the student last did, for the teacher's dashboard.
#[derive(Debug, Clone, Default)]
pub struct Activity {
    /// The last keystroke or engine event.
    pub last: Option<DateTime<Utc>>,
    /// The last docker command, as the engine saw it.
    pub last_action: Option<String>,
}

pub struct Controller {
    session: Arc<Session>,
    instructor: String,
}

impl Drop for Controller {
    fn drop(&mut self) {
        let mut c = self.session.controllers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = c.iter().position(|n| *n == self.instructor) {
            c.remove(i);
        }
    }
}

/// A connected terminal page: counted while it lives, and dashboards told both times.
pub struct Viewer {
    session: Arc<Session>,
    lab: Arc<super::Lab>,
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.session.viewers.fetch_sub(1, Ordering::SeqCst);
        self.lab.notify();
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.api.abort();
        self.terminal.close();
    }
}

pub fn namespaces(id: &str) -> (String, String) {
    let ns = format!("lab-{}", &id[..12.min(id.len())]);
    (ns.clone(), format!("{ns}-ws"))
}

fn network_path(dir: &Path) -> PathBuf {
    dir.join("net")
}

/// The session's disk (none when `--lab-disk 0`: no limit).
fn disk(dir: &Path, opts: &LabOptions) -> Option<Disk> {
    (opts.disk > 0).then(|| Disk { image: dir.join("disk.img"), mountpoint: dir.join("disk"), size: opts.disk as u64 })
}

impl Session {
    /// Makes (or, after a restart, finds again) everything a session needs and opens
    /// its terminal and API socket. Blocking engine work runs off the async threads.
    pub async fn open(engine: Arc<Engine>, requests: &crate::metrics::Requests, opts: &LabOptions, lab_dir: &Path, id: &str, created: DateTime<Utc>, tracker: Tracker) -> anyhow::Result<Session> {
        let (ns, ws_ns) = namespaces(id);
        let dir = lab_dir.join(id);
        let api_dir = dir.join("api");
        std::fs::create_dir_all(&api_dir).with_context(|| format!("create {}", api_dir.display()))?;
        {
            let (engine, opts, dir, ns, ws_ns) = (engine.clone(), opts.clone(), dir.clone(), ns.clone(), ws_ns.clone());
            tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                prepare(&engine, &opts, &dir, &ns, &ws_ns)?;
                // Its network and disk are there now: what Docker starts at boot starts
                // (after a restart of the machine or of a lab node's pod, the engine
                // opened before the session's network was made again).
                engine.start_by_restart_policy(Some(&ns));
                Ok(())
            })
            .await??;
        }
        let socket = api_dir.join("docker.sock");
        let _ = std::fs::remove_file(&socket);
        let listener = tokio::net::UnixListener::bind(&socket).with_context(|| format!("listen on {}", socket.display()))?;
        let app = requests.instrument(api::app(ApiState { engine: engine.clone(), namespace: ns.clone() }), crate::metrics::Listener::Docker);
        let svc = tower::util::MapRequestLayer::new(api::strip_version).layer(app);
        let api = tokio::spawn(async move {
            use axum::ServiceExt;
            if let Err(e) = axum::serve(listener, svc.into_make_service()).await {
                tracing::warn!("lab API socket: {e}");
            }
        });
        let terminal = Terminal::open(engine, &ws_ns, WORKSTATION);
        Ok(Session {
            id: id.to_string(),
            namespace: ns,
            ws_namespace: ws_ns,
            created,
            dir,
            terminal,
            last_seen: Mutex::new(Utc::now()),
            tracker: Mutex::new(tracker),
            viewers: AtomicUsize::new(0),
            controllers: Mutex::new(Vec::new()),
            activity: Mutex::new(Activity::default()),
            api,
        })
    }

    pub fn touch(&self) {
        *self.last_seen.lock().unwrap_or_else(|p| p.into_inner()) = Utc::now();
    }

    pub fn viewer(self: &Arc<Self>, lab: &Arc<super::Lab>) -> Viewer {
        self.viewers.fetch_add(1, Ordering::SeqCst);
        lab.notify();
        Viewer { session: self.clone(), lab: lab.clone() }
    }

    /// An instructor typing in the student's terminal, until the guard drops.
    pub fn controller(self: &Arc<Self>, instructor: &str) -> Controller {
        self.controllers.lock().unwrap_or_else(|p| p.into_inner()).push(instructor.to_string());
        Controller { session: self.clone(), instructor: instructor.to_string() }
    }

    /// The first instructor typing in the terminal now.
    pub fn controlled_by(&self) -> Option<String> {
        self.controllers.lock().unwrap_or_else(|p| p.into_inner()).first().cloned()
    }

    pub fn viewers(&self) -> usize {
        self.viewers.load(Ordering::SeqCst)
    }

    fn activity_lock(&self) -> std::sync::MutexGuard<'_, Activity> {
        self.activity.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn activity(&self) -> Activity {
        self.activity_lock().clone()
    }

    /// A keystroke from the student's page.
    pub fn typed(&self) {
        self.activity_lock().last = Some(Utc::now());
    }

    /// An engine event of the student's namespace.
    pub fn saw(&self, e: &berth_engine::events::Event) {
        let mut a = self.activity_lock();
        a.last = Some(Utc::now());
        if super::progress::is_command(&super::progress::event(e)) {
            a.last_action = Some(super::progress::describe(e));
        }
    }

    pub fn last_seen(&self) -> DateTime<Utc> {
        *self.last_seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn network(&self) -> PathBuf {
        network_path(&self.dir)
    }

    /// Removes everything of the session from the engine and the disk.
    pub fn destroy(&self, engine: &Engine) -> anyhow::Result<()> {
        self.terminal.close();
        self.api.abort();
        let disk = engine.disk(&self.namespace);
        engine.remove_namespace(&self.ws_namespace)?;
        engine.remove_namespace(&self.namespace)?;
        if let Some(d) = disk {
            d.release()?;
        }
        netns::remove(&self.network())?;
        let _ = std::fs::remove_dir_all(&self.dir);
        Ok(())
    }
}

/// Where a workstation sees the Compose directory (the wrapper's paths are these).
const COMPOSE_DIR: &str = "/usr/local/lib/compose";
/// A CLI plugin directory the docker CLI searches (not the home, which the student owns).
const CLI_PLUGIN: &str = "/usr/local/lib/docker/cli-plugins/docker-compose";

/// Binds giving a workstation Compose v2, as `docker compose` and `docker-compose`; with
/// no Compose on the server, a stand-in plugin saying so.
fn compose_binds(opts: &LabOptions, dir: &Path) -> anyhow::Result<Vec<String>> {
    if let Some(c) = opts.compose_dir()? {
        let wrapper = c.join("docker-compose");
        return Ok(vec![
            format!("{}:{COMPOSE_DIR}:ro", c.display()),
            format!("{}:{CLI_PLUGIN}:ro", wrapper.display()),
            format!("{}:/usr/local/bin/docker-compose:ro", wrapper.display()),
        ]);
    }
    let stand_in = dir.join("no-compose");
    std::fs::write(&stand_in, NO_COMPOSE).with_context(|| format!("write {}", stand_in.display()))?;
    std::fs::set_permissions(&stand_in, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    Ok(vec![
        format!("{}:{CLI_PLUGIN}:ro", stand_in.display()),
        format!("{}:/usr/local/bin/docker-compose:ro", stand_in.display()),
    ])
}

const NO_COMPOSE: &str = r#"#!/bin/sh
if [ "$1" = docker-cli-plugin-metadata ]; then
    echo '{"SchemaVersion":"0.1.0","Vendor":"Berth","Version":"none","ShortDescription":"Docker Compose (not on this server)"}'
    exit 0
fi
echo "This Berth server has no Docker Compose: its administrator can run scripts/fetch-compose and restart berth serve (or pass --lab-compose DIR)." >&2
exit 1
"#;

/// The blocking part of opening a session: network, images, home, policy, workstation.
fn prepare(engine: &Engine, opts: &LabOptions, dir: &Path, ns: &str, ws_ns: &str) -> anyhow::Result<()> {
    let network = network_path(dir);
    netns::ensure(&network).context("make the session's network")?;
    engine.seed_images(ns).context("seed the session's images")?;
    engine.seed_images(ws_ns).context("seed the workstation's images")?;
    // One disk for the session's two namespaces (the home is the workstation's), so
    // `--lab-disk` bounds all a student writes, while it is written.
    if let Some(disk) = disk(dir, opts) {
        engine.set_disk(ns, &disk)?;
        engine.set_disk(ws_ns, &disk)?;
    }
    let home = match engine.volume(ws_ns, "home") {
        Ok(v) => v,
        Err(_) => engine.create_volume(ws_ns, Some("home"), Default::default())?,
    };
    // One id range for both namespaces: the workstation and the student's containers
    // share the home volume, stored with the container ids they both see.
    if opts.no_userns {
        tracing::warn!("lab session {ns} runs without a user namespace (--no-lab-userns)");
    } else if engine.assign_userns(&[ns, ws_ns]).context("give the session its user ids")?.is_none() {
        tracing::warn!("lab session {ns} runs without a user namespace: {}", engine.userns_missing().unwrap_or("unknown"));
    }
    let envelope = opts.envelope(ns);
    engine.set_policy(
        ns,
        Some(Policy {
            network: Some(network.clone()),
            home: Some(Home { user_path: HOME.into(), host_path: home.mountpoint.clone() }),
            memory: opts.memory,
            nano_cpus: opts.nano_cpus(),
            pids: opts.pids,
            max_containers: opts.containers,
            disk: opts.disk.max(0) as u64,
            envelope: Some(envelope.clone()),
            log: Some(opts.log_rotation()),
            output_rate: opts.output_rate,
            // The class's window decides this (`Lab::apply_class_windows`); kept as it was.
            frozen: engine.policy(ns).and_then(|p| p.frozen),
        }),
    )
    .context("set the session's policy and envelope")?;
    if engine.container(ws_ns, WORKSTATION).is_err() {
        let docker = opts.docker_cli()?;
        let config = ContainerConfig {
            image: "busybox".into(),
            cmd: vec!["sh".into()],
            tty: true,
            open_stdin: true,
            attach_stdin: true,
            attach_stdout: true,
            attach_stderr: true,
            hostname: "lab".into(),
            working_dir: HOME.into(),
            env: vec![
                format!("DOCKER_HOST=unix://{API_DIR}/docker.sock"),
                format!("HOME={HOME}"),
                "TERM=xterm-256color".into(),
                r"PS1=\w $ ".into(),
            ],
            ..Default::default()
        };
        let mut log_opts = Default::default();
        opts.log_rotation().set_in(&mut log_opts);
        let mut binds = vec![
            format!("{}:/usr/local/bin/docker:ro", docker.display()),
            format!("{}:{API_DIR}:ro", dir.join("api").display()),
            format!("home:{HOME}"),
        ];
        binds.extend(compose_binds(opts, dir)?);
        let host_config = HostConfig {
            binds,
            // No restart policy: the terminal starts a new shell when one ends.
            memory: opts.memory,
            pids_limit: Some(opts.pids),
            // Not held to the namespace's policy (it is Berth's), but it is the
            // session's all the same: in its envelope, its log bounded.
            cgroup_parent: envelope.cgroup.clone(),
            log_config: LogConfig { r#type: log_config::JSON_FILE.into(), config: log_opts },
            ..Default::default()
        };
        engine.create_container(
            ws_ns,
            CreateRequest { name: Some(WORKSTATION.into()), config, host_config, system: true, join_network: Some(network), ..Default::default() },
        )?;
    }
    Ok(())
}
