//! The replay loop: batches of frames from the file into the sender, paced, pass after pass.
//! Like the capture thread: a batch of up to [`BATCH`] frames is pushed, then flushed with one
//! `sendmmsg`, and the counters are updated once per batch.

use std::{
    io::{Read, Seek},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use mirror_common::Direction;
use prometheus::IntCounter;

use super::{
    batch::Batch,
    pacing::{EARLY, Pace, Schedule, Timeline, pass_shift_ns, wait_until},
    progress::{Progress, Summary},
    reader::{Error, Reader},
};
use crate::{
    capture::BATCH,
    filter::Filter,
    metrics::CopyCounters,
    netflow::{Interfaces, collector::FlowExport},
    send::{Outcome, Sender},
    tunnel::CopyMeta,
};

/// Where the frames go: the [`Sender`], or in benchmarks and tests something that keeps them.
pub trait Sink {
    /// Queues a copy of `frame`.
    ///
    /// # Safety
    /// `frame` must stay valid and unchanged until the next [`Sink::flush`] returns.
    unsafe fn push(&mut self, frame: &[u8], meta: &CopyMeta);

    /// Sends everything queued and says what became of the copies pushed since the last flush.
    fn flush(&mut self) -> Outcome;
}

impl Sink for Sender {
    unsafe fn push(&mut self, frame: &[u8], meta: &CopyMeta) {
        // SAFETY: the caller keeps `Sender::push`'s contract, which is this one.
        unsafe { Sender::push(self, frame, meta, 0) }
    }

    /// All the copies of a replay have one owner: the replayed interface.
    fn flush(&mut self) -> Outcome {
        let mut outcomes = [Outcome::default()];
        Sender::flush(self, &mut outcomes);
        // Every chunk is the sender's own: the sent ones come back to its spares.
        Sender::reclaim(self, &mut Vec::new());
        // Changed next hops, for the next batch.
        Sender::refresh(self);
        let [outcome] = outcomes;
        outcome
    }
}

/// The replay's counters: the copies of the replayed interface (ingress, `--iface-label`) and
/// their bytes, and the packets skipped because their link header has no Ethernet form.
pub struct Counters {
    /// Read (captured), and sent or dropped after.
    pub copies: CopyCounters,
    pub bytes: IntCounter,
    pub malformed: IntCounter,
    /// Packets `--filter` left out.
    pub filtered: IntCounter,
}

/// Plays a file into a [`Sink`].
pub struct Player<S> {
    pub sink: S,
    pub pace: Pace,
    /// Times the file is played, at least 1.
    pub passes: u32,
    /// Written over each frame's destination MAC (`--inner-dst-mac`).
    pub inner_dst_mac: Option<[u8; 6]>,
    pub counters: Counters,
    pub progress: Option<Progress>,
    /// NetFlow of the replayed packets, on the file's clock.
    pub netflow: Option<ReplayFlows>,
    /// `--filter`: only the frames it matches are sent and metered.
    pub filter: Option<Filter>,
}

/// The flow meter of a replay and the file time it last expired flows at.
pub struct ReplayFlows {
    pub export: FlowExport,
    /// File time (ns) of the newest packet counted.
    latest_ns: u64,
    /// File time (ns) of the last expiry pass.
    ticked_ns: u64,
}

impl ReplayFlows {
    pub fn new(export: FlowExport) -> Self {
        Self {
            export,
            latest_ns: 0,
            ticked_ns: 0,
        }
    }

    /// Counts the batch at the time of its newest packet, and expires flows once a second of
    /// file time, as the live agent does once a second of real time.
    fn observe(&mut self, batch: &Batch, kept: Kept, shift: u64) {
        let newest = batch
            .frames()
            .map(|(_, p)| p.timestamp_ns.saturating_add(shift))
            .max();
        let Some(newest) = newest else { return };
        self.latest_ns = self.latest_ns.max(newest);
        let frames = batch
            .frames()
            .enumerate()
            .filter(|&(i, _)| kept.has(i))
            .map(|(_, (frame, _))| (frame, Interfaces::mirrored(0, Direction::Ingress)));
        self.export.observe(frames, self.latest_ns);
        if self.latest_ns.saturating_sub(self.ticked_ns) >= 1_000_000_000 {
            self.ticked_ns = self.latest_ns;
            self.export.tick(self.latest_ns);
        }
    }
}

/// Where the replay stands, for pacing and the progress line.
struct Position<'a> {
    start: Instant,
    schedule: Schedule,
    stop: &'a AtomicBool,
    pass: u32,
    /// What this pass adds to the file's timestamps.
    shift: u64,
    /// Packets sent before this batch.
    packets: u64,
}

