//! Docker fidelity of `docker run` flags: each one the issue names either takes
//! effect, with the same visible result inside the container as on Debian's dockerd
//! (the same commands run against both in one test), or is refused with a message
//! naming it. Nothing is silently ignored.

use std::process::{Command, Output, Stdio};

use berth_tests::dockerd::Dockerd;
use berth_tests::Berth;

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// `docker run --rm --network none FLAGS… busybox sh -c SCRIPT` on both engines.
fn both(b: &Berth, d: &Dockerd, flags: &[&str], script: &str) -> (String, String) {
    let mut args = vec!["run", "--rm", "--network", "none"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["busybox", "sh", "-c", script]);
    let ours = b.docker(&args);
    let theirs = d.docker(&args);
    assert!(
        theirs.status.success(),
        "dockerd {args:?}: {}",
        String::from_utf8_lossy(&theirs.stderr)
    );
    assert!(
        ours.status.success(),
        "berth {args:?}: {}\n{}",
        String::from_utf8_lossy(&ours.stderr),
        b.server_log()
            .lines()
            .rev()
            .take(15)
            .collect::<Vec<_>>()
            .join("\n")
    );
    (out(&ours), out(&theirs))
}

/// The same output on both engines.
fn same(b: &Berth, d: &Dockerd, flags: &[&str], script: &str) -> String {
    let (ours, theirs) = both(b, d, flags, script);
    assert_eq!(
        ours, theirs,
        "{flags:?} `{script}`: Berth's output (left) differs from dockerd's (right)"
    );
    ours
}

