//! Capture files of the link types that carry IP, written byte by byte for the ones Linux cannot
//! capture, and the IP packet of an NFLOG record; pcapng files whose option lists are written
//! the way some tools write them.
//!
//! Written without the agent's code, from `pcap-linktype(7)` and the pages it points to (BSD
//! loopback, PPP RFC 1661/1662, Cisco HDLC, SLIP, NFLOG, Apple's PKTAP header, Solaris IPNET,
//! Juniper's "MGC" header, radiotap and 802.11) and the pcapng specification. tcpdump must read each file as IP
//! before a test trusts it.

use anyhow::{Result, bail, ensure};

use crate::proc::{command, run_stdout};

/// A link type that carries IPv4, and how to put one packet of it around an IPv4 packet.
#[derive(Clone, Copy, Debug)]
pub struct IpLink {
    pub name: &'static str,
    pub linktype: u32,
    wrap: fn(&[u8]) -> Vec<u8>,
    /// The destination and source MACs the link header gives (zero: none).
    pub macs: ([u8; 6], [u8; 6]),
}

/// No MACs in the link header.
const NO_MACS: ([u8; 6], [u8; 6]) = ([0; 6], [0; 6]);
/// The station and the host behind the access point in the 802.11 frames written here.
const STATION: [u8; 6] = [0x02, 0, 0, 0, 0, 0x5a];
const WIRED_HOST: [u8; 6] = [0x02, 0, 0, 0, 0, 0x11];
const ACCESS_POINT: [u8; 6] = [0x02, 0, 0, 0, 0, 0xa0];

impl IpLink {
    /// The record of this link type holding `ip`.
    pub fn wrap(&self, ip: &[u8]) -> Vec<u8> {
        (self.wrap)(ip)
    }
}

/// `AF_INET`, the same on every system.
const AF_INET: u32 = 2;

/// Every link type the tests write byte by byte.
pub const IP_LINKS: [IpLink; 13] = [
    // DLT_NULL: the address family in the capturing host's byte order, either.
    IpLink {
        name: "null-little-endian",
        linktype: 0,
        macs: NO_MACS,
        wrap: |ip| [&AF_INET.to_le_bytes()[..], ip].concat(),
    },
    IpLink {
        name: "null-big-endian",
        linktype: 0,
        macs: NO_MACS,
        wrap: |ip| [&AF_INET.to_be_bytes()[..], ip].concat(),
    },
    // DLT_LOOP: the same, always network byte order.
    IpLink {
        name: "loop",
        linktype: 108,
        macs: NO_MACS,
        wrap: |ip| [&AF_INET.to_be_bytes()[..], ip].concat(),
    },
    // OpenBSD enc: family, SPI, flags.
    IpLink {
        name: "enc",
        linktype: 109,
        macs: NO_MACS,
        wrap: |ip| [&AF_INET.to_le_bytes()[..], &[0, 0, 0x10, 0], &[0; 4], ip].concat(),
    },
    // pflog: header length 61 (padded to 64), family, action, reason, interface name...
    IpLink {
        name: "pflog",
        linktype: 117,
        macs: NO_MACS,
        wrap: |ip| {
            let mut header = [0_u8; 64];
            header[0] = 61;
            header[1] = 2;
            header[4..8].copy_from_slice(b"em0\0");
            [&header[..], ip].concat()
        },
    },
    // PPP in HDLC-like framing: address 0xFF, control 0x03, protocol 0x0021.
    IpLink {
        name: "ppp",
        linktype: 9,
        macs: NO_MACS,
        wrap: |ip| [&[0xff, 0x03, 0x00, 0x21][..], ip].concat(),
    },
    // PPP_HDLC holding Cisco HDLC: address 0x0F, control 0, EtherType.
    IpLink {
        name: "ppp-hdlc-cisco",
        linktype: 50,
        macs: NO_MACS,
        wrap: |ip| [&[0x0f, 0x00, 0x08, 0x00][..], ip].concat(),
    },
    IpLink {
        name: "cisco-hdlc",
        linktype: 104,
        macs: NO_MACS,
        wrap: |ip| [&[0x0f, 0x00, 0x08, 0x00][..], ip].concat(),
    },
    // SLIP: direction, then the (here empty) compressed header, 16 bytes in all.
    IpLink {
        name: "slip",
        linktype: 8,
        macs: NO_MACS,
        wrap: |ip| [&[1][..], &[0x40], &[0; 14], ip].concat(),
    },
    // PKTAP: pth_length 108, PTH_TYPE_PACKET, pth_dlt DLT_RAW (12), interface name, ...
    IpLink {
        name: "pktap",
        linktype: 258,
        macs: NO_MACS,
        wrap: |ip| {
            let mut header = [0_u8; 108];
            header[..4].copy_from_slice(&108_u32.to_le_bytes());
            header[4..8].copy_from_slice(&1_u32.to_le_bytes());
            header[8..12].copy_from_slice(&12_u32.to_le_bytes());
            header[12..17].copy_from_slice(b"utun0");
            [&header[..], ip].concat()
        },
    },
    // IPNET: version 1, family AF_INET, hook type, packet length, interface and zone IDs.
    IpLink {
        name: "ipnet",
        linktype: 226,
        macs: NO_MACS,
        wrap: |ip| {
            let mut header = [0_u8; 24];
            header[0] = 1;
            header[1] = 2;
            header[4..8].copy_from_slice(&(ip.len() as u32).to_be_bytes());
            header[8..12].copy_from_slice(&3_u32.to_be_bytes());
            [&header[..], ip].concat()
        },
    },
    // Juniper Ethernet with layer 2 stripped: "MGC", flags (incoming, extensions, no L2),
    // extension length and TLVs, a 4-byte cookie, the IP packet.
    IpLink {
        name: "juniper-no-l2",
        linktype: 178,
        macs: NO_MACS,
        wrap: |ip| [&b"MGC"[..], &[0x83], &[0, 3], &[1, 1, 7], &[0; 4], ip].concat(),
    },
    // Radiotap (version, pad, length 17, present: TSFT and Flags; TSFT; Flags: FCS at the end),
    // then an 802.11 QoS data frame from the access point (From DS: destination, BSSID,
    // source), LLC/SNAP with the IPv4 EtherType, the IP packet, the FCS.
    IpLink {
        name: "radiotap-802.11",
        linktype: 127,
        macs: (STATION, WIRED_HOST),
        wrap: |ip| {
            [
                &[0, 0, 17, 0][..],
                &3_u32.to_le_bytes(),
                &[0x11; 8],
                &[0x10],
                &[0x88, 0x02, 0, 0],
                &STATION,
                &ACCESS_POINT,
                &WIRED_HOST,
                &[0x10, 0, 0, 0],
                &[0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00],
                ip,
                &[0xde, 0xad, 0xbe, 0xef],
            ]
            .concat()
        },
    },
];

