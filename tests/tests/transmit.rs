//! AF_XDP transmit (`--send-path af-xdp`, the default) follows the kernel's tables the way the
//! kernel's own sending would:
//!
//! - `route_moves_to_another_uplink`: the remote's route moves to a second uplink mid-run; within
//!   1 s the copies leave there, and every one reaches the remote VTEP.
//! - `neighbour_deleted_is_resolved_again`: the next hop's neighbour entry is deleted; the agent
//!   makes a managed one, the kernel resolves it, and no copy is lost.
//! - `uplink_down_and_up`, `carrier_lost_and_back`: copies taken while the uplink is down, or up
//!   without a carrier (its far end down), count as `send_error`, the others arrive; exactly.
//! - `device_drops_count_as_send_errors`: the uplink's far end takes smaller frames than the
//!   route allows, so the veth drops the big copies AF_XDP hands it (NET_XMIT_DROP): those count
//!   as `send_error`, not as sent, and captured = sent + dropped still holds.
//! - `mtu_change_is_followed`: the uplink's MTU drops to 1500 mid-run: full-size copies are cut to
//!   fit (`--oversize truncate`) instead of being refused by the device.
//! - `remotes_behind_two_uplinks`: two remotes on two uplinks both get every copy (one of them
//!   from a spare chunk).
//! - `socket_path_forced`: `--send-path socket` sends through the raw socket and says so.
//! - `node_traffic_untouched`: the node's own traffic over the uplink flows while the agent
//!   sends from it, and after the agent is killed; no XDP program is left on the uplink.

use std::{thread, time::Duration};

use anyhow::{Context as _, Result, ensure};
use mirror_tests::{
    Agent, AgentArgs, Capture, Direction, Metrics, Signal, World, diff_frames,
    netns::Netns,
    report, skip_unless_root,
    world::{NODE_POD_IF, NODE_UPLINK_IF, REMOTE_IF, REMOTE_IP, REMOTE_VTEP_IF},
};

const VNI: u32 = 42;
const PINGS: usize = 20;
/// Each echo request and its reply.
const FRAMES: usize = 2 * PINGS;
/// The second uplink: node end, remote end, and their addresses.
const UPLINK2: &str = "uplink2";
const REMOTE_IF2: &str = "eth1";
const NODE_IP2: &str = "198.18.1.1";
const REMOTE_IP2: &str = "198.18.1.2";
/// A ping payload whose copies outgrow a 1280-byte MTU in their tunnel.
const BIG_PING: usize = 1400;
/// How soon the copies must follow a change.
const FOLLOW: Duration = Duration::from_secs(1);

fn count(n: usize) -> u64 {
    u64::try_from(n).expect("usize fits in u64")
}

/// The value of `mirror_remote_send_path{path}` summed over remotes.
fn on_path(metrics: &Metrics, path: &str) -> u64 {
    metrics.total("mirror_remote_send_path", &[("path", path)])
}

/// The pod's frames while it pings the node `PINGS` times (`size` bytes of payload).
fn pod_pings(world: &World, size: Option<usize>) -> Result<Vec<Vec<u8>>> {
    world.pod_ping_frames(PINGS, size)
}

/// A capture on the remote VTEP, then the agent mirroring the pod to it with `extra` options;
/// waits until AF_XDP serves the remote unless `extra` asks for the socket.
fn vtep_and_agent<'w>(world: &'w World, extra: &[&str]) -> Result<(Capture, Agent<'w>)> {
    let remote = Capture::start(&world.remote, REMOTE_VTEP_IF, Direction::In, None)?;
    let mut args = AgentArgs::vxlan(world, &[NODE_POD_IF]);
    args.extra = extra.iter().map(ToString::to_string).collect();
    let agent = Agent::start(&world.node, &args)?;
    if !extra.contains(&"socket") {
        wait_for_af_xdp(&agent, 1)?;
    }
    Ok((remote, agent))
}

