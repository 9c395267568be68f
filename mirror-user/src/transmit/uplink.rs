//! A TX-only AF_XDP socket on one egress device, sharing the capture socket's UMEM. It has no
//! RX ring and the agent loads no XDP program on the device, so none of the node's own traffic
//! can be diverted into it.
use std::{
    io,
    os::fd::BorrowedFd,
    time::{Duration, Instant},
};

use crate::kernel::{
    ring::Producer,
    umem::Umem,
    xdp_socket::{Kick, RingSizes, XdpSocket},
};

/// TX ring entries: more than the copies of a few batches.
const TX_RING: u32 = 2048;
/// Completion ring entries: every chunk of the UMEM could be in flight on one uplink.
const COMPLETION_RING: u32 = 4096;
/// The kernel insists on a fill ring for a socket on another device; nothing is received.
const FILL_RING: u32 = 2;
const SIZES: RingSizes = RingSizes {
    rx: 0,
    tx: TX_RING,
    fill: FILL_RING,
    completion: COMPLETION_RING,
};
/// `sendto` calls per flush at most, when the kernel keeps asking to be called again.
const MAX_KICKS: usize = 64;

/// How many transmit queues device `ifindex` has (the queue ids an AF_XDP socket may bind
/// there); `None` if the device or its sysfs entry is gone.
pub fn tx_queues(ifindex: u32) -> Option<usize> {
    let mut name = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: the buffer holds IF_NAMESIZE bytes, as the call requires.
    let named = unsafe { libc::if_indextoname(ifindex, name.as_mut_ptr()) };
    if named.is_null() {
        return None;
    }
    // SAFETY: if_indextoname wrote a NUL-terminated name.
    let name = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }
        .to_str()
        .ok()?;
    let queues = std::fs::read_dir(format!("/sys/class/net/{name}/queues")).ok()?;
    let tx = queues
        .flatten()
        .filter(|q| q.file_name().to_string_lossy().starts_with("tx-"))
        .count();
    Some(tx)
}

/// How long a bind is retried while the queue is still busy.
const BUSY_FOR: Duration = Duration::from_millis(500);

/// Retries `bind` while it fails with `EBUSY`, for at most [`BUSY_FOR`]. The kernel frees a
/// closed socket's queue from a work queue (`xp_put_pool` -> `xp_release_deferred`), so a bind
/// right after another process let go of the queue can find it still taken for a moment.
fn while_busy<T>(mut bind: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let until = Instant::now() + BUSY_FOR;
    loop {
        match bind() {
            Err(err) if err.raw_os_error() == Some(libc::EBUSY) && Instant::now() < until => {
                std::thread::sleep(Duration::from_millis(5));
            }
            done => return done,
        }
    }
}

pub struct Uplink {
    pub ifindex: u32,
    socket: XdpSocket,
}

impl Uplink {
    /// Binds queue `queue` of `ifindex`, sharing the UMEM of the socket `capture`.
    pub fn open(capture: BorrowedFd<'_>, ifindex: u32, queue: u32) -> io::Result<Self> {
        let socket = while_busy(|| XdpSocket::share(capture, ifindex, queue, SIZES))?;
        // One sendto for a whole flush where the kernel allows it (6.17+).
        let _ = socket.set_tx_budget(TX_RING);
        Ok(Self { ifindex, socket })
    }

    /// Binds queue 0 of `ifindex` and registers `umem` there (a replay, which has no capture
    /// socket).
    pub fn register(umem: &Umem, ifindex: u32) -> io::Result<Self> {
        let socket = while_busy(|| XdpSocket::register(umem, ifindex, 0, SIZES))?;
        let _ = socket.set_tx_budget(TX_RING);
        Ok(Self { ifindex, socket })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.socket.fd()
    }

    /// Puts one packet (`len` bytes at UMEM address `addr`) on the TX ring; `false` when full.
    pub fn queue(&mut self, addr: u64, len: u32) -> bool {
        let Some(tx) = &mut self.socket.tx else {
            return false;
        };
        let desc = libc::xdp_desc {
            addr,
            len,
            options: 0,
        };
        tx.produce(&[desc]) == 1
    }

    /// Puts all of `descs` on the TX ring, or none of them if there is not room for all.
    pub fn queue_all(&mut self, descs: &[libc::xdp_desc]) -> bool {
        let Some(tx) = &mut self.socket.tx else {
            return false;
        };
        let want = descs.len() as u32;
        tx.free(want) >= want && tx.produce(descs) == descs.len()
    }

    /// Has the kernel send what is on the TX ring; the UMEM address of each packet the device
    /// dropped goes to `dropped`.
    pub fn kick(&mut self, dropped: &mut Vec<u64>) -> io::Result<()> {
        for _ in 0..MAX_KICKS {
            let pending = self.socket.tx.as_mut().map_or(0, Producer::outstanding);
            if pending == 0 {
                return Ok(());
            }
            match self.socket.kick_tx()? {
                Kick::Done => return Ok(()),
                Kick::Again => {}
                Kick::Dropped => {
                    if let Some(desc) = self.socket.tx.as_ref().and_then(Producer::last_consumed) {
                        dropped.push(desc.addr);
                    }
                }
            }
        }
        Ok(())
    }

    /// Moves the addresses of the packets the kernel is done with into `out`.
    pub fn completed(&mut self, out: &mut Vec<u64>) {
        let Some(completion) = &mut self.socket.completion else {
            return;
        };
        let mut batch = [0_u64; 64];
        loop {
            let got = completion.consume(&mut batch);
            out.extend_from_slice(batch.get(..got).unwrap_or_default());
            if got < batch.len() {
                return;
            }
        }
    }

    /// The socket's pending error, if any (ENETDOWN once the device is gone).
    pub fn error(&self) -> Option<io::Error> {
        self.socket.error()
    }
}
