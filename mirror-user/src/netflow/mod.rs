//! NetFlow v5 and IPFIX: mirrored frames summarised as flow records, packed into export
//! datagrams.
//!
//! [`classify`] turns a frame into a flow key ([`classify6`] an IPv6 frame), [`FlowCache`]
//! counts packets per flow and decides when a flow ends, [`Exporter`] packs the records into v5
//! datagrams and [`IpfixExporter`] into IPFIX messages. [`FlowMeter`] chains them for the
//! capture thread; sockets, timers and metrics are the caller's.
//!
//! ```
//! use mirror::netflow::{CacheConfig, ExportTime, ExporterConfig, FlowMeter, Interfaces};
//!
//! let mut meter = FlowMeter::new(CacheConfig::default(), ExporterConfig::default()).unwrap();
//! let mut datagrams = 0;
//! let frame = [0_u8; 60]; // not IP: counted as skipped
//! let now = ExportTime::default();
//! meter.packet(&frame, Interfaces::default(), now, &mut |_datagram| datagrams += 1);
//! meter.expire(now, &mut |_datagram| datagrams += 1); // every second or so
//! meter.flush(now, &mut |_datagram| datagrams += 1); // at shutdown
//! assert_eq!(meter.counters().skipped.not_ip, 1);
//! ```

pub mod cache;
pub mod collector;
pub mod export;
pub mod ipfix;
pub mod ipv6;
pub mod key;
pub mod key6;

pub use cache::{
    CacheConfig, CacheCounters, CacheKey, ConfigError, ExpiryReason, FlowCache, FlowRecord,
};
pub use export::{ExportCounters, ExportTime, Exporter, ExporterConfig, SamplingError};
pub use ipfix::{IpfixConfig, IpfixExporter};
pub use key::{Classified, FlowKey, Interfaces, Malformed, Observation, classify};
pub use key6::{FlowKey6, classify6};

/// Frames that made no record, by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Skipped {
    /// IPv6 packets without an IPFIX exporter: v5 records cannot hold their addresses (their
    /// flows are counted in [`Counters::ipv6_flows`]).
    pub ipv6: u64,
    /// Frames that are neither IPv4 nor IPv6.
    pub not_ip: u64,
    /// Frames that claim IP but cannot be keyed.
    pub malformed: u64,
}

/// Everything a [`FlowMeter`] counts, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// The IPv4 cache's.
    pub cache: CacheCounters,
    /// The IPv6 cache's, if there is an IPFIX exporter.
    pub cache6: CacheCounters,
    /// The v5 exporter's.
    pub export: ExportCounters,
    pub ipfix: ExportCounters,
    pub skipped: Skipped,
    /// Flows in the caches now.
    pub active_flows: usize,
    /// IPv6 flows seen while there is a v5 exporter: not exportable in v5, counted instead.
    pub ipv6_flows: u64,
}

/// Frames [`FlowMeter::packets`] classifies before handing them to the cache together.
const STAGE: usize = 64;

/// The exporters a [`FlowMeter`] feeds: v5, IPFIX, or both from the same caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Exporters {
    pub v5: Option<ExporterConfig>,
    pub ipfix: Option<IpfixConfig>,
}

/// Classifier, flow caches and exporters in one: frames in, datagrams out.
///
/// Each method takes the caller's [`ExportTime`] (uptime for the flow timers and records, wall
/// clock for the datagram headers) and a `send` callback that gets every completed datagram, to
/// be written to each collector before the callback returns. A v5 datagram and an IPFIX message
/// tell themselves apart by their first two bytes, the version.
///
/// IPv4 flows go through one cache to every exporter; IPv6 flows, with an IPFIX exporter, go
/// through a second cache of the same size and timeouts to the IPFIX exporter only.
#[derive(Debug)]
pub struct FlowMeter {
    cache: FlowCache,
    cache6: Option<FlowCache<FlowKey6>>,
    exporter: Option<Exporter>,
    ipfix: Option<IpfixExporter>,
    skipped: Skipped,
    /// Observations of the batch being classified, reused from call to call.
    staged: Vec<Observation>,
    /// IPv6 flows counted (not exported) when there is no IPFIX exporter.
    ipv6: ipv6::Ipv6Flows,
}

