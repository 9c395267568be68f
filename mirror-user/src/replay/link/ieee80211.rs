//! 802.11 data frames (`LINKTYPE_IEEE802_11`, and behind a radiotap header
//! `LINKTYPE_IEEE802_11_RADIOTAP`) as Ethernet frames: the addresses the To/From DS bits name
//! as destination and source, the EtherType of the LLC/SNAP header. Management and control
//! frames, data frames without data, encrypted ones, A-MSDUs and frames without LLC/SNAP have
//! no Ethernet form.

use super::{Malformed, push_ethernet};

/// Frame control, duration, three addresses, sequence control.
const HEADER_LEN: usize = 24;
/// The fourth address, present when both To DS and From DS are set.
const ADDR4_LEN: usize = 6;
const QOS_CONTROL_LEN: usize = 2;
const HT_CONTROL_LEN: usize = 4;
const TYPE_DATA: u8 = 2;
/// Subtype bits: QoS data, and "no data" (Null, CF-Ack and CF-Poll without data).
const SUBTYPE_QOS: u8 = 0x8;
const SUBTYPE_NO_DATA: u8 = 0x4;
/// Frame control flags (second byte).
const TO_DS: u8 = 0x01;
const FROM_DS: u8 = 0x02;
const PROTECTED: u8 = 0x40;
/// In a QoS data frame: an HT Control field follows the QoS Control field.
const ORDER: u8 = 0x80;
/// QoS control: the frame is an A-MSDU (several frames with subframe headers).
const AMSDU: u8 = 0x80;
/// RFC 1042 and 802.1H (bridge tunnel) SNAP headers; the EtherType follows.
const SNAP_RFC1042: [u8; 6] = [0xAA, 0xAA, 0x03, 0x00, 0x00, 0x00];
const SNAP_BRIDGE_TUNNEL: [u8; 6] = [0xAA, 0xAA, 0x03, 0x00, 0x00, 0xF8];
/// Radiotap `present` bits of the fields before Flags, and the extension bit.
const RADIOTAP_TSFT: u32 = 1 << 0;
const RADIOTAP_FLAGS: u32 = 1 << 1;
const RADIOTAP_EXT: u32 = 1 << 31;
/// Radiotap flags: the frame ends with its FCS; padding after the 802.11 header; bad FCS.
const FLAG_FCS: u8 = 0x10;
const FLAG_DATAPAD: u8 = 0x20;
const FLAG_BAD_FCS: u8 = 0x40;
const FCS_LEN: usize = 4;

/// An 802.11 frame without FCS or padding after its header.
pub(super) fn to_ethernet(frame: &[u8], out: &mut Vec<u8>) -> Result<(), Malformed> {
    data_frame(frame, false, out)
}

/// A radiotap header (its length at bytes 2-3, little-endian), then an 802.11 frame whose FCS
/// and header padding the radiotap flags tell of.
pub(super) fn radiotap_to_ethernet(data: &[u8], out: &mut Vec<u8>) -> Result<(), Malformed> {
    let len = usize::from(u16::from_le_bytes([byte(data, 2)?, byte(data, 3)?]));
    let flags = radiotap_flags(data.get(..len).ok_or(Malformed)?)?;
    if flags & FLAG_BAD_FCS != 0 {
        return Err(Malformed);
    }
    let mut frame = data.get(len..).ok_or(Malformed)?;
    if flags & FLAG_FCS != 0 {
        frame = frame
            .get(..frame.len().checked_sub(FCS_LEN).ok_or(Malformed)?)
            .ok_or(Malformed)?;
    }
    data_frame(frame, flags & FLAG_DATAPAD != 0, out)
}

/// The radiotap Flags field, 0 if absent: after the `present` words and the 8-byte aligned
/// TSFT, if present.
fn radiotap_flags(header: &[u8]) -> Result<u8, Malformed> {
    let word = |at: usize| -> Result<u32, Malformed> {
        let field: [u8; 4] = header
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .ok_or(Malformed)?;
        Ok(u32::from_le_bytes(field))
    };
    let present = word(4)?;
    if present & RADIOTAP_FLAGS == 0 {
        return Ok(0);
    }
    let mut at = 8;
    let mut last = present;
    while last & RADIOTAP_EXT != 0 {
        last = word(at)?;
        at += 4;
    }
    if present & RADIOTAP_TSFT != 0 {
        at = at.next_multiple_of(8) + 8;
    }
    byte(header, at)
}

fn data_frame(frame: &[u8], padded: bool, out: &mut Vec<u8>) -> Result<(), Malformed> {
    let (fc0, fc1) = (byte(frame, 0)?, byte(frame, 1)?);
    let (kind, subtype) = ((fc0 >> 2) & 0x3, fc0 >> 4);
    if kind != TYPE_DATA || subtype & SUBTYPE_NO_DATA != 0 || fc1 & PROTECTED != 0 {
        return Err(Malformed);
    }
    let address = |at: usize| -> Result<[u8; 6], Malformed> {
        frame
            .get(at..at + 6)
            .and_then(|a| a.try_into().ok())
            .ok_or(Malformed)
    };
    let mut len = HEADER_LEN;
    let (dst, src) = match fc1 & (TO_DS | FROM_DS) {
        0 => (address(4)?, address(10)?),
        TO_DS => (address(16)?, address(10)?),
        FROM_DS => (address(4)?, address(16)?),
        _ => {
            len += ADDR4_LEN;
            (address(16)?, address(24)?)
        }
    };
    if subtype & SUBTYPE_QOS != 0 {
        if byte(frame, len)? & AMSDU != 0 {
            return Err(Malformed);
        }
        len += QOS_CONTROL_LEN;
        if fc1 & ORDER != 0 {
            len += HT_CONTROL_LEN;
        }
    }
    if padded {
        len = len.next_multiple_of(4);
    }
    let llc = frame.get(len..).ok_or(Malformed)?;
    let (snap, rest) = llc.split_first_chunk::<8>().ok_or(Malformed)?;
    let [s0, s1, s2, s3, s4, s5, t0, t1] = *snap;
    let snap = [s0, s1, s2, s3, s4, s5];
    if snap != SNAP_RFC1042 && snap != SNAP_BRIDGE_TUNNEL {
        return Err(Malformed);
    }
    push_ethernet(out, dst, src, u16::from_be_bytes([t0, t1]), rest);
    Ok(())
}

