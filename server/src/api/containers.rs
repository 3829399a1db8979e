//! `/containers/...`: create, list, inspect, start, stop, kill, wait, remove, logs,
//! attach, and the smaller verbs.

use std::collections::BTreeMap;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use berth_engine::container::{Container, ContainerConfig, HostConfig, Status};
use berth_engine::logs::{self, LogFilter};
use berth_engine::spec::ShimRequest;
use berth_engine::{CreateRequest, WaitCondition};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

use super::hijack;
use super::system::parse_filters;
use super::{blocking, qbool, ApiError, ApiState, ApiVersion};

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/containers/create", post(create))
        .route("/containers/json", get(list))
        .route("/containers/prune", post(prune))
        .route("/containers/{id}/json", get(inspect))
        .route("/containers/{id}/start", post(start))
        .route("/containers/{id}/stop", post(stop))
        .route("/containers/{id}/restart", post(restart))
        .route("/containers/{id}/kill", post(kill))
        .route("/containers/{id}/pause", post(pause))
        .route("/containers/{id}/unpause", post(unpause))
        .route("/containers/{id}/wait", post(wait))
        .route("/containers/{id}", delete(remove))
        // `docker rm --link /PARENT/ALIAS` names a link by its path.
        .route("/containers/{parent}/{alias}", delete(remove_link))
        .route("/containers/{id}/update", post(update))
        .route("/containers/{id}/rename", post(rename))
        .route("/containers/{id}/logs", get(logs))
        .route("/containers/{id}/attach", post(attach))
        .route("/containers/{id}/resize", post(resize))
        .route("/containers/{id}/top", get(top))
        .route("/containers/{id}/changes", get(changes))
        .route("/containers/{id}/stats", get(stats))
}

type Q = Query<BTreeMap<String, String>>;

fn opt(q: &BTreeMap<String, String>, k: &str) -> Option<String> {
    q.get(k).cloned()
}

fn flag(q: &BTreeMap<String, String>, k: &str) -> bool {
    qbool(&opt(q, k))
}

