//! IPFIX export (`--netflow ipfix://IP:PORT`), judged by real collectors: nfcapd stores what the
//! agent exports and nfdump reads it back; the pod's own capture says what the records must be.
//!
//! - `live_ipv4_and_ipv6_flows_match_the_pod_capture`: the pod link is dual-stack; the pod sends
//!   IPv4 and IPv6 pings, UDP datagrams and a TCP transfer each; on SIGTERM the agent exports
//!   every cached flow, and nfdump's records equal, record for record, what the agent's rules make
//!   of the pod's capture, IPv6 included (which NetFlow v5 could only count).
//! - `replay_ipv6_matches_softflowd_ipfix`: the same kind of capture through `mirror replay
//!   --netflow ipfix://` and through `softflowd -v 10`, each into its own nfcapd.
//!
//! Keys, interfaces and the FIN/RST rule are those of the v5 tests (see `netflow.rs`); IPv6 flows
//! are keyed the same way, with the traffic class for the ToS and ICMPv6 type * 256 + code in the
//! destination port. Segmentation offloads are off on the pod link so the pod's capture holds
//! the packets the wire carries.

use std::{
    fmt::Write as _,
    net::{IpAddr, SocketAddr},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};
use mirror_tests::{
    Agent, AgentArgs, Capture, Direction, Metrics, Signal, World,
    nfdump::{
        self, FlowRecord, NFCAPD_PORT, Nfcapd, PROTO_ICMP, PROTO_ICMPV6, PROTO_UDP, diff_records,
        diff_totals, expected_records, observe_any, totals_by_five_tuple,
    },
    proc::Background,
    report, skip_unless_root,
    world::{NODE_POD_IF, NODE_POD_IP, NODE_POD_IP6, POD_IF, POD_IP, POD_IP6, REMOTE_IP},
};

const VNI: u32 = 42;
/// Echo requests per family; 84 bytes each over IPv4, 104 over IPv6 (56 bytes of data).
const PINGS: u64 = 10;
const PING_BYTES_V4: u64 = 84;
const PING_BYTES_V6: u64 = 104;
/// UDP datagrams per flow, their payload, and the flows' ports (pod port, node port).
const UDP_COUNT: u64 = 3;
const UDP_PAYLOAD: usize = 300;
const UDP_V4: (u16, u16) = (50_001, 40_001);
const UDP_V6: (u16, u16) = (50_006, 40_006);
/// The TCP transfer per family, and its pace.
const TCP_TRANSFER: &str = "1M";
const TCP_PACE: &str = "100M";
/// The softflowd and replay collectors of the replay test, in the remote.
const SOFTFLOWD_PORT: u16 = 2055;
const REPLAY_PORT: u16 = 2056;
/// Enough for Ethernet + IPv6 + TCP with options.
const SNAPLEN: u32 = 160;

fn ip(text: &str) -> IpAddr {
    text.parse().expect("a constant IP address")
}

fn ipfix_collector(port: u16) -> String {
    format!("ipfix://{REMOTE_IP}:{port}")
}

/// A dual-stack pod link without segmentation offloads (see the module documentation).
fn dual_stack_world() -> Result<World> {
    let world = World::new(VNI)?;
    for (ns, dev) in [(&world.pod, POD_IF), (&world.node, NODE_POD_IF)] {
        ns.run(
            "ethtool",
            ["-K", dev, "tso", "off", "gso", "off", "gro", "off"],
        )
        .with_context(|| format!("turning segmentation offloads off on {dev}"))?;
    }
    world.wire_pod_ipv6()?;
    Ok(world)
}

