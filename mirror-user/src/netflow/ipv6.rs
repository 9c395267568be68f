//! IPv6 flows: NetFlow v5 records cannot hold their addresses, so they are only counted, as
//! flows keyed like v5 keys IPv4 ones (addresses, protocol, ports, interfaces) and ended by the
//! same inactive timeout.

use std::collections::HashMap;

use etherparse::{LaxNetSlice, LaxSlicedPacket, TransportSlice};

use super::Interfaces;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    src: [u8; 16],
    dst: [u8; 16],
    proto: u8,
    src_port: u16,
    dst_port: u16,
    input: u16,
    output: u16,
}

/// The IPv6 flows seen lately; bounded like the v5 cache.
#[derive(Debug)]
pub struct Ipv6Flows {
    last_seen: HashMap<Key, u64, foldhash::fast::RandomState>,
    inactive_ms: u64,
    max_flows: usize,
    /// Flows counted so far (a flow that goes quiet past the timeout counts again).
    flows: u64,
}

impl Ipv6Flows {
    pub fn new(inactive_ms: u64, max_flows: usize) -> Self {
        Self {
            last_seen: HashMap::default(),
            inactive_ms,
            max_flows,
            flows: 0,
        }
    }

    pub fn flows(&self) -> u64 {
        self.flows
    }

    /// Counts an IPv6 frame seen at `now_ms` (sysUptime); frames that are not IPv6 are ignored.
    pub fn observe(&mut self, frame: &[u8], interfaces: Interfaces, now_ms: u64) {
        let Ok(packet) = LaxSlicedPacket::from_ethernet(frame) else {
            return;
        };
        let Some(LaxNetSlice::Ipv6(ip)) = &packet.net else {
            return;
        };
        let header = ip.header();
        let (src_port, dst_port) = match &packet.transport {
            Some(TransportSlice::Tcp(tcp)) => (tcp.source_port(), tcp.destination_port()),
            Some(TransportSlice::Udp(udp)) => (udp.source_port(), udp.destination_port()),
            _ => (0, 0),
        };
        let key = Key {
            src: header.source(),
            dst: header.destination(),
            proto: ip.payload().ip_number.0,
            src_port,
            dst_port,
            input: interfaces.input,
            output: interfaces.output,
        };
        let inactive = self.inactive_ms;
        if let Some(last) = self.last_seen.get_mut(&key) {
            if now_ms.saturating_sub(*last) >= inactive {
                self.flows += 1;
            }
            *last = now_ms;
        } else {
            self.flows += 1;
            if self.last_seen.len() < self.max_flows {
                self.last_seen.insert(key, now_ms);
            }
        }
    }

    /// Forgets the flows quiet for the inactive timeout; call about once a second.
    pub fn expire(&mut self, now_ms: u64) {
        let inactive = self.inactive_ms;
        self.last_seen
            .retain(|_, last| now_ms.saturating_sub(*last) < inactive);
    }
}

#[cfg(test)]
mod tests {
    use etherparse::PacketBuilder;

    use super::*;

    const A: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const B: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    const IN: Interfaces = Interfaces {
        input: 2,
        output: 0,
    };

    fn udp(src: [u8; 16], dst: [u8; 16], sport: u16, dport: u16) -> Vec<u8> {
        let builder = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv6(src, dst, 64)
            .udp(sport, dport);
        let mut frame = Vec::new();
        builder.write(&mut frame, b"x").unwrap();
        frame
    }

    #[test]
    fn counts_distinct_flows_once() {
        let mut flows = Ipv6Flows::new(15_000, 100);
        for ms in 0..10 {
            flows.observe(&udp(A, B, 1000, 53), IN, ms);
        }
        flows.observe(&udp(B, A, 53, 1000), IN, 10);
        flows.observe(&udp(A, B, 1001, 53), IN, 11);
        assert_eq!(flows.flows(), 3);
    }

    #[test]
    fn a_flow_quiet_past_the_timeout_counts_again() {
        let mut flows = Ipv6Flows::new(1_000, 100);
        flows.observe(&udp(A, B, 1000, 53), IN, 0);
        flows.observe(&udp(A, B, 1000, 53), IN, 999);
        flows.expire(1_500);
        flows.observe(&udp(A, B, 1000, 53), IN, 2_500);
        assert_eq!(flows.flows(), 2);
        flows.expire(10_000);
        assert!(flows.last_seen.is_empty());
    }

    #[test]
    fn bounded_and_never_panics() {
        let mut flows = Ipv6Flows::new(1_000, 2);
        for port in 0..10 {
            flows.observe(&udp(A, B, port, 53), IN, 0);
        }
        assert_eq!((flows.flows(), flows.last_seen.len()), (10, 2));
        let frame = udp(A, B, 1, 2);
        for len in 0..frame.len() {
            flows.observe(&frame[..len], IN, 0);
        }
    }
}
