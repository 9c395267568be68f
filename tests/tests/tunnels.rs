//! Every tunnel the agent writes, judged by parties it did not write: tshark's dissectors, the
//! outer packets parsed here from the pcap (`mirror_tests::tunnel`), and kernel VTEPs (VxLAN
//! always; `gretap`/`erspan` where the kernel has them).
//!
//! - GRE and ERSPAN I/II/III over IPv4 (and GRE, ERSPAN III over IPv6): every header field, the
//!   sequence numbers 0..2N-1, the ERSPAN III direction bit and timestamp, and the inner frames
//!   byte-identical and in order with what the pod put on the wire.
//! - The same through kernel `gretap` and `erspan` devices decapsulating in the remote (skipped,
//!   saying so, on kernels built without CONFIG_NET_IPGRE).
//! - VxLAN over an IPv6 underlay into a kernel VTEP that insists on valid UDP checksums.
//! - Flannel-style delivery: `--inner-dst-mac` makes a `flannel.1` device accept the frames.
//! - `--balance flow` over three remotes: each flow (both directions) to exactly one.
//! - Copies too big for the uplink MTU, truncated (T bit) or dropped, and `--snaplen`.
//!
//! Each test builds its own world and removes it on drop.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::Duration,
};

use anyhow::{Context as _, Result, bail, ensure};
use mirror_tests::{
    Agent, AgentArgs, Capture, Direction, Metrics, Netns, Record, World, WorldConfig, diff_frames,
    ping_sizes::{Caught, PingSizes, cut_to},
    report, skip_unless_root,
    tshark::Fields,
    tunnel::{
        Erspan, ErspanII, ErspanIII, GRE_PROTO_ERSPAN, GRE_PROTO_ERSPAN3, GRE_PROTO_TEB, GrePacket,
        VxlanPacket, format_mac, parse_mac,
    },
    world::{
        NODE_POD_IF, NODE_POD_IP, NODE_UPLINK_IF, NODE_UPLINK_IP, NODE_UPLINK_IP6, POD_IF, POD_IP,
        REMOTE_IF, REMOTE_IP, REMOTE_IP6, REMOTE_VTEP_IF,
    },
};

/// Echo requests per run: each crosses `vethpod` twice (request in, reply out).
const PINGS: usize = 20;
const FRAMES: usize = 2 * PINGS;
/// How long the tunnel packets of a run may take to arrive.
const ARRIVAL: Duration = Duration::from_secs(10);
/// Waited after the expected count, so that extra packets would be caught too.
const SETTLE: Duration = Duration::from_millis(500);
/// More tunnel destinations on the remote's `eth0` ([`World::add_remote_ip`]).
const SECOND_REMOTE_IP: &str = "198.18.0.3";
const THIRD_REMOTE_IP: &str = "198.18.0.4";
/// ERSPAN III timestamps count 100 µs units.
const TICKS_PER_SECOND: i64 = 10_000;

// ---------------------------------------------------------------------------------------------
// 1-3. GRE and ERSPAN I/II/III, judged by tshark, by the parser here and by kernel devices.
// ---------------------------------------------------------------------------------------------

#[test]
fn gre_ipv4_key_and_sequence() -> Result<()> {
    if skip_unless_root("gre_ipv4_key_and_sequence") {
        return Ok(());
    }
    gre_family(&GRE, Underlay::V4, None)
}

#[test]
fn erspan1_ipv4() -> Result<()> {
    if skip_unless_root("erspan1_ipv4") {
        return Ok(());
    }
    gre_family(&ERSPAN1, Underlay::V4, None)
}

#[test]
fn erspan2_ipv4_session_and_index() -> Result<()> {
    if skip_unless_root("erspan2_ipv4_session_and_index") {
        return Ok(());
    }
    gre_family(&ERSPAN2, Underlay::V4, None)
}

#[test]
fn erspan3_ipv4_hwid_sgt_direction_timestamp() -> Result<()> {
    if skip_unless_root("erspan3_ipv4_hwid_sgt_direction_timestamp") {
        return Ok(());
    }
    gre_family(&ERSPAN3, Underlay::V4, None)
}

#[test]
fn gre_ipv6_underlay() -> Result<()> {
    if skip_unless_root("gre_ipv6_underlay") {
        return Ok(());
    }
    gre_family(&GRE, Underlay::V6, None)
}

#[test]
fn erspan3_ipv6_underlay() -> Result<()> {
    if skip_unless_root("erspan3_ipv6_underlay") {
        return Ok(());
    }
    gre_family(&ERSPAN3, Underlay::V6, None)
}

#[test]
fn gretap_device_decapsulates_gre() -> Result<()> {
    if skip_unless_root("gretap_device_decapsulates_gre") {
        return Ok(());
    }
    let device = KernelDevice {
        test: "gretap_device_decapsulates_gre",
        name: "gretap3",
        kind: "gretap",
        // iseq: the kernel also checks that the sequence numbers never go back.
        args: &["key", "3", "iseq"],
    };
    gre_family(&GRE, Underlay::V4, Some(&device))
}

#[test]
fn erspan_v1_device_decapsulates_erspan2() -> Result<()> {
    if skip_unless_root("erspan_v1_device_decapsulates_erspan2") {
        return Ok(());
    }
    // The kernel finds an ERSPAN device by its key: the session ID.
    let device = KernelDevice {
        test: "erspan_v1_device_decapsulates_erspan2",
        name: "erspan1",
        kind: "erspan",
        args: &["seq", "key", "77", "erspan_ver", "1", "erspan", "12345"],
    };
    gre_family(&ERSPAN2, Underlay::V4, Some(&device))
}

#[test]
fn erspan_v2_device_decapsulates_erspan3() -> Result<()> {
    if skip_unless_root("erspan_v2_device_decapsulates_erspan3") {
        return Ok(());
    }
    let device = KernelDevice {
        test: "erspan_v2_device_decapsulates_erspan3",
        name: "erspan2",
        kind: "erspan",
        args: &[
            "seq",
            "key",
            "300",
            "erspan_ver",
            "2",
            "erspan_dir",
            "ingress",
            "erspan_hwid",
            "5",
        ],
    };
    gre_family(&ERSPAN3, Underlay::V4, Some(&device))
}

/// With two remotes (`--balance replicate`, the default) each gets every copy, numbered from 0
/// on its own.
#[test]
fn erspan2_sequence_numbers_per_remote() -> Result<()> {
    if skip_unless_root("erspan2_sequence_numbers_per_remote") {
        return Ok(());
    }
    let world = World::new(42)?;
    world.add_remote_ip(SECOND_REMOTE_IP)?;
    let mut at_pod = Capture::start(&world.pod, POD_IF, Direction::InOut, None)?;
    let mut at_remote = Capture::start_filtered(
        &world.remote,
        REMOTE_IF,
        Direction::In,
        None,
        Some("ip proto 47"),
    )?;
    let remotes = [REMOTE_IP, SECOND_REMOTE_IP];
    let args = AgentArgs::tunnel(&world, &[NODE_POD_IF], "erspan2", &remotes, ERSPAN2.options);
    let mut agent = Agent::start(&world.node, &args)?;
    world.ping_node_from_pod(PINGS, None)?;
    at_remote.wait_for_frames(2 * FRAMES, ARRIVAL, SETTLE);
    let metrics = agent.wait_for_metric(
        "mirror_sent_packets_total",
        &[],
        count(2 * FRAMES),
        Duration::from_secs(5),
    )?;
    stop_agent(&mut agent)?;
    let pod = at_pod.finish()?;
    ensure!(
        pod.len() == FRAMES,
        "the pod saw {} frames, not {FRAMES}",
        pod.len()
    );
    let packets = parse_gre_records(&at_remote.finish_records()?)?;
    for remote in remotes {
        let to_remote: Vec<&GrePacket> = packets
            .iter()
            .filter(|p| p.outer.dst.to_string() == remote)
            .collect();
        let sequences: Vec<Option<u32>> = to_remote.iter().map(|p| p.gre.sequence).collect();
        let want: Vec<Option<u32>> = (0..FRAMES).map(|i| Some(i as u32)).collect();
        ensure!(
            sequences == want,
            "the ERSPAN II copies to {remote} carry the sequence numbers {sequences:?}, expected 0..{FRAMES} \
             (each remote numbered on its own)"
        );
        let inner: Vec<Vec<u8>> = to_remote.iter().map(|p| p.inner.clone()).collect();
        if let Some(diff) = diff_frames(&pod, &inner) {
            bail!("the copies to {remote} are not the pod's frames: {diff}");
        }
        let sent = metrics.total(
            "mirror_sent_packets_total",
            &[("tunnel", "erspan2"), ("remote", remote)],
        );
        ensure!(
            sent == count(FRAMES),
            "mirror_sent_packets_total{{tunnel=\"erspan2\",remote=\"{remote}\"}} is {sent}, expected {FRAMES}"
        );
    }
    ensure!(
        packets.len() == 2 * FRAMES,
        "{} tunnel packets reached the two remotes, expected {}",
        packets.len(),
        2 * FRAMES
    );
    Ok(())
}

