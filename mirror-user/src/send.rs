//! Batched sending of tunnel packets through raw sockets whose IP header the agent writes: one
//! `sendmmsg` per address family and batch, the outer headers from the tunnel code, the inner
//! frame straight from the UMEM (no copy).
//!
//! Each copy is pushed on behalf of an owner (the capture thread's interface and direction) and
//! the flush tells every owner what became of its copies, so that per interface copies captured
//! equal copies sent plus copies dropped.

use std::{
    io,
    net::SocketAddr,
    os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd},
};

use prometheus::IntCounter;

use crate::{
    flow_hash::flow_hash,
    sockopt,
    transmit::xdp::{Oversized, RemoteView, XdpPath},
    tunnel::{CopyMeta, Encap, MAX_HEADER_LEN, fragment},
};

/// A [`Remote`](crate::remote::Remote) as the sender serves it: its encapsulation, size limits
/// and counters.
pub struct RemoteEncap {
    pub encap: Encap,
    pub addr: SocketAddr,
    /// Largest inner frame that fits the path MTU to this remote.
    pub max_inner: usize,
    /// The path MTU to this remote (for fragmenting).
    pub mtu: usize,
    pub sent_packets: IntCounter,
    pub sent_bytes: IntCounter,
}

/// What to do with a copy whose tunnel packet would exceed the path MTU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Oversize {
    /// Cut the inner frame to fit (ERSPAN's T bit says so).
    Truncate,
    /// Drop the copy.
    Drop,
    /// Send the outer packet in IP fragments; the remote's kernel reassembles them.
    Fragment,
}

/// Most fragments one copy becomes: the largest copy (3 KiB) at the smallest IPv6 MTU.
const MAX_FRAGMENTS: usize = 4;

/// How copies are shared among the destinations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Balance {
    /// Every destination gets every copy.
    Replicate,
    /// Each inner flow (both directions) goes to one destination.
    Flow,
}

/// Size limits and distribution of the copies.
#[derive(Clone, Copy, Debug)]
pub struct SendOptions {
    /// Cut every inner frame to at most this many bytes.
    pub snaplen: Option<usize>,
    pub oversize: Oversize,
    pub balance: Balance,
}

/// Counters of copies the sender cut or could not deliver.
pub struct SendCounters {
    pub too_big: IntCounter,
    pub send_error: IntCounter,
    pub truncated_snaplen: IntCounter,
    pub truncated_mtu: IntCounter,
    pub fragmented: IntCounter,
}

/// What became of one owner's copies in a flush: each copy is counted once, as `sent` when
/// every remote due to get it took it (all its fragments), else by the first reason it failed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub sent: u64,
    pub too_big: u64,
    pub send_error: u64,
}

impl Outcome {
    /// Copies counted in all.
    pub fn copies(&self) -> u64 {
        self.sent + self.too_big + self.send_error
    }
}

/// A copy pushed since the last flush: whose it is and whether it failed yet.
#[derive(Clone, Copy)]
struct Pending {
    owner: u16,
    failed: Option<Failure>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    TooBig,
    SendError,
}

impl Pending {
    /// Marks the copy failed; the first reason stays.
    fn fail(&mut self, failure: Failure) {
        self.failed.get_or_insert(failure);
    }
}

/// Per-flush tallies, added to the shared counters once per flush rather than per packet.
#[derive(Clone, Copy, Default)]
struct FlushCounts {
    packets: u64,
    bytes: u64,
}

/// The identification of the next fragmented packet after `last`, `step` on (never 0).
fn next_fragment_id(last: &mut u32, step: u32) -> u32 {
    *last = last.wrapping_add(step);
    if *last == 0 {
        *last = step;
    }
    *last
}

/// Messages of one address family waiting for `sendmmsg`.
struct Queue {
    fd: OwnedFd,
    headers: Vec<[u8; MAX_HEADER_LEN]>,
    iovecs: Vec<[libc::iovec; 2]>,
    names: Vec<libc::sockaddr_in6>,
    msgs: Vec<libc::mmsghdr>,
    /// Which destination each queued message goes to.
    targets: Vec<usize>,
    /// Which pending copy each queued message belongs to.
    copies: Vec<usize>,
    queued: usize,
}

