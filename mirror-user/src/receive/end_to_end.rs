//! `mirror receive` against real sockets on loopback: VXLAN over UDP (any user), GRE and
//! ERSPAN over raw sockets (root only), and a SIGTERM in a child process.
//!
//! Raw sockets of IP protocol 47 see every GRE packet to their address, so each raw test
//! listens on its own 127.0.0.0/8 address, and only one uses ::1.

use std::{
    fs::File,
    io::{BufRead as _, BufReader},
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket},
    os::fd::OwnedFd,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use etherparse::{IpFragOffset, Ipv4Header};
use pcap_file::{DataLink, TsResolution, pcap::PcapReader};
use socket2::SockRef;

use super::{socket::now_ns, *};
use crate::{
    UsageError,
    tunnel::{
        CopyMeta, Encap, Granularity, Tunnel, TunnelKind,
        testing::{inner_frame, packet, tagged_frame},
    },
    wire::vxlan::Vni,
};

/// How long a test waits for its receiver before giving up.
const DEADLINE: Duration = Duration::from_secs(10);

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("mirror-receive-e2e-{}-{name}", std::process::id()))
}

/// Distinct inner frames.
fn frames(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| match i % 2 {
            0 => inner_frame(10 + i * 100),
            _ => tagged_frame(u16::try_from(i).unwrap(), 3, 20 + i),
        })
        .collect()
}

/// Run the receiver of `config` on a thread; return its bound address and the thread.
fn start(config: Config) -> (SocketAddr, thread::JoinHandle<anyhow::Result<Stats>>) {
    let (ready_tx, ready_rx) = mpsc::channel();
    let thread = thread::spawn(move || {
        let start = Instant::now();
        run(&config, &|| start.elapsed() > DEADLINE, |addr| {
            ready_tx.send(addr).unwrap();
        })
    });
    let addr = ready_rx
        .recv_timeout(DEADLINE)
        .expect("the receiver did not start");
    (addr, thread)
}

/// The frames and timestamps of a pcap file, checking its header.
fn read_pcap(path: &Path) -> Vec<(u64, Vec<u8>)> {
    let mut reader = PcapReader::new(File::open(path).unwrap()).unwrap();
    assert_eq!(reader.header().datalink, DataLink::ETHERNET);
    assert_eq!(reader.header().ts_resolution, TsResolution::NanoSecond);
    let mut records = Vec::new();
    while let Some(packet) = reader.next_packet() {
        let packet = packet.unwrap();
        assert_eq!(packet.orig_len as usize, packet.data.len());
        let ns = u64::try_from(packet.timestamp.as_nanos()).unwrap();
        records.push((ns, packet.data.into_owned()));
    }
    records
}

/// The VXLAN header and inner frame: what a VXLAN UDP socket sends.
fn vxlan_payload(encap: &mut Encap, inner: &[u8]) -> Vec<u8> {
    packet(encap, inner, &CopyMeta::default())[20 + 8..].to_vec()
}

fn vni(value: u32) -> Vni {
    Vni::new(value).unwrap()
}

#[test]
fn vxlan_over_udp_on_loopback() {
    let path = scratch("vxlan.pcap");
    let config = Config {
        accept: Accept::Vxlan { vni: Some(vni(77)) },
        listen: "127.0.0.1:0".parse().unwrap(),
        from: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        write: path.clone(),
        count: Some(3),
        session: None,
    };
    let (addr, receiver) = start(config);
    let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let tunnel = |vni_value| Tunnel::Vxlan {
        vni: vni(vni_value),
        dst_port: addr.port(),
    };
    let mut encap = Encap::new(&tunnel(77), local, local).unwrap();
    let mut other_vni = Encap::new(&tunnel(78), local, local).unwrap();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    // 127.0.0.2 is this host too (127/8 is on lo), but not a --from source.
    let stranger = UdpSocket::bind("127.0.0.2:0").unwrap();
    let frames = frames(3);
    let before = now_ns();
    sender
        .send_to(&vxlan_payload(&mut other_vni, &frames[0]), addr)
        .unwrap();
    let mut no_i_flag = vxlan_payload(&mut encap, &frames[0]);
    no_i_flag[0] = 0;
    sender.send_to(&no_i_flag, addr).unwrap();
    stranger
        .send_to(&vxlan_payload(&mut encap, &frames[0]), addr)
        .unwrap();
    for frame in &frames {
        sender
            .send_to(&vxlan_payload(&mut encap, frame), addr)
            .unwrap();
    }
    // Past --count: never read.
    sender
        .send_to(&vxlan_payload(&mut encap, &frames[0]), addr)
        .unwrap();
    let stats = receiver.join().unwrap().unwrap();
    let after = now_ns();
    assert_eq!(stats.received, 6, "{stats}");
    assert_eq!(stats.written, 3);
    assert_eq!(stats.dropped(Reject::WrongVni), 1);
    assert_eq!(stats.dropped(Reject::BadHeader), 1);
    assert_eq!(stats.dropped(Reject::FilteredSource), 1);
    assert_eq!(stats.dropped_total(), 3);
    let records = read_pcap(&path);
    assert_eq!(records.len(), 3);
    let mut last = before;
    for ((ns, data), frame) in records.iter().zip(&frames) {
        assert_eq!(data, frame);
        assert!((last..=after).contains(ns), "{last} <= {ns} <= {after}");
        last = *ns;
    }
    std::fs::remove_file(&path).unwrap();
}

