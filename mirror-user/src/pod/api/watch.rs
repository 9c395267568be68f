//! Pods as they come and go on this node: one kube `watcher` per `--pod` and per
//! `--pod-selector`, each restricted to `spec.nodeName=<this node>` by the API server. A pod
//! that runs here with an IP (and a veth: not `hostNetwork`) is reported with its IPs; one that
//! is deleted, stops, or no longer matches is reported gone. The watcher lists, then watches
//! from the list's `resourceVersion`, and lists again when the server says it is too old.
use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use futures::{StreamExt as _, stream::BoxStream};
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::{
    WatchStreamExt as _,
    watcher::{self, Event},
};
use tokio::{sync::mpsc, task::JoinHandle};

use super::{
    Api, ApiError, LabelSelector, PodUpdate,
    client::{PodFacts, START_TIMEOUT},
    describe,
};
use crate::pod::PodName;

/// What one watch asks the API for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchSpec {
    /// `None`: every namespace.
    pub namespace: Option<String>,
    pub labels: Option<String>,
    pub fields: String,
    /// The option, for messages.
    pub option: String,
}

impl WatchSpec {
    /// `--pod [NAMESPACE/]NAME` on `node`.
    pub fn pod(pod: &PodName, node: &str) -> Self {
        Self {
            namespace: pod.namespace().map(str::to_owned),
            labels: None,
            fields: format!("metadata.name={},spec.nodeName={node}", pod.name()),
            option: format!("--pod {pod}"),
        }
    }

    /// `--pod-selector LABELS` on `node`, in every namespace.
    pub fn selector(selector: &LabelSelector, node: &str) -> Self {
        Self {
            namespace: None,
            labels: Some(selector.to_string()),
            fields: format!("spec.nodeName={node}"),
            option: format!("--pod-selector {selector}"),
        }
    }

    fn stream(&self, api: &Api) -> BoxStream<'static, watcher::Result<Event<Pod>>> {
        let pods = match &self.namespace {
            Some(namespace) => kube::Api::<Pod>::namespaced(api.client(), namespace),
            None => kube::Api::<Pod>::all(api.client()),
        };
        let mut config = watcher::Config::default().fields(&self.fields);
        if let Some(labels) = &self.labels {
            config = config.labels(labels);
        }
        watcher::watcher(pods, config).default_backoff().boxed()
    }
}

/// The pods one watch has reported, to report each change once.
#[derive(Debug)]
struct Tracker {
    watch: usize,
    node: String,
    reported: BTreeMap<(String, String), Vec<IpAddr>>,
    /// Pods seen since the last `Init`, while a (re-)list is under way.
    listed: Option<BTreeSet<(String, String)>>,
}

impl Tracker {
    fn new(watch: usize, node: &str) -> Self {
        Self {
            watch,
            node: node.to_owned(),
            reported: BTreeMap::new(),
            listed: None,
        }
    }

    /// The updates `event` makes; `true` once a list is complete.
    fn on_event(&mut self, event: Event<Pod>, updates: &mut Vec<PodUpdate>) -> bool {
        match event {
            Event::Init => self.listed = Some(BTreeSet::new()),
            Event::InitApply(pod) => {
                let facts = PodFacts::of(&pod);
                if let Some(listed) = &mut self.listed {
                    listed.insert((facts.namespace.clone(), facts.name.clone()));
                }
                self.apply(facts, updates);
            }
            Event::InitDone => {
                // Pods deleted while the agent was not watching are not in the new list.
                let listed = self.listed.take().unwrap_or_default();
                let gone: Vec<_> = self
                    .reported
                    .keys()
                    .filter(|key| !listed.contains(*key))
                    .cloned()
                    .collect();
                for key in gone {
                    self.forget(key, updates);
                }
                return true;
            }
            Event::Apply(pod) => self.apply(PodFacts::of(&pod), updates),
            Event::Delete(pod) => {
                let facts = PodFacts::of(&pod);
                self.forget((facts.namespace, facts.name), updates);
            }
        }
        false
    }

    fn apply(&mut self, facts: PodFacts, updates: &mut Vec<PodUpdate>) {
        let ips = facts.ips_on(&self.node);
        let key = (facts.namespace, facts.name);
        match ips {
            Some(ips) if self.reported.get(&key) != Some(&ips) => {
                self.reported.insert(key.clone(), ips.clone());
                updates.push(self.update(key, Some(ips)));
            }
            Some(_) => {}
            None => self.forget(key, updates),
        }
    }

