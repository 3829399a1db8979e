//! Seccomp and capabilities, tried from inside containers: a static probe makes the
//! system calls Docker's default profile blocks, in plain containers, with
//! `--security-opt seccomp=unconfined` or a profile of the user's, in `exec`, in a build
//! step and in a lab session; `/proc/self/status` shows the capability sets.

use std::collections::BTreeMap;
use std::process::Output;

use berth_tests::lab::Lab;
use berth_tests::{static_fixture, Berth};

/// Calls the default profile must refuse, and how (clone3: ENOSYS, so libc falls back).
const BLOCKED: &[(&str, &str)] = &[
    ("unshare_user", "EPERM"),
    ("unshare_mount", "EPERM"),
    ("clone_newuser", "EPERM"),
    ("clone3", "ENOSYS"),
    ("mount", "EPERM"),
    ("keyctl", "EPERM"),
    ("add_key", "EPERM"),
    ("request_key", "EPERM"),
    ("personality", "EPERM"),
    ("open_by_handle_at", "EPERM"),
    ("socket_vsock", "EPERM"),
    ("setns", "EPERM"),
];

fn results(out: &str) -> BTreeMap<String, String> {
    let r: BTreeMap<String, String> = out
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    assert_eq!(
        r.get("done").map(String::as_str),
        Some("ok"),
        "the probe did not finish: {out}"
    );
    r
}

fn assert_blocked(r: &BTreeMap<String, String>, how: &str) {
    for (call, errno) in BLOCKED {
        assert_eq!(
            r.get(*call).map(String::as_str),
            Some(*errno),
            "{call} {how}: {r:?}"
        );
    }
    // What the profile allows still works.
    assert_eq!(r["getpid"], "ok", "{r:?}");
    assert_eq!(r["personality_linux"], "ok", "{r:?}");
}

