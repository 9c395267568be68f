//! The capture thread: batches from the AF_XDP ring, tag checked and stripped, copies handed to
//! the sender, frames returned to the fill ring. No allocation and no syscall per packet.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use mirror_common::{Direction, TAG_LEN, TAG_MAGIC, Tag};
use prometheus::IntCounter;

use crate::{
    clock::MonotonicToUnix,
    netflow::{Interfaces, collector::FlowExport},
    send::Sender,
    tunnel::CopyMeta,
    xsk::Xsk,
};

/// Frames taken from the ring per round.
pub const BATCH: usize = 64;
/// How long the thread sleeps in `poll` when the ring is empty.
const IDLE_POLL_MS: i32 = 50;
/// How often the socket's drop statistics are read.
const STATS_EVERY: Duration = Duration::from_secs(1);

/// Counters of one mirrored interface, indexed by direction (0 ingress, 1 egress).
pub struct IfaceCounters {
    pub ifindex: u32,
    pub packets: [IntCounter; 2],
    pub bytes: [IntCounter; 2],
}

pub struct Capture {
    pub xsk: Xsk,
    pub sender: Sender,
    pub ifaces: Vec<IfaceCounters>,
    pub clock: MonotonicToUnix,
    /// Written over each copy's destination MAC (`--inner-dst-mac`).
    pub inner_dst_mac: Option<[u8; 6]>,
    pub malformed: IntCounter,
    pub ring_full: IntCounter,
    /// NetFlow of the same copies, when collectors are configured.
    pub netflow: Option<FlowExport>,
}

impl Capture {
    /// Runs until `stop` is set and the ring is empty.
    pub fn run(mut self, stop: &AtomicBool) -> anyhow::Result<()> {
        let mut descs = Xsk::batch(BATCH);
        // Per-round tallies per interface and direction, added to the shared counters once a round.
        let mut tallies = vec![[(0_u64, 0_u64); 2]; self.ifaces.len()];
        let mut ring_full_seen = 0;
        let mut next_stats = Instant::now() + STATS_EVERY;
        loop {
            // SAFETY: the descriptors come back from this socket's own UMEM.
            let received = unsafe { self.xsk.rx.consume(&mut descs) };
            if received == 0 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                self.xsk
                    .rx
                    .poll(IDLE_POLL_MS)
                    .context("polling the AF_XDP socket")?;
            } else {
                // Kernel time of the batch's newest copy: the flow meter's clock.
                let mut latest = 0;
                for desc in descs.iter_mut().take(received) {
                    if let Some(mac) = self.inner_dst_mac {
                        // SAFETY: the frame is ours until it goes back to the fill ring.
                        let mut data = unsafe { self.xsk.umem.data_mut(desc) };
                        if let Some(dst) = data.contents_mut().get_mut(TAG_LEN..TAG_LEN + 6) {
                            dst.copy_from_slice(&mac);
                        }
                    }
                    // SAFETY: the kernel wrote this frame and hands it to us until we refill it.
                    let data = unsafe { self.xsk.umem.data(desc) }.contents();
                    let Some((tag, frame)) = split_tag(data) else {
                        self.malformed.inc();
                        continue;
                    };
                    let slot = self.ifaces.iter().position(|i| i.ifindex == tag.ifindex);
                    let Some(tally) = slot
                        .and_then(|s| tallies.get_mut(s)?.get_mut(usize::from(tag.direction & 1)))
                    else {
                        self.malformed.inc();
                        continue;
                    };
                    latest = latest.max(tag.ktime_ns);
                    tally.0 += 1;
                    tally.1 += frame.len() as u64;
                    let meta = CopyMeta {
                        egress: direction(&tag) == Direction::Egress,
                        timestamp_ns: self.clock.unix_ns(tag.ktime_ns),
                        truncated: false,
                    };
                    // SAFETY: the frame stays in the UMEM, untouched, until the fill ring gets
                    // it back below, after `flush`.
                    unsafe { self.sender.push(frame, &meta) };
                }
                self.sender.flush();
                if let Some(netflow) = &mut self.netflow {
                    let umem = &self.xsk.umem;
                    let frames = descs.iter().take(received).filter_map(|desc| {
                        // SAFETY: as above; the frame is still ours.
                        let (tag, frame) = split_tag(unsafe { umem.data(desc) }.contents())?;
                        Some((frame, Interfaces::mirrored(tag.ifindex, direction(&tag))))
                    });
                    netflow.observe(frames, self.clock.unix_ns(latest));
                }
                let batch = descs.get(..received).unwrap_or_default();
                // SAFETY: these frames were consumed above and are no longer referenced.
                let refilled = unsafe { self.xsk.fill.produce(batch) };
                anyhow::ensure!(
                    refilled == received,
                    "fill ring took {refilled} of {received} frames back"
                );
                for (iface, tally) in self.ifaces.iter().zip(&mut tallies) {
                    for (dir, (packets, bytes)) in tally.iter_mut().enumerate() {
                        if *packets > 0
                            && let (Some(p), Some(b)) =
                                (iface.packets.get(dir), iface.bytes.get(dir))
                        {
                            p.inc_by(*packets);
                            b.inc_by(*bytes);
                            (*packets, *bytes) = (0, 0);
                        }
                    }
                }
            }
            if Instant::now() >= next_stats {
                next_stats += STATS_EVERY;
                ring_full_seen = self.update_ring_full(ring_full_seen);
                if let Some(netflow) = &mut self.netflow {
                    netflow.tick(unix_now_ns());
                }
            }
        }
        self.update_ring_full(ring_full_seen);
        if let Some(netflow) = &mut self.netflow {
            netflow.finish(unix_now_ns());
        }
        Ok(())
    }

    /// Copies the kernel dropped because the ring or the fill ring had no room.
    fn update_ring_full(&self, seen: u64) -> u64 {
        let Ok(stats) = self.xsk.rx.fd().xdp_statistics() else {
            return seen;
        };
        let now = stats.rx_dropped() + stats.rx_ring_full();
        self.ring_full.inc_by(now.saturating_sub(seen));
        now
    }
}

