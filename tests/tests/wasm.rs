//! WebAssembly images under wasmtime, with the real docker CLI: the `hello-wasm` seed,
//! images built `--platform wasi/wasm` from the test guest (wasm/guests), `-it` with
//! detach and attach, logs, stop of an endless guest, exit codes, volumes shared with
//! busybox, memory caps, the module cache, and bad modules.

use std::fs;
use std::time::{Duration, Instant};

use berth_tests::wasm::{test_component, test_guest};
use berth_tests::{Berth, Pty};

// The guest's `args` mode prints every argument after argv[0], its own name first.

/// Builds `name` from the test guest: `FROM scratch`, `COPY app.wasm /`,
/// `ENTRYPOINT ["/app.wasm"]`, with the platform recorded by `--platform wasi/wasm`.
fn guest_image(b: &Berth, name: &str) {
    let ctx = b
        .root
        .with_file_name(format!("ctx-{}", name.replace([':', '/'], "-")));
    fs::create_dir_all(&ctx).unwrap();
    fs::copy(test_guest(), ctx.join("app.wasm")).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY app.wasm /\nENTRYPOINT [\"/app.wasm\"]\n",
    )
    .unwrap();
    b.ok(&[
        "build",
        "--platform",
        "wasi/wasm",
        "-q",
        "-t",
        name,
        ctx.to_str().unwrap(),
    ]);
}

#[test]
fn hello_wasm_seed_runs_under_wasmtime() {
    let b = Berth::start();
    assert_eq!(
        b.ok(&[
            "image",
            "inspect",
            "-f",
            "{{.Os}}/{{.Architecture}}",
            "hello-wasm"
        ]),
        "wasip1/wasm"
    );
    let out = b.ok(&["run", "--name", "hi", "hello-wasm", "안녕", "Berth"]);
    assert!(out.contains("Hello from WebAssembly on Berth!"), "{out}");
    assert!(
        out.contains("Berth에서 WebAssembly로 인사드립니다!"),
        "{out}"
    );
    assert!(out.contains("args: 안녕 Berth"), "{out}");
    assert_eq!(
        b.inspect("hi", "{{.HostConfig.Runtime}} {{.State.ExitCode}}"),
        "io.containerd.wasmtime.v1 0"
    );
    assert!(b
        .ok(&["logs", "hi"])
        .contains("Hello from WebAssembly on Berth!"));
    // Linux containers keep runc beside it, and `docker info` lists both runtimes.
    b.ok(&["run", "--name", "bb", "busybox", "true"]);
    assert_eq!(b.inspect("bb", "{{.HostConfig.Runtime}}"), "runc");
    let info = b.ok(&["info", "-f", "{{json .Runtimes}}"]);
    assert!(
        info.contains("io.containerd.wasmtime.v1") && info.contains("runc"),
        "{info}"
    );
}

#[test]
fn built_wasm_image_keeps_its_platform_through_push_and_pull() {
    let _port = berth_tests::port_5000();
    let b = Berth::start_with(&["--registry-listen", "127.0.0.1:5000"]);
    guest_image(&b, "guest:1");
    assert_eq!(
        b.ok(&[
            "image",
            "inspect",
            "-f",
            "{{.Os}}/{{.Architecture}}",
            "guest:1"
        ]),
        "wasi/wasm"
    );
    let history = b.ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}",
        "guest:1",
    ]);
    assert!(
        history.contains("ENTRYPOINT [\"/app.wasm\"]") && history.contains("COPY"),
        "{history}"
    );
    assert_eq!(
        b.ok(&["run", "--rm", "guest:1", "args", "one", "two"]),
        "args\none\ntwo"
    );

    b.ok(&["tag", "guest:1", "localhost:5000/guest:1"]);
    b.ok(&["push", "localhost:5000/guest:1"]);
    b.ok(&["rmi", "guest:1", "localhost:5000/guest:1"]);
    b.ok(&["pull", "localhost:5000/guest:1"]);
    assert_eq!(
        b.ok(&[
            "image",
            "inspect",
            "-f",
            "{{.Os}}/{{.Architecture}}",
            "localhost:5000/guest:1"
        ]),
        "wasi/wasm"
    );
    assert_eq!(
        b.ok(&["run", "--rm", "localhost:5000/guest:1", "args", "pulled"]),
        "args\npulled"
    );
}

