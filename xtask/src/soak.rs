//! `cargo xtask soak`: the agent for a long while under steady traffic, its pod dying and coming
//! back under a new veth every few seconds, watched for leaks.
//!
//! In a world of network namespaces of its own, the agent follows a fake pod by name (`--pod`)
//! with a NetFlow collector that expires flows after 2 s (so the flow cache churns too). The pod
//! pings the node 500 times a second with 512-byte payloads; every `--churn-every` seconds it is
//! killed (the kernel deletes its veth) and started again under the other of two veth names. Once
//! a second the agent's resident memory (`VmRSS`), open file descriptors, BPF objects it holds
//! (maps by id, programs, links) and the series it serves are sampled.
//!
//! After a warm-up (a fifth of the run, at least 5 s) the first and the last third of the samples
//! are compared: RSS may grow by at most 1 MiB + 2 %, file descriptors by 1 (a scan in flight),
//! links and series not at all, and the set of maps must not change. The agent must also have
//! followed every restart, kept sending copies, and must exit 0 on SIGTERM leaving no link
//! behind. A table goes to stdout and the samples and verdicts to `target/soak/summary.json`.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
    process::ExitStatus,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};
use clap::Args;
use mirror_tests::{
    Agent, AgentArgs, Background, Metrics, Signal, World,
    agent::{target_dir, workspace_root},
    attachments::links,
    is_root,
    netns::unique_prefix,
    pod::FakePod,
    proc::set_echo,
    world::REMOTE_IP,
};
use serde::Serialize;

use crate::{cargo::build_release_mirror, setup::setup};

/// Options of `cargo xtask soak`.
#[derive(Args, Debug)]
pub struct SoakArgs {
    /// How long to run, in minutes.
    #[arg(long, default_value_t = 10, conflicts_with = "seconds")]
    pub minutes: u32,
    /// How long to run, in seconds (instead of --minutes; at least 15).
    #[arg(long, value_parser = clap::value_parser!(u32).range(15..))]
    pub seconds: Option<u32>,
    /// Kill and restart the pod (under a new veth) this often, in seconds.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(2..))]
    pub churn_every: u32,
    /// Soak this `mirror` binary instead of building the release one.
    #[arg(long)]
    pub bin: Option<PathBuf>,
}

impl SoakArgs {
    /// The short run of `cargo xtask test`, on an already built binary.
    pub fn short(bin: PathBuf) -> Self {
        Self {
            minutes: 0,
            seconds: Some(20),
            churn_every: 4,
            bin: Some(bin),
        }
    }

    fn duration(&self) -> Duration {
        Duration::from_secs(self.seconds.map_or(u64::from(self.minutes) * 60, u64::from))
    }
}

const VNI: u32 = 42;
/// The pod's subnet (198.19.`SUBNET`.0/24) and its two alternating veth names.
const SUBNET: u8 = 41;
const VETHS: [&str; 2] = ["vethsoak1", "vethsoak2"];
/// The agent must attach a restarted pod within this.
const FOLLOW_TIMEOUT: Duration = Duration::from_secs(5);
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// RSS may grow by this plus [`RSS_GROWTH_PCT`] percent between the first and the last third.
const RSS_GROWTH_KIB: u64 = 1024;
const RSS_GROWTH_PCT: u64 = 2;

/// One look at the agent.
#[derive(Clone, Debug, Default)]
struct Sample {
    seconds: f64,
    rss_kib: u64,
    fds: u64,
    maps: BTreeSet<u32>,
    progs: u64,
    links: u64,
    series: u64,
    sent: u64,
    attach: u64,
}

/// One leak check: its figure early and late, and the largest growth allowed.
struct Check {
    name: &'static str,
    early: u64,
    late: u64,
    allowed: u64,
}

impl Check {
    fn ok(&self) -> bool {
        self.late <= self.early + self.allowed
    }
}

