//! The engine's one error type. Variants follow how a Docker user sees a failure
//! (not found, conflict, bad argument, ...) so the API layer can map each to Docker's
//! status code without looking at the text.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The named object does not exist (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// The request clashes with the current state, e.g. a name in use (HTTP 409).
    #[error("{0}")]
    Conflict(String),
    /// The request itself is wrong, e.g. a bad flag value (HTTP 400).
    #[error("{0}")]
    InvalidArgument(String),
    /// Docker refuses this operation whatever the request says, e.g. creating a
    /// network named like a predefined one (HTTP 403).
    #[error("{0}")]
    Forbidden(String),
    /// Nothing to do, e.g. starting a running container (HTTP 304).
    #[error("{0}")]
    NotModified(String),
    /// Berth (or the configured driver) cannot do this, e.g. read logs of a container
    /// with `--log-driver none` (HTTP 501).
    #[error("{0}")]
    NotImplemented(String),
    /// The container's process could not be started (exec not found, ...).
    #[error("{0}")]
    Runtime(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("{context}: {source}")]
    Json {
        context: String,
        #[source]
        source: serde_json::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds a human context to io and json errors, like anyhow's `context` but typed.
pub trait Context<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, io::Error> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Io { context: context(), source })
    }
}

impl<T> Context<T> for std::result::Result<T, serde_json::Error> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::Json { context: context(), source })
    }
}

impl<T> Context<T> for std::result::Result<T, nix::Error> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::Io { context: context(), source: io::Error::from(e) })
    }
}

/// An errno as Go prints it, which is how dockerd words its errors: "no such file or
/// directory", where libc says "No such file or directory".
pub fn go_errno(e: nix::errno::Errno) -> String {
    go_case(e.desc())
}

/// A system error's text in Go's lower case (its first letter): "connection refused".
pub fn go_case(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_lowercase().chain(chars).collect()).unwrap_or_default()
}

/// An I/O error in Go's words where it carries an errno (see [`go_errno`]).
pub fn go_io_error(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => go_errno(nix::errno::Errno::from_raw(n)),
        None => e.to_string(),
    }
}
