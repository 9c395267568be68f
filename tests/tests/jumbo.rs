//! Jumbo frames: a pod on a 9000-byte MTU sends 9014-byte frames. Larger than a UMEM chunk, they
//! cross the mirror veth as multi-buffer XDP frames and reach the agent in several chunks. Over
//! an uplink that holds the tunnel packet they arrive whole at the kernel VTEP; over a 1500-byte
//! uplink they are fragmented (and reassembled by the remote's kernel) or cut, as `--oversize`
//! says.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use anyhow::{Result, bail, ensure};
use mirror_tests::{
    Metrics, World, WorldConfig, diff_frames,
    ping_sizes::{PingSizes, cut_to},
    skip_unless_root,
    world::{NODE_POD_IF, POD_IF},
};

/// The pod link's MTU.
const JUMBO_MTU: u32 = 9000;
/// `ping -s` for 9000-byte IP packets (9014-byte frames).
const JUMBO_PING: usize = 9000 - 28;
/// An uplink that holds a VxLAN copy of a jumbo frame (9014 + 36 bytes of IP).
const BIG_UPLINK: u32 = 9100;
const SMALL_UPLINK: u32 = 1500;
/// Pings of each size (small ones too: one-chunk copies mixed with multi-chunk ones).
const PINGS: usize = 10;
/// IPv4 + UDP + VxLAN.
const VXLAN_OVERHEAD: usize = 20 + 8 + 8;

#[test]
fn jumbo_frames_arrive_whole() -> Result<()> {
    if skip_unless_root("jumbo_frames_arrive_whole") {
        return Ok(());
    }
    let run = jumbo_run(BIG_UPLINK, None)?;
    if let Some(diff) = diff_frames(&run.pod, &run.decapsulated) {
        bail!("the kernel VTEP did not get the pod's frames whole: {diff}");
    }
    ensure!(
        run.largest_wire == 9014 + VXLAN_OVERHEAD,
        "the largest tunnel packet was {} bytes of IP, expected {}",
        run.largest_wire,
        9014 + VXLAN_OVERHEAD
    );
    run.check_nothing_dropped()?;
    run.expect_metric("mirror_sent_packets_total", &[], 4 * PINGS)?;
    run.expect_metric("mirror_truncated_packets_total", &[], 0)?;
    run.expect_metric("mirror_fragmented_packets_total", &[], 0)
}

#[test]
fn jumbo_frames_fragmented_over_a_small_uplink() -> Result<()> {
    if skip_unless_root("jumbo_frames_fragmented_over_a_small_uplink") {
        return Ok(());
    }
    let run = jumbo_run(SMALL_UPLINK, Some("fragment"))?;
    if let Some(diff) = diff_frames(&run.pod, &run.decapsulated) {
        bail!("the kernel VTEP did not reassemble the pod's frames whole: {diff}");
    }
    ensure!(
        run.largest_wire <= SMALL_UPLINK as usize,
        "a fragment was {} bytes of IP, over the uplink MTU {SMALL_UPLINK}",
        run.largest_wire
    );
    run.check_nothing_dropped()?;
    run.expect_metric("mirror_truncated_packets_total", &[], 0)?;
    run.expect_metric("mirror_fragmented_packets_total", &[], 2 * PINGS)
}

#[test]
fn jumbo_frames_truncated_over_a_small_uplink() -> Result<()> {
    if skip_unless_root("jumbo_frames_truncated_over_a_small_uplink") {
        return Ok(());
    }
    let run = jumbo_run(SMALL_UPLINK, Some("truncate"))?;
    let limit = SMALL_UPLINK as usize - VXLAN_OVERHEAD;
    let expected = cut_to(&run.pod, limit);
    if let Some(diff) = diff_frames(&expected, &run.decapsulated) {
        bail!(
            "the kernel VTEP did not get the pod's frames, those over {limit} bytes cut to {limit}: {diff}"
        );
    }
    run.check_nothing_dropped()?;
    run.expect_metric("mirror_sent_packets_total", &[], 4 * PINGS)?;
    run.expect_metric(
        "mirror_truncated_packets_total",
        &[("reason", "mtu")],
        2 * PINGS,
    )
}

struct JumboRun {
    /// The pod's frames, small pings' then jumbo pings'.
    pod: Vec<Vec<u8>>,
    /// What the remote's VTEP decapsulated.
    decapsulated: Vec<Vec<u8>>,
    /// The largest tunnel packet on the remote's wire, bytes of IP.
    largest_wire: usize,
    metrics: Metrics,
}

impl JumboRun {
    fn expect_metric(&self, name: &str, labels: &[(&str, &str)], expected: usize) -> Result<()> {
        let got = self.metrics.total(name, labels);
        ensure!(
            got == expected as u64,
            "{name}{labels:?} is {got}, expected {expected}"
        );
        Ok(())
    }

    fn check_nothing_dropped(&self) -> Result<()> {
        self.expect_metric("mirror_dropped_packets_total", &[], 0)?;
        self.expect_metric("mirror_captured_packets_total", &[], 4 * PINGS)?;
        self.expect_metric("mirror_sent_copies_total", &[], 4 * PINGS)
    }
}

/// Small then jumbo pings from a 9000-MTU pod through a VxLAN mirror over an uplink of
/// `uplink_mtu`, with `--oversize` if given.
fn jumbo_run(uplink_mtu: u32, oversize: Option<&str>) -> Result<JumboRun> {
    let world = World::build(WorldConfig {
        uplink_mtu,
        ..WorldConfig::default()
    })?;
    let mtu = JUMBO_MTU.to_string();
    world.pod.ip(["link", "set", POD_IF, "mtu", &mtu])?;
    world.node.ip(["link", "set", NODE_POD_IF, "mtu", &mtu])?;
    let run = PingSizes {
        oversize,
        ..PingSizes::vxlan(PINGS, JUMBO_PING)
    }
    .run(&world)?;
    let jumbo = run.pod.iter().filter(|f| f.len() == 9014).count();
    ensure!(
        jumbo == 2 * PINGS,
        "the pod saw {jumbo} frames of 9014 bytes, not {}",
        2 * PINGS
    );
    Ok(JumboRun {
        largest_wire: run.wire.iter().map(|f| f.len() - 14).max().unwrap_or(0),
        pod: run.pod,
        decapsulated: run.decapsulated,
        metrics: run.metrics,
    })
}
