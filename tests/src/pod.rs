//! Stand-ins for Kubernetes pods on a test node, for `mirror run --pod`.
//!
//! A [`FakePod`] is what a container runtime and a CNI leave on a node, minus the containers: a
//! process in new UTS and network namespaces (`unshare --uts --net`, kept alive by `sleep`) whose
//! hostname is the pod's name, and a veth pair whose `eth0` end is inside and whose other end is
//! in the node's namespace. The namespace has no name in `/run/netns`: the agent must find it
//! through `/proc`. Killing the process frees the namespace, and the kernel deletes the veth.
//!
//! ```text
//!  pod (unshare --uts --net)           node netns
//!  eth0 198.19.S.2/24  <---- veth ---> HOST_IF 198.19.S.1/24
//! ```

use std::{
    fs,
    os::unix::fs::MetadataExt as _,
    path::Path,
    process::Command,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};

use crate::{
    netns::Netns,
    proc::{Background, Signal, command, run_stdout},
};

/// How long a fake pod lives at most, should its guard never run (a killed test run).
const LIFETIME_SECS: u32 = 900;

/// A pod stand-in; killed (and its namespace and veth gone) on drop.
pub struct FakePod {
    name: String,
    host_if: String,
    subnet: u8,
    process: Background,
}

impl FakePod {
    /// Starts pod `name` (its hostname) wired to `node` through `host_if`, on 198.19.`subnet`.0/24,
    /// with static neighbours on both sides (no ARP) and IPv6 off inside (no router
    /// solicitations): the only frames on the link are those a test sends.
    pub fn start(node: &Netns, name: &str, host_if: &str, subnet: u8) -> Result<Self> {
        Self::start_as(node, name, host_if, subnet, None)
    }

    /// [`FakePod::start`] with the process running as `uid` (and gid) when given, as a pod's
    /// pause process does (65535): another user's process.
    pub fn start_as(
        node: &Netns,
        name: &str,
        host_if: &str,
        subnet: u8,
        uid: Option<u32>,
    ) -> Result<Self> {
        let sleep = match uid {
            Some(uid) => {
                format!("setpriv --reuid={uid} --regid={uid} --clear-groups sleep {LIFETIME_SECS}")
            }
            None => format!("sleep {LIFETIME_SECS}"),
        };
        let script = format!(
            "echo {name} > /proc/sys/kernel/hostname && \
             echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6 && \
             echo 1 > /proc/sys/net/ipv6/conf/default/disable_ipv6 && \
             ip link set lo up && echo ready >&2 && exec {sleep}"
        );
        let mut process = Background::spawn(
            &format!("pod {name}"),
            &mut command("unshare", ["--uts", "--net", "sh", "-c", script.as_str()]),
        )?;
        process
            .wait_for_stderr("its ready line", Duration::from_secs(10), |l| l == "ready")
            .with_context(|| format!("starting fake pod {name}"))?;
        if let Some(uid) = uid {
            wait_for_uid(process.pid(), uid)
                .with_context(|| format!("fake pod {name} did not become uid {uid}"))?;
        }
        let pod = Self {
            name: name.to_owned(),
            host_if: host_if.to_owned(),
            subnet,
            process,
        };
        pod.wire(node)
            .with_context(|| format!("wiring fake pod {name} to {}", node.name()))?;
        Ok(pod)
    }

    fn wire(&self, node: &Netns) -> Result<()> {
        let pid = self.pid().to_string();
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
        self.ip_cmd(["addr", "add", &format!("{}/24", self.ip()), "dev", "eth0"])?;
        self.ip_cmd(["link", "set", "eth0", "up"])?;
        node.ip([
            "addr",
            "add",
            &format!("{}/24", self.node_ip()),
            "dev",
            &self.host_if,
        ])?;
        node.ip(["link", "set", &self.host_if, "up"])?;
        let pod_mac = self.mac()?;
        let node_mac = node.mac(&self.host_if)?;
        self.ip_cmd([
            "neigh",
            "replace",
            &self.node_ip(),
            "lladdr",
            &node_mac,
            "dev",
            "eth0",
            "nud",
            "permanent",
        ])?;
        node.ip([
            "neigh",
            "replace",
            &self.ip(),
            "lladdr",
            &pod_mac,
            "dev",
            &self.host_if,
            "nud",
            "permanent",
        ])?;
        Ok(())
    }

    /// The pod's name and hostname.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The node's end of the pod's veth.
    pub fn host_if(&self) -> &str {
        &self.host_if
    }

    /// The pod's address (on its `eth0`).
    pub fn ip(&self) -> String {
        format!("198.19.{}.2", self.subnet)
    }

    /// The node's address on the pod's link.
    pub fn node_ip(&self) -> String {
        format!("198.19.{}.1", self.subnet)
    }

    /// The process that holds the pod's namespaces.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// `nsenter -t PID --net PROGRAM ARGS...`: a command in the pod's network namespace (the
    /// node's hostname: only the pod's own process has its UTS namespace).
    pub fn command<I, S>(&self, program: &str, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = command(
            "nsenter",
            ["-t", &self.pid().to_string(), "--net", "--", program],
        );
        cmd.args(args);
        cmd
    }

