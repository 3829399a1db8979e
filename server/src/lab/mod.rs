//! Lab sessions: the playground's server side. A student's page creates a session,
//! talks to its shell over a WebSocket, polls its status, and opens its published
//! ports through a path proxy; the engine's events move the lesson steps along.

pub mod db;
mod progress;
mod proxy;
mod session;
mod status;
mod terminal;
mod tools;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use berth_engine::envelope::Envelope;
use berth_engine::log_config::Rotation;
use berth_engine::Engine;
use berth_lessons::api::{ApiError, ErrorKind, Hand, LessonProgress, Membership, SelectLesson, SessionInfo, SessionStatus, TerminalControl};
use berth_lessons::Lesson;
use chrono::Utc;

use crate::changes::Changes;
use crate::classroom::roster::Roster;
use crate::metrics::Requests;
use futures_util::{SinkExt, StreamExt};

pub use db::Db;
use progress::Tracker;
pub use session::Session;

/// Limits and lifetimes of lab sessions (`berth serve --lab-…`).
#[derive(Debug, Clone, clap::Args)]
pub struct LabOptions {
    /// Memory per container of a session (default and most), e.g. 256m, 1g.
    #[arg(long = "lab-memory", default_value = "256m", value_parser = parse_size)]
    pub memory: i64,
    /// CPUs per container of a session.
    #[arg(long = "lab-cpus", default_value_t = 1.0)]
    pub cpus: f64,
    /// Processes per container of a session.
    #[arg(long = "lab-pids", default_value_t = 256)]
    pub pids: i64,
    /// Containers a session may hold at once.
    #[arg(long = "lab-containers", default_value_t = 20)]
    pub containers: usize,
    /// CPUs for a whole session (its containers, workstation, execs and builds
    /// together): a fork bomb or a CPU hog in one session leaves the others this much
    /// less at most.
    #[arg(long = "lab-session-cpus", default_value_t = 1.0)]
    pub session_cpus: f64,
    /// A session that used all its CPUs is kept to as few cores as its limit needs
    /// (README, "The playground"; `berth_engine::hogs`) until it has been calm this long.
    #[arg(long = "lab-cpu-calm", default_value = "30s", value_parser = parse_duration)]
    pub cpu_calm: Duration,
    /// Also make a kept session's scheduling idle (`cpu.idle`), so that what wakes up
    /// on its cores runs ahead of it. Off by default: the kernel then sends the other
    /// tasks' wake-ups across to those cores, and on a VM under steal a wake-up across
    /// vCPUs is slow (scripts/bench/vcpu-wakeups).
    #[arg(long = "lab-cpu-kept-idle")]
    pub cpu_kept_idle: bool,
    /// Memory for a whole session, e.g. 1g.
    #[arg(long = "lab-session-memory", default_value = "1g", value_parser = parse_size)]
    pub session_memory: i64,
    /// Processes for a whole session.
    #[arg(long = "lab-session-pids", default_value_t = 512)]
    pub session_pids: i64,
    /// json-file log size per file of a session's containers (default and most),
    /// in Docker's units (10m = 10,000,000 bytes).
    #[arg(long = "lab-log-max-size", default_value = "10m", value_parser = parse_log_size)]
    pub log_max_size: u64,
    /// json-file log files kept per container of a session (default and most).
    #[arg(long = "lab-log-max-file", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub log_max_file: u32,
    /// Bytes a second each container of a session may output, counted as its log is
    /// written (e.g. 1m = 1,000,000; 0 = no limit): a faster writer (`yes`) waits, as
    /// on a slow terminal, instead of keeping the machine busy with its log.
    #[arg(long = "lab-output-rate", default_value = "1m", value_parser = berth_engine::log_config::parse_size)]
    pub output_rate: u64,
    /// A session unused this long is removed (e.g. 90m, 2h).
    #[arg(long = "lab-idle", default_value = "2h", value_parser = parse_duration)]
    pub idle: Duration,
    /// A session is removed this long after it was made, used or not.
    #[arg(long = "lab-lifetime", default_value = "12h", value_parser = parse_duration)]
    pub lifetime: Duration,
    /// Disk a session's images, volumes and container layers may take, e.g. 2g.
    #[arg(long = "lab-disk", default_value = "2g", value_parser = parse_size)]
    pub disk: i64,
    /// The docker CLI mounted (read-only) in every workstation; default: `docker` on PATH.
    #[arg(long = "lab-docker-cli")]
    pub docker_cli: Option<PathBuf>,
    /// Compose v2 for the workstations (what `scripts/fetch-compose` makes: the plugin,
    /// a loader and libc, and a `docker-compose` wrapper), bound read-only into every
    /// new workstation at /usr/local/lib/compose; default: /var/cache/berth/compose-2.26.1-4
    /// if it is there (else, or with `none`, `docker compose` says this server has none).
    #[arg(long = "lab-compose")]
    pub compose: Option<PathBuf>,
    /// A registry (HOST[:PORT]) sessions may pull from, push to, log in to and search
    /// although it is at a loopback, private or link-local address (sessions are
    /// refused those otherwise). Repeatable.
    #[arg(long = "lab-registry-allow")]
    pub registry_allow: Vec<String>,
    /// Run new sessions without user namespaces (root in their containers is then the
    /// host's root), e.g. to tell a problem with idmapped mounts from another one.
    #[arg(long = "no-lab-userns")]
    pub no_userns: bool,
    /// Whether anyone who opens the page gets a lab (the self-paced playground); with
    /// false, only students who join a class do.
    #[arg(long = "open-playground", default_value_t = true, action = clap::ArgAction::Set)]
    pub open_playground: bool,
    /// A student with no step done for this long shows as stuck on the dashboard.
    #[arg(long = "class-stuck-after", default_value = "10m", value_parser = parse_duration)]
    pub stuck_after: Duration,
    /// ... or after this many commands on one step without passing its check (0: never).
    #[arg(long = "class-stuck-attempts", default_value_t = 5)]
    pub stuck_attempts: u32,
    /// Wrong join codes, PINs, rejoin links and passwords one client address may try
    /// per 10 minutes (also per instructor name, for passwords).
    #[arg(long = "class-max-failures", default_value_t = 20)]
    pub max_failures: usize,
    #[command(flatten)]
    pub database: db::DatabaseOptions,
}

