//! `mirror run --pod NAME`: node-local pod resolution and churn.
//!
//! Fake pods ([`FakePod`]: `unshare --uts --net` processes whose hostname is the pod name, with a
//! veth to the node) stand in for Kubernetes pods on the standard test world's node, next to the
//! world's own pod (a named netns without a hostname of its own). The agent must pick the right
//! veth among them, send exactly that pod's frames to the remote VTEP, follow the pod when it is
//! killed and comes back under another veth (within 2 s), and say so in its metrics.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use mirror_tests::{
    Agent, AgentArgs, Capture, Direction, Metrics, World,
    agent::run_rejected,
    attachments::{Hook, tcx_prog_count},
    diff_frames, existing_mirror_bin,
    netns::unique_prefix,
    pod::{FakePod, ifindex, pids_in, tcx_links},
    skip_unless_root,
    world::{NODE_POD_IF, POD_IP, REMOTE_VTEP_IF},
};

const VNI: u32 = 42;
const PINGS: usize = 20;
/// Each echo request and its reply.
const FRAMES: usize = 2 * PINGS;
/// How soon a pod that comes back must be mirrored again.
const REATTACH: Duration = Duration::from_secs(2);

/// A pod name unique to this test run: `BASE-mtPIDxN` (lower case, a valid pod name).
fn pod_name(base: &str) -> String {
    format!("{base}-{}", unique_prefix())
}

fn agent_for_pods<'w>(world: &'w World, options: &[&str]) -> Result<Agent<'w>> {
    let mut args = AgentArgs::vxlan(world, &[]);
    args.extra = options.iter().map(ToString::to_string).collect();
    Agent::start(&world.node, &args)
}

fn count(n: usize) -> u64 {
    u64::try_from(n).expect("usize fits in u64")
}

/// TCX programs on `dev` in the node, ingress and egress.
fn tcx(world: &World, dev: &str) -> Result<(u32, u32)> {
    Ok((
        tcx_prog_count(&world.node, dev, Hook::Ingress)?,
        tcx_prog_count(&world.node, dev, Hook::Egress)?,
    ))
}

#[test]
fn pod_by_name_mirrors_that_pod_only() -> Result<()> {
    if skip_unless_root("pod_by_name_mirrors_that_pod_only") {
        return Ok(());
    }
    let world = World::new(VNI)?;
    let coffee = FakePod::start(&world.node, &pod_name("coffee"), "vethcoffee", 11)?;
    let tea = FakePod::start(&world.node, &pod_name("tea"), "vethtea", 12)?;
    let mut tea_capture = Capture::start(&world.node, tea.host_if(), Direction::InOut, None)?;
    let mut remote = Capture::start(&world.remote, REMOTE_VTEP_IF, Direction::In, None)?;
    let wanted = format!("shop/{}", tea.name());
    let agent = agent_for_pods(&world, &["--pod", &wanted])?;
    ensure!(
        agent
            .ready_line()
            .contains(&format!("pod {wanted} on vethtea")),
        "the ready line does not name the pod and its veth: {}",
        agent.ready_line()
    );
    ensure!(
        tcx(&world, "vethtea")? == (1, 1),
        "vethtea is not attached both ways"
    );
    for other in [coffee.host_if(), NODE_POD_IF] {
        ensure!(
            tcx(&world, other)? == (0, 0),
            "{other} is attached too: the agent took the wrong veth"
        );
    }

    // The other pods talk too; only tea's frames may arrive.
    coffee.ping_node(PINGS)?;
    world.ping_node_from_pod(PINGS, None)?;
    tea.ping_node(PINGS)?;
    let arrived =
        remote.wait_for_frames(FRAMES, Duration::from_secs(10), Duration::from_millis(500));
    println!("{arrived} frames decapsulated at the remote VTEP");
    let metrics = agent.wait_for_metric(
        "mirror_captured_packets_total",
        &[("pod", tea.name())],
        count(FRAMES),
        Duration::from_secs(5),
    )?;
    let tea_frames = tea_capture.finish()?;
    let remote_frames = remote.finish()?;
    ensure!(
        tea_frames.len() == FRAMES,
        "tea's veth saw {} frames, not {FRAMES}: the world is not quiet",
        tea_frames.len()
    );
    if let Some(diff) = diff_frames(&tea_frames, &remote_frames) {
        anyhow::bail!("the remote did not receive exactly tea's frames: {diff}");
    }
    let labels = [
        ("pod", tea.name()),
        ("namespace", "shop"),
        ("iface", "vethtea"),
    ];
    for direction in ["ingress", "egress"] {
        let mut with = labels.to_vec();
        with.push(("direction", direction));
        let captured = metrics.total("mirror_captured_packets_total", &with);
        ensure!(
            captured == count(PINGS),
            "mirror_captured_packets_total{with:?} is {captured}, expected {PINGS}"
        );
    }
    ensure!(metrics.total("mirror_attached_interfaces", &[]) == 1);
    ensure!(metrics.total("mirror_attach_total", &[]) == 1);
    ensure!(metrics.total("mirror_build_info", &[]) == 1);
    Ok(())
}

