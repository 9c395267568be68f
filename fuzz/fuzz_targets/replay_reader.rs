//! `mirror replay`'s capture file reader: the input is a whole pcap or pcapng file (so the
//! seeds are real capture files).
//!
//! Every packet is read to the end or to the first error. Checked: the file read in one piece
//! and read a few bytes at a time give the same packets, frames and error; packets come in file
//! order from inside the file; a frame is the captured bytes with at most an Ethernet header
//! made up in front; an error leaves the frame buffer alone, is the file's fault, points inside
//! the file and is one line.
#![no_main]

use std::io::{self, Read};

use libfuzzer_sys::fuzz_target;
use mirror::replay::reader::{Error, Packet, Reader};

/// An Ethernet header, the most a link-layer conversion adds.
const ETHERNET_HEADER_LEN: u64 = 14;

fuzz_target!(|data: &[u8]| {
    let whole = read_all(data);
    // The chunk size comes from the length, so that the input stays a plain capture file.
    let chunk = 1 + data.len() % 13;
    let trickled = read_all(Trickle { data, chunk });
    assert_eq!(whole, trickled, "read whole vs. {chunk} bytes at a time");

    let end = data.len() as u64;
    let mut previous: Option<u64> = None;
    for (packet, frame) in &whole.packets {
        assert!(
            previous.is_none_or(|p| p < packet.offset),
            "packets out of order"
        );
        previous = Some(packet.offset);
        assert!(packet.offset + u64::from(packet.captured_len) <= end);
        assert!(frame.len() as u64 <= u64::from(packet.captured_len) + ETHERNET_HEADER_LEN);
        assert_eq!(
            packet.truncated(),
            packet.captured_len < packet.original_len
        );
    }
    assert!(whole.offset <= end);
    if let Some((message, offset)) = &whole.error {
        assert!(
            !message.contains('\n'),
            "a message of several lines: {message}"
        );
        assert!(offset.is_some_and(|o| o <= end), "{message} at {offset:?}");
    }
});

/// Everything a reader gives for one file, comparable.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    packets: Vec<(Packet, Vec<u8>)>,
    /// The message and offset of the error that ended the reading, if one did.
    error: Option<(String, Option<u64>)>,
    malformed: u64,
    offset: u64,
}

fn read_all(file: impl Read) -> Outcome {
    let mut reader = match Reader::new(file) {
        Ok(reader) => reader,
        Err(error) => {
            return Outcome {
                packets: Vec::new(),
                error: Some(checked(&error)),
                malformed: 0,
                offset: 0,
            };
        }
    };
    let mut packets = Vec::new();
    let mut out = vec![0x5a];
    let error = loop {
        let before = reader.offset();
        match reader.next_into(&mut out) {
            Ok(Some(packet)) => {
                assert!(packet.offset >= before && reader.offset() > packet.offset);
                assert_eq!(out[0], 0x5a, "the frame replaced the buffer's content");
                packets.push((packet, out.split_off(1)));
            }
            Ok(None) => break None,
            Err(error) => {
                assert_eq!(out, [0x5a], "an error changed the frame buffer");
                assert!(error.offset().is_none_or(|o| o >= before));
                break Some(checked(&error));
            }
        }
    };
    Outcome {
        packets,
        error,
        malformed: reader.malformed(),
        offset: reader.offset(),
    }
}

/// The message and offset of an error, which must be the file's fault: the file is in memory.
fn checked(error: &Error) -> (String, Option<u64>) {
    assert!(error.is_input(), "{error}");
    (error.to_string(), error.offset())
}

/// A file that gives at most `chunk` bytes per read.
struct Trickle<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.chunk.min(buf.len()).min(self.data.len());
        let (head, rest) = self.data.split_at(n);
        buf[..n].copy_from_slice(head);
        self.data = rest;
        Ok(n)
    }
}
