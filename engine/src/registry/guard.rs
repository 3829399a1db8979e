//! The guard on registry requests made for a lab session.
//!
//! The engine pulls, pushes, logs in and searches from the server's own network on a
//! student's behalf, so without a guard `docker pull 127.0.0.1:6000/x` in a lab session
//! makes the server connect to its own loopback services, or to anything on its private
//! networks (a server-side request forgery). For a lab session every registry host is
//! resolved once and refused unless all its addresses are globally routable, with two
//! exceptions: Berth's own registry (whose repositories the engine maps per session, see
//! [`super::lab_names`]) and the registries the instructor allows
//! (`berth serve --lab-registry-allow`). Registry mirrors are the operator's choice and
//! are never guarded.
//!
//! The client then connects to exactly the addresses that were checked ([`Pinned`]):
//! a second lookup could answer differently (DNS rebinding). Other hosts an exchange
//! leads to (a token realm, a redirect, an upload location) are checked as well: names
//! through [`GuardedResolver`], IP literals (which reqwest never resolves) through
//! [`Pinned::check_url`].

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use super::{endpoint_host, RegistryError};

/// Why an address is not one a lab session may make the server reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Loopback,
    /// RFC 1918, and IPv6's unique local (fc00::/7) and site-local addresses.
    Private,
    /// 100.64.0.0/10, carrier-grade NAT (RFC 6598).
    Shared,
    LinkLocal,
    Unspecified,
    Multicast,
    Broadcast,
    Documentation,
    /// Anything else not globally routable: benchmarking, protocol assignments,
    /// discard, future use.
    Reserved,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Loopback => "a loopback address of the lab server",
            Kind::Private => "a private network address",
            Kind::Shared => "a shared (carrier-grade NAT) address",
            Kind::LinkLocal => "a link-local address",
            Kind::Unspecified => "the unspecified address",
            Kind::Multicast => "a multicast address",
            Kind::Broadcast => "the broadcast address",
            Kind::Documentation => "a documentation address",
            Kind::Reserved => "a reserved address, not globally routable",
        })
    }
}

/// What keeps `ip` from being globally routable, None when it is. IPv6 addresses that
/// carry an IPv4 one (v4-mapped `::ffff:a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4
/// `2002::/16`) are judged by the IPv4 address they lead to.
pub fn classify(ip: IpAddr) -> Option<Kind> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<Kind> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip.is_broadcast() => Kind::Broadcast,
        (0, _, _) => Kind::Unspecified,
        (127, _, _) => Kind::Loopback,
        (10, _, _) | (172, 16..=31, _) | (192, 168, _) => Kind::Private,
        (100, 64..=127, _) => Kind::Shared,
        (169, 254, _) => Kind::LinkLocal,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => Kind::Documentation,
        (192, 0, 0) | (198, 18..=19, _) | (240..=255, _, _) => Kind::Reserved,
        (224..=239, _, _) => Kind::Multicast,
        _ => return None,
    })
}

fn classify_v6(ip: Ipv6Addr) -> Option<Kind> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    Some(match s {
        _ if ip.is_unspecified() => Kind::Unspecified,
        _ if ip.is_loopback() => Kind::Loopback,
        // NAT64 (RFC 6052) and 6to4 (RFC 3056) reach the IPv4 address inside.
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => return classify_v4(embedded(hi, lo)),
        [0x2002, hi, lo, ..] => return classify_v4(embedded(hi, lo)),
        // Local-use NAT64 (RFC 8215) is a private network's.
        [0x64, 0xff9b, 1, ..] => Kind::Private,
        // IPv4-compatible (deprecated), discard-only.
        [0, 0, 0, 0, 0, 0, _, _] | [0x100, 0, 0, 0, ..] => Kind::Reserved,
        [0x2001, 0xdb8, ..] | [0x3fff, 0..=0x0fff, ..] => Kind::Documentation,
        // IETF protocol assignments (2001::/23), but for the few that are global.
        [0x2001, b, ..] if b < 0x200 && !ietf_global(&s) => Kind::Reserved,
        [x, ..] if x & 0xfe00 == 0xfc00 => Kind::Private,
        [x, ..] if x & 0xffc0 == 0xfe80 => Kind::LinkLocal,
        [x, ..] if x & 0xffc0 == 0xfec0 => Kind::Private,
        [x, ..] if x & 0xff00 == 0xff00 => Kind::Multicast,
        // Only 2000::/3 is allocated for global unicast.
        [x, ..] if x & 0xe000 != 0x2000 => Kind::Reserved,
        _ => return None,
    })
}

