//! Health checks (`--health-*`, an image's `HEALTHCHECK`, `--no-healthcheck`): the same
//! commands against Berth and Debian's dockerd, compared field by field (inspect, ps
//! and its health filter, events, errors), and what only Berth can show (a restart of
//! the server keeping the probes going).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use berth_tests::dockerd::Dockerd;
use berth_tests::Berth;
use serde_json::Value;

/// One daemon the same commands go to.
#[derive(Clone, Copy)]
enum Daemon<'a> {
    Berth(&'a Berth),
    Dockerd(&'a Dockerd),
}

impl Daemon<'_> {
    fn label(&self) -> &'static str {
        match self {
            Daemon::Berth(_) => "berth",
            Daemon::Dockerd(_) => "dockerd",
        }
    }

    fn docker(&self, args: &[&str]) -> Output {
        match self {
            Daemon::Berth(b) => b.docker(args),
            Daemon::Dockerd(d) => d.docker(args),
        }
    }

    /// Runs docker, expects success, returns trimmed stdout.
    fn ok(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        assert!(
            o.status.success(),
            "{}: docker {args:?} failed: {}{}",
            self.label(),
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim_end().to_string()
    }

    /// The first line of docker's error output.
    fn fails(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        assert!(
            !o.status.success(),
            "{}: docker {args:?} should fail",
            self.label()
        );
        String::from_utf8_lossy(&o.stderr)
            .lines()
            .next()
            .unwrap_or("")
            .to_string()
    }

    fn json(&self, name: &str, template: &str) -> Value {
        let out = self.ok(&["inspect", "-f", &format!("{{{{json {template}}}}}"), name]);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{}: {out}: {e}", self.label()))
    }

    fn health(&self, name: &str) -> Value {
        self.json(name, ".State.Health")
    }

    fn status(&self, name: &str) -> String {
        self.health(name)["Status"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Polls until `f` holds (probes run every second here).
    fn eventually(&self, what: &str, mut f: impl FnMut() -> bool) {
        let end = Instant::now() + Duration::from_secs(40);
        while Instant::now() < end {
            if f() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = match self {
            Daemon::Berth(b) => b.server_log(),
            Daemon::Dockerd(d) => d.log(),
        };
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        panic!(
            "{}: timed out waiting for {what}; log tail: {tail:?}",
            self.label()
        );
    }

    fn sock(&self) -> PathBuf {
        match self {
            Daemon::Berth(b) => b.sock.clone(),
            Daemon::Dockerd(d) => PathBuf::from(d.host().trim_start_matches("unix://")),
        }
    }

    /// One raw HTTP request to the Engine API: (status, body).
    fn api(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let mut s = UnixStream::connect(self.sock()).expect("connect");
        write!(s, "{method} {path} HTTP/1.0\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        let mut r = String::new();
        s.read_to_string(&mut r).unwrap();
        let status = r
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (
            status,
            r.split_once("\r\n\r\n")
                .map(|(_, b)| b.trim().to_string())
                .unwrap_or_default(),
        )
    }

    fn cmd(&self, args: &[&str]) -> Command {
        match self {
            Daemon::Berth(b) => b.cmd(args),
            Daemon::Dockerd(d) => d.cmd(args),
        }
    }

    /// Starts taking this daemon's container events from `since` on, as they come. A
    /// query with `--since` later would not do on a slow machine: dockerd keeps only
    /// its last 256 events, and a few containers probed every second push the first
    /// health events out within minutes.
    fn record_events(&self, since: u64) -> Recording {
        let since = since.to_string();
        let mut child = self
            .cmd(&[
                "events",
                "--since",
                &since,
                "--filter",
                "type=container",
                "--format",
                "{{json .}}",
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start docker events");
        let out = child.stdout.take().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let reader = {
            let seen = seen.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
                    let v: Value = serde_json::from_str(&line).expect("event json");
                    seen.lock().unwrap().push(v);
                }
            })
        };
        Recording {
            child,
            seen,
            reader: Some(reader),
        }
    }

    /// `docker events` between `since` and now, as JSON objects.
    fn events(&self, since: u64, filter: &str) -> Vec<Value> {
        let until = (now() + 1).to_string();
        let out = self.ok(&[
            "events",
            "--since",
            &since.to_string(),
            "--until",
            &until,
            "--filter",
            filter,
            "--format",
            "{{json .}}",
        ]);
        out.lines()
            .map(|l| serde_json::from_str(l).expect("event json"))
            .collect()
    }
}

/// A daemon's container events, taken from a `docker events` stream.
struct Recording {
    child: Child,
    seen: Arc<Mutex<Vec<Value>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Recording {
    /// The events so far (those of container `name`, if given).
    fn events(&self, name: Option<&str>) -> Vec<Value> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter(|e| name.is_none_or(|n| e["Actor"]["Attributes"]["name"] == n))
            .cloned()
            .collect()
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A dockerd with Berth's busybox loaded (it has no network to pull from).
fn peer(b: &Berth) -> Dockerd {
    let d = Dockerd::start(&[]);
    let tar = b.root.with_file_name("busybox.tar");
    b.ok(&["save", "busybox", "-o", tar.to_str().unwrap()]);
    d.ok(&["load", "-i", tar.to_str().unwrap()]);
    d
}

/// The parenthesised part of `docker ps`'s STATUS (`(healthy)`), without the uptime.
fn ps_health(d: Daemon, name: &str) -> String {
    let all = d.ok(&["ps", "-a", "--format", "{{.Names}}\t{{.Status}}"]);
    let s = all
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}\t")))
        .unwrap_or_else(|| panic!("{}: no {name} in {all}", d.label()));
    s.find(" (")
        .map(|i| s[i + 1..].to_string())
        .unwrap_or_default()
}

/// A health log entry's shape: its keys, and the values that do not depend on time.
fn entry_shape(e: &Value) -> (Vec<String>, Value, Value) {
    let keys = e
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    (keys, e["ExitCode"].clone(), e["Output"].clone())
}

/// The containers of the shared scenario, made the same way on each daemon.
fn run_scenario(d: Daemon) {
    let run = |args: &[&str]| {
        let mut all = vec!["run", "-d", "--network", "none"];
        all.extend_from_slice(args);
        d.ok(&all);
    };
    run(&[
        "--name",
        "ok",
        "--label",
        "team=a",
        "--health-cmd",
        "echo hi; true",
        "--health-interval",
        "1s",
        "--health-retries",
        "2",
        "busybox",
        "sleep",
        "300",
    ]);
    run(&[
        "--name",
        "bad",
        "--health-cmd",
        "echo bad >&2; exit 3",
        "--health-interval",
        "1s",
        "--health-retries",
        "2",
        "busybox",
        "sleep",
        "300",
    ]);
    run(&[
        "--name",
        "slow",
        "--health-cmd",
        "echo started; sleep 5",
        "--health-interval",
        "1s",
        "--health-timeout",
        "500ms",
        "busybox",
        "sleep",
        "300",
    ]);
    run(&[
        "--name",
        "none",
        "--no-healthcheck",
        "busybox",
        "sleep",
        "300",
    ]);
    run(&["--name", "plain", "busybox", "sleep", "300"]);
}

/// What the scenario shows once settled, in the fields that do not depend on time.
fn settled(d: Daemon) -> Value {
    for (name, want) in [
        ("ok", "healthy"),
        ("bad", "unhealthy"),
        ("slow", "unhealthy"),
    ] {
        d.eventually(&format!("{name} {want}"), || d.status(name) == want);
    }
    let mut out = serde_json::Map::new();
    for name in ["ok", "bad", "slow", "none", "plain"] {
        let h = d.health(name);
        let last = h["Log"].as_array().and_then(|l| l.last()).map(entry_shape);
        out.insert(
            name.into(),
            serde_json::json!({
                "config": d.json(name, ".Config.Healthcheck"),
                "health_keys": h.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()),
                "status": h["Status"],
                "last": last,
                "ps": ps_health(d, name),
            }),
        );
    }
    for f in ["healthy", "unhealthy", "starting", "none"] {
        let mut names: Vec<String> = d
            .ok(&[
                "ps",
                "-a",
                "--filter",
                &format!("health={f}"),
                "--format",
                "{{.Names}}",
            ])
            .lines()
            .map(String::from)
            .collect();
        names.sort();
        out.insert(format!("filter {f}"), names.into());
    }
    out.insert(
        "filter bogus".into(),
        d.fails(&["ps", "--filter", "health=bogus"]).into(),
    );
    Value::Object(out)
}

/// Per container, its health_status actions in order, and the attributes of each.
fn health_events(r: &Recording) -> Value {
    let mut out = serde_json::Map::new();
    for e in r.events(None) {
        let action = e["Action"].as_str().unwrap_or("");
        let name = e["Actor"]["Attributes"]["name"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if action.starts_with("health_status") {
            let list = out.entry(name).or_insert_with(|| Value::Array(vec![]));
            list.as_array_mut().unwrap().push(serde_json::json!({ "action": action, "attributes": e["Actor"]["Attributes"], "type": e["Type"] }));
        }
    }
    Value::Object(out)
}

/// The first probe's exec events of container `name`: actions and attribute keys.
fn probe_events(r: &Recording, name: &str) -> Vec<(String, Vec<String>)> {
    let evs = r.events(Some(name));
    let mut out = Vec::new();
    for e in evs
        .iter()
        .filter(|e| e["Action"].as_str().is_some_and(|a| a.starts_with("exec_")))
        .take(3)
    {
        let keys = e["Actor"]["Attributes"]
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        out.push((e["Action"].as_str().unwrap().to_string(), keys));
    }
    out
}

#[test]
fn checks_match_dockerd() {
    let b = Berth::start();
    let dd = peer(&b);
    let (berth, docker) = (Daemon::Berth(&b), Daemon::Dockerd(&dd));
    let since = now();
    let (ours_rec, theirs_rec) = (berth.record_events(since), docker.record_events(since));
    // Both at once: the probes of one run while the other's start.
    std::thread::scope(|s| {
        s.spawn(|| run_scenario(berth));
        s.spawn(|| run_scenario(docker));
    });
    let (ours, theirs) = std::thread::scope(|s| {
        let ours = s.spawn(|| settled(berth));
        let theirs = s.spawn(|| settled(docker));
        (ours.join().unwrap(), theirs.join().unwrap())
    });
    for (k, v) in theirs.as_object().unwrap() {
        assert_eq!(&ours[k], v, "{k}: berth {} dockerd {v}", ours[k]);
    }
    // What dockerd shows, spelled out (so a change of both cannot pass unseen).
    assert_eq!(
        theirs["ok"]["config"],
        serde_json::json!({"Test": ["CMD-SHELL", "echo hi; true"], "Interval": 1_000_000_000u64, "Retries": 2})
    );
    assert_eq!(theirs["ok"]["ps"], "(healthy)");
    assert_eq!(
        theirs["slow"]["last"][2],
        "Health check exceeded timeout (500ms)"
    );
    assert_eq!(
        theirs["none"]["config"],
        serde_json::json!({"Test": ["NONE"]})
    );
    assert_eq!(theirs["none"]["status"], Value::Null);
    assert_eq!(theirs["filter none"], serde_json::json!(["none", "plain"]));

    let ours_ev = health_events(&ours_rec);
    let theirs_ev = health_events(&theirs_rec);
    assert_eq!(ours_ev, theirs_ev);
    assert_eq!(
        theirs_ev["ok"][0]["attributes"],
        serde_json::json!({"image": "busybox", "name": "ok", "team": "a"})
    );
    let probes = probe_events(&theirs_rec, "ok");
    assert_eq!(probe_events(&ours_rec, "ok"), probes);
    assert_eq!(probes.len(), 3, "{probes:?}");
    assert_eq!(probes[0].0, "exec_create: /bin/sh -c echo hi; true");

    // Stopped: unhealthy, the log kept; started again: starting, no failing streak.
    let cycle = |d: Daemon| {
        d.ok(&["stop", "-t", "0", "ok", "bad"]);
        let stopped = (d.health("ok"), d.health("bad"));
        let mut out = vec![];
        for h in [&stopped.0, &stopped.1] {
            out.push(serde_json::json!([
                h["Status"],
                h["Log"].as_array().map(|l| !l.is_empty())
            ]));
        }
        out.push(ps_health(d, "ok").into());
        out.push(
            d.health("bad")["FailingStreak"]
                .as_i64()
                .map(|s| s >= 2)
                .into(),
        );
        d.ok(&["start", "ok"]);
        let h = d.health("ok");
        out.push(serde_json::json!([
            h["Status"],
            h["FailingStreak"],
            h["Log"].as_array().map(|l| !l.is_empty())
        ]));
        out.push(ps_health(d, "ok").into());
        d.eventually("ok healthy again", || d.status("ok") == "healthy");
        d.ok(&["pause", "ok"]);
        out.push(d.health("ok")["Status"].clone());
        out.push(ps_health(d, "ok").into());
        d.ok(&["unpause", "ok"]);
        d.eventually("ok healthy after unpause", || d.status("ok") == "healthy");
        Value::Array(out)
    };
    let (ours, theirs) = std::thread::scope(|s| {
        let ours = s.spawn(|| cycle(berth));
        let theirs = s.spawn(|| cycle(docker));
        (ours.join().unwrap(), theirs.join().unwrap())
    });
    assert_eq!(ours, theirs);
    assert_eq!(theirs[0], serde_json::json!(["unhealthy", true]));
    assert_eq!(theirs[4], serde_json::json!(["starting", 0, true]));
    assert_eq!(theirs[5], "(health: starting)");
    assert_eq!(theirs[6], "unhealthy");

    // Bad values: dockerd's messages and status codes, from the CLI and the API.
    for args in [
        &["--health-interval", "500us"][..],
        &["--health-timeout", "10us", "--health-cmd", "true"],
        &["--health-start-period", "1us", "--health-cmd", "true"],
    ] {
        let mut all = vec!["create", "--network", "none"];
        all.extend_from_slice(args);
        all.push("busybox");
        assert_eq!(berth.fails(&all), docker.fails(&all), "{args:?}");
    }
    assert_eq!(
        docker.fails(&["create", "--health-interval", "500us", "busybox"]),
        "Error response from daemon: Interval in Healthcheck cannot be less than 1ms"
    );
    for hc in [
        r#"{"Test":["CMD","true"],"Retries":-1}"#,
        r#"{"Test":["CMD","true"],"Interval":-5}"#,
        r#"{"Test":["CMD","true"],"StartPeriod":5}"#,
        r#"{"Test":["BOGUS"]}"#,
    ] {
        let body = format!(
            r#"{{"Image":"busybox","Cmd":["true"],"Healthcheck":{hc},"HostConfig":{{"NetworkMode":"none"}}}}"#
        );
        let (oc, ob) = berth.api("POST", "/v1.41/containers/create", &body);
        let (tc, tb) = docker.api("POST", "/v1.41/containers/create", &body);
        assert_eq!(oc, tc, "{hc}: berth {ob} dockerd {tb}");
        if tc == 400 {
            assert_eq!(
                serde_json::from_str::<Value>(&ob).unwrap()["message"],
                serde_json::from_str::<Value>(&tb).unwrap()["message"],
                "{hc}"
            );
        }
    }
    assert_eq!(
        docker
            .api(
                "POST",
                "/v1.41/containers/create",
                r#"{"Image":"busybox","Healthcheck":{"Retries":-1}}"#
            )
            .1,
        r#"{"message":"Retries in Healthcheck cannot be negative"}"#
    );
}

/// A build context dir next to the test's state root (removed with it).
fn context(b: &Berth, files: &[(&str, &str)]) -> PathBuf {
    let dir = b.root.with_file_name("ctx-health");
    std::fs::create_dir_all(&dir).unwrap();
    for (path, content) in files {
        std::fs::write(dir.join(path), content).unwrap();
    }
    dir
}

fn build(d: Daemon, tag: &str, ctx: &Path) {
    let cmd = |args: &[&str]| match d {
        Daemon::Berth(b) => b.cmd(args),
        Daemon::Dockerd(dd) => dd.cmd(args),
    };
    let o = cmd(&["build", "-q", "-t", tag, ctx.to_str().unwrap()])
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}: build: {}",
        d.label(),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn image_healthcheck_merges_as_in_dockerd() {
    let b = Berth::start();
    let dd = peer(&b);
    let ctx = context(&b, &[("Dockerfile", "FROM busybox\nHEALTHCHECK --interval=1s --timeout=2s --retries=2 CMD test -e /tmp/ready\n")]);
    let shapes = |d: Daemon| {
        build(d, "checked", &ctx);
        let mut out = vec![d.ok(&[
            "image",
            "inspect",
            "-f",
            "{{json .Config.Healthcheck}}",
            "checked",
        ])];
        let runs: [&[&str]; 4] = [
            &["--name", "c1"],
            &["--name", "c2", "--health-interval", "3s"],
            &["--name", "c3", "--health-cmd", "true"],
            &["--name", "c4", "--no-healthcheck"],
        ];
        for args in runs {
            let mut all = vec!["run", "-d", "--network", "none"];
            all.extend_from_slice(args);
            all.extend_from_slice(&["checked", "sleep", "300"]);
            d.ok(&all);
            out.push(d.ok(&["inspect", "-f", "{{json .Config.Healthcheck}}", args[1]]));
        }
        out.push(d.json("c4", ".State.Health").to_string());
        // `docker commit` keeps the container's (merged) check.
        d.ok(&["commit", "c2", "committed"]);
        out.push(d.ok(&[
            "image",
            "inspect",
            "-f",
            "{{json .Config.Healthcheck}}",
            "committed",
        ]));
        out
    };
    let (ours, theirs) = (shapes(Daemon::Berth(&b)), shapes(Daemon::Dockerd(&dd)));
    assert_eq!(ours, theirs);
    assert_eq!(
        theirs[0],
        r#"{"Test":["CMD-SHELL","test -e /tmp/ready"],"Interval":1000000000,"Timeout":2000000000,"Retries":2}"#
    );
    assert_eq!(
        theirs[2],
        r#"{"Test":["CMD-SHELL","test -e /tmp/ready"],"Interval":3000000000,"Timeout":2000000000,"Retries":2}"#
    );
    assert_eq!(
        theirs[3],
        r#"{"Test":["CMD-SHELL","true"],"Interval":1000000000,"Timeout":2000000000,"Retries":2}"#
    );
    assert_eq!(theirs[5], "null");
    assert_eq!(theirs[6], theirs[2]);

    // The image's check runs: unhealthy until the file it tests is there.
    let d = Daemon::Berth(&b);
    d.eventually("c1 unhealthy", || d.status("c1") == "unhealthy");
    assert_eq!(d.health("c1")["Log"][0]["ExitCode"], 1);
    d.ok(&["exec", "c1", "touch", "/tmp/ready"]);
    d.eventually("c1 healthy", || d.status("c1") == "healthy");
    assert_eq!(ps_health(d, "c4"), "");
}

#[test]
fn probes_run_as_the_container_and_obey_limits() {
    let b = Berth::start();
    let d = Daemon::Berth(&b);
    let run = |args: &[&str]| {
        let mut all = vec!["run", "-d", "--health-interval", "1s"];
        all.extend_from_slice(args);
        d.ok(&all);
    };
    // The container's user, working dir and env, as `docker exec` (and dockerd).
    run(&[
        "--name",
        "who",
        "--user",
        "1000",
        "-w",
        "/tmp",
        "-e",
        "MARK=m1",
        "--health-cmd",
        "echo $(id -u):$(pwd):$MARK",
        "busybox",
        "sleep",
        "300",
    ]);
    // Output is cut at 4096 bytes, with "..." after, as dockerd.
    run(&[
        "--name",
        "loud",
        "--health-cmd",
        // yes's "Broken pipe" on stderr would race head's output on stdout.
        "yes 2>/dev/null | head -c 5000",
        "busybox",
        "sleep",
        "300",
    ]);
    // Failures in the start period do not count.
    run(&[
        "--name",
        "early",
        "--health-cmd",
        "false",
        "--health-retries",
        "1",
        "--health-start-period",
        "60s",
        "--health-start-interval",
        "1s",
        "busybox",
        "sleep",
        "300",
    ]);
    // A timed-out probe is killed, ExitCode -1.
    run(&[
        "--name",
        "hang",
        "--health-cmd",
        "sleep 30",
        "--health-timeout",
        "1s",
        "--health-retries",
        "1",
        "busybox",
        "sleep",
        "300",
    ]);
    d.eventually("who healthy", || d.status("who") == "healthy");
    assert_eq!(d.health("who")["Log"][0]["Output"], "1000:/tmp:m1\n");
    d.eventually("loud healthy", || d.status("loud") == "healthy");
    let out = d.health("loud")["Log"][0]["Output"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(out.len(), 4096 + 3);
    assert!(out.ends_with("y\ny\n..."), "{out:?}");
    d.eventually("three probes of early", || {
        d.health("early")["Log"]
            .as_array()
            .is_some_and(|l| l.len() >= 3)
    });
    let h = d.health("early");
    assert_eq!(
        (h["Status"].as_str(), h["FailingStreak"].as_i64()),
        (Some("starting"), Some(0)),
        "{h}"
    );
    d.eventually("hang unhealthy", || d.status("hang") == "unhealthy");
    let h = d.health("hang");
    assert_eq!(h["Log"][0]["ExitCode"], -1);
    assert_eq!(h["Log"][0]["Output"], "Health check exceeded timeout (1s)");
    // Killed probes are gone: after three, at most the one in flight is left.
    d.eventually("three probes of hang", || {
        d.health("hang")["Log"]
            .as_array()
            .is_some_and(|l| l.len() >= 3)
    });
    let procs = d.ok(&["top", "hang"]);
    assert!(procs.matches("sleep 30").count() <= 1, "{procs}");
}

#[test]
fn probes_go_on_after_a_server_restart() {
    let mut b = Berth::start();
    b.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--health-cmd",
        "test ! -e /tmp/down",
        "--health-interval",
        "1s",
        "--health-retries",
        "2",
        "busybox",
        "sleep",
        "300",
    ]);
    let starts = |d: Daemon| -> Vec<String> {
        d.health("web")["Log"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["Start"].as_str().unwrap().to_string())
            .collect()
    };
    let before = {
        let d = Daemon::Berth(&b);
        d.eventually("web healthy", || d.status("web") == "healthy");
        starts(d)
    };
    // The probes run in the server: none while it is down.
    b.kill_server();
    b.start_server();
    let restarted = now();
    let d = Daemon::Berth(&b);
    // Still healthy, with probes after the restart in its log.
    assert_eq!(d.status("web"), "healthy");
    d.eventually("a probe after the restart", || {
        starts(d).iter().any(|s| !before.contains(s))
    });
    d.ok(&["exec", "web", "touch", "/tmp/down"]);
    d.eventually("web unhealthy", || d.status("web") == "unhealthy");
    assert_eq!(ps_health(d, "web"), "(unhealthy)");
    let ev = d.events(restarted - 1, "event=health_status");
    assert_eq!(
        ev.last().unwrap()["Action"],
        "health_status: unhealthy",
        "{ev:?}"
    );
}
