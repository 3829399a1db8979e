//! Berth's registry client against registries we did not write: Debian's
//! docker-registry (distribution 2.8) as the server, skopeo as the other client.
//! pull, push (with mounts and chunked uploads), login with Basic auth, a tampered
//! blob, and `docker run` of an image that is not here yet.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_tests::{require, Berth};

/// A `docker-registry serve` on a free loopback port and a temp dir, killed and
/// removed on drop, even when the test fails.
struct Registry {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry; with `user` (name, password) it requires Basic auth from an
    /// htpasswd file (bcrypt, the only kind distribution accepts).
    fn start(user: Option<(&str, &str)>) -> Registry {
        require(
            "docker-registry",
            "apt-get install docker-registry (Debian's distribution 2.8); tests/run installs it",
        );
        let dir = tempfile::Builder::new()
            .prefix("berth-registry-")
            .tempdir()
            .expect("temp dir");
        // Port 0 picks a free port; the registry binds it right after we let go.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some((name, password)) = user {
            let hash = bcrypt::hash(password, 4).expect("bcrypt");
            let htpasswd = dir.path().join("htpasswd");
            fs::write(&htpasswd, format!("{name}:{hash}\n")).expect("write htpasswd");
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        fs::write(&config_path, config).expect("write registry config");
        let log = fs::File::create(dir.path().join("registry.log")).expect("registry log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry");
        let reg = Registry { child, port, dir };
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                let _ = s.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n");
                let mut r = String::new();
                let _ = s.read_to_string(&mut r);
                if r.starts_with("HTTP/1.") {
                    return reg;
                }
            }
            assert!(
                Instant::now() < end,
                "docker-registry did not come up: {}",
                reg.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `127.0.0.1:PORT`, the registry part of image names.
    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Where distribution keeps a blob's bytes.
    fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn skopeo(args: &[&str]) -> String {
    require("skopeo", "apt-get install skopeo; tests/run installs it");
    let o = Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run skopeo");
    assert!(
        o.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// Puts Berth's busybox into the registry as `repo:tag` with skopeo, from a
/// `docker save` made through Berth.
fn skopeo_put_busybox(b: &Berth, reg: &Registry, repo_tag: &str) {
    let tar = b.root.with_file_name("busybox.tar");
    if !tar.exists() {
        b.ok(&["save", "-o", &tar.display().to_string(), "busybox"]);
    }
    let dest = format!("docker://{}/{repo_tag}", reg.host());
    skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        &format!("docker-archive:{}", tar.display()),
        &dest,
    ]);
}

/// The raw manifest skopeo reads for an image, and its digest.
fn raw_manifest(reference: &str, creds: Option<&str>) -> (serde_json::Value, String) {
    let mut args = vec!["inspect", "--raw", "--tls-verify=false"];
    if let Some(c) = creds {
        args.extend(["--creds", c]);
    }
    let target = format!("docker://{reference}");
    args.push(&target);
    let raw = skopeo(&args);
    let digest = format!("sha256:{}", sha256_hex(raw.as_bytes()));
    (serde_json::from_str(&raw).expect("manifest json"), digest)
}

fn sha256_hex(bytes: &[u8]) -> String {
    // sha256sum from coreutils: no hashing crate needed for a test.
    let mut c = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("sha256sum");
    c.stdin
        .take()
        .expect("stdin")
        .write_all(bytes)
        .expect("write");
    let o = c.wait_with_output().expect("sha256sum");
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string()
}

fn stdout_of(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn nothing_partial(root: &Path) {
    let left: Vec<_> = fs::read_dir(root.join("tmp"))
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        left.is_empty(),
        "partial files left in the store's tmp: {left:?}"
    );
}

#[test]
fn pulls_what_skopeo_pushed_and_runs_it() {
    let reg = Registry::start(None);
    let b = Berth::start();
    skopeo_put_busybox(&b, &reg, "lib/busybox:1");
    let name = format!("{}/lib/busybox:1", reg.host());
    let out = b.ok(&["pull", &name]);
    for want in [
        "1: Pulling from lib/busybox",
        "Pull complete",
        "Digest: sha256:",
        &format!("Status: Downloaded newer image for {name}"),
    ] {
        assert!(out.contains(want), "pull output lacks {want:?}:\n{out}");
    }
    assert_eq!(
        b.ok(&["run", "--rm", &name, "echo", "pulled and running"]),
        "pulled and running"
    );
    // The RepoDigest is the registry's manifest digest, as skopeo sees it.
    let (_, digest) = raw_manifest(&name, None);
    let digests = b.inspect(&name, "{{json .RepoDigests}}");
    assert!(
        digests.contains(&format!("{}/lib/busybox@{digest}", reg.host())),
        "{digests} lacks {digest}"
    );
    assert!(b
        .ok(&["pull", &name])
        .contains(&format!("Status: Image is up to date for {name}")));
    // Another repository with the same layers: they are not downloaded again.
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{name}"),
        &format!("docker://{}/lib/other:1", reg.host()),
    ]);
    let out = b.ok(&["pull", &format!("{}/lib/other:1", reg.host())]);
    assert!(out.contains("Already exists"), "{out}");
    assert!(!out.contains("Pull complete"), "{out}");
    nothing_partial(&b.root);
}

