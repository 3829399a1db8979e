//! The files Berth writes for each container and binds over the image's:
//! `/etc/hostname`, `/etc/hosts` (with `--add-host`, `--domainname` and links) and
//! `/etc/resolv.conf` (with `--dns`, `--dns-search`, `--dns-option`), as Docker
//! writes them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::container::{ContainerConfig, HostConfig};
use crate::error::{Error, Result};

/// The lines every container's /etc/hosts starts with (Docker's).
pub const HOSTS_HEADER: &str =
    "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::\tip6-localnet\nff00::\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n";

/// The embedded DNS server's address on user-defined networks.
pub const EMBEDDED_DNS: &str = "127.0.0.11";

/// One `--add-host`: `NAME:IP` (or `NAME=IP`, which newer clients send), checked.
pub fn parse_extra_host(s: &str) -> Result<(String, IpAddr)> {
    let bad = || Error::InvalidArgument(format!("invalid IP address in add-host: {s:?}"));
    let (name, ip) = s.split_once('=').or_else(|| s.split_once(':')).ok_or_else(bad)?;
    if name.is_empty() {
        return Err(Error::InvalidArgument(format!("invalid extra host: {s:?}: no host name")));
    }
    if ip == "host-gateway" {
        // Docker's host-gateway is the default bridge's gateway on the host; a Berth
        // bridge lives in the namespace's own network namespace, not on the host.
        return Err(Error::InvalidArgument("--add-host NAME:host-gateway is not supported by Berth".into()));
    }
    // `[::1]` as Docker allows for IPv6.
    let ip = ip.trim_start_matches('[').trim_end_matches(']');
    Ok((name.to_string(), ip.parse().map_err(|_| bad())?))
}

/// Checks a container's `--add-host`, `--dns` values at create.
pub fn validate(h: &HostConfig) -> Result<()> {
    for e in &h.extra_hosts {
        parse_extra_host(e)?;
    }
    for d in &h.dns {
        d.parse::<IpAddr>().map_err(|_| Error::InvalidArgument(format!("{d} is not an ip address")))?;
    }
    Ok(())
}

/// `/etc/hosts` of a container whose own address is `own` (127.0.0.1 until it has
/// one), followed by the `links` lines: Docker's order (defaults, `--add-host`, links,
/// the container itself).
pub fn hosts(config: &ContainerConfig, h: &HostConfig, own: &str, links: &str) -> String {
    let mut out = String::from(HOSTS_HEADER);
    for e in &h.extra_hosts {
        if let Ok((name, ip)) = parse_extra_host(e) {
            out.push_str(&format!("{ip}\t{name}\n"));
        }
    }
    out.push_str(links);
    let host = &config.hostname;
    match config.domainname.as_str() {
        "" => out.push_str(&format!("{own}\t{host}\n")),
        domain => out.push_str(&format!("{own}\t{host}.{domain} {host}\n")),
    }
    out
}

/// `/etc/resolv.conf`: with the embedded DNS (a user-defined network) it names
/// 127.0.0.11, otherwise the `--dns` servers or the host's (minus loopback ones the
/// container cannot reach); `--dns-search` and `--dns-option` replace the host's
/// search and options lines, as in Docker.
pub fn resolv_conf(h: &HostConfig, embedded: bool) -> String {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut out = String::new();
    if embedded {
        out.push_str(&format!("nameserver {EMBEDDED_DNS}\n"));
    } else if !h.dns.is_empty() {
        for d in &h.dns {
            out.push_str(&format!("nameserver {d}\n"));
        }
    } else {
        for l in host.lines().filter(|l| l.starts_with("nameserver")) {
            if !(l.contains(" 127.") || l.contains(" ::1")) {
                out.push_str(&format!("{l}\n"));
            }
        }
    }
    if !h.dns_search.is_empty() {
        // `--dns-search .` means none.
        let domains: Vec<&str> = h.dns_search.iter().map(String::as_str).filter(|d| *d != ".").collect();
        if !domains.is_empty() {
            out.push_str(&format!("search {}\n", domains.join(" ")));
        }
    } else {
        for l in host.lines().filter(|l| l.starts_with("search") || l.starts_with("domain")) {
            out.push_str(&format!("{l}\n"));
        }
    }
    let mut options: Vec<String> = h.dns_options.clone();
    // Names on a user-defined network are single labels: the embedded DNS answers
    // them first unless the user chose their own ndots.
    if embedded && !options.iter().any(|o| o.starts_with("ndots:")) {
        options.insert(0, "ndots:0".into());
    }
    if h.dns_options.is_empty() && !embedded {
        for l in host.lines().filter_map(|l| l.strip_prefix("options")) {
            options.extend(l.split_whitespace().map(str::to_string));
        }
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

/// The servers the embedded DNS forwards other names to: the container's `--dns`
/// servers, or the host's.
pub fn upstream(h: &HostConfig) -> Vec<SocketAddr> {
    if !h.dns.is_empty() {
        return h.dns.iter().filter_map(|d| d.parse::<IpAddr>().ok()).map(|ip| SocketAddr::new(ip, 53)).collect();
    }
    host_nameservers()
}

/// The host's resolvers a container can reach (not loopback ones).
pub fn host_nameservers() -> Vec<SocketAddr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver"))
        .map(str::trim)
        .filter(|ip| ip.parse::<Ipv4Addr>().is_ok_and(|ip| !ip.is_loopback()))
        .filter_map(|ip| format!("{ip}:53").parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_hosts() {
        assert_eq!(parse_extra_host("db:10.0.0.5").unwrap(), ("db".to_string(), "10.0.0.5".parse().unwrap()));
        assert_eq!(parse_extra_host("db=10.0.0.5").unwrap().1, "10.0.0.5".parse::<IpAddr>().unwrap());
        assert_eq!(parse_extra_host("v6:::1").unwrap().1, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(parse_extra_host("v6=[fe80::1]").unwrap().1, "fe80::1".parse::<IpAddr>().unwrap());
        assert!(parse_extra_host("db").is_err());
        assert!(parse_extra_host("db:not-an-ip").is_err());
        assert!(parse_extra_host("gw:host-gateway").unwrap_err().to_string().contains("not supported by Berth"));
    }

    #[test]
    fn hosts_and_resolv() {
        let config: ContainerConfig = serde_json::from_value(serde_json::json!({"Hostname": "web", "Domainname": "example.org"})).unwrap();
        let mut h: HostConfig = serde_json::from_value(serde_json::json!({
            "ExtraHosts": ["db:10.0.0.5"], "Dns": ["9.9.9.9"], "DnsSearch": ["corp.example"], "DnsOptions": ["ndots:2"]
        }))
        .unwrap();
        let text = hosts(&config, &h, "172.17.0.2", "");
        assert!(text.ends_with("10.0.0.5\tdb\n172.17.0.2\tweb.example.org web\n"), "{text}");
        assert_eq!(resolv_conf(&h, false), "nameserver 9.9.9.9\nsearch corp.example\noptions ndots:2\n");
        assert_eq!(resolv_conf(&h, true), "nameserver 127.0.0.11\nsearch corp.example\noptions ndots:2\n");
        assert_eq!(upstream(&h), vec!["9.9.9.9:53".parse().unwrap()]);
        h.dns_options = vec!["timeout:1".into()];
        assert!(resolv_conf(&h, true).ends_with("options ndots:0 timeout:1\n"));
        h.dns_search = vec![".".into()];
        assert!(!resolv_conf(&h, false).contains("search"));
    }
}
