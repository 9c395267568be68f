//! Packs flow records into IPFIX messages (RFC 7011), IPv4 and IPv6 flows alike, in two
//! reusable buffers.

use core::{net::IpAddr, time::Duration};

use super::{ExpiryReason, ExportCounters, ExportTime, FlowKey, FlowRecord, key6::FlowKey6};
use crate::wire::ipfix::{
    FlowRecordRepr, HEADER_LEN, HeaderRepr, RECORD_LEN_V4, RECORD_LEN_V6, SET_HEADER_LEN,
    TEMPLATE_SET_LEN, TEMPLATE_V4, TEMPLATE_V6, emit_template_set, end_reason, sets,
};

/// Smallest message size an exporter accepts: the header, the templates and one IPv6 record.
pub const MIN_MESSAGE_LEN: usize = HEADER_LEN + TEMPLATE_SET_LEN + SET_HEADER_LEN + RECORD_LEN_V6;

/// How the IPFIX exporter identifies itself, sizes its messages and repeats its templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpfixConfig {
    /// Observation domain id in every message header; sequence numbers count per domain.
    pub domain: u32,
    /// Most bytes in a message: the path MTU less the IP and UDP headers. Default 1452, a
    /// 1500-byte MTU under IPv6 and UDP headers; raised to [`MIN_MESSAGE_LEN`] if below.
    pub max_message_len: usize,
    /// Templates go out again in the first message after this long (RFC 7011 section 8.4,
    /// templateRefreshTimeout). Default 60 s.
    pub template_refresh: Duration,
    /// ... or after this many messages without them (templateRefreshPacket). Default 32.
    pub template_refresh_messages: u32,
}

impl Default for IpfixConfig {
    fn default() -> Self {
        IpfixConfig {
            domain: 0,
            max_message_len: 1452,
            template_refresh: Duration::from_mins(1),
            template_refresh_messages: 32,
        }
    }
}

/// Turns flow records into IPFIX messages of at most [`IpfixConfig::max_message_len`] bytes.
///
/// Records are written straight into the message being built, IPv4 and IPv6 records in data
/// sets of their templates; a record that does not fit sends the message and starts the next.
/// The slice handed out lives until the next call: send it (to every collector) before pushing
/// again. Nothing allocates after construction.
///
/// Every message that opens with a template set is one whose templates were due: the first,
/// and then by time or by message count as configured. The header's sequence number counts the
/// data records of the messages before (modulo 2^32), as RFC 7011 asks.
#[derive(Debug, Clone)]
pub struct IpfixExporter {
    /// The message being built, `len` bytes of it used; 0 when none is open.
    building: Vec<u8>,
    len: usize,
    /// The message last handed out.
    ready: Vec<u8>,
    ready_len: usize,
    /// The data set open in `building`: where its header is and its template (0: none).
    set_start: usize,
    set_id: u16,
    /// Data records in `building`.
    records: u32,
    sequence: u32,
    /// Uptime of the last templates sent, and messages sent since.
    templates_at: Option<u64>,
    messages_since_templates: u32,
    config: IpfixConfig,
    counters: ExportCounters,
}

impl IpfixExporter {
    pub fn new(config: IpfixConfig) -> IpfixExporter {
        let max = config
            .max_message_len
            .clamp(MIN_MESSAGE_LEN, usize::from(u16::MAX));
        let config = IpfixConfig {
            max_message_len: max,
            ..config
        };
        IpfixExporter {
            building: vec![0; max],
            len: 0,
            ready: vec![0; max],
            ready_len: 0,
            set_start: 0,
            set_id: 0,
            records: 0,
            sequence: 0,
            templates_at: None,
            messages_since_templates: 0,
            config,
            counters: ExportCounters::default(),
        }
    }

    /// Add an IPv4 flow. Returns a message if this record did not fit in the one being built.
    pub fn push_v4(&mut self, record: &FlowRecord<FlowKey>, now: ExportTime) -> Option<&[u8]> {
        let key = &record.key;
        let repr = repr(
            record,
            now,
            (IpAddr::V4(key.src), IpAddr::V4(key.dst)),
            (key.src_port, key.dst_port, key.proto, key.tos),
            (key.input, key.output),
        );
        self.push(&repr, now)
    }

