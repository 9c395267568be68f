//! The NetFlow v5 flow cache: per-flow packet and byte counters, and the rules that end a flow
//! and turn it into a record.
//!
//! A flow ends (and its record goes to the caller) when:
//!
//! - it has seen no packet for the inactive timeout (default 15 s);
//! - it has lasted the active timeout (default 60 s) since its first packet: a long flow is
//!   reported in pieces, as routers do;
//! - a packet carries TCP FIN or RST: the record goes out right after that packet;
//! - the cache is full and a new flow arrives: the flow whose expiry is due soonest (the least
//!   recently seen, unless an older flow's active timeout comes first) is exported early
//!   ("emergency expiry", counted);
//! - adding a packet would wrap the record's 32-bit packet or byte counter: the flow is exported
//!   and starts again with that packet (at 10 Gbit/s one flow can pass 4 GiB well within the
//!   active timeout).
//!
//! Time is the caller's: `now_ms` is the exporter's uptime in milliseconds (the v5 `sysUptime`
//! clock), taken from the capture timestamps, so a pcap replay expires flows at the pace the file
//! was recorded, not at the pace it is read. It should not go backwards; if it does, nothing
//! breaks: a flow keeps the time of its first packet and the latest time it has seen. Records
//! carry the uptime modulo 2^32 ms, as the 32-bit v5 fields do.
//!
//! # How it is fast
//!
//! Flows live in an open-addressing hash table with linear probing, one 64-byte cache line per
//! slot holding the key, its hash and the counters, at most half full. The hash is foldhash,
//! seeded per process, so traffic cannot be crafted to collide. A packet of a known flow costs
//! one hash, usually one cache line, and a few stores; [`FlowCache::observe_batch`] hashes a
//! batch of packets first and prefetches their slots, so the memory latency of a large working
//! set overlaps instead of adding up. Removal shifts the following slots back (no tombstones),
//! so the table never needs rehashing.
//!
//! Expiry uses a min-heap of `(due time, key)` with lazy deletion: each flow has one live heap
//! entry, pushed when the flow starts and moved only when that entry comes due and the flow
//! turns out to have been refreshed meanwhile; so the heap is touched a few times per flow,
//! never per packet. Entries of flows that ended another way (FIN, RST, emergency) stay in the
//! heap, recognised as stale when popped, and are swept out when the heap reaches 1.5 times the
//! cache size. Table and heap are allocated at construction and never grow: after that nothing
//! allocates.
//!
//! # Memory
//!
//! [`SLOT_BYTES`] (64) per slot, with a power-of-two number of slots at least twice
//! `max_flows`, and [`HEAP_ENTRY_BYTES`] (32) per heap entry for 1.5 times `max_flows`. For the
//! default 65 536 flows: 131 072 slots (8 MiB) and a 3 MiB heap, 11 MiB in all, 176 bytes per
//! flow; [`FlowCache::memory_bytes`] reports it.

use core::{
    cmp::Reverse,
    fmt,
    hash::{BuildHasher, Hash},
    time::Duration,
};
use std::collections::BinaryHeap;

use foldhash::fast::RandomState;

use super::key::{FlowKey, Observation, TCP_FIN, TCP_RST};
use crate::wire::netflow_v5::RecordRepr;

/// Most flows a cache may be configured for (16 Mi, a 2 GiB table).
pub const MAX_FLOWS_LIMIT: usize = 1 << 24;

/// Packets [`FlowCache::observe_batch`] fetches from memory together.
const PREFETCH_BATCH: usize = 16;

/// Limits and timeouts of a [`FlowCache`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// A flow without packets for this long is exported. Default 15 s.
    pub inactive_timeout: Duration,
    /// A flow this long since its first packet is exported, and a new one started. Default 60 s.
    pub active_timeout: Duration,
    /// Most flows held at once. Default 65 536.
    pub max_flows: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            inactive_timeout: Duration::from_secs(15),
            active_timeout: Duration::from_mins(1),
            max_flows: 65_536,
        }
    }
}

/// Why a [`CacheConfig`] was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("the flow cache must hold at least one flow")]
    NoFlows,
    #[error("the flow cache holds at most {MAX_FLOWS_LIMIT} flows, not {0}")]
    TooManyFlows(usize),
    #[error("NetFlow timeouts must be between 1 ms and 49 days, not {0:?}")]
    Timeout(Duration),
}

/// What ended a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExpiryReason {
    Inactive,
    Active,
    /// A packet carried TCP FIN or RST.
    TcpEnd,
    /// The cache was full when a new flow arrived.
    Emergency,
    /// The next packet would have wrapped the 32-bit packet or byte counter.
    CounterFull,
    /// [`FlowCache::flush_all`].
    Flushed,
}

impl fmt::Display for ExpiryReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExpiryReason::Inactive => "inactive",
            ExpiryReason::Active => "active",
            ExpiryReason::TcpEnd => "tcp_end",
            ExpiryReason::Emergency => "emergency",
            ExpiryReason::CounterFull => "counter_full",
            ExpiryReason::Flushed => "flushed",
        })
    }
}