    fn forget(&mut self, key: (String, String), updates: &mut Vec<PodUpdate>) {
        if self.reported.remove(&key).is_some() {
            updates.push(self.update(key, None));
        }
    }

    fn update(&self, (namespace, name): (String, String), ips: Option<Vec<IpAddr>>) -> PodUpdate {
        PodUpdate {
            watch: self.watch,
            namespace,
            name,
            ips,
        }
    }
}

/// The running watches and the updates they send; the watches stop when this is dropped.
#[derive(Default)]
pub struct PodUpdates {
    updates: Option<mpsc::UnboundedReceiver<PodUpdate>>,
    tasks: Vec<JoinHandle<()>>,
}

impl PodUpdates {
    /// Starts one watch per spec (the watch number is its index) and waits for their first
    /// lists: the pods they report are returned, later changes come from [`PodUpdates::next`].
    /// A watch that cannot list within [`START_TIMEOUT`] is an error.
    pub async fn start(api: &Api, specs: &[WatchSpec]) -> Result<(Self, Vec<PodUpdate>), ApiError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut this = Self {
            updates: Some(rx),
            tasks: Vec::new(),
        };
        let mut first = Vec::new();
        for (watch, spec) in specs.iter().enumerate() {
            let mut stream = spec.stream(api);
            let mut tracker = Tracker::new(watch, api.node());
            let listed = async {
                while let Some(event) = stream.next().await {
                    if tracker.on_event(event.map_err(|e| explain(&e))?, &mut first) {
                        return Ok(());
                    }
                }
                Err("the watch ended".to_owned())
            };
            tokio::time::timeout(START_TIMEOUT, listed)
                .await
                .unwrap_or_else(|_| Err(format!("no answer within {START_TIMEOUT:?}")))
                .map_err(|problem| ApiError::Request {
                    url: api.url().to_owned(),
                    problem: format!("{}: listing pods: {problem}", spec.option),
                })?;
            this.tasks.push(tokio::spawn(follow(
                stream,
                tracker,
                spec.option.clone(),
                tx.clone(),
            )));
        }
        Ok((this, first))
    }

    /// The next update; pending forever when nothing is watched.
    pub async fn next(&mut self) -> PodUpdate {
        if let Some(updates) = &mut self.updates
            && let Some(update) = updates.recv().await
        {
            return update;
        }
        self.updates = None;
        std::future::pending().await
    }
}

