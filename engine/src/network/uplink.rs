//! The way out of a network home: a veth pair from the host into the home, a default
//! route through it, and NAT on both sides, so containers reach the host's networks
//! the way Docker's do (masqueraded), while networks stay apart inside the home.
//! A lab session's network has no uplink: it stays offline on purpose.
//!
//! Addresses and routes go over netlink; the NAT and forwarding rules through the
//! `iptables` crate (netfilter has no kept netlink crate for them here).

use std::net::Ipv4Addr;
use std::path::Path;

use futures_util::TryStreamExt;
use rtnetlink::{LinkUnspec, LinkVeth, RouteMessageBuilder};

use super::link::{in_netns, index_of};
use crate::error::{Error, Result};

/// The uplinks' addresses: one /30 per network home, picked by hashing its path.
const POOL: &str = "10.199.0.0/16";
/// The home's end of the uplink.
const HOME_END: &str = "uplink";

fn err(what: impl std::fmt::Display) -> Error {
    Error::Runtime(format!("network uplink: {what}"))
}

/// (host-side name, host address, home address) for a home: the same in every run of
/// any build (a SHA-256 of its path), so a restarted server finds its uplink again.
fn plan(home: &Path) -> (String, Ipv4Addr, Ipv4Addr) {
    use sha2::{Digest, Sha256};
    use std::os::unix::ffi::OsStrExt;
    let d = Sha256::digest(home.as_os_str().as_bytes());
    let v = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
    let base = u32::from(Ipv4Addr::new(10, 199, 0, 0)) + (v % 16384) * 4;
    (format!("bu{v:08x}"), Ipv4Addr::from(base + 1), Ipv4Addr::from(base + 2))
}

fn iptables() -> Result<iptables::IPTables> {
    iptables::new(false).map_err(|e| err(format!("iptables: {e} (install the iptables package)")))
}

/// Adds a rule unless it is there (appended, or at the top with `first`).
fn rule_at(ipt: &iptables::IPTables, table: &str, chain: &str, spec: &str, first: bool) -> Result<()> {
    if ipt.exists(table, chain, spec).map_err(|e| err(format!("iptables -t {table} -C {chain} {spec}: {e}")))? {
        return Ok(());
    }
    let r = if first { ipt.insert(table, chain, spec, 1) } else { ipt.append(table, chain, spec) };
    r.map_err(|e| err(format!("iptables -t {table} -A {chain} {spec}: {e}")))
}

fn rule(ipt: &iptables::IPTables, table: &str, chain: &str, spec: &str) -> Result<()> {
    rule_at(ipt, table, chain, spec, false)
}

/// Gives `home` a way out through the host, unless it has one. Idempotent.
pub fn ensure(home: &Path) -> Result<()> {
    let (host_name, host_ip, home_ip) = plan(home);
    let target = std::fs::File::open(home).map_err(|e| err(format!("open {}: {e}", home.display())))?;
    // The host side (the engine's own network namespace).
    let exists = {
        let (host_name, target) = (host_name.clone(), target.try_clone().map_err(err)?);
        in_netns(Path::new("/proc/self/ns/net"), move |h| async move {
            use std::os::fd::AsRawFd;
            // Both ends live as long as the home does: one found is a whole uplink.
            if index_of(&h, &host_name).await?.is_some() {
                return Ok(true);
            }
            let peer = format!("{host_name}p");
            h.link().add(LinkVeth::new(&host_name, &peer).build()).execute().await?;
            let i = index_of(&h, &host_name).await?.unwrap_or(0);
            h.address().add(i, host_ip.into(), 30).execute().await?;
            h.link().set(LinkUnspec::new_with_index(i).up().build()).execute().await?;
            let p = index_of(&h, &peer).await?.unwrap_or(0);
            h.link().set(LinkUnspec::new_with_index(p).setns_by_fd(target.as_raw_fd()).build()).execute().await?;
            Ok(false)
        })?
    };
    if !exists {
        let peer = format!("{host_name}p");
        in_netns(home, move |h| async move {
            let i = index_of(&h, &peer).await?.unwrap_or(0);
            h.link().set(LinkUnspec::new_with_index(i).name(HOME_END.to_string()).build()).execute().await?;
            h.address().add(i, home_ip.into(), 30).execute().await?;
            h.link().set(LinkUnspec::new_with_index(i).up().build()).execute().await?;
            let mut routes = h.route().get(RouteMessageBuilder::<Ipv4Addr>::new().build()).execute();
            let mut has_default = false;
            while let Some(r) = routes.try_next().await? {
                has_default |= r.header.destination_prefix_length == 0;
            }
            if !has_default {
                h.route().add(RouteMessageBuilder::<Ipv4Addr>::new().gateway(host_ip).output_interface(i).build()).execute().await?;
            }
            Ok(())
        })?;
    }
    // Inside the home: route out, never between bridges; the way out is masqueraded
    // to the uplink's address, so the host sees one peer per home.
    let home_file = std::fs::File::open(home).map_err(|e| err(format!("open {}: {e}", home.display())))?;
    std::thread::spawn(move || -> Result<()> {
        nix::sched::setns(&home_file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| err(format!("enter the home: {e}")))?;
        let ipt = iptables()?;
        // Within one bridge frames are switched, not routed; with br_netfilter loaded
        // they still pass FORWARD, and must not meet its DROP.
        rule(&ipt, "filter", "FORWARD", "-m physdev --physdev-is-bridged -j ACCEPT")?;
        rule(&ipt, "filter", "FORWARD", &format!("-i {HOME_END} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT"))?;
        rule(&ipt, "filter", "FORWARD", &format!("! -i {HOME_END} -o {HOME_END} -j ACCEPT"))?;
        ipt.set_policy("filter", "FORWARD", "DROP").map_err(|e| err(format!("iptables -P FORWARD DROP: {e}")))?;
        rule(&ipt, "nat", "POSTROUTING", &format!("-o {HOME_END} -j MASQUERADE"))?;
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").map_err(|e| err(format!("forwarding in the home: {e}")))
    })
    .join()
    .map_err(|_| err("thread panicked"))??;
    // On the host: forward the homes' traffic out, masqueraded as the host.
    let ipt = iptables()?;
    rule(&ipt, "nat", "POSTROUTING", &format!("-s {POOL} ! -d {POOL} -j MASQUERADE"))?;
    // First in FORWARD: a host whose policy drops (dockerd sets that) still lets them out.
    rule_at(&ipt, "filter", "FORWARD", "-i bu+ -j ACCEPT", true)?;
    rule_at(&ipt, "filter", "FORWARD", "-o bu+ -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT", true)?;
    if std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").map(|s| s.trim() != "1").unwrap_or(true) {
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").map_err(|e| err(format!("turn on forwarding on the host: {e}")))?;
    }
    Ok(())
}
