//! Frames larger than a UMEM chunk (jumbo frames): the AF_XDP socket hands them over in several
//! descriptors (`XDP_USE_SG`), all but the last flagged "continued". The capture thread copies
//! their pieces together here and gives the chunks straight back; the whole frame then takes
//! the copying path of the sender (a spare chunk cannot hold it, so the raw socket sends it,
//! whole, cut or in fragments as `--oversize` says).
//!
//! It also holds the round's copies from the classifiers' ring buffer that no spare chunk took
//! (`capture::ring_copy`): none was free, or a segment is larger than one.

/// The longest frame put together; anything longer is broken (the kernel never sends one: the
/// mirror veth's MTU is far below), and counted as malformed.
const MAX_GATHERED: usize = 65_536;

/// Where a whole frame made of parts is put: a spare UMEM chunk (`capture::ring_copy`) or, with
/// [`Listed`], the round's [`Gather`].
pub trait PutFrame {
    /// Puts the frame made of `parts`, one after the other; the frame, writable.
    fn put_frame(&mut self, parts: &[&[u8]]) -> &mut [u8];
}

/// Frames put into a [`Gather`], their indices listed in `frames`.
pub struct Listed<'a> {
    pub gather: &'a mut Gather,
    pub frames: &'a mut Vec<usize>,
}

impl PutFrame for Listed<'_> {
    fn put_frame(&mut self, parts: &[&[u8]]) -> &mut [u8] {
        let index = self.gather.put(parts);
        self.frames.push(index);
        self.gather.frame_mut(index)
    }
}

/// What a piece did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Piece {
    /// The frame goes on in the next descriptor.
    More,
    /// The frame is whole: its index for [`Gather::frame`].
    Whole(usize),
    /// The frame was longer than any frame can be, and is dropped.
    Broken,
}

/// The round's gathered frames. Each keeps its buffer until [`Gather::next_round`] (after the
/// round is sent, for the sender reads the frames in place); the buffers are reused.
#[derive(Default)]
pub struct Gather {
    frames: Vec<Vec<u8>>,
    /// Buffers in use this round, the one being gathered included.
    used: usize,
    /// The buffer of a frame still being gathered.
    open: Option<usize>,
    /// The frame being gathered went past [`MAX_GATHERED`].
    broken: bool,
}

impl Gather {
    /// Whether a frame is being gathered: the next descriptor belongs to it.
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// Adds the bytes of one descriptor; `last` when it is not flagged "continued".
    pub fn add(&mut self, bytes: &[u8], last: bool) -> Piece {
        let index = if let Some(index) = self.open {
            index
        } else {
            self.broken = false;
            let index = self.take_buffer();
            self.open = Some(index);
            index
        };
        if let Some(frame) = self.frames.get_mut(index) {
            if frame.len() + bytes.len() > MAX_GATHERED {
                self.broken = true;
            } else if !self.broken {
                frame.extend_from_slice(bytes);
            }
        }
        if !last {
            return Piece::More;
        }
        self.open = None;
        if self.broken {
            return Piece::Broken;
        }
        Piece::Whole(index)
    }

    /// A whole frame made of `parts`, beside any frame being gathered; its index.
    pub fn put(&mut self, parts: &[&[u8]]) -> usize {
        let index = self.take_buffer();
        if let Some(frame) = self.frames.get_mut(index) {
            for part in parts {
                frame.extend_from_slice(part);
            }
        }
        index
    }

    /// A whole frame of this round.
    pub fn frame(&self, index: usize) -> &[u8] {
        self.frames.get(index).map_or(&[], Vec::as_slice)
    }

    /// Like [`Gather::frame`], writable.
    pub fn frame_mut(&mut self, index: usize) -> &mut [u8] {
        self.frames
            .get_mut(index)
            .map_or(&mut [], Vec::as_mut_slice)
    }

    /// Frees the round's whole frames (call once the round is sent). A frame still being
    /// gathered carries over into the next round.
    pub fn next_round(&mut self) {
        if let Some(open) = self.open {
            self.frames.swap(0, open);
            self.open = Some(0);
            self.used = 1;
        } else {
            self.used = 0;
        }
    }

    /// An empty buffer of this round.
    fn take_buffer(&mut self) -> usize {
        if self.used == self.frames.len() {
            self.frames.push(Vec::new());
        }
        self.used += 1;
        let index = self.used - 1;
        if let Some(frame) = self.frames.get_mut(index) {
            frame.clear();
        }
        index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn puts_pieces_together_across_rounds() {
        let mut gather = Gather::default();
        assert_eq!(gather.add(b"ab", false), Piece::More);
        assert_eq!(gather.add(b"cd", true), Piece::Whole(0));
        assert_eq!(gather.add(b"xy", true), Piece::Whole(1));
        assert_eq!(gather.add(b"12", false), Piece::More);
        assert!(gather.is_open());
        // The round's whole frames stay as they were until the round is sent.
        assert_eq!(gather.frame(0), b"abcd");
        assert_eq!(gather.frame(1), b"xy");
        gather.next_round();
        assert_eq!(gather.add(b"34", true), Piece::Whole(0));
        assert_eq!(gather.frame(0), b"1234");
        gather.frame_mut(0)[0] = b'9';
        assert_eq!(gather.frame(0), b"9234");
        gather.next_round();
        assert!(!gather.is_open());
        assert_eq!(gather.add(b"z", true), Piece::Whole(0));
        assert_eq!(gather.frame(0), b"z");
    }

    #[test]
    fn drops_a_frame_longer_than_any() {
        let mut gather = Gather::default();
        let piece = vec![7; 4000];
        for _ in 0..MAX_GATHERED / piece.len() {
            assert_eq!(gather.add(&piece, false), Piece::More);
        }
        assert_eq!(gather.add(&piece, false), Piece::More);
        assert_eq!(gather.add(&piece, true), Piece::Broken);
        assert!(!gather.is_open());
        let Piece::Whole(ok) = gather.add(b"ok", true) else {
            panic!("not whole");
        };
        assert_eq!(gather.frame(ok), b"ok");
    }

    #[test]
    fn whole_frames_go_beside_an_open_one() {
        let mut gather = Gather::default();
        assert_eq!(gather.add(b"ab", false), Piece::More);
        let cut = gather.put(&[b"x", b"yz"]);
        assert_eq!(gather.add(b"cd", false), Piece::More);
        assert_eq!(gather.frame(cut), b"xyz");
        gather.next_round();
        assert_eq!(gather.add(b"ef", true), Piece::Whole(0));
        assert_eq!(gather.frame(0), b"abcdef");
    }
}
