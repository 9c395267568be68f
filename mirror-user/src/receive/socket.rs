//! The listening socket: UDP for VXLAN, raw IP protocol 47 for GRE and ERSPAN.
//!
//! Both kinds deliver whole outer IP payloads: the kernel reassembles fragmented outer IP
//! packets (`ip_local_deliver` / `ipv6_frag_rcv`) before any raw or UDP socket sees them, so
//! a tunnel packet that was fragmented on its way arrives here in one piece and the receiver
//! never deals with fragments. An IPv4 raw socket delivers the IP header too (the caller skips
//! IHL * 4 bytes); an IPv6 raw socket delivers only what follows the IPv6 header and its
//! extension headers.
//!
//! Every datagram carries the kernel's receive time (`SO_TIMESTAMPNS`), and a receive waits at
//! most [`POLL_INTERVAL`], so that the caller can check for a stop request.

use std::{
    io, mem,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    os::fd::{AsFd as _, AsRawFd as _, OwnedFd},
    time::Duration,
};

use anyhow::Context as _;
use socket2::{SockAddr, SockAddrStorage, SockRef};

use crate::UsageError;

/// The longest a receive waits before it returns `None`.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// The socket receive buffer asked for, to ride out bursts (past `net.core.rmem_max` only with
/// CAP_NET_ADMIN, which the raw sockets' root usually brings).
const RECEIVE_BUFFER: libc::c_int = 8 << 20;

/// IP protocol number of GRE.
const IPPROTO_GRE: libc::c_int = 47;

/// A bound socket that tunnel packets arrive on.
#[derive(Debug)]
pub struct Listener {
    fd: OwnedFd,
    local: SocketAddr,
    ip_header: bool,
}

/// One received datagram: its length in the caller's buffer and where and when it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datagram {
    /// Bytes written to the buffer.
    pub len: usize,
    /// The outer source address (IPv4-mapped IPv6 addresses turned back into IPv4).
    pub source: IpAddr,
    /// The kernel's receive time, Unix epoch nanoseconds.
    pub received_ns: u64,
    /// The datagram was longer than the buffer and was cut.
    pub truncated: bool,
}

impl Listener {
    /// Bind a UDP socket (`udp`) or a raw GRE socket to `addr` (whose port only UDP uses).
    ///
    /// An address that is not one of this host's is bad input.
    pub fn bind(udp: bool, addr: SocketAddr) -> anyhow::Result<Self> {
        let what = if udp {
            "UDP"
        } else {
            "raw GRE (IP protocol 47)"
        };
        let (domain, family) = match addr {
            SocketAddr::V4(_) => (libc::AF_INET, "IPv4"),
            SocketAddr::V6(_) => (libc::AF_INET6, "IPv6"),
        };
        let (kind, protocol) = if udp {
            (libc::SOCK_DGRAM, libc::IPPROTO_UDP)
        } else {
            (libc::SOCK_RAW, IPPROTO_GRE)
        };
        let fd = crate::sockopt::socket(domain, kind, protocol);
        let fd = match fd {
            Ok(fd) => fd,
            Err(err) => {
                let hint = if udp {
                    ""
                } else {
                    " (raw sockets need root or CAP_NET_RAW)"
                };
                return Err(err)
                    .with_context(|| format!("opening an {family} {what} socket{hint}"));
            }
        };
        set_option(&fd, libc::SO_TIMESTAMPNS, &1_i32).context("enabling SO_TIMESTAMPNS")?;
        let timeout = libc::timeval {
            tv_sec: 0,
            tv_usec: libc::suseconds_t::try_from(POLL_INTERVAL.as_micros()).unwrap_or(100_000),
        };
        set_option(&fd, libc::SO_RCVTIMEO, &timeout).context("setting SO_RCVTIMEO")?;
        // Best effort: a smaller buffer only means drops under bursts. SO_RCVBUF alone is capped
        // at rmem_max (208 KB by default: a hundred full-size copies).
        if set_option(&fd, libc::SO_RCVBUFFORCE, &RECEIVE_BUFFER).is_err() {
            let _ = set_option(&fd, libc::SO_RCVBUF, &RECEIVE_BUFFER);
        }
        if let Err(err) = SockRef::from(&fd).bind(&addr.into()) {
            if err.raw_os_error() == Some(libc::EADDRNOTAVAIL) {
                return Err(UsageError(format!(
                    "--listen {}: not an address of this host",
                    addr.ip()
                ))
                .into());
            }
            return Err(err).with_context(|| format!("binding the {what} socket to {addr}"));
        }
        let local = local_addr(&fd).context("reading the socket's address")?;
        Ok(Self {
            fd,
            local,
            ip_header: !udp && addr.is_ipv4(),
        })
    }

