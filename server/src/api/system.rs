//! `/_ping`, `/version`, `/info`, `/events`, `/system/df`.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use berth_engine::container::Status;
use berth_engine::events::Event;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ApiError, ApiState, API_VERSION, MIN_API_VERSION};

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/_ping", get(ping).head(ping))
        .route("/version", get(version))
        .route("/info", get(info))
        .route("/events", get(events))
        .route("/system/df", get(disk_usage))
}

/// `docker system df`: images (with the bytes they share), containers (with their
/// sizes), volumes (with theirs and how many containers use them). `type` (API 1.42)
/// picks the parts; the others are left out. Berth's classic builder keeps no
/// build cache apart from images, so that part is always empty.
async fn disk_usage(State(s): State<ApiState>, version: super::ApiVersion, Query(q): Query<Vec<(String, String)>>) -> Result<Json<Value>, ApiError> {
    let mut types: Vec<String> = Vec::new();
    for (k, v) in &q {
        if k == "type" {
            if !["container", "image", "volume", "build-cache"].contains(&v.as_str()) {
                return Err(ApiError::bad_request(format!("unknown object type: {v}")));
            }
            types.push(v.clone());
        }
    }
    let wants = |t: &str| types.is_empty() || types.iter().any(|x| x == t);
    let du = super::blocking(move || Ok(s.engine.system_df(&s.namespace)?)).await?;
    let now = chrono::Utc::now();
    let mut out = serde_json::Map::new();
    if wants("image") {
        out.insert("LayersSize".into(), json!(du.layers_size));
        let images: Vec<Value> = du
            .images
            .iter()
            .map(|i| {
                let mut v = super::images::summary_json(&i.summary, &i.summary.repo_tags, version);
                v["SharedSize"] = json!(i.shared_size);
                v
            })
            .collect();
        out.insert("Images".into(), json!(images));
    }
    if wants("container") {
        let containers: Vec<Value> = du
            .containers
            .iter()
            .map(|(c, size)| {
                let mut v = super::containers::summary(c, now, version);
                super::containers::add_sizes(&mut v, *size);
                v
            })
            .collect();
        out.insert("Containers".into(), json!(containers));
    }
    if wants("volume") {
        let volumes: Vec<Value> = du
            .volumes
            .iter()
            .map(|u| {
                let mut v = super::volumes::volume_json(&u.volume);
                v["UsageData"] = json!({ "Size": u.size, "RefCount": u.ref_count });
                v
            })
            .collect();
        out.insert("Volumes".into(), json!(volumes));
    }
    if wants("build-cache") {
        out.insert("BuildCache".into(), json!([]));
        // The builder's bytes apart, as API 1.41 and older report them.
        if version.below(1, 42) {
            out.insert("BuilderSize".into(), json!(0));
        }
    }
    Ok(Json(Value::Object(out)))
}

