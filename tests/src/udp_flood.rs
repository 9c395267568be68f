//! A UDP traffic generator of our own, for benchmarks: Ethernet frames written with `sendmmsg` on
//! an `AF_PACKET` socket of an interface, evenly paced or as fast as one core allows.
//!
//! trafgen's `--rate` sends each second's packets in one burst at full speed and then sleeps
//! for the rest of the second, which measures bursts, not a rate. Here a fixed rate is kept
//! within 100 µs: the thread sleeps (with a 1 µs timer slack) until a few packets are due and
//! sends those, so a receiver sees `rate / 10,000` frames back to back; should the thread not
//! be scheduled for a while, it sends at most 1 ms of the packets it missed and forgoes the rest.

use std::{
    io, mem,
    net::Ipv4Addr,
    os::fd::{AsRawFd as _, OwnedFd},
    ptr, thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail, ensure};
use etherparse::PacketBuilder;
use socket2::{Domain, SockAddr, SockAddrStorage, Socket, Type};

use crate::netns::Netns;

/// Frames handed to one `sendmmsg` call at most.
const BATCH: usize = 64;
/// How much sending a paced flood does at once: the packets of this long.
const PACE_STEP: Duration = Duration::from_micros(100);
/// How far a paced flood may fall behind its schedule before it gives up the packets it missed.
const MAX_DEBT: Duration = Duration::from_millis(1);
/// Offset of the UDP source port in an untagged Ethernet + IPv4 (no options) frame.
const UDP_SRC_PORT_AT: usize = 14 + 20;
/// Offset of the UDP checksum in such a frame.
const UDP_CHECKSUM_AT: usize = 14 + 20 + 6;

/// What to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FloodSpec {
    /// The interface to send on (in the namespace given to [`flood`]).
    pub iface: String,
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub src_ip: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
    /// Length of each Ethernet frame, FCS not counted (at least 42).
    pub frame_len: usize,
    /// The first UDP source port.
    pub src_port: u16,
    /// How many source ports the frames cycle through from `src_port` (wrapping at 65535):
    /// 1 for one flow, 65536 for as many flows as UDP allows.
    pub src_ports: u32,
    pub dst_port: u16,
    /// Frames per second; `None`: as fast as possible.
    pub pps: Option<u64>,
    /// How long to send.
    pub duration: Duration,
    /// The CPU the sending thread is pinned to.
    pub cpu: Option<usize>,
}

/// What a flood did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FloodResult {
    /// Frames the kernel accepted (the interface's own counters say how many it sent on).
    pub sent: u64,
    /// Send calls that failed for lack of buffers (the frames were retried, not counted).
    pub send_errors: u64,
    /// Packets a paced flood forwent because it fell behind its schedule.
    pub skipped: u64,
    pub seconds: f64,
}

/// Sends `spec` from `ns` on a thread of its own (pinned to `spec.cpu`) and waits for the end.
pub fn flood(ns: &Netns, spec: &FloodSpec) -> Result<FloodResult> {
    ensure!(
        spec.frame_len >= 42,
        "a UDP frame has at least 42 bytes, not {}",
        spec.frame_len
    );
    ensure!(spec.src_ports >= 1, "at least one source port");
    ensure!(
        spec.pps != Some(0),
        "a paced flood needs a rate above 0 packets/s"
    );
    let template = udp_template(spec)?;
    ns.within(|| {
        if let Some(cpu) = spec.cpu {
            pin_to(cpu)?;
        }
        fine_timer_slack()?;
        let socket = PacketSocket::bind(&spec.iface)?;
        send_loop(&socket, &template, spec)
    })
    .with_context(|| format!("flooding {} in {}", spec.iface, ns.name()))
}

/// One frame of `spec` with its first source port and a zero UDP checksum (none, which IPv4
/// allows), so that the source port can be rewritten in place.
fn udp_template(spec: &FloodSpec) -> Result<Vec<u8>> {
    let payload = vec![0_u8; spec.frame_len - 42];
    let builder = PacketBuilder::ethernet2(spec.src_mac, spec.dst_mac)
        .ipv4(spec.src_ip.octets(), spec.dst_ip.octets(), 64)
        .udp(spec.src_port, spec.dst_port);
    let mut frame = Vec::with_capacity(spec.frame_len);
    builder
        .write(&mut frame, &payload)
        .context("building the UDP frame")?;
    ensure!(
        frame.len() == spec.frame_len,
        "built a {}-byte frame, wanted {}",
        frame.len(),
        spec.frame_len
    );
    frame[UDP_CHECKSUM_AT..UDP_CHECKSUM_AT + 2].fill(0);
    Ok(frame)
}

