//! packet-agent's command lines run by the mirror (`mirror pktminerg ...`, and the binary called
//! `pktminerg` through a symlink), judged at the remote by parties the mirror did not write:
//! tcpdump and tshark on the remote's `eth0`, this crate's GRE parser, a kernel VxLAN device, and
//! a UDP socket standing in for the NetFlow collector.
//!
//! - `pktminerg -i vethpod -r REMOTE -k 3`: packet-agent's classic mode, GRE with key 3 and no
//!   sequence number, inner frames byte-identical with what the pod put on the wire.
//! - The two command lines of packet-agent's Flannel article, with this world's addresses and
//!   devices: live (`-i veth --proto-config VXLAN --monitor-config NETFLOW`), where the remote's
//!   kernel VxLAN device receives the pod's pings and the collector NetFlow v5 records of them;
//!   and offline (`-f pod1.pcap --proto-config VXLAN`), where the same device receives the
//!   capture's frames.
//!
//! Each test builds its own world and removes it on drop.

use std::{
    net::{Ipv4Addr, SocketAddr, UdpSocket},
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, Result, bail, ensure};
use mirror_tests::{
    Background, Capture, Direction, Netns, Signal, World, WorldConfig,
    agent::{READY_PREFIX, READY_TIMEOUT},
    diff_frames, existing_mirror_bin,
    netflow_collector::{FlowRecord, read_v5},
    read_pcap,
    scratch::ScratchDir,
    skip_unless_root,
    tshark::Fields,
    tunnel::{GRE_PROTO_TEB, GrePacket},
    world::{
        NODE_POD_IF, NODE_POD_IP, NODE_UPLINK_IF, NODE_UPLINK_IP, POD_IF, POD_IP, REMOTE_IF,
        REMOTE_IP, REMOTE_VTEP_IF,
    },
};

/// Echo requests per run: each crosses `vethpod` twice (request in, reply out).
const PINGS: usize = 20;
const FRAMES: usize = 2 * PINGS;
/// How long the tunnel packets of a run may take to arrive.
const ARRIVAL: Duration = Duration::from_secs(10);
/// Waited after the expected count, so that extra packets would be caught too.
const SETTLE: Duration = Duration::from_millis(500);
/// The Flannel article's VNI (its VxLAN plugin sends to UDP port 4789).
const FLANNEL_VNI: u32 = 3310;
/// The article's collector (140.2.6.8 there): a second address of the remote here.
const COLLECTOR_IP: &str = "198.18.0.3";
const COLLECTOR_PORT: u16 = 2055;
/// How long a replay of a few dozen packets may take, start-up included.
const REPLAY_TIMEOUT: Duration = Duration::from_mins(1);

/// `pktminerg -i vethpod -r 198.18.0.2 -k 3`: GRE, key 3, no sequence number, the pod's frames.
#[test]
fn classic_gre_with_key() -> Result<()> {
    if skip_unless_root("classic_gre_with_key") {
        return Ok(());
    }
    let world = World::new(42)?;
    let mut at_pod = Capture::start(&world.pod, POD_IF, Direction::InOut, None)?;
    let mut at_remote = Capture::start_filtered(
        &world.remote,
        REMOTE_IF,
        Direction::In,
        None,
        Some("ip proto 47"),
    )?;
    let mut agent = Pktminerg::start(
        &world.node,
        &existing_mirror_bin()?,
        &["pktminerg", "-i", NODE_POD_IF, "-r", REMOTE_IP, "-k", "3"],
    )?;
    world.ping_node_from_pod(PINGS, None)?;
    at_remote.wait_for_frames(FRAMES, ARRIVAL, SETTLE);
    agent.stop(Signal::Int)?;

    let pod = at_pod.finish()?;
    ensure!(
        pod.len() == FRAMES,
        "the pod saw {} frames, not {FRAMES}: the world is not quiet",
        pod.len()
    );
    let records = at_remote.finish_records()?;
    ensure!(
        records.len() == FRAMES,
        "{} GRE packets reached the remote for {FRAMES} frames",
        records.len()
    );
    let mut inner = Vec::new();
    for (i, record) in records.iter().enumerate() {
        let packet = GrePacket::parse(&record.data)
            .with_context(|| format!("parsing GRE packet {}", i + 1))?;
        let (outer, gre) = (&packet.outer, &packet.gre);
        ensure!(
            (outer.src.to_string(), outer.dst.to_string())
                == (NODE_UPLINK_IP.to_owned(), REMOTE_IP.to_owned()),
            "GRE packet {}: outer {} -> {}, expected {NODE_UPLINK_IP} -> {REMOTE_IP}",
            i + 1,
            outer.src,
            outer.dst
        );
        ensure!(
            gre.protocol == GRE_PROTO_TEB
                && gre.key == Some(3)
                && gre.sequence.is_none()
                && gre.checksum.is_none()
                && gre.other_bits() == 0,
            "GRE packet {}: {gre:?}, expected packet-agent's header: protocol 0x6558, key 3 (K \
             set), no checksum, no sequence number",
            i + 1
        );
        inner.push(packet.inner);
    }
    if let Some(diff) = diff_frames(&pod, &inner) {
        bail!("the GRE copies are not the pod's frames: {diff}");
    }

    // Wireshark's reading of the same packets.
    let fields = Fields::read(
        at_remote.path(),
        None,
        &[
            "gre.flags.key",
            "gre.flags.sequence_number",
            "gre.key",
            "gre.proto",
            "icmp.type",
        ],
    )?;
    ensure!(
        fields.rows.len() == FRAMES,
        "tshark read {} packets, not {FRAMES}",
        fields.rows.len()
    );
    for row in 0..FRAMES {
        fields.expect_flag(row, "gre.flags.key", true)?;
        fields.expect_flag(row, "gre.flags.sequence_number", false)?;
        fields.expect_number(row, "gre.key", Some(3))?;
        fields.expect_number(row, "gre.proto", Some(u64::from(GRE_PROTO_TEB)))?;
        // Echo request, reply, request...: the inner frame where tshark expects it.
        fields.expect_number(row, "icmp.type", Some(if row % 2 == 0 { 8 } else { 0 }))?;
    }
    Ok(())
}

