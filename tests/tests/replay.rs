//! `mirror replay`, judged at the far end of the tunnel by `mirror receive` and by the kernel's
//! own VxLAN device, against captures of real traffic made by real tools.
//!
//! - Round trip for every tunnel: ping, DNS-like UDP and an iperf3 TCP transfer between the pod
//!   and the node, recorded by tcpdump in the pod, replayed from the node, received in the
//!   remote: the frames arrive byte-identical and in the original order (VxLAN: through the
//!   kernel's `vxlan0` and through `mirror receive`; GRE, ERSPAN I/II/III: `mirror receive`).
//! - The same capture as pcapng (editcap) and as Linux cooked captures (SLL and SLL2, tcpdump
//!   `-i any`): the same frames arrive (cooked: from the IP header on, with the EtherType and
//!   the source MAC taken from the cooked header and a zero destination MAC).
//! - Damaged and unusable files through the binary: truncated at several offsets, a corrupt
//!   record length, a truncated pcapng, an empty file, a text file, an unsupported link type:
//!   exit code 2, exactly one `error:` line naming the file (and, for damage, the byte offset
//!   where it starts), no panic, and every packet before the damage delivered.
//! - `--speed 1` keeps the capture's schedule: packets arrive within [`GAP_TOLERANCE`] of it,
//!   but for [`STALLS_ALLOWED`] the host may have stalled.
//! - Link types that carry IP (NFLOG captured by tcpdump; BSD loopback, enc, pflog, PPP, Cisco
//!   HDLC, SLIP, PKTAP, IPNET, Juniper and radiotap 802.11 written byte by byte and read by
//!   tcpdump first): the
//!   kernel VTEP gets every IP packet unchanged. A pcapng file whose option lists lack
//!   `opt_endofopt` and hold odd options, read by capinfos and tshark, arrives exactly.
//!
//! Each test builds its own world and removes it on drop.

use std::{fs, path::Path, time::Duration};

use anyhow::{Context as _, Result, bail, ensure};
use mirror_tests::{
    Capture, Direction, World, diff_frames,
    link_types::{IP_LINKS, LINKTYPE_NFLOG, nflog_payload, pcapng_with_odd_options, tcpdump_lines},
    replay::{
        self, Cooked, ETHERNET_HEADER_LEN, ETHERTYPE_IPV4, LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL,
        LINKTYPE_LINUX_SLL2, LINKTYPE_USER0, PCAPNG_EPB, PcapBytes, Receiver, ReplayRun, Traffic,
        make_traffic, pcap_linktype, pcapng_blocks, start_tcpdump, stop_tcpdump, to_pcapng,
        udp_frame, write_pcap,
    },
    report,
    scratch::ScratchDir,
    skip_unless_root,
    tshark::Fields,
    world::{POD_IF, REMOTE_IP, REMOTE_VTEP_IF},
};

const VNI: u32 = 42;
/// How long one replay may take (the files here take well under a second at full speed).
const REPLAY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the frames of a replay may take to reach the receiver.
const ARRIVAL: Duration = Duration::from_secs(10);
/// Waited after the expected count, so that extra frames would be caught too.
const SETTLE: Duration = Duration::from_millis(500);
/// How far a packet may arrive from the capture's schedule under `--speed 1`.
const GAP_TOLERANCE: Duration = Duration::from_millis(5);
/// Packets of the 25 that may miss [`GAP_TOLERANCE`]: a busy host stalls a sleeping thread
/// for a few milliseconds now and then, which no pacing can undo. A pacer that ignores the
/// gaps, or lets errors add up, misses it for most packets.
const STALLS_ALLOWED: usize = 2;
/// A time in 2023, for synthetic captures.
const T0: Duration = Duration::from_secs(1_700_000_000);

// ---------------------------------------------------------------------------------------------
// 1. Round trip for every tunnel.
// ---------------------------------------------------------------------------------------------

#[test]
fn round_trip_vxlan() -> Result<()> {
    if skip_unless_root("round_trip_vxlan") {
        return Ok(());
    }
    round_trip("vxlan", &["--vni", "42"], &[])
}

#[test]
fn round_trip_gre() -> Result<()> {
    if skip_unless_root("round_trip_gre") {
        return Ok(());
    }
    round_trip("gre", &["--gre-key", "7", "--gre-seq"], &["--gre-key", "7"])
}

#[test]
fn round_trip_erspan1() -> Result<()> {
    if skip_unless_root("round_trip_erspan1") {
        return Ok(());
    }
    round_trip("erspan1", &[], &[])
}

#[test]
fn round_trip_erspan2() -> Result<()> {
    if skip_unless_root("round_trip_erspan2") {
        return Ok(());
    }
    round_trip(
        "erspan2",
        &["--erspan-session", "77", "--erspan-index", "12345"],
        &[],
    )
}

#[test]
fn round_trip_erspan3() -> Result<()> {
    if skip_unless_root("round_trip_erspan3") {
        return Ok(());
    }
    round_trip(
        "erspan3",
        &[
            "--erspan-session",
            "300",
            "--erspan-hwid",
            "5",
            "--erspan-sgt",
            "1234",
        ],
        &[],
    )
}