#[test]
fn run_flags_take_effect_as_on_dockerd() {
    let b = Berth::start();
    let d = Dockerd::start(&[]);
    d.load_from(&b, "busybox");

    // --add-host, --domainname, --dns*: the files Docker writes.
    let hosts = same(
        &b,
        &d,
        &[
            "--add-host",
            "db.example:10.1.2.3",
            "--add-host",
            "v6:fe80::1",
        ],
        "awk '$2 == \"db.example\" || $2 == \"v6\"' /etc/hosts",
    );
    assert_eq!(hosts, "10.1.2.3\tdb.example\nfe80::1\tv6\n");
    let dom = same(
        &b,
        &d,
        &["--hostname", "web", "--domainname", "example.org"],
        "cat /proc/sys/kernel/domainname; hostname",
    );
    assert_eq!(dom, "example.org\nweb\n");
    let sorted = |s: String| {
        let mut l: Vec<String> = s
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(str::to_string)
            .collect();
        l.sort();
        l
    };
    let dns = [
        "--dns",
        "9.9.9.9",
        "--dns",
        "1.1.1.1",
        "--dns-search",
        "corp.example",
        "--dns-option",
        "ndots:3",
    ];
    let (ours, theirs) = both(&b, &d, &dns, "cat /etc/resolv.conf");
    assert_eq!(sorted(ours.clone()), sorted(theirs), "resolv.conf: {ours}");
    assert!(
        ours.contains("nameserver 9.9.9.9\nnameserver 1.1.1.1\n"),
        "{ours}"
    );

    // --init: tini as PID 1, the command its child; it reaps an orphaned zombie.
    let init = same(
        &b,
        &d,
        &["--init"],
        "cat /proc/1/cmdline | tr '\\0' ' '; echo",
    );
    assert_eq!(
        init,
        "/sbin/docker-init -- sh -c cat /proc/1/cmdline | tr '\\0' ' '; echo \n"
    );
    let reaped = "sh -c 'sleep 0.2 & exec true' ; sleep 1; ps -o stat,comm | grep -c '^Z' || true";
    assert_eq!(
        same(&b, &d, &["--init"], reaped),
        "0\n",
        "a zombie left under --init"
    );

    // --tmpfs and --mount type=tmpfs: mount options, size and mode as Docker's.
    let t = same(
        &b,
        &d,
        &["--tmpfs", "/scratch:size=1m,mode=1770"],
        "grep ' /scratch ' /proc/mounts; stat -c %a /scratch",
    );
    assert!(t.contains("size=1024k") && t.ends_with("1770\n"), "{t}");
    same(
        &b,
        &d,
        &["--tmpfs", "/run/x"],
        "grep ' /run/x ' /proc/mounts; stat -c %a /run/x; touch /run/x/f && echo written",
    );
    let mt = same(
        &b,
        &d,
        &[
            "--mount",
            "type=tmpfs,destination=/t,tmpfs-size=2097152,tmpfs-mode=0700",
        ],
        "grep ' /t ' /proc/mounts; stat -c %a /t",
    );
    assert!(mt.contains("size=2048k") && mt.ends_with("700\n"), "{mt}");
    // --shm-size
    assert_eq!(
        same(
            &b,
            &d,
            &["--shm-size", "8m"],
            "df -k /dev/shm | tail -1 | awk '{print $2}'"
        ),
        "8192\n"
    );

    // --mount type=bind (read-only, a missing source refused), type=volume (+ subpath).
    let src = tempfile::tempdir().expect("temp dir");
    std::fs::write(src.path().join("f"), "from the host\n").expect("write");
    let bind = format!(
        "type=bind,source={},target=/b,readonly",
        src.path().display()
    );
    let r = same(
        &b,
        &d,
        &["--mount", &bind],
        "cat /b/f; touch /b/g 2>/dev/null || echo read-only",
    );
    assert_eq!(r, "from the host\nread-only\n");
    let missing = [
        "run",
        "--rm",
        "--mount",
        "type=bind,source=/no/such/dir,target=/b",
        "busybox",
        "true",
    ];
    let (ours, theirs) = (b.docker(&missing), d.docker(&missing));
    assert!(!ours.status.success() && !theirs.status.success());
    assert!(
        String::from_utf8_lossy(&ours.stderr)
            .contains("bind source path does not exist: /no/such/dir"),
        "{}",
        String::from_utf8_lossy(&ours.stderr)
    );
    same(
        &b,
        &d,
        &["--mount", "type=volume,source=fvol,target=/data"],
        "mkdir -p /data/sub && echo kept > /data/sub/f",
    );
    assert_eq!(
        same(
            &b,
            &d,
            &["--mount", "type=volume,source=fvol,target=/data,readonly"],
            "cat /data/sub/f; touch /data/x 2>/dev/null || echo read-only"
        ),
        "kept\nread-only\n"
    );

    // --group-add, --ulimit, --sysctl, --oom-score-adj, ping_group_range.
    assert_eq!(
        same(
            &b,
            &d,
            &[
                "-u",
                "1000:1000",
                "--group-add",
                "123",
                "--group-add",
                "456"
            ],
            "id -G"
        ),
        "1000 123 456\n"
    );
    assert_eq!(
        same(
            &b,
            &d,
            &["--ulimit", "nofile=512:1024"],
            "ulimit -n; ulimit -Hn"
        ),
        "512\n1024\n"
    );
    let sys = [
        "--sysctl",
        "net.ipv4.ip_forward=1",
        "--sysctl",
        "kernel.shmmax=123456789",
    ];
    assert_eq!(
        same(
            &b,
            &d,
            &sys,
            "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax"
        ),
        "1\n123456789\n"
    );
    assert_eq!(
        same(
            &b,
            &d,
            &["--oom-score-adj", "200"],
            "cat /proc/self/oom_score_adj"
        ),
        "200\n"
    );
    same(&b, &d, &[], "cat /proc/sys/net/ipv4/ping_group_range");
    // Any user may bind ports below 1024 in a network of its own (Docker's default).
    assert_eq!(
        same(
            &b,
            &d,
            &[],
            "cat /proc/sys/net/ipv4/ip_unprivileged_port_start"
        ),
        "0\n"
    );
    let sys = ["--sysctl", "net.ipv4.ip_unprivileged_port_start=1024"];
    assert_eq!(
        same(
            &b,
            &d,
            &sys,
            "cat /proc/sys/net/ipv4/ip_unprivileged_port_start"
        ),
        "1024\n"
    );
    // --device: the host's node opens (a container's own /dev is nodev).
    let full = same(
        &b,
        &d,
        &["--device", "/dev/full:/dev/myfull"],
        "head -c 4 /dev/myfull | od -An -tx1; echo x > /dev/myfull || echo full",
    );
    assert!(
        full.contains("00 00 00 00") && full.ends_with("full\n"),
        "{full}"
    );

    // /sys/fs/cgroup shows the container's own cgroup (its limits), read-only; with
    // --cgroupns private, /proc/self/cgroup is rooted there.
    let limits = ["-m", "64m", "--pids-limit", "50"];
    let script = if berth_tests::cgroup_v2() {
        "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max; touch /sys/fs/cgroup/x 2>/dev/null || echo read-only"
    } else {
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max; touch /sys/fs/cgroup/memory/x 2>/dev/null || echo read-only"
    };
    let seen = same(&b, &d, &limits, script);
    assert!(seen.starts_with("67108864\n50\n"), "{seen}");
    // v1: a line per hierarchy; v2: the one `0::` line.
    let own = if berth_tests::cgroup_v2() {
        "grep '^0::' /proc/self/cgroup | cut -d: -f3"
    } else {
        "grep -E ':(memory|pids):' /proc/self/cgroup | cut -d: -f3 | sort -u"
    };
    assert_eq!(same(&b, &d, &["--cgroupns", "private"], own), "/\n");
}