/// Hands a record to each exporter, and what they complete to `send`.
fn export_v4(
    v5: &mut Option<Exporter>,
    ipfix: &mut Option<IpfixExporter>,
    record: &FlowRecord<FlowKey>,
    now: ExportTime,
    send: &mut impl FnMut(&[u8]),
) {
    if let Some(datagram) = v5.as_mut().and_then(|e| e.push(&record.v5(), now)) {
        send(datagram);
    }
    if let Some(message) = ipfix.as_mut().and_then(|e| e.push_v4(record, now)) {
        send(message);
    }
}

impl FlowMeter {
    /// A meter with a v5 exporter only.
    pub fn new(cache: CacheConfig, export: ExporterConfig) -> Result<FlowMeter, ConfigError> {
        FlowMeter::with_exporters(
            cache,
            Exporters {
                v5: Some(export),
                ipfix: None,
            },
        )
    }

    pub fn with_exporters(
        cache: CacheConfig,
        exporters: Exporters,
    ) -> Result<FlowMeter, ConfigError> {
        let inactive_ms = u64::try_from(cache.inactive_timeout.as_millis()).unwrap_or(u64::MAX);
        let ipv6 = ipv6::Ipv6Flows::new(inactive_ms, cache.max_flows);
        let cache6 = match exporters.ipfix {
            Some(_) => Some(FlowCache::new(cache)?),
            None => None,
        };
        Ok(FlowMeter {
            ipv6,
            cache: FlowCache::new(cache)?,
            cache6,
            exporter: exporters.v5.map(Exporter::new),
            ipfix: exporters.ipfix.map(IpfixExporter::new),
            skipped: Skipped::default(),
            staged: Vec::with_capacity(STAGE),
        })
    }

    /// Count a batch of captured frames, each with the interfaces it was seen on (see
    /// [`Interfaces::mirrored`]), all at `now`: what one read of the receive ring returns. The
    /// fast path: the cache fetches the batch's flows from memory together.
    pub fn packets<'a>(
        &mut self,
        frames: impl IntoIterator<Item = (&'a [u8], Interfaces)>,
        now: ExportTime,
        send: &mut impl FnMut(&[u8]),
    ) {
        for (frame, interfaces) in frames {
            if let Some(observation) = self.classify(frame, interfaces, now, send) {
                self.staged.push(observation);
                if self.staged.len() == STAGE {
                    self.observe_staged(now, send);
                }
            }
        }
        self.observe_staged(now, send);
    }

    /// Count one captured frame, seen on `interfaces` (see [`Interfaces::mirrored`]).
    pub fn packet(
        &mut self,
        frame: &[u8],
        interfaces: Interfaces,
        now: ExportTime,
        send: &mut impl FnMut(&[u8]),
    ) {
        self.packets([(frame, interfaces)], now, send);
    }

    fn classify(
        &mut self,
        frame: &[u8],
        interfaces: Interfaces,
        now: ExportTime,
        send: &mut impl FnMut(&[u8]),
    ) -> Option<Observation> {
        match classify(frame, interfaces) {
            Classified::Flow(observation) => return Some(observation),
            Classified::Ipv6 => {
                if let (Some(cache6), Some(ipfix)) = (&mut self.cache6, &mut self.ipfix) {
                    match classify6(frame, interfaces) {
                        Some(observation) => {
                            cache6.observe(&observation, now.uptime_ms, &mut |record| {
                                if let Some(message) = ipfix.push_v6(&record, now) {
                                    send(message);
                                }
                            });
                        }
                        None => self.skipped.malformed += 1,
                    }
                } else {
                    self.skipped.ipv6 += 1;
                    self.ipv6.observe(frame, interfaces, now.uptime_ms);
                }
            }
            Classified::NotIp => self.skipped.not_ip += 1,
            Classified::Malformed(_) => self.skipped.malformed += 1,
        }
        None
    }

    fn observe_staged(&mut self, now: ExportTime, send: &mut impl FnMut(&[u8])) {
        let (v5, ipfix) = (&mut self.exporter, &mut self.ipfix);
        self.cache
            .observe_batch(&self.staged, now.uptime_ms, &mut |record| {
                export_v4(v5, ipfix, &record, now, send);
            });
        self.staged.clear();
    }

