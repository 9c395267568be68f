//! Threaded NAPI on the far end of the mirror veth. veth runs the far end's NAPI (and with it
//! the XDP program and the copy into the AF_XDP socket) on the CPU that sent into the near end:
//! the mirrored pod's. As a kernel thread pinned to the agent's CPUs, that work leaves the pod's
//! core (measured: a pod's iperf3 throughput under the mirror went from 4.3 to 7.0 Gbit/s).
use std::{fs, io, path::Path};

/// Turns threaded NAPI on for `dev` and pins its NAPI threads to the CPUs this process may run
/// on. Returns how many threads were pinned.
pub fn thread_and_pin(dev: &str) -> io::Result<usize> {
    fs::write(Path::new("/sys/class/net").join(dev).join("threaded"), "1")?;
    // SAFETY: all-zero is an empty CPU set; sched_getaffinity fills it.
    let mut cpus: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is this thread; the set is live and of the size given.
    if unsafe { libc::sched_getaffinity(0, size_of::<libc::cpu_set_t>(), &raw mut cpus) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let name = format!("napi/{dev}-");
    let mut pinned = 0;
    for entry in fs::read_dir("/proc")?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        let comm = fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if !comm.trim_end().starts_with(&name) {
            continue;
        }
        // SAFETY: a plain syscall on a thread id, with a live set of the size given.
        if unsafe { libc::sched_setaffinity(pid, size_of::<libc::cpu_set_t>(), &raw const cpus) }
            != 0
        {
            return Err(io::Error::last_os_error());
        }
        pinned += 1;
    }
    Ok(pinned)
}
