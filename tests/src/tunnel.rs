//! Reading the tunnel packets the mirror sends, as captured on the wire: Ethernet, IPv4 or IPv6,
//! then GRE (with or without an ERSPAN header) or UDP with VxLAN, then the inner frame.
//!
//! Written independently of the agent's own wire code, straight from the RFCs and the ERSPAN
//! draft, so that a test does not check the agent's headers with the agent's understanding of
//! them. Every length is checked: a malformed packet is an error, never a panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::{Result, bail, ensure};

/// GRE protocol type of Transparent Ethernet Bridging (GRE and `gretap`).
pub const GRE_PROTO_TEB: u16 = 0x6558;
/// GRE protocol type of ERSPAN Types I and II.
pub const GRE_PROTO_ERSPAN: u16 = 0x88BE;
/// GRE protocol type of ERSPAN Type III.
pub const GRE_PROTO_ERSPAN3: u16 = 0x22EB;
/// IP protocol number of GRE.
pub const IPPROTO_GRE: u8 = 47;
/// IP protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86DD;
const ETH_HEADER: usize = 14;

/// The outer Ethernet and IP headers of a tunnel packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outer {
    pub dst_mac: [u8; 6],
    pub src_mac: [u8; 6],
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IPv4 protocol or IPv6 next header.
    pub protocol: u8,
    /// The whole IP packet's length (header included): what must fit the path MTU.
    pub ip_len: usize,
    /// IPv4 Don't Fragment (always `false` for IPv6, which routers never fragment).
    pub dont_fragment: bool,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// Offset of the IP payload in the frame.
    pub payload_offset: usize,
}

impl Outer {
    /// Parses Ethernet + IPv4 (header checksum verified, no fragments) or IPv6 (no extension
    /// headers); the IP length must match the frame exactly.
    pub fn parse(frame: &[u8]) -> Result<Self> {
        ensure!(
            frame.len() >= ETH_HEADER,
            "{} bytes: shorter than an Ethernet header",
            frame.len()
        );
        let dst_mac = mac(&frame[0..6]);
        let src_mac = mac(&frame[6..12]);
        let ethertype = be16(frame, 12);
        let ip = &frame[ETH_HEADER..];
        let outer = match ethertype {
            ETHERTYPE_IPV4 => {
                ensure!(ip.len() >= 20, "IPv4 header cut short");
                ensure!(ip[0] >> 4 == 4, "IPv4 version field is {}", ip[0] >> 4);
                let ihl = usize::from(ip[0] & 0x0f) * 4;
                ensure!(ihl >= 20 && ip.len() >= ihl, "IPv4 IHL {ihl} does not fit");
                ensure!(
                    internet_checksum(&[&ip[..ihl]]) == 0,
                    "bad IPv4 header checksum {:#06x}",
                    be16(ip, 10)
                );
                let total = usize::from(be16(ip, 2));
                ensure!(
                    total == ip.len(),
                    "IPv4 total length {total}, but the frame holds {} bytes of IP",
                    ip.len()
                );
                let flags_offset = be16(ip, 6);
                let more_fragments = flags_offset & 0x2000 != 0;
                let fragment_offset = flags_offset & 0x1fff;
                ensure!(
                    !more_fragments && fragment_offset == 0,
                    "an IPv4 fragment (flags/offset {flags_offset:#06x}): copies must not be fragmented"
                );
                Self {
                    dst_mac,
                    src_mac,
                    src: IpAddr::V4(Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15])),
                    dst: IpAddr::V4(Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19])),
                    protocol: ip[9],
                    ip_len: total,
                    dont_fragment: flags_offset & 0x4000 != 0,
                    ttl: ip[8],
                    payload_offset: ETH_HEADER + ihl,
                }
            }
            ETHERTYPE_IPV6 => {
                ensure!(ip.len() >= 40, "IPv6 header cut short");
                ensure!(ip[0] >> 4 == 6, "IPv6 version field is {}", ip[0] >> 4);
                let payload = usize::from(be16(ip, 4));
                ensure!(
                    payload + 40 == ip.len(),
                    "IPv6 payload length {payload}, but the frame holds {} bytes after the header",
                    ip.len() - 40
                );
                Self {
                    dst_mac,
                    src_mac,
                    src: IpAddr::V6(ipv6(&ip[8..24])),
                    dst: IpAddr::V6(ipv6(&ip[24..40])),
                    protocol: ip[6],
                    ip_len: ip.len(),
                    dont_fragment: false,
                    ttl: ip[7],
                    payload_offset: ETH_HEADER + 40,
                }
            }
            other => bail!("ethertype {other:#06x}: neither IPv4 nor IPv6"),
        };
        Ok(outer)
    }
}

