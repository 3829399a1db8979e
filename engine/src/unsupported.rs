//! The create request's fields Berth does not implement, refused by name.
//!
//! Docker's rule is ours: a setting either takes effect or the request fails. serde
//! drops a field it does not know without a word, so `ContainerConfig` and
//! `HostConfig` collect every field they have no member for in `unknown`, and
//! [`check`] refuses each one that is set (anything but Docker's zero value), with
//! the CLI flag a user would recognise. A field a newer API adds is refused the same
//! way until Berth implements it.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::{Error, Result};

/// Fields whose value carries no setting whatever it is: hints to the daemon that
/// Docker itself acts on only in passing, or client-side settings the CLI copies in.
const ALWAYS_ACCEPTED: &[&str] = &[
    // `--cidfile`: the CLI writes the file itself; dockerd ignores the field.
    "ContainerIDFile",
    // The terminal's size at start: the CLI resizes the terminal right after it
    // attaches, so the first size is replaced within milliseconds anyway.
    "ConsoleSize",
];

/// Whether `value` is Docker's zero value for `key`: what the CLI sends for a flag
/// the user did not give.
pub fn is_unset(key: &str, value: &Value) -> bool {
    match (key, value) {
        (k, _) if ALWAYS_ACCEPTED.contains(&k) => true,
        ("Isolation", Value::String(s)) => s.is_empty() || s == "default",
        (_, Value::Null) => true,
        (_, Value::Bool(b)) => !b,
        (_, Value::Number(n)) => n.as_f64() == Some(0.0),
        (_, Value::String(s)) => s.is_empty(),
        (_, Value::Array(a)) => a.is_empty(),
        (_, Value::Object(o)) => o.iter().all(|(k, v)| is_unset(k, v)),
    }
}

/// The `docker run` flag that sets an API field, for the refusal's message.
fn flag(key: &str) -> String {
    let known = match key {
        "CpuRealtimePeriod" => "--cpu-rt-period",
        "CpuRealtimeRuntime" => "--cpu-rt-runtime",
        "DeviceRequests" => "--gpus",
        "KernelMemory" => "--kernel-memory",
        "CpuCount" => "--cpu-count",
        "CpuPercent" => "--cpu-percent",
        "IOMaximumIOps" => "--io-maxiops",
        "IOMaximumBandwidth" => "--io-maxbandwidth",
        "VolumeDriver" => "--volume-driver",
        "Annotations" => "--annotation",
        "StorageOpt" => "--storage-opt",
        "Isolation" => "--isolation",
        "MacAddress" => "--mac-address",
        "LinkLocalIPs" => "--link-local-ip",
        "IPv6Address" => "--ip6",
        "DriverOpts" => "--driver-opt",
        "Links" => "Links (of an endpoint)",
        _ => return key.to_string(),
    };
    known.to_string()
}

/// Refuses the first set field of `unknown` (one section of the request: "Config"
/// or "HostConfig"), naming its flag.
pub fn check(unknown: &BTreeMap<String, Value>) -> Result<()> {
    match unknown.iter().find(|(k, v)| !is_unset(k, v)) {
        Some((key, _)) => Err(Error::InvalidArgument(format!("{} is not supported by Berth", flag(key)))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(v: Value) -> BTreeMap<String, Value> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn zero_values_pass() {
        let body = fields(json!({
            "CpuRealtimePeriod": 0, "DeviceRequests": [], "Isolation": "",
            "VolumeDriver": null, "NetworkDisabled": false, "ConsoleSize": [24, 80], "ContainerIDFile": "/tmp/x",
            "Annotations": {"a": null}, "KernelMemory": 0.0,
        }));
        check(&body).unwrap();
    }

    #[test]
    fn set_values_are_refused_by_flag() {
        let err = |v: Value| check(&fields(v)).unwrap_err().to_string();
        assert_eq!(err(json!({"CpuRealtimeRuntime": 512})), "--cpu-rt-runtime is not supported by Berth");
        assert_eq!(err(json!({"StorageOpt": {"size": "1G"}})), "--storage-opt is not supported by Berth");
        assert_eq!(err(json!({"Isolation": "hyperv"})), "--isolation is not supported by Berth");
        assert_eq!(err(json!({"Annotations": {"a": "b"}})), "--annotation is not supported by Berth");
        // A field Berth has never heard of is named as the API names it.
        assert_eq!(err(json!({"SomethingNew": {"On": true}})), "SomethingNew is not supported by Berth");
    }
}