/// What a cache has seen and done since it was made. Plain counters for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheCounters {
    /// Packets counted into flows.
    pub packets: u64,
    /// Layer-3 bytes counted into flows.
    pub octets: u64,
    /// Flows started (a flow restarted after an active timeout or a full counter is a new one).
    pub flows: u64,
    pub expired_inactive: u64,
    pub expired_active: u64,
    /// Ended by TCP FIN or RST.
    pub expired_tcp_end: u64,
    /// Exported early because the cache was full.
    pub expired_emergency: u64,
    /// Exported because a counter would have wrapped.
    pub expired_counter_full: u64,
    /// Exported by [`FlowCache::flush_all`].
    pub flushed: u64,
}

impl CacheCounters {
    /// Records handed out so far, whatever the reason.
    pub const fn records(&self) -> u64 {
        self.expired_inactive
            + self.expired_active
            + self.expired_tcp_end
            + self.expired_emergency
            + self.expired_counter_full
            + self.flushed
    }

    fn count(&mut self, reason: ExpiryReason) {
        let counter = match reason {
            ExpiryReason::Inactive => &mut self.expired_inactive,
            ExpiryReason::Active => &mut self.expired_active,
            ExpiryReason::TcpEnd => &mut self.expired_tcp_end,
            ExpiryReason::Emergency => &mut self.expired_emergency,
            ExpiryReason::CounterFull => &mut self.expired_counter_full,
            ExpiryReason::Flushed => &mut self.flushed,
        };
        *counter += 1;
    }
}

/// One flow's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Entry {
    /// Uptime (ms) of the first packet.
    first: u64,
    /// Uptime (ms) of the latest packet.
    last: u64,
    /// Packets so far; 0 marks an empty table slot.
    packets: u32,
    octets: u32,
    /// When this flow's live heap entry is due, as an offset from `first`: it is at most the
    /// active timeout, which [`CacheConfig`] keeps below 2^32 ms.
    scheduled: u32,
    tcp_flags: u8,
}

impl Entry {
    fn start(octets: u32, tcp_flags: u8, now: u64) -> Entry {
        Entry {
            first: now,
            last: now,
            packets: 1,
            octets,
            scheduled: 0,
            tcp_flags,
        }
    }

    /// When this flow expires by itself, absent further packets.
    #[inline]
    fn due(&self, timeouts: Timeouts) -> u64 {
        self.last
            .saturating_add(timeouts.inactive)
            .min(self.first.saturating_add(timeouts.active))
    }

    /// When its live heap entry is due.
    fn scheduled(&self) -> u64 {
        self.first.saturating_add(u64::from(self.scheduled))
    }

    /// Note that its live heap entry is due at `due`, which lies within the active timeout
    /// after `first`.
    fn set_scheduled(&mut self, due: u64) {
        self.scheduled = due
            .saturating_sub(self.first)
            .try_into()
            .unwrap_or(u32::MAX);
    }

    /// The reason for expiring this flow at `now`, given it is due.
    fn reason(&self, now: u64, timeouts: Timeouts) -> ExpiryReason {
        if now >= self.first.saturating_add(timeouts.active) {
            ExpiryReason::Active
        } else {
            ExpiryReason::Inactive
        }
    }

    fn record<K>(&self, key: K, reason: ExpiryReason) -> FlowRecord<K> {
        FlowRecord {
            key,
            packets: self.packets,
            octets: self.octets,
            first_ms: self.first,
            last_ms: self.last,
            tcp_flags: self.tcp_flags,
            reason,
        }
    }
}

/// What a cache key must offer: hashing, ordering for the expiry heap, and a value for empty
/// table slots (never compared: an empty slot is marked by its packet count).
pub trait CacheKey: Copy + Eq + Hash + Ord + fmt::Debug {
    const EMPTY: Self;
}

impl CacheKey for FlowKey {
    const EMPTY: FlowKey = FlowKey {
        src: core::net::Ipv4Addr::UNSPECIFIED,
        dst: core::net::Ipv4Addr::UNSPECIFIED,
        proto: 0,
        src_port: 0,
        dst_port: 0,
        tos: 0,
        input: 0,
        output: 0,
    };
}

/// One ended flow, as the cache hands it out: the exporters turn it into a v5 or IPFIX record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowRecord<K> {
    pub key: K,
    pub packets: u32,
    /// Layer-3 bytes.
    pub octets: u32,
    /// Uptime (ms) of the first and the latest packet.
    pub first_ms: u64,
    pub last_ms: u64,
    /// OR of the TCP flags of every packet.
    pub tcp_flags: u8,
    pub reason: ExpiryReason,
}

impl FlowRecord<FlowKey> {
    /// The NetFlow v5 record of an IPv4 flow.
    pub fn v5(&self) -> RecordRepr {
        let key = &self.key;
        RecordRepr {
            src_addr: key.src,
            dst_addr: key.dst,
            input: key.input,
            output: key.output,
            packets: self.packets,
            octets: self.octets,
            // sysUptime is a 32-bit millisecond clock: it wraps every 49.7 days.
            first: self.first_ms as u32,
            last: self.last_ms as u32,
            src_port: key.src_port,
            dst_port: key.dst_port,
            tcp_flags: self.tcp_flags,
            protocol: key.proto,
            tos: key.tos,
            ..RecordRepr::default()
        }
    }
}

/// One table slot: a whole cache line, so a lookup that hits its home slot reads one line.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Slot<K> {
    entry: Entry,
    hash: u64,
    key: K,
}

