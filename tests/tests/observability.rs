//! Health and metrics on the web listener: `/healthz` and `/readyz` (Kubernetes'
//! probes) and `/metrics` (Prometheus' text format), read as a kubelet and a Prometheus
//! server would: the sessions, containers and their usage the engine sees, request
//! latencies by route template, readiness that follows the database, and `/metrics`
//! refused to clients elsewhere without the token.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use berth_tests::lab::Lab;
use berth_tests::postgres::Postgres;

/// One sample line of the text format: `name{label="value",…} value`.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the Prometheus text format (0.0.4), failing on any line that is not a
/// comment, a `# HELP`/`# TYPE` line or a sample of a family whose `# TYPE` came before.
fn parse(text: &str) -> Vec<Sample> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = Vec::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .unwrap_or_else(|| panic!("bad TYPE line {line:?}"));
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "unknown type in {line:?}"
            );
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "{name} typed twice"
            );
            continue;
        }
        if line.starts_with('#') {
            assert!(
                line.starts_with("# HELP "),
                "a comment that is neither HELP nor TYPE: {line:?}"
            );
            continue;
        }
        let name_end = line
            .find(['{', ' '])
            .unwrap_or_else(|| panic!("no value in {line:?}"));
        let name = &line[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if let Some(r) = rest.strip_prefix('{') {
            let mut chars = r.char_indices();
            let mut key = String::new();
            let end = loop {
                let (i, c) = chars
                    .next()
                    .unwrap_or_else(|| panic!("unclosed labels in {line:?}"));
                match c {
                    '}' => break i,
                    ',' => {}
                    '=' => {
                        assert_eq!(
                            chars.next().map(|(_, c)| c),
                            Some('"'),
                            "unquoted label value in {line:?}"
                        );
                        let mut value = String::new();
                        loop {
                            match chars
                                .next()
                                .unwrap_or_else(|| panic!("unclosed value in {line:?}"))
                                .1
                            {
                                '"' => break,
                                '\\' => match chars.next().map(|(_, c)| c) {
                                    Some('n') => value.push('\n'),
                                    Some(c) => value.push(c),
                                    None => panic!("bad escape in {line:?}"),
                                },
                                c => value.push(c),
                            }
                        }
                        labels.insert(std::mem::take(&mut key), value);
                    }
                    c => key.push(c),
                }
            };
            rest = &r[end + 1..];
        }
        let value = match rest.trim() {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).is_some_and(|t| t == "histogram"))
            })
            .unwrap_or(name);
        assert!(
            types.contains_key(family),
            "{name} has no TYPE line before it"
        );
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    assert!(!samples.is_empty(), "no samples in:\n{text}");
    samples
}

/// The value of the sample `name` whose labels are exactly `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    samples
        .iter()
        .find(|s| s.name == name && s.labels == want)
        .map(|s| s.value)
}

/// The value of `name` for a lab session (whatever other labels it has).
fn of_session(samples: &[Sample], name: &str, session: &str) -> f64 {
    samples
        .iter()
        .find(|s| s.name == name && s.labels.get("session").map(String::as_str) == Some(session))
        .unwrap_or_else(|| panic!("no {name} for session {session}"))
        .value
}

/// `/metrics` from this machine; the samples.
fn scrape(lab: &Lab) -> Vec<Sample> {
    let (code, body, headers) = lab.http_with("GET", "/metrics", None, &[]);
    assert_eq!(code, 200, "{body}");
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{headers}"
    );
    parse(&body)
}

/// The `docker` requests of one route that the latency histogram counted.
fn docker_requests(samples: &[Sample], method: &str, route: &str) -> f64 {
    let labels = [
        ("listener", "docker"),
        ("method", method),
        ("route", route),
        ("status", "2xx"),
    ];
    value(
        samples,
        "berth_http_request_duration_seconds_count",
        &labels,
    )
    .unwrap_or(0.0)
}

