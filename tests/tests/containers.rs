//! Container lifecycle through the real CLI, following seeds 000 and 001 with busybox.

use berth_tests::Berth;

#[test]
fn version_info_and_seed_images() {
    let b = Berth::start();
    let v = b.ok(&["version", "--format", "{{.Server.APIVersion}}"]);
    assert_eq!(v, "1.50");
    let info = b.ok(&["info", "--format", "{{.Images}} {{.LoggingDriver}}"]);
    assert_eq!(info, "3 json-file");
    let images = b.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    let mut names: Vec<&str> = images.lines().collect();
    names.sort();
    assert_eq!(
        names,
        ["busybox:latest", "hello-wasm:latest", "hello-world:latest"]
    );
    let hello = b.ok(&["run", "--rm", "hello-world"]);
    assert!(hello.contains("Hello from Berth!"), "{hello}");
}

#[test]
fn run_output_exit_codes_and_errors() {
    let b = Berth::start();
    assert_eq!(b.ok(&["run", "--rm", "busybox", "echo", "hi"]), "hi");
    let o = b.docker(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "err\n");
    let (code, err) = b.fails(&["run", "busybox", "no-such-command"]);
    assert_eq!(code, 127, "{err}");
    assert!(err.contains("executable file not found in $PATH"), "{err}");
    let (code, err) = b.fails(&["run", "no-such-image-here"]);
    assert_eq!(code, 125, "{err}");
    b.ok(&["create", "--name", "twice", "busybox"]);
    let (_, err) = b.fails(&["create", "--name", "twice", "busybox"]);
    assert!(
        err.contains("The container name \"/twice\" is already in use"),
        "{err}"
    );
    let (_, err) = b.fails(&["rm", "nothing-like-this"]);
    assert!(
        err.contains("No such container: nothing-like-this"),
        "{err}"
    );
    let (_, err) = b.fails(&["run", "--memory", "1k", "busybox", "true"]);
    assert!(err.contains("Minimum memory limit allowed is 6MB"), "{err}");
}

#[test]
fn environment_workdir_user_hostname_entrypoint() {
    let b = Berth::start();
    let env_file = b.root.with_file_name("env.list");
    std::fs::write(&env_file, "FROM_FILE=yes\n").unwrap();
    let out = b.ok(&[
        "run",
        "--rm",
        "-e",
        "A=1",
        "--env-file",
        env_file.to_str().unwrap(),
        "-w",
        "/made/here",
        "-u",
        "daemon",
        "--hostname",
        "box1",
        "busybox",
        "sh",
        "-c",
        "echo $A $FROM_FILE $(pwd) $(id -u) $(hostname) $(cat /etc/hostname)",
    ]);
    assert_eq!(out, "1 yes /made/here 1 box1 box1");
    // As dockerd makes it: owned by the container's root whatever the user, made
    // before a read-only root turns read-only; a file in the way is an error.
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "--read-only",
            "-u",
            "1000",
            "-w",
            "/a/b",
            "busybox",
            "stat",
            "-c",
            "%u %a",
            "/a",
            "/a/b",
        ]),
        "0 755\n0 755"
    );
    let (code, err) = b.fails(&["run", "--rm", "-w", "/etc/passwd", "busybox", "pwd"]);
    assert_eq!(code, 125, "{err}");
    assert!(
        err.contains("Cannot mkdir: /etc/passwd is not a directory"),
        "{err}"
    );
    let out = b.ok(&[
        "run",
        "--rm",
        "--entrypoint",
        "echo",
        "busybox",
        "via",
        "entrypoint",
    ]);
    assert_eq!(out, "via entrypoint");
}

