//! Students of a class: who may join, and how a student comes back to the same lab.
//!
//! A student joins with the class's code and a display name, unique in the class (case
//! and runs of spaces aside, so "Kim" and "kim " are one name). At the first join they
//! get a six-digit PIN and a rejoin link; either brings them back to the same lab from
//! another browser or another day. PINs are short to be easy to keep, so they are
//! guarded online: a name locks after [`MAX_PIN_FAILURES`] wrong PINs for
//! [`PIN_LOCK`], besides the per-address limit on failures (`rate_limit`). The rejoin
//! token is 128 random bits; only hashes of either are stored.

use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use sha2::{Digest, Sha256};

use super::join_code::JoinCode;
use super::{check_name, ClassroomError};
use crate::lab::db::{ClassRow, Db, MemberRow};
use berth_lessons::api::ClassState;

pub const PIN_DIGITS: usize = 6;
pub const MAX_PIN_FAILURES: i64 = 5;
pub const PIN_LOCK: Duration = Duration::minutes(15);

/// Where a class is in its window at `now`.
pub fn state(class: &ClassRow, now: DateTime<Utc>) -> ClassState {
    if class.opens.is_some_and(|o| now < o) {
        ClassState::Upcoming
    } else if class.closes.is_some_and(|c| now >= c) {
        ClassState::Closed
    } else {
        ClassState::Open
    }
}

