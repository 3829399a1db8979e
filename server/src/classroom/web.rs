//! The classroom's HTTP routes (under the web listener, next to the lab's): students
//! join a class; instructors log in, make classes and watch the dashboard. Routes and
//! types: `berth_lessons::api` ("the classroom").

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use berth_lessons::api::{AuditRow, ClassInfo, ClassLimits, ClassWindow, Dashboard, ErrorKind, HandRow, Instructor, JoinRequest, Joined, Login, NewClassRequest, SendMessage, Watching};
use chrono::Utc;
use futures_util::Stream;
use serde::de::DeserializeOwned;

use super::dashboard::{self, ClassActivity, StuckRule};
use super::members::{self, Admission};
use super::{class_info, teach, ClassroomError, NewClass};
use super::labs::{LabNow, NewLab};
use super::room::Classroom;
use crate::lab::{LabError, Member};

type Room = Arc<Classroom>;

pub fn routes(room: Arc<Classroom>) -> Router {
    Router::new()
        .route("/api/classes/{code}", get(class_by_code))
        .route("/api/join", post(join))
        .route("/api/teach/login", post(login))
        .route("/api/teach/logout", post(logout))
        .route("/api/teach/me", get(me))
        .route("/api/teach/classes", get(list_classes).post(create_class))
        .route("/api/teach/classes/{id}", get(dashboard))
        .route("/api/teach/classes/{id}/window", put(set_window))
        .route("/api/teach/classes/{id}/limits", get(get_limits).put(set_limits))
        .route("/api/teach/classes/{id}/live", get(live))
        .route("/api/teach/classes/{id}/qr.svg", get(qr))
        .route("/api/teach/classes/{id}/messages", post(send_message))
        .route("/api/teach/classes/{id}/progress.csv", get(progress_csv))
        .route("/api/teach/classes/{id}/students/{name}/hand", delete(answer_hand))
        .route("/api/teach/classes/{id}/students/{name}/reset", post(reset))
        .route("/api/teach/classes/{id}/students/{name}/end", post(end))
        .route("/api/teach/classes/{id}/students/{name}/terminal", get(student_terminal))
        .route("/api/teach/classes/{id}/students/{name}/transcript", get(transcript))
        .with_state(room)
}

fn addr_key(addr: SocketAddr) -> String {
    format!("addr:{}", addr.ip())
}

/// 429 while `key` has used up its failures.
fn not_blocked(room: &Classroom, key: &str) -> Result<(), LabError> {
    match room.failures.blocked(key, Instant::now()) {
        None => Ok(()),
        Some(wait) => {
            let secs = wait.as_secs().max(1);
            let mut e = LabError::kind(StatusCode::TOO_MANY_REQUESTS, ErrorKind::RateLimited, format!("too many failed tries: wait {secs} seconds"));
            e.retry_after = Some(secs);
            Err(e)
        }
    }
}

