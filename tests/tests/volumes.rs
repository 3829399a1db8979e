//! Volumes through the real CLI: `docker volume ...`, `-v` named, anonymous and bind
//! mounts, `--volumes-from`, and `docker system prune`.

use berth_tests::Berth;

#[test]
fn volume_create_ls_inspect_rm() {
    let b = Berth::start();
    assert_eq!(b.ok(&["volume", "create", "data"]), "data");
    assert_eq!(
        b.ok(&["volume", "create", "--label", "team=blue", "labelled"]),
        "labelled"
    );
    // Creating an existing volume again is fine, as in Docker.
    assert_eq!(b.ok(&["volume", "create", "data"]), "data");
    let ls = b.ok(&["volume", "ls"]);
    let lines: Vec<&str> = ls.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["DRIVER", "VOLUME", "NAME"],
        "{ls}"
    );
    assert!(
        ls.contains("local     data") && ls.contains("local     labelled"),
        "{ls}"
    );
    assert_eq!(
        b.ok(&["volume", "ls", "-q", "--filter", "label=team=blue"]),
        "labelled"
    );
    assert_eq!(
        b.ok(&["volume", "ls", "-q", "--filter", "name=dat"]),
        "data"
    );
    let shape = b.ok(&[
        "volume",
        "inspect",
        "-f",
        "{{.Name}} {{.Driver}} {{.Scope}} {{.Labels}}",
        "labelled",
    ]);
    assert_eq!(shape, "labelled local local map[team:blue]");
    let mountpoint = b.ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", "data"]);
    assert!(
        mountpoint.ends_with("/volumes/default/data/_data")
            && mountpoint.starts_with(b.root.to_str().unwrap()),
        "{mountpoint}"
    );
    let created = b.ok(&["volume", "inspect", "-f", "{{.CreatedAt}}", "data"]);
    assert!(
        created.len() == 20 && created.ends_with('Z'),
        "RFC 3339 in seconds: {created}"
    );

    let (_, err) = b.fails(&["volume", "inspect", "nothing-here"]);
    assert!(err.contains("no such volume"), "{err}");
    let (_, err) = b.fails(&["volume", "rm", "nothing-here"]);
    assert!(err.contains("get nothing-here: no such volume"), "{err}");
    b.ok(&["volume", "rm", "-f", "nothing-here"]);
    let (_, err) = b.fails(&["volume", "create", "bad/name"]);
    assert!(
        err.contains("includes invalid characters for a local volume name"),
        "{err}"
    );
    let (_, err) = b.fails(&["volume", "create", "-d", "nfs", "elsewhere"]);
    assert!(err.contains("plugin \"nfs\" not found"), "{err}");
    let (_, err) = b.fails(&["volume", "ls", "--filter", "color=red"]);
    assert!(err.contains("invalid filter 'color'"), "{err}");

    assert_eq!(
        b.ok(&["volume", "rm", "data", "labelled"]),
        "data\nlabelled"
    );
    assert_eq!(b.ok(&["volume", "ls", "-q"]), "");
}

#[test]
fn named_volume_outlives_its_container_and_is_in_use_while_mounted() {
    let b = Berth::start();
    b.ok(&[
        "run",
        "--name",
        "writer",
        "-v",
        "keep:/data",
        "busybox",
        "sh",
        "-c",
        "echo saved > /data/file",
    ]);
    // The volume's Mountpoint on the host holds what the container wrote.
    let mountpoint = b.ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", "keep"]);
    assert_eq!(
        std::fs::read_to_string(format!("{mountpoint}/file")).unwrap(),
        "saved\n"
    );

    let id = b.ok(&["inspect", "-f", "{{.Id}}", "writer"]);
    let (code, err) = b.fails(&["volume", "rm", "keep"]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("remove keep: volume is in use - [{id}]")),
        "{err}"
    );
    assert_eq!(
        b.ok(&["volume", "ls", "-q", "--filter", "dangling=false"]),
        "keep"
    );
    assert_eq!(
        b.ok(&["volume", "ls", "-q", "--filter", "dangling=true"]),
        ""
    );
    let mounts = b.inspect(
        "writer",
        "{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}} {{.RW}}{{end}}",
    );
    assert_eq!(mounts, "volume keep /data true");

    b.ok(&["rm", "writer"]);
    assert_eq!(
        b.ok(&["volume", "ls", "-q", "--filter", "dangling=true"]),
        "keep"
    );
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "-v",
            "keep:/again",
            "busybox",
            "cat",
            "/again/file"
        ]),
        "saved"
    );
    b.ok(&["volume", "rm", "keep"]);
    assert!(!std::path::Path::new(&mountpoint).exists());
}

