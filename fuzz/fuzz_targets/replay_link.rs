//! `mirror replay`'s link-layer conversion: a packet of any link type a capture file may name,
//! turned into the Ethernet frame the tunnels carry.
//!
//! The input is a 2-byte selector (one of the supported link types, or any other number) and
//! the packet. Checked against an independent reading of the formats (libpcap's LINKTYPE_
//! pages): which packets convert, the made-up Ethernet header, and that the packet's payload
//! follows it unchanged; a packet that does not convert leaves the buffer alone.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mirror::replay::link::Link;
use mirror_fuzz::Bytes;

const SUPPORTED: [u32; 8] = [1, 113, 276, 101, 12, 14, 228, 229];
/// Something already in the caller's buffer, which must stay in front.
const BEFORE: &[u8] = b"before";

fuzz_target!(|data: &[u8]| {
    let mut bytes = Bytes::new(data);
    let selector = bytes.u16();
    let linktype = match SUPPORTED.get(usize::from(selector)) {
        Some(&supported) => supported,
        None => u32::from(selector) << 4 | u32::from(selector & 0xf),
    };
    let packet = bytes.rest();
    let link = match Link::from_linktype(linktype) {
        Ok(link) => link,
        Err(unsupported) => {
            assert!(!SUPPORTED.contains(&linktype));
            assert_eq!(unsupported.0, linktype);
            assert!(!unsupported.to_string().contains('\n'));
            return;
        }
    };
    assert!(SUPPORTED.contains(&linktype));
    let mut out = BEFORE.to_vec();
    let result = link.to_ethernet(packet, &mut out);
    let expected = expected(link, packet);
    match (result, expected) {
        (Ok(()), Some((header, payload))) => {
            assert_eq!(&out[..BEFORE.len()], BEFORE);
            let frame = &out[BEFORE.len()..];
            assert_eq!(frame[..14], header, "{link:?}");
            assert_eq!(&frame[14..], payload, "{link:?}");
        }
        (Ok(()), None) if link == Link::Ethernet => assert_eq!(&out[BEFORE.len()..], packet),
        (Err(_), None) => assert_eq!(out, BEFORE),
        (result, expected) => panic!("{link:?}: {result:?}, expected {expected:?}"),
    }
});

/// The Ethernet header and payload `packet` of `link` becomes, or `None` if it has no
/// Ethernet form (and for Ethernet, which is kept as it is).
fn expected(link: Link, packet: &[u8]) -> Option<([u8; 14], &[u8])> {
    let (packet_type, hatype, addr_len, addr, protocol, payload) = match link {
        Link::Ethernet => return None,
        Link::RawIp => {
            return match packet.first()? >> 4 {
                4 => Some((header([0; 6], [0; 6], 0x0800), packet)),
                6 => Some((header([0; 6], [0; 6], 0x86dd), packet)),
                _ => None,
            };
        }
        Link::Ipv4 => return Some((header([0; 6], [0; 6], 0x0800), packet)),
        Link::Ipv6 => return Some((header([0; 6], [0; 6], 0x86dd), packet)),
        // LINKTYPE_LINUX_SLL: packet type, ARPHRD type, address length, 8 address bytes,
        // protocol.
        Link::Sll => {
            let h = packet.get(..16)?;
            (
                u16::from_be_bytes([h[0], h[1]]),
                u16::from_be_bytes([h[2], h[3]]),
                h[5],
                &h[6..14],
                u16::from_be_bytes([h[14], h[15]]),
                &packet[16..],
            )
        }
        // LINKTYPE_LINUX_SLL2: protocol, reserved, interface index, ARPHRD type, packet type,
        // address length, 8 address bytes.
        Link::Sll2 => {
            let h = packet.get(..20)?;
            (
                u16::from(h[10]),
                u16::from_be_bytes([h[8], h[9]]),
                h[11],
                &h[12..20],
                u16::from_be_bytes([h[0], h[1]]),
                &packet[20..],
            )
        }
    };
    // ARPHRD_NETLINK: netlink messages, not frames.
    if hatype == 824 {
        return None;
    }
    let type_or_len = match protocol {
        0x0600.. => protocol,
        // ETH_P_802_3 and ETH_P_802_2: an 802.3 frame, with its length.
        1 | 4 if payload.len() <= 1500 => payload.len() as u16,
        _ => return None,
    };
    let dst = if packet_type == 1 { [0xff; 6] } else { [0; 6] };
    let src = if addr_len == 6 {
        addr[..6].try_into().unwrap()
    } else {
        [0; 6]
    };
    Some((header(dst, src, type_or_len), payload))
}

fn header(dst: [u8; 6], src: [u8; 6], ether_type: u16) -> [u8; 14] {
    let mut header = [0; 14];
    header[..6].copy_from_slice(&dst);
    header[6..12].copy_from_slice(&src);
    header[12..].copy_from_slice(&ether_type.to_be_bytes());
    header
}
