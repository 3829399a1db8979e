//! The classroom's records from the shell: `berth instructor add` and `berth class
//! create|list` on the state root of a running lab server.
//!
//! The tests named `…_on_postgres` are the ones before them with the records in a
//! private PostgreSQL (`berth serve --database`) instead of the state root's SQLite file.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use berth_tests::berth_bin;
use berth_tests::lab::Lab;
use berth_tests::postgres::Postgres;

fn berth(args: &[&str], stdin: &str) -> Output {
    berth_on(None, args, stdin)
}

/// `berth ARGS` on the records of `db` (None: the `--root`'s own file), which the
/// command finds in BERTH_DATABASE_URL, as it would in a pod of the server.
fn berth_on(db: Option<&Postgres>, args: &[&str], stdin: &str) -> Output {
    let mut cmd = Command::new(berth_bin());
    match db {
        Some(pg) => cmd.env("BERTH_DATABASE_URL", pg.url()),
        None => cmd.env_remove("BERTH_DATABASE_URL"),
    };
    let mut child = cmd
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run berth");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait for berth")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The line of `out` that starts with `label`, without it.
fn field<'a>(out: &'a str, label: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} in {out}"))
        .trim()
}

/// A lab server with `args`, its records in `db` (None: its state root's SQLite file).
fn start_on(db: Option<&Postgres>, args: &[&str]) -> Lab {
    let url = db.map(Postgres::url);
    let mut all = args.to_vec();
    if let Some(url) = &url {
        all.extend(["--database", url]);
    }
    let lab = Lab::start_with(&all);
    if let Some(pg) = db {
        let log = lab.berth.server_log();
        assert!(
            log.contains(&format!(
                "lab database: postgres://berth:****@127.0.0.1:{}/berth",
                pg.port()
            )) && !log.contains(pg.password()),
            "the server names its database, without the password: {log}"
        );
    }
    lab
}

/// After a test on PostgreSQL: the records were there, not in the state root.
fn records_were_in(db: Option<&Postgres>, lab: &Lab) {
    let file = lab.berth.root.join("lab.db");
    match db {
        Some(pg) => {
            assert!(!file.exists(), "{} was made", file.display());
            assert_ne!(pg.sql("berth", "SELECT COUNT(*) FROM classes"), "0");
            assert!(!lab.berth.server_log().contains(pg.password()));
        }
        None => assert!(file.is_file(), "{} is missing", file.display()),
    }
}

#[test]
fn instructors_and_classes_are_made_from_the_shell_while_the_server_runs() {
    shell_records(None);
}

#[test]
fn instructors_and_classes_are_made_from_the_shell_while_the_server_runs_on_postgres() {
    shell_records(Some(&Postgres::start()));
}

fn shell_records(db: Option<&Postgres>) {
    let berth = |args: &[&str], stdin: &str| berth_on(db, args, stdin);
    let lab = start_on(db, &[]);
    let root = lab.berth.root.to_str().unwrap().to_string();
    let r = root.as_str();

    let o = berth(
        &["instructor", "add", "--root", r, "kim"],
        "correct horse\n",
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("instructor kim added"), "{}", text(&o));
    let o = berth(
        &["instructor", "add", "--root", r, "kim"],
        "battery staple\n",
    );
    assert!(
        o.status.success() && text(&o).contains("new password"),
        "{}",
        text(&o)
    );
    for (name, password, needle) in [
        ("lee", "short\n", "too short"),
        ("   ", "long enough\n", "must not be empty"),
    ] {
        let o = berth(&["instructor", "add", "--root", r, name], password);
        assert!(
            !o.status.success() && text(&o).contains(needle),
            "{name:?}: {}",
            text(&o)
        );
    }

    let o = berth(
        &[
            "class",
            "create",
            "--root",
            r,
            "--name",
            "Docker 101",
            "--lessons",
            "1,2",
            "--opens",
            "2026-12-01T09:00",
            "--closes",
            "2026-12-01T12:00",
            "--url",
            "http://lab.example:8080/",
        ],
        "",
    );
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let code = field(&out, "join code:");
    assert_eq!(code.len(), 9, "{out}");
    assert!(
        code.chars().enumerate().all(|(i, c)| if i == 4 {
            c == '-'
        } else {
            "23456789ABCDEFGHJKMNPQRSTUVWXYZ".contains(c)
        }),
        "{code}"
    );
    assert_eq!(
        field(&out, "join URL:"),
        format!("http://lab.example:8080/join/{code}")
    );

    let o = berth(&["class", "create", "--root", r, "--name", "도커 입문"], "");
    assert!(o.status.success(), "{}", text(&o));
    let other = field(&String::from_utf8_lossy(&o.stdout), "join code:").to_string();
    assert_ne!(other, code);

    let o = berth(&["class", "list", "--root", r], "");
    assert!(o.status.success(), "{}", text(&o));
    let list = String::from_utf8_lossy(&o.stdout).to_string();
    let rows: Vec<Vec<&str>> = list.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), 2, "{list}");
    assert_eq!(
        &rows[0][1..4],
        &[code, "Docker 101", "lifecycle,step-by-step"],
        "{list}"
    );
    assert_eq!(rows[0][4], "2026-12-01T09:00:00+00:00");
    assert_eq!(&rows[1][1..3], &[other.as_str(), "도커 입문"], "{list}");

    for (args, needle) in [
        (vec!["--name", "x", "--lessons", "99"], "no lesson \"99\""),
        (
            vec!["--name", "x", "--lessons", "1,lifecycle"],
            "listed twice",
        ),
        (vec!["--name", "x", "--opens", "tomorrow"], "is not a time"),
        (
            vec![
                "--name",
                "x",
                "--opens",
                "2026-12-02T10:00",
                "--closes",
                "2026-12-02T09:00",
            ],
            "closes",
        ),
        (vec!["--name", ""], "must not be empty"),
    ] {
        let mut full = vec!["class", "create", "--root", r];
        full.extend(args.iter().copied());
        let o = berth(&full, "");
        assert!(
            !o.status.success() && text(&o).contains(needle),
            "{args:?}: {}",
            text(&o)
        );
    }
    let o = berth(&["class", "list", "--root", "/nonexistent/berth"], "");
    if db.is_some() {
        // Records kept elsewhere are the same from any machine (root or none).
        assert!(o.status.success(), "{}", text(&o));
        assert_eq!(String::from_utf8_lossy(&o.stdout), list);
    } else {
        assert!(
            !o.status.success() && text(&o).contains("not a Berth state directory"),
            "{}",
            text(&o)
        );
    }

    // The server went on serving throughout, on the same database.
    let _ = lab.create_session();
    records_were_in(db, &lab);
}

