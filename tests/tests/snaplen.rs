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
    // The copies still on their way when the counters first agreed have arrived by now.
    remote.wait_until_quiet(Duration::from_millis(500), Duration::from_secs(10));
    let metrics = agent.metrics()?;
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

/// `--sample N` with `--snaplen`: a super-frame cut to one copy stands for all the segments it
/// carries, so it is kept with the chance that any of them would be (segs in N). Each kept
/// copy stands for at most one 64 KB super-frame of ~45 segments, and min(1, segs/N) >= segs/45
/// for N <= 45: at least segments/45 copies are due on average. Sampled 1 in N per super-frame
/// instead, a transfer in 64 KB super-frames would give about a tenth of that.
#[test]
fn sampling_weighs_a_cut_super_frame_by_its_segments() -> Result<()> {
    const SAMPLE: u64 = 10;
    if skip_unless_root("sampling_weighs_a_cut_super_frame_by_its_segments") {
        return Ok(());
    }
    let world = World::new(VNI)?;
    let mut args = AgentArgs::vxlan(&world, &[NODE_POD_IF]);
    args.extra = vec![
        "--snaplen".into(),
        SNAPLEN.to_string(),
        "--sample".into(),
        SAMPLE.to_string(),
        // Only the data (pod to node), not the node's ACKs, which are single packets.
        "--direction".into(),
        "ingress".into(),
    ];
    let agent = Agent::start(&world.node, &args)?;
    iperf::transfer(&world.node, NODE_POD_IP, &world.pod, &["-n", "50M"])?;
    let metrics = agent.wait_for_metrics(Duration::from_secs(10), |m| {
        let captured = m.total("mirror_captured_packets_total", &[]);
        captured > 0 && m.total("mirror_sent_packets_total", &[]) == captured
    })?;
    let cut = metrics.total("mirror_truncated_packets_total", &[("reason", "snaplen")]);
    let segments = TRANSFER_BYTES / MSS;
    report(&format!(
        "--snaplen {SNAPLEN} --sample {SAMPLE}: {cut} cut copies of the data's super-frames, \
         for {segments} segments on the wire (at least {} due, super-frames of 45 segments)",
        segments / 45
    ));
    ensure!(
        cut * 2 >= segments / 45,
        "{cut} copies: a cut super-frame was sampled as one packet, not as the segments it \
         carries (expected at least {} copies)",
        segments / 45 / 2
    );
    Ok(())
}
