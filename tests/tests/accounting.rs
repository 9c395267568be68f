//! Every copy accounted for, per interface and direction, while two pods send TCP at once.
//!
//! Two fake pods each run a paced iperf3 transfer (and pings) to the node; the agent mirrors both
//! host-side veths to one remote VTEP. While the traffic flows `/metrics` is scraped several
//! times; afterwards every count is compared with what the wire shows:
//!
//! - at every scrape, and for every interface and direction, the counters only grow; over all
//!   interfaces, copies captured minus copies sent or dropped after capture is between 0 and one
//!   batch (64: the agent counts a batch captured before it sends it), and exactly 0 at the end;
//! - for every interface and direction, `mirror_captured_packets_total` equals the copies of
//!   that interface and direction the remote VTEP decapsulated (every captured copy was sent:
//!   no drop after capture), and is at most the frames tcpdump saw cross that veth in that
//!   direction; over all of them, the frames not captured are exactly the copies counted lost
//!   before capture (`ring_full`, `clone_failed`: on a busy machine the mirror veth's queue can
//!   overflow even at this pace).
//!
//! Copies are told apart at the remote by their inner MAC addresses: each pod's own, as source
//! (ingress on its veth) or destination (egress).

use std::{
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, ensure};
use mirror_tests::{
    Agent, AgentArgs, Capture, Direction, Metrics, World, iperf, netns::unique_prefix,
    pod::FakePod, report, skip_unless_root, world::REMOTE_VTEP_IF,
};

const VNI: u32 = 42;
/// Each pod's transfer: paced so that the debug agent on two busy cores copies everything.
const SECONDS: &str = "5";
const PACE: &str = "60M";
/// Headers are enough to tell the copies apart.
const SNAPLEN: u32 = 96;
/// Frames the agent reads (and counts captured) at once before sending them.
const BATCH: u64 = 64;
const SCRAPES: usize = 6;
/// Drops that happen after a copy was captured; the others happen before.
const AFTER_CAPTURE: [&str; 3] = ["send_error", "too_big", "filtered"];

/// A pod, its veth's capture, and its MAC.
struct Side {
    pod: FakePod,
    capture: Capture,
    mac: [u8; 6],
}

fn parse_mac(text: &str) -> Result<[u8; 6]> {
    let bytes: Vec<u8> = text
        .split(':')
        .map(|b| u8::from_str_radix(b, 16))
        .collect::<Result<_, _>>()
        .with_context(|| format!("MAC {text}"))?;
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("MAC {text} is not 6 bytes"))
}

/// Frames of `frames` from (`ingress`) or to (`egress`) `mac`.
fn by_direction(frames: &[Vec<u8>], mac: [u8; 6]) -> (u64, u64) {
    let from = frames.iter().filter(|f| f.get(6..12) == Some(&mac)).count();
    let to = frames.iter().filter(|f| f.get(..6) == Some(&mac)).count();
    (from as u64, to as u64)
}

fn captured(metrics: &Metrics, iface: &str, direction: &str) -> u64 {
    metrics.total(
        "mirror_captured_packets_total",
        &[("iface", iface), ("direction", direction)],
    )
}

/// Copies lost before they reached the agent: clones that failed or found the ring full.
/// (`too_big` counts both frames too big to clone and copies too big to send; none here.)
fn lost_before_capture(metrics: &Metrics) -> u64 {
    ["ring_full", "clone_failed"]
        .iter()
        .map(|r| metrics.total("mirror_dropped_packets_total", &[("reason", r)]))
        .sum()
}

/// Copies captured but neither sent nor dropped after capture (one remote, no fragments).
fn in_flight(metrics: &Metrics) -> i128 {
    let dropped: u64 = AFTER_CAPTURE
        .iter()
        .map(|r| metrics.total("mirror_dropped_packets_total", &[("reason", r)]))
        .sum();
    i128::from(metrics.total("mirror_captured_packets_total", &[]))
        - i128::from(metrics.total("mirror_sent_packets_total", &[]))
        - i128::from(dropped)
}

