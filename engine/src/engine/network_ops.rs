//! Networks: create, list, remove, connect, disconnect, and what a starting container
//! needs from them (its interfaces, /etc/hosts with links, the embedded DNS's names).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use chrono::Utc;

use super::Engine;
use crate::container::{Container, Endpoint, HostConfig, Status};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::network::{self, link, Network, Subnet};

/// `docker network create`'s options.
#[derive(Debug, Clone, Default)]
pub struct NetworkCreate {
    pub name: String,
    pub driver: String,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub internal: bool,
    pub attachable: bool,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    /// `--ip-range`: a part of the subnet to hand addresses out from.
    pub ip_range: Option<String>,
    /// `--aux-address`: addresses kept from containers.
    pub aux_addresses: BTreeMap<String, String>,
    /// `IPAM.Options` as sent (None: null); options themselves are refused.
    pub ipam_options: Option<BTreeMap<String, String>>,
}

/// A container's wish for one network (`--network-alias`, `--ip`, `--mac-address`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EndpointRequest {
    pub aliases: Vec<String>,
    pub ipv4_address: Option<String>,
    pub mac_address: Option<String>,
    /// Whether the request had an `IPAMConfig` and a `DriverOpts` object (even an
    /// empty one): inspect shows them back as Docker does, null otherwise.
    pub ipam_config: bool,
    pub driver_opts: bool,
}

/// Where a container's network mode puts it.
pub(crate) enum Mode {
    /// Its own network namespace with no interface but loopback.
    None,
    /// The namespace's host network (no namespace of its own).
    Host,
    /// Its own namespace, on one network (boxed: a network record is large).
    Network(Box<Network>),
    /// Another container's network namespace (`--network container:X`).
    Container,
}

impl Engine {
    /// The network namespace where a namespace's bridges live: a lab session's own
    /// network, else one kept for the namespace.
    /// Outside lab sessions (which stay offline) the home has an uplink to the host's
    /// networks, made once per run of the server.
    pub fn network_home(&self, ns: &str) -> Result<PathBuf> {
        match self.policy(ns).and_then(|p| p.network) {
            Some(p) => {
                crate::netns::ensure(&p)?;
                Ok(p)
            }
            None => {
                let path = self.root.join("netns").join(ns);
                crate::netns::ensure(&path)?;
                let mut done = self.uplinks.lock().unwrap_or_else(|p| p.into_inner());
                if !done.contains(&path) {
                    network::uplink::ensure(&path)?;
                    done.insert(path.clone());
                }
                Ok(path)
            }
        }
    }

    pub fn list_networks(&self, ns: &str) -> Result<Vec<Network>> {
        self.networks.list(ns)
    }

    pub fn network(&self, ns: &str, name: &str) -> Result<Network> {
        self.networks.find(ns, name)
    }

    /// The containers attached to a network, with their endpoint on it.
    pub fn network_endpoints(&self, ns: &str, net: &Network) -> Vec<(Container, Endpoint)> {
        let map = self.containers.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<(Container, Endpoint)> = map
            .values()
            .filter(|c| c.namespace == ns)
            .filter_map(|c| c.endpoints.iter().find(|e| e.network_id == net.id).map(|e| (c.clone(), e.clone())))
            .collect();
        out.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        out
    }

