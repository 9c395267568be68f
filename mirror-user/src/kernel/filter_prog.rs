//! `--filter` loaded into the kernel: the classic program libpcap compiled, translated
//! ([`super::cbpf`]) once per direction, and put where the classifiers tail-call it.

use std::os::fd::{AsFd as _, BorrowedFd, OwnedFd};

use mirror_common::{Direction, KernelCounter, filter_slot};

use super::{
    bpf_syscall,
    cbpf::{self, Target},
};
use crate::filter::Filter;

/// The loaded filter programs; the `FILTERS` array holds its own references to them.
#[derive(Debug)]
pub struct KernelFilter {
    _programs: Vec<OwnedFd>,
}

/// Translates and loads `filter` for both directions and installs it in `filters`. On error
/// nothing is installed and the message says why (user space then filters every copy).
pub fn install(
    filter: &Filter,
    filters: BorrowedFd<'_>,
    counters: BorrowedFd<'_>,
) -> Result<KernelFilter, String> {
    let mut programs = Vec::with_capacity(2);
    for direction in [Direction::Ingress, Direction::Egress] {
        programs.push(load(filter, direction, filters, counters)?);
    }
    for (direction, program) in [Direction::Ingress, Direction::Egress]
        .iter()
        .zip(&programs)
    {
        bpf_syscall::set_program(filters, *direction as u32, program.as_fd())
            .map_err(|e| format!("installing the filter program: {e}"))?;
    }
    Ok(KernelFilter {
        _programs: programs,
    })
}

/// One direction's program: a kept packet continues at that direction's `*_selected` slot.
pub fn load(
    filter: &Filter,
    direction: Direction,
    filters: BorrowedFd<'_>,
    counters: BorrowedFd<'_>,
) -> Result<OwnedFd, String> {
    use std::os::fd::AsRawFd as _;
    let target = Target {
        filters_fd: filters.as_raw_fd(),
        selected_slot: filter_slot::SELECTED + direction as u32,
        counters_fd: counters.as_raw_fd(),
        left_out_counter: KernelCounter::FilterLeftOut as u32,
    };
    let insns = cbpf::translate(&filter.classic(), target).map_err(|e| e.to_string())?;
    bpf_syscall::load_tc_program("mirror_filter", &insns)
        .map_err(|e| format!("the kernel refused the translated filter: {e}"))
}
