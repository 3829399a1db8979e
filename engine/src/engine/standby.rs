//! A shim started ahead of its container.
//!
//! Starting a shim is an exec of the `berth` binary: the kernel maps it, the dynamic
//! linker relocates it, Rust and clap set up; 3-4 ms of every start on the 2-core test
//! machine (a `berth shim` that exits at once takes 4.4 ms, `/bin/true` 1.2 ms). So one
//! shim waits, started between starts, as `berth shim -`: it reads its container's
//! directory from stdin when a start takes it (then the handshake goes on over the same
//! pipes, see `shim`), and another is started in the background. A start that finds
//! none (the first after the server starts, or many at once) starts its own as before.

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

pub(crate) struct Standby {
    exe: PathBuf,
    /// The engine's state directory, named in the spare's command line (for `ps`).
    root: PathBuf,
    spare: Mutex<Option<Child>>,
    /// One spare is being started: a burst of starts does not start one each.
    refilling: AtomicBool,
}

impl Standby {
    pub(crate) fn new(exe: PathBuf, root: PathBuf) -> Arc<Standby> {
        Arc::new(Standby {
            exe,
            root,
            spare: Mutex::new(None),
            refilling: AtomicBool::new(false),
        })
    }

    /// A shim for the container in `dir`, told its directory already: the spare if one
    /// is waiting, else a new one. The caller calls [`Standby::refill`] once its start
    /// is done, so the next spare's exec does not compete with it for the CPUs.
    pub(crate) fn take(&self, dir: &Path) -> std::io::Result<Child> {
        let spare = self.spare.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(mut child) = spare {
            // Ended meanwhile (killed, or its binary replaced): it is reaped, not used.
            match child.try_wait() {
                // Made ready at idle priority (see `refill`); it works for a start now.
                Ok(None) => {
                    match crate::background::set_policy(child.id() as i32, false)
                        .and_then(|_| tell(&mut child, dir))
                    {
                        Ok(()) => return Ok(child),
                        Err(_) => discard(child),
                    }
                }
                _ => discard(child),
            }
        }
        let mut child = spawn(&self.exe, &self.root)?;
        match tell(&mut child, dir) {
            Ok(()) => Ok(child),
            Err(e) => {
                discard(child);
                Err(e)
            }
        }
    }

    /// Starts a spare in the background when there is none. Its fork and exec run at
    /// idle priority (SCHED_IDLE, which [`Standby::take`] lifts): they take CPU time
    /// only no one else wants, not from the start that just ended and whose container
    /// may be exiting now.
    pub(crate) fn refill(self: &Arc<Self>) {
        if self
            .spare
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
            || self.refilling.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let me = self.clone();
        // At idle priority, which the spare inherits (see `background`).
        crate::background::spawn(move || {
            match spawn(&me.exe, &me.root) {
                Ok(child) => {
                    let old = me
                        .spare
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .replace(child);
                    if let Some(old) = old {
                        discard(old);
                    }
                }
                Err(e) => tracing::debug!("start a spare shim: {e}"),
            }
            me.refilling.store(false, Ordering::Release);
        });
    }
}

/// `berth shim - ROOT`; it detaches itself in a session of its own (setsid) so it
/// outlives the server, and its stderr goes to the container's `shim.log`, which it
/// opens itself. It runs at the calling thread's priority (the refilling thread's is
/// idle). Nothing runs between the fork and the exec, so the standard library spawns
/// it with posix_spawn (a vfork): a fork would copy the server's page tables (about a
/// millisecond and a half here), holding its memory map locked meanwhile, on the
/// way of the start it follows.
fn spawn(exe: &Path, root: &Path) -> std::io::Result<Child> {
    Command::new(exe)
        .arg("shim")
        .arg("-")
        .arg(root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| std::io::Error::new(e.kind(), format!("start shim {}: {e}", exe.display())))
}

/// Ends a shim that will not be used (or has ended) and reaps it.
fn discard(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn tell(child: &mut Child, dir: &Path) -> std::io::Result<()> {
    let stdin = child
        .stdin
        .as_mut()
        .ok_or_else(|| std::io::Error::other("shim without stdin"))?;
    let mut line = dir.as_os_str().as_bytes().to_vec();
    line.push(b'\n');
    stdin.write_all(&line)
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};

    use super::*;

    /// With `cat` for the berth binary, `cat shim - ROOT` copies its stdin to its
    /// stdout: each process shows which directory it was told.
    fn told(child: &mut Child) -> String {
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        line
    }

    fn spare_pid(s: &Standby) -> u32 {
        for _ in 0..500 {
            if let Some(c) = s.spare.lock().unwrap().as_ref() {
                return c.id();
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("no spare was started in 5 s");
    }

    /// Kills what the test started, even when it fails.
    struct Reap(Vec<Child>, Arc<Standby>);
    impl Drop for Reap {
        fn drop(&mut self) {
            let spare = self
                .1
                .spare
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            self.0.drain(..).chain(spare).for_each(discard);
        }
    }

    #[test]
    fn a_start_takes_the_waiting_shim_and_a_dead_one_is_passed_over() {
        let s = Standby::new("/bin/cat".into(), "/nonexistent".into());
        let mut reap = Reap(Vec::new(), s.clone());
        s.refill();
        let first = spare_pid(&s);
        // SAFETY: sched_getscheduler only reads a pid's policy.
        let policy = |pid: u32| unsafe { libc::sched_getscheduler(pid as i32) };
        assert_eq!(
            policy(first),
            libc::SCHED_IDLE,
            "a spare waits at idle priority"
        );
        reap.0.push(s.take(Path::new("/r/containers/a")).unwrap());
        assert_eq!(reap.0[0].id(), first, "the waiting one is taken");
        assert_eq!(
            policy(first),
            libc::SCHED_OTHER,
            "and works at the normal one"
        );
        assert_eq!(told(&mut reap.0[0]), "/r/containers/a\n");

        // None waits now: the start starts its own.
        reap.0.push(s.take(Path::new("/r/containers/b")).unwrap());
        assert_ne!(reap.0[1].id(), first);
        assert_eq!(told(&mut reap.0[1]), "/r/containers/b\n");

        s.refill();
        let second = spare_pid(&s);
        assert_ne!(second, first);
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(second as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        // Dead (a zombie until reaped) before the next start looks.
        for _ in 0..500 {
            let stat = std::fs::read_to_string(format!("/proc/{second}/stat")).unwrap_or_default();
            if stat
                .rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'))
            {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        reap.0.push(s.take(Path::new("/r/containers/c")).unwrap());
        assert_ne!(reap.0[2].id(), second, "a dead spare is not used");
        assert_eq!(told(&mut reap.0[2]), "/r/containers/c\n");
    }
}
