//! Faults the agent must survive, count, or stop on cleanly:
//!
//! - `remote_route_removed_errors_counted_copies_resume`: with the route to the remote VTEP gone,
//!   every copy is counted as `send_error` and the agent keeps running; once the route is back the
//!   copies arrive again, exactly the pod's frames before and after.
//! - `deleted_iface_detached_others_still_mirrored`: of two `--iface`s, the one deleted mid-run is
//!   detached (its TCX links closed) and counted; the other is still mirrored frame for frame.
//! - `deleted_mirror_veth_is_fatal_and_cleaned_up`: someone deletes `mirror-tx` or `mirror-rx`;
//!   the agent stops with one error line naming it and exit code 1, and leaves nothing behind.
//! - `ring_full_drops_copies_not_traffic`: a ping flood the agent cannot keep up with: copies lost
//!   in the AF_XDP ring are counted as `ring_full`, while ping itself loses nothing.
//! - `second_instance_names_the_running_one`: a second agent in the same namespace exits 1 naming
//!   the first one's pid; the first keeps its veth, its links and its copies.
//! - `sigterm_under_load_flushes_and_cleans_up`: SIGTERM during a TCP transfer: exit 0, the final
//!   counts printed, every flow exported to the collector (its packets add up to the copies
//!   captured), every copy sent counted at the remote, and nothing left attached.
//! - `missing_kernel_feature_is_named`: with `bpf(2)` or AF_XDP taken away (seccomp), the agent
//!   exits 1 with one line naming the kernel feature, having created nothing.

use std::{
    collections::BTreeMap,
    net::{SocketAddr, UdpSocket},
    thread,
    time::Duration,
};

use anyhow::{Context as _, Result, bail, ensure};
use mirror_tests::{
    Agent, AgentArgs, Background, Capture, Direction, Metrics, Signal, World,
    attachments::{Hook, attachments, links, tcx_prog_count},
    diff_frames, existing_mirror_bin, iperf,
    netflow_collector::read_v5,
    netns::unique_prefix,
    pod::{FakePod, ifindex, tcx_links},
    report,
    seccomp::{self, Missing},
    skip_unless_root,
    world::{NODE_POD_IF, NODE_POD_IP, NODE_UPLINK_IF, NODE_UPLINK_IP, REMOTE_IP, REMOTE_VTEP_IF},
};

const VNI: u32 = 42;
const PINGS: usize = 20;
/// Each echo request and its reply.
const FRAMES: usize = 2 * PINGS;
/// The node's connected route to the remote (on the uplink).
const REMOTE_NET: &str = "198.18.0.0/24";
/// The mirror veth pair's ends (`mirror-user/src/veth.rs`).
const MIRROR_NEAR: &str = "mirror-tx";
const MIRROR_FAR: &str = "mirror-rx";

fn count(n: usize) -> u64 {
    u64::try_from(n).expect("usize fits in u64")
}

fn dropped(metrics: &Metrics, reason: &str) -> u64 {
    metrics.total("mirror_dropped_packets_total", &[("reason", reason)])
}

/// The pod's frames while it pings the node `PINGS` times (its own capture).
fn pod_pings(world: &World) -> Result<Vec<Vec<u8>>> {
    world.pod_ping_frames(PINGS, None)
}

