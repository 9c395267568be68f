//! `mirror run`: sets the data path up, runs it until a signal, and takes it all down again.
pub mod args;
mod cpus;
mod features;
mod follow;
mod links;
mod pods;

use std::{
    ffi::CString,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use mirror_common::{
    Config, KernelCounter, MAX_FRAME, ONE_CHUNK_FRAME, OWN_SOCKETS, RING_FRAME, TAG_LEN,
};
use tokio::signal::unix::{SignalKind, signal};

use self::{
    args::{CapturePathArg, FilterPathArg, RunArgs},
    follow::{Attachments, Follower, Labels},
    links::{LinkEvent, LinkEvents},
};
use crate::{
    UsageError,
    capture::{self, Capture, IfaceTable},
    clock::MonotonicToUnix,
    filter::Filter,
    kernel::{
        napi,
        programs::Programs,
        veth::{self, MirrorVeth},
        xsk::Xsk,
    },
    metrics::{DropReason, Metrics},
    netflow::collector::{FlowExport, NetflowVersion},
    output::{
        self,
        args::{BalanceArg, OutputArgs, SendPathArg},
        flow_export, resolve_remotes, sender,
    },
    pod::{Resolution, api::PodUpdates, wanted::WantedSet},
    remote::Remote,
    transmit::{
        self,
        next_hop::{self, Hop, NextHopTable},
    },
    tunnel::TunnelKind,
};

/// Chunks kept for the copies to all remotes but the last (`--balance replicate`), and for the
/// copies of the classifiers' ring buffer: half the UMEM, the other half for the clones.
const SPARE_CHUNKS: usize = 2048;

/// A mirrored interface, checked to exist.
struct Iface {
    name: String,
    ifindex: u32,
}

pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    if args.ifaces.is_empty()
        && args.pods.is_empty()
        && args.pod_ips.is_empty()
        && args.pod_selectors.is_empty()
    {
        return Err(UsageError(
            "nothing to mirror: give --iface NAME, --pod [NAMESPACE/]NAME or --pod-ip IP (or --pod-selector LABELS)".into(),
        )
        .into());
    }
    pods::check_usage(args)?;
    let ifaces = resolve_ifaces(&args.ifaces)?;
    let remotes = resolve_remotes(&args.output)?;
    // A bad --filter is a usage error before anything is attached (compiled again below).
    output::filter(&args.output)?;
    features::check()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(run_async(args, ifaces, remotes))
}

/// What `mirror run` copies: `--iface` interfaces checked at start, and `--pod`/`--pod-ip`/
/// `--pod-selector` pods with the veths found for them.
struct Sources {
    ifaces: Vec<Iface>,
    wanted: WantedSet,
    pods: Resolution,
    /// Subscribed before the first scan, so that no change after it is missed.
    events: LinkEvents,
    /// The Kubernetes API's pods as they come and go (nothing without the API).
    updates: PodUpdates,
}

impl Sources {
    async fn find(args: &RunArgs, ifaces: Vec<Iface>) -> anyhow::Result<Self> {
        let events = LinkEvents::subscribe()?;
        let pods = pods::find(args).await?;
        Ok(Self {
            ifaces,
            wanted: pods.wanted,
            pods: pods.found,
            events,
            updates: pods.updates,
        })
    }
}

fn resolve_ifaces(names: &[String]) -> anyhow::Result<Vec<Iface>> {
    let mut ifaces: Vec<Iface> = Vec::new();
    for name in names {
        if name == veth::NEAR || name == veth::FAR {
            return Err(
                UsageError(format!("--iface {name}: that is the mirror's own veth")).into(),
            );
        }
        let ifindex = CString::new(name.as_str())
            // SAFETY: valid C string.
            .map_or(0, |c| unsafe { libc::if_nametoindex(c.as_ptr()) });
        if ifindex == 0 {
            return Err(UsageError(format!(
                "--iface {name}: no such interface in this network namespace"
            ))
            .into());
        }
        if !ifaces.iter().any(|i| i.ifindex == ifindex) {
            ifaces.push(Iface {
                name: name.clone(),
                ifindex,
            });
        }
    }
    Ok(ifaces)
}

