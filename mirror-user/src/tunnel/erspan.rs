//! The ERSPAN Type II and III headers, after a GRE header with a sequence number.
//!
//! Per packet, from the inner frame: VLAN and COS are its own 802.1Q tag's VID and priority
//! (PCP) if it has one (TPID 0x8100 right after the MAC addresses), else 0. Type II's En is then
//! 0b11 "VLAN tag preserved in frame" (the tag is still in the mirrored frame), else 0b00
//! "originally without VLAN tag": the values Linux's `erspan_build_header` uses. (Linux takes
//! COS from the inner IP header's DSCP instead; COS is the 802.1Q priority, so this takes that.)
//! An 802.1ad S-tag (0x88a8) is not 802.1Q: such frames count as untagged, as in Linux.
//!
//! From [`CopyMeta`]: T (truncated), and for Type III D (egress) and the timestamp. Type III
//! also sets P = 1 and FT = 0 (the payload is an Ethernet frame: Linux sets the same, Wireshark
//! calls P "Has Ethernet PDU"), BSO = 0 ("good frame or unknown integrity").

use super::CopyMeta;
use crate::wire::{
    Error, Result,
    erspan::{
        EncapType, FRAME_TYPE_ETHERNET, Granularity, Platform, TypeIIIPacket, TypeIIIRepr,
        TypeIIPacket, TypeIIRepr,
    },
};

/// The 802.1Q tag protocol identifier.
const TPID_8021Q: [u8; 2] = [0x81, 0x00];

/// The VLAN ID and priority of `inner`'s 802.1Q tag, if it has one.
pub(super) fn inner_tag(inner: &[u8]) -> Option<(u16, u8)> {
    let &[t0, t1, c0, c1] = inner.get(12..16)?.first_chunk::<4>()?;
    if [t0, t1] != TPID_8021Q {
        return None;
    }
    let tci = u16::from_be_bytes([c0, c1]);
    Some((tci & 0x0fff, (tci >> 13) as u8))
}

/// The timestamp of `ns` (Unix epoch nanoseconds) in units of `granularity`, all 64 bits.
pub(super) const fn timestamp_units(ns: u64, granularity: Granularity) -> u64 {
    match granularity {
        Granularity::Micros100 => ns / 100_000,
        Granularity::Nanos100 => ns / 100,
        Granularity::Ieee1588 | Granularity::Custom => ns,
    }
}

/// Whether timestamps of `granularity` carry their upper 32 bits in a platform subheader: all
/// but 100 µs, whose 32 bits last 4.97 days (and which Linux receivers expect without one).
pub(super) const fn needs_platform(granularity: Granularity) -> bool {
    !matches!(granularity, Granularity::Micros100)
}

/// Write the template Type II header at the start of `out`; return its length.
pub(super) fn write_type_ii(out: &mut [u8], session: u16, index: u32) -> Result<usize> {
    let repr = TypeIIRepr {
        session,
        index,
        ..TypeIIRepr::default()
    };
    let got = out.len();
    let len = repr.buffer_len();
    let header = out
        .get_mut(..len)
        .ok_or(Error::Truncated { needed: len, got })?;
    repr.emit(&mut TypeIIPacket::new_unchecked(header))?;
    Ok(len)
}

/// Write the template Type III header (and platform subheader) at the start of `out`; return
/// its length.
pub(super) fn write_type_iii(
    out: &mut [u8],
    session: u16,
    hw_id: u8,
    sgt: u16,
    granularity: Granularity,
) -> Result<usize> {
    let platform = needs_platform(granularity).then_some(Platform::Id3 {
        port_index: 0,
        timestamp_high: 0,
    });
    let repr = TypeIIIRepr {
        session,
        sgt,
        ethernet_pdu: true,
        frame_type: FRAME_TYPE_ETHERNET,
        hw_id,
        granularity,
        platform,
        ..TypeIIIRepr::default()
    };
    let got = out.len();
    let len = repr.buffer_len();
    let header = out
        .get_mut(..len)
        .ok_or(Error::Truncated { needed: len, got })?;
    repr.emit(&mut TypeIIIPacket::new_unchecked(header))?;
    Ok(len)
}

