//! What is attached in a netns: links, XDP, tc filters, TCX programs. Used to check that the
//! agent leaves nothing behind.

use std::{ffi::CString, fs::File, os::fd::AsRawFd as _, path::PathBuf, thread};

use anyhow::{Context as _, Result, bail};

use crate::netns::Netns;

/// A tc / TCX attach point of an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    Ingress,
    Egress,
}

impl Hook {
    /// Both hooks.
    pub const ALL: [Self; 2] = [Self::Ingress, Self::Egress];

    /// `ingress` / `egress`, as tc spells them.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingress => "ingress",
            Self::Egress => "egress",
        }
    }

    /// `enum bpf_attach_type`: `BPF_TCX_INGRESS` / `BPF_TCX_EGRESS`.
    fn tcx_attach_type(self) -> u32 {
        match self {
            Self::Ingress => 46,
            Self::Egress => 47,
        }
    }
}

/// `ifindex: name` of every link (`ip -o link`), without the `@peer` suffix.
pub fn links(ns: &Netns) -> Result<Vec<String>> {
    let text = ns.ip(["-o", "link", "show"])?;
    Ok(text.lines().filter_map(link_id).collect())
}

fn link_id(line: &str) -> Option<String> {
    let mut fields = line.split(": ");
    let index = fields.next()?.trim();
    let name = fields.next()?.split('@').next()?;
    Some(format!("{index}: {name}"))
}

/// Links with an XDP program (any mode), as `ip -d -o link` reports them.
pub fn xdp_links(ns: &Netns) -> Result<Vec<String>> {
    let text = ns.ip(["-d", "-o", "link", "show"])?;
    Ok(text
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .any(|w| w.starts_with("xdp") || w.starts_with("prog/xdp"))
        })
        .filter_map(link_id)
        .collect())
}

/// The output of `tc filter show dev DEV HOOK` (empty when nothing is attached).
pub fn tc_filters(ns: &Netns, dev: &str, hook: Hook) -> Result<String> {
    Ok(ns
        .run("tc", ["filter", "show", "dev", dev, hook.as_str()])?
        .trim()
        .to_owned())
}

/// `bpftool -j net show` in the netns: the XDP and tc entries it lists (as JSON text).
///
/// Debian 12's bpftool (7.1) predates TCX and lists only classic `cls_bpf` programs; see
/// [`tcx_prog_count`] for TCX.
pub fn bpftool_net(ns: &Netns) -> Result<Vec<String>> {
    let text = ns.run("bpftool", ["-j", "net", "show"])?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("parsing `bpftool -j net show` in {}", ns.name()))?;
    let mut found = Vec::new();
    for section in json.as_array().into_iter().flatten() {
        for (kind, entries) in section.as_object().into_iter().flatten() {
            if kind == "flow_dissector" || kind == "netfilter" {
                continue;
            }
            for entry in entries.as_array().into_iter().flatten() {
                found.push(format!("{kind}: {entry}"));
            }
        }
    }
    Ok(found)
}

/// How many TCX programs are attached to `dev`'s `hook` (`BPF_PROG_QUERY`, from a thread that
/// has entered the netns). aya attaches TC programs through TCX on kernels ≥ 6.6, and neither
/// `tc` nor Debian 12's bpftool can see those.
pub fn tcx_prog_count(ns: &Netns, dev: &str, hook: Hook) -> Result<u32> {
    let ns_path = PathBuf::from("/run/netns").join(ns.name());
    let c_dev = CString::new(dev).context("interface name with NUL")?;
    let what = format!(
        "querying TCX {} programs of {dev} in netns {}",
        hook.as_str(),
        ns.name()
    );
    thread::spawn(move || query_tcx(&ns_path, &c_dev, hook.tcx_attach_type()))
        .join()
        .map_err(|_| anyhow::anyhow!("the netns thread panicked"))
        .and_then(|r| r)
        .context(what)
}

/// The `BPF_PROG_QUERY` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct ProgQueryAttr {
    target_ifindex: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
    prog_attach_flags: u64,
    link_ids: u64,
    link_attach_flags: u64,
    revision: u64,
}

const BPF_PROG_QUERY: libc::c_long = 16;

fn query_tcx(ns_path: &PathBuf, dev: &CString, attach_type: u32) -> Result<u32> {
    let ns = File::open(ns_path).with_context(|| format!("opening {}", ns_path.display()))?;
    // SAFETY: setns(2) on a valid fd; it only changes this (short-lived) thread's netns.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error()).context("setns");
    }
    // SAFETY: a valid NUL-terminated string.
    let ifindex = unsafe { libc::if_nametoindex(dev.as_ptr()) };
    if ifindex == 0 {
        bail!("no interface {}", dev.to_string_lossy());
    }
    let mut attr = ProgQueryAttr {
        target_ifindex: ifindex,
        attach_type,
        ..ProgQueryAttr::default()
    };
    // SAFETY: bpf(2) reads and writes exactly `size_of::<ProgQueryAttr>()` bytes of `attr`;
    // prog_ids is NULL, so the kernel only fills in the count.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_QUERY,
            &raw mut attr,
            size_of::<ProgQueryAttr>(),
        )
    };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EINVAL) {
            return Err(err).context(
                "BPF_PROG_QUERY rejected TCX attach types: kernel without TCX (needs ≥ 6.6)",
            );
        }
        return Err(err).context("BPF_PROG_QUERY");
    }
    Ok(attr.prog_cnt)
}

/// Everything attached to `dev` or to any link of `ns` that a mirror could have left: XDP on any
/// link, tc filters and TCX programs on `dev`, and whatever `bpftool net show` lists. Empty
/// means clean.
pub fn attachments(ns: &Netns, dev: &str) -> Result<Vec<String>> {
    let mut found: Vec<String> = xdp_links(ns)?
        .into_iter()
        .map(|l| format!("XDP on {l}"))
        .collect();
    for hook in Hook::ALL {
        let filters = tc_filters(ns, dev, hook)?;
        if !filters.is_empty() {
            found.push(format!("tc {} filters on {dev}:\n{filters}", hook.as_str()));
        }
        let tcx = tcx_prog_count(ns, dev, hook)?;
        if tcx != 0 {
            found.push(format!("{tcx} TCX {} programs on {dev}", hook.as_str()));
        }
    }
    found.extend(
        bpftool_net(ns)?
            .into_iter()
            .map(|e| format!("bpftool net: {e}")),
    );
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_ids_drop_the_peer() {
        let line =
            "2: vethpod@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP";
        assert_eq!(link_id(line).as_deref(), Some("2: vethpod"));
        assert_eq!(
            link_id("1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536").as_deref(),
            Some("1: lo")
        );
    }
}