#[test]
fn pod_by_ip_finds_named_and_unnamed_namespaces() -> Result<()> {
    if skip_unless_root("pod_by_ip_finds_named_and_unnamed_namespaces") {
        return Ok(());
    }
    let world = World::new(VNI)?;
    let coffee = FakePod::start(&world.node, &pod_name("coffee"), "vethcoffee", 11)?;
    let tea = FakePod::start(&world.node, &pod_name("tea"), "vethtea", 12)?;
    let remote = Capture::start(&world.remote, REMOTE_VTEP_IF, Direction::In, None)?;
    // The world's pod is a named netns (/run/netns), tea an unnamed one: both are found from the
    // node's side, by the route to their IPs, and labelled with their IPs.
    let tea_ip = tea.ip();
    let agent = agent_for_pods(&world, &["--pod-ip", POD_IP, "--pod-ip", &tea_ip])?;
    ensure!(
        tcx(&world, NODE_POD_IF)? == (1, 1),
        "{NODE_POD_IF} not attached"
    );
    ensure!(tcx(&world, "vethtea")? == (1, 1), "vethtea not attached");
    ensure!(
        tcx(&world, coffee.host_if())? == (0, 0),
        "vethcoffee attached"
    );
    coffee.ping_node(PINGS)?;
    tea.ping_node(PINGS)?;
    world.ping_node_from_pod(PINGS, None)?;
    let arrived = remote.wait_for_frames(
        2 * FRAMES,
        Duration::from_secs(10),
        Duration::from_millis(500),
    );
    ensure!(
        arrived == 2 * FRAMES,
        "{arrived} frames arrived, expected {} (tea's and the world pod's)",
        2 * FRAMES
    );
    let metrics = agent.wait_for_metric(
        "mirror_captured_packets_total",
        &[("pod", tea_ip.as_str()), ("iface", "vethtea")],
        count(FRAMES),
        Duration::from_secs(5),
    )?;
    let tea_count = metrics.total(
        "mirror_captured_packets_total",
        &[("pod", tea_ip.as_str()), ("iface", "vethtea")],
    );
    ensure!(
        tea_count == count(FRAMES),
        "tea counted {tea_count} copies, expected {FRAMES} (labelled with its IP: --pod-ip does not enter the pod for its hostname)"
    );
    Ok(())
}

