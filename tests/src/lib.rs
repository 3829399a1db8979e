//! Helpers for the end-to-end tests: a `berth serve` on a temp root and socket, the
//! real docker CLI pointed at it, and a pty to drive `-it` sessions like a person.
//!
//! Everything a test starts is torn down in `Drop` (server, shims, containers,
//! mounts, cgroups, the temp root), even when the test fails.

pub mod cluster;
pub mod dockerd;
pub mod kubernetes;
pub mod lab;
pub mod postgres;
pub mod wasm;

use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `curl` of the Engine API at `version` over a unix socket (any engine's):
/// (status, body).
pub fn api_call(
    sock: &Path,
    version: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, String) {
    let mut c = Command::new("curl");
    c.args([
        "-s",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
        "-X",
        method,
        "--unix-socket",
    ])
    .arg(sock);
    if let Some(body) = body {
        c.args(["-H", "Content-Type: application/json", "-d", body]);
    }
    let o = c
        .arg(format!("http://d/v{version}{path}"))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// The `berth` binary next to the test executable (target/debug/berth), or $BERTH_BIN.
pub fn berth_bin() -> PathBuf {
    if let Ok(p) = std::env::var("BERTH_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test exe path");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let bin = dir.join("berth");
    assert!(
        bin.exists(),
        "{} is missing: build it first with `cargo build -p berth-server` (tests/run does)",
        bin.display()
    );
    bin
}

/// Fails the test with an install hint when a prerequisite is missing.
pub fn require(cmd: &str, hint: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(cmd).exists()))
        .unwrap_or(false);
    assert!(
        found || Path::new(cmd).exists(),
        "`{cmd}` is required for this test: {hint}"
    );
}

/// Compiles `tests/fixtures/NAME.c` into a static binary (once per test run) for
/// tests that need a program busybox does not have.
pub fn static_fixture(name: &str) -> PathBuf {
    require("gcc", "apt-get install gcc libc6-dev");
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(format!("{name}.c"));
    // In the build directory (target/debug/tmp/fixtures), not in /tmp: nothing to clean.
    let exe = std::env::current_exe().expect("test exe path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("tmp")
        .join("fixtures");
    fs::create_dir_all(&dir).expect("fixture dir");
    let out = dir.join(name);
    if !out.exists() {
        let tmp = dir
            .join(format!("{name}.tmp{:?}", std::thread::current().id()).replace(['(', ')'], ""));
        let st = Command::new("gcc")
            .arg("-static")
            .arg("-O2")
            .arg("-o")
            .arg(&tmp)
            .arg(&src)
            .status()
            .expect("run gcc");
        assert!(
            st.success(),
            "gcc -static {} failed: apt-get install gcc libc6-dev",
            src.display()
        );
        fs::rename(&tmp, &out).expect("place fixture");
    }
    out
}

/// Held by every test whose server takes the seeds' literal registry port 5000.
pub static PORT_5000: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Takes [`PORT_5000`], whatever an earlier test that panicked holding it left.
pub fn port_5000() -> std::sync::MutexGuard<'static, ()> {
    PORT_5000.lock().unwrap_or_else(|p| p.into_inner())
}

pub struct Berth {
    pub root: PathBuf,
    pub sock: PathBuf,
    pub config_dir: PathBuf,
    /// Extra `berth serve` arguments, kept for restarts.
    extra_args: Vec<String>,
    /// Run the server as this user instead of root (see `start_unprivileged`), from
    /// this copy of the binary (the build's own may sit where the user cannot read).
    unprivileged: Option<(u32, PathBuf)>,
    server: Option<Child>,
    _tmp: tempfile::TempDir,
}

impl Berth {
    pub fn start() -> Berth {
        Berth::start_with(&[])
    }