#[test]
fn isolation_pid_mounts_caps_and_masked_paths() {
    let b = Berth::start();
    let out = b.ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo $$; ls /proc | grep -c '^[0-9]'",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1", "the container's process is pid 1");
    assert!(
        lines[1].parse::<u32>().unwrap() <= 3,
        "only the container's processes are visible: {out}"
    );
    for dev in ["null", "zero", "full", "random", "urandom", "tty"] {
        b.ok(&[
            "run",
            "--rm",
            "busybox",
            "test",
            "-c",
            &format!("/dev/{dev}"),
        ]);
    }
    b.ok(&["run", "--rm", "busybox", "test", "-d", "/dev/pts"]);
    b.ok(&["run", "--rm", "busybox", "test", "-d", "/dev/shm"]);
    let (_, err) = b.fails(&["run", "--rm", "busybox", "touch", "/sys/x"]);
    assert!(err.contains("Read-only file system"), "{err}");
    // Masked as in Docker: files read empty, directories are empty (where the host has them).
    let masked = b.ok(&["run", "--rm", "busybox", "sh", "-c", "for f in /proc/keys /proc/timer_list; do [ -e $f ] && wc -c < $f; done; ls -A /proc/acpi 2>/dev/null | wc -l"]);
    assert!(
        masked.lines().all(|l| l.trim() == "0"),
        "masked paths: {masked}"
    );
    let (_, err) = b.fails(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo 1 > /proc/sys/kernel/panic",
    ]);
    assert!(err.contains("Read-only file system"), "{err}");
    let caps = b.ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "grep CapBnd /proc/self/status",
    ]);
    assert_eq!(
        caps.split_whitespace().last(),
        Some("00000000a80425fb"),
        "Docker's default capability set"
    );
    let (_, err) = b.fails(&["run", "--rm", "busybox", "hostname", "other"]);
    assert!(
        !err.is_empty(),
        "setting the hostname needs CAP_SYS_ADMIN, which is dropped"
    );
    let net = b.ok(&["run", "--rm", "busybox", "sh", "-c", "ls /sys/class/net"]);
    assert_eq!(
        net, "eth0\nlo",
        "a network namespace of its own: loopback and its veth on the bridge"
    );
    // The container layer is private to the container and gone with it.
    b.ok(&[
        "run",
        "--name",
        "writer",
        "busybox",
        "sh",
        "-c",
        "echo data > /file",
    ]);
    let diff = b.ok(&["diff", "writer"]);
    assert!(diff.lines().any(|l| l == "A /file"), "{diff}");
    b.fails(&["run", "--rm", "busybox", "cat", "/file"]);
    b.ok(&["rm", "writer"]);
    let left = || -> Vec<String> {
        b.root
            .join("containers")
            .read_dir()
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert!(
        left().iter().all(|n| n.starts_with(".removed-")),
        "rm removes the container's directory: {:?}",
        left()
    );
    // An `--rm` container's files go on a background thread, once it is gone.
    b.eventually("the --rm containers' files are deleted", || {
        left().is_empty()
    });
}

#[test]
fn detached_lifecycle_ps_logs_stop_start_rm() {
    let b = Berth::start();
    let id = b.ok(&[
        "run",
        "-d",
        "--name",
        "ticker",
        "busybox",
        "sh",
        "-c",
        "i=0; while true; do echo tick $i; echo oops >&2; i=$((i+1)); sleep 0.2; done",
    ]);
    assert_eq!(id.len(), 64);
    let ps = b.ok(&["ps"]);
    let header = ps.lines().next().unwrap();
    for col in [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ] {
        assert!(header.contains(col), "{header}");
    }
    assert!(
        ps.contains(&id[..12]) && ps.contains("ticker") && ps.contains("Up "),
        "{ps}"
    );
    assert_eq!(b.ok(&["ps", "-q"]), id[..12]);
    assert_eq!(b.ok(&["ps", "-q", "--no-trunc"]), id);
    b.eventually("two log lines", || {
        b.ok(&["logs", "ticker"]).lines().count() >= 2
    });
    // Each loop writes one stdout and one stderr line: the last two entries are one each.
    let o = b.docker(&["logs", "--tail", "2", "ticker"]);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert_eq!(out.lines().count() + err.lines().count(), 2, "{out}{err}");
    assert!(
        out.lines().all(|l| l.starts_with("tick")) && err.lines().all(|l| l == "oops"),
        "stdout and stderr kept apart: {out} / {err}"
    );
    let ts = b.ok(&["logs", "-t", "--tail", "2", "ticker"]);
    assert!(ts.starts_with("20") && ts.contains("Z tick"), "{ts}");
    assert_eq!(b.inspect("ticker", "{{.State.Running}}"), "true");
    assert_eq!(
        b.ok(&["ps", "--filter", "name=tick", "--format", "{{.Names}}"]),
        "ticker"
    );
    assert_eq!(b.ok(&["ps", "--filter", "status=running", "-q"]), id[..12]);
    assert_eq!(
        b.ok(&["ps", "--filter", "ancestor=busybox", "-q"]),
        id[..12]
    );
    let (_, err) = b.fails(&["rm", "ticker"]);
    assert!(
        err.contains("container is running: stop the container before removing or force remove"),
        "{err}"
    );
    b.ok(&["stop", "-t", "1", "ticker"]);
    assert_eq!(
        b.inspect("ticker", "{{.State.Running}} {{.State.ExitCode}}"),
        "false 137"
    );
    let ps = b.ok(&["ps", "-a", "--format", "{{.Status}}"]);
    assert!(ps.starts_with("Exited (137) "), "{ps}");
    assert_eq!(b.ok(&["ps", "-q"]), "");
    b.ok(&["start", "ticker"]);
    assert_eq!(b.inspect("ticker", "{{.State.Status}}"), "running");
    b.ok(&["kill", "ticker"]);
    b.eventually("killed", || {
        b.inspect("ticker", "{{.State.Status}}") == "exited"
    });
    b.ok(&["rename", "ticker", "tocker"]);
    b.ok(&["rm", "tocker"]);
    assert_eq!(b.ok(&["ps", "-aq"]), "");
}

