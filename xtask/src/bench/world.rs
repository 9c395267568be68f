//! The bench's world: the tests' standard world (pod, node, remote VTEP) with an uplink of the
//! scenario's MTU, plus what measuring needs.
//!
//! - The node does not forward (set explicitly: a new namespace inherits the host's IPv4
//!   settings), so the generated frames, addressed to [`SINK_IP`] which nobody holds, are
//!   dropped by the node's routing without an ICMP answer: the only traffic on the pod's link
//!   is what the bench sends.
//! - Copies are counted on the remote VTEP's ingress with a `clsact` qdisc and a match-all `u32`
//!   filter without action: its counter counts the segments of a GSO or GRO packet one by one,
//!   where the device's `rx_packets` counts such a packet once (the kernel's mirror forwards a
//!   TCP sender's 64 KB GSO packets whole over veth).

use std::{
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};
use mirror_tests::{
    World, WorldConfig,
    world::{REMOTE_IF, REMOTE_VTEP_IF},
};

use super::VNI;

/// Where the generated UDP frames go: on the pod's subnet, held by nobody.
pub const SINK_IP: &str = "198.19.0.3";
/// How long copies may keep arriving after the traffic stopped.
const SETTLE_LIMIT: Duration = Duration::from_secs(10);
/// The delivered counter has settled when it did not move for this long once every copy is in.
const SETTLE_STEP: Duration = Duration::from_millis(200);
/// ... and for this long while copies are missing: a mirror that flushes a buffer on a timer
/// (libpcap's, 3 s by default in pktminerg) then delivers late instead of losing.
const SETTLE_QUIET_MISSING: Duration = Duration::from_millis(3500);

/// Builds the world with an uplink of `uplink_mtu` (GRO on at the remote's end if
/// `remote_gro`) and prepares it for measuring.
pub fn build(uplink_mtu: u32, remote_gro: bool) -> Result<World> {
    let world = World::build(WorldConfig {
        vni: VNI,
        uplink_mtu,
        ..WorldConfig::default()
    })
    .context("building the bench world")?;
    if remote_gro {
        world
            .remote
            .run("ethtool", ["-K", REMOTE_IF, "gro", "on"])
            .context("turning GRO on at the remote's uplink end")?;
    }
    world
        .node
        .run("sysctl", ["-qw", "net.ipv4.ip_forward=0"])
        .context("turning forwarding off in the node")?;
    world
        .remote
        .run("tc", ["qdisc", "add", "dev", REMOTE_VTEP_IF, "clsact"])
        .context("adding clsact to the remote VTEP")?;
    world
        .remote
        .run(
            "tc",
            [
                "filter",
                "add",
                "dev",
                REMOTE_VTEP_IF,
                "ingress",
                "pref",
                "1",
                "protocol",
                "all",
                "u32",
                "match",
                "u32",
                "0",
                "0",
                "flowid",
                "1:1",
            ],
        )
        .context("adding the counting filter to the remote VTEP")?;
    Ok(world)
}

/// Copies the remote VTEP has received so far, GSO/GRO segments counted one by one.
pub fn delivered(world: &World) -> Result<u64> {
    let text = world.remote.run(
        "tc",
        ["-s", "qdisc", "show", "dev", REMOTE_VTEP_IF, "ingress"],
    )?;
    sent_packets(&text).with_context(|| {
        format!(
            "no `Sent N bytes M pkt` in `tc -s qdisc show dev {REMOTE_VTEP_IF} ingress`: {text}"
        )
    })
}

/// [`delivered`] once it has stopped moving (or after [`SETTLE_LIMIT`]).
pub fn settled_delivered(world: &World) -> Result<u64> {
    settled(|| delivered(world), 0)
}

/// `count` once it has stopped moving (or after [`SETTLE_LIMIT`]): for [`SETTLE_STEP`] once it
/// has reached `full`, for [`SETTLE_QUIET_MISSING`] before.
pub fn settled(count: impl Fn() -> Result<u64>, full: u64) -> Result<u64> {
    let start = Instant::now();
    let mut last = count()?;
    let mut moved = start;
    loop {
        thread::sleep(SETTLE_STEP);
        let now = count()?;
        let at = Instant::now();
        if now != last {
            (last, moved) = (now, at);
            if at - start < SETTLE_LIMIT {
                continue;
            }
        }
        let quiet = if now >= full {
            SETTLE_STEP
        } else {
            SETTLE_QUIET_MISSING
        };
        if at - moved >= quiet || at - start >= SETTLE_LIMIT {
            return Ok(now);
        }
    }
}

/// `M` of ` Sent N bytes M pkt (dropped ...)` in `tc -s qdisc show` output.
fn sent_packets(text: &str) -> Option<u64> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "Sent")?;
    match words.get(at + 1..at + 5)? {
        [_, "bytes", packets, "pkt"] => packets.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn settles_soon_once_every_copy_is_in() {
        let start = Instant::now();
        assert_eq!(settled(|| Ok(7), 7).unwrap(), 7);
        assert!(start.elapsed() < SETTLE_QUIET_MISSING);
    }

    #[test]
    fn waits_for_late_copies_while_some_are_missing() {
        // Three copies trickle in, then nothing: 5 of 10 after a quiet of SETTLE_QUIET_MISSING.
        let calls = Cell::new(0_u64);
        let count = || {
            calls.set(calls.get() + 1);
            Ok(2 + calls.get().min(3))
        };
        let start = Instant::now();
        assert_eq!(settled(count, 10).unwrap(), 5);
        assert!(start.elapsed() >= SETTLE_QUIET_MISSING);
    }

    #[test]
    fn reads_qdisc_counters() {
        let text = "qdisc clsact ffff: parent ffff:fff1 \n Sent 4230597752 bytes 2921189 pkt (dropped 0, \
                    overlimits 0 requeues 0) \n backlog 0b 0p requeues 0\n";
        assert_eq!(sent_packets(text), Some(2_921_189));
        assert_eq!(sent_packets("qdisc clsact ffff:"), None);
    }
}