/// Runs the probe in a new container made with `flags`, through `docker` (a server's
/// CLI or a lab session's), and returns its lines.
fn probe(
    docker: &dyn Fn(&[&str]) -> Output,
    name: &str,
    flags: &[&str],
) -> BTreeMap<String, String> {
    let probe = static_fixture("sysprobe");
    let mut create = vec!["create", "--name", name];
    create.extend_from_slice(flags);
    create.extend_from_slice(&["busybox", "/sysprobe"]);
    let ok = |args: &[&str]| {
        let o = docker(args);
        assert!(
            o.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    ok(&create);
    ok(&["cp", probe.to_str().unwrap(), &format!("{name}:/sysprobe")]);
    let out = ok(&["start", "-a", name]);
    ok(&["rm", name]);
    results(&out)
}

fn status_field(status: &str, field: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in {status}"))
        .trim()
        .to_string()
}

/// Docker's default capabilities as /proc shows them.
const DEFAULT_CAPS: &str = "00000000a80425fb";

#[test]
fn the_default_profile_blocks_what_docker_blocks_and_unconfined_lifts_it() {
    let b = Berth::start();
    let docker = |args: &[&str]| b.docker(args);
    assert_blocked(
        &probe(&docker, "confined", &[]),
        "under the default profile",
    );
    // Unconfined (outside lab sessions, as in Docker): the kernel decides alone.
    let free = probe(&docker, "free", &["--security-opt", "seccomp=unconfined"]);
    for call in ["unshare_user", "keyctl", "personality"] {
        assert_eq!(free[call], "ok", "{call} unconfined: {free:?}");
    }
    assert_ne!(free["clone3"], "ENOSYS", "{free:?}");
    // Adding CAP_SYS_ADMIN opens the calls that come with it, as in Docker's profile.
    let admin = probe(&docker, "admin", &["--cap-add", "SYS_ADMIN"]);
    assert_eq!(admin["unshare_mount"], "ok", "{admin:?}");
    assert_eq!(admin["keyctl"], "EPERM", "{admin:?}");
    // The engine says what it enforces.
    let opts = b.ok(&["info", "--format", "{{json .SecurityOptions}}"]);
    assert!(opts.contains("name=seccomp,profile=builtin"), "{opts}");
}

#[test]
fn a_profile_of_the_users_own_is_applied_and_a_bad_one_refused() {
    let b = Berth::start();
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("no-mkdir.json");
    std::fs::write(&profile, r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":13}]}"#).unwrap();
    let opt = format!("seccomp={}", profile.display());
    let (_, err) = b.fails(&[
        "run",
        "--rm",
        "--security-opt",
        &opt,
        "busybox",
        "mkdir",
        "/made",
    ]);
    assert!(err.contains("Permission denied"), "{err}");
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "--security-opt",
            &opt,
            "busybox",
            "sh",
            "-c",
            "echo fine"
        ]),
        "fine"
    );
    std::fs::write(&profile, r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_SOMETIMES"}]}"#).unwrap();
    let (code, err) = b.fails(&["run", "--rm", "--security-opt", &opt, "busybox", "true"]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("decoding seccomp profile failed"), "{err}");
    for (flags, needle) in [
        (
            vec!["--security-opt", "apparmor=docker-default"],
            "not supported by Berth",
        ),
        (
            vec!["--security-opt", "label=level:s0:c100"],
            "not supported by Berth",
        ),
        (
            vec!["--security-opt", "colour=blue"],
            "invalid --security-opt 2",
        ),
        (
            vec!["--ipc", "none"],
            "--ipc none is not supported by Berth",
        ),
        (
            vec!["--sysctl", "vm.swappiness=1"],
            "sysctl 'vm.swappiness=1' is not allowed",
        ),
        (vec!["--cap-drop", "FLY"], "unknown capability: \"CAP_FLY\""),
        (
            vec!["--privileged"],
            "--privileged is not supported by Berth",
        ),
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend(flags.iter().copied());
        args.extend(["busybox", "true"]);
        let (_, err) = b.fails(&args);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn capabilities_and_no_new_privileges_reach_every_process() {
    let b = Berth::start();
    let status = |flags: &[&str]| {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend(["busybox", "cat", "/proc/self/status"]);
        b.ok(&args)
    };
    let s = status(&[]);
    assert_eq!(
        status_field(&s, "CapInh"),
        "0000000000000000",
        "inheritable is empty (CVE-2022-24769)"
    );
    assert_eq!(status_field(&s, "CapEff"), DEFAULT_CAPS);
    assert_eq!(status_field(&s, "CapBnd"), DEFAULT_CAPS);
    assert_eq!(status_field(&s, "CapAmb"), "0000000000000000");
    assert_eq!(status_field(&s, "Seccomp"), "2", "a filter is installed");
    assert_eq!(status_field(&s, "NoNewPrivs"), "0");
    let s = status(&["--security-opt", "no-new-privileges"]);
    assert_eq!(status_field(&s, "NoNewPrivs"), "1");
    let s = status(&["--cap-drop", "ALL"]);
    assert_eq!(
        (status_field(&s, "CapEff"), status_field(&s, "CapBnd")),
        ("0000000000000000".into(), "0000000000000000".into())
    );
    let s = status(&["--cap-add", "NET_ADMIN"]);
    let eff = u64::from_str_radix(&status_field(&s, "CapEff"), 16).unwrap();
    assert_ne!(eff & (1 << 12), 0, "CAP_NET_ADMIN added: {eff:x}");
    // A dropped capability is gone for real: root cannot chown without CAP_CHOWN.
    let (_, err) = b.fails(&[
        "run",
        "--rm",
        "--cap-drop",
        "chown",
        "busybox",
        "sh",
        "-c",
        "touch /f && chown 1 /f",
    ]);
    assert!(err.contains("Operation not permitted"), "{err}");
    // A non-root user keeps nothing effective, as in Docker.
    let s = status(&["-u", "1000"]);
    assert_eq!(status_field(&s, "CapEff"), "0000000000000000");
    assert_eq!(status_field(&s, "CapBnd"), DEFAULT_CAPS);

    // `exec` gets the container's own confinement.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "held",
        "--cap-drop",
        "NET_RAW",
        "--security-opt",
        "no-new-privileges",
        "busybox",
        "sleep",
        "300",
    ]);
    let s = b.ok(&["exec", "held", "cat", "/proc/self/status"]);
    assert_eq!(status_field(&s, "Seccomp"), "2");
    assert_eq!(status_field(&s, "CapInh"), "0000000000000000");
    assert_eq!(status_field(&s, "NoNewPrivs"), "1");
    let eff = u64::from_str_radix(&status_field(&s, "CapEff"), 16).unwrap();
    assert_eq!(eff & (1 << 13), 0, "NET_RAW dropped in exec too: {eff:x}");
    b.ok(&["rm", "-f", "held"]);

    // A build's RUN step runs confined as well.
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nRUN grep -E '^(Seccomp|CapInh):' /proc/self/status > /status\n",
    )
    .unwrap();
    b.ok(&["build", "-q", "-t", "seen", ctx.path().to_str().unwrap()]);
    let s = b.ok(&["run", "--rm", "seen", "cat", "/status"]);
    assert_eq!(status_field(&s, "Seccomp"), "2", "{s}");
    assert_eq!(status_field(&s, "CapInh"), "0000000000000000", "{s}");
}