#[test]
fn remote_route_removed_errors_counted_copies_resume() -> Result<()> {
    if skip_unless_root("remote_route_removed_errors_counted_copies_resume") {
        return Ok(());
    }
    let world = World::new(VNI)?;
    let mut remote = Capture::start(&world.remote, REMOTE_VTEP_IF, Direction::In, None)?;
    let mut agent = Agent::start(&world.node, &AgentArgs::vxlan(&world, &[NODE_POD_IF]))?;

    let before = pod_pings(&world)?;
    remote.wait_for_frames(FRAMES, Duration::from_secs(10), Duration::from_millis(300));

    world
        .node
        .ip(["route", "del", REMOTE_NET, "dev", NODE_UPLINK_IF])
        .context("removing the node's route to the remote")?;
    let unroutable = pod_pings(&world)?;
    let metrics = agent.wait_for_metrics(Duration::from_secs(10), |m| {
        dropped(m, "send_error") >= count(FRAMES)
    })?;
    ensure!(
        dropped(&metrics, "send_error") == count(FRAMES),
        "without a route to the remote {} copies were counted as send_error, expected {FRAMES}",
        dropped(&metrics, "send_error")
    );
    ensure!(
        agent.is_running()?,
        "the agent exited when its remote became unreachable"
    );
    ensure!(
        remote.frames_so_far() == FRAMES,
        "copies reached the remote without a route to it"
    );

    world
        .node
        .ip([
            "route",
            "add",
            REMOTE_NET,
            "dev",
            NODE_UPLINK_IF,
            "src",
            NODE_UPLINK_IP,
        ])
        .context("putting the route to the remote back")?;
    let after = pod_pings(&world)?;
    remote.wait_for_frames(
        2 * FRAMES,
        Duration::from_secs(10),
        Duration::from_millis(500),
    );
    let metrics = agent.wait_for_metrics(Duration::from_secs(5), |m| {
        m.total("mirror_sent_packets_total", &[]) >= count(2 * FRAMES)
    })?;
    let captured = metrics.total("mirror_captured_packets_total", &[("iface", NODE_POD_IF)]);
    let sent = metrics.total("mirror_sent_packets_total", &[]);
    let all_dropped = metrics.total("mirror_dropped_packets_total", &[]);
    report(&format!(
        "route removed: captured {captured}, sent {sent}, dropped {all_dropped} ({} send_error), \
         {} frames unroutable",
        dropped(&metrics, "send_error"),
        unroutable.len()
    ));
    ensure!(
        captured == count(3 * FRAMES) && sent == count(2 * FRAMES) && all_dropped == count(FRAMES),
        "captured {captured}, sent {sent}, dropped {all_dropped}; expected {}, {}, {FRAMES}",
        3 * FRAMES,
        2 * FRAMES
    );
    let remote_frames = remote.finish()?;
    let expected = [before, after].concat();
    if let Some(diff) = diff_frames(&expected, &remote_frames) {
        bail!("the remote did not get exactly the pod's frames sent while routable: {diff}");
    }
    Ok(())
}

