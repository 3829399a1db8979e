//! `/lab/{session}/ports/{port}/...`: HTTP from the browser to a port published in the
//! session's network (where `-p 8080:80` binds), so a student's web server opens from
//! the page without any host port of its own.

use std::path::PathBuf;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;

/// Connects to 127.0.0.1:`port` inside the network namespace at `network`.
async fn connect(network: PathBuf, port: u16) -> Result<tokio::net::TcpStream, String> {
    let std_stream = tokio::task::spawn_blocking(move || {
        berth_engine::netns::run_in(&network, move || std::net::TcpStream::connect(("127.0.0.1", port)))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("nothing answers on port {port} in this session: {e}"))?;
    std_stream.set_nonblocking(true).map_err(|e| e.to_string())?;
    tokio::net::TcpStream::from_std(std_stream).map_err(|e| e.to_string())
}

fn bad_gateway(msg: String) -> Response {
    (StatusCode::BAD_GATEWAY, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], msg).into_response()
}

/// Forwards `req` (whose path is already the part after `/ports/{port}`) to the port.
pub async fn forward(network: PathBuf, port: u16, rest: &str, mut req: Request) -> Response {
    let stream = match connect(network, port).await {
        Ok(s) => s,
        Err(e) => return bad_gateway(e),
    };
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
        Ok(x) => x,
        Err(e) => return bad_gateway(format!("port {port}: {e}")),
    };
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let path_and_query = match req.uri().query() {
        Some(q) => format!("/{rest}?{q}"),
        None => format!("/{rest}"),
    };
    *req.uri_mut() = path_and_query.parse::<Uri>().unwrap_or_else(|_| Uri::from_static("/"));
    req.headers_mut().insert(header::HOST, header::HeaderValue::from_str(&format!("localhost:{port}")).unwrap_or(header::HeaderValue::from_static("localhost")));
    match sender.send_request(req).await {
        Ok(resp) => resp.map(Body::new),
        Err(e) => bad_gateway(format!("port {port}: {e}")),
    }
}