pub fn soak(args: &SoakArgs) -> Result<()> {
    setup()?;
    if !is_root() {
        bail!("the soak run needs root: it builds network namespaces");
    }
    let bin = binary(args)?;
    let duration = args.duration();
    println!(
        "== soak: {} s, the pod restarted every {} s, {}",
        duration.as_secs(),
        args.churn_every,
        bin.display()
    );
    set_echo(false);
    let world = World::new(VNI).context("building the soak world")?;
    let before = links(&world.node)?;
    let run = churn(&world, &bin, args)?;
    let after = links(&world.node)?;

    let checks = checks(&run.samples, duration);
    print_table(&run.samples);
    let sent = run.samples.last().map_or(0, |s| s.sent);
    let mut failures: Vec<String> = checks
        .iter()
        .filter(|c| !c.ok())
        .map(|c| {
            format!(
                "{} grew from {} to {} (allowed {})",
                c.name, c.early, c.late, c.allowed
            )
        })
        .collect();
    if !maps_stable(&run.samples, duration) {
        failures.push("the agent's BPF maps changed after the warm-up".to_owned());
    }
    if run.exit.code() != Some(0) {
        failures.push(format!("the agent exited with {} on SIGTERM", run.exit));
    }
    if after != before {
        failures.push(format!("links left behind: {after:?}, before: {before:?}"));
    }
    if sent == 0 {
        failures.push("no copy was sent".to_owned());
    }
    for check in &checks {
        println!(
            "   {:<14} first third {:>8}, last third {:>8}, allowed growth {:>6}: {}",
            check.name,
            check.early,
            check.late,
            check.allowed,
            if check.ok() { "ok" } else { "GREW" }
        );
    }
    let out = target_dir().join("soak");
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let json = out.join("summary.json");
    fs::write(
        &json,
        summary_json(args, duration, run.pods, &run.samples, &checks, &failures)?,
    )
    .with_context(|| format!("writing {}", json.display()))?;
    println!(
        "   {} pods, {sent} copies sent, the agent's {}; summary: {}",
        run.pods,
        run.exit,
        json.strip_prefix(workspace_root())
            .unwrap_or(&json)
            .display()
    );
    if !failures.is_empty() {
        bail!("the soak run failed: {}", failures.join("; "));
    }
    println!("== soak passed");
    Ok(())
}

/// `--bin`, else the release build (built now).
fn binary(args: &SoakArgs) -> Result<PathBuf> {
    if let Some(bin) = &args.bin {
        ensure!(bin.is_file(), "{} does not exist", bin.display());
        return Ok(bin.clone());
    }
    build_release_mirror()
}

/// What a soak run saw.
struct Run {
    samples: Vec<Sample>,
    pods: u64,
    exit: ExitStatus,
}