    /// The bound address (with the port the kernel chose for a UDP port 0; 0 for raw sockets).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Whether datagrams start with the outer IP header: IPv4 raw sockets.
    pub fn includes_ip_header(&self) -> bool {
        self.ip_header
    }

    /// Receive one datagram into `buf`; `None` if none came within [`POLL_INTERVAL`] or a
    /// signal interrupted the wait.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<Datagram>> {
        let mut name = SockAddrStorage::zeroed();
        // Room for a timestamp control message, aligned for cmsghdr.
        let mut control = [0_u64; 16];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: an all-zero msghdr is valid (null pointers, zero lengths).
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_name = (&raw mut name).cast();
        msg.msg_namelen = name.size_of();
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = size_of_val(&control);
        // SAFETY: every pointer in `msg` points to live buffers of the lengths given.
        let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &raw mut msg, 0) };
        let Ok(len) = usize::try_from(n) else {
            let err = io::Error::last_os_error();
            return match err.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(err),
            };
        };
        // SAFETY: recvmsg wrote a socket address of `msg_namelen` bytes (or left zeroes).
        let source = unsafe { SockAddr::new(name, msg.msg_namelen) }
            .as_socket()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.ip().to_canonical());
        Ok(Some(Datagram {
            len: len.min(buf.len()),
            source,
            received_ns: receive_time(&msg).unwrap_or_else(now_ns),
            truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
        }))
    }
}

/// The `SO_TIMESTAMPNS` time among the control messages of `msg`.
fn receive_time(msg: &libc::msghdr) -> Option<u64> {
    // SAFETY: `msg` is the header recvmsg filled; the CMSG macros stay within its control
    // buffer, and the timespec is read unaligned from a message long enough to hold it.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            let header = &*cmsg;
            let needed = libc::CMSG_LEN(socklen_of::<libc::timespec>()) as usize;
            if header.cmsg_level == libc::SOL_SOCKET
                && header.cmsg_type == libc::SCM_TIMESTAMPNS
                && header.cmsg_len >= needed
            {
                let ts = libc::CMSG_DATA(cmsg)
                    .cast::<libc::timespec>()
                    .read_unaligned();
                return timespec_ns(&ts);
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
    None
}

fn timespec_ns(ts: &libc::timespec) -> Option<u64> {
    let secs = u64::try_from(ts.tv_sec).ok()?;
    let nanos = u64::try_from(ts.tv_nsec).ok()?;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

pub use crate::clock::unix_now_ns as now_ns;

fn set_option<T>(fd: &OwnedFd, name: libc::c_int, value: &T) -> io::Result<()> {
    crate::sockopt::set(fd.as_fd(), libc::SOL_SOCKET, name, value)
}

fn socklen_of<T>() -> libc::socklen_t {
    libc::socklen_t::try_from(size_of::<T>()).unwrap_or(libc::socklen_t::MAX)
}

fn local_addr(fd: &OwnedFd) -> io::Result<SocketAddr> {
    SockRef::from(fd)
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("not an IP socket address"))
}

#[cfg(test)]
mod tests {
    use std::net::UdpSocket;

    use super::*;

    #[test]
    fn udp_receives_with_source_and_kernel_time() {
        let listener = Listener::bind(true, "127.0.0.1:0".parse().unwrap()).unwrap();
        let local = listener.local_addr();
        assert_ne!(local.port(), 0);
        assert!(!listener.includes_ip_header());
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let before = now_ns();
        sender.send_to(&[1, 2, 3, 4, 5], local).unwrap();
        let mut buf = [0_u8; 4];
        let datagram = loop {
            if let Some(datagram) = listener.recv(&mut buf).unwrap() {
                break datagram;
            }
        };
        let after = now_ns();
        assert_eq!(datagram.len, 4);
        assert!(datagram.truncated);
        assert_eq!(buf, [1, 2, 3, 4]);
        assert_eq!(datagram.source, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert!(
            (before..=after).contains(&datagram.received_ns),
            "{before} <= {} <= {after}",
            datagram.received_ns
        );
    }

    #[test]
    fn recv_times_out_with_none() {
        let listener = Listener::bind(true, "127.0.0.1:0".parse().unwrap()).unwrap();
        let start = std::time::Instant::now();
        assert_eq!(listener.recv(&mut [0; 16]).unwrap(), None);
        assert!(start.elapsed() >= POLL_INTERVAL / 2);
    }

    #[test]
    fn foreign_address_is_bad_input() {
        // TEST-NET-1 is nobody's address here.
        let err = Listener::bind(true, "192.0.2.1:4789".parse().unwrap()).unwrap_err();
        assert!(err.downcast_ref::<UsageError>().is_some(), "{err:#}");
        assert_eq!(
            err.to_string(),
            "--listen 192.0.2.1: not an address of this host"
        );
    }
}