/// Whether raw sockets are available; prints why a test is skipped if not.
fn root(test: &str) -> bool {
    // SAFETY: plain system call.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        eprintln!(
            "{test}: skipped: raw GRE sockets need root (CAP_NET_RAW), and this runs as uid \
             {euid}, not root"
        );
    }
    euid == 0
}

/// A raw socket that sends whole IPv4 packets (IPPROTO_RAW implies IP_HDRINCL), or, for
/// IPv6, GRE payloads that the kernel puts an IPv6 header on.
struct RawSender {
    fd: OwnedFd,
}

impl RawSender {
    fn new(v6: bool) -> Self {
        let (domain, protocol) = if v6 {
            (libc::AF_INET6, 47)
        } else {
            (libc::AF_INET, libc::IPPROTO_RAW)
        };
        Self {
            fd: crate::sockopt::socket(domain, libc::SOCK_RAW, protocol).unwrap(),
        }
    }

    fn send(&self, bytes: &[u8], to: IpAddr) {
        let sent = SockRef::from(&self.fd).send_to(bytes, &SocketAddr::new(to, 0).into());
        assert_eq!(sent.unwrap(), bytes.len());
    }
}

/// `packet` (a whole IPv4 packet without options) as two fragments, cut at 8 * `units`
/// bytes into its payload.
fn fragments(packet: &[u8], units: u16) -> [Vec<u8>; 2] {
    let (header, _) = Ipv4Header::from_slice(packet).unwrap();
    let payload = &packet[20..];
    let cut = usize::from(units) * 8;
    let piece = |range: &[u8], offset: u16, more: bool| {
        let mut h = header.clone();
        h.identification = 0x4242;
        h.dont_fragment = false;
        h.more_fragments = more;
        h.fragment_offset = IpFragOffset::try_new(offset).unwrap();
        h.set_payload_len(range.len()).unwrap();
        h.header_checksum = h.calc_header_checksum();
        let mut bytes = h.to_bytes().to_vec();
        bytes.extend_from_slice(range);
        bytes
    };
    [
        piece(&payload[..cut], 0, true),
        piece(&payload[cut..], units, false),
    ]
}