#[test]
fn new_volumes_start_with_the_image_content() {
    let b = Berth::start();
    // A new named volume over /etc gets the image's /etc; a volume already holding
    // data is not overwritten.
    let out = b.ok(&[
        "run",
        "--rm",
        "-v",
        "etc:/etc",
        "busybox",
        "sh",
        "-c",
        "cat /etc/passwd | head -1; echo mine > /etc/passwd",
    ]);
    assert!(out.starts_with("root:"), "{out}");
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "-v",
            "etc:/etc",
            "busybox",
            "cat",
            "/etc/passwd"
        ]),
        "mine"
    );
    // Anonymous volumes too, and they are listed under a random 64-hex name.
    b.ok(&[
        "run",
        "--name",
        "anon",
        "-v",
        "/etc",
        "busybox",
        "test",
        "-f",
        "/etc/group",
    ]);
    let name = b.inspect("anon", "{{range .Mounts}}{{.Name}}{{end}}");
    assert_eq!(name.len(), 64, "{name}");
    let label = b.ok(&[
        "volume",
        "inspect",
        "-f",
        "{{index .Labels \"com.docker.volume.anonymous\"}}|",
        &name,
    ]);
    assert_eq!(label, "|", "anonymous volumes carry Docker's label");
    // `rm -v` removes the anonymous volume, not named ones.
    b.ok(&["rm", "-v", "anon"]);
    assert_eq!(b.ok(&["volume", "ls", "-q"]), "etc");
}

#[test]
fn binds_read_only_and_volumes_from() {
    let b = Berth::start();
    let host = b.root.with_file_name("hostdir");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("hello.txt"), "from host\n").unwrap();
    let bind = format!("{}:/h", host.display());
    let ro = format!("{}:/h:ro", host.display());
    assert_eq!(
        b.ok(&["run", "--rm", "-v", &bind, "busybox", "cat", "/h/hello.txt"]),
        "from host"
    );
    b.ok(&[
        "run",
        "--rm",
        "-v",
        &bind,
        "busybox",
        "sh",
        "-c",
        "echo back > /h/back.txt",
    ]);
    assert_eq!(
        std::fs::read_to_string(host.join("back.txt")).unwrap(),
        "back\n"
    );
    let (_, err) = b.fails(&["run", "--rm", "-v", &ro, "busybox", "touch", "/h/nope"]);
    assert!(err.contains("Read-only file system"), "{err}");
    assert!(!host.join("nope").exists());
    assert_eq!(
        b.ok(&["run", "--rm", "-v", &ro, "busybox", "cat", "/h/hello.txt"]),
        "from host"
    );

    // --volumes-from: the same volumes at the same places, modes optionally overridden.
    b.ok(&[
        "create",
        "--name",
        "store",
        "-v",
        "shared:/shared",
        "-v",
        &bind,
        "busybox",
    ]);
    b.ok(&[
        "run",
        "--rm",
        "--volumes-from",
        "store",
        "busybox",
        "sh",
        "-c",
        "echo via-from > /shared/f",
    ]);
    assert_eq!(
        b.ok(&["run", "--rm", "-v", "shared:/x", "busybox", "cat", "/x/f"]),
        "via-from"
    );
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "--volumes-from",
            "store",
            "busybox",
            "cat",
            "/h/hello.txt"
        ]),
        "from host"
    );
    let (_, err) = b.fails(&[
        "run",
        "--rm",
        "--volumes-from",
        "store:ro",
        "busybox",
        "touch",
        "/shared/g",
    ]);
    assert!(err.contains("Read-only file system"), "{err}");
    // The daemon answers 404 "No such container"; the CLI, like Docker's, takes any
    // 404 on create for a missing image and tries a pull, which fails here.
    b.fails(&[
        "run",
        "--rm",
        "--volumes-from",
        "no-such-box",
        "busybox",
        "true",
    ]);
    assert_eq!(
        b.ok(&["ps", "-aq"]).lines().count(),
        1,
        "only `store` exists"
    );
    b.ok(&["rm", "store"]);
    std::fs::remove_dir_all(&host).unwrap();
}

