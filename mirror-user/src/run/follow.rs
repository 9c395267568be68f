//! Following what `mirror run` mirrors as it comes and goes: `--iface` interfaces by name and
//! `--pod`/`--pod-ip` pods through restarts. Link events of the node drive it: a removed link that
//! was attached is detached at once; a new veth makes the agent scan for the wanted pods again
//! (after [`DEBOUNCE`], then with back-off while one is still missing), and a new link with an
//! `--iface` name is attached. A slow periodic scan ([`RESYNC`]) makes up for lost events. With
//! the Kubernetes API, its pod updates change the wanted pods: a new one is looked for at once,
//! and the veth of one that is gone is detached.
//!
//! The capture thread's counter table follows too: an interface's counters are in the table
//! before its programs are attached, and stay [`GRACE`] after they are detached, so that copies
//! already under way are still counted.
use std::{
    collections::BTreeMap,
    fmt,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::oneshot;

use super::links::LinkEvent;
use crate::{
    capture::{IfaceCounters, IfaceTable},
    kernel::{
        programs::{MirrorLinks, Programs},
        veth,
    },
    metrics::{DetachReason, Metrics},
    pod::{self, Found, Resolution, api::PodUpdate, wanted::WantedSet},
};

/// Quiet time after a link event before scanning: a CNI sets a veth up in several steps.
pub const DEBOUNCE: Duration = Duration::from_millis(50);
/// First delay between scans while a wanted pod is missing; doubled up to [`BACKOFF_MAX`].
pub const BACKOFF_FIRST: Duration = Duration::from_millis(100);
pub const BACKOFF_MAX: Duration = Duration::from_millis(3200);
/// Scan this often anyway, for events the netlink socket dropped.
pub const RESYNC: Duration = Duration::from_secs(30);
/// How long a detached interface's counters stay in the capture table and the metrics.
pub const GRACE: Duration = Duration::from_secs(2);

/// Logs a message about an interface with its labels as the event's fields.
macro_rules! say {
    ($level:ident, $labels:expr, $($message:tt)+) => {
        tracing::$level!(
            iface = %$labels.iface,
            pod = %$labels.pod,
            namespace = %$labels.namespace,
            $($message)+
        )
    };
}

/// The labels of a mirrored interface; empty `pod`/`namespace` when not known.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Labels {
    pub iface: String,
    pub pod: String,
    pub namespace: String,
}

impl Labels {
    pub fn iface(name: &str) -> Self {
        Self {
            iface: name.to_owned(),
            ..Self::default()
        }
    }

    fn of(found: &Found) -> Self {
        Self {
            iface: found.iface.clone(),
            pod: found.pod.clone(),
            namespace: found.namespace.clone(),
        }
    }
}

impl fmt::Display for Labels {
    /// `IFACE`, or `pod [NAMESPACE/]POD on IFACE`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.pod.as_str(), self.namespace.as_str()) {
            ("", _) => f.write_str(&self.iface),
            (pod, "") => write!(f, "pod {pod} on {}", self.iface),
            (pod, namespace) => write!(f, "pod {namespace}/{pod} on {}", self.iface),
        }
    }
}

struct Attached {
    labels: Labels,
    links: MirrorLinks,
    since: Instant,
    /// The wanted pods this interface stands for.
    wanted: Vec<usize>,
    /// Attached for an `--iface` too: it stays when its pods are no longer wanted.
    by_iface: bool,
}

/// The attached interfaces, with their counters and metrics.
pub struct Attachments {
    ingress: bool,
    egress: bool,
    table: Arc<IfaceTable>,
    metrics: Metrics,
    attached: BTreeMap<u32, Attached>,
    retiring: Vec<(Instant, u32, Labels)>,
}

impl Attachments {
    pub fn new(ingress: bool, egress: bool, table: Arc<IfaceTable>, metrics: Metrics) -> Self {
        Self {
            ingress,
            egress,
            table,
            metrics,
            attached: BTreeMap::new(),
            retiring: Vec::new(),
        }
    }

    pub fn contains(&self, ifindex: u32) -> bool {
        self.attached.contains_key(&ifindex)
    }

    /// What is mirrored now, for messages.
    pub fn labels(&self) -> impl Iterator<Item = &Labels> {
        self.attached.values().map(|a| &a.labels)
    }

    /// Whether wanted pod `wanted` has an attached interface.
    pub fn covers(&self, wanted: usize) -> bool {
        self.attached.values().any(|a| a.wanted.contains(&wanted))
    }

