//! Capture files into Ethernet frames: pcap (micro- or nanosecond timestamps, either byte
//! order) and pcapng (any number of sections and interfaces, each interface's timestamp
//! resolution and offset), told apart by their magic number.
//!
//! The file is read in large chunks into one buffer that is reused (`input.rs`), also from pass
//! to pass of a loop; each record is checked to be whole before it is parsed (pcap record headers
//! here, the file header and pcapng blocks by pcap-file), so a damaged file is reported with the
//! byte offset where the damage starts and everything before it is delivered. Packet data is
//! never allocated: the caller's buffer receives the Ethernet frame (see [`super::link`]).

mod input;
mod pcapng;

use std::io::{self, Read, Seek};

use pcap_file::{
    Endianness, PcapError, TsResolution,
    pcap::{PcapHeader, PcapParser},
    pcapng::blocks::SECTION_HEADER_BLOCK,
};

pub use self::pcapng::Resolution;
use self::{input::Input, pcapng::Section};
use super::link::{self, Link};

/// Largest captured length a pcap record may claim, whatever the file's snaplen says: libpcap's
/// `MAXIMUM_SNAPLEN`, which libpcap enforces the same way. Anything larger is a damaged length
/// field (and is not worth gigabytes of buffer).
const MAX_RECORD_DATA: u32 = 262_144;
const PCAP_HEADER_LEN: usize = 24;
const PCAP_RECORD_HEADER_LEN: usize = 16;
pub(super) const NANOS_PER_SEC: u64 = 1_000_000_000;

/// One packet of the file; its Ethernet frame went to the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Packet {
    /// Capture time, Unix epoch nanoseconds.
    pub timestamp_ns: u64,
    /// Bytes of the packet the file holds (before any link-layer conversion).
    pub captured_len: u32,
    /// Length of the packet on the wire.
    pub original_len: u32,
    /// Where the packet's record (pcap) or block (pcapng) starts in the file.
    pub offset: u64,
}

impl Packet {
    /// The capture cut the packet (its snaplen).
    pub fn truncated(&self) -> bool {
        self.captured_len < self.original_len
    }
}

