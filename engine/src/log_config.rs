//! A container's logging: Docker's `HostConfig.LogConfig` (`--log-driver`,
//! `--log-opt`), checked at create with Docker's messages, and what the shim does with
//! the output ([`LogMode`]). Berth has the `json-file` driver (with `max-size`,
//! `max-file`), `local` (the same files, rotated by default as Docker's `local` is)
//! and `none`; any other driver is refused, never silently ignored.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::container::nullable;
use crate::error::{Error, Result};

pub const JSON_FILE: &str = "json-file";
pub const LOCAL: &str = "local";
pub const NONE: &str = "none";

/// Docker's `local` driver's defaults: 20 MiB per file, 5 files.
const LOCAL_DEFAULT: Rotation = Rotation { max_size: 20 * 1024 * 1024, max_file: 5 };

/// Docker's drivers Berth does not have: named in the refusal so the user knows it
/// is Berth, not a typo.
const DOCKER_DRIVERS: &[&str] = &["syslog", "journald", "gelf", "fluentd", "awslogs", "splunk", "etwlogs", "gcplogs", "logentries"];

/// `HostConfig.LogConfig`, in Docker's field names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct LogConfig {
    /// The driver; empty means the daemon's default, `json-file`.
    #[serde(deserialize_with = "nullable")]
    pub r#type: String,
    #[serde(deserialize_with = "nullable")]
    pub config: BTreeMap<String, String>,
}

/// json-file rotation: `max-size` bytes per file, `max-file` files in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rotation {
    pub max_size: u64,
    pub max_file: u32,
}

/// What the shim does with a container's output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogMode {
    /// json-file without `max-size`: one file that grows (Docker's default).
    #[default]
    Unbounded,
    /// json-file, rotated.
    Rotated(Rotation),
    /// `--log-driver none`: nothing is kept.
    Discard,
}

impl LogConfig {
    /// The driver, with the daemon's default filled in.
    pub fn driver(&self) -> &str {
        if self.r#type.is_empty() { JSON_FILE } else { &self.r#type }
    }

    /// Checks the driver and its options as Docker does at create, and fills in the
    /// default driver, so `inspect` shows it.
    pub fn validate(&mut self) -> Result<()> {
        self.r#type = self.driver().to_string();
        match self.r#type.as_str() {
            JSON_FILE => {
                for key in self.config.keys() {
                    match key.as_str() {
                        "max-size" | "max-file" | "compress" => {}
                        "labels" | "labels-regex" | "env" | "env-regex" | "tag" => {
                            return Err(Error::InvalidArgument(format!("log opt '{key}' is not supported by Berth's json-file log driver")))
                        }
                        _ => return Err(Error::InvalidArgument(format!("unknown log opt '{key}' for json-file log driver"))),
                    }
                }
                self.mode().map(|_| ())
            }
            LOCAL => {
                for key in self.config.keys() {
                    if !matches!(key.as_str(), "max-size" | "max-file" | "compress") {
                        return Err(Error::InvalidArgument(format!("unknown log opt '{key}' for log driver local")));
                    }
                }
                self.mode().map(|_| ())
            }
            NONE => match self.config.keys().next() {
                Some(key) => Err(Error::InvalidArgument(format!("unknown log opt '{key}' for none log driver"))),
                None => Ok(()),
            },
            d if DOCKER_DRIVERS.contains(&d) => Err(Error::InvalidArgument(format!("log driver {d} is not supported by Berth (json-file, local and none are)"))),
            d => Err(Error::InvalidArgument(format!("logger: no log driver named '{d}' is registered"))),
        }
    }

    /// What the shim does; Docker's messages for bad options.
    pub fn mode(&self) -> Result<LogMode> {
        if self.driver() == NONE {
            return Ok(LogMode::Discard);
        }
        let max_size = match self.config.get("max-size") {
            Some(s) => {
                let n = parse_size(s)?;
                if n == 0 {
                    return Err(Error::InvalidArgument("max-size must be a positive number".into()));
                }
                Some(n)
            }
            None => None,
        };
        let max_file = match self.config.get("max-file") {
            Some(s) => {
                let n: i64 = s.parse().map_err(|_| Error::InvalidArgument(format!("strconv.Atoi: parsing {s:?}: invalid syntax")))?;
                if n < 1 {
                    return Err(Error::InvalidArgument("max-file cannot be less than 1".into()));
                }
                u32::try_from(n).map_err(|_| Error::InvalidArgument(format!("max-file {n} is too large")))?
            }
            None => 1,
        };
        if let Some(c) = self.config.get("compress") {
            let on = parse_bool(c)?;
            if on && (max_file == 1 || max_size.is_none()) {
                return Err(Error::InvalidArgument("compress cannot be true when max-file is less than 2 or max-size is not set".into()));
            }
            if on {
                return Err(Error::InvalidArgument("log opt compress=true is not supported by Berth: rotated logs are kept uncompressed".into()));
            }
        }
        if self.driver() == LOCAL {
            // Always rotated; the user's options over Docker's defaults. (Docker's
            // local driver also compresses rotated files by default; Berth keeps them
            // as they are, and refuses an explicit compress=true above.)
            return Ok(LogMode::Rotated(Rotation {
                max_size: max_size.unwrap_or(LOCAL_DEFAULT.max_size),
                max_file: if self.config.contains_key("max-file") { max_file } else { LOCAL_DEFAULT.max_file },
            }));
        }
        Ok(match max_size {
            Some(max_size) => LogMode::Rotated(Rotation { max_size, max_file }),
            None => LogMode::Unbounded,
        })
    }
}

