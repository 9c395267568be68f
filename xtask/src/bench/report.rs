//! What the bench shows: a table per scenario and remote kind, a closing table of the agent's
//! headline figures (Markdown, ready for the README), and their JSON.

use std::fmt::Write as _;

use super::{
    RemoteOutcome,
    args::Settings,
    figures::{Figures, Sample, SubjectRuns, figures},
    json::Json,
    remote::RemoteKind,
    scenarios::Scenario,
    stats::to_f64,
    subject::Subject,
};

/// The figures of a scenario and remote kind that its summary line and JSON give at the top:
/// the agent's, with the kernel's and the peer's for comparison.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Headline {
    pub remote: RemoteKind,
    pub offered_pps: Option<f64>,
    pub loss_pct: Option<f64>,
    pub loss_during_pct: Option<f64>,
    pub late_pct: Option<f64>,
    /// No copy lost and none late, in every run.
    pub lossless: Option<bool>,
    pub cpu_us_per_pkt: Option<f64>,
    pub kernel_cpu_us_per_pkt: Option<f64>,
    pub cpu_ratio_vs_kernel: Option<f64>,
    pub process_cpu_us_per_pkt: Option<f64>,
    pub rss_mib: Option<f64>,
    pub iperf_retained_pct: Option<f64>,
    pub kernel_iperf_retained_pct: Option<f64>,
    pub peer_loss_pct: Option<f64>,
    pub peer_late_pct: Option<f64>,
    pub peer_cpu_us_per_pkt: Option<f64>,
    pub cpu_ratio_vs_peer: Option<f64>,
    pub peer_process_cpu_us_per_pkt: Option<f64>,
    pub peer_rss_mib: Option<f64>,
    pub run_seconds: f64,
    /// The names of the figures this kind of scenario always has (checked by `--smoke`).
    pub expected: &'static [&'static str],
    /// Whether a peer ran, so that its figures are expected too.
    pub peer_expected: bool,
}

/// What every live scenario has. (Not the ratio: it needs the kernel's incremental CPU to be
/// above zero, which noise on a busy machine can take away.)
const LIVE_EXPECTED: &[&str] = &[
    "offered_pps",
    "loss_pct",
    "loss_during_pct",
    "cpu_us_per_pkt",
    "kernel_cpu_us_per_pkt",
    "process_cpu_us_per_pkt",
    "rss_mib",
];
/// What a scenario with a peer also has (not the ratio, for the same reason as the kernel's).
const PEER_EXPECTED: &[&str] = &[
    "peer_loss_pct",
    "peer_late_pct",
    "peer_cpu_us_per_pkt",
    "peer_process_cpu_us_per_pkt",
    "peer_rss_mib",
];
const IPERF_EXPECTED: &[&str] = &[
    "offered_pps",
    "loss_pct",
    "loss_during_pct",
    "cpu_us_per_pkt",
    "kernel_cpu_us_per_pkt",
    "process_cpu_us_per_pkt",
    "rss_mib",
    "iperf_retained_pct",
    "kernel_iperf_retained_pct",
];

impl Headline {
    /// Figure names and values, in the order of the JSON.
    pub fn figures(&self) -> [(&'static str, Option<f64>); 17] {
        [
            ("offered_pps", self.offered_pps),
            ("loss_pct", self.loss_pct),
            ("loss_during_pct", self.loss_during_pct),
            ("late_pct", self.late_pct),
            ("cpu_us_per_pkt", self.cpu_us_per_pkt),
            ("kernel_cpu_us_per_pkt", self.kernel_cpu_us_per_pkt),
            ("cpu_ratio_vs_kernel", self.cpu_ratio_vs_kernel),
            ("process_cpu_us_per_pkt", self.process_cpu_us_per_pkt),
            ("rss_mib", self.rss_mib),
            ("iperf_retained_pct", self.iperf_retained_pct),
            ("kernel_iperf_retained_pct", self.kernel_iperf_retained_pct),
            ("peer_loss_pct", self.peer_loss_pct),
            ("peer_late_pct", self.peer_late_pct),
            ("peer_cpu_us_per_pkt", self.peer_cpu_us_per_pkt),
            ("cpu_ratio_vs_peer", self.cpu_ratio_vs_peer),
            (
                "peer_process_cpu_us_per_pkt",
                self.peer_process_cpu_us_per_pkt,
            ),
            ("peer_rss_mib", self.peer_rss_mib),
        ]
    }

    /// Expected figures that are missing (or not finite).
    pub fn missing(&self) -> Vec<&'static str> {
        let figures = self.figures();
        let peer: &[&str] = if self.peer_expected {
            PEER_EXPECTED
        } else {
            &[]
        };
        self.expected
            .iter()
            .chain(peer)
            .copied()
            .filter(|name| {
                !figures
                    .iter()
                    .any(|(n, v)| n == name && v.is_some_and(f64::is_finite))
            })
            .collect()
    }
}

