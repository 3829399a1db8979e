//! The lab server's HTTP API (routes in `berth_lessons::api`).
//!
//! Requests go to the page's own origin, so fetch's default credentials
//! ("same-origin") send the instructor's `berth_teach` cookie without asking.

use berth_lessons::api::{
    ApiError, ClassInfo, ClassWindow, Dashboard, ErrorKind, Instructor, JoinRequest, Joined, Login,
    NewClassRequest, RaiseHand, SelectLesson, SendMessage, SessionInfo, SessionStatus,
};
use gloo_net::http::{Request, RequestBuilder, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use web_sys::RequestCache;

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

/// Runs an instructor's request in the background; a failure goes to `on_error` (the
/// dashboard shows it), a success shows by itself in the next live picture.
pub fn run(
    request: impl std::future::Future<Output = Result<(), Error>> + 'static,
    on_error: yew::Callback<Error>,
) {
    wasm_bindgen_futures::spawn_local(async move {
        if let Err(e) = request.await {
            on_error.emit(e);
        }
    });
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

/// A GET of live data: never from the browser's cache. (Chromium keeps a 410 without
/// `Cache-Control` fresh for ever: an ended lab's status would stay "gone" after the
/// student comes back to it.)
async fn get<T: DeserializeOwned>(url: &str) -> Result<T, Error> {
    json(send(Request::get(url).cache(RequestCache::NoStore)).await?).await
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

/// `/api/teach/classes/{id}/students/{name}`: the routes on one student's lab.
pub fn student_path(class: &str, name: &str) -> String {
    format!(
        "{}/students/{}",
        dashboard_path(class),
        encode_component(name)
    )
}

/// `GET .../progress.csv` (a download: the page only links to it).
pub fn progress_csv_path(class: &str) -> String {
    format!("{}/progress.csv", dashboard_path(class))
}

/// `GET .../students/{name}/transcript` (a download).
pub fn transcript_path(class: &str, name: &str) -> String {
    format!("{}/transcript", student_path(class, name))
}

/// The WebSocket path of a student's terminal for the instructor: read-only, or
/// writable with `control`.
pub fn student_terminal_path(class: &str, name: &str, control: bool) -> String {
    let query = if control { "?control=1" } else { "" };
    format!("{}/terminal{query}", student_path(class, name))
}

/// `POST /api/sessions/{id}/hand`
pub async fn raise_hand(session: &str, note: &str) -> Result<(), Error> {
    let body = RaiseHand {
        note: note.to_string(),
    };
    post(
        &format!("/api/sessions/{}/hand", encode_component(session)),
        &body,
    )
    .await
    .map(|_| ())
}

/// `DELETE /api/sessions/{id}/hand`
pub async fn lower_hand(session: &str) -> Result<(), Error> {
    let url = format!("/api/sessions/{}/hand", encode_component(session));
    send(Request::delete(&url)).await.map(|_| ())
}

/// `POST /api/teach/classes/{id}/messages`: to one student (`to`), or the class.
pub async fn send_message(class: &str, to: Option<&str>, text: &str) -> Result<(), Error> {
    let body = SendMessage {
        to: to.map(str::to_string),
        text: text.to_string(),
    };
    post(&format!("{}/messages", dashboard_path(class)), &body)
        .await
        .map(|_| ())
}

/// `DELETE .../students/{name}/hand`: answers a raised hand.
pub async fn answer_hand(class: &str, name: &str) -> Result<(), Error> {
    let url = format!("{}/hand", student_path(class, name));
    send(Request::delete(&url)).await.map(|_| ())
}

/// `POST .../students/{name}/reset`
pub async fn reset_lab(class: &str, name: &str) -> Result<(), Error> {
    let url = format!("{}/reset", student_path(class, name));
    send(Request::post(&url)).await.map(|_| ())
}

/// `POST .../students/{name}/end`
pub async fn end_lab(class: &str, name: &str) -> Result<(), Error> {
    let url = format!("{}/end", student_path(class, name));
    send(Request::post(&url)).await.map(|_| ())
}

/// `PUT /api/teach/classes/{id}/window`
pub async fn set_window(class: &str, window: &ClassWindow) -> Result<ClassInfo, Error> {
    let url = format!("{}/window", dashboard_path(class));
    let req = Request::put(&url).json(window).map_err(Error::local)?;
    json(check(req.send().await.map_err(Error::local)?).await?).await
}
