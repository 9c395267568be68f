//! What one run of a subject measured, and the figures the tables and summaries give: medians
//! over the runs, per mirrored packet, and against the kernel and the peer.

use super::{
    stats::{median, per_second, to_f64},
    subject::{AgentCounters, Subject},
};

/// One run of one subject.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sample {
    /// Packets that crossed the mirrored interface: the frames the pod's interface sent, or,
    /// for TCP, the segments both ends sent.
    pub offered: u64,
    /// Copies counted at the remote once the count had stopped moving.
    pub delivered: u64,
    /// Copies counted at the remote when the traffic stopped.
    pub delivered_during: u64,
    /// How long the traffic ran.
    pub seconds: f64,
    /// Busy CPU time of the whole machine from the start of the traffic until the delivered
    /// count settled, in microseconds.
    pub machine_cpu_us: f64,
    /// The agent's (or the peer's process tree's) own CPU time over the same window, in
    /// microseconds.
    pub process_cpu_us: Option<f64>,
    /// The agent's (or the peer's largest process's) peak resident set (`VmHWM`) at the end of
    /// the run, in KiB.
    pub rss_kib: Option<u64>,
    /// iperf3's receiver throughput.
    pub gbps: Option<f64>,
    pub agent: Option<AgentCounters>,
}

/// The runs of one subject, in order; run `i` of every subject of a scenario was made with the
/// same offered traffic, next to each other in time.
#[derive(Clone, Debug, PartialEq)]
pub struct SubjectRuns {
    pub subject: Subject,
    /// The command line (or kernel configuration) of one run; empty for no mirror.
    pub command: String,
    pub samples: Vec<Sample>,
}

impl SubjectRuns {
    /// One empty set of runs per subject (the peer's only with `peer`).
    pub fn all(peer: bool) -> Vec<Self> {
        Subject::all(peer)
            .into_iter()
            .map(|subject| Self {
                subject,
                command: String::new(),
                samples: Vec::new(),
            })
            .collect()
    }

    /// Adds `sample` (made with `command`) to the runs of `subject` in `all`.
    pub fn record(all: &mut [Self], subject: Subject, command: String, sample: Sample) {
        if let Some(runs) = all.iter_mut().find(|r| r.subject == subject) {
            runs.command = command;
            runs.samples.push(sample);
        }
    }
}

/// Medians over the runs of one subject.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Figures {
    pub subject: Subject,
    pub offered_pps: f64,
    pub delivered_pps: f64,
    /// Share of the offered packets with no copy behind the remote VTEP once the count settled.
    pub loss_pct: Option<f64>,
    /// The same when the traffic stopped: late delivery shows as the difference.
    pub loss_during_pct: Option<f64>,
    /// Share of the copies that arrived after the traffic had stopped (a big buffer drained
    /// late is not lossless).
    pub late_pct: Option<f64>,
    /// Whether every run lost nothing and delivered nothing late.
    pub lossless: Option<bool>,
    /// Whole-machine CPU per copy delivered (per offered packet with no mirror).
    pub machine_cpu_us_per_pkt: Option<f64>,
    /// The key figure: the machine's CPU with this mirror minus without one, at the same offered
    /// traffic (the no-mirror run's CPU per offered packet times this run's offered packets),
    /// per copy delivered.
    pub cpu_us_per_pkt: Option<f64>,
    /// The agent's own CPU per copy delivered.
    pub process_cpu_us_per_pkt: Option<f64>,
    /// [`Figures::cpu_us_per_pkt`] over the kernel's.
    pub cpu_ratio_vs_kernel: Option<f64>,
    /// The agent's [`Figures::cpu_us_per_pkt`] over the peer's.
    pub cpu_ratio_vs_peer: Option<f64>,
    /// The agent's peak resident set, the highest of the runs, in MiB.
    pub rss_mib: Option<f64>,
    pub gbps: Option<f64>,
    /// iperf3's throughput with this mirror on over the no-mirror run next to it.
    pub iperf_retained_pct: Option<f64>,
    /// Copies the agent counted as dropped (the median run's).
    pub dropped: Option<u64>,
    /// Flows in the agent's NetFlow cache at the end (the highest of the runs).
    pub active_flows: Option<u64>,
}