/// Patch the copy of the Type II template at the start of `out` for `inner`.
pub(super) fn patch_type_ii(out: &mut [u8], inner: &[u8], meta: &CopyMeta) {
    let Ok(mut packet) = TypeIIPacket::new_checked(out) else {
        return;
    };
    let (vlan, cos, encap) = match inner_tag(inner) {
        Some((vlan, cos)) => (vlan, cos, EncapType::InFrame),
        None => (0, 0, EncapType::NoVlan),
    };
    packet.set_vlan(vlan);
    packet.set_cos(cos);
    packet.set_encap_type(encap);
    packet.set_truncated(meta.truncated);
}

/// Patch the copy of the Type III template at the start of `out` for `inner`.
pub(super) fn patch_type_iii(
    out: &mut [u8],
    inner: &[u8],
    meta: &CopyMeta,
    granularity: Granularity,
) {
    let Ok(mut packet) = TypeIIIPacket::new_checked(out) else {
        return;
    };
    let (vlan, cos) = inner_tag(inner).unwrap_or((0, 0));
    let units = timestamp_units(meta.timestamp_ns, granularity);
    packet.set_vlan(vlan);
    packet.set_cos(cos);
    packet.set_truncated(meta.truncated);
    packet.set_timestamp(units as u32);
    packet.set_egress(meta.egress);
    // Port index 0 and the upper bits; nothing without O (100 µs).
    packet.set_platform(Platform::ID_3, units >> 32);
}

#[cfg(test)]
mod tests {
    use etherparse::{IpNumber, NetSlice, PacketBuilder, SlicedPacket};

    use super::{
        super::{Encap, Tunnel, testing::*},
        *,
    };
    use crate::wire::{
        erspan::Bso,
        gre::{self, ERSPAN_I_II, ERSPAN_III},
    };

    /// 2023-11-14T22:13:20.123456789Z.
    const NS: u64 = 1_700_000_000_123_456_789;

    const ERSPAN2: Tunnel = Tunnel::Erspan2 {
        session: 0x2d5,
        index: 0xa_bcde,
    };

    fn erspan3(granularity: Granularity) -> Tunnel {
        Tunnel::Erspan3 {
            session: 0x1a5,
            hw_id: 0x2b,
            sgt: 0xcafe,
            granularity,
        }
    }

    fn encap(tunnel: &Tunnel, v6: bool) -> Encap {
        let (src, dst) = addrs(v6);
        Encap::new(tunnel, src, dst).unwrap()
    }

    /// The GRE packet of a whole packet, checked by etherparse.
    fn gre_of(packet: &[u8]) -> gre::Packet<&[u8]> {
        let sliced = SlicedPacket::from_ip(packet).unwrap();
        let payload = match &sliced.net {
            Some(NetSlice::Ipv4(ip)) => ip.payload(),
            Some(NetSlice::Ipv6(ip)) => ip.payload(),
            other => panic!("not IP: {other:?}"),
        };
        assert_eq!(payload.ip_number, IpNumber::GRE);
        gre::Packet::new_checked(&packet[packet.len() - payload.payload.len()..]).unwrap()
    }

    #[test]
    fn golden_erspan2_over_ipv4_tagged_and_truncated() {
        let mut encap = encap(&ERSPAN2, false);
        let inner = tagged_frame(0x123, 5, 18);
        assert_eq!(inner.len(), 64);
        assert_eq!(inner[12..16], [0x81, 0x00, 0xa1, 0x23]);
        let meta = CopyMeta {
            egress: true,
            timestamp_ns: NS,
            truncated: true,
        };
        #[rustfmt::skip]
        let expected = [
            // IPv4
            0x45, 0x00, 0x00, 0x64, // total length 100 = 36 + 64
            0x00, 0x00, 0x40, 0x00, // identification 0, DF
            0x40, 0x2f, 0x26, 0x69, // TTL 64, GRE; checksum !(4500 + 0064 + 4000 + 402f + 1403)
            0x0a, 0x00, 0x00, 0x01,
            0x0a, 0x00, 0x00, 0x02,
            // GRE
            0x10, 0x00, 0x88, 0xbe, // S, version 0; ERSPAN I/II
            0x00, 0x00, 0x00, 0x00, // sequence number 0
            // ERSPAN Type II
            0x11, 0x23,             // version 1, VLAN 0x123 from the inner tag
            0xbe, 0xd5,             // COS 5 from the tag's PCP, En 0b11 (tag in frame), T,
                                    //   session 0x2d5
            0x00, 0x0a, 0xbc, 0xde, // index 0xabcde
        ];
        assert_eq!(headers(&mut encap, &inner, &meta), expected);
        // The next copy differs only in its sequence number.
        let next = headers(&mut encap, &inner, &meta);
        assert_eq!(next[24..28], [0, 0, 0, 1]);
        assert_eq!(next[28..], expected[28..]);
    }

