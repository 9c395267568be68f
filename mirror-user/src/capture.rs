//! A capture thread: batches from its ring buffer (and, on the first thread, from the AF_XDP
//! ring of clones), tag checked and stripped, copies handed to the sender, frames returned to the
//! fill ring. No allocation and no syscall per packet. One thread per agent CPU (`--cpus`), each
//! with its own ring buffer, sender and uplink queues; they share the UMEM, the counters and the
//! flow meter.
mod order;
mod ring_copy;
mod segment;

use std::{
    os::fd::{AsFd as _, AsRawFd as _},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use aya::maps::{MapData, RingBuf};
use mirror_common::{CutHead, Direction, TAG_LEN, TAG_SELECTED, TAG_TRUNCATED, Tag};
use prometheus::IntCounter;

use self::{
    order::Source,
    ring_copy::{RingCopies, RingCopy},
};
use crate::{
    clock::{self, MonotonicToUnix},
    filter::Filter,
    gather::{Gather, Piece, PutFrame},
    kernel::{umem::Umem, xdp_socket::XDP_PKT_CONTD, xsk::Xsk},
    metrics::CopyCounters,
    netflow::{Interfaces, collector::FlowExport},
    send::{Outcome, Sender},
    tunnel::CopyMeta,
};

/// Frames taken from the ring per round.
pub const BATCH: usize = 64;
/// How long the thread naps after a partial batch: none while batches come full, so the nap
/// only acts at low rates, where it turns a wakeup and a send per few copies into one per
/// millisecond (measured at 50k pps: 2.8 instead of 4.4 us of agent CPU per copy). The ring
/// (4096 frames) holds 16 ms of copies at 250 kpps; copies are late by at most this much.
const COALESCE: Duration = Duration::from_millis(1);
/// How long the thread sleeps in `poll` when the ring is empty.
const IDLE_POLL_MS: i32 = 50;
/// How often the socket's drop statistics are read.
const STATS_EVERY: Duration = Duration::from_secs(1);

/// Counters of one mirrored interface, indexed by direction (0 ingress, 1 egress).
#[derive(Clone)]
pub struct IfaceCounters {
    pub ifindex: u32,
    /// Copies captured, and sent or dropped after capture.
    pub packets: [CopyCounters; 2],
    pub bytes: [IntCounter; 2],
}

/// A round's counts of one interface and direction, added to its counters once a round.
#[derive(Clone, Copy, Default)]
struct RoundCounts {
    packets: u64,
    bytes: u64,
    filtered: u64,
}

/// The sender's owner of a copy: the interface's slot in the table and the direction.
fn owner(slot: usize, direction: usize) -> u16 {
    u16::try_from(slot * 2 + direction).unwrap_or(u16::MAX)
}

/// The mirrored interfaces by ifindex (the tag's), changed by the control plane as pods come and
/// go. The capture thread works on its own copy and takes a new one when `version` has moved:
/// one atomic load per batch, no lock per packet.
#[derive(Default)]
pub struct IfaceTable {
    version: AtomicU64,
    entries: Mutex<Vec<IfaceCounters>>,
}

impl IfaceTable {
    /// Adds (or replaces) the counters of `counters.ifindex`. Insert before attaching, so the
    /// first copies already count.
    pub fn insert(&self, counters: IfaceCounters) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|e| e.ifindex != counters.ifindex);
        entries.push(counters);
        self.version.fetch_add(1, Ordering::Release);
    }

    /// Forgets `ifindex`; its copies count as malformed from then on. Remove a while after
    /// detaching: copies already on their way still count.
    pub fn remove(&self, ifindex: u32) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.retain(|e| e.ifindex != ifindex);
        self.version.fetch_add(1, Ordering::Release);
    }

    fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Copies the table into `into` and returns the version copied.
    fn snapshot(&self, into: &mut Vec<IfaceCounters>) -> u64 {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        into.clone_from(&entries);
        self.version.load(Ordering::Acquire)
    }
}

