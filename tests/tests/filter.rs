//! `mirror run --filter`: real traffic (pings, DNS-like UDP, a TCP transfer) from the pod; only
//! the frames libpcap's expression matches reach the remote VTEP, byte for byte and in order, the
//! rest are counted as `filtered` and left out of NetFlow; a bad expression is refused at start.

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
    args.extra = vec!["--filter".into(), "icmp or udp".into()];
    let mut pod_capture = Capture::start(&world.pod, POD_IF, Direction::InOut, None)?;
    let mut at_vtep = Capture::start(&world.remote, REMOTE_VTEP_IF, Direction::In, None)?;
    let agent = Agent::start(&world.node, &args)?;

    make_traffic(&world, Traffic::default())?;
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

    // Every frame was captured; the ones left out are counted as filtered, none lost otherwise.
    let deadline = Instant::now() + Duration::from_secs(5);
    let (captured, sent, filtered) = loop {
        let metrics = agent.metrics()?;
        let captured = metrics.total("mirror_captured_packets_total", &[("iface", NODE_POD_IF)]);
        let sent = metrics.total("mirror_sent_packets_total", &[]);
        let filtered = metrics.total("mirror_dropped_packets_total", &[("reason", "filtered")]);
        if captured + sent + filtered >= (all.len() + kept.len() + left_out) as u64
            || Instant::now() > deadline
        {
            break (captured, sent, filtered);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    ensure!(
        (captured, sent, filtered) == (all.len() as u64, kept.len() as u64, left_out as u64),
        "captured {captured}, sent {sent}, filtered {filtered}: expected {}, {}, {left_out}",
        all.len(),
        kept.len()
    );
    report(&format!(
        "agent_copies_only_what_the_filter_matches: {} of {} frames copied, {left_out} filtered",
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