/// The ERSPAN header a case expects.
#[derive(Clone, Copy, Debug)]
enum ExpectErspan {
    None,
    TypeI,
    TypeII { session: u16, index: u32 },
    TypeIII { session: u16, hwid: u8, sgt: u16 },
}

/// A GRE-family tunnel: the agent's options and the headers they must produce.
struct GreCase {
    tunnel: &'static str,
    options: &'static [&'static str],
    protocol: u16,
    key: Option<u32>,
    sequenced: bool,
    erspan: ExpectErspan,
}

const GRE: GreCase = GreCase {
    tunnel: "gre",
    options: &["--gre-key", "3", "--gre-seq"],
    protocol: GRE_PROTO_TEB,
    key: Some(3),
    sequenced: true,
    erspan: ExpectErspan::None,
};

const ERSPAN1: GreCase = GreCase {
    tunnel: "erspan1",
    options: &[],
    protocol: GRE_PROTO_ERSPAN,
    key: None,
    sequenced: false,
    erspan: ExpectErspan::TypeI,
};

const ERSPAN2: GreCase = GreCase {
    tunnel: "erspan2",
    options: &["--erspan-session", "77", "--erspan-index", "12345"],
    protocol: GRE_PROTO_ERSPAN,
    key: None,
    sequenced: true,
    erspan: ExpectErspan::TypeII {
        session: 77,
        index: 12345,
    },
};

const ERSPAN3: GreCase = GreCase {
    tunnel: "erspan3",
    options: &[
        "--erspan-session",
        "300",
        "--erspan-hwid",
        "5",
        "--erspan-sgt",
        "1234",
    ],
    protocol: GRE_PROTO_ERSPAN3,
    key: None,
    sequenced: true,
    erspan: ExpectErspan::TypeIII {
        session: 300,
        hwid: 5,
        sgt: 1234,
    },
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Underlay {
    V4,
    V6,
}

impl Underlay {
    fn node(self) -> IpAddr {
        match self {
            Self::V4 => NODE_UPLINK_IP.parse().expect("constant"),
            Self::V6 => NODE_UPLINK_IP6.parse().expect("constant"),
        }
    }

    fn remote(self) -> IpAddr {
        match self {
            Self::V4 => REMOTE_IP.parse().expect("constant"),
            Self::V6 => REMOTE_IP6.parse().expect("constant"),
        }
    }

    /// tcpdump filter for GRE.
    fn gre_filter(self) -> &'static str {
        match self {
            Self::V4 => "ip proto 47",
            Self::V6 => "ip6 proto 47",
        }
    }

    fn world(self) -> Result<World> {
        World::build(WorldConfig {
            ipv6_uplink: self == Self::V6,
            ..WorldConfig::default()
        })
    }
}

/// A kernel tunnel device in the remote that decapsulates the agent's packets.
struct KernelDevice {
    test: &'static str,
    name: &'static str,
    kind: &'static str,
    /// After `local REMOTE remote NODE`.
    args: &'static [&'static str],
}

impl KernelDevice {
    /// Creates the device; `Ok(false)` (after reporting the skip) when the kernel has no such
    /// device type. Any other failure is an error.
    fn create(&self, world: &World) -> Result<bool> {
        let mut args = vec![
            "link",
            "add",
            self.name,
            "type",
            self.kind,
            "local",
            REMOTE_IP,
            "remote",
            NODE_UPLINK_IP,
        ];
        args.extend_from_slice(self.args);
        match world.remote.ip(&args) {
            Ok(_) => {}
            Err(err) if format!("{err:#}").contains("Unknown device type") => {
                report(&format!(
                    "{}: skipped: this kernel cannot create `{}` devices (CONFIG_NET_IPGRE is off): {err:#}",
                    self.test, self.kind
                ));
                return Ok(false);
            }
            Err(err) => return Err(err).context(format!("creating the {} device", self.kind)),
        }
        world.remote.ip(["link", "set", self.name, "up"])?;
        Ok(true)
    }
}

/// Pings through a GRE-family mirror and checks everything about the tunnel packets.
fn gre_family(case: &GreCase, underlay: Underlay, device: Option<&KernelDevice>) -> Result<()> {
    let world = underlay.world()?;
    if let Some(device) = device
        && !device.create(&world)?
    {
        return Ok(());
    }
    let mut at_pod = Capture::start(&world.pod, POD_IF, Direction::InOut, None)?;
    let mut at_remote = Capture::start_filtered(
        &world.remote,
        REMOTE_IF,
        Direction::In,
        None,
        Some(underlay.gre_filter()),
    )?;
    let mut at_device = device
        .map(|d| Capture::start(&world.remote, d.name, Direction::In, None))
        .transpose()?;
    let remote = underlay.remote().to_string();
    let args = AgentArgs::tunnel(
        &world,
        &[NODE_POD_IF],
        case.tunnel,
        &[&remote],
        case.options,
    );
    let mut agent = Agent::start(&world.node, &args)?;

    world.ping_node_from_pod(PINGS, None)?;
    let arrived = at_remote.wait_for_frames(FRAMES, ARRIVAL, SETTLE);
    println!("{}: {arrived} tunnel packets at the remote", case.tunnel);
    let metrics = agent.wait_for_metric(
        "mirror_sent_packets_total",
        &[("tunnel", case.tunnel)],
        count(FRAMES),
        Duration::from_secs(5),
    )?;
    stop_agent(&mut agent)?;

    let pod = at_pod.finish()?;
    ensure!(
        pod.len() == FRAMES,
        "the pod saw {} frames, not {FRAMES}: the world is not quiet",
        pod.len()
    );
    let records = at_remote.finish_records()?;
    ensure!(
        records.len() == FRAMES,
        "{} over {underlay:?}: {} tunnel packets reached the remote for {FRAMES} frames",
        case.tunnel,
        records.len()
    );
    check_sent(&metrics, case.tunnel, &remote, FRAMES)?;

    let packets = parse_gre_records(&records)?;
    let (node_mac, remote_mac) = (
        parse_mac(&world.node.mac(NODE_UPLINK_IF)?)?,
        parse_mac(&world.remote.mac(REMOTE_IF)?)?,
    );
    for (i, packet) in packets.iter().enumerate() {
        check_gre_packet(case, underlay, i, packet, &records[i])
            .with_context(|| format!("{} tunnel packet {} of {FRAMES}", case.tunnel, i + 1))?;
        ensure!(
            packet.outer.src_mac == node_mac && packet.outer.dst_mac == remote_mac,
            "tunnel packet {}: Ethernet {} -> {}, expected {} -> {}",
            i + 1,
            format_mac(&packet.outer.src_mac),
            format_mac(&packet.outer.dst_mac),
            format_mac(&node_mac),
            format_mac(&remote_mac)
        );
    }
    let inner: Vec<Vec<u8>> = packets.into_iter().map(|p| p.inner).collect();
    if let Some(diff) = diff_frames(&pod, &inner) {
        bail!(
            "{} over {underlay:?}: the inner frames are not the pod's frames: {diff}",
            case.tunnel
        );
    }
    check_with_tshark(case, underlay, at_remote.path(), &records)?;

    if let (Some(device), Some(capture)) = (device, at_device.as_mut()) {
        let decapsulated = capture.finish()?;
        if let Some(diff) = diff_frames(&pod, &decapsulated) {
            bail!(
                "the kernel's {} device did not decapsulate the pod's frames exactly: {diff}",
                device.kind
            );
        }
    }
    Ok(())
}

