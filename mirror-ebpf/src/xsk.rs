//! XDP on the far end of the mirror veth pair: every frame goes to the AF_XDP socket of its queue.
//! Loaded with multi-buffer support (`xdp.frags`), so that veth lets the pair carry jumbo frames;
//! the socket receives such a frame in several chunks.
use aya_ebpf::{
    bindings::xdp_action,
    macros::{map, xdp},
    maps::XskMap,
    programs::XdpContext,
};

/// One AF_XDP socket per receive queue of the far end, inserted by the agent.
#[map]
static XSKS: XskMap = XskMap::with_max_entries(64, 0);

#[xdp(frags)]
pub fn mirror_xsk(ctx: XdpContext) -> u32 {
    // SAFETY: the context pointer is valid for the whole program run.
    let queue = unsafe { (*ctx.ctx).rx_queue_index };
    // Nothing else wants these frames: drop them when no socket listens on the queue.
    XSKS.redirect(queue, u64::from(xdp_action::XDP_DROP))
        .unwrap_or(xdp_action::XDP_DROP)
}
