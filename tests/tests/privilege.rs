//! Least privilege and discretion:
//!
//! - `readme_capabilities_suffice`: the agent runs the live path (copies reach the remote VTEP)
//!   with exactly the capabilities the README lists, `--iface` with those every run needs and
//!   `--pod NAME` without the API with the namespace ones added, every other capability dropped
//!   by `setpriv` (checked in
//!   the running agent's `/proc/PID/status`) and a 64 KiB memlock limit.
//! - `metrics_bind_only_where_told`: with `--metrics ADDR:PORT` the agent listens there and
//!   nowhere else; without it, nowhere.
//! - `payload_never_logged`: traffic carrying a marker string is mirrored (the remote sees the
//!   marker) and NetFlow-exported, and the marker shows neither in what the agent prints nor in
//!   its metrics.

use std::{fmt::Write as _, net::SocketAddr, time::Duration};

use anyhow::{Context as _, Result, bail, ensure};
use mirror_tests::{
    Agent, AgentArgs, Background, Capture, Direction, World,
    agent::READY_PREFIX,
    caps::{CapsWrapper, ProcessCaps, mask, readme_capabilities},
    existing_mirror_bin,
    listeners::listening,
    netns::unique_prefix,
    pod::FakePod,
    report, skip_unless_root,
    world::{NODE_POD_IF, NODE_POD_IP, NODE_UPLINK_IP, POD_IP, REMOTE_IP, REMOTE_VTEP_IF},
};

const VNI: u32 = 42;
const PINGS: usize = 10;
/// Each echo request and its reply.
const FRAMES: usize = 2 * PINGS;

/// Starts the agent through `wrapper`, checks its capabilities are exactly `caps`, and checks
/// that a pod's pings (by `ping`) reach the remote VTEP.
fn live_with(
    world: &World,
    caps: &[String],
    args: &AgentArgs,
    ping: impl Fn() -> Result<()>,
) -> Result<()> {
    let wrapper = CapsWrapper::new(caps)?;
    let remote = Capture::start(&world.remote, REMOTE_VTEP_IF, Direction::In, None)?;
    let agent = Agent::start_bin(&world.node, &wrapper.path, args)
        .with_context(|| format!("the agent did not start with only {caps:?}"))?;
    ProcessCaps::of(agent.pid())?
        .check_exactly(mask(caps)?)
        .context("setpriv did not drop the other capabilities")?;
    ping()?;
    let arrived =
        remote.wait_for_frames(FRAMES, Duration::from_secs(10), Duration::from_millis(300));
    ensure!(
        arrived == FRAMES,
        "with only {caps:?}, {arrived} copies of {FRAMES} frames arrived"
    );
    Ok(())
}

#[test]
fn readme_capabilities_suffice() -> Result<()> {
    if skip_unless_root("readme_capabilities_suffice") {
        return Ok(());
    }
    let (always, for_pods) = readme_capabilities()?;
    report(&format!(
        "readme_capabilities_suffice: --iface with {}; --pod adds {}",
        always.join(", "),
        for_pods.join(", ")
    ));
    let world = World::new(VNI)?;
    live_with(
        &world,
        &always,
        &AgentArgs::vxlan(&world, &[NODE_POD_IF]),
        || world.ping_node_from_pod(PINGS, None),
    )
    .context("--iface with the capabilities every run needs")?;

    // A pod whose pause process is another user's, as in Kubernetes.
    let pod = FakePod::start_as(
        &world.node,
        &format!("latte-{}", unique_prefix()),
        "vethlatte",
        11,
        Some(65535),
    )?;
    let mut args = AgentArgs::vxlan(&world, &[]);
    args.extra = vec!["--pod".into(), pod.name().into()];
    let caps = [always, for_pods].concat();
    live_with(&world, &caps, &args, || pod.ping_node(PINGS))
        .context("--pod with the pod capabilities added")
}

/// Starts `mirror run ARGV` in the world's node and waits for its ready line.
fn start(world: &World, argv: &[String]) -> Result<Background> {
    let bin = existing_mirror_bin()?;
    let mut agent = Background::spawn(
        "mirror",
        &mut world.node.command(&bin.to_string_lossy(), argv),
    )?;
    agent.wait_for_stderr("its ready line", Duration::from_mins(1), |l| {
        l.starts_with(READY_PREFIX)
    })?;
    Ok(agent)
}

