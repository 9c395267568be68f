//! `mirror run --filter`: real traffic (pings, DNS-like UDP, a TCP transfer) from the pod; only
//! the frames libpcap's expression matches reach the remote VTEP, byte for byte and in order, the
//! rest are counted as `filtered`; a bad expression is refused at start. Both places the filter
//! can run: in the kernel (the default: the left-out packets are never cloned, so never
//! captured) and in user space (every packet captured, the left-out copies dropped there).

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use mirror_tests::{
    Capture, Direction, World,
    agent::{Agent, AgentArgs},
    diff_frames,
    replay::{Traffic, make_traffic},
    report, skip_unless_root,
    world::{NODE_POD_IF, POD_IF, REMOTE_VTEP_IF},
};

const VNI: u32 = 42;

#[test]
fn agent_copies_only_what_the_filter_matches() -> Result<()> {
    if skip_unless_root("agent_copies_only_what_the_filter_matches") {
        return Ok(());
    }
    copies_only_what_the_filter_matches("kernel")
}

#[test]
fn agent_copies_only_what_the_filter_matches_in_user_space() -> Result<()> {
    if skip_unless_root("agent_copies_only_what_the_filter_matches_in_user_space") {
        return Ok(());
    }
    copies_only_what_the_filter_matches("user")
}

fn copies_only_what_the_filter_matches(path: &str) -> Result<()> {
    let world = World::new(VNI)?;
    // The pod's own capture must see finished checksums, as the copies carry them (the kernel
    // completes them on the mirror veth): no checksum offload on either side of the pod's veth.
    world
        .pod
        .run("ethtool", ["-K", POD_IF, "tx", "off"])
        .context("turning off checksum offload in the pod")?;
    world
        .node
        .run("ethtool", ["-K", NODE_POD_IF, "tx", "off"])
        .context("turning off checksum offload on the node's side")?;
    let mut args = AgentArgs::vxlan(&world, &[NODE_POD_IF]);
    args.extra = vec![
        "--filter".into(),
        "icmp or udp".into(),
        "--filter-path".into(),
        path.into(),
    ];
    let mut pod_capture = Capture::start(&world.pod, POD_IF, Direction::InOut, None)?;
    let mut at_vtep = Capture::start(&world.remote, REMOTE_VTEP_IF, Direction::In, None)?;
    let agent = Agent::start(&world.node, &args)?;

    make_traffic(&world, Traffic::default())?;
    // The TCP teardown's last segments may still be on their way when iperf3 exits; the agent
    // counts them, so the pod's capture must hold them too.
    pod_capture.wait_until_quiet(Duration::from_millis(500), Duration::from_secs(10));
    let all = pod_capture.finish()?;
    let kept: Vec<Vec<u8>> = all
        .iter()
        .filter(|f| f.len() > 23 && f[12..14] == [0x08, 0x00] && matches!(f[23], 1 | 17))
        .cloned()
        .collect();
    let left_out = all.len() - kept.len();
    ensure!(
        left_out > 700 && !kept.is_empty(),
        "the traffic should hold the TCP transfer and some ICMP and UDP: {} kept of {}",
        kept.len(),
        all.len()
    );
    at_vtep.wait_for_frames(
        kept.len(),
        Duration::from_secs(10),
        Duration::from_millis(500),
    );
    let got = at_vtep.finish()?;
    if let Some(diff) = diff_frames(&kept, &got) {
        bail!("the remote VTEP did not get exactly the frames the filter matches: {diff}");
    }

    // In user space every frame is captured and the ones left out are dropped as filtered; in
    // the kernel only the kept ones are captured. Either way the filter's verdicts are counted
    // where it ran, and nothing is lost otherwise.
    let expect_captured = if path == "kernel" {
        kept.len()
    } else {
        all.len()
    };
    let other = if path == "kernel" { "user" } else { "kernel" };
    let verdicts = |m: &mirror_tests::metrics::Metrics, path: &str| {
        [
            m.total(
                "mirror_filter_packets_total",
                &[("path", path), ("verdict", "kept")],
            ),
            m.total(
                "mirror_filter_packets_total",
                &[("path", path), ("verdict", "left_out")],
            ),
        ]
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let (captured, sent, filtered, here, there) = loop {
        let metrics = agent.metrics()?;
        let captured = metrics.total("mirror_captured_packets_total", &[("iface", NODE_POD_IF)]);
        let sent = metrics.total("mirror_sent_packets_total", &[]);
        let filtered = metrics.total("mirror_dropped_packets_total", &[("reason", "filtered")]);
        let (here, there) = (verdicts(&metrics, path), verdicts(&metrics, other));
        if captured + sent + filtered >= (expect_captured + kept.len() + left_out) as u64
            && here[0] + here[1] >= all.len() as u64
            || Instant::now() > deadline
        {
            break (captured, sent, filtered, here, there);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    ensure!(
        (captured, sent, filtered) == (expect_captured as u64, kept.len() as u64, left_out as u64),
        "{path}: captured {captured}, sent {sent}, filtered {filtered}: expected \
         {expect_captured}, {}, {left_out}",
        kept.len()
    );
    ensure!(
        here == [kept.len() as u64, left_out as u64] && there == [0, 0],
        "{path}: filter verdicts kept/left out {here:?} (expected {}/{left_out}), and \
         {there:?} where it did not run",
        kept.len()
    );
    report(&format!(
        "agent_copies_only_what_the_filter_matches ({path}): {} of {} frames copied, \
         {left_out} filtered, {captured} captured",
        got.len(),
        all.len()
    ));
    Ok(())
}

#[test]
fn bad_filter_is_refused_before_anything_is_attached() -> Result<()> {
    if skip_unless_root("bad_filter_is_refused_before_anything_is_attached") {
        return Ok(());
    }
    let world = World::new(VNI)?;
    let mut args = AgentArgs::vxlan(&world, &[NODE_POD_IF]);
    args.extra = vec!["--filter".into(), "tcp port eighty".into()];
    let mut argv = vec!["run".to_owned()];
    argv.extend(args.to_args());
    let bin = mirror_tests::agent::existing_mirror_bin()?;
    let output = world
        .node
        .command(&bin.to_string_lossy(), &argv)
        .output()
        .context("running the agent")?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    ensure!(
        output.status.code() == Some(2)
            && lines.len() == 1
            && lines[0].starts_with("error: --filter 'tcp port eighty': "),
        "expected exit code 2 and one line naming the filter; got {}: {stderr}",
        output.status
    );
    report(&format!("bad_filter_is_refused: {}", lines[0]));
    Ok(())
}
