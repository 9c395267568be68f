//! Tools of the replay tests and the replay benchmark: capture files written byte by byte (so
//! that a test knows where every record starts and can damage one), synthetic frames, real
//! traffic in a [`World`] recorded by tcpdump, `mirror replay` run to completion, and `mirror
//! receive` at the far end of the tunnel.
//!
//! Written without the agent's code: the pcap layout is the one of pcap(5) / the libpcap file
//! format draft, the cooked headers those of `pcap-linktype(7)` for LINUX_SLL and LINUX_SLL2.

use std::{
    fs,
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    process::ExitStatus,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};

use crate::{
    agent::existing_mirror_bin,
    capture::{Record, read_records},
    iperf,
    netns::Netns,
    proc::{Background, run},
    scratch::ScratchDir,
    tunnel::internet_checksum,
    world::{NODE_POD_IF, NODE_POD_IP, POD_IF, POD_IP, World},
};

/// Length of a classic pcap file header.
pub const PCAP_HEADER_LEN: usize = 24;
/// Length of a classic pcap record header.
pub const RECORD_HEADER_LEN: usize = 16;
/// `LINKTYPE_ETHERNET`.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// `LINKTYPE_LINUX_SLL`: Linux cooked capture v1.
pub const LINKTYPE_LINUX_SLL: u32 = 113;
/// `LINKTYPE_LINUX_SLL2`: Linux cooked capture v2.
pub const LINKTYPE_LINUX_SLL2: u32 = 276;
/// `LINKTYPE_USER0`: a link type no replay can turn into Ethernet.
pub const LINKTYPE_USER0: u32 = 147;
/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// Length of an Ethernet II header.
pub const ETHERNET_HEADER_LEN: usize = 14;

/// Snapshot length written into the files made here.
const SNAPLEN: u32 = 262_144;

/// A classic pcap file (little-endian, microsecond timestamps) made in memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcapBytes {
    pub bytes: Vec<u8>,
    /// Where each record (its 16-byte header) starts.
    pub offsets: Vec<usize>,
}

/// Writes `records` (time since the epoch, frame) as a pcap file of `linktype`.
pub fn write_pcap(linktype: u32, records: &[(Duration, &[u8])]) -> PcapBytes {
    let data: usize = records.iter().map(|(_, frame)| frame.len()).sum();
    let mut bytes = Vec::with_capacity(PCAP_HEADER_LEN + records.len() * RECORD_HEADER_LEN + data);
    bytes.extend_from_slice(&0xa1b2_c3d4_u32.to_le_bytes());
    bytes.extend_from_slice(&2_u16.to_le_bytes());
    bytes.extend_from_slice(&4_u16.to_le_bytes());
    bytes.extend_from_slice(&0_i32.to_le_bytes());
    bytes.extend_from_slice(&0_u32.to_le_bytes());
    bytes.extend_from_slice(&SNAPLEN.to_le_bytes());
    bytes.extend_from_slice(&linktype.to_le_bytes());
    let mut offsets = Vec::with_capacity(records.len());
    for (time, frame) in records {
        offsets.push(bytes.len());
        let len = u32::try_from(frame.len()).expect("a frame shorter than 4 GiB");
        let seconds = u32::try_from(time.as_secs()).expect("a time before 2106");
        bytes.extend_from_slice(&seconds.to_le_bytes());
        bytes.extend_from_slice(&time.subsec_micros().to_le_bytes());
        bytes.extend_from_slice(&len.to_le_bytes());
        bytes.extend_from_slice(&len.to_le_bytes());
        bytes.extend_from_slice(frame);
    }
    PcapBytes { bytes, offsets }
}