/// The figures of each subject in `runs`, which must hold [`Subject::None`] for the incremental
/// figures, [`Subject::Kernel`] for the ratios and [`Subject::Peer`] for the agent's to it.
pub fn figures(runs: &[SubjectRuns]) -> Vec<Figures> {
    let none = runs.iter().find(|r| r.subject == Subject::None);
    let mut all: Vec<Figures> = runs.iter().map(|r| subject_figures(r, none)).collect();
    let cpu_of = |subject| {
        all.iter()
            .find(|f| f.subject == subject)
            .and_then(|f| f.cpu_us_per_pkt)
            .filter(|&k| k > 0.0)
    };
    let (kernel, peer) = (cpu_of(Subject::Kernel), cpu_of(Subject::Peer));
    for figures in &mut all {
        if figures.subject != Subject::None {
            figures.cpu_ratio_vs_kernel =
                figures.cpu_us_per_pkt.zip(kernel).map(|(ours, k)| ours / k);
        }
        if figures.subject == Subject::Mirror {
            figures.cpu_ratio_vs_peer = figures.cpu_us_per_pkt.zip(peer).map(|(ours, p)| ours / p);
        }
    }
    all
}

fn subject_figures(runs: &SubjectRuns, none: Option<&SubjectRuns>) -> Figures {
    let samples = &runs.samples;
    let mirrored = runs.subject != Subject::None;
    // Run `i` of the subject against run `i` without a mirror.
    let paired = |f: &dyn Fn(&Sample, &Sample) -> Option<f64>| -> Option<f64> {
        let none = none?;
        let values: Vec<f64> = samples
            .iter()
            .zip(&none.samples)
            .filter_map(|(s, n)| f(s, n))
            .collect();
        median_of(values)
    };
    let own =
        |f: &dyn Fn(&Sample) -> Option<f64>| median_of(samples.iter().filter_map(f).collect());
    Figures {
        subject: runs.subject,
        offered_pps: own(&|s| Some(per_second(s.offered, s.seconds))).unwrap_or_default(),
        delivered_pps: own(&|s| Some(per_second(s.delivered, s.seconds))).unwrap_or_default(),
        loss_pct: own(&|s| loss_pct(s.offered, s.delivered)).filter(|_| mirrored),
        loss_during_pct: own(&|s| loss_pct(s.offered, s.delivered_during)).filter(|_| mirrored),
        late_pct: own(&|s| late_pct(s)).filter(|_| mirrored),
        lossless: (mirrored && !samples.is_empty()).then(|| {
            samples.iter().all(|s| {
                loss_pct(s.offered, s.delivered).is_some_and(|l| l <= 0.0)
                    && late_pct(s).is_some_and(|l| l <= 0.0)
            })
        }),
        machine_cpu_us_per_pkt: own(&|s| {
            per_packet(
                s.machine_cpu_us,
                if mirrored { s.delivered } else { s.offered },
            )
        }),
        cpu_us_per_pkt: if mirrored {
            paired(&|s, n| {
                let reference = per_packet(n.machine_cpu_us, n.offered)? * to_f64(s.offered);
                per_packet(s.machine_cpu_us - reference, s.delivered)
            })
        } else {
            None
        },
        process_cpu_us_per_pkt: own(&|s| per_packet(s.process_cpu_us?, s.delivered)),
        cpu_ratio_vs_kernel: None,
        cpu_ratio_vs_peer: None,
        rss_mib: samples
            .iter()
            .filter_map(|s| s.rss_kib)
            .max()
            .map(|kib| to_f64(kib) / 1024.0),
        gbps: own(&|s| s.gbps),
        iperf_retained_pct: if mirrored {
            paired(&|s, n| Some(100.0 * s.gbps? / n.gbps.filter(|&g| g > 0.0)?))
        } else {
            None
        },
        dropped: median_u64(
            samples
                .iter()
                .filter_map(|s| s.agent.map(|a| a.dropped))
                .collect(),
        ),
        active_flows: samples
            .iter()
            .filter_map(|s| s.agent.map(|a| a.active_flows))
            .max(),
    }
}

fn median_of(values: Vec<f64>) -> Option<f64> {
    (!values.is_empty()).then(|| median(values))
}

/// The median of counts (the lower middle one of an even number).
fn median_u64(mut values: Vec<u64>) -> Option<u64> {
    values.sort_unstable();
    values.get(values.len().saturating_sub(1) / 2).copied()
}

fn loss_pct(offered: u64, delivered: u64) -> Option<f64> {
    (offered > 0).then(|| 100.0 * (to_f64(offered) - to_f64(delivered)) / to_f64(offered))
}

/// Share of a run's copies counted after the traffic stopped.
fn late_pct(s: &Sample) -> Option<f64> {
    (s.delivered > 0).then(|| {
        100.0 * (to_f64(s.delivered) - to_f64(s.delivered_during.min(s.delivered)))
            / to_f64(s.delivered)
    })
}

