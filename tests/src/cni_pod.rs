//! Pods as two kinds of CNI leave them on a node, for finding a pod's veth by its IP:
//!
//! ```text
//!  routed (Calico-like)                          bridged (flannel-like)
//!  pod eth0 IP/32, default via 169.254.1.1       pod eth0 IP/24, default via the bridge's IP
//!    <-- veth --> HOST_IF (no address)             <-- veth --> HOST_IF, a port of cni0
//!  node: route IP/32 dev HOST_IF                 node: cni0 GATEWAY/24, no neighbour entry
//! ```
//!
//! The pod is a process in a new network namespace only (its hostname is the node's: it can be
//! found by IP alone). Its own neighbour entry for its gateway is static, so the pod sends nothing
//! unasked; on the bridge the node has no entry for the pod, so the agent must make one appear.

use std::{
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

use crate::{
    netns::Netns,
    proc::{Background, Signal, command, run_stdout},
};

/// The gateway a Calico pod routes through (never answered by anything: proxy ARP or, here, a
/// static entry).
const ROUTED_GATEWAY: &str = "169.254.1.1";
/// How long a pod lives at most, should its guard never run.
const LIFETIME_SECS: u32 = 900;

/// How the CNI wires a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wiring {
    /// A /32 host route through the pod's veth.
    Routed,
    /// A port of bridge `bridge`, whose address `gateway` is in the pod's /24.
    Bridged { bridge: String, gateway: String },
}

/// A bridge like flannel's `cni0`: `name` with `gateway`/24, up.
pub fn make_bridge(node: &Netns, name: &str, gateway: &str) -> Result<Wiring> {
    // A set address stays; otherwise the bridge takes its ports' as they come and go, and the
    // pods' static entries for their gateway would go stale. Without multicast snooping the
    // bridge joins no All-Snoopers group (224.0.0.106), whose IGMP reports it would flood to
    // the pods' ports at random moments, into the mirrored traffic the test compares.
    node.ip([
        "link",
        "add",
        name,
        "address",
        "02:00:c6:13:00:01",
        "type",
        "bridge",
        "mcast_snooping",
        "0",
    ])?;
    node.ip(["addr", "add", &format!("{gateway}/24"), "dev", name])?;
    node.ip(["link", "set", name, "up"])?;
    Ok(Wiring::Bridged {
        bridge: name.to_owned(),
        gateway: gateway.to_owned(),
    })
}

/// A pod; killed (its namespace and veth gone) on drop.
pub struct CniPod {
    host_if: String,
    ip: String,
    wiring: Wiring,
    process: Background,
}

impl CniPod {
    /// Starts a pod with `ip`, wired to `node` through `host_if` as `wiring` says.
    pub fn start(node: &Netns, host_if: &str, ip: &str, wiring: &Wiring) -> Result<Self> {
        let script = format!(
            "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6 && \
             echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6 && \
             ip link set lo up && echo ready >&2 && exec sleep {LIFETIME_SECS}"
        );
        let mut process = Background::spawn(
            &format!("pod {ip}"),
            &mut command("unshare", ["--net", "sh", "-c", script.as_str()]),
        )?;
        process
            .wait_for_stderr("its ready line", Duration::from_secs(10), |l| l == "ready")
            .with_context(|| format!("starting the pod with {ip}"))?;
        let pod = Self {
            host_if: host_if.to_owned(),
            ip: ip.to_owned(),
            wiring: wiring.clone(),
            process,
        };
        pod.wire(node)
            .with_context(|| format!("wiring the pod with {ip} to {}", node.name()))?;
        Ok(pod)
    }

