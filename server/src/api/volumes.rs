//! `/volumes/...`: create, list, inspect, remove, prune (the `local` driver only).

use std::collections::BTreeMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use berth_engine::volume::Volume;
use serde::Deserialize;
use serde_json::{json, Value};

use super::system::parse_filters;
use super::{blocking, qbool, ApiError, ApiState};

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/volumes", get(list))
        .route("/volumes/create", post(create))
        .route("/volumes/prune", post(prune))
        .route("/volumes/{name}", get(inspect).delete(remove))
}

type Q = Query<BTreeMap<String, String>>;

/// Docker's `Volume` object.
pub(super) fn volume_json(v: &Volume) -> Value {
    json!({
        "CreatedAt": v.created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "Driver": v.driver,
        "Labels": v.labels,
        "Mountpoint": v.mountpoint.display().to_string(),
        "Name": v.name,
        "Options": if v.options.is_empty() { Value::Null } else { json!(v.options) },
        "Scope": "local",
    })
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    #[serde(deserialize_with = "berth_engine::container::nullable")]
    name: String,
    #[serde(deserialize_with = "berth_engine::container::nullable")]
    driver: String,
    #[serde(deserialize_with = "berth_engine::container::nullable")]
    driver_opts: BTreeMap<String, String>,
    #[serde(deserialize_with = "berth_engine::container::nullable")]
    labels: BTreeMap<String, String>,
}

async fn create(State(s): State<ApiState>, body: Bytes) -> Result<Response, ApiError> {
    let b: CreateBody = if body.is_empty() {
        CreateBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?
    };
    let v = blocking(move || {
        let name = Some(b.name.as_str()).filter(|n| !n.is_empty());
        Ok(s.engine.create_volume_with_driver(&s.namespace, name, &b.driver, &b.driver_opts, b.labels)?)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(volume_json(&v))).into_response())
}

async fn list(State(s): State<ApiState>, Query(q): Q) -> Result<Json<Value>, ApiError> {
    let filters = parse_filters(&q.get("filters").cloned())?;
    let vols = blocking(move || Ok(s.engine.filter_volumes(&s.namespace, &filters)?)).await?;
    Ok(Json(json!({ "Volumes": vols.iter().map(volume_json).collect::<Vec<_>>(), "Warnings": [] })))
}

async fn inspect(State(s): State<ApiState>, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    s.engine.note_request(&s.namespace, "inspect", &[("target", &name), ("type", "volume")]);
    let v = blocking(move || Ok(s.engine.volume(&s.namespace, &name)?)).await?;
    Ok(Json(volume_json(&v)))
}

async fn remove(State(s): State<ApiState>, Path(name): Path<String>, Query(q): Q) -> Result<StatusCode, ApiError> {
    let force = qbool(&q.get("force").cloned());
    blocking(move || Ok(s.engine.remove_volume(&s.namespace, &name, force)?)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Only anonymous volumes unless the `all` filter is given: the behaviour of API
/// 1.42 and later, which every current CLI speaks.
async fn prune(State(s): State<ApiState>, Query(q): Q) -> Result<Json<Value>, ApiError> {
    let filters = parse_filters(&q.get("filters").cloned())?;
    let (deleted, space) = blocking(move || Ok(s.engine.prune_volumes(&s.namespace, &filters)?)).await?;
    Ok(Json(json!({ "VolumesDeleted": deleted, "SpaceReclaimed": space })))
}