/// The Flannel article's live command line, run as `pktminerg` (a symlink to the binary):
/// `pktminerg -i veth --proto-config "${JSON_STR}" --monitor-config "${MON_STR}"`.
#[test]
fn flannel_article_live() -> Result<()> {
    if skip_unless_root("flannel_article_live") {
        return Ok(());
    }
    let world = flannel_world()?;
    world.add_remote_ip(COLLECTOR_IP)?;
    let collector = world
        .remote
        .udp_socket(SocketAddr::new(COLLECTOR_IP.parse()?, COLLECTOR_PORT))?;
    let scratch = ScratchDir::new()?;
    let pktminerg = pktminerg_symlink(&scratch)?;
    let stats_before = world.remote.link_stats(REMOTE_VTEP_IF)?;

    let mut at_pod = Capture::start(&world.pod, POD_IF, Direction::InOut, None)?;
    let mut at_vtep = Capture::start(&world.remote, REMOTE_VTEP_IF, Direction::In, None)?;
    let (json, mon) = (flannel_json_str(), flannel_mon_str());
    let mut agent = Pktminerg::start(
        &world.node,
        &pktminerg,
        &[
            "-i",
            NODE_POD_IF,
            "--proto-config",
            &json,
            "--monitor-config",
            &mon,
        ],
    )?;
    world.ping_node_from_pod(PINGS, None)?;
    at_vtep.wait_for_frames(FRAMES, ARRIVAL, SETTLE);
    // On SIGTERM the agent exports every flow still in its cache.
    agent.stop(Signal::Term)?;

    let pod = at_pod.finish()?;
    ensure!(
        pod.len() == FRAMES,
        "the pod saw {} frames, not {FRAMES}: the world is not quiet",
        pod.len()
    );
    let at_vtep = at_vtep.finish()?;
    if let Some(diff) = diff_frames(&pod, &at_vtep) {
        bail!(
            "the remote's kernel VxLAN device (VNI {FLANNEL_VNI}, port 4789) did not get the pod's frames: {diff}"
        );
    }
    let stats = world.remote.link_stats(REMOTE_VTEP_IF)?;
    ensure!(
        stats.rx_packets - stats_before.rx_packets == FRAMES as u64,
        "{REMOTE_VTEP_IF} counted {} frames received, expected {FRAMES}",
        stats.rx_packets - stats_before.rx_packets
    );

    // NetFlow v5 at the collector: the pings, both ways, all of them.
    let records = netflow_v5_records(&collector, Duration::from_secs(5))?;
    for (src, dst) in [(POD_IP, NODE_POD_IP), (NODE_POD_IP, POD_IP)] {
        let (src, dst): (Ipv4Addr, Ipv4Addr) = (src.parse()?, dst.parse()?);
        let packets: u32 = records
            .iter()
            .filter(|r| r.src == src && r.dst == dst && r.protocol == 1)
            .map(|r| r.packets)
            .sum();
        ensure!(
            packets == PINGS as u32,
            "NetFlow records of ICMP {src} -> {dst} count {packets} packets, expected {PINGS}: {records:?}"
        );
    }
    Ok(())
}

