//! The hub (`berth serve --role hub`): the playground's address when lab sessions run
//! on several nodes. It serves the page and the lessons itself, places each new
//! session on a node, and forwards every request of a session to the node that holds
//! it (found in the shared database, where each node writes its sessions and
//! itself).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use berth_lessons::api::{ApiError, ErrorKind};
use berth_lessons::Lesson;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;

use super::forward::{self, Authority, ForwardError};
use super::{ClusterSecret, GONE_AFTER};
use crate::changes::Changes;
use crate::classroom::dashboard::StudentSnapshot;
use crate::classroom::roster::Member;
use crate::lab::db::{Db, NodeRow};
use crate::lab::LabError;

pub struct Hub {
    pub db: Db,
    secret: ClusterSecret,
    lessons: Arc<Vec<Lesson>>,
    /// Which node holds a session (sessions do not move), as learnt.
    owners: Mutex<HashMap<String, String>>,
    /// Sessions placed on a node, by node, with when: counted in its load until its
    /// next heartbeat (which counts them itself).
    placed: Mutex<Vec<(String, DateTime<Utc>)>>,
    /// The nodes' rows as last read, and when: a dashboard of 100 students asks where
    /// each one's lab is, and the rows change every few seconds only.
    nodes: Mutex<Option<(std::time::Instant, Vec<NodeRow>)>>,
}

