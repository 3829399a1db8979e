//! `/networks/...`: Docker's network endpoints over the engine's networks, and the
//! build-cache prune that `docker system prune` calls next to the network prune.

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use berth_engine::network::Network;
use berth_engine::{EndpointRequest, NetworkCreate};
use serde::Deserialize;
use serde_json::{json, Value};

use super::system::parse_filters;
use super::{blocking, ApiError, ApiState};

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/networks", get(list))
        .route("/networks/create", post(create))
        .route("/networks/prune", post(prune))
        // A network's name may hold slashes, which the CLI sends unescaped
        // (`/networks/a/b`): dockerd's routes take the rest of the path as the name.
        .route("/networks/{*id}", get(inspect).delete(remove).post(connect_or_disconnect))
        // Move to the build module once it exists: the CLI calls it even against a
        // builder-version-1 daemon (checked with CLI 28.2).
        .route("/build/prune", post(prune_build_cache))
}

/// The `EndpointsConfig` entry of a container create or a connect. Every field may
/// be null, as Docker (Go) reads JSON.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointSettings {
    #[serde(deserialize_with = "berth_engine::container::nullable")]
    pub aliases: Vec<String>,
    /// None when absent or null (inspect tells the two cases from `{}`).
    #[serde(rename = "IPAMConfig")]
    pub ipam_config: Option<IpamConfig>,
    /// `--mac-address` (API 1.44+ sends it here rather than in `Config`).
    #[serde(deserialize_with = "berth_engine::container::nullable")]
    pub mac_address: String,
    pub driver_opts: Option<BTreeMap<String, String>>,
    /// The rest: settings (refused when set, see `into_request`) and the fields
    /// `inspect` shows, which clients may send back and Docker ignores on input.
    #[serde(flatten)]
    pub unknown: BTreeMap<String, Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IpamConfig {
    #[serde(rename = "IPv4Address", deserialize_with = "berth_engine::container::nullable")]
    pub ipv4_address: String,
    #[serde(flatten)]
    pub unknown: BTreeMap<String, Value>,
}

/// What `inspect` shows in an endpoint: read-only, ignored on input as in Docker.
const ENDPOINT_OUTPUTS: &[&str] = &[
    "NetworkID", "EndpointID", "Gateway", "IPAddress", "IPPrefixLen", "IPv6Gateway", "GlobalIPv6Address", "GlobalIPv6PrefixLen", "DNSNames",
];

impl EndpointSettings {
    /// The request for the engine; a setting Berth does not implement
    /// (`--link-local-ip`, an IPv6 address, driver options, …) is refused by name.
    pub fn into_request(self) -> Result<EndpointRequest, ApiError> {
        let settings = |m: BTreeMap<String, Value>| m.into_iter().filter(|(k, _)| !ENDPOINT_OUTPUTS.contains(&k.as_str())).collect::<BTreeMap<_, _>>();
        berth_engine::unsupported::check(&settings(self.unknown))?;
        if let Some(opts) = &self.driver_opts {
            berth_engine::unsupported::check(&BTreeMap::from([("DriverOpts".to_string(), json!(opts))]))?;
        }
        let ipam = self.ipam_config.as_ref();
        if let Some(ipam) = ipam {
            berth_engine::unsupported::check(&settings(ipam.unknown.clone()))?;
        }
        Ok(EndpointRequest {
            aliases: self.aliases,
            ipv4_address: ipam.map(|i| i.ipv4_address.clone()).filter(|a| !a.is_empty()),
            mac_address: Some(self.mac_address).filter(|m| !m.is_empty()),
            ipam_config: ipam.is_some(),
            driver_opts: self.driver_opts.is_some(),
        })
    }
}

fn network_json(s: &ApiState, n: &Network, verbose: bool) -> Value {
    let containers: serde_json::Map<String, Value> = if verbose {
        s.engine
            .network_endpoints(&s.namespace, n)
            .into_iter()
            .filter(|(c, _)| c.state.status.is_live())
            .map(|(c, e)| {
                (c.id.clone(), json!({ "Name": c.name, "EndpointID": e.endpoint_id, "MacAddress": e.mac, "IPv4Address": format!("{}/{}", e.ip, e.prefix), "IPv6Address": "" }))
            })
            .collect()
    } else {
        Default::default()
    };
    // Docker's pool as configured: its optional parts only when set.
    let config: Vec<Value> = if n.subnet.is_empty() {
        vec![]
    } else {
        let mut pool = json!({ "Subnet": n.subnet });
        if !n.ip_range.is_empty() {
            pool["IPRange"] = json!(n.ip_range);
        }
        if n.ipam_gateway {
            pool["Gateway"] = json!(n.gateway);
        }
        if !n.aux_addresses.is_empty() {
            pool["AuxiliaryAddresses"] = json!(n.aux_addresses);
        }
        vec![pool]
    };
    json!({
        "Name": n.name,
        "Id": n.id,
        "Created": n.created.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        "Scope": "local",
        "Driver": n.driver,
        "EnableIPv4": true,
        "EnableIPv6": false,
        "IPAM": { "Driver": "default", "Options": n.ipam_options, "Config": config },
        "Internal": n.internal,
        "Attachable": n.attachable,
        "Ingress": false,
        "ConfigFrom": { "Network": "" },
        "ConfigOnly": false,
        "Containers": containers,
        "Options": n.options,
        "Labels": n.labels,
    })
}

