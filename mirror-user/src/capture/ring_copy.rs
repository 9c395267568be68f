//! The round's copies from the classifiers' ring buffer, each written once: straight into a
//! spare UMEM chunk of the sender, behind its tag, where the sender sends it in place with its
//! headers in front; into the round's `Gather` when no spare is free or the frame does not fit
//! one (the sender then copies it into a chunk as it sends, as before).
use crate::{
    gather::{Gather, PutFrame},
    send::Sender,
};

/// Where a copy from the ring buffer is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingCopy {
    /// Tag and frame at this UMEM address, in a spare chunk the sender lent.
    Chunk { at: u64, len: usize },
    /// The round's gathered frame of this index (tag included).
    Gathered(usize),
}

/// Puts frames into spare chunks of `sender`, else into `gather`, and lists them in `copies`.
pub struct RingCopies<'a> {
    pub sender: &'a mut Sender,
    pub gather: &'a mut Gather,
    pub copies: &'a mut Vec<RingCopy>,
}

impl PutFrame for RingCopies<'_> {
    fn put_frame(&mut self, parts: &[&[u8]]) -> &mut [u8] {
        if let Some((at, frame)) = self.sender.write_spare(parts) {
            self.copies.push(RingCopy::Chunk {
                at,
                len: frame.len(),
            });
            return frame;
        }
        let index = self.gather.put(parts);
        self.copies.push(RingCopy::Gathered(index));
        self.gather.frame_mut(index)
    }
}
