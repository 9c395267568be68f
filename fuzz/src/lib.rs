//! Helpers the fuzz targets share: reading options out of the fuzzer's bytes, and checking the
//! outer packets the tunnel encoders write.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::{IpNumber, Ipv4Header, Ipv6Header, UdpHeader};

/// Reads fixed-size values from the front of the fuzzer's input; past its end every read is 0,
/// so any input is usable and short inputs still mean something.
pub struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Bytes(data)
    }

    pub fn u8(&mut self) -> u8 {
        self.array::<1>()[0]
    }

    pub fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes(self.array())
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.array())
    }

    pub fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.array())
    }

    /// The next `n` bytes, or fewer at the end.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }

    /// Everything not read yet.
    pub fn rest(self) -> &'a [u8] {
        self.0
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0; N];
        let head = self.take(N);
        out[..head.len()].copy_from_slice(head);
        out
    }
}

/// A source and a remote of one family, some of them from the input.
pub fn addresses(bytes: &mut Bytes<'_>) -> (IpAddr, IpAddr) {
    if bytes.bool() {
        let src = Ipv6Addr::from(u128::from(bytes.u64()));
        let dst = Ipv6Addr::from(u128::from(bytes.u64()) | 1 << 127);
        (src.into(), dst.into())
    } else {
        (
            Ipv4Addr::from(bytes.u32()).into(),
            Ipv4Addr::from(bytes.u32()).into(),
        )
    }
}

/// Checks the outer IP header of `packet` (what a tunnel encoder wrote, then the inner frame)
/// and returns the IP payload: the lengths must cover exactly the packet, the IPv4 header
/// checksum must be right, the addresses and protocol those configured.
pub fn outer_ip_payload(packet: &[u8], src: IpAddr, dst: IpAddr, protocol: IpNumber) -> &[u8] {
    match (src, dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            let (header, payload) = Ipv4Header::from_slice(packet).expect("outer IPv4 header");
            assert_eq!(
                usize::from(header.total_len),
                packet.len(),
                "IPv4 total length"
            );
            assert_eq!(
                header.header_checksum,
                header.calc_header_checksum(),
                "IPv4 header checksum"
            );
            assert_eq!(header.protocol, protocol);
            assert_eq!(
                (header.source, header.destination),
                (src.octets(), dst.octets())
            );
            payload
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            let (header, payload) = Ipv6Header::from_slice(packet).expect("outer IPv6 header");
            assert_eq!(
                usize::from(header.payload_length),
                payload.len(),
                "IPv6 payload length"
            );
            assert_eq!(header.next_header, protocol);
            assert_eq!(
                (header.source, header.destination),
                (src.octets(), dst.octets())
            );
            payload
        }
        _ => unreachable!("addresses() gives one family"),
    }
}

/// Checks the UDP header of an outer IP payload (length, and the checksum where there is one:
/// always over IPv6) and returns the UDP header and payload.
pub fn outer_udp(ip_payload: &[u8], src: IpAddr, dst: IpAddr) -> (UdpHeader, &[u8]) {
    let (udp, payload) = UdpHeader::from_slice(ip_payload).expect("outer UDP header");
    assert_eq!(usize::from(udp.length), ip_payload.len(), "UDP length");
    let expected = match (src, dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            if udp.checksum == 0 {
                None
            } else {
                Some(udp.calc_checksum_ipv4_raw(src.octets(), dst.octets(), payload))
            }
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            assert_ne!(udp.checksum, 0, "a UDP checksum is mandatory over IPv6");
            Some(udp.calc_checksum_ipv6_raw(src.octets(), dst.octets(), payload))
        }
        _ => unreachable!("addresses() gives one family"),
    };
    if let Some(expected) = expected {
        assert_eq!(
            udp.checksum,
            expected.expect("UDP length fits"),
            "UDP checksum"
        );
    }
    (udp, payload)
}
