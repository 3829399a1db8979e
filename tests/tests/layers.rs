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
    b.append_data(
        &mut header(tar::EntryType::Regular, data.len() as u64, mode),
        path,
        data,
    )
    .unwrap();
}

/// The base layer of the hand-made images: the host's static busybox as /bin/busybox
/// and /bin/sh.
fn busybox_layer() -> Vec<u8> {
    require("/bin/busybox", "apt-get install busybox-static");
    let mut b = tar::Builder::new(Vec::new());
    b.append_data(
        &mut header(tar::EntryType::Directory, 0, 0o755),
        "bin/",
        std::io::empty(),
    )
    .unwrap();
    file(
        &mut b,
        "bin/busybox",
        0o755,
        &fs::read("/bin/busybox").unwrap(),
    );
    b.append_link(
        &mut header(tar::EntryType::Symlink, 0, 0o777),
        "bin/sh",
        "busybox",
    )
    .unwrap();
    b.into_inner().unwrap()
}

/// A docker-archive (`docker save`'s format) of images: (tag, config, layers).
/// (tag, config bytes, layer tars) of one image in an archive.
type ArchiveImage<'a> = (&'a str, &'a [u8], Vec<Vec<u8>>);

fn docker_archive(images: &[ArchiveImage]) -> Vec<u8> {
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
    file(
        &mut b,
        "manifest.json",
        0o644,
        &serde_json::to_vec(&manifest).unwrap(),
    );
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
    assert!(
        o.status.success(),
        "docker save: {}",
        String::from_utf8_lossy(&o.stderr)
    );
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
    let o = Command::new("curl")
        .args(["-sSf"])
        .args(args)
        .output()
        .unwrap();
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
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "-e",
            "A=b",
            "bare:1",
            "/bin/busybox",
            "sh",
            "-c",
            "echo bare $A"
        ]),
        "bare b"
    );
    // No command at all: Docker's error, not a crash.
    let (_, err) = b.fails(&["run", "--rm", "bare:1"]);
    assert!(err.to_lowercase().contains("no command specified"), "{err}");
    b.ok(&["history", "nulls:1"]);
    b.ok(&["history", "bare:1"]);
    b.ok(&["image", "inspect", "nulls:1", "bare:1"]);
    assert!(b
        .ok(&["images", "--format", "{{.Repository}}"])
        .contains("bare"));

    // save passes the config through byte for byte.
    let saved = tar_files(&save(b.cmd(&["save", "nulls:1"])));
    assert_eq!(
        saved[&format!("blobs/sha256/{}", &sha256(&nulls)[7..])],
        nulls
    );

    // Built on: ENV onto a null Env, ONBUILD onto a null OnBuild.
    let ctx = b.root.with_file_name("ctx-nulls");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "FROM nulls:1\nENV A=1\nLABEL l=v\nONBUILD RUN true\nRUN [\"/bin/busybox\", \"true\"]\n",
    )
    .unwrap();
    let o = b
        .cmd(&["build", "-q", "-t", "child", ctx.to_str().unwrap()])
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        b.inspect(
            "child",
            "{{json .Config.OnBuild}} {{json .Config.Env}} {{.Config.Labels.l}}"
        ),
        r#"["RUN true"] ["A=1"] v"#
    );
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
        b.ok(&[
            "rmi",
            "-f",
            &format!("{}:1", repo.trim_start_matches("hand/")),
        ]);
        let image = format!("{reg}/{repo}:1");
        b.ok(&["pull", &image]);
        assert_eq!(b.inspect(&image, "{{.Id}}"), cfg);
        if out.is_empty() {
            assert_eq!(
                b.ok(&["run", "--rm", &image, "/bin/busybox", "echo", "pulled"]),
                "pulled"
            );
        } else {
            assert_eq!(b.ok(&["run", "--rm", &image]), out);
        }
    }
    let _ = fs::remove_dir_all(&ctx);
}

/// Runs `sh -c SCRIPT` in IMAGE on Berth; returns stdout.
fn sh(b: &Berth, image: &str, script: &str) -> String {
    b.ok(&["run", "--rm", image, "/bin/busybox", "sh", "-c", script])
}

