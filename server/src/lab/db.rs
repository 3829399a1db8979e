//! Lab sessions, lesson progress, instructors and classes: what must survive a restart
//! of the server besides the engine's own state. In SQLite (`<root>/lab.db`, WAL mode,
//! so `berth instructor`/`berth class` may write while the server runs) by default, or
//! in PostgreSQL when several servers share one database (`--database postgres://…`).
//!
//! Both run the same queries through sqlx's `Any` driver: `$N` placeholders (SQLite
//! binds them by number too), `ON CONFLICT`, `RETURNING`, times as RFC 3339 text and
//! integers as 64-bit. Only the schema's statements differ, in two words (see [`ddl`]).
//! Rows come in the order of their times (to the nanosecond), their key breaking ties:
//! PostgreSQL has no `rowid`.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::AnyPool;
use sqlx::{Any, ConnectOptions, Connection, Row, Transaction};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Not a `From` with `#[source]`: the message already says it, and `{:#}` would
    /// print it twice.
    #[error("lab database: {0}")]
    Sql(sqlx::Error),
    /// A `--database` that is no database URL Berth knows. The message never repeats
    /// the URL, which may hold a password.
    #[error("database URL: {0}")]
    Url(String),
    #[error("cannot open the database {url}: {error}")]
    Connect { url: String, error: sqlx::Error },
    #[error("the database {url} has schema version {found}, newer than this Berth's {known}: a newer Berth made it")]
    Newer { url: String, found: i64, known: i64 },
}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> DbError {
        DbError::Sql(e)
    }
}

impl DbError {
    /// A UNIQUE or PRIMARY KEY constraint refused the write.
    pub fn is_duplicate(&self) -> bool {
        matches!(self, DbError::Sql(sqlx::Error::Database(e)) if e.is_unique_violation())
    }
}

/// Which database a [`Db`] is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A `--database` value as given (`BERTH_DATABASE_URL` too): parsed only when the
/// database is opened, by [`DbUrl::parse`], whose errors do not repeat it, and kept out
/// of `Debug` output. It may hold a password, and clap would echo a value its parser
/// refused.
#[derive(Clone)]
pub struct DatabaseArg(pub String);

impl FromStr for DatabaseArg {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(DatabaseArg(s.to_string()))
    }
}

impl fmt::Debug for DatabaseArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DatabaseArg(..)")
    }
}

/// `--database`, for `berth serve` and the commands that share its database.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DatabaseOptions {
    /// Where classes, students, progress and lab sessions are kept: sqlite:PATH, or
    /// postgres://USER:PASSWORD@HOST[:PORT]/DATABASE for several servers sharing one
    /// database. Default: sqlite:ROOT/lab.db.
    #[arg(long = "database", value_name = "URL", env = "BERTH_DATABASE_URL", hide_env_values = true)]
    pub database: Option<DatabaseArg>,
}

impl DatabaseOptions {
    /// The database given, or the SQLite file of the state root `root`.
    pub fn url(&self, root: &Path) -> Result<DbUrl, DbError> {
        match &self.database {
            Some(DatabaseArg(s)) => DbUrl::parse(s),
            None => Ok(DbUrl::sqlite(&root.join("lab.db"))),
        }
    }

    /// Whether the database is not the state root's own file.
    pub fn is_set(&self) -> bool {
        self.database.is_some()
    }
}

/// Where a [`Db`] is: a SQLite file or a PostgreSQL database. Shown (`Display`,
/// `Debug`) without its password.
#[derive(Clone)]
pub struct DbUrl {
    backend: Backend,
    options: AnyConnectOptions,
    shown: String,
}

impl DbUrl {
    /// A SQLite file, made when missing.
    pub fn sqlite(path: &Path) -> DbUrl {
        DbUrl::from_sqlite(sqlx::sqlite::SqliteConnectOptions::new().filename(path).create_if_missing(true))
    }

    fn from_sqlite(opts: sqlx::sqlite::SqliteConnectOptions) -> DbUrl {
        let shown = format!("sqlite:{}", opts.get_filename().display());
        // The `Any` driver is configured by URL; SQLite's options round-trip through it
        // (the file name percent-encoded).
        let options = AnyConnectOptions::from_url(&opts.to_url_lossy()).expect("sqlx parses the URLs it makes");
        DbUrl { backend: Backend::Sqlite, options, shown }
    }

    /// `sqlite:PATH` (made when missing) or `postgres://…` / `postgresql://…` (with
    /// PostgreSQL's URL parameters, e.g. `?sslmode=disable`).
    pub fn parse(s: &str) -> Result<DbUrl, DbError> {
        let scheme = s.split_once(':').map(|(scheme, _)| scheme.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("sqlite") => {
                let opts = sqlx::sqlite::SqliteConnectOptions::from_str(s).map_err(|e| DbError::Url(format!("sqlite: {e}")))?;
                Ok(DbUrl::from_sqlite(opts.create_if_missing(true)))
            }
            Some("postgres" | "postgresql") => {
                // PostgreSQL's own parser first: it checks the parameters (sslmode, …)
                // now rather than at the first connection.
                sqlx::postgres::PgConnectOptions::from_str(s).map_err(|e| DbError::Url(format!("postgres: {e}")))?;
                let options = AnyConnectOptions::from_str(s).map_err(|e| DbError::Url(format!("postgres: {e}")))?;
                let shown = without_password(&options);
                Ok(DbUrl { backend: Backend::Postgres, options, shown })
            }
            Some(other) if !other.is_empty() && other.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) => {
                Err(DbError::Url(format!("{other}: not a database Berth keeps its records in (sqlite:PATH, postgres://USER:PASSWORD@HOST/DATABASE)")))
            }
            _ => Err(DbError::Url("not a URL (sqlite:PATH, postgres://USER:PASSWORD@HOST/DATABASE)".into())),
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }
}

/// A PostgreSQL URL with its password, in the user part or a `password` parameter
/// (sqlx takes both), replaced by `****`.
fn without_password(options: &AnyConnectOptions) -> String {
    let mut url = options.database_url.clone();
    if url.password().is_some() {
        let _ = url.set_password(Some("****"));
    }
    if url.query_pairs().any(|(k, _)| k == "password") {
        let pairs: Vec<(String, String)> = url.query_pairs().map(|(k, v)| (k.to_string(), if k == "password" { "****".into() } else { v.to_string() })).collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

impl fmt::Display for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DbUrl({})", self.shown)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    pub id: String,
    pub created: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub lesson: Option<String>,
    /// The lab node that holds the session ([`LOCAL_NODE`] on a server of its own).
    pub node: String,
}

/// The node name of a server that is not part of a cluster (`berth serve --node-name`'s
/// default), and of every session made before sessions had a node.
pub const LOCAL_NODE: &str = "local";

/// A lab node as it last told the database (`berth serve --role node`): where the hub
/// reaches it and how loaded it is.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRow {
    pub name: String,
    /// Its web listener, e.g. http://10.0.3.7:8080.
    pub url: String,
    /// Lab sessions open on it.
    pub sessions: i64,
    /// Whether it takes new sessions (ready, and not draining).
    pub accepting: bool,
    /// When it last said so: a node silent for long is gone.
    pub seen: DateTime<Utc>,
}

