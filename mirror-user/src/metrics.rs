//! Prometheus metrics and the HTTP endpoint that serves them.
use std::{fmt, net::SocketAddr};

use anyhow::Context as _;
use axum::{Router, http::header, response::IntoResponse, routing::get};
use prometheus::{
    Encoder as _, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
    core::{Collector, Desc},
    proto::MetricFamily,
};

use crate::send::Outcome;

/// Every metric of the agent. Counter names end in `_total`; all start with `mirror_`.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// What became of the captured copies (sent, dropped after capture): gathered before
    /// [`Metrics::registry`], so that a scrape never shows more of them than copies captured
    /// (a capture thread counts a batch captured before its outcomes).
    outcomes: Registry,
    captured_packets: IntCounterVec,
    captured_bytes: IntCounterVec,
    sent_copies: IntCounterVec,
    dropped_copies: IntCounterVec,
    sent_packets: IntCounterVec,
    sent_bytes: IntCounterVec,
    dropped: IntCounterVec,
    truncated: IntCounterVec,
    filter_packets: IntCounterVec,
    kernel_copies: IntCounterVec,
    thread_copies: IntCounterVec,
    send_path: IntGaugeVec,
    netflow_records: IntCounterVec,
    netflow_datagrams: IntCounterVec,
    netflow_errors: IntCounterVec,
    netflow_expired: IntCounterVec,
    netflow_skipped: IntCounterVec,
    netflow_unexportable: IntCounterVec,
    pub netflow_active_flows: IntGauge,
    pub attached_interfaces: IntGauge,
    /// Copies sent in IP fragments (`--oversize fragment`).
    pub fragmented: IntCounter,
    /// Interfaces attached to since the start (pods followed through restarts count each time).
    pub attach: IntCounter,
    /// Attachments that failed (the interface vanished meanwhile, ...).
    pub attach_errors: IntCounter,
    detach: IntCounterVec,
    pod_resolved: IntCounterVec,
    /// Captured copies of series forgotten since the start (interfaces no longer mirrored), so
    /// that [`Metrics::totals`] still counts them.
    forgotten_captured: IntCounter,
}

/// Why an interface stopped being mirrored (the `reason` label of `mirror_detach_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DetachReason {
    /// The interface was deleted (its pod went away) or left the node's namespace.
    Gone,
}

impl DetachReason {
    pub const ALL: [Self; 1] = [Self::Gone];

    pub fn label(self) -> &'static str {
        match self {
            Self::Gone => "gone",
        }
    }
}

/// The labels of the captured counters. `pod` and `namespace` are left out of the output when
/// not known (an `--iface`, or a pod found without its Kubernetes namespace): for Prometheus an
/// empty label and a missing one are the same thing, and series stay short.
#[derive(Clone)]
struct OmitEmptyLabels(IntCounterVec);

impl Collector for OmitEmptyLabels {
    fn desc(&self) -> Vec<&Desc> {
        self.0.desc()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let mut families = self.0.collect();
        for family in &mut families {
            for metric in family.mut_metric() {
                let mut labels = metric.take_label();
                labels.retain(|l| !l.value().is_empty());
                metric.set_label(labels);
            }
        }
        families
    }
}

/// The copies of one interface and direction: how many were captured and what became of each.
/// `captured` = `sent` + `filtered` + `too_big` + `send_error`, exactly once nothing is in
/// flight (the capture thread counts a batch captured before it knows the outcomes).
#[derive(Clone)]
pub struct CopyCounters {
    /// `mirror_captured_packets_total`.
    pub captured: IntCounter,
    /// `mirror_sent_copies_total`.
    pub sent: IntCounter,
    /// `mirror_dropped_copies_total` by reason.
    pub filtered: IntCounter,
    pub too_big: IntCounter,
    pub send_error: IntCounter,
}

impl CopyCounters {
    /// Adds what the sender made of a batch and the copies `--filter` left out of it.
    pub fn add(&self, outcome: &Outcome, filtered: u64) {
        for (counter, n) in [
            (&self.sent, outcome.sent),
            (&self.too_big, outcome.too_big),
            (&self.send_error, outcome.send_error),
            (&self.filtered, filtered),
        ] {
            if n > 0 {
                counter.inc_by(n);
            }
        }
    }
}

