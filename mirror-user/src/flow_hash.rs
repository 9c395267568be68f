//! A symmetric hash of the flow a frame belongs to: it picks the VXLAN source port (RFC 7348
//! §5, so underlay ECMP spreads flows without reordering one) and keeps both directions of a flow
//! together.

use etherparse::{IpNumber, LaxIpPayloadSlice, LaxNetSlice, LaxSlicedPacket, LinkSlice};

/// First port of the dynamic range (49152..=65535) RFC 7348 §5 recommends for the source port.
const DYNAMIC_PORTS_START: u16 = 49152;

/// Hash the flow of a whole Ethernet frame, without allocating and without panicking on any
/// input.
///
/// - IPv4/IPv6: addresses, IP protocol, and ports for TCP, UDP, SCTP, DCCP and UDP-Lite.
///   Fragments hash without ports, the first one too, so all fragments of a datagram stay
///   together (Linux's flow dissector does the same).
/// - Anything else: Ethernet source, destination and the innermost `EtherType`.
///
/// VLAN tags are skipped. Symmetric: both directions of a flow give the same hash.
pub fn flow_hash(frame: &[u8]) -> u32 {
    ipv4_fast(frame).unwrap_or_else(|| parsed(frame))
}

/// The hash of an untagged IPv4 frame without options, unfragmented, read straight from its
/// bytes: the common case, without etherparse's full slicing (which costs most of a copy's
/// header time). `None` for anything else, which [`parsed`] handles. Gives exactly what
/// [`parsed`] gives (a test compares the two on mutated frames).
fn ipv4_fast(frame: &[u8]) -> Option<u32> {
    /// Ethernet (14) + IPv4 without options (20) + the 4 bytes of ports.
    const LEN: usize = 14 + 20 + 4;
    let bytes: &[u8; LEN] = frame.first_chunk()?;
    let [.., t0, t1, version_ihl] = *bytes.first_chunk::<15>()?;
    let ip: &[u8; 24] = bytes.last_chunk()?;
    let [_, _, l0, l1, _, _, f0, f1, _, protocol, _, _, rest @ ..] = *ip;
    let [s0, s1, s2, s3, d0, d1, d2, d3, p0, p1, p2, p3] = rest;
    let total_len = u16::from_be_bytes([l0, l1]);
    // IPv4, IHL 5; a total length that holds the ports (a shorter one changes what the parser
    // reads as payload); no more-fragments flag and offset 0; not an authentication header,
    // whose next header the parser follows.
    if [t0, t1] != [0x08, 0x00]
        || version_ihl != 0x45
        || total_len < 24
        || u16::from_be_bytes([f0, f1]) & 0x3fff != 0
        || protocol == IpNumber::AUTHENTICATION_HEADER.0
    {
        return None;
    }
    let ports = match IpNumber(protocol) {
        IpNumber::TCP | IpNumber::UDP | IpNumber::SCTP | IpNumber::DCCP | IpNumber::UDP_LITE => {
            (u16::from_be_bytes([p0, p1]), u16::from_be_bytes([p2, p3]))
        }
        _ => (0, 0),
    };
    Some(v4_hash(
        u32::from_be_bytes([s0, s1, s2, s3]),
        u32::from_be_bytes([d0, d1, d2, d3]),
        ports,
        protocol,
    ))
}

/// [`flow_hash`] of any frame, through etherparse's lax slicing.
fn parsed(frame: &[u8]) -> u32 {
    let Ok(packet) = LaxSlicedPacket::from_ethernet(frame) else {
        // Shorter than an Ethernet header: no flow, but still spread.
        return Mix::new().write(frame).finish();
    };
    match &packet.net {
        Some(LaxNetSlice::Ipv4(ip)) => {
            let header = ip.header();
            ip_flow(
                Address::V4(u32::from_be_bytes(header.source())),
                Address::V4(u32::from_be_bytes(header.destination())),
                ip.payload(),
            )
        }
        Some(LaxNetSlice::Ipv6(ip)) => {
            let header = ip.header();
            ip_flow(
                Address::V6(u128::from_be_bytes(header.source())),
                Address::V6(u128::from_be_bytes(header.destination())),
                ip.payload(),
            )
        }
        Some(LaxNetSlice::Arp(_)) | None => ethernet_flow(&packet),
    }
}

