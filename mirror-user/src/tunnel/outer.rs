//! The outer IP header of every tunnel, IPv4 (RFC 791) or IPv6 (RFC 8200): a template written
//! once per remote, then patched per packet with the lengths, the IPv4 checksum or the IPv6
//! flow label.
//!
//! - IPv4: DF set (RFC 7348 §4.3 forbids fragmenting VXLAN; the agent sizes copies to the path
//!   MTU for every tunnel), TTL 64 (Linux's default), identification 0 (RFC 6864 §4.1 allows any
//!   value in an atomic datagram), no options.
//! - IPv6: traffic class 0, flow label from the inner flow hash (RFC 6438), hop limit 64, no
//!   extension headers. The raw `AF_INET6`/`IPPROTO_RAW` socket implies `IPV6_HDRINCL`: the
//!   kernel fills in nothing, not even the payload length.

use core::net::IpAddr;

use etherparse::{IpNumber, Ipv4Header, Ipv6FlowLabel, Ipv6Header};

use super::Error;
use crate::wire::checksum;

/// Linux's default TTL and hop limit.
const TTL: u8 = 64;

/// Byte ranges the per-packet patch writes.
mod field {
    use core::ops::Range;

    pub const V4_TOTAL_LEN: Range<usize> = 2..4;
    pub const V4_CHECKSUM: Range<usize> = 10..12;
    /// Version (4 bits), traffic class (8), flow label (20).
    pub const V6_VERSION_CLASS_LABEL: Range<usize> = 0..4;
    pub const V6_PAYLOAD_LEN: Range<usize> = 4..6;
    pub const V6_ADDRESSES: Range<usize> = 8..40;
}

/// The outer IP header of the copies to one remote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OuterIp {
    V4 {
        /// Folded sum of the template header, whose total length and checksum are zero.
        header_sum: u16,
    },
    V6 {
        /// Unfolded sum of the upper-layer pseudo-header's addresses and next header, for a
        /// UDP checksum (RFC 8200 §8.1); the length is added per packet.
        pseudo_sum: u64,
    },
}

impl OuterIp {
    /// Write the template header from `src` to `dst` carrying `protocol` into the start of
    /// `out`, which must hold [`OuterIp::len`] bytes.
    pub(super) fn new(
        src: IpAddr,
        dst: IpAddr,
        protocol: IpNumber,
        out: &mut [u8],
    ) -> Result<OuterIp, Error> {
        match (src, dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                let header = Ipv4Header {
                    total_len: 0,
                    identification: 0,
                    dont_fragment: true,
                    more_fragments: false,
                    time_to_live: TTL,
                    protocol,
                    header_checksum: 0,
                    source: src.octets(),
                    destination: dst.octets(),
                    ..Ipv4Header::default()
                };
                let bytes = header.to_bytes();
                copy(out, &bytes);
                Ok(OuterIp::V4 {
                    header_sum: checksum::fold(checksum::sum(&bytes)),
                })
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                let header = Ipv6Header {
                    traffic_class: 0,
                    flow_label: Ipv6FlowLabel::ZERO,
                    payload_length: 0,
                    next_header: protocol,
                    hop_limit: TTL,
                    source: src.octets(),
                    destination: dst.octets(),
                };
                let bytes = header.to_bytes();
                copy(out, &bytes);
                let addresses = bytes.get(field::V6_ADDRESSES).unwrap_or_default();
                Ok(OuterIp::V6 {
                    pseudo_sum: checksum::sum(addresses) + u64::from(protocol.0),
                })
            }
            (src, dst) => Err(Error::MixedFamilies { src, dst }),
        }
    }

    /// Length of the header: 20 (IPv4) or 40 (IPv6).
    pub(super) const fn len(&self) -> usize {
        match self {
            OuterIp::V4 { .. } => Ipv4Header::MIN_LEN,
            OuterIp::V6 { .. } => Ipv6Header::LEN,
        }
    }

    /// Longest IP payload (everything after this header) the length field can express.
    pub(super) const fn max_payload_len(&self) -> usize {
        match self {
            OuterIp::V4 { .. } => u16::MAX as usize - Ipv4Header::MIN_LEN,
            OuterIp::V6 { .. } => u16::MAX as usize,
        }
    }

    /// The unfolded UDP pseudo-header sum without the length, over IPv6; `None` over IPv4,
    /// where tunnels leave the UDP checksum zero.
    pub(super) const fn udp_pseudo_sum(&self) -> Option<u64> {
        match self {
            OuterIp::V4 { .. } => None,
            OuterIp::V6 { pseudo_sum } => Some(*pseudo_sum),
        }
    }

    /// Patch the copy of the template at the start of `out` for an IP payload of
    /// `payload_len` bytes: IPv4 total length and checksum, or IPv6 payload length and the flow
    /// label of `flow_hash`. Lengths beyond [`OuterIp::max_payload_len`] saturate (such packets
    /// cannot be sent anyway).
    pub(super) fn patch(&self, out: &mut [u8], payload_len: usize, flow_hash: u32) {
        match self {
            OuterIp::V4 { header_sum } => {
                let total_len = u16::try_from(payload_len.saturating_add(Ipv4Header::MIN_LEN))
                    .unwrap_or(u16::MAX);
                let sum = u64::from(*header_sum) + u64::from(total_len);
                put(out, field::V4_TOTAL_LEN, &total_len.to_be_bytes());
                put(
                    out,
                    field::V4_CHECKSUM,
                    &checksum::complement(sum).to_be_bytes(),
                );
            }
            OuterIp::V6 { .. } => {
                let payload_len = u16::try_from(payload_len).unwrap_or(u16::MAX);
                let first = (6 << 28) | flow_label(flow_hash);
                put(out, field::V6_VERSION_CLASS_LABEL, &first.to_be_bytes());
                put(out, field::V6_PAYLOAD_LEN, &payload_len.to_be_bytes());
            }
        }
    }
}

