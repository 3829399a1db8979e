//! A lab node's answers to its hub (`/api/node/…`, behind the cluster secret like
//! the rest of a node's web app): the classroom's operations on the node's labs
//! ([`crate::classroom::labs::local`], the same a single server runs), an instructor's
//! view of a terminal, and a stream of "look again" signals for the dashboards.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use berth_lessons::api::SessionInfo;

use crate::classroom::dashboard::StudentSnapshot;
use crate::classroom::labs::{local, LabNow, NewLab};
use crate::classroom::roster::Member;
use crate::lab::{Lab, LabError};

type NodeState = Arc<Lab>;

pub fn routes(lab: Arc<Lab>) -> Router {
    Router::new()
        .route("/api/node/sessions", post(create))
        .route("/api/node/sessions/{id}", get(now).delete(remove))
        .route("/api/node/sessions/{id}/reopen", post(reopen))
        .route("/api/node/sessions/{id}/reset", post(reset))
        .route("/api/node/sessions/{id}/end", post(end))
        .route("/api/node/sessions/{id}/terminal", get(terminal))
        .route("/api/node/snapshots", post(snapshots))
        .route("/api/node/class-windows", post(class_windows))
        .route("/api/node/changes", get(changes))
        .with_state(lab)
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, LabError> {
    serde_json::from_slice(body).map_err(|e| LabError::new(StatusCode::BAD_REQUEST, format!("invalid request: {e}")))
}

async fn create(State(lab): State<NodeState>, body: axum::body::Bytes) -> Result<Response, LabError> {
    let info = local::create(&lab, parse::<NewLab>(&body)?).await?;
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

async fn now(State(lab): State<NodeState>, Path(id): Path<String>) -> Json<LabNow> {
    Json(local::now(&lab, &id).await)
}

async fn remove(State(lab): State<NodeState>, Path(id): Path<String>) -> Result<StatusCode, LabError> {
    lab.remove_session(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn reopen(State(lab): State<NodeState>, Path(id): Path<String>, body: axum::body::Bytes) -> Result<Json<SessionInfo>, LabError> {
    Ok(Json(local::reopen(&lab, &id, parse::<Member>(&body)?).await?))
}

async fn reset(State(lab): State<NodeState>, Path(id): Path<String>) -> Result<StatusCode, LabError> {
    lab.reset_session(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn end(State(lab): State<NodeState>, Path(id): Path<String>) -> Result<StatusCode, LabError> {
    lab.end_session(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn snapshots(State(lab): State<NodeState>, body: axum::body::Bytes) -> Result<Json<Vec<StudentSnapshot>>, LabError> {
    Ok(Json(local::snapshots(&lab, &parse::<Vec<(String, Member)>>(&body)?).await))
}

async fn class_windows(State(lab): State<NodeState>) -> Result<StatusCode, LabError> {
    lab.apply_class_windows().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Deserialize)]
struct TerminalQuery {
    control: Option<String>,
    instructor: String,
}

/// The hub's instructor at a student's terminal (the hub counts the watchers).
async fn terminal(State(lab): State<NodeState>, Path(id): Path<String>, Query(q): Query<TerminalQuery>, ws: WebSocketUpgrade) -> Result<Response, LabError> {
    let control = q.control.as_deref().is_some_and(|c| c == "1");
    crate::lab::instructor_terminal(&lab, &id, q.instructor, control, ws, ())
}

/// A line for every change the node's dashboards would look again for, and an empty
/// one every 10 seconds (so a hub notices a connection that died quietly).
async fn changes(State(lab): State<NodeState>) -> Response {
    let rx = lab.changes.subscribe();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let line: &'static [u8] = tokio::select! {
            r = rx.changed() => {
                r.ok()?;
                b"changed\n"
            }
            _ = tokio::time::sleep(Duration::from_secs(10)) => b"\n",
        };
        Some((Ok::<_, std::convert::Infallible>(bytes::Bytes::from_static(line)), rx))
    });
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], Body::from_stream(stream)).into_response()
}