    #[test]
    fn golden_erspan2_over_ipv6_untagged() {
        let mut encap = encap(&ERSPAN2, true);
        let inner = inner_frame(22);
        assert_eq!(outer_label(&inner), 0x1_f0cc);
        let header = headers(&mut encap, &inner, &CopyMeta::default());
        #[rustfmt::skip]
        let expected = [
            0x60, 0x01, 0xf0, 0xcc, // version 6, traffic class 0, flow label 0x1f0cc
            0x00, 0x50, 0x2f, 0x40, // payload length 80 = 16 + 64, GRE, hop limit 64
        ];
        assert_eq!(header[..8], expected);
        assert_eq!(header[8..40], [SRC6.octets(), DST6.octets()].concat());
        #[rustfmt::skip]
        let tunnel = [
            0x10, 0x00, 0x88, 0xbe, 0x00, 0x00, 0x00, 0x00, // GRE, S, sequence 0
            0x10, 0x00,             // version 1, VLAN 0
            0x02, 0xd5,             // COS 0, En 0b00 (no VLAN), T 0, session 0x2d5
            0x00, 0x0a, 0xbc, 0xde, // index
        ];
        assert_eq!(header[40..], tunnel);
    }

    /// The 20-bit flow label of `inner`, as the outer IPv6 header carries it.
    fn outer_label(inner: &[u8]) -> u32 {
        super::super::outer::flow_label(crate::flow_hash::flow_hash(inner))
    }

    #[test]
    fn golden_erspan3_over_ipv4_100us() {
        let mut encap = encap(&erspan3(Granularity::Micros100), false);
        let inner = tagged_frame(100, 3, 18);
        let meta = CopyMeta {
            egress: true,
            timestamp_ns: NS,
            truncated: true,
        };
        #[rustfmt::skip]
        let expected = [
            // IPv4
            0x45, 0x00, 0x00, 0x68, // total length 104 = 40 + 64
            0x00, 0x00, 0x40, 0x00,
            0x40, 0x2f, 0x26, 0x65, // checksum !(4500 + 0068 + 4000 + 402f + 1403)
            0x0a, 0x00, 0x00, 0x01,
            0x0a, 0x00, 0x00, 0x02,
            // GRE
            0x10, 0x00, 0x22, 0xeb, // S, version 0; ERSPAN III
            0x00, 0x00, 0x00, 0x00, // sequence number 0
            // ERSPAN Type III
            0x20, 0x64,             // version 2, VLAN 100 from the inner tag
            0x65, 0xa5,             // COS 3 from the tag, BSO 0, T, session 0x1a5
            0x1e, 0xf6, 0x14, 0xd2, // 17000000001234 units of 100 µs = 0xf76_1ef614d2, low 32
            0xca, 0xfe,             // SGT
            0x82, 0xb8,             // P 1, FT 0 (Ethernet), Hw ID 0x2b, D 1 (egress), Gra 00, O 0
        ];
        assert_eq!(headers(&mut encap, &inner, &meta), expected);
    }

