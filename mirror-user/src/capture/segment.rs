//! A TCP super-frame (GSO) from the classifiers' ring buffer, cut into the segments the wire
//! carries, as the kernel's TCP segmentation cuts it: the headers repeated in front of each
//! `mss` bytes of payload; the IP length (and the IPv4 identification, one more per segment),
//! the sequence number and the flags patched (FIN and PSH on the last segment only, CWR on the
//! first only); the IPv4 header and TCP checksums computed in full, as a NIC finishes them.
use crate::{gather::PutFrame, wire::checksum};

/// Where the headers of an Ethernet + IPv4/IPv6 + TCP frame are.
#[derive(Clone, Copy)]
struct Layout {
    /// Start of the IP header (after Ethernet and an in-band VLAN tag).
    ip: usize,
    ipv6: bool,
    /// Start of the TCP header and of the payload.
    tcp: usize,
    payload: usize,
}

impl Layout {
    fn of(frame: &[u8]) -> Option<Self> {
        let mut ip = 14;
        let mut ethertype = u16::from_be_bytes(*frame.get(12..)?.first_chunk()?);
        if matches!(ethertype, 0x8100 | 0x88a8) {
            ethertype = u16::from_be_bytes(*frame.get(16..)?.first_chunk()?);
            ip += 4;
        }
        let (ipv6, tcp) = match ethertype {
            0x0800 if *frame.get(ip + 9)? == TCP => {
                (false, ip + usize::from(frame.get(ip)? & 0xf) * 4)
            }
            0x86dd if *frame.get(ip + 6)? == TCP => (true, ip + 40),
            _ => return None,
        };
        let payload = tcp + usize::from(frame.get(tcp + 12)? >> 4) * 4;
        (payload <= frame.len() && tcp >= ip + 20 && payload >= tcp + 20).then_some(Self {
            ip,
            ipv6,
            tcp,
            payload,
        })
    }
}

const TCP: u8 = 6;
const FIN: u8 = 0x01;
const PSH: u8 = 0x08;
const CWR: u8 = 0x80;

/// Puts the segments of `frame`, each behind `tag` (and with `vlan`, an 802.1Q tag, put back
/// after the MAC addresses), into `store`; `false`, with nothing put, if `frame` is not
/// Ethernet + IP + TCP with more than `mss` bytes of payload.
pub fn segment_into(
    tag: &[u8],
    (frame, vlan): (&[u8], Option<[u8; 4]>),
    mss: usize,
    store: &mut impl PutFrame,
) -> bool {
    let Some(mut layout) = Layout::of(frame) else {
        return false;
    };
    let (headers, payload) = frame.split_at(layout.payload);
    if mss == 0 || payload.len() <= mss {
        return false;
    }
    let (macs, rest) = headers.split_at(12);
    let vlan = vlan.as_ref().map_or(&[][..], |v| &v[..]);
    layout.ip += vlan.len();
    layout.tcp += vlan.len();
    let count = payload.len().div_ceil(mss);
    for (k, piece) in payload.chunks(mss).enumerate() {
        let put = store.put_frame(&[tag, macs, vlan, rest, piece]);
        if let Some(segment) = put.get_mut(tag.len()..) {
            patch(segment, layout, (k, count), k * mss);
        }
    }
    true
}

