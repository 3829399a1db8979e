//! A private Debian dockerd, the peer the end-to-end tests compare Berth with and use
//! as an independent registry client.

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::require;

/// A private dockerd (own data root, exec root, pid file and socket; no bridge, no
/// iptables), stopped with everything it started on drop.
pub struct Dockerd {
    sock: PathBuf,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Dockerd {
    /// Starts one with `extra` dockerd flags (e.g. `--insecure-registry HOST:PORT`).
    pub fn start(extra: &[&str]) -> Dockerd {
        require("dockerd", "apt-get install docker.io");
        // Short path: unix socket paths stay under 108 bytes.
        let dir = tempfile::Builder::new()
            .prefix("bd-")
            .tempdir_in("/tmp")
            .expect("temp dir");
        let d = dir.path();
        for sub in ["data", "exec"] {
            fs::create_dir_all(d.join(sub)).expect("dockerd dirs");
        }
        // So /etc/docker/daemon.json is not read.
        fs::write(d.join("daemon.json"), "{}").expect("daemon.json");
        let sock = d.join("d.sock");
        let log = fs::File::create(d.join("log")).expect("log");
        let child = Command::new("dockerd")
            .arg("--config-file")
            .arg(d.join("daemon.json"))
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("dockerd.pid"))
            .arg("-H")
            .arg(format!("unix://{}", sock.display()))
            .args(["--bridge=none", "--iptables=false", "--ip6tables=false"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        let mut dd = Dockerd {
            sock,
            dir,
            child: Some(child),
        };
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            if dd.docker(&["version"]).status.success() {
                return dd;
            }
            if let Some(Ok(Some(st))) = dd.child.as_mut().map(|c| c.try_wait()) {
                panic!("dockerd exited ({st}): {}", dd.log());
            }
            assert!(
                Instant::now() < end,
                "dockerd did not come up: {}",
                dd.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// Runs the docker CLI against this dockerd.
    pub fn docker(&self, args: &[&str]) -> std::process::Output {
        self.cmd(args)
            .stdin(Stdio::null())
            .output()
            .expect("run docker")
    }

    /// The docker CLI pointed at this dockerd, to add stdin or env to.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("docker");
        c.args(args)
            .env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", self.dir.path())
            .env_remove("DOCKER_CONTEXT");
        c
    }

    /// `unix://…` of its socket, for DOCKER_HOST.
    pub fn host(&self) -> String {
        format!("unix://{}", self.sock.display())
    }

    /// Copies `image` from a Berth into this dockerd (`docker save` there, `docker
    /// load` here): the peer has no registry to pull from.
    pub fn load_from(&self, b: &crate::Berth, image: &str) {
        use std::io::Write;
        let saved = b
            .cmd(&["save", image])
            .stdin(Stdio::null())
            .output()
            .expect("docker save");
        assert!(
            saved.status.success(),
            "save: {}",
            String::from_utf8_lossy(&saved.stderr)
        );
        let mut load = self
            .cmd(&["load"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("docker load");
        load.stdin
            .take()
            .expect("stdin")
            .write_all(&saved.stdout)
            .expect("write image");
        let o = load.wait_with_output().expect("load");
        assert!(
            o.status.success(),
            "dockerd load: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// Runs the docker CLI against it, expects success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.docker(args);
        assert!(
            o.status.success(),
            "dockerd: docker {args:?} failed: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).to_string()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGTERM first so dockerd stops its containerd and shims itself.
            // SAFETY: kill(2) on the pid of our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let end = Instant::now() + Duration::from_secs(20);
            while Instant::now() < end && matches!(c.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        // Its containerd and shims name paths under our temp dir: kill what is left.
        let dir = self.dir.path().display().to_string();
        for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cmdline = fs::read(e.path().join("cmdline")).unwrap_or_default();
            if pid != std::process::id() as i32 && String::from_utf8_lossy(&cmdline).contains(&dir)
            {
                // SAFETY: kill(2) on a process started under our dockerd's temp dir.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        std::thread::sleep(Duration::from_millis(200));
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut points: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|p| p.starts_with(&dir))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            let _ = nix::mount::umount2(p, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}