/// Whether `curl http://ADDR/metrics` in the node gets an answer.
fn answers(world: &World, addr: &str) -> bool {
    world
        .node
        .run(
            "curl",
            [
                "-sS",
                "--fail",
                "--max-time",
                "2",
                &format!("http://{addr}/metrics"),
            ],
        )
        .is_ok()
}

#[test]
fn metrics_bind_only_where_told() -> Result<()> {
    if skip_unless_root("metrics_bind_only_where_told") {
        return Ok(());
    }
    let world = World::new(VNI)?;
    let told = format!("{NODE_UPLINK_IP}:9464");
    let mut args = AgentArgs::vxlan(&world, &[NODE_POD_IF]);
    args.metrics.clone_from(&told);
    let mut argv = vec!["run".to_owned()];
    argv.extend(args.to_args());
    let mut agent = start(&world, &argv)?;
    let sockets = listening(&world.node, agent.pid())?;
    ensure!(
        sockets == [format!("tcp {told}")],
        "with --metrics {told} the agent listens on {sockets:?}"
    );
    ensure!(answers(&world, &told), "no metrics at {told}");
    for elsewhere in ["127.0.0.1:9464".to_owned(), format!("{NODE_POD_IP}:9464")] {
        ensure!(
            !answers(&world, &elsewhere),
            "metrics answered at {elsewhere}, only {told} was asked for"
        );
    }
    agent.stop()?;

    // Without --metrics: no endpoint at all.
    let argv: Vec<String> = argv
        .iter()
        .position(|a| a == "--metrics")
        .map(|at| [&argv[..at], &argv[at + 2..]].concat())
        .context("no --metrics in the arguments")?;
    let agent = start(&world, &argv)?;
    let sockets = listening(&world.node, agent.pid())?;
    ensure!(
        sockets.is_empty(),
        "without --metrics the agent listens on {sockets:?}"
    );
    Ok(())
}

/// Carried in the payload of every test packet: 16 bytes, as `ping -p` takes them.
const MARKER: &str = "mirror-secret-7q";

fn hex(text: &str) -> String {
    text.bytes().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

#[test]
fn payload_never_logged() -> Result<()> {
    if skip_unless_root("payload_never_logged") {
        return Ok(());
    }
    let world = World::new(VNI)?;
    let mut remote = Capture::start(&world.remote, REMOTE_VTEP_IF, Direction::In, None)?;
    let mut args = AgentArgs::vxlan(&world, &[NODE_POD_IF]);
    args.extra = vec![
        "--netflow".into(),
        format!("{REMOTE_IP}:2055"),
        "--netflow-inactive-timeout".into(),
        "1".into(),
    ];
    let mut agent = Agent::start(&world.node, &args)?;

    world
        .pod
        .run(
            "ping",
            [
                "-c",
                &PINGS.to_string(),
                "-i",
                "0.01",
                "-q",
                "-p",
                &hex(MARKER),
                NODE_POD_IP,
            ],
        )
        .context("pinging with the marker")?;
    // UDP to a closed port: the node's port unreachables quote the marker back.
    let socket = world.pod.udp_socket(SocketAddr::new(POD_IP.parse()?, 0))?;
    for _ in 0..5 {
        socket.send_to(MARKER.as_bytes(), SocketAddr::new(NODE_POD_IP.parse()?, 9))?;
    }
    remote.wait_for_frames(
        FRAMES + 5,
        Duration::from_secs(10),
        Duration::from_millis(1500),
    );
    let metrics = agent.metrics_text()?;
    agent.stop_with(mirror_tests::Signal::Int)?;
    let copies = remote.finish()?;
    let with_marker = copies
        .iter()
        .filter(|f| f.windows(MARKER.len()).any(|w| w == MARKER.as_bytes()))
        .count();
    ensure!(
        with_marker >= FRAMES,
        "only {with_marker} copies carry the marker: the agent never saw it"
    );

    let printed = [agent.stdout_lines(), agent.stderr_lines()]
        .concat()
        .join("\n");
    for (what, text) in [("output", printed.as_str()), ("/metrics", metrics.as_str())] {
        for needle in [MARKER.to_owned(), hex(MARKER)] {
            if text.contains(&needle) {
                bail!("the agent's {what} contains packet payload ({needle}):\n{text}");
            }
        }
    }
    Ok(())
}