/// An Ethernet + IPv4 + UDP frame of exactly `len` bytes (at least 42) from the pod to the node
/// (198.19.0.2 -> 198.19.0.1, locally administered MACs), numbered `index`: the number is in
/// the source port and the payload, so that every frame differs. Valid IPv4 and UDP checksums.
pub fn udp_frame(index: u32, len: usize) -> Vec<u8> {
    assert!(
        len >= 42,
        "an Ethernet + IPv4 + UDP frame has at least 42 bytes"
    );
    let ip_len = len - ETHERNET_HEADER_LEN;
    let udp_len = ip_len - 20;
    let (src, dst) = (
        POD_IP.parse::<Ipv4Addr>().expect("constant").octets(),
        NODE_POD_IP.parse::<Ipv4Addr>().expect("constant").octets(),
    );
    let mut frame = vec![0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01];
    frame.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&(ip_len as u16).to_be_bytes());
    ip.extend_from_slice(&(index as u16).to_be_bytes());
    ip.extend_from_slice(&[0x40, 0, 64, 17, 0, 0]);
    ip.extend_from_slice(&src);
    ip.extend_from_slice(&dst);
    let checksum = internet_checksum(&[&ip]);
    ip[10..12].copy_from_slice(&checksum.to_be_bytes());
    frame.extend_from_slice(&ip);
    let mut udp = Vec::with_capacity(udp_len);
    udp.extend_from_slice(&(10_000 + (index % 50_000) as u16).to_be_bytes());
    udp.extend_from_slice(&53_u16.to_be_bytes());
    udp.extend_from_slice(&(udp_len as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    let mut payload = index.to_be_bytes().into_iter().cycle();
    udp.resize_with(udp_len, || payload.next().unwrap_or_default());
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&src);
    pseudo.extend_from_slice(&dst);
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&(udp_len as u16).to_be_bytes());
    let checksum = match internet_checksum(&[&pseudo, &udp]) {
        0 => 0xffff,
        sum => sum,
    };
    udp[6..8].copy_from_slice(&checksum.to_be_bytes());
    frame.extend_from_slice(&udp);
    frame
}

/// The link type in the header of a classic pcap file (either byte order).
pub fn pcap_linktype(path: &Path) -> Result<u32> {
    let bytes = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    ensure!(
        bytes.len() >= PCAP_HEADER_LEN,
        "{} is shorter than a pcap header",
        path.display()
    );
    let word = |at: usize| [bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]];
    Ok(match word(0) {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => u32::from_le_bytes(word(20)),
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => u32::from_be_bytes(word(20)),
        magic => bail!(
            "{} is not a classic pcap file (magic {magic:02x?})",
            path.display()
        ),
    })
}

/// Where each block of a pcapng file starts, with its type (little-endian sections only).
pub fn pcapng_blocks(bytes: &[u8]) -> Result<Vec<(usize, u32)>> {
    let mut blocks = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        ensure!(at + 8 <= bytes.len(), "pcapng block at byte {at} is cut");
        let kind = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().expect("4 bytes")) as usize;
        ensure!(
            len >= 12 && len.is_multiple_of(4),
            "pcapng block at byte {at} has length {len}"
        );
        blocks.push((at, kind));
        at += len;
    }
    Ok(blocks)
}

/// pcapng Enhanced Packet Block.
pub const PCAPNG_EPB: u32 = 6;

/// The fields of a Linux cooked header that the replay turns into Ethernet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cooked {
    /// `PACKET_HOST` 0, `PACKET_BROADCAST` 1, ... `PACKET_OUTGOING` 4.
    pub packet_type: u16,
    /// The link-layer address as the capture has it (the sender's MAC on Ethernet devices).
    pub address: Vec<u8>,
    /// The EtherType.
    pub protocol: u16,
    /// What follows the cooked header: the IP packet.
    pub payload: Vec<u8>,
}

impl Cooked {
    /// Parses an `LINKTYPE_LINUX_SLL` (16-byte) or `LINKTYPE_LINUX_SLL2` (20-byte) packet.
    pub fn parse(linktype: u32, data: &[u8]) -> Result<Self> {
        let be16 = |at: usize| u16::from_be_bytes([data[at], data[at + 1]]);
        let (header, packet_type, addr_len, addr_at, protocol) = match linktype {
            LINKTYPE_LINUX_SLL => {
                ensure!(data.len() >= 16, "an SLL packet of {} bytes", data.len());
                (16, be16(0), usize::from(be16(4)), 6, be16(14))
            }
            LINKTYPE_LINUX_SLL2 => {
                ensure!(data.len() >= 20, "an SLL2 packet of {} bytes", data.len());
                (20, u16::from(data[10]), usize::from(data[11]), 12, be16(0))
            }
            other => bail!("link type {other} is not a Linux cooked capture"),
        };
        Ok(Self {
            packet_type,
            address: data[addr_at..addr_at + addr_len.min(8)].to_vec(),
            protocol,
            payload: data[header..].to_vec(),
        })
    }
}

