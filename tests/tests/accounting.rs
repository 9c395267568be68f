//! Every copy accounted for, per interface and direction, while two pods send TCP at once.
//!
//! Two fake pods each run a paced iperf3 transfer (and pings) to the node; the agent mirrors both
//! host-side veths to one remote VTEP over an uplink of MTU 1500 with `--oversize drop` and a
//! `--filter` that leaves the iperf3 server's packets (the ACKs) out. The coffee pod's full-size
//! frames do not fit a VxLAN packet (dropped as `too_big`); the tea pod sends smaller segments,
//! whose copies are all sent: under load copies are sent and lost after capture for two reasons. While the traffic flows `/metrics` is
//! scraped several times; afterwards every count is compared with what the wire shows:
//!
//! - at every scrape, and for every interface and direction, the counters only grow, and copies
//!   captured minus copies sent (`mirror_sent_copies_total`) and dropped after capture
//!   (`mirror_dropped_copies_total`) is between 0 and one batch (64: the agent counts a batch
//!   captured before it sends it); at the end it is exactly 0, and the per-interface counts add
//!   up to the global ones (`mirror_sent_packets_total`, `mirror_dropped_packets_total`);
//! - for every interface and direction, `mirror_sent_copies_total` equals the copies of that
//!   interface and direction the remote VTEP decapsulated, and `mirror_captured_packets_total`
//!   is at most the frames tcpdump saw cross that veth in that direction; over all of them, the
//!   frames not captured are exactly the copies counted lost before capture (`ring_full`,
//!   `clone_failed`: on a busy machine the mirror veth's queue can overflow even at this pace).
//!
//! Copies are told apart at the remote by their inner MAC addresses: each pod's own, as source
//! (ingress on its veth) or destination (egress).

