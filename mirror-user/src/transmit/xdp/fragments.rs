//! `--oversize fragment` from AF_XDP: a copy whose tunnel packet exceeds the path MTU leaves in
//! IP fragments, each written into a spare chunk (Ethernet header, the fragment's IP header, its
//! share of tunnel header and frame) and put on the uplink's TX ring with the others at once.
//! The same fragments the raw socket would send (`tunnel::fragment`), without its route lookup,
//! netfilter and qdisc per fragment.
use super::{ETH_LEN, Queued, XdpPath};
use crate::{
    kernel::umem::CHUNK_SIZE,
    tunnel::{
        CopyMeta, Encap, MAX_HEADER_LEN,
        fragment::{self, Fragment},
    },
};

/// Most fragments of one copy sent this way (a 2048-byte copy at IPv6's smallest MTU takes 2);
/// more go through the raw socket.
const MOST: usize = 8;

/// A copy to fragment: its remote, its pending entry, and its fragments' identification.
pub struct Oversized<'a> {
    pub index: usize,
    pub copy: usize,
    pub id: u32,
    pub mtu: usize,
    pub ipv6: bool,
    pub inner: &'a [u8],
}

impl XdpPath {
    /// Queues `copy.inner` for its remote in IP fragments that fit `copy.mtu`; `false`, with
    /// nothing queued, when the remote is not served from AF_XDP now, spare chunks or ring slots
    /// are short, or the fragments would not fit a chunk (the caller sends it another way).
    pub fn send_fragments(
        &mut self,
        copy: &Oversized<'_>,
        encap: &mut Encap,
        (meta, hash): (&CopyMeta, u32),
    ) -> bool {
        let Some(Some(route)) = self.routes.get(copy.index).copied() else {
            return false;
        };
        let mut header = [0_u8; MAX_HEADER_LEN];
        let header_len = encap.write_header_hashed(copy.inner, meta, hash, &mut header);
        let (ip_len, fragment_ip_len) = if copy.ipv6 {
            (
                fragment::IPV6_LEN,
                fragment::IPV6_LEN + fragment::FRAGMENT_HEADER_LEN,
            )
        } else {
            (fragment::IPV4_LEN, fragment::IPV4_LEN)
        };
        let Some(tunnel) = header.get(ip_len..header_len) else {
            return false;
        };
        let Some(plan) = fragment::Plan::new(copy.mtu, copy.ipv6, tunnel.len(), copy.inner.len())
        else {
            return false;
        };
        let count = plan.count;
        if count > MOST || ETH_LEN + fragment_ip_len + plan.piece() > CHUNK_SIZE as usize {
            return false;
        }
        let mut chunks = [0_u64; MOST];
        for taken in 0..count {
            if self.spares.is_empty() {
                self.collect_spares();
            }
            let Some(spare) = self.spares.pop() else {
                self.spares.extend(chunks.iter().take(taken));
                return false;
            };
            if let Some(slot) = chunks.get_mut(taken) {
                *slot = spare;
            }
        }
        let mut descs = [EMPTY; MOST];
        let mut sizes = [0_usize; MOST];
        for (piece, (&chunk, (desc, size))) in plan
            .fragments()
            .zip(chunks.iter().zip(descs.iter_mut().zip(&mut sizes)))
        {
            let total = ETH_LEN + fragment_ip_len + piece.len;
            // SAFETY: the spare chunk is ours until it is queued below (or given back), and
            // neither `copy.inner` nor `tunnel` lies in it.
            let Some(out) = (unsafe { self.umem.bytes_mut(chunk, total) }) else {
                self.spares.extend(chunks.iter().take(count));
                return false;
            };
            *size = fragment_ip_len + piece.len;
            write_fragment(out, &route.eth, &header, copy, (tunnel, &piece));
            *desc = libc::xdp_desc {
                addr: chunk,
                len: total as u32,
                options: 0,
            };
        }
        let queued = self
            .uplinks
            .get_mut(route.uplink)
            .is_some_and(|u| u.queue_all(descs.get(..count).unwrap_or_default()));
        if !queued {
            self.spares.extend(chunks.iter().take(count));
            return false;
        }
        self.queued.extend(
            sizes
                .iter()
                .zip(&chunks)
                .take(count)
                .map(|(&bytes, &addr)| Queued {
                    uplink: route.uplink,
                    destination: copy.index,
                    copy: copy.copy,
                    bytes: bytes as u64,
                    addr,
                }),
        );
        true
    }
}

const EMPTY: libc::xdp_desc = libc::xdp_desc {
    addr: 0,
    len: 0,
    options: 0,
};

/// Writes one fragment into `out` (exactly its length): Ethernet header `eth`, the IP header of
/// `header` patched for `piece`, then its bytes: the tunnel header (the first fragment's) and
/// its share of the frame.
fn write_fragment(
    out: &mut [u8],
    eth: &[u8; ETH_LEN],
    header: &[u8; MAX_HEADER_LEN],
    copy: &Oversized<'_>,
    (tunnel, piece): (&[u8], &Fragment),
) {
    const V6_LEN: usize = fragment::IPV6_LEN + fragment::FRAGMENT_HEADER_LEN;
    let (offset, len, more) = (piece.offset, piece.len, piece.more);
    let (head, rest) = out.split_at_mut(ETH_LEN);
    head.copy_from_slice(eth);
    let rest = if copy.ipv6 {
        let (ip, rest) = rest.split_at_mut(V6_LEN);
        if let (Some(own), Ok(ip)) = (header.first_chunk(), <&mut [u8; V6_LEN]>::try_from(ip)) {
            fragment::patch_v6(own, ip, copy.id, offset, len, more);
        }
        rest
    } else {
        let (ip, rest) = rest.split_at_mut(fragment::IPV4_LEN);
        if let (Some(own), Ok(ip)) = (
            header.first_chunk(),
            <&mut [u8; fragment::IPV4_LEN]>::try_from(ip),
        ) {
            *ip = *own;
            fragment::patch_v4(ip, copy.id as u16, offset, len, more);
        }
        rest
    };
    let from_tunnel = if offset == 0 { tunnel } else { &[] };
    let from_frame = copy.inner.get(piece.frame.clone()).unwrap_or_default();
    let (a, b) = rest.split_at_mut(from_tunnel.len().min(rest.len()));
    a.copy_from_slice(from_tunnel);
    if b.len() == from_frame.len() {
        b.copy_from_slice(from_frame);
    }
}

