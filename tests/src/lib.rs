//! Test worlds in network namespaces for the mirror's privileged integration tests.
//!
//! Everything a test creates (namespaces, interfaces, processes, capture files) is owned by a
//! guard and removed on drop, also when an assertion fails. All traffic stays inside namespaces
//! the world creates, on addresses in 198.18.0.0/15 (and, for IPv6 underlays, unique-local
//! fd00:198:18::/64 inside the world's own namespaces).

use std::io::{self, Write as _};

pub mod agent;
pub mod attachments;
pub mod bpftool;
pub mod caps;
pub mod capture;
pub mod cni_pod;
pub mod image;
pub mod iperf;
pub mod kernel_mirror;
pub mod kube_api;
pub mod link_types;
pub mod listeners;
pub mod metrics;
pub mod netflow_collector;
pub mod netns;
pub mod nfdump;
pub mod ping_sizes;
pub mod pod;
pub mod proc;
pub mod prometheus;
pub mod replay;
pub mod scratch;
pub mod seccomp;
pub mod tcp_payload;
pub mod tshark;
pub mod tunnel;
pub mod udp_flood;
pub mod under_test;
pub mod world;

pub use agent::{Agent, AgentArgs, existing_mirror_bin, mirror_bin};
pub use capture::{Capture, Direction, Record, diff_frames, read_pcap, read_records};
pub use kernel_mirror::KernelMirror;
pub use metrics::Metrics;
pub use netns::{LinkStats, Netns};
pub use proc::{Background, Signal};
pub use under_test::{MirrorKind, MirrorUnderTest};
pub use world::{World, WorldConfig};

/// Whether this process runs as root (effective uid 0).
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Prints `text` where it is seen even when the test passes: straight to the process's stderr,
/// past the harness, which captures `println!`/`eprintln!` of passing tests. For skips and for
/// results worth reading every time (throughput).
pub fn report(text: &str) {
    let _ = writeln!(io::stderr().lock(), "{text}");
}

/// For privileged tests: `true` (after [`report`]ing why) when the test must be skipped because
/// this process is not root. Skip for nothing else.
///
/// ```no_run
/// fn vxlan_ping() -> anyhow::Result<()> {
///     if mirror_tests::skip_unless_root("vxlan_ping") {
///         return Ok(());
///     }
///     // ... build a World, start a mirror, check captures ...
///     Ok(())
/// }
/// ```
pub fn skip_unless_root(test: &str) -> bool {
    if is_root() {
        return false;
    }
    report(&format!(
        "{test}: skipped: needs root for network namespaces"
    ));
    true
}
