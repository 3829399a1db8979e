//! Lab sessions: the workstation's shell over the WebSocket terminal, ports published
//! inside a session and opened through the path proxy, isolation between sessions and
//! from the host, and what survives a restart of the server.

use std::path::Path;
use std::time::{Duration, Instant};

use berth_tests::cgroup_v2;
use berth_tests::lab::Lab;

/// The cgroup path of a process (the pids controller's on v1, the one on v2).
fn cgroup_of(pid: &str) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    text.lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrl, path) = (f.next()?, f.next()?, f.next()?);
            (ctrl == "pids" || (cgroup_v2() && ctrl.is_empty())).then(|| path.to_string())
        })
        .unwrap_or_default()
}

/// Processes in a cgroup and every cgroup below it.
fn procs_below(dir: &Path) -> usize {
    let mut n = std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .count();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            n += procs_below(&e.path());
        }
    }
    n
}

#[test]
fn the_terminal_runs_the_docker_cli_and_keeps_its_scrollback() {
    let lab = Lab::start();
    let id = lab.create_session();
    let mut t = lab.terminal(&id);
    t.resize(100, 30);
    t.expect("$ ");
    t.line("docker run -it --name box busybox sh");
    t.expect("/ # ");
    t.line("echo inside-$((40+2))");
    t.expect("inside-42");
    // ctrl-P ctrl-Q reach the container's attach, not the workstation's shell.
    t.send(&[0x10, 0x11]);
    t.expect("$ ");
    t.line("docker ps --format '{{.Names}} {{.Status}}'");
    t.expect("box Up");
    // The terminal has the size the page asked for.
    t.line("stty size");
    t.expect("30 100");
    drop(t);
    // A reload: the same shell, with what it showed.
    let mut again = lab.terminal(&id);
    again.expect("inside-42");
    again.line("echo still-$((1+1))");
    again.expect("still-2");
    // `exit` ends the shell: a new one starts, the session goes on.
    again.line("exit");
    again.expect("a new one");
    again.expect("$ ");
    again.line("echo new-$((2+3))");
    again.expect("new-5");
    // Typed before the new shell is up (right after the old one ended): kept for it,
    // as a terminal keeps what is typed ahead, not lost.
    again.line("exit");
    again.expect("a new one");
    again.line("echo ahead-$((3+4))");
    again.expect("ahead-7");
}

#[test]
fn ports_publish_inside_the_session_and_open_through_the_proxy() {
    let lab = Lab::start();
    let a = lab.create_session();
    let b = lab.create_session();
    // Both sessions publish port 8080: no clash, each sees its own server.
    for (id, word) in [(&a, "alpha"), (&b, "beta")] {
        let mut t = lab.terminal(id);
        t.expect("$ ");
        t.line(&format!("mkdir -p site && echo {word}-page > site/index.html && docker run -d -p 8080:80 -v /root/site:/www --name web busybox httpd -f -p 80 -h /www && echo started-$((1+1))"));
        // Output the command line itself does not contain: its echo must not match.
        t.expect("started-2");
        t.line("wget -qO- http://localhost:8080/");
        t.expect(&format!("{word}-page"));
    }
    let s = lab.status(&a);
    let url = s["containers"][0]["ports"][0]["url"]
        .as_str()
        .expect("a port link")
        .to_string();
    assert_eq!(url, format!("/lab/{a}/ports/8080/"));
    let (code, body) = lab.http("GET", &url, None);
    assert_eq!((code, body.trim()), (200, "alpha-page"));
    let (code, body) = lab.http("GET", &format!("/lab/{b}/ports/8080/index.html"), None);
    assert_eq!((code, body.trim()), (200, "beta-page"));
    // Without the trailing slash: redirected, so the page's relative links work.
    let (code, _) = lab.http("GET", &format!("/lab/{a}/ports/8080"), None);
    assert_eq!(code, 308);
    // A port nothing listens on, and a session that does not exist.
    let (code, body) = lab.http("GET", &format!("/lab/{a}/ports/9999/"), None);
    assert_eq!(code, 502, "{body}");
    assert!(body.contains("nothing answers on port 9999"), "{body}");
    let (code, _) = lab.http(
        "GET",
        "/lab/0123456789abcdef0123456789abcdef/ports/8080/",
        None,
    );
    assert_eq!(code, 404);
    // The published port is not on the host.
    let o = std::process::Command::new("ss")
        .args(["-ltnH", "sport = :8080"])
        .output()
        .expect("ss");
    assert!(
        !String::from_utf8_lossy(&o.stdout).contains("berth"),
        "port 8080 is bound on the host"
    );
}

