//! Health and metrics, for Kubernetes' probes and Prometheus (issue 15), on the web
//! listener (`--listen`; a server without one has neither):
//!
//! - `GET /healthz`: liveness. 200 while the process serves HTTP, and nothing else is
//!   checked: a liveness probe that looked at the database would have the kubelet
//!   restart every server when the database has a bad minute.
//! - `GET /readyz`: readiness, whether this server can take new lab sessions now: its
//!   engine and lab are open, the lab database answers, and Linux containers run here.
//!   503 with the reasons, one a line, otherwise.
//! - `GET /metrics`: the Prometheus text format (0.0.4). State (sessions, containers,
//!   each session's CPU, memory, processes and disk) is read when scraped (see
//!   [`Now`]); request latencies are counted as requests end (see [`Requests`]).
//!
//! The probes are open (the kubelet sends no token). `/metrics` names no student, only
//! session and class ids, but a lab server faces students' browsers: it answers
//! loopback clients and holders of `--metrics-token` only.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use berth_engine::Engine;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use sha2::{Digest, Sha256};

use crate::cluster::Role;
use crate::lab::{Db, Lab};

/// How long `/readyz` waits for the database's answer: within the kubelet's default
/// probe timeout (1 s), so a slow database reads as "not ready", not as a probe that
/// timed out.
const DB_TIMEOUT: Duration = Duration::from_millis(800);

/// `--metrics-token`: the bearer token `/metrics` also answers to. Kept out of `Debug`
/// output, as the database URL is.
#[derive(Clone)]
pub struct MetricsToken(String);

impl FromStr for MetricsToken {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Trimmed: a Secret made from a file often ends in a newline no client sends.
        let s = s.trim();
        // An empty token would let `Authorization: Bearer ` in.
        if s.is_empty() {
            return Err("the metrics token must not be empty".into());
        }
        Ok(MetricsToken(s.to_string()))
    }
}

impl std::fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsToken(..)")
    }
}

/// Which listener a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Listener {
    /// The playground, lab and classroom (`--listen`).
    Web,
    /// The Docker Engine API: `--docker-host`s and every lab session's socket.
    Docker,
}

impl Listener {
    fn as_str(self) -> &'static str {
        match self {
            Listener::Web => "web",
            Listener::Docker => "docker",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    listener: &'static str,
    method: &'static str,
    /// The route's template (`/containers/{id}/json`), never the path: one series per
    /// container id or session id would grow without end.
    route: String,
    /// `2xx`, `4xx`, …: the class is what alerts look at, and it keeps series few.
    status: &'static str,
}

type LatencyFamily = Family<RequestLabels, Histogram, fn() -> Histogram>;

/// Request latencies of the web listener and of the Docker APIs: from the request to
/// its answer's head (a streamed body, `logs -f` or a pull's progress, is not timed:
/// it lasts as long as the client likes). Cheap to clone; all clones count together.
#[derive(Clone)]
pub struct Requests(LatencyFamily);

/// Seconds: a page's JSON in milliseconds up to a pull or a build in minutes.
const LATENCY_BUCKETS: [f64; 15] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0];

impl Default for Requests {
    fn default() -> Self {
        Requests(Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS)))
    }
}

impl Requests {
    /// `router` with its requests timed. A layer of the router itself (not around it),
    /// so it runs after routing and sees the route's template.
    pub fn instrument(&self, router: Router, listener: Listener) -> Router {
        router.layer(axum::middleware::from_fn_with_state((self.clone(), listener), time_request))
    }
}

async fn time_request(State((requests, listener)): State<(Requests, Listener)>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = method_label(req.method());
    // No template: the router's fallback (an unknown path), one series for them all.
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let resp = next.run(req).await;
    let labels = RequestLabels { listener: listener.as_str(), method, route, status: status_class(resp.status()) };
    requests.0.get_or_create(&labels).observe(start.elapsed().as_secs_f64());
    resp
}

/// The standard methods by name; any other (a client may send anything) as `other`.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