    /// Add an IPv6 flow. Returns a message if this record did not fit in the one being built.
    pub fn push_v6(&mut self, record: &FlowRecord<FlowKey6>, now: ExportTime) -> Option<&[u8]> {
        let key = &record.key;
        let repr = repr(
            record,
            now,
            (IpAddr::V6(key.src), IpAddr::V6(key.dst)),
            (key.src_port, key.dst_port, key.proto, key.tclass),
            (key.input, key.output),
        );
        self.push(&repr, now)
    }

    /// Add a record. Returns a message if this record did not fit in the one being built.
    pub fn push(&mut self, record: &FlowRecordRepr, now: ExportTime) -> Option<&[u8]> {
        let id = record.template_id();
        let need = record.buffer_len() + if id == self.set_id { 0 } else { SET_HEADER_LEN };
        let sent = if self.len > 0 && self.len + need > self.config.max_message_len {
            self.finish(now);
            true
        } else {
            false
        };
        if self.len == 0 {
            self.begin(now);
        }
        if id != self.set_id {
            self.close_set();
            self.set_start = self.len;
            self.set_id = id;
            self.len += SET_HEADER_LEN;
        }
        if let Some(slot) = self.building.get_mut(self.len..) {
            record.emit(slot);
        }
        self.len += record.buffer_len();
        self.records += 1;
        if sent {
            self.ready.get(..self.ready_len)
        } else {
            None
        }
    }

    /// Hand out the records pushed so far as one message stamped with `now`, or `None` if
    /// there are none. Call it on a timer so records do not wait for a full message.
    pub fn flush(&mut self, now: ExportTime) -> Option<&[u8]> {
        if self.records == 0 {
            return None;
        }
        self.finish(now);
        self.ready.get(..self.ready_len)
    }

    /// Records waiting for [`IpfixExporter::flush`] or for the message to fill.
    pub fn pending(&self) -> u32 {
        self.records
    }

    /// The sequence number the next message will carry.
    pub fn sequence(&self) -> u32 {
        self.sequence
    }

    pub fn config(&self) -> &IpfixConfig {
        &self.config
    }

    pub fn counters(&self) -> &ExportCounters {
        &self.counters
    }

    /// Open a message, with the templates first if they are due.
    fn begin(&mut self, now: ExportTime) {
        self.len = HEADER_LEN;
        let refresh_ms =
            u64::try_from(self.config.template_refresh.as_millis()).unwrap_or(u64::MAX);
        let due = match self.templates_at {
            None => true,
            Some(at) => {
                now.uptime_ms.saturating_sub(at) >= refresh_ms
                    || self.messages_since_templates >= self.config.template_refresh_messages
            }
        };
        if due {
            if let Some(set) = self.building.get_mut(HEADER_LEN..) {
                emit_template_set(set);
            }
            self.len += TEMPLATE_SET_LEN;
            self.templates_at = Some(now.uptime_ms);
            self.messages_since_templates = 0;
        }
    }

    /// Write the open data set's length.
    fn close_set(&mut self) {
        if self.set_id != 0 {
            let len = (self.len - self.set_start) as u16;
            if let Some(field) = self.building.get_mut(self.set_start..self.set_start + 4) {
                let header = self
                    .set_id
                    .to_be_bytes()
                    .into_iter()
                    .chain(len.to_be_bytes());
                for (byte, value) in field.iter_mut().zip(header) {
                    *byte = value;
                }
            }
        }
        self.set_id = 0;
    }

    /// Stamp the message being built and move it to `ready`.
    fn finish(&mut self, now: ExportTime) {
        self.close_set();
        HeaderRepr {
            // At most max_message_len, itself at most 65535.
            length: self.len as u16,
            export_time: now.unix_secs,
            sequence: self.sequence,
            domain: self.config.domain,
        }
        .emit(&mut self.building);
        core::mem::swap(&mut self.building, &mut self.ready);
        self.ready_len = self.len;
        self.len = 0;
        self.sequence = self.sequence.wrapping_add(self.records);
        self.counters.records += u64::from(self.records);
        self.counters.datagrams += 1;
        self.records = 0;
        self.messages_since_templates = self.messages_since_templates.saturating_add(1);
    }
}

