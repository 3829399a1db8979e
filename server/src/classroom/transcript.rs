//! Hand-ins: a student's transcript of the engine events that passed each step's check,
//! signed by the server with Ed25519, so grading is a file anyone can check offline
//! (`berth transcript verify FILE`), not trust in the server.
//!
//! The format is text, one record per line, values as JSON (so no value can break a
//! line), the signature last:
//!
//! ```text
//! # Berth hand-in: ...
//! berth-transcript: 1
//! server-key: <the public key, base64>
//! class: "Docker 101"
//! class-id: "0a1b2c3d4e5f6a7b"
//! student: "Min Ji"
//! exported: "2026-12-01T03:00:00+00:00"
//! step: {"lesson":"lifecycle","step":"search","done_at":"...","attempts":1}
//! event: {"at":"...","event":{"kind":"request","action":"search","id":"","attributes":{"term":"busybox"}}}
//! signature: <Ed25519 over every byte before this line, base64>
//! ```
//!
//! The key is made once, at the first export, as `<root>/classroom.key` (the 32-byte
//! secret, mode 0600), or, for a hub (which has no state root of its own), in the
//! database ([`ServerKey::in_database`]). A file signed by another key verifies as
//! such; `verify` with the server's root or database (or its public key) also checks
//! whose key it is.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::lab::db::{ClassRow, DoneStep};

/// The server's signing key, in its state root.
pub const KEY_FILE: &str = "classroom.key";
const VERSION: &str = "1";
const SIGNATURE: &str = "signature: ";

