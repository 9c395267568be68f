//! Zero-copy views and representations of the headers the mirror writes, in smoltcp's style:
//! a `Packet<T>` view over a buffer with field accessors, and a `Repr` with `parse`/`emit`.

pub mod erspan;
pub mod gre;
pub mod ipfix;
pub mod netflow_v5;
pub mod vxlan;

/// Why a buffer could not be read as a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The buffer is shorter than the header.
    #[error("truncated: {needed} bytes needed, {got} present")]
    Truncated { needed: usize, got: usize },
    /// A field holds a value the protocol does not allow.
    #[error("malformed: {0}")]
    Malformed(&'static str),
}

pub type Result<T> = core::result::Result<T, Error>;

/// The Internet checksum (RFC 1071) that IPv4, UDP and GRE share.
///
/// Sums of consecutive parts of a message add up to the sum of the whole message as long as
/// every part but the last has an even length, so headers can be summed once into a template
/// and only the per-packet parts summed again.
pub mod checksum {

    /// Bytes summed per block before the block's sum joins the total: 2^18 32-bit words of
    /// at most 2^32 - 1 each stay below 2^50, far from overflowing the `u64` accumulator.
    const BLOCK: usize = 1 << 20;

    /// The one's complement sum of `bytes` as big-endian 16-bit words (an odd last byte is
    /// padded with a zero byte), not yet folded to 16 bits.
    ///
    /// This is the per-packet pass over a payload: a branch-free loop over 32-bit words, which
    /// the compiler vectorises; for any length, it neither panics nor overflows.
    pub fn sum(bytes: &[u8]) -> u64 {
        let mut total = 0_u64;
        for block in bytes.chunks(BLOCK) {
            let (words, rest) = block.as_chunks::<4>();
            let mut block_sum: u64 = words
                .iter()
                .map(|&word| u64::from(u32::from_be_bytes(word)))
                .sum();
            block_sum += match *rest {
                [a] => u64::from(a) << 8,
                [a, b] => u64::from(u16::from_be_bytes([a, b])),
                [a, b, c] => u64::from(u16::from_be_bytes([a, b])) + (u64::from(c) << 8),
                _ => 0,
            };
            total = add(total, block_sum);
        }
        total
    }

    /// One's complement addition of two unfolded sums.
    pub fn add(a: u64, b: u64) -> u64 {
        let (sum, carry) = a.overflowing_add(b);
        // The end-around carry (2^64 is 1 modulo 2^16 - 1); after a carry `sum` is at most
        // 2^64 - 2, so this cannot overflow.
        sum + u64::from(carry)
    }

    /// Fold an unfolded sum into 16 bits, keeping its value modulo 2^16 - 1.
    pub const fn fold(mut sum: u64) -> u16 {
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    /// The value of a checksum field: the complement of the folded sum of everything it covers
    /// (with the field itself counted as zero).
    pub const fn complement(sum: u64) -> u16 {
        !fold(sum)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// A plain RFC 1071 reference: 16-bit words, folded at the end.
        fn reference(bytes: &[u8]) -> u16 {
            let mut sum = 0_u64;
            for pair in bytes.chunks(2) {
                let hi = u64::from(pair[0]) << 8;
                sum += hi + pair.get(1).copied().map_or(0, u64::from);
            }
            fold(sum)
        }

        #[test]
        fn rfc1071_example() {
            // RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
            let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
            assert_eq!(fold(sum(&bytes)), 0xddf2);
            assert_eq!(complement(sum(&bytes)), !0xddf2);
        }

        #[test]
        fn matches_the_reference_for_every_tail() {
            let bytes: Vec<u8> = (0..=255_u8).cycle().take(3000).map(|b| b ^ 0x5a).collect();
            for len in 0..=bytes.len() {
                assert_eq!(
                    fold(sum(&bytes[..len])),
                    reference(&bytes[..len]),
                    "len {len}"
                );
            }
        }

        #[test]
        fn parts_add_up() {
            let bytes: Vec<u8> = (0..1001_u32).map(|i| (i * 7 + 3) as u8).collect();
            for cut in (0..bytes.len()).step_by(2) {
                let (a, b) = bytes.split_at(cut);
                assert_eq!(fold(add(sum(a), sum(b))), fold(sum(&bytes)), "cut {cut}");
            }
        }

        #[test]
        fn large_inputs_do_not_overflow() {
            let ones = vec![0xff_u8; 3 * BLOCK + 5];
            assert_eq!(fold(sum(&ones)), reference(&ones));
            // Words of all ones sum to 0xffff (negative zero), plus the padded last byte.
            assert_eq!(fold(sum(&ones)), 0xff00);
        }

        #[test]
        fn fold_and_add_carry() {
            assert_eq!(fold(0), 0);
            assert_eq!(fold(0xffff), 0xffff);
            assert_eq!(fold(0x1_0000), 1);
            assert_eq!(fold(0x1_fffe), 0xffff);
            assert_eq!(fold(u64::MAX), 0xffff);
            assert_eq!(add(u64::MAX, 1), 1);
            assert_eq!(add(1, 2), 3);
        }
    }
}
