//! Fragmenting an outer packet that does not fit the path MTU (`--oversize fragment`).
//!
//! The raw sockets write their own IP headers and the kernel does not fragment those, so the
//! sender does: the packet's L3 payload (tunnel header, then inner frame) is cut into pieces of
//! a multiple of 8 bytes, each behind a copy of the outer IP header patched for its place
//! (IPv4: DF cleared, MF and offset, a fresh ID, its checksum; IPv6: a Fragment extension
//! header, RFC 8200 section 4.5). The receiver's kernel reassembles them before its tunnel sees
//! the packet.

use crate::wire::checksum;

/// IPv4 header of the copies (no options).
pub const IPV4_LEN: usize = 20;
/// IPv6 header of the copies (no extension headers) and the Fragment header added to it.
pub const IPV6_LEN: usize = 40;
pub const FRAGMENT_HEADER_LEN: usize = 8;
/// IPv6's next-header value of a Fragment header.
const NEXT_HEADER_FRAGMENT: u8 = 44;
/// IPv4 flags: don't fragment, more fragments.
const DF: u16 = 0x4000;
const MF: u16 = 0x2000;

/// Payload bytes every fragment but the last carries: the most that fits `mtu` behind the
/// fragment's headers, rounded down to the 8-byte unit of fragment offsets. 0 if none fits.
pub fn piece_len(mtu: usize, ipv6: bool) -> usize {
    let headers = if ipv6 {
        IPV6_LEN + FRAGMENT_HEADER_LEN
    } else {
        IPV4_LEN
    };
    mtu.saturating_sub(headers) / 8 * 8
}

/// How a packet is cut into fragments: its tunnel header (`tunnel_len` bytes behind the IP
/// header) and inner frame, as IP payload, in pieces that fit the MTU. The first fragment
/// carries the whole tunnel header, so the remote's tunnel sees it once reassembled and every
/// other fragment carries frame bytes only.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    piece: usize,
    tunnel_len: usize,
    payload_len: usize,
    /// Fragments the packet becomes.
    pub count: usize,
}

/// One fragment of a [`Plan`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fragment {
    /// Where its payload starts in the packet's IP payload (a multiple of 8), and its length.
    pub offset: usize,
    pub len: usize,
    /// Whether more fragments follow (MF).
    pub more: bool,
    /// The inner frame's bytes it carries (behind the tunnel header, for the first).
    pub frame: std::ops::Range<usize>,
}

impl Plan {
    /// The fragments of a packet of `tunnel_len` bytes of tunnel header and an `inner_len`-byte
    /// frame over a path of `mtu`; `None` if the first fragment cannot hold the tunnel header.
    pub fn new(mtu: usize, ipv6: bool, tunnel_len: usize, inner_len: usize) -> Option<Self> {
        let piece = piece_len(mtu, ipv6);
        let payload_len = tunnel_len + inner_len;
        (piece > tunnel_len).then(|| Self {
            piece,
            tunnel_len,
            payload_len,
            count: payload_len.div_ceil(piece),
        })
    }

    /// The largest IP payload of any fragment.
    pub fn piece(&self) -> usize {
        self.piece
    }

    pub fn fragments(&self) -> impl Iterator<Item = Fragment> + use<> {
        let Self {
            piece,
            tunnel_len,
            payload_len,
            count,
        } = *self;
        (0..count).map(move |k| {
            let offset = k * piece;
            let len = piece.min(payload_len - offset);
            let from = offset.saturating_sub(tunnel_len);
            Fragment {
                offset,
                len,
                more: k + 1 < count,
                frame: from..offset + len - tunnel_len,
            }
        })
    }
}

/// Turns `ip`, the packet's own IPv4 header, into the header of the fragment that carries
/// `len` payload bytes from byte `offset` (a multiple of 8) on, `more` fragments following.
pub fn patch_v4(ip: &mut [u8; IPV4_LEN], id: u16, offset: usize, len: usize, more: bool) {
    let total = (IPV4_LEN + len).min(usize::from(u16::MAX)) as u16;
    let flags_offset = (if more { MF } else { 0 }) | ((offset / 8) as u16 & 0x1fff);
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip[4..6].copy_from_slice(&id.to_be_bytes());
    ip[6..8].copy_from_slice(&(flags_offset & !DF).to_be_bytes());
    ip[10..12].copy_from_slice(&[0, 0]);
    let sum = checksum::complement(checksum::sum(ip));
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
}

