//! `mirror replay`'s link-layer conversion: a packet of any link type a capture file may name,
//! turned into the Ethernet frame the tunnels carry.
//!
//! The input is a 2-byte selector (its low 15 bits one of the supported link types, or any
//! other number; its top bit a big-endian file, which NFLOG's TLVs follow) and the packet.
//! Checked against an independent reading of the formats (libpcap's LINKTYPE_ pages): which
//! packets convert, the frame they become, and that a packet that does not convert leaves the
//! buffer alone.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mirror::replay::link::Link;
use mirror_fuzz::Bytes;
use pcap_file::Endianness;

const SUPPORTED: [u32; 22] = [
    1, 113, 276, 101, 12, 14, 228, 229, 0, 108, 109, 117, 9, 50, 104, 8, 239, 258, 226, 178, 105,
    127,
];
/// Something already in the caller's buffer, which must stay in front.
const BEFORE: &[u8] = b"before";

fuzz_target!(|data: &[u8]| {
    let mut bytes = Bytes::new(data);
    let selector = bytes.u16();
    let big_endian = selector & 0x8000 != 0;
    let index = selector & 0x7fff;
    let linktype = match SUPPORTED.get(usize::from(index)) {
        Some(&supported) => supported,
        None => u32::from(index) << 4 | u32::from(index & 0xf),
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
    let endianness = if big_endian {
        Endianness::Big
    } else {
        Endianness::Little
    };
    let link = link.in_file_of(endianness);
    let mut out = BEFORE.to_vec();
    let result = link.to_ethernet(packet, &mut out);
    let expected = expected(linktype, big_endian, packet);
    match (result, expected) {
        (Ok(()), Some(frame)) => {
            assert_eq!(&out[..BEFORE.len()], BEFORE);
            assert_eq!(out[BEFORE.len()..], frame, "{link:?}");
        }
        (Err(_), None) => assert_eq!(out, BEFORE),
        (result, expected) => panic!("{link:?}: {result:?}, expected {expected:?}"),
    }
});

/// The Ethernet frame `packet` of `linktype` becomes, or `None` if it has no Ethernet form.
fn expected(linktype: u32, big_endian: bool, packet: &[u8]) -> Option<Vec<u8>> {
    match linktype {
        1 => Some(packet.to_vec()),
        101 | 12 | 14 => by_version(packet),
        228 => behind_zero_macs(0x0800, packet),
        229 => behind_zero_macs(0x86dd, packet),
        113 | 276 => cooked(linktype, packet),
        // DLT_NULL: the family in the writer's byte order (a family is below 65536).
        0 | 109 => {
            let word: [u8; 4] = packet.get(..4)?.try_into().ok()?;
            let little = u32::from_le_bytes(word);
            let family = if little < 0x10000 {
                little
            } else {
                u32::from_be_bytes(word)
            };
            let header = if linktype == 0 { 4 } else { 12 };
            behind_zero_macs(ethertype_of_family(family)?, packet.get(header..)?)
        }
        108 => {
            let family = u32::from_be_bytes(packet.get(..4)?.try_into().ok()?);
            behind_zero_macs(ethertype_of_family(family)?, &packet[4..])
        }
        // pflog: header length (rounded up to 4), family.
        117 => {
            let header = usize::from(*packet.first()?).next_multiple_of(4);
            if header < 45 {
                return None;
            }
            let family = u32::from(*packet.get(1)?);
            behind_zero_macs(ethertype_of_family(family)?, packet.get(header..)?)
        }
        9 | 50 => {
            if packet.len() >= 2 && packet[0] == 0xff && packet[1] == 0x03 {
                ppp_protocol(&packet[2..])
            } else if packet.len() >= 2
                && (packet[0] == 0x0f || packet[0] == 0x8f)
                && packet[1] == 0
            {
                cisco(packet)
            } else {
                ppp_protocol(packet)
            }
        }
        104 => cisco(packet),
        8 => by_version(packet.get(16..)?),
        239 => nflog(big_endian, packet),
        258 => {
            let le = |at: usize| -> Option<u32> {
                Some(u32::from_le_bytes(packet.get(at..at + 4)?.try_into().ok()?))
            };
            let header = le(0)? as usize;
            if header < 108 || le(4)? != 1 {
                return None;
            }
            let inner = le(8)?;
            if inner == 258 || !SUPPORTED.contains(&inner) {
                return None;
            }
            let trailer = le(48)? as usize;
            let rest = packet.get(header..)?;
            let end = rest.len().checked_sub(trailer)?;
            // PKTAP's header is little-endian, and so is what it carries.
            expected(inner, false, &rest[..end])
        }
        226 => {
            let family = u32::from(*packet.get(1)?);
            behind_zero_macs(ethertype_of_family(family)?, packet.get(24..)?)
        }
        178 => {
            if packet.get(..3)? != b"MGC" {
                return None;
            }
            let flags = *packet.get(3)?;
            let mut header = 4;
            if flags & 0x80 != 0 {
                header += 2 + usize::from(u16::from_be_bytes(packet.get(4..6)?.try_into().ok()?));
            }
            if flags & 0x02 != 0 {
                return by_version(packet.get(header + 4..)?);
            }
            let frame = packet.get(header..)?;
            (frame.len() >= 14).then(|| frame.to_vec())
        }
        105 => wifi(packet, false),
        // Radiotap: version, pad, length (little-endian), present words; the Flags field (bit 1)
        // follows them and, if bit 0 is set, the 8-byte TSFT aligned to 8.
        127 => {
            let len = usize::from(u16::from_le_bytes(packet.get(2..4)?.try_into().ok()?));
            let header = packet.get(..len)?;
            let present = u32::from_le_bytes(header.get(4..8)?.try_into().ok()?);
            let mut flags = 0;
            if present & 2 != 0 {
                let mut at = 8;
                let mut word = present;
                while word & (1 << 31) != 0 {
                    word = u32::from_le_bytes(header.get(at..at + 4)?.try_into().ok()?);
                    at += 4;
                }
                if present & 1 != 0 {
                    at = at.next_multiple_of(8) + 8;
                }
                flags = *header.get(at)?;
            }
            if flags & 0x40 != 0 {
                return None;
            }
            let mut frame = &packet[len..];
            if flags & 0x10 != 0 {
                frame = &frame[..frame.len().checked_sub(4)?];
            }
            wifi(frame, flags & 0x20 != 0)
        }
        other => panic!("no expectation for link type {other}"),
    }
}

/// An 802.11 data frame with data, unprotected, not an A-MSDU, with an RFC 1042 or 802.1H
/// SNAP header: destination and source by the To DS / From DS bits.
fn wifi(frame: &[u8], padded: bool) -> Option<Vec<u8>> {
    let (fc0, fc1) = (*frame.first()?, *frame.get(1)?);
    if (fc0 >> 2) & 3 != 2 || (fc0 >> 4) & 4 != 0 || fc1 & 0x40 != 0 {
        return None;
    }
    let addr = |at: usize| -> Option<[u8; 6]> { frame.get(at..at + 6)?.try_into().ok() };
    let (dst, src, mut header) = match fc1 & 3 {
        0 => (addr(4)?, addr(10)?, 24),
        1 => (addr(16)?, addr(10)?, 24),
        2 => (addr(4)?, addr(16)?, 24),
        _ => (addr(16)?, addr(24)?, 30),
    };
    if (fc0 >> 4) & 8 != 0 {
        if frame.get(header)? & 0x80 != 0 {
            return None;
        }
        header += if fc1 & 0x80 != 0 { 6 } else { 2 };
    }
    if padded {
        header = header.next_multiple_of(4);
    }
    let llc = frame.get(header..)?;
    let snap = llc.get(..6)?;
    if snap != [0xaa, 0xaa, 3, 0, 0, 0] && snap != [0xaa, 0xaa, 3, 0, 0, 0xf8] {
        return None;
    }
    let ether_type = u16::from_be_bytes(llc.get(6..8)?.try_into().ok()?);
    Some(frame_of(dst, src, ether_type, &llc[8..]))
}

/// IPv4 and the AF_INET6 of Linux, Windows, the BSDs, Solaris and macOS.
fn ethertype_of_family(family: u32) -> Option<u16> {
    match family {
        2 => Some(0x0800),
        10 | 23 | 24 | 26 | 28 | 30 => Some(0x86dd),
        _ => None,
    }
}

fn by_version(ip: &[u8]) -> Option<Vec<u8>> {
    match ip.first()? >> 4 {
        4 => behind_zero_macs(0x0800, ip),
        6 => behind_zero_macs(0x86dd, ip),
        _ => None,
    }
}

/// A non-empty packet behind zero MACs.
fn behind_zero_macs(ether_type: u16, payload: &[u8]) -> Option<Vec<u8>> {
    if payload.is_empty() {
        return None;
    }
    Some(frame_of([0; 6], [0; 6], ether_type, payload))
}

/// PPP's protocol field (one byte when odd, RFC 1661's compression) and what carries IP/MPLS.
fn ppp_protocol(packet: &[u8]) -> Option<Vec<u8>> {
    let first = *packet.first()?;
    let (protocol, payload) = if first % 2 == 1 {
        (u16::from(first), &packet[1..])
    } else {
        (
            u16::from_be_bytes(packet.get(..2)?.try_into().ok()?),
            &packet[2..],
        )
    };
    let ether_type = match protocol {
        0x21 => 0x0800,
        0x57 => 0x86dd,
        0x281 => 0x8847,
        0x283 => 0x8848,
        _ => return None,
    };
    behind_zero_macs(ether_type, payload)
}

/// Cisco HDLC: address (0x8F broadcast), control, EtherType; IP and MPLS only.
fn cisco(packet: &[u8]) -> Option<Vec<u8>> {
    let header = packet.get(..4)?;
    let ether_type = u16::from_be_bytes([header[2], header[3]]);
    if ![0x0800, 0x86dd, 0x8847, 0x8848].contains(&ether_type) {
        return None;
    }
    let dst = if header[0] == 0x8f { [0xff; 6] } else { [0; 6] };
    Some(frame_of(dst, [0; 6], ether_type, &packet[4..]))
}

/// NFLOG: family, version, resource ID; TLVs (length with its header, type) padded to 4 bytes;
/// type 9 (the flag bits 14 and 15 aside) is the packet.
fn nflog(big_endian: bool, packet: &[u8]) -> Option<Vec<u8>> {
    let ether_type = ethertype_of_family(u32::from(*packet.first()?))?;
    let read = |at: usize| -> Option<u16> {
        let field: [u8; 2] = packet.get(at..at + 2)?.try_into().ok()?;
        Some(if big_endian {
            u16::from_be_bytes(field)
        } else {
            u16::from_le_bytes(field)
        })
    };
    let mut at = 4;
    while at < packet.len() {
        let len = usize::from(read(at)?);
        let kind = read(at + 2)? & 0x3fff;
        if len < 4 || at + len > packet.len() {
            return None;
        }
        if kind == 9 {
            return behind_zero_macs(ether_type, &packet[at + 4..at + len]);
        }
        at += len.next_multiple_of(4);
    }
    None
}

/// LINKTYPE_LINUX_SLL (packet type, ARPHRD type, address length, 8 address bytes, protocol) and
/// LINKTYPE_LINUX_SLL2 (protocol, reserved, interface index, ARPHRD type, packet type, address
/// length, 8 address bytes).
fn cooked(linktype: u32, packet: &[u8]) -> Option<Vec<u8>> {
    let (packet_type, hatype, addr_len, addr, protocol, payload) = if linktype == 113 {
        let h = packet.get(..16)?;
        (
            u16::from_be_bytes([h[0], h[1]]),
            u16::from_be_bytes([h[2], h[3]]),
            h[5],
            &h[6..14],
            u16::from_be_bytes([h[14], h[15]]),
            &packet[16..],
        )
    } else {
        let h = packet.get(..20)?;
        (
            u16::from(h[10]),
            u16::from_be_bytes([h[8], h[9]]),
            h[11],
            &h[12..20],
            u16::from_be_bytes([h[0], h[1]]),
            &packet[20..],
        )
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
    Some(frame_of(dst, src, type_or_len, payload))
}

fn frame_of(dst: [u8; 6], src: [u8; 6], ether_type: u16, payload: &[u8]) -> Vec<u8> {
    [&dst[..], &src, &ether_type.to_be_bytes(), payload].concat()
}