/// `UDP_COUNT` datagrams from the pod's `src_port` to a listener on the node's `dst_port`,
/// every one checked as received.
fn udp_flow(
    world: &World,
    pod: IpAddr,
    node: IpAddr,
    (src_port, dst_port): (u16, u16),
) -> Result<()> {
    let listener = world.node.udp_socket(SocketAddr::new(node, dst_port))?;
    listener.set_read_timeout(Some(Duration::from_secs(2)))?;
    let socket = world.pod.udp_socket(SocketAddr::new(pod, src_port))?;
    let payload = vec![0x5a; UDP_PAYLOAD];
    for _ in 0..UDP_COUNT {
        socket
            .send_to(&payload, SocketAddr::new(node, dst_port))
            .with_context(|| format!("sending UDP to [{node}]:{dst_port}"))?;
        thread::sleep(Duration::from_millis(2));
    }
    let mut buf = [0; 2048];
    for i in 0..UDP_COUNT {
        let (len, from) = listener
            .recv_from(&mut buf)
            .with_context(|| format!("datagram {} of {UDP_COUNT} on [{node}]:{dst_port}", i + 1))?;
        ensure!(
            len == UDP_PAYLOAD && from == SocketAddr::new(pod, src_port),
            "[{node}]:{dst_port} got {len} bytes from {from}"
        );
    }
    Ok(())
}

/// Pings, a UDP flow and a paced iperf3 transfer from the pod to the node, over IPv4 and over
/// IPv6.
fn dual_stack_traffic(world: &World) -> Result<()> {
    for (pod, node, udp) in [
        (POD_IP, NODE_POD_IP, UDP_V4),
        (POD_IP6, NODE_POD_IP6, UDP_V6),
    ] {
        world
            .pod
            .run("ping", ["-c", &PINGS.to_string(), "-i", "0.05", "-q", node])
            .with_context(|| format!("pinging {node} from the pod"))?;
        udp_flow(world, ip(pod), ip(node), udp)?;
        mirror_tests::iperf::transfer(
            &world.node,
            node,
            &world.pod,
            &["-n", TCP_TRANSFER, "-b", TCP_PACE],
        )
        .with_context(|| format!("iperf3 from the pod to {node}"))?;
    }
    Ok(())
}

fn parse_mac(text: &str) -> Result<[u8; 6]> {
    let bytes: Vec<u8> = text
        .split(':')
        .map(|b| u8::from_str_radix(b, 16))
        .collect::<Result<_, _>>()
        .with_context(|| format!("MAC address `{text}`"))?;
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("MAC address `{text}` is not 6 bytes"))
}

fn table(records: &[FlowRecord]) -> String {
    let mut sorted = records.to_vec();
    sorted.sort();
    sorted.iter().fold(String::new(), |mut text, r| {
        let _ = write!(text, "\n    {r}");
        text
    })
}

fn netflow_lines(agent: &Agent<'_>) -> String {
    agent.metrics_text().map_or_else(
        |e| format!("(no metrics: {e:#})"),
        |text| Metrics::lines_with_prefix(&text, "mirror_netflow").join("\n  "),
    )
}

/// The records the pod's traffic must make: one flow of each kind the test sent, with the
/// counts the test itself knows (the capture decides the rest, e.g. TCP segment counts).
fn check_known_flows(records: &[FlowRecord], vethpod: u16) -> Result<()> {
    for (pod, node, proto, request, reply, bytes, udp) in [
        (
            POD_IP,
            NODE_POD_IP,
            PROTO_ICMP,
            8 << 8,
            0,
            PING_BYTES_V4,
            UDP_V4,
        ),
        (
            POD_IP6,
            NODE_POD_IP6,
            PROTO_ICMPV6,
            128 << 8,
            129 << 8,
            PING_BYTES_V6,
            UDP_V6,
        ),
    ] {
        let (pod, node) = (ip(pod), ip(node));
        for (what, src, dst, dst_port, input, output) in [
            ("echo request", pod, node, request, vethpod, 0),
            ("echo reply", node, pod, reply, 0, vethpod),
        ] {
            let found: Vec<_> = records
                .iter()
                .filter(|r| {
                    r.key.proto == proto
                        && r.key.src == src
                        && r.key.dst == dst
                        && r.key.dst_port == dst_port
                })
                .collect();
            ensure!(
                matches!(found.as_slice(), [r] if r.packets == PINGS && r.bytes == PINGS * bytes
                    && r.key.input == input && r.key.output == output),
                "{src} > {dst} {what}: expected one record of {PINGS} packets, {} bytes, in {input} out {output}; \
                 got {found:?}",
                PINGS * bytes
            );
        }
        let header = if pod.is_ipv4() { 28 } else { 48 };
        let found: Vec<_> = records
            .iter()
            .filter(|r| r.key.proto == PROTO_UDP && (r.key.src_port, r.key.dst_port) == udp)
            .collect();
        ensure!(
            matches!(found.as_slice(), [r] if r.packets == UDP_COUNT
                && r.bytes == UDP_COUNT * (header + UDP_PAYLOAD as u64)
                && r.key.src == pod && r.key.dst == node && r.key.input == vethpod),
            "UDP {udp:?} over {pod}: expected one record of {UDP_COUNT} packets; got {found:?}"
        );
    }
    Ok(())
}

