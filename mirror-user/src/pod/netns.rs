//! The node's network namespaces, each once: those of its processes (`/proc/PID/ns/net`) and the
//! named ones (`/run/netns/*`, where `ip netns` and CNI runtimes keep them). With each, the UTS
//! namespaces of its processes, whose hostnames name the pod.
use std::{
    collections::HashMap,
    fs::{self, File},
    io,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

/// Where named network namespaces live.
pub const NAMED: &str = "/run/netns";
/// UTS namespaces kept per network namespace: a pod has one; more come from `nsenter`-style
/// visitors, which share the node's (and are skipped) or their own.
const UTS_PER_NET: usize = 4;

/// A namespace's identity: the device and inode of its nsfs file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NsId {
    dev: u64,
    ino: u64,
}

impl NsId {
    /// The namespace `path` (such as `/proc/1/ns/net`) refers to.
    pub fn of(path: &Path) -> io::Result<Self> {
        fs::metadata(path).map(|m| Self {
            dev: m.dev(),
            ino: m.ino(),
        })
    }

    fn of_file(file: &File) -> io::Result<Self> {
        file.metadata().map(|m| Self {
            dev: m.dev(),
            ino: m.ino(),
        })
    }
}

/// The agent's own namespaces, opened from a thread that is in them.
pub struct Own {
    pub net: File,
    pub net_id: NsId,
    pub uts_id: NsId,
}

impl Own {
    /// The calling thread's namespaces.
    pub fn open() -> io::Result<Self> {
        let net = File::open("/proc/thread-self/ns/net")?;
        let net_id = NsId::of_file(&net)?;
        let uts_id = NsId::of(Path::new("/proc/thread-self/ns/uts"))?;
        Ok(Self {
            net,
            net_id,
            uts_id,
        })
    }
}

/// A network namespace other than the agent's, held open (so it cannot be freed and its inode
/// reused while it is looked at).
pub struct NetNamespace {
    pub id: NsId,
    pub net: File,
    /// Where it was found, for messages: `/proc/PID/ns/net` or `/run/netns/NAME`.
    pub origin: PathBuf,
    /// UTS namespaces of its processes, other than the agent's own.
    pub uts: Vec<File>,
    uts_ids: Vec<NsId>,
}

/// The node's namespaces, and how many processes' namespaces could not be looked at.
#[derive(Default)]
pub struct Scan {
    pub namespaces: Vec<NetNamespace>,
    /// Processes whose `/proc/PID/ns/net` was refused: those of other users need
    /// CAP_SYS_PTRACE (a pod's pause process runs as 65535).
    pub refused: usize,
}

/// Every network namespace of the node except `own.net`; processes that vanish meanwhile are
/// skipped.
pub fn scan(own: &Own) -> Scan {
    let mut found: Vec<NetNamespace> = Vec::new();
    let mut refused = 0;
    let mut by_id: HashMap<NsId, usize> = HashMap::new();
    let mut pids: Vec<u32> = fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    for pid in pids {
        let dir = PathBuf::from(format!("/proc/{pid}/ns"));
        let slot = match add_net(&mut found, &mut by_id, own, &dir.join("net")) {
            Ok(Some(slot)) => slot,
            Ok(None) => continue,
            Err(e) => {
                if matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM)) {
                    refused += 1;
                }
                continue;
            }
        };
        let uts = dir.join("uts");
        let Ok(uts_id) = NsId::of(&uts) else {
            continue;
        };
        let Some(ns) = found.get_mut(slot) else {
            continue;
        };
        if uts_id == own.uts_id || ns.uts_ids.contains(&uts_id) || ns.uts.len() >= UTS_PER_NET {
            continue;
        }
        if let Ok(file) = File::open(&uts)
            && NsId::of_file(&file).is_ok_and(|id| id == uts_id)
        {
            ns.uts.push(file);
            ns.uts_ids.push(uts_id);
        }
    }
    let mut named: Vec<PathBuf> = fs::read_dir(NAMED)
        .into_iter()
        .flatten()
        .filter_map(|e| Some(e.ok()?.path()))
        .collect();
    named.sort();
    for path in named {
        let _ = add_net(&mut found, &mut by_id, own, &path);
    }
    Scan {
        namespaces: found,
        refused,
    }
}

/// The slot of the namespace `path` refers to, added if new; `None` for the agent's own.
fn add_net(
    found: &mut Vec<NetNamespace>,
    by_id: &mut HashMap<NsId, usize>,
    own: &Own,
    path: &Path,
) -> io::Result<Option<usize>> {
    let id = NsId::of(path)?;
    if id == own.net_id {
        return Ok(None);
    }
    if let Some(slot) = by_id.get(&id) {
        return Ok(Some(*slot));
    }
    let net = File::open(path)?;
    // The process may have exited (and its pid been reused) between the two looks.
    if NsId::of_file(&net)? != id {
        return Ok(None);
    }
    found.push(NetNamespace {
        id,
        net,
        origin: path.to_owned(),
        uts: Vec::new(),
        uts_ids: Vec::new(),
    });
    by_id.insert(id, found.len() - 1);
    Ok(Some(found.len() - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_namespaces_are_skipped_and_others_unique() {
        let own = Own::open().unwrap();
        let found = scan(&own).namespaces;
        assert!(found.iter().all(|ns| ns.id != own.net_id));
        let mut ids: Vec<_> = found.iter().map(|ns| (ns.id.dev, ns.id.ino)).collect();
        let all = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), all);
    }
}
