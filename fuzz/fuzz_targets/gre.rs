//! GRE (and ERSPAN Type I, a bare GRE header), both ways. The first byte picks the side:
//!
//! - receive: the rest is what `mirror receive --tunnel gre|erspan1` gets from its raw socket
//!   (an IPv4 packet, header included, or an IPv6 payload). Whatever parses must emit and parse
//!   again to the same header, with the same bytes but for the bits the parser ignores (and a
//!   checksum that still verifies); `decap` must accept exactly what its table says.
//! - send: the rest gives the tunnel's options, a number of copies and an inner frame. The
//!   encoder's outer IP header must be right, its sequence numbers must count the copies, and
//!   `decap` must give back the inner frame byte for byte.
#![no_main]

use etherparse::IpNumber;
use libfuzzer_sys::fuzz_target;
use mirror::{
    receive::decap::{Accept, Reject, ETHERNET_HEADER_LEN, Header, decap, ipv4_payload},
    tunnel::{CopyMeta, Encap, MAX_HEADER_LEN, Tunnel},
    wire::gre::{ERSPAN_I_II, ETHERTYPE_TEB, FLAG_CHECKSUM, FLAG_KEY, FLAG_SEQUENCE, Packet, Repr},
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
    let filter = bytes.u32();
    let accept = match options & 3 {
        0 => Accept::Gre { key: None },
        1 => Accept::Gre { key: Some(filter) },
        _ => Accept::Erspan1,
    };
    let delivered = bytes.rest();
    // Over IPv4 the raw socket delivers the IP header too.
    let payload = if options & 4 != 0 {
        match ipv4_payload(delivered) {
            Ok(payload) => {
                let ihl = usize::from(delivered[0] & 0x0f) * 4;
                assert!(delivered[0] >> 4 == 4 && ihl >= 20 && delivered[9] == 47);
                assert_eq!(payload, &delivered[ihl..]);
                payload
            }
            Err(_) => return,
        }
    } else {
        delivered
    };

    let parsed = Packet::new_checked(payload).and_then(|p| Repr::parse(&p).map(|r| (p, r)));
    let result = decap(accept, payload);
    let Ok((packet, repr)) = parsed else {
        assert_eq!(result, Err(Reject::BadHeader));
        return;
    };
    round_trip(&packet, repr);
    let inner = packet.payload();
    let expected = match accept {
        Accept::Gre { key } => {
            if repr.protocol != ETHERTYPE_TEB {
                Err(Reject::WrongProtocol)
            } else if key.is_some_and(|key| repr.key != Some(key)) {
                Err(Reject::WrongKey)
            } else {
                Ok(Header::Gre(repr))
            }
        }
        _ if repr.protocol != ERSPAN_I_II || repr.sequence.is_some() => {
            Err(Reject::WrongProtocol)
        }
        _ => Ok(Header::Erspan1(repr)),
    };
    let expected = expected.and_then(|header| {
        if inner.len() < ETHERNET_HEADER_LEN {
            Err(Reject::BadHeader)
        } else {
            Ok(header)
        }
    });
    assert_eq!(
        result.map(|d| (d.header, d.inner)),
        expected.map(|h| (h, inner))
    );
}

/// Emit `repr` for `packet`'s payload and parse it back.
fn round_trip(packet: &Packet<&[u8]>, repr: Repr) {
    let original = packet.as_ref();
    let len = repr.buffer_len();
    assert_eq!(len, packet.header_len());
    let payload = packet.payload();
    let mut out = vec![0xa5_u8; len];
    repr.emit(&mut Packet::new_unchecked(&mut out[..]), payload);
    let whole = [&out[..], payload].concat();
    let again = Packet::new_checked(&whole[..]).expect("emitted header is whole");
    assert_eq!(Repr::parse(&again), Ok(repr), "emit then parse");
    // The same bytes, but for the ignored bits (6-12, Reserved1) and so the checksum.
    let flags = u16::from_be_bytes([original[0], original[1]]);
    let mut expected = original[..len].to_vec();
    expected[..2]
        .copy_from_slice(&(flags & (FLAG_CHECKSUM | FLAG_KEY | FLAG_SEQUENCE)).to_be_bytes());
    if repr.checksum {
        // The checksum was checked by the parse above; Reserved1 is zero on emit.
        expected[4..6].copy_from_slice(&out[4..6]);
        expected[6..8].fill(0);
    }
    assert_eq!(out, expected);
}

fn send(mut bytes: Bytes<'_>) {
    let options = bytes.u8();
    let key = bytes.u32();
    let copies = 1 + usize::from(options >> 6);
    let tunnel = match options & 3 {
        0 => Tunnel::Gre {
            key: None,
            sequence: options & 4 != 0,
        },
        1 => Tunnel::Gre {
            key: Some(key),
            sequence: options & 4 != 0,
        },
        _ => Tunnel::Erspan1,
    };
    let (src, dst) = addresses(&mut bytes);
    let inner = bytes.rest();
    let mut encap = Encap::new(&tunnel, src, dst).expect("GRE needs no checked option");
    for copy in 0..copies {
        let mut header = [0_u8; MAX_HEADER_LEN];
        let len = encap.write_header(inner, &CopyMeta::default(), &mut header);
        assert_eq!(len, encap.header_len());
        let packet = [&header[..len], inner].concat();
        let gre = outer_ip_payload(&packet, src, dst, IpNumber::GRE);
        if src.is_ipv4() {
            assert_eq!(ipv4_payload(&packet), Ok(gre));
        }
        let (accept, expected) = match tunnel {
            Tunnel::Gre { key, sequence } => (
                Accept::Gre { key },
                Header::Gre(Repr {
                    protocol: ETHERTYPE_TEB,
                    key,
                    sequence: sequence.then_some(copy as u32),
                    checksum: false,
                }),
            ),
            _ => (
                Accept::Erspan1,
                Header::Erspan1(Repr {
                    protocol: ERSPAN_I_II,
                    key: None,
                    sequence: None,
                    checksum: false,
                }),
            ),
        };
        match decap(accept, gre) {
            Ok(decapped) => {
                assert_eq!(decapped.header, expected);
                assert_eq!(decapped.inner, inner);
            }
            Err(reason) => {
                assert_eq!(reason, Reject::BadHeader);
                assert!(inner.len() < ETHERNET_HEADER_LEN, "a whole frame refused");
            }
        }
    }
}