    /// Starts `berth serve` with extra arguments (e.g. registry options).
    pub fn start_with(extra_args: &[&str]) -> Berth {
        require("docker", "the docker CLI 28 must be on PATH");
        require("/bin/busybox", "apt-get install busybox-static");
        let tmp = tempfile::Builder::new()
            .prefix("berth-test-")
            .tempdir()
            .expect("temp dir");
        let root = tmp.path().join("root");
        let config_dir = tmp.path().join("docker-config");
        fs::create_dir_all(&config_dir).expect("config dir");
        let sock = tmp.path().join("docker.sock");
        let mut extra_args: Vec<String> = extra_args.iter().map(|a| a.to_string()).collect();
        // Tests run in parallel, each with its own server: its registry takes a free
        // port (see `registry_addr`) unless the test asks for one.
        if !extra_args
            .iter()
            .any(|a| a.starts_with("--registry-listen"))
        {
            extra_args.extend(["--registry-listen".to_string(), "127.0.0.1:0".to_string()]);
        }
        let mut b = Berth {
            root,
            sock,
            config_dir,
            extra_args,
            unprivileged: None,
            server: None,
            _tmp: tmp,
        };
        b.start_server();
        b
    }

    /// Starts `berth serve` as `nobody`: a host where the Linux runtime cannot work
    /// (no root, so no namespaces, mounts or cgroups), which runs wasm images only.
    pub fn start_unprivileged(extra_args: &[&str]) -> Berth {
        require("docker", "the docker CLI 28 must be on PATH");
        require("/bin/busybox", "apt-get install busybox-static");
        const NOBODY: u32 = 65534;
        let tmp = tempfile::Builder::new()
            .prefix("berth-test-")
            .tempdir()
            .expect("temp dir");
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).expect("chmod temp dir");
        let root = tmp.path().join("root");
        let run = tmp.path().join("run");
        for d in [&root, &run] {
            fs::create_dir_all(d).expect("create dir");
            std::os::unix::fs::chown(d, Some(NOBODY), Some(NOBODY)).expect("chown to nobody");
        }
        let bin = tmp.path().join("berth");
        fs::copy(berth_bin(), &bin).expect("copy berth");
        let config_dir = tmp.path().join("docker-config");
        fs::create_dir_all(&config_dir).expect("config dir");
        let sock = run.join("docker.sock");
        let mut extra_args: Vec<String> = extra_args.iter().map(|a| a.to_string()).collect();
        extra_args.extend(["--registry-listen".to_string(), "127.0.0.1:0".to_string()]);
        let mut b = Berth {
            root,
            sock,
            config_dir,
            extra_args,
            unprivileged: Some((NOBODY, bin)),
            server: None,
            _tmp: tmp,
        };
        b.start_server();
        b
    }

    /// Starts (or restarts) `berth serve` and waits until it answers.
    pub fn start_server(&mut self) {
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.with_file_name("server.log"))
            .expect("server log");
        let mut cmd = match &self.unprivileged {
            Some((uid, bin)) => {
                let mut c = Command::new(bin);
                // std drops root's supplementary groups itself when uid is set.
                c.uid(*uid).gid(*uid);
                c
            }
            None => Command::new(berth_bin()),
        };
        let child = cmd
            .arg("serve")
            .arg("--root")
            .arg(&self.root)
            .arg("--docker-host")
            .arg(format!("unix://{}", self.sock.display()))
            .args(&self.extra_args)
            .env("BERTH_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start berth serve");
        self.server = Some(child);
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end {
            if let Ok(mut s) = std::os::unix::net::UnixStream::connect(&self.sock) {
                let _ = s.write_all(b"GET /_ping HTTP/1.0\r\n\r\n");
                let mut r = String::new();
                let _ = s.read_to_string(&mut r);
                if r.contains("OK") {
                    return;
                }
            }
            if let Some(Ok(Some(st))) = self.server.as_mut().map(|c| c.try_wait()) {
                panic!("berth serve exited ({st}): {}", self.server_log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("berth serve did not answer /_ping: {}", self.server_log());
    }

    /// HOST:PORT of this server's registry (written by `berth serve` once it listens).
    pub fn registry_addr(&self) -> String {
        let f = self.root.join("registry").join("listen-address");
        fs::read_to_string(&f)
            .unwrap_or_else(|e| panic!("{}: {e}; server log: {}", f.display(), self.server_log()))
            .trim()
            .to_string()
    }

    pub fn server_log(&self) -> String {
        fs::read_to_string(self.root.with_file_name("server.log")).unwrap_or_default()
    }

    /// kill -9 the server (containers keep running under their shims).
    pub fn kill_server(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("docker");
        c.args(args)
            .env("DOCKER_HOST", format!("unix://{}", self.sock.display()))
            .env("DOCKER_CONFIG", &self.config_dir)
            .env_remove("DOCKER_CONTEXT")
            .stdin(Stdio::null());
        c
    }

    /// Runs docker with `args`; returns the output whatever the exit status.
    pub fn docker(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run docker")
    }

    /// Runs docker and expects success; returns trimmed stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        assert!(
            o.status.success(),
            "docker {args:?} failed ({}):\nstdout: {}\nstderr: {}\nserver log tail: {}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
            tail(&self.server_log(), 30)
        );
        String::from_utf8_lossy(&o.stdout).trim_end().to_string()
    }

    /// Runs docker and expects failure; returns (exit code, stderr).
    pub fn fails(&self, args: &[&str]) -> (i32, String) {
        let o = self.docker(args);
        assert!(
            !o.status.success(),
            "docker {args:?} should fail but printed {}",
            String::from_utf8_lossy(&o.stdout)
        );
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    }

    /// `docker inspect -f TEMPLATE NAME`.
    pub fn inspect(&self, name: &str, template: &str) -> String {
        self.ok(&["inspect", "-f", template, name])
    }

    /// Polls until `f` holds (for state that settles asynchronously).
    pub fn eventually(&self, what: &str, mut f: impl FnMut() -> bool) {
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            if f() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "timed out waiting for: {what}\nserver log tail: {}",
            tail(&self.server_log(), 30)
        );
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