#[test]
fn volume_prune_takes_unused_anonymous_volumes_unless_all() {
    let b = Berth::start();
    b.ok(&["volume", "create", "named-unused"]);
    b.ok(&["volume", "create", "named-used"]);
    b.ok(&[
        "create",
        "--name",
        "user",
        "-v",
        "named-used:/a",
        "-v",
        "/anon-used",
        "busybox",
    ]);
    b.ok(&[
        "run",
        "--name",
        "gone",
        "-v",
        "/anon-free",
        "busybox",
        "true",
    ]);
    let free = b.inspect("gone", "{{range .Mounts}}{{.Name}}{{end}}");
    b.ok(&["rm", "gone"]);

    let out = b.ok(&["volume", "prune", "-f"]);
    assert_eq!(
        out,
        format!("Deleted Volumes:\n{free}\n\nTotal reclaimed space: 0B")
    );
    let left = b.ok(&["volume", "ls", "-q"]);
    assert!(
        left.contains("named-unused") && left.contains("named-used") && left.lines().count() == 3,
        "{left}"
    );

    let out = b.ok(&["volume", "prune", "-a", "-f"]);
    assert_eq!(
        out,
        "Deleted Volumes:\nnamed-unused\n\nTotal reclaimed space: 0B"
    );
    let out = b.ok(&["volume", "prune", "-f"]);
    assert_eq!(out, "Total reclaimed space: 0B");
    b.ok(&["rm", "-v", "user"]);
    assert_eq!(b.ok(&["volume", "ls", "-q"]), "named-used");
}