    /// Hand what the exporters hold to `send`.
    fn flush_exporters(&mut self, now: ExportTime, send: &mut impl FnMut(&[u8])) {
        if let Some(datagram) = self.exporter.as_mut().and_then(|e| e.flush(now)) {
            send(datagram);
        }
        if let Some(message) = self.ipfix.as_mut().and_then(|e| e.flush(now)) {
            send(message);
        }
    }

    /// Export the flows whose timeouts have passed, and send what is pending even if the
    /// datagram is not full. Call it about once a second.
    pub fn expire(&mut self, now: ExportTime, send: &mut impl FnMut(&[u8])) {
        self.ipv6.expire(now.uptime_ms);
        let (v5, ipfix) = (&mut self.exporter, &mut self.ipfix);
        self.cache.expire(now.uptime_ms, &mut |record| {
            export_v4(v5, ipfix, &record, now, send);
        });
        if let (Some(cache6), Some(ipfix)) = (&mut self.cache6, &mut self.ipfix) {
            cache6.expire(now.uptime_ms, &mut |record| {
                if let Some(message) = ipfix.push_v6(&record, now) {
                    send(message);
                }
            });
        }
        self.flush_exporters(now, send);
    }

    /// Export every flow and send everything: at shutdown or at the end of a replay.
    pub fn flush(&mut self, now: ExportTime, send: &mut impl FnMut(&[u8])) {
        let (v5, ipfix) = (&mut self.exporter, &mut self.ipfix);
        self.cache.flush_all(&mut |record| {
            export_v4(v5, ipfix, &record, now, send);
        });
        if let (Some(cache6), Some(ipfix)) = (&mut self.cache6, &mut self.ipfix) {
            cache6.flush_all(&mut |record| {
                if let Some(message) = ipfix.push_v6(&record, now) {
                    send(message);
                }
            });
        }
        self.flush_exporters(now, send);
    }

    pub fn counters(&self) -> Counters {
        let cache6 = self.cache6.as_ref();
        let ipv6_flows = match (&self.exporter, cache6) {
            (None, _) => 0,
            (Some(_), Some(cache6)) => cache6.counters().flows,
            (Some(_), None) => self.ipv6.flows(),
        };
        Counters {
            cache: *self.cache.counters(),
            cache6: cache6.map(|c| *c.counters()).unwrap_or_default(),
            export: self
                .exporter
                .as_ref()
                .map(|e| *e.counters())
                .unwrap_or_default(),
            ipfix: self
                .ipfix
                .as_ref()
                .map(|e| *e.counters())
                .unwrap_or_default(),
            skipped: self.skipped,
            active_flows: self.cache.len() + cache6.map_or(0, FlowCache::len),
            ipv6_flows,
        }
    }

    pub fn cache(&self) -> &FlowCache {
        &self.cache
    }

    /// The IPv6 cache, if there is an IPFIX exporter.
    pub fn cache6(&self) -> Option<&FlowCache<FlowKey6>> {
        self.cache6.as_ref()
    }

    /// The v5 exporter, if there is one.
    pub fn exporter(&self) -> Option<&Exporter> {
        self.exporter.as_ref()
    }

    /// The IPFIX exporter, if there is one.
    pub fn ipfix(&self) -> Option<&IpfixExporter> {
        self.ipfix.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use core::net::Ipv4Addr;

    use etherparse::PacketBuilder;
    use mirror_common::Direction;

    use super::*;
    use crate::wire::netflow_v5::{HeaderRepr, Packet, RecordRepr};

    fn udp(src_port: u16) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(src_port, 53)
            .write_to_vec(&mut out, &[0; 12])
            .unwrap();
        out
    }

    fn at(uptime_ms: u64) -> ExportTime {
        ExportTime {
            uptime_ms,
            unix_secs: 1_700_000_000,
            unix_nsecs: 0,
        }
    }