/// The data records in a message this exporter wrote (0 for anything else): what the
/// collectors' metrics count.
pub fn data_records(message: &[u8]) -> u64 {
    sets(message)
        .map_while(Result::ok)
        .map(|set| match set.id {
            TEMPLATE_V4 => set.body.len() / RECORD_LEN_V4,
            TEMPLATE_V6 => set.body.len() / RECORD_LEN_V6,
            _ => 0,
        } as u64)
        .sum()
}

/// The `flowEndReason` of a cache expiry. A flow restarted because its 32-bit counter was
/// full goes on, like one cut by the active timeout.
pub const fn end_reason(reason: ExpiryReason) -> u8 {
    match reason {
        ExpiryReason::Inactive => end_reason::IDLE_TIMEOUT,
        ExpiryReason::Active | ExpiryReason::CounterFull => end_reason::ACTIVE_TIMEOUT,
        ExpiryReason::TcpEnd => end_reason::END_OF_FLOW,
        ExpiryReason::Flushed => end_reason::FORCED_END,
        ExpiryReason::Emergency => end_reason::LACK_OF_RESOURCES,
    }
}

/// The record of a flow: its uptimes turned into Unix-epoch milliseconds by the clocks of
/// `now`.
fn repr<K>(
    record: &FlowRecord<K>,
    now: ExportTime,
    (src, dst): (IpAddr, IpAddr),
    (src_port, dst_port, protocol, tos): (u16, u16, u8, u8),
    (input, output): (u16, u16),
) -> FlowRecordRepr {
    let now_ms = u64::from(now.unix_secs) * 1000 + u64::from(now.unix_nsecs / 1_000_000);
    let start_of_uptime = now_ms.saturating_sub(now.uptime_ms);
    FlowRecordRepr {
        src,
        dst,
        src_port,
        dst_port,
        protocol,
        tos,
        tcp_flags: u16::from(record.tcp_flags),
        end_reason: end_reason(record.reason),
        ingress: u32::from(input),
        egress: u32::from(output),
        packets: u64::from(record.packets),
        octets: u64::from(record.octets),
        start_ms: start_of_uptime.saturating_add(record.first_ms),
        end_ms: start_of_uptime.saturating_add(record.last_ms),
    }
}

#[cfg(test)]
mod tests {
    use core::net::{Ipv4Addr, Ipv6Addr};
    use std::collections::HashMap;

    use super::*;
    use crate::wire::ipfix::{TEMPLATE_SET_ID, Template};

    fn at(uptime_ms: u64) -> ExportTime {
        ExportTime {
            uptime_ms,
            unix_secs: 1_700_000_000,
            unix_nsecs: 500_000_000,
        }
    }

    fn v4(n: u32) -> FlowRecord<FlowKey> {
        FlowRecord {
            key: FlowKey {
                src: Ipv4Addr::from_bits(0x0a00_0000 | n),
                dst: Ipv4Addr::new(10, 9, 9, 9),
                proto: 6,
                src_port: 40000,
                dst_port: 443,
                tos: 0x10,
                input: 3,
                output: 0,
            },
            packets: n + 1,
            octets: 100 * (n + 1),
            first_ms: 1000,
            last_ms: 1500 + u64::from(n),
            tcp_flags: 0x1b,
            reason: ExpiryReason::TcpEnd,
        }
    }

    fn v6(n: u32) -> FlowRecord<FlowKey6> {
        FlowRecord {
            key: FlowKey6 {
                src: Ipv6Addr::from_bits(0xfd00_u128 << 112 | u128::from(n)),
                dst: "fd00::ffff".parse().unwrap(),
                proto: 58,
                src_port: 0,
                dst_port: 0x8000,
                tclass: 0xb8,
                input: 0,
                output: 7,
            },
            packets: 2,
            octets: 208,
            first_ms: 2000,
            last_ms: 3000,
            tcp_flags: 0,
            reason: ExpiryReason::Inactive,
        }
    }

    /// What a collector makes of a stream of messages: headers, and records by template.
    struct Collector {
        templates: HashMap<u16, Template>,
        headers: Vec<HeaderRepr>,
        with_templates: Vec<bool>,
        records: Vec<FlowRecordRepr>,
    }

