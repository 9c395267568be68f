//! Where a copy to a remote leaves, as the kernel's tables say: the egress device, the source
//! address, the next hop's MAC address and the MTU (rtnetlink `RTM_GETROUTE`, `RTM_GETLINK`,
//! `RTM_GETNEIGH`). AF_XDP transmit bypasses the routing and neighbour code, so the agent writes
//! the Ethernet header itself and follows every change of route, neighbour, address and link
//! through netlink events; a next hop the kernel has not resolved yet gets a managed neighbour
//! entry (`NTF_EXT_MANAGED`, Linux 5.16+), which the kernel then keeps resolved.
use std::{
    net::IpAddr,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use futures::{StreamExt as _, TryStreamExt as _, channel::mpsc::UnboundedReceiver};
use rtnetlink::{
    Handle, MulticastGroup,
    packet_core::NetlinkMessage,
    packet_route::{
        RouteNetlinkMessage,
        link::{LinkAttribute, LinkFlags},
        neighbour::{NeighbourAttribute, NeighbourExtFlags, NeighbourMessage, NeighbourState},
        route::{RouteAddress, RouteAttribute, RouteMetric, RouteType},
    },
    sys::SocketAddr,
};

use crate::kernel::route::{self, neighbour};

/// Ethernet header length: destination and source MAC, EtherType.
pub const ETH_LEN: usize = 14;

/// How a remote is reached from AF_XDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NextHop {
    /// The egress device.
    pub ifindex: u32,
    /// The Ethernet header of every packet: next hop's MAC, the device's, the EtherType.
    pub eth: [u8; ETH_LEN],
    /// The source address the kernel would pick.
    pub source: IpAddr,
    /// The MTU of the route (its PMTU metric) or else of the device.
    pub mtu: u32,
}

/// What the data path is to do for one remote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hop {
    /// Send from AF_XDP on `NextHop::ifindex`.
    Xdp(NextHop),
    /// Send through the raw socket, for this reason (a metric label and a log word).
    Socket(SocketReason),
}

/// Why a remote is served by the raw socket rather than AF_XDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SocketReason {
    /// `--send-path socket`.
    Configured,
    /// No route (the kernel's socket then reports the error per copy).
    NoRoute,
    /// A local, broadcast or other route AF_XDP cannot serve (e.g. the remote is on this host).
    NotUnicast,
    /// The egress device has no Ethernet address (a tunnel or L3 device).
    NotEthernet,
    /// The egress device is down.
    LinkDown,
    /// The next hop's MAC address is not known yet.
    Unresolved,
    /// The egress device refused an AF_XDP socket.
    BindFailed,
}

impl SocketReason {
    pub fn label(self) -> &'static str {
        match self {
            Self::Configured => "configured",
            Self::NoRoute => "no_route",
            Self::NotUnicast => "not_unicast",
            Self::NotEthernet => "not_ethernet",
            Self::LinkDown => "link_down",
            Self::Unresolved => "unresolved",
            Self::BindFailed => "bind_failed",
        }
    }
}

/// The next hop of every remote (in `--remote` order), written by the control plane and read
/// by the data path: one atomic load per batch, a lock only when `version` moved.
#[derive(Default)]
pub struct NextHopTable {
    version: AtomicU64,
    hops: Mutex<Vec<Hop>>,
}

impl NextHopTable {
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Copies the hops into `into`; returns the version copied.
    pub fn snapshot(&self, into: &mut Vec<Hop>) -> u64 {
        let hops = self.hops.lock().unwrap_or_else(PoisonError::into_inner);
        into.clone_from(&hops);
        self.version.load(Ordering::Acquire)
    }

    /// Publishes `hops` if they differ from the current ones; returns whether they did.
    pub fn publish(&self, hops: &[Hop]) -> bool {
        let mut current = self.hops.lock().unwrap_or_else(PoisonError::into_inner);
        if current.as_slice() == hops {
            return false;
        }
        current.clear();
        current.extend_from_slice(hops);
        self.version.fetch_add(1, Ordering::Release);
        true
    }
}

/// Looks next hops up and keeps the table current.
pub struct Follower {
    handle: Handle,
    remotes: Vec<IpAddr>,
    table: Arc<NextHopTable>,
    events: UnboundedReceiver<(NetlinkMessage<RouteNetlinkMessage>, SocketAddr)>,
    _connection: tokio::task::JoinHandle<()>,
    /// Managed neighbour entries the agent made, removed again on [`Follower::cleanup`].
    made: Vec<(u32, IpAddr)>,
}

