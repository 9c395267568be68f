//! NetFlow version 5 export datagram: a 24-byte header followed by up to 30 flow records of 48
//! bytes each, all fields in network byte order. The layout is Cisco's published one
//! ("NetFlow Export Datagram Format", version 5), which every collector reads.
//!
//! ```text
//! header                                    record
//! off len field                             off len field
//!   0   2 version (5)                         0   4 srcaddr
//!   2   2 count (1..=30)                      4   4 dstaddr
//!   4   4 sys_uptime (ms)                     8   4 nexthop
//!   8   4 unix_secs                          12   2 input (ifindex)
//!  12   4 unix_nsecs                         14   2 output (ifindex)
//!  16   4 flow_sequence                      16   4 dPkts
//!  20   1 engine_type                        20   4 dOctets (layer 3)
//!  21   1 engine_id                          24   4 First (sys_uptime ms)
//!  22   2 sampling: 2-bit mode,              28   4 Last (sys_uptime ms)
//!         14-bit interval                    32   2 srcport
//!                                            34   2 dstport
//!                                            36   1 pad1
//!                                            37   1 tcp_flags (OR of all packets)
//!                                            38   1 prot
//!                                            39   1 tos
//!                                            40   2 src_as
//!                                            42   2 dst_as
//!                                            44   1 src_mask
//!                                            45   1 dst_mask
//!                                            46   2 pad2
//! ```

use core::net::Ipv4Addr;

use super::{Error, Result};

/// The version number of this format.
pub const VERSION: u16 = 5;
/// Length of the datagram header.
pub const HEADER_LEN: usize = 24;
/// Length of one flow record.
pub const RECORD_LEN: usize = 48;
/// Most records one datagram may carry.
pub const MAX_RECORDS: usize = 30;
/// Length of a datagram holding [`MAX_RECORDS`] records: 1464 bytes, which fits a 1500-byte MTU
/// under IPv4 and UDP headers.
pub const MAX_DATAGRAM_LEN: usize = HEADER_LEN + MAX_RECORDS * RECORD_LEN;

// Fits a 1500-byte MTU under a 20-byte IPv4 header and an 8-byte UDP header.
const _: () = assert!(MAX_DATAGRAM_LEN + 28 <= 1500);

mod field {
    use core::ops::{Range, RangeFrom};

    // Header.
    pub const VERSION: Range<usize> = 0..2;
    pub const COUNT: Range<usize> = 2..4;
    pub const SYS_UPTIME: Range<usize> = 4..8;
    pub const UNIX_SECS: Range<usize> = 8..12;
    pub const UNIX_NSECS: Range<usize> = 12..16;
    pub const FLOW_SEQUENCE: Range<usize> = 16..20;
    pub const ENGINE_TYPE: usize = 20;
    pub const ENGINE_ID: usize = 21;
    pub const SAMPLING: Range<usize> = 22..24;
    pub const RECORDS: RangeFrom<usize> = 24..;

    // Record.
    pub const SRCADDR: Range<usize> = 0..4;
    pub const DSTADDR: Range<usize> = 4..8;
    pub const NEXTHOP: Range<usize> = 8..12;
    pub const INPUT: Range<usize> = 12..14;
    pub const OUTPUT: Range<usize> = 14..16;
    pub const PACKETS: Range<usize> = 16..20;
    pub const OCTETS: Range<usize> = 20..24;
    pub const FIRST: Range<usize> = 24..28;
    pub const LAST: Range<usize> = 28..32;
    pub const SRCPORT: Range<usize> = 32..34;
    pub const DSTPORT: Range<usize> = 34..36;
    pub const PAD1: usize = 36;
    pub const TCP_FLAGS: usize = 37;
    pub const PROTO: usize = 38;
    pub const TOS: usize = 39;
    pub const SRC_AS: Range<usize> = 40..42;
    pub const DST_AS: Range<usize> = 42..44;
    pub const SRC_MASK: usize = 44;
    pub const DST_MASK: usize = 45;
    pub const PAD2: Range<usize> = 46..48;
}

/// How the exporter sampled the packets it counted: the top two bits of the header's sampling
/// field. NetFlow v5 counters are not scaled: collectors multiply by the interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SamplingMode {
    /// Every packet counted.
    #[default]
    None,
    /// Deterministic: one packet in every `interval`.
    Deterministic,
    /// Random: one packet in `interval` on average.
    Random,
    /// Mode 3, which Cisco does not define. Parsed, never written by this crate.
    Reserved,
}

/// The header's 16-bit sampling field: a [`SamplingMode`] in the top two bits and a 14-bit
/// interval below them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Sampling(u16);

impl Sampling {
    /// No sampling: mode 0, interval 0.
    pub const NONE: Sampling = Sampling(0);
    /// The largest interval the field can carry, 2^14 - 1.
    pub const MAX_INTERVAL: u16 = 0x3fff;

    /// Return `None` if `interval` does not fit in 14 bits.
    pub const fn new(mode: SamplingMode, interval: u16) -> Option<Sampling> {
        if interval > Self::MAX_INTERVAL {
            return None;
        }
        let mode = match mode {
            SamplingMode::None => 0,
            SamplingMode::Deterministic => 1,
            SamplingMode::Random => 2,
            SamplingMode::Reserved => 3,
        };
        Some(Sampling((mode << 14) | interval))
    }

