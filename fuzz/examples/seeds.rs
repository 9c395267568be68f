//! Writes the seed corpora under `fuzz/corpus/<target>/`: frames and headers written by the
//! mirror's own encoders (the golden bytes of its unit tests come from the same code), small
//! capture files, and packet-agent configurations. Each seed is laid out as its target's
//! documentation says.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --example seeds` (any toolchain); the files it
//! writes are committed, so run it only when a target's input layout changes.

use std::{
    borrow::Cow,
    fs,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
    time::Duration,
};

use etherparse::{PacketBuilder, VlanId};
use mirror::tunnel::{CopyMeta, Encap, Granularity, MAX_HEADER_LEN, Tunnel};
use mirror_common::{Direction, Tag, mark_for};
use pcap_file::{
    DataLink, Endianness, TsResolution,
    pcap::{PcapHeader, PcapPacket, PcapWriter},
    pcapng::{
        PcapNgWriter,
        blocks::{
            enhanced_packet::EnhancedPacketBlock,
            interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption},
            simple_packet::SimplePacketBlock,
        },
    },
};

const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];
const IP_A: [u8; 4] = [192, 168, 1, 1];
const IP_B: [u8; 4] = [192, 168, 1, 2];
const IP6_A: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const IP6_B: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
/// 2023-11-14T22:13:20.123456789Z.
const NS: u64 = 1_700_000_000_123_456_789;

fn main() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    vxlan(&Seeds::new(&corpus, "vxlan"));
    gre(&Seeds::new(&corpus, "gre"));
    erspan(&Seeds::new(&corpus, "erspan"));
    inner_classify(&Seeds::new(&corpus, "inner_classify"));
    replay_link(&Seeds::new(&corpus, "replay_link"));
    replay_reader(&Seeds::new(&corpus, "replay_reader"));
    pktminerg_json(&Seeds::new(&corpus, "pktminerg_json"));
    pktminerg_config(&Seeds::new(&corpus, "pktminerg_config"));
    config_file(&Seeds::new(&corpus, "config_file"));
}

/// One target's seed directory. Files of other origins there (captures written by tcpdump)
/// are left alone.
struct Seeds(PathBuf);

impl Seeds {
    fn new(corpus: &Path, target: &str) -> Self {
        let dir = corpus.join(target);
        fs::create_dir_all(&dir).unwrap();
        Seeds(dir)
    }

    fn write(&self, name: &str, parts: &[&[u8]]) {
        fs::write(self.0.join(name), parts.concat()).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Frames
// ---------------------------------------------------------------------------------------------

fn udp_frame(payload_len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(IP_A, IP_B, 64)
        .udp(5000, 6000)
        .write(&mut out, &vec![0xab; payload_len])
        .unwrap();
    out
}

fn tagged_frame(vid: u16, pcp: u8) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .single_vlan(VlanId::try_new(vid).unwrap())
        .ipv4(IP_A, IP_B, 64)
        .udp(5000, 6000)
        .write(&mut out, &[0xcd; 8])
        .unwrap();
    out[14] |= pcp << 5;
    out
}

fn qinq_frame() -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .double_vlan(VlanId::try_new(100).unwrap(), VlanId::try_new(200).unwrap())
        .ipv4(IP_A, IP_B, 64)
        .tcp(40000, 443, 7, 1024)
        .ack(1)
        .write(&mut out, b"qinq")
        .unwrap();
    out
}

fn tcp_frame(fin: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let builder = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(IP_A, IP_B, 64)
        .tcp(40000, 443, 1, 1024)
        .syn();
    let builder = if fin { builder.fin() } else { builder };
    builder.write(&mut out, b"hello").unwrap();
    out
}

fn icmp_frame() -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(IP_A, IP_B, 64)
        .icmpv4_echo_request(1, 2)
        .write(&mut out, b"ping")
        .unwrap();
    out
}

