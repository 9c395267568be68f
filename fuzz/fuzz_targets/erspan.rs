//! ERSPAN Type II and III, both ways. The first byte picks the side:
//!
//! - receive: the rest is what `mirror receive --tunnel erspan2|erspan3` gets (a GRE header and
//!   what follows), or a bare ERSPAN header. Whatever parses must emit and parse again to the
//!   same header, with the same bytes but for the reserved bits; `decap` must agree with the
//!   parsers, and the pcap time taken from an ERSPAN III header must be the header's time.
//! - send: the rest gives the tunnel's options, the copy's metadata and an inner frame. `decap`
//!   must give back the inner frame byte for byte and every field the encoder was told or took
//!   from the frame's 802.1Q tag.
#![no_main]

use etherparse::IpNumber;
use libfuzzer_sys::fuzz_target;
use mirror::{
    receive::{
        decap::{Accept, Reject, ETHERNET_HEADER_LEN, Header, decap},
        frame_time_ns,
    },
    tunnel::{CopyMeta, Encap, Error, Granularity, MAX_HEADER_LEN, Tunnel},
    wire::{
        erspan::{
            Bso, EncapType, FRAME_TYPE_ETHERNET, HW_ID_MAX, INDEX_MAX, PLATFORM_LEN, Platform,
            SESSION_MAX, TYPE_II_HEADER_LEN, TYPE_III_HEADER_LEN, TypeIIIPacket, TypeIIIRepr,
            TypeIIPacket, TypeIIRepr,
        },
        gre,
    },
};
use mirror_fuzz::{Bytes, addresses, outer_ip_payload};

fuzz_target!(|data: &[u8]| {
    let mut bytes = Bytes::new(data);
    if bytes.bool() {
        send(bytes);
    } else {
        receive(bytes);
    }
});

fn receive(mut bytes: Bytes<'_>) {
    let options = bytes.u8();
    let received_ns = bytes.u64();
    let payload = bytes.rest();
    match options & 3 {
        // A bare header: the parsers alone.
        0 => {
            if let Ok(repr) = TypeIIPacket::new_checked(payload).and_then(|p| TypeIIRepr::parse(&p))
            {
                type_ii_round_trip(repr, payload);
            }
        }
        1 => {
            if let Ok(repr) =
                TypeIIIPacket::new_checked(payload).and_then(|p| TypeIIIRepr::parse(&p))
            {
                type_iii_round_trip(repr, payload);
            }
        }
        _ => {
            let accept = if options & 3 == 2 {
                Accept::Erspan2
            } else {
                Accept::Erspan3
            };
            decap_agrees(accept, payload, received_ns);
        }
    }
}

/// `decap` gives what the GRE and ERSPAN parsers give, or says why not.
fn decap_agrees(accept: Accept, payload: &[u8], received_ns: u64) {
    let result = decap(accept, payload);
    let Ok(outer) =
        gre::Packet::new_checked(payload).and_then(|p| gre::Repr::parse(&p).map(|r| (p, r)))
    else {
        assert_eq!(result, Err(Reject::BadHeader));
        return;
    };
    let (gre_packet, gre_repr) = outer;
    let after_gre = gre_packet.payload();
    let expected = match accept {
        Accept::Erspan2 => {
            if gre_repr.protocol != gre::ERSPAN_I_II || gre_repr.sequence.is_none() {
                Err(Reject::WrongProtocol)
            } else {
                match TypeIIPacket::new_checked(after_gre).and_then(|p| TypeIIRepr::parse(&p)) {
                    Ok(erspan) => {
                        type_ii_round_trip(erspan, after_gre);
                        Ok((
                            Header::Erspan2(gre_repr, erspan),
                            &after_gre[TYPE_II_HEADER_LEN..],
                        ))
                    }
                    Err(_) => Err(Reject::BadHeader),
                }
            }
        }
        _ => {
            if gre_repr.protocol != gre::ERSPAN_III {
                Err(Reject::WrongProtocol)
            } else {
                match TypeIIIPacket::new_checked(after_gre).and_then(|p| TypeIIIRepr::parse(&p)) {
                    Ok(erspan) => {
                        let len = type_iii_round_trip(erspan, after_gre);
                        if erspan.frame_type == FRAME_TYPE_ETHERNET {
                            Ok((Header::Erspan3(gre_repr, erspan), &after_gre[len..]))
                        } else {
                            Err(Reject::WrongProtocol)
                        }
                    }
                    Err(_) => Err(Reject::BadHeader),
                }
            }
        }
    };
    let expected = expected.and_then(|(header, inner)| {
        if inner.len() < ETHERNET_HEADER_LEN {
            Err(Reject::BadHeader)
        } else {
            Ok((header, inner))
        }
    });
    assert_eq!(result.map(|d| (d.header, d.inner)), expected);
    if let Ok((header, _)) = expected {
        check_frame_time(&header, received_ns);
    }
}