/// The records the agent must export for the pod's capture, the number of IPv6 frames in it,
/// and vethpod's ifindex, which the records carry.
fn expected_from_pod(world: &World, frames: &[Vec<u8>]) -> Result<(Vec<FlowRecord>, usize, u16)> {
    let vethpod = u16::try_from(nfdump::ifindex(&world.node, NODE_POD_IF)?)?;
    let pod_mac = parse_mac(&world.pod.mac(POD_IF)?)?;
    let observations: Vec<_> = frames
        .iter()
        .map(|frame| {
            // Sent by the pod: received by vethpod, an ingress copy.
            let (input, output) = if frame.get(6..12) == Some(&pod_mac[..]) {
                (vethpod, 0)
            } else {
                (0, vethpod)
            };
            observe_any(frame, input, output)
        })
        .collect::<Option<_>>()
        .context("the pod's capture holds frames that are neither IPv4 nor plain IPv6")?;
    let ipv6_frames = observations.iter().filter(|o| o.key.src.is_ipv6()).count();
    Ok((expected_records(observations), ipv6_frames, vethpod))
}

/// The agent's metrics once a tick has passed (flows ended by FIN leave at the tick) and every
/// flow expired so far, IPv4 and IPv6, has been sent to the collector of `label`.
fn settled_metrics(agent: &Agent<'_>, label: &[(&str, &str)]) -> Result<Metrics> {
    thread::sleep(Duration::from_millis(1200));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let metrics = agent.metrics()?;
        let sent = metrics.total("mirror_netflow_records_total", label);
        if sent == metrics.total("mirror_netflow_expired_flows_total", &[])
            || Instant::now() > deadline
        {
            return Ok(metrics);
        }
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn live_ipv4_and_ipv6_flows_match_the_pod_capture() -> Result<()> {
    if skip_unless_root("live_ipv4_and_ipv6_flows_match_the_pod_capture") {
        return Ok(());
    }
    let world = dual_stack_world()?;
    let mut nfcapd = Nfcapd::start(&world.remote, REMOTE_IP, NFCAPD_PORT)?;
    let mut args = AgentArgs::vxlan(&world, &[NODE_POD_IF]);
    args.remotes.clear();
    args.extra = vec![
        "--netflow".to_owned(),
        ipfix_collector(NFCAPD_PORT),
        "--ipfix-domain".to_owned(),
        "7".to_owned(),
    ];
    let mut agent = Agent::start(&world.node, &args)?;
    let mut pod_capture = Capture::start(&world.pod, POD_IF, Direction::InOut, Some(SNAPLEN))?;

    dual_stack_traffic(&world)?;
    pod_capture.wait_until_quiet(Duration::from_millis(500), Duration::from_secs(10));
    let frames = pod_capture.finish()?;
    let (expected, ipv6_frames, vethpod) = expected_from_pod(&world, &frames)?;

    let frame_count = frames.len() as u64;
    let metrics = agent.wait_for_metric(
        "mirror_captured_packets_total",
        &[("iface", NODE_POD_IF)],
        frame_count,
        Duration::from_secs(10),
    )?;
    let captured = metrics.total("mirror_captured_packets_total", &[("iface", NODE_POD_IF)]);
    ensure!(
        captured == frame_count && metrics.total("mirror_dropped_packets_total", &[]) == 0,
        "the agent captured {captured} packets on {NODE_POD_IF}, the pod's capture has {frame_count}"
    );
    // What went out before SIGTERM.
    let collector = format!("{REMOTE_IP}:{NFCAPD_PORT}");
    let label = [("collector", collector.as_str()), ("version", "10")];
    let before = settled_metrics(&agent, &label)?;
    let records_before = before.total("mirror_netflow_records_total", &label);
    let expired_before = before.total("mirror_netflow_expired_flows_total", &[]);
    let active_before = before.total("mirror_netflow_active_flows", &[]);
    println!("before SIGTERM:\n  {}", netflow_lines(&agent));

    let status = agent.stop_with(Signal::Term)?;
    ensure!(
        status.code() == Some(0),
        "the agent exited with {status} after SIGTERM"
    );
    let (summary, records) = nfcapd.finish()?;
    report(&format!(
        "ipfix live: nfdump read {} records (nfcapd: {summary:?}); expected {} from the pod's {} frames \
         ({ipv6_frames} IPv6); the agent had sent {records_before} before SIGTERM and held {active_before} flows{}",
        records.len(),
        expected.len(),
        frames.len(),
        table(&records)
    ));
    ensure!(ipv6_frames > 0, "the pod's capture holds no IPv6 frame");
    if let Some(diff) = diff_records(&expected, &records) {
        bail!("nfdump's IPFIX records are not what the pod's capture makes of the traffic: {diff}");
    }
    ensure!(
        summary.sequence_errors == 0 && summary.bad_packets == 0,
        "nfcapd counted {} sequence errors and {} bad packets",
        summary.sequence_errors,
        summary.bad_packets
    );
    ensure!(
        records_before == expired_before && records_before > 0,
        "{expired_before} flows expired before SIGTERM but {records_before} IPFIX records were sent"
    );
    ensure!(
        records_before + active_before == records.len() as u64,
        "the agent had exported {records_before} records and held {active_before} flows at SIGTERM, \
         but nfcapd got {} records",
        records.len()
    );
    ensure!(
        before.total("mirror_netflow_skipped_packets_total", &[]) == 0
            && before.total("mirror_netflow_unexportable_flows_total", &[]) == 0
            && before.total("mirror_netflow_export_errors_total", &[]) == 0,
        "with IPFIX nothing should be skipped, unexportable or failed:\n  {}",
        netflow_lines(&agent)
    );
    check_known_flows(&records, vethpod)
}

/// Runs `program args` in `ns` to completion (at most `timeout`), failing unless it exits 0.
fn run_in(
    ns: &mirror_tests::Netns,
    label: &str,
    program: &str,
    args: &[&str],
    timeout: Duration,
) -> Result<Background> {
    let mut process = ns.spawn(label, program, args)?;
    let status = process.wait(timeout)?;
    ensure!(
        status.success(),
        "`{}` exited with {status}: {}",
        process.description(),
        process.stderr_lines().join("\n")
    );
    Ok(process)
}

#[test]
fn replay_ipv6_matches_softflowd_ipfix() -> Result<()> {
    if skip_unless_root("replay_ipv6_matches_softflowd_ipfix") {
        return Ok(());
    }
    let bin = mirror_tests::existing_mirror_bin()?;
    let world = dual_stack_world()?;
    let mut pod_capture = Capture::start(&world.pod, POD_IF, Direction::InOut, None)?;
    dual_stack_traffic(&world)?;
    pod_capture.wait_until_quiet(Duration::from_millis(500), Duration::from_secs(10));
    let frames = pod_capture.finish()?;
    let pcap = pod_capture.path().to_string_lossy().into_owned();
    // A file has no interfaces: the expected records carry none.
    let observations: Vec<_> = frames
        .iter()
        .map(|f| observe_any(f, 0, 0))
        .collect::<Option<_>>()
        .context("the pod's capture holds frames that are neither IPv4 nor plain IPv6")?;
    let expected = expected_records(observations);
    let truth = totals_by_five_tuple(&expected);
    ensure!(
        expected.iter().any(|r| r.key.src.is_ipv6()),
        "the pod's capture holds no IPv6 flow"
    );

    let mut softflowd_collector = Nfcapd::start(&world.remote, REMOTE_IP, SOFTFLOWD_PORT)?;
    let mut replay_collector = Nfcapd::start(&world.remote, REMOTE_IP, REPLAY_PORT)?;
    let replay_target = ipfix_collector(REPLAY_PORT);
    run_in(
        &world.node,
        "mirror replay",
        &bin.to_string_lossy(),
        &["replay", "--pcap", &pcap, "--netflow", &replay_target],
        Duration::from_mins(2),
    )?;
    let (replay_summary, replay_records) = replay_collector.finish()?;
    report(&format!(
        "mirror replay (IPFIX): {} records (nfcapd: {replay_summary:?}); the pcap's {} frames make {}{}",
        replay_records.len(),
        frames.len(),
        expected.len(),
        table(&replay_records)
    ));
    // The replay follows the agent's rules: exactly the expected records, interfaces aside.
    let without_interfaces: Vec<FlowRecord> = replay_records
        .iter()
        .map(|r| {
            let mut r = *r;
            (r.key.input, r.key.output) = (0, 0);
            r
        })
        .collect();
    if let Some(diff) = diff_records(&expected, &without_interfaces) {
        bail!(
            "mirror replay's IPFIX records (interfaces ignored) are not what the pcap makes: {diff}"
        );
    }
    ensure!(
        replay_summary.sequence_errors == 0 && replay_summary.bad_packets == 0,
        "nfcapd counted {} sequence errors and {} bad packets from mirror replay",
        replay_summary.sequence_errors,
        replay_summary.bad_packets
    );

    // softflowd reads the file and exports everything at its end, in IPFIX (-v 10); -d keeps it
    // in the foreground (see netflow.rs for why there is no -c).
    let softflowd_target = format!("{REMOTE_IP}:{SOFTFLOWD_PORT}");
    run_in(
        &world.node,
        "softflowd",
        "softflowd",
        &["-d", "-v", "10", "-n", &softflowd_target, "-r", &pcap],
        Duration::from_mins(1),
    )?;
    let (softflowd_summary, softflowd_records) = softflowd_collector.finish()?;
    report(&format!(
        "softflowd -v 10: {} records (nfcapd: {softflowd_summary:?}){}",
        softflowd_records.len(),
        table(&softflowd_records)
    ));
    // softflowd differs from the agent by design, as with v5: one record per direction of a
    // conversation, the ACKs after a FIN kept in the same record, no interfaces. So what compares
    // is packets and bytes per directional 5-tuple, IPv6 as IPv4.
    let from_softflowd = totals_by_five_tuple(&softflowd_records);
    if let Some(diff) = diff_totals("softflowd", &from_softflowd, "pcap", &truth) {
        bail!("softflowd's IPFIX totals per 5-tuple differ from the pcap's:{diff}");
    }
    let from_replay = totals_by_five_tuple(&replay_records);
    if let Some(diff) = diff_totals("mirror replay", &from_replay, "softflowd", &from_softflowd) {
        bail!("mirror replay and softflowd disagree on packets and bytes per 5-tuple:{diff}");
    }
    Ok(())
}
