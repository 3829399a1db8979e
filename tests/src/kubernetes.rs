//! A real one-node Kubernetes cluster on this machine, for tests that deploy Berth on
//! Kubernetes: a guard around `tests/kubernetes/cluster` (see its README), which
//! builds Kubernetes from Debian's source package once (cached outside the clone) and
//! runs it offline with its own etcd, containerd, pod bridge and DNS.
//!
//! Only one cluster can run on a machine (its ports, pod bridge and iptables chains
//! are machine-wide): the tests of one process take turns on [`CLUSTER`], test
//! processes on a lock file (waiting a while, then a clear error), and
//! `cluster up` refuses while any cluster is up. A cluster left by a test process that
//! was killed is torn down by the next `up` (the script knows its owner).

use std::fs;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Held by each [`Cluster`] of this process: tests that need one run one at a time.
pub static CLUSTER: Mutex<()> = Mutex::new(());

/// Held (flock) by the process whose tests use the cluster, so that two test processes
/// never tear down each other's cluster.
const PROCESS_LOCK: &str = "/run/berth-k8s/tests.lock";

/// The cluster script, `tests/kubernetes/cluster`.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("kubernetes/cluster")
}

/// Its state directory: $BERTH_K8S_DIR, as the script reads it, or its default.
pub fn state_dir() -> PathBuf {
    std::env::var_os("BERTH_K8S_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/berth-k8s"))
}

/// A running cluster, brought down (`cluster down`) on drop, also when the test fails.
pub struct Cluster {
    kubeconfig: PathBuf,
    /// Seconds `cluster up` took.
    pub up_seconds: f64,
    down_done: bool,
    _process_lock: fs::File,
    _turn: MutexGuard<'static, ()>,
}

