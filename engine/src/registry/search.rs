//! `docker search`: Docker Hub's `/v1/search` API, on Docker Hub (index.docker.io)
//! or on the registry a term names (`localhost:5000/app`).
//!
//! Berth's own registry answers the same `/v1/search` shape; a lab session searches
//! it directly (the engine's `search_images`), to show only what the session may see.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::guard::Pinned;
use super::{allows_http, RResult, RegistryError};

/// One result, in Docker's field names.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SearchResult {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub star_count: u64,
    /// Docker Hub sends it; Berth's registry counts manifest pulls.
    #[serde(default)]
    pub pull_count: u64,
    #[serde(default)]
    pub is_official: bool,
    #[serde(default)]
    pub is_automated: bool,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    results: Vec<SearchResult>,
}

/// Splits a search term into (registry, term): `localhost:5000/app` → the registry at
/// localhost:5000, term `app`; `busybox` → Docker Hub.
pub fn split_term(term: &str) -> (Option<String>, String) {
    match term.split_once('/') {
        Some((first, rest)) if first.contains('.') || first.contains(':') || first == "localhost" => (Some(first.to_string()), rest.to_string()),
        _ => (None, term.to_string()),
    }
}

/// The host a search of `registry` (None: Docker Hub) asks.
pub fn search_host(registry: Option<&str>) -> &str {
    match registry {
        None | Some("docker.io") | Some("index.docker.io") => "index.docker.io",
        Some(h) => h,
    }
}

/// Searches `registry` (None: Docker Hub) for `term`; for a lab session, at the
/// addresses the guard checked (`pin`).
pub fn search(registry: Option<&str>, term: &str, limit: usize, insecure: &[String], pin: Option<Pinned>) -> RResult<Vec<SearchResult>> {
    let host = search_host(registry);
    let mut builder = reqwest::blocking::Client::builder().connect_timeout(Duration::from_secs(15)).timeout(Duration::from_secs(60));
    if let Some(p) = pin {
        builder = Arc::new(p).apply(builder);
    }
    let http = builder
        .build()
        .map_err(|e| RegistryError::Transport(format!("search: {e}")))?;
    let query = [("q", term.to_string()), ("n", limit.to_string())];
    let resp = match http.get(format!("https://{host}/v1/search")).query(&query).send() {
        Ok(r) => r,
        Err(_) if allows_http(host, insecure) => http
            .get(format!("http://{host}/v1/search"))
            .query(&query)
            .send()
            .map_err(|e| RegistryError::Transport(format!("cannot reach {host} to search: {e}")))?,
        Err(e) => return Err(RegistryError::Transport(format!("cannot reach {host} to search: {e}"))),
    };
    if !resp.status().is_success() {
        return Err(super::client::error_from(&format!("searching {host}"), resp));
    }
    let text = resp.text().map_err(|e| RegistryError::Transport(format!("search answer from {host}: {e}")))?;
    let answer: Answer = serde_json::from_str(&text).map_err(|e| RegistryError::Protocol(format!("search answer from {host}: {e}")))?;
    let mut results = answer.results;
    results.truncate(limit);
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_may_name_a_registry() {
        assert_eq!(split_term("busybox"), (None, "busybox".into()));
        assert_eq!(split_term("user/app"), (None, "user/app".into()));
        assert_eq!(split_term("localhost:5000/app"), (Some("localhost:5000".into()), "app".into()));
    }
}
