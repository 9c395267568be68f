//! NetFlow v5 and IPFIX on the receiving side: `nfcapd` as the collector, `nfdump` to read what
//! it stored, and the flow records a capture says an exporter should have sent.
//!
//! The expected records follow the agent's documented rules (see `mirror-user/src/netflow`):
//! a flow is keyed by source and destination address, protocol, ports (ICMP and ICMPv6: source
//! port 0, destination port type * 256 + code), ToS or traffic class and the input and output
//! interface indexes; it counts packets and layer-3 lengths (IPv4 total length, IPv6 header plus
//! payload length); its TCP flags are the OR of its packets' flags; and a packet carrying TCP FIN
//! or RST ends it, so the next packet with the same key starts a new record.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::{self, Write as _},
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::Path,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};

use crate::{
    netns::Netns,
    proc::{Background, Signal, command, run_stdout},
    scratch::ScratchDir,
};

/// The collector port the tests use (nfcapd's default).
pub const NFCAPD_PORT: u16 = 2055;
/// How long nfcapd may take to bind its socket.
const NFCAPD_START_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest nfcapd is given to read what is queued on its socket before it is stopped.
const NFCAPD_DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// TCP FIN.
pub const TCP_FIN: u8 = 0x01;
/// TCP RST.
pub const TCP_RST: u8 = 0x04;

/// IP protocol numbers.
pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const PROTO_ICMPV6: u8 = 58;

/// What tells one flow from another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FlowKey {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub src_port: u16,
    pub dst_port: u16,
    pub tos: u8,
    pub input: u16,
    pub output: u16,
}

impl FlowKey {
    /// The directional 5-tuple: the key without ToS and interfaces, for comparing exporters
    /// that fill those in differently.
    pub fn five_tuple(&self) -> FiveTuple {
        FiveTuple {
            src: self.src,
            dst: self.dst,
            proto: self.proto,
            src_port: self.src_port,
            dst_port: self.dst_port,
        }
    }
}

impl fmt::Display for FlowKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} tos {:#04x} in {} out {}",
            self.five_tuple(),
            self.tos,
            self.input,
            self.output
        )
    }
}

/// Source, destination, protocol and ports: one direction of a conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FiveTuple {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub src_port: u16,
    pub dst_port: u16,
}

impl fmt::Display for FiveTuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = match self.proto {
            PROTO_ICMP => "icmp".to_owned(),
            PROTO_TCP => "tcp".to_owned(),
            PROTO_UDP => "udp".to_owned(),
            PROTO_ICMPV6 => "icmp6".to_owned(),
            other => format!("proto {other}"),
        };
        if self.proto == PROTO_ICMP || self.proto == PROTO_ICMPV6 {
            write!(
                f,
                "{proto} {} > {} type {} code {}",
                self.src,
                self.dst,
                self.dst_port >> 8,
                self.dst_port & 0xff
            )
        } else {
            write!(
                f,
                "{proto} {}:{} > {}:{}",
                self.src, self.src_port, self.dst, self.dst_port
            )
        }
    }
}

/// One flow record: what nfdump printed, or what a capture says should be there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FlowRecord {
    pub key: FlowKey,
    pub packets: u64,
    pub bytes: u64,
    /// OR of the TCP flags (0 for other protocols).
    pub tcp_flags: u8,
}

impl fmt::Display for FlowRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} packets, {} bytes, flags {}",
            self.key,
            self.packets,
            self.bytes,
            flags_string(self.tcp_flags)
        )
    }
}

/// nfdump's rendering of TCP flags: `CEUAPRSF` with `.` for a clear bit.
pub fn flags_string(flags: u8) -> String {
    "CEUAPRSF"
        .chars()
        .enumerate()
        .map(|(i, c)| if flags & (0x80 >> i) != 0 { c } else { '.' })
        .collect()
}

