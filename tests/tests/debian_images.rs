//! A real distribution image, made here with debootstrap (tests/images/debian-rootfs)
//! and `docker import`ed, used as a user would: a Dockerfile that `apt-get install`s
//! nginx, python3 + pip, nodejs + npm and libcap2-bin, installs a package from PyPI
//! and one from npm, and runs a web server as a non-root user made with `useradd`,
//! allowed to bind port 80 by a file capability. The same Dockerfile is built by
//! Debian's dockerd too, and each engine's image crosses to the other through Debian's
//! docker-registry and runs there.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use std::{fs, thread};

use berth_tests::dockerd::Dockerd;
use berth_tests::{require, Berth};

/// One Dockerfile for everything the test runs, so a CI run builds once per engine.
/// The host's CA bundle goes in after apt (which speaks plain http to the mirror and
/// installs nothing from https): this machine may reach PyPI and npm through a TLS
/// proxy only the host's bundle trusts. Debian's pip reads the system bundle; node
/// has its own unless told with NODE_EXTRA_CA_CERTS.
const DOCKERFILE: &str = r#"FROM debian:SUITE
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      nginx python3 python3-pip nodejs npm libcap2-bin \
 && rm -rf /var/lib/apt/lists/*
COPY host-ca.crt /usr/local/share/ca-certificates/berth-host-ca.crt
RUN update-ca-certificates
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
RUN pip install --break-system-packages cowsay==6.1
RUN cp /usr/bin/python3 /usr/local/bin/webpy \
 && setcap cap_net_bind_service+ep /usr/local/bin/webpy
RUN useradd -m -s /bin/bash app
USER app
WORKDIR /home/app
RUN npm install ms@2.1.3
COPY --chown=app:app site/ /home/app/site/
CMD ["/usr/local/bin/webpy", "-m", "http.server", "80", "--directory", "/home/app/site"]
"#;

const PAGE: &str = "<h1>served by app</h1>\n";

/// The rootfs tarball, built (or found in its cache) by tests/images/debian-rootfs.
fn rootfs() -> (PathBuf, String) {
    require(
        "debootstrap",
        "apt-get install debootstrap (tests/run installs it); it builds the Debian image",
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("images/debian-rootfs");
    let t = Instant::now();
    let o = Command::new(&script)
        .stdin(Stdio::null())
        .output()
        .expect("run tests/images/debian-rootfs");
    assert!(
        o.status.success(),
        "{} failed, so there is no Debian rootfs to import:\n{}",
        script.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    let tar = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
    assert!(
        tar.is_file(),
        "{} printed no tarball: {tar:?}",
        script.display()
    );
    eprintln!("debian-rootfs: {} in {:.1?}", tar.display(), t.elapsed());
    // The cache file is named debian-<suite>-<key>.tar.
    let name = tar.file_name().unwrap().to_string_lossy().to_string();
    let suite = name
        .split('-')
        .nth(1)
        .expect("debian-<suite>-<key>.tar")
        .to_string();
    (tar, suite)
}

/// The build context: the Dockerfile, the site the non-root user serves, and the
/// host's CA bundle.
fn context(dir: &Path, suite: &str) -> PathBuf {
    let ctx = dir.join("ctx-debian");
    let _ = fs::remove_dir_all(&ctx);
    fs::create_dir_all(ctx.join("site")).unwrap();
    fs::write(ctx.join("Dockerfile"), DOCKERFILE.replace("SUITE", suite)).unwrap();
    fs::write(ctx.join("site/index.html"), PAGE).unwrap();
    let bundle = "/etc/ssl/certs/ca-certificates.crt";
    fs::copy(bundle, ctx.join("host-ca.crt"))
        .unwrap_or_else(|e| panic!("{bundle}: {e}: apt-get install ca-certificates"));
    ctx
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs `docker ARGS` on one engine and expects success; returns stdout.
fn ok(engine: &str, docker: &dyn Fn(&[&str]) -> Output, args: &[&str]) -> String {
    let o = docker(args);
    assert!(
        o.status.success(),
        "{engine}: docker {args:?} failed:\n{}",
        text(&o)
    );
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// Python inside the container fetching its own port 80 (the image has no curl), so
/// the same check works on dockerd, which runs here without a bridge.
const FETCH: &str = "import urllib.request, sys; \
    print(urllib.request.urlopen('http://127.0.0.1:80/', timeout=5).read().decode())";

/// Polls `docker exec NAME python3 -c FETCH` until the server answers.
fn fetch_inside(engine: &str, docker: &dyn Fn(&[&str]) -> Output, name: &str) -> String {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let o = docker(&["exec", name, "python3", "-c", FETCH]);
        if o.status.success() {
            return String::from_utf8_lossy(&o.stdout).to_string();
        }
        assert!(
            Instant::now() < end,
            "{engine}: {name} never answered on port 80:\n{}\nlogs: {}",
            text(&o),
            text(&docker(&["logs", name]))
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// Everything the image was built for, run from `image` on one engine: nginx (as
/// root, its workers as www-data), the pip and npm packages, and the non-root user's
/// server on port 80. `tag` keeps container names apart.
fn check_image(engine: &str, docker: &dyn Fn(&[&str]) -> Output, image: &str, tag: &str) {
    // nginx from apt, its default page.
    let nginx = format!("{tag}-nginx");
    ok(
        engine,
        docker,
        &[
            "run",
            "-d",
            "--name",
            &nginx,
            "-u",
            "root",
            image,
            "nginx",
            "-g",
            "daemon off;",
        ],
    );
    let page = fetch_inside(engine, docker, &nginx);
    assert!(
        page.contains("Welcome to nginx!"),
        "{engine}: nginx served {page}"
    );

    // python3 + a package from PyPI.
    let cow = ok(
        engine,
        docker,
        &[
            "run",
            "--rm",
            image,
            "python3",
            "-c",
            "import cowsay; cowsay.cow('moo from pip')",
        ],
    );
    assert!(
        cow.contains("| moo from pip |") && cow.contains("(oo)"),
        "{engine}: cowsay printed {cow}"
    );

    // nodejs + a package from npm, installed by the non-root user in its home.
    let ms = ok(
        engine,
        docker,
        &[
            "run",
            "--rm",
            image,
            "node",
            "-e",
            "console.log(require('ms')('2 days'))",
        ],
    );
    assert_eq!(ms.trim(), "172800000", "{engine}: ms printed {ms}");

    // The non-root user: Docker lets any user bind ports below 1024 in a container's
    // own network (ip_unprivileged_port_start=0) ...
    let bound = ok(
        engine,
        docker,
        &[
            "run",
            "--rm",
            image,
            "python3",
            "-c",
            "import socket, os; socket.socket().bind(('', 80)); print(os.getuid())",
        ],
    );
    assert_eq!(bound.trim(), "1000", "{engine}: {bound}");
    // ... so the file capability shows only with the kernel's default of 1024: then
    // plain python3 may not bind port 80, and the copy with cap_net_bind_service may.
    let strict = "net.ipv4.ip_unprivileged_port_start=1024";
    let o = docker(&[
        "run",
        "--rm",
        "--sysctl",
        strict,
        image,
        "python3",
        "-m",
        "http.server",
        "80",
    ]);
    assert!(
        !o.status.success() && text(&o).contains("Permission denied"),
        "{engine}: a non-root python3 without the capability bound port 80: {}",
        text(&o)
    );
    let web = format!("{tag}-web");
    ok(
        engine,
        docker,
        &["run", "-d", "--name", &web, "--sysctl", strict, image],
    );
    let page = fetch_inside(engine, docker, &web);
    assert_eq!(
        page.trim_end(),
        PAGE.trim_end(),
        "{engine}: the app served {page}"
    );
    let status = ok(engine, docker, &["exec", &web, "sh", "-c", "grep -E '^(Uid|CapEff)' /proc/1/status; stat -c %U site/index.html; getcap /usr/local/bin/webpy"]);
    assert!(
        status.contains("Uid:\t1000\t1000\t1000\t1000"),
        "{engine}: {status}"
    );
    assert!(
        status.contains("CapEff:\t0000000000000400"),
        "{engine}: only cap_net_bind_service: {status}"
    );
    assert!(status.contains("app\n"), "{engine}: COPY --chown: {status}");
    assert!(
        status.contains("cap_net_bind_service=ep"),
        "{engine}: {status}"
    );
}

/// A free TCP port on the host.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// GET / on the host's loopback PORT, retried until the published port answers.
fn http_get(port: u16) -> String {
    let end = Instant::now() + Duration::from_secs(30);
    loop {
        let got = TcpStream::connect(("127.0.0.1", port)).and_then(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
            let mut r = String::new();
            s.read_to_string(&mut r)?;
            Ok(r)
        });
        match got {
            Ok(r) if r.starts_with("HTTP/1.") => return r,
            other => assert!(
                Instant::now() < end,
                "127.0.0.1:{port} never answered: {other:?}"
            ),
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// A `docker-registry serve` (Debian's distribution 2.8) on a free loopback port,
/// killed on drop even when the test fails.
struct Registry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        require(
            "docker-registry",
            "apt-get install docker-registry; tests/run installs it",
        );
        let dir = tempfile::Builder::new()
            .prefix("berth-registry-")
            .tempdir()
            .expect("temp dir");
        let port = free_port();
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
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
        let reg = Registry {
            child,
            port,
            _dir: dir,
        };
        let end = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < end,
                "docker-registry did not come up on {port}"
            );
            thread::sleep(Duration::from_millis(50));
        }
        reg
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn debian_image_with_apt_pip_npm_software_built_and_crossed_with_dockerd() {
    let start = Instant::now();
    let (tar, suite) = rootfs();
    let tar = tar.display().to_string();
    let base = format!("debian:{suite}");
    let b = Berth::start();
    let berth = |args: &[&str]| {
        b.cmd(args)
            .env("DOCKER_BUILDKIT", "0")
            .output()
            .expect("run docker")
    };
    let ctx = context(b.root.parent().unwrap(), &suite);
    let ctx = ctx.to_str().unwrap();

    // Berth: import the tarball, build, and run what was built.
    let t = Instant::now();
    ok("berth", &berth, &["import", &tar, &base]);
    let os = ok(
        "berth",
        &berth,
        &["run", "--rm", &base, "cat", "/etc/os-release"],
    );
    assert!(os.contains(&format!("VERSION_CODENAME={suite}")), "{os}");
    eprintln!("berth: import in {:.1?}", t.elapsed());
    let t = Instant::now();
    ok("berth", &berth, &["build", "-t", "app:berth", ctx]);
    eprintln!("berth: build in {:.1?}", t.elapsed());
    let t = Instant::now();
    check_image("berth", &berth, "app:berth", "b");
    // And from the host, through published ports, as a user would look.
    let (p1, p2) = (free_port(), free_port());
    ok(
        "berth",
        &berth,
        &[
            "run",
            "-d",
            "-p",
            &format!("{p1}:80"),
            "-u",
            "root",
            "app:berth",
            "nginx",
            "-g",
            "daemon off;",
        ],
    );
    ok(
        "berth",
        &berth,
        &[
            "run",
            "-d",
            "-p",
            &format!("{p2}:80"),
            "--sysctl",
            "net.ipv4.ip_unprivileged_port_start=1024",
            "app:berth",
        ],
    );
    let r = http_get(p1);
    assert!(r.contains("Welcome to nginx!"), "nginx through -p: {r}");
    let r = http_get(p2);
    assert!(
        r.starts_with("HTTP/1.0 200") && r.ends_with(PAGE),
        "the app through -p: {r}"
    );
    eprintln!("berth: checks in {:.1?}", t.elapsed());

    // dockerd: the same tarball and Dockerfile (RUN steps need the host's network:
    // this dockerd has no bridge).
    let d = Dockerd::start(&[]);
    let dockerd = |args: &[&str]| {
        d.cmd(args)
            .env("DOCKER_BUILDKIT", "0")
            .stdin(Stdio::null())
            .output()
            .expect("run docker")
    };
    let t = Instant::now();
    ok("dockerd", &dockerd, &["import", &tar, &base]);
    ok(
        "dockerd",
        &dockerd,
        &["build", "--network", "host", "-t", "app:dockerd", ctx],
    );
    eprintln!("dockerd: import and build in {:.1?}", t.elapsed());

    // Across Debian's docker-registry, both ways (loopback registries are plain http
    // for both engines).
    let reg = Registry::start();
    let from_dockerd = format!("127.0.0.1:{}/app:dockerd", reg.port);
    let from_berth = format!("127.0.0.1:{}/app:berth", reg.port);
    let t = Instant::now();
    ok("dockerd", &dockerd, &["tag", "app:dockerd", &from_dockerd]);
    ok("dockerd", &dockerd, &["push", &from_dockerd]);
    ok("berth", &berth, &["tag", "app:berth", &from_berth]);
    ok("berth", &berth, &["push", &from_berth]);
    eprintln!("pushes in {:.1?}", t.elapsed());
    let t = Instant::now();
    ok("berth", &berth, &["pull", &from_dockerd]);
    ok("dockerd", &dockerd, &["pull", &from_berth]);
    eprintln!("pulls in {:.1?}", t.elapsed());
    let t = Instant::now();
    check_image("berth", &berth, &from_dockerd, "from-dockerd");
    check_image("dockerd", &dockerd, &from_berth, "from-berth");
    eprintln!(
        "cross checks in {:.1?}; whole test {:.1?}",
        t.elapsed(),
        start.elapsed()
    );
}