/// How long the hub uses the nodes' rows it read.
const NODES_FRESH: std::time::Duration = std::time::Duration::from_millis(500);

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
        Ok(Arc::new(Hub { db, secret, lessons: Arc::new(lessons), owners: Default::default(), placed: Default::default(), nodes: Default::default() }))
    }

    /// The nodes' rows, read at most every [`NODES_FRESH`].
    async fn node_rows(&self) -> Result<Vec<NodeRow>, crate::lab::db::DbError> {
        if let Some((at, rows)) = self.nodes.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            if at.elapsed() < NODES_FRESH {
                return Ok(rows.clone());
            }
        }
        let rows = self.db.nodes().await?;
        *self.nodes.lock().unwrap_or_else(|p| p.into_inner()) = Some((std::time::Instant::now(), rows.clone()));
        Ok(rows)
    }

    /// The node holding session `id`. None: no such session.
    pub async fn owner_of(&self, id: &str) -> Result<Option<NodeAt>, LabError> {
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
        let nodes = self.node_rows().await.map_err(db_err)?;
        let Some(node) = nodes.into_iter().find(|n| n.name == name) else {
            let mut e = LabError::kind(StatusCode::SERVICE_UNAVAILABLE, ErrorKind::Reconnecting, format!("the lab node {name} has not started yet"));
            e.retry_after = Some(2);
            return Err(e);
        };
        Ok(Some(NodeAt::of(&node).map_err(|e| LabError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("lab node {name}: {e}")))?))
    }

    /// Where an ended lab is made again: on its node, unless that node is draining (up,
    /// taking no new sessions): then on the one a new session would go to, so that a
    /// drained node empties as its classes end.
    pub async fn reopen_at(&self, id: &str) -> Result<Option<NodeAt>, LabError> {
        let Some(row) = self.db.session(id).await.map_err(db_err)? else { return Ok(None) };
        let nodes = self.node_rows().await.map_err(db_err)?;
        let now = Utc::now();
        let gone = chrono::Duration::from_std(GONE_AFTER).unwrap_or_default();
        if nodes.iter().any(|n| n.name == row.node && !n.accepting && now - n.seen <= gone) {
            let placed = self.placed.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if let Some(n) = placement_order(&nodes, &placed, now).into_iter().next() {
                return Ok(Some(NodeAt::of(&n).map_err(|e| LabError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("lab node {}: {e}", n.name)))?));
            }
        }
        self.owner_of(id).await
    }

    /// The session is on `node` now (it moved there).
    pub fn moved(&self, id: &str, node: &str) {
        self.owners.lock().unwrap_or_else(|p| p.into_inner()).insert(id.to_string(), node.to_string());
    }

    /// The nodes heard from lately (taking sessions or not).
    pub async fn nodes_up(&self) -> Result<Vec<NodeAt>, LabError> {
        let gone = chrono::Duration::from_std(GONE_AFTER).unwrap_or_default();
        let now = Utc::now();
        Ok(self.node_rows().await.map_err(db_err)?.iter().filter(|n| now - n.seen <= gone).filter_map(|n| NodeAt::of(n).ok()).collect())
    }

    /// Sends `req` to `node` (with the secret).
    pub async fn forward_to(&self, node: &NodeAt, req: Request) -> Result<Response, ForwardError> {
        forward::forward(&node.at, &self.secret, None, req).await
    }

    /// [`Hub::forward_to`], keeping `hold` while a WebSocket passed through lasts.
    pub async fn forward_held(&self, node: &NodeAt, req: Request, hold: Box<dyn Send>) -> Result<Response, ForwardError> {
        forward::forward_holding(&node.at, &self.secret, None, req, hold).await
    }

    /// A student's row from the database alone, for when their node is away: their
    /// lesson and steps done, shown as reconnecting.
    pub async fn stored_snapshot(&self, session: &str, member: &Member) -> Result<StudentSnapshot, LabError> {
        let row = self.db.session(session).await.map_err(db_err)?;
        let times = self.db.progress_times(session).await.map_err(db_err)?;
        let mut done: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (lesson, step, _) in &times {
            done.entry(lesson.clone()).or_default().push(step.clone());
        }
        Ok(StudentSnapshot {
            name: member.name.clone(),
            joined: member.joined,
            lesson: row.and_then(|r| r.lesson),
            done,
            step_since: times.iter().map(|t| t.2).max().unwrap_or(member.joined),
            last_activity: None,
            attempts: 0,
            last_action: None,
            containers_running: 0,
            online: false,
            reconnecting: true,
        })
    }

    /// POSTs `body` (JSON) to `path` on the first node in [`placement_order`] that takes
    /// it, and gives that node's answer.
    pub async fn place(&self, path: &str, body: Bytes, client: Option<SocketAddr>) -> Response {
        let nodes = match self.node_rows().await {
            Ok(n) => n,
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, None, e.to_string()),
        };
        let mut tried: Vec<String> = Vec::new();
        let mut last = None;
        loop {
            // Chosen and counted under one lock: a whole class asking at once is spread,
            // not sent to the node that was least loaded before any of them.
            let (node, placed_at) = {
                let mut placed = self.placed.lock().unwrap_or_else(|p| p.into_inner());
                let at = Utc::now();
                // Older than any node's last word that counts: the node counts them itself.
                placed.retain(|(_, t)| at - *t < chrono::Duration::from_std(GONE_AFTER).unwrap_or_default());
                let Some(node) = placement_order(&nodes, &placed, at).into_iter().find(|n| !tried.contains(&n.name)) else { break };
                placed.push((node.name.clone(), at));
                (node, at)
            };
            tried.push(node.name.clone());
            let unplace = || self.placed.lock().unwrap_or_else(|p| p.into_inner()).retain(|(n, at)| !(*n == node.name && *at == placed_at));
            let at = match NodeAt::of(&node) {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(node = %node.name, "{e}");
                    unplace();
                    continue;
                }
            };
            let req = axum::http::Request::builder().method(Method::POST).uri(path).header(header::CONTENT_TYPE, "application/json").body(axum::body::Body::from(body.clone()));
            let Ok(req) = req else { return error(StatusCode::BAD_REQUEST, None, format!("bad path {path}")) };
            match forward::forward(&at.at, &self.secret, client, req).await {
                Ok(resp) if resp.status() == StatusCode::CREATED => {
                    let (parts, body) = resp.into_parts();
                    let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                    if let Some(id) = serde_json::from_slice::<berth_lessons::api::SessionInfo>(&bytes).ok().map(|i| i.id) {
                        tracing::info!(session = %id, node = %node.name, "placed a lab session");
                        self.owners.lock().unwrap_or_else(|p| p.into_inner()).insert(id, node.name.clone());
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

    /// Listens to every node's changes (`/api/node/changes`) and bumps `changes` on
    /// each, and when a node's stream ends (its students then show as reconnecting).
    pub fn follow_nodes(self: Arc<Self>, changes: Changes) {
        let following: Arc<Mutex<std::collections::HashSet<String>>> = Default::default();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(super::HEARTBEAT);
            loop {
                tick.tick().await;
                let Ok(nodes) = self.nodes_up().await else { continue };
                for node in nodes {
                    if !following.lock().unwrap_or_else(|p| p.into_inner()).insert(node.name.clone()) {
                        continue;
                    }
                    let (hub, changes, following) = (self.clone(), changes.clone(), following.clone());
                    tokio::spawn(async move {
                        let req = axum::http::Request::builder().uri("/api/node/changes").body(axum::body::Body::empty()).expect("a constant request");
                        if let Ok(resp) = hub.forward_to(&node, req).await {
                            if resp.status().is_success() {
                                changes.notify();
                                let mut body = resp.into_body().into_data_stream();
                                while let Some(Ok(_)) = futures_util::StreamExt::next(&mut body).await {
                                    changes.notify();
                                }
                            }
                        }
                        following.lock().unwrap_or_else(|p| p.into_inner()).remove(&node.name);
                        changes.notify();
                    });
                }
            }
        });
    }
}