    pub fn create_network(&self, ns: &str, req: NetworkCreate) -> Result<Network> {
        let _g = self.image_lock.lock().unwrap_or_else(|p| p.into_inner());
        // Docker's only rules for a name: not blank, not a predefined network's. Any
        // other text goes (spaces, slashes, dots): bridges are named by id.
        if req.name.trim().is_empty() {
            return Err(Error::InvalidArgument(format!("invalid name: {}", req.name)));
        }
        if matches!(req.name.as_str(), "bridge" | "host" | "none") {
            return Err(Error::Forbidden(format!("operation is not permitted on predefined {} network", req.name)));
        }
        check_bridge_options(&req.options)?;
        if req.ipam_options.as_ref().is_some_and(|o| !o.is_empty()) {
            return Err(Error::InvalidArgument("IPAM driver options are not supported by Berth".into()));
        }
        let mut nets = self.networks.list(ns)?;
        if nets.iter().any(|n| n.name == req.name) {
            return Err(Error::Conflict(format!("network with name {} already exists", req.name)));
        }
        match req.driver.as_str() {
            "" | "bridge" => {}
            "host" | "null" => return Err(Error::InvalidArgument(format!("only one instance of \"{}\" network is allowed", if req.driver == "null" { "none" } else { "host" }))),
            d => return Err(Error::NotFound(format!("plugin \"{d}\" not found"))),
        }
        let used: Vec<Subnet> = nets.iter().filter_map(Network::subnet).collect();
        // The CLI's rules for the pool's parts (dockerd 20.10 checks less), by its words.
        if req.subnet.is_none() && (req.gateway.is_some() || req.ip_range.is_some()) {
            return Err(Error::InvalidArgument("every ip-range or gateway must have a corresponding subnet".into()));
        }
        let subnet = match &req.subnet {
            Some(s) => {
                let s: Subnet = s.parse()?;
                if used.iter().any(|u| u.overlaps(&s)) {
                    return Err(Error::InvalidArgument("invalid pool request: Pool overlaps with other one on this address space".into()));
                }
                s
            }
            None => network::free_subnet(&used)?,
        };
        let gateway = match &req.gateway {
            Some(g) => {
                let ip = network::parse_ipv4("gateway address", g)?;
                if !subnet.contains(ip) {
                    return Err(Error::InvalidArgument(format!("Invalid address {g}: It does not belong to any of this network's subnets")));
                }
                ip
            }
            None => subnet.first(),
        };
        let ip_range = match &req.ip_range {
            Some(r) => {
                let range = Subnet::parse_range(r)?;
                if !subnet.covers(&range) {
                    return Err(Error::InvalidArgument(format!("no matching subnet for range {r}")));
                }
                range.to_string()
            }
            None => String::new(),
        };
        for a in req.aux_addresses.values() {
            if !subnet.contains(network::parse_ipv4("aux-address", a)?) {
                return Err(Error::InvalidArgument(format!("no matching subnet for aux-address {a}")));
            }
        }
        let net = Network {
            id: fsutil::random_id(),
            name: req.name.clone(),
            driver: "bridge".into(),
            created: Utc::now(),
            subnet: subnet.to_string(),
            gateway: gateway.to_string(),
            internal: req.internal,
            attachable: req.attachable,
            labels: req.labels,
            options: req.options,
            ip_range,
            aux_addresses: req.aux_addresses,
            ipam_gateway: req.subnet.is_none() || req.gateway.is_some(),
            ipam_options: req.ipam_options,
        };
        nets.push(net.clone());
        self.networks.save(ns, &nets)?;
        self.emit(ns, "network", "create", &net.id, &[("name", &net.name), ("type", "bridge")]);
        Ok(net)
    }

    pub fn remove_network(&self, ns: &str, name: &str) -> Result<()> {
        let net = self.networks.find(ns, name)?;
        if net.is_predefined() {
            return Err(Error::Conflict(format!("{} is a pre-defined network and cannot be removed", net.name)));
        }
        let users = self.network_endpoints(ns, &net);
        if !users.is_empty() {
            let list: Vec<String> = users.iter().map(|(c, e)| format!("name:\"{}\" id:\"{}\"", c.name, &e.endpoint_id[..12])).collect();
            return Err(Error::Conflict(format!(
                "error while removing network: network {} id {} has active endpoints ({})",
                net.name,
                net.id,
                list.join(", ")
            )));
        }
        let _g = self.image_lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut nets = self.networks.list(ns)?;
        nets.retain(|n| n.id != net.id);
        self.networks.save(ns, &nets)?;
        if let Ok(home) = self.network_home(ns) {
            let _ = link::remove_bridge(&home, &net.bridge());
        }
        self.emit(ns, "network", "destroy", &net.id, &[("name", &net.name), ("type", "bridge")]);
        Ok(())
    }