/// A layer as Docker and OCI producers write them, on top of busybox, loaded with
/// `docker load`: what its tar carries is what the container sees. Then a container's
/// changes of the same kinds, committed, come out in the new layer as Docker writes
/// them (`.wh.` entries, hard links, nodes; no overlayfs attributes).
#[test]
fn layer_tars_keep_modes_links_nodes_long_names_sparse_files_and_whiteouts() {
    let b = Berth::start();
    let base = {
        let mut t = tar::Builder::new(Vec::new());
        t.append_data(
            &mut header(tar::EntryType::Directory, 0, 0o755),
            "bin/",
            std::io::empty(),
        )
        .unwrap();
        file(
            &mut t,
            "bin/busybox",
            0o755,
            &fs::read("/bin/busybox").unwrap(),
        );
        t.append_link(
            &mut header(tar::EntryType::Symlink, 0, 0o777),
            "bin/sh",
            "busybox",
        )
        .unwrap();
        file(&mut t, "etc/old", 0o644, b"old");
        file(&mut t, "opq/a", 0o644, b"a");
        file(&mut t, "opq/sub/b", 0o644, b"b");
        t.into_inner().unwrap()
    };
    let long_gnu = format!("{}/gnu-long-file", "g".repeat(150));
    let long_pax = format!("{}/pax-long-file", "p".repeat(150));
    let long_target = format!("/{}", "t".repeat(180));
    let top = {
        let mut t = tar::Builder::new(Vec::new());
        pax(&mut t, &[("SCHILY.xattr.user.note", b"kept")]);
        file(&mut t, "notes", 0o644, b"notes");
        t.append_link(
            &mut header(tar::EntryType::Link, 0, 0o644),
            "notes-link",
            "notes",
        )
        .unwrap();
        file(&mut t, "su", 0o4755, b"su");
        file(&mut t, "sgid", 0o2755, b"sg");
        t.append_data(
            &mut header(tar::EntryType::Directory, 0, 0o1777),
            "sticky/",
            std::io::empty(),
        )
        .unwrap();
        for (name, kind, major, minor, mode) in [
            ("nodes/null", tar::EntryType::Char, 1, 3, 0o666),
            ("nodes/loop", tar::EntryType::Block, 7, 0, 0o660),
            ("nodes/fifo", tar::EntryType::Fifo, 0, 0, 0o600),
        ] {
            let mut h = header(kind, 0, mode);
            h.set_device_major(major).unwrap();
            h.set_device_minor(minor).unwrap();
            t.append_data(&mut h, name, std::io::empty()).unwrap();
        }
        // GNU long name (the tar crate writes one for a long path).
        file(&mut t, &long_gnu, 0o644, b"gnu");
        // PAX `path`, as Go's archive/tar writes a long name.
        pax(&mut t, &[("path", long_pax.as_bytes())]);
        let mut h = header(tar::EntryType::Regular, 3, 0o644);
        h.as_gnu_mut().unwrap().name[..9].copy_from_slice(b"truncated");
        h.set_cksum();
        t.append(&h, &b"pax"[..]).unwrap();
        t.append_link(
            &mut header(tar::EntryType::Symlink, 0, 0o777),
            "longlink",
            &long_target,
        )
        .unwrap();
        // A GNU sparse entry: 8 MiB, data only at its end.
        let dir = tempfile::tempdir().unwrap();
        let sparse = dir.path().join("sparse");
        let f = fs::File::create(&sparse).unwrap();
        f.set_len(8 << 20).unwrap();
        std::os::unix::fs::FileExt::write_at(&f, b"end", (8 << 20) - 3).unwrap();
        drop(f);
        t.sparse(true);
        t.append_path_with_name(&sparse, "sparse").unwrap();
        // Whiteout and opaque directory, AUFS style.
        file(&mut t, "etc/.wh.old", 0o600, b"");
        t.append_data(
            &mut header(tar::EntryType::Directory, 0, 0o755),
            "opq/",
            std::io::empty(),
        )
        .unwrap();
        file(&mut t, "opq/.wh..wh..opq", 0o600, b"");
        file(&mut t, "opq/new", 0o644, b"new");
        t.into_inner().unwrap()
    };
    {
        let mut ar = tar::Archive::new(&top[..]);
        let sparse_kind = ar
            .entries()
            .unwrap()
            .map(|e| e.unwrap())
            .find(|e| e.path().unwrap().to_str() == Some("sparse"))
            .unwrap()
            .header()
            .entry_type();
        assert_eq!(
            sparse_kind,
            tar::EntryType::GNUSparse,
            "the test's sparse entry is written sparse"
        );
    }
    let layers = vec![base, top];
    let config = json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids(&layers)},
    })
    .to_string();
    load(
        &b,
        &docker_archive(&[("made:1", config.as_bytes(), layers)]),
    );
    let script = format!(
        "b=/bin/busybox; \
         $b ls /etc; echo opq: $($b ls /opq); \
         $b stat -c '%n %a' /su /sgid /sticky; \
         [ $($b stat -c %i /notes) = $($b stat -c %i /notes-link) ] && echo linked $($b stat -c %h /notes); \
         $b stat -c '%n %F %t,%T %a' /nodes/null /nodes/loop /nodes/fifo; \
         $b cat /{long_gnu} /{long_pax}; echo; \
         [ $($b readlink /longlink) = {long_target} ] && echo longlink; \
         $b stat -c '%n %s' /sparse; $b tail -c 3 /sparse; echo; \
         $b tr -d '\\000' < /sparse | $b wc -c"
    );
    let out = sh(&b, "made:1", &script);
    let want = "hostname\nhosts\nresolv.conf\nopq: new\n/su 4755\n/sgid 2755\n/sticky 1777\nlinked 2\n\
                /nodes/null character special file 1,3 666\n/nodes/loop block special file 7,0 660\n\
                /nodes/fifo fifo 0,0 600\ngnupax\nlonglink\n/sparse 8388608\nend\n3";
    assert_eq!(out.trim(), want, "{out}");
    assert!(!out.contains("old"), "the whiteout hides /etc/old: {out}");

    // The user.note attribute is on the unpacked file (busybox has no getfattr).
    let notes: Vec<PathBuf> = fs::read_dir(b.root.join("layers"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("notes"))
        .filter(|p| p.exists())
        .collect();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(
        getxattr(&notes[0], "user.note").as_deref(),
        Some(&b"kept"[..])
    );

    // A container makes the same kinds of changes; commit writes them as Docker does.
    let changes = format!(
        "b=/bin/busybox; $b rm /notes-link; $b ln /bin/busybox /bin/hl; $b mkfifo /f2; \
         $b mknod /n2 c 1 5; $b chmod 4700 /sgid; $b rm -rf /opq; $b mkdir /opq; echo y > /opq/y; \
         $b mkdir -p /{long_gnu}x; $b ln -s {long_target}x /longlink2"
    );
    b.ok(&[
        "run",
        "--name",
        "changer",
        "made:1",
        "/bin/busybox",
        "sh",
        "-c",
        &changes,
    ]);
    b.ok(&["commit", "changer", "committed:1"]);
    let top = saved_layers(&save(b.cmd(&["save", "committed:1"])))
        .pop()
        .unwrap();
    let mut kinds = BTreeMap::new();
    let mut ar = tar::Archive::new(&top[..]);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let p = e
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches('/')
            .to_string();
        if let Some(exts) = e.pax_extensions().unwrap() {
            for x in exts {
                let k = x.unwrap().key().unwrap().to_string();
                assert!(!k.contains("overlay"), "{p}: {k}");
            }
        }
        let link = e
            .link_name()
            .unwrap()
            .map(|l| l.to_string_lossy().into_owned());
        let h = e.header();
        let kind = match h.entry_type() {
            tar::EntryType::Link => format!("link {}", link.unwrap()),
            tar::EntryType::Symlink => format!("symlink {}", link.unwrap().len()),
            tar::EntryType::Char => format!(
                "char {},{}",
                h.device_major().unwrap().unwrap(),
                h.device_minor().unwrap().unwrap()
            ),
            tar::EntryType::Fifo => "fifo".into(),
            tar::EntryType::Directory => "dir".into(),
            _ => format!("file {:o}", h.mode().unwrap() & 0o7777),
        };
        kinds.insert(p, kind);
    }
    let get = |p: &str| {
        kinds
            .get(p)
            .cloned()
            .unwrap_or_else(|| panic!("{p} not in the layer: {kinds:?}"))
    };
    assert_eq!(get(".wh.notes-link"), "file 600");
    assert_eq!(get("bin/busybox"), "file 755", "copied up by the link");
    assert_eq!(get("bin/hl"), "link bin/busybox");
    assert_eq!(get("f2"), "fifo");
    assert_eq!(get("n2"), "char 1,5");
    assert_eq!(get("sgid"), "file 4700");
    assert_eq!(get("opq/.wh..wh..opq"), "file 600");
    assert_eq!(get(&format!("{long_gnu}x")), "dir");
    assert_eq!(
        get("longlink2"),
        format!("symlink {}", long_target.len() + 1)
    );
    // And it runs as the container left it.
    let out = sh(&b, "committed:1", "b=/bin/busybox; $b ls /opq; $b stat -c '%F %t,%T' /n2 /f2; $b ls /notes-link 2>&1 | $b wc -l; [ $($b stat -c %i /bin/hl) = $($b stat -c %i /bin/busybox) ] && echo linked");
    assert_eq!(
        out.trim(),
        "y\ncharacter special file 1,5\nfifo 0,0\n1\nlinked",
        "{out}"
    );
}

