//! The link layers a capture file can hold, and how each becomes the Ethernet frame the tunnels
//! carry.
//!
//! | link type | number | Ethernet frame |
//! |---|---|---|
//! | Ethernet | 1 | as is |
//! | Linux cooked (SLL) | 113 | source MAC from the SLL address, EtherType from its protocol |
//! | Linux cooked v2 (SLL2) | 276 | the same |
//! | raw IP | 101, 12, 14 | zero MACs, EtherType from the IP version nibble |
//! | IPv4 / IPv6 | 228 / 229 | zero MACs, EtherType 0x0800 / 0x86DD |
//! | BSD loopback NULL / LOOP | 0 / 108 | zero MACs, EtherType from the address family |
//! | OpenBSD enc, pflog | 109, 117 | the same |
//! | PPP, PPP in HDLC framing | 9, 50 | zero MACs, EtherType from the PPP protocol |
//! | Cisco HDLC | 104 | zero (or broadcast) MACs, its EtherType |
//! | SLIP | 8 | zero MACs, EtherType from the IP version nibble |
//! | Linux NFLOG | 239 | zero MACs, the payload TLV, EtherType from the family |
//! | Apple PKTAP | 258 | the packet behind the header, by its own link type |
//! | Solaris IPNET | 226 | zero MACs, EtherType from the family |
//! | Juniper Ethernet | 178 | the Ethernet frame behind the Juniper header |
//! | 802.11, with radiotap | 105, 127 | data frames: addresses and LLC/SNAP EtherType (`ieee80211.rs`) |
//!
//! Cooked captures keep the link-layer source address of each packet (`addr_len` 6 on Ethernet
//! devices); their destination is unknown, so it is zero, or the broadcast address for packets
//! the SLL header calls broadcast. Protocol values below 0x0600 are Linux's pseudo-protocols:
//! 802.3 frames (1, Novell) and 802.2 LLC (4) become 802.3 frames with a length field; the
//! others (CAN, netlink, ...) have no Ethernet form and are skipped as malformed. So are the
//! control packets of the point-to-point links (PPP's LCP, Cisco's SLARP): only what carries IP
//! (or MPLS) has an Ethernet form, and of 802.11 only the data frames.

mod ieee80211;

use pcap_file::{DataLink, Endianness};

/// Length of an Ethernet II header.
pub const ETHERNET_HEADER_LEN: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86DD;
const ETHERTYPE_MPLS: u16 = 0x8847;
const ETHERTYPE_MPLS_MULTICAST: u16 = 0x8848;
/// EtherTypes start here; smaller values in that field are 802.3 lengths.
const ETHERTYPE_MIN: u16 = 0x0600;
/// Linux's `ETH_P_802_3` and `ETH_P_802_2` (`linux/if_ether.h`).
const ETH_P_802_3: u16 = 0x0001;
const ETH_P_802_2: u16 = 0x0004;
/// Largest 802.3 payload a length field can carry.
const MAX_8023_LEN: usize = 1500;
/// `ARPHRD_NETLINK`: nlmon captures, netlink messages rather than packets.
const ARPHRD_NETLINK: u16 = 824;
/// SLL packet type of a broadcast packet (`PACKET_BROADCAST`).
const PACKET_BROADCAST: u8 = 1;
/// `AF_INET`, the same on every system.
const AF_INET: u32 = 2;
/// `AF_INET6` of Linux, Windows, NetBSD/OpenBSD, Solaris, FreeBSD and macOS: a capture file
/// keeps the value of the system that wrote it.
const AF_INET6: [u32; 6] = [10, 23, 24, 26, 28, 30];
/// The pseudo-header of a SLIP packet: direction and the compressed TCP/IP header, if any; the
/// IP packet behind it is whole.
const SLIP_HEADER_LEN: usize = 16;
/// OpenBSD's `struct enchdr`: address family, SPI, flags.
const ENC_HEADER_LEN: usize = 12;
/// The shortest `struct pfloghdr` (tcpdump's `MIN_PFLOG_HDRLEN`).
const PFLOG_MIN_HEADER_LEN: usize = 45;
/// Solaris's `ipnet_hdr_t`: version, family, hardware type, length, interface and zone IDs.
const IPNET_HEADER_LEN: usize = 24;
/// Apple's `pktap_header` up to its last field; `pth_length` says how long it really is.
const PKTAP_MIN_HEADER_LEN: usize = 108;
/// `PTH_TYPE_PACKET`: the record holds a packet.
const PKTAP_PACKET: u32 = 1;
/// NFLOG's TLV holding the packet, from its network header on (`NFULA_PAYLOAD`).
const NFULA_PAYLOAD: u16 = 9;
/// Juniper's header: "MGC", then flags telling of extensions and of a stripped layer 2.
const JUNIPER_MAGIC: &[u8; 3] = b"MGC";
const JUNIPER_FLAG_NO_L2: u8 = 0x02;
const JUNIPER_FLAG_EXTENSIONS: u8 = 0x80;