/// The answer for a classroom error, counting a guess against `keys`.
fn refuse(room: &Classroom, keys: &[&str], e: ClassroomError) -> LabError {
    if e.is_guess() {
        for k in keys {
            room.failures.failed(k, Instant::now());
        }
    }
    let status = match &e {
        ClassroomError::UnknownCode => StatusCode::NOT_FOUND,
        ClassroomError::NotOpen { .. } | ClassroomError::Closed { .. } | ClassroomError::WrongPin | ClassroomError::BadToken => StatusCode::FORBIDDEN,
        ClassroomError::NameTaken(_) => StatusCode::CONFLICT,
        ClassroomError::Locked { .. } => StatusCode::TOO_MANY_REQUESTS,
        e if e.is_user_error() => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    LabError { status, message: e.to_string(), kind: e.kind(), retry_after: None }
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, LabError> {
    serde_json::from_slice(body).map_err(|e| LabError::new(StatusCode::BAD_REQUEST, format!("invalid request: {e}")))
}

fn db_err(e: impl Into<anyhow::Error>) -> LabError {
    LabError::from(e.into())
}

async fn class_by_code(State(room): State<Room>, ConnectInfo(addr): ConnectInfo<SocketAddr>, Path(code): Path<String>) -> Result<Json<ClassInfo>, LabError> {
    let key = addr_key(addr);
    not_blocked(&room, &key)?;
    let class = members::find_class(&room.db, &code).await.map_err(|e| refuse(&room, &[&key], e))?;
    Ok(Json(class_info(&class, Utc::now(), false)))
}

async fn join(State(room): State<Room>, ConnectInfo(addr): ConnectInfo<SocketAddr>, body: axum::body::Bytes) -> Result<Response, LabError> {
    let key = addr_key(addr);
    not_blocked(&room, &key)?;
    let req: JoinRequest = parse(&body)?;
    let class = members::find_class(&room.db, &req.code).await.map_err(|e| refuse(&room, &[&key], e))?;
    let now = Utc::now();
    let admission = members::admit(&room.db, &class, &req.name, req.pin.as_deref(), req.token.as_deref(), now).await.map_err(|e| refuse(&room, &[&key], e))?;
    let joined = match admission {
        Admission::Returning(m) => {
            let member = Member { class: class.id.clone(), name: m.name.clone(), joined: m.joined };
            let info = match room.labs.now(&m.session).await? {
                LabNow::Open { info } => info,
                // An instructor ended the lab: a new one, with the progress.
                LabNow::Ended => {
                    let info = room.labs.reopen(&m.session, member).await?;
                    room.db.set_member_ended(&class.id, &m.name_key, None).await.map_err(db_err)?;
                    info
                }
                // The lab is gone otherwise (it failed to reopen): a fresh one.
                LabNow::Gone => {
                    let info = room.labs.create(NewLab { limits: class.limits.clone(), member, lesson: class.lessons.first().cloned() }).await?;
                    room.db.set_member_session(&class.id, &m.name_key, &info.id).await.map_err(db_err)?;
                    info
                }
            };
            room.notify();
            (StatusCode::OK, Joined { session: info, class: class_info(&class, now, false), name: m.name, pin: None, rejoin_path: None })
        }
        Admission::New { name } => {
            if let Some(why) = room.labs.unable() {
                return Err(LabError::new(StatusCode::SERVICE_UNAVAILABLE, why));
            }
            let member = Member { class: class.id.clone(), name: name.clone(), joined: now };
            let info = room.labs.create(NewLab { limits: class.limits.clone(), member: member.clone(), lesson: class.lessons.first().cloned() }).await?;
            let enrolled = match members::enroll(&room.db, &class, &name, &info.id, now).await {
                Ok(e) => e,
                Err(e) => {
                    let _ = room.labs.remove(&info.id).await;
                    return Err(refuse(&room, &[&key], e));
                }
            };
            room.notify();
            tracing::info!(class = %class.id, session = %info.id, "a student joined");
            let class_info = class_info(&class, now, false);
            let rejoin_path = Some(format!("{}#{}", class_info.join_path, enrolled.token));
            (StatusCode::CREATED, Joined { session: info, class: class_info, name, pin: Some(enrolled.pin), rejoin_path })
        }
    };
    // A student coming back to a closed class finds their lab frozen at once.
    room.labs.apply_class_windows().await?;
    Ok((joined.0, Json(joined.1)).into_response())
}

async fn login(State(room): State<Room>, ConnectInfo(addr): ConnectInfo<SocketAddr>, headers: HeaderMap, body: axum::body::Bytes) -> Result<Response, LabError> {
    let key = addr_key(addr);
    not_blocked(&room, &key)?;
    if !same_origin(&headers) {
        return Err(LabError::kind(StatusCode::FORBIDDEN, ErrorKind::WrongPassword, "the teacher's login answers its own origin only"));
    }
    let req: Login = parse(&body)?;
    // Also per name: guesses at one instructor's password from many addresses.
    let name_key = format!("login:{}", req.name.trim().to_lowercase());
    not_blocked(&room, &name_key)?;
    match teach::login(&room.db, &req.name, &req.password).await.map_err(|e| refuse(&room, &[], e))? {
        Some(token) => {
            tracing::info!(instructor = %req.name.trim(), "instructor logged in");
            Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, teach::set_cookie(Some(&token), &headers))]).into_response())
        }
        None => {
            for k in [&key, &name_key] {
                room.failures.failed(k, Instant::now());
            }
            Err(LabError::kind(StatusCode::UNAUTHORIZED, ErrorKind::WrongPassword, "wrong name or password"))
        }
    }
}