fn getxattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: NUL-terminated strings; buf is valid for its length.
    let rc = unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (rc >= 0).then(|| buf[..rc as usize].to_vec())
}

/// cap_net_raw alone, as CapEff shows it.
const NET_RAW: &str = "capeff=0000000000002000";

/// A build context: the capeff probe given cap_net_raw+ep by a RUN step (the static
/// setcap fixture, in the image), a plain copy for contrast, and one given the
/// capability on the host before the build (the CLI sends it in the context).
fn caps_context(name: &str, beside: &Path) -> PathBuf {
    let ctx = beside.with_file_name(format!("ctx-{name}"));
    let _ = fs::remove_dir_all(&ctx);
    fs::create_dir_all(&ctx).unwrap();
    let capeff = static_fixture("capeff");
    let setcap = static_fixture("setcap");
    for (from, to) in [
        (&capeff, "capeff"),
        (&setcap, "setcap"),
        (&capeff, "capeff-host"),
    ] {
        fs::copy(from, ctx.join(to)).unwrap();
    }
    let st = Command::new(&setcap)
        .arg(ctx.join("capeff-host"))
        .status()
        .unwrap();
    assert!(st.success(), "setcap on the host");
    fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nCOPY capeff setcap capeff-host /\nCOPY capeff /plain/capeff\n\
         RUN [\"/setcap\", \"/capeff\"]\nUSER 1000\nENTRYPOINT [\"/capeff\"]\n",
    )
    .unwrap();
    ctx
}

