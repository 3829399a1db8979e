//! The Docker Engine API, one module per area. Handlers translate HTTP into engine
//! calls and the engine's answers into Docker's JSON shapes; no engine logic here.

mod archive;
mod build;
mod containers;
mod error;
mod exec;
mod hijack;
mod images;
pub(crate) mod networks;
mod swarm;
mod system;
mod volumes;

use std::sync::Arc;

use axum::extract::Request;
use axum::Router;
use berth_engine::Engine;

pub use error::ApiError;

/// The newest API version Berth speaks; clients negotiate down from it via `/_ping`.
pub const API_VERSION: &str = "1.50";
pub const MIN_API_VERSION: &str = "1.24";

/// What every handler gets: the engine and the namespace this endpoint serves.
#[derive(Clone)]
pub struct ApiState {
    pub engine: Arc<Engine>,
    pub namespace: String,
}

/// Runs blocking engine work off the async threads.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, ApiError> + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| ApiError::internal(format!("task failed: {e}")))?
}

/// The API router for one namespace. Paths may carry a `/vX.Y` prefix.
pub fn app(state: ApiState) -> Router {
    Router::new()
        .merge(system::routes())
        .merge(containers::routes())
        .merge(exec::routes())
        .merge(images::routes())
        .merge(volumes::routes())
        .merge(archive::routes())
        .merge(build::routes())
        .merge(networks::routes())
        .merge(swarm::routes())
        .fallback(|req: Request| async move {
            ApiError::not_found(format!("page not found: {} {}", req.method(), req.uri().path()))
        })
        .with_state(state)
}

/// Strips Docker's `/v1.47` path prefix so one set of routes serves every version.
pub fn strip_version(mut req: Request) -> Request {
    let path = req.uri().path();
    let rest = path.strip_prefix("/v").and_then(|r| {
        let end = r.find('/')?;
        let v = &r[..end];
        let ok = v.split('.').count() == 2 && v.split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        ok.then(|| r[end..].to_string())
    });
    if let Some(rest) = rest {
        let pq = match req.uri().query() {
            Some(q) => format!("{rest}?{q}"),
            None => rest,
        };
        let mut parts = req.uri().clone().into_parts();
        if let Ok(p) = pq.parse() {
            parts.path_and_query = Some(p);
            if let Ok(uri) = axum::http::Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
    }
    req
}

/// Docker's boolean query values: `1`, `true`, `True`.
pub fn qbool(v: &Option<String>) -> bool {
    matches!(v.as_deref(), Some("1") | Some("true") | Some("True") | Some("yes"))
}