    /// Read the field as it is on the wire. Every value is valid.
    pub const fn from_raw(raw: u16) -> Sampling {
        Sampling(raw)
    }

    /// Return the field as it is on the wire.
    pub const fn raw(self) -> u16 {
        self.0
    }

    /// Return the mode, the top two bits.
    pub const fn mode(self) -> SamplingMode {
        match self.0 >> 14 {
            0 => SamplingMode::None,
            1 => SamplingMode::Deterministic,
            2 => SamplingMode::Random,
            _ => SamplingMode::Reserved,
        }
    }

    /// Return the interval, the low 14 bits.
    pub const fn interval(self) -> u16 {
        self.0 & Self::MAX_INTERVAL
    }
}

/// A read/write wrapper around a NetFlow v5 datagram: the header and the records after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

#[expect(
    clippy::indexing_slicing,
    reason = "smoltcp contract: every header field lies within HEADER_LEN, which check_len guarantees"
)]
impl<T: AsRef<[u8]>> Packet<T> {
    /// Imbue a raw octet buffer with NetFlow v5 structure, without checking its length.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Shorthand for [`Packet::new_unchecked`] then [`Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Ensure that no accessor method will panic if called: the buffer holds the header and the
    /// `count` records it announces. Bytes after them are allowed and ignored.
    pub fn check_len(&self) -> Result<()> {
        let got = self.buffer.as_ref().len();
        if got < HEADER_LEN {
            return Err(Error::Truncated {
                needed: HEADER_LEN,
                got,
            });
        }
        let needed = HEADER_LEN + usize::from(self.count()) * RECORD_LEN;
        if got < needed {
            return Err(Error::Truncated { needed, got });
        }
        Ok(())
    }

    /// Consume the packet, returning the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Return the length of the datagram the header announces: header and `count` records.
    pub fn total_len(&self) -> usize {
        HEADER_LEN + usize::from(self.count()) * RECORD_LEN
    }

    /// Return the format version (5).
    #[inline]
    pub fn version(&self) -> u16 {
        u16::from_be_bytes(read(&self.buffer.as_ref()[field::VERSION]))
    }

    /// Return the number of records in the datagram.
    #[inline]
    pub fn count(&self) -> u16 {
        u16::from_be_bytes(read(&self.buffer.as_ref()[field::COUNT]))
    }

    /// Return the exporter's uptime in milliseconds when the datagram was sent.
    #[inline]
    pub fn sys_uptime(&self) -> u32 {
        u32::from_be_bytes(read(&self.buffer.as_ref()[field::SYS_UPTIME]))
    }

    /// Return the wall-clock seconds since the Unix epoch when the datagram was sent.
    #[inline]
    pub fn unix_secs(&self) -> u32 {
        u32::from_be_bytes(read(&self.buffer.as_ref()[field::UNIX_SECS]))
    }

    /// Return the nanoseconds past [`Packet::unix_secs`].
    #[inline]
    pub fn unix_nsecs(&self) -> u32 {
        u32::from_be_bytes(read(&self.buffer.as_ref()[field::UNIX_NSECS]))
    }

    /// Return the number of flows the exporter sent before this datagram.
    #[inline]
    pub fn flow_sequence(&self) -> u32 {
        u32::from_be_bytes(read(&self.buffer.as_ref()[field::FLOW_SEQUENCE]))
    }

    /// Return the type of the flow-switching engine.
    #[inline]
    pub fn engine_type(&self) -> u8 {
        self.buffer.as_ref()[field::ENGINE_TYPE]
    }

    /// Return the slot number of the flow-switching engine.
    #[inline]
    pub fn engine_id(&self) -> u8 {
        self.buffer.as_ref()[field::ENGINE_ID]
    }

    /// Return the sampling mode and interval.
    #[inline]
    pub fn sampling(&self) -> Sampling {
        Sampling(u16::from_be_bytes(read(
            &self.buffer.as_ref()[field::SAMPLING],
        )))
    }
}

#[expect(
    clippy::indexing_slicing,
    reason = "smoltcp contract: the records start at HEADER_LEN, which check_len guarantees"
)]
impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// Return the bytes after the header.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::RECORDS]
    }

    /// Return the `count` records the header announces; fewer, without panicking, if the
    /// buffer was not checked and is short.
    pub fn records(&self) -> impl ExactSizeIterator<Item = Record<&'a [u8]>> + use<'a, T> {
        let data: &'a [u8] = self.buffer.as_ref();
        let (count, records) = match (data.get(field::COUNT), data.get(field::RECORDS)) {
            (Some(count), Some(records)) => (u16::from_be_bytes(read(count)), records),
            _ => (0, &[][..]),
        };
        records
            .chunks_exact(RECORD_LEN)
            .take(usize::from(count))
            .map(Record::new_unchecked)
    }
}

