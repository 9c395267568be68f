//! Look-ups in the kernel's route and neighbour tables over rtnetlink (`RTM_GETROUTE`,
//! `RTM_GETNEIGH`): where an address is reached, and the MAC address known for it. Shared by the
//! next hops of the AF_XDP path and by finding a pod's veth from its IP, which ask the same
//! questions of the same tables.
use std::net::IpAddr;

use futures::TryStreamExt as _;
use rtnetlink::{
    Handle,
    packet_route::{
        AddressFamily,
        neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState},
        route::{RouteAddress, RouteAttribute, RouteMessage},
    },
};

/// `ip route get IP`: the route the kernel would take to `ip`, or `None` when it has none.
pub async fn route_to(handle: &Handle, ip: IpAddr) -> Option<RouteMessage> {
    let mut message = RouteMessage::default();
    message.header.address_family = family(ip);
    message.header.destination_prefix_length = if ip.is_ipv4() { 32 } else { 128 };
    message
        .attributes
        .push(RouteAttribute::Destination(RouteAddress::from(ip)));
    handle
        .route()
        .get(message)
        .execute()
        .try_next()
        .await
        .ok()
        .flatten()
}

/// The outgoing interface a route names.
pub fn oif(route: &RouteMessage) -> Option<u32> {
    route.attributes.iter().find_map(|a| match a {
        RouteAttribute::Oif(index) => Some(*index),
        _ => None,
    })
}

/// The neighbour entry of `ip` on `ifindex`, if the table holds one.
pub async fn neighbour(handle: &Handle, ifindex: u32, ip: IpAddr) -> Option<NeighbourMessage> {
    let mut entries = handle
        .neighbours()
        .get()
        .set_address_family(family(ip))
        .execute();
    while let Ok(Some(entry)) = entries.try_next().await {
        if entry.header.ifindex == ifindex
            && entry.attributes.iter().any(
                |a| matches!(a, NeighbourAttribute::Destination(d) if neighbour_ip(d) == Some(ip)),
            )
        {
            return Some(entry);
        }
    }
    None
}

/// Whether an entry in `state` holds a MAC address its owner answered with (or an operator set):
/// the states the kernel sends to, `NOARP` (no resolution at all) aside.
pub fn answered(state: NeighbourState) -> bool {
    matches!(
        state,
        NeighbourState::Reachable
            | NeighbourState::Stale
            | NeighbourState::Delay
            | NeighbourState::Probe
            | NeighbourState::Permanent
    )
}

/// The entry's Ethernet address, whatever its state.
pub fn lladdr(entry: &NeighbourMessage) -> Option<[u8; 6]> {
    entry.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::LinkLayerAddress(mac) => <[u8; 6]>::try_from(mac.as_slice()).ok(),
        _ => None,
    })
}

pub fn family(ip: IpAddr) -> AddressFamily {
    if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

fn neighbour_ip(address: &NeighbourAddress) -> Option<IpAddr> {
    match address {
        NeighbourAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
        NeighbourAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn loopback_route_leaves_through_lo() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        let route = runtime.block_on(async {
            let (connection, handle, _) = rtnetlink::new_connection().unwrap();
            let task = tokio::spawn(connection);
            let route = route_to(&handle, IpAddr::V4(Ipv4Addr::LOCALHOST)).await;
            task.abort();
            route
        });
        let lo = ifindex_of("lo");
        assert_eq!(route.as_ref().and_then(oif), Some(lo));
    }

    fn ifindex_of(name: &str) -> u32 {
        let name = std::ffi::CString::new(name).unwrap();
        // SAFETY: `name` is a NUL-terminated string that outlives the call.
        unsafe { libc::if_nametoindex(name.as_ptr()) }
    }

    #[test]
    fn only_answered_entries_name_a_mac_to_trust() {
        assert!(answered(NeighbourState::Stale));
        assert!(answered(NeighbourState::Permanent));
        for state in [
            NeighbourState::Incomplete,
            NeighbourState::Failed,
            NeighbourState::Noarp,
            NeighbourState::None,
        ] {
            assert!(!answered(state), "{state:?}");
        }
        let mut entry = NeighbourMessage::default();
        entry.attributes = vec![NeighbourAttribute::LinkLayerAddress(vec![2, 0, 0, 0, 0, 7])];
        assert_eq!(lladdr(&entry), Some([2, 0, 0, 0, 0, 7]));
        entry.attributes = vec![NeighbourAttribute::LinkLayerAddress(vec![0; 16])];
        assert_eq!(lladdr(&entry), None, "not an Ethernet address");
    }
}
