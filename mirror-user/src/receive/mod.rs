//! `mirror receive`: the other end of the tunnel without a kernel VTEP (the gredump/vxlandump
//! role). Receives VXLAN over a UDP socket, or GRE/ERSPAN over a raw IP protocol 47 socket,
//! decapsulates with [`crate::wire`] and writes the inner Ethernet frames to a pcap or pcapng
//! file.
//!
//! | file | holds |
//! |---|---|
//! | `args.rs` | the options and their checking into a [`Config`] |
//! | `socket.rs` | the UDP or raw socket, receive times, outer IP fragments (the kernel's) |
//! | `decap.rs` | [`decap`]: outer payload to inner frame, or a [`Reject`] |
//! | `timestamp.rs` | the pcap time of a frame (ERSPAN III header times) |
//! | `output.rs` | pcap or pcapng, by the file's extension |
//! | `pcap_out.rs` | the pcap file |
//! | `pcapng_out.rs` | the pcapng file: interfaces per session/VNI/key, directions, comments |
//! | `stats.rs` | counts and the summary line |
//! | `stop.rs` | SIGINT/SIGTERM |

mod args;
/// Public for the fuzz targets, which feed it what a socket could deliver.
#[doc(hidden)]
pub mod decap;
mod output;
mod pcap_out;
mod pcapng_out;
mod socket;
mod stats;
mod stop;
mod timestamp;

#[cfg(test)]
mod end_to_end;

use std::net::{IpAddr, SocketAddr};

use anyhow::Context as _;

pub use self::{
    args::{Config, DEFAULT_VXLAN_PORT, ReceiveArgs},
    decap::{Accept, Decapped, Header, Reject, decap},
    stats::Stats,
    timestamp::frame_time_ns,
};
use self::{output::Output, socket::Listener, stop::StopOnSignal};

/// Room for the largest IP packet (IPv4 delivers its header too) or UDP datagram.
const BUFFER_LEN: usize = 65_536;

const _: () = assert!(BUFFER_LEN <= pcap_out::SNAPLEN as usize);

/// Run `mirror receive` until SIGINT, SIGTERM or `--count` frames, then print the summary.
///
/// Prints `mirror: receiving ...` on stderr once the socket is bound and the pcap file
/// created, and `mirror: received ...` (counts and drops by reason) when it ends cleanly.
pub fn receive(args: &ReceiveArgs) -> anyhow::Result<()> {
    let config = args.config()?;
    let stop = StopOnSignal::install()?;
    let stats = run(&config, &|| stop.requested(), |local| {
        let on = if config.accept.is_udp() {
            local.to_string()
        } else {
            local.ip().to_string()
        };
        tracing::info!(
            "mirror: receiving {} on {on}, writing {}",
            config.accept.name(),
            config.write.display()
        );
    })?;
    tracing::info!("mirror: {stats}");
    Ok(())
}

/// Receive as `config` says until `stop` returns true (checked at least every 100 ms) or
/// `config.count` frames are written; return the counts. `ready` is called with the bound
/// address once packets can arrive.
pub fn run(
    config: &Config,
    stop: &dyn Fn() -> bool,
    ready: impl FnOnce(SocketAddr),
) -> anyhow::Result<Stats> {
    let listener = Listener::bind(config.accept.is_udp(), config.listen)?;
    let mut out = Output::create(&config.write)?;
    ready(listener.local_addr());
    let mut buf = vec![0_u8; BUFFER_LEN];
    let mut stats = Stats::default();
    let mut unflushed = false;
    while !stop() && config.count.is_none_or(|count| stats.written < count) {
        let received = listener
            .recv(&mut buf)
            .with_context(|| format!("receiving on {}", listener.local_addr()))?;
        let Some(datagram) = received else {
            // Idle: let readers of the file see what came so far.
            if unflushed {
                out.flush()?;
                unflushed = false;
            }
            continue;
        };
        stats.received += 1;
        let bytes = buf.get(..datagram.len).unwrap_or_default();
        let packet = Packet {
            source: datagram.source,
            bytes,
            truncated: datagram.truncated,
            ip_header: listener.includes_ip_header(),
        };
        match packet.decap(config) {
            Ok(decapped) => {
                let time = frame_time_ns(&decapped.header, datagram.received_ns);
                out.write(time, &decapped.header, decapped.inner)?;
                stats.written += 1;
                unflushed = true;
            }
            Err(reason) => stats.add_drop(reason),
        }
    }
    out.finish()?;
    Ok(stats)
}

/// A datagram as the socket delivered it.
struct Packet<'a> {
    source: IpAddr,
    bytes: &'a [u8],
    truncated: bool,
    /// IPv4 raw sockets deliver the IP header.
    ip_header: bool,
}

impl<'a> Packet<'a> {
    /// Filter on the source, then decapsulate.
    fn decap(&self, config: &Config) -> Result<Decapped<'a>, Reject> {
        if !config.from.is_empty() && !config.from.contains(&self.source) {
            return Err(Reject::FilteredSource);
        }
        if self.truncated {
            return Err(Reject::BadHeader);
        }
        let payload = if self.ip_header {
            decap::ipv4_payload(self.bytes)?
        } else {
            self.bytes
        };
        let decapped = decap(config.accept, payload)?;
        if let Some(session) = config.session
            && erspan_session(&decapped.header) != Some(session)
        {
            return Err(Reject::WrongSession);
        }
        Ok(decapped)
    }
}

/// The ERSPAN session ID of a Type II or III header.
fn erspan_session(header: &Header) -> Option<u16> {
    match header {
        Header::Erspan2(_, erspan) => Some(erspan.session),
        Header::Erspan3(_, erspan) => Some(erspan.session),
        _ => None,
    }
}
