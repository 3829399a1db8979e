//! Who may use Berth's registry. Open when no users are configured (the default, on
//! loopback). With a users file (htpasswd lines `user:$2y$…`, bcrypt), every request
//! needs either HTTP Basic credentials or a Bearer token from `/v2/token`: Docker's
//! token flow, so `docker login` and `docker push` work as against Docker Hub.
//!
//! Tokens are `base64url(json claims) . base64url(hmac-sha256)`, signed with a secret
//! drawn at server start: they die with the server, and after [`TOKEN_TTL_SECS`].

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Lifetime of a token; clients ask again on a 401, as Docker does.
pub const TOKEN_TTL_SECS: u64 = 300;

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
}

pub struct Auth {
    file: PathBuf,
    secret: [u8; 32],
    /// The users file as last read, with its modification time: `registry-user add`
    /// on a running server takes effect without a restart.
    users: Mutex<(Option<SystemTime>, HashMap<String, String>)>,
    /// sha256 of `user:password` pairs that bcrypt already accepted, since bcrypt is
    /// slow on purpose and Basic auth sends the password with every request.
    verified: Mutex<HashSet<[u8; 32]>>,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Parses htpasswd lines (`user:hash`); blank lines and `#` comments are skipped.
fn parse_users(text: &str) -> HashMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(u, h)| (u.to_string(), h.to_string()))
        .collect()
}

impl Auth {
    pub fn new(file: &Path) -> anyhow::Result<Auth> {
        let auth = Auth {
            file: file.to_path_buf(),
            secret: rand::random(),
            users: Mutex::new((None, HashMap::new())),
            verified: Mutex::new(HashSet::new()),
        };
        if auth.users()?.is_empty() {
            bail!("{} has no users: add one with `berth registry-user add --file {} NAME`", file.display(), file.display());
        }
        Ok(auth)
    }

    fn users(&self) -> anyhow::Result<HashMap<String, String>> {
        let mtime = std::fs::metadata(&self.file).and_then(|m| m.modified()).with_context(|| format!("read {}", self.file.display()))?;
        let mut g = self.users.lock().unwrap_or_else(|p| p.into_inner());
        if g.0 != Some(mtime) {
            let text = std::fs::read_to_string(&self.file).with_context(|| format!("read {}", self.file.display()))?;
            *g = (Some(mtime), parse_users(&text));
        }
        Ok(g.1.clone())
    }

    /// Checks a user's password (blocking: bcrypt).
    pub fn check_password(&self, user: &str, password: &str) -> bool {
        let key: [u8; 32] = Sha256::digest(format!("{user}:{password}")).into();
        if self.verified.lock().unwrap_or_else(|p| p.into_inner()).contains(&key) {
            // Still a user? (A removed user loses access.)
            return self.users().map(|u| u.contains_key(user)).unwrap_or(false);
        }
        let Ok(users) = self.users() else { return false };
        let ok = users.get(user).is_some_and(|h| bcrypt::verify(password, h).unwrap_or(false));
        if ok {
            self.verified.lock().unwrap_or_else(|p| p.into_inner()).insert(key);
        }
        ok
    }

    /// Checks an `Authorization: Basic …` value; returns the user.
    pub fn check_basic(&self, value: &str) -> Option<String> {
        let (user, pass) = decode_basic(value)?;
        self.check_password(&user, &pass).then_some(user)
    }

    pub fn issue_token(&self, user: &str) -> String {
        let claims = serde_json::to_vec(&Claims { sub: user.to_string(), exp: now() + TOKEN_TTL_SECS }).unwrap_or_default();
        let body = URL_SAFE_NO_PAD.encode(claims);
        format!("{body}.{}", URL_SAFE_NO_PAD.encode(self.sign(body.as_bytes())))
    }

    fn sign(&self, body: &[u8]) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.secret).expect("hmac takes any key length");
        mac.update(body);
        mac.finalize().into_bytes().to_vec()
    }

    /// Checks a Bearer token's signature and age; returns the user.
    pub fn check_token(&self, token: &str) -> Option<String> {
        let (body, sig) = token.split_once('.')?;
        let sig = URL_SAFE_NO_PAD.decode(sig).ok()?;
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.secret).ok()?;
        mac.update(body.as_bytes());
        // verify_slice compares in constant time.
        mac.verify_slice(&sig).ok()?;
        let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body).ok()?).ok()?;
        (claims.exp > now()).then_some(claims.sub)
    }
}

/// Decodes `Basic base64(user:password)`.
pub fn decode_basic(value: &str) -> Option<(String, String)> {
    let b64 = value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic "))?;
    let text = String::from_utf8(STANDARD.decode(b64.trim()).ok()?).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// `berth registry-user add`: adds or replaces a user in an htpasswd file, atomically.
pub fn add_user(file: &Path, name: &str, password: &str) -> anyhow::Result<()> {
    if name.is_empty() || name.contains(':') || name.chars().any(char::is_whitespace) {
        bail!("invalid user name {name:?}: no ':' or spaces");
    }
    if password.is_empty() {
        bail!("empty password");
    }
    // htpasswd's `$2y$` prefix, which Docker's registry and Apache read too.
    let hash = bcrypt::hash_with_result(password, bcrypt::DEFAULT_COST)
        .context("hash the password")?
        .format_for_version(bcrypt::Version::TwoY);
    let old = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("read {}", file.display())),
    };
    let mut out: String = old
        .lines()
        .filter(|l| l.split_once(':').map(|(u, _)| u) != Some(name))
        .map(|l| format!("{l}\n"))
        .collect();
    out.push_str(&format!("{name}:{hash}\n"));
    let path = if file.parent().is_some_and(|p| p.as_os_str().is_empty()) { Path::new(".").join(file) } else { file.to_path_buf() };
    berth_engine::fsutil::write_atomic(&path, out.as_bytes()).with_context(|| format!("write {}", file.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_tokens() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("users");
        add_user(&f, "alice", "s3cret").unwrap();
        add_user(&f, "bob", "pw").unwrap();
        add_user(&f, "alice", "new").unwrap();
        let text = std::fs::read_to_string(&f).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains("alice:$2y$"), "{text}");
        let a = Auth::new(&f).unwrap();
        assert!(a.check_password("alice", "new"));
        assert!(!a.check_password("alice", "s3cret"));
        assert!(!a.check_password("carol", "new"));
        let basic = format!("Basic {}", STANDARD.encode("bob:pw"));
        assert_eq!(a.check_basic(&basic).as_deref(), Some("bob"));
        let tok = a.issue_token("bob");
        assert_eq!(a.check_token(&tok).as_deref(), Some("bob"));
        let forged = format!("{}.{}", URL_SAFE_NO_PAD.encode(br#"{"sub":"x","exp":99999999999}"#), tok.split_once('.').unwrap().1);
        assert!(a.check_token(&forged).is_none());
        // Another server (another secret) does not accept it.
        assert!(Auth::new(&f).unwrap().check_token(&tok).is_none());
    }
}