/// A GRE header (RFC 2784, 2890).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gre {
    /// The first 16 bits: C, R, K, S, s, Recur, Flags, Ver.
    pub flags_version: u16,
    pub protocol: u16,
    pub checksum: Option<u16>,
    pub key: Option<u32>,
    pub sequence: Option<u32>,
    /// Header length, options included.
    pub len: usize,
}

impl Gre {
    const C: u16 = 0x8000;
    const K: u16 = 0x2000;
    const S: u16 = 0x1000;

    /// Parses a GRE header at the start of `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        ensure!(bytes.len() >= 4, "GRE header cut short");
        let flags_version = be16(bytes, 0);
        let mut len = 4;
        let mut word = |present: bool| -> Result<Option<u32>> {
            if !present {
                return Ok(None);
            }
            ensure!(bytes.len() >= len + 4, "GRE options cut short");
            let value = be32(bytes, len);
            len += 4;
            Ok(Some(value))
        };
        let checksum = word(flags_version & Self::C != 0)?.map(|w| (w >> 16) as u16);
        let key = word(flags_version & Self::K != 0)?;
        let sequence = word(flags_version & Self::S != 0)?;
        Ok(Self {
            flags_version,
            protocol: be16(bytes, 2),
            checksum,
            key,
            sequence,
            len,
        })
    }

    /// GRE version (the low 3 bits): 0 for everything here.
    pub fn version(&self) -> u16 {
        self.flags_version & 0x7
    }

    /// The bits other than C, K and S: R, s, Recur, Flags and Ver, which must all be 0.
    pub fn other_bits(&self) -> u16 {
        self.flags_version & !(Self::C | Self::K | Self::S)
    }
}

/// The ERSPAN header after GRE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Erspan {
    /// Type I: no header at all; GRE 0x88BE without a sequence number.
    TypeI,
    /// Type II: version 1, 8 bytes.
    TypeII(ErspanII),
    /// Type III: version 2, 12 bytes (20 with the optional platform subheader).
    TypeIII(ErspanIII),
}

/// ERSPAN Type II header fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErspanII {
    pub version: u8,
    pub vlan: u16,
    pub cos: u8,
    pub encap: u8,
    pub truncated: bool,
    pub session: u16,
    pub reserved: u16,
    pub index: u32,
}

/// ERSPAN Type III header fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErspanIII {
    pub version: u8,
    pub vlan: u16,
    pub cos: u8,
    pub bso: u8,
    pub truncated: bool,
    pub session: u16,
    pub timestamp: u32,
    pub sgt: u16,
    pub p: bool,
    pub frame_type: u8,
    pub hwid: u8,
    /// D: 0 ingress, 1 egress.
    pub direction: u8,
    pub granularity: u8,
    pub optional: bool,
}

/// A GRE-family tunnel packet: outer headers, GRE, the ERSPAN header if any, the inner frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrePacket {
    pub outer: Outer,
    pub gre: Gre,
    /// `None` for plain GRE (0x6558).
    pub erspan: Option<Erspan>,
    pub inner: Vec<u8>,
}