/// Turns off segmentation and receive offloads on the pod link, so that tcpdump in the pod
/// records the frames the wire carries (not 64 KB super-packets that no tunnel could carry).
pub fn wire_sized_frames(world: &World) -> Result<()> {
    for (ns, dev) in [(&world.pod, POD_IF), (&world.node, NODE_POD_IF)] {
        ns.run(
            "ethtool",
            ["-K", dev, "tso", "off", "gso", "off", "gro", "off"],
        )
        .with_context(|| format!("turning offloads off on {dev} in {}", ns.name()))?;
    }
    Ok(())
}

/// What [`make_traffic`] makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Traffic {
    /// `ping -c` from the pod to the node.
    pub pings: usize,
    /// Request/response UDP exchanges (bash's `/dev/udp`) with a listener on the node.
    pub queries: usize,
    /// `iperf3 -n` from the pod to the node, e.g. `1M`.
    pub tcp_bytes: &'static str,
    /// `iperf3 -b`: paced, so that several tcpdumps in the pod keep up on two cores.
    pub tcp_rate: &'static str,
}

impl Default for Traffic {
    fn default() -> Self {
        Self {
            pings: 10,
            queries: 5,
            tcp_bytes: "1M",
            tcp_rate: "100M",
        }
    }
}

/// UDP port of the node's DNS-like listener.
pub const QUERY_PORT: u16 = 53;

/// Real traffic between the pod and the node, made by real tools: `ping`, DNS-like UDP queries
/// from bash answered by a listener on the node, and an iperf3 TCP transfer. Turns offloads off
/// first ([`wire_sized_frames`]).
pub fn make_traffic(world: &World, traffic: Traffic) -> Result<()> {
    wire_sized_frames(world)?;
    world
        .pod
        .run(
            "ping",
            [
                "-c",
                &traffic.pings.to_string(),
                "-i",
                "0.01",
                "-q",
                NODE_POD_IP,
            ],
        )
        .context("pinging the node from the pod")?;
    answer_queries(world, traffic.queries)?;
    iperf::transfer(
        &world.node,
        NODE_POD_IP,
        &world.pod,
        &["-n", traffic.tcp_bytes, "-b", traffic.tcp_rate],
    )
    .context("the iperf3 transfer from the pod to the node")?;
    Ok(())
}