fn direction(tag: &Tag) -> Direction {
    if tag.direction == Direction::Egress as u8 {
        Direction::Egress
    } else {
        Direction::Ingress
    }
}

fn unix_now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Splits a frame from the AF_XDP ring into the mirror's tag and the original frame.
pub fn split_tag(data: &[u8]) -> Option<(Tag, &[u8])> {
    let (tag, frame) = data.split_at_checked(TAG_LEN)?;
    let magic = u16::from_ne_bytes(tag.get(0..2)?.try_into().ok()?);
    if magic != TAG_MAGIC || frame.is_empty() {
        return None;
    }
    Some((
        Tag {
            magic,
            direction: *tag.get(2)?,
            flags: *tag.get(3)?,
            ifindex: u32::from_ne_bytes(tag.get(4..8)?.try_into().ok()?),
            ktime_ns: u64::from_ne_bytes(tag.get(8..16)?.try_into().ok()?),
        },
        frame,
    ))
}

#[cfg(test)]
mod tests {
    use mirror_common::{Direction, mark_for};

    use super::*;

    fn tagged(tag: &Tag, frame: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&tag.magic.to_ne_bytes());
        out.extend_from_slice(&[tag.direction, tag.flags]);
        out.extend_from_slice(&tag.ifindex.to_ne_bytes());
        out.extend_from_slice(&tag.ktime_ns.to_ne_bytes());
        out.extend_from_slice(frame);
        out
    }

    #[test]
    fn splits_what_the_kernel_writes() {
        let tag = Tag::from_mark(mark_for(7, Direction::Egress), 123_456).unwrap();
        let data = tagged(&tag, b"frame");
        assert_eq!(split_tag(&data), Some((tag, &b"frame"[..])));
    }

    #[test]
    fn rejects_untagged_and_short() {
        let tag = Tag::from_mark(mark_for(7, Direction::Ingress), 0).unwrap();
        let data = tagged(&tag, b"x");
        for len in 0..data.len() {
            assert_eq!(split_tag(&data[..len]), None, "{len}");
        }
        let mut bad = data.clone();
        bad[0] ^= 0xff;
        assert_eq!(split_tag(&bad), None);
    }
}