/// The headline of a live (`iperf` false) or TCP scenario from its subjects' figures.
fn headline(remote: RemoteKind, figures: &[Figures], run_seconds: f64, iperf: bool) -> Headline {
    let of = |subject| figures.iter().find(|f| f.subject == subject);
    let (mirror, kernel, peer) = (of(Subject::Mirror), of(Subject::Kernel), of(Subject::Peer));
    Headline {
        remote,
        offered_pps: mirror.map(|f| f.offered_pps),
        loss_pct: mirror.and_then(|f| f.loss_pct),
        loss_during_pct: mirror.and_then(|f| f.loss_during_pct),
        late_pct: mirror.and_then(|f| f.late_pct),
        lossless: mirror.and_then(|f| f.lossless),
        cpu_us_per_pkt: mirror.and_then(|f| f.cpu_us_per_pkt),
        kernel_cpu_us_per_pkt: kernel.and_then(|f| f.cpu_us_per_pkt),
        cpu_ratio_vs_kernel: mirror.and_then(|f| f.cpu_ratio_vs_kernel),
        process_cpu_us_per_pkt: mirror.and_then(|f| f.process_cpu_us_per_pkt),
        rss_mib: mirror.and_then(|f| f.rss_mib),
        iperf_retained_pct: mirror.and_then(|f| f.iperf_retained_pct),
        kernel_iperf_retained_pct: kernel.and_then(|f| f.iperf_retained_pct),
        peer_loss_pct: peer.and_then(|f| f.loss_pct),
        peer_late_pct: peer.and_then(|f| f.late_pct),
        peer_cpu_us_per_pkt: peer.and_then(|f| f.cpu_us_per_pkt),
        cpu_ratio_vs_peer: mirror.and_then(|f| f.cpu_ratio_vs_peer),
        peer_process_cpu_us_per_pkt: peer.and_then(|f| f.process_cpu_us_per_pkt),
        peer_rss_mib: peer.and_then(|f| f.rss_mib),
        run_seconds,
        expected: if iperf { IPERF_EXPECTED } else { LIVE_EXPECTED },
        peer_expected: peer.is_some(),
    }
}

/// The title line of a live or TCP scenario's table.
pub fn title(scenario: &Scenario, settings: &Settings, runs: usize) -> String {
    format!(
        "{} ({runs} runs each, medians; {} s each; uplink MTU {}; generator on CPU {}, agent{} on CPU {})\n",
        scenario.title,
        settings.seconds,
        scenario.uplink_mtu,
        settings.gen_cpu,
        if settings.peer.is_some() {
            " and peer"
        } else {
            ""
        },
        settings.cpu
    )
}

/// The outcome of one remote kind of a live or TCP scenario from its subjects' runs: its table
/// (under the remote's description), its headline, and every subject's figures and runs.
pub fn remote_outcome(
    remote: RemoteKind,
    settings: &Settings,
    columns: &[Column],
    runs: &[SubjectRuns],
    iperf: bool,
) -> RemoteOutcome {
    let figures = figures(runs);
    RemoteOutcome {
        table: format!(
            "{}\n\n{}",
            remote.describe(),
            table(settings, columns, &figures, runs)
        ),
        headline: headline(remote, &figures, to_f64(settings.seconds), iperf),
        subjects: Json::Arr(
            runs.iter()
                .zip(&figures)
                .map(|(r, f)| subject_json(r, f))
                .collect(),
        ),
    }
}

