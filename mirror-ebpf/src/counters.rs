//! Per-CPU event counters, read and summed by the agent for its metrics.
use aya_ebpf::{macros::map, maps::PerCpuArray};
use mirror_common::{KERNEL_COUNTERS, KernelCounter};

#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(KERNEL_COUNTERS, 0);

#[inline(always)]
pub fn count(counter: KernelCounter) {
    count_by(counter, 1);
}

#[inline(always)]
pub fn count_by(counter: KernelCounter, n: u64) {
    if let Some(slot) = COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
        unsafe { *slot += n };
    }
}