/// What Berth does not implement fails `create` with the flag's name, through the CLI
/// and through the API (a field the CLI would never send).
#[test]
fn unimplemented_settings_are_refused_by_name() {
    let b = Berth::start();
    for (flags, want) in [
        (
            &["--cpu-rt-runtime", "1000"][..],
            "--cpu-rt-runtime is not supported by Berth",
        ),
        (
            &["--cpu-rt-period", "1000"][..],
            "--cpu-rt-period is not supported by Berth",
        ),
        (
            &[
                "--mount",
                "type=bind,source=/tmp,target=/x,bind-propagation=rshared",
            ][..],
            "bind-propagation=rshared is not supported by Berth",
        ),
        (
            &["--add-host", "gw:host-gateway"][..],
            "host-gateway is not supported by Berth",
        ),
        (&["--ip6", "fd00::5"][..], "--ip6 is not supported by Berth"),
        (
            &["--link-local-ip", "169.254.1.1"][..],
            "--link-local-ip is not supported by Berth",
        ),
        (
            &["--device", "/dev/zero:/dev/z:r"][..],
            "--device /dev/zero:r (only rw and rwm) is not supported by Berth",
        ),
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["busybox", "true"]);
        let (_, err) = b.fails(&args);
        assert!(err.contains(want), "{flags:?}: {err}");
    }
    // Through the API: a set field Berth has no member for, and a bad sysctl.
    for (body, want) in [
        (
            r#"{"Image":"busybox","HostConfig":{"SomethingNew":{"On":true}}}"#,
            "SomethingNew is not supported by Berth",
        ),
        (
            r#"{"Image":"busybox","NetworkingConfig":{"EndpointsConfig":{"bridge":{"DriverOpts":{"a":"b"}}}}}"#,
            "--driver-opt is not supported by Berth",
        ),
        (
            r#"{"Image":"busybox","HostConfig":{"Sysctls":{"kernel.hostname":"x"}}}"#,
            "sysctl 'kernel.hostname=x' is not allowed",
        ),
        (
            r#"{"Image":"busybox","HostConfig":{"Ulimits":[{"Name":"bogus","Soft":1,"Hard":1}]}}"#,
            "invalid ulimit type: bogus",
        ),
    ] {
        let o = Command::new("curl")
            .args(["-s", "--unix-socket"])
            .arg(&b.sock)
            .args([
                "-H",
                "Content-Type: application/json",
                "-d",
                body,
                "http://d/v1.47/containers/create",
            ])
            .output()
            .expect("curl");
        let text = out(&o);
        assert!(text.contains(want), "{body}: {text}");
    }
    // Zero values, as the CLI sends for flags not given, pass: `docker run` works.
    assert_eq!(b.ok(&["run", "--rm", "busybox", "echo", "ok"]), "ok");
    assert_eq!(b.ok(&["ps", "-aq"]), "");
}