#[test]
fn runtime_and_platform_flags_pick_wasmtime() {
    let b = Berth::start();
    // A module in an image that does not say it is wasm (docker import records linux).
    let dir = b.root.with_file_name("import");
    fs::create_dir_all(&dir).unwrap();
    fs::copy(test_guest(), dir.join("app.wasm")).unwrap();
    let tar = dir.with_extension("tar");
    let st = std::process::Command::new("tar")
        .arg("-C")
        .arg(&dir)
        .arg("-cf")
        .arg(&tar)
        .arg("app.wasm")
        .status()
        .unwrap();
    assert!(st.success());
    b.ok(&[
        "import",
        "--change",
        "ENTRYPOINT [\"/app.wasm\"]",
        tar.to_str().unwrap(),
        "plain:1",
    ]);
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "--runtime",
            "io.containerd.wasmtime.v1",
            "plain:1",
            "args",
            "by-runtime"
        ]),
        "args\nby-runtime"
    );
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "--platform",
            "wasi/wasm",
            "plain:1",
            "args",
            "by-platform"
        ]),
        "args\nby-platform"
    );
    // Without either, runc execs the module as a Linux program and fails like Docker.
    let (_, err) = b.fails(&["run", "--rm", "plain:1"]);
    assert!(err.contains("exec format error"), "{err}");
    let (code, err) = b.fails(&["run", "--rm", "--runtime", "crun", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(
        err.contains("unknown or invalid runtime name: crun"),
        "{err}"
    );
    // The `module.wasm#func` entrypoint form calls another export.
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "--platform",
            "wasi/wasm",
            "--entrypoint",
            "/app.wasm#greet",
            "plain:1"
        ]),
        "greet called"
    );
}

#[test]
fn it_detach_attach_and_eof() {
    let b = Berth::start();
    guest_image(&b, "guest:1");
    let mut t = Pty::spawn(b.cmd(&["run", "-it", "--name", "echo", "guest:1", "echo"]));
    std::thread::sleep(Duration::from_millis(300));
    t.send(b"first\r");
    t.expect("got: first");
    t.send(b"\x10\x11");
    assert_eq!(t.wait(), 0);
    assert_eq!(b.inspect("echo", "{{.State.Running}}"), "true");
    let mut a = Pty::spawn(b.cmd(&["attach", "echo"]));
    std::thread::sleep(Duration::from_millis(300));
    a.send(b"second\r");
    a.expect("got: second");
    // ctrl-D: end of input; the guest returns from main and the container exits 0.
    a.send(b"\x04");
    assert_eq!(a.wait(), 0);
    b.eventually("the guest exits at EOF", || {
        b.inspect("echo", "{{.State.Status}} {{.State.ExitCode}}") == "exited 0"
    });
    let logs = b.ok(&["logs", "echo"]);
    assert!(
        logs.contains("got: first") && logs.contains("got: second"),
        "{logs}"
    );
}

