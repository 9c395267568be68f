//! Packs flow records into NetFlow v5 datagrams, in one reusable buffer.

use core::time::Duration;

use crate::wire::netflow_v5::{
    HEADER_LEN, HeaderRepr, MAX_DATAGRAM_LEN, MAX_RECORDS, Packet, RECORD_LEN, Record, RecordRepr,
    Sampling, SamplingMode,
};

/// The exporter's clocks when a datagram goes out: its uptime, the clock the records' First and
/// Last use too, and the wall clock. Both are the caller's, so a replay can stamp datagrams with
/// the capture's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExportTime {
    /// Milliseconds since the exporter started (v5 `sysUptime`, written modulo 2^32).
    pub uptime_ms: u64,
    /// Seconds since the Unix epoch.
    pub unix_secs: u32,
    /// Nanoseconds past `unix_secs`.
    pub unix_nsecs: u32,
}

impl ExportTime {
    /// The clocks `uptime` after an exporter started at `start` (wall clock, since the Unix
    /// epoch). Seconds are written modulo 2^32, as the 32-bit field requires (until 2106).
    pub fn since(start: Duration, uptime: Duration) -> ExportTime {
        let unix = start.saturating_add(uptime);
        ExportTime {
            uptime_ms: u64::try_from(uptime.as_millis()).unwrap_or(u64::MAX),
            unix_secs: unix.as_secs() as u32,
            unix_nsecs: unix.subsec_nanos(),
        }
    }
}

/// What the header says about the exporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExporterConfig {
    /// Type of the flow-switching engine.
    pub engine_type: u8,
    /// Slot number of the flow-switching engine: lets a collector tell agents that share an
    /// address apart.
    pub engine_id: u8,
    /// Whether packets were sampled before counting. See [`ExporterConfig::sampled`].
    pub sampling: Sampling,
}

/// Why a sampling rate does not fit the v5 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("NetFlow v5 can describe sampling of 1 in 1 to 1 in 16383 packets, not 1 in {0}")]
pub struct SamplingError(pub u32);

impl ExporterConfig {
    /// Declare that 1 packet in `one_in` was counted, the others skipped, by `mode`. 1 in 1 is
    /// no sampling at all. Collectors multiply the counts by the interval: v5 records are not
    /// scaled by the exporter.
    pub fn sampled(self, mode: SamplingMode, one_in: u32) -> Result<ExporterConfig, SamplingError> {
        let sampling = match (mode, one_in) {
            (_, 1) | (SamplingMode::None, _) => Sampling::NONE,
            _ => u16::try_from(one_in)
                .ok()
                .filter(|&n| n > 0)
                .and_then(|n| Sampling::new(mode, n))
                .ok_or(SamplingError(one_in))?,
        };
        Ok(ExporterConfig { sampling, ..self })
    }
}

/// What an exporter has sent. Plain counters for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExportCounters {
    /// Records in the datagrams handed out.
    pub records: u64,
    /// Datagrams handed out.
    pub datagrams: u64,
}

/// Turns records into v5 datagrams of at most [`MAX_RECORDS`] records.
///
/// Records are written straight into one fixed buffer; [`Exporter::push`] hands out the
/// datagram when the 30th arrives, [`Exporter::flush`] hands out a partial one. The slice lives
/// until the next call: send it (to every collector) before pushing again. Nothing allocates.
///
/// The header's `flow_sequence` is the number of records in the datagrams handed out before
/// (modulo 2^32), so collectors can count lost flows.
#[derive(Debug, Clone)]
pub struct Exporter {
    buffer: [u8; MAX_DATAGRAM_LEN],
    /// Records in `buffer`, not yet handed out.
    pending: usize,
    /// `flow_sequence` of the datagram being filled.
    sequence: u32,
    config: ExporterConfig,
    counters: ExportCounters,
}

impl Exporter {
    pub fn new(config: ExporterConfig) -> Exporter {
        Exporter {
            buffer: [0; MAX_DATAGRAM_LEN],
            pending: 0,
            sequence: 0,
            config,
            counters: ExportCounters::default(),
        }
    }

    /// Add a record. Returns the datagram if this record filled it, stamped with `now`.
    pub fn push(&mut self, record: &RecordRepr, now: ExportTime) -> Option<&[u8]> {
        let start = HEADER_LEN + self.pending * RECORD_LEN;
        let slot = self.buffer.get_mut(start..start + RECORD_LEN)?;
        record.emit(&mut Record::new_unchecked(slot));
        self.pending += 1;
        if self.pending == MAX_RECORDS {
            self.finish(now)
        } else {
            None
        }
    }