#[test]
fn stop_uses_sigterm_then_the_exit_code() {
    let b = Berth::start();
    // A process that handles SIGTERM exits by itself, quickly, with its own code.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "polite",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 7' TERM; while true; do sleep 0.1; done",
    ]);
    b.ok(&["stop", "polite"]);
    assert_eq!(b.inspect("polite", "{{.State.ExitCode}}"), "7");
    // The image's STOPSIGNAL replaces SIGTERM.
    let rootfs = b.root.with_file_name("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sleep")).unwrap();
    let tar = std::process::Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .args(["-cf", "-", "."])
        .output()
        .unwrap()
        .stdout;
    let mut import = b.cmd(&["import", "-c", "STOPSIGNAL SIGUSR1", "-", "usr1:latest"]);
    import
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = import.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &tar).unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    b.ok(&[
        "run",
        "-d",
        "--name",
        "usr1",
        "usr1",
        "sh",
        "-c",
        "trap 'exit 5' USR1; while true; do sleep 0.1; done",
    ]);
    b.ok(&["stop", "usr1"]);
    assert_eq!(b.inspect("usr1", "{{.State.ExitCode}}"), "5");
    // restart = stop + start: a new process, the same container.
    let pid = b.inspect("polite", "{{.State.Pid}}");
    b.ok(&["start", "polite"]);
    let first = b.inspect("polite", "{{.State.Pid}}");
    b.ok(&["restart", "-t", "1", "polite"]);
    assert_ne!(b.inspect("polite", "{{.State.Pid}}"), first);
    assert_eq!(pid, "0");
    assert_eq!(b.inspect("polite", "{{.State.Running}}"), "true");
    b.ok(&[
        "run",
        "-d",
        "--name",
        "sig",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 3' USR1; while true; do sleep 0.1; done",
    ]);
    b.ok(&["kill", "-s", "USR1", "sig"]);
    b.eventually("USR1 handled", || {
        b.inspect("sig", "{{.State.ExitCode}}") == "3"
    });
}

/// Restarts one after another: each new run is the one watched. The shim of the last
/// run still tidies up (its socket, its cgroup) after it told of the exit, and once
/// took the new run's socket with it, so the new run read as exited at once.
#[test]
fn back_to_back_restarts_each_leave_it_running() {
    let b = Berth::start();
    b.ok(&["run", "-d", "--name", "again", "busybox", "sleep", "300"]);
    for round in 0..15 {
        b.ok(&["restart", "-t", "0", "again"]);
        assert_eq!(
            b.inspect("again", "{{.State.Running}}"),
            "true",
            "round {round}"
        );
        b.ok(&["exec", "again", "true"]);
    }
    // The exit recorded is the last run's, from its shim.
    b.ok(&["kill", "again"]);
    assert_eq!(b.inspect("again", "{{.State.Status}}"), "exited");
    assert_eq!(b.inspect("again", "{{.State.ExitCode}}"), "137");
    b.ok(&["rm", "again"]);
}