async fn run_async(args: &RunArgs, ifaces: Vec<Iface>, remotes: Vec<Remote>) -> anyhow::Result<()> {
    let mut sources = Sources::find(args, ifaces).await?;
    let metrics = Metrics::new()?;
    let (connection, handle, _) =
        rtnetlink::new_connection().context("opening a netlink socket")?;
    tokio::spawn(connection);
    // Subscribed before the mirror veth exists: its own link events are harmless.
    let hops = match args.output.send_path {
        SendPathArg::AfXdp if !remotes.is_empty() => Some(next_hop::Follower::new(
            handle.clone(),
            remotes.iter().map(|r| r.addr.ip()).collect(),
        )?),
        _ => None,
    };
    // Before anything is bound or attached, so that a second agent in this namespace stops here,
    // naming the running one. Room for the largest frame plus the tag (the veth MTU excludes the
    // Ethernet header).
    let veth = MirrorVeth::create(handle, MAX_FRAME + TAG_LEN as u32).await?;
    let result = async {
        let _server = match args.output.metrics {
            Some(addr) => Some(crate::metrics::serve(addr, metrics.clone()).await?),
            None => None,
        };
        mirror(args, &mut sources, &remotes, &metrics, &veth, hops).await
    }
    .await;
    let removed = veth.remove().await;
    // The metrics server is gone with the rest: the final counts are printed.
    tracing::info!("mirror: stopped: {}", metrics.totals());
    result.and(removed)
}

/// The kernel programs, configured for `args` and `workers` capture threads (the largest frame
/// is raised once the capture socket says it takes multi-buffer frames).
fn load_programs(args: &RunArgs, veth: &MirrorVeth, workers: usize) -> anyhow::Result<Programs> {
    Programs::load(Config {
        mirror_ifindex: veth.near_ifindex,
        agent_mark: args.output.agent_mark,
        sample: args.output.sample,
        snaplen: args.output.snaplen.unwrap_or(0),
        max_frame: ONE_CHUNK_FRAME,
        cut_ring: u32::from(cut_in_ring(args.output.snaplen)),
        ring_copies: u32::from(whole_in_ring(args)),
        workers: u32::try_from(workers).unwrap_or(1),
        ..Config::default()
    })
}

/// The CPUs of the capture threads: `--cpus`, or by default the process's own but no more than
/// the uplinks in `hops` have transmit queues (each thread sends from a queue of its own); and
/// one thread where only one can work: without the ring buffers (the clones' socket is one
/// queue) and for tunnels that number their packets per remote (one counter, one thread).
fn capture_cpus(args: &RunArgs, hops: Option<&NextHopTable>) -> anyhow::Result<Vec<usize>> {
    let mut chosen = cpus::choose(args.cpus.as_ref())?;
    if args.cpus.is_none()
        && let Some(table) = hops
    {
        let mut now = Vec::new();
        table.snapshot(&mut now);
        let fewest = now
            .iter()
            .filter_map(|hop| match hop {
                Hop::Xdp(next) => transmit::uplink::tx_queues(next.ifindex),
                Hop::Socket(_) => None,
            })
            .min();
        if let Some(queues) = fewest
            && queues < chosen.len()
        {
            tracing::info!(
                "mirror: {} capture thread{}: an uplink has {queues} transmit queue{} (--cpus to choose)",
                queues.max(1),
                if queues > 1 { "s" } else { "" },
                if queues > 1 { "s" } else { "" },
            );
            chosen.truncate(queues.max(1));
        }
    }
    let why_one = if !ring_in_use(args) {
        Some("--capture-path clone")
    } else if numbered(&args.output) {
        Some("the tunnel numbers its packets")
    } else if !args.output.netflow.is_empty() {
        // Threads would meter a flow's packets out of order (a FIN before the ACK in front
        // of it), and the records would no longer be what a probe on the wire reports.
        Some("NetFlow meters packets in wire order")
    } else {
        None
    };
    if let Some(why) = why_one
        && chosen.len() > 1
    {
        if args.cpus.is_some() {
            tracing::info!(
                "mirror: one capture thread ({why}), on CPU {}",
                chosen.first().copied().unwrap_or_default()
            );
        }
        chosen.truncate(1);
    }
    Ok(chosen)
}

/// Whether each packet to a remote carries a sequence number (GRE with sequence numbers,
/// ERSPAN II and III).
fn numbered(output: &OutputArgs) -> bool {
    match output.tunnel {
        TunnelKind::Gre => output.gre_seq,
        TunnelKind::Erspan2 | TunnelKind::Erspan3 => true,
        TunnelKind::Vxlan | TunnelKind::Erspan1 => false,
    }
}

/// Whether copies cut to `snaplen` go through the classifiers' ring buffer instead of clones.
fn cut_in_ring(snaplen: Option<u32>) -> bool {
    snaplen.is_some_and(|n| n > 0 && n as usize <= RING_FRAME)
}