/// `LINKTYPE_NFLOG`.
pub const LINKTYPE_NFLOG: u32 = 239;
/// NFLOG's TLV holding the packet.
const NFULA_PAYLOAD: u16 = 9;

/// The IP packet of an NFLOG record (family, version, resource ID, then TLVs of a length
/// counting their own 4 bytes, padded to 32 bits, in this little-endian host's byte order).
pub fn nflog_payload(data: &[u8]) -> Result<Vec<u8>> {
    ensure!(data.len() >= 4, "an NFLOG record of {} bytes", data.len());
    let mut at = 4;
    while at + 4 <= data.len() {
        let len = usize::from(u16::from_le_bytes([data[at], data[at + 1]]));
        let kind = u16::from_le_bytes([data[at + 2], data[at + 3]]);
        ensure!(
            len >= 4 && at + len <= data.len(),
            "NFLOG TLV at {at} of length {len} in a record of {}",
            data.len()
        );
        if kind == NFULA_PAYLOAD {
            return Ok(data[at + 4..at + len].to_vec());
        }
        at += len.next_multiple_of(4);
    }
    bail!("an NFLOG record without a payload TLV")
}

/// The lines `tcpdump -nr FILE` prints for the packets of `path`.
pub fn tcpdump_lines(path: &std::path::Path) -> Result<Vec<String>> {
    let path = path.to_string_lossy();
    let text = run_stdout(&mut command("tcpdump", ["-nr", path.as_ref()]))?;
    Ok(text.lines().map(str::to_owned).collect())
}

/// A little-endian pcapng file of Ethernet `frames` (microsecond timestamps, 1 ms apart from
/// `first_us`) whose section header carries options as some writers put them: a hardware
/// description that is not UTF-8, the OS and application of odd lengths, custom options, a code
/// nobody defined, and no `opt_endofopt` at the end of any option list. The pcapng
/// specification asks readers to take all of that (pcap-file refused it: "Invalid option").
pub fn pcapng_with_odd_options(frames: &[Vec<u8>], first_us: u64) -> Vec<u8> {
    let option = |code: u16, value: &[u8]| {
        let mut out = code.to_le_bytes().to_vec();
        out.extend_from_slice(&(value.len() as u16).to_le_bytes());
        out.extend_from_slice(value);
        out.resize(4 + value.len().next_multiple_of(4), 0);
        out
    };
    let block = |kind: u32, body: &[u8]| {
        let len = (12 + body.len().next_multiple_of(4)) as u32;
        let mut out = kind.to_le_bytes().to_vec();
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(body);
        out.resize(len as usize - 4, 0);
        out.extend_from_slice(&len.to_le_bytes());
        out
    };
    let mut shb = 0x1A2B_3C4D_u32.to_le_bytes().to_vec();
    shb.extend_from_slice(&1_u16.to_le_bytes());
    shb.extend_from_slice(&0_u16.to_le_bytes());
    shb.extend_from_slice(&(-1_i64).to_le_bytes());
    for (code, value) in [
        (2, &b"\xa9 switch port 7"[..]),
        (3, b"NX-OS 9.3"),
        (4, b"span-export"),
        (2988, b"\0\0\x7f\xd9port 7"),
        (2989, &[0, 0, 0x7f, 0xd9, 1, 2, 3]),
        (0x7777, b"x"),
    ] {
        shb.extend_from_slice(&option(code, value));
    }
    let mut idb = 1_u16.to_le_bytes().to_vec();
    idb.extend_from_slice(&[0, 0]);
    idb.extend_from_slice(&262_144_u32.to_le_bytes());
    idb.extend_from_slice(&option(2, b"span0"));
    idb.extend_from_slice(&option(9, &[6]));
    let mut out = [block(0x0A0D_0D0A, &shb), block(1, &idb)].concat();
    for (i, frame) in frames.iter().enumerate() {
        let ts = first_us + 1000 * i as u64;
        let mut epb = 0_u32.to_le_bytes().to_vec();
        epb.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
        epb.extend_from_slice(&(ts as u32).to_le_bytes());
        epb.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        epb.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        epb.extend_from_slice(frame);
        epb.resize(epb.len().next_multiple_of(4), 0);
        epb.extend_from_slice(&option(1, b"seen"));
        out.extend_from_slice(&block(6, &epb));
    }
    out
}