#[test]
fn containers_removed_the_moment_they_end_leave_nothing() {
    // Their shim still tidies up as the removal starts: the removal waits for it
    // rather than failing on a directory that is not empty yet.
    let b = Berth::start();
    let mut ids = Vec::new();
    for round in 0..15 {
        let name = format!("brief-{round}");
        b.ok(&["run", "--name", &name, "busybox", "true"]);
        ids.push(
            b.ok(&["inspect", "-f", "{{.Id}}", &name])
                .trim()
                .to_string(),
        );
        b.ok(&["rm", &name]);
    }
    // Many at once (the CLI removes them side by side), as a lab session's end does.
    for round in 0..4 {
        let names: Vec<String> = (0..10).map(|i| format!("busy-{round}-{i}")).collect();
        for name in &names {
            ids.push(
                b.ok(&["run", "-d", "--name", name, "busybox", "sleep", "300"])
                    .trim()
                    .to_string(),
            );
        }
        let mut rm = vec!["rm", "-f"];
        rm.extend(names.iter().map(String::as_str));
        b.ok(&rm);
    }
    assert_eq!(b.ok(&["ps", "-aq"]).trim(), "");
    let left: Vec<_> = std::fs::read_dir(b.root.join("containers"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}");
    // Nor their cgroups, in any hierarchy.
    let cgroups: Vec<String> = berth_tests::CGROUP_BASES
        .iter()
        .flat_map(|base| {
            ids.iter()
                .map(move |id| std::path::Path::new(base).join("berth").join(id))
        })
        .filter(|d| d.exists())
        .map(|d| d.display().to_string())
        .collect();
    assert!(cgroups.is_empty(), "cgroups left behind: {cgroups:?}");
}

#[test]
fn published_port_answers_and_taken_port_is_refused() {
    let b = Berth::start();
    b.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        "127.0.0.1:18181:80",
        "busybox",
        "sh",
        "-c",
        "echo hello-web > /www; httpd -f -p 80 -h /",
    ]);
    b.eventually("web answers", || {
        std::process::Command::new("busybox")
            .args(["wget", "-qO-", "http://127.0.0.1:18181/www"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains("hello-web"))
            .unwrap_or(false)
    });
    assert_eq!(b.ok(&["port", "web"]), "80/tcp -> 127.0.0.1:18181");
    let ps = b.ok(&["ps", "--format", "{{.Ports}}"]);
    assert_eq!(ps, "127.0.0.1:18181->80/tcp");
    let (_, err) = b.fails(&[
        "run",
        "-d",
        "-p",
        "127.0.0.1:18181:80",
        "busybox",
        "sleep",
        "5",
    ]);
    assert!(err.contains("port is already allocated"), "{err}");
    // An address this host does not have (a tutorial's LAN address), in dockerd's words.
    let (_, err) = b.fails(&["run", "--rm", "-p", "192.0.2.7:18182:80", "busybox", "true"]);
    assert!(
        err.contains("Error starting userland proxy: listen tcp4 192.0.2.7:18182: bind: cannot assign requested address"),
        "{err}"
    );
    let (_, err) = b.fails(&["run", "-p", "abc", "busybox", "true"]);
    assert!(err.contains("invalid"), "{err}");
    // -P publishes every exposed port on a free host port.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "auto",
        "--expose",
        "81",
        "-P",
        "busybox",
        "sh",
        "-c",
        "echo auto > /www; httpd -f -p 81 -h /",
    ]);
    let mapping = b.ok(&["port", "auto", "81"]);
    let port = mapping.rsplit(':').next().unwrap().to_string();
    assert!(
        mapping.starts_with("0.0.0.0:") && port.parse::<u16>().unwrap() > 0,
        "{mapping}"
    );
    b.eventually("-P port answers", || {
        std::process::Command::new("busybox")
            .args(["wget", "-qO-", &format!("http://127.0.0.1:{port}/www")])
            .output()
            .map(|o| o.stdout == b"auto\n")
            .unwrap_or(false)
    });
    // UDP both ways, with a static echo server (busybox has no UDP server).
    let echo = berth_tests::static_fixture("udpecho");
    let mount = format!("{}:/udpecho:ro", echo.display());
    b.ok(&[
        "run",
        "-d",
        "--name",
        "udp",
        "-v",
        &mount,
        "-p",
        "127.0.0.1:18182:9000/udp",
        "busybox",
        "/udpecho",
        "9000",
    ]);
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_millis(300)))
        .unwrap();
    let mut buf = [0u8; 64];
    b.eventually("udp echo answers", || {
        sock.send_to(b"ping", "127.0.0.1:18182").unwrap();
        matches!(sock.recv(&mut buf), Ok(n) if &buf[..n] == b"echo: ping")
    });
}

