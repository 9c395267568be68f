//! The kernel's own mirror: the stand-in and baseline for the agent.
//!
//! In the node netns: a `vxlan` device towards the remote VTEP, a `clsact` qdisc on every
//! mirrored interface, and `u32` match-all filters whose `mirred egress mirror` action copies each
//! packet into the VxLAN device. (This kernel has neither `matchall` nor `flower` nor `gact`; `u32`
//! and `mirred` are built in.)
//!
//! Loop prevention, the way the agent must do it too: on every mirrored interface a filter
//! ahead of the mirror matches the stand-in's own tunnel packets (UDP to the VxLAN port) and,
//! having no action, ends classification, so they are never copied again. (A simplification: it
//! also skips a pod's own VxLAN traffic to that port.)

use anyhow::{Context as _, Result};

use crate::{
    netns::Netns,
    world::{NODE_UPLINK_IF, NODE_UPLINK_IP, REMOTE_IP, World},
};

/// The kernel device that encapsulates the copies.
pub const KERNEL_MIRROR_IF: &str = "kmirror0";

/// Which directions of an interface are copied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MirrorDirection {
    Ingress,
    Egress,
    Both,
}

impl MirrorDirection {
    fn hooks(self) -> &'static [&'static str] {
        match self {
            Self::Ingress => &["ingress"],
            Self::Egress => &["egress"],
            Self::Both => &["ingress", "egress"],
        }
    }
}

/// Where the stand-in sends its copies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelMirrorConfig {
    pub vni: u32,
    pub vxlan_port: u16,
    /// Tunnel source address.
    pub local: String,
    /// Remote VTEP.
    pub remote: String,
    /// Interface the tunnel packets leave through.
    pub uplink: String,
    /// `u32` match words that select the IPv4 packets to copy (e.g. `match ip sport 10000
    /// 0xffff`); empty: every packet.
    pub select: Vec<String>,
}

/// The kernel mirror, set up in a node netns and torn down on drop.
pub struct KernelMirror<'ns> {
    ns: &'ns Netns,
    ifaces: Vec<String>,
}

impl<'ns> KernelMirror<'ns> {
    /// Mirrors `ifaces` of `world`'s node (both directions) to its remote VTEP.
    pub fn for_world(world: &'ns World, ifaces: &[&str]) -> Result<Self> {
        Self::for_world_selecting(world, ifaces, &[])
    }

    /// As [`KernelMirror::for_world`], copying only the IPv4 packets the `u32` match words
    /// `select` match.
    pub fn for_world_selecting(
        world: &'ns World,
        ifaces: &[&str],
        select: &[&str],
    ) -> Result<Self> {
        let config = KernelMirrorConfig {
            select: select.iter().map(|&w| w.to_owned()).collect(),
            vni: world.config.vni,
            vxlan_port: world.config.vxlan_port,
            local: NODE_UPLINK_IP.to_owned(),
            remote: REMOTE_IP.to_owned(),
            uplink: NODE_UPLINK_IF.to_owned(),
        };
        Self::start(&world.node, ifaces, MirrorDirection::Both, &config)
    }

    /// Mirrors `ifaces` of `ns` in `direction` as `config` says.
    pub fn start(
        ns: &'ns Netns,
        ifaces: &[&str],
        direction: MirrorDirection,
        config: &KernelMirrorConfig,
    ) -> Result<Self> {
        let vni = config.vni.to_string();
        let port = config.vxlan_port.to_string();
        ns.ip([
            "link",
            "add",
            KERNEL_MIRROR_IF,
            "type",
            "vxlan",
            "id",
            &vni,
            "dstport",
            &port,
            "local",
            &config.local,
            "remote",
            &config.remote,
            "dev",
            &config.uplink,
            "nolearning",
        ])
        .with_context(|| format!("creating {KERNEL_MIRROR_IF} in {}", ns.name()))?;
        // From here on, drop undoes whatever was done.
        let mut mirror = Self {
            ns,
            ifaces: Vec::new(),
        };
        ns.ip(["link", "set", KERNEL_MIRROR_IF, "up"])?;
        for iface in ifaces {
            ns.run("tc", ["qdisc", "add", "dev", iface, "clsact"])
                .with_context(|| format!("adding clsact to {iface}"))?;
            mirror.ifaces.push((*iface).to_owned());
            for hook in direction.hooks() {
                // pref 1: our own tunnel packets match and, without an action, end classification.
                ns.run(
                    "tc",
                    [
                        "filter", "add", "dev", iface, hook, "pref", "1", "protocol", "ip", "u32",
                        "match", "ip", "protocol", "17", "0xff", "match", "ip", "dport", &port,
                        "0xffff", "flowid", "1:1",
                    ],
                )
                .with_context(|| format!("adding the loop guard on {iface} {hook}"))?;
                // pref 10: everything else (or what `select` matches) is copied into the VxLAN
                // device.
                let all = ["match", "u32", "0", "0"].map(str::to_owned).to_vec();
                let (protocol, select) = if config.select.is_empty() {
                    ("all", &all)
                } else {
                    ("ip", &config.select)
                };
                let mut argv = vec!["filter", "add", "dev", iface, hook, "pref", "10"];
                argv.extend(["protocol", protocol, "u32"]);
                argv.extend(select.iter().map(String::as_str));
                argv.extend([
                    "action",
                    "mirred",
                    "egress",
                    "mirror",
                    "dev",
                    KERNEL_MIRROR_IF,
                ]);
                ns.run("tc", argv)
                    .with_context(|| format!("adding the mirror filter on {iface} {hook}"))?;
            }
        }
        Ok(mirror)
    }
}

impl Drop for KernelMirror<'_> {
    fn drop(&mut self) {
        for iface in &self.ifaces {
            if let Err(err) = self.ns.run("tc", ["qdisc", "del", "dev", iface, "clsact"]) {
                eprintln!("cleanup: removing clsact from {iface}: {err:#}");
            }
        }
        if let Err(err) = self.ns.ip(["link", "del", KERNEL_MIRROR_IF]) {
            eprintln!("cleanup: deleting {KERNEL_MIRROR_IF}: {err:#}");
        }
    }
}