    /// `docker network prune`: user-defined networks no container uses.
    pub fn prune_networks(&self, ns: &str) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        for net in self.networks.list(ns)?.into_iter().filter(|n| !n.is_predefined()) {
            if self.network_endpoints(ns, &net).is_empty() && self.remove_network(ns, &net.id).is_ok() {
                removed.push(net.name);
            }
        }
        Ok(removed)
    }

    /// Where a container's network mode (`HostConfig.NetworkMode`) puts it.
    pub(crate) fn network_mode(&self, ns: &str, h: &HostConfig) -> Result<Mode> {
        match h.network_mode.as_str() {
            "" | "default" => Ok(Mode::Network(Box::new(self.networks.find(ns, network::DEFAULT)?))),
            "none" => Ok(Mode::None),
            "host" => Ok(Mode::Host),
            m if m.starts_with("container:") => Ok(Mode::Container),
            name => {
                let net = self.networks.find(ns, name)?;
                Ok(match net.driver.as_str() {
                    "host" => Mode::Host,
                    "null" => Mode::None,
                    _ => Mode::Network(Box::new(net)),
                })
            }
        }
    }

    /// The endpoint a new container gets on `net`, checked against the others'.
    pub(crate) fn new_endpoint(
        &self,
        map: &HashMap<String, Container>,
        ns: &str,
        net: &Network,
        req: &EndpointRequest,
    ) -> Result<Endpoint> {
        let subnet = net.subnet().ok_or_else(|| Error::InvalidArgument(format!("network {} has no subnet", net.name)))?;
        if !net.has_dns() && !req.aliases.is_empty() {
            return Err(Error::InvalidArgument("network-scoped alias is supported only for containers in user defined networks".into()));
        }
        let used: Vec<String> = map.values().filter(|c| c.namespace == ns).flat_map(|c| c.endpoints.iter()).filter(|e| e.network_id == net.id).map(|e| e.ip.clone()).collect();
        let reserved = net.reserved();
        let ip = match &req.ipv4_address {
            Some(a) if !a.is_empty() => {
                if !net.has_dns() {
                    return Err(Error::InvalidArgument("user specified IP address is supported on user defined networks only".into()));
                }
                let ip: Ipv4Addr = a.parse().map_err(|_| Error::InvalidArgument(format!("invalid IPv4 address: {a}")))?;
                if !subnet.contains(ip) || Some(ip) == net.gateway_ip() {
                    return Err(Error::InvalidArgument(format!("Invalid address {a}: It does not belong to any of this network's subnets")));
                }
                // An auxiliary address is taken, as dockerd answers for one.
                if used.contains(&ip.to_string()) || reserved.contains(&ip) {
                    return Err(Error::Conflict(format!("Address already in use: {a}")));
                }
                ip
            }
            _ => net
                .pool()
                .find(|ip| !reserved.contains(ip) && !used.contains(&ip.to_string()))
                .ok_or_else(|| Error::Conflict(format!("no available IPv4 addresses on this network's address pools: {} ({})", net.name, net.id)))?,
        };
        let mac = match &req.mac_address {
            Some(m) => network::parse_mac(m)?,
            None => network::mac_for(ip),
        };
        // The container's own name, its short id and these aliases all resolve (see
        // `refresh_names`); only the aliases asked for are kept, as Docker keeps them.
        Ok(Endpoint {
            network_id: net.id.clone(),
            network: net.name.clone(),
            endpoint_id: fsutil::random_id(),
            ip: ip.to_string(),
            prefix: subnet.prefix,
            gateway: net.gateway.clone(),
            mac: network::mac_string(&mac),
            aliases: req.aliases.clone(),
            ipam_config: req.ipam_config.then(|| req.ipv4_address.clone().unwrap_or_default()),
            driver_opts: req.driver_opts,
        })
    }

    /// The links a new container asks for, as `name:alias`; every target must exist.
    pub(crate) fn check_links(map: &HashMap<String, Container>, ns: &str, links: &[String]) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for l in links {
            let (name, alias) = l.split_once(':').unwrap_or((l.as_str(), l.as_str()));
            let name = name.trim_start_matches('/');
            let alias = alias.rsplit('/').next().unwrap_or(alias);
            Self::lookup(map, ns, name).map_err(|_| Error::NotFound(format!("Could not get container for {name}")))?;
            out.push(format!("{name}:{alias}"));
        }
        Ok(out)
    }

    /// `docker rm --link /PARENT/ALIAS`: PARENT forgets its link ALIAS (dockerd's
    /// `rmLink`); both containers stay. The running parent keeps what the link gave
    /// it at its start (environment, hosts entry), as on dockerd.
    pub fn remove_link(&self, ns: &str, link: &str) -> Result<()> {
        let full = format!("/{}", link.trim_start_matches('/'));
        let (parent, alias) = full.rsplit_once('/').unwrap_or(("", &full));
        if parent.is_empty() {
            return Err(Error::Conflict("Conflict, cannot remove the default link name of the container".into()));
        }
        let not_found = || Error::NotFound(format!("No such container: {link}"));
        let mut map = self.containers.lock().unwrap_or_else(|p| p.into_inner());
        let id = Self::lookup(&map, ns, parent).map_err(|_| not_found())?.id.clone();
        let c = map.get_mut(&id).ok_or_else(not_found)?;
        let before = c.host_config.links.len();
        c.host_config.links.retain(|l| l.split_once(':').map(|(_, a)| a) != Some(alias));
        if c.host_config.links.len() == before {
            return Err(not_found());
        }
        self.save(c)
    }

    /// `docker network connect`.
    pub fn connect_network(&self, ns: &str, network: &str, container: &str, req: EndpointRequest) -> Result<()> {
        let net = self.networks.find(ns, network)?;
        if net.driver != "bridge" {
            return Err(Error::InvalidArgument("container cannot be disconnected from host network or connected to host network".into()));
        }
        let c = {
            let mut map = self.containers.lock().unwrap_or_else(|p| p.into_inner());
            let c = Self::lookup(&map, ns, container)?.clone();
            if c.endpoints.iter().any(|e| e.network_id == net.id) {
                return Err(Error::Conflict(format!("endpoint with name {} already exists in network {}", c.name, net.name)));
            }
            if matches!(c.host_config.network_mode.as_str(), "host" | "none") {
                return Err(Error::InvalidArgument("container sharing network namespace with another container or host cannot be connected to any other network".into()));
            }
            let ep = self.new_endpoint(&map, ns, &net, &req)?;
            let entry = map.get_mut(&c.id).ok_or_else(|| Error::NotFound(format!("No such container: {container}")))?;
            entry.endpoints.push(ep);
            let c = entry.clone();
            self.save(&c)?;
            c
        };
        if c.state.status.is_live() {
            let index = c.endpoints.len() - 1;
            self.plumb_endpoint(&c, c.state.pid, index)?;
            // A container started on the default bridge resolves names from here on,
            // as in Docker (whose sandbox starts its resolver on the first such network).
            if net.has_dns() {
                self.use_embedded_dns(&c)?;
            }
            self.refresh_names(ns);
        }
        self.emit(ns, "network", "connect", &net.id, &[("container", &c.id), ("name", &net.name), ("type", "bridge")]);
        Ok(())
    }

    /// `docker network disconnect`.
    pub fn disconnect_network(&self, ns: &str, network: &str, container: &str, _force: bool) -> Result<()> {
        let net = self.networks.find(ns, network)?;
        let (c, ep) = {
            let mut map = self.containers.lock().unwrap_or_else(|p| p.into_inner());
            let id = Self::lookup(&map, ns, container)?.id.clone();
            let entry = map.get_mut(&id).ok_or_else(|| Error::NotFound(format!("No such container: {container}")))?;
            let Some(pos) = entry.endpoints.iter().position(|e| e.network_id == net.id) else {
                return Err(Error::Conflict(format!("container {} is not connected to network {}", entry.id, net.name)));
            };
            let ep = entry.endpoints.remove(pos);
            let c = entry.clone();
            self.save(&c)?;
            (c, ep)
        };
        if c.state.status.is_live() {
            let home = self.network_home(ns)?;
            link::detach(&home, &host_name(&c, &ep))?;
            self.refresh_names(ns);
        }
        self.emit(ns, "network", "disconnect", &net.id, &[("container", &c.id), ("name", &net.name), ("type", "bridge")]);
        Ok(())
    }

    /// Gives a started container (its init waits, not yet exec'd) its interfaces,
    /// /etc/hosts (own address, links) and resolver, before it runs.
    pub(crate) fn plumb(&self, c: &Container, pid: i32) -> Result<()> {
        for i in 0..c.endpoints.len() {
            self.plumb_endpoint(c, pid, i)?;
        }
        self.write_hosts(c)?;
        if c.endpoints.iter().any(|e| self.networks.find(&c.namespace, &e.network_id).is_ok_and(|n| n.has_dns())) {
            self.use_embedded_dns(c)?;
        }
        self.refresh_names_with(&c.namespace, Some(&c.id));
        Ok(())
    }

    /// Points the container's resolver at the embedded DNS (which its shim serves
    /// whenever it has a network), in place: /etc/resolv.conf is a bind of this file.
    fn use_embedded_dns(&self, c: &Container) -> Result<()> {
        std::fs::write(self.root.join("containers").join(&c.id).join("resolv.conf"), crate::etc_files::resolv_conf(&c.host_config, true))
            .map_err(|e| Error::Runtime(format!("write resolv.conf: {e}")))
    }

    fn plumb_endpoint(&self, c: &Container, pid: i32, index: usize) -> Result<()> {
        let ep = &c.endpoints[index];
        let net = self.networks.find(&c.namespace, &ep.network_id)?;
        let (Some(subnet), Some(gw)) = (net.subnet(), net.gateway_ip()) else { return Ok(()) };
        let home = self.network_home(&c.namespace)?;
        let ip: Ipv4Addr = ep.ip.parse().map_err(|_| Error::Runtime(format!("bad address {}", ep.ip)))?;
        // The address generated from the IP, or the one asked for (checked at create).
        let mac = network::parse_mac(&ep.mac).unwrap_or_else(|_| network::mac_for(ip));
        // The first network carries the default route, as in Docker.
        let gateway = (index == 0 && !net.internal).then_some(gw);
        link::attach(
            &home,
            &link::netns_of(pid),
            &link::Interface {
                host_name: host_name(c, ep),
                name: format!("eth{index}"),
                bridge: net.bridge(),
                bridge_ip: gw,
                ip,
                prefix: subnet.prefix,
                mac,
                gateway,
            },
        )
    }

    /// Every link target runs and shares a network with `c` (checked before a start, so
    /// the error is Docker's own and not a failed task).
    pub(crate) fn links_ready(&self, c: &Container) -> Result<()> {
        self.link_lines(c).map(|_| ())
    }

    fn link_lines(&self, c: &Container) -> Result<String> {
        let mut lines = String::new();
        for l in &c.host_config.links {
            let (name, alias) = l.split_once(':').unwrap_or((l.as_str(), l.as_str()));
            let target = self.container(&c.namespace, name).map_err(|_| Error::InvalidArgument(format!("Could not get container for {name}")))?;
            if target.state.status != Status::Running {
                return Err(Error::Conflict(format!("Cannot link to a non running container: /{} AS /{}/{alias}", target.name, c.name)));
            }
            let shared = target.endpoints.iter().find(|t| c.endpoints.iter().any(|e| e.network_id == t.network_id));
            let Some(ep) = shared else {
                return Err(Error::Conflict(format!("Cannot link to /{}, as it does not belong to the default network", target.name)));
            };
            let names = if alias == target.name { alias.to_string() } else { format!("{alias} {}", target.name) };
            lines.push_str(&format!("{}\t{names} {}\n", ep.ip, &target.id[..12]));
        }
        Ok(lines)
    }

    /// Docker's legacy link variables: `ALIAS_NAME`, `ALIAS_PORT…` for each exposed port
    /// of the target, `ALIAS_ENV_…` for its environment.
    pub(crate) fn link_env(&self, c: &Container) -> Vec<String> {
        let mut env = Vec::new();
        for l in &c.host_config.links {
            let (name, alias) = l.split_once(':').unwrap_or((l.as_str(), l.as_str()));
            let Ok(target) = self.container(&c.namespace, name) else { continue };
            let Some(ep) = target.endpoints.iter().find(|t| c.endpoints.iter().any(|e| e.network_id == t.network_id)) else { continue };
            let prefix: String = alias.chars().map(|ch| if ch.is_ascii_alphanumeric() { ch.to_ascii_uppercase() } else { '_' }).collect();
            env.push(format!("{prefix}_NAME=/{}/{alias}", c.name));
            let mut ports: Vec<(u16, String)> = target
                .config
                .exposed_ports
                .keys()
                .filter_map(|k| {
                    let (p, proto) = k.split_once('/').unwrap_or((k, "tcp"));
                    p.parse().ok().map(|p| (p, proto.to_string()))
                })
                .collect();
            ports.sort();
            if let Some((p, proto)) = ports.first() {
                env.push(format!("{prefix}_PORT={proto}://{}:{p}", ep.ip));
            }
            for (p, proto) in &ports {
                let base = format!("{prefix}_PORT_{p}_{}", proto.to_ascii_uppercase());
                env.push(format!("{base}={proto}://{}:{p}", ep.ip));
                env.push(format!("{base}_ADDR={}", ep.ip));
                env.push(format!("{base}_PORT={p}"));
                env.push(format!("{base}_PROTO={proto}"));
            }
            for kv in &target.config.env {
                if let Some((k, v)) = kv.split_once('=') {
                    if !matches!(k, "PATH" | "HOME" | "HOSTNAME") {
                        env.push(format!("{prefix}_ENV_{k}={v}"));
                    }
                }
            }
        }
        env
    }

    /// /etc/hosts: localhost, the container's own address, and its links.
    fn write_hosts(&self, c: &Container) -> Result<()> {
        let own = c.endpoints.first().map(|e| e.ip.clone()).unwrap_or_else(|| "127.0.0.1".into());
        let hosts = crate::etc_files::hosts(&c.config, &c.host_config, &own, &self.link_lines(c)?);
        std::fs::write(self.root.join("containers").join(&c.id).join("hosts"), hosts).map_err(|e| Error::Runtime(format!("write hosts: {e}")))
    }

    /// Rewrites the embedded DNS's names for every running container of `ns`.
    pub(crate) fn refresh_names(&self, ns: &str) {
        self.refresh_names_with(ns, None)
    }

    /// As [`Self::refresh_names`], counting `starting` as running already.
    fn refresh_names_with(&self, ns: &str, starting: Option<&str>) {
        // One refresh at a time: one computed before a concurrent start must not land
        // after the refresh that counts that start.
        static REFRESH: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = REFRESH.lock().unwrap_or_else(|p| p.into_inner());
        let containers: Vec<Container> = self.containers(ns);
        let running = |c: &Container| c.state.status == Status::Running || Some(c.id.as_str()) == starting;
        let dns_nets: Vec<String> = self.networks.list(ns).unwrap_or_default().into_iter().filter(Network::has_dns).map(|n| n.id).collect();
        for c in containers.iter().filter(|c| running(c)) {
            let mine: Vec<&Endpoint> = c.endpoints.iter().filter(|e| dns_nets.contains(&e.network_id)).collect();
            if mine.is_empty() {
                continue;
            }
            // In order: an address answers a PTR query with the first name listing it,
            // Docker's `name.network`.
            let mut names: Vec<(String, Vec<IpAddr>)> = Vec::new();
            for other in containers.iter().filter(|o| running(o)) {
                for e in other.endpoints.iter().filter(|e| mine.iter().any(|m| m.network_id == e.network_id)) {
                    let Ok(ip) = e.ip.parse::<IpAddr>() else { continue };
                    let mut keys = vec![format!("{}.{}", other.name, e.network), other.name.clone()];
                    keys.extend(e.aliases.iter().cloned());
                    keys.push(other.id[..12].to_string());
                    for k in keys.into_iter().map(|k| k.to_ascii_lowercase()) {
                        match names.iter_mut().find(|(n, _)| *n == k) {
                            Some((_, ips)) if !ips.contains(&ip) => ips.push(ip),
                            Some(_) => {}
                            None => names.push((k, vec![ip])),
                        }
                    }
                }
            }
            // Rewritten on every start and exit in the namespace: atomic, not fsynced
            // (the next change or start writes it again).
            let path = self.root.join("containers").join(&c.id).join("dns.json");
            if let Err(e) = crate::dns::write_names_file(&path, &names, &crate::etc_files::upstream(&c.host_config)) {
                tracing::warn!(container = %c.id, "write the DNS names: {e}");
            }
        }
    }
}