#[derive(Clone)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
}

/// How long opening the database may keep retrying a refused connection (PostgreSQL
/// still starting, say), and a query may wait for a free connection of the pool.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The schema as of version 1: what Berth made before it kept a version, but for the
/// columns added since (see [`UPGRADES`]). `{time}` and `{id}` as [`ddl`] says.
const SCHEMA_V1: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS sessions (
        id TEXT PRIMARY KEY,
        created {time} NOT NULL,
        last_seen {time} NOT NULL,
        lesson TEXT
    )",
    "CREATE TABLE IF NOT EXISTS progress (
        session TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        lesson TEXT NOT NULL,
        step TEXT NOT NULL,
        done_at {time} NOT NULL,
        PRIMARY KEY (session, lesson, step)
    )",
    "CREATE TABLE IF NOT EXISTS instructors (
        name TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        created {time} NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS classes (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        code TEXT NOT NULL UNIQUE,
        lessons TEXT NOT NULL,
        opens {time},
        closes {time},
        created {time} NOT NULL
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
        joined {time} NOT NULL,
        pin_failures BIGINT NOT NULL DEFAULT 0,
        locked_until {time},
        ended {time},
        PRIMARY KEY (class, name_key)
    )",
    // What passed each step's check (the hand-in's evidence): the events, as JSON.
    "CREATE TABLE IF NOT EXISTS evidence (
        session TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        lesson TEXT NOT NULL,
        step TEXT NOT NULL,
        attempts BIGINT NOT NULL,
        events TEXT NOT NULL,
        PRIMARY KEY (session, lesson, step)
    )",
    "CREATE TABLE IF NOT EXISTS messages (
        id {id},
        class TEXT NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
        at {time} NOT NULL,
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
        raised_at {time} NOT NULL,
        note TEXT NOT NULL,
        PRIMARY KEY (class, name_key)
    )",
    // Instructors' actions on students' labs.
    "CREATE TABLE IF NOT EXISTS audit (
        id {id},
        class TEXT NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
        at {time} NOT NULL,
        instructor TEXT NOT NULL,
        action TEXT NOT NULL,
        student TEXT
    )",
    "CREATE INDEX IF NOT EXISTS members_session ON members(session)",
    // Instructors' logins: the cookie's token is kept only as its hash.
    "CREATE TABLE IF NOT EXISTS teach_logins (
        token_hash TEXT PRIMARY KEY,
        instructor TEXT NOT NULL REFERENCES instructors(name) ON DELETE CASCADE,
        created {time} NOT NULL,
        expires {time} NOT NULL
    )",
];

/// The changes after version 1, in order: `UPGRADES[i]` brings a database from version
/// `i + 1` to `i + 2`. Append only; a shipped entry never changes.
const UPGRADES: &[&[&str]] = &[
    // 2: a class's labs' limits (JSON; none: the server's defaults).
    &["ALTER TABLE classes ADD COLUMN limits TEXT"],
    // 3: lab nodes (a hub places sessions on them), and the node each session is on.
    &[
        "ALTER TABLE sessions ADD COLUMN node TEXT NOT NULL DEFAULT 'local'",
        "CREATE TABLE IF NOT EXISTS nodes (
            name TEXT PRIMARY KEY,
            url TEXT NOT NULL,
            sessions BIGINT NOT NULL,
            accepting BIGINT NOT NULL,
            seen {time} NOT NULL
        )",
    ],
    // 4: keys kept in the database (the hub's transcript key: a hub has no state root).
    &["CREATE TABLE IF NOT EXISTS signing_keys (
        name TEXT PRIMARY KEY,
        seed TEXT NOT NULL
    )"],
];

/// The schema version this Berth makes and reads.
const VERSION: i64 = 1 + UPGRADES.len() as i64;

/// Any number, the same in every Berth: servers opening one PostgreSQL database at once
/// take turns on this advisory lock to check and change its schema.
const SCHEMA_LOCK: i64 = 0x6265_7274_6864_6230; // "berthdb0"

