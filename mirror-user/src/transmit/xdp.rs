//! Sending copies from AF_XDP: the outer Ethernet, IP and tunnel headers are written into the
//! headroom in front of the captured frame and that same UMEM chunk goes onto the uplink's TX
//! ring; no user-space copy. With several remotes, all but the last get the copy in a spare
//! chunk (one copy each). Chunks come back on the uplinks' completion rings and return to the
//! capture's fill ring.
mod fragments;

pub use self::fragments::Oversized;

use std::{
    net::SocketAddr,
    os::fd::{AsFd as _, OwnedFd},
    sync::Arc,
};

use prometheus::IntGauge;

use super::{
    next_hop::{ETH_LEN, Hop, NextHopTable, SocketReason},
    uplink::Uplink,
};
use crate::{
    kernel::umem::{CHUNK_SIZE, Umem},
    tunnel::{CopyMeta, Encap, MAX_HEADER_LEN},
};

/// Where the frame starts in a spare chunk: room for the outer headers in front of it.
const SPARE_AT: u64 = 256;
const _: () = assert!(SPARE_AT as usize >= ETH_LEN + MAX_HEADER_LEN);

/// The AF_XDP route of one remote: its uplink and Ethernet header.
#[derive(Clone, Copy)]
struct Route {
    uplink: usize,
    eth: [u8; ETH_LEN],
}

/// The two values of `mirror_remote_send_path{remote,path}` of one remote: how many senders
/// (capture threads, or the replay) send its copies each way now.
pub struct PathGauges {
    pub af_xdp: IntGauge,
    pub socket: IntGauge,
}

impl PathGauges {
    fn way(&self, af_xdp: bool) -> &IntGauge {
        if af_xdp { &self.af_xdp } else { &self.socket }
    }
}

/// A packet put on an uplink's TX ring this round, for the flush to account.
#[derive(Clone, Copy)]
pub struct Queued {
    pub uplink: usize,
    pub destination: usize,
    pub copy: usize,
    pub bytes: u64,
    /// Where the packet starts in the UMEM (tells a dropped packet's copy).
    pub addr: u64,
}

pub struct XdpPath {
    umem: Arc<Umem>,
    /// The socket that registered the UMEM (a duplicate of its descriptor), which every uplink
    /// shares: the capture socket, or for a replay the first uplink's.
    owner: Option<OwnedFd>,
    table: Arc<NextHopTable>,
    version: u64,
    hops: Vec<Hop>,
    routes: Vec<Option<Route>>,
    uplinks: Vec<Uplink>,
    /// Devices that refused an AF_XDP socket (said once in the log).
    refused: Vec<u32>,
    /// Chunks for the copies of all but the last remote.
    spares: Vec<u64>,
    spare_target: usize,
    gauges: Vec<PathGauges>,
    /// Per remote, the gauge this path counts itself in: AF_XDP's (`true`) or the socket's.
    counted: Vec<Option<bool>>,
    labels: Vec<String>,
    /// Whether path changes are said on stderr (not by `mirror replay`, whose stderr is its
    /// summary, nor by capture threads but the first).
    pub say: bool,
    /// The queue of each uplink this path binds: the capture thread's own.
    pub queue: u32,
    /// This round's packets, accounted by the flush.
    pub queued: Vec<Queued>,
    /// Packets the uplinks' devices dropped in the last flush: (uplink, UMEM address).
    pub dropped: Vec<(usize, u64)>,
    scratch: Vec<u64>,
}

/// The destination fields the next hop decides.
pub struct RemoteView<'a> {
    pub encap: &'a mut Encap,
    pub addr: SocketAddr,
    pub max_inner: &'a mut usize,
    pub mtu: &'a mut usize,
}