fn status_class(s: StatusCode) -> &'static str {
    match s.as_u16() / 100 {
        1 => "1xx",
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

/// The server's parts as they open (the web listener answers before they are: a
/// liveness probe must not fail while a restart reopens thirty sessions), and what
/// the scrape reads.
pub struct Parts {
    pub role: Role,
    pub engine: OnceLock<Arc<Engine>>,
    pub lab: OnceLock<Arc<Lab>>,
    /// A hub's database (it has no engine or lab).
    pub hub_db: OnceLock<Db>,
}

impl Parts {
    pub fn new(role: Role) -> Parts {
        Parts { role, engine: OnceLock::new(), lab: OnceLock::new(), hub_db: OnceLock::new() }
    }
}

/// The probes' and `/metrics`' state.
pub struct Metrics {
    parts: Arc<Parts>,
    registry: Registry,
    token: Option<MetricsToken>,
}

impl Metrics {
    pub fn new(parts: Arc<Parts>, requests: &Requests, token: Option<MetricsToken>) -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("berth");
        registry.register_with_unit(
            "http_request_duration",
            "Time from a request to its answer's head, by listener (web: the playground, lab and classroom; docker: the Docker Engine API, lab sessions' included), method, route template and status class",
            Unit::Seconds,
            requests.0.clone(),
        );
        registry.register_collector(Box::new(Now { parts: parts.clone(), walked: Default::default() }));
        registry.register_collector(Box::new(Process));
        Arc::new(Metrics { parts, registry, token })
    }

    /// The routes: `/healthz`, `/readyz`, `/metrics`.
    pub fn routes(self: &Arc<Self>) -> Router {
        Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).route("/metrics", get(metrics)).with_state(self.clone())
    }

    /// Why this server cannot take new sessions now (empty: it can). A hub can when it
    /// reaches the database (where it finds the nodes).
    async fn not_ready(&self) -> Vec<String> {
        let mut why = Vec::new();
        let db = if self.parts.role == Role::Hub {
            let db = self.parts.hub_db.get();
            if db.is_none() {
                why.push("the hub's database is not open yet".to_string());
            }
            db
        } else {
            match self.parts.engine.get() {
                None => why.push("the engine is not open yet".to_string()),
                Some(e) => {
                    if let Some(m) = e.linux_missing() {
                        why.push(format!("{} ({m}): lab sessions' workstations are Linux containers", berth_engine::runtime::NO_LINUX));
                    }
                }
            }
            let lab = self.parts.lab.get();
            if lab.is_none() {
                why.push("the lab is not open yet".to_string());
            }
            lab.map(|l| &l.db)
        };
        if let Some(db) = db {
            match tokio::time::timeout(DB_TIMEOUT, db.ping()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => why.push(e.to_string()),
                Err(_) => why.push(format!("lab database: no answer within {} ms", DB_TIMEOUT.as_millis())),
            }
        }
        why
    }

    /// Whether this client may read `/metrics`: it holds the token, or it is on this
    /// machine and no proxy forwarded its request (a TLS proxy on the same machine
    /// connects from loopback for every student).
    fn may_scrape(&self, peer: SocketAddr, headers: &HeaderMap) -> bool {
        if let Some(MetricsToken(token)) = &self.token {
            let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
            // Digests compared, not the strings: `==` stops at the first difference,
            // and how long it took would tell a guesser how much of a token was right.
            if given.is_some_and(|g| Sha256::digest(g.trim()) == Sha256::digest(token)) {
                return true;
            }
        }
        let forwarded = ["forwarded", "x-forwarded-for", "x-real-ip"].iter().any(|h| headers.contains_key(*h));
        peer.ip().to_canonical().is_loopback() && !forwarded
    }
}

async fn healthz() -> Response {
    plain(StatusCode::OK, "ok\n".into())
}

async fn readyz(State(m): State<Arc<Metrics>>) -> Response {
    let why = m.not_ready().await;
    if why.is_empty() {
        return plain(StatusCode::OK, "ready\n".into());
    }
    plain(StatusCode::SERVICE_UNAVAILABLE, format!("not ready:\n{}", why.iter().map(|w| format!("- {w}\n")).collect::<String>()))
}

