//! Decapsulation: from what a socket delivers (the outer IP payload) to the inner Ethernet
//! frame, with the wire parsers of [`crate::wire`]. Pure functions, no I/O.
//!
//! | tunnel | accepted | inner frame |
//! |---|---|---|
//! | `vxlan` | VXLAN header with the I flag (and the VNI of `--vni`, if given) | after 8 bytes |
//! | `gre` | GRE protocol 0x6558 (and the key of `--gre-key`, if given) | after the GRE header |
//! | `erspan1` | GRE protocol 0x88BE without a sequence number | after the GRE header |
//! | `erspan2` | GRE protocol 0x88BE with a sequence number, ERSPAN version 1 | after 8 more |
//! | `erspan3` | GRE protocol 0x22EB, ERSPAN version 2, frame type Ethernet | after 12 (20 with O) |
//!
//! A GRE checksum, when present, must be right. Every inner frame must hold at least an
//! Ethernet header.

use core::fmt;

use crate::wire::{
    self,
    erspan::{FRAME_TYPE_ETHERNET, TypeIIIPacket, TypeIIIRepr, TypeIIPacket, TypeIIRepr},
    gre,
    vxlan::{self, Vni},
};

/// Length of an Ethernet header: the shortest inner frame accepted.
pub const ETHERNET_HEADER_LEN: usize = 14;

/// IP protocol number of GRE.
const IPPROTO_GRE: u8 = 47;

/// The tunnel a receiver accepts, with its filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// VXLAN; only `vni` if given.
    Vxlan { vni: Option<Vni> },
    /// GRE with Transparent Ethernet Bridging; only `key` if given (and then never unkeyed
    /// packets).
    Gre { key: Option<u32> },
    /// ERSPAN Type I.
    Erspan1,
    /// ERSPAN Type II.
    Erspan2,
    /// ERSPAN Type III.
    Erspan3,
}

impl Accept {
    /// Whether the tunnel comes over UDP (else over raw IP protocol 47).
    pub const fn is_udp(self) -> bool {
        matches!(self, Accept::Vxlan { .. })
    }

    /// The `--tunnel` name.
    pub const fn name(self) -> &'static str {
        match self {
            Accept::Vxlan { .. } => "vxlan",
            Accept::Gre { .. } => "gre",
            Accept::Erspan1 => "erspan1",
            Accept::Erspan2 => "erspan2",
            Accept::Erspan3 => "erspan3",
        }
    }
}

/// Why a received packet is not written: the `reason` of the summary line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reject {
    /// Another tunnel or protocol: a GRE protocol type, a GRE flag layout or an ERSPAN frame
    /// type that is not the one listened for.
    WrongProtocol,
    /// A header that is truncated, malformed or fails its checksum, or an inner frame shorter
    /// than an Ethernet header.
    BadHeader,
    /// The outer source is not one of `--from`.
    FilteredSource,
    /// A VXLAN VNI other than `--vni`.
    WrongVni,
    /// A GRE key other than `--gre-key` (or none).
    WrongKey,
    /// An ERSPAN session other than `--session`.
    WrongSession,
}

impl Reject {
    /// Every reason, in the summary's order.
    pub const ALL: [Reject; 6] = [
        Reject::WrongProtocol,
        Reject::BadHeader,
        Reject::FilteredSource,
        Reject::WrongVni,
        Reject::WrongKey,
        Reject::WrongSession,
    ];

    /// A name for the summary line.
    pub const fn name(self) -> &'static str {
        match self {
            Reject::WrongProtocol => "wrong tunnel/protocol",
            Reject::BadHeader => "bad header",
            Reject::FilteredSource => "filtered source",
            Reject::WrongVni => "wrong VNI",
            Reject::WrongKey => "wrong GRE key",
            Reject::WrongSession => "wrong ERSPAN session",
        }
    }

    /// The position of this reason in [`Reject::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl From<wire::Error> for Reject {
    fn from(_: wire::Error) -> Self {
        Reject::BadHeader
    }
}