impl Cluster {
    /// Builds Kubernetes if it is not cached (`cluster build`: the first time on a
    /// machine, minutes), starts a cluster and waits until its node is Ready and its
    /// DNS answers.
    pub fn up() -> Cluster {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the Kubernetes tests run as root (they start a kubelet, containerd, make interfaces and iptables rules)"
        );
        let turn = CLUSTER.lock().unwrap_or_else(|p| p.into_inner());
        let process_lock = take_process_lock();
        run_script(&["build"], "cluster build");
        let mut c = Cluster {
            kubeconfig: PathBuf::new(),
            up_seconds: 0.0,
            down_done: false,
            _process_lock: process_lock,
            _turn: turn,
        };
        // From here on a panic drops `c`, which runs `cluster down`.
        let t = Instant::now();
        let o = Command::new(script())
            .arg("up")
            // So that a cluster this process leaves behind (killed mid-test) is known
            // to be stale by the next `up`.
            .env("BERTH_K8S_OWNER_PID", std::process::id().to_string())
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .expect("run tests/kubernetes/cluster up");
        assert!(
            o.status.success(),
            "tests/kubernetes/cluster up failed ({}): see its messages above",
            o.status
        );
        c.up_seconds = t.elapsed().as_secs_f64();
        c.kubeconfig = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
        assert!(
            c.kubeconfig.is_file(),
            "cluster up printed {:?}, not a kubeconfig",
            c.kubeconfig
        );
        c
    }

    /// The admin kubeconfig (for programs other than [`Cluster::kubectl`]).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// kubectl of the cluster's own version (built with it), with `args`.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(script());
        c.arg("kubectl").args(args).stdin(Stdio::null());
        c
    }

    /// Runs kubectl; returns its output whatever the exit status.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run cluster kubectl")
    }

    /// Runs kubectl and expects success; returns trimmed stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.kubectl(args);
        assert!(
            o.status.success(),
            "kubectl {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim_end().to_string()
    }

    /// `kubectl apply -f -` with `yaml`.
    pub fn apply_yaml(&self, yaml: &str) {
        let mut child = self
            .cmd(&["apply", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run cluster kubectl apply");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(yaml.as_bytes())
            .expect("write manifest");
        let o = child.wait_with_output().expect("kubectl apply");
        assert!(
            o.status.success(),
            "kubectl apply failed: {}\nmanifest:\n{yaml}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// Imports an image archive (`docker save`'s format, or [`image_archive`]'s) into
    /// the cluster's containerd; pods use it with `imagePullPolicy: Never`.
    pub fn load_image(&self, archive: &Path) {
        run_script(
            &["load-image", archive.to_str().expect("utf-8 path")],
            "cluster load-image",
        );
    }

    /// Polls `f` every half second until it holds, or fails the test after `timeout`
    /// with what the cluster says of its pods.
    pub fn eventually(&self, what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
        let end = Instant::now() + timeout;
        while !f() {
            assert!(
                Instant::now() < end,
                "timed out after {timeout:?} waiting for: {what}\n{}",
                self.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// `kubectl rollout status` of `what` (e.g. `statefulset/x`) in `namespace`; on
    /// a timeout, fails with the pods, claims and events.
    pub fn rollout(&self, namespace: &str, what: &str, timeout: Duration) {
        let o = self.kubectl(&[
            "-n",
            namespace,
            "rollout",
            "status",
            what,
            &format!("--timeout={}s", timeout.as_secs()),
        ]);
        assert!(
            o.status.success(),
            "{what} in {namespace} did not roll out: {}\n{}",
            String::from_utf8_lossy(&o.stderr),
            self.diagnostics()
        );
    }

    /// Pods, claims, volumes and recent events of the whole cluster, for failures.
    pub fn diagnostics(&self) -> String {
        let text = |args: &[&str]| {
            let o = self.kubectl(args);
            format!(
                "$ kubectl {}\n{}{}",
                args.join(" "),
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        };
        [
            text(&["get", "nodes,pods,pvc,pv", "-A", "-o", "wide"]),
            text(&["get", "events", "-A", "--sort-by=.lastTimestamp"]),
        ]
        .join("\n")
    }

    /// Brings the cluster down now (`cluster down`), returning how long it took; fails
    /// if `down` reports anything left behind.
    pub fn down(mut self) -> f64 {
        self.down_done = true;
        let t = Instant::now();
        run_script(&["down"], "cluster down");
        t.elapsed().as_secs_f64()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.down_done {
            return;
        }
        let st = Command::new(script())
            .arg("down")
            .stdin(Stdio::null())
            .status();
        if !matches!(st, Ok(s) if s.success()) {
            eprintln!("tests/kubernetes/cluster down failed ({st:?}): run it by hand");
        }
    }
}

/// Runs the cluster script with `args`, its messages going to the test's stderr;
/// fails the test (with the script's own message, which names what to install when a
/// prerequisite is missing) if it fails.
fn run_script(args: &[&str], what: &str) {
    let st = Command::new(script())
        .args(args)
        .stdin(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script().display()));
    assert!(st.success(), "{what} failed ({st}): see its messages above");
}

/// Takes [`PROCESS_LOCK`]. Another test process holding it (another engineer's
/// `cargo test` on a shared machine) is waited for, up to $BERTH_K8S_LOCK_WAIT seconds
/// (600; 0 fails at once), then it is a clear error.
fn take_process_lock() -> fs::File {
    fs::create_dir_all("/run/berth-k8s").expect("create /run/berth-k8s");
    let mut f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(PROCESS_LOCK)
        .unwrap_or_else(|e| panic!("{PROCESS_LOCK}: {e}"));
    let wait = std::env::var("BERTH_K8S_LOCK_WAIT")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600u64);
    let end = Instant::now() + Duration::from_secs(wait);
    let mut said = false;
    // SAFETY: flock(2) on a file we opened; the lock goes with the file (or the process).
    while unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let holder = fs::read_to_string(PROCESS_LOCK).unwrap_or_default();
        assert!(
            Instant::now() < end,
            "another process (pid {}) has used this machine's Kubernetes cluster for more than \
             {wait} s ({PROCESS_LOCK}): only one cluster can run on a machine",
            holder.trim()
        );
        if !said {
            eprintln!(
                "kubernetes: waiting for process {} to end its cluster (only one per machine)",
                holder.trim()
            );
            said = true;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    f.set_len(0).expect("truncate lock");
    writeln!(f, "{}", std::process::id()).expect("write lock");
    f
}

/// Writes an image archive named `name` (e.g. `local/busybox:1`) whose root has
/// busybox-static as /bin/busybox and all its applets (sh, httpd, nslookup, mount…),
/// built without any registry (`tests/kubernetes/mkimage`).
pub fn busybox_image(name: &str, out: &Path) {
    crate::require("/bin/busybox", "apt-get install busybox-static");
    let root = tempfile::Builder::new()
        .prefix("berth-k8s-image-")
        .tempdir()
        .expect("temp dir");
    let r = root.path();
    for d in ["bin", "etc", "tmp", "proc", "sys", "dev", "mnt"] {
        fs::create_dir_all(r.join(d)).expect("image dirs");
    }
    fs::copy("/bin/busybox", r.join("bin/busybox")).expect("copy busybox");
    let list = Command::new("/bin/busybox")
        .arg("--list")
        .output()
        .expect("busybox --list");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", r.join("bin").join(applet)).expect("applet link");
        }
    }
    fs::write(r.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").expect("passwd");
    fs::write(r.join("etc/group"), "root:x:0:\n").expect("group");
    image_archive(r, name, out, &["--cmd", r#"["/bin/sh"]"#]);
}

/// `tests/kubernetes/mkimage ROOTFS NAME OUT [OPTIONS]`: a one-layer image archive of
/// the directory `rootfs`.
pub fn image_archive(rootfs: &Path, name: &str, out: &Path, options: &[&str]) {
    let mkimage = script().with_file_name("mkimage");
    let o = Command::new(&mkimage)
        .arg(rootfs)
        .arg(name)
        .arg(out)
        .args(options)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", mkimage.display()));
    assert!(
        o.status.success(),
        "mkimage {name} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}
