//! Types shared by the kernel programs (`mirror-ebpf`) and the agent (`mirror-user`).
//!
//! How a copy carries its origin to user space:
//!
//! 1. The TC classifier on a mirrored interface writes [`mark_for`] into `skb->mark`, calls
//!    `bpf_clone_redirect` into the near end of the mirror veth pair and puts the original mark
//!    back, so the original packet leaves the program exactly as it came in.
//! 2. The clone keeps that mark. The TC egress classifier on the near end of the pair (it only
//!    ever sees clones) turns the mark into a [`Tag`] that it prepends to the frame with
//!    `bpf_skb_change_head`, stamped with the kernel's monotonic clock.
//! 3. XDP on the far end redirects the frame, tag first, into the AF_XDP socket; the agent reads
//!    the tag and strips it before the frame goes anywhere else.
#![no_std]

/// Bit set in `skb->mark` while a packet is being cloned by the mirror.
pub const MARK_CLONE: u32 = 1 << 31;
/// Bit set in `skb->mark` when the clone was taken on TC egress.
pub const MARK_EGRESS: u32 = 1 << 30;
/// Bit set in `skb->mark` when the kernel's copy of `--filter` selected the packet, so user
/// space need not run the filter again.
pub const MARK_SELECTED: u32 = 1 << 29;
/// Interface indexes the mark can carry (the kernel hands them out from 1 upwards).
pub const MARK_IFINDEX_MASK: u32 = MARK_SELECTED - 1;

/// The default `SO_MARK` of the agent's own sockets: the classifier never mirrors packets that
/// carry it, so tunnel and NetFlow traffic leaving a mirrored interface is not copied again.
pub const DEFAULT_AGENT_MARK: u32 = 0x6d69_7272; // "mirr"

/// Magic number at the start of every [`Tag`], checked by the agent.
pub const TAG_MAGIC: u16 = 0x4d54; // "MT"
/// [`Tag::flags`]: the copy was cut to `--snaplen` in the kernel.
pub const TAG_TRUNCATED: u8 = 1;
/// [`Tag::flags`]: the filter already ran in the kernel and selected the copy.
pub const TAG_SELECTED: u8 = 2;
/// Bytes the tag adds in front of each copied frame.
pub const TAG_LEN: usize = size_of::<Tag>();

/// Largest frame (without the tag) that the mirror veth pair carries whole: a 9000-byte-MTU
/// jumbo frame with VLAN tags to spare. The pair's MTU is set from this; the far end's XDP
/// program takes multi-buffer frames, which reach the AF_XDP socket in several chunks.
pub const MAX_FRAME: u32 = 9_216;

/// Largest frame copied when the AF_XDP socket cannot take a frame in several chunks
/// (`XDP_USE_SG`, Linux 6.6+): one 4096-byte chunk holds it with the tag behind the kernel's
/// headroom.
pub const ONE_CHUNK_FRAME: u32 = 3_072;

/// Direction of a copy, as the mirrored interface saw the packet (tc's point of view).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Received by the interface (for a pod's host-side veth: sent by the pod).
    Ingress = 0,
    /// Transmitted by the interface (for a pod's host-side veth: delivered to the pod).
    Egress = 1,
}

/// Returns the mark that tells the tagging program where a clone comes from.
#[expect(
    clippy::inline_always,
    reason = "called from eBPF programs, which must not call out"
)]
#[inline(always)]
pub const fn mark_for(ifindex: u32, direction: Direction, selected: bool) -> u32 {
    let dir = match direction {
        Direction::Ingress => 0,
        Direction::Egress => MARK_EGRESS,
    };
    let sel = if selected { MARK_SELECTED } else { 0 };
    MARK_CLONE | dir | sel | (ifindex & MARK_IFINDEX_MASK)
}

/// The header prepended to every copy on its way to the AF_XDP socket. All fields are in host
/// byte order: the tag never leaves this machine.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tag {
    /// [`TAG_MAGIC`].
    pub magic: u16,
    /// [`Direction`] as `u8`.
    pub direction: u8,
    /// [`TAG_TRUNCATED`] when the kernel cut the copy to the snap length.
    pub flags: u8,
    /// Index of the mirrored interface.
    pub ifindex: u32,
    /// `bpf_ktime_get_ns()` when the copy was taken (`CLOCK_MONOTONIC`).
    pub ktime_ns: u64,
}