fn join(lab: &Lab, body: serde_json::Value) -> (u16, serde_json::Value) {
    let (code, text, _) = lab.http_with("POST", "/api/join", Some(&body.to_string()), &[]);
    (
        code,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

fn class_code(lab: &Lab, db: Option<&Postgres>, extra: &[&str]) -> String {
    let root = lab.berth.root.to_str().unwrap().to_string();
    let mut args = vec![
        "class",
        "create",
        "--root",
        root.as_str(),
        "--name",
        "Docker 101",
        "--lessons",
        "1",
    ];
    args.extend_from_slice(extra);
    let o = berth_on(db, &args, "");
    assert!(o.status.success(), "{}", text(&o));
    field(&String::from_utf8_lossy(&o.stdout), "join code:").to_string()
}

#[test]
fn students_join_by_code_and_come_back_to_the_same_lab() {
    students_join(None);
}

#[test]
fn students_join_by_code_and_come_back_to_the_same_lab_on_postgres() {
    students_join(Some(&Postgres::start()));
}

fn students_join(db: Option<&Postgres>) {
    let lab = start_on(
        db,
        &["--open-playground=false", "--class-max-failures", "4"],
    );
    let code = class_code(&lab, db, &[]);
    // Only class members get labs on this server.
    let (status, body, _) = lab.http_with("POST", "/api/sessions", None, &[]);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("\"class_only\""), "{body}");

    // However the code is typed.
    let typed = code.replace('-', "").to_lowercase();
    let info = lab.json("GET", &format!("/api/classes/{typed}"), None);
    assert_eq!(
        (
            info["name"].as_str(),
            info["state"].as_str(),
            info["code"].as_str()
        ),
        (Some("Docker 101"), Some("open"), Some(code.as_str()))
    );
    assert!(
        info.get("id").is_none(),
        "students do not see the class's id: {info}"
    );

    let (status, first) = join(
        &lab,
        serde_json::json!({ "code": typed, "name": "  Min  Ji " }),
    );
    assert_eq!(status, 201, "{first}");
    let session = first["session"]["id"].as_str().unwrap().to_string();
    let pin = first["pin"].as_str().unwrap().to_string();
    assert!(
        pin.len() == 6 && pin.chars().all(|c| c.is_ascii_digit()),
        "{pin}"
    );
    let rejoin = first["rejoin_path"].as_str().unwrap();
    let token = rejoin
        .strip_prefix(&format!("/join/{code}#"))
        .unwrap_or_else(|| panic!("{rejoin}"));
    assert_eq!(first["name"], "Min  Ji");
    let st = lab.status(&session);
    assert_eq!(st["class"]["name"], "Min  Ji");
    assert_eq!(st["class"]["class"]["name"], "Docker 101");
    assert_eq!(
        st["lesson"], "lifecycle",
        "a new student starts on the class's first lesson"
    );

    // The name is theirs; the PIN or the link brings them back to the same lab.
    let (status, taken) = join(&lab, serde_json::json!({ "code": code, "name": "min ji" }));
    assert_eq!(
        (status, taken["kind"].as_str()),
        (409, Some("name_taken")),
        "{taken}"
    );
    let (status, again) = join(
        &lab,
        serde_json::json!({ "code": code, "name": "MIN JI", "pin": pin }),
    );
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["session"]["id"].as_str(), Some(session.as_str()));
    assert!(
        again["pin"].is_null() && again["rejoin_path"].is_null(),
        "shown once only: {again}"
    );
    let (status, by_link) = join(
        &lab,
        serde_json::json!({ "code": code, "name": "", "token": token }),
    );
    assert_eq!(
        (status, by_link["session"]["id"].as_str()),
        (200, Some(session.as_str())),
        "{by_link}"
    );

    // The student cannot remove the lab that holds their record.
    let (status, body, _) = lab.http_with("DELETE", &format!("/api/sessions/{session}"), None, &[]);
    assert_eq!(status, 403, "{body}");
    assert_eq!(lab.status(&session)["id"], session.as_str());

    let (status, other) = join(&lab, serde_json::json!({ "code": code, "name": "Lee" }));
    assert_eq!(status, 201, "{other}");
    assert_ne!(other["session"]["id"], first["session"]["id"]);

    // Bad input: a clear refusal each, with a kind the page can put in its own words.
    let long = "x".repeat(101);
    for (body, want_status, kind) in [
        (
            serde_json::json!({ "code": code, "name": "   " }),
            400,
            "name_empty",
        ),
        (
            serde_json::json!({ "code": code, "name": long }),
            400,
            "name_too_long",
        ),
        (
            serde_json::json!({ "code": code, "name": "a\u{1b}[2Jb" }),
            400,
            "name_invalid",
        ),
    ] {
        let (status, v) = join(&lab, body.clone());
        assert_eq!(
            (status, v["kind"].as_str()),
            (want_status, Some(kind)),
            "{body}: {v}"
        );
    }
    let (status, body, _) = lab.http_with("POST", "/api/join", Some("{\"code\": 12"), &[]);
    assert_eq!(status, 400, "{body}");

    // Guesses (wrong codes, PINs, links) are limited per address: after 4, even a
    // right request waits, and is told how long.
    let wrong_pin = if pin == "000000" { "111111" } else { "000000" };
    let (status, v) = join(
        &lab,
        serde_json::json!({ "code": code, "name": "Lee", "pin": wrong_pin }),
    );
    assert_eq!(
        (status, v["kind"].as_str()),
        (403, Some("wrong_pin")),
        "{v}"
    );
    let (status, v) = join(
        &lab,
        serde_json::json!({ "code": code, "name": "", "token": "00".repeat(16) }),
    );
    assert_eq!(
        (status, v["kind"].as_str()),
        (403, Some("bad_token")),
        "{v}"
    );
    for bad in ["2345-6789", "not-a-code"] {
        let (status, v) = join(&lab, serde_json::json!({ "code": bad, "name": "x" }));
        assert_eq!(
            (status, v["kind"].as_str()),
            (404, Some("unknown_code")),
            "{v}"
        );
    }
    let (status, v, headers) = lab.http_with(
        "POST",
        "/api/join",
        Some(&serde_json::json!({ "code": code, "name": "MIN JI", "pin": pin }).to_string()),
        &[],
    );
    assert_eq!(status, 429, "{v}");
    assert!(v.contains("\"rate_limited\""), "{v}");
    assert!(
        headers.to_ascii_lowercase().contains("retry-after: "),
        "{headers}"
    );
    records_were_in(db, &lab);
}