fn ipv6_frame() -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv6(IP6_A, IP6_B, 64)
        .udp(5353, 53)
        .write(&mut out, b"v6")
        .unwrap();
    out
}

/// A later IPv4 fragment (offset 8 units): no transport header.
fn fragment_frame() -> Vec<u8> {
    let mut frame = udp_frame(16);
    frame[14 + 6..14 + 8].copy_from_slice(&0x0001_u16.to_be_bytes());
    frame
}

fn arp_frame() -> Vec<u8> {
    let mut frame = [[0xff; 6], MAC_A].concat();
    frame.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    frame.extend_from_slice(&MAC_A);
    frame.extend_from_slice(&IP_A);
    frame.extend_from_slice(&[0; 6]);
    frame.extend_from_slice(&IP_B);
    frame
}

fn frames() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("udp", udp_frame(18)),
        ("tcp", tcp_frame(false)),
        ("tcp-fin", tcp_frame(true)),
        ("icmp", icmp_frame()),
        ("ipv6", ipv6_frame()),
        ("vlan", tagged_frame(42, 5)),
        ("qinq", qinq_frame()),
        ("fragment", fragment_frame()),
        ("arp", arp_frame()),
    ]
}

// ---------------------------------------------------------------------------------------------
// Tunnels
// ---------------------------------------------------------------------------------------------

/// The `addresses()` bytes of the targets and the addresses they mean.
fn family(v6: bool) -> (Vec<u8>, IpAddr, IpAddr) {
    if v6 {
        let (src, dst) = (1_u64, 2_u64);
        let bytes = [&[1][..], &src.to_be_bytes(), &dst.to_be_bytes()].concat();
        let dst = Ipv6Addr::from(u128::from(dst) | 1 << 127);
        (bytes, Ipv6Addr::from(u128::from(src)).into(), dst.into())
    } else {
        let (src, dst) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        let bytes = [&[0][..], &src.octets(), &dst.octets()].concat();
        (bytes, src.into(), dst.into())
    }
}

/// The outer IP payload of `inner` in `tunnel` (the UDP payload for VXLAN), and the whole
/// packet.
fn encapsulated(tunnel: &Tunnel, v6: bool, inner: &[u8], meta: &CopyMeta) -> (Vec<u8>, Vec<u8>) {
    let (_, src, dst) = family(v6);
    let mut encap = Encap::new(tunnel, src, dst).unwrap();
    let mut header = [0; MAX_HEADER_LEN];
    let len = encap.write_header(inner, meta, &mut header);
    let packet = [&header[..len], inner].concat();
    let ip = if v6 { 40 } else { 20 };
    let udp = if matches!(tunnel, Tunnel::Vxlan { .. }) {
        8
    } else {
        0
    };
    (packet[ip + udp..].to_vec(), packet)
}

fn vxlan(seeds: &Seeds) {
    let tunnel = Tunnel::Vxlan {
        vni: mirror::wire::vxlan::Vni::new(0x12_3456).unwrap(),
        dst_port: 4789,
    };
    let meta = CopyMeta::default();
    for v6 in [false, true] {
        let (payload, _) = encapsulated(&tunnel, v6, &udp_frame(18), &meta);
        seeds.write(&format!("receive-v6-{v6}"), &[&[0], &[0; 4], &payload]);
        let filter = (0x8000_0000_u32 | 0x12_3456).to_be_bytes();
        seeds.write(
            &format!("receive-filtered-v6-{v6}"),
            &[&[0], &filter, &payload],
        );
    }
    for (name, frame) in [("udp", udp_frame(18)), ("vlan", tagged_frame(42, 5))] {
        for v6 in [false, true] {
            let (addresses, _, _) = family(v6);
            let options = [&0x12_3456_u32.to_be_bytes()[..], &8472_u16.to_be_bytes()].concat();
            seeds.write(
                &format!("send-{name}-v6-{v6}"),
                &[&[1], &options, &addresses, &frame],
            );
        }
    }
}