/// The globally reachable parts of 2001::/23 (IANA's special-purpose registry):
/// 2001:1::1 and ::2 (anycast), AMT 2001:3::/32, AS112 2001:4:112::/48, ORCHIDv2
/// 2001:20::/28.
fn ietf_global(s: &[u16; 8]) -> bool {
    matches!(s, [0x2001, 1, 0, 0, 0, 0, 0, 1 | 2] | [0x2001, 3, ..] | [0x2001, 4, 0x112, ..]) || (s[1] & 0xfff0 == 0x20)
}

/// What the lab session is doing, for the refusal's wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pull,
    Push,
    Login,
    Search,
}

impl Action {
    fn words(self) -> &'static str {
        match self {
            Action::Pull => "pulling from",
            Action::Push => "pushing to",
            Action::Login => "logging in to",
            Action::Search => "searching",
        }
    }
}

/// Where a lab session may connect, set by `berth serve`.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    /// `--lab-registry-allow`: registries (`HOST` or `HOST:PORT`) sessions may reach
    /// wherever they are.
    pub allow: Vec<String>,
    /// Where Berth's own registry listens (None: it is off).
    pub own: Option<SocketAddr>,
}

/// How a lab session reaches a registry it may reach.
#[derive(Debug, Clone, PartialEq)]
pub enum Endpoint {
    /// Berth's own registry, at the address it listens on; its repositories are the
    /// session's own and the class's.
    Own(Pinned),
    /// Allowed by the instructor: reached as outside lab sessions.
    Allowed,
    /// A registry at globally routable addresses: reached at these only.
    Public(Pinned),
}

/// A registry host with the addresses it was checked at: the client connects there
/// and nowhere else for that host.
#[derive(Debug, Clone, PartialEq)]
pub struct Pinned {
    /// The host as in URLs (`registry-1.docker.io`, `127.0.0.1`, `::1`).
    pub host: String,
    /// The port named, or 443 when none was.
    pub port: u16,
    pub addrs: Vec<IpAddr>,
    /// Whether the addresses are Berth's own registry (not globally routable: only
    /// the registry's own port may be reached there).
    pub own: bool,
}

/// Splits `HOST[:PORT]` (`[v6]:PORT` too) into the host as URLs carry it, without
/// brackets, and the port, if any.
pub fn split_host_port(registry: &str) -> (String, Option<u16>) {
    if let Some(rest) = registry.strip_prefix('[') {
        let (h, tail) = rest.split_once(']').unwrap_or((rest, ""));
        return (h.to_string(), tail.strip_prefix(':').and_then(|p| p.parse().ok()));
    }
    match registry.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => match p.parse() {
            Ok(port) => (h.to_string(), Some(port)),
            Err(_) => (registry.to_string(), None),
        },
        _ => (registry.to_string(), None),
    }
}

/// The host's own addresses (every interface's), for a registry listening on all of them.
fn local_addresses() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else { return Vec::new() };
    addrs
        .filter_map(|a| a.address)
        .filter_map(|a| a.as_sockaddr_in().map(|s| IpAddr::V4(s.ip())).or_else(|| a.as_sockaddr_in6().map(|s| IpAddr::V6(s.ip()))))
        .collect()
}

fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        ip => ip,
    }
}

impl Guard {
    /// Whether a connection to `ip:port` reaches Berth's own registry.
    fn reaches_own(&self, ip: IpAddr, port: u16) -> bool {
        let Some(own) = self.own else { return false };
        if port != own.port() {
            return false;
        }
        let ip = unmapped(ip);
        if ip == unmapped(own.ip()) {
            return true;
        }
        own.ip().is_unspecified() && (ip.is_loopback() || local_addresses().contains(&ip))
    }

    /// Where to connect for the own registry: its address, or loopback when it
    /// listens on all addresses.
    fn own_address(&self) -> Option<IpAddr> {
        let own = self.own?;
        Some(match own.ip() {
            IpAddr::V4(v) if v.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(v) if v.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        })
    }

    fn allowed(&self, registry: &str, host: &str) -> bool {
        self.allow.iter().any(|a| a.eq_ignore_ascii_case(registry) || a.eq_ignore_ascii_case(host))
    }

