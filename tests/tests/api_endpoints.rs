//! Engine API endpoints beyond the everyday CLI: `docker update`, `docker system df`
//! (and `ps --size`), `docker rm --link`, the distribution inspect and exec's output
//! framing, each compared with Debian's dockerd in the same run where it can be.

use std::path::Path;
use std::process::{Command, Stdio};

use berth_tests::dockerd::Dockerd;
use berth_tests::{limit_file, require, Berth};

/// Debian's python, where python3-docker is installed.
const PYTHON: &str = "/usr/bin/python3";

/// tests/python/wire_check.py against the engine at `host` (a `unix://` URL).
fn wire_check(host: &str, args: &[&str]) -> serde_json::Value {
    require(PYTHON, "apt-get install python3");
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .join("wire_check.py");
    let o = Command::new(PYTHON)
        .arg(&script)
        .args(args)
        .env("DOCKER_HOST", host)
        .env_remove("DOCKER_CONTEXT")
        .stdin(Stdio::null())
        .output()
        .expect("run wire_check.py");
    assert!(
        o.status.success(),
        "wire_check.py {args:?} against {host} failed (apt-get install python3-docker?): {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("wire_check.py prints JSON")
}

/// The CLI's exit code and stderr, with the container's id (which differs between
/// the two engines) replaced by `ID`.
fn failure(o: std::process::Output, id: &str) -> (i32, String) {
    assert!(!o.status.success(), "expected a failure");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).trim().replace(id, "ID"),
    )
}

