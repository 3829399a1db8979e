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
    // A student of a class: their name (unique in the class, case aside: `name_key`),
    // how they come back (a PIN's salted hash, a rejoin token's hash) and their lab.
    "CREATE TABLE IF NOT EXISTS members (
        class TEXT NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
        name TEXT NOT NULL,
        name_key TEXT NOT NULL,
        pin_salt TEXT NOT NULL,
        pin_hash TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE,
        session TEXT NOT NULL,
        joined TEXT NOT NULL,
        pin_failures INTEGER NOT NULL DEFAULT 0,
        locked_until TEXT,
        ended TEXT,
        PRIMARY KEY (class, name_key)
    )",
    // What passed each step's check (the hand-in's evidence): the events, as JSON.
    "CREATE TABLE IF NOT EXISTS evidence (
        session TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        lesson TEXT NOT NULL,
        step TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        events TEXT NOT NULL,
        PRIMARY KEY (session, lesson, step)
    )",
    "CREATE TABLE IF NOT EXISTS messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        class TEXT NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
        at TEXT NOT NULL,
        sender TEXT NOT NULL,
        recipient TEXT,
        recipient_key TEXT,
        kind TEXT NOT NULL,
        text TEXT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS hands (
        class TEXT NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
        name_key TEXT NOT NULL,
        name TEXT NOT NULL,
        raised_at TEXT NOT NULL,
        note TEXT NOT NULL,
        PRIMARY KEY (class, name_key)
    )",
    // Instructors' actions on students' labs.
    "CREATE TABLE IF NOT EXISTS audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        class TEXT NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
        at TEXT NOT NULL,
        instructor TEXT NOT NULL,
        action TEXT NOT NULL,
        student TEXT
    )",
    "CREATE INDEX IF NOT EXISTS members_session ON members(session)",
    // Instructors' logins: the cookie's token is kept only as its hash.
    "CREATE TABLE IF NOT EXISTS teach_logins (
        token_hash TEXT PRIMARY KEY,
        instructor TEXT NOT NULL REFERENCES instructors(name) ON DELETE CASCADE,
        created TEXT NOT NULL,
        expires TEXT NOT NULL
    )",
];

/// (table, column, declaration) of columns added to tables that existed before them.
const MIGRATIONS: &[(&str, &str, &str)] = &[("classes", "limits", "TEXT")];

/// A student of a class as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberRow {
    pub class: String,
    pub name: String,
    pub name_key: String,
    pub pin_salt: String,
    pub pin_hash: String,
    pub token_hash: String,
    pub session: String,
    pub joined: DateTime<Utc>,
    pub pin_failures: i64,
    pub locked_until: Option<DateTime<Utc>>,
    /// When an instructor ended the student's lab (a new one is made when they come back).
    pub ended: Option<DateTime<Utc>>,
}