/// Runs the agent for the whole duration, restarting the pod and sampling, then stops it.
fn churn(world: &World, bin: &Path, args: &SoakArgs) -> Result<Run> {
    let name = format!("soak-{}", unique_prefix());
    let mut pod = Some(Pod::start(world, &name, 0)?);
    let mut agent_args = AgentArgs::vxlan(world, &[]);
    agent_args.extra = [
        "--pod",
        &name,
        "--netflow",
        &format!("{REMOTE_IP}:2055"),
        "--netflow-inactive-timeout",
        "2",
    ]
    .map(str::to_owned)
    .to_vec();
    let mut agent = Agent::start_bin(&world.node, bin, &agent_args)?;
    let started = Instant::now();
    let churn = Duration::from_secs(args.churn_every.into());
    let (mut samples, mut pods) = (Vec::new(), 1_u64);
    let (mut next_churn, mut next_sample) = (started + churn, started);
    let result = (|| -> Result<()> {
        while started.elapsed() < args.duration() {
            let now = Instant::now();
            if now >= next_churn {
                next_churn += churn;
                if let Some(old) = pod.take() {
                    old.stop(world)?;
                }
                pod = Some(Pod::start(world, &name, pods)?);
                pods += 1;
                wait_attached(&agent, pods)?;
            }
            if now >= next_sample {
                next_sample += SAMPLE_EVERY;
                ensure!(agent.is_running()?, "the agent exited");
                samples.push(sample(&agent, started)?);
            }
            thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    })();
    if let Err(e) = result {
        let said = agent.stderr_lines();
        let tail = &said[said.len().saturating_sub(20)..];
        bail!("{e:#}\nthe agent's last lines:\n{}", tail.join("\n"));
    }
    if let Some(pod) = pod.take() {
        pod.stop(world)?;
    }
    let exit = agent.stop_with(Signal::Term)?;
    Ok(Run {
        samples,
        pods,
        exit,
    })
}

/// The fake pod and its traffic.
struct Pod {
    pod: FakePod,
    ping: Background,
}

impl Pod {
    /// Pod `name`, the `nth` of the run (veth names alternate), pinging the node.
    fn start(world: &World, name: &str, nth: u64) -> Result<Self> {
        let veth = VETHS[usize::from(nth % 2 == 1)];
        let pod = FakePod::start(&world.node, name, veth, SUBNET)?;
        let node_ip = pod.node_ip();
        let ping = Background::spawn(
            &format!("ping from {name}"),
            &mut pod.command("ping", ["-q", "-i", "0.002", "-s", "512", node_ip.as_str()]),
        )?;
        Ok(Self { pod, ping })
    }

    /// Stops the traffic (its process holds the namespace) and kills the pod.
    fn stop(mut self, world: &World) -> Result<()> {
        self.ping.stop_with(Signal::Int)?;
        self.pod.kill(&world.node)
    }
}

/// Waits until the agent has attached `pods` times.
fn wait_attached(agent: &Agent<'_>, pods: u64) -> Result<()> {
    let deadline = Instant::now() + FOLLOW_TIMEOUT;
    loop {
        let attached = agent.metrics()?.total("mirror_attach_total", &[]);
        if attached >= pods {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "pod number {pods} was not attached within {FOLLOW_TIMEOUT:?} (attachments: {attached})"
        );
        thread::sleep(Duration::from_millis(20));
    }
}

fn sample(agent: &Agent<'_>, started: Instant) -> Result<Sample> {
    let pid = agent.pid();
    let text = agent.metrics_text()?;
    let metrics = Metrics::parse(&text)?;
    let mut sample = Sample {
        seconds: started.elapsed().as_secs_f64(),
        rss_kib: rss_kib(pid)?,
        series: text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .count() as u64,
        sent: metrics.total("mirror_sent_packets_total", &[]),
        attach: metrics.total("mirror_attach_total", &[]),
        ..Sample::default()
    };
    let dir = format!("/proc/{pid}/fd");
    for entry in fs::read_dir(&dir)
        .with_context(|| format!("listing {dir}"))?
        .flatten()
    {
        sample.fds += 1;
        // An fd closed since the listing is simply not counted as a BPF object.
        let Ok(target) = fs::read_link(entry.path()) else {
            continue;
        };
        match target.to_string_lossy().as_ref() {
            "anon_inode:bpf-map" => {
                let info = format!("/proc/{pid}/fdinfo/{}", entry.file_name().to_string_lossy());
                if let Some(id) = fs::read_to_string(&info).ok().and_then(|i| {
                    i.lines()
                        .find_map(|l| l.strip_prefix("map_id:"))
                        .and_then(|v| v.trim().parse().ok())
                }) {
                    sample.maps.insert(id);
                }
            }
            "anon_inode:bpf-prog" => sample.progs += 1,
            "anon_inode:bpf_link" => sample.links += 1,
            _ => {}
        }
    }
    Ok(sample)
}

fn rss_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no VmRSS in {path}"))
}

