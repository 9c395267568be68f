//! Small then big pings from the pod through a VxLAN mirror, caught at the pod, on the remote's
//! wire and behind its kernel VTEP: the common part of the tests of copies larger than the uplink
//! (`--oversize`) and of jumbo frames, which then judge what arrived each their own way.

use std::time::Duration;

use anyhow::{Result, ensure};

use crate::{
    Agent, AgentArgs, Capture, Direction, Metrics, Signal, World,
    world::{NODE_POD_IF, POD_IF, REMOTE_IF, REMOTE_VTEP_IF},
};

/// How long the tunnel packets of a run may take to arrive.
const ARRIVAL: Duration = Duration::from_secs(10);
/// Waited after the expected count, so that extra packets would be caught too.
const SETTLE: Duration = Duration::from_millis(500);
/// How long the agent's counters may lag behind its packets.
const METRICS_LAG: Duration = Duration::from_secs(5);

/// One run: `pings` small pings, then `pings` of `big` bytes (`ping -s`), each crossing the
/// pod's veth twice.
pub struct PingSizes<'a> {
    pub pings: usize,
    pub big: usize,
    /// `--oversize`, if given.
    pub oversize: Option<&'a str>,
    /// `--remote` instead of the world's IPv4 remote VTEP.
    pub remote: Option<&'a str>,
    /// The remote's VxLAN device that decapsulates the copies.
    pub vtep: &'a str,
    /// Which of the remote's packets are the tunnel's (a tcpdump filter).
    pub wire_filter: &'a str,
    /// `mirror_sent_packets_total` to wait for, where the test knows it.
    pub sent: Option<usize>,
}

/// What a run caught.
pub struct Caught {
    /// The pod's frames, small pings' then big pings'.
    pub pod: Vec<Vec<u8>>,
    /// The tunnel packets on the remote's wire.
    pub wire: Vec<Vec<u8>>,
    /// What the remote's VTEP decapsulated.
    pub decapsulated: Vec<Vec<u8>>,
    /// The agent's metrics before it stopped.
    pub metrics: Metrics,
}

impl PingSizes<'_> {
    /// `pings` of each size to the world's IPv4 remote VTEP, without `--oversize`.
    pub fn vxlan(pings: usize, big: usize) -> Self {
        Self {
            pings,
            big,
            oversize: None,
            remote: None,
            vtep: REMOTE_VTEP_IF,
            wire_filter: "ip and udp",
            sent: None,
        }
    }

    /// How many frames the pod's veth carries.
    pub fn frames(&self) -> usize {
        4 * self.pings
    }

    /// Mirrors the pod's veth of `world` while it pings; stops the agent (which must exit
    /// cleanly) and checks that the pod saw every frame.
    pub fn run(&self, world: &World) -> Result<Caught> {
        let mut at_pod = Capture::start(&world.pod, POD_IF, Direction::InOut, None)?;
        let mut at_wire = Capture::start_filtered(
            &world.remote,
            REMOTE_IF,
            Direction::In,
            None,
            Some(self.wire_filter),
        )?;
        let mut at_vtep = Capture::start(&world.remote, self.vtep, Direction::In, None)?;
        let mut args = AgentArgs::vxlan(world, &[NODE_POD_IF]);
        if let Some(remote) = self.remote {
            args.remotes = vec![remote.to_owned()];
        }
        if let Some(oversize) = self.oversize {
            args.extra = vec!["--oversize".to_owned(), oversize.to_owned()];
        }
        let mut agent = Agent::start(&world.node, &args)?;
        world.ping_node_from_pod(self.pings, None)?;
        world.ping_node_from_pod(self.pings, Some(self.big))?;
        let frames = self.frames();
        at_vtep.wait_for_frames(frames, ARRIVAL, SETTLE);
        at_wire.wait_until_quiet(SETTLE, ARRIVAL);
        let metrics = match self.sent {
            Some(sent) => agent.wait_for_metric(
                "mirror_sent_packets_total",
                &[],
                u64::try_from(sent)?,
                METRICS_LAG,
            )?,
            None => agent.metrics()?,
        };
        let status = agent.stop_with(Signal::Int)?;
        ensure!(
            status.success(),
            "the agent exited with {status} after SIGINT"
        );
        let pod = at_pod.finish()?;
        ensure!(
            pod.len() == frames,
            "the pod saw {} frames, not {frames}",
            pod.len()
        );
        Ok(Caught {
            pod,
            wire: at_wire.finish()?,
            decapsulated: at_vtep.finish()?,
            metrics,
        })
    }
}

/// `frames` as a remote gets them when every copy is cut to `limit` bytes.
pub fn cut_to(frames: &[Vec<u8>], limit: usize) -> Vec<Vec<u8>> {
    frames
        .iter()
        .map(|f| f[..f.len().min(limit)].to_vec())
        .collect()
}
