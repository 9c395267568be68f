//! The pcap timestamp of a received frame.
//!
//! The receive time (the kernel's, `SO_TIMESTAMPNS`), except for ERSPAN III, whose header
//! carries the sender's capture time:
//!
//! - with a Platform ID 0x3 subheader, the timestamp has 64 bits (upper 32 in the subheader,
//!   lower 32 in the header), a count of units since the Unix epoch: the absolute time is
//!   used as is. This is what the mirror sends for 100 ns and IEEE 1588 granularities (IEEE
//!   1588 read as nanoseconds since the epoch, as `crate::tunnel` writes them).
//! - without one (Linux and the mirror at 100 µs granularity, the usual case), only the lower
//!   32 bits are known: the counter wraps every 4.97 days at 100 µs (7.2 minutes at 100 ns,
//!   4.3 seconds at 1 ns). The full value is rebuilt from the receive time: of the values
//!   whose lower 32 bits are the header's, the one closest to the receive time. That is right
//!   as long as sender and receiver clocks and the transit differ by less than half a wrap
//!   (2.48 days at 100 µs).
//! - a user-configured granularity (Gra 0b11) has no known unit: the receive time is used.
//!
//! A header time that a pcap file cannot hold (beyond 2106) falls back to the receive time.
//! Header times at 100 µs granularity are multiples of 100 µs: coarser than the receive time,
//! but the sender's.

use super::decap::Header;
use crate::wire::erspan::{Granularity, Platform, TypeIIIRepr};

/// The latest time a (32-bit seconds) pcap record can hold, in nanoseconds.
const PCAP_MAX_NS: u64 = (u32::MAX as u64 + 1) * 1_000_000_000 - 1;

/// The pcap timestamp, Unix epoch nanoseconds, of a frame with `header` received at
/// `received_ns`.
pub fn frame_time_ns(header: &Header, received_ns: u64) -> u64 {
    match header {
        Header::Erspan3(_, erspan) => erspan_time_ns(erspan, received_ns).unwrap_or(received_ns),
        _ => received_ns,
    }
}

/// The capture time an ERSPAN III header gives, if it gives one a pcap file can hold.
fn erspan_time_ns(erspan: &TypeIIIRepr, received_ns: u64) -> Option<u64> {
    let unit_ns = unit_ns(erspan.granularity)?;
    let units = match erspan.platform {
        Some(Platform::Id3 { timestamp_high, .. }) => {
            (u64::from(timestamp_high) << 32) | u64::from(erspan.timestamp)
        }
        _ => closest_with_low_bits(received_ns / unit_ns, erspan.timestamp),
    };
    units.checked_mul(unit_ns).filter(|&ns| ns <= PCAP_MAX_NS)
}

/// Nanoseconds per timestamp unit; `None` for a user-configured unit.
const fn unit_ns(granularity: Granularity) -> Option<u64> {
    match granularity {
        Granularity::Micros100 => Some(100_000),
        Granularity::Nanos100 => Some(100),
        Granularity::Ieee1588 => Some(1),
        Granularity::Custom => None,
    }
}