/// The 20-bit IPv6 flow label of a flow hash (RFC 6438 §3: from the inner flow, so ECMP keeps a
/// flow on one path). A hash whose low 20 bits are zero gets label 1, since 0 means "not
/// labelled" (RFC 6437 §2).
pub(super) const fn flow_label(flow_hash: u32) -> u32 {
    let label = flow_hash & 0x000f_ffff;
    if label == 0 { 1 } else { label }
}

/// Copy `bytes` to the start of `out`, as far as `out` reaches.
pub(super) fn copy(out: &mut [u8], bytes: &[u8]) {
    for (slot, byte) in out.iter_mut().zip(bytes) {
        *slot = *byte;
    }
}

/// Write `bytes` at `range` of `out`, if `out` reaches that far and the lengths agree.
pub(super) fn put(out: &mut [u8], range: core::ops::Range<usize>, bytes: &[u8]) {
    if let Some(slot) = out.get_mut(range)
        && slot.len() == bytes.len()
    {
        slot.copy_from_slice(bytes);
    }
}

#[cfg(test)]
mod tests {
    use core::net::{Ipv4Addr, Ipv6Addr};

    use etherparse::{Ipv4HeaderSlice, Ipv6HeaderSlice};

    use super::*;

    const SRC6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    const DST6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

    fn written(src: IpAddr, dst: IpAddr, protocol: IpNumber) -> (OuterIp, [u8; 40]) {
        let mut out = [0xee_u8; 40];
        let ip = OuterIp::new(src, dst, protocol, &mut out).unwrap();
        (ip, out)
    }

    #[test]
    fn ipv4_golden() {
        let (ip, mut out) = written(
            Ipv4Addr::new(192, 0, 2, 1).into(),
            Ipv4Addr::new(198, 51, 100, 7).into(),
            IpNumber::GRE,
        );
        assert_eq!(ip.len(), 20);
        ip.patch(&mut out, 1000, 0xdead_beef);
        #[rustfmt::skip]
        let expected = [
            0x45, 0x00, 0x03, 0xfc, // version 4, IHL 5, TOS 0, total length 1020
            0x00, 0x00, 0x40, 0x00, // identification 0, DF
            0x40, 0x2f, 0x4a, 0x97, // TTL 64, protocol 47 (GRE), checksum: 4500 + 03fc + 4000
                                    //   + 402f + c000 + 0201 + c633 + 6407 = 2b566,
                                    //   folded b568, !b568 = 4a97
            0xc0, 0x00, 0x02, 0x01, // 192.0.2.1
            0xc6, 0x33, 0x64, 0x07, // 198.51.100.7
        ];
        assert_eq!(out[..20], expected);
        // The rest of the buffer is not the IPv4 header's.
        assert_eq!(out[20..], [0xee; 20]);
        let slice = Ipv4HeaderSlice::from_slice(&out[..20]).unwrap();
        assert_eq!(
            slice.header_checksum(),
            slice.to_header().calc_header_checksum()
        );
    }