impl XdpPath {
    /// `spares` are chunks of `umem` that belong to the path from now on; `owner` is the socket
    /// that registered `umem`, if any (else the first uplink registers it).
    pub fn new(
        umem: Arc<Umem>,
        owner: Option<OwnedFd>,
        table: Arc<NextHopTable>,
        spares: Vec<u64>,
        gauges: Vec<PathGauges>,
        labels: Vec<String>,
    ) -> Self {
        Self {
            umem,
            owner,
            table,
            version: u64::MAX,
            hops: Vec::new(),
            routes: Vec::new(),
            uplinks: Vec::new(),
            refused: Vec::new(),
            spare_target: spares.len(),
            spares,
            counted: vec![None; gauges.len()],
            gauges,
            labels,
            say: true,
            queue: 0,
            queued: Vec::new(),
            dropped: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// Takes the next hops in when the table changed: one atomic load otherwise.
    pub fn refresh<'a>(&mut self, destinations: impl Iterator<Item = RemoteView<'a>>) {
        let version = self.table.version();
        if version == self.version {
            return;
        }
        let old = std::mem::take(&mut self.hops);
        self.version = self.table.snapshot(&mut self.hops);
        self.routes.resize(self.hops.len(), None);
        for (index, dest) in destinations.enumerate() {
            let Some(&hop) = self.hops.get(index) else {
                continue;
            };
            let route = match hop {
                Hop::Xdp(next) => {
                    // The raw socket, should it serve, goes the same way with the same MTU.
                    if next.source != dest.encap.source() {
                        dest.encap.set_source(next.source);
                    }
                    *dest.mtu = next.mtu as usize;
                    *dest.max_inner = dest.encap.max_inner_len(next.mtu);
                    match self.uplink(next.ifindex) {
                        Some(uplink) => Ok(Route {
                            uplink,
                            eth: next.eth,
                        }),
                        None => Err(SocketReason::BindFailed),
                    }
                }
                Hop::Socket(reason) => Err(reason),
            };
            if let Some(slot) = self.routes.get_mut(index) {
                *slot = route.ok();
            }
            if old.get(index) != Some(&hop) {
                self.report(index, hop, route.err());
            }
        }
    }

    /// Logs and shows the path of remote `index` after a change.
    fn report(&mut self, index: usize, hop: Hop, fallback: Option<SocketReason>) {
        if let (Some(gauges), Some(counted)) = (self.gauges.get(index), self.counted.get_mut(index))
        {
            let af_xdp = fallback.is_none();
            let was = counted.replace(af_xdp);
            if was != Some(af_xdp) {
                if let Some(was) = was {
                    gauges.way(was).dec();
                }
                gauges.way(af_xdp).inc();
            }
        }
        let label = self.labels.get(index).map_or("?", String::as_str);
        if !self.say {
            return;
        }
        match (hop, fallback) {
            (Hop::Xdp(next), None) => tracing::info!(
                remote = %label,
                "mirror: remote {label}: sending from AF_XDP on ifindex {}",
                next.ifindex
            ),
            (_, Some(reason)) => tracing::info!(
                remote = %label,
                "mirror: remote {label}: sending through the raw socket ({})",
                reason.label()
            ),
            (Hop::Socket(_), None) => {}
        }
    }

    /// The uplink on `ifindex`, opened on first use; `None` if the device refuses.
    fn uplink(&mut self, ifindex: u32) -> Option<usize> {
        if let Some(at) = self.uplinks.iter().position(|u| u.ifindex == ifindex) {
            return Some(at);
        }
        if self.refused.contains(&ifindex) {
            return None;
        }
        let opened = match &self.owner {
            Some(owner) => Uplink::open(owner.as_fd(), ifindex, self.queue),
            None => Uplink::register(&self.umem, ifindex).and_then(|uplink| {
                self.owner = Some(uplink.fd().try_clone_to_owned()?);
                Ok(uplink)
            }),
        };
        match opened {
            Ok(uplink) => {
                self.uplinks.push(uplink);
                Some(self.uplinks.len() - 1)
            }
            Err(err) => {
                tracing::warn!(
                    "mirror: ifindex {ifindex} refused an AF_XDP socket on queue {} ({err}); its remotes get the raw socket{}",
                    self.queue,
                    if self.queue > 0 {
                        " from this capture thread (the device has fewer queues than the agent has CPUs)"
                    } else {
                        ""
                    }
                );
                self.refused.push(ifindex);
                None
            }
        }
    }

    /// Whether remote `index` is served from AF_XDP now.
    pub fn serves(&self, index: usize) -> bool {
        matches!(self.routes.get(index), Some(Some(_)))
    }

    /// Whether remote `index`'s egress device is down; in practice up without a carrier (a
    /// device set down loses its routes), where the raw socket would queue the copies behind a
    /// neighbour entry that cannot resolve and report them sent.
    pub fn link_down(&self, index: usize) -> bool {
        matches!(
            self.hops.get(index),
            Some(Hop::Socket(SocketReason::LinkDown))
        )
    }

    /// Sends `inner` to remote `index`: in place when it lies at UMEM address `at` and
    /// `in_place`, else in a spare chunk. `false` when no chunk or ring slot was free (the
    /// caller sends it another way).
    ///
    /// # Safety
    /// With `at`, `inner` must be the bytes at `at` in the UMEM, in a chunk the caller owns;
    /// sent in place, the chunk passes to the kernel until [`XdpPath::reclaim`] gives it back.
    #[expect(clippy::too_many_arguments, reason = "one copy's whole description")]
    pub unsafe fn send(
        &mut self,
        index: usize,
        copy: usize,
        encap: &mut Encap,
        inner: &[u8],
        at: Option<u64>,
        (meta, hash): (&CopyMeta, u32),
        in_place: bool,
    ) -> bool {
        let Some(Some(route)) = self.routes.get(index).copied() else {
            return false;
        };
        let (frame_at, spare) = if let Some(at) = at.filter(|_| in_place) {
            (at, None)
        } else {
            if self.spares.is_empty() {
                self.collect_spares();
            }
            let Some(spare) = self.spares.pop() else {
                return false;
            };
            let frame_at = spare + SPARE_AT;
            // SAFETY: the spare chunk is ours, and `inner` lies in another chunk.
            let Some(to) = (unsafe { self.umem.bytes_mut(frame_at, inner.len()) }) else {
                self.spares.push(spare);
                return false;
            };
            to.copy_from_slice(inner);
            (frame_at, Some(spare))
        };
        // The headers go straight into the headroom, not through a buffer of their own.
        let header_len = encap.header_len();
        let front = (ETH_LEN + header_len) as u64;
        let start = frame_at.wrapping_sub(front);
        let written = frame_at >= front
            && Umem::chunk_of(start) == Umem::chunk_of(frame_at)
            // SAFETY: the bytes in front of the frame are in the caller's (or the spare) chunk
            // and no slice of them lives (the tag there has been read already).
            && unsafe { self.umem.bytes_mut(start, front as usize) }.is_some_and(|out| {
                let (eth, ip) = out.split_at_mut(ETH_LEN);
                eth.copy_from_slice(&route.eth);
                encap.write_header_hashed(inner, meta, hash, ip) == header_len
            });
        let len = front as usize + inner.len();
        let queued = written
            && len <= CHUNK_SIZE as usize
            && self
                .uplinks
                .get_mut(route.uplink)
                .is_some_and(|u| u.queue(start, len as u32));
        if !queued {
            if let Some(spare) = spare {
                self.spares.push(spare);
            }
            return false;
        }
        self.queued.push(Queued {
            uplink: route.uplink,
            destination: index,
            copy,
            bytes: (header_len + inner.len()) as u64,
            addr: start,
        });
        true
    }

    /// Sends what the round queued; returns the uplinks whose kick failed, one bit each (their
    /// packets of the round count as send errors). Packets a device dropped are in `dropped`.
    pub fn flush(&mut self) -> u64 {
        let mut failed = 0;
        self.dropped.clear();
        for (at, uplink) in self.uplinks.iter_mut().enumerate() {
            if !self.queued.iter().any(|q| q.uplink == at) {
                continue;
            }
            self.scratch.clear();
            if uplink.kick(&mut self.scratch).is_err() {
                failed |= 1_u64.checked_shl(at as u32).unwrap_or(0);
            }
            self.dropped
                .extend(self.scratch.iter().map(|&addr| (at, addr)));
        }
        failed
    }

    /// Whether the device dropped `queued` in the last flush.
    pub fn was_dropped(&self, queued: &Queued) -> bool {
        !self.dropped.is_empty()
            && self
                .dropped
                .iter()
                .any(|&(uplink, addr)| uplink == queued.uplink && addr == queued.addr)
    }

    /// Chunks the kernel is done with: spares are kept back, the rest go to `out` (for the
    /// fill ring), as chunk addresses.
    pub fn reclaim(&mut self, out: &mut Vec<u64>) {
        self.collect_spares();
        while self.spares.len() > self.spare_target
            && let Some(addr) = self.spares.pop()
        {
            out.push(addr);
        }
    }

    /// A spare chunk with `parts` written into it one after the other, the second part where
    /// [`XdpPath::send`] can send it in place (the first is a tag the headers go over): the
    /// UMEM address of the first byte and the bytes, writable, until the chunk is sent in
    /// place or given back with [`XdpPath::give_spares`]. `None` if no spare is free or the
    /// frame would not fit.
    pub fn write_spare(&mut self, parts: &[&[u8]]) -> Option<(u64, &mut [u8])> {
        let tag = parts.first()?.len() as u64;
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if tag > SPARE_AT || SPARE_AT - tag + len as u64 > u64::from(CHUNK_SIZE) {
            return None;
        }
        if self.spares.is_empty() {
            self.collect_spares();
        }
        let spare = self.spares.pop()?;
        let at = spare + SPARE_AT - tag;
        // SAFETY: the spare chunk is ours until it is queued or given back, and no slice of
        // it lives.
        let Some(out) = (unsafe { self.umem.bytes_mut(at, len) }) else {
            self.spares.push(spare);
            return None;
        };
        let mut rest = &mut *out;
        for part in parts {
            let (head, tail) = rest.split_at_mut(part.len());
            head.copy_from_slice(part);
            rest = tail;
        }
        Some((at, out))
    }

    /// Takes back chunks [`XdpPath::write_spare`] lent that did not leave in place.
    pub fn give_spares(&mut self, chunks: &mut Vec<u64>) {
        self.spares.extend(chunks.drain(..).map(Umem::chunk_of));
    }

    /// Takes every chunk the uplinks are done with as a spare.
    fn collect_spares(&mut self) {
        let first = self.spares.len();
        for uplink in &mut self.uplinks {
            uplink.completed(&mut self.spares);
        }
        for addr in self.spares.iter_mut().skip(first) {
            *addr = Umem::chunk_of(*addr);
        }
    }
}

/// A sender that stops no longer counts in the path gauges.
impl Drop for XdpPath {
    fn drop(&mut self) {
        for (gauges, af_xdp) in self.gauges.iter().zip(&self.counted) {
            if let Some(af_xdp) = af_xdp {
                gauges.way(*af_xdp).dec();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::transmit::next_hop::NextHop;

    fn path(gauges: &PathGauges) -> XdpPath {
        let umem = Arc::new(Umem::new(4).expect("a small UMEM"));
        let gauges = vec![PathGauges {
            af_xdp: gauges.af_xdp.clone(),
            socket: gauges.socket.clone(),
        }];
        let table = Arc::new(NextHopTable::default());
        let mut path = XdpPath::new(umem, None, table, Vec::new(), gauges, vec!["r".into()]);
        path.say = false;
        path
    }

    fn values(gauges: &PathGauges) -> [i64; 2] {
        [gauges.af_xdp.get(), gauges.socket.get()]
    }

    #[test]
    fn every_sender_counts_once_on_its_way() {
        let gauges = PathGauges {
            af_xdp: IntGauge::new("af_xdp", "test").unwrap(),
            socket: IntGauge::new("socket", "test").unwrap(),
        };
        let xdp = Hop::Xdp(NextHop {
            ifindex: 7,
            eth: [0; ETH_LEN],
            source: IpAddr::V4(Ipv4Addr::LOCALHOST),
            mtu: 1500,
        });
        let down = Hop::Socket(SocketReason::LinkDown);
        let (mut first, mut second) = (path(&gauges), path(&gauges));
        first.report(0, xdp, None);
        second.report(0, xdp, None);
        assert_eq!(values(&gauges), [2, 0]);
        // The second thread's queue refused: it alone moves to the socket.
        second.report(0, xdp, Some(SocketReason::BindFailed));
        assert_eq!(values(&gauges), [1, 1]);
        // Another reason on the same way changes nothing.
        second.report(0, down, Some(SocketReason::LinkDown));
        assert_eq!(values(&gauges), [1, 1]);
        first.report(0, down, Some(SocketReason::LinkDown));
        assert_eq!(values(&gauges), [0, 2]);
        drop(second);
        assert_eq!(values(&gauges), [0, 1]);
        drop(first);
        assert_eq!(values(&gauges), [0, 0]);
    }
    #[test]
    fn spares_take_frames_where_they_leave_in_place() {
        let gauges = PathGauges {
            af_xdp: IntGauge::new("af_xdp", "test").unwrap(),
            socket: IntGauge::new("socket", "test").unwrap(),
        };
        let mut path = path(&gauges);
        path.spares = vec![0, 4096];
        let tag = [7_u8; 16];
        let frame = [9_u8; 100];
        let (at, bytes) = path
            .write_spare(&[&tag, &frame[..40], &frame[40..]])
            .unwrap();
        assert_eq!(bytes.len(), 116);
        // The frame where the headers fit in front of it, in the same chunk; the tag before it.
        assert_eq!((at, Umem::chunk_of(at)), (4096 + SPARE_AT - 16, 4096));
        // SAFETY: test UMEM, the slice above is gone.
        let written = unsafe { path.umem.bytes(at, 116) }.unwrap();
        assert_eq!((&written[..16], &written[16..]), (&tag[..], &frame[..]));
        // Too long for a chunk behind the headroom: no spare taken.
        let long = vec![0_u8; CHUNK_SIZE as usize];
        assert!(path.write_spare(&[&tag, &long]).is_none());
        assert_eq!(path.spares, [0]);
        assert!(path.write_spare(&[&tag, &frame]).is_some());
        assert!(path.write_spare(&[&tag, &frame]).is_none(), "no spare left");
        // Given back by any address in them, they are spares again.
        path.give_spares(&mut vec![at, SPARE_AT - 16]);
        assert_eq!(path.spares, [4096, 0]);
    }
}
