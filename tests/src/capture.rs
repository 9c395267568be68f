//! tcpdump captures in a namespace, and reading pcap files.

use std::{
    fs::File,
    io::{BufReader, Read},
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use pcap_file::pcap::PcapReader;

use crate::{netns::Netns, proc::Background, scratch::ScratchDir};

/// Which packets tcpdump records (`-Q`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Received by the interface only.
    In,
    /// Both directions.
    InOut,
}

impl Direction {
    fn flag(self) -> &'static str {
        match self {
            Self::In => "in",
            Self::InOut => "inout",
        }
    }
}

/// tcpdump's own counters, printed when it stops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureStats {
    pub captured: u64,
    pub received_by_filter: u64,
    pub dropped_by_kernel: u64,
}

/// A running `tcpdump -w` in a namespace; the file lives until the `Capture` is dropped.
pub struct Capture {
    label: String,
    process: Background,
    path: PathBuf,
    stats: Option<CaptureStats>,
    _dir: ScratchDir,
}

/// tcpdump's kernel buffer (`-B`, in KiB): large enough for a burst of mirrored TCP segments.
const BUFFER_KIB: &str = "65536";

impl Capture {
    /// Starts `tcpdump -i IF -Q DIR -U --immediate-mode -n -B 65536 -Z root -w FILE [-s SNAPLEN]`
    /// in `ns` and waits until it is listening.
    pub fn start(ns: &Netns, iface: &str, dir: Direction, snaplen: Option<u32>) -> Result<Self> {
        Self::start_filtered(ns, iface, dir, snaplen, None)
    }

    /// [`Capture::start`] with a tcpdump filter expression (such as `ip proto 47`): only the
    /// packets it matches are written.
    pub fn start_filtered(
        ns: &Netns,
        iface: &str,
        dir: Direction,
        snaplen: Option<u32>,
        filter: Option<&str>,
    ) -> Result<Self> {
        let scratch = ScratchDir::new()?;
        // The .pcap extension keeps tcpdump's AppArmor profile (where there is one) happy.
        let path = scratch.join(&format!("{iface}.pcap"));
        let label = format!("tcpdump {}:{iface}", ns.name());
        let mut args: Vec<String> = [
            "-i",
            iface,
            "-Q",
            dir.flag(),
            "-U",
            // Without it libpcap hands packets over only when a ring block fills or times out:
            // a file can look complete ("quiet") while packets wait, and on SIGINT tcpdump exits
            // without writing the ones still in the ring (yet reports 0 dropped).
            "--immediate-mode",
            "-n",
            "-B",
            BUFFER_KIB,
            // Stay root: some builds drop to a `tcpdump` user that cannot write the scratch dir.
            "-Z",
            "root",
            "-w",
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        args.push(path.to_string_lossy().into_owned());
        if let Some(snaplen) = snaplen {
            args.extend(["-s".to_owned(), snaplen.to_string()]);
        }
        if let Some(filter) = filter {
            args.push(filter.to_owned());
        }
        let mut process = ns.spawn(&label, "tcpdump", &args)?;
        process
            .wait_for_stderr("\"listening on\"", Duration::from_secs(10), |l| {
                l.contains("listening on")
            })
            .with_context(|| format!("starting {label}"))?;
        Ok(Self {
            label,
            process,
            path,
            stats: None,
            _dir: scratch,
        })
    }

    /// The capture file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Complete frames written so far (tcpdump `-U` writes each packet as it comes).
    pub fn frames_so_far(&self) -> usize {
        read_frames(&self.path, false).map_or(0, |frames| frames.len())
    }

    /// Waits until at least `count` frames are in the file, then `settle` more for stragglers
    /// (so that extra frames are caught too); returns how many frames there are.
    pub fn wait_for_frames(&self, count: usize, timeout: Duration, settle: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        while self.frames_so_far() < count && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        thread::sleep(settle);
        self.frames_so_far()
    }

    /// Waits until no new frame has arrived for `quiet` (or `timeout` passed); returns the count.
    pub fn wait_until_quiet(&self, quiet: Duration, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        let mut count = self.frames_so_far();
        let mut since = Instant::now();
        while Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
            let now = self.frames_so_far();
            if now != count {
                count = now;
                since = Instant::now();
            } else if since.elapsed() >= quiet {
                break;
            }
        }
        count
    }

    /// Stops tcpdump (SIGINT) and waits until it has written everything; returns its counters.
    pub fn stop(&mut self) -> Result<CaptureStats> {
        if let Some(stats) = self.stats {
            return Ok(stats);
        }
        let status = self
            .process
            .stop()
            .with_context(|| format!("stopping {}", self.label))?;
        if !status.success() {
            bail!("{} exited with {status}", self.label);
        }
        let stats = parse_stats(&self.process.stderr_lines());
        self.stats = Some(stats);
        Ok(stats)
    }

    /// Stops the capture, checks that tcpdump itself lost nothing (see
    /// [`CaptureStats::check_complete`]), and returns the frames.
    pub fn finish(&mut self) -> Result<Vec<Vec<u8>>> {
        let stats = self.stop()?;
        stats.check_complete(&self.label)?;
        read_pcap(&self.path)
    }

    /// [`Capture::finish`], returning the frames with their capture times.
    pub fn finish_records(&mut self) -> Result<Vec<Record>> {
        let stats = self.stop()?;
        stats.check_complete(&self.label)?;
        read_records(&self.path)
    }
}

/// One captured frame and when it was captured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Capture time, since the Unix epoch (tcpdump writes microseconds).
    pub timestamp: Duration,
    /// The frame's length on the wire (more than `data.len()` when the snaplen cut it).
    pub orig_len: u32,
    pub data: Vec<u8>,
}

