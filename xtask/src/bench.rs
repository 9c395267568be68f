//! `cargo xtask bench`: throughput measured in a world of network namespaces of its own, each
//! scenario against the kernel doing the same job, in the same run, on the same core.
//!
//! A scenario is a function from the [`Bench`] (the release binary, the world, the pinned CPU,
//! the number of runs) to [`Row`]s: one per subject (the mirror, the kernel baseline), each
//! with its runs. The table and the JSON summary under `target/bench/` are made from the rows,
//! so a new scenario is one more entry in [`SCENARIOS`].
//!
//! Scenarios:
//! - `replay-64b-vxlan`: a pcap of 64-byte UDP frames replayed as fast as possible by `mirror
//!   replay` into VxLAN towards the remote namespace, against `tcpreplay --topspeed` of the same
//!   file onto a kernel `vxlan` device in the node with the same remote. Sent packets per second
//!   (the replay's summary line, tcpreplay's `Actual:` line) and packets per second decapsulated
//!   by the remote's kernel VTEP (its rx counter, read once it stops moving).

use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};
use clap::Args;
use mirror_tests::{
    Background, World,
    agent::{target_dir, workspace_root},
    is_root,
    proc::{describe, set_echo},
    replay::{LINKTYPE_ETHERNET, ReplaySummary, udp_frame, write_pcap},
    world::{NODE_UPLINK_IF, NODE_UPLINK_IP, REMOTE_IP, REMOTE_VTEP_IF},
};

use crate::{
    cargo::{cargo, status},
    setup::setup,
};

/// Options of `cargo xtask bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Runs per subject and scenario (the median is reported; at least 3).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(3..))]
    pub runs: u32,
    /// The CPU the measured sender is pinned to (`taskset -c`).
    #[arg(long, default_value_t = 1)]
    pub cpu: u32,
    /// Frames in the synthetic capture file.
    #[arg(long, default_value_t = 200_000)]
    pub frames: u32,
    /// Times each sender plays the file per run (`--loop`), to make a run long enough to time.
    #[arg(long, default_value_t = 5)]
    pub loops: u32,
    /// Only the scenarios whose name contains this.
    #[arg(long)]
    pub only: Option<String>,
}

/// VxLAN network identifier of the bench world's remote VTEP.
const VNI: u32 = 42;
/// The node's kernel VxLAN device of the baseline.
const KERNEL_VTEP: &str = "benchvx0";
/// Longest a run may take.
const RUN_TIMEOUT: Duration = Duration::from_mins(2);

/// What every scenario gets.
pub struct Bench {
    pub args: BenchArgs,
    /// The release build of `mirror`.
    pub bin: PathBuf,
    pub world: World,
    /// `target/bench`.
    pub out: PathBuf,
}

/// One scenario: a name (for `--only` and the JSON file) and what it measures.
struct Scenario {
    name: &'static str,
    title: &'static str,
    run: fn(&Bench) -> Result<Vec<Row>>,
}

const SCENARIOS: &[Scenario] = &[Scenario {
    name: "replay-64b-vxlan",
    title: "64-byte UDP frames from a pcap, as fast as possible, into VxLAN to a namespace",
    run: replay_64b_vxlan,
}];

/// One subject of a scenario (the mirror, or the kernel baseline) and its runs.
pub struct Row {
    pub subject: &'static str,
    /// The command line of one run.
    pub command: String,
    pub runs: Vec<Measure>,
    /// The figures of the mirror are given as a ratio to this one's.
    pub baseline: bool,
}

/// What one run measured.
#[derive(Clone, Copy, Debug, Default)]
pub struct Measure {
    /// Packets the sender says it sent.
    pub sent: u64,
    /// Packets that arrived behind the remote VTEP.
    pub arrived: u64,
    /// The sender's own time for them.
    pub seconds: f64,
}

impl Measure {
    fn sent_pps(&self) -> f64 {
        per_second(self.sent, self.seconds)
    }

    fn arrived_pps(&self) -> f64 {
        per_second(self.arrived, self.seconds)
    }

    fn loss_pct(&self) -> f64 {
        if self.sent == 0 {
            return 0.0;
        }
        100.0 * (to_f64(self.sent) - to_f64(self.arrived)) / to_f64(self.sent)
    }
}

impl Row {
    fn median(&self, figure: impl Fn(&Measure) -> f64) -> f64 {
        median(self.runs.iter().map(figure).collect())
    }
}

