//! The few `bpf(2)` commands the agent issues itself: aya loads programs from an ELF object,
//! but the `--filter` program is generated at run time as raw instructions.

use std::{
    io,
    os::fd::{AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd},
};

use super::cbpf::Insn;

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_TEST_RUN: libc::c_long = 10;

pub const PROG_TYPE_SCHED_CLS: u32 = 3;
pub const MAP_TYPE_PROG_ARRAY: u32 = 3;
pub const MAP_TYPE_PERCPU_ARRAY: u32 = 6;

/// The verifier's log is kept this long when a load fails, for the error message.
const LOG_SIZE: usize = 64 * 1024;

#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct MapCreate {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    map_flags: u32,
}

#[repr(C)]
#[derive(Default)]
struct MapElem {
    map_fd: u32,
    pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

#[repr(C)]
#[derive(Default)]
struct TestRun {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
}

/// # Safety
/// `attr` must be the attribute struct of `cmd`, and every pointer in it valid for the call.
unsafe fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: per the caller's promise; the size passed is the struct's own.
    let ret =
        unsafe { libc::syscall(libc::SYS_bpf, cmd, std::ptr::from_mut(attr), size_of::<T>()) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ret)
}

fn owned(fd: libc::c_long) -> io::Result<OwnedFd> {
    let fd = i32::try_from(fd).map_err(|_| io::Error::other("bpf(2) returned a bad fd"))?;
    // SAFETY: the kernel just returned this descriptor to us and nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Loads a TC (`SCHED_CLS`) program. A verifier refusal carries the end of the verifier's log.
pub fn load_tc_program(name: &str, insns: &[Insn]) -> io::Result<OwnedFd> {
    let raw: Vec<u64> = insns
        .iter()
        .map(|i| {
            u64::from(i.code)
                | u64::from(i.regs) << 8
                | u64::from(i.off.cast_unsigned()) << 16
                | u64::from(i.imm.cast_unsigned()) << 32
        })
        .collect();
    let license = c"GPL";
    let mut log = vec![0_u8; LOG_SIZE];
    let mut attr = ProgLoad {
        prog_type: PROG_TYPE_SCHED_CLS,
        insn_cnt: u32::try_from(raw.len()).map_err(|_| io::Error::other("program too long"))?,
        insns: raw.as_ptr() as u64,
        license: license.as_ptr() as u64,
        ..ProgLoad::default()
    };
    for (dst, src) in attr.prog_name.iter_mut().zip(name.bytes().take(15)) {
        *dst = src;
    }
    // SAFETY: `raw` and `license` outlive the call.
    match unsafe { bpf(BPF_PROG_LOAD, &mut attr) } {
        Ok(fd) => owned(fd),
        Err(first) => {
            // Again with the log: only a failed load pays for it.
            attr.log_level = 1;
            attr.log_size = LOG_SIZE as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
            // SAFETY: as above; `log` outlives the call.
            if let Ok(fd) = unsafe { bpf(BPF_PROG_LOAD, &mut attr) } {
                owned(fd)
            } else {
                let text = String::from_utf8_lossy(&log);
                let text = text.trim_end_matches('\0').trim_end();
                let tail: Vec<&str> = text.lines().rev().take(3).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                Err(io::Error::new(
                    first.kind(),
                    format!("{first}; verifier: {}", tail.join(" / ")),
                ))
            }
        }
    }
}

/// Creates an array map of 4-byte keys (tests build their own program arrays and counters).
pub fn create_array(map_type: u32, value_size: u32, max_entries: u32) -> io::Result<OwnedFd> {
    let mut attr = MapCreate {
        map_type,
        key_size: 4,
        value_size,
        max_entries,
        map_flags: 0,
    };
    // SAFETY: the attribute holds no pointers.
    owned(unsafe { bpf(BPF_MAP_CREATE, &mut attr) }?)
}

/// Puts `program` into slot `index` of a program array.
pub fn set_program(array: BorrowedFd<'_>, index: u32, program: BorrowedFd<'_>) -> io::Result<()> {
    let value = u32::try_from(program.as_raw_fd()).map_err(|_| io::Error::other("bad fd"))?;
    let mut attr = MapElem {
        map_fd: u32::try_from(array.as_raw_fd()).map_err(|_| io::Error::other("bad fd"))?,
        key: std::ptr::from_ref(&index) as u64,
        value: std::ptr::from_ref(&value) as u64,
        ..MapElem::default()
    };
    // SAFETY: key and value outlive the call.
    unsafe { bpf(BPF_MAP_UPDATE_ELEM, &mut attr) }.map(drop)
}

/// Runs a TC program once on `frame` (an Ethernet frame) and returns its return value.
pub fn test_run(program: BorrowedFd<'_>, frame: &[u8]) -> io::Result<i32> {
    let mut attr = TestRun {
        prog_fd: u32::try_from(program.as_raw_fd()).map_err(|_| io::Error::other("bad fd"))?,
        data_size_in: u32::try_from(frame.len()).map_err(|_| io::Error::other("frame too big"))?,
        data_in: frame.as_ptr() as u64,
        repeat: 1,
        ..TestRun::default()
    };
    // SAFETY: `frame` outlives the call; no output buffer is given.
    unsafe { bpf(BPF_PROG_TEST_RUN, &mut attr) }?;
    Ok(attr.retval.cast_signed())
}