async fn list(State(s): State<ApiState>, Query(q): Query<BTreeMap<String, String>>) -> Result<Json<Vec<Value>>, ApiError> {
    let filters = parse_filters(&q.get("filters").cloned())?;
    for k in filters.keys() {
        if !["name", "id", "driver", "label", "type", "dangling", "scope"].contains(&k.as_str()) {
            return Err(ApiError::bad_request(format!("invalid filter '{k}'")));
        }
    }
    // `dangling=true`: networks of the user's no running container is on.
    let dangling = match filters.get("dangling").and_then(|v| v.first()).map(String::as_str) {
        None => None,
        Some("true" | "1") => Some(true),
        Some("false" | "0") => Some(false),
        Some(v) => return Err(ApiError::bad_request(format!("invalid filter 'dangling={v}'"))),
    };
    let s2 = s.clone();
    let nets = blocking(move || Ok(s2.engine.list_networks(&s2.namespace)?)).await?;
    let unused = |n: &Network| !n.is_predefined() && !s.engine.network_endpoints(&s.namespace, n).iter().any(|(c, _)| c.state.status.is_live());
    let any = |key: &str, pred: &dyn Fn(&str) -> bool| filters.get(key).is_none_or(|v| v.is_empty() || v.iter().any(|x| pred(x)));
    let out = nets
        .iter()
        .filter(|n| {
            any("name", &|x| n.name.contains(x))
                && any("id", &|x| n.id.starts_with(x))
                && any("driver", &|x| n.driver == x)
                && any("type", &|x| (x == "builtin") == n.is_predefined())
                // Berth's networks are all of one host.
                && any("scope", &|x| x == "local")
                && dangling.is_none_or(|d| unused(n) == d)
                // Every label given must match, as in Docker (MatchKVList).
                && filters.get("label").is_none_or(|v| v.iter().all(|l| match l.split_once('=') {
                    Some((k, v)) => n.labels.get(k).is_some_and(|x| x == v),
                    None => n.labels.contains_key(l),
                }))
        })
        .map(|n| network_json(&s, n, false))
        .collect();
    Ok(Json(out))
}

