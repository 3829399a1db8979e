//! The kernel side of a network: a bridge in the namespace's network home, and a veth
//! pair per attached container (one end on the bridge, the other as `ethN` in the
//! container's network namespace). Done over netlink (rtnetlink); each step runs on a
//! short-lived thread inside the right network namespace.

use std::future::Future;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use futures_util::TryStreamExt;
use rtnetlink::packet_route::link::{InfoData, InfoVeth};
use rtnetlink::{Handle, LinkBridge, LinkUnspec, LinkVeth, RouteMessageBuilder};

use crate::error::{Error, Result};

fn err(what: impl std::fmt::Display) -> Error {
    Error::Runtime(format!("network: {what}"))
}

/// Runs `f` with a netlink handle inside the network namespace at `netns`.
pub(super) fn in_netns<T, F, Fut>(netns: &Path, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(Handle) -> Fut + Send + 'static,
    Fut: Future<Output = std::result::Result<T, rtnetlink::Error>>,
{
    in_each_netns([netns], |[h]| f(h))
}

/// Runs `f` with netlink handles inside two network namespaces (`first`'s, then
/// `second`'s): a container's start plugs it in with one thread instead of one per
/// namespace (each a thread, a runtime and a socket to make on the start's way, on two
/// cores busy with the start itself).
fn in_netns_pair<T, F, Fut>(first: &Path, second: &Path, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(Handle, Handle) -> Fut + Send + 'static,
    Fut: Future<Output = std::result::Result<T, rtnetlink::Error>>,
{
    in_each_netns([first, second], |[a, b]| f(a, b))
}

/// Runs `f` on a short-lived thread of its own with one netlink handle per namespace
/// in `netns`, in that order. A netlink socket stays in the namespace it was made in,
/// so the thread enters each in turn and makes its socket there.
fn in_each_netns<const N: usize, T, F, Fut>(netns: [&Path; N], f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce([Handle; N]) -> Fut + Send + 'static,
    Fut: Future<Output = std::result::Result<T, rtnetlink::Error>>,
{
    let files = netns.iter().map(|p| std::fs::File::open(p).map_err(|e| err(format!("open {}: {e}", p.display())))).collect::<Result<Vec<_>>>()?;
    std::thread::spawn(move || -> Result<T> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_io().build().map_err(err)?;
        rt.block_on(async move {
            let mut handles = Vec::with_capacity(N);
            for ns in &files {
                nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| err(format!("enter network namespace: {e}")))?;
                let (conn, handle, _) = rtnetlink::new_connection().map_err(err)?;
                tokio::spawn(conn);
                handles.push(handle);
            }
            let handles: [Handle; N] = handles.try_into().map_err(|_| err("one netlink handle per namespace"))?;
            f(handles).await.map_err(err)
        })
    })
    .join()
    .map_err(|_| err("netlink thread panicked"))?
}

pub(super) async fn index_of(h: &Handle, name: &str) -> std::result::Result<Option<u32>, rtnetlink::Error> {
    let mut links = h.link().get().match_name(name.to_string()).execute();
    match links.try_next().await {
        Ok(Some(l)) => Ok(Some(l.header.index)),
        Ok(None) => Ok(None),
        // ENODEV: no such link.
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
        Err(e) => Err(e),
    }
}

/// Deletes a link by its index; one gone meanwhile is no error. A container's old veth
/// pair goes by itself when its network namespace is freed, which the kernel does a
/// moment after the container's last process ended: a restart that found the old end
/// by its name may see it vanish before its delete.
async fn delete_link(h: &Handle, index: u32) -> std::result::Result<(), rtnetlink::Error> {
    match h.link().del(index).execute().await {
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(()),
        r => r,
    }
}

/// Changes to network homes, one at a time: containers starting at once on a new
/// network (Compose starts a project's together) would both add its bridge or address
/// ("File exists"), and a link dump taken while another start adds links may miss one
/// ("No such device").
fn home_changes() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Makes sure bridge `name` exists (in the namespace of `h`), holds `gateway/prefix`
/// and is up; returns its index. Callers hold [`home_changes`].
async fn bridge_up(h: &Handle, name: &str, gateway: Ipv4Addr, prefix: u8) -> std::result::Result<u32, rtnetlink::Error> {
    // Forwarding between the bridges of a home is refused by its FORWARD rules
    // (see `uplink`), and a home without an uplink forwards nothing at all.
    let index = match index_of(h, name).await? {
        Some(i) => i,
        None => {
            h.link().add(LinkBridge::new(name).build()).execute().await?;
            index_of(h, name).await?.ok_or_else(|| rtnetlink::Error::NamespaceError(format!("bridge {name} was made but is not there")))?
        }
    };
    let mut addrs = h.address().get().set_link_index_filter(index).execute();
    let mut has = false;
    while let Some(a) = addrs.try_next().await? {
        use rtnetlink::packet_route::address::AddressAttribute;
        has |= a.attributes.iter().any(|at| matches!(at, AddressAttribute::Address(std::net::IpAddr::V4(ip)) if *ip == gateway));
    }
    if !has {
        h.address().add(index, gateway.into(), prefix).execute().await?;
    }
    h.link().set(LinkUnspec::new_with_index(index).up().build()).execute().await?;
    Ok(index)
}

/// Removes bridge `name` from `home` (gone already is fine).
pub fn remove_bridge(home: &Path, name: &str) -> Result<()> {
    let name = name.to_string();
    in_netns(home, move |h| async move {
        if let Some(i) = index_of(&h, &name).await? {
            delete_link(&h, i).await?;
        }
        Ok(())
    })
}

/// What one container's interface on one network looks like.
#[derive(Debug, Clone)]
pub struct Interface {
    /// The veth end left on the bridge (host side), unique in the network home.
    pub host_name: String,
    /// `eth0`, `eth1`, ... inside the container.
    pub name: String,
    pub bridge: String,
    /// The bridge's own address (the network's gateway), made sure of on each plug.
    pub bridge_ip: Ipv4Addr,
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub mac: [u8; 6],
    /// Set the default route through this gateway.
    pub gateway: Option<Ipv4Addr>,
}

/// Plugs a container (its network namespace at `container_netns`) into a bridge, made
/// (or made sure of) first.
///
/// The pair is made with its container end already in the container's namespace,
/// named and with its MAC address (one request, as CNI's bridge plugin does): moving a device
/// between namespaces afterwards waits for an RCU grace period, about 10 ms of every
/// start on this kernel.
#[allow(clippy::await_holding_lock)] // see the lock's comment below
pub fn attach(home: &Path, container_netns: &Path, i: &Interface) -> Result<()> {
    let target = std::fs::File::open(container_netns).map_err(|e| err(format!("open {}: {e}", container_netns.display())))?;
    let i = i.clone();
    in_netns_pair(home, container_netns, move |home, inside| async move {
        use std::os::fd::AsRawFd;
        {
            // The network home is shared by the namespace's containers; the
            // container's own namespace below is not. Held across the awaits on
            // purpose: they are this thread's own netlink round trips (a runtime of its
            // own), and the other starts wait for the home as they did before.
            let _one = home_changes();
            let bridge_index = bridge_up(&home, &i.bridge, i.bridge_ip, i.prefix).await?;
            if let Some(old) = index_of(&home, &i.host_name).await? {
                delete_link(&home, old).await?;
            }
            let peer = LinkUnspec::new_with_name(&i.name).address(i.mac.to_vec()).setns_by_fd(target.as_raw_fd()).build();
            let pair = LinkVeth::new(&i.host_name, &i.name).set_info_data(InfoData::Veth(InfoVeth::Peer(peer))).controller(bridge_index).up().build();
            home.link().add(pair).execute().await?;
        }
        let Some(index) = index_of(&inside, &i.name).await? else {
            return Err(rtnetlink::Error::NamespaceError(format!("{} did not arrive in the container's namespace", i.name)));
        };
        // Up only now: a veth end cannot open before its pair is complete (ENOTCONN),
        // and the route needs it up.
        inside.link().set(LinkUnspec::new_with_index(index).up().build()).execute().await?;
        inside.address().add(index, i.ip.into(), i.prefix).execute().await?;
        if let Some(gw) = i.gateway {
            let route = RouteMessageBuilder::<Ipv4Addr>::new().gateway(gw).output_interface(index).build();
            inside.route().add(route).execute().await?;
        }
        Ok(())
    })
}

/// Unplugs an interface by its host-side name (deleting one end deletes the pair).
pub fn detach(home: &Path, host_name: &str) -> Result<()> {
    let host_name = host_name.to_string();
    in_netns(home, move |h| async move {
        if let Some(i) = index_of(&h, &host_name).await? {
            delete_link(&h, i).await?;
        }
        Ok(())
    })
}

/// The network namespace file of a running process.
pub fn netns_of(pid: i32) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/ns/net"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a namespace holds: `(name, controller index, up)` of every link, its IPv4
    /// addresses and the gateways of its routes.
    struct Seen {
        links: Vec<(String, Option<u32>, bool)>,
        addrs: Vec<Ipv4Addr>,
        gateways: Vec<Ipv4Addr>,
    }

    fn links_in(netns: &Path) -> Seen {
        use rtnetlink::packet_route::address::AddressAttribute;
        use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags};
        use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};
        in_netns(netns, |h| async move {
            let mut links = Vec::new();
            let mut dump = h.link().get().execute();
            while let Some(l) = dump.try_next().await? {
                let name = l.attributes.iter().find_map(|a| if let LinkAttribute::IfName(n) = a { Some(n.clone()) } else { None }).unwrap_or_default();
                let controller = l.attributes.iter().find_map(|a| if let LinkAttribute::Controller(c) = a { Some(*c) } else { None });
                links.push((name, controller, l.header.flags.contains(LinkFlags::Up)));
            }
            let mut addrs = Vec::new();
            let mut dump = h.address().get().execute();
            while let Some(a) = dump.try_next().await? {
                addrs.extend(a.attributes.iter().filter_map(|at| if let AddressAttribute::Address(std::net::IpAddr::V4(ip)) = at { Some(*ip) } else { None }));
            }
            let mut gateways = Vec::new();
            let mut dump = h.route().get(RouteMessageBuilder::<Ipv4Addr>::new().build()).execute();
            while let Some(r) = dump.try_next().await? {
                gateways.extend(r.attributes.iter().filter_map(|at| if let RouteAttribute::Gateway(RouteAddress::Inet(ip)) = at { Some(*ip) } else { None }));
            }
            Ok(Seen { links, addrs, gateways })
        })
        .unwrap()
    }

    #[test]
    fn a_container_is_plugged_in_named_addressed_and_routed() {
        /// Released even when the test fails, so no namespace outlives it.
        struct Kept(PathBuf);
        impl Drop for Kept {
            fn drop(&mut self) {
                let _ = crate::netns::remove(&self.0);
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let (home, container) = (Kept(dir.path().join("home")), Kept(dir.path().join("container")));
        let (home, container) = (&home.0, &container.0);
        crate::netns::ensure(home).unwrap();
        crate::netns::ensure(container).unwrap();
        let gw = Ipv4Addr::new(10, 123, 0, 1);
        let i = Interface {
            host_name: "vethtest0".into(),
            name: "eth0".into(),
            bridge: "br-test".into(),
            bridge_ip: gw,
            ip: Ipv4Addr::new(10, 123, 0, 2),
            prefix: 24,
            mac: [0x02, 0x42, 10, 123, 0, 2],
            gateway: Some(gw),
        };
        // Twice: a stale pair of the same name (a start that failed half-way) goes first.
        // The first makes the bridge too, the second finds it.
        for _ in 0..2 {
            if let Err(e) = attach(home, container, &i) {
                panic!("attach: {e}");
            }
        }
        let Seen { links: inside, addrs, gateways } = links_in(container);
        assert!(inside.iter().any(|(n, _, up)| n == "eth0" && *up), "{inside:?}");
        assert_eq!(addrs, vec![Ipv4Addr::new(127, 0, 0, 1), i.ip]);
        assert_eq!(gateways, vec![gw]);
        let Seen { links: outside, addrs: home_addrs, .. } = links_in(home);
        assert!(home_addrs.contains(&gw), "the bridge has no gateway address: {home_addrs:?}");
        let bridge = in_netns(home, |h| async move { index_of(&h, "br-test").await }).unwrap();
        assert!(outside.iter().any(|(n, c, up)| n == "vethtest0" && *c == bridge && *up), "{outside:?}");
        assert!(!outside.iter().any(|(n, _, _)| n == "eth0"), "{outside:?}");
        // The container can reach its gateway over the pair.
        let reached = crate::netns::run_in(container, move || std::net::UdpSocket::bind("0.0.0.0:0").and_then(|s| s.connect((gw, 9)))).unwrap();
        assert!(reached.is_ok(), "{reached:?}");
        detach(home, "vethtest0").unwrap();
        assert!(!links_in(container).links.iter().any(|(n, _, _)| n == "eth0"));
    }
}
