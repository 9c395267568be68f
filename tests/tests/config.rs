//! `mirror run --config FILE`: a file alone drives a real mirror (the remote VTEP decapsulates
//! the pod's frames exactly), the command line wins over the file, and a bad file is refused
//! with exit code 2 and one line naming the file and the key.
//!
//! As root every refusal runs inside a fresh node netns, so an agent that wrongly accepted its
//! file could touch nothing but that namespace; without root they run here, as they must be
//! refused before anything privileged happens.

use std::{fs, path::PathBuf, time::Duration};

use anyhow::{Context as _, Result, ensure};
use mirror_tests::{
    Agent, Capture, Direction, World,
    agent::usage_error_line,
    diff_frames, existing_mirror_bin, is_root,
    scratch::ScratchDir,
    skip_unless_root,
    world::{NODE_POD_IF, POD_IF, REMOTE_IP, REMOTE_VTEP_IF},
};

const VNI: u32 = 42;
const PINGS: usize = 20;
/// Each echo request and its reply.
const FRAMES: usize = 2 * PINGS;
const METRICS_ADDR: &str = "127.0.0.1:9464";

/// Writes `text` as `name` into `dir`.
fn write_config(dir: &ScratchDir, name: &str, text: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

fn argv(config: &std::path::Path, extra: &[&str]) -> Vec<String> {
    let mut argv = vec![
        "run".to_owned(),
        "--config".to_owned(),
        config.to_string_lossy().into_owned(),
    ];
    argv.extend(extra.iter().map(ToString::to_string));
    argv
}

/// Runs `mirror ARGV` (in a fresh node netns when root) and checks that it exits with code 2
/// and one `error:` line that contains every one of `named`.
fn rejects(argv: &[String], named: &[&str]) -> Result<()> {
    let world = if is_root() {
        Some(World::new(VNI)?)
    } else {
        None
    };
    let line = usage_error_line(world.as_ref(), argv)?;
    for name in named {
        ensure!(
            line.contains(name),
            "the error line `{line}` does not name `{name}`"
        );
    }
    Ok(())
}

#[test]
fn unknown_key_is_rejected_by_name() -> Result<()> {
    let dir = ScratchDir::new()?;
    let config = write_config(
        &dir,
        "mirror.toml",
        &format!("iface = [\"{NODE_POD_IF}\"]\nremotes = [\"{REMOTE_IP}\"]\n"),
    )?;
    rejects(
        &argv(&config, &[]),
        &["unknown key `remotes`", &config.to_string_lossy()],
    )
}

#[test]
fn bad_value_in_the_file_is_rejected_by_key() -> Result<()> {
    let dir = ScratchDir::new()?;
    let config = write_config(
        &dir,
        "mirror.yaml",
        &format!("iface: [{NODE_POD_IF}]\nremote: [{REMOTE_IP}]\nvni: 16777216\n"),
    )?;
    rejects(
        &argv(&config, &[]),
        &["key `vni`", "16777216", &config.to_string_lossy()],
    )
}

/// Pings from the pod with `mirror run ARGV` in the node; the remote VTEP (VNI [`VNI`], port
/// 4789) must decapsulate exactly the pod's frames.
fn pings_reach_the_remote<'w>(world: &'w World, argv: &[String]) -> Result<Agent<'w>> {
    let mut pod_capture = Capture::start(&world.pod, POD_IF, Direction::InOut, None)?;
    let mut remote_capture = Capture::start(&world.remote, REMOTE_VTEP_IF, Direction::In, None)?;
    let agent = Agent::start_argv(&world.node, &existing_mirror_bin()?, argv, METRICS_ADDR)?;
    world.ping_node_from_pod(PINGS, None)?;
    let arrived =
        remote_capture.wait_for_frames(FRAMES, Duration::from_secs(10), Duration::from_millis(500));
    println!("{arrived} frames decapsulated at the remote VTEP");
    let pod_frames = pod_capture.finish()?;
    ensure!(
        pod_frames.len() == FRAMES,
        "the pod itself saw {} frames, not {FRAMES}: the world is not quiet",
        pod_frames.len()
    );
    let remote_frames = remote_capture.finish()?;
    if let Some(diff) = diff_frames(&pod_frames, &remote_frames) {
        anyhow::bail!(
            "`mirror {}`: the remote VTEP did not receive the pod's frames exactly: {diff}",
            argv.join(" ")
        );
    }
    Ok(agent)
}

#[test]
fn config_file_drives_a_run() -> Result<()> {
    if skip_unless_root("config_file_drives_a_run") {
        return Ok(());
    }
    let world = World::new(VNI)?;
    let dir = ScratchDir::new()?;
    // Everything from the file: interface, tunnel, remote, VNI, metrics.
    let config = write_config(
        &dir,
        "mirror.yaml",
        &format!(
            "iface:\n  - {NODE_POD_IF}\ntunnel: vxlan\nremote:\n  - {REMOTE_IP}\nvni: {VNI}\n\
             vxlan-port: 4789\nmetrics: {METRICS_ADDR}\n"
        ),
    )?;
    let agent = pings_reach_the_remote(&world, &argv(&config, &[]))?;
    let metrics = agent.wait_for_metric(
        "mirror_sent_packets_total",
        &[("tunnel", "vxlan")],
        count(FRAMES),
        Duration::from_secs(5),
    )?;
    let sent = metrics.total(
        "mirror_sent_packets_total",
        &[("remote", &format!("{REMOTE_IP}:4789"))],
    );
    ensure!(
        sent == count(FRAMES),
        "the file's remote got {sent} tunnel packets, expected {FRAMES}"
    );
    Ok(())
}

#[test]
fn command_line_overrides_the_file() -> Result<()> {
    if skip_unless_root("command_line_overrides_the_file") {
        return Ok(());
    }
    let world = World::new(VNI)?;
    let dir = ScratchDir::new()?;
    // With the file's VNI and port nothing would reach the remote VTEP; the file's metrics
    // address would not be the one scraped.
    let config = write_config(
        &dir,
        "mirror.toml",
        &format!(
            "iface = [\"{NODE_POD_IF}\"]\ntunnel = \"vxlan\"\nremote = [\"{REMOTE_IP}:4790\"]\n\
             vni = 7\nmetrics = \"127.0.0.1:9401\"\n"
        ),
    )?;
    let agent = pings_reach_the_remote(
        &world,
        &argv(
            &config,
            &[
                "--vni",
                &VNI.to_string(),
                "--remote",
                &format!("{REMOTE_IP}:4789"),
                "--metrics",
                METRICS_ADDR,
            ],
        ),
    )?;
    let metrics = agent.wait_for_metric(
        "mirror_sent_packets_total",
        &[("tunnel", "vxlan")],
        count(FRAMES),
        Duration::from_secs(5),
    )?;
    // The command line's remote list replaced the file's: nothing went to port 4790.
    let to_file_remote = metrics.total(
        "mirror_sent_packets_total",
        &[("remote", &format!("{REMOTE_IP}:4790"))],
    );
    let total = metrics.total("mirror_sent_packets_total", &[]);
    ensure!(
        to_file_remote == 0 && total == count(FRAMES),
        "sent {total} tunnel packets, {to_file_remote} of them to the file's remote; expected \
         {FRAMES}, all to the command line's"
    );
    Ok(())
}

fn count(n: usize) -> u64 {
    u64::try_from(n).expect("usize fits in u64")
}