#[test]
fn a_lab_server_reports_its_sessions_containers_and_requests() {
    let lab = Lab::start();
    assert_eq!(lab.http("GET", "/healthz", None), (200, "ok\n".to_string()));
    assert_eq!(
        lab.http("GET", "/readyz", None),
        (200, "ready\n".to_string())
    );
    let m = scrape(&lab);
    assert_eq!(value(&m, "berth_lab_sessions", &[]), Some(0.0));

    let a = lab.create_session();
    let b = lab.create_session();
    let m = scrape(&lab);
    assert_eq!(value(&m, "berth_lab_sessions", &[]), Some(2.0));
    // The workstations start just after their sessions are made; their shells then
    // run in the sessions' envelopes.
    let names = [
        "berth_lab_session_cpu_seconds_total",
        "berth_lab_session_memory_bytes",
        "berth_lab_session_processes",
        "berth_lab_session_disk_used_bytes",
    ];
    let mut m = m;
    lab.eventually("both workstations at work", Duration::from_secs(30), || {
        m = scrape(&lab);
        value(&m, "berth_containers", &[("state", "running")]) == Some(2.0)
            && [&a, &b]
                .iter()
                .all(|s| names.iter().all(|n| of_session(&m, n, s) > 0.0))
    });
    // The two workstations, in their own namespaces, are the server's only containers.
    assert_eq!(
        value(&m, "berth_containers", &[("state", "running")]),
        Some(2.0)
    );
    assert_eq!(
        value(&m, "berth_containers", &[("state", "paused")]),
        Some(0.0)
    );
    assert!(value(&m, "berth_process_resident_memory_bytes", &[]).unwrap() > 1e6);
    assert!(value(&m, "berth_process_open_fds", &[]).unwrap() > 3.0);
    let posts = [
        ("listener", "web"),
        ("method", "POST"),
        ("route", "/api/sessions"),
        ("status", "2xx"),
    ];
    assert_eq!(
        value(&m, "berth_http_request_duration_seconds_count", &posts),
        Some(2.0)
    );

    // Work in session a only: CPU (a fixed amount, however busy this machine is),
    // then a container holding 40 MiB of memory (its /dev/shm), 20 MB of disk and a
    // few processes.
    let docker_a = |args: &[&str]| lab.session_docker_ok(&a, args);
    let before = scrape(&lab);
    docker_a(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        // A million rounds: about 1.2 s of CPU on a fast core (300000 took 0.37 s
        // there, short of the 0.4 s asked below).
        "i=0; while [ $i -lt 1000000 ]; do i=$((i+1)); done",
    ]);
    let hog = docker_a(&[
        "run",
        "-d",
        "--name",
        "hog",
        "busybox",
        "sh",
        "-c",
        "dd if=/dev/zero of=/dev/shm/fill bs=1M count=40 && dd if=/dev/zero of=/big bs=1M count=20 && touch /done && sleep 600",
    ]);
    lab.eventually(
        "the hog filled its memory and disk",
        Duration::from_secs(60),
        || {
            lab.session_docker(&a, &["exec", "hog", "test", "-f", "/done"])
                .status
                .success()
        },
    );
    let after = scrape(&lab);
    let delta = |name: &str, s: &str| of_session(&after, name, s) - of_session(&before, name, s);
    let cpu = "berth_lab_session_cpu_seconds_total";
    assert!(
        delta(cpu, &a) >= 0.4,
        "session a used {}s of CPU",
        delta(cpu, &a)
    );
    assert!(
        delta(cpu, &b) < delta(cpu, &a) / 2.0,
        "b {} a {}",
        delta(cpu, &b),
        delta(cpu, &a)
    );
    let mem = |s: &str| of_session(&after, "berth_lab_session_memory_bytes", s);
    assert!(
        mem(&a) >= mem(&b) + 30.0 * 1048576.0,
        "memory: a {} b {}",
        mem(&a),
        mem(&b)
    );
    let pids = |s: &str| of_session(&after, "berth_lab_session_processes", s);
    assert!(
        pids(&a) > pids(&b),
        "processes: a {} b {}",
        pids(&a),
        pids(&b)
    );
    let disk = "berth_lab_session_disk_used_bytes";
    assert!(
        delta(disk, &a) >= 15e6,
        "session a's disk grew by {}",
        delta(disk, &a)
    );
    assert!(of_session(&after, disk, &a) >= of_session(&after, disk, &b) + 15e6);

    // Containers by state, in every namespace: the workstations, the hog, and one
    // exited in the server's default namespace.
    lab.berth.ok(&["run", "--name", "done", "busybox", "true"]);
    let m = scrape(&lab);
    assert_eq!(
        value(&m, "berth_containers", &[("state", "running")]),
        Some(3.0)
    );
    assert_eq!(
        value(&m, "berth_containers", &[("state", "exited")]),
        Some(1.0)
    );

    // A `docker ps` through session a's API is one more request of its route; an
    // inspect counts under the route's template, never the container's id.
    let ps = docker_requests(&m, "GET", "/containers/json");
    let inspects = docker_requests(&m, "GET", "/containers/{id}/json");
    docker_a(&["ps"]);
    docker_a(&["inspect", "hog"]);
    let m = scrape(&lab);
    assert_eq!(docker_requests(&m, "GET", "/containers/json"), ps + 1.0);
    assert_eq!(
        docker_requests(&m, "GET", "/containers/{id}/json"),
        inspects + 1.0
    );
    let inf = [
        ("listener", "docker"),
        ("method", "GET"),
        ("route", "/containers/json"),
        ("status", "2xx"),
        ("le", "+Inf"),
    ];
    assert_eq!(
        value(&m, "berth_http_request_duration_seconds_bucket", &inf),
        Some(ps + 1.0)
    );
    assert!(
        m.iter()
            .all(|s| !s.labels.values().any(|v| v.contains(&hog[..12]))),
        "a label carries the container's id"
    );
    // An unknown page is one series, whatever its path.
    for path in ["/no/such/page", "/nor/this/one"] {
        assert_eq!(lab.http("GET", path, None).0, 404);
    }
    let unknown = [
        ("listener", "web"),
        ("method", "GET"),
        ("route", "unmatched"),
        ("status", "4xx"),
    ];
    assert_eq!(
        value(
            &scrape(&lab),
            "berth_http_request_duration_seconds_count",
            &unknown
        ),
        Some(2.0)
    );

    // A class member's session carries its class.
    let root = lab.berth.root.to_str().unwrap().to_string();
    let o = Command::new(berth_tests::berth_bin())
        .args([
            "class",
            "create",
            "--root",
            &root,
            "--name",
            "Docker 101",
            "--lessons",
            "1",
        ])
        .env_remove("BERTH_DATABASE_URL")
        .stdin(Stdio::null())
        .output()
        .expect("run berth class create");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    let field = |label: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(label))
            .unwrap_or_else(|| panic!("{out}"))
            .trim()
            .to_string()
    };
    let class = field("class:")
        .rsplit_once('(')
        .unwrap()
        .1
        .trim_end_matches(')')
        .to_string();
    let joined = lab.json(
        "POST",
        "/api/join",
        Some(&format!(
            "{{\"code\":\"{}\",\"name\":\"Min Ji\"}}",
            field("join code:")
        )),
    );
    let c = joined["session"]["id"]
        .as_str()
        .expect("session id")
        .to_string();
    let m = scrape(&lab);
    assert_eq!(value(&m, "berth_lab_sessions", &[]), Some(3.0));
    let labels = |s: &str| {
        m.iter()
            .find(|x| x.name == "berth_lab_session_memory_bytes" && x.labels["session"] == s)
            .map(|x| x.labels.clone())
            .unwrap_or_else(|| panic!("no series of {s}"))
    };
    assert_eq!(labels(&c).get("class"), Some(&class));
    assert_eq!(labels(&a).get("class"), None);
    assert!(
        !m.iter()
            .any(|s| s.labels.values().any(|v| v.contains("Min Ji"))),
        "a student's name in the metrics"
    );

    // A proxy on this machine forwards students' requests from loopback: not enough.
    let (code, _, _) = lab.http_with("GET", "/metrics", None, &["X-Forwarded-For: 203.0.113.9"]);
    assert_eq!(code, 403);
}

