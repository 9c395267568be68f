//! A pod's host-side veth from its IPs, looked up from the node's side only: no namespace is
//! entered, so neither `CAP_SYS_ADMIN` (setns) nor `CAP_SYS_PTRACE` (other users'
//! `/proc/PID/ns`) is needed, and `/proc` need not be the node's.
//!
//! - [`Method::Route`]: CNIs that route each pod through its own veth (Calico, Cilium in veth
//!   mode, the ptp plugin) have a host route to the pod's IP through that veth; the kernel's
//!   answer to `ip route get IP` names it.
//! - [`Method::Bridge`]: on bridge CNIs (flannel's `cni0`, the bridge plugin) the route leaves
//!   through the bridge. The bridge's neighbour entry for the IP gives the pod's MAC, and the
//!   bridge's forwarding database gives the port (the veth) that MAC was learnt on. When there
//!   is no usable entry, or its MAC is behind no port (the pod came back with a new veth and
//!   MAC), the kernel is asked to resolve the address (`NTF_USE`: one ARP request or neighbour
//!   solicitation from the bridge, as its own traffic to the pod would cause); the pod's answer
//!   fills in both tables. That needs `CAP_NET_ADMIN`, which the agent holds anyway.
//!
//! Either way the veth must be one whose peer lives in another namespace, as a pod's does.
use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

use futures::TryStreamExt as _;
use rtnetlink::{
    Handle,
    packet_route::{
        AddressFamily,
        link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage},
        neighbour::{NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState},
        route::{RouteAttribute, RouteType},
    },
};

use super::{Found, Resolution, Wanted, probe::LinkFacts};
use crate::kernel::route::{self, lladdr, neighbour};

/// How long a probe may take to bring the pod's answer: the request leaves at once, and a pod
/// on the bridge answers in well under a millisecond. A pod not up yet is asked again by the
/// next scan (the follower's back-off), not by the kernel's own resends a second apart.
const PROBE_WAIT: Duration = Duration::from_millis(250);
/// How often the tables are read again while waiting for an answer.
const PROBE_POLL: Duration = Duration::from_millis(10);

/// How a pod's veth was found: the `method` label of `mirror_pod_resolved_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// The route to the pod's IP leaves through its veth.
    Route,
    /// The pod's IP is on a bridge: neighbour entry, then forwarding database.
    Bridge,
    /// Its network namespace was entered (`--pod NAME` without the Kubernetes API).
    Namespace,
}

impl Method {
    pub const ALL: [Self; 3] = [Self::Route, Self::Bridge, Self::Namespace];

    pub fn label(self) -> &'static str {
        match self {
            Self::Route => "route",
            Self::Bridge => "bridge",
            Self::Namespace => "namespace",
        }
    }

    /// How the log says it.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Route => "by the route to its IP",
            Self::Bridge => "by its IP's neighbour entry and the bridge's forwarding database",
            Self::Namespace => "by entering its network namespace",
        }
    }
}

/// A link of the node, with what matters here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeLink {
    pub facts: LinkFacts,
    pub bridge: bool,
}

impl NodeLink {
    pub fn of(link: &LinkMessage) -> Self {
        let bridge = link.attributes.iter().any(|a| {
            matches!(a, LinkAttribute::LinkInfo(infos)
                if infos.iter().any(|i| matches!(i, LinkInfo::Kind(InfoKind::Bridge))))
        });
        Self {
            facts: LinkFacts::of(link),
            bridge,
        }
    }

    /// A veth whose other end is in another namespace: what a pod's host side is.
    fn pod_side(&self) -> bool {
        self.facts.veth && self.facts.peer_nsid.is_some()
    }
}

/// A pod's veth as found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Located {
    pub ifindex: u32,
    pub iface: String,
    pub method: Method,
    /// Said in the log when the bridge's tables had to be filled in first.
    pub probed: Option<String>,
}

/// Looks for the wanted pods whose IPs are known (`--pod-ip`, the API's): what is found, why the
/// others are not, and the node's links. Runs on the calling thread, in its namespace.
pub fn resolve(wanted: &[(usize, Wanted)]) -> anyhow::Result<Resolution> {
    use anyhow::Context as _;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .context("starting the pod lookup's runtime")?;
    runtime.block_on(async {
        let (connection, handle, _) =
            rtnetlink::new_connection().context("opening a netlink socket")?;
        let task = tokio::spawn(connection);
        let result = resolve_with(&handle, wanted).await;
        task.abort();
        result
    })
}

