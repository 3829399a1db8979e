//! Real images come through whole: image configs written by other tools (`null`
//! lists and maps, missing sections, unknown fields) and layer tars carrying what
//! Docker's and other producers' tars carry (file capabilities and other extended
//! attributes in PAX records, set-id and sticky bits, hard links, device nodes and
//! FIFOs, long names, sparse files, whiteouts and opaque directories), through
//! `load`, pull, build, commit, `save` and push, and compared with Debian's dockerd.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use berth_tests::dockerd::Dockerd;
use berth_tests::{require, static_fixture, Berth};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A header for a hand-made entry: root-owned, mtime 1.
fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1);
    h
}

/// A PAX extended header (records `key=value`) for the entry appended next, as Go's
/// archive/tar (Docker) writes them; the tar crate has no writer for these.
fn pax(b: &mut tar::Builder<Vec<u8>>, records: &[(&str, &[u8])]) {
    let mut data = Vec::new();
    for (k, v) in records {
        let rest = 1 + k.len() + 1 + v.len() + 1;
        let mut len = rest + 1;
        while len != rest + len.to_string().len() {
            len = rest + len.to_string().len();
        }
        data.extend_from_slice(format!("{len} {k}=").as_bytes());
        data.extend_from_slice(v);
        data.push(b'\n');
    }
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::XHeader);
    h.set_path("PaxHeaders.0/x").unwrap();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append(&h, &data[..]).unwrap();
}

fn file(b: &mut tar::Builder<Vec<u8>>, path: &str, mode: u32, data: &[u8]) {
    b.append_data(&mut header(tar::EntryType::Regular, data.len() as u64, mode), path, data)
        .unwrap();
}

/// The base layer of the hand-made images: the host's static busybox as /bin/busybox
/// and /bin/sh.
fn busybox_layer() -> Vec<u8> {
    require("/bin/busybox", "apt-get install busybox-static");
    let mut b = tar::Builder::new(Vec::new());
    b.append_data(&mut header(tar::EntryType::Directory, 0, 0o755), "bin/", std::io::empty())
        .unwrap();
    file(&mut b, "bin/busybox", 0o755, &fs::read("/bin/busybox").unwrap());
    b.append_link(&mut header(tar::EntryType::Symlink, 0, 0o777), "bin/sh", "busybox")
        .unwrap();
    b.into_inner().unwrap()
}

