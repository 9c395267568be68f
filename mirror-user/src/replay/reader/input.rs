//! The file, read in large chunks into one buffer that is reused, so that every record or
//! block can be handed to pcap-file whole, as one slice.

use std::io::{self, Read};

/// Bytes asked of the file per read.
const READ_CHUNK: usize = 1 << 20;

/// A reader with a reusable buffer that keeps whole records in one slice.
pub(super) struct Input<R> {
    pub(super) inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// File offset of `buf[start]`.
    pub(super) offset: u64,
    eof: bool,
}

impl<R: Read> Input<R> {
    pub(super) fn new(inner: R) -> Self {
        Self {
            inner,
            buf: vec![0; READ_CHUNK],
            start: 0,
            end: 0,
            offset: 0,
            eof: false,
        }
    }

    pub(super) fn available(&self) -> &[u8] {
        self.buf.get(self.start..self.end).unwrap_or_default()
    }

    /// Makes at least `n` bytes available; `false` if the file ends first.
    #[inline]
    pub(super) fn fill(&mut self, n: usize) -> io::Result<bool> {
        // Twice per record: what is there already must cost no call.
        if self.end - self.start >= n {
            return Ok(true);
        }
        self.read_more(n)
    }

    /// Once per buffer's worth of the file.
    #[inline(never)]
    fn read_more(&mut self, n: usize) -> io::Result<bool> {
        while self.end - self.start < n {
            if self.eof {
                return Ok(false);
            }
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.buf.len() < n {
                self.buf.resize(n, 0);
            }
            let space = self.buf.get_mut(self.end..).unwrap_or_default();
            match self.inner.read(space) {
                Ok(0) => self.eof = true,
                Ok(read) => self.end += read,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Starts again from the file's first byte (after the file was rewound), keeping the
    /// buffer: a pass of a looped replay allocates nothing.
    pub(super) fn restart(&mut self) {
        self.start = 0;
        self.end = 0;
        self.offset = 0;
        self.eof = false;
    }

    pub(super) fn consume(&mut self, n: usize) {
        let n = n.min(self.end - self.start);
        self.start += n;
        self.offset += n as u64;
    }
}
