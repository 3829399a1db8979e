//! Berth's own registry (the OCI distribution API on its own listener), driven by
//! peers we did not write: skopeo, Debian's dockerd, Debian's docker-registry (as a
//! mirror's upstream), and curl for the error cases.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_tests::dockerd::Dockerd;
use berth_tests::{require, Berth};

fn require_skopeo() {
    require("skopeo", "apt-get install skopeo");
}

/// Runs a command, expects success, returns stdout.
fn run_ok(cmd: &mut Command) -> String {
    let o = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// Runs a command, expects failure, returns stderr.
fn run_fails(cmd: &mut Command) -> String {
    let o = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        !o.status.success(),
        "{cmd:?} should fail; stdout: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn skopeo(args: &[&str]) -> Command {
    let mut c = Command::new("skopeo");
    c.args(args);
    c
}

/// `sha256:<hex>` of bytes, via coreutils.
fn sha256(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let f = dir.path().join("x");
    fs::write(&f, bytes).expect("write");
    let out = run_ok(Command::new("sha256sum").arg(&f));
    format!(
        "sha256:{}",
        out.split_whitespace().next().expect("sha256sum output")
    )
}

/// A curl answer: status, headers (lower-case names) and body.
struct Http {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Http {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn curl(args: &[&str]) -> Http {
    let o = Command::new("curl")
        .args(["-s", "-i"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Http {
        status,
        headers,
        body: body.to_string(),
    }
}

/// The spec's error code of an error body.
fn error_code(h: &Http) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&h.body).unwrap_or_else(|e| panic!("error body {:?}: {e}", h.body));
    v["errors"][0]["code"].as_str().unwrap_or("").to_string()
}

/// `docker save busybox` from Berth's Engine API, as a docker-archive for skopeo.
fn busybox_archive(b: &Berth) -> PathBuf {
    let tar = b.root.with_file_name("busybox.tar");
    if !tar.exists() {
        b.ok(&["save", "busybox", "-o", tar.to_str().expect("utf-8 path")]);
    }
    tar
}

/// skopeo copies busybox into a registry as `dest` (`HOST:PORT/name:tag`).
fn push_busybox(b: &Berth, dest: &str, creds: Option<&str>) {
    let src = format!("docker-archive:{}", busybox_archive(b).display());
    let dst = format!("docker://{dest}");
    let mut c = skopeo(&["copy", "--dest-tls-verify=false", &src, &dst]);
    if let Some(cr) = creds {
        c.args(["--dest-creds", cr]);
    }
    run_ok(&mut c);
}

/// The manifest digest of an image in a registry, as skopeo sees it.
fn remote_digest(image: &str) -> String {
    let raw = run_ok(&mut skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{image}"),
    ]));
    sha256(raw.as_bytes())
}

#[test]
fn skopeo_copies_in_and_out_with_unchanged_digests() {
    require_skopeo();
    let b = Berth::start();
    let reg = b.registry_addr();
    push_busybox(&b, &format!("{reg}/library/busybox:latest"), None);

    // The digest the registry answers with is the hash of the bytes it serves.
    let head = curl(&[
        "-I",
        "-H",
        "Accept: application/vnd.docker.distribution.manifest.v2+json",
        &format!("http://{reg}/v2/library/busybox/manifests/latest"),
    ]);
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("docker-distribution-api-version"),
        Some("registry/2.0")
    );
    let digest = head
        .header("docker-content-digest")
        .expect("Docker-Content-Digest")
        .to_string();
    assert_eq!(
        remote_digest(&format!("{reg}/library/busybox:latest")),
        digest
    );
    assert_eq!(
        head.header("content-type"),
        Some("application/vnd.docker.distribution.manifest.v2+json")
    );

    // Out again to a directory: skopeo verifies every blob; the manifest is unchanged.
    let out = b.root.with_file_name("out");
    run_ok(&mut skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{reg}/library/busybox@{digest}"),
        &format!("dir:{}", out.display()),
    ]));
    assert_eq!(
        sha256(&fs::read(out.join("manifest.json")).expect("manifest.json")),
        digest
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs::read(out.join("manifest.json")).unwrap()).unwrap();
    for l in manifest["layers"].as_array().expect("layers") {
        let d = l["digest"].as_str().unwrap();
        assert_eq!(sha256(&fs::read(out.join(&d[7..])).expect("layer file")), d);
    }

    // Registry to registry (another repository: blobs mounted, not sent), same digest.
    run_ok(&mut skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{reg}/library/busybox:latest"),
        &format!("docker://{reg}/team/tools:v1"),
    ]));
    assert_eq!(remote_digest(&format!("{reg}/team/tools:v1")), digest);
    let tags = run_ok(&mut skopeo(&[
        "list-tags",
        "--tls-verify=false",
        &format!("docker://{reg}/team/tools"),
    ]));
    assert!(tags.contains("\"v1\""), "{tags}");

    let cat = curl(&[&format!("http://{reg}/v2/_catalog")]);
    // Berth publishes its seed images in its own registry (hello-world on x86_64 only).
    let expected = if cfg!(target_arch = "x86_64") {
        r#"{"repositories":["library/busybox","library/hello-wasm","library/hello-world","team/tools"]}"#
    } else {
        r#"{"repositories":["library/busybox","library/hello-wasm","team/tools"]}"#
    };
    assert_eq!(cat.body.trim(), expected);
    let page = curl(&[&format!("http://{reg}/v2/_catalog?n=1")]);
    assert_eq!(page.body.trim(), r#"{"repositories":["library/busybox"]}"#);
    assert_eq!(
        page.header("link"),
        Some(r#"</v2/_catalog?n=1&last=library/busybox>; rel="next""#)
    );

    // Range requests on a blob.
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let part = curl(&[
        "-H",
        "Range: bytes=0-9",
        &format!("http://{reg}/v2/library/busybox/blobs/{layer}"),
    ]);
    assert_eq!(part.status, 206);
    assert_eq!(part.header("content-length"), Some("10"));
    assert!(part
        .header("content-range")
        .is_some_and(|v| v.starts_with("bytes 0-9/")));

    // Search in Docker Hub's shape: library/ repositories are official.
    let s = curl(&[&format!("http://{reg}/v1/search?q=busy")]);
    let v: serde_json::Value = serde_json::from_str(&s.body).unwrap();
    assert_eq!(v["num_results"], 1);
    assert_eq!(v["results"][0]["name"], "busybox");
    assert_eq!(v["results"][0]["is_official"], true);

    // One copy of each blob: the registry's bytes are the content store's.
    use std::os::unix::fs::MetadataExt;
    let ours = fs::metadata(b.root.join("registry/blobs/sha256").join(&layer[7..])).unwrap();
    let store = fs::metadata(b.root.join("blobs/sha256").join(&layer[7..])).unwrap();
    assert_eq!(ours.ino(), store.ino());
}

#[test]
fn bad_input_gets_the_spec_errors_and_stores_nothing() {
    let b = Berth::start();
    let reg = b.registry_addr();
    let base = format!("http://{reg}/v2");

    let r = curl(&[&format!("{base}/nobody/here/tags/list")]);
    assert_eq!((r.status, error_code(&r).as_str()), (404, "NAME_UNKNOWN"));
    let r = curl(&[&format!("{base}/Bad..Name/tags/list")]);
    assert_eq!((r.status, error_code(&r).as_str()), (400, "NAME_INVALID"));

    // A blob whose bytes do not match its digest: refused, never stored.
    let content = b"these bytes are not what the digest says";
    let real = sha256(content);
    let wrong = sha256(b"something else");
    let start = curl(&["-X", "POST", &format!("{base}/app/blobs/uploads/")]);
    assert_eq!(start.status, 202);
    let loc = start.header("location").expect("Location").to_string();
    let put = curl(&[
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        std::str::from_utf8(content).unwrap(),
        &format!("http://{reg}{loc}?digest={wrong}"),
    ]);
    assert_eq!(
        (put.status, error_code(&put).as_str()),
        (400, "DIGEST_INVALID"),
        "{}",
        put.body
    );
    for d in [&real, &wrong] {
        assert!(
            !b.root.join("blobs/sha256").join(&d[7..]).exists(),
            "no blob stored for {d}"
        );
        assert!(!b.root.join("registry/blobs/sha256").join(&d[7..]).exists());
    }
    let gone = curl(&[&format!("http://{reg}{loc}")]);
    assert_eq!(
        (gone.status, error_code(&gone).as_str()),
        (404, "BLOB_UPLOAD_UNKNOWN")
    );

    // Chunked: a chunk at the wrong offset is 416; the right ones complete it.
    let start = curl(&["-X", "POST", &format!("{base}/app/blobs/uploads/")]);
    let loc = start.header("location").expect("Location").to_string();
    let p1 = curl(&[
        "-X",
        "PATCH",
        "-H",
        "Content-Range: 0-4",
        "--data-binary",
        "these",
        &format!("http://{reg}{loc}"),
    ]);
    assert_eq!((p1.status, p1.header("range")), (202, Some("0-4")));
    let bad = curl(&[
        "-X",
        "PATCH",
        "-H",
        "Content-Range: 2-4",
        "--data-binary",
        "xyz",
        &format!("http://{reg}{loc}"),
    ]);
    assert_eq!(bad.status, 416);
    let rest = &content[5..];
    let done = curl(&[
        "-X",
        "PUT",
        "-H",
        &format!("Content-Range: 5-{}", content.len() - 1),
        "--data-binary",
        std::str::from_utf8(rest).unwrap(),
        &format!("http://{reg}{loc}?digest={real}"),
    ]);
    assert_eq!(done.status, 201, "{}", done.body);
    assert_eq!(done.header("docker-content-digest"), Some(real.as_str()));
    let got = curl(&[&format!("{base}/app/blobs/{real}")]);
    assert_eq!(got.body.as_bytes(), content);

    // A manifest naming a blob the registry does not have.
    let missing = sha256(b"missing layer");
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": real, "size": content.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": missing, "size": 13}],
    })
    .to_string();
    let r = curl(&[
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/vnd.oci.image.manifest.v1+json",
        "--data-binary",
        &manifest,
        &format!("{base}/app/manifests/v1"),
    ]);
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (400, "MANIFEST_BLOB_UNKNOWN"),
        "{}",
        r.body
    );
    let r = curl(&[&format!("{base}/app/manifests/v1")]);
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (404, "MANIFEST_UNKNOWN")
    );
    let r = curl(&[&format!("{base}/app/blobs/{missing}")]);
    assert_eq!((r.status, error_code(&r).as_str()), (404, "BLOB_UNKNOWN"));
}