/// Whether whole copies of small frames go through the classifiers' ring buffer.
fn whole_in_ring(args: &RunArgs) -> bool {
    args.capture_path == CapturePathArg::Ring && args.output.snaplen.is_none_or(|n| n == 0)
}

/// Whether the classifiers write any copies into their ring buffer.
pub fn ring_in_use(args: &RunArgs) -> bool {
    cut_in_ring(args.output.snaplen) || whole_in_ring(args)
}

/// Lets the classifiers copy jumbo frames whole where the socket takes frames in several chunks.
fn size_copies(programs: &mut Programs, xsk: &Xsk) -> anyhow::Result<()> {
    if xsk.multi_buffer() {
        programs.set_max_frame(MAX_FRAME)?;
    } else {
        tracing::warn!(
            "mirror: this kernel's AF_XDP takes no frame larger than a chunk (XDP_USE_SG, Linux 6.6+): frames over {ONE_CHUNK_FRAME} bytes are not copied (too_big)"
        );
    }
    Ok(())
}

/// Moves the far end's receive work to a NAPI thread pinned beside the capture thread.
fn thread_napi() {
    match napi::thread_and_pin(veth::FAR) {
        Ok(0) => tracing::warn!("mirror: no NAPI thread of {} found to pin", veth::FAR),
        Ok(_) => {}
        Err(err) => tracing::warn!(
            "mirror: threaded NAPI on {} is not available ({err}); the pods' cores receive the copies",
            veth::FAR
        ),
    }
}

async fn mirror(
    args: &RunArgs,
    sources: &mut Sources,
    remotes: &[Remote],
    metrics: &Metrics,
    veth: &MirrorVeth,
    hops: Option<next_hop::Follower>,
) -> anyhow::Result<()> {
    // Looked up before the threads are counted: by default no more of them than the uplinks
    // have queues.
    let hops = match hops {
        Some(follower) => Some(transmit::follow(follower).await),
        None => None,
    };
    let cpus = capture_cpus(args, hops.as_ref().map(|(table, _)| table.as_ref()))?;
    let mut programs = load_programs(args, veth, cpus.len())?;
    let rings = programs.take_rings(cpus.len())?;
    veth.up().await?;
    programs.attach_xsk(veth::FAR)?;
    if args.threaded_napi {
        thread_napi();
    }
    let mut xsk = Xsk::open(veth::FAR, 0, spares(args, remotes))?;
    programs.register_socket(0, &xsk.fd())?;
    size_copies(&mut programs, &xsk)?;
    programs.attach_tagger(veth::NEAR)?;

    let mut senders = cpus
        .iter()
        .map(|_| sender(&args.output, remotes, metrics))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let follow = send_from_af_xdp(hops, &mut xsk, &mut senders, remotes, metrics)?;
    let netflow = flow_export(&args.output, metrics)?;
    let filter = output::filter(&args.output)?;
    if let Some(filter) = &filter {
        install_filter(&mut programs, filter, args.filter_path);
    }
    set_own_sockets(&mut programs, &senders, netflow.as_ref())?;
    let netflow = netflow.map(|n| Arc::new(Mutex::new(n)));
    let table = Arc::new(IfaceTable::default());
    let stop = Arc::new(AtomicBool::new(false));
    let threads = Threads {
        cpus: &cpus,
        rings,
        senders,
        clones: xsk,
        ifaces: &table,
        netflow: netflow.as_ref(),
        stop: &stop,
    };
    let (threads, mut done_rx) = threads.start(args, metrics)?;

    let mut kernel = KernelCounters::new(metrics);
    let mut follower = Follower::new(
        sources.wanted.clone(),
        sources.ifaces.iter().map(|i| i.name.clone()).collect(),
        Attachments::new(
            args.direction.ingress(),
            args.direction.egress(),
            table,
            metrics.clone(),
        ),
    );
    let outcome = async {
        // Handled from before the ready line on: a SIGTERM right after it still detaches all.
        let mut ends = Ends {
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            capture: &mut done_rx,
        };
        tracing::info!(
            "mirror: {} capture thread{} on CPU {}",
            cpus.len(),
            if cpus.len() == 1 { "" } else { "s" },
            cpus::list(&cpus)
        );
        attach_all(&mut programs, &mut follower, sources)?;
        tracing::info!("{}", ready_line(args, remotes, &follower));
        wait(
            &mut ends,
            &mut programs,
            &mut kernel,
            &mut follower,
            &mut sources.events,
            &mut sources.updates,
            veth,
        )
        .await
    }
    .await;
    // Stop new copies first, then let the threads drain what is already in the rings.
    programs.pause()?;
    stop.store(true, Ordering::Relaxed);
    let finished = join(threads, &mut done_rx, netflow.as_ref());
    if let Some(follow) = follow {
        follow.stop().await;
    }
    kernel.update(&programs);
    metrics.attached_interfaces.set(0);
    // Dropping the programs detaches every TCX and XDP link.
    drop(programs);
    outcome.and(finished)
}