#[test]
fn pushes_and_skopeo_reads_back() {
    let reg = Registry::start(None);
    let b = Berth::start();
    let name = format!("{}/mine:v1", reg.host());
    b.ok(&["tag", "busybox", &name]);
    let out = b.ok(&["push", &name]);
    assert!(
        out.contains(&format!(
            "The push refers to repository [{}/mine]",
            reg.host()
        )),
        "{out}"
    );
    assert!(out.contains("Pushed"), "{out}");
    let pushed = out
        .lines()
        .find_map(|l| l.strip_prefix("v1: digest: "))
        .expect("a digest line");
    let digest = pushed.split_whitespace().next().expect("digest");
    let (manifest, skopeo_digest) = raw_manifest(&name, None);
    assert_eq!(
        digest, skopeo_digest,
        "push and registry agree on the manifest digest"
    );
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .expect("config digest")
        .to_string();
    assert_eq!(
        b.inspect(&name, "{{.Id}}"),
        config_digest,
        "the registry holds our image id as config"
    );
    assert!(b
        .inspect(&name, "{{json .RepoDigests}}")
        .contains(&format!("{}/mine@{digest}", reg.host())));
    // skopeo copies every blob out, verifying each against its digest.
    let out_dir = b.root.with_file_name("skopeo-out");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{name}"),
        &format!("dir:{}", out_dir.display()),
    ]);
    assert!(out_dir
        .join(config_digest.trim_start_matches("sha256:"))
        .exists());
    // Again: the registry has every layer.
    let again = b.ok(&["push", &name]);
    assert!(again.contains("Layer already exists"), "{again}");
    // Into another repository of the same registry: mounted, not uploaded.
    let other = format!("{}/other:v1", reg.host());
    b.ok(&["tag", "busybox", &other]);
    let mounted = b.ok(&["push", &other]);
    assert!(mounted.contains("Mounted from mine"), "{mounted}");
    assert_eq!(raw_manifest(&other, None).1, digest);
}

#[test]
fn large_layers_go_up_in_chunks() {
    let reg = Registry::start(None);
    let b = Berth::start();
    // 12 MiB of random bytes: more than one 8 MiB upload chunk, and incompressible.
    let dir = b.root.with_file_name("big");
    fs::create_dir_all(&dir).unwrap();
    let mut data = vec![0u8; 12 << 20];
    fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut data)
        .unwrap();
    fs::write(dir.join("random.bin"), &data).unwrap();
    let tar = b.root.with_file_name("big.tar");
    let st = Command::new("/bin/busybox")
        .args(["tar", "cf"])
        .arg(&tar)
        .arg("-C")
        .arg(&dir)
        .arg("random.bin")
        .status()
        .unwrap();
    assert!(st.success());
    let name = format!("{}/big:v1", reg.host());
    b.ok(&["import", &tar.display().to_string(), &name]);
    let out = b.ok(&["push", &name]);
    assert!(out.contains("Pushed"), "{out}");
    let out_dir = b.root.with_file_name("big-out");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{name}"),
        &format!("dir:{}", out_dir.display()),
    ]);
    let (manifest, _) = raw_manifest(&name, None);
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    let got = fs::read(out_dir.join(&layer)).unwrap();
    assert_eq!(
        got.len() as u64,
        manifest["layers"][0]["size"].as_u64().unwrap()
    );
    assert_eq!(sha256_hex(&got), layer);
    // And back, after removing ours: the same image id.
    let id = b.inspect(&name, "{{.Id}}");
    b.ok(&["rmi", &name]);
    b.ok(&["pull", &name]);
    assert_eq!(b.inspect(&name, "{{.Id}}"), id);
}

