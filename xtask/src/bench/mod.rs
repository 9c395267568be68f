//! `cargo xtask bench`: the mirror measured in a world of network namespaces of its own, each
//! scenario against the kernel doing the same job, in the same run, on the same traffic.
//!
//! Scenarios (their names are what `--only` matches and what the JSON files are called):
//! - `replay-64b-vxlan`: `mirror replay` of a pcap of 64-byte UDP frames as fast as possible
//!   into VxLAN, against `tcpreplay --topspeed` onto a kernel `vxlan` device (see `replay.rs`).
//! - `live-64b-RATE`, `live-1500b-RATE` (jumbo uplink) and `live-1500b-RATE-mtu1500`: the pod
//!   sends UDP frames of 64 bytes or 1514 bytes (1500-byte IP packets) at each `--rates` rate,
//!   `max` being as fast as the generator goes; the pod's veth is mirrored to the remote VTEP by
//!   nothing, by the kernel (`tc mirred` into a `vxlan` device) and by `mirror run` (see
//!   `live.rs`). With a 1500-byte uplink every full-size copy is sent in two IP fragments, by
//!   both mirrors (`--oversize fragment` for the agent).
//! - `flows-64k`: 64-byte frames at 100k pps whose source ports cycle through 65,536 values,
//!   with the agent also exporting NetFlow (its flow cache holding 64k flows): peak RSS.
//! - `iperf` and `iperf-mtu1500`: an iperf3 bulk transfer from the pod to the node, with no
//!   mirror, the kernel's and the agent, in rounds of three next to each other (see `iperf.rs`);
//!   `iperf-snaplen128` the same with the agent's `--snaplen 128`.
//!
//! With `--peer 'CMD'` another mirror is a fourth subject of the live and TCP scenarios (see
//! `peer.rs`). Each live scenario runs once per remote kind (`--remote-kind`, see `remote.rs`):
//! the remote's kernel VTEP, and an XDP sink that counts and drops the copies (`sink.rs`), so
//! that the remote's receive work, which veth runs on the sending CPU, is not in the figures.
//!
//! Per scenario, remote kind and subject: offered packets/s, copies delivered at the remote,
//! loss once the delivered count stopped moving and at the moment the traffic stopped, the
//! share of copies that came late (after the traffic stopped), the whole machine's CPU
//! (`/proc/stat`) and the agent's (`/proc/PID/stat`; the peer's process tree) per copy, the
//! incremental CPU per copy (with the mirror minus without it, at the same offered traffic) and
//! its ratio to the kernel's and the peer's, peak RSS, and for TCP the throughput kept. Tables
//! on the terminal (Markdown) and JSON under `target/bench/`: one file per scenario and
//! `summary.json` (with `summary.md`) for the whole run.

mod args;
mod cpu;
mod figures;
mod iperf;
mod json;
mod live;
mod peer;
mod remote;
mod replay;
mod report;
mod scenarios;
mod sink;
mod stats;
mod stop;
mod subject;
mod summary;
mod world;

pub use stop::Interrupted;

use std::{
    fs,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};
use mirror_tests::{
    World,
    agent::{target_dir, workspace_root},
    is_root,
    proc::set_echo,
};

pub use self::args::BenchArgs;
use self::{
    args::Settings,
    json::Json,
    remote::RemoteKind,
    report::Headline,
    scenarios::{Kind, Scenario, estimate, scenarios},
    summary::{check, conclude, scenario_json},
};
use crate::{cargo::build_release_mirror, setup::setup};

/// VxLAN network identifier of the bench world's remote VTEP.
pub const VNI: u32 = 42;

/// What every scenario gets.
pub struct Bench {
    pub settings: Settings,
    /// The release build of `mirror`.
    pub bin: PathBuf,
    /// `target/bench`.
    pub out: PathBuf,
    /// `USER_HZ`: clock ticks per second of /proc's CPU times.
    pub clock_ticks: u64,
    /// The sink remote's XDP program (built when a live scenario uses the sink).
    pub sink_object: Option<PathBuf>,
}

