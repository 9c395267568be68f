//! The standard test world: a node, a pod on it, and a remote VTEP, each in its own netns.
//!
//! ```text
//!  pod netns                node netns (agent runs here)              remote netns
//!  eth0 198.19.0.2/24 <---> vethpod 198.19.0.1/24
//!                           uplink 198.18.0.1/24  <---- mtu 9000 ----> eth0 198.18.0.2/24
//!                           [fd00:198:18::1/64]                       [fd00:198:18::2/64]
//!                                                                     vxlan0 (VNI, port): kernel VTEP
//! ```
//!
//! Every IPv4 address is in 198.18.0.0/15 and every interface lives in a namespace the world
//! owns. IPv6 is off everywhere except, with [`WorldConfig::ipv6_uplink`], on the uplink pair,
//! which then has the unique-local addresses in brackets (no link-local addresses, no DAD,
//! static neighbours). The uplink MTU is [`WorldConfig::uplink_mtu`].

use anyhow::{Context as _, Result};

use crate::{
    capture::{Capture, Direction},
    netns::{Netns, sweep_stale, unique_prefix},
};

/// Pod address (pod `eth0`).
pub const POD_IP: &str = "198.19.0.2";
/// Node address on the pod link (node `vethpod`).
pub const NODE_POD_IP: &str = "198.19.0.1";
/// Node address on the uplink (node `uplink`): the tunnel source.
pub const NODE_UPLINK_IP: &str = "198.18.0.1";
/// Remote VTEP address (remote `eth0`).
pub const REMOTE_IP: &str = "198.18.0.2";
/// The pod's interface, in the pod netns.
pub const POD_IF: &str = "eth0";
/// The pod's host-side veth, in the node netns: what the agent mirrors.
pub const NODE_POD_IF: &str = "vethpod";
/// The node's uplink towards the remote, in the node netns.
pub const NODE_UPLINK_IF: &str = "uplink";
/// The remote's link to the node, in the remote netns.
pub const REMOTE_IF: &str = "eth0";
/// The remote's kernel VxLAN device, which decapsulates what the mirror sends.
pub const REMOTE_VTEP_IF: &str = "vxlan0";
/// Default MTU of the node-remote link: a VxLAN copy of a full-size frame is 1564 bytes.
pub const UPLINK_MTU: u32 = 9000;
/// Node address on the uplink with [`WorldConfig::ipv6_uplink`] (unique-local).
pub const NODE_UPLINK_IP6: &str = "fd00:198:18::1";
/// Remote address with [`WorldConfig::ipv6_uplink`] (unique-local).
pub const REMOTE_IP6: &str = "fd00:198:18::2";

/// Pod address on the pod link with [`World::wire_pod_ipv6`] (unique-local).
pub const POD_IP6: &str = "fd00:198:18:1::2";
/// Node address on the pod link with [`World::wire_pod_ipv6`] (unique-local).
pub const NODE_POD_IP6: &str = "fd00:198:18:1::1";

/// What varies between worlds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorldConfig {
    /// VxLAN network identifier of the remote VTEP.
    pub vni: u32,
    /// UDP destination port of the remote VTEP.
    pub vxlan_port: u16,
    /// MTU of both ends of the node-remote link.
    pub uplink_mtu: u32,
    /// Whether the uplink pair also gets [`NODE_UPLINK_IP6`] and [`REMOTE_IP6`].
    pub ipv6_uplink: bool,
    /// Transmit and receive queues of both ends of the node-remote link.
    pub uplink_queues: u32,
}

impl Default for WorldConfig {
    fn default() -> Self {
        Self {
            vni: 42,
            vxlan_port: 4789,
            uplink_mtu: UPLINK_MTU,
            ipv6_uplink: false,
            uplink_queues: 1,
        }
    }
}

/// The three namespaces, wired up; all removed on drop (also on panic).
#[derive(Debug)]
pub struct World {
    pub config: WorldConfig,
    /// The Kubernetes node: run the agent here.
    pub node: Netns,
    pub pod: Netns,
    pub remote: Netns,
}

impl World {
    /// Builds the standard world with `vni` on the default VxLAN port.
    pub fn new(vni: u32) -> Result<Self> {
        Self::build(WorldConfig {
            vni,
            ..WorldConfig::default()
        })
    }

    /// Builds the standard world.
    pub fn build(config: WorldConfig) -> Result<Self> {
        sweep_stale();
        let prefix = unique_prefix();
        let node = Netns::create(&format!("{prefix}-node"))?;
        let pod = Netns::create(&format!("{prefix}-pod"))?;
        let remote = Netns::create(&format!("{prefix}-remote"))?;
        let world = Self {
            config,
            node,
            pod,
            remote,
        };
        world
            .wire()
            .with_context(|| format!("building the test world {prefix}"))?;
        Ok(world)
    }