    impl Collector {
        fn new() -> Self {
            Collector {
                templates: HashMap::new(),
                headers: Vec::new(),
                with_templates: Vec::new(),
                records: Vec::new(),
            }
        }

        fn read(&mut self, message: &[u8]) {
            let header = HeaderRepr::parse(message).unwrap();
            assert_eq!(usize::from(header.length), message.len());
            self.headers.push(header);
            let mut templates = false;
            let mut count = 0;
            for set in sets(message) {
                let set = set.unwrap();
                if set.id == TEMPLATE_SET_ID {
                    templates = true;
                    for t in Template::parse_set(set.body).unwrap() {
                        self.templates.insert(t.id, t);
                    }
                    continue;
                }
                let template = &self.templates[&set.id];
                let records: Vec<&[u8]> = template.records(set.body).unwrap().collect();
                assert_eq!(
                    records.len() * template.record_len().unwrap(),
                    set.body.len()
                );
                for record in records {
                    self.records
                        .push(FlowRecordRepr::parse(template, record).unwrap());
                    count += 1;
                }
            }
            assert_eq!(data_records(message), count);
            self.with_templates.push(templates);
        }
    }

    #[test]
    fn golden_message() {
        let mut exporter = IpfixExporter::new(IpfixConfig {
            domain: 0x0102_0304,
            ..IpfixConfig::default()
        });
        assert_eq!(exporter.push_v4(&v4(1), at(5000)), None);
        assert_eq!(exporter.push_v6(&v6(1), at(5000)), None);
        let message = exporter.flush(at(5000)).unwrap().to_vec();
        let len = HEADER_LEN + TEMPLATE_SET_LEN + 4 + RECORD_LEN_V4 + 4 + RECORD_LEN_V6;
        assert_eq!(message.len(), len);
        #[rustfmt::skip]
        let header: [u8; 16] = [
            0, 10, 1, 30, // version, length 286
            0x65, 0x53, 0xf1, 0, // export time 1_700_000_000
            0, 0, 0, 0, // sequence
            1, 2, 3, 4, // observation domain
        ];
        assert_eq!(message[..16], header);
        assert_eq!(message[16..20], [0, 2, 0, 124]);
        let v4_set = HEADER_LEN + TEMPLATE_SET_LEN;
        // Uptime 0 was 1_699_999_995_500 ms since the epoch: first packet at 1000 ms uptime.
        let start: u64 = 1_699_999_996_500;
        #[rustfmt::skip]
        let mut expected_v4 = vec![
            1, 0, 0, 61, // set 256, 4 + 57 bytes
            10, 0, 0, 1, 10, 9, 9, 9, // addresses
            0x9c, 0x40, 0x01, 0xbb, // ports 40000, 443
            6, 0x10, 0, 0x1b, 3, // protocol, ToS, TCP flags, end of flow detected
            0, 0, 0, 3, 0, 0, 0, 0, // ingress, egress
            0, 0, 0, 0, 0, 0, 0, 2, // packets
            0, 0, 0, 0, 0, 0, 0, 200, // octets
        ];
        expected_v4.extend_from_slice(&start.to_be_bytes());
        expected_v4.extend_from_slice(&(start + 501).to_be_bytes());
        assert_eq!(message[v4_set..v4_set + 61], expected_v4[..]);
        let v6_set = v4_set + 61;
        assert_eq!(message[v6_set..v6_set + 4], [1, 1, 0, 85]);
        assert_eq!(message[v6_set + 4..v6_set + 6], [0xfd, 0]);
        // Exactly once each: the collector's view.
        let mut collector = Collector::new();
        collector.read(&message);
        assert_eq!(collector.with_templates, [true]);
        assert_eq!(
            collector.records[1],
            FlowRecordRepr {
                src: "fd00::1".parse().unwrap(),
                dst: "fd00::ffff".parse().unwrap(),
                src_port: 0,
                dst_port: 0x8000,
                protocol: 58,
                tos: 0xb8,
                tcp_flags: 0,
                end_reason: end_reason::IDLE_TIMEOUT,
                ingress: 0,
                egress: 7,
                packets: 2,
                octets: 208,
                start_ms: start + 1000,
                end_ms: start + 2000,
            }
        );
    }

