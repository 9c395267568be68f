//! The scenarios a run of the bench measures, from its settings.

use std::time::Duration;

use mirror_tests::world::UPLINK_MTU;

use super::{
    args::{Rate, Settings},
    live::Traffic,
    subject::Selection,
};

/// Rate of the flow-cache scenario: 65,536 flows are all seen within a second.
const FLOWS_RATE: Rate = Rate::Pps(100_000);
/// Source ports, hence flows, of the flow-cache scenario.
const FLOWS: u32 = 65_536;
/// The filter scenarios: the frames cycle through 100 source ports from 10000, and every
/// subject copies those from port 10000 only.
const FILTER_PORTS: u32 = 100;
const SELECT_ONE_IN_100: Selection = Selection {
    pcap: "udp src port 10000",
    u32_match: &["match", "ip", "sport", "10000", "0xffff"],
    one_in: FILTER_PORTS as u64,
};

/// The snap length of the `iperf-snaplen` scenario (the issue's figure: the pod keeps at least
/// 90% of its throughput).
const IPERF_SNAPLEN: u32 = 128;

/// One scenario: a name (for `--only` and the JSON file), a title, and the uplink MTU of the
/// world it runs in.
pub struct Scenario {
    pub name: String,
    pub title: String,
    pub uplink_mtu: u32,
    pub kind: Kind,
}

/// What a scenario runs.
pub enum Kind {
    Replay,
    Live(Traffic),
    /// An iperf3 transfer; the agent cuts its copies to this snap length if given.
    Iperf {
        snaplen: Option<u32>,
    },
}

/// Every scenario of `settings`, grouped by uplink MTU (each MTU is one world).
pub fn scenarios(settings: &Settings) -> Vec<Scenario> {
    let mut list = vec![Scenario {
        name: "replay-64b-vxlan".to_owned(),
        title: "64-byte UDP frames from a pcap, as fast as possible, into VxLAN to a namespace"
            .to_owned(),
        uplink_mtu: UPLINK_MTU,
        kind: Kind::Replay,
    }];
    let live = |frame_len: usize, rate: Rate, uplink_mtu: u32| {
        let size = if frame_len == 64 { "64b" } else { "1500b" };
        let suffix = if uplink_mtu == UPLINK_MTU {
            String::new()
        } else {
            format!("-mtu{uplink_mtu}")
        };
        Scenario {
            name: format!("live-{size}-{}{suffix}", rate.short()),
            title: format!(
                "{frame_len}-byte UDP frames from the pod at {}, mirrored into VxLAN over a {uplink_mtu}-byte uplink",
                rate.describe()
            ),
            uplink_mtu,
            kind: Kind::Live(Traffic {
                frame_len,
                rate,
                src_ports: 1,
                netflow: false,
                select: None,
            }),
        }
    };
    let filtered = |rate: Rate| Scenario {
        name: format!("filter-1in100-{}", rate.short()),
        title: format!(
            "64-byte UDP frames from the pod at {} over {FILTER_PORTS} source ports, every mirror \
             copying only those `{}` selects (one in {FILTER_PORTS}): figures per selected packet",
            rate.describe(),
            SELECT_ONE_IN_100.pcap
        ),
        uplink_mtu: UPLINK_MTU,
        kind: Kind::Live(Traffic {
            frame_len: 64,
            rate,
            src_ports: FILTER_PORTS,
            netflow: false,
            select: Some(SELECT_ONE_IN_100),
        }),
    };
    for frame_len in [64, 1514] {
        list.extend(
            settings
                .rates
                .iter()
                .map(|&r| live(frame_len, r, UPLINK_MTU)),
        );
    }
    list.push(Scenario {
        name: "flows-64k".to_owned(),
        title: format!(
            "64-byte UDP frames at {} over {FLOWS} source ports, the agent also exporting NetFlow",
            FLOWS_RATE.describe()
        ),
        uplink_mtu: UPLINK_MTU,
        kind: Kind::Live(Traffic {
            frame_len: 64,
            rate: FLOWS_RATE,
            src_ports: FLOWS,
            netflow: true,
            select: None,
        }),
    });
    list.extend(settings.rates.iter().map(|&r| filtered(r)));
    let iperf = |uplink_mtu: u32, name: &str| Scenario {
        name: name.to_owned(),
        title: format!(
            "iperf3 bulk TCP from the pod to the node, mirrored over a {uplink_mtu}-byte uplink"
        ),
        uplink_mtu,
        kind: Kind::Iperf { snaplen: None },
    };
    list.push(iperf(UPLINK_MTU, "iperf"));
    list.push(Scenario {
        name: format!("iperf-snaplen{IPERF_SNAPLEN}"),
        title: format!(
            "iperf3 bulk TCP from the pod to the node, the agent with --snaplen {IPERF_SNAPLEN} \
             (one cut copy per GSO super-frame, so copies are not counted against segments; the \
             kernel's mirror copies whole segments)"
        ),
        uplink_mtu: UPLINK_MTU,
        kind: Kind::Iperf {
            snaplen: Some(IPERF_SNAPLEN),
        },
    });
    list.extend(settings.rates.iter().map(|&r| live(1514, r, 1500)));
    list.push(iperf(1500, "iperf-mtu1500"));
    list
}

/// Roughly how long the scenarios take.
pub fn estimate(settings: &Settings, scenarios: &[Scenario]) -> Duration {
    // Start, settle and stop around each run; a peer without a ready line gets 3 s more.
    let overhead = 3;
    let subjects = 3 + u64::from(settings.peer.is_some());
    let remotes = settings.remote_kinds.len() as u64;
    let secs: u64 = scenarios
        .iter()
        .map(|s| match s.kind {
            Kind::Replay => {
                remotes
                    * settings.runs as u64
                    * 2
                    * (u64::from(settings.frames) * u64::from(settings.loops) / 200_000 + overhead)
            }
            Kind::Live(_) => {
                remotes * settings.runs as u64 * subjects * (settings.seconds + overhead)
            }
            Kind::Iperf { .. } => {
                settings.iperf_rounds as u64 * subjects * (settings.seconds + overhead)
            }
        })
        .sum();
    Duration::from_secs(secs)
}

#[cfg(test)]
mod tests {
    use clap::{Args as _, FromArgMatches as _};

    use super::*;
    use crate::bench::args::BenchArgs;

    #[test]
    fn smoke_runs_one_short_rate() {
        let settings = Settings::new(BenchArgs::smoke().unwrap());
        assert_eq!(
            (settings.runs, settings.seconds, settings.iperf_rounds),
            (1, 2, 1)
        );
        let names: Vec<String> = scenarios(&settings).into_iter().map(|s| s.name).collect();
        assert_eq!(
            names,
            [
                "replay-64b-vxlan",
                "live-64b-50k",
                "live-1500b-50k",
                "flows-64k",
                "filter-1in100-50k",
                "iperf",
                "iperf-snaplen128",
                "live-1500b-50k-mtu1500",
                "iperf-mtu1500"
            ]
        );
    }

    #[test]
    fn default_rates_are_the_issues() {
        let matches = BenchArgs::augment_args(clap::Command::new("bench"))
            .try_get_matches_from(["bench"])
            .unwrap();
        let args = BenchArgs::from_arg_matches(&matches).unwrap();
        assert_eq!(
            args.rates,
            [
                Rate::Pps(50_000),
                Rate::Pps(100_000),
                Rate::Pps(150_000),
                Rate::Max
            ]
        );
        assert_eq!(
            scenarios(&Settings::new(args)).len(),
            1 + 4 + 4 + 1 + 4 + 2 + 4 + 1
        );
    }
}