/// Parses nfdump's flags column: `CEUAPRSF` letters (dots for clear bits, any order), or `0x..`.
pub fn parse_flags(text: &str) -> Result<u8> {
    let text = text.trim();
    if let Some(hex) = text.strip_prefix("0x") {
        return u8::from_str_radix(hex, 16).with_context(|| format!("TCP flags `{text}`"));
    }
    let mut flags = 0;
    for c in text.chars() {
        flags |= match c {
            'C' => 0x80,
            'E' => 0x40,
            'U' => 0x20,
            'A' => 0x10,
            'P' => 0x08,
            'R' => 0x04,
            'S' => 0x02,
            'F' => 0x01,
            '.' => 0,
            other => bail!("unknown TCP flag `{other}` in `{text}`"),
        };
    }
    Ok(flags)
}

/// nfdump's protocol column: a number, or one of the names nfdump prints.
pub fn parse_proto(text: &str) -> Result<u8> {
    let text = text.trim();
    if let Ok(number) = text.parse() {
        return Ok(number);
    }
    Ok(match text.to_ascii_uppercase().as_str() {
        "ICMP" => PROTO_ICMP,
        "IGMP" => 2,
        "TCP" => PROTO_TCP,
        "UDP" => PROTO_UDP,
        "GRE" => 47,
        "ESP" => 50,
        "AH" => 51,
        "ICMP6" => 58,
        "SCTP" => 132,
        _ => bail!("unknown protocol name `{text}` in nfdump's output"),
    })
}

/// Parses `nfdump -o csv` output: a header line naming the columns, one line per record, then
/// `Summary` and its lines (or `No matching flows`). Columns are found by name, so the order
/// and any extra columns of other nfdump versions do not matter.
pub fn parse_csv(text: &str) -> Result<Vec<FlowRecord>> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let header: Vec<&str> = lines
        .next()
        .context("nfdump printed nothing")?
        .split(',')
        .map(str::trim)
        .collect();
    let column = |name: &str| -> Result<usize> {
        header
            .iter()
            .position(|h| *h == name)
            .with_context(|| format!("nfdump's CSV header has no `{name}` column: {header:?}"))
    };
    let [sa, da, sp, dp, pr, flg, tos, pkt, byt, input, output] = [
        "sa", "da", "sp", "dp", "pr", "flg", "stos", "ipkt", "ibyt", "in", "out",
    ]
    .map(column);
    let (sa, da, sp, dp, pr, flg, tos, pkt, byt, input, output) = (
        sa?, da?, sp?, dp?, pr?, flg?, tos?, pkt?, byt?, input?, output?,
    );
    let mut records = Vec::new();
    for line in lines {
        if line == "Summary" || line == "No matching flows" {
            break;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        ensure!(
            fields.len() == header.len(),
            "nfdump CSV line has {} fields, its header {}: `{line}`",
            fields.len(),
            header.len()
        );
        let field = |i: usize| fields[i];
        let number = |i: usize, what: &str| -> Result<u64> {
            field(i)
                .parse()
                .with_context(|| format!("{what} `{}` in `{line}`", field(i)))
        };
        let small = |i: usize, what: &str| -> Result<u16> {
            u16::try_from(number(i, what)?).with_context(|| format!("{what} in `{line}`"))
        };
        let addr = |i: usize, what: &str| -> Result<IpAddr> {
            field(i)
                .parse()
                .with_context(|| format!("{what} `{}` in `{line}`", field(i)))
        };
        records.push(FlowRecord {
            key: FlowKey {
                src: addr(sa, "source address")?,
                dst: addr(da, "destination address")?,
                proto: parse_proto(field(pr))?,
                src_port: small(sp, "source port")?,
                dst_port: small(dp, "destination port")?,
                tos: u8::try_from(number(tos, "ToS")?).context("ToS above 255")?,
                input: small(input, "input interface")?,
                output: small(output, "output interface")?,
            },
            packets: number(pkt, "packets")?,
            bytes: number(byt, "bytes")?,
            tcp_flags: parse_flags(field(flg))?,
        });
    }
    Ok(records)
}