#[expect(
    clippy::indexing_slicing,
    reason = "smoltcp contract: every header field lies within HEADER_LEN, which check_len guarantees"
)]
impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set the format version.
    #[inline]
    pub fn set_version(&mut self, value: u16) {
        self.buffer.as_mut()[field::VERSION].copy_from_slice(&value.to_be_bytes());
    }

    /// Set the number of records.
    #[inline]
    pub fn set_count(&mut self, value: u16) {
        self.buffer.as_mut()[field::COUNT].copy_from_slice(&value.to_be_bytes());
    }

    /// Set the exporter's uptime in milliseconds.
    #[inline]
    pub fn set_sys_uptime(&mut self, value: u32) {
        self.buffer.as_mut()[field::SYS_UPTIME].copy_from_slice(&value.to_be_bytes());
    }

    /// Set the wall-clock seconds since the Unix epoch.
    #[inline]
    pub fn set_unix_secs(&mut self, value: u32) {
        self.buffer.as_mut()[field::UNIX_SECS].copy_from_slice(&value.to_be_bytes());
    }

    /// Set the nanoseconds past the seconds.
    #[inline]
    pub fn set_unix_nsecs(&mut self, value: u32) {
        self.buffer.as_mut()[field::UNIX_NSECS].copy_from_slice(&value.to_be_bytes());
    }

    /// Set the number of flows sent before this datagram.
    #[inline]
    pub fn set_flow_sequence(&mut self, value: u32) {
        self.buffer.as_mut()[field::FLOW_SEQUENCE].copy_from_slice(&value.to_be_bytes());
    }

    /// Set the type of the flow-switching engine.
    #[inline]
    pub fn set_engine_type(&mut self, value: u8) {
        self.buffer.as_mut()[field::ENGINE_TYPE] = value;
    }

    /// Set the slot number of the flow-switching engine.
    #[inline]
    pub fn set_engine_id(&mut self, value: u8) {
        self.buffer.as_mut()[field::ENGINE_ID] = value;
    }

    /// Set the sampling mode and interval.
    #[inline]
    pub fn set_sampling(&mut self, value: Sampling) {
        self.buffer.as_mut()[field::SAMPLING].copy_from_slice(&value.raw().to_be_bytes());
    }

    /// Return a mutable pointer to the bytes after the header.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::RECORDS]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// A read/write wrapper around one 48-byte flow record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<T: AsRef<[u8]>> {
    buffer: T,
}

#[expect(
    clippy::indexing_slicing,
    reason = "smoltcp contract: every record field lies within RECORD_LEN, which check_len guarantees"
)]
impl<T: AsRef<[u8]>> Record<T> {
    /// Imbue a raw octet buffer with flow record structure, without checking its length.
    pub const fn new_unchecked(buffer: T) -> Record<T> {
        Record { buffer }
    }

    /// Shorthand for [`Record::new_unchecked`] then [`Record::check_len`].
    pub fn new_checked(buffer: T) -> Result<Record<T>> {
        let record = Self::new_unchecked(buffer);
        record.check_len()?;
        Ok(record)
    }

    /// Ensure that no accessor method will panic if called.
    pub fn check_len(&self) -> Result<()> {
        let got = self.buffer.as_ref().len();
        if got < RECORD_LEN {
            Err(Error::Truncated {
                needed: RECORD_LEN,
                got,
            })
        } else {
            Ok(())
        }
    }

    /// Consume the record, returning the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Return the source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(read::<4>(&self.buffer.as_ref()[field::SRCADDR]))
    }

    /// Return the destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(read::<4>(&self.buffer.as_ref()[field::DSTADDR]))
    }

    /// Return the next-hop router's address.
    #[inline]
    pub fn next_hop(&self) -> Ipv4Addr {
        Ipv4Addr::from(read::<4>(&self.buffer.as_ref()[field::NEXTHOP]))
    }

    /// Return the SNMP index of the input interface.
    #[inline]
    pub fn input(&self) -> u16 {
        u16::from_be_bytes(read(&self.buffer.as_ref()[field::INPUT]))
    }

    /// Return the SNMP index of the output interface.
    #[inline]
    pub fn output(&self) -> u16 {
        u16::from_be_bytes(read(&self.buffer.as_ref()[field::OUTPUT]))
    }

    /// Return the packets in the flow (dPkts).
    #[inline]
    pub fn packets(&self) -> u32 {
        u32::from_be_bytes(read(&self.buffer.as_ref()[field::PACKETS]))
    }

    /// Return the layer-3 bytes in the flow's packets (dOctets).
    #[inline]
    pub fn octets(&self) -> u32 {
        u32::from_be_bytes(read(&self.buffer.as_ref()[field::OCTETS]))
    }

    /// Return the exporter's uptime in milliseconds at the flow's first packet.
    #[inline]
    pub fn first(&self) -> u32 {
        u32::from_be_bytes(read(&self.buffer.as_ref()[field::FIRST]))
    }

    /// Return the exporter's uptime in milliseconds at the flow's last packet.
    #[inline]
    pub fn last(&self) -> u32 {
        u32::from_be_bytes(read(&self.buffer.as_ref()[field::LAST]))
    }

    /// Return the source port (0 for protocols without ports).
    #[inline]
    pub fn src_port(&self) -> u16 {
        u16::from_be_bytes(read(&self.buffer.as_ref()[field::SRCPORT]))
    }

    /// Return the destination port (ICMP: type * 256 + code).
    #[inline]
    pub fn dst_port(&self) -> u16 {
        u16::from_be_bytes(read(&self.buffer.as_ref()[field::DSTPORT]))
    }

    /// Return the first padding byte.
    #[inline]
    pub fn pad1(&self) -> u8 {
        self.buffer.as_ref()[field::PAD1]
    }

    /// Return the OR of the TCP flags of every packet in the flow.
    #[inline]
    pub fn tcp_flags(&self) -> u8 {
        self.buffer.as_ref()[field::TCP_FLAGS]
    }

    /// Return the IP protocol number.
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTO]
    }

    /// Return the IP type of service byte (DSCP and ECN).
    #[inline]
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[field::TOS]
    }

    /// Return the source autonomous system number.
    #[inline]
    pub fn src_as(&self) -> u16 {
        u16::from_be_bytes(read(&self.buffer.as_ref()[field::SRC_AS]))
    }

    /// Return the destination autonomous system number.
    #[inline]
    pub fn dst_as(&self) -> u16 {
        u16::from_be_bytes(read(&self.buffer.as_ref()[field::DST_AS]))
    }

    /// Return the source address prefix length.
    #[inline]
    pub fn src_mask(&self) -> u8 {
        self.buffer.as_ref()[field::SRC_MASK]
    }

    /// Return the destination address prefix length.
    #[inline]
    pub fn dst_mask(&self) -> u8 {
        self.buffer.as_ref()[field::DST_MASK]
    }

    /// Return the trailing two padding bytes.
    #[inline]
    pub fn pad2(&self) -> u16 {
        u16::from_be_bytes(read(&self.buffer.as_ref()[field::PAD2]))
    }
}