/// `POST /networks/create`. Every field may be null, as Docker (Go) reads JSON; one
/// Berth has no member for is refused when set.
#[derive(Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    #[serde(deserialize_with = "berth_engine::container::nullable")]
    name: String,
    #[serde(deserialize_with = "berth_engine::container::nullable")]
    driver: String,
    #[serde(deserialize_with = "berth_engine::container::nullable")]
    internal: bool,
    #[serde(deserialize_with = "berth_engine::container::nullable")]
    attachable: bool,
    #[serde(deserialize_with = "berth_engine::container::nullable")]
    labels: BTreeMap<String, String>,
    #[serde(deserialize_with = "berth_engine::container::nullable")]
    options: BTreeMap<String, String>,
    #[serde(rename = "IPAM", deserialize_with = "berth_engine::container::nullable")]
    ipam: Ipam,
    #[serde(rename = "EnableIPv6", deserialize_with = "berth_engine::container::nullable")]
    enable_ipv6: bool,
    /// API 1.47+; null or absent is Docker's default, true.
    #[serde(rename = "EnableIPv4")]
    enable_ipv4: Option<bool>,
    /// Docker checks for a duplicate name whatever this says (deprecated in 1.44).
    #[serde(rename = "CheckDuplicate")]
    _check_duplicate: Option<Value>,
    /// "local" is the only scope of a bridge network.
    #[serde(deserialize_with = "berth_engine::container::nullable")]
    scope: String,
    #[serde(flatten)]
    unknown: BTreeMap<String, Value>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct Ipam {
    #[serde(deserialize_with = "berth_engine::container::nullable")]
    driver: String,
    /// None: null or absent (inspect shows it back so).
    options: Option<BTreeMap<String, String>>,
    #[serde(deserialize_with = "berth_engine::container::nullable")]
    config: Vec<IpamPool>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct IpamPool {
    #[serde(deserialize_with = "berth_engine::container::nullable")]
    subnet: String,
    #[serde(rename = "IPRange", deserialize_with = "berth_engine::container::nullable")]
    ip_range: String,
    #[serde(deserialize_with = "berth_engine::container::nullable")]
    gateway: String,
    #[serde(deserialize_with = "berth_engine::container::nullable")]
    auxiliary_addresses: BTreeMap<String, String>,
    #[serde(flatten)]
    unknown: BTreeMap<String, Value>,
}

async fn create(State(s): State<ApiState>, body: Bytes) -> Result<Response, ApiError> {
    let b: CreateBody = serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    if b.enable_ipv6 {
        return Err(ApiError::bad_request("IPv6 networks are not supported by Berth"));
    }
    if b.enable_ipv4 == Some(false) {
        return Err(ApiError::bad_request("a network without IPv4 (--ipv4=false) is not supported by Berth"));
    }
    if !matches!(b.scope.as_str(), "" | "local") {
        return Err(ApiError::bad_request(format!("a network of scope {:?} is not supported by Berth: its networks are local", b.scope)));
    }
    berth_engine::unsupported::check(&b.unknown)?;
    if !matches!(b.ipam.driver.as_str(), "" | "default") {
        return Err(ApiError::bad_request(format!("IPAM driver {:?} is not supported by Berth: its networks use the default one", b.ipam.driver)));
    }
    if b.ipam.config.len() > 1 {
        return Err(ApiError::bad_request("Berth networks have one IPv4 subnet"));
    }
    let pool = b.ipam.config.into_iter().next().unwrap_or_default();
    berth_engine::unsupported::check(&pool.unknown)?;
    let given = |x: String| Some(x).filter(|x| !x.is_empty());
    let req = NetworkCreate {
        name: b.name,
        driver: b.driver,
        subnet: given(pool.subnet),
        gateway: given(pool.gateway),
        internal: b.internal,
        attachable: b.attachable,
        labels: b.labels,
        options: b.options,
        ip_range: given(pool.ip_range),
        aux_addresses: pool.auxiliary_addresses,
        ipam_options: b.ipam.options,
    };
    let n = blocking(move || Ok(s.engine.create_network(&s.namespace, req)?)).await?;
    Ok((StatusCode::CREATED, Json(json!({ "Id": n.id, "Warning": "" }))).into_response())
}

async fn inspect(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    s.engine.note_request(&s.namespace, "inspect", &[("target", &id), ("type", "network")]);
    let s2 = s.clone();
    let n = blocking(move || Ok(s2.engine.network(&s2.namespace, &id)?)).await?;
    Ok(Json(network_json(&s, &n, true)))
}

async fn remove(State(s): State<ApiState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    blocking(move || Ok(s.engine.remove_network(&s.namespace, &id)?)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn prune(State(s): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let removed = blocking(move || Ok(s.engine.prune_networks(&s.namespace)?)).await?;
    Ok(Json(json!({ "NetworksDeleted": removed })))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ConnectBody {
    #[serde(default, deserialize_with = "berth_engine::container::nullable")]
    container: String,
    #[serde(default, deserialize_with = "berth_engine::container::nullable")]
    endpoint_config: EndpointSettings,
    #[serde(default, deserialize_with = "berth_engine::container::nullable")]
    force: bool,
}

/// `POST /networks/{id}/connect` and `/disconnect`, the id being any path.
async fn connect_or_disconnect(state: State<ApiState>, Path(path): Path<String>, body: Bytes) -> Result<StatusCode, ApiError> {
    if let Some(id) = path.strip_suffix("/connect") {
        connect(state, id.to_string(), body).await
    } else if let Some(id) = path.strip_suffix("/disconnect") {
        disconnect(state, id.to_string(), body).await
    } else {
        Err(ApiError::not_found(format!("page not found: POST /networks/{path}")))
    }
}

async fn connect(State(s): State<ApiState>, id: String, body: Bytes) -> Result<StatusCode, ApiError> {
    let b: ConnectBody = serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    let req = b.endpoint_config.into_request()?;
    blocking(move || Ok(s.engine.connect_network(&s.namespace, &id, &b.container, req)?)).await?;
    Ok(StatusCode::OK)
}

async fn disconnect(State(s): State<ApiState>, id: String, body: Bytes) -> Result<StatusCode, ApiError> {
    let b: ConnectBody = serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    blocking(move || Ok(s.engine.disconnect_network(&s.namespace, &id, &b.container, b.force)?)).await?;
    Ok(StatusCode::OK)
}

async fn prune_build_cache() -> Json<Value> {
    Json(json!({ "CachesDeleted": [], "SpaceReclaimed": 0 }))
}
