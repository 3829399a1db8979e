//! `/containers/{id}/archive`: what `docker cp` uses. HEAD stats a path, GET streams
//! it as a tar, PUT extracts a tar into a directory. HEAD and GET carry the path's
//! stat as base64 JSON in `X-Docker-Container-Path-Stat`.

use std::collections::BTreeMap;
use std::io;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::StreamExt;

use super::{blocking, qbool, ApiError, ApiState};

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/containers/{id}/archive", get(get_archive).head(head_archive).put(put_archive))
        .route("/containers/{id}/export", get(export))
}

type Q = Query<BTreeMap<String, String>>;

const STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

fn path_param(q: &BTreeMap<String, String>) -> Result<String, ApiError> {
    match q.get("path") {
        Some(p) if !p.is_empty() => Ok(p.clone()),
        _ => Err(ApiError::bad_request("path cannot be empty")),
    }
}

/// Standard base64 with padding (Go's `base64.StdEncoding`), which the CLI decodes.
fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn stat_headers(stat: &impl serde::Serialize) -> Result<HeaderMap, ApiError> {
    let json = serde_json::to_vec(stat).map_err(|e| ApiError::internal(format!("encode stat: {e}")))?;
    let mut h = HeaderMap::new();
    let v = HeaderValue::from_str(&base64(&json)).map_err(|e| ApiError::internal(format!("stat header: {e}")))?;
    h.insert(STAT_HEADER, v);
    Ok(h)
}

async fn head_archive(State(s): State<ApiState>, Path(id): Path<String>, Query(q): Q) -> Result<Response, ApiError> {
    let path = path_param(&q)?;
    let stat = blocking(move || Ok(s.engine.stat_container_path(&s.namespace, &id, &path)?)).await?;
    Ok((stat_headers(&stat)?, StatusCode::OK).into_response())
}

async fn get_archive(State(s): State<ApiState>, Path(id): Path<String>, Query(q): Q) -> Result<Response, ApiError> {
    let path = path_param(&q)?;
    let (stat, tar) = blocking(move || Ok(s.engine.archive_container_path(&s.namespace, &id, &path)?)).await?;
    let mut headers = stat_headers(&stat)?;
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-tar"));
    Ok((headers, tar_body(tar)).into_response())
}

/// `docker export`: the container's file system as a tar.
async fn export(State(s): State<ApiState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let tar = blocking(move || Ok(s.engine.export_container(&s.namespace, &id)?)).await?;
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static("application/x-tar"))], tar_body(tar)).into_response())
}

/// A response body of a tar a blocking thread produces, forwarded chunk by chunk.
fn tar_body(mut tar: berth_engine::ArchiveReader) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        while let Some(chunk) = tar.next_chunk() {
            let failed = chunk.is_err();
            if tx.blocking_send(chunk.map(Bytes::from)).is_err() || failed {
                break;
            }
        }
    });
    Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
}

async fn put_archive(State(s): State<ApiState>, Path(id): Path<String>, Query(q): Q, body: Body) -> Result<Response, ApiError> {
    let path = path_param(&q)?;
    let no_overwrite = qbool(&q.get("noOverwriteDirNonDir").cloned());
    let copy_uid_gid = qbool(&q.get("copyUIDGID").cloned());
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
    // Feed the body while the engine extracts; a send fails once extraction stopped.
    // The rest is then read and dropped (up to a bound): a client still sending
    // would otherwise get a broken pipe instead of the error (a read-only volume).
    let feeder = tokio::spawn(async move {
        const DRAIN_LIMIT: usize = 256 << 20;
        let mut stream = body.into_data_stream();
        let mut drained = 0usize;
        let mut feeding = true;
        while let Some(frame) = stream.next().await {
            if feeding {
                if tx.send(frame.map_err(io::Error::other)).await.is_err() {
                    feeding = false;
                }
            } else {
                drained += frame.map(|b| b.len()).unwrap_or(DRAIN_LIMIT);
                if drained >= DRAIN_LIMIT {
                    break;
                }
            }
        }
    });
    let reader = crate::chunks::ChunkReader::new(rx);
    let result = blocking(move || Ok(s.engine.extract_to_container(&s.namespace, &id, &path, no_overwrite, copy_uid_gid, Box::new(reader))?)).await;
    if result.is_err() {
        let _ = feeder.await;
    }
    result?;
    Ok(StatusCode::OK.into_response())
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_the_standard_alphabet() {
        assert_eq!(super::base64(b""), "");
        assert_eq!(super::base64(b"f"), "Zg==");
        assert_eq!(super::base64(b"fo"), "Zm8=");
        assert_eq!(super::base64(b"foo"), "Zm9v");
        assert_eq!(super::base64(b"{\"name\":\"x\"}"), "eyJuYW1lIjoieCJ9");
    }
}
