//! The registry client: `docker pull`, `docker push`, `docker login` and
//! `docker search` against any registry speaking the OCI distribution protocol
//! (Docker Hub, distribution, Berth's own).
//!
//! A pull resolves the reference to a manifest ([`pull::fetch`]), picking this
//! machine's platform from an index, then streams the config and layers into the
//! [`Store`](crate::store::Store), each verified against its digest while it is read,
//! three layers at a time. The engine then records the image (`Images::create`) and
//! moves the tag. A push ([`push::push`]) sends what the registry lacks (checked with
//! HEAD, or mounted from another repository of the same registry), then the manifest.
//!
//! Authentication follows Docker: [`client::Client::connect`] pings `/v2/`, reads the
//! `WWW-Authenticate` challenge and gets a Bearer token for the repository scope (Docker
//! Hub's flow), or sends Basic credentials. The credentials come from the docker CLI's
//! `X-Registry-Auth` header ([`Credentials::from_header`]).
//!
//! Progress is reported as typed [`Progress`] events through a callback; the server
//! turns them into Docker's JSON progress lines.

pub mod client;
pub mod guard;
pub mod lab_names;
pub mod pull;
pub mod push;
pub mod search;
pub mod wasm_artifact;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Mutex;

use base64::Engine as _;
use serde::Deserialize;

use crate::error::Error;

pub use client::Client;

/// Errors talking to a registry. Each maps to one of the engine's [`Error`] variants;
/// the server also uses the variant itself (`Unauthorized` is HTTP 401 for `docker login`).
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Wrong or missing credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// The credentials are fine but do not allow this (HTTP 403, `DENIED`).
    #[error("{0}")]
    Denied(String),
    /// Repository, tag, manifest or blob unknown to the registry.
    #[error("{0}")]
    NotFound(String),
    /// The bytes received do not hash to the digest they were asked for.
    #[error("digest mismatch for {what}: expected {expected}, got {got}")]
    DigestMismatch { what: String, expected: String, got: String },
    /// Something the client does not handle (schema 1 manifests, another platform).
    #[error("{0}")]
    Unsupported(String),
    /// The registry answered something that does not follow the protocol.
    #[error("{0}")]
    Protocol(String),
    /// The registry could not be reached, or the connection broke.
    #[error("{0}")]
    Transport(String),
    /// The local side failed (store, images).
    #[error(transparent)]
    Engine(#[from] Error),
}

impl From<RegistryError> for Error {
    fn from(e: RegistryError) -> Error {
        match e {
            RegistryError::Engine(e) => e,
            RegistryError::NotFound(m) => Error::NotFound(m),
            RegistryError::Unauthorized(_) | RegistryError::Denied(_) | RegistryError::DigestMismatch { .. } | RegistryError::Unsupported(_) => {
                Error::InvalidArgument(e.to_string())
            }
            RegistryError::Protocol(_) | RegistryError::Transport(_) => Error::Runtime(e.to_string()),
        }
    }
}

pub type RResult<T> = std::result::Result<T, RegistryError>;

/// Credentials for one registry, as the docker CLI sends them after `docker login`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct Credentials {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    /// Where the credentials are for (`https://index.docker.io/v1/`, `localhost:5000`).
    #[serde(default, alias = "serveraddress")]
    pub serveraddress: String,
    /// An OAuth2 refresh token some registries hand out instead of a password.
    #[serde(default, alias = "identitytoken")]
    pub identitytoken: String,
    /// A registry token to use as is.
    #[serde(default, alias = "registrytoken")]
    pub registrytoken: String,
}

impl Credentials {
    /// Decodes the `X-Registry-Auth` header: base64url JSON (padding optional; old
    /// clients used standard base64). An empty or `{}` header means anonymous.
    pub fn from_header(value: &str) -> Option<Credentials> {
        let value = value.trim();
        if value.is_empty() {
            return None;
        }
        let cfg = base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent);
        let url = base64::engine::GeneralPurpose::new(&base64::alphabet::URL_SAFE, cfg);
        let std = base64::engine::GeneralPurpose::new(&base64::alphabet::STANDARD, cfg);
        let bytes = url.decode(value).or_else(|_| std.decode(value)).ok()?;
        let c: Credentials = serde_json::from_slice(&bytes).ok()?;
        (!c.is_anonymous()).then_some(c)
    }

    pub fn is_anonymous(&self) -> bool {
        self.username.is_empty() && self.password.is_empty() && self.identitytoken.is_empty() && self.registrytoken.is_empty()
    }
}

