//! `cargo xtask fuzz [--seconds N] [TARGET...]`: runs the cargo-fuzz targets of `fuzz/` one
//! after the other and fails if any of them finds a crash, a broken property or a hang.
//!
//! Each target runs as `cargo +nightly fuzz run T fuzz/target/corpus/T fuzz/corpus/T`: libFuzzer
//! writes what it adds to the first directory, a scratch one under `fuzz/target`, so the
//! committed seeds in `fuzz/corpus/T` are only read. Findings land in `fuzz/artifacts/T/`.

use std::{
    fs,
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Command, Stdio},
    time::Instant,
};

use anyhow::{Context as _, Result, bail};
use clap::Args;
use mirror_tests::agent::workspace_root;

use crate::{cargo::status, setup::setup};

/// The toolchain cargo-fuzz needs (sanitizers and `-Z` flags).
const NIGHTLY: &str = "+nightly";
/// The fuzz targets need no eBPF programs: mirror-user/build.rs embeds an empty object.
const SKIP_EBPF: (&str, &str) = ("AYA_BUILD_SKIP", "1");
/// Longest a single input may run before libFuzzer calls it a hang (a finding).
const UNIT_TIMEOUT_S: u32 = 10;

#[derive(Debug, Args)]
pub struct FuzzArgs {
    /// How long to run each target.
    #[arg(long, value_name = "N", default_value_t = 60)]
    pub seconds: u32,
    /// Targets to run (the file names in fuzz/fuzz_targets/); all of them if none.
    #[arg(value_name = "TARGET")]
    pub targets: Vec<String>,
}

pub fn fuzz(args: &FuzzArgs) -> Result<()> {
    setup()?;
    run(&args.targets, args.seconds)
}

/// What one target's run gave.
struct Outcome {
    target: String,
    /// How long libFuzzer ran (from its `Done N runs in S second(s)`), else the wall time.
    seconds: u64,
    /// libFuzzer's `stat::number_of_executed_units`.
    executions: Option<u64>,
    /// The `corp: N/SIZE` of libFuzzer's last status line: inputs it keeps, and their bytes.
    corpus: Option<String>,
    /// Why the run failed: a finding (crash, failed check, hang, leak) or a failure to run.
    failure: Option<String>,
}

/// Builds every target, then runs `targets` (all if empty) for `seconds` each.
pub fn run(targets: &[String], seconds: u32) -> Result<()> {
    let fuzz_dir = workspace_root().join("fuzz");
    let all = list_targets(&fuzz_dir)?;
    let targets = if targets.is_empty() {
        all
    } else {
        if let Some(unknown) = targets.iter().find(|t| !all.contains(t)) {
            bail!("no fuzz target {unknown}; there are {}", all.join(", "));
        }
        targets.to_vec()
    };
    status(
        cargo_fuzz(&fuzz_dir).arg("build"),
        "building the fuzz targets (cargo +nightly fuzz build)",
    )?;
    let mut outcomes = Vec::new();
    for target in &targets {
        println!("== fuzz {target} for {seconds} s");
        outcomes.push(run_one(&fuzz_dir, target, seconds)?);
    }
    println!("== fuzz summary: {seconds} s each");
    println!("| target | seconds | executions | corpus (inputs/bytes) | findings |");
    println!("|---|---|---|---|---|");
    for o in &outcomes {
        println!(
            "| {} | {} | {} | {} | {} |",
            o.target,
            o.seconds,
            o.executions.map_or("?".to_owned(), |e| e.to_string()),
            o.corpus.as_deref().unwrap_or("?"),
            o.failure.as_deref().unwrap_or("none"),
        );
    }
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.failure.is_some())
        .map(|o| o.target.as_str())
        .collect();
    if !failed.is_empty() {
        bail!(
            "fuzzing found problems in {} (inputs in fuzz/artifacts/; replay one with \
             `cargo +nightly fuzz run TARGET FILE`)",
            failed.join(", ")
        );
    }
    Ok(())
}