/// Reads every frame of a pcap file with its capture time.
pub fn read_records(path: &Path) -> Result<Vec<Record>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut reader = PcapReader::new(bytes.as_slice())
        .with_context(|| format!("parsing the header of {}", path.display()))?;
    let nanos = matches!(
        reader.header().ts_resolution,
        pcap_file::TsResolution::NanoSecond
    );
    let mut records = Vec::new();
    while let Some(packet) = reader.next_raw_packet() {
        let packet = packet.with_context(|| {
            format!("parsing frame {} of {}", records.len() + 1, path.display())
        })?;
        let fraction = if nanos {
            Duration::from_nanos(u64::from(packet.ts_frac))
        } else {
            Duration::from_micros(u64::from(packet.ts_frac))
        };
        records.push(Record {
            timestamp: Duration::from_secs(u64::from(packet.ts_sec)) + fraction,
            orig_len: packet.orig_len,
            data: packet.data.into_owned(),
        });
    }
    Ok(records)
}

impl CaptureStats {
    /// Fails unless tcpdump wrote every packet its filter accepted: none dropped for lack of
    /// buffer, none left unread in the ring at exit.
    ///
    /// libpcap applies `-Q` in user space, after counting: "received by filter" includes packets
    /// of the other direction. So the check holds for `-Q inout`, and for `-Q in` only on an
    /// interface that sends nothing (such as the remote VTEP).
    pub fn check_complete(&self, label: &str) -> Result<()> {
        if self.dropped_by_kernel != 0 || self.captured != self.received_by_filter {
            bail!(
                "{label} wrote {} of the {} packets its filter accepted ({} dropped for lack of buffer): the \
                 capture cannot judge the mirror",
                self.captured,
                self.received_by_filter,
                self.dropped_by_kernel
            );
        }
        Ok(())
    }
}

fn parse_stats(lines: &[String]) -> CaptureStats {
    let mut stats = CaptureStats::default();
    for line in lines {
        let mut words = line.split_whitespace();
        let (Some(number), Some(_packets)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(number) = number.parse() else { continue };
        let rest: Vec<&str> = words.collect();
        match rest.as_slice() {
            ["captured"] => stats.captured = number,
            ["received", "by", "filter"] => stats.received_by_filter = number,
            ["dropped", "by", "kernel"] => stats.dropped_by_kernel = number,
            _ => {}
        }
    }
    stats
}

/// Reads every frame of a pcap file.
pub fn read_pcap(path: &Path) -> Result<Vec<Vec<u8>>> {
    read_frames(path, true)
}

/// Reads frames; unless `strict`, a truncated tail (a file still being written) ends the list.
fn read_frames(path: &Path, strict: bool) -> Result<Vec<Vec<u8>>> {
    let mut bytes = Vec::new();
    BufReader::new(File::open(path).with_context(|| format!("opening {}", path.display()))?)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    if bytes.is_empty() && !strict {
        return Ok(Vec::new());
    }
    let mut reader = PcapReader::new(bytes.as_slice())
        .with_context(|| format!("parsing the header of {}", path.display()))?;
    let mut frames = Vec::new();
    // Raw packets: pcap-file 2.0 rejects any packet whose original length exceeds the snaplen,
    // which is every truncated packet of a `-s` capture.
    while let Some(packet) = reader.next_raw_packet() {
        match packet {
            Ok(packet) => frames.push(packet.data.into_owned()),
            Err(err) if strict => {
                return Err(err).with_context(|| {
                    format!("parsing frame {} of {}", frames.len() + 1, path.display())
                });
            }
            Err(_) => break,
        }
    }
    Ok(frames)
}

/// Compares two frame lists; `None` when they are identical (same count, order and bytes), else
/// a description of the first difference.
pub fn diff_frames(expected: &[Vec<u8>], got: &[Vec<u8>]) -> Option<String> {
    if let Some((i, (want, have))) = expected
        .iter()
        .zip(got)
        .enumerate()
        .find(|(_, (w, h))| w != h)
    {
        let offset = want
            .iter()
            .zip(have.iter())
            .position(|(a, b)| a != b)
            .unwrap_or(want.len().min(have.len()));
        return Some(format!(
            "frame {} differs ({} vs {} bytes, first difference at byte {offset}):\n  expected {}\n  got      {}\n\
             ({} frames expected, {} got)",
            i + 1,
            want.len(),
            have.len(),
            hex(want),
            hex(have),
            expected.len(),
            got.len()
        ));
    }
    (expected.len() != got.len()).then(|| {
        format!(
            "{} frames expected, {} got; the common {} frames are identical",
            expected.len(),
            got.len(),
            expected.len().min(got.len())
        )
    })
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut text = String::new();
    for byte in bytes.iter().take(96) {
        let _ = write!(text, "{byte:02x}");
    }
    if bytes.len() > 96 {
        text.push_str("...");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffs_frames() {
        let a = vec![vec![1, 2, 3], vec![4, 5]];
        assert_eq!(diff_frames(&a, &a), None);
        let b = vec![vec![1, 2, 3], vec![4, 6]];
        assert!(diff_frames(&a, &b).unwrap().starts_with("frame 2 differs"));
        assert!(
            diff_frames(&a, &a[..1])
                .unwrap()
                .starts_with("2 frames expected, 1 got")
        );
    }

    #[test]
    fn parses_tcpdump_counters() {
        let lines = [
            "tcpdump: listening on vxlan0, link-type EN10MB (Ethernet), snapshot length 262144 bytes",
            "200 packets captured",
            "201 packets received by filter",
            "3 packets dropped by kernel",
        ]
        .map(String::from);
        assert_eq!(
            parse_stats(&lines),
            CaptureStats {
                captured: 200,
                received_by_filter: 201,
                dropped_by_kernel: 3
            }
        );
    }
}
