//! VXLAN header (RFC 7348 §5).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |R|R|R|R|I|R|R|R|                   Reserved                    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |        VXLAN Network Identifier (VNI)         |   Reserved    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use core::{fmt, num::IntErrorKind, str::FromStr};

use super::{Error, Result};

/// A read/write wrapper around a VXLAN header and its payload (the inner Ethernet frame).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

mod field {
    use core::ops::{Range, RangeFrom};

    pub const FLAGS: usize = 0;
    pub const RESERVED_1: Range<usize> = 1..4;
    pub const VNI: Range<usize> = 4..7;
    pub const RESERVED_2: usize = 7;
    pub const PAYLOAD: RangeFrom<usize> = 8..;
}

/// Length of the VXLAN header.
pub const HEADER_LEN: usize = 8;

/// The I flag: the VNI field is valid. The only flag RFC 7348 defines.
pub const FLAG_VNI: u8 = 0x08;

#[expect(
    clippy::indexing_slicing,
    reason = "smoltcp contract: every field lies within HEADER_LEN, which check_len guarantees"
)]
impl<T: AsRef<[u8]>> Packet<T> {
    /// Imbue a raw octet buffer with VXLAN header structure, without checking its length.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Shorthand for [`Packet::new_unchecked`] then [`Packet::check_len`].
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Ensure that no accessor method will panic if called.
    pub fn check_len(&self) -> Result<()> {
        let got = self.buffer.as_ref().len();
        if got < HEADER_LEN {
            Err(Error::Truncated {
                needed: HEADER_LEN,
                got,
            })
        } else {
            Ok(())
        }
    }

    /// Consume the packet, returning the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Return the flags byte: [`FLAG_VNI`] and the reserved bits around it.
    #[inline]
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// Return the VXLAN network identifier.
    #[inline]
    pub fn vni(&self) -> Vni {
        let b = &self.buffer.as_ref()[field::VNI];
        Vni(u32::from_be_bytes([0, b[0], b[1], b[2]]))
    }
}

#[expect(
    clippy::indexing_slicing,
    reason = "smoltcp contract: the payload starts at HEADER_LEN, which check_len guarantees"
)]
impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// Return the payload: the inner Ethernet frame.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

#[expect(
    clippy::indexing_slicing,
    reason = "smoltcp contract: every field lies within HEADER_LEN, which check_len guarantees"
)]
impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Set the flags byte.
    #[inline]
    pub fn set_flags(&mut self, value: u8) {
        self.buffer.as_mut()[field::FLAGS] = value;
    }

    /// Set the VXLAN network identifier.
    #[inline]
    pub fn set_vni(&mut self, value: Vni) {
        let [_, b0, b1, b2] = value.get().to_be_bytes();
        self.buffer.as_mut()[field::VNI].copy_from_slice(&[b0, b1, b2]);
    }

    /// Zero both reserved fields, as RFC 7348 asks of senders.
    #[inline]
    pub fn clear_reserved(&mut self) {
        let data = self.buffer.as_mut();
        data[field::RESERVED_1].fill(0);
        data[field::RESERVED_2] = 0;
    }

    /// Return a mutable pointer to the payload.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// A VXLAN network identifier: 24 bits, so at most [`Vni::MAX`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Vni(u32);

impl Vni {
    /// The largest VNI, 2^24 - 1.
    pub const MAX: Vni = Vni(0xFF_FFFF);

    /// Return `None` if `value` does not fit in 24 bits.
    pub const fn new(value: u32) -> Option<Vni> {
        if value <= Self::MAX.0 {
            Some(Vni(value))
        } else {
            None
        }
    }

    /// Return the VNI as a number.
    pub const fn get(self) -> u32 {
        self.0
    }
}

/// VNI 1, the `--vni` default.
impl Default for Vni {
    fn default() -> Self {
        Vni(1)
    }
}

