//! System endpoints and bad input at the HTTP level: events, errors in Docker's shape.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;

use berth_tests::Berth;

/// Sends one raw HTTP/1.0 request over the API socket; returns (status, body).
fn http(b: &Berth, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = UnixStream::connect(&b.sock).expect("connect");
    write!(s, "{method} {path} HTTP/1.0\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).unwrap();
    let status = r
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = r
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn ping_has_api_version_and_bad_json_is_a_400() {
    let b = Berth::start();
    let mut s = UnixStream::connect(&b.sock).unwrap();
    s.write_all(b"HEAD /_ping HTTP/1.0\r\n\r\n").unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).unwrap();
    assert!(r.to_ascii_lowercase().contains("api-version: 1.50"), "{r}");
    let (code, body) = http(&b, "POST", "/v1.50/containers/create", "{not json");
    assert_eq!(code, 400, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("error body is JSON");
    assert!(
        v["message"].as_str().unwrap().contains("invalid JSON"),
        "{body}"
    );
    let (code, body) = http(
        &b,
        "POST",
        "/containers/create",
        r#"{"Image":"busybox","HostConfig":{"Memory":-1}}"#,
    );
    assert_eq!(code, 400, "{body}");
    let (code, _) = http(&b, "GET", "/v1.47/containers/nope/json", "");
    assert_eq!(code, 404);
    let (code, body) = http(
        &b,
        "POST",
        "/containers/create?name=bad%2Fname",
        r#"{"Image":"busybox"}"#,
    );
    assert_eq!(code, 400, "{body}");
    // Nothing was created by the bad requests, and the server is still fine.
    assert_eq!(b.ok(&["ps", "-aq"]), "");
}

#[test]
fn events_stream_with_filters() {
    let b = Berth::start();
    let since = b.ok(&["version", "--format", "{{.Server.Version}}"]);
    assert!(!since.is_empty());
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 1;
    b.ok(&["run", "--name", "ev", "busybox", "true"]);
    b.ok(&["rm", "ev"]);
    // `--until` in the past-or-now ends the stream once history is replayed.
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let out = b.ok(&[
        "events",
        "--since",
        &start.to_string(),
        "--until",
        &until.to_string(),
        "--filter",
        "container=ev",
        "--format",
        "{{.Type}} {{.Action}}",
    ]);
    let actions: Vec<&str> = out.lines().collect();
    assert_eq!(
        actions,
        [
            "container create",
            "container attach",
            "container start",
            "container die",
            "container destroy"
        ],
        "{out}"
    );
    let out = b.ok(&[
        "events",
        "--since",
        &start.to_string(),
        "--until",
        &until.to_string(),
        "--filter",
        "event=die",
        "--format",
        "{{.Actor.Attributes.exitCode}}",
    ]);
    assert_eq!(out, "0");
    let (_, err) = b.fails(&[
        "events",
        "--since",
        &start.to_string(),
        "--until",
        &until.to_string(),
        "--filter",
        "bogus=1",
    ]);
    assert!(err.contains("invalid filter 'bogus'"), "{err}");
}

#[test]
fn resource_limits_reach_the_cgroup() {
    let b = Berth::start();
    let id = b.ok(&[
        "run",
        "-d",
        "--memory",
        "64m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "20",
        "busybox",
        "sleep",
        "60",
    ]);
    let v2 = berth_tests::cgroup_v2();
    let read = |v1: &str, v2f: &str| {
        let p = if v2 {
            format!("/sys/fs/cgroup/berth/{id}/{v2f}")
        } else {
            format!("/sys/fs/cgroup/{v1}/berth/{id}/{}", v2f_to_v1(v2f))
        };
        std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("{p}: {e}"))
            .trim()
            .to_string()
    };
    fn v2f_to_v1(f: &str) -> &str {
        match f {
            "memory.max" => "memory.limit_in_bytes",
            "cpu.max" => "cpu.cfs_quota_us",
            other => other,
        }
    }
    assert_eq!(read("memory", "memory.max"), (64 * 1024 * 1024).to_string());
    assert_eq!(read("pids", "pids.max"), "20");
    let cpu = read("cpu", "cpu.max");
    assert!(cpu.starts_with("50000"), "{cpu}");
    // The pids limit holds inside: 30 background sleeps cannot all start.
    let o = b.docker(&[
        "run",
        "--rm",
        "--pids-limit",
        "10",
        "busybox",
        "sh",
        "-c",
        "for i in $(seq 30); do sleep 5 & done 2>&1; echo done",
    ]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        all.contains("can't fork") || all.contains("Resource temporarily unavailable"),
        "{all}"
    );
    // --read-only makes the root file system read-only.
    let (_, err) = b.fails(&["run", "--rm", "--read-only", "busybox", "touch", "/x"]);
    assert!(err.contains("Read-only file system"), "{err}");
    b.ok(&[
        "run",
        "--rm",
        "--read-only",
        "busybox",
        "touch",
        "/tmp/../dev/shm/ok",
    ]);
    b.ok(&["rm", "-f", &id]);
}

#[test]
fn oom_kill_is_reported() {
    let b = Berth::start();
    let o = b.docker(&[
        "run",
        "--name",
        "hog",
        "--memory",
        "8m",
        "busybox",
        "sh",
        "-c",
        "x=a; while true; do x=$x$x; done",
    ]);
    assert_eq!(
        o.status.code(),
        Some(137),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(b.inspect("hog", "{{.State.OOMKilled}}"), "true");
}