/// The tunnel headers of a decapsulated packet, as parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    Vxlan(vxlan::Repr),
    Gre(gre::Repr),
    Erspan1(gre::Repr),
    Erspan2(gre::Repr, TypeIIRepr),
    Erspan3(gre::Repr, TypeIIIRepr),
}

/// A decapsulated packet: its tunnel headers and the inner Ethernet frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decapped<'a> {
    pub header: Header,
    pub inner: &'a [u8],
}

/// Decapsulate `outer_payload`, the payload of the outer IP packet (for VXLAN, of its UDP
/// datagram), as `accept` says.
pub fn decap(accept: Accept, outer_payload: &[u8]) -> Result<Decapped<'_>, Reject> {
    let (header, inner) = match accept {
        Accept::Vxlan { vni } => {
            let packet = vxlan::Packet::new_checked(outer_payload)?;
            let repr = vxlan::Repr::parse(&packet)?;
            if vni.is_some_and(|vni| vni != repr.vni) {
                return Err(Reject::WrongVni);
            }
            (Header::Vxlan(repr), packet.payload())
        }
        Accept::Gre { key } => {
            let (repr, payload) = parse_gre(outer_payload)?;
            if repr.protocol != gre::ETHERTYPE_TEB {
                return Err(Reject::WrongProtocol);
            }
            if key.is_some_and(|key| repr.key != Some(key)) {
                return Err(Reject::WrongKey);
            }
            (Header::Gre(repr), payload)
        }
        Accept::Erspan1 => {
            let (repr, payload) = parse_gre(outer_payload)?;
            // Type I and II share 0x88BE: the sequence number tells Type II.
            if repr.protocol != gre::ERSPAN_I_II || repr.sequence.is_some() {
                return Err(Reject::WrongProtocol);
            }
            (Header::Erspan1(repr), payload)
        }
        Accept::Erspan2 => {
            let (repr, payload) = parse_gre(outer_payload)?;
            if repr.protocol != gre::ERSPAN_I_II || repr.sequence.is_none() {
                return Err(Reject::WrongProtocol);
            }
            let packet = TypeIIPacket::new_checked(payload)?;
            let erspan = TypeIIRepr::parse(&packet)?;
            (Header::Erspan2(repr, erspan), packet.payload())
        }
        Accept::Erspan3 => {
            let (repr, payload) = parse_gre(outer_payload)?;
            if repr.protocol != gre::ERSPAN_III {
                return Err(Reject::WrongProtocol);
            }
            let packet = TypeIIIPacket::new_checked(payload)?;
            let erspan = TypeIIIRepr::parse(&packet)?;
            if erspan.frame_type != FRAME_TYPE_ETHERNET {
                // An IP frame (FT 2) or other: not for an Ethernet pcap.
                return Err(Reject::WrongProtocol);
            }
            (Header::Erspan3(repr, erspan), packet.payload())
        }
    };
    if inner.len() < ETHERNET_HEADER_LEN {
        return Err(Reject::BadHeader);
    }
    Ok(Decapped { header, inner })
}

/// The GRE header and payload of `bytes`.
fn parse_gre(bytes: &[u8]) -> Result<(gre::Repr, &[u8]), Reject> {
    let packet = gre::Packet::new_checked(bytes)?;
    let repr = gre::Repr::parse(&packet)?;
    Ok((repr, packet.payload()))
}

/// The payload of an IPv4 packet as an IPv4 raw socket delivers it (header included): skips
/// IHL * 4 bytes. The kernel has checked the header and reassembled fragments already; this
/// only guards against a length it would not deliver.
pub fn ipv4_payload(packet: &[u8]) -> Result<&[u8], Reject> {
    let (&[version_ihl], _) = packet.split_first_chunk::<1>().ok_or(Reject::BadHeader)?;
    if version_ihl >> 4 != 4 {
        return Err(Reject::BadHeader);
    }
    let header_len = usize::from(version_ihl & 0x0f) * 4;
    if header_len < 20 {
        return Err(Reject::BadHeader);
    }
    if packet.get(9) != Some(&IPPROTO_GRE) {
        return Err(Reject::WrongProtocol);
    }
    packet.get(header_len..).ok_or(Reject::BadHeader)
}