#[test]
fn logs_exit_codes_and_stop_of_an_endless_guest() {
    let b = Berth::start();
    guest_image(&b, "guest:1");
    let o = b.docker(&["run", "--rm", "guest:1", "exit", "7"]);
    assert_eq!(o.status.code(), Some(7));
    b.ok(&["run", "--name", "streams", "guest:1", "stderr", "to-stderr"]);
    let o = b.docker(&["logs", "streams"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "out");
    assert_eq!(String::from_utf8_lossy(&o.stderr).trim(), "to-stderr");

    // A guest that never calls the host: SIGTERM interrupts it through the epoch,
    // long before stop's 10 s timeout would send SIGKILL.
    b.ok(&["run", "-d", "--name", "spin", "guest:1", "loop"]);
    b.eventually("the guest starts spinning", || {
        b.ok(&["logs", "spin"]).contains("looping")
    });
    // Behind WASI, the guest's process is held like a container's: rooted in the
    // container's root, with Docker's default capabilities only; and nothing can be
    // exec'd beside it.
    let pid = b.inspect("spin", "{{.State.Pid}}");
    let root = fs::read_link(format!("/proc/{pid}/root")).unwrap();
    assert!(root.ends_with("rootfs"), "{}", root.display());
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .unwrap()
        .trim();
    assert_eq!(cap_eff, "00000000a80425fb", "Docker's default capabilities");
    let (_, err) = b.fails(&["exec", "spin", "sh"]);
    assert!(err.contains("exec needs a Linux container"), "{err}");
    let t0 = Instant::now();
    b.ok(&["stop", "spin"]);
    assert!(
        t0.elapsed() < Duration::from_secs(8),
        "stop took {:?}",
        t0.elapsed()
    );
    assert_eq!(
        b.inspect("spin", "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 143"
    );
    b.ok(&["start", "spin"]);
    b.ok(&["kill", "spin"]);
    b.eventually("kill ends it", || {
        b.inspect("spin", "{{.State.Status}} {{.State.ExitCode}}") == "exited 137"
    });
}

#[test]
fn a_volume_written_by_the_guest_is_read_by_busybox() {
    let b = Berth::start();
    guest_image(&b, "guest:1");
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "-v",
            "shared:/data",
            "guest:1",
            "write",
            "/data/note.txt",
            "from-wasm"
        ]),
        "wrote /data/note.txt"
    );
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "-v",
            "shared:/data",
            "busybox",
            "cat",
            "/data/note.txt"
        ]),
        "from-wasm"
    );
    b.ok(&[
        "run",
        "--rm",
        "-v",
        "shared:/data",
        "busybox",
        "sh",
        "-c",
        "echo from-linux > /data/back.txt",
    ]);
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "-v",
            "shared:/data",
            "guest:1",
            "read",
            "/data/back.txt"
        ]),
        "from-linux"
    );
    // A read-only mount is read-only to the guest too.
    let o = b.docker(&[
        "run",
        "--rm",
        "-v",
        "shared:/data:ro",
        "guest:1",
        "write",
        "/data/nope.txt",
        "x",
    ]);
    assert_ne!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    // Environment and working directory reach the guest.
    let env = b.ok(&[
        "run",
        "--rm",
        "-e",
        "GREETING=안녕",
        "-w",
        "/work",
        "guest:1",
        "env",
    ]);
    assert!(
        env.lines().any(|l| l == "GREETING=안녕") && env.lines().any(|l| l == "PWD=/work"),
        "{env}"
    );
    // Nothing of the host is visible: the root holds the image's one file.
    let ls = b.ok(&["run", "--rm", "guest:1", "pwd"]);
    assert!(
        ls.lines().any(|l| l == "app.wasm") && !ls.lines().any(|l| l == "etc" || l == "proc"),
        "{ls}"
    );
}