/// The pcap time of an ERSPAN III frame is the header's time (in whole units, whose lower 32
/// bits are the header's), or the receive time when the header's cannot be used.
fn check_frame_time(header: &Header, received_ns: u64) {
    let time = frame_time_ns(header, received_ns);
    let Header::Erspan3(_, erspan) = header else {
        assert_eq!(time, received_ns);
        return;
    };
    if time == received_ns {
        return;
    }
    let unit = match erspan.granularity {
        Granularity::Micros100 => 100_000,
        Granularity::Nanos100 => 100,
        Granularity::Ieee1588 => 1,
        Granularity::Custom => panic!("a time from a user-defined unit: {time}"),
    };
    assert_eq!(time % unit, 0);
    let units = time / unit;
    assert_eq!(units as u32, erspan.timestamp);
    match erspan.platform {
        Some(Platform::Id3 { timestamp_high, .. }) => {
            assert_eq!((units >> 32) as u32, timestamp_high)
        }
        // The 32 bits are completed from the receive time: no other time with the same lower
        // 32 bits is closer to it.
        _ => {
            let reference = received_ns / unit;
            for other in [units.checked_sub(1 << 32), units.checked_add(1 << 32)]
                .into_iter()
                .flatten()
            {
                assert!(
                    other.abs_diff(reference) >= units.abs_diff(reference),
                    "{units} rather than {other} for {reference}"
                );
            }
        }
    }
}

/// Emit a Type II header and parse it back: the same fields, the same bytes but for the 12
/// reserved bits.
fn type_ii_round_trip(repr: TypeIIRepr, original: &[u8]) {
    let mut out = [0xa5_u8; TYPE_II_HEADER_LEN];
    repr.emit(&mut TypeIIPacket::new_unchecked(&mut out[..]))
        .expect("a parsed header fits its fields");
    assert_eq!(
        TypeIIRepr::parse(&TypeIIPacket::new_checked(&out[..]).unwrap()),
        Ok(repr)
    );
    let mut expected = [0_u8; TYPE_II_HEADER_LEN];
    expected.copy_from_slice(&original[..TYPE_II_HEADER_LEN]);
    expected[4] = 0;
    expected[5] &= 0x0f;
    assert_eq!(out, expected);
}

/// Emit a Type III header and parse it back: the same fields, the same bytes but for the
/// reserved bits of a platform 0x3 subheader. Returns the header's length.
fn type_iii_round_trip(repr: TypeIIIRepr, original: &[u8]) -> usize {
    let len = repr.buffer_len();
    assert_eq!(
        len,
        TYPE_III_HEADER_LEN + PLATFORM_LEN * usize::from(repr.platform.is_some())
    );
    let mut out = vec![0xa5_u8; len];
    repr.emit(&mut TypeIIIPacket::new_unchecked(&mut out[..]))
        .expect("a parsed header fits its fields");
    assert_eq!(
        TypeIIIRepr::parse(&TypeIIIPacket::new_checked(&out[..]).unwrap()),
        Ok(repr)
    );
    let mut expected = original[..len].to_vec();
    if let Some(Platform::Id3 { .. }) = repr.platform {
        // Platform ID (6 bits), then 12 reserved bits.
        expected[12] &= 0xfc;
        expected[13] = 0;
        expected[14] &= 0x3f;
    }
    assert_eq!(out, expected);
    len
}