/// Where `scripts/fetch-compose` puts Compose by default.
pub const DEFAULT_COMPOSE: &str = "/var/cache/berth/compose-2.26.1-4";

impl LabOptions {
    pub fn nano_cpus(&self) -> i64 {
        (self.cpus * 1e9) as i64
    }

    /// These options with a class's limits where it sets them.
    pub fn with_class(&self, l: &berth_lessons::api::ClassLimits) -> LabOptions {
        let mut o = self.clone();
        if let Some(c) = l.session_cpus {
            o.session_cpus = c;
            // A container may not have more than its lab.
            o.cpus = o.cpus.min(c);
        }
        if let Some(m) = l.session_memory {
            o.session_memory = m;
            o.memory = o.memory.min(m);
        }
        if let Some(p) = l.session_pids {
            o.session_pids = p;
            o.pids = o.pids.min(p);
        }
        if let Some(d) = l.disk {
            o.disk = d;
        }
        if let Some(c) = l.containers {
            o.containers = c as usize;
        }
        o
    }

    /// A session's envelope: the cgroup all it runs shares, with its limits.
    pub fn envelope(&self, ns: &str) -> Envelope {
        Envelope::for_namespace(ns, self.session_memory, (self.session_cpus * 1e9) as i64, self.session_pids)
    }

    pub fn log_rotation(&self) -> Rotation {
        Rotation { max_size: self.log_max_size, max_file: self.log_max_file }
    }

    /// The Compose directory bound into workstations, if any.
    pub fn compose_dir(&self) -> anyhow::Result<Option<PathBuf>> {
        if let Some(d) = &self.compose {
            if d.as_os_str() == "none" {
                return Ok(None);
            }
            anyhow::ensure!(
                d.join("docker-compose").is_file(),
                "--lab-compose {}: no docker-compose wrapper in it (scripts/fetch-compose makes one)",
                d.display()
            );
            return Ok(Some(d.clone()));
        }
        let d = std::path::Path::new(DEFAULT_COMPOSE);
        Ok(d.join("docker-compose").is_file().then(|| d.to_path_buf()))
    }

