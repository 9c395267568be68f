#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]
//! The outer headers of a VXLAN copy over IPv4: IPv4 (20) + UDP (8) + VXLAN (8), in front of the
//! inner Ethernet frame.

use core::net::Ipv4Addr;

use etherparse::{IpNumber, Ipv4Header, UdpHeader};

use crate::{
    flow_hash::{flow_hash, vxlan_source_port},
    wire::vxlan::{self, Packet, Repr, Vni},
};

/// Outer header length: IPv4 20 + UDP 8 + VXLAN 8, in front of the inner Ethernet frame.
pub const HEADER_LEN: usize = Ipv4Header::MIN_LEN + UdpHeader::LEN + vxlan::HEADER_LEN;

/// Longest inner frame whose copy still fits the 16-bit IPv4 total length.
pub const MAX_INNER_LEN: usize = u16::MAX as usize - HEADER_LEN;

/// Linux's default TTL.
const TTL: u8 = 64;

/// Byte ranges in the outer header that change per packet, plus where VXLAN starts.
mod field {
    use core::ops::{Range, RangeFrom};

    pub const IP_TOTAL_LEN: Range<usize> = 2..4;
    pub const IP_CHECKSUM: Range<usize> = 10..12;
    pub const IP_HEADER: Range<usize> = 0..20;
    pub const UDP_SRC_PORT: Range<usize> = 20..22;
    pub const UDP_LEN: Range<usize> = 24..26;
    pub const VXLAN: RangeFrom<usize> = 28..;
}

/// Writes the outer headers of VXLAN copies to one remote VTEP.
///
/// Built once per remote; [`VxlanEncap::write_header`] then patches a copy of the template per
/// packet, without allocating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanEncap {
    /// The outer headers with zero total length, source port, UDP length and IP checksum.
    template: [u8; HEADER_LEN],
    /// Folded one's complement sum of the template's IPv4 header.
    partial_sum: u16,
}

impl VxlanEncap {
    /// Outer headers from `src` to the VTEP at `dst`:`dst_port`, carrying `vni`.
    pub fn new(src: Ipv4Addr, dst: Ipv4Addr, dst_port: u16, vni: Vni) -> Self {
        let ip = Ipv4Header {
            total_len: 0,
            identification: 0,
            // RFC 7348 §4.3: VTEPs must not fragment VXLAN packets.
            dont_fragment: true,
            more_fragments: false,
            time_to_live: TTL,
            protocol: IpNumber::UDP,
            header_checksum: 0,
            source: src.octets(),
            destination: dst.octets(),
            ..Ipv4Header::default()
        };
        let udp = UdpHeader {
            source_port: 0,
            destination_port: dst_port,
            length: 0,
            // RFC 7348 §5: SHOULD be zero over IPv4, which spares a pass over the frame.
            checksum: 0,
        };
        let mut template = [0_u8; HEADER_LEN];
        let ip_udp = ip.to_bytes().into_iter().chain(udp.to_bytes());
        for (slot, byte) in template.iter_mut().zip(ip_udp) {
            *slot = byte;
        }
        Repr { vni }.emit(&mut Packet::new_unchecked(&mut template[field::VXLAN]));
        let partial_sum = ones_complement_sum(&template[field::IP_HEADER]);
        VxlanEncap {
            template,
            partial_sum,
        }
    }

    /// Writes the outer IPv4, UDP and VXLAN headers for `inner` (a whole Ethernet frame).
    ///
    /// `inner` must be at most [`MAX_INNER_LEN`] long, which [`VxlanEncap::max_inner_len`]
    /// ensures; longer frames get saturated lengths (and could not be sent anyway).
    pub fn write_header(&self, inner: &[u8], out: &mut [u8; HEADER_LEN]) {
        *out = self.template;
        let total_len = u16::try_from(HEADER_LEN + inner.len()).unwrap_or(u16::MAX);
        let udp_len = total_len.saturating_sub(Ipv4Header::MIN_LEN_U16);
        let checksum = !fold(u32::from(self.partial_sum) + u32::from(total_len));
        let src_port = vxlan_source_port(flow_hash(inner));
        out[field::IP_TOTAL_LEN].copy_from_slice(&total_len.to_be_bytes());
        out[field::IP_CHECKSUM].copy_from_slice(&checksum.to_be_bytes());
        out[field::UDP_SRC_PORT].copy_from_slice(&src_port.to_be_bytes());
        out[field::UDP_LEN].copy_from_slice(&udp_len.to_be_bytes());
    }