/// What `docker update` changes, read back through inspect and from inside the
/// container (its own cgroup files), the same on both engines; its refusals word for
/// word.
#[test]
fn update_changes_limits_and_restart_policy_as_dockerd_does() {
    let b = Berth::start();
    let d = Dockerd::start(&[]);
    d.load_from(&b, "busybox");
    let hostconfig = "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.NanoCpus}} {{.HostConfig.CpuShares}} {{.HostConfig.PidsLimit}} {{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}";
    let files = [
        "memory.max",
        "memory.swap.max",
        "cpu.max",
        "cpu.weight",
        "pids.max",
    ];
    let cgroup_files = format!("cat {}", files.map(limit_file).join(" "));
    let mut seen = Vec::new();
    for engine in ["berth", "dockerd"] {
        let run = |args: &[&str]| {
            if engine == "berth" {
                b.docker(args)
            } else {
                d.docker(args)
            }
        };
        let ok = |args: &[&str]| {
            let o = run(args);
            assert!(
                o.status.success(),
                "{engine}: docker {args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            String::from_utf8_lossy(&o.stdout).trim().to_string()
        };
        let id = ok(&[
            "run",
            "-d",
            "--name",
            "upd",
            "--network",
            "none",
            "--memory",
            "64m",
            "busybox",
            "sleep",
            "300",
        ]);
        let mut lines = vec![ok(&["inspect", "-f", hostconfig, "upd"])];
        assert_eq!(
            ok(&[
                "update",
                "--memory",
                "128m",
                "--memory-swap",
                "256m",
                "--cpus",
                "0.5",
                "--cpu-shares",
                "512",
                "--pids-limit",
                "50",
                "--restart",
                "on-failure:3",
                "upd"
            ]),
            "upd"
        );
        lines.push(ok(&["inspect", "-f", hostconfig, "upd"]));
        lines.push(ok(&["exec", "upd", "sh", "-c", &cgroup_files]).replace('\n', " "));
        // Refusals: memory above the swap already set, the period once --cpus is
        // set, an unknown restart policy, a restart policy for an --rm container.
        lines.push(format!(
            "{:?}",
            failure(run(&["update", "--memory", "512m", "upd"]), &id)
        ));
        lines.push(format!(
            "{:?}",
            failure(run(&["update", "--cpu-period", "50000", "upd"]), &id)
        ));
        lines.push(format!(
            "{:?}",
            failure(run(&["update", "--memory", "1m", "upd"]), &id)
        ));
        lines.push(format!(
            "{:?}",
            failure(run(&["update", "--restart", "sometimes", "upd"]), &id)
        ));
        let rm_id = ok(&[
            "run",
            "-d",
            "--rm",
            "--name",
            "gone",
            "--network",
            "none",
            "busybox",
            "sleep",
            "300",
        ]);
        lines.push(format!(
            "{:?}",
            failure(run(&["update", "--restart", "always", "gone"]), &rm_id)
        ));
        // The pids limit lifted, memory grown without touching swap.
        ok(&["update", "--pids-limit", "-1", "--memory", "200m", "upd"]);
        lines.push(
            ok(&[
                "exec",
                "upd",
                "cat",
                &limit_file("pids.max"),
                &limit_file("memory.max"),
            ])
            .replace('\n', " "),
        );
        // A stopped container's update applies at its next start.
        ok(&["stop", "-t", "0", "upd"]);
        ok(&["update", "--memory", "100m", "upd"]);
        ok(&["start", "upd"]);
        lines.push(ok(&["exec", "upd", "cat", &limit_file("memory.max")]));
        lines.push(ok(&["inspect", "-f", hostconfig, "upd"]));
        let until = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs()
            + 1;
        let events = ok(&[
            "events",
            "--since",
            "0",
            "--until",
            &until.to_string(),
            "--filter",
            "event=update",
            "--format",
            "{{.Action}} {{.Actor.Attributes.name}}",
        ]);
        lines.push(events.replace('\n', " "));
        ok(&["rm", "-f", "upd", "gone"]);
        seen.push(lines);
    }
    let (berth, dockerd) = (&seen[0], &seen[1]);
    for (i, (got, want)) in berth.iter().zip(dockerd).enumerate() {
        assert_eq!(
            got, want,
            "line {i} differs (berth, dockerd); berth: {berth:#?} dockerd: {dockerd:#?}"
        );
    }
}

/// The Python SDK's `update_container` and `df` get the same answers and shapes from
/// both engines.
#[test]
fn the_sdk_updates_and_counts_as_on_dockerd() {
    let b = Berth::start();
    let d = Dockerd::start(&[]);
    d.load_from(&b, "busybox");
    let args = [
        "run",
        "-d",
        "--name",
        "sdk-upd",
        "--network",
        "none",
        "--memory",
        "64m",
        "-v",
        "sdkvol:/v",
        "busybox",
        "sleep",
        "300",
    ];
    b.ok(&args);
    d.ok(&args);
    let berth_host = format!("unix://{}", b.sock.display());
    assert_eq!(
        wire_check(&berth_host, &["update", "sdk-upd"]),
        wire_check(&d.host(), &["update", "sdk-upd"])
    );
    let (berth, dockerd) = (
        wire_check(&berth_host, &["df", "-"]),
        wire_check(&d.host(), &["df", "-"]),
    );
    assert_eq!(berth["rows"], dockerd["rows"]);
    // dockerd 20.10 also reports `BuildCache` from BuildKit, which Berth has as an empty list.
    assert_eq!(berth["parts"], dockerd["parts"]);
    b.ok(&["rm", "-f", "sdk-upd"]);
    d.ok(&["rm", "-f", "sdk-upd"]);
}

/// In a lab session the session's limits hold for `docker update` as for `run`.
#[test]
fn update_in_a_lab_session_stays_within_its_limits() {
    let lab = berth_tests::lab::Lab::start_with(&["--lab-memory", "256m"]);
    let id = lab.create_session();
    let docker = |args: &[&str]| lab.session_docker(&id, args);
    let ok = |args: &[&str]| lab.session_docker_ok(&id, args);
    // With the student's home bound in: an update leaves the bind as it was made.
    ok(&[
        "run", "-d", "--name", "upd", "-v", "/root:/h", "busybox", "sleep", "300",
    ]);
    let o = docker(&["update", "--memory", "1g", "--memory-swap", "2g", "upd"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success()
            && err.contains("--memory 1024m is above this lab session's limit of 256m"),
        "{err}"
    );
    ok(&["update", "--memory", "128m", "--memory-swap", "256m", "upd"]);
    assert_eq!(
        ok(&["exec", "upd", "cat", &limit_file("memory.max")]),
        "134217728"
    );
    let binds = ok(&["inspect", "-f", "{{json .HostConfig.Binds}}", "upd"]);
    ok(&["update", "--cpus", "0.5", "upd"]);
    assert_eq!(
        ok(&["inspect", "-f", "{{json .HostConfig.Binds}}", "upd"]),
        binds
    );
    ok(&["restart", "-t", "0", "upd"]);
    ok(&["exec", "upd", "ls", "/h"]);
    ok(&["rm", "-f", "upd"]);
}

/// `docker system df` (summary and `-v`) and `docker ps --size`: the same rows and
/// counts as dockerd for the same images, containers and volumes; sizes counted as
/// the files written.
#[test]
fn system_df_counts_what_dockerd_counts() {
    let b = Berth::start();
    let d = Dockerd::start(&[]);
    d.load_from(&b, "busybox");
    let mut seen = Vec::new();
    for engine in ["berth", "dockerd"] {
        let ok = |args: &[&str]| {
            let o = if engine == "berth" {
                b.docker(args)
            } else {
                d.docker(args)
            };
            assert!(
                o.status.success(),
                "{engine}: docker {args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            String::from_utf8_lossy(&o.stdout).trim().to_string()
        };
        ok(&["volume", "create", "data"]);
        // 1 MiB in the container's layer, 2 MiB in the volume.
        ok(&[
            "run",
            "--name",
            "writer",
            "--network",
            "none",
            "-v",
            "data:/data",
            "busybox",
            "sh",
            "-c",
            "head -c 1048576 /dev/zero > /big && head -c 2097152 /dev/zero > /data/big",
        ]);
        ok(&[
            "run",
            "-d",
            "--name",
            "idle",
            "--network",
            "none",
            "busybox",
            "sleep",
            "300",
        ]);
        let summary = ok(&[
            "system",
            "df",
            "--format",
            "{{.Type}} {{.TotalCount}} {{.Active}}",
        ]);
        let verbose = ok(&["system", "df", "-v", "--format", "{{json .}}"]);
        let v: serde_json::Value = serde_json::from_str(&verbose).expect("df -v JSON");
        let sizes = ok(&["ps", "-a", "--size", "--format", "{{.Names}} {{.Size}}"]);
        ok(&["rm", "-f", "writer", "idle"]);
        ok(&["volume", "rm", "data"]);
        seen.push((summary, v, sizes));
    }
    let ((berth_summary, berth, berth_sizes), (dockerd_summary, dockerd, _)) = (&seen[0], &seen[1]);
    // Berth has its seed images besides busybox: images are compared row by row below.
    let without_images = |s: &str| {
        s.lines()
            .filter(|l| !l.starts_with("Images "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        without_images(berth_summary),
        without_images(dockerd_summary)
    );
    // Berth's own counts: the writer's layer holds its 1 MiB file (and nothing else
    // of size), the volume its 2 MiB, used by one container.
    let container = |v: &serde_json::Value, name: &str| {
        v["Containers"]
            .as_array()
            .expect("Containers")
            .iter()
            .find(|c| c["Names"] == name)
            .cloned()
            .expect("the container")
    };
    assert_eq!(container(berth, "writer")["Size"], "1.05MB", "{berth:#}");
    assert_eq!(container(berth, "idle")["Size"], "0B", "{berth:#}");
    assert_eq!(berth["Volumes"][0]["Size"], "2.097MB", "{berth:#}");
    assert_eq!(berth["Volumes"][0]["Links"], "1", "{berth:#}");
    assert!(
        berth_sizes.contains("writer 1.05MB (virtual "),
        "{berth_sizes}"
    );
    // The same rows and columns as dockerd's (values that depend on the engine's
    // own files aside: dockerd's layer counts its /etc mount points too).
    let keys = |v: &serde_json::Value, part: &str| -> std::collections::BTreeSet<String> {
        v[part]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|row| row.as_object().expect("row").keys().cloned())
            .collect()
    };
    for part in ["Images", "Containers", "Volumes"] {
        assert_eq!(
            keys(berth, part),
            keys(dockerd, part),
            "{part}: berth {berth:#} dockerd {dockerd:#}"
        );
    }
    // (Its unique size differs: Berth's seed images share a layer with it.)
    let busybox = |v: &serde_json::Value| -> (String, String) {
        let i = v["Images"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|i| i["Repository"] == "busybox")
            .cloned()
            .expect("busybox");
        let s = |k: &str| i[k].as_str().unwrap_or("").to_string();
        (s("Containers"), s("Size"))
    };
    assert_eq!(busybox(berth), busybox(dockerd));
}

/// `docker rm --link /PARENT/ALIAS` takes the link off the parent, both stay.
#[test]
fn rm_link_removes_the_link_only() {
    let b = Berth::start();
    b.ok(&["run", "-d", "--name", "db", "busybox", "sleep", "300"]);
    b.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--link",
        "db:dbalias",
        "busybox",
        "sleep",
        "300",
    ]);
    assert_eq!(
        b.inspect("web", "{{.HostConfig.Links}}"),
        "[/db:/web/dbalias]"
    );
    assert_eq!(b.ok(&["rm", "--link", "/web/dbalias"]), "/web/dbalias");
    assert_eq!(b.inspect("web", "{{.HostConfig.Links}}"), "[]");
    assert_eq!(b.ok(&["ps", "--format", "{{.Names}}"]), "web\ndb");
    let (_, err) = b.fails(&["rm", "--link", "/web/dbalias"]);
    assert!(err.contains("No such container: /web/dbalias"), "{err}");
    let (_, err) = b.fails(&["rm", "--link", "db"]);
    assert!(
        err.contains("Conflict, cannot remove the default link name of the container"),
        "{err}"
    );
    b.ok(&["rm", "-f", "web", "db"]);
}

/// The distribution inspect of an image in a registry (Berth's own), as dockerd
/// answers it for the same name; the SDK's `inspect_distribution`.
#[test]
fn distribution_inspect_reads_the_registry_as_dockerd_does() {
    let b = Berth::start();
    let d = Dockerd::start(&[]);
    let name = format!("{}/tools/busybox:1", b.registry_addr());
    b.ok(&["tag", "busybox", &name]);
    b.ok(&["push", &name]);
    let from_berth = wire_check(
        &format!("unix://{}", b.sock.display()),
        &["distribution", &name],
    );
    let from_dockerd = wire_check(&d.host(), &["distribution", &name]);
    assert_eq!(from_berth["Descriptor"], from_dockerd["Descriptor"]);
    // dockerd 20.10 reads the platform of Docker's own manifest type only (null for
    // the OCI manifests Berth pushes); current dockerd reads both, from the config.
    assert_eq!(
        from_berth["Platforms"],
        serde_json::json!([{ "architecture": "amd64", "os": "linux" }])
    );
    let digest = b.inspect(&name, "{{index .RepoDigests 0}}");
    assert!(
        digest.ends_with(from_berth["Descriptor"]["digest"].as_str().expect("digest")),
        "{digest} vs {from_berth}"
    );
    let (code, body) = berth_tests::api_call(
        &b.sock,
        "1.47",
        "GET",
        &format!("/distribution/{}/nothere:1/json", b.registry_addr()),
        None,
    );
    assert_eq!(code, 404, "{body}");
}

/// Exec output is framed (stdout and stderr told apart) unless the *start* asks for
/// a TTY, whatever the exec was created with: the same bytes as dockerd's for all four
/// combinations.
#[test]
fn exec_output_framing_follows_the_start_request() {
    let b = Berth::start();
    let d = Dockerd::start(&[]);
    d.load_from(&b, "busybox");
    b.ok(&[
        "run",
        "-d",
        "--name",
        "ex",
        "--network",
        "none",
        "busybox",
        "sleep",
        "300",
    ]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "ex",
        "--network",
        "none",
        "busybox",
        "sleep",
        "300",
    ]);
    let from_berth = wire_check(&format!("unix://{}", b.sock.display()), &["exec", "ex"]);
    let from_dockerd = wire_check(&d.host(), &["exec", "ex"]);
    assert_eq!(from_berth, from_dockerd);
    // Framed: stream 1 "out\n", then stream 2 "err\n".
    assert_eq!(
        from_berth["create_tty=False,start_tty=False"],
        "AQAAAAAAAARvdXQKAgAAAAAAAARlcnIK"
    );
    b.ok(&["rm", "-f", "ex"]);
    d.ok(&["rm", "-f", "ex"]);
}

/// `inspect` of the same plain container on both engines: every `HostConfig`,
/// `Config` and `State` field dockerd shows is there, with the same JSON type, and the
/// settings nobody gave have dockerd's zero values.
#[test]
fn inspect_shows_every_field_with_dockerds_zero_values() {
    let b = Berth::start();
    let d = Dockerd::start(&[]);
    d.load_from(&b, "busybox");
    let args = [
        "run",
        "-d",
        "--name",
        "plain",
        "--network",
        "none",
        "busybox",
        "sleep",
        "300",
    ];
    b.ok(&args);
    d.ok(&args);
    let inspect = |out: String| -> serde_json::Value {
        serde_json::from_str::<serde_json::Value>(&out).expect("inspect JSON")[0].clone()
    };
    let berth = inspect(b.ok(&["inspect", "plain"]));
    let dockerd = inspect(d.ok(&["inspect", "plain"]));
    // Values that name the engine's own paths, ids, times and host.
    let own = [
        "Id",
        "Created",
        "Path",
        "ResolvConfPath",
        "HostnamePath",
        "HostsPath",
        "LogPath",
        "Pid",
        "StartedAt",
        "Hostname",
        "Image",
        "GraphDriver",
        "SandboxID",
        "SandboxKey",
        "MaskedPaths",
        "ReadonlyPaths",
        "Platform",
        "MountLabel",
        "ProcessLabel",
        "AppArmorProfile",
        "Driver",
        "ExecIDs",
        "Env",
    ];
    fn compare(
        path: &str,
        ours: &serde_json::Value,
        theirs: &serde_json::Value,
        own: &[&str],
        diffs: &mut Vec<String>,
    ) {
        let kind = |v: &serde_json::Value| match v {
            serde_json::Value::Null => "null",
            serde_json::Value::Bool(_) => "bool",
            serde_json::Value::Number(_) => "number",
            serde_json::Value::String(_) => "string",
            serde_json::Value::Array(_) => "array",
            serde_json::Value::Object(_) => "object",
        };
        for (key, want) in theirs.as_object().expect("object") {
            let at = format!("{path}.{key}");
            match ours.get(key) {
                None => diffs.push(format!("{at} missing (dockerd: {want})")),
                Some(_) if own.contains(&key.as_str()) => {}
                Some(got) if got.is_object() && want.is_object() => {
                    compare(&at, got, want, own, diffs)
                }
                Some(got) if got != want => diffs.push(format!(
                    "{at}: berth {got} ({}), dockerd {want} ({})",
                    kind(got),
                    kind(want)
                )),
                Some(_) => {}
            }
        }
    }
    let mut diffs = Vec::new();
    for section in ["HostConfig", "Config", "State"] {
        compare(
            section,
            &berth[section],
            &dockerd[section],
            &own,
            &mut diffs,
        );
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}
