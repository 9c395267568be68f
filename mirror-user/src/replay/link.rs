#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]
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
//!
//! Cooked captures keep the link-layer source address of each packet (`addr_len` 6 on Ethernet
//! devices); their destination is unknown, so it is zero, or the broadcast address for packets
//! the SLL header calls broadcast. Protocol values below 0x0600 are Linux's pseudo-protocols:
//! 802.3 frames (1, Novell) and 802.2 LLC (4) become 802.3 frames with a length field; the
//! others (CAN, netlink, ...) have no Ethernet form and are skipped as malformed.

use pcap_file::DataLink;

/// Length of an Ethernet II header.
pub const ETHERNET_HEADER_LEN: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86DD;
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

/// Numbers of the link types [`Link::from_linktype`] accepts, for messages.
pub const SUPPORTED: &str = "Ethernet (1), Linux cooked SLL (113) and SLL2 (276), \
                             raw IP (101, 12, 14), IPv4 (228) and IPv6 (229)";

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
            other => Err(Unsupported(other)),
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
            Self::RawIp => {
                let ethertype = match data.first().map(|b| b >> 4) {
                    Some(4) => ETHERTYPE_IPV4,
                    Some(6) => ETHERTYPE_IPV6,
                    _ => return Err(Malformed),
                };
                push_ethernet(out, [0; 6], [0; 6], ethertype, data);
                Ok(())
            }
            Self::Ipv4 => {
                push_ethernet(out, [0; 6], [0; 6], ETHERTYPE_IPV4, data);
                Ok(())
            }
            Self::Ipv6 => {
                push_ethernet(out, [0; 6], [0; 6], ETHERTYPE_IPV6, data);
                Ok(())
            }
        }
    }
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
        ] {
            assert_eq!(Link::from_linktype(n), Ok(link), "{n}");
        }
        let err = Link::from_linktype(105).unwrap_err();
        assert_eq!(err, Unsupported(105));
        let text = err.to_string();
        assert!(
            text.starts_with("link type 105 (IEEE802_11) cannot be replayed"),
            "{text}"
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
}
