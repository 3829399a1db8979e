//! The lab server's HTTP API (routes in `berth_lessons::api`).
//!
//! Requests go to the page's own origin, so fetch's default credentials
//! ("same-origin") send the instructor's `berth_teach` cookie without asking.

use berth_lessons::api::{
    ApiError, ClassInfo, Dashboard, ErrorKind, Instructor, JoinRequest, Joined, Login,
    NewClassRequest, SelectLesson, SessionInfo, SessionStatus,
};
use gloo_net::http::{Request, RequestBuilder, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::model::Lesson;
use crate::route::encode_component;

/// Why a call failed: the answer's status and, when its body was one, the server's
/// `ApiError` (whose `kind` the pages turn into their own text).
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    /// The HTTP status; 0 when no answer came at all.
    pub status: u16,
    pub api: Option<ApiError>,
    /// `Retry-After`, in seconds (rate limits).
    pub retry_after: Option<u32>,
    /// What went wrong when there is no `ApiError`: the network error, or the body.
    pub detail: String,
}

impl Error {
    fn local(e: impl std::fmt::Display) -> Error {
        Error {
            status: 0,
            api: None,
            retry_after: None,
            detail: e.to_string(),
        }
    }

    /// 404: the session (or class) is gone.
    pub fn is_not_found(&self) -> bool {
        self.status == 404
    }

    /// 401: no instructor is logged in (or the login expired).
    pub fn is_unauthorized(&self) -> bool {
        self.status == 401
    }

    pub fn kind(&self) -> Option<ErrorKind> {
        self.api.as_ref().and_then(|a| a.kind)
    }

    /// The server's own (English) words, for when the page has no text of its own.
    pub fn message(&self) -> String {
        match &self.api {
            Some(a) if !a.message.is_empty() => a.message.clone(),
            _ if !self.detail.is_empty() => self.detail.clone(),
            _ => format!("HTTP {}", self.status),
        }
    }
}

/// `ErrorKind` as it is on the wire (`name_taken`), for `data-kind` attributes.
pub fn kind_code(kind: Option<ErrorKind>) -> String {
    kind.and_then(|k| serde_json::to_value(k).ok())
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "other".to_string())
}

async fn check(resp: Response) -> Result<Response, Error> {
    let status = resp.status();
    if (200..=299).contains(&status) {
        return Ok(resp);
    }
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.trim().parse().ok());
    let body = resp.text().await.unwrap_or_default();
    let api = serde_json::from_str::<ApiError>(&body).ok();
    Err(Error {
        status,
        api,
        retry_after,
        detail: body.trim().chars().take(300).collect(),
    })
}

async fn send(req: RequestBuilder) -> Result<Response, Error> {
    check(req.send().await.map_err(Error::local)?).await
}

async fn json<T: DeserializeOwned>(resp: Response) -> Result<T, Error> {
    let status = resp.status();
    resp.json().await.map_err(|e| Error {
        status,
        ..Error::local(e)
    })
}

async fn get<T: DeserializeOwned>(url: &str) -> Result<T, Error> {
    json(send(Request::get(url)).await?).await
}

async fn post<B: Serialize>(url: &str, body: &B) -> Result<Response, Error> {
    let req = Request::post(url).json(body).map_err(Error::local)?;
    check(req.send().await.map_err(Error::local)?).await
}

/// `GET /api/lessons`
pub async fn lessons() -> Result<Vec<Lesson>, Error> {
    get("/api/lessons").await
}

/// `GET /api/lessons`, in lesson order.
pub async fn lessons_sorted() -> Result<Vec<Lesson>, Error> {
    let mut list = lessons().await?;
    list.sort_by_key(|l| l.order);
    Ok(list)
}

/// `POST /api/sessions`
pub async fn create_session() -> Result<SessionInfo, Error> {
    json(send(Request::post("/api/sessions")).await?).await
}

/// `GET /api/sessions/{id}`
pub async fn session(id: &str) -> Result<SessionStatus, Error> {
    get(&format!("/api/sessions/{}", encode_component(id))).await
}

/// `POST /api/sessions/{id}/lesson`
pub async fn select_lesson(id: &str, lesson: &str) -> Result<(), Error> {
    let body = SelectLesson {
        lesson: lesson.to_string(),
    };
    post(
        &format!("/api/sessions/{}/lesson", encode_component(id)),
        &body,
    )
    .await
    .map(|_| ())
}

/// `GET /api/classes/{code}`
pub async fn class_info(code: &str) -> Result<ClassInfo, Error> {
    get(&format!("/api/classes/{}", encode_component(code))).await
}

/// `POST /api/join`
pub async fn join(req: &JoinRequest) -> Result<Joined, Error> {
    json(post("/api/join", req).await?).await
}

/// `POST /api/teach/login` (the answer sets the cookie).
pub async fn teach_login(req: &Login) -> Result<(), Error> {
    post("/api/teach/login", req).await.map(|_| ())
}

/// `POST /api/teach/logout`
pub async fn teach_logout() -> Result<(), Error> {
    send(Request::post("/api/teach/logout")).await.map(|_| ())
}

/// `GET /api/teach/me`
pub async fn teach_me() -> Result<Instructor, Error> {
    get("/api/teach/me").await
}

/// `GET /api/teach/classes`
pub async fn teach_classes() -> Result<Vec<ClassInfo>, Error> {
    get("/api/teach/classes").await
}

/// `POST /api/teach/classes`
pub async fn create_class(req: &NewClassRequest) -> Result<ClassInfo, Error> {
    json(post("/api/teach/classes", req).await?).await
}

/// `GET /api/teach/classes/{id}`
pub async fn dashboard(id: &str) -> Result<Dashboard, Error> {
    get(&dashboard_path(id)).await
}

pub fn dashboard_path(id: &str) -> String {
    format!("/api/teach/classes/{}", encode_component(id))
}