    pub fn docker_cli(&self) -> anyhow::Result<PathBuf> {
        if let Some(p) = &self.docker_cli {
            return Ok(p.clone());
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .map(|d| d.join("docker"))
            .find(|p| p.is_file())
            .context("no docker CLI on PATH for the lab workstations: install it or pass --lab-docker-cli")
    }
}

pub fn parse_size(s: &str) -> Result<i64, String> {
    let s = s.trim().to_ascii_lowercase();
    let (num, mult) = match s.chars().last() {
        Some('k') => (&s[..s.len() - 1], 1i64 << 10),
        Some('m') => (&s[..s.len() - 1], 1 << 20),
        Some('g') => (&s[..s.len() - 1], 1 << 30),
        _ => (s.as_str(), 1),
    };
    num.parse::<i64>().map(|n| n * mult).map_err(|_| format!("invalid size {s:?}: use e.g. 512m or 1g"))
}

fn parse_log_size(s: &str) -> Result<u64, String> {
    match berth_engine::log_config::parse_size(s) {
        Ok(0) => Err("must be more than 0".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| format!("invalid duration {s:?}: use e.g. 30s, 90m or 2h"))?;
    let secs = match unit {
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return Err(format!("invalid duration {s:?}: use e.g. 30s, 90m or 2h")),
    };
    Ok(Duration::from_secs(secs))
}

pub struct Lab {
    pub(crate) engine: Arc<Engine>,
    pub(crate) db: Db,
    /// This server's name in the database (`--node-name`): its sessions carry it.
    node: String,
    pub(crate) opts: LabOptions,
    dir: PathBuf,
    pub(crate) lessons: Arc<Vec<Lesson>>,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    /// Which sessions belong to a student of a class (shared with the classroom on a
    /// single server).
    pub(crate) roster: Arc<Roster>,
    /// Bumped whenever something a dashboard shows changes.
    pub(crate) changes: Changes,
    /// Labs an instructor ended, by session id: their progress, until the student
    /// comes back and gets a new lab with it.
    ended: Mutex<HashMap<String, Tracker>>,
    /// Sessions being reset now: their pages wait (503) rather than give up (404).
    resetting: Mutex<std::collections::HashSet<String>>,
    /// Where the sessions' Docker API sockets count their requests.
    requests: Requests,
}

pub use crate::classroom::roster::Member;

/// What the lab shares with the rest of the server: the database, the roster of class
/// members' sessions and the dashboards' change signal.
pub struct Shared {
    pub db: Db,
    pub roster: Arc<Roster>,
    pub changes: Changes,
}

type LabState = Arc<Lab>;

/// An error answer: `ApiError` JSON, with `Retry-After` when rate limited.
#[derive(Debug)]
pub struct LabError {
    pub status: StatusCode,
    pub message: String,
    pub kind: Option<ErrorKind>,
    pub retry_after: Option<u64>,
}

impl LabError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> LabError {
        LabError { status, message: message.into(), kind: None, retry_after: None }
    }

    pub fn kind(status: StatusCode, kind: ErrorKind, message: impl Into<String>) -> LabError {
        LabError { kind: Some(kind), ..LabError::new(status, message) }
    }
}

impl IntoResponse for LabError {
    fn into_response(self) -> Response {
        let body = ApiError { message: self.message, kind: self.kind };
        let mut r = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            r.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
        r
    }
}

impl From<anyhow::Error> for LabError {
    fn from(e: anyhow::Error) -> Self {
        LabError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"))
    }
}

impl Lab {
    /// Opens the lab on the engine's root, reopening this node's sessions of an earlier
    /// run (`node`: its name in the database, which other nodes may share). The
    /// sessions' Docker APIs count their requests in `requests`.
    pub async fn open(engine: Arc<Engine>, mut opts: LabOptions, node: &str, requests: Requests, shared: Shared) -> anyhow::Result<Arc<Lab>> {
        let lessons = berth_lessons::all().context("load the lessons")?;
        let dir = engine.root().join("lab");
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let Shared { db, roster, changes } = shared;
        tools::place(&engine, &mut opts).context("place the workstations' tools")?;
        opts.docker_cli()?;
        match opts.compose_dir()? {
            Some(d) => tracing::info!("lab workstations get Compose from {}", d.display()),
            None => tracing::info!("no Compose for the lab workstations ({DEFAULT_COMPOSE} is missing: scripts/fetch-compose)"),
        }
        let ended_ids: std::collections::HashSet<String> = db.members().await?.into_iter().filter(|m| m.ended.is_some()).map(|m| m.session).collect();
        let lab = Arc::new(Lab {
            engine,
            db,
            node: node.to_string(),
            opts,
            dir,
            lessons: Arc::new(lessons),
            sessions: Mutex::new(HashMap::new()),
            roster,
            changes,
            ended: Mutex::new(HashMap::new()),
            resetting: Mutex::new(Default::default()),
            requests,
        });
        for row in lab.db.sessions_on(&lab.node).await? {
            let tracker = lab.stored_tracker(&row).await?;
            if ended_ids.contains(&row.id) {
                lab.ended_lock().insert(row.id.clone(), tracker);
                continue;
            }
            let opts = lab.opts_for(&row.id).await?;
            match Session::open(lab.engine.clone(), &lab.requests, &opts, &lab.dir, &row.id, row.created, tracker).await {
                Ok(s) => {
                    *s.last_seen.lock().unwrap_or_else(|p| p.into_inner()) = row.last_seen;
                    lab.sessions_lock().insert(row.id.clone(), Arc::new(s));
                }
                Err(e) => tracing::warn!(session = %row.id, "cannot reopen lab session: {e:#}"),
            }
        }
        lab.clone().follow_events();
        lab.clone().reap_periodically();
        lab.clone().keep_class_windows();
        lab.clone().watch_hogs();
        Ok(lab)
    }

    /// The options a session's lab is made with: its class's limits over the server's.
    pub(crate) async fn opts_for(&self, session: &str) -> anyhow::Result<LabOptions> {
        let Some(m) = self.member(session) else { return Ok(self.opts.clone()) };
        Ok(match self.db.class(&m.class).await? {
            Some(c) => self.opts.with_class(&c.limits),
            None => self.opts.clone(),
        })
    }

    /// A session's progress as the database has it.
    async fn stored_tracker(&self, row: &db::SessionRow) -> anyhow::Result<Tracker> {
        let times = self.db.progress_times(&row.id).await?;
        // The current step began when the last one was done (or the lab was made).
        let since = times.iter().map(|t| t.2).max().unwrap_or(row.created);
        let done = times.into_iter().map(|(l, s, _)| (l, s)).collect();
        Ok(Tracker::new(row.lesson.clone(), done, since))
    }

