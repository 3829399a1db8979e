//! Wire types between the lab server (`server/src/lab`) and the playground
//! (`playground-web`): JSON over HTTP, and the terminal's WebSocket control frames.
//!
//! HTTP routes (all under the web listener, `berth serve --listen`):
//! - `GET  /api/lessons`                  -> `Vec<crate::Lesson>` (text already rendered to HTML)
//! - `POST /api/sessions`                 -> `SessionInfo` (a new lab session)
//! - `GET  /api/sessions/{id}`            -> `SessionStatus` (poll it: containers, images, progress)
//! - `POST /api/sessions/{id}/lesson`     <- `SelectLesson` (the lesson the student works on)
//! - `GET  /api/sessions/{id}/terminal`   WebSocket: binary frames are terminal bytes both ways;
//!                                        text frames from the page are `TerminalControl` JSON.
//!                                        On (re)connect the server first sends the scrollback.
//! - `ANY  /lab/{id}/ports/{port}/...`    HTTP proxy to a port published in the session.

use serde::{Deserialize, Serialize};

/// A lab session: the student's namespace, workstation and progress. The id is a
/// random capability; whoever holds it owns the session (the page keeps it in
/// localStorage so a reload finds the same shell).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub id: String,
    /// RFC 3339.
    pub created: String,
    /// RFC 3339: when an idle session is removed unless it is used again.
    pub expires: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionStatus {
    pub id: String,
    /// The student's containers (the workstation itself is not listed).
    pub containers: Vec<ContainerSummary>,
    pub images: Vec<ImageSummary>,
    /// The lesson the student picked, if any.
    pub lesson: Option<String>,
    pub progress: Vec<LessonProgress>,
    /// The class the session belongs to (none in the open playground).
    #[serde(default)]
    pub class: Option<Membership>,
    /// Messages from the class's instructors (to the whole class or to this student),
    /// oldest first.
    #[serde(default)]
    pub messages: Vec<ClassMessage>,
    /// The student's raised hand, until an instructor answers or they lower it.
    #[serde(default)]
    pub hand: Option<Hand>,
    /// An instructor has taken over the terminal now (their name).
    #[serde(default)]
    pub instructor_typing: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerSummary {
    /// Full id.
    pub id: String,
    /// Without Docker's leading '/'.
    pub name: String,
    /// As the student named it (`busybox`, `web:v1`).
    pub image: String,
    /// created | running | paused | restarting | exited | dead
    pub state: String,
    /// `docker ps`'s STATUS column ("Up 3 seconds", "Exited (0) 2 minutes ago").
    pub status: String,
    pub ports: Vec<PublishedPort>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishedPort {
    pub container_port: u16,
    pub host_port: u16,
    /// "tcp" | "udp"
    pub protocol: String,
    /// Where the browser opens it: `/lab/{session}/ports/{host_port}/` (tcp only).
    pub url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageSummary {
    /// sha256:...
    pub id: String,
    /// `busybox:latest`, ...; empty for a dangling image.
    pub tags: Vec<String>,
    pub size: u64,
    /// Oldest first, as `docker history` lists them bottom-up.
    pub layers: Vec<LayerSummary>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerSummary {
    /// The instruction that made it (`COPY app.js /app # buildkit`, `/bin/sh -c #(nop)  CMD ["sh"]`).
    pub created_by: String,
    pub size: u64,
    /// A metadata-only step (no filesystem layer).
    pub empty: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LessonProgress {
    pub lesson: String,
    /// Ids of the steps whose check has passed, in lesson order.
    pub done: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectLesson {
    pub lesson: String,
}

/// Text frames the page sends on the terminal WebSocket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum TerminalControl {
    Resize { cols: u16, rows: u16 },
}

// ---------------------------------------------------------------- the classroom
//
// Students (no login; the join code is the key to a class):
// - `GET  /api/classes/{code}`            -> `ClassInfo` (what the join page shows)
// - `POST /api/join`                      <- `JoinRequest` -> `Joined` (201 new, 200 again)
// Instructors (the `berth_teach` cookie from the login):
// - `POST /api/teach/login`               <- `Login` (204 + cookie)
// - `POST /api/teach/logout`
// - `GET  /api/teach/me`                  -> `Instructor`
// - `GET  /api/teach/classes`             -> `Vec<ClassInfo>`
// - `POST /api/teach/classes`             <- `NewClassRequest` -> `ClassInfo` (201)
// - `GET  /api/teach/classes/{id}`        -> `Dashboard`
// - `PUT  /api/teach/classes/{id}/window` <- `ClassWindow` -> `ClassInfo` (e.g. reopen a class)
// - `GET|PUT /api/teach/classes/{id}/limits` `ClassLimits`: the class's labs' limits
//                                         (the server's `--lab-…` defaults where unset)
// - `GET  /api/teach/classes/{id}/qr.svg` the join URL (on the address the teacher uses) as a QR code
// - `POST /api/teach/classes/{id}/messages` <- `SendMessage` (201): to one student or all
// - `DELETE /api/teach/classes/{id}/students/{name}/hand`   answers (lowers) a raised hand
// - `POST /api/teach/classes/{id}/students/{name}/reset`    empties the lab, keeps progress
// - `POST /api/teach/classes/{id}/students/{name}/end`      removes the lab (a new one at rejoin)
// - `GET  /api/teach/classes/{id}/students/{name}/terminal` WebSocket, the student's terminal
//                                         read-only; `?control=1`: writable (the student
//                                         sees `SessionStatus.instructor_typing`)
// - `GET  /api/teach/classes/{id}/progress.csv`             student,lesson,step,done_at,attempts
// - `GET  /api/teach/classes/{id}/students/{name}/transcript` the signed hand-in (text);
//                                         `berth transcript verify FILE` checks it offline
// `{name}` is the student's display name, URL-encoded.
// Students, on their own session:
// - `POST   /api/sessions/{id}/hand`      <- `RaiseHand`
// - `DELETE /api/sessions/{id}/hand`      lowers it
// Messages, the raised hand and the instructor's typing reach the student's page in
// `SessionStatus` (polled each second).
// - `GET  /api/teach/classes/{id}/live`   Server-sent events: `dashboard` events, each a
//                                         whole `Dashboard`, whenever it changes.
// Pages (the same app; the server answers index.html): `/join/{code}`, `/teach`,
// `/teach/classes/{id}`.
//
// Every error answer is an `ApiError`.

/// An error answer: `message` in English for logs and scripts, `kind` for pages, which
/// show their own text in the user's language.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiError {
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<ErrorKind>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// No class has this join code (or it is not a code at all).
    UnknownCode,
    /// The class has not opened yet: new students wait for `opens`.
    NotOpen,
    /// The class has closed: only its students may come back, to read their progress.
    Closed,
    NameEmpty,
    NameTooLong,
    /// Control characters in a name.
    NameInvalid,
    /// Someone in the class has this name already (and no PIN, or a wrong one, came with it).
    NameTaken,
    WrongPin,
    /// An unknown or revoked rejoin link.
    BadToken,
    /// Too many tries from this address: wait `retry_after` (the header) seconds.
    RateLimited,
    /// The server has no open playground: only class members get labs.
    ClassOnly,
    WrongPassword,
    /// No instructor is logged in (or the login expired).
    NotLoggedIn,
    /// A bad class definition (name, lessons, window): see `message`.
    BadClass,
    NotFound,
    /// An instructor ended this lab: coming back to the class (the join page) gives a
    /// new one, with the progress.
    LabEnded,
    /// The session is not a class member's (hands are for classes).
    NotInClass,
    /// A message that is empty or too long.
    BadMessage,
    /// An instructor is resetting the lab now: try again in `Retry-After` seconds.
    Resetting,
    /// The lab node that holds the session is restarting (behind a hub): try again in
    /// `Retry-After` seconds; the lab comes back with its work.
    Reconnecting,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassState {
    /// Before `opens`.
    Upcoming,
    Open,
    /// After `closes`: students may read their progress but not start containers.
    Closed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassInfo {
    /// Only in the instructor's answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub name: String,
    /// As shown and read aloud: `ABCD-EFGH`.
    pub code: String,
    /// `/join/ABCD-EFGH`, to be put after the server's address.
    pub join_path: String,
    /// Lesson ids, in the class's order.
    pub lessons: Vec<String>,
    /// RFC 3339.
    pub opens: Option<String>,
    pub closes: Option<String>,
    pub state: ClassState,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JoinRequest {
    /// With or without the dash, any case.
    pub code: String,
    /// The display name the teacher sees: unique in the class (case does not count).
    pub name: String,
    /// To come back as `name`: the PIN given at the first join.
    #[serde(default)]
    pub pin: Option<String>,
    /// Or the rejoin link's token (then `name` may be empty).
    #[serde(default)]
    pub token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Joined {
    /// The student's lab session (the same one each time they come back).
    pub session: SessionInfo,
    pub class: ClassInfo,
    pub name: String,
    /// Only at the first join: show it to the student once, they need it to come back.
    pub pin: Option<String>,
    /// Only at the first join: a rejoin link's path (`/join/CODE#TOKEN`), which needs no PIN.
    pub rejoin_path: Option<String>,
}

/// What a session's status says of its class (none for an open-playground session).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Membership {
    pub class: ClassInfo,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Login {
    pub name: String,
    pub password: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instructor {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewClassRequest {
    pub name: String,
    /// Lesson ids in order; empty: every lesson.
    #[serde(default)]
    pub lessons: Vec<String>,
    /// RFC 3339, or `YYYY-MM-DDTHH:MM` (UTC).
    #[serde(default)]
    pub opens: Option<String>,
    #[serde(default)]
    pub closes: Option<String>,
    /// The class's labs' limits; unset ones are the server's defaults.
    #[serde(default)]
    pub limits: ClassLimits,
}

/// Limits for each lab of a class, overriding the server's `--lab-session-cpus`,
/// `--lab-session-memory`, `--lab-session-pids`, `--lab-disk` and `--lab-containers`.
/// They apply to labs made (joined, reset, reopened) after they are set, and to every
/// lab of the class from the server's next start.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_cpus: Option<f64>,
    /// Bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_memory: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_pids: Option<i64>,
    /// Bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub containers: Option<u32>,
}

/// A class's time window; both optional (RFC 3339, or `YYYY-MM-DDTHH:MM` in UTC).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassWindow {
    #[serde(default)]
    pub opens: Option<String>,
    #[serde(default)]
    pub closes: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMessage {
    pub id: i64,
    /// RFC 3339.
    pub at: String,
    /// The instructor's name.
    pub from: String,
    /// A student's name, or None: the whole class.
    pub to: Option<String>,
    pub kind: MessageKind,
    /// The instructor's words (for `text`); empty for the others, which the page words.
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    Text,
    /// The instructor emptied the student's lab (containers, images, volumes, home);
    /// their progress is kept.
    Reset,
    /// The instructor ended the student's lab; coming back gives a new one.
    Ended,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendMessage {
    /// A student's name, or None for the whole class.
    #[serde(default)]
    pub to: Option<String>,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RaiseHand {
    /// Optional: what the student is stuck on.
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hand {
    /// RFC 3339.
    pub raised_at: String,
    pub note: String,
}

/// A raised hand in the dashboard's queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HandRow {
    pub name: String,
    pub raised_at: String,
    pub note: String,
}

/// An instructor's action on a student's lab, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRow {
    /// RFC 3339.
    pub at: String,
    pub instructor: String,
    /// `watch`, `take_over`, `reset`, `end`, `message`, `answer_hand`, `window`.
    pub action: String,
    /// The student's name, if the action was on one.
    pub student: Option<String>,
}

/// The teacher's live view of a class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dashboard {
    pub class: ClassInfo,
    /// Raised hands, oldest first.
    #[serde(default)]
    pub hands: Vec<HandRow>,
    /// The class's messages, oldest first (the last 50).
    #[serde(default)]
    pub messages: Vec<ClassMessage>,
    /// Instructors' actions on students' labs, newest first (the last 50).
    #[serde(default)]
    pub actions: Vec<AuditRow>,
    /// Instructors watching or controlling a terminal now: (instructor, student, control).
    #[serde(default)]
    pub watching: Vec<Watching>,
    /// RFC 3339: the server's time when this was made (ages are against it).
    pub now: String,
    /// A student with no step done for this long is stuck.
    pub stuck_after_secs: u64,
    /// In the order they joined.
    pub students: Vec<StudentRow>,
    /// Every step of the class's lessons, in order, with how many students finished it.
    pub steps: Vec<StepSummary>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Watching {
    pub instructor: String,
    pub student: String,
    /// Taken over (typing), not only watching.
    pub control: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudentRow {
    pub name: String,
    /// The student's hand is up.
    #[serde(default)]
    pub hand: bool,
    /// RFC 3339.
    pub joined: String,
    /// The lesson the student has open, and its first step not done yet (none when
    /// the lesson is finished).
    pub lesson: Option<String>,
    pub step: Option<String>,
    /// Steps done in the class's lessons, of `total`.
    pub done: u32,
    pub total: u32,
    /// RFC 3339: since when the current step is the current one (the last step done,
    /// or the lesson's choice, or the join).
    pub step_since: String,
    /// RFC 3339: the last keystroke or engine event of the student's lab.
    pub last_activity: Option<String>,
    /// Engine events since the current step began, none of which passed its check.
    pub attempts: u32,
    /// What the student last did, as the engine saw it (`container start web (nginx)`).
    pub last_action: Option<String>,
    pub containers_running: u32,
    /// Whether a terminal page of the student is connected now.
    pub online: bool,
    /// The lab node holding the student's lab is away (restarting): the lab comes back
    /// with its work; until then the row shows what the database holds.
    #[serde(default)]
    pub reconnecting: bool,
    pub stuck: Option<Stuck>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Stuck {
    /// No step done for `minutes`.
    NoProgress { minutes: u64 },
    /// `attempts` engine events on the current step without passing its check.
    Failing { attempts: u32 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepSummary {
    pub lesson: String,
    pub step: String,
    /// Students who finished it.
    pub finished: u32,
}