#[test]
fn gre_over_a_raw_ipv4_socket_with_a_fragmented_packet() {
    if !root("gre_over_a_raw_ipv4_socket_with_a_fragmented_packet") {
        return;
    }
    let listen = Ipv4Addr::new(127, 0, 0, 11);
    let path = scratch("gre4.pcap");
    let config = Config {
        accept: Accept::Gre { key: Some(7) },
        listen: SocketAddr::new(listen.into(), 0),
        from: Vec::new(),
        write: path.clone(),
        count: Some(3),
        session: None,
    };
    let (addr, receiver) = start(config);
    assert_eq!(addr.ip(), IpAddr::V4(listen));
    let (src, dst) = (IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V4(listen));
    let gre = |key| Tunnel::Gre {
        key: Some(key),
        sequence: true,
    };
    let mut encap = Encap::new(&gre(7), src, dst).unwrap();
    let mut wrong_key = Encap::new(&gre(8), src, dst).unwrap();
    let mut erspan1 = Encap::new(&Tunnel::Erspan1, src, dst).unwrap();
    let meta = CopyMeta::default();
    let sender = RawSender::new(false);
    let mut frames = frames(3);
    frames[1] = inner_frame(3000);
    let before = now_ns();
    sender.send(&packet(&mut wrong_key, &frames[0], &meta), dst);
    sender.send(&packet(&mut erspan1, &frames[0], &meta), dst);
    sender.send(&packet(&mut encap, &frames[0], &meta), dst);
    // The kernel reassembles the two fragments before the raw socket sees them.
    let whole = packet(&mut encap, &frames[1], &meta);
    for fragment in fragments(&whole, 100) {
        sender.send(&fragment, dst);
    }
    sender.send(&packet(&mut encap, &frames[2], &meta), dst);
    let stats = receiver.join().unwrap().unwrap();
    let after = now_ns();
    assert_eq!(stats.received, 5, "{stats}");
    assert_eq!(stats.written, 3);
    assert_eq!(stats.dropped(Reject::WrongKey), 1);
    assert_eq!(stats.dropped(Reject::WrongProtocol), 1);
    let records = read_pcap(&path);
    assert_eq!(records.len(), 3);
    for ((ns, data), frame) in records.iter().zip(&frames) {
        assert_eq!(data, frame);
        assert!((before..=after).contains(ns));
    }
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn erspan3_header_times_over_a_raw_ipv4_socket() {
    if !root("erspan3_header_times_over_a_raw_ipv4_socket") {
        return;
    }
    let listen = Ipv4Addr::new(127, 0, 0, 12);
    let path = scratch("erspan3.pcap");
    let config = Config {
        accept: Accept::Erspan3,
        listen: SocketAddr::new(listen.into(), 0),
        from: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        write: path.clone(),
        count: Some(2),
        session: None,
    };
    let (_, receiver) = start(config);
    let (src, dst) = (IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V4(listen));
    let erspan3 = |granularity| Tunnel::Erspan3 {
        session: 5,
        hw_id: 1,
        sgt: 2,
        granularity,
    };
    let mut ieee1588 = Encap::new(&erspan3(Granularity::Ieee1588), src, dst).unwrap();
    let mut micros100 = Encap::new(&erspan3(Granularity::Micros100), src, dst).unwrap();
    let sender = RawSender::new(false);
    let frames = frames(2);
    // 2023-11-14T22:13:20.123456789Z: absolute with the platform subheader.
    let long_ago = 1_700_000_000_123_456_789;
    let meta = |timestamp_ns| CopyMeta {
        egress: true,
        timestamp_ns,
        truncated: false,
    };
    sender.send(&packet(&mut ieee1588, &frames[0], &meta(long_ago)), dst);
    // A minute ago at 100 µs: only the lower 32 bits travel, rebuilt from the receive time.
    let minute_ago = now_ns() - 60_000_000_000;
    sender.send(&packet(&mut micros100, &frames[1], &meta(minute_ago)), dst);
    let stats = receiver.join().unwrap().unwrap();
    assert_eq!((stats.received, stats.written), (2, 2), "{stats}");
    let records = read_pcap(&path);
    assert_eq!(records[0], (long_ago, frames[0].clone()));
    assert_eq!(
        records[1],
        (minute_ago / 100_000 * 100_000, frames[1].clone())
    );
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn erspan2_over_a_raw_ipv6_socket() {
    if !root("erspan2_over_a_raw_ipv6_socket") {
        return;
    }
    let path = scratch("erspan2-v6.pcap");
    let config = Config {
        accept: Accept::Erspan2,
        listen: SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 0),
        from: vec![IpAddr::V6(Ipv6Addr::LOCALHOST)],
        write: path.clone(),
        count: Some(2),
        session: None,
    };
    let (_, receiver) = start(config);
    let local = IpAddr::V6(Ipv6Addr::LOCALHOST);
    let tunnel = Tunnel::Erspan2 {
        session: 9,
        index: 10,
    };
    let mut encap = Encap::new(&tunnel, local, local).unwrap();
    let sender = RawSender::new(true);
    let frames = frames(2);
    for frame in &frames {
        // The kernel writes the IPv6 header: send what follows it.
        let whole = packet(&mut encap, frame, &CopyMeta::default());
        sender.send(&whole[40..], local);
    }
    let stats = receiver.join().unwrap().unwrap();
    assert_eq!((stats.written, stats.dropped_total()), (2, 0), "{stats}");
    let records = read_pcap(&path);
    let data: Vec<Vec<u8>> = records.into_iter().map(|(_, data)| data).collect();
    assert_eq!(data, frames);
    std::fs::remove_file(&path).unwrap();
}

/// Set in the environment of the child process of [`sigterm_ends_cleanly`]: the pcap path.
const CHILD_ENV: &str = "MIRROR_RECEIVE_SIGTERM_CHILD";

#[test]
#[ignore = "the child half of sigterm_ends_cleanly, which runs it in its own process"]
fn sigterm_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    // The parent reads the "receiving" line from the log, as the binary writes it.
    crate::log::init(crate::log::LogFormat::Text).unwrap();
    let args = ReceiveArgs {
        tunnel: TunnelKind::Vxlan,
        listen: "127.0.0.1:0".into(),
        vxlan_port: None,
        from: Vec::new(),
        write: path.into(),
        count: None,
        vni: None,
        gre_key: None,
        session: None,
    };
    receive(&args).unwrap();
}

