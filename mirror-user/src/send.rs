//! Batched sending of tunnel packets through one raw IPv4 socket: one `sendmmsg` per batch, the
//! outer headers from the tunnel code, the inner frame straight from the UMEM (no copy).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

use std::{
    io,
    net::SocketAddrV4,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

use prometheus::IntCounter;

use crate::tunnel::{CopyMeta, Encap, MAX_HEADER_LEN};

/// A remote endpoint with its encapsulation and counters.
pub struct Destination {
    pub encap: Encap,
    pub addr: SocketAddrV4,
    /// Largest inner frame that fits the path MTU to this remote.
    pub max_inner: usize,
    pub sent_packets: IntCounter,
    pub sent_bytes: IntCounter,
}

/// Per-flush tallies, added to the shared counters once per flush rather than per packet.
#[derive(Clone, Copy, Default)]
struct Tally {
    packets: u64,
    bytes: u64,
}

/// Counters of copies the sender could not deliver.
pub struct SendDrops {
    pub too_big: IntCounter,
    pub send_error: IntCounter,
}

pub struct Sender {
    fd: OwnedFd,
    destinations: Vec<Destination>,
    drops: SendDrops,
    headers: Vec<[u8; MAX_HEADER_LEN]>,
    iovecs: Vec<[libc::iovec; 2]>,
    names: Vec<libc::sockaddr_in>,
    msgs: Vec<libc::mmsghdr>,
    /// Which destination each queued message goes to.
    targets: Vec<usize>,
    queued: usize,
    tallies: Vec<Tally>,
}

impl Sender {
    /// A sender for up to `batch` frames between flushes; its packets carry `mark`.
    pub fn new(
        destinations: Vec<Destination>,
        drops: SendDrops,
        batch: usize,
        mark: u32,
    ) -> io::Result<Self> {
        // IPPROTO_RAW: the agent writes the whole IPv4 header (IP_HDRINCL implied).
        // SAFETY: plain socket call.
        let raw = unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::IPPROTO_RAW,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        setsockopt(&fd, libc::SOL_SOCKET, libc::SO_MARK, mark.cast_signed())?;
        setsockopt(&fd, libc::SOL_SOCKET, libc::SO_SNDBUF, 4 << 20)?;
        let slots = batch * destinations.len().max(1);
        Ok(Self {
            fd,
            drops,
            headers: vec![[0; MAX_HEADER_LEN]; slots],
            iovecs: vec![[zeroed_iovec(), zeroed_iovec()]; slots],
            // SAFETY: all-zero is a valid sockaddr_in and mmsghdr.
            names: (0..slots).map(|_| unsafe { std::mem::zeroed() }).collect(),
            // SAFETY: as above.
            msgs: (0..slots).map(|_| unsafe { std::mem::zeroed() }).collect(),
            targets: vec![0; slots],
            queued: 0,
            tallies: vec![Tally::default(); destinations.len()],
            destinations,
        })
    }

    /// Queues one copy of `frame` for every destination.
    ///
    /// # Safety
    /// `frame` must stay valid and unchanged until the next [`Sender::flush`] returns.
    pub unsafe fn push(&mut self, frame: &[u8]) {
        for (index, dest) in self.destinations.iter_mut().enumerate() {
            if frame.len() > dest.max_inner {
                self.drops.too_big.inc();
                continue;
            }
            let slot = self.queued;
            let (Some(header), Some(iov), Some(name), Some(target)) = (
                self.headers.get_mut(slot),
                self.iovecs.get_mut(slot),
                self.names.get_mut(slot),
                self.targets.get_mut(slot),
            ) else {
                // More pushes than the batch size: the caller's bug, never the network's.
                self.drops.send_error.inc();
                continue;
            };
            // Direction, capture time and truncation only matter to ERSPAN, not yet wired up.
            let header_len = dest.encap.write_header(frame, &CopyMeta::default(), header);
            *iov = [
                libc::iovec {
                    iov_base: header.as_mut_ptr().cast(),
                    iov_len: header_len,
                },
                libc::iovec {
                    iov_base: frame.as_ptr().cast_mut().cast(),
                    iov_len: frame.len(),
                },
            ];
            *name = sockaddr(dest.addr);
            *target = index;
            self.queued += 1;
        }
    }

    /// Sends everything queued, one `sendmmsg` per run of successes; a message the kernel
    /// refuses is counted and skipped.
    pub fn flush(&mut self) {
        let queued = self.queued;
        self.queued = 0;
        for ((msg, iov), name) in self
            .msgs
            .iter_mut()
            .zip(&mut self.iovecs)
            .zip(&mut self.names)
            .take(queued)
        {
            msg.msg_hdr.msg_name = (&raw mut *name).cast();
            msg.msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            msg.msg_hdr.msg_iov = iov.as_mut_ptr();
            msg.msg_hdr.msg_iovlen = 2;
        }
        let mut done = 0;
        while done < queued {
            let Some(pending) = self.msgs.get_mut(done..queued) else {
                return;
            };
            // SAFETY: every pending message points at live headers, names and UMEM frames
            // (the `push` contract).
            let rc = unsafe {
                libc::sendmmsg(
                    self.fd.as_raw_fd(),
                    pending.as_mut_ptr(),
                    pending.len() as libc::c_uint,
                    0,
                )
            };
            if rc < 0 {
                let err = io::Error::last_os_error();
                if err.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                if err.raw_os_error() == Some(libc::EMSGSIZE) {
                    self.drops.too_big.inc();
                } else {
                    self.drops.send_error.inc();
                }
                done += 1;
                continue;
            }
            let sent = rc.unsigned_abs() as usize;
            for slot in done..done + sent {
                if let (Some(&target), Some([header, inner])) =
                    (self.targets.get(slot), self.iovecs.get(slot))
                    && let Some(tally) = self.tallies.get_mut(target)
                {
                    tally.packets += 1;
                    tally.bytes += (header.iov_len + inner.iov_len) as u64;
                }
            }
            done += sent;
        }
        for (dest, tally) in self.destinations.iter().zip(&mut self.tallies) {
            if tally.packets > 0 {
                dest.sent_packets.inc_by(tally.packets);
                dest.sent_bytes.inc_by(tally.bytes);
                *tally = Tally::default();
            }
        }
    }
}

// SAFETY: the raw pointers in the message buffers point into the sender's own buffers or at
// frames the caller lends until `flush`; the sender is used by one thread at a time.
unsafe impl Send for Sender {}

fn zeroed_iovec() -> libc::iovec {
    libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }
}

fn sockaddr(addr: SocketAddrV4) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        // Raw sockets ignore the port; the UDP header carries it.
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(*addr.ip()).to_be(),
        },
        sin_zero: [0; 8],
    }
}

fn setsockopt(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: valid fd and an int-sized option.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
