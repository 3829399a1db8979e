//! Work that can wait: run on a thread of its own at idle priority.
//!
//! After a short command exits, its answer hops between a few threads (the shim's,
//! the engine's watch, the server's workers) on a machine with two cores. Clean-up
//! started at that moment (deleting an `--rm` container's files, the fsync of a record
//! just written, the next spare shim's exec) ran beside them as an equal and held
//! each hop back a millisecond or more. At `SCHED_IDLE` it runs when a core has
//! nothing else to do, which on a lab server is most of the time.

/// Runs `f` on a new thread at idle priority.
pub fn spawn<F: FnOnce() + Send + 'static>(f: F) {
    std::thread::spawn(move || {
        if let Err(e) = set_idle(true) {
            tracing::debug!("idle priority for background work: {e}");
        }
        f()
    });
}

/// Puts the calling thread at idle priority (`SCHED_IDLE`) or back at the normal one.
/// A policy is per thread, and inherited by what the thread starts.
fn set_idle(idle: bool) -> std::io::Result<()> {
    set_policy(0, idle)
}

/// [`set_idle`] for another thread or process, by id (0: the calling thread).
pub fn set_policy(tid: i32, idle: bool) -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    let policy = if idle {
        libc::SCHED_IDLE
    } else {
        libc::SCHED_OTHER
    };
    // SAFETY: a plain system call with a valid sched_param.
    if unsafe { libc::sched_setscheduler(tid, policy, &param) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn background_work_runs_at_idle_priority() {
        let (tx, rx) = std::sync::mpsc::channel();
        spawn(move || {
            // SAFETY: a plain system call on the calling thread.
            let _ = tx.send(unsafe { libc::sched_getscheduler(0) });
        });
        assert_eq!(rx.recv().unwrap(), libc::SCHED_IDLE);
        // The caller's own priority is untouched.
        // SAFETY: as above.
        assert_eq!(unsafe { libc::sched_getscheduler(0) }, libc::SCHED_OTHER);
    }
}
