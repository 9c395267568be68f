//! The kernel's `--filter` against libpcap's: each expression is compiled by libpcap, translated
//! and loaded as the agent does, then run with `BPF_PROG_TEST_RUN` on thousands of frames; it
//! must select exactly the frames `pcap_offline_filter` selects. Needs root (`BPF_PROG_LOAD`).

use mirror_common::Direction;

use super::filter_prog::TestRun;
use crate::filter::Filter;

/// Expressions of every kind users write (hosts, nets, ports, ranges, VLANs, IPv6, TCP flags,
/// lengths, MACs, negation and nesting).
const EXPRESSIONS: &[&str] = &[
    "ip",
    "ip6",
    "arp",
    "tcp",
    "udp",
    "icmp",
    "icmp6",
    "host 198.18.0.1",
    "src host 198.18.0.2 and dst host 198.18.0.1",
    "net 198.18.0.0/30",
    "not net 10.0.0.0/8",
    "host fd00:198:18::1",
    "ip6 net fd00:198:18::/64",
    "port 53",
    "tcp port 443",
    "udp dst port 53",
    "portrange 1000-1050",
    "tcp src portrange 1-1024",
    "vlan",
    "vlan 100",
    "vlan and tcp port 80",
    "tcp[tcpflags] & tcp-syn != 0",
    "tcp[tcpflags] & (tcp-syn|tcp-fin) != 0 and not tcp[tcpflags] & tcp-ack != 0",
    "len > 100",
    "len <= 64",
    "greater 200",
    "ether host 02:00:00:00:00:01",
    "ether src 02:00:00:00:00:02 or ether broadcast",
    "ip[6:2] & 0x1fff != 0",
    "ip[8] < 32",
    "icmp[icmptype] = icmp-echo",
    "(tcp or udp) and (port 53 or port 80) and not host 10.1.2.3",
    "tcp and (host 198.18.0.1 or host 198.18.0.3) and dst port 80",
    "udp[8:4] = 0x01020304",
    "ip proto 47 or ip6 proto 17",
    "ip and ip[0] & 0xf > 5",
    "tcp port 80 and (((ip[2:2] - ((ip[0]&0xf)<<2)) - ((tcp[12]&0xf0)>>2)) != 0)",
    "ether[12:2] = 0x0806 or ether[0] & 1 = 1",
];

/// A small deterministic generator (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len() as u64) as usize]
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

const MACS: [[u8; 6]; 4] = [
    [2, 0, 0, 0, 0, 1],
    [2, 0, 0, 0, 0, 2],
    [0xff; 6],
    [0x33, 0x33, 0, 0, 0, 1],
];
const V4: [[u8; 4]; 5] = [
    [198, 18, 0, 1],
    [198, 18, 0, 2],
    [198, 18, 0, 3],
    [10, 1, 2, 3],
    [192, 0, 2, 77],
];
const PORTS: [u16; 8] = [53, 80, 443, 1000, 1025, 1050, 8080, 40000];