/// A column of a scenario's table.
#[derive(Clone, Copy)]
pub struct Column {
    header: &'static str,
    cell: fn(&Figures) -> String,
}

/// The column sets.
pub struct Columns;

impl Columns {
    /// The live scenarios' columns (`vs peer` with a peer).
    pub fn flood(peer: bool) -> Vec<Column> {
        let mut columns = vec![
            Column {
                header: "offered pps",
                cell: |f| format!("{:.0}", f.offered_pps),
            },
            COPIES,
        ];
        columns.extend(Self::common(peer));
        columns
    }

    pub const FLOWS: Column = Column {
        header: "flows",
        cell: |f| opt_int(f.active_flows),
    };

    /// The TCP scenarios' columns.
    pub fn iperf(peer: bool) -> Vec<Column> {
        let mut columns = vec![GBPS, KEPT, SEGMENTS];
        columns.extend(Self::common(peer));
        columns
    }

    /// The TCP scenario with cut copies: throughput kept and the machine's CPU per segment.
    pub fn iperf_cut() -> Vec<Column> {
        vec![GBPS, KEPT, SEGMENTS, COPIES, RSS, DROPPED]
    }

    fn common(peer: bool) -> Vec<Column> {
        let mut columns = vec![
            LOSS,
            LOSS_DURING,
            LATE,
            LOSSLESS,
            MACHINE_CPU,
            INCREMENTAL_CPU,
            PROCESS_CPU,
            RATIO,
        ];
        if peer {
            columns.push(RATIO_PEER);
        }
        columns.extend([RSS, DROPPED]);
        columns
    }
}

const COPIES: Column = Column {
    header: "copies/s",
    cell: |f| format!("{:.0}", f.delivered_pps),
};
const GBPS: Column = Column {
    header: "Gbit/s",
    cell: |f| opt(f.gbps, 2),
};
const KEPT: Column = Column {
    header: "kept %",
    cell: |f| opt(f.iperf_retained_pct, 1),
};
const SEGMENTS: Column = Column {
    header: "segments/s",
    cell: |f| format!("{:.0}", f.offered_pps),
};
const LOSS: Column = Column {
    header: "loss %",
    cell: |f| opt(f.loss_pct, 2),
};
const LOSS_DURING: Column = Column {
    header: "loss at stop %",
    cell: |f| opt(f.loss_during_pct, 2),
};
const LATE: Column = Column {
    header: "late %",
    cell: |f| opt(f.late_pct, 2),
};
const LOSSLESS: Column = Column {
    header: "lossless",
    cell: |f| yes_no(f.lossless),
};
const MACHINE_CPU: Column = Column {
    header: "machine us/pkt",
    cell: |f| opt(f.machine_cpu_us_per_pkt, 3),
};
const INCREMENTAL_CPU: Column = Column {
    header: "+CPU us/pkt",
    cell: |f| opt(f.cpu_us_per_pkt, 3),
};
const PROCESS_CPU: Column = Column {
    header: "own us/pkt",
    cell: |f| opt(f.process_cpu_us_per_pkt, 3),
};
const RATIO: Column = Column {
    header: "vs kernel",
    cell: |f| {
        f.cpu_ratio_vs_kernel
            .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}x"))
    },
};
const RATIO_PEER: Column = Column {
    header: "vs peer",
    cell: |f| {
        f.cpu_ratio_vs_peer
            .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}x"))
    },
};
const RSS: Column = Column {
    header: "RSS MiB",
    cell: |f| opt(f.rss_mib, 1),
};
const DROPPED: Column = Column {
    header: "agent drops",
    cell: |f| opt_int(f.dropped),
};