pub struct Capture {
    /// The clones' AF_XDP socket (the first thread's only: the mirror veth has one queue).
    pub clones: Option<Xsk>,
    /// The UMEM every socket of the agent shares.
    pub umem: Arc<Umem>,
    /// Copies the classifiers wrote into this thread's ring buffer.
    pub ring: RingBuf<MapData>,
    pub sender: Sender,
    pub ifaces: Arc<IfaceTable>,
    pub clock: MonotonicToUnix,
    /// Written over each copy's destination MAC (`--inner-dst-mac`).
    pub inner_dst_mac: Option<[u8; 6]>,
    pub malformed: IntCounter,
    pub ring_full: IntCounter,
    /// NetFlow of the same copies, when collectors are configured (one meter for all threads,
    /// taken once a round).
    pub netflow: Option<Arc<Mutex<FlowExport>>>,
    /// `--filter`: only the copies it matches are sent and metered.
    pub filter: Option<Filter>,
    pub filtered: IntCounter,
    /// `mirror_filter_packets_total{path="user"}`: the copies the filter judged here.
    pub filter_kept: IntCounter,
    pub filter_left_out: IntCounter,
    /// Copies the kernel cut to `--snaplen` before they crossed the mirror veth.
    pub truncated_snaplen: IntCounter,
    /// Copies this thread read (`mirror_capture_thread_copies_total{cpu}`).
    pub read: IntCounter,
}