/// A schema statement for `backend`: `{time}`, a time as RFC 3339 text, compares as
/// bytes (as SQLite's TEXT does; PostgreSQL's default collation may not: ICU's en-US
/// puts "10:00:05.5" before "10:00:05+00:00"), so that `ORDER BY` and `<` on it go by
/// time; `{id}`, an id the database numbers.
fn ddl(stmt: &str, backend: Backend) -> String {
    let (time, id) = match backend {
        Backend::Sqlite => ("TEXT", "INTEGER PRIMARY KEY AUTOINCREMENT"),
        Backend::Postgres => ("TEXT COLLATE \"C\"", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
    };
    stmt.replace("{time}", time).replace("{id}", id)
}

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
    /// The SQLite file at `path`, made when missing.
    pub async fn open(path: &Path) -> Result<Db, DbError> {
        Db::connect(&DbUrl::sqlite(path)).await
    }

    /// Opens the database and brings its schema to this Berth's version (several
    /// servers may do so at once).
    pub async fn connect(url: &DbUrl) -> Result<Db, DbError> {
        sqlx::any::install_default_drivers();
        let connect_err = |error| DbError::Connect { url: url.to_string(), error };
        // SQLite takes one writer at a time whatever the pool; a PostgreSQL server takes
        // 100 connections by default, a few servers' 8 each well below that.
        let max = match url.backend {
            Backend::Sqlite => 4,
            Backend::Postgres => 8,
        };
        let pool = match AnyPoolOptions::new().max_connections(max).acquire_timeout(CONNECT_TIMEOUT).connect_with(url.options.clone()).await {
            Ok(pool) => pool,
            // The pool retries a refused connection until it gives up, and then says only
            // that it timed out; one more try says why.
            Err(sqlx::Error::PoolTimedOut) => return Err(connect_err(url.options.connect().await.err().unwrap_or(sqlx::Error::PoolTimedOut))),
            Err(e) => return Err(connect_err(e)),
        };
        if url.backend == Backend::Sqlite {
            // Readers never wait for the writer. Kept in the file: once is enough.
            sqlx::query("PRAGMA journal_mode = WAL").execute(&pool).await?;
        }
        let db = Db { pool, backend: url.backend };
        db.migrate(url).await?;
        Ok(db)
    }

    /// Brings the schema to [`VERSION`], in one transaction that has the database to
    /// itself.
    async fn migrate(&self, url: &DbUrl) -> Result<(), DbError> {
        let mut tx = self.schema_lock().await?;
        sqlx::query("CREATE TABLE IF NOT EXISTS berth_schema (version BIGINT NOT NULL)").execute(&mut *tx).await?;
        let found: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM berth_schema").fetch_one(&mut *tx).await?;
        let mut version = match found {
            Some(v) => v,
            // A new database, or a SQLite file of a Berth from before the version table.
            // Either way version 1's tables are made where missing; such a file may have
            // `limits` already (version 2, the one change made before versions).
            None => {
                for stmt in SCHEMA_V1 {
                    sqlx::query(&ddl(stmt, self.backend)).execute(&mut *tx).await?;
                }
                if has_column(&mut tx, "classes", "limits").await? {
                    2
                } else {
                    1
                }
            }
        };
        if version > VERSION {
            return Err(DbError::Newer { url: url.to_string(), found: version, known: VERSION });
        }
        while version < VERSION {
            for stmt in UPGRADES[(version - 1) as usize] {
                sqlx::query(&ddl(stmt, self.backend)).execute(&mut *tx).await?;
            }
            version += 1;
        }
        if found != Some(VERSION) {
            sqlx::query("DELETE FROM berth_schema").execute(&mut *tx).await?;
            sqlx::query("INSERT INTO berth_schema (version) VALUES ($1)").bind(VERSION).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A transaction no other opener of the database runs beside.
    async fn schema_lock(&self) -> Result<Transaction<'static, Any>, DbError> {
        Ok(match self.backend {
            // IMMEDIATE takes the write lock first: a second opener waits for it (the
            // busy timeout) rather than failing when its read would turn into a write.
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            // CREATE TABLE IF NOT EXISTS is no lock in PostgreSQL: two at once may both
            // find no table and one then fails on the catalog's unique index.
            Backend::Postgres => {
                let mut tx = self.pool.begin().await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(SCHEMA_LOCK).execute(&mut *tx).await?;
                tx
            }
        })
    }

    /// A trivial query: whether the database answers now (the server's readiness).
    pub async fn ping(&self) -> Result<(), DbError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn insert_session(&self, s: &SessionRow) -> Result<(), DbError> {
        sqlx::query("INSERT INTO sessions (id, created, last_seen, lesson, node) VALUES ($1, $2, $3, $4, $5)")
            .bind(&s.id)
            .bind(s.created.to_rfc3339())
            .bind(s.last_seen.to_rfc3339())
            .bind(&s.lesson)
            .bind(&s.node)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    fn session_row(r: &AnyRow) -> SessionRow {
        SessionRow { id: r.get("id"), created: parse_time(r.get("created")), last_seen: parse_time(r.get("last_seen")), lesson: r.get("lesson"), node: r.get("node") }
    }

    /// Every session, on any node.
    pub async fn sessions(&self) -> Result<Vec<SessionRow>, DbError> {
        let rows = sqlx::query("SELECT id, created, last_seen, lesson, node FROM sessions ORDER BY created, id").fetch_all(&self.pool).await?;
        Ok(rows.iter().map(Db::session_row).collect())
    }

    /// The sessions lab node `node` holds.
    pub async fn sessions_on(&self, node: &str) -> Result<Vec<SessionRow>, DbError> {
        let rows = sqlx::query("SELECT id, created, last_seen, lesson, node FROM sessions WHERE node = $1 ORDER BY created, id").bind(node).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(Db::session_row).collect())
    }

    pub async fn session(&self, id: &str) -> Result<Option<SessionRow>, DbError> {
        let row = sqlx::query("SELECT id, created, last_seen, lesson, node FROM sessions WHERE id = $1").bind(id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(Db::session_row))
    }

    /// The key named `name` (base64 of its secret), stored as `seed` if there was none:
    /// the one stored, whoever stored it first.
    pub async fn signing_key_or(&self, name: &str, seed: &str) -> Result<String, DbError> {
        sqlx::query("INSERT INTO signing_keys (name, seed) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING").bind(name).bind(seed).execute(&self.pool).await?;
        Ok(sqlx::query_scalar("SELECT seed FROM signing_keys WHERE name = $1").bind(name).fetch_one(&self.pool).await?)
    }

    /// The key named `name`, if any.
    pub async fn signing_key(&self, name: &str) -> Result<Option<String>, DbError> {
        Ok(sqlx::query_scalar("SELECT seed FROM signing_keys WHERE name = $1").bind(name).fetch_optional(&self.pool).await?)
    }

    /// Records what a lab node says of itself now (made on its first word).
    pub async fn put_node(&self, n: &NodeRow) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO nodes (name, url, sessions, accepting, seen) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (name) DO UPDATE SET url = excluded.url, sessions = excluded.sessions, accepting = excluded.accepting, seen = excluded.seen",
        )
        .bind(&n.name)
        .bind(&n.url)
        .bind(n.sessions)
        .bind(i64::from(n.accepting))
        .bind(n.seen.to_rfc3339())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The lab nodes that ever spoke, by name.
    pub async fn nodes(&self) -> Result<Vec<NodeRow>, DbError> {
        let rows = sqlx::query("SELECT name, url, sessions, accepting, seen FROM nodes ORDER BY name").fetch_all(&self.pool).await?;
        Ok(rows
            .iter()
            .map(|r| NodeRow {
                name: r.get("name"),
                url: r.get("url"),
                sessions: r.get("sessions"),
                accepting: r.get::<i64, _>("accepting") != 0,
                seen: parse_time(r.get("seen")),
            })
            .collect())
    }

    pub async fn touch(&self, id: &str, at: DateTime<Utc>) -> Result<(), DbError> {
        sqlx::query("UPDATE sessions SET last_seen = $1 WHERE id = $2").bind(at.to_rfc3339()).bind(id).execute(&self.pool).await?;
        Ok(())
    }

    /// The session is held by `node` from now on (an ended lab made again elsewhere).
    pub async fn move_session(&self, id: &str, node: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE sessions SET node = $1 WHERE id = $2").bind(node).bind(id).execute(&self.pool).await?;
        Ok(())
    }

    pub async fn set_lesson(&self, id: &str, lesson: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE sessions SET lesson = $1 WHERE id = $2").bind(lesson).bind(id).execute(&self.pool).await?;
        Ok(())
    }

    pub async fn delete_session(&self, id: &str) -> Result<(), DbError> {
        sqlx::query("DELETE FROM sessions WHERE id = $1").bind(id).execute(&self.pool).await?;
        Ok(())
    }

    pub async fn mark_done(&self, id: &str, lesson: &str, step: &str) -> Result<(), DbError> {
        sqlx::query("INSERT INTO progress (session, lesson, step, done_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
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
        let changed = sqlx::query("UPDATE instructors SET password_hash = $1 WHERE name = $2").bind(password_hash).bind(name).execute(&self.pool).await?;
        if changed.rows_affected() > 0 {
            return Ok(false);
        }
        sqlx::query("INSERT INTO instructors (name, password_hash, created) VALUES ($1, $2, $3)")
            .bind(name)
            .bind(password_hash)
            .bind(Utc::now().to_rfc3339())
            .execute(&self.pool)
            .await?;
        Ok(true)
    }

    /// The password hash of an instructor.
    pub async fn instructor_hash(&self, name: &str) -> Result<Option<String>, DbError> {
        let row = sqlx::query("SELECT password_hash FROM instructors WHERE name = $1").bind(name).fetch_optional(&self.pool).await?;
        Ok(row.map(|r| r.get("password_hash")))
    }

    /// Stores a new class. Fails (a unique-constraint error, see
    /// [`DbError::is_duplicate`]) when its code is taken.
    pub async fn insert_class(&self, c: &ClassRow) -> Result<(), DbError> {
        sqlx::query("INSERT INTO classes (id, name, code, lessons, opens, closes, created, limits) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
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
        let r = sqlx::query("UPDATE classes SET limits = $1 WHERE id = $2").bind(serde_json::to_string(limits).unwrap_or_default()).bind(id).execute(&self.pool).await?;
        Ok(r.rows_affected() > 0)
    }

    /// Every class, oldest first.
    pub async fn classes(&self) -> Result<Vec<ClassRow>, DbError> {
        let rows = sqlx::query("SELECT id, name, code, lessons, opens, closes, created, limits FROM classes ORDER BY created, id").fetch_all(&self.pool).await?;
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
        let r = sqlx::query("UPDATE classes SET opens = $1, closes = $2 WHERE id = $3")
            .bind(opens.map(|t| t.to_rfc3339()))
            .bind(closes.map(|t| t.to_rfc3339()))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Adds a student. Fails (see [`DbError::is_duplicate`]) when the name is taken.
    pub async fn insert_member(&self, m: &MemberRow) -> Result<(), DbError> {
        sqlx::query("INSERT INTO members (class, name, name_key, pin_salt, pin_hash, token_hash, session, joined) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
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

    fn member_row(r: &AnyRow) -> MemberRow {
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
        sqlx::query("UPDATE members SET ended = $1 WHERE class = $2 AND name_key = $3").bind(at.map(|t| t.to_rfc3339())).bind(class).bind(name_key).execute(&self.pool).await?;
        Ok(())
    }

    pub async fn insert_evidence(&self, session: &str, lesson: &str, step: &str, attempts: u32, events: &str) -> Result<(), DbError> {
        sqlx::query("INSERT INTO evidence (session, lesson, step, attempts, events) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING")
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
             WHERE p.session = $1 ORDER BY p.done_at, p.lesson, p.step",
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
        let id = sqlx::query_scalar("INSERT INTO messages (class, at, sender, recipient, recipient_key, kind, text) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id")
            .bind(&m.class)
            .bind(m.at.to_rfc3339())
            .bind(&m.sender)
            .bind(&m.recipient)
            .bind(&m.recipient_key)
            .bind(&m.kind)
            .bind(&m.text)
            .fetch_one(&self.pool)
            .await?;
        Ok(id)
    }

    /// A class's messages, oldest first: all of them (`recipient_key` None), or those
    /// a student sees (to the class, or to them).
    pub async fn messages(&self, class: &str, recipient_key: Option<&str>, limit: i64) -> Result<Vec<MessageRow>, DbError> {
        let rows = sqlx::query(
            "SELECT * FROM (SELECT id, class, at, sender, recipient, recipient_key, kind, text FROM messages
             WHERE class = $1 AND ($2 IS NULL OR recipient_key IS NULL OR recipient_key = $2) ORDER BY id DESC LIMIT $3) AS latest ORDER BY id",
        )
        .bind(class)
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
        sqlx::query("INSERT INTO hands (class, name_key, name, raised_at, note) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (class, name_key) DO UPDATE SET note = excluded.note")
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
        let r = sqlx::query("DELETE FROM hands WHERE class = $1 AND name_key = $2").bind(class).bind(name_key).execute(&self.pool).await?;
        Ok(r.rows_affected() > 0)
    }

    /// A class's raised hands, oldest first.
    pub async fn hands(&self, class: &str) -> Result<Vec<HandRow>, DbError> {
        let rows = sqlx::query("SELECT name_key, name, raised_at, note FROM hands WHERE class = $1 ORDER BY raised_at, name_key").bind(class).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(|r| HandRow { name_key: r.get("name_key"), name: r.get("name"), raised_at: parse_time(r.get("raised_at")), note: r.get("note") }).collect())
    }

    pub async fn record_action(&self, class: &str, instructor: &str, action: &str, student: Option<&str>) -> Result<(), DbError> {
        sqlx::query("INSERT INTO audit (class, at, instructor, action, student) VALUES ($1, $2, $3, $4, $5)")
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
        let rows = sqlx::query("SELECT at, instructor, action, student FROM audit WHERE class = $1 ORDER BY id DESC LIMIT $2").bind(class).bind(limit).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(|r| AuditRow { at: parse_time(r.get("at")), instructor: r.get("instructor"), action: r.get("action"), student: r.get("student") }).collect())
    }

    pub async fn member(&self, class: &str, name_key: &str) -> Result<Option<MemberRow>, DbError> {
        let q = format!("SELECT {} FROM members WHERE class = $1 AND name_key = $2", Self::MEMBER_COLUMNS);
        Ok(sqlx::query(&q).bind(class).bind(name_key).fetch_optional(&self.pool).await?.as_ref().map(Self::member_row))
    }

    pub async fn member_by_token(&self, class: &str, token_hash: &str) -> Result<Option<MemberRow>, DbError> {
        let q = format!("SELECT {} FROM members WHERE class = $1 AND token_hash = $2", Self::MEMBER_COLUMNS);
        Ok(sqlx::query(&q).bind(class).bind(token_hash).fetch_optional(&self.pool).await?.as_ref().map(Self::member_row))
    }

    /// Every student of every class, in the order they joined.
    /// A class's students, in the order they joined.
    pub async fn class_members(&self, class: &str) -> Result<Vec<MemberRow>, DbError> {
        let q = format!("SELECT {} FROM members WHERE class = $1 ORDER BY joined, name", Self::MEMBER_COLUMNS);
        Ok(sqlx::query(&q).bind(class).fetch_all(&self.pool).await?.iter().map(Self::member_row).collect())
    }

    pub async fn members(&self) -> Result<Vec<MemberRow>, DbError> {
        let q = format!("SELECT {} FROM members ORDER BY joined, class, name_key", Self::MEMBER_COLUMNS);
        Ok(sqlx::query(&q).fetch_all(&self.pool).await?.iter().map(Self::member_row).collect())
    }

    /// Counts a wrong PIN; from `max` on, the name is locked until `until`.
    pub async fn pin_failed(&self, class: &str, name_key: &str, max: i64, until: DateTime<Utc>) -> Result<(), DbError> {
        sqlx::query("UPDATE members SET pin_failures = pin_failures + 1, locked_until = CASE WHEN pin_failures + 1 >= $1 THEN $2 ELSE locked_until END WHERE class = $3 AND name_key = $4")
            .bind(max)
            .bind(until.to_rfc3339())
            .bind(class)
            .bind(name_key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn pin_passed(&self, class: &str, name_key: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE members SET pin_failures = 0, locked_until = NULL WHERE class = $1 AND name_key = $2").bind(class).bind(name_key).execute(&self.pool).await?;
        Ok(())
    }

    /// Gives a student a new lab (theirs was removed).
    pub async fn set_member_session(&self, class: &str, name_key: &str, session: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE members SET session = $1 WHERE class = $2 AND name_key = $3").bind(session).bind(class).bind(name_key).execute(&self.pool).await?;
        Ok(())
    }

    pub async fn insert_login(&self, token_hash: &str, instructor: &str, expires: DateTime<Utc>) -> Result<(), DbError> {
        sqlx::query("INSERT INTO teach_logins (token_hash, instructor, created, expires) VALUES ($1, $2, $3, $4)")
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
        let row = sqlx::query("SELECT instructor, expires FROM teach_logins WHERE token_hash = $1").bind(token_hash).fetch_optional(&self.pool).await?;
        Ok(row.filter(|r| parse_time(r.get("expires")) > Utc::now()).map(|r| r.get("instructor")))
    }

    pub async fn delete_login(&self, token_hash: &str) -> Result<(), DbError> {
        sqlx::query("DELETE FROM teach_logins WHERE token_hash = $1 OR expires < $2").bind(token_hash).bind(Utc::now().to_rfc3339()).execute(&self.pool).await?;
        Ok(())
    }

    /// (lesson, step, done at) of a session, oldest first.
    pub async fn progress_times(&self, id: &str) -> Result<Vec<(String, String, DateTime<Utc>)>, DbError> {
        let rows = sqlx::query("SELECT lesson, step, done_at FROM progress WHERE session = $1 ORDER BY done_at, lesson, step").bind(id).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(|r| (r.get("lesson"), r.get("step"), parse_time(r.get("done_at")))).collect())
    }

    /// (lesson, step) pairs done in a session, oldest first.
    pub async fn progress(&self, id: &str) -> Result<Vec<(String, String)>, DbError> {
        let rows = sqlx::query("SELECT lesson, step FROM progress WHERE session = $1 ORDER BY done_at, lesson, step").bind(id).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(|r| (r.get("lesson"), r.get("step"))).collect())
    }
}

fn parse_time(s: String) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&s).map(|t| t.with_timezone(&Utc)).unwrap_or_else(|_| Utc::now())
}