    fn ended_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Tracker>> {
        self.ended.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether an instructor ended this (class member's) lab.
    pub(crate) fn is_ended(&self, session: &str) -> bool {
        self.ended_lock().contains_key(session)
    }

    /// Empties a student's lab (containers, images, volumes, home, network, disk) and
    /// makes it afresh under the same id, keeping the progress.
    pub(crate) async fn reset_session(&self, id: &str) -> anyhow::Result<()> {
        self.resetting.lock().unwrap_or_else(|p| p.into_inner()).insert(id.to_string());
        let r = self.reset_now(id).await;
        self.resetting.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
        r
    }

    async fn reset_now(&self, id: &str) -> anyhow::Result<()> {
        let tracker = self.take_down(id).await?;
        let created = self.db.session(id).await?.map_or_else(Utc::now, |r| r.created);
        let s = Session::open(self.engine.clone(), &self.requests, &self.opts_for(id).await?, &self.dir, id, created, tracker).await?;
        self.sessions_lock().insert(id.to_string(), Arc::new(s));
        self.apply_class_windows().await?;
        self.notify();
        Ok(())
    }

    /// Removes a class member's lab but keeps its record and progress: coming back
    /// ([`Lab::reopen_session`]) makes a new lab with them.
    pub(crate) async fn end_session(&self, id: &str) -> anyhow::Result<()> {
        let tracker = self.take_down(id).await?;
        self.ended_lock().insert(id.to_string(), tracker);
        self.notify();
        Ok(())
    }

    /// A new lab for an ended one, with its progress.
    /// A lab another node held (it was draining when the lab ended, see
    /// [`Lab::apply_class_windows`]) moves here, with its progress from the database.
    pub(crate) async fn reopen_session(&self, id: &str) -> anyhow::Result<Arc<Session>> {
        let ended = self.ended_lock().remove(id);
        let row = self.db.session(id).await?;
        let tracker = match (ended, &row) {
            (Some(t), _) => t,
            (None, Some(row)) if row.node != self.node => {
                let t = self.stored_tracker(row).await?;
                self.db.move_session(id, &self.node).await?;
                tracing::info!(session = %id, from = %row.node, "an ended lab is made again on this node");
                t
            }
            (None, _) => Tracker::default(),
        };
        let created = row.map_or_else(Utc::now, |r| r.created);
        let s = Arc::new(Session::open(self.engine.clone(), &self.requests, &self.opts_for(id).await?, &self.dir, id, created, tracker).await?);
        self.sessions_lock().insert(id.to_string(), s.clone());
        self.apply_class_windows().await?;
        self.notify();
        Ok(s)
    }

    /// Takes a session out of service and removes its lab from the engine and the
    /// disk (not from the database); returns its progress.
    async fn take_down(&self, id: &str) -> anyhow::Result<Tracker> {
        let s = self.sessions_lock().remove(id).with_context(|| format!("no such lab session: {id}"))?;
        let tracker = std::mem::take(&mut *s.tracker.lock().unwrap_or_else(|p| p.into_inner()));
        let engine = self.engine.clone();
        let s2 = s.clone();
        tokio::task::spawn_blocking(move || s2.destroy(&engine)).await??;
        Ok(tracker)
    }

    /// Tells open dashboards to look again.
    pub(crate) fn notify(&self) {
        self.changes.notify();
    }

    /// Ties a session to a student of a class: it is kept as long as the class (no
    /// idle or lifetime limit) and shows on the class's dashboard.
    pub(crate) fn add_member(&self, session: &str, member: Member) {
        self.roster.add(session, member);
        self.notify();
    }

    pub(crate) fn member(&self, session: &str) -> Option<Member> {
        self.roster.get(session)
    }

    pub(crate) fn get_session(&self, id: &str) -> Option<Arc<Session>> {
        self.sessions_lock().get(id).cloned()
    }

    /// The sessions open now (not ended ones).
    pub(crate) fn sessions(&self) -> Vec<Arc<Session>> {
        self.sessions_lock().values().cloned().collect()
    }

    /// Makes `lesson` the session's current one (the student picked it, or joined a
    /// class that starts with it).
    pub(crate) async fn select_lesson(&self, s: &Arc<Session>, lesson: &str) -> anyhow::Result<()> {
        s.tracker.lock().unwrap_or_else(|p| p.into_inner()).select(lesson);
        self.db.set_lesson(&s.id, lesson).await?;
        self.advance(s).await?;
        self.notify();
        Ok(())
    }

    /// What the dashboard shows of one student's session.
    pub(crate) fn snapshot(&self, session: &str, member: &Member) -> crate::classroom::dashboard::StudentSnapshot {
        use crate::classroom::dashboard::StudentSnapshot;
        let Some(s) = self.get_session(session) else {
            let ended = self.ended_lock();
            let t = ended.get(session);
            return StudentSnapshot {
                name: member.name.clone(),
                joined: member.joined,
                lesson: t.and_then(|t| t.lesson.clone()),
                done: t.map(|t| t.done.clone()).unwrap_or_default(),
                step_since: t.map_or(member.joined, |t| t.since),
                last_activity: None,
                attempts: 0,
                last_action: None,
                containers_running: 0,
                online: false,
                reconnecting: false,
            };
        };
        let (lesson, done, since, attempts) = {
            let t = s.tracker.lock().unwrap_or_else(|p| p.into_inner());
            (t.lesson.clone(), t.done.clone(), t.since, t.attempts())
        };
        let activity = s.activity();
        let running = self.engine.containers(&s.namespace).iter().filter(|c| c.state.status == berth_engine::container::Status::Running).count();
        StudentSnapshot {
            name: member.name.clone(),
            joined: member.joined,
            lesson,
            done,
            step_since: since,
            last_activity: activity.last,
            attempts,
            last_action: activity.last_action,
            containers_running: running as u32,
            online: s.viewers() > 0,
            reconnecting: false,
        }
    }

    /// Once a second, samples each session's CPU use and keeps a session that uses all
    /// its limit to as few CPUs as that needs, so it no longer runs on every core at
    /// once (see `berth_engine::hogs`). On a thread of its own: cgroup files only.
    fn watch_hogs(self: Arc<Self>) {
        let weak = Arc::downgrade(&self);
        let calm = self.opts.cpu_calm;
        let idle = self.opts.cpu_kept_idle;
        drop(self);
        std::thread::Builder::new()
            .name("lab-hogs".into())
            .spawn(move || {
                let mut watch = berth_engine::hogs::HogWatch::new(calm);
                let mut warned = false;
                loop {
                    std::thread::sleep(Duration::from_secs(1));
                    let Some(lab) = weak.upgrade() else { return };
                    let Some(host) = berth_engine::envelope::host_cpus() else { continue };
                    let envelopes: Vec<Envelope> = lab
                        .sessions_lock()
                        .values()
                        .filter_map(|s| lab.engine.policy(&s.namespace).and_then(|p| p.envelope))
                        .collect();
                    drop(lab);
                    let samples: Vec<berth_engine::hogs::Sample> = envelopes
                        .iter()
                        .map(|e| berth_engine::hogs::Sample { cgroup: e.cgroup.clone(), cpus: e.nano_cpus as f64 / 1e9, usage_ns: e.cpu_usage_ns(), cpus_now: e.cpus() })
                        .collect();
                    for d in watch.observe(std::time::Instant::now(), &host, &samples) {
                        use berth_engine::hogs::Decision;
                        let (cgroup, cpus) = match &d {
                            Decision::Keep { cgroup, cpus } => (cgroup, Some(cpus)),
                            Decision::Free { cgroup } => (cgroup, None),
                        };
                        let Some(e) = envelopes.iter().find(|e| &e.cgroup == cgroup) else { continue };
                        match e.keep_to_cpus(cpus, idle) {
                            Ok(()) => match cpus {
                                Some(c) => tracing::info!(cgroup = %cgroup, "the session uses all the CPU it may: kept to CPUs {c} while it does"),
                                None => tracing::info!(cgroup = %cgroup, "the session is calm again: all CPUs"),
                            },
                            Err(err) => {
                                if !warned {
                                    tracing::warn!(cgroup = %cgroup, "could not change the session's CPUs (tried again, warned once): {err}");
                                    warned = true;
                                }
                            }
                        }
                    }
                }
            })
            .expect("spawn the lab hogs thread");
    }

    /// Freezes the labs of students whose class is not open (none may start containers
    /// there; running ones are stopped), and thaws them when the teacher reopens it.
    /// Checked every two seconds, so a class closes on time, give or take that.
    fn keep_class_windows(self: Arc<Self>) {
        let weak = Arc::downgrade(&self);
        drop(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            loop {
                tick.tick().await;
                let Some(lab) = weak.upgrade() else { return };
                if let Err(e) = lab.apply_class_windows().await {
                    tracing::warn!("class windows: {e:#}");
                }
            }
        });
    }

    pub(crate) async fn apply_class_windows(&self) -> anyhow::Result<()> {
        use berth_lessons::api::ClassState;
        let classes = self.db.classes().await?;
        let now = Utc::now();
        let members = self.roster.all();
        for (session, member) in members {
            let Some(class) = classes.iter().find(|c| c.id == member.class) else { continue };
            let Some(s) = self.get_session(&session) else { continue };
            let state = crate::classroom::members::state(class, now);
            if state == ClassState::Closed && crate::cluster::drain_mark(self.engine.root()).exists() {
                // A draining node empties as its classes end: the lab goes, its record
                // and progress stay, and the student coming back gets a lab on another
                // node (the hub places it there).
                tracing::info!(session = %session, class = %class.id, "draining: the lab ends with its class");
                self.end_session(&session).await?;
                // As an instructor's end: recorded, so a restart of this node does not
                // make the lab again here.
                self.db.set_member_ended(&class.id, &crate::classroom::members::name_key(&member.name), Some(now)).await?;
                continue;
            }
            let why = match state {
                ClassState::Open => None,
                ClassState::Upcoming => Some(format!("the class {:?} has not opened yet: containers cannot be started", class.name)),
                ClassState::Closed => Some(format!(
                    "the class {:?} closed at {}: containers cannot be started (your work and progress are kept)",
                    class.name,
                    class.closes.map(|t| t.to_rfc3339()).unwrap_or_default()
                )),
            };
            let was = self.engine.policy(&s.namespace).and_then(|p| p.frozen);
            if was.is_some() == why.is_some() {
                continue;
            }
            let (engine, ns, freezing) = (self.engine.clone(), s.namespace.clone(), why.is_some());
            tracing::info!(session = %session, class = %class.id, frozen = freezing, "class window");
            tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
                engine.set_frozen(&ns, why)?;
                if freezing {
                    for c in engine.containers(&ns) {
                        if c.state.status == berth_engine::container::Status::Running {
                            if let Err(e) = engine.stop(&ns, &c.id, Some(2)) {
                                tracing::warn!(container = %c.id, "stop at class close: {e}");
                            }
                        }
                    }
                }
                Ok(())
            })
            .await??;
            self.notify();
        }
        Ok(())
    }

