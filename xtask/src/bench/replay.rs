//! `replay-64b-vxlan`: a pcap of 64-byte UDP frames replayed as fast as possible by `mirror
//! replay` into VxLAN towards the remote namespace, against `tcpreplay --topspeed` of the same
//! file onto a kernel `vxlan` device in the node with the same remote, both pinned to the same
//! CPU. Sent packets per second (the replay's summary line, tcpreplay's `Actual:` line) and
//! copies that arrived (once their count stops moving), for each remote kind: decapsulated by the
//! remote's kernel VTEP, or counted and dropped by the XDP sink on the remote's uplink end.

use std::{fmt::Write as _, fs, path::Path, time::Duration};

use anyhow::{Context as _, Result, ensure};
use mirror_tests::{
    Background, World,
    proc::describe,
    replay::{LINKTYPE_ETHERNET, ReplaySummary, udp_frame, write_pcap},
    world::{NODE_UPLINK_IF, NODE_UPLINK_IP, REMOTE_IP},
};

use super::{
    Bench, Outcome, RemoteOutcome, VNI,
    json::Json,
    remote::{Counter, RemoteKind},
    report::{Headline, markdown},
    scenarios::Scenario,
    stats::{median, per_second, to_f64},
    stop,
};

/// The node's kernel VxLAN device of the baseline.
const KERNEL_VTEP: &str = "benchvx0";
/// Longest a run may take.
const RUN_TIMEOUT: Duration = Duration::from_mins(2);

/// One subject (the mirror, or the kernel baseline) and its runs.
struct Row {
    subject: &'static str,
    /// The command line of one run.
    command: String,
    runs: Vec<Measure>,
    /// The figures of the mirror are given as a ratio to this one's.
    baseline: bool,
}