impl fmt::Display for Vni {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Why a string is not a VNI. Holds the string as given, for the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseVniError {
    #[error("VNI {0} is above 16777215 (24 bits)")]
    TooBig(String),
    #[error("VNI '{0}' is not a number")]
    NotANumber(String),
}

/// Parses a decimal VNI, as `--vni` takes it.
impl FromStr for Vni {
    type Err = ParseVniError;

    fn from_str(s: &str) -> core::result::Result<Self, Self::Err> {
        match s.parse::<u32>() {
            Ok(value) => Vni::new(value).ok_or_else(|| ParseVniError::TooBig(s.to_owned())),
            Err(e) if *e.kind() == IntErrorKind::PosOverflow => {
                Err(ParseVniError::TooBig(s.to_owned()))
            }
            Err(_) => Err(ParseVniError::NotANumber(s.to_owned())),
        }
    }
}

/// A high-level representation of a VXLAN header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Repr {
    pub vni: Vni,
}

impl Repr {
    /// Parse a VXLAN header, checking its length first.
    ///
    /// Rejects a header without the I flag. The reserved bits are ignored, as RFC 7348 §5 asks
    /// of receivers, so headers from senders that use them (e.g. Group Based Policy) still parse.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&T>) -> Result<Repr> {
        packet.check_len()?;
        if packet.flags() & FLAG_VNI == 0 {
            return Err(Error::Malformed("VXLAN I flag (0x08) not set"));
        }
        Ok(Repr { vni: packet.vni() })
    }

    /// Return the length of the header [`Repr::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Emit this header into `packet`, which must hold at least [`Repr::buffer_len`] bytes:
    /// the I flag, the VNI, every reserved bit zero. The payload is left alone.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(&self, packet: &mut Packet<&mut T>) {
        packet.set_flags(FLAG_VNI);
        packet.clear_reserved();
        packet.set_vni(self.vni);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static HEADER_BYTES: [u8; 8] = [0x08, 0x00, 0x00, 0x00, 0x12, 0x34, 0x56, 0x00];

    static PACKET_BYTES: [u8; 12] = [
        0x08, 0x00, 0x00, 0x00, 0x12, 0x34, 0x56, 0x00, 0xaa, 0xbb, 0xcc, 0xdd,
    ];

    fn vni(value: u32) -> Vni {
        Vni::new(value).unwrap()
    }

    #[test]
    fn deconstruct() {
        let packet = Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.flags(), FLAG_VNI);
        assert_eq!(packet.vni(), vni(0x12_3456));
        assert_eq!(packet.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
    }

    #[test]
    fn construct() {
        let mut bytes = [0xff_u8; 12];
        let mut packet = Packet::new_unchecked(&mut bytes);
        packet.set_flags(FLAG_VNI);
        packet.clear_reserved();
        packet.set_vni(vni(0x12_3456));
        packet
            .payload_mut()
            .copy_from_slice(&[0xaa, 0xbb, 0xcc, 0xdd]);
        assert_eq!(packet.into_inner(), &PACKET_BYTES);
    }

    #[test]
    fn emit_golden() {
        // Start from all ones: emit must clear every reserved bit and leave the payload alone.
        let mut bytes = [0xff_u8; 10];
        let repr = Repr {
            vni: vni(0x12_3456),
        };
        repr.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes[..HEADER_LEN], HEADER_BYTES);
        assert_eq!(bytes[HEADER_LEN..], [0xff, 0xff]);
        assert_eq!(repr.buffer_len(), HEADER_LEN);
    }

    #[test]
    fn parse_golden() {
        let packet = Packet::new_checked(&HEADER_BYTES[..]).unwrap();
        assert_eq!(
            Repr::parse(&packet),
            Ok(Repr {
                vni: vni(0x12_3456)
            })
        );
        assert!(packet.payload().is_empty());
    }

    #[test]
    fn round_trip() {
        for value in [0, 1, 42, 4096, 0x12_3456, 0xFF_FFFE, 0xFF_FFFF] {
            let repr = Repr { vni: vni(value) };
            let mut bytes = [0_u8; HEADER_LEN];
            repr.emit(&mut Packet::new_unchecked(&mut bytes[..]));
            let parsed = Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()).unwrap();
            assert_eq!(parsed, repr, "VNI {value}");
        }
    }

    #[test]
    fn max_vni() {
        let mut bytes = [0_u8; HEADER_LEN];
        Repr { vni: Vni::MAX }.emit(&mut Packet::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, [0x08, 0, 0, 0, 0xff, 0xff, 0xff, 0]);
        assert_eq!(Packet::new_unchecked(&bytes[..]).vni().get(), 16_777_215);
    }

    #[test]
    fn every_truncation_rejected() {
        for len in 0..HEADER_LEN {
            let short = &HEADER_BYTES[..len];
            let expected = Error::Truncated {
                needed: HEADER_LEN,
                got: len,
            };
            assert_eq!(Packet::new_checked(short).unwrap_err(), expected);
            // parse checks the length itself, so an unchecked view cannot make it panic.
            assert_eq!(Repr::parse(&Packet::new_unchecked(short)), Err(expected));
        }
        assert!(Packet::new_checked(&HEADER_BYTES[..]).is_ok());
    }

    #[test]
    fn missing_i_flag_rejected() {
        for flags in [0x00, 0xf7, 0x80, 0x01] {
            let mut bytes = HEADER_BYTES;
            bytes[0] = flags;
            assert_eq!(
                Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()),
                Err(Error::Malformed("VXLAN I flag (0x08) not set")),
                "flags {flags:#04x}"
            );
        }
    }

    #[test]
    fn reserved_bits_ignored_on_parse() {
        let bytes = [0xff, 0xff, 0xff, 0xff, 0x12, 0x34, 0x56, 0xff];
        assert_eq!(
            Repr::parse(&Packet::new_checked(&bytes[..]).unwrap()),
            Ok(Repr {
                vni: vni(0x12_3456)
            })
        );
    }

    #[test]
    fn vni_range() {
        assert_eq!(Vni::new(0).map(Vni::get), Some(0));
        assert_eq!(Vni::new(0xFF_FFFF), Some(Vni::MAX));
        assert_eq!(Vni::new(0x100_0000), None);
        assert_eq!(Vni::new(u32::MAX), None);
        assert_eq!(Vni::default().get(), 1);
    }

    #[test]
    fn vni_from_str_and_display() {
        assert_eq!("0".parse::<Vni>(), Ok(vni(0)));
        assert_eq!("4789".parse::<Vni>(), Ok(vni(4789)));
        assert_eq!("16777215".parse::<Vni>(), Ok(Vni::MAX));
        assert_eq!(Vni::MAX.to_string(), "16777215");
        assert_eq!(Vni::default().to_string(), "1");
        for s in ["0", "1", "100", "16777215"] {
            assert_eq!(s.parse::<Vni>().unwrap().to_string(), s);
        }
    }

    #[test]
    fn vni_from_str_errors() {
        let err = |s: &str| s.parse::<Vni>().unwrap_err().to_string();
        assert_eq!(err("16777216"), "VNI 16777216 is above 16777215 (24 bits)");
        assert_eq!(
            err("99999999999"),
            "VNI 99999999999 is above 16777215 (24 bits)"
        );
        assert_eq!(err("abc"), "VNI 'abc' is not a number");
        assert_eq!(err(""), "VNI '' is not a number");
        assert_eq!(err("-1"), "VNI '-1' is not a number");
        assert_eq!(err(" 1"), "VNI ' 1' is not a number");
        assert_eq!(err("0x10"), "VNI '0x10' is not a number");
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            Error::Truncated { needed: 8, got: 3 }.to_string(),
            "truncated: 8 bytes needed, 3 present"
        );
        assert_eq!(
            Error::Malformed("VXLAN I flag (0x08) not set").to_string(),
            "malformed: VXLAN I flag (0x08) not set"
        );
    }
}
