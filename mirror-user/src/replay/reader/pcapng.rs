#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]
//! pcapng: sections and interface descriptions followed, packets read from Enhanced, Simple and
//! (obsolete) Packet Blocks with each interface's link type, timestamp resolution
//! (`if_tsresol`) and offset (`if_tsoffset`); other blocks skipped.

use std::io::Read;

use pcap_file::{
    Endianness,
    pcapng::{
        PcapNgParser,
        blocks::{
            ENHANCED_PACKET_BLOCK, INTERFACE_DESCRIPTION_BLOCK, PACKET_BLOCK, SECTION_HEADER_BLOCK,
            SIMPLE_PACKET_BLOCK,
            interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption},
        },
    },
};

use super::{Error, NANOS_PER_SEC, Packet, Step, describe, input::Input, read_u16, read_u32};
use crate::replay::link::{self, Link};

/// Largest block accepted: a packet of the largest size a pcap record may hold, with room for
/// options. Anything larger is a damaged length field.
const MAX_BLOCK: u32 = 16 << 20;
/// Type and length in front of every block, the length again behind it.
const BLOCK_OVERHEAD: u32 = 12;

/// The state of a pcapng file: pcap-file's parser, which follows the sections, and the
/// interfaces of the current section as its packets need them.
pub(super) struct Section {
    parser: PcapNgParser,
    /// In the order they were described.
    interfaces: Vec<Interface>,
}

impl Section {
    /// Reads the first section header.
    pub(super) fn open<R: Read>(input: &mut Input<R>) -> Result<Self, Error> {
        let len = whole_block(input, None)?.ok_or(Error::Truncated {
            what: "section header block",
            offset: 0,
        })?;
        let (_, parser) = PcapNgParser::new(input.available()).map_err(|e| Error::Damaged {
            what: "section header block",
            offset: 0,
            why: describe(&e),
        })?;
        input.consume(len);
        Ok(Self {
            parser,
            interfaces: Vec::new(),
        })
    }

    /// Reads the next block, appending the Ethernet frame of a packet to `out`; `last_ts` is
    /// the previous packet's timestamp, for blocks without one.
    pub(super) fn next<R: Read>(
        &mut self,
        input: &mut Input<R>,
        last_ts: u64,
        out: &mut Vec<u8>,
    ) -> Result<Step, Error> {
        let Self { parser, interfaces } = self;
        let offset = input.offset;
        let endianness = parser.section().endianness;
        let Some(len) = whole_block(input, Some(endianness))? else {
            return Ok(Step::End);
        };
        let (_, raw) = parser
            .next_raw_block(input.available())
            .map_err(|e| Error::Damaged {
                what: "block",
                offset,
                why: describe(&e),
            })?;
        // The parser follows the sections and interfaces; the packets are read here, without the
        // allocation pcap-file's parsed blocks make for their options.
        let endianness = parser.section().endianness;
        let body: &[u8] = &raw.body;
        let step = match raw.type_ {
            SECTION_HEADER_BLOCK => {
                interfaces.clear();
                Step::Other
            }
            INTERFACE_DESCRIPTION_BLOCK => {
                if let Some(described) = parser.interfaces().last() {
                    interfaces.push(Interface::new(described));
                }
                Step::Other
            }
            ENHANCED_PACKET_BLOCK | PACKET_BLOCK => {
                let enhanced = raw.type_ == ENHANCED_PACKET_BLOCK;
                packet_block(enhanced, body, endianness, interfaces, offset, out)?
            }
            SIMPLE_PACKET_BLOCK => {
                simple_packet_block(body, endianness, interfaces, last_ts, offset, out)?
            }
            _ => Step::Other,
        };
        input.consume(len);
        Ok(step)
    }
}

/// A pcapng interface, as its packets need it.
struct Interface {
    link: Result<Link, link::Unsupported>,
    resolution: Resolution,
    /// `if_tsoffset`: seconds added to every timestamp.
    offset_s: i64,
    snaplen: u32,
}

/// An Enhanced Packet Block, or the obsolete Packet Block (`enhanced` false), whose interface
/// ID has 16 bits followed by a drop count.
fn packet_block(
    enhanced: bool,
    body: &[u8],
    endianness: Endianness,
    interfaces: &[Interface],
    offset: u64,
    out: &mut Vec<u8>,
) -> Result<Step, Error> {
    let field = |at| read_u32(body, at, endianness).unwrap_or(0);
    let damaged = |why: String| Error::Damaged {
        what: if enhanced {
            "enhanced packet block"
        } else {
            "packet block"
        },
        offset,
        why,
    };
    if body.len() < 20 {
        return Err(damaged("too short for its fields".into()));
    }
    let id = if enhanced {
        field(0)
    } else {
        u32::from(read_u16(body, 0, endianness).unwrap_or(0))
    };
    let raw_ts = (u64::from(field(4)) << 32) | u64::from(field(8));
    let (captured_len, original_len) = (field(12), field(16));
    let data = body
        .get(20..20 + captured_len as usize)
        .ok_or_else(|| damaged(format!("{captured_len} captured bytes do not fit in it")))?;
    let interface = interfaces
        .get(id as usize)
        .ok_or_else(|| damaged(format!("interface {id} was never described")))?;
    let link = interface
        .link
        .map_err(|link| Error::Unsupported { link, offset })?;
    let packet = Packet {
        timestamp_ns: interface.unix_ns(raw_ts),
        captured_len,
        original_len,
        offset,
    };
    Ok(match link.to_ethernet(data, out) {
        Ok(()) => Step::Packet(packet),
        Err(link::Malformed) => Step::Malformed,
    })
}

