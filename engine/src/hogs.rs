//! Keeping a session that uses all the CPU it may to as few CPUs as its limit needs.
//!
//! A session's CPU limit is a quota per 100 ms period. A session at its limit of one
//! CPU, running many busy processes on a two-core host, runs on both cores at once for
//! half of each period and is throttled for the other half: while it runs, every other
//! task there (the other students' shells, the server, the terminal's bytes on their
//! way) waits for a scheduler tick behind it, hop after hop, and the others' keystrokes
//! echo tens of milliseconds late. Kept on one core, the same session gets the same
//! CPU time and is never throttled, and the other core stays free for everyone else.
//! Its scheduling is not made idle (`cpu.idle`) unless the server is told to: the
//! kernel counts a core running only idle-scheduled tasks as idle when it places a
//! waking task, so the others' wake-ups cross to the kept core, and on a VM a wake-up
//! across vCPUs waits for the hypervisor to run the other one (milliseconds under
//! steal, where one on the same vCPU takes microseconds). Measured with
//! scripts/bench/noisy-neighbour and scripts/bench/vcpu-wakeups.
//!
//! [`HogWatch`] decides from samples of each envelope's CPU use; the caller (the lab)
//! samples and applies what it decides with [`crate::envelope::Envelope::keep_to_cpus`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::cpus::CpuSet;

/// A session using this share of its limit (or more) is kept to its CPUs...
const BUSY: f64 = 0.8;
/// ... until it has used less than this share for the watch's `calm_for`.
const CALM: f64 = 0.25;

/// One session's envelope as sampled.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The envelope's cgroup name (its identity here).
    pub cgroup: String,
    /// Its CPU limit in CPUs (0: none).
    pub cpus: f64,
    /// CPU time it has used so far, in nanoseconds.
    pub usage_ns: u64,
    /// The CPUs it may use now (None: unknown). What the envelope really has is the
    /// truth here: a change that failed, or one made before a restart of the server,
    /// is seen on the next sample.
    pub cpus_now: Option<CpuSet>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Keep this envelope to these CPUs.
    Keep { cgroup: String, cpus: CpuSet },
    /// Give it all the CPUs back.
    Free { cgroup: String },
}

#[derive(Debug)]
struct Kept {
    cpus: CpuSet,
    /// Its limit in CPUs, spread over `cpus`: the load it puts on each.
    load: f64,
    calm_since: Option<Instant>,
}

#[derive(Debug)]
pub struct HogWatch {
    calm_for: Duration,
    last: HashMap<String, (u64, Instant)>,
    kept: HashMap<String, Kept>,
}

impl HogWatch {
    /// A watch that gives a kept session all CPUs back once it has been calm for
    /// `calm_for`.
    pub fn new(calm_for: Duration) -> HogWatch {
        HogWatch {
            calm_for,
            last: HashMap::new(),
            kept: HashMap::new(),
        }
    }

