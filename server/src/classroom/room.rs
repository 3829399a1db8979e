//! The classroom's state: what the teacher's pages and joins work on, wherever the
//! labs are ([`Labs`]). A single server has one beside its lab; a hub has one in front
//! of its lab nodes.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_lessons::api::Watching;
use berth_lessons::Lesson;

use super::labs::Labs;
use super::rate_limit::FailureLimit;
use super::roster::Member;
use crate::changes::Changes;
use crate::lab::db::Db;
use crate::lab::LabOptions;

pub struct Classroom {
    pub db: Db,
    /// The server's flags: stuck rules, the failure limit, the labs' default limits.
    pub opts: LabOptions,
    pub lessons: Arc<Vec<Lesson>>,
    pub changes: Changes,
    /// Guesses (join codes, PINs, links, passwords) per client address.
    pub failures: FailureLimit,
    /// Instructors watching or controlling a student's terminal now.
    watchers: Mutex<Vec<(u64, String, Watching)>>,
    pub labs: Labs,
    /// Where the key that signs transcripts is kept.
    pub key: KeyPlace,
}

/// Where a server keeps the key that signs transcripts.
#[derive(Debug, Clone)]
pub enum KeyPlace {
    /// A state root (a single server's, as ever).
    Root(PathBuf),
    /// The database: a hub has no state root to keep it across restarts, and every
    /// hub must sign with the same key.
    Database,
}

/// An instructor counted at a student's terminal until this drops.
pub struct WatchGuard {
    room: Arc<Classroom>,
    n: u64,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.room.watchers.lock().unwrap_or_else(|p| p.into_inner()).retain(|(n, _, _)| *n != self.n);
        self.room.notify();
    }
}

impl Classroom {
    pub fn new(db: Db, opts: LabOptions, changes: Changes, labs: Labs, key: KeyPlace) -> anyhow::Result<Arc<Classroom>> {
        let lessons = berth_lessons::all().map_err(|e| anyhow::anyhow!("load the lessons: {e}"))?;
        let failures = FailureLimit::new(opts.max_failures, Duration::from_secs(600));
        Ok(Arc::new(Classroom { db, opts, lessons: Arc::new(lessons), changes, failures, watchers: Mutex::new(Vec::new()), labs, key }))
    }

    /// A class's students: (session id, member), in the order they joined. From the
    /// database, where joins through any server (or hub) are.
    pub async fn class_members(&self, class: &str) -> Result<Vec<(String, Member)>, crate::lab::db::DbError> {
        Ok(self.db.class_members(class).await?.into_iter().map(|m| (m.session, Member { class: m.class, name: m.name, joined: m.joined })).collect())
    }

    /// The key that signs transcripts.
    pub async fn signing_key(&self) -> Result<super::transcript::ServerKey, super::transcript::TranscriptError> {
        match &self.key {
            KeyPlace::Root(root) => super::transcript::ServerKey::load_or_create(root),
            KeyPlace::Database => super::transcript::ServerKey::in_database(&self.db).await,
        }
    }

    /// Tells open dashboards to look again.
    pub fn notify(&self) {
        self.changes.notify();
    }

    pub fn watching(self: &Arc<Self>, class: &str, w: Watching) -> WatchGuard {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.watchers.lock().unwrap_or_else(|p| p.into_inner()).push((n, class.to_string(), w));
        self.notify();
        WatchGuard { room: self.clone(), n }
    }

    pub fn watchers(&self, class: &str) -> Vec<Watching> {
        self.watchers.lock().unwrap_or_else(|p| p.into_inner()).iter().filter(|(_, c, _)| c == class).map(|(_, _, w)| w.clone()).collect()
    }
}