fn parse_gre_records(records: &[Record]) -> Result<Vec<GrePacket>> {
    records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            ensure!(
                r.orig_len as usize == r.data.len(),
                "packet {} was cut by the capture",
                i + 1
            );
            GrePacket::parse(&r.data).with_context(|| format!("parsing tunnel packet {}", i + 1))
        })
        .collect()
}

/// The fields of one tunnel packet, as parsed here.
fn check_gre_packet(
    case: &GreCase,
    underlay: Underlay,
    i: usize,
    packet: &GrePacket,
    record: &Record,
) -> Result<()> {
    let outer = &packet.outer;
    ensure!(
        (outer.src, outer.dst) == (underlay.node(), underlay.remote()),
        "outer {} -> {}, expected {} -> {}",
        outer.src,
        outer.dst,
        underlay.node(),
        underlay.remote()
    );
    let gre = &packet.gre;
    ensure!(
        gre.other_bits() == 0 && gre.checksum.is_none(),
        "GRE flags/version {:#06x}: only K and S may be set",
        gre.flags_version
    );
    ensure!(
        gre.protocol == case.protocol,
        "GRE protocol {:#06x}, expected {:#06x}",
        gre.protocol,
        case.protocol
    );
    ensure!(
        gre.key == case.key,
        "GRE key {:?}, expected {:?}",
        gre.key,
        case.key
    );
    let sequence = case.sequenced.then_some(i as u32);
    ensure!(
        gre.sequence == sequence,
        "GRE sequence number {:?}, expected {sequence:?} (numbered from 0 per remote)",
        gre.sequence
    );
    // Echo requests enter vethpod from the pod (ingress), replies leave it (egress).
    let direction = u8::from(i % 2 == 1);
    match (case.erspan, packet.erspan) {
        (ExpectErspan::None, None) | (ExpectErspan::TypeI, Some(Erspan::TypeI)) => {}
        (ExpectErspan::TypeII { session, index }, Some(Erspan::TypeII(got))) => {
            let want = ErspanII {
                version: 1,
                vlan: 0,
                cos: 0,
                encap: 0,
                truncated: false,
                session,
                reserved: 0,
                index,
            };
            ensure!(got == want, "ERSPAN II header {got:?}, expected {want:?}");
        }
        (ExpectErspan::TypeIII { session, hwid, sgt }, Some(Erspan::TypeIII(got))) => {
            let want = ErspanIII {
                version: 2,
                vlan: 0,
                cos: 0,
                bso: 0,
                truncated: false,
                session,
                // Checked below.
                timestamp: got.timestamp,
                sgt,
                // An Ethernet frame (P = 1, FT = 0), as Linux writes it.
                p: true,
                frame_type: 0,
                hwid,
                direction,
                // 100 µs granularity.
                granularity: 0,
                optional: false,
            };
            ensure!(got == want, "ERSPAN III header {got:?}, expected {want:?}");
            check_timestamp(got.timestamp, record)?;
        }
        (want, got) => bail!("ERSPAN header {got:?}, expected {want:?}"),
    }
    Ok(())
}

/// An ERSPAN III timestamp (100 µs units of Unix time, mod 2^32) within a second of the time the
/// remote captured the packet.
fn check_timestamp(timestamp: u32, record: &Record) -> Result<()> {
    let captured = (record.timestamp.as_micros() / 100) as u32;
    let skew = i64::from(timestamp.wrapping_sub(captured).cast_signed());
    ensure!(
        skew.abs() <= TICKS_PER_SECOND,
        "ERSPAN III timestamp {timestamp} is {skew} × 100 µs from the capture time ({captured} in the same \
         units): expected (unix_time_us / 100) mod 2^32, within 1 s"
    );
    Ok(())
}

/// The same headers through Wireshark's dissectors.
fn check_with_tshark(
    case: &GreCase,
    underlay: Underlay,
    path: &std::path::Path,
    records: &[Record],
) -> Result<()> {
    let proto_field = match underlay {
        Underlay::V4 => "ip.proto",
        Underlay::V6 => "ipv6.nxt",
    };
    let names = [
        "frame.protocols",
        proto_field,
        "gre.flags.checksum",
        "gre.flags.routing",
        "gre.flags.key",
        "gre.flags.sequence_number",
        "gre.flags.version",
        "gre.proto",
        "gre.key",
        "gre.sequence_number",
        "erspan.version",
        "erspan.vlan",
        "erspan.cos",
        "erspan.encap",
        "erspan.bso",
        "erspan.truncated",
        "erspan.spanid",
        "erspan.index",
        "erspan.timestamp",
        "erspan.sgt",
        "erspan.p",
        "erspan.ft",
        "erspan.hw",
        "erspan.direction",
        "erspan.gra",
        "erspan.o",
        "icmp.type",
    ];
    let fields = Fields::read(path, None, &names)?;
    ensure!(
        fields.rows.len() == records.len(),
        "tshark read {} packets, the capture has {}",
        fields.rows.len(),
        records.len()
    );
    // The layers tshark finds: the ERSPAN dissector (Type I included) and the inner frame after it.
    let protocols = format!(
        "eth:ethertype:{}:gre:{}eth:ethertype:ip:icmp",
        match underlay {
            Underlay::V4 => "ip",
            Underlay::V6 => "ipv6",
        },
        match case.erspan {
            ExpectErspan::None => "",
            _ => "erspan:",
        }
    );
    for (row, record) in records.iter().enumerate() {
        ensure!(
            fields.text(row, "frame.protocols").starts_with(&protocols),
            "tshark, packet {}: layers {}, expected {protocols}",
            row + 1,
            fields.text(row, "frame.protocols")
        );
        fields.expect_number(row, proto_field, Some(47))?;
        fields.expect_flag(row, "gre.flags.checksum", false)?;
        fields.expect_flag(row, "gre.flags.routing", false)?;
        fields.expect_flag(row, "gre.flags.key", case.key.is_some())?;
        fields.expect_flag(row, "gre.flags.sequence_number", case.sequenced)?;
        fields.expect_number(row, "gre.flags.version", Some(0))?;
        fields.expect_number(row, "gre.proto", Some(u64::from(case.protocol)))?;
        fields.expect_number(row, "gre.key", case.key.map(u64::from))?;
        fields.expect_number(
            row,
            "gre.sequence_number",
            case.sequenced.then_some(count(row)),
        )?;
        check_erspan_with_tshark(case, &fields, row, record)?;
        // The inner frame, found where tshark expects it: echo request, reply, request...
        let icmp_type = if row % 2 == 1 { 0 } else { 8 };
        fields.expect_number(row, "icmp.type", Some(icmp_type))?;
    }
    Ok(())
}