/// Map a flow hash to a VXLAN UDP source port in 49152..=65535 (RFC 7348 §5).
pub fn vxlan_source_port(hash: u32) -> u16 {
    // The top 14 bits pick one of the 16384 ports.
    DYNAMIC_PORTS_START | (hash >> 18) as u16
}

/// An IP address as a number: hashed a word at a time, compared in one step.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Address {
    V4(u32),
    V6(u128),
}

fn ip_flow(src: Address, dst: Address, payload: &LaxIpPayloadSlice<'_>) -> u32 {
    let ports = ports(payload).unwrap_or((0, 0));
    ip_hash(src, dst, ports, payload.ip_number.0)
}

fn ip_hash(src: Address, dst: Address, ports: (u16, u16), protocol: u8) -> u32 {
    let wide = |address| match address {
        Address::V4(v4) => u128::from(v4),
        Address::V6(v6) => v6,
    };
    match (src, dst) {
        (Address::V4(src), Address::V4(dst)) => v4_hash(src, dst, ports, protocol),
        (src, dst) => {
            let ((a, a_port), (b, b_port)) = ordered((wide(src), ports.0), (wide(dst), ports.1));
            Mix::new()
                .word(a as u64)
                .word((a >> 64) as u64)
                .word(b as u64)
                .word((b >> 64) as u64)
                // Apart from IPv4's, whatever the addresses.
                .word(1 << 63)
                .word(ports_word(a_port, b_port, protocol))
                .finish()
        }
    }
}

/// [`ip_hash`] of two IPv4 addresses: two words.
#[inline]
fn v4_hash(src: u32, dst: u32, (src_port, dst_port): (u16, u16), protocol: u8) -> u32 {
    let ((a, a_port), (b, b_port)) = ordered((src, src_port), (dst, dst_port));
    Mix::new()
        .word(u64::from(a) << 32 | u64::from(b))
        .word(ports_word(a_port, b_port, protocol))
        .finish()
}

fn ports_word(a_port: u16, b_port: u16, protocol: u8) -> u64 {
    u64::from(a_port) | u64::from(b_port) << 16 | u64::from(protocol) << 32
}

/// The ports of a transport that starts with them, or `None` for other protocols and fragments.
fn ports(payload: &LaxIpPayloadSlice<'_>) -> Option<(u16, u16)> {
    if payload.fragmented {
        return None;
    }
    match payload.ip_number {
        IpNumber::TCP | IpNumber::UDP | IpNumber::SCTP | IpNumber::DCCP | IpNumber::UDP_LITE => {
            // Read the ports directly so a capture cut inside the transport header still has them.
            let &[s0, s1, d0, d1] = payload.payload.first_chunk::<4>()?;
            Some((u16::from_be_bytes([s0, s1]), u16::from_be_bytes([d0, d1])))
        }
        _ => None,
    }
}

fn ethernet_flow(packet: &LaxSlicedPacket<'_>) -> u32 {
    // from_ethernet always yields an Ethernet II link.
    let Some(LinkSlice::Ethernet2(eth)) = &packet.link else {
        return Mix::new().finish();
    };
    let ether_type = packet
        .ether_payload()
        .map_or(eth.ether_type(), |payload| payload.ether_type);
    let (a, b) = ordered(eth.source(), eth.destination());
    Mix::new()
        .write(&a)
        .write(&b)
        .word(u64::from(ether_type.0))
        .finish()
}

/// The two endpoints in a fixed order, which is what makes the hash symmetric.
fn ordered<T: Ord>(x: T, y: T) -> (T, T) {
    if x <= y { (x, y) } else { (y, x) }
}