impl Tag {
    /// The direction the copy was taken in (anything but egress reads as ingress).
    #[must_use]
    pub const fn direction(&self) -> Direction {
        if self.direction == Direction::Egress as u8 {
            Direction::Egress
        } else {
            Direction::Ingress
        }
    }

    /// Builds the tag for a clone that carries `mark`, or `None` if the mark is not the mirror's.
    #[expect(
        clippy::inline_always,
        reason = "called from eBPF programs, which must not call out"
    )]
    #[inline(always)]
    pub const fn from_mark(mark: u32, ktime_ns: u64) -> Option<Self> {
        if mark & MARK_CLONE == 0 {
            return None;
        }
        Some(Self {
            magic: TAG_MAGIC,
            direction: if mark & MARK_EGRESS == 0 { 0 } else { 1 },
            flags: if mark & MARK_SELECTED == 0 {
                0
            } else {
                TAG_SELECTED
            },
            ifindex: mark & MARK_IFINDEX_MASK,
            ktime_ns,
        })
    }

    /// The tag as it lies in front of a copy: the kernel stores the `#[repr(C)]` struct itself,
    /// these are its bytes (checked against the struct's layout below).
    #[must_use]
    pub const fn to_bytes(&self) -> [u8; TAG_LEN] {
        let [m0, m1] = self.magic.to_ne_bytes();
        let [i0, i1, i2, i3] = self.ifindex.to_ne_bytes();
        let [k0, k1, k2, k3, k4, k5, k6, k7] = self.ktime_ns.to_ne_bytes();
        [
            m0,
            m1,
            self.direction,
            self.flags,
            i0,
            i1,
            i2,
            i3,
            k0,
            k1,
            k2,
            k3,
            k4,
            k5,
            k6,
            k7,
        ]
    }

    /// Reads the tag in front of a copy; `None` without [`TAG_MAGIC`] (not a mirror copy).
    #[must_use]
    pub const fn from_bytes(bytes: [u8; TAG_LEN]) -> Option<Self> {
        let [
            m0,
            m1,
            direction,
            flags,
            i0,
            i1,
            i2,
            i3,
            k0,
            k1,
            k2,
            k3,
            k4,
            k5,
            k6,
            k7,
        ] = bytes;
        let magic = u16::from_ne_bytes([m0, m1]);
        if magic != TAG_MAGIC {
            return None;
        }
        Some(Self {
            magic,
            direction,
            flags,
            ifindex: u32::from_ne_bytes([i0, i1, i2, i3]),
            ktime_ns: u64::from_ne_bytes([k0, k1, k2, k3, k4, k5, k6, k7]),
        })
    }
}

// `to_bytes` and `from_bytes` follow the struct's own layout, which the kernel writes.
const _: () = assert!(
    core::mem::offset_of!(Tag, magic) == 0
        && core::mem::offset_of!(Tag, direction) == 2
        && core::mem::offset_of!(Tag, flags) == 3
        && core::mem::offset_of!(Tag, ifindex) == 4
        && core::mem::offset_of!(Tag, ktime_ns) == 8
        && TAG_LEN == 16
);