async fn ping() -> Response {
    let mut h = HeaderMap::new();
    h.insert("API-Version", HeaderValue::from_static(API_VERSION));
    // "1": the classic builder (BuildKit is not offered).
    h.insert("Builder-Version", HeaderValue::from_static("1"));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert("OSType", HeaderValue::from_static("linux"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, no-store, must-revalidate"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    (h, "OK").into_response()
}

fn kernel_version() -> String {
    nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default()
}

fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

async fn version() -> Json<Value> {
    let v = env!("CARGO_PKG_VERSION");
    Json(json!({
        "Platform": { "Name": "Berth" },
        "Components": [{ "Name": "Engine", "Version": v, "Details": {
            "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "Os": "linux",
            "Arch": arch(), "KernelVersion": kernel_version(), "GitCommit": "", "GoVersion": "",
        }}],
        "Version": v,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "",
        "GoVersion": "rust",
        "Os": "linux",
        "Arch": arch(),
        "KernelVersion": kernel_version(),
        "BuildTime": "",
    }))
}

async fn info(State(s): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let engine = s.engine.clone();
    let ns = s.namespace.clone();
    let (containers, images) = super::blocking(move || {
        let c = engine.containers(&ns);
        let i = engine.list_images(&ns, true)?;
        Ok((c, i.len()))
    })
    .await?;
    let count = |st: &[Status]| containers.iter().filter(|c| st.contains(&c.state.status)).count();
    let mirrors = s.engine.registry_mirrors();
    let runtimes: serde_json::Map<String, Value> =
        berth_engine::runtime::NAMES.iter().map(|n| (n.to_string(), json!({ "path": n }))).collect();
    // `docker info` prints these under WARNING: the one that matters on a host
    // without namespaces is that Linux images will not run.
    let mut warnings: Vec<String> =
        s.engine.linux_missing().map(|why| format!("WARNING: {}: {why}; only WebAssembly images run here", berth_engine::runtime::NO_LINUX)).into_iter().collect();
    let userns = s.engine.userns(&s.namespace).is_some();
    if s.engine.policy(&s.namespace).is_some() && !userns {
        // A lab session without one (the host cannot, or --no-lab-userns): say that
        // its root is the host's root.
        let why = s.engine.userns_missing().unwrap_or("the server runs sessions without them");
        warnings.push(format!("WARNING: no user namespaces ({why}): root in this lab's containers is root on the host"));
    }
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find_map(|l| l.strip_prefix("MemTotal:").map(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().unwrap_or(0) * 1024)))
        .unwrap_or(0);
    let hostname = nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default();
    let cgroup_v = if berth_engine::cgroup::is_v2() { "2" } else { "1" };
    Ok(Json(json!({
        "ID": "berth",
        "Containers": containers.len(),
        "ContainersRunning": count(&[Status::Running]),
        "ContainersPaused": count(&[Status::Paused]),
        "ContainersStopped": count(&[Status::Exited, Status::Created, Status::Dead]),
        "Images": images,
        "Driver": "overlayfs",
        "DriverStatus": [["Backing Filesystem", "overlayfs"]],
        "DockerRootDir": s.engine.root().display().to_string(),
        "Plugins": { "Volume": ["local"], "Network": ["null"], "Authorization": null, "Log": ["json-file"] },
        "MemoryLimit": true, "SwapLimit": false, "CpuCfsPeriod": true, "CpuCfsQuota": true,
        "PidsLimit": true, "IPv4Forwarding": false, "Debug": false,
        "NFd": 0, "NGoroutines": 0, "SystemTime": chrono::Utc::now().to_rfc3339(),
        "LoggingDriver": "json-file", "CgroupDriver": "cgroupfs", "CgroupVersion": cgroup_v,
        "NEventsListener": 0, "KernelVersion": kernel_version(),
        "OperatingSystem": "Berth", "OSVersion": "", "OSType": "linux", "Architecture": std::env::consts::ARCH,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": { "AllowNondistributableArtifactsCIDRs": null, "AllowNondistributableArtifactsHostnames": null,
            "InsecureRegistryCIDRs": ["127.0.0.0/8"], "IndexConfigs": {},
            "Mirrors": mirrors.iter().map(|m| format!("{}/", m.trim_end_matches('/'))).collect::<Vec<_>>() },
        "NCPU": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "MemTotal": mem, "Name": hostname, "Labels": [], "ExperimentalBuild": false,
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "Runtimes": runtimes, "DefaultRuntime": berth_engine::runtime::RUNC,
        "Swarm": { "NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": false, "Error": "", "RemoteManagers": null },
        "LiveRestoreEnabled": true, "Isolation": "", "InitBinary": "",
        "SecurityOptions": security_options(userns), "Warnings": warnings,
    })))
}

#[derive(Deserialize)]
struct EventsQuery {
    since: Option<String>,
    until: Option<String>,
    filters: Option<String>,
}

/// Docker's `since`/`until`: unix seconds (maybe fractional) or RFC 3339.
fn parse_when(s: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    if let Ok(f) = s.parse::<f64>() {
        let secs = f.trunc() as i64;
        let nanos = ((f - f.trunc()) * 1e9) as u32;
        return chrono::DateTime::from_timestamp(secs, nanos);
    }
    chrono::DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&chrono::Utc))
}

/// Docker's `filters` query: `{"type":["container"]}` or the old `{"type":{"container":true}}`.
pub fn parse_filters(raw: &Option<String>) -> Result<BTreeMap<String, Vec<String>>, ApiError> {
    let Some(raw) = raw.as_deref().filter(|r| !r.is_empty()) else { return Ok(BTreeMap::new()) };
    let v: Value = serde_json::from_str(raw).map_err(|e| ApiError::bad_request(format!("invalid filter: {e}")))?;
    let mut out = BTreeMap::new();
    if let Value::Object(m) = v {
        for (k, vals) in m {
            let list = match vals {
                Value::Array(a) => a.into_iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
                Value::Object(o) => o.into_iter().filter(|(_, b)| b.as_bool() == Some(true)).map(|(k, _)| k).collect(),
                _ => return Err(ApiError::bad_request(format!("invalid filter '{k}'"))),
            };
            out.insert(k, list);
        }
    } else {
        return Err(ApiError::bad_request("invalid filter: not an object"));
    }
    Ok(out)
}

