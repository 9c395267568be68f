//! `--snaplen` acts in the kernel, before a copy crosses the mirror veth: a TCP sender's GSO
//! super-frames (up to 64 KB) become one short copy each instead of dozens of full-size segments,
//! every copy is at most the snap length, and the metrics count them as cut.

use std::time::Duration;

use anyhow::{Result, ensure};
use mirror_tests::{
    Agent, AgentArgs, Capture, Direction, World, iperf, report, skip_unless_root,
    world::{NODE_POD_IF, NODE_POD_IP, REMOTE_VTEP_IF},
};

const VNI: u32 = 42;
const SNAPLEN: usize = 128;
const TRANSFER_BYTES: u64 = 50 << 20;
/// TCP payload of a full-size segment on a 1500-byte link (with timestamps).
const MSS: u64 = 1448;

#[test]
fn snaplen_cuts_super_frames_in_the_kernel() -> Result<()> {
    if skip_unless_root("snaplen_cuts_super_frames_in_the_kernel") {
        return Ok(());
    }
    let world = World::new(VNI)?;
    let remote = Capture::start(&world.remote, REMOTE_VTEP_IF, Direction::In, None)?;
    let mut args = AgentArgs::vxlan(&world, &[NODE_POD_IF]);
    args.extra = vec!["--snaplen".into(), SNAPLEN.to_string()];
    let agent = Agent::start(&world.node, &args)?;

    let result = iperf::transfer(&world.node, NODE_POD_IP, &world.pod, &["-n", "50M"])?;
    let metrics = agent.wait_for_metrics(Duration::from_secs(10), |m| {
        let captured = m.total("mirror_captured_packets_total", &[]);
        captured > 0 && m.total("mirror_sent_packets_total", &[]) == captured
    })?;
    remote.wait_for_frames(
        usize::try_from(metrics.total("mirror_sent_packets_total", &[]))?,
        Duration::from_secs(10),
        Duration::from_millis(500),
    );
    drop(agent);
    let mut remote = remote;
    let frames = remote.finish()?;
    let cut = metrics.total("mirror_truncated_packets_total", &[("reason", "snaplen")]);
    let full = frames.iter().filter(|f| f.len() == SNAPLEN).count() as u64;
    let longest = frames.iter().map(Vec::len).max().unwrap_or(0);
    let segments = TRANSFER_BYTES / MSS;
    report(&format!(
        "--snaplen {SNAPLEN}: iperf3 moved {} bytes at {:.2} Gbit/s; {} copies at the remote, \
         {full} of them cut to {SNAPLEN} bytes ({cut} counted cut), longest {longest}; \
         {segments} full-size segments would carry the data",
        result.received_bytes,
        result.gbps(),
        frames.len()
    ));
    ensure!(
        longest <= SNAPLEN,
        "a copy of {longest} bytes arrived: every copy must be at most {SNAPLEN}"
    );
    ensure!(
        cut >= full && full > 0,
        "{full} copies arrived cut, {cut} counted as cut to the snap length"
    );
    // One copy per super-frame: far fewer data copies than full-size segments.
    ensure!(
        full * 4 < segments,
        "{full} data copies for {TRANSFER_BYTES} bytes: super-frames were cut into segments \
         before the snap length applied (expected far fewer than {segments})"
    );
    Ok(())
}