    fn sessions_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn session(&self, id: &str) -> Result<Arc<Session>, LabError> {
        if self.is_ended(id) {
            return Err(LabError::kind(StatusCode::GONE, ErrorKind::LabEnded, "your instructor ended this lab: join the class again for a new one (your progress is kept)"));
        }
        if self.resetting.lock().unwrap_or_else(|p| p.into_inner()).contains(id) {
            let mut e = LabError::kind(StatusCode::SERVICE_UNAVAILABLE, ErrorKind::Resetting, "your instructor is resetting this lab: it is back in a few seconds");
            e.retry_after = Some(2);
            return Err(e);
        }
        let s = self.sessions_lock().get(id).cloned().ok_or_else(|| LabError::new(StatusCode::NOT_FOUND, format!("no such lab session: {id}")))?;
        s.touch();
        Ok(s)
    }

    pub async fn create_session(self: &Arc<Self>) -> anyhow::Result<Arc<Session>> {
        self.create_session_with(&self.opts).await
    }

    /// A new session with these limits (a class's).
    pub(crate) async fn create_session_with(self: &Arc<Self>, opts: &LabOptions) -> anyhow::Result<Arc<Session>> {
        let id = berth_engine::fsutil::random_id()[..32].to_string();
        let now = Utc::now();
        self.db.insert_session(&db::SessionRow { id: id.clone(), created: now, last_seen: now, lesson: None, node: self.node.clone() }).await?;
        let s = match Session::open(self.engine.clone(), &self.requests, opts, &self.dir, &id, now, Tracker::default()).await {
            Ok(s) => Arc::new(s),
            Err(e) => {
                let _ = self.db.delete_session(&id).await;
                return Err(e);
            }
        };
        self.sessions_lock().insert(id, s.clone());
        Ok(s)
    }