#[cfg(test)]
mod tests {
    use core::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::{
        tunnel::{
            CopyMeta, Encap, Granularity, Tunnel,
            testing::{addrs, inner_frame, packet, tagged_frame},
        },
        wire::erspan::{Bso, EncapType, Platform},
    };

    /// 2023-11-14T22:13:20.123456789Z.
    const NS: u64 = 1_700_000_000_123_456_789;

    fn vni(value: u32) -> Vni {
        Vni::new(value).unwrap()
    }

    fn erspan3(granularity: Granularity) -> Tunnel {
        Tunnel::Erspan3 {
            session: 0x1a5,
            hw_id: 0x2b,
            sgt: 0xcafe,
            granularity,
        }
    }

    /// What each sent tunnel is received as.
    fn accept_for(tunnel: &Tunnel) -> Accept {
        match *tunnel {
            Tunnel::Vxlan { vni, .. } => Accept::Vxlan { vni: Some(vni) },
            Tunnel::Gre { key, .. } => Accept::Gre { key },
            Tunnel::Erspan1 => Accept::Erspan1,
            Tunnel::Erspan2 { .. } => Accept::Erspan2,
            Tunnel::Erspan3 { .. } => Accept::Erspan3,
        }
    }

    fn every_tunnel() -> Vec<Tunnel> {
        vec![
            Tunnel::Vxlan {
                vni: vni(0x12_3456),
                dst_port: 4789,
            },
            Tunnel::Gre {
                key: None,
                sequence: false,
            },
            Tunnel::Gre {
                key: Some(0xdead_beef),
                sequence: true,
            },
            Tunnel::Erspan1,
            Tunnel::Erspan2 {
                session: 0x2d5,
                index: 0xa_bcde,
            },
            erspan3(Granularity::Micros100),
            erspan3(Granularity::Nanos100),
            erspan3(Granularity::Ieee1588),
        ]
    }

    /// The outer IP payload of `inner` sent in `tunnel` (the UDP payload for VXLAN), as the
    /// sockets deliver it.
    fn outer_payload(encap: &mut Encap, tunnel: &Tunnel, v6: bool, inner: &[u8]) -> Vec<u8> {
        outer_payload_with(encap, tunnel, v6, inner, &CopyMeta::default())
    }

    fn outer_payload_with(
        encap: &mut Encap,
        tunnel: &Tunnel,
        v6: bool,
        inner: &[u8],
        meta: &CopyMeta,
    ) -> Vec<u8> {
        let whole = packet(encap, inner, meta);
        let ip_len = if v6 { 40 } else { 20 };
        let udp_len = if matches!(tunnel, Tunnel::Vxlan { .. }) {
            8
        } else {
            0
        };
        whole[ip_len + udp_len..].to_vec()
    }

    fn encap(tunnel: &Tunnel, v6: bool) -> Encap {
        let (src, dst) = addrs(v6);
        Encap::new(tunnel, src, dst).unwrap()
    }

    #[test]
    fn every_tunnel_round_trips_byte_identical() {
        let frames = [inner_frame(0), inner_frame(1000), tagged_frame(42, 5, 100)];
        for tunnel in every_tunnel() {
            for v6 in [false, true] {
                let mut encap = encap(&tunnel, v6);
                for inner in &frames {
                    let bytes = outer_payload(&mut encap, &tunnel, v6, inner);
                    let decapped = decap(accept_for(&tunnel), &bytes).unwrap();
                    assert_eq!(decapped.inner, &inner[..], "{tunnel:?} v6 {v6}");
                }
            }
        }
    }

    #[test]
    fn vxlan_fields_read_back() {
        let tunnel = every_tunnel()[0];
        let bytes = outer_payload(&mut encap(&tunnel, false), &tunnel, false, &inner_frame(9));
        let decapped = decap(Accept::Vxlan { vni: None }, &bytes).unwrap();
        assert_eq!(
            decapped.header,
            Header::Vxlan(vxlan::Repr {
                vni: vni(0x12_3456)
            })
        );
    }

