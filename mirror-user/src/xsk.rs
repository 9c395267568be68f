//! The AF_XDP socket on the far end of the mirror veth (copy mode: veth has no zero-copy).
use std::num::NonZeroU32;

use anyhow::{Context as _, anyhow};
use xsk_rs::{
    FillQueue, FrameDesc, RxQueue, Socket, Umem,
    config::{BindFlags, FrameSize, LibxdpFlags, QueueSize, SocketConfig, UmemConfig},
};

/// Frames in the UMEM; all of them sit in the fill ring when idle.
const FRAMES: u32 = 4096;
/// One page per frame: the largest copy ([`mirror_common::MAX_FRAME`] plus tag) fits.
const FRAME_SIZE: u32 = 4096;

pub struct Xsk {
    pub umem: Umem,
    pub rx: RxQueue,
    pub fill: FillQueue,
}

impl Xsk {
    /// Opens a socket on queue `queue` of `iface` and gives every frame to the kernel.
    pub fn open(iface: &str, queue: u32) -> anyhow::Result<Self> {
        let ring = QueueSize::new(FRAMES).map_err(|e| anyhow!("{e}"))?;
        let umem_config = UmemConfig::builder()
            .frame_size(FrameSize::new(FRAME_SIZE).map_err(|e| anyhow!("{e}"))?)
            .fill_queue_size(ring)
            .comp_queue_size(QueueSize::new(64).map_err(|e| anyhow!("{e}"))?)
            .build()
            .context("UMEM configuration")?;
        let frames = NonZeroU32::new(FRAMES).context("zero frames")?;
        let (umem, descs) =
            Umem::new(umem_config, frames, false).context("allocating the AF_XDP UMEM")?;
        let socket_config = SocketConfig::builder()
            .rx_queue_size(ring)
            .tx_queue_size(QueueSize::new(64).map_err(|e| anyhow!("{e}"))?)
            // The agent loads its own XDP program with aya; libxdp must not load one.
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .bind_flags(BindFlags::XDP_COPY)
            .build();
        let name = iface
            .parse()
            .map_err(|e| anyhow!("interface name {iface}: {e:?}"))?;
        // SAFETY: the UMEM outlives the socket: both live in the returned `Xsk`, and the rings
        // are dropped (field order) before the UMEM.
        let (_tx, rx, fill_comp) = unsafe { Socket::new(socket_config, &umem, &name, queue) }
            .with_context(|| format!("opening an AF_XDP socket on {iface} queue {queue}"))?;
        let (mut fill, _comp) = fill_comp.context("AF_XDP socket came without a fill ring")?;
        // SAFETY: the descriptors are this UMEM's own frames, none in use.
        let given = unsafe { fill.produce(&descs) };
        anyhow::ensure!(
            given == descs.len(),
            "fill ring took {given} of {} frames",
            descs.len()
        );
        Ok(Self { umem, rx, fill })
    }

    /// Descriptors for one batch, to be reused by the caller.
    pub fn batch(size: usize) -> Vec<FrameDesc> {
        vec![FrameDesc::default(); size]
    }
}