    /// Hand out the records pushed so far as one datagram stamped with `now`, or `None` if
    /// there are none. Call it on a timer so records do not wait for 29 others.
    pub fn flush(&mut self, now: ExportTime) -> Option<&[u8]> {
        if self.pending == 0 {
            None
        } else {
            self.finish(now)
        }
    }

    /// Records waiting for [`Exporter::flush`] or for the datagram to fill.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// The `flow_sequence` the next datagram will carry.
    pub fn sequence(&self) -> u32 {
        self.sequence
    }

    pub fn config(&self) -> &ExporterConfig {
        &self.config
    }

    pub fn counters(&self) -> &ExportCounters {
        &self.counters
    }

    fn finish(&mut self, now: ExportTime) -> Option<&[u8]> {
        let count = self.pending;
        let header = HeaderRepr {
            // At most MAX_RECORDS, checked by push.
            count: count as u16,
            sys_uptime: now.uptime_ms as u32,
            unix_secs: now.unix_secs,
            unix_nsecs: now.unix_nsecs,
            flow_sequence: self.sequence,
            engine_type: self.config.engine_type,
            engine_id: self.config.engine_id,
            sampling: self.config.sampling,
        };
        header.emit(&mut Packet::new_unchecked(self.buffer.as_mut_slice()));
        self.pending = 0;
        self.sequence = self.sequence.wrapping_add(count as u32);
        self.counters.records += count as u64;
        self.counters.datagrams += 1;
        self.buffer.get(..header.datagram_len())
    }
}

#[cfg(test)]
mod tests {
    use core::net::Ipv4Addr;

    use super::*;
    use crate::wire::netflow_v5::VERSION;

    fn record(n: u32) -> RecordRepr {
        RecordRepr {
            src_addr: Ipv4Addr::from_bits(0x0a00_0000 | n),
            dst_addr: Ipv4Addr::new(10, 9, 9, 9),
            packets: n + 1,
            octets: 100 * (n + 1),
            first: n,
            last: n + 10,
            protocol: 17,
            ..RecordRepr::default()
        }
    }

    fn at(uptime_ms: u64) -> ExportTime {
        ExportTime {
            uptime_ms,
            unix_secs: 1_700_000_000,
            unix_nsecs: 123_456_789,
        }
    }

    fn parse(datagram: &[u8]) -> (HeaderRepr, Vec<RecordRepr>) {
        let packet = Packet::new_checked(datagram).unwrap();
        let header = HeaderRepr::parse(&packet).unwrap();
        let records = packet
            .records()
            .map(|r| RecordRepr::parse(&r).unwrap())
            .collect();
        assert_eq!(datagram.len(), header.datagram_len());
        (header, records)
    }

    #[test]
    fn sequences_across_datagrams() {
        let config = ExporterConfig {
            engine_type: 1,
            engine_id: 42,
            sampling: Sampling::NONE,
        };
        let mut exporter = Exporter::new(config);
        let mut datagrams = Vec::new();
        for n in 0..65 {
            if let Some(d) = exporter.push(&record(n), at(u64::from(n))) {
                datagrams.push(d.to_vec());
            }
        }
        assert_eq!(exporter.pending(), 5);
        datagrams.push(exporter.flush(at(1000)).unwrap().to_vec());
        assert_eq!(exporter.flush(at(1001)), None);

        let parsed: Vec<_> = datagrams.iter().map(|d| parse(d)).collect();
        let summary: Vec<(u16, u32, u32)> = parsed
            .iter()
            .map(|(h, _)| (h.count, h.flow_sequence, h.sys_uptime))
            .collect();
        // Stamped when full (the 30th record at 29 and 59 ms) or flushed.
        assert_eq!(summary, [(30, 0, 29), (30, 30, 59), (5, 60, 1000)]);
        for (header, _) in &parsed {
            assert_eq!((header.engine_type, header.engine_id), (1, 42));
            assert_eq!(header.sampling, Sampling::NONE);
            assert_eq!(
                (header.unix_secs, header.unix_nsecs),
                (1_700_000_000, 123_456_789)
            );
        }
        let records: Vec<RecordRepr> = parsed.into_iter().flat_map(|(_, r)| r).collect();
        assert_eq!(records, (0..65).map(record).collect::<Vec<_>>());
        assert_eq!(
            *exporter.counters(),
            ExportCounters {
                records: 65,
                datagrams: 3
            }
        );
        assert_eq!(exporter.sequence(), 65);
        assert_eq!(datagrams[0].len(), MAX_DATAGRAM_LEN);
        assert_eq!(datagrams[2].len(), HEADER_LEN + 5 * RECORD_LEN);
        assert_eq!(datagrams[0][..2], VERSION.to_be_bytes());
    }