    #[test]
    fn gre_fields_read_back() {
        let tunnel = every_tunnel()[2];
        let mut encap = encap(&tunnel, true);
        let inner = inner_frame(9);
        for sequence in 0..3 {
            let bytes = outer_payload(&mut encap, &tunnel, true, &inner);
            let decapped = decap(Accept::Gre { key: None }, &bytes).unwrap();
            assert_eq!(
                decapped.header,
                Header::Gre(gre::Repr {
                    protocol: gre::ETHERTYPE_TEB,
                    key: Some(0xdead_beef),
                    sequence: Some(sequence),
                    checksum: false,
                })
            );
        }
    }

    #[test]
    fn erspan1_fields_read_back() {
        let bytes = outer_payload(
            &mut encap(&Tunnel::Erspan1, false),
            &Tunnel::Erspan1,
            false,
            &inner_frame(9),
        );
        let decapped = decap(Accept::Erspan1, &bytes).unwrap();
        assert_eq!(
            decapped.header,
            Header::Erspan1(gre::Repr {
                protocol: gre::ERSPAN_I_II,
                key: None,
                sequence: None,
                checksum: false,
            })
        );
    }

    #[test]
    fn erspan2_fields_read_back() {
        let tunnel = every_tunnel()[4];
        let mut encap = encap(&tunnel, false);
        let meta = CopyMeta {
            egress: true,
            timestamp_ns: NS,
            truncated: true,
        };
        let inner = tagged_frame(0x123, 5, 18);
        outer_payload_with(&mut encap, &tunnel, false, &inner, &meta);
        let bytes = outer_payload_with(&mut encap, &tunnel, false, &inner, &meta);
        let decapped = decap(Accept::Erspan2, &bytes).unwrap();
        let Header::Erspan2(gre, erspan) = decapped.header else {
            panic!("{:?}", decapped.header)
        };
        assert_eq!(gre.protocol, gre::ERSPAN_I_II);
        assert_eq!(gre.sequence, Some(1));
        assert_eq!(
            erspan,
            TypeIIRepr {
                vlan: 0x123,
                cos: 5,
                encap: EncapType::InFrame,
                truncated: true,
                session: 0x2d5,
                index: 0xa_bcde,
            }
        );
        assert_eq!(decapped.inner, &inner[..]);
    }

    #[test]
    fn erspan3_fields_read_back() {
        let meta = CopyMeta {
            egress: true,
            timestamp_ns: NS,
            truncated: true,
        };
        let inner = tagged_frame(100, 3, 18);
        for (granularity, units, platform) in [
            (Granularity::Micros100, NS / 100_000, false),
            (Granularity::Nanos100, NS / 100, true),
            (Granularity::Ieee1588, NS, true),
        ] {
            let tunnel = erspan3(granularity);
            for v6 in [false, true] {
                let mut encap = encap(&tunnel, v6);
                let bytes = outer_payload_with(&mut encap, &tunnel, v6, &inner, &meta);
                let decapped = decap(Accept::Erspan3, &bytes).unwrap();
                let Header::Erspan3(gre, erspan) = decapped.header else {
                    panic!("{:?}", decapped.header)
                };
                assert_eq!(gre.protocol, gre::ERSPAN_III);
                assert_eq!(gre.sequence, Some(0));
                let expected_platform = platform.then_some(Platform::Id3 {
                    port_index: 0,
                    timestamp_high: (units >> 32) as u32,
                });
                assert_eq!(
                    erspan,
                    TypeIIIRepr {
                        vlan: 100,
                        cos: 3,
                        bso: Bso::Good,
                        truncated: true,
                        session: 0x1a5,
                        timestamp: units as u32,
                        sgt: 0xcafe,
                        ethernet_pdu: true,
                        frame_type: FRAME_TYPE_ETHERNET,
                        hw_id: 0x2b,
                        egress: true,
                        granularity,
                        platform: expected_platform,
                    },
                    "{granularity:?}"
                );
                assert_eq!(decapped.inner, &inner[..]);
            }
        }
    }