#[test]
fn wait_pause_top_stats_and_prune() {
    let b = Berth::start();
    b.ok(&[
        "run",
        "-d",
        "--name",
        "w",
        "busybox",
        "sh",
        "-c",
        "sleep 0.5; exit 4",
    ]);
    assert_eq!(b.ok(&["wait", "w"]), "4");
    b.ok(&["run", "-d", "--name", "p", "busybox", "sleep", "60"]);
    b.ok(&["pause", "p"]);
    assert_eq!(b.inspect("p", "{{.State.Status}}"), "paused");
    assert!(b
        .ok(&["ps", "--format", "{{.Status}}"])
        .ends_with("(Paused)"));
    b.ok(&["unpause", "p"]);
    let top = b.ok(&["top", "p"]);
    assert!(top.contains("sleep 60"), "{top}");
    // ps' own arguments, as dockerd passes them to the host's ps.
    let pid = b.inspect("p", "{{.State.Pid}}");
    let top = b.ok(&["top", "p", "-o", "pid,comm"]);
    let lines: Vec<Vec<&str>> = top
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines,
        [vec!["PID", "COMMAND"], vec![&pid, "sleep"]],
        "{top}"
    );
    let top = b.ok(&["top", "p", "aux"]);
    assert!(
        top.starts_with("USER") && top.contains("sleep 60") && top.lines().count() == 2,
        "{top}"
    );
    let (_, err) = b.fails(&["top", "p", "-o", "ppid=PID"]);
    assert!(
        err.contains("specifying \"ppid=PID\" is not allowed"),
        "{err}"
    );
    let (_, err) = b.fails(&["top", "p", "-o", "comm"]);
    assert!(
        err.contains("Couldn't find PID field in ps output"),
        "{err}"
    );
    let stats = b.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.PIDs}}",
        "p",
    ]);
    assert_eq!(stats, "p 1");
    // What `exec -d` runs is listed; the helper that started it is not Docker's.
    b.ok(&["exec", "-d", "p", "sleep", "31"]);
    b.ok(&[
        "exec",
        "p",
        "sh",
        "-c",
        "until ps | grep -q '[s]leep 31'; do sleep 0.05; done",
    ]);
    let top = b.ok(&["top", "p", "-o", "pid,args"]);
    let args: Vec<&str> = top
        .lines()
        .skip(1)
        .map(|l| l.split_once(' ').map_or("", |(_, a)| a.trim()))
        .collect();
    assert_eq!(args, ["sleep 60", "sleep 31"], "{top}");
    let stats = b.ok(&["stats", "--no-stream", "--format", "{{.PIDs}}", "p"]);
    assert_eq!(stats, "2", "sleep 60 and sleep 31");
    let id = b.inspect("p", "{{.Id}}");
    b.ok(&["rm", "-f", "p"]);
    // Its cgroup goes with it, with the helper of the `exec` still running in it.
    let left: Vec<String> = ["/sys/fs/cgroup/pids/berth", "/sys/fs/cgroup/berth"]
        .iter()
        .map(|d| format!("{d}/{id}"))
        .filter(|p| std::path::Path::new(p).exists())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    b.ok(&["create", "--name", "c1", "busybox"]);
    let pruned = b.ok(&["container", "prune", "-f"]);
    assert!(
        pruned.contains("Deleted Containers:") && pruned.contains("Total reclaimed space"),
        "{pruned}"
    );
    assert_eq!(b.ok(&["ps", "-aq"]), "");
}

#[test]
fn restart_policy_and_rm_flag() {
    let b = Berth::start();
    b.ok(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "exit 1",
    ]);
    b.eventually("two restarts then stop", || {
        b.inspect("flaky", "{{.RestartCount}} {{.State.Status}}") == "2 exited"
    });
    b.ok(&[
        "run",
        "-d",
        "--name",
        "phoenix",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "sleep 0.2; exit 0",
    ]);
    b.eventually("always restarts even after success", || {
        b.inspect("phoenix", "{{.RestartCount}}")
            .parse::<u32>()
            .unwrap_or(0)
            >= 2
    });
    b.ok(&["stop", "-t", "1", "phoenix"]);
    std::thread::sleep(std::time::Duration::from_millis(800));
    assert_eq!(
        b.inspect("phoenix", "{{.State.Status}}"),
        "exited",
        "a user's stop is final"
    );
    b.ok(&["run", "-d", "--rm", "--name", "gone", "busybox", "true"]);
    b.eventually("--rm removes it", || {
        b.docker(&["inspect", "gone"]).status.code() == Some(1)
    });
}

