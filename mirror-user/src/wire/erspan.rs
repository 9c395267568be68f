//! ERSPAN headers: Type II (version 1) and Type III (version 2), after a GRE header.
//!
//! Bit layouts as in Linux's `include/net/erspan.h` (which draws them from
//! draft-foschiano-erspan-03) and Wireshark's `epan/dissectors/packet-erspan.c` (field masks,
//! and the Platform ID 0x3 subheader, which Linux does not describe):
//!
//! ```text
//! Type II (version 1), 8 bytes, GRE protocol 0x88BE with the S flag:
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Ver  |          VLAN         | COS | En|T|    Session ID     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |      Reserved         |                  Index                |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!
//! Type III (version 2), 12 bytes, GRE protocol 0x22EB:
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Ver  |          VLAN         | COS |BSO|T|     Session ID    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                          Timestamp                            |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |             SGT               |P|    FT   |   Hw ID   |D|Gra|O|
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//!
//! followed, when O is set, by an 8-byte platform-specific subheader; Platform ID 0x3 is
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Platf ID |        Reserved       |       Port ID/Index       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                 Upper 32 bits of the Timestamp                |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! ERSPAN Type I has no ERSPAN header at all: a bare 4-byte GRE header (protocol 0x88BE, no
//! sequence number, which is what tells it from Type II) then the mirrored frame. There is
//! nothing for this module to parse; see [`crate::wire::gre`].
//!
//! Values out of range (a VLAN above 4095, a session above 1023...) make `Repr::emit` return
//! an error before it writes anything; the `Packet` setters mask their argument to the field's
//! width, for callers that have checked it already.

use super::{Error, Result};

/// The Ver field of a Type II header.
pub const VERSION_TYPE_II: u8 = 1;
/// The Ver field of a Type III header.
pub const VERSION_TYPE_III: u8 = 2;
/// Length of a Type II header.
pub const TYPE_II_HEADER_LEN: usize = 8;
/// Length of a Type III header without the platform-specific subheader.
pub const TYPE_III_HEADER_LEN: usize = 12;
/// Length of the platform-specific subheader.
pub const PLATFORM_LEN: usize = 8;

/// Largest VLAN ID (12 bits).
pub const VLAN_MAX: u16 = 0x0fff;
/// Largest class of service (3 bits).
pub const COS_MAX: u8 = 7;
/// Largest session ID (10 bits).
pub const SESSION_MAX: u16 = 0x03ff;
/// Largest Type II index (20 bits).
pub const INDEX_MAX: u32 = 0x000f_ffff;
/// Largest Type III frame type (5 bits).
pub const FRAME_TYPE_MAX: u8 = 0x1f;
/// Largest Type III hardware ID (6 bits).
pub const HW_ID_MAX: u8 = 0x3f;
/// Largest platform ID (6 bits).
pub const PLATFORM_ID_MAX: u8 = 0x3f;
/// Largest Port ID/Index of platform 0x3 (14 bits).
pub const PORT_INDEX_MAX: u16 = 0x3fff;
/// Largest platform-specific information (58 bits).
pub const PLATFORM_INFO_MAX: u64 = (1 << 58) - 1;

/// Type III frame type (FT): an Ethernet frame, the only one this crate sends.
pub const FRAME_TYPE_ETHERNET: u8 = 0;
/// Type III frame type (FT): an IP packet.
pub const FRAME_TYPE_IP: u8 = 2;

mod field {
    use core::ops::{Range, RangeFrom};

    /// Ver (4 bits) and VLAN (12 bits).
    pub const VER_VLAN: Range<usize> = 0..2;
    pub const VER_MASK: u16 = 0xf000;
    pub const VER_SHIFT: u32 = 12;
    pub const VLAN_MASK: u16 = 0x0fff;

    /// COS (3 bits), En or BSO (2 bits), T (1 bit), Session ID (10 bits).
    pub const COS_EN_T_SESSION: Range<usize> = 2..4;
    pub const COS_MASK: u16 = 0xe000;
    pub const COS_SHIFT: u32 = 13;
    pub const EN_MASK: u16 = 0x1800;
    pub const EN_SHIFT: u32 = 11;
    pub const T_MASK: u16 = 0x0400;
    pub const SESSION_MASK: u16 = 0x03ff;

    /// Type II: Reserved (12 bits) and Index (20 bits).
    pub const RESERVED_INDEX: Range<usize> = 4..8;
    pub const INDEX_MASK: u32 = 0x000f_ffff;
    pub const TYPE_II_PAYLOAD: RangeFrom<usize> = 8..;

    /// Type III.
    pub const TIMESTAMP: Range<usize> = 4..8;
    pub const SGT: Range<usize> = 8..10;
    /// P (1), FT (5), Hw ID (6), D (1), Gra (2), O (1).
    pub const P_FT_HW_D_GRA_O: Range<usize> = 10..12;
    pub const P_MASK: u16 = 0x8000;
    pub const FT_MASK: u16 = 0x7c00;
    pub const FT_SHIFT: u32 = 10;
    pub const HW_ID_MASK: u16 = 0x03f0;
    pub const HW_ID_SHIFT: u32 = 4;
    pub const D_MASK: u16 = 0x0008;
    pub const GRA_MASK: u16 = 0x0006;
    pub const GRA_SHIFT: u32 = 1;
    pub const O_MASK: u16 = 0x0001;

    /// The platform-specific subheader, when O is set: Platf ID (6 bits), 58 bits of info.
    pub const PLATFORM: Range<usize> = 12..20;
    pub const PLATFORM_ID_SHIFT: u32 = 58;
    /// Platform 0x3: Reserved (12 bits), Port ID/Index (14 bits), upper 32 timestamp bits.
    pub const PORT_INDEX_SHIFT: u32 = 32;
    pub const PORT_INDEX_MASK: u64 = 0x3fff;
}

/// Accessors of the first word, which both versions share. Callers guarantee 4 bytes.
#[expect(
    clippy::indexing_slicing,
    reason = "both views' check_len guarantee at least the first word"
)]
mod base {
    use core::ops::Range;

    use super::field;