fn send_loop(socket: &PacketSocket, template: &[u8], spec: &FloodSpec) -> Result<FloodResult> {
    let mut frames: Vec<Vec<u8>> = vec![template.to_vec(); BATCH];
    let (mut sent, mut send_errors) = (0_u64, 0_u64);
    let batch = BATCH as u64;
    // Packets worth PACE_STEP: what a paced flood waits for before it sends.
    let step = spec.pps.map_or(batch, |pps| {
        (u128::from(pps) * PACE_STEP.as_nanos() / 1_000_000_000).clamp(1, u128::from(batch)) as u64
    });
    let max_debt = spec.pps.map_or(batch, |pps| {
        (u128::from(pps) * MAX_DEBT.as_nanos() / 1_000_000_000).max(u128::from(batch)) as u64
    });
    let mut skipped = 0_u64;
    let start = Instant::now();
    loop {
        let elapsed = start.elapsed();
        if elapsed >= spec.duration {
            break;
        }
        let due = spec.pps.map_or(sent + batch, |pps| {
            ((u128::from(pps) * elapsed.as_nanos() / 1_000_000_000) as u64).saturating_sub(skipped)
        });
        // Behind by more than MAX_DEBT (the thread was not scheduled): forgo the rest rather
        // than catch up in a burst; the interface's counters show the rate reached.
        let due = if due > sent + max_debt {
            skipped += due - sent - max_debt;
            sent + max_debt
        } else {
            due
        };
        let count = due.saturating_sub(sent).min(batch) as usize;
        if count == 0 {
            if let Some(pps) = spec.pps {
                let wake = Duration::from_nanos(
                    (u128::from(skipped + sent + step) * 1_000_000_000 / u128::from(pps)) as u64,
                );
                thread::sleep(wake.min(spec.duration).saturating_sub(elapsed));
            }
            continue;
        }
        if spec.src_ports > 1 {
            // The port follows the count sent, so frames the kernel did not take go again.
            for (frame, index) in frames[..count].iter_mut().zip(sent..) {
                let port = (u64::from(spec.src_port) + index % u64::from(spec.src_ports)) as u16;
                frame[UDP_SRC_PORT_AT..UDP_SRC_PORT_AT + 2].copy_from_slice(&port.to_be_bytes());
            }
        }
        match socket.send_batch(&frames[..count]) {
            Ok(n) => sent += n as u64,
            Err(err) if is_transient(&err) => {
                send_errors += 1;
                thread::yield_now();
            }
            Err(err) => {
                return Err(err).with_context(|| format!("sendmmsg on {}", spec.iface));
            }
        }
    }
    Ok(FloodResult {
        sent,
        send_errors,
        skipped,
        seconds: start.elapsed().as_secs_f64(),
    })
}

fn is_transient(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::ENOBUFS | libc::EAGAIN | libc::EINTR)
    )
}

/// A raw `AF_PACKET` socket bound to one interface for sending only (protocol 0: it receives
/// nothing), bypassing the qdisc layer as trafgen does.
struct PacketSocket {
    fd: OwnedFd,
}

impl PacketSocket {
    fn bind(iface: &str) -> Result<Self> {
        let name = std::ffi::CString::new(iface).context("interface name with a NUL byte")?;
        // SAFETY: if_nametoindex reads a valid NUL-terminated string.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::last_os_error())
                .with_context(|| format!("no interface {iface}"));
        }
        let socket = Socket::new(
            Domain::from(libc::AF_PACKET),
            Type::from(libc::SOCK_RAW),
            None,
        )
        .context("opening an AF_PACKET socket")?;
        let mut storage = SockAddrStorage::zeroed();
        // SAFETY: sockaddr_ll is one of the platform's sockaddr types and fits the storage.
        let addr = unsafe { storage.view_as::<libc::sockaddr_ll>() };
        addr.sll_family = u16::try_from(libc::AF_PACKET).context("AF_PACKET")?;
        addr.sll_ifindex = i32::try_from(ifindex).context("ifindex out of range")?;
        let len =
            libc::socklen_t::try_from(size_of::<libc::sockaddr_ll>()).context("sockaddr_ll")?;
        // SAFETY: the storage holds an initialised sockaddr_ll of `len` bytes.
        let addr = unsafe { SockAddr::new(storage, len) };
        socket
            .bind(&addr)
            .with_context(|| format!("binding to {iface}"))?;
        let fd = OwnedFd::from(socket);
        let one: libc::c_int = 1;
        // SAFETY: setsockopt(2) with an int option value of the size given.
        let set = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_QDISC_BYPASS,
                ptr::from_ref(&one).cast(),
                size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if set != 0 {
            return Err(io::Error::last_os_error()).context("setting PACKET_QDISC_BYPASS");
        }
        Ok(Self { fd })
    }

    /// Sends `frames` with one `sendmmsg`; returns how many the kernel took.
    fn send_batch(&self, frames: &[Vec<u8>]) -> io::Result<usize> {
        let mut iovecs: Vec<libc::iovec> = frames
            .iter()
            .map(|f| libc::iovec {
                iov_base: f.as_ptr().cast_mut().cast(),
                iov_len: f.len(),
            })
            .collect();
        let mut headers: Vec<libc::mmsghdr> = iovecs
            .iter_mut()
            .map(|iov| {
                // SAFETY: mmsghdr is plain data; all-zero is a valid value.
                let mut header: libc::mmsghdr = unsafe { mem::zeroed() };
                header.msg_hdr.msg_iov = ptr::from_mut(iov);
                header.msg_hdr.msg_iovlen = 1;
                header
            })
            .collect();
        // SAFETY: every header points at one iovec over a frame that outlives the call; the
        // kernel only reads the frames.
        let sent = unsafe {
            libc::sendmmsg(
                self.fd.as_raw_fd(),
                headers.as_mut_ptr(),
                headers.len() as libc::c_uint,
                0,
            )
        };
        usize::try_from(sent).map_err(|_| io::Error::last_os_error())
    }
}

