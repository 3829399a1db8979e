//! `/networks/...`, and the build-cache prune that `docker system prune` calls next.
//! Containers have no user-defined networks yet, and the classic builder keeps no
//! separate build cache, so both prunes find nothing to delete; they exist because
//! the CLI's `system prune` fails on a missing endpoint.

use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::ApiState;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/networks/prune", post(prune_networks))
        // Move to the build module once it exists: the CLI calls it even against a
        // builder-version-1 daemon (checked with CLI 28.2).
        .route("/build/prune", post(prune_build_cache))
}

async fn prune_networks() -> Json<Value> {
    Json(json!({ "NetworksDeleted": [] }))
}

async fn prune_build_cache() -> Json<Value> {
    Json(json!({ "CachesDeleted": [], "SpaceReclaimed": 0 }))
}