/// The samples after the warm-up, split into the first and the last third.
fn thirds(samples: &[Sample], duration: Duration) -> (&[Sample], &[Sample]) {
    let warm_up = (duration.as_secs_f64() / 5.0).max(5.0);
    let steady: Vec<usize> = (0..samples.len())
        .filter(|&i| samples[i].seconds >= warm_up)
        .collect();
    let Some(&first) = steady.first() else {
        return (&[], &[]);
    };
    let steady = &samples[first..];
    let third = (steady.len() / 3).max(1).min(steady.len());
    (&steady[..third], &steady[steady.len() - third..])
}

fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}

fn checks(samples: &[Sample], duration: Duration) -> Vec<Check> {
    let (early, late) = thirds(samples, duration);
    let rss = |of: &[Sample]| median(of.iter().map(|s| s.rss_kib).collect());
    // Counts move in steps as pods come and go (a detached pod's series stay a grace period,
    // links are briefly fewer between detach and attach): the highest of each third is
    // compared, which a leak raises too. File descriptors are opened for a moment by every pod
    // scan: the lowest is compared, which only a leak raises.
    let highest = |of: &[Sample], f: fn(&Sample) -> u64| of.iter().map(f).max().unwrap_or(0);
    let lowest = |of: &[Sample], f: fn(&Sample) -> u64| of.iter().map(f).min().unwrap_or(0);
    let count = |name, f: fn(&Sample) -> u64| Check {
        name,
        early: highest(early, f),
        late: highest(late, f),
        allowed: 0,
    };
    vec![
        Check {
            name: "RSS KiB",
            early: rss(early),
            late: rss(late),
            allowed: RSS_GROWTH_KIB + rss(early) * RSS_GROWTH_PCT / 100,
        },
        Check {
            name: "open fds",
            early: lowest(early, |s| s.fds),
            late: lowest(late, |s| s.fds),
            allowed: 0,
        },
        count("BPF links", |s| s.links),
        count("BPF programs", |s| s.progs),
        count("metric series", |s| s.series),
    ]
}

/// Whether every sample after the warm-up holds the same BPF maps.
fn maps_stable(samples: &[Sample], duration: Duration) -> bool {
    let (early, late) = thirds(samples, duration);
    let Some(first) = early.first() else {
        return false;
    };
    early.iter().chain(late).all(|s| s.maps == first.maps)
}

fn print_table(samples: &[Sample]) {
    println!(
        "   | {:>6} | {:>9} | {:>4} | {:>4} | {:>5} | {:>5} | {:>6} | {:>6} | {:>10} |",
        "t (s)", "RSS KiB", "fds", "maps", "progs", "links", "series", "pods", "sent"
    );
    // About twenty rows whatever the length of the run.
    let step = (samples.len() / 20).max(1);
    for (i, s) in samples.iter().enumerate() {
        if i % step != 0 && i + 1 != samples.len() {
            continue;
        }
        println!(
            "   | {:>6.0} | {:>9} | {:>4} | {:>4} | {:>5} | {:>5} | {:>6} | {:>6} | {:>10} |",
            s.seconds,
            s.rss_kib,
            s.fds,
            s.maps.len(),
            s.progs,
            s.links,
            s.series,
            s.attach,
            s.sent
        );
    }
}

/// `summary.json`: members in this order, as serde writes the fields.
#[derive(Serialize)]
struct Summary<'a> {
    seconds: u64,
    churn_every_seconds: u32,
    pods: u64,
    passed: bool,
    failures: &'a [String],
    checks: Vec<CheckRow>,
    samples: Vec<SampleRow<'a>>,
}

#[derive(Serialize)]
struct CheckRow {
    name: &'static str,
    first_third: u64,
    last_third: u64,
    allowed_growth: u64,
    ok: bool,
}

