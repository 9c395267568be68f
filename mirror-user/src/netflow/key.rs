//! What NetFlow v5 counts a frame under: its flow key, its layer-3 length and its TCP flags.

use core::{
    fmt,
    hash::{Hash, Hasher},
    net::Ipv4Addr,
};

use etherparse::{EtherType, Ethernet2Slice, IpNumber, LaxIpv4Slice, SingleVlanSlice};
use mirror_common::Direction;

/// The TCP FIN flag, as it stands in the TCP header and in a v5 record's `tcp_flags`.
pub const TCP_FIN: u8 = 0x01;
/// The TCP RST flag.
pub const TCP_RST: u8 = 0x04;

/// The SNMP interface indexes a v5 record carries, which the frame itself does not tell.
///
/// NetFlow v5 comes from routers, where a flow enters on `input` and leaves on `output`. A mirror
/// sees a packet on one interface in one direction, so the agent fills in the side it saw and
/// leaves the other at 0 ("unknown"), as [`Interfaces::mirrored`] does:
///
/// - ingress on interface `i` (received by `i`): `input = i`, `output = 0`;
/// - egress on interface `i` (sent by `i`): `input = 0`, `output = i`.
///
/// Both indexes are part of the flow key, so the same packets seen on two interfaces, or in both
/// directions of one, make distinct flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Interfaces {
    pub input: u16,
    pub output: u16,
}

impl Interfaces {
    /// The indexes for a copy taken on `ifindex` in `direction`.
    ///
    /// v5 index fields are 16 bits wide while Linux ifindexes are 32: an ifindex above 65535
    /// (a long-lived node that has created that many veths) is written modulo 2^16, as other v5
    /// exporters do, rather than being clamped to one shared value.
    pub const fn mirrored(ifindex: u32, direction: Direction) -> Interfaces {
        let index = ifindex as u16;
        match direction {
            Direction::Ingress => Interfaces {
                input: index,
                output: 0,
            },
            Direction::Egress => Interfaces {
                input: 0,
                output: index,
            },
        }
    }
}

/// The fields that tell one NetFlow v5 flow from another: Cisco's seven (addresses, protocol,
/// ports, ToS, input interface) plus the output interface, because a mirror learns the interface
/// from the direction it saw the packet in (see [`Interfaces`]).
///
/// - TCP, UDP, SCTP, DCCP and UDP-Lite: the transport ports.
/// - ICMP: `src_port` 0, `dst_port` = type * 256 + code, as Cisco exports it.
/// - Other protocols, and IPv4 fragments other than the first: both ports 0. The first fragment
///   carries the transport header and so its ports; later ones cannot, so a fragmented datagram
///   counts its first fragment under the ports and the rest under a port-0 flow, as on a router.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FlowKey {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    /// IP protocol number.
    pub proto: u8,
    pub src_port: u16,
    pub dst_port: u16,
    /// The IPv4 type of service byte: DSCP and ECN.
    pub tos: u8,
    pub input: u16,
    pub output: u16,
}

/// Hashes the key as one 128-bit word and one 16-bit word, which a word-at-a-time hasher such as
/// foldhash mixes in two steps instead of eight. Equal keys give equal hashes.
impl Hash for FlowKey {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        let addresses = (u64::from(self.src.to_bits()) << 32) | u64::from(self.dst.to_bits());
        let rest = (u64::from(self.src_port) << 48)
            | (u64::from(self.dst_port) << 32)
            | (u64::from(self.input) << 16)
            | (u64::from(self.proto) << 8)
            | u64::from(self.tos);
        state.write_u128((u128::from(addresses) << 64) | u128::from(rest));
        state.write_u16(self.output);
    }
}

/// One packet as the flow cache counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observation<K = FlowKey> {
    pub key: K,
    /// Layer-3 bytes: the IPv4 total length, so a frame cut by the snap length still counts
    /// whole (see [`classify`]).
    pub octets: u32,
    /// The TCP flags byte (CWR ECE URG ACK PSH RST SYN FIN); 0 for other protocols, for
    /// fragments other than the first, and for a TCP header cut before its flags.
    pub tcp_flags: u8,
}

/// What [`classify`] made of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Classified {
    /// An IPv4 packet, counted in a v5 flow.
    Flow(Observation),
    /// IPv6: v5 records hold IPv4 addresses only, so these are counted apart, not exported.
    Ipv6,
    /// Neither IPv4 nor IPv6 (ARP, LLDP, ...).
    NotIp,
    /// A frame that says it carries IP but cannot be read far enough to key it.
    Malformed(Malformed),
}