/// Asserts what the probe printed: the capability, in effect, for uid 1000.
fn assert_raw(out: &str, what: &str) {
    assert!(
        out.contains(NET_RAW) && out.contains("raw=ok") && out.contains("uid=1000"),
        "{what}: {out}"
    );
}

fn run_caps(b: &Berth, image: &str, entrypoint: &str) -> String {
    b.ok(&[
        "run",
        "--rm",
        "-u",
        "1000",
        "--entrypoint",
        entrypoint,
        image,
    ])
}

/// A file capability set in a build step keeps working through everything that
/// moves layers: the built image, push and pull, save and load, commit; and a
/// capability on a context file survives COPY. A copy without it has none.
#[test]
fn file_capabilities_work_through_build_push_pull_save_load_and_commit() {
    let b = Berth::start();
    let ctx = caps_context("caps", &b.root);
    let o = b
        .cmd(&["build", "-q", "-t", "caps:1", ctx.to_str().unwrap()])
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_raw(&b.ok(&["run", "--rm", "caps:1"]), "built");
    assert_raw(
        &run_caps(&b, "caps:1", "/capeff-host"),
        "COPY of a context file with the capability",
    );
    let plain = run_caps(&b, "caps:1", "/plain/capeff");
    assert!(
        plain.contains("capeff=0000000000000000") && plain.contains("raw=EPERM"),
        "no capability: {plain}"
    );

    let reg = b.registry_addr();
    let remote = format!("{reg}/caps/probe:1");
    b.ok(&["tag", "caps:1", &remote]);
    b.ok(&["push", &remote]);
    b.ok(&["rmi", &remote, "caps:1"]);
    b.ok(&["pull", &remote]);
    assert_raw(&run_caps(&b, &remote, "/capeff"), "pushed and pulled");

    let saved = save(b.cmd(&["save", &remote]));
    b.ok(&["rmi", &remote]);
    load(&b, &saved);
    assert_raw(&run_caps(&b, &remote, "/capeff"), "saved and loaded");

    b.ok(&[
        "run",
        "--name",
        "setter",
        "-u",
        "0",
        "--entrypoint",
        "/setcap",
        &remote,
        "/plain/capeff",
    ]);
    b.ok(&["commit", "setter", "committed:1"]);
    assert_raw(&run_caps(&b, "committed:1", "/plain/capeff"), "committed");
    // In the committed layer as Docker writes it: a v2 value in a PAX record.
    let top = saved_layers(&save(b.cmd(&["save", "committed:1"])))
        .pop()
        .unwrap();
    let mut ar = tar::Archive::new(&top[..]);
    let mut found = None;
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_str() == Some("plain/capeff") {
            for x in e.pax_extensions().unwrap().unwrap() {
                let x = x.unwrap();
                if x.key().unwrap() == "SCHILY.xattr.security.capability" {
                    found = Some(x.value_bytes().to_vec());
                }
            }
        }
    }
    let v = found.expect("plain/capeff carries security.capability");
    assert_eq!((v.len(), v[3], v[5]), (20, 2, 0x20), "{v:?}");
    let _ = fs::remove_dir_all(&ctx);
}