    /// A GRE header (no options) followed by `rest`.
    fn gre_bytes(flags: u16, protocol: u16, rest: &[u8]) -> Vec<u8> {
        let mut bytes = [flags.to_be_bytes(), protocol.to_be_bytes()].concat();
        bytes.extend_from_slice(rest);
        bytes
    }

    #[test]
    fn hand_built_erspan3_with_other_platform_and_odd_fields() {
        // Version 2, VLAN 0xfff, COS 7, BSO 0b11, T, session 0x3ff; timestamp; SGT; P 0,
        // FT 0, Hw ID 0x3f, D 0, Gra 0b11, O 1; platform ID 5 with 58 bits of info.
        #[rustfmt::skip]
        let erspan = [
            0x2f, 0xff, 0xff, 0xff,
            0x01, 0x02, 0x03, 0x04,
            0x00, 0x07,
            0x03, 0xf7,
            0x17, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
        ];
        let inner = inner_frame(3);
        let mut rest = erspan.to_vec();
        rest.extend_from_slice(&inner);
        let bytes = gre_bytes(0, gre::ERSPAN_III, &rest);
        let decapped = decap(Accept::Erspan3, &bytes).unwrap();
        let Header::Erspan3(gre, erspan) = decapped.header else {
            panic!()
        };
        assert_eq!(gre.sequence, None, "a sequence number is not required");
        assert_eq!(
            erspan,
            TypeIIIRepr {
                vlan: 0xfff,
                cos: 7,
                bso: Bso::Bad,
                truncated: true,
                session: 0x3ff,
                timestamp: 0x0102_0304,
                sgt: 7,
                ethernet_pdu: false,
                frame_type: FRAME_TYPE_ETHERNET,
                hw_id: 0x3f,
                egress: false,
                granularity: Granularity::Custom,
                platform: Some(Platform::Other {
                    id: 5,
                    info: 0x03ff_ffff_ffff_fffe,
                }),
            }
        );
        assert_eq!(decapped.inner, &inner[..]);
    }

    #[test]
    fn gre_with_checksum_is_verified() {
        let inner = inner_frame(5);
        let mut bytes = gre_bytes(gre::FLAG_CHECKSUM, gre::ETHERTYPE_TEB, &[0; 4]);
        bytes.extend_from_slice(&inner);
        gre::Packet::new_unchecked(&mut bytes[..]).fill_checksum(&[]);
        let decapped = decap(Accept::Gre { key: None }, &bytes).unwrap();
        assert_eq!(decapped.inner, &inner[..]);
        let Header::Gre(repr) = decapped.header else {
            panic!()
        };
        assert!(repr.checksum);
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(
            decap(Accept::Gre { key: None }, &bytes),
            Err(Reject::BadHeader)
        );
    }

    #[test]
    fn wrong_protocol_rejected() {
        let inner = inner_frame(5);
        let gre_accepts = [
            Accept::Gre { key: None },
            Accept::Erspan1,
            Accept::Erspan2,
            Accept::Erspan3,
        ];
        for tunnel in every_tunnel() {
            let mut encap = encap(&tunnel, false);
            let bytes = outer_payload(&mut encap, &tunnel, false, &inner);
            for accept in gre_accepts {
                if accept.name() == accept_for(&tunnel).name() {
                    continue;
                }
                let expected = if matches!(tunnel, Tunnel::Vxlan { .. }) {
                    // A VXLAN header read as GRE: flags 0x08 set bits 4-5, version 0.
                    Reject::BadHeader
                } else {
                    Reject::WrongProtocol
                };
                assert_eq!(
                    decap(accept, &bytes),
                    Err(expected),
                    "{tunnel:?} as {accept:?}"
                );
            }
        }
        // GRE carrying IPv4 (0x0800) rather than Ethernet.
        let bytes = gre_bytes(0, 0x0800, &inner);
        assert_eq!(
            decap(Accept::Gre { key: None }, &bytes),
            Err(Reject::WrongProtocol)
        );
        // ERSPAN III with FT 2 (an IP frame).
        let mut erspan = [0_u8; 12];
        erspan[0] = 0x20;
        erspan[10] = 0x08; // FT 00010
        let bytes = gre_bytes(0, gre::ERSPAN_III, &[&erspan[..], &inner].concat());
        assert_eq!(decap(Accept::Erspan3, &bytes), Err(Reject::WrongProtocol));
    }

