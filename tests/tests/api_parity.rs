//! Engine API parity beyond what the CLI shows: answers SDKs and tools rely on, each
//! checked against what dockerd does.

use std::process::Command;

use berth_tests::api_call as call;
use berth_tests::dockerd::Dockerd;
use berth_tests::Berth;

/// `curl` over the server's socket: (status, body).
fn api(b: &Berth, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    call(&b.sock, "1.47", method, path, body)
}

#[test]
fn kill_returns_once_the_container_is_dead() {
    let b = Berth::start();
    for paused in [false, true] {
        b.ok(&["run", "-d", "--name", "k", "busybox", "sleep", "300"]);
        if paused {
            b.ok(&["pause", "k"]);
        }
        b.ok(&["kill", "k"]);
        // No waiting: dockerd's SIGKILL returns after the exit, so `rm` needs no -f.
        assert_eq!(
            b.inspect(
                "k",
                "{{.State.Running}} {{.State.Status}} {{.State.ExitCode}}"
            ),
            "false exited 137",
            "paused: {paused}"
        );
        b.ok(&["rm", "k"]);
    }
    // Another signal returns at once (the container may handle it).
    b.ok(&[
        "run",
        "-d",
        "--name",
        "t",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 3' TERM; while true; do sleep 0.1; done",
    ]);
    b.ok(&["kill", "-s", "TERM", "t"]);
    assert_eq!(b.ok(&["wait", "t"]), "3");
}

#[test]
fn swarm_endpoints_say_this_is_not_a_swarm() {
    let b = Berth::start();
    for (method, path) in [
        ("GET", "/swarm"),
        ("GET", "/nodes"),
        ("GET", "/services"),
        ("GET", "/tasks"),
        ("GET", "/secrets"),
        ("GET", "/configs"),
        ("POST", "/swarm/leave"),
    ] {
        let (code, body) = api(&b, method, path, None);
        assert_eq!(code, 503, "{method} {path}: {body}");
        assert!(
            body.contains("This node is not a swarm manager"),
            "{method} {path}: {body}"
        );
    }
    let (code, body) = api(&b, "POST", "/swarm/init", Some("{}"));
    assert_eq!(code, 503, "{body}");
    assert!(
        body.contains("swarm mode is not supported by Berth"),
        "{body}"
    );
    let (_, err) = b.fails(&["service", "ls"]);
    assert!(err.contains("This node is not a swarm manager"), "{err}");
    assert!(b
        .ok(&["info", "--format", "{{.Swarm.LocalNodeState}}"])
        .contains("inactive"));
}

#[test]
fn an_empty_dockerfile_is_an_http_error_and_diff_leaves_out_the_mount_points() {
    let b = Berth::start();
    let ctx = tempfile::tempdir().expect("temp dir");
    std::fs::write(ctx.path().join("Dockerfile"), "").expect("write");
    let o = b
        .cmd(&["build", ctx.path().to_str().unwrap()])
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .expect("build");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success()
            && err.contains(
                "Error response from daemon: the Dockerfile (Dockerfile) cannot be empty"
            ),
        "{err}"
    );
    // `docker diff` of a container that changed nothing is empty, as on Docker (the
    // stand-ins for /etc/hosts, /etc/hostname, /etc/resolv.conf are not changes).
    b.ok(&["run", "--name", "quiet", "busybox", "true"]);
    assert_eq!(b.ok(&["diff", "quiet"]), "");
    b.ok(&[
        "run",
        "--name",
        "busy",
        "busybox",
        "sh",
        "-c",
        "echo x > /etc/motd",
    ]);
    assert_eq!(b.ok(&["diff", "busy"]), "C /etc\nA /etc/motd");
}

