//! Berth's own registry: the OCI distribution API v1.1 (`/v2/…`) over
//! [`berth_engine::distribution::Registry`], on its own listener (default
//! 127.0.0.1:5000), plus Docker Hub's `/v1/search` shape.
//!
//! Repository names hold slashes, so everything under `/v2/` but the fixed endpoints
//! goes to one catch-all that splits the path on the last `/manifests/`, `/blobs/`,
//! `/referrers/` or `/tags/list` (names cannot end in those). Handlers translate;
//! the storage rules live in the engine.

pub mod auth;
pub mod mirror;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use anyhow::Context;
use berth_engine::distribution::{open_range, DistError, Registry};
use crate::chunks::ChunkReader;
use futures_util::StreamExt;
use serde::Deserialize;

pub use auth::Auth;
pub use mirror::Mirror;

/// `berth serve` flags of the registry.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RegistryOptions {
    /// Where Berth's registry listens (HOST:PORT; port 0 picks a free one), or `none`.
    /// [default: 127.0.0.1:5000]
    #[arg(long = "registry-listen")]
    pub registry_listen: Option<String>,
    /// htpasswd file of registry users (bcrypt); when given, the registry needs a login.
    #[arg(long = "registry-users")]
    pub registry_users: Option<PathBuf>,
    /// Make the registry a pull-through cache of this upstream (e.g. https://registry-1.docker.io).
    #[arg(long)]
    pub mirror: Option<String>,
    /// Docker's `registry-mirrors`: a registry (http://HOST:PORT) to try before Docker
    /// Hub when pulling its images. Repeatable; `none` turns it off. [default: Berth's
    /// own registry, when it is on]
    #[arg(long = "registry-mirror")]
    pub registry_mirrors: Vec<String>,
}

impl RegistryOptions {
    /// The `--registry-mirror` URLs given, checked (empty for `none`, and when none
    /// were given: [`use_as_mirror`] then sets Berth's own registry once it listens).
    pub fn engine_mirrors(&self) -> anyhow::Result<Vec<String>> {
        if self.registry_mirrors.iter().any(|m| m == "none") {
            if self.registry_mirrors.len() > 1 {
                anyhow::bail!("--registry-mirror none cannot be combined with other mirrors");
            }
            return Ok(Vec::new());
        }
        self.registry_mirrors.iter().map(|m| berth_engine::registry::normalize_mirror(m).map_err(anyhow::Error::msg)).collect()
    }
}

/// Once the registry listens on `bound`: publishes the seed images into it
/// (`library/busybox`, `library/hello-world`) and, unless `--registry-mirror` said
/// otherwise, makes it the engine's registry mirror, so `docker pull busybox` works
/// offline. A pull-through cache (`--mirror`) gets no seeds: it serves its upstream's
/// images. A failure only warns: the Docker API is served regardless.
pub async fn use_as_mirror(engine: &Arc<berth_engine::Engine>, opts: &RegistryOptions, bound: Option<std::net::SocketAddr>) {
    let Some(bound) = bound else { return };
    if opts.mirror.is_none() {
        let e = engine.clone();
        match tokio::task::spawn_blocking(move || e.publish_seed_images()).await {
            Ok(Ok(repos)) if !repos.is_empty() => tracing::info!("registry: published the seed images {}", repos.join(", ")),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!("registry: could not publish the seed images: {e}"),
            Err(e) => tracing::warn!("registry: publishing the seed images failed: {e}"),
        }
    }
    if opts.registry_mirrors.is_empty() {
        let url = format!("http://{bound}");
        tracing::info!("registry mirror for Docker Hub images: {url}");
        engine.set_registry_mirrors(vec![url]);
    }
}

/// The file `berth serve` writes the registry's bound address to (HOST:PORT), for
/// tools and tests that asked for port 0.
pub fn address_file(root: &Path) -> PathBuf {
    root.join("registry").join("listen-address")
}