/// The ERSPAN fields of packet `row` as tshark reads them.
fn check_erspan_with_tshark(
    case: &GreCase,
    fields: &Fields,
    row: usize,
    record: &Record,
) -> Result<()> {
    let expect = |name: &str, want: u64| fields.expect_number(row, name, Some(want));
    match case.erspan {
        ExpectErspan::None | ExpectErspan::TypeI => {
            fields.expect_number(row, "erspan.version", None)?;
            fields.expect_number(row, "erspan.spanid", None)?;
        }
        ExpectErspan::TypeII { session, index } => {
            expect("erspan.version", 1)?;
            expect("erspan.vlan", 0)?;
            expect("erspan.cos", 0)?;
            expect("erspan.encap", 0)?;
            expect("erspan.truncated", 0)?;
            expect("erspan.spanid", u64::from(session))?;
            expect("erspan.index", u64::from(index))?;
        }
        ExpectErspan::TypeIII { session, hwid, sgt } => {
            expect("erspan.version", 2)?;
            expect("erspan.vlan", 0)?;
            expect("erspan.cos", 0)?;
            expect("erspan.bso", 0)?;
            expect("erspan.truncated", 0)?;
            expect("erspan.spanid", u64::from(session))?;
            expect("erspan.sgt", u64::from(sgt))?;
            expect("erspan.p", 1)?;
            expect("erspan.ft", 0)?;
            expect("erspan.hw", u64::from(hwid))?;
            // Requests enter vethpod (ingress, 0), replies leave it (egress, 1).
            fields.expect_flag(row, "erspan.direction", row % 2 == 1)?;
            expect("erspan.gra", 0)?;
            expect("erspan.o", 0)?;
            let timestamp = fields
                .number(row, "erspan.timestamp")?
                .context("tshark shows no erspan.timestamp")?;
            let timestamp = u32::try_from(timestamp).context("erspan.timestamp over 32 bits")?;
            check_timestamp(timestamp, record)
                .with_context(|| format!("tshark, packet {}", row + 1))?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 3. VxLAN over IPv6 into a kernel VTEP that checks UDP checksums.
// ---------------------------------------------------------------------------------------------

/// The remote's VxLAN device on the IPv6 underlay.
const VTEP6: &str = "vxlan6";

#[test]
fn vxlan_ipv6_underlay_valid_udp_checksums() -> Result<()> {
    if skip_unless_root("vxlan_ipv6_underlay_valid_udp_checksums") {
        return Ok(());
    }
    let world = Underlay::V6.world()?;
    // Without udp6zerocsumrx: the kernel drops UDP over IPv6 whose checksum is zero or wrong.
    world.add_remote_vxlan(
        VTEP6,
        world.config.vni,
        world.config.vxlan_port,
        REMOTE_IP6,
        &[],
    )?;
    let csum_errors_before = world.remote.snmp("Udp6", "InCsumErrors")?;
    let mut at_pod = Capture::start(&world.pod, POD_IF, Direction::InOut, None)?;
    let mut at_wire = Capture::start_filtered(
        &world.remote,
        REMOTE_IF,
        Direction::In,
        None,
        Some("ip6 and udp"),
    )?;
    let mut at_vtep = Capture::start(&world.remote, VTEP6, Direction::In, None)?;
    let mut args = AgentArgs::vxlan(&world, &[NODE_POD_IF]);
    // The documented forms are `IP` and `[IPv6]:PORT`; the port comes from --vxlan-port here.
    args.remotes = vec![REMOTE_IP6.to_owned()];
    let mut agent = Agent::start(&world.node, &args)?;

    world.ping_node_from_pod(PINGS, None)?;
    let arrived = at_vtep.wait_for_frames(FRAMES, ARRIVAL, SETTLE);
    println!("{arrived} frames decapsulated by {VTEP6}");
    let metrics = agent.wait_for_metric(
        "mirror_sent_packets_total",
        &[("tunnel", "vxlan")],
        count(FRAMES),
        Duration::from_secs(5),
    )?;
    stop_agent(&mut agent)?;
    let pod = at_pod.finish()?;
    ensure!(
        pod.len() == FRAMES,
        "the pod saw {} frames, not {FRAMES}",
        pod.len()
    );
    let wire = at_wire.finish()?;
    let decapsulated = at_vtep.finish()?;
    let csum_errors = world.remote.snmp("Udp6", "InCsumErrors")? - csum_errors_before;

    // The wire first: what the kernel VTEP was given.
    let port = world.config.vxlan_port;
    for (i, frame) in wire.iter().enumerate() {
        let packet = VxlanPacket::parse(frame)
            .with_context(|| format!("parsing VxLAN-over-IPv6 packet {}", i + 1))?;
        let want: (IpAddr, IpAddr) = (
            NODE_UPLINK_IP6.parse().expect("constant"),
            REMOTE_IP6.parse().expect("constant"),
        );
        ensure!(
            (packet.outer.src, packet.outer.dst) == want,
            "VxLAN packet {}: outer {} -> {}, expected {} -> {}",
            i + 1,
            packet.outer.src,
            packet.outer.dst,
            want.0,
            want.1
        );
        ensure!(
            packet.udp_checksum_ok,
            "VxLAN packet {}: UDP checksum {:#06x} over IPv6 does not verify (RFC 8200 requires a valid one)",
            i + 1,
            packet.udp_checksum
        );
        ensure!(
            (packet.dst_port, packet.flags, packet.vni, packet.reserved)
                == (port, 0x08, world.config.vni, 0),
            "VxLAN packet {}: (dst port, flags, VNI, reserved) = {:?}, expected {:?}",
            i + 1,
            (packet.dst_port, packet.flags, packet.vni, packet.reserved),
            (port, 0x08, world.config.vni, 0)
        );
    }
    ensure!(
        wire.len() == FRAMES,
        "{} VxLAN-over-IPv6 packets on the wire for {FRAMES} frames",
        wire.len()
    );
    ensure!(
        csum_errors == 0,
        "the remote counted {csum_errors} UDP6 checksum errors (Udp6InCsumErrors)"
    );
    check_sent(&metrics, "vxlan", &format!("[{REMOTE_IP6}]:{port}"), FRAMES)?;
    if let Some(diff) = diff_frames(&pod, &decapsulated) {
        bail!("the kernel VTEP over IPv6 did not receive the pod's frames exactly: {diff}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 4. Flannel: the copies are accepted by a flannel.1 device.
// ---------------------------------------------------------------------------------------------

/// The device flannel's VxLAN backend creates, with its VNI and port.
const FLANNEL: &str = "flannel.1";
const FLANNEL_VNI: u32 = 1;
const FLANNEL_PORT: u16 = 8472;

#[test]
fn flannel_device_accepts_rewritten_frames() -> Result<()> {
    if skip_unless_root("flannel_device_accepts_rewritten_frames") {
        return Ok(());
    }
    let world = World::new(42)?;
    world.add_remote_vxlan(FLANNEL, FLANNEL_VNI, FLANNEL_PORT, REMOTE_IP, &[])?;
    world
        .remote
        .ip(["addr", "add", "198.19.200.0/32", "dev", FLANNEL])?;
    let flannel_mac = world.remote.mac(FLANNEL)?;
    let mut args = AgentArgs::vxlan(&world, &[NODE_POD_IF]);
    args.vni = FLANNEL_VNI;
    args.vxlan_port = FLANNEL_PORT;
    args.remotes = vec![format!("{REMOTE_IP}:{FLANNEL_PORT}")];

    // Control: the original destination MACs are not flannel.1's, so the remote's IP layer
    // never sees the frames (dropped as other-host). This shows the counter below can tell.
    let control = flannel_run(&world, FLANNEL, &args)?;
    ensure!(
        control.ip_delivered == 0,
        "without --inner-dst-mac {} inner packets reached the remote's IP layer: the check below cannot tell \
         delivered from dropped",
        control.ip_delivered
    );
    if let Some(diff) = diff_frames(&control.pod, &control.at_device) {
        bail!(
            "without --inner-dst-mac, {FLANNEL} did not get the pod's frames as they were: {diff}"
        );
    }

    args.extra = vec!["--inner-dst-mac".to_owned(), flannel_mac.clone()];
    let run = flannel_run(&world, FLANNEL, &args)?;
    let mac = parse_mac(&flannel_mac)?;
    let expected: Vec<Vec<u8>> = run
        .pod
        .iter()
        .map(|frame| {
            let mut frame = frame.clone();
            frame[..6].copy_from_slice(&mac);
            frame
        })
        .collect();
    if let Some(diff) = diff_frames(&expected, &run.at_device) {
        bail!(
            "{FLANNEL} did not get the pod's frames with destination MAC {flannel_mac} and all else unchanged: {diff}"
        );
    }
    ensure!(
        run.device_rx == count(FRAMES) && run.device_rx_dropped == 0,
        "{FLANNEL} counted {} frames received ({} dropped), expected {FRAMES} (0 dropped)",
        run.device_rx,
        run.device_rx_dropped
    );
    ensure!(
        run.ip_delivered == count(FRAMES),
        "{} of the {FRAMES} inner packets reached the remote's IP layer (Ip InAddrErrors: not for this host, \
         not forwarded); frames dropped as other-host never get there",
        run.ip_delivered
    );
    Ok(())
}

/// What one flannel run saw.
struct FlannelRun {
    pod: Vec<Vec<u8>>,
    at_device: Vec<Vec<u8>>,
    device_rx: u64,
    device_rx_dropped: u64,
    /// Inner packets that passed Ethernet (PACKET_HOST) into the remote's IPv4 layer, where,
    /// neither local nor forwarded, each counts in Ip InAddrErrors.
    ip_delivered: u64,
}

fn flannel_run(world: &World, device: &str, args: &AgentArgs) -> Result<FlannelRun> {
    let stats_before = world.remote.link_stats(device)?;
    let addr_errors_before = world.remote.snmp("Ip", "InAddrErrors")?;
    let mut at_pod = Capture::start(&world.pod, POD_IF, Direction::InOut, None)?;
    let mut at_device = Capture::start(&world.remote, device, Direction::In, None)?;
    let mut agent = Agent::start(&world.node, args)?;
    world.ping_node_from_pod(PINGS, None)?;
    at_device.wait_for_frames(FRAMES, ARRIVAL, SETTLE);
    let metrics = agent.wait_for_metric(
        "mirror_sent_packets_total",
        &[],
        count(FRAMES),
        Duration::from_secs(5),
    )?;
    stop_agent(&mut agent)?;
    check_sent(
        &metrics,
        "vxlan",
        args.remotes.first().map_or("", String::as_str),
        FRAMES,
    )?;
    let pod = at_pod.finish()?;
    ensure!(
        pod.len() == FRAMES,
        "the pod saw {} frames, not {FRAMES}",
        pod.len()
    );
    let at_device = at_device.finish()?;
    let stats = world.remote.link_stats(device)?;
    Ok(FlannelRun {
        pod,
        at_device,
        device_rx: stats.rx_packets - stats_before.rx_packets,
        device_rx_dropped: stats.rx_dropped - stats_before.rx_dropped,
        ip_delivered: world.remote.snmp("Ip", "InAddrErrors")? - addr_errors_before,
    })
}

// ---------------------------------------------------------------------------------------------
// 5. --balance flow: each flow to exactly one of three remotes.
// ---------------------------------------------------------------------------------------------

/// UDP flows from the pod to the node, each answered by the node.
const FLOWS: u16 = 30;
/// Datagrams each way per flow.
const ROUNDS: usize = 2;

#[test]
fn balance_flow_keeps_each_flow_on_one_remote() -> Result<()> {
    if skip_unless_root("balance_flow_keeps_each_flow_on_one_remote") {
        return Ok(());
    }
    let world = World::new(42)?;
    let vni = world.config.vni;
    // Three VTEPs, each on its own address and port (one VxLAN device per VNI and port).
    let remotes = [
        (REMOTE_IP, 4789, REMOTE_VTEP_IF),
        (SECOND_REMOTE_IP, 4790, "vxlan3"),
        (THIRD_REMOTE_IP, 4791, "vxlan4"),
    ];
    for (ip, port, dev) in &remotes[1..] {
        world.add_remote_ip(ip)?;
        world.add_remote_vxlan(dev, vni, *port, ip, &[])?;
    }
    // With checksum offload, a capture on the sending veth sees UDP datagrams before their
    // checksum is filled in (only the pseudo-header sum), while the copies carry the final one.
    // Computed in software, both are the same and the pod's capture is the exact reference.
    world.pod.run("ethtool", ["-K", POD_IF, "tx", "off"])?;
    world
        .node
        .run("ethtool", ["-K", NODE_POD_IF, "tx", "off"])?;
    let mut at_pod = Capture::start(&world.pod, POD_IF, Direction::InOut, None)?;
    let mut at_vteps = remotes
        .iter()
        .map(|(_, _, dev)| Capture::start(&world.remote, dev, Direction::In, None))
        .collect::<Result<Vec<_>>>()?;
    let labels: Vec<String> = remotes
        .iter()
        .map(|(ip, port, _)| format!("{ip}:{port}"))
        .collect();
    let mut args = AgentArgs::vxlan(&world, &[NODE_POD_IF]);
    args.remotes.clone_from(&labels);
    args.extra = vec!["--balance".to_owned(), "flow".to_owned()];
    let mut agent = Agent::start(&world.node, &args)?;

    udp_flows(&world.pod, &world.node)?;
    let frames = usize::from(FLOWS) * ROUNDS * 2;
    let metrics = agent.wait_for_metric(
        "mirror_sent_packets_total",
        &[("tunnel", "vxlan")],
        count(frames),
        ARRIVAL,
    )?;
    for capture in &at_vteps {
        capture.wait_until_quiet(SETTLE, ARRIVAL);
    }
    stop_agent(&mut agent)?;
    let pod = at_pod.finish()?;
    ensure!(
        pod.len() == frames,
        "the pod saw {} frames, not {frames}",
        pod.len()
    );
    let received = at_vteps
        .iter_mut()
        .map(Capture::finish)
        .collect::<Result<Vec<_>>>()?;

    check_balanced(&pod, &received, &labels, &metrics)
}

/// Every frame of the pod at exactly one remote, in order; each flow at one remote; every
/// remote used; the sent counter of each remote equal to what it received.
fn check_balanced(
    pod: &[Vec<u8>],
    received: &[Vec<Vec<u8>>],
    labels: &[String],
    metrics: &Metrics,
) -> Result<()> {
    let frames = pod.len();
    // Which remote got each of the pod's frames; every frame is unique (its payload names the
    // flow, the round and the direction).
    let mut flows_at: BTreeMap<FlowKey, BTreeSet<usize>> = BTreeMap::new();
    let mut total = 0;
    for (r, frames_at) in received.iter().enumerate() {
        total += frames_at.len();
        let mut next = 0;
        for frame in frames_at {
            let Some(offset) = pod[next..].iter().position(|f| f == frame) else {
                bail!(
                    "remote {} got a frame that is not one of the pod's, or out of order: {}",
                    labels[r],
                    hex(frame)
                );
            };
            next += offset + 1;
            let key = flow_key(frame).context("a mirrored frame that is not UDP over IPv4")?;
            flows_at.entry(key).or_default().insert(r);
        }
        let sent = metrics.total(
            "mirror_sent_packets_total",
            &[("remote", labels[r].as_str())],
        );
        ensure!(
            sent == count(frames_at.len()),
            "mirror_sent_packets_total{{remote=\"{}\"}} is {sent}, but that remote received {} frames",
            labels[r],
            frames_at.len()
        );
    }
    let per_remote: Vec<usize> = received.iter().map(Vec::len).collect();
    println!("frames per remote {labels:?}: {per_remote:?}");
    ensure!(
        total == frames,
        "the remotes received {total} copies in all ({per_remote:?}) of the pod's {frames} frames"
    );
    let mut all: Vec<&Vec<u8>> = received.iter().flatten().collect();
    let mut want: Vec<&Vec<u8>> = pod.iter().collect();
    all.sort();
    want.sort();
    ensure!(
        all == want,
        "the remotes' frames together are not the pod's frames"
    );
    ensure!(
        flows_at.len() == usize::from(FLOWS),
        "{} flows seen, {FLOWS} sent",
        flows_at.len()
    );
    for (flow, at) in &flows_at {
        ensure!(
            at.len() == 1,
            "flow {flow:?} went to several remotes: {:?}",
            at.iter().map(|r| &labels[*r]).collect::<Vec<_>>()
        );
    }
    for (r, frames_at) in received.iter().enumerate() {
        ensure!(
            !frames_at.is_empty(),
            "remote {} got no flow of {FLOWS} ({per_remote:?}): flows are not spread",
            labels[r]
        );
    }
    Ok(())
}

/// A UDP flow, the same in both directions: its two endpoints, sorted.
type FlowKey = [(Ipv4Addr, u16); 2];

fn flow_key(frame: &[u8]) -> Option<FlowKey> {
    if frame.len() < 42 || frame[12..14] != [0x08, 0x00] || frame[23] != 17 {
        return None;
    }
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    let ip = |at: usize| Ipv4Addr::new(frame[at], frame[at + 1], frame[at + 2], frame[at + 3]);
    let port = |at: usize| Some(u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]));
    let udp = 14 + ihl;
    let a: (Ipv4Addr, u16) = (ip(26), port(udp)?);
    let b: (Ipv4Addr, u16) = (ip(30), port(udp + 2)?);
    Some(if a <= b { [a, b] } else { [b, a] })
}

/// [`FLOWS`] UDP flows pod -> node, [`ROUNDS`] datagrams each way: the node's sockets echo.
fn udp_flows(pod: &Netns, node: &Netns) -> Result<()> {
    let pod_ip: IpAddr = POD_IP.parse().expect("constant");
    let node_ip: IpAddr = NODE_POD_IP.parse().expect("constant");
    for flow in 0..FLOWS {
        let client = pod.udp_socket(SocketAddr::new(pod_ip, 41000 + flow))?;
        let server = node.udp_socket(SocketAddr::new(node_ip, 40000 + flow))?;
        for socket in [&client, &server] {
            socket.set_read_timeout(Some(Duration::from_secs(2)))?;
        }
        let mut buf = [0_u8; 64];
        for round in 0..ROUNDS {
            let request = format!("flow {flow} round {round} request");
            client.send_to(request.as_bytes(), server.local_addr()?)?;
            let (len, from) = server
                .recv_from(&mut buf)
                .with_context(|| format!("the node receiving flow {flow}"))?;
            ensure!(
                &buf[..len] == request.as_bytes(),
                "flow {flow}: wrong datagram"
            );
            let reply = format!("flow {flow} round {round} reply");
            server.send_to(reply.as_bytes(), from)?;
            let (len, _) = client
                .recv_from(&mut buf)
                .with_context(|| format!("the pod receiving flow {flow}'s reply"))?;
            ensure!(&buf[..len] == reply.as_bytes(), "flow {flow}: wrong reply");
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 6-7. Oversize copies and --snaplen.
// ---------------------------------------------------------------------------------------------

/// The uplink MTU of the oversize tests.
const SMALL_MTU: u32 = 1400;
/// `ping -s` for 1500-byte IP packets.
const BIG_PING: usize = 1472;
/// Pings of each size.
const OVERSIZE_PINGS: usize = 10;
/// IPv4 + GRE with a sequence number + ERSPAN II.
const ERSPAN2_OVERHEAD: usize = 20 + 8 + 8;
/// IPv4 + UDP + VxLAN.
const VXLAN_OVERHEAD: usize = 20 + 8 + 8;

#[test]
fn oversize_erspan2_truncated_with_t_bit() -> Result<()> {
    if skip_unless_root("oversize_erspan2_truncated_with_t_bit") {
        return Ok(());
    }
    let limit = SMALL_MTU as usize - ERSPAN2_OVERHEAD;
    let run = erspan2_sizes(
        WorldConfig {
            uplink_mtu: SMALL_MTU,
            ..WorldConfig::default()
        },
        &["--oversize", "truncate"],
        BIG_PING,
    )?;
    run.check_cut(limit, "mtu")?;
    run.check_sent_dropped(4 * OVERSIZE_PINGS, 0)
}

#[test]
fn oversize_erspan2_dropped() -> Result<()> {
    if skip_unless_root("oversize_erspan2_dropped") {
        return Ok(());
    }
    let run = erspan2_sizes(
        WorldConfig {
            uplink_mtu: SMALL_MTU,
            ..WorldConfig::default()
        },
        &["--oversize", "drop"],
        BIG_PING,
    )?;
    let small = 2 * OVERSIZE_PINGS;
    if let Some(diff) = diff_frames(&run.pod[..small], &run.inner) {
        bail!(
            "with --oversize drop, the remote should get the small frames only, unchanged: {diff}"
        );
    }
    let too_big = run
        .metrics
        .total("mirror_dropped_packets_total", &[("reason", "too_big")]);
    let truncated = run.metrics.total("mirror_truncated_packets_total", &[]);
    ensure!(
        too_big == count(small) && truncated == 0,
        "mirror_dropped_packets_total{{reason=\"too_big\"}} is {too_big} (expected {small}), \
         mirror_truncated_packets_total is {truncated} (expected 0)"
    );
    run.check_sent_dropped(small, small)
}

#[test]
fn snaplen_erspan2_truncated_with_t_bit() -> Result<()> {
    if skip_unless_root("snaplen_erspan2_truncated_with_t_bit") {
        return Ok(());
    }
    // Small pings are 98-byte frames (kept whole), big ones 242 bytes (cut to 100).
    let run = erspan2_sizes(WorldConfig::default(), &["--snaplen", "100"], 200)?;
    run.check_cut(100, "snaplen")?;
    run.check_sent_dropped(4 * OVERSIZE_PINGS, 0)
}

#[test]
fn oversize_vxlan_truncated() -> Result<()> {
    if skip_unless_root("oversize_vxlan_truncated") {
        return Ok(());
    }
    let world = World::build(WorldConfig {
        uplink_mtu: SMALL_MTU,
        ..WorldConfig::default()
    })?;
    let run = PingSizes {
        oversize: Some("truncate"),
        sent: Some(4 * OVERSIZE_PINGS),
        ..PingSizes::vxlan(OVERSIZE_PINGS, BIG_PING)
    }
    .run(&world)?;
    for (i, frame) in run.wire.iter().enumerate() {
        let packet =
            VxlanPacket::parse(frame).with_context(|| format!("VxLAN packet {}", i + 1))?;
        ensure!(
            packet.outer.ip_len <= SMALL_MTU as usize,
            "VxLAN packet {} is {} bytes of IP, over the uplink MTU {SMALL_MTU}",
            i + 1,
            packet.outer.ip_len
        );
    }
    let limit = SMALL_MTU as usize - VXLAN_OVERHEAD;
    let expected = cut_to(&run.pod, limit);
    if let Some(diff) = diff_frames(&expected, &run.decapsulated) {
        bail!(
            "the kernel VTEP did not get the pod's frames, those over {limit} bytes cut to {limit} (uplink MTU \
             {SMALL_MTU} - {VXLAN_OVERHEAD} bytes of VxLAN over IPv4): {diff}"
        );
    }
    check_truncation_counters(&run.metrics, "mtu", 2 * OVERSIZE_PINGS)
}

/// Small then big pings through an ERSPAN II mirror; the remote's packets, parsed.
struct SizesRun {
    pod: Vec<Vec<u8>>,
    packets: Vec<GrePacket>,
    inner: Vec<Vec<u8>>,
    truncated_flags: Vec<Option<bool>>,
    metrics: Metrics,
    mtu: u32,
}

fn erspan2_sizes(config: WorldConfig, options: &[&str], big: usize) -> Result<SizesRun> {
    let world = World::build(config)?;
    let mut at_pod = Capture::start(&world.pod, POD_IF, Direction::InOut, None)?;
    let mut at_remote = Capture::start_filtered(
        &world.remote,
        REMOTE_IF,
        Direction::In,
        None,
        Some("ip proto 47"),
    )?;
    let mut all_options = vec!["--erspan-session", "77"];
    all_options.extend_from_slice(options);
    let args = AgentArgs::tunnel(
        &world,
        &[NODE_POD_IF],
        "erspan2",
        &[REMOTE_IP],
        &all_options,
    );
    let mut agent = Agent::start(&world.node, &args)?;
    world.ping_node_from_pod(OVERSIZE_PINGS, None)?;
    world.ping_node_from_pod(OVERSIZE_PINGS, Some(big))?;
    let frames = 4 * OVERSIZE_PINGS;
    // Wait for what the agent handled (sent or dropped), then for the wire to go quiet.
    let deadline = std::time::Instant::now() + ARRIVAL;
    let metrics = loop {
        let metrics = agent.metrics()?;
        let handled = metrics.total("mirror_sent_packets_total", &[])
            + metrics.total("mirror_dropped_packets_total", &[]);
        if handled >= count(frames) || std::time::Instant::now() > deadline {
            break metrics;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    at_remote.wait_until_quiet(SETTLE, ARRIVAL);
    stop_agent(&mut agent)?;
    let pod = at_pod.finish()?;
    ensure!(
        pod.len() == frames,
        "the pod saw {} frames, not {frames}",
        pod.len()
    );
    let records = at_remote.finish_records()?;
    let packets = parse_gre_records(&records)?;
    for (i, packet) in packets.iter().enumerate() {
        ensure!(
            packet.outer.ip_len <= config.uplink_mtu as usize,
            "tunnel packet {} is {} bytes of IP, over the uplink MTU {}",
            i + 1,
            packet.outer.ip_len,
            config.uplink_mtu
        );
        ensure!(
            packet.gre.sequence == Some(i as u32),
            "tunnel packet {}: GRE sequence {:?}, expected {i}",
            i + 1,
            packet.gre.sequence
        );
    }
    let fields = Fields::read(
        at_remote.path(),
        None,
        &["erspan.version", "erspan.truncated"],
    )?;
    ensure!(
        fields.rows.len() == packets.len(),
        "tshark read {} packets, the capture has {}",
        fields.rows.len(),
        packets.len()
    );
    let truncated_flags = (0..fields.rows.len())
        .map(|row| {
            let version = fields.number(row, "erspan.version")?;
            ensure!(
                version == Some(1),
                "tshark, packet {}: erspan.version {version:?}, expected 1",
                row + 1
            );
            Ok(fields.number(row, "erspan.truncated")?.map(|t| t == 1))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(SizesRun {
        inner: packets.iter().map(|p| p.inner.clone()).collect(),
        pod,
        packets,
        truncated_flags,
        metrics,
        mtu: config.uplink_mtu,
    })
}

impl SizesRun {
    /// `sent` copies counted as sent to the remote, `dropped` as dropped (for any reason).
    fn check_sent_dropped(&self, sent: usize, dropped: usize) -> Result<()> {
        let got_sent = self.metrics.total(
            "mirror_sent_packets_total",
            &[("tunnel", "erspan2"), ("remote", REMOTE_IP)],
        );
        let got_dropped = self.metrics.total("mirror_dropped_packets_total", &[]);
        ensure!(
            (got_sent, got_dropped) == (count(sent), count(dropped)),
            "mirror_sent_packets_total{{tunnel=\"erspan2\",remote=\"{REMOTE_IP}\"}} is {got_sent} (expected \
             {sent}), mirror_dropped_packets_total is {got_dropped} (expected {dropped})"
        );
        Ok(())
    }

    /// Every frame arrived, those over `limit` bytes cut to exactly `limit` with the T bit set
    /// (by this parser and by tshark), the others whole with it clear; `reason` counted.
    fn check_cut(&self, limit: usize, reason: &str) -> Result<()> {
        let expected = cut_to(&self.pod, limit);
        if let Some(diff) = diff_frames(&expected, &self.inner) {
            bail!(
                "the inner frames are not the pod's frames with those over {limit} bytes cut to {limit} (uplink \
                 MTU {}): {diff}",
                self.mtu
            );
        }
        for (i, (packet, original)) in self.packets.iter().zip(&self.pod).enumerate() {
            let cut = original.len() > limit;
            let Some(Erspan::TypeII(header)) = packet.erspan else {
                bail!(
                    "tunnel packet {}: not ERSPAN II: {:?}",
                    i + 1,
                    packet.erspan
                );
            };
            ensure!(
                header.truncated == cut && self.truncated_flags[i] == Some(cut),
                "tunnel packet {} (a {}-byte frame, limit {limit}): T bit {} here, {:?} by tshark; expected {cut}",
                i + 1,
                original.len(),
                header.truncated,
                self.truncated_flags[i]
            );
        }
        check_truncation_counters(&self.metrics, reason, 2 * OVERSIZE_PINGS)
    }
}

fn check_truncation_counters(metrics: &Metrics, reason: &str, expected: usize) -> Result<()> {
    let truncated = metrics.total("mirror_truncated_packets_total", &[("reason", reason)]);
    let all = metrics.total("mirror_truncated_packets_total", &[]);
    ensure!(
        truncated == count(expected) && all == truncated,
        "mirror_truncated_packets_total{{reason=\"{reason}\"}} is {truncated} (all reasons: {all}), expected \
         {expected}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Shared.
// ---------------------------------------------------------------------------------------------

/// `mirror_sent_packets_total{tunnel, remote}` is `expected`, nothing dropped or truncated.
fn check_sent(metrics: &Metrics, tunnel: &str, remote: &str, expected: usize) -> Result<()> {
    let sent = metrics.total(
        "mirror_sent_packets_total",
        &[("tunnel", tunnel), ("remote", remote)],
    );
    let dropped = metrics.total("mirror_dropped_packets_total", &[]);
    let truncated = metrics.total("mirror_truncated_packets_total", &[]);
    ensure!(
        sent == count(expected) && dropped == 0 && truncated == 0,
        "mirror_sent_packets_total{{tunnel=\"{tunnel}\",remote=\"{remote}\"}} is {sent} (expected {expected}), \
         dropped {dropped}, truncated {truncated} (expected 0); sent samples: {:?}",
        metrics
            .matching("mirror_sent_packets_total", &[])
            .map(|s| (&s.labels, s.value))
            .collect::<Vec<_>>()
    );
    Ok(())
}

fn stop_agent(agent: &mut Agent<'_>) -> Result<()> {
    let status = agent.stop_with(mirror_tests::Signal::Int)?;
    ensure!(
        status.success(),
        "the agent exited with {status} after SIGINT"
    );
    Ok(())
}

fn count(n: usize) -> u64 {
    u64::try_from(n).expect("usize fits in u64")
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().take(64).fold(String::new(), |mut text, b| {
        let _ = write!(text, "{b:02x}");
        text
    })
}

// ---------------------------------------------------------------------------------------------
// --oversize fragment: the remote's kernel reassembles the outer packet, then its VTEP hands out
// the whole original frame.
// ---------------------------------------------------------------------------------------------

#[test]
fn oversize_vxlan_fragmented_ipv4() -> Result<()> {
    if skip_unless_root("oversize_vxlan_fragmented_ipv4") {
        return Ok(());
    }
    let world = World::build(WorldConfig {
        uplink_mtu: SMALL_MTU,
        ..WorldConfig::default()
    })?;
    oversize_fragmented(&world, REMOTE_VTEP_IF, None, "ip and udp")
}

#[test]
fn oversize_vxlan_fragmented_ipv6() -> Result<()> {
    if skip_unless_root("oversize_vxlan_fragmented_ipv6") {
        return Ok(());
    }
    let world = World::build(WorldConfig {
        uplink_mtu: SMALL_MTU,
        ipv6_uplink: true,
        ..WorldConfig::default()
    })?;
    world.add_remote_vxlan(
        VTEP6,
        world.config.vni,
        world.config.vxlan_port,
        REMOTE_IP6,
        &[],
    )?;
    oversize_fragmented(
        &world,
        VTEP6,
        Some(REMOTE_IP6),
        "ip6[6] == 17 or ip6[6] == 44",
    )
}

fn oversize_fragmented(
    world: &World,
    vtep: &str,
    remote: Option<&str>,
    wire_filter: &str,
) -> Result<()> {
    let frames = 4 * OVERSIZE_PINGS;
    let Caught {
        pod,
        wire,
        decapsulated,
        metrics,
    } = PingSizes {
        remote,
        vtep,
        wire_filter,
        // The big pings' copies leave as two fragments each.
        oversize: Some("fragment"),
        sent: Some(frames + 2 * OVERSIZE_PINGS),
        ..PingSizes::vxlan(OVERSIZE_PINGS, BIG_PING)
    }
    .run(world)?;
    let largest = wire.iter().map(|f| f.len() - 14).max().unwrap_or(0);
    ensure!(
        wire.len() == frames + 2 * OVERSIZE_PINGS && largest <= SMALL_MTU as usize,
        "the wire carried {} packets (largest {largest} bytes of IP), expected {} of at most {SMALL_MTU}",
        wire.len(),
        frames + 2 * OVERSIZE_PINGS
    );
    if let Some(diff) = diff_frames(&pod, &decapsulated) {
        bail!("the kernel VTEP did not reassemble the pod's frames whole: {diff}");
    }
    let fragmented = metrics.total("mirror_fragmented_packets_total", &[]);
    ensure!(
        fragmented == count(2 * OVERSIZE_PINGS),
        "mirror_fragmented_packets_total is {fragmented}, expected {}",
        2 * OVERSIZE_PINGS
    );
    ensure!(
        metrics.total("mirror_truncated_packets_total", &[]) == 0
            && metrics.total("mirror_dropped_packets_total", &[]) == 0,
        "copies were truncated or dropped"
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// VLAN tags: the receive path moves a frame's 802.1Q tag out of band (skb->vlan_tci) before TC
// ingress sees it. The copies must still carry it in the frame, and ERSPAN II takes VLAN and COS
// from it. (This kernel has no 8021q module: the pod sends tagged frames on a packet socket.)
// ---------------------------------------------------------------------------------------------

const VLAN_ID: u16 = 100;
const VLAN_PCP: u8 = 3;
const TAGGED_FRAMES: usize = 5;

#[test]
fn vlan_tag_kept_in_copies_erspan2() -> Result<()> {
    if skip_unless_root("vlan_tag_kept_in_copies_erspan2") {
        return Ok(());
    }
    let world = World::new(42)?;
    let mut at_wire = Capture::start_filtered(
        &world.remote,
        REMOTE_IF,
        Direction::In,
        None,
        Some("ip proto 47"),
    )?;
    let args = AgentArgs::tunnel(&world, &[NODE_POD_IF], "erspan2", &[REMOTE_IP], &[]);
    let mut agent = Agent::start(&world.node, &args)?;
    let dst = parse_mac(&world.node.mac(NODE_POD_IF)?)?;
    let src = parse_mac(&world.pod.mac(POD_IF)?)?;
    let frame = tagged_frame(dst, src);
    world
        .pod
        .within(|| send_raw(POD_IF, &frame, TAGGED_FRAMES))?;
    at_wire.wait_for_frames(TAGGED_FRAMES, ARRIVAL, SETTLE);
    stop_agent(&mut agent)?;
    let wire = at_wire.finish()?;
    ensure!(
        wire.len() == TAGGED_FRAMES,
        "{} copies arrived, not {TAGGED_FRAMES}",
        wire.len()
    );
    for (i, packet) in wire.iter().enumerate() {
        let packet = GrePacket::parse(packet).with_context(|| format!("copy {}", i + 1))?;
        let Some(Erspan::TypeII(erspan)) = packet.erspan else {
            bail!("copy {} is not ERSPAN II", i + 1);
        };
        ensure!(
            (erspan.vlan, erspan.cos, erspan.encap) == (VLAN_ID, VLAN_PCP, 0b11),
            "copy {}: ERSPAN VLAN {} COS {} En {}, expected {VLAN_ID} {VLAN_PCP} 3 (tag preserved)",
            i + 1,
            erspan.vlan,
            erspan.cos,
            erspan.encap
        );
        ensure!(
            packet.inner == frame,
            "copy {}: the inner frame differs from the tagged frame sent\n  sent {}\n  got  {}",
            i + 1,
            hex(&frame),
            hex(&packet.inner)
        );
    }
    Ok(())
}

/// An 802.1Q-tagged ICMP echo request from the pod to the node.
fn tagged_frame(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
    let builder = etherparse::PacketBuilder::ethernet2(src, dst)
        .single_vlan(etherparse::VlanId::try_new(VLAN_ID).expect("12 bits"))
        .ipv4([198, 19, 0, 2], [198, 19, 0, 1], 64)
        .icmpv4_echo_request(0x1234, 1);
    let payload = [0x5a; 32];
    let mut frame = Vec::with_capacity(builder.size(payload.len()));
    builder.write(&mut frame, &payload).expect("in memory");
    // PacketBuilder writes PCP 0: set it.
    frame[14] |= VLAN_PCP << 5;
    frame
}

/// Sends `frame` `times` times on `iface` through a packet socket (in the calling thread's netns).
fn send_raw(iface: &str, frame: &[u8], times: usize) -> Result<()> {
    let name = std::ffi::CString::new(iface)?;
    // SAFETY: plain libc calls on a socket this function owns and closes.
    unsafe {
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
        ensure!(
            fd >= 0,
            "packet socket: {}",
            std::io::Error::last_os_error()
        );
        let mut addr: libc::sockaddr_ll = std::mem::zeroed();
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = libc::if_nametoindex(name.as_ptr()).cast_signed();
        addr.sll_halen = 6;
        let mut result = Ok(());
        for _ in 0..times {
            let sent = libc::sendto(
                fd,
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&raw const addr).cast(),
                size_of::<libc::sockaddr_ll>() as u32,
            );
            if sent < 0 {
                result = Err(anyhow::anyhow!(
                    "sendto: {}",
                    std::io::Error::last_os_error()
                ));
                break;
            }
        }
        libc::close(fd);
        result
    }
}

// ---------------------------------------------------------------------------------------------
// IPv6 inside: copied unchanged; NetFlow v5 cannot describe it, so its flows are counted.
// ---------------------------------------------------------------------------------------------

#[test]
fn ipv6_inner_traffic_mirrored_unchanged() -> Result<()> {
    if skip_unless_root("ipv6_inner_traffic_mirrored_unchanged") {
        return Ok(());
    }
    let world = World::new(42)?;
    let mut at_vtep = Capture::start(&world.remote, REMOTE_VTEP_IF, Direction::In, None)?;
    // Nobody listens on the collector port: only the agent's own count is checked here.
    let args = AgentArgs {
        extra: vec!["--netflow".to_owned(), format!("{REMOTE_IP}:2055")],
        ..AgentArgs::vxlan(&world, &[NODE_POD_IF])
    };
    let mut agent = Agent::start(&world.node, &args)?;
    let dst = parse_mac(&world.node.mac(NODE_POD_IF)?)?;
    let src = parse_mac(&world.pod.mac(POD_IF)?)?;
    // Two flows (two destination ports), three packets each.
    let frames: Vec<Vec<u8>> = [53_u16, 53, 53, 54, 54, 54]
        .iter()
        .map(|&port| ipv6_udp_frame(dst, src, port))
        .collect();
    world.pod.within(|| {
        for frame in &frames {
            send_raw(POD_IF, frame, 1)?;
        }
        Ok(())
    })?;
    at_vtep.wait_for_frames(frames.len(), ARRIVAL, SETTLE);
    let metrics = agent.wait_for_metric(
        "mirror_netflow_unexportable_flows_total",
        &[("reason", "ipv6")],
        2,
        Duration::from_secs(5),
    )?;
    stop_agent(&mut agent)?;
    let ipv6_flows = metrics.total(
        "mirror_netflow_unexportable_flows_total",
        &[("reason", "ipv6")],
    );
    ensure!(
        ipv6_flows == 2,
        "{ipv6_flows} IPv6 flows counted, expected 2"
    );
    let decapsulated = at_vtep.finish()?;
    if let Some(diff) = diff_frames(&frames, &decapsulated) {
        bail!("the kernel VTEP did not get the IPv6 frames unchanged: {diff}");
    }
    Ok(())
}

fn ipv6_udp_frame(dst: [u8; 6], src: [u8; 6], port: u16) -> Vec<u8> {
    let builder = etherparse::PacketBuilder::ethernet2(src, dst)
        .ipv6(
            [0xfd, 0, 0x19, 0x8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            [0xfd, 0, 0x19, 0x8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            64,
        )
        .udp(40_000, port);
    let payload = [0x5a; 40];
    let mut frame = Vec::with_capacity(builder.size(payload.len()));
    builder.write(&mut frame, &payload).expect("in memory");
    frame
}
