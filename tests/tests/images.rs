//! Local image commands through the real CLI: images, inspect, tag, rmi, history,
//! save/load, import, image prune.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use berth_tests::Berth;

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

/// Full id (`sha256:…`) of an image.
fn image_id(b: &Berth, name: &str) -> String {
    b.ok(&["image", "inspect", "-f", "{{.Id}}", name])
}

/// A minimal rootfs tar (busybox + sh) for `docker import`, made with busybox tar.
fn rootfs_tar(b: &Berth) -> PathBuf {
    let dir = b.root.with_file_name("rootfs");
    fs::create_dir_all(dir.join("bin")).unwrap();
    fs::copy("/bin/busybox", dir.join("bin/busybox")).unwrap();
    for applet in ["sh", "echo", "cat"] {
        let _ = std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet));
    }
    fs::write(dir.join("hello.txt"), "from the imported rootfs\n").unwrap();
    let tar = b.root.with_file_name("rootfs.tar");
    let st = std::process::Command::new("/bin/busybox")
        .args(["tar", "cf"])
        .arg(&tar)
        .arg("-C")
        .arg(&dir)
        .args(["bin", "hello.txt"])
        .status()
        .unwrap();
    assert!(st.success());
    tar
}

/// Runs docker with a file as stdin; returns (success, stdout, stderr).
fn with_stdin(b: &Berth, args: &[&str], input: &Path) -> (bool, String, String) {
    let o = b
        .cmd(args)
        .stdin(Stdio::from(fs::File::open(input).unwrap()))
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

#[test]
fn images_list_columns_quiet_format_and_filters() {
    let b = Berth::start();
    let out = b.ok(&["images"]);
    let header: Vec<&str> = lines(&out)[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    );
    let bb = lines(&out)
        .into_iter()
        .find(|l| l.starts_with("busybox "))
        .expect("a busybox row");
    let cols: Vec<&str> = bb.split_whitespace().collect();
    assert_eq!(cols[1], "latest");
    assert_eq!(cols[2].len(), 12, "short id: {bb}");
    assert!(image_id(&b, "busybox").starts_with(&format!("sha256:{}", cols[2])));
    assert!(bb.contains("ago"), "CREATED is relative: {bb}");
    assert!(
        bb.trim_end().ends_with("MB") || bb.trim_end().ends_with("kB"),
        "SIZE: {bb}"
    );

    let q = b.ok(&["images", "-q"]);
    assert_eq!(
        q.lines().count(),
        3,
        "busybox, hello-wasm, hello-world: {q}"
    );
    assert!(
        q.lines()
            .all(|l| l.len() == 12 && l.bytes().all(|c| c.is_ascii_hexdigit())),
        "{q}"
    );

    b.ok(&["tag", "busybox", "localhost:5000/team/app:v1"]);
    let f = b.ok(&[
        "images",
        "--format",
        "{{.Repository}}:{{.Tag}}",
        "--filter",
        "reference=localhost:5000/team/*",
    ]);
    assert_eq!(f, "localhost:5000/team/app:v1");
    let f = b.ok(&[
        "images",
        "--format",
        "{{.Repository}}:{{.Tag}}",
        "--filter",
        "reference=busy*",
    ]);
    assert_eq!(f, "busybox:latest");
    let f = b.ok(&[
        "images",
        "--format",
        "{{.Repository}}",
        "--filter",
        "dangling=true",
    ]);
    assert_eq!(f, "", "nothing is dangling yet");
    let (_, err) = b.fails(&["images", "--filter", "colour=blue"]);
    assert!(err.contains("invalid filter 'colour'"), "{err}");

    // An untagged import is dangling: shown as <none>, found by dangling=true.
    let tar = rootfs_tar(&b);
    let id = b.ok(&["import", tar.to_str().unwrap()]);
    let dangling = b.ok(&[
        "images",
        "--filter",
        "dangling=true",
        "--format",
        "{{.Repository}} {{.Tag}} {{.ID}}",
    ]);
    assert_eq!(dangling, format!("<none> <none> {}", &id[7..19]));
    let all = b.ok(&["images", "-a", "-q"]);
    assert!(all.contains(&id[7..19]), "{all}");
}

#[test]
fn inspect_has_dockers_shape() {
    let b = Berth::start();
    b.ok(&["tag", "busybox", "localhost:5000/a/b:tag"]);
    let id = image_id(&b, "busybox");
    assert_eq!(
        image_id(&b, "localhost:5000/a/b:tag"),
        id,
        "names with slashes and ports resolve"
    );
    assert_eq!(
        b.ok(&["image", "inspect", "-f", "{{.Config.Cmd}}", "busybox"]),
        "[sh]"
    );
    assert_eq!(
        b.ok(&[
            "image",
            "inspect",
            "-f",
            "{{.Os}}/{{.RootFS.Type}}/{{len .RootFS.Layers}}",
            "busybox"
        ]),
        "linux/layers/1"
    );
    assert_eq!(
        b.ok(&["image", "inspect", "-f", "{{.Id}}", &id[7..19]]),
        id,
        "short ids resolve"
    );
    let json: serde_json::Value =
        serde_json::from_str(&b.ok(&["image", "inspect", "busybox"])).unwrap();
    let img = &json[0];
    for key in [
        "Id",
        "RepoTags",
        "RepoDigests",
        "Created",
        "Size",
        "Config",
        "RootFS",
        "Architecture",
        "Os",
        "Metadata",
    ] {
        assert!(img.get(key).is_some(), "inspect lacks {key}: {img}");
    }
    let mut tags: Vec<&str> = img["RepoTags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    tags.sort();
    assert_eq!(tags, ["busybox:latest", "localhost:5000/a/b:tag"]);
    assert!(img["Size"].as_u64().unwrap() > 100_000);
    assert!(img["Metadata"]["LastTagTime"].is_string());
    // The generic `docker inspect` falls back to images.
    assert_eq!(
        b.inspect("busybox", "{{.Architecture}}"),
        img["Architecture"].as_str().unwrap()
    );
    let (_, err) = b.fails(&["image", "inspect", "nosuch"]);
    assert!(err.contains("No such image: nosuch"), "{err}");
}

#[test]
fn tag_and_rmi_follow_dockers_rules() {
    let b = Berth::start();
    let id = image_id(&b, "busybox");
    let short = &id[7..19];
    b.ok(&["tag", "busybox", "mybox:1"]);
    assert_eq!(image_id(&b, "mybox:1"), id);
    assert_eq!(
        b.ok(&["rmi", "mybox:1"]),
        "Untagged: mybox:1",
        "another tag remains: untag only"
    );
    let (_, err) = b.fails(&["tag", "nosuch", "x"]);
    assert!(err.contains("No such image: nosuch"), "{err}");
    let (_, err) = b.fails(&["rmi", "nosuch"]);
    assert!(err.contains("No such image: nosuch"), "{err}");

    // A stopped container uses busybox.
    let c = b.ok(&["create", "busybox", "true"]);
    let (code, err) = b.fails(&["rmi", "busybox"]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("conflict: unable to remove repository reference \"busybox\" (must force) - container {} is using its referenced image {short}", &c[..12])),
        "{err}"
    );
    let (_, err) = b.fails(&["rmi", short]);
    assert!(err.contains(&format!("conflict: unable to delete {short} (must be forced) - image is being used by stopped container {}", &c[..12])), "{err}");
    // A running one: not even force helps when removing by id.
    let r = b.ok(&["run", "-d", "busybox", "sleep", "100"]);
    let (_, err) = b.fails(&["rmi", "-f", short]);
    assert!(err.contains(&format!("conflict: unable to delete {short} (cannot be forced) - image is being used by running container {}", &r[..12])), "{err}");
    b.ok(&["rm", "-f", &r, &c]);

    // Several tags: by id needs force, then everything goes.
    let hw = image_id(&b, "hello-world");
    b.ok(&["tag", "hello-world", "hw:2"]);
    let (_, err) = b.fails(&["rmi", &hw[7..19]]);
    assert!(err.contains(&format!("conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories", &hw[7..19])), "{err}");
    let out = b.ok(&["rmi", "-f", &hw[7..19]]);
    let out = lines(&out);
    assert!(
        out.contains(&"Untagged: hello-world:latest") && out.contains(&"Untagged: hw:2"),
        "{out:?}"
    );
    assert!(out.contains(&format!("Deleted: {hw}").as_str()), "{out:?}");

    // The last tag of an unused image: untagged and deleted, layers too.
    let out = b.ok(&["rmi", "busybox"]);
    let out = lines(&out);
    assert_eq!(out[0], "Untagged: busybox:latest");
    assert_eq!(out[1], format!("Deleted: {id}"));
    assert!(
        out.len() >= 3 && out[2].starts_with("Deleted: sha256:"),
        "the layer is deleted too: {out:?}"
    );
    b.ok(&["rmi", "hello-wasm"]);
    assert_eq!(b.ok(&["images", "-q"]), "");
    // No image: run pulls it first, from Berth's own registry (the default mirror).
    let o = b.docker(&["run", "--rm", "busybox", "true"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && err.contains("Unable to find image 'busybox:latest' locally"),
        "{err}"
    );
}

#[test]
fn history_rows() {
    let b = Berth::start();
    let out = b.ok(&["history", "busybox"]);
    let rows = lines(&out);
    let header: Vec<&str> = rows[0].split_whitespace().collect();
    assert_eq!(
        header,
        ["IMAGE", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"]
    );
    assert_eq!(rows.len(), 3, "a row per history entry: {out}");
    let id = image_id(&b, "busybox");
    assert!(
        rows[1].starts_with(&id[7..19]),
        "the newest row carries the image id: {out}"
    );
    assert!(rows[2].starts_with("<missing>"), "{out}");
    let full = b.ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.ID}}|{{.CreatedBy}}|{{.Size}}",
        "busybox",
    ]);
    let full = lines(&full);
    assert_eq!(full[0], format!("{id}|/bin/sh -c #(nop)  CMD [\"sh\"]|0B"));
    assert!(
        full[1].starts_with("<missing>|/bin/sh -c #(nop) ADD file:busybox-static"),
        "{full:?}"
    );
    assert!(
        !full[1].ends_with("|0B"),
        "the layer row has a size: {full:?}"
    );
    let (_, err) = b.fails(&["history", "nosuch"]);
    assert!(err.contains("No such image: nosuch"), "{err}");
}