    /// Checks a registry a lab session names (`docker.io`, `localhost:5000`,
    /// `10.0.0.5:5000`) before anything connects to it: resolves it once and says
    /// how to reach it, or refuses with the reason.
    pub fn check(&self, registry: &str, action: Action) -> Result<Endpoint, RegistryError> {
        let endpoint = endpoint_host(registry);
        let (host, port) = split_host_port(endpoint);
        // As URLs carry it, so the pin matches the name the client looks up.
        let host = host.to_ascii_lowercase();
        let port = port.unwrap_or(443);
        let literal = host.parse::<IpAddr>().ok();
        // Berth's own registry by the names that reach it without a lookup.
        let own_by_name = host.eq_ignore_ascii_case("localhost") || literal.is_some_and(|ip| ip.is_loopback() || self.reaches_own(ip, port));
        if own_by_name && self.own.is_some_and(|o| o.port() == port) {
            if let Some(ip) = literal.filter(|ip| self.reaches_own(*ip, port)).or(self.own_address().filter(|_| literal.is_none())) {
                return Ok(Endpoint::Own(Pinned { host, port, addrs: vec![ip], own: true }));
            }
        }
        if self.allowed(registry, &host) || self.allowed(endpoint, &host) {
            return Ok(Endpoint::Allowed);
        }
        let addrs: Vec<IpAddr> = match literal {
            Some(ip) => vec![ip],
            None => (host.as_str(), port)
                .to_socket_addrs()
                .map_err(|e| RegistryError::Transport(format!("Get \"https://{endpoint}/v2/\": dial tcp: lookup {host}: {e}")))?
                .map(|a| a.ip())
                .collect(),
        };
        if let Some(ip) = addrs.iter().copied().find(|ip| self.reaches_own(*ip, port)) {
            return Ok(Endpoint::Own(Pinned { host, port, addrs: vec![ip], own: true }));
        }
        if let Some((ip, kind)) = addrs.iter().find_map(|ip| classify(*ip).map(|k| (*ip, k))) {
            let what = match literal {
                Some(_) => format!("it is {kind}"),
                None => format!("{host} is at {ip}, {kind}"),
            };
            let class = self.own.map(|o| format!(" (the class registry is localhost:{})", o.port())).unwrap_or_default();
            return Err(RegistryError::Denied(format!("{} {registry} is not allowed in a lab session: {what}{class}", action.words())));
        }
        if addrs.is_empty() {
            return Err(RegistryError::Transport(format!("Get \"https://{endpoint}/v2/\": dial tcp: lookup {host}: no such host")));
        }
        Ok(Endpoint::Public(Pinned { host, port, addrs, own: false }))
    }
}

impl Pinned {
    /// Whether a URL the exchange leads to (a token realm, an upload location, a
    /// redirect) may be fetched: the pinned host itself (its own port only, when it
    /// is Berth's registry), an IP literal that is globally routable, or another name
    /// (which [`GuardedResolver`] checks when it is looked up).
    pub fn check_url(&self, url: &reqwest::Url) -> Result<(), String> {
        let host = url.host_str().unwrap_or("");
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = url.port_or_known_default().unwrap_or(0);
        let same_addr = host.parse::<IpAddr>().is_ok_and(|ip| self.addrs.contains(&ip));
        if host.eq_ignore_ascii_case(&self.host) || same_addr {
            if !self.own || port == self.port {
                return Ok(());
            }
            return Err(format!("{url} is not allowed in a lab session: only the registry's own port may be reached on {host}"));
        }
        match host.parse::<IpAddr>().ok().and_then(|ip| classify(ip).map(|k| (ip, k))) {
            Some((_, kind)) => Err(format!("{url} is not allowed in a lab session: it is {kind}")),
            None => Ok(()),
        }
    }

    /// A client builder that connects to the pinned addresses for the registry's
    /// host, checks every other name it looks up, and checks redirects.
    pub fn apply(self: &Arc<Self>, builder: reqwest::blocking::ClientBuilder) -> reqwest::blocking::ClientBuilder {
        // Port 0: the port of each URL is used (https first, then plain http).
        let addrs: Vec<SocketAddr> = self.addrs.iter().map(|ip| SocketAddr::new(*ip, 0)).collect();
        let pin = self.clone();
        builder
            .resolve_to_addrs(&self.host, &addrs)
            .dns_resolver(Arc::new(GuardedResolver))
            .redirect(reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= 10 {
                    return attempt.error("too many redirects");
                }
                match pin.check_url(attempt.url()) {
                    Ok(()) => attempt.follow(),
                    Err(e) => attempt.error(e),
                }
            }))
    }
}

