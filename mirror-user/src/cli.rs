//! The `mirror` command line.
use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{
    remote::Remote,
    tunnel::{Granularity, Tunnel},
    wire::vxlan::Vni,
};

#[derive(Debug, Parser)]
#[command(
    name = "mirror",
    version,
    about = "Copies the traffic of pods or NICs to remote analysers, wrapped in a tunnel",
    long_about = "Copies every packet of the selected interfaces (both directions) with eBPF, \
                  reads the copies over AF_XDP and sends each one, wrapped in a tunnel header, \
                  to every remote. The mirrored traffic itself is never changed. \
                  `mirror pktminerg ARGS` accepts packet-agent's command line."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Mirror live traffic of this node's interfaces.
    Run(RunArgs),
    /// Receive tunnelled copies and write the inner frames to a pcap file (no tunnel device
    /// or root needed for VxLAN; GRE and ERSPAN need a raw socket).
    Receive(crate::receive::ReceiveArgs),
    /// Send the packets of a pcap or pcapng file, wrapped in a tunnel and counted in NetFlow,
    /// like live copies.
    Replay(crate::replay::ReplayArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Interface to mirror, e.g. a pod's host-side veth or eth0 (repeatable; at least one
    /// --iface, --pod, --pod-ip or --pod-selector). Attached again if it is deleted and comes back
    /// under the same name.
    #[arg(long = "iface", value_name = "NAME")]
    pub ifaces: Vec<String>,

    /// Pod on this node to mirror (its host-side veth), followed through restarts (repeatable).
    /// With the Kubernetes API (--kubeconfig, or a service account), the API says where it runs
    /// and its IPs, and a bare NAME means that name in any namespace. Without it, the pod is found
    /// by its hostname (its name, unless the pod sets `hostname`: then use --pod-ip), and the
    /// NAMESPACE only labels the metrics.
    #[arg(long = "pod", value_name = "[NAMESPACE/]NAME")]
    pub pods: Vec<crate::pod::PodName>,

    /// Pod on this node to mirror, by an IP address of its eth0 (repeatable).
    #[arg(long = "pod-ip", value_name = "IP")]
    pub pod_ips: Vec<std::net::IpAddr>,

    /// Mirror every pod of this node whose labels match, as such pods come and go (Kubernetes
    /// syntax: `app=web,tier in (a,b),!legacy`; repeatable: a pod matching any is mirrored).
    /// Needs the Kubernetes API.
    #[arg(long = "pod-selector", value_name = "LABELS")]
    pub pod_selectors: Vec<crate::pod::api::LabelSelector>,

    /// Kubernetes API access from this kubeconfig file. Without it, a pod's service account is
    /// used when the agent runs in one; else pods are found on the node alone.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<std::path::PathBuf>,

    /// This node's name in Kubernetes (the pods' spec.nodeName); default: the hostname.
    #[arg(long, value_name = "NAME", env = "NODE_NAME")]
    pub node_name: Option<String>,

    /// A --pod that is not on this node is waited for, and mirrored when it appears here,
    /// instead of an exit with code 2 (for a DaemonSet, whose agents run on every node).
    #[arg(long)]
    pub wait_for_pods: bool,

    /// Which packets of each interface to copy, as the interface sees them: `ingress` is what it
    /// receives (for a pod's host-side veth: what the pod sends), `egress` what it transmits.
    #[arg(long, value_enum, default_value_t = DirectionArg::Both)]
    pub direction: DirectionArg,

    /// Receive the copies in a kernel thread pinned to the agent's CPUs (threaded NAPI on the
    /// mirror veth's far end) instead of on the mirrored pods' cores: the pods keep more of
    /// their own throughput, at more CPU per copy and, with one agent CPU, more copies lost.
    #[arg(long)]
    pub threaded_napi: bool,

    /// Where `--filter` runs: `kernel` translates it into the classifier, so a packet it
    /// leaves out is never cloned (user space still filters the copies the kernel cannot: a
    /// VLAN tag held out of band, or a program the kernel refuses, said at start); `user`
    /// filters every copy after capture, counted per interface.
    #[arg(long, value_enum, default_value_t = FilterPathArg::Kernel)]
    pub filter_path: FilterPathArg,

    #[command(flatten)]
    pub output: OutputArgs,
}

