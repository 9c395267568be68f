//! Looking into network namespaces: the node's veths, and in each other namespace its hostnames,
//! its `eth0` with addresses and veth peer, and the id it gives the agent's namespace. All over
//! netlink, from one short-lived thread that enters each namespace in turn (`setns` changes only
//! the calling thread) and ends afterwards, so no thread of the agent stays elsewhere.
use std::{
    ffi::CStr,
    fs::File,
    io,
    net::IpAddr,
    os::fd::{AsFd as _, AsRawFd as _, BorrowedFd},
    path::PathBuf,
};

use anyhow::{Context as _, anyhow, bail};
use futures::{StreamExt as _, TryStreamExt as _};
use rtnetlink::{
    Handle,
    packet_core::{NLM_F_ACK, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload},
    packet_route::{
        RouteNetlinkMessage,
        address::AddressAttribute,
        link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage},
        nsid::{NsidAttribute, NsidMessage},
    },
};

use super::netns::{NetNamespace, Own};

/// The interface a CNI gives a pod.
pub const POD_IF: &str = "eth0";

/// What matters of a link for finding veth peers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkFacts {
    pub ifindex: u32,
    pub name: String,
    pub veth: bool,
    /// `IFLA_LINK`: for a veth, the peer's ifindex (in the peer's namespace).
    pub peer_ifindex: Option<u32>,
    /// `IFLA_LINK_NETNSID`: the peer's namespace, as an id this link's namespace gives it;
    /// absent when the peer is in the same namespace.
    pub peer_nsid: Option<i32>,
}

impl LinkFacts {
    pub fn of(link: &LinkMessage) -> Self {
        let mut facts = Self {
            ifindex: link.header.index,
            ..Self::default()
        };
        for attribute in &link.attributes {
            match attribute {
                LinkAttribute::IfName(name) => facts.name.clone_from(name),
                LinkAttribute::Link(peer) => facts.peer_ifindex = Some(*peer),
                LinkAttribute::LinkNetNsId(id) => facts.peer_nsid = Some(*id),
                LinkAttribute::LinkInfo(infos) => {
                    facts.veth = infos
                        .iter()
                        .any(|i| matches!(i, LinkInfo::Kind(InfoKind::Veth)));
                }
                _ => {}
            }
        }
        facts
    }
}

/// A pod's `eth0`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodLink {
    pub link: LinkFacts,
    pub addrs: Vec<IpAddr>,
}

/// One namespace seen from inside.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inside {
    pub origin: PathBuf,
    /// Hostnames of its processes' UTS namespaces (not the agent's own).
    pub hostnames: Vec<String>,
    pub eth0: Option<PodLink>,
    /// The id this namespace gives the agent's namespace (`RTM_GETNSID`), if any.
    pub agent_nsid: Option<i32>,
}

/// The node's links and what is inside every other namespace.
#[derive(Debug, Default)]
pub struct Survey {
    pub node: Vec<LinkFacts>,
    pub inside: Vec<Inside>,
}

/// Surveys `namespaces` from a new thread, which ends afterwards.
pub fn survey(namespaces: Vec<NetNamespace>, own: Own) -> anyhow::Result<Survey> {
    std::thread::Builder::new()
        .name("mirror-pods".into())
        .spawn(move || survey_here(&namespaces, &own))
        .context("starting the pod scan thread")?
        .join()
        .map_err(|_| anyhow!("the pod scan thread panicked"))?
}

/// Only on a thread of its own: it leaves the thread in other namespaces.
fn survey_here(namespaces: &[NetNamespace], own: &Own) -> anyhow::Result<Survey> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .context("starting the pod scan's runtime")?;
    runtime.block_on(async {
        // Still in the agent's namespace: the node's side.
        let node = with_netlink(|handle| async move {
            handle
                .link()
                .get()
                .execute()
                .map_ok(|link| LinkFacts::of(&link))
                .try_collect::<Vec<_>>()
                .await
                .context("listing the node's links")
        })
        .await?;
        let mut inside = Vec::new();
        for ns in namespaces {
            match look_inside(ns, own).await {
                Ok(found) => inside.push(found),
                Err(e) if is_denied(&e) => {
                    return Err(e).context(
                        "the agent needs CAP_SYS_ADMIN (setns) to look for pods in the node's namespaces",
                    );
                }
                // The namespace went away meanwhile, or its netlink answers were odd: not a pod.
                Err(_) => {}
            }
        }
        Ok(Survey { node, inside })
    })
}

fn is_denied(error: &anyhow::Error) -> bool {
    error
        .downcast_ref::<io::Error>()
        .is_some_and(|e| e.kind() == io::ErrorKind::PermissionDenied)
}

