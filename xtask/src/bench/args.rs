//! The options of `cargo xtask bench`, and the settings they make (`--smoke` replaces some).

use anyhow::{Context as _, Result};
use clap::{Args, FromArgMatches as _};

use super::{peer::PeerSpec, remote::RemoteKind};

/// Options of `cargo xtask bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Runs per subject and scenario (the median is reported; at least 3).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(3..))]
    pub runs: u32,
    /// Seconds of traffic in each run of a live or TCP scenario.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub seconds: u64,
    /// Rates of the live UDP scenarios in packets per second (`50k`, `150000`), or `max`: as
    /// fast as the generator goes.
    #[arg(long, value_delimiter = ',', default_value = "50k,100k,150k,max", value_parser = parse_rate)]
    pub rates: Vec<Rate>,
    /// Rounds of the TCP scenarios (no mirror, kernel, agent next to each other; at least 5).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(5..))]
    pub iperf_rounds: u32,
    /// The CPU the agent is pinned to (`taskset -c`), and both senders of the replay scenario.
    #[arg(long, default_value_t = 1)]
    pub cpu: u32,
    /// The CPU the traffic generator is pinned to.
    #[arg(long, default_value_t = 0)]
    pub gen_cpu: u32,
    /// Frames in the replay scenario's synthetic capture file.
    #[arg(long, default_value_t = 200_000)]
    pub frames: u32,
    /// Times each replay sender plays the file per run.
    #[arg(long, default_value_t = 5)]
    pub loops: u32,
    /// Only the scenarios whose name contains one of these (a comma list).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Another mirror as a fourth subject, `peer`: a shell command run in the node namespace
    /// on the agent's CPU, with `{iface}`, `{remote}`, `{vni}`, `{port}` and `{filter}` (the filter scenarios'
    /// expression, else empty) replaced; stopped
    /// with SIGINT (sent to its process group).
    #[arg(long)]
    pub peer: Option<String>,
    /// The peer is ready once a line of its stderr contains this (else it gets a few seconds).
    #[arg(long, requires = "peer")]
    pub peer_ready_line: Option<String>,
    /// The peer's name in tables and JSON (e.g. `pktminerg 0.4.0`).
    #[arg(long, requires = "peer", default_value = "peer")]
    pub peer_name: String,
    /// The remote of the live and replay scenarios: the kernel VTEP (decapsulates, as a real
    /// remote would, but on the sending CPU), an XDP sink on the remote's uplink end that counts
    /// the tunnel packets and drops them (the mirror's own cost alone), or both, one after the
    /// other.
    #[arg(long, value_enum, default_value_t = RemoteChoice::Both)]
    pub remote_kind: RemoteChoice,
    /// Runs the sink's receive on this CPU (threaded NAPI on the remote's uplink end, its thread
    /// pinned here) instead of in the sender's softirq on the sending CPU, as a remote on
    /// another machine would: every subject's own CPU then leaves out the sink's work.
    #[arg(long)]
    pub sink_cpu: Option<u32>,
    /// Turns GRO on at the remote's uplink end, as a physical NIC has it (veth has it off): the
    /// VTEP then decapsulates coalesced runs of a flow's packets once instead of each.
    #[arg(long)]
    pub remote_gro: bool,
    /// A short run that only checks that the bench works: 1 run of 2 s, 50k pps, one TCP round,
    /// a small replay, the kernel made into a peer unless `--peer` is given; fails when a figure
    /// is missing, never on a speed.
    #[arg(long)]
    pub smoke: bool,
}

/// `--remote-kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RemoteChoice {
    Vtep,
    Sink,
    Both,
}

impl RemoteChoice {
    fn kinds(self) -> Vec<RemoteKind> {
        match self {
            Self::Vtep => vec![RemoteKind::Vtep],
            Self::Sink => vec![RemoteKind::Sink],
            Self::Both => vec![RemoteKind::Vtep, RemoteKind::Sink],
        }
    }
}

impl BenchArgs {
    /// The arguments of `cargo xtask bench --smoke`.
    pub fn smoke() -> Result<Self> {
        let matches = Self::augment_args(clap::Command::new("bench"))
            .try_get_matches_from(["bench", "--smoke"])
            .context("the bench's own --smoke arguments")?;
        Self::from_arg_matches(&matches).context("the bench's own --smoke arguments")
    }
}

/// A rate of the live UDP scenarios.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rate {
    Pps(u64),
    /// As fast as the generator goes on its core.
    Max,
}

impl Rate {
    pub fn pps(self) -> Option<u64> {
        match self {
            Self::Pps(pps) => Some(pps),
            Self::Max => None,
        }
    }

