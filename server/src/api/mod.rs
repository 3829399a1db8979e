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
mod plugins;
mod swarm;
mod system;
mod volumes;

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::Router;
use berth_engine::Engine;

pub use error::ApiError;

/// The newest API version Berth speaks; clients negotiate down from it via `/_ping`.
pub const API_VERSION: &str = "1.50";
pub const MIN_API_VERSION: &str = "1.24";

/// The API version a request asked for by its `/vX.Y` prefix (none: the newest),
/// for the answers whose shape Docker changed between versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion(pub u32, pub u32);

impl ApiVersion {
    /// [`API_VERSION`].
    pub const CURRENT: ApiVersion = ApiVersion(1, 50);

    pub fn below(self, major: u32, minor: u32) -> bool {
        self < ApiVersion(major, minor)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ApiVersion {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<ApiVersion, Self::Rejection> {
        Ok(parts.extensions.get::<ApiVersion>().copied().unwrap_or(ApiVersion::CURRENT))
    }
}

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
        .merge(plugins::routes())
        .fallback(|req: Request| async move {
            ApiError::not_found(format!("page not found: {} {}", req.method(), req.uri().path()))
        })
        .with_state(state)
}

/// Strips Docker's `/v1.47` path prefix so one set of routes serves every version,
/// and keeps the version for handlers as an [`ApiVersion`].
pub fn strip_version(mut req: Request) -> Request {
    let path = req.uri().path();
    let rest = path.strip_prefix("/v").and_then(|r| {
        let end = r.find('/')?;
        let (major, minor) = r[..end].split_once('.')?;
        let version = ApiVersion(major.parse().ok()?, minor.parse().ok()?);
        let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        (digits(major) && digits(minor)).then(|| (version, r[end..].to_string()))
    });
    if let Some((version, rest)) = rest {
        req.extensions_mut().insert(version);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_prefix_is_kept_for_handlers() {
        assert_eq!(API_VERSION, format!("{}.{}", ApiVersion::CURRENT.0, ApiVersion::CURRENT.1));
        let req = strip_version(Request::builder().uri("/v1.41/containers/x/json?size=1").body(axum::body::Body::empty()).unwrap());
        assert_eq!(req.uri().path_and_query().unwrap().as_str(), "/containers/x/json?size=1");
        assert_eq!(req.extensions().get::<ApiVersion>(), Some(&ApiVersion(1, 41)));
        assert!(ApiVersion(1, 41).below(1, 45) && !ApiVersion(1, 45).below(1, 45));
        for path in ["/containers/x/json", "/v1/containers", "/v1.x/containers", "/v1.+4/containers"] {
            let req = strip_version(Request::builder().uri(path).body(axum::body::Body::empty()).unwrap());
            assert_eq!(req.uri().path(), path);
            assert_eq!(req.extensions().get::<ApiVersion>(), None);
        }
    }
}