async fn resolve_with(handle: &Handle, wanted: &[(usize, Wanted)]) -> anyhow::Result<Resolution> {
    let links = node_links(handle).await?;
    let mut resolution = Resolution {
        node_links: links.iter().map(|l| l.facts.ifindex).collect(),
        ..Resolution::default()
    };
    for (id, want) in wanted {
        let (ips, pod, namespace) = match want {
            Wanted::Name(_) => continue,
            // Without entering the pod its hostname is unknown: the IP names it.
            Wanted::Ip(ip) => (std::slice::from_ref(ip), ip.to_string(), String::new()),
            Wanted::Api {
                namespace,
                name,
                ips,
            } => (ips.as_slice(), name.clone(), namespace.clone()),
        };
        match locate(handle, &links, ips).await {
            Ok(found) => {
                if let Some(probed) = &found.probed {
                    tracing::info!("mirror: {want}: {probed}");
                }
                resolution.found.push(Found {
                    wanted: *id,
                    ifindex: found.ifindex,
                    iface: found.iface,
                    pod,
                    namespace,
                    origin: join(ips),
                    method: found.method,
                });
            }
            Err(why) => resolution.missing.push((*id, why)),
        }
    }
    Ok(resolution)
}

fn join(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The node's links.
pub async fn node_links(handle: &Handle) -> anyhow::Result<Vec<NodeLink>> {
    use anyhow::Context as _;
    handle
        .link()
        .get()
        .execute()
        .map_ok(|link| NodeLink::of(&link))
        .try_collect()
        .await
        .context("listing the node's links")
}

/// The veth of the pod with `ips` (the first IP that leads to one), or why none does.
pub async fn locate(
    handle: &Handle,
    links: &[NodeLink],
    ips: &[IpAddr],
) -> Result<Located, String> {
    let mut why = Vec::new();
    for ip in ips {
        match locate_ip(handle, links, *ip).await {
            Ok(found) => return Ok(found),
            Err(e) => why.push(e),
        }
    }
    Err(why.join("; "))
}

async fn locate_ip(handle: &Handle, links: &[NodeLink], ip: IpAddr) -> Result<Located, String> {
    let route = route::route_to(handle, ip)
        .await
        .ok_or_else(|| format!("no route to {ip} on this node"))?;
    let oif = route::oif(&route);
    let via = route
        .attributes
        .iter()
        .any(|a| matches!(a, RouteAttribute::Gateway(_) | RouteAttribute::Via(_)));
    let link = oif.and_then(|oif| links.iter().find(|l| l.facts.ifindex == oif));
    let Some(link) = link.filter(|_| route.header.kind == RouteType::Unicast && !via) else {
        return Err(format!(
            "the route to {ip} {}: it is no pod of this node",
            match (link, via) {
                (Some(link), true) => format!("goes through a gateway on {}", link.facts.name),
                (Some(link), false) => format!("is not a unicast route ({})", link.facts.name),
                (None, _) => "names no interface".to_owned(),
            }
        ));
    };
    if link.pod_side() {
        return Ok(Located {
            ifindex: link.facts.ifindex,
            iface: link.facts.name.clone(),
            method: Method::Route,
            probed: None,
        });
    }
    if link.bridge {
        return on_bridge(handle, links, &link.facts, ip).await;
    }
    Err(format!(
        "the route to {ip} leaves through {}, neither a pod's veth nor a bridge: it is no pod of this node",
        link.facts.name
    ))
}

/// The bridge port behind `ip`, asking the kernel to resolve it when the tables do not say.
async fn on_bridge(
    handle: &Handle,
    links: &[NodeLink],
    bridge: &LinkFacts,
    ip: IpAddr,
) -> Result<Located, String> {
    let entry = neighbour(handle, bridge.ifindex, ip).await;
    if let Some(found) = port_of(handle, links, bridge, entry.as_ref()).await? {
        return Ok(found);
    }
    // A MAC behind no port is a pod that is gone (its veth deleted), and the kernel would keep
    // such an entry, or an unanswered one, for seconds before asking again: it goes, so that the
    // request below leaves at once. An operator's permanent entry stays.
    if let Some(entry) = entry.filter(|e| {
        !matches!(
            e.header.state,
            NeighbourState::Permanent | NeighbourState::Noarp
        )
    }) {
        let _ = handle.neighbours().del(entry).execute().await;
    }
    let mut request = handle
        .neighbours()
        .add(bridge.ifindex, ip)
        .state(NeighbourState::None)
        .flags(NeighbourFlags::Use)
        .replace();
    request.message_mut().header.kind = RouteType::Unspec;
    request.execute().await.map_err(|e| {
        format!(
            "{ip} is on bridge {} but has no neighbour entry, and asking the kernel to resolve it failed: {e}",
            bridge.name
        )
    })?;
    let probe = if ip.is_ipv4() {
        "ARP request"
    } else {
        "neighbour solicitation"
    };
    let started = Instant::now();
    while started.elapsed() < PROBE_WAIT {
        tokio::time::sleep(PROBE_POLL).await;
        let entry = neighbour(handle, bridge.ifindex, ip).await;
        if let Some(mut found) = port_of(handle, links, bridge, entry.as_ref()).await? {
            found.probed = Some(format!(
                "{ip} had no neighbour entry on {}: the node sent an {probe}, answered in {} ms",
                bridge.name,
                started.elapsed().as_millis()
            ));
            return Ok(found);
        }
    }
    Err(format!(
        "the route to {ip} leaves through bridge {}, but nothing behind it answered an {probe} for {ip} within {} ms",
        bridge.name,
        PROBE_WAIT.as_millis()
    ))
}

/// The pod veth on `bridge` that `entry`'s MAC was learnt on, if any.
async fn port_of(
    handle: &Handle,
    links: &[NodeLink],
    bridge: &LinkFacts,
    entry: Option<&NeighbourMessage>,
) -> Result<Option<Located>, String> {
    let Some(mac) = entry.and_then(usable_mac) else {
        return Ok(None);
    };
    let fdb: Vec<NeighbourMessage> = handle
        .neighbours()
        .get()
        .set_address_family(AddressFamily::Bridge)
        .execute()
        .try_collect()
        .await
        .map_err(|e| format!("reading the forwarding database of {}: {e}", bridge.name))?;
    let port = fdb
        .iter()
        .filter(|e| learnt_on(e, bridge.ifindex, links) && lladdr(e) == Some(mac))
        .find_map(|e| links.iter().find(|l| l.facts.ifindex == e.header.ifindex));
    Ok(port.filter(|p| p.pod_side()).map(|port| Located {
        ifindex: port.facts.ifindex,
        iface: port.facts.name.clone(),
        method: Method::Bridge,
        probed: None,
    }))
}

/// A forwarding entry the bridge learnt on one of its ports (not a port's own, local address).
fn learnt_on(entry: &NeighbourMessage, bridge: u32, links: &[NodeLink]) -> bool {
    if entry.header.state == NeighbourState::Permanent {
        return false;
    }
    let master = entry.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::Controller(master) => Some(*master),
        _ => None,
    });
    master == Some(bridge)
        && entry.header.ifindex != bridge
        && links
            .iter()
            .any(|l| l.facts.ifindex == entry.header.ifindex)
}