/// A shell line that makes a device node (a copy of /dev/zero, which opens for anyone)
/// in each of the container's writable places and says whether it opens.
const MKNOD_EVERYWHERE: &str = "for d in / /dev /tmp /vol; do mknod $d/z2 c 1 5 || echo $d:no-mknod; head -c 1 $d/z2 >/dev/null 2>&1 && echo $d:opened || echo $d:refused; done; head -c 3 /dev/zero | wc -c; echo x > /dev/null && echo null-works";

/// Docker's masked and read-only paths by default; `--security-opt
/// systempaths=unconfined` lifts them (the CLI sends both lists empty) and `docker
/// inspect` says which applied; the API's own lists replace the defaults; a relative
/// path is refused.
#[test]
fn systempaths_unconfined_lifts_the_masks_and_the_apis_lists_replace_them() {
    let b = Berth::start();
    // timer_list: its size (0 where masked); /proc/sys: whether it is a mount of its own
    // (the read-only bind). Only read: unconfined, root here could write the host's.
    let look = "wc -c < /proc/timer_list; grep -c ' /proc/sys ' /proc/self/mountinfo || true";
    let lines =
        |out: String| -> Vec<u64> { out.lines().map(|l| l.trim().parse().unwrap()).collect() };
    let default = lines(b.ok(&["run", "--rm", "busybox", "sh", "-c", look]));
    assert_eq!(default, [0, 1], "by default");
    let open = lines(b.ok(&[
        "run",
        "--rm",
        "--security-opt",
        "systempaths=unconfined",
        "busybox",
        "sh",
        "-c",
        look,
    ]));
    assert!(open[0] > 0 && open[1] == 0, "unconfined: {open:?}");
    b.ok(&[
        "create",
        "--name",
        "open",
        "--security-opt",
        "systempaths=unconfined",
        "busybox",
    ]);
    b.ok(&["create", "--name", "masked", "busybox"]);
    assert_eq!(
        b.inspect(
            "open",
            "{{json .HostConfig.MaskedPaths}} {{json .HostConfig.ReadonlyPaths}}"
        ),
        "[] []"
    );
    let masked = b.inspect(
        "masked",
        "{{json .HostConfig.MaskedPaths}} {{json .HostConfig.ReadonlyPaths}}",
    );
    assert!(
        masked.contains("\"/proc/kcore\"") && masked.contains("\"/proc/sysrq-trigger\""),
        "{masked}"
    );
    // Lists of the client's own, through the API.
    let (code, body) = berth_tests::api_call(
        &b.sock,
        "1.47",
        "POST",
        "/containers/create?name=own",
        Some(
            r#"{"Image":"busybox","Cmd":["sh","-c","wc -c < /etc/passwd; touch /tmp/x 2>&1; wc -c < /proc/timer_list"],"HostConfig":{"MaskedPaths":["/etc/passwd"],"ReadonlyPaths":["/tmp"]}}"#,
        ),
    );
    assert_eq!(code, 201, "{body}");
    let out = b.ok(&["start", "-a", "own"]);
    let out: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(out[0], "0", "/etc/passwd masked: {out:?}");
    assert!(
        out[1].contains("Read-only file system"),
        "/tmp read-only: {out:?}"
    );
    assert!(
        out[2].parse::<u64>().unwrap() > 0,
        "timer_list no longer masked: {out:?}"
    );
    let (code, body) = berth_tests::api_call(
        &b.sock,
        "1.47",
        "POST",
        "/containers/create",
        Some(r#"{"Image":"busybox","HostConfig":{"MaskedPaths":["proc/kcore"]}}"#),
    );
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("invalid MaskedPaths: \\\"proc/kcore\\\" is not an absolute path"),
        "{body}"
    );
    // A WebAssembly guest has no /proc or /sys to unmask: refused, whether the runtime
    // is named or follows from the platform.
    for how in [
        ["--runtime", "io.containerd.wasmtime.v1"],
        ["--platform", "wasi/wasm"],
    ] {
        let (_, err) = b.fails(&[
            "run",
            "--rm",
            how[0],
            how[1],
            "--security-opt",
            "systempaths=unconfined",
            "hello-wasm",
        ]);
        assert!(
            err.contains("MaskedPaths for a WebAssembly container (it has no /proc or /sys) is not supported by Berth"),
            "{how:?}: {err}"
        );
    }
}

