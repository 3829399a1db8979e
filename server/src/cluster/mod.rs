//! Berth past one machine: the roles `berth serve` runs in (`--role`), as Kubernetes
//! runs them (see deploy/kubernetes and the README's "Running on Kubernetes").
//!
//! - `all` (the default): one server does everything, as on a single machine.
//! - `node`: a lab node. It runs the engine and the lab sessions placed on it, and
//!   serves the lab's web API to the hub only (every request but the probes and
//!   `/metrics` must carry the cluster secret). It tells the shared database, every
//!   few seconds, where it is and how many sessions it holds ([`heartbeat`]).
//! - `hub`: no engine. It serves the playground, places each new session on the
//!   least loaded node that takes sessions, and forwards each session's requests
//!   (status, terminal, published ports) to the node that holds it ([`hub`]).
//!
//! Nodes and hub share one database (PostgreSQL when scaled out): a session's row
//! names its node, and a node reopens only its own sessions after a restart.

pub mod forward;
pub mod hub;
pub mod node;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use sha2::{Digest, Sha256};

use crate::lab::db::{NodeRow, LOCAL_NODE};
use crate::lab::Lab;

/// What this `berth serve` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// Everything in one process: a single machine.
    All,
    /// A lab node behind a hub: the engine and its sessions.
    Node,
    /// The hub in front of lab nodes: the playground, placement and forwarding.
    Hub,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ClusterOptions {
    /// What this server does: `all` (a single machine), `node` (a lab node behind a
    /// hub) or `hub` (the playground in front of lab nodes).
    #[arg(long, value_enum, default_value = "all", env = "BERTH_ROLE")]
    pub role: Role,
    /// This server's name in the shared database: its sessions are the ones with this
    /// name. A node's must be its own and stable (a StatefulSet pod's name).
    #[arg(long = "node-name", default_value = LOCAL_NODE, env = "BERTH_NODE_NAME")]
    pub node_name: String,
    /// Where the hub reaches this node's web listener, e.g. http://10.0.3.7:8080
    /// (`--role node`).
    #[arg(long = "advertise-url", env = "BERTH_ADVERTISE_URL")]
    pub advertise_url: Option<String>,
    /// The secret hub and nodes share (a Kubernetes Secret): a node answers only
    /// requests that carry it.
    #[arg(long = "cluster-secret", env = "BERTH_CLUSTER_SECRET", hide_env_values = true)]
    pub secret: Option<ClusterSecret>,
}

impl ClusterOptions {
    /// Refuses a role without what it needs.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.role != Role::All {
            anyhow::ensure!(self.secret.is_some(), "--role {:?} needs --cluster-secret (or BERTH_CLUSTER_SECRET), the same on the hub and every node", self.role);
        }
        if self.role == Role::Node {
            anyhow::ensure!(self.node_name != LOCAL_NODE, "--role node needs --node-name (or BERTH_NODE_NAME): a name of its own, the same after a restart");
            let url = self.advertise_url.as_deref().unwrap_or_default();
            anyhow::ensure!(!url.is_empty(), "--role node needs --advertise-url (or BERTH_ADVERTISE_URL): where the hub reaches this node's --listen");
            forward::Authority::parse(url)?;
        }
        anyhow::ensure!(
            !self.node_name.is_empty() && self.node_name.len() <= 63 && self.node_name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.'),
            "--node-name {:?}: use up to 63 letters, digits, '-' and '.'",
            self.node_name
        );
        Ok(())
    }
}

/// The hub's and nodes' shared secret.
#[derive(Clone)]
pub struct ClusterSecret(String);

impl FromStr for ClusterSecret {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.len() < 16 {
            return Err("a cluster secret must be at least 16 characters (e.g. `openssl rand -hex 32`)".into());
        }
        Ok(ClusterSecret(s.to_string()))
    }
}

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterSecret(..)")
    }
}

impl ClusterSecret {
    /// The header value a hub sends with every request to a node.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.0)
    }

    /// Whether `headers` carry this secret. Digests compared, not the strings: `==`
    /// stops at the first difference, and the time it took would tell a guesser how
    /// much was right.
    fn carried_by(&self, headers: &HeaderMap) -> bool {
        let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        given.is_some_and(|g| Sha256::digest(g.trim()) == Sha256::digest(&self.0))
    }
}

