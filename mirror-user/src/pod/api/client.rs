//! The API client, and where a `--pod` runs at start.
use std::{net::IpAddr, time::Duration};

use k8s_openapi::api::core::v1::Pod;
use kube::api::ListParams;

use super::{ApiError, config::Source, describe};
use crate::pod::PodName;

/// How long the first requests may take before the API counts as unreachable.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A client of the Kubernetes API, for pods of one node.
#[derive(Clone)]
pub struct Api {
    client: kube::Client,
    node: String,
    url: String,
}

impl Api {
    /// The client for `source`; `node` is this node's name. Sends nothing yet.
    pub async fn connect(source: &Source, node: String) -> Result<Self, ApiError> {
        let config = source.config().await?;
        let url = config.cluster_url.to_string();
        let client = kube::Client::try_from(config).map_err(|e| ApiError::Client(describe(&e)))?;
        Ok(Self { client, node, url })
    }

    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// This node's name, as `spec.nodeName` gives it.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The API server's address, for messages.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The pods `pod` names: the one pod `NAMESPACE/NAME`, or for a bare `NAME` the pods of that
    /// name in every namespace (as on the node, where namespaces cannot be told apart).
    pub async fn lookup(&self, pod: &PodName) -> Result<Vec<PodFacts>, ApiError> {
        let request = async {
            match pod.namespace() {
                Some(namespace) => {
                    let pods = kube::Api::<Pod>::namespaced(self.client(), namespace);
                    match pods.get(pod.name()).await {
                        Ok(found) => Ok(vec![PodFacts::of(&found)]),
                        Err(kube::Error::Api(status)) if status.code == 404 => Ok(Vec::new()),
                        Err(e) => Err(describe(&e)),
                    }
                }
                None => kube::Api::<Pod>::all(self.client())
                    .list(&ListParams::default().fields(&format!("metadata.name={}", pod.name())))
                    .await
                    .map(|list| list.items.iter().map(PodFacts::of).collect())
                    .map_err(|e| describe(&e)),
            }
        };
        tokio::time::timeout(START_TIMEOUT, request)
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {START_TIMEOUT:?}")))
            .map_err(|problem| ApiError::Request {
                url: self.url.clone(),
                problem,
            })
    }
}

/// What the agent needs of a pod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodFacts {
    pub namespace: String,
    pub name: String,
    /// `spec.nodeName`: none until the pod is scheduled.
    pub node: Option<String>,
    /// `status.phase`: `Pending`, `Running`, `Succeeded`, `Failed`.
    pub phase: String,
    /// `status.podIPs` (or `status.podIP`).
    pub ips: Vec<IpAddr>,
    pub host_network: bool,
}

impl PodFacts {
    pub fn of(pod: &Pod) -> Self {
        let spec = pod.spec.as_ref();
        let status = pod.status.as_ref();
        let mut ips: Vec<IpAddr> = status
            .and_then(|s| s.pod_ips.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|p| p.ip.parse().ok())
            .collect();
        if ips.is_empty()
            && let Some(ip) = status
                .and_then(|s| s.pod_ip.as_deref())
                .and_then(|ip| ip.parse().ok())
        {
            ips.push(ip);
        }
        Self {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            node: spec.and_then(|s| s.node_name.clone()),
            phase: status.and_then(|s| s.phase.clone()).unwrap_or_default(),
            ips,
            host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
        }
    }

    /// The IPs to mirror the pod by, when it runs on `node` with a veth of its own.
    pub fn ips_on(&self, node: &str) -> Option<Vec<IpAddr>> {
        (self.node.as_deref() == Some(node)
            && self.phase == "Running"
            && !self.host_network
            && !self.ips.is_empty())
        .then(|| self.ips.clone())
    }
}

/// Why a `--pod` cannot be mirrored on this node now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Misplaced {
    /// Not here now, but it may come (`--wait-for-pods` waits).
    NotYet(String),
    /// It never can be: a `hostNetwork` pod has no veth.
    Never(String),
}