/// Records real traffic in the pod, replays the file with `--tunnel TUNNEL SEND_OPTIONS` and
/// checks what `mirror receive RECEIVE_OPTIONS` (and, for VxLAN, the kernel's VTEP first)
/// gets.
fn round_trip(tunnel: &str, send_options: &[&str], receive_options: &[&str]) -> Result<()> {
    let world = World::new(VNI)?;
    let (capture, original) = record_traffic(&world)?;
    let file = capture.path().to_string_lossy().into_owned();
    let mut args = vec!["--pcap", &file, "--tunnel", tunnel, "--remote", REMOTE_IP];
    args.extend_from_slice(send_options);

    if tunnel == "vxlan" {
        let mut at_vtep = Capture::start(&world.remote, REMOTE_VTEP_IF, Direction::In, None)?;
        let run = replay::replay(&world.node, &args, REPLAY_TIMEOUT)?;
        check_replayed(&run, original.len())?;
        at_vtep.wait_for_frames(original.len(), ARRIVAL, SETTLE);
        let got = at_vtep.finish()?;
        if let Some(diff) = diff_frames(&original, &got) {
            bail!(
                "`{}`: the kernel VTEP did not decapsulate the captured frames exactly: {diff}",
                run.command
            );
        }
        report(&format!(
            "round_trip_vxlan: {} frames identical and in order at the kernel's {REMOTE_VTEP_IF}",
            got.len()
        ));
        // `mirror receive` needs the VxLAN port that the kernel VTEP holds.
        remove_kernel_vtep(&world)?;
    }

    let got = replay_and_receive(&world, tunnel, &args, receive_options, original.len())?;
    if let Some(diff) = diff_frames(&original, &got) {
        bail!("{tunnel}: `mirror receive` did not get the captured frames exactly: {diff}");
    }
    report(&format!(
        "round_trip_{tunnel}: {} frames identical and in order at `mirror receive`",
        got.len()
    ));
    Ok(())
}

/// `--filter`: libpcap's meaning, applied before the tunnel. Only the ICMP and UDP frames of
/// the capture arrive, in order; the TCP transfer is counted as left out; a bad expression is a
/// usage error before anything is sent.
#[test]
fn filter_sends_only_what_matches() -> Result<()> {
    if skip_unless_root("filter_sends_only_what_matches") {
        return Ok(());
    }
    let world = World::new(VNI)?;
    let (capture, original) = record_traffic(&world)?;
    let file = capture.path().to_string_lossy().into_owned();
    let kept: Vec<Vec<u8>> = original
        .iter()
        .filter(|f| f.len() > 23 && f[12..14] == [0x08, 0x00] && matches!(f[23], 1 | 17))
        .cloned()
        .collect();
    let left_out = original.len() - kept.len();
    let args = [
        "--pcap",
        &file,
        "--tunnel",
        "vxlan",
        "--remote",
        REMOTE_IP,
        "--vni",
        "42",
        "--filter",
        "icmp or udp",
    ];
    let mut at_vtep = Capture::start(&world.remote, REMOTE_VTEP_IF, Direction::In, None)?;
    let run = replay::replay(&world.node, &args, REPLAY_TIMEOUT)?;
    run.check_success()?;
    let summary = run.stderr.join("\n");
    ensure!(
        summary.ends_with(&format!(", {left_out} left out by --filter")),
        "`{}` should count {left_out} frames left out: {summary}",
        run.command
    );
    at_vtep.wait_for_frames(kept.len(), ARRIVAL, SETTLE);
    let got = at_vtep.finish()?;
    if let Some(diff) = diff_frames(&kept, &got) {
        bail!(
            "`{}`: the kernel VTEP did not get exactly the matching frames: {diff}",
            run.command
        );
    }

    let bad = replay::replay(
        &world.node,
        &[&args[..8], &["--filter", "tcp port eighty"]].concat(),
        REPLAY_TIMEOUT,
    )?;
    let line = check_error_line(&bad, "--filter 'tcp port eighty'")?;
    report(&format!(
        "filter_sends_only_what_matches: {} of {} frames sent, {left_out} left out; bad expression: {line}",
        got.len(),
        original.len()
    ));
    Ok(())
}

/// Real traffic between the pod and the node, recorded by tcpdump on the pod's `eth0`; returns
/// the capture (its file lives as long as it does) and its frames.
fn record_traffic(world: &World) -> Result<(Capture, Vec<Vec<u8>>)> {
    let mut capture = Capture::start(&world.pod, POD_IF, Direction::InOut, None)?;
    make_traffic(world, Traffic::default())?;
    capture.wait_until_quiet(SETTLE, ARRIVAL);
    let original = capture.finish()?;
    check_traffic(&original)?;
    Ok((capture, original))
}

/// The capture holds what [`make_traffic`] makes: ICMP, UDP and TCP, of many sizes.
fn check_traffic(frames: &[Vec<u8>]) -> Result<()> {
    let count = |protocol: u8| {
        frames
            .iter()
            .filter(|f| f.len() > 23 && f[12..14] == [0x08, 0x00] && f[23] == protocol)
            .count()
    };
    let (icmp, tcp, udp) = (count(1), count(6), count(17));
    let traffic = Traffic::default();
    ensure!(
        icmp == 2 * traffic.pings && udp == 2 * traffic.queries && tcp > 700,
        "the capture holds {icmp} ICMP, {udp} UDP and {tcp} TCP frames of {}: expected {} ICMP, {} UDP \
         and the TCP transfer",
        frames.len(),
        2 * traffic.pings,
        2 * traffic.queries
    );
    let largest = frames.iter().map(Vec::len).max().unwrap_or_default();
    ensure!(
        largest <= 1514,
        "a captured frame has {largest} bytes: offloads are on"
    );
    Ok(())
}