impl Capture {
    /// Runs until `stop` is set and the rings are empty.
    #[expect(
        clippy::too_many_lines,
        reason = "the one loop of the data path, step by step"
    )]
    pub fn run(mut self, stop: &AtomicBool) -> anyhow::Result<()> {
        let mut descs = [EMPTY_DESC; BATCH];
        let mut ifaces = Vec::new();
        let mut version = self.ifaces.snapshot(&mut ifaces);
        // Per-round tallies per interface and direction, added to the shared counters once a
        // round; the sender's outcomes are indexed by [`owner`].
        let mut tallies = vec![[RoundCounts::default(); 2]; ifaces.len()];
        let mut outcomes = vec![Outcome::default(); ifaces.len() * 2];
        // Chunks to give back to the fill ring, and the round's copies for the flow meter.
        let mut recycle: Vec<u64> = Vec::with_capacity(4 * BATCH);
        let mut flows: Vec<Observed> = Vec::with_capacity(BATCH);
        let mut gather = Gather::default();
        // The round's copies from the ring buffer, in spare chunks or in `gather`.
        let mut cut_frames: Vec<RingCopy> = Vec::with_capacity(2 * BATCH);
        // Spare chunks of ring buffer copies that did not leave in place, for the sender.
        let mut unsent: Vec<u64> = Vec::with_capacity(2 * BATCH);
        // The round's copies from both, oldest first.
        let mut round: Vec<(u64, Source)> = Vec::with_capacity(2 * BATCH);
        let mut ring_full_seen = 0;
        let mut next_stats = Instant::now() + STATS_EVERY;
        loop {
            // Chunks the uplinks have sent go back to the kernel for new copies.
            self.sender.reclaim(&mut recycle);
            self.give_back(&mut recycle)?;
            // The ring buffer first: a clone taken before its copies has had the time to
            // cross the veth by the time the AF_XDP ring is read, and is sent before them.
            read_cuts(
                &mut self.ring,
                &mut RingCopies {
                    sender: &mut self.sender,
                    gather: &mut gather,
                    copies: &mut cut_frames,
                },
            );
            let received = match &mut self.clones {
                Some(xsk) => xsk
                    .socket
                    .rx
                    .as_mut()
                    .context("no RX ring")?
                    .consume(&mut descs),
                None => 0,
            };
            if received == 0 && cut_frames.is_empty() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                self.wait_for_copies()?;
            } else {
                if self.ifaces.version() != version {
                    // The tallies are all zero here: the last round added them to the counters.
                    version = self.ifaces.snapshot(&mut ifaces);
                    tallies.clear();
                    tallies.resize(ifaces.len(), [RoundCounts::default(); 2]);
                    outcomes.clear();
                    outcomes.resize(ifaces.len() * 2, Outcome::default());
                }
                self.sender.refresh();
                // Kernel time of the batch's newest copy: the flow meter's clock.
                let mut latest = 0;
                let (mut filtered, mut kept, mut cut) = (0, 0, 0);
                order::in_order(
                    descs.get(..received).unwrap_or_default(),
                    &cut_frames,
                    gather.is_open(),
                    &self.umem,
                    &gather,
                    &mut round,
                );
                for &(_, source) in &round {
                    // A frame larger than a chunk comes in pieces: put together in `gather`,
                    // its chunks back to the kernel at once. `chunk` is the copy's own chunk,
                    // for a frame that came in one. A copy from the ring buffer is in a spare
                    // chunk (which goes back to the sender, not the kernel) or in `gather`.
                    let (desc, chunk, gathered) = match source {
                        Source::Ring(index) => match cut_frames.get(index) {
                            Some(&RingCopy::Chunk { at, len }) => {
                                let desc = libc::xdp_desc {
                                    addr: at,
                                    len: u32::try_from(len).unwrap_or(u32::MAX),
                                    options: 0,
                                };
                                (desc, Some(Umem::chunk_of(at)), None)
                            }
                            Some(&RingCopy::Gathered(index)) => (EMPTY_DESC, None, Some(index)),
                            None => continue,
                        },
                        Source::Desc(desc)
                            if desc.options & XDP_PKT_CONTD != 0 || gather.is_open() =>
                        {
                            let (at, len) = (desc.addr, desc.len as usize);
                            // SAFETY: the kernel wrote this piece and hands it to us until we
                            // give the chunk back.
                            let piece = unsafe { self.umem.bytes(at, len) };
                            let last = desc.options & XDP_PKT_CONTD == 0;
                            let done = gather.add(piece.unwrap_or_default(), last);
                            recycle.push(Umem::chunk_of(at));
                            match done {
                                Piece::More => continue,
                                Piece::Broken => {
                                    self.malformed.inc();
                                    continue;
                                }
                                Piece::Whole(index) => (desc, None, Some(index)),
                            }
                        }
                        Source::Desc(desc) => (desc, Some(Umem::chunk_of(desc.addr)), None),
                    };
                    let back = if matches!(source, Source::Ring(_)) {
                        &mut unsent
                    } else {
                        &mut recycle
                    };
                    let (at, len) = (desc.addr, desc.len as usize);
                    if let Some(mac) = self.inner_dst_mac {
                        let dst = match gathered {
                            Some(index) => gather.frame_mut(index).get_mut(TAG_LEN..TAG_LEN + 6),
                            // SAFETY: the chunk is ours until it goes back to the fill ring or
                            // leaves on an uplink, and no other slice of it lives.
                            None => unsafe { self.umem.bytes_mut(at + TAG_OFFSET, 6) }
                                .filter(|_| len >= TAG_LEN + 6),
                        };
                        if let Some(dst) = dst {
                            dst.copy_from_slice(&mac);
                        }
                    }
                    let data = match gathered {
                        Some(index) => gather.frame(index),
                        // SAFETY: the kernel (or, for a ring buffer copy, the sender's spare)
                        // holds this frame for us until we give the chunk back; only the bytes
                        // in front of it are written below.
                        None => unsafe { self.umem.bytes(at, len) }.unwrap_or_default(),
                    };
                    let Some((tag, frame)) = split_tag(data) else {
                        self.malformed.inc();
                        back.extend(chunk);
                        continue;
                    };
                    let direction = usize::from(tag.direction & 1);
                    let slot = ifaces.iter().position(|i| i.ifindex == tag.ifindex);
                    let Some((slot, tally)) =
                        slot.and_then(|s| Some((s, tallies.get_mut(s)?.get_mut(direction)?)))
                    else {
                        self.malformed.inc();
                        back.extend(chunk);
                        continue;
                    };
                    latest = latest.max(tag.ktime_ns);
                    tally.packets += 1;
                    tally.bytes += frame.len() as u64;
                    // The kernel's copy of the filter already selected this one.
                    if let Some(filter) = &self.filter
                        && tag.flags & TAG_SELECTED == 0
                    {
                        if !filter.matches(frame) {
                            filtered += 1;
                            tally.filtered += 1;
                            back.extend(chunk);
                            continue;
                        }
                        kept += 1;
                    }
                    let meta = CopyMeta {
                        egress: tag.direction() == Direction::Egress,
                        timestamp_ns: self.clock.unix_ns(tag.ktime_ns),
                        // Cut to --snaplen in the kernel already.
                        truncated: tag.flags & TAG_TRUNCATED != 0,
                    };
                    cut += u64::from(meta.truncated);
                    if self.netflow.is_some() {
                        flows.push(Observed {
                            at: gathered.map_or(Seen::Umem(at + TAG_OFFSET), Seen::Gathered),
                            len: frame.len(),
                            ifindex: tag.ifindex,
                            direction: tag.direction(),
                        });
                    }
                    let owner = owner(slot, direction);
                    if let Some(chunk) = chunk {
                        // SAFETY: the frame stays in the UMEM, unchanged, until the flush below
                        // has sent it (and, when sent in place, until the uplink gives it back).
                        let in_place =
                            unsafe { self.sender.push_chunk(frame, at + TAG_OFFSET, &meta, owner) };
                        if !in_place {
                            back.push(chunk);
                        }
                    } else {
                        // SAFETY: gathered frames stay unchanged until `next_round` below, after
                        // the flush.
                        unsafe { self.sender.push(frame, &meta, owner) };
                    }
                }
                // Captured counted before the flush: a scrape sees at most one batch captured
                // but not yet sent or dropped, never the other way round.
                add_captured(&ifaces, &mut tallies);
                self.sender.flush(&mut outcomes);
                add_outcomes(&ifaces, &mut tallies, &mut outcomes);
                self.filtered.inc_by(filtered);
                self.filter_kept.inc_by(kept);
                self.filter_left_out.inc_by(filtered);
                self.truncated_snaplen.inc_by(cut);
                self.observe_flows(&flows, &gather, latest);
                flows.clear();
                gather.next_round();
                let from_ring = cut_frames.len();
                self.read.inc_by((received + from_ring) as u64);
                cut_frames.clear();
                self.give_back(&mut recycle)?;
                self.sender.give_spares(&mut unsent);
                if received < BATCH && from_ring < BATCH {
                    // Software interrupt coalescing: a short nap lets the ring fill, so a wakeup,
                    // a `poll` and a send serve a batch of copies instead of each one.
                    std::thread::sleep(COALESCE);
                }
            }
            if Instant::now() >= next_stats {
                next_stats += STATS_EVERY;
                self.check_socket()?;
                ring_full_seen = self.update_ring_full(ring_full_seen);
                if let Some(netflow) = &self.netflow {
                    lock(netflow).tick(clock::unix_now_ns());
                }
            }
        }
        self.update_ring_full(ring_full_seen);
        Ok(())
    }

    /// Sleeps until the clones' socket or the ring buffer has copies, at most [`IDLE_POLL_MS`].
    fn wait_for_copies(&self) -> anyhow::Result<()> {
        match &self.clones {
            Some(xsk) => xsk
                .socket
                .poll_rx(IDLE_POLL_MS, self.ring.as_fd())
                .context("polling the AF_XDP socket"),
            None => poll_one(self.ring.as_fd().as_raw_fd()).context("polling the ring buffer"),
        }
    }

    /// Puts the chunks of `recycle` back on the fill ring and empties it.
    fn give_back(&mut self, recycle: &mut Vec<u64>) -> anyhow::Result<()> {
        if recycle.is_empty() {
            return Ok(());
        }
        // Without the clones' socket every chunk is a spare the sender keeps: nothing comes here.
        let xsk = self
            .clones
            .as_mut()
            .context("chunks to give back without a fill ring")?;
        let fill = xsk.socket.fill.as_mut().context("no fill ring")?;
        let given = fill.produce(recycle);
        anyhow::ensure!(
            given == recycle.len(),
            "fill ring took {given} of {} chunks back",
            recycle.len()
        );
        recycle.clear();
        Ok(())
    }

    /// Hands the round's copies to the flow meter, at kernel time `latest`.
    fn observe_flows(&self, flows: &[Observed], gather: &Gather, latest: u64) {
        let Some(netflow) = &self.netflow else {
            return;
        };
        if flows.is_empty() {
            return;
        }
        let umem = &self.umem;
        let frames = flows.iter().filter_map(|o| {
            let frame = match o.at {
                // SAFETY: the frames are ours (or only read by an uplink) until given back
                // below.
                Seen::Umem(at) => unsafe { umem.bytes(at, o.len) }?,
                Seen::Gathered(index) => gather.frame(index).get(TAG_LEN..)?,
            };
            Some((frame, Interfaces::mirrored(o.ifindex, o.direction)))
        });
        lock(netflow).observe(frames, self.clock.unix_ns(latest));
    }

    /// Fails once the socket has an error: the kernel sets ENETDOWN when the far end of the
    /// mirror veth goes away under it, and nothing will ever arrive again. (The control plane
    /// usually notices first.)
    fn check_socket(&self) -> anyhow::Result<()> {
        match self.clones.as_ref().and_then(|xsk| xsk.socket.error()) {
            Some(err) => anyhow::bail!(
                "the AF_XDP socket on {} failed: {err} (was the mirror veth deleted?)",
                crate::kernel::veth::FAR
            ),
            None => Ok(()),
        }
    }

    /// Copies the kernel dropped because the ring or the fill ring had no room.
    fn update_ring_full(&self, seen: u64) -> u64 {
        let Some(Ok(now)) = self.clones.as_ref().map(|xsk| xsk.socket.rx_dropped()) else {
            return seen;
        };
        self.ring_full.inc_by(now.saturating_sub(seen));
        now
    }
}

