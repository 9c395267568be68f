//! The capture path's view of a copy: the AF_XDP ring's bytes split into tag and frame, the
//! frame classified into a NetFlow v5 flow key and hashed into a VXLAN source port, and the
//! flows counted through the cache into v5 datagrams.
//!
//! The input is a run of copies, each a 2-byte length then that many bytes, and 1 byte of
//! cache size. Checked: the tag split keeps every byte; a key holds what the frame says (and
//! the same frame with its endpoints swapped gives the swapped key and the same hash); every
//! packet and byte counted ends up in exactly one exported record, and every datagram parses.
#![no_main]

use std::{collections::HashMap, time::Duration};

use etherparse::{IpNumber, LaxNetSlice, LaxSlicedPacket};
use libfuzzer_sys::fuzz_target;
use mirror::{
    capture::split_tag,
    flow_hash::{flow_hash, vxlan_source_port},
    netflow::{
        CacheConfig, Classified, ExportTime, ExporterConfig, FlowKey, FlowMeter, Interfaces,
        classify,
    },
    wire::netflow_v5::{self, HeaderRepr, RecordRepr},
};
use mirror_common::{TAG_LEN, TAG_MAGIC, Tag};
use mirror_fuzz::Bytes;

/// EtherTypes of the VLAN tags `classify` skips.
const VLAN_TPIDS: [u16; 3] = [0x8100, 0x88a8, 0x9100];

fuzz_target!(|data: &[u8]| {
    let mut bytes = Bytes::new(data);
    let max_flows = 1 + usize::from(bytes.u8() % 8);
    let cache = CacheConfig {
        inactive_timeout: Duration::from_millis(50),
        active_timeout: Duration::from_millis(200),
        max_flows,
    };
    let mut meter = FlowMeter::new(cache, ExporterConfig::default()).unwrap();
    let mut datagrams = Vec::new();
    let mut expected = Totals::default();
    let mut now = ExportTime::default();
    loop {
        let len = usize::from(bytes.u16());
        let copy = bytes.take(len);
        if copy.is_empty() {
            break;
        }
        let Some((tag, frame)) = split_tag(copy) else {
            let tag = copy.first_chunk::<TAG_LEN>().copied().and_then(Tag::from_bytes);
            assert!(copy.len() <= TAG_LEN || tag.is_none());
            continue;
        };
        assert_eq!(frame, &copy[TAG_LEN..]);
        assert!(!frame.is_empty());
        assert_eq!(tag.magic, TAG_MAGIC);
        assert_eq!(tag.to_bytes(), copy[..TAG_LEN]);
        let interfaces = Interfaces::mirrored(tag.ifindex, tag.direction());

        let classified = classify(frame, interfaces);
        check_classified(frame, interfaces, classified);
        check_hash(frame);
        if let Classified::Flow(observation) = classified {
            expected.packets += 1;
            expected.octets += u64::from(observation.octets);
            *expected.flows.entry(observation.key).or_default() += 1;
        }
        // Time moves on by the tag's low bits: flows time out and are exported on the way.
        now.uptime_ms += tag.ktime_ns % 64;
        meter.packet(frame, interfaces, now, &mut |d| datagrams.push(d.to_vec()));
        if tag.flags & 1 == 1 {
            meter.expire(now, &mut |d| datagrams.push(d.to_vec()));
        }
    }
    meter.flush(now, &mut |d| datagrams.push(d.to_vec()));
    check_export(&datagrams, &expected, now.uptime_ms);
    let counters = meter.counters();
    assert_eq!(counters.cache.packets, expected.packets);
    assert_eq!(counters.cache.octets, expected.octets);
    assert_eq!(counters.active_flows, 0);
});

#[derive(Default)]
struct Totals {
    packets: u64,
    octets: u64,
    /// Packets per flow key.
    flows: HashMap<FlowKey, u64>,
}

/// Where the IP header starts after the Ethernet header and up to 3 VLAN tags, and its
/// EtherType; `None` if the frame ends first.
fn network(frame: &[u8]) -> Option<(usize, u16)> {
    let mut at = 12;
    for _ in 0..=3 {
        let ether_type = u16::from_be_bytes(frame.get(at..at + 2)?.try_into().ok()?);
        if !VLAN_TPIDS.contains(&ether_type) || at == 12 + 4 * 3 {
            return Some((at + 2, ether_type));
        }
        at += 4;
    }
    unreachable!()
}

