//! The options of where and how copies go, shared by `mirror run` and `mirror replay`, and
//! their checking.
use std::{
    fmt,
    net::{IpAddr, Ipv6Addr, SocketAddr},
    str::FromStr,
};

use clap::{Args, ValueEnum};

use crate::{
    netflow::collector::NetflowVersion,
    tunnel::{Granularity, Tunnel, TunnelKind},
    wire::vxlan::Vni,
};

/// Where and how copies go: shared by `mirror run` and `mirror replay`.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Tunnel the copies are wrapped in.
    #[arg(long, value_enum, default_value_t = TunnelKind::Vxlan)]
    pub tunnel: TunnelKind,

    /// Where to send the copies: `IP` or `IP:PORT`, IPv4 or IPv6 (`[IPv6]:PORT`), repeatable.
    /// A port is for VxLAN only and defaults to --vxlan-port.
    #[arg(
        long = "remote",
        value_name = "IP[:PORT]",
        required_unless_present = "netflow"
    )]
    pub remotes: Vec<RemoteArg>,

    /// With several remotes: `replicate` sends every copy to each, `flow` sends each inner flow
    /// (both directions) to one of them, so analysers can be scaled out.
    #[arg(long, value_enum, default_value_t = BalanceArg::Replicate)]
    pub balance: BalanceArg,

    /// VxLAN network identifier, 0 to 16777215.
    #[arg(long, value_name = "N", default_value_t = Vni::default())]
    pub vni: Vni,

    /// UDP destination port of the VxLAN packets (4789 is IANA's; flannel uses 8472).
    #[arg(long, value_name = "PORT", default_value_t = 4789)]
    pub vxlan_port: u16,

    /// GRE key (RFC 2890); none unless given. Only with --tunnel gre.
    #[arg(long, value_name = "KEY")]
    pub gre_key: Option<u32>,

    /// Number the GRE packets to each remote (RFC 2890 sequence numbers). Only with --tunnel gre;
    /// ERSPAN II and III always carry them.
    #[arg(long)]
    pub gre_seq: bool,

    /// ERSPAN session ID, 0 to 1023 (--tunnel erspan2 or erspan3).
    #[arg(long, value_name = "ID", default_value_t = 0)]
    pub erspan_session: u16,

    /// ERSPAN II index, 0 to 1048575 (--tunnel erspan2).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub erspan_index: u32,

    /// ERSPAN III hardware ID, 0 to 63 (--tunnel erspan3).
    #[arg(long, value_name = "ID", default_value_t = 0)]
    pub erspan_hwid: u8,

    /// ERSPAN III security group tag (--tunnel erspan3).
    #[arg(long, value_name = "TAG", default_value_t = 0)]
    pub erspan_sgt: u16,

    /// Cut every copied frame to at most N bytes (ERSPAN marks such copies truncated).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(14..=65535))]
    pub snaplen: Option<u32>,

    /// What to do with a copy whose tunnel packet would exceed the path MTU to the remote:
    /// `truncate` cuts the inner frame to fit (ERSPAN sets its T bit), `drop` drops it,
    /// `fragment` sends the outer packet in IP fragments for the remote to reassemble. Each is
    /// counted in the metrics.
    #[arg(long, value_enum, default_value_t = OversizeArg::Truncate)]
    pub oversize: OversizeArg,

    /// How copies leave: `af-xdp` puts them on the uplink's AF_XDP transmit ring from the chunk
    /// they were captured in (no copy; bypasses the uplink's qdisc, netfilter, TC egress and
    /// packet taps), with the raw socket for any remote AF_XDP cannot serve; `socket` sends
    /// every copy through the raw socket (routing, netfilter and qdisc apply).
    #[arg(long, value_enum, default_value_t = SendPathArg::AfXdp)]
    pub send_path: SendPathArg,

    /// Rewrite the destination MAC of every copied frame, e.g. to the MAC of a flannel.1 device
    /// that must accept the frames (the original traffic is untouched).
    #[arg(long, value_name = "MAC", value_parser = parse_mac)]
    pub inner_dst_mac: Option<[u8; 6]>,

    /// Copy one packet in N, chosen at random in the kernel (1 copies all). NetFlow headers
    /// then carry the interval; their counts are not scaled, as v5 collectors expect.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16383))]
    pub sample: u32,

    /// Export flow records of the copied traffic to this collector (repeatable): `IP:PORT` in
    /// the version of --netflow-version, `ipfix://IP:PORT` in IPFIX whatever that says.
    #[arg(long = "netflow", value_name = "IP:PORT")]
    pub netflow: Vec<CollectorArg>,

    /// The version of --netflow collectors given without `ipfix://`: 5 (NetFlow v5, IPv4 flows
    /// only) or 10 (IPFIX, IPv4 and IPv6 flows).
    #[arg(long, value_name = "5|10", default_value_t = NetflowVersion::V5, value_parser = parse_netflow_version)]
    pub netflow_version: NetflowVersion,

    /// IPFIX: the observation domain id of the messages (tells apart agents that share a
    /// collector, as the v5 engine ID does).
    #[arg(long, value_name = "ID", default_value_t = 0)]
    pub ipfix_domain: u32,

    /// NetFlow: export a flow this long after its last packet.
    #[arg(long, value_name = "SECONDS", default_value_t = 15, value_parser = clap::value_parser!(u32).range(1..=86400))]
    pub netflow_inactive_timeout: u32,

    /// NetFlow: export a long-lived flow this often (and start it anew).
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=86400))]
    pub netflow_active_timeout: u32,

    /// NetFlow: most flows kept at once; when full, the flow due soonest is exported early.
    #[arg(long, value_name = "N", default_value_t = 65_536, value_parser = clap::value_parser!(u32).range(16..=16_777_216))]
    pub flow_cache_size: u32,

    /// NetFlow header: engine type.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub netflow_engine_type: u8,

    /// NetFlow header: engine ID (tells apart agents that share a collector).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub netflow_engine_id: u8,

    /// Serve Prometheus metrics at http://ADDR:PORT/metrics (not served unless given).
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<SocketAddr>,

    /// SO_MARK of the agent's own packets. Packets carrying it are never mirrored, so the copies
    /// leaving a mirrored interface are not copied again. Change it if the mark is in use.
    #[arg(long, value_name = "MARK", default_value_t = mirror_common::DEFAULT_AGENT_MARK, value_parser = parse_mark)]
    pub agent_mark: u32,

    /// Copy only the packets this pcap-filter(7) expression matches (tcpdump's syntax, e.g.
    /// `tcp port 443 and host 10.0.0.7`), applied to each frame before it is sent or counted in
    /// NetFlow. The others are counted as dropped with reason `filtered`.
    #[arg(long, value_name = "EXPR")]
    pub filter: Option<String>,

    /// Take options from FILE, TOML or YAML by its extension (.toml, .yaml, .yml): each key is an
    /// option's long name, e.g. `remote = ["198.18.0.2"]`. The command line wins over the file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SendPathArg {
    AfXdp,
    Socket,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BalanceArg {
    Replicate,
    Flow,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OversizeArg {
    Truncate,
    Drop,
    Fragment,
}

impl OutputArgs {
    /// The tunnel with its options; options of another tunnel are refused, not ignored.
    pub fn tunnel(&self) -> Result<Tunnel, String> {
        let gre_only = self.gre_key.is_some() || self.gre_seq;
        let misplaced = |option: &str| {
            Err(format!(
                "{option} does not apply to --tunnel {}",
                self.tunnel.name()
            ))
        };
        if gre_only && self.tunnel != TunnelKind::Gre {
            return misplaced(if self.gre_seq {
                "--gre-seq"
            } else {
                "--gre-key"
            });
        }
        if self.erspan_session != 0
            && !matches!(self.tunnel, TunnelKind::Erspan2 | TunnelKind::Erspan3)
        {
            return misplaced("--erspan-session");
        }
        if self.erspan_index != 0 && self.tunnel != TunnelKind::Erspan2 {
            return misplaced("--erspan-index");
        }
        if (self.erspan_hwid != 0 || self.erspan_sgt != 0) && self.tunnel != TunnelKind::Erspan3 {
            return misplaced(if self.erspan_hwid != 0 {
                "--erspan-hwid"
            } else {
                "--erspan-sgt"
            });
        }
        if let Some(collector) = self
            .netflow
            .iter()
            .find(|c| c.addr.port() == 0 || c.addr.ip().is_unspecified())
        {
            return Err(format!(
                "--netflow {collector}: needs a collector address and a non-zero port"
            ));
        }
        if self.tunnel != TunnelKind::Vxlan
            && let Some(remote) = self.remotes.iter().find(|r| r.port.is_some())
        {
            return Err(format!("--remote {remote}: a port applies to VxLAN only"));
        }
        Ok(match self.tunnel {
            TunnelKind::Vxlan => Tunnel::Vxlan {
                vni: self.vni,
                dst_port: self.vxlan_port,
            },
            TunnelKind::Gre => Tunnel::Gre {
                key: self.gre_key,
                sequence: self.gre_seq,
            },
            TunnelKind::Erspan1 => Tunnel::Erspan1,
            TunnelKind::Erspan2 => Tunnel::Erspan2 {
                session: self.erspan_session,
                index: self.erspan_index,
            },
            TunnelKind::Erspan3 => Tunnel::Erspan3 {
                session: self.erspan_session,
                hw_id: self.erspan_hwid,
                sgt: self.erspan_sgt,
                granularity: Granularity::default(),
            },
        })
    }
}

fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let mut mac = [0; 6];
    let mut parts = s.split(':');
    for byte in &mut mac {
        *byte = parts
            .next()
            .filter(|p| p.len() == 2)
            .and_then(|p| u8::from_str_radix(p, 16).ok())
            .ok_or_else(|| format!("'{s}' is not a MAC address like 02:00:00:00:00:01"))?;
    }
    if parts.next().is_some() {
        return Err(format!("'{s}' is not a MAC address like 02:00:00:00:00:01"));
    }
    Ok(mac)
}