#[test]
fn server_kill_9_keeps_containers_running() {
    let mut b = Berth::start();
    b.ok(&[
        "run",
        "-d",
        "--name",
        "survivor",
        "busybox",
        "sh",
        "-c",
        "while true; do echo alive; sleep 0.2; done",
    ]);
    b.ok(&[
        "run",
        "-d",
        "--name",
        "shortlived",
        "busybox",
        "sh",
        "-c",
        "sleep 1; exit 5",
    ]);
    b.ok(&["run", "-dit", "--name", "shell", "busybox", "sh"]);
    let pid = b.inspect("survivor", "{{.State.Pid}}");
    b.kill_server();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    b.start_server();
    assert_eq!(
        b.inspect("survivor", "{{.State.Status}} {{.State.Pid}}"),
        format!("running {pid}")
    );
    b.eventually("the exit that happened while the server was down", || {
        b.inspect("shortlived", "{{.State.Status}} {{.State.ExitCode}}") == "exited 5"
    });
    assert!(b.ok(&["logs", "survivor"]).contains("alive"));
    assert_eq!(b.ok(&["exec", "survivor", "echo", "in"]), "in");
    b.ok(&["stop", "-t", "1", "survivor"]);
    assert_eq!(b.inspect("survivor", "{{.State.Status}}"), "exited");
    // attach still reaches the shell that ran through the restart.
    let mut t = berth_tests::Pty::spawn(b.cmd(&["attach", "shell"]));
    t.send(b"echo still-$((1+1))\r");
    t.expect("still-2");
    t.send(b"exit\r");
    assert_eq!(t.wait(), 0);
    // A shim killed outright takes its container with it, and the exit is recorded.
    b.ok(&["run", "-d", "--name", "orphan", "busybox", "sleep", "60"]);
    let orphan_pid: i32 = b.inspect("orphan", "{{.State.Pid}}").parse().unwrap();
    let shim_pid = std::fs::read_to_string(format!("/proc/{orphan_pid}/stat"))
        .unwrap()
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<i32>()
        .unwrap();
    // SAFETY: kill(2) of the shim we just found as the container's parent.
    unsafe { libc::kill(shim_pid, libc::SIGKILL) };
    b.eventually("the container died with its shim", || {
        b.inspect("orphan", "{{.State.Status}}") == "exited"
    });
    b.eventually(
        "no unsupervised container left (gone, or a zombie awaiting init)",
        || {
            std::fs::read_to_string(format!("/proc/{orphan_pid}/stat")).map_or(true, |st| {
                st.rsplit(')').next().unwrap().trim_start().starts_with('Z')
            })
        },
    );
}

#[test]
fn exec_runs_in_the_container() {
    let b = Berth::start();
    b.ok(&[
        "run",
        "-d",
        "--name",
        "box",
        "--hostname",
        "inside",
        "busybox",
        "sleep",
        "60",
    ]);
    assert_eq!(b.ok(&["exec", "box", "hostname"]), "inside");
    assert_eq!(
        b.ok(&[
            "exec",
            "-e",
            "X=2",
            "-w",
            "/tmp",
            "box",
            "sh",
            "-c",
            "echo $X $(pwd) $(id -u)"
        ]),
        "2 /tmp 0"
    );
    assert_eq!(b.ok(&["exec", "-u", "nobody", "box", "id", "-u"]), "65534");
    let o = b.docker(&["exec", "box", "sh", "-c", "exit 9"]);
    assert_eq!(o.status.code(), Some(9));
    b.ok(&["exec", "-d", "box", "sh", "-c", "echo later > /tmp/x"]);
    b.eventually("detached exec ran", || {
        b.docker(&["exec", "box", "cat", "/tmp/x"]).stdout == b"later\n"
    });
    let (code, err) = b.fails(&["exec", "box", "nope"]);
    assert_eq!(code, 127, "{err}");
    // `exec -w` makes no directory (runc only changes into it), and a missing one is
    // not a missing program: 126, as from dockerd.
    let (code, err) = b.fails(&["exec", "-w", "/not/here", "box", "pwd"]);
    assert_eq!(code, 126, "{err}");
    assert!(
        err.contains(
            "chdir to cwd (\"/not/here\") set in config.json failed: no such file or directory"
        ),
        "{err}"
    );
    let ps = b.ok(&["exec", "box", "ps"]);
    assert!(
        ps.contains("sleep 60"),
        "exec shares the pid namespace: {ps}"
    );
}