pub struct Sender {
    v4: Queue,
    v6: Queue,
    destinations: Vec<RemoteEncap>,
    options: SendOptions,
    counters: SendCounters,
    tallies: Vec<FlushCounts>,
    /// The copies pushed since the last flush, in order.
    pending: Vec<Pending>,
    /// Identification of the last fragmented packet, and the step to the next: each capture
    /// thread's sender takes its own residue class, so no two threads send the same id.
    fragment_id: u32,
    fragment_step: u32,
    /// AF_XDP transmit, for the remotes it can serve (live capture only).
    xdp: Option<XdpPath>,
    /// Whether a copy's inner flow hash is needed (balancing, or some remote's headers).
    needs_hash: bool,
    /// The longest frame some remote takes in place from AF_XDP (0: none), as of the last
    /// [`Sender::refresh`].
    in_place_max: usize,
}

impl Sender {
    /// A sender for up to `batch` frames between flushes; its packets carry `mark`.
    pub fn new(
        destinations: Vec<RemoteEncap>,
        options: SendOptions,
        counters: SendCounters,
        batch: usize,
        mark: u32,
    ) -> io::Result<Self> {
        // With `Balance::Replicate` a frame becomes one message per destination, and with
        // fragmenting each of those up to MAX_FRAGMENTS.
        let per_copy = if options.oversize == Oversize::Fragment {
            MAX_FRAGMENTS
        } else {
            1
        };
        let slots = batch * destinations.len().max(1) * per_copy;
        let needs_hash =
            options.balance == Balance::Flow || destinations.iter().any(|d| d.encap.needs_hash());
        Ok(Self {
            v4: Queue::new(libc::AF_INET, slots, mark)?,
            v6: Queue::new(libc::AF_INET6, slots, mark)?,
            tallies: vec![FlushCounts::default(); destinations.len()],
            pending: Vec::with_capacity(batch),
            destinations,
            options,
            counters,
            fragment_id: 0,
            fragment_step: 1,
            xdp: None,
            needs_hash,
            in_place_max: 0,
        })
    }

    /// Makes this the sender of capture thread `index` of `count`: its fragment ids are its own.
    pub fn set_thread(&mut self, index: usize, count: usize) {
        let step = count.max(1).next_power_of_two();
        self.fragment_step = u32::try_from(step).unwrap_or(1);
        self.fragment_id = u32::try_from(index % step).unwrap_or(0);
    }

    /// Sends from AF_XDP to the remotes `path` can serve; the raw sockets serve the rest.
    pub fn set_xdp(&mut self, path: XdpPath) {
        self.xdp = Some(path);
    }

    /// Takes in changed next hops (once per batch; one atomic load when nothing changed).
    pub fn refresh(&mut self) {
        if let Some(xdp) = &mut self.xdp {
            xdp.refresh(self.destinations.iter_mut().map(|d| RemoteView {
                encap: &mut d.encap,
                addr: d.addr,
                max_inner: &mut d.max_inner,
                mtu: &mut d.mtu,
            }));
            let truncate = self.options.oversize == Oversize::Truncate;
            self.in_place_max = (self.destinations.iter().enumerate())
                .filter(|&(index, _)| xdp.serves(index))
                .map(|(_, d)| if truncate { usize::MAX } else { d.max_inner })
                .max()
                .unwrap_or(0);
        }
    }

    /// A spare chunk of the AF_XDP path with `parts` written into it (a tag, then the frame,
    /// placed so that [`Sender::push_chunk`] can send it in place): its UMEM address and bytes.
    /// `None` without the AF_XDP path, a free spare or the room.
    pub fn write_spare(&mut self, parts: &[&[u8]]) -> Option<(u64, &mut [u8])> {
        // Only where a remote could take it in place: a copy that leaves in fragments or
        // through the raw socket is copied from wherever it is, and the spare would be a waste.
        let len = parts.iter().skip(1).map(|p| p.len()).sum::<usize>();
        let len = self.options.snaplen.map_or(len, |snaplen| len.min(snaplen));
        if len > self.in_place_max {
            return None;
        }
        self.xdp.as_mut()?.write_spare(parts)
    }

    /// Gives back the chunks of [`Sender::write_spare`] that did not leave in place.
    pub fn give_spares(&mut self, chunks: &mut Vec<u64>) {
        match &mut self.xdp {
            Some(xdp) => xdp.give_spares(chunks),
            None => chunks.clear(),
        }
    }