/// Why a file cannot be read (further).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading: {0}")]
    Io(#[from] io::Error),
    #[error("empty file, not a pcap or pcapng capture")]
    Empty,
    #[error("not a pcap or pcapng file (it starts with {0})")]
    NotCapture(String),
    #[error("gzip-compressed; decompress it first (gunzip)")]
    Compressed,
    /// The file ends inside a header, record or block: cut short.
    #[error("truncated {what} at byte {offset}")]
    Truncated { what: &'static str, offset: u64 },
    /// A record or block that cannot be what it claims.
    #[error("damaged {what} at byte {offset}: {why}")]
    Damaged {
        what: &'static str,
        offset: u64,
        why: String,
    },
    /// A packet of a link type the replay cannot turn into Ethernet; `offset` is the packet's
    /// (pcapng) or the file header's (pcap).
    #[error("{link}")]
    Unsupported {
        link: link::Unsupported,
        offset: u64,
    },
}

impl Error {
    /// The file's fault (bad input) rather than the system's.
    pub fn is_input(&self) -> bool {
        !matches!(self, Self::Io(_))
    }

    /// Where in the file the problem starts, if it is in the file.
    pub fn offset(&self) -> Option<u64> {
        match self {
            Self::Truncated { offset, .. }
            | Self::Damaged { offset, .. }
            | Self::Unsupported { offset, .. } => Some(*offset),
            Self::Empty | Self::NotCapture(_) | Self::Compressed => Some(0),
            Self::Io(_) => None,
        }
    }
}

/// Packets of a pcap or pcapng file, in file order.
pub struct Reader<R> {
    input: Input<R>,
    format: Format,
    /// Timestamp of the previous packet, for Simple Packet Blocks, which have none.
    last_ts: u64,
    malformed: u64,
}

enum Format {
    Pcap {
        link: Link,
        nanos: bool,
        endianness: Endianness,
    },
    PcapNg(Section),
}

/// What happened to one record or block.
pub(super) enum Step {
    End,
    Packet(Packet),
    /// A packet whose link header has no Ethernet form.
    Malformed,
    /// A block that holds no packet.
    Other,
}

impl<R: Read> Reader<R> {
    /// Reads the file header (pcap) or first section header (pcapng).
    pub fn new(inner: R) -> Result<Self, Error> {
        Self::open(Input::new(inner))
    }

    fn open(mut input: Input<R>) -> Result<Self, Error> {
        if !input.fill(4)? {
            return Err(match input.available() {
                [] => Error::Empty,
                start => Error::NotCapture(hex(start)),
            });
        }
        let magic = read_u32(input.available(), 0, Endianness::Big);
        let format = match magic {
            Some(0xA1B2_C3D4 | 0xD4C3_B2A1 | 0xA1B2_3C4D | 0x4D3C_B2A1) => open_pcap(&mut input)?,
            Some(SECTION_HEADER_BLOCK) => Format::PcapNg(Section::open(&mut input)?),
            _ => {
                let start = input.available();
                return Err(match start {
                    [0x1f, 0x8b, ..] => Error::Compressed,
                    _ => Error::NotCapture(hex(start.get(..4).unwrap_or(start))),
                });
            }
        };
        Ok(Self {
            input,
            format,
            last_ts: 0,
            malformed: 0,
        })
    }

    /// Appends the Ethernet frame of the next packet to `out` and returns its metadata; `None`
    /// at the end of the file. Packets whose link header has no Ethernet form are skipped and
    /// counted in [`Reader::malformed`]. After an error `out` is as it was.
    pub fn next_into(&mut self, out: &mut Vec<u8>) -> Result<Option<Packet>, Error> {
        loop {
            let step = match &mut self.format {
                Format::Pcap {
                    link,
                    nanos,
                    endianness,
                } => next_pcap(&mut self.input, *link, *nanos, *endianness, out)?,
                Format::PcapNg(section) => section.next(&mut self.input, self.last_ts, out)?,
            };
            match step {
                Step::End => return Ok(None),
                Step::Packet(packet) => {
                    self.last_ts = packet.timestamp_ns;
                    return Ok(Some(packet));
                }
                Step::Malformed => self.malformed += 1,
                Step::Other => {}
            }
        }
    }

    /// Bytes of the file read so far: every record or block before the next one.
    pub fn offset(&self) -> u64 {
        self.input.offset
    }

    /// Packets skipped so far because their link header has no Ethernet form.
    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    /// The file, positioned somewhere after what was read.
    pub fn into_inner(self) -> R {
        self.input.inner
    }
}

impl<R: Read + Seek> Reader<R> {
    /// The same file from its start again (the next pass of `--loop`), in the same buffer.
    pub fn rewind(mut self) -> Result<Self, Error> {
        self.input.inner.rewind()?;
        self.input.restart();
        Self::open(self.input)
    }
}

fn open_pcap<R: Read>(input: &mut Input<R>) -> Result<Format, Error> {
    if !input.fill(PCAP_HEADER_LEN)? {
        return Err(Error::Truncated {
            what: "file header",
            offset: 0,
        });
    }
    let (_, parser) = PcapParser::new(input.available()).map_err(|e| Error::Damaged {
        what: "file header",
        offset: 0,
        why: describe(&e),
    })?;
    input.consume(PCAP_HEADER_LEN);
    let header: PcapHeader = parser.header();
    // The link type is the last field of the file header.
    let link = Link::from_linktype(header.datalink.into())
        .map(|link| link.in_file_of(header.endianness))
        .map_err(|link| Error::Unsupported {
            link,
            offset: PCAP_HEADER_LEN as u64 - 4,
        })?;
    Ok(Format::Pcap {
        link,
        nanos: header.ts_resolution == TsResolution::NanoSecond,
        endianness: header.endianness,
    })
}

fn next_pcap<R: Read>(
    input: &mut Input<R>,
    link: Link,
    nanos: bool,
    endianness: Endianness,
    out: &mut Vec<u8>,
) -> Result<Step, Error> {
    let offset = input.offset;
    let truncated = || Error::Truncated {
        what: "packet record",
        offset,
    };
    if !input.fill(PCAP_RECORD_HEADER_LEN)? {
        return if input.available().is_empty() {
            Ok(Step::End)
        } else {
            Err(truncated())
        };
    }
    let [ts_sec, ts_frac, captured, original] = record_header(input.available(), endianness);
    if captured > MAX_RECORD_DATA {
        return Err(Error::Damaged {
            what: "packet record",
            offset,
            why: format!(
                "it claims {captured} captured bytes, more than the {MAX_RECORD_DATA} a record \
                 may hold"
            ),
        });
    }
    let len = PCAP_RECORD_HEADER_LEN + captured as usize;
    if !input.fill(len)? {
        return Err(truncated());
    }
    // The record header's four fields are read here, not by pcap-file, once per packet: its
    // checked `PcapPacket` refuses packets longer on the wire than the snaplen (what every
    // snaplen-cut capture holds), and its raw one only checks the length checked above.
    let frac = u64::from(ts_frac);
    let packet = Packet {
        timestamp_ns: u64::from(ts_sec) * NANOS_PER_SEC + if nanos { frac } else { frac * 1000 },
        captured_len: captured,
        original_len: original,
        offset,
    };
    let data = input
        .available()
        .get(PCAP_RECORD_HEADER_LEN..len)
        .unwrap_or_default();
    let step = match link.to_ethernet(data, out) {
        Ok(()) => Step::Packet(packet),
        Err(link::Malformed) => Step::Malformed,
    };
    input.consume(len);
    Ok(step)
}

/// The four fields of a pcap record header (seconds, fraction, captured and original length),
/// with one look at the byte order.
fn record_header(bytes: &[u8], endianness: Endianness) -> [u32; 4] {
    let Some(header) = bytes.first_chunk::<PCAP_RECORD_HEADER_LEN>() else {
        return [0; 4];
    };
    let fields: [[u8; 4]; 4] = header.as_chunks().0.try_into().unwrap_or_default();
    match endianness {
        Endianness::Big => fields.map(u32::from_be_bytes),
        Endianness::Little => fields.map(u32::from_le_bytes),
    }
}

pub(super) fn read_u32(bytes: &[u8], at: usize, endianness: Endianness) -> Option<u32> {
    let field: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    Some(match endianness {
        Endianness::Big => u32::from_be_bytes(field),
        Endianness::Little => u32::from_le_bytes(field),
    })
}

pub(super) fn read_u16(bytes: &[u8], at: usize, endianness: Endianness) -> Option<u16> {
    let field: [u8; 2] = bytes.get(at..at + 2)?.try_into().ok()?;
    Some(match endianness {
        Endianness::Big => u16::from_be_bytes(field),
        Endianness::Little => u16::from_le_bytes(field),
    })
}

/// pcap-file's reason, in a form for a message.
pub(super) fn describe(error: &PcapError) -> String {
    match error {
        PcapError::InvalidField(what) => (*what).to_string(),
        PcapError::IncompleteBuffer => "a length field points past its end".into(),
        other => other.to_string(),
    }
}

fn hex(bytes: &[u8]) -> String {
    let digits: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("0x{}", digits.concat())
}

#[cfg(test)]
mod tests {
    use std::{fs::File, io::Cursor};

    use pcap_file::DataLink;

    use super::*;
    use crate::replay::testing::{self, Block, Iface, Record, TempDir, Written, frame};

    const T0: u64 = 1_700_000_000_000_000_000;

    /// Every packet (frame, metadata) up to the end, and the error that ended it early.
    type ReadAll = (Vec<(Vec<u8>, Packet)>, Option<Error>);

    fn read_all<R: Read>(reader: &mut Reader<R>) -> ReadAll {
        let mut packets = Vec::new();
        loop {
            let mut out = Vec::new();
            match reader.next_into(&mut out) {
                Ok(Some(packet)) => packets.push((out, packet)),
                Ok(None) => return (packets, None),
                Err(e) => {
                    assert!(out.is_empty(), "nothing written on error");
                    return (packets, Some(e));
                }
            }
        }
    }

    /// Writes `bytes` to a file and reads it all.
    fn read_file(bytes: &[u8]) -> Result<ReadAll, Error> {
        let dir = TempDir::new("read");
        let path = dir.file("capture", bytes);
        let mut reader = Reader::new(File::open(path)?)?;
        Ok(read_all(&mut reader))
    }

    fn frames(n: u16) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| frame(i, usize::from(i) * 37 % 300))
            .collect()
    }

    #[test]
    fn pcap_with_microsecond_timestamps() {
        let frames = frames(5);
        let records: Vec<Record> = frames
            .iter()
            .enumerate()
            .map(|(i, f)| Record::new(T0 + i as u64 * 1_234_567_000, f.clone()))
            .collect();
        for endianness in [Endianness::Little, Endianness::Big] {
            let written = testing::pcap(
                DataLink::ETHERNET,
                TsResolution::MicroSecond,
                endianness,
                &records,
            );
            let (packets, error) = read_file(&written.bytes).unwrap();
            assert!(error.is_none(), "{error:?}");
            assert_eq!(packets.len(), 5);
            for (i, (got, packet)) in packets.iter().enumerate() {
                assert_eq!(got, &frames[i]);
                assert_eq!(packet.timestamp_ns, T0 + i as u64 * 1_234_567_000);
                assert_eq!(packet.offset, written.offsets[i]);
                assert_eq!(packet.captured_len as usize, frames[i].len());
                assert!(!packet.truncated());
            }
        }
    }

    #[test]
    fn pcap_with_nanosecond_timestamps() {
        let records = [
            Record::new(T0 + 123_456_789, frame(0, 10)),
            Record::new(T0 + 1_000_000_001, frame(1, 10)),
        ];
        for endianness in [Endianness::Little, Endianness::Big] {
            let written = testing::pcap(
                DataLink::ETHERNET,
                TsResolution::NanoSecond,
                endianness,
                &records,
            );
            let (packets, error) = read_file(&written.bytes).unwrap();
            assert!(error.is_none());
            let stamps: Vec<u64> = packets.iter().map(|(_, p)| p.timestamp_ns).collect();
            assert_eq!(stamps, [T0 + 123_456_789, T0 + 1_000_000_001]);
        }
        // The same stamps in a microsecond file lose their nanoseconds.
        let written = testing::pcap(
            DataLink::ETHERNET,
            TsResolution::MicroSecond,
            Endianness::Little,
            &records,
        );
        let (packets, _) = read_file(&written.bytes).unwrap();
        assert_eq!(packets[0].1.timestamp_ns, T0 + 123_456_000);
    }

    #[test]
    fn snaplen_cut_packets_are_read_and_marked() {
        // tcpdump -s 96: every record shorter than the packet on the wire, which pcap-file's
        // checked reader would refuse.
        let header = PcapHeader {
            snaplen: 96,
            endianness: Endianness::Little,
            ..PcapHeader::default()
        };
        let mut bytes = Vec::new();
        header.write_to(&mut bytes).unwrap();
        let data = frame(0, 1400);
        let cut = &data[..96];
        for word in [1_700_000_000_u32, 5, 96, data.len() as u32] {
            bytes.extend_from_slice(&word.to_le_bytes());
        }
        bytes.extend_from_slice(cut);
        let (packets, error) = read_file(&bytes).unwrap();
        assert!(error.is_none(), "{error:?}");
        let (got, packet) = &packets[0];
        assert_eq!(got, cut);
        assert_eq!(
            (packet.captured_len, packet.original_len),
            (96, data.len() as u32)
        );
        assert!(packet.truncated());
    }

    #[test]
    fn pcapng_interfaces_and_resolutions() {
        let ip = frame(9, 20)[14..].to_vec();
        let blocks = [
            // Interface 0: Ethernet, microseconds (no if_tsresol).
            Block::Enhanced {
                iface: 0,
                raw_ts: T0 / 1000 + 1,
                data: frame(0, 30),
            },
            // Interface 1: raw IP, nanoseconds.
            Block::Enhanced {
                iface: 1,
                raw_ts: T0 + 7,
                data: ip.clone(),
            },
            // Interface 2: Ethernet, 2^-10 s.
            Block::Enhanced {
                iface: 2,
                raw_ts: 1_700_000_000 * 1024 + 512,
                data: frame(2, 5),
            },
            // No timestamp: the previous packet's.
            Block::Simple { data: frame(3, 7) },
        ];
        let ifaces = [
            Iface {
                datalink: DataLink::ETHERNET,
                tsresol: None,
            },
            Iface {
                datalink: DataLink::RAW,
                tsresol: Some(9),
            },
            Iface {
                datalink: DataLink::ETHERNET,
                tsresol: Some(0x80 | 0x0a),
            },
        ];
        for endianness in [Endianness::Little, Endianness::Big] {
            let written = testing::pcapng(endianness, &ifaces, &blocks);
            let (packets, error) = read_file(&written.bytes).unwrap();
            assert!(error.is_none(), "{error:?}");
            let got: Vec<_> = packets
                .iter()
                .map(|(f, p)| (f.clone(), p.timestamp_ns))
                .collect();
            let raw_ip_frame = [&[0; 12][..], &[0x08, 0x00], &ip].concat();
            assert_eq!(
                got,
                [
                    (frame(0, 30), T0 + 1000),
                    (raw_ip_frame, T0 + 7),
                    (frame(2, 5), T0 + 500_000_000),
                    (frame(3, 7), T0 + 500_000_000),
                ]
            );
            let offsets: Vec<u64> = packets.iter().map(|(_, p)| p.offset).collect();
            assert_eq!(offsets, written.offsets);
        }
    }

    /// A pcap of `link` holding `data`, read back into one frame.
    fn convert(link: DataLink, data: &[u8]) -> Vec<u8> {
        let written = testing::pcap(
            link,
            TsResolution::MicroSecond,
            Endianness::Little,
            &[Record::new(T0, data.to_vec())],
        );
        let (packets, error) = read_file(&written.bytes).unwrap();
        assert!(error.is_none(), "{link:?}: {error:?}");
        assert_eq!(packets.len(), 1, "{link:?}");
        packets[0].0.clone()
    }

    #[test]
    fn every_link_type_becomes_ethernet() {
        let ethernet = frame(1, 40);
        let (mac, ip) = (&ethernet[6..12], &ethernet[14..]);
        let with_header = |dst: &[u8], src: &[u8], ethertype: u16, payload: &[u8]| {
            [dst, src, &ethertype.to_be_bytes(), payload].concat()
        };
        assert_eq!(convert(DataLink::ETHERNET, &ethernet), ethernet);
        for raw in [
            DataLink::RAW,
            DataLink::from(12),
            DataLink::from(14),
            DataLink::IPV4,
        ] {
            assert_eq!(convert(raw, ip), with_header(&[0; 6], &[0; 6], 0x0800, ip));
        }
        let ipv6 = [0x60, 0, 0, 0, 0, 0, 59, 64];
        assert_eq!(
            convert(DataLink::RAW, &ipv6),
            with_header(&[0; 6], &[0; 6], 0x86DD, &ipv6)
        );
        assert_eq!(
            convert(DataLink::IPV6, &ipv6),
            with_header(&[0; 6], &[0; 6], 0x86DD, &ipv6)
        );
        // SLL: packet type 0, ARPHRD_ETHER, 6-byte address, padding, protocol.
        let sll = [&[0, 0, 0, 1, 0, 6][..], mac, &[0, 0], &[0x08, 0x00], ip].concat();
        assert_eq!(
            convert(DataLink::LINUX_SLL, &sll),
            with_header(&[0; 6], mac, 0x0800, ip)
        );
        // SLL2: protocol, reserved, ifindex, ARPHRD_ETHER, packet type, address length, address.
        let sll2 = [
            &[0x08, 0x00, 0, 0, 0, 0, 0, 3, 0, 1, 0, 6][..],
            mac,
            &[0, 0],
            ip,
        ]
        .concat();
        assert_eq!(
            convert(DataLink::LINUX_SLL2, &sll2),
            with_header(&[0; 6], mac, 0x0800, ip)
        );
    }

    #[test]
    fn unsupported_link_types_are_named() {
        let written = testing::pcap(
            DataLink::USB_LINUX,
            TsResolution::MicroSecond,
            Endianness::Little,
            &[Record::new(T0, vec![0; 30])],
        );
        let err = read_file(&written.bytes).err().unwrap();
        assert!(err.is_input());
        let text = err.to_string();
        assert!(text.contains("link type 189 (USB_LINUX)"), "{text}");

        // pcapng: the packets before the first one of that interface come through.
        let written = testing::pcapng(
            Endianness::Little,
            &[
                Iface {
                    datalink: DataLink::ETHERNET,
                    tsresol: None,
                },
                Iface {
                    datalink: DataLink::from(147),
                    tsresol: None,
                },
            ],
            &[
                Block::Enhanced {
                    iface: 0,
                    raw_ts: 1,
                    data: frame(0, 10),
                },
                Block::Enhanced {
                    iface: 1,
                    raw_ts: 2,
                    data: vec![1, 2, 3],
                },
            ],
        );
        let (packets, error) = read_file(&written.bytes).unwrap();
        assert_eq!(packets.len(), 1);
        let error = error.unwrap();
        assert_eq!(error.offset(), Some(written.offsets[1]));
        assert!(error.to_string().starts_with("link type 147 "), "{error}");
    }

    #[test]
    fn malformed_packets_are_skipped_and_counted() {
        let ip = frame(0, 8)[14..].to_vec();
        let written = testing::pcap(
            DataLink::RAW,
            TsResolution::MicroSecond,
            Endianness::Little,
            &[
                Record::new(T0, ip.clone()),
                Record::new(T0 + 1000, vec![0x50, 0, 0]),
                Record::new(T0 + 2000, vec![]),
                Record::new(T0 + 3000, ip),
            ],
        );
        let mut reader = Reader::new(Cursor::new(written.bytes)).unwrap();
        let (packets, error) = read_all(&mut reader);
        assert!(error.is_none());
        let stamps: Vec<u64> = packets.iter().map(|(_, p)| p.timestamp_ns).collect();
        assert_eq!(stamps, [T0, T0 + 3000]);
        assert_eq!(reader.malformed(), 2);
    }

    /// Cuts `written` at every length and checks that each complete packet before the cut is
    /// read, then either a clean end (a cut between records) or a truncation error naming the
    /// start of the record that was cut.
    fn check_every_cut(written: &Written, header_len: usize, what: &str) {
        let dir = TempDir::new("cuts");
        let full = read_file(&written.bytes).unwrap().0;
        assert_eq!(full.len(), written.offsets.len());
        for cut in 0..written.bytes.len() {
            let path = dir.file("cut", &written.bytes[..cut]);
            let reader = Reader::new(File::open(&path).unwrap());
            if cut < header_len {
                let err = reader.err().expect("a cut header is refused");
                assert!(err.is_input(), "{cut}: {err}");
                assert_eq!(err.offset(), Some(0), "{cut}: {err}");
                continue;
            }
            let (packets, error) = read_all(&mut reader.unwrap());
            let whole = written
                .offsets
                .iter()
                .zip(
                    written
                        .offsets
                        .iter()
                        .skip(1)
                        .chain([&(written.bytes.len() as u64)]),
                )
                .filter(|(_, end)| **end <= cut as u64)
                .count();
            assert_eq!(packets, full[..whole], "cut at {cut}");
            let boundary = cut == header_len || written.offsets.contains(&(cut as u64));
            match error {
                None => assert!(boundary, "cut at {cut} inside a record went unnoticed"),
                Some(Error::Truncated { what: got, offset }) => {
                    assert!(!boundary, "cut at {cut} is between records");
                    assert_eq!(got, what);
                    assert_eq!(offset, written.offsets[whole], "cut at {cut}");
                    let text = Error::Truncated { what: got, offset }.to_string();
                    assert_eq!(text, format!("truncated {what} at byte {offset}"));
                }
                Some(other) => panic!("cut at {cut}: {other}"),
            }
        }
    }

    #[test]
    fn truncated_pcap_at_every_cut() {
        let records: Vec<Record> = frames(6)
            .into_iter()
            .enumerate()
            .map(|(i, f)| Record::new(T0 + i as u64 * 1000, f))
            .collect();
        let written = testing::pcap(
            DataLink::ETHERNET,
            TsResolution::NanoSecond,
            Endianness::Little,
            &records,
        );
        check_every_cut(&written, 24, "packet record");
    }

    #[test]
    fn truncated_pcapng_at_every_cut() {
        let blocks: Vec<Block> = frames(6)
            .into_iter()
            .enumerate()
            .map(|(i, data)| Block::Enhanced {
                iface: 0,
                raw_ts: i as u64,
                data,
            })
            .collect();
        let written = testing::pcapng(
            Endianness::Big,
            &[Iface {
                datalink: DataLink::ETHERNET,
                tsresol: None,
            }],
            &blocks,
        );
        check_every_cut_pcapng(&written);
    }

    /// As [`check_every_cut`], where the section header must be whole and the interface
    /// block behind it counts as a block that holds no packet.
    fn check_every_cut_pcapng(written: &Written) {
        let shb_end = u64::from(u32::from_be_bytes(written.bytes[4..8].try_into().unwrap()));
        let idb_end = written.offsets[0];
        let dir = TempDir::new("cuts-ng");
        let full = read_file(&written.bytes).unwrap().0;
        for cut in 0..written.bytes.len() {
            let path = dir.file("cut", &written.bytes[..cut]);
            let reader = Reader::new(File::open(&path).unwrap());
            if (cut as u64) < shb_end {
                let err = reader.err().expect("a cut section header is refused");
                assert_eq!(err.offset(), Some(0), "{cut}: {err}");
                continue;
            }
            let (packets, error) = read_all(&mut reader.unwrap());
            let ends: Vec<u64> = written
                .offsets
                .iter()
                .skip(1)
                .copied()
                .chain([written.bytes.len() as u64])
                .collect();
            let whole = ends.iter().filter(|end| **end <= cut as u64).count();
            assert_eq!(packets, full[..whole], "cut at {cut}");
            let cut = cut as u64;
            let boundary = cut == shb_end || cut == idb_end || written.offsets.contains(&cut);
            match error {
                None => assert!(boundary, "cut at {cut} went unnoticed"),
                Some(Error::Truncated { what, offset }) => {
                    assert!(!boundary, "cut at {cut} is between blocks");
                    assert_eq!(what, "block");
                    let start = if cut < idb_end {
                        shb_end
                    } else {
                        written.offsets[whole]
                    };
                    assert_eq!(offset, start, "cut at {cut}");
                }
                Some(other) => panic!("cut at {cut}: {other}"),
            }
        }
    }

    /// Options the pcapng specification tells readers to take in their stride, in the section
    /// header, the interface description and the packet, none of the lists ended by
    /// `opt_endofopt`: pcap-file's parser refuses such a file ("Invalid option"), libpcap and
    /// Wireshark read it.
    #[test]
    fn pcapng_options_are_skipped_as_the_specification_asks() {
        for endianness in [Endianness::Little, Endianness::Big] {
            let opt = |code, value: &[u8]| testing::ng_option(code, value, endianness);
            let shb_options = [
                // shb_hardware that is not UTF-8, shb_os, shb_userappl of odd length.
                opt(2, b"\xffcard"),
                opt(3, b"Linux 6.1"),
                opt(4, b"dumpcap"),
                // Custom options: one too short for its enterprise number, the others whole.
                opt(2988, &[0, 0]),
                opt(2989, &[0, 0, 0x7f, 0xd9, 1, 2, 3]),
                opt(19372, b"\0\0\x7f\xd9text"),
                opt(19373, &[0, 0, 0x7f, 0xd9]),
                // A code nobody defined.
                opt(0x7777, b"x"),
            ]
            .concat();
            let idb_options = [
                opt(2, b"eth0"),
                // if_tsresol of the wrong length is skipped; the right one counts.
                opt(9, &[3, 0]),
                opt(9, &[9]),
                opt(0x7777, b"odd"),
                opt(
                    14,
                    &match endianness {
                        Endianness::Big => 10_i64.to_be_bytes(),
                        Endianness::Little => 10_i64.to_le_bytes(),
                    },
                ),
            ]
            .concat();
            let data = frame(3, 21);
            let epb_options = [opt(2, &[1, 0, 0, 0]), opt(1, b"comment")].concat();
            let bytes = [
                testing::ng_section(&shb_options, endianness),
                testing::ng_interface(1, &idb_options, endianness),
                testing::ng_packet(0, T0, &data, &epb_options, endianness),
            ]
            .concat();
            let refused = pcap_file::pcapng::PcapNgParser::new(&bytes).err();
            assert!(refused.is_some(), "pcap-file reads it now: {bytes:02x?}");
            let (packets, error) = read_file(&bytes).unwrap();
            assert!(error.is_none(), "{endianness:?}: {error:?}");
            assert_eq!(packets.len(), 1);
            assert_eq!(packets[0].0, data);
            assert_eq!(packets[0].1.timestamp_ns, T0 + 10 * NANOS_PER_SEC);
        }
        // An option running past its block ends the list, and what it would have said is lost.
        let e = Endianness::Little;
        let mut idb_options = testing::ng_option(9, &[9], e);
        idb_options.extend_from_slice(&[0x77, 0x77, 200, 0]);
        let bytes = [
            testing::ng_section(&[], e),
            testing::ng_interface(1, &idb_options, e),
            testing::ng_packet(0, 5, &frame(0, 10), &[], e),
        ]
        .concat();
        let (packets, error) = read_file(&bytes).unwrap();
        assert!(error.is_none(), "{error:?}");
        assert_eq!(packets[0].1.timestamp_ns, 5);
        // Another major version is another format.
        let mut v2 = testing::ng_section(&[], e);
        v2[12] = 2;
        let error = read_file(&v2).err().unwrap();
        assert!(
            error.to_string().contains("version 2.0, not a pcapng 1.x"),
            "{error}"
        );
    }

    #[test]
    fn damaged_lengths_are_reported_where_they_start() {
        let records = [
            Record::new(T0, frame(0, 10)),
            Record::new(T0 + 1, frame(1, 10)),
        ];
        let written = testing::pcap(
            DataLink::ETHERNET,
            TsResolution::MicroSecond,
            Endianness::Little,
            &records,
        );
        let mut bytes = written.bytes.clone();
        let second = written.offsets[1] as usize;
        bytes[second + 8..second + 12].copy_from_slice(&u32::MAX.to_le_bytes());
        let (packets, error) = read_file(&bytes).unwrap();
        assert_eq!(packets.len(), 1);
        let error = error.unwrap();
        assert_eq!(error.offset(), Some(second as u64));
        assert!(
            error.to_string().starts_with(&format!(
                "damaged packet record at byte {second}: it claims 4294967295"
            )),
            "{error}"
        );

        let written = testing::pcapng(
            Endianness::Little,
            &[Iface {
                datalink: DataLink::ETHERNET,
                tsresol: None,
            }],
            &[
                Block::Enhanced {
                    iface: 0,
                    raw_ts: 0,
                    data: frame(0, 10),
                },
                Block::Enhanced {
                    iface: 0,
                    raw_ts: 0,
                    data: frame(1, 10),
                },
            ],
        );
        let second = written.offsets[1] as usize;
        for (at, value, why) in [
            (4, 13_u32, "multiple of 4"),
            (4, 8, "multiple of 4"),
            (4, 1 << 30, "more than"),
            // The trailing length no longer matches.
            (4, 60, "trailing length"),
            // An interface that was never described.
            (8, 3, "interface 3"),
        ] {
            let mut bytes = written.bytes.clone();
            bytes[second + at..second + at + 4].copy_from_slice(&value.to_le_bytes());
            let (packets, error) = read_file(&bytes).unwrap();
            assert_eq!(packets.len(), 1, "{why}");
            let error = error.unwrap();
            assert!(matches!(error, Error::Damaged { .. }), "{why}: {error}");
            assert_eq!(error.offset(), Some(second as u64), "{why}");
            assert!(error.to_string().contains(why), "{why}: {error}");
        }
    }

    #[test]
    fn garbage_is_not_a_capture() {
        for (bytes, expected) in [
            (&b""[..], "empty file"),
            (b"ab", "not a pcap or pcapng file (it starts with 0x6162)"),
            (
                b"GET / HTTP/1.1\r\n",
                "not a pcap or pcapng file (it starts with 0x47455420)",
            ),
            (&[0x1f, 0x8b, 8, 0, 0, 0], "gzip-compressed"),
            (
                &[0xd4, 0xc3, 0xb2, 0xa1, 2, 0],
                "truncated file header at byte 0",
            ),
            (
                &[0x0a, 0x0d, 0x0d, 0x0a, 0, 0, 0, 28, 1, 2, 3, 4, 0, 0, 0, 0],
                "damaged block at byte 0: section header without a byte-order magic",
            ),
        ] {
            let err = read_file(bytes).err().unwrap();
            assert!(err.is_input());
            assert!(err.to_string().starts_with(expected), "{err}");
        }
        // Noise that happens to start like a pcap: damage at the first record.
        let mut noise = Vec::new();
        let mut x = 0x2545_f491_u32;
        for _ in 0..4096 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            noise.push(x as u8);
        }
        noise[..4].copy_from_slice(&[0xd4, 0xc3, 0xb2, 0xa1]);
        noise[20..24].copy_from_slice(&[1, 0, 0, 0]);
        match read_file(&noise) {
            Ok((_, error)) => assert!(error.unwrap().is_input()),
            Err(error) => assert!(error.is_input(), "{error}"),
        }
    }

    /// A reader that hands out a few bytes per call.
    struct Trickle<R>(R, usize);

    impl<R: Read> Read for Trickle<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.1);
            self.0.read(&mut buf[..n])
        }
    }

    #[test]
    fn large_files_and_short_reads() {
        let records: Vec<Record> = (0..2000)
            .map(|i| Record::new(T0 + i * 1000, frame(i as u16, 1400)))
            .collect();
        let written = testing::pcap(
            DataLink::ETHERNET,
            TsResolution::MicroSecond,
            Endianness::Little,
            &records,
        );
        assert!(written.bytes.len() > 2 << 20, "more than the read buffer");
        for chunk in [7, 4096, usize::MAX] {
            let mut reader = Reader::new(Trickle(Cursor::new(&written.bytes), chunk)).unwrap();
            let (packets, error) = read_all(&mut reader);
            assert!(error.is_none());
            assert_eq!(packets.len(), 2000, "{chunk}");
            assert!(packets.iter().zip(&records).all(|((f, _), r)| *f == r.data));
            assert_eq!(reader.offset(), written.bytes.len() as u64);
        }
    }
}