/// What a scenario produced.
pub struct Outcome {
    /// Its tables and commands, for the terminal and `summary.md`.
    pub table: String,
    /// Its JSON beyond the figures of each remote kind.
    pub details: Vec<(&'static str, Json)>,
    /// One per remote kind it ran with.
    pub results: Vec<RemoteOutcome>,
}

impl Outcome {
    /// A live or TCP scenario's outcome: its title above each remote kind's table.
    pub fn new(
        title: String,
        details: Vec<(&'static str, Json)>,
        results: Vec<RemoteOutcome>,
    ) -> Self {
        let mut table = title;
        for result in &results {
            table.push('\n');
            table.push_str(&result.table);
        }
        Self {
            table,
            details,
            results,
        }
    }
}

/// What a scenario produced with one kind of remote.
pub struct RemoteOutcome {
    /// Its table, headed by the remote's description.
    pub table: String,
    pub headline: Headline,
    /// Every subject's figures and runs.
    pub subjects: Json,
}

/// `cargo xtask bench ARGS`.
pub fn bench(args: BenchArgs) -> Result<()> {
    let command = std::iter::once("cargo xtask".to_owned())
        .chain(std::env::args().skip(1).map(|a| shell_quoted(&a)))
        .collect::<Vec<_>>()
        .join(" ");
    run(args, &command)
}

/// The smoke run at the end of `cargo xtask test`: skipped, saying why, when not root.
pub fn smoke() -> Result<()> {
    if !is_root() {
        println!("   skipped: the bench needs root for its network namespaces");
        return Ok(());
    }
    run(BenchArgs::smoke()?, "cargo xtask bench --smoke")
}

fn run(args: BenchArgs, command: &str) -> Result<()> {
    setup()?;
    stop::catch()?;
    if !is_root() {
        bail!("the bench needs root: it builds network namespaces");
    }
    let settings = Settings::new(args);
    let cpus = available_cpus()?;
    for (option, cpu) in [("--cpu", settings.cpu), ("--gen-cpu", settings.gen_cpu)] {
        ensure!(
            cpus.contains(&cpu),
            "{option} {cpu}: not a CPU this process may run on ({cpus:?})"
        );
    }
    let scenarios: Vec<Scenario> = scenarios(&settings)
        .into_iter()
        .filter(|s| selected(&settings.only, &s.name))
        .collect();
    ensure!(
        !scenarios.is_empty(),
        "no scenario matches --only {}",
        settings.only.join(",")
    );
    if settings.cpu == settings.gen_cpu {
        println!(
            "note: the generator and the agent share CPU {}: pass --cpu and --gen-cpu to part them",
            settings.cpu
        );
    }
    let sink = scenarios
        .iter()
        .any(|s| matches!(s.kind, Kind::Live(_) | Kind::Replay))
        && settings.remote_kinds.contains(&RemoteKind::Sink);
    let bench = prepare(settings, sink)?;
    let busy = cpu::machine_busy_pct(Duration::from_secs(1))?;
    println!(
        "== {} scenarios, about {} min; the machine was {busy:.0}% busy in the second before{}",
        scenarios.len(),
        estimate(&bench.settings, &scenarios).as_secs().div_ceil(60),
        if busy > 10.0 {
            ": other work running, the figures will be noisy"
        } else {
            ""
        }
    );
    let started = Instant::now();
    let results = run_scenarios(&bench, &scenarios)?;
    conclude(&bench, command, busy, &results)?;
    println!("\nbench done in {:.0} s", started.elapsed().as_secs_f64());
    check(&bench, &results)
}

/// Whether `--only` (a list, empty for all) selects the scenario `name`.
fn selected(only: &[String], name: &str) -> bool {
    only.is_empty() || only.iter().any(|o| name.contains(o.as_str()))
}

/// Builds the release binary (and the sink's program if `sink`) and makes `target/bench`.
fn prepare(settings: Settings, sink: bool) -> Result<Bench> {
    let bin = build_release_mirror()?;
    let out = target_dir().join("bench");
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let sink_object = sink.then(|| sink::build(&out)).transpose()?;
    set_echo(false);
    Ok(Bench {
        clock_ticks: cpu::clock_ticks()?,
        settings,
        bin,
        out,
        sink_object,
    })
}

/// Runs each scenario in a world of its uplink MTU, printing its table and writing its JSON.
fn run_scenarios<'s>(
    bench: &Bench,
    scenarios: &'s [Scenario],
) -> Result<Vec<(&'s Scenario, Outcome)>> {
    let mut world: Option<World> = None;
    let mut results = Vec::new();
    for scenario in scenarios {
        stop::check()?;
        if world
            .as_ref()
            .is_none_or(|w| w.config.uplink_mtu != scenario.uplink_mtu)
        {
            // The old world goes first: one world at a time.
            drop(world.take());
            world = Some(world::build(
                scenario.uplink_mtu,
                bench.settings.remote_gro,
            )?);
        }
        let world = world.as_ref().context("the world was just built")?;
        println!("\n== {}: {}", scenario.name, scenario.title);
        let outcome = match scenario.kind {
            Kind::Replay => replay::run(bench, world, scenario),
            Kind::Live(traffic) => live::run(bench, world, scenario, traffic),
            Kind::Iperf { snaplen } => iperf::run(bench, world, scenario, snaplen),
        }
        .with_context(|| format!("scenario {}", scenario.name))?;
        println!();
        for line in outcome.table.lines() {
            println!("   {line}");
        }
        let path = bench.out.join(format!("{}.json", scenario.name));
        fs::write(&path, scenario_json(bench, scenario, &outcome).pretty())
            .with_context(|| format!("writing {}", path.display()))?;
        println!("   summary: {}", relative(&path));
        results.push((scenario, outcome));
    }
    Ok(results)
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

/// `taskset ARGV` for tables and JSON: paths inside the workspace relative to it.
fn shown_command(argv: &[&str]) -> String {
    std::iter::once("taskset".to_owned())
        .chain(argv.iter().map(|arg| relative(Path::new(arg))))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `arg` as a shell reads it back: quoted when it holds more than plain word characters (a
/// `--peer` command), so that the command kept with the figures can be run again.
fn shell_quoted(arg: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./,:=@%+".contains(c);
    if !arg.is_empty() && arg.chars().all(plain) {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
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
    fn only_selects_by_any_of_its_names() {
        let only = ["live-64b".to_owned(), "iperf".to_owned()];
        assert!(selected(&only, "live-64b-50k"));
        assert!(selected(&only, "iperf-mtu1500"));
        assert!(!selected(&only, "live-1500b-50k"));
        assert!(selected(&[], "flows-64k"));
    }

    #[test]
    fn the_run_command_is_quoted_for_the_shell() {
        assert_eq!(shell_quoted("--rates"), "--rates");
        assert_eq!(shell_quoted("50k,max"), "50k,max");
        assert_eq!(shell_quoted("peer ready"), "'peer ready'");
        assert_eq!(shell_quoted("a 'b'"), r"'a '\''b'\'''");
        assert_eq!(shell_quoted(""), "''");
    }

    #[test]
    fn commands_show_workspace_paths_relative() {
        let bin = workspace_root().join("target/release/mirror");
        let bin = bin.to_string_lossy();
        assert_eq!(
            shown_command(&["-c", "1", &bin, "run", "--iface", "vethpod"]),
            "taskset -c 1 target/release/mirror run --iface vethpod"
        );
    }
}