/// A second node-remote link, `uplink2` (198.18.1.1/24) to the remote's `eth1` (198.18.1.2/24).
fn add_second_uplink(world: &World) -> Result<()> {
    world
        .node
        .ip([
            "link",
            "add",
            UPLINK2,
            "mtu",
            "9000",
            "type",
            "veth",
            "peer",
            "name",
            REMOTE_IF2,
            "mtu",
            "9000",
            "netns",
            world.remote.name(),
        ])
        .context("adding the second uplink")?;
    world
        .node
        .ip(["addr", "add", &format!("{NODE_IP2}/24"), "dev", UPLINK2])?;
    world.node.ip(["link", "set", UPLINK2, "up"])?;
    world.remote.ip([
        "addr",
        "add",
        &format!("{REMOTE_IP2}/24"),
        "dev",
        REMOTE_IF2,
    ])?;
    world.remote.ip(["link", "set", REMOTE_IF2, "up"])?;
    Ok(())
}

/// Waits until the agent says every remote is sent to from AF_XDP.
fn wait_for_af_xdp(agent: &Agent<'_>, remotes: usize) -> Result<Metrics> {
    agent
        .wait_for_metrics(Duration::from_secs(10), |m| {
            on_path(m, "af_xdp") == count(remotes) && on_path(m, "socket") == 0
        })
        .context("waiting for every remote to be sent to from AF_XDP")
}

/// Pings once more and checks that the remote VTEP received the pod's frames byte for byte.
fn pings_arrive(world: &World, remote: &mut Capture, before: usize) -> Result<()> {
    let frames = pod_pings(world, None)?;
    remote.wait_for_frames(
        before + FRAMES,
        Duration::from_secs(10),
        Duration::from_millis(300),
    );
    let arrived = remote.frames_so_far();
    ensure!(
        arrived == before + FRAMES,
        "the remote VTEP has {arrived} frames, expected {}",
        before + FRAMES
    );
    let _ = frames;
    Ok(())
}

#[test]
fn route_moves_to_another_uplink() -> Result<()> {
    if skip_unless_root("route_moves_to_another_uplink") {
        return Ok(());
    }
    let world = World::new(VNI)?;
    add_second_uplink(&world)?;
    let (mut remote, agent) = vtep_and_agent(&world, &[])?;
    pings_arrive(&world, &mut remote, 0)?;

    let second_before = world.remote.link_stats(REMOTE_IF2)?.rx_packets;
    world
        .node
        .ip([
            "route",
            "add",
            &format!("{REMOTE_IP}/32"),
            "via",
            REMOTE_IP2,
            "dev",
            UPLINK2,
        ])
        .context("moving the route to the remote onto the second uplink")?;
    thread::sleep(FOLLOW);
    let frames = pod_pings(&world, None)?;
    remote.wait_for_frames(
        2 * FRAMES,
        Duration::from_secs(10),
        Duration::from_millis(300),
    );
    let second = world.remote.link_stats(REMOTE_IF2)?.rx_packets - second_before;
    let metrics = wait_for_af_xdp(&agent, 1)?;
    report(&format!(
        "route moved: {second} packets on the second uplink, {} frames at the VTEP",
        remote.frames_so_far()
    ));
    ensure!(
        second >= count(FRAMES),
        "only {second} packets crossed the second uplink after the route moved, expected at least {FRAMES}"
    );
    ensure!(
        metrics.total("mirror_dropped_packets_total", &[]) == 0,
        "copies were dropped while the route moved"
    );
    drop(agent);
    let remote_frames = remote.finish()?;
    let moved = remote_frames.get(FRAMES..).unwrap_or_default();
    if let Some(diff) = diff_frames(&frames, moved) {
        anyhow::bail!("after the route moved the remote did not get the pod's frames: {diff}");
    }
    Ok(())
}

