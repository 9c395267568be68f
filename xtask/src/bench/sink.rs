//! The sink remote: `sink.bpf.c`, built with clang (which `cargo xtask setup` installs; no
//! nightly, no bpf-linker) and attached in native mode to the remote's uplink end with `ip link
//! set xdpdrv`, counts the tunnel packets by kind and VNI/key and drops them. Its counts are read
//! from its map with bpftool. With a CPU of its own (`--sink-cpu`) the uplink end's receive runs
//! in a NAPI thread pinned there (`/sys/class/net/DEV/threaded`), no longer in the sender's
//! softirq on the sending CPU.

use std::{
    fs,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result, ensure};
use mirror_tests::{
    World, bpftool,
    proc::{command, run},
    world::REMOTE_IF,
};

const SOURCE: &str = include_str!("sink.bpf.c");
/// The program's section: see `sink.bpf.c` for why frags.
const SECTION: &str = "xdp.frags";

/// Values of `struct sink_key.kind` in `sink.bpf.c`.
const KIND_VXLAN: u8 = 1;
const KIND_GRE: u8 = 2;

/// Writes `sink.bpf.c` into `out` and builds it; returns the object's path.
pub fn build(out: &Path) -> Result<PathBuf> {
    let source = out.join("sink.bpf.c");
    let object = out.join("sink.bpf.o");
    fs::write(&source, SOURCE).with_context(|| format!("writing {}", source.display()))?;
    let mut clang = command("clang", ["-O2", "-g", "-target", "bpf", "-c"]);
    clang.arg(&source).arg("-o").arg(&object);
    run(&mut clang).context("building the sink remote's XDP program")?;
    Ok(object)
}

/// What the sink counted under one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TunnelKey {
    /// `vxlan` or `gre`.
    pub kind: &'static str,
    /// VxLAN: the UDP destination port; GRE: the protocol type.
    pub port: u16,
    /// VxLAN: the VNI; GRE: the key (0 without one).
    pub id: u32,
}

impl TunnelKey {
    /// `struct sink_key` as the map holds it (host byte order).
    fn parse(bytes: &[u8]) -> Option<Self> {
        let kind = match *bytes.first()? {
            KIND_VXLAN => "vxlan",
            KIND_GRE => "gre",
            _ => "unknown",
        };
        Some(Self {
            kind,
            port: u16::from_ne_bytes(bytes.get(2..4)?.try_into().ok()?),
            id: u32::from_ne_bytes(bytes.get(4..8)?.try_into().ok()?),
        })
    }
}

/// The sink on `world`'s remote, detached (and its receive threaded no more) on drop.
pub struct Sink<'w> {
    world: &'w World,
    map: u64,
    threaded: bool,
}

impl<'w> Sink<'w> {
    /// Attaches the program at `object` to the remote's uplink end; its receive runs on `cpu`
    /// if given.
    pub fn attach(world: &'w World, object: &Path, cpu: Option<u32>) -> Result<Self> {
        let object = object.to_string_lossy();
        world
            .remote
            .ip([
                "link", "set", "dev", REMOTE_IF, "xdpdrv", "obj", &object, "sec", SECTION,
            ])
            .context("attaching the sink's XDP program to the remote's uplink end")?;
        // From here on, drop detaches it.
        let mut sink = Self {
            world,
            map: 0,
            threaded: false,
        };
        let prog = bpftool::xdp_prog_id(&world.remote, REMOTE_IF)?
            .context("no XDP program on the remote's uplink end after attaching the sink")?;
        let maps = bpftool::prog_map_ids(prog)?;
        ensure!(
            maps.len() == 1,
            "the sink's XDP program {prog} has maps {maps:?}, expected one"
        );
        sink.map = maps[0];
        if let Some(cpu) = cpu {
            sink.receive_on(cpu)?;
        }
        Ok(sink)
    }