    fn wire(&self) -> Result<()> {
        let (node, pod, remote) = (&self.node, &self.pod, &self.remote);
        let mtu = self.config.uplink_mtu.to_string();
        let queues = self.config.uplink_queues.max(1).to_string();

        node.ip([
            "link",
            "add",
            NODE_POD_IF,
            "type",
            "veth",
            "peer",
            "name",
            POD_IF,
            "netns",
            pod.name(),
        ])
        .context("creating the pod veth pair")?;
        node.ip([
            "link",
            "add",
            NODE_UPLINK_IF,
            "mtu",
            &mtu,
            "numtxqueues",
            &queues,
            "numrxqueues",
            &queues,
            "type",
            "veth",
            "peer",
            "name",
            REMOTE_IF,
            "mtu",
            &mtu,
            "numtxqueues",
            &queues,
            "numrxqueues",
            &queues,
            "netns",
            remote.name(),
        ])
        .context("creating the uplink veth pair")?;

        pod.ip(["addr", "add", &format!("{POD_IP}/24"), "dev", POD_IF])?;
        node.ip([
            "addr",
            "add",
            &format!("{NODE_POD_IP}/24"),
            "dev",
            NODE_POD_IF,
        ])?;
        node.ip([
            "addr",
            "add",
            &format!("{NODE_UPLINK_IP}/24"),
            "dev",
            NODE_UPLINK_IF,
        ])?;
        remote.ip(["addr", "add", &format!("{REMOTE_IP}/24"), "dev", REMOTE_IF])?;
        for (ns, dev) in [
            (pod, POD_IF),
            (node, NODE_POD_IF),
            (node, NODE_UPLINK_IF),
            (remote, REMOTE_IF),
        ] {
            ns.ip(["link", "set", dev, "up"])?;
        }

        // Static neighbours: no ARP in any capture.
        static_neighbour(pod, NODE_POD_IP, POD_IF, node, NODE_POD_IF)?;
        static_neighbour(node, POD_IP, NODE_POD_IF, pod, POD_IF)?;
        static_neighbour(node, REMOTE_IP, NODE_UPLINK_IF, remote, REMOTE_IF)?;
        static_neighbour(remote, NODE_UPLINK_IP, REMOTE_IF, node, NODE_UPLINK_IF)?;
        if self.config.ipv6_uplink {
            self.wire_ipv6()?;
        }

        let vni = self.config.vni.to_string();
        let port = self.config.vxlan_port.to_string();
        remote
            .ip([
                "link",
                "add",
                REMOTE_VTEP_IF,
                "type",
                "vxlan",
                "id",
                &vni,
                "dstport",
                &port,
                "local",
                REMOTE_IP,
                "dev",
                REMOTE_IF,
                "nolearning",
            ])
            .context("creating the remote VTEP")?;
        remote.ip(["link", "set", REMOTE_VTEP_IF, "up"])?;
        Ok(())
    }
}

/// A permanent neighbour entry in `ns` for `ip` on `dev`, with the MAC of `peer_dev` in `peer`.
fn static_neighbour(ns: &Netns, ip: &str, dev: &str, peer: &Netns, peer_dev: &str) -> Result<()> {
    let mac = peer.mac(peer_dev)?;
    ns.ip([
        "neigh",
        "replace",
        ip,
        "lladdr",
        &mac,
        "dev",
        dev,
        "nud",
        "permanent",
    ])
    .map(drop)
    .with_context(|| format!("static neighbour entry for {ip} in {}", ns.name()))
}

impl World {
    /// IPv6 on the uplink pair only: unique-local addresses, no link-local ones, no DAD, static
    /// neighbours (so no neighbour discovery either).
    fn wire_ipv6(&self) -> Result<()> {
        let (node, remote) = (&self.node, &self.remote);
        for (ns, dev, ip) in [
            (node, NODE_UPLINK_IF, NODE_UPLINK_IP6),
            (remote, REMOTE_IF, REMOTE_IP6),
        ] {
            ns.enable_ipv6(dev)?;
            ns.ip([
                "-6",
                "addr",
                "add",
                &format!("{ip}/64"),
                "dev",
                dev,
                "nodad",
            ])
            .with_context(|| format!("adding {ip} to {dev} in {}", ns.name()))?;
        }
        static_neighbour(node, REMOTE_IP6, NODE_UPLINK_IF, remote, REMOTE_IF)?;
        static_neighbour(remote, NODE_UPLINK_IP6, REMOTE_IF, node, NODE_UPLINK_IF)
    }