    pub async fn remove_session(&self, id: &str) -> anyhow::Result<()> {
        let Some(s) = self.sessions_lock().remove(id) else { return Ok(()) };
        let engine = self.engine.clone();
        let s2 = s.clone();
        tokio::task::spawn_blocking(move || s2.destroy(&engine)).await??;
        self.db.delete_session(id).await?;
        Ok(())
    }

    /// Routes engine events of session namespaces to their trackers and stores the
    /// steps they complete.
    fn follow_events(self: Arc<Self>) {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let (_, events) = self.engine.events().subscribe(None);
        std::thread::Builder::new()
            .name("lab-events".into())
            .spawn(move || {
                for e in events {
                    if e.namespace.starts_with("lab-") && !e.namespace.ends_with("-ws") && tx.send(e).is_err() {
                        return;
                    }
                }
            })
            .expect("spawn the lab events thread");
        tokio::spawn(async move {
            while let Some(e) = rx.recv().await {
                let session = self.sessions_lock().values().find(|s| s.namespace == e.namespace).cloned();
                if let Some(s) = session {
                    s.tracker.lock().unwrap_or_else(|p| p.into_inner()).record(progress::event(&e), e.time);
                    s.saw(&e);
                    if let Err(e) = self.advance(&s).await {
                        tracing::warn!("lab progress: {e:#}");
                    }
                    if self.roster.get(&s.id).is_some() {
                        self.notify();
                    }
                }
            }
        });
    }

    /// Checks the session's current step (and the ones after it) against what the
    /// engine saw and holds now.
    async fn advance(&self, s: &Arc<Session>) -> anyhow::Result<()> {
        let state = {
            let (engine, ns, id) = (self.engine.clone(), s.namespace.clone(), s.id.clone());
            tokio::task::spawn_blocking(move || status::state(&engine, &ns, &id)).await?
        };
        let newly = s.tracker.lock().unwrap_or_else(|p| p.into_inner()).advance(&self.lessons, &state);
        for p in &newly {
            tracing::info!(session = %s.id, lesson = %p.lesson, step = %p.step, "step done");
            self.db.mark_done(&s.id, &p.lesson, &p.step).await?;
            let events: Vec<serde_json::Value> = p.events.iter().map(|(at, e)| serde_json::json!({ "at": at.to_rfc3339(), "event": e })).collect();
            self.db.insert_evidence(&s.id, &p.lesson, &p.step, p.attempts, &serde_json::Value::Array(events).to_string()).await?;
        }
        if !newly.is_empty() {
            self.notify();
        }
        Ok(())
    }

    fn reap_periodically(self: Arc<Self>) {
        let weak = Arc::downgrade(&self);
        // Often enough that a session outlives its limit by a third of it at most.
        let every = (self.opts.idle.min(self.opts.lifetime) / 3).clamp(Duration::from_secs(1), Duration::from_secs(30));
        drop(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                let Some(lab) = weak.upgrade() else { return };
                let now = Utc::now();
                let members = lab.roster.sessions();
                let expired: Vec<String> = lab
                    .sessions_lock()
                    .values()
                    // A class member's lab lasts as long as the class.
                    .filter(|s| !members.contains(&s.id))
                    .filter(|s| {
                        let idle = (now - s.last_seen()).to_std().unwrap_or_default();
                        let age = (now - s.created).to_std().unwrap_or_default();
                        idle > lab.opts.idle || age > lab.opts.lifetime
                    })
                    .map(|s| s.id.clone())
                    .collect();
                for id in expired {
                    tracing::info!(session = %id, "removing an expired lab session");
                    if let Err(e) = lab.remove_session(&id).await {
                        tracing::warn!(session = %id, "remove lab session: {e:#}");
                    }
                }
            }
        });
    }

    pub(crate) fn info(&self, s: &Session) -> SessionInfo {
        let expires = (s.last_seen() + chrono::Duration::from_std(self.opts.idle).unwrap_or_default())
            .min(s.created + chrono::Duration::from_std(self.opts.lifetime).unwrap_or_default());
        SessionInfo { id: s.id.clone(), created: s.created.to_rfc3339(), expires: expires.to_rfc3339() }
    }
}

