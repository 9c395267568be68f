//! TC egress on the near end of the mirror veth pair: it only ever sees the clones, so it may
//! change them. It prepends the [`Tag`] that tells the agent where the copy comes from.
use aya_ebpf::{
    bindings::{TC_ACT_OK, TC_ACT_SHOT},
    helpers::{bpf_ktime_get_ns, generated::bpf_skb_change_head},
    macros::classifier,
    programs::TcContext,
};
use mirror_common::{KernelCounter, TAG_LEN, Tag};

use crate::counters::count;

#[classifier]
pub fn mirror_tag(ctx: TcContext) -> i32 {
    // SAFETY: the context pointer is valid for the whole program run.
    let mark = unsafe { (*ctx.skb.skb).mark };
    // SAFETY: no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    // Anything else leaving this device (the kernel's own packets) is not a copy.
    let Some(tag) = Tag::from_mark(mark, now) else {
        count(KernelCounter::Untagged);
        return TC_ACT_SHOT;
    };
    // SAFETY: plain helper call on the program's own context.
    if unsafe { bpf_skb_change_head(ctx.skb.skb, TAG_LEN as u32, 0) } != 0
        || ctx.store(0, &tag, 0).is_err()
    {
        count(KernelCounter::TagFailed);
        return TC_ACT_SHOT;
    }
    TC_ACT_OK
}
