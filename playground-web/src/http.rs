//! The lab server's HTTP API (routes in `berth_lessons::api`).

use berth_lessons::api::{SelectLesson, SessionInfo, SessionStatus};
use gloo_net::http::Request;

use crate::model::Lesson;

/// Why a call failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// The session is gone (404): make a new one.
    NotFound,
    Other(String),
}

fn other(e: impl std::fmt::Display) -> Error {
    Error::Other(e.to_string())
}

async fn check(resp: gloo_net::http::Response) -> Result<gloo_net::http::Response, Error> {
    match resp.status() {
        200..=299 => Ok(resp),
        404 => Err(Error::NotFound),
        s => Err(Error::Other(format!(
            "{s} {}",
            resp.text().await.unwrap_or_default()
        ))),
    }
}

/// `GET /api/lessons`
pub async fn lessons() -> Result<Vec<Lesson>, Error> {
    let resp = Request::get("/api/lessons").send().await.map_err(other)?;
    check(resp).await?.json().await.map_err(other)
}

/// `POST /api/sessions`
pub async fn create_session() -> Result<SessionInfo, Error> {
    let resp = Request::post("/api/sessions").send().await.map_err(other)?;
    check(resp).await?.json().await.map_err(other)
}

/// `GET /api/sessions/{id}`
pub async fn session(id: &str) -> Result<SessionStatus, Error> {
    let resp = Request::get(&format!("/api/sessions/{id}"))
        .send()
        .await
        .map_err(other)?;
    check(resp).await?.json().await.map_err(other)
}

/// `POST /api/sessions/{id}/lesson`
pub async fn select_lesson(id: &str, lesson: &str) -> Result<(), Error> {
    let resp = Request::post(&format!("/api/sessions/{id}/lesson"))
        .json(&SelectLesson {
            lesson: lesson.to_string(),
        })
        .map_err(other)?
        .send()
        .await
        .map_err(other)?;
    check(resp).await.map(|_| ())
}