/// Opens the registry on the engine root and serves it on its listener. A taken
/// default port only warns (Berth still serves the Docker API); an explicit one fails.
/// Returns the address it listens on, `None` when it is off.
pub async fn start(
    opts: &RegistryOptions,
    root: &Path,
    tasks: &mut tokio::task::JoinSet<std::io::Result<()>>,
) -> anyhow::Result<Option<std::net::SocketAddr>> {
    let explicit = opts.registry_listen.is_some();
    let addr = opts.registry_listen.clone().unwrap_or_else(|| "127.0.0.1:5000".into());
    if addr == "none" {
        return Ok(None);
    }
    let auth = match &opts.registry_users {
        Some(f) => Some(Arc::new(Auth::new(f)?)),
        None => None,
    };
    let mirror = match &opts.mirror {
        Some(u) => Some(Arc::new(Mirror::new(u)?)),
        None => None,
    };
    let r = root.to_path_buf();
    let registry = tokio::task::spawn_blocking(move || Registry::open(&r)).await?.context("open the registry")?;
    let listener = match tokio::net::TcpListener::bind(&addr).await {
        Ok(l) => l,
        Err(e) if !explicit => {
            tracing::warn!("registry not started: cannot listen on {addr}: {e} (choose one with --registry-listen)");
            return Ok(None);
        }
        Err(e) => return Err(e).with_context(|| format!("registry: listen on {addr}")),
    };
    let bound = listener.local_addr().context("registry address")?;
    if auth.is_none() && !bound.ip().is_loopback() {
        tracing::warn!("registry on {bound} is open to anyone who can reach it: add --registry-users FILE");
    }
    berth_engine::fsutil::write_atomic(&address_file(root), bound.to_string().as_bytes()).context("write the registry address")?;
    tracing::info!(
        "registry on http://{bound}{}{}",
        if auth.is_some() { " (login required)" } else { "" },
        opts.mirror.as_deref().map(|m| format!(", mirroring {m}")).unwrap_or_default()
    );
    let app = app(RegistryState { registry: Arc::new(registry), auth, mirror });
    tasks.spawn(async move { axum::serve(listener, app.into_make_service()).await });
    Ok(Some(bound))
}

#[derive(Clone)]
pub struct RegistryState {
    pub registry: Arc<Registry>,
    /// Users and tokens; `None` = open registry.
    pub auth: Option<Arc<Auth>>,
    pub mirror: Option<Arc<Mirror>>,
}

/// An error in the spec's shape: `{"errors":[{"code","message","detail"}]}`.
pub struct RegError {
    status: StatusCode,
    code: &'static str,
    message: String,
    detail: String,
    /// `WWW-Authenticate` for 401s.
    challenge: Option<String>,
}

impl RegError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> RegError {
        RegError { status, code, message: message.into(), detail: String::new(), challenge: None }
    }

    fn internal(message: impl Into<String>) -> RegError {
        RegError::new(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", message)
    }
}

impl From<DistError> for RegError {
    fn from(e: DistError) -> RegError {
        let status = match &e {
            DistError::BlobUnknown(_)
            | DistError::BlobUploadUnknown(_)
            | DistError::ManifestUnknown(_)
            | DistError::NameUnknown(_) => StatusCode::NOT_FOUND,
            DistError::RangeInvalid(_) => StatusCode::RANGE_NOT_SATISFIABLE,
            DistError::Engine(_) => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::warn!("registry: {e}");
        }
        RegError { status, code: e.code(), message: e.to_string(), detail: e.detail(), challenge: None }
    }
}

impl IntoResponse for RegError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"errors": [{"code": self.code, "message": self.message, "detail": self.detail}]});
        let mut r = (self.status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response();
        if let Some(c) = self.challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, c);
        }
        r
    }
}

type RResult<T = Response> = Result<T, RegError>;

/// Runs blocking storage work off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, DistError> + Send + 'static) -> RResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| RegError::internal(format!("task failed: {e}")))?.map_err(RegError::from)
}