/// The same build on Debian's dockerd gives the same working capability; its
/// `docker save` loads into Berth and Berth's into dockerd, and the capability
/// works on both sides.
#[test]
fn file_capabilities_cross_between_berth_and_debian_dockerd() {
    let b = Berth::start();
    let dd = Dockerd::start(&[]);
    let busybox = save(b.cmd(&["save", "busybox"]));
    let mut child = dd
        .cmd(&["load"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&busybox).unwrap();
    assert!(child.wait().unwrap().success(), "dockerd loads busybox");
    let ctx = caps_context("caps-dd", &b.root);
    let o = dd
        .cmd(&[
            "build",
            "-q",
            "--network",
            "none",
            "-t",
            "capsd:1",
            ctx.to_str().unwrap(),
        ])
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "dockerd build: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let dd_run = |image: &str, entrypoint: &str| {
        dd.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "-u",
            "1000",
            "--entrypoint",
            entrypoint,
            image,
        ])
    };
    assert_raw(&dd_run("capsd:1", "/capeff"), "dockerd's own build");
    // Not compared: dockerd's classic builder drops the context file's capability on
    // COPY (the CLI sends it; Berth keeps it, as BuildKit does).

    // dockerd → Berth.
    load(&b, &save(dd.cmd(&["save", "capsd:1"])));
    assert_raw(
        &run_caps(&b, "capsd:1", "/capeff"),
        "dockerd's image on Berth",
    );

    // Berth → dockerd.
    let o = b
        .cmd(&["build", "-q", "-t", "capsb:1", ctx.to_str().unwrap()])
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let ours = save(b.cmd(&["save", "capsb:1"]));
    let mut child = dd
        .cmd(&["load"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&ours).unwrap();
    assert!(
        child.wait().unwrap().success(),
        "dockerd loads Berth's save"
    );
    assert_raw(&dd_run("capsb:1", "/capeff"), "Berth's image on dockerd");
    assert_raw(
        &dd_run("capsb:1", "/capeff-host"),
        "Berth's image on dockerd",
    );
    let plain = dd_run("capsb:1", "/plain/capeff");
    assert!(plain.contains("raw=EPERM"), "{plain}");
    let _ = fs::remove_dir_all(&ctx);
}

/// In a lab session, containers run in the session's user namespace over idmapped
/// layers: a capability set by a build step there (the kernel stores it as v3 with
/// the namespace's root; the layer gets v2, as Docker writes it) works for uid 1000,
/// and so does one set in a container and committed.
#[test]
fn file_capabilities_work_in_a_lab_sessions_user_namespace() {
    let lab = berth_tests::lab::Lab::start();
    let id = lab.create_session();
    let ctx = caps_context("caps-lab", &lab.berth.root);
    let docker = |args: &[&str]| {
        let o = lab.session_docker(&id, args);
        assert!(
            o.status.success(),
            "docker {args:?}: {}{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
            lab.berth.server_log()
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert!(
        docker(&["run", "--rm", "busybox", "cat", "/proc/self/uid_map"])
            .split_whitespace()
            .nth(1)
            != Some("0"),
        "the session runs in a user namespace"
    );
    docker(&["build", "-q", "-t", "caps:1", ctx.to_str().unwrap()]);
    assert_raw(
        &docker(&["run", "--rm", "-u", "1000", "caps:1"]),
        "built in the session",
    );
    docker(&[
        "run",
        "--name",
        "setter",
        "-u",
        "0",
        "--entrypoint",
        "/setcap",
        "caps:1",
        "/plain/capeff",
    ]);
    docker(&["commit", "setter", "committed:1"]);
    assert_raw(
        &docker(&[
            "run",
            "--rm",
            "-u",
            "1000",
            "--entrypoint",
            "/plain/capeff",
            "committed:1",
        ]),
        "committed in the session",
    );
    let _ = fs::remove_dir_all(&ctx);
}