/// A multiply-xor hash a word (up to 8 bytes) at a time, finished with murmur3's 64-bit
/// avalanche so the high bits the port uses are mixed too. A word at a time, not FNV's byte at a
/// time: a copy's flow is hashed once per copy, and a byte chain of multiplies was a tenth of a
/// replayed packet's user-space time.
#[derive(Clone, Copy)]
struct Mix(u64);

impl Mix {
    const fn new() -> Self {
        Mix(0xcbf2_9ce4_8422_2325)
    }

    fn word(self, word: u64) -> Self {
        Mix((self.0 ^ word)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(31))
    }

    fn write(self, bytes: &[u8]) -> Self {
        let mut mix = self;
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let word: [u8; 8] = chunk.try_into().unwrap_or_default();
            mix = mix.word(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0; 8];
            word.get_mut(..rest.len())
                .unwrap_or_default()
                .copy_from_slice(rest);
            // The length too, so that trailing zero bytes still count.
            mix = mix.word(u64::from_le_bytes(word) ^ (rest.len() as u64) << 59);
        }
        mix
    }

    fn finish(self) -> u32 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^= h >> 33;
        (h >> 32) as u32
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use etherparse::{
        EtherType, IpFragOffset, IpHeaders, Ipv4Extensions, Ipv4Header, PacketBuilder, VlanId,
    };

    use super::*;

    const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
    const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
    const IP4_A: [u8; 4] = [10, 0, 0, 1];
    const IP4_B: [u8; 4] = [10, 0, 0, 2];
    const IP6_A: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const IP6_B: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    const PAYLOAD: &[u8] = b"hello, mirror";

    /// A frame from A to B; the reply swaps MACs, addresses and ports.
    #[derive(Clone, Copy)]
    enum L4 {
        Tcp(u16, u16),
        Udp(u16, u16),
        Sctp(u16, u16),
        Icmp,
    }

    impl L4 {
        fn reversed(self) -> L4 {
            match self {
                L4::Tcp(s, d) => L4::Tcp(d, s),
                L4::Udp(s, d) => L4::Udp(d, s),
                L4::Sctp(s, d) => L4::Sctp(d, s),
                L4::Icmp => L4::Icmp,
            }
        }
    }

    fn v4(src: [u8; 4], dst: [u8; 4], l4: L4) -> Vec<u8> {
        let (smac, dmac) = if src <= dst {
            (MAC_A, MAC_B)
        } else {
            (MAC_B, MAC_A)
        };
        let ip = PacketBuilder::ethernet2(smac, dmac).ipv4(src, dst, 64);
        let mut out = Vec::new();
        match l4 {
            L4::Tcp(s, d) => ip.tcp(s, d, 1, 1024).write_to_vec(&mut out, PAYLOAD),
            L4::Udp(s, d) => ip.udp(s, d).write_to_vec(&mut out, PAYLOAD),
            L4::Sctp(s, d) => {
                let mut sctp = [0_u8; 12];
                sctp[..2].copy_from_slice(&s.to_be_bytes());
                sctp[2..4].copy_from_slice(&d.to_be_bytes());
                ip.write_to_vec(&mut out, IpNumber::SCTP, &sctp)
            }
            L4::Icmp => ip.icmpv4_echo_request(7, 1).write_to_vec(&mut out, PAYLOAD),
        }
        .unwrap();
        out
    }

    fn v6(src: [u8; 16], dst: [u8; 16], l4: L4) -> Vec<u8> {
        let ip = PacketBuilder::ethernet2(MAC_A, MAC_B).ipv6(src, dst, 64);
        let mut out = Vec::new();
        match l4 {
            L4::Tcp(s, d) => ip.tcp(s, d, 1, 1024).write_to_vec(&mut out, PAYLOAD),
            L4::Udp(s, d) => ip.udp(s, d).write_to_vec(&mut out, PAYLOAD),
            L4::Sctp(..) | L4::Icmp => ip.icmpv6_echo_request(7, 1).write_to_vec(&mut out, PAYLOAD),
        }
        .unwrap();
        out
    }

    fn raw_ethernet(src: [u8; 6], dst: [u8; 6], ether_type: u16) -> Vec<u8> {
        let mut frame = [dst, src].concat();
        frame.extend_from_slice(&ether_type.to_be_bytes());
        frame.extend_from_slice(&[0x5a; 46]);
        frame
    }

    /// Small deterministic PRNG (xorshift32): no dependency, reproducible failures.
    struct XorShift(u32);

    impl XorShift {
        fn next(&mut self) -> u32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 17;
            self.0 ^= self.0 << 5;
            self.0
        }

        fn bytes(&mut self, len: usize) -> Vec<u8> {
            (0..len).map(|_| self.next() as u8).collect()
        }
    }

    #[test]
    fn symmetric_ipv4() {
        for l4 in [
            L4::Tcp(40000, 80),
            L4::Udp(5353, 53),
            L4::Sctp(2905, 2906),
            L4::Icmp,
        ] {
            assert_eq!(
                flow_hash(&v4(IP4_A, IP4_B, l4)),
                flow_hash(&v4(IP4_B, IP4_A, l4.reversed()))
            );
        }
    }

    #[test]
    fn symmetric_ipv6() {
        for l4 in [L4::Tcp(40000, 443), L4::Udp(546, 547), L4::Icmp] {
            assert_eq!(
                flow_hash(&v6(IP6_A, IP6_B, l4)),
                flow_hash(&v6(IP6_B, IP6_A, l4.reversed()))
            );
        }
    }

    #[test]
    fn symmetric_non_ip() {
        for ether_type in [0x0806, 0x88cc, 0x0000, 0xffff] {
            assert_eq!(
                flow_hash(&raw_ethernet(MAC_A, MAC_B, ether_type)),
                flow_hash(&raw_ethernet(MAC_B, MAC_A, ether_type))
            );
        }
        assert_ne!(
            flow_hash(&raw_ethernet(MAC_A, MAC_B, 0x0806)),
            flow_hash(&raw_ethernet(MAC_A, MAC_B, 0x88cc))
        );
    }

    #[test]
    fn ports_and_protocol_matter() {
        let base = flow_hash(&v4(IP4_A, IP4_B, L4::Tcp(40000, 80)));
        let others = [
            v4(IP4_A, IP4_B, L4::Tcp(40001, 80)),
            v4(IP4_A, IP4_B, L4::Tcp(40000, 81)),
            // The same port numbers on the other sides is another flow.
            v4(IP4_A, IP4_B, L4::Tcp(80, 40000)),
            v4(IP4_A, IP4_B, L4::Udp(40000, 80)),
            v4(IP4_A, IP4_B, L4::Sctp(40000, 80)),
            v4(IP4_A, [10, 0, 0, 3], L4::Tcp(40000, 80)),
        ];
        for other in &others {
            assert_ne!(flow_hash(other), base);
        }
        assert_ne!(
            flow_hash(&v6(IP6_A, IP6_B, L4::Udp(1000, 2000))),
            flow_hash(&v6(IP6_A, IP6_B, L4::Udp(1000, 2001)))
        );
    }

    #[test]
    fn payload_and_macs_do_not_matter_for_ip() {
        let frame = v4(IP4_A, IP4_B, L4::Udp(1234, 4321));
        let mut other = frame.clone();
        other[..12].fill(0xee);
        *other.last_mut().unwrap() ^= 0xff;
        assert_eq!(flow_hash(&frame), flow_hash(&other));
    }

    #[test]
    fn vlan_tagged_frames_hash_the_inner_flow() {
        let untagged = flow_hash(&v4(IP4_A, IP4_B, L4::Tcp(40000, 80)));
        let mut single = Vec::new();
        PacketBuilder::ethernet2(MAC_A, MAC_B)
            .single_vlan(VlanId::try_new(100).unwrap())
            .ipv4(IP4_A, IP4_B, 64)
            .tcp(40000, 80, 1, 1024)
            .write_to_vec(&mut single, PAYLOAD)
            .unwrap();
        let mut double = Vec::new();
        PacketBuilder::ethernet2(MAC_B, MAC_A)
            .double_vlan(VlanId::try_new(10).unwrap(), VlanId::try_new(20).unwrap())
            .ipv4(IP4_B, IP4_A, 64)
            .tcp(80, 40000, 1, 1024)
            .write_to_vec(&mut double, PAYLOAD)
            .unwrap();
        assert_eq!(flow_hash(&single), untagged);
        assert_eq!(flow_hash(&double), untagged);
    }

    #[test]
    fn fragments_hash_together_without_ports() {
        let fragment = |offset: u16, more: bool, payload: &[u8]| {
            let header = Ipv4Header {
                more_fragments: more,
                fragment_offset: IpFragOffset::try_new(offset).unwrap(),
                time_to_live: 64,
                source: IP4_A,
                destination: IP4_B,
                ..Ipv4Header::default()
            };
            let mut out = Vec::new();
            PacketBuilder::ethernet2(MAC_A, MAC_B)
                .ip(IpHeaders::Ipv4(header, Ipv4Extensions::default()))
                .write_to_vec(&mut out, IpNumber::UDP, payload)
                .unwrap();
            out
        };
        // The first fragment starts with a UDP header (ports 1111 -> 2222), the last does not.
        let first = fragment(0, true, &[0x04, 0x57, 0x08, 0xae, 0, 16, 0, 0, 1, 2, 3, 4]);
        let last = fragment(2, false, &[5, 6, 7, 8, 9, 10, 11, 12]);
        let other_ports = fragment(0, true, &[0x04, 0x58, 0x08, 0xae, 0, 16, 0, 0, 1, 2, 3, 4]);
        assert_eq!(flow_hash(&first), flow_hash(&last));
        assert_eq!(flow_hash(&first), flow_hash(&other_ports));
        // Unfragmented, the ports count again.
        assert_ne!(
            flow_hash(&fragment(
                0,
                false,
                &[0x04, 0x57, 0x08, 0xae, 0, 12, 0, 0, 1, 2, 3, 4]
            )),
            flow_hash(&first)
        );
    }

    #[test]
    fn snaplen_cut_inside_transport_keeps_the_ports() {
        let frame = v4(IP4_A, IP4_B, L4::Tcp(40000, 80));
        // Ethernet 14 + IPv4 20 + the two TCP ports.
        assert_eq!(flow_hash(&frame[..38]), flow_hash(&frame));
        assert_ne!(flow_hash(&frame[..37]), flow_hash(&frame));
        let frame = v6(IP6_A, IP6_B, L4::Udp(1000, 2000));
        assert_eq!(flow_hash(&frame[..58]), flow_hash(&frame));
    }

    #[test]
    fn every_truncation_is_handled() {
        let frames = [
            v4(IP4_A, IP4_B, L4::Tcp(40000, 80)),
            v4(IP4_A, IP4_B, L4::Sctp(1, 2)),
            v6(IP6_A, IP6_B, L4::Udp(1000, 2000)),
            raw_ethernet(MAC_A, MAC_B, 0x0806),
        ];
        for frame in &frames {
            for len in 0..=frame.len() {
                flow_hash(&frame[..len]);
            }
        }
        // Cut short of the IP header: hashed as Ethernet, still symmetric.
        let there = v4(IP4_A, IP4_B, L4::Tcp(40000, 80));
        let back = v4(IP4_B, IP4_A, L4::Tcp(80, 40000));
        assert_eq!(flow_hash(&there[..20]), flow_hash(&back[..20]));
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = XorShift(0x1234_5678);
        for round in 0..20_000 {
            let len = rng.next() as usize % 200;
            let mut frame = rng.bytes(len);
            // Steer most rounds into the IP and VLAN parsers rather than stopping at Ethernet.
            if frame.len() >= 15 && round % 4 != 0 {
                let ether_type = [
                    EtherType::IPV4,
                    EtherType::IPV6,
                    EtherType::VLAN_TAGGED_FRAME,
                ][round % 3];
                frame[12..14].copy_from_slice(&ether_type.0.to_be_bytes());
                frame[14] = if ether_type == EtherType::IPV6 {
                    0x60
                } else {
                    0x45
                };
            }
            flow_hash(&frame);
        }
    }

    #[test]
    fn ipv4_fast_path_agrees_with_the_parser() {
        let mut rng = XorShift(0x51ed_270b);
        let frames = [
            v4(IP4_A, IP4_B, L4::Udp(53, 5353)),
            v4(IP4_B, IP4_A, L4::Tcp(443, 50000)),
            v4(IP4_A, IP4_B, L4::Sctp(9, 10)),
            v4(IP4_A, IP4_B, L4::Icmp),
        ];
        let mut fast = 0;
        for _ in 0..200_000 {
            let mut frame = frames[rng.next() as usize % frames.len()].clone();
            // Mostly the bytes the fast path decides on: EtherType, version/IHL, total length,
            // flags/offset, protocol; sometimes anywhere.
            for _ in 0..=rng.next() % 3 {
                let at = match rng.next() % 8 {
                    0 => 12 + rng.next() as usize % 2,
                    1 => 14,
                    2 => 16 + rng.next() as usize % 2,
                    3 => 20 + rng.next() as usize % 2,
                    4 => 23,
                    _ => rng.next() as usize % frame.len(),
                };
                frame[at] = match rng.next() % 4 {
                    // Values near the boundaries the fast path checks.
                    0 => [0x00, 0x08, 0x45, 0x46, 0x20, 0x40, 51, 6][rng.next() as usize % 8],
                    1 => (rng.next() % 32) as u8,
                    _ => rng.next() as u8,
                };
            }
            let cut = match rng.next() % 3 {
                0 => rng.next() as usize % (frame.len() + 1),
                _ => frame.len(),
            };
            let frame = &frame[..cut];
            if let Some(hash) = ipv4_fast(frame) {
                fast += 1;
                assert_eq!(hash, parsed(frame), "{frame:02x?}");
            }
        }
        // The comparison only means something if the fast path was taken often.
        assert!(fast > 50_000, "fast path taken {fast} times");
    }

    #[test]
    fn mutated_real_frames_never_panic() {
        let mut rng = XorShift(0x9e37_79b9);
        let frames = [
            v4(IP4_A, IP4_B, L4::Udp(53, 5353)),
            v6(IP6_A, IP6_B, L4::Tcp(443, 50000)),
        ];
        for _ in 0..20_000 {
            let mut frame = frames[rng.next() as usize % 2].clone();
            for _ in 0..=rng.next() % 4 {
                let at = rng.next() as usize % frame.len();
                frame[at] = rng.next() as u8;
            }
            let cut = rng.next() as usize % (frame.len() + 1);
            flow_hash(&frame[..cut]);
        }
    }

    #[test]
    fn source_port_in_dynamic_range() {
        assert_eq!(vxlan_source_port(0), 49152);
        assert_eq!(vxlan_source_port(u32::MAX), 65535);
        let mut rng = XorShift(42);
        for _ in 0..100_000 {
            assert!(vxlan_source_port(rng.next()) >= 49152);
        }
    }

    #[test]
    fn source_ports_spread() {
        // 4096 flows into 16384 ports: a uniform hash leaves about 3620 distinct ports.
        let ports: HashSet<u16> = (0..4096)
            .map(|port| vxlan_source_port(flow_hash(&v4(IP4_A, IP4_B, L4::Udp(port, 4789)))))
            .collect();
        assert!(ports.len() > 3400, "only {} distinct ports", ports.len());
    }

    #[test]
    fn ipv6_and_ipv4_hash_apart() {
        let mut mapped = [0_u8; 16];
        mapped[10..12].fill(0xff);
        mapped[12..].copy_from_slice(&IP4_A);
        assert_ne!(
            flow_hash(&v4(IP4_A, IP4_B, L4::Udp(1, 2))),
            flow_hash(&v6(mapped, IP6_B, L4::Udp(1, 2)))
        );
    }
}