    /// Chunks AF_XDP transmit is done with, for the fill ring.
    pub fn reclaim(&mut self, out: &mut Vec<u64>) {
        if let Some(xdp) = &mut self.xdp {
            xdp.reclaim(out);
        }
    }

    /// The sockets the packets leave through, for the classifiers to recognise.
    pub fn sockets(&self) -> [BorrowedFd<'_>; 2] {
        [self.v4.fd.as_fd(), self.v6.fd.as_fd()]
    }

    /// Queues the copies of `frame` (one per destination, or one in all with flow balancing),
    /// on behalf of `owner`: the next [`Sender::flush`] counts the copy in `outcomes[owner]`.
    /// With no destination at all (NetFlow only) a copy counts as sent: no remote missed it.
    ///
    /// # Safety
    /// `frame` must stay valid and unchanged until the next [`Sender::flush`] returns.
    pub unsafe fn push(&mut self, frame: &[u8], meta: &CopyMeta, owner: u16) {
        // SAFETY: the caller's contract, and no UMEM address: nothing is sent in place.
        unsafe { self.push_at(frame, None, meta, owner) };
    }

    /// Like [`Sender::push`] for a frame at UMEM address `at` of the AF_XDP path's UMEM: the
    /// last remote AF_XDP serves gets the frame in place. Returns whether it did: the chunk is
    /// then the kernel's until [`Sender::reclaim`] gives it back.
    ///
    /// # Safety
    /// As for [`Sender::push`]; `frame` must be the bytes at `at`, in a chunk the caller owns.
    pub unsafe fn push_chunk(
        &mut self,
        frame: &[u8],
        at: u64,
        meta: &CopyMeta,
        owner: u16,
    ) -> bool {
        // SAFETY: the caller's contract.
        unsafe { self.push_at(frame, Some(at), meta, owner) }
    }

    unsafe fn push_at(
        &mut self,
        frame: &[u8],
        at: Option<u64>,
        meta: &CopyMeta,
        owner: u16,
    ) -> bool {
        let copy = self.pending.len();
        // Grows only when the caller pushes more than a batch, whose extra copies fail below.
        self.pending.push(Pending {
            owner,
            failed: None,
        });
        let mut meta = *meta;
        let mut frame = frame;
        if let Some(snaplen) = self.options.snaplen
            && let Some(cut) = frame.get(..snaplen)
            && cut.len() < frame.len()
        {
            frame = cut;
            meta.truncated = true;
            self.counters.truncated_snaplen.inc();
        }
        let count = self.destinations.len();
        // Once per copy, for every remote's headers and for balancing.
        let hash = if self.needs_hash { flow_hash(frame) } else { 0 };
        let (first, len) = match self.options.balance {
            Balance::Replicate => (0, count),
            // The hash is symmetric, so both directions of a flow pick the same remote.
            Balance::Flow => ((hash as usize).checked_rem(count).unwrap_or(0), 1),
        };
        // How many remotes AF_XDP serves this copy: the last of them gets it in place.
        let oversize = self.options.oversize;
        let fits =
            move |d: &RemoteEncap| frame.len() <= d.max_inner || oversize == Oversize::Truncate;
        let mut by_xdp = self.xdp.as_ref().map_or(0, |xdp| {
            (first..first + len)
                .filter(|&i| xdp.serves(i) && self.destinations.get(i).is_some_and(fits))
                .count()
        });
        let mut in_place = false;
        for index in first..first + len {
            let Some(dest) = self.destinations.get_mut(index) else {
                continue;
            };
            let start_meta = meta;
            let (mut inner, mut meta) = (frame, start_meta);
            if let Some(xdp) = &mut self.xdp
                && xdp.serves(index)
                && fits(dest)
            {
                let cut = inner.len() > dest.max_inner;
                if cut {
                    inner = inner.get(..dest.max_inner).unwrap_or(inner);
                    meta.truncated = true;
                }
                by_xdp -= 1;
                let last = by_xdp == 0 && at.is_some();
                // SAFETY: `inner` starts at `at` (the caller's contract); in place only once.
                let sent = unsafe {
                    xdp.send(index, copy, &mut dest.encap, inner, at, (&meta, hash), last)
                };
                if sent {
                    if cut {
                        self.counters.truncated_mtu.inc();
                    }
                    in_place |= last;
                    continue;
                }
                // No chunk or ring slot: the raw socket takes this one.
                inner = frame;
                meta = start_meta;
            }
            if oversize == Oversize::Fragment
                && inner.len() > dest.max_inner
                && let Some(xdp) = &mut self.xdp
            {
                let id = next_fragment_id(&mut self.fragment_id, self.fragment_step);
                let oversized = Oversized {
                    index,
                    copy,
                    id,
                    mtu: dest.mtu,
                    ipv6: dest.addr.is_ipv6(),
                    inner,
                };
                if xdp.send_fragments(&oversized, &mut dest.encap, (&meta, hash)) {
                    self.counters.fragmented.inc();
                    continue;
                }
            }
            if self.xdp.as_ref().is_some_and(|xdp| xdp.link_down(index)) {
                // No carrier: a copy cannot leave, and the socket would not say so.
                self.counters.send_error.inc();
                if let Some(pending) = self.pending.get_mut(copy) {
                    pending.fail(Failure::SendError);
                }
                continue;
            }
            self.push_raw(index, copy, inner, (&meta, hash));
        }
        in_place
    }