impl Rotation {
    /// The options as `--log-opt` values.
    pub fn set_in(&self, config: &mut BTreeMap<String, String>) {
        config.insert("max-size".into(), show_size(self.max_size));
        config.insert("max-file".into(), self.max_file.to_string());
    }
}

/// A size the way Docker reads `max-size` (go-units `FromHumanSize`): decimal units,
/// `10m` is 10,000,000 bytes; `k`, `m`, `g`, `t`, `p`, optionally with `b` or `ib`.
pub fn parse_size(s: &str) -> Result<u64> {
    let bad = || Error::InvalidArgument(format!("invalid size: '{s}'"));
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num.parse().map_err(|_| bad())?;
    let unit = unit.trim_start().to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1e3,
        "m" => 1e6,
        "g" => 1e9,
        "t" => 1e12,
        "p" => 1e15,
        _ => return Err(bad()),
    };
    if !num.is_finite() || num < 0.0 {
        return Err(bad());
    }
    Ok((num * mult) as u64)
}

/// A size as [`parse_size`] reads it back, in the largest unit that divides it.
pub fn show_size(n: u64) -> String {
    for (unit, m) in [("g", 1_000_000_000u64), ("m", 1_000_000), ("k", 1_000)] {
        if n >= m && n.is_multiple_of(m) {
            return format!("{}{unit}", n / m);
        }
    }
    n.to_string()
}

/// Go's `strconv.ParseBool`.
fn parse_bool(s: &str) -> Result<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(Error::InvalidArgument(format!("strconv.ParseBool: parsing {s:?}: invalid syntax"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(driver: &str, opts: &[(&str, &str)]) -> LogConfig {
        LogConfig { r#type: driver.into(), config: opts.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect() }
    }

    #[test]
    fn sizes_read_as_docker_reads_them() {
        assert_eq!(parse_size("10m").unwrap(), 10_000_000);
        assert_eq!(parse_size("1k").unwrap(), 1000);
        assert_eq!(parse_size("1.5MB").unwrap(), 1_500_000);
        assert_eq!(parse_size("2g").unwrap(), 2_000_000_000);
        assert_eq!(parse_size("2GiB").unwrap(), 2_000_000_000);
        assert_eq!(parse_size("512").unwrap(), 512);
        for bad in ["", "m", "10x", "-1k", "ten"] {
            assert_eq!(parse_size(bad).unwrap_err().to_string(), format!("invalid size: '{bad}'"));
        }
        for n in [10_000_000, 1000, 1234, 3_000_000_000] {
            assert_eq!(parse_size(&show_size(n)).unwrap(), n);
        }
        assert_eq!(show_size(10_000_000), "10m");
    }

    #[test]
    fn json_file_options_make_a_rotation() {
        let mut c = cfg("", &[("max-size", "1k"), ("max-file", "2")]);
        c.validate().unwrap();
        assert_eq!(c.r#type, "json-file");
        assert_eq!(c.mode().unwrap(), LogMode::Rotated(Rotation { max_size: 1000, max_file: 2 }));
        assert_eq!(cfg("json-file", &[]).mode().unwrap(), LogMode::Unbounded);
        assert_eq!(cfg("json-file", &[("max-size", "10m")]).mode().unwrap(), LogMode::Rotated(Rotation { max_size: 10_000_000, max_file: 1 }));
        assert_eq!(cfg("none", &[]).mode().unwrap(), LogMode::Discard);
        assert!(cfg("json-file", &[("max-size", "1k"), ("max-file", "2"), ("compress", "false")]).validate().is_ok());
    }

    #[test]
    fn bad_options_get_dockers_errors() {
        let err = |c: LogConfig| {
            let mut c = c;
            c.validate().unwrap_err().to_string()
        };
        assert_eq!(err(cfg("json-file", &[("max-file", "0")])), "max-file cannot be less than 1");
        assert_eq!(err(cfg("json-file", &[("max-size", "0")])), "max-size must be a positive number");
        assert_eq!(err(cfg("json-file", &[("max-size", "big")])), "invalid size: 'big'");
        assert_eq!(err(cfg("json-file", &[("colour", "red")])), "unknown log opt 'colour' for json-file log driver");
        assert_eq!(err(cfg("json-file", &[("max-size", "1k"), ("compress", "true")])), "compress cannot be true when max-file is less than 2 or max-size is not set");
        assert!(err(cfg("json-file", &[("max-size", "1k"), ("max-file", "3"), ("compress", "true")])).contains("not supported by Berth"));
        assert_eq!(err(cfg("syslog", &[])), "log driver syslog is not supported by Berth (json-file, local and none are)");
        let mut local = cfg("local", &[]);
        local.validate().unwrap();
        assert_eq!(local.mode().unwrap(), LogMode::Rotated(LOCAL_DEFAULT));
        let mut local = cfg("local", &[("max-size", "1k"), ("max-file", "2")]);
        local.validate().unwrap();
        assert_eq!(local.mode().unwrap(), LogMode::Rotated(Rotation { max_size: 1000, max_file: 2 }));
        assert!(err(cfg("local", &[("tag", "x")])).contains("unknown log opt 'tag' for log driver local"));
        assert_eq!(err(cfg("nope", &[])), "logger: no log driver named 'nope' is registered");
        assert_eq!(err(cfg("none", &[("max-size", "1k")])), "unknown log opt 'max-size' for none log driver");
    }
}
