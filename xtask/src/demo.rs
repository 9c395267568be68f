//! `cargo xtask demo`: the mirror at work in a throwaway world of network namespaces.

use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use mirror_tests::{
    Agent, AgentArgs, Capture, Direction, Metrics, Signal, World, iperf, is_root,
    proc::{command, run_stdout, set_echo},
    world::{NODE_POD_IF, NODE_POD_IP, NODE_UPLINK_IP, POD_IP, REMOTE_IP, REMOTE_VTEP_IF},
};

use crate::{cargo::build_mirror, setup::setup};

/// VxLAN network identifier of the demo world.
const VNI: u32 = 42;
/// Decapsulated frames printed one per line.
const SHOWN_FRAMES: &str = "20";

pub fn demo() -> Result<()> {
    setup()?;
    if !is_root() {
        bail!("the demo needs root: it builds network namespaces and attaches eBPF programs");
    }
    let bin = build_mirror()?;
    // The demo prints what matters itself.
    set_echo(false);

    section("1. A test world in network namespaces (removed at the end, also on error)");
    let world = World::new(VNI).context("building the demo world")?;
    println!("  pod    {:<22} eth0 {POD_IP}", world.pod.name());
    println!(
        "  node   {:<22} vethpod {NODE_POD_IP} (the pod's host side), uplink {NODE_UPLINK_IP}",
        world.node.name()
    );
    println!(
        "  remote {:<22} eth0 {REMOTE_IP}, {REMOTE_VTEP_IF}: a kernel VxLAN VTEP (VNI {VNI}, port {})",
        world.remote.name(),
        world.config.vxlan_port
    );

    let mut capture = Capture::start(&world.remote, REMOTE_VTEP_IF, Direction::In, None)?;
    section("2. The agent, mirroring the pod's veth to the remote VTEP");
    let args = AgentArgs::vxlan(&world, &[NODE_POD_IF]);
    println!("  mirror run {}", args.to_args().join(" "));
    let mut agent = Agent::start_bin(&world.node, &bin, &args)?;
    println!("  {}", agent.ready_line());

    section("3. Traffic from the pod to the node");
    let ping = world
        .pod
        .run("ping", ["-c", "5", "-i", "0.2", NODE_POD_IP])
        .context("pinging from the pod")?;
    for line in ping
        .lines()
        .filter(|l| l.contains("transmitted") || l.contains("rtt"))
    {
        println!("  ping: {line}");
    }
    let transfer = iperf::transfer(
        &world.node,
        NODE_POD_IP,
        &world.pod,
        &["-n", "10M", "-b", "500M"],
    )?;
    println!(
        "  iperf3: {} bytes sent at {:.2} Gbit/s",
        transfer.sent_bytes,
        transfer.gbps()
    );
    capture.wait_until_quiet(Duration::from_millis(500), Duration::from_secs(10));
    let metrics = agent.metrics_text()?;
    let frames = capture.finish()?;

    section(&format!(
        "4. What the remote VTEP decapsulated: {} frames (tshark on {REMOTE_VTEP_IF}, the first {SHOWN_FRAMES})",
        frames.len()
    ));
    let path = capture.path().to_string_lossy();
    let summary = run_stdout(&mut command(
        "tshark",
        ["-n", "-r", &path, "-c", SHOWN_FRAMES],
    ))
    .context("summarising the capture with tshark")?;
    for line in summary.lines() {
        println!("  {}", line.trim());
    }

    section("5. The agent's Prometheus metrics (mirror_ lines of /metrics)");
    for line in Metrics::lines_with_prefix(&metrics, "mirror_") {
        println!("  {line}");
    }

    section("6. Stopping the agent (SIGINT)");
    let status = agent.stop_with(Signal::Int)?;
    println!("  {status}");
    if !status.success() {
        bail!("the agent exited with {status}");
    }
    Ok(())
}

fn section(title: &str) {
    println!("\n== {title}");
}