/// What one batch came to.
struct Sent {
    packets: u64,
    bytes: u64,
    /// `false` if `stop` cut a wait short.
    completed: bool,
    /// Which frames of the batch the filter kept.
    kept: Kept,
    /// How many it left out.
    filtered: u64,
    /// What became of the frames pushed.
    outcome: Outcome,
}

/// The frames of a batch (at most 64, [`BATCH`]) that passed `--filter`, one bit each.
#[derive(Clone, Copy)]
struct Kept(u64);

impl Kept {
    const ALL: Self = Self(u64::MAX);

    fn has(self, index: usize) -> bool {
        index < 64 && self.0 & (1 << index) != 0
    }
}

const _: () = assert!(BATCH <= 64, "Kept holds one bit per frame of a batch");

impl<S: Sink> Player<S> {
    /// Plays the file of `reader` [`Player::passes`] times, rewinding it in between, until its
    /// end or until `stop` is set. After a read error every packet before the damage has been
    /// sent; the error is returned.
    pub fn play<R: Read + Seek>(
        &mut self,
        reader: Reader<R>,
        stop: &AtomicBool,
    ) -> Result<Summary, Error> {
        let result = self.play_passes(reader, stop);
        // Whatever ended the replay, every flow counted is exported.
        if let Some(flows) = &mut self.netflow {
            flows.export.finish(flows.latest_ns);
        }
        if let Some(progress) = &mut self.progress {
            progress.clear();
        }
        result
    }

    fn play_passes<R: Read + Seek>(
        &mut self,
        mut reader: Reader<R>,
        stop: &AtomicBool,
    ) -> Result<Summary, Error> {
        let start = Instant::now();
        let mut position = Position {
            start,
            schedule: Schedule::new(self.pace),
            stop,
            pass: 0,
            shift: 0,
            packets: 0,
        };
        let mut batch = Batch::with_capacity(BATCH);
        let mut timeline = Timeline::default();
        let mut period = 0;
        let mut summary = Summary::default();
        for pass in 0..self.passes {
            if pass > 0 {
                reader = reader.rewind()?;
            }
            position.pass = pass;
            position.shift = pass_shift_ns(pass, period);
            let mut malformed_seen = 0;
            loop {
                let filled = batch.fill(&mut reader, BATCH);
                if let Some(mac) = self.inner_dst_mac {
                    batch.set_dst_mac(mac);
                }
                if pass == 0 {
                    for (_, packet) in batch.frames() {
                        timeline.observe(packet.timestamp_ns);
                    }
                }
                position.packets = summary.packets;
                let sent = self.send(&batch, &mut position);
                if let Some(flows) = &mut self.netflow {
                    flows.observe(&batch, sent.kept, position.shift);
                }
                // Read counted before what became of them: a scrape never sees more copies
                // sent or dropped than read.
                self.counters.copies.captured.inc_by(sent.packets);
                self.counters.bytes.inc_by(sent.bytes);
                self.counters.copies.add(&sent.outcome, sent.filtered);
                let malformed = reader.malformed();
                self.counters.malformed.inc_by(malformed - malformed_seen);
                malformed_seen = malformed;
                summary.packets += sent.packets;
                summary.bytes += sent.bytes;
                summary.filtered += sent.filtered;
                summary.elapsed = start.elapsed();
                if let Some(progress) = &mut self.progress {
                    progress.update(Instant::now(), summary.packets, reader.offset(), pass);
                }
                match filled {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e) => return Err(e),
                }
                if !sent.completed || stop.load(Ordering::Relaxed) {
                    summary.interrupted = true;
                    return Ok(summary);
                }
            }
            if pass == 0 {
                period = timeline.period_ns();
            }
        }
        summary.elapsed = start.elapsed();
        Ok(summary)
    }

    /// Hands the batch to the sink, each packet at its due time, and flushes it.
    fn send(&mut self, batch: &Batch, position: &mut Position<'_>) -> Sent {
        let mut sent = Sent {
            packets: 0,
            bytes: 0,
            completed: true,
            kept: Kept::ALL,
            filtered: 0,
            outcome: Outcome::default(),
        };
        let mut filtered = 0;
        for (index, (frame, packet)) in batch.frames().enumerate() {
            let timestamp_ns = packet.timestamp_ns.saturating_add(position.shift);
            if let Some(due) = position.schedule.next_due_ns(timestamp_ns) {
                let deadline = position.start.checked_add(Duration::from_nanos(due));
                if deadline.is_none_or(|deadline| deadline > Instant::now() + EARLY) {
                    // What is due goes now, before the wait.
                    if sent.packets > 0 {
                        add(&mut sent.outcome, self.sink.flush());
                    }
                    let progress = &mut self.progress;
                    let (done, pass) = (position.packets + sent.packets, position.pass);
                    let waited = wait_until(deadline, position.stop, || {
                        if let Some(progress) = progress {
                            progress.update(Instant::now(), done, packet.offset, pass);
                        }
                    });
                    if !waited {
                        sent.completed = false;
                        break;
                    }
                }
            }
            // Counted as read (captured) either way, so that read = sent + dropped.
            sent.packets += 1;
            sent.bytes += frame.len() as u64;
            if let Some(filter) = &self.filter
                && !filter.matches(frame)
            {
                sent.kept.0 &= !(1 << index);
                filtered += 1;
                continue;
            }
            let meta = CopyMeta {
                egress: false,
                timestamp_ns,
                truncated: packet.truncated(),
            };
            // SAFETY: the batch is not touched until it is refilled, after the flush below.
            unsafe { self.sink.push(frame, &meta) };
        }
        add(&mut sent.outcome, self.sink.flush());
        self.counters.filtered.inc_by(filtered);
        sent.filtered = filtered;
        sent
    }
}