/// Starts `mirror receive --tunnel TUNNEL --listen REMOTE_IP --count EXPECTED` in the remote,
/// runs `mirror replay ARGS` in the node and returns the frames received.
fn replay_and_receive(
    world: &World,
    tunnel: &str,
    args: &[&str],
    receive_options: &[&str],
    expected: usize,
) -> Result<Vec<Vec<u8>>> {
    let mut receiver = Receiver::start(
        &world.remote,
        tunnel,
        REMOTE_IP,
        Some(expected),
        receive_options,
    )?;
    let run = replay::replay(&world.node, args, REPLAY_TIMEOUT)?;
    check_replayed(&run, expected)?;
    let got = replay::frames(&receiver.finish(ARRIVAL)?);
    ensure!(
        got.len() == expected,
        "`{}`: {} of {expected} frames reached `mirror receive` ({:?})",
        run.command,
        got.len(),
        receiver.stderr_lines()
    );
    Ok(got)
}

/// The replay exited 0, said nothing but its summary, and that summary counts `packets`.
fn check_replayed(run: &ReplayRun, packets: usize) -> Result<()> {
    run.check_success()?;
    let summary = run
        .summary()
        .with_context(|| format!("`{}` printed no summary: {:?}", run.command, run.stderr))?;
    ensure!(
        summary.packets == packets as u64,
        "`{}` says it replayed {} packets, the file has {packets}",
        run.command,
        summary.packets
    );
    ensure!(
        run.stderr.len() == 1,
        "`{}` printed more than its summary: {:?}",
        run.command,
        run.stderr
    );
    Ok(())
}

/// Deletes the remote's kernel VTEP, which holds the VxLAN port `mirror receive` binds.
fn remove_kernel_vtep(world: &World) -> Result<()> {
    world
        .remote
        .ip(["link", "del", REMOTE_VTEP_IF])
        .map(drop)
        .context("deleting the kernel VTEP of the remote")
}

// ---------------------------------------------------------------------------------------------
// 2. The same capture as pcapng and as Linux cooked captures (SLL, SLL2).
// ---------------------------------------------------------------------------------------------

#[test]
fn pcapng_and_cooked_captures() -> Result<()> {
    if skip_unless_root("pcapng_and_cooked_captures") {
        return Ok(());
    }
    let world = World::new(VNI)?;
    let scratch = ScratchDir::new()?;
    let sll_path = scratch.join("any-sll.pcap");
    let sll2_path = scratch.join("any-sll2.pcap");
    let mut ethernet = Capture::start(&world.pod, POD_IF, Direction::InOut, None)?;
    let mut sll = start_tcpdump(&world.pod, &["-i", "any", "-y", "LINUX_SLL"], &sll_path)?;
    let mut sll2 = start_tcpdump(&world.pod, &["-i", "any", "-y", "LINUX_SLL2"], &sll2_path)?;
    make_traffic(&world, Traffic::default())?;
    ethernet.wait_until_quiet(SETTLE, ARRIVAL);
    let original = ethernet.finish()?;
    stop_tcpdump(&mut sll)?;
    stop_tcpdump(&mut sll2)?;
    check_traffic(&original)?;
    remove_kernel_vtep(&world)?;

    // pcapng: the same frames, exactly.
    let pcapng = scratch.join("capture.pcapng");
    to_pcapng(ethernet.path(), &pcapng)?;
    let magic = fs::read(&pcapng)?.get(..4).map(<[u8]>::to_vec);
    ensure!(
        magic.as_deref() == Some(&[0x0a, 0x0d, 0x0d, 0x0a]),
        "editcap did not write a pcapng file (it starts with {magic:02x?})"
    );
    let path = pcapng.to_string_lossy().into_owned();
    let got = replay_vxlan(&world, &path, original.len())?;
    if let Some(diff) = diff_frames(&original, &got) {
        bail!("pcapng: `mirror receive` did not get the captured frames exactly: {diff}");
    }
    report(&format!(
        "pcapng_and_cooked_captures: pcapng: {} frames identical and in order",
        got.len()
    ));

    // Cooked captures: from the IP header on, with the EtherType and source MAC they hold.
    for (path, linktype) in [
        (&sll_path, LINKTYPE_LINUX_SLL),
        (&sll2_path, LINKTYPE_LINUX_SLL2),
    ] {
        let name = if linktype == LINKTYPE_LINUX_SLL {
            "SLL"
        } else {
            "SLL2"
        };
        let found = pcap_linktype(path)?;
        ensure!(
            found == linktype,
            "tcpdump wrote link type {found}, not {linktype} ({name})"
        );
        let cooked: Vec<Cooked> = mirror_tests::read_records(path)?
            .iter()
            .enumerate()
            .map(|(i, r)| {
                Cooked::parse(linktype, &r.data).with_context(|| format!("{name} packet {}", i + 1))
            })
            .collect::<Result<_>>()?;
        check_cooked_capture(name, &cooked, &original)?;
        let file = path.to_string_lossy().into_owned();
        let got = replay_vxlan(&world, &file, cooked.len())?;
        check_cooked_frames(name, &cooked, &got)?;
        report(&format!(
            "pcapng_and_cooked_captures: {name}: {} frames equal from the IP header on, EtherType \
             and source MAC from the cooked header, destination zero",
            got.len()
        ));
    }
    Ok(())
}

