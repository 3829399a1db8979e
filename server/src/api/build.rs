//! `/build` (`docker build` with the classic builder) and `/commit` (`docker commit`).
//!
//! A build answers 200 at once and streams Docker's JSON lines: `{"stream": …}` for
//! the text, `{"aux": {"ID": …}}` with the image id, and `{"errorDetail": …,
//! "error": …}` when a step fails (the CLI prints it and exits 1).

use std::collections::BTreeMap;
use std::io;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use berth_engine::archive::TempDir;
use berth_engine::build::{self, BuildOptions};
use berth_engine::CommitOptions;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::{blocking, qbool, ApiError, ApiState};

pub fn routes() -> Router<ApiState> {
    Router::new().route("/build", post(build_image)).route("/commit", post(commit))
}

type Pairs = Query<Vec<(String, String)>>;

fn first(q: &[(String, String)], k: &str) -> Option<String> {
    q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
}

fn all_of(q: &[(String, String)], k: &str) -> Vec<String> {
    q.iter().filter(|(n, _)| n == k).map(|(_, v)| v.clone()).collect()
}

/// A JSON object query value (`buildargs`, `labels`); empty means none.
fn json_map<T: serde::de::DeserializeOwned + Default>(q: &[(String, String)], k: &str) -> Result<T, ApiError> {
    match first(q, k).filter(|v| !v.is_empty()) {
        Some(v) => serde_json::from_str(&v).map_err(|e| ApiError::bad_request(format!("invalid {k}: {e}"))),
        None => Ok(T::default()),
    }
}

fn options(q: &[(String, String)]) -> Result<BuildOptions, ApiError> {
    let rm = first(q, "rm");
    Ok(BuildOptions {
        tags: all_of(q, "t").into_iter().filter(|t| !t.is_empty()).collect(),
        dockerfile: first(q, "dockerfile").filter(|d| !d.is_empty()).unwrap_or_else(|| "Dockerfile".into()),
        build_args: json_map::<BTreeMap<String, Option<String>>>(q, "buildargs")?,
        labels: json_map::<BTreeMap<String, String>>(q, "labels")?,
        target: first(q, "target").filter(|t| !t.is_empty()),
        no_cache: qbool(&first(q, "nocache")),
        // --rm is on unless the client says rm=0.
        rm: rm.is_none() || qbool(&rm),
        force_rm: qbool(&first(q, "forcerm")),
        quiet: qbool(&first(q, "q")),
    })
}

fn line(v: Value) -> Result<Bytes, io::Error> {
    let mut b = v.to_string().into_bytes();
    b.push(b'\n');
    Ok(Bytes::from(b))
}

/// Spools the context to a file under the engine's tmp dir (the body may be large
/// and the build reads it from a blocking thread). The file is removed when the
/// returned guard drops.
async fn spool(s: &ApiState, body: Body) -> Result<(TempDir, std::path::PathBuf), ApiError> {
    let dir = TempDir::new(&s.engine.root().join("tmp"), "context")?;
    let path = dir.path().join("context.tar");
    let mut f = tokio::fs::File::create(&path).await.map_err(|e| ApiError::internal(format!("create context file: {e}")))?;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("read build context: {e}")))?;
        f.write_all(&chunk).await.map_err(|e| ApiError::internal(format!("write context file: {e}")))?;
    }
    f.flush().await.map_err(|e| ApiError::internal(format!("write context file: {e}")))?;
    Ok((dir, path))
}

async fn build_image(State(s): State<ApiState>, Query(q): Pairs, body: Body) -> Result<Response, ApiError> {
    let opts = options(&q)?;
    let (ctx, ctx_path) = spool(&s, body).await?;
    let (tx, rx) = mpsc::channel::<Result<Bytes, io::Error>>(256);
    tokio::task::spawn_blocking(move || {
        let quiet = opts.quiet;
        let text_tx = tx.clone();
        let mut out = |text: &str| {
            if !quiet {
                // A client that went away stops only the output; the build finishes
                // (and is cached), as with Docker.
                let _ = text_tx.blocking_send(line(json!({ "stream": text })));
            }
        };
        let result = std::fs::File::open(&ctx_path)
            .map_err(|e| berth_engine::Error::Io { context: "open build context".into(), source: e })
            .and_then(|f| build::build(&s.engine, &s.namespace, f, &opts, &mut out));
        match result {
            Ok(id) => {
                let _ = tx.blocking_send(line(json!({ "aux": { "ID": id } })));
                if quiet {
                    // With -q the CLI prints the stream text it got: just the id.
                    let _ = tx.blocking_send(line(json!({ "stream": format!("{id}\n") })));
                } else {
                    let short = &id[7..19.min(id.len())];
                    let _ = tx.blocking_send(line(json!({ "stream": format!("Successfully built {short}\n") })));
                    for t in &opts.tags {
                        let shown = berth_engine::reference::Reference::parse(t).map(|r| r.familiar()).unwrap_or(t.clone());
                        let _ = tx.blocking_send(line(json!({ "stream": format!("Successfully tagged {shown}\n") })));
                    }
                }
            }
            Err(e) => {
                tracing::info!("build failed: {e}");
                let m = e.to_string();
                let _ = tx.blocking_send(line(json!({ "errorDetail": { "message": m }, "error": m })));
            }
        }
        drop(ctx);
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// `docker commit [-a author] [-m message] [-c change] CONTAINER [REPO[:TAG]]`.
async fn commit(State(s): State<ApiState>, Query(q): Pairs) -> Result<Response, ApiError> {
    let container = first(&q, "container").filter(|c| !c.is_empty()).ok_or_else(|| ApiError::bad_request("container is required"))?;
    let reference = match (first(&q, "repo").filter(|r| !r.is_empty()), first(&q, "tag").filter(|t| !t.is_empty())) {
        (Some(r), Some(t)) => Some(format!("{r}:{t}")),
        (Some(r), None) => Some(r),
        (None, Some(_)) => return Err(ApiError::bad_request("tag is given without a repository")),
        (None, None) => None,
    };
    let opts = CommitOptions {
        reference,
        comment: first(&q, "comment").unwrap_or_default(),
        author: first(&q, "author").unwrap_or_default(),
        changes: all_of(&q, "changes"),
    };
    let id = blocking(move || Ok(s.engine.commit(&s.namespace, &container, &opts)?)).await?;
    Ok((StatusCode::CREATED, Json(json!({ "Id": id }))).into_response())
}
