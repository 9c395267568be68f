//! The dedicated veth pair that carries the clones from TC to the AF_XDP socket.
//!
//! The near end (`mirror-tx`) receives the clones of `bpf_clone_redirect`; the far end
//! (`mirror-rx`) runs the XDP program that hands them to the socket. The pair's alias names the
//! agent that owns it, so a second agent refuses to start and a leftover of a killed one is
//! removed.
use std::{fs, io, os::fd::AsRawFd as _, path::Path, time::Duration};

use anyhow::{Context as _, anyhow, bail};
use futures::TryStreamExt as _;
use rtnetlink::{
    Handle, LinkUnspec, LinkVeth,
    packet_route::link::{LinkAttribute, LinkMessage},
};

pub const NEAR: &str = "mirror-tx";
pub const FAR: &str = "mirror-rx";
const ALIAS_PREFIX: &str = "mirror agent pid ";

/// The pair, deleted on [`MirrorVeth::remove`].
pub struct MirrorVeth {
    handle: Handle,
    mtu: u32,
    pub near_ifindex: u32,
    pub far_ifindex: u32,
}

impl MirrorVeth {
    /// Creates the pair, down (the MTU is set on both ends by [`MirrorVeth::up`]); takes over a pair left by a dead agent.
    pub async fn create(handle: Handle, mtu: u32) -> anyhow::Result<Self> {
        if let Some(link) = get(&handle, NEAR).await? {
            let owner =
                alias(&link).and_then(|a| a.strip_prefix(ALIAS_PREFIX)?.parse::<u32>().ok());
            match owner {
                // A killed agent can take a moment to exit (its AF_XDP socket is torn down).
                Some(pid)
                    if pid != std::process::id()
                        && alive_for(pid, Duration::from_secs(3)).await =>
                {
                    bail!("another mirror agent (pid {pid}) owns {NEAR} in this network namespace")
                }
                Some(pid) => tracing::warn!("mirror: removing {NEAR} left behind by pid {pid}"),
                None => {
                    bail!("an interface named {NEAR} exists and is not the mirror's; remove it")
                }
            }
            handle
                .link()
                .del(link.header.index)
                .execute()
                .await
                .context("deleting stale mirror veth")?;
        }
        handle
            .link()
            .add(LinkVeth::new(NEAR, FAR).build())
            .execute()
            .await
            .with_context(|| format!("creating veth pair {NEAR}/{FAR}"))?;
        let near_ifindex = index(&handle, NEAR).await?;
        let veth = Self {
            handle,
            mtu,
            near_ifindex,
            far_ifindex: 0,
        };
        // From here on a failure must not leave the pair behind.
        match veth.finish_create().await {
            Ok(far_ifindex) => Ok(Self {
                far_ifindex,
                ..veth
            }),
            Err(e) => {
                let _ = veth.remove().await;
                Err(e)
            }
        }
    }

    async fn finish_create(&self) -> anyhow::Result<u32> {
        // The kernel ignores an alias given at creation: set it on its own.
        let alias = format!("{ALIAS_PREFIX}{}", std::process::id());
        self.handle
            .link()
            .set(
                LinkUnspec::new_with_index(self.near_ifindex)
                    .alias(alias)
                    .build(),
            )
            .execute()
            .await
            .with_context(|| format!("naming the owner of {NEAR} in its alias"))?;
        let far_ifindex = index(&self.handle, FAR).await?;
        for name in [NEAR, FAR] {
            // No IPv6 autoconfiguration, so the kernel sends nothing of its own on the pair.
            // Best effort: a container's /proc/sys is read-only, and the tagging program drops
            // whatever the kernel sends anyway (counted as untagged).
            let _ = fs::write(format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6"), "1");
        }
        // Clones of locally sent packets carry partial checksums; without TX checksum offload
        // the kernel completes them as the copies leave the near end.
        disable_tx_checksum(NEAR)
            .with_context(|| format!("turning off TX checksum offload on {NEAR}"))?;
        Ok(far_ifindex)
    }

    /// Brings both ends up (the far end first, so XDP is ready when clones arrive).
    pub async fn up(&self) -> anyhow::Result<()> {
        for index in [self.far_ifindex, self.near_ifindex] {
            self.handle
                .link()
                .set(
                    LinkUnspec::new_with_index(index)
                        .mtu(self.mtu)
                        .up()
                        .arp(false)
                        .build(),
                )
                .execute()
                .await
                .context("bringing the mirror veth up")?;
        }
        Ok(())
    }

    /// Whether `ifindex` is one end of the pair.
    pub fn owns(&self, ifindex: u32) -> bool {
        ifindex != 0 && (ifindex == self.near_ifindex || ifindex == self.far_ifindex)
    }

    /// Deletes the pair (both ends go with one); a pair already gone is fine.
    pub async fn remove(self) -> anyhow::Result<()> {
        match self.handle.link().del(self.near_ifindex).execute().await {
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(()),
            result => result.with_context(|| format!("deleting veth pair {NEAR}/{FAR}")),
        }
    }
}

async fn index(handle: &Handle, name: &str) -> anyhow::Result<u32> {
    get(handle, name)
        .await?
        .map(|l| l.header.index)
        .ok_or_else(|| anyhow!("{name} vanished"))
}

async fn get(handle: &Handle, name: &str) -> anyhow::Result<Option<LinkMessage>> {
    let mut links = handle.link().get().match_name(name.to_owned()).execute();
    match links.try_next().await {
        Ok(link) => Ok(link),
        // The kernel answers ENODEV for a name it does not know.
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
        Err(e) => Err(e).with_context(|| format!("looking up {name}")),
    }
}

/// Whether process `pid` still exists after waiting up to `patience` for it to go.
async fn alive_for(pid: u32, patience: Duration) -> bool {
    let proc = format!("/proc/{pid}");
    let deadline = tokio::time::Instant::now() + patience;
    while Path::new(&proc).exists() {
        if tokio::time::Instant::now() >= deadline {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

fn alias(link: &LinkMessage) -> Option<&str> {
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfAlias(alias) => Some(alias.as_str()),
        _ => None,
    })
}

/// `ethtool -K NAME tx off`, through the legacy `ETHTOOL_STXCSUM` ioctl that every kernel keeps.
fn disable_tx_checksum(name: &str) -> io::Result<()> {
    const ETHTOOL_STXCSUM: u32 = 0x17;
    #[repr(C)]
    struct EthtoolValue {
        cmd: u32,
        data: u32,
    }
    let mut value = EthtoolValue {
        cmd: ETHTOOL_STXCSUM,
        data: 0,
    };
    // SAFETY: zeroed ifreq is valid; name length checked below.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.len() >= ifr.ifr_name.len() {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    for (dst, src) in ifr.ifr_name.iter_mut().zip(bytes) {
        *dst = libc::c_char::from_ne_bytes([*src]);
    }
    ifr.ifr_ifru.ifru_data = (&raw mut value).cast();
    let fd = crate::sockopt::socket(libc::AF_INET, libc::SOCK_DGRAM, 0)?;
    // SAFETY: fd is ours, ifr points at a live EthtoolValue.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCETHTOOL, &raw mut ifr) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
