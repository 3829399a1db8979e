//! Debian's docker-compose 1.29 (Python, a client of the Engine API no one here wrote)
//! against Berth: a two-service app with a build, a named volume and a tmpfs one
//! (`driver_opts`), a user network with DNS by service name, `depends_on`, published
//! ports and environment, brought up, inspected, exec'd into and taken down — on the
//! host's API and in a lab session.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_tests::lab::Lab;
use berth_tests::{require, Berth};

const COMPOSE: &str = "/usr/bin/docker-compose";
const PAGE: &str = "hello-from-web";

/// The app: `web` built from a Dockerfile (busybox httpd), `client` from the busybox
/// image, fetching `http://web/` by its service name into the shared volume and its log.
fn write_app(dir: &Path, ports: &str) {
    std::fs::create_dir_all(dir.join("web")).expect("app dir");
    std::fs::write(
        dir.join("web/Dockerfile"),
        format!(
            "FROM busybox\n\
             RUN mkdir -p /www && echo {PAGE} > /www/index.html\n\
             CMD [\"httpd\", \"-f\", \"-p\", \"80\", \"-h\", \"/www\"]\n"
        ),
    )
    .expect("Dockerfile");
    // `trap exit TERM`: the loop is pid 1, which ignores SIGTERM without a handler.
    std::fs::write(
        dir.join("docker-compose.yml"),
        format!(
            r#"version: "3.8"
services:
  web:
    build: ./web
    ports:
      - "{ports}"
    environment:
      GREETING: hi-compose
    volumes:
      - data:/data
    networks:
      - appnet
  client:
    image: busybox
    command: ["sh", "-c", "trap exit TERM; while true; do wget -qO- http://web/ > /data/fetched 2>&1; cat /data/fetched; sleep 1 & wait; done"]
    depends_on:
      - web
    volumes:
      - data:/data
      - scratch:/scratch
    networks:
      - appnet
volumes:
  data:
  scratch:
    driver_opts:
      type: tmpfs
      device: tmpfs
      o: "size=2m"
networks:
  appnet:
"#
        ),
    )
    .expect("compose file");
}