fn v6(rng: &mut Rng) -> [u8; 16] {
    let mut a = [0xfd, 0, 0x01, 0x98, 0, 0x18, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    a[15] = rng.pick(&[1, 2, 9]);
    if rng.below(4) == 0 {
        a[0] = 0x20;
    }
    a
}

/// An L4 header and payload for `proto`.
fn l4(rng: &mut Rng, proto: u8) -> Vec<u8> {
    let mut out = Vec::new();
    match proto {
        6 => {
            out.extend(rng.pick(&PORTS).to_be_bytes());
            out.extend(rng.pick(&PORTS).to_be_bytes());
            out.extend(rng.bytes(8));
            let words = rng.pick(&[5_u8, 5, 8]);
            out.push(words << 4);
            out.push(rng.next() as u8 & 0x3f);
            out.extend(rng.bytes(6 + 4 * usize::from(words - 5)));
        }
        17 => {
            out.extend(rng.pick(&PORTS).to_be_bytes());
            out.extend(rng.pick(&PORTS).to_be_bytes());
            out.extend(rng.bytes(4));
            if rng.below(3) == 0 {
                out.extend([1, 2, 3, 4]);
            }
        }
        1 | 58 => {
            out.push(rng.pick(&[0, 8, 3, 128, 129]));
            out.extend(rng.bytes(7));
        }
        _ => {}
    }
    let payload = rng.below(200) as usize;
    out.extend(rng.bytes(payload));
    out
}

fn frame(rng: &mut Rng) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend(rng.pick(&MACS));
    f.extend(rng.pick(&MACS));
    match rng.below(6) {
        0 => {
            f.extend([0x81, 0x00]);
            f.extend((rng.pick(&[100_u16, 200, 4095]) | (rng.below(8) as u16) << 13).to_be_bytes());
        }
        1 => {
            f.extend([0x88, 0xa8, 0, 10, 0x81, 0x00, 0, 100]);
        }
        _ => {}
    }
    let proto = rng.pick(&[6_u8, 6, 17, 17, 1, 47, 58, 132]);
    match rng.below(10) {
        0..=4 => {
            f.extend([0x08, 0x00]);
            let options = if rng.below(5) == 0 { 4 } else { 0 };
            let body = l4(rng, proto);
            let total = (20 + options + body.len()) as u16;
            f.push(0x45 + (options / 4) as u8);
            f.push(rng.next() as u8);
            f.extend(total.to_be_bytes());
            f.extend(rng.bytes(2));
            // Sometimes a fragment: MF set or an offset.
            let frag: u16 = match rng.below(6) {
                0 => 0x2000,
                1 => 0x0010 | (rng.below(2) as u16 * 0x2000),
                _ => 0x4000,
            };
            f.extend(frag.to_be_bytes());
            f.push(rng.pick(&[1_u8, 16, 64, 255]));
            f.push(if proto == 58 { 1 } else { proto });
            f.extend([0, 0]);
            f.extend(rng.pick(&V4));
            f.extend(rng.pick(&V4));
            f.extend(rng.bytes(options));
            f.extend(body);
        }
        5..=7 => {
            f.extend([0x86, 0xdd]);
            let mut next = if proto == 1 { 58 } else { proto };
            let mut ext = Vec::new();
            if rng.below(4) == 0 {
                // A fragment header in front of the upper layer.
                ext.extend([next, 0]);
                ext.extend(rng.bytes(6));
                next = 44;
            }
            let body = l4(rng, if proto == 1 { 58 } else { proto });
            f.extend([0x60, 0, 0, 0]);
            f.extend(((ext.len() + body.len()) as u16).to_be_bytes());
            f.push(next);
            f.push(64);
            f.extend(v6(rng));
            f.extend(v6(rng));
            f.extend(ext);
            f.extend(body);
        }
        8 => {
            f.extend([0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
            f.extend(rng.pick(&MACS));
            f.extend(rng.pick(&V4));
            f.extend([0; 6]);
            f.extend(rng.pick(&V4));
        }
        _ => {
            f.extend(rng.bytes(2));
            let n = rng.below(80) as usize;
            f.extend(rng.bytes(n));
        }
    }
    // Truncated frames, as a snap length or a broken sender leaves them. `BPF_PROG_TEST_RUN`
    // refuses IPv4 and IPv6 frames shorter than their fixed network header.
    if rng.below(8) == 0 {
        let least = 14
            + match f[12..14] {
                [0x08, 0x00] => 20,
                [0x86, 0xdd] => 40,
                _ => 0,
            };
        if f.len() > least {
            let keep = least + rng.below((f.len() - least) as u64) as usize;
            f.truncate(keep);
        }
    }
    f
}

fn privileged(test: &str) -> bool {
    // SAFETY: no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        println!("{test}: skipped: loading BPF programs (BPF_PROG_LOAD) needs root");
    }
    root
}

#[test]
fn kernel_filter_selects_what_libpcap_selects() {
    if !privileged("kernel_filter_selects_what_libpcap_selects") {
        return;
    }
    let mut rng = Rng(0x6d69_7272_6f72_2121);
    let frames: Vec<Vec<u8>> = (0..3000).map(|_| frame(&mut rng)).collect();
    let mut total_kept = 0;
    for (n, expression) in EXPRESSIONS.iter().enumerate() {
        let filter = Filter::compile(expression).unwrap().unwrap();
        // Both directions' programs differ only in their slot; alternate between them.
        let direction = if n % 2 == 0 {
            Direction::Ingress
        } else {
            Direction::Egress
        };
        let loaded =
            TestRun::load(&filter, direction).unwrap_or_else(|e| panic!("{expression}: {e}"));
        let mut kept = 0;
        for frame in &frames {
            let got = loaded
                .keeps(frame)
                .unwrap_or_else(|e| panic!("{expression}: test run on {frame:02x?}: {e}"));
            let want = filter.matches(frame);
            assert_eq!(
                got, want,
                "{expression}: kernel {got} but libpcap {want} for frame {frame:02x?}"
            );
            kept += usize::from(want);
        }
        // Each expression must split the corpus, or the comparison proves little.
        assert!(
            kept > 0 && kept < frames.len(),
            "{expression}: kept {kept} of {}",
            frames.len()
        );
        total_kept += kept;
    }
    println!(
        "{} expressions x {} frames: kernel and libpcap agree ({total_kept} kept in all)",
        EXPRESSIONS.len(),
        frames.len()
    );
}