async fn logout(State(room): State<Room>, headers: HeaderMap) -> Result<Response, LabError> {
    teach::logout(&room.db, &headers).await.map_err(|e| refuse(&room, &[], e))?;
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, teach::set_cookie(None, &headers))]).into_response())
}

/// Whether a request that names its origin comes from the page's own: students' web
/// pages are served on this origin too (the port proxy), sandboxed to an opaque
/// origin, and must never act with a teacher's cookie, whatever the browser does with
/// SameSite for them.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else { return true };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
    origin.to_str().is_ok_and(|o| !host.is_empty() && (o == format!("http://{host}") || o == format!("https://{host}")))
}

/// The instructor logged in by the request's cookie, or 401 (403 from another origin).
async fn instructor(room: &Classroom, headers: &HeaderMap) -> Result<String, LabError> {
    if !same_origin(headers) {
        return Err(LabError::kind(StatusCode::FORBIDDEN, ErrorKind::NotLoggedIn, "the teacher's pages answer their own origin only"));
    }
    teach::instructor(&room.db, headers)
        .await
        .map_err(|e| refuse(room, &[], e))?
        .ok_or_else(|| LabError::kind(StatusCode::UNAUTHORIZED, ErrorKind::NotLoggedIn, "log in as an instructor first (/teach)"))
}

async fn me(State(room): State<Room>, headers: HeaderMap) -> Result<Json<Instructor>, LabError> {
    Ok(Json(Instructor { name: instructor(&room, &headers).await? }))
}

async fn list_classes(State(room): State<Room>, headers: HeaderMap) -> Result<Json<Vec<ClassInfo>>, LabError> {
    instructor(&room, &headers).await?;
    let now = Utc::now();
    Ok(Json(room.db.classes().await.map_err(db_err)?.iter().map(|c| class_info(c, now, true)).collect()))
}

/// A class's (opens, closes).
type Window = (Option<chrono::DateTime<Utc>>, Option<chrono::DateTime<Utc>>);

fn parse_window(opens: Option<&str>, closes: Option<&str>) -> Result<Window, ClassroomError> {
    let t = |s: Option<&str>| s.map(str::trim).filter(|s| !s.is_empty()).map(super::parse_time).transpose();
    let (opens, closes) = (t(opens)?, t(closes)?);
    if let (Some(o), Some(c)) = (opens, closes) {
        if c <= o {
            return Err(ClassroomError::Window { opens: o, closes: c });
        }
    }
    Ok((opens, closes))
}

async fn create_class(State(room): State<Room>, headers: HeaderMap, body: axum::body::Bytes) -> Result<Response, LabError> {
    let who = instructor(&room, &headers).await?;
    let req: NewClassRequest = parse(&body)?;
    let new = (|| -> Result<NewClass, ClassroomError> {
        let (opens, closes) = parse_window(req.opens.as_deref(), req.closes.as_deref())?;
        Ok(NewClass { name: req.name.clone(), lessons: super::parse_lessons(&req.lessons.join(","), &room.lessons)?, opens, closes, limits: req.limits.clone() })
    })()
    .map_err(|e| refuse(&room, &[], e))?;
    let (row, _) = super::create_class(&room.db, new).await.map_err(|e| refuse(&room, &[], e))?;
    tracing::info!(instructor = %who, class = %row.id, "class created");
    Ok((StatusCode::CREATED, Json(class_info(&row, Utc::now(), true))).into_response())
}

async fn set_window(State(room): State<Room>, headers: HeaderMap, Path(id): Path<String>, body: axum::body::Bytes) -> Result<Json<ClassInfo>, LabError> {
    let who = instructor(&room, &headers).await?;
    let req: ClassWindow = parse(&body)?;
    let (opens, closes) = parse_window(req.opens.as_deref(), req.closes.as_deref()).map_err(|e| refuse(&room, &[], e))?;
    if !room.db.set_class_window(&id, opens, closes).await.map_err(db_err)? {
        return Err(no_class(&id));
    }
    tracing::info!(instructor = %who, class = %id, "class window changed");
    room.labs.apply_class_windows().await?;
    let row = room.db.class(&id).await.map_err(db_err)?.ok_or_else(|| no_class(&id))?;
    Ok(Json(class_info(&row, Utc::now(), true)))
}