/// A node by name, and where to reach it.
#[derive(Debug, Clone)]
pub struct NodeAt {
    pub name: String,
    pub at: Authority,
}

impl NodeAt {
    fn of(n: &NodeRow) -> anyhow::Result<NodeAt> {
        Ok(NodeAt { name: n.name.clone(), at: Authority::parse(&n.url)? })
    }
}

fn db_err(e: crate::lab::db::DbError) -> LabError {
    LabError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

pub fn routes(hub: Arc<Hub>) -> Router {
    Router::new()
        .route("/api/lessons", get(lessons))
        .route("/api/sessions", post(create_session))
        .route("/api/sessions/{id}", any(to_session))
        .route("/api/sessions/{id}/{*rest}", any(to_session_rest))
        .route("/lab/{id}/{*rest}", any(to_session_rest))
        .with_state(hub)
}

async fn lessons(State(hub): State<HubState>) -> Json<Vec<Lesson>> {
    Json(hub.lessons.as_ref().clone())
}

/// A new session: on the first node in [`placement_order`] that makes it.
async fn create_session(State(hub): State<HubState>, ConnectInfo(client): ConnectInfo<SocketAddr>, body: Bytes) -> Response {
    hub.place("/api/sessions", body, Some(client)).await
}

async fn to_session(State(hub): State<HubState>, ConnectInfo(client): ConnectInfo<SocketAddr>, Path(id): Path<String>, req: Request) -> Response {
    to_owner(hub, client, id, req).await
}

async fn to_session_rest(State(hub): State<HubState>, ConnectInfo(client): ConnectInfo<SocketAddr>, Path((id, _)): Path<(String, String)>, req: Request) -> Response {
    to_owner(hub, client, id, req).await
}

/// Whether a path stays where it says: no `.` or `..` segment (raw, as a client may
/// send it), which could reach past the session's routes on the node.
fn plain_path(path: &str) -> bool {
    !path.split('/').any(|seg| seg == "." || seg == ".." || seg.eq_ignore_ascii_case("%2e") || seg.eq_ignore_ascii_case("%2e%2e") || seg.eq_ignore_ascii_case(".%2e") || seg.eq_ignore_ascii_case("%2e."))
}

async fn to_owner(hub: HubState, client: SocketAddr, id: String, req: Request) -> Response {
    if !plain_path(req.uri().path()) {
        return error(StatusCode::BAD_REQUEST, None, "a path with . or .. segments");
    }
    let node = match hub.owner_of(&id).await {
        Ok(Some(n)) => n,
        Ok(None) => return error(StatusCode::NOT_FOUND, None, format!("no such lab session: {id}")),
        Err(e) => return e.into_response(),
    };
    match forward::forward(&node.at, &hub.secret, Some(client), req).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(session = %id, node = %node.name, "session's node away");
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
    fn forwarded_paths_stay_below_the_session() {
        assert!(plain_path("/api/sessions/abc/terminal"));
        assert!(plain_path("/lab/abc/ports/8080/a.b/c..d/"));
        for bad in ["/api/sessions/abc/../../api/node/sessions", "/lab/abc/ports/80/./x", "/lab/abc/%2e%2e/x", "/lab/abc/.%2E/x"] {
            assert!(!plain_path(bad), "{bad}");
        }
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