#[test]
fn logs_follow_and_start_attach() {
    let b = Berth::start();
    b.ok(&[
        "run",
        "-d",
        "--name",
        "count",
        "busybox",
        "sh",
        "-c",
        "for i in 1 2 3; do echo n$i; sleep 0.3; done",
    ]);
    // -f streams until the container exits, then returns.
    let out = b.ok(&["logs", "-f", "count"]);
    assert_eq!(out, "n1\nn2\nn3");
    // start -a streams the output of the new run and returns its exit code.
    b.ok(&[
        "create",
        "--name",
        "once",
        "busybox",
        "sh",
        "-c",
        "echo again; exit 6",
    ]);
    let o = b.docker(&["start", "-a", "once"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "again\n");
    assert_eq!(o.status.code(), Some(6));
    let o = b.docker(&["start", "-a", "once"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "again\n");
    assert_eq!(
        b.ok(&["logs", "once"]),
        "again\nagain",
        "logs keep every run"
    );
    let since = b.ok(&["logs", "--since", "2000-01-01T00:00:00Z", "once"]);
    assert_eq!(since.lines().count(), 2);
    let future = b.ok(&["logs", "--since", "2999-01-01T00:00:00Z", "once"]);
    assert_eq!(future, "");
}

/// The json-file log files of a container: (name, size), sorted by name.
fn log_files(b: &Berth, id: &str) -> Vec<(String, u64)> {
    let dir = b.root.join("containers").join(id);
    let mut v: Vec<(String, u64)> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("container.log"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn logs_rotate_with_max_size_and_max_file() {
    let b = Berth::start();
    let id = b.ok(&[
        "run",
        "-d",
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=2",
        "busybox",
        "sh",
        "-c",
        "seq 1 100000",
    ]);
    assert_eq!(b.ok(&["wait", &id]), "0");
    // At most two files, each about 1k (Docker rotates before the entry that would
    // go past max-size: one entry over at most).
    let files = log_files(&b, &id);
    assert!((1..=2).contains(&files.len()), "{files:?}");
    assert!(
        files.iter().all(|(_, size)| *size <= 1000 + 100),
        "{files:?}"
    );
    // The newest lines are there, in order, across both files; the early ones gone.
    let all = b.ok(&["logs", &id]);
    let nums: Vec<u32> = all.lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(nums.last(), Some(&100000));
    assert!(
        nums.len() > 10 && nums.len() < 100,
        "{} lines kept",
        nums.len()
    );
    assert!(nums.windows(2).all(|w| w[1] == w[0] + 1), "{nums:?}");
    assert_eq!(
        b.ok(&["logs", "--tail", "5", &id]),
        "99996\n99997\n99998\n99999\n100000"
    );
    // --since: all of it is from the last minute, none of it from the future.
    assert_eq!(b.ok(&["logs", "--since", "1m", &id]), all);
    assert_eq!(b.ok(&["logs", "--since", "2100-01-01T00:00:00Z", &id]), "");
    assert_eq!(
        b.inspect(
            &id,
            "{{.HostConfig.LogConfig.Type}} {{json .HostConfig.LogConfig.Config}}"
        ),
        r#"json-file {"max-file":"2","max-size":"1k"}"#
    );
    assert!(b
        .inspect(&id, "{{.LogPath}}")
        .ends_with(&format!("{id}/container.log")));
    // Without options: Docker's default, one file that grows.
    let plain = b.ok(&["create", "busybox"]);
    assert_eq!(
        b.inspect(
            &plain,
            "{{.HostConfig.LogConfig.Type}} {{json .HostConfig.LogConfig.Config}}"
        ),
        "json-file {}"
    );
}

#[test]
fn logs_follow_across_rotations() {
    let b = Berth::start();
    // ~20 lines a file, one line each 20 ms: files turn over slower than -f polls.
    let id = b.ok(&[
        "run",
        "-d",
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=3",
        "busybox",
        "sh",
        "-c",
        "sleep 1; for i in $(seq 1 150); do echo n$i; usleep 20000; done",
    ]);
    let out = b.ok(&["logs", "-f", &id]);
    let want: Vec<String> = (1..=150).map(|i| format!("n{i}")).collect();
    assert_eq!(out.lines().collect::<Vec<_>>(), want);
    assert!(log_files(&b, &id).len() <= 3);
}

#[test]
fn log_drivers_other_than_json_file_local_and_none_are_refused() {
    let b = Berth::start();
    for (args, needle) in [
        (
            vec!["--log-driver", "syslog"],
            "log driver syslog is not supported by Berth",
        ),
        (
            vec!["--log-driver", "journald"],
            "log driver journald is not supported by Berth",
        ),
        (
            vec!["--log-driver", "nosuch"],
            "logger: no log driver named 'nosuch' is registered",
        ),
        (vec!["--log-opt", "max-size=lots"], "invalid size: 'lots'"),
        (
            vec!["--log-opt", "max-file=0"],
            "max-file cannot be less than 1",
        ),
        (
            vec!["--log-opt", "colour=red"],
            "unknown log opt 'colour' for json-file log driver",
        ),
        (
            vec![
                "--log-opt",
                "max-size=1m",
                "--log-opt",
                "max-file=2",
                "--log-opt",
                "compress=true",
            ],
            "compress=true is not supported by Berth",
        ),
    ] {
        let mut all = vec!["run", "--rm"];
        all.extend(args.iter().copied());
        all.extend(["busybox", "true"]);
        let (code, err) = b.fails(&all);
        assert_eq!(code, 125, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    // `none` keeps nothing, and says so on `docker logs`, as Docker does.
    let id = b.ok(&[
        "run",
        "-d",
        "--log-driver",
        "none",
        "busybox",
        "echo",
        "unseen",
    ]);
    b.ok(&["wait", &id]);
    assert!(log_files(&b, &id).is_empty());
    let (_, err) = b.fails(&["logs", &id]);
    assert!(
        err.contains("configured logging driver does not support reading"),
        "{err}"
    );
    assert_eq!(
        b.inspect(&id, "{{.HostConfig.LogConfig.Type}} [{{.LogPath}}]"),
        "none []"
    );
}

/// `docker ps --filter` with the keys dockerd has beyond name/status/label: network,
/// publish, expose, volume, before, since, isolation, is-task; a bad value is refused.
#[test]
fn ps_filters_by_network_ports_volumes_and_order() {
    let b = Berth::start();
    b.ok(&["network", "create", "filternet"]);
    b.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        "80",
        "--expose",
        "9000",
        "-v",
        "filtervol:/data",
        "--network",
        "filternet",
        "busybox",
        "sleep",
        "300",
    ]);
    b.ok(&[
        "run",
        "-d",
        "--name",
        "plain",
        "-v",
        "/tmp:/hosttmp",
        "busybox",
        "sleep",
        "300",
    ]);
    let names = |filter: &str| {
        let mut v: Vec<String> = b
            .ok(&["ps", "--filter", filter, "--format", "{{.Names}}"])
            .lines()
            .map(String::from)
            .collect();
        v.sort();
        v.join(" ")
    };
    for (filter, want) in [
        ("network=filternet", "web"),
        ("network=bridge", "plain"),
        ("publish=80", "web"),
        ("publish=9000", ""),
        ("expose=9000", "web"),
        ("expose=8000-9999/tcp", "web"),
        ("expose=9000/udp", ""),
        ("volume=filtervol", "web"),
        ("volume=/hosttmp", "plain"),
        ("volume=/tmp", "plain"),
        ("before=plain", "web"),
        ("since=web", "plain"),
        ("is-task=false", "plain web"),
        ("is-task=true", ""),
        ("isolation=default", "plain web"),
    ] {
        assert_eq!(names(filter), want, "{filter}");
    }
    // `inspect --size`: both sizes, as dockerd gives them when asked.
    let sizes = b.ok(&[
        "inspect",
        "--size",
        "-f",
        "{{.SizeRw}} {{.SizeRootFs}}",
        "web",
    ]);
    let sizes: Vec<u64> = sizes
        .split_whitespace()
        .map(|n| n.parse().expect("a size"))
        .collect();
    assert!(
        sizes.len() == 2 && sizes[1] >= sizes[0] && sizes[1] > 1_000_000,
        "{sizes:?}"
    );
    assert_eq!(b.inspect("web", "{{.SizeRw}}"), "<nil>", "only when asked");
    let id = b.inspect("filternet", "{{.Id}}");
    assert_eq!(names(&format!("network={id}")), "web");
    for (filter, err) in [
        ("publish=x", "invalid filter 'publish=x'"),
        ("before=nope", "No such container: nope"),
        ("isolation=hyperv", "Invalid isolation: \"hyperv\""),
        ("bogus=1", "invalid filter 'bogus'"),
    ] {
        let (_, e) = b.fails(&["ps", "--filter", filter]);
        assert!(e.contains(err), "{filter}: {e}");
    }
}