    pub fn get(buffer: &[u8], range: Range<usize>) -> u16 {
        let b = &buffer[range];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Replace the bits of `mask` in the 16-bit word at `range` with `value << shift`, masked.
    pub fn set(buffer: &mut [u8], range: Range<usize>, mask: u16, shift: u32, value: u16) {
        let word = (get(buffer, range.clone()) & !mask) | ((value << shift) & mask);
        buffer[range].copy_from_slice(&word.to_be_bytes());
    }

    pub fn version(buffer: &[u8]) -> u8 {
        ((get(buffer, field::VER_VLAN) & field::VER_MASK) >> field::VER_SHIFT) as u8
    }

    pub fn vlan(buffer: &[u8]) -> u16 {
        get(buffer, field::VER_VLAN) & field::VLAN_MASK
    }

    pub fn cos(buffer: &[u8]) -> u8 {
        ((get(buffer, field::COS_EN_T_SESSION) & field::COS_MASK) >> field::COS_SHIFT) as u8
    }

    pub fn en(buffer: &[u8]) -> u8 {
        ((get(buffer, field::COS_EN_T_SESSION) & field::EN_MASK) >> field::EN_SHIFT) as u8
    }

    pub fn truncated(buffer: &[u8]) -> bool {
        get(buffer, field::COS_EN_T_SESSION) & field::T_MASK != 0
    }

    pub fn session_id(buffer: &[u8]) -> u16 {
        get(buffer, field::COS_EN_T_SESSION) & field::SESSION_MASK
    }

    pub fn set_version(buffer: &mut [u8], value: u8) {
        let (mask, shift) = (field::VER_MASK, field::VER_SHIFT);
        set(buffer, field::VER_VLAN, mask, shift, value.into());
    }

    pub fn set_vlan(buffer: &mut [u8], value: u16) {
        set(buffer, field::VER_VLAN, field::VLAN_MASK, 0, value);
    }

    pub fn set_cos(buffer: &mut [u8], value: u8) {
        let (mask, shift) = (field::COS_MASK, field::COS_SHIFT);
        set(buffer, field::COS_EN_T_SESSION, mask, shift, value.into());
    }

    pub fn set_en(buffer: &mut [u8], value: u8) {
        let (mask, shift) = (field::EN_MASK, field::EN_SHIFT);
        set(buffer, field::COS_EN_T_SESSION, mask, shift, value.into());
    }

    pub fn set_truncated(buffer: &mut [u8], value: bool) {
        let mask = field::T_MASK;
        set(
            buffer,
            field::COS_EN_T_SESSION,
            mask,
            0,
            if value { mask } else { 0 },
        );
    }

    pub fn set_session_id(buffer: &mut [u8], value: u16) {
        set(
            buffer,
            field::COS_EN_T_SESSION,
            field::SESSION_MASK,
            0,
            value,
        );
    }
}

/// En (Type II): how the mirrored frame carried its VLAN (Linux `enum erspan_encap_type`,
/// Wireshark `erspan_encap_vals`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EncapType {
    /// 0b00: originally without VLAN tag.
    #[default]
    NoVlan,
    /// 0b01: originally ISL encapsulated.
    Isl,
    /// 0b10: originally 802.1Q encapsulated (the tag was stripped; the VLAN field holds it).
    Dot1Q,
    /// 0b11: VLAN tag preserved in the mirrored frame.
    InFrame,
}

impl EncapType {
    /// The two-bit field value.
    pub const fn bits(self) -> u8 {
        match self {
            EncapType::NoVlan => 0,
            EncapType::Isl => 1,
            EncapType::Dot1Q => 2,
            EncapType::InFrame => 3,
        }
    }

    /// The type of a two-bit field value; higher bits are ignored.
    pub const fn from_bits(bits: u8) -> EncapType {
        match bits & 3 {
            0 => EncapType::NoVlan,
            1 => EncapType::Isl,
            2 => EncapType::Dot1Q,
            _ => EncapType::InFrame,
        }
    }
}

/// BSO (Type III): Bad/Short/Oversized, the mirrored frame's integrity (Linux `enum
/// erspan_bso`, after RFC 1757).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Bso {
    /// 0b00: good frame with no error, or unknown integrity.
    #[default]
    Good,
    /// 0b01: the payload is a short frame.
    Short,
    /// 0b10: the payload is an oversized frame.
    Oversized,
    /// 0b11: the payload is a bad frame with a CRC or alignment error.
    Bad,
}

impl Bso {
    /// The two-bit field value.
    pub const fn bits(self) -> u8 {
        match self {
            Bso::Good => 0,
            Bso::Short => 1,
            Bso::Oversized => 2,
            Bso::Bad => 3,
        }
    }

    /// The value of a two-bit field; higher bits are ignored.
    pub const fn from_bits(bits: u8) -> Bso {
        match bits & 3 {
            0 => Bso::Good,
            1 => Bso::Short,
            2 => Bso::Oversized,
            _ => Bso::Bad,
        }
    }
}

/// Gra (Type III): the unit of the timestamp (Linux's comment on `erspan_get_timestamp`,
/// Wireshark `erspan_granularity_vals`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Granularity {
    /// 0b00: 100 microseconds. What Linux sends.
    #[default]
    Micros100,
    /// 0b01: 100 nanoseconds.
    Nanos100,
    /// 0b10: IEEE 1588, nanoseconds.
    Ieee1588,
    /// 0b11: user-configured granularity.
    Custom,
}

impl Granularity {
    /// The two-bit field value.
    pub const fn bits(self) -> u8 {
        match self {
            Granularity::Micros100 => 0,
            Granularity::Nanos100 => 1,
            Granularity::Ieee1588 => 2,
            Granularity::Custom => 3,
        }
    }

    /// The value of a two-bit field; higher bits are ignored.
    pub const fn from_bits(bits: u8) -> Granularity {
        match bits & 3 {
            0 => Granularity::Micros100,
            1 => Granularity::Nanos100,
            2 => Granularity::Ieee1588,
            _ => Granularity::Custom,
        }
    }
}

/// A read/write wrapper around an ERSPAN Type II (version 1) header and its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeIIPacket<T: AsRef<[u8]>> {
    buffer: T,
}

#[expect(
    clippy::indexing_slicing,
    reason = "smoltcp contract: every field lies within the 8 bytes check_len guarantees"
)]
impl<T: AsRef<[u8]>> TypeIIPacket<T> {
    /// Imbue a raw octet buffer with Type II header structure, without checking its length.
    pub const fn new_unchecked(buffer: T) -> TypeIIPacket<T> {
        TypeIIPacket { buffer }
    }

    /// Shorthand for [`TypeIIPacket::new_unchecked`] then [`TypeIIPacket::check_len`].
    pub fn new_checked(buffer: T) -> Result<TypeIIPacket<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Ensure that no accessor method will panic if called.
    pub fn check_len(&self) -> Result<()> {
        let got = self.buffer.as_ref().len();
        if got < TYPE_II_HEADER_LEN {
            Err(Error::Truncated {
                needed: TYPE_II_HEADER_LEN,
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

    /// Return the version: [`VERSION_TYPE_II`] in a Type II header.
    #[inline]
    pub fn version(&self) -> u8 {
        base::version(self.buffer.as_ref())
    }

    /// Return the VLAN of the mirrored frame.
    #[inline]
    pub fn vlan(&self) -> u16 {
        base::vlan(self.buffer.as_ref())
    }

    /// Return the class of service of the mirrored frame.
    #[inline]
    pub fn cos(&self) -> u8 {
        base::cos(self.buffer.as_ref())
    }

    /// Return En, how the mirrored frame carried its VLAN.
    #[inline]
    pub fn encap_type(&self) -> EncapType {
        EncapType::from_bits(base::en(self.buffer.as_ref()))
    }

    /// Return T: the mirrored frame was truncated.
    #[inline]
    pub fn truncated(&self) -> bool {
        base::truncated(self.buffer.as_ref())
    }

    /// Return the session ID.
    #[inline]
    pub fn session_id(&self) -> u16 {
        base::session_id(self.buffer.as_ref())
    }

    /// Return the index (the source port or module, as the sender defines it).
    #[inline]
    pub fn index(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::RESERVED_INDEX];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]]) & field::INDEX_MASK
    }
}