    /// Attaches the cloning programs to `ifindex` (named `labels.iface`).
    pub fn attach(
        &mut self,
        programs: &mut Programs,
        ifindex: u32,
        labels: Labels,
        wanted: Option<usize>,
    ) -> anyhow::Result<()> {
        if let Some(attached) = self.attached.get_mut(&ifindex) {
            match wanted {
                Some(wanted) if !attached.wanted.contains(&wanted) => {
                    attached.wanted.push(wanted);
                }
                Some(_) => {}
                None => attached.by_iface = true,
            }
            return Ok(());
        }
        let counter = |direction| {
            self.metrics
                .captured_pod(&labels.iface, direction, &labels.pod, &labels.namespace)
        };
        let ((ip, ib), (ep, eb)) = (counter("ingress"), counter("egress"));
        self.table.insert(IfaceCounters {
            ifindex,
            packets: [ip, ep],
            bytes: [ib, eb],
        });
        match programs.attach_mirror(&labels.iface, self.ingress, self.egress) {
            Ok(links) => {
                self.metrics.attach.inc();
                self.metrics.attached_interfaces.inc();
                self.attached.insert(
                    ifindex,
                    Attached {
                        labels,
                        links,
                        since: Instant::now(),
                        by_iface: wanted.is_none(),
                        wanted: wanted.into_iter().collect(),
                    },
                );
                Ok(())
            }
            Err(e) => {
                self.metrics.attach_errors.inc();
                self.table.remove(ifindex);
                self.forget(&labels);
                Err(e)
            }
        }
    }

    /// Detaches `ifindex` if attached; its counters go after [`GRACE`].
    pub fn detach(
        &mut self,
        programs: &mut Programs,
        ifindex: u32,
        reason: DetachReason,
    ) -> Option<Labels> {
        let attached = self.attached.remove(&ifindex)?;
        if let Err(e) = programs.detach_mirror(attached.links) {
            say!(
                warn,
                attached.labels,
                "mirror: detaching {}: {e:#}",
                attached.labels
            );
        }
        self.metrics.attached_interfaces.dec();
        self.metrics.detached(reason).inc();
        self.retiring
            .push((Instant::now() + GRACE, ifindex, attached.labels.clone()));
        Some(attached.labels)
    }

    /// Wanted pod `wanted` is no longer wanted: detaches the interfaces that stood for it alone.
    pub fn release(&mut self, programs: &mut Programs, wanted: usize) -> Vec<Labels> {
        let mut unwanted = Vec::new();
        for (ifindex, attached) in &mut self.attached {
            if attached.wanted.contains(&wanted) {
                attached.wanted.retain(|w| *w != wanted);
                if attached.wanted.is_empty() && !attached.by_iface {
                    unwanted.push(*ifindex);
                }
            }
        }
        unwanted
            .into_iter()
            .filter_map(|ifindex| self.detach(programs, ifindex, DetachReason::Gone))
            .collect()
    }

    /// Counts and says how a newly attached pod's veth was found.
    fn found_by(&self, found: &Found, labels: &Labels, what: &str) {
        self.metrics.pod_resolved(found.method).inc();
        say!(
            info,
            labels,
            "mirror: {what} {labels} {}",
            found.method.describe()
        );
    }

    /// Drops the counters of interfaces detached more than [`GRACE`] ago.
    pub fn prune(&mut self, now: Instant) {
        let (due, keep): (Vec<_>, Vec<_>) = self.retiring.drain(..).partition(|r| r.0 <= now);
        self.retiring = keep;
        for (_, ifindex, labels) in due {
            if !self.attached.contains_key(&ifindex) {
                self.table.remove(ifindex);
            }
            self.forget(&labels);
        }
    }

    /// Forgets the series of `labels` unless an attached interface uses the same ones (a CNI
    /// that names the veth after the pod gives the restarted pod the same name).
    fn forget(&self, labels: &Labels) {
        if !self.attached.values().any(|a| a.labels == *labels) {
            self.metrics
                .forget_captured(&labels.iface, &labels.pod, &labels.namespace);
        }
    }
}

/// The attachments and when to look for pods next.
pub struct Follower {
    wanted: WantedSet,
    /// `--iface` names, attached again when a link of that name appears.
    ifaces: Vec<String>,
    pub attachments: Attachments,
    next_scan: Option<Instant>,
    backoff: Duration,
    last_scan: Instant,
    scanning: Option<oneshot::Receiver<anyhow::Result<Resolution>>>,
}

impl Follower {
    pub fn new(wanted: WantedSet, ifaces: Vec<String>, attachments: Attachments) -> Self {
        Self {
            wanted,
            ifaces,
            attachments,
            next_scan: None,
            backoff: BACKOFF_FIRST,
            last_scan: Instant::now(),
            scanning: None,
        }
    }

    /// When the next scan is due, unless one is under way.
    pub fn scan_due(&self) -> Option<Instant> {
        self.next_scan.filter(|_| self.scanning.is_none())
    }

    /// Starts a scan for the wanted pods.
    pub fn start_scan(&mut self) -> anyhow::Result<()> {
        self.next_scan = None;
        self.last_scan = Instant::now();
        self.scanning = Some(pod::resolve(self.wanted.snapshot())?);
        Ok(())
    }

    /// The result of the scan under way (pending forever when there is none).
    pub async fn scanned(&mut self) -> anyhow::Result<Resolution> {
        let Some(scanning) = &mut self.scanning else {
            return std::future::pending().await;
        };
        let result = scanning.await;
        self.scanning = None;
        result.unwrap_or_else(|_| Err(anyhow::anyhow!("the pod scan thread panicked")))
    }