#[test]
fn memory_cap_and_module_cache() {
    let b = Berth::start();
    guest_image(&b, "guest:1");
    assert_eq!(
        b.ok(&["run", "--rm", "-m", "32m", "guest:1", "alloc", "8"]),
        "allocated 8 MiB"
    );
    let o = b.docker(&["run", "--rm", "-m", "32m", "guest:1", "alloc", "64"]);
    assert_ne!(
        o.status.code(),
        Some(0),
        "64 MiB under a 32 MiB cap: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    // Compiled once: the cache holds one entry for the module, untouched by later runs.
    let cache = b.root.join("wasm-cache");
    let entries = || -> Vec<(String, std::time::SystemTime)> {
        let mut v: Vec<_> = fs::read_dir(&cache)
            .unwrap()
            .flatten()
            .map(|e| {
                (
                    e.file_name().to_string_lossy().to_string(),
                    e.metadata().unwrap().modified().unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let before = entries();
    assert_eq!(before.len(), 1, "{before:?}");
    assert!(before[0].0.ends_with(".cwasm"));
    b.ok(&["run", "--rm", "guest:1", "args"]);
    assert_eq!(entries(), before);
}

#[test]
fn bad_modules_fail_clearly_and_the_engine_stays_up() {
    let b = Berth::start();
    let dir = b.root.with_file_name("bad");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("text.wasm"), "this is not wasm at all").unwrap();
    // The magic and version, then a section id that does not exist.
    fs::write(dir.join("broken.wasm"), b"\0asm\x01\0\0\0\xff\x01\x00").unwrap();
    fs::copy(test_guest(), dir.join("app.wasm")).unwrap();
    fs::write(
        dir.join("Dockerfile"),
        "FROM scratch\nCOPY . /\nENTRYPOINT [\"/app.wasm\"]\n",
    )
    .unwrap();
    b.ok(&[
        "build",
        "--platform",
        "wasi/wasm",
        "-q",
        "-t",
        "bad:1",
        dir.to_str().unwrap(),
    ]);

    let cases: &[(&[&str], &str)] = &[
        (&["--entrypoint", "/text.wasm"], "not a WebAssembly module"),
        (
            &["--entrypoint", "/broken.wasm"],
            "invalid WebAssembly module",
        ),
        (
            &["--entrypoint", "/missing.wasm"],
            "no such file or directory",
        ),
        (
            &["--entrypoint", "/app.wasm#nothere"],
            "the module exports no function \"nothere\"",
        ),
    ];
    for (args, want) in cases {
        let mut all = vec!["run", "--rm"];
        all.extend_from_slice(args);
        all.push("bad:1");
        let (code, err) = b.fails(&all);
        assert_ne!(code, 0);
        assert!(err.contains(want), "{args:?}: {err}");
    }
    // A trap is the guest's failure, not a start failure: exit 134 and the trap shown.
    let o = b.docker(&["run", "--rm", "bad:1", "trap"]);
    assert_eq!(o.status.code(), Some(134));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("wasm trap"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(b
        .ok(&["run", "--rm", "hello-wasm"])
        .contains("Hello from WebAssembly"));
}

/// `curl` against the test server's registry; returns stdout, fails on HTTP errors.
fn curl(args: &[&str]) -> String {
    berth_tests::require("curl", "apt-get install curl");
    let o = std::process::Command::new("curl")
        .arg("-sSf")
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn sha256(path: &std::path::Path) -> String {
    let o = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .unwrap();
    format!(
        "sha256:{}",
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .next()
            .unwrap()
    )
}

#[test]
fn pull_accepts_wasm_artifacts_and_the_compat_annotation() {
    let b = Berth::start();
    let reg = format!("http://{}/v2", b.registry_addr());
    let host = b.registry_addr();
    // A CNCF wasm artifact: a wasm config and the module itself as the layer.
    let module = test_guest();
    let dir = b.root.with_file_name("artifact");
    fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("config.json");
    fs::write(&cfg, r#"{"architecture":"wasm","os":"wasip1"}"#).unwrap();
    let (md, cd) = (sha256(&module), sha256(&cfg));
    for (path, digest) in [(&module, &md), (&cfg, &cd)] {
        curl(&[
            "-X",
            "POST",
            &format!("{reg}/art/blobs/uploads/?digest={digest}"),
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
            &format!("@{}", path.display()),
        ]);
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "artifactType": "application/wasm",
        "config": { "mediaType": "application/vnd.wasm.config.v0+json", "digest": cd, "size": fs::metadata(&cfg).unwrap().len() },
        "layers": [{ "mediaType": "application/wasm", "digest": md, "size": fs::metadata(&module).unwrap().len(),
            "annotations": { "org.opencontainers.image.title": "guest.wasm" } }],
    });
    curl(&[
        "-X",
        "PUT",
        &format!("{reg}/art/manifests/v1"),
        "-H",
        "Content-Type: application/vnd.oci.image.manifest.v1+json",
        "--data-binary",
        &manifest.to_string(),
    ]);
    let art = format!("{host}/art:v1");
    b.ok(&["pull", &art]);
    assert_eq!(
        b.ok(&[
            "image",
            "inspect",
            "-f",
            "{{.Os}}/{{.Architecture}} {{json .Config.Entrypoint}}",
            &art
        ]),
        "wasip1/wasm [\"/guest.wasm\"]"
    );
    assert_eq!(
        b.ok(&["run", "--rm", &art, "args", "artifact"]),
        "args\nartifact"
    );

    // An image that says linux but carries `module.wasm.image/variant=compat` on its
    // manifest (as runwasi and crun read it) runs under wasmtime after a pull.
    let imp = b.root.with_file_name("imp");
    fs::create_dir_all(&imp).unwrap();
    fs::copy(&module, imp.join("app.wasm")).unwrap();
    let tar = imp.with_extension("tar");
    assert!(std::process::Command::new("tar")
        .arg("-C")
        .arg(&imp)
        .arg("-cf")
        .arg(&tar)
        .arg("app.wasm")
        .status()
        .unwrap()
        .success());
    let plain = format!("{host}/plain:1");
    b.ok(&[
        "import",
        "--change",
        "ENTRYPOINT [\"/app.wasm\"]",
        tar.to_str().unwrap(),
        &plain,
    ]);
    b.ok(&["push", &plain]);
    let accept = "Accept: application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json";
    let mut m: serde_json::Value =
        serde_json::from_str(&curl(&["-H", accept, &format!("{reg}/plain/manifests/1")])).unwrap();
    let media_type = m["mediaType"].as_str().unwrap().to_string();
    m["annotations"] = serde_json::json!({ "module.wasm.image/variant": "compat" });
    curl(&[
        "-X",
        "PUT",
        &format!("{reg}/plain/manifests/compat"),
        "-H",
        &format!("Content-Type: {media_type}"),
        "--data-binary",
        &m.to_string(),
    ]);
    let compat = format!("{host}/plain:compat");
    b.ok(&["pull", &compat]);
    assert_eq!(
        b.ok(&["run", "--rm", &compat, "args", "compat"]),
        "args\ncompat"
    );
}

#[test]
fn a_host_without_namespaces_runs_wasm_images_only() {
    // As nobody, the server can make no namespaces, mounts or cgroups: it starts all
    // the same, says why Linux images cannot run, and runs wasm images beside its shims.
    let web = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let b = Berth::start_unprivileged(&["--listen", &web]);
    let warnings = b.ok(&["info", "-f", "{{json .Warnings}}"]);
    assert!(
        warnings.contains("this Berth host cannot run Linux containers"),
        "{warnings}"
    );
    assert!(
        b.server_log().contains("only WebAssembly images will run"),
        "{}",
        b.server_log()
    );
    let (code, err) = b.fails(&["run", "--rm", "busybox", "echo", "hi"]);
    assert_eq!(code, 125);
    assert!(
        err.contains("this Berth host cannot run Linux containers (Berth does not run as root)"),
        "{err}"
    );
    assert!(b
        .ok(&["run", "--rm", "hello-wasm"])
        .contains("Hello from WebAssembly on Berth!"));
    guest_image(&b, "guest:1");
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "-v",
            "data:/data",
            "guest:1",
            "write",
            "/data/f",
            "kept"
        ]),
        "wrote /data/f"
    );
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "-v",
            "data:/data",
            "guest:1",
            "read",
            "/data/f"
        ]),
        "kept"
    );
    // The root is the guest's own copy: a file written there stays with the container.
    b.ok(&[
        "run", "--name", "keeper", "guest:1", "write", "/note", "mine",
    ]);
    b.ok(&["start", "-a", "keeper"]);
    assert_eq!(b.ok(&["logs", "keeper"]), "wrote /note\nwrote /note");
    b.ok(&["run", "-d", "--name", "spin", "guest:1", "loop"]);
    b.eventually("the guest spins", || {
        b.ok(&["logs", "spin"]).contains("looping")
    });
    b.ok(&["stop", "spin"]);
    assert_eq!(b.inspect("spin", "{{.State.ExitCode}}"), "143");
    assert!(b
        .fails(&["run", "--rm", "-p", "8080:80", "guest:1", "args"])
        .1
        .contains("publishing ports"));
    // The playground is served, but a lab session (its workstation is a Linux
    // container) is refused with the reason.
    berth_tests::require("curl", "apt-get install curl");
    let o = std::process::Command::new("curl")
        .args([
            "-s",
            "-w",
            "\n%{http_code}",
            "-X",
            "POST",
            &format!("http://{web}/api/sessions"),
        ])
        .output()
        .unwrap();
    let answer = String::from_utf8_lossy(&o.stdout);
    assert!(
        answer.ends_with("\n503") && answer.contains("lab sessions need Linux containers"),
        "{answer}"
    );
    assert!(
        b.server_log().contains("lab sessions cannot start here"),
        "{}",
        b.server_log()
    );
}