/// A docker-archive (`docker save`'s format) of images: (tag, config, layers).
fn docker_archive(images: &[(&str, &[u8], Vec<Vec<u8>>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut manifest = Vec::new();
    let mut written = std::collections::BTreeSet::new();
    for (tag, config, layers) in images {
        let mut blob = |bytes: &[u8]| {
            let path = format!("blobs/sha256/{}", &sha256(bytes)[7..]);
            if written.insert(path.clone()) {
                file(&mut b, &path, 0o644, bytes);
            }
            path
        };
        let config_path = blob(config);
        let layer_paths: Vec<String> = layers.iter().map(|l| blob(l)).collect();
        manifest.push(json!({"Config": config_path, "RepoTags": [tag], "Layers": layer_paths}));
    }
    file(&mut b, "manifest.json", 0o644, &serde_json::to_vec(&manifest).unwrap());
    b.into_inner().unwrap()
}

/// `docker load` of these bytes on stdin.
fn load(b: &Berth, archive: &[u8]) -> String {
    let mut child = b
        .cmd(&["load"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(archive).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "docker load failed: {}{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
        b.server_log()
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn diff_ids(layers: &[Vec<u8>]) -> Vec<String> {
    layers.iter().map(|l| sha256(l)).collect()
}

/// The files of a tar by path (the tar crate reads every kind of header).
fn tar_files(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut ar = tar::Archive::new(bytes);
    let mut out = BTreeMap::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let p = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.insert(p, data);
    }
    out
}

/// `docker save NAME` as bytes.
fn save(cmd: Command) -> Vec<u8> {
    let mut cmd = cmd;
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "docker save: {}", String::from_utf8_lossy(&o.stderr));
    o.stdout
}

/// The layers of a saved image, bottom first.
fn saved_layers(archive: &[u8]) -> Vec<Vec<u8>> {
    let files = tar_files(archive);
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    manifest[0]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| files[p.as_str().unwrap()].clone())
        .collect()
}

fn curl(args: &[&str]) -> String {
    require("curl", "apt-get install curl");
    let o = Command::new("curl").args(["-sSf"]).args(args).output().unwrap();
    assert!(
        o.status.success(),
        "curl {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Pushes a blob to a registry with curl (monolithic upload); returns its digest.
fn push_blob(reg: &str, repo: &str, bytes: &[u8], dir: &Path) -> String {
    let digest = sha256(bytes);
    let f = dir.join(&digest[7..]);
    fs::write(&f, bytes).unwrap();
    curl(&[
        "-X",
        "POST",
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        &format!("@{}", f.display()),
        &format!("http://{reg}/v2/{repo}/blobs/uploads/?digest={digest}"),
    ]);
    digest
}

/// `null` for every list and map, unknown fields, and a config with no `config`,
/// `history` or `created` at all: they load, inspect, show their history, run and
/// are built on; the config blob is passed through byte for byte (the image id is
/// its digest, `save` writes it unchanged); pushed by hand to Berth's registry they
/// pull and run the same.
#[test]
fn configs_from_other_tools_load_pull_run_and_build() {
    let b = Berth::start();
    let base = busybox_layer();
    let nulls = json!({
        "architecture": "amd64", "os": "linux", "created": null, "author": null,
        "config": {
            "User": null, "Env": null, "Cmd": ["/bin/busybox", "echo", "nulls ok"],
            "Entrypoint": null, "Volumes": null, "ExposedPorts": null, "Labels": null,
            "OnBuild": null, "Shell": null, "WorkingDir": null, "Healthcheck": null
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids(std::slice::from_ref(&base))},
        "history": [{"created": null, "created_by": null, "comment": null, "empty_layer": null}],
        "x-some-tool": {"kept": [1, 2, 3]}
    });
    // Spaces and key order as another tool wrote them: the digest is of these bytes.
    let nulls = serde_json::to_string_pretty(&nulls).unwrap().into_bytes();
    let bare = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
        sha256(&base)
    )
    .into_bytes();
    load(
        &b,
        &docker_archive(&[
            ("nulls:1", &nulls, vec![base.clone()]),
            ("bare:1", &bare, vec![base.clone()]),
        ]),
    );
    assert_eq!(b.inspect("nulls:1", "{{.Id}}"), sha256(&nulls));
    assert_eq!(b.inspect("bare:1", "{{.Id}}"), sha256(&bare));
    assert_eq!(b.ok(&["run", "--rm", "nulls:1"]), "nulls ok");
    assert_eq!(b.ok(&["run", "--rm", "-e", "A=b", "bare:1", "/bin/busybox", "sh", "-c", "echo bare $A"]), "bare b");
    // No command at all: Docker's error, not a crash.
    let (_, err) = b.fails(&["run", "--rm", "bare:1"]);
    assert!(err.to_lowercase().contains("no command specified"), "{err}");
    b.ok(&["history", "nulls:1"]);
    b.ok(&["history", "bare:1"]);
    b.ok(&["image", "inspect", "nulls:1", "bare:1"]);
    assert!(b.ok(&["images", "--format", "{{.Repository}}"]).contains("bare"));

    // save passes the config through byte for byte.
    let saved = tar_files(&save(b.cmd(&["save", "nulls:1"])));
    assert_eq!(saved[&format!("blobs/sha256/{}", &sha256(&nulls)[7..])], nulls);

    // Built on: ENV onto a null Env, ONBUILD onto a null OnBuild.
    let ctx = b.root.with_file_name("ctx-nulls");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("Dockerfile"), "FROM nulls:1\nENV A=1\nLABEL l=v\nONBUILD RUN true\nRUN [\"/bin/busybox\", \"true\"]\n").unwrap();
    let o = b.cmd(&["build", "-q", "-t", "child", ctx.to_str().unwrap()]).env("DOCKER_BUILDKIT", "0").output().unwrap();
    assert!(o.status.success(), "{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert_eq!(b.inspect("child", "{{json .Config.OnBuild}} {{json .Config.Env}} {{.Config.Labels.l}}"), r#"["RUN true"] ["A=1"] v"#);
    assert_eq!(b.ok(&["run", "--rm", "child"]), "nulls ok");

    // Pushed by hand (curl) to Berth's registry, with each config.
    let reg = b.registry_addr();
    let dir = tempfile::tempdir().unwrap();
    for (repo, config, out) in [("hand/nulls", &nulls, "nulls ok"), ("hand/bare", &bare, "")] {
        let layer = push_blob(&reg, repo, &base, dir.path());
        let cfg = push_blob(&reg, repo, config, dir.path());
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": config.len(), "digest": cfg},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar", "size": base.len(), "digest": layer}],
        });
        curl(&[
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/vnd.docker.distribution.manifest.v2+json",
            "--data-binary",
            &manifest.to_string(),
            &format!("http://{reg}/v2/{repo}/manifests/1"),
        ]);
        b.ok(&["rmi", "-f", &format!("{}:1", repo.trim_start_matches("hand/"))]);
        let image = format!("{reg}/{repo}:1");
        b.ok(&["pull", &image]);
        assert_eq!(b.inspect(&image, "{{.Id}}"), cfg);
        if out.is_empty() {
            assert_eq!(b.ok(&["run", "--rm", &image, "/bin/busybox", "echo", "pulled"]), "pulled");
        } else {
            assert_eq!(b.ok(&["run", "--rm", &image]), out);
        }
    }
    let _ = fs::remove_dir_all(&ctx);
}
