//! Health checks as dockerd does them: the `Healthcheck` config (from `--health-*`
//! flags or the image's `HEALTHCHECK`), its validation and merge at create, and the
//! state a container's probes build (`State.Health`). The probes themselves run in
//! `engine::health`; everything here is pure, so dockerd's rules are tested alone.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::container::nullable;
use crate::error::{Error, Result};

/// dockerd's defaults for fields left at zero.
pub const DEFAULT_INTERVAL_NS: i64 = 30_000_000_000;
pub const DEFAULT_TIMEOUT_NS: i64 = 30_000_000_000;
pub const DEFAULT_START_PERIOD_NS: i64 = 0;
pub const DEFAULT_START_INTERVAL_NS: i64 = 5_000_000_000;
pub const DEFAULT_RETRIES: i64 = 3;
/// `containertypes.MinimumDuration`: the shortest non-zero duration accepted.
const MINIMUM_DURATION_NS: i64 = 1_000_000;
/// Results kept in `State.Health.Log` (dockerd's `maxLogEntries`).
pub const MAX_LOG_ENTRIES: usize = 5;
/// Bytes of a probe's output kept (dockerd's `maxOutputLen`).
pub const MAX_OUTPUT_LEN: usize = 4096;

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// `Config.Healthcheck`, durations in nanoseconds, as Docker's `HealthConfig` (zero
/// fields are left out of its JSON, and mean "the image's, else the default").
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthConfig {
    /// `[]`: inherit; `["NONE"]`; `["CMD", arg…]`; `["CMD-SHELL", command]`.
    #[serde(deserialize_with = "nullable", skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub interval: i64,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub timeout: i64,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub start_period: i64,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub start_interval: i64,
    #[serde(deserialize_with = "nullable", skip_serializing_if = "is_zero")]
    pub retries: i64,
}

fn or_default(v: i64, default: i64) -> i64 {
    if v > 0 {
        v
    } else {
        default
    }
}

impl HealthConfig {
    /// dockerd's `validateHealthCheck`, with its messages (a 400).
    pub fn validate(&self) -> Result<()> {
        let short = |name: &str, v: i64| {
            (v != 0 && v < MINIMUM_DURATION_NS).then(|| {
                Error::InvalidArgument(format!("{name} in Healthcheck cannot be less than 1ms"))
            })
        };
        if let Some(e) = short("Interval", self.interval).or_else(|| short("Timeout", self.timeout))
        {
            return Err(e);
        }
        if self.retries < 0 {
            return Err(Error::InvalidArgument(
                "Retries in Healthcheck cannot be negative".into(),
            ));
        }
        match short("StartPeriod", self.start_period)
            .or_else(|| short("StartInterval", self.start_interval))
        {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The command a probe runs, or None when the container has no probes (`NONE`,
    /// no test, or a kind dockerd does not know: it only warns).
    pub fn probe(&self) -> Option<Vec<String>> {
        let (kind, rest) = self.test.split_first()?;
        match kind.as_str() {
            "CMD" => Some(rest.to_vec()),
            // dockerd's shell on Linux unless the image sets another.
            "CMD-SHELL" => Some(
                ["/bin/sh", "-c"]
                    .iter()
                    .map(|s| s.to_string())
                    .chain(rest.iter().take(1).cloned())
                    .collect(),
            ),
            _ => None,
        }
    }

    pub fn interval(&self) -> i64 {
        or_default(self.interval, DEFAULT_INTERVAL_NS)
    }
    pub fn timeout(&self) -> i64 {
        or_default(self.timeout, DEFAULT_TIMEOUT_NS)
    }
    pub fn start_period(&self) -> i64 {
        or_default(self.start_period, DEFAULT_START_PERIOD_NS)
    }
    pub fn start_interval(&self) -> i64 {
        or_default(self.start_interval, DEFAULT_START_INTERVAL_NS)
    }
    pub fn retries(&self) -> i64 {
        or_default(self.retries, DEFAULT_RETRIES)
    }
}

/// dockerd's merge of the request's healthcheck with the image's: no request check
/// takes the image's; otherwise each zero (or empty) field takes the image's value.
pub fn merge(user: Option<HealthConfig>, image: Option<HealthConfig>) -> Option<HealthConfig> {
    let Some(image) = image else { return user };
    let Some(mut u) = user else {
        return Some(image);
    };
    if u.test.is_empty() {
        u.test = image.test;
    }
    for (mine, theirs) in [
        (&mut u.interval, image.interval),
        (&mut u.timeout, image.timeout),
        (&mut u.start_period, image.start_period),
        (&mut u.start_interval, image.start_interval),
        (&mut u.retries, image.retries),
    ] {
        if *mine == 0 {
            *mine = theirs;
        }
    }
    Some(u)
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Starting,
    Healthy,
    Unhealthy,
}

impl HealthStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Starting => "starting",
            HealthStatus::Healthy => "healthy",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }

    /// In `docker ps`'s STATUS: `Up 3 seconds (health: starting)`, `(healthy)`.
    pub fn ps_text(self) -> &'static str {
        match self {
            HealthStatus::Starting => "health: starting",
            other => other.as_str(),
        }
    }
}