/// What the registry client reports while it works; the server renders each as one
/// of Docker's JSON progress lines.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// A line about the whole operation: `latest: Pulling from library/busybox` has
    /// the id `latest`; `Digest: sha256:…` none.
    Status { id: Option<String>, text: String },
    /// A layer (its short id, 12 hex digits) reached a new state.
    Layer { id: String, state: LayerState },
    /// Bytes moved for a layer so far.
    Bytes { id: String, action: Transfer, current: u64, total: u64 },
    /// A pushed manifest, for the CLI's `aux` line (and `docker push` output).
    Pushed { tag: String, digest: String, size: usize },
}

#[derive(Debug, Clone, PartialEq)]
pub enum LayerState {
    PullingFsLayer,
    Waiting,
    VerifyingChecksum,
    DownloadComplete,
    PullComplete,
    AlreadyExists,
    Preparing,
    Pushed,
    LayerAlreadyExists,
    /// Mounted from another repository (its name) of the same registry.
    MountedFrom(String),
}

impl LayerState {
    /// Docker's wording.
    pub fn text(&self) -> String {
        match self {
            LayerState::PullingFsLayer => "Pulling fs layer".into(),
            LayerState::Waiting => "Waiting".into(),
            LayerState::VerifyingChecksum => "Verifying Checksum".into(),
            LayerState::DownloadComplete => "Download complete".into(),
            LayerState::PullComplete => "Pull complete".into(),
            LayerState::AlreadyExists => "Already exists".into(),
            LayerState::Preparing => "Preparing".into(),
            LayerState::Pushed => "Pushed".into(),
            LayerState::LayerAlreadyExists => "Layer already exists".into(),
            LayerState::MountedFrom(repo) => format!("Mounted from {repo}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Transfer {
    Downloading,
    Extracting,
    Pushing,
}

impl Transfer {
    pub fn text(self) -> &'static str {
        match self {
            Transfer::Downloading => "Downloading",
            Transfer::Extracting => "Extracting",
            Transfer::Pushing => "Pushing",
        }
    }
}

/// The progress callback; layers move on several threads at once, hence `Sync`.
pub type ProgressFn<'a> = dyn Fn(Progress) + Sync + 'a;

/// The short id Docker shows for a layer: the first 12 hex digits of its digest.
pub fn short_id(digest: &str) -> String {
    digest.strip_prefix("sha256:").unwrap_or(digest).chars().take(12).collect()
}

/// The host a registry name really lives at: Docker Hub's API is not at `docker.io`.
pub fn endpoint_host(registry: &str) -> &str {
    match registry {
        "docker.io" | "index.docker.io" | "registry.hub.docker.com" => "registry-1.docker.io",
        other => other,
    }
}

/// The registry a `docker login` server address names: `https://index.docker.io/v1/`
/// → `docker.io`, `http://localhost:5000/` → `localhost:5000`.
pub fn registry_of_server_address(addr: &str) -> String {
    let a = addr.trim();
    let a = a.strip_prefix("https://").or_else(|| a.strip_prefix("http://")).unwrap_or(a);
    let host = a.split('/').next().unwrap_or("");
    match host {
        "" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" | "docker.io" => "docker.io".into(),
        h => h.to_string(),
    }
}

/// Whether `host` (maybe with a port) is a loopback address, where plain HTTP is
/// allowed without configuration, as Docker does.
pub fn is_loopback(host: &str) -> bool {
    let h = strip_port(host);
    if h.eq_ignore_ascii_case("localhost") {
        return true;
    }
    h.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        // [::1]:5000
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// Whether plain HTTP may be used for `host`: loopback, or listed (with or without
/// its port) in `--insecure-registry`.
pub fn allows_http(host: &str, insecure: &[String]) -> bool {
    is_loopback(host) || insecure.iter().any(|i| i == host || i == strip_port(host))
}

/// Checks a `registry-mirrors` entry and returns it as the base URL to use:
/// `http://HOST[:PORT]` or `https://HOST[:PORT]`, no path, no trailing slash.
pub fn normalize_mirror(url: &str) -> Result<String, String> {
    let u = url.trim().trim_end_matches('/');
    let host = u.strip_prefix("http://").or_else(|| u.strip_prefix("https://"));
    match host {
        Some(h) if !h.is_empty() && !h.contains('/') && !h.contains('?') && !h.contains('@') => Ok(u.to_string()),
        Some(_) => Err(format!("invalid registry mirror {url}: a mirror is http(s)://HOST[:PORT], without a path")),
        None => Err(format!("invalid registry mirror {url}: it must start with http:// or https://")),
    }
}

/// Whether a pull that failed at a mirror goes on to the next endpoint (the next
/// mirror, then Docker Hub itself), as Docker's daemon does for `registry-mirrors`:
/// whatever the mirror answered (not found, denied, a bad blob) or could not answer
/// (refused connection). Only a local failure (the store, the disk) ends the pull.
pub fn mirror_falls_back(e: &RegistryError) -> bool {
    !matches!(e, RegistryError::Engine(_))
}

/// Which repositories each blob is known to be in, per registry, so a push can ask
/// the registry to mount a blob from a repository that has it instead of uploading
/// it again. Kept in `<root>/registry/sources.json`; losing it only costs uploads.
pub struct BlobSources;

/// Serialises read-modify-write of the sources file between threads.
static SOURCES_LOCK: Mutex<()> = Mutex::new(());

impl BlobSources {
    fn path(root: &Path) -> std::path::PathBuf {
        root.join("registry").join("sources.json")
    }

    /// Repositories (`host/repo`) holding `digest`.
    pub fn get(root: &Path, digest: &str) -> Vec<String> {
        let _g = SOURCES_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let map: BTreeMap<String, BTreeSet<String>> = crate::fsutil::read_json(&Self::path(root)).ok().flatten().unwrap_or_default();
        map.get(digest).map(|s| s.iter().cloned().collect()).unwrap_or_default()
    }

    /// Remembers that `digests` are in `host/repo`.
    pub fn add(root: &Path, host: &str, repo: &str, digests: &[String]) {
        let _g = SOURCES_LOCK.lock().unwrap_or_else(|p| p.into_inner());
        let path = Self::path(root);
        let mut map: BTreeMap<String, BTreeSet<String>> = crate::fsutil::read_json(&path).ok().flatten().unwrap_or_default();
        for d in digests {
            map.entry(d.clone()).or_default().insert(format!("{host}/{repo}"));
        }
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        // Best effort: the map is an optimisation, a failed write only costs uploads.
        if let Err(e) = crate::fsutil::write_json(&path, &map) {
            tracing::warn!("could not record blob sources: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_auth_header_decodes_base64url_json() {
        let json = r#"{"username":"ann","password":"s3cret?>","serveraddress":"localhost:5000"}"#;
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
        let c = Credentials::from_header(&url).unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("ann", "s3cret?>"));
        let std = base64::engine::general_purpose::STANDARD.encode(json);
        assert_eq!(Credentials::from_header(&std), Some(c));
        assert_eq!(Credentials::from_header("e30="), None, "{{}} is anonymous");
        assert_eq!(Credentials::from_header("not base64 at all!"), None);
    }

    #[test]
    fn loopback_and_insecure_hosts_allow_http() {
        for h in ["localhost:5000", "127.0.0.1", "127.3.4.5:80", "[::1]:5000", "::1", "LOCALHOST"] {
            assert!(allows_http(h, &[]), "{h}");
        }
        assert!(!allows_http("registry.example:5000", &[]));
        assert!(allows_http("registry.example:5000", &["registry.example".into()]));
        assert!(allows_http("10.0.0.2:5000", &["10.0.0.2:5000".into()]));
        assert!(!allows_http("10.0.0.2:5001", &["10.0.0.2:5000".into()]));
    }

    #[test]
    fn mirrors_are_base_urls_and_fall_back_on_misses() {
        assert_eq!(normalize_mirror("http://127.0.0.1:5000/").unwrap(), "http://127.0.0.1:5000");
        assert_eq!(normalize_mirror("https://mirror.example").unwrap(), "https://mirror.example");
        assert!(normalize_mirror("127.0.0.1:5000").is_err());
        assert!(normalize_mirror("http://mirror.example/v2/").is_err());
        assert!(normalize_mirror("http://").is_err());
        for e in [
            RegistryError::NotFound("manifest for busybox:latest not found: manifest unknown".into()),
            RegistryError::NotFound("name unknown: repository name not known to registry".into()),
            RegistryError::Transport("Get \"http://127.0.0.1:5000/v2/\": dial tcp 127.0.0.1:5000: connect: connection refused".into()),
            RegistryError::Unauthorized("pull access denied".into()),
            RegistryError::Denied("denied".into()),
            RegistryError::Protocol("500 Internal Server Error".into()),
            RegistryError::DigestMismatch { what: "blob".into(), expected: "a".into(), got: "b".into() },
        ] {
            assert!(mirror_falls_back(&e), "{e}");
        }
        assert!(!mirror_falls_back(&RegistryError::Engine(Error::Runtime("disk full".into()))));
    }

    #[test]
    fn docker_hub_names() {
        assert_eq!(endpoint_host("docker.io"), "registry-1.docker.io");
        assert_eq!(endpoint_host("localhost:5000"), "localhost:5000");
        assert_eq!(registry_of_server_address("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(registry_of_server_address("http://localhost:5000/"), "localhost:5000");
        assert_eq!(registry_of_server_address("127.0.0.1:5001"), "127.0.0.1:5001");
        assert_eq!(short_id("sha256:0123456789abcdef"), "0123456789ab");
    }
}