fn per_packet(us: f64, packets: u64) -> Option<f64> {
    (packets > 0).then(|| us / to_f64(packets))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(offered: u64, delivered: u64, cpu_us: f64) -> Sample {
        Sample {
            offered,
            delivered,
            delivered_during: delivered / 2,
            seconds: 10.0,
            machine_cpu_us: cpu_us,
            ..Sample::default()
        }
    }

    #[test]
    #[expect(clippy::float_cmp, reason = "exact arithmetic on small whole numbers")]
    fn incremental_cpu_is_against_no_mirror_at_the_same_offered_traffic() {
        let runs = [
            SubjectRuns {
                subject: Subject::None,
                command: String::new(),
                samples: vec![sample(1000, 0, 2000.0), sample(1000, 0, 4000.0)],
            },
            SubjectRuns {
                subject: Subject::Kernel,
                command: "k".to_owned(),
                // 2 µs and 4 µs per packet without a mirror: 1 µs more per copy either way.
                samples: vec![sample(1000, 1000, 3000.0), sample(1000, 1000, 5000.0)],
            },
            SubjectRuns {
                subject: Subject::Mirror,
                command: "m".to_owned(),
                samples: vec![
                    Sample {
                        process_cpu_us: Some(1500.0),
                        rss_kib: Some(2048),
                        ..sample(500, 500, 2500.0)
                    },
                    Sample {
                        process_cpu_us: Some(1500.0),
                        rss_kib: Some(4096),
                        ..sample(1000, 500, 5500.0)
                    },
                ],
            },
        ];
        let [none, kernel, mirror] = figures(&runs).try_into().unwrap();
        assert_eq!(none.loss_pct, None);
        assert_eq!(none.lossless, None);
        // Half the copies came after the traffic stopped: not lossless although none is lost.
        assert_eq!(kernel.late_pct, Some(50.0));
        assert_eq!(kernel.lossless, Some(false));
        assert_eq!(mirror.cpu_ratio_vs_peer, None, "no peer");
        assert_eq!(none.cpu_us_per_pkt, None);
        assert_eq!(none.machine_cpu_us_per_pkt, Some(3.0));
        assert_eq!(kernel.cpu_us_per_pkt, Some(1.0));
        assert_eq!(kernel.cpu_ratio_vs_kernel, Some(1.0));
        assert_eq!(kernel.loss_pct, Some(0.0));
        assert_eq!(kernel.loss_during_pct, Some(50.0));
        // Run 1: (2500 - 2 x 500) / 500 = 3; run 2: (5500 - 4 x 1000) / 500 = 3.
        assert_eq!(mirror.cpu_us_per_pkt, Some(3.0));
        assert_eq!(mirror.cpu_ratio_vs_kernel, Some(3.0));
        assert_eq!(mirror.process_cpu_us_per_pkt, Some(3.0));
        assert_eq!(mirror.loss_pct, Some(25.0));
        assert_eq!(mirror.rss_mib, Some(4.0));
        assert_eq!(mirror.offered_pps, 75.0);
    }

    #[test]
    fn the_agent_is_compared_with_the_peer() {
        let on_time = |offered, delivered, cpu_us| Sample {
            delivered_during: delivered,
            ..sample(offered, delivered, cpu_us)
        };
        let runs = [
            SubjectRuns {
                subject: Subject::None,
                command: String::new(),
                samples: vec![on_time(1000, 0, 1000.0)],
            },
            SubjectRuns {
                subject: Subject::Mirror,
                command: "m".to_owned(),
                samples: vec![on_time(1000, 1000, 3000.0)],
            },
            SubjectRuns {
                subject: Subject::Peer,
                command: "p".to_owned(),
                samples: vec![on_time(1000, 1000, 5000.0)],
            },
        ];
        let [_, mirror, peer] = figures(&runs).try_into().unwrap();
        assert_eq!(mirror.cpu_us_per_pkt, Some(2.0));
        assert_eq!(peer.cpu_us_per_pkt, Some(4.0));
        assert_eq!(mirror.cpu_ratio_vs_peer, Some(0.5));
        assert_eq!(peer.cpu_ratio_vs_peer, None, "the ratio is the agent's");
        assert_eq!((mirror.late_pct, mirror.lossless), (Some(0.0), Some(true)));
    }

    #[test]
    fn iperf_throughput_is_kept_against_the_run_next_to_it() {
        let with = |gbps: f64| Sample {
            gbps: Some(gbps),
            ..sample(10, 10, 1.0)
        };
        let runs = [
            SubjectRuns {
                subject: Subject::None,
                command: String::new(),
                samples: vec![with(20.0), with(10.0), with(12.0)],
            },
            SubjectRuns {
                subject: Subject::Mirror,
                command: "m".to_owned(),
                samples: vec![with(10.0), with(8.0), with(3.0)],
            },
        ];
        let [_, mirror] = figures(&runs).try_into().unwrap();
        assert_eq!(mirror.iperf_retained_pct, Some(50.0));
        assert_eq!(mirror.gbps, Some(8.0));
        assert_eq!(mirror.cpu_ratio_vs_kernel, None, "no kernel subject");
    }
}