#[test]
fn a_restarting_or_paused_container_is_not_removed_without_force() {
    let b = Berth::start();
    b.ok(&[
        "run",
        "-d",
        "--name",
        "again",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "exit 1",
    ]);
    b.eventually("the container waits for its restart", || {
        b.inspect("again", "{{.State.Status}}") == "restarting"
    });
    let (_, err) = b.fails(&["rm", "again"]);
    assert!(err.contains("cannot remove container \"/again\": container is restarting: stop the container before removing or force remove"), "{err}");
    b.ok(&["rm", "-f", "again"]);
    assert_eq!(b.ok(&["ps", "-aq"]), "");
    std::thread::sleep(std::time::Duration::from_secs(2));
    assert_eq!(
        b.ok(&["ps", "-aq"]),
        "",
        "a pending restart brought a removed container back"
    );
    b.ok(&["run", "-d", "--name", "frozen", "busybox", "sleep", "300"]);
    b.ok(&["pause", "frozen"]);
    let (_, err) = b.fails(&["rm", "frozen"]);
    assert!(
        err.contains("container is paused and must be unpaused first"),
        "{err}"
    );
    // dockerd names the container as it was asked for here, not by its id.
    let (_, err) = b.fails(&["exec", "frozen", "true"]);
    assert!(
        err.contains("Container frozen is paused, unpause the container before exec"),
        "{err}"
    );
    b.ok(&["rm", "-f", "frozen"]);
}

/// `attach` with `stream=0` (the Docker SDK's `attach(stream=False, logs=True)`):
/// the log so far, then the answer ends, as from dockerd; it never hangs.
#[test]
fn attach_without_stream_returns_the_log_and_ends() {
    berth_tests::require("/usr/bin/python3", "apt-get install python3-docker");
    let b = Berth::start();
    b.ok(&[
        "run",
        "-d",
        "--name",
        "talker",
        "busybox",
        "sh",
        "-c",
        "echo one; echo two; sleep 300",
    ]);
    b.eventually("the output is logged", || {
        b.ok(&["logs", "talker"]).contains("two")
    });
    let script = "import docker, sys\nc = docker.DockerClient(base_url=sys.argv[1]).containers.get('talker')\nsys.stdout.write(c.attach(stdout=True, stream=False, logs=True).decode())\nsys.stdout.write('|' + repr(c.attach(stdout=True, stream=False, logs=False)))\n";
    let o = Command::new("timeout")
        .args(["20", "/usr/bin/python3", "-c", script])
        .arg(format!("unix://{}", b.sock.display()))
        .output()
        .expect("python3");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "one\ntwo\n|b''");
}

/// `docker commit` records the image it was made on (`Parent`, and `ParentId` in
/// `docker images`), as dockerd does.
#[test]
fn commit_records_its_parent() {
    let b = Berth::start();
    let busybox = b.inspect("busybox", "{{.Id}}");
    assert_eq!(
        b.inspect("busybox", "{{.Parent}}"),
        "",
        "a seed image has no parent here"
    );
    b.ok(&["run", "--name", "c", "busybox", "touch", "/made"]);
    b.ok(&["commit", "c", "committed:1"]);
    assert_eq!(b.inspect("committed:1", "{{.Parent}}"), busybox);
    let listed = b.ok(&[
        "image",
        "ls",
        "--no-trunc",
        "--format",
        "{{json .}}",
        "committed",
    ]);
    assert!(listed.contains("committed"), "{listed}");
    let (code, body) = api(
        &b,
        "GET",
        "/images/json?filters=%7B%22reference%22%3A%5B%22committed%22%5D%7D",
        None,
    );
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains(&format!("\"ParentId\":\"{busybox}\"")),
        "{body}"
    );
}

/// GET as JSON at API 1.41 (dockerd 20.10's).
fn get_json(sock: &std::path::Path, path: &str) -> serde_json::Value {
    let (code, body) = call(sock, "1.41", "GET", path, None);
    assert_eq!(code, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

/// Every key path of a JSON value with its type (a 64-hex id as a key is `<id>`;
/// an array's items as `[]`).
fn shape(
    v: &serde_json::Value,
    path: &str,
    out: &mut std::collections::BTreeMap<String, &'static str>,
) {
    use serde_json::Value;
    let kind = match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    out.insert(path.to_string(), kind);
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let is_id = k.len() == 64 && k.bytes().all(|b| b.is_ascii_hexdigit());
                shape(
                    x,
                    &format!("{path}.{}", if is_id { "<id>" } else { k }),
                    out,
                );
            }
        }
        Value::Array(a) => {
            for x in a {
                shape(x, &format!("{path}[]"), out);
            }
        }
        _ => {}
    }
}

