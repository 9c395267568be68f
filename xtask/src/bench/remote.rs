//! The two kinds of remote a live scenario's copies go to, and how each counts them.

use anyhow::{Context as _, Result};
use mirror_tests::World;

use super::{
    Bench,
    sink::Sink,
    world::{delivered, settled},
};

/// Where the copies of a live scenario are counted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RemoteKind {
    /// The remote's kernel `vxlan0`: proves the copies decapsulate, but on veth its receive and
    /// decapsulation run on the sending CPU, so every subject's +CPU includes them.
    #[default]
    Vtep,
    /// An XDP program on the remote's uplink end that counts the tunnel packets and drops them:
    /// what remains is the mirror's own cost.
    Sink,
}

impl RemoteKind {
    pub fn label(self) -> &'static str {
        match self {
            Self::Vtep => "vtep",
            Self::Sink => "sink",
        }
    }

    /// For tables.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Vtep => {
                "remote: kernel VTEP (vxlan0 decapsulates each copy; its receive work runs on the sending CPU)"
            }
            Self::Sink => {
                "remote: XDP sink (counts VxLAN copies by VNI on the remote's uplink end and drops them)"
            }
        }
    }
}

/// A remote counting copies, for the runs of one remote kind.
pub enum Counter<'w> {
    Vtep(&'w World),
    Sink { sink: Sink<'w>, port: u16, vni: u32 },
}

impl<'w> Counter<'w> {
    /// The counter of `kind` on `world`, with the sink's program and CPU the bench was given.
    pub fn new(bench: &Bench, world: &'w World, kind: RemoteKind) -> Result<Self> {
        Ok(match kind {
            RemoteKind::Vtep => Self::Vtep(world),
            RemoteKind::Sink => Self::Sink {
                sink: bench
                    .sink_object
                    .as_deref()
                    .context("the sink's program was not built")
                    .and_then(|object| Sink::attach(world, object, bench.settings.sink_cpu))
                    .with_context(|| format!("setting up the {} remote", kind.label()))?,
                port: world.config.vxlan_port,
                vni: world.config.vni,
            },
        })
    }

    /// Copies counted so far (GSO/GRO segments one by one at the VTEP; fragmented copies once).
    pub fn delivered(&self) -> Result<u64> {
        match self {
            Self::Vtep(world) => delivered(world),
            Self::Sink { sink, port, vni } => sink.vxlan(*port, *vni),
        }
    }

    /// [`Counter::delivered`] once it has stopped moving: soon once it has reached `full`, the
    /// count with every copy in; some seconds later before (see [`settled`]).
    pub fn settled(&self, full: u64) -> Result<u64> {
        settled(|| self.delivered(), full)
    }

    /// Tunnel packets the sink counted that are not the bench's copies (another VNI, port or
    /// tunnel): a peer sending elsewhere than asked shows here.
    pub fn strays(&self) -> Result<u64> {
        match self {
            Self::Vtep(_) => Ok(0),
            Self::Sink { sink, port, vni } => sink.strays(*port, *vni),
        }
    }
}