    /// Once a second: counters of long-detached interfaces go, and the periodic scan.
    pub fn tick(&mut self, now: Instant) {
        self.attachments.prune(now);
        if !self.wanted.is_empty() && now >= self.last_scan + RESYNC && self.next_scan.is_none() {
            self.next_scan = Some(now);
        }
    }

    /// Attaches to what a scan found (at start: errors are fatal).
    pub fn attach_found(
        &mut self,
        programs: &mut Programs,
        resolution: &Resolution,
    ) -> anyhow::Result<()> {
        for found in &resolution.found {
            let new = !self.attachments.contains(found.ifindex);
            let labels = Labels::of(found);
            self.attachments
                .attach(programs, found.ifindex, labels.clone(), Some(found.wanted))?;
            if new {
                self.attachments.found_by(found, &labels, "found");
            }
        }
        Ok(())
    }

    pub fn on_link_event(&mut self, programs: &mut Programs, event: LinkEvent) {
        match event {
            LinkEvent::Removed(link) => {
                if let Some(labels) =
                    self.attachments
                        .detach(programs, link.ifindex, DetachReason::Gone)
                {
                    say!(
                        info,
                        labels,
                        "mirror: detached {labels}: the interface is gone"
                    );
                    // Its pod may come back under a new veth.
                    self.soon();
                }
            }
            LinkEvent::Changed(link) => {
                if self.attachments.contains(link.ifindex)
                    || link.name == veth::NEAR
                    || link.name == veth::FAR
                {
                    return;
                }
                if self.ifaces.contains(&link.name) {
                    let labels = Labels::iface(&link.name);
                    match self
                        .attachments
                        .attach(programs, link.ifindex, labels.clone(), None)
                    {
                        Ok(()) => say!(info, labels, "mirror: attached {labels}"),
                        Err(e) => say!(warn, labels, "mirror: attaching {labels}: {e:#}"),
                    }
                } else if link.veth {
                    self.soon();
                }
            }
        }
    }

    /// Applies a scan: detaches what vanished unnoticed, attaches what is new, and schedules the
    /// next scan while a wanted pod is missing.
    pub fn on_scanned(&mut self, programs: &mut Programs, result: anyhow::Result<Resolution>) {
        let resolution = match result {
            Ok(resolution) => resolution,
            Err(e) => {
                tracing::warn!("mirror: looking for pods: {e:#}");
                self.retry();
                return;
            }
        };
        let started = resolution.started.unwrap_or_else(Instant::now);
        let vanished: Vec<u32> = self
            .attachments
            .attached
            .iter()
            .filter(|(ifindex, a)| a.since < started && !resolution.node_links.contains(ifindex))
            .map(|(ifindex, _)| *ifindex)
            .collect();
        for ifindex in vanished {
            if let Some(labels) = self
                .attachments
                .detach(programs, ifindex, DetachReason::Gone)
            {
                say!(
                    info,
                    labels,
                    "mirror: detached {labels}: the interface is gone"
                );
            }
        }
        let mut failed = false;
        // A pod the API dropped while the scan ran is not attached again.
        for found in resolution
            .found
            .iter()
            .filter(|f| self.wanted.contains(f.wanted))
        {
            let new = !self.attachments.contains(found.ifindex);
            let labels = Labels::of(found);
            match self.attachments.attach(
                programs,
                found.ifindex,
                labels.clone(),
                Some(found.wanted),
            ) {
                Ok(()) if new => self.attachments.found_by(found, &labels, "attached"),
                Ok(()) => {}
                Err(e) => {
                    say!(warn, labels, "mirror: attaching {labels}: {e:#}");
                    failed = true;
                }
            }
        }
        let missing = self.wanted.ids().any(|w| !self.attachments.covers(w));
        if failed || missing {
            self.retry();
        } else {
            self.backoff = BACKOFF_FIRST;
        }
    }

    /// What the Kubernetes API says of a pod: a pod that is gone is detached (unless its veth
    /// also stands for another wanted pod or an `--iface`), a new one is looked for.
    pub fn on_pod_update(&mut self, programs: &mut Programs, update: PodUpdate) {
        let change = self.wanted.apply(update);
        if let Some(removed) = change.removed {
            for labels in self.attachments.release(programs, removed) {
                say!(
                    info,
                    labels,
                    "mirror: detached {labels}: the Kubernetes API no longer lists the pod as running on this node"
                );
            }
        }
        if change.added.is_some() {
            self.soon();
        }
    }

    /// A scan shortly, with the back-off started afresh.
    fn soon(&mut self) {
        if self.wanted.is_empty() {
            return;
        }
        self.backoff = BACKOFF_FIRST;
        let at = Instant::now() + DEBOUNCE;
        self.next_scan = Some(self.next_scan.map_or(at, |next| next.min(at)));
    }

    /// Another scan after the back-off, unless it is exhausted (then events and [`RESYNC`]).
    fn retry(&mut self) {
        if self.backoff > BACKOFF_MAX || self.next_scan.is_some() {
            return;
        }
        self.next_scan = Some(Instant::now() + self.backoff);
        self.backoff *= 2;
    }
}