/// What nfcapd says about itself when it stops: `Ident: 'none' Flows: 3, Packets: 9, Bytes:
/// 600, Sequence Errors: 0, Bad Packets: 0`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NfcapdSummary {
    pub flows: u64,
    pub packets: u64,
    pub bytes: u64,
    /// Gaps in the v5 headers' `flow_sequence`: records an exporter numbered but nfcapd never got.
    pub sequence_errors: u64,
    pub bad_packets: u64,
}

impl NfcapdSummary {
    /// Sums every `Ident:` line (one per flow source) of nfcapd's output.
    pub fn parse(lines: &[String]) -> Option<Self> {
        let mut summary: Option<Self> = None;
        for line in lines
            .iter()
            .filter(|l| l.trim_start().starts_with("Ident:"))
        {
            let value = |name: &str| -> Option<u64> {
                let start = line.find(name)? + name.len();
                line[start..]
                    .trim_start()
                    .split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse()
                    .ok()
            };
            let this = Self {
                flows: value("Flows:")?,
                packets: value("Packets:")?,
                bytes: value("Bytes:")?,
                sequence_errors: value("Sequence Errors:")?,
                bad_packets: value("Bad Packets:")?,
            };
            let sum = summary.get_or_insert_with(Self::default);
            sum.flows += this.flows;
            sum.packets += this.packets;
            sum.bytes += this.bytes;
            sum.sequence_errors += this.sequence_errors;
            sum.bad_packets += this.bad_packets;
        }
        summary
    }
}

/// A running `nfcapd -w DIR -b IP -p PORT` in a namespace. It writes its file when it stops
/// (or rotates, every 5 minutes), so stop it before reading the records.
pub struct Nfcapd {
    label: String,
    port: u16,
    process: Background,
    dir: ScratchDir,
    summary: Option<NfcapdSummary>,
}

impl Nfcapd {
    /// Starts nfcapd in `ns`, listening on `bind:port`, and waits until it has bound its socket.
    pub fn start(ns: &Netns, bind: &str, port: u16) -> Result<Self> {
        let dir = ScratchDir::new()?;
        let label = format!("nfcapd {}:{bind}:{port}", ns.name());
        let port_text = port.to_string();
        let dir_text = dir.path().to_string_lossy().into_owned();
        let mut process = ns.spawn(
            &label,
            "nfcapd",
            [
                "-w",
                dir_text.as_str(),
                "-b",
                bind,
                "-p",
                port_text.as_str(),
            ],
        )?;
        process
            .wait_for_stderr("\"Startup nfcapd.\"", NFCAPD_START_TIMEOUT, |l| {
                l.contains("Startup nfcapd")
            })
            .with_context(|| format!("starting {label}"))?;
        Ok(Self {
            label,
            port,
            process,
            dir,
            summary: None,
        })
    }

    /// Waits until nfcapd's socket has nothing queued twice in a row (or
    /// [`NFCAPD_DRAIN_TIMEOUT`] passed), read from the process's own view of its namespace.
    fn wait_until_drained(&self) {
        let deadline = Instant::now() + NFCAPD_DRAIN_TIMEOUT;
        let mut empty = 0;
        while empty < 2 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(50));
            let queued = udp_queued(self.process.pid(), self.port);
            empty = if queued == Some(0) { empty + 1 } else { 0 };
        }
    }

    /// The directory nfcapd writes its files to.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops nfcapd (SIGTERM, which makes it write its file) and returns its own counters.
    pub fn stop(&mut self) -> Result<NfcapdSummary> {
        if let Some(summary) = self.summary {
            return Ok(summary);
        }
        // An exporter's last datagrams may still wait on the socket when it exits, and nfcapd
        // stops reading at SIGTERM.
        self.wait_until_drained();
        let status = self
            .process
            .stop_with(Signal::Term)
            .with_context(|| format!("stopping {}", self.label))?;
        ensure!(status.success(), "{} exited with {status}", self.label);
        let lines = self.process.stderr_lines();
        let summary = NfcapdSummary::parse(&lines).with_context(|| {
            format!(
                "{} printed no `Ident: ... Flows: ...` line when it stopped:\n{}",
                self.label,
                lines.join("\n")
            )
        })?;
        self.summary = Some(summary);
        Ok(summary)
    }

    /// Stops nfcapd and returns every record it stored, as nfdump reads them.
    pub fn finish(&mut self) -> Result<(NfcapdSummary, Vec<FlowRecord>)> {
        let summary = self.stop()?;
        Ok((summary, read_dir(self.dir())?))
    }
}