pub fn bench(args: BenchArgs) -> Result<()> {
    setup()?;
    if !is_root() {
        bail!("the bench needs root: it builds network namespaces");
    }
    ensure!(
        available_cpus()?.contains(&args.cpu),
        "CPU {} is not one this process may run on",
        args.cpu
    );
    println!("== building the release binary (cargo build --release -p mirror-user --bin mirror)");
    status(
        &mut cargo(["build", "--release", "-p", "mirror-user", "--bin", "mirror"]),
        "building the release mirror binary",
    )?;
    let bin = target_dir().join("release").join("mirror");
    ensure!(bin.is_file(), "{} was not built", bin.display());
    let out = target_dir().join("bench");
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    set_echo(false);
    let world = World::new(VNI).context("building the bench world")?;
    let bench = Bench {
        args,
        bin,
        world,
        out,
    };
    let started = Instant::now();
    let mut any = false;
    for scenario in SCENARIOS {
        if let Some(only) = &bench.args.only
            && !scenario.name.contains(only.as_str())
        {
            continue;
        }
        any = true;
        println!("\n== {}: {}", scenario.name, scenario.title);
        let rows = (scenario.run)(&bench).with_context(|| format!("scenario {}", scenario.name))?;
        print_table(&bench, scenario, &rows);
        let json = bench.out.join(format!("{}.json", scenario.name));
        fs::write(&json, summary_json(&bench, scenario, &rows))
            .with_context(|| format!("writing {}", json.display()))?;
        println!("   summary: {}", relative(&json));
    }
    ensure!(any, "no scenario matches --only");
    println!("\nbench done in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Scenario replay-64b-vxlan
// ---------------------------------------------------------------------------------------------

fn replay_64b_vxlan(bench: &Bench) -> Result<Vec<Row>> {
    let args = &bench.args;
    let pcap = bench.out.join(format!("udp64-{}.pcap", args.frames));
    write_udp64(&pcap, args.frames)?;
    let world = &bench.world;
    let (vni, port) = (VNI.to_string(), world.config.vxlan_port.to_string());
    world
        .node
        .ip([
            "link",
            "add",
            KERNEL_VTEP,
            "type",
            "vxlan",
            "id",
            &vni,
            "dstport",
            &port,
            "local",
            NODE_UPLINK_IP,
            "remote",
            REMOTE_IP,
            "dev",
            NODE_UPLINK_IF,
            "nolearning",
        ])
        .context("creating the baseline's kernel VxLAN device in the node")?;
    world.node.ip(["link", "set", KERNEL_VTEP, "up"])?;

    let cpu = args.cpu.to_string();
    let loops = args.loops.to_string();
    let file = pcap.to_string_lossy().into_owned();
    let bin = bench.bin.to_string_lossy().into_owned();
    let mirror_argv: Vec<&str> = vec![
        "-c", &cpu, &bin, "replay", "--pcap", &file, "--tunnel", "vxlan", "--remote", REMOTE_IP,
        "--vni", &vni, "--loop", &loops,
    ];
    let loop_flag = format!("--loop={loops}");
    let kernel_argv: Vec<&str> = vec![
        "-c",
        &cpu,
        "tcpreplay",
        "--topspeed",
        "--preload-pcap",
        &loop_flag,
        "-i",
        KERNEL_VTEP,
        &file,
    ];
    let mut mirror = Row {
        subject: "mirror replay",
        command: String::new(),
        runs: Vec::new(),
        baseline: false,
    };
    let mut kernel = Row {
        subject: "kernel (tcpreplay -> vxlan dev)",
        command: String::new(),
        runs: Vec::new(),
        baseline: true,
    };
    let expected = u64::from(args.frames) * u64::from(args.loops);
    // Alternating, so that a drift of the machine's speed hits both alike.
    for run in 1..=args.runs {
        for row in [&mut mirror, &mut kernel] {
            let argv = if row.baseline {
                &kernel_argv
            } else {
                &mirror_argv
            };
            let (command, measure) = measure_run(bench, argv, row.baseline)?;
            println!(
                "   run {run} {:<32} sent {:>10.0} pps, arrived {:>10.0} pps ({} of {expected} packets \
                 arrived, {:.3} s)",
                row.subject,
                measure.sent_pps(),
                measure.arrived_pps(),
                measure.arrived,
                measure.seconds
            );
            ensure!(
                measure.sent == expected,
                "`{command}` sent {} packets, expected {expected}",
                measure.sent
            );
            row.command = command;
            row.runs.push(measure);
        }
    }
    world.node.ip(["link", "del", KERNEL_VTEP])?;
    Ok(vec![mirror, kernel])
}

/// A pcap of `frames` 64-byte UDP frames, 1 µs apart, at `path` (written unless it is there).
fn write_udp64(path: &Path, frames: u32) -> Result<()> {
    let expected = 24 + u64::from(frames) * (16 + 64);
    if fs::metadata(path).is_ok_and(|m| m.len() == expected) {
        return Ok(());
    }
    let data: Vec<Vec<u8>> = (0..frames).map(|i| udp_frame(i, 64)).collect();
    let start = Duration::from_secs(1_700_000_000);
    let records: Vec<(Duration, &[u8])> = data
        .iter()
        .zip(0_u64..)
        .map(|(frame, i)| (start + Duration::from_micros(i), frame.as_slice()))
        .collect();
    fs::write(path, write_pcap(LINKTYPE_ETHERNET, &records).bytes)
        .with_context(|| format!("writing {}", path.display()))
}

/// Runs `taskset ARGV` in the node once and counts what the remote VTEP decapsulated.
fn measure_run(bench: &Bench, argv: &[&str], kernel: bool) -> Result<(String, Measure)> {
    let world = &bench.world;
    let before = world.remote.link_stats(REMOTE_VTEP_IF)?.rx_packets;
    let mut cmd = world.node.command("taskset", argv);
    let command = format!("taskset {}", argv.join(" "));
    let mut process = Background::spawn("bench", &mut cmd)?;
    let status = process
        .wait(RUN_TIMEOUT)
        .with_context(|| format!("running `{}`", describe(&cmd)))?;
    let (stdout, stderr) = (process.stdout_lines(), process.stderr_lines());
    ensure!(
        status.success(),
        "`{command}` exited with {status}: {}",
        stderr.join("\n")
    );
    let arrived = settled_rx(bench)? - before;
    let (sent, seconds) = if kernel {
        tcpreplay_actual(&stdout).with_context(|| {
            format!(
                "`{command}` printed no `Actual:` line: {}",
                stdout.join("\n")
            )
        })?
    } else {
        let summary = stderr
            .iter()
            .find_map(|l| ReplaySummary::parse(l))
            .with_context(|| format!("`{command}` printed no summary: {}", stderr.join("\n")))?;
        (summary.packets, summary.seconds)
    };
    if kernel && let Some(failed) = stdout.iter().find(|l| l.contains("Failed packets:")) {
        let count: u64 = failed
            .split_whitespace()
            .last()
            .and_then(|n| n.parse().ok())
            .unwrap_or_default();
        ensure!(count == 0, "`{command}`: {}", failed.trim());
    }
    ensure!(seconds > 0.0, "`{command}` took no time to send");
    Ok((
        command,
        Measure {
            sent,
            arrived,
            seconds,
        },
    ))
}

/// The remote VTEP's rx packet counter once it has stopped moving.
fn settled_rx(bench: &Bench) -> Result<u64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = bench.world.remote.link_stats(REMOTE_VTEP_IF)?.rx_packets;
    loop {
        thread::sleep(Duration::from_millis(200));
        let now = bench.world.remote.link_stats(REMOTE_VTEP_IF)?.rx_packets;
        if now == last || Instant::now() >= deadline {
            return Ok(now);
        }
        last = now;
    }
}

/// `Actual: 1000000 packets (64000000 bytes) sent in 1.23 seconds`: packets and seconds.
fn tcpreplay_actual(stdout: &[String]) -> Option<(u64, f64)> {
    let line = stdout
        .iter()
        .find_map(|l| l.trim().strip_prefix("Actual: "))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let packets = words.first()?.parse().ok()?;
    let at = words.iter().position(|w| *w == "in")?;
    let seconds = words.get(at + 1)?.parse().ok()?;
    Some((packets, seconds))
}

// ---------------------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------------------

fn print_table(bench: &Bench, scenario: &Scenario, rows: &[Row]) {
    let baseline = rows.iter().find(|r| r.baseline);
    println!(
        "\n   {} ({} runs each, medians; sender pinned to CPU {}; {} frames x {} passes)",
        scenario.name, bench.args.runs, bench.args.cpu, bench.args.frames, bench.args.loops
    );
    println!(
        "   | {:<32} | {:>12} | {:>12} | {:>6} | {:>10} | {:>10} |",
        "subject", "sent pps", "arrived pps", "loss %", "sent ratio", "arr. ratio"
    );
    println!(
        "   |{:-<34}|{:->14}|{:->14}|{:->8}|{:->12}|{:->12}|",
        "", "", "", "", "", ""
    );
    for row in rows {
        let (sent, arrived) = (
            row.median(Measure::sent_pps),
            row.median(Measure::arrived_pps),
        );
        let ratio = |figure: fn(&Measure) -> f64, ours: f64| {
            baseline.map_or_else(String::new, |b| format!("{:.2}x", ours / b.median(figure)))
        };
        println!(
            "   | {:<32} | {:>12.0} | {:>12.0} | {:>6.2} | {:>10} | {:>10} |",
            row.subject,
            sent,
            arrived,
            row.median(Measure::loss_pct),
            ratio(Measure::sent_pps, sent),
            ratio(Measure::arrived_pps, arrived),
        );
    }
    for row in rows {
        println!("   {}: {}", row.subject, row.command);
    }
}

fn summary_json(bench: &Bench, scenario: &Scenario, rows: &[Row]) -> String {
    let baseline = rows.iter().find(|r| r.baseline);
    let mut json = String::from("{\n");
    let _ = writeln!(json, "  \"scenario\": \"{}\",", scenario.name);
    let _ = writeln!(json, "  \"title\": \"{}\",", scenario.title);
    let _ = writeln!(json, "  \"runs\": {},", bench.args.runs);
    let _ = writeln!(json, "  \"cpu\": {},", bench.args.cpu);
    let _ = writeln!(json, "  \"frames\": {},", bench.args.frames);
    let _ = writeln!(json, "  \"loops\": {},", bench.args.loops);
    json.push_str("  \"subjects\": [\n");
    for (i, row) in rows.iter().enumerate() {
        let (sent, arrived) = (
            row.median(Measure::sent_pps),
            row.median(Measure::arrived_pps),
        );
        let ratio = |figure: fn(&Measure) -> f64, ours: f64| {
            baseline.map_or_else(
                || "null".to_owned(),
                |b| format!("{:.4}", ours / b.median(figure)),
            )
        };
        let runs: Vec<String> = row
            .runs
            .iter()
            .map(|m| {
                format!(
                    "{{\"sent\": {}, \"arrived\": {}, \"seconds\": {:.4}}}",
                    m.sent, m.arrived, m.seconds
                )
            })
            .collect();
        let _ = write!(
            json,
            "    {{\"subject\": \"{}\", \"baseline\": {}, \"command\": \"{}\", \"median_sent_pps\": {sent:.0}, \
             \"median_arrived_pps\": {arrived:.0}, \"median_loss_pct\": {:.3}, \"sent_ratio_vs_kernel\": {}, \
             \"arrived_ratio_vs_kernel\": {}, \"run_seconds\": {:.3}, \"runs\": [{}]}}",
            row.subject,
            row.baseline,
            row.command.replace('\\', "\\\\").replace('"', "\\\""),
            row.median(Measure::loss_pct),
            ratio(Measure::sent_pps, sent),
            ratio(Measure::arrived_pps, arrived),
            row.median(|m| m.seconds),
            runs.join(", ")
        );
        json.push_str(if i + 1 < rows.len() { ",\n" } else { "\n" });
    }
    json.push_str("  ]\n}\n");
    json
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        f64::midpoint(values[mid - 1], values[mid])
    }
}

