//! `--filter` in the kernel: the agent translates libpcap's classic BPF into a program of its
//! own and puts it in `FILTERS`; the classifiers tail-call it before cloning. It returns
//! "next" for a packet it leaves out, and tail-calls the direction's `*_selected` program for
//! one it keeps. An empty slot (no filter, or one the kernel path cannot run) falls through.
use aya_ebpf::{macros::map, maps::ProgramArray};
use mirror_common::filter_slot;

#[map]
pub static FILTERS: ProgramArray = ProgramArray::with_max_entries(filter_slot::LEN, 0);