/// Numbers of the link types [`Link::from_linktype`] accepts, for messages.
pub const SUPPORTED: &str = "Ethernet (1), Linux cooked SLL (113) and SLL2 (276), \
                             raw IP (101, 12, 14), IPv4 (228) and IPv6 (229), \
                             BSD loopback (0, 108), enc (109), pflog (117), PPP (9, 50), \
                             Cisco HDLC (104), SLIP (8), NFLOG (239), PKTAP (258), \
                             IPNET (226), Juniper Ethernet (178), 802.11 data frames (105, and \
                             with radiotap 127)";

/// A link layer the replay can turn into Ethernet frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    Ethernet,
    /// Linux cooked capture v1 (`any` device, 16-byte header).
    Sll,
    /// Linux cooked capture v2 (20-byte header).
    Sll2,
    /// IPv4 or IPv6, told apart by the version nibble.
    RawIp,
    Ipv4,
    Ipv6,
    /// BSD loopback: a 4-byte address family in the byte order of the host that captured.
    Null,
    /// OpenBSD loopback: the same in network byte order.
    Loop,
    /// OpenBSD IPsec: a 12-byte header whose first word is the address family.
    Enc,
    /// OpenBSD/FreeBSD pf logging: a header of its own length with the address family.
    Pflog,
    /// PPP, with or without HDLC address and control (or a Cisco HDLC header, as
    /// `PPP_HDLC` may hold).
    Ppp,
    /// Cisco HDLC: address, control and an EtherType.
    CiscoHdlc,
    /// SLIP: a 16-byte pseudo-header, then the IP packet.
    Slip,
    /// Linux NFLOG: family, version, group, then TLVs in the byte order of the host that
    /// captured, which is the file's.
    Nflog {
        big_endian: bool,
    },
    /// Apple PKTAP: a header naming the packet's own link type.
    Pktap,
    /// Solaris IPNET: a 24-byte header with the address family.
    Ipnet,
    /// Juniper's header, then an Ethernet frame (or an IP packet if layer 2 was stripped).
    JuniperEther,
    /// 802.11 frames, of which the data frames with LLC/SNAP have an Ethernet form.
    Ieee80211,
    /// The same behind a radiotap header.
    Radiotap,
}

/// A link type the replay cannot turn into Ethernet frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("link type {} cannot be replayed; supported: {SUPPORTED}", describe(*.0))]
pub struct Unsupported(pub u32);

/// A packet whose link header is too short or says something with no Ethernet form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed;

impl Link {
    /// The link layer of a pcap `LINKTYPE_` number.
    pub fn from_linktype(linktype: u32) -> Result<Self, Unsupported> {
        match linktype {
            1 => Ok(Self::Ethernet),
            113 => Ok(Self::Sll),
            276 => Ok(Self::Sll2),
            // LINKTYPE_RAW, and DLT_RAW's values on the BSDs that libpcap maps to it.
            101 | 12 | 14 => Ok(Self::RawIp),
            228 => Ok(Self::Ipv4),
            229 => Ok(Self::Ipv6),
            0 => Ok(Self::Null),
            108 => Ok(Self::Loop),
            109 => Ok(Self::Enc),
            117 => Ok(Self::Pflog),
            9 | 50 => Ok(Self::Ppp),
            104 => Ok(Self::CiscoHdlc),
            8 => Ok(Self::Slip),
            239 => Ok(Self::Nflog { big_endian: false }),
            258 => Ok(Self::Pktap),
            226 => Ok(Self::Ipnet),
            178 => Ok(Self::JuniperEther),
            105 => Ok(Self::Ieee80211),
            127 => Ok(Self::Radiotap),
            other => Err(Unsupported(other)),
        }
    }

    /// The link layer as a file of this byte order holds it: NFLOG's TLVs are in the byte order
    /// of the host that wrote the file (libpcap swaps them when it reads a file of the other
    /// order).
    #[must_use]
    pub fn in_file_of(self, endianness: Endianness) -> Self {
        match self {
            Self::Nflog { .. } => Self::Nflog {
                big_endian: endianness == Endianness::Big,
            },
            other => other,
        }
    }

