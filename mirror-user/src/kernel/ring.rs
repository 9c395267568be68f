//! The four single-producer, single-consumer rings an AF_XDP socket shares with the kernel
//! (`Documentation/networking/af_xdp.rst`): RX and completion, which the kernel fills and we
//! read, TX and fill, which we fill and the kernel reads. Each is a power-of-two array of
//! entries with a producer and a consumer index in shared memory; our side keeps its own index
//! and a cached copy of the other side's, so that most calls touch no shared cache line twice.
use std::{
    io,
    marker::PhantomData,
    os::fd::{AsRawFd as _, BorrowedFd},
    ptr::NonNull,
    sync::atomic::{AtomicU32, Ordering},
};

/// One `mmap`ed ring; unmapped on drop.
pub struct Mapping {
    base: NonNull<u8>,
    len: usize,
}

impl Mapping {
    /// Maps `len` bytes of `fd` at page offset `offset` (one of the `XDP_*PGOFF*` values).
    pub fn new(fd: BorrowedFd<'_>, len: usize, offset: u64) -> io::Result<Self> {
        // SAFETY: a fresh shared mapping of the socket's ring; nothing else refers to it.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                libc::off_t::try_from(offset).map_err(io::Error::other)?,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(base.cast()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        Ok(Self { base, len })
    }

    /// Pointer to byte `offset` of the mapping.
    fn at(&self, offset: u64) -> *mut u8 {
        debug_assert!((offset as usize) < self.len);
        // SAFETY: offsets come from the kernel's XDP_MMAP_OFFSETS for this very mapping.
        unsafe { self.base.as_ptr().add(offset as usize) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping was made by `new` with this length and nothing uses it any more
        // (the ring that owns it is being dropped).
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// The shared parts of a ring: indexes, flags and entries of type `T`.
struct Shared<T> {
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    entries: *mut T,
    mask: u32,
    size: u32,
    _map: Mapping,
    _entry: PhantomData<T>,
}

// SAFETY: the ring is used by one thread at a time (each ring has one user-space owner), and
// the kernel side synchronises through the acquire/release indexes.
unsafe impl<T: Send> Send for Shared<T> {}

impl<T> Shared<T> {
    fn new(map: Mapping, offsets: &libc::xdp_ring_offset, size: u32) -> Self {
        Self {
            producer: map.at(offsets.producer).cast(),
            consumer: map.at(offsets.consumer).cast(),
            flags: map.at(offsets.flags).cast(),
            entries: map.at(offsets.desc).cast(),
            mask: size - 1,
            size,
            _map: map,
            _entry: PhantomData,
        }
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: points into the live mapping, aligned by the kernel.
        unsafe { &*self.producer }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as above.
        unsafe { &*self.consumer }
    }

    fn slot(&self, index: u32) -> *mut T {
        // SAFETY: masked into the ring's `size` entries.
        unsafe { self.entries.add((index & self.mask) as usize) }
    }
}

/// A ring we produce into (TX, fill).
pub struct Producer<T> {
    shared: Shared<T>,
    /// Our next index to write (published as the producer index on submit).
    head: u32,
    /// The kernel's consumer index plus the ring size, as last read.
    limit: u32,
}

impl<T: Copy> Producer<T> {
    pub fn new(map: Mapping, offsets: &libc::xdp_ring_offset, size: u32) -> Self {
        let shared = Shared::new(map, offsets, size);
        let head = shared.producer().load(Ordering::Relaxed);
        let limit = shared.consumer().load(Ordering::Acquire).wrapping_add(size);
        Self {
            shared,
            head,
            limit,
        }
    }

    /// Free entries, reading the kernel's consumer index only when fewer than `want` are known.
    pub fn free(&mut self, want: u32) -> u32 {
        let known = self.limit.wrapping_sub(self.head);
        if known >= want {
            return known;
        }
        self.limit = self
            .shared
            .consumer()
            .load(Ordering::Acquire)
            .wrapping_add(self.shared.size);
        self.limit.wrapping_sub(self.head)
    }

    /// Writes as many of `items` as fit and publishes them; returns how many.
    pub fn produce(&mut self, items: &[T]) -> usize {
        let count = (items.len() as u32).min(self.free(items.len() as u32));
        for (i, item) in items.iter().take(count as usize).enumerate() {
            // SAFETY: the slot is free (between the consumer and our head) and in the ring.
            unsafe {
                self.shared
                    .slot(self.head.wrapping_add(i as u32))
                    .write(*item);
            };
        }
        self.head = self.head.wrapping_add(count);
        self.shared.producer().store(self.head, Ordering::Release);
        count as usize
    }

    /// Whether the kernel asks for a syscall to look at the ring (`XDP_RING_NEED_WAKEUP`).
    pub fn needs_wakeup(&self) -> bool {
        // SAFETY: points into the live mapping.
        let flags = unsafe { &*self.shared.flags }.load(Ordering::Relaxed);
        flags & libc::XDP_RING_NEED_WAKEUP != 0
    }

    /// The entry the kernel consumed last, if it has consumed any of ours. Valid until we
    /// produce again (its slot is free).
    pub fn last_consumed(&self) -> Option<T> {
        let consumer = self.shared.consumer().load(Ordering::Acquire);
        let last = consumer.wrapping_sub(1);
        // Only an entry between our first and our latest produce (in ring order) is ours.
        (self.head.wrapping_sub(last).wrapping_sub(1) < self.shared.size)
            // SAFETY: the slot is in the ring; we wrote it and do not write again before this
            // read returns.
            .then(|| unsafe { self.shared.slot(last).read() })
    }

    /// Entries produced that the kernel has not consumed yet.
    pub fn outstanding(&mut self) -> u32 {
        self.shared.size - self.free(self.shared.size)
    }
}

/// A ring we consume from (RX, completion).
pub struct Consumer<T> {
    shared: Shared<T>,
    /// Our next index to read (published as the consumer index on release).
    tail: u32,
}

impl<T: Copy> Consumer<T> {
    pub fn new(map: Mapping, offsets: &libc::xdp_ring_offset, size: u32) -> Self {
        let shared = Shared::new(map, offsets, size);
        let tail = shared.consumer().load(Ordering::Relaxed);
        Self { shared, tail }
    }

    /// Moves up to `out.len()` entries into `out` and hands their slots back; returns how many.
    pub fn consume(&mut self, out: &mut [T]) -> usize {
        let ready = self
            .shared
            .producer()
            .load(Ordering::Acquire)
            .wrapping_sub(self.tail);
        let count = ready.min(out.len() as u32);
        for (i, slot) in out.iter_mut().take(count as usize).enumerate() {
            // SAFETY: the kernel published this entry (before its producer index) and in ring.
            *slot = unsafe { self.shared.slot(self.tail.wrapping_add(i as u32)).read() };
        }
        self.tail = self.tail.wrapping_add(count);
        self.shared.consumer().store(self.tail, Ordering::Release);
        count as usize
    }

    /// Entries waiting to be consumed.
    pub fn ready(&self) -> u32 {
        self.shared
            .producer()
            .load(Ordering::Acquire)
            .wrapping_sub(self.tail)
    }
}