/// docker-compose in `dir` against the Docker API at `sock`, project `app`.
fn compose(
    sock: &Path,
    config_dir: &Path,
    dir: &Path,
    extra_env: &[(&str, &str)],
    args: &[&str],
) -> Output {
    require(COMPOSE, "apt-get install docker-compose");
    Command::new(COMPOSE)
        .args(args)
        .current_dir(dir)
        .env("DOCKER_HOST", format!("unix://{}", sock.display()))
        .env("DOCKER_CONFIG", config_dir)
        .env("COMPOSE_PROJECT_NAME", "app")
        .env_remove("DOCKER_CONTEXT")
        .envs(extra_env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run docker-compose")
}

/// Runs compose and expects success; returns stdout and stderr (compose reports its
/// progress on stderr).
fn compose_ok(
    sock: &Path,
    config_dir: &Path,
    dir: &Path,
    extra_env: &[(&str, &str)],
    args: &[&str],
    log: &dyn Fn() -> String,
) -> (String, String) {
    let o = compose(sock, config_dir, dir, extra_env, args);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    );
    assert!(
        o.status.success(),
        "docker-compose {args:?} failed ({}):\nstdout: {out}\nstderr: {err}\nserver log tail: {}",
        o.status,
        tail(&log(), 40)
    );
    (out, err)
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn eventually(what: &str, mut f: impl FnMut() -> Option<String>) -> String {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < end, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What both the host's API and a session's show the same: `ps`, `logs`, `exec -T`
/// (the environment, DNS by service name, the shared volume).
fn check_running_app(run: &dyn Fn(&[&str]) -> (String, String)) {
    let (ps, _) = run(&["ps"]);
    for name in ["app_web_1", "app_client_1"] {
        let rows: Vec<&str> = ps.lines().filter(|l| l.starts_with(name)).collect();
        // Once each: compose lists each service's containers by its labels together.
        assert_eq!(rows.len(), 1, "{name} in:\n{ps}");
        assert!(rows[0].contains(" Up "), "{ps}");
    }
    // The volume with `driver_opts` is the tmpfs they ask for.
    let (fs, _) = run(&[
        "exec",
        "-T",
        "client",
        "sh",
        "-c",
        "stat -f -c %T /scratch; df -k /scratch | tail -1 | awk '{print $2}'",
    ]);
    assert_eq!(
        fs.split_whitespace().collect::<Vec<_>>(),
        ["tmpfs", "2048"],
        "{fs}"
    );
    let (env, _) = run(&["exec", "-T", "web", "sh", "-c", "echo $GREETING"]);
    assert_eq!(env.trim(), "hi-compose");
    // The client reaches web by its service name on the app's network...
    let (page, _) = run(&["exec", "-T", "client", "wget", "-qO-", "http://web/"]);
    assert_eq!(page.trim(), PAGE);
    // ... and its loop does too: what it wrote to the volume web sees, and its log.
    eventually("the client's fetch in the shared volume", || {
        let (f, _) = run(&["exec", "-T", "web", "cat", "/data/fetched"]);
        (f.trim() == PAGE).then_some(f)
    });
    let logs = eventually("the client's log", || {
        let (l, _) = run(&["logs", "--no-color", "client"]);
        l.contains(&format!("client_1  | {PAGE}")).then_some(l)
    });
    assert!(!logs.contains("web_1  |"), "only the client's log: {logs}");
}

#[test]
fn compose_up_ps_logs_exec_down() {
    let b = Berth::start();
    let tmp = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    write_app(tmp.path(), &format!("127.0.0.1:{port}:80"));
    let log = || b.server_log();
    let run = |args: &[&str]| compose_ok(&b.sock, &b.config_dir, tmp.path(), &[], args, &log);

    let (built, up) = run(&["up", "-d"]);
    // depends_on: web is made (and started) before the client.
    let (w, c) = (
        up.find("Creating app_web_1"),
        up.find("Creating app_client_1"),
    );
    assert!(w.is_some() && c.is_some() && w < c, "{up}");
    // The build's output (from `docker build`, which compose runs) is on stdout.
    assert!(
        built.contains("Successfully tagged app_web:latest"),
        "{built}"
    );

    // The page through the published port, from the host.
    require("curl", "apt-get install curl");
    let url = format!("http://127.0.0.1:{port}/");
    eventually("the page through the published port", || {
        let o = Command::new("curl")
            .args(["-sf", &url])
            .output()
            .expect("curl");
        (String::from_utf8_lossy(&o.stdout).trim() == PAGE).then_some(String::new())
    });
    let (ps, _) = run(&["ps"]);
    assert!(ps.contains(&format!("127.0.0.1:{port}->80/tcp")), "{ps}");
    check_running_app(&run);

    // What compose made, as the docker CLI sees it.
    let web = b.inspect("app_web_1", "{{index .Config.Labels \"com.docker.compose.service\"}} {{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{join $v.Aliases \" \"}}{{end}}");
    let words: Vec<&str> = web.split(' ').collect();
    assert!(
        words[..2] == ["web", "app_appnet"] && words[2..].contains(&"web"),
        "{web}"
    );
    assert!(b
        .ok(&["volume", "ls", "-q"])
        .lines()
        .any(|v| v == "app_data"));
    assert!(b
        .ok(&["network", "ls", "--format", "{{.Name}}"])
        .lines()
        .any(|n| n == "app_appnet"));
    // A second `up` finds the app as it is (by the config-hash labels).
    let (_, again) = run(&["up", "-d"]);
    assert!(
        again.contains("app_web_1 is up-to-date") && again.contains("app_client_1 is up-to-date"),
        "{again}"
    );

    let (_, down) = run(&["down", "-v", "-t", "2"]);
    assert!(
        down.contains("Removing network app_appnet") && down.contains("Removing volume app_data"),
        "{down}"
    );
    assert_eq!(b.ok(&["ps", "-aq"]), "");
    assert_eq!(b.ok(&["volume", "ls", "-q"]), "");
    assert_eq!(
        b.ok(&["network", "ls", "--format", "{{.Name}}"]),
        "bridge\nhost\nnone"
    );
    let (ps, _) = run(&["ps"]);
    assert_eq!(ps.lines().count(), 2, "only the header: {ps}");
}

/// Compose on the host, pointed at a session's own Docker API (what its workstation's
/// CLI talks to); the build goes through compose's own client this time
/// (`COMPOSE_DOCKER_CLI_BUILD=0`), and the published port opens through the session's
/// port proxy, as a student's would.
#[test]
fn compose_in_a_lab_session() {
    let lab = Lab::start();
    let id = lab.create_session();
    let sock = lab.session_socket(&id);
    let tmp = tempfile::tempdir().expect("temp dir");
    write_app(tmp.path(), "8080:80");
    let log = || lab.berth.server_log();
    let env = [("COMPOSE_DOCKER_CLI_BUILD", "0")];
    let run =
        |args: &[&str]| compose_ok(&sock, &lab.berth.config_dir, tmp.path(), &env, args, &log);

    let (_, up) = run(&["up", "-d"]);
    assert!(up.contains("Creating app_client_1 ... done"), "{up}");
    let path = format!("/lab/{id}/ports/8080/");
    eventually("the page through the session's port proxy", || {
        let (code, body) = lab.http("GET", &path, None);
        (code == 200 && body.trim() == PAGE).then_some(body)
    });
    check_running_app(&run);
    // The session's status shows the app's containers, as for any the student makes.
    let status = lab.status(&id);
    let names: Vec<&str> = status["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(
        names.contains(&"app_web_1") && names.contains(&"app_client_1"),
        "{status}"
    );

    run(&["down", "-v", "-t", "2"]);
    let o = lab.session_docker(
        &id,
        &[
            "ps",
            "-aq",
            "--filter",
            "label=com.docker.compose.project=app",
        ],
    );
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "");
    let o = lab.session_docker(&id, &["volume", "ls", "-q"]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("app_data"));
}
