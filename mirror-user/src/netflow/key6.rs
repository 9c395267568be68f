//! What IPFIX counts an IPv6 frame under: the key v5 uses for IPv4 (addresses, protocol, ports,
//! traffic class, interfaces), its layer-3 length and its TCP flags.
//!
//! The flow label is not part of the key: Linux picks a connection's label from its socket hash
//! and picks a new one when it rethinks the route (after a retransmission timeout, say), so
//! keying on it would split one TCP connection into several flows; and a label from one packet
//! of the flow would describe the others wrongly, so it is not exported either.

use core::net::Ipv6Addr;

use etherparse::{IpNumber, LaxNetSlice, LaxSlicedPacket, TransportSlice};

use super::{Interfaces, Observation};
use crate::netflow::cache::CacheKey;

/// The fields that tell one IPv6 flow from another; ports as in [`FlowKey`](super::FlowKey),
/// with ICMPv6 type and code in `dst_port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FlowKey6 {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    /// The upper-layer protocol: the last Next Header, after any extension headers.
    pub proto: u8,
    pub src_port: u16,
    pub dst_port: u16,
    /// The traffic class byte: DSCP and ECN, as the IPv4 ToS.
    pub tclass: u8,
    pub input: u16,
    pub output: u16,
}

impl CacheKey for FlowKey6 {
    const EMPTY: FlowKey6 = FlowKey6 {
        src: Ipv6Addr::UNSPECIFIED,
        dst: Ipv6Addr::UNSPECIFIED,
        proto: 0,
        src_port: 0,
        dst_port: 0,
        tclass: 0,
        input: 0,
        output: 0,
    };
}

/// Key an Ethernet frame carrying IPv6 (VLAN tags skipped), or `None` if it does not or its
/// header cannot be read. Never panics.
///
/// The octet count is the IPv6 header plus its payload length, whatever the capture cut; a
/// jumbogram's (payload length 0) is the bytes present. Packets whose transport header is cut
/// short, and fragments (etherparse does not read the transport header of any fragment), count
/// without ports.
pub fn classify6(frame: &[u8], interfaces: Interfaces) -> Option<Observation<FlowKey6>> {
    let packet = LaxSlicedPacket::from_ethernet(frame).ok()?;
    let Some(LaxNetSlice::Ipv6(ip)) = &packet.net else {
        return None;
    };
    let header = ip.header();
    let payload_len = header.payload_length();
    let octets = if payload_len == 0 {
        header.slice().len() + ip.payload().payload.len()
    } else {
        40 + usize::from(payload_len)
    };
    let mut key = FlowKey6 {
        src: header.source_addr(),
        dst: header.destination_addr(),
        proto: ip.payload().ip_number.0,
        src_port: 0,
        dst_port: 0,
        tclass: header.traffic_class(),
        input: interfaces.input,
        output: interfaces.output,
    };
    let mut tcp_flags = 0;
    match &packet.transport {
        Some(TransportSlice::Tcp(tcp)) => {
            key.src_port = tcp.source_port();
            key.dst_port = tcp.destination_port();
            tcp_flags = tcp.slice().get(13).copied().unwrap_or(0);
        }
        Some(TransportSlice::Udp(udp)) => {
            key.src_port = udp.source_port();
            key.dst_port = udp.destination_port();
        }
        Some(TransportSlice::Icmpv6(icmp)) => {
            key.dst_port = u16::from_be_bytes([icmp.type_u8(), icmp.code_u8()]);
        }
        _ if matches!(
            ip.payload().ip_number,
            IpNumber::SCTP | IpNumber::DCCP | IpNumber::UDP_LITE
        ) && !ip.payload().fragmented =>
        {
            if let Some(&[s0, s1, d0, d1]) = ip.payload().payload.first_chunk::<4>() {
                key.src_port = u16::from_be_bytes([s0, s1]);
                key.dst_port = u16::from_be_bytes([d0, d1]);
            }
        }
        _ => {}
    }
    Some(Observation {
        key,
        octets: u32::try_from(octets).unwrap_or(u32::MAX),
        tcp_flags,
    })
}

