//! The hub (`berth serve --role hub`): the playground's address when lab sessions run
//! on several nodes. It serves the page and the lessons itself, places each new
//! session on a node, and forwards every request of a session to the node that holds
//! it (found in the shared database, where each node writes its sessions and
//! itself).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use berth_lessons::api::{ApiError, ErrorKind};
use berth_lessons::Lesson;
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;

use super::forward::{self, Authority, ForwardError};
use super::{ClusterSecret, GONE_AFTER};
use crate::lab::db::{Db, NodeRow};

pub struct Hub {
    pub db: Db,
    secret: ClusterSecret,
    lessons: Arc<Vec<Lesson>>,
    /// Which node holds a session (sessions do not move), as learnt.
    owners: Mutex<HashMap<String, String>>,
    /// Sessions placed on a node, by node, with when: counted in its load until its
    /// next heartbeat (which counts them itself).
    placed: Mutex<Vec<(String, DateTime<Utc>)>>,
}

type HubState = Arc<Hub>;

fn error(status: StatusCode, kind: Option<ErrorKind>, message: impl Into<String>) -> Response {
    (status, Json(ApiError { message: message.into(), kind })).into_response()
}

/// The answer when a session's node cannot be reached: the page keeps trying, and
/// says its lab is reconnecting.
fn away(e: &ForwardError) -> Response {
    tracing::warn!("{e}");
    let mut r = error(StatusCode::SERVICE_UNAVAILABLE, Some(ErrorKind::Reconnecting), "the server of your lab is restarting: it is back in a few seconds, with your work");
    r.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from(2));
    r
}

/// Where new sessions go: the nodes that take sessions and were heard from lately,
/// least loaded first (`sessions` as the node last said, plus what the hub placed
/// there since), then by name.
pub fn placement_order(nodes: &[NodeRow], placed: &[(String, DateTime<Utc>)], now: DateTime<Utc>) -> Vec<NodeRow> {
    let gone = chrono::Duration::from_std(GONE_AFTER).unwrap_or_default();
    let mut up: Vec<(i64, NodeRow)> = nodes
        .iter()
        .filter(|n| n.accepting && now - n.seen <= gone)
        .map(|n| {
            let since = placed.iter().filter(|(name, at)| *name == n.name && *at >= n.seen).count() as i64;
            (n.sessions + since, n.clone())
        })
        .collect();
    up.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.name.cmp(&b.1.name)));
    up.into_iter().map(|(_, n)| n).collect()
}

impl Hub {
    pub fn new(db: Db, secret: ClusterSecret) -> anyhow::Result<Arc<Hub>> {
        let lessons = berth_lessons::all().map_err(|e| anyhow::anyhow!("load the lessons: {e}"))?;
        Ok(Arc::new(Hub { db, secret, lessons: Arc::new(lessons), owners: Default::default(), placed: Default::default() }))
    }

    /// The node holding session `id`: (its name, where it is). None: no such session.
    async fn owner(&self, id: &str) -> Result<Option<(String, Authority)>, Response> {
        let db_err = |e: crate::lab::db::DbError| error(StatusCode::INTERNAL_SERVER_ERROR, None, e.to_string());
        let cached = self.owners.lock().unwrap_or_else(|p| p.into_inner()).get(id).cloned();
        let name = match cached {
            Some(n) => n,
            None => match self.db.session(id).await.map_err(db_err)? {
                Some(row) => {
                    self.owners.lock().unwrap_or_else(|p| p.into_inner()).insert(id.to_string(), row.node.clone());
                    row.node
                }
                None => return Ok(None),
            },
        };
        let nodes = self.db.nodes().await.map_err(db_err)?;
        let Some(node) = nodes.into_iter().find(|n| n.name == name) else {
            return Err(error(StatusCode::SERVICE_UNAVAILABLE, Some(ErrorKind::Reconnecting), format!("the lab node {name} has not started yet")));
        };
        let at = Authority::parse(&node.url).map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, None, format!("lab node {name}: {e}")))?;
        Ok(Some((name, at)))
    }
}

pub fn routes(hub: Arc<Hub>) -> Router {
    Router::new()
        .route("/api/lessons", get(lessons))
        .route("/api/sessions", post(create_session))
        .route("/api/sessions/{id}", any(to_session))
        .route("/api/sessions/{id}/{*rest}", any(to_session_rest))
        .route("/lab/{id}/{*rest}", any(to_session_rest))
        .route("/api/join", any(no_classroom))
        .route("/api/classes/{*rest}", any(no_classroom))
        .route("/api/teach/{*rest}", any(no_classroom))
        .with_state(hub)
}

async fn lessons(State(hub): State<HubState>) -> Json<Vec<Lesson>> {
    Json(hub.lessons.as_ref().clone())
}

/// Classes, joins and the teacher's pages need the classroom on the hub, which comes
/// in a later step: said, not left to a 404.
async fn no_classroom() -> Response {
    error(StatusCode::NOT_IMPLEMENTED, None, "classes are not served through a hub yet: run the classroom on a single Berth server (--role all) for now")
}