    #[test]
    fn golden_erspan3_over_ipv6_ieee1588_with_platform_subheader() {
        let mut encap = encap(&erspan3(Granularity::Ieee1588), true);
        let inner = inner_frame(22);
        let meta = CopyMeta {
            egress: false,
            timestamp_ns: NS,
            truncated: false,
        };
        let header = headers(&mut encap, &inner, &meta);
        assert_eq!(header.len(), 68);
        assert_eq!(outer_label(&inner), 0x1_f0cc);
        #[rustfmt::skip]
        let ip = [
            0x60, 0x01, 0xf0, 0xcc, // version 6, traffic class 0, flow label 0x1f0cc
            0x00, 0x5c, 0x2f, 0x40, // payload length 92 = 28 + 64, GRE, hop limit 64
        ];
        assert_eq!(header[..8], ip);
        assert_eq!(header[8..40], [SRC6.octets(), DST6.octets()].concat());
        #[rustfmt::skip]
        let tunnel = [
            // GRE
            0x10, 0x00, 0x22, 0xeb,
            0x00, 0x00, 0x00, 0x00,
            // ERSPAN Type III
            0x20, 0x00,             // version 2, VLAN 0 (untagged)
            0x01, 0xa5,             // COS 0, BSO 0, T 0, session 0x1a5
            0x3d, 0x85, 0xcd, 0x15, // nanoseconds since the epoch 0x17979cfe_3d85cd15, low 32
            0xca, 0xfe,             // SGT
            0x82, 0xb5,             // P 1, FT 0, Hw ID 0x2b, D 0 (ingress), Gra 0b10, O 1
            // Platform-specific subheader
            0x0c, 0x00, 0x00, 0x00, // Platform ID 3, reserved, port index 0
            0x17, 0x97, 0x9c, 0xfe, // upper 32 bits of the timestamp
        ];
        assert_eq!(header[40..], tunnel);
    }

    #[test]
    fn full_packets_parse_with_the_wire_parsers() {
        let metas = [
            CopyMeta::default(),
            CopyMeta {
                egress: true,
                timestamp_ns: NS,
                truncated: true,
            },
            CopyMeta {
                egress: false,
                timestamp_ns: u64::MAX,
                truncated: false,
            },
        ];
        let frames = [
            inner_frame(0),
            tagged_frame(4094, 7, 100),
            tagged_frame(1, 0, 1),
        ];
        for v6 in [false, true] {
            let mut type2 = encap(&ERSPAN2, v6);
            let mut type3 = [
                Granularity::Micros100,
                Granularity::Nanos100,
                Granularity::Ieee1588,
            ]
            .map(|granularity| (granularity, encap(&erspan3(granularity), v6)));
            let mut sequence = 0;
            for meta in &metas {
                for inner in &frames {
                    let (vlan, cos) = inner_tag(inner).unwrap_or((0, 0));

                    let whole = packet(&mut type2, inner, meta);
                    let gre = gre_of(&whole);
                    assert_eq!(
                        gre::Repr::parse(&gre).unwrap(),
                        gre::Repr {
                            protocol: ERSPAN_I_II,
                            key: None,
                            sequence: Some(sequence),
                            checksum: false,
                        }
                    );
                    let erspan = TypeIIPacket::new_checked(gre.payload()).unwrap();
                    let encap_type = if vlan == 0 {
                        EncapType::NoVlan
                    } else {
                        EncapType::InFrame
                    };
                    assert_eq!(
                        TypeIIRepr::parse(&erspan).unwrap(),
                        TypeIIRepr {
                            vlan,
                            cos,
                            encap: encap_type,
                            truncated: meta.truncated,
                            session: 0x2d5,
                            index: 0xa_bcde,
                        }
                    );
                    assert_eq!(erspan.payload(), &inner[..]);

                    for (granularity, encap) in &mut type3 {
                        let whole = packet(encap, inner, meta);
                        let gre = gre_of(&whole);
                        let repr = gre::Repr::parse(&gre).unwrap();
                        assert_eq!(repr.protocol, ERSPAN_III);
                        assert_eq!(repr.sequence, Some(sequence));
                        let erspan = TypeIIIPacket::new_checked(gre.payload()).unwrap();
                        let units = timestamp_units(meta.timestamp_ns, *granularity);
                        let platform = needs_platform(*granularity).then_some(Platform::Id3 {
                            port_index: 0,
                            timestamp_high: (units >> 32) as u32,
                        });
                        assert_eq!(
                            TypeIIIRepr::parse(&erspan).unwrap(),
                            TypeIIIRepr {
                                vlan,
                                cos,
                                bso: Bso::Good,
                                truncated: meta.truncated,
                                session: 0x1a5,
                                timestamp: units as u32,
                                sgt: 0xcafe,
                                ethernet_pdu: true,
                                frame_type: FRAME_TYPE_ETHERNET,
                                hw_id: 0x2b,
                                egress: meta.egress,
                                granularity: *granularity,
                                platform,
                            }
                        );
                        assert_eq!(erspan.payload(), &inner[..]);
                    }
                    sequence += 1;
                }
            }
        }
    }