/// Reads server-sent events of a dashboard from a raw HTTP connection.
struct Live {
    reader: std::io::BufReader<std::net::TcpStream>,
}

impl Live {
    fn open(lab: &Lab, class: &str, cookie: &str) -> Live {
        use std::io::Write as _;
        let mut s = std::net::TcpStream::connect(&lab.addr).expect("connect");
        s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
            .unwrap();
        write!(s, "GET /api/teach/classes/{class}/live HTTP/1.1\r\nHost: {}\r\n{cookie}\r\nAccept: text/event-stream\r\n\r\n", lab.addr).unwrap();
        Live {
            reader: std::io::BufReader::new(s),
        }
    }

    /// The next dashboard (chunked transfer's size lines and keep-alives skipped).
    fn next(&mut self) -> serde_json::Value {
        use std::io::BufRead as _;
        let mut line = String::new();
        loop {
            line.clear();
            let n = self
                .reader
                .read_line(&mut line)
                .expect("read the event stream");
            assert!(n > 0, "the event stream ended");
            if let Some(data) = line.trim_end().strip_prefix("data: ") {
                if let Ok(v) = serde_json::from_str(data) {
                    return v;
                }
            }
        }
    }

    /// Dashboards until one satisfies `f` (within 20 s, the read timeout).
    fn until(&mut self, what: &str, f: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let d = self.next();
            if f(&d) {
                return d;
            }
            assert!(
                std::time::Instant::now() < end,
                "no dashboard with {what}; last: {d}"
            );
        }
    }
}

fn student<'a>(d: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    d["students"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == name))
        .unwrap_or(&serde_json::Value::Null)
}

#[test]
fn a_teacher_sees_the_class_live_and_closes_and_reopens_it() {
    teacher_live(None);
}

#[test]
fn a_teacher_sees_the_class_live_and_closes_and_reopens_it_on_postgres() {
    teacher_live(Some(&Postgres::start()));
}