/// The Flannel article's offline command line, run as `mirror pktminerg`:
/// `pktminerg -f pod1.pcap --proto-config "${JSON_STR}"`, with a capture of the pod's pings.
#[test]
fn flannel_article_offline() -> Result<()> {
    if skip_unless_root("flannel_article_offline") {
        return Ok(());
    }
    let world = flannel_world()?;
    let mut pod1 = Capture::start(&world.pod, POD_IF, Direction::InOut, None)?;
    world.ping_node_from_pod(PINGS, None)?;
    pod1.wait_for_frames(FRAMES, ARRIVAL, SETTLE);
    let pod = pod1.finish()?;
    ensure!(
        pod.len() == FRAMES,
        "the pod saw {} frames, not {FRAMES}: the world is not quiet",
        pod.len()
    );
    ensure!(
        read_pcap(pod1.path())? == pod,
        "pod1.pcap does not hold the pod's frames"
    );

    let mut at_vtep = Capture::start(&world.remote, REMOTE_VTEP_IF, Direction::In, None)?;
    let json = flannel_json_str();
    let pcap = pod1.path().to_string_lossy().into_owned();
    let mut replay = world.node.spawn(
        "pktminerg",
        &existing_mirror_bin()?.to_string_lossy(),
        ["pktminerg", "-f", &pcap, "--proto-config", &json],
    )?;
    let status = replay.wait(REPLAY_TIMEOUT)?;
    ensure!(
        status.success(),
        "`mirror pktminerg -f pod1.pcap ...` exited with {status}: {:?}",
        replay.stderr_lines()
    );
    at_vtep.wait_for_frames(FRAMES, ARRIVAL, SETTLE);
    let at_vtep = at_vtep.finish()?;
    if let Some(diff) = diff_frames(&pod, &at_vtep) {
        bail!("the remote's kernel VxLAN device did not get pod1.pcap's frames: {diff}");
    }
    Ok(())
}

/// The standard world with the remote VTEP on the article's VNI and the plugin's port.
fn flannel_world() -> Result<World> {
    World::build(WorldConfig {
        vni: FLANNEL_VNI,
        vxlan_port: 4789,
        ..WorldConfig::default()
    })
}

/// The article's `JSON_STR`, verbatim but for the remote host (10.1.1.37 there) and the node's
/// device towards it (eth0 there).
fn flannel_json_str() -> String {
    r#"{
    "ext_file_path": "libproto_vxlan.so",
    "ext_params": {
        "remoteips": [
            "REMOTE"   
        ],
        "bind_device": "UPLINK",
        "pmtudisc_option": "dont",
        "use_default_header": false,
        "vni": 3310
    }
}"#
    .replace("REMOTE", REMOTE_IP)
    .replace("UPLINK", NODE_UPLINK_IF)
}

/// The article's `MON_STR`, verbatim but for the collector's address: the second entry has no
/// `ip`, and is the first collector again.
fn flannel_mon_str() -> String {
    r#"{
    "ext_file_path": "libmonitor_netflow.so",
    "ext_params": {
        "collectors_ipport": [
            {
                "ip": "COLLECTOR",   
                "port": 2055
            },
            {
                "port": 2055
            }
        ],
        "netflow_version": 5
    }
}"#
    .replace("COLLECTOR", COLLECTOR_IP)
}

/// `<scratch>/pktminerg`, a symlink to the mirror binary.
fn pktminerg_symlink(scratch: &ScratchDir) -> Result<PathBuf> {
    let link = scratch.join("pktminerg");
    symlink(existing_mirror_bin()?, &link)
        .with_context(|| format!("linking {} to the mirror binary", link.display()))?;
    Ok(link)
}

/// A pktminerg command line running in a netns; SIGINT on drop.
struct Pktminerg {
    process: Background,
}

impl Pktminerg {
    /// Starts `BIN ARGS` in `ns` and waits for the agent's ready line.
    fn start(ns: &Netns, bin: &Path, args: &[&str]) -> Result<Self> {
        let mut process = ns.spawn("pktminerg", &bin.to_string_lossy(), args)?;
        process
            .wait_for_stderr("its ready line", READY_TIMEOUT, |l| {
                l.starts_with(READY_PREFIX)
            })
            .with_context(|| format!("starting `{} {}`", bin.display(), args.join(" ")))?;
        Ok(Self { process })
    }

    /// Stops it with `signal`; it must exit 0.
    fn stop(&mut self, signal: Signal) -> Result<()> {
        let status = self.process.stop_with(signal)?;
        ensure!(
            status.success(),
            "pktminerg exited with {status} after {signal:?}"
        );
        Ok(())
    }
}

/// The records of every NetFlow v5 datagram that reached `socket`; at least one.
fn netflow_v5_records(socket: &UdpSocket, quiet: Duration) -> Result<Vec<FlowRecord>> {
    let records: Vec<FlowRecord> = read_v5(socket, quiet)?.into_iter().flatten().collect();
    ensure!(
        !records.is_empty(),
        "no NetFlow record reached the collector"
    );
    Ok(records)
}
