//! Standing in for a kernel that lacks a feature: a seccomp filter, installed in a command before
//! it executes and inherited by everything it runs, makes one system call fail the way such a
//! kernel fails it. Every other call goes through.

use std::{io, os::unix::process::CommandExt as _, process::Command};

/// The feature the filter takes away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missing {
    /// `bpf(2)` fails with `ENOSYS`, as on a kernel without `CONFIG_BPF_SYSCALL`.
    BpfSyscall,
    /// `socket(AF_XDP, ...)` fails with `EAFNOSUPPORT`, as without `CONFIG_XDP_SOCKETS`.
    AfXdp,
}

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xc000_003e;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xc000_00b7;

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x15;
const BPF_RET_K: u16 = 0x06;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
/// Offsets in `struct seccomp_data`: syscall number, architecture, low half of the first argument.
const NR: u32 = 0;
const ARCH: u32 = 4;
const ARG0_LOW: u32 = 16;

fn op(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The filter program for `missing`.
fn program(missing: Missing) -> Vec<libc::sock_filter> {
    let allow = op(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW);
    let (nr, errno) = match missing {
        Missing::BpfSyscall => (libc::SYS_bpf, libc::ENOSYS),
        Missing::AfXdp => (libc::SYS_socket, libc::EAFNOSUPPORT),
    };
    let deny = op(BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | errno.unsigned_abs());
    let mut filter = vec![
        op(BPF_LD_W_ABS, 0, 0, ARCH),
        // Another architecture's calls (none here) pass.
        op(BPF_JEQ_K, 1, 0, AUDIT_ARCH),
        allow,
        op(BPF_LD_W_ABS, 0, 0, NR),
        op(BPF_JEQ_K, 1, 0, u32::try_from(nr).unwrap_or(u32::MAX)),
        allow,
    ];
    if missing == Missing::AfXdp {
        filter.extend([
            op(BPF_LD_W_ABS, 0, 0, ARG0_LOW),
            op(BPF_JEQ_K, 1, 0, libc::AF_XDP.unsigned_abs()),
            allow,
        ]);
    }
    filter.push(deny);
    filter
}

/// Makes `cmd` (and what it executes) run as if the kernel lacked `missing`.
pub fn deny(cmd: &mut Command, missing: Missing) {
    let filter = program(missing);
    // SAFETY: the closure only makes two prctl calls on memory it owns (no allocation, no lock),
    // which is what may run between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let prog = libc::sock_fprog {
                len: u16::try_from(filter.len()).unwrap_or(u16::MAX),
                filter: filter.as_ptr().cast_mut(),
            };
            // Root may install a filter without no_new_privs, but setting it keeps this usable
            // from an unprivileged test run too (the command then fails for its own reasons).
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &raw const prog,
                ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_end_in_a_denial() {
        for missing in [Missing::BpfSyscall, Missing::AfXdp] {
            let filter = program(missing);
            let last = filter.last().unwrap();
            assert_eq!(last.code, BPF_RET_K);
            assert_eq!(last.k & 0xffff_0000, SECCOMP_RET_ERRNO);
            // Every jump lands inside the program.
            for (at, insn) in filter.iter().enumerate() {
                if insn.code == BPF_JEQ_K {
                    assert!(at + 1 + usize::from(insn.jt.max(insn.jf)) < filter.len());
                }
            }
        }
    }
}
