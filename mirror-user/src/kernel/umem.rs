//! The UMEM: one memory area of fixed-size chunks, registered with the capture socket and
//! shared by every AF_XDP socket of the agent, so that a frame received from the mirror veth can
//! leave on an uplink from the very chunk it arrived in.
use std::{io, ptr::NonNull};

/// Bytes per chunk: one page, so that the largest copy ([`mirror_common::MAX_FRAME`] plus the
/// tag) fits behind the kernel's 256 bytes of headroom.
pub const CHUNK_SIZE: u32 = 4096;

/// The memory area, page-aligned and zeroed; unmapped on drop. The sockets that registered or
/// share it may close before or after: the kernel holds its own pin on the pages until the last
/// of them is closed.
pub struct Umem {
    base: NonNull<u8>,
    chunks: u32,
}

// SAFETY: the area is plain memory; who may touch which chunk when is decided by the rings
// (a chunk belongs either to the kernel or to the one thread that took it from a ring).
unsafe impl Send for Umem {}
// SAFETY: as above; shared references only hand out raw access under the callers' contracts.
unsafe impl Sync for Umem {}

impl Umem {
    /// Maps `chunks` chunks of anonymous memory.
    pub fn new(chunks: u32) -> io::Result<Self> {
        let len = chunks as usize * CHUNK_SIZE as usize;
        // SAFETY: a fresh private anonymous mapping.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(base.cast()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        Ok(Self { base, chunks })
    }

    pub fn chunks(&self) -> u32 {
        self.chunks
    }

    pub fn len(&self) -> usize {
        self.chunks as usize * CHUNK_SIZE as usize
    }

    pub fn is_empty(&self) -> bool {
        self.chunks == 0
    }

    pub fn base(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    /// The start of the chunk that holds UMEM address `addr`.
    pub const fn chunk_of(addr: u64) -> u64 {
        addr & !(CHUNK_SIZE as u64 - 1)
    }

    /// The addresses of every chunk.
    pub fn all_chunks(&self) -> impl Iterator<Item = u64> {
        (0..u64::from(self.chunks)).map(|i| i * u64::from(CHUNK_SIZE))
    }

    /// `len` bytes at UMEM address `addr`, if they lie within one chunk.
    ///
    /// # Safety
    /// The chunk must belong to the caller (taken from the RX or completion ring, not yet given
    /// back) and nothing may write these bytes while the slice lives.
    pub unsafe fn bytes(&self, addr: u64, len: usize) -> Option<&[u8]> {
        let ptr = self.checked(addr, len)?;
        // SAFETY: in bounds (checked) and not written meanwhile (the caller's contract).
        Some(unsafe { std::slice::from_raw_parts(ptr, len) })
    }

    /// Like [`Umem::bytes`], writable.
    ///
    /// # Safety
    /// As for [`Umem::bytes`], and no other slice of these bytes may live at the same time.
    #[expect(
        clippy::mut_from_ref,
        reason = "the chunk's owner is the caller, by contract"
    )]
    pub unsafe fn bytes_mut(&self, addr: u64, len: usize) -> Option<&mut [u8]> {
        let ptr = self.checked(addr, len)?;
        // SAFETY: in bounds (checked) and exclusively the caller's (the contract).
        Some(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
    }

    fn checked(&self, addr: u64, len: usize) -> Option<*mut u8> {
        let end = addr.checked_add(len as u64)?;
        let same_chunk = len == 0 || Self::chunk_of(addr) == Self::chunk_of(end - 1);
        if end > self.len() as u64 || !same_chunk {
            return None;
        }
        // SAFETY: `addr` is within the area (checked just above).
        Some(unsafe { self.base.as_ptr().add(addr as usize) })
    }
}

impl Drop for Umem {
    fn drop(&mut self) {
        // SAFETY: the area was mapped by `new` with this length.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_stay_within_one_chunk() {
        let umem = Umem::new(2).unwrap();
        // SAFETY: the test owns every chunk.
        unsafe {
            assert_eq!(umem.bytes(0, 4096).map(<[u8]>::len), Some(4096));
            assert!(
                umem.bytes(1, 4096).is_none(),
                "crosses into the second chunk"
            );
            assert_eq!(umem.bytes(4096 + 256, 100).map(<[u8]>::len), Some(100));
            assert!(umem.bytes(8192, 1).is_none(), "past the end");
            umem.bytes_mut(4096, 2).unwrap().copy_from_slice(&[1, 2]);
            assert_eq!(umem.bytes(4096, 2), Some(&[1, 2][..]));
        }
        assert_eq!(Umem::chunk_of(4096 + 300), 4096);
        assert_eq!(umem.all_chunks().collect::<Vec<_>>(), [0, 4096]);
    }
}
