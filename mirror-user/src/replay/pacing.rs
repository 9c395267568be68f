//! When each packet of a replay is due, and waiting for it.
//!
//! Due times are nanoseconds after the replay started, pure arithmetic on the packets'
//! timestamps (`--speed`) or their index (`--pps`). The player sends every packet due within
//! [`EARLY`] together, so at high rates one `sendmmsg` carries many packets and the thread
//! sleeps once per batch; it spins only for the last [`SPIN`] of a wait, which a sleep would
//! overshoot.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

const NANOS_PER_SEC: f64 = 1e9;
/// Packets due this soon are sent now, with those already due.
pub const EARLY: Duration = Duration::from_micros(100);
/// The end of a wait spent spinning rather than sleeping: about Linux's default timer slack
/// (50 µs) plus a wake-up.
pub const SPIN: Duration = Duration::from_micros(80);
/// Longest sleep between looks at the stop flag.
const STOP_CHECK: Duration = Duration::from_millis(50);
/// The least a pass's timestamps move on from the previous pass's.
const MIN_LOOP_GAP_NS: u64 = 1_000;

/// How fast the packets go.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    /// As fast as the sender takes them.
    Asap,
    /// At this multiple of the capture's own pace (2.0: twice as fast).
    Speed(f64),
    /// This many packets per second, evenly spaced.
    Pps(f64),
}

/// The due time of packet after packet, in replay order (across passes).
#[derive(Clone, Debug)]
pub struct Schedule {
    pace: Pace,
    first_ts: Option<u64>,
    index: u64,
}

impl Schedule {
    pub fn new(pace: Pace) -> Self {
        Self {
            pace,
            first_ts: None,
            index: 0,
        }
    }

    /// When the next packet, stamped `ts_ns` (continued across passes), is due: nanoseconds
    /// after the start; `None` when it is due at once (no pacing).
    pub fn next_due_ns(&mut self, ts_ns: u64) -> Option<u64> {
        let index = self.index;
        self.index += 1;
        match self.pace {
            Pace::Asap => None,
            Pace::Speed(speed) => {
                let first = *self.first_ts.get_or_insert(ts_ns);
                Some(speed_due_ns(first, ts_ns, speed))
            }
            Pace::Pps(pps) => Some(pps_due_ns(index, pps)),
        }
    }
}

/// `--speed`: packet stamped `ts_ns` is due `(ts_ns - first_ns) / speed` after the start; a
/// packet stamped before the first one is due at once.
#[expect(
    clippy::cast_precision_loss,
    clippy::cast_sign_loss,
    reason = "f64 holds nanoseconds exactly for 104 days; the cast back saturates"
)]
pub fn speed_due_ns(first_ns: u64, ts_ns: u64, speed: f64) -> u64 {
    (ts_ns.saturating_sub(first_ns) as f64 / speed) as u64
}

/// `--pps`: packet `index` (from 0) is due `index / pps` seconds after the start.
#[expect(
    clippy::cast_precision_loss,
    clippy::cast_sign_loss,
    reason = "exact below 2^53 packets; the cast back saturates"
)]
pub fn pps_due_ns(index: u64, pps: f64) -> u64 {
    (index as f64 * NANOS_PER_SEC / pps) as u64
}

/// The timestamps of one pass of the file, to continue them in the next pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timeline {
    min: u64,
    max: u64,
    count: u64,
}

impl Timeline {
    pub fn observe(&mut self, ts_ns: u64) {
        if self.count == 0 {
            (self.min, self.max) = (ts_ns, ts_ns);
        } else {
            self.min = self.min.min(ts_ns);
            self.max = self.max.max(ts_ns);
        }
        self.count += 1;
    }

    /// How far each pass's timestamps move on from the previous pass's: the file's span plus
    /// the mean gap between its packets (at least 1 µs), so the next pass begins after this
    /// one ends, as the next packet of the capture would have. Even with timestamps out of
    /// order, every packet of a pass is stamped after every packet of the passes before.
    pub fn period_ns(&self) -> u64 {
        let span = self.max - self.min;
        let gap = span
            .checked_div(self.count.saturating_sub(1))
            .unwrap_or(0)
            .max(MIN_LOOP_GAP_NS);
        span.saturating_add(gap)
    }
}

/// The shift of pass `pass` (from 0) for a file of period `period_ns`.
pub fn pass_shift_ns(pass: u32, period_ns: u64) -> u64 {
    period_ns.saturating_mul(u64::from(pass))
}