/// Why a copy was not delivered (the `reason` label of `mirror_dropped_packets_total`).
#[derive(Clone, Copy, Debug)]
pub enum DropReason {
    /// The AF_XDP ring had no room: the agent did not keep up.
    RingFull,
    /// The outer packet would exceed the path MTU (with `--oversize drop`), or the frame the
    /// mirror veth's size.
    TooBig,
    /// The kernel refused the send (no route, interface down, ...).
    SendError,
    /// `bpf_clone_redirect` failed.
    CloneFailed,
    /// The copy reached user space without a valid tag.
    Malformed,
    /// `--filter` did not match the packet.
    Filtered,
}

impl DropReason {
    /// The reasons a copy is dropped after it was captured (the `reason` label of
    /// `mirror_dropped_copies_total`); the others lose it before, or without a known interface.
    pub const AFTER_CAPTURE: [Self; 3] = [Self::Filtered, Self::TooBig, Self::SendError];

    pub const ALL: [Self; 6] = [
        Self::RingFull,
        Self::TooBig,
        Self::SendError,
        Self::CloneFailed,
        Self::Malformed,
        Self::Filtered,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Self::RingFull => "ring_full",
            Self::TooBig => "too_big",
            Self::SendError => "send_error",
            Self::CloneFailed => "clone_failed",
            Self::Malformed => "malformed",
            Self::Filtered => "filtered",
        }
    }
}

