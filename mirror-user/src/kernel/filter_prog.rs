//! `--filter` loaded into the kernel: the classic program libpcap compiled, translated
//! ([`super::cbpf`]) once per direction, and put where the classifiers tail-call it.

use std::os::fd::{AsFd as _, BorrowedFd, OwnedFd};

use mirror_common::{Direction, KERNEL_COUNTERS, KernelCounter, filter_slot};

use super::{
    bpf_syscall::{self, MAP_TYPE_PERCPU_ARRAY, MAP_TYPE_PROG_ARRAY},
    cbpf::{self, Insn, TC_NEXT, Target},
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

/// One direction's filter program loaded with maps of its own and a stand-in for
/// `mirror_*_selected`, to be run on frames with `BPF_PROG_TEST_RUN` (the differential test and
/// the fuzz target compare it with libpcap). Needs root.
pub struct TestRun {
    program: OwnedFd,
    _filters: OwnedFd,
    _selected: OwnedFd,
    _counters: OwnedFd,
}

/// What the stand-in for `mirror_*_selected` returns: "the filter kept it".
const KEPT: i32 = 7;

impl TestRun {
    pub fn load(filter: &Filter, direction: Direction) -> Result<Self, String> {
        let io = |what: &str, e: std::io::Error| format!("{what}: {e}");
        let filters = bpf_syscall::create_array(MAP_TYPE_PROG_ARRAY, 4, filter_slot::LEN)
            .map_err(|e| io("creating a program array", e))?;
        let counters = bpf_syscall::create_array(MAP_TYPE_PERCPU_ARRAY, 8, KERNEL_COUNTERS)
            .map_err(|e| io("creating a counter array", e))?;
        let exit_with = |imm: i32| {
            [
                Insn {
                    code: 0xb7, // r0 = imm
                    regs: 0,
                    off: 0,
                    imm,
                },
                Insn {
                    code: 0x95, // exit
                    regs: 0,
                    off: 0,
                    imm: 0,
                },
            ]
        };
        let selected = bpf_syscall::load_tc_program("test_selected", &exit_with(KEPT))
            .map_err(|e| io("loading the stand-in", e))?;
        let slot = filter_slot::SELECTED + direction as u32;
        bpf_syscall::set_program(filters.as_fd(), slot, selected.as_fd())
            .map_err(|e| io("installing the stand-in", e))?;
        let program = load(filter, direction, filters.as_fd(), counters.as_fd())?;
        Ok(Self {
            program,
            _filters: filters,
            _selected: selected,
            _counters: counters,
        })
    }

    /// Whether the program keeps `frame` (an Ethernet frame; the kernel refuses frames shorter
    /// than 14 bytes, and IPv4/IPv6 frames shorter than their fixed header).
    pub fn keeps(&self, frame: &[u8]) -> std::io::Result<bool> {
        match bpf_syscall::test_run(self.program.as_fd(), frame)? {
            KEPT => Ok(true),
            TC_NEXT => Ok(false),
            other => Err(std::io::Error::other(format!(
                "the filter program returned {other}"
            ))),
        }
    }
}