    /// Queues `inner` for remote `index` on the raw socket: whole, cut, in fragments or not at
    /// all, as `--oversize` says.
    fn push_raw(
        &mut self,
        index: usize,
        copy: usize,
        inner: &[u8],
        (meta, hash): (&CopyMeta, u32),
    ) {
        let Some(dest) = self.destinations.get_mut(index) else {
            return;
        };
        let (mut inner, mut meta) = (inner, *meta);
        let queue = match dest.addr {
            SocketAddr::V4(_) => &mut self.v4,
            SocketAddr::V6(_) => &mut self.v6,
        };
        let queued = if inner.len() <= dest.max_inner {
            queue.push(index, copy, dest, inner, (&meta, hash))
        } else if self.options.oversize == Oversize::Fragment {
            let id = next_fragment_id(&mut self.fragment_id, self.fragment_step);
            let queued = queue.push_fragmented(index, copy, dest, inner, (&meta, hash), id);
            if queued {
                self.counters.fragmented.inc();
            }
            queued
        } else {
            let cut = inner
                .get(..dest.max_inner)
                .filter(|_| self.options.oversize == Oversize::Truncate);
            let Some(cut) = cut else {
                self.counters.too_big.inc();
                if let Some(pending) = self.pending.get_mut(copy) {
                    pending.fail(Failure::TooBig);
                }
                return;
            };
            inner = cut;
            meta.truncated = true;
            self.counters.truncated_mtu.inc();
            queue.push(index, copy, dest, inner, (&meta, hash))
        };
        if !queued {
            // More pushes than the batch size: the caller's bug, never the network's.
            self.counters.send_error.inc();
            if let Some(pending) = self.pending.get_mut(copy) {
                pending.fail(Failure::SendError);
            }
        }
    }

    /// Sends everything queued; a message the kernel refuses is counted and skipped. Adds what
    /// became of each copy pushed since the last flush to `outcomes[owner]` (owners past the end
    /// of `outcomes` are not counted).
    pub fn flush(&mut self, outcomes: &mut [Outcome]) {
        for queue in [&mut self.v4, &mut self.v6] {
            queue.flush(&mut self.tallies, &self.counters, &mut self.pending);
        }
        if let Some(xdp) = &mut self.xdp {
            let failed = xdp.flush();
            let mut round = std::mem::take(&mut xdp.queued);
            for queued in &round {
                // A packet the uplink's device dropped is a send error, as a raw socket's
                // packet the qdisc dropped.
                if failed & 1_u64.checked_shl(queued.uplink as u32).unwrap_or(0) != 0
                    || xdp.was_dropped(queued)
                {
                    self.counters.send_error.inc();
                    if let Some(copy) = self.pending.get_mut(queued.copy) {
                        copy.fail(Failure::SendError);
                    }
                } else if let Some(tally) = self.tallies.get_mut(queued.destination) {
                    tally.packets += 1;
                    tally.bytes += queued.bytes;
                }
            }
            round.clear();
            xdp.queued = round;
        }
        for copy in self.pending.drain(..) {
            if let Some(outcome) = outcomes.get_mut(usize::from(copy.owner)) {
                match copy.failed {
                    None => outcome.sent += 1,
                    Some(Failure::TooBig) => outcome.too_big += 1,
                    Some(Failure::SendError) => outcome.send_error += 1,
                }
            }
        }
        for (dest, tally) in self.destinations.iter().zip(&mut self.tallies) {
            if tally.packets > 0 {
                dest.sent_packets.inc_by(tally.packets);
                dest.sent_bytes.inc_by(tally.bytes);
                *tally = FlushCounts::default();
            }
        }
    }
}

