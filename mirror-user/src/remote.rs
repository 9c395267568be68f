//! Where copies go: a remote tunnel endpoint, its tunnel, and what the kernel's routes say
//! about it. A `--remote` is a [`RemoteArg`](crate::output::args::RemoteArg) as given, a
//! [`Remote`] once resolved, and the sender's [`RemoteEncap`](crate::send::RemoteEncap) with its
//! headers and counters.
use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket},
    os::fd::AsFd as _,
};

use crate::tunnel::Tunnel;

/// A remote with its tunnel and what the kernel's routes say about it.
pub struct Remote {
    pub addr: SocketAddr,
    pub tunnel: Tunnel,
    pub route: Route,
}

impl Remote {
    /// The `remote` label: `IP:PORT` for VxLAN, `IP` for the GRE family (no ports).
    pub fn label(&self) -> String {
        match self.tunnel {
            Tunnel::Vxlan { .. } => self.addr.to_string(),
            _ => self.addr.ip().to_string(),
        }
    }
}

/// What the routing table says about the way to a remote.
#[derive(Clone, Copy, Debug)]
pub struct Route {
    /// The source address the kernel would pick.
    pub source: IpAddr,
    /// The path MTU the kernel knows (the outgoing interface's MTU unless PMTU says less).
    pub mtu: u32,
}

/// Asks the kernel for the route to `dst`: a connected UDP socket sends nothing but learns both
/// the source address and the path MTU.
pub fn route_to(dst: SocketAddr) -> io::Result<Route> {
    let (unspecified, level, option) = match dst {
        SocketAddr::V4(_) => (
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            libc::IPPROTO_IP,
            libc::IP_MTU,
        ),
        SocketAddr::V6(_) => (
            IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            libc::IPPROTO_IPV6,
            libc::IPV6_MTU,
        ),
    };
    let socket = UdpSocket::bind((unspecified, 0))?;
    socket.connect(dst)?;
    let source = socket.local_addr()?.ip();
    let mtu: libc::c_int = crate::sockopt::get(socket.as_fd(), level, option)?;
    Ok(Route {
        source,
        mtu: mtu.unsigned_abs(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_route() {
        let route = route_to("127.0.0.1:4789".parse().unwrap()).unwrap();
        assert_eq!(route.source, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert!(route.mtu >= 1280);
        if let Ok(route) = route_to("[::1]:4789".parse().unwrap()) {
            assert_eq!(route.source, IpAddr::V6(Ipv6Addr::LOCALHOST));
        }
    }
}