/// Why a frame could not be keyed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Shorter than an Ethernet header.
    Ethernet,
    /// A VLAN tag cut short.
    VlanTag,
    /// An IPv4 header that etherparse cannot read: cut short, or a wrong version or length.
    Ipv4Header,
    /// An IPv4 packet (or first fragment) cut before the ports, or ICMP type and code, that its
    /// key needs.
    Transport,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Malformed::Ethernet => "shorter than an Ethernet header",
            Malformed::VlanTag => "VLAN tag cut short",
            Malformed::Ipv4Header => "unreadable IPv4 header",
            Malformed::Transport => "transport header cut before the ports",
        })
    }
}

/// Most VLAN tags skipped in front of the IP header (QinQ and one more).
const MAX_VLAN_TAGS: usize = 3;

/// Classify a whole Ethernet frame for NetFlow v5, without allocating and without panicking on
/// any input.
///
/// Up to three VLAN tags (802.1Q, 802.1ad QinQ, the old 0x9100) are skipped. IPv6 frames are
/// recognised by their `EtherType` and not parsed further; other `EtherType`s (ARP, LLDP,
/// MACsec, ...) are not IP. `interfaces` is not read from the frame: the caller knows where and
/// in which direction the copy was taken (see [`Interfaces`]).
///
/// The octet count is the IPv4 total length: NetFlow counts layer-3 bytes, and the capture may
/// have cut the frame (snap length) or padded it (short Ethernet frames). A total length
/// shorter than the header itself, as GSO packets above 64 KiB carry, is replaced by the bytes
/// present from the IPv4 header on.
///
/// The protocol is the IPv4 header's: a packet behind an IPsec AH header counts as protocol 51
/// without ports, as on a router.
///
/// etherparse reads each header with its slice type, layer by layer, rather than with
/// `LaxSlicedPacket`, which also parses the transport header: 15 ns a frame instead of 70.
pub fn classify(frame: &[u8], interfaces: Interfaces) -> Classified {
    let Ok(ethernet) = Ethernet2Slice::from_slice_without_fcs(frame) else {
        return Classified::Malformed(Malformed::Ethernet);
    };
    let mut payload = ethernet.payload();
    for _ in 0..MAX_VLAN_TAGS {
        match payload.ether_type {
            EtherType::VLAN_TAGGED_FRAME
            | EtherType::PROVIDER_BRIDGING
            | EtherType::VLAN_DOUBLE_TAGGED_FRAME => {
                match SingleVlanSlice::from_slice(payload.payload) {
                    Ok(vlan) => payload = vlan.payload(),
                    Err(_) => return Classified::Malformed(Malformed::VlanTag),
                }
            }
            _ => break,
        }
    }
    match payload.ether_type {
        EtherType::IPV4 => {}
        EtherType::IPV6 => return Classified::Ipv6,
        _ => return Classified::NotIp,
    }
    // From the IPv4 header to the end of the frame.
    let present = payload.payload.len();
    let Ok((ip, _)) = LaxIpv4Slice::from_slice(payload.payload) else {
        return Classified::Malformed(Malformed::Ipv4Header);
    };
    let header = ip.header();
    let payload = ip.payload();
    let proto = header.protocol();

    let total_len = usize::from(header.total_len());
    let header_len = header.slice().len();
    // Not the header plus the payload etherparse gives: that leaves out an AH header.
    let octets = if total_len >= header_len {
        total_len
    } else {
        present
    };

    let mut key = FlowKey {
        src: header.source_addr(),
        dst: header.destination_addr(),
        proto: proto.0,
        src_port: 0,
        dst_port: 0,
        tos: (header.dcp().value() << 2) | header.ecn().value(),
        input: interfaces.input,
        output: interfaces.output,
    };
    let mut tcp_flags = 0;
    // A first fragment carries the transport header, later ones do not. With an AH header in
    // between, etherparse's payload starts after it: the key keeps protocol 51 and no ports.
    if header.fragments_offset().value() == 0 && payload.ip_number == proto {
        let transport = payload.payload;
        match proto {
            IpNumber::TCP
            | IpNumber::UDP
            | IpNumber::SCTP
            | IpNumber::DCCP
            | IpNumber::UDP_LITE => {
                let Some(&[s0, s1, d0, d1]) = transport.first_chunk::<4>() else {
                    return Classified::Malformed(Malformed::Transport);
                };
                key.src_port = u16::from_be_bytes([s0, s1]);
                key.dst_port = u16::from_be_bytes([d0, d1]);
                if proto == IpNumber::TCP {
                    // Byte 13 of the TCP header; absent if the capture cut the header there.
                    tcp_flags = transport.get(13).copied().unwrap_or(0);
                }
            }
            IpNumber::ICMP => {
                let Some(&[icmp_type, code]) = transport.first_chunk::<2>() else {
                    return Classified::Malformed(Malformed::Transport);
                };
                key.dst_port = u16::from_be_bytes([icmp_type, code]);
            }
            _ => {}
        }
    }
    Classified::Flow(Observation {
        key,
        // An IPv4 total length is at most 65535, and a frame slice is far below u32::MAX.
        octets: u32::try_from(octets).unwrap_or(u32::MAX),
        tcp_flags,
    })
}