/// The flow meter, whichever thread panicked while holding it.
pub fn lock(netflow: &Mutex<FlowExport>) -> std::sync::MutexGuard<'_, FlowExport> {
    netflow.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Waits up to [`IDLE_POLL_MS`] for `fd` to be readable.
fn poll_one(fd: std::os::fd::RawFd) -> std::io::Result<()> {
    let mut pollfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    if unsafe { libc::poll(&raw mut pollfd, 1, IDLE_POLL_MS) } < 0 {
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
    Ok(())
}

/// A copy of the round, for the flow meter once the round is sent.
struct Observed {
    /// Where the frame is (tag stripped), and its length.
    at: Seen,
    len: usize,
    ifindex: u32,
    direction: Direction,
}

/// Where a copy of the round lies.
#[derive(Clone, Copy)]
enum Seen {
    /// At this UMEM address.
    Umem(u64),
    /// In the round's gathered frame of this index, behind the tag.
    Gathered(usize),
}

/// Where the frame starts behind the tag.
const TAG_OFFSET: u64 = TAG_LEN as u64;

const EMPTY_DESC: libc::xdp_desc = libc::xdp_desc {
    addr: 0,
    len: 0,
    options: 0,
};

/// Takes up to a batch of copies from the classifiers' ring buffer into `store`, as frames
/// behind their tags (the VLAN tag the kernel held out of band put back, a TCP super-frame cut
/// into its segments).
fn read_cuts(ring: &mut RingBuf<MapData>, store: &mut RingCopies<'_>) {
    while store.copies.len() < BATCH
        && let Some(record) = ring.next()
    {
        cut_frames(&record, store);
    }
}

/// Puts a [`Cut`] record's frame (or its segments) behind its tag into `store`; nothing if the
/// record is short.
fn cut_frames(record: &[u8], store: &mut impl PutFrame) {
    let Some(head) = CutHead::from_bytes(record) else {
        return;
    };
    let Some(frame) = record.get(CutHead::DATA..CutHead::DATA + head.len) else {
        return;
    };
    let tag = &head.tag[..];
    // The TPID as it was in memory (network order); the TCI in host order.
    let vlan = head.vlan.map(|(proto, tci)| {
        let [a, b] = proto.to_ne_bytes();
        let [c, d] = tci.to_be_bytes();
        [a, b, c, d]
    });
    let mss = usize::from(head.gso_size);
    if mss != 0 && segment::segment_into(tag, (frame, vlan), mss, store) {
        return;
    }
    match (vlan, frame.split_at_checked(12)) {
        (None, _) => {
            store.put_frame(&[tag, frame]);
        }
        (Some(vlan), Some((macs, rest))) => {
            store.put_frame(&[tag, macs, &vlan, rest]);
        }
        (Some(_), None) => {}
    }
}

/// Adds a round's captured copies and bytes to the interfaces' counters and clears them.
fn add_captured(ifaces: &[IfaceCounters], tallies: &mut [[RoundCounts; 2]]) {
    for (iface, tally) in ifaces.iter().zip(tallies) {
        for (dir, tally) in tally.iter_mut().enumerate() {
            if tally.packets > 0
                && let (Some(p), Some(b)) = (iface.packets.get(dir), iface.bytes.get(dir))
            {
                p.captured.inc_by(tally.packets);
                b.inc_by(tally.bytes);
                (tally.packets, tally.bytes) = (0, 0);
            }
        }
    }
}

/// Adds what became of a round's copies (sent, filtered, dropped by the sender) to the
/// interfaces' counters and clears the tallies.
fn add_outcomes(
    ifaces: &[IfaceCounters],
    tallies: &mut [[RoundCounts; 2]],
    outcomes: &mut [Outcome],
) {
    for (slot, (iface, tally)) in ifaces.iter().zip(tallies).enumerate() {
        for (dir, tally) in tally.iter_mut().enumerate() {
            let outcome = outcomes
                .get_mut(usize::from(owner(slot, dir)))
                .map(std::mem::take)
                .unwrap_or_default();
            if let Some(copies) = iface.packets.get(dir) {
                copies.add(&outcome, tally.filtered);
            }
            tally.filtered = 0;
        }
    }
}

/// Splits a frame from the AF_XDP ring into the mirror's tag and the original frame.
pub fn split_tag(data: &[u8]) -> Option<(Tag, &[u8])> {
    let (tag, frame) = data.split_first_chunk::<TAG_LEN>()?;
    if frame.is_empty() {
        return None;
    }
    Some((Tag::from_bytes(*tag)?, frame))
}

#[cfg(test)]
mod tests {
    use mirror_common::{Cut, Direction, mark_for};

    use super::*;
    use crate::gather::Listed;

    fn tagged(tag: &Tag, frame: &[u8]) -> Vec<u8> {
        [&tag.to_bytes()[..], frame].concat()
    }

    #[test]
    fn table_changes_reach_snapshots() {
        let metrics = crate::metrics::Metrics::new().unwrap();
        let entry = |ifindex| {
            let (ip, ib) = metrics.captured("a", "ingress");
            let (ep, eb) = metrics.captured("a", "egress");
            IfaceCounters {
                ifindex,
                packets: [ip, ep],
                bytes: [ib, eb],
            }
        };
        let table = IfaceTable::default();
        let mut copy = Vec::new();
        let seen = table.snapshot(&mut copy);
        assert!(copy.is_empty());
        table.insert(entry(7));
        table.insert(entry(9));
        table.insert(entry(7));
        assert_ne!(table.version(), seen);
        let seen = table.snapshot(&mut copy);
        assert_eq!(copy.iter().map(|e| e.ifindex).collect::<Vec<_>>(), [9, 7]);
        assert_eq!(table.version(), seen);
        table.remove(9);
        table.snapshot(&mut copy);
        assert_eq!(copy.iter().map(|e| e.ifindex).collect::<Vec<_>>(), [7]);
    }

    /// A [`Cut`] record of `N` bytes of data as the classifier writes it.
    fn record_of<const N: usize>(
        tag: &Tag,
        frame: &[u8],
        vlan: Option<(u16, u16)>,
        gso_size: u16,
    ) -> Vec<u8> {
        let mut data = [0; N];
        data[..frame.len()].copy_from_slice(frame);
        let cut = Cut::<N> {
            tag: *tag,
            len: u32::try_from(frame.len()).unwrap(),
            has_vlan: u16::from(vlan.is_some()),
            vlan_proto: vlan.map_or(0, |(proto, _)| proto.to_be()),
            vlan_tci: vlan.map_or(0, |(_, tci)| tci),
            gso_size,
            pad: 0,
            data,
        };
        // SAFETY: `Cut` is plain `repr(C)` data without padding.
        unsafe {
            std::slice::from_raw_parts((&raw const cut).cast::<u8>(), size_of::<Cut<N>>()).to_vec()
        }
    }

    fn cut_record(tag: &Tag, frame: &[u8], vlan: Option<(u16, u16)>) -> Vec<u8> {
        record_of::<{ mirror_common::CUT_MAX }>(tag, frame, vlan, 0)
    }

    /// The frames `cut_frames` makes of `record`.
    fn frames_of(record: &[u8], gather: &mut Gather) -> Vec<usize> {
        let mut frames = Vec::new();
        cut_frames(
            record,
            &mut Listed {
                gather,
                frames: &mut frames,
            },
        );
        frames
    }

    #[test]
    fn full_size_records_hold_whole_frames() {
        let tag = Tag::from_mark(mark_for(7, Direction::Ingress, false), 5).unwrap();
        let frame: Vec<u8> = (0..1514u32)
            .map(|i| u8::try_from(i % 251).unwrap())
            .collect();
        let mut gather = Gather::default();
        let record = record_of::<{ mirror_common::RING_FRAME }>(&tag, &frame, None, 0);
        let [index] = frames_of(&record, &mut gather)[..] else {
            panic!("not one frame");
        };
        assert_eq!(split_tag(gather.frame(index)), Some((tag, &frame[..])));
    }

    #[test]
    fn super_frame_records_become_segments_with_the_vlan_tag_back() {
        let tag = Tag::from_mark(mark_for(7, Direction::Ingress, false), 5).unwrap();
        let mut frame = Vec::new();
        etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([198, 18, 0, 1], [198, 18, 0, 2], 64)
            .tcp(1, 2, 100, 1000)
            .write(&mut frame, &[5; 3000])
            .unwrap();
        let mut gather = Gather::default();
        let record =
            record_of::<{ mirror_common::RING_SUPER_SMALL }>(&tag, &frame, Some((0x8100, 7)), 1448);
        let frames = frames_of(&record, &mut gather);
        assert_eq!(frames.len(), 3);
        let lengths: Vec<usize> = frames.iter().map(|&i| gather.frame(i).len()).collect();
        // Tag, Ethernet, VLAN tag, IPv4, TCP, payload.
        assert_eq!(
            lengths,
            [16 + 18 + 40 + 1448, 16 + 18 + 40 + 1448, 16 + 18 + 40 + 104]
        );
        for &index in &frames {
            let (_, segment) = split_tag(gather.frame(index)).unwrap();
            assert_eq!(&segment[12..16], &[0x81, 0x00, 0, 7]);
        }
    }

    #[test]
    fn cut_records_become_tagged_frames() {
        let tag = Tag::from_mark(mark_for(7, Direction::Egress, false), 99).unwrap();
        let frame: Vec<u8> = (0..40).collect();
        let mut gather = Gather::default();
        let [plain] = frames_of(&cut_record(&tag, &frame, None), &mut gather)[..] else {
            panic!("not one frame");
        };
        assert_eq!(split_tag(gather.frame(plain)), Some((tag, &frame[..])));
        // The out-of-band VLAN tag goes back in after the MAC addresses, in network order.
        let record = cut_record(&tag, &frame, Some((0x8100, 0x2064)));
        let [tagged] = frames_of(&record, &mut gather)[..] else {
            panic!("not one frame");
        };
        let mut expected = frame[..12].to_vec();
        expected.extend_from_slice(&[0x81, 0x00, 0x20, 0x64]);
        expected.extend_from_slice(&frame[12..]);
        assert_eq!(split_tag(gather.frame(tagged)), Some((tag, &expected[..])));
        let record = cut_record(&tag, &frame, None);
        assert!(
            frames_of(&record[..30], &mut gather).is_empty(),
            "short record"
        );
    }

    #[test]
    fn splits_what_the_kernel_writes() {
        let tag = Tag::from_mark(mark_for(7, Direction::Egress, false), 123_456).unwrap();
        let data = tagged(&tag, b"frame");
        assert_eq!(split_tag(&data), Some((tag, &b"frame"[..])));
    }

    #[test]
    fn rejects_untagged_and_short() {
        let tag = Tag::from_mark(mark_for(7, Direction::Ingress, false), 0).unwrap();
        let data = tagged(&tag, b"x");
        for len in 0..data.len() {
            assert_eq!(split_tag(&data[..len]), None, "{len}");
        }
        let mut bad = data.clone();
        bad[0] ^= 0xff;
        assert_eq!(split_tag(&bad), None);
    }
}
