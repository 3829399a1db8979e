//! Instructors' logins: a random token in an HttpOnly, SameSite=Strict cookie, kept in
//! the database only as its hash (so a copy of the database logs nobody in), valid for
//! [`LOGIN_TTL`] and across server restarts.

use axum::http::{header, HeaderMap, HeaderValue};
use chrono::{Duration, Utc};
use rand::Rng;
use sha2::{Digest, Sha256};

use super::{check_instructor, ClassroomError};
use crate::lab::db::Db;

pub const COOKIE: &str = "berth_teach";
pub const LOGIN_TTL: Duration = Duration::hours(12);

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(format!("berth-teach\0{token}").as_bytes()))
}

/// Checks the password and makes a login token; None for a wrong name or password
/// (one answer for both, so names cannot be probed).
pub async fn login(db: &Db, name: &str, password: &str) -> Result<Option<String>, ClassroomError> {
    if !check_instructor(db, name, password).await? {
        return Ok(None);
    }
    let token = hex::encode(rand::thread_rng().gen::<[u8; 32]>());
    db.insert_login(&hash(&token), name.trim(), Utc::now() + LOGIN_TTL).await?;
    Ok(Some(token))
}

/// The token in a request's cookie, if any.
pub fn token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

/// The instructor logged in by a request's cookie.
pub async fn instructor(db: &Db, headers: &HeaderMap) -> Result<Option<String>, ClassroomError> {
    match token(headers) {
        Some(t) => Ok(db.login(&hash(&t)).await?),
        None => Ok(None),
    }
}

pub async fn logout(db: &Db, headers: &HeaderMap) -> Result<(), ClassroomError> {
    if let Some(t) = token(headers) {
        db.delete_login(&hash(&t)).await?;
    }
    Ok(())
}

/// The Set-Cookie for a login (None: clear it). `Secure` when the request came over
/// HTTPS (a TLS proxy in front says so with X-Forwarded-Proto); a browser would drop a
/// Secure cookie set over plain HTTP.
pub fn set_cookie(token: Option<&str>, headers: &HeaderMap) -> HeaderValue {
    let https = headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|p| p.eq_ignore_ascii_case("https"));
    let secure = if https { "; Secure" } else { "" };
    let v = match token {
        Some(t) => format!("{COOKIE}={t}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}", LOGIN_TTL.num_seconds()),
        None => format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    };
    HeaderValue::from_str(&v).expect("a cookie of hex and ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classroom::add_instructor;

    #[tokio::test]
    async fn a_login_is_a_cookie_that_names_its_instructor_until_logout() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("lab.db")).await.unwrap();
        add_instructor(&db, "kim", "correct horse").await.unwrap();
        assert_eq!(login(&db, "kim", "wrong horse!").await.unwrap(), None);
        assert_eq!(login(&db, "nobody", "correct horse").await.unwrap(), None);
        let t = login(&db, "kim", "correct horse").await.unwrap().unwrap();
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(&format!("lang=ko; {COOKIE}={t}")).unwrap());
        assert_eq!(instructor(&db, &h).await.unwrap().as_deref(), Some("kim"));
        let mut forged = HeaderMap::new();
        forged.insert(header::COOKIE, HeaderValue::from_str(&format!("{COOKIE}={}", "0".repeat(64))).unwrap());
        assert_eq!(instructor(&db, &forged).await.unwrap(), None);
        logout(&db, &h).await.unwrap();
        assert_eq!(instructor(&db, &h).await.unwrap(), None);
        let c = set_cookie(Some(&t), &HeaderMap::new());
        assert!(c.to_str().unwrap().contains("HttpOnly; SameSite=Strict"));
        assert!(!c.to_str().unwrap().contains("Secure"));
        let mut https = HeaderMap::new();
        https.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(set_cookie(Some(&t), &https).to_str().unwrap().ends_with("; Secure"));
    }
}
