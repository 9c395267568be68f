//! A network namespace that is deleted when dropped.

use std::{
    ffi::OsStr,
    fs::File,
    net::{SocketAddr, UdpSocket},
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Once,
        atomic::{AtomicU32, Ordering},
    },
    thread,
};

use anyhow::{Context as _, Result, anyhow};

use crate::proc::{Background, command, run, run_stdout};

/// A name unique to this process and call: `mt<pid>x<counter>`, to be suffixed by the caller.
pub fn unique_prefix() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "mt{}x{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Deletes namespaces that [`unique_prefix`] named for a process that no longer runs (a test
/// run killed before its guards could clean up). Runs once per process; failures are printed.
pub fn sweep_stale() {
    static SWEEP: Once = Once::new();
    SWEEP.call_once(|| {
        let list = match run_stdout(&mut command("ip", ["netns", "list"])) {
            Ok(list) => list,
            Err(err) => return eprintln!("sweeping stale test namespaces: {err:#}"),
        };
        for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
            let Some(pid) = stale_owner(name) else {
                continue;
            };
            eprintln!("deleting netns {name}, left behind by test process {pid}");
            if let Err(err) = run(&mut command("ip", ["netns", "del", name])) {
                eprintln!("deleting stale netns {name}: {err:#}");
            }
        }
    });
}

/// The pid in a name made by [`unique_prefix`] (`mt<pid>x<n>-...`) if that process is gone.
pub(crate) fn stale_owner(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("mt")?;
    let (pid, rest) = rest.split_once('x')?;
    let (counter, _) = rest.split_once('-')?;
    let pid: u32 = pid.parse().ok()?;
    counter.parse::<u32>().ok()?;
    (pid != std::process::id() && !Path::new("/proc").join(pid.to_string()).exists()).then_some(pid)
}

/// A named network namespace (`ip netns add`), with IPv6 disabled and `lo` up; deleted on drop.
///
/// Deleting the namespace also deletes its interfaces and, for veth pairs, their peers.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates the namespace `name`.
    pub fn create(name: &str) -> Result<Self> {
        run(&mut command("ip", ["netns", "add", name]))
            .with_context(|| format!("creating netns {name}"))?;
        let ns = Self {
            name: name.to_owned(),
        };
        // Before any interface exists, so that no interface ever gets an IPv6 address and
        // captures hold only the traffic a test makes (no router solicitations, no MLD).
        ns.run(
            "sysctl",
            [
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ],
        )
        .with_context(|| format!("disabling IPv6 in netns {name}"))?;
        ns.ip(["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip netns exec NAME program args...`, not yet run.
    pub fn command<I, S>(&self, program: &str, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = command("ip", ["netns", "exec", self.name.as_str(), program]);
        cmd.args(args);
        cmd
    }

    /// Runs `program args...` in the namespace and returns its stdout; fails on non-zero exit.
    pub fn run<I, S>(&self, program: &str, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run_stdout(&mut self.command(program, args))
    }

    /// Runs `ip -n NAME args...` and returns its stdout.
    pub fn ip<I, S>(&self, args: I) -> Result<String>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = command("ip", ["-n", self.name.as_str()]);
        cmd.args(args);
        run_stdout(&mut cmd)
    }

    /// Starts `program args...` in the namespace in the background (SIGINT/SIGKILL on drop).
    pub fn spawn<I, S>(&self, label: &str, program: &str, args: I) -> Result<Background>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Background::spawn(label, &mut self.command(program, args))
    }

    /// The MAC address of `dev`.
    pub fn mac(&self, dev: &str) -> Result<String> {
        let json = self.ip(["-j", "link", "show", "dev", dev])?;
        let links: serde_json::Value = serde_json::from_str(&json)
            .with_context(|| format!("parsing `ip -j link show {dev}` in {}", self.name))?;
        links[0]["address"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("no address for {dev} in netns {}", self.name))
    }

    /// The kernel's counters of `dev` (`ip -s -j link show`).
    pub fn link_stats(&self, dev: &str) -> Result<LinkStats> {
        let json = self.ip(["-s", "-j", "link", "show", "dev", dev])?;
        let links: serde_json::Value = serde_json::from_str(&json)
            .with_context(|| format!("parsing `ip -s -j link show {dev}` in {}", self.name))?;
        let stats = &links[0]["stats64"];
        let counter = |dir: &str, name: &str| -> Result<u64> {
            stats[dir][name].as_u64().with_context(|| {
                format!("no {dir}.{name} counter for {dev} in netns {}", self.name)
            })
        };
        Ok(LinkStats {
            rx_packets: counter("rx", "packets")?,
            rx_bytes: counter("rx", "bytes")?,
            rx_errors: counter("rx", "errors")?,
            rx_dropped: counter("rx", "dropped")?,
            tx_packets: counter("tx", "packets")?,
        })
    }

    /// One counter of the namespace's `/proc/net/snmp` (IPv4 MIB), e.g. `("Ip", "InAddrErrors")`
    /// or `("Udp", "InCsumErrors")`; `/proc/net/snmp6` for `("Udp6", "InCsumErrors")` and the
    /// other IPv6 groups.
    pub fn snmp(&self, group: &str, counter: &str) -> Result<u64> {
        let ipv6 = group.ends_with('6');
        let file = if ipv6 {
            "/proc/net/snmp6"
        } else {
            "/proc/net/snmp"
        };
        let text = self.run("cat", [file])?;
        let value = if ipv6 {
            let key = format!("{group}{counter}");
            text.lines().find_map(|line| {
                let mut words = line.split_whitespace();
                (words.next() == Some(key.as_str()))
                    .then(|| words.next())
                    .flatten()
            })
        } else {
            snmp_v4(&text, group, counter)
        };
        value
            .with_context(|| format!("no {group} {counter} in {file} of netns {}", self.name))?
            .parse()
            .with_context(|| {
                format!(
                    "{group} {counter} in {file} of netns {} is not a number",
                    self.name
                )
            })
    }

    /// Enables IPv6 on `dev` alone (the namespace has it off), without a link-local address,
    /// so that only the addresses a test adds exist (add them with `nodad`).
    pub fn enable_ipv6(&self, dev: &str) -> Result<()> {
        self.ip(["link", "set", "dev", dev, "addrgenmode", "none"])
            .with_context(|| format!("turning off IPv6 address generation on {dev}"))?;
        self.run(
            "sysctl",
            ["-qw", &format!("net.ipv6.conf.{dev}.disable_ipv6=0")],
        )
        .with_context(|| format!("enabling IPv6 on {dev} in netns {}", self.name))?;
        Ok(())
    }

    /// The namespace's file, for setns(2).
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// Runs `f` on a fresh thread that has entered this namespace and returns its result.
    /// Sockets `f` creates belong to this namespace wherever they are used afterwards.
    pub fn within<T: Send>(&self, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
        let path = self.path();
        thread::scope(|scope| {
            scope
                .spawn(|| {
                    let ns =
                        File::open(&path).with_context(|| format!("opening {}", path.display()))?;
                    // SAFETY: setns(2) on a valid fd; it changes only this scoped thread's netns.
                    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                        return Err(std::io::Error::last_os_error())
                            .with_context(|| format!("entering netns {}", self.name));
                    }
                    f()
                })
                .join()
                .map_err(|_| anyhow!("the thread in netns {} panicked", self.name))?
        })
    }

    /// A UDP socket bound to `addr` in this namespace.
    pub fn udp_socket(&self, addr: SocketAddr) -> Result<UdpSocket> {
        self.within(|| {
            UdpSocket::bind(addr)
                .with_context(|| format!("binding UDP {addr} in netns {}", self.name))
        })
    }
}