#[test]
fn deleted_iface_detached_others_still_mirrored() -> Result<()> {
    if skip_unless_root("deleted_iface_detached_others_still_mirrored") {
        return Ok(());
    }
    let world = World::new(VNI)?;
    let coffee = FakePod::start(
        &world.node,
        &format!("coffee-{}", unique_prefix()),
        "vethcoffee",
        11,
    )?;
    let tea = FakePod::start(
        &world.node,
        &format!("tea-{}", unique_prefix()),
        "vethtea",
        12,
    )?;
    let agent = Agent::start(
        &world.node,
        &AgentArgs::vxlan(&world, &["vethcoffee", "vethtea"]),
    )?;
    let coffee_ifindex = ifindex(&world.node, coffee.host_if())?;
    ensure!(
        tcx_links(agent.pid())?
            .iter()
            .any(|l| l.ifindex == coffee_ifindex),
        "no TCX link of vethcoffee in the agent: the check below would be blind"
    );

    // Deleted by hand, while the pod's process lives on.
    world
        .node
        .ip(["link", "del", coffee.host_if()])
        .context("deleting vethcoffee")?;
    let metrics = agent.wait_for_metrics(Duration::from_secs(5), |m| {
        m.total("mirror_detach_total", &[("reason", "gone")]) == 1
            && m.total("mirror_attached_interfaces", &[]) == 1
    })?;
    ensure!(
        metrics.total("mirror_detach_total", &[("reason", "gone")]) == 1
            && metrics.total("mirror_attached_interfaces", &[]) == 1,
        "after deleting vethcoffee: detach_total{{gone}} {}, attached {} (expected 1 and 1)",
        metrics.total("mirror_detach_total", &[("reason", "gone")]),
        metrics.total("mirror_attached_interfaces", &[])
    );
    let leftovers: Vec<_> = tcx_links(agent.pid())?
        .into_iter()
        .filter(|l| l.ifindex == coffee_ifindex)
        .collect();
    ensure!(
        leftovers.is_empty(),
        "the agent still holds TCX links of the deleted vethcoffee: {leftovers:?}"
    );
    for hook in Hook::ALL {
        ensure!(
            tcx_prog_count(&world.node, tea.host_if(), hook)? == 1,
            "vethtea lost its {} program",
            hook.as_str()
        );
    }

    let mut tea_capture = Capture::start(&world.node, tea.host_if(), Direction::InOut, None)?;
    let mut remote = Capture::start(&world.remote, REMOTE_VTEP_IF, Direction::In, None)?;
    tea.ping_node(PINGS)?;
    remote.wait_for_frames(FRAMES, Duration::from_secs(10), Duration::from_millis(300));
    let tea_frames = tea_capture.finish()?;
    let remote_frames = remote.finish()?;
    ensure!(tea_frames.len() == FRAMES, "vethtea was not quiet");
    if let Some(diff) = diff_frames(&tea_frames, &remote_frames) {
        bail!("after vethcoffee was deleted, vethtea's copies are not its frames: {diff}");
    }
    let metrics = agent.wait_for_metric(
        "mirror_captured_packets_total",
        &[("iface", "vethtea")],
        count(FRAMES),
        Duration::from_secs(5),
    )?;
    let captured = metrics.total("mirror_captured_packets_total", &[("iface", "vethtea")]);
    ensure!(
        captured == count(FRAMES),
        "vethtea counted {captured} copies, expected {FRAMES}"
    );
    drop(coffee);
    Ok(())
}

#[test]
fn deleted_mirror_veth_is_fatal_and_cleaned_up() -> Result<()> {
    if skip_unless_root("deleted_mirror_veth_is_fatal_and_cleaned_up") {
        return Ok(());
    }
    for end in [MIRROR_NEAR, MIRROR_FAR] {
        deleted_mirror_veth(end).with_context(|| format!("deleting {end}"))?;
    }
    Ok(())
}

fn deleted_mirror_veth(end: &str) -> Result<()> {
    let world = World::new(VNI)?;
    let before = links(&world.node)?;
    let mut agent = Agent::start(&world.node, &AgentArgs::vxlan(&world, &[NODE_POD_IF]))?;
    ensure!(
        !attachments(&world.node, NODE_POD_IF)?.is_empty(),
        "nothing attached while the agent runs: the checks are blind"
    );
    world.node.ip(["link", "del", end])?;
    let Some(status) = agent.wait_exit(Duration::from_secs(10))? else {
        bail!("the agent still runs 10 s after {end} was deleted");
    };
    let stderr = agent.stderr_lines();
    ensure!(
        status.code() == Some(1),
        "the agent exited with {status} after {end} was deleted, expected 1; stderr: {stderr:?}"
    );
    let errors: Vec<_> = stderr.iter().filter(|l| l.starts_with("error:")).collect();
    ensure!(
        errors.len() == 1
            && errors[0].contains(&format!(
                "the mirror veth {MIRROR_NEAR}/{MIRROR_FAR} was deleted"
            )),
        "expected one error line naming the mirror veth, got {errors:?}"
    );
    ensure!(
        stderr.iter().any(|l| l.starts_with("mirror: stopped: ")),
        "no final counts printed: {stderr:?}"
    );
    let after = links(&world.node)?;
    ensure!(
        after == before,
        "links after the agent stopped: {after:?}, before it started: {before:?}"
    );
    let left = attachments(&world.node, NODE_POD_IF)?;
    ensure!(left.is_empty(), "left attached: {left:#?}");
    // The pod's own traffic never depended on the mirror.
    world.ping_node_from_pod(5, None)
}

