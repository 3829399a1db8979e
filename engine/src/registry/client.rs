//! HTTP to one registry: scheme choice, the `/v2/` ping, Bearer and Basic auth, and
//! the registry's error bodies turned into [`RegistryError`]s.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use reqwest::blocking::{RequestBuilder, Response};
use reqwest::header::{HeaderMap, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};

use super::guard::Pinned;
use super::{allows_http, endpoint_host, Credentials, RResult, RegistryError};

/// Error bodies and token answers are small; anything larger is refused unread.
const MAX_SMALL_BODY: u64 = 1 << 20;

/// A connection to one registry with the auth for one scope already settled.
pub struct Client {
    http: reqwest::blocking::Client,
    /// `https://registry-1.docker.io` or `http://127.0.0.1:5000`.
    base: String,
    /// The registry's name as users write it (`docker.io`, `127.0.0.1:5000`).
    pub registry: String,
    /// The `Authorization` header value to send, once settled.
    auth: Option<String>,
    /// For a lab session: the addresses the registry was checked at, and the check
    /// every other URL of the exchange passes (see [`super::guard`]).
    pin: Option<Arc<Pinned>>,
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq)]
pub struct Challenge {
    /// `bearer` or `basic`, lower case.
    pub scheme: String,
    pub params: BTreeMap<String, String>,
}

/// Parses `Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="a:b:pull,push"`.
pub fn parse_challenge(h: &str) -> Option<Challenge> {
    let h = h.trim();
    let (scheme, rest) = match h.split_once(' ') {
        Some((s, r)) => (s, r),
        None => (h, ""),
    };
    if scheme.is_empty() {
        return None;
    }
    let mut params = BTreeMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=' && *c != ',')).collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.next_if_eq(&'=').is_some() {
            if chars.next_if_eq(&'"').is_some() {
                // Quoted: commas inside belong to the value; `\"` escapes a quote.
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => value.extend(chars.next()),
                        '"' => break,
                        c => value.push(c),
                    }
                }
            } else {
                value = std::iter::from_fn(|| chars.next_if(|c| *c != ',')).collect::<String>().trim().to_string();
            }
        }
        params.insert(key.trim().to_ascii_lowercase(), value);
    }
    Some(Challenge { scheme: scheme.to_ascii_lowercase(), params })
}

fn transport(registry: &str, e: reqwest::Error) -> RegistryError {
    let mut msg = format!("cannot reach registry {registry}: {e}");
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    RegistryError::Transport(msg)
}

/// A failed `/v2/` ping as Docker words it: `Get "https://registry-1.docker.io/v2/":
/// dial tcp: lookup registry-1.docker.io: …` or `…: connect: connection refused`.
fn ping_error(e: reqwest::Error) -> RegistryError {
    let url = e.url().map(|u| u.to_string()).unwrap_or_default();
    let host = e.url().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default();
    let mut causes = Vec::new();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        causes.push(s.to_string());
        src = s.source();
    }
    // The innermost cause, without Rust's " (os error N)", in Go's lower case.
    let inner = causes.last().cloned().unwrap_or_else(|| e.to_string());
    let inner = match inner.rfind(" (os error ") {
        Some(i) => inner[..i].to_string(),
        None => inner,
    };
    let inner = crate::error::go_case(&inner);
    let detail = if causes.iter().any(|c| c.contains("dns error")) {
        format!("dial tcp: lookup {host}: {inner}")
    } else if causes.iter().any(|c| c.contains("InvalidContentType")) {
        // What rustls says of a plain HTTP answer to its TLS hello: a registry that
        // is not an insecure one, spoken to over HTTPS, in Go's words.
        "http: server gave HTTP response to HTTPS client".to_string()
    } else if e.is_connect() {
        format!("dial tcp {}: connect: {inner}", e.url().map(|u| format!("{host}:{}", u.port_or_known_default().unwrap_or(0))).unwrap_or_default())
    } else if e.is_timeout() {
        format!("net/http: request canceled while waiting for connection: {inner}")
    } else {
        inner
    };
    RegistryError::Transport(format!("Get \"{url}\": {detail}"))
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

/// Reads a small body (errors, tokens) with a cap.
fn small_body(resp: Response) -> String {
    let mut s = String::new();
    let _ = resp.take(MAX_SMALL_BODY).read_to_string(&mut s);
    s
}

/// Turns a failed response into an error, with the registry's own error codes
/// (`{"errors":[{"code":"MANIFEST_UNKNOWN","message":…}]}`) when it sent them.
pub fn error_from(what: &str, resp: Response) -> RegistryError {
    let status = resp.status();
    let body = small_body(resp);
    let codes: Vec<String> = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("errors").and_then(|e| e.as_array()).cloned())
        .unwrap_or_default()
        .iter()
        .map(|e| {
            let code = e.get("code").and_then(|c| c.as_str()).unwrap_or("").to_ascii_lowercase().replace('_', " ");
            let msg = e.get("message").and_then(|c| c.as_str()).unwrap_or("");
            if msg.is_empty() || msg == code { code } else { format!("{code}: {msg}") }
        })
        .collect();
    let detail = if codes.is_empty() {
        let b = body.trim();
        if b.is_empty() || b.len() > 200 { status.to_string() } else { format!("{status}: {b}") }
    } else {
        codes.join("; ")
    };
    let msg = format!("{what}: {detail}");
    match status {
        StatusCode::UNAUTHORIZED => RegistryError::Unauthorized(msg),
        StatusCode::FORBIDDEN => RegistryError::Denied(msg),
        StatusCode::NOT_FOUND => RegistryError::NotFound(msg),
        _ => RegistryError::Protocol(msg),
    }
}