impl Drop for Berth {
    fn drop(&mut self) {
        self.kill_server();
        cleanup_root(&self.root);
    }
}

/// Kills every container and shim of a state root, unmounts what is left under it and
/// removes its cgroups, so the next run starts clean.
pub fn cleanup_root(root: &Path) {
    let Ok(rd) = fs::read_dir(root.join("containers")) else {
        return;
    };
    for e in rd.flatten() {
        let id = e.file_name().to_string_lossy().to_string();
        if let Some(v) = fs::read(e.path().join("container.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        {
            for key in ["pid", "shim_pid"] {
                if let Some(pid) = v["state"][key].as_i64().filter(|p| *p > 0) {
                    // SAFETY: kill(2) with a pid we recorded; at worst ESRCH.
                    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                }
            }
        }
        // Shims are children of init after a server kill; give them a moment to go.
        let sock = root
            .join("run")
            .join(format!("{}.sock", &id[..16.min(id.len())]));
        let end = Instant::now() + Duration::from_secs(5);
        while sock.exists() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
        let parent = fs::read(e.path().join("container.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| {
                v["host_config"]["CgroupParent"]
                    .as_str()
                    .map(str::to_string)
            })
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "berth".into());
        for base in CGROUP_BASES {
            let _ = fs::remove_dir(Path::new(base).join(parent.trim_matches('/')).join(&id));
        }
    }
    // Lab sessions' envelopes (the cgroups their containers were in), with whatever a
    // failed test left running in them.
    if let Ok(rd) = fs::read_dir(root.join("namespaces")) {
        for e in rd.flatten() {
            let policy = fs::read(e.path().join("policy.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok());
            let Some(cgroup) = policy
                .as_ref()
                .and_then(|p| p["envelope"]["cgroup"].as_str())
            else {
                continue;
            };
            if cgroup.split('/').any(|c| c == ".." || c.is_empty()) {
                continue;
            }
            for base in CGROUP_BASES {
                remove_cgroup_tree(&Path::new(base).join(cgroup));
            }
        }
    }
    let root_s = root.display().to_string();
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| p.starts_with(&root_s))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        let _ = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Whether this host has cgroup v2 alone (the unified hierarchy at /sys/fs/cgroup).
pub fn cgroup_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// Where a container reads one of its limits in its own /sys/fs/cgroup, named as on
/// v2 (`memory.max`, `memory.swap.max`, `cpu.max`, `cpu.weight`, `pids.max`); on v1
/// the file that holds that limit (memory and swap together for `memory.swap.max`,
/// the quota alone for `cpu.max`, `cpu.shares` for `cpu.weight`). Both engines of a
/// comparison run on the same host, so they read the same files.
pub fn limit_file(v2_name: &str) -> String {
    if cgroup_v2() {
        return format!("/sys/fs/cgroup/{v2_name}");
    }
    let v1 = match v2_name {
        "memory.max" => "memory/memory.limit_in_bytes",
        "memory.swap.max" => "memory/memory.memsw.limit_in_bytes",
        "cpu.max" => "cpu/cpu.cfs_quota_us",
        "cpu.weight" => "cpu/cpu.shares",
        "pids.max" => "pids/pids.max",
        other => panic!("limit_file: no v1 file for {other}"),
    };
    format!("/sys/fs/cgroup/{v1}")
}

/// Where cgroups of Berth's may be: the v2 root and each v1 controller Berth uses.
pub const CGROUP_BASES: [&str; 8] = [
    "/sys/fs/cgroup",
    "/sys/fs/cgroup/memory",
    "/sys/fs/cgroup/cpu",
    "/sys/fs/cgroup/pids",
    "/sys/fs/cgroup/freezer",
    "/sys/fs/cgroup/cpuacct",
    "/sys/fs/cgroup/cpuset",
    "/sys/fs/cgroup/blkio",
];

/// Kills what runs in a cgroup and below, and removes them all, for a few seconds.
fn remove_cgroup_tree(dir: &Path) {
    let end = Instant::now() + Duration::from_secs(5);
    while dir.is_dir() && Instant::now() < end {
        let mut stack = vec![dir.to_path_buf()];
        let mut all = Vec::new();
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(e.path());
                }
            }
            all.push(d);
        }
        for d in all.iter().rev() {
            for pid in fs::read_to_string(d.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| l.trim().parse::<i32>().ok())
            {
                // SAFETY: kill(2); at worst ESRCH.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            let _ = fs::remove_dir(d);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A command running on a pseudo-terminal, driven like a person at a keyboard.
pub struct Pty {
    master: fs::File,
    pub child: Child,
    seen: Vec<u8>,
}

impl Pty {
    pub fn spawn(mut cmd: Command) -> Pty {
        let pty = nix::pty::openpty(None, None).expect("openpty");
        let slave: OwnedFd = pty.slave;
        let fd = slave.as_raw_fd();
        cmd.stdin(Stdio::from(slave.try_clone().expect("dup")))
            .stdout(Stdio::from(slave.try_clone().expect("dup")))
            .stderr(Stdio::from(slave));
        // SAFETY: setsid + TIOCSCTTY in the child before exec: async-signal-safe calls.
        unsafe {
            cmd.pre_exec(move || {
                nix::unistd::setsid().map_err(std::io::Error::from)?;
                if libc::ioctl(fd, libc::TIOCSCTTY, 0) != 0 {
                    // stdin (fd 0) is the same terminal; try it if fd was closed.
                    libc::ioctl(0, libc::TIOCSCTTY, 0);
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("spawn on pty");
        let master = fs::File::from(pty.master);
        nix::fcntl::fcntl(
            master.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        )
        .expect("nonblock");
        Pty {
            master,
            child,
            seen: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.master.write_all(bytes).expect("write to pty");
    }

    /// Reads until `needle` has appeared (after what earlier expects consumed).
    pub fn expect(&mut self, needle: &str) -> String {
        let end = Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 4096];
        loop {
            if let Some(i) = find(&self.seen, needle.as_bytes()) {
                let out = String::from_utf8_lossy(&self.seen[..i + needle.len()]).to_string();
                self.seen.drain(..i + needle.len());
                return out;
            }
            assert!(
                Instant::now() < end,
                "timed out waiting for {needle:?}; screen so far: {:?}",
                String::from_utf8_lossy(&self.seen)
            );
            match self.master.read(&mut buf) {
                Ok(0) => std::thread::sleep(Duration::from_millis(20)),
                Ok(n) => self.seen.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// Waits for the command to end; returns its exit code.
    pub fn wait(&mut self) -> i32 {
        let end = Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 4096];
        loop {
            // Keep draining so the child never blocks on a full terminal.
            if let Ok(n) = self.master.read(&mut buf) {
                self.seen.extend_from_slice(&buf[..n]);
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < end,
                "command did not exit; screen: {:?}",
                String::from_utf8_lossy(&self.seen)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
