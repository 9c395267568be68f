//! GRE header (RFC 2784), with the key and sequence number of RFC 2890.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |C|R|K|S|    Reserved0    | Ver |         Protocol Type         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |      Checksum (optional)      |       Reserved1 (optional)    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                         Key (optional)                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                 Sequence Number (optional)                    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Each optional word is present when its flag (C, K, S) is set, in that order. R is RFC 1701's
//! routing bit, which RFC 2784 retired.

use super::{Error, Result, checksum};

/// Protocol type of Transparent Ethernet Bridging: the payload is a whole Ethernet frame.
pub const ETHERTYPE_TEB: u16 = 0x6558;
/// Protocol type of ERSPAN Type I (no ERSPAN header, no S bit) and Type II (S bit set, ERSPAN
/// version 1 header).
pub const ERSPAN_I_II: u16 = 0x88BE;
/// Protocol type of ERSPAN Type III (ERSPAN version 2 header).
pub const ERSPAN_III: u16 = 0x22EB;

/// C: the checksum and Reserved1 words are present.
pub const FLAG_CHECKSUM: u16 = 0x8000;
/// R: RFC 1701 routing information is present. Never sent; rejected by [`Repr::parse`].
pub const FLAG_ROUTING: u16 = 0x4000;
/// K: the key word is present (RFC 2890).
pub const FLAG_KEY: u16 = 0x2000;
/// S: the sequence number word is present (RFC 2890).
pub const FLAG_SEQUENCE: u16 = 0x1000;
/// Bits 4 and 5 (RFC 1701's strict source route and top recursion bit): RFC 2784 §2.3 makes a
/// receiver that does not implement RFC 1701 discard packets that set them, like R.
pub const RFC1701_BITS: u16 = 0x0c00;
/// The version number, bits 13-15. Only version 0 is GRE (version 1 is PPTP's).
pub const VERSION_MASK: u16 = 0x0007;

/// Length of the mandatory part of the header: flags, version and protocol type.
pub const HEADER_LEN: usize = 4;
/// Length of the longest header: all three optional words present.
pub const MAX_HEADER_LEN: usize = HEADER_LEN + 3 * OPTION_LEN;
/// Length of each optional word.
const OPTION_LEN: usize = 4;

/// A read/write wrapper around a GRE header and its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use core::ops::Range;

    pub const FLAGS_VERSION: Range<usize> = 0..2;
    pub const PROTOCOL: Range<usize> = 2..4;
    /// The checksum, when C is set: always the first optional word.
    pub const CHECKSUM: Range<usize> = 4..6;
    pub const RESERVED_1: Range<usize> = 6..8;
    pub const OPTIONS: usize = 4;

    /// Where the key starts: after the checksum word, if there is one.
    pub const fn key(checksum: bool) -> Range<usize> {
        let start = OPTIONS + 4 * checksum as usize;
        start..start + 4
    }

    /// Where the sequence number starts: after the checksum and key words that are present.
    pub const fn sequence(checksum: bool, key: bool) -> Range<usize> {
        let start = OPTIONS + 4 * (checksum as usize + key as usize);
        start..start + 4
    }
}

#[expect(
    clippy::indexing_slicing,
    reason = "smoltcp contract: every field lies within header_len, which check_len guarantees"
)]
impl<T: AsRef<[u8]>> Packet<T> {
    /// Imbue a raw octet buffer with GRE header structure, without checking its length.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Shorthand for [`Packet::new_unchecked`] then [`Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Ensure that no accessor method will panic if called: the buffer holds the mandatory
    /// part and every optional word its flags announce.
    pub fn check_len(&self) -> Result<()> {
        let got = self.buffer.as_ref().len();
        if got < HEADER_LEN {
            return Err(Error::Truncated {
                needed: HEADER_LEN,
                got,
            });
        }
        let needed = self.header_len();
        if got < needed {
            Err(Error::Truncated { needed, got })
        } else {
            Ok(())
        }
    }

    /// Consume the packet, returning the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Return the first 16 bits: the C, R, K, S flags, the reserved bits and the version.
    #[inline]
    pub fn flags_version(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::FLAGS_VERSION];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Return the C flag: checksum present.
    #[inline]
    pub fn checksum_present(&self) -> bool {
        self.flags_version() & FLAG_CHECKSUM != 0
    }

    /// Return the R flag: RFC 1701 routing present.
    #[inline]
    pub fn routing_present(&self) -> bool {
        self.flags_version() & FLAG_ROUTING != 0
    }

    /// Return the K flag: key present.
    #[inline]
    pub fn key_present(&self) -> bool {
        self.flags_version() & FLAG_KEY != 0
    }

