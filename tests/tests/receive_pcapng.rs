//! `mirror receive --write FILE.pcapng`: what the tunnel header knows kept in the output, judged
//! by tshark and capinfos, with `mirror run` as the sender.
//!
//! - ERSPAN III, two sessions one after the other: one interface per session, named after it;
//!   each echo request (mirrored as it entered the node's pod interface) marked inbound and each
//!   reply outbound, from the D bit; a comment with session, VLAN, COS and direction; the inner
//!   frames exactly the pod's. A second receiver with `--session` keeps only its session and
//!   counts the others as dropped.
//! - VxLAN, two VNIs one after the other: one interface per VNI, no direction (VxLAN carries
//!   none), the inner frames exactly the pod's.
//! - capinfos reads every file as valid pcapng with the expected interfaces.
//!
//! Each test builds its own world and removes it on drop.

use std::{path::Path, time::Duration};

use anyhow::{Context as _, Result, bail, ensure};
use mirror_tests::{
    Agent, AgentArgs, Capture, Direction, Signal, World, diff_frames,
    proc::{command, run_stdout},
    replay::Receiver,
    report, skip_unless_root,
    tshark::Fields,
    world::{NODE_POD_IF, POD_IF, REMOTE_IP, REMOTE_VTEP_IF},
};

/// Echo requests per sender: each crosses the node's pod interface twice.
const PINGS: usize = 10;
const FRAMES: usize = 2 * PINGS;
const VNI: u32 = 42;
/// How long the receivers may take to write what was sent.
const ARRIVAL: Duration = Duration::from_secs(10);
/// `epb_flags` directions.
const INBOUND: u64 = 1;
const OUTBOUND: u64 = 2;

const FIELDS: [&str; 5] = [
    "frame.interface_name",
    "frame.packet_flags_direction",
    "frame.comment",
    "icmp.type",
    "frame.len",
];

#[test]
fn erspan3_sessions_and_directions_in_pcapng() -> Result<()> {
    if skip_unless_root("erspan3_sessions_and_directions_in_pcapng") {
        return Ok(());
    }
    let world = World::new(VNI)?;
    let mut all = Receiver::start_writing(
        &world.remote,
        "erspan3",
        REMOTE_IP,
        Some(2 * FRAMES),
        &[],
        "all.pcapng",
    )?;
    let mut one = Receiver::start_writing(
        &world.remote,
        "erspan3",
        REMOTE_IP,
        Some(FRAMES),
        &["--session", "301"],
        "session-301.pcapng",
    )?;
    let mut sent = Vec::new();
    for session in ["300", "301"] {
        let options = ["--erspan-session", session, "--erspan-hwid", "5"];
        sent.extend(mirror_pings(&world, "erspan3", &options, None)?);
    }
    all.stop(ARRIVAL)?;
    one.stop(ARRIVAL)?;

    let rows = Fields::read(all.path(), None, &FIELDS)?;
    ensure!(
        rows.rows.len() == 2 * FRAMES,
        "tshark reads {} packets of {}",
        rows.rows.len(),
        2 * FRAMES
    );
    for (i, row) in rows.rows.iter().enumerate() {
        let session = if i < FRAMES { 300 } else { 301 };
        let request = rows.text(i, "icmp.type") == "8";
        let (direction, word) = if request {
            (INBOUND, "ingress")
        } else {
            (OUTBOUND, "egress")
        };
        let want = [
            format!("erspan3-session-{session}"),
            format!("session {session} vlan 0 cos 0 {word}"),
        ];
        ensure!(
            [&row[0], &row[2]] == [&want[0], &want[1]]
                && rows.number(i, "frame.packet_flags_direction")? == Some(direction),
            "packet {} ({}): tshark shows {row:?}, expected {want:?} and direction {direction}",
            i + 1,
            if request { "request" } else { "reply" },
        );
    }
    check_frames(all.path(), &sent)?;
    check_capinfos(all.path(), 2 * FRAMES, 2)?;

    // --session 301: that session's frames only, on its one interface.
    let kept = Fields::read(one.path(), None, &FIELDS)?;
    ensure!(
        kept.rows.len() == FRAMES && kept.rows.iter().all(|r| r[0] == "erspan3-session-301"),
        "--session 301 wrote {:?}",
        kept.rows.iter().map(|r| r[0].clone()).collect::<Vec<_>>()
    );
    check_frames(one.path(), &sent[FRAMES..])?;
    check_capinfos(one.path(), FRAMES, 1)?;
    let summary = one.stderr_lines().join("\n");
    ensure!(
        summary.contains(&format!("wrong ERSPAN session {FRAMES}")),
        "the --session 301 receiver should count the {FRAMES} packets of session 300: {summary}"
    );
    report(&format!(
        "erspan3_sessions_and_directions_in_pcapng: {} frames on 2 interfaces, requests \
         inbound, replies outbound, comments with the session; --session 301 kept {}",
        rows.rows.len(),
        kept.rows.len()
    ));
    Ok(())
}

