//! Plugin endpoints: Berth has no plugins (its one volume driver and its log drivers are
//! built in). dockerd with none installed lists none, so `docker plugin ls` shows an
//! empty table instead of "page not found"; installing one is refused plainly.

use std::collections::BTreeMap;

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::routing::{any, get};
use axum::{Json, Router};
use serde_json::Value;

use super::system::parse_filters;
use super::{ApiError, ApiState};

const NO_PLUGINS: &str = "plugins are not supported by Berth";

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/plugins", get(list))
        .route("/plugins/privileges", any(refuse))
        .route("/plugins/pull", any(refuse))
        .route("/plugins/create", any(refuse))
        .route("/plugins/{name}/json", any(not_found))
        .route("/plugins/{name}", any(not_found))
        .route("/plugins/{name}/{action}", any(not_found_action))
}

/// `GET /plugins`: none, after dockerd's check of the filters.
async fn list(Query(q): Query<BTreeMap<String, String>>) -> Result<Json<Value>, ApiError> {
    let filters = parse_filters(&q.get("filters").cloned())?;
    if let Some(k) = filters.keys().find(|k| !matches!(k.as_str(), "capability" | "enable")) {
        // dockerd's plugin list says it with a capital.
        return Err(ApiError::bad_request(format!("Invalid filter '{k}'")));
    }
    Ok(Json(Value::Array(vec![])))
}

async fn refuse() -> ApiError {
    ApiError::new(StatusCode::NOT_IMPLEMENTED, NO_PLUGINS)
}

/// Every name is unknown: dockerd's message for one it does not have.
async fn not_found(Path(name): Path<String>) -> ApiError {
    ApiError::not_found(format!("plugin {name:?} not found"))
}

async fn not_found_action(Path((name, _)): Path<(String, String)>) -> ApiError {
    ApiError::not_found(format!("plugin {name:?} not found"))
}