#[test]
fn users_need_a_login_and_wrong_passwords_get_401() {
    require_skopeo();
    let tmp = tempfile::tempdir().expect("temp dir");
    let users = tmp.path().join("users");
    let mut add = Command::new(berth_tests::berth_bin());
    add.args(["registry-user", "add", "--file"])
        .arg(&users)
        .arg("teacher")
        .stdin(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = add.spawn().expect("run berth registry-user add");
    std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), b"correct horse\n")
        .expect("write password");
    assert!(child.wait().expect("wait").success());
    assert!(fs::read_to_string(&users)
        .unwrap()
        .starts_with("teacher:$2y$"));

    let b = Berth::start_with(&["--registry-users", users.to_str().unwrap()]);
    let reg = b.registry_addr();
    let r = curl(&[&format!("http://{reg}/v2/")]);
    assert_eq!((r.status, error_code(&r).as_str()), (401, "UNAUTHORIZED"));
    let challenge = r.header("www-authenticate").expect("challenge");
    assert_eq!(
        challenge,
        format!("Bearer realm=\"http://{reg}/v2/token\",service=\"berth\"")
    );
    let r = curl(&[&format!("http://{reg}/v2/x/tags/list")]);
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .ends_with(",scope=\"repository:x:pull,push\""));

    // skopeo follows the token flow: wrong password refused, right one works.
    let src = format!("docker-archive:{}", busybox_archive(&b).display());
    let err = run_fails(&mut skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        "teacher:wrong",
        &src,
        &format!("docker://{reg}/private:v1"),
    ]));
    assert!(
        err.contains("401") || err.to_lowercase().contains("unauthorized"),
        "{err}"
    );
    push_busybox(
        &b,
        &format!("{reg}/private:v1"),
        Some("teacher:correct horse"),
    );
    let err = run_fails(&mut skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{reg}/private:v1"),
    ]));
    assert!(
        err.to_lowercase().contains("unauthorized") || err.contains("401"),
        "{err}"
    );
    run_ok(&mut skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--creds",
        "teacher:correct horse",
        &format!("docker://{reg}/private:v1"),
    ]));

    // The token endpoint and Basic auth directly, as curl.
    let t = curl(&[
        "-u",
        "teacher:correct horse",
        &format!("http://{reg}/v2/token?service=berth&scope=repository:private:pull"),
    ]);
    assert_eq!(t.status, 200);
    let tok: serde_json::Value = serde_json::from_str(&t.body).unwrap();
    let token = tok["token"].as_str().expect("token");
    assert_eq!(tok["access_token"], token);
    let r = curl(&[
        "-H",
        &format!("Authorization: Bearer {token}"),
        &format!("http://{reg}/v2/private/tags/list"),
    ]);
    assert_eq!(r.body.trim(), r#"{"name":"private","tags":["v1"]}"#);
    let r = curl(&[
        "-H",
        "Authorization: Bearer forged.token",
        &format!("http://{reg}/v2/private/tags/list"),
    ]);
    assert_eq!(r.status, 401);
    let r = curl(&[
        "-u",
        "teacher:nope",
        &format!("http://{reg}/v2/token?service=berth"),
    ]);
    assert_eq!(r.status, 401);
    let r = curl(&[
        "-u",
        "teacher:correct horse",
        &format!("http://{reg}/v2/private/tags/list"),
    ]);
    assert_eq!(r.status, 200);

    // `docker login` against it through Berth's Engine API, then a push.
    let login = |password: &str| {
        let mut c = b.cmd(&["login", &reg, "-u", "teacher", "--password-stdin"]);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().expect("docker login");
        std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), password.as_bytes())
            .expect("password");
        drop(child.stdin.take());
        child.wait_with_output().expect("wait")
    };
    let o = login("wrong\n");
    assert!(!o.status.success(), "a wrong password must not log in");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("incorrect username or password"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = login("correct horse\n");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("Login Succeeded"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    b.ok(&["tag", "busybox", &format!("{reg}/private:v2")]);
    b.ok(&["push", &format!("{reg}/private:v2")]);
}

/// A free loopback port (bound then released: a small race we accept in tests).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Waits until `GET url` answers 200 or `child` dies.
fn wait_http(url: &str, child: &mut Child, log: &Path) {
    let end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < end {
        if curl(&[url]).status == 200 {
            return;
        }
        if let Ok(Some(st)) = child.try_wait() {
            panic!(
                "{url}: the server exited ({st}): {}",
                fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "{url} did not answer: {}",
        fs::read_to_string(log).unwrap_or_default()
    );
}

/// Debian's docker-registry (distribution 2.8) on a temp dir, stopped on drop.
struct Upstream {
    addr: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Upstream {
    fn start() -> Upstream {
        require("docker-registry", "apt-get install docker-registry");
        let dir = tempfile::tempdir().expect("temp dir");
        let addr = format!("127.0.0.1:{}", free_port());
        let config = dir.path().join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
                dir.path().join("data").display()
            ),
        )
        .expect("write config");
        let log = dir.path().join("log");
        let out = fs::File::create(&log).expect("log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log"))
            .stderr(out)
            .spawn()
            .expect("start docker-registry");
        let mut u = Upstream {
            addr,
            child,
            _dir: dir,
        };
        wait_http(&format!("http://{}/v2/", u.addr), &mut u.child, &log);
        u
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop();
    }
}

#[test]
fn mirror_pulls_through_from_an_upstream_registry_and_keeps_a_copy() {
    require_skopeo();
    let mut up = Upstream::start();
    // Seed the upstream with busybox from a plain Berth.
    {
        let seeder = Berth::start();
        push_busybox(
            &seeder,
            &format!("{}/library/busybox:latest", up.addr),
            None,
        );
    }
    let want = remote_digest(&format!("{}/library/busybox:latest", up.addr));

    let b = Berth::start_with(&["--mirror", &format!("http://{}", up.addr)]);
    let reg = b.registry_addr();
    let out = b.root.with_file_name("pulled");
    run_ok(&mut skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{reg}/library/busybox:latest"),
        &format!("dir:{}", out.display()),
    ]));
    assert_eq!(sha256(&fs::read(out.join("manifest.json")).unwrap()), want);

    // The upstream gone, the cache still serves everything, digests unchanged.
    up.stop();
    let again = b.root.with_file_name("again");
    run_ok(&mut skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{reg}/library/busybox:latest"),
        &format!("dir:{}", again.display()),
    ]));
    assert_eq!(
        sha256(&fs::read(again.join("manifest.json")).unwrap()),
        want
    );
    // What the upstream never had is still unknown (and the upstream's absence is an error, not a hang).
    let r = curl(&[
        "-m",
        "30",
        &format!("http://{reg}/v2/library/busybox/manifests/nope"),
    ]);
    assert!(
        r.status == 404 || r.status == 500,
        "{} {}",
        r.status,
        r.body
    );
}