/// One probe's outcome (`State.Health.Log[]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HealthResult {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// -1 for a probe that timed out or could not run, as dockerd records it.
    pub exit_code: i64,
    pub output: String,
}

/// `State.Health`: only containers whose check has probes have one.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Health {
    pub status: HealthStatus,
    pub failing_streak: i64,
    pub log: Vec<HealthResult>,
}

impl Health {
    /// The health of a container starting (again): `starting`, no failing streak; the
    /// log of earlier runs stays, as in dockerd. None when it has no probes.
    pub fn on_start(config: Option<&HealthConfig>, before: Option<Health>) -> Option<Health> {
        config.and_then(HealthConfig::probe)?;
        let log = before.map(|h| h.log).unwrap_or_default();
        Some(Health {
            status: HealthStatus::Starting,
            failing_streak: 0,
            log,
        })
    }

    /// Probes stopped (the container stopped or was paused): dockerd then reports
    /// `unhealthy` "for compatibility reasons" until a probe succeeds again.
    pub fn on_probes_stopped(&mut self) {
        self.status = HealthStatus::Unhealthy;
    }

    /// dockerd's `handleProbeResult`: logs the result and moves the status; returns
    /// the new status when it changed (then dockerd sends a `health_status` event).
    pub fn record(
        &mut self,
        result: HealthResult,
        config: &HealthConfig,
        started_at: DateTime<Utc>,
    ) -> Option<HealthStatus> {
        let before = self.status;
        if result.exit_code == 0 {
            self.failing_streak = 0;
            self.status = HealthStatus::Healthy;
        } else {
            // Failures while starting, within the start period, do not count.
            let in_start_period = self.status == HealthStatus::Starting
                && (result.start - started_at)
                    .num_nanoseconds()
                    .unwrap_or(i64::MAX)
                    < config.start_period();
            if !in_start_period {
                self.failing_streak += 1;
                if self.failing_streak >= config.retries() {
                    self.status = HealthStatus::Unhealthy;
                }
            }
        }
        self.log.push(result);
        if self.log.len() > MAX_LOG_ENTRIES {
            self.log.drain(..self.log.len() - MAX_LOG_ENTRIES);
        }
        (self.status != before).then_some(self.status)
    }

    /// `State.Health` as `inspect` shows it (Docker's time format).
    pub fn inspect_json(&self) -> serde_json::Value {
        let log: Vec<serde_json::Value> = self
            .log
            .iter()
            .map(|r| {
                serde_json::json!({
                    "Start": crate::logs::docker_time(&r.start), "End": crate::logs::docker_time(&r.end),
                    "ExitCode": r.exit_code, "Output": r.output,
                })
            })
            .collect();
        serde_json::json!({ "Status": self.status.as_str(), "FailingStreak": self.failing_streak, "Log": log })
    }
}

/// How long the monitor waits before the next probe: the start interval while the
/// container is still starting within its start period, else the interval.
pub fn next_wait(
    config: &HealthConfig,
    started_at: DateTime<Utc>,
    now: DateTime<Utc>,
    status: Option<HealthStatus>,
) -> std::time::Duration {
    let since = (now - started_at).num_nanoseconds().unwrap_or(i64::MAX);
    let ns = if since >= config.start_period() || status != Some(HealthStatus::Starting) {
        config.interval()
    } else {
        config.start_interval()
    };
    std::time::Duration::from_nanos(ns.max(0) as u64)
}

/// A probe's output, stdout and stderr together, cut at [`MAX_OUTPUT_LEN`] bytes
/// with `...` after a cut (dockerd's `limitedBuffer`).
#[derive(Debug, Default)]
pub struct LimitedBuffer {
    buf: Vec<u8>,
    truncated: bool,
}

impl LimitedBuffer {
    pub fn write(&mut self, data: &[u8]) {
        let keep = MAX_OUTPUT_LEN
            .saturating_sub(self.buf.len())
            .min(data.len());
        self.buf.extend_from_slice(&data[..keep]);
        if keep < data.len() {
            self.truncated = true;
        }
    }

