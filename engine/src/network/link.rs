//! The kernel side of a network: a bridge in the namespace's network home, and a veth
//! pair per attached container (one end on the bridge, the other as `ethN` in the
//! container's network namespace). Done over netlink (rtnetlink); each step runs on a
//! short-lived thread inside the right network namespace.

use std::future::Future;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use futures_util::TryStreamExt;
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
    let file = std::fs::File::open(netns).map_err(|e| err(format!("open {}: {e}", netns.display())))?;
    std::thread::spawn(move || -> Result<T> {
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| err(format!("enter network namespace: {e}")))?;
        let rt = tokio::runtime::Builder::new_current_thread().enable_io().build().map_err(err)?;
        rt.block_on(async move {
            let (conn, handle, _) = rtnetlink::new_connection().map_err(err)?;
            tokio::spawn(conn);
            f(handle).await.map_err(err)
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

/// Changes to network homes, one at a time: containers starting at once on a new
/// network (Compose starts a project's together) would both add its bridge or address
/// ("File exists"), and a link dump taken while another start adds links may miss one
/// ("No such device").
fn home_changes() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Makes sure bridge `name` exists in `home`, holds `gateway/prefix` and is up.
pub fn ensure_bridge(home: &Path, name: &str, gateway: Ipv4Addr, prefix: u8) -> Result<()> {
    let _one = home_changes();
    let name = name.to_string();
    in_netns(home, move |h| async move {
        // Forwarding between the bridges of a home is refused by its FORWARD rules
        // (see `uplink`), and a home without an uplink forwards nothing at all.
        let index = match index_of(&h, &name).await? {
            Some(i) => i,
            None => {
                h.link().add(LinkBridge::new(&name).build()).execute().await?;
                index_of(&h, &name).await?.unwrap_or(0)
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
        Ok(())
    })
}

/// Removes bridge `name` from `home` (gone already is fine).
pub fn remove_bridge(home: &Path, name: &str) -> Result<()> {
    let name = name.to_string();
    in_netns(home, move |h| async move {
        if let Some(i) = index_of(&h, &name).await? {
            h.link().del(i).execute().await?;
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
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub mac: [u8; 6],
    /// Set the default route through this gateway.
    pub gateway: Option<Ipv4Addr>,
}

/// Plugs a container (its network namespace at `container_netns`) into a bridge.
pub fn attach(home: &Path, container_netns: &Path, i: &Interface) -> Result<()> {
    let peer = format!("{}p", &i.host_name[..i.host_name.len().min(14)]);
    let target = std::fs::File::open(container_netns).map_err(|e| err(format!("open {}: {e}", container_netns.display())))?;
    let _one = home_changes();
    {
        let (host_name, peer, bridge) = (i.host_name.clone(), peer.clone(), i.bridge.clone());
        in_netns(home, move |h| async move {
            use std::os::fd::AsRawFd;
            if let Some(old) = index_of(&h, &host_name).await? {
                h.link().del(old).execute().await?;
            }
            h.link().add(LinkVeth::new(&host_name, &peer).build()).execute().await?;
            let bridge_index = index_of(&h, &bridge).await?.unwrap_or(0);
            let host_index = index_of(&h, &host_name).await?.unwrap_or(0);
            h.link().set(LinkUnspec::new_with_index(host_index).controller(bridge_index).up().build()).execute().await?;
            let peer_index = index_of(&h, &peer).await?.unwrap_or(0);
            h.link().set(LinkUnspec::new_with_index(peer_index).setns_by_fd(target.as_raw_fd()).build()).execute().await?;
            Ok(())
        })?;
    }
    let i = i.clone();
    in_netns(container_netns, move |h| async move {
        let index = index_of(&h, &peer).await?.unwrap_or(0);
        h.link().set(LinkUnspec::new_with_index(index).name(i.name.clone()).address(i.mac.to_vec()).build()).execute().await?;
        h.address().add(index, i.ip.into(), i.prefix).execute().await?;
        h.link().set(LinkUnspec::new_with_index(index).up().build()).execute().await?;
        if let Some(gw) = i.gateway {
            let route = RouteMessageBuilder::<Ipv4Addr>::new().gateway(gw).output_interface(index).build();
            h.route().add(route).execute().await?;
        }
        Ok(())
    })
}

/// Unplugs an interface by its host-side name (deleting one end deletes the pair).
pub fn detach(home: &Path, host_name: &str) -> Result<()> {
    let host_name = host_name.to_string();
    in_netns(home, move |h| async move {
        if let Some(i) = index_of(&h, &host_name).await? {
            h.link().del(i).execute().await?;
        }
        Ok(())
    })
}

/// The network namespace file of a running process.
pub fn netns_of(pid: i32) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/ns/net"))
}