#[test]
fn pod_restart_under_a_new_veth_is_followed() -> Result<()> {
    if skip_unless_root("pod_restart_under_a_new_veth_is_followed") {
        return Ok(());
    }
    let world = World::new(VNI)?;
    let name = pod_name("latte");
    let first = FakePod::start(&world.node, &name, "vethlatte1", 21)?;
    // Another pod stays: it must stay unmirrored throughout.
    let other = FakePod::start(&world.node, &pod_name("mocha"), "vethmocha", 22)?;
    let mut remote = Capture::start(&world.remote, REMOTE_VTEP_IF, Direction::In, None)?;
    let agent = agent_for_pods(&world, &["--pod", &name])?;
    let agent_pid = single_agent_pid(&world)?;
    let first_ifindex = ifindex(&world.node, first.host_if())?;

    let mut capture = Capture::start(&world.node, first.host_if(), Direction::InOut, None)?;
    first.ping_node(PINGS)?;
    remote.wait_for_frames(FRAMES, Duration::from_secs(10), Duration::from_millis(300));
    let first_frames = capture.finish()?;

    // The pod dies: its namespace and veth go; the agent detaches and counts it.
    first.kill(&world.node)?;
    check_detached(&agent, agent_pid, first_ifindex)?;

    // It comes back with the same hostname under another veth.
    // Timed from the end of the set-up: the budget is the agent's, not the harness's.
    let second = FakePod::start(&world.node, &name, "vethlatte2", 21)?;
    let recreated = Instant::now();
    let metrics =
        agent.wait_for_metrics(REATTACH * 3, |m| m.total("mirror_attach_total", &[]) >= 2)?;
    let took = recreated.elapsed();
    println!("re-attached {took:?} after the pod's re-creation ended");
    ensure!(
        metrics.total("mirror_attach_total", &[]) == 2,
        "mirror_attach_total is {}, expected 2",
        metrics.total("mirror_attach_total", &[])
    );
    ensure!(
        took <= REATTACH,
        "the new veth was attached {took:?} after the pod came back, more than {REATTACH:?}"
    );
    ensure!(
        tcx(&world, "vethlatte2")? == (1, 1),
        "vethlatte2 not attached"
    );
    ensure!(
        tcx(&world, other.host_if())? == (0, 0),
        "vethmocha attached"
    );

    let mut capture = Capture::start(&world.node, second.host_if(), Direction::InOut, None)?;
    other.ping_node(PINGS)?;
    second.ping_node(PINGS)?;
    remote.wait_for_frames(
        2 * FRAMES,
        Duration::from_secs(10),
        Duration::from_millis(500),
    );
    let second_frames = capture.finish()?;
    let remote_frames = remote.finish()?;
    let expected = [first_frames, second_frames].concat();
    ensure!(
        expected.len() == 2 * FRAMES,
        "the pod's veths were not quiet"
    );
    if let Some(diff) = diff_frames(&expected, &remote_frames) {
        anyhow::bail!(
            "the remote did not receive exactly the pod's frames before and after its restart: {diff}"
        );
    }

    // Only the new veth's links remain (and the tagger's on the mirror veth).
    let second_ifindex = ifindex(&world.node, second.host_if())?;
    let links = tcx_links(agent_pid)?;
    let on_pod: Vec<_> = links
        .iter()
        .filter(|l| l.ifindex == second_ifindex)
        .collect();
    ensure!(
        links.len() == 3 && on_pod.len() == 2,
        "the agent holds TCX links {links:?}; expected 2 on vethlatte2 (ifindex {second_ifindex}) and the tagger's"
    );
    let metrics = agent.wait_for_metric(
        "mirror_captured_packets_total",
        &[("iface", "vethlatte2")],
        count(FRAMES),
        Duration::from_secs(5),
    )?;
    let captured = metrics.total(
        "mirror_captured_packets_total",
        &[("iface", "vethlatte2"), ("pod", name.as_str())],
    );
    ensure!(
        captured == count(FRAMES),
        "mirror_captured_packets_total for vethlatte2 is {captured}, expected {FRAMES}"
    );
    ensure!(metrics.total("mirror_attached_interfaces", &[]) == 1);
    ensure!(metrics.total("mirror_detach_total", &[]) == 1);
    drop(second);
    Ok(())
}

