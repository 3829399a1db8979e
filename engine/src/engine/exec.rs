//! `docker exec`: a process started in a running container's namespaces by the
//! helper `berth nsexec`, which joins them with setns(2), forks the command, and (with
//! a TTY) hands the server the pty master it opened inside the container.

use std::fs;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use serde::{Deserialize, Serialize};

use super::container_ops::cgroup_name;
use super::Engine;
use crate::container::{nullable, Status};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::runtime::linux;

/// The exec create request, in Docker's field names.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecConfig {
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub tty: bool,
    #[serde(deserialize_with = "nullable")]
    pub env: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub cmd: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub user: String,
    #[serde(deserialize_with = "nullable")]
    pub working_dir: String,
    #[serde(deserialize_with = "nullable")]
    pub detach_keys: String,
    pub privileged: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExecRecord {
    pub id: String,
    pub namespace: String,
    pub container_id: String,
    pub config: ExecConfig,
    pub running: bool,
    pub exit_code: Option<i32>,
    pub pid: i32,
}

/// What `nsexec` gets (as JSON in `BERTH_NSEXEC`).
#[derive(Debug, Serialize, Deserialize)]
struct NsExecSpec {
    pid: i32,
    cgroup: String,
    args: Vec<String>,
    env: Vec<String>,
    user: String,
    cwd: String,
    tty: bool,
    /// The container's own: an exec'd process is confined like its init.
    security: crate::spec::Security,
    /// The container runs in a user namespace (a lab session's): join it too.
    #[serde(default)]
    userns: bool,
}

/// The running exec's streams.
pub enum ExecIo {
    /// stdin/stdout/stderr of `child` are pipes, relayed by the caller.
    Pipes,
    /// The pty master inside the container; `child`'s stdio are unused.
    Tty(OwnedFd),
}

impl Engine {
    pub fn exec_create(&self, ns: &str, name: &str, config: ExecConfig) -> Result<String> {
        let c = self.container(ns, name)?;
        // The workstation's namespace has no policy: it stays usable.
        self.check_frozen(ns)?;
        if c.state.status != Status::Running {
            return Err(Error::Conflict(if c.state.status == Status::Paused {
                format!("Container {name} is paused, unpause the container before exec")
            } else {
                format!("container {} is not running", c.id)
            }));
        }
        if config.cmd.is_empty() {
            return Err(Error::InvalidArgument("No exec command specified".into()));
        }
        if config.privileged {
            return Err(Error::InvalidArgument("Berth does not run privileged exec sessions".into()));
        }
        if c.host_config.runtime == crate::runtime::WASMTIME {
            // A wasm container has no Linux root to run a program in (its mount
            // namespace still shows the host's): nothing may be exec'd there.
            return Err(Error::Conflict(format!("container {} runs a WebAssembly module: exec needs a Linux container", c.id)));
        }
        let id = fsutil::random_id();
        let cmd = config.cmd.join(" ");
        self.execs.lock().unwrap_or_else(|p| p.into_inner()).insert(
            id.clone(),
            ExecRecord { id: id.clone(), namespace: ns.into(), container_id: c.id.clone(), config, running: false, exit_code: None, pid: 0 },
        );
        self.emit_container(&c, &format!("exec_create: {cmd}"), &[("execID", &id)]);
        Ok(id)
    }

    pub fn exec_inspect(&self, ns: &str, exec_id: &str) -> Result<ExecRecord> {
        self.execs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(exec_id)
            .filter(|e| e.namespace == ns)
            .cloned()
            .ok_or_else(|| Error::NotFound(format!("No such exec instance: {exec_id}")))
    }