#[cfg(test)]
mod tests {
    use etherparse::PacketBuilder;

    use super::*;

    const A: [u8; 16] = [0xfd, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const B: [u8; 16] = [0xfd, 0, 0, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    const IFACES: Interfaces = Interfaces {
        input: 0,
        output: 9,
    };

    fn builder() -> etherparse::PacketBuilderStep<etherparse::IpHeaders> {
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]).ipv6(A, B, 64)
    }

    fn key(proto: u8, src_port: u16, dst_port: u16) -> FlowKey6 {
        FlowKey6 {
            src: Ipv6Addr::from(A),
            dst: Ipv6Addr::from(B),
            proto,
            src_port,
            dst_port,
            tclass: 0,
            input: 0,
            output: 9,
        }
    }

    #[test]
    fn tcp_udp_icmpv6() {
        let mut tcp = Vec::new();
        builder()
            .tcp(40000, 443, 1, 1024)
            .syn()
            .write_to_vec(&mut tcp, b"abc")
            .unwrap();
        let obs = classify6(&tcp, IFACES).unwrap();
        assert_eq!(obs.key, key(6, 40000, 443));
        assert_eq!((obs.octets, obs.tcp_flags), (40 + 20 + 3, 0x02));

        let mut udp = Vec::new();
        builder()
            .udp(5353, 53)
            .write_to_vec(&mut udp, &[0; 10])
            .unwrap();
        let obs = classify6(&udp, IFACES).unwrap();
        assert_eq!(obs.key, key(17, 5353, 53));
        assert_eq!((obs.octets, obs.tcp_flags), (40 + 8 + 10, 0));

        let mut ping = Vec::new();
        builder()
            .icmpv6_echo_request(1, 2)
            .write_to_vec(&mut ping, &[0; 56])
            .unwrap();
        let obs = classify6(&ping, IFACES).unwrap();
        assert_eq!(obs.key, key(58, 0, 128 << 8));
        assert_eq!(obs.octets, 40 + 8 + 56);
    }

    #[test]
    fn snapped_frame_counts_whole_and_traffic_class_is_kept() {
        let mut udp = Vec::new();
        builder()
            .udp(1, 2)
            .write_to_vec(&mut udp, &[0; 500])
            .unwrap();
        // Traffic class 0xb8 (EF): the 4 bits after the version, then 4 bits of the next byte.
        udp[14] = 0x6b;
        udp[15] = 0x80;
        udp.truncate(14 + 40 + 8 + 20);
        let obs = classify6(&udp, IFACES).unwrap();
        assert_eq!(obs.octets, 40 + 8 + 500);
        assert_eq!(obs.key.tclass, 0xb8);
        assert_eq!((obs.key.src_port, obs.key.dst_port), (1, 2));
    }

    #[test]
    fn ipv6_cache_memory() {
        use crate::netflow::{CacheConfig, FlowCache};
        let cache = FlowCache::<FlowKey6>::new(CacheConfig::default()).unwrap();
        // 131 072 slots of two cache lines, and a heap of 98 305 entries of 56 bytes.
        assert_eq!(cache.memory_bytes(), 131_072 * 128 + 98_305 * 56);
    }

    #[test]
    fn not_ipv6_or_garbage_is_none() {
        let mut v4 = Vec::new();
        PacketBuilder::ethernet2([2; 6], [3; 6])
            .ipv4([1; 4], [2; 4], 64)
            .udp(1, 2)
            .write_to_vec(&mut v4, &[])
            .unwrap();
        assert_eq!(classify6(&v4, IFACES), None);
        let mut cut = Vec::new();
        builder().udp(1, 2).write_to_vec(&mut cut, &[]).unwrap();
        cut.truncate(14 + 20);
        assert_eq!(classify6(&cut, IFACES), None);
        assert_eq!(classify6(&[], IFACES), None);
    }
}