#[test]
fn sessions_cannot_reach_each_other_or_the_host() {
    let lab = Lab::start();
    let a = lab.create_session();
    let b = lab.create_session();
    let ok = |id: &str, args: &[&str]| {
        let o = lab.session_docker(id, args);
        assert!(
            o.status.success(),
            "docker {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let fails = |id: &str, args: &[&str]| {
        let o = lab.session_docker(id, args);
        assert!(
            !o.status.success(),
            "docker {args:?} should fail: {}",
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8_lossy(&o.stderr).to_string()
    };
    ok(
        &a,
        &[
            "run",
            "-d",
            "--name",
            "secret",
            "-v",
            "stash:/stash",
            "busybox",
            "sleep",
            "300",
        ],
    );
    lab.berth
        .ok(&["run", "-d", "--name", "hostbox", "busybox", "sleep", "300"]);
    // B sees nothing of A, nor of the host's default namespace.
    assert!(!ok(&b, &["ps", "-a"]).contains("secret"));
    assert!(!ok(&b, &["ps", "-a"]).contains("hostbox"));
    assert!(!ok(&b, &["volume", "ls"]).contains("stash"));
    assert!(fails(&b, &["stop", "secret"]).contains("No such container: secret"));
    assert!(fails(&b, &["exec", "secret", "true"]).contains("No such container: secret"));
    assert!(fails(&b, &["rm", "hostbox"]).contains("No such container: hostbox"));
    assert!(fails(
        &b,
        &["run", "--rm", "--volumes-from", "secret", "busybox", "true"]
    )
    .contains("No such container: secret"));
    // The workstations are no one's to see or stop.
    assert!(!ok(&a, &["ps", "-a"]).contains("workstation"));
    assert!(fails(&a, &["stop", "workstation"]).contains("No such container"));
    // Refused flags, with a clear error.
    for (args, needle) in [
        (
            vec!["run", "--rm", "--privileged", "busybox", "true"],
            "privileged",
        ),
        (
            vec!["run", "--rm", "--cap-add", "NET_ADMIN", "busybox", "true"],
            "--cap-add is not allowed in a lab session",
        ),
        (
            vec!["run", "--rm", "--network", "host", "busybox", "true"],
            "--network host is not allowed in a lab session",
        ),
        (
            vec!["run", "--rm", "--pid", "host", "busybox", "true"],
            "--pid host is not allowed in a lab session",
        ),
        (
            vec!["run", "--rm", "--device", "/dev/sda", "busybox", "true"],
            "--device is not allowed in a lab session",
        ),
        (
            vec!["run", "--rm", "-v", "/etc:/host-etc", "busybox", "true"],
            "only paths in your home (/root)",
        ),
        (
            vec!["run", "--rm", "-v", "/root/../etc:/x", "busybox", "true"],
            "only paths in your home (/root)",
        ),
        (
            vec!["run", "--rm", "-m", "4g", "busybox", "true"],
            "above this lab session's limit",
        ),
        (
            vec![
                "run",
                "--rm",
                "--mount",
                "type=bind,source=/etc,target=/x",
                "busybox",
                "true",
            ],
            "only paths in your home (/root)",
        ),
        (
            vec!["run", "--rm", "--oom-score-adj", "-500", "busybox", "true"],
            "a negative --oom-score-adj is not allowed in a lab session",
        ),
    ] {
        let err = fails(&a, &args);
        assert!(err.contains(needle), "docker {args:?}: {err}");
    }
    // A symlink in the home that leads out of it: refused at create, and a link
    // swapped in after create finds the runtime's check (openat2 RESOLVE_BENEATH).
    ok(
        &a,
        &[
            "run",
            "--rm",
            "-v",
            "/root:/h",
            "busybox",
            "sh",
            "-c",
            "mkdir -p /h/inside && ln -s / /h/escape",
        ],
    );
    for spec in ["/root/escape:/x", "/root/escape/etc:/x"] {
        let err = fails(&a, &["run", "--rm", "-v", spec, "busybox", "ls", "/x"]);
        assert!(err.contains("leads out of your home"), "-v {spec}: {err}");
    }
    let err = fails(
        &a,
        &[
            "run",
            "--rm",
            "--mount",
            "type=bind,source=/root/escape,target=/x",
            "busybox",
            "true",
        ],
    );
    assert!(err.contains("leads out of your home"), "--mount: {err}");
    ok(
        &a,
        &[
            "create",
            "--name",
            "swapped",
            "-v",
            "/root/inside:/x",
            "busybox",
            "ls",
            "/x/etc",
        ],
    );
    ok(
        &a,
        &[
            "run",
            "--rm",
            "-v",
            "/root:/h",
            "busybox",
            "sh",
            "-c",
            "rmdir /h/inside && ln -s / /h/inside",
        ],
    );
    let err = fails(&a, &["start", "-a", "swapped"]);
    assert!(
        err.contains("leads out of the session's home"),
        "start after the swap: {err}"
    );
    ok(&a, &["rm", "swapped"]);
    // The same through a volume's subpath: a symlink the student put in the volume.
    ok(
        &a,
        &[
            "run", "--rm", "-v", "esc:/v", "busybox", "ln", "-s", "/", "/v/out",
        ],
    );
    let err = fails(
        &a,
        &[
            "run",
            "--rm",
            "--mount",
            "type=volume,source=esc,target=/x,volume-subpath=out/etc",
            "busybox",
            "true",
        ],
    );
    assert!(
        err.contains("leads out of volume esc"),
        "volume-subpath: {err}"
    );
    // --mount and --tmpfs work in a session's user namespace: root owns its tmpfs.
    let t = ok(
        &a,
        &[
            "run",
            "--rm",
            "--tmpfs",
            "/scratch",
            "--mount",
            "type=bind,source=/root,target=/h,readonly",
            "busybox",
            "sh",
            "-c",
            "touch /scratch/f && stat -c %u /scratch/f && ls /h",
        ],
    );
    assert!(t.starts_with("0\n") && t.contains("escape"), "{t}");
    // Containers get the session's limits by default.
    ok(&a, &["create", "--name", "limited", "busybox", "true"]);
    assert_eq!(
        ok(
            &a,
            &[
                "inspect",
                "-f",
                "{{.HostConfig.Memory}} {{.HostConfig.PidsLimit}}",
                "limited"
            ]
        )
        .trim(),
        format!("{} 256", 256 << 20)
    );
    // From the workstation: no way to the host's ports (the web listener) nor to B's.
    let port = lab.addr.rsplit(':').next().unwrap().to_string();
    let mut t = lab.terminal(&a);
    t.expect("$ ");
    t.line(&format!(
        "wget -T 3 -qO- http://127.0.0.1:{port}/api/lessons >/dev/null 2>&1; echo host-rc=$?"
    ));
    t.expect("host-rc=1");
    // A home bind mount is the workstation's home.
    t.line("echo home-$((6*7)) > note.txt && docker run --rm -v /root:/h busybox cat /h/note.txt");
    t.expect("home-42");
}

#[test]
fn an_idle_session_is_removed_with_all_it_made() {
    let lab = Lab::start_with(&["--lab-idle", "4s"]);
    let id = lab.create_session();
    let o = lab.session_docker(
        &id,
        &["run", "-d", "--name", "left", "busybox", "sleep", "600"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let dir = lab.berth.root.join("lab").join(&id);
    assert!(dir.exists());
    // Nobody uses it (the status API would count as use): it goes, with its container.
    lab.eventually(
        "the idle session to be removed",
        std::time::Duration::from_secs(30),
        || !dir.exists(),
    );
    assert_eq!(lab.http("GET", &format!("/api/sessions/{id}"), None).0, 404);
    let left = std::fs::read_dir(lab.berth.root.join("containers"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(
        left, 0,
        "the session's containers (and workstation) are removed"
    );
}

#[test]
fn a_session_at_its_disk_limit_cannot_add_more() {
    let lab = Lab::start_with(&["--lab-disk", "12m"]);
    let id = lab.create_session();
    let docker = |args: &[&str]| {
        let o = lab.session_docker(&id, args);
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr),
        )
    };
    // The session's disk is 12 MB: writing 12 MB into a volume runs out of space on
    // the way (its file system takes some), like a full disk.
    let (ok, out) = docker(&[
        "run",
        "--rm",
        "-v",
        "big:/data",
        "busybox",
        "dd",
        "if=/dev/zero",
        "of=/data/fill",
        "bs=1M",
        "count=12",
    ]);
    assert!(!ok && out.contains("No space left on device"), "{out}");
    // What it holds now (and busybox and hello-world, ~2 MB) is at the limit: the
    // engine refuses to add more before trying.
    for args in [
        vec!["run", "--rm", "busybox", "true"],
        vec!["volume", "create", "more"],
        vec!["pull", "busybox"],
    ] {
        let (ok, out) = docker(&args);
        assert!(
            !ok && out.contains("this lab session uses") && out.contains("its limit is 12.6MB"),
            "docker {args:?}: {out}"
        );
    }
    // Freeing space lets the student go on.
    assert!(docker(&["volume", "rm", "big"]).0);
    let (ok, out) = docker(&["run", "--rm", "busybox", "echo", "room-again"]);
    assert!(ok && out.contains("room-again"), "{out}");
}

#[test]
fn a_session_cannot_write_past_its_disk_while_running() {
    let lab = Lab::start_with(&["--lab-disk", "64m"]);
    let a = lab.create_session();
    let b = lab.create_session();
    let docker = |id: &str, args: &[&str]| {
        let o = lab.session_docker(id, args);
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr),
        )
    };
    // What the server's root takes on the host's file system, the sessions' disk images
    // and what is mounted from them aside: a write that escaped a session's disk would
    // land there. (Not the host's free space: other tests write meanwhile.)
    let root_used = || {
        use std::os::unix::fs::MetadataExt;
        let dev = std::fs::metadata(&lab.berth.root).unwrap().dev();
        let mut total = 0u64;
        let mut dirs = vec![lab.berth.root.clone()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let Ok(m) = e.path().symlink_metadata() else {
                    continue;
                };
                if m.dev() != dev || e.file_name() == "disk.img" {
                    continue;
                }
                if m.is_dir() {
                    dirs.push(e.path());
                } else {
                    total += m.blocks() * 512;
                }
            }
        }
        total
    };
    let before = root_used();
    // A container's own layer: the write fails inside it with ENOSPC; the session's
    // disk holds no more than its size.
    let (ok, out) = docker(
        &a,
        &[
            "run",
            "--name",
            "filler",
            "busybox",
            "sh",
            "-c",
            "dd if=/dev/zero of=/big bs=1M count=100; echo dd-said-$?",
        ],
    );
    assert!(
        ok && out.contains("No space left on device") && out.contains("dd-said-1"),
        "{out}"
    );
    let disk = lab.berth.root.join("lab").join(&a).join("disk.img");
    let used = std::fs::metadata(&disk)
        .map(|m| std::os::unix::fs::MetadataExt::blocks(&m) * 512)
        .unwrap();
    assert!(used <= 64 << 20, "the disk image holds {used} bytes");
    // Its loop device does direct I/O (no second copy in the host's page cache).
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mountpoint = lab
        .berth
        .root
        .join("lab")
        .join(&a)
        .join("disk")
        .canonicalize()
        .unwrap();
    let dev = mounts
        .lines()
        .filter(|l| l.split(' ').nth(4) == Some(mountpoint.to_str().unwrap()))
        .find_map(|l| {
            l.split_once(" - ")
                .and_then(|(_, r)| r.split(' ').nth(1))
                .map(str::to_string)
        })
        .expect("the session's disk is mounted");
    let dio = std::fs::read_to_string(format!(
        "/sys/block/{}/loop/dio",
        dev.trim_start_matches("/dev/")
    ))
    .unwrap_or_default();
    assert_eq!(dio.trim(), "1", "{dev} does direct I/O");
    // Nothing of the 100 MB landed on the host's file system (logs and records aside).
    assert!(
        root_used().saturating_sub(before) < 8 << 20,
        "the server's root grew from {before} to {} bytes",
        root_used()
    );
    // The home, from the workstation's shell: the same disk, the same wall.
    let mut t = lab.terminal(&a);
    t.expect("$ ");
    t.line("dd if=/dev/zero of=/root/big bs=1M count=100 2>&1 | grep -q 'No space left' && echo home-$((2+3))-full");
    t.expect("home-5-full");
    // The other session does not notice.
    let (ok, out) = docker(
        &b,
        &[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "dd if=/dev/zero of=/f bs=1M count=20 2>/dev/null && echo b-wrote",
        ],
    );
    assert!(ok && out.contains("b-wrote"), "{out}");
    // Removing what filled it gives the space back.
    t.line("rm -f /root/big; echo cleaned-$((3+4))");
    t.expect("cleaned-7");
    assert!(docker(&a, &["rm", "filler"]).0);
    let (ok, out) = docker(
        &a,
        &[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "dd if=/dev/zero of=/f bs=1M count=20 2>/dev/null && echo a-wrote",
        ],
    );
    assert!(ok && out.contains("a-wrote"), "{out}");
    // Deleting the session unmounts and removes its disk.
    let (code, _) = lab.http("DELETE", &format!("/api/sessions/{a}"), None);
    assert!(code < 300, "delete: {code}");
    assert!(!disk.exists(), "the disk image is gone");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&format!("lab/{a}/disk")), "still mounted");
    // And its loop device is free again (autoclear once the file system is gone).
    let backing = format!(
        "/sys/block/{}/loop/backing_file",
        dev.trim_start_matches("/dev/")
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&backing).is_ok_and(|f| f.contains(&a)) {
        assert!(
            std::time::Instant::now() < deadline,
            "{dev} still holds the ended session's disk"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn sessions_survive_a_server_restart() {
    let mut lab = Lab::start_with(&["--lab-session-pids", "300"]);
    let id = lab.create_session();
    lab.select(&id, "lifecycle");
    let mut t = lab.terminal(&id);
    t.expect("$ ");
    t.line("docker search busybox >/dev/null; echo kept > keep.txt; docker run -d -p 8080:80 --name web busybox sh -c 'mkdir /www; echo up > /www/index.html; httpd -f -p 80 -h /www' && echo ran-$((1+1))");
    t.expect("ran-2");
    lab.eventually("the search step", Duration::from_secs(20), || {
        lab.done(&id, "lifecycle").contains(&"search".to_string())
    });
    drop(t);
    lab.berth.kill_server();
    lab.berth.start_server();
    // The session, its progress, home, containers, ports and shell are all there.
    assert_eq!(lab.status(&id)["lesson"], "lifecycle");
    assert!(lab.done(&id, "lifecycle").contains(&"search".to_string()));
    let mut t = lab.terminal(&id);
    t.line("cat keep.txt; docker ps -a --format '{{.Names}} {{.Status}}'");
    t.expect("kept");
    t.expect("web Up");
    let (code, body) = lab.http("GET", &format!("/lab/{id}/ports/8080/"), None);
    assert_eq!((code, body.trim()), (200, "up"));
    // The envelope holds new containers as before, with the same limits.
    let o = lab.session_docker(
        &id,
        &["run", "-d", "--name", "after", "busybox", "sleep", "300"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = lab.session_docker(&id, &["inspect", "-f", "{{.State.Pid}}", "after"]);
    let pid = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(
        cgroup_of(&pid).starts_with(&format!("/berth/lab-{}/", &id[..12])),
        "{}",
        cgroup_of(&pid)
    );
    assert_eq!(lab.session_cgroup_file(&id, "pids", "pids.max"), "300");
    // Removing the session removes its containers and network.
    let (code, _) = lab.http("DELETE", &format!("/api/sessions/{id}"), None);
    assert_eq!(code, 204);
    assert_eq!(lab.http("GET", &format!("/api/sessions/{id}"), None).0, 404);
    assert!(!lab.berth.root.join("lab").join(&id).exists());
    assert!(!lab.session_cgroup(&id, "pids").exists());
}

/// What a reboot of the machine (or a lab node's pod made again) leaves: the state root
/// only, with no process, mount or cgroup of before. The engine opens before the lab
/// has made the sessions' networks and disks again; a session's containers with a
/// restart policy must start once their session is back, not fail for want of them.
#[test]
fn restart_policy_containers_of_a_session_start_again_after_a_reboot() {
    let mut lab = Lab::start();
    let id = lab.create_session();
    let o = lab.session_docker(
        &id,
        &[
            "run",
            "-d",
            "--restart",
            "always",
            "--name",
            "keeper",
            "busybox",
            "sleep",
            "600",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = lab.session_docker(
        &id,
        &["run", "-d", "--name", "plain", "busybox", "sleep", "600"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    lab.berth.kill_server();
    berth_tests::cleanup_root(&lab.berth.root);
    assert!(
        !std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .contains(&format!("lab/{id}/net")),
        "the session's network is gone, as after a reboot"
    );
    lab.berth.start_server();
    let running = |name: &str| {
        let o = lab.session_docker(
            &id,
            &[
                "inspect",
                "-f",
                "{{.State.Running}} {{.State.ExitCode}}",
                name,
            ],
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    lab.eventually(
        "the restart-policy container running again",
        Duration::from_secs(30),
        || running("keeper").starts_with("true"),
    );
    // As with Docker, one without a policy stays stopped.
    assert!(
        running("plain").starts_with("false"),
        "{}",
        running("plain")
    );
    let log = lab.berth.server_log();
    let failed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("restart policy"))
        .collect();
    assert!(failed.is_empty(), "a start failed: {failed:?}");
}

#[test]
fn the_playground_is_served() {
    let lab = Lab::start();
    let (code, page) = lab.http("GET", "/", None);
    assert_eq!(code, 200, "the playground is not embedded: run scripts/build-playground playground-web/dist before building berth (tests/run does)");
    assert!(page.contains("/assets/app.js"), "{page}");
    for f in [
        "app.js",
        "app_bg.wasm",
        "xterm.js",
        "xterm.css",
        "style.css",
        "addon-fit.js",
    ] {
        assert_eq!(lab.http("GET", &format!("/assets/{f}"), None).0, 200, "{f}");
    }
    let lessons = lab.json("GET", "/api/lessons", None);
    assert_eq!(lessons.as_array().map(Vec::len), Some(10));
    assert_eq!(lab.http("GET", "/api/sessions/nope", None).0, 404);
    let (code, body) = lab.http(
        "POST",
        &format!("/api/sessions/{}/lesson", lab.create_session()),
        Some("{\"lesson\":\"nope\"}"),
    );
    assert_eq!(code, 404, "{body}");
}

#[test]
fn a_container_killed_by_its_sessions_memory_limit_reads_as_oom_killed() {
    let lab = Lab::start_with(&["--lab-session-memory", "64m"]);
    let id = lab.create_session();
    // Under its own 256m limit, but over the session's 64m: the envelope's OOM killer
    // ends it, and Docker's OOMKilled says so.
    let o = lab.session_docker(
        &id,
        &[
            "run",
            "--name",
            "hog",
            "busybox",
            "sh",
            "-c",
            "tail /dev/zero",
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(137),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = lab.session_docker(
        &id,
        &[
            "inspect",
            "-f",
            "{{.State.OOMKilled}} {{.HostConfig.Memory}}",
            "hog",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        format!("true {}", 256 << 20)
    );
}

#[test]
fn a_session_runs_in_one_envelope_that_bounds_it() {
    let lab = Lab::start_with(&[
        "--lab-session-pids",
        "64",
        "--lab-session-cpus",
        "0.5",
        "--lab-session-memory",
        "512m",
    ]);
    let a = lab.create_session();
    let b = lab.create_session();
    let ok = |id: &str, args: &[&str]| lab.session_docker_ok(id, args);
    let envelope = format!("/berth/lab-{}", &a[..12]);
    // The envelope has the flags' limits and the kernel's default CPU weight, so
    // sessions share the CPU evenly.
    let file = |ctrl: &str, f: &str| lab.session_cgroup_file(&a, ctrl, f);
    assert_eq!(file("pids", "pids.max"), "64");
    if cgroup_v2() {
        assert_eq!(file("cpu", "cpu.max"), "50000 100000");
        assert_eq!(file("memory", "memory.max"), (512u64 << 20).to_string());
        assert_eq!(file("cpu", "cpu.weight"), "100");
    } else {
        assert_eq!(file("cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(file("cpu", "cpu.cfs_period_us"), "100000");
        assert_eq!(
            file("memory", "memory.limit_in_bytes"),
            (512u64 << 20).to_string()
        );
        assert_eq!(file("memory", "memory.use_hierarchy"), "1");
        assert_eq!(file("cpu", "cpu.shares"), "1024");
    }
    // The workstation's shell, a container, and what `docker exec` runs are all in it,
    // each in a cgroup of its own below it, with the per-container limits.
    // On v2 each container has a cgroup namespace of its own (Docker's default there):
    // inside, its own cgroup reads "/", and a process anywhere else would read a path
    // with "..". So v2 looks from the host as well.
    let envelope_dir = lab.session_cgroup(&a, "pids");
    let mut t = lab.terminal(&a);
    t.expect("$ ");
    t.line("cat /proc/self/cgroup");
    if cgroup_v2() {
        t.expect("0::/\r\n");
        assert!(
            procs_below(&envelope_dir) > 0,
            "the workstation is not in {envelope}"
        );
    } else {
        t.expect(&format!("{envelope}/"));
    }
    let idle = ok(
        &a,
        &["run", "-d", "--name", "idle", "busybox", "sleep", "600"],
    );
    let pid = ok(&a, &["inspect", "-f", "{{.State.Pid}}", "idle"]);
    assert_eq!(cgroup_of(&pid), format!("{envelope}/{idle}"));
    let exec_sees = ok(&a, &["exec", "idle", "cat", "/proc/self/cgroup"]);
    if cgroup_v2() {
        assert_eq!(exec_sees, "0::/");
    } else {
        assert!(
            exec_sees.contains(&format!("{envelope}/{idle}")),
            "{exec_sees}"
        );
    }
    assert_eq!(
        ok(
            &a,
            &[
                "inspect",
                "-f",
                "{{.HostConfig.CgroupParent}} {{.HostConfig.PidsLimit}}",
                "idle"
            ]
        ),
        format!("{} 256", &envelope[1..])
    );
    // A build step runs in the envelope too.
    let ctx = lab.berth.root.with_file_name("envelope-build");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN cat /proc/self/cgroup\n",
    )
    .unwrap();
    if cgroup_v2() {
        // Seen from the host while the step runs: a cgroup of its own in the envelope.
        std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nRUN sleep 8\n").unwrap();
        let known = |d: &Path| {
            let name = d
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            name == idle || procs_below(d) == 0
        };
        let mut step_seen = false;
        let o = std::thread::scope(|scope| {
            let build = scope
                .spawn(|| lab.session_docker(&a, &["build", "--no-cache", ctx.to_str().unwrap()]));
            while !build.is_finished() && !step_seen {
                let dirs = std::fs::read_dir(&envelope_dir)
                    .into_iter()
                    .flatten()
                    .flatten();
                // The workstation is the one cgroup with processes before the build.
                step_seen = dirs
                    .map(|e| e.path())
                    .filter(|d| d.is_dir() && !known(d))
                    .count()
                    >= 2;
                std::thread::sleep(Duration::from_millis(100));
            }
            build.join().unwrap()
        });
        let out =
            String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
        assert!(
            o.status.success() && step_seen,
            "no build step in {envelope}: {out}"
        );
        std::fs::write(
            ctx.join("Dockerfile"),
            "FROM busybox\nRUN cat /proc/self/cgroup\n",
        )
        .unwrap();
    } else {
        let o = lab.session_docker(&a, &["build", "--no-cache", ctx.to_str().unwrap()]);
        let out =
            String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
        assert!(
            o.status.success() && out.contains(&format!("{envelope}/")),
            "{out}"
        );
    }
    // Its resources are held to the session's limits, as a run's are.
    let o = lab.session_docker(
        &a,
        &[
            "build",
            "--no-cache",
            "--memory",
            "2g",
            ctx.to_str().unwrap(),
        ],
    );
    let out = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && out.contains("is above this lab session's limit"),
        "{out}"
    );
    let o = lab.session_docker(
        &a,
        &[
            "run",
            "--rm",
            "--cgroup-parent",
            "elsewhere",
            "busybox",
            "true",
        ],
    );
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("--cgroup-parent is not allowed in a lab session"));
    // Two fork bombs (processes that stay; failed forks retried at once) in two
    // containers: together they never get past the session's 64 processes, though
    // each container may have 256. (Both are in before either forks: a process moved
    // into a full cgroup is let in.)
    let bomb = berth_tests::static_fixture("forkbomb");
    for name in ["bomb1", "bomb2"] {
        ok(
            &a,
            &[
                "create",
                "--name",
                name,
                "-v",
                "bombgo:/go",
                "busybox",
                "sh",
                "-c",
                "while [ ! -e /go/now ]; do sleep 0.1; done; exec /forkbomb",
            ],
        );
        ok(
            &a,
            &["cp", bomb.to_str().unwrap(), &format!("{name}:/forkbomb")],
        );
        ok(&a, &["start", name]);
    }
    // Both go at once, however long starting them took.
    ok(
        &a,
        &[
            "run",
            "--rm",
            "-v",
            "bombgo:/go",
            "busybox",
            "touch",
            "/go/now",
        ],
    );
    let pids_dir = lab.session_cgroup(&a, "pids");
    let mut most = 0;
    let end = Instant::now() + Duration::from_secs(6);
    while Instant::now() < end {
        let current: usize = file("pids", "pids.current").parse().unwrap_or(0);
        let counted = procs_below(&pids_dir);
        assert!(
            current <= 64 && counted <= 64,
            "the session has {current} processes ({counted} counted), its limit is 64"
        );
        most = most.max(current);
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        most >= 56,
        "the fork bombs never filled the session ({most} processes at most)"
    );
    // Meanwhile another session's terminal still runs containers, and its CLI answers.
    let mut tb = lab.terminal(&b);
    tb.expect("$ ");
    let started = Instant::now();
    tb.line("docker run --rm busybox echo ok-$((40+2))");
    tb.expect("ok-42");
    let run_took = started.elapsed();
    let started = Instant::now();
    ok(&b, &["ps"]);
    eprintln!("beside a fork bomb: docker run in the other session's terminal took {run_took:?}, docker ps {:?}", started.elapsed());
    assert!(
        run_took < Duration::from_secs(20),
        "docker run took {run_took:?} beside the other session's fork bomb"
    );
    // Deleting the session removes its envelope, with everything that ran in it.
    let (code, _) = lab.http("DELETE", &format!("/api/sessions/{a}"), None);
    assert_eq!(code, 204);
    for ctrl in ["pids", "cpu", "memory"] {
        let dir = lab.session_cgroup(&a, ctrl);
        assert!(!dir.exists(), "{} is left", dir.display());
    }
    assert!(lab.session_cgroup(&b, "pids").exists());
}

#[test]
fn a_session_bounds_its_logs() {
    let lab = Lab::start_with(&["--lab-log-max-size", "20k"]);
    let id = lab.create_session();
    let docker = |args: &[&str]| {
        let o = lab.session_docker(&id, args);
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).trim().to_string()
                + &String::from_utf8_lossy(&o.stderr),
        )
    };
    // No options: the lab's default (20k here, two files), shown as Docker shows options.
    let (ok, cid) = docker(&["run", "-d", "busybox", "seq", "1", "100000"]);
    assert!(ok, "{cid}");
    assert_eq!(docker(&["wait", &cid]), (true, "0".to_string()));
    let (_, config) = docker(&["inspect", "-f", "{{json .HostConfig.LogConfig}}", &cid]);
    assert_eq!(
        config,
        r#"{"Type":"json-file","Config":{"max-file":"2","max-size":"20k"}}"#
    );
    let dir = lab.berth.root.join("containers").join(&cid);
    let files: Vec<u64> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("container.log"))
        .map(|e| e.metadata().unwrap().len())
        .collect();
    assert!(
        files.len() <= 2 && files.iter().all(|s| *s <= 20_000 + 100),
        "{files:?}"
    );
    assert_eq!(
        docker(&["logs", "--tail", "1", &cid]),
        (true, "100000".to_string())
    );
    // Less is fine; more than the lab allows is refused like the other limits.
    assert!(docker(&["run", "--rm", "--log-opt", "max-size=5k", "busybox", "true"]).0);
    let (ok, err) = docker(&["run", "--rm", "--log-opt", "max-size=1m", "busybox", "true"]);
    assert!(
        !ok && err.contains("--log-opt max-size=1m is above this lab session's limit of 20k"),
        "{err}"
    );
    // The workstation's own log (its terminal's output) is bounded too.
    let ws = std::fs::read_dir(lab.berth.root.join("containers"))
        .unwrap()
        .flatten()
        .filter_map(|e| {
            serde_json::from_slice::<serde_json::Value>(
                &std::fs::read(e.path().join("container.json")).ok()?,
            )
            .ok()
        })
        .find(|c| c["name"] == "workstation")
        .expect("the workstation's container");
    assert_eq!(
        ws["host_config"]["LogConfig"]["Config"]["max-size"], "20k",
        "{ws}"
    );
    assert_eq!(
        ws["host_config"]["CgroupParent"],
        format!("berth/lab-{}", &id[..12]),
        "{ws}"
    );
}

/// A container that prints as fast as it can (`yes`) is read at the session's output
/// rate, counted as its log is written: its log grows at that rate, not at the
/// tens of MB a second it would otherwise, and it still stops at once.
#[test]
fn a_flood_of_output_is_taken_at_the_sessions_rate() {
    let lab = Lab::start_with(&["--lab-output-rate", "100k"]);
    let id = lab.create_session();
    let docker = |args: &[&str]| lab.session_docker_ok(&id, args);
    let began = Instant::now();
    let cid = docker(&["run", "-d", "busybox", "yes"]);
    std::thread::sleep(Duration::from_secs(3));
    let dir = lab.berth.root.join("containers").join(&cid);
    let logged = || -> u64 {
        std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("container.log"))
            .map(|e| e.metadata().unwrap().len())
            .sum()
    };
    let (bytes, secs) = (logged(), began.elapsed().as_secs_f64());
    // The rate over the time, the second saved up at the start, and one read of the
    // pipe (32 KiB of "y\n": 16384 entries of about 60 bytes) charged after it went.
    let bound = 100_000.0 * (secs + 1.0) + 16_384.0 * 64.0;
    assert!(
        bytes > 0 && (bytes as f64) < bound,
        "{bytes} bytes logged in {secs:.1} s (at most {bound:.0})"
    );
    assert_eq!(docker(&["logs", "--tail", "1", &cid]), "y");
    // Held back by the budget, not by its exit: it goes as it would.
    docker(&["rm", "-f", &cid]);
    assert_eq!(docker(&["ps", "-aq"]), "");
}

/// A TCP listener on a free loopback port that counts the connections it gets: a
/// stand-in for a service on the lab server's loopback that sessions must not reach.
struct Tripwire {
    port: u16,
    hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Tripwire {
    fn new() -> Tripwire {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.set_nonblocking(true).expect("nonblocking");
        let port = l.local_addr().expect("addr").port();
        let (hits, stop) = (
            std::sync::Arc::new(AtomicUsize::new(0)),
            std::sync::Arc::new(AtomicBool::new(false)),
        );
        let (h, s) = (hits.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match l.accept() {
                    // Dropped at once: a client sees the connection close.
                    Ok(_) => {
                        h.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Tripwire { port, hits, stop }
    }

    /// Connections so far, once the accepting thread has had time to take those
    /// the kernel already queued (up to `wait` for the first one).
    fn hits(&self, wait: Duration) -> usize {
        let end = std::time::Instant::now() + wait;
        std::thread::sleep(Duration::from_millis(200));
        let n = || self.hits.load(std::sync::atomic::Ordering::SeqCst);
        while n() == 0 && std::time::Instant::now() < end {
            std::thread::sleep(Duration::from_millis(50));
        }
        n()
    }
}

impl Drop for Tripwire {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// (success, stdout + stderr) of the docker CLI in a session.
fn in_session(lab: &Lab, id: &str, args: &[&str]) -> (bool, String) {
    let o = lab.session_docker(id, args);
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr),
    )
}

/// The trimmed stdout of the docker CLI in a session, which must succeed.
fn session_ok(lab: &Lab, id: &str, args: &[&str]) -> String {
    let o = lab.session_docker(id, args);
    let out = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert!(
        o.status.success(),
        "docker {args:?} in session {id}: {out}{}\nserver log: {}",
        String::from_utf8_lossy(&o.stderr),
        lab.berth.server_log()
    );
    out
}

#[test]
fn the_class_registry_keeps_each_sessions_images_its_own() {
    let lab = Lab::start();
    let port = lab
        .berth
        .registry_addr()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let reg = format!("localhost:{port}");
    let (a, b) = (lab.create_session(), lab.create_session());
    // The instructor publishes from the host (the default namespace).
    lab.berth.ok(&[
        "run",
        "--name",
        "mk",
        "busybox",
        "sh",
        "-c",
        "echo class > /id",
    ]);
    lab.berth.ok(&["commit", "mk", &format!("{reg}/shared")]);
    lab.berth.ok(&["push", &format!("{reg}/shared")]);
    let shared = lab.berth.inspect(&format!("{reg}/shared"), "{{.Id}}");
    // Each session makes its own `app` and pushes it under the same name.
    let mut ids = Vec::new();
    for (id, word) in [(&a, "alpha"), (&b, "beta")] {
        session_ok(
            &lab,
            id,
            &[
                "run",
                "--name",
                "mk",
                "busybox",
                "sh",
                "-c",
                &format!("echo {word} > /id"),
            ],
        );
        session_ok(&lab, id, &["commit", "mk", &format!("{reg}/app")]);
        let out = session_ok(&lab, id, &["push", &format!("{reg}/app")]);
        assert!(
            out.contains(&format!("The push refers to repository [{reg}/app]"))
                && !out.contains("lab/"),
            "{out}"
        );
        ids.push(session_ok(
            &lab,
            id,
            &["inspect", "-f", "{{.Id}}", &format!("{reg}/app")],
        ));
    }
    assert_ne!(ids[0], ids[1]);
    // B's push did not overwrite A's: each pulls back its own.
    for (id, (want, word)) in [&a, &b].into_iter().zip(ids.iter().zip(["alpha", "beta"])) {
        session_ok(&lab, id, &["rmi", &format!("{reg}/app")]);
        let out = session_ok(&lab, id, &["pull", &format!("{reg}/app")]);
        assert!(
            !out.contains("lab/"),
            "the session's prefix is not shown: {out}"
        );
        assert_eq!(
            &session_ok(
                &lab,
                id,
                &["inspect", "-f", "{{.Id}}", &format!("{reg}/app")]
            ),
            want
        );
        assert_eq!(
            session_ok(
                &lab,
                id,
                &["run", "--rm", &format!("{reg}/app"), "cat", "/id"]
            ),
            word
        );
        assert!(
            session_ok(&lab, id, &["images", "--format", "{{.Repository}}"])
                .lines()
                .any(|l| l == format!("{reg}/app"))
        );
        // The instructor's image: pulled (here by `run` of a missing image) in both.
        assert_eq!(
            session_ok(
                &lab,
                id,
                &["run", "--rm", &format!("{reg}/shared"), "cat", "/id"]
            ),
            "class"
        );
        assert_eq!(
            session_ok(
                &lab,
                id,
                &["inspect", "-f", "{{.Id}}", &format!("{reg}/shared")]
            ),
            shared
        );
    }
    // On the registry, each session's image is under its own prefix; nothing reached
    // the class's `app`, and the instructor's `shared` is untouched.
    let catalog = std::process::Command::new("curl")
        .args([
            "-s",
            &format!("http://{}/v2/_catalog", lab.berth.registry_addr()),
        ])
        .output()
        .expect("curl");
    let catalog = String::from_utf8_lossy(&catalog.stdout).to_string();
    for want in [
        format!("\"lab/{}/app\"", &a[..12]),
        format!("\"lab/{}/app\"", &b[..12]),
        "\"shared\"".to_string(),
    ] {
        assert!(catalog.contains(&want), "{want} in {catalog}");
    }
    assert!(!catalog.contains("\"app\""), "{catalog}");
    // Naming another session's repository is refused, for a pull and a push.
    let theirs = format!("{reg}/lab/{}/app", &b[..12]);
    let (ok, out) = in_session(&lab, &a, &["pull", &theirs]);
    assert!(
        !ok && out.contains(&format!(
            "repository lab/{}/app belongs to another lab session",
            &b[..12]
        )),
        "{out}"
    );
    session_ok(&lab, &a, &["tag", "busybox", &theirs]);
    let (ok, out) = in_session(&lab, &a, &["push", &theirs]);
    assert!(
        !ok && out.contains("belongs to another lab session"),
        "{out}"
    );
    // Search shows the class's repositories and the session's own, by its names.
    let found = session_ok(
        &lab,
        &a,
        &["search", "--format", "{{.Name}}", &format!("{reg}/a")],
    );
    assert!(
        found.lines().any(|l| l == "app") && found.lines().any(|l| l == "shared"),
        "{found}"
    );
    assert!(!found.contains("lab/"), "{found}");
    let found = session_ok(&lab, &b, &["search", "--format", "{{.Name}}", "lab"]);
    assert!(!found.contains(&a[..12]), "{found}");
    // The registry's HTTP API (and its DELETE) is out of a workstation's reach.
    let mut t = lab.terminal(&b);
    t.expect("$ ");
    t.line(&format!(
        "wget -T 3 -qO- http://127.0.0.1:{port}/v2/ >/dev/null 2>&1; echo registry-rc=$?"
    ));
    t.expect("registry-rc=1");
    t.line(&format!(
        "wget -T 3 -qO- http://localhost:{port}/v2/_catalog >/dev/null 2>&1; echo catalog-rc=$?"
    ));
    t.expect("catalog-rc=1");
}

#[test]
fn lab_sessions_cannot_make_the_server_connect_to_local_addresses() {
    let wire = Tripwire::new();
    let lab = Lab::start();
    let id = lab.create_session();
    let target = format!("127.0.0.1:{}", wire.port);
    session_ok(&lab, &id, &["tag", "busybox", &format!("{target}/x")]);
    let ctx = tempfile::tempdir().expect("temp dir");
    std::fs::write(ctx.path().join("Dockerfile"), format!("FROM {target}/y\n"))
        .expect("Dockerfile");
    let ctx_path = ctx.path().to_str().unwrap().to_string();
    let refused = |verb: &str| {
        format!("{verb} {target} is not allowed in a lab session: it is a loopback address of the lab server")
    };
    for (args, want) in [
        (
            vec!["pull".to_string(), format!("{target}/x")],
            refused("pulling from"),
        ),
        (
            vec!["push".into(), format!("{target}/x")],
            refused("pushing to"),
        ),
        (
            vec![
                "login".into(),
                "-u".into(),
                "me".into(),
                "-p".into(),
                "pw".into(),
                target.clone(),
            ],
            refused("logging in to"),
        ),
        (
            vec!["search".into(), format!("{target}/x")],
            refused("searching"),
        ),
        (
            vec!["run".into(), "--rm".into(), format!("{target}/y")],
            refused("pulling from"),
        ),
        (
            vec!["build".into(), "-q".into(), ctx_path.clone()],
            refused("pulling from"),
        ),
        (
            vec![
                "build".into(),
                "-q".into(),
                "--pull".into(),
                ctx_path.clone(),
            ],
            refused("pulling from"),
        ),
        (
            vec!["pull".into(), format!("localhost:{}/x", wire.port)],
            format!(
                "localhost:{} is not allowed in a lab session: localhost is at",
                wire.port
            ),
        ),
        // (Image references take no IPv6 literals: v4-mapped ones are unit-tested.)
        (
            vec!["pull".into(), format!("127.1.2.3:{}/x", wire.port)],
            "it is a loopback address of the lab server".into(),
        ),
        (
            vec!["pull".into(), "169.254.169.254/latest".into()],
            "it is a link-local address".into(),
        ),
        (
            vec!["pull".into(), "10.0.0.1:5000/x".into()],
            "it is a private network address".into(),
        ),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, out) = in_session(&lab, &id, &args);
        assert!(
            !ok && out.contains(&want),
            "docker {args:?}: want {want:?}, got: {out}"
        );
        assert!(
            out.contains("Error response from daemon") || args[0] == "build",
            "Docker's shape: {out}"
        );
    }
    assert_eq!(
        wire.hits(Duration::ZERO),
        0,
        "a lab session made the server connect to 127.0.0.1:{}",
        wire.port
    );
    // The same pull from the default namespace connects (it is no registry, so fails).
    let _ = lab.berth.docker(&["pull", &format!("{target}/x")]);
    assert!(
        wire.hits(Duration::from_secs(5)) > 0,
        "a pull outside lab sessions is not guarded"
    );
}

#[test]
fn a_registry_the_instructor_allows_is_reachable_from_lab_sessions() {
    let wire = Tripwire::new();
    let target = format!("127.0.0.1:{}", wire.port);
    let lab = Lab::start_with(&["--lab-registry-allow", &target]);
    let id = lab.create_session();
    let (ok, out) = in_session(&lab, &id, &["pull", &format!("{target}/x")]);
    // It is no registry: the pull fails, but not for the guard, and it connected.
    assert!(
        !ok && !out.contains("not allowed in a lab session"),
        "{out}"
    );
    assert!(
        wire.hits(Duration::from_secs(5)) > 0,
        "the allowed registry was not reached: {out}"
    );
    // Other loopback ports stay refused.
    let other = Tripwire::new();
    let (ok, out) = in_session(&lab, &id, &["pull", &format!("127.0.0.1:{}/x", other.port)]);
    assert!(!ok && out.contains("not allowed in a lab session"), "{out}");
    assert_eq!(other.hits(Duration::ZERO), 0);
}

#[test]
fn a_sessions_shims_work_inside_its_envelope() {
    // The CPU a shim spends on its container's output (a log flood) is the session's.
    let lab = Lab::start();
    let id = lab.create_session();
    let o = lab.session_docker(&id, &["run", "-d", "busybox", "sleep", "300"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cid = String::from_utf8_lossy(&o.stdout).trim().to_string();
    let c: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            lab.berth
                .root
                .join("containers")
                .join(&cid)
                .join("container.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let shim = c["state"]["shim_pid"].as_i64().expect("a shim pid");
    let cgroups = std::fs::read_to_string(format!("/proc/{shim}/cgroup")).unwrap();
    assert!(
        cgroups.contains(&format!("berth/lab-{}/shims", &id[..12])),
        "{cgroups}"
    );
    // The container itself is in its own cgroup below the envelope, not the shims'.
    let pid = c["state"]["pid"].as_i64().expect("a pid");
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        cgroups.contains(&format!("berth/lab-{}/{cid}", &id[..12])),
        "{cgroups}"
    );
}

/// An overlay mount (what a container's root is, e.g. a lab node's in a Kubernetes
/// pod), unmounted when dropped.
struct Overlay {
    _dir: tempfile::TempDir,
    merged: std::path::PathBuf,
}

impl Overlay {
    fn with_file(name: &str, from: &Path) -> Overlay {
        let dir = tempfile::tempdir().unwrap();
        let d = |n: &str| {
            let p = dir.path().join(n);
            std::fs::create_dir_all(&p).unwrap();
            p
        };
        let (lower, upper, work, merged) = (d("lower"), d("upper"), d("work"), d("merged"));
        std::fs::copy(from, lower.join(name)).unwrap();
        let o = std::process::Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o"])
            .arg(format!(
                "lowerdir={},upperdir={},workdir={}",
                lower.display(),
                upper.display(),
                work.display()
            ))
            .arg(&merged)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "mount overlay: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        Overlay { _dir: dir, merged }
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.merged, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn workstation_tools_on_a_filesystem_that_cannot_be_idmapped_are_copied() {
    let docker = std::env::split_paths(&std::env::var_os("PATH").unwrap())
        .map(|d| d.join("docker"))
        .find(|p| p.is_file())
        .expect("the docker CLI on PATH");
    let overlay = Overlay::with_file("docker", &docker);
    let cli = overlay.merged.join("docker");
    let lab = Lab::start_with(&["--lab-docker-cli", cli.to_str().unwrap()]);
    let id = lab.create_session();
    let mut t = lab.terminal(&id);
    t.expect("$ ");
    t.line("docker version --format '{{.Server.Os}}' && echo tools-$((2+2))");
    t.expect("tools-4");
    let copy = lab.berth.root.join("lab-tools/docker");
    assert_eq!(
        std::fs::metadata(&copy).unwrap().len(),
        std::fs::metadata(&docker).unwrap().len()
    );
    assert!(
        lab.berth.server_log().contains("cannot be idmapped"),
        "{}",
        lab.berth.server_log()
    );
    drop(t);
    drop(lab);
}

#[test]
fn a_session_at_its_cpu_limit_is_kept_to_the_cpus_it_needs() {
    // On more cores than its limit needs, a session using all of its limit is kept to
    // as few cores as that takes (here one of two, for half a CPU; half, so that the
    // tests running beside this one cannot keep the hogs from reaching it), so it stops running on every core
    // at once; its containers started before and after, its shims and its workstation
    // all follow; another session keeps every core.
    needs_two_cores();
    let lab = Lab::start_with(&["--lab-session-cpus", "0.5", "--lab-cpu-calm", "3s"]);
    let a = lab.create_session();
    let b = lab.create_session();
    let all = lab.session_cgroup_file(&b, "cpuset", effective_cpus_file());
    assert!(!all.is_empty(), "no cpuset for session {b}");
    let hogs = start_hogs(&lab, &a, 3);
    let kept = wait_kept_to_one_cpu(&lab, &a, &all);
    assert!(lab
        .berth
        .server_log()
        .contains(&format!("kept to CPUs {kept}")));
    // Its scheduling stays as it was (idle only with --lab-cpu-kept-idle, below).
    assert_eq!(lab.session_cgroup_file(&a, "cpu", "cpu.idle"), "0");
    // Everything below the envelope is kept too, including a container started now.
    let late = session_ok(&lab, &a, &["run", "-d", "busybox", "sleep", "300"]);
    for c in hogs.iter().chain([&late]) {
        let pid = session_ok(&lab, &a, &["inspect", "-f", "{{.State.Pid}}", c]);
        assert_eq!(cpus_allowed(&pid), kept, "container {c}");
    }
    assert_eq!(
        lab.session_cgroup_file(&b, "cpuset", effective_cpus_file()),
        all
    );
    // Calm for --lab-cpu-calm, it has all CPUs again, and so has what runs in it.
    session_ok(&lab, &a, &["rm", "-f", &hogs[0], &hogs[1], &hogs[2]]);
    wait_freed(&lab, &a, &all);
    assert!(lab.berth.server_log().contains("calm again"));
    let pid = session_ok(&lab, &a, &["inspect", "-f", "{{.State.Pid}}", &late]);
    assert_eq!(cpus_allowed(&pid), all);
    session_ok(&lab, &a, &["rm", "-f", &late]);
}

#[test]
fn with_lab_cpu_kept_idle_a_kept_session_is_idle_scheduled_until_calm() {
    needs_two_cores();
    let lab = Lab::start_with(&[
        "--lab-session-cpus",
        "0.5",
        "--lab-cpu-calm",
        "3s",
        "--lab-cpu-kept-idle",
    ]);
    let a = lab.create_session();
    let b = lab.create_session();
    let all = lab.session_cgroup_file(&b, "cpuset", effective_cpus_file());
    let hogs = start_hogs(&lab, &a, 2);
    wait_kept_to_one_cpu(&lab, &a, &all);
    // Idle-scheduled while kept (what wakes up on its core goes first); b is not.
    assert_eq!(lab.session_cgroup_file(&a, "cpu", "cpu.idle"), "1");
    assert_eq!(lab.session_cgroup_file(&b, "cpu", "cpu.idle"), "0");
    session_ok(&lab, &a, &["rm", "-f", &hogs[0], &hogs[1]]);
    wait_freed(&lab, &a, &all);
    assert_eq!(lab.session_cgroup_file(&a, "cpu", "cpu.idle"), "0");
}

fn needs_two_cores() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert!(
        cores >= 2,
        "this test needs 2 or more CPUs to show a session kept to fewer (this machine has {cores})"
    );
}

/// `n` containers in session `id` that each use all the CPU they get.
fn start_hogs(lab: &Lab, id: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            session_ok(
                lab,
                id,
                &["run", "-d", "busybox", "sh", "-c", "while :; do :; done"],
            )
        })
        .collect()
}

/// Waits until session `id` is kept to one CPU (not `all`); returns that CPU.
fn wait_kept_to_one_cpu(lab: &Lab, id: &str, all: &str) -> String {
    wait_for_cpus(lab, id, |c| c != all && cpu_count(c) == 1).unwrap_or_else(|| {
        panic!(
            "session {id} was not kept to one CPU: {}\n{}",
            lab.session_cgroup_file(id, "cpuset", effective_cpus_file()),
            lab.berth.server_log()
        )
    })
}

/// Waits until session `id` has `all` the CPUs again.
fn wait_freed(lab: &Lab, id: &str, all: &str) {
    wait_for_cpus(lab, id, |c| c == all).unwrap_or_else(|| {
        panic!(
            "session {id} still kept to {} once calm\n{}",
            lab.session_cgroup_file(id, "cpuset", effective_cpus_file()),
            lab.berth.server_log()
        )
    });
}

fn effective_cpus_file() -> &'static str {
    if cgroup_v2() {
        "cpuset.cpus.effective"
    } else {
        "cpuset.effective_cpus"
    }
}

/// How many CPUs a list such as `0-1,3` names.
fn cpu_count(list: &str) -> usize {
    list.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('-') {
            Some((a, b)) => b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1,
            None => 1,
        })
        .sum()
}

/// The CPUs a process may run on, from /proc (`Cpus_allowed_list`).
fn cpus_allowed(pid: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("Cpus_allowed_list:")
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_default()
}

/// Waits up to 15 s for the session's CPUs to be what `ok` wants; returns them.
fn wait_for_cpus(lab: &Lab, id: &str, ok: impl Fn(&str) -> bool) -> Option<String> {
    let end = Instant::now() + Duration::from_secs(15);
    while Instant::now() < end {
        let c = lab.session_cgroup_file(id, "cpuset", effective_cpus_file());
        if ok(&c) {
            return Some(c);
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    None
}

#[test]
fn a_session_may_make_tmpfs_volumes_owned_by_its_own_root() {
    let lab = Lab::start();
    let id = lab.create_session();
    session_ok(
        &lab,
        &id,
        &[
            "volume",
            "create",
            "--opt",
            "type=tmpfs",
            "--opt",
            "device=tmpfs",
            "--opt",
            "o=size=4m",
            "fast",
        ],
    );
    // Root in the session's user namespace owns it (the host's root made the
    // mount), the options reach it, and the lab adds nosuid,nodev.
    let out = session_ok(
        &lab,
        &id,
        &[
            "run", "--rm", "-v", "fast:/f", "busybox", "sh", "-c",
            "touch /f/x && stat -c %u /f/x; stat -f -c %T /f; df -k /f | tail -1 | awk '{print $2}'; grep ' /f ' /proc/mounts",
        ],
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[..3], ["0", "tmpfs", "4096"], "{out}");
    assert!(
        lines[3].contains("nosuid") && lines[3].contains("nodev"),
        "{out}"
    );
    // Its pages are the writer's memory: a tmpfs volume without a size is bounded by
    // the container's (and the session's) memory, not the host's.
    session_ok(
        &lab,
        &id,
        &[
            "volume",
            "create",
            "--opt",
            "type=tmpfs",
            "--opt",
            "device=tmpfs",
            "unsized",
        ],
    );
    let out = session_ok(
        &lab,
        &id,
        &[
            "run",
            "--rm",
            "-m",
            "64m",
            "-v",
            "unsized:/u",
            "busybox",
            "sh",
            "-c",
            "dd if=/dev/zero of=/u/fill bs=1M count=512 2>/dev/null; echo rc=$?",
        ],
    );
    assert_eq!(out, "rc=137", "the writer is killed at its memory limit");
    // Only tmpfs: nothing of the host's, nothing over the network.
    for (opts, needle) in [
        (
            vec!["-o", "type=none", "-o", "o=bind", "-o", "device=/etc"],
            "only tmpfs volumes",
        ),
        (
            vec!["-o", "type=ext4", "-o", "device=/dev/vda"],
            "only tmpfs volumes",
        ),
        (
            vec![
                "-o",
                "type=tmpfs",
                "-o",
                "device=tmpfs",
                "-o",
                "o=size=1m,dev",
            ],
            "volume option o=dev is not allowed in a lab session",
        ),
    ] {
        let mut args = vec!["volume", "create"];
        args.extend(opts);
        args.push("refused");
        let (ok, out) = in_session(&lab, &id, &args);
        assert!(!ok && out.contains(needle), "{args:?}: {out}");
    }
    assert_eq!(
        session_ok(&lab, &id, &["volume", "ls", "-q"]),
        "fast\nunsized"
    );
    // A volume at /etc gets Docker's /etc files over it, made as the session's root
    // (the host's root has no id in the idmapped volume), read-only too.
    assert_eq!(
        session_ok(
            &lab,
            &id,
            &[
                "run",
                "--rm",
                "-v",
                "etc:/etc:ro",
                "busybox",
                "sh",
                "-c",
                "ls -n /etc | awk 'NR > 1 { printf \"%s:%s \", $3, $9 }'"
            ]
        ),
        "0:group 0:hostname 0:hosts 0:passwd 0:resolv.conf"
    );
    // `docker cp` into a tmpfs and into a tmpfs volume works (its pages are the
    // session's: see the next test), its files owned by the session's root.
    session_ok(
        &lab,
        &id,
        &[
            "run", "-d", "--name", "holder", "--tmpfs", "/scratch", "-v", "fast:/f", "busybox",
            "sleep", "600",
        ],
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), "data").unwrap();
    let src = file.path().to_str().unwrap();
    for dest in ["/scratch", "/f", "/tmp"] {
        session_ok(&lab, &id, &["cp", src, &format!("holder:{dest}/in")]);
        assert_eq!(
            session_ok(
                &lab,
                &id,
                &[
                    "exec",
                    "holder",
                    "sh",
                    "-c",
                    &format!("stat -c %u {dest}/in; cat {dest}/in")
                ]
            ),
            "0\ndata",
            "{dest}"
        );
    }
    session_ok(&lab, &id, &["rm", "-f", "holder"]);
    // A `--tmpfs` owner is the container's user too, not the host's.
    assert_eq!(
        session_ok(
            &lab,
            &id,
            &[
                "run",
                "--rm",
                "--tmpfs",
                "/t:uid=1000,gid=1000",
                "busybox",
                "stat",
                "-c",
                "%u:%g",
                "/t"
            ]
        ),
        "1000:1000"
    );
}

#[test]
fn a_copy_into_a_tmpfs_is_charged_to_the_session() {
    let lab = Lab::start_with(&["--lab-session-memory", "96m"]);
    let id = lab.create_session();
    let memory_file = if cgroup_v2() {
        "memory.current"
    } else {
        "memory.usage_in_bytes"
    };
    let used = || -> u64 {
        lab.session_cgroup_file(&id, "memory", memory_file)
            .parse()
            .unwrap()
    };
    session_ok(
        &lab,
        &id,
        &[
            "run",
            "-d",
            "--name",
            "holder",
            "--tmpfs",
            "/scratch:size=512m",
            "busybox",
            "sleep",
            "600",
        ],
    );
    // The server writes nothing itself: the copy's pages are the session's.
    let dir = tempfile::tempdir().unwrap();
    let (small, big) = (dir.path().join("small"), dir.path().join("big"));
    std::fs::write(&small, vec![7u8; 40 << 20]).unwrap();
    std::fs::write(&big, vec![7u8; 200 << 20]).unwrap();
    let before = used();
    session_ok(
        &lab,
        &id,
        &["cp", small.to_str().unwrap(), "holder:/scratch/small"],
    );
    let after = used();
    assert!(
        after >= before + (36 << 20),
        "the session's memory went from {before} to {after} bytes for a 40 MiB copy into a tmpfs"
    );
    // Past the session's limit the copy fails (the session's own OOM killer stops
    // it); the server and the session go on.
    let (ok, out) = in_session(
        &lab,
        &id,
        &["cp", big.to_str().unwrap(), "holder:/scratch/big"],
    );
    assert!(
        !ok && out.contains("the copy reached this lab session's memory limit"),
        "{out}"
    );
    assert!(used() <= 96 << 20, "the session is over its memory limit");
    session_ok(&lab, &id, &["rm", "-f", "holder"]);
    assert_eq!(
        session_ok(&lab, &id, &["run", "--rm", "busybox", "echo", "still-here"]),
        "still-here"
    );
    // The copies' own cgroups are gone.
    let envelope = lab.session_cgroup(&id, "memory");
    let left: Vec<String> = std::fs::read_dir(&envelope)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("cp-"))
        .map(|e| e.path().display().to_string())
        .collect();
    assert!(left.is_empty(), "copy cgroups left: {left:?}");
}