#[test]
fn wasip2_components_run_as_commands() {
    // The same test program built for wasm32-wasip2 is a component: it runs through
    // wasi:cli/run with the same args, env, files, exit codes and stop.
    let b = Berth::start();
    let ctx = b.root.with_file_name("ctx-component");
    fs::create_dir_all(&ctx).unwrap();
    fs::copy(test_component(), ctx.join("app.wasm")).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY app.wasm /\nENTRYPOINT [\"/app.wasm\"]\n",
    )
    .unwrap();
    b.ok(&[
        "build",
        "--platform",
        "wasip2/wasm",
        "-q",
        "-t",
        "comp:1",
        ctx.to_str().unwrap(),
    ]);
    assert_eq!(
        b.ok(&[
            "image",
            "inspect",
            "-f",
            "{{.Os}}/{{.Architecture}}",
            "comp:1"
        ]),
        "wasip2/wasm"
    );
    assert_eq!(b.ok(&["run", "--rm", "comp:1", "args", "p2"]), "args\np2");
    // WASI 0.2's wasi:cli/exit carries success or failure, not a number.
    assert_eq!(
        b.docker(&["run", "--rm", "comp:1", "exit", "9"])
            .status
            .code(),
        Some(1)
    );
    let env = b.ok(&["run", "--rm", "-e", "WHO=component", "comp:1", "env"]);
    assert!(env.lines().any(|l| l == "WHO=component"), "{env}");
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "-v",
            "p2data:/data",
            "comp:1",
            "write",
            "/data/f",
            "from-p2"
        ]),
        "wrote /data/f"
    );
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "-v",
            "p2data:/data",
            "busybox",
            "cat",
            "/data/f"
        ]),
        "from-p2"
    );
    let o = b.docker(&["run", "--rm", "comp:1", "trap"]);
    assert_eq!(
        o.status.code(),
        Some(134),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    b.ok(&["run", "-d", "--name", "spin2", "comp:1", "loop"]);
    b.eventually("the component spins", || {
        b.ok(&["logs", "spin2"]).contains("looping")
    });
    b.ok(&["stop", "spin2"]);
    assert_eq!(b.inspect("spin2", "{{.State.ExitCode}}"), "143");
    let (_, err) = b.fails(&["run", "--rm", "--entrypoint", "/app.wasm#greet", "comp:1"]);
    assert!(
        err.contains("a component runs its wasi:cli/run export"),
        "{err}"
    );
}