#[expect(
    clippy::indexing_slicing,
    reason = "smoltcp contract: the payload starts at 8, which check_len guarantees"
)]
impl<'a, T: AsRef<[u8]> + ?Sized> TypeIIPacket<&'a T> {
    /// Return the payload: the mirrored Ethernet frame.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::TYPE_II_PAYLOAD]
    }
}

#[expect(
    clippy::indexing_slicing,
    reason = "smoltcp contract: every field lies within the 8 bytes check_len guarantees"
)]
impl<T: AsRef<[u8]> + AsMut<[u8]>> TypeIIPacket<T> {
    /// Set the version (4 bits).
    #[inline]
    pub fn set_version(&mut self, value: u8) {
        base::set_version(self.buffer.as_mut(), value);
    }

    /// Set the VLAN (12 bits).
    #[inline]
    pub fn set_vlan(&mut self, value: u16) {
        base::set_vlan(self.buffer.as_mut(), value);
    }

    /// Set the class of service (3 bits).
    #[inline]
    pub fn set_cos(&mut self, value: u8) {
        base::set_cos(self.buffer.as_mut(), value);
    }

    /// Set En.
    #[inline]
    pub fn set_encap_type(&mut self, value: EncapType) {
        base::set_en(self.buffer.as_mut(), value.bits());
    }

    /// Set T.
    #[inline]
    pub fn set_truncated(&mut self, value: bool) {
        base::set_truncated(self.buffer.as_mut(), value);
    }

    /// Set the session ID (10 bits).
    #[inline]
    pub fn set_session_id(&mut self, value: u16) {
        base::set_session_id(self.buffer.as_mut(), value);
    }

    /// Set the index (20 bits) and zero the reserved bits before it.
    #[inline]
    pub fn set_index(&mut self, value: u32) {
        let word = value & field::INDEX_MASK;
        self.buffer.as_mut()[field::RESERVED_INDEX].copy_from_slice(&word.to_be_bytes());
    }

    /// Return a mutable pointer to the payload.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::TYPE_II_PAYLOAD]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for TypeIIPacket<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// A read/write wrapper around an ERSPAN Type III (version 2) header, its platform-specific
/// subheader if O is set, and its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeIIIPacket<T: AsRef<[u8]>> {
    buffer: T,
}

#[expect(
    clippy::indexing_slicing,
    reason = "smoltcp contract: every field lies within header_len, which check_len guarantees"
)]
impl<T: AsRef<[u8]>> TypeIIIPacket<T> {
    /// Imbue a raw octet buffer with Type III header structure, without checking its length.
    pub const fn new_unchecked(buffer: T) -> TypeIIIPacket<T> {
        TypeIIIPacket { buffer }
    }

    /// Shorthand for [`TypeIIIPacket::new_unchecked`] then [`TypeIIIPacket::check_len`].
    pub fn new_checked(buffer: T) -> Result<TypeIIIPacket<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Ensure that no accessor method will panic if called: 12 bytes, 20 when O is set.
    pub fn check_len(&self) -> Result<()> {
        let got = self.buffer.as_ref().len();
        if got < TYPE_III_HEADER_LEN {
            return Err(Error::Truncated {
                needed: TYPE_III_HEADER_LEN,
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

    /// Return the version: [`VERSION_TYPE_III`] in a Type III header.
    #[inline]
    pub fn version(&self) -> u8 {
        base::version(self.buffer.as_ref())
    }

    /// Return the VLAN of the mirrored frame.
    #[inline]
    pub fn vlan(&self) -> u16 {
        base::vlan(self.buffer.as_ref())
    }

    /// Return the class of service of the mirrored frame.
    #[inline]
    pub fn cos(&self) -> u8 {
        base::cos(self.buffer.as_ref())
    }

    /// Return BSO, the mirrored frame's integrity.
    #[inline]
    pub fn bso(&self) -> Bso {
        Bso::from_bits(base::en(self.buffer.as_ref()))
    }

    /// Return T: the mirrored frame was truncated.
    #[inline]
    pub fn truncated(&self) -> bool {
        base::truncated(self.buffer.as_ref())
    }

    /// Return the session ID.
    #[inline]
    pub fn session_id(&self) -> u16 {
        base::session_id(self.buffer.as_ref())
    }

    /// Return the timestamp (its lower 32 bits when a platform subheader holds the upper ones),
    /// in the unit [`TypeIIIPacket::granularity`] gives.
    #[inline]
    pub fn timestamp(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::TIMESTAMP];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// Return the security group tag.
    #[inline]
    pub fn sgt(&self) -> u16 {
        base::get(self.buffer.as_ref(), field::SGT)
    }

    /// Return P: the payload is an Ethernet protocol frame (a PDU).
    #[inline]
    pub fn ethernet_pdu(&self) -> bool {
        self.flags() & field::P_MASK != 0
    }

    /// Return FT, the frame type: [`FRAME_TYPE_ETHERNET`], [`FRAME_TYPE_IP`]...
    #[inline]
    pub fn frame_type(&self) -> u8 {
        ((self.flags() & field::FT_MASK) >> field::FT_SHIFT) as u8
    }

    /// Return the hardware ID (6 bits).
    #[inline]
    pub fn hw_id(&self) -> u8 {
        ((self.flags() & field::HW_ID_MASK) >> field::HW_ID_SHIFT) as u8
    }

    /// Return D: the frame was mirrored on egress (false: ingress).
    #[inline]
    pub fn egress(&self) -> bool {
        self.flags() & field::D_MASK != 0
    }

    /// Return Gra, the unit of the timestamp.
    #[inline]
    pub fn granularity(&self) -> Granularity {
        Granularity::from_bits(((self.flags() & field::GRA_MASK) >> field::GRA_SHIFT) as u8)
    }

    /// Return O: a platform-specific subheader follows.
    #[inline]
    pub fn has_platform(&self) -> bool {
        self.flags() & field::O_MASK != 0
    }

    /// Return the header length: 12, or 20 with the platform-specific subheader.
    #[inline]
    pub fn header_len(&self) -> usize {
        TYPE_III_HEADER_LEN + PLATFORM_LEN * usize::from(self.has_platform())
    }

    /// Return the platform ID, if O is set.
    #[inline]
    pub fn platform_id(&self) -> Option<u8> {
        self.platform_word()
            .map(|word| (word >> field::PLATFORM_ID_SHIFT) as u8)
    }

    /// Return the 58 bits of platform-specific information, if O is set.
    #[inline]
    pub fn platform_info(&self) -> Option<u64> {
        self.platform_word().map(|word| word & PLATFORM_INFO_MAX)
    }

    fn flags(&self) -> u16 {
        base::get(self.buffer.as_ref(), field::P_FT_HW_D_GRA_O)
    }

    fn platform_word(&self) -> Option<u64> {
        if !self.has_platform() {
            return None;
        }
        let b = self.buffer.as_ref().get(field::PLATFORM)?;
        let word: [u8; 8] = b.try_into().ok()?;
        Some(u64::from_be_bytes(word))
    }
}

#[expect(
    clippy::indexing_slicing,
    reason = "smoltcp contract: the payload starts at header_len, which check_len guarantees"
)]
impl<'a, T: AsRef<[u8]> + ?Sized> TypeIIIPacket<&'a T> {
    /// Return the payload: the mirrored frame.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

#[expect(
    clippy::indexing_slicing,
    reason = "smoltcp contract: every field lies within header_len, which check_len guarantees"
)]
impl<T: AsRef<[u8]> + AsMut<[u8]>> TypeIIIPacket<T> {
    /// Set the version (4 bits).
    #[inline]
    pub fn set_version(&mut self, value: u8) {
        base::set_version(self.buffer.as_mut(), value);
    }

