//! What the replay tells the person watching: a progress line on a terminal, refreshed about
//! four times a second in place, and one summary line at the end.

use std::{
    fmt::Write as _,
    io::Write as _,
    time::{Duration, Instant},
};

/// How often the progress line is redrawn.
const EVERY: Duration = Duration::from_millis(250);
/// The rate shown is over the last 1 to 2 seconds: steady, yet quick to show a change.
const WINDOW: Duration = Duration::from_secs(1);

/// What a replay did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Summary {
    /// Packets read from the file and handed on (to the sender, or left out by `--filter`).
    pub packets: u64,
    /// Of those, the ones `--filter` left out.
    pub filtered: u64,
    /// Bytes of their Ethernet frames.
    pub bytes: u64,
    pub elapsed: Duration,
    /// Stopped by a signal before the end.
    pub interrupted: bool,
}

/// The progress line of a replay, drawn on stderr with `\r`; only for a terminal.
pub struct Progress {
    name: String,
    /// Length of the file, 0 if unknown (a pipe).
    file_len: u64,
    passes: u32,
    next: Instant,
    /// Packets sent by a moment 1 to 2 s ago, which the rate is measured from, and by a
    /// moment up to 1 s ago, which takes over.
    window: (Instant, u64),
    recent: (Instant, u64),
    shown: bool,
}

impl Progress {
    pub fn new(name: String, file_len: u64, passes: u32) -> Self {
        let now = Instant::now();
        Self {
            name,
            file_len,
            passes,
            next: now + EVERY,
            window: (now, 0),
            recent: (now, 0),
            shown: false,
        }
    }

    /// Redraws the line if it is time: `packets` sent so far, `offset` bytes of the file read
    /// in pass `pass` (from 0).
    pub fn update(&mut self, now: Instant, packets: u64, offset: u64, pass: u32) {
        if now < self.next {
            return;
        }
        self.next = now + EVERY;
        if now.saturating_duration_since(self.recent.0) >= WINDOW {
            self.window = self.recent;
            self.recent = (now, packets);
        }
        let (then, then_packets) = self.window;
        let pps = rate(
            packets.saturating_sub(then_packets),
            now.saturating_duration_since(then),
        );
        let percent = percent(offset, self.file_len);
        let text = line(&self.name, pps, packets, percent, pass, self.passes);
        let mut stderr = std::io::stderr().lock();
        // Erase to the end of the line: the previous line may have been longer.
        let _ = write!(stderr, "\r{text}\x1b[K");
        let _ = stderr.flush();
        self.shown = true;
    }

