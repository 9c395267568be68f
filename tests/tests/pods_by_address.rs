//! Pods found through the Kubernetes API by their IPs, from the node's side only, by an agent that
//! holds exactly the DaemonSet's capabilities (no `SYS_ADMIN`, no `SYS_PTRACE`):
//!
//! - `routed_pods_are_found_by_their_routes`: Calico-like pods, each behind a /32 route through
//!   its veth;
//! - `bridged_pods_are_found_through_the_bridge`: flannel-like pods on a bridge (`cni0`), of which
//!   the node has no neighbour entry: the agent makes one appear (an ARP request) and says so;
//! - in both, the right veth is attached (a decoy pod is not), the copies reach the kernel VTEP
//!   byte-identical, the metrics and the log say which way the pod was found, and a pod restarted
//!   under a new veth is followed within 2 s;
//! - `a_pod_ip_not_on_this_node`: one clear line and exit code 2, or with `--wait-for-pods` a
//!   waiting line, and the pod attached once it appears.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use mirror_tests::{
    Agent, AgentArgs, Capture, Direction, World,
    agent::run_rejected,
    attachments::{Hook, tcx_prog_count},
    caps::{CapsWrapper, ProcessCaps, daemonset_capabilities, mask},
    cni_pod::{CniPod, Wiring, make_bridge},
    diff_frames,
    kube_api::{ApiPod, FakeApi},
    netns::unique_prefix,
    skip_unless_root,
    world::{NODE_UPLINK_IP, REMOTE_VTEP_IF},
};

const VNI: u32 = 42;
const NODE: &str = "test-node";
const PINGS: usize = 20;
const FRAMES: usize = 2 * PINGS;
/// How soon a pod restarted under a new veth must be mirrored again.
const FOLLOW: Duration = Duration::from_secs(2);

fn count(n: usize) -> u64 {
    u64::try_from(n).expect("usize fits in u64")
}

/// The agent with exactly the DaemonSet's capabilities, with the fake API and `options`.
fn agent<'w>(
    world: &'w World,
    wrapper: &CapsWrapper,
    caps: &[String],
    api: &FakeApi,
    options: &[&str],
) -> Result<Agent<'w>> {
    let mut args = AgentArgs::vxlan(world, &[]);
    args.extra = vec![
        "--kubeconfig".into(),
        api.kubeconfig().display().to_string(),
        "--node-name".into(),
        NODE.into(),
    ];
    args.extra.extend(options.iter().map(ToString::to_string));
    let agent = Agent::start_bin(&world.node, &wrapper.path, &args)
        .with_context(|| format!("the agent did not start with only {caps:?}"))?;
    ProcessCaps::of(agent.pid())?
        .check_exactly(mask(caps)?)
        .context("setpriv did not drop the other capabilities")?;
    Ok(agent)
}

fn tcx(world: &World, dev: &str) -> Result<(u32, u32)> {
    Ok((
        tcx_prog_count(&world.node, dev, Hook::Ingress)?,
        tcx_prog_count(&world.node, dev, Hook::Egress)?,
    ))
}

/// `pod` pings `target`: every frame on its veth reaches the remote VTEP, byte for byte.
fn mirrors(world: &World, pod: &CniPod, target: &str) -> Result<()> {
    let mut local = Capture::start(&world.node, pod.host_if(), Direction::InOut, None)?;
    let mut remote = Capture::start(&world.remote, REMOTE_VTEP_IF, Direction::In, None)?;
    pod.ping(target, PINGS)?;
    remote.wait_for_frames(FRAMES, Duration::from_secs(10), Duration::from_millis(500));
    let sent = local.finish()?;
    let arrived = remote.finish()?;
    ensure!(
        sent.len() >= FRAMES,
        "{} saw {} frames, fewer than the {FRAMES} of the pings",
        pod.host_if(),
        sent.len()
    );
    if let Some(diff) = diff_frames(&sent, &arrived) {
        bail!(
            "the remote did not receive exactly the frames of {}: {diff}",
            pod.host_if()
        );
    }
    Ok(())
}