/// Tells the classifiers the agent's own sockets (the first ones; all of them carry the
/// agent's mark anyway).
fn set_own_sockets(
    programs: &mut Programs,
    senders: &[crate::send::Sender],
    netflow: Option<&FlowExport>,
) -> anyhow::Result<()> {
    let own: Vec<_> = senders
        .iter()
        .flat_map(crate::send::Sender::sockets)
        .chain(netflow.into_iter().flat_map(FlowExport::sockets))
        .take(OWN_SOCKETS)
        .collect();
    programs.set_own_sockets(&own)
}

/// Waits for the capture threads to drain and end, then has the flow meter export what it
/// still holds; the first error of any thread.
fn join(
    threads: Vec<std::thread::JoinHandle<()>>,
    done: &mut Done,
    netflow: Option<&Arc<Mutex<FlowExport>>>,
) -> anyhow::Result<()> {
    let mut finished = Ok(());
    for thread in threads {
        if thread.join().is_err() {
            finished = Err(anyhow::anyhow!("a capture thread panicked"));
        }
    }
    while let Ok(result) = done.try_recv() {
        finished = finished.and(result);
    }
    if let Some(netflow) = netflow {
        capture::lock(netflow).finish(crate::clock::unix_now_ns());
    }
    finished
}

/// What the capture threads are made of: one ring buffer, sender and CPU each; the clones'
/// socket for the first; the interfaces, flow meter and stop flag for all.
struct Threads<'a> {
    cpus: &'a [usize],
    rings: Vec<aya::maps::RingBuf<aya::maps::MapData>>,
    senders: Vec<crate::send::Sender>,
    clones: Xsk,
    ifaces: &'a Arc<IfaceTable>,
    netflow: Option<&'a Arc<Mutex<FlowExport>>>,
    stop: &'a Arc<AtomicBool>,
}

/// Where each capture thread says it ended.
type Done = tokio::sync::mpsc::UnboundedReceiver<anyhow::Result<()>>;

impl Threads<'_> {
    /// Starts the threads, each pinned to its CPU when there are several (or `--cpus` said).
    fn start(
        self,
        args: &RunArgs,
        metrics: &Metrics,
    ) -> anyhow::Result<(Vec<std::thread::JoinHandle<()>>, Done)> {
        let clock = MonotonicToUnix::now();
        let umem = Arc::clone(&self.clones.umem);
        let mut clones = Some(self.clones);
        // Every thread says here when it ends; the first to end (an error) ends the agent.
        let (done_tx, done_rx) = tokio::sync::mpsc::unbounded_channel();
        let pin = self.cpus.len() > 1 || args.cpus.is_some();
        let mut threads = Vec::new();
        let parts = self.rings.into_iter().zip(self.senders).zip(self.cpus);
        for (index, ((ring, sender), &cpu)) in parts.enumerate() {
            let capture = Capture {
                clones: clones.take(),
                umem: Arc::clone(&umem),
                ring,
                sender,
                ifaces: Arc::clone(self.ifaces),
                clock,
                inner_dst_mac: args.output.inner_dst_mac,
                malformed: metrics.dropped(DropReason::Malformed),
                ring_full: metrics.dropped(DropReason::RingFull),
                netflow: self.netflow.cloned(),
                filter: output::filter(&args.output)?,
                filtered: metrics.dropped(DropReason::Filtered),
                filter_kept: metrics.filter_packets("user", "kept"),
                filter_left_out: metrics.filter_packets("user", "left_out"),
                truncated_snaplen: metrics.truncated("snaplen"),
                read: metrics.thread_copies(cpu),
            };
            let (stop, done_tx) = (Arc::clone(self.stop), done_tx.clone());
            let thread = std::thread::Builder::new()
                .name(format!("mirror-capture-{index}"))
                .spawn(move || {
                    if pin && let Err(err) = cpus::pin(cpu) {
                        tracing::warn!(
                            "mirror: capture thread {index} not pinned to CPU {cpu}: {err}"
                        );
                    }
                    let _ = done_tx.send(capture.run(&stop));
                })
                .context("starting a capture thread")?;
            threads.push(thread);
        }
        Ok((threads, done_rx))
    }
}