    #[test]
    fn vxlan_needs_the_i_flag() {
        let mut bytes = vec![0x08, 0, 0, 0, 0, 0, 7, 0];
        bytes.extend_from_slice(&inner_frame(1));
        assert!(decap(Accept::Vxlan { vni: None }, &bytes).is_ok());
        bytes[0] = 0x00;
        assert_eq!(
            decap(Accept::Vxlan { vni: None }, &bytes),
            Err(Reject::BadHeader)
        );
        // Reserved bits are ignored (RFC 7348 §5).
        bytes[0] = 0xff;
        bytes[7] = 0xff;
        assert!(decap(Accept::Vxlan { vni: None }, &bytes).is_ok());
    }

    #[test]
    fn wrong_vni_rejected() {
        let tunnel = every_tunnel()[0];
        let bytes = outer_payload(&mut encap(&tunnel, true), &tunnel, true, &inner_frame(1));
        assert!(
            decap(
                Accept::Vxlan {
                    vni: Some(vni(0x12_3456))
                },
                &bytes
            )
            .is_ok()
        );
        for other in [0, 1, 0x12_3457, 0xff_ffff] {
            assert_eq!(
                decap(
                    Accept::Vxlan {
                        vni: Some(vni(other))
                    },
                    &bytes
                ),
                Err(Reject::WrongVni)
            );
        }
    }

    #[test]
    fn wrong_key_rejected() {
        let inner = inner_frame(1);
        let keyed = every_tunnel()[2];
        let bytes = outer_payload(&mut encap(&keyed, false), &keyed, false, &inner);
        assert!(
            decap(
                Accept::Gre {
                    key: Some(0xdead_beef)
                },
                &bytes
            )
            .is_ok()
        );
        assert_eq!(
            decap(Accept::Gre { key: Some(1) }, &bytes),
            Err(Reject::WrongKey)
        );
        let unkeyed = every_tunnel()[1];
        let bytes = outer_payload(&mut encap(&unkeyed, false), &unkeyed, false, &inner);
        assert_eq!(
            decap(Accept::Gre { key: Some(0) }, &bytes),
            Err(Reject::WrongKey)
        );
        assert!(decap(Accept::Gre { key: None }, &bytes).is_ok());
    }

    #[test]
    fn bad_erspan_versions_rejected() {
        let inner = inner_frame(1);
        let mut erspan2 = [0_u8; 8];
        erspan2[0] = 0x20; // version 2 in a Type II header
        let bytes = gre_bytes(
            gre::FLAG_SEQUENCE,
            gre::ERSPAN_I_II,
            &[&[0, 0, 0, 1][..], &erspan2, &inner].concat(),
        );
        assert_eq!(decap(Accept::Erspan2, &bytes), Err(Reject::BadHeader));
        let mut erspan3 = [0_u8; 12];
        erspan3[0] = 0x10; // version 1 in a Type III header
        let bytes = gre_bytes(0, gre::ERSPAN_III, &[&erspan3[..], &inner].concat());
        assert_eq!(decap(Accept::Erspan3, &bytes), Err(Reject::BadHeader));
    }

    #[test]
    fn short_inner_frames_rejected() {
        for tunnel in every_tunnel() {
            let mut encap = encap(&tunnel, false);
            let full = outer_payload(&mut encap, &tunnel, false, &inner_frame(0));
            let header_len = full.len() - inner_frame(0).len();
            for inner_len in 0..ETHERNET_HEADER_LEN {
                let bytes = &full[..header_len + inner_len];
                assert_eq!(
                    decap(accept_for(&tunnel), bytes),
                    Err(Reject::BadHeader),
                    "{tunnel:?}, inner {inner_len}"
                );
            }
            let bytes = &full[..header_len + ETHERNET_HEADER_LEN];
            assert!(decap(accept_for(&tunnel), bytes).is_ok(), "{tunnel:?}");
        }
    }

