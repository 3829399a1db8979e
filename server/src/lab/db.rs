//! Lab sessions, lesson progress, instructors and classes in SQLite (`<root>/lab.db`):
//! what must survive a restart of the server besides the engine's own state. WAL mode,
//! so `berth instructor`/`berth class` may write while the server runs.

use std::path::Path;

use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use sqlx::Row;

#[derive(Debug, thiserror::Error)]
#[error("lab database: {0}")]
pub struct DbError(#[from] sqlx::Error);

impl DbError {
    /// A UNIQUE or PRIMARY KEY constraint refused the write.
    pub fn is_duplicate(&self) -> bool {
        matches!(&self.0, sqlx::Error::Database(e) if e.is_unique_violation())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    pub id: String,
    pub created: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub lesson: Option<String>,
}

#[derive(Clone)]
pub struct Db {
    pool: SqlitePool,
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS sessions (
        id TEXT PRIMARY KEY,
        created TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        lesson TEXT
    )",
    "CREATE TABLE IF NOT EXISTS progress (
        session TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        lesson TEXT NOT NULL,
        step TEXT NOT NULL,
        done_at TEXT NOT NULL,
        PRIMARY KEY (session, lesson, step)
    )",
    "CREATE TABLE IF NOT EXISTS instructors (
        name TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        created TEXT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS classes (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        code TEXT NOT NULL UNIQUE,
        lessons TEXT NOT NULL,
        opens TEXT,
        closes TEXT,
        created TEXT NOT NULL
    )",
];

/// A class as stored: `lessons` are lesson ids in the class's order.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassRow {
    pub id: String,
    pub name: String,
    /// The join code's eight characters, without the dash.
    pub code: String,
    pub lessons: Vec<String>,
    pub opens: Option<DateTime<Utc>>,
    pub closes: Option<DateTime<Utc>>,
    pub created: DateTime<Utc>,
}