/// Of the numbers whose lower 32 bits are `low`, the one closest to `reference` (the lower on
/// a tie).
fn closest_with_low_bits(reference: u64, low: u32) -> u64 {
    const WRAP: u64 = 1 << 32;
    let same_epoch = (reference & !(WRAP - 1)) | u64::from(low);
    [
        same_epoch.checked_sub(WRAP),
        Some(same_epoch),
        same_epoch.checked_add(WRAP),
    ]
    .into_iter()
    .flatten()
    .min_by_key(|&candidate| (candidate.abs_diff(reference), candidate))
    .unwrap_or(same_epoch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{gre, vxlan};

    /// 2023-11-14T22:13:20.123456789Z.
    const NS: u64 = 1_700_000_000_123_456_789;

    fn gre() -> gre::Repr {
        gre::Repr {
            protocol: gre::ERSPAN_III,
            key: None,
            sequence: Some(0),
            checksum: false,
        }
    }

    fn erspan3(granularity: Granularity, units: u64, platform: bool) -> Header {
        let platform = platform.then_some(Platform::Id3 {
            port_index: 0,
            timestamp_high: (units >> 32) as u32,
        });
        Header::Erspan3(
            gre(),
            TypeIIIRepr {
                timestamp: units as u32,
                granularity,
                platform,
                ..TypeIIIRepr::default()
            },
        )
    }

    #[test]
    fn other_tunnels_use_the_receive_time() {
        let headers = [
            Header::Vxlan(vxlan::Repr::default()),
            Header::Gre(gre()),
            Header::Erspan1(gre()),
            Header::Erspan2(gre(), crate::wire::erspan::TypeIIRepr::default()),
        ];
        for header in headers {
            assert_eq!(frame_time_ns(&header, NS), NS);
        }
    }

    #[test]
    fn absolute_times_are_used_as_is() {
        // Received a second later: the header's time wins.
        let received = NS + 1_000_000_000;
        let header = erspan3(Granularity::Ieee1588, NS, true);
        assert_eq!(frame_time_ns(&header, received), NS);
        let header = erspan3(Granularity::Nanos100, NS / 100, true);
        assert_eq!(frame_time_ns(&header, received), NS / 100 * 100);
        // Even a day apart: the header is absolute.
        let header = erspan3(Granularity::Ieee1588, NS, true);
        assert_eq!(frame_time_ns(&header, NS + 86_400 * 1_000_000_000), NS);
        // 100 µs with the subheader too.
        let header = erspan3(Granularity::Micros100, NS / 100_000, true);
        assert_eq!(frame_time_ns(&header, 0), NS / 100_000 * 100_000);
    }

    #[test]
    fn hundred_microseconds_rebuilt_from_the_receive_time() {
        let units = NS / 100_000;
        let header = erspan3(Granularity::Micros100, units, false);
        let exact = units * 100_000;
        // Received shortly after, or (clock skew) before.
        for delta in [0_i64, 1, 250_000, 3_000_000_000, -3_000_000_000, -99_999] {
            let received = NS.checked_add_signed(delta).unwrap();
            assert_eq!(frame_time_ns(&header, received), exact, "delta {delta}");
        }
        // Up to just under half a wrap either way.
        let half_wrap_ns = (1_u64 << 31) * 100_000;
        assert_eq!(
            frame_time_ns(&header, exact + half_wrap_ns - 100_000),
            exact
        );
        assert_eq!(
            frame_time_ns(&header, exact - half_wrap_ns + 100_000),
            exact
        );
    }

    #[test]
    fn rebuilding_crosses_a_wrap_both_ways() {
        let wrap = 1_u64 << 32;
        // Sent just before the low 32 bits wrapped, received just after.
        let sent = 3 * wrap - 2;
        let header = erspan3(Granularity::Micros100, sent, false);
        assert_eq!(
            frame_time_ns(&header, (3 * wrap + 5) * 100_000),
            sent * 100_000
        );
        // Sent just after, received (clock skew) just before.
        let sent = 3 * wrap + 1;
        let header = erspan3(Granularity::Micros100, sent, false);
        assert_eq!(
            frame_time_ns(&header, (3 * wrap - 3) * 100_000),
            sent * 100_000
        );
    }

    #[test]
    fn fine_granularities_without_subheader_rebuilt_too() {
        let header = erspan3(Granularity::Ieee1588, NS, false);
        assert_eq!(frame_time_ns(&header, NS + 1_000_000), NS);
        let header = erspan3(Granularity::Nanos100, NS / 100, false);
        assert_eq!(frame_time_ns(&header, NS - 1_000_000), NS / 100 * 100);
    }

    #[test]
    fn custom_granularity_and_other_platforms_fall_back() {
        let header = erspan3(Granularity::Custom, 12_345, true);
        assert_eq!(frame_time_ns(&header, NS), NS);
        // A platform subheader other than 0x3 holds no upper bits: rebuilt.
        let Header::Erspan3(gre, mut erspan) = erspan3(Granularity::Ieee1588, NS, false) else {
            unreachable!()
        };
        erspan.platform = Some(Platform::Other { id: 5, info: 9 });
        assert_eq!(frame_time_ns(&Header::Erspan3(gre, erspan), NS + 7), NS);
    }

    #[test]
    fn times_beyond_pcap_fall_back() {
        let header = erspan3(Granularity::Micros100, u64::MAX, true);
        assert_eq!(frame_time_ns(&header, NS), NS);
        let header = erspan3(Granularity::Ieee1588, PCAP_MAX_NS + 1, true);
        assert_eq!(frame_time_ns(&header, NS), NS);
        let header = erspan3(Granularity::Ieee1588, PCAP_MAX_NS, true);
        assert_eq!(frame_time_ns(&header, NS), PCAP_MAX_NS);
    }

    #[test]
    fn closest_at_the_ends_of_u64() {
        assert_eq!(closest_with_low_bits(0, u32::MAX), u64::from(u32::MAX));
        assert_eq!(closest_with_low_bits(5, 3), 3);
        assert_eq!(
            closest_with_low_bits(u64::MAX, 0),
            u64::MAX - u64::from(u32::MAX)
        );
        assert_eq!(closest_with_low_bits(u64::MAX, u32::MAX), u64::MAX);
        // A tie (exactly half a wrap away either side) takes the lower.
        let wrap = 1_u64 << 32;
        assert_eq!(
            closest_with_low_bits(5 * wrap, 1 << 31),
            5 * wrap - (1 << 31)
        );
    }
}
