//! AF_XDP sockets in copy mode (veth has no zero-copy), written against the kernel's interface
//! directly: xsk-rs always makes an RX ring and sends a frame from where it was received, where
//! the agent needs TX-only sockets on the uplinks and descriptors that start before the
//! received frame (the outer headers go into the chunk's headroom).
//!
//! The capture socket registers the [`Umem`]; every uplink socket shares it
//! (`XDP_SHARED_UMEM`, another device: its own fill and completion rings, Linux 5.10+).
use std::{
    io,
    os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, OwnedFd},
};

use super::{
    ring::{Consumer, Mapping, Producer},
    umem::{CHUNK_SIZE, Umem},
};
use crate::sockopt;

/// `XDP_USE_SG` (Linux 6.6+): a frame larger than a chunk arrives in several descriptors, all but
/// the last flagged [`XDP_PKT_CONTD`].
const XDP_USE_SG: u16 = 1 << 4;
/// Descriptor option: the frame goes on in the next descriptor.
pub const XDP_PKT_CONTD: u32 = 1;

/// `XDP_MAX_TX_SKB_BUDGET` (Linux 6.17+): descriptors one `sendto` may send in copy mode
/// (default 32).
const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;

/// Entries of each ring a socket gets; 0 leaves the ring out.
#[derive(Clone, Copy, Debug, Default)]
pub struct RingSizes {
    pub rx: u32,
    pub tx: u32,
    pub fill: u32,
    pub completion: u32,
}

pub struct XdpSocket {
    /// Whether the UMEM takes frames in several chunks (`XDP_USE_SG`).
    pub multi_buffer: bool,
    pub rx: Option<Consumer<libc::xdp_desc>>,
    pub tx: Option<Producer<libc::xdp_desc>>,
    pub fill: Option<Producer<u64>>,
    pub completion: Option<Consumer<u64>>,
    /// Declared last: the rings are unmapped before the socket closes.
    fd: OwnedFd,
}

impl XdpSocket {
    /// A socket on queue `queue` of `ifindex` that registers `umem` (copy mode, need-wakeup).
    pub fn register(umem: &Umem, ifindex: u32, queue: u32, sizes: RingSizes) -> io::Result<Self> {
        let fd = open()?;
        let reg = libc::xdp_umem_reg {
            addr: umem.base() as u64,
            len: umem.len() as u64,
            chunk_size: CHUNK_SIZE,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        sockopt::set(fd.as_fd(), libc::SOL_XDP, libc::XDP_UMEM_REG, &reg)?;
        let mut socket = Self::with_rings(fd, sizes)?;
        let flags = libc::XDP_COPY | libc::XDP_USE_NEED_WAKEUP;
        // Multi-buffer where the kernel has it; an older one refuses the flag (EINVAL) and the
        // bind is tried again without it (a failed bind leaves the socket unbound).
        match socket.bind(ifindex, queue, flags | XDP_USE_SG, 0) {
            Ok(()) => socket.multi_buffer = true,
            Err(err) if err.raw_os_error() == Some(libc::EINVAL) => {
                socket.bind(ifindex, queue, flags, 0)?;
            }
            Err(err) => return Err(err),
        }
        Ok(socket)
    }

    /// A socket on queue `queue` of `ifindex` that shares the UMEM the socket `first` registered; it
    /// inherits copy mode and need-wakeup.
    pub fn share(
        first: BorrowedFd<'_>,
        ifindex: u32,
        queue: u32,
        sizes: RingSizes,
    ) -> io::Result<Self> {
        let socket = Self::with_rings(open()?, sizes)?;
        let shared_fd = u32::try_from(first.as_raw_fd()).map_err(io::Error::other)?;
        socket.bind(ifindex, queue, libc::XDP_SHARED_UMEM, shared_fd)?;
        Ok(socket)
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Lets one `sendto` send up to `budget` descriptors (Linux 6.17+; older kernels send 32
    /// per call and this fails harmlessly).
    pub fn set_tx_budget(&self, budget: u32) -> io::Result<()> {
        sockopt::set(self.fd(), libc::SOL_XDP, XDP_MAX_TX_SKB_BUDGET, &budget)
    }

    /// Asks the kernel to send what is on the TX ring (copy mode sends only from a syscall).
    pub fn kick_tx(&self) -> io::Result<Kick> {
        // SAFETY: a plain sendto with no data on our own socket.
        let rc = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null(),
                0,
            )
        };
        if rc >= 0 {
            return Ok(Kick::Done);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            // `__xsk_generic_xmit`: the device dropped the packet it took last (NET_XMIT_DROP,
            // e.g. a veth peer's full ring); it is consumed and completed, not sent.
            Some(libc::EBUSY) => Ok(Kick::Dropped),
            Some(libc::EAGAIN | libc::ENOBUFS) => Ok(Kick::Again),
            _ => Err(err),
        }
    }

    /// Waits up to `timeout_ms` for the RX ring, or `also` (another source of copies), to have
    /// something.
    pub fn poll_rx(&self, timeout_ms: i32, also: BorrowedFd<'_>) -> io::Result<()> {
        let mut pollfds = [self.fd.as_raw_fd(), also.as_raw_fd()].map(|fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        });
        // SAFETY: two valid pollfds.
        let rc = unsafe { libc::poll(pollfds.as_mut_ptr(), 2, timeout_ms) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
        }
        Ok(())
    }

