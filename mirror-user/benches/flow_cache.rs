//! The NetFlow flow cache's per-packet path, with a working set of 64 Ki flows visited in random
//! order (so most lookups miss the CPU's L1 and L2 caches, as on a busy node).
//!
//! - `update`: keys already extracted, one packet at a time; the cache alone.
//! - `observe_batch`: the same in batches of 64, as an AF_XDP ring hands them over, so the
//!   cache can fetch a batch's flows from memory together. The capture thread's path.
//! - `classify_and_observe_batch`: whole Ethernet frames, keyed with etherparse, then counted in
//!   batches.
//!
//! Run with `AYA_BUILD_SKIP=1 cargo bench -p mirror-user --bench flow_cache`. Throughput is
//! reported in packets (elements) per second.

use std::{hint::black_box, net::Ipv4Addr};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use etherparse::PacketBuilder;
use mirror::netflow::{
    CacheConfig, Classified, FlowCache, FlowKey, Interfaces, Observation, classify,
};

const FLOWS: u32 = 65_536;
/// Packets per measured iteration: each flow about 16 times.
const PACKETS: usize = 1 << 20;
/// Packets per batch, as one AF_XDP receive call returns them.
const BATCH: usize = 64;

/// Small deterministic PRNG (xorshift32).
struct XorShift(u32);

impl XorShift {
    fn next(&mut self) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        self.0
    }
}

fn key(n: u32) -> FlowKey {
    FlowKey {
        src: Ipv4Addr::from_bits(0x0a00_0000 | (n >> 8)),
        dst: Ipv4Addr::from_bits(0x0a80_0000 | (n & 0xff)),
        proto: 6,
        src_port: 32768 + (n % 28_000) as u16,
        dst_port: 443,
        tos: 0,
        input: 3,
        output: 0,
    }
}

fn frame(key: &FlowKey) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(key.src.octets(), key.dst.octets(), 64)
        .tcp(key.src_port, key.dst_port, 1, 1024)
        .ack(1)
        .write_to_vec(&mut out, &[0; 6])
        .unwrap();
    out
}

/// The order packets arrive in: random flows, each about `PACKETS / FLOWS` times.
fn order() -> Vec<u32> {
    let mut rng = XorShift(0x2545_f491);
    (0..PACKETS).map(|_| rng.next() % FLOWS).collect()
}

/// A cache already holding every flow, so the benchmark measures the steady state.
fn warm_cache(keys: &[FlowKey]) -> FlowCache {
    let mut cache = FlowCache::new(CacheConfig::default()).unwrap();
    for key in keys {
        cache.update(*key, 1500, 0x10, 0, &mut |r| {
            black_box(r);
        });
    }
    assert_eq!(cache.len(), keys.len());
    cache
}

fn bench(c: &mut Criterion) {
    let keys: Vec<FlowKey> = (0..FLOWS).map(key).collect();
    let order = order();

    let mut group = c.benchmark_group("flow_cache");
    group.throughput(Throughput::Elements(PACKETS as u64));

    let mut cache = warm_cache(&keys);
    println!(
        "flow cache: {} flows, {} bytes allocated ({} per flow)",
        cache.len(),
        cache.memory_bytes(),
        cache.memory_bytes() / cache.len()
    );
    // Baseline in the same run: the textbook cache, std's HashMap (SipHash) with per-flow
    // counters and last-seen time, no expiry. The README reports the cache against it.
    let mut baseline: std::collections::HashMap<FlowKey, (u64, u64, u64)> =
        keys.iter().map(|k| (*k, (0, 0, 0))).collect();
    let mut now = 0_u64;
    group.bench_function("baseline_std_hashmap", |b| {
        b.iter(|| {
            for &n in &order {
                let entry = baseline.entry(keys[n as usize]).or_default();
                entry.0 += 1;
                entry.1 += 1500;
                entry.2 = now >> 10;
                now += 1;
            }
            black_box(&baseline);
        });
    });

    let mut now = 0_u64;
    group.bench_function("update", |b| {
        b.iter(|| {
            for &n in &order {
                // About 1 ms per 1024 packets: flows live on, the active timeout still comes.
                let key = keys[n as usize];
                cache.update(key, 1500, 0x10, now >> 10, &mut |r| {
                    black_box(r);
                });
                now += 1;
            }
            cache.expire(now >> 10, &mut |r| {
                black_box(r);
            });
        });
    });

    let observations: Vec<Observation> = order
        .iter()
        .map(|&n| Observation {
            key: keys[n as usize],
            octets: 1500,
            tcp_flags: 0x10,
        })
        .collect();
    let mut cache = warm_cache(&keys);
    let mut now = 0_u64;
    group.bench_function("observe_batch", |b| {
        b.iter(|| {
            for batch in observations.chunks(BATCH) {
                cache.observe_batch(batch, now >> 10, &mut |r| {
                    black_box(r);
                });
                now += BATCH as u64;
            }
            cache.expire(now >> 10, &mut |r| {
                black_box(r);
            });
        });
    });

    // The frames in arrival order, back to back, as they come off the receive ring (so they
    // stream through the CPU cache; the flows they belong to do not).
    let frame_len = frame(&keys[0]).len();
    let ring: Vec<u8> = order
        .iter()
        .flat_map(|&n| frame(&keys[n as usize]))
        .collect();
    let ifaces = Interfaces {
        input: 3,
        output: 0,
    };
    let mut cache = warm_cache(&keys);
    let mut now = 0_u64;
    let mut staged = Vec::with_capacity(BATCH);
    group.bench_function("classify_and_observe_batch", |b| {
        b.iter(|| {
            for batch in ring.chunks(BATCH * frame_len) {
                staged.clear();
                for frame in batch.chunks(frame_len) {
                    if let Classified::Flow(obs) = classify(frame, ifaces) {
                        staged.push(obs);
                    }
                }
                cache.observe_batch(&staged, now >> 10, &mut |r| {
                    black_box(r);
                });
                now += BATCH as u64;
            }
            cache.expire(now >> 10, &mut |r| {
                black_box(r);
            });
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