/// `queries` exchanges: bash in the pod writes a query to a connected UDP socket, and `head`
/// reads the answer that a listener on the node sends back (bash's own `read` takes a byte at a
/// time, which loses the rest of a datagram).
fn answer_queries(world: &World, queries: usize) -> Result<()> {
    let addr = SocketAddr::from((
        NODE_POD_IP.parse::<Ipv4Addr>().expect("constant"),
        QUERY_PORT,
    ));
    let socket = world.node.udp_socket(addr)?;
    socket.set_read_timeout(Some(Duration::from_millis(100)))?;
    let done = Arc::new(AtomicBool::new(false));
    let listener = thread::spawn({
        let done = Arc::clone(&done);
        move || -> Result<usize> {
            let mut answered = 0;
            let mut buf = [0_u8; 1500];
            while !done.load(Ordering::Relaxed) {
                let Ok((len, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let mut answer = buf[..len].to_vec();
                answer.extend_from_slice(b"answer 198.19.0.1\n");
                socket
                    .send_to(&answer, from)
                    .context("answering a query on the node")?;
                answered += 1;
            }
            Ok(answered)
        }
    });
    let mut result = Ok(());
    for i in 0..queries {
        let script = format!(
            "exec 3<>/dev/udp/{NODE_POD_IP}/{QUERY_PORT} && echo 'query {i} example.test A' >&3 \
             && timeout 2 head -n 1 <&3"
        );
        if let Err(err) = world.pod.run("bash", ["-c", script.as_str()]) {
            result = Err(err).context(format!("DNS-like query {i} from the pod"));
            break;
        }
    }
    done.store(true, Ordering::Relaxed);
    let answered = listener
        .join()
        .map_err(|_| anyhow::anyhow!("the query listener panicked"))??;
    result?;
    ensure!(
        answered == queries,
        "the node answered {answered} of {queries} queries"
    );
    Ok(())
}

/// Starts `tcpdump ARGS -w PATH` (plus `-U --immediate-mode -n -B 65536 -Z root`) in `ns` and
/// waits until it listens. Stop it with [`stop_tcpdump`].
pub fn start_tcpdump(ns: &Netns, args: &[&str], path: &Path) -> Result<Background> {
    let mut argv: Vec<String> = args.iter().map(ToString::to_string).collect();
    argv.extend(
        [
            "-U",
            "--immediate-mode",
            "-n",
            "-B",
            "65536",
            "-Z",
            "root",
            "-w",
        ]
        .map(str::to_owned),
    );
    argv.push(path.to_string_lossy().into_owned());
    let label = format!("tcpdump {} {}", ns.name(), args.join(" "));
    let mut process = ns.spawn(&label, "tcpdump", &argv)?;
    process
        .wait_for_stderr("\"listening on\"", Duration::from_secs(10), |l| {
            l.contains("listening on")
        })
        .with_context(|| format!("starting {label}"))?;
    Ok(process)
}

/// Stops a tcpdump of [`start_tcpdump`] and fails unless it exited cleanly having dropped
/// nothing.
pub fn stop_tcpdump(process: &mut Background) -> Result<()> {
    let status = process.stop()?;
    ensure!(
        status.success(),
        "`{}` exited with {status}",
        process.description()
    );
    let lines = process.stderr_lines();
    if let Some(line) = lines
        .iter()
        .find(|l| l.ends_with("packets dropped by kernel") && !l.starts_with("0 "))
    {
        bail!(
            "`{}` lost packets ({line}): the capture cannot judge the replay",
            process.description()
        );
    }
    Ok(())
}

/// How `mirror replay` ended.
#[derive(Debug)]
pub struct ReplayRun {
    pub command: String,
    pub status: ExitStatus,
    pub stderr: Vec<String>,
    pub stdout: Vec<String>,
    /// Wall time from start to exit.
    pub wall: Duration,
}

/// What the replay's summary line says: `mirror: replayed NAME: N packets, B bytes in S s (...)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReplaySummary {
    pub packets: u64,
    pub bytes: u64,
    pub seconds: f64,
}

impl ReplaySummary {
    /// Parses the summary line.
    pub fn parse(line: &str) -> Option<Self> {
        let rest = line.strip_prefix("mirror: replayed ")?;
        // The name may hold ": ", the counts never do: take the last one.
        let (_, counts) = rest.rsplit_once(": ")?;
        let mut words = counts.split_whitespace();
        let packets = words.next()?.parse().ok()?;
        words.next()?; // packets,
        let bytes = words.next()?.parse().ok()?;
        let (bytes_word, in_word) = (words.next()?, words.next()?);
        if bytes_word != "bytes" || in_word != "in" {
            return None;
        }
        let seconds = words.next()?.parse().ok()?;
        Some(Self {
            packets,
            bytes,
            seconds,
        })
    }
}

impl ReplayRun {
    /// The summary line, parsed, if there is one.
    pub fn summary(&self) -> Option<ReplaySummary> {
        self.stderr.iter().find_map(|l| ReplaySummary::parse(l))
    }

    /// Fails unless the replay exited 0.
    pub fn check_success(&self) -> Result<()> {
        ensure!(
            self.status.success(),
            "`{}` exited with {}; stderr: {:?}",
            self.command,
            self.status,
            self.stderr
        );
        Ok(())
    }
}

/// Runs `BIN replay ARGS` in `ns` to completion (killed after `timeout`).
pub fn replay_with(ns: &Netns, bin: &Path, args: &[&str], timeout: Duration) -> Result<ReplayRun> {
    let mut argv = vec!["replay"];
    argv.extend_from_slice(args);
    let mut process = ns.spawn("mirror replay", &bin.to_string_lossy(), &argv)?;
    let command = format!("mirror {}", argv.join(" "));
    let start = Instant::now();
    let status = process
        .wait(timeout)
        .with_context(|| format!("waiting for `{command}`"))?;
    Ok(ReplayRun {
        command,
        status,
        wall: start.elapsed(),
        stderr: process.stderr_lines(),
        stdout: process.stdout_lines(),
    })
}

/// [`replay_with`] the `mirror` binary under test.
pub fn replay(ns: &Netns, args: &[&str], timeout: Duration) -> Result<ReplayRun> {
    replay_with(ns, &existing_mirror_bin()?, args, timeout)
}

/// A running `mirror receive` writing into its own scratch directory.
pub struct Receiver {
    process: Background,
    path: PathBuf,
    count: Option<usize>,
    _dir: ScratchDir,
}

/// The line `mirror receive` prints once it is bound.
pub const RECEIVING_PREFIX: &str = "mirror: receiving";

impl Receiver {
    /// Starts `mirror receive --tunnel TUNNEL --listen LISTEN --write FILE [--count N] EXTRA` in
    /// `ns` and waits until it receives.
    pub fn start(
        ns: &Netns,
        tunnel: &str,
        listen: &str,
        count: Option<usize>,
        extra: &[&str],
    ) -> Result<Self> {
        Self::start_writing(
            ns,
            tunnel,
            listen,
            count,
            extra,
            &format!("received-{tunnel}.pcap"),
        )
    }

    /// [`Receiver::start`] writing a file of this name (`.pcapng`: a pcapng file).
    pub fn start_writing(
        ns: &Netns,
        tunnel: &str,
        listen: &str,
        count: Option<usize>,
        extra: &[&str],
        file_name: &str,
    ) -> Result<Self> {
        let dir = ScratchDir::new()?;
        let path = dir.join(file_name);
        let mut argv: Vec<String> = [
            "receive",
            "--tunnel",
            tunnel,
            "--listen",
            listen,
            "--write",
            &path.to_string_lossy(),
        ]
        .map(str::to_owned)
        .to_vec();
        if let Some(count) = count {
            argv.extend(["--count".to_owned(), count.to_string()]);
        }
        argv.extend(extra.iter().map(ToString::to_string));
        let bin = existing_mirror_bin()?;
        let mut process = ns.spawn("mirror receive", &bin.to_string_lossy(), &argv)?;
        process
            .wait_for_stderr("its receiving line", Duration::from_secs(10), |l| {
                l.starts_with(RECEIVING_PREFIX)
            })
            .with_context(|| format!("starting mirror receive in {}", ns.name()))?;
        Ok(Self {
            process,
            path,
            count,
            _dir: dir,
        })
    }

    /// The pcap file it writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The receive buffer of its socket, in bytes as the kernel reserves them (twice what was
    /// asked for): `ss`'s `rb` of the socket its process holds, in the namespace `ns`.
    pub fn receive_buffer(&self, ns: &Netns) -> Result<u64> {
        let out = ns.run("ss", ["-Hauwmp"])?;
        let owner = format!("pid={},", self.process.pid());
        let mut lines = out.lines();
        while let Some(line) = lines.next() {
            if !line.contains(&owner) {
                continue;
            }
            let rb = lines
                .next()
                .and_then(|l| l.split_once("rb")?.1.split(',').next()?.parse().ok());
            return rb
                .with_context(|| format!("no skmem rb under the receiver's socket in:\n{out}"));
        }
        bail!(
            "no socket of the receiver (pid {}) in:\n{out}",
            self.process.pid()
        )
    }

    /// Complete frames in the file so far (it is flushed whenever the receiver is idle).
    pub fn frames_so_far(&self) -> usize {
        fs::read(&self.path).map_or(0, |bytes| count_complete_records(&bytes))
    }

    /// Waits until `count` frames are in the file or `timeout` passes; returns the count.
    pub fn wait_for_frames(&self, count: usize, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let now = self.frames_so_far();
            if now >= count || Instant::now() >= deadline {
                return now;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// With `--count`: waits up to `timeout` for the receiver to exit on its own, and stops it
    /// (SIGINT) if it does not, so that what arrived can still be compared. Without: stops it
    /// at once. Fails unless it exits 0; returns the frames with their times.
    pub fn finish(&mut self, timeout: Duration) -> Result<Vec<Record>> {
        self.stop(timeout)?;
        read_records(&self.path)
    }

    /// [`Receiver::finish`] without reading the file (a pcapng file, for tshark).
    pub fn stop(&mut self, timeout: Duration) -> Result<()> {
        let exited = match self.count {
            Some(_) => self.process.wait_timeout(timeout)?,
            None => None,
        };
        let status = match exited {
            Some(status) => status,
            None => self.process.stop()?,
        };
        ensure!(
            status.success(),
            "`{}` exited with {status}; stderr: {:?}",
            self.process.description(),
            self.process.stderr_lines()
        );
        Ok(())
    }

    /// What it printed on stderr.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.process.stderr_lines()
    }
}

/// Complete records of a classic little- or big-endian pcap file that may be cut short.
fn count_complete_records(bytes: &[u8]) -> usize {
    if bytes.len() < PCAP_HEADER_LEN {
        return 0;
    }
    let little = matches!(
        bytes[..4],
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1]
    );
    let mut at = PCAP_HEADER_LEN;
    let mut count = 0;
    while at + RECORD_HEADER_LEN <= bytes.len() {
        let field: [u8; 4] = bytes[at + 8..at + 12].try_into().expect("4 bytes");
        let len = if little {
            u32::from_le_bytes(field)
        } else {
            u32::from_be_bytes(field)
        } as usize;
        at += RECORD_HEADER_LEN + len;
        if at > bytes.len() {
            break;
        }
        count += 1;
    }
    count
}

/// `editcap -F pcapng FROM TO`: the same packets in a pcapng file.
pub fn to_pcapng(from: &Path, to: &Path) -> Result<()> {
    let mut cmd = std::process::Command::new("editcap");
    cmd.args(["-F", "pcapng"]).arg(from).arg(to);
    run(&mut cmd).map(drop).context("converting to pcapng")
}

/// The frames of `records`.
pub fn frames(records: &[Record]) -> Vec<Vec<u8>> {
    records.iter().map(|r| r.data.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_frames_have_the_length_asked_and_valid_checksums() {
        for len in [42, 60, 64, 1514] {
            let frame = udp_frame(7, len);
            assert_eq!(frame.len(), len);
            assert_eq!(internet_checksum(&[&frame[14..34]]), 0);
            let udp = &frame[34..];
            let mut pseudo = frame[26..34].to_vec();
            pseudo.extend_from_slice(&[0, 17]);
            pseudo.extend_from_slice(&(udp.len() as u16).to_be_bytes());
            assert_eq!(internet_checksum(&[&pseudo, udp]), 0, "len {len}");
        }
        assert_ne!(udp_frame(1, 64), udp_frame(2, 64));
    }

    #[test]
    fn written_pcaps_read_back() {
        let a = udp_frame(1, 60);
        let b = udp_frame(2, 100);
        let t = Duration::from_micros(1_700_000_000_123_456);
        let written = write_pcap(
            LINKTYPE_ETHERNET,
            &[(t, &a), (t + Duration::from_millis(5), &b)],
        );
        assert_eq!(written.offsets, [24, 24 + 16 + 60]);
        assert_eq!(count_complete_records(&written.bytes), 2);
        assert_eq!(
            count_complete_records(&written.bytes[..written.bytes.len() - 1]),
            1
        );
        let dir = ScratchDir::new().unwrap();
        let path = dir.join("two.pcap");
        fs::write(&path, &written.bytes).unwrap();
        assert_eq!(pcap_linktype(&path).unwrap(), LINKTYPE_ETHERNET);
        let records = read_records(&path).unwrap();
        assert_eq!(frames(&records), [a, b]);
        assert_eq!(records[0].timestamp, t);
    }

    #[test]
    fn parses_cooked_headers() {
        let mac = [2, 0, 0, 0, 0, 9];
        let mut sll = vec![0, 4, 0, 1, 0, 6];
        sll.extend_from_slice(&mac);
        sll.extend_from_slice(&[0, 0, 0x08, 0x00, 0x45]);
        let cooked = Cooked::parse(LINKTYPE_LINUX_SLL, &sll).unwrap();
        assert_eq!(
            cooked,
            Cooked {
                packet_type: 4,
                address: mac.to_vec(),
                protocol: 0x0800,
                payload: vec![0x45]
            }
        );
        let mut sll2 = vec![0x08, 0x00, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6];
        sll2.extend_from_slice(&mac);
        sll2.extend_from_slice(&[0, 0, 0x45]);
        let cooked = Cooked::parse(LINKTYPE_LINUX_SLL2, &sll2).unwrap();
        assert_eq!(cooked.packet_type, 0);
        assert_eq!(cooked.address, mac);
        assert_eq!(cooked.payload, [0x45]);
    }

    #[test]
    fn parses_the_summary_line() {
        let line = "mirror: replayed a: b.pcap: 1000 packets, 64000 bytes in 0.50 s (2.00 kpps, 1.02 Mbit/s)";
        assert_eq!(
            ReplaySummary::parse(line),
            Some(ReplaySummary {
                packets: 1000,
                bytes: 64000,
                seconds: 0.5
            })
        );
        assert_eq!(ReplaySummary::parse("mirror: ready"), None);
    }
}