impl Db {
    pub async fn open(path: &Path) -> Result<Db, DbError> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(opts).await?;
        for stmt in SCHEMA {
            sqlx::query(stmt).execute(&pool).await?;
        }
        Ok(Db { pool })
    }

    pub async fn insert_session(&self, s: &SessionRow) -> Result<(), DbError> {
        sqlx::query("INSERT INTO sessions (id, created, last_seen, lesson) VALUES (?, ?, ?, ?)")
            .bind(&s.id)
            .bind(s.created.to_rfc3339())
            .bind(s.last_seen.to_rfc3339())
            .bind(&s.lesson)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn sessions(&self) -> Result<Vec<SessionRow>, DbError> {
        let rows = sqlx::query("SELECT id, created, last_seen, lesson FROM sessions ORDER BY created").fetch_all(&self.pool).await?;
        Ok(rows
            .iter()
            .map(|r| SessionRow {
                id: r.get("id"),
                created: parse_time(r.get("created")),
                last_seen: parse_time(r.get("last_seen")),
                lesson: r.get("lesson"),
            })
            .collect())
    }

    pub async fn touch(&self, id: &str, at: DateTime<Utc>) -> Result<(), DbError> {
        sqlx::query("UPDATE sessions SET last_seen = ? WHERE id = ?").bind(at.to_rfc3339()).bind(id).execute(&self.pool).await?;
        Ok(())
    }

    pub async fn set_lesson(&self, id: &str, lesson: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE sessions SET lesson = ? WHERE id = ?").bind(lesson).bind(id).execute(&self.pool).await?;
        Ok(())
    }

    pub async fn delete_session(&self, id: &str) -> Result<(), DbError> {
        sqlx::query("DELETE FROM sessions WHERE id = ?").bind(id).execute(&self.pool).await?;
        Ok(())
    }

    pub async fn mark_done(&self, id: &str, lesson: &str, step: &str) -> Result<(), DbError> {
        sqlx::query("INSERT OR IGNORE INTO progress (session, lesson, step, done_at) VALUES (?, ?, ?, ?)")
            .bind(id)
            .bind(lesson)
            .bind(step)
            .bind(Utc::now().to_rfc3339())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Adds an instructor or gives an existing one a new password hash; true if added.
    pub async fn put_instructor(&self, name: &str, password_hash: &str) -> Result<bool, DbError> {
        let changed = sqlx::query("UPDATE instructors SET password_hash = ? WHERE name = ?").bind(password_hash).bind(name).execute(&self.pool).await?;
        if changed.rows_affected() > 0 {
            return Ok(false);
        }
        sqlx::query("INSERT INTO instructors (name, password_hash, created) VALUES (?, ?, ?)")
            .bind(name)
            .bind(password_hash)
            .bind(Utc::now().to_rfc3339())
            .execute(&self.pool)
            .await?;
        Ok(true)
    }

    /// The password hash of an instructor.
    pub async fn instructor_hash(&self, name: &str) -> Result<Option<String>, DbError> {
        let row = sqlx::query("SELECT password_hash FROM instructors WHERE name = ?").bind(name).fetch_optional(&self.pool).await?;
        Ok(row.map(|r| r.get("password_hash")))
    }

    /// Stores a new class. Fails (a unique-constraint error, see
    /// [`DbError::is_duplicate`]) when its code is taken.
    pub async fn insert_class(&self, c: &ClassRow) -> Result<(), DbError> {
        sqlx::query("INSERT INTO classes (id, name, code, lessons, opens, closes, created) VALUES (?, ?, ?, ?, ?, ?, ?)")
            .bind(&c.id)
            .bind(&c.name)
            .bind(&c.code)
            .bind(c.lessons.join(","))
            .bind(c.opens.map(|t| t.to_rfc3339()))
            .bind(c.closes.map(|t| t.to_rfc3339()))
            .bind(c.created.to_rfc3339())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every class, oldest first.
    pub async fn classes(&self) -> Result<Vec<ClassRow>, DbError> {
        let rows = sqlx::query("SELECT id, name, code, lessons, opens, closes, created FROM classes ORDER BY created, rowid").fetch_all(&self.pool).await?;
        Ok(rows
            .iter()
            .map(|r| ClassRow {
                id: r.get("id"),
                name: r.get("name"),
                code: r.get("code"),
                lessons: r.get::<String, _>("lessons").split(',').filter(|l| !l.is_empty()).map(str::to_string).collect(),
                opens: r.get::<Option<String>, _>("opens").map(parse_time),
                closes: r.get::<Option<String>, _>("closes").map(parse_time),
                created: parse_time(r.get("created")),
            })
            .collect())
    }

    /// (lesson, step) pairs done in a session, oldest first.
    pub async fn progress(&self, id: &str) -> Result<Vec<(String, String)>, DbError> {
        let rows = sqlx::query("SELECT lesson, step FROM progress WHERE session = ? ORDER BY done_at, rowid").bind(id).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(|r| (r.get("lesson"), r.get("step"))).collect())
    }
}

fn parse_time(s: String) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&s).map(|t| t.with_timezone(&Utc)).unwrap_or_else(|_| Utc::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sessions_and_progress_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lab.db");
        let now = Utc::now();
        {
            let db = Db::open(&path).await.unwrap();
            db.insert_session(&SessionRow { id: "s1".into(), created: now, last_seen: now, lesson: None }).await.unwrap();
            db.set_lesson("s1", "01-lifecycle").await.unwrap();
            db.mark_done("s1", "01-lifecycle", "search").await.unwrap();
            db.mark_done("s1", "01-lifecycle", "search").await.unwrap();
            db.mark_done("s1", "01-lifecycle", "pull").await.unwrap();
        }
        let db = Db::open(&path).await.unwrap();
        let s = db.sessions().await.unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].lesson.as_deref(), Some("01-lifecycle"));
        assert_eq!(db.progress("s1").await.unwrap(), vec![("01-lifecycle".into(), "search".into()), ("01-lifecycle".into(), "pull".into())]);
        db.delete_session("s1").await.unwrap();
        assert!(db.sessions().await.unwrap().is_empty());
        assert!(db.progress("s1").await.unwrap().is_empty());
    }
}