/// Feeds `stream` to `f` (run on a blocking thread) as a `Read`. A stream that breaks
/// off reaches `f` as a read error, so nothing half-received becomes visible.
async fn feed<T, S, E>(mut stream: S, f: impl FnOnce(ChunkReader) -> Result<T, DistError> + Send + 'static) -> RResult<T>
where
    T: Send + 'static,
    S: futures_util::Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let work = tokio::task::spawn_blocking(move || f(ChunkReader::new(rx)));
    while let Some(chunk) = stream.next().await {
        let item = chunk.map_err(|e| io::Error::new(io::ErrorKind::ConnectionAborted, e.to_string()));
        let stop = item.is_err();
        // The worker gone (it failed early) or the stream broken: stop sending.
        if tx.send(item).await.is_err() || stop {
            break;
        }
    }
    drop(tx);
    work.await.map_err(|e| RegError::internal(format!("task failed: {e}")))?.map_err(RegError::from)
}

/// The registry's router. Every answer carries `Docker-Distribution-API-Version`.
pub fn app(state: RegistryState) -> Router {
    Router::new()
        .route("/v2/", get(base).head(base))
        .route("/v2", get(base).head(base))
        .route("/v2/token", get(token).post(token))
        .route("/v2/_catalog", get(catalog))
        .route("/v2/{*rest}", any(dispatch))
        .route("/v1/search", get(search))
        .fallback(|req: Request| async move {
            RegError::new(StatusCode::NOT_FOUND, "NOT_FOUND", format!("not found: {} {}", req.method(), req.uri().path()))
        })
        .layer(axum::middleware::map_response(|mut r: Response| async move {
            r.headers_mut().insert("Docker-Distribution-API-Version", HeaderValue::from_static("registry/2.0"));
            r
        }))
        .with_state(state)
}

/// Lets the request through, or answers 401 with the Bearer challenge Docker follows.
async fn authorize(st: &RegistryState, headers: &HeaderMap, name: Option<&str>) -> RResult<()> {
    let Some(auth) = st.auth.clone() else { return Ok(()) };
    let value = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    if let Some(t) = value.strip_prefix("Bearer ") {
        if auth.check_token(t.trim()).is_some() {
            return Ok(());
        }
    } else if value.starts_with("Basic ") {
        let a = auth.clone();
        let ok = tokio::task::spawn_blocking(move || a.check_basic(&value).is_some()).await.unwrap_or(false);
        if ok {
            return Ok(());
        }
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("127.0.0.1:5000");
    let mut challenge = format!("Bearer realm=\"http://{host}/v2/token\",service=\"berth\"");
    if let Some(n) = name {
        challenge.push_str(&format!(",scope=\"repository:{n}:pull,push\""));
    }
    let mut e = RegError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "authentication required");
    e.challenge = Some(challenge);
    Err(e)
}

async fn base(State(st): State<RegistryState>, headers: HeaderMap) -> RResult {
    authorize(&st, &headers, None).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], "{}").into_response())
}