    #[test]
    fn every_truncation_is_a_bad_header() {
        for tunnel in every_tunnel() {
            for v6 in [false, true] {
                let mut encap = encap(&tunnel, v6);
                let bytes = outer_payload(&mut encap, &tunnel, v6, &inner_frame(20));
                for len in 0..bytes.len() {
                    let result = decap(accept_for(&tunnel), &bytes[..len]);
                    match result {
                        Err(Reject::BadHeader) => {}
                        // Cutting the inner frame is invisible to the tunnel headers.
                        Ok(decapped) => assert!(decapped.inner.len() >= ETHERNET_HEADER_LEN),
                        Err(other) => panic!("{tunnel:?} cut at {len}: {other:?}"),
                    }
                }
            }
        }
    }

    #[test]
    fn garbage_never_panics() {
        let accepts = [
            Accept::Vxlan { vni: None },
            Accept::Vxlan { vni: Some(vni(7)) },
            Accept::Gre { key: None },
            Accept::Gre { key: Some(7) },
            Accept::Erspan1,
            Accept::Erspan2,
            Accept::Erspan3,
        ];
        let mut state = 0x2545_f491_u32;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        // Plausible GRE/VXLAN starts, so that parsing gets past the first checks.
        let starts: [&[u8]; 6] = [
            &[0x10, 0x00, 0x22, 0xeb],
            &[0x10, 0x00, 0x88, 0xbe],
            &[0x00, 0x00, 0x88, 0xbe],
            &[0x20, 0x00, 0x65, 0x58],
            &[0x08, 0x00, 0x00, 0x00],
            &[0xb0, 0x00, 0x65, 0x58],
        ];
        for round in 0..50_000 {
            let len = (next() % 48) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let start = starts[round % starts.len()];
            let n = start.len().min(bytes.len());
            bytes[..n].copy_from_slice(&start[..n]);
            for accept in accepts {
                if let Ok(decapped) = decap(accept, &bytes) {
                    assert!(decapped.inner.len() >= ETHERNET_HEADER_LEN);
                }
            }
            let _ = ipv4_payload(&bytes);
        }
        for len in 0..64 {
            for fill in [0x00, 0xff, 0x10, 0x45] {
                let bytes = vec![fill; len];
                for accept in accepts {
                    let _ = decap(accept, &bytes);
                }
                let _ = ipv4_payload(&bytes);
            }
        }
    }

    #[test]
    fn ipv4_payload_skips_the_header_and_options() {
        let tunnel = Tunnel::Erspan1;
        let (src, dst) = (
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V4(Ipv4Addr::LOCALHOST),
        );
        let mut encap = Encap::new(&tunnel, src, dst).unwrap();
        let inner = inner_frame(4);
        let whole = packet(&mut encap, &inner, &CopyMeta::default());
        let payload = ipv4_payload(&whole).unwrap();
        assert_eq!(decap(Accept::Erspan1, payload).unwrap().inner, &inner[..]);
        // IHL 6: one word of options.
        let mut with_options = whole.clone();
        with_options[0] = 0x46;
        with_options.splice(20..20, [1, 1, 1, 0]);
        assert_eq!(ipv4_payload(&with_options).unwrap(), &whole[20..]);
        // Bad version, IHL below 5, IHL beyond the packet, not GRE.
        let mut bad = whole.clone();
        bad[0] = 0x65;
        assert_eq!(ipv4_payload(&bad), Err(Reject::BadHeader));
        bad[0] = 0x44;
        assert_eq!(ipv4_payload(&bad), Err(Reject::BadHeader));
        assert_eq!(ipv4_payload(&whole[..19]), Err(Reject::BadHeader));
        let mut udp = whole.clone();
        udp[9] = 17;
        assert_eq!(ipv4_payload(&udp), Err(Reject::WrongProtocol));
        let mut long = whole[..24].to_vec();
        long[0] = 0x4f;
        assert_eq!(ipv4_payload(&long), Err(Reject::BadHeader));
        assert_eq!(ipv4_payload(&[]), Err(Reject::BadHeader));
    }
}