#[expect(
    clippy::indexing_slicing,
    reason = "smoltcp contract: every record field lies within RECORD_LEN, which check_len guarantees"
)]
impl<T: AsRef<[u8]> + AsMut<[u8]>> Record<T> {
    /// Set the source address.
    #[inline]
    pub fn set_src_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::SRCADDR].copy_from_slice(&value.octets());
    }

    /// Set the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::DSTADDR].copy_from_slice(&value.octets());
    }

    /// Set the next-hop router's address.
    #[inline]
    pub fn set_next_hop(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::NEXTHOP].copy_from_slice(&value.octets());
    }

    /// Set the SNMP index of the input interface.
    #[inline]
    pub fn set_input(&mut self, value: u16) {
        self.buffer.as_mut()[field::INPUT].copy_from_slice(&value.to_be_bytes());
    }

    /// Set the SNMP index of the output interface.
    #[inline]
    pub fn set_output(&mut self, value: u16) {
        self.buffer.as_mut()[field::OUTPUT].copy_from_slice(&value.to_be_bytes());
    }

    /// Set the packets in the flow.
    #[inline]
    pub fn set_packets(&mut self, value: u32) {
        self.buffer.as_mut()[field::PACKETS].copy_from_slice(&value.to_be_bytes());
    }

    /// Set the layer-3 bytes in the flow.
    #[inline]
    pub fn set_octets(&mut self, value: u32) {
        self.buffer.as_mut()[field::OCTETS].copy_from_slice(&value.to_be_bytes());
    }

    /// Set the uptime at the flow's first packet.
    #[inline]
    pub fn set_first(&mut self, value: u32) {
        self.buffer.as_mut()[field::FIRST].copy_from_slice(&value.to_be_bytes());
    }

    /// Set the uptime at the flow's last packet.
    #[inline]
    pub fn set_last(&mut self, value: u32) {
        self.buffer.as_mut()[field::LAST].copy_from_slice(&value.to_be_bytes());
    }

    /// Set the source port.
    #[inline]
    pub fn set_src_port(&mut self, value: u16) {
        self.buffer.as_mut()[field::SRCPORT].copy_from_slice(&value.to_be_bytes());
    }

    /// Set the destination port.
    #[inline]
    pub fn set_dst_port(&mut self, value: u16) {
        self.buffer.as_mut()[field::DSTPORT].copy_from_slice(&value.to_be_bytes());
    }

    /// Set the first padding byte.
    #[inline]
    pub fn set_pad1(&mut self, value: u8) {
        self.buffer.as_mut()[field::PAD1] = value;
    }

    /// Set the OR of the flow's TCP flags.
    #[inline]
    pub fn set_tcp_flags(&mut self, value: u8) {
        self.buffer.as_mut()[field::TCP_FLAGS] = value;
    }

    /// Set the IP protocol number.
    #[inline]
    pub fn set_protocol(&mut self, value: u8) {
        self.buffer.as_mut()[field::PROTO] = value;
    }

    /// Set the IP type of service byte.
    #[inline]
    pub fn set_tos(&mut self, value: u8) {
        self.buffer.as_mut()[field::TOS] = value;
    }

    /// Set the source autonomous system number.
    #[inline]
    pub fn set_src_as(&mut self, value: u16) {
        self.buffer.as_mut()[field::SRC_AS].copy_from_slice(&value.to_be_bytes());
    }

    /// Set the destination autonomous system number.
    #[inline]
    pub fn set_dst_as(&mut self, value: u16) {
        self.buffer.as_mut()[field::DST_AS].copy_from_slice(&value.to_be_bytes());
    }

    /// Set the source address prefix length.
    #[inline]
    pub fn set_src_mask(&mut self, value: u8) {
        self.buffer.as_mut()[field::SRC_MASK] = value;
    }

    /// Set the destination address prefix length.
    #[inline]
    pub fn set_dst_mask(&mut self, value: u8) {
        self.buffer.as_mut()[field::DST_MASK] = value;
    }

    /// Zero both padding fields, as senders should.
    #[inline]
    pub fn clear_padding(&mut self) {
        let data = self.buffer.as_mut();
        data[field::PAD1] = 0;
        data[field::PAD2].fill(0);
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Record<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// A high-level representation of a NetFlow v5 datagram header. `count` is not part of it: it is
/// a property of the datagram, given to [`HeaderRepr::emit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HeaderRepr {
    /// Records in the datagram, at most [`MAX_RECORDS`].
    pub count: u16,
    /// Exporter uptime in milliseconds when the datagram was sent.
    pub sys_uptime: u32,
    /// Wall-clock seconds since the Unix epoch when the datagram was sent.
    pub unix_secs: u32,
    /// Nanoseconds past `unix_secs`.
    pub unix_nsecs: u32,
    /// Flows the exporter sent before this datagram.
    pub flow_sequence: u32,
    /// Type of the flow-switching engine.
    pub engine_type: u8,
    /// Slot number of the flow-switching engine.
    pub engine_id: u8,
    /// Sampling mode and interval.
    pub sampling: Sampling,
}