/// Fields of API versions after dockerd 20.10's 1.41 that Berth shows at any version,
/// as Docker 28 does.
const NEWER_FIELDS: &[&str] = &["DNSNames", "GwPriority", "EnableIPv4"];

/// The same keys with the same types on both, but for [`NEWER_FIELDS`] on Berth's side.
fn same_shape(what: &str, ours: &serde_json::Value, theirs: &serde_json::Value) {
    let (mut a, mut b) = (Default::default(), Default::default());
    shape(ours, "", &mut a);
    shape(theirs, "", &mut b);
    let newer = |k: &str| {
        NEWER_FIELDS
            .iter()
            .any(|f| k.split(['.', '[']).any(|p| p == *f))
    };
    let diff: Vec<String> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k) && (b.contains_key(*k) || !newer(k)))
        .map(|k| format!("{k}: berth {:?}, dockerd {:?}", a.get(k), b.get(k)))
        .collect();
    assert!(
        diff.is_empty(),
        "{what}: shapes differ:\n{}",
        diff.join("\n")
    );
}

/// Removes what a test made on a dockerd even when it fails: its user networks are
/// bridges on the host, which outlive the dockerd.
struct DockerdNetworks<'a> {
    d: &'a Dockerd,
    containers: Vec<&'static str>,
    networks: Vec<&'static str>,
}

impl Drop for DockerdNetworks<'_> {
    fn drop(&mut self) {
        let mut rm = vec!["rm", "-f"];
        rm.extend(&self.containers);
        let _ = self.d.docker(&rm);
        for n in &self.networks {
            let _ = self.d.docker(&["network", "rm", n]);
        }
    }
}

