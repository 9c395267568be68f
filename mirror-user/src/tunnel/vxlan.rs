//! The VXLAN part of a copy's outer headers: UDP (8) + VXLAN (8) after the outer IP header, in
//! front of the inner Ethernet frame.
//!
//! The UDP source port comes from the inner flow hash (RFC 7348 §5). The UDP checksum:
//! - over IPv4, zero, as RFC 7348 §5 recommends, which spares a pass over the frame;
//! - over IPv6, computed over the pseudo-header, UDP and VXLAN headers and the whole inner
//!   frame. RFC 8200 §8.1 requires it; RFC 6935/6936 would allow zero for tunnels, but Linux
//!   VXLAN devices drop such packets unless `udp6zerocsumrx` is set. This is the one per-packet
//!   pass over the inner frame (the headers' part is summed once, in the template): a
//!   vectorised sum of 32-bit words, about as costly as copying the frame once.

use etherparse::UdpHeader;

use super::outer::{copy, put};
use crate::{
    flow_hash::vxlan_source_port,
    wire::{
        checksum,
        vxlan::{self, Packet, Repr, Vni},
    },
};

/// Length of the UDP and VXLAN headers.
pub(super) const LEN: usize = UdpHeader::LEN + vxlan::HEADER_LEN;

/// Byte ranges from the start of the UDP header.
mod field {
    use core::ops::Range;

    pub const SRC_PORT: Range<usize> = 0..2;
    pub const LENGTH: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
    pub const VXLAN: Range<usize> = 8..16;
}

/// Write the UDP and VXLAN template at the start of `out`: zero source port, length and
/// checksum. Return the unfolded sum of the template, the constant part of an IPv6 UDP checksum.
pub(super) fn write_template(out: &mut [u8], dst_port: u16, vni: Vni) -> u64 {
    let udp = UdpHeader {
        source_port: 0,
        destination_port: dst_port,
        length: 0,
        checksum: 0,
    };
    copy(out, &udp.to_bytes());
    if let Some(header) = out.get_mut(field::VXLAN) {
        Repr { vni }.emit(&mut Packet::new_unchecked(header));
    }
    out.get(..LEN).map_or(0, checksum::sum)
}

