//! The kernel features `mirror run` cannot do without, checked before anything is created: a
//! kernel (or a sandbox) without one gets one line naming it, not an error from deep inside a
//! library. TCX (Linux 6.6) is checked where the programs are loaded.
use std::io;

use anyhow::bail;

/// `bpf(2)` and `AF_XDP` sockets.
pub fn check() -> anyhow::Result<()> {
    bpf_syscall()?;
    af_xdp()
}

/// Creates and closes a one-slot array map.
fn bpf_syscall() -> anyhow::Result<()> {
    const BPF_MAP_CREATE: libc::c_long = 0;
    const BPF_MAP_TYPE_ARRAY: u32 = 2;
    // `union bpf_attr` for BPF_MAP_CREATE: type, key size, value size, entries; the rest zero.
    let mut attr = [0_u32; 16];
    attr[..4].copy_from_slice(&[BPF_MAP_TYPE_ARRAY, 4, 4, 1]);
    // SAFETY: bpf(2) reads `size_of_val(&attr)` bytes of a live, zero-padded attribute.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_CREATE,
            attr.as_mut_ptr(),
            size_of_val(&attr),
        )
    };
    if fd >= 0 {
        // SAFETY: the map's fd is ours; the map goes with it.
        unsafe { libc::close(fd as libc::c_int) };
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::ENOSYS) => bail!(
            "this kernel has no bpf(2) system call (CONFIG_BPF_SYSCALL): the mirror's programs cannot be loaded"
        ),
        Some(libc::EPERM) => {
            bail!("bpf(2) refused ({err}): run as root or with CAP_BPF and CAP_NET_ADMIN")
        }
        // Anything else shows where the programs are loaded, with more context.
        _ => Ok(()),
    }
}

/// Opens and closes an AF_XDP socket.
fn af_xdp() -> anyhow::Result<()> {
    let Err(err) = crate::sockopt::socket(libc::AF_XDP, libc::SOCK_RAW, 0) else {
        return Ok(());
    };
    match err.raw_os_error() {
        Some(libc::EAFNOSUPPORT) => bail!(
            "this kernel has no AF_XDP sockets (CONFIG_XDP_SOCKETS): the copies cannot reach the agent"
        ),
        Some(libc::EPERM) => {
            bail!("AF_XDP socket refused ({err}): run as root or with CAP_NET_RAW")
        }
        _ => Ok(()),
    }
}