    /// Set the VLAN (12 bits).
    #[inline]
    pub fn set_vlan(&mut self, value: u16) {
        base::set_vlan(self.buffer.as_mut(), value);
    }

    /// Set the class of service (3 bits).
    #[inline]
    pub fn set_cos(&mut self, value: u8) {
        base::set_cos(self.buffer.as_mut(), value);
    }

    /// Set BSO.
    #[inline]
    pub fn set_bso(&mut self, value: Bso) {
        base::set_en(self.buffer.as_mut(), value.bits());
    }

    /// Set T.
    #[inline]
    pub fn set_truncated(&mut self, value: bool) {
        base::set_truncated(self.buffer.as_mut(), value);
    }

    /// Set the session ID (10 bits).
    #[inline]
    pub fn set_session_id(&mut self, value: u16) {
        base::set_session_id(self.buffer.as_mut(), value);
    }

    /// Set the timestamp (its lower 32 bits).
    #[inline]
    pub fn set_timestamp(&mut self, value: u32) {
        self.buffer.as_mut()[field::TIMESTAMP].copy_from_slice(&value.to_be_bytes());
    }

    /// Set the security group tag.
    #[inline]
    pub fn set_sgt(&mut self, value: u16) {
        self.buffer.as_mut()[field::SGT].copy_from_slice(&value.to_be_bytes());
    }

    /// Set P.
    #[inline]
    pub fn set_ethernet_pdu(&mut self, value: bool) {
        self.set_flag(field::P_MASK, value);
    }

    /// Set FT (5 bits).
    #[inline]
    pub fn set_frame_type(&mut self, value: u8) {
        self.set_flags(field::FT_MASK, field::FT_SHIFT, value);
    }

    /// Set the hardware ID (6 bits).
    #[inline]
    pub fn set_hw_id(&mut self, value: u8) {
        self.set_flags(field::HW_ID_MASK, field::HW_ID_SHIFT, value);
    }

    /// Set D: true for egress.
    #[inline]
    pub fn set_egress(&mut self, value: bool) {
        self.set_flag(field::D_MASK, value);
    }

    /// Set Gra.
    #[inline]
    pub fn set_granularity(&mut self, value: Granularity) {
        self.set_flags(field::GRA_MASK, field::GRA_SHIFT, value.bits());
    }

    /// Set O. Set it before the platform subheader, whose presence it decides.
    #[inline]
    pub fn set_has_platform(&mut self, value: bool) {
        self.set_flag(field::O_MASK, value);
    }

    /// Set the platform subheader: `id` (6 bits) and `info` (58 bits). Does nothing unless O is
    /// set and the buffer holds the subheader.
    #[inline]
    pub fn set_platform(&mut self, id: u8, info: u64) {
        if !self.has_platform() {
            return;
        }
        let word = (u64::from(id) << field::PLATFORM_ID_SHIFT) | (info & PLATFORM_INFO_MAX);
        if let Some(b) = self.buffer.as_mut().get_mut(field::PLATFORM) {
            b.copy_from_slice(&word.to_be_bytes());
        }
    }

    /// Return a mutable pointer to the payload.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }

    fn set_flags(&mut self, mask: u16, shift: u32, value: u8) {
        base::set(
            self.buffer.as_mut(),
            field::P_FT_HW_D_GRA_O,
            mask,
            shift,
            value.into(),
        );
    }

    fn set_flag(&mut self, mask: u16, value: bool) {
        let bits = if value { mask } else { 0 };
        base::set(self.buffer.as_mut(), field::P_FT_HW_D_GRA_O, mask, 0, bits);
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for TypeIIIPacket<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// A high-level representation of an ERSPAN Type II header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TypeIIRepr {
    /// VLAN of the mirrored frame, at most [`VLAN_MAX`].
    pub vlan: u16,
    /// Class of service of the mirrored frame, at most [`COS_MAX`].
    pub cos: u8,
    /// How the mirrored frame carried its VLAN.
    pub encap: EncapType,
    /// The mirrored frame was truncated.
    pub truncated: bool,
    /// Session ID, at most [`SESSION_MAX`].
    pub session: u16,
    /// Index, at most [`INDEX_MAX`].
    pub index: u32,
}

impl TypeIIRepr {
    /// Parse a Type II header, checking its length first. Rejects a version other than 1;
    /// ignores the reserved bits.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &TypeIIPacket<&T>) -> Result<TypeIIRepr> {
        packet.check_len()?;
        if packet.version() != VERSION_TYPE_II {
            return Err(Error::Malformed("ERSPAN version is not 1 (Type II)"));
        }
        Ok(TypeIIRepr {
            vlan: packet.vlan(),
            cos: packet.cos(),
            encap: packet.encap_type(),
            truncated: packet.truncated(),
            session: packet.session_id(),
            index: packet.index(),
        })
    }

    /// Return the length of the header [`TypeIIRepr::emit`] writes.
    pub const fn buffer_len(&self) -> usize {
        TYPE_II_HEADER_LEN
    }