/// Bytes queued for reading on the UDP sockets bound to `port` in `pid`'s network namespace
/// (`/proc/PID/net/udp` and `udp6`: `tx_queue:rx_queue` in hex); `None` if none is found.
fn udp_queued(pid: u32, port: u16) -> Option<u64> {
    let port = format!(":{port:04X}");
    let mut found = None;
    for table in ["udp", "udp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
            continue;
        };
        for fields in text
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
        {
            let (Some(local), Some(queues)) = (fields.get(1), fields.get(4)) else {
                continue;
            };
            if !local.ends_with(&port) {
                continue;
            }
            let rx = queues
                .split_once(':')
                .and_then(|(_, rx)| u64::from_str_radix(rx, 16).ok())?;
            found = Some(found.unwrap_or(0) + rx);
        }
    }
    found
}

/// `nfdump -R DIR -o csv`, parsed.
pub fn read_dir(dir: &Path) -> Result<Vec<FlowRecord>> {
    let dir_text = dir.to_string_lossy();
    let text = run_stdout(&mut command(
        "nfdump",
        ["-R", dir_text.as_ref(), "-o", "csv"],
    ))?;
    parse_csv(&text)
        .with_context(|| format!("parsing nfdump's CSV output for {}:\n{text}", dir.display()))
}

/// One packet as the agent counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observation {
    pub key: FlowKey,
    /// The IPv4 total length, or the IPv6 header and payload length.
    pub octets: u64,
    pub tcp_flags: u8,
}

/// Reads an Ethernet frame (up to three VLAN tags) far enough to key it as NetFlow v5 does;
/// `None` for anything but IPv4 and for frames cut before the fields the key needs. `input` and
/// `output` are the interface indexes the caller knows the packet was seen on.
pub fn observe(frame: &[u8], input: u16, output: u16) -> Option<Observation> {
    observe_any(frame, input, output).filter(|o| o.key.src.is_ipv4())
}

/// [`observe`] for IPv4 and IPv6, as the agent keys flows for IPFIX. IPv6 packets with
/// extension headers are not read (`None`): the tests send none.
pub fn observe_any(frame: &[u8], input: u16, output: u16) -> Option<Observation> {
    let be16 = |b: &[u8], at: usize| -> Option<u16> {
        Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
    };
    let mut offset = 12;
    let mut ether_type = be16(frame, offset)?;
    for _ in 0..3 {
        if !matches!(ether_type, 0x8100 | 0x88a8 | 0x9100) {
            break;
        }
        offset += 4;
        ether_type = be16(frame, offset)?;
    }
    if ether_type == 0x86dd {
        return observe_ipv6(frame.get(offset + 2..)?, input, output);
    }
    if ether_type != 0x0800 {
        return None;
    }
    let ip = frame.get(offset + 2..)?;
    let header_len = usize::from(ip.first()? & 0x0f) * 4;
    if ip.first()? >> 4 != 4 || header_len < 20 || ip.len() < header_len {
        return None;
    }
    let total_len = be16(ip, 2)?;
    let octets = if usize::from(total_len) < header_len {
        ip.len() as u64
    } else {
        u64::from(total_len)
    };
    let fragment_offset = be16(ip, 6)? & 0x1fff;
    let first_fragment = fragment_offset == 0;
    let proto = ip[9];
    let transport = &ip[header_len..];
    let (src_port, dst_port, tcp_flags) = match proto {
        _ if !first_fragment => (0, 0, 0),
        PROTO_ICMP => (0, be16(transport, 0)?, 0),
        PROTO_TCP => (
            be16(transport, 0)?,
            be16(transport, 2)?,
            *transport.get(13)?,
        ),
        PROTO_UDP | 33 | 132 | 136 => (be16(transport, 0)?, be16(transport, 2)?, 0),
        _ => (0, 0, 0),
    };
    let addr = |at: usize| IpAddr::V4(Ipv4Addr::new(ip[at], ip[at + 1], ip[at + 2], ip[at + 3]));
    Some(Observation {
        key: FlowKey {
            src: addr(12),
            dst: addr(16),
            proto,
            src_port,
            dst_port,
            tos: ip[1],
            input,
            output,
        },
        octets,
        tcp_flags,
    })
}

