//! TC classifiers on the mirrored interfaces: copy each packet into the mirror veth pair.
use aya_ebpf::{
    bindings::TC_ACT_UNSPEC,
    helpers::{
        bpf_ktime_get_ns,
        generated::{
            bpf_get_prandom_u32, bpf_get_smp_processor_id, bpf_get_socket_cookie,
            bpf_skb_load_bytes,
        },
    },
    macros::{classifier, map},
    maps::RingBuf,
    programs::TcContext,
};
use mirror_common::{
    CUT_MAX, Config, Cut, Direction, KernelCounter, RING_FRAME, RING_SUPER, RING_SUPER_SMALL,
    TAG_TRUNCATED, Tag, mark_for,
};

use crate::{
    config::CONFIG,
    counters::{count, count_by},
    filter::FILTERS,
};

/// Copies cut to the snap length and whole copies of small frames ([`Cut`]), one ring buffer
/// per capture thread of the agent (`Config::workers` of them in use), which sets their sizes
/// at load time. A ring per thread, not one for all: a ring buffer has one reader.
#[map]
static CUTS: RingBuf = RingBuf::with_byte_size(4096, 0);
#[map]
static CUTS_1: RingBuf = RingBuf::with_byte_size(4096, 0);
#[map]
static CUTS_2: RingBuf = RingBuf::with_byte_size(4096, 0);
#[map]
static CUTS_3: RingBuf = RingBuf::with_byte_size(4096, 0);
#[map]
static CUTS_4: RingBuf = RingBuf::with_byte_size(4096, 0);
#[map]
static CUTS_5: RingBuf = RingBuf::with_byte_size(4096, 0);
#[map]
static CUTS_6: RingBuf = RingBuf::with_byte_size(4096, 0);
#[map]
static CUTS_7: RingBuf = RingBuf::with_byte_size(4096, 0);

/// The ring buffer of the capture thread that serves this CPU.
#[inline(always)]
fn ring_of_this_cpu(config: &Config) -> &'static RingBuf {
    // SAFETY: no preconditions.
    let cpu = unsafe { bpf_get_smp_processor_id() };
    match cpu % config.workers.max(1) {
        1 => &CUTS_1,
        2 => &CUTS_2,
        3 => &CUTS_3,
        4 => &CUTS_4,
        5 => &CUTS_5,
        6 => &CUTS_6,
        7 => &CUTS_7,
        _ => &CUTS,
    }
}

#[classifier]
pub fn mirror_ingress(ctx: TcContext) -> i32 {
    select(&ctx, Direction::Ingress)
}

#[classifier]
pub fn mirror_egress(ctx: TcContext) -> i32 {
    select(&ctx, Direction::Egress)
}

/// Where the kernel's `--filter` sends an ingress packet it keeps.
#[classifier]
pub fn mirror_ingress_selected(ctx: TcContext) -> i32 {
    count(KernelCounter::FilterKept);
    clone(&ctx, Direction::Ingress, true)
}

/// Where the kernel's `--filter` sends an egress packet it keeps.
#[classifier]
pub fn mirror_egress_selected(ctx: TcContext) -> i32 {
    count(KernelCounter::FilterKept);
    clone(&ctx, Direction::Egress, true)
}

/// Whether the packet was sent by one of the agent's sockets. Only packets the host sends carry
/// a socket, so the cookie is 0 (no match) for everything else.
#[inline(always)]
fn is_own_socket(ctx: &TcContext, config: &Config) -> bool {
    // SAFETY: plain helper call on the program's own context.
    let cookie = unsafe { bpf_get_socket_cookie(ctx.skb.skb.cast()) };
    cookie != 0 && config.own_sockets.contains(&cookie)
}