    /// Frames the kernel dropped for want of room: RX ring full, or no chunk on the fill ring.
    pub fn rx_dropped(&self) -> io::Result<u64> {
        // SAFETY: all-zero is a valid xdp_statistics.
        let mut stats: libc::xdp_statistics = unsafe { std::mem::zeroed() };
        sockopt::get_into(self.fd(), libc::SOL_XDP, libc::XDP_STATISTICS, &mut stats)?;
        Ok(stats.rx_dropped + stats.rx_ring_full)
    }

    /// A pending error of the socket (`SO_ERROR`, which reading clears): the kernel sets
    /// ENETDOWN when the device goes away under it.
    pub fn error(&self) -> Option<io::Error> {
        let err: libc::c_int = sockopt::get(self.fd(), libc::SOL_SOCKET, libc::SO_ERROR).ok()?;
        (err != 0).then(|| io::Error::from_raw_os_error(err))
    }

    fn with_rings(fd: OwnedFd, sizes: RingSizes) -> io::Result<Self> {
        let ring_options = [
            (sizes.fill, libc::XDP_UMEM_FILL_RING),
            (sizes.completion, libc::XDP_UMEM_COMPLETION_RING),
            (sizes.rx, libc::XDP_RX_RING),
            (sizes.tx, libc::XDP_TX_RING),
        ];
        for (size, option) in ring_options {
            if size > 0 {
                sockopt::set(
                    fd.as_fd(),
                    libc::SOL_XDP,
                    option,
                    &libc::c_int::try_from(size).map_err(io::Error::other)?,
                )?;
            }
        }
        let offsets = mmap_offsets(fd.as_fd())?;
        let desc = size_of::<libc::xdp_desc>();
        let map = |size: u32, ring: &libc::xdp_ring_offset, entry: usize, page: u64| {
            Mapping::new(fd.as_fd(), ring.desc as usize + size as usize * entry, page)
        };
        let rx = match sizes.rx {
            0 => None,
            n => Some(Consumer::new(
                map(n, &offsets.rx, desc, libc::XDP_PGOFF_RX_RING as u64)?,
                &offsets.rx,
                n,
            )),
        };
        let tx = match sizes.tx {
            0 => None,
            n => Some(Producer::new(
                map(n, &offsets.tx, desc, libc::XDP_PGOFF_TX_RING as u64)?,
                &offsets.tx,
                n,
            )),
        };
        let fill = match sizes.fill {
            0 => None,
            n => Some(Producer::new(
                map(n, &offsets.fr, 8, libc::XDP_UMEM_PGOFF_FILL_RING)?,
                &offsets.fr,
                n,
            )),
        };
        let completion = match sizes.completion {
            0 => None,
            n => Some(Consumer::new(
                map(n, &offsets.cr, 8, libc::XDP_UMEM_PGOFF_COMPLETION_RING)?,
                &offsets.cr,
                n,
            )),
        };
        Ok(Self {
            multi_buffer: false,
            rx,
            tx,
            fill,
            completion,
            fd,
        })
    }

    fn bind(&self, ifindex: u32, queue: u32, flags: u16, shared_fd: u32) -> io::Result<()> {
        let addr = libc::sockaddr_xdp {
            sxdp_family: libc::AF_XDP as u16,
            sxdp_flags: flags,
            sxdp_ifindex: ifindex,
            sxdp_queue_id: queue,
            sxdp_shared_umem_fd: shared_fd,
        };
        // SAFETY: valid fd and a sockaddr_xdp of the length given.
        let rc = unsafe {
            libc::bind(
                self.fd.as_raw_fd(),
                (&raw const addr).cast(),
                size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

fn open() -> io::Result<OwnedFd> {
    sockopt::socket(libc::AF_XDP, libc::SOCK_RAW, 0)
}

fn mmap_offsets(fd: BorrowedFd<'_>) -> io::Result<libc::xdp_mmap_offsets> {
    // SAFETY: all-zero is a valid xdp_mmap_offsets.
    let mut offsets: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
    sockopt::get_into(fd, libc::SOL_XDP, libc::XDP_MMAP_OFFSETS, &mut offsets)?;
    Ok(offsets)
}

/// What one `sendto` on the TX ring did.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kick {
    /// The kernel took what it could; call again only if entries remain.
    Done,
    /// The kernel asks to be called again (budget spent, completion ring or device busy).
    Again,
    /// The last entry the kernel took was dropped by the device; call again for the rest.
    Dropped,
}