fn observe_ipv6(ip: &[u8], input: u16, output: u16) -> Option<Observation> {
    let header = ip.get(..40)?;
    if header[0] >> 4 != 6 {
        return None;
    }
    let be16 = |b: &[u8], at: usize| -> Option<u16> {
        Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
    };
    let tclass = (header[0] << 4) | (header[1] >> 4);
    let payload_len = be16(header, 4)?;
    let proto = header[6];
    let transport = &ip[40..];
    let (src_port, dst_port, tcp_flags) = match proto {
        PROTO_ICMPV6 => (0, be16(transport, 0)?, 0),
        PROTO_TCP => (
            be16(transport, 0)?,
            be16(transport, 2)?,
            *transport.get(13)?,
        ),
        PROTO_UDP | 33 | 132 | 136 => (be16(transport, 0)?, be16(transport, 2)?, 0),
        0 | 43 | 44 | 50 | 51 | 60 | 135 | 139 | 140 => return None,
        _ => (0, 0, 0),
    };
    let addr = |at: usize| -> Option<IpAddr> {
        let bytes: [u8; 16] = header.get(at..at + 16)?.try_into().ok()?;
        Some(IpAddr::V6(Ipv6Addr::from(bytes)))
    };
    Some(Observation {
        key: FlowKey {
            src: addr(8)?,
            dst: addr(24)?,
            proto,
            src_port,
            dst_port,
            tos: tclass,
            input,
            output,
        },
        octets: 40 + u64::from(payload_len),
        tcp_flags,
    })
}

/// The records the agent's rules make of `observations`, in the order they were seen: per key,
/// packets and bytes add up until a packet with FIN or RST ends the record. Timeouts are not
/// modelled: the caller makes sure none fires.
pub fn expected_records(observations: impl IntoIterator<Item = Observation>) -> Vec<FlowRecord> {
    let mut open: BTreeMap<FlowKey, FlowRecord> = BTreeMap::new();
    let mut done = Vec::new();
    for observation in observations {
        let record = open.entry(observation.key).or_insert(FlowRecord {
            key: observation.key,
            packets: 0,
            bytes: 0,
            tcp_flags: 0,
        });
        record.packets += 1;
        record.bytes += observation.octets;
        record.tcp_flags |= observation.tcp_flags;
        if observation.tcp_flags & (TCP_FIN | TCP_RST) != 0 {
            done.extend(open.remove(&observation.key));
        }
    }
    done.extend(open.into_values());
    done.sort();
    done
}

/// Packets and bytes per directional 5-tuple, summed over every record of it.
pub fn totals_by_five_tuple<'a>(
    records: impl IntoIterator<Item = &'a FlowRecord>,
) -> BTreeMap<FiveTuple, (u64, u64)> {
    let mut totals = BTreeMap::new();
    for record in records {
        let entry = totals.entry(record.key.five_tuple()).or_insert((0, 0));
        entry.0 += record.packets;
        entry.1 += record.bytes;
    }
    totals
}