    /// For scenario names: `50k`, `1234`, `max`.
    pub fn short(self) -> String {
        match self {
            Self::Pps(pps) if pps % 1000 == 0 => format!("{}k", pps / 1000),
            Self::Pps(pps) => pps.to_string(),
            Self::Max => "max".to_owned(),
        }
    }

    /// For titles.
    pub fn describe(self) -> String {
        match self {
            Self::Pps(_) => format!("{} pps", self.short()),
            Self::Max => "the generator's maximum rate".to_owned(),
        }
    }
}

/// `50k`, `150000`, `1m` or `max`.
fn parse_rate(text: &str) -> Result<Rate, String> {
    let text = text.trim().to_ascii_lowercase();
    if text == "max" {
        return Ok(Rate::Max);
    }
    let (digits, scale) = match text.strip_suffix('k') {
        Some(digits) => (digits, 1_000),
        None => text
            .strip_suffix('m')
            .map_or((text.as_str(), 1), |digits| (digits, 1_000_000)),
    };
    match digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
    {
        Some(pps) if pps > 0 => Ok(Rate::Pps(pps)),
        _ => Err(format!(
            "`{text}` is not a rate: packets per second such as 50k, 150000 or 1m, or max"
        )),
    }
}

/// The options in force (`--smoke` replaces some).
pub struct Settings {
    pub runs: usize,
    pub seconds: u64,
    pub rates: Vec<Rate>,
    pub iperf_rounds: usize,
    pub cpu: u32,
    pub gen_cpu: u32,
    pub frames: u32,
    pub loops: u32,
    pub smoke: bool,
    pub only: Vec<String>,
    pub peer: Option<PeerSpec>,
    /// The remotes of the live scenarios, in the order they run.
    pub remote_kinds: Vec<RemoteKind>,
    /// Where the sink's receive runs, if not on the sending CPU.
    pub sink_cpu: Option<u32>,
    /// GRO on at the remote's uplink end.
    pub remote_gro: bool,
}

impl Settings {
    pub fn new(args: BenchArgs) -> Self {
        let mut settings = Self {
            runs: args.runs as usize,
            seconds: args.seconds,
            rates: args.rates,
            iperf_rounds: args.iperf_rounds as usize,
            cpu: args.cpu,
            gen_cpu: args.gen_cpu,
            frames: args.frames,
            loops: args.loops,
            smoke: args.smoke,
            only: args.only,
            peer: args.peer.map(|command| PeerSpec {
                name: args.peer_name,
                command,
                ready_line: args.peer_ready_line,
            }),
            remote_kinds: args.remote_kind.kinds(),
            sink_cpu: args.sink_cpu,
            remote_gro: args.remote_gro,
        };
        if args.smoke {
            settings.peer.get_or_insert_with(PeerSpec::kernel_made);
            settings.runs = 1;
            settings.seconds = 2;
            settings.rates = vec![Rate::Pps(50_000)];
            settings.iperf_rounds = 1;
            settings.frames = 20_000;
            settings.loops = 1;
        }
        settings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> BenchArgs {
        let matches = BenchArgs::augment_args(clap::Command::new("bench"))
            .try_get_matches_from(std::iter::once("bench").chain(args.iter().copied()))
            .unwrap();
        BenchArgs::from_arg_matches(&matches).unwrap()
    }

    #[test]
    fn only_takes_a_list_and_the_remote_kinds_default_to_both() {
        let settings = Settings::new(parse(&["--only", "live-64b,iperf"]));
        assert_eq!(settings.only, ["live-64b", "iperf"]);
        assert_eq!(settings.remote_kinds, [RemoteKind::Vtep, RemoteKind::Sink]);
        assert!(settings.peer.is_none());
        let settings = Settings::new(parse(&["--remote-kind", "sink", "--peer", "x {iface}"]));
        assert_eq!(settings.remote_kinds, [RemoteKind::Sink]);
        assert_eq!(settings.peer.unwrap().name, "peer");
    }

    #[test]
    fn smoke_brings_the_kernel_made_peer() {
        let settings = Settings::new(BenchArgs::smoke().unwrap());
        assert_eq!(settings.peer, Some(PeerSpec::kernel_made()));
    }

    #[test]
    fn parses_rates() {
        assert_eq!(parse_rate("50k"), Ok(Rate::Pps(50_000)));
        assert_eq!(parse_rate("150000"), Ok(Rate::Pps(150_000)));
        assert_eq!(parse_rate("1M"), Ok(Rate::Pps(1_000_000)));
        assert_eq!(parse_rate("max"), Ok(Rate::Max));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("fast").is_err());
        assert_eq!(Rate::Pps(150_000).short(), "150k");
        assert_eq!(Rate::Pps(1234).short(), "1234");
    }
}
