//! Which lab sessions are class members', by session id: the dashboard lists a class's
//! students from it, and the lab keeps members' sessions as long as their class. Loaded
//! from the database at start and kept as students join; a single server's lab and
//! classroom share one.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::lab::db::{Db, DbError};

/// Whose a class member's session is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub class: String,
    pub name: String,
    pub joined: DateTime<Utc>,
}

#[derive(Default)]
pub struct Roster(Mutex<HashMap<String, Member>>);

impl Roster {
    /// Every member's session as the database has them.
    pub async fn load(db: &Db) -> Result<Roster, DbError> {
        let rows = db.members().await?;
        Ok(Roster(Mutex::new(rows.into_iter().map(|m| (m.session, Member { class: m.class, name: m.name, joined: m.joined })).collect())))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Member>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn add(&self, session: &str, member: Member) {
        self.lock().insert(session.to_string(), member);
    }

    pub fn get(&self, session: &str) -> Option<Member> {
        self.lock().get(session).cloned()
    }

    pub fn sessions(&self) -> HashSet<String> {
        self.lock().keys().cloned().collect()
    }

    pub fn all(&self) -> Vec<(String, Member)> {
        self.lock().iter().map(|(s, m)| (s.clone(), m.clone())).collect()
    }

    /// The sessions of a class's students: (session id, member), in the order they joined.
    pub fn class_members(&self, class: &str) -> Vec<(String, Member)> {
        let mut v: Vec<(String, Member)> = self.lock().iter().filter(|(_, m)| m.class == class).map(|(s, m)| (s.clone(), m.clone())).collect();
        v.sort_by(|a, b| a.1.joined.cmp(&b.1.joined).then_with(|| a.1.name.cmp(&b.1.name)));
        v
    }
}