/// Pulls of the same image at once (a class typing the same command): all succeed,
/// and each layer is fetched from the registry once, the other pulls waiting for it.
#[test]
fn pulls_of_the_same_image_at_once_fetch_each_layer_once() {
    let reg = Registry::start(None);
    let pusher = Berth::start();
    // Two incompressible layers on busybox, so fetching one takes a moment.
    let ctx = pusher.root.with_file_name("ctx");
    fs::create_dir_all(&ctx).unwrap();
    for f in ["a.bin", "b.bin"] {
        let mut data = vec![0u8; 4 << 20];
        fs::File::open("/dev/urandom")
            .unwrap()
            .read_exact(&mut data)
            .unwrap();
        fs::write(ctx.join(f), &data).unwrap();
    }
    fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nCOPY a.bin /\nCOPY b.bin /\n",
    )
    .unwrap();
    let name = format!("{}/class/same:1", reg.host());
    pusher.ok(&["build", "-q", "-t", &name, &ctx.display().to_string()]);
    pusher.ok(&["push", &name]);
    let (manifest, _) = raw_manifest(&name, None);
    let layers: Vec<String> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_string())
        .collect();
    let before = reg.log();
    let puller = Berth::start();
    let pulls: Vec<_> = (0..6)
        .map(|_| {
            puller
                .cmd(&["pull", &name])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("docker pull")
        })
        .collect();
    for p in pulls {
        let o = p.wait_with_output().unwrap();
        assert!(
            o.status.success(),
            "pull: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    assert_eq!(puller.ok(&["images", "-q", &name]).lines().count(), 1);
    puller.ok(&["run", "--rm", &name, "ls", "/a.bin", "/b.bin"]);
    let log = reg.log();
    let fetched = &log[before.len().min(log.len())..];
    // The puller has busybox's layer (its seed image) and lacks the two others.
    for (i, digest) in layers.iter().enumerate() {
        let gets = fetched
            .lines()
            .filter(|l| l.contains(&format!("\"GET /v2/class/same/blobs/{digest} ")))
            .count();
        let want = if i == 0 { 0 } else { 1 };
        assert_eq!(gets, want, "{digest} fetched {gets} times:\n{fetched}");
    }
}

#[test]
fn run_pulls_a_missing_image_first() {
    let reg = Registry::start(None);
    let b = Berth::start();
    skopeo_put_busybox(&b, &reg, "x:latest");
    let name = format!("{}/x", reg.host());
    let o = b.docker(&["run", "--rm", &name, "echo", "pulled by run"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success(),
        "run failed: {stderr}\n{}",
        b.server_log()
    );
    assert!(
        stdout_of(&o).trim_end().ends_with("pulled by run"),
        "{}",
        stdout_of(&o)
    );
    assert!(
        stderr.contains(&format!("Unable to find image '{name}:latest' locally")),
        "{stderr}"
    );
}

#[test]
fn unknown_repository_fails_clearly() {
    let reg = Registry::start(None);
    let b = Berth::start();
    let (code, err) = b.fails(&["pull", &format!("{}/nope:1", reg.host())]);
    assert_eq!(code, 1);
    assert!(err.contains("not found") && err.contains("nope"), "{err}");
    // The same plain-HTTP registry by an address that is not an insecure one (Docker's
    // are 127.0.0.0/8 and those named with --insecure-registry): HTTPS, in Go's words.
    let port = reg.host().rsplit(':').next().unwrap().to_string();
    let (_, err) = b.fails(&["pull", &format!("0.0.0.0:{port}/nope:1")]);
    assert!(
        err.contains(&format!(
            "Get \"https://0.0.0.0:{port}/v2/\": http: server gave HTTP response to HTTPS client"
        )),
        "{err}"
    );
    nothing_partial(&b.root);
}

#[test]
fn login_checks_the_password_and_push_uses_it() {
    let reg = Registry::start(Some(("ann", "right-horse")));
    let b = Berth::start();
    let host = reg.host();
    let (code, err) = b.fails(&["login", &host, "-u", "ann", "-p", "wrong"]);
    assert_eq!(code, 1);
    assert!(err.contains("incorrect username or password"), "{err}");
    let ok = b.ok(&["login", &host, "-u", "ann", "-p", "right-horse"]);
    assert!(ok.contains("Login Succeeded"), "{ok}");
    let name = format!("{host}/private/app:1");
    b.ok(&["tag", "busybox", &name]);
    let out = b.ok(&["push", &name]);
    assert!(out.contains("1: digest: sha256:"), "{out}");
    raw_manifest(&name, Some("ann:right-horse"));
    b.ok(&["rmi", &name]);
    assert!(b.ok(&["pull", &name]).contains("Downloaded newer image"));
    // Without the stored credentials the registry says no, and we say so.
    b.ok(&["logout", &host]);
    b.ok(&["rmi", &name]);
    let (_, err) = b.fails(&["pull", &name]);
    assert!(err.contains("docker login"), "{err}");
}

#[test]
fn a_tampered_blob_is_refused_and_a_retry_succeeds() {
    let reg = Registry::start(None);
    let b = Berth::start();
    skopeo_put_busybox(&b, &reg, "t:1");
    let name = format!("{}/t:1", reg.host());
    let (manifest, _) = raw_manifest(&name, None);
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .expect("layer digest")
        .to_string();
    let file = reg.blob_file(&layer);
    let good = fs::read(&file).expect("registry blob");
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    fs::write(&file, &bad).unwrap();
    let (code, err) = b.fails(&["pull", &name]);
    assert_eq!(code, 1);
    assert!(err.contains("digest mismatch"), "{err}");
    assert!(
        !b.root
            .join("blobs/sha256")
            .join(layer.trim_start_matches("sha256:"))
            .exists(),
        "the bad blob must not be stored"
    );
    nothing_partial(&b.root);
    assert!(b
        .fails(&["image", "inspect", &name])
        .1
        .contains("No such image"));
    fs::write(&file, &good).unwrap();
    assert!(b.ok(&["pull", &name]).contains("Downloaded newer image"));
    assert_eq!(b.ok(&["run", "--rm", &name, "echo", "ok"]), "ok");
}