#[test]
fn system_prune_removes_stopped_containers_and_with_volumes_anonymous_volumes() {
    let b = Berth::start();
    b.ok(&["run", "-d", "--name", "alive", "busybox", "sleep", "60"]);
    b.ok(&[
        "run",
        "--name",
        "stopped",
        "-v",
        "/scratch",
        "-v",
        "kept:/kept",
        "busybox",
        "sh",
        "-c",
        "head -c 2000 /dev/zero > /scratch/z",
    ]);
    let stopped = b.inspect("stopped", "{{.Id}}");
    let anon = b.inspect(
        "stopped",
        "{{range .Mounts}}{{if eq .Destination \"/scratch\"}}{{.Name}}{{end}}{{end}}",
    );
    let o = b.docker(&["system", "prune", "-f", "--volumes"]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    if !o.status.success() {
        // Image pruning belongs to another area; what this test owns must have run.
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("/images/prune"),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    assert!(
        out.starts_with(&format!(
            "Deleted Containers:\n{stopped}\n\nDeleted Volumes:\n{anon}\n"
        )),
        "{out}"
    );
    if o.status.success() {
        assert!(
            out.trim_end().ends_with("Total reclaimed space: 2kB"),
            "{out}"
        );
    }
    assert_eq!(
        b.ok(&["ps", "-aq", "--no-trunc"]),
        b.inspect("alive", "{{.Id}}")
    );
    assert_eq!(
        b.ok(&["volume", "ls", "-q"]),
        "kept",
        "named volumes stay without -a"
    );
    b.ok(&["rm", "-f", "alive"]);
}

/// Whether something is mounted exactly at `path` (as the host sees it).
fn mounted(path: &str) -> bool {
    let real = std::fs::canonicalize(path).unwrap();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(real.to_str().unwrap()))
}

#[test]
fn local_driver_options_mount_a_tmpfs_or_a_directory_while_containers_use_it() {
    let b = Berth::start();
    // As the Docker docs show it: a tmpfs volume, shared by the containers using it.
    b.ok(&[
        "volume",
        "create",
        "--driver",
        "local",
        "--opt",
        "type=tmpfs",
        "--opt",
        "device=tmpfs",
        "--opt",
        "o=size=8m,uid=1000",
        "scratch",
    ]);
    assert_eq!(
        b.ok(&["volume", "inspect", "-f", "{{.Options}}", "scratch"]),
        "map[device:tmpfs o:size=8m,uid=1000 type:tmpfs]"
    );
    let data = b.ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", "scratch"]);
    assert!(!mounted(&data), "mounted only while a container uses it");
    b.ok(&[
        "run",
        "-d",
        "--name",
        "one",
        "-v",
        "scratch:/s",
        "busybox",
        "sh",
        "-c",
        "echo hi > /s/f; sleep 600",
    ]);
    let seen = b.ok(&[
        "exec",
        "one",
        "sh",
        "-c",
        "sleep 0.2; stat -f -c %T /s; stat -c %u /s; df -k /s | tail -1 | awk '{print $2}'",
    ]);
    assert_eq!(seen, "tmpfs\n1000\n8192", "the options reach the mount");
    assert!(mounted(&data));
    // A second container sees the same file system, and it stays while either runs.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "two",
        "-v",
        "scratch:/again",
        "busybox",
        "sleep",
        "600",
    ]);
    b.ok(&["rm", "-f", "one"]);
    assert_eq!(b.ok(&["exec", "two", "cat", "/again/f"]), "hi");
    assert!(mounted(&data));
    b.ok(&["rm", "-f", "two"]);
    assert!(!mounted(&data), "unmounted after the last container");
    // Its files went with it, as with dockerd; the next container gets a fresh one.
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "-v",
            "scratch:/s",
            "busybox",
            "ls",
            "-A",
            "/s"
        ]),
        ""
    );

    // A server that restarts while a container uses it finds it mounted and counts
    // that container: the next one shares it, and the last to stop unmounts it.
    let mut b = b;
    b.ok(&[
        "run",
        "-d",
        "--name",
        "three",
        "-v",
        "scratch:/s",
        "busybox",
        "sh",
        "-c",
        "echo before > /s/f; sleep 600",
    ]);
    b.ok(&[
        "exec",
        "three",
        "sh",
        "-c",
        "while ! test -s /s/f; do sleep 0.1; done",
    ]);
    b.kill_server();
    b.start_server();
    assert_eq!(
        b.ok(&["run", "--rm", "-v", "scratch:/s", "busybox", "cat", "/s/f"]),
        "before"
    );
    assert!(mounted(&data));
    // One that ended while the server was down: the server finds nobody using it.
    let pid = b.inspect("three", "{{.State.Pid}}");
    b.kill_server();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid.parse().unwrap()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() && std::time::Instant::now() < end
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    b.start_server();
    assert_eq!(b.inspect("three", "{{.State.Status}}"), "exited");
    assert!(
        !mounted(&data),
        "unmounted once the server found its last user gone"
    );
    b.ok(&["rm", "three"]);
    b.ok(&["volume", "rm", "scratch"]);

    // A directory of the host bound as a volume (`type=none,o=bind`), and
    // `--mount`'s volume-opt making a volume the same way.
    let dir = tempfile::tempdir().unwrap();
    let device = format!("device={}", dir.path().display());
    b.ok(&[
        "volume",
        "create",
        "-o",
        "type=none",
        "-o",
        "o=bind",
        "-o",
        &device,
        "hostdir",
    ]);
    b.ok(&[
        "run",
        "--rm",
        "-v",
        "hostdir:/h",
        "busybox",
        "sh",
        "-c",
        "echo kept > /h/out",
    ]);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("out")).unwrap(),
        "kept\n"
    );
    let spec = "type=volume,src=viamount,dst=/m,volume-driver=local,volume-opt=type=tmpfs,volume-opt=device=tmpfs,volume-opt=o=size=4m";
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "--mount",
            spec,
            "busybox",
            "sh",
            "-c",
            "stat -f -c %T /m; df -k /m | tail -1 | awk '{print $2}'"
        ]),
        "tmpfs\n4096"
    );
    assert_eq!(
        b.ok(&["volume", "inspect", "-f", "{{.Options}}", "viamount"]),
        "map[device:tmpfs o:size=4m type:tmpfs]"
    );

    // dockerd's checks and messages.
    for (opts, needle) in [
        (vec!["-o", "color=red"], "invalid option: \"color\""),
        (
            vec!["-o", "type=tmpfs"],
            "missing required option: \"device\"",
        ),
        (
            vec!["-o", "size=1g"],
            "quota size requested but no quota support",
        ),
    ] {
        let mut args = vec!["volume", "create"];
        args.extend(opts);
        args.push("bad");
        let (_, err) = b.fails(&args);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    // A mount the kernel refuses fails the start, with dockerd's words, and the
    // container can be removed.
    b.ok(&[
        "volume",
        "create",
        "-o",
        "type=ext4",
        "-o",
        "device=/nonexistent-disk",
        "nodisk",
    ]);
    let (_, err) = b.fails(&[
        "run",
        "--name",
        "nodisk",
        "-v",
        "nodisk:/d",
        "busybox",
        "true",
    ]);
    assert!(
        err.contains("error while mounting volume")
            && err.contains("failed to mount local volume: mount /nonexistent-disk:"),
        "{err}"
    );
    b.ok(&["rm", "nodisk"]);
    b.ok(&["volume", "rm", "nodisk", "hostdir", "viamount"]);
}

