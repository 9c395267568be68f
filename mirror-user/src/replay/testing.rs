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