/// `--pid`, `--ipc`, `--network` `container:X` and `--uts host`: the namespaces are
/// really shared, with Docker's conflicts and errors.
#[test]
fn namespaces_are_shared_as_on_dockerd() {
    let b = Berth::start();
    let d = Dockerd::start(&[]);
    d.load_from(&b, "busybox");
    let donor = [
        "run",
        "-d",
        "--name",
        "donor",
        "--network",
        "none",
        "--ipc",
        "shareable",
        "--hostname",
        "giver",
        "busybox",
        "sh",
        "-c",
        "echo served > /tmp/index.html; httpd -p 127.0.0.1:8080 -h /tmp; exec sleep 300",
    ];
    b.ok(&donor);
    d.ok(&donor);
    b.ok(&[
        "run",
        "-d",
        "--name",
        "plain",
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
        "plain",
        "--network",
        "none",
        "busybox",
        "sleep",
        "300",
    ]);
    let run = |engine: &dyn Fn(&[&str]) -> Output, flags: &[&str], script: &str| -> String {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["busybox", "sh", "-c", script]);
        let o = engine(&args);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        out(&o)
    };
    let ours = |a: &[&str]| b.docker(a);
    let theirs = |a: &[&str]| d.docker(a);
    for engine in [&ours as &dyn Fn(&[&str]) -> Output, &theirs] {
        // The donor's processes, its IPC namespace and /dev/shm, its network and name.
        let ps = run(
            engine,
            &["--network", "none", "--pid", "container:donor"],
            "ps -o comm | sort | uniq | tr '\\n' ' '",
        );
        assert!(ps.contains("sleep") && ps.contains("httpd"), "{ps}");
        let ipc_donor = out(&engine(&["exec", "donor", "readlink", "/proc/self/ns/ipc"]));
        engine(&[
            "exec",
            "donor",
            "sh",
            "-c",
            "echo from-donor > /dev/shm/note",
        ]);
        let ipc = run(
            engine,
            &["--network", "none", "--ipc", "container:donor"],
            "readlink /proc/self/ns/ipc; cat /dev/shm/note",
        );
        assert_eq!(ipc, format!("{ipc_donor}from-donor\n"));
        let net = run(
            engine,
            &["--network", "container:donor"],
            "wget -qO- http://127.0.0.1:8080/index.html; hostname",
        );
        assert_eq!(net, "served\ngiver\n");
        let uts = run(engine, &["--network", "none", "--uts", "host"], "hostname");
        assert_eq!(
            uts.trim(),
            nix::unistd::gethostname().unwrap().to_string_lossy()
        );
    }
    // Docker's refusals, word for word on both.
    for (flags, want) in [
        (
            &["--network", "container:donor", "--hostname", "x"][..],
            "conflicting options: hostname and the network mode",
        ),
        (
            &["--network", "container:donor", "-p", "80:80"][..],
            "conflicting options: port publishing and the container type network mode",
        ),
        (
            &["--uts", "host", "--hostname", "x"][..],
            "conflicting options: hostname and the UTS mode",
        ),
        (&["--ipc", "container:plain"][..], "non-shareable IPC"),
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["busybox", "true"]);
        for (who, o) in [("berth", b.docker(&args)), ("dockerd", d.docker(&args))] {
            let err = String::from_utf8_lossy(&o.stderr).to_string();
            assert!(
                !o.status.success() && err.contains(want),
                "{who} {flags:?}: {err}"
            );
        }
    }
    // A donor that is not running.
    b.ok(&["stop", "-t", "0", "plain"]);
    let (_, err) = b.fails(&["run", "--rm", "--pid", "container:plain", "busybox", "true"]);
    assert!(
        err.contains("cannot join PID of a non running container"),
        "{err}"
    );
}