fn gre(seeds: &Seeds) {
    let meta = CopyMeta::default();
    let inner = udp_frame(18);
    let tunnels = [
        (
            "gre",
            0_u8,
            Tunnel::Gre {
                key: None,
                sequence: false,
            },
        ),
        (
            "gre-key-seq",
            1,
            Tunnel::Gre {
                key: Some(0xdead_beef),
                sequence: true,
            },
        ),
        ("erspan1", 2, Tunnel::Erspan1),
    ];
    for (name, accept, tunnel) in tunnels {
        let key = 0xdead_beef_u32.to_be_bytes();
        let (payload, packet) = encapsulated(&tunnel, false, &inner, &meta);
        seeds.write(&format!("receive-{name}"), &[&[0, accept], &key, &payload]);
        // Over IPv4 the raw socket delivers the IP header too.
        seeds.write(
            &format!("receive-{name}-ipv4"),
            &[&[0, accept | 4], &key, &packet],
        );
        let sequence = if let Tunnel::Gre { sequence: true, .. } = tunnel {
            4
        } else {
            0
        };
        for v6 in [false, true] {
            let (addresses, _, _) = family(v6);
            let options = accept | sequence | 0x40;
            seeds.write(
                &format!("send-{name}-v6-{v6}"),
                &[&[1, options], &key, &addresses, &inner],
            );
        }
    }
    // The unit tests' golden header with C, K and S: a checksum over header and payload.
    let header = [
        0xb0, 0x00, 0x65, 0x58, 0, 0, 0, 0, 0x01, 0x02, 0x03, 0x04, 0xa0, 0xb0, 0xc0, 0xd0,
    ];
    let mut packet = [&header[..], &inner].concat();
    let mut view = mirror::wire::gre::Packet::new_unchecked(&mut packet[..]);
    view.fill_checksum(&[]);
    seeds.write("receive-gre-checksum", &[&[0, 0], &[0; 4], &packet]);
}

