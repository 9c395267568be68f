//! Pods by name or IP on this node, without the Kubernetes API (node-local resolution).
//!
//! A pod is a network namespace whose `eth0` is one end of a veth pair; the other end, in the
//! node's namespace, is what the mirror attaches to. Finding it:
//!
//! 1. [`netns`]: every network namespace of the node, from `/proc/*/ns/net` (deduplicated by
//!    inode) and `/run/netns/*`, with the UTS namespaces of its processes;
//! 2. [`probe`]: from a short-lived thread that enters each in turn, the hostnames (a pod's
//!    hostname is its name, cut to 63 characters, unless the pod sets `hostname`), `eth0` with
//!    its addresses and its veth peer (`IFLA_LINK`, `IFLA_LINK_NETNSID`), and the id the
//!    namespace gives the agent's (`RTM_GETNSID`), all over netlink;
//! 3. [`matches`]: the pods whose `eth0` peer lives in the agent's namespace (the ids agree)
//!    and is the node's veth with that ifindex, pointing back at `eth0`.
//!
//! Kubernetes namespaces are invisible on the node: without the API, the `NAMESPACE/` of
//! `--pod NAMESPACE/NAME` only labels the metrics, and pods of the same name in two namespaces on
//! one node are both mirrored. A pod whose `hostname` is set is found with `--pod-ip`. With the
//! API ([`api`]), pods are known by namespace and name, and found here by their IPs.
//!
//! When a pod's IPs are known (`--pod-ip`, or the API), none of that is needed: [`by_address`]
//! finds its veth from the node's routes, neighbours and bridge forwarding database, without
//! entering any namespace. The namespace scan is only for `--pod NAME` without the API.
//!
//! [`wanted`] keeps the set of wanted pods in step with the API's updates. This module only
//! finds pods: following them as they come and go, and attaching to their veths, is `mirror
//! run`'s (`run::follow`).

pub mod api;
pub mod by_address;
pub mod name;
pub mod netns;
pub mod probe;
pub mod wanted;

use std::{collections::BTreeSet, fmt, net::IpAddr, sync::Arc, time::Instant};

use anyhow::Context as _;
use tokio::sync::oneshot;

use self::probe::{Inside, LinkFacts, Survey};
pub use self::{by_address::Method, name::PodName};
use crate::UsageError;

/// One `--pod` or `--pod-ip`, or a pod the Kubernetes API placed on this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wanted {
    Name(PodName),
    Ip(IpAddr),
    /// Found by its IPs, labelled with its namespace and name.
    Api {
        namespace: String,
        name: String,
        ips: Vec<IpAddr>,
    },
}

impl fmt::Display for Wanted {
    /// The option as the user gave it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Name(pod) => write!(f, "--pod {pod}"),
            Self::Ip(ip) => write!(f, "--pod-ip {ip}"),
            Self::Api {
                namespace, name, ..
            } => write!(f, "pod {namespace}/{name}"),
        }
    }
}

/// A host-side veth that belongs to a wanted pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// The wanted pod's id.
    pub wanted: usize,
    pub ifindex: u32,
    pub iface: String,
    /// The `pod` label: the name asked for or the API's, or for `--pod-ip` the pod's hostname.
    pub pod: String,
    /// The `namespace` label: the API's, or as given with `--pod NAMESPACE/NAME`, else empty.
    pub namespace: String,
    /// Where the pod's namespace was found, or the IP its veth was found by.
    pub origin: String,
    /// How its veth was found.
    pub method: Method,
}

/// The outcome of one scan of the node.
#[derive(Clone, Debug, Default)]
pub struct Resolution {
    /// When the scan began: attachments made since may be missing from `node_links`.
    pub started: Option<Instant>,
    pub found: Vec<Found>,
    /// The ifindexes of every link in the agent's namespace when the scan began.
    pub node_links: BTreeSet<u32>,
    /// Processes whose namespaces could not be looked at (no CAP_SYS_PTRACE).
    pub refused: usize,
    /// Why wanted pods with known IPs were not found, by id.
    pub missing: Vec<(usize, String)>,
}

