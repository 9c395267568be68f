//! The real Prometheus tools against the agent: `promtool check metrics` on a scrape, and a
//! `prometheus` server in a netns that scrapes the agent and answers PromQL queries.

use std::{
    fs,
    io::{ErrorKind, Write as _},
    net::TcpListener,
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};

use crate::{netns::Netns, proc::Background, scratch::ScratchDir};

/// How `cargo xtask setup` provides both tools.
const INSTALL_HINT: &str = "the Debian package prometheus (run `cargo xtask setup`)";

/// Runs `promtool check metrics` on `text` (the exposition format); fails unless promtool
/// accepts it without a single lint problem, quoting what it said.
pub fn promtool_check_metrics(text: &str) -> Result<()> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            ErrorKind::NotFound => anyhow::anyhow!("promtool is not installed: {INSTALL_HINT}"),
            _ => anyhow::Error::new(e).context("starting promtool"),
        })?;
    child
        .stdin
        .take()
        .context("promtool's stdin")?
        .write_all(text.as_bytes())
        .context("writing the metrics to promtool")?;
    let output = child.wait_with_output().context("waiting for promtool")?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    ensure!(
        output.status.success() && said.trim().is_empty(),
        "`promtool check metrics` ({}) found problems:\n{said}",
        output.status
    );
    Ok(())
}

/// A `prometheus` server on 127.0.0.1 of a netns, scraping one target; killed on drop, and its
/// config and storage directory removed after it.
pub struct Prometheus<'ns> {
    ns: &'ns Netns,
    addr: String,
    // Declared before the directory: the server stops before its storage is removed.
    process: Background,
    _dir: ScratchDir,
}

impl<'ns> Prometheus<'ns> {
    /// How long the server may take to become ready.
    pub const READY_TIMEOUT: Duration = Duration::from_mins(1);

    /// Starts a server in `ns` that scrapes `http://TARGET/metrics` every second (job
    /// `mirror`), on a free port of 127.0.0.1 there, and waits until it is ready.
    pub fn start(ns: &'ns Netns, target: &str) -> Result<Self> {
        let dir = ScratchDir::new()?;
        let config = dir.join("prometheus.yml");
        fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: mirror\n    static_configs:\n      \
                 - targets: [\"{target}\"]\n"
            ),
        )
        .with_context(|| format!("writing {}", config.display()))?;
        let port = ns.within(|| {
            let listener =
                TcpListener::bind("127.0.0.1:0").context("binding a free port on 127.0.0.1")?;
            Ok(listener.local_addr()?.port())
        })?;
        let addr = format!("127.0.0.1:{port}");
        let args = [
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", dir.join("data").display()),
            format!("--web.listen-address={addr}"),
            "--log.level=warn".to_owned(),
        ];
        let process = ns
            .spawn("prometheus", "prometheus", &args)
            .with_context(|| format!("starting prometheus ({INSTALL_HINT})"))?;
        let mut server = Self {
            ns,
            addr,
            process,
            _dir: dir,
        };
        server.wait_ready()?;
        Ok(server)
    }

    /// Where the server listens, in its netns.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn wait_ready(&mut self) -> Result<()> {
        let url = format!("http://{}/-/ready", self.addr);
        let deadline = Instant::now() + Self::READY_TIMEOUT;
        loop {
            if let Some(status) = self.process.try_wait()? {
                bail!(
                    "prometheus exited ({status}) before it was ready (it comes with \
                     {INSTALL_HINT}): {:?}",
                    self.process.stderr_lines()
                );
            }
            if self
                .ns
                .run("curl", ["-sS", "--fail", "--max-time", "2", url.as_str()])
                .is_ok()
            {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "prometheus was not ready at {url} within {:?}",
                Self::READY_TIMEOUT
            );
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// The values of the instant query `expr` (`/api/v1/query`), one per series.
    pub fn query(&self, expr: &str) -> Result<Vec<f64>> {
        let url = format!("http://{}/api/v1/query", self.addr);
        let query = format!("query={expr}");
        let body = self
            .ns
            .run(
                "curl",
                [
                    "-sS",
                    "--fail",
                    "--max-time",
                    "5",
                    "-G",
                    "--data-urlencode",
                    query.as_str(),
                    url.as_str(),
                ],
            )
            .with_context(|| format!("querying prometheus for {expr}"))?;
        parse_vector(&body).with_context(|| format!("the answer to {expr}: {body}"))
    }

    /// Queries `expr` until its first series is at least `at_least` or `timeout` passes;
    /// returns the last value (`None` while the query has no series).
    pub fn wait_for(&self, expr: &str, at_least: f64, timeout: Duration) -> Result<Option<f64>> {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.query(expr)?.first().copied();
            if value.is_some_and(|v| v >= at_least) || Instant::now() >= deadline {
                return Ok(value);
            }
            thread::sleep(Duration::from_millis(250));
        }
    }
}

/// The sample values of an instant-vector answer of the HTTP API.
fn parse_vector(body: &str) -> Result<Vec<f64>> {
    let answer: serde_json::Value = serde_json::from_str(body).context("not JSON")?;
    ensure!(
        answer["status"] == "success",
        "status is {}",
        answer["status"]
    );
    ensure!(
        answer["data"]["resultType"] == "vector",
        "result type is {}",
        answer["data"]["resultType"]
    );
    answer["data"]["result"]
        .as_array()
        .context("no result array")?
        .iter()
        .map(|series| {
            // `"value": [<unix time>, "<value as text>"]`
            series["value"][1]
                .as_str()
                .context("a series without a value")?
                .parse::<f64>()
                .context("a value that is not a number")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_instant_vectors() {
        let body = r#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"iface":"vethpod"},"value":[1700000000.123,"200"]},
            {"metric":{"iface":"eth0"},"value":[1700000000.123,"1.5"]}]}}"#;
        assert_eq!(parse_vector(body).unwrap(), [200.0, 1.5]);
        let empty = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert_eq!(parse_vector(empty).unwrap(), Vec::<f64>::new());
        let error = r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#;
        assert!(parse_vector(error).is_err());
        assert!(parse_vector("<html>").is_err());
    }

    /// The check is promtool's own lint, not a formality (needs promtool: `cargo xtask setup`).
    #[test]
    fn promtool_reports_lint_problems() {
        let good = "# HELP mirror_x_total X.\n# TYPE mirror_x_total counter\nmirror_x_total 1\n";
        promtool_check_metrics(good).unwrap();
        let bad = "# HELP mirror_x X.\n# TYPE mirror_x counter\nmirror_x 1\n";
        let err = promtool_check_metrics(bad).unwrap_err().to_string();
        assert!(err.contains("_total"), "{err}");
    }
}
