//! CPU time and memory from /proc: the whole machine (`/proc/stat`) and one process
//! (`/proc/PID/stat`, `/proc/PID/status`).

use std::{fs, process::Command, thread, time::Duration};

use anyhow::{Context as _, Result, bail, ensure};

use super::stats::to_f64;

/// The machine's CPU time so far, in clock ticks (`USER_HZ`), summed over all CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MachineCpu {
    /// user + system + irq + softirq + steal. Not `nice`: everything measured runs at nice 0,
    /// and niced background work (a build, a fuzzer) would otherwise count as the mirror's.
    pub busy: u64,
    /// busy + nice + idle + iowait.
    pub total: u64,
}

impl MachineCpu {
    /// Reads `/proc/stat`.
    pub fn now() -> Result<Self> {
        let text = fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
        Self::parse(&text).context("no `cpu` line in /proc/stat")
    }

    /// The first line of `/proc/stat`: `cpu user nice system idle iowait irq softirq steal ...`.
    fn parse(text: &str) -> Option<Self> {
        let line = text.lines().find(|l| l.starts_with("cpu "))?;
        let fields: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        let field = |i: usize| fields.get(i).copied().unwrap_or_default();
        let busy = field(0) + field(2) + field(5) + field(6) + field(7);
        Some(Self {
            busy,
            total: busy + field(1) + field(3) + field(4),
        })
    }

    /// Busy ticks from `self` to `later`.
    pub fn busy_since(self, earlier: Self) -> u64 {
        self.busy.saturating_sub(earlier.busy)
    }
}

/// The share of the machine (0-100 %) that was busy over `window`: other work, before a bench.
pub fn machine_busy_pct(window: Duration) -> Result<f64> {
    let before = MachineCpu::now()?;
    thread::sleep(window);
    let after = MachineCpu::now()?;
    let total = after.total.saturating_sub(before.total);
    if total == 0 {
        return Ok(0.0);
    }
    Ok(100.0 * to_f64(after.busy_since(before)) / to_f64(total))
}

/// The process whose CPU and memory a run measures beside the machine's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Watched {
    /// One process (the agent): its threads' time and its peak RSS.
    Process(u32),
    /// A process and all its descendants (a peer started through a shell): their time, and the
    /// peak RSS of the largest.
    Tree(u32),
}

impl Watched {
    fn ticks(self) -> Result<u64> {
        match self {
            Self::Process(pid) => process_ticks(pid),
            Self::Tree(pid) => tree_ticks(pid),
        }
    }

    fn peak_rss_kib(self) -> Result<u64> {
        match self {
            Self::Process(pid) => peak_rss_kib(pid),
            Self::Tree(root) => tree(root)?
                .into_iter()
                // A kernel-side or exiting process has no VmHWM: not the largest.
                .filter_map(|p| peak_rss_kib(p.pid).ok())
                .max()
                .with_context(|| format!("no VmHWM in the process tree of {root}")),
        }
    }
}

/// CPU time (and the watched process's peak memory) over a window of a run.
pub struct CpuMeter {
    machine: MachineCpu,
    /// The watched process and its CPU ticks at the start.
    process: Option<(Watched, u64)>,
    us_per_tick: f64,
}

/// What a [`CpuMeter`] measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CpuUse {
    /// Busy time of the whole machine, µs.
    pub machine_us: f64,
    /// The process's own time, µs.
    pub process_us: Option<f64>,
    /// The process's peak resident set (`VmHWM`), KiB.
    pub peak_rss_kib: Option<u64>,
}

impl CpuMeter {
    /// Starts measuring the machine and, if given, a process; `clock_ticks` is `USER_HZ`.
    pub fn start(watched: Option<Watched>, clock_ticks: u64) -> Result<Self> {
        Ok(Self {
            machine: MachineCpu::now()?,
            process: watched
                .map(|w| Ok::<_, anyhow::Error>((w, w.ticks()?)))
                .transpose()?,
            us_per_tick: 1e6 / to_f64(clock_ticks),
        })
    }

    /// What was used since [`CpuMeter::start`].
    pub fn read(&self) -> Result<CpuUse> {
        let machine = MachineCpu::now()?.busy_since(self.machine);
        let (process_us, peak_rss_kib) = match self.process {
            Some((watched, before)) => (
                Some(to_f64(watched.ticks()?.saturating_sub(before)) * self.us_per_tick),
                Some(watched.peak_rss_kib()?),
            ),
            None => (None, None),
        };
        Ok(CpuUse {
            machine_us: to_f64(machine) * self.us_per_tick,
            process_us,
            peak_rss_kib,
        })
    }
}

/// User + system CPU ticks of process `pid`, all its threads (`/proc/PID/stat` fields 14, 15).
pub fn process_ticks(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/stat");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_process_ticks(&text).with_context(|| format!("no utime/stime in {path}"))
}

fn parse_process_ticks(text: &str) -> Option<u64> {
    let stat = ProcStat::parse(text)?;
    Some(stat.utime + stat.stime)
}

/// The fields of `/proc/PID/stat` the bench reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct ProcStat {
    pid: u32,
    ppid: u32,
    utime: u64,
    stime: u64,
    /// Time of the children it has waited for.
    cutime: u64,
    cstime: u64,
}

