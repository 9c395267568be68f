//! `--filter` in the kernel against libpcap: a random pcap-filter expression, built from the
//! input out of the primitives users write, joined with `and`/`or`/`not`, compiled by libpcap,
//! translated and loaded as the agent does, then run with `BPF_PROG_TEST_RUN` on the frames
//! that follow in the input. Every frame must get libpcap's verdict (`pcap_offline_filter`).
//!
//! Input: 1 byte of expression length (primitives), 3 bytes per primitive, then frames, each a
//! 1-byte length then that many bytes. Needs root (`BPF_PROG_LOAD`); as another user, every
//! input is skipped.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mirror::{filter::Filter, kernel::filter_prog::TestRun};
use mirror_common::Direction;
use mirror_fuzz::Bytes;

const HOSTS: [&str; 4] = ["198.18.0.1", "198.18.0.2", "10.1.2.3", "fd00:198:18::1"];
const PORTS: [u16; 6] = [53, 80, 443, 1000, 1025, 8080];

/// One primitive from 3 bytes.
fn primitive(kind: u8, a: u8, b: u8) -> String {
    let host = HOSTS[usize::from(a) % HOSTS.len()];
    let port = PORTS[usize::from(b) % PORTS.len()];
    match kind % 22 {
        0 => "tcp".into(),
        1 => "udp".into(),
        2 => "icmp".into(),
        3 => "ip6".into(),
        4 => "arp".into(),
        5 => "vlan".into(),
        6 => format!("vlan {}", u16::from(a) * 16 + u16::from(b % 16)),
        7 => format!("host {host}"),
        8 => format!("src host {host}"),
        9 => format!("dst net 198.18.{a}.0/{}", 8 + b % 25),
        10 => format!("port {port}"),
        11 => format!("src port {port}"),
        12 => format!("portrange {}-{}", port, u32::from(port) + u32::from(a)),
        13 => format!("len > {}", u16::from(a) * 2),
        14 => format!("len <= {}", u16::from(b) * 2),
        15 => format!("tcp[tcpflags] & {} != 0", a & 0x3f),
        16 => format!("ip[{}] < {b}", a % 20),
        17 => format!("ether host 02:00:00:00:00:{:02x}", a % 4),
        18 => format!("ip proto {}", a % 64),
        19 => format!("udp[{}:2] = {}", a % 12, u16::from(b) << 4),
        20 => format!("ip[6:2] & 0x{:x} != 0", u16::from(a) << 5 | u16::from(b)),
        _ => format!("icmp[icmptype] = {}", a % 16),
    }
}

fn expression(bytes: &mut Bytes<'_>) -> String {
    let count = 1 + usize::from(bytes.u8() % 5);
    let mut expr = String::new();
    for i in 0..count {
        let (kind, a, b) = (bytes.u8(), bytes.u8(), bytes.u8());
        let mut term = primitive(kind, a, b);
        if kind & 0x80 != 0 {
            term = format!("not {term}");
        }
        if i == 0 {
            expr = term;
        } else if kind & 0x40 != 0 {
            expr = format!("({expr}) or {term}");
        } else {
            expr = format!("{expr} and {term}");
        }
    }
    expr
}

/// Whether `BPF_PROG_TEST_RUN` accepts the frame: at least an Ethernet header, and the fixed
/// network header for IPv4 and IPv6.
fn runnable(frame: &[u8]) -> bool {
    let least = match frame.get(12..14) {
        Some([0x08, 0x00]) => 34,
        Some([0x86, 0xdd]) => 54,
        _ => 14,
    };
    frame.len() >= least
}

fuzz_target!(|data: &[u8]| {
    // SAFETY: no preconditions.
    if unsafe { libc_geteuid() } != 0 {
        return;
    }
    let mut bytes = Bytes::new(data);
    let expression = expression(&mut bytes);
    let Ok(Some(filter)) = Filter::compile(&expression) else {
        // Not every combination means something to libpcap (e.g. `vlan` and `ip6` tests).
        return;
    };
    let direction = if data.len().is_multiple_of(2) {
        Direction::Ingress
    } else {
        Direction::Egress
    };
    let run = TestRun::load(&filter, direction)
        .unwrap_or_else(|e| panic!("`{expression}` did not load: {e}"));
    loop {
        let len = usize::from(bytes.u8());
        let frame = bytes.take(len);
        if frame.is_empty() {
            break;
        }
        if !runnable(frame) {
            continue;
        }
        let kernel = run
            .keeps(frame)
            .unwrap_or_else(|e| panic!("`{expression}` on {frame:02x?}: {e}"));
        assert_eq!(
            kernel,
            filter.matches(frame),
            "`{expression}` on {frame:02x?}: the kernel and libpcap disagree"
        );
    }
});

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}