impl Metrics {
    #[expect(
        clippy::too_many_lines,
        reason = "one registration per metric, in the order of the struct"
    )]
    pub fn new() -> anyhow::Result<Self> {
        let registry = Registry::new();
        let outcomes = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| -> anyhow::Result<IntCounterVec> {
            let vec = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(vec.clone()))?;
            Ok(vec)
        };
        let gauge = |name: &str, help: &str| -> anyhow::Result<IntGauge> {
            let gauge = IntGauge::new(name, help)?;
            registry.register(Box::new(gauge.clone()))?;
            Ok(gauge)
        };
        let single = |name: &str, help: &str| -> anyhow::Result<IntCounter> {
            let counter = IntCounter::new(name, help)?;
            registry.register(Box::new(counter.clone()))?;
            Ok(counter)
        };
        let per_iface = |registry: &Registry,
                         name: &str,
                         help: &str,
                         extra: &[&str]|
         -> anyhow::Result<IntCounterVec> {
            let mut labels = vec!["iface", "direction", "pod", "namespace"];
            labels.extend_from_slice(extra);
            let vec = IntCounterVec::new(Opts::new(name, help), &labels)?;
            registry.register(Box::new(OmitEmptyLabels(vec.clone())))?;
            Ok(vec)
        };
        let captured = |name: &str, help: &str| per_iface(&registry, name, help, &[]);
        let build_info = IntGaugeVec::new(
            Opts::new(
                "mirror_build_info",
                "Always 1; the agent's version in the label",
            ),
            &["version"],
        )?;
        registry.register(Box::new(build_info.clone()))?;
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        let metrics = Self {
            captured_packets: captured(
                "mirror_captured_packets_total",
                "Copies read from the mirrored interfaces (pod and namespace where known)",
            )?,
            captured_bytes: captured(
                "mirror_captured_bytes_total",
                "Bytes of the copied frames (Ethernet header included)",
            )?,
            sent_copies: per_iface(
                &outcomes,
                "mirror_sent_copies_total",
                "Captured copies sent to every remote due to get them (with --oversize fragment: all their fragments)",
                &[],
            )?,
            dropped_copies: per_iface(
                &outcomes,
                "mirror_dropped_copies_total",
                "Captured copies not sent, by reason (filtered, too_big, send_error); with the sent ones they add up to mirror_captured_packets_total",
                &["reason"],
            )?,
            sent_packets: counter(
                "mirror_sent_packets_total",
                "Tunnel packets sent",
                &["tunnel", "remote"],
            )?,
            sent_bytes: counter(
                "mirror_sent_bytes_total",
                "Bytes of the tunnel packets sent (outer IP header included)",
                &["tunnel", "remote"],
            )?,
            dropped: counter(
                "mirror_dropped_packets_total",
                "Copies not delivered, by reason",
                &["reason"],
            )?,
            truncated: counter(
                "mirror_truncated_packets_total",
                "Copies sent with their inner frame cut, by reason (snaplen, mtu)",
                &["reason"],
            )?,
            filter_packets: counter(
                "mirror_filter_packets_total",
                "Packets --filter ran on, by where it ran (kernel: before the clone; user: on the copy) and its verdict (kept, left_out)",
                &["path", "verdict"],
            )?,
            kernel_copies: counter(
                "mirror_kernel_copies_total",
                "Copies the classifiers made, by how they reach the agent: ring (written into the BPF ring buffer) or clone (cloned through the mirror veth)",
                &["path"],
            )?,
            thread_copies: counter(
                "mirror_capture_thread_copies_total",
                "Copies each capture thread read from its ring buffer (and, the first, from the mirror veth), by the CPU it is pinned to (--cpus)",
                &["cpu"],
            )?,
            send_path: {
                let vec = IntGaugeVec::new(
                    Opts::new(
                        "mirror_remote_send_path",
                        "Senders (capture threads; 1 for a replay) whose copies to the remote leave this way now: af_xdp (the uplink's AF_XDP transmit ring) or socket (the raw socket)",
                    ),
                    &["remote", "path"],
                )?;
                registry.register(Box::new(vec.clone()))?;
                vec
            },
            netflow_records: counter(
                "mirror_netflow_records_total",
                "Flow records sent, per collector and version (5: NetFlow v5, 10: IPFIX)",
                &["collector", "version"],
            )?,
            netflow_datagrams: counter(
                "mirror_netflow_datagrams_total",
                "NetFlow v5 datagrams or IPFIX messages sent, per collector and version",
                &["collector", "version"],
            )?,
            netflow_errors: counter(
                "mirror_netflow_export_errors_total",
                "Datagrams that could not be sent (collector unreachable, ...), per collector and version",
                &["collector", "version"],
            )?,
            netflow_expired: counter(
                "mirror_netflow_expired_flows_total",
                "Flows exported, by why they ended: inactive, active, tcp_end, emergency (cache full), counter_full, flush (shutdown)",
                &["reason"],
            )?,
            netflow_skipped: counter(
                "mirror_netflow_skipped_packets_total",
                "Copies counted in no flow: ipv6 (without IPFIX), not_ip, malformed",
                &["reason"],
            )?,
            netflow_unexportable: counter(
                "mirror_netflow_unexportable_flows_total",
                "Flows NetFlow v5 cannot describe, counted instead of exported: ipv6",
                &["reason"],
            )?,
            netflow_active_flows: gauge(
                "mirror_netflow_active_flows",
                "Flows in the NetFlow cache",
            )?,
            attached_interfaces: gauge("mirror_attached_interfaces", "Interfaces being mirrored")?,
            fragmented: {
                let counter = IntCounter::new(
                    "mirror_fragmented_packets_total",
                    "Copies sent in IP fragments because they exceeded the path MTU",
                )?;
                registry.register(Box::new(counter.clone()))?;
                counter
            },
            attach: single(
                "mirror_attach_total",
                "Attachments to an interface (a pod followed through a restart counts again)",
            )?,
            attach_errors: single(
                "mirror_attach_errors_total",
                "Attachments that failed (the interface vanished meanwhile, ...)",
            )?,
            detach: counter(
                "mirror_detach_total",
                "Interfaces no longer mirrored, by reason (gone: deleted or left the namespace)",
                &["reason"],
            )?,
            pod_resolved: counter(
                "mirror_pod_resolved_total",
                "Pods whose veth was found and attached, by how it was found (route, bridge, namespace)",
                &["method"],
            )?,
            forgotten_captured: IntCounter::new("forgotten", "not registered")?,
            registry,
            outcomes,
        };
        for reason in DetachReason::ALL {
            metrics.detached(reason);
        }
        for method in crate::pod::Method::ALL {
            metrics.pod_resolved(method);
        }
        // Every reason shows from the start, at zero, so dashboards and alerts see the series.
        for reason in DropReason::ALL {
            metrics.dropped(reason);
        }
        for reason in ["snaplen", "mtu"] {
            metrics.truncated(reason);
        }
        Ok(metrics)
    }

    /// The copies and captured bytes of an interface and direction.
    pub fn captured(&self, iface: &str, direction: &str) -> (CopyCounters, IntCounter) {
        self.captured_pod(iface, direction, "", "")
    }

    /// [`Metrics::captured`] of a pod's interface; an empty `pod` or `namespace` is not shown.
    /// Every series shows from the start, at zero.
    pub fn captured_pod(
        &self,
        iface: &str,
        direction: &str,
        pod: &str,
        namespace: &str,
    ) -> (CopyCounters, IntCounter) {
        let labels = [iface, direction, pod, namespace];
        let dropped = |reason: DropReason| {
            self.dropped_copies.with_label_values(&[
                iface,
                direction,
                pod,
                namespace,
                reason.label(),
            ])
        };
        (
            CopyCounters {
                captured: self.captured_packets.with_label_values(&labels),
                sent: self.sent_copies.with_label_values(&labels),
                filtered: dropped(DropReason::Filtered),
                too_big: dropped(DropReason::TooBig),
                send_error: dropped(DropReason::SendError),
            },
            self.captured_bytes.with_label_values(&labels),
        )
    }

    /// Drops the captured series of an interface that is no longer mirrored, so that pods
    /// coming and going do not pile series up.
    pub fn forget_captured(&self, iface: &str, pod: &str, namespace: &str) {
        for direction in ["ingress", "egress"] {
            let labels = [iface, direction, pod, namespace];
            if let Ok(series) = self.captured_packets.get_metric_with_label_values(&labels) {
                self.forgotten_captured.inc_by(series.get());
            }
            let _ = self.captured_packets.remove_label_values(&labels);
            let _ = self.captured_bytes.remove_label_values(&labels);
            let _ = self.sent_copies.remove_label_values(&labels);
            for reason in DropReason::AFTER_CAPTURE {
                let _ = self.dropped_copies.remove_label_values(&[
                    iface,
                    direction,
                    pod,
                    namespace,
                    reason.label(),
                ]);
            }
        }
    }

    pub fn detached(&self, reason: DetachReason) -> IntCounter {
        self.detach.with_label_values(&[reason.label()])
    }

    /// A pod's veth found (by `method`) and attached.
    pub fn pod_resolved(&self, method: crate::pod::Method) -> IntCounter {
        self.pod_resolved.with_label_values(&[method.label()])
    }

    pub fn sent(&self, tunnel: &str, remote: &str) -> (IntCounter, IntCounter) {
        (
            self.sent_packets.with_label_values(&[tunnel, remote]),
            self.sent_bytes.with_label_values(&[tunnel, remote]),
        )
    }

    /// The `mirror_remote_send_path` gauges of `remote`: AF_XDP's and the raw socket's.
    pub fn send_path(&self, remote: &str) -> crate::transmit::xdp::PathGauges {
        crate::transmit::xdp::PathGauges {
            af_xdp: self.send_path.with_label_values(&[remote, "af_xdp"]),
            socket: self.send_path.with_label_values(&[remote, "socket"]),
        }
    }

    pub fn dropped(&self, reason: DropReason) -> IntCounter {
        self.dropped.with_label_values(&[reason.label()])
    }

    /// Packets `--filter` judged, by `path` (`kernel`, `user`) and `verdict` (`kept`, `left_out`).
    pub fn filter_packets(&self, path: &str, verdict: &str) -> IntCounter {
        self.filter_packets.with_label_values(&[path, verdict])
    }

    /// Copies the classifiers made, by `path` (`ring`, `clone`).
    pub fn kernel_copies(&self, path: &str) -> IntCounter {
        self.kernel_copies.with_label_values(&[path])
    }

    /// Copies the capture thread on `cpu` read.
    pub fn thread_copies(&self, cpu: usize) -> IntCounter {
        self.thread_copies.with_label_values(&[&cpu.to_string()])
    }

    /// Copies cut by `--snaplen` (`snaplen`) or to fit the path MTU (`mtu`).
    pub fn truncated(&self, reason: &str) -> IntCounter {
        self.truncated.with_label_values(&[reason])
    }

    /// Records, datagrams and errors of one NetFlow collector, of `version` (5 or 10).
    pub fn netflow(&self, collector: &str, version: &str) -> (IntCounter, IntCounter, IntCounter) {
        (
            self.netflow_records
                .with_label_values(&[collector, version]),
            self.netflow_datagrams
                .with_label_values(&[collector, version]),
            self.netflow_errors.with_label_values(&[collector, version]),
        )
    }

    pub fn netflow_expired(&self, reason: &str) -> IntCounter {
        self.netflow_expired.with_label_values(&[reason])
    }

    pub fn netflow_unexportable(&self, reason: &str) -> IntCounter {
        self.netflow_unexportable.with_label_values(&[reason])
    }

    pub fn netflow_skipped(&self, reason: &str) -> IntCounter {
        self.netflow_skipped.with_label_values(&[reason])
    }

    /// The counts since the start, for the line printed at exit.
    pub fn totals(&self) -> Totals {
        Totals {
            captured: sum(&self.captured_packets) + self.forgotten_captured.get(),
            sent: sum(&self.sent_packets),
            dropped: DropReason::ALL.map(|reason| (reason.label(), self.dropped(reason).get())),
            netflow: (sum_series(&self.netflow_datagrams) > 0).then(|| {
                (
                    sum(&self.netflow_records),
                    sum(&self.netflow_datagrams),
                    sum(&self.netflow_errors),
                )
            }),
        }
    }

    /// The text exposition format, as served on `/metrics`.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics.
        let _ = TextEncoder::new().encode(&self.gather(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// Every metric family, by name; the outcomes read first (see [`Metrics::outcomes`]).
    fn gather(&self) -> Vec<MetricFamily> {
        let mut families = self.outcomes.gather();
        families.extend(self.registry.gather());
        families.sort_by(|a, b| a.name().cmp(b.name()));
        families
    }
}

/// What [`Metrics::totals`] gives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Totals {
    pub captured: u64,
    /// Tunnel packets sent, to all remotes.
    pub sent: u64,
    pub dropped: [(&'static str, u64); DropReason::ALL.len()],
    /// NetFlow records, datagrams and errors, when there are collectors.
    pub netflow: Option<(u64, u64, u64)>,
}

impl fmt::Display for Totals {
    /// `captured 10 copies, sent 10 packets, dropped 0 (ring_full 0, ...)[, NetFlow ...]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dropped: u64 = self.dropped.iter().map(|(_, n)| n).sum();
        write!(
            f,
            "captured {} copies, sent {} packets, dropped {dropped} (",
            self.captured, self.sent
        )?;
        for (i, (reason, count)) in self.dropped.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{reason} {count}")?;
        }
        f.write_str(")")?;
        if let Some((records, datagrams, errors)) = self.netflow {
            write!(
                f,
                ", NetFlow {records} records in {datagrams} datagrams, {errors} export errors"
            )?;
        }
        Ok(())
    }
}

