//! Where copies go: a remote tunnel endpoint, and what the kernel's routes say about it.
use std::{
    fmt, io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket},
    os::fd::AsFd as _,
    str::FromStr,
};

/// `IP` or `IP:PORT` (`[IPv6]:PORT` for IPv6) as given on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Remote {
    pub ip: IpAddr,
    pub port: Option<u16>,
}

impl FromStr for Remote {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Self { ip, port: None });
        }
        if let Some(ip) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']'))
            && let Ok(ip) = ip.parse::<Ipv6Addr>()
        {
            return Ok(Self {
                ip: IpAddr::V6(ip),
                port: None,
            });
        }
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(Self {
                ip: addr.ip(),
                port: Some(addr.port()),
            });
        }
        Err(format!("'{s}' is not an IP address or IP:PORT"))
    }
}

impl fmt::Display for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.ip, self.port) {
            (ip, None) => write!(f, "{ip}"),
            (IpAddr::V4(ip), Some(port)) => write!(f, "{ip}:{port}"),
            (IpAddr::V6(ip), Some(port)) => write!(f, "[{ip}]:{port}"),
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
    fn parses_forms() {
        assert_eq!(
            "198.18.0.2".parse(),
            Ok(Remote {
                ip: [198, 18, 0, 2].into(),
                port: None
            })
        );
        assert_eq!(
            "198.18.0.2:8472".parse(),
            Ok(Remote {
                ip: [198, 18, 0, 2].into(),
                port: Some(8472)
            })
        );
        let v6: Remote = "[2001:db8::1]:4789".parse().unwrap();
        assert_eq!(
            (v6.port, v6.to_string()),
            (Some(4789), "[2001:db8::1]:4789".into())
        );
        assert_eq!("[2001:db8::1]".parse::<Remote>().map(|r| r.port), Ok(None));
        assert!("[198.18.0.2]".parse::<Remote>().is_err());
        assert!("198.18.0.256".parse::<Remote>().is_err());
        assert!("198.18.0.2:".parse::<Remote>().is_err());
    }

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
