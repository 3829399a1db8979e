//! Failures per key (a client address, an instructor's name) in a sliding window:
//! join codes, PINs, rejoin links and passwords are guessed by failing, so only
//! failures are counted. A whole class joining from behind one school address in the
//! same minute is then never slowed down, while a guesser from that address is held
//! to `max` wrong tries per `window`.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct FailureLimit {
    max: usize,
    window: Duration,
    seen: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl FailureLimit {
    pub fn new(max: usize, window: Duration) -> FailureLimit {
        FailureLimit { max: max.max(1), window, seen: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, VecDeque<Instant>>> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long `key` must wait before it may try again (None: it may now).
    pub fn blocked(&self, key: &str, now: Instant) -> Option<Duration> {
        let mut seen = self.lock();
        let times = seen.get_mut(key)?;
        while times.front().is_some_and(|t| now.duration_since(*t) >= self.window) {
            times.pop_front();
        }
        if times.is_empty() {
            seen.remove(key);
            return None;
        }
        (times.len() >= self.max).then(|| self.window.saturating_sub(now.duration_since(times[0])).max(Duration::from_secs(1)))
    }

    /// Counts a failure of `key`.
    pub fn failed(&self, key: &str, now: Instant) {
        let mut seen = self.lock();
        // Forget keys that went quiet, so a scan of many addresses cannot grow this.
        if seen.len() > 10_000 {
            let window = self.window;
            seen.retain(|_, t| t.back().is_some_and(|last| now.duration_since(*last) < window));
        }
        let times = seen.entry(key.to_string()).or_default();
        times.push_back(now);
        while times.len() > self.max {
            times.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_block_a_key_until_the_oldest_leaves_the_window() {
        let l = FailureLimit::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        assert_eq!(l.blocked("a", t0), None);
        for i in 0..3 {
            assert_eq!(l.blocked("a", t0 + Duration::from_secs(i)), None);
            l.failed("a", t0 + Duration::from_secs(i));
        }
        assert_eq!(l.blocked("a", t0 + Duration::from_secs(10)), Some(Duration::from_secs(50)));
        assert_eq!(l.blocked("b", t0 + Duration::from_secs(10)), None, "other keys are not held");
        // The first failure leaves the window after 60 s: one more try.
        assert_eq!(l.blocked("a", t0 + Duration::from_secs(60)), None);
        l.failed("a", t0 + Duration::from_secs(60));
        assert!(l.blocked("a", t0 + Duration::from_millis(60_500)).is_some());
    }
}