/// A message as stored (`recipient`: a student's name; None: the whole class).
#[derive(Debug, Clone, PartialEq)]
pub struct MessageRow {
    pub id: i64,
    pub class: String,
    pub at: DateTime<Utc>,
    pub sender: String,
    pub recipient: Option<String>,
    pub recipient_key: Option<String>,
    pub kind: String,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HandRow {
    pub name_key: String,
    pub name: String,
    pub raised_at: DateTime<Utc>,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    pub at: DateTime<Utc>,
    pub instructor: String,
    pub action: String,
    pub student: Option<String>,
}

/// A done step with what passed its check.
#[derive(Debug, Clone, PartialEq)]
pub struct DoneStep {
    pub lesson: String,
    pub step: String,
    pub done_at: DateTime<Utc>,
    /// None for steps done before evidence was kept.
    pub attempts: Option<i64>,
    pub events: Option<String>,
}

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
    /// The class's labs' limits (none set: the server's defaults).
    pub limits: berth_lessons::api::ClassLimits,
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
        // Columns added after a table was first shipped.
        for (table, column, decl) in MIGRATIONS {
            let has: Option<i64> = sqlx::query_scalar(&format!("SELECT 1 FROM pragma_table_info('{table}') WHERE name = ?")).bind(column).fetch_optional(&pool).await?;
            if has.is_none() {
                sqlx::query(&format!("ALTER TABLE {table} ADD COLUMN {column} {decl}")).execute(&pool).await?;
            }
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
        sqlx::query("INSERT INTO classes (id, name, code, lessons, opens, closes, created, limits) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
            .bind(&c.id)
            .bind(&c.name)
            .bind(&c.code)
            .bind(c.lessons.join(","))
            .bind(c.opens.map(|t| t.to_rfc3339()))
            .bind(c.closes.map(|t| t.to_rfc3339()))
            .bind(c.created.to_rfc3339())
            .bind(serde_json::to_string(&c.limits).unwrap_or_default())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn set_class_limits(&self, id: &str, limits: &berth_lessons::api::ClassLimits) -> Result<bool, DbError> {
        let r = sqlx::query("UPDATE classes SET limits = ? WHERE id = ?").bind(serde_json::to_string(limits).unwrap_or_default()).bind(id).execute(&self.pool).await?;
        Ok(r.rows_affected() > 0)
    }

    /// Every class, oldest first.
    pub async fn classes(&self) -> Result<Vec<ClassRow>, DbError> {
        let rows = sqlx::query("SELECT id, name, code, lessons, opens, closes, created, limits FROM classes ORDER BY created, rowid").fetch_all(&self.pool).await?;
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
                limits: r.get::<Option<String>, _>("limits").and_then(|l| serde_json::from_str(&l).ok()).unwrap_or_default(),
            })
            .collect())
    }

    pub async fn class(&self, id: &str) -> Result<Option<ClassRow>, DbError> {
        Ok(self.classes().await?.into_iter().find(|c| c.id == id))
    }

    pub async fn class_by_code(&self, code: &str) -> Result<Option<ClassRow>, DbError> {
        Ok(self.classes().await?.into_iter().find(|c| c.code == code))
    }

    /// Sets a class's window (reopening a closed class, say).
    pub async fn set_class_window(&self, id: &str, opens: Option<DateTime<Utc>>, closes: Option<DateTime<Utc>>) -> Result<bool, DbError> {
        let r = sqlx::query("UPDATE classes SET opens = ?, closes = ? WHERE id = ?")
            .bind(opens.map(|t| t.to_rfc3339()))
            .bind(closes.map(|t| t.to_rfc3339()))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Adds a student. Fails (see [`DbError::is_duplicate`]) when the name is taken.
    pub async fn insert_member(&self, m: &MemberRow) -> Result<(), DbError> {
        sqlx::query("INSERT INTO members (class, name, name_key, pin_salt, pin_hash, token_hash, session, joined) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
            .bind(&m.class)
            .bind(&m.name)
            .bind(&m.name_key)
            .bind(&m.pin_salt)
            .bind(&m.pin_hash)
            .bind(&m.token_hash)
            .bind(&m.session)
            .bind(m.joined.to_rfc3339())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    const MEMBER_COLUMNS: &str = "class, name, name_key, pin_salt, pin_hash, token_hash, session, joined, pin_failures, locked_until, ended";

    fn member_row(r: &sqlx::sqlite::SqliteRow) -> MemberRow {
        MemberRow {
            class: r.get("class"),
            name: r.get("name"),
            name_key: r.get("name_key"),
            pin_salt: r.get("pin_salt"),
            pin_hash: r.get("pin_hash"),
            token_hash: r.get("token_hash"),
            session: r.get("session"),
            joined: parse_time(r.get("joined")),
            pin_failures: r.get("pin_failures"),
            locked_until: r.get::<Option<String>, _>("locked_until").map(parse_time),
            ended: r.get::<Option<String>, _>("ended").map(parse_time),
        }
    }

    /// Marks (or, with None, clears) the end of a student's lab.
    pub async fn set_member_ended(&self, class: &str, name_key: &str, at: Option<DateTime<Utc>>) -> Result<(), DbError> {
        sqlx::query("UPDATE members SET ended = ? WHERE class = ? AND name_key = ?").bind(at.map(|t| t.to_rfc3339())).bind(class).bind(name_key).execute(&self.pool).await?;
        Ok(())
    }

    pub async fn insert_evidence(&self, session: &str, lesson: &str, step: &str, attempts: u32, events: &str) -> Result<(), DbError> {
        sqlx::query("INSERT OR IGNORE INTO evidence (session, lesson, step, attempts, events) VALUES (?, ?, ?, ?, ?)")
            .bind(session)
            .bind(lesson)
            .bind(step)
            .bind(attempts as i64)
            .bind(events)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A session's done steps with their evidence, in the order they were done.
    pub async fn done_steps(&self, session: &str) -> Result<Vec<DoneStep>, DbError> {
        let rows = sqlx::query(
            "SELECT p.lesson, p.step, p.done_at, e.attempts, e.events FROM progress p
             LEFT JOIN evidence e ON e.session = p.session AND e.lesson = p.lesson AND e.step = p.step
             WHERE p.session = ? ORDER BY p.done_at, p.rowid",
        )
        .bind(session)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| DoneStep { lesson: r.get("lesson"), step: r.get("step"), done_at: parse_time(r.get("done_at")), attempts: r.get("attempts"), events: r.get("events") })
            .collect())
    }

    pub async fn insert_message(&self, m: &MessageRow) -> Result<i64, DbError> {
        let r = sqlx::query("INSERT INTO messages (class, at, sender, recipient, recipient_key, kind, text) VALUES (?, ?, ?, ?, ?, ?, ?)")
            .bind(&m.class)
            .bind(m.at.to_rfc3339())
            .bind(&m.sender)
            .bind(&m.recipient)
            .bind(&m.recipient_key)
            .bind(&m.kind)
            .bind(&m.text)
            .execute(&self.pool)
            .await?;
        Ok(r.last_insert_rowid())
    }

    /// A class's messages, oldest first: all of them (`recipient_key` None), or those
    /// a student sees (to the class, or to them).
    pub async fn messages(&self, class: &str, recipient_key: Option<&str>, limit: i64) -> Result<Vec<MessageRow>, DbError> {
        let rows = sqlx::query(
            "SELECT * FROM (SELECT id, class, at, sender, recipient, recipient_key, kind, text FROM messages
             WHERE class = ? AND (? IS NULL OR recipient_key IS NULL OR recipient_key = ?) ORDER BY id DESC LIMIT ?) ORDER BY id",
        )
        .bind(class)
        .bind(recipient_key)
        .bind(recipient_key)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| MessageRow {
                id: r.get("id"),
                class: r.get("class"),
                at: parse_time(r.get("at")),
                sender: r.get("sender"),
                recipient: r.get("recipient"),
                recipient_key: r.get("recipient_key"),
                kind: r.get("kind"),
                text: r.get("text"),
            })
            .collect())
    }

    pub async fn raise_hand(&self, class: &str, name_key: &str, name: &str, note: &str) -> Result<(), DbError> {
        sqlx::query("INSERT INTO hands (class, name_key, name, raised_at, note) VALUES (?, ?, ?, ?, ?) ON CONFLICT (class, name_key) DO UPDATE SET note = excluded.note")
            .bind(class)
            .bind(name_key)
            .bind(name)
            .bind(Utc::now().to_rfc3339())
            .bind(note)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Lowers a hand; true if it was up.
    pub async fn lower_hand(&self, class: &str, name_key: &str) -> Result<bool, DbError> {
        let r = sqlx::query("DELETE FROM hands WHERE class = ? AND name_key = ?").bind(class).bind(name_key).execute(&self.pool).await?;
        Ok(r.rows_affected() > 0)
    }

    /// A class's raised hands, oldest first.
    pub async fn hands(&self, class: &str) -> Result<Vec<HandRow>, DbError> {
        let rows = sqlx::query("SELECT name_key, name, raised_at, note FROM hands WHERE class = ? ORDER BY raised_at, rowid").bind(class).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(|r| HandRow { name_key: r.get("name_key"), name: r.get("name"), raised_at: parse_time(r.get("raised_at")), note: r.get("note") }).collect())
    }

    pub async fn record_action(&self, class: &str, instructor: &str, action: &str, student: Option<&str>) -> Result<(), DbError> {
        sqlx::query("INSERT INTO audit (class, at, instructor, action, student) VALUES (?, ?, ?, ?, ?)")
            .bind(class)
            .bind(Utc::now().to_rfc3339())
            .bind(instructor)
            .bind(action)
            .bind(student)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A class's recorded actions, newest first.
    pub async fn actions(&self, class: &str, limit: i64) -> Result<Vec<AuditRow>, DbError> {
        let rows = sqlx::query("SELECT at, instructor, action, student FROM audit WHERE class = ? ORDER BY id DESC LIMIT ?").bind(class).bind(limit).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(|r| AuditRow { at: parse_time(r.get("at")), instructor: r.get("instructor"), action: r.get("action"), student: r.get("student") }).collect())
    }

    pub async fn member(&self, class: &str, name_key: &str) -> Result<Option<MemberRow>, DbError> {
        let q = format!("SELECT {} FROM members WHERE class = ? AND name_key = ?", Self::MEMBER_COLUMNS);
        Ok(sqlx::query(&q).bind(class).bind(name_key).fetch_optional(&self.pool).await?.as_ref().map(Self::member_row))
    }

    pub async fn member_by_token(&self, class: &str, token_hash: &str) -> Result<Option<MemberRow>, DbError> {
        let q = format!("SELECT {} FROM members WHERE class = ? AND token_hash = ?", Self::MEMBER_COLUMNS);
        Ok(sqlx::query(&q).bind(class).bind(token_hash).fetch_optional(&self.pool).await?.as_ref().map(Self::member_row))
    }

    /// Every student of every class, in the order they joined.
    pub async fn members(&self) -> Result<Vec<MemberRow>, DbError> {
        let q = format!("SELECT {} FROM members ORDER BY joined, rowid", Self::MEMBER_COLUMNS);
        Ok(sqlx::query(&q).fetch_all(&self.pool).await?.iter().map(Self::member_row).collect())
    }

    /// Counts a wrong PIN; from `max` on, the name is locked until `until`.
    pub async fn pin_failed(&self, class: &str, name_key: &str, max: i64, until: DateTime<Utc>) -> Result<(), DbError> {
        sqlx::query("UPDATE members SET pin_failures = pin_failures + 1, locked_until = CASE WHEN pin_failures + 1 >= ? THEN ? ELSE locked_until END WHERE class = ? AND name_key = ?")
            .bind(max)
            .bind(until.to_rfc3339())
            .bind(class)
            .bind(name_key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn pin_passed(&self, class: &str, name_key: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE members SET pin_failures = 0, locked_until = NULL WHERE class = ? AND name_key = ?").bind(class).bind(name_key).execute(&self.pool).await?;
        Ok(())
    }

    /// Gives a student a new lab (theirs was removed).
    pub async fn set_member_session(&self, class: &str, name_key: &str, session: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE members SET session = ? WHERE class = ? AND name_key = ?").bind(session).bind(class).bind(name_key).execute(&self.pool).await?;
        Ok(())
    }

    pub async fn insert_login(&self, token_hash: &str, instructor: &str, expires: DateTime<Utc>) -> Result<(), DbError> {
        sqlx::query("INSERT INTO teach_logins (token_hash, instructor, created, expires) VALUES (?, ?, ?, ?)")
            .bind(token_hash)
            .bind(instructor)
            .bind(Utc::now().to_rfc3339())
            .bind(expires.to_rfc3339())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The instructor a login token belongs to, if it has not expired.
    pub async fn login(&self, token_hash: &str) -> Result<Option<String>, DbError> {
        let row = sqlx::query("SELECT instructor, expires FROM teach_logins WHERE token_hash = ?").bind(token_hash).fetch_optional(&self.pool).await?;
        Ok(row.filter(|r| parse_time(r.get("expires")) > Utc::now()).map(|r| r.get("instructor")))
    }

    pub async fn delete_login(&self, token_hash: &str) -> Result<(), DbError> {
        sqlx::query("DELETE FROM teach_logins WHERE token_hash = ? OR expires < ?").bind(token_hash).bind(Utc::now().to_rfc3339()).execute(&self.pool).await?;
        Ok(())
    }

    /// (lesson, step, done at) of a session, oldest first.
    pub async fn progress_times(&self, id: &str) -> Result<Vec<(String, String, DateTime<Utc>)>, DbError> {
        let rows = sqlx::query("SELECT lesson, step, done_at FROM progress WHERE session = ? ORDER BY done_at, rowid").bind(id).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(|r| (r.get("lesson"), r.get("step"), parse_time(r.get("done_at")))).collect())
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