impl Queue {
    fn new(family: libc::c_int, slots: usize, mark: u32) -> io::Result<Self> {
        // IPPROTO_RAW: the agent writes the whole IP header (IP_HDRINCL / IPV6_HDRINCL implied).
        let fd = sockopt::socket(family, libc::SOCK_RAW, libc::IPPROTO_RAW)?;
        sockopt::set_mark(fd.as_fd(), mark)?;
        sockopt::set(
            fd.as_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            &(4_i32 << 20),
        )?;
        // Without it a raw socket reports success for a packet the qdisc dropped (ENOBUFS):
        // such a copy must count as a send error, not as sent.
        let (level, name) = if family == libc::AF_INET6 {
            (libc::IPPROTO_IPV6, libc::IPV6_RECVERR)
        } else {
            (libc::IPPROTO_IP, libc::IP_RECVERR)
        };
        sockopt::set(fd.as_fd(), level, name, &1_i32)?;
        Ok(Self {
            fd,
            headers: vec![[0; MAX_HEADER_LEN]; slots],
            iovecs: vec![[zeroed_iovec(), zeroed_iovec()]; slots],
            // SAFETY: all-zero is a valid sockaddr_in6 and mmsghdr.
            names: (0..slots).map(|_| unsafe { std::mem::zeroed() }).collect(),
            // SAFETY: as above.
            msgs: (0..slots).map(|_| unsafe { std::mem::zeroed() }).collect(),
            targets: vec![0; slots],
            copies: vec![0; slots],
            queued: 0,
        })
    }

    /// Queues one message; `false` when the queue is full.
    fn push(
        &mut self,
        index: usize,
        copy: usize,
        dest: &mut RemoteEncap,
        inner: &[u8],
        (meta, hash): (&CopyMeta, u32),
    ) -> bool {
        let slot = self.queued;
        let Some(header) = self.headers.get_mut(slot) else {
            return false;
        };
        let header_len = dest.encap.write_header_hashed(inner, meta, hash, header);
        self.fill(slot, header_len, inner, dest.addr, (index, copy))
    }

    /// Queues the copy as IP fragments that fit the destination's MTU; `false` (and nothing
    /// queued) when they do not fit in the queue or the MTU cannot hold even the tunnel header.
    fn push_fragmented(
        &mut self,
        index: usize,
        copy: usize,
        dest: &mut RemoteEncap,
        inner: &[u8],
        meta: (&CopyMeta, u32),
        id: u32,
    ) -> bool {
        let first = self.queued;
        let queued = self.push_fragments(index, copy, dest, inner, meta, id);
        if !queued {
            // No stray first fragments: the remote could never reassemble them.
            self.queued = first;
        }
        queued
    }

    fn push_fragments(
        &mut self,
        index: usize,
        copy: usize,
        dest: &mut RemoteEncap,
        inner: &[u8],
        (meta, hash): (&CopyMeta, u32),
        id: u32,
    ) -> bool {
        let ipv6 = dest.addr.is_ipv6();
        let first = self.queued;
        let capacity = self.headers.len();
        let Some(header) = self.headers.get_mut(first) else {
            return false;
        };
        let header_len = dest.encap.write_header_hashed(inner, meta, hash, header);
        let ip_len = if ipv6 {
            fragment::IPV6_LEN
        } else {
            fragment::IPV4_LEN
        };
        let tunnel_len = header_len.saturating_sub(ip_len);
        let Some(plan) = fragment::Plan::new(dest.mtu, ipv6, tunnel_len, inner.len()) else {
            return false;
        };
        if first + plan.count > capacity {
            return false;
        }
        let (mut v4, mut v6) = ([0; fragment::IPV4_LEN], [0; fragment::IPV6_LEN]);
        if ipv6 {
            v6.copy_from_slice(header.get(..fragment::IPV6_LEN).unwrap_or_default());
            // The Fragment header goes between the IPv6 header and the tunnel's.
            header.copy_within(
                fragment::IPV6_LEN..header_len,
                fragment::IPV6_LEN + fragment::FRAGMENT_HEADER_LEN,
            );
        } else {
            v4.copy_from_slice(header.get(..fragment::IPV4_LEN).unwrap_or_default());
        }
        for fragment::Fragment {
            offset,
            len,
            more,
            frame,
        } in plan.fragments()
        {
            let slot = self.queued;
            let Some(header) = self.headers.get_mut(slot) else {
                return false;
            };
            let ip_header_len = if ipv6 {
                let out = header
                    .first_chunk_mut::<{ fragment::IPV6_LEN + fragment::FRAGMENT_HEADER_LEN }>();
                let Some(out) = out else { return false };
                fragment::patch_v6(&v6, out, id, offset, len, more);
                fragment::IPV6_LEN + fragment::FRAGMENT_HEADER_LEN
            } else {
                let Some(out) = header.first_chunk_mut::<{ fragment::IPV4_LEN }>() else {
                    return false;
                };
                *out = v4;
                fragment::patch_v4(out, id as u16, offset, len, more);
                fragment::IPV4_LEN
            };
            // The first fragment carries the tunnel header (still in its buffer) and the start of
            // the frame; the others carry the frame's next bytes.
            let iov0_len = if offset == 0 {
                ip_header_len + tunnel_len
            } else {
                ip_header_len
            };
            let Some(piece_bytes) = inner.get(frame) else {
                return false;
            };
            if !self.fill(slot, iov0_len, piece_bytes, dest.addr, (index, copy)) {
                return false;
            }
        }
        true
    }

