//! The classroom: instructors and the classes they run (`berth instructor add`,
//! `berth class create|list`, the `/teach` pages), students joining a class with its
//! code ([`members`]), the teacher's live dashboard ([`dashboard`]) and the HTTP side
//! of all of it ([`web`]).

pub mod dashboard;
pub mod join_code;
pub mod labs;
pub mod members;
pub mod rate_limit;
pub mod room;
pub mod roster;
pub mod teach;
pub mod transcript;
pub mod web;

use berth_lessons::api::{ClassInfo, ClassLimits, ErrorKind};
use chrono::{DateTime, NaiveDateTime, Utc};

use crate::lab::db::{ClassRow, Db, DbError};
use join_code::JoinCode;

/// Shortest instructor password accepted.
pub const MIN_PASSWORD: usize = 8;
const MAX_NAME: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum ClassroomError {
    #[error("{what} must not be empty")]
    Empty { what: &'static str },
    #[error("{what} is too long ({len} characters; at most {MAX_NAME})")]
    TooLong { what: &'static str, len: usize },
    #[error("{what} may not contain control characters")]
    Control { what: &'static str },
    #[error("the password is too short: at least {MIN_PASSWORD} characters")]
    ShortPassword,
    #[error("no lesson {0:?}: give lesson numbers (1, 2, ...) or ids ({1})")]
    UnknownLesson(String, String),
    #[error("lesson {0:?} is listed twice")]
    RepeatedLesson(String),
    #[error("{0:?} is not a time: use 2026-12-01T09:00+09:00, or 2026-12-01T09:00 for UTC")]
    BadTime(String),
    #[error("the class closes ({closes}) before it opens ({opens})")]
    Window { opens: DateTime<Utc>, closes: DateTime<Utc> },
    #[error("no class has this join code")]
    UnknownCode,
    #[error("the class opens at {opens}")]
    NotOpen { opens: DateTime<Utc> },
    #[error("the class closed at {closes}; only its students may come back")]
    Closed { closes: DateTime<Utc> },
    #[error("someone in this class is already called {0:?}: if it is you, give your PIN")]
    NameTaken(String),
    #[error("wrong PIN for this name")]
    WrongPin,
    #[error("too many wrong PINs for this name: try again after {until}")]
    Locked { until: DateTime<Utc> },
    #[error("this rejoin link is not valid for the class")]
    BadToken,
    #[error("a bad limit: {0}")]
    BadLimit(String),
    #[error("password hash: {0}")]
    Hash(#[from] bcrypt::BcryptError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl ClassroomError {
    /// What a page shows for it (in its own words and language).
    pub fn kind(&self) -> Option<ErrorKind> {
        use ClassroomError::*;
        Some(match self {
            Empty { .. } => ErrorKind::NameEmpty,
            TooLong { .. } => ErrorKind::NameTooLong,
            Control { .. } => ErrorKind::NameInvalid,
            UnknownCode => ErrorKind::UnknownCode,
            NotOpen { .. } => ErrorKind::NotOpen,
            Closed { .. } => ErrorKind::Closed,
            NameTaken(_) => ErrorKind::NameTaken,
            WrongPin => ErrorKind::WrongPin,
            Locked { .. } => ErrorKind::RateLimited,
            BadToken => ErrorKind::BadToken,
            ShortPassword | UnknownLesson(..) | RepeatedLesson(_) | BadTime(_) | Window { .. } | BadLimit(_) => ErrorKind::BadClass,
            Hash(_) | Db(_) => return None,
        })
    }

    /// Whether it is the caller's mistake (an HTTP 4xx) rather than the server's.
    pub fn is_user_error(&self) -> bool {
        !matches!(self, ClassroomError::Hash(_) | ClassroomError::Db(_))
    }

    /// Whether it counts as a guess against the failure rate limit.
    pub fn is_guess(&self) -> bool {
        matches!(self, ClassroomError::UnknownCode | ClassroomError::WrongPin | ClassroomError::BadToken)
    }
}

/// A stored message as pages see it.
pub fn message(m: &crate::lab::db::MessageRow) -> berth_lessons::api::ClassMessage {
    use berth_lessons::api::MessageKind;
    berth_lessons::api::ClassMessage {
        id: m.id,
        at: m.at.to_rfc3339(),
        from: m.sender.clone(),
        to: m.recipient.clone(),
        kind: match m.kind.as_str() {
            "reset" => MessageKind::Reset,
            "ended" => MessageKind::Ended,
            _ => MessageKind::Text,
        },
        text: m.text.clone(),
    }
}

/// What pages and the dashboard show of a class (`with_id` for instructors only).
pub fn class_info(c: &ClassRow, now: DateTime<Utc>, with_id: bool) -> ClassInfo {
    let code = JoinCode::from_stored(&c.code);
    ClassInfo {
        id: with_id.then(|| c.id.clone()),
        name: c.name.clone(),
        join_path: format!("/join/{code}"),
        code: code.to_string(),
        lessons: c.lessons.clone(),
        opens: c.opens.map(|t| t.to_rfc3339()),
        closes: c.closes.map(|t| t.to_rfc3339()),
        state: members::state(c, now),
    }
}

/// A message or note as typed: trimmed, at most `max` characters, no control
/// characters but newlines and tabs; empty only if `may_be_empty`.
pub fn check_text(text: &str, max: usize, may_be_empty: bool) -> Result<String, String> {
    let t = text.trim();
    let len = t.chars().count();
    if len == 0 && !may_be_empty {
        return Err("the message is empty".into());
    }
    if len > max {
        return Err(format!("the message is too long ({len} characters; at most {max})"));
    }
    if t.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err("the message may not contain control characters".into());
    }
    Ok(t.to_string())
}

/// A name as typed: trimmed, not empty, not too long, printable.
fn check_name(what: &'static str, name: &str) -> Result<String, ClassroomError> {
    let name = name.trim();
    let len = name.chars().count();
    if len == 0 {
        return Err(ClassroomError::Empty { what });
    }
    if len > MAX_NAME {
        return Err(ClassroomError::TooLong { what, len });
    }
    if name.chars().any(char::is_control) {
        return Err(ClassroomError::Control { what });
    }
    Ok(name.to_string())
}

/// Adds an instructor (or sets a new password): bcrypt at the library's default cost.
/// Returns true if the instructor is new.
pub async fn add_instructor(db: &Db, name: &str, password: &str) -> Result<bool, ClassroomError> {
    let name = check_name("the instructor's name", name)?;
    if password.chars().count() < MIN_PASSWORD {
        return Err(ClassroomError::ShortPassword);
    }
    let hash = bcrypt::hash(password, bcrypt::DEFAULT_COST)?;
    Ok(db.put_instructor(&name, &hash).await?)
}

/// Whether `password` is the instructor's.
pub async fn check_instructor(db: &Db, name: &str, password: &str) -> Result<bool, ClassroomError> {
    match db.instructor_hash(name.trim()).await? {
        Some(hash) => Ok(bcrypt::verify(password, &hash)?),
        None => Ok(false),
    }
}

/// `1,2,5` (positions in the lesson list) or lesson ids, in the class's order; empty:
/// every lesson.
pub fn parse_lessons(list: &str, catalog: &[berth_lessons::Lesson]) -> Result<Vec<String>, ClassroomError> {
    let mut out: Vec<String> = Vec::new();
    for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let found = catalog.iter().find(|l| l.id == item || item.parse::<u32>().is_ok_and(|n| n == l.order));
        let Some(lesson) = found else {
            let known = catalog.iter().map(|l| format!("{} {}", l.order, l.id)).collect::<Vec<_>>().join(", ");
            return Err(ClassroomError::UnknownLesson(item.to_string(), known));
        };
        if out.contains(&lesson.id) {
            return Err(ClassroomError::RepeatedLesson(item.to_string()));
        }
        out.push(lesson.id.clone());
    }
    if out.is_empty() {
        out = catalog.iter().map(|l| l.id.clone()).collect();
    }
    Ok(out)
}

/// RFC 3339 (seconds optional), or `YYYY-MM-DDTHH:MM[:SS]` (also with a space) taken
/// as UTC.
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, ClassroomError> {
    let s = s.trim();
    if let Some(t) = DateTime::parse_from_rfc3339(s).ok().or_else(|| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M%:z").ok()) {
        return Ok(t.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .map(|t| t.and_utc())
        .ok_or_else(|| ClassroomError::BadTime(s.to_string()))
}

/// What a teacher asks for when making a class.
#[derive(Debug, Clone, Default)]
pub struct NewClass {
    pub name: String,
    pub lessons: Vec<String>,
    pub opens: Option<DateTime<Utc>>,
    pub closes: Option<DateTime<Utc>>,
    pub limits: ClassLimits,
}

/// Checks a class's lab limits: each set one within what a lab can work with.
pub fn check_limits(l: &ClassLimits) -> Result<(), ClassroomError> {
    const MIB: i64 = 1 << 20;
    let bad = |what: &str, why: &str| Err(ClassroomError::BadLimit(format!("{what}: {why}")));
    if let Some(c) = l.session_cpus {
        if !(c > 0.0 && c <= 256.0) {
            return bad("CPUs per lab", "more than 0, at most 256");
        }
    }
    if l.session_memory.is_some_and(|m| m < 64 * MIB) {
        return bad("memory per lab", "at least 64m");
    }
    if l.session_pids.is_some_and(|p| !(16..=1 << 20).contains(&p)) {
        return bad("processes per lab", "16 or more");
    }
    if l.disk.is_some_and(|d| d < 64 * MIB) {
        return bad("disk per lab", "at least 64m");
    }
    if l.containers.is_some_and(|c| !(1..=1000).contains(&c)) {
        return bad("containers per lab", "1 to 1000");
    }
    Ok(())
}

/// Stores a class with a fresh join code (another one if the first is taken).
pub async fn create_class(db: &Db, new: NewClass) -> Result<(ClassRow, JoinCode), ClassroomError> {
    let name = check_name("the class's name", &new.name)?;
    check_limits(&new.limits)?;
    if let (Some(opens), Some(closes)) = (new.opens, new.closes) {
        if closes <= opens {
            return Err(ClassroomError::Window { opens, closes });
        }
    }
    let mut tries = 0;
    loop {
        let code = JoinCode::random();
        let row = ClassRow {
            id: hex::encode(rand::random::<[u8; 8]>()),
            name: name.clone(),
            code: code.as_str().to_string(),
            lessons: new.lessons.clone(),
            opens: new.opens,
            closes: new.closes,
            created: Utc::now(),
            limits: new.limits.clone(),
        };
        match db.insert_class(&row).await {
            Ok(()) => return Ok((row, code)),
            // 2^39 codes: a clash is rare, two in a row rarer still.
            Err(e) if e.is_duplicate() && tries < 5 => tries += 1,
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn instructors_and_classes_are_kept_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("lab.db")).await.unwrap();
        assert!(add_instructor(&db, " kim ", "correct horse").await.unwrap());
        assert!(check_instructor(&db, "kim", "correct horse").await.unwrap());
        assert!(!check_instructor(&db, "kim", "wrong horse!").await.unwrap());
        assert!(!check_instructor(&db, "lee", "correct horse").await.unwrap());
        assert!(!add_instructor(&db, "kim", "another horse").await.unwrap(), "a new password, not a new instructor");
        assert!(check_instructor(&db, "kim", "another horse").await.unwrap());
        assert!(matches!(add_instructor(&db, "kim", "short").await, Err(ClassroomError::ShortPassword)));
        assert!(matches!(add_instructor(&db, "  ", "long enough").await, Err(ClassroomError::Empty { .. })));
        assert!(matches!(add_instructor(&db, "a\u{7}b", "long enough").await, Err(ClassroomError::Control { .. })));

        let t = |s: &str| parse_time(s).unwrap();
        let (a, code_a) = create_class(&db, NewClass { name: "Docker 101".into(), lessons: vec!["lifecycle".into()], opens: Some(t("2026-11-30T23:00")), closes: Some(t("2026-12-01T12:00:00+09:00")), limits: Default::default() }).await.unwrap();
        let (b, code_b) = create_class(&db, NewClass { name: "도커 입문".into(), ..Default::default() }).await.unwrap();
        assert_ne!(code_a, code_b);
        assert_eq!(db.classes().await.unwrap(), vec![a.clone(), b]);
        assert_eq!(a.closes, Some(t("2026-12-01T03:00")));
        let late = NewClass { name: "x".into(), opens: Some(t("2026-12-02 10:00")), closes: Some(t("2026-12-02 09:00")), ..Default::default() };
        assert!(matches!(create_class(&db, late).await, Err(ClassroomError::Window { .. })));
        assert!(matches!(create_class(&db, NewClass { name: "x".repeat(101), ..Default::default() }).await, Err(ClassroomError::TooLong { len: 101, .. })));
        assert!(matches!(parse_time("tomorrow"), Err(ClassroomError::BadTime(_))));
        assert_eq!(t("2026-12-01T09:00+09:00"), t("2026-12-01T00:00"));
    }

    #[test]
    fn lessons_by_number_or_id_in_the_given_order() {
        let catalog = berth_lessons::all().unwrap();
        let ids: Vec<String> = catalog.iter().map(|l| l.id.clone()).collect();
        assert_eq!(parse_lessons("", &catalog).unwrap(), ids);
        assert_eq!(parse_lessons("3, 1", &catalog).unwrap(), vec![ids[2].clone(), ids[0].clone()]);
        assert_eq!(parse_lessons(&format!("2,{}", ids[0]), &catalog).unwrap(), vec![ids[1].clone(), ids[0].clone()]);
        assert!(matches!(parse_lessons("99", &catalog), Err(ClassroomError::UnknownLesson(..))));
        assert!(matches!(parse_lessons("1,1", &catalog), Err(ClassroomError::RepeatedLesson(_))));
    }
}