/// The lab's HTTP routes (under the web listener).
pub fn routes(lab: Arc<Lab>) -> Router {
    Router::new()
        .route("/api/lessons", get(lessons))
        .route("/api/sessions", post(create_session))
        .route("/api/sessions/{id}", get(session_status).delete(delete_session))
        .route("/api/sessions/{id}/lesson", post(select_lesson))
        .route("/api/sessions/{id}/terminal", get(terminal))
        .route("/api/sessions/{id}/hand", post(raise_hand).delete(lower_hand))
        .route("/lab/{id}/ports/{port}", any(port_root))
        .route("/lab/{id}/ports/{port}/", any(port_proxy_root))
        .route("/lab/{id}/ports/{port}/{*rest}", any(port_proxy))
        .with_state(lab)
}

async fn lessons(State(lab): State<LabState>) -> Json<Vec<Lesson>> {
    Json(lab.lessons.as_ref().clone())
}

async fn create_session(State(lab): State<LabState>) -> Result<Response, LabError> {
    // A session's workstation is a Linux container: on a host that cannot run them
    // (see `runtime::probe_linux`) there is nothing to offer but the reason.
    if let Some(why) = lab.engine.linux_missing() {
        return Err(LabError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("lab sessions need Linux containers, and {} ({why})", berth_engine::runtime::NO_LINUX),
        ));
    }
    if !lab.opts.open_playground {
        return Err(LabError::kind(StatusCode::FORBIDDEN, ErrorKind::ClassOnly, "this server has no open playground: join a class with its code"));
    }
    let s = lab.create_session().await?;
    Ok((StatusCode::CREATED, Json(lab.info(&s))).into_response())
}