/// A node's web app answers its hub only.
pub async fn require_secret(State(secret): State<Arc<ClusterSecret>>, req: Request, next: Next) -> Response {
    if secret.carried_by(req.headers()) {
        return next.run(req).await;
    }
    let body = berth_lessons::api::ApiError { message: "this is a Berth lab node: it answers its hub only (open the hub's address)".into(), kind: None };
    (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response()
}

/// How often a node tells the database about itself.
pub const HEARTBEAT: Duration = Duration::from_secs(3);

/// A node not heard from for this long is taken for gone: no new sessions go to it.
pub const GONE_AFTER: Duration = Duration::from_secs(15);

/// The file that marks a node as draining (`berth node drain`): kept in its state root,
/// so a restart drains on.
pub fn drain_mark(root: &Path) -> PathBuf {
    root.join("draining")
}

/// Marks the node with state root `root` as draining (or not): its hub places no new
/// sessions there from its next heartbeat on; the sessions it holds go on.
pub fn set_draining(root: &Path, draining: bool) -> std::io::Result<()> {
    let mark = drain_mark(root);
    if draining {
        std::fs::write(&mark, format!("{}\n", Utc::now().to_rfc3339()))
    } else {
        match std::fs::remove_file(&mark) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// Tells the database, now and every [`HEARTBEAT`], where this node is and how many
/// sessions it holds. It takes new ones if `able` and not draining (see [`drain_mark`]).
pub fn heartbeat(lab: Arc<Lab>, name: String, url: String, able: bool, root: PathBuf) {
    let weak = Arc::downgrade(&lab);
    drop(lab);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(HEARTBEAT);
        let mut was = None;
        loop {
            tick.tick().await;
            let Some(lab) = weak.upgrade() else { return };
            let draining = drain_mark(&root).exists();
            if was != Some(draining) {
                if draining {
                    tracing::info!("draining: no new sessions come here (berth node undrain ends it)");
                } else if was.is_some() {
                    tracing::info!("no longer draining: new sessions may come here");
                }
                was = Some(draining);
            }
            let row = NodeRow { name: name.clone(), url: url.clone(), sessions: lab.sessions().len() as i64, accepting: able && !draining, seen: Utc::now() };
            if let Err(e) = lab.db.put_node(&row).await {
                tracing::warn!("node heartbeat: {e}");
            }
        }
    });
}

/// Tells the database this node takes no new sessions (it is shutting down).
pub async fn leaving(lab: &Lab, name: &str, url: &str) {
    let row = NodeRow { name: name.into(), url: url.into(), sessions: lab.sessions().len() as i64, accepting: false, seen: Utc::now() };
    if let Err(e) = lab.db.put_node(&row).await {
        tracing::warn!("node heartbeat: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets() {
        assert!("short".parse::<ClusterSecret>().is_err());
        let s: ClusterSecret = "0123456789abcdef0123".parse().unwrap();
        assert_eq!(format!("{s:?}"), "ClusterSecret(..)");
        let mut h = HeaderMap::new();
        assert!(!s.carried_by(&h));
        h.insert(header::AUTHORIZATION, "Bearer 0123456789abcdef012".parse().unwrap());
        assert!(!s.carried_by(&h));
        h.insert(header::AUTHORIZATION, s.bearer().parse().unwrap());
        assert!(s.carried_by(&h));
    }

    fn opts(role: Role, name: &str, url: Option<&str>, secret: bool) -> ClusterOptions {
        ClusterOptions { role, node_name: name.into(), advertise_url: url.map(Into::into), secret: secret.then(|| "0123456789abcdef0123".parse().unwrap()) }
    }

    #[test]
    fn roles_need_their_settings() {
        assert!(opts(Role::All, LOCAL_NODE, None, false).check().is_ok());
        assert!(opts(Role::Hub, LOCAL_NODE, None, true).check().is_ok());
        assert!(opts(Role::Hub, LOCAL_NODE, None, false).check().is_err());
        assert!(opts(Role::Node, "node-0", Some("http://10.0.0.1:8080"), true).check().is_ok());
        assert!(opts(Role::Node, LOCAL_NODE, Some("http://10.0.0.1:8080"), true).check().is_err());
        assert!(opts(Role::Node, "node-0", None, true).check().is_err());
        assert!(opts(Role::Node, "node-0", Some("https://10.0.0.1"), true).check().is_err());
        assert!(opts(Role::Node, "node/0", Some("http://10.0.0.1:8080"), true).check().is_err());
    }
}
