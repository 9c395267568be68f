//! How copies leave: from AF_XDP on the uplink (the default), or through the raw socket where
//! AF_XDP cannot serve a remote; and the next hops both need.
pub mod next_hop;
pub mod uplink;
pub mod xdp;

use std::{net::IpAddr, os::fd::OwnedFd, sync::Arc};

use anyhow::Context as _;

use self::{
    next_hop::{Follower, NextHopTable},
    xdp::XdpPath,
};
use crate::{kernel::umem::Umem, metrics::Metrics, send::Sender};

/// The next-hop follower's task and what stops it (then it removes what it added to the host).
pub struct FollowTask {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl FollowTask {
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Looks the next hops `follower` follows up once now, so that the first copies already take
/// the right path (and the log says which), then follows changes in a task; returns the table
/// the senders' AF_XDP paths read.
pub async fn follow(mut follower: Follower) -> (Arc<NextHopTable>, FollowTask) {
    follower.refresh().await;
    let table = follower.table();
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let task = FollowTask {
        stop,
        task: tokio::spawn(follower.run(stopped)),
    };
    (table, task)
}

/// Gives `sender` the AF_XDP path on `umem` (registered by `owner`, or else by the first
/// uplink), with `spares` of its chunks, and the next hops `follower` looks up.
pub async fn start_af_xdp(
    follower: Follower,
    umem: Arc<Umem>,
    owner: Option<OwnedFd>,
    spares: Vec<u64>,
    sender: &mut Sender,
    labels: Vec<String>,
    metrics: &Metrics,
) -> FollowTask {
    let (table, task) = follow(follower).await;
    let owner_is_capture = owner.is_some();
    let gauges = labels.iter().map(|l| metrics.send_path(l)).collect();
    let mut path = XdpPath::new(umem, owner, table, spares, gauges, labels);
    // A replay's stderr is its summary; its paths are in the metrics.
    path.say = owner_is_capture;
    sender.set_xdp(path);
    sender.refresh();
    task
}

/// Chunks of a UMEM of the sender's own (replay): every copy is written into one.
const OWN_CHUNKS: u32 = 4096;

/// The AF_XDP path for a sender without a capture socket (`mirror replay`) to `remotes` (their
/// addresses and metric labels): a UMEM of its own, registered by the first uplink. `None`
/// (and the raw socket for every remote) unless `af_xdp`, or when the UMEM cannot be had (said
/// once).
pub async fn start_own_umem(
    af_xdp: bool,
    sender: &mut Sender,
    remotes: &[(IpAddr, String)],
    metrics: &Metrics,
) -> anyhow::Result<Option<FollowTask>> {
    let labels: Vec<String> = remotes.iter().map(|(_, label)| label.clone()).collect();
    if !af_xdp || remotes.is_empty() {
        socket_only(&labels, metrics, 1);
        return Ok(None);
    }
    let umem = match Umem::new(OWN_CHUNKS) {
        Ok(umem) => umem,
        Err(err) => {
            tracing::warn!(
                "mirror: no memory for an AF_XDP UMEM ({err}); sending through the raw socket"
            );
            socket_only(&labels, metrics, 1);
            return Ok(None);
        }
    };
    let (connection, handle, _) =
        rtnetlink::new_connection().context("opening a netlink socket")?;
    tokio::spawn(connection);
    let follower = Follower::new(handle, remotes.iter().map(|(ip, _)| *ip).collect())?;
    let spares = umem.all_chunks().collect();
    let task = start_af_xdp(
        follower,
        Arc::new(umem),
        None,
        spares,
        sender,
        labels,
        metrics,
    );
    Ok(Some(task.await))
}

/// Shows every remote (by metric label) on the raw socket's path (`--send-path socket`) for
/// `senders` senders.
pub fn socket_only(labels: &[String], metrics: &Metrics, senders: usize) {
    for label in labels {
        metrics
            .send_path(label)
            .socket
            .set(i64::try_from(senders).unwrap_or(i64::MAX));
    }
}