impl Client {
    /// Connects to `registry` (a name as in image references) and settles auth for
    /// `scope` (`repository:library/busybox:pull`; empty for a login check).
    ///
    /// HTTPS is tried first; plain HTTP only for loopback and `insecure` hosts, and only
    /// when HTTPS cannot connect, as Docker does.
    pub fn connect(registry: &str, insecure: &[String], creds: Option<&Credentials>, scope: &str) -> RResult<Client> {
        Client::connect_pinned(registry, insecure, creds, scope, None)
    }

    /// [`Client::connect`] for a lab session: the registry's host is reached at the
    /// addresses the guard checked, and nothing else the exchange leads to may be a
    /// private or local address.
    pub fn connect_pinned(registry: &str, insecure: &[String], creds: Option<&Credentials>, scope: &str, pin: Option<Pinned>) -> RResult<Client> {
        let host = endpoint_host(registry);
        let mut client = Client::new(registry, format!("https://{host}"), pin.map(Arc::new))?;
        let ping = match client.http.get(format!("{}/v2/", client.base)).send() {
            Ok(r) => r,
            Err(e) if allows_http(host, insecure) => {
                tracing::debug!("https to {host} failed ({e}), trying plain http");
                client.base = format!("http://{host}");
                client.http.get(format!("{}/v2/", client.base)).send().map_err(ping_error)?
            }
            Err(e) => return Err(ping_error(e)),
        };
        client.authenticate(ping, creds, scope)?;
        Ok(client)
    }

    /// Connects to a registry mirror given by its base URL (`http://127.0.0.1:5000`),
    /// with the scheme it names, and settles auth for `scope` as [`Client::connect`].
    pub fn connect_url(base: &str, creds: Option<&Credentials>, scope: &str) -> RResult<Client> {
        let base = base.trim_end_matches('/');
        let host = base.split_once("://").map_or(base, |(_, h)| h);
        let mut client = Client::new(host, base.to_string(), None)?;
        let ping = client.http.get(format!("{base}/v2/")).send().map_err(ping_error)?;
        client.authenticate(ping, creds, scope)?;
        Ok(client)
    }

    fn new(registry: &str, base: String, pin: Option<Arc<Pinned>>) -> RResult<Client> {
        let mut builder = reqwest::blocking::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            // No overall timeout: layers can take minutes. A dead peer still ends
            // the transfer through TCP keepalive.
            .timeout(None)
            .tcp_keepalive(Duration::from_secs(30))
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")));
        if let Some(p) = &pin {
            builder = p.apply(builder);
        }
        let http = builder.build().map_err(|e| transport(registry, e))?;
        Ok(Client { http, base, registry: registry.to_string(), auth: None, pin })
    }

    /// Answers the ping's challenge, if any.
    fn authenticate(&mut self, ping: Response, creds: Option<&Credentials>, scope: &str) -> RResult<()> {
        let creds = creds.filter(|c| !c.is_anonymous());
        if ping.status().is_success() {
            return Ok(());
        }
        if ping.status() != StatusCode::UNAUTHORIZED {
            return Err(error_from(&format!("{}/v2/ answered", self.base), ping));
        }
        let challenge = ping
            .headers()
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(parse_challenge)
            .find(|c| c.scheme == "bearer" || c.scheme == "basic")
            .ok_or_else(|| RegistryError::Protocol(format!("{}/v2/ wants authentication but sent no usable WWW-Authenticate challenge", self.base)))?;
        if let Some(c) = creds.filter(|c| !c.registrytoken.is_empty()) {
            self.auth = Some(format!("Bearer {}", c.registrytoken));
            return Ok(());
        }
        if challenge.scheme == "basic" {
            let c = creds.ok_or_else(|| RegistryError::Unauthorized(format!("{} requires authentication: run 'docker login {}'", self.registry, self.registry)))?;
            let header = basic(&c.username, &c.password);
            // Check now, so a wrong password is one clear error rather than a 401 later.
            let r = self.http.get(format!("{}/v2/", self.base)).header(AUTHORIZATION, &header).send().map_err(|e| transport(&self.registry, e))?;
            if r.status() == StatusCode::UNAUTHORIZED {
                return Err(RegistryError::Unauthorized(format!("login to {} failed: incorrect username or password", self.registry)));
            }
            if !r.status().is_success() {
                return Err(error_from(&format!("{}/v2/ answered", self.base), r));
            }
            self.auth = Some(header);
            return Ok(());
        }
        let token = self.fetch_token(&challenge, creds, scope)?;
        self.auth = Some(format!("Bearer {token}"));
        Ok(())
    }