/// Patch the copy of the template at the start of `out` for `inner`: source port from
/// `flow_hash`, length, and with `checksum_base` (IPv6: pseudo-header without the length plus
/// the template) the checksum.
pub(super) fn patch(out: &mut [u8], inner: &[u8], flow_hash: u32, checksum_base: Option<u64>) {
    let udp_len = u16::try_from(LEN.saturating_add(inner.len())).unwrap_or(u16::MAX);
    let src_port = vxlan_source_port(flow_hash);
    put(out, field::SRC_PORT, &src_port.to_be_bytes());
    put(out, field::LENGTH, &udp_len.to_be_bytes());
    if let Some(base) = checksum_base {
        // The length counts twice: in the pseudo-header and in the UDP header.
        let header_sum = base + u64::from(src_port) + 2 * u64::from(udp_len);
        let sum = checksum::add(header_sum, checksum::sum(inner));
        // RFC 768: a computed zero goes out as all ones; zero would mean "no checksum".
        let value = match checksum::complement(sum) {
            0 => 0xffff,
            value => value,
        };
        put(out, field::CHECKSUM, &value.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use core::net::{IpAddr, Ipv4Addr};

    use etherparse::{
        IpNumber, Ipv4Header, Ipv4HeaderSlice, Ipv6HeaderSlice, NetSlice, PacketBuilder,
        SlicedPacket, TransportSlice, UdpHeaderSlice,
    };

    use super::{
        super::{CopyMeta, Encap, MAX_HEADER_LEN, Tunnel, testing::*},
        *,
    };
    use crate::flow_hash::flow_hash;

    /// Longest inner frame whose copy fits the 16-bit IPv4 total length.
    const MAX_INNER_LEN: usize = u16::MAX as usize - 36;

    fn tunnel(vni: u32, dst_port: u16) -> Tunnel {
        Tunnel::Vxlan {
            vni: Vni::new(vni).unwrap(),
            dst_port,
        }
    }

    fn encap_v4(src: Ipv4Addr, dst: Ipv4Addr, vni: u32, dst_port: u16) -> Encap {
        Encap::new(&tunnel(vni, dst_port), src.into(), dst.into()).unwrap()
    }

    fn encap() -> Encap {
        encap_v4(SRC4, DST4, 0x12_3456, 4789)
    }

    fn encap_v6() -> Encap {
        Encap::new(&tunnel(0x12_3456, 4789), SRC6.into(), DST6.into()).unwrap()
    }

    fn encapsulate(encap: &mut Encap, inner: &[u8]) -> Vec<u8> {
        headers(encap, inner, &CopyMeta::default())
    }

    #[test]
    fn header_len() {
        assert_eq!(encap().header_len(), 36);
        assert_eq!(encap_v6().header_len(), 56);
        assert_eq!(LEN, 16);
    }

    #[test]
    fn golden_bytes() {
        let inner = inner_frame(22);
        assert_eq!(inner.len(), 64);
        let src_port = vxlan_source_port(flow_hash(&inner));
        // Pinned so that a change of the flow hash, which changes bytes on the wire, is noticed.
        assert_eq!(src_port, 0xded0);
        #[rustfmt::skip]
        let expected: [u8; 36] = [
            // IPv4
            0x45, 0x00,             // version 4, IHL 5; DSCP 0, ECN 0
            0x00, 0x64,             // total length 100 = 36 + 64
            0x00, 0x00,             // identification 0
            0x40, 0x00,             // flags DF, fragment offset 0
            0x40, 0x11,             // TTL 64, protocol 17 (UDP)
            0x26, 0x87,             // checksum: 4500 + 0064 + 0000 + 4000 + 4011
                                    //   + 0a00 + 0001 + 0a00 + 0002 = d978, !d978 = 2687
            0x0a, 0x00, 0x00, 0x01, // source 10.0.0.1
            0x0a, 0x00, 0x00, 0x02, // destination 10.0.0.2
            // UDP
            0xde, 0xd0,             // source port: vxlan_source_port(flow_hash(inner))
            0x12, 0xb5,             // destination port 4789
            0x00, 0x50,             // length 80 = 8 + 8 + 64
            0x00, 0x00,             // checksum 0 (RFC 7348 §5, IPv4)
            // VXLAN
            0x08, 0x00, 0x00, 0x00, // I flag, reserved
            0x12, 0x34, 0x56, 0x00, // VNI 0x123456, reserved
        ];
        assert_eq!(encapsulate(&mut encap(), &inner), expected);
    }

    #[test]
    fn golden_bytes_ipv6() {
        let inner = inner_frame(22);
        // The flow label: the low 20 bits of the same flow hash as the source port.
        assert_eq!(flow_hash(&inner) & 0xf_ffff, 0x1_f0cc);
        #[rustfmt::skip]
        let expected: [u8; 56] = [
            // IPv6
            0x60, 0x01, 0xf0, 0xcc, // version 6, traffic class 0, flow label 0x1f0cc
            0x00, 0x50, 0x11, 0x40, // payload length 80 = 16 + 64, next header UDP, hop limit 64
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, // 2001:db8::1
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, // 2001:db8::2
            // UDP
            0xde, 0xd0,             // source port, as over IPv4
            0x12, 0xb5,             // destination port 4789
            0x00, 0x50,             // length 80
            0xb9, 0x9f,             // checksum over pseudo-header, UDP, VXLAN and inner frame
            // VXLAN
            0x08, 0x00, 0x00, 0x00,
            0x12, 0x34, 0x56, 0x00,
        ];
        let header = encapsulate(&mut encap_v6(), &inner);
        assert_eq!(header, expected);
        // The checksum, by etherparse.
        let udp = UdpHeaderSlice::from_slice(&header[40..48])
            .unwrap()
            .to_header();
        let ip = Ipv6HeaderSlice::from_slice(&header[..40]).unwrap();
        let payload = [&header[48..], &inner[..]].concat();
        assert_eq!(
            udp.calc_checksum_ipv6_raw(ip.source(), ip.destination(), &payload),
            Ok(0xb99f)
        );
    }

    #[test]
    fn ipv6_checksum_is_valid() {
        let mut encap = encap_v6();
        let mut frames: Vec<Vec<u8>> = [0, 1, 2, 3, 5, 22, 1000, 1401, 8000]
            .map(inner_frame)
            .to_vec();
        frames.extend([
            Vec::new(),
            vec![0xff; 1],
            vec![0x5a; 14],
            vec![0xff; 65_519],
        ]);
        for inner in frames {
            let header = encapsulate(&mut encap, &inner);
            let udp = UdpHeaderSlice::from_slice(&header[40..48]).unwrap();
            let payload = [&header[48..], &inner[..]].concat();
            let expected = udp
                .to_header()
                .calc_checksum_ipv6_raw(SRC6.octets(), DST6.octets(), &payload)
                .unwrap();
            assert_eq!(udp.checksum(), expected, "inner {}", inner.len());
            assert_ne!(udp.checksum(), 0);
            // The receiver's check: everything the checksum covers sums to all ones.
            let pseudo = [
                &SRC6.octets()[..],
                &DST6.octets(),
                &u32::from(udp.length()).to_be_bytes(),
                &[0, 0, 0, 17],
            ]
            .concat();
            let covered = [&pseudo[..], &header[40..], &inner].concat();
            assert_eq!(checksum::fold(checksum::sum(&covered)), 0xffff);
        }
    }

    #[test]
    fn ipv6_zero_checksum_goes_out_as_all_ones() {
        let mut encap = encap_v6();
        // Make the inner frame's last word the checksum of the frame without it: the sum then
        // comes to all ones, whose complement, zero, must be sent as 0xffff.
        let mut inner = inner_frame(20);
        let n = inner.len();
        inner[n - 2..].fill(0);
        let header = encapsulate(&mut encap, &inner);
        inner[n - 2..].copy_from_slice(&header[46..48]);
        let header = encapsulate(&mut encap, &inner);
        assert_eq!(header[46..48], [0xff, 0xff]);
        let payload = [&header[48..], &inner[..]].concat();
        let udp = UdpHeaderSlice::from_slice(&header[40..48])
            .unwrap()
            .to_header();
        assert_eq!(
            udp.calc_checksum_ipv6_raw(SRC6.octets(), DST6.octets(), &payload),
            Ok(0xffff)
        );
    }

    #[test]
    fn ipv4_checksum_is_valid() {
        let remotes = [
            (SRC4, DST4),
            (Ipv4Addr::BROADCAST, Ipv4Addr::new(255, 255, 255, 254)),
            (Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED),
            (
                Ipv4Addr::new(172, 16, 254, 3),
                Ipv4Addr::new(192, 0, 2, 200),
            ),
        ];
        for (src, dst) in remotes {
            let mut encap = encap_v4(src, dst, 0xff_ffff, 8472);
            for len in [0, 1, 14, 60, 64, 1400, 1500, 9000, MAX_INNER_LEN] {
                let out = encapsulate(&mut encap, &vec![0x11; len]);
                let ip = Ipv4HeaderSlice::from_slice(&out[..20]).unwrap();
                assert_eq!(
                    ip.header_checksum(),
                    ip.to_header().calc_header_checksum(),
                    "{src} -> {dst}, inner {len}"
                );
                assert_eq!(checksum::fold(checksum::sum(&out[..20])), 0xffff);
            }
        }
    }

    #[test]
    fn matches_a_full_etherparse_serialisation() {
        let mut encap = encap();
        for len in [0, 60, 1514, 9014, MAX_INNER_LEN] {
            let inner = vec![0x22; len];
            let out = encapsulate(&mut encap, &inner);
            let mut ip = Ipv4Header::new(
                (UdpHeader::LEN + vxlan::HEADER_LEN + len) as u16,
                64,
                IpNumber::UDP,
                SRC4.octets(),
                DST4.octets(),
            )
            .unwrap();
            ip.dont_fragment = true;
            ip.header_checksum = ip.calc_header_checksum();
            let udp = UdpHeader {
                source_port: vxlan_source_port(flow_hash(&inner)),
                destination_port: 4789,
                length: (UdpHeader::LEN + vxlan::HEADER_LEN + len) as u16,
                checksum: 0,
            };
            assert_eq!(out[..20], ip.to_bytes()[..], "inner {len}");
            assert_eq!(out[20..28], udp.to_bytes(), "inner {len}");
        }
    }

    #[test]
    fn lengths_follow_the_inner_frame() {
        let mut encap = encap();
        let mut v6 = encap_v6();
        for len in [0, 1, 14, 60, 1500, 9000, MAX_INNER_LEN] {
            let out = encapsulate(&mut encap, &vec![0; len]);
            let ip = Ipv4HeaderSlice::from_slice(&out[..20]).unwrap();
            let udp = UdpHeaderSlice::from_slice(&out[20..28]).unwrap();
            assert_eq!(usize::from(ip.total_len()), 36 + len);
            assert_eq!(usize::from(udp.length()), 16 + len);
            let out = encapsulate(&mut v6, &vec![0; len]);
            let ip = Ipv6HeaderSlice::from_slice(&out[..40]).unwrap();
            let udp = UdpHeaderSlice::from_slice(&out[40..48]).unwrap();
            assert_eq!(usize::from(ip.payload_length()), 16 + len);
            assert_eq!(usize::from(udp.length()), 16 + len);
        }
    }

    #[test]
    fn oversized_inner_saturates_without_panicking() {
        let out = encapsulate(&mut encap(), &vec![0; MAX_INNER_LEN + 1]);
        let ip = Ipv4HeaderSlice::from_slice(&out[..20]).unwrap();
        assert_eq!(ip.total_len(), u16::MAX);
        assert_eq!(ip.header_checksum(), ip.to_header().calc_header_checksum());
        let out = encapsulate(&mut encap_v6(), &vec![0; 70_000]);
        assert_eq!(
            UdpHeaderSlice::from_slice(&out[40..48]).unwrap().length(),
            u16::MAX
        );
    }

    #[test]
    fn reusing_the_output_buffer_leaves_nothing_stale() {
        for mut encap in [encap(), encap_v6()] {
            let small = inner_frame(0);
            let mut out = [0_u8; MAX_HEADER_LEN];
            encap.write_header(&inner_frame(1000), &CopyMeta::default(), &mut out);
            let len = encap.write_header(&small, &CopyMeta::default(), &mut out);
            assert_eq!(out[..len], encapsulate(&mut encap, &small));
        }
    }

    #[test]
    fn full_packet_parses() {
        let families: [(IpAddr, IpAddr); 2] =
            [(SRC4.into(), DST4.into()), (SRC6.into(), DST6.into())];
        for (src, dst) in families {
            let mut encap = Encap::new(&tunnel(4242, 8472), src, dst).unwrap();
            for payload_len in [0, 22, 1000] {
                let inner = inner_frame(payload_len);
                let packet = packet(&mut encap, &inner, &CopyMeta::default());

                let sliced = SlicedPacket::from_ip(&packet).unwrap();
                match &sliced.net {
                    Some(NetSlice::Ipv4(ip)) => {
                        let header = ip.header();
                        assert_eq!(IpAddr::from(header.source_addr()), src);
                        assert_eq!(IpAddr::from(header.destination_addr()), dst);
                        assert!(header.dont_fragment());
                        assert_eq!(header.ttl(), 64);
                        assert_eq!(header.identification(), 0);
                    }
                    Some(NetSlice::Ipv6(ip)) => {
                        let header = ip.header();
                        assert_eq!(IpAddr::from(header.source_addr()), src);
                        assert_eq!(IpAddr::from(header.destination_addr()), dst);
                        assert_eq!(header.hop_limit(), 64);
                        assert_eq!(header.traffic_class(), 0);
                        assert_eq!(
                            header.flow_label().value(),
                            super::super::outer::flow_label(flow_hash(&inner))
                        );
                    }
                    other => panic!("not IP: {other:?}"),
                }
                let Some(TransportSlice::Udp(udp)) = &sliced.transport else {
                    panic!("not UDP: {:?}", sliced.transport);
                };
                assert_eq!(udp.destination_port(), 8472);
                assert_eq!(udp.source_port(), vxlan_source_port(flow_hash(&inner)));
                if src.is_ipv4() {
                    assert_eq!(udp.checksum(), 0);
                } else {
                    let ip = Ipv6HeaderSlice::from_slice(&packet[..40])
                        .unwrap()
                        .to_header();
                    let expected = udp
                        .to_header()
                        .calc_checksum_ipv6(&ip, udp.payload())
                        .unwrap();
                    assert_eq!(udp.checksum(), expected);
                }

                let vxlan = Packet::new_checked(udp.payload()).unwrap();
                assert_eq!(Repr::parse(&vxlan).unwrap().vni.get(), 4242);
                assert_eq!(vxlan.payload(), &inner[..]);
            }
        }
    }

    #[test]
    fn both_directions_of_a_flow_share_the_source_port() {
        let mut there = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([192, 168, 1, 1], [192, 168, 1, 2], 64)
            .tcp(40000, 443, 1, 1024)
            .write_to_vec(&mut there, b"request")
            .unwrap();
        let mut back = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1])
            .ipv4([192, 168, 1, 2], [192, 168, 1, 1], 64)
            .tcp(443, 40000, 1, 1024)
            .write_to_vec(&mut back, b"a longer response")
            .unwrap();
        let mut encap = encap();
        assert_eq!(
            encapsulate(&mut encap, &there)[20..22],
            encapsulate(&mut encap, &back)[20..22]
        );
        let mut v6 = encap_v6();
        let (a, b) = (encapsulate(&mut v6, &there), encapsulate(&mut v6, &back));
        assert_eq!(a[40..42], b[40..42]);
        assert_eq!(a[..4], b[..4], "same flow label");
    }

    #[test]
    fn max_inner_len() {
        let encap = encap();
        assert_eq!(encap.max_inner_len(1500), 1464);
        assert_eq!(encap.max_inner_len(9000), 8964);
        assert_eq!(encap.max_inner_len(36), 0);
        assert_eq!(encap.max_inner_len(35), 0);
        assert_eq!(encap.max_inner_len(0), 0);
        assert_eq!(encap.max_inner_len(65_535), MAX_INNER_LEN);
        assert_eq!(encap.max_inner_len(65_536), MAX_INNER_LEN);
        assert_eq!(encap.max_inner_len(u32::MAX), MAX_INNER_LEN);
    }
}
