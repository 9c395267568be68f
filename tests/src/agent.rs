//! The `mirror` agent under test: finding its binary, starting it in a netns, reading its metrics.

use std::{
    path::{Path, PathBuf},
    process::{Command, ExitStatus},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};

use crate::{
    metrics::Metrics,
    netns::Netns,
    proc::{Background, Signal},
    world::{REMOTE_IP, World},
};

/// Overrides where the `mirror` binary is taken from.
pub const MIRROR_BIN_ENV: &str = "MIRROR_BIN";
/// The line the agent prints on stderr once everything is attached.
pub const READY_PREFIX: &str = "mirror: ready";
/// How long the agent may take to load and attach its programs.
pub const READY_TIMEOUT: Duration = Duration::from_mins(1);
/// Where the agent serves metrics inside the node netns (its own loopback).
pub const METRICS_ADDR: &str = "127.0.0.1:9464";

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map_or(manifest.clone(), PathBuf::from)
}

/// Cargo's target dir: `$CARGO_TARGET_DIR` (relative to the workspace), else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    let root = workspace_root();
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), |dir| root.join(dir))
}

/// The debug build of the `mirror` binary in [`target_dir`].
pub fn built_mirror_bin() -> PathBuf {
    target_dir().join("debug").join("mirror")
}

/// The `mirror` binary under test: `$MIRROR_BIN`, else [`built_mirror_bin`].
pub fn mirror_bin() -> PathBuf {
    std::env::var_os(MIRROR_BIN_ENV).map_or_else(built_mirror_bin, PathBuf::from)
}

/// [`mirror_bin`], failing with a hint when it has not been built.
pub fn existing_mirror_bin() -> Result<PathBuf> {
    let bin = mirror_bin();
    if !bin.is_file() {
        bail!(
            "the mirror binary {} does not exist: build it with `cargo build -p mirror-user --bin mirror` \
             (or `cargo xtask test`), or point {MIRROR_BIN_ENV} at it",
            bin.display()
        );
    }
    Ok(bin)
}

/// Arguments of `mirror run`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentArgs {
    pub ifaces: Vec<String>,
    /// `--tunnel`: `vxlan`, `gre`, `erspan1`, `erspan2` or `erspan3`.
    pub tunnel: String,
    pub remotes: Vec<String>,
    /// `--vni` and `--vxlan-port` are passed for VxLAN only.
    pub vni: u32,
    pub vxlan_port: u16,
    pub metrics: String,
    pub direction: Option<String>,
    /// Appended as they are.
    pub extra: Vec<String>,
}

impl AgentArgs {
    /// Mirrors `ifaces` of `world`'s node to its remote VTEP, metrics on [`METRICS_ADDR`].
    pub fn vxlan(world: &World, ifaces: &[&str]) -> Self {
        Self {
            ifaces: ifaces.iter().map(ToString::to_string).collect(),
            tunnel: "vxlan".to_owned(),
            remotes: vec![format!("{REMOTE_IP}:{}", world.config.vxlan_port)],
            vni: world.config.vni,
            vxlan_port: world.config.vxlan_port,
            metrics: METRICS_ADDR.to_owned(),
            direction: None,
            extra: Vec::new(),
        }
    }

    /// Mirrors `ifaces` of `world`'s node with `--tunnel TUNNEL` to `remotes`, metrics on
    /// [`METRICS_ADDR`]; `extra` (tunnel options) appended as they are.
    pub fn tunnel(
        world: &World,
        ifaces: &[&str],
        tunnel: &str,
        remotes: &[&str],
        extra: &[&str],
    ) -> Self {
        Self {
            tunnel: tunnel.to_owned(),
            remotes: remotes.iter().map(ToString::to_string).collect(),
            extra: extra.iter().map(ToString::to_string).collect(),
            ..Self::vxlan(world, ifaces)
        }
    }

    /// The command line after `mirror run`.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        for iface in &self.ifaces {
            args.extend(["--iface".to_owned(), iface.clone()]);
        }
        args.extend(["--tunnel".to_owned(), self.tunnel.clone()]);
        for remote in &self.remotes {
            args.extend(["--remote".to_owned(), remote.clone()]);
        }
        if self.tunnel == "vxlan" {
            args.extend([
                "--vni".to_owned(),
                self.vni.to_string(),
                "--vxlan-port".to_owned(),
                self.vxlan_port.to_string(),
            ]);
        }
        args.extend(["--metrics".to_owned(), self.metrics.clone()]);
        if let Some(direction) = &self.direction {
            args.extend(["--direction".to_owned(), direction.clone()]);
        }
        args.extend(self.extra.iter().cloned());
        args
    }
}

/// A running `mirror run` in a netns; stopped with SIGINT on drop.
pub struct Agent<'ns> {
    ns: &'ns Netns,
    metrics_addr: String,
    ready: String,
    process: Background,
}

impl<'ns> Agent<'ns> {
    /// Starts `mirror run ARGS` ([`mirror_bin`]) in `ns` and waits for its ready line.
    pub fn start(ns: &'ns Netns, args: &AgentArgs) -> Result<Self> {
        Self::start_bin(ns, &existing_mirror_bin()?, args)
    }

