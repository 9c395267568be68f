//! The pcap file the inner frames go to: Ethernet, nanosecond timestamps.

use std::{
    cell::RefCell,
    fs::File,
    io::{self, BufWriter, Write},
    path::{Path, PathBuf},
    rc::Rc,
    time::Duration,
};

use anyhow::Context as _;
use pcap_file::{
    DataLink, Endianness, TsResolution,
    pcap::{PcapHeader, PcapPacket, PcapWriter},
};

use crate::UsageError;

/// The snapshot length in the file header, tcpdump's largest: beyond any frame a tunnel
/// packet of at most 64 KiB can carry, so no frame is ever cut.
pub const SNAPLEN: u32 = 262_144;

/// A pcap file being written.
#[derive(Debug)]
pub struct PcapOut {
    writer: PcapWriter<Shared>,
    /// The same buffered file as the writer's: `PcapWriter` gives no access to its writer
    /// short of consuming it, and buffered frames must reach the file when the receiver idles.
    file: Shared,
    path: PathBuf,
}

/// A buffered file shared by the pcap writer and [`PcapOut`].
#[derive(Debug, Clone)]
struct Shared(Rc<RefCell<BufWriter<File>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.borrow_mut().write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.borrow_mut().flush()
    }
}

impl PcapOut {
    /// Create (or truncate) `path` and write the file header. A file that cannot be created is
    /// bad input.
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let file = File::create(path).map_err(|e| {
            UsageError(format!(
                "--write {}: cannot create the file: {e}",
                path.display()
            ))
        })?;
        let header = PcapHeader {
            snaplen: SNAPLEN,
            datalink: DataLink::ETHERNET,
            ts_resolution: TsResolution::NanoSecond,
            endianness: Endianness::native(),
            ..PcapHeader::default()
        };
        let file = Shared(Rc::new(RefCell::new(BufWriter::new(file))));
        let writer = PcapWriter::with_header(file.clone(), header)
            .with_context(|| format!("writing the pcap header to {}", path.display()))?;
        Ok(Self {
            writer,
            file,
            path: path.to_owned(),
        })
    }

    /// Append `frame` with the time `unix_ns` (nanoseconds since the Unix epoch, at most
    /// 2106-02-07); `frame` must be at most [`SNAPLEN`] long.
    pub fn write(&mut self, unix_ns: u64, frame: &[u8]) -> anyhow::Result<()> {
        let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        let packet = PcapPacket::new(Duration::from_nanos(unix_ns), len, frame);
        self.writer
            .write_packet(&packet)
            .with_context(|| format!("writing a frame to {}", self.path.display()))?;
        Ok(())
    }

    /// Push buffered frames to the file, so that readers see them.
    pub fn flush(&mut self) -> anyhow::Result<()> {
        self.file
            .flush()
            .with_context(|| format!("writing to {}", self.path.display()))
    }

    /// Flush and close the file.
    pub fn finish(mut self) -> anyhow::Result<()> {
        self.flush()?;
        let file = self.file.0.borrow();
        file.get_ref()
            .sync_all()
            .with_context(|| format!("syncing {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use pcap_file::pcap::PcapReader;

    use super::*;

    fn scratch(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("mirror-receive-{}-{name}", std::process::id()))
    }

    #[test]
    fn writes_nanosecond_ethernet_records() {
        let path = scratch("records.pcap");
        let mut out = PcapOut::create(&path).unwrap();
        out.write(1_700_000_000_123_456_789, &[1; 60]).unwrap();
        out.write(5, &[2; 14]).unwrap();
        let largest = vec![3; 65_536];
        out.write(6, &largest).unwrap();
        assert!(out.write(7, &vec![4; SNAPLEN as usize + 1]).is_err());
        out.finish().unwrap();
        let mut reader = PcapReader::new(File::open(&path).unwrap()).unwrap();
        let header = reader.header();
        assert_eq!(header.datalink, DataLink::ETHERNET);
        assert_eq!(header.ts_resolution, TsResolution::NanoSecond);
        assert_eq!(header.snaplen, SNAPLEN);
        let first = reader.next_packet().unwrap().unwrap();
        assert_eq!(first.timestamp, Duration::new(1_700_000_000, 123_456_789));
        assert_eq!(first.data.as_ref(), &[1; 60]);
        assert_eq!(first.orig_len, 60);
        let second = reader.next_packet().unwrap().unwrap();
        assert_eq!(second.timestamp, Duration::from_nanos(5));
        assert_eq!(second.data.as_ref(), &[2; 14]);
        let third = reader.next_packet().unwrap().unwrap();
        assert_eq!(third.data.as_ref(), &largest[..]);
        assert!(reader.next_packet().is_none());
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn unwritable_file_is_bad_input() {
        let path = Path::new("/nonexistent-dir/out.pcap");
        let err = PcapOut::create(path).unwrap_err();
        assert!(err.downcast_ref::<UsageError>().is_some(), "{err:#}");
        assert!(
            err.to_string()
                .starts_with("--write /nonexistent-dir/out.pcap: cannot create the file"),
            "{err}"
        );
    }
}