/// The entry's MAC address if it names one the pod answered with (or an operator set).
fn usable_mac(entry: &NeighbourMessage) -> Option<[u8; 6]> {
    route::answered(entry.header.state)
        .then(|| lladdr(entry))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fdb(port: u32, master: u32, mac: [u8; 6], state: NeighbourState) -> NeighbourMessage {
        let mut entry = NeighbourMessage::default();
        entry.header.family = AddressFamily::Bridge;
        entry.header.ifindex = port;
        entry.header.state = state;
        entry.attributes = vec![
            NeighbourAttribute::LinkLayerAddress(mac.to_vec()),
            NeighbourAttribute::Controller(master),
        ];
        entry
    }

    fn link(ifindex: u32) -> NodeLink {
        NodeLink {
            facts: LinkFacts {
                ifindex,
                ..LinkFacts::default()
            },
            bridge: false,
        }
    }

    #[test]
    fn only_learnt_entries_of_the_bridge_count() {
        let links = [link(4), link(5), link(6)];
        let mac = [2, 0, 0, 0, 0, 7];
        assert!(learnt_on(
            &fdb(5, 4, mac, NeighbourState::Reachable),
            4,
            &links
        ));
        // A port's own address, another bridge's port, the bridge itself, an unknown port.
        assert!(!learnt_on(
            &fdb(5, 4, mac, NeighbourState::Permanent),
            4,
            &links
        ));
        assert!(!learnt_on(
            &fdb(5, 9, mac, NeighbourState::Stale),
            4,
            &links
        ));
        assert!(!learnt_on(
            &fdb(4, 4, mac, NeighbourState::Stale),
            4,
            &links
        ));
        assert!(!learnt_on(
            &fdb(8, 4, mac, NeighbourState::Stale),
            4,
            &links
        ));
    }

    #[test]
    fn incomplete_and_failed_entries_name_no_mac() {
        let mut entry = fdb(5, 4, [2, 0, 0, 0, 0, 7], NeighbourState::Reachable);
        assert_eq!(usable_mac(&entry), Some([2, 0, 0, 0, 0, 7]));
        for state in [NeighbourState::Incomplete, NeighbourState::Failed] {
            entry.header.state = state;
            assert_eq!(usable_mac(&entry), None);
        }
        assert_eq!(Method::Bridge.label(), "bridge");
        assert_eq!(
            Method::ALL.map(Method::label),
            ["route", "bridge", "namespace"]
        );
    }
}
