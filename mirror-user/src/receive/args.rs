//! The options of `mirror receive`, and their checking into a [`Config`].

use std::{
    net::{IpAddr, Ipv6Addr, SocketAddr},
    path::PathBuf,
};

use clap::Args;

use super::decap::Accept;
use crate::{
    UsageError,
    tunnel::TunnelKind,
    wire::{erspan::SESSION_MAX, vxlan::Vni},
};

/// The IANA VXLAN port, the default of `--vxlan-port`.
pub const DEFAULT_VXLAN_PORT: u16 = 4789;

#[derive(Debug, Clone, Args)]
#[command(
    about = "Decapsulate tunnel traffic sent to this host into a pcap file",
    long_about = "Receives VxLAN, GRE or ERSPAN packets sent to a local address (by `mirror run` \
                  or a switch) without creating a kernel tunnel device, and writes the inner \
                  Ethernet frames to a pcap file with nanosecond timestamps (pcapng if its \
                  name ends in .pcapng: one interface per ERSPAN session, VxLAN VNI or GRE \
                  key, ERSPAN III directions, a comment with the session, VLAN, COS and \
                  truncation). Runs until \
                  SIGINT/SIGTERM or --count frames, then prints a summary line with the drops \
                  by reason. GRE and ERSPAN need root or CAP_NET_RAW (raw socket)."
)]
pub struct ReceiveArgs {
    /// Tunnel to decapsulate; packets of any other tunnel are dropped.
    #[arg(long, value_enum)]
    pub tunnel: TunnelKind,

    /// Local IPv4 or IPv6 address to receive on (0.0.0.0 or :: for all). For VxLAN also
    /// ADDR:PORT ([IPv6]:PORT), the port defaulting to --vxlan-port.
    #[arg(long, value_name = "ADDR[:PORT]")]
    pub listen: String,

    /// UDP port to receive VxLAN on [default: 4789; flannel uses 8472]. Only with --tunnel
    /// vxlan, and not with a port in --listen.
    #[arg(long, value_name = "PORT")]
    pub vxlan_port: Option<u16>,

    /// Keep only packets whose outer source address is IP (repeatable: any of them).
    #[arg(long = "from", value_name = "IP")]
    pub from: Vec<IpAddr>,

    /// The file to write (created, or truncated if it exists): pcapng if its name ends in
    /// .pcapng (an interface per ERSPAN session, VxLAN VNI or GRE key, ERSPAN III directions,
    /// ERSPAN headers as packet comments), else pcap.
    #[arg(long, value_name = "FILE.pcap|FILE.pcapng")]
    pub write: PathBuf,

    /// Stop after writing N frames.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,

    /// Keep only VxLAN packets of this VNI (0 to 16777215). Only with --tunnel vxlan.
    #[arg(long, value_name = "N")]
    pub vni: Option<u32>,

    /// Keep only GRE packets with this key (RFC 2890). Only with --tunnel gre.
    #[arg(long, value_name = "KEY")]
    pub gre_key: Option<u32>,

    /// Keep only ERSPAN packets of this session ID (0 to 1023). Only with --tunnel erspan2 or
    /// erspan3 (Type I has no session ID).
    #[arg(long, value_name = "N")]
    pub session: Option<u16>,
}

/// Checked options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub accept: Accept,
    /// Where to bind: the port is the VXLAN port, 0 for the raw GRE socket.
    pub listen: SocketAddr,
    /// Outer sources to keep; empty keeps all.
    pub from: Vec<IpAddr>,
    pub write: PathBuf,
    pub count: Option<u64>,
    /// The ERSPAN session to keep; `None` keeps all.
    pub session: Option<u16>,
}

impl ReceiveArgs {
    /// Check the options together; every error is bad usage.
    pub fn config(&self) -> Result<Config, UsageError> {
        let name = self.tunnel.name();
        let misplaced =
            |option: &str| UsageError(format!("{option} does not apply to --tunnel {name}"));
        let vxlan = self.tunnel == TunnelKind::Vxlan;
        if !vxlan && self.vni.is_some() {
            return Err(misplaced("--vni"));
        }
        if !vxlan && self.vxlan_port.is_some() {
            return Err(misplaced("--vxlan-port"));
        }
        if self.tunnel != TunnelKind::Gre && self.gre_key.is_some() {
            return Err(misplaced("--gre-key"));
        }
        if !matches!(self.tunnel, TunnelKind::Erspan2 | TunnelKind::Erspan3)
            && self.session.is_some()
        {
            return Err(misplaced("--session"));
        }
        if let Some(session) = self.session.filter(|&s| s > SESSION_MAX) {
            return Err(UsageError(format!(
                "--session {session}: above {SESSION_MAX} (10 bits)"
            )));
        }
        let (ip, port) = parse_listen(&self.listen)?;
        if ip.is_multicast() {
            return Err(UsageError(format!(
                "--listen {}: multicast addresses are not supported; give a local unicast \
                 address",
                self.listen
            )));
        }
        let port = match (port, self.vxlan_port) {
            (Some(_), _) if !vxlan => {
                return Err(UsageError(format!(
                    "--listen {}: a port applies to VxLAN only",
                    self.listen
                )));
            }
            (Some(_), Some(_)) => {
                return Err(UsageError(format!(
                    "--listen {} gives a port: leave out --vxlan-port",
                    self.listen
                )));
            }
            (Some(port), None) | (None, Some(port)) => port,
            (None, None) if vxlan => DEFAULT_VXLAN_PORT,
            (None, None) => 0,
        };
        for &source in &self.from {
            check_family(source, ip, vxlan)?;
        }
        let accept = match self.tunnel {
            TunnelKind::Vxlan => Accept::Vxlan {
                vni: self.vni.map(parse_vni).transpose()?,
            },
            TunnelKind::Gre => Accept::Gre { key: self.gre_key },
            TunnelKind::Erspan1 => Accept::Erspan1,
            TunnelKind::Erspan2 => Accept::Erspan2,
            TunnelKind::Erspan3 => Accept::Erspan3,
        };
        let mut from: Vec<IpAddr> = self.from.iter().map(IpAddr::to_canonical).collect();
        from.sort_unstable();
        from.dedup();
        Ok(Config {
            accept,
            listen: SocketAddr::new(ip, port),
            from,
            write: self.write.clone(),
            count: self.count,
            session: self.session,
        })
    }
}