/// What one run measured.
#[derive(Clone, Copy, Debug, Default)]
struct Measure {
    /// Packets the sender says it sent.
    sent: u64,
    /// Packets that arrived behind the remote VTEP.
    arrived: u64,
    /// The sender's own time for them.
    seconds: f64,
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

pub fn run(bench: &Bench, world: &World, scenario: &Scenario) -> Result<Outcome> {
    let settings = &bench.settings;
    let pcap = bench.out.join(format!("udp64-{}.pcap", settings.frames));
    write_udp64(&pcap, settings.frames)?;
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

    let cpu = settings.cpu.to_string();
    let loops = settings.loops.to_string();
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
    let mut results = Vec::new();
    for &remote in &settings.remote_kinds {
        let counter = Counter::new(bench, world, remote)?;
        let rows = remote_runs(bench, world, &counter, remote, [&mirror_argv, &kernel_argv])?;
        // Detaches the sink before the next remote kind.
        drop(counter);
        results.push(remote_outcome(remote, &rows));
    }
    world.node.ip(["link", "del", KERNEL_VTEP])?;
    let mut title = format!(
        "{} ({} runs each, medians; sender pinned to CPU {}; {} frames x {} passes)\n",
        scenario.title, settings.runs, settings.cpu, settings.frames, settings.loops
    );
    if let Some(first) = results.first() {
        title.push_str(&first.commands);
    }
    Ok(Outcome::new(
        title,
        vec![
            ("frames", Json::Int(u64::from(settings.frames))),
            ("loops", Json::Int(u64::from(settings.loops))),
        ],
        results.into_iter().map(|r| r.outcome).collect(),
    ))
}

/// The runs of both subjects (`argvs`: the mirror's, the kernel's) towards one remote kind.
fn remote_runs(
    bench: &Bench,
    world: &World,
    counter: &Counter<'_>,
    remote: RemoteKind,
    argvs: [&[&str]; 2],
) -> Result<[Row; 2]> {
    let settings = &bench.settings;
    let expected = u64::from(settings.frames) * u64::from(settings.loops);
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
    // Alternating, so that a drift of the machine's speed hits both alike.
    for run in 1..=settings.runs {
        for (row, argv) in [&mut mirror, &mut kernel].into_iter().zip(argvs) {
            stop::check()?;
            let (command, measure) = measure_run(world, counter, argv, row.baseline)?;
            println!(
                "   run {run} {:<6} {:<32} sent {:>10.0} pps, arrived {:>10.0} pps ({} of \
                 {expected} packets arrived, {:.3} s)",
                remote.label(),
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
    Ok([mirror, kernel])
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

/// Runs `taskset ARGV` in the node once and counts what arrived at the remote.
fn measure_run(
    world: &World,
    counter: &Counter<'_>,
    argv: &[&str],
    kernel: bool,
) -> Result<(String, Measure)> {
    let before = counter.delivered()?;
    let mut cmd = world.node.command("taskset", argv);
    let command = super::shown_command(argv);
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
    let arrived = counter.settled(0)? - before;
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

/// One remote kind's figures, and the subjects' command lines.
struct KindOutcome {
    outcome: RemoteOutcome,
    commands: String,
}

/// The table of one remote kind's rows.
fn table(remote: RemoteKind, rows: &[Row]) -> String {
    let baseline = rows.iter().find(|r| r.baseline);
    let mut out = format!("{}\n\n", remote.describe());
    let mut cells = vec![
        [
            "subject",
            "sent pps",
            "arrived pps",
            "loss %",
            "sent ratio",
            "arr. ratio",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for row in rows {
        let (sent, arrived) = (
            row.median(Measure::sent_pps),
            row.median(Measure::arrived_pps),
        );
        let ratio = |figure: fn(&Measure) -> f64, ours: f64| {
            baseline.map_or_else(String::new, |b| format!("{:.2}x", ours / b.median(figure)))
        };
        cells.push(vec![
            row.subject.to_owned(),
            format!("{sent:.0}"),
            format!("{arrived:.0}"),
            format!("{:.2}", row.median(Measure::loss_pct)),
            ratio(Measure::sent_pps, sent),
            ratio(Measure::arrived_pps, arrived),
        ]);
    }
    out.push_str(&markdown(&cells));
    out
}

/// The mirror's headline figures (the first row), the table and the JSON of one remote kind.
fn remote_outcome(remote: RemoteKind, rows: &[Row]) -> KindOutcome {
    let headline = Headline {
        remote,
        offered_pps: Some(rows[0].median(Measure::sent_pps)),
        loss_pct: Some(rows[0].median(Measure::loss_pct)),
        run_seconds: rows[0].median(|m| m.seconds),
        expected: &["offered_pps", "loss_pct"],
        ..Headline::default()
    };
    let mut commands = String::new();
    for row in rows {
        let _ = writeln!(commands, "{}: {}", row.subject, row.command);
    }
    KindOutcome {
        outcome: RemoteOutcome {
            table: table(remote, rows),
            headline,
            subjects: subjects(rows),
        },
        commands,
    }
}

fn subjects(rows: &[Row]) -> Json {
    let baseline = rows.iter().find(|r| r.baseline);
    let subjects = rows
        .iter()
        .map(|row| {
            let (sent, arrived) = (
                row.median(Measure::sent_pps),
                row.median(Measure::arrived_pps),
            );
            let ratio = |figure: fn(&Measure) -> f64, ours: f64| {
                Json::num(baseline.map(|b| ours / b.median(figure)))
            };
            Json::obj([
                ("subject", Json::str(row.subject)),
                ("baseline", Json::Bool(row.baseline)),
                ("command", Json::str(row.command.clone())),
                ("median_sent_pps", Json::Num(sent, 0)),
                ("median_arrived_pps", Json::Num(arrived, 0)),
                (
                    "median_loss_pct",
                    Json::num(Some(row.median(Measure::loss_pct))),
                ),
                ("sent_ratio_vs_kernel", ratio(Measure::sent_pps, sent)),
                (
                    "arrived_ratio_vs_kernel",
                    ratio(Measure::arrived_pps, arrived),
                ),
                ("run_seconds", Json::num(Some(row.median(|m| m.seconds)))),
                (
                    "runs",
                    Json::Arr(
                        row.runs
                            .iter()
                            .map(|m| {
                                Json::obj([
                                    ("sent", Json::Int(m.sent)),
                                    ("arrived", Json::Int(m.arrived)),
                                    ("seconds", Json::Num(m.seconds, 4)),
                                ])
                            })
                            .collect(),
                    ),
                ),
            ])
        })
        .collect();
    Json::Arr(subjects)
}

#[cfg(test)]
mod tests {
    use super::*;

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