/// Declares [`KernelCounter`] and derives [`KERNEL_COUNTERS`] from the same list.
macro_rules! kernel_counters {
    ($($(#[$doc:meta])* $name:ident = $slot:literal,)*) => {
        /// Counters the kernel programs keep in a per-CPU array, indexed by these values.
        #[repr(u32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum KernelCounter {
            $($(#[$doc])* $name = $slot,)*
        }

        impl KernelCounter {
            /// Every counter, in slot order.
            pub const ALL: [Self; KERNEL_COUNTERS as usize] = [$(Self::$name,)*];
        }

        /// Number of [`KernelCounter`] slots.
        #[expect(
            clippy::cast_possible_truncation,
            reason = "a handful of counters"
        )]
        pub const KERNEL_COUNTERS: u32 = [$($slot),*].len() as u32;
    };
}

kernel_counters! {
    /// Packets cloned into the mirror veth.
    Cloned = 0,
    /// `bpf_clone_redirect` failed.
    CloneFailed = 1,
    /// Not cloned: larger than [`MAX_FRAME`].
    TooBig = 2,
    /// Not cloned: the agent's own traffic (by mark or socket).
    OwnTraffic = 3,
    /// Dropped at the near end of the pair: no mirror mark (e.g. the kernel's own packets).
    Untagged = 4,
    /// `bpf_skb_change_head` or the tag write failed.
    TagFailed = 5,
    /// Not cloned: left out by 1-in-N sampling.
    SampledOut = 6,
    /// Not cloned: the kernel's copy of `--filter` left the packet out.
    FilterLeftOut = 7,
    /// Selected by the kernel's copy of `--filter` (then sampled and cloned as any other).
    FilterKept = 8,
    /// Copies written into the `CUTS` ring buffer (cut to the snap length, or whole).
    CutCopied = 9,
    /// Copies lost: the `CUTS` ring buffer was full (the agent did not keep up).
    CutRingFull = 10,
}

// The slots are 0, 1, 2, ...: each counter indexes the array of KERNEL_COUNTERS entries.
const _: () = {
    let mut slot = 0;
    while slot < KernelCounter::ALL.len() {
        assert!(KernelCounter::ALL[slot] as usize == slot);
        slot += 1;
    }
};

/// Slots of the `FILTERS` program array: the generated filter program of each direction
/// (empty when `--filter` runs in user space only) and where a selected packet continues.
pub mod filter_slot {
    /// `--filter` for packets seen on TC ingress (index = [`super::Direction`] as u32).
    pub const INGRESS: u32 = 0;
    /// `--filter` for packets seen on TC egress.
    pub const EGRESS: u32 = 1;
    /// Offset from a direction's filter slot to the program that clones what it selected.
    pub const SELECTED: u32 = 2;
    /// Slots in the array.
    pub const LEN: u32 = 4;
}

/// Settings the agent writes into the `CONFIG` array before attaching anything.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// Index of the near end of the mirror veth pair (where clones go).
    pub mirror_ifindex: u32,
    /// `SO_MARK` of the agent's own sockets; packets with it are never mirrored.
    pub agent_mark: u32,
    /// `SO_COOKIE`s of the agent's own sockets (0 = unused): their packets are never mirrored
    /// either, even where a netfilter rule has rewritten the mark on the way out.
    pub own_sockets: [u64; OWN_SOCKETS],
    /// Copy one packet in this many, chosen at random (0 and 1 copy all).
    pub sample: u32,
    /// Cut every copy to this many bytes before it crosses the mirror veth (0: whole copies).
    /// A GSO super-frame becomes one copy of its first bytes.
    pub snaplen: u32,
    /// Frames longer than this (without the tag) are not copied: [`MAX_FRAME`], or
    /// [`ONE_CHUNK_FRAME`] where the socket takes no multi-buffer frames.
    pub max_frame: u32,
    /// 1: copies cut to `snaplen` (at most [`RING_FRAME`]) go through the `CUTS` ring buffer
    /// instead of a clone (see [`Cut`]); 0: such copies are clones.
    pub cut_ring: u32,
    /// 1: whole copies of frames that are not GSO super-frames, up to [`RING_FRAME`] bytes, go
    /// through the `CUTS` ring buffer too; 0: every whole copy is a clone.
    pub ring_copies: u32,
    /// Ring buffers in use (1..=[`MAX_WORKERS`]), one per capture thread: a copy taken on CPU
    /// `c` goes into ring `c % workers` (0 counts as 1).
    pub workers: u32,
}

/// Ring buffers of copies the classifiers have (`CUTS`, `CUTS_1` ...): capture threads at most.
pub const MAX_WORKERS: usize = 8;

/// The name of worker `index`'s ring buffer in the eBPF object.
pub const CUTS_MAPS: [&str; MAX_WORKERS] = [
    "CUTS", "CUTS_1", "CUTS_2", "CUTS_3", "CUTS_4", "CUTS_5", "CUTS_6", "CUTS_7",
];

/// Record size of the small class of the `CUTS` ring buffer (a 64-byte copy does not take a
/// record of a full frame's size).
pub const CUT_MAX: usize = 256;

/// Largest frame (or snap length) a record of the `CUTS` ring buffer holds for frames that are
/// not super-frames: an Ethernet frame of a 1500-byte MTU with room for two VLAN tags.
pub const RING_FRAME: usize = 2048;

/// Record sizes for TCP super-frames copied whole (GSO: the agent cuts them into their
/// segments): a few segments, and up to the 64 KB of a super-frame. Larger ones (BIG TCP) and
/// super-frames of other kinds are clones.
pub const RING_SUPER_SMALL: usize = 16384;
pub const RING_SUPER: usize = 65536;