#[test]
fn iface_that_comes_back_is_attached_again() -> Result<()> {
    if skip_unless_root("iface_that_comes_back_is_attached_again") {
        return Ok(());
    }
    let world = World::new(VNI)?;
    let first = FakePod::start(&world.node, &pod_name("chai"), "vethchai", 31)?;
    let mut args = AgentArgs::vxlan(&world, &["vethchai"]);
    args.extra = Vec::new();
    let agent = Agent::start(&world.node, &args)?;
    first.kill(&world.node)?;
    let metrics = agent.wait_for_metrics(Duration::from_secs(5), |m| {
        m.total("mirror_detach_total", &[("reason", "gone")]) == 1
    })?;
    ensure!(
        metrics.total("mirror_attached_interfaces", &[]) == 0,
        "vethchai is gone but still counted as attached"
    );
    // Same interface name, another pod (and ifindex).
    let second = FakePod::start(&world.node, &pod_name("chai"), "vethchai", 31)?;
    let metrics = agent.wait_for_metrics(REATTACH, |m| m.total("mirror_attach_total", &[]) == 2)?;
    ensure!(
        metrics.total("mirror_attach_total", &[]) == 2,
        "--iface vethchai was not attached again within {REATTACH:?} of coming back"
    );
    ensure!(tcx(&world, "vethchai")? == (1, 1), "vethchai not attached");
    let remote = Capture::start(&world.remote, REMOTE_VTEP_IF, Direction::In, None)?;
    second.ping_node(PINGS)?;
    let arrived =
        remote.wait_for_frames(FRAMES, Duration::from_secs(10), Duration::from_millis(300));
    ensure!(
        arrived == FRAMES,
        "{arrived} copies arrived, expected {FRAMES}"
    );
    Ok(())
}

#[test]
fn unknown_pod_is_rejected() -> Result<()> {
    if skip_unless_root("unknown_pod_is_rejected") {
        return Ok(());
    }
    let world = World::new(1)?;
    let _coffee = FakePod::start(&world.node, &pod_name("coffee"), "vethcoffee", 11)?;
    let missing = pod_name("nosuchpod");
    run_rejected(
        &world,
        &["--pod", &missing],
        &format!("error: --pod {missing}: no pod with that name on this node"),
    )?;
    run_rejected(
        &world,
        &["--pod", &format!("shop/{missing}")],
        &format!("error: --pod shop/{missing}: no pod with that name on this node"),
    )?;
    run_rejected(
        &world,
        &["--pod-ip", "198.19.99.2"],
        "error: --pod-ip 198.19.99.2: no pod with that IP on this node",
    )?;
    run_rejected(
        &world,
        &[] as &[&str],
        "error: nothing to mirror: give --iface NAME, --pod [NAMESPACE/]NAME or --pod-ip IP",
    )?;
    run_rejected(
        &world,
        &["--pod", "Not_A_Pod"],
        "error: invalid value 'Not_A_Pod' for '--pod <[NAMESPACE/]NAME>'",
    )
}

/// After the pod's veth (`gone_ifindex`) vanished: one detach counted, nothing attached, and no
/// TCX link of the veth left in the agent.
fn check_detached(agent: &Agent<'_>, agent_pid: u32, gone_ifindex: u32) -> Result<()> {
    let metrics = agent.wait_for_metrics(Duration::from_secs(5), |m| {
        m.total("mirror_detach_total", &[("reason", "gone")]) == 1
            && m.total("mirror_attached_interfaces", &[]) == 0
    })?;
    ensure!(
        metrics.total("mirror_detach_total", &[("reason", "gone")]) == 1,
        "no detach counted after the pod's veth vanished: {:?}",
        detach_lines(&metrics)
    );
    ensure!(
        metrics.total("mirror_attached_interfaces", &[]) == 0,
        "mirror_attached_interfaces is not 0 after the pod went"
    );
    let leftovers: Vec<_> = tcx_links(agent_pid)?
        .into_iter()
        .filter(|l| l.ifindex == gone_ifindex)
        .collect();
    ensure!(
        leftovers.is_empty(),
        "the agent still holds TCX links of the deleted veth: {leftovers:?}"
    );

    Ok(())
}

/// The one `mirror` process in the world's node.
fn single_agent_pid(world: &World) -> Result<u32> {
    let pids = pids_in(&world.node, &existing_mirror_bin()?)?;
    ensure!(
        pids.len() == 1,
        "expected one agent in the node, found pids {pids:?}"
    );
    Ok(pids[0])
}

fn detach_lines(metrics: &Metrics) -> Vec<String> {
    metrics
        .matching("mirror_detach_total", &[])
        .map(|s| format!("{:?} {}", s.labels, s.value))
        .collect()
}