/// Leaves out the agent's own traffic, then runs `--filter` if the kernel has it: the filter
/// tail-calls `*_selected` for a packet it keeps and ends the run for one it leaves out, so the
/// clone below runs only when there is no kernel filter. A VLAN tag held out of band
/// (`skb->vlan_tci`) is not in the bytes the filter reads: such packets are cloned unselected
/// and user space filters them once the tagger has put the tag back into the frame.
///
/// Always lets the original go on to whatever runs next (`TC_ACT_UNSPEC` is TCX's "next"): the
/// mirror never decides the fate of the traffic it watches.
#[inline(always)]
fn select(ctx: &TcContext, direction: Direction) -> i32 {
    let Some(config) = CONFIG.get(0) else {
        return TC_ACT_UNSPEC;
    };
    // SAFETY: the context pointer is valid for the whole program run.
    let (mark, vlan_present) = unsafe {
        let skb = &*ctx.skb.skb;
        (skb.mark, skb.vlan_present)
    };
    if config.mirror_ifindex == 0 {
        return TC_ACT_UNSPEC;
    }
    if mark == config.agent_mark || is_own_socket(ctx, config) {
        count(KernelCounter::OwnTraffic);
        return TC_ACT_UNSPEC;
    }
    if vlan_present == 0 {
        // SAFETY: the helper either does not return (the filter runs) or fails (empty slot).
        unsafe { FILTERS.tail_call(ctx, direction as u32) };
    }
    clone(ctx, direction, false)
}

/// Samples, then clones into the mirror veth with the mark that tells the tagger where the
/// copy comes from (and whether the kernel's filter selected it).
#[inline(always)]
fn clone(ctx: &TcContext, direction: Direction, selected: bool) -> i32 {
    let Some(config) = CONFIG.get(0) else {
        return TC_ACT_UNSPEC;
    };
    // SAFETY: the context pointer is valid for the whole program run.
    let (mark, ifindex, gso_size, gso_segs) = unsafe {
        let skb = &*ctx.skb.skb;
        (skb.mark, skb.ifindex, skb.gso_size, skb.gso_segs)
    };
    if config.mirror_ifindex == 0 {
        return TC_ACT_UNSPEC;
    }
    // A GSO packet is cut into MTU-sized frames when it leaves the mirror veth, and with a snap
    // length every copy is cut to it before it crosses (the tagging program).
    let cut = config.snaplen > 0 && config.snaplen <= config.max_frame;
    if config.sample > 1 {
        // 1 in N of the packets on the wire: a GSO super-frame carries `gso_segs` of them.
        // Whole, it becomes that many copies, so it is kept 1 time in N like any packet; cut
        // to a snap length it becomes one copy standing for all of them, so it is kept with
        // the chance that any of them would be (segs in N, at most always).
        let weight = if cut && gso_size != 0 {
            gso_segs.max(1)
        } else {
            1
        };
        // SAFETY: no preconditions.
        if unsafe { bpf_get_prandom_u32() } % config.sample >= weight {
            count(KernelCounter::SampledOut);
            return TC_ACT_UNSPEC;
        }
    }
    let gso = (gso_size, gso_segs);
    if ring_copy(
        ctx,
        config,
        cut,
        gso,
        mark_for(ifindex, direction, selected),
    ) {
        return TC_ACT_UNSPEC;
    }
    if gso_size == 0 && !cut && ctx.len() > config.max_frame {
        count(KernelCounter::TooBig);
        return TC_ACT_UNSPEC;
    }
    // The clone inherits the mark; the original gets its own back before anyone else sees it.
    ctx.set_mark(mark_for(ifindex, direction, selected));
    let cloned = ctx.clone_redirect(config.mirror_ifindex, 0);
    ctx.set_mark(mark);
    count(match cloned {
        Ok(()) => KernelCounter::Cloned,
        Err(_) => KernelCounter::CloneFailed,
    });
    TC_ACT_UNSPEC
}