#[test]
fn neighbour_deleted_is_resolved_again() -> Result<()> {
    if skip_unless_root("neighbour_deleted_is_resolved_again") {
        return Ok(());
    }
    let world = World::new(VNI)?;
    let (mut remote, agent) = vtep_and_agent(&world, &[])?;
    pings_arrive(&world, &mut remote, 0)?;

    world
        .node
        .ip(["neigh", "del", REMOTE_IP, "dev", NODE_UPLINK_IF])
        .context("deleting the remote's neighbour entry")?;
    // The agent makes a managed entry; the kernel resolves it.
    let metrics = wait_for_af_xdp(&agent, 1)?;
    let neighbours = world.node.ip(["neigh", "show", "dev", NODE_UPLINK_IF])?;
    report(&format!("after the delete: {}", neighbours.trim()));
    ensure!(
        neighbours
            .lines()
            .any(|l| l.starts_with(REMOTE_IP) && l.contains("managed") && l.contains("lladdr")),
        "no resolved managed neighbour entry for {REMOTE_IP}: {neighbours}"
    );
    pings_arrive(&world, &mut remote, FRAMES)?;
    ensure!(
        metrics.total("mirror_dropped_packets_total", &[]) == 0,
        "copies were dropped"
    );
    drop(agent);
    let left = world.node.ip(["neigh", "show", "dev", NODE_UPLINK_IF])?;
    ensure!(
        !left.contains("managed"),
        "the agent left its managed neighbour entry behind: {left}"
    );
    Ok(())
}

#[test]
fn uplink_down_and_up() -> Result<()> {
    if skip_unless_root("uplink_down_and_up") {
        return Ok(());
    }
    let world = World::new(VNI)?;
    copies_lost_while_down(&world, &world.node, NODE_UPLINK_IF, "uplink down and up")
}

#[test]
fn carrier_lost_and_back() -> Result<()> {
    if skip_unless_root("carrier_lost_and_back") {
        return Ok(());
    }
    let world = World::new(VNI)?;
    // The far end down: the node's uplink stays up, keeps its route, and has no carrier.
    copies_lost_while_down(&world, &world.remote, REMOTE_IF, "carrier lost and back")
}

/// While `iface` of `netns` is down, every copy counts as `send_error` (none as sent); once it
/// is up again AF_XDP serves the remote and every copy arrives; captured = sent + dropped.
fn copies_lost_while_down(world: &World, netns: &Netns, iface: &str, what: &str) -> Result<()> {
    let (mut remote, agent) = vtep_and_agent(world, &[])?;
    pings_arrive(world, &mut remote, 0)?;

    netns.ip(["link", "set", iface, "down"])?;
    // Once the agent has seen it (how fast is `route_moves_to_another_uplink`'s business).
    agent.wait_for_metrics(Duration::from_secs(10), |m| {
        on_path(m, "socket") == 1 && on_path(m, "af_xdp") == 0
    })?;
    pod_pings(world, None)?;
    lost_as_send_errors(&agent, &format!("{what}: while down"))?;

    netns.ip(["link", "set", iface, "up"])?;
    wait_for_af_xdp(&agent, 1)?;
    delivered_after_the_loss(world, &mut remote, &agent, what)
}

#[test]
fn device_drops_count_as_send_errors() -> Result<()> {
    if skip_unless_root("device_drops_count_as_send_errors") {
        return Ok(());
    }
    let world = World::new(VNI)?;
    let (mut remote, agent) = vtep_and_agent(&world, &[])?;
    pings_arrive(&world, &mut remote, 0)?;

    // The node's end keeps its 9000-byte MTU, and so its route; a veth drops a frame longer
    // than its peer's MTU (`is_skb_forwardable`), after AF_XDP handed it over.
    world.remote.ip(["link", "set", REMOTE_IF, "mtu", "1280"])?;
    pod_pings(&world, Some(BIG_PING))?;
    lost_as_send_errors(&agent, "with the far end's MTU at 1280")?;

    world.remote.ip(["link", "set", REMOTE_IF, "mtu", "9000"])?;
    delivered_after_the_loss(&world, &mut remote, &agent, "device drops")
}

