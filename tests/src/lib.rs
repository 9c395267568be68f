//! Test worlds in network namespaces for the mirror's privileged integration tests.
//!
//! Everything a test creates (namespaces, interfaces, processes, capture files) is owned by a
//! guard and removed on drop, also when an assertion fails. All traffic stays inside namespaces
//! the world creates, on addresses in 198.18.0.0/15.

pub mod agent;
pub mod attachments;
pub mod capture;
pub mod iperf;
pub mod kernel_mirror;
pub mod metrics;
pub mod netns;
pub mod proc;
pub mod scratch;
pub mod tcp_payload;
pub mod under_test;
pub mod world;

pub use agent::{Agent, AgentArgs, existing_mirror_bin, mirror_bin};
pub use capture::{Capture, Direction, diff_frames, read_pcap};
pub use kernel_mirror::KernelMirror;
pub use metrics::Metrics;
pub use netns::Netns;
pub use proc::{Background, Signal};
pub use under_test::{MirrorKind, MirrorUnderTest};
pub use world::{World, WorldConfig};

/// Whether this process runs as root (effective uid 0).
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// For privileged tests: `true` (after printing why) when the test must be skipped because this
/// process is not root. Skip for nothing else.
///
/// ```ignore
/// if mirror_tests::skip_unless_root("vxlan_ping") { return Ok(()); }
/// ```
pub fn skip_unless_root(test: &str) -> bool {
    if is_root() {
        return false;
    }
    println!("{test}: skipped: needs root for network namespaces");
    eprintln!("{test}: skipped: needs root for network namespaces");
    true
}
