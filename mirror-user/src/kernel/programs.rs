//! Loading the kernel programs of `mirror-ebpf` and attaching them where they belong.
use std::os::fd::{AsFd as _, AsRawFd, BorrowedFd};

use anyhow::{Context as _, bail};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, Map, MapData, PerCpuArray, ProgramArray, RingBuf, XskMap},
    programs::{
        LinkOrder, SchedClassifier, TcAttachType, Xdp, XdpMode,
        tc::{SchedClassifierLinkId, TcAttachOptions},
    },
    util::KernelVersion,
};
use mirror_common::{
    CUTS_MAPS, Config, Direction, KERNEL_COUNTERS, KernelCounter, OWN_SOCKETS, filter_slot,
};

use super::filter_prog::{self, KernelFilter};
use crate::filter::Filter;

/// Bytes of the `CUTS` ring buffers (shared out among the capture threads) when `--snaplen` copies go through it: about 58,000 copies,
/// enough to ride out an agent that shares its core with a busy pod (4 MiB lost copies under
/// unpaced TCP on the bench).
const CUTS_BYTES: u32 = 16 << 20;
/// Its size for whole copies of small frames: about 29,000 64-byte copies (100 ms at 300k per
/// second) or 4,000 full 1500-byte frames. Half of the above, because user space maps the data
/// pages twice (a record that wraps around reads as one), so each byte counts twice in RSS; and
/// super-frames, the bulk of unpaced TCP, are clones here.
const WHOLE_BYTES: u32 = 8 << 20;
/// Its size otherwise (a ring buffer is at least a page).
const CUTS_UNUSED: u32 = 4096;

/// The size of each ring buffer when `workers` share `total` bytes: a power of two and at
/// least a page, one page for those no thread reads.
fn ring_sizes(total: u32, workers: u32) -> [u32; CUTS_MAPS.len()] {
    let workers = workers.clamp(1, CUTS_MAPS.len() as u32);
    let share = (total / workers).max(CUTS_UNUSED);
    // Rounded down to a power of two.
    let share = 1 << (u32::BITS - 1 - share.leading_zeros());
    std::array::from_fn(|i| {
        if (i as u32) < workers {
            share
        } else {
            CUTS_UNUSED
        }
    })
}

/// The programs, built by `build.rs` (empty when the build had no bpf-linker).
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/mirror-ebpf"));

/// TCX (kernel 6.6) keeps each attachment a link owned by this process: dropping it detaches,
/// and so does the kernel if the process dies.
const TCX: KernelVersion = KernelVersion::new(6, 6, 0);

/// The TCX links of one mirrored interface, from [`Programs::attach_mirror`].
#[derive(Debug, Default)]
#[must_use = "dropping the ids leaves the programs attached until `Programs` is dropped"]
pub struct MirrorLinks {
    ingress: Option<SchedClassifierLinkId>,
    egress: Option<SchedClassifierLinkId>,
}

/// The loaded programs; every attachment is detached when this is dropped.
pub struct Programs {
    ebpf: Ebpf,
    /// `--filter` in the kernel, when it could be loaded there.
    filter: Option<KernelFilter>,
}

impl Programs {
    /// Loads the programs and writes their configuration.
    pub fn load(config: Config) -> anyhow::Result<Self> {
        if OBJECT.is_empty() {
            bail!(
                "this binary was built without its eBPF programs (bpf-linker was missing); run `cargo xtask setup` and rebuild"
            );
        }
        let kernel = KernelVersion::current().context("reading the kernel version")?;
        if kernel < TCX {
            bail!(
                "kernel {kernel:?} lacks TCX (bpf_mprog links for tc, Linux 6.6); the mirror needs it"
            );
        }
        // The ring buffers of copies are mapped (and resident) whole: full size only when the
        // classifiers use them, one page otherwise.
        let total = if config.cut_ring != 0 {
            CUTS_BYTES
        } else if config.ring_copies != 0 {
            WHOLE_BYTES
        } else {
            CUTS_UNUSED
        };
        let sizes = ring_sizes(total, config.workers);
        let mut loader = EbpfLoader::new();
        for (name, size) in CUTS_MAPS.iter().zip(sizes) {
            loader.map_max_entries(name, size);
        }
        let mut ebpf = loader
            .load(OBJECT)
            .context("loading the eBPF programs (needs root or CAP_BPF+CAP_NET_ADMIN)")?;
        let mut cfg: Array<_, Config> =
            Array::try_from(ebpf.map_mut("CONFIG").context("map CONFIG missing")?)?;
        cfg.set(0, config, 0).context("writing map CONFIG")?;
        for name in [
            "mirror_ingress",
            "mirror_egress",
            "mirror_tag",
            "mirror_ingress_selected",
            "mirror_egress_selected",
        ] {
            let prog: &mut SchedClassifier = program(&mut ebpf, name)?.try_into()?;
            prog.load()
                .with_context(|| format!("loading program {name}"))?;
        }
        // Where a packet the kernel's filter keeps goes on; the filter slots stay empty (and
        // the classifiers clone everything) until `install_filter`.
        for (direction, name) in [
            (Direction::Ingress, "mirror_ingress_selected"),
            (Direction::Egress, "mirror_egress_selected"),
        ] {
            let prog: &mut SchedClassifier = program(&mut ebpf, name)?.try_into()?;
            let fd = prog.fd()?.try_clone()?;
            // The map stays in the object: closing its last fd would empty it.
            let mut filters =
                ProgramArray::try_from(ebpf.map_mut("FILTERS").context("map FILTERS missing")?)?;
            let slot = filter_slot::SELECTED + direction as u32;
            filters
                .set(slot, &fd, 0)
                .with_context(|| format!("putting {name} into FILTERS"))?;
        }
        let xdp: &mut Xdp = program(&mut ebpf, "mirror_xsk")?.try_into()?;
        xdp.load().context("loading program mirror_xsk")?;
        Ok(Self { ebpf, filter: None })
    }