#[test]
fn networks_and_endpoints_match_dockerd() {
    let b = Berth::start();
    let d = Dockerd::start(&[]);
    d.load_from(&b, "busybox");
    let _cleanup = DockerdNetworks {
        d: &d,
        containers: vec!["web", "cr", "fixed", "nulls", "mac", "badmac"],
        networks: vec![
            "pn-app",
            "pn-second",
            "pn nulls",
            "pn-pool",
            "pn-range",
            "pn/odd.name",
        ],
    };
    let dsock = std::path::PathBuf::from(d.host().trim_start_matches("unix://"));
    type Engine<'a> = (&'a str, &'a std::path::Path, &'a dyn Fn(&[&str]) -> String);
    let engines: [Engine; 2] = [
        ("berth", &b.sock, &|a| b.ok(a)),
        ("dockerd", &dsock, &|a| d.ok(a)),
    ];
    for (_, sock, ok) in &engines {
        // Nulls where SDKs send them (docker-py's IPAMPool sends every field).
        let nulls = r#"{"Name":"pn nulls","Driver":null,"Internal":null,"Attachable":null,"EnableIPv6":null,"CheckDuplicate":null,"IPAM":null,"Options":null,"Labels":null}"#;
        let pool = r#"{"Name":"pn-pool","IPAM":{"Driver":null,"Options":null,"Config":[{"Subnet":"10.231.0.0/16","IPRange":null,"Gateway":null,"AuxiliaryAddresses":null}]}}"#;
        for body in [nulls, pool] {
            let (code, out) = call(sock, "1.41", "POST", "/networks/create", Some(body));
            assert_eq!(code, 201, "{body}: {out}");
        }
        ok(&["network", "create", "pn-app"]);
        ok(&["network", "create", "pn-second"]);
        ok(&["network", "create", "pn/odd.name"]);
        ok(&[
            "network",
            "create",
            "--subnet",
            "10.232.0.0/16",
            "--ip-range",
            "10.232.5.0/24",
            "--gateway",
            "10.232.0.1",
            "--aux-address",
            "r1=10.232.5.1",
            "--aux-address",
            "r2=10.232.0.2",
            "pn-range",
        ]);
        ok(&[
            "run",
            "-d",
            "--name",
            "web",
            "--network",
            "pn-app",
            "--network-alias",
            "foo",
            "busybox",
            "sleep",
            "300",
        ]);
        ok(&[
            "create",
            "--name",
            "cr",
            "--network",
            "pn-app",
            "--network-alias",
            "bar",
            "busybox",
            "true",
        ]);
        ok(&["network", "connect", "--alias", "s1", "pn-second", "web"]);
        ok(&[
            "run",
            "-d",
            "--name",
            "fixed",
            "--network",
            "pn-range",
            "--ip",
            "10.232.0.9",
            "busybox",
            "sleep",
            "300",
        ]);
        // Every endpoint field null.
        let nulls = r#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"NetworkMode":"pn-app"},"NetworkingConfig":{"EndpointsConfig":{"pn-app":{"Aliases":null,"IPAMConfig":{"IPv4Address":null,"IPv6Address":null,"LinkLocalIPs":null},"Links":null,"MacAddress":null,"DriverOpts":null,"NetworkID":null,"EndpointID":null}}}}"#;
        let (code, out) = call(
            sock,
            "1.41",
            "POST",
            "/containers/create?name=nulls",
            Some(nulls),
        );
        assert_eq!(code, 201, "{out}");
    }
    let both = |path: &str| (get_json(&b.sock, path), get_json(&dsock, path));
    for c in ["web", "cr", "fixed", "nulls"] {
        let (ours, theirs) = both(&format!("/containers/{c}/json"));
        same_shape(
            &format!("{c}'s NetworkSettings"),
            &ours["NetworkSettings"],
            &theirs["NetworkSettings"],
        );
        let ipam = |j: &serde_json::Value| {
            j["NetworkSettings"]["Networks"]
                .as_object()
                .unwrap()
                .values()
                .map(|e| e["IPAMConfig"].clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ipam(&ours), ipam(&theirs), "{c}'s IPAMConfig");
        if c == "fixed" || c == "nulls" {
            continue;
        }
        // The aliases asked for, and at 1.41 the short id of a container that ran.
        for (json, label) in [(&ours, "berth"), (&theirs, "dockerd")] {
            let short = &json["Id"].as_str().unwrap()[..12];
            let nets = &json["NetworkSettings"]["Networks"];
            let want = if c == "web" {
                serde_json::json!([["foo", short], ["s1", short]])
            } else {
                serde_json::json!([["bar"], null])
            };
            assert_eq!(
                serde_json::json!([nets["pn-app"]["Aliases"], nets["pn-second"]["Aliases"]]),
                want,
                "{label}: {c}"
            );
        }
    }
    for n in ["pn-app", "pn nulls", "pn-pool", "pn-range", "pn/odd.name"] {
        let (ours, theirs) = both(&format!(
            "/networks/{}",
            n.replace(' ', "%20").replace('/', "%2F")
        ));
        same_shape(&format!("network {n}"), &ours, &theirs);
        // The pools asked for read back alike (the others' subnets are each engine's pick).
        if n == "pn-pool" || n == "pn-range" {
            assert_eq!(
                ours["IPAM"]["Config"], theirs["IPAM"]["Config"],
                "{n}'s IPAM.Config"
            );
        }
    }
    // Since API 1.45 the aliases are only those asked for; the DNS names (1.44+) have
    // the name and short id too.
    let (_, v150) = call(&b.sock, "1.50", "GET", "/containers/web/json", None);
    let v150: serde_json::Value = serde_json::from_str(&v150).expect("inspect JSON");
    let short = &v150["Id"].as_str().unwrap()[..12];
    assert_eq!(
        v150["NetworkSettings"]["Networks"]["pn-app"]["Aliases"],
        serde_json::json!(["foo"])
    );
    assert_eq!(
        v150["NetworkSettings"]["Networks"]["pn-app"]["DNSNames"],
        serde_json::json!(["web", "foo", short])
    );
    // The range hands out its first address, an aux-address is taken, on both.
    let addr = |ok: &dyn Fn(&[&str]) -> String, ip: &[&str]| {
        let mut args = vec!["run", "--rm", "--network", "pn-range"];
        args.extend_from_slice(ip);
        args.extend_from_slice(&[
            "busybox",
            "sh",
            "-c",
            "ip -o -4 addr show eth0 | awk '{print $4}'",
        ]);
        ok(&args).trim().to_string()
    };
    assert_eq!(addr(&|a| b.ok(a), &[]), addr(&|a| d.ok(a), &[]));
    assert_eq!(addr(&|a| b.ok(a), &[]), "10.232.5.0/16");
    for engine in [
        b.docker(&[
            "run",
            "--rm",
            "--network",
            "pn-range",
            "--ip",
            "10.232.0.2",
            "busybox",
            "true",
        ]),
        d.docker(&[
            "run",
            "--rm",
            "--network",
            "pn-range",
            "--ip",
            "10.232.0.2",
            "busybox",
            "true",
        ]),
    ] {
        assert!(
            String::from_utf8_lossy(&engine.stderr).contains("Address already in use"),
            "{engine:?}"
        );
    }
    // Names: anything but blank or a predefined network's.
    for (name, status) in [("   ", None), ("host", Some(403))] {
        for (label, sock, _) in &engines {
            let (code, out) = call(
                sock,
                "1.41",
                "POST",
                "/networks/create",
                Some(&format!(r#"{{"Name":"{name}"}}"#)),
            );
            let want = if name == "host" {
                "operation is not permitted on predefined host network"
            } else {
                "invalid name:"
            };
            assert!(
                out.contains(want) && status.is_none_or(|s| s == code),
                "{label} {name:?}: {code} {out}"
            );
        }
    }
    // A MAC address in Config (API < 1.44 clients): applied, shown as given there and
    // normalised on the endpoint, on both.
    let create = r#"{"Image":"busybox","Cmd":["sleep","300"],"MacAddress":"02-42-AC-11-00-98","HostConfig":{"NetworkMode":"pn-app"}}"#;
    let mut seen = vec![];
    for (label, sock, ok) in &engines {
        let (code, out) = call(
            sock,
            "1.41",
            "POST",
            "/containers/create?name=mac",
            Some(create),
        );
        assert_eq!(code, 201, "{label}: {out}");
        ok(&["start", "mac"]);
        let inside = ok(&["exec", "mac", "cat", "/sys/class/net/eth0/address"]);
        let json = get_json(sock, "/containers/mac/json");
        seen.push((
            inside.trim().to_string(),
            json["Config"]["MacAddress"].clone(),
            json["NetworkSettings"]["Networks"]["pn-app"]["MacAddress"].clone(),
        ));
    }
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[0].0, "02:42:ac:11:00:98");
    // An invalid one: dockerd 20.10 refuses it at start, Berth already at create (as
    // Docker 25+ does), in the same words.
    let bad = r#"{"Image":"busybox","Cmd":["true"],"MacAddress":"zz","HostConfig":{"NetworkMode":"pn-app"}}"#;
    let (code, out) = call(&b.sock, "1.41", "POST", "/containers/create", Some(bad));
    assert!(
        code == 400 && out.contains("invalid MAC address zz"),
        "{code} {out}"
    );
    let (_, out) = call(
        &dsock,
        "1.41",
        "POST",
        "/containers/create?name=badmac",
        Some(bad),
    );
    assert!(out.contains("\"Id\""), "{out}");
    let (code, out) = call(&dsock, "1.41", "POST", "/containers/badmac/start", None);
    assert!(
        code >= 400 && out.contains("invalid MAC address"),
        "{code} {out}"
    );
    d.docker(&["rm", "-f", "badmac"]);
}

/// `curl` of a file to a daemon's socket (`unix://…`): (status, body).
fn post_file(host: &str, path: &str, file: &std::path::Path) -> (u16, String) {
    let o = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", "POST"])
        .args(["-H", "Content-Type: application/x-tar", "--unix-socket"])
        .arg(host.trim_start_matches("unix://"))
        .arg("--data-binary")
        .arg(format!("@{}", file.display()))
        .arg(format!("http://d/v1.41{path}"))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// A tar of `(path, content)` files at `dest`.
fn write_tar(dest: &std::path::Path, files: &[(&str, &[u8])]) {
    let mut t = tar::Builder::new(std::fs::File::create(dest).expect("create tar"));
    for (path, content) in files {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(content.len() as u64);
        t.append_data(&mut h, path, *content).expect("append");
    }
    t.finish().expect("finish tar");
}

/// An empty Dockerfile (no bytes, or nothing but comments) is an HTTP 400 with
/// dockerd's words; `docker load` of something that is no image archive (not a tar,
/// a tar without manifest.json, a cut-off archive) answers 200 with an error line
/// in the stream, as dockerd does, so the CLI prints the message alone and the
/// Python SDK raises `ImageLoadError`.
#[test]
fn empty_dockerfiles_and_bad_load_archives_answer_as_on_dockerd() {
    berth_tests::require("/usr/bin/python3", "apt-get install python3-docker");
    let b = Berth::start();
    let d = berth_tests::dockerd::Dockerd::start(&[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let berth = format!("unix://{}", b.sock.display());
    let hosts = [("berth", berth.as_str()), ("dockerd", &d.host())];

    let zero = dir.path().join("zero.tar");
    write_tar(&zero, &[("Dockerfile", b"")]);
    let comments = dir.path().join("comments.tar");
    write_tar(&comments, &[("Dockerfile", b"# only a comment\n\n")]);
    for (tar, want) in [
        (&zero, "the Dockerfile (Dockerfile) cannot be empty"),
        (
            &comments,
            "failed to parse Dockerfile: file with no instructions",
        ),
    ] {
        for (name, host) in hosts {
            let (code, body) = post_file(host, "/build", tar);
            let message: serde_json::Value =
                serde_json::from_str(&body).unwrap_or_else(|e| panic!("{name}: {e}: {body}"));
            assert_eq!(
                (code, message["message"].as_str()),
                (400, Some(want)),
                "{name}: {body}"
            );
        }
    }

    let not_tar = dir.path().join("not-a-tar");
    std::fs::write(&not_tar, "this is not an image archive\n").expect("write");
    let no_manifest = dir.path().join("no-manifest.tar");
    write_tar(&no_manifest, &[("hello.txt", b"hello\n")]);
    let saved = b.cmd(&["save", "busybox"]).output().expect("docker save");
    assert!(saved.status.success());
    let cut = dir.path().join("cut.tar");
    std::fs::write(&cut, &saved.stdout[..saved.stdout.len() / 2]).expect("write");
    let archives = [&not_tar, &no_manifest, &cut];
    for archive in archives {
        for (name, host) in hosts {
            let (code, body) = post_file(host, "/images/load", archive);
            let last: serde_json::Value = body
                .lines()
                .last()
                .and_then(|l| serde_json::from_str(l).ok())
                .unwrap_or_else(|| panic!("{name} {archive:?}: not a JSON line: {body}"));
            let error = last["error"].as_str().unwrap_or_default();
            assert!(
                code == 200 && !error.is_empty() && last["errorDetail"]["message"] == error,
                "{name} {archive:?}: {code} {body}"
            );
            let o = Command::new("docker")
                .args(["load", "-i"])
                .arg(archive)
                .env("DOCKER_HOST", host)
                .env_remove("DOCKER_CONTEXT")
                .output()
                .expect("docker load");
            let err = String::from_utf8_lossy(&o.stderr);
            // dockerd's message names a temp dir of its own, new on every load.
            let same = name == "dockerd" || err.trim() == error;
            assert!(
                !o.status.success()
                    && same
                    && !err.trim().is_empty()
                    && !err.contains("Error response from daemon"),
                "{name} {archive:?}: the CLI prints the message alone: {err}"
            );
        }
    }
    let script = "import docker, sys\nc = docker.DockerClient(base_url=sys.argv[1])\nfor path in sys.argv[2:]:\n    try:\n        c.images.load(open(path, 'rb').read())\n        print('loaded')\n    except docker.errors.ImageLoadError:\n        print('ImageLoadError')\n    except docker.errors.APIError as e:\n        print('APIError', e.response.status_code)\n";
    for (name, host) in hosts {
        let o = Command::new("timeout")
            .args(["60", "/usr/bin/python3", "-c", script, host])
            .args(archives)
            .output()
            .expect("python3");
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            "ImageLoadError\n".repeat(3),
            "{name}"
        );
    }
    assert_eq!(b.ok(&["images", "-q", "--filter", "dangling=true"]), "");
}

/// The Python SDK's `images.build` with `extra_hosts`, `network_mode` and
/// `cache_from`, from a directory with `.dockerignore` exceptions (the SDK applies
/// the rules itself): the same RUN output and cache use from Berth as from dockerd.
#[test]
fn python_sdk_builds_with_hosts_network_and_cache_from_as_on_dockerd() {
    berth_tests::require("/usr/bin/python3", "apt-get install python3-docker");
    let b = Berth::start();
    let d = berth_tests::dockerd::Dockerd::start(&[]);
    d.load_from(&b, "busybox");
    let ctx = tempfile::tempdir().expect("temp dir");
    for (path, content) in [
        (
            "Dockerfile",
            "FROM busybox\nCOPY . /ctx\nRUN grep -w foo /etc/hosts; ls /sys/class/net | tr '\\n' ' '; find /ctx | sort | tr '\\n' ' '\n",
        ),
        (".dockerignore", "dir\n!dir/keep\n"),
        ("dir/keep", "k\n"),
        ("dir/drop", "d\n"),
    ] {
        let p = ctx.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).expect("mkdir");
        std::fs::write(p, content).expect("write");
    }
    let script = r#"
import docker, sys
c = docker.DockerClient(base_url=sys.argv[1])
def build(**kw):
    _, logs = c.images.build(path=sys.argv[2], rm=True, **kw)
    return ''.join(l.get('stream', '') for l in logs)
out = build(tag='sdk:1', nocache=True, extra_hosts={'foo': '1.2.3.4'}, network_mode='none')
run = out.split(' ---> Running in ')[1].split('\n', 1)[1].split('Removing intermediate container')[0]
print(repr(run))
for source in (['busybox'], ['sdk:1']):
    print(source, build(cache_from=source).count(' ---> Using cache'))
c.images.remove('sdk:1')
"#;
    let mut seen = Vec::new();
    for (name, host) in [
        ("berth", format!("unix://{}", b.sock.display())),
        ("dockerd", d.host()),
    ] {
        let o = Command::new("timeout")
            .args(["120", "/usr/bin/python3", "-c", script, &host])
            .arg(ctx.path())
            .output()
            .expect("python3");
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        seen.push(String::from_utf8_lossy(&o.stdout).to_string());
    }
    assert_eq!(
        seen[0],
        "'1.2.3.4\\tfoo\\nlo /ctx /ctx/.dockerignore /ctx/Dockerfile /ctx/dir /ctx/dir/keep '\n['busybox'] 0\n['sdk:1'] 2\n"
    );
    assert_eq!(seen[1], seen[0], "dockerd");
}

#[test]
fn local_volume_options_and_plugins_answer_as_on_dockerd() {
    let b = Berth::start();
    let d = Dockerd::start(&[]);
    d.load_from(&b, "busybox");
    // (exit status, stdout + stderr) with the volume's own path on either side
    // written as VOLUME: dockerd's data root and Berth's differ.
    let on = |docker: &dyn Fn(&[&str]) -> std::process::Output, args: &[&str], volume: &str| {
        let o = docker(args);
        let mut out =
            String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
        if !volume.is_empty() {
            let path = String::from_utf8_lossy(
                &docker(&["volume", "inspect", "-f", "{{.Mountpoint}}", volume]).stdout,
            )
            .trim()
            .to_string();
            if !path.is_empty() {
                out = out.replace(&path, "VOLUME");
            }
        }
        (o.status.code(), out)
    };
    let berth = |args: &[&str]| b.docker(args);
    let dockerd = |args: &[&str]| d.docker(args);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["volume", "create", "-o", "color=red", "v1"], ""),
        (vec!["volume", "create", "-o", "type=tmpfs", "v2"], ""),
        (vec!["volume", "create", "-o", "o=size=1m", "v3"], ""),
        (vec!["volume", "create", "-o", "device=/dev/null", "v4"], ""),
        (vec!["volume", "create", "-o", "size=1g", "v5"], ""),
        (
            vec![
                "volume",
                "create",
                "-o",
                "type=tmpfs",
                "-o",
                "device=tmpfs",
                "-o",
                "o=size=1m,uid=7",
                "tv",
            ],
            "",
        ),
        (
            vec!["volume", "inspect", "-f", "{{.Driver}} {{.Options}}", "tv"],
            "",
        ),
        // The image's files copied in on create are gone with the mount they were
        // copied into: the tmpfs a container gets starts empty on both.
        (
            vec![
                "run",
                "--rm",
                "--network",
                "none",
                "-v",
                "tv:/var",
                "busybox",
                "ls",
                "-A",
                "/var",
            ],
            "",
        ),
        (
            vec![
                "run",
                "--rm",
                "--network",
                "none",
                "-v",
                "tv:/t",
                "busybox",
                "sh",
                "-c",
                "stat -c %u /t; echo a > /t/a; ls /t",
            ],
            "",
        ),
        (
            vec![
                "run",
                "--rm",
                "--network",
                "none",
                "-v",
                "tv:/t",
                "busybox",
                "ls",
                "-A",
                "/t",
            ],
            "",
        ),
        (
            vec![
                "volume",
                "create",
                "-o",
                "type=tmpfs",
                "-o",
                "device=tmpfs",
                "-o",
                "o=bogus=1",
                "bogus",
            ],
            "",
        ),
        (
            vec![
                "run",
                "--rm",
                "--network",
                "none",
                "-v",
                "bogus:/d",
                "busybox",
                "true",
            ],
            "bogus",
        ),
        (
            vec![
                "volume",
                "create",
                "-o",
                "type=ext4",
                "-o",
                "device=/nonexistent-disk",
                "nodisk",
            ],
            "",
        ),
        (
            vec![
                "run",
                "--name",
                "nodisk",
                "--network",
                "none",
                "-v",
                "nodisk:/d",
                "busybox",
                "true",
            ],
            "nodisk",
        ),
        (
            vec![
                "inspect",
                "-f",
                "{{.State.Status}} {{.State.ExitCode}} {{.State.Error}}",
                "nodisk",
            ],
            "nodisk",
        ),
        (vec!["rm", "nodisk"], ""),
        (vec!["ps", "-a", "--format", "{{.Names}}"], ""),
        (vec!["plugin", "ls"], ""),
        (vec!["plugin", "ls", "--filter", "color=red"], ""),
        (vec!["plugin", "inspect", "nothing"], ""),
        (vec!["plugin", "rm", "nothing"], ""),
        (vec!["plugin", "enable", "nothing"], ""),
    ];
    for (args, volume) in &cases {
        assert_eq!(
            on(&berth, args, volume),
            on(&dockerd, args, volume),
            "docker {args:?}"
        );
    }
    // Installing one: dockerd goes to Docker Hub for it; Berth has no plugins.
    let (code, out) = on(&berth, &["plugin", "install", "vieux/sshfs"], "");
    assert!(
        code != Some(0) && out.contains("plugins are not supported by Berth"),
        "{out}"
    );
}