/// Resolves the names a lab session's registry exchange leads to (other than the
/// pinned registry host) and refuses those with an address that is not globally
/// routable; the connection then goes to the addresses checked.
pub struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let lookup = host.clone();
            let addrs: Vec<SocketAddr> = tokio::task::spawn_blocking(move || (lookup.as_str(), 0).to_socket_addrs().map(Iterator::collect))
                .await
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)??;
            if let Some((ip, kind)) = addrs.iter().find_map(|a| classify(a.ip()).map(|k| (a.ip(), k))) {
                return Err(format!("{host} is not allowed in a lab session: it is at {ip}, {kind}").into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(s: &str) -> Option<Kind> {
        classify(s.parse().unwrap())
    }

    #[test]
    fn ipv4_classes() {
        for (ip, k) in [
            ("127.0.0.1", Kind::Loopback),
            ("127.255.0.9", Kind::Loopback),
            ("0.0.0.0", Kind::Unspecified),
            ("10.1.2.3", Kind::Private),
            ("172.16.0.1", Kind::Private),
            ("172.31.255.255", Kind::Private),
            ("192.168.1.1", Kind::Private),
            ("100.64.0.1", Kind::Shared),
            ("100.127.255.254", Kind::Shared),
            ("169.254.169.254", Kind::LinkLocal),
            ("224.0.0.1", Kind::Multicast),
            ("255.255.255.255", Kind::Broadcast),
            ("240.0.0.1", Kind::Reserved),
            ("198.18.0.1", Kind::Reserved),
            ("192.0.0.8", Kind::Reserved),
            ("192.0.2.1", Kind::Documentation),
            ("203.0.113.7", Kind::Documentation),
        ] {
            assert_eq!(kind(ip), Some(k), "{ip}");
        }
        for ip in ["1.1.1.1", "8.8.8.8", "172.32.0.1", "172.15.255.255", "100.128.0.1", "100.63.255.255", "192.169.0.1", "169.253.0.1", "223.255.255.255"] {
            assert_eq!(kind(ip), None, "{ip}");
        }
    }

    #[test]
    fn ipv6_classes_and_embedded_ipv4() {
        for (ip, k) in [
            ("::1", Kind::Loopback),
            ("::", Kind::Unspecified),
            ("::ffff:127.0.0.1", Kind::Loopback),
            ("::ffff:10.0.0.1", Kind::Private),
            ("::ffff:169.254.169.254", Kind::LinkLocal),
            ("64:ff9b::7f00:1", Kind::Loopback),
            ("64:ff9b::a00:1", Kind::Private),
            ("64:ff9b:1::1", Kind::Private),
            ("2002:7f00:1::", Kind::Loopback),
            ("2002:c0a8:101::1", Kind::Private),
            ("::127.0.0.1", Kind::Reserved),
            ("fc00::1", Kind::Private),
            ("fd12:3456::1", Kind::Private),
            ("fe80::1", Kind::LinkLocal),
            ("febf::1", Kind::LinkLocal),
            ("fec0::1", Kind::Private),
            ("ff02::1", Kind::Multicast),
            ("2001:db8::1", Kind::Documentation),
            ("3fff::1", Kind::Documentation),
            ("2001::1", Kind::Reserved),
            ("2001:2::1", Kind::Reserved),
            ("100::1", Kind::Reserved),
            ("4000::1", Kind::Reserved),
        ] {
            assert_eq!(kind(ip), Some(k), "{ip}");
        }
        for ip in ["2606:4700:4700::1111", "2a00:1450:4001::200e", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1", "2001:4860::8888", "2001:20::1", "2001:1::1"] {
            assert_eq!(kind(ip), None, "{ip}");
        }
    }

    #[test]
    fn host_and_port() {
        assert_eq!(split_host_port("localhost:5000"), ("localhost".into(), Some(5000)));
        assert_eq!(split_host_port("[::1]:5000"), ("::1".into(), Some(5000)));
        assert_eq!(split_host_port("[::1]"), ("::1".into(), None));
        assert_eq!(split_host_port("registry.example"), ("registry.example".into(), None));
        assert_eq!(split_host_port("::1"), ("::1".into(), None));
    }

    fn guard() -> Guard {
        Guard { allow: vec!["10.9.9.9:5000".into(), "mirror.internal".into()], own: Some("127.0.0.1:5000".parse().unwrap()) }
    }

    #[test]
    fn lab_endpoints() {
        let g = guard();
        let own = |host: &str| Endpoint::Own(Pinned { host: host.into(), port: 5000, addrs: vec!["127.0.0.1".parse().unwrap()], own: true });
        assert_eq!(g.check("localhost:5000", Action::Push).unwrap(), own("localhost"));
        assert_eq!(g.check("127.0.0.1:5000", Action::Pull).unwrap(), own("127.0.0.1"));
        assert_eq!(g.check("10.9.9.9:5000", Action::Pull).unwrap(), Endpoint::Allowed);
        assert_eq!(g.check("mirror.internal:8443", Action::Pull).unwrap(), Endpoint::Allowed);
        assert_eq!(g.check("8.8.8.8", Action::Pull).unwrap(), Endpoint::Public(Pinned { host: "8.8.8.8".into(), port: 443, addrs: vec!["8.8.8.8".parse().unwrap()], own: false }));
        for (name, why) in [
            ("127.0.0.1:6000", "pulling from 127.0.0.1:6000 is not allowed in a lab session: it is a loopback address of the lab server"),
            ("localhost:6000", "localhost is at"),
            ("[::1]:5000", "it is a loopback address"),
            ("[::ffff:127.0.0.1]:6000", "it is a loopback address"),
            ("127.0.0.2:5000", "it is a loopback address"),
            ("10.9.9.9:5001", "it is a private network address"),
            ("169.254.169.254", "it is a link-local address"),
            ("[fd00::1]:5000", "it is a private network address"),
            ("0.0.0.0:5000", "it is the unspecified address"),
        ] {
            match g.check(name, Action::Pull) {
                Err(RegistryError::Denied(m)) => {
                    assert!(m.contains(why), "{name}: {m}");
                    assert!(m.ends_with("(the class registry is localhost:5000)"), "{m}");
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        // With the registry off, localhost is just a loopback address.
        let off = Guard { own: None, ..guard() };
        assert!(matches!(off.check("localhost:5000", Action::Login), Err(RegistryError::Denied(m)) if m.starts_with("logging in to localhost:5000")));
    }

    #[test]
    fn a_registry_on_every_address_is_reached_at_loopback() {
        let g = Guard { allow: vec![], own: Some("0.0.0.0:5000".parse().unwrap()) };
        let Endpoint::Own(p) = g.check("localhost:5000", Action::Push).unwrap() else { panic!() };
        assert_eq!(p.addrs, vec!["127.0.0.1".parse::<IpAddr>().unwrap()]);
        assert!(matches!(g.check("127.0.0.5:5000", Action::Push), Ok(Endpoint::Own(_))));
        assert!(g.check("127.0.0.1:5001", Action::Push).is_err());
    }

    #[test]
    fn urls_the_exchange_leads_to() {
        let own = Pinned { host: "localhost".into(), port: 5000, addrs: vec!["127.0.0.1".parse().unwrap()], own: true };
        let ok = |p: &Pinned, u: &str| p.check_url(&u.parse().unwrap());
        assert!(ok(&own, "http://localhost:5000/v2/token").is_ok());
        assert!(ok(&own, "http://127.0.0.1:5000/v2/x/blobs/uploads/1").is_ok(), "the address checked");
        assert!(ok(&own, "http://localhost:6000/").is_err());
        assert!(ok(&own, "http://127.0.0.1:6000/").unwrap_err().contains("only the registry's own port"));
        assert!(ok(&own, "http://[::ffff:10.0.0.1]/").unwrap_err().contains("private"));
        assert!(ok(&own, "https://auth.example/token").is_ok(), "names are checked when resolved");
        let public = Pinned { host: "registry.example".into(), port: 443, addrs: vec!["8.8.8.8".parse().unwrap()], own: false };
        assert!(ok(&public, "https://registry.example:8443/x").is_ok());
        assert!(ok(&public, "http://169.254.169.254/latest/meta-data").is_err());
    }
}
