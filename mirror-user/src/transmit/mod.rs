//! How copies leave: from AF_XDP on the uplink (the default), or through the raw socket where
//! AF_XDP cannot serve a remote; and the next hops both need.
pub mod next_hop;
pub mod uplink;
pub mod xdp;

use std::{os::fd::OwnedFd, sync::Arc};

use anyhow::Context as _;

use self::{next_hop::Follower, xdp::XdpPath};
use crate::{cli::SendPathArg, kernel::umem::Umem, metrics::Metrics, output::Target, send::Sender};

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

/// Gives `sender` the AF_XDP path on `umem` (registered by `owner`, or else by the first
/// uplink), with `spares` of its chunks, and the next hops `follower` looks up: once now, so
/// that the first copies already take the right path (and the log says which), then following
/// changes in a task.
pub async fn start_af_xdp(
    mut follower: Follower,
    umem: Arc<Umem>,
    owner: Option<OwnedFd>,
    spares: Vec<u64>,
    sender: &mut Sender,
    targets: &[Target],
    metrics: &Metrics,
) -> FollowTask {
    follower.refresh().await;
    let owner_is_capture = owner.is_some();
    let labels: Vec<String> = targets.iter().map(Target::label).collect();
    let gauges = labels.iter().map(|l| metrics.send_path(l)).collect();
    let mut path = XdpPath::new(umem, owner, follower.table(), spares, gauges, labels);
    // A replay's stderr is its summary; its paths are in the metrics.
    path.say = owner_is_capture;
    sender.set_xdp(path);
    sender.refresh();
    let (stop, stopped) = tokio::sync::oneshot::channel();
    FollowTask {
        stop,
        task: tokio::spawn(follower.run(stopped)),
    }
}

/// Chunks of a UMEM of the sender's own (replay): every copy is written into one.
const OWN_CHUNKS: u32 = 4096;

/// The AF_XDP path for a sender without a capture socket (`mirror replay`): a UMEM of its own,
/// registered by the first uplink. `None` (and the raw socket for every remote) with
/// `--send-path socket`, or when the UMEM cannot be had (said once).
pub async fn start_own_umem(
    send_path: SendPathArg,
    sender: &mut Sender,
    targets: &[Target],
    metrics: &Metrics,
) -> anyhow::Result<Option<FollowTask>> {
    if send_path == SendPathArg::Socket || targets.is_empty() {
        socket_only(targets, metrics);
        return Ok(None);
    }
    let umem = match Umem::new(OWN_CHUNKS) {
        Ok(umem) => umem,
        Err(err) => {
            eprintln!(
                "mirror: no memory for an AF_XDP UMEM ({err}); sending through the raw socket"
            );
            socket_only(targets, metrics);
            return Ok(None);
        }
    };
    let (connection, handle, _) =
        rtnetlink::new_connection().context("opening a netlink socket")?;
    tokio::spawn(connection);
    let follower = Follower::new(handle, targets.iter().map(|t| t.addr.ip()).collect())?;
    let spares = umem.all_chunks().collect();
    let task = start_af_xdp(
        follower,
        Arc::new(umem),
        None,
        spares,
        sender,
        targets,
        metrics,
    );
    Ok(Some(task.await))
}

/// Shows every remote on the raw socket's path (`--send-path socket`).
pub fn socket_only(targets: &[Target], metrics: &Metrics) {
    for target in targets {
        metrics.send_path(&target.label()).socket.set(1);
    }
}