    /// Starts `BIN run ARGS` in `ns` and waits for its ready line.
    pub fn start_bin(ns: &'ns Netns, bin: &Path, args: &AgentArgs) -> Result<Self> {
        let mut argv = vec!["run".to_owned()];
        argv.extend(args.to_args());
        Self::start_argv(ns, bin, &argv, &args.metrics)
    }

    /// Starts `BIN ARGV` (`argv` from the subcommand on, e.g. `run --config FILE`) in `ns` and
    /// waits for its ready line; `metrics_addr` is where it serves metrics in `ns`.
    pub fn start_argv(
        ns: &'ns Netns,
        bin: &Path,
        argv: &[String],
        metrics_addr: &str,
    ) -> Result<Self> {
        let mut process = ns.spawn("mirror", &bin.to_string_lossy(), argv)?;
        let ready = process
            .wait_for_stderr("its ready line", READY_TIMEOUT, |l| {
                l.starts_with(READY_PREFIX)
            })
            .with_context(|| format!("starting the agent in {}", ns.name()))?;
        Ok(Self {
            ns,
            metrics_addr: metrics_addr.to_owned(),
            ready,
            process,
        })
    }

    /// The ready line the agent printed.
    pub fn ready_line(&self) -> &str {
        &self.ready
    }

    /// Scrapes `/metrics` (curl inside the netns) and returns the raw text.
    pub fn metrics_text(&self) -> Result<String> {
        let url = format!("http://{}/metrics", self.metrics_addr);
        self.ns
            .run("curl", ["-sS", "--fail", "--max-time", "5", url.as_str()])
            .with_context(|| format!("scraping {url} in {}", self.ns.name()))
    }

    /// Scrapes and parses `/metrics`.
    pub fn metrics(&self) -> Result<Metrics> {
        Metrics::parse(&self.metrics_text()?)
    }

    /// Scrapes until the counter sum `name{labels}` reaches `at_least` (counters may lag the
    /// wire by a batch) or `timeout` passes; returns the last scrape either way.
    pub fn wait_for_metric(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        at_least: u64,
        timeout: Duration,
    ) -> Result<Metrics> {
        self.wait_for_metrics(timeout, |m| m.total(name, labels) >= at_least)
    }

    /// Scrapes until `done` holds or `timeout` passes; returns the last scrape either way.
    pub fn wait_for_metrics(
        &self,
        timeout: Duration,
        done: impl Fn(&Metrics) -> bool,
    ) -> Result<Metrics> {
        let deadline = Instant::now() + timeout;
        loop {
            let metrics = self.metrics()?;
            if done(&metrics) || Instant::now() >= deadline {
                return Ok(metrics);
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The agent's process id (`ip netns exec` execs it).
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Waits up to `timeout` for the agent to exit on its own; `None` if it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        self.process.wait_timeout(timeout)
    }

    /// Whether the agent is still running.
    pub fn is_running(&mut self) -> Result<bool> {
        Ok(self.process.try_wait()?.is_none())
    }

    /// Sends `signal` and waits for the exit.
    pub fn stop_with(&mut self, signal: Signal) -> Result<ExitStatus> {
        self.process.stop_with(signal)
    }

    /// What the agent printed on stdout so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.process.stdout_lines()
    }

    /// What the agent printed on stderr so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.process.stderr_lines()
    }
}

/// Runs `mirror ARGV` (in `world`'s node netns when given) and checks the bad-input contract:
/// exit code 2 and exactly one line on stderr, starting with `error:`. Returns that line.
pub fn usage_error_line(world: Option<&World>, argv: &[String]) -> Result<String> {
    let bin = existing_mirror_bin()?;
    let mut cmd = if let Some(world) = world {
        world.node.command(&bin.to_string_lossy(), argv)
    } else {
        let mut cmd = Command::new(&bin);
        cmd.args(argv);
        cmd
    };
    let mut agent = Background::spawn("mirror", &mut cmd)?;
    let status = agent
        .wait(Duration::from_secs(30))
        .with_context(|| format!("the agent did not reject `{}`", argv.join(" ")))?;
    let mut stderr = agent.stderr_lines();
    ensure!(
        status.code() == Some(2),
        "`mirror {}` exited with {status}, expected exit code 2; stderr: {stderr:?}",
        argv.join(" ")
    );
    ensure!(
        stderr.len() == 1 && stderr[0].starts_with("error:"),
        "`mirror {}` must print exactly one line starting with `error:` on stderr, printed \
         {stderr:?}",
        argv.join(" ")
    );
    Ok(stderr.remove(0))
}

/// Runs `mirror run OPTIONS --remote ...` in the world's node; it must exit 2 with one line that
/// starts with `expected`.
pub fn run_rejected(world: &World, options: &[impl AsRef<str>], expected: &str) -> Result<()> {
    let mut argv: Vec<String> = vec!["run".into()];
    argv.extend(options.iter().map(|o| o.as_ref().to_owned()));
    argv.extend(["--remote".into(), REMOTE_IP.into()]);
    let line = usage_error_line(Some(world), &argv)?;
    ensure!(
        line.starts_with(expected),
        "`mirror {}` must print one line starting with `{expected}`, printed {line:?}",
        argv.join(" ")
    );
    Ok(())
}
