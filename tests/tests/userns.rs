//! User namespaces of lab sessions, tried from both sides: inside, root is root over
//! the container's own files (layers, volumes, the home, copies, commits and builds
//! keep the ids the image and the student gave them); on the host, the same processes
//! are an unprivileged id range of the session's own.

use std::process::Output;

use berth_tests::lab::Lab;

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(o: Output, what: &str) -> String {
    assert!(o.status.success(), "{what}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// The `0 BASE SIZE` line of a uid map: (base, size).
fn map_of(uid_map: &str) -> (u64, u64) {
    let f: Vec<u64> = uid_map
        .split_whitespace()
        .map(|v| v.parse().expect("uid_map number"))
        .collect();
    assert_eq!(f.len(), 3, "one mapping line: {uid_map:?}");
    assert_eq!(f[0], 0, "{uid_map:?}");
    (f[1], f[2])
}

/// The Uid line of a host process: real, effective, saved, fs.
fn host_uids(pid: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("the container's process on the host");
    status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn root_in_a_lab_container_is_an_unprivileged_range_of_its_session_on_the_host() {
    let lab = Lab::start();
    let a = lab.create_session();
    let b = lab.create_session();
    let docker = |id: &str, args: &[&str]| lab.session_docker(id, args);

    let map_a = map_of(&ok(
        docker(&a, &["run", "--rm", "busybox", "cat", "/proc/self/uid_map"]),
        "uid_map in session a",
    ));
    let map_b = map_of(&ok(
        docker(&b, &["run", "--rm", "busybox", "cat", "/proc/self/gid_map"]),
        "gid_map in session b",
    ));
    assert_ne!(
        map_a.0, 0,
        "root inside must not be the host's root: {map_a:?}"
    );
    assert_eq!(map_a.1, 65536);
    assert!(
        map_a.0.abs_diff(map_b.0) >= 65536,
        "two sessions, two ranges that do not overlap: {map_a:?} {map_b:?}"
    );

    // The host sees the container's root as the first id of the range.
    ok(
        docker(
            &a,
            &["run", "-d", "--name", "sleeper", "busybox", "sleep", "300"],
        ),
        "run -d",
    );
    let pid = ok(
        docker(&a, &["inspect", "-f", "{{.State.Pid}}", "sleeper"]),
        "inspect pid",
    );
    let base = map_a.0.to_string();
    assert_eq!(host_uids(&pid), format!("{base} {base} {base} {base}"));
    // exec joins the same namespace; a user given to exec is shifted the same way.
    assert_eq!(
        map_of(&ok(
            docker(&a, &["exec", "sleeper", "cat", "/proc/self/uid_map"]),
            "exec uid_map"
        )),
        map_a
    );
    assert_eq!(
        ok(
            docker(&a, &["exec", "-u", "1000:1000", "sleeper", "id"]),
            "exec -u"
        ),
        "uid=1000 gid=1000 groups=1000"
    );

    // A container's process dies with its shim (kill -9), as outside user namespaces,
    // although its ids changed (which clears the kernel's parent-death signal).
    ok(
        docker(
            &a,
            &[
                "run",
                "-d",
                "--name",
                "as-user",
                "-u",
                "1000:1000",
                "busybox",
                "sleep",
                "300",
            ],
        ),
        "run -d -u",
    );
    for name in ["sleeper", "as-user"] {
        let pid = ok(
            docker(&a, &["inspect", "-f", "{{.State.Pid}}", name]),
            "inspect pid",
        );
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        let shim = status
            .lines()
            .find_map(|l| l.strip_prefix("PPid:"))
            .expect("PPid")
            .trim()
            .to_string();
        let alive = || {
            std::fs::read_to_string(format!("/proc/{pid}/status"))
                .is_ok_and(|s| !s.contains("State:\tZ"))
        };
        assert!(alive());
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(shim.parse().unwrap()),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill the shim");
        lab.eventually(
            &format!("{name}'s process dies with its shim"),
            std::time::Duration::from_secs(10),
            || !alive(),
        );
    }
    ok(
        docker(
            &a,
            &["run", "-d", "--name", "sleeper2", "busybox", "sleep", "300"],
        ),
        "run -d again",
    );

    // docker info says so, as dockerd does with userns-remap.
    let opts = ok(
        docker(&a, &["info", "-f", "{{json .SecurityOptions}}"]),
        "info",
    );
    assert!(
        opts.contains("name=userns") && opts.contains("name=seccomp"),
        "{opts}"
    );

    // The workstation (the terminal's shell) is in the session's range too.
    let mut t = lab.terminal(&a);
    t.expect("$ ");
    t.line("cat /proc/self/uid_map; echo end-$((6*7))");
    let shown = t.expect("end-42");
    assert!(
        shown.split_whitespace().any(|w| w == base),
        "the workstation's map starts at {base}: {shown}"
    );
}

#[test]
fn files_keep_their_owners_through_layers_volumes_copies_commits_and_builds() {
    let lab = Lab::start();
    let id = lab.create_session();
    let docker = |args: &[&str]| lab.session_docker(&id, args);

    // Image files are root's, the root directory too; root may chown what it makes.
    let owners = ok(
        docker(&["run", "--rm", "busybox", "sh", "-c", "stat -c %u:%g /bin/busybox / /etc/hosts; touch /x && chown 1000:1000 /x && stat -c %u:%g /x; id -u"]),
        "owners in a container",
    );
    assert_eq!(
        owners.split_whitespace().collect::<Vec<_>>(),
        ["0:0", "0:0", "0:0", "1000:1000", "0"],
        "{owners}"
    );

    // A volume keeps the container's ids on disk.
    let script = "mkdir -p /data/d && touch /data/d/f && chown -R 1000:1001 /data/d && stat -c %u:%g /data/d/f";
    assert_eq!(
        ok(
            docker(&[
                "run",
                "--rm",
                "-v",
                "owned:/data",
                "busybox",
                "sh",
                "-c",
                script
            ]),
            "volume"
        ),
        "1000:1001"
    );
    let mountpoint = ok(
        docker(&["volume", "inspect", "-f", "{{.Mountpoint}}", "owned"]),
        "volume inspect",
    );
    let md = std::fs::metadata(format!("{mountpoint}/d/f")).expect("the volume's file on the host");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (md.uid(), md.gid()),
        (1000, 1001),
        "stored with the container's ids"
    );

    // Ping (a raw socket) and a port below 1024 work for root inside.
    let net = ok(
        docker(&[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "ping -c 1 -W 2 127.0.0.1 >/dev/null && echo ping-ok; httpd -p 80 && echo port-80-ok",
        ]),
        "ping and port 80",
    );
    assert!(
        net.contains("ping-ok") && net.contains("port-80-ok"),
        "{net}"
    );

    // A file made by a user in a container: copied out, committed, built.
    ok(
        docker(&[
            "run",
            "--name",
            "maker",
            "busybox",
            "sh",
            "-c",
            "mkdir -p /home/bob && echo hi > /home/bob/f && chown 1000:1000 /home/bob/f",
        ]),
        "maker",
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let tarball = tmp.path().join("f.tar");
    ok(
        docker(&["cp", "maker:/home/bob/f", tarball.to_str().unwrap()]),
        "cp out (a file)",
    );
    let o = std::process::Command::new("docker")
        .args(["cp", "maker:/home/bob/f", "-"])
        .env(
            "DOCKER_HOST",
            format!("unix://{}", lab.session_socket(&id).display()),
        )
        .output()
        .expect("docker cp to stdout");
    let mut ar = tar::Archive::new(&o.stdout[..]);
    let e = ar
        .entries()
        .expect("tar")
        .next()
        .expect("one entry")
        .expect("entry");
    assert_eq!(
        (e.header().uid().unwrap(), e.header().gid().unwrap()),
        (1000, 1000),
        "cp keeps the container's ids"
    );

    ok(docker(&["commit", "maker", "made"]), "commit");
    assert_eq!(
        ok(
            docker(&["run", "--rm", "made", "stat", "-c", "%u:%g", "/home/bob/f"]),
            "committed owner"
        ),
        "1000:1000"
    );

    // Copy in: the tar's ids, shifted into the range, read back as given; `cp -a`
    // gives the container's user.
    let src = tmp.path().join("in");
    std::fs::write(&src, b"x").unwrap();
    std::os::unix::fs::chown(&src, Some(1234), Some(1235)).unwrap();
    ok(
        docker(&[
            "create",
            "--name",
            "target",
            "-v",
            "owned:/data",
            "made",
            "sleep",
            "300",
        ]),
        "create target",
    );
    ok(
        docker(&["cp", src.to_str().unwrap(), "target:/tmp/in"]),
        "cp in (stopped)",
    );
    ok(
        docker(&["cp", src.to_str().unwrap(), "target:/data/in"]),
        "cp into a volume (stopped)",
    );
    ok(docker(&["start", "target"]), "start target");
    ok(
        docker(&["cp", src.to_str().unwrap(), "target:/tmp/in2"]),
        "cp in (running)",
    );
    let got = ok(
        docker(&[
            "exec", "target", "stat", "-c", "%u:%g", "/tmp/in", "/data/in", "/tmp/in2",
        ]),
        "stat copies",
    );
    assert_eq!(
        got.split_whitespace().collect::<Vec<_>>(),
        ["1234:1235", "1234:1235", "1234:1235"],
        "{got}"
    );

    // A build step runs in the range too; its layer keeps the ids it set.
    let ctx = tmp.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nRUN mkdir -p /home/ann && touch /home/ann/g && chown 1001:1001 /home/ann/g\n").unwrap();
    ok(
        docker(&["build", "-t", "built", ctx.to_str().unwrap()]),
        "build",
    );
    assert_eq!(
        ok(
            docker(&["run", "--rm", "built", "stat", "-c", "%u:%g", "/home/ann/g"]),
            "built owner"
        ),
        "1001:1001"
    );
}

#[test]
fn without_user_namespaces_a_session_says_so() {
    let lab = Lab::start_with(&["--no-lab-userns"]);
    let id = lab.create_session();
    let map = ok(
        lab.session_docker(
            &id,
            &["run", "--rm", "busybox", "cat", "/proc/self/uid_map"],
        ),
        "uid_map",
    );
    assert_eq!(
        map.split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "4294967295"],
        "the host's own map"
    );
    let info = ok(
        lab.session_docker(
            &id,
            &["info", "-f", "{{json .SecurityOptions}} {{json .Warnings}}"],
        ),
        "info",
    );
    assert!(!info.contains("name=userns"), "{info}");
    assert!(
        info.contains("no user namespaces") && info.contains("root on the host"),
        "{info}"
    );
}

/// The sysctls Docker lets a container set work in a lab container too: the IPC
/// namespace's (made before the container joins its session's user namespace, so
/// only written then) and the network's (made inside it); the host's stay as they were.
#[test]
fn a_lab_container_sets_the_sysctls_docker_allows() {
    let lab = Lab::start();
    let id = lab.create_session();
    let host = |key: &str| std::fs::read_to_string(format!("/proc/sys/{key}")).unwrap();
    let before = (
        host("kernel/msgmax"),
        host("fs/mqueue/msg_max"),
        host("net/core/somaxconn"),
    );
    // Some kernels (Debian 12's 6.1) show no net.core.* in a network namespace owned
    // by another user namespace, as a session's is: asked for there, it is refused
    // by name.
    berth_tests::require("unshare", "apt-get install util-linux");
    let somaxconn_in_userns = std::process::Command::new("unshare")
        .args([
            "--user",
            "--map-root-user",
            "--net",
            "cat",
            "/proc/sys/net/core/somaxconn",
        ])
        .output()
        .expect("unshare")
        .status
        .success();
    let mut settings = vec![
        ("kernel.msgmax=9000", "/proc/sys/kernel/msgmax", "9000"),
        ("fs.mqueue.msg_max=20", "/proc/sys/fs/mqueue/msg_max", "20"),
        (
            "net.core.somaxconn=1000",
            "/proc/sys/net/core/somaxconn",
            "1000",
        ),
    ];
    let run = |settings: &[(&str, &str, &str)]| {
        let mut args = vec!["run", "--rm"];
        for (s, _, _) in settings {
            args.extend(["--sysctl", *s]);
        }
        args.extend(["busybox", "cat"]);
        args.extend(settings.iter().map(|(_, file, _)| *file));
        lab.session_docker(&id, &args)
    };
    if !somaxconn_in_userns {
        let o = run(&settings);
        assert!(
            !o.status.success()
                && text(&o)
                    .contains("open sysctl net.core.somaxconn: this kernel offers no such setting"),
            "{}",
            text(&o)
        );
        settings.pop();
    }
    let out = ok(run(&settings), "run --sysctl");
    let want: Vec<&str> = settings.iter().map(|(_, _, v)| *v).collect();
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), want);
    assert_eq!(
        (
            host("kernel/msgmax"),
            host("fs/mqueue/msg_max"),
            host("net/core/somaxconn")
        ),
        before,
        "the host's own"
    );
    // Once running, /proc/sys is read-only to the container, as in Docker.
    let o = lab.session_docker(
        &id,
        &[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "echo 9001 > /proc/sys/kernel/msgmax",
        ],
    );
    assert!(
        !o.status.success() && text(&o).contains("Read-only file system"),
        "{}",
        text(&o)
    );
}
