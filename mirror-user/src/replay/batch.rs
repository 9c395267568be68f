//! A batch of frames read from the file: one arena holds their bytes, reused from batch to
//! batch, so once it has grown to the largest batch nothing is allocated per packet. The
//! frames stay put while the sender holds them, until the next [`Batch::fill`].

use std::{io::Read, ops::Range};

use super::reader::{Error, Packet, Reader};

#[derive(Default)]
pub struct Batch {
    arena: Vec<u8>,
    frames: Vec<(Range<usize>, Packet)>,
}

impl Batch {
    /// A batch with room for `frames` frames of 1518 bytes before it grows.
    pub fn with_capacity(frames: usize) -> Self {
        Self {
            arena: Vec::with_capacity(frames * 1518),
            frames: Vec::with_capacity(frames),
        }
    }

    /// Replaces the batch with up to `max` frames of `reader` and returns how many; 0 at the
    /// end of the file. On an error the frames read before it stay in the batch.
    pub fn fill<R: Read>(&mut self, reader: &mut Reader<R>, max: usize) -> Result<usize, Error> {
        self.arena.clear();
        self.frames.clear();
        while self.frames.len() < max {
            let start = self.arena.len();
            let Some(packet) = reader.next_into(&mut self.arena)? else {
                break;
            };
            self.frames.push((start..self.arena.len(), packet));
        }
        Ok(self.frames.len())
    }

    /// Writes `mac` over the destination MAC of every frame (`--inner-dst-mac`).
    pub fn set_dst_mac(&mut self, mac: [u8; 6]) {
        for (range, _) in &self.frames {
            if let Some(dst) = self
                .arena
                .get_mut(range.start..range.end)
                .and_then(|frame| frame.get_mut(..6))
            {
                dst.copy_from_slice(&mac);
            }
        }
    }

    /// The frames, in file order, with their packets' metadata.
    pub fn frames(&self) -> impl Iterator<Item = (&[u8], &Packet)> {
        self.frames
            .iter()
            .map(|(range, packet)| (self.arena.get(range.clone()).unwrap_or_default(), packet))
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}