fn add(total: &mut Outcome, more: Outcome) {
    total.sent += more.sent;
    total.too_big += more.too_big;
    total.send_error += more.send_error;
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use pcap_file::{DataLink, Endianness, TsResolution};

    use super::*;
    use crate::replay::testing::{self, Record, frame};

    const T0: u64 = 1_700_000_000_000_000_000;

    /// Keeps what it is given, and checks the sender's rules: at most a batch between flushes,
    /// frames untouched until the flush.
    #[derive(Default)]
    struct Recorder {
        sent: Vec<(Vec<u8>, CopyMeta)>,
        queued: Vec<(*const u8, usize, Vec<u8>, CopyMeta)>,
        flushes: usize,
    }

    impl Sink for Recorder {
        unsafe fn push(&mut self, frame: &[u8], meta: &CopyMeta) {
            assert!(
                self.queued.len() < BATCH,
                "more than a batch between flushes"
            );
            self.queued
                .push((frame.as_ptr(), frame.len(), frame.to_vec(), *meta));
        }

        fn flush(&mut self) -> Outcome {
            let mut outcome = Outcome::default();
            for (ptr, len, copy, meta) in self.queued.drain(..) {
                // SAFETY: the `push` contract keeps the frame alive until now.
                let now = unsafe { std::slice::from_raw_parts(ptr, len) };
                assert_eq!(now, copy, "a frame changed before the flush");
                self.sent.push((copy, meta));
                outcome.sent += 1;
            }
            self.flushes += 1;
            outcome
        }
    }

    fn counters() -> Counters {
        let (copies, bytes) = crate::metrics::Metrics::new()
            .unwrap()
            .captured("replay", "ingress");
        Counters {
            copies,
            bytes,
            malformed: IntCounter::new("m", "m").unwrap(),
            filtered: IntCounter::new("f", "f").unwrap(),
        }
    }

    fn player(pace: Pace, passes: u32) -> Player<Recorder> {
        Player {
            sink: Recorder::default(),
            pace,
            passes,
            inner_dst_mac: None,
            counters: counters(),
            progress: None,
            netflow: None,
            filter: None,
        }
    }

    /// A pcap of `n` frames, 1 ms apart, every third one cut short by the snaplen.
    fn capture(n: u16) -> (Vec<u8>, Vec<Record>) {
        let records: Vec<Record> = (0..n)
            .map(|i| {
                let mut record = Record::new(T0 + u64::from(i) * 1_000_000, frame(i, 20));
                if i % 3 == 0 {
                    record.original_len += 100;
                }
                record
            })
            .collect();
        let written = testing::pcap(
            DataLink::ETHERNET,
            TsResolution::NanoSecond,
            Endianness::Little,
            &records,
        );
        (written.bytes, records)
    }

    fn reader(bytes: &[u8]) -> Reader<Cursor<Vec<u8>>> {
        Reader::new(Cursor::new(bytes.to_vec())).unwrap()
    }

    #[test]
    fn the_filter_keeps_only_what_it_matches_and_counts_the_rest() {
        // Source ports 1000..1150: keep the 50 from 1100 on, across three batches.
        let (bytes, records) = capture(150);
        let mut player = player(Pace::Asap, 1);
        player.filter = Filter::compile("udp src portrange 1100-1199").unwrap();
        let summary = player
            .play(reader(&bytes), &AtomicBool::new(false))
            .unwrap();
        assert_eq!((summary.packets, summary.filtered), (150, 100));
        assert_eq!(player.counters.filtered.get(), 100);
        let copies = &player.counters.copies;
        assert_eq!(copies.captured.get(), 150);
        // Per interface: every copy read was sent or left out.
        assert_eq!((copies.sent.get(), copies.filtered.get()), (50, 100));
        let sent: Vec<_> = player.sink.sent.iter().map(|(f, _)| f.clone()).collect();
        let wanted: Vec<_> = records[100..].iter().map(|r| r.data.clone()).collect();
        assert_eq!(sent, wanted);
    }

    #[test]
    fn every_packet_in_batches_as_an_ingress_copy() {
        let (bytes, records) = capture(150);
        let mut player = player(Pace::Asap, 1);
        let summary = player
            .play(reader(&bytes), &AtomicBool::new(false))
            .unwrap();
        assert_eq!(summary.packets, 150);
        assert!(!summary.interrupted);
        let sent = &player.sink.sent;
        assert_eq!(sent.len(), 150);
        for ((frame, meta), record) in sent.iter().zip(&records) {
            assert_eq!(frame, &record.data);
            assert_eq!(
                *meta,
                CopyMeta {
                    egress: false,
                    timestamp_ns: record.ts.as_nanos() as u64,
                    truncated: record.original_len as usize > record.data.len(),
                }
            );
        }
        // 64 + 64 + 22, and the empty batch at the end.
        assert!(player.sink.flushes <= 4, "{}", player.sink.flushes);
        let bytes: usize = records.iter().map(|r| r.data.len()).sum();
        assert_eq!(summary.bytes, bytes as u64);
        assert_eq!(player.counters.copies.captured.get(), 150);
        assert_eq!(player.counters.bytes.get(), bytes as u64);
    }

    #[test]
    fn loops_repeat_the_file_with_later_timestamps() {
        let (bytes, records) = capture(5);
        let mut player = player(Pace::Asap, 3);
        let summary = player
            .play(reader(&bytes), &AtomicBool::new(false))
            .unwrap();
        assert_eq!(summary.packets, 15);
        let sent = &player.sink.sent;
        let stamps: Vec<u64> = sent.iter().map(|(_, meta)| meta.timestamp_ns).collect();
        assert!(stamps.windows(2).all(|w| w[0] < w[1]), "{stamps:?}");
        // Span 4 ms plus the mean gap of 1 ms: each pass 5 ms later.
        for (i, (frame, meta)) in sent.iter().enumerate() {
            let record = &records[i % 5];
            assert_eq!(frame, &record.data);
            let pass = (i / 5) as u64;
            assert_eq!(
                meta.timestamp_ns,
                record.ts.as_nanos() as u64 + pass * 5_000_000
            );
        }
    }

    #[test]
    fn damage_ends_the_replay_after_everything_before_it() {
        let (bytes, records) = capture(100);
        for cut in [bytes.len() - 1, bytes.len() - 30, 24 + 16 * 70 + 1] {
            let mut player = player(Pace::Asap, 2);
            let err = player
                .play(reader(&bytes[..cut]), &AtomicBool::new(false))
                .unwrap_err();
            let Error::Truncated { offset, .. } = err else {
                panic!("{err}");
            };
            let sink = &player.sink;
            assert!(sink.queued.is_empty(), "flushed before the error");
            let whole = sink.sent.len();
            assert!(whole < 100);
            for ((frame, _), record) in sink.sent.iter().zip(&records) {
                assert_eq!(frame, &record.data);
            }
            // The error names where the first missing packet starts.
            let record_len = 16 + records[0].data.len() as u64;
            assert_eq!(offset, 24 + whole as u64 * record_len, "cut {cut}");
            assert!(offset < cut as u64 && cut as u64 - offset < record_len);
        }
    }

    #[test]
    fn malformed_packets_are_counted_and_skipped() {
        let written = testing::pcap(
            DataLink::RAW,
            TsResolution::MicroSecond,
            Endianness::Little,
            &[
                Record::new(T0, vec![0x70, 1, 2]),
                Record::new(T0, frame(0, 4)[14..].to_vec()),
            ],
        );
        let mut player = player(Pace::Asap, 2);
        let summary = player
            .play(reader(&written.bytes), &AtomicBool::new(false))
            .unwrap();
        assert_eq!(summary.packets, 2);
        assert_eq!(player.counters.malformed.get(), 2);
    }

    #[test]
    fn inner_destination_mac_is_rewritten() {
        let (bytes, records) = capture(3);
        let mut player = player(Pace::Asap, 1);
        player.inner_dst_mac = Some([0xaa; 6]);
        player
            .play(reader(&bytes), &AtomicBool::new(false))
            .unwrap();
        for ((frame, _), record) in player.sink.sent.iter().zip(&records) {
            assert_eq!(frame[..6], [0xaa; 6]);
            assert_eq!(frame[6..], record.data[6..]);
        }
    }

    #[test]
    fn pps_paces_and_batches() {
        let (bytes, _) = capture(40);
        let mut player = player(Pace::Pps(2000.0), 1);
        let start = Instant::now();
        let summary = player
            .play(reader(&bytes), &AtomicBool::new(false))
            .unwrap();
        let took = start.elapsed();
        assert_eq!(summary.packets, 40);
        // Packet 39 is due at 19.5 ms, less the early window.
        assert!(took >= Duration::from_micros(19_400), "{took:?}");
        assert!(took < Duration::from_secs(1), "{took:?}");
        // 500 µs apart: one flush per packet or so, not one burst.
        assert!(player.sink.flushes >= 20, "{}", player.sink.flushes);
    }

    #[test]
    fn speed_follows_the_capture_clock() {
        // 10 packets 1 ms apart at speed 2: 4.5 ms.
        let (bytes, _) = capture(10);
        let mut player = player(Pace::Speed(2.0), 1);
        let start = Instant::now();
        player
            .play(reader(&bytes), &AtomicBool::new(false))
            .unwrap();
        let took = start.elapsed();
        assert!(took >= Duration::from_micros(4_400), "{took:?}");
        assert!(took < Duration::from_millis(500), "{took:?}");
    }

    #[test]
    fn high_rates_share_flushes() {
        let (bytes, _) = capture(1000);
        let mut player = player(Pace::Pps(1_000_000.0), 1);
        player
            .play(reader(&bytes), &AtomicBool::new(false))
            .unwrap();
        assert_eq!(player.sink.sent.len(), 1000);
        // 1 µs apart: packets due within the early window go together.
        assert!(player.sink.flushes < 200, "{}", player.sink.flushes);
    }

    #[test]
    fn stop_ends_a_long_wait_with_what_was_sent() {
        let (bytes, _) = capture(10);
        let mut player = player(Pace::Pps(1.0), 1);
        let stop = AtomicBool::new(false);
        let start = Instant::now();
        let summary = std::thread::scope(|scope| {
            scope.spawn(|| {
                std::thread::sleep(Duration::from_millis(30));
                stop.store(true, Ordering::Relaxed);
            });
            player.play(reader(&bytes), &stop).unwrap()
        });
        assert!(start.elapsed() < Duration::from_millis(500));
        assert!(summary.interrupted);
        assert_eq!(
            summary.packets, 1,
            "the first is due at once, the second in 1 s"
        );
        assert_eq!(player.sink.sent.len(), 1);
        assert!(player.sink.queued.is_empty());
    }

    #[test]
    fn the_arena_is_reused() {
        let (bytes, _) = capture(200);
        let mut reader = reader(&bytes);
        let mut batch = Batch::with_capacity(BATCH);
        let mut capacity = None;
        while batch.fill(&mut reader, BATCH).unwrap() > 0 {
            let frames: Vec<*const u8> = batch.frames().map(|(f, _)| f.as_ptr()).collect();
            let first = frames[0];
            // One arena: the frames follow each other, and it stays where it was.
            assert!(frames.windows(2).all(|w| w[0] < w[1]));
            match capacity {
                None => capacity = Some(first),
                Some(before) => assert_eq!(before, first, "the arena moved"),
            }
        }
        assert!(batch.is_empty());
    }
}