use std::{
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, ensure};
use mirror_tests::{
    Agent, AgentArgs, Capture, Direction, Metrics, World, iperf,
    netns::unique_prefix,
    pod::FakePod,
    report, skip_unless_root,
    world::{REMOTE_VTEP_IF, WorldConfig},
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
/// A full-size frame (1514 bytes) plus VxLAN's 50 does not fit.
const UPLINK_MTU: u32 = 1500;
const DIRECTIONS: [&str; 2] = ["ingress", "egress"];

/// A pod, its veth's capture, and its MAC.
struct Side {
    pod: FakePod,
    capture: Capture,
    mac: [u8; 6],
    /// The transfer's TCP maximum segment size (`iperf3 -M`), if not the MTU's.
    mss: Option<&'static str>,
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

/// The copies of one interface and direction, as the agent counts them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Copies {
    captured: u64,
    sent: u64,
    /// By reason, as [`AFTER_CAPTURE`].
    dropped: [u64; 3],
}

impl Copies {
    fn of(metrics: &Metrics, iface: &str, direction: &str) -> Self {
        let labels = [("iface", iface), ("direction", direction)];
        Self {
            captured: metrics.total("mirror_captured_packets_total", &labels),
            sent: metrics.total("mirror_sent_copies_total", &labels),
            dropped: AFTER_CAPTURE.map(|reason| {
                metrics.total(
                    "mirror_dropped_copies_total",
                    &[labels[0], labels[1], ("reason", reason)],
                )
            }),
        }
    }

    fn dropped(&self, reason: &str) -> u64 {
        AFTER_CAPTURE
            .iter()
            .zip(self.dropped)
            .find(|(r, _)| **r == reason)
            .map_or(0, |(_, n)| n)
    }

    /// Captured but neither sent nor dropped yet.
    fn in_flight(&self) -> i128 {
        i128::from(self.captured)
            - i128::from(self.sent)
            - self.dropped.iter().copied().map(i128::from).sum::<i128>()
    }
}

/// Copies lost before they reached the agent: clones that failed or found the ring full.
/// (`too_big` counts both frames too big to clone and copies too big to send; none here.)
fn lost_before_capture(metrics: &Metrics) -> u64 {
    ["ring_full", "clone_failed"]
        .iter()
        .map(|r| metrics.total("mirror_dropped_packets_total", &[("reason", r)]))
        .sum()
}

/// The largest number of copies any interface and direction has captured but neither sent nor
/// dropped, and the smallest (negative if more went out than came in).
fn in_flight(metrics: &Metrics, ifaces: &[&str]) -> (i128, i128) {
    let gaps = ifaces.iter().flat_map(|iface| {
        DIRECTIONS
            .iter()
            .map(|direction| Copies::of(metrics, iface, direction).in_flight())
    });
    gaps.fold((i128::MIN, i128::MAX), |(max, min), gap| {
        (max.max(gap), min.min(gap))
    })
}

#[test]
fn every_copy_accounted_per_interface_under_load() -> Result<()> {
    if skip_unless_root("every_copy_accounted_per_interface_under_load") {
        return Ok(());
    }
    let world = World::build(WorldConfig {
        vni: VNI,
        uplink_mtu: UPLINK_MTU,
        ..WorldConfig::default()
    })?;
    let mut sides = Vec::new();
    // coffee's 1514-byte frames are too big for the tunnel, tea's 1266-byte ones fit.
    for (base, veth, subnet, mss) in [
        ("coffee", "vethcoffee", 11, None),
        ("tea", "vethtea", 12, Some("1200")),
    ] {
        let mut side = Side::start(&world, base, veth, subnet)?;
        side.mss = mss;
        sides.push(side);
    }
    let mut remote = Capture::start(&world.remote, REMOTE_VTEP_IF, Direction::In, Some(SNAPLEN))?;
    let ifaces: Vec<&str> = sides.iter().map(|s| s.pod.host_if()).collect();
    let mut args = AgentArgs::vxlan(&world, &ifaces);
    // The filter runs in user space: per interface, what it leaves out is then a captured
    // copy dropped as `filtered` (in the kernel it is never captured; tests/filter.rs).
    args.extra = [
        "--oversize",
        "drop",
        "--filter",
        &format!("not tcp src port {}", iperf::IPERF_PORT),
        "--filter-path",
        "user",
    ]
    .map(str::to_owned)
    .to_vec();
    let agent = Agent::start(&world.node, &args)?;
    let scrapes = traffic(&world, &sides, &agent)?;
    check_scrapes(&scrapes, &ifaces)?;

    // Afterwards, exact. The kernel's drop statistics reach the metrics once a second.
    thread::sleep(Duration::from_millis(1500));
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics = loop {
        let metrics = agent.metrics()?;
        if in_flight(&metrics, &ifaces) == (0, 0) || Instant::now() > deadline {
            break metrics;
        }
        thread::sleep(Duration::from_millis(100));
    };
    check_at_rest(&metrics, &sides)?;
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
            let copies = Copies::of(&metrics, &iface, direction);
            lines.push(format!(
                "{iface} {direction}: {on_wire} on the wire, {} captured, {} sent, {} filtered, \
                 {} too big, {at_remote} at the remote",
                copies.captured,
                copies.sent,
                copies.dropped("filtered"),
                copies.dropped("too_big"),
            ));
            // The remote has exactly the copies of this interface counted sent.
            ensure!(
                copies.sent == at_remote && copies.captured <= on_wire,
                "{iface} {direction}: {on_wire} frames crossed the veth, the agent counted {copies:?}, \
                 the remote decapsulated {at_remote}"
            );
            missing += on_wire - copies.captured;
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
        Ok(Self {
            pod,
            capture,
            mac,
            mss: None,
        })
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
                    let mut args = vec!["-c", &node_ip, "-p", port, "-t", SECONDS, "-b", PACE];
                    if let Some(mss) = side.mss {
                        args.extend(["-M", mss]);
                    }
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

/// During the traffic: counters only grow, and per interface and direction at most a batch is
/// between capture and send or drop.
fn check_scrapes(scrapes: &[Metrics], ifaces: &[&str]) -> Result<()> {
    for (i, pair) in scrapes.windows(2).enumerate() {
        for iface in ifaces {
            for direction in DIRECTIONS {
                let (before, after) = (
                    Copies::of(&pair[0], iface, direction),
                    Copies::of(&pair[1], iface, direction),
                );
                let grew = after.captured >= before.captured
                    && after.sent >= before.sent
                    && after
                        .dropped
                        .iter()
                        .zip(before.dropped)
                        .all(|(a, b)| *a >= b);
                ensure!(
                    grew,
                    "{iface} {direction}: the counters went from {before:?} to {after:?} between \
                     scrapes {i} and {}",
                    i + 1
                );
            }
        }
    }
    for (i, scrape) in scrapes.iter().enumerate() {
        let (max, min) = in_flight(scrape, ifaces);
        ensure!(
            min >= 0 && max <= i128::from(BATCH),
            "scrape {i}: per interface and direction, captured minus sent and dropped after \
             capture is between {min} and {max}, outside 0..={BATCH}"
        );
    }
    let last = scrapes.last().context("no scrapes")?;
    ensure!(
        last.total("mirror_captured_packets_total", &[]) > 10_000,
        "the scrapes did not happen under load"
    );
    ensure!(
        ["too_big", "filtered"]
            .iter()
            .all(|r| last.total("mirror_dropped_copies_total", &[("reason", r)]) > 0),
        "under load, no copies were dropped as too_big or filtered yet"
    );
    Ok(())
}

/// Afterwards: per interface and direction nothing is in flight, the transfers' copies were
/// sent or dropped as expected, and the per-interface counts add up to the global ones.
fn check_at_rest(metrics: &Metrics, sides: &[Side]) -> Result<()> {
    let mut all = Copies::default();
    for side in sides {
        let iface = side.pod.host_if();
        for direction in DIRECTIONS {
            let copies = Copies::of(metrics, iface, direction);
            ensure!(
                copies.in_flight() == 0,
                "at rest, {iface} {direction}: captured minus sent and dropped after capture is {} \
                 ({copies:?})",
                copies.in_flight()
            );
            all.captured += copies.captured;
            all.sent += copies.sent;
            for (sum, n) in all.dropped.iter_mut().zip(copies.dropped) {
                *sum += n;
            }
        }
        // The transfer's data (from the pod: ingress) is too big at full size and sent when
        // smaller; its ACKs (egress) are filtered.
        let (ingress, egress) = (
            Copies::of(metrics, iface, "ingress"),
            Copies::of(metrics, iface, "egress"),
        );
        let data = if side.mss.is_some() {
            ingress.sent
        } else {
            ingress.dropped("too_big")
        };
        ensure!(
            // ACKs are fewer than segments, and fewer still where the receiver coalesces more.
            data > 1000 && egress.dropped("filtered") > 100,
            "{iface}: expected the transfer's data {} and its ACKs filtered: ingress {ingress:?}, \
             egress {egress:?}",
            if side.mss.is_some() {
                "sent"
            } else {
                "dropped as too_big"
            },
        );
    }
    ensure!(
        all.dropped("send_error") == 0
            && metrics.total("mirror_dropped_packets_total", &[("reason", "malformed")]) == 0,
        "copies failed to send or were malformed: {all:?}"
    );
    // One remote and no fragments: a copy sent is a tunnel packet sent.
    let global = Copies {
        captured: metrics.total("mirror_captured_packets_total", &[]),
        sent: metrics.total("mirror_sent_packets_total", &[]),
        dropped: AFTER_CAPTURE
            .map(|r| metrics.total("mirror_dropped_packets_total", &[("reason", r)])),
    };
    ensure!(
        global == all,
        "the per-interface counts add up to {all:?}, the global ones are {global:?}"
    );
    Ok(())
}
