//! SIGINT and SIGTERM make the agent detach everything and exit 0: afterwards the node netns has
//! exactly the links it had before, no XDP program on any link, and no tc or TCX program on
//! `vethpod`.

use std::process::ExitStatus;

use anyhow::{Result, ensure};
use mirror_tests::{
    Agent, AgentArgs, KernelMirror, Signal, World,
    agent::{READY_PREFIX, READY_TIMEOUT, existing_mirror_bin},
    attachments::{attachments, links},
    skip_unless_root,
    world::NODE_POD_IF,
};

const VNI: u32 = 7;

#[test]
fn agent_detaches_everything_on_sigint() -> Result<()> {
    if skip_unless_root("agent_detaches_everything_on_sigint") {
        return Ok(());
    }
    detaches_on(Signal::Int)
}

#[test]
fn agent_detaches_everything_on_sigterm() -> Result<()> {
    if skip_unless_root("agent_detaches_everything_on_sigterm") {
        return Ok(());
    }
    detaches_on(Signal::Term)
}

fn detaches_on(signal: Signal) -> Result<()> {
    let world = World::new(VNI)?;
    let before = links(&world.node)?;
    let clean = attachments(&world.node, NODE_POD_IF)?;
    ensure!(
        clean.is_empty(),
        "the fresh world already has attachments: {clean:#?}"
    );

    let mut agent = Agent::start(&world.node, &AgentArgs::vxlan(&world, &[NODE_POD_IF]))?;
    // The checks must see the agent's programs while it runs, or their silence later means nothing.
    let running = attachments(&world.node, NODE_POD_IF)?;
    println!(
        "while running: links {:?}; attached: {running:#?}",
        links(&world.node)?
    );
    ensure!(
        !running.is_empty(),
        "no tc, TCX or XDP program found while the agent runs: the checks are blind"
    );

    let status: ExitStatus = agent.stop_with(signal)?;
    ensure!(
        status.code() == Some(0),
        "the agent exited with {status} after {signal:?}, expected exit code 0"
    );

    let after = links(&world.node)?;
    ensure!(
        after == before,
        "after {signal:?} the node's links are {after:?}, before the agent they were {before:?}"
    );
    let left = attachments(&world.node, NODE_POD_IF)?;
    ensure!(
        left.is_empty(),
        "after {signal:?} the agent left behind: {left:#?}"
    );
    Ok(())
}

/// With `--log-format json` every stderr line is a JSON object with a level, a time and the
/// message, and the ready and stopped lines can still be found by their text.
#[test]
fn json_log_keeps_ready_and_stopped_greppable() -> Result<()> {
    if skip_unless_root("json_log_keeps_ready_and_stopped_greppable") {
        return Ok(());
    }
    let world = World::new(VNI)?;
    let mut argv = vec![
        "--log-format".to_owned(),
        "json".to_owned(),
        "run".to_owned(),
    ];
    argv.extend(AgentArgs::vxlan(&world, &[NODE_POD_IF]).to_args());
    let bin = existing_mirror_bin()?;
    let mut agent = world.node.spawn("mirror", &bin.to_string_lossy(), &argv)?;
    let ready = agent.wait_for_stderr("its ready line", READY_TIMEOUT, |l| {
        l.contains(&format!("\"{READY_PREFIX}: "))
    })?;
    let status = agent.stop_with(Signal::Term)?;
    ensure!(status.code() == Some(0), "the agent exited with {status}");
    let lines = agent.stderr_lines();
    for line in &lines {
        let event: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| anyhow::anyhow!("not a JSON line ({e}): {line}"))?;
        ensure!(
            event["level"].is_string() && event["timestamp"].is_string(),
            "a log line without level or timestamp: {line}"
        );
        ensure!(
            event["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("mirror: ")),
            "a log line without the agent's message: {line}"
        );
    }
    let ready: serde_json::Value = serde_json::from_str(&ready)?;
    ensure!(
        ready["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("mirror: ready: ")),
        "the ready event: {ready}"
    );
    ensure!(
        lines
            .iter()
            .any(|l| l.contains("\"mirror: stopped: captured ")),
        "no stopped line that grep finds: {lines:?}"
    );
    Ok(())
}

/// The same checks around the kernel stand-in: they see its tc filters while it runs and nothing
/// once it is gone.
#[test]
fn kernel_mirror_baseline_leftover_checks() -> Result<()> {
    if skip_unless_root("kernel_mirror_baseline_leftover_checks") {
        return Ok(());
    }
    let world = World::new(VNI)?;
    let before = links(&world.node)?;
    let mirror = KernelMirror::for_world(&world, &[NODE_POD_IF])?;
    let running = attachments(&world.node, NODE_POD_IF)?;
    ensure!(
        running.iter().any(|a| a.starts_with("tc ingress")),
        "tc ingress filters not seen: {running:#?}"
    );
    ensure!(
        running.iter().any(|a| a.starts_with("tc egress")),
        "tc egress filters not seen: {running:#?}"
    );
    ensure!(
        links(&world.node)? != before,
        "the stand-in's VxLAN device is not seen among the links"
    );
    drop(mirror);
    ensure!(
        links(&world.node)? == before,
        "links differ after the stand-in is gone"
    );
    let left = attachments(&world.node, NODE_POD_IF)?;
    ensure!(left.is_empty(), "left behind by the stand-in: {left:#?}");
    Ok(())
}