/// After [`FRAMES`] copies that arrived, the next [`FRAMES`] count as `send_error`, none as
/// sent.
fn lost_as_send_errors(agent: &Agent<'_>, what: &str) -> Result<()> {
    let metrics = agent.wait_for_metrics(Duration::from_secs(10), |m| {
        m.total("mirror_dropped_packets_total", &[("reason", "send_error")]) >= count(FRAMES)
    })?;
    let errors = metrics.total("mirror_dropped_packets_total", &[("reason", "send_error")]);
    let sent = metrics.total("mirror_sent_packets_total", &[]);
    ensure!(
        errors == count(FRAMES) && sent == count(FRAMES),
        "{what} {errors} copies counted as send_error and {sent} as sent, expected {FRAMES} and \
         {FRAMES} (those before); remotes on af_xdp {}, socket {}; the agent said {:?}",
        on_path(&metrics, "af_xdp"),
        on_path(&metrics, "socket"),
        agent.stderr_lines()
    );
    Ok(())
}

/// The third [`FRAMES`] copies arrive, and the counters add up: captured = sent + dropped, the
/// [`FRAMES`] lost in between the only ones dropped.
fn delivered_after_the_loss(
    world: &World,
    remote: &mut Capture,
    agent: &Agent<'_>,
    what: &str,
) -> Result<()> {
    pings_arrive(world, remote, FRAMES)?;
    let metrics = agent.wait_for_metrics(Duration::from_secs(5), |m| {
        m.total("mirror_sent_packets_total", &[]) >= count(2 * FRAMES)
    })?;
    let captured = metrics.total("mirror_captured_packets_total", &[("iface", NODE_POD_IF)]);
    let sent = metrics.total("mirror_sent_packets_total", &[]);
    let dropped = metrics.total("mirror_dropped_packets_total", &[]);
    let paths = [on_path(&metrics, "af_xdp"), on_path(&metrics, "socket")];
    report(&format!(
        "{what}: captured {captured}, sent {sent}, dropped {dropped}; remotes on af_xdp/socket \
         {paths:?}"
    ));
    ensure!(
        captured == count(3 * FRAMES) && sent == count(2 * FRAMES) && dropped == count(FRAMES),
        "{what}: captured {captured}, sent {sent}, dropped {dropped}; expected {}, {}, {FRAMES}",
        3 * FRAMES,
        2 * FRAMES
    );
    Ok(())
}

#[test]
fn mtu_change_is_followed() -> Result<()> {
    if skip_unless_root("mtu_change_is_followed") {
        return Ok(());
    }
    let world = World::new(VNI)?;
    let (mut remote, agent) = vtep_and_agent(&world, &[])?;
    // 1514-byte frames: 1564-byte VxLAN packets, which fit 9000 but not 1500.
    pod_pings(&world, Some(1472))?;
    remote.wait_for_frames(FRAMES, Duration::from_secs(10), Duration::from_millis(300));

    world
        .node
        .ip(["link", "set", NODE_UPLINK_IF, "mtu", "1500"])?;
    thread::sleep(FOLLOW);
    pod_pings(&world, Some(1472))?;
    remote.wait_for_frames(
        2 * FRAMES,
        Duration::from_secs(10),
        Duration::from_millis(300),
    );
    let metrics = agent.wait_for_metrics(Duration::from_secs(5), |m| {
        m.total("mirror_sent_packets_total", &[]) >= count(2 * FRAMES)
    })?;
    let cut = metrics.total("mirror_truncated_packets_total", &[("reason", "mtu")]);
    report(&format!(
        "MTU 9000 -> 1500: {cut} copies cut, {} at the VTEP",
        remote.frames_so_far()
    ));
    ensure!(
        cut == count(FRAMES),
        "{cut} copies were cut to the new MTU, expected {FRAMES}"
    );
    drop(agent);
    let frames = remote.finish()?;
    ensure!(
        frames.len() == 2 * FRAMES,
        "{} frames arrived",
        frames.len()
    );
    let (whole, cut_frames) = frames.split_at(FRAMES);
    ensure!(
        whole.iter().all(|f| f.len() == 1514),
        "before the change every copy arrived whole"
    );
    // 1500 - 20 (IPv4) - 8 (UDP) - 8 (VxLAN) = 1464 bytes of inner frame fit.
    ensure!(
        cut_frames.iter().all(|f| f.len() == 1464),
        "after the change copies are cut to 1464 bytes: {:?}",
        cut_frames.iter().map(Vec::len).collect::<Vec<_>>()
    );
    Ok(())
}