async fn delete_session(State(lab): State<LabState>, Path(id): Path<String>) -> Result<StatusCode, LabError> {
    lab.session(&id)?;
    // A class member's lab holds their record (progress, the hand-in's evidence): only
    // an instructor ends it.
    if lab.member(&id).is_some() {
        return Err(LabError::new(StatusCode::FORBIDDEN, "a class member's lab is ended by the instructor, not removed by the student"));
    }
    lab.remove_session(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn session_status(State(lab): State<LabState>, Path(id): Path<String>) -> Result<Json<SessionStatus>, LabError> {
    let s = lab.session(&id)?;
    let (containers, images) = {
        let (engine, ns, id) = (lab.engine.clone(), s.namespace.clone(), s.id.clone());
        tokio::task::spawn_blocking(move || (status::containers(&engine, &ns, &id), status::images(&engine, &ns)))
            .await
            .map_err(|e| LabError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
    };
    let (mut class, mut messages, mut hand) = (None, Vec::new(), None);
    if let Some(m) = lab.member(&s.id) {
        let key = crate::classroom::members::name_key(&m.name);
        if let Some(c) = lab.db.class(&m.class).await.map_err(anyhow::Error::from)? {
            class = Some(Membership { class: crate::classroom::class_info(&c, Utc::now(), false), name: m.name.clone() });
        }
        messages = lab.db.messages(&m.class, Some(&key), 50).await.map_err(anyhow::Error::from)?.iter().map(crate::classroom::message).collect();
        hand = lab.db.hands(&m.class).await.map_err(anyhow::Error::from)?.into_iter().find(|h| h.name_key == key).map(|h| Hand { raised_at: h.raised_at.to_rfc3339(), note: h.note });
    }
    let t = s.tracker.lock().unwrap_or_else(|p| p.into_inner());
    let progress = t.done.iter().map(|(lesson, done)| LessonProgress { lesson: lesson.clone(), done: done.clone() }).collect();
    Ok(Json(SessionStatus {
        id: s.id.clone(),
        containers,
        images,
        lesson: t.lesson.clone(),
        progress,
        class,
        messages,
        hand,
        instructor_typing: s.controlled_by(),
    }))
}

async fn select_lesson(State(lab): State<LabState>, Path(id): Path<String>, body: axum::body::Bytes) -> Result<StatusCode, LabError> {
    let s = lab.session(&id)?;
    let req: SelectLesson = serde_json::from_slice(&body).map_err(|e| LabError::new(StatusCode::BAD_REQUEST, format!("invalid request: {e}")))?;
    if !lab.lessons.iter().any(|l| l.id == req.lesson) {
        return Err(LabError::new(StatusCode::NOT_FOUND, format!("no such lesson: {}", req.lesson)));
    }
    lab.select_lesson(&s, &req.lesson).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A class member's raised hand (with an optional note), until an instructor answers.
async fn raise_hand(State(lab): State<LabState>, Path(id): Path<String>, body: axum::body::Bytes) -> Result<StatusCode, LabError> {
    let s = lab.session(&id)?;
    let req: berth_lessons::api::RaiseHand = serde_json::from_slice(&body).map_err(|e| LabError::new(StatusCode::BAD_REQUEST, format!("invalid request: {e}")))?;
    let m = lab.member(&s.id).ok_or_else(|| LabError::kind(StatusCode::BAD_REQUEST, ErrorKind::NotInClass, "hands are raised in a class: this lab is not a class member's"))?;
    let note = crate::classroom::check_text(&req.note, 500, true).map_err(|e| LabError::kind(StatusCode::BAD_REQUEST, ErrorKind::BadMessage, e))?;
    lab.db.raise_hand(&m.class, &crate::classroom::members::name_key(&m.name), &m.name, &note).await.map_err(anyhow::Error::from)?;
    lab.notify();
    Ok(StatusCode::NO_CONTENT)
}

async fn lower_hand(State(lab): State<LabState>, Path(id): Path<String>) -> Result<StatusCode, LabError> {
    let s = lab.session(&id)?;
    if let Some(m) = lab.member(&s.id) {
        lab.db.lower_hand(&m.class, &crate::classroom::members::name_key(&m.name)).await.map_err(anyhow::Error::from)?;
        lab.notify();
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn terminal(State(lab): State<LabState>, Path(id): Path<String>, ws: WebSocketUpgrade) -> Result<Response, LabError> {
    let s = lab.session(&id)?;
    Ok(ws.on_upgrade(move |socket| async move {
        let _viewer = s.viewer(&lab);
        serve_terminal(s.clone(), socket, Keys::Student).await
    }))
}

/// Who is at a terminal page, and so what its keystrokes do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Keys {
    /// The student: typed, and counted as their activity.
    Student,
    /// An instructor who took over: typed, not the student's activity.
    Instructor,
    /// An instructor watching: dropped.
    Watch,
}

/// One page's connection to the session's shell: the scrollback first, then live output;
/// binary frames from the page are keystrokes, text frames are `TerminalControl`. Ends
/// (the page reconnects) when the lab is taken down (reset or ended).
pub(crate) async fn serve_terminal(s: Arc<Session>, socket: WebSocket, keys: Keys) {
    let (replay, mut output) = s.terminal.connect();
    let (mut sink, mut input) = socket.split();
    if sink.send(Message::Binary(replay.into())).await.is_err() {
        return;
    }
    let mut check = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = check.tick() => {
                if s.terminal.is_closed() {
                    let _ = sink.send(Message::Close(None)).await;
                    return;
                }
            },
            out = output.recv() => match out {
                Ok(bytes) => {
                    if sink.send(Message::Binary(bytes)).await.is_err() {
                        return;
                    }
                }
                // Too slow a page: it reconnects and gets the scrollback again.
                Err(_) => {
                    let _ = sink.send(Message::Close(None)).await;
                    return;
                }
            },
            msg = input.next() => match msg {
                Some(Ok(Message::Binary(b))) => match keys {
                    Keys::Student => {
                        s.touch();
                        s.typed();
                        s.terminal.write(&b);
                    }
                    Keys::Instructor => s.terminal.write(&b),
                    Keys::Watch => {}
                },
                // The size is the student's page's: a watcher's window must not reflow it.
                Some(Ok(Message::Text(t))) if keys == Keys::Student => {
                    if let Ok(TerminalControl::Resize { cols, rows }) = serde_json::from_str::<TerminalControl>(&t) {
                        let term = s.terminal.clone();
                        let _ = tokio::task::spawn_blocking(move || term.resize(cols, rows)).await;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

/// An instructor at a student's terminal: watching (their keys go nowhere) or, with
/// `control`, typing (the student's page says an instructor is). `hold` is kept as
/// long as the connection (the classroom's count of watchers).
pub(crate) fn instructor_terminal(lab: &Lab, session: &str, who: String, control: bool, ws: WebSocketUpgrade, hold: impl Send + 'static) -> Result<Response, LabError> {
    let s = lab.get_session(session).ok_or_else(|| LabError::kind(StatusCode::CONFLICT, ErrorKind::LabEnded, "the student's lab is ended"))?;
    Ok(ws.on_upgrade(move |socket| async move {
        let _hold = hold;
        let _typing = control.then(|| s.controller(&who));
        let keys = if control { Keys::Instructor } else { Keys::Watch };
        serve_terminal(s, socket, keys).await
    }))
}

async fn port_root(Path((id, port)): Path<(String, u16)>) -> Redirect {
    // Relative links in the student's page must resolve below the port's path.
    Redirect::permanent(&format!("/lab/{id}/ports/{port}/"))
}

async fn port_proxy_root(State(lab): State<LabState>, Path((id, port)): Path<(String, u16)>, req: Request) -> Result<Response, LabError> {
    open_port(lab, id, port, String::new(), req).await
}

async fn port_proxy(State(lab): State<LabState>, Path((id, port, rest)): Path<(String, u16, String)>, req: Request) -> Result<Response, LabError> {
    open_port(lab, id, port, rest, req).await
}

async fn open_port(lab: LabState, id: String, port: u16, rest: String, req: Request) -> Result<Response, LabError> {
    let s = lab.session(&id)?;
    lab.engine.note_request(&s.namespace, "port-open", &[("port", &port.to_string())]);
    let mut resp = proxy::forward(s.network(), port, &rest, req).await;
    // The student's page must not be able to script the playground's origin.
    resp.headers_mut().insert(header::CONTENT_SECURITY_POLICY, header::HeaderValue::from_static("sandbox allow-forms allow-scripts allow-popups"));
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("256m").unwrap(), 256 << 20);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert!(parse_size("lots").is_err());
        assert_eq!(parse_duration("90m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert!(parse_duration("2 weeks").is_err());
    }
}
