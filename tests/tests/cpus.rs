//! Capture threads on several CPUs (`--cpus`): each reads the copies taken on its CPU from a
//! ring buffer of its own and sends them from its own queue of the uplink.
//!
//! - `second_cpu_comes_and_goes`: two threads on an uplink with two queues; traffic moves from
//!   CPU 0 to CPU 1 and back. Every copy reaches the remote VTEP once, byte for byte, whichever
//!   thread is busy and while the other idles; the threads' counters show who read what.
//! - `one_thread_serves_every_cpu`: a single thread (`--cpus` of one CPU) gets the copies taken
//!   on the other CPU too.
//! - `default_fits_the_uplink`: without `--cpus`, no more threads than the uplink has queues.

use std::time::Duration;

use anyhow::{Result, ensure};
use mirror_tests::{
    Agent, AgentArgs, Capture, Direction, Metrics, World, diff_frames, report, skip_unless_root,
    world::{NODE_POD_IF, REMOTE_VTEP_IF, WorldConfig},
};

const PINGS: usize = 20;
/// Each echo request and its reply.
const FRAMES: usize = 2 * PINGS;

fn count(n: usize) -> u64 {
    u64::try_from(n).expect("usize fits in u64")
}

/// The CPUs this test may pin to, or `None` (with the reason printed) if there are fewer than
/// two.
fn two_cpus(test: &str) -> Option<[usize; 2]> {
    // SAFETY: all-zero is an empty CPU set; sched_getaffinity fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is this thread; the set is live and of the size given.
    let rc = unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &raw mut set) };
    let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below CPU_SETSIZE.
        .filter(|&cpu| rc == 0 && unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect();
    if let [a, b, ..] = cpus[..] {
        Some([a, b])
    } else {
        eprintln!("{test}: skipped: needs two CPUs to pin capture threads to, has {cpus:?}");
        None
    }
}

fn world_with_queues(queues: u32) -> Result<World> {
    World::build(WorldConfig {
        uplink_queues: queues,
        ..WorldConfig::default()
    })
}

fn agent<'w>(world: &'w World, extra: &[&str]) -> Result<Agent<'w>> {
    let mut args = AgentArgs::vxlan(world, &[NODE_POD_IF]);
    args.extra = extra.iter().map(ToString::to_string).collect();
    Agent::start(&world.node, &args)
}

/// What the thread pinned to `cpu` has read.
fn read_on(metrics: &Metrics, cpu: usize) -> u64 {
    metrics.total(
        "mirror_capture_thread_copies_total",
        &[("cpu", &cpu.to_string())],
    )
}

/// Pings from `cpu`, checks that the VTEP got as many frames on top of the `before` it had, and
/// adds the pod's frames to `expected`.
fn pings_on(
    world: &World,
    remote: &Capture,
    cpu: usize,
    before: usize,
    expected: &mut Vec<Vec<u8>>,
) -> Result<()> {
    expected.extend(world.pod_ping_frames_on(Some(cpu), PINGS, None)?);
    remote.wait_for_frames(
        before + FRAMES,
        Duration::from_secs(10),
        Duration::from_millis(500),
    );
    let arrived = remote.frames_so_far();
    ensure!(
        arrived == before + FRAMES,
        "pinging on CPU {cpu}: the remote VTEP has {arrived} frames, expected {}",
        before + FRAMES
    );
    Ok(())
}

/// Checks the VTEP's frames are the pod's, byte for byte and in order.
fn same_frames(expected: &[Vec<u8>], remote: &mut Capture) -> Result<()> {
    let frames = remote.finish()?;
    ensure!(
        frames.len() == expected.len(),
        "{} frames arrived, expected {}",
        frames.len(),
        expected.len()
    );
    if let Some(diff) = diff_frames(expected, &frames) {
        anyhow::bail!("the VTEP's frames differ from the pod's: {diff}");
    }
    Ok(())
}

