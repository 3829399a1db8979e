//! Pull-through cache (`berth serve --mirror URL`): what the registry does not have it
//! fetches from the upstream, verifies, stores, then serves, so a class downloads each
//! layer from the internet once. Anonymous Bearer tokens (Docker Hub's flow) are
//! fetched when the upstream asks for them.

use std::collections::HashMap;
use std::sync::Mutex;

use anyhow::{bail, Context};
use berth_engine::distribution::{
    MEDIA_TYPE_DOCKER_LIST, MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_OCI_MANIFEST,
};
use reqwest::{header, StatusCode};

pub struct Mirror {
    base: String,
    client: reqwest::Client,
    /// Bearer tokens by scope, reused until the upstream refuses them.
    tokens: Mutex<HashMap<String, String>>,
}

/// The parameters of a `WWW-Authenticate: Bearer realm=…,service=…` challenge.
fn parse_challenge(v: &str) -> Option<HashMap<String, String>> {
    let rest = v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer "))?;
    let mut out = HashMap::new();
    // key="value" pairs; values may hold commas (scopes), so split on `",`.
    for part in rest.split("\",") {
        let (k, val) = part.split_once('=')?;
        out.insert(k.trim().to_string(), val.trim().trim_matches('"').to_string());
    }
    Some(out)
}

impl Mirror {
    pub fn new(url: &str) -> anyhow::Result<Mirror> {
        let base = url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!("--mirror {url}: use http://HOST[:PORT] or https://HOST");
        }
        let client = reqwest::Client::builder()
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(15))
            .build()
            .context("build the mirror's HTTP client")?;
        Ok(Mirror { base, client, tokens: Mutex::new(HashMap::new()) })
    }

    /// GET with the cached token for `name`; on a Bearer challenge fetches a token
    /// anonymously and tries once more.
    async fn get(&self, name: &str, path: &str, accept: Option<&str>) -> anyhow::Result<reqwest::Response> {
        let url = format!("{}/v2/{name}/{path}", self.base);
        let scope = format!("repository:{name}:pull");
        let send = |token: Option<String>| {
            let mut req = self.client.get(&url);
            if let Some(a) = accept {
                req = req.header(header::ACCEPT, a);
            }
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            req.send()
        };
        let cached = self.tokens.lock().unwrap_or_else(|p| p.into_inner()).get(&scope).cloned();
        let resp = send(cached).await.with_context(|| format!("GET {url}"))?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let challenge = resp
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_challenge)
            .with_context(|| format!("{url}: 401 without a Bearer challenge"))?;
        let realm = challenge.get("realm").context("Bearer challenge without a realm")?;
        let mut query = vec![("scope", scope.clone())];
        if let Some(s) = challenge.get("service") {
            query.push(("service", s.clone()));
        }
        let tok = self
            .client
            .get(realm)
            .query(&query)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .with_context(|| format!("token from {realm}"))?
            .bytes()
            .await
            .context("token answer")?;
        let tok: serde_json::Value = serde_json::from_slice(&tok).context("token answer")?;
        let token = tok["token"].as_str().or(tok["access_token"].as_str()).context("token answer without a token")?.to_string();
        self.tokens.lock().unwrap_or_else(|p| p.into_inner()).insert(scope, token.clone());
        send(Some(token)).await.with_context(|| format!("GET {url}"))
    }

    /// A manifest from the upstream: (bytes, content type), or `None` when it has none.
    pub async fn manifest(&self, name: &str, reference: &str) -> anyhow::Result<Option<(Vec<u8>, Option<String>)>> {
        let accept = [MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_DOCKER_LIST, MEDIA_TYPE_OCI_MANIFEST, MEDIA_TYPE_DOCKER_MANIFEST].join(", ");
        let resp = self.get(name, &format!("manifests/{reference}"), Some(&accept)).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let resp = resp.error_for_status().context("upstream manifest")?;
        let ct = resp.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
        let bytes = resp.bytes().await.context("read upstream manifest")?;
        if bytes.len() > berth_engine::distribution::MAX_MANIFEST_SIZE {
            bail!("upstream manifest too large");
        }
        Ok(Some((bytes.to_vec(), ct)))
    }

    /// A blob's response from the upstream (the caller streams and verifies it), or
    /// `None` when the upstream does not have it.
    pub async fn blob(&self, name: &str, digest: &str) -> anyhow::Result<Option<reqwest::Response>> {
        let resp = self.get(name, &format!("blobs/{digest}"), None).await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        Ok(Some(resp.error_for_status().context("upstream blob")?))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn challenges() {
        let c = super::parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push""#,
        )
        .unwrap();
        assert_eq!(c["realm"], "https://auth.docker.io/token");
        assert_eq!(c["service"], "registry.docker.io");
        assert_eq!(c["scope"], "repository:library/busybox:pull,push");
    }
}