#[cfg(test)]
mod tests {
    use etherparse::{
        EtherType, IpFragOffset, IpHeaders, Ipv4Extensions, Ipv4Header, PacketBuilder, VlanId,
    };

    use super::*;

    const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
    const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
    const IP_A: [u8; 4] = [10, 0, 0, 1];
    const IP_B: [u8; 4] = [10, 0, 0, 2];
    const PAYLOAD: &[u8] = b"hello, netflow";
    const IFACES: Interfaces = Interfaces {
        input: 7,
        output: 0,
    };

    fn flow(frame: &[u8]) -> Observation {
        match classify(frame, IFACES) {
            Classified::Flow(obs) => obs,
            other => panic!("not a flow: {other:?}"),
        }
    }

    fn key(proto: u8, src_port: u16, dst_port: u16) -> FlowKey {
        FlowKey {
            src: Ipv4Addr::from(IP_A),
            dst: Ipv4Addr::from(IP_B),
            proto,
            src_port,
            dst_port,
            tos: 0,
            input: 7,
            output: 0,
        }
    }

    fn tcp_frame() -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4(IP_A, IP_B, 64)
            .tcp(40000, 443, 1, 1024)
            .syn()
            .ack(5)
            .write_to_vec(&mut out, PAYLOAD)
            .unwrap();
        out
    }

    fn ipv4_frame(header: Ipv4Header, proto: IpNumber, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ip(IpHeaders::Ipv4(header, Ipv4Extensions::default()))
            .write_to_vec(&mut out, proto, payload)
            .unwrap();
        out
    }

    fn ipv4_header() -> Ipv4Header {
        Ipv4Header {
            time_to_live: 64,
            source: IP_A,
            destination: IP_B,
            ..Ipv4Header::default()
        }
    }

    #[test]
    fn tcp() {
        let frame = tcp_frame();
        let obs = flow(&frame);
        assert_eq!(obs.key, key(6, 40000, 443));
        // IPv4 20 + TCP 20 + payload.
        assert_eq!(obs.octets, 40 + PAYLOAD.len() as u32);
        assert_eq!(obs.tcp_flags, 0x12); // SYN | ACK
    }

    #[test]
    fn tcp_flags_fin_rst_psh() {
        let mut out = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4(IP_A, IP_B, 64)
            .tcp(1, 2, 1, 1024)
            .fin()
            .rst()
            .psh()
            .write_to_vec(&mut out, &[])
            .unwrap();
        assert_eq!(flow(&out).tcp_flags, TCP_FIN | TCP_RST | 0x08);
    }

    #[test]
    fn udp() {
        let mut out = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4(IP_A, IP_B, 64)
            .udp(5353, 53)
            .write_to_vec(&mut out, PAYLOAD)
            .unwrap();
        let obs = flow(&out);
        assert_eq!(obs.key, key(17, 5353, 53));
        assert_eq!(obs.octets, 28 + PAYLOAD.len() as u32);
        assert_eq!(obs.tcp_flags, 0);
    }

    #[test]
    fn icmp_type_and_code_in_dst_port() {
        let mut out = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4(IP_A, IP_B, 64)
            .icmpv4_echo_request(7, 1)
            .write_to_vec(&mut out, PAYLOAD)
            .unwrap();
        assert_eq!(flow(&out).key, key(1, 0, 8 * 256));
        // Destination unreachable (3), port unreachable (3).
        let mut out = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4(IP_A, IP_B, 64)
            .icmpv4_raw(3, 3, [0; 4])
            .write_to_vec(&mut out, PAYLOAD)
            .unwrap();
        assert_eq!(flow(&out).key, key(1, 0, 0x0303));
    }

    #[test]
    fn port_transports() {
        for proto in [IpNumber::SCTP, IpNumber::DCCP, IpNumber::UDP_LITE] {
            let payload = [0x0b, 0x59, 0x0b, 0x5a, 0, 0, 0, 0, 0, 0, 0, 0];
            let frame = ipv4_frame(ipv4_header(), proto, &payload);
            assert_eq!(flow(&frame).key, key(proto.0, 2905, 2906), "{proto:?}");
        }
    }

    #[test]
    fn other_protocols_have_no_ports() {
        for proto in [
            IpNumber::GRE,
            IpNumber::ENCAPSULATING_SECURITY_PAYLOAD,
            IpNumber(253),
        ] {
            let frame = ipv4_frame(ipv4_header(), proto, &[1, 2, 3, 4, 5, 6, 7, 8]);
            let obs = flow(&frame);
            assert_eq!(obs.key, key(proto.0, 0, 0), "{proto:?}");
            assert_eq!(obs.octets, 28);
        }
        // Nothing at all after the header is fine too.
        let frame = ipv4_frame(ipv4_header(), IpNumber(253), &[]);
        assert_eq!(flow(&frame).key, key(253, 0, 0));
    }

    #[test]
    fn behind_ip_auth_header_no_ports() {
        // AH: next header TCP, payload length 1 (12-byte header), SPI, sequence, 4-byte ICV.
        let mut ah = vec![6, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1];
        ah.extend_from_slice(&[0x9c, 0x40, 0x01, 0xbb, 0, 0, 0, 0]);
        let frame = ipv4_frame(ipv4_header(), IpNumber::AUTHENTICATION_HEADER, &ah);
        assert_eq!(flow(&frame).key, key(51, 0, 0));
    }

    /// Found by the `inner_classify` fuzz target: a GSO packet (total length 0) behind an AH
    /// header counted its bytes without the AH header's.
    #[test]
    fn gso_behind_ip_auth_header_counts_every_byte() {
        let mut ah = vec![6, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1];
        ah.extend_from_slice(&[0x9c, 0x40, 0x01, 0xbb, 0, 0, 0, 0]);
        let mut frame = ipv4_frame(ipv4_header(), IpNumber::AUTHENTICATION_HEADER, &ah);
        assert_eq!(flow(&frame).octets, 20 + 20);
        frame[16..18].copy_from_slice(&[0, 0]);
        assert_eq!(flow(&frame).octets, 20 + 20);
    }

    #[test]
    fn tos_and_interfaces() {
        let header = Ipv4Header {
            dscp: etherparse::IpDscp::try_new(46).unwrap(),
            ecn: etherparse::IpEcn::try_new(1).unwrap(),
            ..ipv4_header()
        };
        let frame = ipv4_frame(header, IpNumber::UDP, &[0, 1, 0, 2, 0, 8, 0, 0]);
        let egress = Interfaces::mirrored(9, Direction::Egress);
        let Classified::Flow(obs) = classify(&frame, egress) else {
            panic!("not a flow");
        };
        assert_eq!(obs.key.tos, 0xb9);
        assert_eq!((obs.key.input, obs.key.output), (0, 9));
    }

    #[test]
    fn interfaces_by_direction() {
        assert_eq!(
            Interfaces::mirrored(3, Direction::Ingress),
            Interfaces {
                input: 3,
                output: 0
            }
        );
        assert_eq!(
            Interfaces::mirrored(3, Direction::Egress),
            Interfaces {
                input: 0,
                output: 3
            }
        );
        assert_eq!(Interfaces::mirrored(65536 + 5, Direction::Ingress).input, 5);
    }

    fn fragment(offset: u16, more: bool, payload: &[u8]) -> Vec<u8> {
        let header = Ipv4Header {
            more_fragments: more,
            fragment_offset: IpFragOffset::try_new(offset).unwrap(),
            ..ipv4_header()
        };
        ipv4_frame(header, IpNumber::UDP, payload)
    }

    #[test]
    fn fragments() {
        // The first fragment starts with the UDP header (1111 -> 2222) and keeps the ports.
        let first = fragment(0, true, &[0x04, 0x57, 0x08, 0xae, 0, 16, 0, 0, 1, 2, 3, 4]);
        assert_eq!(flow(&first).key, key(17, 1111, 2222));
        // Later fragments carry no transport header: ports 0, whatever their bytes look like.
        let middle = fragment(2, true, &[0x04, 0x57, 0x08, 0xae, 0, 0, 0, 0]);
        let last = fragment(3, false, &[5, 6, 7, 8]);
        assert_eq!(flow(&middle).key, key(17, 0, 0));
        assert_eq!(flow(&last).key, key(17, 0, 0));
        assert_eq!(flow(&last).octets, 24);
        // A later TCP fragment has no flags either.
        let header = Ipv4Header {
            fragment_offset: IpFragOffset::try_new(1).unwrap(),
            ..ipv4_header()
        };
        let tcp_tail = ipv4_frame(header, IpNumber::TCP, &[0xff; 20]);
        assert_eq!(flow(&tcp_tail).tcp_flags, 0);
        assert_eq!(flow(&tcp_tail).key, key(6, 0, 0));
    }

    #[test]
    fn vlan_and_qinq_are_skipped() {
        let untagged = flow(&tcp_frame());
        let mut single = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .single_vlan(VlanId::try_new(100).unwrap())
            .ipv4(IP_A, IP_B, 64)
            .tcp(40000, 443, 1, 1024)
            .syn()
            .ack(5)
            .write_to_vec(&mut single, PAYLOAD)
            .unwrap();
        let mut double = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .double_vlan(VlanId::try_new(10).unwrap(), VlanId::try_new(20).unwrap())
            .ipv4(IP_A, IP_B, 64)
            .tcp(40000, 443, 1, 1024)
            .syn()
            .ack(5)
            .write_to_vec(&mut double, PAYLOAD)
            .unwrap();
        assert_eq!(single.len(), tcp_frame().len() + 4);
        assert_eq!(double.len(), tcp_frame().len() + 8);
        assert_eq!(flow(&single), untagged);
        assert_eq!(flow(&double), untagged);
    }

    #[test]
    fn three_tags_are_skipped_four_are_not() {
        let untagged = tcp_frame();
        let tagged = |tags: usize| {
            let mut frame = untagged[..12].to_vec();
            for _ in 0..tags {
                frame.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
            }
            frame.extend_from_slice(&untagged[12..]);
            frame
        };
        assert_eq!(flow(&tagged(3)), flow(&untagged));
        assert_eq!(classify(&tagged(4), IFACES), Classified::NotIp);
    }

    #[test]
    fn ipv6_is_counted_apart() {
        let mut out = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv6([0x20; 16], [0x21; 16], 64)
            .udp(1, 2)
            .write_to_vec(&mut out, PAYLOAD)
            .unwrap();
        assert_eq!(classify(&out, IFACES), Classified::Ipv6);
        let mut tagged = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .single_vlan(VlanId::try_new(5).unwrap())
            .ipv6([0x20; 16], [0x21; 16], 64)
            .tcp(1, 2, 3, 4)
            .write_to_vec(&mut tagged, PAYLOAD)
            .unwrap();
        assert_eq!(classify(&tagged, IFACES), Classified::Ipv6);
    }

    #[test]
    fn non_ip() {
        for ether_type in [0x0806_u16, 0x88cc, 0x88e5, 0x0042, 0xffff] {
            let mut frame = [MAC_B, MAC_A].concat();
            frame.extend_from_slice(&ether_type.to_be_bytes());
            frame.extend_from_slice(&[0; 46]);
            assert_eq!(
                classify(&frame, IFACES),
                Classified::NotIp,
                "{ether_type:#06x}"
            );
        }
    }

    #[test]
    fn octets_from_total_length() {
        let frame = tcp_frame();
        let whole = flow(&frame).octets;
        // Cut by a snap length: still counted whole.
        assert_eq!(flow(&frame[..14 + 20 + 14]).octets, whole);
        // Padded to the Ethernet minimum: the padding is not layer 3.
        let mut out = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .ipv4(IP_A, IP_B, 64)
            .udp(1, 2)
            .write_to_vec(&mut out, &[])
            .unwrap();
        out.resize(60, 0);
        assert_eq!(flow(&out).octets, 28);
        // Total length 0 (a GSO packet above 64 KiB): the bytes present count.
        let mut big = tcp_frame();
        big[16..18].copy_from_slice(&[0, 0]);
        assert_eq!(flow(&big).octets, whole);
    }

    #[test]
    fn every_truncation_is_handled() {
        let frame = tcp_frame();
        for len in 0..=frame.len() {
            let got = classify(&frame[..len], IFACES);
            let expected = match len {
                0..14 => Classified::Malformed(Malformed::Ethernet),
                14..34 => Classified::Malformed(Malformed::Ipv4Header),
                34..38 => Classified::Malformed(Malformed::Transport),
                _ => {
                    let Classified::Flow(obs) = got else {
                        panic!("len {len}: {got:?}")
                    };
                    // The key and the octets from the first 4 TCP bytes on; the flags from 48 on.
                    assert_eq!(obs.key, key(6, 40000, 443), "len {len}");
                    assert_eq!(obs.octets, 54, "len {len}");
                    let flags = if len >= 48 { 0x12 } else { 0 };
                    assert_eq!(obs.tcp_flags, flags, "len {len}");
                    continue;
                }
            };
            assert_eq!(got, expected, "len {len}");
        }
        // The same for a QinQ frame, whose tags can be cut too.
        let mut double = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .double_vlan(VlanId::try_new(10).unwrap(), VlanId::try_new(20).unwrap())
            .ipv4(IP_A, IP_B, 64)
            .icmpv4_echo_request(1, 1)
            .write_to_vec(&mut double, PAYLOAD)
            .unwrap();
        for len in 0..=double.len() {
            let got = classify(&double[..len], IFACES);
            match len {
                0..14 => assert_eq!(got, Classified::Malformed(Malformed::Ethernet)),
                14..22 => assert_eq!(got, Classified::Malformed(Malformed::VlanTag), "len {len}"),
                22..42 => assert_eq!(
                    got,
                    Classified::Malformed(Malformed::Ipv4Header),
                    "len {len}"
                ),
                42..44 => assert_eq!(got, Classified::Malformed(Malformed::Transport)),
                _ => assert_eq!(got, Classified::Flow(flow(&double)), "len {len}"),
            }
        }
    }

    #[test]
    fn bad_ipv4_headers_are_malformed() {
        let frame = tcp_frame();
        for (byte, value) in [(14, 0x55), (14, 0x44), (14, 0x4f)] {
            let mut bad = frame.clone();
            bad[byte] = value;
            assert_eq!(
                classify(&bad, IFACES),
                Classified::Malformed(Malformed::Ipv4Header),
                "byte {byte} = {value:#x}"
            );
        }
        assert_eq!(Malformed::Ipv4Header.to_string(), "unreadable IPv4 header");
        assert_eq!(
            Malformed::Transport.to_string(),
            "transport header cut before the ports"
        );
    }

    /// Small deterministic PRNG (xorshift32): reproducible failures.
    struct XorShift(u32);

    impl XorShift {
        fn next(&mut self) -> u32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 17;
            self.0 ^= self.0 << 5;
            self.0
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = XorShift(0x9e37_79b9);
        let mut flows = 0;
        for round in 0..30_000 {
            let len = rng.next() as usize % 120;
            let mut frame: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            // Steer most rounds past Ethernet into the VLAN and IP parsers.
            if frame.len() >= 15 && round % 4 != 0 {
                let ether_type = [
                    EtherType::IPV4,
                    EtherType::IPV6,
                    EtherType::VLAN_TAGGED_FRAME,
                ][round % 3];
                frame[12..14].copy_from_slice(&ether_type.0.to_be_bytes());
                frame[14] = if ether_type == EtherType::IPV6 {
                    0x60
                } else {
                    0x45
                };
            }
            if let Classified::Flow(obs) = classify(&frame, IFACES) {
                flows += 1;
                assert!(obs.octets >= 20);
            }
        }
        assert!(flows > 1000, "only {flows} random frames reached a flow");
    }

    #[test]
    fn hash_follows_equality() {
        use core::hash::BuildHasher;

        let state = foldhash::fast::FixedState::with_seed(1);
        let a = key(6, 1, 2);
        assert_eq!(state.hash_one(a), state.hash_one(a));
        let others = [
            FlowKey { output: 1, ..a },
            FlowKey { input: 8, ..a },
            FlowKey { tos: 4, ..a },
            FlowKey { proto: 17, ..a },
            FlowKey {
                src_port: 2,
                dst_port: 1,
                ..a
            },
            FlowKey {
                src: a.dst,
                dst: a.src,
                ..a
            },
        ];
        for other in others {
            assert_ne!(other, a);
            assert_ne!(state.hash_one(other), state.hash_one(a), "{other:?}");
        }
    }
}