#[test]
fn a_volume_at_etc_keeps_dockers_etc_files_on_top() {
    let b = Berth::start();
    // As runc: hostname, hosts and resolv.conf are mounted over the user's mounts...
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "--hostname",
            "box",
            "-v",
            "etc:/etc",
            "busybox",
            "sh",
            "-c",
            "ls /etc | tr '\\n' ' '; cat /etc/hostname"
        ]),
        "group hostname hosts passwd resolv.conf box"
    );
    // ... a read-only one too (made read-only once they are there; they stay writable)...
    assert_eq!(
        b.ok(&[
            "run", "--rm", "-v", "etcro:/etc:ro", "busybox", "sh", "-c",
            "echo '10.0.0.9 extra' >> /etc/hosts && echo hosts-writable; touch /etc/new 2>/dev/null || echo etc-read-only",
        ]),
        "hosts-writable\netc-read-only"
    );
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "--mount",
            "type=tmpfs,dst=/etc,readonly",
            "busybox",
            "sh",
            "-c",
            "ls /etc | tr '\\n' ' '; touch /etc/new 2>/dev/null || echo ro"
        ]),
        "hostname hosts resolv.conf ro"
    );
    // ... but a user's own file at one of those paths wins.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hosts"), "10.1.2.3 mine\n").unwrap();
    let bind = format!("{}:/etc/hosts", dir.path().join("hosts").display());
    assert_eq!(
        b.ok(&["run", "--rm", "-v", &bind, "busybox", "cat", "/etc/hosts"]),
        "10.1.2.3 mine"
    );
}