    #[test]
    fn frames_to_datagrams() {
        let mut meter = FlowMeter::new(CacheConfig::default(), ExporterConfig::default()).unwrap();
        let mut datagrams: Vec<Vec<u8>> = Vec::new();
        let ifaces = Interfaces::mirrored(5, Direction::Ingress);
        // 65 flows of two packets each, then 15 s of silence.
        for port in 0..65 {
            for t in [0, 100] {
                meter.packet(&udp(1000 + port), ifaces, at(t), &mut |d| {
                    datagrams.push(d.to_vec());
                });
            }
        }
        meter.packet(&[0; 10], ifaces, at(200), &mut |_| {});
        meter.expire(at(14_999), &mut |d| datagrams.push(d.to_vec()));
        assert!(datagrams.is_empty());
        meter.expire(at(15_100), &mut |d| datagrams.push(d.to_vec()));

        let mut sequences = Vec::new();
        let mut records = Vec::new();
        for d in &datagrams {
            let packet = Packet::new_checked(&d[..]).unwrap();
            let header = HeaderRepr::parse(&packet).unwrap();
            sequences.push((header.count, header.flow_sequence, header.sys_uptime));
            records.extend(packet.records().map(|r| RecordRepr::parse(&r).unwrap()));
        }
        assert_eq!(
            sequences,
            [(30, 0, 15_100), (30, 30, 15_100), (5, 60, 15_100)]
        );
        records.sort_by_key(|r| r.src_port);
        assert_eq!(records.len(), 65);
        assert_eq!(
            records[0],
            RecordRepr {
                src_addr: Ipv4Addr::new(10, 0, 0, 1),
                dst_addr: Ipv4Addr::new(10, 0, 0, 2),
                input: 5,
                packets: 2,
                octets: 80,
                first: 0,
                last: 100,
                src_port: 1000,
                dst_port: 53,
                protocol: 17,
                ..RecordRepr::default()
            }
        );
        let counters = meter.counters();
        assert_eq!(
            (counters.export.records, counters.export.datagrams),
            (65, 3)
        );
        assert_eq!(counters.cache.expired_inactive, 65);
        assert_eq!(counters.skipped.malformed, 1);
        assert_eq!(counters.active_flows, 0);
    }

    #[test]
    fn ipv6_and_non_ip_are_counted_not_exported() {
        let mut meter = FlowMeter::new(CacheConfig::default(), ExporterConfig::default()).unwrap();
        let mut v6 = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv6([1; 16], [2; 16], 64)
            .udp(1, 2)
            .write_to_vec(&mut v6, &[])
            .unwrap();
        let mut arp = vec![0xff; 12];
        arp.extend_from_slice(&[0x08, 0x06]);
        arp.resize(60, 0);
        let mut sent = 0;
        for frame in [&v6, &v6, &arp] {
            meter.packet(frame, Interfaces::default(), at(0), &mut |_| sent += 1);
        }
        meter.flush(at(1), &mut |_| sent += 1);
        assert_eq!(sent, 0);
        assert_eq!(
            meter.counters().skipped,
            Skipped {
                ipv6: 2,
                not_ip: 1,
                malformed: 0
            }
        );
    }

    #[test]
    fn batches_count_like_single_frames() {
        let frames: Vec<Vec<u8>> = (0..200).map(|i| udp(i % 90)).collect();
        let mut one = FlowMeter::new(CacheConfig::default(), ExporterConfig::default()).unwrap();
        let mut batched =
            FlowMeter::new(CacheConfig::default(), ExporterConfig::default()).unwrap();
        let ifaces = Interfaces::default();
        for frame in &frames {
            one.packet(frame, ifaces, at(0), &mut |_| {});
        }
        batched.packets(
            frames
                .iter()
                .map(|f| (&f[..], ifaces))
                .chain([(&[0_u8; 3][..], ifaces)]),
            at(0),
            &mut |_| {},
        );
        assert_eq!(batched.staged.capacity(), STAGE);
        let (a, b) = (one.counters(), batched.counters());
        assert_eq!(a.cache, b.cache);
        assert_eq!((a.cache.packets, a.active_flows), (200, 90));
        assert_eq!(b.skipped.malformed, 1);
    }