/// `--log-driver local`: Docker's defaults (rotated), its options, `docker logs` across
/// the rotated files; no LogPath in inspect, as in Docker.
#[test]
fn the_local_log_driver_rotates_and_reads_back() {
    let b = Berth::start();
    let id = b.ok(&[
        "run",
        "-d",
        "--log-driver",
        "local",
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=2",
        "busybox",
        "sh",
        "-c",
        "for i in $(seq 1 200); do echo line$i; done",
    ]);
    assert_eq!(b.ok(&["wait", &id]), "0");
    let logs = b.ok(&["logs", "--tail", "3", &id]);
    assert_eq!(logs, "line198\nline199\nline200");
    assert_eq!(
        b.inspect(
            &id,
            "{{.HostConfig.LogConfig.Type}} {{.HostConfig.LogConfig.Config}} [{{.LogPath}}]"
        ),
        "local map[max-file:2 max-size:1k] []"
    );
    let files = std::fs::read_dir(b.root.join("containers").join(&id))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("container.log"))
        .count();
    assert_eq!(files, 2, "max-file=2 keeps two files");
    let (_, err) = b.fails(&[
        "run",
        "--rm",
        "--log-driver",
        "local",
        "--log-opt",
        "tag=x",
        "busybox",
        "true",
    ]);
    assert!(
        err.contains("unknown log opt 'tag' for log driver local"),
        "{err}"
    );
    // Docker's defaults: 20 MiB × 5, shown as Docker shows them (no options).
    let id = b.ok(&["create", "--log-driver", "local", "busybox", "true"]);
    assert_eq!(b.inspect(&id, "{{.HostConfig.LogConfig.Config}}"), "map[]");
}

/// Dockerfile flags: `COPY --chmod` (BuildKit's, which tutorials use) and `--link`
/// work; BuildKit-only ones and unknown ones fail the build with their name.
#[test]
fn dockerfile_flags_work_or_are_refused() {
    let b = Berth::start();
    let ctx = tempfile::tempdir().expect("temp dir");
    std::fs::write(ctx.path().join("tool.sh"), "#!/bin/sh\necho tool ran\n").expect("write");
    std::fs::create_dir_all(ctx.path().join("conf/sub")).expect("mkdir");
    std::fs::write(ctx.path().join("conf/sub/a.conf"), "x\n").expect("write");
    let build = |dockerfile: &str, tag: &str| -> Output {
        std::fs::write(ctx.path().join("Dockerfile"), dockerfile).expect("write");
        b.cmd(&["build", "-t", tag, ctx.path().to_str().unwrap()])
            .env("DOCKER_BUILDKIT", "0")
            .stdin(Stdio::null())
            .output()
            .expect("docker build")
    };
    let o = build("FROM busybox\nCOPY --chmod=750 tool.sh /app/\nCOPY --link --chmod=0600 conf /etc/conf\nADD --chmod=711 tool.sh /bin/tool\n", "chmodded");
    assert!(
        o.status.success(),
        "{}{}",
        out(&o),
        String::from_utf8_lossy(&o.stderr)
    );
    let modes = b.ok(&["run", "--rm", "chmodded", "sh", "-c", "stat -c '%a %n' /app /app/tool.sh /etc/conf/sub/a.conf /etc/conf/sub /bin/tool; /app/tool.sh"]);
    assert_eq!(modes, "755 /app\n750 /app/tool.sh\n600 /etc/conf/sub/a.conf\n600 /etc/conf/sub\n711 /bin/tool\ntool ran");
    for (dockerfile, want) in [
        (
            "FROM busybox\nRUN --mount=type=cache,target=/c true\n",
            "RUN --mount is not supported by Berth's builder",
        ),
        (
            "FROM busybox\nRUN --network=none true\n",
            "RUN --network is not supported by Berth's builder",
        ),
        (
            "FROM busybox\nCOPY --bogus=1 tool.sh /\n",
            "Unknown flag: bogus",
        ),
        (
            "FROM busybox\nCOPY --chmod=u+x tool.sh /\n",
            "invalid chmod parameter",
        ),
    ] {
        let o = build(dockerfile, "refused");
        let text = out(&o) + &String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && text.contains(want),
            "{dockerfile}: {text}"
        );
    }
}
