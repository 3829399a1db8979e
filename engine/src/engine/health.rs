//! The health monitor: while a container with a health check runs, its probe runs as
//! an exec inside it (the container's user, working dir, env, namespaces and seccomp,
//! as `docker exec`) every interval; results move `State.Health` (see `health`) and
//! status changes are `health_status: …` events, as dockerd sends them.

use std::io::Read;
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;

use super::{Engine, ExecConfig, ExecRecord};
use crate::container::{Container, Status};
use crate::error::{Error, Result};
use crate::events::Event;
use crate::health::{self, HealthConfig, HealthResult, LimitedBuffer};

/// How long the readers of a finished probe's output may take: a probe that left a
/// background process holding its stdout open must not hold the monitor.
const OUTPUT_GRACE: Duration = Duration::from_millis(500);

impl Engine {
    /// Starts the monitor of a container that runs (just started, or found running
    /// after a server restart). It ends by itself when that run of the container
    /// ends: it is tied to the run's pid and start time.
    pub(super) fn watch_health(self: &Arc<Self>, c: &Container) {
        let Some(cfg) = c.config.healthcheck.clone().filter(|h| h.probe().is_some()) else {
            return;
        };
        if c.state.health.is_none() {
            return;
        }
        let engine = self.clone();
        let c = c.clone();
        std::thread::spawn(move || engine.health_loop(c, cfg));
    }

    fn health_loop(self: Arc<Self>, run: Container, cfg: HealthConfig) {
        let Some(started) = run.state.started_at else {
            return;
        };
        let same_run = |c: &Container| {
            c.state.pid == run.state.pid
                && c.state.started_at == run.state.started_at
                && c.state.status.is_live()
        };
        // Wakes the wait early when the container dies or is removed.
        let (_, events) = self.events.subscribe(None);
        loop {
            let Some(c) = self
                .container(&run.namespace, &run.id)
                .ok()
                .filter(same_run)
            else {
                return;
            };
            let wait = health::next_wait(
                &cfg,
                started,
                Utc::now(),
                c.state.health.as_ref().map(|h| h.status),
            );
            if !sleep_while_running(&events, &run.id, wait) {
                return;
            }
            let Some(c) = self
                .container(&run.namespace, &run.id)
                .ok()
                .filter(same_run)
            else {
                return;
            };
            // dockerd stops probing a paused container and starts again at unpause.
            if c.state.status == Status::Paused {
                continue;
            }
            let result = self.probe(&c, &cfg);
            // A probe that ended with its container (stopped, killed) is dropped, as
            // dockerd drops results that come after it stopped the monitor: the
            // container's init is gone, or a zombie, before its exit is recorded.
            if result.exit_code != 0 && !init_alive(c.state.pid) {
                return;
            }
            // A result of a run that ended meanwhile is dropped.
            let changed = self.update(&run.id, |c| match (same_run(c), &mut c.state.health) {
                (true, Some(h)) => h.record(result, &cfg, started),
                _ => None,
            });
            match changed {
                Ok(Some(status)) => {
                    self.emit_container(&c, &format!("health_status: {}", status.as_str()), &[])
                }
                Ok(None) => {}
                Err(_) => return,
            }
        }
    }

    /// Runs the probe once; a probe that cannot run is a failure with the reason as its
    /// output (ExitCode -1), as in dockerd.
    fn probe(&self, c: &Container, cfg: &HealthConfig) -> HealthResult {
        let start = Utc::now();
        let (exit_code, output) = match self.run_probe(c, cfg) {
            Ok(r) => r,
            Err(e) => (-1, e.to_string()),
        };
        HealthResult {
            start,
            end: Utc::now(),
            exit_code,
            output,
        }
    }