impl HeaderRepr {
    /// Parse a datagram header, checking first that the buffer holds it and every record it
    /// announces.
    ///
    /// Rejects a version other than 5 and a count above [`MAX_RECORDS`].
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<HeaderRepr> {
        // The header alone first, so version and count can be read.
        let got = packet.as_ref().len();
        if got < HEADER_LEN {
            return Err(Error::Truncated {
                needed: HEADER_LEN,
                got,
            });
        }
        if packet.version() != VERSION {
            return Err(Error::Malformed("NetFlow version is not 5"));
        }
        if usize::from(packet.count()) > MAX_RECORDS {
            return Err(Error::Malformed("NetFlow v5 count above 30"));
        }
        packet.check_len()?;
        Ok(HeaderRepr {
            count: packet.count(),
            sys_uptime: packet.sys_uptime(),
            unix_secs: packet.unix_secs(),
            unix_nsecs: packet.unix_nsecs(),
            flow_sequence: packet.flow_sequence(),
            engine_type: packet.engine_type(),
            engine_id: packet.engine_id(),
            sampling: packet.sampling(),
        })
    }

    /// Return the length of the header [`HeaderRepr::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Return the length of the whole datagram: header and `count` records.
    pub const fn datagram_len(&self) -> usize {
        HEADER_LEN + self.count as usize * RECORD_LEN
    }

    /// Emit this header into `packet`, which must hold at least [`HeaderRepr::buffer_len`]
    /// bytes. The records after it are left alone.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(&self, packet: &mut Packet<&mut T>) {
        packet.set_version(VERSION);
        packet.set_count(self.count);
        packet.set_sys_uptime(self.sys_uptime);
        packet.set_unix_secs(self.unix_secs);
        packet.set_unix_nsecs(self.unix_nsecs);
        packet.set_flow_sequence(self.flow_sequence);
        packet.set_engine_type(self.engine_type);
        packet.set_engine_id(self.engine_id);
        packet.set_sampling(self.sampling);
    }
}

/// A high-level representation of one NetFlow v5 flow record. The padding is not part of it:
/// it is ignored on parse and zeroed on emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRepr {
    pub src_addr: Ipv4Addr,
    pub dst_addr: Ipv4Addr,
    pub next_hop: Ipv4Addr,
    /// SNMP index of the input interface.
    pub input: u16,
    /// SNMP index of the output interface.
    pub output: u16,
    /// Packets in the flow (dPkts).
    pub packets: u32,
    /// Layer-3 bytes in the flow (dOctets).
    pub octets: u32,
    /// Exporter uptime in milliseconds at the first packet.
    pub first: u32,
    /// Exporter uptime in milliseconds at the last packet.
    pub last: u32,
    pub src_port: u16,
    pub dst_port: u16,
    /// OR of the TCP flags of every packet.
    pub tcp_flags: u8,
    pub protocol: u8,
    pub tos: u8,
    pub src_as: u16,
    pub dst_as: u16,
    pub src_mask: u8,
    pub dst_mask: u8,
}

impl Default for RecordRepr {
    fn default() -> Self {
        RecordRepr {
            src_addr: Ipv4Addr::UNSPECIFIED,
            dst_addr: Ipv4Addr::UNSPECIFIED,
            next_hop: Ipv4Addr::UNSPECIFIED,
            input: 0,
            output: 0,
            packets: 0,
            octets: 0,
            first: 0,
            last: 0,
            src_port: 0,
            dst_port: 0,
            tcp_flags: 0,
            protocol: 0,
            tos: 0,
            src_as: 0,
            dst_as: 0,
            src_mask: 0,
            dst_mask: 0,
        }
    }
}

