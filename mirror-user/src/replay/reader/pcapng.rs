//! pcapng: sections and interface descriptions followed, packets read from Enhanced, Simple and
//! (obsolete) Packet Blocks with each interface's link type, timestamp resolution
//! (`if_tsresol`) and offset (`if_tsoffset`); other blocks skipped.
//!
//! Every block is read here rather than by pcap-file's parser, which refuses whole files for
//! options the pcapng specification tells readers to take in their stride: an option list
//! without `opt_endofopt`, a string option that is not UTF-8, a custom option too short for its
//! enterprise number, a known option of an unexpected length. Options are read as libpcap and
//! Wireshark read them: the list ends at `opt_endofopt` or at the end of the block, unknown and
//! odd options are skipped, and only `if_tsresol` and `if_tsoffset` matter.

use std::io::Read;

use pcap_file::{
    Endianness,
    pcapng::blocks::{
        ENHANCED_PACKET_BLOCK, INTERFACE_DESCRIPTION_BLOCK, PACKET_BLOCK, SECTION_HEADER_BLOCK,
        SIMPLE_PACKET_BLOCK,
    },
};

use super::{Error, NANOS_PER_SEC, Packet, Step, input::Input, read_u16, read_u32};
use crate::replay::link::{self, Link};

/// Largest block accepted: a packet of the largest size a pcap record may hold, with room for
/// options. Anything larger is a damaged length field.
const MAX_BLOCK: u32 = 16 << 20;
/// Type and length in front of every block, the length again behind it.
const BLOCK_OVERHEAD: u32 = 12;
/// Byte-order magic, version and section length in front of a section header's options.
const SHB_FIXED: usize = 16;
/// Link type, reserved field and snaplen in front of an interface description's options.
const IDB_FIXED: usize = 8;
/// `if_tsresol` and `if_tsoffset` option codes.
const IF_TSRESOL: u16 = 9;
const IF_TSOFFSET: u16 = 14;

/// The state of a pcapng file: the current section's byte order and interfaces.
pub(super) struct Section {
    endianness: Endianness,
    /// In the order they were described.
    interfaces: Vec<Interface>,
}