    #[test]
    fn flush_sends_everything() {
        let mut meter = FlowMeter::new(CacheConfig::default(), ExporterConfig::default()).unwrap();
        for port in 0..31 {
            meter.packet(&udp(port), Interfaces::default(), at(0), &mut |_| {});
        }
        let mut counts = Vec::new();
        meter.flush(at(5), &mut |d| {
            counts.push(Packet::new_checked(d).unwrap().count());
        });
        assert_eq!(counts, [30, 1]);
        assert!(meter.cache().is_empty());
        assert_eq!(meter.exporter().unwrap().pending(), 0);
    }

    #[test]
    fn ipfix_gets_ipv4_and_ipv6_flows_v5_only_ipv4() {
        use crate::wire::ipfix::{self, FlowRecordRepr, TEMPLATE_SET_ID, Template};
        let exporters = Exporters {
            v5: Some(ExporterConfig::default()),
            ipfix: Some(IpfixConfig {
                domain: 9,
                ..IpfixConfig::default()
            }),
        };
        let mut meter = FlowMeter::with_exporters(CacheConfig::default(), exporters).unwrap();
        let mut v6 = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv6([0xfd; 16], [0xfe; 16], 64)
            .udp(5000, 53)
            .write_to_vec(&mut v6, &[0; 20])
            .unwrap();
        let ifaces = Interfaces::mirrored(4, Direction::Egress);
        let mut out: Vec<Vec<u8>> = Vec::new();
        for t in [0, 10, 20] {
            meter.packets(
                [
                    (&udp(7)[..], ifaces),
                    (&v6[..], ifaces),
                    (&[0_u8; 3][..], ifaces),
                ],
                at(t),
                &mut |d| out.push(d.to_vec()),
            );
        }
        assert!(out.is_empty());
        assert_eq!(meter.counters().active_flows, 2);
        meter.flush(at(30), &mut |d| out.push(d.to_vec()));
        assert_eq!(out.len(), 2);

        let v5 = Packet::new_checked(&out[0][..]).unwrap();
        assert_eq!((v5.version(), v5.count()), (5, 1));
        let message = &out[1];
        let header = ipfix::HeaderRepr::parse(message).unwrap();
        assert_eq!((header.domain, header.sequence), (9, 0));
        let mut templates = Vec::new();
        let mut records = Vec::new();
        for set in ipfix::sets(message) {
            let set = set.unwrap();
            if set.id == TEMPLATE_SET_ID {
                templates = Template::parse_set(set.body).unwrap();
                continue;
            }
            let template = templates.iter().find(|t| t.id == set.id).unwrap();
            for record in template.records(set.body).unwrap() {
                records.push(FlowRecordRepr::parse(template, record).unwrap());
            }
        }
        records.sort_by_key(|r| r.src.is_ipv4());
        let start = 1_700_000_000_000 - 30;
        assert_eq!(records.len(), 2);
        assert_eq!(
            records[0],
            FlowRecordRepr {
                src: "fdfd:fdfd:fdfd:fdfd:fdfd:fdfd:fdfd:fdfd".parse().unwrap(),
                dst: "fefe:fefe:fefe:fefe:fefe:fefe:fefe:fefe".parse().unwrap(),
                src_port: 5000,
                dst_port: 53,
                protocol: 17,
                tos: 0,
                tcp_flags: 0,
                end_reason: ipfix::end_reason::FORCED_END,
                ingress: 0,
                egress: 4,
                packets: 3,
                octets: 3 * 68,
                start_ms: start,
                end_ms: start + 20,
            }
        );
        assert_eq!(
            records[1].src,
            core::net::IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))
        );
        assert_eq!((records[1].packets, records[1].octets), (3, 3 * 40));
        let counters = meter.counters();
        assert_eq!((counters.ipfix.records, counters.ipfix.datagrams), (2, 1));
        assert_eq!((counters.export.records, counters.export.datagrams), (1, 1));
        assert_eq!((counters.cache6.packets, counters.ipv6_flows), (3, 1));
        assert_eq!(
            counters.skipped,
            Skipped {
                ipv6: 0,
                not_ip: 0,
                malformed: 3
            }
        );
        assert_eq!(counters.active_flows, 0);
    }
}