    /// `ip ARGS...` in the pod's network namespace.
    pub fn ip_cmd<I, S>(&self, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        run_stdout(&mut self.command("ip", args))
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

    /// `ping -c COUNT -i 0.01 -q` from the pod to the node: `COUNT` requests and as many
    /// replies cross the pod's veth.
    pub fn ping_node(&self, count: usize) -> Result<()> {
        let count = count.to_string();
        let node_ip = self.node_ip();
        run_stdout(&mut self.command(
            "ping",
            ["-c", count.as_str(), "-i", "0.01", "-q", node_ip.as_str()],
        ))
        .map(drop)
        .with_context(|| format!("pinging the node from fake pod {}", self.name))
    }

    /// Kills the pod's process and waits until the kernel has deleted the veth in `node`
    /// (namespaces are freed asynchronously).
    pub fn kill(mut self, node: &Netns) -> Result<()> {
        self.process.stop_with(Signal::Kill)?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while node.ip(["link", "show", "dev", &self.host_if]).is_ok() {
            if Instant::now() > deadline {
                bail!(
                    "{} is still in {} 20 s after its pod {} was killed",
                    self.host_if,
                    node.name(),
                    self.name
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

/// Waits until process `pid` runs as `uid` (it has exec'd `setpriv`).
fn wait_for_uid(pid: u32, uid: u32) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let path = format!("/proc/{pid}/status");
    loop {
        let status = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let real = status
            .lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().next()?.parse::<u32>().ok());
        // `sleep` itself, not `setpriv` about to exec it.
        let sleeping =
            fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep");
        if real == Some(uid) && sleeping {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("process {pid} still runs as uid {real:?}");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// The pids of the processes whose network namespace is `ns` and whose executable is `exe`.
pub fn pids_in(ns: &Netns, exe: &Path) -> Result<Vec<u32>> {
    let target =
        fs::metadata(ns.path()).with_context(|| format!("stat {}", ns.path().display()))?;
    let exe = fs::canonicalize(exe).with_context(|| format!("resolving {}", exe.display()))?;
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc").context("listing /proc")?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let dir = entry.path();
        let same_ns = fs::metadata(dir.join("ns/net"))
            .is_ok_and(|m| m.ino() == target.ino() && m.dev() == target.dev());
        if same_ns && fs::read_link(dir.join("exe")).is_ok_and(|p| p == exe) {
            pids.push(pid);
        }
    }
    Ok(pids)
}

/// One TCX link a process holds (from `/proc/PID/fdinfo`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcxLink {
    pub ifindex: u32,
    /// `BPF_TCX_INGRESS` (46) or `BPF_TCX_EGRESS` (47).
    pub attach_type: u32,
}

/// The TCX links process `pid` holds open: what it has attached (a link outlives its device
/// until closed, so leftovers of deleted interfaces show here).
pub fn tcx_links(pid: u32) -> Result<Vec<TcxLink>> {
    let mut links = Vec::new();
    let fds = format!("/proc/{pid}/fd");
    for entry in fs::read_dir(&fds)
        .with_context(|| format!("listing {fds}"))?
        .flatten()
    {
        if !fs::read_link(entry.path()).is_ok_and(|t| t.to_string_lossy() == "anon_inode:bpf_link")
        {
            continue;
        }
        let info_path = format!("/proc/{pid}/fdinfo/{}", entry.file_name().to_string_lossy());
        let Ok(info) = fs::read_to_string(&info_path) else {
            continue;
        };
        let field = |name: &str| {
            info.lines().find_map(|l| {
                let (key, value) = l.split_once(':')?;
                (key.trim() == name).then(|| value.trim().to_owned())
            })
        };
        if field("link_type").as_deref() != Some("tcx") {
            continue;
        }
        let number = |name: &str| -> Result<u32> {
            // `attach_type:\t47 (egress)`: the number comes first.
            field(name)
                .with_context(|| format!("no {name} in {info_path}"))?
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .parse()
                .with_context(|| format!("{name} in {info_path}"))
        };
        links.push(TcxLink {
            ifindex: number("ifindex")?,
            attach_type: number("attach_type")?,
        });
    }
    Ok(links)
}

/// The ifindex of `dev` in `ns`.
pub fn ifindex(ns: &Netns, dev: &str) -> Result<u32> {
    let json = ns.ip(["-j", "link", "show", "dev", dev])?;
    let links: serde_json::Value = serde_json::from_str(&json)
        .with_context(|| format!("parsing `ip -j link show {dev}` in {}", ns.name()))?;
    let index = links[0]["ifindex"]
        .as_u64()
        .with_context(|| format!("no ifindex for {dev} in {}", ns.name()))?;
    ensure!(index > 0, "ifindex 0 for {dev}");
    u32::try_from(index).context("ifindex out of range")
}