    /// Docker Hub's token flow (distribution's docs, "Token Authentication"): GET the
    /// realm with service and scope, Basic credentials when we have them; an identity
    /// token is exchanged with the OAuth2 refresh-token grant instead.
    fn fetch_token(&self, ch: &Challenge, creds: Option<&Credentials>, scope: &str) -> RResult<String> {
        let realm = ch.params.get("realm").filter(|r| !r.is_empty()).ok_or_else(|| RegistryError::Protocol(format!("{}: Bearer challenge without a realm", self.registry)))?;
        let service = ch.params.get("service").cloned().unwrap_or_default();
        let req = match creds {
            Some(c) if !c.identitytoken.is_empty() => {
                let form = [("grant_type", "refresh_token"), ("refresh_token", c.identitytoken.as_str()), ("service", service.as_str()), ("scope", scope), ("client_id", "berth")];
                self.http.post(realm).form(&form)
            }
            _ => {
                let mut q = vec![("service", service.as_str())];
                if !scope.is_empty() {
                    q.push(("scope", scope));
                }
                if let Some(c) = creds {
                    q.push(("account", c.username.as_str()));
                }
                let mut r = self.http.get(realm).query(&q);
                if let Some(c) = creds {
                    r = r.header(AUTHORIZATION, basic(&c.username, &c.password));
                }
                r
            }
        };
        let resp = self.execute(req).map_err(|e| match e {
            RegistryError::Transport(m) => RegistryError::Transport(format!("token from {realm}: {m}")),
            e => e,
        })?;
        if resp.status() == StatusCode::UNAUTHORIZED || resp.status() == StatusCode::FORBIDDEN {
            let what = if creds.is_some() { "incorrect username or password" } else { "the registry requires 'docker login'" };
            return Err(RegistryError::Unauthorized(format!("login to {} failed: {what}", self.registry)));
        }
        if !resp.status().is_success() {
            return Err(error_from(&format!("token from {realm}"), resp));
        }
        let v: serde_json::Value = serde_json::from_str(&small_body(resp)).map_err(|e| RegistryError::Protocol(format!("token from {realm}: {e}")))?;
        v.get("token")
            .or_else(|| v.get("access_token"))
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .ok_or_else(|| RegistryError::Protocol(format!("token from {realm}: no token in the answer")))
    }

    /// The base URL, for resolving relative `Location` headers.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// A request to `path` (starting with `/v2/`) or to an absolute URL (upload
    /// locations), with our auth.
    pub fn request(&self, method: Method, path_or_url: &str) -> RequestBuilder {
        let url = if path_or_url.starts_with("http://") || path_or_url.starts_with("https://") {
            path_or_url.to_string()
        } else {
            format!("{}{}", self.base, path_or_url)
        };
        let mut r = self.http.request(method, url);
        if let Some(a) = &self.auth {
            r = r.header(AUTHORIZATION, a);
        }
        r
    }

    /// Sends and maps transport errors; the status is left to the caller.
    pub fn send(&self, req: RequestBuilder) -> RResult<Response> {
        self.execute(req)
    }

    /// Sends a request, after the lab guard's check of its URL when there is one:
    /// upload locations and token realms come from the registry, and an IP literal
    /// in them would never reach the guarded resolver.
    fn execute(&self, req: RequestBuilder) -> RResult<Response> {
        let req = req.build().map_err(|e| transport(&self.registry, e))?;
        if let Some(pin) = &self.pin {
            pin.check_url(req.url()).map_err(RegistryError::Denied)?;
        }
        self.http.execute(req).map_err(|e| transport(&self.registry, e))
    }

    /// Sends and fails on any non-2xx status, naming `what` in the error.
    pub fn send_ok(&self, req: RequestBuilder, what: &str) -> RResult<Response> {
        let r = self.send(req)?;
        if r.status().is_success() {
            Ok(r)
        } else {
            Err(error_from(what, r))
        }
    }

    /// Resolves an upload `Location` header (absolute, or relative to the registry).
    pub fn location(&self, headers: &HeaderMap) -> RResult<String> {
        let loc = headers
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| RegistryError::Protocol(format!("{}: upload answer without a Location", self.registry)))?;
        Ok(if loc.starts_with("http://") || loc.starts_with("https://") { loc.to_string() } else { format!("{}{loc}", self.base) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_hub_challenge() {
        let c = parse_challenge(r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push""#).unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://auth.docker.io/token");
        assert_eq!(c.params["service"], "registry.docker.io");
        assert_eq!(c.params["scope"], "repository:library/busybox:pull,push");
        let b = parse_challenge(r#"Basic realm="basic-realm""#).unwrap();
        assert_eq!((b.scheme.as_str(), b.params["realm"].as_str()), ("basic", "basic-realm"));
        assert!(parse_challenge("").is_none());
    }
}