impl GrePacket {
    /// Parses a captured Ethernet frame carrying GRE.
    pub fn parse(frame: &[u8]) -> Result<Self> {
        let outer = Outer::parse(frame)?;
        ensure!(
            outer.protocol == IPPROTO_GRE,
            "IP protocol {}, not GRE",
            outer.protocol
        );
        let payload = &frame[outer.payload_offset..];
        let gre = Gre::parse(payload)?;
        let rest = &payload[gre.len..];
        let (erspan, header) = match gre.protocol {
            GRE_PROTO_TEB => (None, 0),
            GRE_PROTO_ERSPAN if gre.sequence.is_none() => (Some(Erspan::TypeI), 0),
            GRE_PROTO_ERSPAN => {
                ensure!(rest.len() >= 8, "ERSPAN II header cut short");
                let w0 = be32(rest, 0);
                let w1 = be32(rest, 4);
                let header = ErspanII {
                    version: (w0 >> 28) as u8,
                    vlan: ((w0 >> 16) & 0xfff) as u16,
                    cos: ((w0 >> 13) & 0x7) as u8,
                    encap: ((w0 >> 11) & 0x3) as u8,
                    truncated: (w0 >> 10) & 1 == 1,
                    session: (w0 & 0x3ff) as u16,
                    reserved: (w1 >> 20) as u16,
                    index: w1 & 0xf_ffff,
                };
                (Some(Erspan::TypeII(header)), 8)
            }
            GRE_PROTO_ERSPAN3 => {
                ensure!(rest.len() >= 12, "ERSPAN III header cut short");
                let w0 = be32(rest, 0);
                let w2 = be32(rest, 8);
                let header = ErspanIII {
                    version: (w0 >> 28) as u8,
                    vlan: ((w0 >> 16) & 0xfff) as u16,
                    cos: ((w0 >> 13) & 0x7) as u8,
                    bso: ((w0 >> 11) & 0x3) as u8,
                    truncated: (w0 >> 10) & 1 == 1,
                    session: (w0 & 0x3ff) as u16,
                    timestamp: be32(rest, 4),
                    sgt: (w2 >> 16) as u16,
                    p: (w2 >> 15) & 1 == 1,
                    frame_type: ((w2 >> 10) & 0x1f) as u8,
                    hwid: ((w2 >> 4) & 0x3f) as u8,
                    direction: ((w2 >> 3) & 1) as u8,
                    granularity: ((w2 >> 1) & 0x3) as u8,
                    optional: w2 & 1 == 1,
                };
                let len = if header.optional { 20 } else { 12 };
                ensure!(rest.len() >= len, "ERSPAN III platform subheader cut short");
                (Some(Erspan::TypeIII(header)), len)
            }
            other => bail!("GRE protocol {other:#06x}: neither Ethernet (0x6558) nor ERSPAN"),
        };
        Ok(Self {
            inner: rest[header..].to_vec(),
            outer,
            gre,
            erspan,
        })
    }
}

/// A VxLAN packet (RFC 7348) over UDP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VxlanPacket {
    pub outer: Outer,
    pub src_port: u16,
    pub dst_port: u16,
    /// The UDP checksum field as sent (0: none, allowed over IPv4 only).
    pub udp_checksum: u16,
    /// Whether the UDP checksum verifies (with the IPv4/IPv6 pseudo-header); `true` for 0 over IPv4.
    pub udp_checksum_ok: bool,
    /// The VxLAN flags byte (0x08: I, the VNI is valid).
    pub flags: u8,
    pub vni: u32,
    /// The reserved bits of the VxLAN header (24 after the flags, 8 after the VNI), must be 0.
    pub reserved: u32,
    pub inner: Vec<u8>,
}