/// A table (Markdown) of one remote kind and the command of each subject.
fn table(
    settings: &Settings,
    columns: &[Column],
    figures: &[Figures],
    runs: &[SubjectRuns],
) -> String {
    let mut out = String::new();
    let mut rows = vec![
        std::iter::once("subject".to_owned())
            .chain(columns.iter().map(|c| c.header.to_owned()))
            .collect::<Vec<_>>(),
    ];
    for f in figures {
        rows.push(
            std::iter::once(f.subject.label().to_owned())
                .chain(columns.iter().map(|c| (c.cell)(f)))
                .collect(),
        );
    }
    out.push_str(&markdown(&rows));
    out.push('\n');
    for run in runs.iter().filter(|r| !r.command.is_empty()) {
        match (&settings.peer, run.subject) {
            (Some(peer), Subject::Peer) => {
                let _ = writeln!(out, "peer ({}): {}", peer.name, run.command);
            }
            _ => {
                let _ = writeln!(out, "{}: {}", run.subject.label(), run.command);
            }
        }
    }
    out
}

/// `rows` (the first is the header) as a Markdown table with aligned columns.
pub fn markdown(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or_default();
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or_default()
        })
        .collect();
    let mut out = String::new();
    for (n, row) in rows.iter().enumerate() {
        out.push('|');
        for (i, width) in widths.iter().enumerate() {
            let cell = row.get(i).map_or("", String::as_str);
            if i == 0 {
                let _ = write!(out, " {cell:<width$} |");
            } else {
                let _ = write!(out, " {cell:>width$} |");
            }
        }
        out.push('\n');
        if n == 0 {
            out.push('|');
            for (i, width) in widths.iter().enumerate() {
                let dashes = "-".repeat(*width);
                if i == 0 {
                    let _ = write!(out, " {dashes} |");
                } else {
                    let _ = write!(out, " {}: |", &dashes[1..]);
                }
            }
            out.push('\n');
        }
    }
    out
}

/// The closing table: one line per scenario and remote kind with the agent's headline figures
/// (and the peer's, when one ran).
pub fn summary_table(results: &[(&Scenario, Headline)]) -> String {
    let peer = results.iter().any(|(_, h)| h.peer_expected);
    let mut header = vec![
        "scenario",
        "remote",
        "offered pps",
        "loss %",
        "loss at stop %",
        "late %",
        "lossless",
        "+CPU us/pkt",
        "kernel +CPU us/pkt",
        "vs kernel",
    ];
    if peer {
        header.extend([
            "peer loss %",
            "peer late %",
            "peer +CPU us/pkt",
            "vs peer",
            "peer us/pkt",
            "peer RSS MiB",
        ]);
    }
    header.extend([
        "agent us/pkt",
        "RSS MiB",
        "iperf3 kept %",
        "kernel iperf3 kept %",
    ]);
    let mut rows = vec![header.into_iter().map(str::to_owned).collect::<Vec<_>>()];
    for (scenario, h) in results {
        let mut row = vec![
            scenario.name.clone(),
            h.remote.label().to_owned(),
            opt(h.offered_pps, 0),
            opt(h.loss_pct, 2),
            opt(h.loss_during_pct, 2),
            opt(h.late_pct, 2),
            yes_no(h.lossless),
            opt(h.cpu_us_per_pkt, 3),
            opt(h.kernel_cpu_us_per_pkt, 3),
            ratio(h.cpu_ratio_vs_kernel),
        ];
        if peer {
            row.extend([
                opt(h.peer_loss_pct, 2),
                opt(h.peer_late_pct, 2),
                opt(h.peer_cpu_us_per_pkt, 3),
                ratio(h.cpu_ratio_vs_peer),
                opt(h.peer_process_cpu_us_per_pkt, 3),
                opt(h.peer_rss_mib, 1),
            ]);
        }
        row.extend([
            opt(h.process_cpu_us_per_pkt, 3),
            opt(h.rss_mib, 1),
            opt(h.iperf_retained_pct, 1),
            opt(h.kernel_iperf_retained_pct, 1),
        ]);
        rows.push(row);
    }
    markdown(&rows)
}

