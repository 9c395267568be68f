//! One name for "the mirror this test runs": the real agent, or the kernel stand-in that checks
//! the world and the test logic themselves (and is the baseline the agent is compared with).

use std::process::ExitStatus;

use anyhow::{Result, bail};

use crate::{
    agent::{Agent, AgentArgs},
    kernel_mirror::KernelMirror,
    metrics::Metrics,
    proc::Signal,
    world::World,
};

/// Which mirror to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MirrorKind {
    /// `mirror run` in the node netns.
    Agent,
    /// tc `mirred` into a kernel VxLAN device: see [`KernelMirror`].
    Kernel,
}

impl MirrorKind {
    /// For messages.
    pub fn label(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Kernel => "kernel mirror",
        }
    }
}

/// A running mirror of either kind, stopped on drop.
pub enum MirrorUnderTest<'w> {
    Agent(Agent<'w>),
    Kernel(KernelMirror<'w>),
}

impl<'w> MirrorUnderTest<'w> {
    /// Mirrors `ifaces` (both directions) of `world`'s node to its remote VTEP.
    pub fn start(kind: MirrorKind, world: &'w World, ifaces: &[&str]) -> Result<Self> {
        Ok(match kind {
            MirrorKind::Agent => {
                Self::Agent(Agent::start(&world.node, &AgentArgs::vxlan(world, ifaces))?)
            }
            MirrorKind::Kernel => Self::Kernel(KernelMirror::for_world(world, ifaces)?),
        })
    }

    /// The agent, as [`MirrorUnderTest::start`] runs it, with `extra` arguments.
    pub fn agent_with(world: &'w World, ifaces: &[&str], extra: &[&str]) -> Result<Self> {
        let mut args = AgentArgs::vxlan(world, ifaces);
        args.extra.extend(extra.iter().map(|arg| (*arg).to_owned()));
        Ok(Self::Agent(Agent::start(&world.node, &args)?))
    }

    /// The agent's metrics; `None` for the kernel mirror.
    pub fn metrics(&self) -> Result<Option<Metrics>> {
        match self {
            Self::Agent(agent) => agent.metrics().map(Some),
            Self::Kernel(_) => Ok(None),
        }
    }

    /// Stops the mirror; the agent must exit 0 on SIGINT.
    pub fn stop(self) -> Result<()> {
        match self {
            Self::Agent(mut agent) => {
                let status: ExitStatus = agent.stop_with(Signal::Int)?;
                if !status.success() {
                    bail!("the agent exited with {status} after SIGINT");
                }
                Ok(())
            }
            Self::Kernel(kernel) => {
                drop(kernel);
                Ok(())
            }
        }
    }
}