/// Spare chunks for the copies of all but the last remote, when every remote gets each copy,
/// and for the copies cut in the classifiers.
fn spares(args: &RunArgs, remotes: &[Remote]) -> usize {
    // Copies from the classifiers' ring buffer are not in the UMEM: each leaves in a spare.
    if (args.output.balance == BalanceArg::Replicate && remotes.len() > 1) || ring_in_use(args) {
        SPARE_CHUNKS
    } else {
        0
    }
}

/// Gives each of `senders` (one per capture thread) the AF_XDP path on the capture socket's
/// UMEM, its share of the spare chunks and its own queue of each uplink, when `hops` (not
/// `--send-path socket`); else shows every remote on the raw socket.
fn send_from_af_xdp(
    hops: Option<(Arc<NextHopTable>, transmit::FollowTask)>,
    xsk: &mut Xsk,
    senders: &mut [crate::send::Sender],
    remotes: &[Remote],
    metrics: &Metrics,
) -> anyhow::Result<Option<transmit::FollowTask>> {
    let labels: Vec<String> = remotes.iter().map(Remote::label).collect();
    let count = senders.len();
    for (index, sender) in senders.iter_mut().enumerate() {
        sender.set_thread(index, count);
    }
    let Some((table, task)) = hops else {
        transmit::socket_only(&labels, metrics, count);
        return Ok(None);
    };
    let mut spares = xsk.take_spares();
    let share = spares.len() / count.max(1);
    for (index, sender) in senders.iter_mut().enumerate() {
        let owner = xsk
            .fd()
            .try_clone_to_owned()
            .context("duplicating the AF_XDP socket")?;
        let mine = if index + 1 == count {
            std::mem::take(&mut spares)
        } else {
            spares.split_off(spares.len() - share)
        };
        // Every thread counts itself in the path gauges; the first says changes in the log.
        let gauges = labels.iter().map(|l| metrics.send_path(l)).collect();
        let umem = Arc::clone(&xsk.umem);
        let mut path = transmit::xdp::XdpPath::new(
            umem,
            Some(owner),
            Arc::clone(&table),
            mine,
            gauges,
            labels.clone(),
        );
        path.say = index == 0;
        path.queue = u32::try_from(index).unwrap_or(u32::MAX);
        sender.set_xdp(path);
        sender.refresh();
    }
    Ok(Some(task))
}

/// `mirror: ready: copying WHAT (DIRECTION) to WHERE`.
fn ready_line(args: &RunArgs, remotes: &[Remote], follower: &Follower) -> String {
    let mut remotes: Vec<String> = remotes
        .iter()
        .map(|t| format!("{} over {}", t.label(), args.output.tunnel.name()))
        .collect();
    remotes.extend(args.output.netflow_collectors().into_iter().map(
        |(addr, version)| match version {
            NetflowVersion::V5 => format!("NetFlow v5 to {addr}"),
            NetflowVersion::Ipfix => format!("IPFIX to {addr}"),
        },
    ));
    let names: Vec<String> = follower
        .attachments
        .labels()
        .map(ToString::to_string)
        .collect();
    let copying = if names.is_empty() {
        // --wait-for-pods, or a --pod-selector that matches no pod of this node yet.
        "nothing yet, waiting for pods".to_owned()
    } else {
        names.join(", ")
    };
    format!(
        "mirror: ready: copying {copying} ({}) to {}",
        direction_name(args),
        remotes.join(", "),
    )
}

fn direction_name(args: &RunArgs) -> &'static str {
    match (args.direction.ingress(), args.direction.egress()) {
        (true, true) => "both directions",
        (true, false) => "ingress",
        _ => "egress",
    }
}

/// The interfaces and pods found at start; failures here are fatal.
fn attach_all(
    programs: &mut Programs,
    follower: &mut Follower,
    sources: &Sources,
) -> anyhow::Result<()> {
    for iface in &sources.ifaces {
        follower
            .attachments
            .attach(programs, iface.ifindex, Labels::iface(&iface.name), None)?;
    }
    follower.attach_found(programs, &sources.pods)
}