fn ratio(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}x"))
}

fn yes_no(value: Option<bool>) -> String {
    match value {
        Some(true) => "yes".to_owned(),
        Some(false) => "no".to_owned(),
        None => "-".to_owned(),
    }
}

/// One subject's figures and runs as JSON.
fn subject_json(runs: &SubjectRuns, f: &Figures) -> Json {
    Json::obj([
        ("subject", Json::str(f.subject.label())),
        ("command", Json::str(runs.command.clone())),
        ("offered_pps", Json::Num(f.offered_pps, 0)),
        ("delivered_pps", Json::Num(f.delivered_pps, 0)),
        ("loss_pct", Json::num(f.loss_pct)),
        ("loss_during_pct", Json::num(f.loss_during_pct)),
        ("late_pct", Json::num(f.late_pct)),
        ("lossless", f.lossless.map_or(Json::Null, Json::Bool)),
        (
            "machine_cpu_us_per_pkt",
            Json::num(f.machine_cpu_us_per_pkt),
        ),
        ("cpu_us_per_pkt", Json::num(f.cpu_us_per_pkt)),
        (
            "process_cpu_us_per_pkt",
            Json::num(f.process_cpu_us_per_pkt),
        ),
        ("cpu_ratio_vs_kernel", Json::num(f.cpu_ratio_vs_kernel)),
        ("cpu_ratio_vs_peer", Json::num(f.cpu_ratio_vs_peer)),
        ("rss_mib", Json::num(f.rss_mib)),
        ("gbps", Json::num(f.gbps)),
        ("iperf_retained_pct", Json::num(f.iperf_retained_pct)),
        ("agent_dropped", Json::int(f.dropped)),
        ("active_flows", Json::int(f.active_flows)),
        (
            "runs",
            Json::Arr(runs.samples.iter().map(sample_json).collect()),
        ),
    ])
}

fn sample_json(s: &Sample) -> Json {
    Json::obj([
        ("offered", Json::Int(s.offered)),
        ("delivered", Json::Int(s.delivered)),
        ("delivered_during", Json::Int(s.delivered_during)),
        ("seconds", Json::Num(s.seconds, 3)),
        ("machine_cpu_us", Json::Num(s.machine_cpu_us, 0)),
        (
            "process_cpu_us",
            s.process_cpu_us.map_or(Json::Null, |us| Json::Num(us, 0)),
        ),
        ("rss_kib", Json::int(s.rss_kib)),
        ("gbps", Json::num(s.gbps)),
    ])
}

fn opt(value: Option<f64>, decimals: usize) -> String {
    match value {
        Some(v) if v.is_finite() => {
            let text = format!("{v:.decimals$}");
            // A tiny negative figure rounds to "-0.00": show it as zero.
            let unsigned = text.trim_start_matches('-');
            if unsigned.chars().all(|c| c == '0' || c == '.') {
                unsigned.to_owned()
            } else {
                text
            }
        }
        _ => "-".to_owned(),
    }
}

fn opt_int(value: Option<u64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_tables_align() {
        let rows = vec![
            vec!["a".to_owned(), "long header".to_owned()],
            vec!["subject".to_owned(), "1".to_owned()],
        ];
        assert_eq!(
            markdown(&rows),
            "| a       | long header |\n| ------- | ----------: |\n| subject |           1 |\n"
        );
    }

    #[test]
    fn cells_round_without_negative_zero() {
        assert_eq!(opt(Some(-0.001), 2), "0.00");
        assert_eq!(opt(Some(-1.5), 1), "-1.5");
        assert_eq!(opt(Some(f64::INFINITY), 1), "-");
        assert_eq!(opt(None, 1), "-");
    }

    #[test]
    fn missing_figures_are_named() {
        let headline = Headline {
            offered_pps: Some(1.0),
            loss_pct: Some(f64::NAN),
            expected: &["offered_pps", "loss_pct", "rss_mib"],
            ..Headline::default()
        };
        assert_eq!(headline.missing(), ["loss_pct", "rss_mib"]);
    }
}
