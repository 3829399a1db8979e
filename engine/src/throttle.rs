//! A byte budget per second, for a container's output in a lab session.
//!
//! A program that prints as fast as it can (`yes`) keeps its shim copying and
//! logging at full speed; the kernel's share of that work (the log file's writeback)
//! runs outside the session's cgroup and slows every other student. Its output is
//! taken at the budget instead: the shim waits before reading more, the container's
//! pipe or terminal fills, and the writer blocks, as it would on a slow terminal or
//! behind Docker's blocking log driver. Nothing is dropped.

use std::time::{Duration, Instant};

/// A token bucket: `rate` bytes a second, with up to one second of them saved up,
/// so short bursts (a build's output, a `cat` of a small file) go through at once.
#[derive(Debug)]
pub struct Throttle {
    rate: u64,
    /// Bytes that may go now; below zero after a large write, which is paid back
    /// by waiting.
    tokens: f64,
    last: Instant,
}

impl Throttle {
    /// A budget of `rate` bytes a second; None for 0 (no limit).
    pub fn new(rate: u64, now: Instant) -> Option<Throttle> {
        (rate > 0).then_some(Throttle {
            rate,
            tokens: rate as f64,
            last: now,
        })
    }

    /// Counts `bytes` sent at `now`; returns how long to wait before sending more.
    pub fn charge(&mut self, bytes: u64, now: Instant) -> Duration {
        let rate = self.rate as f64;
        let earned = now.saturating_duration_since(self.last).as_secs_f64() * rate;
        self.last = now;
        self.tokens = (self.tokens + earned).min(rate) - bytes as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_rate_no_throttle() {
        assert!(Throttle::new(0, Instant::now()).is_none());
    }

    #[test]
    fn a_burst_goes_at_once_and_more_waits_for_its_share() {
        let t0 = Instant::now();
        let mut t = Throttle::new(1000, t0).unwrap();
        // A second's worth is saved up.
        assert_eq!(t.charge(600, t0), Duration::ZERO);
        assert_eq!(t.charge(400, t0), Duration::ZERO);
        // Then each byte costs a millisecond.
        assert_eq!(t.charge(250, t0), Duration::from_millis(250));
        // Waiting pays it back; what was earned meanwhile is not lost.
        let t1 = t0 + Duration::from_millis(250);
        assert_eq!(t.charge(0, t1), Duration::ZERO);
        let t2 = t1 + Duration::from_millis(100);
        assert_eq!(t.charge(100, t2), Duration::ZERO);
        assert_eq!(t.charge(50, t2), Duration::from_millis(50));
    }

    #[test]
    fn a_long_pause_saves_up_one_second_at_most() {
        let t0 = Instant::now();
        let mut t = Throttle::new(1000, t0).unwrap();
        t.charge(1000, t0);
        let later = t0 + Duration::from_secs(60);
        assert_eq!(t.charge(1000, later), Duration::ZERO);
        assert_eq!(t.charge(500, later), Duration::from_millis(500));
    }

    #[test]
    fn the_rate_over_time_is_the_budget() {
        // A writer that always has more: what it sends in 10 s, waits included.
        let t0 = Instant::now();
        let mut t = Throttle::new(4096, t0).unwrap();
        let (mut now, mut sent) = (t0, 0u64);
        while now < t0 + Duration::from_secs(10) {
            sent += 1500;
            now += t.charge(1500, now);
        }
        // 10 s at the rate, plus the second saved up at the start, plus one write.
        assert!((40_960..=40_960 + 4096 + 1500).contains(&sent), "{sent}");
    }
}
