//! The agent's plumbing into the kernel's data path: AF_XDP sockets, their rings and the UMEM
//! they share.
pub mod ring;
pub mod umem;
pub mod xdp_socket;