impl RunArgs {
    /// `--pod` then `--pod-ip`, in the order given.
    pub fn wanted_pods(&self) -> Vec<crate::pod::Wanted> {
        self.pods
            .iter()
            .cloned()
            .map(crate::pod::Wanted::Name)
            .chain(self.pod_ips.iter().copied().map(crate::pod::Wanted::Ip))
            .collect()
    }
}

/// Where and how copies go: shared by `mirror run` and `mirror replay`.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Tunnel the copies are wrapped in.
    #[arg(long, value_enum, default_value_t = TunnelArg::Vxlan)]
    pub tunnel: TunnelArg,

    /// Where to send the copies: `IP` or `IP:PORT`, IPv4 or IPv6 (`[IPv6]:PORT`), repeatable.
    /// A port is for VxLAN only and defaults to --vxlan-port.
    #[arg(
        long = "remote",
        value_name = "IP[:PORT]",
        required_unless_present = "netflow"
    )]
    pub remotes: Vec<Remote>,

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
    pub netflow: Vec<NetflowTarget>,

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
pub enum DirectionArg {
    Ingress,
    Egress,
    Both,
}

impl DirectionArg {
    pub fn ingress(self) -> bool {
        self != Self::Egress
    }

    pub fn egress(self) -> bool {
        self != Self::Ingress
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TunnelArg {
    /// VxLAN over UDP (RFC 7348).
    Vxlan,
    /// GRE, Transparent Ethernet Bridging (RFC 2784, 2890).
    Gre,
    /// ERSPAN Type I: GRE protocol 0x88BE, no ERSPAN header.
    Erspan1,
    /// ERSPAN Type II: GRE 0x88BE with sequence numbers and the version 1 header.
    Erspan2,
    /// ERSPAN Type III: GRE 0x22EB with sequence numbers and the version 2 header.
    Erspan3,
}

impl TunnelArg {
    /// The `tunnel` label of the metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Vxlan => "vxlan",
            Self::Gre => "gre",
            Self::Erspan1 => "erspan1",
            Self::Erspan2 => "erspan2",
            Self::Erspan3 => "erspan3",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SendPathArg {
    AfXdp,
    Socket,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FilterPathArg {
    Kernel,
    User,
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
        if gre_only && self.tunnel != TunnelArg::Gre {
            return misplaced(if self.gre_seq {
                "--gre-seq"
            } else {
                "--gre-key"
            });
        }
        if self.erspan_session != 0
            && !matches!(self.tunnel, TunnelArg::Erspan2 | TunnelArg::Erspan3)
        {
            return misplaced("--erspan-session");
        }
        if self.erspan_index != 0 && self.tunnel != TunnelArg::Erspan2 {
            return misplaced("--erspan-index");
        }
        if (self.erspan_hwid != 0 || self.erspan_sgt != 0) && self.tunnel != TunnelArg::Erspan3 {
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
        if self.tunnel != TunnelArg::Vxlan
            && let Some(remote) = self.remotes.iter().find(|r| r.port.is_some())
        {
            return Err(format!("--remote {remote}: a port applies to VxLAN only"));
        }
        Ok(match self.tunnel {
            TunnelArg::Vxlan => Tunnel::Vxlan {
                vni: self.vni,
                dst_port: self.vxlan_port,
            },
            TunnelArg::Gre => Tunnel::Gre {
                key: self.gre_key,
                sequence: self.gre_seq,
            },
            TunnelArg::Erspan1 => Tunnel::Erspan1,
            TunnelArg::Erspan2 => Tunnel::Erspan2 {
                session: self.erspan_session,
                index: self.erspan_index,
            },
            TunnelArg::Erspan3 => Tunnel::Erspan3 {
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

/// A flow export format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NetflowVersion {
    /// NetFlow v5: IPv4 flows only.
    V5,
    /// IPFIX (RFC 7011), version number 10.
    Ipfix,
}

impl NetflowVersion {
    /// The version number in the datagram header, and in the metrics' `version` label.
    pub const fn number(self) -> u16 {
        match self {
            NetflowVersion::V5 => 5,
            NetflowVersion::Ipfix => 10,
        }
    }
}

impl core::fmt::Display for NetflowVersion {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", self.number())
    }
}

/// One `--netflow` collector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetflowTarget {
    pub addr: SocketAddr,
    /// `Some` if the address came with a scheme (`ipfix://`); otherwise --netflow-version's.
    pub version: Option<NetflowVersion>,
}

impl core::str::FromStr for NetflowTarget {
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
        Ok(NetflowTarget { addr, version })
    }
}

impl core::fmt::Display for NetflowTarget {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
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

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, error::ErrorKind};

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(["mirror", "run"].iter().chain(args))
    }

    fn run_args(cli: Cli) -> RunArgs {
        match cli.command {
            Command::Run(run) => run,
            other => panic!("not `run`: {other:?}"),
        }
    }

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults() {
        let run = run_args(parse(&["--iface", "veth1", "--remote", "198.18.0.2"]).unwrap());
        assert_eq!(run.direction, DirectionArg::Both);
        let run = run.output;
        assert_eq!(run.vni.get(), 1);
        assert_eq!(run.vxlan_port, 4789);
        assert_eq!(run.tunnel, TunnelArg::Vxlan);
        assert_eq!(run.agent_mark, mirror_common::DEFAULT_AGENT_MARK);
        assert!(run.metrics.is_none());
    }

    #[test]
    fn vni_above_24_bits_is_rejected() {
        let err = parse(&[
            "--iface",
            "a",
            "--remote",
            "198.18.0.2",
            "--vni",
            "16777216",
        ])
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ValueValidation);
        parse(&[
            "--iface",
            "a",
            "--remote",
            "198.18.0.2",
            "--vni",
            "16777215",
        ])
        .unwrap();
    }

    #[test]
    fn bad_remote_is_rejected() {
        for bad in ["300.1.2.3", "198.18.0.2:99999", "host", ""] {
            let err = parse(&["--iface", "a", "--remote", bad]).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::ValueValidation, "{bad}");
        }
    }

    #[test]
    fn tunnel_options_belong_to_their_tunnel() {
        let tunnel = |args: &[&str]| {
            let run = run_args(parse(
                &[&["--iface", "a", "--remote", "198.18.0.2"], args].concat(),
            )?);
            Ok::<_, clap::Error>(run.output.tunnel())
        };
        assert_eq!(
            tunnel(&["--tunnel", "gre", "--gre-key", "7", "--gre-seq"]).unwrap(),
            Ok(Tunnel::Gre {
                key: Some(7),
                sequence: true
            })
        );
        assert_eq!(
            tunnel(&[
                "--tunnel",
                "erspan2",
                "--erspan-session",
                "5",
                "--erspan-index",
                "9"
            ])
            .unwrap(),
            Ok(Tunnel::Erspan2 {
                session: 5,
                index: 9
            })
        );
        assert!(
            tunnel(&["--gre-key", "7"])
                .unwrap()
                .unwrap_err()
                .contains("--gre-key")
        );
        assert!(
            tunnel(&["--tunnel", "gre", "--erspan-index", "1"])
                .unwrap()
                .unwrap_err()
                .contains("--erspan-index")
        );
        assert!(
            tunnel(&["--tunnel", "erspan2", "--erspan-hwid", "1"])
                .unwrap()
                .unwrap_err()
                .contains("--erspan-hwid")
        );
        let run = run_args(
            parse(&[
                "--iface",
                "a",
                "--remote",
                "198.18.0.2:4789",
                "--tunnel",
                "gre",
            ])
            .unwrap(),
        );
        assert!(run.output.tunnel().unwrap_err().contains("VxLAN only"));
    }

    #[test]
    fn netflow_alone_needs_no_remote() {
        let run = run_args(parse(&["--iface", "a", "--netflow", "198.18.0.2:2055"]).unwrap());
        assert!(run.output.remotes.is_empty());
        assert_eq!(run.output.netflow_inactive_timeout, 15);
        assert_eq!(run.output.netflow_active_timeout, 60);
        assert_eq!(run.output.flow_cache_size, 65_536);
        assert!(parse(&["--iface", "a"]).is_err());
        assert!(parse(&["--iface", "a", "--netflow", "198.18.0.2"]).is_err());
        let run = run_args(parse(&["--iface", "a", "--netflow", "198.18.0.2:0"]).unwrap());
        assert!(run.output.tunnel().unwrap_err().contains("non-zero port"));
    }

    #[test]
    fn netflow_versions_per_collector() {
        let v5 = NetflowVersion::V5;
        let ipfix = NetflowVersion::Ipfix;
        let collectors = |args: &[&str]| {
            let mut all = vec!["--iface", "a"];
            all.extend_from_slice(args);
            run_args(parse(&all).unwrap()).output.netflow_collectors()
        };
        let a: SocketAddr = "198.18.0.2:2055".parse().unwrap();
        let b: SocketAddr = "[fd00:198:18::2]:4739".parse().unwrap();
        assert_eq!(
            collectors(&[
                "--netflow",
                "198.18.0.2:2055",
                "--netflow",
                "ipfix://[fd00:198:18::2]:4739"
            ]),
            [(a, v5), (b, ipfix)]
        );
        assert_eq!(
            collectors(&["--netflow-version", "10", "--netflow", "198.18.0.2:2055"]),
            [(a, ipfix)]
        );
        let run =
            run_args(parse(&["--iface", "a", "--netflow", "ipfix://198.18.0.2:2055"]).unwrap());
        assert_eq!(run.output.ipfix_domain, 0);
        assert_eq!(run.output.netflow[0].to_string(), "ipfix://198.18.0.2:2055");
        for (args, error) in [
            (
                &["--netflow", "v9://198.18.0.2:2055"][..],
                "unknown scheme v9://",
            ),
            (
                &["--netflow", "ipfix://198.18.0.2"][..],
                "'198.18.0.2' is not IP:PORT",
            ),
            (
                &["--netflow-version", "9"][..],
                "'9': mirror exports NetFlow version 5 or 10",
            ),
        ] {
            let mut all = vec!["--iface", "a"];
            all.extend_from_slice(args);
            let message = parse(&all).unwrap_err().to_string();
            assert!(message.contains(error), "{message}");
        }
    }

    #[test]
    fn kubernetes_options() {
        let run = run_args(
            parse(&[
                "--remote",
                "198.18.0.2",
                "--pod-selector",
                "app=web",
                "--pod-selector",
                "tier in (a, b),!legacy",
                "--kubeconfig",
                "/etc/mirror/kubeconfig",
                "--node-name",
                "worker-1",
                "--wait-for-pods",
            ])
            .unwrap(),
        );
        let selectors: Vec<String> = run.pod_selectors.iter().map(ToString::to_string).collect();
        assert_eq!(selectors, ["app=web", "tier in (a,b),!legacy"]);
        assert_eq!(
            run.kubeconfig.as_deref(),
            Some(std::path::Path::new("/etc/mirror/kubeconfig"))
        );
        assert_eq!(run.node_name.as_deref(), Some("worker-1"));
        assert!(run.wait_for_pods);
        let err = parse(&["--remote", "198.18.0.2", "--pod-selector", "app=we b"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ValueValidation);
        assert!(err.to_string().contains("value `we b`"), "{err}");
    }

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
}
