//! The end of a run: the closing table, `summary.json` and `summary.md`, and the check that
//! every scenario gave the figures it always has.

use std::{
    fmt::Write as _,
    fs,
    time::{SystemTime, UNIX_EPOCH},
};

use anyhow::{Context as _, Result, ensure};

use super::{
    Bench, Outcome, RemoteOutcome, available_cpus,
    json::Json,
    relative,
    remote::RemoteKind,
    report::{Headline, summary_table},
    scenarios::{Kind, Scenario},
};

/// The closing table, `summary.json` and `summary.md`.
pub fn conclude(
    bench: &Bench,
    command: &str,
    busy: f64,
    results: &[(&Scenario, Outcome)],
) -> Result<()> {
    let headlines: Vec<(&Scenario, Headline)> = results
        .iter()
        .flat_map(|(s, o)| o.results.iter().map(|r| (*s, r.headline)))
        .collect();
    let table = summary_table(&headlines);
    println!(
        "\n== the agent in every scenario (medians; +CPU: the machine's CPU with the mirror minus without, \
         per copy; remote vtep: the remote's kernel VxLAN device, whose receive work runs on the sending \
         CPU; sink: an XDP program that counts and drops the copies){}\n",
        bench
            .settings
            .peer
            .as_ref()
            .map_or_else(String::new, |p| format!("; peer: {}", p.name))
    );
    for line in table.lines() {
        println!("   {line}");
    }
    let json_path = bench.out.join("summary.json");
    let json = summary_json(bench, command, busy, results)?.pretty();
    fs::write(&json_path, &json).with_context(|| format!("writing {}", json_path.display()))?;
    let md_path = bench.out.join("summary.md");
    fs::write(&md_path, summary_markdown(command, busy, &table, results))
        .with_context(|| format!("writing {}", md_path.display()))?;
    println!(
        "\n   made by: {command}\n   summary: {} and {}",
        relative(&json_path),
        relative(&md_path)
    );
    Ok(())
}

/// Warns (fails with `--smoke`) when a scenario lacks a figure it always has, or the summary
/// is empty.
pub fn check(bench: &Bench, results: &[(&Scenario, Outcome)]) -> Result<()> {
    let missing: Vec<String> = results
        .iter()
        .flat_map(|(s, o)| o.results.iter().map(move |r| (s, r)))
        .filter_map(|(s, r)| {
            let missing = r.headline.missing();
            (!missing.is_empty()).then(|| {
                format!(
                    "{} ({} remote): {}",
                    s.name,
                    r.headline.remote.label(),
                    missing.join(", ")
                )
            })
        })
        .collect();
    if !bench.settings.smoke {
        if !missing.is_empty() {
            println!("warning: figures missing: {}", missing.join("; "));
        }
        return Ok(());
    }
    ensure!(
        missing.is_empty(),
        "the bench smoke run lacks figures: {}",
        missing.join("; ")
    );
    let summary = bench.out.join("summary.json");
    let written = fs::metadata(&summary).map(|m| m.len()).unwrap_or_default();
    ensure!(written > 2, "{} is empty", summary.display());
    if let Some(peer) = &bench.settings.peer {
        let sink = results
            .iter()
            .flat_map(|(_, o)| &o.results)
            .any(|r| r.headline.remote == RemoteKind::Sink && r.headline.peer_expected);
        ensure!(
            sink || !bench.settings.remote_kinds.contains(&RemoteKind::Sink),
            "the bench smoke run had no sink-remote figures of the peer {}",
            peer.name
        );
    }
    println!("bench smoke run: every scenario gave its figures");
    Ok(())
}

/// One scenario's JSON: its setting, per remote kind the agent's headline figures and every
/// subject's, then its details.
pub fn scenario_json(bench: &Bench, scenario: &Scenario, outcome: &Outcome) -> Json {
    let settings = &bench.settings;
    let runs = match scenario.kind {
        Kind::Iperf { .. } => settings.iperf_rounds,
        Kind::Replay | Kind::Live(_) => settings.runs,
    };
    let mut pairs: Vec<(String, Json)> = vec![
        ("scenario".to_owned(), Json::str(scenario.name.clone())),
        ("title".to_owned(), Json::str(scenario.title.clone())),
        (
            "uplink_mtu".to_owned(),
            Json::Int(u64::from(scenario.uplink_mtu)),
        ),
        ("runs".to_owned(), Json::Int(runs as u64)),
        ("agent_cpu".to_owned(), Json::Int(u64::from(settings.cpu))),
        (
            "generator_cpu".to_owned(),
            Json::Int(u64::from(settings.gen_cpu)),
        ),
        (
            "peer".to_owned(),
            settings.peer.as_ref().map_or(Json::Null, |p| {
                Json::obj([
                    ("name", Json::str(p.name.clone())),
                    ("command", Json::str(p.command.clone())),
                ])
            }),
        ),
        (
            "results".to_owned(),
            Json::Arr(outcome.results.iter().map(result_json).collect()),
        ),
    ];
    pairs.extend(
        outcome
            .details
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone())),
    );
    Json::Obj(pairs)
}

/// One remote kind's headline figures and subjects.
fn result_json(result: &RemoteOutcome) -> Json {
    let h = &result.headline;
    let mut pairs: Vec<(String, Json)> = vec![
        ("remote".to_owned(), Json::str(h.remote.label())),
        (
            "remote_description".to_owned(),
            Json::str(h.remote.describe()),
        ),
        ("run_seconds".to_owned(), Json::Num(h.run_seconds, 3)),
        (
            "lossless".to_owned(),
            h.lossless.map_or(Json::Null, Json::Bool),
        ),
    ];
    pairs.extend(
        h.figures()
            .into_iter()
            .map(|(name, value)| (name.to_owned(), Json::num(value))),
    );
    pairs.push(("subjects".to_owned(), result.subjects.clone()));
    Json::Obj(pairs)
}

fn summary_json(
    bench: &Bench,
    command: &str,
    busy_pct: f64,
    results: &[(&Scenario, Outcome)],
) -> Result<Json> {
    let unix_time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_secs();
    Ok(Json::obj([
        ("command", Json::str(command)),
        ("unix_time", Json::Int(unix_time)),
        ("kernel", Json::str(kernel_release())),
        ("cpus", Json::Int(available_cpus()?.len() as u64)),
        ("machine_busy_pct_before", Json::Num(busy_pct, 1)),
        ("smoke", Json::Bool(bench.settings.smoke)),
        (
            "remote_kinds",
            Json::Arr(
                bench
                    .settings
                    .remote_kinds
                    .iter()
                    .map(|k| Json::str(k.label()))
                    .collect(),
            ),
        ),
        (
            "scenarios",
            Json::Arr(
                results
                    .iter()
                    .map(|(s, o)| scenario_json(bench, s, o))
                    .collect(),
            ),
        ),
    ]))
}

fn summary_markdown(
    command: &str,
    busy_pct: f64,
    table: &str,
    results: &[(&Scenario, Outcome)],
) -> String {
    let mut out = format!(
        "Made by `{command}` (Linux {}, {} CPUs, {busy_pct:.0}% busy before the start).\n\n{table}",
        kernel_release(),
        available_cpus().map_or(0, |c| c.len())
    );
    for (scenario, outcome) in results {
        let _ = write!(out, "\n### {}\n\n{}", scenario.name, outcome.table);
    }
    out
}

fn kernel_release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|r| r.trim().to_owned())
        .unwrap_or_default()
}
