//! iperf3 transfers between namespaces.

use std::time::Duration;

use anyhow::{Context as _, Result};

use crate::{netns::Netns, proc::Background};

/// The port the iperf3 servers listen on (inside their own netns).
pub const IPERF_PORT: u16 = 5201;

/// What an iperf3 client reported (`-J`).
#[derive(Clone, Debug, PartialEq)]
pub struct IperfResult {
    /// Payload bytes the client sent (`end.sum_sent.bytes`).
    pub sent_bytes: u64,
    /// Payload bytes the server received (`end.sum_received.bytes`).
    pub received_bytes: u64,
    /// Receiver-side throughput (`end.sum_received.bits_per_second`).
    pub received_bps: f64,
    /// Client ports of the data connections (`start.connected[].local_port`).
    pub data_ports: Vec<u16>,
    /// Retransmitted segments (`end.sum_sent.retransmits`).
    pub retransmits: u64,
}

impl IperfResult {
    /// Parses the `-J` output of an iperf3 client.
    pub fn parse(json: &str) -> Result<Self> {
        let v: serde_json::Value =
            serde_json::from_str(json).context("parsing iperf3 -J output")?;
        if let Some(error) = v["error"].as_str() {
            anyhow::bail!("iperf3 reported: {error}");
        }
        let end = &v["end"];
        let data_ports = v["start"]["connected"]
            .as_array()
            .context("iperf3 -J output without start.connected")?
            .iter()
            .filter_map(|c| c["local_port"].as_u64())
            .filter_map(|p| u16::try_from(p).ok())
            .collect();
        Ok(Self {
            sent_bytes: end["sum_sent"]["bytes"]
                .as_u64()
                .context("iperf3 -J output without end.sum_sent.bytes")?,
            received_bytes: end["sum_received"]["bytes"].as_u64().unwrap_or_default(),
            received_bps: end["sum_received"]["bits_per_second"]
                .as_f64()
                .unwrap_or_default(),
            data_ports,
            retransmits: end["sum_sent"]["retransmits"].as_u64().unwrap_or_default(),
        })
    }

    /// Receiver throughput in Gbit/s.
    pub fn gbps(&self) -> f64 {
        self.received_bps / 1e9
    }
}

/// Starts a one-shot iperf3 server (`-s -1`) on `bind` in `ns` and waits until it listens.
pub fn server(ns: &Netns, bind: &str) -> Result<Background> {
    let port = IPERF_PORT.to_string();
    let mut server = ns.spawn(
        &format!("iperf3 -s {}", ns.name()),
        "iperf3",
        ["-s", "-1", "-B", bind, "-p", port.as_str(), "--forceflush"],
    )?;
    // iperf3 prints "Server listening on PORT" on stdout; poll for it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !server
        .stdout_lines()
        .iter()
        .any(|l| l.contains("listening"))
    {
        if server.try_wait()?.is_some() || std::time::Instant::now() > deadline {
            anyhow::bail!(
                "iperf3 server in {} did not start: {}",
                ns.name(),
                server.stderr_lines().join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(server)
}

/// Runs an iperf3 client in `ns` towards `server_ip` with extra `args` (e.g. `-n 50M`), `-J`.
pub fn client(ns: &Netns, server_ip: &str, args: &[&str]) -> Result<IperfResult> {
    let port = IPERF_PORT.to_string();
    let mut argv = vec!["-c", server_ip, "-p", port.as_str(), "-J"];
    argv.extend_from_slice(args);
    let output = crate::proc::run_unchecked(&mut ns.command("iperf3", &argv))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    IperfResult::parse(&stdout).with_context(|| {
        format!(
            "iperf3 {} in {} ({}): {}",
            argv.join(" "),
            ns.name(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )
    })
}

/// One transfer: server in `server_ns` on `server_ip`, client in `client_ns`; waits for both.
pub fn transfer(
    server_ns: &Netns,
    server_ip: &str,
    client_ns: &Netns,
    args: &[&str],
) -> Result<IperfResult> {
    let mut server = server(server_ns, server_ip)?;
    let result = client(client_ns, server_ip, args)?;
    server
        .wait(Duration::from_secs(10))
        .context("waiting for the one-shot iperf3 server")?;
    Ok(result)
}
