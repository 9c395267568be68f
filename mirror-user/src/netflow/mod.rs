#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]
//! NetFlow v5: mirrored frames summarised as flow records, packed into export datagrams.
//!
//! [`classify`] turns a frame into a flow key, [`FlowCache`] counts packets per flow and decides
//! when a flow ends, [`Exporter`] packs the records into datagrams. [`FlowMeter`] chains the
//! three for the capture thread; sockets, timers and metrics are the caller's.
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
pub mod ipv6;
pub mod key;

pub use cache::{CacheConfig, CacheCounters, CacheKey, ConfigError, ExpiryReason, FlowCache, FlowRecord};
pub use export::{ExportCounters, ExportTime, Exporter, ExporterConfig, SamplingError};
pub use key::{Classified, FlowKey, Interfaces, Malformed, Observation, classify};

/// Frames that made no v5 record, by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Skipped {
    /// IPv6 packets: v5 records cannot hold their addresses (their flows are counted in
    /// [`Counters::ipv6_flows`]).
    pub ipv6: u64,
    /// Frames that are neither IPv4 nor IPv6.
    pub not_ip: u64,
    /// Frames that claim IP but cannot be keyed.
    pub malformed: u64,
}

/// Everything a [`FlowMeter`] counts, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    pub cache: CacheCounters,
    pub export: ExportCounters,
    pub skipped: Skipped,
    /// Flows in the cache now.
    pub active_flows: usize,
    /// IPv6 flows seen: not exportable in v5, counted instead.
    pub ipv6_flows: u64,
}

/// Frames [`FlowMeter::packets`] classifies before handing them to the cache together.
const STAGE: usize = 64;

/// Classifier, flow cache and exporter in one: frames in, datagrams out.
///
/// Each method takes the caller's [`ExportTime`] (uptime for the flow timers and records, wall
/// clock for the datagram headers) and a `send` callback that gets every completed datagram, to
/// be written to each collector before the callback returns.
#[derive(Debug)]
pub struct FlowMeter {
    cache: FlowCache,
    exporter: Exporter,
    skipped: Skipped,
    /// Observations of the batch being classified, reused from call to call.
    staged: Vec<Observation>,
    ipv6: ipv6::Ipv6Flows,
}

impl FlowMeter {
    pub fn new(cache: CacheConfig, export: ExporterConfig) -> Result<FlowMeter, ConfigError> {
        let inactive_ms = u64::try_from(cache.inactive_timeout.as_millis()).unwrap_or(u64::MAX);
        let ipv6 = ipv6::Ipv6Flows::new(inactive_ms, cache.max_flows);
        Ok(FlowMeter {
            ipv6,
            cache: FlowCache::new(cache)?,
            exporter: Exporter::new(export),
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
            if let Some(observation) = self.classify(frame, interfaces, now.uptime_ms) {
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
        now_ms: u64,
    ) -> Option<Observation> {
        match classify(frame, interfaces) {
            Classified::Flow(observation) => return Some(observation),
            Classified::Ipv6 => {
                self.skipped.ipv6 += 1;
                self.ipv6.observe(frame, interfaces, now_ms);
            }
            Classified::NotIp => self.skipped.not_ip += 1,
            Classified::Malformed(_) => self.skipped.malformed += 1,
        }
        None
    }

    fn observe_staged(&mut self, now: ExportTime, send: &mut impl FnMut(&[u8])) {
        let exporter = &mut self.exporter;
        self.cache
            .observe_batch(&self.staged, now.uptime_ms, &mut |record| {
                if let Some(datagram) = exporter.push(&record.v5(), now) {
                    send(datagram);
                }
            });
        self.staged.clear();
    }

    /// Export the flows whose timeouts have passed, and send what is pending even if the
    /// datagram is not full. Call it about once a second.
    pub fn expire(&mut self, now: ExportTime, send: &mut impl FnMut(&[u8])) {
        self.ipv6.expire(now.uptime_ms);
        let exporter = &mut self.exporter;
        self.cache.expire(now.uptime_ms, &mut |record| {
            if let Some(datagram) = exporter.push(&record.v5(), now) {
                send(datagram);
            }
        });
        if let Some(datagram) = self.exporter.flush(now) {
            send(datagram);
        }
    }

    /// Export every flow and send everything: at shutdown or at the end of a replay.
    pub fn flush(&mut self, now: ExportTime, send: &mut impl FnMut(&[u8])) {
        let exporter = &mut self.exporter;
        self.cache.flush_all(&mut |record| {
            if let Some(datagram) = exporter.push(&record.v5(), now) {
                send(datagram);
            }
        });
        if let Some(datagram) = self.exporter.flush(now) {
            send(datagram);
        }
    }

    pub fn counters(&self) -> Counters {
        Counters {
            cache: *self.cache.counters(),
            export: *self.exporter.counters(),
            skipped: self.skipped,
            active_flows: self.cache.len(),
            ipv6_flows: self.ipv6.flows(),
        }
    }

    pub fn cache(&self) -> &FlowCache {
        &self.cache
    }

    pub fn exporter(&self) -> &Exporter {
        &self.exporter
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
        assert_eq!(meter.exporter().pending(), 0);
    }
}