fn assert_nodes_open_nothing(out: &str) {
    for d in ["/", "/dev", "/tmp", "/vol"] {
        assert!(
            out.contains(&format!("{d}:refused")),
            "a node made in {d} opened: {out}"
        );
    }
    // The standard devices still work.
    assert!(out.contains("3\n") && out.contains("null-works"), "{out}");
}

#[test]
fn device_nodes_a_container_makes_open_nothing() {
    let b = Berth::start();
    // CAP_MKNOD is a default capability (as in Docker); what it makes must not open:
    // else `mknod /disk b 8 0` reads the host's disk. A bind of the host's /dev too.
    let out = b.ok(&[
        "run",
        "--rm",
        "-v",
        "devs:/vol",
        "busybox",
        "sh",
        "-c",
        MKNOD_EVERYWHERE,
    ]);
    assert_nodes_open_nothing(&out);
    let dir = tempfile::tempdir().unwrap();
    let out = b.ok(&["run", "--rm", "-v", &format!("{}:/vol", dir.path().display()), "-v", "/dev:/hostdev", "busybox", "sh", "-c", &format!("{MKNOD_EVERYWHERE}; head -c 1 /hostdev/zero >/dev/null 2>&1 && echo hostdev:opened || echo hostdev:refused")]);
    assert_nodes_open_nothing(&out);
    assert!(out.contains("hostdev:refused"), "{out}");
}

