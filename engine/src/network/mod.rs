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
    /// `--ip-range`: where addresses are handed out from (a subnet of `subnet`;
    /// empty: all of it). A fixed `--ip` may lie outside it, as in Docker.
    #[serde(default)]
    pub ip_range: String,
    /// `--aux-address`: addresses kept from containers, by the name given.
    #[serde(default)]
    pub aux_addresses: BTreeMap<String, String>,
    /// Whether `IPAM.Config` shows the gateway: Docker shows it when it picked the
    /// subnet or was given the gateway, not when it derived it from a given subnet.
    #[serde(default = "yes")]
    pub ipam_gateway: bool,
    /// `IPAM.Options` as the request had it: null when it sent none, as Docker
    /// shows it (any option set is refused).
    #[serde(default)]
    pub ipam_options: Option<BTreeMap<String, String>>,
}

fn yes() -> bool {
    true
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

    /// The addresses no container gets unless asked for by `--ip`: the gateway and
    /// the auxiliary addresses.
    pub fn reserved(&self) -> Vec<Ipv4Addr> {
        self.gateway_ip().into_iter().chain(self.aux_addresses.values().filter_map(|a| a.parse().ok())).collect()
    }

    /// The addresses handed out in order: the range's (all of the subnet's when it
    /// has none), less the subnet's network and broadcast addresses. A range that
    /// starts inside the subnet hands out its first address too, as Docker's does.
    /// Lazily: a /8 holds 16 million.
    pub fn pool(&self) -> impl Iterator<Item = Ipv4Addr> {
        let subnet = self.subnet();
        let range = subnet.map(|s| Subnet::parse_range(&self.ip_range).unwrap_or(s));
        let bounds = |s: Subnet| (u32::from(s.addr), u32::from(s.addr) | !s.mask());
        let (net, broadcast) = subnet.map(bounds).unwrap_or_default();
        range.map(bounds).into_iter().flat_map(|(first, last)| first..=last).filter(move |a| *a != net && *a != broadcast).map(Ipv4Addr::from)
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
    /// A network's subnet: room for a gateway and at least one container.
    fn from_str(s: &str) -> Result<Subnet> {
        Subnet::parse(s, "subnet", 8..=30)
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl Subnet {
    /// An IPv4 CIDR (`what`, for the message) whose prefix length is in `prefixes`;
    /// the address is masked to the network's. IPv6 is refused as such.
    fn parse(s: &str, what: &str, prefixes: std::ops::RangeInclusive<u8>) -> Result<Subnet> {
        let bad = || Error::InvalidArgument(format!("invalid {what} {s}: use an IPv4 CIDR such as 172.20.0.0/16"));
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        if a.parse::<std::net::Ipv6Addr>().is_ok() {
            return Err(ipv6_refused(s));
        }
        let addr: Ipv4Addr = a.parse().map_err(|_| bad())?;
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        if !prefixes.contains(&prefix) {
            return Err(bad());
        }
        let net = Subnet { addr, prefix };
        Ok(Subnet { addr: Ipv4Addr::from(u32::from(addr) & net.mask()), prefix })
    }

    /// An `--ip-range`: any IPv4 CIDR down to one address.
    pub fn parse_range(s: &str) -> Result<Subnet> {
        Subnet::parse(s, "ip-range", 8..=32)
    }

    fn mask(&self) -> u32 {
        u32::MAX << (32 - self.prefix as u32)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr)
    }

    /// Whether `other` lies wholly inside this subnet.
    pub fn covers(&self, other: &Subnet) -> bool {
        other.prefix >= self.prefix && self.contains(other.addr)
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

/// The refusal of anything IPv6 in a network's or endpoint's settings.
pub fn ipv6_refused(what: &str) -> Error {
    Error::InvalidArgument(format!("IPv6 networks are not supported by Berth ({what} is IPv6)"))
}

/// An address of an IPAM setting (`what`: "gateway address", "aux-address"); IPv6
/// is refused as such.
pub fn parse_ipv4(what: &str, s: &str) -> Result<Ipv4Addr> {
    match s.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => Ok(ip),
        Ok(std::net::IpAddr::V6(_)) => Err(ipv6_refused(s)),
        Err(_) => Err(Error::InvalidArgument(format!("invalid {what} {s}"))),
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

/// A requested MAC address (`--mac-address`, an endpoint's `MacAddress`) in the
/// forms Go's `net.ParseMAC` reads for 48 bits, as dockerd does: `02:42:ac:11:00:02`,
/// `02-42-AC-11-00-02` or `0242.ac11.0002`. One an interface cannot take (multicast,
/// all zeros) is refused here too: the kernel would refuse it only at start.
pub fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let bad = |why: &str| Error::InvalidArgument(format!("invalid MAC address {s}{why}"));
    let groups: Vec<&str> = if s.contains(':') || s.contains('-') {
        s.split([':', '-']).collect()
    } else {
        s.split('.').flat_map(|g| if g.len() == 4 { vec![&g[..2], &g[2..]] } else { vec![g] }).collect()
    };
    let mixed = s.contains(':') && s.contains('-');
    if mixed || groups.len() != 6 || groups.iter().any(|g| g.len() != 2 || !g.bytes().all(|b| b.is_ascii_hexdigit())) {
        return Err(bad(""));
    }
    let mut mac = [0u8; 6];
    for (i, g) in groups.iter().enumerate() {
        mac[i] = u8::from_str_radix(g, 16).map_err(|_| bad(""))?;
    }
    if mac[0] & 1 == 1 {
        return Err(bad(": a multicast address cannot be an interface's"));
    }
    if mac == [0; 6] {
        return Err(bad(": an interface cannot have the all-zero address"));
    }
    Ok(mac)
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
                ip_range: String::new(),
                aux_addresses: BTreeMap::new(),
                ipam_gateway: true,
                ipam_options: None,
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
        assert!("fd00::/64".parse::<Subnet>().unwrap_err().to_string().contains("IPv6 networks are not supported by Berth"));
    }

    #[test]
    fn macs() {
        for ok in ["02:42:ac:11:00:99", "02-42-AC-11-00-99", "0242.ac11.0099"] {
            assert_eq!(mac_string(&parse_mac(ok).unwrap()), "02:42:ac:11:00:99", "{ok}");
        }
        for bad in ["zz", "02:42:ac:11:00", "02:42:ac:11:00:99:00", "02:42-ac:11:00:99", "2:42:ac:11:00:99", "0242.ac11.009", "02:42:ac:11:00:9g"] {
            assert_eq!(parse_mac(bad).unwrap_err().to_string(), format!("invalid MAC address {bad}"));
        }
        assert!(parse_mac("01:00:5e:00:00:01").unwrap_err().to_string().contains("multicast"));
        assert!(parse_mac("00:00:00:00:00:00").unwrap_err().to_string().contains("all-zero"));
    }

    #[test]
    fn pools() {
        let net = |subnet: &str, range: &str| Network {
            id: "x".repeat(64),
            name: "n".into(),
            driver: "bridge".into(),
            created: Utc::now(),
            subnet: subnet.into(),
            gateway: String::new(),
            internal: false,
            attachable: false,
            labels: BTreeMap::new(),
            options: BTreeMap::new(),
            ip_range: range.into(),
            aux_addresses: BTreeMap::new(),
            ipam_gateway: true,
            ipam_options: None,
        };
        let whole: Vec<_> = net("10.0.0.0/30", "").pool().collect();
        assert_eq!(whole, vec![Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2)]);
        // A range inside the subnet starts at its own first address (Docker's 10.45.5.0).
        let range: Vec<_> = net("10.45.0.0/16", "10.45.5.0/30").pool().collect();
        assert_eq!(range, (0..4).map(|d| Ipv4Addr::new(10, 45, 5, d)).collect::<Vec<_>>());
        // A range at the end of the subnet never hands out its broadcast address.
        assert_eq!(net("10.45.0.0/16", "10.45.255.252/30").pool().count(), 3);
        assert_eq!(net("", "").pool().count(), 0);
    }
}