/// Replays `file` into VxLAN (VNI 42) and returns what `mirror receive` got.
fn replay_vxlan(world: &World, file: &str, expected: usize) -> Result<Vec<Vec<u8>>> {
    let args = [
        "--pcap", file, "--tunnel", "vxlan", "--remote", REMOTE_IP, "--vni", "42",
    ];
    replay_and_receive(world, "vxlan", &args, &[], expected)
}

/// The cooked capture, taken at the same time as the Ethernet one, holds the same packets (the
/// order may differ where a sent and a received packet crossed: each capture socket is fed from
/// both CPUs).
fn check_cooked_capture(name: &str, cooked: &[Cooked], original: &[Vec<u8>]) -> Result<()> {
    let mut from_cooked: Vec<Vec<u8>> = cooked
        .iter()
        .map(|p| {
            let mut tail = p.address.clone();
            tail.extend_from_slice(&p.protocol.to_be_bytes());
            tail.extend_from_slice(&p.payload);
            tail
        })
        .collect();
    let mut from_ethernet: Vec<Vec<u8>> = original.iter().map(|f| f[6..].to_vec()).collect();
    from_cooked.sort();
    from_ethernet.sort();
    ensure!(
        from_cooked == from_ethernet,
        "the {name} capture ({} packets) and the Ethernet capture ({} frames) taken at the same \
         time hold different packets",
        cooked.len(),
        original.len()
    );
    Ok(())
}

