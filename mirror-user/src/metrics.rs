//! Prometheus metrics and the HTTP endpoint that serves them.
use std::net::SocketAddr;

use anyhow::Context as _;
use axum::{Router, http::header, response::IntoResponse, routing::get};
use prometheus::{Encoder as _, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

/// Every metric of the agent. Counter names end in `_total`; all start with `mirror_`.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    captured_packets: IntCounterVec,
    captured_bytes: IntCounterVec,
    sent_packets: IntCounterVec,
    sent_bytes: IntCounterVec,
    dropped: IntCounterVec,
    truncated: IntCounterVec,
    netflow_records: IntCounterVec,
    netflow_datagrams: IntCounterVec,
    netflow_errors: IntCounterVec,
    netflow_expired: IntCounterVec,
    netflow_skipped: IntCounterVec,
    pub netflow_active_flows: IntGauge,
    pub attached_interfaces: IntGauge,
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
}

impl DropReason {
    pub const ALL: [Self; 5] = [
        Self::RingFull,
        Self::TooBig,
        Self::SendError,
        Self::CloneFailed,
        Self::Malformed,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Self::RingFull => "ring_full",
            Self::TooBig => "too_big",
            Self::SendError => "send_error",
            Self::CloneFailed => "clone_failed",
            Self::Malformed => "malformed",
        }
    }
}

impl Metrics {
    pub fn new() -> anyhow::Result<Self> {
        let registry = Registry::new();
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
        let metrics = Self {
            captured_packets: counter(
                "mirror_captured_packets_total",
                "Copies read from the mirrored interfaces",
                &["iface", "direction"],
            )?,
            captured_bytes: counter(
                "mirror_captured_bytes_total",
                "Bytes of the copied frames (Ethernet header included)",
                &["iface", "direction"],
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
            netflow_records: counter(
                "mirror_netflow_records_total",
                "NetFlow v5 flow records sent, per collector",
                &["collector"],
            )?,
            netflow_datagrams: counter(
                "mirror_netflow_datagrams_total",
                "NetFlow v5 datagrams sent, per collector",
                &["collector"],
            )?,
            netflow_errors: counter(
                "mirror_netflow_export_errors_total",
                "NetFlow v5 datagrams that could not be sent (collector unreachable, ...)",
                &["collector"],
            )?,
            netflow_expired: counter(
                "mirror_netflow_expired_flows_total",
                "Flows exported, by why they ended: inactive, active, tcp_end, emergency (cache full), counter_full, flush (shutdown)",
                &["reason"],
            )?,
            netflow_skipped: counter(
                "mirror_netflow_skipped_packets_total",
                "Copies NetFlow v5 cannot describe: ipv6, not_ip, malformed",
                &["reason"],
            )?,
            netflow_active_flows: gauge(
                "mirror_netflow_active_flows",
                "Flows in the NetFlow cache",
            )?,
            attached_interfaces: gauge("mirror_attached_interfaces", "Interfaces being mirrored")?,
            registry,
        };
        // Every reason shows from the start, at zero, so dashboards and alerts see the series.
        for reason in DropReason::ALL {
            metrics.dropped(reason);
        }
        for reason in ["snaplen", "mtu"] {
            metrics.truncated(reason);
        }
        Ok(metrics)
    }

    pub fn captured(&self, iface: &str, direction: &str) -> (IntCounter, IntCounter) {
        (
            self.captured_packets.with_label_values(&[iface, direction]),
            self.captured_bytes.with_label_values(&[iface, direction]),
        )
    }

    pub fn sent(&self, tunnel: &str, remote: &str) -> (IntCounter, IntCounter) {
        (
            self.sent_packets.with_label_values(&[tunnel, remote]),
            self.sent_bytes.with_label_values(&[tunnel, remote]),
        )
    }

    pub fn dropped(&self, reason: DropReason) -> IntCounter {
        self.dropped.with_label_values(&[reason.label()])
    }

    /// Copies cut by `--snaplen` (`snaplen`) or to fit the path MTU (`mtu`).
    pub fn truncated(&self, reason: &str) -> IntCounter {
        self.truncated.with_label_values(&[reason])
    }

    /// Records, datagrams and errors of one NetFlow collector.
    pub fn netflow(&self, collector: &str) -> (IntCounter, IntCounter, IntCounter) {
        (
            self.netflow_records.with_label_values(&[collector]),
            self.netflow_datagrams.with_label_values(&[collector]),
            self.netflow_errors.with_label_values(&[collector]),
        )
    }

    pub fn netflow_expired(&self, reason: &str) -> IntCounter {
        self.netflow_expired.with_label_values(&[reason])
    }

    pub fn netflow_skipped(&self, reason: &str) -> IntCounter {
        self.netflow_skipped.with_label_values(&[reason])
    }

    /// The text exposition format, as served on `/metrics`.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metrics.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
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
            eprintln!("mirror: metrics server stopped: {e}");
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_contract() {
        let metrics = Metrics::new().unwrap();
        metrics.captured("veth1", "ingress").0.inc();
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
}