/// Writes the copy into the `CUTS` ring buffer instead of cloning it, where the agent asked
/// for that and it fits a record: a copy cut to the snap length (`cut`), a whole frame that is
/// not a GSO super-frame, or a whole TCP super-frame (the agent cuts it into its segments).
/// Other super-frames are clones: the kernel cuts them into MTU-sized frames as they cross the
/// mirror veth. Returns whether the copy is done (written, or lost and counted).
#[inline(always)]
fn ring_copy(ctx: &TcContext, config: &Config, cut: bool, gso: (u32, u32), mark: u32) -> bool {
    let (gso_size, gso_segs) = gso;
    let whole = ctx.len();
    let (len, segment) = if cut && config.cut_ring != 0 {
        // SAFETY: the context pointer is valid for the whole program run.
        let vlan_present = unsafe { (*ctx.skb.skb).vlan_present } != 0;
        // The agent puts an out-of-band VLAN tag back into the frame: leave room for it within
        // the snap length.
        let room = if vlan_present { 4 } else { 0 };
        (whole.min(config.snaplen.saturating_sub(room)), 0)
    } else if !cut && config.ring_copies != 0 && gso_size == 0 {
        (whole, 0)
    } else if !cut && config.ring_copies != 0 && gso_size <= 0xffff && is_plain_tcp(ctx) {
        (whole, gso_size as u16)
    } else {
        return false;
    };
    if len == 0 {
        return true;
    }
    // A lost super-frame is all of its segments lost.
    let lost = if segment != 0 { gso_segs.max(1) } else { 1 };
    let copy = (len, whole, segment, lost);
    let ring = ring_of_this_cpu(config);
    match len as usize {
        0..=CUT_MAX => write_copy::<CUT_MAX>(ctx, ring, copy, mark),
        0..=RING_FRAME => write_copy::<RING_FRAME>(ctx, ring, copy, mark),
        _ if segment == 0 => return false,
        0..=RING_SUPER_SMALL => write_copy::<RING_SUPER_SMALL>(ctx, ring, copy, mark),
        0..=RING_SUPER => write_copy::<RING_SUPER>(ctx, ring, copy, mark),
        _ => return false,
    }
    true
}

/// Whether the frame is Ethernet + IPv4 or IPv6 (no extension header) + TCP: the super-frames
/// user space can cut into segments as the kernel's TCP segmentation does.
#[inline(always)]
fn is_plain_tcp(ctx: &TcContext) -> bool {
    const TCP: u8 = 6;
    match ctx.load::<u16>(12).map(u16::from_be) {
        Ok(0x0800) => ctx.load::<u8>(14 + 9) == Ok(TCP),
        Ok(0x86dd) => ctx.load::<u8>(14 + 6) == Ok(TCP),
        _ => false,
    }
}

/// Writes the first `len` (1..=N) of the packet's `whole` bytes, with its tag and the segment
/// size of a super-frame, into a record of `N` bytes of `ring` (`N` a power of two); a full ring
/// counts `lost` copies.
#[inline(always)]
fn write_copy<const N: usize>(
    ctx: &TcContext,
    ring: &RingBuf,
    copy: (u32, u32, u16, u32),
    mark: u32,
) {
    let (len, whole, segment, lost) = copy;
    // The same value, in a form whose bounds the verifier sees: 1..=N.
    let len = ((len.wrapping_sub(1)) & (N as u32 - 1)) + 1;
    // SAFETY: no preconditions.
    let now = unsafe { bpf_ktime_get_ns() };
    let Some(mut tag) = Tag::from_mark(mark, now) else {
        return;
    };
    if whole > len {
        tag.flags |= TAG_TRUNCATED;
    }
    let Some(mut entry) = ring.reserve::<Cut<N>>(0) else {
        count_by(KernelCounter::CutRingFull, u64::from(lost));
        return;
    };
    let cut = entry.as_mut_ptr();
    // SAFETY: the context pointer is valid for the whole program run; `cut` points to a
    // reserved record of the ring buffer, ours until submitted or discarded.
    let loaded = unsafe {
        let skb = &*ctx.skb.skb;
        (*cut).tag = tag;
        (*cut).len = len;
        (*cut).gso_size = segment;
        (*cut).has_vlan = u16::from(skb.vlan_present != 0);
        (*cut).vlan_proto = skb.vlan_proto as u16;
        (*cut).vlan_tci = skb.vlan_tci as u16;
        bpf_skb_load_bytes(ctx.skb.skb.cast(), 0, (*cut).data.as_mut_ptr().cast(), len)
    };
    if loaded == 0 {
        entry.submit(0);
        count(KernelCounter::CutCopied);
    } else {
        entry.discard(0);
        count(KernelCounter::CloneFailed);
    }
}