    /// Runs `filter` in the classifiers, before the clone. On error nothing changes and the
    /// message says why: user space then filters every copy, as it does those the kernel
    /// cannot (a VLAN tag held out of band).
    pub fn install_filter(&mut self, filter: &Filter) -> Result<(), String> {
        let fd = |name: &str| -> Result<BorrowedFd<'_>, String> {
            match self.ebpf.map(name) {
                Some(Map::ProgramArray(data) | Map::PerCpuArray(data)) => Ok(data.fd().as_fd()),
                _ => Err(format!("map {name} missing")),
            }
        };
        let installed = filter_prog::install(filter, fd("FILTERS")?, fd("COUNTERS")?)?;
        self.filter = Some(installed);
        Ok(())
    }

    /// Stops all cloning at once (the classifiers see no mirror to clone into); used before
    /// the ring is drained at shutdown.
    pub fn pause(&mut self) -> anyhow::Result<()> {
        self.change_config(|config| config.mirror_ifindex = 0)
    }

    /// The ring buffers of copies cut in the classifiers, one for each of `workers` capture
    /// threads.
    pub fn take_rings(&mut self, workers: usize) -> anyhow::Result<Vec<RingBuf<MapData>>> {
        CUTS_MAPS
            .iter()
            .take(workers.max(1))
            .map(|name| {
                let map = self
                    .ebpf
                    .take_map(name)
                    .with_context(|| format!("map {name} missing"))?;
                RingBuf::try_from(map).with_context(|| format!("map {name} is not a ring buffer"))
            })
            .collect()
    }

    /// Sets the largest frame the classifiers copy (what the AF_XDP socket can take).
    pub fn set_max_frame(&mut self, max_frame: u32) -> anyhow::Result<()> {
        self.change_config(|config| config.max_frame = max_frame)
    }

    fn change_config(&mut self, change: impl FnOnce(&mut Config)) -> anyhow::Result<()> {
        let mut cfg: Array<_, Config> =
            Array::try_from(self.ebpf.map_mut("CONFIG").context("map CONFIG missing")?)?;
        let mut config = cfg.get(&0, 0).context("reading map CONFIG")?;
        change(&mut config);
        cfg.set(0, config, 0).context("writing map CONFIG")?;
        Ok(())
    }

    /// Names the agent's own sockets to the classifiers, which then never copy their packets.
    pub fn set_own_sockets(&mut self, sockets: &[BorrowedFd<'_>]) -> anyhow::Result<()> {
        anyhow::ensure!(
            sockets.len() <= OWN_SOCKETS,
            "more than {OWN_SOCKETS} own sockets"
        );
        let mut cfg: Array<_, Config> =
            Array::try_from(self.ebpf.map_mut("CONFIG").context("map CONFIG missing")?)?;
        let mut config = cfg.get(&0, 0).context("reading map CONFIG")?;
        config.own_sockets = [0; OWN_SOCKETS];
        for (slot, socket) in config.own_sockets.iter_mut().zip(sockets) {
            *slot = socket_cookie(*socket).context("reading SO_COOKIE of an own socket")?;
        }
        cfg.set(0, config, 0).context("writing map CONFIG")?;
        Ok(())
    }

    /// XDP in driver mode on the far end: generic (SKB) mode delivers nothing to AF_XDP on veth.
    pub fn attach_xsk(&mut self, far: &str) -> anyhow::Result<()> {
        let xdp: &mut Xdp = program(&mut self.ebpf, "mirror_xsk")?.try_into()?;
        xdp.attach(far, XdpMode::Driver)
            .with_context(|| format!("attaching XDP program to {far} (driver mode)"))?;
        Ok(())
    }

    /// Lets the XDP program redirect queue `queue` of the far end into `socket`.
    pub fn register_socket(&mut self, queue: u32, socket: &impl AsRawFd) -> anyhow::Result<()> {
        let mut xsks = XskMap::try_from(self.ebpf.map_mut("XSKS").context("map XSKS missing")?)?;
        xsks.set(queue, socket.as_raw_fd(), 0)
            .context("inserting the AF_XDP socket into XSKS")?;
        Ok(())
    }

    /// The tagging program on the near end's egress: it sees the clones and nothing else.
    pub fn attach_tagger(&mut self, near: &str) -> anyhow::Result<()> {
        self.attach_tc("mirror_tag", near, TcAttachType::Egress)
            .map(drop)
    }

    /// The cloning programs on a mirrored interface; all or nothing. The returned links stay
    /// attached until [`Programs::detach_mirror`] or until the programs are dropped.
    pub fn attach_mirror(
        &mut self,
        iface: &str,
        ingress: bool,
        egress: bool,
    ) -> anyhow::Result<MirrorLinks> {
        let mut links = MirrorLinks::default();
        if ingress {
            links.ingress = Some(self.attach_tc("mirror_ingress", iface, TcAttachType::Ingress)?);
        }
        if egress {
            match self.attach_tc("mirror_egress", iface, TcAttachType::Egress) {
                Ok(link) => links.egress = Some(link),
                Err(e) => {
                    // Best effort: the error that matters is the attach error.
                    let _ = self.detach_mirror(links);
                    return Err(e);
                }
            }
        }
        Ok(links)
    }

    /// Detaches what [`Programs::attach_mirror`] attached: each TCX link is closed. Also right
    /// when the interface is already gone (the kernel then left the links defunct, and closing
    /// them frees them).
    pub fn detach_mirror(&mut self, links: MirrorLinks) -> anyhow::Result<()> {
        for (name, link) in [
            ("mirror_ingress", links.ingress),
            ("mirror_egress", links.egress),
        ] {
            if let Some(link) = link {
                let prog: &mut SchedClassifier = program(&mut self.ebpf, name)?.try_into()?;
                prog.detach(link)
                    .with_context(|| format!("detaching {name}"))?;
            }
        }
        Ok(())
    }

    /// First in the TCX chain: the copy shows the packet as the interface saw it, before any
    /// other program (a CNI's policy, say) drops or rewrites it. The mirror always hands the
    /// packet on, so going first changes nothing for the others.
    fn attach_tc(
        &mut self,
        name: &str,
        iface: &str,
        at: TcAttachType,
    ) -> anyhow::Result<SchedClassifierLinkId> {
        let prog: &mut SchedClassifier = program(&mut self.ebpf, name)?.try_into()?;
        prog.attach_with_options(iface, at, TcAttachOptions::TcxOrder(LinkOrder::first()))
            .with_context(|| format!("attaching {name} to {iface} {at:?}"))
    }

    /// Sums a kernel counter over all CPUs.
    pub fn counter(&self, counter: KernelCounter) -> anyhow::Result<u64> {
        debug_assert!((counter as u32) < KERNEL_COUNTERS);
        let map = self.ebpf.map("COUNTERS").context("map COUNTERS missing")?;
        let counters: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(map)?;
        let values = counters
            .get(&(counter as u32), 0)
            .context("reading map COUNTERS")?;
        Ok(values.iter().sum())
    }
}

fn socket_cookie(socket: BorrowedFd<'_>) -> std::io::Result<u64> {
    crate::sockopt::get(socket, libc::SOL_SOCKET, libc::SO_COOKIE)
}

fn program<'a>(ebpf: &'a mut Ebpf, name: &str) -> anyhow::Result<&'a mut aya::programs::Program> {
    ebpf.program_mut(name)
        .with_context(|| format!("program {name} missing from the eBPF object"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rings_share_the_bytes_in_powers_of_two() {
        let one = ring_sizes(WHOLE_BYTES, 1);
        assert_eq!(one[0], WHOLE_BYTES);
        assert!(one[1..].iter().all(|&s| s == CUTS_UNUSED));
        assert_eq!(ring_sizes(WHOLE_BYTES, 0), one, "0 counts as 1");
        let three = ring_sizes(WHOLE_BYTES, 3);
        assert_eq!(&three[..4], &[2 << 20, 2 << 20, 2 << 20, CUTS_UNUSED]);
        let all = ring_sizes(CUTS_UNUSED, 8);
        assert!(all.iter().all(|&s| s == CUTS_UNUSED), "at least a page");
        assert_eq!(ring_sizes(WHOLE_BYTES, 99), [1 << 20; 8]);
    }
}