/// Writes into `out` the IPv6 header and Fragment header of the fragment that carries `len`
/// payload bytes from byte `offset` (a multiple of 8) on, from `ip`, the packet's own header.
pub fn patch_v6(
    ip: &[u8; IPV6_LEN],
    out: &mut [u8; IPV6_LEN + FRAGMENT_HEADER_LEN],
    id: u32,
    offset: usize,
    len: usize,
    more: bool,
) {
    let next_header = ip[6];
    out[..IPV6_LEN].copy_from_slice(ip);
    let payload = (FRAGMENT_HEADER_LEN + len).min(usize::from(u16::MAX)) as u16;
    out[4..6].copy_from_slice(&payload.to_be_bytes());
    out[6] = NEXT_HEADER_FRAGMENT;
    let offset_flags = (((offset / 8) as u16 & 0x1fff) << 3) | u16::from(more);
    out[IPV6_LEN] = next_header;
    out[IPV6_LEN + 1] = 0;
    out[IPV6_LEN + 2..IPV6_LEN + 4].copy_from_slice(&offset_flags.to_be_bytes());
    out[IPV6_LEN + 4..IPV6_LEN + 8].copy_from_slice(&id.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use etherparse::{Ipv4HeaderSlice, Ipv6FragmentHeaderSlice, Ipv6HeaderSlice};

    use super::*;

    fn v4_header(payload: u16) -> [u8; IPV4_LEN] {
        let mut header = etherparse::Ipv4Header::new(
            payload,
            64,
            etherparse::IpNumber::UDP,
            [198, 18, 0, 1],
            [198, 18, 0, 2],
        )
        .unwrap();
        header.dont_fragment = true;
        header.header_checksum = header.calc_header_checksum();
        header.to_bytes().as_slice().try_into().unwrap()
    }

    #[test]
    fn pieces_are_eight_byte_units() {
        assert_eq!(piece_len(1400, false), 1376);
        assert_eq!(piece_len(1400, true), 1352);
        assert_eq!(piece_len(1281, false) % 8, 0);
        assert_eq!(piece_len(20, false), 0);
        assert_eq!(piece_len(0, true), 0);
    }

    #[test]
    fn ipv4_fragments_parse_back() {
        let mut first = v4_header(2000);
        patch_v4(&mut first, 0x1234, 0, 1376, true);
        let parsed = Ipv4HeaderSlice::from_slice(&first).unwrap().to_header();
        assert_eq!(parsed.total_len, 1396);
        assert_eq!(parsed.identification, 0x1234);
        assert!(parsed.more_fragments && !parsed.dont_fragment);
        assert_eq!(parsed.fragment_offset.value(), 0);
        assert_eq!(parsed.header_checksum, parsed.calc_header_checksum());

        let mut last = v4_header(2000);
        patch_v4(&mut last, 0x1234, 1376, 624, false);
        let parsed = Ipv4HeaderSlice::from_slice(&last).unwrap().to_header();
        assert_eq!(parsed.total_len, 644);
        assert!(!parsed.more_fragments && !parsed.dont_fragment);
        assert_eq!(parsed.fragment_offset.value(), 1376 / 8);
        assert_eq!(parsed.header_checksum, parsed.calc_header_checksum());
    }

    #[test]
    fn ipv6_fragments_parse_back() {
        let header = etherparse::Ipv6Header {
            traffic_class: 0,
            flow_label: 7.try_into().unwrap(),
            payload_length: 2000,
            next_header: etherparse::IpNumber::GRE,
            hop_limit: 64,
            source: [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            destination: [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
        };
        let ip: [u8; IPV6_LEN] = header.to_bytes();
        let mut out = [0; IPV6_LEN + FRAGMENT_HEADER_LEN];
        patch_v6(&ip, &mut out, 0xdead_beef, 1352, 648, false);
        let parsed = Ipv6HeaderSlice::from_slice(&out).unwrap();
        assert_eq!(parsed.payload_length(), 8 + 648);
        assert_eq!(
            parsed.next_header(),
            etherparse::IpNumber::IPV6_FRAGMENTATION_HEADER
        );
        assert_eq!(parsed.flow_label().value(), 7);
        let fragment = Ipv6FragmentHeaderSlice::from_slice(&out[IPV6_LEN..]).unwrap();
        assert_eq!(fragment.next_header(), etherparse::IpNumber::GRE);
        assert_eq!(fragment.fragment_offset().value(), 1352 / 8);
        assert!(!fragment.more_fragments());
        assert_eq!(fragment.identification(), 0xdead_beef);
    }
}
