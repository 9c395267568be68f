//! The GRE header of the GRE (Transparent Ethernet Bridging) and ERSPAN tunnels: written once
//! into the template; per packet only the sequence number changes. The checksum (C) is never
//! used: it would cost a pass over every inner frame, and neither Linux's `gretap`/`erspan`
//! devices nor analysers need it.

use crate::wire::gre::{Packet, Repr};

/// Write a GRE header for `protocol` at the start of `out`, with `key` and a zero sequence
/// number if `sequence`; return its length.
pub(super) fn write_template(
    out: &mut [u8],
    protocol: u16,
    key: Option<u32>,
    sequence: bool,
) -> usize {
    let repr = Repr {
        protocol,
        key,
        sequence: sequence.then_some(0),
        checksum: false,
    };
    let len = repr.buffer_len();
    if let Some(header) = out.get_mut(..len) {
        repr.emit(&mut Packet::new_unchecked(header), &[]);
    }
    len
}

/// Set the sequence number of the GRE header at the start of `out`, if it has one.
pub(super) fn set_sequence(out: &mut [u8], sequence: u32) {
    if let Ok(mut packet) = Packet::new_checked(out) {
        packet.set_sequence_number(sequence);
    }
}

#[cfg(test)]
mod tests {
    use etherparse::{IpNumber, Ipv4HeaderSlice, NetSlice, SlicedPacket};

    use super::{
        super::{CopyMeta, Encap, Tunnel, testing::*},
        *,
    };
    use crate::{
        flow_hash::flow_hash,
        wire::gre::{ERSPAN_I_II, ETHERTYPE_TEB},
    };

    const GRE_OPTIONS: Tunnel = Tunnel::Gre {
        key: Some(0x0102_0304),
        sequence: true,
    };

    fn encap(tunnel: &Tunnel, v6: bool) -> Encap {
        let (src, dst) = addrs(v6);
        Encap::new(tunnel, src, dst).unwrap()
    }

    /// The GRE header and what follows it, from a whole packet, checked by etherparse.
    fn gre_of(packet: &[u8]) -> &[u8] {
        let sliced = SlicedPacket::from_ip(packet).unwrap();
        let payload = match &sliced.net {
            Some(NetSlice::Ipv4(ip)) => ip.payload(),
            Some(NetSlice::Ipv6(ip)) => ip.payload(),
            other => panic!("not IP: {other:?}"),
        };
        assert_eq!(payload.ip_number, IpNumber::GRE);
        let start = packet.len() - payload.payload.len();
        &packet[start..]
    }

    #[test]
    fn golden_gre_over_ipv4_with_key_and_sequence() {
        let mut encap = encap(&GRE_OPTIONS, false);
        let inner = inner_frame(22);
        #[rustfmt::skip]
        let expected = [
            // IPv4
            0x45, 0x00, 0x00, 0x60, // version 4, IHL 5; total length 96 = 32 + 64
            0x00, 0x00, 0x40, 0x00, // identification 0, DF
            0x40, 0x2f, 0x26, 0x6d, // TTL 64, protocol 47 (GRE); checksum: 4500 + 0060 + 4000
                                    //   + 402f + 0a00 + 0001 + 0a00 + 0002 = d992, !d992 = 266d
            0x0a, 0x00, 0x00, 0x01, // source 10.0.0.1
            0x0a, 0x00, 0x00, 0x02, // destination 10.0.0.2
            // GRE
            0x30, 0x00, 0x65, 0x58, // K, S, version 0; Transparent Ethernet Bridging
            0x01, 0x02, 0x03, 0x04, // key
            0x00, 0x00, 0x00, 0x00, // sequence number 0: the first copy to this remote
        ];
        assert_eq!(headers(&mut encap, &inner, &CopyMeta::default()), expected);
        let second = headers(&mut encap, &inner, &CopyMeta::default());
        assert_eq!(second[28..], [0, 0, 0, 1]);
        assert_eq!(second[..28], expected[..28]);
        let ip = Ipv4HeaderSlice::from_slice(&expected[..20]).unwrap();
        assert_eq!(ip.header_checksum(), ip.to_header().calc_header_checksum());
    }

    #[test]
    fn golden_gre_over_ipv6_with_key_and_sequence() {
        let mut encap = encap(&GRE_OPTIONS, true);
        let inner = inner_frame(22);
        // Pinned so that a change of the flow hash, which changes bytes on the wire, is noticed.
        assert_eq!(flow_hash(&inner) & 0xf_ffff, FLOW_LABEL);
        #[rustfmt::skip]
        let expected = [
            // IPv6
            0x60, 0x01, 0xf0, 0xcc, // version 6, traffic class 0, flow label from the flow hash
            0x00, 0x4c, 0x2f, 0x40, // payload length 76 = 12 + 64, next header 47 (GRE), hop
                                    //   limit 64
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, // 2001:db8::1
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, // 2001:db8::2
            // GRE
            0x30, 0x00, 0x65, 0x58, // K, S, version 0; Transparent Ethernet Bridging
            0x01, 0x02, 0x03, 0x04, // key
            0x00, 0x00, 0x00, 0x00, // sequence number 0
        ];
        assert_eq!(headers(&mut encap, &inner, &CopyMeta::default()), expected);
    }