#[cfg(test)]
mod tests {
    use etherparse::{Ipv4HeaderSlice, Ipv6FragmentHeaderSlice, Ipv6HeaderSlice};

    use super::*;

    /// Writes every fragment of `inner` behind `header` (IP header of `ip_len`, then tunnel
    /// header up to `header_len`) and puts their payloads back together in offset order.
    fn fragments(
        ipv6: bool,
        header: &[u8; MAX_HEADER_LEN],
        header_len: usize,
        inner: &[u8],
        mtu: usize,
    ) -> (Vec<Vec<u8>>, Vec<u8>) {
        let (ip_len, frag_ip_len) = if ipv6 { (40, 48) } else { (20, 20) };
        let tunnel = &header[ip_len..header_len];
        let plan = fragment::Plan::new(mtu, ipv6, tunnel.len(), inner.len()).unwrap();
        let copy = Oversized {
            index: 0,
            copy: 0,
            id: 0x1234_5678,
            mtu,
            ipv6,
            inner,
        };
        let mut out = Vec::new();
        let mut joined = Vec::new();
        for (k, piece) in plan.fragments().enumerate() {
            let mut bytes = vec![0; ETH_LEN + frag_ip_len + piece.len];
            write_fragment(
                &mut bytes,
                &[0xee; ETH_LEN],
                header,
                &copy,
                (tunnel, &piece),
            );
            assert!(bytes.len() - ETH_LEN <= mtu, "fragment {k} exceeds the MTU");
            joined.extend_from_slice(&bytes[ETH_LEN + frag_ip_len..]);
            out.push(bytes);
        }
        (out, joined)
    }

    #[test]
    fn ipv4_fragments_carry_tunnel_and_frame_in_order() {
        let mut header = [0_u8; MAX_HEADER_LEN];
        let ip = etherparse::Ipv4Header::new(
            8 + 1500,
            64,
            etherparse::IpNumber::UDP,
            [198, 18, 0, 1],
            [198, 18, 0, 2],
        )
        .unwrap();
        header[..20].copy_from_slice(&ip.to_bytes());
        header[20..36].copy_from_slice(&[7; 16]);
        let inner: Vec<u8> = (0..1500u32)
            .map(|i| u8::try_from(i % 253).unwrap())
            .collect();
        let (frags, joined) = fragments(false, &header, 36, &inner, 1000);
        assert_eq!(frags.len(), 2);
        assert_eq!(&joined[..16], &[7; 16]);
        assert_eq!(&joined[16..], &inner[..]);
        for (k, frag) in frags.iter().enumerate() {
            assert_eq!(&frag[..ETH_LEN], &[0xee; ETH_LEN]);
            let ip = Ipv4HeaderSlice::from_slice(&frag[ETH_LEN..]).unwrap();
            assert_eq!(usize::from(ip.total_len()), frag.len() - ETH_LEN);
            assert_eq!(ip.more_fragments(), k == 0);
            assert_eq!(usize::from(ip.fragments_offset().byte_offset()), k * 976);
            assert_eq!(ip.identification(), 0x5678);
            assert!(!ip.dont_fragment());
            assert_eq!(ip.to_header().calc_header_checksum(), ip.header_checksum());
        }
    }

    #[test]
    fn ipv6_fragments_have_a_fragment_header() {
        let mut header = [0_u8; MAX_HEADER_LEN];
        let ip = etherparse::Ipv6Header {
            payload_length: 8 + 1500,
            next_header: etherparse::IpNumber::UDP,
            hop_limit: 64,
            source: [0xfd; 16],
            destination: [0xfe; 16],
            ..Default::default()
        };
        header[..40].copy_from_slice(&ip.to_bytes());
        header[40..56].copy_from_slice(&[9; 16]);
        let inner = vec![3_u8; 1500];
        let (frags, joined) = fragments(true, &header, 56, &inner, 1280);
        assert_eq!(frags.len(), 2);
        assert_eq!(&joined[..16], &[9; 16]);
        assert_eq!(&joined[16..], &inner[..]);
        for (k, frag) in frags.iter().enumerate() {
            let ip = Ipv6HeaderSlice::from_slice(&frag[ETH_LEN..]).unwrap();
            assert_eq!(usize::from(ip.payload_length()), frag.len() - ETH_LEN - 40);
            let fh = Ipv6FragmentHeaderSlice::from_slice(&frag[ETH_LEN + 40..]).unwrap();
            assert_eq!(fh.more_fragments(), k == 0);
            assert_eq!(fh.identification(), 0x1234_5678);
            assert_eq!(
                usize::from(fh.fragment_offset().byte_offset()),
                k * fragment::piece_len(1280, true)
            );
        }
    }
}