/// How many series a counter has.
fn sum_series(vec: &IntCounterVec) -> usize {
    vec.collect().iter().map(|f| f.get_metric().len()).sum()
}

/// The sum of every series of a counter.
#[expect(
    clippy::cast_sign_loss,
    reason = "integer counters, exact in f64 below 2^53"
)]
fn sum(vec: &IntCounterVec) -> u64 {
    vec.collect()
        .iter()
        .flat_map(MetricFamily::get_metric)
        .map(|m| m.get_counter().get_value())
        .sum::<f64>()
        .max(0.0) as u64
}

/// Binds `addr` now (so a bad address fails at start) and serves `/metrics` until dropped.
pub async fn serve(
    addr: SocketAddr,
    metrics: Metrics,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening for metrics on {addr}"))?;
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        TextEncoder::new().format_type().to_owned(),
                    )],
                    metrics.render(),
                )
                    .into_response()
            }
        }),
    );
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("mirror: metrics server stopped: {e}");
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts a whole batch (captured, then sent) whenever it is collected: a capture thread
    /// that runs while a scrape is under way.
    struct BatchDuringScrape {
        copies: CopyCounters,
        marker: IntCounter,
    }

    impl Collector for BatchDuringScrape {
        fn desc(&self) -> Vec<&Desc> {
            self.marker.desc()
        }

        fn collect(&self) -> Vec<MetricFamily> {
            self.copies.captured.inc_by(64);
            self.copies.sent.inc_by(64);
            self.marker.collect()
        }
    }

    fn value(text: &str, series: &str) -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in {text}"))
    }

    #[test]
    fn a_scrape_never_shows_more_copies_sent_than_captured() {
        // Each registry collects in an order of its own (a hash map's): many of them.
        for _ in 0..32 {
            let metrics = Metrics::new().unwrap();
            let (copies, _) = metrics.captured("veth1", "ingress");
            let marker = IntCounter::new("mirror_test_batches", "test").unwrap();
            metrics
                .registry
                .register(Box::new(BatchDuringScrape { copies, marker }))
                .unwrap();
            let text = metrics.render();
            let labels = "{direction=\"ingress\",iface=\"veth1\"}";
            let captured = value(&text, &format!("mirror_captured_packets_total{labels}"));
            let sent = value(&text, &format!("mirror_sent_copies_total{labels}"));
            // The batch counted during the scrape is not sent yet in it; captured, maybe.
            assert!(
                sent == 0 && captured <= 64,
                "captured {captured}, sent {sent}"
            );
        }
    }

    #[test]
    fn names_follow_the_contract() {
        let metrics = Metrics::new().unwrap();
        metrics.captured("veth1", "ingress").0.captured.inc();
        metrics.sent("vxlan", "198.18.0.2:4789").1.inc_by(100);
        let text = metrics.render();
        assert!(
            text.contains("mirror_captured_packets_total{direction=\"ingress\",iface=\"veth1\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "mirror_sent_bytes_total{remote=\"198.18.0.2:4789\",tunnel=\"vxlan\"} 100"
            ),
            "{text}"
        );
        assert!(
            text.contains("mirror_dropped_packets_total{reason=\"ring_full\"} 0"),
            "{text}"
        );
        // Per interface and direction, sent and every after-capture drop show from the start.
        assert!(
            text.contains("mirror_sent_copies_total{direction=\"ingress\",iface=\"veth1\"} 0"),
            "{text}"
        );
        for reason in ["filtered", "too_big", "send_error"] {
            assert!(
                text.contains(&format!(
                    "mirror_dropped_copies_total{{direction=\"ingress\",iface=\"veth1\",reason=\"{reason}\"}} 0"
                )),
                "{text}"
            );
        }
        assert!(
            text.contains("mirror_build_info{version=\"") && text.contains("mirror_attach_total 0"),
            "{text}"
        );
        assert!(
            text.contains("mirror_detach_total{reason=\"gone\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("mirror_pod_resolved_total{method=\"bridge\"} 0"),
            "{text}"
        );
        for line in text.lines().filter(|l| l.starts_with("# TYPE")) {
            let name = line.split_whitespace().nth(2).unwrap();
            assert!(name.starts_with("mirror_"), "{name}");
            assert_eq!(
                line.ends_with("counter"),
                name.ends_with("_total"),
                "{line}"
            );
        }
    }

    #[test]
    fn pod_labels_only_where_known() {
        let metrics = Metrics::new().unwrap();
        metrics
            .captured_pod("veth9", "egress", "coffee", "default")
            .0
            .captured
            .inc();
        metrics
            .captured_pod("veth8", "egress", "tea", "")
            .0
            .captured
            .inc();
        let text = metrics.render();
        assert!(
            text.contains(
                "mirror_captured_packets_total{direction=\"egress\",iface=\"veth9\",namespace=\"default\",pod=\"coffee\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "mirror_captured_packets_total{direction=\"egress\",iface=\"veth8\",pod=\"tea\"} 1"
            ),
            "{text}"
        );
        metrics.forget_captured("veth9", "coffee", "default");
        assert!(!metrics.render().contains("veth9"));
    }
}