impl Resolution {
    /// The usage error for the first wanted pod with no veth on this node.
    pub fn check_all_found(&self, wanted: &[(usize, Wanted)]) -> Result<(), UsageError> {
        for (id, want) in wanted {
            if !self.found.iter().any(|f| f.wanted == *id) {
                let hint = if self.refused > 0 {
                    format!(
                        " (the namespaces of {} processes of other users could not be looked at: the agent needs CAP_SYS_PTRACE)",
                        self.refused
                    )
                } else {
                    String::new()
                };
                let why = self
                    .missing
                    .iter()
                    .find(|(w, _)| w == id)
                    .map_or(String::new(), |(_, why)| format!(": {why}"));
                return Err(UsageError(match want {
                    Wanted::Name(_) => format!("{want}: no pod with that name on this node{hint}"),
                    Wanted::Ip(_) => format!("{want}: no pod with that IP on this node{why}"),
                    Wanted::Api { ips, .. } => format!(
                        "{want}: the Kubernetes API places it on this node with IP {}, but its veth is not on this node{why}",
                        ips.iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                }));
            }
        }
        Ok(())
    }
}

/// Scans the node for `wanted` on a thread of its own (it enters other namespaces); the answer
/// arrives on the returned channel.
pub fn resolve(
    wanted: Arc<[(usize, Wanted)]>,
) -> anyhow::Result<oneshot::Receiver<anyhow::Result<Resolution>>> {
    let (tx, rx) = oneshot::channel();
    std::thread::Builder::new()
        .name("mirror-pod-scan".into())
        .spawn(move || {
            let _ = tx.send(resolve_here(&wanted));
        })
        .context("starting the pod scan thread")?;
    Ok(rx)
}

/// [`resolve`], awaited.
pub async fn resolve_now(wanted: Arc<[(usize, Wanted)]>) -> anyhow::Result<Resolution> {
    resolve(wanted)?
        .await
        .unwrap_or_else(|_| Err(anyhow::anyhow!("the pod scan thread panicked")))
}

fn resolve_here(wanted: &[(usize, Wanted)]) -> anyhow::Result<Resolution> {
    let started = Instant::now();
    let mut resolution = by_address::resolve(wanted)?;
    resolution.started = Some(started);
    let by_name: Vec<(usize, Wanted)> = wanted
        .iter()
        .filter(|(_, w)| matches!(w, Wanted::Name(_)))
        .cloned()
        .collect();
    if !by_name.is_empty() {
        let own = netns::Own::open().context("opening the agent's own namespaces")?;
        let scan = netns::scan(&own);
        let survey = probe::survey(scan.namespaces, own)?;
        resolution.found.extend(matches(&by_name, &survey));
        resolution.refused = scan.refused;
    }
    Ok(resolution)
}

/// The node veths of the wanted pods (with their ids) in `survey`.
pub fn matches(wanted: &[(usize, Wanted)], survey: &Survey) -> Vec<Found> {
    let mut found = Vec::new();
    for inside in &survey.inside {
        let Some(host) = host_peer(inside, &survey.node) else {
            continue;
        };
        let addrs = inside.eth0.as_ref().map_or(&[][..], |e| &e.addrs);
        for (id, want) in wanted {
            let (pod, namespace) = match want {
                Wanted::Name(name) => {
                    if !inside.hostnames.iter().any(|h| h == name.hostname()) {
                        continue;
                    }
                    (name.name().to_owned(), name.namespace().unwrap_or_default())
                }
                Wanted::Ip(ip) => {
                    if !addrs.contains(ip) {
                        continue;
                    }
                    (inside.hostnames.first().cloned().unwrap_or_default(), "")
                }
                Wanted::Api {
                    namespace,
                    name,
                    ips,
                } => {
                    if !addrs.iter().any(|a| ips.contains(a)) {
                        continue;
                    }
                    (name.clone(), namespace.as_str())
                }
            };
            found.push(Found {
                wanted: *id,
                ifindex: host.ifindex,
                iface: host.name.clone(),
                pod,
                namespace: namespace.to_owned(),
                origin: inside.origin.display().to_string(),
                method: Method::Namespace,
            });
        }
    }
    found
}

/// The node's end of the namespace's `eth0`: `eth0`'s peer namespace is the agent's (same id),
/// and the node's veth with the peer ifindex points back at `eth0`.
fn host_peer<'n>(inside: &Inside, node: &'n [LinkFacts]) -> Option<&'n LinkFacts> {
    let eth0 = &inside.eth0.as_ref()?.link;
    let agent = inside.agent_nsid?;
    if !eth0.veth || eth0.peer_nsid != Some(agent) {
        return None;
    }
    let peer = eth0.peer_ifindex?;
    node.iter().find(|l| {
        l.ifindex == peer && l.veth && l.peer_ifindex == Some(eth0.ifindex) && l.peer_nsid.is_some()
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::{probe::PodLink, *};

    /// Ids as a startup gives them: in order from 0.
    fn numbered(wanted: &[Wanted]) -> Vec<(usize, Wanted)> {
        wanted.iter().cloned().enumerate().collect()
    }

    fn veth(ifindex: u32, name: &str, peer: u32, nsid: i32) -> LinkFacts {
        LinkFacts {
            ifindex,
            name: name.to_owned(),
            veth: true,
            peer_ifindex: Some(peer),
            peer_nsid: Some(nsid),
        }
    }

    fn pod(hostname: &str, eth0: LinkFacts, ip: &str, agent_nsid: i32) -> Inside {
        Inside {
            origin: PathBuf::from(format!("/proc/1/{hostname}")),
            hostnames: vec![hostname.to_owned()],
            eth0: Some(PodLink {
                link: eth0,
                addrs: vec![ip.parse().unwrap()],
            }),
            agent_nsid: Some(agent_nsid),
        }
    }

    /// Two pods of this node and one whose peer is in another node's namespace with the very
    /// same ifindexes (test worlds and CNIs build namespaces alike).
    fn node() -> Survey {
        Survey {
            node: vec![
                veth(7, "veth-coffee", 2, 0),
                veth(8, "veth-tea", 2, 1),
                LinkFacts {
                    ifindex: 9,
                    name: "dummy".to_owned(),
                    ..LinkFacts::default()
                },
            ],
            inside: vec![
                pod("coffee", veth(2, "eth0", 7, 3), "198.19.1.2", 3),
                pod("tea", veth(2, "eth0", 8, 0), "198.19.2.2", 0),
                // Elsewhere: eth0's peer is in namespace 5 of that pod, but the agent's is 4.
                pod("coffee", veth(2, "eth0", 7, 5), "198.19.1.2", 4),
            ],
        }
    }

    #[test]
    fn finds_pods_by_hostname_and_ip_on_this_node_only() {
        let wanted = [
            Wanted::Name("shop/coffee".parse().unwrap()),
            Wanted::Ip("198.19.2.2".parse().unwrap()),
            Wanted::Name("milk".parse().unwrap()),
        ];
        let found = matches(&numbered(&wanted), &node());
        let summary: Vec<_> = found
            .iter()
            .map(|f| {
                (
                    f.wanted,
                    f.ifindex,
                    f.iface.as_str(),
                    f.pod.as_str(),
                    f.namespace.as_str(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (0, 7, "veth-coffee", "coffee", "shop"),
                (1, 8, "veth-tea", "tea", ""),
            ]
        );
        let resolution = Resolution {
            found,
            ..Resolution::default()
        };
        assert_eq!(
            resolution
                .check_all_found(&numbered(&wanted))
                .unwrap_err()
                .0,
            "--pod milk: no pod with that name on this node"
        );
        assert!(resolution.check_all_found(&numbered(&wanted[..2])).is_ok());
        let refused = Resolution {
            refused: 3,
            ..Resolution::default()
        };
        assert!(
            refused.check_all_found(&numbered(&wanted[2..])).unwrap_err().0.ends_with(
                "(the namespaces of 3 processes of other users could not be looked at: the agent needs CAP_SYS_PTRACE)"
            )
        );
        let ip = [Wanted::Ip("198.19.9.9".parse().unwrap())];
        assert_eq!(
            Resolution::default()
                .check_all_found(&numbered(&ip))
                .unwrap_err()
                .0,
            "--pod-ip 198.19.9.9: no pod with that IP on this node"
        );
    }

    #[test]
    fn api_pods_are_found_by_their_ips_under_their_ids() {
        let api = |ips: &[&str]| Wanted::Api {
            namespace: "shop".to_owned(),
            name: "latte".to_owned(),
            ips: ips.iter().map(|ip| ip.parse().unwrap()).collect(),
        };
        // Dual-stack: one of the pod's IPs on eth0 is enough.
        let wanted = [
            (7, api(&["fd00::2", "198.19.2.2"])),
            (9, api(&["198.19.9.2"])),
        ];
        let found = matches(&wanted, &node());
        assert_eq!(found.len(), 1);
        assert_eq!(
            (
                found[0].wanted,
                found[0].iface.as_str(),
                found[0].pod.as_str(),
                found[0].namespace.as_str()
            ),
            (7, "veth-tea", "latte", "shop")
        );
        let resolution = Resolution {
            found,
            missing: vec![(
                9,
                "the route to 198.19.9.2 leaves through eth0, neither a pod's veth nor a bridge"
                    .to_owned(),
            )],
            ..Resolution::default()
        };
        assert_eq!(
            resolution.check_all_found(&wanted).unwrap_err().0,
            "pod shop/latte: the Kubernetes API places it on this node with IP 198.19.9.2, but its veth is not on this node: the route to 198.19.9.2 leaves through eth0, neither a pod's veth nor a bridge"
        );
    }

    #[test]
    fn the_peer_must_point_back() {
        let mut survey = node();
        // The node's veth 7 now points at another ifindex: not coffee's eth0.
        survey.node[0].peer_ifindex = Some(3);
        let wanted = numbered(&[Wanted::Name("coffee".parse().unwrap())]);
        assert!(matches(&wanted, &survey).is_empty());
        let mut survey = node();
        survey.inside[0].agent_nsid = None;
        assert!(matches(&wanted, &survey).is_empty());
    }
}
