//! The playground's files, embedded at build time (see `build.rs`): `/` is the page
//! (and so are the classroom's pages, which the same app draws from the path),
//! `/assets/<file>` the rest.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

pub fn routes() -> Router {
    Router::new()
        .route("/", get(index))
        .route("/join/{code}", get(index))
        .route("/teach", get(index))
        .route("/teach/classes/{id}", get(index))
        .route("/assets/{file}", get(asset))
}

/// Marks the JSON API's answers `Cache-Control: no-store` (unless set): a browser may
/// otherwise keep an error (Chromium caches a 410 for good) and show it after the state
/// behind it changed.
pub async fn no_store_api(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let mut resp = next.run(req).await;
    if api && !resp.headers().contains_key(header::CACHE_CONTROL) {
        resp.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    }
    resp
}

/// Whether this binary carries the playground.
pub fn embedded() -> bool {
    find("index.html").is_some()
}

fn find(name: &str) -> Option<&'static [u8]> {
    ASSETS.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    }
}

async fn index() -> Response {
    match find("index.html") {
        Some(b) => ([(header::CONTENT_TYPE, content_type("index.html")), (header::CACHE_CONTROL, "no-cache")], b).into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "This berth binary was built without the playground: run scripts/build-playground playground-web/dist, then rebuild berth.\n",
        )
            .into_response(),
    }
}

async fn asset(Path(file): Path<String>) -> Response {
    match find(&file).filter(|_| file != "index.html") {
        Some(b) => ([(header::CONTENT_TYPE, content_type(&file)), (header::CACHE_CONTROL, "no-cache")], b).into_response(),
        None => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}
