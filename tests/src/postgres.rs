//! A private PostgreSQL server for a test: Debian's `postgresql` binaries, a cluster
//! made by initdb in a temp dir, listening on a free port of 127.0.0.1 (password
//! login, as a server elsewhere would ask) and on a Unix socket in that dir (the
//! helper's own statements). Stopped and removed in `Drop`, even when the test fails.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::require;

/// PostgreSQL refuses to run as root: the cluster and its server are this user's.
const OWNER: &str = "postgres";
/// The cluster's superuser, which the URLs log in as.
const SUPERUSER: &str = "berth";
/// The database `start` makes, which [`Postgres::url`] names.
const DATABASE: &str = "berth";

pub struct Postgres {
    bin: PathBuf,
    port: u16,
    password: String,
    /// Holds `data/` (the cluster), the server's log and its socket.
    dir: tempfile::TempDir,
}

impl Postgres {
    /// Makes a cluster with a database `berth` and starts its server.
    pub fn start() -> Postgres {
        let bin = bin_dir();
        require("runuser", "apt-get install util-linux");
        let owner = nix::unistd::User::from_name(OWNER)
            .expect("read the user database")
            .unwrap_or_else(|| {
                panic!("no user `{OWNER}` to run PostgreSQL as: apt-get install postgresql")
            });
        let dir = tempfile::Builder::new()
            .prefix("berth-pg-")
            .tempdir()
            .expect("temp dir");
        nix::unistd::chown(dir.path(), Some(owner.uid), Some(owner.gid))
            .expect("give the temp dir to postgres");
        let password = random_password();
        let pwfile = dir.path().join("password");
        fs::write(&pwfile, format!("{password}\n")).expect("write the password file");
        nix::unistd::chown(&pwfile, Some(owner.uid), Some(owner.gid)).expect("chown");

        let mut initdb = as_owner(&bin.join("initdb"));
        initdb
            .arg("--no-sync")
            .arg("-D")
            .arg(dir.path().join("data"))
            .args(["-U", SUPERUSER, "-E", "UTF8", "--locale=C.UTF-8"])
            .arg(format!("--pwfile={}", pwfile.display()))
            // Over TCP the password is checked (the URLs carry it); the socket is the
            // helper's own way in.
            .args(["--auth-host=scram-sha-256", "--auth-local=trust"]);
        // ICU's en-US collation, as a database made on a server elsewhere may well have:
        // it does not sort text as bytes (C.UTF-8 would), which Berth must not rely on.
        if major_version(&bin) >= 15 {
            initdb.args(["--locale-provider=icu", "--icu-locale=en-US"]);
        }
        let out = initdb.output().expect("run initdb");
        assert!(out.status.success(), "initdb failed: {}", text(&out));
        let _ = fs::remove_file(&pwfile);

        let mut pg = Postgres {
            bin,
            port: 0,
            password,
            dir,
        };
        // A free port may be taken between finding it and the server binding it.
        let mut tries = 0;
        loop {
            pg.port = free_port();
            let out = pg.pg_ctl_start();
            if out.status.success() {
                break;
            }
            tries += 1;
            assert!(
                tries < 5,
                "pg_ctl start failed: {}\nserver log: {}",
                text(&out),
                pg.server_log()
            );
        }
        pg.sql("postgres", &format!("CREATE DATABASE {DATABASE}"));
        pg
    }

    /// Starts the server of the cluster (on `self.port`).
    fn pg_ctl_start(&self) -> Output {
        as_owner(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .arg("-l")
            .arg(self.log())
            .args(["-w", "-t", "60", "-o"])
            .arg(format!(
                "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
                self.port,
                self.dir.path().display()
            ))
            .arg("start")
            .output()
            .expect("run pg_ctl start")
    }

    /// Stops the server (its connections dropped at once), as a database that went
    /// away would; [`Postgres::start_again`] brings it back on the same port.
    pub fn stop(&self) {
        let out = as_owner(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .args(["-w", "-m", "immediate", "stop"])
            .output()
            .expect("run pg_ctl stop");
        assert!(out.status.success(), "pg_ctl stop failed: {}", text(&out));
    }

    /// Starts the stopped server again, on the port its URLs name.
    pub fn start_again(&self) {
        let out = self.pg_ctl_start();
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}\nserver log: {}",
            text(&out),
            self.server_log()
        );
    }

    /// The URL of the database `berth`, with the superuser's password.
    pub fn url(&self) -> String {
        self.url_of(DATABASE)
    }

    /// The URL of another database of this server (see [`Postgres::create_database`]).
    pub fn url_of(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{}@127.0.0.1:{}/{database}",
            self.password, self.port
        )
    }

    /// The password in the URLs (which logs must not show).
    pub fn password(&self) -> &str {
        &self.password
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Makes an empty database `name`; its URL.
    pub fn create_database(&self, name: &str) -> String {
        self.sql("postgres", &format!("CREATE DATABASE {name}"));
        self.url_of(name)
    }

    /// Runs SQL as the superuser in `database` (psql over the socket); its rows, one a
    /// line, columns split by `|`.
    pub fn sql(&self, database: &str, sql: &str) -> String {
        let out = as_owner(&self.bin.join("psql"))
            .arg("-h")
            .arg(self.dir.path())
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                SUPERUSER,
                "-d",
                database,
            ])
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql {sql:?} failed: {}\nserver log: {}",
            text(&out),
            self.server_log()
        );
        String::from_utf8_lossy(&out.stdout).trim_end().to_string()
    }

    pub fn server_log(&self) -> String {
        fs::read_to_string(self.log()).unwrap_or_default()
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let stopped = as_owner(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .args(["-w", "-m", "immediate", "stop"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !stopped {
            // The postmaster's pid is the first line of its pid file; its children end
            // when it does.
            if let Some(pid) = fs::read_to_string(self.data().join("postmaster.pid"))
                .ok()
                .and_then(|s| s.lines().next().and_then(|l| l.trim().parse::<i32>().ok()))
            {
                // SAFETY: kill(2) with the pid the server recorded; at worst ESRCH.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        // The temp dir goes when `self.dir` drops, after this.
    }
}

/// A command run as the cluster's owner, from a directory it may read.
fn as_owner(program: &Path) -> Command {
    let mut c = Command::new("runuser");
    c.args(["-u", OWNER, "--"])
        .arg(program)
        .current_dir("/")
        .stdin(Stdio::null());
    c
}

/// The newest installed PostgreSQL's binaries (Debian keeps them off PATH).
fn bin_dir() -> PathBuf {
    let newest = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .max_by_key(|(v, _)| *v);
    match newest {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL's server (/usr/lib/postgresql/*/bin/initdb) is required for this test: apt-get install postgresql"
        ),
    }
}

/// 15 for /usr/lib/postgresql/15/bin.
fn major_version(bin: &Path) -> u32 {
    bin.parent()
        .and_then(|d| d.file_name())
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("find a free port")
        .port()
}

/// 32 hex digits: a password no test output contains by chance.
fn random_password() -> String {
    let mut b = [0u8; 16];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .expect("read /dev/urandom");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
