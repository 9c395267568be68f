//! The IPFIX exporter's view of the copies: frames, IPv4 and IPv6, counted through the flow
//! caches into IPFIX messages, read back with the project's own IPFIX parser.
//!
//! The input is 2 bytes of settings (cache size, message size limit, template refresh count),
//! then a run of frames, each a 2-byte length then that many bytes. Checked: every message parses
//! and stays under the limit, its sequence number counts the data records before it, the first
//! carries the templates, every record is of the family of its template, and every packet and
//! byte counted ends up in exactly one record (per family and per flow key).
#![no_main]

use std::{collections::HashMap, net::IpAddr, time::Duration};

use libfuzzer_sys::fuzz_target;
use mirror::{
    netflow::{
        CacheConfig, Classified, ExportTime, Exporters, FlowMeter, Interfaces, IpfixConfig,
        classify, classify6, ipfix::MIN_MESSAGE_LEN,
    },
    wire::ipfix::{
        FlowRecordRepr, HeaderRepr, TEMPLATE_SET_ID, TEMPLATE_V4, TEMPLATE_V6, Template, sets,
    },
};
use mirror_fuzz::Bytes;

/// Per flow (addresses, protocol, ports): packets and bytes.
type Totals = HashMap<(IpAddr, IpAddr, u8, u16, u16), (u64, u64)>;

fuzz_target!(|data: &[u8]| {
    let mut bytes = Bytes::new(data);
    let settings = bytes.u16();
    let max_flows = 1 + usize::from(settings & 7);
    let max_message_len = MIN_MESSAGE_LEN + usize::from(settings >> 3 & 0x3ff);
    let refresh = u32::from(settings >> 13);
    let cache = CacheConfig {
        inactive_timeout: Duration::from_millis(50),
        active_timeout: Duration::from_millis(200),
        max_flows,
    };
    let exporters = Exporters {
        v5: None,
        ipfix: Some(IpfixConfig {
            domain: 77,
            max_message_len,
            template_refresh_messages: refresh,
            ..IpfixConfig::default()
        }),
    };
    let mut meter = FlowMeter::with_exporters(cache, exporters).unwrap();
    let mut messages = Vec::new();
    let mut expected = Totals::default();
    let mut now = ExportTime {
        uptime_ms: 0,
        unix_secs: 1_700_000_000,
        unix_nsecs: 0,
    };
    loop {
        let len = usize::from(bytes.u16());
        let frame = bytes.take(len);
        if frame.is_empty() {
            break;
        }
        let interfaces = Interfaces {
            input: 1,
            output: 0,
        };
        match classify(frame, interfaces) {
            Classified::Flow(o) => {
                let k = o.key;
                let key = (k.src.into(), k.dst.into(), k.proto, k.src_port, k.dst_port);
                let entry = expected.entry(key).or_default();
                entry.0 += 1;
                entry.1 += u64::from(o.octets);
            }
            Classified::Ipv6 => {
                if let Some(o) = classify6(frame, interfaces) {
                    let k = o.key;
                    let key = (k.src.into(), k.dst.into(), k.proto, k.src_port, k.dst_port);
                    let entry = expected.entry(key).or_default();
                    entry.0 += 1;
                    entry.1 += u64::from(o.octets);
                }
            }
            _ => {}
        }
        now.uptime_ms += u64::from(frame[0] % 64);
        meter.packet(frame, interfaces, now, &mut |m| messages.push(m.to_vec()));
        if frame[0] & 1 == 1 {
            meter.expire(now, &mut |m| messages.push(m.to_vec()));
        }
    }
    meter.flush(now, &mut |m| messages.push(m.to_vec()));

    let mut templates: HashMap<u16, Template> = HashMap::new();
    let mut got = Totals::default();
    let mut sequence = 0_u32;
    for (n, message) in messages.iter().enumerate() {
        assert!(message.len() <= max_message_len);
        let header = HeaderRepr::parse(message).unwrap();
        assert_eq!(usize::from(header.length), message.len());
        assert_eq!((header.domain, header.sequence), (77, sequence));
        for (i, set) in sets(message).enumerate() {
            let set = set.unwrap();
            if set.id == TEMPLATE_SET_ID {
                assert_eq!(i, 0, "templates come first");
                for t in Template::parse_set(set.body).unwrap() {
                    templates.insert(t.id, t);
                }
                continue;
            }
            assert!(
                n > 0 || !templates.is_empty(),
                "the first message has the templates"
            );
            assert!(set.id == TEMPLATE_V4 || set.id == TEMPLATE_V6);
            let template = &templates[&set.id];
            let len = template.record_len().unwrap();
            assert_eq!(set.body.len() % len, 0);
            for record in template.records(set.body).unwrap() {
                let r = FlowRecordRepr::parse(template, record).unwrap();
                assert_eq!(r.src.is_ipv4(), set.id == TEMPLATE_V4);
                assert!(r.packets > 0 && r.start_ms <= r.end_ms);
                let entry = got
                    .entry((r.src, r.dst, r.protocol, r.src_port, r.dst_port))
                    .or_default();
                entry.0 += r.packets;
                entry.1 += r.octets;
                sequence = sequence.wrapping_add(1);
            }
        }
    }
    assert_eq!(got, expected);
    let counters = meter.counters();
    assert_eq!(counters.active_flows, 0);
    assert_eq!(counters.ipfix.records, u64::from(sequence));
    assert_eq!(counters.ipfix.datagrams, messages.len() as u64);
});
