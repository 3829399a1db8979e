//! The build cache: a step is reused when its parent image, its instruction (as it
//! goes into the history, so build args count) and, for COPY/ADD, the content hash of
//! its sources match an earlier build's step.
//!
//! ```text
//! <root>/build-cache/<sha256 of the key>   the image id that step made
//! ```
//! One file per entry, each written atomically: a crash leaves old or new entries,
//! never a torn index, and concurrent builds never rewrite each other's entries.
//!
//! A step is made once even when many builds ask for it at the same moment (a class
//! building the lesson's Dockerfile together): the first build to miss claims the
//! step ([`InFlight`]), the others wait for it and then find it in the cache.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use crate::error::Result;
use crate::fsutil;
use crate::store::sha256_digest;

pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    pub fn new(root: &std::path::Path) -> Cache {
        Cache { dir: root.join("build-cache") }
    }

    /// The entry's name: the hex SHA-256 of the key.
    pub fn key(parent: &str, step: &str, content: &str) -> String {
        sha256_digest(format!("{parent}\n{step}\n{content}").as_bytes())[7..].to_string()
    }

    fn path(&self, parent: &str, step: &str, content: &str) -> PathBuf {
        self.dir.join(Self::key(parent, step, content))
    }

    pub fn get(&self, parent: &str, step: &str, content: &str) -> Option<String> {
        let id = std::fs::read_to_string(self.path(parent, step, content)).ok()?;
        let id = id.trim().to_string();
        crate::reference::validate_digest(&id).ok()?;
        Some(id)
    }

    pub fn put(&self, parent: &str, step: &str, content: &str, id: &str) -> Result<()> {
        fsutil::write_atomic(&self.path(parent, step, content), id.as_bytes())
    }
}

/// The steps some build is making now, by cache key (one per engine).
#[derive(Default)]
pub struct InFlight {
    steps: Mutex<HashMap<String, Arc<Making>>>,
}

/// One step being made; `done` turns true when its maker wrote the cache entry or
/// gave up (failed, or the build ended).
#[derive(Default)]
pub struct Making {
    done: Mutex<bool>,
    changed: Condvar,
}

impl Making {
    /// Waits until the step is done or `deadline`; false when the deadline came first.
    pub fn wait_until(&self, deadline: Instant) -> bool {
        let mut done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        while !*done {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            done = self.changed.wait_timeout(done, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        true
    }
}

/// This build is making the step; dropping it lets the waiting builds look again.
pub struct Claim<'a> {
    owner: &'a InFlight,
    key: String,
    making: Arc<Making>,
}

impl InFlight {
    /// Claims the step `key`, or, when another build is making it, hands back what
    /// to wait for.
    pub fn claim(&self, key: &str) -> std::result::Result<Claim<'_>, Arc<Making>> {
        let mut steps = self.steps.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(m) = steps.get(key) {
            return Err(m.clone());
        }
        let making = Arc::new(Making::default());
        steps.insert(key.to_string(), making.clone());
        Ok(Claim { owner: self, key: key.to_string(), making })
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.owner.steps.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.key);
        *self.making.done.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.making.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn one_build_makes_a_step_and_the_others_wait_for_it() {
        let f = InFlight::default();
        let claim = f.claim("k").ok().expect("the first build claims the step");
        let waiting = f.claim("k").err().expect("a second build is told to wait");
        assert!(f.claim("other").is_ok(), "another step is not held up");
        assert!(!waiting.wait_until(Instant::now() + Duration::from_millis(20)), "not done yet");
        std::thread::scope(|s| {
            let w = s.spawn(|| waiting.wait_until(Instant::now() + Duration::from_secs(10)));
            std::thread::sleep(Duration::from_millis(20));
            drop(claim);
            assert!(w.join().unwrap(), "woken when the maker is done");
        });
        assert!(f.claim("k").is_ok(), "free again once made");
    }
}