/// Bytes of one table slot.
pub const SLOT_BYTES: usize = size_of::<Slot<FlowKey>>();

/// One heap entry: when a flow must be looked at, and which flow.
type Due<K> = Reverse<(u64, K)>;

/// Bytes of one heap entry.
pub const HEAP_ENTRY_BYTES: usize = size_of::<Due<FlowKey>>();

/// Open addressing with linear probing over a power-of-two array of slots, kept at most half
/// full by its user, with backward-shift deletion.
struct Table<K> {
    slots: Box<[Slot<K>]>,
    mask: usize,
    len: usize,
    hasher: RandomState,
}

impl<K: CacheKey> Table<K> {
    /// A table of `slots` empty slots; `slots` must be a power of two.
    fn new(slots: usize) -> Table<K> {
        let empty = Slot {
            entry: Entry::default(),
            hash: 0,
            key: K::EMPTY,
        };
        Table {
            slots: vec![empty; slots].into_boxed_slice(),
            mask: slots - 1,
            len: 0,
            hasher: RandomState::default(),
        }
    }

    #[inline]
    fn hash(&self, key: &K) -> u64 {
        self.hasher.hash_one(key)
    }

    #[inline]
    fn home(&self, hash: u64) -> usize {
        hash as usize & self.mask
    }

    /// Start loading the home slot of `hash` into the CPU cache.
    #[inline]
    fn prefetch(&self, hash: u64) {
        if let Some(slot) = self.slots.get(self.home(hash)) {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: prefetching is a hint that cannot fault or change memory, and the pointer
            // is to a slot of the table.
            unsafe {
                use core::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
                _mm_prefetch::<_MM_HINT_T0>(core::ptr::from_ref(slot).cast::<i8>());
            }
            #[cfg(not(target_arch = "x86_64"))]
            // A plain load has the same effect, at the cost of holding up retirement.
            core::hint::black_box(slot.entry.packets);
        }
    }

    /// The index of the slot holding `key`.
    #[inline]
    fn find(&self, hash: u64, key: &K) -> Option<usize> {
        let mut index = self.home(hash);
        // The table always has an empty slot, which ends the probe; the bound is for form.
        for _ in 0..=self.mask {
            let slot = self.slots.get(index)?;
            if slot.entry.packets == 0 {
                return None;
            }
            if slot.hash == hash && slot.key == *key {
                return Some(index);
            }
            index = (index + 1) & self.mask;
        }
        None
    }

    #[inline]
    fn get_mut(&mut self, index: usize) -> Option<&mut Slot<K>> {
        self.slots.get_mut(index)
    }

    /// Put a flow that is not in the table into it. The caller keeps the table at most half
    /// full, so there is an empty slot.
    fn insert(&mut self, hash: u64, key: K, entry: Entry) {
        let mut index = self.home(hash);
        for _ in 0..=self.mask {
            let Some(slot) = self.slots.get_mut(index) else {
                return;
            };
            if slot.entry.packets == 0 {
                *slot = Slot { entry, hash, key };
                self.len += 1;
                return;
            }
            index = (index + 1) & self.mask;
        }
    }

    /// Empty the slot at `hole`, moving later slots of the same probe run back so every flow
    /// stays reachable from its home slot without tombstones.
    fn remove(&mut self, mut hole: usize) {
        let mask = self.mask;
        let mut next = (hole + 1) & mask;
        while let Some(&slot) = self.slots.get(next) {
            if slot.entry.packets == 0 {
                break;
            }
            // The slot may move back into the hole unless its home lies in (hole, next].
            let home = self.home(slot.hash);
            let stays = if hole < next {
                hole < home && home <= next
            } else {
                hole < home || home <= next
            };
            if !stays {
                if let Some(target) = self.slots.get_mut(hole) {
                    *target = slot;
                }
                hole = next;
            }
            next = (next + 1) & mask;
        }
        if let Some(slot) = self.slots.get_mut(hole) {
            slot.entry.packets = 0;
        }
        self.len -= 1;
    }

    /// Hand every flow to `f` and empty the table.
    fn drain(&mut self, mut f: impl FnMut(&K, &Entry)) {
        for slot in &mut self.slots {
            if slot.entry.packets != 0 {
                f(&slot.key, &slot.entry);
                slot.entry.packets = 0;
            }
        }
        self.len = 0;
    }
}

#[derive(Debug, Clone, Copy)]
struct Timeouts {
    inactive: u64,
    active: u64,
}

/// The flow cache. See the module documentation for the rules and the cost.
pub struct FlowCache<K = FlowKey> {
    table: Table<K>,
    /// Min-heap of when to look at which flow; see [`Entry::scheduled`].
    heap: BinaryHeap<Due<K>>,
    /// The heap is compacted rather than grown past this.
    heap_limit: usize,
    max_flows: usize,
    timeouts: Timeouts,
    counters: CacheCounters,
}