impl RecordRepr {
    /// Parse a flow record, checking its length first. Every field value is allowed.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(record: &Record<&T>) -> Result<RecordRepr> {
        record.check_len()?;
        Ok(RecordRepr {
            src_addr: record.src_addr(),
            dst_addr: record.dst_addr(),
            next_hop: record.next_hop(),
            input: record.input(),
            output: record.output(),
            packets: record.packets(),
            octets: record.octets(),
            first: record.first(),
            last: record.last(),
            src_port: record.src_port(),
            dst_port: record.dst_port(),
            tcp_flags: record.tcp_flags(),
            protocol: record.protocol(),
            tos: record.tos(),
            src_as: record.src_as(),
            dst_as: record.dst_as(),
            src_mask: record.src_mask(),
            dst_mask: record.dst_mask(),
        })
    }

    /// Return the length of the record [`RecordRepr::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        RECORD_LEN
    }

    /// Emit this record into `record`, which must hold at least [`RecordRepr::buffer_len`]
    /// bytes, with both padding fields zero.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(&self, record: &mut Record<&mut T>) {
        record.set_src_addr(self.src_addr);
        record.set_dst_addr(self.dst_addr);
        record.set_next_hop(self.next_hop);
        record.set_input(self.input);
        record.set_output(self.output);
        record.set_packets(self.packets);
        record.set_octets(self.octets);
        record.set_first(self.first);
        record.set_last(self.last);
        record.set_src_port(self.src_port);
        record.set_dst_port(self.dst_port);
        record.set_tcp_flags(self.tcp_flags);
        record.set_protocol(self.protocol);
        record.set_tos(self.tos);
        record.set_src_as(self.src_as);
        record.set_dst_as(self.dst_as);
        record.set_src_mask(self.src_mask);
        record.set_dst_mask(self.dst_mask);
        record.clear_padding();
    }
}