/// Pins the calling thread to `cpu`.
fn pin_to(cpu: usize) -> Result<()> {
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { mem::zeroed() };
    ensure!(
        cpu < 8 * size_of::<libc::cpu_set_t>(),
        "CPU {cpu} is out of range"
    );
    // SAFETY: `cpu` is within the set's size (checked above).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: sched_setaffinity(2) on the calling thread (0) with a set of the size given.
    if unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set) } != 0 {
        return Err(io::Error::last_os_error()).with_context(|| format!("pinning to CPU {cpu}"));
    }
    Ok(())
}

/// A timer slack of 1 µs for the calling thread (50 µs by default), so that short sleeps end
/// when asked.
fn fine_timer_slack() -> Result<()> {
    // SAFETY: prctl(2) PR_SET_TIMERSLACK takes a plain integer.
    if unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1_000_u64) } != 0 {
        bail!("prctl(PR_SET_TIMERSLACK): {}", io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(frame_len: usize) -> FloodSpec {
        FloodSpec {
            iface: "eth0".to_owned(),
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src_ip: Ipv4Addr::new(198, 19, 0, 2),
            dst_ip: Ipv4Addr::new(198, 19, 0, 3),
            frame_len,
            src_port: 10_000,
            src_ports: 1,
            dst_port: 9,
            pps: None,
            duration: Duration::from_secs(1),
            cpu: None,
        }
    }

    #[test]
    fn templates_are_whole_udp_frames_without_checksum() {
        for len in [64, 1514] {
            let frame = udp_template(&spec(len)).unwrap();
            assert_eq!(frame.len(), len);
            let parsed = etherparse::SlicedPacket::from_ethernet(&frame).unwrap();
            let Some(etherparse::TransportSlice::Udp(udp)) = parsed.transport else {
                panic!("not UDP: {parsed:?}");
            };
            assert_eq!(
                (udp.source_port(), udp.destination_port(), udp.checksum()),
                (10_000, 9, 0)
            );
            assert_eq!(usize::from(udp.length()), len - 34);
            assert_eq!(
                &frame[UDP_SRC_PORT_AT..UDP_SRC_PORT_AT + 2],
                &10_000_u16.to_be_bytes()
            );
        }
    }

    #[test]
    fn flood_leaves_the_interface_it_is_bound_to() {
        if crate::skip_unless_root("flood_leaves_the_interface_it_is_bound_to") {
            return;
        }
        let ns = Netns::create(&format!("{}-flood", crate::netns::unique_prefix())).unwrap();
        let before = ns.link_stats("lo").unwrap().tx_packets;
        let mut spec = spec(64);
        spec.iface = "lo".to_owned();
        spec.pps = Some(1_000);
        spec.duration = Duration::from_millis(200);
        let result = flood(&ns, &spec).unwrap();
        let after = ns.link_stats("lo").unwrap().tx_packets;
        assert!(result.sent > 0, "{result:?}");
        assert_eq!(after - before, result.sent, "{result:?}");
        spec.iface = "nonexistent0".to_owned();
        let err = flood(&ns, &spec).unwrap_err();
        assert!(
            format!("{err:#}").contains("no interface nonexistent0"),
            "{err:#}"
        );
    }
}