/// A Simple Packet Block: interface 0, no timestamp (the previous packet's is used).
fn simple_packet_block(
    body: &[u8],
    endianness: Endianness,
    interfaces: &[Interface],
    last_ts: u64,
    offset: u64,
    out: &mut Vec<u8>,
) -> Result<Step, Error> {
    let damaged = |why: &str| Error::Damaged {
        what: "simple packet block",
        offset,
        why: why.into(),
    };
    let original_len = read_u32(body, 0, endianness).ok_or_else(|| damaged("too short"))?;
    let interface = interfaces
        .first()
        .ok_or_else(|| damaged("interface 0 was never described"))?;
    let link = interface
        .link
        .map_err(|link| Error::Unsupported { link, offset })?;
    // The block holds the packet cut to the interface's snaplen, then padding.
    let room = u32::try_from(body.len().saturating_sub(4)).unwrap_or(u32::MAX);
    let mut captured_len = original_len.min(room);
    if interface.snaplen != 0 {
        captured_len = captured_len.min(interface.snaplen);
    }
    let data = body
        .get(4..4 + captured_len as usize)
        .ok_or_else(|| damaged("too short"))?;
    let packet = Packet {
        timestamp_ns: last_ts,
        captured_len,
        original_len,
        offset,
    };
    Ok(match link.to_ethernet(data, out) {
        Ok(()) => Step::Packet(packet),
        Err(link::Malformed) => Step::Malformed,
    })
}

/// Makes the whole pcapng block at the input's position available and returns its length;
/// `None` at a clean end of file. `endianness` is the section's (`None` before the first
/// section header, whose own byte-order magic tells).
fn whole_block<R: Read>(
    input: &mut Input<R>,
    endianness: Option<Endianness>,
) -> Result<Option<usize>, Error> {
    let offset = input.offset;
    let truncated = Error::Truncated {
        what: "block",
        offset,
    };
    if !input.fill(BLOCK_OVERHEAD as usize)? {
        return if input.available().is_empty() {
            Ok(None)
        } else {
            Err(truncated)
        };
    }
    let head = input.available();
    let damaged = |why: String| Error::Damaged {
        what: "block",
        offset,
        why,
    };
    // The section header's type reads the same in both byte orders; the magic after its
    // length tells its byte order, which the rest of the section uses.
    let endianness = if read_u32(head, 0, Endianness::Big) == Some(SECTION_HEADER_BLOCK) {
        match read_u32(head, 8, Endianness::Big) {
            Some(0x1A2B_3C4D) => Endianness::Big,
            Some(0x4D3C_2B1A) => Endianness::Little,
            _ => return Err(damaged("section header without a byte-order magic".into())),
        }
    } else {
        endianness.ok_or_else(|| damaged("no section header first".into()))?
    };
    let len = read_u32(head, 4, endianness).unwrap_or(0);
    if len < BLOCK_OVERHEAD || !len.is_multiple_of(4) {
        return Err(damaged(format!(
            "length {len} is not a multiple of 4 of at least 12"
        )));
    }
    if len > MAX_BLOCK {
        return Err(damaged(format!(
            "length {len} is more than the {MAX_BLOCK} a block may have"
        )));
    }
    if !input.fill(len as usize)? {
        return Err(truncated);
    }
    Ok(Some(len as usize))
}

impl Interface {
    fn new(described: &InterfaceDescriptionBlock<'_>) -> Self {
        let mut resolution = Resolution::MICROS;
        let mut offset_s = 0;
        for option in &described.options {
            match option {
                InterfaceDescriptionOption::IfTsResol(code) => resolution = Resolution(*code),
                InterfaceDescriptionOption::IfTsOffset(seconds) => {
                    offset_s = i64::from_ne_bytes(seconds.to_ne_bytes());
                }
                _ => {}
            }
        }
        Self {
            link: Link::from_linktype(described.linktype.into()),
            resolution,
            offset_s,
            snaplen: described.snaplen,
        }
    }

    /// Unix nanoseconds of a raw pcapng timestamp of this interface.
    fn unix_ns(&self, raw: u64) -> u64 {
        let ns = i128::from(self.resolution.to_ns(raw))
            + i128::from(self.offset_s) * i128::from(NANOS_PER_SEC);
        u64::try_from(ns.max(0)).unwrap_or(u64::MAX)
    }
}

/// A pcapng `if_tsresol`: units of 10^-n seconds, or of 2^-n with the top bit set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resolution(pub u8);

impl Resolution {
    /// The default: microseconds.
    pub const MICROS: Self = Self(6);

    /// Nanoseconds of `raw` units, saturating.
    pub fn to_ns(self, raw: u64) -> u64 {
        let exponent = u32::from(self.0 & 0x7f);
        if self.0 & 0x80 != 0 {
            let ns = (u128::from(raw) * u128::from(NANOS_PER_SEC)) >> exponent;
            return u64::try_from(ns).unwrap_or(u64::MAX);
        }
        if exponent <= 9 {
            raw.saturating_mul(10_u64.pow(9 - exponent))
        } else {
            10_u64
                .checked_pow(exponent - 9)
                .map_or(0, |divisor| raw / divisor)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcapng_timestamp_units() {
        assert_eq!(Resolution::MICROS.to_ns(5), 5_000);
        assert_eq!(Resolution(9).to_ns(5), 5);
        assert_eq!(Resolution(0).to_ns(5), 5_000_000_000);
        assert_eq!(Resolution(12).to_ns(5_000), 5);
        assert_eq!(Resolution(0x80 | 0x0a).to_ns(1024), 1_000_000_000);
        assert_eq!(Resolution(0x80).to_ns(2), 2_000_000_000);
        assert_eq!(Resolution(127).to_ns(u64::MAX), 0);
        assert_eq!(Resolution(0).to_ns(u64::MAX), u64::MAX);
    }
}
