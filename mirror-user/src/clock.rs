//! The wall clock, and turning the kernel programs' `bpf_ktime_get_ns` (CLOCK_MONOTONIC) into
//! Unix time.

/// The offset between the monotonic clock and the wall clock, taken once: copies are stamped
/// by the kernel, converted by the agent.
#[derive(Clone, Copy, Debug)]
pub struct MonotonicToUnix {
    offset_ns: i128,
}

impl MonotonicToUnix {
    pub fn now() -> Self {
        Self {
            offset_ns: i128::from(read(libc::CLOCK_REALTIME))
                - i128::from(read(libc::CLOCK_MONOTONIC)),
        }
    }

    /// Unix-epoch nanoseconds of a monotonic timestamp.
    pub fn unix_ns(self, monotonic_ns: u64) -> u64 {
        u64::try_from(i128::from(monotonic_ns) + self.offset_ns).unwrap_or(0)
    }
}

/// The wall clock, Unix-epoch nanoseconds.
pub fn unix_now_ns() -> u64 {
    read(libc::CLOCK_REALTIME)
}

fn read(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid clock id and timespec.
    unsafe { libc::clock_gettime(clock, &raw mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_now_to_now() {
        let clock = MonotonicToUnix::now();
        let unix = clock.unix_ns(read(libc::CLOCK_MONOTONIC));
        let wall = read(libc::CLOCK_REALTIME);
        assert!(wall.abs_diff(unix) < 1_000_000_000, "{wall} vs {unix}");
    }
}
