//! Swarm endpoints: Berth is never part of a swarm. dockerd outside a swarm answers
//! them with 503 "This node is not a swarm manager…", which clients (Compose, the
//! SDKs, IDE plugins) read as "no swarm"; a 404 would read as a broken daemon.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::routing::any;
use axum::Router;

use super::{ApiError, ApiState};

const NOT_A_MANAGER: &str =
    "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.";

pub fn routes() -> Router<ApiState> {
    let mut r = Router::new();
    for base in ["/swarm", "/services", "/tasks", "/secrets", "/configs", "/nodes"] {
        r = r.route(base, any(answer)).route(&format!("{base}/{{*rest}}"), any(answer));
    }
    r
}

async fn answer(req: Request) -> ApiError {
    match req.uri().path() {
        // Asked to make or join one: say plainly that Berth cannot.
        "/swarm/init" | "/swarm/join" => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "swarm mode is not supported by Berth"),
        _ => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, NOT_A_MANAGER),
    }
}
