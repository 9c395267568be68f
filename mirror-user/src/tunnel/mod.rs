//! Outer headers of the tunnels that carry the copies to remote analysers.

pub mod vxlan;