/// Two pods (`coffee` wanted, `decoy` not) wired by `wiring`, found through the API; then
/// coffee restarts under a new veth. `target` is what the pods ping on the node.
fn found_and_followed(wiring: &Wiring, ips: [&str; 2], target: &str, method: &str) -> Result<()> {
    let caps = daemonset_capabilities()?;
    let wrapper = CapsWrapper::new(&caps)?;
    let world = World::new(VNI)?;
    let wiring = match wiring {
        Wiring::Bridged { bridge, gateway } => make_bridge(&world.node, bridge, gateway)?,
        Wiring::Routed => Wiring::Routed,
    };
    let decoy = CniPod::start(&world.node, "vethdecoy", ips[1], &wiring)?;
    let coffee = CniPod::start(&world.node, "vethcoffee", ips[0], &wiring)?;
    let api = FakeApi::start(&world.node)?;
    let name = format!("coffee-{}", unique_prefix());
    api.put(&ApiPod::running("cafe", &name, NODE, coffee.ip()));
    let wanted = format!("cafe/{name}");
    let agent = agent(&world, &wrapper, &caps, &api, &["--pod", &wanted])?;
    ensure!(
        agent
            .ready_line()
            .contains(&format!("pod {wanted} on vethcoffee")),
        "the ready line does not name {wanted} on vethcoffee: {}; agent said {:?}",
        agent.ready_line(),
        agent.stderr_lines()
    );
    ensure!(
        tcx(&world, "vethcoffee")? == (1, 1),
        "vethcoffee not attached"
    );
    ensure!(tcx(&world, "vethdecoy")? == (0, 0), "vethdecoy attached");
    let said = agent.stderr_lines();
    ensure!(
        said.iter()
            .any(|l| l.starts_with(&format!("mirror: found pod {wanted} on vethcoffee by "))),
        "the agent did not say how it found the pod: {said:?}"
    );
    if method == "bridge" {
        ensure!(
            said.iter().any(|l| l.starts_with(&format!(
                "mirror: pod {wanted}: {} had no neighbour entry on cni0: the node sent an ARP request",
                coffee.ip()
            ))),
            "the agent did not say it probed for the pod's address: {said:?}"
        );
    }
    mirrors(&world, &coffee, target)?;
    let metrics = agent.wait_for_metric(
        "mirror_captured_packets_total",
        &[
            ("pod", &name),
            ("namespace", "cafe"),
            ("iface", "vethcoffee"),
        ],
        count(FRAMES),
        Duration::from_secs(5),
    )?;
    ensure!(
        metrics.total("mirror_pod_resolved_total", &[("method", method)]) == 1
            && metrics.total("mirror_pod_resolved_total", &[]) == 1,
        "mirror_pod_resolved_total{{method=\"{method}\"}} is {}, all methods {}",
        metrics.total("mirror_pod_resolved_total", &[("method", method)]),
        metrics.total("mirror_pod_resolved_total", &[])
    );

    restarts(&world, &agent, coffee, &wiring, &wanted, target, method)?;
    drop(decoy);
    Ok(())
}

/// `coffee` restarts: its veth goes, a new one (new name, new MAC) comes with the same IP, and
/// is attached within [`FOLLOW`].
fn restarts(
    world: &World,
    agent: &Agent<'_>,
    coffee: CniPod,
    wiring: &Wiring,
    wanted: &str,
    target: &str,
    method: &str,
) -> Result<()> {
    let ip = coffee.ip().to_owned();
    coffee.kill(&world.node)?;
    // Timed from the end of the set-up (a dozen processes, slow on a loaded machine): the
    // budget is the agent's, not the harness's.
    let coffee = CniPod::start(&world.node, "vethcoffee2", &ip, wiring)?;
    let restarted = Instant::now();
    let metrics =
        agent.wait_for_metrics(FOLLOW * 3, |m| m.total("mirror_attach_total", &[]) >= 2)?;
    let took = restarted.elapsed();
    println!("{method}: the restarted pod was attached {took:?} after its set-up ended");
    ensure!(
        metrics.total("mirror_attach_total", &[]) == 2
            && metrics.total("mirror_detach_total", &[("reason", "gone")]) == 1,
        "after the restart: attach_total {}, detach_total {}; agent said {:?}",
        metrics.total("mirror_attach_total", &[]),
        metrics.total("mirror_detach_total", &[("reason", "gone")]),
        agent.stderr_lines()
    );
    ensure!(
        took <= FOLLOW,
        "the restarted pod was attached {took:?} after its set-up ended, more than {FOLLOW:?}"
    );
    ensure!(
        tcx(world, "vethcoffee2")? == (1, 1),
        "vethcoffee2 not attached"
    );
    ensure!(tcx(world, "vethdecoy")? == (0, 0), "vethdecoy attached");
    ensure!(
        agent
            .stderr_lines()
            .iter()
            .any(|l| l.starts_with(&format!("mirror: attached pod {wanted} on vethcoffee2 by "))),
        "the agent did not say how it found the restarted pod: {:?}",
        agent.stderr_lines()
    );
    mirrors(world, &coffee, target)?;
    let metrics = agent.metrics()?;
    ensure!(
        metrics.total("mirror_pod_resolved_total", &[("method", method)]) == 2,
        "mirror_pod_resolved_total{{method=\"{method}\"}} is {} after the restart",
        metrics.total("mirror_pod_resolved_total", &[("method", method)])
    );
    Ok(())
}

