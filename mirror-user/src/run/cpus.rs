//! `--cpus LIST`: the CPUs of the capture threads, one thread pinned to each.
use std::io;

use mirror_common::MAX_WORKERS;

use crate::UsageError;

/// CPU numbers in the order given, without repeats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuList(pub Vec<usize>);

/// Parses `0-3,6` (ranges and single CPUs, comma-separated).
pub fn parse(s: &str) -> Result<CpuList, String> {
    let bad = || format!("'{s}' is not a CPU list like 0-3,6");
    let mut cpus = Vec::new();
    for part in s.split(',') {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let first: usize = first.trim().parse().map_err(|_| bad())?;
        let last: usize = last.trim().parse().map_err(|_| bad())?;
        if first > last || last >= libc::CPU_SETSIZE as usize {
            return Err(bad());
        }
        for cpu in first..=last {
            if !cpus.contains(&cpu) {
                cpus.push(cpu);
            }
        }
    }
    Ok(CpuList(cpus))
}

/// The CPUs this process may run on (its affinity), in order.
pub fn allowed() -> io::Result<Vec<usize>> {
    // SAFETY: all-zero is an empty CPU set; sched_getaffinity fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is this thread; the set is live and of the size given.
    if unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &raw mut set) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below CPU_SETSIZE.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// The capture threads' CPUs: `--cpus` checked against the process's affinity, or by default
/// every CPU it may run on (the first [`MAX_WORKERS`]).
pub fn choose(given: Option<&CpuList>) -> anyhow::Result<Vec<usize>> {
    let allowed = allowed()?;
    let Some(CpuList(given)) = given else {
        return Ok(allowed.into_iter().take(MAX_WORKERS).collect());
    };
    if given.len() > MAX_WORKERS {
        return Err(UsageError(format!(
            "--cpus: {} CPUs given; the agent runs at most {MAX_WORKERS} capture threads",
            given.len()
        ))
        .into());
    }
    if let Some(cpu) = given.iter().find(|cpu| !allowed.contains(cpu)) {
        return Err(UsageError(format!(
            "--cpus: CPU {cpu} is not one this process may run on ({})",
            list(&allowed)
        ))
        .into());
    }
    Ok(given.clone())
}

/// Pins the calling thread to `cpu`.
pub fn pin(cpu: usize) -> io::Result<()> {
    // SAFETY: all-zero is an empty CPU set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is below CPU_SETSIZE (checked by `parse`, or from `allowed`).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is this thread; the set is live and of the size given.
    if unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `0-3,6` for a list of CPUs.
pub fn list(cpus: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut at = 0;
    while let Some(&first) = cpus.get(at) {
        let mut last = first;
        while cpus.get(at + 1) == Some(&(last + 1)) {
            last += 1;
            at += 1;
        }
        parts.push(if first == last {
            first.to_string()
        } else {
            format!("{first}-{last}")
        });
        at += 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges_and_singles() {
        assert_eq!(parse("0-3,6"), Ok(CpuList(vec![0, 1, 2, 3, 6])));
        assert_eq!(parse("5"), Ok(CpuList(vec![5])));
        assert_eq!(parse("2,1,2"), Ok(CpuList(vec![2, 1])));
        for bad in ["", "a", "3-1", "1-", "-1", "0,,1", "99999"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lists_read_back() {
        assert_eq!(list(&[0, 1, 2, 3, 6]), "0-3,6");
        assert_eq!(list(&[1]), "1");
        assert_eq!(list(&[]), "");
    }

    #[test]
    fn default_is_the_affinity() {
        let allowed = allowed().unwrap();
        assert!(!allowed.is_empty());
        let chosen = choose(None).unwrap();
        assert_eq!(
            chosen,
            allowed
                .iter()
                .copied()
                .take(MAX_WORKERS)
                .collect::<Vec<_>>()
        );
        let too_many = CpuList((0..=MAX_WORKERS).collect());
        assert!(choose(Some(&too_many)).is_err());
        let foreign = CpuList(vec![libc::CPU_SETSIZE as usize - 1]);
        assert!(choose(Some(&foreign)).is_err());
    }
}
