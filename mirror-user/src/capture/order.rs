//! A round's copies in the order the classifiers took them. Copies come from two places: the
//! AF_XDP ring (clones that crossed the mirror veth) and the classifiers' ring buffer (written
//! there directly). Each is in order by itself; merged by the kernel time in their tags, a
//! small frame written to the ring buffer no longer overtakes a super-frame cloned before it,
//! as long as the clone has reached the AF_XDP ring by the time the round is read.
use mirror_common::{TAG_LEN, Tag};

use super::ring_copy::RingCopy;
use crate::{gather::Gather, kernel::umem::Umem, kernel::xdp_socket::XDP_PKT_CONTD};

/// Where a copy of the round is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// A piece of a clone on the AF_XDP ring (the whole clone, unless `XDP_PKT_CONTD`).
    Desc(libc::xdp_desc),
    /// A copy from the ring buffer: the index of its [`RingCopy`].
    Ring(usize),
}

/// Fills `out` with the round's `descs` and `ring` copies, oldest first. `continuing`: the
/// first pieces finish a frame begun in the last round (they stay first). Pieces of one frame
/// stay together, in order.
pub fn in_order(
    descs: &[libc::xdp_desc],
    ring: &[RingCopy],
    continuing: bool,
    umem: &Umem,
    gather: &Gather,
    out: &mut Vec<(u64, Source)>,
) {
    out.clear();
    if ring.is_empty() || descs.is_empty() {
        // One source: already in order, nothing to read.
        out.extend(descs.iter().map(|d| (0, Source::Desc(*d))));
        out.extend((0..ring.len()).map(|i| (0, Source::Ring(i))));
        return;
    }
    let mut continuing = continuing;
    let mut key = 0;
    for desc in descs {
        if !continuing {
            // SAFETY: the kernel wrote this chunk and hands it to us until we give it back;
            // only read here.
            let head = unsafe { umem.bytes(desc.addr, (desc.len as usize).min(TAG_LEN)) };
            key = head.map_or(0, ktime);
        }
        out.push((key, Source::Desc(*desc)));
        continuing = desc.options & XDP_PKT_CONTD != 0;
    }
    out.extend(ring.iter().enumerate().map(|(i, copy)| {
        let head = match *copy {
            // SAFETY: a spare chunk the sender lent; only read here.
            RingCopy::Chunk { at, len } => unsafe { umem.bytes(at, len.min(TAG_LEN)) },
            RingCopy::Gathered(index) => Some(gather.frame(index)),
        };
        (head.map_or(0, ktime), Source::Ring(i))
    }));
    // Stable: equal keys (pieces of one frame) keep their order.
    out.sort_by_key(|(key, _)| *key);
}

/// The kernel time in the tag in front of `frame`; 0 (first) if there is no valid tag: it is
/// counted malformed when its turn comes.
fn ktime(frame: &[u8]) -> u64 {
    frame
        .first_chunk::<TAG_LEN>()
        .and_then(|head| Tag::from_bytes(*head))
        .map_or(0, |tag| tag.ktime_ns)
}

#[cfg(test)]
mod tests {
    use mirror_common::{Direction, mark_for};

    use super::*;

    fn tag(ktime: u64) -> [u8; TAG_LEN] {
        Tag::from_mark(mark_for(7, Direction::Ingress, false), ktime)
            .unwrap()
            .to_bytes()
    }

    fn desc(addr: u64, len: usize, contd: bool) -> libc::xdp_desc {
        libc::xdp_desc {
            addr,
            len: len as u32,
            options: if contd { XDP_PKT_CONTD } else { 0 },
        }
    }

    /// Writes a tagged frame at `addr`.
    fn write(umem: &Umem, addr: u64, ktime: u64) {
        // SAFETY: test UMEM, no other slice of this chunk lives.
        let bytes = unsafe { umem.bytes_mut(addr, TAG_LEN) }.unwrap();
        bytes.copy_from_slice(&tag(ktime));
    }

    #[test]
    fn merges_by_kernel_time_keeping_pieces_together() {
        let umem = Umem::new(4).unwrap();
        write(&umem, 0, 10);
        write(&umem, 4096, 40);
        // A frame in two pieces, taken at 40; its second chunk has no tag.
        let descs = [
            desc(0, 100, false),
            desc(4096, 4096, true),
            desc(8192, 900, false),
        ];
        let mut gather = Gather::default();
        let early = gather.put(&[&tag(5), &[1; 60]]);
        let middle = gather.put(&[&tag(20), &[2; 60]]);
        let late = gather.put(&[&tag(50), &[3; 60]]);
        let mut out = Vec::new();
        let ring = [early, middle, late].map(RingCopy::Gathered);
        in_order(&descs, &ring, false, &umem, &gather, &mut out);
        let order: Vec<Source> = out.iter().map(|(_, s)| *s).collect();
        assert_eq!(
            order,
            [
                Source::Ring(0),
                Source::Desc(descs[0]),
                Source::Ring(1),
                Source::Desc(descs[1]),
                Source::Desc(descs[2]),
                Source::Ring(2),
            ]
        );
    }

    #[test]
    fn the_rest_of_last_rounds_frame_comes_first() {
        let umem = Umem::new(4).unwrap();
        write(&umem, 4096, 30);
        // The last piece of a frame begun last round (no tag of its own), then a whole frame.
        let descs = [desc(0, 500, false), desc(4096, 100, false)];
        let mut gather = Gather::default();
        let ring = [RingCopy::Gathered(gather.put(&[&tag(20), &[1; 60]]))];
        let mut out = Vec::new();
        in_order(&descs, &ring, true, &umem, &gather, &mut out);
        let order: Vec<Source> = out.iter().map(|(_, s)| *s).collect();
        assert_eq!(
            order,
            [
                Source::Desc(descs[0]),
                Source::Ring(0),
                Source::Desc(descs[1])
            ]
        );
    }

    #[test]
    fn ring_copies_in_spare_chunks_are_read_for_their_time() {
        let umem = Umem::new(4).unwrap();
        write(&umem, 0, 10);
        write(&umem, 8192 + 240, 20);
        let descs = [desc(0, 100, false)];
        let mut gather = Gather::default();
        let ring = [
            RingCopy::Gathered(gather.put(&[&tag(30), &[1; 60]])),
            RingCopy::Chunk {
                at: 8192 + 240,
                len: 80,
            },
        ];
        let mut out = Vec::new();
        in_order(&descs, &ring, false, &umem, &gather, &mut out);
        let order: Vec<Source> = out.iter().map(|(_, s)| *s).collect();
        assert_eq!(
            order,
            [Source::Desc(descs[0]), Source::Ring(1), Source::Ring(0)]
        );
    }

    #[test]
    fn one_source_keeps_its_order() {
        let umem = Umem::new(2).unwrap();
        let descs = [desc(0, 100, false), desc(4096, 100, false)];
        let mut out = Vec::new();
        in_order(&descs, &[], false, &umem, &Gather::default(), &mut out);
        assert_eq!(
            out.iter().map(|(_, s)| *s).collect::<Vec<_>>(),
            [Source::Desc(descs[0]), Source::Desc(descs[1])]
        );
    }
}
