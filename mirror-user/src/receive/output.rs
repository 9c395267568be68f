//! The file the inner frames go to: pcap, or pcapng when its name ends in `.pcapng` (which keeps
//! what the tunnel header says of each frame).

use std::path::Path;

use super::{decap::Header, pcap_out::PcapOut, pcapng_out::PcapNgOut};

/// A capture file being written.
#[derive(Debug)]
pub enum Output {
    Pcap(PcapOut),
    PcapNg(PcapNgOut),
}

impl Output {
    /// Create (or truncate) `path`, pcapng by its extension (any case), else pcap.
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        if is_pcapng(path) {
            PcapNgOut::create(path).map(Self::PcapNg)
        } else {
            PcapOut::create(path).map(Self::Pcap)
        }
    }

    /// Append `frame`, decapsulated from `header`, with the time `unix_ns`.
    pub fn write(&mut self, unix_ns: u64, header: &Header, frame: &[u8]) -> anyhow::Result<()> {
        match self {
            Self::Pcap(out) => out.write(unix_ns, frame),
            Self::PcapNg(out) => out.write(unix_ns, header, frame),
        }
    }

    /// Push buffered frames to the file, so that readers see them.
    pub fn flush(&mut self) -> anyhow::Result<()> {
        match self {
            Self::Pcap(out) => out.flush(),
            Self::PcapNg(out) => out.flush(),
        }
    }

    /// Flush and close the file.
    pub fn finish(self) -> anyhow::Result<()> {
        match self {
            Self::Pcap(out) => out.finish(),
            Self::PcapNg(out) => out.finish(),
        }
    }
}

/// Whether `path` names a pcapng file.
pub fn is_pcapng(path: &Path) -> bool {
    path.extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("pcapng"))
}