#[test]
fn sigterm_ends_cleanly() {
    let path = scratch("sigterm.pcap");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "receive::end_to_end::sigterm_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let addr: SocketAddr = loop {
        line.clear();
        assert_ne!(stderr.read_line(&mut line).unwrap(), 0, "child ended early");
        if let Some(rest) = line.strip_prefix("mirror: receiving vxlan on ") {
            break rest.split(',').next().unwrap().parse().unwrap();
        }
    };
    let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let tunnel = Tunnel::Vxlan {
        vni: vni(1),
        dst_port: addr.port(),
    };
    let mut encap = Encap::new(&tunnel, local, local).unwrap();
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    let frames = frames(2);
    for frame in &frames {
        sender
            .send_to(&vxlan_payload(&mut encap, frame), addr)
            .unwrap();
    }
    sender.send_to(&[0; 4], addr).unwrap();
    // Written once idle: wait for both frames before the signal.
    let start = Instant::now();
    while std::fs::metadata(&path).map_or(0, |m| m.len()) < 24 + 2 * 16 {
        assert!(start.elapsed() < DEADLINE, "frames never reached the file");
        thread::sleep(Duration::from_millis(20));
    }
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: plain system call, to our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = child.wait().unwrap();
    let rest: Vec<String> = stderr.lines().map(Result::unwrap).collect();
    assert!(status.success(), "{status}: {rest:?}");
    assert!(
        rest.iter()
            .any(|l| l == "mirror: received 3 packets, wrote 2 frames, dropped 1 (bad header 1)"),
        "{rest:?}"
    );
    let data: Vec<Vec<u8>> = read_pcap(&path).into_iter().map(|(_, d)| d).collect();
    assert_eq!(data, frames);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn bad_input_is_a_usage_error() {
    let args = |tunnel, listen: &str, write: &str| ReceiveArgs {
        tunnel,
        listen: listen.into(),
        vxlan_port: None,
        from: Vec::new(),
        write: write.into(),
        count: Some(1),
        vni: None,
        gre_key: None,
        session: None,
    };
    let scratch_file = scratch("never.pcap");
    let write = scratch_file.to_str().unwrap();
    let cases = [
        (
            args(TunnelKind::Vxlan, "nowhere", write),
            "--listen nowhere",
        ),
        (
            ReceiveArgs {
                vni: Some(1 << 24),
                ..args(TunnelKind::Vxlan, "127.0.0.1:0", write)
            },
            "--vni 16777216",
        ),
        (
            ReceiveArgs {
                vni: Some(1),
                ..args(TunnelKind::Gre, "127.0.0.1", write)
            },
            "--vni does not apply to --tunnel gre",
        ),
        (
            args(TunnelKind::Vxlan, "192.0.2.1:0", write),
            "--listen 192.0.2.1: not an address of this host",
        ),
        (
            args(TunnelKind::Vxlan, "127.0.0.1:0", "/nonexistent-dir/x.pcap"),
            "--write /nonexistent-dir/x.pcap",
        ),
        (
            args(
                TunnelKind::Vxlan,
                "127.0.0.1:0",
                "/nonexistent-dir/x.pcapng",
            ),
            "--write /nonexistent-dir/x.pcapng",
        ),
        (
            ReceiveArgs {
                session: Some(3),
                ..args(TunnelKind::Erspan1, "127.0.0.1", write)
            },
            "--session does not apply to --tunnel erspan1",
        ),
    ];
    for (args, message) in cases {
        let err = receive(&args).unwrap_err();
        assert!(err.downcast_ref::<UsageError>().is_some(), "{err:#}");
        assert!(err.to_string().starts_with(message), "{err}");
    }
    assert!(!scratch_file.exists(), "no file is created on bad input");
}