impl Drop for PodUpdates {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Feeds one watch's updates to the agent; errors are reported and retried (with kube's
/// back-off, up to a few seconds apart) for as long as the agent runs.
async fn follow(
    mut stream: BoxStream<'static, watcher::Result<Event<Pod>>>,
    mut tracker: Tracker,
    option: String,
    tx: mpsc::UnboundedSender<PodUpdate>,
) {
    let mut updates = Vec::new();
    while let Some(event) = stream.next().await {
        match event {
            Ok(event) => {
                tracker.on_event(event, &mut updates);
                for update in updates.drain(..) {
                    if tx.send(update).is_err() {
                        return;
                    }
                }
            }
            Err(e) => tracing::warn!("mirror: {option}: watching pods: {}; retrying", explain(&e)),
        }
    }
}

/// A watcher error in one line.
fn explain(error: &watcher::Error) -> String {
    match error {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => describe(e),
        watcher::Error::WatchError(status) => describe(&kube::Error::Api(status.clone())),
        watcher::Error::NoResourceVersion => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{PodIP, PodSpec, PodStatus};

    use super::*;

    fn pod(name: &str, node: &str, phase: &str, ip: Option<&str>) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some(name.to_owned());
        pod.metadata.namespace = Some("shop".to_owned());
        pod.spec = Some(PodSpec {
            node_name: Some(node.to_owned()),
            ..PodSpec::default()
        });
        pod.status = Some(PodStatus {
            phase: Some(phase.to_owned()),
            pod_ips: ip.map(|ip| vec![PodIP { ip: ip.to_owned() }]),
            ..PodStatus::default()
        });
        pod
    }

    fn up(name: &str, ip: &str) -> PodUpdate {
        PodUpdate {
            watch: 3,
            namespace: "shop".to_owned(),
            name: name.to_owned(),
            ips: Some(vec![ip.parse().unwrap()]),
        }
    }

    fn down(name: &str) -> PodUpdate {
        PodUpdate {
            ips: None,
            ..up(name, "0.0.0.0")
        }
    }

    fn feed(tracker: &mut Tracker, events: Vec<Event<Pod>>) -> (Vec<PodUpdate>, bool) {
        let mut updates = Vec::new();
        let mut listed = false;
        for event in events {
            listed |= tracker.on_event(event, &mut updates);
        }
        (updates, listed)
    }

    #[test]
    fn running_pods_with_an_ip_come_and_go() {
        let mut tracker = Tracker::new(3, "worker-1");
        let (updates, listed) = feed(
            &mut tracker,
            vec![
                Event::Init,
                Event::InitApply(pod("coffee", "worker-1", "Running", Some("10.1.0.7"))),
                Event::InitApply(pod("tea", "worker-1", "Pending", None)),
                Event::InitDone,
            ],
        );
        assert!(listed);
        assert_eq!(updates, [up("coffee", "10.1.0.7")]);
        // tea starts; coffee is modified without a change that matters; then deleted.
        let (updates, listed) = feed(
            &mut tracker,
            vec![
                Event::Apply(pod("tea", "worker-1", "Running", Some("10.1.0.8"))),
                Event::Apply(pod("coffee", "worker-1", "Running", Some("10.1.0.7"))),
                Event::Delete(pod("coffee", "worker-1", "Running", Some("10.1.0.7"))),
                Event::Delete(pod("coffee", "worker-1", "Running", Some("10.1.0.7"))),
            ],
        );
        assert!(!listed);
        assert_eq!(updates, [up("tea", "10.1.0.8"), down("coffee")]);
        // tea finishes; a pod of the same name comes back with another IP.
        let (updates, _) = feed(
            &mut tracker,
            vec![
                Event::Apply(pod("tea", "worker-1", "Succeeded", Some("10.1.0.8"))),
                Event::Apply(pod("coffee", "worker-1", "Running", Some("10.1.0.9"))),
                Event::Apply(pod("coffee", "worker-1", "Running", Some("10.1.0.10"))),
            ],
        );
        assert_eq!(
            updates,
            [
                down("tea"),
                up("coffee", "10.1.0.9"),
                up("coffee", "10.1.0.10")
            ]
        );
    }

    #[test]
    fn a_relist_drops_pods_deleted_meanwhile() {
        let mut tracker = Tracker::new(3, "worker-1");
        feed(
            &mut tracker,
            vec![
                Event::Init,
                Event::InitApply(pod("coffee", "worker-1", "Running", Some("10.1.0.7"))),
                Event::InitApply(pod("tea", "worker-1", "Running", Some("10.1.0.8"))),
                Event::InitDone,
            ],
        );
        let (updates, listed) = feed(
            &mut tracker,
            vec![
                Event::Init,
                Event::InitApply(pod("tea", "worker-1", "Running", Some("10.1.0.8"))),
                Event::InitApply(pod("milk", "worker-1", "Running", Some("10.1.0.9"))),
                Event::InitDone,
            ],
        );
        assert!(listed);
        assert_eq!(updates, [up("milk", "10.1.0.9"), down("coffee")]);
    }

    #[test]
    fn pods_of_other_nodes_are_not_reported() {
        // The field selector keeps them out; a pod that moves is gone from here.
        let mut tracker = Tracker::new(3, "worker-1");
        let (updates, _) = feed(
            &mut tracker,
            vec![
                Event::Apply(pod("coffee", "worker-2", "Running", Some("10.1.0.7"))),
                Event::Apply(pod("tea", "worker-1", "Running", Some("10.1.0.8"))),
                Event::Apply(pod("tea", "worker-2", "Running", Some("10.1.0.8"))),
            ],
        );
        assert_eq!(updates, [up("tea", "10.1.0.8"), down("tea")]);
    }

    #[test]
    fn specs_ask_for_this_node_only() {
        let selector: LabelSelector = "app=web, tier in (a,b)".parse().unwrap();
        let spec = WatchSpec::selector(&selector, "worker-1");
        assert_eq!(spec.labels.as_deref(), Some("app=web,tier in (a,b)"));
        assert_eq!(spec.fields, "spec.nodeName=worker-1");
        assert_eq!(spec.namespace, None);
        assert_eq!(spec.option, "--pod-selector app=web,tier in (a,b)");
        let spec = WatchSpec::pod(&"shop/coffee".parse().unwrap(), "worker-1");
        assert_eq!(spec.namespace.as_deref(), Some("shop"));
        assert_eq!(spec.fields, "metadata.name=coffee,spec.nodeName=worker-1");
        assert_eq!(spec.labels, None);
        let spec = WatchSpec::pod(&"coffee".parse().unwrap(), "worker-1");
        assert_eq!(spec.namespace, None);
    }
}
