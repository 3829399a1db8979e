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