fn send(mut bytes: Bytes<'_>) {
    let options = bytes.u8();
    let session = bytes.u16() & 0x07ff;
    let index = bytes.u32() & 0x001f_ffff;
    let hw_id = bytes.u8() & 0x7f;
    let sgt = bytes.u16();
    let meta = CopyMeta {
        egress: options & 4 != 0,
        timestamp_ns: bytes.u64(),
        truncated: options & 8 != 0,
    };
    let granularity = Granularity::from_bits(options >> 4);
    let (src, dst) = addresses(&mut bytes);
    let inner = bytes.rest();
    let tunnel = if options & 1 == 0 {
        Tunnel::Erspan2 { session, index }
    } else {
        Tunnel::Erspan3 {
            session,
            hw_id,
            sgt,
            granularity,
        }
    };
    let mut encap = match Encap::new(&tunnel, src, dst) {
        Ok(encap) => encap,
        Err(e) => {
            // Refused exactly for the options out of range.
            let expected = if session > SESSION_MAX {
                Error::Session(session)
            } else if let Tunnel::Erspan2 { .. } = tunnel {
                assert!(index > INDEX_MAX, "{e}");
                Error::Index(index)
            } else if hw_id > HW_ID_MAX {
                Error::HwId(hw_id)
            } else {
                Error::Granularity(Granularity::Custom)
            };
            assert_eq!(e, expected);
            return;
        }
    };
    assert!(session <= SESSION_MAX);

    // The inner frame's 802.1Q tag, read here independently of the encoder.
    let tag = match inner {
        [_, _, _, _, _, _, _, _, _, _, _, _, 0x81, 0x00, c0, c1, ..] => {
            let tci = u16::from_be_bytes([*c0, *c1]);
            Some((tci & 0x0fff, (tci >> 13) as u8))
        }
        _ => None,
    };
    let (vlan, cos) = tag.unwrap_or((0, 0));
    for copy in 0..2_u32 {
        let mut header = [0_u8; MAX_HEADER_LEN];
        let len = encap.write_header(inner, &meta, &mut header);
        assert_eq!(len, encap.header_len());
        let packet = [&header[..len], inner].concat();
        let payload = outer_ip_payload(&packet, src, dst, IpNumber::GRE);
        let (accept, expected) = match tunnel {
            Tunnel::Erspan2 { session, index } => (
                Accept::Erspan2,
                Header::Erspan2(
                    gre::Repr {
                        protocol: gre::ERSPAN_I_II,
                        key: None,
                        sequence: Some(copy),
                        checksum: false,
                    },
                    TypeIIRepr {
                        vlan,
                        cos,
                        encap: if tag.is_some() {
                            EncapType::InFrame
                        } else {
                            EncapType::NoVlan
                        },
                        truncated: meta.truncated,
                        session,
                        index,
                    },
                ),
            ),
            _ => {
                let units = match granularity {
                    Granularity::Micros100 => meta.timestamp_ns / 100_000,
                    Granularity::Nanos100 => meta.timestamp_ns / 100,
                    _ => meta.timestamp_ns,
                };
                (
                    Accept::Erspan3,
                    Header::Erspan3(
                        gre::Repr {
                            protocol: gre::ERSPAN_III,
                            key: None,
                            sequence: Some(copy),
                            checksum: false,
                        },
                        TypeIIIRepr {
                            vlan,
                            cos,
                            bso: Bso::Good,
                            truncated: meta.truncated,
                            session,
                            timestamp: units as u32,
                            sgt,
                            ethernet_pdu: true,
                            frame_type: FRAME_TYPE_ETHERNET,
                            hw_id,
                            egress: meta.egress,
                            granularity,
                            platform: (granularity != Granularity::Micros100).then_some(
                                Platform::Id3 {
                                    port_index: 0,
                                    timestamp_high: (units >> 32) as u32,
                                },
                            ),
                        },
                    ),
                )
            }
        };
        match decap(accept, payload) {
            Ok(decapped) => {
                assert_eq!(decapped.header, expected);
                assert_eq!(decapped.inner, inner);
                check_frame_time(&decapped.header, meta.timestamp_ns);
            }
            Err(reason) => {
                assert_eq!(reason, Reject::BadHeader);
                assert!(inner.len() < ETHERNET_HEADER_LEN, "a whole frame refused");
            }
        }
    }
}