impl<K> fmt::Debug for FlowCache<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlowCache")
            .field("flows", &self.table.len)
            .field("max_flows", &self.max_flows)
            .field("heap", &self.heap.len())
            .field("timeouts", &self.timeouts)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl<K: CacheKey> FlowCache<K> {
    /// Make an empty cache, allocating all it will ever need.
    pub fn new(config: CacheConfig) -> Result<FlowCache<K>, ConfigError> {
        let max_flows = config.max_flows;
        if max_flows == 0 {
            return Err(ConfigError::NoFlows);
        }
        if max_flows > MAX_FLOWS_LIMIT {
            return Err(ConfigError::TooManyFlows(max_flows));
        }
        let millis = |timeout: Duration| match u32::try_from(timeout.as_millis()) {
            Ok(ms) if ms > 0 => Ok(u64::from(ms)),
            _ => Err(ConfigError::Timeout(timeout)),
        };
        let timeouts = Timeouts {
            inactive: millis(config.inactive_timeout)?,
            active: millis(config.active_timeout)?,
        };
        let heap_limit = max_flows + max_flows / 2 + 1;
        Ok(FlowCache {
            table: Table::new((2 * max_flows).next_power_of_two()),
            heap: BinaryHeap::with_capacity(heap_limit),
            heap_limit,
            max_flows,
            timeouts,
            counters: CacheCounters::default(),
        })
    }

    /// Count one packet of `key` seen at `now_ms`: `octets` layer-3 bytes, its TCP flags (0 if
    /// not TCP). Records of flows this packet ends go to `out` right away: the flow itself on
    /// FIN or RST, its previous incarnation if it had timed out or a counter is full, the flow
    /// evicted to make room for it.
    #[inline]
    pub fn update(
        &mut self,
        key: K,
        octets: u32,
        tcp_flags: u8,
        now_ms: u64,
        out: &mut impl FnMut(FlowRecord<K>),
    ) {
        let hash = self.table.hash(&key);
        self.update_hashed(hash, key, octets, tcp_flags, now_ms, out);
    }

    /// [`FlowCache::update`] with what [`classify`](super::key::classify) found.
    #[inline]
    pub fn observe(
        &mut self,
        observation: &Observation<K>,
        now_ms: u64,
        out: &mut impl FnMut(FlowRecord<K>),
    ) {
        self.update(
            observation.key,
            observation.octets,
            observation.tcp_flags,
            now_ms,
            out,
        );
    }

    /// [`FlowCache::observe`] for each packet of a batch in turn, all seen at `now_ms`; the
    /// same results, faster: the flows of several packets are fetched from memory together.
    pub fn observe_batch(
        &mut self,
        batch: &[Observation<K>],
        now_ms: u64,
        out: &mut impl FnMut(FlowRecord<K>),
    ) {
        let mut hashes = [0_u64; PREFETCH_BATCH];
        for chunk in batch.chunks(PREFETCH_BATCH) {
            for (hash, observation) in hashes.iter_mut().zip(chunk) {
                *hash = self.table.hash(&observation.key);
                self.table.prefetch(*hash);
            }
            for (&hash, observation) in hashes.iter().zip(chunk) {
                self.update_hashed(
                    hash,
                    observation.key,
                    observation.octets,
                    observation.tcp_flags,
                    now_ms,
                    out,
                );
            }
        }
    }

    #[inline]
    fn update_hashed(
        &mut self,
        hash: u64,
        key: K,
        octets: u32,
        tcp_flags: u8,
        now_ms: u64,
        out: &mut impl FnMut(FlowRecord<K>),
    ) {
        self.counters.packets += 1;
        self.counters.octets += u64::from(octets);
        let ends = tcp_flags & (TCP_FIN | TCP_RST) != 0;
        let timeouts = self.timeouts;

        if let Some(index) = self.table.find(hash, &key) {
            let Some(Slot { entry, .. }) = self.table.get_mut(index) else {
                return;
            };
            let restart = if now_ms >= entry.due(timeouts) {
                // Timed out, and expire() has not run since: export it, start over.
                Some(entry.reason(now_ms, timeouts))
            } else if entry.packets == u32::MAX || entry.octets.checked_add(octets).is_none() {
                Some(ExpiryReason::CounterFull)
            } else {
                None
            };
            if let Some(reason) = restart {
                out(entry.record(key, reason));
                self.counters.count(reason);
                self.counters.flows += 1;
                *entry = Entry::start(octets, tcp_flags, now_ms);
            } else {
                entry.packets += 1;
                entry.octets += octets;
                // `first` stays: the heap entry's due time is kept relative to it.
                entry.last = entry.last.max(now_ms);
                entry.tcp_flags |= tcp_flags;
            }
            if ends {
                let record = entry.record(key, ExpiryReason::TcpEnd);
                self.table.remove(index);
                self.counters.count(ExpiryReason::TcpEnd);
                out(record);
            } else if restart.is_some() {
                // The old heap entry no longer matches `scheduled`: it is stale now.
                let due = entry.due(timeouts);
                entry.set_scheduled(due);
                self.schedule(due, key);
            }
            return;
        }

        self.counters.flows += 1;
        let mut entry = Entry::start(octets, tcp_flags, now_ms);
        if ends {
            // A flow of one packet that ends it (a lone RST, say): no need to store it.
            self.counters.count(ExpiryReason::TcpEnd);
            out(entry.record(key, ExpiryReason::TcpEnd));
            return;
        }
        if self.table.len >= self.max_flows {
            self.evict_oldest(out);
        }
        let due = entry.due(timeouts);
        entry.set_scheduled(due);
        self.table.insert(hash, key, entry);
        self.schedule(due, key);
    }

    /// Export every flow whose inactive or active timeout has passed at `now_ms`. Costs a heap
    /// pop per flow due, not a scan: call it as often as convenient (every second, or after
    /// every batch of packets).
    pub fn expire(&mut self, now_ms: u64, out: &mut impl FnMut(FlowRecord<K>)) {
        while let Some(&Reverse((due, key))) = self.heap.peek() {
            if due > now_ms {
                break;
            }
            self.heap.pop();
            let Some((index, entry)) = self.live(due, &key) else {
                continue;
            };
            let real_due = entry.due(self.timeouts);
            if real_due > now_ms {
                // Packets arrived since it was scheduled: look again when it can expire.
                self.reschedule(index, real_due, key);
                continue;
            }
            self.table.remove(index);
            let reason = entry.reason(now_ms, self.timeouts);
            self.counters.count(reason);
            out(entry.record(key, reason));
        }
    }

    /// Export every flow, whatever its age: at shutdown, or at the end of a replay.
    pub fn flush_all(&mut self, out: &mut impl FnMut(FlowRecord<K>)) {
        self.heap.clear();
        let counters = &mut self.counters;
        self.table.drain(|key, entry| {
            counters.flushed += 1;
            out(entry.record(*key, ExpiryReason::Flushed));
        });
    }

    /// Flows held now.
    pub fn len(&self) -> usize {
        self.table.len
    }

    /// Whether no flow is held.
    pub fn is_empty(&self) -> bool {
        self.table.len == 0
    }

    /// Most flows held at once.
    pub fn max_flows(&self) -> usize {
        self.max_flows
    }

    /// What the cache has counted so far.
    pub fn counters(&self) -> &CacheCounters {
        &self.counters
    }

    /// Bytes the cache has allocated: table slots and heap capacity. Fixed from construction on,
    /// whatever the traffic.
    pub fn memory_bytes(&self) -> usize {
        self.table.slots.len() * size_of::<Slot<K>>() + self.heap.capacity() * size_of::<Due<K>>()
    }

    /// The flow a heap entry due at `due` is about, if that entry is its live one.
    fn live(&self, due: u64, key: &K) -> Option<(usize, Entry)> {
        let index = self.table.find(self.table.hash(key), key)?;
        let entry = self.table.slots.get(index)?.entry;
        // Otherwise the flow ended another way, or this is a later flow with the same key.
        (entry.scheduled() == due).then_some((index, entry))
    }

    fn reschedule(&mut self, index: usize, due: u64, key: K) {
        if let Some(slot) = self.table.get_mut(index) {
            slot.entry.set_scheduled(due);
        }
        self.schedule(due, key);
    }

    /// Put `key` in the heap at `due`, first sweeping out stale entries if the heap is at its
    /// limit, so it never reallocates.
    fn schedule(&mut self, due: u64, key: K) {
        if self.heap.len() >= self.heap_limit {
            let table = &self.table;
            self.heap.retain(|Reverse((due, key))| {
                table
                    .find(table.hash(key), key)
                    .and_then(|index| table.slots.get(index))
                    .is_some_and(|slot| slot.entry.scheduled() == *due)
            });
        }
        self.heap.push(Reverse((due, key)));
    }

    /// Make room for one flow: export the one whose expiry is due soonest.
    ///
    /// Every live flow's heap entry is due no later than the flow itself (packets only push a
    /// flow's expiry later), so the first live entry popped whose flow is really due then is the
    /// flow due soonest of all. Entries whose flow was refreshed are moved to their real time on
    /// the way, at most once each.
    fn evict_oldest(&mut self, out: &mut impl FnMut(FlowRecord<K>)) {
        while let Some(Reverse((due, key))) = self.heap.pop() {
            let Some((index, entry)) = self.live(due, &key) else {
                continue;
            };
            let real_due = entry.due(self.timeouts);
            if real_due > due {
                self.reschedule(index, real_due, key);
                continue;
            }
            self.table.remove(index);
            self.counters.count(ExpiryReason::Emergency);
            out(entry.record(key, ExpiryReason::Emergency));
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use core::net::Ipv4Addr;

    use super::*;

    const SECOND: u64 = 1000;

    fn key(n: u32) -> FlowKey {
        FlowKey {
            src: Ipv4Addr::from_bits(0x0a00_0000 | n),
            dst: Ipv4Addr::new(192, 168, 0, 1),
            proto: 6,
            src_port: 40000,
            dst_port: 443,
            tos: 0,
            input: 3,
            output: 0,
        }
    }

    fn cache(max_flows: usize) -> FlowCache<FlowKey> {
        FlowCache::new(CacheConfig {
            max_flows,
            ..CacheConfig::default()
        })
        .unwrap()
    }

    /// Runs `f` with a sink and returns what reached it.
    fn collect(f: impl FnOnce(&mut dyn FnMut(RecordRepr))) -> Vec<RecordRepr> {
        let mut records = Vec::new();
        f(&mut |r| records.push(r));
        records
    }

    fn update(c: &mut FlowCache, n: u32, octets: u32, flags: u8, now: u64) -> Vec<RecordRepr> {
        collect(|out| c.update(key(n), octets, flags, now, &mut |r| out(r.v5())))
    }

    fn expire(c: &mut FlowCache, now: u64) -> Vec<RecordRepr> {
        collect(|out| c.expire(now, &mut |r| out(r.v5())))
    }

    #[test]
    fn counts_packets_bytes_times_and_flags() {
        let mut c = cache(16);
        assert!(update(&mut c, 1, 60, 0x02, 1_000).is_empty());
        assert!(update(&mut c, 1, 1500, 0x10, 1_500).is_empty());
        assert!(update(&mut c, 1, 52, 0x18, 2_250).is_empty());
        assert_eq!(c.len(), 1);
        let records = collect(|out| c.flush_all(&mut |r| out(r.v5())));
        let expected = RecordRepr {
            src_addr: key(1).src,
            dst_addr: key(1).dst,
            input: 3,
            packets: 3,
            octets: 1612,
            first: 1_000,
            last: 2_250,
            src_port: 40000,
            dst_port: 443,
            tcp_flags: 0x1a,
            protocol: 6,
            ..RecordRepr::default()
        };
        assert_eq!(records, [expected]);
        assert!(c.is_empty());
        let counters = c.counters();
        assert_eq!(
            (counters.packets, counters.octets, counters.flows),
            (3, 1612, 1)
        );
        assert_eq!((counters.flushed, counters.records()), (1, 1));
    }

    #[test]
    fn inactive_timeout() {
        let mut c = cache(16);
        update(&mut c, 1, 100, 0, 0);
        update(&mut c, 2, 100, 0, 0);
        update(&mut c, 2, 100, 0, 10 * SECOND);
        assert!(expire(&mut c, 15 * SECOND - 1).is_empty());
        // Flow 1 has been idle 15 s; flow 2 only 5 s.
        let records = expire(&mut c, 15 * SECOND);
        assert_eq!(records.len(), 1);
        assert_eq!((records[0].src_addr, records[0].packets), (key(1).src, 1));
        assert!(expire(&mut c, 25 * SECOND - 1).is_empty());
        let records = expire(&mut c, 25 * SECOND);
        assert_eq!((records[0].src_addr, records[0].packets), (key(2).src, 2));
        assert_eq!(c.counters().expired_inactive, 2);
        assert!(c.is_empty());
    }

    #[test]
    fn active_timeout_splits_a_long_flow() {
        let mut c = cache(16);
        // A packet every 10 s: never idle 15 s, so only the active timeout ends it.
        for t in (0..=120).step_by(10) {
            update(&mut c, 1, 100, 0, t * SECOND);
            if t == 50 {
                assert!(expire(&mut c, t * SECOND + 9_999).is_empty());
            }
        }
        // The packet at 60 s found the flow past its active timeout and restarted it, without
        // waiting for expire(); the one at 120 s did the same.
        assert_eq!(c.counters().expired_active, 2);
        let records = expire(&mut c, 135 * SECOND);
        assert_eq!(records.len(), 1);
        assert_eq!(c.counters().expired_inactive, 1);
        assert_eq!((records[0].first, records[0].last), (120_000, 120_000));

        // And by expire() alone: first at 0, a packet every 10 s, expired at 60 s sharp.
        let mut c = cache(16);
        for t in (0..60).step_by(10) {
            update(&mut c, 1, 100, 0, t * SECOND);
        }
        assert!(expire(&mut c, 60 * SECOND - 1).is_empty());
        let records = expire(&mut c, 60 * SECOND);
        assert_eq!(records.len(), 1);
        assert_eq!(
            (records[0].packets, records[0].first, records[0].last),
            (6, 0, 50_000)
        );
        assert_eq!(c.counters().expired_active, 1);
    }

    #[test]
    fn fin_ends_the_flow_with_that_packet() {
        let mut c = cache(16);
        assert!(update(&mut c, 1, 60, 0x02, 0).is_empty());
        assert!(update(&mut c, 1, 52, 0x10, 5).is_empty());
        let records = update(&mut c, 1, 52, 0x11, 9);
        assert_eq!(records.len(), 1);
        assert_eq!(
            (records[0].packets, records[0].octets, records[0].tcp_flags),
            (3, 164, 0x13)
        );
        assert_eq!(records[0].last, 9);
        assert!(c.is_empty());
        assert_eq!(c.counters().expired_tcp_end, 1);
        // Its heap entry is stale: expire() later finds nothing.
        assert!(expire(&mut c, 100 * SECOND).is_empty());
        // The final ACK after FIN is a flow of its own.
        assert!(update(&mut c, 1, 52, 0x10, 10).is_empty());
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn rst_ends_the_flow_and_a_lone_rst_is_a_record() {
        let mut c = cache(16);
        update(&mut c, 1, 60, 0x02, 0);
        let records = update(&mut c, 1, 40, 0x04, 1);
        assert_eq!((records[0].packets, records[0].tcp_flags), (2, 0x06));
        let records = update(&mut c, 2, 40, 0x14, 2);
        assert_eq!((records[0].packets, records[0].tcp_flags), (1, 0x14));
        assert!(c.is_empty());
        assert_eq!(c.counters().expired_tcp_end, 2);
        assert_eq!(c.counters().flows, 2);
    }

    #[test]
    fn full_cache_evicts_oldest_first() {
        let mut c = cache(4);
        for n in 0..4 {
            update(&mut c, n, 100, 0, u64::from(n) * SECOND);
        }
        // Refresh flow 0: flow 1 is now the least recently seen.
        update(&mut c, 0, 100, 0, 5 * SECOND);
        let records = update(&mut c, 10, 100, 0, 6 * SECOND);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].src_addr, key(1).src);
        assert_eq!(c.len(), 4);
        let records = update(&mut c, 11, 100, 0, 7 * SECOND);
        assert_eq!(records[0].src_addr, key(2).src);
        let records = update(&mut c, 12, 100, 0, 8 * SECOND);
        assert_eq!(records[0].src_addr, key(3).src);
        let records = update(&mut c, 13, 100, 0, 9 * SECOND);
        assert_eq!(records[0].src_addr, key(0).src);
        assert_eq!(c.counters().expired_emergency, 4);
        // Known flows still update without evicting anything.
        assert!(update(&mut c, 13, 100, 0, 9 * SECOND).is_empty());
        assert_eq!(c.len(), 4);
    }

    #[test]
    fn counter_about_to_wrap_exports_and_restarts() {
        let mut c = cache(16);
        update(&mut c, 1, u32::MAX - 10, 0, 0);
        assert!(update(&mut c, 1, 10, 0, 1).is_empty());
        let records = update(&mut c, 1, 1, 0, 2);
        assert_eq!(records.len(), 1);
        assert_eq!((records[0].packets, records[0].octets), (2, u32::MAX));
        assert_eq!(c.counters().expired_counter_full, 1);
        let records = collect(|out| c.flush_all(&mut |r| out(r.v5())));
        assert_eq!((records[0].packets, records[0].octets), (1, 1));
        assert_eq!((records[0].first, records[0].last), (2, 2));
    }

    #[test]
    fn time_going_backwards_does_not_break() {
        let mut c = cache(16);
        update(&mut c, 1, 1, 0, 10 * SECOND);
        update(&mut c, 1, 1, 0, 9 * SECOND);
        let records = expire(&mut c, 25 * SECOND);
        assert_eq!(records.len(), 1);
        assert_eq!((records[0].first, records[0].last), (10_000, 10_000));
        assert_eq!(records[0].packets, 2);
    }

    #[test]
    fn uptime_wraps_in_records() {
        let mut c = cache(16);
        let start = u64::from(u32::MAX) - 500;
        update(&mut c, 1, 1, 0, start);
        update(&mut c, 1, 1, 0, start + 1000);
        let records = collect(|out| c.flush_all(&mut |r| out(r.v5())));
        assert_eq!((records[0].first, records[0].last), (u32::MAX - 500, 499));
    }

    #[test]
    fn heap_stays_bounded_under_churn() {
        let mut c = cache(64);
        let limit = c.heap_limit;
        let heap_capacity = c.heap.capacity();
        let memory = c.memory_bytes();
        let mut records = 0;
        for round in 0..20_000_u32 {
            let now = u64::from(round);
            // Short TCP flows that end with FIN, many alive at once, plus a full cache.
            let n = round % 200;
            let flags = if round % 3 == 0 { TCP_FIN } else { 0 };
            c.update(key(n), 40, flags, now, &mut |_| records += 1);
            assert!(c.heap.len() <= limit, "round {round}");
            assert!(c.len() <= 64);
        }
        c.expire(u64::MAX / 2, &mut |_| records += 1);
        assert!(c.is_empty());
        assert_eq!(records, c.counters().records());
        assert_eq!(c.counters().flows, c.counters().records());
        assert_eq!(c.heap.capacity(), heap_capacity);
        assert_eq!(c.memory_bytes(), memory);
    }

    #[test]
    fn every_flow_leaves_exactly_once() {
        // Random traffic, random expiry calls: every packet ends up in exactly one record.
        let mut c = cache(80);
        let mut state = 0x1234_5678_u32;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        let (mut packets, mut octets) = (0_u64, 0_u64);
        let mut sink = |r: FlowRecord<FlowKey>| {
            packets += u64::from(r.packets);
            octets += u64::from(r.octets);
        };
        let mut now = 0;
        for _ in 0..50_000 {
            now += u64::from(next() % 50);
            let r = next();
            let flags = match r % 101 {
                0 => TCP_FIN,
                1 => TCP_RST,
                2 => 0x02,
                _ => 0x10,
            };
            // 40 busy flows (active timeouts), 500 rare ones (inactive and emergency expiry).
            let n = if r % 10 == 0 { 1000 + r % 500 } else { r % 40 };
            c.update(key(n), r % 1500, flags, now, &mut sink);
            if r % 97 == 0 {
                c.expire(now, &mut sink);
            }
        }
        c.flush_all(&mut sink);
        assert_eq!(packets, 50_000);
        assert_eq!(octets, c.counters().octets);
        assert!(c.counters().expired_emergency > 0);
        assert!(c.counters().expired_inactive > 0);
        assert!(c.counters().expired_active > 0);
        assert!(c.counters().expired_tcp_end > 0);
    }

    #[test]
    fn config_is_checked() {
        let with = |max_flows, inactive, active| {
            FlowCache::<FlowKey>::new(CacheConfig {
                inactive_timeout: Duration::from_millis(inactive),
                active_timeout: Duration::from_millis(active),
                max_flows,
            })
            .map(|c| c.max_flows())
        };
        assert_eq!(with(1, 1, 1), Ok(1));
        assert_eq!(with(0, 1, 1), Err(ConfigError::NoFlows));
        assert_eq!(
            with(MAX_FLOWS_LIMIT + 1, 1, 1),
            Err(ConfigError::TooManyFlows(MAX_FLOWS_LIMIT + 1))
        );
        assert_eq!(
            with(1, 0, 1),
            Err(ConfigError::Timeout(Duration::from_millis(0)))
        );
        let too_long = 1 << 32;
        assert_eq!(
            with(1, 1, too_long),
            Err(ConfigError::Timeout(Duration::from_millis(too_long)))
        );
        assert_eq!(
            ConfigError::NoFlows.to_string(),
            "the flow cache must hold at least one flow"
        );
    }

    #[test]
    fn memory_per_flow() {
        // The key is 18 bytes, the counters 32 (two u64 times, three u32, the flags byte), the
        // hash 8: 58, in a 64-byte slot. A heap entry is a u64 time and a key: 32 bytes.
        assert_eq!(size_of::<FlowKey>(), 18);
        assert_eq!(size_of::<Entry>(), 32);
        assert_eq!(SLOT_BYTES, 64);
        assert_eq!(HEAP_ENTRY_BYTES, 32);
        let c = cache(65_536);
        assert_eq!(c.table.slots.len(), 131_072);
        assert_eq!(c.heap.capacity(), 98_305);
        // 8 MiB of slots and 3 MiB of heap.
        assert_eq!(c.memory_bytes(), 131_072 * 64 + 98_305 * 32);
        assert_eq!(c.memory_bytes() / 65_536, 176);
        // Not a power of two: the table still has at least twice the slots.
        assert_eq!(cache(100_000).table.slots.len(), 262_144);
        assert_eq!(cache(1).table.slots.len(), 2);
    }

    #[test]
    fn table_matches_a_reference_map() {
        use std::collections::HashMap;

        // Few slots and many colliding keys: long probe runs that wrap around the end, and
        // backward shifts across the wrap.
        let mut table = Table::new(64);
        let mut reference: HashMap<FlowKey, u32> = HashMap::new();
        let mut state = 0x0bad_cafe_u32;
        for step in 0..200_000_u32 {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let k = key(state % 48);
            let hash = table.hash(&k);
            match (table.find(hash, &k), reference.contains_key(&k)) {
                (Some(index), true) => {
                    if state.is_multiple_of(3) {
                        table.remove(index);
                        reference.remove(&k);
                    } else {
                        table.get_mut(index).unwrap().entry.octets = step;
                        reference.insert(k, step);
                    }
                }
                (None, false) if table.len < 32 => {
                    let entry = Entry {
                        packets: 1,
                        octets: step,
                        ..Entry::default()
                    };
                    table.insert(hash, k, entry);
                    reference.insert(k, step);
                }
                (None, false) => {}
                (found, expected) => panic!("step {step}: {found:?} vs {expected}"),
            }
            assert_eq!(table.len, reference.len());
        }
        for (k, octets) in &reference {
            let index = table.find(table.hash(k), k).unwrap();
            assert_eq!(table.slots[index].entry.octets, *octets);
        }
        let mut drained = 0;
        table.drain(|_, _| drained += 1);
        assert_eq!((drained, table.len), (reference.len(), 0));
        assert!(table.slots.iter().all(|slot| slot.entry.packets == 0));
    }

    #[test]
    fn batch_gives_the_same_results() {
        let observations: Vec<Observation> = (0..1000_u32)
            .map(|i| Observation {
                key: key(i % 70),
                octets: i,
                tcp_flags: if i % 37 == 0 { TCP_FIN } else { 0x10 },
            })
            .collect();
        let mut one = cache(50);
        let mut batched = cache(50);
        let mut a = Vec::new();
        let mut b = Vec::new();
        for (t, chunk) in observations.chunks(64).enumerate() {
            let now = t as u64 * 2 * SECOND;
            for observation in chunk {
                one.observe(observation, now, &mut |r| a.push(r.v5()));
            }
            batched.observe_batch(chunk, now, &mut |r| b.push(r.v5()));
        }
        one.flush_all(&mut |r| a.push(r.v5()));
        batched.flush_all(&mut |r| b.push(r.v5()));
        // The hasher seeds differ, and so does the order of the final flush.
        let sort = |v: &mut Vec<RecordRepr>| v.sort_by_key(|r| (r.first, r.src_addr, r.octets));
        sort(&mut a);
        sort(&mut b);
        assert_eq!(a, b);
        assert_eq!(one.counters(), batched.counters());
    }

    #[test]
    fn reasons_display() {
        let names: Vec<String> = [
            ExpiryReason::Inactive,
            ExpiryReason::Active,
            ExpiryReason::TcpEnd,
            ExpiryReason::Emergency,
            ExpiryReason::CounterFull,
            ExpiryReason::Flushed,
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(
            names,
            [
                "inactive",
                "active",
                "tcp_end",
                "emergency",
                "counter_full",
                "flushed"
            ]
        );
    }
}