    /// Points slot `slot` (the next one) at its header buffer and `inner`, for destination
    /// `index` and pending copy `copy`.
    fn fill(
        &mut self,
        slot: usize,
        header_len: usize,
        inner: &[u8],
        addr: SocketAddr,
        (index, copy): (usize, usize),
    ) -> bool {
        let (Some(header), Some(iov), Some(name), Some(msg), Some(target), Some(owner)) = (
            self.headers.get_mut(slot),
            self.iovecs.get_mut(slot),
            self.names.get_mut(slot),
            self.msgs.get_mut(slot),
            self.targets.get_mut(slot),
            self.copies.get_mut(slot),
        ) else {
            return false;
        };
        *iov = [
            libc::iovec {
                iov_base: header.as_mut_ptr().cast(),
                iov_len: header_len,
            },
            libc::iovec {
                iov_base: inner.as_ptr().cast_mut().cast(),
                iov_len: inner.len(),
            },
        ];
        let namelen = write_sockaddr(addr, name);
        msg.msg_hdr.msg_name = (&raw mut *name).cast();
        msg.msg_hdr.msg_namelen = namelen;
        msg.msg_hdr.msg_iov = iov.as_mut_ptr();
        msg.msg_hdr.msg_iovlen = 2;
        *target = index;
        *owner = copy;
        self.queued = slot + 1;
        true
    }

    fn flush(
        &mut self,
        tallies: &mut [FlushCounts],
        counters: &SendCounters,
        copies: &mut [Pending],
    ) {
        let queued = self.queued;
        self.queued = 0;
        let mut done = 0;
        while done < queued {
            let Some(pending) = self.msgs.get_mut(done..queued) else {
                return;
            };
            // SAFETY: every pending message points at live headers, names and UMEM frames
            // (the `push` contract).
            let rc = unsafe {
                libc::sendmmsg(
                    self.fd.as_raw_fd(),
                    pending.as_mut_ptr(),
                    pending.len() as libc::c_uint,
                    0,
                )
            };
            if rc < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                let failure = if err.raw_os_error() == Some(libc::EMSGSIZE) {
                    counters.too_big.inc();
                    Failure::TooBig
                } else {
                    counters.send_error.inc();
                    Failure::SendError
                };
                if let Some(copy) = self.copies.get(done).and_then(|&c| copies.get_mut(c)) {
                    copy.fail(failure);
                }
                // With IP_RECVERR the kernel also queues local errors (EMSGSIZE) for reading.
                drain_error_queue(self.fd.as_fd());
                done += 1;
                continue;
            }
            let sent = rc.unsigned_abs() as usize;
            for slot in done..done + sent {
                if let (Some(&target), Some([header, inner])) =
                    (self.targets.get(slot), self.iovecs.get(slot))
                    && let Some(tally) = tallies.get_mut(target)
                {
                    tally.packets += 1;
                    tally.bytes += (header.iov_len + inner.iov_len) as u64;
                }
            }
            done += sent;
        }
    }
}

