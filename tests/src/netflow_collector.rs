//! A bare NetFlow v5 collector for tests that count what arrives, without nfcapd.

use std::{
    io::ErrorKind,
    net::{Ipv4Addr, UdpSocket},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, ensure};

/// One NetFlow v5 record, the fields tests check.
#[derive(Clone, Copy, Debug)]
pub struct FlowRecord {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub packets: u32,
}

/// Reads NetFlow v5 datagrams from `socket` until none has come for `quiet`, each as its
/// records; every datagram must be version 5 with as many 48-byte records as its header says.
pub fn read_v5(socket: &UdpSocket, quiet: Duration) -> Result<Vec<Vec<FlowRecord>>> {
    socket.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut datagrams = Vec::new();
    let mut buf = vec![0_u8; 65536];
    let mut last = Instant::now();
    while last.elapsed() < quiet {
        let len = match socket.recv(&mut buf) {
            Ok(len) => len,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) => return Err(e).context("reading the collector socket"),
        };
        last = Instant::now();
        let datagram = &buf[..len];
        ensure!(len >= 24, "a {len}-byte NetFlow datagram");
        let version = u16::from_be_bytes([datagram[0], datagram[1]]);
        let count = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
        ensure!(
            version == 5,
            "a NetFlow datagram of version {version}, expected 5"
        );
        ensure!(
            len == 24 + 48 * count,
            "a NetFlow v5 datagram of {len} bytes for {count} records"
        );
        let records = datagram[24..]
            .chunks_exact(48)
            .map(|record| FlowRecord {
                src: Ipv4Addr::new(record[0], record[1], record[2], record[3]),
                dst: Ipv4Addr::new(record[4], record[5], record[6], record[7]),
                packets: u32::from_be_bytes([record[16], record[17], record[18], record[19]]),
                protocol: record[38],
            })
            .collect();
        datagrams.push(records);
    }
    Ok(datagrams)
}