fn byte(bytes: &[u8], at: usize) -> Result<u8, Malformed> {
    bytes.get(at).copied().ok_or(Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AP: [u8; 6] = [0x02, 0, 0, 0, 0, 0xa0];
    const STA: [u8; 6] = [0x02, 0, 0, 0, 0, 0x5a];
    const HOST: [u8; 6] = [0x02, 0, 0, 0, 0, 0x11];
    const IP: &[u8] = &[
        0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];

    /// A data frame (QoS if `qos`) with the given DS bits and addresses, then LLC/SNAP and IP.
    fn frame(qos: bool, ds: u8, addrs: &[[u8; 6]]) -> Vec<u8> {
        let subtype = if qos { 0x88 } else { 0x08 };
        let mut out = vec![subtype, ds, 0, 0];
        for (i, addr) in addrs.iter().enumerate() {
            out.extend_from_slice(addr);
            if i == 2 {
                out.extend_from_slice(&[0x10, 0]);
            }
        }
        if qos {
            out.extend_from_slice(&[5, 0]);
        }
        out.extend_from_slice(&SNAP_RFC1042);
        out.extend_from_slice(&[0x08, 0x00]);
        out.extend_from_slice(IP);
        out
    }

    fn convert(radiotap: bool, data: &[u8]) -> Result<Vec<u8>, Malformed> {
        let mut out = Vec::new();
        if radiotap {
            radiotap_to_ethernet(data, &mut out)?;
        } else {
            to_ethernet(data, &mut out)?;
        }
        Ok(out)
    }

    fn ethernet(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
        [&dst[..], &src, &[0x08, 0x00], IP].concat()
    }

    #[test]
    fn addresses_by_the_ds_bits() {
        // To DS: BSSID, source, destination; From DS: destination, BSSID, source.
        let to_ap = frame(false, TO_DS, &[AP, STA, HOST]);
        assert_eq!(convert(false, &to_ap), Ok(ethernet(HOST, STA)));
        let from_ap = frame(true, FROM_DS, &[STA, AP, HOST]);
        assert_eq!(convert(false, &from_ap), Ok(ethernet(STA, HOST)));
        let adhoc = frame(false, 0, &[STA, HOST, AP]);
        assert_eq!(convert(false, &adhoc), Ok(ethernet(STA, HOST)));
        let wds = frame(true, TO_DS | FROM_DS, &[AP, AP, HOST, STA]);
        assert_eq!(convert(false, &wds), Ok(ethernet(HOST, STA)));
    }

    #[test]
    fn what_has_no_ethernet_form() {
        let data = frame(false, TO_DS, &[AP, STA, HOST]);
        let mut beacon = data.clone();
        beacon[0] = 0x80;
        let mut null = data.clone();
        null[0] = 0x48;
        let mut protected = data.clone();
        protected[1] |= PROTECTED;
        let mut no_snap = data.clone();
        no_snap[24] = 0x42;
        let mut amsdu = frame(true, TO_DS, &[AP, STA, HOST]);
        amsdu[24] |= AMSDU;
        for bad in [beacon, null, protected, no_snap, amsdu, data[..31].to_vec()] {
            assert_eq!(convert(false, &bad), Err(Malformed), "{bad:02x?}");
        }
    }

    /// A radiotap header: version, pad, length, present words, TSFT, flags, rate.
    fn radiotap(flags: u8, frame: &[u8]) -> Vec<u8> {
        let present = RADIOTAP_TSFT | RADIOTAP_FLAGS | (1 << 2) | RADIOTAP_EXT;
        let mut header = vec![0, 0, 0, 0];
        header.extend_from_slice(&present.to_le_bytes());
        // An extended present word (vendor namespace bits), then padding to 8 for TSFT.
        header.extend_from_slice(&(1_u32 << 29).to_le_bytes());
        header.extend_from_slice(&[0; 4]);
        header.extend_from_slice(&[0x11; 8]);
        header.extend_from_slice(&[flags, 0x0c]);
        let len = header.len() as u16;
        header[2..4].copy_from_slice(&len.to_le_bytes());
        [&header[..], frame].concat()
    }

    #[test]
    fn radiotap_fcs_and_padding() {
        let data = frame(true, FROM_DS, &[STA, AP, HOST]);
        let want = Ok(ethernet(STA, HOST));
        assert_eq!(convert(true, &radiotap(0, &data)), want);
        let with_fcs = [&data[..], &[0xde, 0xad, 0xbe, 0xef]].concat();
        assert_eq!(convert(true, &radiotap(FLAG_FCS, &with_fcs)), want);
        // QoS header of 26 bytes padded to 28.
        let padded = [&data[..26], &[0, 0], &data[26..]].concat();
        assert_eq!(convert(true, &radiotap(FLAG_DATAPAD, &padded)), want);
        assert_eq!(
            convert(true, &radiotap(FLAG_FCS | FLAG_BAD_FCS, &with_fcs)),
            Err(Malformed)
        );
        assert_eq!(convert(true, &radiotap(0, &[])), Err(Malformed));
        assert_eq!(convert(true, &[0, 0, 200, 0, 0]), Err(Malformed));
    }
}
