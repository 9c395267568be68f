//! TC egress on the near end of the mirror veth pair: it only ever sees the clones, so it may
//! change them. It prepends the [`Tag`] that tells the agent where the copy comes from, and puts
//! a VLAN tag that travels out of band (`skb->vlan_tci`: the receive path moves in-band tags
//! there before TC ingress, and veth transmits them that way) back into the frame, where XDP and
//! the remote analyser can see it.
use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_SHOT},
    helpers::{
        bpf_ktime_get_ns,
        generated::{bpf_skb_change_head, bpf_skb_change_tail, bpf_skb_vlan_pop},
    },
    macros::classifier,
    programs::TcContext,
};
use mirror_common::{KernelCounter, TAG_LEN, TAG_TRUNCATED, Tag};

use crate::{config::CONFIG, counters::count};

/// Destination and source MAC: what goes before a VLAN tag.
const MACS: usize = 12;
/// An 802.1Q/802.1ad tag: TPID and TCI.
const VLAN_LEN: usize = 4;

#[classifier]
pub fn mirror_tag(ctx: TcContext) -> i32 {
    match try_tag(&ctx) {
        Ok(()) => TC_ACT_OK,
        Err(counter) => {
            count(counter);
            TC_ACT_SHOT
        }
    }
}

#[inline(always)]
fn try_tag(ctx: &TcContext) -> Result<(), KernelCounter> {
    // SAFETY: the context pointer is valid for the whole program run.
    let (mark, vlan_present, vlan_proto, vlan_tci) = unsafe {
        let skb = &*ctx.skb.skb;
        (skb.mark, skb.vlan_present, skb.vlan_proto, skb.vlan_tci)
    };
    // SAFETY: no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    // Anything else leaving this device (the kernel's own packets) is not a copy.
    let mut tag = Tag::from_mark(mark, now).ok_or(KernelCounter::Untagged)?;
    let vlan = if vlan_present != 0 {
        // SAFETY: plain helper call on the program's own context; clears the out-of-band tag.
        if unsafe { bpf_skb_vlan_pop(ctx.skb.skb) } != 0 {
            return Err(KernelCounter::TagFailed);
        }
        VLAN_LEN
    } else {
        0
    };
    // SAFETY: plain helper call on the program's own context.
    if unsafe { bpf_skb_change_head(ctx.skb.skb, (TAG_LEN + vlan) as u32, 0) } != 0 {
        return Err(KernelCounter::TagFailed);
    }
    if vlan != 0 {
        // [tag][VLAN][MACs][type..] becomes [tag][MACs][VLAN][type..]. `vlan_proto` holds the
        // network-order TPID as it is in memory; `vlan_tci` is in host order.
        let macs: [u8; MACS] = ctx
            .load(TAG_LEN + VLAN_LEN)
            .map_err(|_| KernelCounter::TagFailed)?;
        let header = [vlan_proto as u16, (vlan_tci as u16).to_be()];
        ctx.store(TAG_LEN, &macs, 0)
            .map_err(|_| KernelCounter::TagFailed)?;
        ctx.store(TAG_LEN + MACS, &header, 0)
            .map_err(|_| KernelCounter::TagFailed)?;
    }
    // `--snaplen`: the copy is cut here, before it crosses the pair, so a GSO super-frame
    // becomes one short copy instead of many full-size segments (the helper drops the GSO
    // marking).
    let snaplen = CONFIG.get(0).map_or(0, |c| c.snaplen);
    if snaplen > 0 {
        let keep = TAG_LEN as u32 + snaplen;
        if ctx.len() > keep {
            // SAFETY: plain helper call on the program's own context.
            if unsafe { bpf_skb_change_tail(ctx.skb.skb, keep, 0) } != 0 {
                return Err(KernelCounter::TagFailed);
            }
            tag.flags |= TAG_TRUNCATED;
        }
    }
    ctx.store(0, &tag, 0).map_err(|_| KernelCounter::TagFailed)
}
