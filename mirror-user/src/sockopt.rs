//! Sockets of any family, and the socket options the standard library has no call for
//! (`SO_MARK`, buffer sizes, `SO_ERROR`, ...).
use std::{
    io,
    os::fd::{AsRawFd, BorrowedFd, OwnedFd},
};

use socket2::{Domain, Protocol, Socket, Type};

/// `socket(domain, kind | SOCK_CLOEXEC, protocol)`, owned.
pub fn socket(
    domain: libc::c_int,
    kind: libc::c_int,
    protocol: libc::c_int,
) -> io::Result<OwnedFd> {
    Socket::new(
        Domain::from(domain),
        Type::from(kind),
        Some(Protocol::from(protocol)),
    )
    .map(OwnedFd::from)
}

/// `setsockopt(fd, level, name, value)`, with the size of `T` as the option length.
pub fn set<T>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    let len = libc::socklen_t::try_from(size_of::<T>())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: valid fd, and `value` points to a live `T` of the length given.
    let rc =
        unsafe { libc::setsockopt(fd.as_raw_fd(), level, name, (&raw const *value).cast(), len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `getsockopt(fd, level, name)` into a `T`, for options whose value is a plain integer.
pub fn get<T: Copy + Default>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<T> {
    let mut value = T::default();
    get_into(fd, level, name, &mut value)?;
    Ok(value)
}

/// `getsockopt(fd, level, name)` into `value`, a plain C struct or integer of the option's
/// size (the kernel writes at most that many bytes).
pub fn get_into<T: Copy>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: &mut T,
) -> io::Result<()> {
    let mut len = libc::socklen_t::try_from(size_of::<T>())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: valid fd, and `value` is a live `T` of the length given.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw mut *value).cast(),
            &raw mut len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Marks every packet of the socket with `mark` (needs `CAP_NET_ADMIN`).
pub fn set_mark(fd: BorrowedFd<'_>, mark: u32) -> io::Result<()> {
    set(fd, libc::SOL_SOCKET, libc::SO_MARK, &mark)
}