/// Waits until `deadline`, asleep but for the last [`SPIN`]; `false` if `stop` was set
/// meanwhile. `None` is never: only `stop` ends the wait. `idle` runs before every sleep (at
/// least every 50 ms), e.g. to redraw a progress line.
pub fn wait_until(deadline: Option<Instant>, stop: &AtomicBool, mut idle: impl FnMut()) -> bool {
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let left = match deadline {
            Some(deadline) => deadline.saturating_duration_since(Instant::now()),
            None => STOP_CHECK + SPIN,
        };
        if left.is_zero() {
            return true;
        }
        if left > SPIN {
            idle();
            std::thread::sleep(left.saturating_sub(SPIN).min(STOP_CHECK));
        } else {
            std::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn no_pacing_by_default() {
        let mut schedule = Schedule::new(Pace::Asap);
        for ts in [5 * SEC, 7 * SEC, 6 * SEC] {
            assert_eq!(schedule.next_due_ns(ts), None);
        }
    }

    #[test]
    fn speed_scales_the_capture_clock() {
        assert_eq!(speed_due_ns(10 * SEC, 10 * SEC, 1.0), 0);
        assert_eq!(speed_due_ns(10 * SEC, 12 * SEC, 1.0), 2 * SEC);
        assert_eq!(speed_due_ns(10 * SEC, 12 * SEC, 2.0), SEC);
        assert_eq!(speed_due_ns(10 * SEC, 12 * SEC, 0.5), 4 * SEC);
        assert_eq!(speed_due_ns(10 * SEC, 10 * SEC + 3, 1.0), 3);
        // Out of order: before the first packet means now.
        assert_eq!(speed_due_ns(10 * SEC, 9 * SEC, 1.0), 0);

        let mut schedule = Schedule::new(Pace::Speed(2.0));
        let stamps = [
            1_700_000_000 * SEC,
            1_700_000_001 * SEC,
            1_700_000_003 * SEC,
        ];
        let due: Vec<_> = stamps.iter().map(|&t| schedule.next_due_ns(t)).collect();
        assert_eq!(due, [Some(0), Some(SEC / 2), Some(3 * SEC / 2)]);
    }

    #[test]
    fn pps_spaces_packets_evenly() {
        assert_eq!(pps_due_ns(0, 1000.0), 0);
        assert_eq!(pps_due_ns(1, 1000.0), 1_000_000);
        assert_eq!(pps_due_ns(1000, 1000.0), SEC);
        assert_eq!(pps_due_ns(3, 0.5), 6 * SEC);
        assert_eq!(pps_due_ns(1_000_000, 1e6), SEC);

        // Timestamps do not matter, only the order.
        let mut schedule = Schedule::new(Pace::Pps(4.0));
        let due: Vec<_> = [9, 1, 5]
            .iter()
            .map(|&t| schedule.next_due_ns(t * SEC))
            .collect();
        assert_eq!(due, [Some(0), Some(SEC / 4), Some(SEC / 2)]);
    }

    #[test]
    fn loops_continue_the_timestamps() {
        // Packets at 0, 1 and 3 s: span 3 s, mean gap 1.5 s, so each pass starts 4.5 s on.
        let stamps = [100 * SEC, 101 * SEC, 103 * SEC];
        let mut timeline = Timeline::default();
        for &ts in &stamps {
            timeline.observe(ts);
        }
        let period = timeline.period_ns();
        assert_eq!(period, 4 * SEC + SEC / 2);
        assert_eq!(pass_shift_ns(0, period), 0);
        assert_eq!(pass_shift_ns(2, period), 9 * SEC);

        // Played three times at speed 1: time never goes backwards, and the gap between the
        // passes is the file's mean gap.
        let mut schedule = Schedule::new(Pace::Speed(1.0));
        let due: Vec<u64> = (0..3)
            .flat_map(|pass| stamps.map(|ts| ts + pass_shift_ns(pass, period)))
            .map(|ts| schedule.next_due_ns(ts).unwrap())
            .collect();
        assert!(due.is_sorted(), "{due:?}");
        let expected: Vec<u64> = (0..3)
            .flat_map(|pass: u32| [0, SEC, 3 * SEC].map(|at| at + u64::from(pass) * period))
            .collect();
        assert_eq!(due, expected);
        assert_eq!(due[3], 4 * SEC + SEC / 2);
        assert_eq!(due[8], 3 * SEC + 2 * period);
    }

    #[test]
    fn loop_period_of_odd_files() {
        // Out of order: the next pass still starts after the latest packet of this one.
        let mut timeline = Timeline::default();
        for ts in [5 * SEC, 2 * SEC, 8 * SEC] {
            timeline.observe(ts);
        }
        assert_eq!(timeline.period_ns(), 6 * SEC + 3 * SEC);
        assert!(2 * SEC + timeline.period_ns() > 8 * SEC);

        // One packet, or all at the same time: passes still move on, by 1 µs.
        let mut single = Timeline::default();
        single.observe(SEC);
        assert_eq!(single.period_ns(), 1_000);
        let mut same = Timeline::default();
        same.observe(SEC);
        same.observe(SEC);
        assert_eq!(same.period_ns(), 1_000);
        assert_eq!(Timeline::default().period_ns(), 1_000);
        // No overflow for absurd stamps.
        assert_eq!(pass_shift_ns(u32::MAX, u64::MAX / 2), u64::MAX);
    }

    #[test]
    fn waits_until_the_deadline_or_stop() {
        let stop = AtomicBool::new(false);
        let start = Instant::now();
        let mut idle = 0;
        assert!(wait_until(
            Some(start + Duration::from_millis(120)),
            &stop,
            || idle += 1
        ));
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(120), "{waited:?}");
        assert!(waited < Duration::from_millis(500), "{waited:?}");
        assert!(idle >= 3, "idle every 50 ms at least: {idle}");
        assert!(
            wait_until(Some(start), &stop, || ()),
            "a past deadline is no wait"
        );

        stop.store(true, Ordering::Relaxed);
        let start = Instant::now();
        assert!(!wait_until(
            Some(start + Duration::from_mins(1)),
            &stop,
            || ()
        ));
        assert!(!wait_until(None, &stop, || ()));
        assert!(start.elapsed() < Duration::from_secs(1));
    }
}