#[test]
fn save_rmi_load_round_trip_then_run() {
    let b = Berth::start();
    let id = image_id(&b, "busybox");
    let file = b.root.with_file_name("busybox.tar");
    b.ok(&["save", "-o", file.to_str().unwrap(), "busybox"]);
    let listing = std::process::Command::new("/bin/busybox")
        .args(["tar", "tf"])
        .arg(&file)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout).to_string();
    for entry in [
        "manifest.json",
        "index.json",
        "oci-layout",
        "repositories",
        &format!("blobs/sha256/{}", &id[7..]),
    ] {
        assert!(
            listing.lines().any(|l| l == entry),
            "{entry} missing from the archive:\n{listing}"
        );
    }
    let (_, err) = b.fails(&["save", "nosuch"]);
    assert!(err.contains("No such image: nosuch"), "{err}");

    b.ok(&["rmi", "busybox"]);
    assert_eq!(
        b.ok(&["load", "-i", file.to_str().unwrap()]),
        "Loaded image: busybox:latest"
    );
    assert_eq!(image_id(&b, "busybox"), id, "same bytes, same id");
    assert_eq!(
        b.ok(&["run", "--rm", "busybox", "echo", "loaded and running"]),
        "loaded and running"
    );

    // From stdin, onto an existing tag: nothing to rename, same image.
    let (ok, out, err) = with_stdin(&b, &["load"], &file);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "Loaded image: busybox:latest");

    // `docker save` to stdout, several names, one image under two tags.
    b.ok(&["tag", "busybox", "again:1"]);
    let o = b.docker(&["save", "busybox", "again:1"]);
    assert!(o.status.success());
    let two = b.root.with_file_name("two.tar");
    fs::write(&two, &o.stdout).unwrap();
    b.ok(&["rmi", "busybox", "again:1"]);
    let out = b.ok(&["load", "-q", "-i", two.to_str().unwrap()]);
    let mut got = lines(&out);
    got.sort();
    assert_eq!(
        got,
        ["Loaded image: again:1", "Loaded image: busybox:latest"]
    );
}