#[test]
fn readyz_follows_the_lab_database() {
    let pg = Postgres::start();
    let lab = Lab::start_with(&["--database", &pg.url()]);
    assert_eq!(
        lab.http("GET", "/readyz", None),
        (200, "ready\n".to_string())
    );
    pg.stop();
    let start = Instant::now();
    let (code, body) = lab.http("GET", "/readyz", None);
    assert_eq!(code, 503, "{body}");
    assert!(body.starts_with("not ready:\n- lab database: "), "{body}");
    assert!(!body.contains(pg.password()), "{body}");
    // At once (the server waits 800 ms at most), not after the 10 s a query may wait
    // for a connection; with room for curl on a busy machine.
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    // Alive all the same: restarting the server would not bring the database back.
    assert_eq!(lab.http("GET", "/healthz", None), (200, "ok\n".to_string()));
    pg.start_again();
    lab.eventually("ready again", Duration::from_secs(30), || {
        lab.http("GET", "/readyz", None).0 == 200
    });
}

/// A network namespace on a veth of its own: a client on another machine, as far as
/// the server can tell. Removed again when dropped.
struct Elsewhere {
    ns: String,
    link: String,
    /// The server's side of the veth.
    host_ip: String,
}

impl Elsewhere {
    fn make() -> Elsewhere {
        berth_tests::require("ip", "apt-get install iproute2");
        let tag = std::process::id() % 200 + 20;
        let e = Elsewhere {
            ns: format!("berth-obs-{tag}"),
            link: format!("btm{tag}"),
            host_ip: format!("10.251.{tag}.1"),
        };
        let (ns, link) = (&e.ns, &e.link);
        sh(&format!("ip netns add {ns} && ip link add {link} type veth peer name {link}p && ip link set {link}p netns {ns}"));
        sh(&format!(
            "ip addr add {}/24 dev {link} && ip link set {link} up",
            e.host_ip
        ));
        sh(&format!("ip -n {ns} addr add 10.251.{tag}.2/24 dev {link}p && ip -n {ns} link set {link}p up && ip -n {ns} link set lo up"));
        e
    }