fn rfc3339(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    match t {
        Some(t) => logs::docker_time(&t),
        None => "0001-01-01T00:00:00Z".into(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateBody {
    #[serde(flatten)]
    config: ContainerConfig,
    #[serde(default, deserialize_with = "berth_engine::container::nullable")]
    host_config: HostConfig,
    #[serde(default, deserialize_with = "berth_engine::container::nullable")]
    networking_config: NetworkingConfig,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct NetworkingConfig {
    /// An entry may be null too, as Docker reads it.
    #[serde(deserialize_with = "berth_engine::container::nullable")]
    endpoints_config: BTreeMap<String, Option<super::networks::EndpointSettings>>,
}

async fn create(State(s): State<ApiState>, Query(q): Q, body: Bytes) -> Result<Response, ApiError> {
    let b: CreateBody = serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    if b.config.image.is_empty() {
        return Err(ApiError::bad_request("config cannot be empty in order to create a container"));
    }
    let name = opt(&q, "name");
    let endpoints_config = b.networking_config.endpoints_config.into_iter().map(|(k, v)| Ok((k, v.unwrap_or_default().into_request()?))).collect::<Result<_, ApiError>>()?;
    let platform = opt(&q, "platform");
    let req = CreateRequest { name, config: b.config, host_config: b.host_config, endpoints_config, platform, ..Default::default() };
    let c = blocking(move || Ok(s.engine.create_container(&s.namespace, req)?)).await?;
    Ok((StatusCode::CREATED, Json(json!({ "Id": c.id, "Warnings": c.warnings }))).into_response())
}

fn ports_json(c: &Container) -> Vec<Value> {
    let mut out: Vec<Value> = c
        .ports
        .iter()
        .map(|p| json!({ "IP": p.host_ip, "PrivatePort": p.container_port, "PublicPort": p.host_port, "Type": p.proto }))
        .collect();
    // Exposed but unpublished ports show while the container runs, as in Docker.
    if c.state.status.is_live() {
        for k in c.config.exposed_ports.keys() {
            let (port, proto) = k.split_once('/').unwrap_or((k, "tcp"));
            let port: u16 = port.parse().unwrap_or(0);
            if !c.ports.iter().any(|p| p.container_port == port && p.proto == proto) {
                out.push(json!({ "PrivatePort": port, "Type": proto }));
            }
        }
    }
    out
}

fn mounts_json(c: &Container) -> Vec<Value> {
    c.mounts
        .iter()
        .map(|m| {
            let mut v = json!({
                "Type": m.kind, "Source": m.source, "Destination": m.destination,
                "Mode": if m.rw { "" } else { "ro" }, "RW": m.rw, "Propagation": if m.kind == "bind" { "rprivate" } else { "" },
            });
            if m.kind == "volume" {
                v["Name"] = json!(m.name);
                v["Driver"] = json!("local");
                v["Mode"] = json!(if m.rw { "z" } else { "ro" });
            }
            v
        })
        .collect()
}

fn command_text(c: &Container) -> String {
    std::iter::once(c.path.as_str()).chain(c.args.iter().map(String::as_str)).collect::<Vec<_>>().join(" ")
}

/// `SizeRw` and `SizeRootFs` of a container's summary, left out when 0 as dockerd
/// leaves them out.
pub(super) fn add_sizes(v: &mut Value, size: berth_engine::ContainerSize) {
    if size.rw > 0 {
        v["SizeRw"] = json!(size.rw);
    }
    if size.root_fs > 0 {
        v["SizeRootFs"] = json!(size.root_fs);
    }
}

pub(super) fn summary(c: &Container, now: chrono::DateTime<chrono::Utc>, version: ApiVersion) -> Value {
    json!({
        "Id": c.id,
        "Names": [format!("/{}", c.name)],
        "Image": c.config.image,
        "ImageID": c.image,
        "Command": command_text(c),
        "Created": c.created.timestamp(),
        "Ports": ports_json(c),
        "Labels": c.config.labels,
        "State": c.state.status.as_str(),
        "Status": c.status_text(now),
        "HostConfig": { "NetworkMode": "none" },
        "NetworkSettings": { "Networks": networks_json(c, version) },
        "Mounts": mounts_json(c),
    })
}

/// `NetworkSettings.Networks`: one entry per network the container is on, as
/// dockerd shows it: addresses only while it runs, the network's id once it has
/// started, the request's `IPAMConfig` and `DriverOpts` back as sent.
fn networks_json(c: &Container, version: ApiVersion) -> serde_json::Map<String, Value> {
    let live = c.state.status.is_live();
    let started = c.state.started_at.is_some();
    let short_id = &c.id[..12];
    let mut out = serde_json::Map::new();
    for e in &c.endpoints {
        let (ip, prefix, gw, mac, eid) = if live { (e.ip.as_str(), e.prefix, e.gateway.as_str(), e.mac.as_str(), e.endpoint_id.as_str()) } else { ("", 0, "", "", "") };
        // Endpoints are on bridge networks only: all but `bridge` are user-defined,
        // where names resolve.
        let user_defined = e.network != berth_engine::network::DEFAULT;
        let mut aliases = e.aliases.clone();
        // Before API 1.45 Docker lists the short id among the aliases on a user-defined
        // network (dockerd 20.10 from the first start on); since, only those asked for.
        if user_defined && started && version.below(1, 45) && !aliases.iter().any(|a| a == short_id) {
            aliases.push(short_id.to_string());
        }
        // API 1.44+: every name the embedded DNS answers for it there.
        let mut dns_names: Vec<&str> = vec![];
        if user_defined && started {
            for n in std::iter::once(c.name.as_str()).chain(e.aliases.iter().map(String::as_str)).chain([short_id]) {
                if !dns_names.contains(&n) {
                    dns_names.push(n);
                }
            }
        }
        let or_null = |v: Value, set: bool| if set { v } else { Value::Null };
        out.insert(
            e.network.clone(),
            json!({
                "IPAMConfig": e.ipam_config.as_ref().map(|ip| if ip.is_empty() { json!({}) } else { json!({ "IPv4Address": ip }) }),
                "Links": null, "Aliases": or_null(json!(aliases), !aliases.is_empty()),
                "MacAddress": mac, "DriverOpts": or_null(json!({}), e.driver_opts), "GwPriority": 0,
                "NetworkID": if started { e.network_id.as_str() } else { "" }, "EndpointID": eid,
                "Gateway": gw, "IPAddress": ip, "IPPrefixLen": prefix, "IPv6Gateway": "", "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0, "DNSNames": or_null(json!(dns_names), !dns_names.is_empty()),
            }),
        );
    }
    match c.host_config.network_mode.as_str() {
        "host" | "none" => {
            let mode = c.host_config.network_mode.clone();
            out.insert(mode, json!({ "NetworkID": "", "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "MacAddress": "" }));
        }
        _ => {}
    }
    out
}

fn network_settings(c: &Container, ports: Value, version: ApiVersion) -> Value {
    // The top-level fields describe the default bridge only (Docker's legacy shape),
    // IPv6 ones always empty: Berth's networks are IPv4 only.
    let bridge = c.endpoints.iter().find(|e| e.network == berth_engine::network::DEFAULT).filter(|_| c.state.status.is_live());
    json!({
        "Bridge": "", "SandboxID": "", "SandboxKey": "", "HairpinMode": false,
        "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
        "Ports": ports,
        "SecondaryIPAddresses": null, "SecondaryIPv6Addresses": null,
        "EndpointID": bridge.map_or("", |e| e.endpoint_id.as_str()),
        "Gateway": bridge.map_or("", |e| e.gateway.as_str()),
        "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
        "IPAddress": bridge.map_or("", |e| e.ip.as_str()),
        "IPPrefixLen": bridge.map_or(0, |e| e.prefix),
        "IPv6Gateway": "",
        "MacAddress": bridge.map_or("", |e| e.mac.as_str()),
        "Networks": networks_json(c, version),
    })
}

fn matches_filters(c: &Container, f: &BTreeMap<String, Vec<String>>, image_ids: &dyn Fn(&str) -> Option<String>) -> bool {
    let any = |key: &str, pred: &dyn Fn(&str) -> bool| f.get(key).is_none_or(|v| v.is_empty() || v.iter().any(|x| pred(x)));
    any("name", &|n| c.name.contains(n.trim_start_matches('/')))
        && any("id", &|i| c.id.starts_with(i))
        && any("status", &|st| st == c.state.status.as_str())
        && any("exited", &|code| c.state.status == Status::Exited && code.parse() == Ok(c.state.exit_code))
        // Every label given must match (Docker's MatchKVList): compose finds a
        // service's containers by project, service and number labels together.
        && f.get("label").is_none_or(|v| v.iter().all(|l| match l.split_once('=') {
            Some((k, v)) => c.config.labels.get(k).is_some_and(|x| x == v),
            None => c.config.labels.contains_key(l),
        }))
        && any("ancestor", &|a| c.config.image == a || image_ids(a).is_some_and(|id| id == c.image))
        && any("health", &|h| h == c.state.health.as_ref().map_or("none", |h| h.status.as_str()))
}

/// A `publish` or `expose` filter's value: `PORT[-PORT][/PROTO]` (tcp by default).
fn port_filter(key: &str, v: &str) -> Result<(u16, u16, String), ApiError> {
    let bad = || ApiError::bad_request(format!("invalid filter '{key}={v}'"));
    let (ports, proto) = v.split_once('/').unwrap_or((v, "tcp"));
    let (lo, hi) = ports.split_once('-').unwrap_or((ports, ports));
    let (lo, hi): (u16, u16) = (lo.parse().map_err(|_| bad())?, hi.parse().map_err(|_| bad())?);
    if lo > hi || !["tcp", "udp", "sctp"].contains(&proto) {
        return Err(bad());
    }
    Ok((lo, hi, proto.to_string()))
}

/// The filters `docker ps` shows through: a container's networks (name or id), its
/// published and exposed ports, its mounts (volume name or source, or destination),
/// judged on the summary `docker ps` prints, so a filter and the listing agree.
fn matches_summary_filters(v: &Value, f: &BTreeMap<String, Vec<String>>) -> Result<bool, ApiError> {
    let any = |key: &str, pred: &dyn Fn(&str) -> Result<bool, ApiError>| -> Result<bool, ApiError> {
        match f.get(key).filter(|v| !v.is_empty()) {
            None => Ok(true),
            Some(values) => {
                for x in values {
                    if pred(x)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
        }
    };
    let empty = vec![];
    let list = |key: &str| v[key].as_array().unwrap_or(&empty).clone();
    let networks = v["NetworkSettings"]["Networks"].as_object().cloned().unwrap_or_default();
    let network = any("network", &|n| Ok(networks.iter().any(|(name, e)| name == n || e["NetworkID"].as_str() == Some(n))))?;
    let ports = list("Ports");
    let port_in = |key: &str, x: &str, published: bool| -> Result<bool, ApiError> {
        let (lo, hi, proto) = port_filter(key, x)?;
        Ok(ports.iter().any(|p| {
            let private = p["PrivatePort"].as_u64().unwrap_or(0);
            (!published || p["PublicPort"].as_u64().is_some()) && (lo as u64..=hi as u64).contains(&private) && p["Type"] == proto.as_str()
        }))
    };
    let publish = any("publish", &|x| port_in("publish", x, true))?;
    let expose = any("expose", &|x| port_in("expose", x, false))?;
    let mounts = list("Mounts");
    let volume = any("volume", &|x| {
        Ok(mounts.iter().any(|m| {
            let name = m["Name"].as_str().filter(|n| !n.is_empty()).or(m["Source"].as_str());
            name == Some(x) || m["Destination"].as_str() == Some(x)
        }))
    })?;
    Ok(network && publish && expose && volume)
}

async fn list(State(s): State<ApiState>, version: ApiVersion, Query(q): Q) -> Result<Json<Vec<Value>>, ApiError> {
    s.engine.note_request(&s.namespace, "ps", &[("all", &flag(&q, "all").to_string())]);
    let filters = parse_filters(&opt(&q, "filters"))?;
    const FILTERS: &[&str] = &[
        "name", "id", "status", "exited", "label", "ancestor", "health", "network", "publish", "expose", "volume", "before", "since", "isolation", "is-task",
    ];
    for k in filters.keys() {
        if !FILTERS.contains(&k.as_str()) {
            return Err(ApiError::bad_request(format!("invalid filter '{k}'")));
        }
    }
    for (key, values) in &filters {
        for x in values {
            match key.as_str() {
                "publish" | "expose" => drop(port_filter(key, x)?),
                // Linux has one isolation, `default`.
                "isolation" if x != "default" => return Err(ApiError::bad_request(format!("Invalid isolation: {x:?}"))),
                "is-task" if x != "true" && x != "false" => return Err(ApiError::bad_request(format!("invalid filter 'is-task={x}'"))),
                _ => {}
            }
        }
    }
    // `before`/`since`: created before or after the named container (there are no
    // swarm tasks here, so `is-task=true` lists nothing).
    let created_of = |key: &str| -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
        match filters.get(key).and_then(|v| v.first()) {
            Some(id) => Ok(Some(s.engine.container(&s.namespace, id)?.created)),
            None => Ok(None),
        }
    };
    let (before, since) = (created_of("before")?, created_of("since")?);
    let no_tasks = filters.get("is-task").is_some_and(|v| v.iter().any(|x| x == "true"));
    for h in filters.get("health").into_iter().flatten() {
        if !["starting", "healthy", "unhealthy", "none"].contains(&h.as_str()) {
            return Err(ApiError::bad_request(format!("Unrecognised filter value for health: {h}")));
        }
    }
    let all = flag(&q, "all");
    // `docker ps --size`: each container's writable layer, and that with its image.
    let with_size = flag(&q, "size");
    let limit: Option<usize> = opt(&q, "limit").and_then(|l| l.parse().ok()).filter(|l: &usize| *l > 0);
    let engine = s.engine.clone();
    let ns = s.namespace.clone();
    let out = blocking(move || {
        let now = chrono::Utc::now();
        let resolve = |name: &str| engine.image_config(&ns, name).ok().map(|(id, _)| id);
        let mut v = Vec::new();
        for c in engine.containers(&ns).iter() {
            if !(all || limit.is_some() || c.state.status.is_live() || filters.contains_key("status")) {
                continue;
            }
            if no_tasks || !matches_filters(c, &filters, &resolve) || before.is_some_and(|t| c.created >= t) || since.is_some_and(|t| c.created <= t) {
                continue;
            }
            let mut s = summary(c, now, version);
            if !matches_summary_filters(&s, &filters)? {
                continue;
            }
            if with_size {
                add_sizes(&mut s, engine.container_size(c));
            }
            v.push(s);
        }
        if let Some(l) = limit {
            v.truncate(l);
        }
        Ok(v)
    })
    .await?;
    Ok(Json(out))
}

fn inspect_json(engine: &berth_engine::Engine, c: &Container, version: ApiVersion) -> Value {
    let dir = engine.root().join("containers").join(&c.id);
    let st = &c.state;
    let mut ports = serde_json::Map::new();
    for k in c.config.exposed_ports.keys() {
        ports.insert(k.clone(), Value::Null);
    }
    for p in &c.ports {
        let key = format!("{}/{}", p.container_port, p.proto);
        let entry = json!({ "HostIp": p.host_ip, "HostPort": p.host_port.to_string() });
        match ports.get_mut(&key) {
            Some(Value::Array(a)) => a.push(entry),
            _ => {
                ports.insert(key, json!([entry]));
            }
        }
    }
    let mut host_config = serde_json::to_value(&c.host_config).unwrap_or(json!({}));
    as_dockerd_shows_host_config(&mut host_config, c);
    // Containers made before Berth kept a LogConfig: the default driver's.
    host_config["LogConfig"]["Type"] = json!(c.host_config.log_config.driver());
    // Docker names the file only for json-file (local's format is its own).
    let log_path = engine
        .log_path(&c.namespace, &c.id)
        .ok()
        .flatten()
        .filter(|_| c.host_config.log_config.driver() == berth_engine::log_config::JSON_FILE)
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    if c.host_config.network_mode.is_empty() {
        host_config["NetworkMode"] = json!("none");
    }
    // Docker shows a link as its two names: `/CHILD:/PARENT/ALIAS` (null for none).
    host_config["Links"] = if c.host_config.links.is_empty() {
        Value::Null
    } else {
        json!(c.host_config.links.iter().map(|l| {
            let (child, alias) = l.split_once(':').unwrap_or((l, l));
            format!("/{}:/{}/{alias}", child.trim_start_matches('/'), c.name)
        }).collect::<Vec<_>>())
    };
    let mut config = serde_json::to_value(&c.config).unwrap_or(json!({}));
    if let Some(m) = config.as_object_mut() {
        m.entry("OnBuild").or_insert(Value::Null);
        if m.get("Volumes").is_some_and(|v| v.as_object().is_some_and(|o| o.is_empty())) {
            m.insert("Volumes".into(), Value::Null);
        }
    }
    let mut state = json!({
        "Status": st.status.as_str(),
        "Running": st.status.is_live(),
        "Paused": st.status == Status::Paused,
        "Restarting": st.status == Status::Restarting,
        "OOMKilled": st.oom_killed,
        "Dead": st.status == Status::Dead,
        "Pid": st.pid,
        "ExitCode": st.exit_code,
        "Error": st.error,
        "StartedAt": rfc3339(st.started_at),
        "FinishedAt": rfc3339(st.finished_at),
    });
    // Only containers whose health check has probes have a Health, as in dockerd.
    if let Some(h) = &st.health {
        state["Health"] = h.inspect_json();
    }
    json!({
        "Id": c.id,
        "Created": logs::docker_time(&c.created),
        "Path": c.path,
        "Args": c.args,
        "State": state,
        "Image": c.image,
        "ResolvConfPath": dir.join("resolv.conf"),
        "HostnamePath": dir.join("hostname"),
        "HostsPath": dir.join("hosts"),
        "LogPath": log_path,
        "Name": format!("/{}", c.name),
        "RestartCount": c.restart_count,
        "Driver": "overlayfs",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": Value::Null,
        "HostConfig": host_config,
        "GraphDriver": { "Name": "overlayfs", "Data": { "UpperDir": dir.join("upper"), "WorkDir": dir.join("work"), "MergedDir": dir.join("rootfs") } },
        "Mounts": mounts_json(c),
        "Config": config,
        "NetworkSettings": network_settings(c, Value::Object(ports), version),
    })
}

/// dockerd's inspect shows every HostConfig field, the ones Berth keeps no member
/// for at their zero value (a set one was refused at create), an unset list as null,
/// and the defaults it filled in at create.
fn as_dockerd_shows_host_config(h: &mut Value, c: &Container) {
    let Some(m) = h.as_object_mut() else { return };
    for key in ["Binds", "CapAdd", "CapDrop", "DeviceCgroupRules", "ExtraHosts", "GroupAdd", "SecurityOpt", "VolumesFrom"] {
        if m.get(key).is_some_and(|v| v.as_array().is_some_and(|a| a.is_empty())) {
            m.insert(key.into(), Value::Null);
        }
    }
    let zero = [
        ("ConsoleSize", json!([0, 0])),
        ("ContainerIDFile", json!("")),
        ("CpuCount", json!(0)),
        ("CpuPercent", json!(0)),
        ("CpuRealtimePeriod", json!(0)),
        ("CpuRealtimeRuntime", json!(0)),
        ("DeviceRequests", Value::Null),
        ("IOMaximumBandwidth", json!(0)),
        ("IOMaximumIOps", json!(0)),
        ("Isolation", json!("")),
        ("KernelMemory", json!(0)),
        ("KernelMemoryTCP", json!(0)),
        ("VolumeDriver", json!("")),
    ];
    for (key, v) in zero {
        m.entry(key).or_insert(v);
    }
    let defaults = [
        ("IpcMode", json!("private")),
        ("CgroupnsMode", json!(if berth_engine::cgroup::is_v2() { "private" } else { "host" })),
        // /dev/shm's size when none is given (64 MiB, as Docker's).
        ("ShmSize", json!(64 << 20)),
    ];
    for (key, v) in defaults {
        if m.get(key).is_none_or(|x| x == "" || x == 0) {
            m.insert(key.into(), v);
        }
    }
    let (masked, readonly) = berth_engine::security::system_paths(&c.host_config);
    let linux = c.host_config.runtime != berth_engine::runtime::WASMTIME;
    m.insert("MaskedPaths".into(), if linux { json!(masked) } else { Value::Null });
    m.insert("ReadonlyPaths".into(), if linux { json!(readonly) } else { Value::Null });
}

async fn inspect(State(s): State<ApiState>, version: ApiVersion, Path(id): Path<String>, Query(q): Q) -> Result<Json<Value>, ApiError> {
    let c = s.engine.container(&s.namespace, &id)?;
    s.engine.note_request(&s.namespace, "inspect", &[("target", &c.name), ("type", "container")]);
    let mut v = inspect_json(&s.engine, &c, version);
    // `docker inspect --size`: both sizes, zero too (dockerd sets them whenever asked).
    if flag(&q, "size") {
        let engine = s.engine.clone();
        let size = blocking(move || Ok(engine.container_size(&c))).await?;
        v["SizeRw"] = json!(size.rw);
        v["SizeRootFs"] = json!(size.root_fs);
    }
    Ok(Json(v))
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

async fn start(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    blocking(move || Ok(s.engine.start(&s.namespace, &id)?)).await?;
    Ok(no_content())
}

fn timeout(q: &BTreeMap<String, String>) -> Result<Option<i64>, ApiError> {
    match opt(q, "t").or_else(|| opt(q, "timeout")) {
        None => Ok(None),
        Some(t) => t.parse().map(Some).map_err(|_| ApiError::bad_request(format!("invalid value for t: {t}"))),
    }
}

async fn stop(State(s): State<ApiState>, Path(id): Path<String>, Query(q): Q) -> Result<Response, ApiError> {
    let t = timeout(&q)?;
    blocking(move || Ok(s.engine.stop(&s.namespace, &id, t)?)).await?;
    Ok(no_content())
}

async fn restart(State(s): State<ApiState>, Path(id): Path<String>, Query(q): Q) -> Result<Response, ApiError> {
    let t = timeout(&q)?;
    blocking(move || Ok(s.engine.restart(&s.namespace, &id, t)?)).await?;
    Ok(no_content())
}

async fn kill(State(s): State<ApiState>, Path(id): Path<String>, Query(q): Q) -> Result<Response, ApiError> {
    let sig = opt(&q, "signal").filter(|x| !x.is_empty());
    blocking(move || Ok(s.engine.kill(&s.namespace, &id, sig.as_deref())?)).await?;
    Ok(no_content())
}

async fn pause(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    blocking(move || Ok(s.engine.pause(&s.namespace, &id, true)?)).await?;
    Ok(no_content())
}

async fn unpause(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    blocking(move || Ok(s.engine.pause(&s.namespace, &id, false)?)).await?;
    Ok(no_content())
}

async fn wait(State(s): State<ApiState>, Path(id): Path<String>, Query(q): Q) -> Result<Response, ApiError> {
    let condition = match opt(&q, "condition").as_deref() {
        None | Some("") | Some("not-running") => WaitCondition::NotRunning,
        Some("next-exit") => WaitCondition::NextExit,
        Some("removed") => WaitCondition::Removed,
        Some(other) => return Err(ApiError::bad_request(format!("invalid condition: {other}"))),
    };
    let waiter = s.engine.wait(&s.namespace, &id, condition)?;
    // Headers go out now; the body when the container has exited (the CLI waits on it).
    let body = futures_util::stream::once(async move {
        let code = tokio::task::spawn_blocking(move || waiter.wait()).await.unwrap_or(-1);
        Ok::<_, std::io::Error>(Bytes::from(format!("{{\"StatusCode\":{code},\"Error\":null}}\n")))
    });
    Ok(([(header::CONTENT_TYPE, "application/json")], Body::from_stream(body)).into_response())
}

async fn remove(State(s): State<ApiState>, Path(id): Path<String>, Query(q): Q) -> Result<Response, ApiError> {
    if flag(&q, "link") {
        blocking(move || Ok(s.engine.remove_link(&s.namespace, &id)?)).await?;
        return Ok(no_content());
    }
    let (force, volumes) = (flag(&q, "force"), flag(&q, "v"));
    blocking(move || Ok(s.engine.remove_container(&s.namespace, &id, force, volumes)?)).await?;
    Ok(no_content())
}

/// `docker update`: the body is the `Resources` part of a HostConfig and its
/// `RestartPolicy`.
async fn update(State(s): State<ApiState>, Path(id): Path<String>, body: Bytes) -> Result<Response, ApiError> {
    let req: HostConfig = serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    let warnings = blocking(move || Ok(s.engine.update_container(&s.namespace, &id, req)?)).await?;
    // dockerd's answer has null, not [], for no warnings.
    let warnings = if warnings.is_empty() { Value::Null } else { json!(warnings) };
    Ok(Json(json!({ "Warnings": warnings })).into_response())
}

async fn remove_link(State(s): State<ApiState>, Path((parent, alias)): Path<(String, String)>, Query(q): Q) -> Result<Response, ApiError> {
    if !flag(&q, "link") {
        return Err(ApiError::not_found(format!("page not found: DELETE /containers/{parent}/{alias}")));
    }
    blocking(move || Ok(s.engine.remove_link(&s.namespace, &format!("/{parent}/{alias}"))?)).await?;
    Ok(no_content())
}

async fn rename(State(s): State<ApiState>, Path(id): Path<String>, Query(q): Q) -> Result<Response, ApiError> {
    let name = opt(&q, "name").unwrap_or_default();
    blocking(move || Ok(s.engine.rename(&s.namespace, &id, &name)?)).await?;
    Ok(no_content())
}

fn parse_since(v: &Option<String>) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
    let Some(v) = v.as_deref().filter(|v| !v.is_empty() && *v != "0") else { return Ok(None) };
    if let Ok(f) = v.parse::<f64>() {
        return Ok(chrono::DateTime::from_timestamp(f.trunc() as i64, ((f - f.trunc()) * 1e9) as u32));
    }
    chrono::DateTime::parse_from_rfc3339(v)
        .map(|t| Some(t.with_timezone(&chrono::Utc)))
        .map_err(|_| ApiError::bad_request(format!("invalid time: {v}")))
}

fn render(entries: &[logs::LogEntry], tty: bool, timestamps: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let mut line = Vec::new();
        if timestamps {
            line.extend_from_slice(logs::docker_time(&e.time).as_bytes());
            line.push(b' ');
        }
        line.extend_from_slice(e.log.as_bytes());
        if tty {
            out.extend_from_slice(&line);
        } else {
            out.extend_from_slice(&logs::frame(e.stream, &line));
        }
    }
    out
}

async fn logs(State(s): State<ApiState>, Path(id): Path<String>, Query(q): Q) -> Result<Response, ApiError> {
    let c = s.engine.container(&s.namespace, &id)?;
    s.engine.note_request(&s.namespace, "logs", &[("container", &c.name), ("follow", &flag(&q, "follow").to_string())]);
    let filter = LogFilter {
        stdout: flag(&q, "stdout"),
        stderr: flag(&q, "stderr"),
        since: parse_since(&opt(&q, "since"))?,
        until: parse_since(&opt(&q, "until"))?,
        tail: match opt(&q, "tail").as_deref() {
            None | Some("all") | Some("") => None,
            Some(n) => Some(n.parse().map_err(|_| ApiError::bad_request(format!("invalid tail: {n}")))?),
        },
    };
    if !filter.stdout && !filter.stderr {
        return Err(ApiError::bad_request("Bad parameters: you must choose at least one stream"));
    }
    let (follow, ts, tty) = (flag(&q, "follow"), flag(&q, "timestamps"), c.config.tty);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let engine = s.engine.clone();
    let ns = s.namespace.clone();
    let cid = c.id.clone();
    let (entries, mut follower) = {
        let (engine, ns, cid, filter) = (engine.clone(), ns.clone(), cid.clone(), filter.clone());
        blocking(move || Ok(engine.logs(&ns, &cid, &filter)?)).await?
    };
    tokio::task::spawn_blocking(move || {
        if tx.blocking_send(Ok(Bytes::from(render(&entries, tty, ts)))).is_err() || !follow {
            return;
        }
        let follow_filter = LogFilter { tail: None, ..filter };
        loop {
            let running = engine.container(&ns, &cid).map(|c| c.state.status.is_live()).unwrap_or(false);
            if let Ok(entries) = follower.poll(&follow_filter) {
                if !entries.is_empty() && tx.blocking_send(Ok(Bytes::from(render(&entries, tty, ts)))).is_err() {
                    return;
                }
            }
            if !running || tx.is_closed() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    });
    let ct = if tty { hijack::RAW_STREAM } else { hijack::MULTIPLEXED_STREAM };
    Ok(([(header::CONTENT_TYPE, ct)], Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx))).into_response())
}

async fn attach(State(s): State<ApiState>, Path(id): Path<String>, Query(q): Q, mut req: Request) -> Result<Response, ApiError> {
    let c = s.engine.container(&s.namespace, &id)?;
    let keys = opt(&q, "detachKeys").filter(|k| !k.is_empty()).unwrap_or_else(|| berth_engine::detach::DEFAULT_DETACH_KEYS.to_string());
    let detach_keys = berth_engine::detach::parse_detach_keys(&keys)?;
    let on = hijack::take_upgrade(&mut req)?;
    let tty = c.config.tty;
    // `logs=1`: the log so far comes first; `stream=0` (the default, as in Docker):
    // nothing live, the answer ends after that.
    let history = if flag(&q, "logs") && (flag(&q, "stdout") || flag(&q, "stderr")) {
        let filter = LogFilter { stdout: flag(&q, "stdout"), stderr: flag(&q, "stderr"), since: None, until: None, tail: None };
        let (engine, ns, cid) = (s.engine.clone(), s.namespace.clone(), c.id.clone());
        let (entries, _) = blocking(move || Ok(engine.logs(&ns, &cid, &filter)?)).await?;
        render(&entries, tty, false)
    } else {
        Vec::new()
    };
    if !flag(&q, "stream") {
        tokio::spawn(async move {
            let Some(mut client) = hijack::upgraded(on).await else { return };
            hold_for_buffered_clients(&history).await;
            let _ = client.write_all(&history).await;
            let _ = client.shutdown().await;
        });
        return Ok(hijack::upgraded_response(tty));
    }
    let request = ShimRequest::Attach {
        stdin: flag(&q, "stdin") && c.config.open_stdin,
        stdout: flag(&q, "stdout"),
        stderr: flag(&q, "stderr"),
        detach_keys,
        stdin_once: c.config.stdin_once,
    };
    let rx = s.engine.attach(&s.namespace, &c.id, request)?;
    tokio::spawn(async move {
        let Some(mut client) = hijack::upgraded(on).await else { return };
        hold_for_buffered_clients(&history).await;
        if !history.is_empty() && client.write_all(&history).await.is_err() {
            return;
        }
        let Ok(Ok(stream)) = tokio::task::spawn_blocking(move || rx.recv()).await else { return };
        if stream.set_nonblocking(true).is_err() {
            return;
        }
        let Ok(stream) = tokio::net::UnixStream::from_std(stream) else { return };
        let client_left = hijack::relay(client, stream).await;
        if client_left || tty {
            let engine = s.engine.clone();
            let _ = tokio::task::spawn_blocking(move || engine.detached(&s.namespace, &c.id)).await;
        }
    });
    Ok(hijack::upgraded_response(tty))
}

/// The Docker SDK for Python reads the 101 answer through a buffered reader, then
/// reads the raw socket: bytes that arrive with the headers are lost in that buffer.
/// dockerd's own latency (it reads the log after hijacking) keeps them apart; so does
/// this short pause before a log history is written.
async fn hold_for_buffered_clients(history: &[u8]) {
    if !history.is_empty() {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

fn dims(q: &BTreeMap<String, String>) -> Result<(u16, u16), ApiError> {
    let get = |k: &str| opt(q, k).unwrap_or_default().parse::<u16>().map_err(|_| ApiError::bad_request(format!("invalid {k}")));
    Ok((get("h")?, get("w")?))
}

async fn resize(State(s): State<ApiState>, Path(id): Path<String>, Query(q): Q) -> Result<Response, ApiError> {
    let (h, w) = dims(&q)?;
    blocking(move || Ok(s.engine.resize(&s.namespace, &id, h, w)?)).await?;
    Ok(StatusCode::OK.into_response())
}

async fn top(State(s): State<ApiState>, Path(id): Path<String>, Query(q): Q) -> Result<Json<Value>, ApiError> {
    let ps_args = opt(&q, "ps_args").unwrap_or_default();
    let t = blocking(move || Ok(s.engine.top(&s.namespace, &id, &ps_args)?)).await?;
    Ok(Json(json!({ "Titles": t.titles, "Processes": t.processes })))
}

async fn changes(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let rows = blocking(move || Ok(s.engine.diff(&s.namespace, &id)?)).await?;
    Ok(Json(Value::Array(rows.into_iter().map(|(p, k)| json!({ "Path": p, "Kind": k })).collect())))
}

async fn stats(State(s): State<ApiState>, Path(id): Path<String>, Query(q): Q) -> Result<Response, ApiError> {
    let c = s.engine.container(&s.namespace, &id)?;
    let stream = opt(&q, "stream").is_none_or(|v| qbool(&Some(v)));
    let one = |pre: Option<(u64, u64)>| -> Value {
        let (mem, limit, cpu, pids) = s.engine.stats(&s.namespace, &c.id).unwrap_or((0, 0, 0, 0));
        let system = system_cpu_ns();
        let ncpu = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let host_mem = if limit == 0 || limit > 1 << 60 { total_memory() } else { limit };
        let (pre_cpu, pre_sys) = pre.unwrap_or((0, 0));
        json!({
            "read": logs::docker_time(&chrono::Utc::now()),
            "preread": "0001-01-01T00:00:00Z",
            "id": c.id, "name": format!("/{}", c.name),
            "pids_stats": { "current": pids },
            "cpu_stats": { "cpu_usage": { "total_usage": cpu, "usage_in_kernelmode": 0, "usage_in_usermode": 0 }, "system_cpu_usage": system, "online_cpus": ncpu, "throttling_data": {} },
            "precpu_stats": { "cpu_usage": { "total_usage": pre_cpu }, "system_cpu_usage": pre_sys, "online_cpus": ncpu, "throttling_data": {} },
            "memory_stats": { "usage": mem, "limit": host_mem, "stats": {} },
            "blkio_stats": {}, "networks": {},
        })
    };
    if !stream {
        return Ok(Json(one(None)).into_response());
    }
    let first = one(None);
    let pre = (first["cpu_stats"]["cpu_usage"]["total_usage"].as_u64().unwrap_or(0), first["cpu_stats"]["system_cpu_usage"].as_u64().unwrap_or(0));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let second = one(Some(pre));
    let body = format!("{first}\n{second}\n");
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

fn system_cpu_ns() -> u64 {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: u64 = s.lines().next().map(|l| l.split_whitespace().skip(1).filter_map(|x| x.parse::<u64>().ok()).sum()).unwrap_or(0);
    ticks * 10_000_000
}

fn total_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().find_map(|l| l.strip_prefix("MemTotal:").map(|v| v.trim().trim_end_matches(" kB").trim().parse::<u64>().unwrap_or(0) * 1024)))
        .unwrap_or(0)
}

async fn prune(State(s): State<ApiState>, Query(q): Q) -> Result<Json<Value>, ApiError> {
    let filters = parse_filters(&opt(&q, "filters"))?;
    let out = blocking(move || {
        let mut deleted = Vec::new();
        let mut space = 0u64;
        let until = filters.get("until").and_then(|v| v.first()).and_then(|u| parse_since(&Some(u.clone())).ok().flatten());
        for c in s.engine.containers(&s.namespace) {
            if c.state.status.is_live() || until.is_some_and(|u| c.created > u) {
                continue;
            }
            let upper = s.engine.root().join("containers").join(&c.id).join("upper");
            let size = berth_engine::fsutil::dir_size(&upper);
            if s.engine.remove_container(&s.namespace, &c.id, false, false).is_ok() {
                space += size;
                deleted.push(c.id);
            }
        }
        Ok(json!({ "ContainersDeleted": deleted, "SpaceReclaimed": space }))
    })
    .await?;
    Ok(Json(out))
}
