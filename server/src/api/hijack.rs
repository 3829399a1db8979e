//! Docker's "hijacked" streams (attach, exec start): the HTTP connection is upgraded
//! (`101 UPGRADED`, `Upgrade: tcp`) and then carries raw bytes both ways.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

use super::ApiError;

pub const RAW_STREAM: &str = "application/vnd.docker.raw-stream";
pub const MULTIPLEXED_STREAM: &str = "application/vnd.docker.multiplexed-stream";

/// Takes the upgrade future from a request that asked for one.
pub fn take_upgrade(req: &mut Request) -> Result<OnUpgrade, ApiError> {
    let wants = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("tcp"));
    if !wants {
        return Err(ApiError::bad_request("this endpoint needs 'Connection: Upgrade' and 'Upgrade: tcp'"));
    }
    Ok(hyper::upgrade::on(req))
}

pub fn upgraded_response(tty: bool) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(if tty { RAW_STREAM } else { MULTIPLEXED_STREAM }));
    r
}

pub type Upgraded = TokioIo<hyper::upgrade::Upgraded>;

pub async fn upgraded(on: OnUpgrade) -> Option<Upgraded> {
    on.await.ok().map(TokioIo::new)
}

/// Relays a client and a backend until the backend's output ends. Client EOF on
/// input is passed on as a half-close, so "stdin closed" reaches the backend.
/// Returns true if the client went away first (a detach, for a TTY).
pub async fn relay<B>(client: Upgraded, backend: B) -> bool
where
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut br, mut bw) = tokio::io::split(backend);
    let input = async {
        let _ = tokio::io::copy(&mut cr, &mut bw).await;
        let _ = bw.shutdown().await;
    };
    let output = async {
        let r = tokio::io::copy(&mut br, &mut cw).await;
        let _ = cw.shutdown().await;
        r.is_err()
    };
    tokio::pin!(input, output);
    let mut input_done = false;
    loop {
        tokio::select! {
            failed = &mut output => return failed || input_done,
            _ = &mut input, if !input_done => input_done = true,
        }
    }
}
