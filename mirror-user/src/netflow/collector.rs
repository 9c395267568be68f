//! Sending NetFlow datagrams to the collectors, and the flow meter as the data path drives it:
//! frames in, expiry once a second, everything exported at the end.
use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket},
    os::fd::{AsFd, BorrowedFd},
    time::Duration,
};

use prometheus::{IntCounter, IntGauge};

use super::{
    CacheConfig, ExportTime, ExporterConfig, Exporters, FlowMeter, Interfaces, IpfixConfig,
    ipfix::data_records,
};
use crate::{
    metrics::Metrics,
    wire::netflow_v5::{Packet, SamplingMode},
};

/// A flow export format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NetflowVersion {
    /// NetFlow v5: IPv4 flows only.
    V5,
    /// IPFIX (RFC 7011), version number 10.
    Ipfix,
}

impl NetflowVersion {
    /// The version number in the datagram header, and in the metrics' `version` label.
    pub const fn number(self) -> u16 {
        match self {
            NetflowVersion::V5 => 5,
            NetflowVersion::Ipfix => 10,
        }
    }
}

impl core::fmt::Display for NetflowVersion {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", self.number())
    }
}

/// Bytes of IPv4 and UDP headers, and of IPv6 and UDP headers, in front of a datagram.
const IPV4_UDP_LEN: usize = 28;
const IPV6_UDP_LEN: usize = 48;

/// One collector: a connected UDP socket (so that an ICMP port unreachable comes back as
/// `ECONNREFUSED` on a later send), the version it gets and its counters.
struct Collector {
    socket: UdpSocket,
    version: NetflowVersion,
    records: IntCounter,
    datagrams: IntCounter,
    errors: IntCounter,
}

/// Every collector; each datagram goes to all of them that take its version.
pub struct Collectors {
    collectors: Vec<Collector>,
    /// The largest IPFIX message every IPFIX collector's path carries unfragmented.
    ipfix_max_message_len: usize,
}

impl Collectors {
    /// Sockets towards `addrs`, carrying `mark` like every packet of the agent.
    pub fn connect(
        addrs: &[(SocketAddr, NetflowVersion)],
        mark: u32,
        metrics: &Metrics,
    ) -> io::Result<Self> {
        let mut collectors = Vec::new();
        let mut ipfix_max_message_len = IpfixConfig::default().max_message_len;
        for &(addr, version) in addrs {
            let unspecified = match addr.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            };
            let socket = UdpSocket::bind((unspecified, 0))?;
            crate::sockopt::set_mark(socket.as_fd(), mark)?;
            socket.connect(addr)?;
            socket.set_nonblocking(true)?;
            if version == NetflowVersion::Ipfix
                && let Some(len) = path_payload(&socket, addr)
            {
                ipfix_max_message_len = ipfix_max_message_len.min(len);
            }
            let label = addr.to_string();
            let (records, datagrams, errors) =
                metrics.netflow(&label, &version.number().to_string());
            collectors.push(Collector {
                socket,
                version,
                records,
                datagrams,
                errors,
            });
        }
        Ok(Self {
            collectors,
            ipfix_max_message_len,
        })
    }

    fn has(&self, version: NetflowVersion) -> bool {
        self.collectors.iter().any(|c| c.version == version)
    }

    pub fn sockets(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        self.collectors.iter().map(|c| c.socket.as_fd())
    }

    /// Sends one datagram, v5 or IPFIX by its version field, to every collector of that
    /// version; a failure (collector unreachable, buffer full) is counted and the next
    /// datagram tried as usual.
    fn send(&self, datagram: &[u8]) {
        let (version, records) = match datagram.first_chunk::<2>().map(|v| u16::from_be_bytes(*v)) {
            Some(5) => (
                NetflowVersion::V5,
                u64::from(Packet::new_unchecked(datagram).count()),
            ),
            Some(10) => (NetflowVersion::Ipfix, data_records(datagram)),
            _ => return,
        };
        for collector in self.collectors.iter().filter(|c| c.version == version) {
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

/// The UDP payload the path of a connected socket carries unfragmented: its path MTU less
/// the IP and UDP headers, if the kernel knows the MTU.
fn path_payload(socket: &UdpSocket, addr: SocketAddr) -> Option<usize> {
    let (level, name, headers) = match addr {
        SocketAddr::V4(_) => (libc::IPPROTO_IP, libc::IP_MTU, IPV4_UDP_LEN),
        SocketAddr::V6(_) => (libc::IPPROTO_IPV6, libc::IPV6_MTU, IPV6_UDP_LEN),
    };
    let mtu: libc::c_int = crate::sockopt::get(socket.as_fd(), level, name).ok()?;
    usize::try_from(mtu).ok()?.checked_sub(headers)
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
    /// IPFIX observation domain id.
    pub ipfix_domain: u32,
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
        let exporters = Exporters {
            v5: collectors.has(NetflowVersion::V5).then_some(exporter),
            ipfix: collectors
                .has(NetflowVersion::Ipfix)
                .then_some(IpfixConfig {
                    domain: settings.ipfix_domain,
                    max_message_len: collectors.ipfix_max_message_len,
                    ..IpfixConfig::default()
                }),
        };
        let meter =
            FlowMeter::with_exporters(cache, exporters).map_err(|e| anyhow::anyhow!("{e}"))?;
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
        // IPv4 and IPv6 flows alike.
        let (cache, cache6) = (counters.cache, counters.cache6);
        let expired = [
            cache.expired_inactive + cache6.expired_inactive,
            cache.expired_active + cache6.expired_active,
            cache.expired_tcp_end + cache6.expired_tcp_end,
            cache.expired_emergency + cache6.expired_emergency,
            cache.expired_counter_full + cache6.expired_counter_full,
            cache.flushed + cache6.flushed,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_payload_is_the_mtu_less_the_headers() {
        // Loopback's MTU is 65536; IPv4 reports it capped at 65535 (IP_MAX_MTU), IPv6 not.
        for (bind, addr, mtu) in [
            ("127.0.0.1:0", "127.0.0.1:9", 65535),
            ("[::1]:0", "[::1]:9", 65536),
        ] {
            let Ok(socket) = UdpSocket::bind(bind) else {
                continue; // no IPv6 on this host
            };
            let addr: SocketAddr = addr.parse().unwrap();
            socket.connect(addr).unwrap();
            let headers = if addr.is_ipv4() {
                IPV4_UDP_LEN
            } else {
                IPV6_UDP_LEN
            };
            assert_eq!(path_payload(&socket, addr), Some(mtu - headers), "{addr}");
        }
    }
}