/// How often the table is refreshed without an event (a safety net: events can be lost when
/// the netlink socket's buffer overflows).
const REFRESH: Duration = Duration::from_secs(1);
/// How long a burst of events is let settle before one look-up serves them all.
const SETTLE: Duration = Duration::from_millis(5);

impl Follower {
    /// Subscribes to the events first, so that no change after the first look-up is missed.
    pub fn new(handle: Handle, remotes: Vec<IpAddr>) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let (connection, _, events) = rtnetlink::new_multicast_connection(&[
            MulticastGroup::Link,
            MulticastGroup::Neigh,
            MulticastGroup::Ipv4Route,
            MulticastGroup::Ipv6Route,
            MulticastGroup::Ipv4Ifaddr,
            MulticastGroup::Ipv6Ifaddr,
        ])
        .context("subscribing to netlink route, neighbour and link events")?;
        Ok(Self {
            handle,
            remotes,
            table: Arc::default(),
            events,
            _connection: tokio::spawn(connection),
            made: Vec::new(),
        })
    }

    pub fn table(&self) -> Arc<NextHopTable> {
        Arc::clone(&self.table)
    }

    /// Looks every remote up once and publishes the result.
    pub async fn refresh(&mut self) {
        let mut hops = Vec::with_capacity(self.remotes.len());
        for index in 0..self.remotes.len() {
            let remote = self.remotes.get(index).copied();
            let hop = match remote {
                Some(remote) => self.look_up(remote).await,
                None => Hop::Socket(SocketReason::NoRoute),
            };
            hops.push(hop);
        }
        self.table.publish(&hops);
    }

    /// Follows changes until the event subscription ends (never, in practice).
    pub async fn follow(&mut self) {
        let mut tick = tokio::time::interval(REFRESH);
        loop {
            tokio::select! {
                event = self.events.next() => {
                    if event.is_none() {
                        return;
                    }
                    tokio::time::sleep(SETTLE).await;
                    // Whatever else arrived meanwhile is served by the same look-up.
                    while self.events.try_recv().is_ok() {}
                }
                _ = tick.tick() => {}
            }
            self.refresh().await;
        }
    }

    /// Follows changes until `stop` fires, then removes what it added to the host.
    pub async fn run(mut self, stop: tokio::sync::oneshot::Receiver<()>) {
        tokio::select! {
            () = self.follow() => {}
            _ = stop => {}
        }
        self.cleanup().await;
    }

    /// Removes the managed neighbour entries the agent made.
    pub async fn cleanup(&mut self) {
        for (ifindex, ip) in std::mem::take(&mut self.made) {
            if let Some(entry) = neighbour(&self.handle, ifindex, ip).await {
                let _ = self.handle.neighbours().del(entry).execute().await;
            }
        }
    }

    async fn look_up(&mut self, remote: IpAddr) -> Hop {
        let Some(route) = route::route_to(&self.handle, remote).await else {
            return Hop::Socket(SocketReason::NoRoute);
        };
        if route.header.kind != RouteType::Unicast {
            return Hop::Socket(SocketReason::NotUnicast);
        }
        let (mut oif, mut gateway, mut source, mut route_mtu) = (None, None, None, None);
        for attribute in &route.attributes {
            match attribute {
                RouteAttribute::Oif(index) => oif = Some(*index),
                RouteAttribute::Gateway(address) => gateway = ip_of(address),
                RouteAttribute::PrefSource(address) => source = ip_of(address),
                RouteAttribute::Metrics(metrics) => {
                    for metric in metrics {
                        if let RouteMetric::Mtu(mtu) = metric {
                            route_mtu = Some(*mtu);
                        }
                    }
                }
                _ => {}
            }
        }
        let (Some(ifindex), Some(source)) = (oif, source.or_else(|| local_source(remote))) else {
            return Hop::Socket(SocketReason::NoRoute);
        };
        let Some(link) = self.link(ifindex).await else {
            return Hop::Socket(SocketReason::NoRoute);
        };
        if !link.up {
            return Hop::Socket(SocketReason::LinkDown);
        }
        let Some(own_mac) = link.mac else {
            return Hop::Socket(SocketReason::NotEthernet);
        };
        let next = gateway.unwrap_or(remote);
        let Some(next_mac) = self.resolved_mac(ifindex, next).await else {
            return Hop::Socket(SocketReason::Unresolved);
        };
        let ethertype: u16 = if remote.is_ipv4() { 0x0800 } else { 0x86dd };
        let mut eth = [0; ETH_LEN];
        eth[..6].copy_from_slice(&next_mac);
        eth[6..12].copy_from_slice(&own_mac);
        eth[12..].copy_from_slice(&ethertype.to_be_bytes());
        Hop::Xdp(NextHop {
            ifindex,
            eth,
            source,
            mtu: route_mtu
                .filter(|&m| m > 0)
                .map_or(link.mtu, |m| m.min(link.mtu)),
        })
    }

    async fn link(&self, ifindex: u32) -> Option<Link> {
        let mut replies = self.handle.link().get().match_index(ifindex).execute();
        let message = replies.try_next().await.ok().flatten()?;
        let mut link = Link {
            up: message.header.flags.contains(LinkFlags::Up)
                && message.header.flags.contains(LinkFlags::LowerUp),
            mac: None,
            mtu: 1500,
        };
        for attribute in message.attributes {
            match attribute {
                LinkAttribute::Address(address) => {
                    link.mac = <[u8; 6]>::try_from(address.as_slice())
                        .ok()
                        .filter(|mac| mac != &[0; 6]);
                }
                LinkAttribute::Mtu(mtu) => link.mtu = mtu,
                _ => {}
            }
        }
        Some(link)
    }

    /// The MAC address of `ip` on `ifindex`, making a managed neighbour entry when there is
    /// none (the kernel resolves it; the event that follows brings the address).
    async fn resolved_mac(&mut self, ifindex: u32, ip: IpAddr) -> Option<[u8; 6]> {
        let entry = neighbour(&self.handle, ifindex, ip).await;
        if let Some(entry) = &entry
            && let Some(mac) = usable_mac(entry)
        {
            return Some(mac);
        }
        let managed = entry
            .as_ref()
            .is_some_and(|e| e.attributes.iter().any(is_managed));
        if !managed {
            let mut request = self
                .handle
                .neighbours()
                .add(ifindex, ip)
                .state(NeighbourState::None)
                .replace();
            request
                .message_mut()
                .attributes
                .push(NeighbourAttribute::ExtFlags(NeighbourExtFlags::Managed));
            match request.execute().await {
                Ok(()) => {
                    if !self.made.contains(&(ifindex, ip)) {
                        self.made.push((ifindex, ip));
                    }
                }
                Err(err) => tracing::warn!(
                    "mirror: could not add a managed neighbour entry for {ip} (ifindex {ifindex}): {err}"
                ),
            }
        }
        None
    }
}