/// Patches segment `k` of `count`, whose payload starts at byte `offset` of the super-frame's.
fn patch(segment: &mut [u8], layout: Layout, (k, count): (usize, usize), offset: usize) {
    let Some((head, tcp)) = segment.split_at_mut_checked(layout.tcp) else {
        return;
    };
    let Some(ip) = head.get_mut(layout.ip..) else {
        return;
    };
    let tcp_len = tcp.len();
    let pseudo = if layout.ipv6 {
        let Some(fixed) = ip.first_chunk_mut::<40>() else {
            return;
        };
        fixed[4..6].copy_from_slice(&(tcp_len as u16).to_be_bytes());
        checksum::add(
            checksum::sum(&fixed[8..40]),
            u64::from(TCP) + tcp_len as u64,
        )
    } else {
        let ip_len = ip.len();
        let Some(fixed) = ip.first_chunk_mut::<20>() else {
            return;
        };
        fixed[2..4].copy_from_slice(&((ip_len + tcp_len) as u16).to_be_bytes());
        let id = u16::from_be_bytes([fixed[4], fixed[5]]).wrapping_add(k as u16);
        fixed[4..6].copy_from_slice(&id.to_be_bytes());
        fixed[10..12].copy_from_slice(&[0, 0]);
        let pseudo = checksum::add(
            checksum::sum(&fixed[12..20]),
            u64::from(TCP) + tcp_len as u64,
        );
        // Over the whole header, options included.
        let sum = checksum::complement(checksum::sum(ip));
        if let Some(fixed) = ip.first_chunk_mut::<20>() {
            fixed[10..12].copy_from_slice(&sum.to_be_bytes());
        }
        pseudo
    };
    let Some(fixed) = tcp.first_chunk_mut::<20>() else {
        return;
    };
    let seq = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
    fixed[4..8].copy_from_slice(&seq.wrapping_add(offset as u32).to_be_bytes());
    if k + 1 < count {
        fixed[13] &= !(FIN | PSH);
    }
    if k > 0 {
        fixed[13] &= !CWR;
    }
    fixed[16..18].copy_from_slice(&[0, 0]);
    let sum = checksum::complement(checksum::add(pseudo, checksum::sum(tcp)));
    if let Some(fixed) = tcp.first_chunk_mut::<20>() {
        fixed[16..18].copy_from_slice(&sum.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};

    use super::*;
    use crate::gather::{Gather, Listed};

    fn super_frame(ipv6: bool, payload: &[u8]) -> Vec<u8> {
        let eth = PacketBuilder::ethernet2([2; 6], [4; 6]);
        let ip = if ipv6 {
            eth.ipv6([0xfd; 16], [0xfe; 16], 64)
        } else {
            eth.ipv4([198, 18, 0, 1], [198, 18, 0, 2], 64)
        };
        let tcp = ip
            .tcp(40000, 5201, 1_000_000, 64000)
            .ack(77)
            .psh()
            .fin()
            .cwr();
        let mut frame = Vec::new();
        tcp.write(&mut frame, payload).unwrap();
        frame
    }

    fn check(ipv6: bool) {
        let payload: Vec<u8> = (0..4000u32)
            .map(|i| u8::try_from(i % 249).unwrap())
            .collect();
        let frame = super_frame(ipv6, &payload);
        let mut gather = Gather::default();
        let mut frames = Vec::new();
        assert!(segment_into(
            &[9; 16],
            (&frame, None),
            1448,
            &mut Listed {
                gather: &mut gather,
                frames: &mut frames
            }
        ));
        assert_eq!(frames.len(), 3);
        let mut joined = Vec::new();
        for (k, &index) in frames.iter().enumerate() {
            let bytes = gather.frame(index);
            assert_eq!(&bytes[..16], &[9; 16]);
            let packet = SlicedPacket::from_ethernet(&bytes[16..]).unwrap();
            let Some(TransportSlice::Tcp(tcp)) = packet.transport else {
                panic!("segment {k} is no TCP");
            };
            assert_eq!(tcp.sequence_number(), 1_000_000 + 1448 * k as u32);
            assert_eq!(tcp.fin(), k == 2, "FIN on the last only");
            assert_eq!(tcp.psh(), k == 2, "PSH on the last only");
            assert_eq!(tcp.cwr(), k == 0, "CWR on the first only");
            assert!(tcp.ack());
            let net = packet.net.unwrap();
            let expected = match &net {
                etherparse::NetSlice::Ipv4(v4) => {
                    let header = v4.header();
                    assert_eq!(usize::from(header.total_len()), bytes.len() - 16 - 14);
                    assert_eq!(
                        header.to_header().calc_header_checksum(),
                        header.header_checksum()
                    );
                    tcp.to_header()
                        .calc_checksum_ipv4_raw(
                            header.source(),
                            header.destination(),
                            tcp.payload(),
                        )
                        .unwrap()
                }
                etherparse::NetSlice::Ipv6(v6) => {
                    let header = v6.header();
                    assert_eq!(
                        usize::from(header.payload_length()),
                        bytes.len() - 16 - 14 - 40
                    );
                    tcp.to_header()
                        .calc_checksum_ipv6_raw(
                            header.source(),
                            header.destination(),
                            tcp.payload(),
                        )
                        .unwrap()
                }
                etherparse::NetSlice::Arp(_) => unreachable!(),
            };
            assert_eq!(tcp.checksum(), expected, "segment {k}'s TCP checksum");
            joined.extend_from_slice(tcp.payload());
        }
        assert_eq!(joined, payload);
    }

    #[test]
    fn ipv4_super_frame_becomes_its_segments() {
        check(false);
    }

    #[test]
    fn ipv6_super_frame_becomes_its_segments() {
        check(true);
    }

    #[test]
    fn not_tcp_or_not_longer_than_a_segment_is_left_alone() {
        let mut gather = Gather::default();
        let mut frames = Vec::new();
        let short = super_frame(false, &[1; 100]);
        assert!(!segment_into(
            &[0; 16],
            (&short, None),
            1448,
            &mut Listed {
                gather: &mut gather,
                frames: &mut frames
            }
        ));
        let mut udp = Vec::new();
        PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([1, 1, 1, 1], [2, 2, 2, 2], 64)
            .udp(1, 2)
            .write(&mut udp, &[0; 3000])
            .unwrap();
        assert!(!segment_into(
            &[0; 16],
            (&udp, None),
            1448,
            &mut Listed {
                gather: &mut gather,
                frames: &mut frames
            }
        ));
        assert!(frames.is_empty());
    }
}