/// What arrived from a cooked capture, in the file's order: the IP packet unchanged, the
/// cooked header's EtherType, its address as the source MAC, a zero destination (none of
/// these packets is a broadcast).
fn check_cooked_frames(name: &str, cooked: &[Cooked], got: &[Vec<u8>]) -> Result<()> {
    ensure!(
        got.len() == cooked.len(),
        "{name}: {} frames arrived for {} packets",
        got.len(),
        cooked.len()
    );
    for (i, (packet, received)) in cooked.iter().zip(got).enumerate() {
        let n = i + 1;
        ensure!(
            received.len() == ETHERNET_HEADER_LEN + packet.payload.len()
                && received[ETHERNET_HEADER_LEN..] == packet.payload[..],
            "{name}: frame {n} arrived with another IP packet ({} bytes, expected {} from the IP \
             header on)",
            received.len(),
            packet.payload.len()
        );
        ensure!(
            received[12..14] == packet.protocol.to_be_bytes(),
            "{name}: frame {n} has EtherType {:02x?}, the cooked header says {:#06x}",
            &received[12..14],
            packet.protocol
        );
        ensure!(
            packet.packet_type != 1
                && received[..6] == [0; 6]
                && received[6..12] == packet.address[..],
            "{name}: frame {n} (packet type {}) has MACs {:02x?} -> {:02x?}, expected the \
             cooked address {:02x?} as source and a zero destination",
            packet.packet_type,
            &received[6..12],
            &received[..6],
            packet.address
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 3. Damaged and unusable files.
// ---------------------------------------------------------------------------------------------

/// What the binary must do with a file.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// A valid file of this many packets: exit 0, all delivered.
    Whole(usize),
    /// Damage: the first `sent` packets delivered, then exit 2 and one line naming the file
    /// and a byte offset in `offset.0..=offset.1` (where the damage starts).
    Damaged { sent: usize, offset: (usize, usize) },
    /// Nothing usable: exit 2, one line naming the file (and `naming`, if given), nothing sent.
    Refused { naming: Option<&'static str> },
}

struct BadFile {
    name: &'static str,
    bytes: Vec<u8>,
    expect: Expect,
}

/// Twenty UDP frames of 60 to 250 bytes, 1 ms apart.
fn synthetic() -> (PcapBytes, Vec<Vec<u8>>) {
    let frames: Vec<Vec<u8>> = (0..20)
        .map(|i| udp_frame(i, 60 + 10 * i as usize))
        .collect();
    let records: Vec<(Duration, &[u8])> = frames
        .iter()
        .enumerate()
        .map(|(i, f)| (T0 + Duration::from_millis(i as u64), f.as_slice()))
        .collect();
    (write_pcap(LINKTYPE_ETHERNET, &records), frames)
}

#[test]
fn damaged_pcap_files() -> Result<()> {
    if skip_unless_root("damaged_pcap_files") {
        return Ok(());
    }
    let (file, frames) = synthetic();
    let (bytes, at) = (&file.bytes, &file.offsets);
    let cut = |len: usize| bytes[..len].to_vec();
    let mut corrupt = bytes.clone();
    // Record 6 claims 2 GiB of data (its original length says the same).
    corrupt[at[6] + 8..at[6] + 16]
        .copy_from_slice(&[0xff, 0xff, 0xff, 0x7f, 0xff, 0xff, 0xff, 0x7f]);
    let cases = vec![
        BadFile {
            name: "cut-at-a-record-boundary.pcap",
            bytes: cut(at[12]),
            expect: Expect::Whole(12),
        },
        BadFile {
            name: "cut-in-a-record-header.pcap",
            bytes: cut(at[8] + 7),
            expect: Expect::Damaged {
                sent: 8,
                offset: (at[8], at[8] + 7),
            },
        },
        BadFile {
            name: "cut-in-packet-data.pcap",
            bytes: cut(at[13] + 16 + 5),
            expect: Expect::Damaged {
                sent: 13,
                offset: (at[13], at[13] + 21),
            },
        },
        BadFile {
            name: "one-byte-short.pcap",
            bytes: cut(bytes.len() - 1),
            expect: Expect::Damaged {
                sent: 19,
                offset: (at[19], bytes.len() - 1),
            },
        },
        BadFile {
            name: "cut-in-the-file-header.pcap",
            bytes: cut(10),
            expect: Expect::Refused { naming: None },
        },
        BadFile {
            name: "corrupt-record-length.pcap",
            bytes: corrupt,
            expect: Expect::Damaged {
                sent: 6,
                offset: (at[6], at[6] + 8),
            },
        },
    ];
    check_bad_files(&cases, &frames)
}

#[test]
fn damaged_pcapng_and_unusable_files() -> Result<()> {
    if skip_unless_root("damaged_pcapng_and_unusable_files") {
        return Ok(());
    }
    let (file, frames) = synthetic();
    let scratch = ScratchDir::new()?;
    let pcap = scratch.join("synthetic.pcap");
    fs::write(&pcap, &file.bytes)?;
    let pcapng = scratch.join("synthetic.pcapng");
    to_pcapng(&pcap, &pcapng)?;
    let ng = fs::read(&pcapng)?;
    let packets: Vec<usize> = pcapng_blocks(&ng)?
        .into_iter()
        .filter(|&(_, kind)| kind == PCAPNG_EPB)
        .map(|(at, _)| at)
        .collect();
    ensure!(
        packets.len() == frames.len(),
        "editcap wrote {} packet blocks for {} packets",
        packets.len(),
        frames.len()
    );
    let unsupported = write_pcap(LINKTYPE_USER0, &[(T0, frames[0].as_slice())]).bytes;
    let cases = vec![
        BadFile {
            name: "cut-in-a-block.pcapng",
            bytes: ng[..packets[10] + 30].to_vec(),
            expect: Expect::Damaged {
                sent: 10,
                offset: (packets[10], packets[10] + 30),
            },
        },
        BadFile {
            name: "empty.pcap",
            bytes: Vec::new(),
            expect: Expect::Refused { naming: None },
        },
        BadFile {
            name: "notes.txt",
            bytes: b"This is not a capture.\nIt is a text file.\n".to_vec(),
            expect: Expect::Refused { naming: None },
        },
        BadFile {
            name: "linktype-147.pcap",
            bytes: unsupported,
            expect: Expect::Refused {
                naming: Some("147"),
            },
        },
    ];
    check_bad_files(&cases, &frames)
}

/// Replays each file into VxLAN towards `mirror receive` and checks the exit code, the error
/// line and what arrived.
fn check_bad_files(cases: &[BadFile], frames: &[Vec<u8>]) -> Result<()> {
    let world = World::new(VNI)?;
    remove_kernel_vtep(&world)?;
    let scratch = ScratchDir::new()?;
    for case in cases {
        let path = scratch.join(case.name);
        fs::write(&path, &case.bytes)?;
        check_bad_file(&world, &path, case, frames)
            .with_context(|| format!("{} ({} bytes)", case.name, case.bytes.len()))?;
    }
    Ok(())
}

fn check_bad_file(world: &World, path: &Path, case: &BadFile, frames: &[Vec<u8>]) -> Result<()> {
    let mut receiver = Receiver::start(&world.remote, "vxlan", REMOTE_IP, None, &[])?;
    let file = path.to_string_lossy().into_owned();
    let run = replay::replay(
        &world.node,
        &[
            "--pcap", &file, "--tunnel", "vxlan", "--remote", REMOTE_IP, "--vni", "42",
        ],
        REPLAY_TIMEOUT,
    )?;
    ensure!(
        !run.stderr.iter().any(|l| l.contains("panicked")),
        "`{}` panicked: {:?}",
        run.command,
        run.stderr
    );
    let sent = match case.expect {
        Expect::Whole(sent) => {
            check_replayed(&run, sent)?;
            sent
        }
        Expect::Damaged { sent, offset } => {
            let line = check_error_line(&run, &file)?;
            let named = byte_offset(&line).with_context(|| {
                format!(
                    "`{}`: the error line names no byte offset: {line}",
                    run.command
                )
            })?;
            ensure!(
                (offset.0..=offset.1).contains(&named),
                "`{}`: the error line names byte {named}; the damage starts at byte {} (the \
                 file is cut or corrupt at byte {}): {line}",
                run.command,
                offset.0,
                offset.1
            );
            report(&format!("damaged files: {}: {line}", case.name));
            sent
        }
        Expect::Refused { naming } => {
            let line = check_error_line(&run, &file)?;
            if let Some(naming) = naming {
                ensure!(
                    line.contains(naming),
                    "`{}`: the error line does not name {naming}: {line}",
                    run.command
                );
            }
            report(&format!("damaged files: {}: {line}", case.name));
            0
        }
    };
    receiver.wait_for_frames(sent, ARRIVAL);
    std::thread::sleep(SETTLE);
    let got = replay::frames(&receiver.finish(ARRIVAL)?);
    if let Some(diff) = diff_frames(&frames[..sent], &got) {
        bail!(
            "`{}`: the packets before the damage did not all arrive, or more did: {diff}",
            run.command
        );
    }
    Ok(())
}

/// Exit code 2 and exactly one stderr line, starting with `error:` and naming `file`; returns
/// the line.
fn check_error_line(run: &ReplayRun, file: &str) -> Result<String> {
    ensure!(
        run.status.code() == Some(2),
        "`{}` exited with {}, expected exit code 2; stderr: {:?}",
        run.command,
        run.status,
        run.stderr
    );
    ensure!(
        run.stderr.len() == 1 && run.stderr[0].starts_with("error:"),
        "`{}` must print exactly one line, starting with `error:`; it printed {:?}",
        run.command,
        run.stderr
    );
    let line = run.stderr[0].clone();
    ensure!(
        line.contains(file),
        "`{}`: the error line does not name the file: {line}",
        run.command
    );
    Ok(line)
}

/// The number after `byte ` in `line`.
fn byte_offset(line: &str) -> Option<usize> {
    let (_, rest) = line.split_once("byte ")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// 4. `--speed 1` keeps the capture's gaps.
// ---------------------------------------------------------------------------------------------

/// Gaps between the packets of the synthetic capture, in milliseconds: 1.6 s in all.
const GAPS_MS: [u64; 24] = [
    20, 5, 150, 1, 80, 300, 40, 10, 2, 120, 60, 15, 250, 30, 3, 90, 45, 8, 200, 25, 70, 12, 100, 35,
];

#[test]
fn speed_one_keeps_the_gaps() -> Result<()> {
    if skip_unless_root("speed_one_keeps_the_gaps") {
        return Ok(());
    }
    let world = World::new(VNI)?;
    remove_kernel_vtep(&world)?;
    let frames: Vec<Vec<u8>> = (0..=GAPS_MS.len())
        .map(|i| udp_frame(i as u32, 100))
        .collect();
    let mut times = vec![T0 + Duration::from_micros(123_456)];
    for gap in GAPS_MS {
        times.push(times[times.len() - 1] + Duration::from_millis(gap));
    }
    let records: Vec<(Duration, &[u8])> = times
        .iter()
        .zip(&frames)
        .map(|(t, f)| (*t, f.as_slice()))
        .collect();
    let scratch = ScratchDir::new()?;
    let path = scratch.join("gaps.pcap");
    fs::write(&path, write_pcap(LINKTYPE_ETHERNET, &records).bytes)?;
    let file = path.to_string_lossy().into_owned();

    let mut receiver = Receiver::start(&world.remote, "vxlan", REMOTE_IP, Some(frames.len()), &[])?;
    let run = replay::replay(
        &world.node,
        &[
            "--pcap", &file, "--tunnel", "vxlan", "--remote", REMOTE_IP, "--vni", "42", "--speed",
            "1",
        ],
        REPLAY_TIMEOUT,
    )?;
    check_replayed(&run, frames.len())?;
    let received = receiver.finish(ARRIVAL)?;
    if let Some(diff) = diff_frames(&frames, &replay::frames(&received)) {
        bail!(
            "`{}`: the frames did not arrive exactly: {diff}",
            run.command
        );
    }
    // Each packet's arrival against its due time, both counted from the first packet; then
    // from the median of those offsets, so that a late first packet does not shift them all.
    let offsets: Vec<i128> = received
        .iter()
        .zip(&times)
        .map(|(packet, due)| {
            let got = packet.timestamp.saturating_sub(received[0].timestamp);
            got.as_nanos().cast_signed() - due.saturating_sub(times[0]).as_nanos().cast_signed()
        })
        .collect();
    let mut sorted = offsets.clone();
    sorted.sort_unstable();
    let anchor = sorted[sorted.len() / 2];
    let off: Vec<Duration> = offsets
        .iter()
        .map(|offset| {
            Duration::from_nanos(u64::try_from(offset.abs_diff(anchor)).unwrap_or(u64::MAX))
        })
        .collect();
    let mut ranked: Vec<(Duration, usize)> = off.iter().copied().zip(0..).collect();
    ranked.sort_unstable();
    let (median_off, _) = ranked[ranked.len() / 2];
    let (worst, worst_at) = ranked[ranked.len() - 1];
    let late: Vec<usize> = (0..off.len()).filter(|&i| off[i] > GAP_TOLERANCE).collect();
    let span = received[received.len() - 1]
        .timestamp
        .saturating_sub(received[0].timestamp);
    let want_span = times[times.len() - 1].saturating_sub(times[0]);
    report(&format!(
        "speed_one_keeps_the_gaps: median {median_off:?} off the schedule, worst {worst:?} \
         (packet {worst_at} of {}); {} beyond {GAP_TOLERANCE:?}; span {span:?} for {want_span:?}",
        frames.len(),
        late.len()
    ));
    ensure!(
        late.len() <= STALLS_ALLOWED && median_off <= GAP_TOLERANCE / 5,
        "`{}`: packets {late:?} arrived more than {GAP_TOLERANCE:?} off the capture's schedule \
         (at most {STALLS_ALLOWED} may, for the machine's own stalls); median {median_off:?}",
        run.command
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 5. Link types that carry IP, and pcapng files with the options some tools write.
// ---------------------------------------------------------------------------------------------

/// Captures of the link types that carry IP, replayed into VxLAN towards the remote's kernel
/// VTEP: what it decapsulates is each IP packet unchanged, behind a made-up Ethernet header with
/// the IPv4 EtherType and the MACs the link header gives (zero where it gives none). NFLOG is
/// captured by tcpdump (`nflog:` fed by nft in the pod with its ICMP and UDP packets) next to an
/// Ethernet capture that must hold the same IP packets; the link types Linux cannot capture are
/// written byte by byte around the IP packets of that Ethernet capture, and tcpdump must read
/// every packet of them as IP first.
#[test]
fn link_types_that_carry_ip() -> Result<()> {
    if skip_unless_root("link_types_that_carry_ip") {
        return Ok(());
    }
    let world = World::new(VNI)?;
    let scratch = ScratchDir::new()?;
    log_to_nflog(&world, NFLOG_GROUP)?;
    let nflog_path = scratch.join("nflog.pcap");
    let mut ethernet = Capture::start(&world.pod, POD_IF, Direction::InOut, None)?;
    let group = format!("nflog:{NFLOG_GROUP}");
    let mut nflog = start_tcpdump(&world.pod, &["-i", &group], &nflog_path)?;
    let traffic = Traffic {
        pings: 4,
        queries: 3,
        tcp_bytes: "64K",
        tcp_rate: "100M",
    };
    make_traffic(&world, traffic)?;
    ethernet.wait_until_quiet(SETTLE, ARRIVAL);
    let original = ethernet.finish()?;
    stop_tcpdump(&mut nflog)?;
    let ipv4: Vec<Vec<u8>> = original
        .iter()
        .filter(|f| f.len() > ETHERNET_HEADER_LEN && f[12..14] == [0x08, 0x00])
        .map(|f| f[ETHERNET_HEADER_LEN..].to_vec())
        .collect();
    ensure!(
        ipv4.len() > 2 * (traffic.pings + traffic.queries),
        "the Ethernet capture holds {} IPv4 packets",
        ipv4.len()
    );

    // NFLOG, as tcpdump captured it.
    let found = pcap_linktype(&nflog_path)?;
    ensure!(
        found == LINKTYPE_NFLOG,
        "tcpdump wrote link type {found}, not NFLOG"
    );
    let logged: Vec<Vec<u8>> = mirror_tests::read_records(&nflog_path)?
        .iter()
        .enumerate()
        .map(|(i, r)| nflog_payload(&r.data).with_context(|| format!("NFLOG packet {}", i + 1)))
        .collect::<Result<_>>()?;
    // Only ICMP and UDP are logged: netfilter sees TCP before segmentation and after GRO.
    let mut sorted_logged = logged.clone();
    let mut sorted_ipv4: Vec<Vec<u8>> = ipv4
        .iter()
        .filter(|ip| matches!(ip[9], 1 | 17))
        .cloned()
        .collect();
    sorted_logged.sort();
    sorted_ipv4.sort();
    ensure!(
        sorted_logged == sorted_ipv4 && logged.len() == 2 * (traffic.pings + traffic.queries),
        "the NFLOG capture ({} packets) and the Ethernet capture ({} ICMP and UDP packets) taken \
         at the same time hold different packets",
        logged.len(),
        sorted_ipv4.len()
    );
    let file = nflog_path.to_string_lossy().into_owned();
    replay_to_vtep(&world, "NFLOG", &file, &logged, ([0; 6], [0; 6]))?;

    // The others, written byte by byte.
    let mut names = Vec::new();
    for link in IP_LINKS {
        let wrapped: Vec<Vec<u8>> = ipv4.iter().map(|ip| link.wrap(ip)).collect();
        let records: Vec<(Duration, &[u8])> = wrapped
            .iter()
            .enumerate()
            .map(|(i, data)| (T0 + Duration::from_millis(i as u64), data.as_slice()))
            .collect();
        let path = scratch.join(&format!("{}.pcap", link.name));
        fs::write(&path, write_pcap(link.linktype, &records).bytes)?;
        let lines = tcpdump_lines(&path)?;
        ensure!(
            lines.len() == ipv4.len() && lines.iter().all(|l| l.contains(" IP ")),
            "{}: tcpdump does not read the file written for link type {} as {} IPv4 packets: {:?}",
            link.name,
            link.linktype,
            ipv4.len(),
            lines.iter().take(3).collect::<Vec<_>>()
        );
        let file = path.to_string_lossy().into_owned();
        replay_to_vtep(&world, link.name, &file, &ipv4, link.macs)?;
        names.push(link.name.to_owned());
    }
    report(&format!(
        "link_types_that_carry_ip: NFLOG ({} ICMP and UDP packets, tcpdump nflog:) and {} IPv4 \
         packets of each of {}: identical at the kernel's {REMOTE_VTEP_IF}",
        logged.len(),
        ipv4.len(),
        names.join(", ")
    ));
    Ok(())
}

/// NFLOG group the pod's nft rules log to.
const NFLOG_GROUP: u16 = 5;

/// nft rules in the pod that log every ICMP and UDP packet over IPv4 that it receives or sends
/// to NFLOG `group`.
fn log_to_nflog(world: &World, group: u16) -> Result<()> {
    let group = group.to_string();
    let nft =
        |args: &[&str]| {
            world.pod.run("nft", args).map(drop).with_context(|| {
                format!("nft {} in the pod (is nftables installed?)", args.join(" "))
            })
        };
    nft(&["add", "table", "ip", "mirror_test"])?;
    for (chain, hook) in [("in", "input"), ("out", "output")] {
        nft(&[
            "add",
            "chain",
            "ip",
            "mirror_test",
            chain,
            &format!("{{ type filter hook {hook} priority 0; }}"),
        ])?;
        for protocol in ["icmp", "udp"] {
            nft(&[
                "add",
                "rule",
                "ip",
                "mirror_test",
                chain,
                "ip",
                "protocol",
                protocol,
                "log",
                "group",
                &group,
                // Each packet to tcpdump at once, not batched for a second.
                "queue-threshold",
                "1",
            ])?;
        }
    }
    Ok(())
}

/// Replays `file` into VxLAN (VNI 42) and checks that the remote's kernel VTEP decapsulates
/// `packets` (IPv4), in order, each behind the IPv4 EtherType and `macs` (destination,
/// source).
fn replay_to_vtep(
    world: &World,
    name: &str,
    file: &str,
    packets: &[Vec<u8>],
    macs: ([u8; 6], [u8; 6]),
) -> Result<()> {
    let args = [
        "--pcap", file, "--tunnel", "vxlan", "--remote", REMOTE_IP, "--vni", "42",
    ];
    let mut at_vtep = Capture::start(&world.remote, REMOTE_VTEP_IF, Direction::In, None)?;
    let run = replay::replay(&world.node, &args, REPLAY_TIMEOUT)?;
    check_replayed(&run, packets.len())?;
    at_vtep.wait_for_frames(packets.len(), ARRIVAL, SETTLE);
    let got = at_vtep.finish()?;
    ensure!(
        got.len() == packets.len(),
        "{name}: the kernel VTEP decapsulated {} frames of {}",
        got.len(),
        packets.len()
    );
    for (i, (frame, ip)) in got.iter().zip(packets).enumerate() {
        ensure!(
            frame.len() == ETHERNET_HEADER_LEN + ip.len() && frame[ETHERNET_HEADER_LEN..] == ip[..],
            "{name}: frame {} at the kernel VTEP holds another IP packet ({} bytes, expected {})",
            i + 1,
            frame.len(),
            ETHERNET_HEADER_LEN + ip.len()
        );
        ensure!(
            frame[..6] == macs.0
                && frame[6..12] == macs.1
                && frame[12..14] == ETHERTYPE_IPV4.to_be_bytes(),
            "{name}: frame {} has the Ethernet header {:02x?}",
            i + 1,
            &frame[..ETHERNET_HEADER_LEN]
        );
    }
    Ok(())
}

/// A pcapng file whose option lists lack `opt_endofopt` and hold options of every odd kind
/// (as some switch and export tools write them): capinfos and tshark read it, and so must the
/// replay, every frame reaching the kernel VTEP exactly.
#[test]
fn pcapng_with_odd_section_options() -> Result<()> {
    if skip_unless_root("pcapng_with_odd_section_options") {
        return Ok(());
    }
    let world = World::new(VNI)?;
    let scratch = ScratchDir::new()?;
    let (_, frames) = synthetic();
    let path = scratch.join("odd-options.pcapng");
    fs::write(
        &path,
        pcapng_with_odd_options(&frames, T0.as_micros() as u64),
    )?;
    let file = path.to_string_lossy().into_owned();
    let info = mirror_tests::proc::run_stdout(&mut mirror_tests::proc::command(
        "capinfos",
        ["-c", "-M", &file],
    ))?;
    ensure!(
        info.lines().any(|l| l.starts_with("Number of packets:")
            && l.trim_end().ends_with(&format!(" {}", frames.len()))),
        "capinfos does not count {} packets in the file: {info}",
        frames.len()
    );
    let tshark = Fields::read(&path, None, &["frame.len"])?;
    ensure!(
        tshark.rows.len() == frames.len(),
        "tshark reads {} packets of {}",
        tshark.rows.len(),
        frames.len()
    );

    let mut at_vtep = Capture::start(&world.remote, REMOTE_VTEP_IF, Direction::In, None)?;
    let args = [
        "--pcap", &file, "--tunnel", "vxlan", "--remote", REMOTE_IP, "--vni", "42",
    ];
    let run = replay::replay(&world.node, &args, REPLAY_TIMEOUT)?;
    check_replayed(&run, frames.len())?;
    at_vtep.wait_for_frames(frames.len(), ARRIVAL, SETTLE);
    let got = at_vtep.finish()?;
    if let Some(diff) = diff_frames(&frames, &got) {
        bail!(
            "`{}`: the kernel VTEP did not get the file's frames exactly: {diff}",
            run.command
        );
    }
    report(&format!(
        "pcapng_with_odd_section_options: capinfos and tshark read it; {} frames identical at the \
         kernel's {REMOTE_VTEP_IF}",
        got.len()
    ));
    Ok(())
}