/// Waits for SIGINT or SIGTERM (`Ok`), the end of the capture thread (its error) or the loss of
/// What ends `mirror run`: SIGINT or SIGTERM (cleanly), or the capture thread's end.
struct Ends<'a> {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    capture: &'a mut Done,
}

/// the mirror veth (an error), following interfaces and pods meanwhile.
async fn wait(
    ends: &mut Ends<'_>,
    programs: &mut Programs,
    kernel: &mut KernelCounters,
    follower: &mut Follower,
    events: &mut LinkEvents,
    updates: &mut PodUpdates,
    veth: &MirrorVeth,
) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let scan_due = follower.scan_due();
        tokio::select! {
            _ = ends.int.recv() => return Ok(()),
            _ = ends.term.recv() => return Ok(()),
            result = ends.capture.recv() => {
                return result
                    .unwrap_or_else(|| Err(anyhow::anyhow!("a capture thread panicked")))
                    .and_then(|()| Err(anyhow::anyhow!("a capture thread stopped")));
            }
            _ = tick.tick() => {
                kernel.update(programs);
                follower.tick(Instant::now());
            }
            event = events.next() => match event {
                // Without the pair no copy reaches the socket. Stopping with an error (and a
                // restart by whoever runs the agent) beats rebuilding the data path under way.
                Some(LinkEvent::Removed(link)) if veth.owns(link.ifindex) => anyhow::bail!(
                    "the mirror veth {}/{} was deleted by someone else; stopping (restart the agent to mirror again)",
                    veth::NEAR,
                    veth::FAR
                ),
                Some(event) => follower.on_link_event(programs, event),
                None => anyhow::bail!("the netlink link event subscription ended"),
            },
            update = updates.next() => follower.on_pod_update(programs, update),
            () = sleep_until(scan_due) => follower.start_scan()?,
            result = follower.scanned() => follower.on_scanned(programs, result),
        }
    }
}

/// Sleeps until `at`; forever when `None`.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// `--filter` into the classifiers where the kernel can run it; said either way, since where
/// it runs changes what `mirror_captured_packets_total` counts.
fn install_filter(programs: &mut Programs, filter: &Filter, path: FilterPathArg) {
    let expression = filter.expression();
    if path == FilterPathArg::User {
        tracing::info!("mirror: --filter '{expression}' runs in user space (--filter-path user)");
        return;
    }
    match programs.install_filter(filter) {
        Ok(()) => tracing::info!(
            "mirror: --filter '{expression}' runs in the kernel, before the clone (user space filters only copies whose VLAN tag the kernel holds out of band)"
        ),
        Err(why) => tracing::warn!(
            "mirror: --filter '{expression}' runs in user space on every copy: the kernel path is not available ({why})"
        ),
    }
}

/// Kernel-side counters (drops, filter verdicts, copies by path), carried into the metrics as deltas.
struct KernelCounters {
    sources: Vec<(KernelCounter, prometheus::IntCounter, u64)>,
}

impl KernelCounters {
    fn new(metrics: &Metrics) -> Self {
        let sources = [
            (KernelCounter::CloneFailed, DropReason::CloneFailed),
            (KernelCounter::TagFailed, DropReason::CloneFailed),
            (KernelCounter::TooBig, DropReason::TooBig),
            (KernelCounter::CutRingFull, DropReason::RingFull),
        ]
        .map(|(k, r)| (k, metrics.dropped(r)));
        let filter = [
            (KernelCounter::FilterLeftOut, "left_out"),
            (KernelCounter::FilterKept, "kept"),
        ]
        .map(|(k, verdict)| (k, metrics.filter_packets("kernel", verdict)));
        let copies = [
            (KernelCounter::CutCopied, "ring"),
            (KernelCounter::Cloned, "clone"),
        ]
        .map(|(k, path)| (k, metrics.kernel_copies(path)));
        // What the kernel's filter leaves out is also "filtered", as what user space leaves out.
        let left_out = (
            KernelCounter::FilterLeftOut,
            metrics.dropped(DropReason::Filtered),
        );
        Self {
            sources: sources
                .into_iter()
                .chain(filter)
                .chain(copies)
                .chain([left_out])
                .map(|(k, m)| (k, m, 0))
                .collect(),
        }
    }

    fn update(&mut self, programs: &Programs) {
        for (counter, metric, seen) in &mut self.sources {
            if let Ok(now) = programs.counter(*counter) {
                metric.inc_by(now.saturating_sub(*seen));
                *seen = now;
            }
        }
    }
}