/// `None` when `expected` and `got` hold the same records (as multisets), else what differs:
/// records missing from `got` and records `got` has in excess.
pub fn diff_records(expected: &[FlowRecord], got: &[FlowRecord]) -> Option<String> {
    let mut want = expected.to_vec();
    let mut have = got.to_vec();
    want.sort();
    have.sort();
    if want == have {
        return None;
    }
    let mut missing = Vec::new();
    let mut extra = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < want.len() || j < have.len() {
        match (want.get(i), have.get(j)) {
            (Some(w), Some(h)) if w == h => {
                i += 1;
                j += 1;
            }
            (Some(w), Some(h)) if w < h => {
                missing.push(*w);
                i += 1;
            }
            (Some(_) | None, Some(h)) => {
                extra.push(*h);
                j += 1;
            }
            (Some(w), None) => {
                missing.push(*w);
                i += 1;
            }
            (None, None) => break,
        }
    }
    let list = |records: &[FlowRecord]| -> String {
        records.iter().fold(String::new(), |mut text, r| {
            let _ = write!(text, "\n    {r}");
            text
        })
    };
    Some(format!(
        "{} records expected, {} got; missing ({}):{}\n  unexpected ({}):{}",
        want.len(),
        have.len(),
        missing.len(),
        list(&missing),
        extra.len(),
        list(&extra)
    ))
}

/// `None` when both maps are equal, else one line per 5-tuple that differs.
pub fn diff_totals(
    left_name: &str,
    left: &BTreeMap<FiveTuple, (u64, u64)>,
    right_name: &str,
    right: &BTreeMap<FiveTuple, (u64, u64)>,
) -> Option<String> {
    if left == right {
        return None;
    }
    let mut text = String::new();
    let keys: BTreeSet<&FiveTuple> = left.keys().chain(right.keys()).collect();
    for key in keys {
        let (l, r) = (left.get(key), right.get(key));
        if l != r {
            let show = |v: Option<&(u64, u64)>| {
                v.map_or_else(
                    || "none".to_owned(),
                    |(p, b)| format!("{p} packets {b} bytes"),
                )
            };
            let _ = write!(
                text,
                "\n  {key}: {left_name} {}, {right_name} {}",
                show(l),
                show(r)
            );
        }
    }
    Some(text)
}

