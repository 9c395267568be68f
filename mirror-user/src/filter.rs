//! `--filter EXPR`: which copies to keep, in the pcap-filter(7) language users already know from
//! tcpdump and packet-agent. libpcap compiles the expression (so its meaning is exactly tcpdump's)
//! into classic BPF, which runs on each inner Ethernet frame before it is sent or metered.

use std::fmt;

use pcap::{BpfProgram, Capture, Linktype};

use crate::kernel::cbpf::Classic;

/// A compiled capture filter.
pub struct Filter {
    program: BpfProgram,
    expression: String,
}

/// An expression libpcap could not compile.
#[derive(Debug, thiserror::Error)]
#[error("--filter '{expression}': {reason}")]
pub struct FilterError {
    expression: String,
    reason: String,
}

impl Filter {
    /// Compiles `expression` for Ethernet frames. A blank expression matches everything, as
    /// with tcpdump, and yields `None`: no filter runs at all.
    pub fn compile(expression: &str) -> Result<Option<Self>, FilterError> {
        if expression.trim().is_empty() {
            return Ok(None);
        }
        let error = |reason: String| FilterError {
            expression: expression.to_owned(),
            reason,
        };
        let dead = Capture::dead(Linktype::ETHERNET).map_err(|e| error(e.to_string()))?;
        let program = dead
            .compile(expression, true)
            .map_err(|e| error(compile_reason(&e)))?;
        Ok(Some(Self {
            program,
            expression: expression.to_owned(),
        }))
    }

    /// Whether the filter keeps `frame` (an Ethernet frame).
    pub fn matches(&self, frame: &[u8]) -> bool {
        self.program.filter(frame)
    }

    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The classic BPF program libpcap compiled, for the kernel path
    /// ([`crate::kernel::filter_prog`]).
    pub fn classic(&self) -> Vec<Classic> {
        // The crate keeps `struct bpf_insn` private but prints its four fields in order.
        self.program
            .get_instructions()
            .iter()
            .map(|insn| {
                let text = insn.to_string();
                let mut fields = text
                    .split(' ')
                    .map(|f| f.parse::<u32>().unwrap_or(u32::MAX));
                let mut next = || fields.next().unwrap_or(u32::MAX);
                Classic {
                    code: u16::try_from(next()).unwrap_or(u16::MAX),
                    jt: u8::try_from(next()).unwrap_or(u8::MAX),
                    jf: u8::try_from(next()).unwrap_or(u8::MAX),
                    k: next(),
                }
            })
            .collect()
    }
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Filter")
            .field("expression", &self.expression)
            .finish_non_exhaustive()
    }
}

/// libpcap's message without the crate's wrapping.
fn compile_reason(error: &pcap::Error) -> String {
    match error {
        pcap::Error::PcapError(message) => message.clone(),
        pcap::Error::MalformedError(_) => "not valid UTF-8".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ethernet + IPv4 + UDP (or TCP) from `src` to `dst`, ports 1000 -> `port`.
    fn frame(protocol: u8, src: [u8; 4], dst: [u8; 4], port: u16) -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
        let l4_len: u16 = if protocol == 6 { 20 } else { 8 };
        f.extend_from_slice(&[
            0x45,
            0,
            0,
            (20 + l4_len) as u8,
            0,
            1,
            0,
            0,
            64,
            protocol,
            0,
            0,
        ]);
        f.extend_from_slice(&src);
        f.extend_from_slice(&dst);
        f.extend_from_slice(&1000_u16.to_be_bytes());
        f.extend_from_slice(&port.to_be_bytes());
        f.resize(f.len() + usize::from(l4_len) - 4, 0);
        if protocol == 6 {
            // data offset 5 words
            f[14 + 20 + 12] = 0x50;
        }
        f
    }

    #[test]
    fn keeps_what_tcpdump_would() {
        let filter = Filter::compile("udp and dst port 53 and not host 198.18.0.9")
            .unwrap()
            .unwrap();
        assert!(filter.matches(&frame(17, [198, 18, 0, 1], [198, 18, 0, 2], 53)));
        assert!(!filter.matches(&frame(17, [198, 18, 0, 1], [198, 18, 0, 2], 54)));
        assert!(!filter.matches(&frame(6, [198, 18, 0, 1], [198, 18, 0, 2], 53)));
        assert!(!filter.matches(&frame(17, [198, 18, 0, 9], [198, 18, 0, 2], 53)));
        assert_eq!(
            filter.expression(),
            "udp and dst port 53 and not host 198.18.0.9"
        );
    }

    #[test]
    fn truncated_and_empty_frames_do_not_match_and_do_not_crash() {
        let filter = Filter::compile("tcp port 80").unwrap().unwrap();
        let full = frame(6, [198, 18, 0, 1], [198, 18, 0, 2], 80);
        assert!(filter.matches(&full));
        for len in 0..full.len() - 20 {
            assert!(!filter.matches(&full[..len]), "{len} bytes");
        }
    }

    #[test]
    fn classic_program_is_libpcaps() {
        let filter = Filter::compile("ip").unwrap().unwrap();
        // ldh [12]; jeq #0x800 jt 0 jf 1; ret #262144; ret #0
        let classic = filter.classic();
        assert_eq!(classic.len(), 4, "{classic:?}");
        assert_eq!((classic[0].code, classic[0].k), (0x28, 12));
        assert_eq!(
            (classic[1].code, classic[1].jt, classic[1].jf),
            (0x15, 0, 1)
        );
        assert_eq!(classic[1].k, 0x800);
        assert_eq!((classic[3].code, classic[3].k), (0x06, 0));
        assert_ne!(classic[2].k, 0);
    }

    #[test]
    fn blank_is_no_filter() {
        assert!(Filter::compile("").unwrap().is_none());
        assert!(Filter::compile("  ").unwrap().is_none());
    }

    #[test]
    fn bad_expressions_say_why() {
        let err = Filter::compile("tcp port eighty").unwrap_err().to_string();
        assert!(err.starts_with("--filter 'tcp port eighty': "), "{err}");
        assert!(err.contains("eighty"), "{err}");
        let err = Filter::compile("udp and").unwrap_err().to_string();
        assert!(err.contains("syntax error"), "{err}");
        assert!(Filter::compile("a\0b").is_err());
    }
}
