//! The agent's plumbing into the kernel's data path: the eBPF programs, the mirror veth pair,
//! the AF_XDP sockets with their rings and the UMEM they share, and the route and neighbour
//! tables read over rtnetlink.
pub mod bpf_syscall;
pub mod cbpf;
#[cfg(test)]
mod filter_diff;
pub mod filter_prog;
pub mod napi;
pub mod programs;
pub mod ring;
pub mod route;
pub mod umem;
pub mod veth;
pub mod xdp_socket;
pub mod xsk;