impl ProcStat {
    fn parse(text: &str) -> Option<Self> {
        let (pid, _) = text.split_once(' ')?;
        // The command name is in parentheses and may hold spaces: count fields after the last ')'.
        let (_, rest) = text.rsplit_once(')')?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // After the name, field 3 (state) is index 0: ppid (4) is 1, utime (14) 11, stime 12,
        // cutime 13, cstime 14.
        let field = |i: usize| fields.get(i)?.parse::<u64>().ok();
        Some(Self {
            pid: pid.parse().ok()?,
            ppid: fields.get(1)?.parse().ok()?,
            utime: field(11)?,
            stime: field(12)?,
            cutime: field(13)?,
            cstime: field(14)?,
        })
    }
}

/// `root` and its living descendants.
fn tree(root: u32) -> Result<Vec<ProcStat>> {
    let mut all = Vec::new();
    for entry in fs::read_dir("/proc").context("listing /proc")? {
        let Ok(entry) = entry else { continue };
        if !entry
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        // A process may exit between the listing and the read: skip it.
        if let Ok(text) = fs::read_to_string(entry.path().join("stat"))
            && let Some(stat) = ProcStat::parse(&text)
        {
            all.push(stat);
        }
    }
    Ok(descendants(root, &all))
}

fn descendants(root: u32, all: &[ProcStat]) -> Vec<ProcStat> {
    let mut found: Vec<ProcStat> = all.iter().filter(|p| p.pid == root).copied().collect();
    let mut next = 0;
    while let Some(parent) = found.get(next).map(|p| p.pid) {
        found.extend(all.iter().filter(|p| p.ppid == parent && p.pid != root));
        next += 1;
    }
    found
}

/// CPU ticks of process `root` and every descendant, counting the children they have reaped
/// (cutime, cstime), so that a helper that came and went in the window still counts.
pub fn tree_ticks(root: u32) -> Result<u64> {
    let tree = tree(root)?;
    ensure!(!tree.is_empty(), "process {root} is gone");
    Ok(tree
        .iter()
        .map(|p| p.utime + p.stime + p.cutime + p.cstime)
        .sum())
}

/// Peak resident set size of process `pid` in KiB (`VmHWM` in `/proc/PID/status`).
pub fn peak_rss_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_vm_hwm(&text).with_context(|| format!("no VmHWM in {path}"))
}

fn parse_vm_hwm(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Clock ticks per second of /proc's CPU times (`getconf CLK_TCK`, 100 on Linux).
pub fn clock_ticks() -> Result<u64> {
    let output = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .context("running getconf CLK_TCK")?;
    let text = String::from_utf8_lossy(&output.stdout);
    match text.trim().parse() {
        Ok(ticks) if ticks > 0 => Ok(ticks),
        _ => bail!("getconf CLK_TCK printed {:?}", text.trim()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_proc_stat() {
        let text =
            "cpu  841003 7149 179520 700926 9310 10 8330 6751 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n";
        let cpu = MachineCpu::parse(text).unwrap();
        assert_eq!(cpu.busy, 841_003 + 179_520 + 10 + 8330 + 6751);
        assert_eq!(cpu.total, cpu.busy + 7149 + 700_926 + 9310);
        let later = MachineCpu {
            busy: cpu.busy + 5,
            total: cpu.total + 9,
        };
        assert_eq!(later.busy_since(cpu), 5);
    }

    #[test]
    fn reads_process_times_whatever_the_name() {
        let text = "4242 (mir ror) S 1 4242 4242 0 -1 4194560 300 0 0 0 1234 56 0 0 20 0 5 0 100 \
                    1000000 500 18446744073709551615";
        assert_eq!(parse_process_ticks(text), Some(1290));
        assert_eq!(parse_process_ticks("4242 (x) S 1"), None);
    }

    #[test]
    fn a_tree_is_the_root_and_its_descendants() {
        let p = |pid, ppid| ProcStat {
            pid,
            ppid,
            utime: 1,
            ..ProcStat::default()
        };
        let all = [
            p(1, 0),
            p(10, 1),
            p(11, 10),
            p(12, 11),
            p(13, 10),
            p(20, 1),
            p(21, 20),
        ];
        let pids: Vec<u32> = descendants(10, &all).iter().map(|p| p.pid).collect();
        assert_eq!(pids, [10, 11, 13, 12]);
        assert!(descendants(99, &all).is_empty());
        let stat = ProcStat::parse("4242 (s h) S 77 4242 4242 0 -1 0 0 0 0 0 5 6 7 8 20").unwrap();
        assert_eq!(
            (stat.pid, stat.ppid, stat.cutime, stat.cstime),
            (4242, 77, 7, 8)
        );
    }

    #[test]
    fn reads_peak_rss() {
        let text =
            "Name:\tmirror\nVmPeak:\t  200000 kB\nVmHWM:\t   12345 kB\nVmRSS:\t   12000 kB\n";
        assert_eq!(parse_vm_hwm(text), Some(12_345));
        assert_eq!(parse_vm_hwm("Name:\tx\n"), None);
    }
}
