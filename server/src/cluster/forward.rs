//! The hub's side of a session's requests: each goes on, as it came, to the node that
//! holds the session, with the cluster secret; a WebSocket (the terminal) is passed
//! through once both ends have switched protocols.

use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::Response;
use hyper_util::rt::TokioIo;

use super::ClusterSecret;

/// How long the hub tries to reach a node before it says the node is away.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// HOST:PORT of a node's web listener, from its advertised `http://HOST:PORT` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority(String);

impl Authority {
    pub fn parse(url: &str) -> anyhow::Result<Authority> {
        let rest = url.strip_prefix("http://").ok_or_else(|| anyhow::anyhow!("{url:?}: a node's URL is http://HOST:PORT (hub and nodes talk inside the cluster)"))?;
        let rest = rest.trim_end_matches('/');
        let uri: axum::http::uri::Authority = rest.parse().map_err(|_| anyhow::anyhow!("{url:?}: a node's URL is http://HOST:PORT"))?;
        anyhow::ensure!(uri.port_u16().is_some() && !rest.contains('@'), "{url:?}: a node's URL is http://HOST:PORT, with the port");
        Ok(Authority(rest.to_string()))
    }
}

impl std::fmt::Display for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// No connection to the node (it is restarting, or gone).
    #[error("lab node {node} does not answer: {reason}")]
    Unreachable { node: Authority, reason: String },
    /// The node took the connection but not the request.
    #[error("lab node {node}: {reason}")]
    Failed { node: Authority, reason: String },
}

/// Hop-by-hop headers (RFC 9110 7.6.1): they describe one connection, not the request.
const HOP_BY_HOP: &[&str] = &["connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade"];

fn is_upgrade(headers: &axum::http::HeaderMap) -> bool {
    headers.get(header::CONNECTION).and_then(|v| v.to_str().ok()).is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade"))) && headers.contains_key(header::UPGRADE)
}

/// Sends `req` to the node at `node` and gives its answer. The client's `Host` stays
/// (the node builds links from it); `X-Forwarded-For` says who the client is.
pub async fn forward(node: &Authority, secret: &ClusterSecret, client: Option<std::net::SocketAddr>, req: Request) -> Result<Response, ForwardError> {
    forward_holding(node, secret, client, req, Box::new(())).await
}

/// [`forward`], keeping `hold` as long as a WebSocket passed through lasts (dropped at
/// once otherwise): an instructor counted as watching while their terminal is open.
pub async fn forward_holding(node: &Authority, secret: &ClusterSecret, client: Option<std::net::SocketAddr>, mut req: Request, hold: Box<dyn Send>) -> Result<Response, ForwardError> {
    let unreachable = |reason: String| ForwardError::Unreachable { node: node.clone(), reason };
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(&node.0)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return Err(unreachable(e.to_string())),
        Err(_) => return Err(unreachable(format!("no connection within {} s", CONNECT_TIMEOUT.as_secs()))),
    };
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| unreachable(e.to_string()))?;
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });

    let upgrade = is_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_string();
    *req.uri_mut() = path.parse::<Uri>().unwrap_or_else(|_| Uri::from_static("/"));
    let headers = req.headers_mut();
    for h in HOP_BY_HOP {
        if !(upgrade && (*h == "connection" || *h == "upgrade")) {
            headers.remove(*h);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&secret.bearer()) {
        headers.insert(header::AUTHORIZATION, v);
    }
    if let Some(ip) = client.map(|a| a.ip().to_canonical().to_string()).and_then(|ip| HeaderValue::from_str(&ip).ok()) {
        headers.insert("x-forwarded-for", ip);
    }

    let mut resp = sender.send_request(req).await.map_err(|e| ForwardError::Failed { node: node.clone(), reason: e.to_string() })?;
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        let node_upgrade = hyper::upgrade::on(&mut resp);
        if let Some(client_upgrade) = client_upgrade {
            tokio::spawn(async move {
                let _hold = hold;
                let (Ok(client), Ok(node)) = (client_upgrade.await, node_upgrade.await) else { return };
                let (mut client, mut node) = (TokioIo::new(client), TokioIo::new(node));
                let _ = tokio::io::copy_bidirectional(&mut client, &mut node).await;
            });
        }
    }
    Ok(resp.map(Body::new))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_urls() {
        assert_eq!(Authority::parse("http://10.0.0.1:8080").unwrap().to_string(), "10.0.0.1:8080");
        assert_eq!(Authority::parse("http://berth-node-0.berth-node:8080/").unwrap().to_string(), "berth-node-0.berth-node:8080");
        for bad in ["10.0.0.1:8080", "https://10.0.0.1:8080", "http://10.0.0.1", "http://user:pw@host:80", "http://host:80/path", ""] {
            assert!(Authority::parse(bad).is_err(), "{bad}");
        }
    }
}