#[test]
fn second_cpu_comes_and_goes() -> Result<()> {
    let name = "second_cpu_comes_and_goes";
    if skip_unless_root(name) {
        return Ok(());
    }
    let Some([a, b]) = two_cpus(name) else {
        return Ok(());
    };
    let world = world_with_queues(2)?;
    let mut remote = Capture::start(&world.remote, REMOTE_VTEP_IF, Direction::In, None)?;
    let cpus = format!("{a},{b}");
    let agent = agent(&world, &["--cpus", &cpus])?;
    let mut arrived = 0;
    let mut expected = Vec::new();
    let mut expected_reads = [0, 0];
    // Only the first thread busy, then only the second, then the first again.
    for (phase, (cpu, slot)) in [(a, 0), (b, 1), (a, 0)].into_iter().enumerate() {
        pings_on(&world, &remote, cpu, arrived, &mut expected)?;
        arrived += FRAMES;
        expected_reads[slot] += count(FRAMES);
        let metrics = agent.wait_for_metrics(Duration::from_secs(5), |m| {
            m.total("mirror_sent_packets_total", &[]) >= count(arrived)
        })?;
        let reads = [read_on(&metrics, a), read_on(&metrics, b)];
        report(&format!(
            "phase {phase}: pings on CPU {cpu}; thread reads CPU {a}: {}, CPU {b}: {}",
            reads[0], reads[1]
        ));
        ensure!(
            reads == expected_reads,
            "threads read {reads:?}, expected {expected_reads:?}"
        );
    }
    let metrics = agent.metrics()?;
    let captured = metrics.total("mirror_captured_packets_total", &[]);
    let sent = metrics.total("mirror_sent_packets_total", &[]);
    let dropped = metrics.total("mirror_dropped_packets_total", &[]);
    ensure!(
        captured == count(3 * FRAMES) && sent == captured && dropped == 0,
        "captured {captured}, sent {sent}, dropped {dropped}"
    );
    // Both threads sent from AF_XDP on their own queue, none through the raw socket.
    let paths = [
        metrics.total("mirror_remote_send_path", &[("path", "af_xdp")]),
        metrics.total("mirror_remote_send_path", &[("path", "socket")]),
    ];
    ensure!(
        paths == [2, 0],
        "threads sending the remote's copies from AF_XDP and through the raw socket: {paths:?}, \
         expected [2, 0]"
    );
    drop(agent);
    same_frames(&expected, &mut remote)
}

#[test]
fn one_thread_serves_every_cpu() -> Result<()> {
    let name = "one_thread_serves_every_cpu";
    if skip_unless_root(name) {
        return Ok(());
    }
    let Some([a, b]) = two_cpus(name) else {
        return Ok(());
    };
    let world = world_with_queues(1)?;
    let mut remote = Capture::start(&world.remote, REMOTE_VTEP_IF, Direction::In, None)?;
    let agent = agent(&world, &["--cpus", &b.to_string()])?;
    let mut expected = Vec::new();
    pings_on(&world, &remote, a, 0, &mut expected)?;
    pings_on(&world, &remote, b, FRAMES, &mut expected)?;
    let metrics = agent.wait_for_metrics(Duration::from_secs(5), |m| {
        m.total("mirror_sent_packets_total", &[]) >= count(2 * FRAMES)
    })?;
    ensure!(
        read_on(&metrics, b) == count(2 * FRAMES) && read_on(&metrics, a) == 0,
        "the thread on CPU {b} read {}, CPU {a} {}",
        read_on(&metrics, b),
        read_on(&metrics, a)
    );
    drop(agent);
    same_frames(&expected, &mut remote)
}

#[test]
fn default_fits_the_uplink() -> Result<()> {
    let name = "default_fits_the_uplink";
    if skip_unless_root(name) {
        return Ok(());
    }
    let Some([a, b]) = two_cpus(name) else {
        return Ok(());
    };
    let world = world_with_queues(1)?;
    let mut remote = Capture::start(&world.remote, REMOTE_VTEP_IF, Direction::In, None)?;
    let agent = agent(&world, &[])?;
    let lines = agent.stderr_lines();
    ensure!(
        lines
            .iter()
            .any(|l| l.contains("mirror: 1 capture thread on CPU")),
        "one queue on the uplink, but: {lines:?}"
    );
    let mut expected = Vec::new();
    pings_on(&world, &remote, a, 0, &mut expected)?;
    pings_on(&world, &remote, b, FRAMES, &mut expected)?;
    let metrics = agent.wait_for_metrics(Duration::from_secs(5), |m| {
        m.total("mirror_sent_packets_total", &[]) >= count(2 * FRAMES)
    })?;
    ensure!(
        metrics.total("mirror_remote_send_path", &[("path", "socket")]) == 0,
        "a thread without a queue fell back to the raw socket"
    );
    drop(agent);
    same_frames(&expected, &mut remote)
}