    /// Emit this header into `packet`, which must hold at least [`TypeIIRepr::buffer_len`]
    /// bytes, with every reserved bit zero. Writes nothing and returns an error if a field does
    /// not fit its width.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        packet: &mut TypeIIPacket<&mut T>,
    ) -> Result<()> {
        check_base(self.vlan, self.cos, self.session)?;
        if self.index > INDEX_MAX {
            return Err(Error::Malformed("ERSPAN index above 1048575 (20 bits)"));
        }
        packet.set_version(VERSION_TYPE_II);
        packet.set_vlan(self.vlan);
        packet.set_cos(self.cos);
        packet.set_encap_type(self.encap);
        packet.set_truncated(self.truncated);
        packet.set_session_id(self.session);
        packet.set_index(self.index);
        Ok(())
    }
}

/// The platform-specific subheader of a Type III header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// Platform ID 0x3 (layout from Wireshark's `packet-erspan.c`): a port ID/index and the
    /// upper 32 bits of the timestamp, whose lower 32 bits are in the header. The 12 reserved
    /// bits are zero on emit and ignored on parse.
    Id3 {
        /// Port ID/Index, at most [`PORT_INDEX_MAX`].
        port_index: u16,
        /// The upper 32 bits of the timestamp.
        timestamp_high: u32,
    },
    /// Any other platform ID, its information kept as is.
    Other {
        /// Platform ID, at most [`PLATFORM_ID_MAX`] and not 3.
        id: u8,
        /// Platform-specific information, at most [`PLATFORM_INFO_MAX`].
        info: u64,
    },
}

impl Platform {
    /// The platform ID of [`Platform::Id3`].
    pub const ID_3: u8 = 3;

    /// The subheader of platform `id` with the 58 bits `info`.
    pub const fn from_raw(id: u8, info: u64) -> Platform {
        if id == Self::ID_3 {
            Platform::Id3 {
                port_index: ((info >> field::PORT_INDEX_SHIFT) & field::PORT_INDEX_MASK) as u16,
                timestamp_high: info as u32,
            }
        } else {
            Platform::Other { id, info }
        }
    }

    /// The platform ID and its 58 bits of information, or an error if a field does not fit.
    pub const fn to_raw(self) -> Result<(u8, u64)> {
        match self {
            Platform::Id3 {
                port_index,
                timestamp_high,
            } => {
                if port_index > PORT_INDEX_MAX {
                    return Err(Error::Malformed("ERSPAN port index above 16383 (14 bits)"));
                }
                let info = ((port_index as u64) << field::PORT_INDEX_SHIFT) | timestamp_high as u64;
                Ok((Self::ID_3, info))
            }
            Platform::Other { id, info } => {
                if id > PLATFORM_ID_MAX {
                    Err(Error::Malformed("ERSPAN platform ID above 63 (6 bits)"))
                } else if id == Self::ID_3 {
                    Err(Error::Malformed(
                        "ERSPAN platform ID 3 must be Platform::Id3",
                    ))
                } else if info > PLATFORM_INFO_MAX {
                    Err(Error::Malformed(
                        "ERSPAN platform information above 58 bits",
                    ))
                } else {
                    Ok((id, info))
                }
            }
        }
    }
}

/// A high-level representation of an ERSPAN Type III header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TypeIIIRepr {
    /// VLAN of the mirrored frame, at most [`VLAN_MAX`].
    pub vlan: u16,
    /// Class of service of the mirrored frame, at most [`COS_MAX`].
    pub cos: u8,
    /// The mirrored frame's integrity.
    pub bso: Bso,
    /// The mirrored frame was truncated.
    pub truncated: bool,
    /// Session ID, at most [`SESSION_MAX`].
    pub session: u16,
    /// Timestamp, or its lower 32 bits, in units of `granularity`.
    pub timestamp: u32,
    /// Security group tag.
    pub sgt: u16,
    /// P: the payload is an Ethernet protocol frame.
    pub ethernet_pdu: bool,
    /// FT, at most [`FRAME_TYPE_MAX`].
    pub frame_type: u8,
    /// Hardware ID, at most [`HW_ID_MAX`].
    pub hw_id: u8,
    /// D: mirrored on egress (false: ingress).
    pub egress: bool,
    /// Gra: the unit of the timestamp.
    pub granularity: Granularity,
    /// The platform-specific subheader; `Some` sets O.
    pub platform: Option<Platform>,
}

impl TypeIIIRepr {
    /// Parse a Type III header and its platform subheader, checking their length first.
    /// Rejects a version other than 2.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &TypeIIIPacket<&T>) -> Result<TypeIIIRepr> {
        packet.check_len()?;
        if packet.version() != VERSION_TYPE_III {
            return Err(Error::Malformed("ERSPAN version is not 2 (Type III)"));
        }
        let platform = match (packet.platform_id(), packet.platform_info()) {
            (Some(id), Some(info)) => Some(Platform::from_raw(id, info)),
            _ => None,
        };
        Ok(TypeIIIRepr {
            vlan: packet.vlan(),
            cos: packet.cos(),
            bso: packet.bso(),
            truncated: packet.truncated(),
            session: packet.session_id(),
            timestamp: packet.timestamp(),
            sgt: packet.sgt(),
            ethernet_pdu: packet.ethernet_pdu(),
            frame_type: packet.frame_type(),
            hw_id: packet.hw_id(),
            egress: packet.egress(),
            granularity: packet.granularity(),
            platform,
        })
    }

    /// Return the length of the header [`TypeIIIRepr::emit`] writes: 12, 20 with a platform
    /// subheader.
    pub const fn buffer_len(&self) -> usize {
        TYPE_III_HEADER_LEN + PLATFORM_LEN * self.platform.is_some() as usize
    }

    /// Emit this header into `packet`, which must hold at least [`TypeIIIRepr::buffer_len`]
    /// bytes, with every reserved bit zero. Writes nothing and returns an error if a field does
    /// not fit its width.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        packet: &mut TypeIIIPacket<&mut T>,
    ) -> Result<()> {
        check_base(self.vlan, self.cos, self.session)?;
        if self.frame_type > FRAME_TYPE_MAX {
            return Err(Error::Malformed("ERSPAN frame type above 31 (5 bits)"));
        }
        if self.hw_id > HW_ID_MAX {
            return Err(Error::Malformed("ERSPAN hardware ID above 63 (6 bits)"));
        }
        let platform = match self.platform {
            Some(platform) => Some(platform.to_raw()?),
            None => None,
        };
        packet.set_version(VERSION_TYPE_III);
        packet.set_vlan(self.vlan);
        packet.set_cos(self.cos);
        packet.set_bso(self.bso);
        packet.set_truncated(self.truncated);
        packet.set_session_id(self.session);
        packet.set_timestamp(self.timestamp);
        packet.set_sgt(self.sgt);
        packet.set_ethernet_pdu(self.ethernet_pdu);
        packet.set_frame_type(self.frame_type);
        packet.set_hw_id(self.hw_id);
        packet.set_egress(self.egress);
        packet.set_granularity(self.granularity);
        packet.set_has_platform(platform.is_some());
        if let Some((id, info)) = platform {
            packet.set_platform(id, info);
        }
        Ok(())
    }
}