async fn get_limits(State(room): State<Room>, headers: HeaderMap, Path(id): Path<String>) -> Result<Json<ClassLimits>, LabError> {
    let (class, _) = class_and_instructor(&room, &headers, &id).await?;
    Ok(Json(class.limits))
}

async fn set_limits(State(room): State<Room>, headers: HeaderMap, Path(id): Path<String>, body: axum::body::Bytes) -> Result<Json<ClassLimits>, LabError> {
    let (class, who) = class_and_instructor(&room, &headers, &id).await?;
    let limits: ClassLimits = parse(&body)?;
    super::check_limits(&limits).map_err(|e| refuse(&room, &[], e))?;
    room.db.set_class_limits(&class.id, &limits).await.map_err(db_err)?;
    record(&room, &class.id, &who, "limits", None).await?;
    Ok(Json(limits))
}

fn no_class(id: &str) -> LabError {
    LabError::kind(StatusCode::NOT_FOUND, ErrorKind::NotFound, format!("no such class: {id}"))
}

async fn build_dashboard(room: &Classroom, id: &str) -> Result<Dashboard, LabError> {
    let class = room.db.class(id).await.map_err(db_err)?.ok_or_else(|| no_class(id))?;
    let students = room.labs.snapshots(&room.class_members(&class.id).await.map_err(db_err)?).await?;
    let rule = StuckRule { after: chrono::Duration::from_std(room.opts.stuck_after).unwrap_or(chrono::Duration::MAX), attempts: room.opts.stuck_attempts };
    let activity = ClassActivity {
        hands: room.db.hands(&class.id).await.map_err(db_err)?.into_iter().map(|h| HandRow { name: h.name, raised_at: h.raised_at.to_rfc3339(), note: h.note }).collect(),
        messages: room.db.messages(&class.id, None, 50).await.map_err(db_err)?.iter().map(super::message).collect(),
        actions: room
            .db
            .actions(&class.id, 50)
            .await
            .map_err(db_err)?
            .into_iter()
            .map(|a| AuditRow { at: a.at.to_rfc3339(), instructor: a.instructor, action: a.action, student: a.student })
            .collect(),
        watching: room.watchers(&class.id),
    };
    Ok(dashboard::build(&class, &room.lessons, &students, activity, rule, Utc::now()))
}

async fn dashboard(State(room): State<Room>, headers: HeaderMap, Path(id): Path<String>) -> Result<Json<Dashboard>, LabError> {
    instructor(&room, &headers).await?;
    Ok(Json(build_dashboard(&room, &id).await?))
}

