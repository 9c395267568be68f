//! `mirror replay`'s per-packet path without the network: a pcap of 64-byte frames read from
//! memory into batches, and each frame given its VxLAN headers as the sender would (outer
//! IPv4, UDP with the flow-hash source port, VxLAN), but not sent.
//!
//! - `read`: the file into batches of Ethernet frames (the reader and the arena).
//! - `encapsulate`: the outer headers alone, over frames already in memory.
//! - `encapsulate_baseline`: the same headers built field by field with etherparse's header
//!   types (what a straightforward encoder does), for the ratio.
//! - `read_and_encapsulate`: the whole replay loop into a sink that writes the headers.
//!
//! Run with `AYA_BUILD_SKIP=1 cargo bench -p mirror-user --bench replay`. Throughput is
//! reported in packets (elements) per second.

use std::{hint::black_box, io::Cursor, sync::atomic::AtomicBool, time::Duration};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use etherparse::{IpNumber, Ipv4Header, PacketBuilder, UdpHeader};
use mirror::{
    capture::BATCH,
    flow_hash::{flow_hash, vxlan_source_port},
    metrics::Metrics,
    replay::{
        batch::Batch,
        pacing::Pace,
        play::{Counters, Player, Sink},
        reader::Reader,
    },
    send::Outcome,
    tunnel::{CopyMeta, Encap, MAX_HEADER_LEN, Tunnel},
    wire::vxlan::Vni,
};
use pcap_file::pcap::{PcapPacket, PcapWriter};
use prometheus::IntCounter;

/// Packets per measured iteration.
const PACKETS: usize = 100_000;
const FRAME_LEN: usize = 64;

/// A pcap of `PACKETS` 64-byte Ethernet/IPv4/UDP frames of 256 flows, 1 µs apart.
fn capture() -> Vec<u8> {
    let mut writer = PcapWriter::new(Vec::new()).unwrap();
    let payload = [0x5a; FRAME_LEN - 14 - 20 - 8];
    for i in 0..PACKETS {
        let mut frame = Vec::with_capacity(FRAME_LEN);
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([10, 0, 0, 1], [10, 0, 1, i as u8], 64)
            .udp(40000, 53)
            .write(&mut frame, &payload)
            .unwrap();
        assert_eq!(frame.len(), FRAME_LEN);
        let ts = Duration::from_secs(1_700_000_000) + Duration::from_micros(i as u64);
        writer
            .write_packet(&PcapPacket::new(ts, FRAME_LEN as u32, &frame))
            .unwrap();
    }
    writer.into_writer()
}

/// Writes each copy's outer headers, as the sender's `push` does, and sends nothing.
struct Encapsulate {
    encap: Encap,
    header: [u8; MAX_HEADER_LEN],
}

impl Sink for Encapsulate {
    unsafe fn push(&mut self, frame: &[u8], meta: &CopyMeta) {
        let len = self.encap.write_header(frame, meta, &mut self.header);
        black_box((&self.header[..len], frame));
    }

    fn flush(&mut self) -> Outcome {
        Outcome::default()
    }
}

fn counter() -> IntCounter {
    IntCounter::new("c", "c").unwrap()
}

fn bench(c: &mut Criterion) {
    let file = capture();
    let mut group = c.benchmark_group("replay");
    group.throughput(Throughput::Elements(PACKETS as u64));

    let mut batch = Batch::with_capacity(BATCH);
    group.bench_function("read", |b| {
        b.iter(|| {
            let mut reader = Reader::new(Cursor::new(&file[..])).unwrap();
            let mut packets = 0;
            while batch.fill(&mut reader, BATCH).unwrap() > 0 {
                packets += batch.len();
                black_box(batch.frames().count());
            }
            assert_eq!(packets, PACKETS);
        });
    });

    let tunnel = Tunnel::Vxlan {
        vni: Vni::new(1).unwrap(),
        dst_port: 4789,
    };
    let encap = Encap::new(&tunnel, [198, 18, 0, 1].into(), [198, 18, 0, 2].into()).unwrap();
    let mut player = Player {
        sink: Encapsulate {
            encap,
            header: [0; MAX_HEADER_LEN],
        },
        pace: Pace::Asap,
        passes: 1,
        inner_dst_mac: None,
        netflow: None,
        counters: Counters {
            copies: Metrics::new().unwrap().captured("replay", "ingress").0,
            bytes: counter(),
            malformed: counter(),
            filtered: counter(),
        },
        progress: None,
        filter: None,
    };
    // The headers alone, over frames already in memory: what the sender adds per copy.
    let frames: Vec<Vec<u8>> = {
        let mut reader = Reader::new(Cursor::new(&file[..])).unwrap();
        let mut frames = Vec::new();
        while batch.fill(&mut reader, BATCH).unwrap() > 0 {
            frames.extend(batch.frames().map(|(frame, _)| frame.to_vec()));
        }
        frames
    };
    let meta = CopyMeta::default();
    group.bench_function("encapsulate", |b| {
        b.iter(|| {
            for frame in &frames {
                // SAFETY: `Encapsulate` keeps nothing past `push`.
                unsafe { player.sink.push(frame, &meta) };
            }
        });
    });

    // Baseline: the same outer IPv4, UDP and VxLAN headers, built and serialised per copy.
    let mut header = Vec::with_capacity(MAX_HEADER_LEN);
    group.bench_function("encapsulate_baseline", |b| {
        b.iter(|| {
            for frame in &frames {
                header.clear();
                let udp_len = (8 + 8 + frame.len()) as u16;
                let mut ip =
                    Ipv4Header::new(udp_len, 64, IpNumber::UDP, [198, 18, 0, 1], [198, 18, 0, 2])
                        .unwrap();
                ip.header_checksum = ip.calc_header_checksum();
                let udp = UdpHeader {
                    source_port: vxlan_source_port(flow_hash(frame)),
                    destination_port: 4789,
                    length: udp_len,
                    checksum: 0,
                };
                ip.write(&mut header).unwrap();
                udp.write(&mut header).unwrap();
                header.extend_from_slice(&[0x08, 0, 0, 0, 0, 0, 1, 0]);
                black_box((&header[..], frame));
            }
        });
    });

    let stop = AtomicBool::new(false);
    group.bench_function("read_and_encapsulate", |b| {
        b.iter(|| {
            let reader = Reader::new(Cursor::new(&file[..])).unwrap();
            let summary = player.play(reader, &stop).unwrap();
            assert_eq!(summary.packets, PACKETS as u64);
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