/// A copy written by the classifier straight into the `CUTS` ring buffer, its first `len` bytes
/// in a record of `N` bytes of data ([`CUT_MAX`], [`RING_FRAME`], [`RING_SUPER_SMALL`] or
/// [`RING_SUPER`]): no clone, no veth crossing, no trim of a 64 KB super-frame
/// (`bpf_skb_change_tail` would pull all of it into one buffer first). A VLAN tag the kernel
/// holds out of band is not in `data`; the agent puts it back.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Cut<const N: usize = CUT_MAX> {
    pub tag: Tag,
    /// Bytes of `data` that hold the frame's start (or all of it).
    pub len: u32,
    /// Whether `vlan_proto` and `vlan_tci` hold a tag to put back after the MAC addresses.
    pub has_vlan: u16,
    /// The TPID as it is in memory (network order), as `skb->vlan_proto` holds it.
    pub vlan_proto: u16,
    /// The TCI in host order, as `skb->vlan_tci` holds it.
    pub vlan_tci: u16,
    /// The segment size of a TCP super-frame copied whole, which the agent cuts into segments
    /// of it; 0 for one frame.
    pub gso_size: u16,
    pub pad: u32,
    pub data: [u8; N],
}

/// The fields in front of a [`Cut`] record's data, as user space reads them from the record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CutHead {
    /// The tag's bytes (see [`Tag::from_bytes`]).
    pub tag: [u8; TAG_LEN],
    pub len: usize,
    /// The out-of-band VLAN tag to put back: TPID as in memory (network order), TCI.
    pub vlan: Option<(u16, u16)>,
    pub gso_size: u16,
}

impl CutHead {
    /// Where the data starts in a record.
    pub const DATA: usize = core::mem::offset_of!(Cut, data);

    /// The head of `record`, with `len` checked against the record's size; `None` if short.
    pub fn from_bytes(record: &[u8]) -> Option<Self> {
        let u16_at = |at: usize| Some(u16::from_ne_bytes(*record.get(at..)?.first_chunk()?));
        let len = u32::from_ne_bytes(
            *record
                .get(core::mem::offset_of!(Cut, len)..)?
                .first_chunk()?,
        );
        let len = len as usize;
        if record.len() < Self::DATA + len {
            return None;
        }
        let vlan = (u16_at(core::mem::offset_of!(Cut, has_vlan))? != 0).then_some((
            u16_at(core::mem::offset_of!(Cut, vlan_proto))?,
            u16_at(core::mem::offset_of!(Cut, vlan_tci))?,
        ));
        Some(Self {
            tag: *record.first_chunk()?,
            len,
            vlan,
            gso_size: u16_at(core::mem::offset_of!(Cut, gso_size))?,
        })
    }
}

/// Sockets of the agent that [`Config::own_sockets`] can name.
pub const OWN_SOCKETS: usize = 8;

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain `#[repr(C)]` data without padding or invalid bit patterns.
    unsafe impl aya::Pod for super::Config {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mark_round_trips_through_tag() {
        let tag = Tag::from_mark(mark_for(42, Direction::Egress, false), 7).unwrap();
        assert_eq!(tag.ifindex, 42);
        assert_eq!(tag.direction, Direction::Egress as u8);
        assert_eq!(tag.magic, TAG_MAGIC);
        assert_eq!(tag.flags, 0);
        let tag = Tag::from_mark(mark_for(3, Direction::Ingress, true), 0).unwrap();
        assert_eq!((tag.ifindex, tag.direction), (3, 0));
        assert_eq!(tag.flags, TAG_SELECTED);
        let big = MARK_IFINDEX_MASK;
        let tag = Tag::from_mark(mark_for(big, Direction::Ingress, false), 0).unwrap();
        assert_eq!((tag.ifindex, tag.flags), (big, 0));
    }

    #[test]
    fn foreign_marks_are_not_tags() {
        assert_eq!(Tag::from_mark(0, 0), None);
        assert_eq!(Tag::from_mark(DEFAULT_AGENT_MARK, 0), None);
    }

    #[test]
    fn tag_is_sixteen_bytes() {
        assert_eq!(TAG_LEN, 16);
    }

    #[test]
    fn tag_bytes_round_trip() {
        let tag =
            Tag::from_mark(mark_for(0x0123_4567, Direction::Egress, true), u64::MAX - 1).unwrap();
        let bytes = tag.to_bytes();
        assert_eq!(bytes[..2], TAG_MAGIC.to_ne_bytes());
        assert_eq!(bytes[4..8], 0x0123_4567u32.to_ne_bytes());
        assert_eq!(Tag::from_bytes(bytes), Some(tag));
        assert_eq!(Tag::from_bytes([0; TAG_LEN]), None);
    }
}