#[test]
fn remotes_behind_two_uplinks() -> Result<()> {
    if skip_unless_root("remotes_behind_two_uplinks") {
        return Ok(());
    }
    let world = World::new(VNI)?;
    add_second_uplink(&world)?;
    let mut first = Capture::start_filtered(
        &world.remote,
        REMOTE_IF,
        Direction::In,
        None,
        Some("udp port 4789"),
    )?;
    let mut second = Capture::start_filtered(
        &world.remote,
        REMOTE_IF2,
        Direction::In,
        None,
        Some("udp port 4789"),
    )?;
    let args = AgentArgs::tunnel(
        &world,
        &[NODE_POD_IF],
        "vxlan",
        &[&format!("{REMOTE_IP}:4789"), &format!("{REMOTE_IP2}:4789")],
        &[],
    );
    let agent = Agent::start(&world.node, &args)?;
    wait_for_af_xdp(&agent, 2)?;
    let frames = pod_pings(&world, None)?;
    first.wait_for_frames(FRAMES, Duration::from_secs(10), Duration::from_millis(300));
    second.wait_for_frames(FRAMES, Duration::from_secs(10), Duration::from_millis(300));
    drop(agent);
    for (name, capture) in [("first", &mut first), ("second", &mut second)] {
        let packets = capture.finish()?;
        // The inner frame follows 14 (Ethernet) + 20 (IPv4) + 8 (UDP) + 8 (VxLAN) bytes.
        let inner: Vec<Vec<u8>> = packets
            .iter()
            .map(|p| p.get(50..).unwrap_or_default().to_vec())
            .collect();
        if let Some(diff) = diff_frames(&frames, &inner) {
            anyhow::bail!("the {name} uplink's remote did not get the pod's frames: {diff}");
        }
    }
    Ok(())
}

#[test]
fn socket_path_forced() -> Result<()> {
    if skip_unless_root("socket_path_forced") {
        return Ok(());
    }
    let world = World::new(VNI)?;
    let (mut remote, agent) = vtep_and_agent(&world, &["--send-path", "socket"])?;
    let metrics = agent.wait_for_metrics(Duration::from_secs(10), |m| on_path(m, "socket") == 1)?;
    ensure!(on_path(&metrics, "af_xdp") == 0, "AF_XDP was used");
    pings_arrive(&world, &mut remote, 0)
}

#[test]
fn node_traffic_untouched() -> Result<()> {
    if skip_unless_root("node_traffic_untouched") {
        return Ok(());
    }
    let world = World::new(VNI)?;
    let mut agent = Agent::start(&world.node, &AgentArgs::vxlan(&world, &[NODE_POD_IF]))?;
    wait_for_af_xdp(&agent, 1)?;
    let node_pings = |when: &str| -> Result<()> {
        world
            .node
            .run(
                "ping",
                ["-c", "20", "-i", "0.01", "-W", "1", "-q", REMOTE_IP],
            )
            .with_context(|| format!("the node pinging the remote {when}"))?;
        world
            .remote
            .run(
                "ping",
                [
                    "-c",
                    "20",
                    "-i",
                    "0.01",
                    "-W",
                    "1",
                    "-q",
                    mirror_tests::world::NODE_UPLINK_IP,
                ],
            )
            .with_context(|| format!("the remote pinging the node {when}"))?;
        Ok(())
    };
    // The pod's traffic is being copied out of the uplink at the same time.
    let pod = thread::scope(|scope| {
        let pod = scope.spawn(|| world.ping_node_from_pod(200, None));
        let node = node_pings("while the agent sends from AF_XDP");
        pod.join()
            .map_err(|_| anyhow::anyhow!("pod pings panicked"))??;
        node
    });
    pod?;
    agent.stop_with(Signal::Kill)?;
    node_pings("after the agent was killed")?;
    let link = world.node.ip(["link", "show", NODE_UPLINK_IF])?;
    ensure!(
        !link.contains("xdp"),
        "an XDP program is on the uplink: {link}"
    );
    Ok(())
}
