//! How copies leave: from AF_XDP on the uplink (the default), or through the raw socket where
//! AF_XDP cannot serve a remote; and the next hops both need.
pub mod next_hop;
pub mod uplink;
pub mod xdp;