/// The targets: the file stems of `fuzz/fuzz_targets/*.rs`, sorted.
fn list_targets(fuzz_dir: &Path) -> Result<Vec<String>> {
    let dir = fuzz_dir.join("fuzz_targets");
    let mut targets = Vec::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "rs")
            && let Some(stem) = path.file_stem().and_then(|s| s.to_str())
        {
            targets.push(stem.to_owned());
        }
    }
    targets.sort();
    Ok(targets)
}

/// `cargo +nightly fuzz` in the workspace root, without the eBPF build. Through rustup's
/// `cargo` on PATH: `$CARGO` is the toolchain that runs xtask, which knows no `+nightly`.
fn cargo_fuzz(fuzz_dir: &Path) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.args([NIGHTLY, "fuzz"])
        .current_dir(fuzz_dir.parent().unwrap_or(fuzz_dir))
        .env(SKIP_EBPF.0, SKIP_EBPF.1)
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO");
    cmd
}

fn run_one(fuzz_dir: &Path, target: &str, seconds: u32) -> Result<Outcome> {
    let scratch = fuzz_dir.join("target/corpus").join(target);
    let seeds = fuzz_dir.join("corpus").join(target);
    for dir in [&scratch, &seeds] {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut cmd = cargo_fuzz(fuzz_dir);
    cmd.args(["run", target])
        .arg(&scratch)
        .arg(&seeds)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-timeout={UNIT_TIMEOUT_S}"))
        .arg("-print_final_stats=1")
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting cargo +nightly fuzz run {target}"))?;
    let stderr = child.stderr.take().context("libFuzzer's output")?;
    let mut executions = None;
    let mut fuzzed_seconds = None;
    let mut corpus = None;
    let mut findings = Vec::new();
    // libFuzzer reports on stderr: pass it on, and keep what the summary needs.
    for line in BufReader::new(stderr).lines() {
        let line = line.context("reading libFuzzer's output")?;
        eprintln!("{line}");
        if let Some(n) = line.strip_prefix("stat::number_of_executed_units:") {
            executions = n.trim().parse().ok();
        } else if line.starts_with("Done ") {
            fuzzed_seconds = field(&line, "in").and_then(|s| s.parse().ok());
        } else if line.starts_with('#')
            && let Some(corp) = field(&line, "corp:")
        {
            corpus = Some(corp.to_owned());
        } else if line.contains("Test unit written to") || line.starts_with("SUMMARY:") {
            findings.push(line);
        }
    }
    let exit = child
        .wait()
        .with_context(|| format!("waiting for the fuzz run of {target}"))?;
    let failure = (!exit.success()).then(|| {
        if findings.is_empty() {
            format!("exited with {exit}")
        } else {
            findings.join("; ")
        }
    });
    Ok(Outcome {
        target: target.to_owned(),
        seconds: fuzzed_seconds.unwrap_or_else(|| started.elapsed().as_secs()),
        executions,
        corpus,
        failure,
    })
}

/// The value after `name` in a libFuzzer status line (`#1234 NEW cov: 10 ft: 12 corp: 5/80b`).
fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let mut words = line.split_whitespace();
    words.find(|w| *w == name)?;
    words.next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_status_lines() {
        let line = "#349504\tDONE   cov: 565 ft: 657 corp: 53/7789b lim: 3139 exec/s: 16643";
        assert_eq!(field(line, "corp:"), Some("53/7789b"));
        assert_eq!(field(line, "cov:"), Some("565"));
        assert_eq!(field(line, "rss:"), None);
        assert_eq!(field("#1 INITED corp:", "corp:"), None);
        assert_eq!(field("Done 166235 runs in 6 second(s)", "in"), Some("6"));
    }

    #[test]
    fn lists_the_targets() {
        let targets = list_targets(&workspace_root().join("fuzz")).unwrap();
        for expected in ["vxlan", "gre", "erspan", "replay_reader", "pktminerg_json"] {
            assert!(targets.iter().any(|t| t == expected), "{targets:?}");
        }
        let mut sorted = targets.clone();
        sorted.sort();
        assert_eq!(targets, sorted);
    }
}