    /// Starts the exec's process. The caller relays its stdio (or the pty) and calls
    /// [`Engine::exec_finished`] with the exit code.
    pub fn exec_start(&self, ns: &str, exec_id: &str) -> Result<(Child, ExecIo)> {
        let rec = self.exec_inspect(ns, exec_id)?;
        if rec.running || rec.exit_code.is_some() {
            return Err(Error::Conflict(format!("exec {exec_id} has already run")));
        }
        let c = self.container(ns, &rec.container_id)?;
        if c.state.status != Status::Running {
            return Err(Error::Conflict(format!("container {} is not running", c.id)));
        }
        let mut env = c.config.env.clone();
        for kv in &rec.config.env {
            let key = kv.split('=').next().unwrap_or(kv);
            env.retain(|e| e.split('=').next() != Some(key));
            env.push(kv.clone());
        }
        let spec = NsExecSpec {
            pid: c.state.pid,
            cgroup: cgroup_name(&c),
            args: rec.config.cmd.clone(),
            env,
            user: if rec.config.user.is_empty() { c.config.user.clone() } else { rec.config.user.clone() },
            cwd: if rec.config.working_dir.is_empty() { c.config.working_dir.clone() } else { rec.config.working_dir.clone() },
            tty: rec.config.tty,
            security: self.container_security(&c).map_err(|e| Error::Runtime(format!("OCI runtime exec failed: {e}")))?,
            userns: c.userns.is_some(),
        };
        let json = serde_json::to_string(&spec).map_err(|e| Error::Runtime(e.to_string()))?;
        let mut cmd = Command::new(&self.helper_exe);
        cmd.arg("nsexec").env("BERTH_NSEXEC", json);
        let (ours, theirs) = if rec.config.tty {
            let (a, b) = UnixStream::pair().map_err(|e| Error::Runtime(format!("socketpair: {e}")))?;
            (Some(a), Some(b))
        } else {
            (None, None)
        };
        if let Some(t) = &theirs {
            let fd = t.as_raw_fd();
            // SAFETY: dup2 is async-signal-safe; fd 3 carries the pty master back.
            unsafe {
                cmd.pre_exec(move || nix::unistd::dup2(fd, 3).map(|_| ()).map_err(std::io::Error::from));
            }
            cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
        } else {
            cmd.stdin(if rec.config.attach_stdin { Stdio::piped() } else { Stdio::null() });
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        }
        let mut child = cmd.spawn().map_err(|e| Error::Runtime(format!("start exec helper: {e}")))?;
        drop(theirs);
        let io = match ours {
            Some(sock) => match linux::recv_fd(std::os::fd::AsFd::as_fd(&sock)) {
                Ok(m) => {
                    let keep = m.try_clone().map_err(|e| Error::Runtime(format!("dup pty: {e}")))?;
                    self.exec_ttys.lock().unwrap_or_else(|p| p.into_inner()).insert(exec_id.to_string(), std::sync::Arc::new(keep));
                    ExecIo::Tty(m)
                }
                Err(_) => {
                    let mut msg = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        let _ = e.read_to_string(&mut msg);
                    }
                    let _ = child.wait();
                    return Err(Error::Runtime(format!("OCI runtime exec failed: exec failed: unable to start container process: {}: unknown", msg.trim())));
                }
            },
            None => ExecIo::Pipes,
        };
        let pid = child.id() as i32;
        if let Some(r) = self.execs.lock().unwrap_or_else(|p| p.into_inner()).get_mut(exec_id) {
            r.running = true;
            r.pid = pid;
        }
        let cmdline = rec.config.cmd.join(" ");
        self.emit_container(&c, &format!("exec_start: {cmdline}"), &[("execID", exec_id)]);
        Ok((child, io))
    }

    pub fn exec_finished(&self, ns: &str, exec_id: &str, code: i32) {
        self.exec_ttys.lock().unwrap_or_else(|p| p.into_inner()).remove(exec_id);
        let rec = {
            let mut execs = self.execs.lock().unwrap_or_else(|p| p.into_inner());
            let Some(r) = execs.get_mut(exec_id) else { return };
            r.running = false;
            r.exit_code = Some(code);
            r.clone()
        };
        let code = code.to_string();
        match self.container(ns, &rec.container_id) {
            Ok(c) => self.emit_container(&c, "exec_die", &[("execID", exec_id), ("exitCode", &code)]),
            Err(_) => self.emit(ns, "container", "exec_die", &rec.container_id, &[("execID", exec_id), ("exitCode", &code)]),
        }
    }

    pub fn exec_resize(&self, ns: &str, exec_id: &str, height: u16, width: u16) -> Result<()> {
        let rec = self.exec_inspect(ns, exec_id)?;
        if !rec.running {
            return Err(Error::Conflict(format!("exec {exec_id} is not running")));
        }
        let tty = self.exec_ttys.lock().unwrap_or_else(|p| p.into_inner()).get(exec_id).cloned();
        if let Some(fd) = tty {
            let ws = libc::winsize { ws_row: height, ws_col: width, ws_xpixel: 0, ws_ypixel: 0 };
            // SAFETY: TIOCSWINSZ with a valid winsize on a pty master we hold open.
            unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        }
        Ok(())
    }
}