impl VxlanPacket {
    /// Parses a captured Ethernet frame carrying VxLAN.
    pub fn parse(frame: &[u8]) -> Result<Self> {
        let outer = Outer::parse(frame)?;
        ensure!(
            outer.protocol == IPPROTO_UDP,
            "IP protocol {}, not UDP",
            outer.protocol
        );
        let udp = &frame[outer.payload_offset..];
        ensure!(udp.len() >= 16, "UDP + VxLAN headers cut short");
        let udp_len = usize::from(be16(udp, 4));
        ensure!(
            udp_len == udp.len(),
            "UDP length {udp_len}, but the IP payload is {} bytes",
            udp.len()
        );
        let udp_checksum = be16(udp, 6);
        let udp_checksum_ok = match (outer.src, outer.dst) {
            (IpAddr::V4(_), IpAddr::V4(_)) if udp_checksum == 0 => true,
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                let mut pseudo = Vec::with_capacity(12);
                pseudo.extend_from_slice(&src.octets());
                pseudo.extend_from_slice(&dst.octets());
                pseudo.extend_from_slice(&[0, IPPROTO_UDP]);
                pseudo.extend_from_slice(&(udp_len as u16).to_be_bytes());
                internet_checksum(&[&pseudo, udp]) == 0
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                let mut pseudo = Vec::with_capacity(40);
                pseudo.extend_from_slice(&src.octets());
                pseudo.extend_from_slice(&dst.octets());
                pseudo.extend_from_slice(&(udp_len as u32).to_be_bytes());
                pseudo.extend_from_slice(&[0, 0, 0, IPPROTO_UDP]);
                udp_checksum != 0 && internet_checksum(&[&pseudo, udp]) == 0
            }
            _ => bail!("mixed address families"),
        };
        let vx = &udp[8..];
        let w0 = be32(vx, 0);
        let w1 = be32(vx, 4);
        Ok(Self {
            src_port: be16(udp, 0),
            dst_port: be16(udp, 2),
            udp_checksum,
            udp_checksum_ok,
            flags: (w0 >> 24) as u8,
            vni: w1 >> 8,
            reserved: ((w0 & 0x00ff_ffff) << 8) | (w1 & 0xff),
            inner: vx[8..].to_vec(),
            outer,
        })
    }
}