    #[test]
    fn messages_stay_under_the_limit_and_sequence_counts_records() {
        let mut exporter = IpfixExporter::new(IpfixConfig {
            max_message_len: 600,
            template_refresh_messages: 3,
            ..IpfixConfig::default()
        });
        let mut messages = Vec::new();
        for n in 0..100 {
            let sent = if n % 3 == 0 {
                exporter.push_v6(&v6(n), at(u64::from(n)))
            } else {
                exporter.push_v4(&v4(n), at(u64::from(n)))
            };
            if let Some(m) = sent {
                messages.push(m.to_vec());
            }
        }
        messages.push(exporter.flush(at(100)).unwrap().to_vec());
        assert_eq!(exporter.flush(at(101)), None);

        let mut collector = Collector::new();
        for m in &messages {
            assert!(m.len() <= 600);
            collector.read(m);
        }
        assert_eq!(collector.records.len(), 100);
        let mut sequence = 0;
        for (header, m) in collector.headers.iter().zip(&messages) {
            assert_eq!(header.sequence, sequence);
            sequence += data_records(m) as u32;
        }
        assert_eq!(exporter.sequence(), 100);
        // Templates in the first message, then every third.
        let expected: Vec<bool> = (0..messages.len()).map(|i| i % 3 == 0).collect();
        assert_eq!(collector.with_templates, expected);
        // Full messages leave less room than one more record and its set header.
        for m in &messages[..messages.len() - 1] {
            assert!(m.len() + 4 + RECORD_LEN_V6 > 600, "{}", m.len());
        }
        assert_eq!(
            *exporter.counters(),
            ExportCounters {
                records: 100,
                datagrams: messages.len() as u64
            }
        );
        for (n, record) in collector.records.iter().enumerate() {
            let want = if n % 3 == 0 { 58 } else { 6 };
            assert_eq!(record.protocol, want);
        }
    }

    #[test]
    fn templates_refresh_by_time() {
        let mut exporter = IpfixExporter::new(IpfixConfig {
            template_refresh: Duration::from_secs(10),
            template_refresh_messages: u32::MAX,
            ..IpfixConfig::default()
        });
        let mut with = Vec::new();
        for t in [0, 5_000, 9_999, 10_000, 15_000, 20_001] {
            exporter.push_v4(&v4(1), at(t));
            let m = exporter.flush(at(t)).unwrap();
            with.push(sets(m).any(|s| s.unwrap().id == TEMPLATE_SET_ID));
        }
        assert_eq!(with, [true, false, false, true, false, true]);
    }

    #[test]
    fn sequence_wraps_and_tiny_limit_is_raised() {
        let mut exporter = IpfixExporter::new(IpfixConfig {
            max_message_len: 10,
            ..IpfixConfig::default()
        });
        assert_eq!(exporter.config().max_message_len, MIN_MESSAGE_LEN);
        exporter.sequence = u32::MAX;
        exporter.push_v6(&v6(0), at(0));
        assert_eq!(exporter.pending(), 1);
        let m = exporter.push_v6(&v6(1), at(0)).unwrap().to_vec();
        assert_eq!(m.len(), MIN_MESSAGE_LEN);
        assert_eq!(HeaderRepr::parse(&m).unwrap().sequence, u32::MAX);
        let m = exporter.flush(at(0)).unwrap();
        assert_eq!(HeaderRepr::parse(m).unwrap().sequence, 0);
        assert_eq!(exporter.sequence(), 1);
    }

    #[test]
    fn reasons() {
        assert_eq!(end_reason(ExpiryReason::Inactive), 1);
        assert_eq!(end_reason(ExpiryReason::Active), 2);
        assert_eq!(end_reason(ExpiryReason::CounterFull), 2);
        assert_eq!(end_reason(ExpiryReason::TcpEnd), 3);
        assert_eq!(end_reason(ExpiryReason::Flushed), 4);
        assert_eq!(end_reason(ExpiryReason::Emergency), 5);
        assert_eq!(data_records(&[0, 5, 0, 1]), 0);
    }
}