/// The filter keys `docker events` takes (the swarm ones match no event here).
const EVENT_FILTERS: &[&str] = &["config", "container", "daemon", "event", "image", "label", "network", "node", "plugin", "scope", "secret", "service", "type", "volume"];

/// Docker's `events.Filter.Include`: every key given must match. The object keys
/// (`container`, `network`, `volume`, …) match an event whose actor's id or name
/// starts with a value; `image` a reference exactly, with or without its tag.
fn event_matches<'a>(e: &'a Event, f: &BTreeMap<String, Vec<String>>) -> bool {
    let values = |key: &str| f.get(key).filter(|v| !v.is_empty());
    let exact = |key: &str, source: &str| values(key).is_none_or(|v| v.iter().any(|x| x == source));
    let name = e.attributes.get("name").map(String::as_str).unwrap_or("");
    let fuzzy = |key: &str| values(key).is_none_or(|v| v.iter().any(|x| e.id.starts_with(x.as_str()) || name.starts_with(x.as_str())));
    let action_base = e.action.split(':').next().unwrap_or(&e.action);
    let image_name = e.attributes.get(if e.kind == "image" { "name" } else { "image" }).map(String::as_str).unwrap_or("");
    let untagged = |r: &'a str| r.rsplit_once(':').filter(|(_, t)| !t.contains('/')).map_or(r, |(n, _)| n);
    values("event").is_none_or(|v| v.iter().any(|t| t == &e.action || t == action_base))
        && exact("type", &e.kind)
        && exact("scope", "local")
        && ["config", "container", "daemon", "network", "node", "plugin", "secret", "service", "volume"].iter().all(|k| fuzzy(k))
        && values("image").is_none_or(|v| [e.id.as_str(), image_name, untagged(&e.id), untagged(image_name)].iter().any(|r| v.iter().any(|x| x == r)))
        // Every label given must match, as in Docker (MatchKVList).
        && f.get("label").is_none_or(|v| v.iter().all(|t| {
            let (k, v) = t.split_once('=').unwrap_or((t, ""));
            e.attributes.get(k).is_some_and(|x| v.is_empty() || x == v)
        }))
}

pub fn event_json(e: &Event) -> Value {
    let nanos = e.time.timestamp_nanos_opt().unwrap_or(0);
    let mut v = json!({
        "Type": e.kind,
        "Action": e.action,
        "Actor": { "ID": e.id, "Attributes": e.attributes },
        "scope": "local",
        "time": e.time.timestamp(),
        "timeNano": nanos,
    });
    if e.kind == "container" {
        v["status"] = json!(e.action);
        v["id"] = json!(e.id);
        if let Some(i) = e.attributes.get("image") {
            v["from"] = json!(i);
        }
    }
    v
}

async fn events(State(s): State<ApiState>, q: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>) -> Result<Response, ApiError> {
    let Query(q) = q?;
    let filters = parse_filters(&q.filters)?;
    if let Some(k) = filters.keys().find(|k| !EVENT_FILTERS.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!("invalid filter '{k}'")));
    }
    let since = q.since.as_deref().and_then(parse_when);
    let until = q.until.as_deref().and_then(parse_when);
    let (past, rx) = s.engine.events().subscribe(since.or(Some(chrono::Utc::now())).filter(|_| since.is_some()));
    let (tx, out) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(64);
    let ns = s.namespace.clone();
    tokio::task::spawn_blocking(move || {
        let send = |e: &Event| -> bool {
            // `request` events are Berth's own (lesson checks), not Docker's.
            if e.namespace != ns || e.kind == "request" || !event_matches(e, &filters) {
                return true;
            }
            let mut line = serde_json::to_vec(&event_json(e)).unwrap_or_default();
            line.push(b'\n');
            tx.blocking_send(Ok(bytes::Bytes::from(line))).is_ok()
        };
        for e in past.iter().filter(|e| until.is_none_or(|u| e.time <= u)) {
            if !send(e) {
                return;
            }
        }
        loop {
            if until.is_some_and(|u| chrono::Utc::now() > u) {
                return;
            }
            match rx.recv_timeout(std::time::Duration::from_millis(500)) {
                Ok(e) => {
                    if until.is_some_and(|u| e.time > u) || !send(&e) {
                        return;
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    if tx.is_closed() {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(out));
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// What the namespace's Linux containers run under, in Docker's `name=...,key=value`
/// form: `name=userns` in a lab session with its own id range, as dockerd says with
/// userns-remap. (No `name=cgroupns`: containers share the host's cgroup namespace.)
fn security_options(userns: bool) -> Vec<String> {
    let mut v = vec!["name=seccomp,profile=builtin".to_string()];
    if userns {
        v.push("name=userns".to_string());
    }
    v
}
