//! Where a class's labs are, as the classroom sees them: on this server ([`Labs::Local`],
//! one machine) or on lab nodes behind this hub ([`Labs::Remote`], which asks each
//! session's node over HTTP; the node answers with the same local operations, in
//! `cluster::node`). The classroom's logic is written once, against this.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequest, Request};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use berth_lessons::api::{ApiError, ClassLimits, ErrorKind, SessionInfo};
use serde::{Deserialize, Serialize};

use super::dashboard::StudentSnapshot;
use super::roster::Member;
use crate::cluster::forward::ForwardError;
use crate::cluster::hub::Hub;
use crate::lab::{Lab, LabError};

#[derive(Clone)]
pub enum Labs {
    Local(Arc<Lab>),
    Remote(Arc<Hub>),
}

/// A session's lab now.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LabNow {
    Open { info: SessionInfo },
    /// An instructor ended it; coming back makes a new one with the progress.
    Ended,
    /// No lab (it failed to reopen after a restart).
    Gone,
}

/// A class member's new lab.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewLab {
    /// The class's limits over the server's defaults.
    pub limits: ClassLimits,
    pub member: Member,
    /// The lesson it starts on (the class's first).
    pub lesson: Option<String>,
}

fn away(e: ForwardError) -> LabError {
    tracing::warn!("{e}");
    let mut err = LabError::kind(StatusCode::SERVICE_UNAVAILABLE, ErrorKind::Reconnecting, "the server of this lab is restarting: try again in a few seconds");
    err.retry_after = Some(2);
    err
}

/// The local operations, which a lab node also runs for its hub.
pub mod local {
    use super::*;

    pub async fn now(lab: &Lab, session: &str) -> LabNow {
        match lab.get_session(session) {
            Some(s) => {
                s.touch();
                LabNow::Open { info: lab.info(&s) }
            }
            None if lab.is_ended(session) => LabNow::Ended,
            None => LabNow::Gone,
        }
    }

    pub async fn create(lab: &Arc<Lab>, new: NewLab) -> Result<SessionInfo, LabError> {
        let s = lab.create_session_with(&lab.opts.with_class(&new.limits)).await?;
        lab.add_member(&s.id, new.member);
        if let Some(first) = &new.lesson {
            lab.select_lesson(&s, first).await?;
        }
        Ok(lab.info(&s))
    }

    pub async fn reopen(lab: &Lab, session: &str, member: Member) -> Result<SessionInfo, LabError> {
        lab.add_member(session, member);
        let s = lab.reopen_session(session).await?;
        Ok(lab.info(&s))
    }

    pub async fn snapshots(lab: &Lab, students: &[(String, Member)]) -> Vec<StudentSnapshot> {
        students.iter().map(|(s, m)| lab.snapshot(s, m)).collect()
    }
}

impl Labs {
    /// Why no lab can be made here (a single server that cannot run Linux containers);
    /// a hub's nodes say so themselves.
    pub fn unable(&self) -> Option<String> {
        match self {
            Labs::Local(lab) => lab.engine.linux_missing().map(|why| format!("lab sessions need Linux containers, and {} ({why})", berth_engine::runtime::NO_LINUX)),
            Labs::Remote(_) => None,
        }
    }

    /// The session's lab now (touched: the student is back).
    pub async fn now(&self, session: &str) -> Result<LabNow, LabError> {
        match self {
            Labs::Local(lab) => Ok(local::now(lab, session).await),
            Labs::Remote(hub) => match hub.owner_of(session).await? {
                None => Ok(LabNow::Gone),
                Some(node) => call(hub, &node, Method::GET, &format!("/api/node/sessions/{session}"), None::<&()>).await,
            },
        }
    }