// SAFETY: the raw pointers in the message buffers point into the queue's own buffers or at
// frames the caller lends until `flush`; the sender is used by one thread at a time.
unsafe impl Send for Queue {}

/// Reads and discards what is waiting on the socket's error queue, which nothing else reads.
fn drain_error_queue(fd: BorrowedFd<'_>) {
    let mut buf = [0_u8; 256];
    // Bounded: the queue holds at most a socket buffer's worth, and each error frees one entry.
    for _ in 0..64 {
        // SAFETY: valid fd and a buffer of the length given.
        let rc = unsafe {
            libc::recv(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT,
            )
        };
        if rc < 0 {
            break;
        }
    }
}

fn zeroed_iovec() -> libc::iovec {
    libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }
}

/// Writes `addr` into a `sockaddr_in6`-sized buffer (which a `sockaddr_in` fits) and returns
/// the length to pass. Raw sockets ignore the port: the tunnel header carries it.
fn write_sockaddr(addr: SocketAddr, out: &mut libc::sockaddr_in6) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*v4.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in is smaller than sockaddr_in6 and both are plain data.
            unsafe { std::ptr::write((&raw mut *out).cast::<libc::sockaddr_in>(), sin) };
            size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(v6) => {
            *out = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: 0,
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: v6.scope_id(),
            };
            size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

#[cfg(test)]
mod tests {
    //! The sender's bookkeeping over real raw sockets, on loopback only: every message either
    //! reaches the local stack or is refused before it leaves (a broadcast address without
    //! `SO_BROADCAST`).
    use std::net::{IpAddr, Ipv4Addr};

    use etherparse::PacketBuilder;

    use super::*;
    use crate::tunnel::Tunnel;

    const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;
    /// The kernel refuses it (EACCES): the socket has no `SO_BROADCAST`.
    const REFUSED: Ipv4Addr = Ipv4Addr::BROADCAST;

    fn counter() -> IntCounter {
        IntCounter::new("c", "c").unwrap()
    }

    fn destination(to: Ipv4Addr, mtu: u32) -> RemoteEncap {
        let tunnel = Tunnel::Gre {
            key: None,
            sequence: false,
        };
        let encap = Encap::new(&tunnel, IpAddr::V4(LOOPBACK), IpAddr::V4(to)).unwrap();
        RemoteEncap {
            max_inner: encap.max_inner_len(mtu),
            mtu: mtu as usize,
            encap,
            addr: SocketAddr::new(IpAddr::V4(to), 0),
            sent_packets: counter(),
            sent_bytes: counter(),
        }
    }