    fn wire(&self, node: &Netns) -> Result<()> {
        let pid = self.process.pid().to_string();
        node.ip([
            "link",
            "add",
            &self.host_if,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &pid,
        ])?;
        // Off on the node's end too: no router solicitations or MLD reports on the link.
        node.run(
            "sysctl",
            [
                "-qw",
                &format!("net.ipv6.conf.{}.disable_ipv6=1", self.host_if),
            ],
        )?;
        let host_mac = node.mac(&self.host_if)?;
        let (prefix, gateway) = match &self.wiring {
            Wiring::Routed => (32, ROUTED_GATEWAY),
            Wiring::Bridged { gateway, .. } => (24, gateway.as_str()),
        };
        self.ip_cmd([
            "addr",
            "add",
            &format!("{}/{prefix}", self.ip),
            "dev",
            "eth0",
        ])?;
        self.ip_cmd(["link", "set", "eth0", "up"])?;
        if self.wiring == Wiring::Routed {
            self.ip_cmd(["route", "add", gateway, "dev", "eth0", "scope", "link"])?;
        }
        self.ip_cmd(["route", "add", "default", "via", gateway, "dev", "eth0"])?;
        let gateway_mac = match &self.wiring {
            Wiring::Routed => host_mac,
            Wiring::Bridged { bridge, .. } => node.mac(bridge)?,
        };
        self.ip_cmd([
            "neigh",
            "replace",
            gateway,
            "lladdr",
            &gateway_mac,
            "dev",
            "eth0",
            "nud",
            "permanent",
        ])?;
        match &self.wiring {
            Wiring::Routed => {
                node.ip(["link", "set", &self.host_if, "up"])?;
                node.ip([
                    "route",
                    "add",
                    &format!("{}/32", self.ip),
                    "dev",
                    &self.host_if,
                    "scope",
                    "link",
                ])?;
                let pod_mac = self.mac()?;
                node.ip([
                    "neigh",
                    "replace",
                    &self.ip,
                    "lladdr",
                    &pod_mac,
                    "dev",
                    &self.host_if,
                    "nud",
                    "permanent",
                ])?;
            }
            Wiring::Bridged { bridge, .. } => {
                node.ip(["link", "set", &self.host_if, "master", bridge])?;
                node.ip(["link", "set", &self.host_if, "up"])?;
            }
        }
        Ok(())
    }

    pub fn host_if(&self) -> &str {
        &self.host_if
    }

    pub fn ip(&self) -> &str {
        &self.ip
    }

    /// `ip ARGS...` in the pod's network namespace.
    pub fn ip_cmd<const N: usize>(&self, args: [&str; N]) -> Result<String> {
        let mut cmd = command(
            "nsenter",
            ["-t", &self.process.pid().to_string(), "--net", "--", "ip"],
        );
        cmd.args(args);
        run_stdout(&mut cmd)
    }

    /// The MAC address of the pod's `eth0`.
    pub fn mac(&self) -> Result<String> {
        let json = self.ip_cmd(["-j", "link", "show", "dev", "eth0"])?;
        let links: serde_json::Value =
            serde_json::from_str(&json).context("parsing `ip -j link show eth0`")?;
        links[0]["address"]
            .as_str()
            .map(str::to_owned)
            .context("eth0 has no MAC address")
    }

    /// `ping -c COUNT -i 0.01 -q TARGET` from the pod.
    pub fn ping(&self, target: &str, count: usize) -> Result<()> {
        let mut cmd = command(
            "nsenter",
            [
                "-t",
                &self.process.pid().to_string(),
                "--net",
                "--",
                "ping",
                "-c",
                &count.to_string(),
                "-i",
                "0.01",
                "-q",
                target,
            ],
        );
        run_stdout(&mut cmd)
            .map(drop)
            .with_context(|| format!("pinging {target} from the pod with {}", self.ip))
    }

    /// Kills the pod and waits until the kernel has deleted its veth in `node`.
    pub fn kill(mut self, node: &Netns) -> Result<()> {
        self.process.stop_with(Signal::Kill)?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while node.ip(["link", "show", "dev", &self.host_if]).is_ok() {
            if Instant::now() > deadline {
                bail!(
                    "{} is still there 20 s after its pod was killed",
                    self.host_if
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}