impl Section {
    /// Reads the first section header.
    pub(super) fn open<R: Read>(input: &mut Input<R>) -> Result<Self, Error> {
        let (len, endianness) = whole_block(input, None)?.ok_or(Error::Truncated {
            what: "section header block",
            offset: 0,
        })?;
        let body = body(input.available(), len, endianness).map_err(|why| Error::Damaged {
            what: "section header block",
            offset: 0,
            why,
        })?;
        section_header(body, endianness).map_err(|why| Error::Damaged {
            what: "section header block",
            offset: 0,
            why,
        })?;
        input.consume(len);
        Ok(Self {
            endianness,
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
        let offset = input.offset;
        let Some((len, endianness)) = whole_block(input, Some(self.endianness))? else {
            return Ok(Step::End);
        };
        let block = input.available();
        let damaged = |what, why| Error::Damaged { what, offset, why };
        let body = body(block, len, endianness).map_err(|why| damaged("block", why))?;
        let step = match read_u32(block, 0, endianness).unwrap_or(0) {
            SECTION_HEADER_BLOCK => {
                section_header(body, endianness)
                    .map_err(|why| damaged("section header block", why))?;
                self.endianness = endianness;
                self.interfaces.clear();
                Step::Other
            }
            INTERFACE_DESCRIPTION_BLOCK => {
                let interface = Interface::parse(body, endianness)
                    .map_err(|why| damaged("interface description block", why))?;
                self.interfaces.push(interface);
                Step::Other
            }
            kind @ (ENHANCED_PACKET_BLOCK | PACKET_BLOCK) => {
                let enhanced = kind == ENHANCED_PACKET_BLOCK;
                packet_block(enhanced, body, endianness, &self.interfaces, offset, out)?
            }
            SIMPLE_PACKET_BLOCK => {
                simple_packet_block(body, endianness, &self.interfaces, last_ts, offset, out)?
            }
            _ => Step::Other,
        };
        input.consume(len);
        Ok(step)
    }
}

/// The body of the whole block of `len` bytes at the start of `block`, once its trailing
/// length is found to match.
fn body(block: &[u8], len: usize, endianness: Endianness) -> Result<&[u8], String> {
    let trailer = read_u32(block, len.saturating_sub(4), endianness).unwrap_or(0);
    if trailer as usize != len {
        return Err(format!(
            "its trailing length {trailer} differs from its length {len}"
        ));
    }
    Ok(block.get(8..len - 4).unwrap_or_default())
}

/// Checks a section header's fixed fields; its options (hardware, OS, application, comments,
/// custom ones) say nothing a replay needs and are not read.
fn section_header(body: &[u8], endianness: Endianness) -> Result<(), String> {
    if body.len() < SHB_FIXED {
        return Err("too short for its fields".into());
    }
    let major = read_u16(body, 4, endianness).unwrap_or(0);
    let minor = read_u16(body, 6, endianness).unwrap_or(0);
    // libpcap's rule: every 1.x is read as 1.0, other major versions are another format.
    if major != 1 {
        return Err(format!("version {major}.{minor}, not a pcapng 1.x section"));
    }
    Ok(())
}

/// The options of a block, as the pcapng specification asks a reader to take them: the list
/// ends at `opt_endofopt` or where the block ends (some writers leave `opt_endofopt` out), and
/// an option whose value would run past the block ends it too.
struct Options<'a> {
    rest: &'a [u8],
    endianness: Endianness,
}

impl<'a> Iterator for Options<'a> {
    /// Code and value (without its padding).
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let code = read_u16(self.rest, 0, self.endianness)?;
        let len = usize::from(read_u16(self.rest, 2, self.endianness)?);
        let value = match self.rest.get(4..4 + len) {
            Some(value) if code != 0 => value,
            _ => {
                self.rest = &[];
                return None;
            }
        };
        // Values are padded to 32 bits; a last option may lack its padding.
        self.rest = self
            .rest
            .get(4 + len.next_multiple_of(4)..)
            .unwrap_or_default();
        Some((code, value))
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

/// Makes the whole pcapng block at the input's position available and returns its length and
/// byte order;
/// `None` at a clean end of file. `endianness` is the section's (`None` before the first
/// section header, whose own byte-order magic tells).
fn whole_block<R: Read>(
    input: &mut Input<R>,
    endianness: Option<Endianness>,
) -> Result<Option<(usize, Endianness)>, Error> {
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
    Ok(Some((len as usize, endianness)))
}

impl Interface {
    /// An Interface Description Block's body. The reserved field is not checked (libpcap does
    /// not either).
    fn parse(body: &[u8], endianness: Endianness) -> Result<Self, String> {
        if body.len() < IDB_FIXED {
            return Err("too short for its fields".into());
        }
        let linktype = read_u16(body, 0, endianness).unwrap_or(0);
        let snaplen = read_u32(body, 4, endianness).unwrap_or(0);
        let mut resolution = Resolution::MICROS;
        let mut offset_s = 0;
        let options = Options {
            rest: body.get(IDB_FIXED..).unwrap_or_default(),
            endianness,
        };
        // An option of another length than its definition's is skipped like an unknown one.
        for (code, value) in options {
            match (code, value) {
                (IF_TSRESOL, &[code]) => resolution = Resolution(code),
                (IF_TSOFFSET, value) if value.len() == 8 => {
                    offset_s = read_u64(value, endianness).unwrap_or(0).cast_signed();
                }
                _ => {}
            }
        }
        Ok(Self {
            link: Link::from_linktype(u32::from(linktype)).map(|link| link.in_file_of(endianness)),
            resolution,
            offset_s,
            snaplen,
        })
    }

    /// Unix nanoseconds of a raw pcapng timestamp of this interface.
    fn unix_ns(&self, raw: u64) -> u64 {
        let ns = i128::from(self.resolution.to_ns(raw))
            + i128::from(self.offset_s) * i128::from(NANOS_PER_SEC);
        u64::try_from(ns.max(0)).unwrap_or(u64::MAX)
    }
}

fn read_u64(bytes: &[u8], endianness: Endianness) -> Option<u64> {
    let field: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    Some(match endianness {
        Endianness::Big => u64::from_be_bytes(field),
        Endianness::Little => u64::from_le_bytes(field),
    })
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
