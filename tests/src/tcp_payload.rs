//! How much TCP payload of one connection direction a capture holds, according to tshark.

use std::path::Path;

use anyhow::{Context as _, Result};

use crate::proc::{command, run_stdout};

/// The payload of one direction of a TCP connection, as seen in a capture.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TcpPayload {
    /// Segments (with or without payload) of that direction.
    pub segments: u64,
    /// Segments with payload.
    pub data_segments: u64,
    /// Σ payload length of every segment, retransmissions and duplicates included.
    pub total_len: u64,
    /// Σ payload length of the segments tshark flags as retransmissions.
    pub retransmitted_len: u64,
    /// Payload bytes from the first byte after the SYN up to the first hole (relative sequence
    /// numbers): the stream is complete when this equals the bytes sent.
    pub contiguous_len: u64,
    /// Highest relative `seq + len - 1`: the last payload byte seen.
    pub highest_byte: u64,
}

/// Reads `capture` with tshark and sums the payload sent from `src` port `sport` to `dst`.
///
/// Works on truncated frames (small snaplen): tshark takes `tcp.len` from the IP header.
pub fn tcp_payload(capture: &Path, src: &str, sport: u16, dst: &str) -> Result<TcpPayload> {
    let filter = format!("ip.src=={src} && ip.dst=={dst} && tcp.srcport=={sport}");
    let path = capture.to_string_lossy();
    let text = run_stdout(&mut command(
        "tshark",
        [
            "-n",
            "-r",
            &path,
            "-o",
            "tcp.relative_sequence_numbers:TRUE",
            "-Y",
            &filter,
            "-T",
            "fields",
            "-E",
            "separator=,",
            "-e",
            "tcp.seq",
            "-e",
            "tcp.len",
            "-e",
            "tcp.analysis.retransmission",
        ],
    ))
    .with_context(|| {
        format!(
            "reading TCP segments of {src}:{sport} -> {dst} from {}",
            capture.display()
        )
    })?;
    parse_fields(&text)
}

fn parse_fields(text: &str) -> Result<TcpPayload> {
    let mut payload = TcpPayload::default();
    let mut ranges = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let mut fields = line.split(',');
        let seq: u64 = fields
            .next()
            .unwrap_or_default()
            .trim()
            .parse()
            .with_context(|| format!("tcp.seq in `{line}`"))?;
        let len: u64 = fields
            .next()
            .unwrap_or_default()
            .trim()
            .parse()
            .with_context(|| format!("tcp.len in `{line}`"))?;
        let retransmission = fields.next().is_some_and(|f| !f.trim().is_empty());
        payload.segments += 1;
        if len == 0 {
            continue;
        }
        payload.data_segments += 1;
        payload.total_len += len;
        if retransmission {
            payload.retransmitted_len += len;
        }
        payload.highest_byte = payload.highest_byte.max(seq + len - 1);
        ranges.push((seq, seq + len));
    }
    ranges.sort_unstable();
    // Relative sequence number 1 is the first payload byte.
    let mut next = 1;
    for (start, end) in ranges {
        if start > next {
            break;
        }
        next = next.max(end);
    }
    payload.contiguous_len = next - 1;
    Ok(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_and_finds_holes() {
        let text = "0,0,\n1,37,\n38,1448,\n1486,1448,\n38,1448,1\n";
        let p = parse_fields(text).unwrap();
        assert_eq!(p.segments, 5);
        assert_eq!(p.data_segments, 4);
        assert_eq!(p.total_len, 37 + 3 * 1448);
        assert_eq!(p.retransmitted_len, 1448);
        assert_eq!(p.contiguous_len, 37 + 2 * 1448);
        assert_eq!(p.highest_byte, 37 + 2 * 1448);

        let hole = parse_fields("1,100,\n201,100,\n").unwrap();
        assert_eq!(hole.contiguous_len, 100);
        assert_eq!(hole.highest_byte, 300);
    }
}
