//! What mirrors the pod's traffic in a live scenario: nothing (the reference for incremental
//! CPU), the kernel (`tc mirred` into a `vxlan` device), the release `mirror run`, pinned to
//! its own CPU, and with `--peer` another mirror on the same CPU.

use anyhow::{Context as _, Result, bail};
use mirror_tests::{
    AgentArgs, Background, KernelMirror, Metrics, World,
    agent::{READY_PREFIX, READY_TIMEOUT},
    kernel_mirror::KERNEL_MIRROR_IF,
    world::{NODE_POD_IF, REMOTE_IP},
};

use super::{Bench, cpu::Watched, peer::Peer};

/// One of the subjects of a live scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subject {
    None,
    Kernel,
    Mirror,
    /// `--peer`.
    Peer,
}

impl Subject {
    /// The subjects of a run: the peer only when there is one.
    pub fn all(peer: bool) -> Vec<Self> {
        let mut all = vec![Self::None, Self::Kernel, Self::Mirror];
        if peer {
            all.push(Self::Peer);
        }
        all
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Kernel => "kernel",
            Self::Mirror => "mirror",
            Self::Peer => "peer",
        }
    }

    /// The subjects in the order of run `run`: rotated each run, so that a drift of the
    /// machine's speed hits all alike.
    pub fn order(run: usize, peer: bool) -> Vec<Self> {
        let mut all = Self::all(peer);
        let len = all.len();
        all.rotate_left(run % len);
        all
    }
}

/// A subject at work, stopped by [`Running::finish`] (or on drop).
pub enum Running<'w> {
    None,
    /// Held for its drop, which removes the kernel's mirror.
    Kernel {
        _mirror: KernelMirror<'w>,
    },
    Mirror {
        process: Background,
        world: &'w World,
    },
    Peer(Peer),
}

/// A filter every subject applies, each in its own language (the filter scenarios).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Selection {
    /// pcap-filter(7), for the agent's `--filter` and the peer's `{filter}`.
    pub pcap: &'static str,
    /// `tc` `u32` match words for the kernel's mirror.
    pub u32_match: &'static [&'static str],
    /// One offered packet in this many is selected.
    pub one_in: u64,
}

/// What the agent said about itself at the end of a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AgentCounters {
    /// `mirror_dropped_packets_total`, all reasons but `filtered`.
    pub dropped: u64,
    /// `mirror_netflow_active_flows`.
    pub active_flows: u64,
}

impl<'w> Running<'w> {
    /// Starts `subject` on `world`'s pod interface; `extra` are more `mirror run` arguments,
    /// `selection` what every subject copies (all when `None`). Returns it and the command
    /// line that describes it.
    pub fn start(
        bench: &Bench,
        world: &'w World,
        subject: Subject,
        extra: &[String],
        selection: Option<Selection>,
    ) -> Result<(Self, String)> {
        match subject {
            Subject::None => Ok((Self::None, String::new())),
            Subject::Kernel => Ok((
                Self::Kernel {
                    _mirror: KernelMirror::for_world_selecting(
                        world,
                        &[NODE_POD_IF],
                        selection.map_or(&[], |s| s.u32_match),
                    )?,
                },
                format!(
                    "tc u32 {} on {NODE_POD_IF} ingress+egress, action mirred egress mirror dev \
                     {KERNEL_MIRROR_IF} (vxlan id {} dstport {} remote {REMOTE_IP})",
                    selection.map_or_else(|| "match-all".to_owned(), |s| s.u32_match.join(" ")),
                    world.config.vni,
                    world.config.vxlan_port
                ),
            )),
            Subject::Mirror => {
                let mut args = AgentArgs::vxlan(world, &[NODE_POD_IF]);
                args.extra = extra.to_vec();
                if let Some(selection) = selection {
                    args.extra
                        .extend(["--filter".to_owned(), selection.pcap.to_owned()]);
                }
                let cpu = bench.settings.cpu.to_string();
                let bin = bench.bin.to_string_lossy().into_owned();
                let mut argv = vec!["-c".to_owned(), cpu, bin, "run".to_owned()];
                argv.extend(args.to_args());
                let command =
                    super::shown_command(&argv.iter().map(String::as_str).collect::<Vec<_>>());
                let mut process =
                    Background::spawn("mirror", &mut world.node.command("taskset", &argv))?;
                process
                    .wait_for_stderr("its ready line", READY_TIMEOUT, |l| {
                        l.starts_with(READY_PREFIX)
                    })
                    .with_context(|| format!("starting `{command}`"))?;
                Ok((Self::Mirror { process, world }, command))
            }
            Subject::Peer => {
                let spec = bench
                    .settings
                    .peer
                    .as_ref()
                    .context("the peer subject without --peer")?;
                let filter = selection.map_or("", |s| s.pcap);
                let (peer, command) = Peer::start(spec, world, bench.settings.cpu, filter)?;
                Ok((Self::Peer(peer), command))
            }
        }
    }

    /// What to measure beside the machine: the agent (`ip netns exec` and `taskset` exec it in
    /// place), or the peer's process tree.
    pub fn watched(&self) -> Option<Watched> {
        match self {
            Self::Mirror { process, .. } => Some(Watched::Process(process.pid())),
            Self::Peer(peer) => Some(Watched::Tree(peer.pid())),
            Self::None | Self::Kernel { .. } => None,
        }
    }

    /// Fails if a subject that runs as a process has exited.
    pub fn check_alive(&mut self) -> Result<()> {
        match self {
            Self::Peer(peer) => peer.check_alive(),
            Self::Mirror { process, .. } => match process.try_wait()? {
                Some(status) => bail!(
                    "the agent exited early ({status}): {}",
                    process.stderr_lines().join("\n")
                ),
                None => Ok(()),
            },
            Self::None | Self::Kernel { .. } => Ok(()),
        }
    }

    /// Stops the subject; for the agent, reads its counters first and checks it exits 0.
    pub fn finish(self) -> Result<Option<AgentCounters>> {
        match self {
            Self::None | Self::Kernel { .. } => Ok(None),
            Self::Peer(peer) => peer.stop().map(|()| None),
            Self::Mirror { mut process, world } => {
                let text = world
                    .node
                    .run(
                        "curl",
                        [
                            "-sS",
                            "--fail",
                            "--max-time",
                            "5",
                            &format!("http://{}/metrics", mirror_tests::agent::METRICS_ADDR),
                        ],
                    )
                    .context("scraping the agent's metrics")?;
                let metrics = Metrics::parse(&text)?;
                let counters = AgentCounters {
                    // What a filter left out is not a loss.
                    dropped: metrics.total("mirror_dropped_packets_total", &[])
                        - metrics.total("mirror_dropped_packets_total", &[("reason", "filtered")]),
                    active_flows: metrics.total("mirror_netflow_active_flows", &[]),
                };
                let status = process.stop()?;
                if !status.success() {
                    bail!(
                        "the agent exited with {status} after SIGINT: {}",
                        process.stderr_lines().join("\n")
                    );
                }
                Ok(Some(counters))
            }
        }
    }
}
