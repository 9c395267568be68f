//! VXLAN, both ways. The first byte picks the side:
//!
//! - receive: the rest is a UDP payload for `mirror receive --tunnel vxlan`. Whatever `decap`
//!   accepts must parse, emit and parse again to the same header, and its inner frame must be
//!   what follows the 8 header bytes.
//! - send: the rest gives the tunnel's options and an inner frame. The encoder's outer
//!   IPv4/IPv6 and UDP headers must be right (lengths, checksums, source port from the flow
//!   hash), and `decap` must give back the inner frame byte for byte.
#![no_main]

use etherparse::IpNumber;
use libfuzzer_sys::fuzz_target;
use mirror::{
    flow_hash::{flow_hash, vxlan_source_port},
    receive::decap::{Accept, Reject, ETHERNET_HEADER_LEN, Header, decap},
    tunnel::{CopyMeta, Encap, MAX_HEADER_LEN, Tunnel},
    wire::vxlan::{FLAG_VNI, HEADER_LEN, Packet, Repr, Vni},
};
use mirror_fuzz::{Bytes, addresses, outer_ip_payload, outer_udp};

fuzz_target!(|data: &[u8]| {
    let mut bytes = Bytes::new(data);
    if bytes.bool() {
        send(bytes);
    } else {
        receive(bytes);
    }
});

fn receive(mut bytes: Bytes<'_>) {
    let filter = bytes.u32();
    let payload = bytes.rest();
    let vni = Vni::new(filter & 0xff_ffff).filter(|_| filter >> 31 == 1);
    let result = decap(Accept::Vxlan { vni }, payload);
    let parsed = Packet::new_checked(payload).and_then(|p| Repr::parse(&p));
    match result {
        Ok(decapped) => {
            let Header::Vxlan(repr) = decapped.header else {
                panic!("VXLAN decap gave {:?}", decapped.header)
            };
            assert_eq!(parsed, Ok(repr));
            assert!(vni.is_none_or(|vni| vni == repr.vni));
            assert_eq!(decapped.inner, &payload[HEADER_LEN..]);
            assert!(decapped.inner.len() >= ETHERNET_HEADER_LEN);
            round_trip(repr, payload);
        }
        Err(reason) => match parsed {
            Ok(repr) => {
                round_trip(repr, payload);
                let wrong_vni = vni.is_some_and(|vni| vni != repr.vni);
                let short = payload.len() < HEADER_LEN + ETHERNET_HEADER_LEN;
                assert!(
                    (reason == Reject::WrongVni && wrong_vni)
                        || (reason == Reject::BadHeader && short && !wrong_vni),
                    "{reason:?} for a header that parses ({repr:?}), {} bytes",
                    payload.len()
                );
            }
            Err(_) => assert_eq!(reason, Reject::BadHeader),
        },
    }
}

/// Emit `repr` and parse it back; the bytes must be the parsed ones with the reserved bits
/// cleared.
fn round_trip(repr: Repr, payload: &[u8]) {
    let mut out = [0xa5_u8; HEADER_LEN];
    repr.emit(&mut Packet::new_unchecked(&mut out[..]));
    assert_eq!(
        Repr::parse(&Packet::new_checked(&out[..]).unwrap()),
        Ok(repr)
    );
    let mut expected = [0_u8; HEADER_LEN];
    expected[0] = FLAG_VNI;
    expected[4..7].copy_from_slice(&payload[4..7]);
    assert_eq!(out, expected);
    assert_eq!(repr.buffer_len(), HEADER_LEN);
}

fn send(mut bytes: Bytes<'_>) {
    let vni = Vni::new(bytes.u32() & 0xff_ffff).unwrap();
    let dst_port = bytes.u16();
    let (src, dst) = addresses(&mut bytes);
    let inner = bytes.rest();
    let tunnel = Tunnel::Vxlan { vni, dst_port };
    let mut encap = Encap::new(&tunnel, src, dst).expect("VXLAN needs no checked option");
    let mut header = [0_u8; MAX_HEADER_LEN];
    let len = encap.write_header(inner, &CopyMeta::default(), &mut header);
    assert_eq!(len, encap.header_len());
    let packet = [&header[..len], inner].concat();

    let ip_payload = outer_ip_payload(&packet, src, dst, IpNumber::UDP);
    let (udp, vxlan) = outer_udp(ip_payload, src, dst);
    assert_eq!(udp.destination_port, dst_port);
    assert_eq!(udp.source_port, vxlan_source_port(flow_hash(inner)));
    assert!(udp.source_port >= 49152);

    match decap(Accept::Vxlan { vni: Some(vni) }, vxlan) {
        Ok(decapped) => {
            assert_eq!(decapped.header, Header::Vxlan(Repr { vni }));
            assert_eq!(decapped.inner, inner);
        }
        Err(reason) => {
            assert_eq!(reason, Reject::BadHeader);
            assert!(inner.len() < ETHERNET_HEADER_LEN, "a whole frame refused");
        }
    }
}