/// The bridge driver's options (`docker network create -o`) that change what a
/// network does: each is refused unless it has Docker's default value, as Berth
/// applies none of them. Other keys Docker keeps and ignores, and so does Berth.
fn check_bridge_options(options: &BTreeMap<String, String>) -> Result<()> {
    const DEFAULTS: &[(&str, &[&str])] = &[
        ("com.docker.network.bridge.name", &[]),
        ("com.docker.network.bridge.enable_ip_masquerade", &["true"]),
        ("com.docker.network.bridge.enable_icc", &["true"]),
        ("com.docker.network.bridge.host_binding_ipv4", &["0.0.0.0", ""]),
        ("com.docker.network.bridge.inhibit_ipv4", &["false"]),
        ("com.docker.network.bridge.gateway_mode_ipv4", &["nat", ""]),
        ("com.docker.network.bridge.gateway_mode_ipv6", &["nat", ""]),
        ("com.docker.network.bridge.trusted_host_interfaces", &[""]),
        ("com.docker.network.driver.mtu", &["1500", "0", ""]),
        ("com.docker.network.container_iface_prefix", &["eth", ""]),
        ("com.docker.network.enable_ipv6", &["false"]),
    ];
    for (key, value) in options {
        if let Some((_, ok)) = DEFAULTS.iter().find(|(k, _)| k == key) {
            if !ok.contains(&value.as_str()) {
                return Err(Error::InvalidArgument(format!("network option {key}={value} is not supported by Berth")));
            }
        }
    }
    Ok(())
}

/// The host-side veth name of an endpoint: unique per container and network.
fn host_name(c: &Container, ep: &Endpoint) -> String {
    format!("vb{}{}", &c.id[..6], &ep.network_id[..5])
}