    /// Appends the Ethernet frame of `data` (a packet of this link type, as captured) to `out`.
    /// On error `out` is left as it was.
    pub fn to_ethernet(self, data: &[u8], out: &mut Vec<u8>) -> Result<(), Malformed> {
        match self {
            Self::Ethernet => {
                out.extend_from_slice(data);
                Ok(())
            }
            Self::Sll => {
                let (header, payload) = data.split_first_chunk::<16>().ok_or(Malformed)?;
                let [t0, t1, h0, h1, _, addr_len, addr @ .., p0, p1] = *header;
                let cooked = Cooked {
                    packet_type: u16::from_be_bytes([t0, t1]).try_into().unwrap_or(u8::MAX),
                    hatype: u16::from_be_bytes([h0, h1]),
                    addr_len,
                    addr,
                    protocol: u16::from_be_bytes([p0, p1]),
                };
                cooked.to_ethernet(payload, out)
            }
            Self::Sll2 => {
                let (header, payload) = data.split_first_chunk::<20>().ok_or(Malformed)?;
                let [
                    p0,
                    p1,
                    _,
                    _,
                    _,
                    _,
                    _,
                    _,
                    h0,
                    h1,
                    packet_type,
                    addr_len,
                    addr @ ..,
                ] = *header;
                let cooked = Cooked {
                    packet_type,
                    hatype: u16::from_be_bytes([h0, h1]),
                    addr_len,
                    addr,
                    protocol: u16::from_be_bytes([p0, p1]),
                };
                cooked.to_ethernet(payload, out)
            }
            Self::RawIp => raw_ip(data, out),
            Self::Ipv4 => ip(ETHERTYPE_IPV4, data, out),
            Self::Ipv6 => ip(ETHERTYPE_IPV6, data, out),
            Self::Null | Self::Loop | Self::Enc => {
                let (&family, _) = data.split_first_chunk::<4>().ok_or(Malformed)?;
                let family = if self == Self::Loop {
                    u32::from_be_bytes(family)
                } else {
                    // Written in the capturing host's order, which the file does not tell:
                    // a family is small, so the order that makes it small is the right one.
                    let host = u32::from_le_bytes(family);
                    if host <= 0xFFFF {
                        host
                    } else {
                        u32::from_be_bytes(family)
                    }
                };
                let len = if self == Self::Enc { ENC_HEADER_LEN } else { 4 };
                let payload = data.get(len..).ok_or(Malformed)?;
                ip(family_ethertype(family)?, payload, out)
            }
            Self::Pflog => {
                let (&[len, family], _) = data.split_first_chunk::<2>().ok_or(Malformed)?;
                let len = usize::from(len).next_multiple_of(4);
                if len < PFLOG_MIN_HEADER_LEN {
                    return Err(Malformed);
                }
                let payload = data.get(len..).ok_or(Malformed)?;
                ip(family_ethertype(u32::from(family))?, payload, out)
            }
            Self::Ppp => ppp(data, out),
            Self::CiscoHdlc => cisco_hdlc(data, out),
            Self::Slip => raw_ip(data.get(SLIP_HEADER_LEN..).ok_or(Malformed)?, out),
            Self::Nflog { big_endian } => nflog(data, big_endian, out),
            Self::Pktap => pktap(data, out),
            Self::Ipnet => {
                let family = data.get(1).ok_or(Malformed)?;
                let payload = data.get(IPNET_HEADER_LEN..).ok_or(Malformed)?;
                ip(family_ethertype(u32::from(*family))?, payload, out)
            }
            Self::JuniperEther => juniper_ether(data, out),
            Self::Ieee80211 => ieee80211::to_ethernet(data, out),
            Self::Radiotap => ieee80211::radiotap_to_ethernet(data, out),
        }
    }
}

/// The EtherType of an address family, if it is IP.
fn family_ethertype(family: u32) -> Result<u16, Malformed> {
    match family {
        AF_INET => Ok(ETHERTYPE_IPV4),
        family if AF_INET6.contains(&family) => Ok(ETHERTYPE_IPV6),
        _ => Err(Malformed),
    }
}

/// An IP packet of either version, told apart by its version nibble.
fn raw_ip(data: &[u8], out: &mut Vec<u8>) -> Result<(), Malformed> {
    let ethertype = match data.first().map(|b| b >> 4) {
        Some(4) => ETHERTYPE_IPV4,
        Some(6) => ETHERTYPE_IPV6,
        _ => return Err(Malformed),
    };
    ip(ethertype, data, out)
}

/// A packet whose EtherType the link header told, behind zero MACs; a link header with nothing
/// behind it holds no packet.
fn ip(ethertype: u16, data: &[u8], out: &mut Vec<u8>) -> Result<(), Malformed> {
    if data.is_empty() {
        return Err(Malformed);
    }
    push_ethernet(out, [0; 6], [0; 6], ethertype, data);
    Ok(())
}

/// PPP (RFC 1661), in HDLC-like framing (RFC 1662, address 0xFF and control 0x03) or without;
/// a Cisco HDLC header in its place is read as such (`LINKTYPE_PPP_HDLC` holds both).
fn ppp(data: &[u8], out: &mut Vec<u8>) -> Result<(), Malformed> {
    let data = match data {
        [0xff, 0x03, rest @ ..] => rest,
        [0x0f | 0x8f, 0x00, ..] => return cisco_hdlc(data, out),
        _ => data,
    };
    // An odd first byte is a protocol field compressed to one byte (RFC 1661 6.5).
    let (protocol, payload) = match data {
        [first, rest @ ..] if first & 1 == 1 => (u16::from(*first), rest),
        [hi, lo, rest @ ..] => (u16::from_be_bytes([*hi, *lo]), rest),
        _ => return Err(Malformed),
    };
    let ethertype = match protocol {
        0x0021 => ETHERTYPE_IPV4,
        0x0057 => ETHERTYPE_IPV6,
        0x0281 => ETHERTYPE_MPLS,
        0x0283 => ETHERTYPE_MPLS_MULTICAST,
        _ => return Err(Malformed),
    };
    ip(ethertype, payload, out)
}