#[test]
fn routed_pods_are_found_by_their_routes() -> Result<()> {
    if skip_unless_root("routed_pods_are_found_by_their_routes") {
        return Ok(());
    }
    found_and_followed(
        &Wiring::Routed,
        ["198.19.70.5", "198.19.70.6"],
        NODE_UPLINK_IP,
        "route",
    )
}

#[test]
fn bridged_pods_are_found_through_the_bridge() -> Result<()> {
    if skip_unless_root("bridged_pods_are_found_through_the_bridge") {
        return Ok(());
    }
    found_and_followed(
        &Wiring::Bridged {
            bridge: "cni0".into(),
            gateway: "198.19.80.1".into(),
        },
        ["198.19.80.5", "198.19.80.6"],
        "198.19.80.1",
        "bridge",
    )
}

#[test]
fn a_pod_ip_not_on_this_node() -> Result<()> {
    if skip_unless_root("a_pod_ip_not_on_this_node") {
        return Ok(());
    }
    let caps = daemonset_capabilities()?;
    let wrapper = CapsWrapper::new(&caps)?;
    let world = World::new(VNI)?;
    let wiring = make_bridge(&world.node, "cni0", "198.19.90.1")?;
    let api = FakeApi::start(&world.node)?;
    let name = format!("far-{}", unique_prefix());
    // The API says it runs here, but nothing on the node routes its IP to a veth or a bridge.
    let ip = "198.19.91.7";
    api.put(&ApiPod::running("cafe", &name, NODE, ip));
    let wanted = format!("cafe/{name}");
    let options = [
        "--kubeconfig".to_owned(),
        api.kubeconfig().display().to_string(),
        "--node-name".to_owned(),
        NODE.to_owned(),
        "--pod".to_owned(),
        wanted.clone(),
    ];
    run_rejected(
        &world,
        &options,
        &format!(
            "error: pod {wanted}: the Kubernetes API places it on this node with IP {ip}, but its veth is not on this node: "
        ),
    )?;
    // On the bridge's subnet, but nothing answers for it there.
    let silent = "198.19.90.9";
    api.put(&ApiPod::running("cafe", &name, NODE, silent));
    run_rejected(
        &world,
        &options,
        &format!(
            "error: pod {wanted}: the Kubernetes API places it on this node with IP {silent}, but its veth is not on this node: the route to {silent} leaves through bridge cni0, but nothing behind it answered an ARP request"
        ),
    )?;

    let agent = agent(
        &world,
        &wrapper,
        &caps,
        &api,
        &["--pod", &wanted, "--wait-for-pods"],
    )?;
    ensure!(
        agent
            .ready_line()
            .contains("copying nothing yet, waiting for pods"),
        "ready line: {}",
        agent.ready_line()
    );
    let said = agent.stderr_lines();
    ensure!(
        said.iter().any(|l| l.starts_with(&format!(
            "mirror: waiting: pod {wanted}: the Kubernetes API places it on this node with IP {silent}, but its veth is not on this node: "
        ))),
        "the agent did not say what it waits for: {said:?}"
    );
    // The pod comes up on the bridge: attached.
    let pod = CniPod::start(&world.node, "vethfar", silent, &wiring)?;
    let appeared = Instant::now();
    agent.wait_for_metrics(FOLLOW * 3, |m| m.total("mirror_attach_total", &[]) >= 1)?;
    let took = appeared.elapsed();
    ensure!(
        took <= FOLLOW,
        "the awaited pod was attached {took:?} after its set-up ended, more than {FOLLOW:?}"
    );
    ensure!(tcx(&world, "vethfar")? == (1, 1), "vethfar not attached");
    mirrors(&world, &pod, "198.19.90.1")
}