/// `ADDR`, `[IPv6]` or `ADDR:PORT` / `[IPv6]:PORT`.
fn parse_listen(s: &str) -> Result<(IpAddr, Option<u16>), UsageError> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok((addr.ip(), Some(addr.port())));
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok((ip, None));
    }
    if let Some(ip) = s
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|inner| inner.parse::<Ipv6Addr>().ok())
    {
        return Ok((IpAddr::V6(ip), None));
    }
    Err(UsageError(format!(
        "--listen {s}: not an IPv4 or IPv6 address (ADDR, or for VxLAN ADDR:PORT or \
         [IPv6]:PORT)"
    )))
}

fn parse_vni(value: u32) -> Result<Vni, UsageError> {
    Vni::new(value).ok_or_else(|| UsageError(format!("--vni {value}: above 16777215 (24 bits)")))
}

/// A `--from` source must be able to reach the listening socket: same family, except IPv4
/// sources on a dual-stack UDP socket bound to `::`.
fn check_family(source: IpAddr, listen: IpAddr, udp: bool) -> Result<(), UsageError> {
    let source = source.to_canonical();
    let ok = match (source, listen) {
        (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => true,
        (IpAddr::V4(_), IpAddr::V6(listen)) => udp && listen.is_unspecified(),
        (IpAddr::V6(_), IpAddr::V4(_)) => false,
    };
    if ok {
        Ok(())
    } else {
        Err(UsageError(format!(
            "--from {source}: packets from it cannot reach --listen {listen} (other IP version)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: ReceiveArgs,
    }

    fn args(list: &[&str]) -> ReceiveArgs {
        Cli::try_parse_from(["receive"].iter().chain(list))
            .unwrap()
            .args
    }

    fn config(list: &[&str]) -> Result<Config, String> {
        args(list).config().map_err(|e| e.0)
    }

    fn base(tunnel: &str, listen: &str) -> Vec<String> {
        [
            "--tunnel", tunnel, "--listen", listen, "--write", "out.pcap",
        ]
        .map(String::from)
        .to_vec()
    }

    fn with(tunnel: &str, listen: &str, extra: &[&str]) -> Result<Config, String> {
        let mut list = base(tunnel, listen);
        list.extend(extra.iter().map(|s| (*s).to_owned()));
        let refs: Vec<&str> = list.iter().map(String::as_str).collect();
        config(&refs)
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn vxlan_defaults_and_ports() {
        let config = with("vxlan", "127.0.0.1", &[]).unwrap();
        assert_eq!(config.listen, "127.0.0.1:4789".parse().unwrap());
        assert_eq!(config.accept, Accept::Vxlan { vni: None });
        assert_eq!(config.count, None);
        assert!(config.from.is_empty());
        assert_eq!(config.write, PathBuf::from("out.pcap"));
        let config = with("vxlan", "127.0.0.1:8472", &[]).unwrap();
        assert_eq!(config.listen.port(), 8472);
        let config = with("vxlan", "::1", &["--vxlan-port", "8472"]).unwrap();
        assert_eq!(config.listen, "[::1]:8472".parse().unwrap());
        let config = with("vxlan", "[::1]", &[]).unwrap();
        assert_eq!(config.listen, "[::1]:4789".parse().unwrap());
        let config = with("vxlan", "[::]:9", &["--vni", "16777215", "--count", "3"]).unwrap();
        assert_eq!(config.listen, "[::]:9".parse().unwrap());
        assert_eq!(
            config.accept,
            Accept::Vxlan {
                vni: Some(Vni::MAX)
            }
        );
        assert_eq!(config.count, Some(3));
    }

    #[test]
    fn gre_family() {
        let config = with("gre", "198.18.0.1", &["--gre-key", "7"]).unwrap();
        assert_eq!(config.accept, Accept::Gre { key: Some(7) });
        assert_eq!(config.listen, "198.18.0.1:0".parse().unwrap());
        for (name, accept) in [
            ("erspan1", Accept::Erspan1),
            ("erspan2", Accept::Erspan2),
            ("erspan3", Accept::Erspan3),
        ] {
            let config = with(name, "2001:db8::1", &[]).unwrap();
            assert_eq!(config.accept, accept);
            assert_eq!(config.listen, "[2001:db8::1]:0".parse().unwrap());
        }
    }

    #[test]
    fn from_sources() {
        let config = with(
            "gre",
            "0.0.0.0",
            &[
                "--from", "10.0.0.2", "--from", "10.0.0.1", "--from", "10.0.0.2",
            ],
        )
        .unwrap();
        let expected: Vec<IpAddr> = vec!["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()];
        assert_eq!(config.from, expected);
        // Mapped IPv6 sources are IPv4 sources.
        let config = with("vxlan", "127.0.0.1", &["--from", "::ffff:127.0.0.2"]).unwrap();
        assert_eq!(config.from, vec!["127.0.0.2".parse::<IpAddr>().unwrap()]);
        // IPv4 sources reach a dual-stack UDP socket on ::, not a raw one.
        with("vxlan", "::", &["--from", "10.0.0.1"]).unwrap();
        for (tunnel, listen) in [("gre", "::"), ("vxlan", "::1"), ("gre", "::1")] {
            let err = with(tunnel, listen, &["--from", "10.0.0.1"]).unwrap_err();
            assert!(err.contains("other IP version"), "{err}");
        }
        let err = with("vxlan", "127.0.0.1", &["--from", "::1"]).unwrap_err();
        assert_eq!(
            err,
            "--from ::1: packets from it cannot reach --listen 127.0.0.1 (other IP version)"
        );
    }

    #[test]
    fn bad_listen_addresses() {
        for bad in [
            "",
            "localhost",
            "300.1.2.3",
            "[::1",
            "1.2.3.4:99999",
            "[127.0.0.1]",
        ] {
            let err = with("vxlan", bad, &[]).unwrap_err();
            assert!(
                err.starts_with(&format!("--listen {bad}: not an IPv4")),
                "{err}"
            );
        }
        assert_eq!(
            with("gre", "127.0.0.1:4789", &[]).unwrap_err(),
            "--listen 127.0.0.1:4789: a port applies to VxLAN only"
        );
        assert_eq!(
            with("vxlan", "127.0.0.1:4789", &["--vxlan-port", "8472"]).unwrap_err(),
            "--listen 127.0.0.1:4789 gives a port: leave out --vxlan-port"
        );
        let err = with("vxlan", "239.1.1.1", &[]).unwrap_err();
        assert!(err.contains("multicast"), "{err}");
    }

    #[test]
    fn options_belong_to_their_tunnel() {
        let cases = [
            ("gre", "--vni", "1"),
            ("erspan3", "--vni", "1"),
            ("erspan1", "--vxlan-port", "8472"),
            ("vxlan", "--gre-key", "1"),
            ("erspan2", "--gre-key", "1"),
            ("erspan1", "--session", "1"),
            ("vxlan", "--session", "1"),
            ("gre", "--session", "1"),
        ];
        for (tunnel, option, value) in cases {
            assert_eq!(
                with(tunnel, "127.0.0.1", &[option, value]).unwrap_err(),
                format!("{option} does not apply to --tunnel {tunnel}")
            );
        }
    }

    #[test]
    fn erspan_sessions() {
        for tunnel in ["erspan2", "erspan3"] {
            let config = with(tunnel, "127.0.0.1", &["--session", "1023"]).unwrap();
            assert_eq!(config.session, Some(1023));
            assert_eq!(
                with(tunnel, "127.0.0.1", &["--session", "1024"]).unwrap_err(),
                "--session 1024: above 1023 (10 bits)"
            );
        }
        assert_eq!(with("erspan3", "::1", &[]).unwrap().session, None);
    }

    #[test]
    fn vni_out_of_range() {
        assert_eq!(
            with("vxlan", "127.0.0.1", &["--vni", "16777216"]).unwrap_err(),
            "--vni 16777216: above 16777215 (24 bits)"
        );
    }

    #[test]
    fn clap_rejects_what_it_can() {
        let parse = |extra: &[&str]| {
            let mut list = vec!["receive"];
            list.extend(extra);
            Cli::try_parse_from(list)
        };
        let ok = ["--tunnel", "gre", "--listen", "::1", "--write", "x.pcap"];
        parse(&ok).unwrap();
        assert!(parse(&ok[2..]).is_err(), "--tunnel is required");
        assert!(parse(&[&ok[..], &["--count", "0"]].concat()).is_err());
        assert!(parse(&[&ok[..], &["--from", "host"]].concat()).is_err());
        assert!(parse(&[&ok[..], &["--tunnel", "ipip"]].concat()).is_err());
        assert!(parse(&ok[..4]).is_err(), "--write is required");
    }
}