fn teacher_live(db: Option<&Postgres>) {
    let mut lab = start_on(db, &["--class-stuck-attempts", "3"]);
    let root = lab.berth.root.to_str().unwrap().to_string();
    let o = berth_on(
        db,
        &["instructor", "add", "--root", &root, "kim"],
        "correct horse\n",
    );
    assert!(o.status.success(), "{}", text(&o));

    // Nothing of the teacher's side without a login.
    let (status, body, _) = lab.http_with("GET", "/api/teach/classes", None, &[]);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("not_logged_in"), "{body}");
    let (status, body) = lab.login("kim", "wrong horse").unwrap_err();
    assert_eq!(status, 401);
    assert!(body.contains("wrong_password"), "{body}");
    let cookie = lab.login("kim", "correct horse").unwrap();
    let me = lab.http_with("GET", "/api/teach/me", None, &[&cookie]);
    assert!(me.1.contains("\"kim\""), "{me:?}");

    let (status, body, _) = lab.http_with(
        "POST",
        "/api/teach/classes",
        Some(r#"{"name":"도커 입문","lessons":["lifecycle"]}"#),
        &[&cookie],
    );
    assert_eq!(status, 201, "{body}");
    let class: serde_json::Value = serde_json::from_str(&body).unwrap();
    let (id, code) = (
        class["id"].as_str().unwrap().to_string(),
        class["code"].as_str().unwrap().to_string(),
    );
    let (status, body, _) = lab.http_with(
        "POST",
        "/api/teach/classes",
        Some(r#"{"name":"x","lessons":["nope"]}"#),
        &[&cookie],
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("bad_class"), "{body}");
    let (status, svg, _) = lab.http_with(
        "GET",
        &format!("/api/teach/classes/{id}/qr.svg"),
        None,
        &[&cookie],
    );
    assert!(status == 200 && svg.contains("<svg"), "{status} {svg}");
    // A student's session id or a forged cookie opens nothing of it.
    for h in ["Cookie: berth_teach=0000", ""] {
        let (status, _, _) = lab.http_with("GET", &format!("/api/teach/classes/{id}"), None, &[h]);
        assert_eq!(status, 401, "{h}");
    }
    // Nor does the teacher's own cookie, sent by a student's web page (served on this
    // origin by the port proxy, sandboxed to an opaque origin) or by another site.
    for origin in ["Origin: null", "Origin: http://evil.example"] {
        let (status, body, _) = lab.http_with(
            "POST",
            &format!("/api/teach/classes/{id}/messages"),
            Some(r#"{"text":"pwned"}"#),
            &[&cookie, origin],
        );
        assert_eq!(status, 403, "{origin}: {body}");
    }
    let same = format!("Origin: http://{}", lab.addr);
    assert_eq!(
        lab.http_with("GET", "/api/teach/me", None, &[&cookie, &same])
            .0,
        200
    );

    let mut live = Live::open(&lab, &id, &cookie);
    let d = live.next();
    assert_eq!(d["class"]["name"], "도커 입문");
    assert_eq!(d["students"].as_array().map(Vec::len), Some(0));

    let (_, a) = join(&lab, serde_json::json!({ "code": code, "name": "Ann" }));
    let (_, b) = join(&lab, serde_json::json!({ "code": code, "name": "Bo" }));
    let (sa, sb) = (
        a["session"]["id"].as_str().unwrap().to_string(),
        b["session"]["id"].as_str().unwrap().to_string(),
    );
    let d = live.until("two students", |d| {
        d["students"].as_array().map(Vec::len) == Some(2)
    });
    assert_eq!(student(&d, "Ann")["lesson"], "lifecycle");
    assert_eq!(student(&d, "Ann")["done"], 0);

    // A step done in Ann's lab shows on the dashboard by itself.
    let o = lab.session_docker(&sa, &["search", "busybox"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let d = live.until("Ann's first step", |d| student(d, "Ann")["done"] == 1);
    assert_eq!(d["steps"][0]["finished"], 1);
    assert_ne!(
        student(&d, "Ann")["step"],
        d["steps"][0]["step"],
        "Ann is on the next step"
    );
    // Bo tries three commands that do not pass the step: stuck, and the last one is named.
    for _ in 0..3 {
        let o = lab.session_docker(&sb, &["images"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let d = live.until("Bo stuck", |d| {
        student(d, "Bo")["stuck"]["reason"] == "failing"
    });
    assert!(
        student(&d, "Bo")["last_action"]
            .as_str()
            .is_some_and(|a| a.contains("images")),
        "{d}"
    );
    // An open terminal shows the student online.
    let mut t = lab.terminal(&sa);
    t.expect("$ ");
    live.until("Ann online", |d| student(d, "Ann")["online"] == true);

    // Closing the class freezes the labs: work is kept, nothing new starts.
    let o = lab.session_docker(
        &sa,
        &["run", "-d", "--name", "web", "busybox", "sleep", "600"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let past = "2020-01-01T00:00:00Z";
    let (status, body, _) = lab.http_with(
        "PUT",
        &format!("/api/teach/classes/{id}/window"),
        Some(&format!(r#"{{"closes":"{past}"}}"#)),
        &[&cookie],
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"closed\""), "{body}");
    let o = lab.session_docker(&sa, &["run", "--rm", "busybox", "true"]);
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("closed"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = lab.session_docker(&sa, &["ps", "-a", "--format", "{{.Names}} {{.State}}"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "web exited",
        "stopped at the close, kept"
    );
    let (status, v) = join(&lab, serde_json::json!({ "code": code, "name": "Cy" }));
    assert_eq!((status, v["kind"].as_str()), (403, Some("closed")), "{v}");
    let (status, v) = join(
        &lab,
        serde_json::json!({ "code": code, "name": "ann", "pin": a["pin"] }),
    );
    assert_eq!(status, 200, "its students still come back: {v}");
    assert_eq!(lab.status(&sa)["class"]["class"]["state"], "closed");

    // The class, roster, progress and raised hands survive a restart of the server.
    let (status, body, _) = lab.http_with(
        "POST",
        &format!("/api/sessions/{sb}/hand"),
        Some(r#"{"note":"still here"}"#),
        &[],
    );
    assert_eq!(status, 204, "{body}");
    drop(t);
    drop(live);
    lab.berth.kill_server();
    lab.berth.start_server();
    let cookie = {
        let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            match lab.login("kim", "correct horse") {
                Ok(c) => break c,
                Err(e) => assert!(
                    std::time::Instant::now() < end,
                    "login after restart: {e:?}"
                ),
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    let (_, body, _) = lab.http_with("GET", &format!("/api/teach/classes/{id}"), None, &[&cookie]);
    let d: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{body}"));
    assert_eq!(student(&d, "Ann")["done"], 1, "{d}");
    assert_eq!(student(&d, "Bo")["done"], 0, "{d}");
    assert_eq!(d["hands"][0]["name"], "Bo", "{d}");
    let o = lab.session_docker(&sa, &["start", "web"]);
    assert!(!o.status.success(), "still closed after the restart");

    // Reopened, the lab works again.
    let (status, body, _) = lab.http_with(
        "PUT",
        &format!("/api/teach/classes/{id}/window"),
        Some("{}"),
        &[&cookie],
    );
    assert_eq!(status, 200, "{body}");
    let o = lab.session_docker(&sa, &["run", "--rm", "busybox", "echo", "open again"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (status, _) = join(&lab, serde_json::json!({ "code": code, "name": "Cy" }));
    assert_eq!(status, 201);
    let (status, _, headers) = lab.http_with("POST", "/api/teach/logout", None, &[&cookie]);
    assert_eq!(status, 204, "{headers}");
    assert_eq!(
        lab.http_with("GET", "/api/teach/me", None, &[&cookie]).0,
        401
    );
    records_were_in(db, &lab);
}

/// Logs in as a new instructor `kim` and makes a class of lesson 1: (cookie header, class id, code).
fn teacher_and_class(lab: &Lab) -> (String, String, String) {
    let root = lab.berth.root.to_str().unwrap().to_string();
    let o = berth(
        &["instructor", "add", "--root", &root, "kim"],
        "correct horse\n",
    );
    assert!(o.status.success(), "{}", text(&o));
    let cookie = lab.login("kim", "correct horse").unwrap();
    let (status, body, _) = lab.http_with(
        "POST",
        "/api/teach/classes",
        Some(r#"{"name":"Docker 101","lessons":["lifecycle"]}"#),
        &[&cookie],
    );
    assert_eq!(status, 201, "{body}");
    let class: serde_json::Value = serde_json::from_str(&body).unwrap();
    (
        cookie,
        class["id"].as_str().unwrap().to_string(),
        class["code"].as_str().unwrap().to_string(),
    )
}

fn dashboard(lab: &Lab, id: &str, cookie: &str) -> serde_json::Value {
    let (status, body, _) =
        lab.http_with("GET", &format!("/api/teach/classes/{id}"), None, &[cookie]);
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn actions(d: &serde_json::Value) -> Vec<String> {
    d["actions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            format!(
                "{} {}",
                a["action"].as_str().unwrap_or(""),
                a["student"].as_str().unwrap_or("")
            )
        })
        .collect()
}

#[test]
fn a_teacher_watches_takes_over_answers_messages_and_resets_or_ends_a_lab() {
    let lab = Lab::start();
    let (cookie, id, code) = teacher_and_class(&lab);
    let (_, a) = join(&lab, serde_json::json!({ "code": code, "name": "Ann" }));
    let (_, b) = join(&lab, serde_json::json!({ "code": code, "name": "Bo" }));
    let (sa, sb) = (
        a["session"]["id"].as_str().unwrap().to_string(),
        b["session"]["id"].as_str().unwrap().to_string(),
    );
    let cookie_value = cookie.strip_prefix("Cookie: ").unwrap().to_string();

    // Watching: the teacher sees what Ann types; the teacher's keys go nowhere.
    let mut ann = lab.terminal(&sa);
    ann.expect("$ ");
    assert!(
        lab.terminal_at(
            &format!("/api/teach/classes/{id}/students/Ann/terminal"),
            &[]
        )
        .is_err(),
        "no login, no terminal"
    );
    let err = lab
        .terminal_at(
            &format!("/api/teach/classes/{id}/students/Ann/terminal"),
            &[("Cookie", &cookie_value), ("Origin", "null")],
        )
        .err()
        .expect("a student's page (an opaque origin) cannot open it with the teacher's cookie");
    assert!(err.starts_with("403"), "{err}");
    let mut watch = lab
        .terminal_at(
            &format!("/api/teach/classes/{id}/students/ann/terminal"),
            &[("Cookie", &cookie_value)],
        )
        .expect("watch");
    ann.line("echo from-ann-$((2+3))");
    watch.expect("from-ann-5");
    watch.line("echo watcher-$((1+1))");
    ann.settle(std::time::Duration::from_secs(3));
    assert!(
        !ann.text().contains("watcher-2"),
        "a watcher typed: {}",
        ann.text()
    );
    let d = dashboard(&lab, &id, &cookie);
    assert_eq!(d["watching"][0]["student"], "Ann", "{d}");
    assert_eq!(d["watching"][0]["control"], false);

    // Taking over: the teacher types, the student's page is told.
    let mut control = lab
        .terminal_at(
            &format!("/api/teach/classes/{id}/students/Ann/terminal?control=1"),
            &[("Cookie", &cookie_value)],
        )
        .expect("take over");
    lab.eventually(
        "the student told",
        std::time::Duration::from_secs(5),
        || lab.status(&sa)["instructor_typing"] == "kim",
    );
    control.line("echo teacher-$((3+4))");
    ann.expect("teacher-7");
    drop(control);
    drop(watch);
    lab.eventually(
        "the take-over over",
        std::time::Duration::from_secs(5),
        || lab.status(&sa)["instructor_typing"].is_null(),
    );
    let d = dashboard(&lab, &id, &cookie);
    assert!(d["watching"].as_array().unwrap().is_empty(), "{d}");
    let done = actions(&d);
    assert!(
        done.contains(&"watch Ann".to_string()) && done.contains(&"take_over Ann".to_string()),
        "{done:?}"
    );

    // A raised hand reaches the queue; the teacher answers it.
    let (status, body, _) = lab.http_with(
        "POST",
        &format!("/api/sessions/{sa}/hand"),
        Some(r#"{"note":"-p does not work"}"#),
        &[],
    );
    assert_eq!(status, 204, "{body}");
    let d = dashboard(&lab, &id, &cookie);
    assert_eq!(
        (
            d["hands"][0]["name"].as_str(),
            d["hands"][0]["note"].as_str()
        ),
        (Some("Ann"), Some("-p does not work")),
        "{d}"
    );
    assert_eq!(student(&d, "Ann")["hand"], true);
    assert_eq!(lab.status(&sa)["hand"]["note"], "-p does not work");
    let outsider = lab.create_session();
    let (status, body, _) = lab.http_with(
        "POST",
        &format!("/api/sessions/{outsider}/hand"),
        Some("{}"),
        &[],
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not_in_class"), "{body}");
    let (status, _, _) = lab.http_with(
        "DELETE",
        &format!("/api/teach/classes/{id}/students/Ann/hand"),
        None,
        &[&cookie],
    );
    assert_eq!(status, 204);
    assert!(lab.status(&sa)["hand"].is_null());
    assert!(actions(&dashboard(&lab, &id, &cookie)).contains(&"answer_hand Ann".to_string()));

    // Messages: to the class, to one student; bad ones refused.
    let post = |body: &str| {
        lab.http_with(
            "POST",
            &format!("/api/teach/classes/{id}/messages"),
            Some(body),
            &[&cookie],
        )
    };
    assert_eq!(post(r#"{"text":"Break: 5 minutes"}"#).0, 201);
    assert_eq!(post(r#"{"to":"bo","text":"Try docker ps -a"}"#).0, 201);
    let (status, body, _) = post(r#"{"text":"   "}"#);
    assert!(
        status == 400 && body.contains("bad_message"),
        "{status} {body}"
    );
    assert_eq!(post(r#"{"to":"Nobody","text":"hi"}"#).0, 404);
    let texts = |s: &str| {
        lab.status(s)["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["text"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(texts(&sa), vec!["Break: 5 minutes"]);
    assert_eq!(texts(&sb), vec!["Break: 5 minutes", "Try docker ps -a"]);

    // Ann does a step, then makes a mess; a reset empties her lab and keeps her progress.
    let o = lab.session_docker(&sa, &["search", "busybox"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    lab.eventually("Ann's step", std::time::Duration::from_secs(10), || {
        lab.done(&sa, "lifecycle").contains(&"search".to_string())
    });
    for args in [
        &["run", "-d", "--name", "web", "busybox", "sleep", "600"][..],
        &["volume", "create", "junk"],
        &["tag", "busybox", "mine:v1"],
    ] {
        let o = lab.session_docker(&sa, args);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    ann.line("echo scribble > notes.txt && echo wrote-$((4+4))");
    ann.expect("wrote-8");
    let (status, body, _) = lab.http_with(
        "POST",
        &format!("/api/teach/classes/{id}/students/Ann/reset"),
        None,
        &[&cookie],
    );
    assert_eq!(status, 204, "{body}");
    assert!(
        ann.closed_within(std::time::Duration::from_secs(5)),
        "the old terminal is closed, so the page reconnects"
    );
    let out = |args: &[&str]| {
        String::from_utf8_lossy(&lab.session_docker(&sa, args).stdout)
            .trim()
            .to_string()
    };
    assert_eq!(out(&["ps", "-aq"]), "");
    assert_eq!(out(&["volume", "ls", "-q"]), "");
    assert!(
        !out(&["images", "--format", "{{.Repository}}"]).contains("mine"),
        "the student's images are gone"
    );
    let mut ann = lab.terminal(&sa);
    ann.expect("$ ");
    ann.line("ls; echo listed-$((5+5))");
    assert!(
        !ann.expect("listed-10").contains("notes.txt"),
        "the home is empty again"
    );
    assert!(
        lab.done(&sa, "lifecycle").contains(&"search".to_string()),
        "progress kept"
    );
    assert!(
        lab.status(&sa)["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["kind"] == "reset"),
        "Ann is told"
    );

    // Hand-ins: the CSV and a signed transcript that verifies offline and fails once changed.
    let (status, csv, headers) = lab.http_with(
        "GET",
        &format!("/api/teach/classes/{id}/progress.csv"),
        None,
        &[&cookie],
    );
    assert_eq!(status, 200, "{csv}");
    assert!(
        headers.to_lowercase().contains("content-type: text/csv"),
        "{headers}"
    );
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows[0], "student,lesson,step,done_at,attempts");
    assert!(
        rows.iter()
            .any(|r| r.starts_with("Ann,lifecycle,search,") && !r.ends_with(',')),
        "{csv}"
    );
    let (status, transcript, _) = lab.http_with(
        "GET",
        &format!("/api/teach/classes/{id}/students/Ann/transcript"),
        None,
        &[&cookie],
    );
    assert_eq!(status, 200, "{transcript}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ann.txt");
    std::fs::write(&file, &transcript).unwrap();
    let root = lab.berth.root.to_str().unwrap().to_string();
    let o = berth(
        &[
            "transcript",
            "verify",
            file.to_str().unwrap(),
            "--root",
            &root,
        ],
        "",
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("student: Ann")
            && text(&o).contains("lifecycle/search")
            && text(&o).contains("this server's"),
        "{}",
        text(&o)
    );
    assert!(
        transcript.contains("\"action\":\"search\""),
        "the evidence is there: {transcript}"
    );
    std::fs::write(
        &file,
        transcript.replacen("\"term\":\"busybox\"", "\"term\":\"nginx\"", 1),
    )
    .unwrap();
    let o = berth(&["transcript", "verify", file.to_str().unwrap()], "");
    assert!(
        !o.status.success() && text(&o).contains("changed"),
        "{}",
        text(&o)
    );

    // Ending Bo's lab: it is gone (the page is told), the roster keeps him, coming back
    // gives him a lab again with his progress.
    let (status, _, _) = lab.http_with(
        "POST",
        &format!("/api/teach/classes/{id}/students/Bo/end"),
        None,
        &[&cookie],
    );
    assert_eq!(status, 204);
    let (status, body, _) = lab.http_with("GET", &format!("/api/sessions/{sb}"), None, &[]);
    assert!(
        status == 410 && body.contains("lab_ended"),
        "{status} {body}"
    );
    assert!(
        !lab.berth.root.join("lab").join(&sb).exists(),
        "the lab's files are removed"
    );
    assert_eq!(student(&dashboard(&lab, &id, &cookie), "Bo")["name"], "Bo");
    let (status, again) = join(
        &lab,
        serde_json::json!({ "code": code, "name": "Bo", "pin": b["pin"] }),
    );
    assert_eq!(
        (status, again["session"]["id"].as_str()),
        (200, Some(sb.as_str())),
        "{again}"
    );
    let o = lab.session_docker(&sb, &["run", "--rm", "busybox", "echo", "back"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let done = actions(&dashboard(&lab, &id, &cookie));
    for a in [
        "reset Ann",
        "end Bo",
        "message Bo",
        "message ",
        "transcript Ann",
    ] {
        assert!(
            done.contains(&a.to_string()),
            "{a:?} not recorded: {done:?}"
        );
    }
}

#[test]
fn a_class_sets_the_limits_of_its_labs() {
    let lab = Lab::start();
    let root = lab.berth.root.to_str().unwrap().to_string();
    let o = berth(
        &[
            "class",
            "create",
            "--root",
            &root,
            "--name",
            "x",
            "--session-memory",
            "1m",
        ],
        "",
    );
    assert!(
        !o.status.success() && text(&o).contains("at least 64m"),
        "{}",
        text(&o)
    );
    let code = class_code(&lab, None, &["--containers", "1", "--session-pids", "100"]);
    let (status, v) = join(&lab, serde_json::json!({ "code": code, "name": "Ann" }));
    assert_eq!(status, 201, "{v}");
    let sid = v["session"]["id"].as_str().unwrap().to_string();
    assert_eq!(lab.session_cgroup_file(&sid, "pids", "pids.max"), "100");
    let o = lab.session_docker(&sid, &["run", "-d", "busybox", "sleep", "300"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = lab.session_docker(&sid, &["run", "-d", "busybox", "sleep", "300"]);
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("its limit"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // An open-playground lab on the same server keeps the server's defaults.
    let other = lab.create_session();
    assert_eq!(lab.session_cgroup_file(&other, "pids", "pids.max"), "512");

    // The teacher reads and changes them; a reset lab gets the new ones.
    let o = berth(
        &["instructor", "add", "--root", &root, "kim"],
        "correct horse\n",
    );
    assert!(o.status.success(), "{}", text(&o));
    let cookie = lab.login("kim", "correct horse").unwrap();
    let (_, body, _) = lab.http_with("GET", "/api/teach/classes", None, &[&cookie]);
    let classes: serde_json::Value = serde_json::from_str(&body).unwrap();
    let id = classes[0]["id"].as_str().unwrap().to_string();
    let (status, body, _) = lab.http_with(
        "GET",
        &format!("/api/teach/classes/{id}/limits"),
        None,
        &[&cookie],
    );
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"session_pids":100,"containers":1}"#)
    );
    let (status, body, _) = lab.http_with(
        "PUT",
        &format!("/api/teach/classes/{id}/limits"),
        Some(r#"{"session_pids":5}"#),
        &[&cookie],
    );
    assert!(
        status == 400 && body.contains("16 or more"),
        "{status} {body}"
    );
    let (status, body, _) = lab.http_with(
        "PUT",
        &format!("/api/teach/classes/{id}/limits"),
        Some(r#"{"session_pids":200,"containers":3}"#),
        &[&cookie],
    );
    assert_eq!(status, 200, "{body}");
    let (status, body, _) = lab.http_with(
        "POST",
        &format!("/api/teach/classes/{id}/students/Ann/reset"),
        None,
        &[&cookie],
    );
    assert_eq!(status, 204, "{body}");
    assert_eq!(lab.session_cgroup_file(&sid, "pids", "pids.max"), "200");

    // The new-class form sends them with the class; bad ones are refused.
    let (status, body, _) = lab.http_with(
        "POST",
        "/api/teach/classes",
        Some(r#"{"name":"y","limits":{"session_cpus":0.5,"disk":1073741824}}"#),
        &[&cookie],
    );
    assert_eq!(status, 201, "{body}");
    let made: serde_json::Value = serde_json::from_str(&body).unwrap();
    let (_, body, _) = lab.http_with(
        "GET",
        &format!("/api/teach/classes/{}/limits", made["id"].as_str().unwrap()),
        None,
        &[&cookie],
    );
    assert_eq!(body, r#"{"session_cpus":0.5,"disk":1073741824}"#);
    let (status, body, _) = lab.http_with(
        "POST",
        "/api/teach/classes",
        Some(r#"{"name":"z","limits":{"containers":0}}"#),
        &[&cookie],
    );
    assert!(
        status == 400 && body.contains("bad_class"),
        "{status} {body}"
    );
}

/// `berth serve` on a database it cannot use stops at once, saying why, and never
/// shows the password (nor does `--help` show the one in BERTH_DATABASE_URL).
#[test]
fn a_server_on_a_bad_database_stops_with_a_clear_error() {
    berth_tests::require("/bin/busybox", "apt-get install busybox-static");
    let pg = Postgres::start();
    let wrong_password = pg.url().replace(pg.password(), "hunter2");
    for (flag, env, says) in [
        (
            Some("mysql://root:hunter2@db.example/berth"),
            None,
            "database URL: mysql: not a database",
        ),
        (
            None,
            Some(wrong_password.as_str()),
            "password authentication failed for user \"berth\"",
        ),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let log = tmp.path().join("server.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(berth_bin());
        cmd.arg("serve")
            .arg("--root")
            .arg(&root)
            .arg("--docker-host")
            .arg(format!(
                "unix://{}",
                tmp.path().join("docker.sock").display()
            ))
            .args([
                "--listen",
                "127.0.0.1:0",
                "--registry-listen",
                "127.0.0.1:0",
            ])
            .env_remove("BERTH_DATABASE_URL")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file);
        if let Some(url) = flag {
            cmd.args(["--database", url]);
        }
        if let Some(url) = env {
            cmd.env("BERTH_DATABASE_URL", url);
        }
        let mut child = cmd.spawn().expect("start berth serve");
        let end = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if std::time::Instant::now() > end {
                let _ = child.kill();
                let _ = child.wait();
                berth_tests::cleanup_root(&root);
                panic!(
                    "berth serve kept running: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        berth_tests::cleanup_root(&root);
        let out = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(!status.success(), "{out}");
        assert!(
            out.contains(says) && !out.contains("hunter2") && !out.contains("panicked"),
            "{out}"
        );
    }

    let o = Command::new(berth_bin())
        .args(["serve", "--help"])
        .env("BERTH_DATABASE_URL", &wrong_password)
        .output()
        .expect("run berth serve --help");
    let help = text(&o);
    assert!(
        help.contains("--database <URL>")
            && help.contains("BERTH_DATABASE_URL")
            && !help.contains("hunter2"),
        "{help}"
    );
}
