//! What a receiver counted, and its summary line.

use core::fmt;

use super::decap::Reject;

/// Packets received, frames written and packets dropped by reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Packets the socket delivered.
    pub received: u64,
    /// Inner frames written to the pcap file.
    pub written: u64,
    dropped: [u64; Reject::ALL.len()],
}

impl Stats {
    /// Count a packet dropped for `reason`.
    pub fn add_drop(&mut self, reason: Reject) {
        if let Some(count) = self.dropped.get_mut(reason.index()) {
            *count += 1;
        }
    }

    /// Packets dropped for `reason`.
    pub fn dropped(&self, reason: Reject) -> u64 {
        self.dropped.get(reason.index()).copied().unwrap_or(0)
    }

    /// Packets dropped for any reason.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }
}

/// The summary line, e.g. `received 5 packets, wrote 3 frames, dropped 2 (bad header 1,
/// wrong VNI 1)`; reasons without drops are left out.
impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "received {} packets, wrote {} frames, dropped {}",
            self.received,
            self.written,
            self.dropped_total()
        )?;
        let mut reasons = Reject::ALL
            .iter()
            .map(|&reason| (reason, self.dropped(reason)))
            .filter(|&(_, count)| count > 0)
            .peekable();
        if reasons.peek().is_none() {
            return Ok(());
        }
        f.write_str(" (")?;
        for (i, (reason, count)) in reasons.enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{reason} {count}")?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_have_their_own_slots() {
        for (i, reason) in Reject::ALL.iter().enumerate() {
            assert_eq!(reason.index(), i);
        }
    }

    #[test]
    fn summary_line() {
        let mut stats = Stats::default();
        assert_eq!(
            stats.to_string(),
            "received 0 packets, wrote 0 frames, dropped 0"
        );
        stats.received = 9;
        stats.written = 4;
        stats.add_drop(Reject::WrongKey);
        stats.add_drop(Reject::BadHeader);
        stats.add_drop(Reject::BadHeader);
        stats.add_drop(Reject::FilteredSource);
        stats.add_drop(Reject::WrongProtocol);
        assert_eq!(stats.dropped(Reject::BadHeader), 2);
        assert_eq!(stats.dropped(Reject::WrongVni), 0);
        assert_eq!(stats.dropped_total(), 5);
        assert_eq!(
            stats.to_string(),
            "received 9 packets, wrote 4 frames, dropped 5 (wrong tunnel/protocol 1, \
             bad header 2, filtered source 1, wrong GRE key 1)"
        );
    }
}