#[test]
fn vxlan_vnis_in_pcapng() -> Result<()> {
    if skip_unless_root("vxlan_vnis_in_pcapng") {
        return Ok(());
    }
    let world = World::new(VNI)?;
    // `mirror receive` needs the VxLAN port that the kernel VTEP holds.
    world.remote.ip(["link", "del", REMOTE_VTEP_IF])?;
    let mut receiver = Receiver::start_writing(
        &world.remote,
        "vxlan",
        REMOTE_IP,
        Some(2 * FRAMES),
        &[],
        "vnis.pcapng",
    )?;
    // The 8 MiB it asks for, past net.core.rmem_max (as root it may: SO_RCVBUFFORCE); the
    // kernel reserves twice what is asked.
    let buffer = receiver.receive_buffer(&world.remote)?;
    ensure!(
        buffer >= 2 * (8 << 20),
        "mirror receive's socket buffer is {buffer} bytes, less than the 8 MiB it asks for"
    );
    let mut sent = Vec::new();
    for vni in [42, 43] {
        sent.extend(mirror_pings(&world, "vxlan", &[], Some(vni))?);
    }
    receiver.stop(ARRIVAL)?;
    let rows = Fields::read(receiver.path(), None, &FIELDS)?;
    ensure!(
        rows.rows.len() == 2 * FRAMES,
        "tshark reads {} packets of {}",
        rows.rows.len(),
        2 * FRAMES
    );
    for (i, row) in rows.rows.iter().enumerate() {
        let vni = if i < FRAMES { 42 } else { 43 };
        let want = [format!("vxlan-vni-{vni}"), String::new(), String::new()];
        ensure!(
            row[..3] == want,
            "packet {}: tshark shows {:?}, expected {want:?}",
            i + 1,
            &row[..3]
        );
    }
    check_frames(receiver.path(), &sent)?;
    check_capinfos(receiver.path(), 2 * FRAMES, 2)?;
    report(&format!(
        "vxlan_vnis_in_pcapng: {} frames on one interface per VNI",
        rows.rows.len()
    ));
    Ok(())
}

/// Runs `mirror run` on the node's pod interface with `--tunnel TUNNEL OPTIONS` (and `--vni`
/// for VxLAN) while the pod pings the node; returns the frames the pod saw.
fn mirror_pings(
    world: &World,
    tunnel: &str,
    options: &[&str],
    vni: Option<u32>,
) -> Result<Vec<Vec<u8>>> {
    let mut at_pod = Capture::start(&world.pod, POD_IF, Direction::InOut, None)?;
    let mut args = AgentArgs::tunnel(world, &[NODE_POD_IF], tunnel, &[REMOTE_IP], options);
    if let Some(vni) = vni {
        args.vni = vni;
    }
    let mut agent = Agent::start(&world.node, &args)?;
    world.ping_node_from_pod(PINGS, None)?;
    agent.wait_for_metric(
        "mirror_sent_packets_total",
        &[("tunnel", tunnel)],
        FRAMES as u64,
        Duration::from_secs(5),
    )?;
    let status = agent.stop_with(Signal::Int)?;
    ensure!(
        status.success(),
        "the agent exited with {status} after SIGINT"
    );
    let pod = at_pod.finish()?;
    ensure!(
        pod.len() == FRAMES,
        "the pod saw {} frames, not {FRAMES}: the world is not quiet",
        pod.len()
    );
    Ok(pod)
}

/// The frames of the pcapng file are `sent`, byte for byte and in order (read through the
/// classic pcap that Wireshark's editcap makes of it).
fn check_frames(path: &Path, sent: &[Vec<u8>]) -> Result<()> {
    let pcap = path.with_extension("pcap");
    run_stdout(&mut command(
        "editcap",
        [
            "-F",
            "pcap",
            &path.to_string_lossy(),
            &pcap.to_string_lossy(),
        ],
    ))?;
    let frames = mirror_tests::read_pcap(&pcap)?;
    if let Some(diff) = diff_frames(sent, &frames) {
        bail!("{}: the frames are not the pod's: {diff}", path.display());
    }
    Ok(())
}

/// capinfos reads the file as pcapng with `packets` packets on `interfaces` interfaces.
fn check_capinfos(path: &Path, packets: usize, interfaces: usize) -> Result<()> {
    let info = run_stdout(&mut command(
        "capinfos",
        ["-t", "-c", "-I", &path.to_string_lossy()],
    ))
    .with_context(|| format!("capinfos {}", path.display()))?;
    let has = |prefix: &str, value: &str| {
        info.lines()
            .any(|l| l.starts_with(prefix) && l.trim_end().ends_with(value))
    };
    ensure!(
        has("File type:", "pcapng")
            && has("Number of packets:", &format!(" {packets}"))
            && has("Number of interfaces in file:", &format!(" {interfaces}")),
        "capinfos does not read {} as pcapng of {packets} packets on {interfaces} interfaces: {info}",
        path.display()
    );
    Ok(())
}