/// One `--netflow` collector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CollectorArg {
    pub addr: SocketAddr,
    /// `Some` if the address came with a scheme (`ipfix://`); otherwise --netflow-version's.
    pub version: Option<NetflowVersion>,
}

impl FromStr for CollectorArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (version, rest) = match s.split_once("://") {
            Some(("ipfix", rest)) => (Some(NetflowVersion::Ipfix), rest),
            Some((scheme, _)) => {
                return Err(format!(
                    "unknown scheme {scheme}://: give IP:PORT, or ipfix://IP:PORT for IPFIX"
                ));
            }
            None => (None, s),
        };
        let addr = rest
            .parse()
            .map_err(|_| format!("'{rest}' is not IP:PORT (an IPv6 address in brackets)"))?;
        Ok(CollectorArg { addr, version })
    }
}

impl fmt::Display for CollectorArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.version {
            Some(NetflowVersion::Ipfix) => write!(f, "ipfix://{}", self.addr),
            _ => write!(f, "{}", self.addr),
        }
    }
}

fn parse_netflow_version(s: &str) -> Result<NetflowVersion, String> {
    match s {
        "5" => Ok(NetflowVersion::V5),
        "10" => Ok(NetflowVersion::Ipfix),
        _ => Err(format!(
            "'{s}': mirror exports NetFlow version 5 or 10 (IPFIX)"
        )),
    }
}

