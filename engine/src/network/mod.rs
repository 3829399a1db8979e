//! Container networks, as Docker has them: a default `bridge` per namespace, user-defined
//! bridge networks (names resolve through the embedded DNS), `none` and `host`.
//!
//! All bridges of a namespace live in that namespace's *network home*: a kept network
//! namespace (a lab session's own, or `<root>/netns/<ns>`), so namespaces never share a
//! wire and, with forwarding off there, two networks never route to each other.
//! Definitions are kept in `namespaces/<ns>/networks.json`; which container is on which
//! network (address, aliases) is part of the container's record.

pub mod link;
pub mod uplink;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsutil;

/// The default network's name and its bridge device.
pub const DEFAULT: &str = "bridge";
const DEFAULT_BRIDGE: &str = "berth0";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    pub name: String,
    /// "bridge", "host" or "null".
    pub driver: String,
    pub created: DateTime<Utc>,
    /// The subnet, e.g. 172.18.0.0/16 (empty for host and none).
    pub subnet: String,
    pub gateway: String,
    #[serde(default)]
    pub internal: bool,
    #[serde(default)]
    pub attachable: bool,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

impl Network {
    /// `bridge`, `host` and `none`: always there, never removed.
    pub fn is_predefined(&self) -> bool {
        matches!(self.name.as_str(), "bridge" | "host" | "none")
    }

    /// The Linux bridge device (bridge driver only).
    pub fn bridge(&self) -> String {
        if self.name == DEFAULT {
            DEFAULT_BRIDGE.to_string()
        } else {
            format!("br-{}", &self.id[..12])
        }
    }

    pub fn subnet(&self) -> Option<Subnet> {
        self.subnet.parse().ok()
    }

    pub fn gateway_ip(&self) -> Option<Ipv4Addr> {
        self.gateway.parse().ok()
    }

    /// Names resolve on user-defined bridges only, as in Docker.
    pub fn has_dns(&self) -> bool {
        self.driver == "bridge" && self.name != DEFAULT
    }
}

/// An IPv4 subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub addr: Ipv4Addr,
    pub prefix: u8,
}

impl std::str::FromStr for Subnet {
    type Err = Error;
    fn from_str(s: &str) -> Result<Subnet> {
        let bad = || Error::InvalidArgument(format!("invalid subnet {s}: use an IPv4 CIDR such as 172.20.0.0/16"));
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = a.parse().map_err(|_| bad())?;
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        if !(8..=30).contains(&prefix) {
            return Err(bad());
        }
        let net = Subnet { addr, prefix };
        Ok(Subnet { addr: Ipv4Addr::from(u32::from(addr) & net.mask()), prefix })
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Subnet {
    fn mask(&self) -> u32 {
        u32::MAX << (32 - self.prefix as u32)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr)
    }

    pub fn overlaps(&self, other: &Subnet) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }

    /// The first usable address: Docker's gateway.
    pub fn first(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) + 1)
    }

    /// Usable host addresses, in order (no network or broadcast address).
    pub fn hosts(&self) -> impl Iterator<Item = Ipv4Addr> {
        let start = u32::from(self.addr) + 1;
        let end = u32::from(self.addr) | !self.mask();
        (start..end).map(Ipv4Addr::from)
    }
}

/// The subnets Berth hands out when none is asked for: Docker's default bridge pool.
fn candidate_subnets() -> impl Iterator<Item = Subnet> {
    (17..=31u8)
        .map(|b| Subnet { addr: Ipv4Addr::new(172, b, 0, 0), prefix: 16 })
        .chain((0..=240u8).step_by(16).map(|c| Subnet { addr: Ipv4Addr::new(192, 168, c, 0), prefix: 20 }))
}

/// Picks the first free subnet given those in use.
pub fn free_subnet(used: &[Subnet]) -> Result<Subnet> {
    candidate_subnets()
        .find(|c| !used.iter().any(|u| u.overlaps(c)))
        .ok_or_else(|| Error::Conflict("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network".into()))
}

/// Docker's MAC for an address: 02:42 and the four address bytes.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

pub fn mac_string(mac: &[u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// The networks of every namespace, on disk.
pub struct Networks {
    root: PathBuf,
}

impl Networks {
    pub fn open(root: &Path) -> Networks {
        Networks { root: root.to_path_buf() }
    }

    fn path(&self, ns: &str) -> PathBuf {
        self.root.join("namespaces").join(ns).join("networks.json")
    }

    /// The namespace's networks, the predefined ones first (made on first use).
    pub fn list(&self, ns: &str) -> Result<Vec<Network>> {
        let mut nets: Vec<Network> = fsutil::read_json(&self.path(ns))?.unwrap_or_default();
        if !nets.iter().any(|n| n.name == DEFAULT) {
            let now = Utc::now();
            let subnet = Subnet { addr: Ipv4Addr::new(172, 17, 0, 0), prefix: 16 };
            let mk = |name: &str, driver: &str, subnet: String, gateway: String| Network {
                id: fsutil::random_id(),
                name: name.into(),
                driver: driver.into(),
                created: now,
                subnet,
                gateway,
                internal: false,
                attachable: false,
                labels: BTreeMap::new(),
                options: BTreeMap::new(),
            };
            let mut pre = vec![
                mk(DEFAULT, "bridge", subnet.to_string(), subnet.first().to_string()),
                mk("host", "host", String::new(), String::new()),
                mk("none", "null", String::new(), String::new()),
            ];
            pre.append(&mut nets);
            nets = pre;
            self.save(ns, &nets)?;
        }
        Ok(nets)
    }

    pub fn save(&self, ns: &str, nets: &[Network]) -> Result<()> {
        fsutil::write_json(&self.path(ns), &nets)
    }

    /// By full name, full id or unique id prefix, as Docker looks networks up.
    pub fn find(&self, ns: &str, name: &str) -> Result<Network> {
        let nets = self.list(ns)?;
        if let Some(n) = nets.iter().find(|n| n.name == name || n.id == name) {
            return Ok(n.clone());
        }
        let mut prefix = nets.iter().filter(|n| !name.is_empty() && n.id.starts_with(name));
        match (prefix.next(), prefix.next()) {
            (Some(n), None) => Ok(n.clone()),
            _ => Err(Error::NotFound(format!("network {name} not found"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets() {
        let s: Subnet = "172.18.3.4/16".parse().unwrap();
        assert_eq!(s.to_string(), "172.18.0.0/16");
        assert_eq!(s.first(), Ipv4Addr::new(172, 18, 0, 1));
        assert!(s.contains(Ipv4Addr::new(172, 18, 255, 1)));
        assert!(!s.contains(Ipv4Addr::new(172, 19, 0, 1)));
        let small: Subnet = "10.0.0.0/30".parse().unwrap();
        assert_eq!(small.hosts().collect::<Vec<_>>(), vec![Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)]);
        assert!("172.18.0.0/16".parse::<Subnet>().unwrap().overlaps(&"172.18.5.0/24".parse().unwrap()));
        for bad in ["172.18.0.0", "1.2.3/8", "10.0.0.0/33", "fe80::/64", "10.0.0.0/31"] {
            assert!(bad.parse::<Subnet>().is_err(), "{bad}");
        }
        let used = vec!["172.17.0.0/16".parse().unwrap(), "172.18.0.0/16".parse().unwrap()];
        assert_eq!(free_subnet(&used).unwrap().to_string(), "172.19.0.0/16");
        assert_eq!(mac_string(&mac_for(Ipv4Addr::new(172, 17, 0, 2))), "02:42:ac:11:00:02");
    }
}