#[test]
fn load_refuses_garbage_and_changes_nothing() {
    let b = Berth::start();
    let before = b.ok(&["images", "-a", "-q"]);
    let garbage = b.root.with_file_name("garbage.tar");
    fs::write(&garbage, "this is not a tar archive at all\n".repeat(100)).unwrap();
    let (code, err) = b.fails(&["load", "-i", garbage.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("invalid image archive"), "{err}");
    // A real tar that is no image archive.
    let not_image = b.root.with_file_name("plain.tar");
    let st = std::process::Command::new("/bin/busybox")
        .args(["tar", "cf"])
        .arg(&not_image)
        .args(["-C", "/etc", "hostname"])
        .status()
        .unwrap();
    assert!(st.success());
    let (_, err) = b.fails(&["load", "-i", not_image.to_str().unwrap()]);
    assert!(
        err.contains("neither manifest.json nor index.json"),
        "{err}"
    );
    assert_eq!(b.ok(&["images", "-a", "-q"]), before);
}

#[test]
fn import_with_changes_then_run() {
    let b = Berth::start();
    let tar = rootfs_tar(&b);
    let id = b.ok(&[
        "import",
        "-c",
        r#"CMD ["sh", "-c", "echo imported $X; cat /hello.txt"]"#,
        "-c",
        "ENV X=yes",
        "-c",
        "WORKDIR /bin",
        "-m",
        "made by a test",
        tar.to_str().unwrap(),
        "myimp:1",
    ]);
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    assert_eq!(image_id(&b, "myimp:1"), id);
    assert_eq!(
        b.ok(&["run", "--rm", "myimp:1"]),
        "imported yes\nfrom the imported rootfs"
    );
    assert_eq!(b.ok(&["run", "--rm", "myimp:1", "sh", "-c", "pwd"]), "/bin");
    assert_eq!(
        b.ok(&["image", "inspect", "-f", "{{.Comment}}", "myimp:1"]),
        "made by a test"
    );
    let h = b.ok(&["history", "--format", "{{.ID}} {{.Comment}}", "myimp:1"]);
    assert_eq!(h, format!("{} made by a test", &id[7..19]));

    // From stdin, no message: Docker's default comment.
    let (ok, out, err) = with_stdin(&b, &["import", "-", "fromstdin"], &tar);
    assert!(ok, "{err}");
    assert!(out.trim().starts_with("sha256:"), "{out}");
    assert_eq!(
        b.ok(&["history", "--format", "{{.Comment}}", "fromstdin"]),
        "Imported from -"
    );

    let (_, err) = b.fails(&["import", "-c", "RUN echo no", tar.to_str().unwrap()]);
    assert!(err.contains("RUN is not a valid change command"), "{err}");
    let garbage = b.root.with_file_name("garbage");
    fs::write(&garbage, "not a tar").unwrap();
    let (_, err) = b.fails(&["import", garbage.to_str().unwrap(), "bad:1"]);
    assert!(err.contains("not a valid tar archive"), "{err}");
    let (_, err) = b.fails(&["image", "inspect", "bad:1"]);
    assert!(err.contains("No such image"), "{err}");
}

#[test]
fn image_prune_dangling_and_all() {
    let b = Berth::start();
    let out = b.ok(&["image", "prune", "-f"]);
    assert_eq!(out, "Total reclaimed space: 0B");
    let tar = rootfs_tar(&b);
    let id = b.ok(&["import", tar.to_str().unwrap()]);
    let out = b.ok(&["image", "prune", "-f"]);
    assert!(out.starts_with("Deleted Images:\n"), "{out}");
    assert!(out.contains(&format!("deleted: {id}")), "{out}");
    assert!(
        out.contains("Total reclaimed space: ") && !out.ends_with(" 0B"),
        "{out}"
    );
    assert!(!b.ok(&["images", "-a", "-q"]).contains(&id[7..19]));

    // -a: everything no container uses; busybox stays for its container.
    b.ok(&["create", "busybox"]);
    let out = b.ok(&["image", "prune", "-a", "-f"]);
    assert!(out.contains("untagged: hello-world:latest"), "{out}");
    assert_eq!(b.ok(&["images", "--format", "{{.Repository}}"]), "busybox");
}

/// `--platform` on `image inspect`, `history`, `save` and `load` (a JSON platform on
/// the API): an image here has one platform, so another one is Docker's NotFound.
#[test]
fn image_commands_check_the_platform_they_are_given() {
    let b = Berth::start();
    let host = format!(
        "linux/{}",
        if cfg!(target_arch = "aarch64") {
            "arm64"
        } else {
            "amd64"
        }
    );
    let other = if host.ends_with("amd64") {
        "linux/arm64"
    } else {
        "linux/amd64"
    };
    let mismatch = format!("image with reference busybox was found but does not match the specified platform: wanted {other}, actual: {host}");
    let tar = b.root.with_file_name("platform.tar");
    let tar = tar.to_str().unwrap();
    for args in [
        vec!["image", "inspect", "--platform", other, "busybox"],
        vec!["history", "--platform", other, "busybox"],
        vec!["save", "--platform", other, "-o", tar, "busybox"],
    ] {
        let (_, err) = b.fails(&args);
        assert!(err.contains(&mismatch), "{args:?}: {err}");
    }
    assert_eq!(
        b.ok(&[
            "image",
            "inspect",
            "--platform",
            &host,
            "-f",
            "{{.Os}}",
            "busybox"
        ]),
        "linux"
    );
    b.ok(&["history", "--platform", &host, "busybox"]);
    b.ok(&["save", "--platform", &host, "-o", tar, "busybox"]);
    assert!(b
        .ok(&["load", "--platform", &host, "-i", tar])
        .contains("Loaded image: busybox:latest"));
    let (_, err) = b.fails(&["load", "--platform", other, "-i", tar]);
    assert!(
        err.contains("does not match the specified platform"),
        "{err}"
    );
    let (code, body) = berth_tests::api_call(
        &b.sock,
        "1.50",
        "GET",
        "/images/busybox/json?platform=notjson",
        None,
    );
    assert_eq!(code, 400, "{body}");
}