struct Link {
    up: bool,
    mac: Option<[u8; 6]>,
    mtu: u32,
}

fn ip_of(address: &RouteAddress) -> Option<IpAddr> {
    match address {
        RouteAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
        RouteAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
        _ => None,
    }
}

fn is_managed(attribute: &NeighbourAttribute) -> bool {
    matches!(attribute, NeighbourAttribute::ExtFlags(flags) if flags.contains(NeighbourExtFlags::Managed))
}

/// The entry's MAC address if the kernel would send to it now (a `NOARP` entry too: its device
/// resolves nothing).
fn usable_mac(entry: &NeighbourMessage) -> Option<[u8; 6]> {
    let state = entry.header.state;
    (route::answered(state) || state == NeighbourState::Noarp)
        .then(|| route::lladdr(entry))
        .flatten()
}

/// The source address for `remote` when the route names none (IPv6 routes often do not): what
/// a connected UDP socket is given.
fn local_source(remote: IpAddr) -> Option<IpAddr> {
    crate::remote::route_to(std::net::SocketAddr::new(remote, 9))
        .ok()
        .map(|route| route.source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_publishes_only_changes() {
        let table = NextHopTable::default();
        let hop = Hop::Socket(SocketReason::NoRoute);
        assert!(table.publish(&[hop]));
        let seen = table.version();
        assert!(!table.publish(&[hop]), "same hops, same version");
        assert_eq!(table.version(), seen);
        let mut copy = Vec::new();
        assert_eq!(table.snapshot(&mut copy), seen);
        assert_eq!(copy, [hop]);
        assert!(table.publish(&[Hop::Socket(SocketReason::LinkDown)]));
        assert_ne!(table.version(), seen);
    }
}