    #[test]
    fn vlan_and_cos_come_from_the_inner_tag() {
        let mut encap = encap(&ERSPAN2, false);
        let meta = CopyMeta::default();
        for (vid, pcp) in [(1, 0), (100, 3), (4094, 7), (0x0abc, 5)] {
            let header = headers(&mut encap, &tagged_frame(vid, pcp, 30), &meta);
            let erspan = TypeIIPacket::new_checked(&header[28..]).unwrap();
            assert_eq!(erspan.vlan(), vid);
            assert_eq!(erspan.cos(), pcp);
            assert_eq!(erspan.encap_type(), EncapType::InFrame);
        }
        // Untagged, 802.1ad-tagged and runt frames: no VLAN, no COS.
        let mut qinq = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .double_vlan(
                etherparse::VlanId::try_new(10).unwrap(),
                etherparse::VlanId::try_new(20).unwrap(),
            )
            .ipv4([1, 1, 1, 1], [2, 2, 2, 2], 64)
            .udp(1, 2)
            .write_to_vec(&mut qinq, &[])
            .unwrap();
        assert_eq!(qinq[12..14], [0x88, 0xa8]);
        let full = tagged_frame(7, 7, 0);
        for inner in [inner_frame(10), qinq, full[..15].to_vec(), Vec::new()] {
            let header = headers(&mut encap, &inner, &meta);
            let erspan = TypeIIPacket::new_checked(&header[28..]).unwrap();
            assert_eq!(
                (erspan.vlan(), erspan.cos(), erspan.encap_type()),
                (0, 0, EncapType::NoVlan)
            );
        }
        assert_eq!(inner_tag(&full[..16]), Some((7, 7)));
    }

    #[test]
    fn timestamp_units_per_granularity() {
        assert_eq!(
            timestamp_units(NS, Granularity::Micros100),
            17_000_000_001_234
        );
        assert_eq!(
            timestamp_units(NS, Granularity::Nanos100),
            17_000_000_001_234_567
        );
        assert_eq!(timestamp_units(NS, Granularity::Ieee1588), NS);
        assert_eq!(timestamp_units(99_999, Granularity::Micros100), 0);
        assert_eq!(
            timestamp_units(u64::MAX, Granularity::Nanos100),
            u64::MAX / 100
        );
        assert!(!needs_platform(Granularity::Micros100));
        assert!(needs_platform(Granularity::Nanos100));
        assert!(needs_platform(Granularity::Ieee1588));
    }

    #[test]
    fn templates_report_short_buffers() {
        assert_eq!(
            write_type_ii(&mut [0; 7], 1, 1),
            Err(Error::Truncated { needed: 8, got: 7 })
        );
        assert_eq!(
            write_type_iii(&mut [0; 19], 1, 1, 1, Granularity::Ieee1588),
            Err(Error::Truncated {
                needed: 20,
                got: 19
            })
        );
        assert_eq!(
            write_type_iii(&mut [0; 12], 1, 1, 1, Granularity::Micros100),
            Ok(12)
        );
        // Patching a buffer too short for the header does nothing rather than panic.
        let mut short = [0_u8; 7];
        patch_type_ii(&mut short, &tagged_frame(5, 5, 0), &CopyMeta::default());
        patch_type_iii(&mut short, &[], &CopyMeta::default(), Granularity::Nanos100);
        assert_eq!(short, [0; 7]);
    }
}
