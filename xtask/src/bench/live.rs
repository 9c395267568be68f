//! Live scenarios: UDP frames from the pod at a fixed rate (or as fast as the generator goes),
//! each run once with no mirror, once with the kernel's, once with the agent and once with the
//! peer if there is one; all of that once per remote kind.
//!
//! A run: start the subject, note the counters (frames the pod's `eth0` sent, copies at the
//! remote, the machine's and the agent's or peer's CPU time), send for the run length with the
//! generator pinned to its CPU, note the copies at once, wait until they stop arriving, note
//! everything again, check the subject is still running, stop it.

use std::{net::SocketAddr, time::Duration};

use anyhow::{Context as _, Result, ensure};
use mirror_tests::{
    World,
    udp_flood::{FloodSpec, flood},
    world::{NODE_POD_IF, POD_IF, POD_IP},
};

use super::{
    Bench, Outcome,
    args::Rate,
    cpu::CpuMeter,
    figures::{Sample, SubjectRuns},
    json::Json,
    remote::{Counter, RemoteKind},
    report::{Columns, remote_outcome, title},
    scenarios::Scenario,
    stats::to_f64,
    stop,
    subject::{Running, Selection, Subject},
    world::SINK_IP,
};

/// The first UDP source port of the generated frames.
const SRC_PORT: u16 = 10_000;
/// Their destination port (discard).
const DST_PORT: u16 = 9;
/// Where the agent exports NetFlow in the flow-cache scenario: a socket of the bench's own in
/// the node that nobody reads (the datagrams only have to leave the agent).
const NETFLOW_SINK: &str = "127.0.0.1:2055";

/// What the pod sends in one live scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Traffic {
    /// Ethernet frame length, FCS not counted.
    pub frame_len: usize,
    pub rate: Rate,
    /// Distinct UDP source ports the frames cycle through: the number of flows.
    pub src_ports: u32,
    /// Whether the agent also exports NetFlow (its flow cache on).
    pub netflow: bool,
    /// What every subject copies, when not everything (the filter scenarios).
    pub select: Option<Selection>,
}

pub fn run(bench: &Bench, world: &World, scenario: &Scenario, traffic: Traffic) -> Result<Outcome> {
    let settings = &bench.settings;
    let spec = FloodSpec {
        iface: POD_IF.to_owned(),
        src_mac: mac_bytes(&world.pod.mac(POD_IF)?)?,
        dst_mac: mac_bytes(&world.node.mac(NODE_POD_IF)?)?,
        src_ip: POD_IP.parse().context("the pod's address")?,
        dst_ip: SINK_IP.parse().context("the sink address")?,
        frame_len: traffic.frame_len,
        src_port: SRC_PORT,
        src_ports: traffic.src_ports,
        dst_port: DST_PORT,
        pps: traffic.rate.pps(),
        duration: Duration::from_secs(settings.seconds),
        cpu: Some(settings.gen_cpu as usize),
    };
    let mut extra = vec!["--oversize".to_owned(), "fragment".to_owned()];
    let _sink = if traffic.netflow {
        extra.extend(["--netflow".to_owned(), NETFLOW_SINK.to_owned()]);
        let addr: SocketAddr = NETFLOW_SINK.parse().context("the NetFlow sink address")?;
        Some(world.node.udp_socket(addr)?)
    } else {
        None
    };
    let peer = settings.peer.is_some();
    let mut columns = Columns::flood(peer);
    if traffic.netflow {
        columns.push(Columns::FLOWS);
    }
    let mut results = Vec::new();
    for &remote in &settings.remote_kinds {
        let counter = Counter::new(bench, world, remote)?;
        let mut runs = SubjectRuns::all(peer);
        for run in 0..settings.runs {
            for subject in Subject::order(run, peer) {
                stop::check()?;
                let (sample, command) = measure(
                    bench,
                    world,
                    &counter,
                    subject,
                    &spec,
                    &extra,
                    traffic.select,
                )
                .with_context(|| {
                    format!(
                        "run {} of {} ({} remote)",
                        run + 1,
                        subject.label(),
                        remote.label()
                    )
                })?;
                print_run(run, remote, subject, &sample);
                SubjectRuns::record(&mut runs, subject, command, sample);
            }
        }
        // Detaches the sink before the next remote kind.
        drop(counter);
        results.push(remote_outcome(remote, settings, &columns, &runs, false));
    }
    let details = vec![
        ("frame_len", Json::Int(traffic.frame_len as u64)),
        ("rate_pps", Json::int(traffic.rate.pps())),
        ("src_ports", Json::Int(u64::from(traffic.src_ports))),
        ("netflow", Json::Bool(traffic.netflow)),
        (
            "filter",
            traffic
                .select
                .map_or(Json::Null, |s| Json::str(s.pcap.to_owned())),
        ),
        ("generator", Json::str(generator_description(&spec))),
    ];
    Ok(Outcome::new(
        title(scenario, settings, settings.runs),
        details,
        results,
    ))
}