    /// A new lab for a class member (with the class's limits, on its first lesson).
    pub async fn create(&self, new: NewLab) -> Result<SessionInfo, LabError> {
        match self {
            Labs::Local(lab) => local::create(lab, new).await,
            Labs::Remote(hub) => {
                let body = serde_json::to_vec(&new).map_err(|e| LabError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
                let resp = hub.place("/api/node/sessions", body.into(), None).await;
                answer(resp).await
            }
        }
    }

    /// A new lab for an ended one, on the node that held it, with its progress.
    pub async fn reopen(&self, session: &str, member: Member) -> Result<SessionInfo, LabError> {
        match self {
            Labs::Local(lab) => local::reopen(lab, session, member).await,
            Labs::Remote(hub) => {
                let node = hub.reopen_at(session).await?.ok_or_else(|| LabError::kind(StatusCode::NOT_FOUND, ErrorKind::NotFound, format!("no such lab session: {session}")))?;
                let info = call(hub, &node, Method::POST, &format!("/api/node/sessions/{session}/reopen"), Some(&member)).await?;
                hub.moved(session, &node.name);
                Ok(info)
            }
        }
    }

    /// Removes a lab and its record (a join that failed after the lab was made).
    pub async fn remove(&self, session: &str) -> Result<(), LabError> {
        match self {
            Labs::Local(lab) => Ok(lab.remove_session(session).await?),
            Labs::Remote(hub) => on_owner::<(), Empty>(hub, session, Method::DELETE, "", None).await.map(drop),
        }
    }

    /// Empties a student's lab and makes it afresh, keeping the progress.
    pub async fn reset(&self, session: &str) -> Result<(), LabError> {
        match self {
            Labs::Local(lab) => Ok(lab.reset_session(session).await?),
            Labs::Remote(hub) => on_owner::<(), Empty>(hub, session, Method::POST, "reset", None).await.map(drop),
        }
    }

    /// Removes a student's lab but keeps the record and progress.
    pub async fn end(&self, session: &str) -> Result<(), LabError> {
        match self {
            Labs::Local(lab) => Ok(lab.end_session(session).await?),
            Labs::Remote(hub) => on_owner::<(), Empty>(hub, session, Method::POST, "end", None).await.map(drop),
        }
    }

    /// Freezes or thaws labs for their classes' windows now (nodes also check every
    /// two seconds on their own).
    pub async fn apply_class_windows(&self) -> Result<(), LabError> {
        match self {
            Labs::Local(lab) => Ok(lab.apply_class_windows().await?),
            Labs::Remote(hub) => {
                for node in hub.nodes_up().await? {
                    if let Err(e) = call::<(), Empty>(hub, &node, Method::POST, "/api/node/class-windows", None).await {
                        tracing::warn!(node = %node.name, "class windows: {}", e.message);
                    }
                }
                Ok(())
            }
        }
    }

    /// What the dashboard shows of each student: from each node, by the node's
    /// students; a node that is away gives what the database holds, marked reconnecting.
    pub async fn snapshots(&self, students: &[(String, Member)]) -> Result<Vec<StudentSnapshot>, LabError> {
        match self {
            Labs::Local(lab) => Ok(local::snapshots(lab, students).await),
            Labs::Remote(hub) => {
                let mut by_node: HashMap<String, (crate::cluster::hub::NodeAt, Vec<(String, Member)>)> = HashMap::new();
                let mut nowhere = Vec::new();
                for (s, m) in students {
                    match hub.owner_of(s).await {
                        Ok(Some(node)) => by_node.entry(node.name.clone()).or_insert_with(|| (node, Vec::new())).1.push((s.clone(), m.clone())),
                        _ => nowhere.push((s.clone(), m.clone())),
                    }
                }
                let mut got: HashMap<String, StudentSnapshot> = HashMap::new();
                for (_, (node, list)) in by_node {
                    match call::<_, Vec<StudentSnapshot>>(hub, &node, Method::POST, "/api/node/snapshots", Some(&list)).await {
                        Ok(snaps) => got.extend(list.iter().map(|(s, _)| s.clone()).zip(snaps)),
                        Err(_) => nowhere.extend(list),
                    }
                }
                for (s, m) in nowhere {
                    got.insert(s.clone(), hub.stored_snapshot(&s, &m).await?);
                }
                Ok(students.iter().filter_map(|(s, _)| got.remove(s)).collect())
            }
        }
    }

    /// An instructor at a student's terminal (see `lab::instructor_terminal`); `hold`
    /// lives as long as the connection.
    pub async fn terminal(&self, session: &str, who: String, control: bool, req: Request, hold: impl Send + 'static) -> Result<Response, LabError> {
        match self {
            Labs::Local(lab) => {
                let ws = WebSocketUpgrade::from_request(req, &()).await.map_err(|e| LabError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
                crate::lab::instructor_terminal(lab, session, who, control, ws, hold)
            }
            Labs::Remote(hub) => {
                let node = hub.owner_of(session).await?.ok_or_else(|| LabError::kind(StatusCode::CONFLICT, ErrorKind::LabEnded, "the student's lab is gone"))?;
                let (mut parts, body) = req.into_parts();
                let query = serde_urlencoded_pair(&[("control", if control { "1" } else { "0" }), ("instructor", &who)]);
                parts.uri = format!("/api/node/sessions/{session}/terminal?{query}").parse().map_err(|e: axum::http::uri::InvalidUri| LabError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
                hub.forward_held(&node, Request::from_parts(parts, body), Box::new(hold)).await.map_err(away)
            }
        }
    }
}

/// `a=b&c=d`, percent-encoded.
fn serde_urlencoded_pair(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let enc: String = v.bytes().map(|b| if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect();
            format!("{k}={enc}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// An answer with no body of interest.
#[derive(Deserialize)]
struct Empty {}

/// `POST|DELETE /api/node/sessions/{session}/{what}` on the session's node.
async fn on_owner<B: Serialize, T: serde::de::DeserializeOwned>(hub: &Hub, session: &str, method: Method, what: &str, body: Option<&B>) -> Result<T, LabError> {
    let node = hub.owner_of(session).await?.ok_or_else(|| LabError::kind(StatusCode::NOT_FOUND, ErrorKind::NotFound, format!("no such lab session: {session}")))?;
    let path = if what.is_empty() { format!("/api/node/sessions/{session}") } else { format!("/api/node/sessions/{session}/{what}") };
    call(hub, &node, method, &path, body).await
}

/// One JSON request to a node; its error answers become ours.
async fn call<B: Serialize, T: serde::de::DeserializeOwned>(hub: &Hub, node: &crate::cluster::hub::NodeAt, method: Method, path: &str, body: Option<&B>) -> Result<T, LabError> {
    let bytes = match body {
        Some(b) => serde_json::to_vec(b).map_err(|e| LabError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?,
        None => Vec::new(),
    };
    let req = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header(axum::http::header::CONTENT_TYPE, "application/json")
        .body(axum::body::Body::from(bytes))
        .map_err(|e| LabError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let resp = hub.forward_to(node, req).await.map_err(away)?;
    answer(resp).await
}

/// A node's answer as ours: its JSON on success (an empty body reads as `{}`), its
/// error (status, message, kind) otherwise.
async fn answer<T: serde::de::DeserializeOwned>(resp: Response) -> Result<T, LabError> {
    use http_body_util::BodyExt;
    let status = resp.status();
    let retry_after = resp.headers().get(axum::http::header::RETRY_AFTER).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let bytes = resp.into_body().collect().await.map(|b| b.to_bytes()).map_err(|e| LabError::new(StatusCode::BAD_GATEWAY, format!("read the lab node's answer: {e}")))?;
    if !status.is_success() {
        let e: ApiError = serde_json::from_slice(&bytes).unwrap_or(ApiError { message: String::from_utf8_lossy(&bytes).into_owned(), kind: None });
        return Err(LabError { status, message: e.message, kind: e.kind, retry_after });
    }
    let bytes = if bytes.is_empty() { bytes::Bytes::from_static(b"{}") } else { bytes };
    serde_json::from_slice(&bytes).map_err(|e| LabError::new(StatusCode::BAD_GATEWAY, format!("the lab node's answer: {e}")))
}