/// A new session: on the first node in [`placement_order`] that makes it.
async fn create_session(State(hub): State<HubState>, ConnectInfo(client): ConnectInfo<SocketAddr>, req: Request) -> Response {
    let nodes = match hub.db.nodes().await {
        Ok(n) => n,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, None, e.to_string()),
    };
    let (parts, body) = req.into_parts();
    // Kept whole so that the next node can be asked if one is away.
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return error(StatusCode::BAD_REQUEST, None, format!("read the request: {e}")),
    };
    let mut tried: Vec<String> = Vec::new();
    let mut last = None;
    loop {
        // Chosen and counted under one lock: a whole class asking at once is spread,
        // not sent to the node that was least loaded before any of them.
        let (node, placed_at) = {
            let mut placed = hub.placed.lock().unwrap_or_else(|p| p.into_inner());
            let at = Utc::now();
            // Older than any node's last word that counts: the node counts them itself.
            placed.retain(|(_, t)| at - *t < chrono::Duration::from_std(GONE_AFTER).unwrap_or_default());
            let Some(node) = placement_order(&nodes, &placed, at).into_iter().find(|n| !tried.contains(&n.name)) else { break };
            placed.push((node.name.clone(), at));
            (node, at)
        };
        tried.push(node.name.clone());
        let unplace = || hub.placed.lock().unwrap_or_else(|p| p.into_inner()).retain(|(n, at)| !(*n == node.name && *at == placed_at));
        let at = match Authority::parse(&node.url) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(node = %node.name, "{e}");
                unplace();
                continue;
            }
        };
        let req = Request::from_parts(parts.clone(), axum::body::Body::from(body.clone()));
        match forward::forward(&at, &hub.secret, Some(client), req).await {
            Ok(resp) if resp.status() == StatusCode::CREATED => {
                let (parts, body) = resp.into_parts();
                let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                if let Some(id) = serde_json::from_slice::<berth_lessons::api::SessionInfo>(&bytes).ok().map(|i| i.id) {
                    tracing::info!(session = %id, node = %node.name, "placed a lab session");
                    hub.owners.lock().unwrap_or_else(|p| p.into_inner()).insert(id, node.name.clone());
                }
                return Response::from_parts(parts, axum::body::Body::from(bytes));
            }
            // The node said no (no open playground, say): its word, as a single server's.
            Ok(resp) if resp.status() != StatusCode::SERVICE_UNAVAILABLE => {
                unplace();
                return resp;
            }
            Ok(resp) => {
                unplace();
                last = Some(resp);
            }
            Err(e) => {
                unplace();
                tracing::warn!("{e}");
            }
        }
    }
    if tried.is_empty() {
        return error(StatusCode::SERVICE_UNAVAILABLE, None, "no lab node takes new sessions now: try again in a minute (the operator may need to add nodes)");
    }
    last.unwrap_or_else(|| error(StatusCode::SERVICE_UNAVAILABLE, None, "no lab node could make a session now: try again in a minute"))
}

async fn to_session(State(hub): State<HubState>, ConnectInfo(client): ConnectInfo<SocketAddr>, Path(id): Path<String>, req: Request) -> Response {
    to_owner(hub, client, id, req).await
}

async fn to_session_rest(State(hub): State<HubState>, ConnectInfo(client): ConnectInfo<SocketAddr>, Path((id, _)): Path<(String, String)>, req: Request) -> Response {
    to_owner(hub, client, id, req).await
}

async fn to_owner(hub: HubState, client: SocketAddr, id: String, req: Request) -> Response {
    let (name, at) = match hub.owner(&id).await {
        Ok(Some(o)) => o,
        Ok(None) => return error(StatusCode::NOT_FOUND, None, format!("no such lab session: {id}")),
        Err(r) => return r,
    };
    match forward::forward(&at, &hub.secret, Some(client), req).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(session = %id, node = %name, "session's node away");
            away(&e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, sessions: i64, accepting: bool, seen: DateTime<Utc>) -> NodeRow {
        NodeRow { name: name.into(), url: format!("http://{name}:8080"), sessions, accepting, seen }
    }

    #[test]
    fn placement_goes_to_the_least_loaded_node_that_takes_sessions() {
        let now = Utc::now();
        let secs = chrono::Duration::seconds;
        let nodes = [node("a", 3, true, now - secs(1)), node("b", 1, true, now - secs(2)), node("c", 0, false, now), node("d", 0, true, now - secs(60))];
        let names = |v: Vec<NodeRow>| v.into_iter().map(|n| n.name).collect::<Vec<_>>();
        // c takes none (draining or not ready), d went silent.
        assert_eq!(names(placement_order(&nodes, &[], now)), ["b", "a"]);
        // Two placed on b since it last spoke, one before: b counts 3, ties with a, a first by name.
        let placed = [("b".to_string(), now - secs(1)), ("b".to_string(), now), ("b".to_string(), now - secs(5))];
        assert_eq!(names(placement_order(&nodes, &placed, now)), ["a", "b"]);
        assert!(placement_order(&[], &[], now).is_empty());
    }
}