fn erspan(seeds: &Seeds) {
    let meta = CopyMeta {
        egress: true,
        timestamp_ns: NS,
        truncated: true,
    };
    let received = (NS + 1_000_000).to_be_bytes();
    let tunnels = [
        (
            "erspan2",
            2_u8,
            Tunnel::Erspan2 {
                session: 0x2d5,
                index: 0xa_bcde,
            },
        ),
        (
            "erspan3-100us",
            3,
            Tunnel::Erspan3 {
                session: 0x1a5,
                hw_id: 0x2b,
                sgt: 0xcafe,
                granularity: Granularity::Micros100,
            },
        ),
        (
            "erspan3-ns",
            3,
            Tunnel::Erspan3 {
                session: 0x1a5,
                hw_id: 0x2b,
                sgt: 0xcafe,
                granularity: Granularity::Ieee1588,
            },
        ),
    ];
    for (name, accept, tunnel) in tunnels {
        for (frame_name, inner) in [("udp", udp_frame(18)), ("vlan", tagged_frame(100, 3))] {
            let (payload, _) = encapsulated(&tunnel, false, &inner, &meta);
            seeds.write(
                &format!("receive-{name}-{frame_name}"),
                &[&[0, accept], &received, &payload],
            );
            // The bare ERSPAN header, after the GRE header (8 bytes with the sequence number).
            seeds.write(
                &format!("bare-{name}-{frame_name}"),
                &[&[0, accept - 2], &received, &payload[8..]],
            );
        }
    }
    for (v6, granularity) in [(false, 0_u8), (true, 1), (false, 2)] {
        let (addresses, _, _) = family(v6);
        for (name, type_bit) in [("erspan2", 0_u8), ("erspan3", 1)] {
            let options = type_bit | 4 | 8 | granularity << 4;
            let fields = [
                &0x1a5_u16.to_be_bytes()[..],
                &0xa_bcde_u32.to_be_bytes(),
                &[0x2b],
                &0xcafe_u16.to_be_bytes(),
                &NS.to_be_bytes(),
            ]
            .concat();
            seeds.write(
                &format!("send-{name}-gra{granularity}-v6-{v6}"),
                &[&[1, options], &fields, &addresses, &tagged_frame(100, 3)],
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Capture path
// ---------------------------------------------------------------------------------------------

/// What the AF_XDP ring holds for `frame`: the kernel's tag, then the frame.
fn tagged(ifindex: u32, direction: Direction, ktime_ns: u64, frame: &[u8]) -> Vec<u8> {
    let tag = Tag::from_mark(mark_for(ifindex, direction, false), ktime_ns).unwrap();
    [&tag.to_bytes()[..], frame].concat()
}

fn inner_classify(seeds: &Seeds) {
    let mut all = vec![4_u8];
    for (i, (name, frame)) in frames().into_iter().enumerate() {
        let direction = if i % 2 == 0 {
            Direction::Ingress
        } else {
            Direction::Egress
        };
        let copy = tagged(7, direction, 1_000 * i as u64, &frame);
        let record = [&(copy.len() as u16).to_be_bytes()[..], &copy].concat();
        seeds.write(name, &[&[1], &record]);
        all.extend_from_slice(&record);
    }
    seeds.write("all", &[&all]);
}

fn replay_link(seeds: &Seeds) {
    let ip = &udp_frame(18)[14..];
    let ip6 = &ipv6_frame()[14..];
    // LINKTYPE_LINUX_SLL: packet type (1 broadcast), ARPHRD_ETHER, address length 6, address,
    // protocol.
    let sll = [&[0, 1, 0, 1, 0, 6][..], &MAC_A, &[0, 0], &[0x08, 0x00], ip].concat();
    // LINKTYPE_LINUX_SLL2: protocol, reserved, ifindex, ARPHRD_ETHER, packet type, address
    // length, address.
    let sll2 = [
        &[0x86, 0xdd, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6][..],
        &MAC_A,
        &[0, 0],
        ip6,
    ]
    .concat();
    // SLL with ETH_P_802_2: an 802.3 frame with its length.
    let llc = [
        &[0, 4, 0, 1, 0, 6][..],
        &MAC_A,
        &[0, 0],
        &[0, 4],
        &[0x42, 0x42, 3, 0],
    ]
    .concat();
    for (name, selector, packet) in [
        ("ethernet", 0_u16, udp_frame(18)),
        ("sll", 1, sll),
        ("sll-llc", 1, llc),
        ("sll2", 2, sll2),
        ("raw-ipv4", 3, ip.to_vec()),
        ("raw-ipv6", 3, ip6.to_vec()),
        ("ipv4", 6, ip.to_vec()),
        ("ipv6", 7, ip6.to_vec()),
    ] {
        seeds.write(name, &[&selector.to_be_bytes(), &packet]);
    }
    // The link types that carry IP behind a header of their own; the selector is the index in
    // the target's list (the top bit: a big-endian file).
    for (name, selector, packet) in ip_links(ip, ip6) {
        seeds.write(name, &[&selector.to_be_bytes(), &packet]);
    }
}

/// One packet of each link type that carries IP behind a header of its own, with the
/// `replay_link` selector of its link type.
fn ip_links(ip: &[u8], ip6: &[u8]) -> Vec<(&'static str, u16, Vec<u8>)> {
    let mut pflog = [0; 64];
    pflog[0] = 61;
    pflog[1] = 2;
    let mut pktap = [0; 108];
    pktap[..4].copy_from_slice(&108_u32.to_le_bytes());
    pktap[4..8].copy_from_slice(&1_u32.to_le_bytes());
    pktap[8..12].copy_from_slice(&12_u32.to_le_bytes());
    let mut ipnet = [0; 24];
    ipnet[0] = 1;
    ipnet[1] = 26;
    // 802.11 QoS data from the AP (From DS): destination, BSSID, source; sequence and QoS
    // control; LLC/SNAP with the IPv4 EtherType.
    let wifi = [
        &[0x88, 0x02, 0, 0][..],
        &MAC_A,
        &[2, 0, 0, 0, 0, 0xa0],
        &MAC_B,
        &[0x10, 0, 5, 0],
        &[0xaa, 0xaa, 3, 0, 0, 0, 0x08, 0x00],
        ip,
    ]
    .concat();
    // Radiotap: version, pad, length 17, present (TSFT, Flags), TSFT, Flags (FCS at the end).
    let radiotap = [
        &[0, 0, 17, 0][..],
        &3_u32.to_le_bytes(),
        &[0x11; 8],
        &[0x10],
    ]
    .concat();
    let nflog = |big_endian: bool| {
        let word = |v: u16| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        [
            &[2, 0, 0, 5][..],
            &word(8),
            &word(10),
            b"pre\0",
            &word(4 + ip.len() as u16),
            &word(9),
            ip,
        ]
        .concat()
    };
    vec![
        ("null", 8, [&2_u32.to_le_bytes()[..], ip].concat()),
        ("null-ipv6-be", 8, [&30_u32.to_be_bytes()[..], ip6].concat()),
        ("loop", 9, [&2_u32.to_be_bytes()[..], ip].concat()),
        ("enc", 10, [&2_u32.to_le_bytes()[..], &[0; 8], ip].concat()),
        ("pflog", 11, [&pflog[..], ip].concat()),
        ("ppp", 12, [&[0xff, 0x03, 0x00, 0x21][..], ip].concat()),
        ("ppp-compressed", 12, [&[0x57][..], ip6].concat()),
        (
            "ppp-hdlc-cisco",
            13,
            [&[0x8f, 0x00, 0x08, 0x00][..], ip].concat(),
        ),
        (
            "cisco-hdlc",
            14,
            [&[0x0f, 0x00, 0x86, 0xdd][..], ip6].concat(),
        ),
        ("slip", 15, [&[0; 16][..], ip].concat()),
        ("nflog-le", 16, nflog(false)),
        ("nflog-be", 16 | 0x8000, nflog(true)),
        ("pktap", 17, [&pktap[..], ip].concat()),
        ("ipnet", 18, [&ipnet[..], ip6].concat()),
        (
            "juniper-ether",
            19,
            [&b"MGC\x81"[..], &[0, 2, 1, 0], &udp_frame(18)].concat(),
        ),
        ("juniper-no-l2", 19, [&b"MGC\x03"[..], &[0; 4], ip].concat()),
        ("ieee80211-qos-from-ds", 20, wifi.clone()),
        (
            "radiotap-fcs",
            21,
            [&radiotap[..], &wifi, &[0xde, 0xad, 0xbe, 0xef]].concat(),
        ),
    ]
}

fn pcap(
    datalink: DataLink,
    resolution: TsResolution,
    endianness: Endianness,
    packets: &[Vec<u8>],
) -> Vec<u8> {
    let header = PcapHeader {
        datalink,
        ts_resolution: resolution,
        endianness,
        snaplen: 96,
        ..PcapHeader::default()
    };
    let mut writer = PcapWriter::with_header(Vec::new(), header).unwrap();
    for (i, data) in packets.iter().enumerate() {
        let ts = Duration::from_nanos(NS + i as u64 * 1_000_123);
        let original = data.len() as u32 + if i == 1 { 100 } else { 0 };
        writer
            .write_packet(&PcapPacket::new(ts, original, data))
            .unwrap();
    }
    writer.into_writer()
}

fn pcapng(
    endianness: Endianness,
    tsresol: Option<u8>,
    datalink: DataLink,
    packets: &[Vec<u8>],
) -> Vec<u8> {
    let mut writer = PcapNgWriter::with_endianness(Vec::new(), endianness).unwrap();
    writer
        .write_pcapng_block(InterfaceDescriptionBlock {
            linktype: datalink,
            snaplen: 0xffff,
            options: tsresol
                .map(InterfaceDescriptionOption::IfTsResol)
                .into_iter()
                .collect(),
        })
        .unwrap();
    for (i, data) in packets.iter().enumerate() {
        if i == 2 {
            writer
                .write_pcapng_block(SimplePacketBlock {
                    original_len: data.len() as u32,
                    data: Cow::Borrowed(data),
                })
                .unwrap();
        } else {
            writer
                .write_pcapng_block(EnhancedPacketBlock {
                    interface_id: 0,
                    timestamp: Duration::from_nanos(NS / 1000 + i as u64),
                    original_len: data.len() as u32,
                    data: Cow::Borrowed(data),
                    options: vec![],
                })
                .unwrap();
        }
    }
    writer.into_inner()
}

fn replay_reader(seeds: &Seeds) {
    let ethernet = vec![udp_frame(8), tagged_frame(42, 5), ipv6_frame()];
    let raw: Vec<Vec<u8>> = [udp_frame(8), tcp_frame(false), ipv6_frame()]
        .iter()
        .map(|f| f[14..].to_vec())
        .collect();
    let le = Endianness::Little;
    let be = Endianness::Big;
    let micro = TsResolution::MicroSecond;
    let nano = TsResolution::NanoSecond;
    seeds.write(
        "ethernet-us-le.pcap",
        &[&pcap(DataLink::ETHERNET, micro, le, &ethernet)],
    );
    seeds.write(
        "ethernet-ns-be.pcap",
        &[&pcap(DataLink::ETHERNET, nano, be, &ethernet)],
    );
    seeds.write("raw.pcap", &[&pcap(DataLink::RAW, micro, le, &raw)]);
    let sll: Vec<Vec<u8>> = raw
        .iter()
        .map(|ip| {
            let protocol: &[u8] = if ip[0] >> 4 == 6 {
                &[0x86, 0xdd]
            } else {
                &[0x08, 0x00]
            };
            [&[0, 0, 0, 1, 0, 6][..], &MAC_A, &[0, 0], protocol, ip].concat()
        })
        .collect();
    seeds.write("sll.pcap", &[&pcap(DataLink::LINUX_SLL, micro, le, &sll)]);
    seeds.write(
        "ethernet-le.pcapng",
        &[&pcapng(le, None, DataLink::ETHERNET, &ethernet)],
    );
    seeds.write(
        "ethernet-ns-be.pcapng",
        &[&pcapng(be, Some(9), DataLink::ETHERNET, &ethernet)],
    );
    seeds.write(
        "ipv4.pcapng",
        &[&pcapng(le, Some(6), DataLink::IPV4, &raw[..2])],
    );
    // Two sections, the second with its own interface.
    let two = [
        pcapng(le, None, DataLink::ETHERNET, &ethernet[..1]),
        pcapng(be, Some(3), DataLink::RAW, &raw[1..]),
    ]
    .concat();
    seeds.write("two-sections.pcapng", &[&two]);
    // A pcap of each link type that carries IP behind a header of its own.
    let ip = &udp_frame(8)[14..];
    let ip6 = &ipv6_frame()[14..];
    for (name, selector, packet) in ip_links(ip, ip6) {
        if selector & 0x8000 != 0 {
            continue;
        }
        let linktype = [
            0, 108, 109, 117, 9, 50, 104, 8, 239, 258, 226, 178, 105, 127,
        ][usize::from(selector) - 8];
        // Little-endian, as the NFLOG TLVs are.
        let header = PcapHeader {
            datalink: DataLink::from(linktype),
            endianness: le,
            ..PcapHeader::default()
        };
        let mut writer = PcapWriter::with_header(Vec::new(), header).unwrap();
        let ts = Duration::from_nanos(NS);
        writer
            .write_packet(&PcapPacket::new(ts, packet.len() as u32, &packet))
            .unwrap();
        seeds.write(&format!("{name}.pcap"), &[&writer.into_writer()]);
    }
    seeds.write("odd-section-options.pcapng", &[&odd_options(&ethernet)]);
}

/// A little-endian pcapng file of Ethernet `frames` whose option lists end without
/// `opt_endofopt` and hold options that libpcap and Wireshark read past: a section header with
/// a hardware description that is not UTF-8, custom options and an unknown code of odd length.
fn odd_options(frames: &[Vec<u8>]) -> Vec<u8> {
    let option = |code: u16, value: &[u8]| {
        let mut out = [
            &code.to_le_bytes()[..],
            &(value.len() as u16).to_le_bytes(),
            value,
        ]
        .concat();
        out.resize(4 + value.len().next_multiple_of(4), 0);
        out
    };
    let block = |kind: u32, body: &[u8]| {
        let len = (12 + body.len().next_multiple_of(4)) as u32;
        let mut out = [&kind.to_le_bytes()[..], &len.to_le_bytes(), body].concat();
        out.resize(len as usize - 4, 0);
        out.extend_from_slice(&len.to_le_bytes());
        out
    };
    let shb = [
        &0x1A2B_3C4D_u32.to_le_bytes()[..],
        &1_u16.to_le_bytes(),
        &0_u16.to_le_bytes(),
        &[0xff; 8],
        &option(2, b"\xa9 card"),
        &option(3, b"Linux"),
        &option(2988, b"\0\0\x7f\xd9text"),
        &option(19373, &[0, 0, 0x7f, 0xd9, 1]),
        &option(0x7777, b"odd"),
    ]
    .concat();
    let idb = [
        &1_u16.to_le_bytes()[..],
        &[0, 0],
        &0xffff_u32.to_le_bytes(),
        &option(9, &[9]),
    ]
    .concat();
    let mut out = [block(0x0A0D_0D0A, &shb), block(1, &idb)].concat();
    for (i, frame) in frames.iter().enumerate() {
        let ts = NS + i as u64;
        let mut epb = [
            &0_u32.to_le_bytes()[..],
            &((ts >> 32) as u32).to_le_bytes(),
            &(ts as u32).to_le_bytes(),
            &(frame.len() as u32).to_le_bytes(),
            &(frame.len() as u32).to_le_bytes(),
            frame,
        ]
        .concat();
        epb.resize(epb.len().next_multiple_of(4), 0);
        epb.extend_from_slice(&option(1, b"seen"));
        out.extend_from_slice(&block(6, &epb));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// packet-agent
// ---------------------------------------------------------------------------------------------

/// packet-agent's documented configurations (addresses changed to test ranges) and the shapes
/// of the unit tests.
const PROTO_CONFIGS: [(&str, &str); 6] = [
    (
        "flannel-vxlan",
        r#"{
    "ext_file_path": "libproto_vxlan.so",
    "ext_params": {
        "remoteips": [
            "198.18.0.2"
        ],
        "bind_device": "eth0",
        "pmtudisc_option": "dont",
        "use_default_header": false,
        "vni": 3310
    }
}"#,
    ),
    (
        "gre",
        r#"{"ext_file_path": "/usr/lib/libproto_gre.so", "ext_params": {"remoteips": ["198.18.0.2", "fd00:198:18::2"], "enable_key": true, "key": 7, "enable_sequence": "1", "sequence_begin": 0}}"#,
    ),
    (
        "erspan1",
        r#"{"ext_file_path": "libproto_erspan_type1.so", "ext_params": {"remoteips": ["198.18.0.2"], "pmtudisc_option": "do"}}"#,
    ),
    (
        "erspan2",
        r#"{"ext_file_path": "libproto_erspan_type2.so", "ext_params": {"use_default_header": false, "enable_spanid": true, "spanid": 1023, "enable_vlan": true, "vlan": 0}}"#,
    ),
    (
        "erspan3",
        r#"{"ext_file_path": "libproto_erspan_type3.so", "ext_params": {"remoteips": ["198.18.0.2"], "enable_spanid": 1, "spanid": "5", "enable_timestamp": true, "timestamp_type": 0, "enable_security_grp_tag": true, "security_grp_tag": 65535, "enable_hw_id": true, "hw_id": 63}}"#,
    ),
    (
        "vxlan-default",
        r#"{"ext_file_path": "libproto_vxlan.so", "ext_params": {"use_default_header": true}}"#,
    ),
];

const MONITOR_CONFIG: &str = r#"{
    "ext_file_path": "libmonitor_netflow.so",
    "ext_params": {
        "collectors_ipport": [
            {
                "ip": "198.18.0.3",
                "port": 2055
            },
            {
                "port": 2055
            },
            {"ip": "fd00:198:18::3", "port": "9995"}
        ],
        "interface": "eth0",
        "netflow_version": 5
    }
}"#;

fn pktminerg_json(seeds: &Seeds) {
    for (name, text) in PROTO_CONFIGS {
        seeds.write(&format!("{name}.json"), &[text.as_bytes()]);
    }
    seeds.write("netflow.json", &[MONITOR_CONFIG.as_bytes()]);
    seeds.write(
        "scalars.json",
        &[br#"[null, true, false, -0.5e+3, 0, 1E9, {"a": {}}, []]"#],
    );
    seeds.write(
        "escapes.json",
        &["\"a\\\"b\\\\c\\/d\\n\\t\\u00e9\\ud83d\\ude00\u{e9}\"".as_bytes()],
    );
    seeds.write("duplicates.json", &[br#"{"vni": 1, "vni": "2"}"#]);
}

fn pktminerg_config(seeds: &Seeds) {
    for (name, text) in PROTO_CONFIGS {
        seeds.write(name, &[text.as_bytes()]);
        seeds.write(
            &format!("{name}-netflow"),
            &[text.as_bytes(), &[0], MONITOR_CONFIG.as_bytes()],
        );
    }
}

// ---------------------------------------------------------------------------------------------
// --config FILE
// ---------------------------------------------------------------------------------------------

/// The choices byte of the target: bit 0 YAML, bit 1 `replay`, bit 2 a `--remote` on the
/// command line.
fn config_file(seeds: &Seeds) {
    let run_toml = r#"
iface = ["vethpod", "eth1"]
remote = ["198.18.0.2", "198.18.0.3:8472"]
tunnel = "vxlan"
vni = 42
vxlan-port = 8472
direction = "ingress"
netflow = ["198.18.0.4:2055"]
"#;
    let run_yaml = "
# Every option of `mirror run`, by its long name.
pod:
  - default/coffee
remote:
  - 198.18.0.2
  - '[fd00:198:18::2]:4789'
tunnel: vxlan
vni: 1
gre-seq: false
";
    let gre_toml = "tunnel = \"gre\"\ngre-key = 7\ngre-seq = true\niface = \"a\"\n";
    let replay_yaml = "pcap: pod1.pcap\nloop: 3\nspeed: 0.5\nremote: [198.18.0.2]\nvni: 9\n";
    let replay_toml =
        "pcap = \"pod1.pcap\"\ntunnel = \"erspan3\"\nerspan-session = 5\nerspan-sgt = 65535\n";
    for (name, choices, text) in [
        ("run.toml", 0_u8, run_toml),
        ("run-remote.toml", 4, run_toml),
        ("run.yaml", 1, run_yaml),
        ("gre.toml", 4, gre_toml),
        ("replay.yaml", 3, replay_yaml),
        ("replay.toml", 6, replay_toml),
        // What the target once found: a key with a line break, quoted in a two-line message.
        ("key-with-line-break.yaml", 1, "\"a\\nb\": 1\n"),
    ] {
        seeds.write(name, &[&[choices], text.as_bytes()]);
    }
}
