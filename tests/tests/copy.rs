//! `docker cp` both ways through the real CLI, on running and stopped containers.

use std::fs;

use berth_tests::Berth;

#[test]
fn copy_out_of_containers() {
    let b = Berth::start();
    let out = b.root.with_file_name("out");
    fs::create_dir_all(&out).unwrap();
    let o = |p: &str| out.join(p).display().to_string();
    b.ok(&[
        "run",
        "--name",
        "src",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /d/sub && echo one > /d/sub/f && echo top > /d/t && ln -s /d/t /d/link",
    ]);
    // A file to a new name, a directory to a new name, a directory's contents.
    b.ok(&["cp", "src:/d/t", &o("t.txt")]);
    assert_eq!(fs::read_to_string(out.join("t.txt")).unwrap(), "top\n");
    b.ok(&["cp", "src:/d", &o("dcopy")]);
    assert_eq!(
        fs::read_to_string(out.join("dcopy/sub/f")).unwrap(),
        "one\n"
    );
    fs::create_dir(out.join("into")).unwrap();
    b.ok(&["cp", "src:/d/.", &o("into")]);
    assert_eq!(fs::read_to_string(out.join("into/sub/f")).unwrap(), "one\n");
    // Symlinks are copied as links, or followed with -L (inside the container's root).
    b.ok(&["cp", "src:/d/link", &o("link")]);
    assert_eq!(
        fs::read_link(out.join("link"))
            .unwrap()
            .display()
            .to_string(),
        "/d/t"
    );
    b.ok(&["cp", "-L", "src:/d/link", &o("followed")]);
    assert_eq!(fs::read_to_string(out.join("followed")).unwrap(), "top\n");
    // To stdout as a tar stream.
    let tar = b.docker(&["cp", "src:/d/t", "-"]);
    assert!(tar.status.success());
    assert_eq!(
        &tar.stdout[..2],
        b"t\0",
        "the entry is named after the path's last element"
    );

    let (_, err) = b.fails(&["cp", "src:/no/such/file", &o("x")]);
    assert!(
        err.contains("Could not find the file /no/such/file in container src"),
        "{err}"
    );
    let (_, err) = b.fails(&["cp", "nobox:/etc/passwd", &o("x")]);
    assert!(err.contains("No such container: nobox"), "{err}");

    // A running container: its volumes are part of what cp sees.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "live",
        "-v",
        "vol:/v",
        "busybox",
        "sh",
        "-c",
        "echo live > /v/data; sleep 60",
    ]);
    b.eventually("the container wrote its file", || {
        b.docker(&["exec", "live", "test", "-f", "/v/data"])
            .status
            .success()
    });
    b.ok(&["cp", "live:/v/data", &o("live.txt")]);
    assert_eq!(fs::read_to_string(out.join("live.txt")).unwrap(), "live\n");
    // An absolute symlink pointing at the host's files resolves inside the container.
    b.ok(&["exec", "live", "ln", "-s", "/etc/hostname", "/esc"]);
    b.ok(&["cp", "-L", "live:/esc", &o("esc")]);
    let hostname = b.inspect("live", "{{.Config.Hostname}}");
    assert_eq!(
        fs::read_to_string(out.join("esc")).unwrap().trim(),
        hostname
    );
    b.ok(&["rm", "-f", "live"]);
}

