//! `--peer 'CMD'`: any other mirror as a fourth subject. CMD runs through `sh -c` in the node
//! namespace, pinned to the agent's CPU, in a process group of its own (so that SIGINT reaches
//! the mirror behind the shell), with `{iface}`, `{remote}`, `{vni}`, `{port}` and `{filter}` (the filter scenarios' pcap
//! expression, else empty) replaced.

use std::{
    os::unix::process::CommandExt as _,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};
use mirror_tests::{
    Background, World,
    proc::{STOP_TIMEOUT, command, run},
    world::{NODE_POD_IF, REMOTE_IP},
};

/// How long a peer without `--peer-ready-line` gets to get ready.
const GRACE: Duration = Duration::from_secs(3);
/// How long a peer with one may take to print it.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The peer as the options give it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerSpec {
    /// For tables and JSON.
    pub name: String,
    /// With placeholders.
    pub command: String,
    /// It is ready once a line of its stderr contains this.
    pub ready_line: Option<String>,
}

/// The kernel made into a peer, from a shell line of the kernel's tools: the same `tc mirred`
/// as the built-in kernel subject, into a `vxlan` device of its own, set up when it starts and
/// removed on SIGINT. The smoke run uses it, so that the peer machinery is checked without any
/// third-party program, against a subject whose figures it must come close to.
const KERNEL_MADE: &str = "trap 'tc qdisc del dev {iface} clsact 2>/dev/null; ip link del peervx0 2>/dev/null' EXIT; \
    trap 'exit 0' INT TERM; set -e; \
    ip link add peervx0 type vxlan id {vni} dstport {port} remote {remote} nolearning; \
    ip link set peervx0 up; tc qdisc add dev {iface} clsact; \
    for hook in ingress egress; do \
    tc filter add dev {iface} $hook pref 1 protocol ip u32 match ip protocol 17 0xff match ip dport {port} 0xffff flowid 1:1; \
    tc filter add dev {iface} $hook pref 10 protocol all u32 match u32 0 0 action mirred egress mirror dev peervx0; \
    done; set +e; echo peer ready >&2; while :; do sleep 1; done";

impl PeerSpec {
    /// The kernel-made peer (see [`KERNEL_MADE`]).
    pub fn kernel_made() -> Self {
        Self {
            name: "tc-mirred (kernel-made peer)".to_owned(),
            command: KERNEL_MADE.to_owned(),
            ready_line: Some("peer ready".to_owned()),
        }
    }

    /// The command for `world`, with `filter` (a pcap-filter expression, or empty) for
    /// `{filter}`.
    pub fn expand(&self, world: &World, filter: &str) -> String {
        expand(
            &self.command,
            NODE_POD_IF,
            REMOTE_IP,
            world.config.vni,
            world.config.vxlan_port,
        )
        .replace("{filter}", filter)
    }
}

fn expand(template: &str, iface: &str, remote: &str, vni: u32, port: u16) -> String {
    template
        .replace("{iface}", iface)
        .replace("{remote}", remote)
        .replace("{vni}", &vni.to_string())
        .replace("{port}", &port.to_string())
}

/// A peer at work; killed with its whole process group on drop.
pub struct Peer {
    name: String,
    process: Background,
}

impl Peer {
    /// Starts `spec` on `world` pinned to `cpu` and waits until it is ready; returns it and
    /// the command line that describes it.
    pub fn start(spec: &PeerSpec, world: &World, cpu: u32, filter: &str) -> Result<(Self, String)> {
        let line = spec.expand(world, filter);
        let cpu = cpu.to_string();
        let shown = format!("taskset -c {cpu} sh -c '{line}'");
        let mut cmd = world
            .node
            .command("taskset", ["-c", &cpu, "sh", "-c", &line]);
        // Its own process group, whose id is its pid (`ip netns exec` and taskset exec).
        cmd.process_group(0);
        let process = Background::spawn("peer", &mut cmd)
            .with_context(|| format!("starting the peer {}: `{shown}`", spec.name))?;
        let mut peer = Self {
            name: spec.name.clone(),
            process,
        };
        if let Some(text) = &spec.ready_line {
            peer.process
                .wait_for_stderr(&format!("a line with `{text}`"), READY_TIMEOUT, |l| {
                    l.contains(text.as_str())
                })
                .with_context(|| format!("starting the peer {}: `{shown}`", spec.name))?;
        } else {
            let deadline = Instant::now() + GRACE;
            while Instant::now() < deadline {
                peer.check_alive()
                    .with_context(|| format!("starting `{shown}`"))?;
                thread::sleep(Duration::from_millis(100));
            }
        }
        Ok((peer, shown))
    }

    /// The pid of the shell, the root of the peer's process tree.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Fails, naming the peer, if it has exited: a peer that dies would otherwise look like a
    /// mirror that loses everything.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.process.try_wait()? {
            bail!(
                "the peer {} exited early ({status}); its stderr:\n{}",
                self.name,
                self.process.stderr_lines().join("\n")
            );
        }
        Ok(())
    }

    /// SIGINT to its process group, then waits for it (SIGKILL after [`STOP_TIMEOUT`]).
    pub fn stop(mut self) -> Result<()> {
        self.check_alive()?;
        self.signal_group("INT")?;
        if self.process.wait_timeout(STOP_TIMEOUT)?.is_none() {
            bail!(
                "the peer {} ignored SIGINT for {STOP_TIMEOUT:?}; killing it",
                self.name
            );
        }
        Ok(())
    }

    fn signal_group(&self, signal: &str) -> Result<()> {
        let group = format!("-{}", self.process.pid());
        run(&mut command("kill", ["-s", signal, "--", &group]))
            .map(drop)
            .with_context(|| format!("sending SIG{signal} to the peer {}", self.name))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if matches!(self.process.try_wait(), Ok(None)) {
            // The shell's children too; the Background then reaps the shell.
            if let Err(err) = self.signal_group("KILL") {
                eprintln!("cleanup: {err:#}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_in_the_placeholders_and_nothing_else() {
        let template = r#"pktminerg -i {iface} --proto-config '{"ext_params": {"remoteips": ["{remote}"], "vni": {vni}}}' # {port}"#;
        assert_eq!(
            expand(template, "vethpod", "198.18.0.2", 42, 4789),
            r#"pktminerg -i vethpod --proto-config '{"ext_params": {"remoteips": ["198.18.0.2"], "vni": 42}}' # 4789"#
        );
    }

    #[test]
    fn the_kernel_made_peer_uses_every_placeholder_and_says_when_ready() {
        let spec = PeerSpec::kernel_made();
        for placeholder in ["{iface}", "{remote}", "{vni}", "{port}"] {
            assert!(spec.command.contains(placeholder), "{placeholder}");
        }
        let ready = spec.ready_line.unwrap();
        assert!(spec.command.contains(&format!("echo {ready} >&2")));
    }
}