/// What `classify` said agrees with the frame, read here by hand.
fn check_classified(frame: &[u8], interfaces: Interfaces, classified: Classified) {
    let network = network(frame);
    match classified {
        Classified::Flow(observation) => {
            let (at, ether_type) = network.expect("a flow from a cut Ethernet header");
            assert_eq!(ether_type, 0x0800);
            let ip = &frame[at..];
            assert!(ip.len() >= 20 && ip[0] >> 4 == 4);
            let header_len = usize::from(ip[0] & 0x0f) * 4;
            let key = observation.key;
            assert_eq!(key.src.octets(), ip[12..16]);
            assert_eq!(key.dst.octets(), ip[16..20]);
            assert_eq!(key.proto, ip[9]);
            assert_eq!(key.tos, ip[1]);
            assert_eq!(
                (key.input, key.output),
                (interfaces.input, interfaces.output)
            );
            // The IPv4 total length, or what the frame holds when that is shorter than the
            // header (GSO packets).
            let total_len = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            let octets = observation.octets as usize;
            if total_len >= header_len {
                assert_eq!(octets, total_len);
            } else {
                assert_eq!(octets, ip.len());
            }
            if observation.tcp_flags != 0 {
                assert_eq!(key.proto, 6);
            }
            let first_fragment = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff == 0;
            let transport = &ip[header_len..];
            match key.proto {
                // TCP, UDP, DCCP, SCTP, UDP-Lite: the transport's first bytes (an AH header in
                // between makes the protocol 51).
                6 | 17 | 33 | 132 | 136 if first_fragment => {
                    assert_eq!(key.src_port.to_be_bytes(), transport[..2]);
                    assert_eq!(key.dst_port.to_be_bytes(), transport[2..4]);
                }
                // ICMP: type and code.
                1 if first_fragment => {
                    assert_eq!(key.src_port, 0);
                    assert_eq!(key.dst_port.to_be_bytes(), transport[..2]);
                }
                _ => assert_eq!((key.src_port, key.dst_port), (0, 0), "ports of {key:?}"),
            }
            // Endpoints swapped: the key swaps too.
            let mut swapped = frame.to_vec();
            swap(&mut swapped, at + 12, at + 16, 4);
            let Classified::Flow(other) = classify(&swapped, interfaces) else {
                panic!("swapping the addresses made {key:?} no flow");
            };
            let mut expected = observation;
            (expected.key.src, expected.key.dst) = (key.dst, key.src);
            assert_eq!(other, expected);
        }
        Classified::Ipv6 => assert_eq!(network.map(|n| n.1), Some(0x86dd)),
        Classified::NotIp => {
            let (_, ether_type) = network.expect("not IP, from a cut Ethernet header");
            assert!(ether_type != 0x0800 && ether_type != 0x86dd);
        }
        Classified::Malformed(_) => {}
    }
}

/// The flow hash is symmetric: the same frame with MAC addresses, IP addresses and the ports
/// it hashes swapped hashes the same.
fn check_hash(frame: &[u8]) {
    let hash = flow_hash(frame);
    assert!(vxlan_source_port(hash) >= 49152);
    let Ok(packet) = LaxSlicedPacket::from_ethernet(frame) else {
        return;
    };
    let offset = |part: &[u8]| part.as_ptr() as usize - frame.as_ptr() as usize;
    let mut swapped = frame.to_vec();
    swap(&mut swapped, 0, 6, 6);
    let payload = match &packet.net {
        Some(LaxNetSlice::Ipv4(ip)) => {
            let at = offset(ip.header().slice());
            swap(&mut swapped, at + 12, at + 16, 4);
            Some(ip.payload())
        }
        Some(LaxNetSlice::Ipv6(ip)) => {
            let at = offset(ip.header().slice());
            swap(&mut swapped, at + 8, at + 24, 16);
            Some(ip.payload())
        }
        _ => None,
    };
    if let Some(payload) = payload
        && !payload.fragmented
        && matches!(
            payload.ip_number,
            IpNumber::TCP | IpNumber::UDP | IpNumber::SCTP | IpNumber::DCCP | IpNumber::UDP_LITE
        )
        && payload.payload.len() >= 4
    {
        let at = offset(payload.payload);
        swap(&mut swapped, at, at + 2, 2);
    }
    assert_eq!(flow_hash(&swapped), hash, "flow hash not symmetric");
}

fn swap(bytes: &mut [u8], a: usize, b: usize, len: usize) {
    for i in 0..len {
        bytes.swap(a + i, b + i);
    }
}

/// Every datagram parses, the sequence numbers count the records, and the records add up to
/// the packets and bytes counted, each under a key that was seen.
fn check_export(datagrams: &[Vec<u8>], expected: &Totals, uptime_ms: u64) {
    let mut records = 0_u32;
    let mut packets = 0_u64;
    let mut octets = 0_u64;
    let mut per_flow: HashMap<FlowKey, u64> = HashMap::new();
    for datagram in datagrams {
        let packet = netflow_v5::Packet::new_checked(&datagram[..]).expect("whole datagram");
        let header = HeaderRepr::parse(&packet).expect("datagram header");
        assert_eq!(header.flow_sequence, records);
        assert!(header.count >= 1);
        assert_eq!(
            datagram.len(),
            netflow_v5::HEADER_LEN + usize::from(header.count) * netflow_v5::RECORD_LEN
        );
        records += u32::from(header.count);
        for record in packet.records() {
            let record = RecordRepr::parse(&record).expect("record");
            assert!(record.packets >= 1 && record.first <= record.last);
            assert!(u64::from(record.last) <= uptime_ms);
            packets += u64::from(record.packets);
            octets += u64::from(record.octets);
            let key = FlowKey {
                src: record.src_addr,
                dst: record.dst_addr,
                proto: record.protocol,
                src_port: record.src_port,
                dst_port: record.dst_port,
                tos: record.tos,
                input: record.input,
                output: record.output,
            };
            *per_flow.entry(key).or_default() += u64::from(record.packets);
        }
    }
    assert_eq!(packets, expected.packets);
    assert_eq!(octets, expected.octets);
    assert_eq!(per_flow, expected.flows);
}