    #[test]
    fn golden_datagram() {
        let config = ExporterConfig {
            engine_type: 2,
            engine_id: 3,
            ..ExporterConfig::default()
        }
        .sampled(SamplingMode::Random, 64)
        .unwrap();
        let mut exporter = Exporter::new(config);
        let record = RecordRepr {
            src_addr: Ipv4Addr::new(10, 0, 0, 1),
            dst_addr: Ipv4Addr::new(10, 0, 0, 2),
            input: 4,
            packets: 2,
            octets: 120,
            first: 1000,
            last: 2000,
            src_port: 1024,
            dst_port: 80,
            tcp_flags: 0x1b,
            protocol: 6,
            ..RecordRepr::default()
        };
        assert_eq!(exporter.push(&record, at(0)), None);
        let time = ExportTime {
            uptime_ms: (1 << 32) + 5000,
            unix_secs: 0x6000_0000,
            unix_nsecs: 7,
        };
        let datagram = exporter.flush(time).unwrap();
        #[rustfmt::skip]
        let expected: [u8; 72] = [
            0, 5, 0, 1, // version, count
            0, 0, 0x13, 0x88, // sys_uptime: 5000 (modulo 2^32)
            0x60, 0, 0, 0, // unix_secs
            0, 0, 0, 7, // unix_nsecs
            0, 0, 0, 0, // flow_sequence
            2, 3, // engine type, id
            0x80, 0x40, // random sampling, 1 in 64
            10, 0, 0, 1, 10, 0, 0, 2, 0, 0, 0, 0, // src, dst, nexthop
            0, 4, 0, 0, // input, output
            0, 0, 0, 2, 0, 0, 0, 120, // dPkts, dOctets
            0, 0, 0x03, 0xe8, 0, 0, 0x07, 0xd0, // First, Last
            0x04, 0x00, 0, 80, // ports
            0, 0x1b, 6, 0, // pad1, tcp_flags, prot, tos
            0, 0, 0, 0, 0, 0, 0, 0, // AS, masks, pad2
        ];
        assert_eq!(datagram, expected);
    }

    #[test]
    fn sampling_config() {
        let base = ExporterConfig::default();
        let sampling = |mode, n| base.sampled(mode, n).map(|c| c.sampling);
        assert_eq!(
            sampling(SamplingMode::Deterministic, 100),
            Ok(Sampling::new(SamplingMode::Deterministic, 100).unwrap())
        );
        assert_eq!(sampling(SamplingMode::Deterministic, 1), Ok(Sampling::NONE));
        assert_eq!(sampling(SamplingMode::None, 50), Ok(Sampling::NONE));
        assert_eq!(
            sampling(SamplingMode::Random, 16383).map(Sampling::raw),
            Ok(0xbfff)
        );
        assert_eq!(
            sampling(SamplingMode::Random, 16384),
            Err(SamplingError(16384))
        );
        assert_eq!(sampling(SamplingMode::Random, 0), Err(SamplingError(0)));
        assert_eq!(
            sampling(SamplingMode::Random, 70000),
            Err(SamplingError(70000))
        );
        assert_eq!(
            SamplingError(0).to_string(),
            "NetFlow v5 can describe sampling of 1 in 1 to 1 in 16383 packets, not 1 in 0"
        );
    }

    #[test]
    fn sequence_wraps() {
        let mut exporter = Exporter::new(ExporterConfig::default());
        exporter.sequence = u32::MAX - 1;
        exporter.push(&record(0), at(0));
        let (header, _) = parse(exporter.flush(at(0)).unwrap());
        assert_eq!(header.flow_sequence, u32::MAX - 1);
        for n in 0..3 {
            exporter.push(&record(n), at(0));
        }
        let (header, _) = parse(exporter.flush(at(0)).unwrap());
        assert_eq!(header.flow_sequence, u32::MAX);
        assert_eq!(exporter.sequence(), 2);
    }

    #[test]
    fn export_time_since() {
        let start = Duration::new(1_700_000_000, 900_000_000);
        let t = ExportTime::since(start, Duration::from_millis(1_250));
        assert_eq!(
            t,
            ExportTime {
                uptime_ms: 1_250,
                unix_secs: 1_700_000_002,
                unix_nsecs: 150_000_000
            }
        );
    }
}