/// Checks that the pods `asked` found (`pods`) include one that runs on `node`.
pub fn check_placement(
    asked: &PodName,
    pods: &[PodFacts],
    node: &str,
    url: &str,
) -> Result<(), Misplaced> {
    let here: Vec<&PodFacts> = pods
        .iter()
        .filter(|p| p.node.as_deref() == Some(node))
        .collect();
    if here.iter().any(|p| p.ips_on(node).is_some()) {
        return Ok(());
    }
    if let Some(pod) = here.iter().find(|p| p.host_network) {
        return Err(Misplaced::Never(format!(
            "--pod {asked}: pod {}/{} uses the node's network (hostNetwork) and has no veth of its own: mirror the node's interface with --iface",
            pod.namespace, pod.name
        )));
    }
    if let Some(pod) = here.first() {
        let phase = if pod.phase.is_empty() {
            "not running"
        } else {
            &pod.phase
        };
        return Err(Misplaced::NotYet(format!(
            "--pod {asked}: pod {}/{} is {phase} on this node ({node}), without an IP to find it by",
            pod.namespace, pod.name
        )));
    }
    let mut nodes: Vec<&str> = pods.iter().filter_map(|p| p.node.as_deref()).collect();
    nodes.sort_unstable();
    nodes.dedup();
    Err(Misplaced::NotYet(
        match (pods.is_empty(), nodes.as_slice()) {
            (true, _) => match asked.namespace() {
                Some(namespace) => format!(
                    "--pod {asked}: the Kubernetes API at {url} has no pod {} in namespace {namespace}",
                    asked.name()
                ),
                None => format!(
                    "--pod {asked}: the Kubernetes API at {url} has no pod of that name in any namespace"
                ),
            },
            (false, []) => format!("--pod {asked}: not scheduled to a node yet"),
            (false, [other]) => {
                format!("--pod {asked}: runs on node {other}, not on this node ({node})")
            }
            (false, others) => format!(
                "--pod {asked}: runs on nodes {}, not on this node ({node})",
                others.join(", ")
            ),
        },
    ))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{PodIP, PodSpec, PodStatus};

    use super::*;

    fn pod(node: Option<&str>, phase: &str, ips: &[&str]) -> PodFacts {
        PodFacts {
            namespace: "shop".to_owned(),
            name: "coffee".to_owned(),
            node: node.map(str::to_owned),
            phase: phase.to_owned(),
            ips: ips.iter().map(|ip| ip.parse().unwrap()).collect(),
            host_network: false,
        }
    }

    #[test]
    fn facts_of_a_pod() {
        let mut raw = Pod::default();
        raw.metadata.name = Some("coffee".to_owned());
        raw.metadata.namespace = Some("shop".to_owned());
        raw.spec = Some(PodSpec {
            node_name: Some("worker-1".to_owned()),
            ..PodSpec::default()
        });
        raw.status = Some(PodStatus {
            phase: Some("Running".to_owned()),
            pod_ip: Some("10.1.0.7".to_owned()),
            pod_ips: Some(vec![
                PodIP {
                    ip: "10.1.0.7".to_owned(),
                },
                PodIP {
                    ip: "fd00::7".to_owned(),
                },
            ]),
            ..PodStatus::default()
        });
        let facts = PodFacts::of(&raw);
        assert_eq!(
            facts,
            PodFacts {
                ips: vec!["10.1.0.7".parse().unwrap(), "fd00::7".parse().unwrap()],
                node: Some("worker-1".to_owned()),
                ..pod(None, "Running", &[])
            }
        );
        assert_eq!(facts.ips_on("worker-1").map(|ips| ips.len()), Some(2));
        assert_eq!(facts.ips_on("worker-2"), None);
        // An older API server sets only podIP.
        raw.status.as_mut().unwrap().pod_ips = None;
        assert_eq!(
            PodFacts::of(&raw).ips,
            ["10.1.0.7".parse::<IpAddr>().unwrap()]
        );
        raw.spec.as_mut().unwrap().host_network = Some(true);
        assert_eq!(PodFacts::of(&raw).ips_on("worker-1"), None);
    }

    #[test]
    fn placement_is_checked_against_this_node() {
        let asked: PodName = "shop/coffee".parse().unwrap();
        let url = "https://10.96.0.1:443/";
        let check = |pods: &[PodFacts]| check_placement(&asked, pods, "worker-1", url);
        assert_eq!(
            check(&[pod(Some("worker-1"), "Running", &["10.1.0.7"])]),
            Ok(())
        );
        assert_eq!(
            check(&[pod(Some("worker-2"), "Running", &["10.1.0.7"])]),
            Err(Misplaced::NotYet(
                "--pod shop/coffee: runs on node worker-2, not on this node (worker-1)".to_owned()
            ))
        );
        assert_eq!(
            check(&[]),
            Err(Misplaced::NotYet(
                "--pod shop/coffee: the Kubernetes API at https://10.96.0.1:443/ has no pod coffee in namespace shop".to_owned()
            ))
        );
        assert_eq!(
            check(&[pod(Some("worker-1"), "Pending", &[])]),
            Err(Misplaced::NotYet(
                "--pod shop/coffee: pod shop/coffee is Pending on this node (worker-1), without an IP to find it by".to_owned()
            ))
        );
        assert_eq!(
            check(&[pod(None, "Pending", &[])]),
            Err(Misplaced::NotYet(
                "--pod shop/coffee: not scheduled to a node yet".to_owned()
            ))
        );
        let mut host = pod(Some("worker-1"), "Running", &["198.18.0.1"]);
        host.host_network = true;
        assert!(matches!(check(&[host]), Err(Misplaced::Never(m)) if m.contains("hostNetwork")));
        // A bare name: one of two namespaces' pods runs here, which is enough.
        let bare: PodName = "coffee".parse().unwrap();
        let pods = [
            pod(Some("worker-2"), "Running", &["10.1.0.8"]),
            pod(Some("worker-1"), "Running", &["10.1.0.7"]),
        ];
        assert_eq!(check_placement(&bare, &pods, "worker-1", url), Ok(()));
        assert_eq!(
            check_placement(&bare, &pods, "worker-3", url),
            Err(Misplaced::NotYet(
                "--pod coffee: runs on nodes worker-1, worker-2, not on this node (worker-3)"
                    .to_owned()
            ))
        );
        assert!(matches!(
            check_placement(&bare, &[], "worker-1", url),
            Err(Misplaced::NotYet(m)) if m.ends_with("has no pod of that name in any namespace")
        ));
    }
}