    /// Takes samples made at `now` of every session's envelope, with the CPUs
    /// sessions may use (`host`), and says which to keep to fewer CPUs and which to
    /// free. Envelopes no longer sampled are forgotten (their sessions are gone).
    pub fn observe(&mut self, now: Instant, host: &CpuSet, samples: &[Sample]) -> Vec<Decision> {
        let mut out = Vec::new();
        self.last
            .retain(|cg, _| samples.iter().any(|s| &s.cgroup == cg));
        self.kept
            .retain(|cg, _| samples.iter().any(|s| &s.cgroup == cg));
        for s in samples {
            let limit = if s.cpus > 0.0 {
                s.cpus.min(host.len() as f64)
            } else {
                host.len() as f64
            };
            let need = limit.ceil().max(1.0) as usize;
            let Some((before, at)) = self.last.insert(s.cgroup.clone(), (s.usage_ns, now)) else {
                continue;
            };
            let secs = now.duration_since(at).as_secs_f64();
            if secs <= 0.0 {
                continue;
            }
            let rate = s.usage_ns.saturating_sub(before) as f64 / 1e9 / secs;
            match &s.cpus_now {
                Some(now_cpus) if now_cpus == host => {
                    self.kept.remove(&s.cgroup);
                }
                Some(now_cpus) if !self.kept.contains_key(&s.cgroup) => {
                    let load = limit / now_cpus.len().max(1) as f64;
                    self.kept.insert(
                        s.cgroup.clone(),
                        Kept {
                            cpus: now_cpus.clone(),
                            load,
                            calm_since: None,
                        },
                    );
                }
                _ => {}
            }
            if let Some(k) = self.kept.get_mut(&s.cgroup) {
                if rate >= CALM * limit {
                    k.calm_since = None;
                } else if now.duration_since(*k.calm_since.get_or_insert(now)) >= self.calm_for {
                    self.kept.remove(&s.cgroup);
                    out.push(Decision::Free {
                        cgroup: s.cgroup.clone(),
                    });
                }
            } else if need < host.len() && rate >= BUSY * limit {
                let cpus = self.least_loaded(host, need);
                let load = limit / need as f64;
                self.kept.insert(
                    s.cgroup.clone(),
                    Kept {
                        cpus: cpus.clone(),
                        load,
                        calm_since: None,
                    },
                );
                out.push(Decision::Keep {
                    cgroup: s.cgroup.clone(),
                    cpus,
                });
            }
        }
        out
    }