    pub fn text(&self) -> String {
        let mut s = String::from_utf8_lossy(&self.buf).into_owned();
        if self.truncated {
            s.push_str("...");
        }
        s
    }
}

/// What dockerd records for a probe killed at its timeout (without what the probe
/// printed, as dockerd).
pub fn timeout_output(timeout_ns: i64) -> String {
    format!(
        "Health check exceeded timeout ({})",
        go_duration(timeout_ns)
    )
}

/// Go's `time.Duration.String()` (`500ms`, `1.5s`, `1m30s`), which dockerd's
/// messages print.
pub fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let sign = if ns < 0 { "-" } else { "" };
    let u = ns.unsigned_abs();
    // `v / div` with the fraction's trailing zeros dropped.
    let frac = |v: u64, div: u64| {
        let (whole, rest) = (v / div, v % div);
        if rest == 0 {
            return whole.to_string();
        }
        let width = div.ilog10() as usize;
        format!(
            "{whole}.{}",
            format!("{rest:0width$}").trim_end_matches('0')
        )
    };
    let body = if u < 1_000 {
        format!("{u}ns")
    } else if u < 1_000_000 {
        format!("{}µs", frac(u, 1_000))
    } else if u < 1_000_000_000 {
        format!("{}ms", frac(u, 1_000_000))
    } else {
        const MIN: u64 = 60_000_000_000;
        const HOUR: u64 = 60 * MIN;
        let (h, m, s) = (u / HOUR, u % HOUR / MIN, frac(u % MIN, 1_000_000_000));
        if h > 0 {
            format!("{h}h{m}m{s}s")
        } else if m > 0 {
            format!("{m}m{s}s")
        } else {
            format!("{s}s")
        }
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn check(test: &[&str]) -> HealthConfig {
        HealthConfig {
            test: test.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn validation_messages_are_dockerds() {
        let msg = |c: HealthConfig| c.validate().unwrap_err().to_string();
        assert!(msg(HealthConfig {
            interval: 500_000,
            ..check(&["CMD", "true"])
        })
        .contains("Interval in Healthcheck cannot be less than 1ms"));
        assert!(msg(HealthConfig {
            interval: -5,
            ..Default::default()
        })
        .contains("Interval in Healthcheck cannot be less than 1ms"));
        assert!(msg(HealthConfig {
            timeout: 1,
            ..Default::default()
        })
        .contains("Timeout in Healthcheck cannot be less than 1ms"));
        assert!(msg(HealthConfig {
            retries: -1,
            ..Default::default()
        })
        .contains("Retries in Healthcheck cannot be negative"));
        assert!(msg(HealthConfig {
            start_period: -5,
            ..Default::default()
        })
        .contains("StartPeriod in Healthcheck cannot be less than 1ms"));
        assert!(msg(HealthConfig {
            start_interval: 999_999,
            ..Default::default()
        })
        .contains("StartInterval in Healthcheck cannot be less than 1ms"));
        // Unknown kinds pass create, as in dockerd (they only have no probes).
        assert!(check(&["BOGUS"]).validate().is_ok());
        assert!(HealthConfig {
            interval: 1_000_000,
            ..Default::default()
        }
        .validate()
        .is_ok());
    }

    #[test]
    fn merge_takes_the_images_zero_fields() {
        let image = HealthConfig {
            interval: 7 * S,
            retries: 9,
            ..check(&["CMD", "img"])
        };
        assert_eq!(merge(None, Some(image.clone())), Some(image.clone()));
        assert_eq!(merge(Some(check(&["NONE"])), None), Some(check(&["NONE"])));
        let user = HealthConfig {
            interval: S,
            ..Default::default()
        };
        assert_eq!(
            merge(Some(user), Some(image.clone())),
            Some(HealthConfig {
                interval: S,
                retries: 9,
                ..check(&["CMD", "img"])
            })
        );
        // --no-healthcheck keeps NONE (the image's timings come along, unused).
        assert_eq!(
            merge(Some(check(&["NONE"])), Some(image)).unwrap().test,
            vec!["NONE"]
        );
        assert_eq!(merge(None, None), None);
    }

    #[test]
    fn probes_and_json_shape() {
        assert_eq!(
            check(&["CMD", "ls", "/"]).probe(),
            Some(vec!["ls".to_string(), "/".into()])
        );
        assert_eq!(
            check(&["CMD-SHELL", "echo hi"]).probe(),
            Some(vec!["/bin/sh".to_string(), "-c".into(), "echo hi".into()])
        );
        assert_eq!(check(&["NONE"]).probe(), None);
        assert_eq!(check(&[]).probe(), None);
        assert_eq!(check(&["BOGUS", "x"]).probe(), None);
        let c = HealthConfig {
            interval: S,
            retries: 2,
            ..check(&["CMD-SHELL", "true"])
        };
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"Test":["CMD-SHELL","true"],"Interval":1000000000,"Retries":2}"#
        );
        let back: HealthConfig =
            serde_json::from_str(r#"{"Test":null,"Interval":1000000000,"Timeout":0}"#).unwrap();
        assert_eq!(
            back,
            HealthConfig {
                interval: S,
                ..Default::default()
            }
        );
    }

    fn result(start: DateTime<Utc>, code: i64) -> HealthResult {
        HealthResult {
            start,
            end: start,
            exit_code: code,
            output: String::new(),
        }
    }

    #[test]
    fn status_moves_as_in_dockerd() {
        let t0 = Utc::now();
        let cfg = HealthConfig {
            retries: 2,
            start_period: 10 * S,
            ..check(&["CMD", "x"])
        };
        let mut h = Health::on_start(Some(&cfg), None).unwrap();
        assert_eq!(h.status, HealthStatus::Starting);
        // Failures in the start period while starting do not count.
        for i in 0..4 {
            assert_eq!(
                h.record(result(t0 + chrono::Duration::seconds(i), 1), &cfg, t0),
                None
            );
        }
        assert_eq!(h.failing_streak, 0);
        // After it, they do: unhealthy at `retries`.
        assert_eq!(
            h.record(result(t0 + chrono::Duration::seconds(11), 1), &cfg, t0),
            None
        );
        assert_eq!(
            h.record(result(t0 + chrono::Duration::seconds(12), 1), &cfg, t0),
            Some(HealthStatus::Unhealthy)
        );
        assert_eq!(h.failing_streak, 2);
        assert_eq!(h.log.len(), MAX_LOG_ENTRIES);
        assert_eq!(
            h.record(result(t0 + chrono::Duration::seconds(13), 0), &cfg, t0),
            Some(HealthStatus::Healthy)
        );
        assert_eq!(h.failing_streak, 0);
        assert_eq!(
            h.log.last().unwrap().start,
            t0 + chrono::Duration::seconds(13)
        );
        // A restart: starting again, the log kept.
        h.on_probes_stopped();
        assert_eq!(h.status, HealthStatus::Unhealthy);
        let again = Health::on_start(Some(&cfg), Some(h)).unwrap();
        assert_eq!(
            (again.status, again.failing_streak, again.log.len()),
            (HealthStatus::Starting, 0, MAX_LOG_ENTRIES)
        );
        assert_eq!(Health::on_start(Some(&check(&["NONE"])), None), None);
    }

    #[test]
    fn waits_use_the_start_interval_while_starting() {
        let t0 = Utc::now();
        let cfg = HealthConfig {
            interval: 10 * S,
            start_period: 60 * S,
            start_interval: S,
            ..check(&["CMD", "x"])
        };
        let at = |s: i64| t0 + chrono::Duration::seconds(s);
        assert_eq!(
            next_wait(&cfg, t0, at(1), Some(HealthStatus::Starting)).as_secs(),
            1
        );
        assert_eq!(
            next_wait(&cfg, t0, at(1), Some(HealthStatus::Healthy)).as_secs(),
            10
        );
        assert_eq!(
            next_wait(&cfg, t0, at(61), Some(HealthStatus::Starting)).as_secs(),
            10
        );
        assert_eq!(
            next_wait(
                &check(&["CMD", "x"]),
                t0,
                at(0),
                Some(HealthStatus::Starting)
            )
            .as_secs(),
            30
        );
    }

    #[test]
    fn output_is_capped_and_durations_print_as_go() {
        let mut b = LimitedBuffer::default();
        b.write(&[b'y'; 3000]);
        b.write(&[b'y'; 3000]);
        assert_eq!(b.text().len(), MAX_OUTPUT_LEN + 3);
        assert!(b.text().ends_with("y..."));
        for (ns, s) in [
            (500_000_000, "500ms"),
            (S, "1s"),
            (1_500_000_000, "1.5s"),
            (90 * S, "1m30s"),
            (3600 * S, "1h0m0s"),
            (1_500, "1.5µs"),
            (7, "7ns"),
            (0, "0s"),
        ] {
            assert_eq!(go_duration(ns), s);
        }
        assert_eq!(timeout_output(S), "Health check exceeded timeout (1s)");
    }
}