#[derive(Serialize)]
struct SampleRow<'a> {
    /// Seconds since the start, to a tenth.
    t: f64,
    rss_kib: u64,
    fds: u64,
    map_ids: &'a BTreeSet<u32>,
    progs: u64,
    links: u64,
    series: u64,
    attach: u64,
    sent: u64,
}

fn summary_json(
    args: &SoakArgs,
    duration: Duration,
    pods: u64,
    samples: &[Sample],
    checks: &[Check],
    failures: &[String],
) -> Result<String> {
    let summary = Summary {
        seconds: duration.as_secs(),
        churn_every_seconds: args.churn_every,
        pods,
        passed: failures.is_empty(),
        failures,
        checks: checks
            .iter()
            .map(|c| CheckRow {
                name: c.name,
                first_third: c.early,
                last_third: c.late,
                allowed_growth: c.allowed,
                ok: c.ok(),
            })
            .collect(),
        samples: samples
            .iter()
            .map(|s| SampleRow {
                t: (s.seconds * 10.0).round() / 10.0,
                rss_kib: s.rss_kib,
                fds: s.fds,
                map_ids: &s.maps,
                progs: s.progs,
                links: s.links,
                series: s.series,
                attach: s.attach,
                sent: s.sent,
            })
            .collect(),
    };
    let mut json = serde_json::to_string_pretty(&summary).context("writing the soak summary")?;
    json.push('\n');
    Ok(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: f64, rss_kib: u64) -> Sample {
        Sample {
            seconds,
            rss_kib,
            fds: 20,
            ..Sample::default()
        }
    }

    #[test]
    fn growth_after_warm_up_is_caught() {
        let duration = Duration::from_mins(1);
        let flat: Vec<Sample> = (0..60_u32).map(|t| at(f64::from(t), 30_000)).collect();
        assert!(checks(&flat, duration).iter().all(Check::ok));
        assert!(maps_stable(&flat, duration));
        // Growth during the warm-up does not count; 10 KiB a second afterwards does.
        let warming: Vec<Sample> = (0..60_u32)
            .map(|t| {
                at(
                    f64::from(t),
                    if t < 12 { 1000 * u64::from(t) } else { 30_000 },
                )
            })
            .collect();
        assert!(checks(&warming, duration).iter().all(Check::ok));
        let leaking: Vec<Sample> = (0..60_u32)
            .map(|t| at(f64::from(t), 30_000 + 100 * u64::from(t)))
            .collect();
        let rss = &checks(&leaking, duration)[0];
        assert!(!rss.ok(), "{} -> {}", rss.early, rss.late);
    }

    #[test]
    fn summary_keeps_its_fields() {
        let mut sample = at(1.26, 30_000);
        sample.maps = BTreeSet::from([7, 9]);
        let checks = checks(&[sample.clone()], Duration::from_secs(20));
        let failures = ["a \"quoted\" failure".to_owned()];
        let args = SoakArgs::short(PathBuf::from("mirror"));
        let text = summary_json(
            &args,
            Duration::from_secs(20),
            3,
            &[sample],
            &checks,
            &failures,
        )
        .unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "checks",
                "churn_every_seconds",
                "failures",
                "passed",
                "pods",
                "samples",
                "seconds"
            ]
        );
        assert!(text.starts_with("{\n  \"seconds\": 20,"), "{text}");
        assert_eq!(json["failures"][0], failures[0].as_str());
        assert_eq!(json["passed"], false);
        assert_eq!(json["pods"], 3);
        assert_eq!(json["samples"][0]["t"], 1.3);
        assert_eq!(json["samples"][0]["map_ids"], serde_json::json!([7, 9]));
        assert_eq!(json["checks"][0]["name"], "RSS KiB");
        assert!(json["checks"][0]["ok"].is_boolean());
    }

    #[test]
    fn short_run_is_short() {
        let args = SoakArgs::short(PathBuf::from("mirror"));
        assert_eq!(args.duration(), Duration::from_secs(20));
    }
}