    /// IPv6 on the pod link too: [`POD_IP6`] and [`NODE_POD_IP6`], as the uplink gets them (no
    /// link-local addresses, no DAD, static neighbours). Joining the addresses' multicast
    /// groups sends a few MLD reports, with an unspecified source, over about two seconds:
    /// this waits until the link has been quiet for a while, so a test's captures miss none.
    pub fn wire_pod_ipv6(&self) -> Result<()> {
        let (node, pod) = (&self.node, &self.pod);
        let mut watch = Capture::start(pod, POD_IF, Direction::InOut, None)?;
        for (ns, dev, ip) in [(node, NODE_POD_IF, NODE_POD_IP6), (pod, POD_IF, POD_IP6)] {
            ns.enable_ipv6(dev)?;
            ns.ip([
                "-6",
                "addr",
                "add",
                &format!("{ip}/64"),
                "dev",
                dev,
                "nodad",
            ])
            .with_context(|| format!("adding {ip} to {dev} in {}", ns.name()))?;
        }
        static_neighbour(node, POD_IP6, NODE_POD_IF, pod, POD_IF)?;
        static_neighbour(pod, NODE_POD_IP6, POD_IF, node, NODE_POD_IF)?;
        std::thread::sleep(std::time::Duration::from_secs(1));
        watch.wait_until_quiet(
            std::time::Duration::from_millis(2500),
            std::time::Duration::from_secs(15),
        );
        watch.finish().map(drop)
    }

    /// Adds `ip` (IPv4, in 198.18.0.0/24) to the remote's `eth0` and a static neighbour entry for
    /// it in the node: another tunnel destination on the same remote.
    pub fn add_remote_ip(&self, ip: &str) -> Result<()> {
        self.remote
            .ip(["addr", "add", &format!("{ip}/24"), "dev", REMOTE_IF])
            .with_context(|| format!("adding {ip} to the remote"))?;
        static_neighbour(&self.node, ip, NODE_UPLINK_IF, &self.remote, REMOTE_IF)
    }

    /// Creates and brings up a kernel VxLAN device `name` in the remote:
    /// `vxlan id VNI dstport PORT local LOCAL dev eth0 nolearning EXTRA...`.
    pub fn add_remote_vxlan(
        &self,
        name: &str,
        vni: u32,
        port: u16,
        local: &str,
        extra: &[&str],
    ) -> Result<()> {
        let (vni, port) = (vni.to_string(), port.to_string());
        let mut args = vec![
            "link",
            "add",
            name,
            "type",
            "vxlan",
            "id",
            &vni,
            "dstport",
            &port,
            "local",
            local,
            "dev",
            REMOTE_IF,
            "nolearning",
        ];
        args.extend_from_slice(extra);
        self.remote
            .ip(&args)
            .with_context(|| format!("creating the VxLAN device {name} in the remote"))?;
        self.remote.ip(["link", "set", name, "up"])?;
        Ok(())
    }

    /// `ping -c COUNT -i 0.01 -q [-s SIZE] NODE_POD_IP` from the pod: `COUNT` echo requests and
    /// as many replies cross `vethpod`.
    pub fn ping_node_from_pod(&self, count: usize, size: Option<usize>) -> Result<()> {
        self.ping_node_from_pod_on(None, count, size)
    }

    /// [`World::ping_node_from_pod`] with ping pinned to `cpu` (`taskset`): the pod's frames,
    /// the node's replies and so their copies are all taken on that CPU.
    pub fn ping_node_from_pod_on(
        &self,
        cpu: Option<usize>,
        count: usize,
        size: Option<usize>,
    ) -> Result<()> {
        let mut args = vec![
            "-c".to_owned(),
            count.to_string(),
            "-i".to_owned(),
            "0.01".to_owned(),
            "-q".to_owned(),
        ];
        if let Some(size) = size {
            args.extend(["-s".to_owned(), size.to_string()]);
        }
        args.push(NODE_POD_IP.to_owned());
        let (program, args) = match cpu {
            Some(cpu) => (
                "taskset",
                ["-c".to_owned(), cpu.to_string(), "ping".to_owned()]
                    .into_iter()
                    .chain(args)
                    .collect(),
            ),
            None => ("ping", args),
        };
        self.pod
            .run(program, &args)
            .map(drop)
            .with_context(|| format!("pinging the node from the pod ({})", args.join(" ")))
    }

    /// The pod's own capture of its frames while it pings the node `count` times: exactly the
    /// `2 * count` echo requests and replies, or an error saying the world is not quiet.
    pub fn pod_ping_frames(&self, count: usize, size: Option<usize>) -> Result<Vec<Vec<u8>>> {
        self.pod_ping_frames_on(None, count, size)
    }

    /// [`World::pod_ping_frames`] with ping pinned to `cpu`.
    pub fn pod_ping_frames_on(
        &self,
        cpu: Option<usize>,
        count: usize,
        size: Option<usize>,
    ) -> Result<Vec<Vec<u8>>> {
        let mut capture = Capture::start(&self.pod, POD_IF, Direction::InOut, None)?;
        self.ping_node_from_pod_on(cpu, count, size)?;
        // ping exits on the last reply, which tcpdump may not have read yet: a SIGINT now would
        // leave it in the ring (and the capture incomplete).
        capture.wait_for_frames(
            2 * count,
            std::time::Duration::from_secs(10),
            std::time::Duration::from_millis(200),
        );
        let frames = capture.finish()?;
        anyhow::ensure!(
            frames.len() == 2 * count,
            "the pod saw {} frames while pinging {count} times, not {}: the world is not quiet",
            frames.len(),
            2 * count
        );
        Ok(frames)
    }
}
