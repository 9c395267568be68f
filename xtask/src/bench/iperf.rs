//! The TCP scenario: an iperf3 bulk transfer from the pod to the node for the run length, in
//! rounds of three transfers next to each other (no mirror, the kernel's, the agent; the order
//! rotates each round), because iperf3's throughput on a VM varies a lot from run to run: each
//! mirror's throughput is taken against the no-mirror transfer of its own round.
//!
//! Offered packets are TCP segments as the stacks count them (the pod's and the node's
//! `OutSegs`): a 64 KB GSO packet is many segments on a real wire.
//!
//! Only the kernel VTEP remote: its counter counts a GSO packet's segments one by one, where the
//! XDP sink would see a 64 KB GSO copy (the kernel mirror's) as one packet.

use std::time::Duration;

use anyhow::{Context as _, Result};
use mirror_tests::{
    World,
    iperf::{client, server},
    world::NODE_POD_IP,
};

use super::{
    Bench, Outcome,
    cpu::CpuMeter,
    figures::{Sample, SubjectRuns},
    json::Json,
    remote::RemoteKind,
    report::{Columns, remote_outcome, title},
    scenarios::Scenario,
    stats::to_f64,
    stop,
    subject::{Running, Subject},
    world::{delivered, settled_delivered},
};

pub fn run(
    bench: &Bench,
    world: &World,
    scenario: &Scenario,
    snaplen: Option<u32>,
) -> Result<Outcome> {
    let settings = &bench.settings;
    let mut extra = vec!["--oversize".to_owned(), "fragment".to_owned()];
    if let Some(snaplen) = snaplen {
        extra.extend(["--snaplen".to_owned(), snaplen.to_string()]);
    }
    let peer = settings.peer.is_some();
    let mut runs = SubjectRuns::all(peer);
    for round in 0..settings.iperf_rounds {
        for subject in Subject::order(round, peer) {
            stop::check()?;
            let (sample, command) = measure(bench, world, subject, &extra)
                .with_context(|| format!("round {} of {}", round + 1, subject.label()))?;
            println!(
                "   round {} {:<6} {:>6.2} Gbit/s, segments {:>9}, copies {:>9} ({:>9} when iperf3 ended), \
                 machine CPU {:>7.3} s{}",
                round + 1,
                subject.label(),
                sample.gbps.unwrap_or_default(),
                sample.offered,
                sample.delivered,
                sample.delivered_during,
                sample.machine_cpu_us / 1e6,
                sample.process_cpu_us.map_or_else(String::new, |us| format!(
                    ", {} CPU {:.3} s",
                    subject.label(),
                    us / 1e6
                )),
            );
            SubjectRuns::record(&mut runs, subject, command, sample);
        }
    }
    let details = vec![
        (
            "iperf3",
            Json::str(format!(
                "iperf3 -c {NODE_POD_IP} -t {} from the pod, server in the node",
                settings.seconds
            )),
        ),
        ("rounds", Json::Int(settings.iperf_rounds as u64)),
    ];
    // Cut copies stand for whole super-frames: neither loss nor CPU per copy compares with
    // segments.
    let columns = if snaplen.is_some() {
        Columns::iperf_cut()
    } else {
        Columns::iperf(peer)
    };
    Ok(Outcome::new(
        title(scenario, settings, settings.iperf_rounds),
        details,
        vec![remote_outcome(
            RemoteKind::Vtep,
            settings,
            &columns,
            &runs,
            true,
        )],
    ))
}

/// One transfer with `subject` on.
fn measure(
    bench: &Bench,
    world: &World,
    subject: Subject,
    extra: &[String],
) -> Result<(Sample, String)> {
    let (mut running, command) = Running::start(bench, world, subject, extra, None)?;
    let mut iperf_server = server(&world.node, NODE_POD_IP)?;
    let segments = || -> Result<u64> {
        Ok(world.pod.snmp("Tcp", "OutSegs")? + world.node.snmp("Tcp", "OutSegs")?)
    };
    let offered_before = segments()?;
    let delivered_before = delivered(world)?;
    let meter = CpuMeter::start(running.watched(), bench.clock_ticks)?;

    let seconds = bench.settings.seconds.to_string();
    let result = client(&world.pod, NODE_POD_IP, &["-t", &seconds])?;

    let delivered_during = delivered(world)? - delivered_before;
    iperf_server
        .wait(Duration::from_secs(10))
        .context("waiting for the one-shot iperf3 server")?;
    let offered = segments()? - offered_before;
    let delivered = settled_delivered(world)? - delivered_before;
    running.check_alive()?;
    let used = meter.read()?;
    let agent = running.finish()?;
    Ok((
        Sample {
            offered,
            delivered,
            delivered_during,
            seconds: to_f64(bench.settings.seconds),
            machine_cpu_us: used.machine_us,
            process_cpu_us: used.process_us,
            rss_kib: used.peak_rss_kib,
            gbps: Some(result.gbps()),
            agent,
        },
        command,
    ))
}
