//! Which interface the kernel's routes send a remote's packets through: what packet-agent's
//! `-B`/`bind_device` (`SO_BINDTODEVICE`) would have forced, checked instead of forced.

use std::{
    ffi::CStr,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use futures::TryStreamExt as _;
use rtnetlink::{RouteMessageBuilder, packet_route::route::RouteMessage};

/// Answers "through which interface does the route to `ip` leave?".
pub trait Routes {
    /// The name of the outgoing interface, or why there is none.
    fn device_towards(&self, ip: IpAddr) -> Result<String, String>;
}

/// The routes of this thread's network namespace, asked over netlink (`ip route get`).
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelRoutes;

impl Routes for KernelRoutes {
    fn device_towards(&self, ip: IpAddr) -> Result<String, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(|e| format!("starting a tokio runtime: {e}"))?;
        let ifindex = runtime.block_on(route_oif(ip))?;
        interface_name(ifindex)
    }
}

async fn route_oif(ip: IpAddr) -> Result<u32, String> {
    let (connection, handle, _) =
        rtnetlink::new_connection().map_err(|e| format!("opening a netlink socket: {e}"))?;
    let task = tokio::spawn(connection);
    let query: RouteMessage = match ip {
        IpAddr::V4(ip) => RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(ip, 32)
            .build(),
        IpAddr::V6(ip) => RouteMessageBuilder::<Ipv6Addr>::new()
            .destination_prefix(ip, 128)
            .build(),
    };
    let answer = handle.route().get(query).execute().try_next().await;
    task.abort();
    let route = answer
        .map_err(|e| format!("no route to {ip}: {e}"))?
        .ok_or_else(|| format!("no route to {ip}"))?;
    crate::kernel::route::oif(&route)
        .ok_or_else(|| format!("the route to {ip} names no outgoing interface"))
}

fn interface_name(ifindex: u32) -> Result<String, String> {
    let mut name = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `name` has the IF_NAMESIZE bytes if_indextoname(3) may write.
    let found = unsafe { libc::if_indextoname(ifindex, name.as_mut_ptr()) };
    if found.is_null() {
        return Err(format!("no interface has index {ifindex}"));
    }
    // SAFETY: on success the buffer holds a NUL-terminated name.
    let name = unsafe { CStr::from_ptr(name.as_ptr()) };
    Ok(name.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_routes_through_lo() {
        let device = KernelRoutes.device_towards(IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(device.as_deref(), Ok("lo"));
    }
}