/// Docker's token endpoint: Basic credentials in, a short-lived signed token out.
async fn token(State(st): State<RegistryState>, headers: HeaderMap) -> RResult {
    let Some(auth) = st.auth.clone() else {
        // Open registry: any client asking gets a token that nothing checks.
        return Ok(axum::Json(serde_json::json!({"token": "open", "access_token": "open", "expires_in": auth::TOKEN_TTL_SECS})).into_response());
    };
    let value = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let user = tokio::task::spawn_blocking(move || auth.check_basic(&value)).await.unwrap_or(None);
    let Some(user) = user else {
        let mut e = RegError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "incorrect username or password");
        e.challenge = Some("Basic realm=\"berth\"".into());
        return Err(e);
    };
    let Some(auth) = st.auth.as_ref() else { return Err(RegError::internal("no auth")) };
    let t = auth.issue_token(&user);
    Ok(axum::Json(serde_json::json!({
        "token": t, "access_token": t, "expires_in": auth::TOKEN_TTL_SECS,
        "issued_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }))
    .into_response())
}

#[derive(Deserialize)]
struct PageQuery {
    n: Option<String>,
    last: Option<String>,
}

fn page_n(n: &Option<String>) -> RResult<Option<usize>> {
    match n.as_deref() {
        None | Some("") => Ok(None),
        Some(s) => s.parse().map(Some).map_err(|_| DistError::PaginationInvalid(s.to_string()).into()),
    }
}

/// The `Link: <…>; rel="next"` header of a page that has more after it.
fn with_next(mut r: Response, path: &str, n: Option<usize>, page: &[String], more: bool) -> Response {
    if let (true, Some(n), Some(last)) = (more, n, page.last()) {
        if let Ok(v) = HeaderValue::from_str(&format!("<{path}?n={n}&last={last}>; rel=\"next\"")) {
            r.headers_mut().insert(header::LINK, v);
        }
    }
    r
}

async fn catalog(State(st): State<RegistryState>, headers: HeaderMap, Query(q): Query<PageQuery>) -> RResult {
    authorize(&st, &headers, None).await?;
    let n = page_n(&q.n)?;
    let reg = st.registry.clone();
    let last = q.last.clone();
    let (page, more) = blocking(move || reg.catalog(n, last.as_deref())).await?;
    let r = axum::Json(serde_json::json!({ "repositories": page })).into_response();
    Ok(with_next(r, "/v2/_catalog", n, &page, more))
}

#[derive(Deserialize)]
struct SearchQuery {
    q: Option<String>,
    n: Option<usize>,
    page: Option<usize>,
}

/// Docker Hub's `/v1/search`, over this registry's repositories.
async fn search(State(st): State<RegistryState>, headers: HeaderMap, Query(q): Query<SearchQuery>) -> RResult {
    authorize(&st, &headers, None).await?;
    let term = q.q.unwrap_or_default();
    let page_size = q.n.unwrap_or(25).clamp(1, 100);
    let page = q.page.unwrap_or(1).max(1);
    let reg = st.registry.clone();
    let t = term.clone();
    let all = blocking(move || reg.search(&t, usize::MAX)).await?;
    let results: Vec<_> = all.iter().skip((page - 1) * page_size).take(page_size).collect();
    Ok(axum::Json(serde_json::json!({
        "num_results": all.len(), "num_pages": all.len().div_ceil(page_size), "page": page,
        "page_size": page_size, "query": term, "results": results,
    }))
    .into_response())
}

/// Which endpoint a `/v2/<name>/…` path is.
#[derive(Debug, PartialEq)]
enum Route {
    Tags(String),
    Manifest(String, String),
    Blob(String, String),
    Uploads(String, Option<String>),
    Referrers(String, String),
}

fn parse_route(rest: &str) -> Option<Route> {
    let rest = rest.trim_start_matches('/');
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Some(Route::Tags(name.to_string()));
    }
    if let Some(name) = rest.strip_suffix("/blobs/uploads").or_else(|| rest.strip_suffix("/blobs/uploads/")) {
        return Some(Route::Uploads(name.to_string(), None));
    }
    // The part after a marker is one path segment: a digest, tag or upload id.
    let split = |marker: &str| -> Option<(String, String)> {
        let i = rest.rfind(marker)?;
        let tail = &rest[i + marker.len()..];
        (!tail.is_empty() && !tail.contains('/')).then(|| (rest[..i].to_string(), tail.to_string()))
    };
    if let Some((n, id)) = split("/blobs/uploads/") {
        return Some(Route::Uploads(n, Some(id)));
    }
    if let Some((n, r)) = split("/manifests/") {
        return Some(Route::Manifest(n, r));
    }
    if let Some((n, d)) = split("/referrers/") {
        return Some(Route::Referrers(n, d));
    }
    if let Some((n, d)) = split("/blobs/") {
        return Some(Route::Blob(n, d));
    }
    None
}

async fn dispatch(State(st): State<RegistryState>, req: Request) -> RResult {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().strip_prefix("/v2/").unwrap_or("").to_string();
    let query: Vec<(String, String)> = parts
        .uri
        .query()
        .map(url_pairs)
        .unwrap_or_default();
    let q = |k: &str| query.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let not_found = || RegError::new(StatusCode::NOT_FOUND, "NOT_FOUND", format!("not found: {} {}", parts.method, parts.uri.path()));
    let route = parse_route(&path).ok_or_else(not_found)?;
    let name = match &route {
        Route::Tags(n) | Route::Manifest(n, _) | Route::Blob(n, _) | Route::Uploads(n, _) | Route::Referrers(n, _) => n.clone(),
    };
    authorize(&st, &parts.headers, Some(&name)).await?;
    berth_engine::distribution::validate_name(&name)?;
    let m = &parts.method;
    let h = &parts.headers;
    match route {
        Route::Tags(name) if m == Method::GET => {
            let n = page_n(&q("n"))?;
            let (reg, nm, last) = (st.registry.clone(), name.clone(), q("last"));
            let (page, more) = blocking(move || reg.tags(&nm, n, last.as_deref())).await?;
            let r = axum::Json(serde_json::json!({ "name": name, "tags": page })).into_response();
            Ok(with_next(r, &format!("/v2/{name}/tags/list"), n, &page, more))
        }
        Route::Manifest(name, reference) => match *m {
            Method::GET | Method::HEAD => get_manifest(&st, name, reference, m == Method::GET).await,
            Method::PUT => put_manifest(&st, name, reference, h, body).await,
            Method::DELETE => {
                let reg = st.registry.clone();
                blocking(move || reg.delete_manifest(&name, &reference)).await?;
                Ok(StatusCode::ACCEPTED.into_response())
            }
            _ => Err(unsupported()),
        },
        Route::Blob(name, digest) => match *m {
            Method::GET | Method::HEAD => get_blob(&st, name, digest, h, m == Method::GET).await,
            Method::DELETE => {
                let reg = st.registry.clone();
                blocking(move || reg.delete_blob(&name, &digest)).await?;
                Ok(StatusCode::ACCEPTED.into_response())
            }
            _ => Err(unsupported()),
        },
        Route::Uploads(name, None) if m == Method::POST => start_upload(&st, name, q("mount"), q("from"), q("digest"), body).await,
        Route::Uploads(name, Some(id)) => match *m {
            Method::GET => {
                let (reg, nm, i) = (st.registry.clone(), name.clone(), id.clone());
                let off = blocking(move || reg.upload_offset(&nm, &i)).await?;
                Ok(upload_accepted(StatusCode::NO_CONTENT, &name, &id, off))
            }
            Method::PATCH => {
                let start = content_range_start(h)?;
                let (reg, nm, i) = (st.registry.clone(), name.clone(), id.clone());
                let off = feed(body.into_data_stream(), move |r| reg.append_upload(&nm, &i, start, r)).await?;
                Ok(upload_accepted(StatusCode::ACCEPTED, &name, &id, off))
            }
            Method::PUT => {
                let digest = q("digest").ok_or_else(|| RegError::from(DistError::DigestInvalid("PUT without ?digest=".into())))?;
                let start = content_range_start(h)?;
                let (reg, nm, d) = (st.registry.clone(), name.clone(), digest.clone());
                feed(body.into_data_stream(), move |r| reg.finish_upload(&nm, &id, &d, start, r)).await?;
                Ok(blob_created(&name, &digest))
            }
            Method::DELETE => {
                let reg = st.registry.clone();
                blocking(move || reg.cancel_upload(&name, &id)).await?;
                Ok(StatusCode::NO_CONTENT.into_response())
            }
            _ => Err(unsupported()),
        },
        Route::Referrers(name, digest) if m == Method::GET => {
            let filter = q("artifactType");
            let (reg, f) = (st.registry.clone(), filter.clone());
            let index = blocking(move || reg.referrers(&name, &digest, f.as_deref())).await?;
            let mut r = ([(header::CONTENT_TYPE, berth_engine::distribution::MEDIA_TYPE_OCI_INDEX)], index.to_string()).into_response();
            if filter.is_some() {
                r.headers_mut().insert("OCI-Filters-Applied", HeaderValue::from_static("artifactType"));
            }
            Ok(r)
        }
        _ => Err(unsupported()),
    }
}

fn unsupported() -> RegError {
    RegError::new(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED", "the operation is unsupported")
}

/// Decodes `a=b&c=d` (percent-encoding included: `from=library%2Fbusybox`).
fn url_pairs(q: &str) -> Vec<(String, String)> {
    let uri: axum::http::Uri = match format!("/?{q}").parse() {
        Ok(u) => u,
        Err(_) => return vec![],
    };
    Query::<Vec<(String, String)>>::try_from_uri(&uri).map(|Query(v)| v).unwrap_or_default()
}

/// The first byte of a `Content-Range: <start>-<end>` chunk, when given.
fn content_range_start(h: &HeaderMap) -> RResult<Option<u64>> {
    let Some(v) = h.get(header::CONTENT_RANGE).and_then(|v| v.to_str().ok()) else { return Ok(None) };
    let v = v.trim().trim_start_matches("bytes").trim_start_matches([' ', '=']);
    let start = v.split(['-', '/']).next().unwrap_or("");
    start
        .parse()
        .map(Some)
        .map_err(|_| DistError::RangeInvalid(format!("bad Content-Range {v}")).into())
}

fn upload_accepted(status: StatusCode, name: &str, id: &str, offset: u64) -> Response {
    // `Range` is inclusive: bytes 0..offset-1 received ("0-0" for none, as distribution says).
    let range = format!("0-{}", offset.saturating_sub(1));
    let mut r = status.into_response();
    let h = r.headers_mut();
    for (k, v) in [
        ("Location", format!("/v2/{name}/blobs/uploads/{id}")),
        ("Range", range),
        ("Docker-Upload-UUID", id.to_string()),
        ("Content-Length", "0".to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    }
    r
}

fn blob_created(name: &str, digest: &str) -> Response {
    let mut r = StatusCode::CREATED.into_response();
    for (k, v) in [("Location", format!("/v2/{name}/blobs/{digest}")), ("Docker-Content-Digest", digest.to_string())] {
        if let Ok(v) = HeaderValue::from_str(&v) {
            r.headers_mut().insert(k, v);
        }
    }
    r
}

async fn start_upload(
    st: &RegistryState,
    name: String,
    mount: Option<String>,
    from: Option<String>,
    digest: Option<String>,
    body: Body,
) -> RResult {
    if let (Some(d), Some(f)) = (mount.clone(), from) {
        let (reg, nm, dd) = (st.registry.clone(), name.clone(), d.clone());
        if blocking(move || reg.mount_blob(&nm, &dd, &f)).await? {
            return Ok(blob_created(&name, &d));
        }
    }
    if let Some(d) = digest {
        // A monolithic upload: POST with the whole blob.
        let (reg, nm, dd) = (st.registry.clone(), name.clone(), d.clone());
        feed(body.into_data_stream(), move |r| reg.ingest_blob(&nm, &dd, r)).await?;
        return Ok(blob_created(&name, &d));
    }
    let (reg, nm) = (st.registry.clone(), name.clone());
    let id = blocking(move || reg.start_upload(&nm)).await?;
    Ok(upload_accepted(StatusCode::ACCEPTED, &name, &id, 0))
}

async fn get_manifest(st: &RegistryState, name: String, reference: String, is_get: bool) -> RResult {
    let (reg, nm, rf) = (st.registry.clone(), name.clone(), reference.clone());
    let found = blocking(move || reg.manifest(&nm, &rf, is_get)).await;
    let m = match found {
        Ok(m) => m,
        Err(e) if st.mirror.is_some() && matches!(e.code, "MANIFEST_UNKNOWN" | "NAME_UNKNOWN") => {
            fetch_manifest(st, &name, &reference).await?.ok_or(e)?;
            let (reg, nm, rf) = (st.registry.clone(), name.clone(), reference.clone());
            blocking(move || reg.manifest(&nm, &rf, is_get)).await?
        }
        Err(e) => return Err(e),
    };
    let mut r = Response::new(if is_get { Body::from(m.bytes.clone()) } else { Body::empty() });
    let h = r.headers_mut();
    for (k, v) in [
        ("Content-Type", m.media_type.clone()),
        ("Docker-Content-Digest", m.digest.clone()),
        ("Content-Length", m.bytes.len().to_string()),
        ("ETag", format!("\"{}\"", m.digest)),
    ] {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    }
    Ok(r)
}

/// Mirror mode: stores the upstream's manifest (its blobs come lazily). `None` when
/// the upstream does not have it either.
async fn fetch_manifest(st: &RegistryState, name: &str, reference: &str) -> RResult<Option<()>> {
    let Some(mirror) = st.mirror.clone() else { return Ok(None) };
    let got = mirror.manifest(name, reference).await.map_err(|e| {
        tracing::warn!("mirror: manifest {name}:{reference}: {e:#}");
        RegError::internal(format!("mirror upstream: {e:#}"))
    })?;
    let Some((bytes, ct)) = got else { return Ok(None) };
    let (reg, nm, rf) = (st.registry.clone(), name.to_string(), reference.to_string());
    blocking(move || reg.put_manifest(&nm, &rf, ct.as_deref(), &bytes, false)).await?;
    tracing::info!("mirror: cached manifest {name}:{reference}");
    Ok(Some(()))
}

async fn put_manifest(st: &RegistryState, name: String, reference: String, h: &HeaderMap, body: Body) -> RResult {
    let limit = berth_engine::distribution::MAX_MANIFEST_SIZE;
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| RegError::from(DistError::SizeInvalid(format!("manifest larger than {limit} bytes or cut off"))))?;
    let ct = h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
    let (reg, nm) = (st.registry.clone(), name.clone());
    let put = blocking(move || reg.put_manifest(&nm, &reference, ct.as_deref(), &bytes, true)).await?;
    let mut r = StatusCode::CREATED.into_response();
    let mut pairs = vec![("Location", format!("/v2/{name}/manifests/{}", put.digest)), ("Docker-Content-Digest", put.digest.clone())];
    if let Some(s) = put.subject {
        pairs.push(("OCI-Subject", s));
    }
    for (k, v) in pairs {
        if let Ok(v) = HeaderValue::from_str(&v) {
            r.headers_mut().insert(k, v);
        }
    }
    Ok(r)
}

/// `Range: bytes=a-b` / `bytes=a-` / `bytes=-n` → inclusive (start, end), or an error
/// when it lies outside the blob.
fn parse_range(v: &str, size: u64) -> Option<(u64, u64)> {
    let spec = v.trim().strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let (start, end) = match (a.trim(), b.trim()) {
        ("", n) => {
            let n: u64 = n.parse().ok()?;
            (size.checked_sub(n.min(size))?, size.checked_sub(1)?)
        }
        (a, "") => (a.parse().ok()?, size.checked_sub(1)?),
        (a, b) => (a.parse().ok()?, b.parse::<u64>().ok()?.min(size.checked_sub(1)?)),
    };
    (start <= end && end < size).then_some((start, end))
}

async fn get_blob(st: &RegistryState, name: String, digest: String, h: &HeaderMap, is_get: bool) -> RResult {
    let (reg, nm, d) = (st.registry.clone(), name.clone(), digest.clone());
    let (path, size) = match blocking(move || reg.blob(&nm, &d)).await {
        Ok(x) => x,
        Err(e) if st.mirror.is_some() && matches!(e.code, "BLOB_UNKNOWN" | "NAME_UNKNOWN") => {
            fetch_blob(st, &name, &digest).await?.ok_or(e)?;
            let (reg, nm, d) = (st.registry.clone(), name.clone(), digest.clone());
            blocking(move || reg.blob(&nm, &d)).await?
        }
        Err(e) => return Err(e),
    };
    let range = h.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, start, end) = match range {
        None => (StatusCode::OK, 0, size.saturating_sub(1)),
        Some(v) => match parse_range(v, size) {
            Some((s, e)) => (StatusCode::PARTIAL_CONTENT, s, e),
            None => {
                let mut r = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    r.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                return Ok(r);
            }
        },
    };
    let len = if size == 0 { 0 } else { end - start + 1 };
    let body = if is_get && len > 0 {
        let f = blocking(move || open_range(&path, start)).await?;
        let reader = tokio::io::AsyncReadExt::take(tokio::fs::File::from_std(f), len);
        Body::from_stream(tokio_util::io::ReaderStream::with_capacity(reader, 256 * 1024))
    } else {
        Body::empty()
    };
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let mut pairs = vec![
        ("Content-Type", "application/octet-stream".to_string()),
        ("Content-Length", len.to_string()),
        ("Docker-Content-Digest", digest.clone()),
        ("Accept-Ranges", "bytes".to_string()),
        ("ETag", format!("\"{digest}\"")),
    ];
    if status == StatusCode::PARTIAL_CONTENT {
        pairs.push(("Content-Range", format!("bytes {start}-{end}/{size}")));
    }
    for (k, v) in pairs {
        if let Ok(v) = HeaderValue::from_str(&v) {
            r.headers_mut().insert(k, v);
        }
    }
    Ok(r)
}

/// Mirror mode: a blob this registry lacks. Bytes already in the content store are
/// linked without a download; otherwise the upstream's stream is verified against
/// the digest while it is stored.
async fn fetch_blob(st: &RegistryState, name: &str, digest: &str) -> RResult<Option<()>> {
    let Some(mirror) = st.mirror.clone() else { return Ok(None) };
    let resp = mirror.blob(name, digest).await.map_err(|e| {
        tracing::warn!("mirror: blob {name}@{digest}: {e:#}");
        RegError::internal(format!("mirror upstream: {e:#}"))
    })?;
    let Some(resp) = resp else { return Ok(None) };
    let (reg, nm, d) = (st.registry.clone(), name.to_string(), digest.to_string());
    let size = feed(resp.bytes_stream(), move |r| reg.ingest_blob(&nm, &d, r)).await?;
    tracing::info!("mirror: cached blob {name}@{digest} ({size} bytes)");
    Ok(Some(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_split_names_with_slashes() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(parse_route("a/b/tags/list"), Some(Route::Tags("a/b".into())));
        assert_eq!(parse_route("a/manifests/b/manifests/v1"), Some(Route::Manifest("a/manifests/b".into(), "v1".into())));
        assert_eq!(parse_route(&format!("x/y/blobs/{d}")), Some(Route::Blob("x/y".into(), d.clone())));
        assert_eq!(parse_route("x/blobs/uploads/"), Some(Route::Uploads("x".into(), None)));
        assert_eq!(parse_route("x/blobs/uploads/abc"), Some(Route::Uploads("x".into(), Some("abc".into()))));
        assert_eq!(parse_route(&format!("x/referrers/{d}")), Some(Route::Referrers("x".into(), d)));
        assert_eq!(parse_route("x/y"), None);
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-3", 10), Some((0, 3)));
        assert_eq!(parse_range("bytes=4-", 10), Some((4, 9)));
        assert_eq!(parse_range("bytes=-2", 10), Some((8, 9)));
        assert_eq!(parse_range("bytes=5-100", 10), Some((5, 9)));
        assert_eq!(parse_range("bytes=10-", 10), None);
        assert_eq!(parse_range("bytes=3-1", 10), None);
        assert_eq!(url_pairs("mount=sha256%3Aab&from=library%2Fbusybox"), vec![
            ("mount".to_string(), "sha256:ab".to_string()),
            ("from".to_string(), "library/busybox".to_string())
        ]);
    }
}