    /// Return the S flag: sequence number present.
    #[inline]
    pub fn sequence_present(&self) -> bool {
        self.flags_version() & FLAG_SEQUENCE != 0
    }

    /// Return the version number.
    #[inline]
    pub fn version(&self) -> u8 {
        (self.flags_version() & VERSION_MASK) as u8
    }

    /// Return the protocol type: the `EtherType` of the payload.
    #[inline]
    pub fn protocol(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::PROTOCOL];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Return the header length the flags announce: 4, plus 4 for each of C, K, S.
    #[inline]
    pub fn header_len(&self) -> usize {
        let words = usize::from(self.checksum_present())
            + usize::from(self.key_present())
            + usize::from(self.sequence_present());
        HEADER_LEN + OPTION_LEN * words
    }

    /// Return the checksum, if C is set.
    #[inline]
    pub fn checksum(&self) -> Option<u16> {
        self.checksum_present().then(|| {
            let b = &self.buffer.as_ref()[field::CHECKSUM];
            u16::from_be_bytes([b[0], b[1]])
        })
    }

    /// Return the key, if K is set.
    #[inline]
    pub fn key(&self) -> Option<u32> {
        self.key_present()
            .then(|| self.word(field::key(self.checksum_present())))
    }

    /// Return the sequence number, if S is set.
    #[inline]
    pub fn sequence_number(&self) -> Option<u32> {
        self.sequence_present()
            .then(|| self.word(field::sequence(self.checksum_present(), self.key_present())))
    }

    /// Check the checksum, if C is set, over the whole buffer: the view must hold the GRE
    /// header and its entire payload. Without C there is nothing to check.
    pub fn verify_checksum(&self) -> bool {
        !self.checksum_present() || checksum::fold(checksum::sum(self.buffer.as_ref())) == 0xffff
    }

    fn word(&self, range: core::ops::Range<usize>) -> u32 {
        let b = &self.buffer.as_ref()[range];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }
}

#[expect(
    clippy::indexing_slicing,
    reason = "smoltcp contract: the payload starts at header_len, which check_len guarantees"
)]
impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// Return the payload: what follows the optional words.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

#[expect(
    clippy::indexing_slicing,
    reason = "smoltcp contract: every field lies within header_len, which check_len guarantees"
)]
impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set the first 16 bits: flags, reserved bits and version. Set them before the optional
    /// words, whose places they decide.
    #[inline]
    pub fn set_flags_version(&mut self, value: u16) {
        self.buffer.as_mut()[field::FLAGS_VERSION].copy_from_slice(&value.to_be_bytes());
    }

    /// Set the protocol type.
    #[inline]
    pub fn set_protocol(&mut self, value: u16) {
        self.buffer.as_mut()[field::PROTOCOL].copy_from_slice(&value.to_be_bytes());
    }

    /// Set the checksum. Does nothing unless C is set.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        if self.checksum_present() {
            self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&value.to_be_bytes());
        }
    }

    /// Zero Reserved1, as RFC 2784 asks of senders. Does nothing unless C is set.
    #[inline]
    pub fn clear_reserved1(&mut self) {
        if self.checksum_present() {
            self.buffer.as_mut()[field::RESERVED_1].fill(0);
        }
    }

    /// Set the key. Does nothing unless K is set.
    #[inline]
    pub fn set_key(&mut self, value: u32) {
        if self.key_present() {
            let range = field::key(self.checksum_present());
            self.buffer.as_mut()[range].copy_from_slice(&value.to_be_bytes());
        }
    }

    /// Set the sequence number. Does nothing unless S is set.
    #[inline]
    pub fn set_sequence_number(&mut self, value: u32) {
        if self.sequence_present() {
            let range = field::sequence(self.checksum_present(), self.key_present());
            self.buffer.as_mut()[range].copy_from_slice(&value.to_be_bytes());
        }
    }

    /// Compute and write the checksum (if C is set) over this buffer followed by `payload`.
    ///
    /// Pass the payload when the view holds only the header (as the tunnel code does: the
    /// header and the inner frame go out as two iovecs); pass `&[]` when the view already holds
    /// header and payload. Costs one pass over the payload.
    pub fn fill_checksum(&mut self, payload: &[u8]) {
        if !self.checksum_present() {
            return;
        }
        self.set_checksum(0);
        let header = self.buffer.as_ref();
        let mut payload_sum = u64::from(checksum::fold(checksum::sum(payload)));
        if header.len() % 2 == 1 {
            // Words of a payload that starts at an odd offset straddle bytes: RFC 1071 §2(B),
            // their sum is the byte-swapped sum.
            payload_sum = u64::from((payload_sum as u16).swap_bytes());
        }
        let sum = checksum::add(checksum::sum(header), payload_sum);
        self.set_checksum(checksum::complement(sum));
    }

    /// Return a mutable pointer to the payload.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// A high-level representation of a GRE header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    /// The protocol type, e.g. [`ETHERTYPE_TEB`], [`ERSPAN_I_II`], [`ERSPAN_III`].
    pub protocol: u16,
    /// The key (K flag), if any.
    pub key: Option<u32>,
    /// The sequence number (S flag), if any.
    pub sequence: Option<u32>,
    /// Whether the header carries a checksum over itself and the payload (C flag).
    pub checksum: bool,
}