#[derive(Debug, thiserror::Error)]
pub enum TranscriptError {
    #[error("the server's signing key {path}: {source}")]
    Key { path: String, source: std::io::Error },
    #[error("the server's signing key {0} is not a 32-byte Ed25519 key")]
    BadKeyFile(String),
    #[error("not a Berth transcript: {0}")]
    Malformed(String),
    #[error("the signature does not match: the transcript was changed after it was signed (or signed by another key)")]
    BadSignature,
    #[error("signed by key {found}, not by this server's key {expected}")]
    OtherKey { expected: String, found: String },
    #[error("the signing key in the database: {0}")]
    Db(#[from] crate::lab::db::DbError),
}

/// The name of the transcripts' key in the database.
const DB_KEY: &str = "transcripts";

/// The server's signing key.
pub struct ServerKey(SigningKey);

impl ServerKey {
    /// The key under `root`, made (once) if there is none yet.
    pub fn load_or_create(root: &Path) -> Result<ServerKey, TranscriptError> {
        let path = root.join(KEY_FILE);
        let err = |source| TranscriptError::Key { path: path.display().to_string(), source };
        match std::fs::read(&path) {
            Ok(bytes) => {
                let seed: [u8; 32] = bytes.try_into().map_err(|_| TranscriptError::BadKeyFile(path.display().to_string()))?;
                Ok(ServerKey(SigningKey::from_bytes(&seed)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let seed: [u8; 32] = rand::random();
                // create_new: two exports at once must not make two keys.
                match std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path) {
                    Ok(mut f) => {
                        f.write_all(&seed).and_then(|_| f.sync_all()).map_err(err)?;
                        Ok(ServerKey(SigningKey::from_bytes(&seed)))
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => ServerKey::load_or_create(root),
                    Err(e) => Err(err(e)),
                }
            }
            Err(e) => Err(err(e)),
        }
    }

    /// The key kept in the database, made (once, whichever server is first) if there is
    /// none yet.
    pub async fn in_database(db: &crate::lab::db::Db) -> Result<ServerKey, TranscriptError> {
        let seed: [u8; 32] = rand::random();
        let stored = db.signing_key_or(DB_KEY, &b64(&seed)).await?;
        ServerKey::from_b64(&stored)
    }

    /// The key kept in the database, if one was made.
    pub async fn stored_in_database(db: &crate::lab::db::Db) -> Result<Option<ServerKey>, TranscriptError> {
        db.signing_key(DB_KEY).await?.map(|s| ServerKey::from_b64(&s)).transpose()
    }

    fn from_b64(s: &str) -> Result<ServerKey, TranscriptError> {
        let seed: [u8; 32] = base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| TranscriptError::BadKeyFile("(the database's)".into()))?;
        Ok(ServerKey(SigningKey::from_bytes(&seed)))
    }

    pub fn public(&self) -> VerifyingKey {
        self.0.verifying_key()
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A short, stable name of a public key to compare by eye.
pub fn fingerprint(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

fn json(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// The signed transcript of `student`'s done steps in `class`.
pub fn write(key: &ServerKey, class: &ClassRow, student: &str, steps: &[DoneStep], exported: DateTime<Utc>) -> String {
    let mut out = String::new();
    out.push_str("# Berth hand-in: the engine events that passed each step's check, signed by the server.\n");
    out.push_str("# Check it with: berth transcript verify FILE (any change to any line fails).\n");
    out.push_str(&format!("berth-transcript: {VERSION}\n"));
    out.push_str(&format!("server-key: {}\n", b64(key.public().as_bytes())));
    out.push_str(&format!("class: {}\n", json(&class.name)));
    out.push_str(&format!("class-id: {}\n", json(&class.id)));
    out.push_str(&format!("student: {}\n", json(student)));
    out.push_str(&format!("exported: {}\n", json(&exported.to_rfc3339())));
    for s in steps {
        let step = serde_json::json!({ "lesson": s.lesson, "step": s.step, "done_at": s.done_at.to_rfc3339(), "attempts": s.attempts });
        out.push_str(&format!("step: {step}\n"));
        // Stored as a JSON array by the lab; each element on a line of its own.
        let events: Vec<serde_json::Value> = s.events.as_deref().and_then(|e| serde_json::from_str(e).ok()).unwrap_or_default();
        for e in events {
            out.push_str(&format!("event: {e}\n"));
        }
    }
    let signature = key.0.sign(out.as_bytes());
    out.push_str(&format!("{SIGNATURE}{}\n", b64(&signature.to_bytes())));
    out
}

/// What a verified transcript says.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub key: String,
    pub class: String,
    pub student: String,
    pub steps: Vec<(String, String)>,
}

/// Checks a transcript's signature (and, given `expected`, that the server's key made it).
pub fn verify(text: &str, expected: Option<&VerifyingKey>) -> Result<Verified, TranscriptError> {
    let malformed = |why: &str| TranscriptError::Malformed(why.to_string());
    let body_end = text.trim_end_matches('\n').rfind('\n').map_or(0, |i| i + 1);
    let (body, last) = text.split_at(body_end);
    let sig = last.trim_end_matches('\n').strip_prefix(SIGNATURE).ok_or_else(|| malformed("the last line is not its signature"))?;
    let sig = base64::engine::general_purpose::STANDARD.decode(sig).map_err(|_| malformed("the signature is not base64"))?;
    let sig = Signature::from_slice(&sig).map_err(|_| malformed("the signature is not an Ed25519 signature"))?;
    let mut key = None;
    let (mut class, mut student, mut version, mut steps) = (None, None, None, Vec::new());
    for line in body.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (field, value) = line.split_once(": ").ok_or_else(|| malformed(&format!("a line without a field: {line:?}")))?;
        let text_value = || serde_json::from_str::<String>(value).map_err(|_| malformed(&format!("{field} is not a JSON string")));
        match field {
            "berth-transcript" => version = Some(value.to_string()),
            "server-key" => {
                if key.is_some() {
                    return Err(malformed("two server keys"));
                }
                let bytes: [u8; 32] = base64::engine::general_purpose::STANDARD
                    .decode(value.trim())
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| malformed("the server key is not a 32-byte base64 key"))?;
                key = Some(VerifyingKey::from_bytes(&bytes).map_err(|_| malformed("the server key is not an Ed25519 key"))?);
            }
            "class" => class = Some(text_value()?),
            "student" => student = Some(text_value()?),
            "step" => {
                let v: serde_json::Value = serde_json::from_str(value).map_err(|_| malformed("a step is not JSON"))?;
                steps.push((v["lesson"].as_str().unwrap_or_default().to_string(), v["step"].as_str().unwrap_or_default().to_string()));
            }
            "class-id" | "exported" | "event" => {}
            other => return Err(malformed(&format!("unknown field {other:?}"))),
        }
    }
    if version.as_deref() != Some(VERSION) {
        return Err(malformed("no `berth-transcript: 1` line"));
    }
    let key = key.ok_or_else(|| malformed("no server key"))?;
    key.verify(body.as_bytes(), &sig).map_err(|_| TranscriptError::BadSignature)?;
    if let Some(e) = expected {
        if e != &key {
            return Err(TranscriptError::OtherKey { expected: fingerprint(e), found: fingerprint(&key) });
        }
    }
    Ok(Verified { key: fingerprint(&key), class: class.unwrap_or_default(), student: student.unwrap_or_default(), steps })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(root: &Path) -> (ServerKey, String) {
        let key = ServerKey::load_or_create(root).unwrap();
        let now = Utc::now();
        let class = ClassRow { id: "c1".into(), name: "도커 입문".into(), code: "ABCDEFGH".into(), lessons: vec!["lifecycle".into()], opens: None, closes: None, created: now, limits: Default::default() };
        let events = r#"[{"at":"2026-12-01T00:00:00+00:00","event":{"kind":"request","action":"search","id":"","attributes":{"term":"busy\nbox"}}}]"#;
        let steps = vec![
            DoneStep { lesson: "lifecycle".into(), step: "search".into(), done_at: now, attempts: Some(1), events: Some(events.into()) },
            DoneStep { lesson: "lifecycle".into(), step: "pull".into(), done_at: now, attempts: None, events: None },
        ];
        let text = write(&key, &class, "Min \"MJ\" Ji", &steps, now);
        (key, text)
    }

    #[test]
    fn a_transcript_verifies_and_any_change_to_any_line_breaks_it() {
        let dir = tempfile::tempdir().unwrap();
        let (key, text) = sample(dir.path());
        let v = verify(&text, Some(&key.public())).unwrap();
        assert_eq!((v.class.as_str(), v.student.as_str()), ("도커 입문", "Min \"MJ\" Ji"));
        assert_eq!(v.steps, vec![("lifecycle".to_string(), "search".to_string()), ("lifecycle".to_string(), "pull".to_string())]);
        assert_eq!(text.lines().filter(|l| l.starts_with("event: ")).count(), 1, "{text}");
        // The same key on the next load.
        assert_eq!(ServerKey::load_or_create(dir.path()).unwrap().public(), key.public());

        let lines: Vec<&str> = text.lines().collect();
        for i in 0..lines.len() {
            let mut changed: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
            changed[i] = if changed[i].contains('1') { changed[i].replacen('1', "2", 1) } else { format!("{} ", changed[i]) };
            let t = changed.join("\n") + "\n";
            assert!(verify(&t, None).is_err(), "line {i} changed and still verified: {}", changed[i]);
        }
        let mut dropped: Vec<&str> = lines.clone();
        dropped.remove(8);
        assert!(verify(&(dropped.join("\n") + "\n"), None).is_err(), "a line removed");
        assert!(verify("", None).is_err());
        assert!(verify("signature: AAAA\n", None).is_err());

        // Re-signed with another key: valid as such, but not this server's.
        let other = tempfile::tempdir().unwrap();
        let (_, foreign) = sample(other.path());
        assert!(verify(&foreign, None).is_ok());
        assert!(matches!(verify(&foreign, Some(&key.public())), Err(TranscriptError::OtherKey { .. })));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        /// Any text is refused cleanly (never a panic), and no single changed byte of a
        /// real transcript verifies.
        #[test]
        fn any_input_verifies_or_fails_cleanly(junk in ".{0,400}", at in 0usize..2000, byte in 0u8..=255) {
            let _ = verify(&junk, None);
            let dir = tempfile::tempdir().unwrap();
            let (_, text) = sample(dir.path());
            let mut bytes = text.into_bytes();
            let i = at % bytes.len();
            if bytes[i] != byte {
                bytes[i] = byte;
                let changed = String::from_utf8_lossy(&bytes).to_string();
                proptest::prop_assert!(verify(&changed, None).is_err(), "byte {} changed and still verified", i);
            }
        }
    }
}