#[test]
fn copy_into_containers() {
    let b = Berth::start();
    let host = b.root.with_file_name("in");
    fs::create_dir_all(host.join("dir/sub")).unwrap();
    fs::write(host.join("file.txt"), "payload\n").unwrap();
    fs::write(host.join("dir/sub/deep.txt"), "deep\n").unwrap();
    let h = |p: &str| host.join(p).display().to_string();

    // Into a stopped container: lands in its filesystem for the next start.
    b.ok(&[
        "create",
        "--name",
        "box",
        "-v",
        "boxvol:/vol",
        "busybox",
        "sh",
        "-c",
        "cat /tmp/file.txt /renamed /tmp/dir/sub/deep.txt /vol/file.txt",
    ]);
    b.ok(&["cp", &h("file.txt"), "box:/tmp/"]);
    b.ok(&["cp", &h("file.txt"), "box:/renamed"]);
    b.ok(&["cp", &h("dir"), "box:/tmp"]);
    b.ok(&["cp", &h("file.txt"), "box:/vol"]);
    assert_eq!(
        b.ok(&["start", "-a", "box"]),
        "payload\npayload\ndeep\npayload"
    );
    // The stopped container's volume got the file.
    let mp = b.ok(&["volume", "inspect", "-f", "{{.Mountpoint}}", "boxvol"]);
    assert_eq!(
        fs::read_to_string(format!("{mp}/file.txt")).unwrap(),
        "payload\n"
    );

    // Into a running one; a symlinked directory as destination is followed within
    // the container.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "run",
        "busybox",
        "sh",
        "-c",
        "mkdir /target && ln -s /target /via && sleep 60",
    ]);
    b.eventually("the symlink exists", || {
        b.docker(&["exec", "run", "test", "-L", "/via"])
            .status
            .success()
    });
    b.ok(&["cp", &h("file.txt"), "run:/via"]);
    assert_eq!(b.ok(&["exec", "run", "cat", "/target/file.txt"]), "payload");
    b.ok(&["cp", &h("dir"), "run:/copied"]);
    assert_eq!(
        b.ok(&["exec", "run", "cat", "/copied/sub/deep.txt"]),
        "deep"
    );

    // Errors: a missing parent, a directory over a file, a read-only bind, a
    // read-only root filesystem.
    let (_, err) = b.fails(&["cp", &h("file.txt"), "run:/no/such/dir/x"]);
    assert!(
        err.contains("Could not find the file /no/such/dir in container run"),
        "{err}"
    );
    b.ok(&["exec", "run", "touch", "/plainfile"]);
    let (_, err) = b.fails(&["cp", &h("dir"), "run:/plainfile"]);
    assert!(err.contains("cannot copy directory"), "{err}");
    let ro = format!("{}:/ro:ro", host.display());
    b.ok(&[
        "run", "-d", "--name", "robox", "-v", &ro, "busybox", "sleep", "60",
    ]);
    let (_, err) = b.fails(&["cp", &h("file.txt"), "robox:/ro/"]);
    assert!(err.contains("mounted volume is marked read-only"), "{err}");
    b.ok(&["create", "--name", "rofs", "--read-only", "busybox"]);
    let (_, err) = b.fails(&["cp", &h("file.txt"), "rofs:/tmp/"]);
    assert!(
        err.contains("container rootfs is marked read-only"),
        "{err}"
    );
    // Nothing leaked to the host through the container's paths.
    assert!(!std::path::Path::new("/target/file.txt").exists());
    b.ok(&["rm", "-f", "run", "robox", "rofs", "box"]);
}

/// `docker export`: the container's own files (its image's, and what it changed),
/// not what is mounted in it; the tar imports back as an image.
#[test]
fn export_writes_the_containers_own_files() {
    let b = Berth::start();
    let dir = b.root.with_file_name("export");
    std::fs::create_dir_all(&dir).unwrap();
    // `docker export NAME` to NAME.tar: its path and its entries' names.
    let export = |name: &str| -> (std::path::PathBuf, Vec<String>) {
        let tar = dir.join(format!("{name}.tar"));
        b.ok(&["export", "-o", tar.to_str().unwrap(), name]);
        let o = std::process::Command::new("tar")
            .arg("tf")
            .arg(&tar)
            .output()
            .expect("tar");
        assert!(o.status.success(), "tar tf {}", tar.display());
        let names = String::from_utf8_lossy(&o.stdout)
            .lines()
            .map(String::from)
            .collect();
        (tar, names)
    };
    b.ok(&[
        "run",
        "--name",
        "stopped",
        "-v",
        "exportvol:/data",
        "busybox",
        "sh",
        "-c",
        "echo made > /made; echo v > /data/v; rm /bin/vi",
    ]);
    let (tar, names) = export("stopped");
    assert!(
        names.iter().any(|n| n == "made") && names.iter().any(|n| n == "bin/sh"),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|n| n == "bin/vi" || n.starts_with("./")),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n == "data/") && !names.iter().any(|n| n == "data/v"),
        "the volume's mount point, not its files"
    );
    b.ok(&["import", tar.to_str().unwrap(), "exported:1"]);
    assert_eq!(b.ok(&["run", "--rm", "exported:1", "cat", "/made"]), "made");
    b.ok(&[
        "run",
        "-d",
        "--name",
        "running",
        "busybox",
        "sh",
        "-c",
        "echo live > /live; sleep 300",
    ]);
    b.eventually("the file written", || {
        b.ok(&["exec", "running", "cat", "/live"]) == "live"
    });
    let (_, names) = export("running");
    assert!(
        names.iter().any(|n| n == "live") && names.iter().any(|n| n == "proc/"),
        "{names:?}"
    );
    assert!(
        !names
            .iter()
            .any(|n| (n.starts_with("proc/") && n != "proc/")
                || (n.starts_with("sys/") && n != "sys/")),
        "nothing of /proc or /sys: {names:?}"
    );
    let (_, err) = b.fails(&[
        "export",
        "-o",
        dir.join("none.tar").to_str().unwrap(),
        "nosuch",
    ]);
    assert!(err.contains("No such container: nosuch"), "{err}");
}