impl OutputArgs {
    /// Every `--netflow` collector with the version it gets.
    pub fn netflow_collectors(&self) -> Vec<(SocketAddr, NetflowVersion)> {
        self.netflow
            .iter()
            .map(|c| (c.addr, c.version.unwrap_or(self.netflow_version)))
            .collect()
    }
}

fn parse_mark(s: &str) -> Result<u32, String> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => s.parse(),
    };
    match parsed {
        Ok(0) => Err("0 means no mark; choose a non-zero mark".into()),
        Ok(mark) if mark & mirror_common::MARK_CLONE != 0 => {
            Err("marks with bit 31 set are reserved for the mirror's clones".into())
        }
        Ok(mark) => Ok(mark),
        Err(_) => Err(format!("'{s}' is not a 32-bit number (decimal or 0x hex)")),
    }
}

/// `IP` or `IP:PORT` (`[IPv6]:PORT` for IPv6) as given on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteArg {
    pub ip: IpAddr,
    pub port: Option<u16>,
}

impl FromStr for RemoteArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Self { ip, port: None });
        }
        if let Some(ip) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']'))
            && let Ok(ip) = ip.parse::<Ipv6Addr>()
        {
            return Ok(Self {
                ip: IpAddr::V6(ip),
                port: None,
            });
        }
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(Self {
                ip: addr.ip(),
                port: Some(addr.port()),
            });
        }
        Err(format!("'{s}' is not an IP address or IP:PORT"))
    }
}

impl fmt::Display for RemoteArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.ip, self.port) {
            (ip, None) => write!(f, "{ip}"),
            (IpAddr::V4(ip), Some(port)) => write!(f, "{ip}:{port}"),
            (IpAddr::V6(ip), Some(port)) => write!(f, "[{ip}]:{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs() {
        assert_eq!(parse_mac("02:00:0a:FF:00:01"), Ok([2, 0, 10, 255, 0, 1]));
        for bad in [
            "02:00:0a:ff:00",
            "02:00:0a:ff:00:01:02",
            "2:0:a:ff:0:1",
            "zz:00:0a:ff:00:01",
            "",
        ] {
            assert!(parse_mac(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn marks() {
        assert_eq!(parse_mark("0x10"), Ok(16));
        assert_eq!(parse_mark("16"), Ok(16));
        assert!(parse_mark("0").is_err());
        assert!(parse_mark("0x80000000").is_err());
        assert!(parse_mark("x").is_err());
    }

    #[test]
    fn parses_forms() {
        assert_eq!(
            "198.18.0.2".parse(),
            Ok(RemoteArg {
                ip: [198, 18, 0, 2].into(),
                port: None
            })
        );
        assert_eq!(
            "198.18.0.2:8472".parse(),
            Ok(RemoteArg {
                ip: [198, 18, 0, 2].into(),
                port: Some(8472)
            })
        );
        let v6: RemoteArg = "[2001:db8::1]:4789".parse().unwrap();
        assert_eq!(
            (v6.port, v6.to_string()),
            (Some(4789), "[2001:db8::1]:4789".into())
        );
        assert_eq!(
            "[2001:db8::1]".parse::<RemoteArg>().map(|r| r.port),
            Ok(None)
        );
        assert!("[198.18.0.2]".parse::<RemoteArg>().is_err());
        assert!("198.18.0.256".parse::<RemoteArg>().is_err());
        assert!("198.18.0.2:".parse::<RemoteArg>().is_err());
    }
}