    /// Erases the line, so what follows starts on a clean one.
    pub fn clear(&mut self) {
        if self.shown {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[K");
            self.shown = false;
        }
    }
}

/// `capture.pcap: 45% (pass 2 of 3), 1234567 packets, 812.3 kpps`.
pub fn line(
    name: &str,
    pps: f64,
    packets: u64,
    percent: Option<u64>,
    pass: u32,
    passes: u32,
) -> String {
    let mut text = name.to_string();
    if let Some(percent) = percent {
        let _ = write!(text, ": {percent}%");
    }
    if passes > 1 {
        let _ = write!(text, " (pass {} of {passes})", pass + 1);
    }
    let _ = write!(text, ", {}, {}", self::packets(packets), format_rate(pps));
    text
}

/// `mirror: replayed capture.pcap: 1000 packets, 64000 bytes in 0.50 s (2.00 kpps, 1.02 Mbit/s)`.
pub fn summary(name: &str, summary: &Summary) -> String {
    let seconds = summary.elapsed.as_secs_f64();
    let pps = rate(summary.packets, summary.elapsed);
    let bits = rate(summary.bytes * 8, summary.elapsed);
    let interrupted = if summary.interrupted {
        " (interrupted)"
    } else {
        ""
    };
    let filtered = if summary.filtered > 0 {
        format!(", {} left out by --filter", summary.filtered)
    } else {
        String::new()
    };
    format!(
        "mirror: replayed {name}{interrupted}: {}, {} bytes in {seconds:.2} s ({}, {}){filtered}",
        packets(summary.packets),
        summary.bytes,
        format_rate(pps),
        format_bits(bits),
    )
}

/// `1 packet`, `2 packets`.
fn packets(count: u64) -> String {
    if count == 1 {
        "1 packet".into()
    } else {
        format!("{count} packets")
    }
}

/// How much of a file of `len` bytes `offset` is, in percent; `None` for an unknown length.
pub fn percent(offset: u64, len: u64) -> Option<u64> {
    (len > 0).then(|| (u128::from(offset.min(len)) * 100 / u128::from(len)) as u64)
}

/// Events per second.
#[expect(
    clippy::cast_precision_loss,
    reason = "a rate to display: a few digits are enough"
)]
pub fn rate(count: u64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

/// `812 pps`, `812.3 kpps`, `1.23 Mpps`.
pub fn format_rate(pps: f64) -> String {
    scaled(pps, "pps")
}

/// `512 bit/s`, `1.02 Mbit/s`, `9.87 Gbit/s`.
pub fn format_bits(bps: f64) -> String {
    scaled(bps, "bit/s")
}

fn scaled(value: f64, unit: &str) -> String {
    if value >= 1e9 {
        format!("{:.2} G{unit}", value / 1e9)
    } else if value >= 1e6 {
        format!("{:.2} M{unit}", value / 1e6)
    } else if value >= 1e3 {
        format!("{:.1} k{unit}", value / 1e3)
    } else {
        format!("{value:.0} {unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_line() {
        assert_eq!(
            line("capture.pcap", 812_345.0, 1_234_567, Some(45), 1, 3),
            "capture.pcap: 45% (pass 2 of 3), 1234567 packets, 812.3 kpps"
        );
        assert_eq!(line("-", 12.4, 10, None, 0, 1), "-, 10 packets, 12 pps");
        assert_eq!(line("-", 1.0, 1, Some(5), 0, 1), "-: 5%, 1 packet, 1 pps");
    }

    #[test]
    fn percent_of_the_file() {
        assert_eq!(percent(0, 1000), Some(0));
        assert_eq!(percent(455, 1000), Some(45));
        assert_eq!(percent(1000, 1000), Some(100));
        assert_eq!(percent(2000, 1000), Some(100));
        assert_eq!(percent(u64::MAX, u64::MAX), Some(100));
        assert_eq!(percent(5, 0), None);
    }

    #[test]
    fn rates() {
        assert!((rate(1000, Duration::from_millis(500)) - 2000.0).abs() < 1e-9);
        assert!(rate(1000, Duration::ZERO).abs() < f64::EPSILON);
        assert_eq!(format_rate(999.4), "999 pps");
        assert_eq!(format_rate(1_500.0), "1.5 kpps");
        assert_eq!(format_rate(2_345_678.0), "2.35 Mpps");
        assert_eq!(format_bits(9_870_000_000.0), "9.87 Gbit/s");
    }

    #[test]
    fn summary_line() {
        let done = Summary {
            packets: 1000,
            filtered: 0,
            bytes: 64_000,
            elapsed: Duration::from_millis(500),
            interrupted: false,
        };
        assert_eq!(
            summary("capture.pcap", &done),
            "mirror: replayed capture.pcap: 1000 packets, 64000 bytes in 0.50 s \
             (2.0 kpps, 1.02 Mbit/s)"
        );
        let stopped = Summary {
            interrupted: true,
            ..done
        };
        assert!(summary("c.pcap", &stopped).starts_with("mirror: replayed c.pcap (interrupted): "));
        let filtered = Summary {
            filtered: 250,
            ..done
        };
        assert!(summary("c.pcap", &filtered).ends_with("Mbit/s), 250 left out by --filter"));
    }
}