#[test]
fn lab_sessions_run_under_the_default_profile_and_cannot_leave_it() {
    let lab = Lab::start();
    let id = lab.create_session();
    let docker = |args: &[&str]| lab.session_docker(&id, args);
    assert_blocked(&probe(&docker, "probe", &[]), "in a lab session");
    // Tightening is the student's choice; loosening is refused with the reason.
    let tight = probe(
        &docker,
        "tight",
        &["--cap-drop", "ALL", "--security-opt", "no-new-privileges"],
    );
    assert_eq!(tight["keyctl"], "EPERM");
    for (flags, needle) in [
        (
            vec!["--security-opt", "seccomp=unconfined"],
            "--security-opt seccomp=unconfined is not allowed in a lab session",
        ),
        (
            vec!["--cap-add", "SYS_ADMIN"],
            "--cap-add is not allowed in a lab session",
        ),
        (
            vec!["--userns", "host"],
            "--userns host is not allowed in a lab session",
        ),
        (
            vec!["--security-opt", "systempaths=unconfined"],
            "--security-opt systempaths=unconfined is not allowed in a lab session",
        ),
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend(flags.iter().copied());
        args.extend(["busybox", "true"]);
        let o = docker(&args);
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(
            !o.status.success() && err.contains(needle),
            "{args:?}: {err}"
        );
    }
    let o = docker(&[
        "run",
        "--rm",
        "-v",
        "/root:/vol",
        "busybox",
        "sh",
        "-c",
        MKNOD_EVERYWHERE,
    ]);
    assert_nodes_open_nothing(&String::from_utf8_lossy(&o.stdout));
    // The kernel's knobs are read-only: /proc/sys and /sys.
    let o = docker(&["run", "--rm", "busybox", "sh", "-c", "echo 1 > /proc/sys/kernel/sysrq || echo proc-sys-refused; echo 1 > /sys/kernel/profiling || echo sys-refused"]);
    let out = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(
        out.contains("proc-sys-refused")
            && out.contains("sys-refused")
            && out.contains("Read-only file system"),
        "{out}"
    );
    // Ways to another session's container (or the host) are refused by name.
    let other = lab.create_session();
    let o = lab.session_docker(
        &other,
        &["run", "-d", "--name", "theirs", "busybox", "sleep", "300"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let theirs = String::from_utf8_lossy(&o.stdout).trim().to_string();
    for (flags, needle) in [
        (
            vec!["--pid".to_string(), format!("container:{theirs}")],
            "No such container",
        ),
        (
            vec!["--network".to_string(), format!("container:{theirs}")],
            "No such container",
        ),
        (
            vec!["--ipc".to_string(), format!("container:{theirs}")],
            "No such container",
        ),
        (
            vec!["--uts".to_string(), "host".to_string()],
            "--uts host is not allowed in a lab session",
        ),
        (
            vec!["--volumes-from".to_string(), theirs.clone()],
            "No such container",
        ),
        (
            vec![
                "--mount".to_string(),
                "type=bind,src=/etc,dst=/hostetc".to_string(),
            ],
            "only paths in your home",
        ),
        (
            vec!["-v".to_string(), "/:/host".to_string()],
            "only paths in your home",
        ),
        // A volume whose options would bind the host's root, or mount over the network.
        (
            vec![
                "--mount".to_string(),
                "type=volume,src=hostroot,dst=/h,volume-opt=type=none,volume-opt=o=bind,volume-opt=device=/".to_string(),
            ],
            "only tmpfs volumes",
        ),
        (
            vec![
                "--mount".to_string(),
                "type=volume,src=nfs,dst=/n,volume-opt=type=nfs,volume-opt=o=addr=127.0.0.1,volume-opt=device=:/".to_string(),
            ],
            "only tmpfs volumes",
        ),
        (
            vec![
                "--mount".to_string(),
                "type=volume,src=tb,dst=/t,volume-opt=type=tmpfs,volume-opt=o=bind,volume-opt=device=/".to_string(),
            ],
            "volume option o=bind is not allowed in a lab session",
        ),
    ] {
        let mut args: Vec<&str> = vec!["run", "--rm"];
        args.extend(flags.iter().map(String::as_str));
        args.extend(["busybox", "true"]);
        let o = docker(&args);
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(
            !o.status.success() && err.contains(needle),
            "{args:?}: {err}"
        );
    }
    // The workstation itself: a filter, no inheritable capabilities.
    let mut t = lab.terminal(&id);
    t.expect("$ ");
    t.line("grep -E '^(Seccomp|CapInh):' /proc/self/status | tr -s '\\t ' ' ' | tr '\\n' ' '; echo end-$((6*7))");
    let shown = t.expect("end-42");
    assert!(shown.contains("Seccomp: 2"), "{shown}");
    assert!(shown.contains("CapInh: 0000000000000000"), "{shown}");
}