/// The form of a name that must be unique in a class.
pub fn name_key(name: &str) -> String {
    name.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

fn sha256_hex(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

pub fn hash_token(token: &str) -> String {
    sha256_hex(&["berth-rejoin", token.trim()])
}

fn hash_pin(salt: &str, pin: &str) -> String {
    sha256_hex(&["berth-pin", salt, pin.trim()])
}

/// The class a typed code names.
pub async fn find_class(db: &Db, code: &str) -> Result<ClassRow, ClassroomError> {
    let code: JoinCode = code.parse().map_err(|_| ClassroomError::UnknownCode)?;
    db.class_by_code(code.as_str()).await?.ok_or(ClassroomError::UnknownCode)
}

/// What a join request leads to.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// A student coming back (right PIN or link): their row, with their lab's id.
    Returning(MemberRow),
    /// A new student with a free name (checked, trimmed): make them a lab, then
    /// [`enroll`] them.
    New { name: String },
}

/// Decides a join: a rejoin link or a name with its PIN brings a student back; a new
/// name joins an open class. The class's window: nobody enters before it opens; after
/// it closes only its students come back (to read their progress).
pub async fn admit(db: &Db, class: &ClassRow, name: &str, pin: Option<&str>, token: Option<&str>, now: DateTime<Utc>) -> Result<Admission, ClassroomError> {
    let st = state(class, now);
    if st == ClassState::Upcoming {
        return Err(ClassroomError::NotOpen { opens: class.opens.unwrap_or(now) });
    }
    if let Some(token) = token.map(str::trim).filter(|t| !t.is_empty()) {
        return match db.member_by_token(&class.id, &hash_token(token)).await? {
            Some(m) => Ok(Admission::Returning(m)),
            None => Err(ClassroomError::BadToken),
        };
    }
    let name = check_name("your name", name)?;
    let key = name_key(&name);
    match db.member(&class.id, &key).await? {
        Some(m) => {
            let Some(pin) = pin.map(str::trim).filter(|p| !p.is_empty()) else { return Err(ClassroomError::NameTaken(name)) };
            if let Some(until) = m.locked_until.filter(|u| *u > now) {
                return Err(ClassroomError::Locked { until });
            }
            if hash_pin(&m.pin_salt, pin) != m.pin_hash {
                db.pin_failed(&class.id, &key, MAX_PIN_FAILURES, now + PIN_LOCK).await?;
                return Err(ClassroomError::WrongPin);
            }
            db.pin_passed(&class.id, &key).await?;
            Ok(Admission::Returning(m))
        }
        // A PIN for a name nobody has: most likely a typo in the name.
        None if pin.is_some_and(|p| !p.trim().is_empty()) => Err(ClassroomError::WrongPin),
        None if st == ClassState::Closed => Err(ClassroomError::Closed { closes: class.closes.unwrap_or(now) }),
        None => Ok(Admission::New { name }),
    }
}

/// A student just enrolled, with the PIN and rejoin token to show them once.
#[derive(Debug, Clone)]
pub struct Enrolled {
    pub member: MemberRow,
    pub pin: String,
    pub token: String,
}

/// Records a new student of `class` whose lab is `session`. Fails with `NameTaken`
/// when another student took the name in the meantime.
pub async fn enroll(db: &Db, class: &ClassRow, name: &str, session: &str, now: DateTime<Utc>) -> Result<Enrolled, ClassroomError> {
    // In a block: the thread's generator must not live across an await.
    let (pin, token, salt) = {
        let mut rng = rand::thread_rng();
        let pin: String = (0..PIN_DIGITS).map(|_| char::from(b'0' + rng.gen_range(0..10u8))).collect();
        (pin, hex::encode(rng.gen::<[u8; 16]>()), hex::encode(rng.gen::<[u8; 16]>()))
    };
    let member = MemberRow {
        class: class.id.clone(),
        name: name.to_string(),
        name_key: name_key(name),
        pin_hash: hash_pin(&salt, &pin),
        pin_salt: salt,
        token_hash: hash_token(&token),
        session: session.to_string(),
        joined: now,
        pin_failures: 0,
        locked_until: None,
        ended: None,
    };
    match db.insert_member(&member).await {
        Ok(()) => Ok(Enrolled { member, pin, token }),
        Err(e) if e.is_duplicate() => Err(ClassroomError::NameTaken(name.to_string())),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classroom::{create_class, NewClass};

    #[tokio::test]
    async fn students_join_once_and_come_back_with_their_pin_or_link() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("lab.db")).await.unwrap();
        let now = Utc::now();
        let (class, code) = create_class(&db, NewClass { name: "c".into(), ..Default::default() }).await.unwrap();
        assert_eq!(find_class(&db, &code.to_string().to_lowercase()).await.unwrap().id, class.id);
        assert!(matches!(find_class(&db, "2345-6789").await, Err(ClassroomError::UnknownCode)));
        assert!(matches!(find_class(&db, "not a code").await, Err(ClassroomError::UnknownCode)));

        let Admission::New { name } = admit(&db, &class, "  Kim  Min ", None, None, now).await.unwrap() else { panic!("new") };
        assert_eq!(name, "Kim  Min");
        let e = enroll(&db, &class, &name, "s1", now).await.unwrap();
        assert_eq!(e.pin.len(), 6);
        // The same name, however typed, is taken; with the PIN it is the same student.
        assert!(matches!(admit(&db, &class, "kim min", None, None, now).await, Err(ClassroomError::NameTaken(_))));
        assert!(matches!(enroll(&db, &class, "KIM MIN", "s2", now).await, Err(ClassroomError::NameTaken(_))));
        let Admission::Returning(m) = admit(&db, &class, "KIM MIN", Some(&e.pin), None, now).await.unwrap() else { panic!("returning") };
        assert_eq!(m.session, "s1");
        let Admission::Returning(m) = admit(&db, &class, "", None, Some(&e.token), now).await.unwrap() else { panic!("by link") };
        assert_eq!(m.session, "s1");
        assert!(matches!(admit(&db, &class, "", None, Some("00112233445566778899aabbccddeeff"), now).await, Err(ClassroomError::BadToken)));
        assert!(matches!(admit(&db, &class, "nobody", Some("123456"), None, now).await, Err(ClassroomError::WrongPin)));
        for bad in ["", "   ", "a\u{1b}[2J", &"x".repeat(101)] {
            assert!(admit(&db, &class, bad, None, None, now).await.is_err(), "{bad:?}");
        }

        // Wrong PINs lock the name, even for the right one, until the lock ends.
        let wrong = if e.pin == "000000" { "111111" } else { "000000" };
        for _ in 0..MAX_PIN_FAILURES {
            assert!(matches!(admit(&db, &class, "kim min", Some(wrong), None, now).await, Err(ClassroomError::WrongPin)));
        }
        assert!(matches!(admit(&db, &class, "kim min", Some(&e.pin), None, now).await, Err(ClassroomError::Locked { .. })));
        let later = now + PIN_LOCK + Duration::seconds(1);
        assert!(matches!(admit(&db, &class, "kim min", Some(&e.pin), None, later).await, Ok(Admission::Returning(_))));
        // A right PIN clears the count.
        assert_eq!(db.member(&class.id, "kim min").await.unwrap().unwrap().pin_failures, 0);
    }

    #[tokio::test]
    async fn the_window_keeps_new_students_out_before_and_after() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("lab.db")).await.unwrap();
        let now = Utc::now();
        let new = |opens: Option<DateTime<Utc>>, closes: Option<DateTime<Utc>>| NewClass { name: "c".into(), opens, closes, ..Default::default() };
        let (soon, _) = create_class(&db, new(Some(now + Duration::hours(1)), None)).await.unwrap();
        assert_eq!(state(&soon, now), ClassState::Upcoming);
        assert!(matches!(admit(&db, &soon, "a", None, None, now).await, Err(ClassroomError::NotOpen { .. })));

        let (class, _) = create_class(&db, new(Some(now - Duration::hours(2)), Some(now + Duration::hours(1)))).await.unwrap();
        assert_eq!(state(&class, now), ClassState::Open);
        let e = enroll(&db, &class, "a", "s1", now).await.unwrap();
        let after = now + Duration::hours(2);
        assert_eq!(state(&class, after), ClassState::Closed);
        assert!(matches!(admit(&db, &class, "b", None, None, after).await, Err(ClassroomError::Closed { .. })));
        // Its students still come back after it closed, to read their progress.
        assert!(matches!(admit(&db, &class, "a", Some(&e.pin), None, after).await, Ok(Admission::Returning(_))));
    }
}