fn check_base(vlan: u16, cos: u8, session: u16) -> Result<()> {
    if vlan > VLAN_MAX {
        Err(Error::Malformed("ERSPAN VLAN above 4095 (12 bits)"))
    } else if cos > COS_MAX {
        Err(Error::Malformed("ERSPAN class of service above 7 (3 bits)"))
    } else if session > SESSION_MAX {
        Err(Error::Malformed("ERSPAN session ID above 1023 (10 bits)"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rustfmt::skip]
    static TYPE_II_BYTES: [u8; 10] = [
        0x1a, 0xbc,             // version 1, VLAN 0xabc (2748)
        0xbe, 0xd5,             // COS 5 (101), En 0b11 (11), T (1), session 0x2d5 (1011010101)
        0x00, 0x0a, 0xbc, 0xde, // reserved 0, index 0xabcde
        0xaa, 0xbb,             // payload
    ];

    fn type_ii() -> TypeIIRepr {
        TypeIIRepr {
            vlan: 0xabc,
            cos: 5,
            encap: EncapType::InFrame,
            truncated: true,
            session: 0x2d5,
            index: 0xa_bcde,
        }
    }

    #[rustfmt::skip]
    static TYPE_III_BYTES: [u8; 22] = [
        0x21, 0x23,             // version 2, VLAN 0x123
        0xd5, 0xa5,             // COS 6 (110), BSO 0b10 (10), T (1), session 0x1a5 (0110100101)
        0xde, 0xad, 0xbe, 0xef, // timestamp, lower 32 bits
        0xca, 0xfe,             // SGT
        0x8a, 0xbd,             // P 1, FT 00010, Hw ID 101011, D 1, Gra 10, O 1
        0x0c, 0x00, 0x12, 0x34, // platform ID 3 (000011), reserved 0, port index 0x1234
        0x01, 0x23, 0x45, 0x67, // upper 32 bits of the timestamp
        0xaa, 0xbb,             // payload
    ];

    fn type_iii() -> TypeIIIRepr {
        TypeIIIRepr {
            vlan: 0x123,
            cos: 6,
            bso: Bso::Oversized,
            truncated: true,
            session: 0x1a5,
            timestamp: 0xdead_beef,
            sgt: 0xcafe,
            ethernet_pdu: true,
            frame_type: FRAME_TYPE_IP,
            hw_id: 0x2b,
            egress: true,
            granularity: Granularity::Ieee1588,
            platform: Some(Platform::Id3 {
                port_index: 0x1234,
                timestamp_high: 0x0123_4567,
            }),
        }
    }

    #[test]
    fn type_ii_deconstruct() {
        let packet = TypeIIPacket::new_checked(&TYPE_II_BYTES[..]).unwrap();
        assert_eq!(packet.version(), 1);
        assert_eq!(packet.vlan(), 0xabc);
        assert_eq!(packet.cos(), 5);
        assert_eq!(packet.encap_type(), EncapType::InFrame);
        assert!(packet.truncated());
        assert_eq!(packet.session_id(), 0x2d5);
        assert_eq!(packet.index(), 0xa_bcde);
        assert_eq!(packet.payload(), &[0xaa, 0xbb]);
    }

    #[test]
    fn type_ii_construct() {
        let mut bytes = [0_u8; 10];
        let mut packet = TypeIIPacket::new_unchecked(&mut bytes);
        packet.set_version(1);
        packet.set_vlan(0xabc);
        packet.set_cos(5);
        packet.set_encap_type(EncapType::InFrame);
        packet.set_truncated(true);
        packet.set_session_id(0x2d5);
        packet.set_index(0xa_bcde);
        packet.payload_mut().copy_from_slice(&[0xaa, 0xbb]);
        assert_eq!(packet.into_inner(), &TYPE_II_BYTES);
    }

    #[test]
    fn type_ii_emit_golden() {
        // From all ones: every reserved bit must be cleared, the payload left alone.
        let mut bytes = [0xff_u8; 10];
        let repr = type_ii();
        repr.emit(&mut TypeIIPacket::new_unchecked(&mut bytes[..]))
            .unwrap();
        assert_eq!(bytes[..8], TYPE_II_BYTES[..8]);
        assert_eq!(bytes[8..], [0xff, 0xff]);
        assert_eq!(repr.buffer_len(), 8);
    }

    #[test]
    fn type_ii_parse_golden() {
        let packet = TypeIIPacket::new_checked(&TYPE_II_BYTES[..]).unwrap();
        assert_eq!(TypeIIRepr::parse(&packet), Ok(type_ii()));
    }

    #[test]
    fn type_ii_round_trips() {
        let reprs = [
            TypeIIRepr::default(),
            type_ii(),
            TypeIIRepr {
                vlan: VLAN_MAX,
                cos: COS_MAX,
                encap: EncapType::Isl,
                truncated: false,
                session: SESSION_MAX,
                index: INDEX_MAX,
            },
            TypeIIRepr {
                vlan: 1,
                cos: 1,
                encap: EncapType::Dot1Q,
                truncated: true,
                session: 1,
                index: 1,
            },
        ];
        for repr in reprs {
            let mut bytes = [0xa5_u8; TYPE_II_HEADER_LEN];
            repr.emit(&mut TypeIIPacket::new_unchecked(&mut bytes[..]))
                .unwrap();
            let packet = TypeIIPacket::new_checked(&bytes[..]).unwrap();
            assert_eq!(TypeIIRepr::parse(&packet), Ok(repr));
        }
    }

    #[test]
    fn type_ii_every_truncation_rejected() {
        for len in 0..TYPE_II_HEADER_LEN {
            let short = &TYPE_II_BYTES[..len];
            let expected = Error::Truncated {
                needed: 8,
                got: len,
            };
            assert_eq!(TypeIIPacket::new_checked(short).unwrap_err(), expected);
            assert_eq!(
                TypeIIRepr::parse(&TypeIIPacket::new_unchecked(short)),
                Err(expected)
            );
        }
    }

    #[test]
    fn type_ii_wrong_version_rejected() {
        for version in [0, 2, 3, 15] {
            let mut bytes = TYPE_II_BYTES;
            bytes[0] = (version << 4) | (bytes[0] & 0x0f);
            assert_eq!(
                TypeIIRepr::parse(&TypeIIPacket::new_checked(&bytes[..]).unwrap()),
                Err(Error::Malformed("ERSPAN version is not 1 (Type II)")),
                "version {version}"
            );
        }
    }

    #[test]
    fn type_ii_reserved_bits_ignored_on_parse() {
        let mut bytes = TYPE_II_BYTES;
        bytes[4] = 0xff;
        bytes[5] |= 0xf0;
        let packet = TypeIIPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!(TypeIIRepr::parse(&packet), Ok(type_ii()));
    }

    #[test]
    fn type_ii_out_of_range_rejected_on_emit() {
        let cases = [
            (
                TypeIIRepr {
                    vlan: 4096,
                    ..type_ii()
                },
                "ERSPAN VLAN above 4095 (12 bits)",
            ),
            (
                TypeIIRepr {
                    cos: 8,
                    ..type_ii()
                },
                "ERSPAN class of service above 7 (3 bits)",
            ),
            (
                TypeIIRepr {
                    session: 1024,
                    ..type_ii()
                },
                "ERSPAN session ID above 1023 (10 bits)",
            ),
            (
                TypeIIRepr {
                    index: 0x10_0000,
                    ..type_ii()
                },
                "ERSPAN index above 1048575 (20 bits)",
            ),
        ];
        for (repr, message) in cases {
            let mut bytes = [0x77_u8; 8];
            assert_eq!(
                repr.emit(&mut TypeIIPacket::new_unchecked(&mut bytes[..])),
                Err(Error::Malformed(message))
            );
            assert_eq!(bytes, [0x77; 8], "nothing written for {message}");
        }
    }

    #[test]
    fn setters_mask_to_the_field_width() {
        let mut bytes = [0_u8; 8];
        let mut packet = TypeIIPacket::new_unchecked(&mut bytes[..]);
        packet.set_vlan(0xffff);
        packet.set_session_id(0xffff);
        packet.set_index(u32::MAX);
        assert_eq!(packet.version(), 0);
        assert_eq!(packet.vlan(), VLAN_MAX);
        assert_eq!(packet.cos(), 0);
        assert_eq!(packet.encap_type(), EncapType::NoVlan);
        assert!(!packet.truncated());
        assert_eq!(packet.session_id(), SESSION_MAX);
        assert_eq!(bytes, [0x0f, 0xff, 0x03, 0xff, 0x00, 0x0f, 0xff, 0xff]);
    }

    #[test]
    fn type_iii_deconstruct() {
        let packet = TypeIIIPacket::new_checked(&TYPE_III_BYTES[..]).unwrap();
        assert_eq!(packet.version(), 2);
        assert_eq!(packet.vlan(), 0x123);
        assert_eq!(packet.cos(), 6);
        assert_eq!(packet.bso(), Bso::Oversized);
        assert!(packet.truncated());
        assert_eq!(packet.session_id(), 0x1a5);
        assert_eq!(packet.timestamp(), 0xdead_beef);
        assert_eq!(packet.sgt(), 0xcafe);
        assert!(packet.ethernet_pdu());
        assert_eq!(packet.frame_type(), FRAME_TYPE_IP);
        assert_eq!(packet.hw_id(), 0x2b);
        assert!(packet.egress());
        assert_eq!(packet.granularity(), Granularity::Ieee1588);
        assert!(packet.has_platform());
        assert_eq!(packet.header_len(), 20);
        assert_eq!(packet.platform_id(), Some(3));
        assert_eq!(packet.platform_info(), Some(0x1234_0123_4567));
        assert_eq!(packet.payload(), &[0xaa, 0xbb]);
    }

    #[test]
    fn type_iii_construct() {
        let mut bytes = [0_u8; 22];
        let mut packet = TypeIIIPacket::new_unchecked(&mut bytes);
        packet.set_version(2);
        packet.set_vlan(0x123);
        packet.set_cos(6);
        packet.set_bso(Bso::Oversized);
        packet.set_truncated(true);
        packet.set_session_id(0x1a5);
        packet.set_timestamp(0xdead_beef);
        packet.set_sgt(0xcafe);
        packet.set_ethernet_pdu(true);
        packet.set_frame_type(FRAME_TYPE_IP);
        packet.set_hw_id(0x2b);
        packet.set_egress(true);
        packet.set_granularity(Granularity::Ieee1588);
        packet.set_has_platform(true);
        packet.set_platform(3, 0x1234_0123_4567);
        packet.payload_mut().copy_from_slice(&[0xaa, 0xbb]);
        assert_eq!(packet.into_inner(), &TYPE_III_BYTES);
    }

    #[test]
    fn type_iii_emit_golden() {
        let mut bytes = [0xff_u8; 22];
        let repr = type_iii();
        repr.emit(&mut TypeIIIPacket::new_unchecked(&mut bytes[..]))
            .unwrap();
        assert_eq!(bytes[..20], TYPE_III_BYTES[..20]);
        assert_eq!(bytes[20..], [0xff, 0xff]);
        assert_eq!(repr.buffer_len(), 20);
    }

    #[test]
    fn type_iii_emit_golden_without_platform() {
        // What Linux sends: Gra 100 µs, P 1, FT 0, O 0.
        let repr = TypeIIIRepr {
            session: 7,
            timestamp: 0x0102_0304,
            ethernet_pdu: true,
            hw_id: 1,
            ..TypeIIIRepr::default()
        };
        let mut bytes = [0xff_u8; 12];
        repr.emit(&mut TypeIIIPacket::new_unchecked(&mut bytes[..]))
            .unwrap();
        #[rustfmt::skip]
        let expected = [
            0x20, 0x00, 0x00, 0x07,
            0x01, 0x02, 0x03, 0x04,
            0x00, 0x00, 0x80, 0x10,
        ];
        assert_eq!(bytes, expected);
        assert_eq!(repr.buffer_len(), 12);
    }

    #[test]
    fn type_iii_parse_golden() {
        let packet = TypeIIIPacket::new_checked(&TYPE_III_BYTES[..]).unwrap();
        assert_eq!(TypeIIIRepr::parse(&packet), Ok(type_iii()));
    }

    #[test]
    fn type_iii_round_trips() {
        let reprs = [
            TypeIIIRepr::default(),
            type_iii(),
            TypeIIIRepr {
                vlan: VLAN_MAX,
                cos: COS_MAX,
                bso: Bso::Bad,
                truncated: true,
                session: SESSION_MAX,
                timestamp: u32::MAX,
                sgt: u16::MAX,
                ethernet_pdu: true,
                frame_type: FRAME_TYPE_MAX,
                hw_id: HW_ID_MAX,
                egress: true,
                granularity: Granularity::Custom,
                platform: Some(Platform::Other {
                    id: PLATFORM_ID_MAX,
                    info: PLATFORM_INFO_MAX,
                }),
            },
            TypeIIIRepr {
                bso: Bso::Short,
                granularity: Granularity::Nanos100,
                platform: Some(Platform::Id3 {
                    port_index: PORT_INDEX_MAX,
                    timestamp_high: u32::MAX,
                }),
                ..TypeIIIRepr::default()
            },
            TypeIIIRepr {
                platform: Some(Platform::Other { id: 0, info: 1 }),
                ..type_iii()
            },
        ];
        for repr in reprs {
            let mut bytes = [0x5a_u8; 20];
            let len = repr.buffer_len();
            repr.emit(&mut TypeIIIPacket::new_unchecked(&mut bytes[..len]))
                .unwrap();
            let packet = TypeIIIPacket::new_checked(&bytes[..len]).unwrap();
            assert_eq!(TypeIIIRepr::parse(&packet), Ok(repr));
            assert!(packet.payload().is_empty());
        }
    }

    #[test]
    fn type_iii_every_truncation_rejected() {
        for len in 0..20 {
            let short = &TYPE_III_BYTES[..len];
            let needed = if len < 12 { 12 } else { 20 };
            let expected = Error::Truncated { needed, got: len };
            assert_eq!(TypeIIIPacket::new_checked(short).unwrap_err(), expected);
            assert_eq!(
                TypeIIIRepr::parse(&TypeIIIPacket::new_unchecked(short)),
                Err(expected)
            );
        }
        // Without O, 12 bytes are enough.
        let mut bytes = TYPE_III_BYTES;
        bytes[11] &= !1;
        let packet = TypeIIIPacket::new_checked(&bytes[..12]).unwrap();
        assert_eq!(packet.platform_id(), None);
        assert_eq!(packet.platform_info(), None);
        assert_eq!(TypeIIIRepr::parse(&packet).unwrap().platform, None);
    }

    #[test]
    fn type_iii_wrong_version_rejected() {
        for version in [0, 1, 3, 15] {
            let mut bytes = TYPE_III_BYTES;
            bytes[0] = (version << 4) | (bytes[0] & 0x0f);
            assert_eq!(
                TypeIIIRepr::parse(&TypeIIIPacket::new_checked(&bytes[..]).unwrap()),
                Err(Error::Malformed("ERSPAN version is not 2 (Type III)")),
                "version {version}"
            );
        }
        // And each version's view refuses the other's header.
        assert!(
            TypeIIRepr::parse(&TypeIIPacket::new_checked(&TYPE_III_BYTES[..]).unwrap()).is_err()
        );
        let mut type_ii_as_iii = [0_u8; 12];
        type_ii_as_iii[..10].copy_from_slice(&TYPE_II_BYTES);
        assert!(
            TypeIIIRepr::parse(&TypeIIIPacket::new_checked(&type_ii_as_iii[..]).unwrap()).is_err()
        );
    }

    #[test]
    fn platform_3_reserved_bits_ignored_on_parse() {
        let mut bytes = TYPE_III_BYTES;
        bytes[12] |= 0x03;
        bytes[13] = 0xff;
        bytes[14] |= 0xc0;
        let packet = TypeIIIPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!(TypeIIIRepr::parse(&packet), Ok(type_iii()));
    }

    #[test]
    fn type_iii_out_of_range_rejected_on_emit() {
        let platform = |platform| TypeIIIRepr {
            platform: Some(platform),
            ..type_iii()
        };
        let cases = [
            (
                TypeIIIRepr {
                    vlan: 0x1000,
                    ..type_iii()
                },
                "ERSPAN VLAN above 4095 (12 bits)",
            ),
            (
                TypeIIIRepr {
                    session: 0x400,
                    ..type_iii()
                },
                "ERSPAN session ID above 1023 (10 bits)",
            ),
            (
                TypeIIIRepr {
                    frame_type: 32,
                    ..type_iii()
                },
                "ERSPAN frame type above 31 (5 bits)",
            ),
            (
                TypeIIIRepr {
                    hw_id: 64,
                    ..type_iii()
                },
                "ERSPAN hardware ID above 63 (6 bits)",
            ),
            (
                platform(Platform::Id3 {
                    port_index: 0x4000,
                    timestamp_high: 0,
                }),
                "ERSPAN port index above 16383 (14 bits)",
            ),
            (
                platform(Platform::Other { id: 64, info: 0 }),
                "ERSPAN platform ID above 63 (6 bits)",
            ),
            (
                platform(Platform::Other { id: 3, info: 0 }),
                "ERSPAN platform ID 3 must be Platform::Id3",
            ),
            (
                platform(Platform::Other {
                    id: 5,
                    info: 1 << 58,
                }),
                "ERSPAN platform information above 58 bits",
            ),
        ];
        for (repr, message) in cases {
            let mut bytes = [0x77_u8; 20];
            assert_eq!(
                repr.emit(&mut TypeIIIPacket::new_unchecked(&mut bytes[..])),
                Err(Error::Malformed(message))
            );
            assert_eq!(bytes, [0x77; 20], "nothing written for {message}");
        }
    }

    #[test]
    fn set_platform_needs_o() {
        let mut bytes = [0_u8; 20];
        let mut packet = TypeIIIPacket::new_unchecked(&mut bytes[..]);
        packet.set_platform(3, 42);
        assert_eq!(packet.platform_id(), None);
        assert_eq!(bytes, [0; 20]);
        // O set on a 12-byte buffer: new_checked refuses it, set_platform does not panic.
        let mut short = [0_u8; 12];
        let mut packet = TypeIIIPacket::new_unchecked(&mut short[..]);
        packet.set_has_platform(true);
        packet.set_platform(3, 42);
        assert!(TypeIIIPacket::new_checked(&short[..]).is_err());
    }

    #[test]
    fn two_bit_enums_round_trip() {
        for bits in 0..4 {
            assert_eq!(EncapType::from_bits(bits).bits(), bits);
            assert_eq!(Bso::from_bits(bits).bits(), bits);
            assert_eq!(Granularity::from_bits(bits).bits(), bits);
        }
        assert_eq!(EncapType::from_bits(0xff), EncapType::InFrame);
    }

    #[test]
    fn garbage_never_panics() {
        let mut state = 0x1357_9bdf_u32;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let len = (state % 24) as usize;
            let bytes: Vec<u8> = (0..len).map(|i| (state >> (i % 4 * 8)) as u8).collect();
            let _ = TypeIIRepr::parse(&TypeIIPacket::new_unchecked(&bytes[..]));
            let _ = TypeIIIRepr::parse(&TypeIIIPacket::new_unchecked(&bytes[..]));
            if let Ok(packet) = TypeIIIPacket::new_checked(&bytes[..]) {
                let _ = (
                    packet.platform_id(),
                    packet.platform_info(),
                    packet.payload(),
                );
            }
        }
    }
}