    /// `curl` from the namespace: (status, body).
    fn curl(&self, url: &str, headers: &[&str]) -> (u16, String) {
        let mut c = Command::new("ip");
        c.args([
            "netns",
            "exec",
            &self.ns,
            "curl",
            "-s",
            "-w",
            "\n%{http_code}",
        ]);
        for h in headers {
            c.args(["-H", h]);
        }
        let out = c.arg(url).stdin(Stdio::null()).output().expect("run curl");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }
}

impl Drop for Elsewhere {
    fn drop(&mut self) {
        // Deleting the namespace deletes the veth pair, unless the test failed halfway.
        for args in [["netns", "del", &self.ns], ["link", "del", &self.link]] {
            let _ = Command::new("ip").args(args).stderr(Stdio::null()).status();
        }
    }
}

fn sh(cmd: &str) {
    let st = Command::new("sh").arg("-c").arg(cmd).status().expect("sh");
    assert!(st.success(), "{cmd} failed");
}

#[test]
fn metrics_answer_other_machines_only_with_the_token() {
    let elsewhere = Elsewhere::make();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("{}:{port}", elsewhere.host_ip);
    let token = "kubernetes-scrapes-with-this";
    let lab = Lab::start_on(&addr, &["--metrics-token", token]);
    let url = |path: &str| format!("http://{addr}{path}");

    // The probes are open: a kubelet sends no token.
    assert_eq!(
        elsewhere.curl(&url("/healthz"), &[]),
        (200, "ok\n".to_string())
    );
    assert_eq!(
        elsewhere.curl(&url("/readyz"), &[]),
        (200, "ready\n".to_string())
    );
    let (code, body) = elsewhere.curl(&url("/metrics"), &[]);
    assert_eq!(code, 403, "{body}");
    assert!(body.contains("--metrics-token"), "{body}");
    assert_eq!(
        elsewhere
            .curl(
                &url("/metrics"),
                &["Authorization: Bearer kubernetes-scrapes"]
            )
            .0,
        403
    );
    // This machine, through an address that is not loopback, is no exception.
    assert_eq!(lab.http("GET", "/metrics", None).0, 403);
    let (code, body) = elsewhere.curl(
        &url("/metrics"),
        &[&format!("Authorization: Bearer {token}")],
    );
    assert_eq!(code, 200, "{body}");
    let m = parse(&body);
    assert_eq!(value(&m, "berth_lab_sessions", &[]), Some(0.0));
    let probes = [
        ("listener", "web"),
        ("method", "GET"),
        ("route", "/healthz"),
        ("status", "2xx"),
    ];
    assert_eq!(
        value(&m, "berth_http_request_duration_seconds_count", &probes),
        Some(1.0)
    );
}