/// `N packets transmitted, M received` from ping's summary.
fn ping_counts(stdout: &str) -> Option<(u64, u64)> {
    let line = stdout.lines().find(|l| l.contains("packets transmitted"))?;
    let mut words = line.split_whitespace();
    let transmitted = words.next()?.parse().ok()?;
    let received = line
        .split(", ")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some((transmitted, received))
}

/// Copies lost on their way to the agent: clones that failed or did not fit, and the ring.
fn lost_before_capture(metrics: &Metrics) -> u64 {
    ["ring_full", "clone_failed", "too_big"]
        .iter()
        .map(|r| dropped(metrics, r))
        .sum()
}

/// Echo requests of one flood, and floods tried until the agent falls behind.
const FLOOD_PINGS: u64 = 100_000;
const FLOODS: usize = 3;

#[test]
fn ring_full_drops_copies_not_traffic() -> Result<()> {
    if skip_unless_root("ring_full_drops_copies_not_traffic") {
        return Ok(());
    }
    let world = World::new(VNI)?;
    // Every copy goes to four remotes (one listens): four sends a copy make sure the agent
    // falls behind a flood on any machine.
    let remotes: Vec<String> = (0..4)
        .map(|i| format!("{REMOTE_IP}:{}", world.config.vxlan_port + i))
        .collect();
    let remotes: Vec<&str> = remotes.iter().map(String::as_str).collect();
    let args = AgentArgs::tunnel(&world, &[NODE_POD_IF], "vxlan", &remotes, &[]);
    let agent = Agent::start(&world.node, &args)?;
    let (mut transmitted, mut ring_full) = (0, 0);
    for flood in 1..=FLOODS {
        // 64 echo requests in flight: far more than the agent copies, never more than the veth
        // queues hold, so any loss would be the mirror's doing.
        let stdout = world
            .pod
            .run(
                "ping",
                [
                    "-f",
                    "-l",
                    "64",
                    "-q",
                    "-c",
                    &FLOOD_PINGS.to_string(),
                    NODE_POD_IP,
                ],
            )
            .context("flood-pinging the node from the pod")?;
        let (sent, received) =
            ping_counts(&stdout).with_context(|| format!("no ping summary in: {stdout}"))?;
        ensure!(
            sent == FLOOD_PINGS && received == sent,
            "under the mirror ping lost traffic: {}",
            stdout.trim()
        );
        transmitted += sent;
        // Every clone either reached the agent or is counted where it was lost; the kernel's
        // drop statistics reach the metrics once a second.
        let frames = 2 * transmitted;
        let metrics = agent.wait_for_metrics(Duration::from_secs(5), |m| {
            m.total("mirror_captured_packets_total", &[]) + lost_before_capture(m) >= frames
        })?;
        ring_full = dropped(&metrics, "ring_full");
        let captured = metrics.total("mirror_captured_packets_total", &[("iface", NODE_POD_IF)]);
        report(&format!(
            "ring_full flood {flood}: {transmitted} echo requests answered, {captured} copies \
             captured, {ring_full} ring_full"
        ));
        ensure!(
            captured + lost_before_capture(&metrics) == frames,
            "{captured} copies captured and {} lost before the agent ({ring_full} ring_full), of \
             {frames} frames",
            lost_before_capture(&metrics)
        );
        if ring_full > 0 {
            break;
        }
    }
    ensure!(
        ring_full > 0,
        "{FLOODS} floods of {FLOOD_PINGS} pings and the agent kept up with every copy: no overload to test"
    );
    Ok(())
}

