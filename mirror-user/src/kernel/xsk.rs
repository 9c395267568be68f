//! The AF_XDP socket on the far end of the mirror veth (copy mode: veth has no zero-copy), and
//! the UMEM it registers, which the uplinks' sockets share.
use std::{ffi::CString, os::fd::BorrowedFd, sync::Arc};

use anyhow::{Context as _, ensure};

use crate::kernel::{
    umem::Umem,
    xdp_socket::{RingSizes, XdpSocket},
};

/// Chunks in the UMEM.
const CHUNKS: u32 = 4096;
/// RX and fill ring entries: every chunk fits on the fill ring, so giving one back never fails.
const RING: u32 = 4096;

/// The capture socket and the UMEM it registered. Which of the two goes first does not matter:
/// fields drop in declaration order (socket, then this handle on the UMEM), but the kernel pins
/// the UMEM's pages at `XDP_UMEM_REG` and lets go of them only when the last socket using them
/// is closed, so it never writes into memory that was unmapped; and user space reaches the
/// chunks only through a live [`Umem`], which the `Arc` keeps mapped while any holder (this
/// socket, the AF_XDP transmit path) remains.
pub struct Xsk {
    pub socket: XdpSocket,
    pub umem: Arc<Umem>,
    spares: Vec<u64>,
}

impl Xsk {
    /// Opens a socket on queue `queue` of `iface`, keeps `spares` chunks back for the sender
    /// and gives every other chunk to the kernel.
    pub fn open(iface: &str, queue: u32, spares: usize) -> anyhow::Result<Self> {
        let ifindex = CString::new(iface)
            // SAFETY: valid C string.
            .map_or(0, |name| unsafe { libc::if_nametoindex(name.as_ptr()) });
        ensure!(ifindex != 0, "no interface {iface}");
        let umem = Arc::new(Umem::new(CHUNKS).context("allocating the AF_XDP UMEM")?);
        let sizes = RingSizes {
            rx: RING,
            tx: 0,
            fill: RING,
            completion: 64,
        };
        let mut socket = XdpSocket::register(&umem, ifindex, queue, sizes)
            .with_context(|| format!("opening an AF_XDP socket on {iface} queue {queue}"))?;
        let mut chunks: Vec<u64> = umem.all_chunks().collect();
        let spares = chunks.split_off(chunks.len().saturating_sub(spares));
        let fill = socket
            .fill
            .as_mut()
            .context("the socket has no fill ring")?;
        let given = fill.produce(&chunks);
        ensure!(
            given == chunks.len(),
            "fill ring took {given} of {} chunks",
            chunks.len()
        );
        Ok(Self {
            socket,
            umem,
            spares,
        })
    }

    /// The chunks kept back for the sender (once).
    pub fn take_spares(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.spares)
    }

    /// Whether frames larger than a chunk arrive (in several chunks) at all.
    pub fn multi_buffer(&self) -> bool {
        self.socket.multi_buffer
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.socket.fd()
    }
}