    #[test]
    fn ipv6_golden() {
        let (ip, mut out) = written(SRC6.into(), DST6.into(), IpNumber::UDP);
        assert_eq!(ip.len(), 40);
        ip.patch(&mut out, 1000, 0xdead_beef);
        #[rustfmt::skip]
        let expected = [
            0x60, 0x0d, 0xbe, 0xef, // version 6, traffic class 0, flow label 0xdbeef
            0x03, 0xe8, 0x11, 0x40, // payload length 1000, next header 17 (UDP), hop limit 64
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, // 2001:db8::1
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, // 2001:db8::2
        ];
        assert_eq!(out, expected);
        let slice = Ipv6HeaderSlice::from_slice(&out).unwrap();
        assert_eq!(slice.flow_label().value(), 0xd_beef);
        assert_eq!(slice.payload_length(), 1000);
        assert_eq!(slice.next_header(), IpNumber::UDP);
        assert_eq!(slice.hop_limit(), 64);
        assert_eq!(slice.traffic_class(), 0);
    }

    #[test]
    fn ipv4_checksum_is_valid_for_every_length() {
        let (ip, mut out) = written(
            Ipv4Addr::BROADCAST.into(),
            Ipv4Addr::new(255, 255, 255, 254).into(),
            IpNumber::UDP,
        );
        for len in [0, 1, 16, 1480, 9000, 65_515, 65_516, usize::MAX] {
            ip.patch(&mut out, len, 0);
            let slice = Ipv4HeaderSlice::from_slice(&out[..20]).unwrap();
            assert_eq!(
                slice.header_checksum(),
                slice.to_header().calc_header_checksum(),
                "payload {len}"
            );
            assert_eq!(checksum::fold(checksum::sum(&out[..20])), 0xffff);
        }
        assert_eq!(
            Ipv4HeaderSlice::from_slice(&out[..20]).unwrap().total_len(),
            u16::MAX
        );
    }

    #[test]
    fn ipv6_lengths_saturate() {
        let (ip, mut out) = written(SRC6.into(), DST6.into(), IpNumber::GRE);
        ip.patch(&mut out, 65_535, 1);
        assert_eq!(
            Ipv6HeaderSlice::from_slice(&out).unwrap().payload_length(),
            65_535
        );
        ip.patch(&mut out, 65_536, 1);
        assert_eq!(
            Ipv6HeaderSlice::from_slice(&out).unwrap().payload_length(),
            65_535
        );
    }

    #[test]
    fn mixed_families_rejected() {
        let mut out = [0_u8; 40];
        let v4: IpAddr = Ipv4Addr::LOCALHOST.into();
        let v6: IpAddr = Ipv6Addr::LOCALHOST.into();
        assert_eq!(
            OuterIp::new(v4, v6, IpNumber::UDP, &mut out),
            Err(Error::MixedFamilies { src: v4, dst: v6 })
        );
        assert_eq!(
            OuterIp::new(v6, v4, IpNumber::UDP, &mut out),
            Err(Error::MixedFamilies { src: v6, dst: v4 })
        );
        assert_eq!(out, [0; 40]);
    }

    #[test]
    fn flow_labels() {
        assert_eq!(flow_label(0), 1);
        assert_eq!(flow_label(0x0010_0000), 1);
        assert_eq!(flow_label(1), 1);
        assert_eq!(flow_label(u32::MAX), 0xf_ffff);
        assert_eq!(flow_label(0x1234_5678), 0x4_5678);
    }

    #[test]
    fn limits() {
        let (v4, _) = written(
            Ipv4Addr::LOCALHOST.into(),
            Ipv4Addr::LOCALHOST.into(),
            IpNumber::UDP,
        );
        let (v6, _) = written(SRC6.into(), DST6.into(), IpNumber::UDP);
        assert_eq!(v4.max_payload_len(), 65_515);
        assert_eq!(v6.max_payload_len(), 65_535);
        assert_eq!(v4.udp_pseudo_sum(), None);
        assert!(v6.udp_pseudo_sum().is_some());
    }
}