#[test]
fn second_instance_names_the_running_one() -> Result<()> {
    if skip_unless_root("second_instance_names_the_running_one") {
        return Ok(());
    }
    let world = World::new(VNI)?;
    let args = AgentArgs::vxlan(&world, &[NODE_POD_IF]);
    let mut first = Agent::start(&world.node, &args)?;
    let near = ifindex(&world.node, MIRROR_NEAR)?;
    let links_before = tcx_links(first.pid())?;

    // The same command line again, metrics address included.
    let mut argv = vec!["run".to_owned()];
    argv.extend(args.to_args());
    let bin = existing_mirror_bin()?;
    let mut second = Background::spawn(
        "second mirror",
        &mut world.node.command(&bin.to_string_lossy(), &argv),
    )?;
    let status = second
        .wait(Duration::from_secs(30))
        .context("the second agent did not give up")?;
    let stderr = second.stderr_lines();
    ensure!(
        status.code() == Some(1),
        "the second agent exited with {status}, expected 1; stderr: {stderr:?}"
    );
    let expected = format!(
        "error: another mirror agent (pid {}) owns {MIRROR_NEAR} in this network namespace",
        first.pid()
    );
    ensure!(
        stderr == [expected.clone()],
        "the second agent must print exactly `{expected}`, printed {stderr:?}"
    );

    ensure!(first.is_running()?, "the first agent exited");
    ensure!(
        ifindex(&world.node, MIRROR_NEAR)? == near,
        "{MIRROR_NEAR} was replaced"
    );
    ensure!(
        tcx_links(first.pid())? == links_before,
        "the first agent's TCX links changed"
    );
    for hook in Hook::ALL {
        let programs = tcx_prog_count(&world.node, NODE_POD_IF, hook)?;
        ensure!(
            programs == 1,
            "{programs} TCX {} programs on {NODE_POD_IF}: attached twice?",
            hook.as_str()
        );
    }
    let mut remote = Capture::start(&world.remote, REMOTE_VTEP_IF, Direction::In, None)?;
    let frames = pod_pings(&world)?;
    remote.wait_for_frames(FRAMES, Duration::from_secs(10), Duration::from_millis(300));
    if let Some(diff) = diff_frames(&frames, &remote.finish()?) {
        bail!("the first agent's copies after the second one's attempt: {diff}");
    }
    let metrics = first.wait_for_metric(
        "mirror_captured_packets_total",
        &[],
        count(FRAMES),
        Duration::from_secs(5),
    )?;
    ensure!(
        metrics.total("mirror_captured_packets_total", &[]) == count(FRAMES),
        "the first agent counted {} copies, expected {FRAMES}",
        metrics.total("mirror_captured_packets_total", &[])
    );
    Ok(())
}

/// The collector's port, in the remote.
const COLLECTOR_PORT: u16 = 2055;

/// What a NetFlow v5 collector received: datagrams, records, and the packets they count.
#[derive(Debug, Default)]
struct NetflowReceived {
    datagrams: u64,
    records: u64,
    packets: u64,
}

/// Reads NetFlow v5 datagrams from `socket` until none has come for `quiet`.
fn read_netflow(socket: &UdpSocket, quiet: Duration) -> Result<NetflowReceived> {
    let mut got = NetflowReceived::default();
    for records in read_v5(socket, quiet)? {
        got.datagrams += 1;
        got.records += count(records.len());
        got.packets += records.iter().map(|r| u64::from(r.packets)).sum::<u64>();
    }
    Ok(got)
}

/// The agent's last line: `mirror: stopped: captured C copies, sent S packets, dropped D
/// (reason N, ...), NetFlow R records in G datagrams, E export errors`.
#[derive(Debug, PartialEq, Eq)]
struct Stopped {
    captured: u64,
    sent: u64,
    dropped: BTreeMap<String, u64>,
    netflow: Option<(u64, u64, u64)>,
}