fn per_second(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        to_f64(count) / seconds
    } else {
        0.0
    }
}

#[expect(
    clippy::cast_precision_loss,
    reason = "packet counts below 2^52, shown as rates"
)]
fn to_f64(count: u64) -> f64 {
    count as f64
}

/// The CPUs this process may run on (`sched_getaffinity`).
fn available_cpus() -> Result<Vec<u32>> {
    let status = fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let list = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .context("no Cpus_allowed_list in /proc/self/status")?;
    let mut cpus = Vec::new();
    for part in list.trim().split(',') {
        let (first, last) = part.split_once('-').unwrap_or((part, part));
        let (first, last): (u32, u32) = (
            first.parse().context("parsing Cpus_allowed_list")?,
            last.parse().context("parsing Cpus_allowed_list")?,
        );
        cpus.extend(first..=last);
    }
    Ok(cpus)
}

/// `path` relative to the workspace root when it is inside it.
fn relative(path: &Path) -> String {
    path.strip_prefix(workspace_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert!((median(vec![3.0, 1.0, 2.0]) - 2.0).abs() < f64::EPSILON);
        assert!((median(vec![4.0, 1.0, 2.0, 3.0]) - 2.5).abs() < f64::EPSILON);
    }

    #[test]
    fn reads_tcpreplay_output() {
        let stdout = [
            "Actual: 1000000 packets (64000000 bytes) sent in 1.23 seconds",
            "Rated: 52032520.3 Bps, 416.26 Mbps, 813008.13 pps",
        ]
        .map(String::from);
        assert_eq!(tcpreplay_actual(&stdout), Some((1_000_000, 1.23)));
    }
}
