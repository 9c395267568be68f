//! Pings from the pod reach the remote VTEP as VxLAN copies: exactly one copy per frame, byte for
//! byte and in order, and the mirror never copies its own tunnel packets.
//!
//! Pings are small frames: the agent takes them from the classifiers' ring buffer, or with
//! `--capture-path clone` as clones through its veth pair; both paths are checked, with the
//! kernel's count of copies per path.
//!
//! The `kernel_mirror_*` tests run the same checks against the kernel's own mirror (tc mirred into
//! a VxLAN device): they prove the world and the checks, and are the baseline for the agent.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use mirror_tests::{
    Capture, Direction, Metrics, MirrorKind, MirrorUnderTest, World, diff_frames, skip_unless_root,
    world::{NODE_POD_IF, NODE_POD_IP, NODE_UPLINK_IF, POD_IF, REMOTE_VTEP_IF},
};

const VNI: u32 = 42;
const PINGS: usize = 100;
/// Each echo request and its reply.
const FRAMES: usize = 2 * PINGS;

#[test]
fn agent_mirrors_pings_byte_identical() -> Result<()> {
    if skip_unless_root("agent_mirrors_pings_byte_identical") {
        return Ok(());
    }
    ping_is_mirrored(MirrorKind::Agent, &[NODE_POD_IF], "ring")
}

#[test]
fn agent_mirrors_pings_byte_identical_through_clones() -> Result<()> {
    if skip_unless_root("agent_mirrors_pings_byte_identical_through_clones") {
        return Ok(());
    }
    ping_is_mirrored(MirrorKind::Agent, &[NODE_POD_IF], "clone")
}

#[test]
fn agent_never_mirrors_its_own_tunnel_packets() -> Result<()> {
    if skip_unless_root("agent_never_mirrors_its_own_tunnel_packets") {
        return Ok(());
    }
    // The uplink carries only the agent's own VxLAN packets: mirroring them again would add
    // frames at the remote (and loop).
    ping_is_mirrored(MirrorKind::Agent, &[NODE_POD_IF, NODE_UPLINK_IF], "ring")
}

#[test]
fn kernel_mirror_baseline_pings() -> Result<()> {
    if skip_unless_root("kernel_mirror_baseline_pings") {
        return Ok(());
    }
    ping_is_mirrored(MirrorKind::Kernel, &[NODE_POD_IF], "")
}

#[test]
fn kernel_mirror_baseline_loop_guard() -> Result<()> {
    if skip_unless_root("kernel_mirror_baseline_loop_guard") {
        return Ok(());
    }
    ping_is_mirrored(MirrorKind::Kernel, &[NODE_POD_IF, NODE_UPLINK_IF], "")
}

/// `path`: the agent's `--capture-path` (ring or clone; ignored by the kernel mirror).
fn ping_is_mirrored(kind: MirrorKind, ifaces: &[&str], path: &str) -> Result<()> {
    let world = World::new(VNI)?;
    let mut pod_capture = Capture::start(&world.pod, POD_IF, Direction::InOut, None)?;
    let mut remote_capture = Capture::start(&world.remote, REMOTE_VTEP_IF, Direction::In, None)?;
    let mirror = match kind {
        MirrorKind::Agent => {
            MirrorUnderTest::agent_with(&world, ifaces, &["--capture-path", path])?
        }
        MirrorKind::Kernel => MirrorUnderTest::start(kind, &world, ifaces)?,
    };

    world
        .pod
        .run(
            "ping",
            ["-c", &PINGS.to_string(), "-i", "0.01", "-q", NODE_POD_IP],
        )
        .context("pinging the node from the pod")?;
    let arrived =
        remote_capture.wait_for_frames(FRAMES, Duration::from_secs(10), Duration::from_millis(500));
    println!(
        "{}: {arrived} frames decapsulated at the remote VTEP",
        kind.label()
    );

    let pod_frames = pod_capture.finish()?;
    ensure!(
        pod_frames.len() == FRAMES,
        "the pod itself saw {} frames, not {FRAMES}: the world is not quiet",
        pod_frames.len()
    );
    if let Some(metrics) = wait_for_metrics(&mirror, path)? {
        check_metrics(&metrics, ifaces, &pod_frames, path)?;
    }
    mirror.stop()?;
    let remote_frames = remote_capture.finish()?;

    if let Some(diff) = diff_frames(&pod_frames, &remote_frames) {
        anyhow::bail!(
            "{} mirroring {}: the remote VTEP did not receive the pod's frames exactly: {diff}",
            kind.label(),
            ifaces.join("+")
        );
    }
    Ok(())
}

/// Scrapes until the agent's sent counter has caught up (counters may lag by a batch), and its
/// count of the kernel's copies on `path` (read from the kernel once a second).
fn wait_for_metrics(mirror: &MirrorUnderTest<'_>, path: &str) -> Result<Option<Metrics>> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let Some(metrics) = mirror.metrics()? else {
            return Ok(None);
        };
        if (metrics.total("mirror_sent_packets_total", &[]) >= count(FRAMES)
            && metrics.total("mirror_kernel_copies_total", &[("path", path)]) >= count(FRAMES))
            || Instant::now() > deadline
        {
            return Ok(Some(metrics));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn check_metrics(
    metrics: &Metrics,
    ifaces: &[&str],
    pod_frames: &[Vec<u8>],
    path: &str,
) -> Result<()> {
    let captured = metrics.total("mirror_captured_packets_total", &[("iface", NODE_POD_IF)]);
    let captured_bytes = metrics.total("mirror_captured_bytes_total", &[("iface", NODE_POD_IF)]);
    let sent = metrics.total("mirror_sent_packets_total", &[("tunnel", "vxlan")]);
    let dropped = metrics.total("mirror_dropped_packets_total", &[]);
    println!(
        "metrics: captured on {NODE_POD_IF} {captured} ({captured_bytes} bytes), sent {sent}, dropped {dropped}"
    );
    ensure!(
        captured == count(FRAMES),
        "mirror_captured_packets_total{{iface=\"{NODE_POD_IF}\"}} is {captured}, expected {FRAMES}"
    );
    let frame_bytes: usize = pod_frames.iter().map(Vec::len).sum();
    ensure!(
        captured_bytes == count(frame_bytes),
        "mirror_captured_bytes_total{{iface=\"{NODE_POD_IF}\"}} is {captured_bytes}, expected {frame_bytes} (the frames' lengths)"
    );
    ensure!(
        sent == count(FRAMES),
        "mirror_sent_packets_total{{tunnel=\"vxlan\"}} is {sent}, expected {FRAMES}"
    );
    if ifaces == [NODE_POD_IF] {
        ensure!(
            dropped == 0,
            "mirror_dropped_packets_total is {dropped}, expected 0"
        );
        // Every ping and reply took the path asked for, none the other.
        for other in ["ring", "clone"] {
            let copies = metrics.total("mirror_kernel_copies_total", &[("path", other)]);
            let expected = if other == path { count(FRAMES) } else { 0 };
            ensure!(
                copies == expected,
                "mirror_kernel_copies_total{{path=\"{other}\"}} is {copies}, expected {expected} (--capture-path {path})"
            );
        }
    }
    Ok(())
}

fn count(n: usize) -> u64 {
    u64::try_from(n).expect("usize fits in u64")
}