    /// The flow label of `inner_frame(22)`, as `flow_hash` gives it.
    const FLOW_LABEL: u32 = 0x1_f0cc;

    #[test]
    fn golden_erspan1_over_both_families() {
        let inner = inner_frame(22);
        let v4 = headers(
            &mut encap(&Tunnel::Erspan1, false),
            &inner,
            &CopyMeta::default(),
        );
        #[rustfmt::skip]
        let expected = [
            // IPv4
            0x45, 0x00, 0x00, 0x58, // total length 88 = 24 + 64
            0x00, 0x00, 0x40, 0x00, // identification 0, DF
            0x40, 0x2f, 0x26, 0x75, // TTL 64, GRE; checksum !(4500 + 0058 + 4000 + 402f + 1403)
            0x0a, 0x00, 0x00, 0x01,
            0x0a, 0x00, 0x00, 0x02,
            // GRE: no flags, version 0, ERSPAN I/II; no ERSPAN header follows
            0x00, 0x00, 0x88, 0xbe,
        ];
        assert_eq!(v4, expected);

        let v6 = headers(
            &mut encap(&Tunnel::Erspan1, true),
            &inner,
            &CopyMeta::default(),
        );
        #[rustfmt::skip]
        let expected = [
            // IPv6
            0x60, 0x01, 0xf0, 0xcc, // version 6, traffic class 0, flow label
            0x00, 0x44, 0x2f, 0x40, // payload length 68 = 4 + 64, GRE, hop limit 64
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
            // GRE
            0x00, 0x00, 0x88, 0xbe,
        ];
        assert_eq!(v6, expected);
    }

    #[test]
    fn full_packet_parses() {
        let tunnels = [
            GRE_OPTIONS,
            Tunnel::Gre {
                key: None,
                sequence: false,
            },
            Tunnel::Gre {
                key: Some(9),
                sequence: false,
            },
            Tunnel::Gre {
                key: None,
                sequence: true,
            },
            Tunnel::Erspan1,
        ];
        for tunnel in tunnels {
            for v6 in [false, true] {
                let mut encap = encap(&tunnel, v6);
                for n in 0..3 {
                    let inner = inner_frame(100 * n);
                    let packet = packet(&mut encap, &inner, &CopyMeta::default());
                    let gre = Packet::new_checked(gre_of(&packet)).unwrap();
                    let repr = Repr::parse(&gre).unwrap();
                    let (key, sequence) = match tunnel {
                        Tunnel::Gre { key, sequence } => (key, sequence.then_some(n as u32)),
                        _ => (None, None),
                    };
                    let protocol = if tunnel == Tunnel::Erspan1 {
                        ERSPAN_I_II
                    } else {
                        ETHERTYPE_TEB
                    };
                    let expected = Repr {
                        protocol,
                        key,
                        sequence,
                        checksum: false,
                    };
                    assert_eq!(repr, expected, "{tunnel:?} v6 {v6}");
                    assert_eq!(gre.payload(), &inner[..]);
                }
            }
        }
    }

    #[test]
    fn sequence_counts_per_remote_and_wraps() {
        let mut first = encap(&GRE_OPTIONS, false);
        let mut second = encap(&GRE_OPTIONS, true);
        let inner = inner_frame(0);
        let sequence =
            |header: &[u8]| u32::from_be_bytes(header[header.len() - 4..].try_into().unwrap());
        for expected in 0..5 {
            assert_eq!(
                sequence(&headers(&mut first, &inner, &CopyMeta::default())),
                expected
            );
        }
        assert_eq!(
            sequence(&headers(&mut second, &inner, &CopyMeta::default())),
            0
        );
        first.sequence = u32::MAX;
        assert_eq!(
            sequence(&headers(&mut first, &inner, &CopyMeta::default())),
            u32::MAX
        );
        assert_eq!(
            sequence(&headers(&mut first, &inner, &CopyMeta::default())),
            0
        );
        // Without S nothing counts.
        let mut plain = encap(&Tunnel::Erspan1, false);
        headers(&mut plain, &inner, &CopyMeta::default());
        assert_eq!(plain.sequence, 0);
    }

    #[test]
    fn set_sequence_needs_the_s_flag() {
        let mut bytes = [0x20, 0x00, 0x65, 0x58, 0, 0, 0, 7];
        set_sequence(&mut bytes, 42);
        assert_eq!(bytes, [0x20, 0x00, 0x65, 0x58, 0, 0, 0, 7]);
        let mut short = [0x10, 0x00, 0x65];
        set_sequence(&mut short, 42);
        assert_eq!(short, [0x10, 0x00, 0x65]);
    }
}