impl Stopped {
    fn parse(line: &str) -> Option<Self> {
        let rest = line.strip_prefix("mirror: stopped: ")?;
        let (counts, rest) = rest.split_once(" (")?;
        let (reasons, netflow) = rest.split_once(')')?;
        let words: Vec<&str> = counts
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|w| !w.is_empty())
            .collect();
        let after = |word: &str| -> Option<u64> {
            let at = words.iter().position(|w| *w == word)?;
            words.get(at + 1)?.parse().ok()
        };
        let dropped = reasons
            .split(", ")
            .filter(|r| !r.is_empty())
            .map(|r| {
                let (reason, count) = r.split_once(' ')?;
                Some((reason.to_owned(), count.parse().ok()?))
            })
            .collect::<Option<BTreeMap<_, _>>>()?;
        let netflow = match netflow.strip_prefix(", NetFlow ") {
            Some(text) => {
                let numbers: Vec<u64> = text
                    .split_whitespace()
                    .filter_map(|w| w.parse().ok())
                    .collect();
                match numbers[..] {
                    [records, datagrams, errors] => Some((records, datagrams, errors)),
                    _ => return None,
                }
            }
            None => None,
        };
        Some(Self {
            captured: after("captured")?,
            sent: after("sent")?,
            dropped,
            netflow,
        })
    }

    /// Copies dropped after the agent had read them (the others never counted as captured).
    fn dropped_after_capture(&self) -> u64 {
        ["send_error", "too_big", "filtered"]
            .iter()
            .filter_map(|r| self.dropped.get(*r))
            .sum()
    }
}

#[test]
fn stopped_line_is_parsed() {
    let line = "mirror: stopped: captured 10 copies, sent 9 packets, dropped 3 (ring_full 2, \
                too_big 1), NetFlow 4 records in 2 datagrams, 0 export errors";
    let stopped = Stopped::parse(line).unwrap();
    assert_eq!((stopped.captured, stopped.sent), (10, 9));
    assert_eq!(stopped.dropped["ring_full"], 2);
    assert_eq!(stopped.dropped_after_capture(), 1);
    assert_eq!(stopped.netflow, Some((4, 2, 0)));
    let plain = Stopped::parse(
        "mirror: stopped: captured 1 copies, sent 1 packets, dropped 0 (ring_full 0)",
    )
    .unwrap();
    assert_eq!(plain.netflow, None);
}

/// The remote VTEP's received-packet counter once it stops moving.
fn settled_rx(world: &World) -> Result<u64> {
    let mut last = world.remote.link_stats(REMOTE_VTEP_IF)?.rx_packets;
    for _ in 0..50 {
        thread::sleep(Duration::from_millis(200));
        let now = world.remote.link_stats(REMOTE_VTEP_IF)?.rx_packets;
        if now == last {
            return Ok(now);
        }
        last = now;
    }
    Ok(last)
}