async fn metrics(State(m): State<Arc<Metrics>>, ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: HeaderMap) -> Response {
    if !m.may_scrape(peer, &headers) {
        return plain(StatusCode::FORBIDDEN, "/metrics answers clients on this machine, or with the token of --metrics-token (Authorization: Bearer TOKEN)\n".into());
    }
    // Reading cgroups and file systems blocks.
    let text = tokio::task::spawn_blocking(move || {
        let mut s = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut s, &m.registry).map(|_| s)
    })
    .await;
    match text {
        Ok(Ok(s)) => ([(header::CONTENT_TYPE, prometheus_client::encoding::prometheus_text::CONTENT_TYPE), (header::CACHE_CONTROL, "no-store")], s).into_response(),
        _ => plain(StatusCode::INTERNAL_SERVER_ERROR, "the metrics could not be encoded\n".into()),
    }
}

fn plain(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], body).into_response()
}

/// The server's state, read at each scrape. Not gauges set as things happen: sessions
/// come and go, and a gauge family would keep the series of every session ever made.
struct Now {
    parts: Arc<Parts>,
    /// Disk usage of sessions without a disk of their own, by namespace, and when it
    /// was measured (see [`WALK_EVERY`]).
    walked: std::sync::Mutex<std::collections::HashMap<String, (Instant, u64)>>,
}

/// How long a session's disk usage found by walking its files is reused. With a disk of
/// its own (`--lab-disk`, the default) it is a statfs, read at each scrape; without
/// (`--lab-disk 0`) every file of its home, volumes and layers is looked at: 2 to 3 s
/// for 20 sessions of 20,000 files each, measured, too much for every scrape.
const WALK_EVERY: Duration = Duration::from_secs(60);

/// `Collector` wants it; the engine and lab have none.
impl std::fmt::Debug for Now {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Now")
    }
}

/// One session's usage, read before any of it is written (the encoder writes one
/// metric's series together).
struct SessionSample {
    labels: Vec<(&'static str, String)>,
    cpu_seconds: f64,
    memory: u64,
    pids: u64,
    disk: u64,
}

/// A per-session gauge: its name, help, unit and value.
type SessionGauge = (&'static str, &'static str, Option<Unit>, fn(&SessionSample) -> u64);

impl Now {
    /// What a session's `--lab-disk` limit is held to (`Engine::disk_usage`); a walk's
    /// result is reused for [`WALK_EVERY`]. The lock is held through a walk, so two
    /// scrapes at once do not walk twice.
    fn disk_usage(&self, engine: &Engine, ns: &str) -> u64 {
        if engine.disk(ns).is_some() {
            return engine.disk_usage(ns);
        }
        let mut walked = self.walked.lock().unwrap_or_else(|p| p.into_inner());
        match walked.get(ns) {
            Some((at, bytes)) if at.elapsed() < WALK_EVERY => *bytes,
            _ => {
                let bytes = engine.disk_usage(ns);
                walked.insert(ns.to_string(), (Instant::now(), bytes));
                bytes
            }
        }
    }
}

impl Collector for Now {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(engine) = self.parts.engine.get() else { return Ok(()) };
        {
            let mut m = enc.encode_descriptor("containers", "Containers by state, in all namespaces (lab sessions' workstations included)", None, MetricType::Gauge)?;
            for (status, n) in engine.container_counts() {
                ConstGauge::new(n as i64).encode(m.encode_family(&[("state", status.as_str())])?)?;
            }
        }
        let Some(lab) = self.parts.lab.get() else { return Ok(()) };
        let sessions = lab.sessions();
        ConstGauge::new(sessions.len() as i64).encode(enc.encode_descriptor("lab_sessions", "Lab sessions open now", None, MetricType::Gauge)?)?;
        let samples: Vec<SessionSample> = sessions
            .iter()
            .map(|s| {
                let mut labels = vec![("session", s.id.clone())];
                if let Some(m) = lab.member(&s.id) {
                    labels.push(("class", m.class));
                }
                // The envelope as the engine keeps it (a class's limits may differ from
                // the server's; its cgroup name does not). None: no Linux containers here.
                let envelope = engine.policy(&s.namespace).and_then(|p| p.envelope);
                SessionSample {
                    labels,
                    cpu_seconds: envelope.as_ref().map_or(0, |e| e.cpu_usage_ns()) as f64 / 1e9,
                    memory: envelope.as_ref().map_or(0, |e| e.memory_usage()),
                    pids: envelope.as_ref().map_or(0, |e| e.pids_current()),
                    disk: self.disk_usage(engine, &s.namespace),
                }
            })
            .collect();
        self.walked.lock().unwrap_or_else(|p| p.into_inner()).retain(|ns, _| sessions.iter().any(|s| s.namespace == *ns));
        {
            let mut m = enc.encode_descriptor("lab_session_cpu", "CPU time a lab session (its containers, workstation, execs and builds) used", Some(&Unit::Seconds), MetricType::Counter)?;
            for s in &samples {
                ConstCounter::new(s.cpu_seconds).encode(m.encode_family(&s.labels)?)?;
            }
        }
        let gauges: [SessionGauge; 3] = [
            ("lab_session_memory", "Memory a lab session is charged now", Some(Unit::Bytes), |s| s.memory),
            ("lab_session_processes", "Processes in a lab session now", None, |s| s.pids),
            ("lab_session_disk_used", "Disk a lab session takes, as its --lab-disk limit counts it", Some(Unit::Bytes), |s| s.disk),
        ];
        for (name, help, unit, value) in gauges {
            let mut m = enc.encode_descriptor(name, help, unit.as_ref(), MetricType::Gauge)?;
            for s in &samples {
                ConstGauge::new(value(s) as i64).encode(m.encode_family(&s.labels)?)?;
            }
        }
        Ok(())
    }
}