    /// The `n` CPUs of `host` the kept sessions load least; among equals the last
    /// ones, as the first CPU usually takes more of the host's interrupts.
    fn least_loaded(&self, host: &CpuSet, n: usize) -> CpuSet {
        let load = |cpu: usize| -> f64 {
            self.kept
                .values()
                .filter(|k| k.cpus.iter().any(|c| c == cpu))
                .map(|k| k.load)
                .sum()
        };
        let mut cpus: Vec<(f64, usize)> = host.iter().rev().map(|c| (load(c), c)).collect();
        cpus.sort_by(|a, b| a.0.total_cmp(&b.0));
        CpuSet::from_cpus(cpus.into_iter().take(n).map(|(_, c)| c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALM_FOR: Duration = Duration::from_secs(30);

    fn sample(cg: &str, cpus: f64, usage_s: f64) -> Sample {
        Sample {
            cgroup: cg.into(),
            cpus,
            usage_ns: (usage_s * 1e9) as u64,
            cpus_now: None,
        }
    }

    #[test]
    fn a_session_at_its_limit_is_kept_to_the_cpus_it_needs_until_it_calms_down() {
        let host = CpuSet::parse("0-3").unwrap();
        let mut w = HogWatch::new(CALM_FOR);
        let t0 = Instant::now();
        let s = |t: u64| t0 + Duration::from_secs(t);
        assert!(w
            .observe(s(0), &host, &[sample("a", 1.5, 0.0), sample("b", 1.0, 0.0)])
            .is_empty());
        // a uses 1.4 of its 1.5 CPUs: kept to 2 CPUs, the last ones; b is quiet.
        let d = w.observe(s(1), &host, &[sample("a", 1.5, 1.4), sample("b", 1.0, 0.1)]);
        assert_eq!(
            d,
            vec![Decision::Keep {
                cgroup: "a".into(),
                cpus: CpuSet::parse("2-3").unwrap()
            }]
        );
        // b gets busy too: kept to a CPU a does not load.
        let d = w.observe(
            s(2),
            &host,
            &[sample("a", 1.5, 2.9), sample("b", 1.0, 1.05)],
        );
        assert_eq!(
            d,
            vec![Decision::Keep {
                cgroup: "b".into(),
                cpus: CpuSet::parse("1").unwrap()
            }]
        );
        // a goes quiet: freed only once it has been for CALM_FOR.
        let mut t = 3;
        let mut used = 2.9;
        loop {
            used += 0.1;
            let d = w.observe(
                s(t),
                &host,
                &[sample("a", 1.5, used), sample("b", 1.0, t as f64)],
            );
            if !d.is_empty() {
                assert_eq!(d, vec![Decision::Free { cgroup: "a".into() }]);
                break;
            }
            t += 1;
            assert!(t < 60, "never freed");
        }
        assert!(t >= 3 + CALM_FOR.as_secs(), "freed after {t} s");
        // Freed and still quiet: nothing more to do.
        let d = w.observe(
            s(t + 1),
            &host,
            &[sample("a", 1.5, used), sample("b", 1.0, t as f64 + 0.95)],
        );
        assert!(d.is_empty(), "{d:?}");
    }

    #[test]
    fn what_the_envelope_has_is_the_truth() {
        let host = CpuSet::parse("0-1").unwrap();
        let t0 = Instant::now();
        let at = |cpus: &str, usage: f64| Sample {
            cpus_now: Some(CpuSet::parse(cpus).unwrap()),
            ..sample("a", 1.0, usage)
        };
        // Kept before a restart of the server: freed once calm.
        let mut w = HogWatch::new(CALM_FOR);
        w.observe(t0, &host, &[at("1", 0.0)]);
        let d = w.observe(
            t0 + CALM_FOR + Duration::from_secs(2),
            &host,
            &[at("1", 0.0)],
        );
        assert!(
            d.is_empty(),
            "calm only from the first sample seen kept: {d:?}"
        );
        let d = w.observe(
            t0 + 2 * CALM_FOR + Duration::from_secs(3),
            &host,
            &[at("1", 0.0)],
        );
        assert_eq!(d, vec![Decision::Free { cgroup: "a".into() }]);
        // The change failed (still all CPUs) while busy: decided again.
        let mut w = HogWatch::new(CALM_FOR);
        w.observe(t0, &host, &[at("0-1", 0.0)]);
        assert_eq!(
            w.observe(t0 + Duration::from_secs(1), &host, &[at("0-1", 1.0)])
                .len(),
            1
        );
        assert_eq!(
            w.observe(t0 + Duration::from_secs(2), &host, &[at("0-1", 2.0)])
                .len(),
            1
        );
        assert!(w
            .observe(t0 + Duration::from_secs(3), &host, &[at("1", 3.0)])
            .is_empty());
    }

    #[test]
    fn a_session_that_may_use_every_cpu_or_is_gone_is_left_alone() {
        let host = CpuSet::parse("0-1").unwrap();
        let mut w = HogWatch::new(CALM_FOR);
        let t0 = Instant::now();
        w.observe(
            t0,
            &host,
            &[
                sample("all", 2.0, 0.0),
                sample("none", 0.0, 0.0),
                sample("one", 1.0, 0.0),
            ],
        );
        let d = w.observe(
            t0 + Duration::from_secs(1),
            &host,
            &[
                sample("all", 2.0, 2.0),
                sample("none", 0.0, 2.0),
                sample("one", 1.0, 1.0),
            ],
        );
        assert_eq!(
            d,
            vec![Decision::Keep {
                cgroup: "one".into(),
                cpus: CpuSet::parse("1").unwrap()
            }]
        );
        // "one" is removed and made again: it starts over, not kept.
        w.observe(t0 + Duration::from_secs(2), &host, &[]);
        assert!(w
            .observe(
                t0 + Duration::from_secs(3),
                &host,
                &[sample("one", 1.0, 0.0)]
            )
            .is_empty());
        // On one CPU there is nothing to keep anyone from.
        let mut w = HogWatch::new(CALM_FOR);
        let one = CpuSet::parse("0").unwrap();
        w.observe(t0, &one, &[sample("x", 0.5, 0.0)]);
        assert!(w
            .observe(t0 + Duration::from_secs(1), &one, &[sample("x", 0.5, 0.5)])
            .is_empty());
    }
}
