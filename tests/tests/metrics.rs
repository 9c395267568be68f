//! The agent's `/metrics` against the real Prometheus tools, while it mirrors pings from a pod:
//! `promtool check metrics` finds no problem in a scrape, and a `prometheus` server that scrapes
//! the agent every second answers a PromQL query with the exact count of copied frames.

use std::time::Duration;

use anyhow::{Result, ensure};
use mirror_tests::{
    Agent, AgentArgs, World,
    prometheus::{Prometheus, promtool_check_metrics},
    skip_unless_root,
    world::{NODE_POD_IF, REMOTE_IP},
};

const VNI: u32 = 42;
const PINGS: usize = 50;
/// Each echo request and its reply.
const FRAMES: usize = 2 * PINGS;

/// The agent on the pod's veth, with a NetFlow collector that expires flows after a second, so
/// that the NetFlow series are served too (nothing listens there: export errors are counted).
fn agent_args(world: &World) -> AgentArgs {
    let mut args = AgentArgs::vxlan(world, &[NODE_POD_IF]);
    args.extra = [
        "--netflow",
        &format!("{REMOTE_IP}:2055"),
        "--netflow-inactive-timeout",
        "1",
    ]
    .map(str::to_owned)
    .to_vec();
    args
}

#[test]
fn served_metrics_pass_promtool() -> Result<()> {
    if skip_unless_root("served_metrics_pass_promtool") {
        return Ok(());
    }
    let world = World::new(VNI)?;
    let agent = Agent::start(&world.node, &agent_args(&world))?;
    promtool_check_metrics(&agent.metrics_text()?)?;

    world.ping_node_from_pod(PINGS, None)?;
    agent.wait_for_metric(
        "mirror_netflow_records_total",
        &[],
        1,
        Duration::from_secs(10),
    )?;
    let text = agent.metrics_text()?;
    let captured = mirror_tests::Metrics::parse(&text)?
        .total("mirror_captured_packets_total", &[("iface", NODE_POD_IF)]);
    ensure!(
        captured == count(FRAMES),
        "mirror_captured_packets_total is {captured}, expected {FRAMES}"
    );
    // With every family in use: per-interface, per-remote, per-collector and per-reason series.
    promtool_check_metrics(&text)
}

#[test]
fn prometheus_scrapes_the_agent() -> Result<()> {
    if skip_unless_root("prometheus_scrapes_the_agent") {
        return Ok(());
    }
    let world = World::new(VNI)?;
    let args = agent_args(&world);
    let agent = Agent::start(&world.node, &args)?;
    let prometheus = Prometheus::start(&world.node, &args.metrics)?;
    let up = prometheus.wait_for("up{job=\"mirror\"}", 1.0, Duration::from_secs(30))?;
    ensure!(
        is(up, 1.0),
        "prometheus at {} does not see the agent up: up{{job=\"mirror\"}} is {up:?}",
        prometheus.addr()
    );

    world.ping_node_from_pod(PINGS, None)?;
    let expected = f64::from(u32::try_from(FRAMES)?);
    let captured = format!("sum(mirror_captured_packets_total{{iface=\"{NODE_POD_IF}\"}})");
    let value = prometheus.wait_for(&captured, expected, Duration::from_secs(30))?;
    ensure!(
        is(value, expected),
        "prometheus answers {captured} = {value:?}, expected {FRAMES}"
    );
    let sent = prometheus.wait_for(
        "sum(mirror_sent_packets_total{tunnel=\"vxlan\"})",
        expected,
        Duration::from_secs(10),
    )?;
    ensure!(
        is(sent, expected),
        "prometheus answers sum(mirror_sent_packets_total) = {sent:?}, expected {FRAMES}"
    );
    drop(prometheus);
    drop(agent);
    Ok(())
}

/// Whether a query answered `expected` (counts are whole numbers).
fn is(value: Option<f64>, expected: f64) -> bool {
    value.is_some_and(|v| (v - expected).abs() < 0.5)
}

fn count(n: usize) -> u64 {
    u64::try_from(n).expect("usize fits in u64")
}
