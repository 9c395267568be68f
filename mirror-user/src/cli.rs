//! The `mirror` command line: the subcommands. Each one's options live with the code that uses
//! them ([`RunArgs`], [`ReceiveArgs`], [`ReplayArgs`], and the [`OutputArgs`] of `run` and
//! `replay`).
use clap::{Parser, Subcommand};

#[cfg(doc)]
use crate::output::args::OutputArgs;
use crate::{log::LogFormat, receive::ReceiveArgs, replay::ReplayArgs, run::args::RunArgs};

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

    /// How the log on stderr is written: `text`, each message on its line, or `json`, one
    /// object a line with the level, time and fields (iface, pod, remote, ...) for log
    /// pipelines. `RUST_LOG` chooses what is written (default: `mirror=info`).
    #[arg(long, value_enum, global = true, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Mirror live traffic of this node's interfaces.
    Run(RunArgs),
    /// Receive tunnelled copies and write the inner frames to a pcap file (no tunnel device
    /// or root needed for VxLAN; GRE and ERSPAN need a raw socket).
    Receive(ReceiveArgs),
    /// Send the packets of a pcap or pcapng file, wrapped in a tunnel and counted in NetFlow,
    /// like live copies.
    Replay(ReplayArgs),
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use clap::{CommandFactory, error::ErrorKind};

    use super::*;
    use crate::{
        netflow::collector::NetflowVersion,
        pod::Wanted,
        run::args::DirectionArg,
        tunnel::{Tunnel, TunnelKind},
    };

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
        assert_eq!(run.tunnel, TunnelKind::Vxlan);
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
    fn pod_options_replace_iface() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(
                ["mirror", "run", "--remote", "198.18.0.2"]
                    .iter()
                    .chain(args),
            )
        };
        let Command::Run(run) = parse(&["--pod", "shop/coffee", "--pod-ip", "198.19.0.2"])
            .unwrap()
            .command
        else {
            panic!("not run")
        };
        assert!(run.ifaces.is_empty());
        assert_eq!(
            run.wanted_pods(),
            [
                Wanted::Name("shop/coffee".parse().unwrap()),
                Wanted::Ip("198.19.0.2".parse().unwrap())
            ]
        );
        // Neither is refused by `mirror run` itself, in one line.
        assert!(parse(&[]).is_ok());
        assert!(parse(&["--pod", "Coffee"]).is_err());
        assert!(parse(&["--iface", "eth0", "--pod", "coffee"]).is_ok());
    }
}