/// Copy a field range into an array. The ranges in `field` have the array's length, so the
/// fallback never happens; it keeps this module free of panicking conversions.
#[inline]
fn read<const N: usize>(bytes: &[u8]) -> [u8; N] {
    bytes.first_chunk::<N>().copied().unwrap_or([0; N])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header with every field non-zero, announcing one record.
    static HEADER_BYTES: [u8; HEADER_LEN] = [
        0x00, 0x05, // version
        0x00, 0x01, // count
        0x01, 0x02, 0x03, 0x04, // sys_uptime
        0x65, 0x43, 0x21, 0x0f, // unix_secs
        0x1d, 0xcd, 0x65, 0x00, // unix_nsecs (500_000_000)
        0x00, 0x00, 0x01, 0x2c, // flow_sequence (300)
        0x01, // engine_type
        0x07, // engine_id
        0x40, 0x64, // sampling: deterministic, 1 in 100
    ];

    /// A record with every field non-zero, padding aside.
    static RECORD_BYTES: [u8; RECORD_LEN] = [
        10, 1, 2, 3, // srcaddr
        192, 168, 4, 5, // dstaddr
        172, 16, 0, 1, // nexthop
        0x00, 0x11, // input
        0x00, 0x22, // output
        0x00, 0x00, 0x00, 0x2a, // dPkts (42)
        0x00, 0x01, 0x00, 0x00, // dOctets (65536)
        0x00, 0x00, 0x27, 0x10, // First (10_000)
        0x00, 0x00, 0x4e, 0x20, // Last (20_000)
        0x9c, 0x40, // srcport (40000)
        0x01, 0xbb, // dstport (443)
        0x00, // pad1
        0x1b, // tcp_flags (ACK|PSH|SYN|FIN)
        0x06, // prot (TCP)
        0xb8, // tos (EF)
        0xfd, 0xe8, // src_as (65000)
        0xfd, 0xe9, // dst_as (65001)
        24,   // src_mask
        16,   // dst_mask
        0x00, 0x00, // pad2
    ];

    fn header_repr() -> HeaderRepr {
        HeaderRepr {
            count: 1,
            sys_uptime: 0x0102_0304,
            unix_secs: 0x6543_210f,
            unix_nsecs: 500_000_000,
            flow_sequence: 300,
            engine_type: 1,
            engine_id: 7,
            sampling: Sampling::new(SamplingMode::Deterministic, 100).unwrap(),
        }
    }

    fn record_repr() -> RecordRepr {
        RecordRepr {
            src_addr: Ipv4Addr::new(10, 1, 2, 3),
            dst_addr: Ipv4Addr::new(192, 168, 4, 5),
            next_hop: Ipv4Addr::new(172, 16, 0, 1),
            input: 0x11,
            output: 0x22,
            packets: 42,
            octets: 65536,
            first: 10_000,
            last: 20_000,
            src_port: 40000,
            dst_port: 443,
            tcp_flags: 0x1b,
            protocol: 6,
            tos: 0xb8,
            src_as: 65000,
            dst_as: 65001,
            src_mask: 24,
            dst_mask: 16,
        }
    }

    fn datagram_bytes() -> Vec<u8> {
        [&HEADER_BYTES[..], &RECORD_BYTES[..]].concat()
    }

    #[test]
    fn layout_constants() {
        assert_eq!(MAX_DATAGRAM_LEN, 1464);
    }

    #[test]
    fn deconstruct_header() {
        let bytes = datagram_bytes();
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.version(), 5);
        assert_eq!(packet.count(), 1);
        assert_eq!(packet.sys_uptime(), 0x0102_0304);
        assert_eq!(packet.unix_secs(), 0x6543_210f);
        assert_eq!(packet.unix_nsecs(), 500_000_000);
        assert_eq!(packet.flow_sequence(), 300);
        assert_eq!(packet.engine_type(), 1);
        assert_eq!(packet.engine_id(), 7);
        assert_eq!(packet.sampling().mode(), SamplingMode::Deterministic);
        assert_eq!(packet.sampling().interval(), 100);
        assert_eq!(packet.total_len(), 72);
        assert_eq!(packet.payload(), &RECORD_BYTES[..]);
        assert_eq!(packet.records().len(), 1);
    }

    #[test]
    fn deconstruct_record() {
        let record = Record::new_checked(&RECORD_BYTES[..]).unwrap();
        assert_eq!(record.src_addr(), Ipv4Addr::new(10, 1, 2, 3));
        assert_eq!(record.dst_addr(), Ipv4Addr::new(192, 168, 4, 5));
        assert_eq!(record.next_hop(), Ipv4Addr::new(172, 16, 0, 1));
        assert_eq!(record.input(), 0x11);
        assert_eq!(record.output(), 0x22);
        assert_eq!(record.packets(), 42);
        assert_eq!(record.octets(), 65536);
        assert_eq!(record.first(), 10_000);
        assert_eq!(record.last(), 20_000);
        assert_eq!(record.src_port(), 40000);
        assert_eq!(record.dst_port(), 443);
        assert_eq!(record.pad1(), 0);
        assert_eq!(record.tcp_flags(), 0x1b);
        assert_eq!(record.protocol(), 6);
        assert_eq!(record.tos(), 0xb8);
        assert_eq!(record.src_as(), 65000);
        assert_eq!(record.dst_as(), 65001);
        assert_eq!(record.src_mask(), 24);
        assert_eq!(record.dst_mask(), 16);
        assert_eq!(record.pad2(), 0);
    }

    #[test]
    fn emit_header_golden() {
        // Start from all ones: emit must write every byte of the header and leave the records.
        let mut bytes = [0xff_u8; HEADER_LEN + 2];
        let repr = header_repr();
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes[..HEADER_LEN], HEADER_BYTES);
        assert_eq!(bytes[HEADER_LEN..], [0xff, 0xff]);
        assert_eq!(repr.buffer_len(), HEADER_LEN);
        assert_eq!(repr.datagram_len(), HEADER_LEN + RECORD_LEN);
    }

    #[test]
    fn emit_record_golden() {
        // From all ones too: the padding must come out zero.
        let mut bytes = [0xff_u8; RECORD_LEN];
        let repr = record_repr();
        repr.emit(&mut Record::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, RECORD_BYTES);
        assert_eq!(repr.buffer_len(), RECORD_LEN);
    }

    #[test]
    fn parse_golden() {
        let bytes = datagram_bytes();
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(HeaderRepr::parse(&packet), Ok(header_repr()));
        let records: Vec<_> = packet
            .records()
            .map(|r| RecordRepr::parse(&r).unwrap())
            .collect();
        assert_eq!(records, [record_repr()]);
        assert_eq!(
            RecordRepr::parse(&Record::new_checked(&RECORD_BYTES[..]).unwrap()),
            Ok(record_repr())
        );
    }

    #[test]
    fn construct_datagram() {
        let mut bytes = vec![0xee_u8; HEADER_LEN + RECORD_LEN];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        header_repr().emit(&mut packet);
        record_repr().emit(&mut Record::new_unchecked(packet.payload_mut()));
        assert_eq!(bytes, datagram_bytes());
    }

    #[test]
    fn round_trip() {
        let headers = [
            HeaderRepr::default(),
            header_repr(),
            HeaderRepr {
                count: 0,
                sys_uptime: u32::MAX,
                unix_secs: u32::MAX,
                unix_nsecs: 999_999_999,
                flow_sequence: u32::MAX,
                engine_type: u8::MAX,
                engine_id: u8::MAX,
                sampling: Sampling::new(SamplingMode::Random, Sampling::MAX_INTERVAL).unwrap(),
            },
        ];
        for repr in headers {
            let mut bytes = vec![0_u8; repr.datagram_len()];
            repr.emit(&mut Packet::new_unchecked(&mut bytes[..]));
            let parsed = HeaderRepr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap();
            assert_eq!(parsed, repr);
        }
        let all_max = RecordRepr {
            src_addr: Ipv4Addr::BROADCAST,
            dst_addr: Ipv4Addr::BROADCAST,
            next_hop: Ipv4Addr::BROADCAST,
            input: u16::MAX,
            output: u16::MAX,
            packets: u32::MAX,
            octets: u32::MAX,
            first: u32::MAX,
            last: u32::MAX,
            src_port: u16::MAX,
            dst_port: u16::MAX,
            tcp_flags: u8::MAX,
            protocol: u8::MAX,
            tos: u8::MAX,
            src_as: u16::MAX,
            dst_as: u16::MAX,
            src_mask: u8::MAX,
            dst_mask: u8::MAX,
        };
        for repr in [RecordRepr::default(), record_repr(), all_max] {
            let mut bytes = [0_u8; RECORD_LEN];
            repr.emit(&mut Record::new_unchecked(&mut bytes[..]));
            let parsed = RecordRepr::parse(&Record::new_checked(&bytes[..]).unwrap()).unwrap();
            assert_eq!(parsed, repr);
        }
    }

    #[test]
    fn full_datagram_round_trip() {
        let header = HeaderRepr {
            count: 30,
            ..header_repr()
        };
        let mut bytes = vec![0_u8; MAX_DATAGRAM_LEN];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        header.emit(&mut packet);
        for (i, chunk) in packet
            .payload_mut()
            .chunks_exact_mut(RECORD_LEN)
            .enumerate()
        {
            let repr = RecordRepr {
                packets: i as u32,
                ..record_repr()
            };
            repr.emit(&mut Record::new_unchecked(chunk));
        }
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(HeaderRepr::parse(&packet), Ok(header));
        let packets: Vec<u32> = packet
            .records()
            .map(|r| RecordRepr::parse(&r).unwrap().packets)
            .collect();
        assert_eq!(packets, (0..30).collect::<Vec<_>>());
    }

    #[test]
    fn every_truncation_rejected() {
        let bytes = datagram_bytes();
        for len in 0..bytes.len() {
            let short = &bytes[..len];
            let needed = if len < HEADER_LEN {
                HEADER_LEN
            } else {
                HEADER_LEN + RECORD_LEN
            };
            let expected = Error::Truncated { needed, got: len };
            assert_eq!(Packet::new_checked(short).unwrap_err(), expected);
            // parse checks the length itself, so an unchecked view cannot make it panic.
            assert_eq!(
                HeaderRepr::parse(&Packet::new_unchecked(short)),
                Err(expected)
            );
            // Nor can iterating the records of an unchecked view.
            assert_eq!(Packet::new_unchecked(short).records().count(), 0);
        }
        for len in 0..RECORD_LEN {
            let short = &RECORD_BYTES[..len];
            let expected = Error::Truncated {
                needed: RECORD_LEN,
                got: len,
            };
            assert_eq!(Record::new_checked(short).unwrap_err(), expected);
            assert_eq!(
                RecordRepr::parse(&Record::new_unchecked(short)),
                Err(expected)
            );
        }
    }

    #[test]
    fn trailing_bytes_ignored() {
        let mut bytes = datagram_bytes();
        bytes.extend_from_slice(&[0xaa; 7]);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(HeaderRepr::parse(&packet), Ok(header_repr()));
        assert_eq!(packet.records().len(), 1);
    }

    #[test]
    fn other_versions_rejected() {
        for version in [0_u16, 1, 7, 9, 10, 0x0500, u16::MAX] {
            let mut bytes = datagram_bytes();
            bytes[..2].copy_from_slice(&version.to_be_bytes());
            assert_eq!(
                HeaderRepr::parse(&Packet::new_unchecked(&bytes[..])),
                Err(Error::Malformed("NetFlow version is not 5")),
                "version {version}"
            );
        }
    }

    #[test]
    fn count_above_30_rejected() {
        for count in [31_u16, 32, 255, u16::MAX] {
            // Even with room for every announced record.
            let mut bytes = vec![0_u8; HEADER_LEN + usize::from(count) * RECORD_LEN];
            bytes[..HEADER_LEN].copy_from_slice(&HEADER_BYTES);
            bytes[2..4].copy_from_slice(&count.to_be_bytes());
            assert_eq!(
                HeaderRepr::parse(&Packet::new_checked(&bytes[..]).unwrap()),
                Err(Error::Malformed("NetFlow v5 count above 30")),
                "count {count}"
            );
        }
        let mut bytes = vec![0_u8; MAX_DATAGRAM_LEN];
        bytes[..HEADER_LEN].copy_from_slice(&HEADER_BYTES);
        bytes[2..4].copy_from_slice(&30_u16.to_be_bytes());
        assert!(HeaderRepr::parse(&Packet::new_checked(&bytes[..]).unwrap()).is_ok());
    }

    #[test]
    fn sampling_field() {
        assert_eq!(Sampling::NONE.raw(), 0);
        assert_eq!(Sampling::NONE.mode(), SamplingMode::None);
        assert_eq!(Sampling::default(), Sampling::NONE);
        let s = Sampling::new(SamplingMode::Deterministic, 100).unwrap();
        assert_eq!(s.raw(), 0x4064);
        let s = Sampling::new(SamplingMode::Random, 0x3fff).unwrap();
        assert_eq!(s.raw(), 0xbfff);
        assert_eq!((s.mode(), s.interval()), (SamplingMode::Random, 0x3fff));
        assert_eq!(Sampling::new(SamplingMode::Deterministic, 0x4000), None);
        assert_eq!(Sampling::from_raw(0xc001).mode(), SamplingMode::Reserved);
        assert_eq!(Sampling::from_raw(0xc001).interval(), 1);
        for raw in [0_u16, 1, 0x4000, 0x7fff, 0x8000, 0xffff] {
            let s = Sampling::from_raw(raw);
            assert_eq!(Sampling::new(s.mode(), s.interval()), Some(s));
        }
    }
}