/// Counters of one interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_packets: u64,
}

/// `counter` of `group` in `/proc/net/snmp` text: a header line of names, then a line of values.
fn snmp_v4<'t>(text: &'t str, group: &str, counter: &str) -> Option<&'t str> {
    let prefix = format!("{group}:");
    let mut lines = text.lines().filter(|l| l.starts_with(&prefix));
    let names = lines.next()?;
    let values = lines.next()?;
    let index = names.split_whitespace().position(|name| name == counter)?;
    values.split_whitespace().nth(index)
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(err) = run(&mut command("ip", ["netns", "del", self.name.as_str()])) {
            eprintln!("cleanup: deleting netns {}: {err:#}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_of_dead_test_processes_are_stale() {
        // Above the kernel's pid_max limit (2^22): never a running process.
        assert_eq!(stale_owner("mt4294967x3-node"), Some(4_294_967));
        assert_eq!(stale_owner("mt1x0-pod"), None, "pid 1 runs");
        assert_eq!(
            stale_owner(&format!("{}-node", unique_prefix())),
            None,
            "this process runs"
        );
        assert_eq!(stale_owner("mw-node"), None);
        assert_eq!(stale_owner("mtx1-node"), None);
        assert_eq!(stale_owner("mt12x-node"), None);
    }

    #[test]
    fn reads_snmp_counters() {
        let text = "Ip: Forwarding DefaultTTL InReceives InAddrErrors\nIp: 2 64 17 5\n\
                    Udp: InDatagrams InCsumErrors\nUdp: 3 1\n";
        assert_eq!(snmp_v4(text, "Ip", "InAddrErrors"), Some("5"));
        assert_eq!(snmp_v4(text, "Udp", "InCsumErrors"), Some("1"));
        assert_eq!(snmp_v4(text, "Udp", "Nope"), None);
        assert_eq!(snmp_v4(text, "Tcp", "InSegs"), None);
    }
}