#[test]
fn debian_dockerd_pulls_from_berths_registry_and_runs_it() {
    require_skopeo();
    let b = Berth::start();
    let reg = b.registry_addr();
    // Berth's own client pushes it (the issue: "an image Berth pushed").
    b.ok(&["tag", "busybox", &format!("{reg}/class/busybox:1")]);
    b.ok(&["push", &format!("{reg}/class/busybox:1")]);
    let dockerd = Dockerd::start(&["--insecure-registry", &reg]);
    let image = format!("{reg}/class/busybox:1");
    let pull = dockerd.docker(&["pull", &image]);
    assert!(
        pull.status.success(),
        "dockerd pull failed: {}{}\nberth log: {}",
        String::from_utf8_lossy(&pull.stdout),
        String::from_utf8_lossy(&pull.stderr),
        b.server_log()
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
    let digest = remote_digest(&image);
    assert!(
        String::from_utf8_lossy(&pull.stdout).contains(&digest),
        "{}",
        String::from_utf8_lossy(&pull.stdout)
    );
    let run = dockerd.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        &image,
        "echo",
        "hi from berth",
    ]);
    assert!(
        run.status.success(),
        "dockerd run failed: {}\n{}",
        String::from_utf8_lossy(&run.stderr),
        dockerd.log()
    );
    assert_eq!(String::from_utf8_lossy(&run.stdout).trim(), "hi from berth");
}