    fn run_probe(&self, c: &Container, cfg: &HealthConfig) -> Result<(i64, String)> {
        let cmd = cfg.probe().unwrap_or_default();
        if cmd.is_empty() {
            return Err(Error::InvalidArgument("No exec command specified".into()));
        }
        // Registered as `docker exec` would be (dockerd sends exec_create, exec_start and
        // exec_die for probes too), but past a lab's freeze: it is not the student's.
        // Empty user and working dir: the container's.
        let exec_id = crate::fsutil::random_id();
        let config = ExecConfig {
            attach_stdout: true,
            attach_stderr: true,
            cmd: cmd.clone(),
            ..Default::default()
        };
        self.execs.lock().unwrap_or_else(|p| p.into_inner()).insert(
            exec_id.clone(),
            ExecRecord {
                id: exec_id.clone(),
                namespace: c.namespace.clone(),
                container_id: c.id.clone(),
                config,
                running: false,
                exit_code: None,
                pid: 0,
            },
        );
        self.emit_container(
            c,
            &format!("exec_create: {}", cmd.join(" ")),
            &[("execID", &exec_id)],
        );
        let out = self.start_probe(c, &exec_id, cfg.timeout());
        // Probes are not listed as the container's execs afterwards.
        self.execs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&exec_id);
        out
    }

    fn start_probe(&self, c: &Container, exec_id: &str, timeout_ns: i64) -> Result<(i64, String)> {
        let (mut child, _) = self.exec_start(&c.namespace, exec_id)?;
        let output = Arc::new(Mutex::new(LimitedBuffer::default()));
        // stdout and stderr into one buffer, as they come (dockerd's probe output).
        let (done_tx, done_rx) = channel::<()>();
        let readers: Vec<Box<dyn Read + Send>> = [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child.stderr.take().map(|s| Box::new(s) as _),
        ]
        .into_iter()
        .flatten()
        .collect();
        let n_readers = readers.len();
        for mut r in readers {
            let (output, done) = (output.clone(), done_tx.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = r.read(&mut buf) {
                    output
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .write(&buf[..n]);
                }
                let _ = done.send(());
            });
        }
        drop(done_tx);
        let helper = child.id() as i32;
        let (code_tx, code_rx) = channel();
        std::thread::spawn(move || {
            let code = child.wait().ok().and_then(|s| s.code()).unwrap_or(-1);
            let _ = code_tx.send(code);
        });
        let timeout = Duration::from_nanos(timeout_ns.max(0) as u64);
        let (code, timed_out) = match code_rx.recv_timeout(timeout) {
            Ok(code) => (code, false),
            Err(_) => {
                kill_probe(helper);
                (
                    code_rx.recv_timeout(Duration::from_secs(10)).unwrap_or(-1),
                    true,
                )
            }
        };
        let end = Instant::now() + OUTPUT_GRACE;
        for _ in 0..n_readers {
            if done_rx
                .recv_timeout(end.saturating_duration_since(Instant::now()))
                .is_err()
            {
                break;
            }
        }
        self.exec_finished(&c.namespace, exec_id, code);
        let text = output.lock().unwrap_or_else(|p| p.into_inner()).text();
        Ok(if timed_out {
            (-1, health::timeout_output(timeout_ns))
        } else {
            (code as i64, text)
        })
    }
}

/// Kills a probe past its timeout: the command `berth nsexec` forked in the container
/// (with its process group: the command made its own session) and, should it still be
/// joining the container, the helper.
fn kill_probe(helper: i32) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let children = std::fs::read_to_string(format!("/proc/{helper}/task/{helper}/children"))
        .unwrap_or_default();
    let children: Vec<i32> = children
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect();
    for &pid in &children {
        let _ = kill(Pid::from_raw(-pid), Signal::SIGKILL);
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    if children.is_empty() {
        let _ = kill(Pid::from_raw(helper), Signal::SIGKILL);
    }
}

/// Whether the container's init still runs (not exited, not a zombie).
fn init_alive(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state follows the command name, which is in parentheses.
    matches!(stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()), Some(s) if s != "Z" && s != "X")
}

/// Sleeps `d`, or less when the container dies or is removed (false then).
fn sleep_while_running(events: &Receiver<Event>, id: &str, d: Duration) -> bool {
    let end = Instant::now() + d;
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match events.recv_timeout(left) {
            Ok(e)
                if e.kind == "container"
                    && e.id == id
                    && matches!(e.action.as_str(), "die" | "destroy") =>
            {
                return false
            }
            Ok(_) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => return true,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return false,
        }
    }
    true
}