fn print_run(run: usize, remote: RemoteKind, subject: Subject, sample: &Sample) {
    println!(
        "   run {} {} {:<6} offered {:>9.0} pps, copies {:>9} of {:>9} ({:>9} when traffic stopped), \
         machine CPU {:>7.3} s{}",
        run + 1,
        remote.label(),
        subject.label(),
        to_f64(sample.offered) / sample.seconds,
        sample.delivered,
        sample.offered,
        sample.delivered_during,
        sample.machine_cpu_us / 1e6,
        sample.process_cpu_us.map_or_else(String::new, |us| format!(
            ", {} CPU {:.3} s",
            subject.label(),
            us / 1e6
        )),
    );
}

/// One run of `subject`, its copies counted by `counter`. With a selection, the packets
/// "offered" are those it selects (the frames cycle through the source ports, so one in
/// `one_in` exactly, give or take the last), and every figure per copy is per selected packet.
fn measure(
    bench: &Bench,
    world: &World,
    counter: &Counter<'_>,
    subject: Subject,
    spec: &FloodSpec,
    extra: &[String],
    select: Option<Selection>,
) -> Result<(Sample, String)> {
    let one_in = select.map_or(1, |s| s.one_in);
    let (mut running, command) = Running::start(bench, world, subject, extra, select)?;
    let offered_before = world.pod.link_stats(POD_IF)?.tx_packets;
    let delivered_before = counter.delivered()?;
    let strays_before = counter.strays()?;
    let meter = CpuMeter::start(running.watched(), bench.clock_ticks)?;

    let sent = flood(&world.pod, spec)?;
    if sent.skipped > 0 || sent.send_errors > 0 {
        println!(
            "   note: the generator forwent {} packets (it fell behind: its CPU was busy) and retried {} \
             sends (no buffer)",
            sent.skipped, sent.send_errors
        );
    }

    let delivered_during = counter.delivered()? - delivered_before;
    let frames = world.pod.link_stats(POD_IF)?.tx_packets - offered_before;
    let offered = frames / one_in;
    // No copies are due without a mirror: no waiting for them.
    let full = if subject == Subject::None { 0 } else { offered };
    let delivered = counter.settled(delivered_before + full)? - delivered_before;
    running.check_alive()?;
    let used = meter.read()?;
    let agent = running.finish()?;
    let strays = counter.strays()? - strays_before;
    if strays > 0 {
        println!(
            "   note: the sink counted {strays} tunnel packets of {} that are not VxLAN to port {} with VNI {}",
            subject.label(),
            world.config.vxlan_port,
            world.config.vni
        );
    }
    ensure!(
        offered > 0 && sent.sent > 0,
        "the generator sent nothing ({sent:?}, the pod's eth0 counted {frames})"
    );
    Ok((
        Sample {
            offered,
            delivered,
            delivered_during,
            seconds: sent.seconds,
            machine_cpu_us: used.machine_us,
            process_cpu_us: used.process_us,
            rss_kib: used.peak_rss_kib,
            gbps: None,
            agent,
        },
        command,
    ))
}

fn generator_description(spec: &FloodSpec) -> String {
    format!(
        "{}-byte UDP frames {POD_IP}:{}{} -> {SINK_IP}:{DST_PORT} on the pod's {POD_IF}, AF_PACKET sendmmsg, {}, \
         pinned to CPU {}",
        spec.frame_len,
        spec.src_port,
        if spec.src_ports > 1 {
            format!("+{} ports", spec.src_ports)
        } else {
            String::new()
        },
        spec.pps.map_or_else(
            || "as fast as it goes".to_owned(),
            |p| format!("{p} pps paced per 100 us")
        ),
        spec.cpu.unwrap_or_default()
    )
}

/// `aa:bb:cc:dd:ee:ff` as bytes.
fn mac_bytes(text: &str) -> Result<[u8; 6]> {
    let bytes: Vec<u8> = text
        .split(':')
        .map(|b| u8::from_str_radix(b, 16))
        .collect::<Result<_, _>>()
        .with_context(|| format!("MAC address {text}"))?;
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("MAC address {text} has not 6 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_macs() {
        assert_eq!(
            mac_bytes("02:0a:ff:00:01:9c").unwrap(),
            [2, 10, 255, 0, 1, 156]
        );
        assert!(mac_bytes("02:0a").is_err());
        assert!(mac_bytes("zz:0a:ff:00:01:9c").is_err());
    }
}