    /// A sender over `destinations`, or `None` (with the reason printed) without the
    /// privileges raw sockets and `SO_MARK` need.
    fn sender(
        destinations: Vec<RemoteEncap>,
        oversize: Oversize,
        balance: Balance,
        batch: usize,
    ) -> Option<Sender> {
        let options = SendOptions {
            snaplen: None,
            oversize,
            balance,
        };
        let counters = SendCounters {
            too_big: counter(),
            send_error: counter(),
            truncated_snaplen: counter(),
            truncated_mtu: counter(),
            fragmented: counter(),
        };
        match Sender::new(destinations, options, counters, batch, 0) {
            Ok(sender) => Some(sender),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                eprintln!("skipped: raw sockets need CAP_NET_RAW and SO_MARK CAP_NET_ADMIN ({e})");
                None
            }
            Err(e) => panic!("opening the raw sockets: {e}"),
        }
    }

    /// An Ethernet/IPv4/UDP frame of `len` bytes from source port `port`.
    fn frame(port: u16, len: usize) -> Vec<u8> {
        let payload = vec![0xab; len - 42];
        let mut out = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([198, 18, 0, 1], [198, 18, 0, 2], 64)
            .udp(port, 53)
            .write(&mut out, &payload)
            .unwrap();
        out
    }

    fn push_all(sender: &mut Sender, frames: &[(Vec<u8>, u16)]) -> Vec<Outcome> {
        for (frame, owner) in frames {
            // SAFETY: `frames` outlives the flush below.
            unsafe { sender.push(frame, &CopyMeta::default(), *owner) };
        }
        let mut outcomes = vec![Outcome::default(); 3];
        sender.flush(&mut outcomes);
        outcomes
    }

    fn sent(sender: &Sender) -> Vec<u64> {
        sender
            .destinations
            .iter()
            .map(|d| d.sent_packets.get())
            .collect()
    }

    #[test]
    fn a_replicated_copy_is_sent_only_if_every_remote_took_it() {
        let destinations = vec![destination(LOOPBACK, 1500), destination(REFUSED, 1500)];
        let Some(mut sender) = sender(destinations, Oversize::Drop, Balance::Replicate, 8) else {
            return;
        };
        let frames = [(frame(1, 100), 0), (frame(2, 100), 1), (frame(3, 100), 1)];
        let outcomes = push_all(&mut sender, &frames);
        // Loopback took all three, the broadcast address none: every copy failed.
        assert_eq!(sent(&sender), [3, 0]);
        assert_eq!(sender.counters.send_error.get(), 3);
        let failed = |n| Outcome {
            send_error: n,
            ..Outcome::default()
        };
        assert_eq!(outcomes, [failed(1), failed(2), Outcome::default()]);
        // Nothing stays pending for the next flush.
        let mut again = vec![Outcome::default(); 3];
        sender.flush(&mut again);
        assert!(again.iter().all(|o| o.copies() == 0), "{again:?}");
    }

    #[test]
    fn flow_balanced_copies_count_where_their_remote_took_them() {
        let destinations = vec![destination(LOOPBACK, 1500), destination(REFUSED, 1500)];
        let Some(mut sender) = sender(destinations, Oversize::Drop, Balance::Flow, 64) else {
            return;
        };
        let frames: Vec<_> = (0..40_u16).map(|i| (frame(i, 80), i % 3)).collect();
        let outcomes = push_all(&mut sender, &frames);
        let mut expected = vec![Outcome::default(); 3];
        for (frame, owner) in &frames {
            let outcome = &mut expected[usize::from(*owner)];
            if flow_hash(frame).is_multiple_of(2) {
                outcome.sent += 1;
            } else {
                outcome.send_error += 1;
            }
        }
        assert_eq!(outcomes, expected);
        let to_loopback: u64 = expected.iter().map(|o| o.sent).sum();
        assert!(to_loopback > 0 && to_loopback < 40, "{to_loopback}");
        assert_eq!(sent(&sender), [to_loopback, 0]);
    }

    #[test]
    fn a_fragmented_copy_counts_once_and_fails_whole() {
        let Some(mut sender) = sender(
            vec![destination(LOOPBACK, 600)],
            Oversize::Fragment,
            Balance::Replicate,
            1,
        ) else {
            return;
        };
        // 1400 bytes in 576-byte pieces: three fragments, one copy. (One batch holds
        // MAX_FRAGMENTS messages.)
        let outcomes = push_all(&mut sender, &[(frame(1, 1400), 2)]);
        assert_eq!(sent(&sender), [3]);
        assert_eq!(sender.counters.fragmented.get(), 1);
        let one_sent = Outcome {
            sent: 1,
            ..Outcome::default()
        };
        assert_eq!(outcomes, [Outcome::default(), Outcome::default(), one_sent]);
        // Five fragments do not fit the queue: the copy fails whole, no fragment of it leaves.
        let outcomes = push_all(&mut sender, &[(frame(2, 2600), 1)]);
        assert_eq!(sent(&sender), [3]);
        assert_eq!(outcomes[1].send_error, 1);
        assert_eq!(sender.counters.send_error.get(), 1);
    }

    #[test]
    fn oversize_drop_and_overflow_fail_their_own_copies() {
        let Some(mut sender) = sender(
            vec![destination(LOOPBACK, 600)],
            Oversize::Drop,
            Balance::Replicate,
            2,
        ) else {
            return;
        };
        let frames = [
            (frame(1, 100), 0),
            (frame(2, 1000), 1),
            (frame(3, 100), 2),
            // Past the batch of two messages: the caller's mistake, still counted.
            (frame(4, 100), 2),
        ];
        let outcomes = push_all(&mut sender, &frames);
        assert_eq!(
            outcomes,
            [
                Outcome {
                    sent: 1,
                    ..Outcome::default()
                },
                Outcome {
                    too_big: 1,
                    ..Outcome::default()
                },
                Outcome {
                    sent: 1,
                    send_error: 1,
                    ..Outcome::default()
                },
            ]
        );
        assert_eq!(sent(&sender), [2]);
        assert_eq!(
            (
                sender.counters.too_big.get(),
                sender.counters.send_error.get()
            ),
            (1, 1)
        );
    }
}