/// The Internet checksum (RFC 1071) over the concatenation of `parts`: 0 when a packet that
/// includes its checksum field verifies.
pub fn internet_checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    let mut odd: Option<u8> = None;
    for part in parts {
        for &byte in *part {
            match odd.take() {
                Some(high) => sum += u32::from(u16::from_be_bytes([high, byte])),
                None => odd = Some(byte),
            }
        }
    }
    if let Some(high) = odd {
        sum += u32::from(u16::from_be_bytes([high, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// `aa:bb:cc:dd:ee:ff` of six bytes.
pub fn format_mac(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Six bytes of `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(text: &str) -> Result<[u8; 6]> {
    let bytes: Vec<u8> = text
        .split(':')
        .map(|part| u8::from_str_radix(part, 16))
        .collect::<Result<_, _>>()
        .map_err(|err| anyhow::anyhow!("MAC address `{text}`: {err}"))?;
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("MAC address `{text}` does not have six bytes"))
}

fn mac(bytes: &[u8]) -> [u8; 6] {
    let mut mac = [0; 6];
    mac.copy_from_slice(&bytes[..6]);
    mac
}

fn ipv6(bytes: &[u8]) -> Ipv6Addr {
    let mut octets = [0; 16];
    octets.copy_from_slice(&bytes[..16]);
    Ipv6Addr::from(octets)
}

fn be16(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}

fn be32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ethernet + IPv4 (198.18.0.1 -> 198.18.0.2, proto 47) around `payload`.
    fn ipv4_frame(payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        let total = (20 + payload.len()) as u16;
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 47, 0, 0, 198, 18, 0, 1, 198, 18, 0, 2,
        ];
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        let checksum = internet_checksum(&[&ip]);
        ip[10..12].copy_from_slice(&checksum.to_be_bytes());
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(payload);
        frame
    }

    #[test]
    fn parses_gre_with_key_and_sequence() {
        let mut gre = vec![0x30, 0x00, 0x65, 0x58, 0, 0, 0, 3, 0, 0, 0, 9];
        gre.extend_from_slice(b"inner");
        let packet = GrePacket::parse(&ipv4_frame(&gre)).unwrap();
        assert_eq!(packet.outer.src, IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1)));
        assert!(packet.outer.dont_fragment);
        assert_eq!(packet.gre.key, Some(3));
        assert_eq!(packet.gre.sequence, Some(9));
        assert_eq!(packet.gre.checksum, None);
        assert_eq!(packet.gre.other_bits(), 0);
        assert_eq!(packet.erspan, None);
        assert_eq!(packet.inner, b"inner");
    }

    #[test]
    fn parses_erspan_ii_and_iii() {
        // Type II: ver 1, vlan 0, cos 0, en 0, T 1, session 77; index 12345.
        let w0: u32 = (1 << 28) | (1 << 10) | 0x4d; // session 77
        let mut gre = vec![0x10, 0x00, 0x88, 0xbe, 0, 0, 0, 5];
        gre.extend_from_slice(&w0.to_be_bytes());
        gre.extend_from_slice(&12345_u32.to_be_bytes());
        gre.extend_from_slice(b"eth");
        let packet = GrePacket::parse(&ipv4_frame(&gre)).unwrap();
        let Some(Erspan::TypeII(ii)) = packet.erspan else {
            panic!("not type II: {packet:?}")
        };
        assert_eq!((ii.version, ii.session, ii.index), (1, 77, 12345));
        assert!(ii.truncated);
        assert_eq!(packet.inner, b"eth");

        // Type III: ver 2, session 300; timestamp; sgt 1234, P 1, FT 0, hwid 5, D 1, gra 0.
        let w0: u32 = (2 << 28) | 0x12c; // session 300
        let w2: u32 = (0x4d2 << 16) | (1 << 15) | (5 << 4) | (1 << 3); // sgt 1234
        let mut gre = vec![0x10, 0x00, 0x22, 0xeb, 0, 0, 0, 6];
        gre.extend_from_slice(&w0.to_be_bytes());
        gre.extend_from_slice(&0xdead_beef_u32.to_be_bytes());
        gre.extend_from_slice(&w2.to_be_bytes());
        gre.extend_from_slice(b"eth");
        let packet = GrePacket::parse(&ipv4_frame(&gre)).unwrap();
        let Some(Erspan::TypeIII(iii)) = packet.erspan else {
            panic!("not type III: {packet:?}")
        };
        assert_eq!(
            (iii.version, iii.session, iii.timestamp, iii.sgt, iii.hwid),
            (2, 300, 0xdead_beef, 1234, 5)
        );
        assert!(iii.p && !iii.truncated && !iii.optional);
        assert_eq!((iii.direction, iii.granularity, iii.frame_type), (1, 0, 0));
        assert_eq!(packet.inner, b"eth");

        // Type I: no sequence number, no header.
        let mut gre = vec![0x00, 0x00, 0x88, 0xbe];
        gre.extend_from_slice(b"eth");
        let packet = GrePacket::parse(&ipv4_frame(&gre)).unwrap();
        assert_eq!(packet.erspan, Some(Erspan::TypeI));
        assert_eq!(packet.inner, b"eth");
    }

    #[test]
    fn rejects_bad_checksums_and_short_packets() {
        let mut frame = ipv4_frame(&[0, 0, 0x65, 0x58]);
        frame[14 + 8] = 63;
        assert!(
            GrePacket::parse(&frame).is_err(),
            "TTL changed, checksum not"
        );
        assert!(GrePacket::parse(&ipv4_frame(&[0x30, 0, 0x65, 0x58, 0, 0])).is_err());
        assert!(GrePacket::parse(&frame[..20]).is_err());
    }

    #[test]
    fn checksum_of_rfc1071_example() {
        // RFC 1071 section 3: the sum of 0001 f203 f4f5 f6f7 is ddf2 (checksum 220d).
        assert_eq!(
            internet_checksum(&[&[0x00, 0x01, 0xf2], &[0x03, 0xf4, 0xf5, 0xf6, 0xf7]]),
            0x220d
        );
    }

    #[test]
    fn macs_round_trip() {
        let mac = parse_mac("0a:1b:2c:3d:4e:5f").unwrap();
        assert_eq!(format_mac(&mac), "0a:1b:2c:3d:4e:5f");
        assert!(parse_mac("0a:1b").is_err());
    }
}