async fn look_inside(ns: &NetNamespace, own: &Own) -> anyhow::Result<Inside> {
    enter(&ns.net, libc::CLONE_NEWNET)?;
    let agent_net = own.net.as_fd();
    let (eth0, agent_nsid) = with_netlink(|handle| async move {
        let eth0 = match link_named(&handle, POD_IF).await? {
            Some(link) => Some(PodLink {
                addrs: addresses(&handle, link.ifindex).await?,
                link,
            }),
            None => None,
        };
        // After the link dump: filling in eth0's IFLA_LINK_NETNSID gave the peer's namespace an
        // id if it had none, so an unassigned answer means the peer is not in the agent's.
        let agent_nsid = nsid_of(&handle, agent_net).await?;
        anyhow::Ok((eth0, agent_nsid))
    })
    .await?;
    let mut hostnames = Vec::new();
    for uts in &ns.uts {
        enter(uts, libc::CLONE_NEWUTS)?;
        if let Some(name) = hostname()
            && !hostnames.contains(&name)
        {
            hostnames.push(name);
        }
    }
    Ok(Inside {
        origin: ns.origin.clone(),
        hostnames,
        eth0,
        agent_nsid,
    })
}

/// Runs `f` with a netlink connection opened in the thread's current network namespace.
async fn with_netlink<T, F, Fut>(f: F) -> anyhow::Result<T>
where
    F: FnOnce(Handle) -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let (connection, handle, _) =
        rtnetlink::new_connection().context("opening a netlink socket")?;
    let task = tokio::spawn(connection);
    let result = f(handle).await;
    task.abort();
    result
}

/// `setns(2)` of this thread into `ns`.
fn enter(ns: &File, kind: libc::c_int) -> io::Result<()> {
    // SAFETY: setns(2) on an open namespace file; it changes only the calling thread.
    if unsafe { libc::setns(ns.as_raw_fd(), kind) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The hostname of the thread's UTS namespace.
fn hostname() -> Option<String> {
    // SAFETY: a zeroed utsname is valid, and uname(2) fills it in.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `uts` is a valid, writable utsname.
    if unsafe { libc::uname(&raw mut uts) } != 0 {
        return None;
    }
    // SAFETY: the kernel NUL-terminates nodename within the array.
    let name = unsafe { CStr::from_ptr(uts.nodename.as_ptr()) };
    name.to_str().ok().map(str::to_owned)
}

async fn link_named(handle: &Handle, name: &str) -> anyhow::Result<Option<LinkFacts>> {
    let mut links = handle.link().get().match_name(name.to_owned()).execute();
    match links.try_next().await {
        Ok(link) => Ok(link.map(|l| LinkFacts::of(&l))),
        // The kernel answers ENODEV for a name it does not know.
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
        Err(e) => Err(e).with_context(|| format!("looking up {name}")),
    }
}

async fn addresses(handle: &Handle, ifindex: u32) -> anyhow::Result<Vec<IpAddr>> {
    let messages: Vec<_> = handle
        .address()
        .get()
        .set_link_index_filter(ifindex)
        .execute()
        .try_collect()
        .await
        .context("listing addresses")?;
    let mut addrs = Vec::new();
    for message in messages {
        for attribute in message.attributes {
            if let AddressAttribute::Address(ip) | AddressAttribute::Local(ip) = attribute
                && !addrs.contains(&ip)
            {
                addrs.push(ip);
            }
        }
    }
    Ok(addrs)
}

/// The id the current namespace gives the namespace `ns` (`RTM_GETNSID` with `NETNSA_FD`).
async fn nsid_of(handle: &Handle, ns: BorrowedFd<'_>) -> anyhow::Result<Option<i32>> {
    let fd = u32::try_from(ns.as_raw_fd()).context("negative file descriptor")?;
    let mut message = NsidMessage::default();
    message.attributes = vec![NsidAttribute::Fd(fd)];
    let mut request = NetlinkMessage::from(RouteNetlinkMessage::GetNsId(message));
    request.header.flags = NLM_F_REQUEST | NLM_F_ACK;
    let mut responses = handle
        .clone()
        .request(request)
        .context("asking for a namespace id")?;
    while let Some(response) = responses.next().await {
        match response.payload {
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNsId(answer)) => {
                return Ok(answer.attributes.iter().find_map(|a| match a {
                    NsidAttribute::Id(id) if *id >= 0 => Some(*id),
                    _ => None,
                }));
            }
            NetlinkPayload::Error(e) if e.code.is_some() => {
                bail!("RTM_GETNSID failed: {e}");
            }
            _ => {}
        }
    }
    Ok(None)
}