/// This process's resident memory and open files, from /proc (the client library has
/// no process collector).
#[derive(Debug)]
struct Process;

impl Collector for Process {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let rss_kb = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| s.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok()));
        if let Some(kb) = rss_kb {
            ConstGauge::new(kb * 1024).encode(enc.encode_descriptor("process_resident_memory", "Resident memory of the berth server process", Some(&Unit::Bytes), MetricType::Gauge)?)?;
        }
        // The directory's own handle is among them, as in Prometheus' own process metrics.
        if let Ok(rd) = std::fs::read_dir("/proc/self/fd") {
            ConstGauge::new(rd.count() as i64).encode(enc.encode_descriptor("process_open_fds", "Open file descriptors of the berth server process", None, MetricType::Gauge)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_without_a_proxy_or_the_token_may_scrape() {
        let m = |token: Option<&str>| Metrics { parts: Arc::new(Parts::new(Role::All)), registry: Registry::default(), token: token.map(|t| t.parse().unwrap()) };
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:5000".parse().unwrap();
        let remote: SocketAddr = "10.1.2.3:5000".parse().unwrap();
        let none = HeaderMap::new();
        let mut proxied = HeaderMap::new();
        proxied.insert("x-forwarded-for", "10.9.9.9".parse().unwrap());
        let mut bearer = HeaderMap::new();
        bearer.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        let mut wrong = HeaderMap::new();
        wrong.insert(header::AUTHORIZATION, "Bearer s3cre".parse().unwrap());
        assert!(m(None).may_scrape(local, &none));
        assert!(m(None).may_scrape(mapped, &none));
        assert!(!m(None).may_scrape(local, &proxied));
        assert!(!m(None).may_scrape(remote, &none));
        assert!(!m(None).may_scrape(remote, &bearer), "no token configured: none accepted");
        assert!(m(Some("s3cret")).may_scrape(remote, &bearer));
        assert!(!m(Some("s3cret")).may_scrape(remote, &wrong));
        assert!(" ".parse::<MetricsToken>().is_err());
        assert!(m(Some("s3cret\n")).may_scrape(remote, &bearer));
    }

    #[test]
    fn labels_are_bounded() {
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
        assert_eq!(status_class(StatusCode::SWITCHING_PROTOCOLS), "1xx");
        assert_eq!(status_class(StatusCode::NOT_FOUND), "4xx");
    }
}