#[test]
fn sigterm_under_load_flushes_and_cleans_up() -> Result<()> {
    if skip_unless_root("sigterm_under_load_flushes_and_cleans_up") {
        return Ok(());
    }
    let world = World::new(VNI)?;
    let before = links(&world.node)?;
    let collector_addr = SocketAddr::new(REMOTE_IP.parse()?, COLLECTOR_PORT);
    let collector = world.remote.udp_socket(collector_addr)?;
    let vtep_before = world.remote.link_stats(REMOTE_VTEP_IF)?.rx_packets;
    let mut args = AgentArgs::vxlan(&world, &[NODE_POD_IF]);
    args.extra = vec!["--netflow".into(), collector_addr.to_string()];
    let mut agent = Agent::start(&world.node, &args)?;

    // Paced, so that the copies are not lost in the ring and the counts are worth comparing.
    let mut server = iperf::server(&world.node, NODE_POD_IP)?;
    let transfer = thread::scope(|scope| -> Result<iperf::IperfResult> {
        let client =
            scope.spawn(|| iperf::client(&world.pod, NODE_POD_IP, &["-t", "6", "-b", "200M"]));
        thread::sleep(Duration::from_secs(3));
        let status = agent.stop_with(Signal::Term)?;
        ensure!(
            status.code() == Some(0),
            "the agent exited with {status} after SIGTERM under load"
        );
        client
            .join()
            .map_err(|_| anyhow::anyhow!("the iperf3 client thread panicked"))?
    })?;
    server.wait(Duration::from_secs(10))?;
    ensure!(
        transfer.sent_bytes > 0 && transfer.received_bytes > 0,
        "the transfer did not survive the agent's exit: {transfer:?}"
    );

    let stderr = agent.stderr_lines();
    let stopped = stderr
        .iter()
        .find_map(|l| Stopped::parse(l))
        .with_context(|| format!("no `mirror: stopped:` line: {stderr:?}"))?;
    let netflow = read_netflow(&collector, Duration::from_secs(2))?;
    let arrived = settled_rx(&world)? - vtep_before;
    report(&format!(
        "SIGTERM under load: {stopped:?}; the collector got {netflow:?}; {arrived} copies \
         decapsulated at the remote; iperf3 moved {} bytes",
        transfer.received_bytes
    ));
    ensure!(
        stopped.captured > 1000,
        "only {} copies captured: no load",
        stopped.captured
    );
    ensure!(
        stopped.captured == stopped.sent + stopped.dropped_after_capture(),
        "final counts do not add up: {stopped:?}"
    );
    ensure!(
        arrived == stopped.sent,
        "the agent says it sent {} copies, the remote decapsulated {arrived}",
        stopped.sent
    );
    let Some((records, datagrams, errors)) = stopped.netflow else {
        bail!("no NetFlow counts in the final line: {stopped:?}");
    };
    ensure!(
        errors == 0 && netflow.datagrams == datagrams && netflow.records == records,
        "the agent says {records} records in {datagrams} datagrams ({errors} errors), the \
         collector got {netflow:?}"
    );
    ensure!(
        netflow.packets == stopped.captured,
        "the exported flows count {} packets, the agent captured {} copies: flows were lost at exit",
        netflow.packets,
        stopped.captured
    );

    let after = links(&world.node)?;
    ensure!(
        after == before,
        "links after: {after:?}, before: {before:?}"
    );
    let left = attachments(&world.node, NODE_POD_IF)?;
    ensure!(left.is_empty(), "left attached: {left:#?}");
    Ok(())
}

#[test]
fn missing_kernel_feature_is_named() -> Result<()> {
    if skip_unless_root("missing_kernel_feature_is_named") {
        return Ok(());
    }
    let world = World::new(VNI)?;
    let before = links(&world.node)?;
    let bin = existing_mirror_bin()?;
    let mut argv = vec!["run".to_owned()];
    argv.extend(AgentArgs::vxlan(&world, &[NODE_POD_IF]).to_args());
    for (missing, expected) in [
        (
            Missing::BpfSyscall,
            "error: this kernel has no bpf(2) system call (CONFIG_BPF_SYSCALL)",
        ),
        (
            Missing::AfXdp,
            "error: this kernel has no AF_XDP sockets (CONFIG_XDP_SOCKETS)",
        ),
    ] {
        let mut cmd = world.node.command(&bin.to_string_lossy(), &argv);
        seccomp::deny(&mut cmd, missing);
        let mut agent = Background::spawn("mirror", &mut cmd)?;
        let status = agent.wait(Duration::from_secs(30))?;
        let stderr = agent.stderr_lines();
        ensure!(
            status.code() == Some(1),
            "without {missing:?} the agent exited with {status}, expected 1; stderr: {stderr:?}"
        );
        ensure!(
            stderr.len() == 1 && stderr[0].starts_with(expected),
            "without {missing:?} the agent must print one line starting with `{expected}`, printed {stderr:?}"
        );
        let after = links(&world.node)?;
        ensure!(
            after == before,
            "without {missing:?}: links {after:?}, before {before:?}"
        );
    }
    Ok(())
}