impl Repr {
    /// Parse a GRE header, checking its length first.
    ///
    /// Rejects a version other than 0, the R flag, and bits 4-5 (RFC 2784 §2.3: a receiver
    /// that does not implement RFC 1701 discards those); ignores bits 6-12 and Reserved1, as
    /// RFC 2784 asks. With C set, the view must hold the entire payload, and a wrong checksum
    /// is rejected.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        packet.check_len()?;
        if packet.version() != 0 {
            return Err(Error::Malformed("GRE version is not 0"));
        }
        if packet.routing_present() {
            return Err(Error::Malformed(
                "GRE routing (R flag, RFC 1701) is not supported",
            ));
        }
        if packet.flags_version() & RFC1701_BITS != 0 {
            return Err(Error::Malformed(
                "GRE reserved bits 4-5 set (RFC 2784 §2.3)",
            ));
        }
        if !packet.verify_checksum() {
            return Err(Error::Malformed("GRE checksum does not match"));
        }
        Ok(Repr {
            protocol: packet.protocol(),
            key: packet.key(),
            sequence: packet.sequence_number(),
            checksum: packet.checksum_present(),
        })
    }

    /// Return the length of the header [`Repr::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        let words = self.checksum as usize + self.key.is_some() as usize;
        HEADER_LEN + OPTION_LEN * (words + self.sequence.is_some() as usize)
    }

    /// Return the flags and version word this header starts with.
    pub const fn flags_version(&self) -> u16 {
        let mut flags = 0;
        if self.checksum {
            flags |= FLAG_CHECKSUM;
        }
        if self.key.is_some() {
            flags |= FLAG_KEY;
        }
        if self.sequence.is_some() {
            flags |= FLAG_SEQUENCE;
        }
        flags
    }

    /// Emit this header into `packet`, which must hold at least [`Repr::buffer_len`] bytes:
    /// flags, version 0, every reserved bit zero, the optional words. With `checksum`, the
    /// checksum covers the view's buffer followed by `payload` (see [`Packet::fill_checksum`]);
    /// without, `payload` is not read.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        packet: &mut Packet<&mut T>,
        payload: &[u8],
    ) {
        packet.set_flags_version(self.flags_version());
        packet.set_protocol(self.protocol);
        packet.clear_reserved1();
        if let Some(key) = self.key {
            packet.set_key(key);
        }
        if let Some(sequence) = self.sequence {
            packet.set_sequence_number(sequence);
        }
        packet.fill_checksum(payload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// C, K and S, TEB, key 0x01020304, sequence 0xa0b0c0d0, then a 6-byte payload.
    #[rustfmt::skip]
    static PACKET_BYTES: [u8; 22] = [
        0xb0, 0x00,             // C, K, S; version 0
        0x65, 0x58,             // Transparent Ethernet Bridging
        0xeb, 0x52,             // checksum: b000 + 6558 + 0102 + 0304 + a0b0 + c0d0 + 1122
                                //   + 3344 + 5566 = 314aa, folded 14ad, !14ad = eb52
        0x00, 0x00,             // Reserved1
        0x01, 0x02, 0x03, 0x04, // key
        0xa0, 0xb0, 0xc0, 0xd0, // sequence number
        0x11, 0x22, 0x33, 0x44, 0x55, 0x66, // payload
    ];

    static PAYLOAD: [u8; 6] = [0x11, 0x22, 0x33, 0x44, 0x55, 0x66];

    fn full_repr() -> Repr {
        Repr {
            protocol: ETHERTYPE_TEB,
            key: Some(0x0102_0304),
            sequence: Some(0xa0b0_c0d0),
            checksum: true,
        }
    }

    /// Every combination of the three optional words, with non-default values.
    fn every_shape() -> Vec<Repr> {
        let mut reprs = Vec::new();
        for checksum in [false, true] {
            for key in [None, Some(0xdead_beef)] {
                for sequence in [None, Some(0), Some(7), Some(u32::MAX)] {
                    reprs.push(Repr {
                        protocol: ERSPAN_III,
                        key,
                        sequence,
                        checksum,
                    });
                }
            }
        }
        reprs
    }

    #[test]
    fn deconstruct() {
        let packet = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.flags_version(), 0xb000);
        assert!(packet.checksum_present());
        assert!(!packet.routing_present());
        assert!(packet.key_present());
        assert!(packet.sequence_present());
        assert_eq!(packet.version(), 0);
        assert_eq!(packet.protocol(), ETHERTYPE_TEB);
        assert_eq!(packet.header_len(), 16);
        assert_eq!(packet.checksum(), Some(0xeb52));
        assert_eq!(packet.key(), Some(0x0102_0304));
        assert_eq!(packet.sequence_number(), Some(0xa0b0_c0d0));
        assert!(packet.verify_checksum());
        assert_eq!(packet.payload(), &PAYLOAD);
    }

    #[test]
    fn construct() {
        let mut bytes = [0xff_u8; 22];
        let mut packet = Packet::new_unchecked(&mut bytes);
        packet.set_flags_version(FLAG_CHECKSUM | FLAG_KEY | FLAG_SEQUENCE);
        packet.set_protocol(ETHERTYPE_TEB);
        packet.clear_reserved1();
        packet.set_key(0x0102_0304);
        packet.set_sequence_number(0xa0b0_c0d0);
        packet.payload_mut().copy_from_slice(&PAYLOAD);
        packet.fill_checksum(&[]);
        assert_eq!(packet.into_inner(), &PACKET_BYTES);
    }

    #[test]
    fn emit_golden_with_every_option() {
        // Header-only buffer, payload apart: how the tunnel code uses it. Starts all ones so
        // that every reserved bit must be cleared.
        let mut bytes = [0xff_u8; 18];
        let repr = full_repr();
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..16]), &PAYLOAD);
        assert_eq!(bytes[..16], PACKET_BYTES[..16]);
        assert_eq!(bytes[16..], [0xff, 0xff]);
        assert_eq!(repr.buffer_len(), 16);
    }

    #[test]
    fn emit_golden_minimal_and_erspan_shapes() {
        let erspan1 = Repr {
            protocol: ERSPAN_I_II,
            key: None,
            sequence: None,
            checksum: false,
        };
        let mut bytes = [0xff_u8; 4];
        erspan1.emit(&mut Packet::new_unchecked(&mut bytes[..]), &[]);
        assert_eq!(bytes, [0x00, 0x00, 0x88, 0xbe]);

        let erspan3 = Repr {
            protocol: ERSPAN_III,
            sequence: Some(0x0102_0304),
            ..erspan1
        };
        let mut bytes = [0xff_u8; 8];
        erspan3.emit(&mut Packet::new_unchecked(&mut bytes[..]), &[]);
        assert_eq!(bytes, [0x10, 0x00, 0x22, 0xeb, 0x01, 0x02, 0x03, 0x04]);

        let keyed = Repr {
            protocol: ETHERTYPE_TEB,
            key: Some(0x0a0b_0c0d),
            sequence: None,
            checksum: false,
        };
        let mut bytes = [0xff_u8; 8];
        keyed.emit(&mut Packet::new_unchecked(&mut bytes[..]), &[]);
        assert_eq!(bytes, [0x20, 0x00, 0x65, 0x58, 0x0a, 0x0b, 0x0c, 0x0d]);
    }

    #[test]
    fn parse_golden() {
        let packet = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(Repr::parse(&packet), Ok(full_repr()));
    }

    #[test]
    fn round_trip_every_shape() {
        for repr in every_shape() {
            let mut bytes = vec![0_u8; repr.buffer_len() + PAYLOAD.len()];
            bytes[repr.buffer_len()..].copy_from_slice(&PAYLOAD);
            let len = repr.buffer_len();
            repr.emit(&mut Packet::new_unchecked(&mut bytes[..len]), &PAYLOAD);
            let packet = Packet::new_checked(&bytes[..]).unwrap();
            assert_eq!(packet.header_len(), len, "{repr:?}");
            assert_eq!(Repr::parse(&packet), Ok(repr));
            assert_eq!(packet.payload(), &PAYLOAD);
        }
    }

    #[test]
    fn every_truncation_rejected() {
        for repr in every_shape() {
            let mut bytes = vec![0_u8; repr.buffer_len()];
            repr.emit(&mut Packet::new_unchecked(&mut bytes[..]), &[]);
            for len in 0..bytes.len() {
                let short = &bytes[..len];
                let needed = if len < HEADER_LEN {
                    HEADER_LEN
                } else {
                    repr.buffer_len()
                };
                let expected = Error::Truncated { needed, got: len };
                assert_eq!(Packet::new_checked(short).unwrap_err(), expected);
                assert_eq!(Repr::parse(&Packet::new_unchecked(short)), Err(expected));
            }
        }
    }

    #[test]
    fn bad_version_rejected() {
        for version in 1..=7 {
            let mut bytes = [0x00, 0x00, 0x65, 0x58];
            bytes[1] = version;
            assert_eq!(
                Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()),
                Err(Error::Malformed("GRE version is not 0")),
                "version {version}"
            );
        }
    }

    #[test]
    fn rfc1701_bits_rejected() {
        let routing = [0x40, 0x00, 0x65, 0x58];
        assert_eq!(
            Repr::parse(&Packet::new_checked(&routing[..]).unwrap()),
            Err(Error::Malformed(
                "GRE routing (R flag, RFC 1701) is not supported"
            ))
        );
        for first in [0x08, 0x04, 0x0c] {
            let bytes = [first, 0x00, 0x65, 0x58];
            assert_eq!(
                Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()),
                Err(Error::Malformed(
                    "GRE reserved bits 4-5 set (RFC 2784 §2.3)"
                ))
            );
        }
    }

    #[test]
    fn reserved_bits_6_to_12_ignored() {
        // Bits 6-12 all set, version 0: RFC 2784 says receivers ignore them.
        let bytes = [0x03, 0xf8, 0x65, 0x58];
        let repr = Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap();
        assert_eq!(repr.protocol, ETHERTYPE_TEB);
        assert_eq!(repr.key, None);
        assert_eq!(repr.sequence, None);
    }

    #[test]
    fn bad_checksum_rejected() {
        for at in [4, 5, 9, 17, 21] {
            let mut bytes = PACKET_BYTES;
            bytes[at] ^= 0x01;
            assert_eq!(
                Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()),
                Err(Error::Malformed("GRE checksum does not match")),
                "byte {at} flipped"
            );
        }
        // Reserved1 is covered by the checksum too, but parse ignores its value.
        let mut bytes = PACKET_BYTES;
        bytes[6] = 0x12;
        bytes[7] = 0x34;
        assert!(!Packet::new_checked(&bytes[..]).unwrap().verify_checksum());
    }

    #[test]
    fn checksum_of_an_odd_header_and_payload_split() {
        // A view of odd length (header plus one payload byte) and the rest of the payload apart
        // must checksum as the whole.
        let mut whole = PACKET_BYTES;
        Packet::new_unchecked(&mut whole[..]).fill_checksum(&[]);
        let mut split = PACKET_BYTES;
        split[4] = 0;
        split[5] = 0;
        let (view, rest) = split.split_at_mut(17);
        Packet::new_unchecked(&mut view[..]).fill_checksum(rest);
        assert_eq!(split, whole);
        assert_eq!(whole, PACKET_BYTES);
    }

    #[test]
    fn setters_ignore_absent_words() {
        let mut bytes = [0x00, 0x00, 0x65, 0x58];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_checksum(0xffff);
        packet.clear_reserved1();
        packet.set_key(1);
        packet.set_sequence_number(2);
        packet.fill_checksum(&PAYLOAD);
        assert_eq!(packet.checksum(), None);
        assert_eq!(packet.key(), None);
        assert_eq!(packet.sequence_number(), None);
        assert_eq!(bytes, [0x00, 0x00, 0x65, 0x58]);
    }

    #[test]
    fn key_and_sequence_follow_the_flags() {
        // K without C: the key is the first optional word; S without C or K likewise.
        let bytes = [0x30, 0x00, 0x65, 0x58, 0, 0, 0, 1, 0, 0, 0, 2];
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.key(), Some(1));
        assert_eq!(packet.sequence_number(), Some(2));
        let bytes = [0x10, 0x00, 0x65, 0x58, 0, 0, 0, 9];
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.key(), None);
        assert_eq!(packet.sequence_number(), Some(9));
    }

    #[test]
    fn garbage_never_panics() {
        let mut state = 0x2545_f491_u32;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let len = (state % 24) as usize;
            let bytes: Vec<u8> = (0..len).map(|i| (state >> (i % 4 * 8)) as u8).collect();
            let _ = Repr::parse(&Packet::new_unchecked(&bytes[..]));
            if let Ok(packet) = Packet::new_checked(&bytes[..]) {
                let _ = (packet.checksum(), packet.key(), packet.sequence_number());
                let _ = packet.payload();
            }
        }
    }
}