    /// Threads the uplink end's NAPI and pins the new threads (`napi/DEV-ID`) to `cpu`.
    fn receive_on(&mut self, cpu: u32) -> Result<()> {
        let before = napi_threads()?;
        self.set_threaded(true)?;
        self.threaded = true;
        // The kernel starts the thread as it enables threading; give it a moment to show.
        let mut ours = Vec::new();
        for _ in 0..50 {
            ours = napi_threads()?
                .into_iter()
                .filter(|pid| !before.contains(pid))
                .collect();
            if !ours.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        ensure!(
            !ours.is_empty(),
            "no NAPI thread of {REMOTE_IF} appeared after threading its receive (--sink-cpu)"
        );
        for pid in ours {
            run(&mut command(
                "taskset",
                ["-pc", &cpu.to_string(), &pid.to_string()],
            ))
            .with_context(|| format!("pinning the sink's NAPI thread {pid} to CPU {cpu}"))?;
        }
        Ok(())
    }

    fn set_threaded(&self, on: bool) -> Result<()> {
        let script = format!(
            "echo {} > /sys/class/net/{REMOTE_IF}/threaded",
            u8::from(on)
        );
        self.world
            .remote
            .run("sh", ["-c", &script])
            .map(drop)
            .with_context(|| format!("`{script}` in the remote (threaded NAPI, --sink-cpu)"))
    }

    /// Everything counted so far.
    pub fn counts(&self) -> Result<Vec<(TunnelKey, u64)>> {
        bpftool::map_dump(self.map)?
            .into_iter()
            .map(|(key, value)| {
                let key = TunnelKey::parse(&key).context("a sink key of under 8 bytes")?;
                let count = u64::from_ne_bytes(
                    value
                        .get(..8)
                        .and_then(|v| v.try_into().ok())
                        .context("a sink count of under 8 bytes")?,
                );
                Ok((key, count))
            })
            .collect()
    }

    /// VxLAN packets (first fragments or whole) counted to `port` with `vni`.
    pub fn vxlan(&self, port: u16, vni: u32) -> Result<u64> {
        Ok(self.split(port, vni)?.0)
    }

    /// Tunnel packets counted under any other key than VxLAN to `port` with `vni`.
    pub fn strays(&self, port: u16, vni: u32) -> Result<u64> {
        Ok(self.split(port, vni)?.1)
    }

    fn split(&self, port: u16, vni: u32) -> Result<(u64, u64)> {
        let ours = TunnelKey {
            kind: "vxlan",
            port,
            id: vni,
        };
        Ok(self
            .counts()?
            .into_iter()
            .fold((0, 0), |(hit, other), (key, n)| {
                if key == ours {
                    (hit + n, other)
                } else {
                    (hit, other + n)
                }
            }))
    }
}

/// The pids of the kernel's NAPI threads of devices named like the remote's uplink end.
fn napi_threads() -> Result<Vec<u32>> {
    let prefix = format!("napi/{REMOTE_IF}-");
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc").context("listing /proc")? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let comm = fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.trim_end().starts_with(&prefix) {
            pids.push(pid);
        }
    }
    Ok(pids)
}

impl Drop for Sink<'_> {
    fn drop(&mut self) {
        if self.threaded
            && let Err(err) = self.set_threaded(false)
        {
            eprintln!("cleanup: {err:#}");
        }
        if let Err(err) = self
            .world
            .remote
            .ip(["link", "set", "dev", REMOTE_IF, "xdpdrv", "off"])
        {
            eprintln!("cleanup: detaching the sink's XDP program: {err:#}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_keys_in_host_order() {
        let mut bytes = vec![KIND_VXLAN, 0];
        bytes.extend(4789_u16.to_ne_bytes());
        bytes.extend(42_u32.to_ne_bytes());
        assert_eq!(
            TunnelKey::parse(&bytes),
            Some(TunnelKey {
                kind: "vxlan",
                port: 4789,
                id: 42
            })
        );
        assert_eq!(TunnelKey::parse(&[KIND_GRE, 0, 0]), None);
    }
}