#[test]
fn every_copy_accounted_per_interface_under_load() -> Result<()> {
    if skip_unless_root("every_copy_accounted_per_interface_under_load") {
        return Ok(());
    }
    let world = World::new(VNI)?;
    let mut sides = Vec::new();
    for (base, veth, subnet) in [("coffee", "vethcoffee", 11), ("tea", "vethtea", 12)] {
        sides.push(Side::start(&world, base, veth, subnet)?);
    }
    let mut remote = Capture::start(&world.remote, REMOTE_VTEP_IF, Direction::In, Some(SNAPLEN))?;
    let ifaces: Vec<&str> = sides.iter().map(|s| s.pod.host_if()).collect();
    let agent = Agent::start(&world.node, &AgentArgs::vxlan(&world, &ifaces))?;
    let scrapes = traffic(&world, &sides, &agent)?;
    check_scrapes(&scrapes, &ifaces)?;

    // Afterwards, exact. The kernel's drop statistics reach the metrics once a second.
    thread::sleep(Duration::from_millis(1500));
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let metrics = agent.metrics()?;
        if in_flight(&metrics) == 0 || Instant::now() > deadline {
            break metrics;
        }
        thread::sleep(Duration::from_millis(100));
    };
    ensure!(
        in_flight(&metrics) == 0,
        "at rest, captured minus sent and dropped after capture is {}",
        in_flight(&metrics)
    );
    for reason in AFTER_CAPTURE.iter().chain(&["malformed"]) {
        let lost = metrics.total("mirror_dropped_packets_total", &[("reason", reason)]);
        ensure!(
            lost == 0,
            "{lost} copies dropped as {reason}: nothing here should be"
        );
    }
    remote.wait_until_quiet(Duration::from_millis(500), Duration::from_secs(10));
    let remote_frames = remote.finish()?;
    let mut lines = Vec::new();
    let mut missing = 0;
    for side in &mut sides {
        let iface = side.pod.host_if().to_owned();
        let wire = by_direction(&side.capture.finish()?, side.mac);
        let arrived = by_direction(&remote_frames, side.mac);
        for (direction, on_wire, at_remote) in [
            ("ingress", wire.0, arrived.0),
            ("egress", wire.1, arrived.1),
        ] {
            let counted = captured(&metrics, &iface, direction);
            lines.push(format!(
                "{iface} {direction}: {on_wire} on the wire, {counted} captured, {at_remote} at the remote"
            ));
            // Every copy captured was sent: the remote has exactly those of this interface.
            ensure!(
                counted == at_remote && counted <= on_wire,
                "{iface} {direction}: {on_wire} frames crossed the veth, the agent counted {counted} \
                 captured, the remote decapsulated {at_remote}"
            );
            missing += on_wire - counted;
        }
    }
    // The frames not captured are the copies the kernel says it lost on the way.
    let lost = lost_before_capture(&metrics);
    report(&format!(
        "accounting: {}; {lost} lost before capture",
        lines.join("; ")
    ));
    ensure!(
        missing == lost,
        "{missing} frames crossed the veths without being captured, the agent counts {lost} lost \
         before capture (ring_full, clone_failed)"
    );
    Ok(())
}

impl Side {
    /// A fake pod on `veth`, without segmentation offloads (so that tcpdump sees the MTU-sized
    /// frames the copies are made of, not the 64 KiB segments the stack hands down), and a
    /// capture of its veth.
    fn start(world: &World, base: &str, veth: &str, subnet: u8) -> Result<Self> {
        let pod = FakePod::start(
            &world.node,
            &format!("{base}-{}", unique_prefix()),
            veth,
            subnet,
        )?;
        let offloads = ["tso", "off", "gso", "off"];
        for (mut cmd, dev) in [
            (
                pod.command("ethtool", ["-K", "eth0"].iter().chain(&offloads)),
                "eth0",
            ),
            (
                world
                    .node
                    .command("ethtool", ["-K", veth].iter().chain(&offloads)),
                veth,
            ),
        ] {
            mirror_tests::proc::run(&mut cmd)
                .with_context(|| format!("turning segmentation offloads off on {dev}"))?;
        }
        let capture = Capture::start(&world.node, veth, Direction::InOut, Some(SNAPLEN))?;
        let mac = parse_mac(&pod.mac()?)?;
        Ok(Self { pod, capture, mac })
    }
}

/// Each pod's paced iperf3 transfer and pings to the node, with `/metrics` scraped meanwhile.
fn traffic(world: &World, sides: &[Side], agent: &Agent<'_>) -> Result<Vec<Metrics>> {
    let mut servers = sides
        .iter()
        .map(|s| iperf::server(&world.node, &s.pod.node_ip()))
        .collect::<Result<Vec<_>>>()?;
    let port = iperf::IPERF_PORT.to_string();
    let scrapes = thread::scope(|scope| -> Result<Vec<Metrics>> {
        let clients: Vec<_> = sides
            .iter()
            .map(|side| {
                let port = port.as_str();
                scope.spawn(move || -> Result<()> {
                    let node_ip = side.pod.node_ip();
                    let args = ["-c", &node_ip, "-p", port, "-t", SECONDS, "-b", PACE];
                    mirror_tests::proc::run(&mut side.pod.command("iperf3", args))?;
                    side.pod.ping_node(20)
                })
            })
            .collect();
        let mut scrapes = Vec::new();
        thread::sleep(Duration::from_millis(700));
        for _ in 0..SCRAPES {
            scrapes.push(agent.metrics()?);
            thread::sleep(Duration::from_millis(700));
        }
        for client in clients {
            client
                .join()
                .map_err(|_| anyhow::anyhow!("a traffic thread panicked"))??;
        }
        Ok(scrapes)
    })?;
    for server in &mut servers {
        server.wait(Duration::from_secs(10))?;
    }
    Ok(scrapes)
}

/// During the traffic: counters only grow, and at most a batch is between capture and send.
fn check_scrapes(scrapes: &[Metrics], ifaces: &[&str]) -> Result<()> {
    for (i, pair) in scrapes.windows(2).enumerate() {
        for iface in ifaces {
            for direction in ["ingress", "egress"] {
                let (before, after) = (
                    captured(&pair[0], iface, direction),
                    captured(&pair[1], iface, direction),
                );
                ensure!(
                    after >= before,
                    "{iface} {direction}: captured went from {before} to {after} between scrapes {i} and {}",
                    i + 1
                );
            }
        }
    }
    for (i, scrape) in scrapes.iter().enumerate() {
        let gap = in_flight(scrape);
        ensure!(
            (0..=i128::from(BATCH)).contains(&gap),
            "scrape {i}: captured minus sent and dropped after capture is {gap}, outside 0..={BATCH}"
        );
    }
    ensure!(
        scrapes
            .last()
            .is_some_and(|m| m.total("mirror_captured_packets_total", &[]) > 10_000),
        "the scrapes did not happen under load"
    );
    Ok(())
}