/// Entry point of `berth nsexec` (spec in `BERTH_NSEXEC`). Joins the container,
/// forks the command, waits, and exits with its code. Must run single-threaded:
/// setns into a mount namespace refuses multi-threaded callers.
pub fn nsexec_main() -> i32 {
    let spec: NsExecSpec = match std::env::var("BERTH_NSEXEC").ok().and_then(|s| serde_json::from_str(&s).ok()) {
        Some(s) => s,
        None => {
            eprintln!("nsexec: missing or bad BERTH_NSEXEC");
            return 126;
        }
    };
    match nsexec(&spec) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("{msg}");
            126
        }
    }
}

fn nsexec(spec: &NsExecSpec) -> std::result::Result<i32, String> {
    use nix::sched::CloneFlags;
    let open = |ns: &str| fs::File::open(format!("/proc/{}/ns/{ns}", spec.pid)).map_err(|e| format!("open {ns} namespace: {e}"));
    let nss = [("ipc", CloneFlags::CLONE_NEWIPC), ("uts", CloneFlags::CLONE_NEWUTS), ("net", CloneFlags::CLONE_NEWNET), ("pid", CloneFlags::CLONE_NEWPID), ("cgroup", CloneFlags::CLONE_NEWCGROUP), ("mnt", CloneFlags::CLONE_NEWNS)];
    let files = nss.iter().map(|(n, f)| open(n).map(|file| (file, *f))).collect::<std::result::Result<Vec<_>, _>>()?;
    // A lab session's container: its user namespace is joined last (after it we hold
    // capabilities only inside it), as its init did.
    // Decided by the container's record, never by what /proc shows: an exec that could
    // not join must fail, not run as the host's root.
    let userns = if spec.userns { Some(open("user")?) } else { None };
    // Read on the host's side, before joining the container's mounts.
    let seccomp = linux::read_seccomp(&spec.security)?;
    // Single-threaded here, so we may enter it ourselves, the fast way (`Cgroup::enter`).
    crate::cgroup::Cgroup::new(&spec.cgroup).enter().map_err(|e| e.to_string())?;
    for (f, flag) in &files {
        nix::sched::setns(f, *flag).map_err(|e| format!("setns: {e}"))?;
    }
    drop(files);
    if let Some(ns) = userns {
        crate::userns::enter(std::os::fd::AsFd::as_fd(&ns))?;
    }
    // SAFETY: single-threaded process; the child only runs setup code and execs.
    match unsafe { nix::unistd::fork() }.map_err(|e| format!("fork: {e}"))? {
        nix::unistd::ForkResult::Child => {
            let err = exec_child(spec, seccomp.as_deref());
            eprintln!("{err}");
            std::process::exit(linux::start_failure_code(&err, spec.args.first().map_or("", String::as_str), 126));
        }
        nix::unistd::ForkResult::Parent { child } => {
            // Our copy of the pty socket must close so the server sees EOF on errors.
            let _ = nix::unistd::close(3);
            loop {
                match nix::sys::wait::waitpid(child, None) {
                    Ok(nix::sys::wait::WaitStatus::Exited(_, c)) => return Ok(c),
                    Ok(nix::sys::wait::WaitStatus::Signaled(_, s, _)) => return Ok(128 + s as i32),
                    Err(nix::Error::EINTR) | Ok(_) => continue,
                    Err(e) => return Err(format!("wait: {e}")),
                }
            }
        }
    }
}

fn exec_child(spec: &NsExecSpec, seccomp: Option<&[u8]>) -> String {
    let run = || -> std::result::Result<std::convert::Infallible, String> {
        let _ = nix::unistd::chdir("/");
        let (uid, gid, groups, home) = linux::resolve_user(&spec.user, &spec.security.extra_groups)?;
        if spec.tty {
            linux::open_tty_and_send(3, uid, gid)?;
        } else {
            nix::unistd::setsid().map_err(|e| format!("setsid: {e}"))?;
        }
        let mut env = spec.env.clone();
        if !env.iter().any(|v| v.starts_with("HOME=")) {
            env.push(format!("HOME={home}"));
        }
        linux::become_and_exec(&spec.args, env, &spec.cwd, (uid, gid, &groups), &spec.security, seccomp)
    };
    match run() {
        Ok(never) => match never {},
        Err(e) => format!("OCI runtime exec failed: exec failed: unable to start container process: {e}: unknown"),
    }
}
