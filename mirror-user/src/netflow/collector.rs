//! Sending NetFlow datagrams to the collectors, and the flow meter as the data path drives it:
//! frames in, expiry once a second, everything exported at the end.
use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket},
    os::fd::{AsFd, BorrowedFd},
    time::Duration,
};

use prometheus::{IntCounter, IntGauge};

use super::{CacheConfig, ExportTime, ExporterConfig, FlowMeter, Interfaces};
use crate::{
    metrics::Metrics,
    wire::netflow_v5::{Packet, SamplingMode},
};

/// One collector: a connected UDP socket (so that an ICMP port unreachable comes back as
/// `ECONNREFUSED` on a later send) and its counters.
struct Collector {
    socket: UdpSocket,
    records: IntCounter,
    datagrams: IntCounter,
    errors: IntCounter,
}

/// Every collector; each datagram goes to all of them.
pub struct Collectors {
    collectors: Vec<Collector>,
}

impl Collectors {
    /// Sockets towards `addrs`, carrying `mark` like every packet of the agent.
    pub fn connect(addrs: &[SocketAddr], mark: u32, metrics: &Metrics) -> io::Result<Self> {
        let mut collectors = Vec::new();
        for addr in addrs {
            let unspecified = match addr.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            };
            let socket = UdpSocket::bind((unspecified, 0))?;
            crate::sockopt::set_mark(socket.as_fd(), mark)?;
            socket.connect(addr)?;
            socket.set_nonblocking(true)?;
            let label = addr.to_string();
            let (records, datagrams, errors) = metrics.netflow(&label);
            collectors.push(Collector {
                socket,
                records,
                datagrams,
                errors,
            });
        }
        Ok(Self { collectors })
    }

    pub fn sockets(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        self.collectors.iter().map(|c| c.socket.as_fd())
    }

    /// Sends one datagram to every collector; a failure (collector unreachable, buffer full) is
    /// counted and the next datagram tried as usual.
    fn send(&self, datagram: &[u8]) {
        let records = u64::from(Packet::new_unchecked(datagram).count());
        for collector in &self.collectors {
            match collector.socket.send(datagram) {
                Ok(_) => {
                    collector.datagrams.inc();
                    collector.records.inc_by(records);
                }
                Err(_) => collector.errors.inc(),
            }
        }
    }
}

/// NetFlow settings taken from the command line.
#[derive(Clone, Copy, Debug)]
pub struct FlowSettings {
    pub inactive: Duration,
    pub active: Duration,
    pub max_flows: usize,
    pub engine_type: u8,
    pub engine_id: u8,
    /// 1-in-N sampling of the copies (1: none).
    pub sample: u32,
}

/// The flow meter with its collectors, clock and metrics. All times are Unix-epoch nanoseconds;
/// sysUptime counts from the first time given (the agent's start, or a replay's first packet).
pub struct FlowExport {
    meter: FlowMeter,
    collectors: Collectors,
    start_ns: Option<u64>,
    metrics: FlowMetrics,
}

struct FlowMetrics {
    active: IntGauge,
    /// (counter, value already added) per expiry reason and skip reason.
    expired: Vec<(IntCounter, u64)>,
    skipped: Vec<(IntCounter, u64)>,
    /// IPv6 flows, and how many were already added.
    ipv6_flows: (IntCounter, u64),
}

impl FlowExport {
    pub fn new(
        settings: FlowSettings,
        collectors: Collectors,
        metrics: &Metrics,
    ) -> anyhow::Result<Self> {
        let exporter = ExporterConfig {
            engine_type: settings.engine_type,
            engine_id: settings.engine_id,
            ..Default::default()
        };
        let exporter = if settings.sample > 1 {
            exporter
                .sampled(SamplingMode::Random, settings.sample)
                .map_err(|e| anyhow::anyhow!("{e}"))?
        } else {
            exporter
        };
        let cache = CacheConfig {
            inactive_timeout: settings.inactive,
            active_timeout: settings.active,
            max_flows: settings.max_flows,
        };
        let meter = FlowMeter::new(cache, exporter).map_err(|e| anyhow::anyhow!("{e}"))?;
        let expired = [
            "inactive",
            "active",
            "tcp_end",
            "emergency",
            "counter_full",
            "flush",
        ]
        .into_iter()
        .map(|reason| (metrics.netflow_expired(reason), 0))
        .collect();
        let skipped = ["ipv6", "not_ip", "malformed"]
            .into_iter()
            .map(|reason| (metrics.netflow_skipped(reason), 0))
            .collect();
        Ok(Self {
            meter,
            collectors,
            start_ns: None,
            metrics: FlowMetrics {
                active: metrics.netflow_active_flows.clone(),
                expired,
                skipped,
                ipv6_flows: (metrics.netflow_unexportable("ipv6"), 0),
            },
        })
    }

    pub fn sockets(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        self.collectors.sockets()
    }

    fn time(&mut self, now_ns: u64) -> ExportTime {
        let start = *self.start_ns.get_or_insert(now_ns);
        ExportTime::since(
            Duration::from_nanos(start),
            Duration::from_nanos(now_ns.saturating_sub(start)),
        )
    }

    /// Counts a batch of frames seen at `now_ns`, each with the interfaces it was seen on.
    pub fn observe<'a>(
        &mut self,
        frames: impl IntoIterator<Item = (&'a [u8], Interfaces)>,
        now_ns: u64,
    ) {
        let now = self.time(now_ns);
        let collectors = &self.collectors;
        self.meter
            .packets(frames, now, &mut |datagram| collectors.send(datagram));
    }

    /// Exports what has expired by `now_ns`; call about once a second.
    pub fn tick(&mut self, now_ns: u64) {
        let now = self.time(now_ns);
        let collectors = &self.collectors;
        self.meter
            .expire(now, &mut |datagram| collectors.send(datagram));
        self.update_metrics();
    }

    /// Exports every flow: nothing counted is lost at shutdown or at the end of a replay.
    pub fn finish(&mut self, now_ns: u64) {
        let now = self.time(now_ns);
        let collectors = &self.collectors;
        self.meter
            .flush(now, &mut |datagram| collectors.send(datagram));
        self.update_metrics();
    }

    fn update_metrics(&mut self) {
        let counters = self.meter.counters();
        self.metrics
            .active
            .set(i64::try_from(counters.active_flows).unwrap_or(i64::MAX));
        let cache = counters.cache;
        let expired = [
            cache.expired_inactive,
            cache.expired_active,
            cache.expired_tcp_end,
            cache.expired_emergency,
            cache.expired_counter_full,
            cache.flushed,
        ];
        let skipped = [
            counters.skipped.ipv6,
            counters.skipped.not_ip,
            counters.skipped.malformed,
        ];
        for ((metric, seen), now) in self
            .metrics
            .expired
            .iter_mut()
            .chain(&mut self.metrics.skipped)
            .chain(std::iter::once(&mut self.metrics.ipv6_flows))
            .zip(
                expired
                    .into_iter()
                    .chain(skipped)
                    .chain([counters.ipv6_flows]),
            )
        {
            metric.inc_by(now.saturating_sub(*seen));
            *seen = now;
        }
    }
}
