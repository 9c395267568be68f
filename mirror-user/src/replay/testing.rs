//! Capture files for the replay tests, written with pcap-file's writers, and a scratch
//! directory that removes itself.

use std::{
    borrow::Cow,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use etherparse::PacketBuilder;
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

/// A directory under the system's temporary directory, unique to this process and call,
/// removed with everything in it when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "mirror-replay-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    /// Writes `bytes` to a file of this name in the directory.
    pub fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A packet to write.
#[derive(Clone, Debug)]
pub struct Record {
    pub ts: Duration,
    pub data: Vec<u8>,
    pub original_len: u32,
}

impl Record {
    pub fn new(ts_ns: u64, data: Vec<u8>) -> Self {
        Self {
            ts: Duration::from_nanos(ts_ns),
            original_len: data.len() as u32,
            data,
        }
    }
}

/// A written file and where each packet's record or block starts in it.
pub struct Written {
    pub bytes: Vec<u8>,
    pub offsets: Vec<u64>,
}

/// A pcap file of `records`.
pub fn pcap(
    datalink: DataLink,
    resolution: TsResolution,
    endianness: Endianness,
    records: &[Record],
) -> Written {
    let header = PcapHeader {
        datalink,
        ts_resolution: resolution,
        endianness,
        ..PcapHeader::default()
    };
    let mut writer = PcapWriter::with_header(Vec::new(), header).unwrap();
    let mut offsets = Vec::new();
    let mut offset = 24;
    for record in records {
        offsets.push(offset);
        let packet = PcapPacket::new(record.ts, record.original_len, &record.data);
        offset += writer.write_packet(&packet).unwrap() as u64;
    }
    Written {
        bytes: writer.into_writer(),
        offsets,
    }
}

/// A pcapng interface: its link type and `if_tsresol`, if any.
pub struct Iface {
    pub datalink: DataLink,
    pub tsresol: Option<u8>,
}

/// A packet of a pcapng file.
pub enum Block {
    /// On interface `iface`, with a raw timestamp in the interface's units.
    Enhanced {
        iface: u32,
        raw_ts: u64,
        data: Vec<u8>,
    },
    /// On interface 0, without a timestamp.
    Simple { data: Vec<u8> },
}

/// A pcapng file: a section header, the interfaces, then the packets.
pub fn pcapng(endianness: Endianness, ifaces: &[Iface], blocks: &[Block]) -> Written {
    let mut writer = PcapNgWriter::with_endianness(Vec::new(), endianness).unwrap();
    for iface in ifaces {
        let options = iface
            .tsresol
            .map(InterfaceDescriptionOption::IfTsResol)
            .into_iter()
            .collect();
        writer
            .write_pcapng_block(InterfaceDescriptionBlock {
                linktype: iface.datalink,
                snaplen: 0xFFFF,
                options,
            })
            .unwrap();
    }
    let mut offsets = Vec::new();
    for block in blocks {
        offsets.push(writer.get_ref().len() as u64);
        match block {
            Block::Enhanced {
                iface,
                raw_ts,
                data,
            } => {
                // pcap-file writes the duration's nanoseconds as the raw timestamp whatever the
                // interface's resolution: raw units go in as nanoseconds.
                writer
                    .write_pcapng_block(EnhancedPacketBlock {
                        interface_id: *iface,
                        timestamp: Duration::from_nanos(*raw_ts),
                        original_len: data.len() as u32,
                        data: Cow::Borrowed(data),
                        options: vec![],
                    })
                    .unwrap();
            }
            Block::Simple { data } => {
                writer
                    .write_pcapng_block(SimplePacketBlock {
                        original_len: data.len() as u32,
                        data: Cow::Borrowed(data),
                    })
                    .unwrap();
            }
        }
    }
    Written {
        bytes: writer.into_inner(),
        offsets,
    }
}

/// An Ethernet/IPv4/UDP frame of `payload_len` payload bytes, told apart by `n`.
pub fn frame(n: u16, payload_len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let payload: Vec<u8> = (0..payload_len).map(|i| (i as u8) ^ (n as u8)).collect();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .udp(1000 + n, 2000)
        .write(&mut out, &payload)
        .unwrap();
    out
}

fn u16_in(value: u16, endianness: Endianness) -> [u8; 2] {
    match endianness {
        Endianness::Big => value.to_be_bytes(),
        Endianness::Little => value.to_le_bytes(),
    }
}

fn u32_in(value: u32, endianness: Endianness) -> [u8; 4] {
    match endianness {
        Endianness::Big => value.to_be_bytes(),
        Endianness::Little => value.to_le_bytes(),
    }
}

/// A pcapng block written byte by byte: type, length, `body` padded to 32 bits, length.
pub fn ng_block(kind: u32, body: &[u8], endianness: Endianness) -> Vec<u8> {
    let padded = body.len().next_multiple_of(4);
    let len = (12 + padded) as u32;
    let mut out = Vec::new();
    out.extend_from_slice(&u32_in(kind, endianness));
    out.extend_from_slice(&u32_in(len, endianness));
    out.extend_from_slice(body);
    out.resize(8 + padded, 0);
    out.extend_from_slice(&u32_in(len, endianness));
    out
}

/// A pcapng option: code, length, `value` padded to 32 bits.
pub fn ng_option(code: u16, value: &[u8], endianness: Endianness) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&u16_in(code, endianness));
    out.extend_from_slice(&u16_in(value.len() as u16, endianness));
    out.extend_from_slice(value);
    out.resize(4 + value.len().next_multiple_of(4), 0);
    out
}

/// A section header block (version 1.0, section length unknown) with `options` as they are.
pub fn ng_section(options: &[u8], endianness: Endianness) -> Vec<u8> {
    let mut body = u32_in(0x1A2B_3C4D, endianness).to_vec();
    body.extend_from_slice(&u16_in(1, endianness));
    body.extend_from_slice(&u16_in(0, endianness));
    body.extend_from_slice(&[0xff; 8]);
    body.extend_from_slice(options);
    ng_block(0x0A0D_0D0A, &body, endianness)
}

/// An interface description block of `linktype` with `options` as they are.
pub fn ng_interface(linktype: u16, options: &[u8], endianness: Endianness) -> Vec<u8> {
    let mut body = u16_in(linktype, endianness).to_vec();
    body.extend_from_slice(&[0, 0]);
    body.extend_from_slice(&u32_in(0xFFFF, endianness));
    body.extend_from_slice(options);
    ng_block(1, &body, endianness)
}

/// An enhanced packet block on interface `iface` with `options` as they are.
pub fn ng_packet(
    iface: u32,
    raw_ts: u64,
    data: &[u8],
    options: &[u8],
    endianness: Endianness,
) -> Vec<u8> {
    let mut body = u32_in(iface, endianness).to_vec();
    body.extend_from_slice(&u32_in((raw_ts >> 32) as u32, endianness));
    body.extend_from_slice(&u32_in(raw_ts as u32, endianness));
    body.extend_from_slice(&u32_in(data.len() as u32, endianness));
    body.extend_from_slice(&u32_in(data.len() as u32, endianness));
    body.extend_from_slice(data);
    body.resize(body.len().next_multiple_of(4), 0);
    body.extend_from_slice(options);
    ng_block(6, &body, endianness)
}