/// The dashboard as server-sent events: one at once, then one whenever it changes
/// (looked at on every change the lab reports, and each second for what it does not
/// report, such as keystrokes). Ends when the login does.
async fn live(State(room): State<Room>, headers: HeaderMap, Path(id): Path<String>) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, LabError> {
    instructor(&room, &headers).await?;
    build_dashboard(&room, &id).await?;
    let changes = room.changes.subscribe();
    let state = (room, headers, id, changes, None::<Dashboard>);
    let stream = futures_util::stream::unfold(state, |(room, headers, id, mut changes, last)| async move {
        loop {
            if last.is_some() {
                tokio::select! {
                    r = changes.changed() => if r.is_err() { return None },
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                // Let a burst of changes (a whole class typing) settle into one event.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            instructor(&room, &headers).await.ok()?;
            let d = build_dashboard(&room, &id).await.ok()?;
            let same = last.as_ref().is_some_and(|l| Dashboard { now: String::new(), ..l.clone() } == Dashboard { now: String::new(), ..d.clone() });
            if same {
                continue;
            }
            let event = Event::default().event("dashboard").json_data(&d).ok()?;
            return Some((Ok(event), (room, headers, id, changes, Some(d))));
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// The join URL as a QR code, on the address the teacher's browser used (which is
/// the one students reach, in a classroom).
async fn qr(State(room): State<Room>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, LabError> {
    instructor(&room, &headers).await?;
    let class = room.db.class(&id).await.map_err(db_err)?.ok_or_else(|| no_class(&id))?;
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let https = headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|p| p.eq_ignore_ascii_case("https"));
    let url = format!("{}://{host}{}", if https { "https" } else { "http" }, class_info(&class, Utc::now(), false).join_path);
    let code = qrcode::QrCode::new(url.as_bytes()).map_err(|e| LabError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("QR code: {e}")))?;
    let svg = code.render::<qrcode::render::svg::Color<'_>>().min_dimensions(320, 320).quiet_zone(true).build();
    Ok(([(header::CONTENT_TYPE, "image/svg+xml"), (header::CACHE_CONTROL, "no-cache")], svg).into_response())
}

/// A class's student by the name in a URL: (session id, member).
async fn student(room: &Classroom, class: &str, name: &str) -> Result<(String, Member), LabError> {
    let m = room.db.member(class, &members::name_key(name)).await.map_err(db_err)?;
    m.map(|m| (m.session, Member { class: m.class, name: m.name, joined: m.joined }))
        .ok_or_else(|| LabError::kind(StatusCode::NOT_FOUND, ErrorKind::NotFound, format!("no student {name:?} in this class")))
}

/// The class (404 if none) and the instructor (401 if not logged in).
async fn class_and_instructor(room: &Classroom, headers: &HeaderMap, id: &str) -> Result<(crate::lab::db::ClassRow, String), LabError> {
    let who = instructor(room, headers).await?;
    let class = room.db.class(id).await.map_err(db_err)?.ok_or_else(|| no_class(id))?;
    Ok((class, who))
}

async fn record(room: &Classroom, class: &str, who: &str, action: &str, student: Option<&str>) -> Result<(), LabError> {
    tracing::info!(class, instructor = who, action, student, "instructor action");
    room.db.record_action(class, who, action, student).await.map_err(db_err)?;
    room.notify();
    Ok(())
}

async fn send_message(State(room): State<Room>, headers: HeaderMap, Path(id): Path<String>, body: axum::body::Bytes) -> Result<Response, LabError> {
    let (class, who) = class_and_instructor(&room, &headers, &id).await?;
    let req: SendMessage = parse(&body)?;
    let text = super::check_text(&req.text, 2000, false).map_err(|e| LabError::kind(StatusCode::BAD_REQUEST, ErrorKind::BadMessage, e))?;
    let to = match req.to.as_deref().filter(|t| !t.trim().is_empty()) {
        Some(name) => Some(student(&room, &class.id, name).await?.1.name),
        None => None,
    };
    deliver(&room, &class.id, &who, to.as_deref(), "text", &text).await?;
    record(&room, &class.id, &who, "message", to.as_deref()).await?;
    Ok(StatusCode::CREATED.into_response())
}

/// Stores a message for the class (`to`: one student), which their pages show at their
/// next poll.
async fn deliver(room: &Classroom, class: &str, from: &str, to: Option<&str>, kind: &str, text: &str) -> Result<(), LabError> {
    let row = crate::lab::db::MessageRow {
        id: 0,
        class: class.to_string(),
        at: Utc::now(),
        sender: from.to_string(),
        recipient: to.map(str::to_string),
        recipient_key: to.map(members::name_key),
        kind: kind.to_string(),
        text: text.to_string(),
    };
    room.db.insert_message(&row).await.map_err(db_err)?;
    Ok(())
}

async fn answer_hand(State(room): State<Room>, headers: HeaderMap, Path((id, name)): Path<(String, String)>) -> Result<StatusCode, LabError> {
    let (class, who) = class_and_instructor(&room, &headers, &id).await?;
    let (_, m) = student(&room, &class.id, &name).await?;
    if room.db.lower_hand(&class.id, &members::name_key(&m.name)).await.map_err(db_err)? {
        record(&room, &class.id, &who, "answer_hand", Some(&m.name)).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn reset(State(room): State<Room>, headers: HeaderMap, Path((id, name)): Path<(String, String)>) -> Result<StatusCode, LabError> {
    let (class, who) = class_and_instructor(&room, &headers, &id).await?;
    let (session, m) = student(&room, &class.id, &name).await?;
    if matches!(room.labs.now(&session).await?, LabNow::Ended) {
        return Err(LabError::kind(StatusCode::CONFLICT, ErrorKind::LabEnded, format!("{}'s lab is ended: there is nothing to reset", m.name)));
    }
    // Told first: the message is there when the page gets its lab back.
    deliver(&room, &class.id, &who, Some(&m.name), "reset", "").await?;
    room.labs.reset(&session).await?;
    record(&room, &class.id, &who, "reset", Some(&m.name)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn end(State(room): State<Room>, headers: HeaderMap, Path((id, name)): Path<(String, String)>) -> Result<StatusCode, LabError> {
    let (class, who) = class_and_instructor(&room, &headers, &id).await?;
    let (session, m) = student(&room, &class.id, &name).await?;
    if !matches!(room.labs.now(&session).await?, LabNow::Ended) {
        room.labs.end(&session).await?;
        room.db.set_member_ended(&class.id, &members::name_key(&m.name), Some(Utc::now())).await.map_err(db_err)?;
        deliver(&room, &class.id, &who, Some(&m.name), "ended", "").await?;
        record(&room, &class.id, &who, "end", Some(&m.name)).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Deserialize)]
struct TerminalQuery {
    #[serde(default)]
    control: Option<String>,
}

/// A student's terminal for an instructor: read-only, or with `?control=1` writable
/// (the student's page then says an instructor is typing). Both are recorded.
async fn student_terminal(
    State(room): State<Room>,
    headers: HeaderMap,
    Path((id, name)): Path<(String, String)>,
    axum::extract::Query(q): axum::extract::Query<TerminalQuery>,
    req: axum::extract::Request,
) -> Result<Response, LabError> {
    let (class, who) = class_and_instructor(&room, &headers, &id).await?;
    let (session, m) = student(&room, &class.id, &name).await?;
    if !matches!(room.labs.now(&session).await?, LabNow::Open { .. }) {
        return Err(LabError::kind(StatusCode::CONFLICT, ErrorKind::LabEnded, format!("{}'s lab is ended", m.name)));
    }
    let control = q.control.as_deref().is_some_and(|c| c == "1" || c == "true");
    record(&room, &class.id, &who, if control { "take_over" } else { "watch" }, Some(&m.name)).await?;
    let watching = room.watching(&class.id, Watching { instructor: who.clone(), student: m.name.clone(), control });
    room.labs.terminal(&session, who, control, req, watching).await
}

/// Progress as CSV: one row per step done, `student,lesson,step,done_at,attempts`.
async fn progress_csv(State(room): State<Room>, headers: HeaderMap, Path(id): Path<String>) -> Result<Response, LabError> {
    let (class, who) = class_and_instructor(&room, &headers, &id).await?;
    let mut w = csv::Writer::from_writer(Vec::new());
    let io = |e: csv::Error| LabError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("CSV: {e}"));
    w.write_record(["student", "lesson", "step", "done_at", "attempts"]).map_err(io)?;
    for (session, m) in room.class_members(&class.id).await.map_err(db_err)? {
        for d in room.db.done_steps(&session).await.map_err(db_err)? {
            let attempts = d.attempts.map(|a| a.to_string()).unwrap_or_default();
            w.write_record([m.name.as_str(), &d.lesson, &d.step, &d.done_at.to_rfc3339(), &attempts]).map_err(io)?;
        }
    }
    let body = w.into_inner().map_err(|e| LabError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("CSV: {e}")))?;
    record(&room, &class.id, &who, "export_csv", None).await?;
    let disposition = format!("attachment; filename=\"class-{}-progress.csv\"", class.id);
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()), (header::CONTENT_DISPOSITION, disposition)], body).into_response())
}

/// A student's hand-in: the events that passed each step, signed by the server.
async fn transcript(State(room): State<Room>, headers: HeaderMap, Path((id, name)): Path<(String, String)>) -> Result<Response, LabError> {
    let (class, who) = class_and_instructor(&room, &headers, &id).await?;
    let (session, m) = student(&room, &class.id, &name).await?;
    let steps = room.db.done_steps(&session).await.map_err(db_err)?;
    let key = room.signing_key().await.map_err(|e| LabError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let text = super::transcript::write(&key, &class, &m.name, &steps, Utc::now());
    record(&room, &class.id, &who, "transcript", Some(&m.name)).await?;
    let file: String = m.name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    let disposition = format!("attachment; filename=\"transcript-{file}.txt\"");
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8".to_string()), (header::CONTENT_DISPOSITION, disposition)], text).into_response())
}
