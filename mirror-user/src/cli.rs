//! The `mirror` command line.
use std::net::SocketAddr;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{remote::Remote, wire::vxlan::Vni};

#[derive(Debug, Parser)]
#[command(
    name = "mirror",
    version,
    about = "Copies the traffic of pods or NICs to remote analysers, wrapped in a tunnel",
    long_about = "Copies every packet of the selected interfaces (both directions) with eBPF, \
                  reads the copies over AF_XDP and sends each one, wrapped in a tunnel header, \
                  to every remote. The mirrored traffic itself is never changed."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Mirror live traffic of this node's interfaces.
    Run(RunArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Interface to mirror, e.g. a pod's host-side veth or eth0 (repeatable).
    #[arg(long = "iface", value_name = "NAME", required = true)]
    pub ifaces: Vec<String>,

    /// Which packets of each interface to copy, as the interface sees them: `ingress` is what it
    /// receives (for a pod's host-side veth: what the pod sends), `egress` what it transmits.
    #[arg(long, value_enum, default_value_t = DirectionArg::Both)]
    pub direction: DirectionArg,

    /// Tunnel the copies are wrapped in.
    #[arg(long, value_enum, default_value_t = TunnelArg::Vxlan)]
    pub tunnel: TunnelArg,

    /// Where to send the copies: `IP` or `IP:PORT` (repeatable; every remote gets every copy).
    /// The port defaults to --vxlan-port.
    #[arg(long = "remote", value_name = "IP[:PORT]", required = true)]
    pub remotes: Vec<Remote>,

    /// VxLAN network identifier, 0 to 16777215.
    #[arg(long, value_name = "N", default_value_t = Vni::default())]
    pub vni: Vni,

    /// UDP destination port of the VxLAN packets (4789 is IANA's; flannel uses 8472).
    #[arg(long, value_name = "PORT", default_value_t = 4789)]
    pub vxlan_port: u16,

    /// Serve Prometheus metrics at http://ADDR:PORT/metrics (not served unless given).
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<SocketAddr>,

    /// SO_MARK of the agent's own packets. Packets carrying it are never mirrored, so the copies
    /// leaving a mirrored interface are not copied again. Change it if the mark is in use.
    #[arg(long, value_name = "MARK", default_value_t = mirror_common::DEFAULT_AGENT_MARK, value_parser = parse_mark)]
    pub agent_mark: u32,
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
    /// VxLAN over UDP (RFC 7348), the inner frame is the whole original Ethernet frame.
    Vxlan,
}

impl TunnelArg {
    pub fn name(self) -> &'static str {
        match self {
            Self::Vxlan => "vxlan",
        }
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

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults() {
        let Command::Run(run) = parse(&["--iface", "veth1", "--remote", "198.18.0.2"])
            .unwrap()
            .command;
        assert_eq!(run.vni.get(), 1);
        assert_eq!(run.vxlan_port, 4789);
        assert_eq!(run.direction, DirectionArg::Both);
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
    fn marks() {
        assert_eq!(parse_mark("0x10"), Ok(16));
        assert_eq!(parse_mark("16"), Ok(16));
        assert!(parse_mark("0").is_err());
        assert!(parse_mark("0x80000000").is_err());
        assert!(parse_mark("x").is_err());
    }
}