/// Whether `table` has `column`: a query naming it fails if not. In a savepoint, as
/// PostgreSQL refuses anything after an error until the transaction rolls back.
async fn has_column(tx: &mut Transaction<'static, Any>, table: &str, column: &str) -> Result<bool, sqlx::Error> {
    let mut probe = tx.begin().await?;
    let found = sqlx::query(&format!("SELECT {column} FROM {table} WHERE 1 = 0")).execute(&mut *probe).await.is_ok();
    probe.rollback().await?;
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_tests::postgres::Postgres;

    /// An empty database for a test and what holds it.
    struct Fresh {
        url: DbUrl,
        _dir: Option<tempfile::TempDir>,
        _server: Option<Postgres>,
    }

    impl Fresh {
        async fn open(&self) -> Db {
            Db::connect(&self.url).await.unwrap_or_else(|e| panic!("open {}: {e}", self.url))
        }
    }

    fn sqlite() -> Fresh {
        let dir = tempfile::tempdir().unwrap();
        Fresh { url: DbUrl::sqlite(&dir.path().join("lab.db")), _dir: Some(dir), _server: None }
    }

    fn postgres() -> Fresh {
        let server = Postgres::start();
        Fresh { url: DbUrl::parse(&server.url()).unwrap(), _dir: None, _server: Some(server) }
    }

    /// Runs each test body on a new SQLite file (`sqlite::NAME`) and on a new
    /// PostgreSQL database (`postgres::NAME`).
    macro_rules! on_both {
        ($($name:ident),* $(,)?) => {
            mod sqlite {
                $(#[tokio::test]
                async fn $name() {
                    super::$name(super::sqlite()).await
                })*
            }
            mod postgres {
                $(#[tokio::test]
                async fn $name() {
                    super::$name(super::postgres()).await
                })*
            }
        };
    }

    on_both!(sessions_and_progress_survive_reopening, nodes_hold_their_own_sessions, classroom_records_round_trip, times_sort_as_times, servers_open_one_database_at_once, a_newer_schema_is_refused);

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    async fn sessions_and_progress_survive_reopening(f: Fresh) {
        let now = Utc::now();
        {
            let db = f.open().await;
            db.insert_session(&SessionRow { id: "s1".into(), created: now, last_seen: now, lesson: None, node: LOCAL_NODE.into() }).await.unwrap();
            db.set_lesson("s1", "01-lifecycle").await.unwrap();
            db.mark_done("s1", "01-lifecycle", "search").await.unwrap();
            db.mark_done("s1", "01-lifecycle", "search").await.unwrap();
            db.mark_done("s1", "01-lifecycle", "pull").await.unwrap();
        }
        let db = f.open().await;
        let s = db.sessions().await.unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].lesson.as_deref(), Some("01-lifecycle"));
        assert_eq!(db.progress("s1").await.unwrap(), vec![("01-lifecycle".into(), "search".into()), ("01-lifecycle".into(), "pull".into())]);
        db.delete_session("s1").await.unwrap();
        assert!(db.sessions().await.unwrap().is_empty());
        assert!(db.progress("s1").await.unwrap().is_empty());
    }

    async fn nodes_hold_their_own_sessions(f: Fresh) {
        let db = f.open().await;
        let now = Utc::now();
        for (id, node) in [("a1", "node-a"), ("b1", "node-b"), ("a2", "node-a")] {
            db.insert_session(&SessionRow { id: id.into(), created: now, last_seen: now, lesson: None, node: node.into() }).await.unwrap();
        }
        let ids = |rows: Vec<SessionRow>| rows.into_iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(ids(db.sessions_on("node-a").await.unwrap()), ["a1", "a2"]);
        assert_eq!(ids(db.sessions_on("node-b").await.unwrap()), ["b1"]);
        assert!(db.sessions_on(LOCAL_NODE).await.unwrap().is_empty());
        assert_eq!(db.session("b1").await.unwrap().map(|r| r.node).as_deref(), Some("node-b"));
        assert_eq!(db.session("nope").await.unwrap(), None);

        let mut a = NodeRow { name: "node-a".into(), url: "http://10.0.0.1:8080".into(), sessions: 2, accepting: true, seen: at("2026-01-05T10:00:00Z") };
        db.put_node(&a).await.unwrap();
        // A node's next word replaces its last (a restarted pod may have a new address).
        a = NodeRow { url: "http://10.0.0.9:8080".into(), sessions: 3, accepting: false, seen: at("2026-01-05T10:00:05Z"), ..a };
        db.put_node(&a).await.unwrap();
        let b = NodeRow { name: "node-b".into(), url: "http://10.0.0.2:8080".into(), sessions: 1, accepting: true, seen: at("2026-01-05T10:00:01Z") };
        db.put_node(&b).await.unwrap();
        assert_eq!(db.nodes().await.unwrap(), [a, b]);

        // The first key stored is the one every later caller gets.
        assert_eq!(db.signing_key("transcripts").await.unwrap(), None);
        assert_eq!(db.signing_key_or("transcripts", "first").await.unwrap(), "first");
        assert_eq!(db.signing_key_or("transcripts", "second").await.unwrap(), "first");
        assert_eq!(db.signing_key("transcripts").await.unwrap().as_deref(), Some("first"));
    }

    fn class(id: &str, code: &str, created: DateTime<Utc>) -> ClassRow {
        ClassRow { id: id.into(), name: format!("class {id}"), code: code.into(), lessons: vec!["lifecycle".into(), "images".into()], opens: None, closes: None, created, limits: Default::default() }
    }

    fn member(class: &str, name: &str, token: &str, joined: DateTime<Utc>) -> MemberRow {
        MemberRow {
            class: class.into(),
            name: name.into(),
            name_key: name.to_lowercase(),
            pin_salt: "salt".into(),
            pin_hash: format!("pin of {name}"),
            token_hash: token.into(),
            session: format!("lab of {name}"),
            joined,
            pin_failures: 0,
            locked_until: None,
            ended: None,
        }
    }

    /// Every query, with what the classroom relies on: a taken name or code is a
    /// duplicate, messages are numbered in order, a hand raised again keeps its place.
    async fn classroom_records_round_trip(f: Fresh) {
        let db = f.open().await;
        let t0 = at("2026-12-01T09:00:00+00:00");
        let later = |secs| t0 + chrono::Duration::seconds(secs);

        assert!(db.put_instructor("kim", "hash 1").await.unwrap());
        assert!(!db.put_instructor("kim", "hash 2").await.unwrap(), "a new password, not a new instructor");
        assert_eq!(db.instructor_hash("kim").await.unwrap().as_deref(), Some("hash 2"));
        assert_eq!(db.instructor_hash("lee").await.unwrap(), None);

        let mut a = class("a", "ABCD2345", t0);
        a.opens = Some(later(60));
        a.closes = Some(later(3600));
        a.limits = berth_lessons::api::ClassLimits { session_cpus: Some(0.5), session_memory: Some(512 << 20), ..Default::default() };
        db.insert_class(&a).await.unwrap();
        db.insert_class(&class("b", "EFGH6789", later(1))).await.unwrap();
        let e = db.insert_class(&class("c", "ABCD2345", later(2))).await.unwrap_err();
        assert!(e.is_duplicate(), "{e}");
        assert_eq!(db.classes().await.unwrap().iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(db.class("a").await.unwrap().as_ref(), Some(&a));
        assert_eq!(db.class_by_code("EFGH6789").await.unwrap().map(|c| c.id), Some("b".to_string()));
        assert!(db.set_class_window("b", Some(later(5)), None).await.unwrap());
        assert!(!db.set_class_window("zz", None, None).await.unwrap());
        assert_eq!(db.class("b").await.unwrap().unwrap().opens, Some(later(5)));
        let limits = berth_lessons::api::ClassLimits { containers: Some(3), ..Default::default() };
        assert!(db.set_class_limits("b", &limits).await.unwrap());
        assert_eq!(db.class("b").await.unwrap().unwrap().limits, limits);

        let ann = member("a", "Ann", "token-ann", later(10));
        db.insert_member(&ann).await.unwrap();
        db.insert_member(&member("a", "Bo", "token-bo", later(11))).await.unwrap();
        db.insert_member(&member("b", "Ann", "token-ann-b", later(12))).await.unwrap();
        for taken in [member("a", "ANN", "token-other", later(13)), member("a", "Cy", "token-bo", later(13))] {
            let e = db.insert_member(&taken).await.unwrap_err();
            assert!(e.is_duplicate(), "{e}");
        }
        assert_eq!(db.member("a", "ann").await.unwrap().as_ref(), Some(&ann));
        assert_eq!(db.member_by_token("a", "token-bo").await.unwrap().map(|m| m.name), Some("Bo".to_string()));
        assert_eq!(db.member_by_token("b", "token-bo").await.unwrap(), None);
        let until = later(600);
        for _ in 0..2 {
            db.pin_failed("a", "ann", 3, until).await.unwrap();
        }
        let m = db.member("a", "ann").await.unwrap().unwrap();
        assert_eq!((m.pin_failures, m.locked_until), (2, None));
        db.pin_failed("a", "ann", 3, until).await.unwrap();
        let m = db.member("a", "ann").await.unwrap().unwrap();
        assert_eq!((m.pin_failures, m.locked_until), (3, Some(until)));
        db.pin_passed("a", "ann").await.unwrap();
        let m = db.member("a", "ann").await.unwrap().unwrap();
        assert_eq!((m.pin_failures, m.locked_until), (0, None));
        db.set_member_session("a", "ann", "new lab").await.unwrap();
        db.set_member_ended("a", "bo", Some(later(20))).await.unwrap();
        let all = db.members().await.unwrap();
        assert_eq!(all.iter().map(|m| (m.class.as_str(), m.name.as_str())).collect::<Vec<_>>(), [("a", "Ann"), ("a", "Bo"), ("b", "Ann")]);
        assert_eq!((all[0].session.as_str(), all[1].ended), ("new lab", Some(later(20))));
        db.set_member_ended("a", "bo", None).await.unwrap();
        assert_eq!(db.member("a", "bo").await.unwrap().unwrap().ended, None);

        // Steps done, with the evidence of those that have it, in the order done.
        db.insert_session(&SessionRow { id: "s".into(), created: t0, last_seen: t0, lesson: None, node: LOCAL_NODE.into() }).await.unwrap();
        db.touch("s", later(30)).await.unwrap();
        assert_eq!(db.sessions().await.unwrap()[0].last_seen, later(30));
        db.mark_done("s", "lifecycle", "search").await.unwrap();
        db.insert_evidence("s", "lifecycle", "search", 2, "[1]").await.unwrap();
        db.insert_evidence("s", "lifecycle", "search", 9, "[9]").await.unwrap();
        db.mark_done("s", "lifecycle", "pull").await.unwrap();
        let done = db.done_steps("s").await.unwrap();
        assert_eq!(done.iter().map(|d| (d.step.as_str(), d.attempts, d.events.as_deref())).collect::<Vec<_>>(), [("search", Some(2), Some("[1]")), ("pull", None, None)]);
        let times = db.progress_times("s").await.unwrap();
        assert!(times[0].2 <= times[1].2 && times[1].2 <= Utc::now(), "{times:?}");

        let msg = |recipient: Option<&str>, text: &str| MessageRow {
            id: 0,
            class: "a".into(),
            at: later(40),
            sender: "kim".into(),
            recipient: recipient.map(str::to_string),
            recipient_key: recipient.map(str::to_lowercase),
            kind: "message".into(),
            text: text.into(),
        };
        let ids = [db.insert_message(&msg(None, "hello all")).await.unwrap(), db.insert_message(&msg(Some("Ann"), "hi Ann")).await.unwrap(), db.insert_message(&msg(Some("Bo"), "hi Bo")).await.unwrap()];
        assert!(ids[0] < ids[1] && ids[1] < ids[2], "{ids:?}");
        let texts = |rows: Vec<MessageRow>| rows.into_iter().map(|m| m.text).collect::<Vec<_>>();
        assert_eq!(texts(db.messages("a", None, 50).await.unwrap()), ["hello all", "hi Ann", "hi Bo"]);
        assert_eq!(texts(db.messages("a", Some("ann"), 50).await.unwrap()), ["hello all", "hi Ann"]);
        assert_eq!(texts(db.messages("a", None, 2).await.unwrap()), ["hi Ann", "hi Bo"], "the latest, oldest first");
        let first = &db.messages("a", None, 50).await.unwrap()[1];
        assert_eq!((first.id, first.at, first.recipient.as_deref(), first.recipient_key.as_deref()), (ids[1], later(40), Some("Ann"), Some("ann")));
        assert!(db.messages("b", None, 50).await.unwrap().is_empty());

        db.raise_hand("a", "bo", "Bo", "help").await.unwrap();
        db.raise_hand("a", "ann", "Ann", "").await.unwrap();
        db.raise_hand("a", "bo", "Bo", "still stuck").await.unwrap();
        let hands = db.hands("a").await.unwrap();
        assert_eq!(hands.iter().map(|h| (h.name.as_str(), h.note.as_str())).collect::<Vec<_>>(), [("Bo", "still stuck"), ("Ann", "")]);
        assert!(db.lower_hand("a", "bo").await.unwrap());
        assert!(!db.lower_hand("a", "bo").await.unwrap());
        assert_eq!(db.hands("a").await.unwrap().len(), 1);

        db.record_action("a", "kim", "watch", Some("Ann")).await.unwrap();
        db.record_action("a", "kim", "close", None).await.unwrap();
        let actions = db.actions("a", 10).await.unwrap();
        assert_eq!(actions.iter().map(|a| (a.action.as_str(), a.student.as_deref())).collect::<Vec<_>>(), [("close", None), ("watch", Some("Ann"))]);
        assert_eq!(db.actions("a", 1).await.unwrap().len(), 1);

        db.insert_login("t1", "kim", Utc::now() + chrono::Duration::hours(1)).await.unwrap();
        db.insert_login("t0", "kim", Utc::now() - chrono::Duration::hours(1)).await.unwrap();
        assert_eq!(db.login("t1").await.unwrap().as_deref(), Some("kim"));
        assert_eq!(db.login("t0").await.unwrap(), None, "expired");
        assert_eq!(db.login("nope").await.unwrap(), None);
        let e = db.insert_login("t1", "kim", Utc::now()).await.unwrap_err();
        assert!(e.is_duplicate(), "{e}");
        db.delete_login("t1").await.unwrap();
        assert_eq!(db.login("t1").await.unwrap(), None);
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM teach_logins").fetch_one(&db.pool).await.unwrap();
        assert_eq!(left, 0, "a logout also clears the expired logins");
    }

    /// Times are RFC 3339 text; a whole second has no fraction ("10:00:05+00:00"). As
    /// bytes that sorts before "10:00:05.500+00:00"; in ICU's en-US, which the test's
    /// PostgreSQL has, it would not.
    async fn times_sort_as_times(f: Fresh) {
        let db = f.open().await;
        let whole = at("2026-12-01T10:00:05+00:00");
        let half = at("2026-12-01T10:00:05.5+00:00");
        db.insert_class(&class("later", "ABCD2345", half)).await.unwrap();
        db.insert_class(&class("earlier", "EFGH6789", whole)).await.unwrap();
        assert_eq!(db.classes().await.unwrap().iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["earlier", "later"]);
        db.insert_member(&member("later", "Ann", "t-ann", half)).await.unwrap();
        db.insert_member(&member("later", "Bo", "t-bo", whole)).await.unwrap();
        assert_eq!(db.members().await.unwrap().iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["Bo", "Ann"]);
        for (id, created) in [("s-later", half), ("s-earlier", whole)] {
            db.insert_session(&SessionRow { id: id.into(), created, last_seen: created, lesson: None, node: LOCAL_NODE.into() }).await.unwrap();
        }
        assert_eq!(db.sessions().await.unwrap().iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["s-earlier", "s-later"]);
        // A login that expired on a whole second is cleared by a logout a moment later.
        db.put_instructor("kim", "hash").await.unwrap();
        let now = Utc::now();
        let expired = now - chrono::Duration::nanoseconds(now.timestamp_subsec_nanos() as i64 + 1_000_000_000);
        db.insert_login("old", "kim", expired).await.unwrap();
        db.delete_login("other").await.unwrap();
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM teach_logins").fetch_one(&db.pool).await.unwrap();
        assert_eq!(left, 0, "expired at {}", expired.to_rfc3339());
    }

    /// Several servers starting on one database: each finds the schema made, once.
    async fn servers_open_one_database_at_once(f: Fresh) {
        let opened = futures_util::future::join_all((0..4).map(|_| Db::connect(&f.url))).await;
        for db in &opened {
            if let Err(e) = db {
                panic!("{e}");
            }
        }
        let db = opened.into_iter().next().unwrap().unwrap();
        let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM berth_schema").fetch_all(&db.pool).await.unwrap();
        assert_eq!(versions, [VERSION]);
        db.put_instructor("kim", "hash").await.unwrap();
        assert_eq!(f.open().await.instructor_hash("kim").await.unwrap().as_deref(), Some("hash"));
    }

    async fn a_newer_schema_is_refused(f: Fresh) {
        let db = f.open().await;
        sqlx::query("UPDATE berth_schema SET version = 99").execute(&db.pool).await.unwrap();
        match Db::connect(&f.url).await {
            Err(DbError::Newer { found: 99, known: VERSION, .. }) => {}
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("opened a database of schema version 99"),
        }
    }

    /// Berth's schema before it kept a version (without `limits`, which came last).
    const OLD_SCHEMA: &[&str] = &[
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

    /// A SQLite file made by an older Berth opens with its records, and takes new ones.
    async fn old_sqlite_file(with_limits: bool) {
        use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lab.db");
        {
            let opts = SqliteConnectOptions::new().filename(&path).create_if_missing(true).journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
            let old = SqlitePoolOptions::new().max_connections(1).connect_with(opts).await.unwrap();
            for stmt in OLD_SCHEMA {
                sqlx::query(stmt).execute(&old).await.unwrap();
            }
            if with_limits {
                sqlx::query("ALTER TABLE classes ADD COLUMN limits TEXT").execute(&old).await.unwrap();
            }
            for stmt in [
                "INSERT INTO sessions VALUES ('s1', '2026-01-05T10:00:00+00:00', '2026-01-05T10:30:00.250+00:00', 'lifecycle')",
                "INSERT INTO progress VALUES ('s1', 'lifecycle', 'search', '2026-01-05T10:01:00+00:00')",
                "INSERT INTO progress VALUES ('s1', 'lifecycle', 'pull', '2026-01-05T10:02:00.123456+00:00')",
                "INSERT INTO evidence VALUES ('s1', 'lifecycle', 'search', 3, '[]')",
                "INSERT INTO instructors VALUES ('kim', 'hash', '2026-01-01T00:00:00+00:00')",
                "INSERT INTO classes (id, name, code, lessons, opens, closes, created) VALUES ('c1', 'Docker 101', 'ABCD2345', 'lifecycle,images', NULL, '2026-02-01T00:00:00+00:00', '2026-01-02T00:00:00+00:00')",
                "INSERT INTO members (class, name, name_key, pin_salt, pin_hash, token_hash, session, joined, pin_failures) VALUES ('c1', 'Ann', 'ann', 'salt', 'pin', 'token', 's1', '2026-01-05T10:00:00+00:00', 2)",
                "INSERT INTO messages (class, at, sender, recipient, recipient_key, kind, text) VALUES ('c1', '2026-01-05T10:05:00+00:00', 'kim', NULL, NULL, 'message', 'hello')",
                "INSERT INTO messages (class, at, sender, recipient, recipient_key, kind, text) VALUES ('c1', '2026-01-05T10:06:00+00:00', 'kim', 'Ann', 'ann', 'message', 'hi Ann')",
                "INSERT INTO hands VALUES ('c1', 'ann', 'Ann', '2026-01-05T10:07:00+00:00', 'help')",
                "INSERT INTO audit (class, at, instructor, action, student) VALUES ('c1', '2026-01-05T10:08:00+00:00', 'kim', 'watch', 'Ann')",
                "INSERT INTO teach_logins VALUES ('t', 'kim', '2026-01-05T09:00:00+00:00', '2999-01-01T00:00:00+00:00')",
            ] {
                sqlx::query(stmt).execute(&old).await.unwrap();
            }
            if with_limits {
                sqlx::query("UPDATE classes SET limits = '{\"containers\":4}'").execute(&old).await.unwrap();
            }
            old.close().await;
        }

        let db = Db::open(&path).await.unwrap();
        assert_eq!(db.sessions().await.unwrap(), [SessionRow { id: "s1".into(), created: at("2026-01-05T10:00:00Z"), last_seen: at("2026-01-05T10:30:00.25Z"), lesson: Some("lifecycle".into()), node: LOCAL_NODE.into() }]);
        let done = db.done_steps("s1").await.unwrap();
        assert_eq!(done.iter().map(|d| (d.step.as_str(), d.attempts)).collect::<Vec<_>>(), [("search", Some(3)), ("pull", None)]);
        assert_eq!(done[1].done_at, at("2026-01-05T10:02:00.123456Z"));
        assert_eq!(db.instructor_hash("kim").await.unwrap().as_deref(), Some("hash"));
        let c = db.class("c1").await.unwrap().unwrap();
        assert_eq!((c.code.as_str(), c.lessons.join(","), c.opens, c.closes), ("ABCD2345", "lifecycle,images".into(), None, Some(at("2026-02-01T00:00:00Z"))));
        assert_eq!(c.limits.containers, if with_limits { Some(4) } else { None });
        let m = db.member("c1", "ann").await.unwrap().unwrap();
        assert_eq!((m.session.as_str(), m.pin_failures, m.joined), ("s1", 2, at("2026-01-05T10:00:00Z")));
        assert_eq!(db.messages("c1", Some("ann"), 50).await.unwrap().iter().map(|m| (m.id, m.text.as_str())).collect::<Vec<_>>(), [(1, "hello"), (2, "hi Ann")]);
        assert_eq!(db.hands("c1").await.unwrap()[0].note, "help");
        assert_eq!(db.actions("c1", 10).await.unwrap()[0].student.as_deref(), Some("Ann"));
        assert_eq!(db.login("t").await.unwrap().as_deref(), Some("kim"));

        // New records go on from the old ones.
        let id = db.insert_message(&MessageRow { id: 0, class: "c1".into(), at: Utc::now(), sender: "kim".into(), recipient: None, recipient_key: None, kind: "message".into(), text: "again".into() }).await.unwrap();
        assert_eq!(id, 3);
        let limits = berth_lessons::api::ClassLimits { session_pids: Some(64), ..Default::default() };
        assert!(db.set_class_limits("c1", &limits).await.unwrap());
        db.mark_done("s1", "lifecycle", "run").await.unwrap();
        drop(db);
        let db = Db::open(&path).await.unwrap();
        assert_eq!(db.class("c1").await.unwrap().unwrap().limits, limits);
        assert_eq!(db.progress("s1").await.unwrap().len(), 3);
        let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM berth_schema").fetch_all(&db.pool).await.unwrap();
        assert_eq!(versions, [VERSION]);
    }

    #[tokio::test]
    async fn an_old_sqlite_file_opens_with_its_records() {
        old_sqlite_file(true).await;
    }

    #[tokio::test]
    async fn an_old_sqlite_file_from_before_class_limits_opens_with_its_records() {
        old_sqlite_file(false).await;
    }

    #[test]
    fn urls_are_shown_without_their_password() {
        let u = DbUrl::parse("postgres://kim:hunter2@db.example:5433/berth?sslmode=disable").unwrap();
        assert_eq!(u.backend(), Backend::Postgres);
        assert_eq!(u.to_string(), "postgres://kim:****@db.example:5433/berth?sslmode=disable");
        assert!(!format!("{u:?}").contains("hunter2"));
        let u = DbUrl::parse("postgresql://kim@db.example/berth?password=hunter2&application_name=berth").unwrap();
        assert_eq!(u.to_string(), "postgresql://kim@db.example/berth?password=****&application_name=berth");
        let u = DbUrl::parse("sqlite:/var/lib/my berth/lab.db").unwrap();
        assert_eq!((u.backend(), u.to_string()), (Backend::Sqlite, "sqlite:/var/lib/my berth/lab.db".to_string()));
        assert_eq!(DbUrl::sqlite(Path::new("/var/lib/berth/lab.db")).to_string(), "sqlite:/var/lib/berth/lab.db");
        assert_eq!(format!("{:?}", DatabaseOptions { database: Some(DatabaseArg("postgres://kim:hunter2@db/x".into())) }), "DatabaseOptions { database: Some(DatabaseArg(..)) }");
    }

    #[test]
    fn bad_urls_are_refused_without_repeating_them() {
        for (url, says) in [
            ("mysql://root:hunter2@db/berth", "mysql: not a database"),
            ("hunter2", "not a URL"),
            ("postgres://kim:hunter2@db:port/berth", "postgres: "),
            ("postgres://kim:hunter2@db/berth?sslmode=sometimes", "postgres: "),
            ("sqlite:/tmp/lab.db?mode=sometimes", "sqlite: "),
        ] {
            let e = DbUrl::parse(url).unwrap_err().to_string();
            assert!(e.contains(says) && !e.contains("hunter2"), "{url}: {e}");
        }
    }

    /// Nothing listens on the port: the pool retries (a database may still be starting)
    /// and then says why it gave up.
    #[tokio::test]
    async fn an_unreachable_database_is_a_clear_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = DbUrl::parse(&format!("postgres://kim:hunter2@127.0.0.1:{port}/berth")).unwrap();
        let started = std::time::Instant::now();
        let e = match Db::connect(&url).await {
            Err(e) => e.to_string(),
            Ok(_) => panic!("connected to a closed port"),
        };
        assert!(e.contains(&format!("postgres://kim:****@127.0.0.1:{port}/berth")) && e.to_lowercase().contains("refused") && !e.contains("hunter2"), "{e}");
        assert!(started.elapsed() < CONNECT_TIMEOUT * 2, "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_wrong_postgres_password_is_a_clear_error() {
        let server = Postgres::start();
        let url = server.url().replace(server.password(), "hunter2");
        let e = match Db::connect(&DbUrl::parse(&url).unwrap()).await {
            Err(e) => e.to_string(),
            Ok(_) => panic!("logged in with a wrong password"),
        };
        assert!(e.contains("password authentication failed") && !e.contains("hunter2"), "{e}");
    }
}