/// Cisco HDLC: address (0x0F unicast, 0x8F broadcast), control, EtherType.
fn cisco_hdlc(data: &[u8], out: &mut Vec<u8>) -> Result<(), Malformed> {
    let (&[address, _, hi, lo], payload) = data.split_first_chunk::<4>().ok_or(Malformed)?;
    let ethertype = u16::from_be_bytes([hi, lo]);
    if !matches!(
        ethertype,
        ETHERTYPE_IPV4 | ETHERTYPE_IPV6 | ETHERTYPE_MPLS | ETHERTYPE_MPLS_MULTICAST
    ) {
        return Err(Malformed);
    }
    let dst = if address == 0x8f { [0xff; 6] } else { [0; 6] };
    push_ethernet(out, dst, [0; 6], ethertype, payload);
    Ok(())
}

/// NFLOG: family, version, resource ID, then TLVs (length including its 4 bytes, type), each
/// padded to 32 bits; the packet is the payload TLV's value.
fn nflog(data: &[u8], big_endian: bool, out: &mut Vec<u8>) -> Result<(), Malformed> {
    let (&[family, ..], mut tlvs) = data.split_first_chunk::<4>().ok_or(Malformed)?;
    let ethertype = family_ethertype(u32::from(family))?;
    let u16_at = |bytes: &[u8], at: usize| -> Result<u16, Malformed> {
        let field: [u8; 2] = bytes
            .get(at..at + 2)
            .and_then(|b| b.try_into().ok())
            .ok_or(Malformed)?;
        Ok(if big_endian {
            u16::from_be_bytes(field)
        } else {
            u16::from_le_bytes(field)
        })
    };
    while !tlvs.is_empty() {
        let len = usize::from(u16_at(tlvs, 0)?);
        // The type's top bits are netlink's nested and byte-order flags.
        let kind = u16_at(tlvs, 2)? & 0x3fff;
        let value = tlvs.get(4..len).ok_or(Malformed)?;
        if kind == NFULA_PAYLOAD {
            return ip(ethertype, value, out);
        }
        tlvs = tlvs.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
    // No payload: a packet logged without its bytes.
    Err(Malformed)
}

/// PKTAP: a little-endian header (`pth_length`, `pth_type_next`, `pth_dlt`, ... the trailer
/// length at byte 48), then the packet of link type `pth_dlt`.
fn pktap(data: &[u8], out: &mut Vec<u8>) -> Result<(), Malformed> {
    let word = |at: usize| -> Result<u32, Malformed> {
        let field: [u8; 4] = data
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .ok_or(Malformed)?;
        Ok(u32::from_le_bytes(field))
    };
    let len = word(0)? as usize;
    if len < PKTAP_MIN_HEADER_LEN || word(4)? != PKTAP_PACKET {
        return Err(Malformed);
    }
    let inner = match Link::from_linktype(word(8)?) {
        Ok(Link::Pktap) | Err(_) => return Err(Malformed),
        Ok(inner) => inner,
    };
    let packet = data.get(len..).ok_or(Malformed)?;
    let trailer = word(48)? as usize;
    let packet = packet
        .get(..packet.len().checked_sub(trailer).ok_or(Malformed)?)
        .ok_or(Malformed)?;
    inner.to_ethernet(packet, out)
}

/// Juniper's header: "MGC", flags, extensions (a 16-bit length and that many bytes) if the
/// flags say so; then the Ethernet frame, or, when layer 2 was stripped, a 4-byte cookie and
/// the IP packet.
fn juniper_ether(data: &[u8], out: &mut Vec<u8>) -> Result<(), Malformed> {
    let (&[m0, m1, m2, flags], _) = data.split_first_chunk::<4>().ok_or(Malformed)?;
    if [m0, m1, m2] != *JUNIPER_MAGIC {
        return Err(Malformed);
    }
    let mut len = 4;
    if flags & JUNIPER_FLAG_EXTENSIONS != 0 {
        let ext: [u8; 2] = data
            .get(4..6)
            .and_then(|b| b.try_into().ok())
            .ok_or(Malformed)?;
        len += 2 + usize::from(u16::from_be_bytes(ext));
    }
    if flags & JUNIPER_FLAG_NO_L2 != 0 {
        return raw_ip(data.get(len + 4..).ok_or(Malformed)?, out);
    }
    let frame = data.get(len..).ok_or(Malformed)?;
    if frame.len() < ETHERNET_HEADER_LEN {
        return Err(Malformed);
    }
    out.extend_from_slice(frame);
    Ok(())
}

/// The fields SLL and SLL2 share.
struct Cooked {
    packet_type: u8,
    hatype: u16,
    addr_len: u8,
    addr: [u8; 8],
    protocol: u16,
}

impl Cooked {
    fn to_ethernet(&self, payload: &[u8], out: &mut Vec<u8>) -> Result<(), Malformed> {
        if self.hatype == ARPHRD_NETLINK {
            return Err(Malformed);
        }
        let mut src = [0; 6];
        if self.addr_len == 6
            && let Some(mac) = self.addr.first_chunk::<6>()
        {
            src = *mac;
        }
        let dst = if self.packet_type == PACKET_BROADCAST {
            [0xff; 6]
        } else {
            [0; 6]
        };
        let type_or_len = match self.protocol {
            ethertype if ethertype >= ETHERTYPE_MIN => ethertype,
            ETH_P_802_3 | ETH_P_802_2 if payload.len() <= MAX_8023_LEN => payload.len() as u16,
            _ => return Err(Malformed),
        };
        push_ethernet(out, dst, src, type_or_len, payload);
        Ok(())
    }
}

fn push_ethernet(out: &mut Vec<u8>, dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) {
    out.reserve(ETHERNET_HEADER_LEN + payload.len());
    out.extend_from_slice(&dst);
    out.extend_from_slice(&src);
    out.extend_from_slice(&ethertype.to_be_bytes());
    out.extend_from_slice(payload);
}

/// `113 (LINUX_SLL)`, or the bare number for types pcap-file does not name.
fn describe(linktype: u32) -> String {
    match DataLink::from(linktype) {
        DataLink::Unknown(n) => n.to_string(),
        known => format!("{linktype} ({known:?})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
    const IPV4: &[u8] = &[
        0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];
    const IPV6: &[u8] = &[0x60, 0, 0, 0, 0, 0, 59, 64];

    fn convert(link: Link, data: &[u8]) -> Result<Vec<u8>, Malformed> {
        let mut out = b"kept".to_vec();
        let result = link.to_ethernet(data, &mut out);
        assert_eq!(&out[..4], b"kept", "earlier contents are kept");
        if result.is_err() {
            assert_eq!(out, b"kept", "nothing is appended on error");
        }
        result.map(|()| out[4..].to_vec())
    }

    fn ethernet(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
        [&dst[..], &src, &ethertype.to_be_bytes(), payload].concat()
    }

    fn sll(packet_type: u16, hatype: u16, addr: &[u8], protocol: u16, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&packet_type.to_be_bytes());
        out.extend_from_slice(&hatype.to_be_bytes());
        out.extend_from_slice(&(addr.len() as u16).to_be_bytes());
        let mut padded = [0; 8];
        padded[..addr.len()].copy_from_slice(addr);
        out.extend_from_slice(&padded);
        out.extend_from_slice(&protocol.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn sll2(packet_type: u8, hatype: u16, addr: &[u8], protocol: u16, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&protocol.to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&7_u32.to_be_bytes());
        out.extend_from_slice(&hatype.to_be_bytes());
        out.push(packet_type);
        out.push(addr.len() as u8);
        let mut padded = [0; 8];
        padded[..addr.len()].copy_from_slice(addr);
        out.extend_from_slice(&padded);
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn linktype_numbers() {
        for (n, link) in [
            (1, Link::Ethernet),
            (113, Link::Sll),
            (276, Link::Sll2),
            (101, Link::RawIp),
            (12, Link::RawIp),
            (14, Link::RawIp),
            (228, Link::Ipv4),
            (229, Link::Ipv6),
            (0, Link::Null),
            (108, Link::Loop),
            (109, Link::Enc),
            (117, Link::Pflog),
            (9, Link::Ppp),
            (50, Link::Ppp),
            (104, Link::CiscoHdlc),
            (8, Link::Slip),
            (239, Link::Nflog { big_endian: false }),
            (258, Link::Pktap),
            (226, Link::Ipnet),
            (178, Link::JuniperEther),
            (105, Link::Ieee80211),
            (127, Link::Radiotap),
        ] {
            assert_eq!(Link::from_linktype(n), Ok(link), "{n}");
        }
        let err = Link::from_linktype(189).unwrap_err();
        assert_eq!(err, Unsupported(189));
        let text = err.to_string();
        assert!(
            text.starts_with("link type 189 (USB_LINUX) cannot be replayed"),
            "{text}"
        );
        assert!(
            Unsupported(201)
                .to_string()
                .starts_with("link type 201 (BLUETOOTH_HCI_H4_WITH_PHDR) cannot")
        );
        assert!(text.contains("SLL2 (276)"), "{text}");
        assert!(
            Unsupported(65000)
                .to_string()
                .starts_with("link type 65000 cannot")
        );
    }

    #[test]
    fn ethernet_is_kept() {
        let frame = ethernet([1; 6], MAC, ETHERTYPE_IPV4, IPV4);
        assert_eq!(convert(Link::Ethernet, &frame), Ok(frame));
    }

    #[test]
    fn raw_ip_by_version_nibble() {
        assert_eq!(
            convert(Link::RawIp, IPV4),
            Ok(ethernet([0; 6], [0; 6], 0x0800, IPV4))
        );
        assert_eq!(
            convert(Link::RawIp, IPV6),
            Ok(ethernet([0; 6], [0; 6], 0x86DD, IPV6))
        );
        assert_eq!(convert(Link::RawIp, &[0x50, 1, 2]), Err(Malformed));
        assert_eq!(convert(Link::RawIp, &[]), Err(Malformed));
    }

    #[test]
    fn ipv4_and_ipv6_link_types_trust_the_type() {
        assert_eq!(
            convert(Link::Ipv4, IPV4),
            Ok(ethernet([0; 6], [0; 6], 0x0800, IPV4))
        );
        assert_eq!(
            convert(Link::Ipv6, IPV6),
            Ok(ethernet([0; 6], [0; 6], 0x86DD, IPV6))
        );
    }

    #[test]
    fn sll_keeps_address_and_protocol() {
        let data = sll(0, 1, &MAC, 0x0800, IPV4);
        assert_eq!(
            convert(Link::Sll, &data),
            Ok(ethernet([0; 6], MAC, 0x0800, IPV4))
        );
        // Outgoing (4): the address is still the sender's.
        let data = sll(4, 1, &MAC, 0x86DD, IPV6);
        assert_eq!(
            convert(Link::Sll, &data),
            Ok(ethernet([0; 6], MAC, 0x86DD, IPV6))
        );
        // Broadcast, and an address that is not a MAC (loopback has none, tun devices none).
        let data = sll(1, 1, &MAC, 0x0806, b"arp");
        assert_eq!(
            convert(Link::Sll, &data),
            Ok(ethernet([0xff; 6], MAC, 0x0806, b"arp"))
        );
        let data = sll(0, 772, &[], 0x0800, IPV4);
        assert_eq!(
            convert(Link::Sll, &data),
            Ok(ethernet([0; 6], [0; 6], 0x0800, IPV4))
        );
    }

    #[test]
    fn sll2_keeps_address_and_protocol() {
        let data = sll2(0, 1, &MAC, 0x0800, IPV4);
        assert_eq!(
            convert(Link::Sll2, &data),
            Ok(ethernet([0; 6], MAC, 0x0800, IPV4))
        );
        let data = sll2(1, 1, &MAC, 0x8100, b"vlan");
        assert_eq!(
            convert(Link::Sll2, &data),
            Ok(ethernet([0xff; 6], MAC, 0x8100, b"vlan"))
        );
    }

    #[test]
    fn cooked_pseudo_protocols() {
        // 802.2 LLC: an 802.3 frame whose length field counts the payload.
        let llc = [0x42, 0x42, 0x03, 0, 0];
        for data in [
            sll(0, 1, &MAC, ETH_P_802_2, &llc),
            sll2(0, 1, &MAC, ETH_P_802_2, &llc),
        ] {
            let link = if data.len() == 16 + llc.len() {
                Link::Sll
            } else {
                Link::Sll2
            };
            assert_eq!(convert(link, &data), Ok(ethernet([0; 6], MAC, 5, &llc)));
        }
        // CAN (0x000C) and netlink have no Ethernet form.
        assert_eq!(
            convert(Link::Sll, &sll(0, 280, &[], 0x000C, b"can")),
            Err(Malformed)
        );
        assert_eq!(
            convert(Link::Sll2, &sll2(4, ARPHRD_NETLINK, &[], 0x0800, b"nl")),
            Err(Malformed)
        );
        // An 802.2 payload too long for a length field.
        let long = vec![0; MAX_8023_LEN + 1];
        assert_eq!(
            convert(Link::Sll, &sll(0, 1, &MAC, ETH_P_802_2, &long)),
            Err(Malformed)
        );
    }

    #[test]
    fn short_cooked_headers_are_malformed() {
        let data = sll(0, 1, &MAC, 0x0800, IPV4);
        let data2 = sll2(0, 1, &MAC, 0x0800, IPV4);
        for len in 0..16 {
            assert_eq!(convert(Link::Sll, &data[..len]), Err(Malformed), "{len}");
        }
        for len in 0..20 {
            assert_eq!(convert(Link::Sll2, &data2[..len]), Err(Malformed), "{len}");
        }
        // A header alone is a frame without payload.
        assert_eq!(
            convert(Link::Sll, &data[..16]),
            Ok(ethernet([0; 6], MAC, 0x0800, &[]))
        );
    }

    /// What a packet behind a link header without MACs becomes, as [`convert`] gives it.
    #[allow(clippy::unnecessary_wraps)]
    fn zero(ethertype: u16, payload: &[u8]) -> Result<Vec<u8>, Malformed> {
        Ok(ethernet([0; 6], [0; 6], ethertype, payload))
    }

    #[test]
    fn bsd_loopback_families_in_either_byte_order() {
        for (family, ethertype, payload) in [(2_u32, 0x0800, IPV4), (30, 0x86DD, IPV6)] {
            for header in [family.to_le_bytes(), family.to_be_bytes()] {
                let data = [&header[..], payload].concat();
                assert_eq!(convert(Link::Null, &data), zero(ethertype, payload));
            }
            let data = [&family.to_be_bytes()[..], payload].concat();
            assert_eq!(convert(Link::Loop, &data), zero(ethertype, payload));
            let data = [&family.to_le_bytes()[..], &[9; 8], payload].concat();
            assert_eq!(convert(Link::Enc, &data), zero(ethertype, payload));
        }
        for family in [10_u32, 23, 24, 26, 28] {
            let data = [&family.to_le_bytes()[..], IPV6].concat();
            assert_eq!(convert(Link::Null, &data), zero(0x86DD, IPV6), "{family}");
        }
        // LOOP is big-endian only; other families (AppleTalk, IPX) have no Ethernet form here.
        let data = [&2_u32.to_le_bytes()[..], IPV4].concat();
        assert_eq!(convert(Link::Loop, &data), Err(Malformed));
        let data = [&16_u32.to_le_bytes()[..], IPV4].concat();
        assert_eq!(convert(Link::Null, &data), Err(Malformed));
        assert_eq!(convert(Link::Null, &[2, 0, 0]), Err(Malformed));
        assert_eq!(convert(Link::Enc, &[2, 0, 0, 0, 1]), Err(Malformed));
    }

    #[test]
    fn pflog_header_of_its_own_length() {
        let mut header = vec![0; 61];
        header[0] = 61;
        header[1] = 2;
        header.resize(64, 0);
        let data = [&header[..], IPV4].concat();
        assert_eq!(convert(Link::Pflog, &data), zero(0x0800, IPV4));
        header[0] = 20;
        let data = [&header[..], IPV4].concat();
        assert_eq!(convert(Link::Pflog, &data), Err(Malformed));
    }

    #[test]
    fn ppp_and_cisco_hdlc_carry_ip() {
        for framing in [&[][..], &[0xff, 0x03]] {
            for (protocol, ethertype, payload) in [
                (&[0, 0x21][..], 0x0800, IPV4),
                (&[0, 0x57], 0x86DD, IPV6),
                (&[0x21], 0x0800, IPV4),
            ] {
                let data = [framing, protocol, payload].concat();
                assert_eq!(convert(Link::Ppp, &data), zero(ethertype, payload));
            }
        }
        // LCP has no Ethernet form.
        assert_eq!(
            convert(Link::Ppp, &[0xff, 3, 0xc0, 0x21, 1]),
            Err(Malformed)
        );
        // Cisco HDLC, also inside PPP_HDLC; broadcast address, SLARP refused.
        let data = [&[0x0f, 0, 0x08, 0x00][..], IPV4].concat();
        assert_eq!(convert(Link::CiscoHdlc, &data), zero(0x0800, IPV4));
        assert_eq!(convert(Link::Ppp, &data), zero(0x0800, IPV4));
        let data = [&[0x8f, 0, 0x86, 0xdd][..], IPV6].concat();
        assert_eq!(
            convert(Link::CiscoHdlc, &data),
            Ok(ethernet([0xff; 6], [0; 6], 0x86DD, IPV6))
        );
        let slarp = [0x8f, 0, 0x80, 0x35, 0, 0, 0, 2];
        assert_eq!(convert(Link::CiscoHdlc, &slarp), Err(Malformed));
        assert_eq!(convert(Link::Ppp, &[]), Err(Malformed));
    }

    #[test]
    fn slip_pseudo_header() {
        let data = [&[0; 16][..], IPV4].concat();
        assert_eq!(convert(Link::Slip, &data), zero(0x0800, IPV4));
        assert_eq!(convert(Link::Slip, &data[..16]), Err(Malformed));
    }

    fn nflog(family: u8, big_endian: bool, tlvs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut out = vec![family, 0, 0, 5];
        for (kind, value) in tlvs {
            let len = 4 + value.len() as u16;
            let (len, kind) = if big_endian {
                (len.to_be_bytes(), kind.to_be_bytes())
            } else {
                (len.to_le_bytes(), kind.to_le_bytes())
            };
            out.extend_from_slice(&len);
            out.extend_from_slice(&kind);
            out.extend_from_slice(value);
            out.resize(out.len().next_multiple_of(4), 0);
        }
        out
    }

    #[test]
    fn nflog_payload_tlv() {
        for big_endian in [false, true] {
            let link = Link::from_linktype(239).unwrap().in_file_of(if big_endian {
                Endianness::Big
            } else {
                Endianness::Little
            });
            // Prefix (odd length, padded), a nested-flagged TLV, then the payload.
            let data = nflog(
                2,
                big_endian,
                &[(10, b"pre"), (0x8000 | 5, &[0; 8]), (9, IPV4)],
            );
            assert_eq!(convert(link, &data), zero(0x0800, IPV4));
            let data = nflog(10, big_endian, &[(9, IPV6)]);
            assert_eq!(convert(link, &data), zero(0x86DD, IPV6));
            // No payload, a TLV longer than the packet, a family without an Ethernet form.
            assert_eq!(
                convert(link, &nflog(2, big_endian, &[(10, b"x")])),
                Err(Malformed)
            );
            let mut cut = nflog(2, big_endian, &[(9, IPV4)]);
            cut.truncate(cut.len() - 1);
            assert_eq!(convert(link, &cut), Err(Malformed));
            assert_eq!(
                convert(link, &nflog(7, big_endian, &[(9, IPV4)])),
                Err(Malformed)
            );
        }
    }

    fn pktap(dlt: u32, trailer: u32, packet: &[u8]) -> Vec<u8> {
        let mut header = [0_u8; 112];
        header[..4].copy_from_slice(&112_u32.to_le_bytes());
        header[4..8].copy_from_slice(&PKTAP_PACKET.to_le_bytes());
        header[8..12].copy_from_slice(&dlt.to_le_bytes());
        header[12..16].copy_from_slice(b"en0\0");
        header[48..52].copy_from_slice(&trailer.to_le_bytes());
        [&header[..], packet].concat()
    }

    #[test]
    fn pktap_by_the_inner_link_type() {
        let frame = ethernet([1; 6], MAC, 0x0800, IPV4);
        assert_eq!(
            convert(Link::Pktap, &pktap(1, 0, &frame)),
            Ok(frame.clone())
        );
        let with_trailer = [&frame[..], &[0xee; 4]].concat();
        assert_eq!(convert(Link::Pktap, &pktap(1, 4, &with_trailer)), Ok(frame));
        let null = [&30_u32.to_le_bytes()[..], IPV6].concat();
        assert_eq!(
            convert(Link::Pktap, &pktap(0, 0, &null)),
            zero(0x86DD, IPV6)
        );
        assert_eq!(
            convert(Link::Pktap, &pktap(12, 0, IPV4)),
            zero(0x0800, IPV4)
        );
        // PKTAP in PKTAP, an unknown inner type, a record without a packet, a short header.
        assert_eq!(convert(Link::Pktap, &pktap(258, 0, IPV4)), Err(Malformed));
        assert_eq!(convert(Link::Pktap, &pktap(147, 0, IPV4)), Err(Malformed));
        let mut none = pktap(12, 0, IPV4);
        none[4] = 0;
        assert_eq!(convert(Link::Pktap, &none), Err(Malformed));
        let mut short = pktap(12, 0, IPV4);
        short[0] = 100;
        assert_eq!(convert(Link::Pktap, &short), Err(Malformed));
        assert_eq!(convert(Link::Pktap, &pktap(12, 99, IPV4)), Err(Malformed));
    }

    #[test]
    fn ipnet_family() {
        let header = |family: u8| {
            let mut h = vec![0; IPNET_HEADER_LEN];
            h[0] = 1;
            h[1] = family;
            h
        };
        let data = [&header(2)[..], IPV4].concat();
        assert_eq!(convert(Link::Ipnet, &data), zero(0x0800, IPV4));
        let data = [&header(26)[..], IPV6].concat();
        assert_eq!(convert(Link::Ipnet, &data), zero(0x86DD, IPV6));
        assert_eq!(convert(Link::Ipnet, &header(2)[..20]), Err(Malformed));
    }

    #[test]
    fn juniper_ethernet() {
        let frame = ethernet([1; 6], MAC, 0x0800, IPV4);
        let data = [&b"MGC\x01"[..], &frame].concat();
        assert_eq!(convert(Link::JuniperEther, &data), Ok(frame.clone()));
        // Extensions: a length, then TLVs of that length.
        let data = [&b"MGC\x80"[..], &[0, 3, 1, 1, 7], &frame].concat();
        assert_eq!(convert(Link::JuniperEther, &data), Ok(frame));
        // Layer 2 stripped: a cookie, then IP.
        let data = [&b"MGC\x03"[..], &[0; 4], IPV6].concat();
        assert_eq!(convert(Link::JuniperEther, &data), zero(0x86DD, IPV6));
        assert_eq!(
            convert(Link::JuniperEther, b"MGX\x01abcdefghijklmn"),
            Err(Malformed)
        );
        assert_eq!(convert(Link::JuniperEther, b"MGC\x01short"), Err(Malformed));
    }
}