/// The ifindex of `dev` in `ns`.
pub fn ifindex(ns: &Netns, dev: &str) -> Result<u32> {
    let json = ns.ip(["-j", "link", "show", "dev", dev])?;
    let links: serde_json::Value = serde_json::from_str(&json)
        .with_context(|| format!("parsing `ip -j link show {dev}` in {}", ns.name()))?;
    links[0]["ifindex"]
        .as_u64()
        .and_then(|i| u32::try_from(i).ok())
        .with_context(|| format!("no ifindex for {dev} in netns {}", ns.name()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "ts,te,td,sa,da,sp,dp,pr,flg,fwd,stos,ipkt,ibyt,opkt,obyt,in,out,sas,das\n\
        2026-11-22 23:53:03,2026-11-22 23:53:03,0.232,127.0.0.1,127.0.0.2,0,2048,ICMP,........,0,0,3,252,0,0,5,0,0,0\n\
        2026-11-22 23:53:03,2026-11-22 23:53:03,0.000,127.0.0.1,127.0.0.2,0,771,ICMP,........,0,192,1,62,0,0,0,5,0,0\n\
        2026-11-22 23:53:03,2026-11-22 23:53:03,0.000,10.0.0.1,10.0.0.2,4000,5201,TCP,...AP.SF,0,0,7,900,0,0,5,0,0,0\n\
        Summary\nflows,bytes,packets,avg_bps,avg_pps,avg_bpp\n3,1214,11,0,0,0\n";

    #[test]
    fn parses_nfdump_csv() {
        let records = parse_csv(CSV).unwrap();
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].key.dst_port, 2048);
        assert_eq!(records[0].key.proto, PROTO_ICMP);
        assert_eq!((records[0].packets, records[0].bytes), (3, 252));
        assert_eq!((records[0].key.input, records[0].key.output), (5, 0));
        assert_eq!(records[1].key.tos, 192);
        assert_eq!(records[1].key.output, 5);
        assert_eq!(records[2].tcp_flags, 0x1b);
        assert_eq!(flags_string(0x1b), "...AP.SF");
        assert!(
            parse_csv("ts,te\nNo matching flows\n").is_err(),
            "columns missing"
        );
        let none =
            "ts,te,td,sa,da,sp,dp,pr,flg,fwd,stos,ipkt,ibyt,opkt,obyt,in,out\nNo matching flows\n";
        assert!(parse_csv(none).unwrap().is_empty());
    }

    #[test]
    fn parses_nfcapd_summary() {
        let lines = [
            "Startup nfcapd.",
            "Ident: 'none' Flows: 4, Packets: 8, Bytes: 600, Sequence Errors: 1, Bad Packets: 0",
            "Terminating nfcapd.",
        ]
        .map(String::from);
        assert_eq!(
            NfcapdSummary::parse(&lines),
            Some(NfcapdSummary {
                flows: 4,
                packets: 8,
                bytes: 600,
                sequence_errors: 1,
                bad_packets: 0
            })
        );
        assert_eq!(NfcapdSummary::parse(&lines[..1]), None);
    }

    fn frame(proto: u8, transport: &[u8], tos: u8) -> Vec<u8> {
        let mut f = vec![0; 12];
        f.extend_from_slice(&[0x08, 0x00]);
        let total = u16::try_from(20 + transport.len()).unwrap();
        f.extend_from_slice(&[0x45, tos]);
        f.extend_from_slice(&total.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0x40, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        f.extend_from_slice(transport);
        f
    }

    #[test]
    fn observes_like_the_agent() {
        let icmp = observe(&frame(1, &[8, 0, 0, 0, 0, 1, 0, 1], 0), 5, 0).unwrap();
        assert_eq!((icmp.key.src_port, icmp.key.dst_port), (0, 2048));
        assert_eq!(icmp.octets, 28);
        let mut tcp = vec![0; 20];
        tcp[..4].copy_from_slice(&[0x0f, 0xa0, 0x14, 0x51]);
        tcp[13] = 0x11;
        let fin = observe(&frame(6, &tcp, 0), 0, 5).unwrap();
        assert_eq!(
            (fin.key.src_port, fin.key.dst_port, fin.tcp_flags),
            (4000, 5201, 0x11)
        );
        let mut ack = fin;
        ack.tcp_flags = 0x10;
        let records = expected_records([ack, fin, ack]);
        assert_eq!(records.len(), 2, "FIN ends a record: {records:?}");
        assert_eq!(
            records.iter().map(|r| r.packets).collect::<Vec<_>>(),
            [1, 2]
        );
        let totals = totals_by_five_tuple(&records);
        assert_eq!(totals[&fin.key.five_tuple()], (3, 120));
        assert!(observe(&[0; 10], 0, 0).is_none());
        let mut arp = frame(1, &[], 0);
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(observe(&arp, 0, 0).is_none());
    }

    #[test]
    fn diffs_records() {
        let a = FlowRecord {
            key: FlowKey {
                src: Ipv4Addr::new(10, 0, 0, 1).into(),
                dst: Ipv4Addr::new(10, 0, 0, 2).into(),
                proto: 17,
                src_port: 1,
                dst_port: 2,
                tos: 0,
                input: 3,
                output: 0,
            },
            packets: 1,
            bytes: 30,
            tcp_flags: 0,
        };
        let mut b = a;
        b.packets = 2;
        assert_eq!(diff_records(&[a, b], &[b, a]), None);
        let diff = diff_records(&[a, b], &[a]).unwrap();
        assert!(
            diff.contains("missing (1)") && diff.contains("unexpected (0)"),
            "{diff}"
        );
    }
}