    /// Longest inner frame whose copy fits in `path_mtu` (the outer IPv4 packet): `path_mtu - 36`,
    /// 0 if even the headers do not fit, and never above [`MAX_INNER_LEN`] (loopback's MTU is
    /// 65536).
    pub fn max_inner_len(&self, path_mtu: u32) -> usize {
        usize::try_from(path_mtu)
            .unwrap_or(usize::MAX)
            .saturating_sub(HEADER_LEN)
            .min(MAX_INNER_LEN)
    }
}

/// The folded one's complement sum of 16-bit big-endian words (RFC 1071).
fn ones_complement_sum(bytes: &[u8]) -> u16 {
    let (words, _) = bytes.as_chunks::<2>();
    fold(
        words
            .iter()
            .map(|&word| u32::from(u16::from_be_bytes(word)))
            .sum(),
    )
}

/// Fold the carries of a 32-bit one's complement sum into 16 bits.
fn fold(sum: u32) -> u16 {
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

#[cfg(test)]
mod tests {
    use etherparse::{
        Ipv4HeaderSlice, NetSlice, PacketBuilder, SlicedPacket, TransportSlice, UdpHeaderSlice,
    };

    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    fn encap() -> VxlanEncap {
        VxlanEncap::new(SRC, DST, 4789, Vni::new(0x12_3456).unwrap())
    }

    /// An Ethernet/IPv4/UDP frame of 14 + 20 + 8 + `payload_len` bytes.
    fn inner_frame(payload_len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([192, 168, 1, 1], [192, 168, 1, 2], 64)
            .udp(5000, 6000)
            .write_to_vec(&mut out, &vec![0xab; payload_len])
            .unwrap();
        out
    }

    fn encapsulate(encap: &VxlanEncap, inner: &[u8]) -> [u8; HEADER_LEN] {
        let mut out = [0_u8; HEADER_LEN];
        encap.write_header(inner, &mut out);
        out
    }

    #[test]
    fn header_len() {
        assert_eq!(HEADER_LEN, 36);
        assert_eq!(MAX_INNER_LEN, 65_499);
    }

    #[test]
    fn golden_bytes() {
        let inner = inner_frame(22);
        assert_eq!(inner.len(), 64);
        let src_port = vxlan_source_port(flow_hash(&inner));
        // Pinned so that a change of the flow hash, which changes bytes on the wire, is noticed.
        assert_eq!(src_port, 0xf8c6);
        #[rustfmt::skip]
        let expected: [u8; HEADER_LEN] = [
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
            0xf8, 0xc6,             // source port: vxlan_source_port(flow_hash(inner))
            0x12, 0xb5,             // destination port 4789
            0x00, 0x50,             // length 80 = 8 + 8 + 64
            0x00, 0x00,             // checksum 0 (RFC 7348 §5, IPv4)
            // VXLAN
            0x08, 0x00, 0x00, 0x00, // I flag, reserved
            0x12, 0x34, 0x56, 0x00, // VNI 0x123456, reserved
        ];
        assert_eq!(encapsulate(&encap(), &inner), expected);
    }

    #[test]
    fn ipv4_checksum_is_valid() {
        let remotes = [
            (SRC, DST),
            (Ipv4Addr::BROADCAST, Ipv4Addr::new(255, 255, 255, 254)),
            (Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED),
            (
                Ipv4Addr::new(172, 16, 254, 3),
                Ipv4Addr::new(192, 0, 2, 200),
            ),
        ];
        for (src, dst) in remotes {
            let encap = VxlanEncap::new(src, dst, 8472, Vni::MAX);
            for len in [0, 1, 14, 60, 64, 1400, 1500, 9000, MAX_INNER_LEN] {
                let out = encapsulate(&encap, &vec![0x11; len]);
                let ip = Ipv4HeaderSlice::from_slice(&out[..20]).unwrap();
                assert_eq!(
                    ip.header_checksum(),
                    ip.to_header().calc_header_checksum(),
                    "{src} -> {dst}, inner {len}"
                );
                assert_eq!(ones_complement_sum(&out[..20]), 0xffff);
            }
        }
    }

    #[test]
    fn matches_a_full_etherparse_serialisation() {
        for len in [0, 60, 1514, 9014, MAX_INNER_LEN] {
            let inner = vec![0x22; len];
            let out = encapsulate(&encap(), &inner);
            let mut ip = Ipv4Header::new(
                (UdpHeader::LEN + vxlan::HEADER_LEN + len) as u16,
                64,
                IpNumber::UDP,
                SRC.octets(),
                DST.octets(),
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
        let encap = encap();
        for len in [0, 1, 14, 60, 1500, 9000, MAX_INNER_LEN] {
            let out = encapsulate(&encap, &vec![0; len]);
            let ip = Ipv4HeaderSlice::from_slice(&out[..20]).unwrap();
            let udp = UdpHeaderSlice::from_slice(&out[20..28]).unwrap();
            assert_eq!(usize::from(ip.total_len()), 36 + len);
            assert_eq!(usize::from(udp.length()), 16 + len);
        }
    }

    #[test]
    fn oversized_inner_saturates_without_panicking() {
        let out = encapsulate(&encap(), &vec![0; MAX_INNER_LEN + 1]);
        let ip = Ipv4HeaderSlice::from_slice(&out[..20]).unwrap();
        assert_eq!(ip.total_len(), u16::MAX);
        assert_eq!(ip.header_checksum(), ip.to_header().calc_header_checksum());
    }

    #[test]
    fn reusing_the_output_buffer_leaves_nothing_stale() {
        let encap = encap();
        let small = inner_frame(0);
        let mut out = [0_u8; HEADER_LEN];
        encap.write_header(&inner_frame(1000), &mut out);
        encap.write_header(&small, &mut out);
        assert_eq!(out, encapsulate(&encap, &small));
    }

    #[test]
    fn full_packet_parses() {
        let encap = VxlanEncap::new(SRC, DST, 8472, Vni::new(4242).unwrap());
        for payload_len in [0, 22, 1000] {
            let inner = inner_frame(payload_len);
            let mut packet = encapsulate(&encap, &inner).to_vec();
            packet.extend_from_slice(&inner);

            let sliced = SlicedPacket::from_ip(&packet).unwrap();
            let Some(NetSlice::Ipv4(ip)) = &sliced.net else {
                panic!("not IPv4: {:?}", sliced.net);
            };
            let header = ip.header();
            assert_eq!(header.source_addr(), SRC);
            assert_eq!(header.destination_addr(), DST);
            assert!(header.dont_fragment());
            assert_eq!(header.ttl(), 64);
            assert_eq!(header.identification(), 0);
            let Some(TransportSlice::Udp(udp)) = &sliced.transport else {
                panic!("not UDP: {:?}", sliced.transport);
            };
            assert_eq!(udp.destination_port(), 8472);
            assert_eq!(udp.source_port(), vxlan_source_port(flow_hash(&inner)));
            assert_eq!(udp.checksum(), 0);

            let vxlan = Packet::new_checked(udp.payload()).unwrap();
            assert_eq!(Repr::parse(&vxlan).unwrap().vni.get(), 4242);
            assert_eq!(vxlan.payload(), &inner[..]);
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
        let encap = encap();
        assert_eq!(
            encapsulate(&encap, &there)[field::UDP_SRC_PORT],
            encapsulate(&encap, &back)[field::UDP_SRC_PORT]
        );
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

    #[test]
    fn fold_carries() {
        assert_eq!(fold(0), 0);
        assert_eq!(fold(0xffff), 0xffff);
        assert_eq!(fold(0x1_0000), 1);
        assert_eq!(fold(0x1_fffe), 0xffff);
        assert_eq!(fold(u32::MAX), 0xffff);
    }
}
