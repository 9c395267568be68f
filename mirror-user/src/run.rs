//! `mirror run`: sets the data path up, runs it until a signal, and takes it all down again.
use std::{
    ffi::CString,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::Context as _;
use mirror_common::{Config, KernelCounter, MAX_FRAME, TAG_LEN};
use tokio::signal::unix::{SignalKind, signal};

use crate::{
    UsageError,
    capture::{BATCH, Capture, IfaceCounters},
    cli::{BalanceArg, OversizeArg, RunArgs},
    clock::MonotonicToUnix,
    metrics::{DropReason, Metrics},
    programs::Programs,
    remote::{Route, route_to},
    send::{Balance, Destination, Oversize, SendCounters, SendOptions, Sender},
    tunnel::{Encap, Tunnel},
    veth::{self, MirrorVeth},
    xsk::Xsk,
};

/// A mirrored interface, checked to exist.
struct Iface {
    name: String,
    ifindex: u32,
}

/// A remote with its tunnel and what the kernel's routes say about it.
struct Target {
    addr: SocketAddr,
    tunnel: Tunnel,
    route: Route,
}

impl Target {
    /// The `remote` label: `IP:PORT` for VxLAN, `IP` for the GRE family (no ports).
    fn label(&self) -> String {
        match self.tunnel {
            Tunnel::Vxlan { .. } => self.addr.to_string(),
            _ => self.addr.ip().to_string(),
        }
    }
}

pub fn run(args: &RunArgs) -> anyhow::Result<()> {
    let ifaces = resolve_ifaces(&args.ifaces)?;
    let targets = resolve_remotes(args)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(run_async(args, ifaces, targets))
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

fn resolve_remotes(args: &RunArgs) -> anyhow::Result<Vec<Target>> {
    let tunnel = args.tunnel().map_err(UsageError)?;
    let mut targets = Vec::new();
    for remote in &args.remotes {
        let unicast = match remote.ip {
            std::net::IpAddr::V4(ip) => {
                !(ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast())
            }
            std::net::IpAddr::V6(ip) => !(ip.is_unspecified() || ip.is_multicast()),
        };
        if !unicast {
            return Err(UsageError(format!("--remote {remote}: not a unicast address")).into());
        }
        let (tunnel, port) = match tunnel {
            Tunnel::Vxlan { vni, dst_port } => {
                let port = remote.port.unwrap_or(dst_port);
                (
                    Tunnel::Vxlan {
                        vni,
                        dst_port: port,
                    },
                    port,
                )
            }
            other => (other, 0),
        };
        let addr = SocketAddr::new(remote.ip, port);
        let route =
            route_to(addr).with_context(|| format!("finding the route to remote {remote}"))?;
        targets.push(Target {
            addr,
            tunnel,
            route,
        });
    }
    Ok(targets)
}

async fn run_async(args: &RunArgs, ifaces: Vec<Iface>, targets: Vec<Target>) -> anyhow::Result<()> {
    let metrics = Metrics::new()?;
    let _server = match args.metrics {
        Some(addr) => Some(crate::metrics::serve(addr, metrics.clone()).await?),
        None => None,
    };
    let (connection, handle, _) =
        rtnetlink::new_connection().context("opening a netlink socket")?;
    tokio::spawn(connection);
    // Room for the largest frame plus the tag (the veth MTU excludes the Ethernet header).
    let veth = MirrorVeth::create(handle, MAX_FRAME + TAG_LEN as u32).await?;
    let result = mirror(args, &ifaces, &targets, &metrics, &veth).await;
    let removed = veth.remove().await;
    result.and(removed)
}

async fn mirror(
    args: &RunArgs,
    ifaces: &[Iface],
    targets: &[Target],
    metrics: &Metrics,
    veth: &MirrorVeth,
) -> anyhow::Result<()> {
    let mut programs = Programs::load(Config {
        mirror_ifindex: veth.near_ifindex,
        agent_mark: args.agent_mark,
        ..Config::default()
    })?;
    veth.up().await?;
    programs.attach_xsk(veth::FAR)?;
    let xsk = Xsk::open(veth::FAR, 0)?;
    programs.register_socket(0, xsk.rx.fd())?;
    programs.attach_tagger(veth::NEAR)?;

    let sender = sender(args, targets, metrics)?;
    programs.set_own_sockets(&sender.sockets())?;
    let capture = Capture {
        xsk,
        sender,
        ifaces: ifaces
            .iter()
            .map(|iface| {
                let (ip, ib) = metrics.captured(&iface.name, "ingress");
                let (ep, eb) = metrics.captured(&iface.name, "egress");
                IfaceCounters {
                    ifindex: iface.ifindex,
                    packets: [ip, ep],
                    bytes: [ib, eb],
                }
            })
            .collect(),
        clock: MonotonicToUnix::now(),
        inner_dst_mac: args.inner_dst_mac,
        malformed: metrics.dropped(DropReason::Malformed),
        ring_full: metrics.dropped(DropReason::RingFull),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("mirror-capture".into())
        .spawn({
            let stop = Arc::clone(&stop);
            move || {
                let _ = done_tx.send(capture.run(&stop));
            }
        })
        .context("starting the capture thread")?;

    let mut kernel = KernelCounters::new(metrics);
    let outcome = async {
        attach_all(&mut programs, args, ifaces, metrics)?;
        let remotes: Vec<String> = targets.iter().map(Target::label).collect();
        let names: Vec<&str> = ifaces.iter().map(|i| i.name.as_str()).collect();
        eprintln!(
            "mirror: ready: copying {} ({}) to {} over {}",
            names.join(", "),
            direction_name(args),
            remotes.join(", "),
            args.tunnel.name(),
        );
        wait(&mut done_rx, &programs, &mut kernel).await
    }
    .await;
    // Stop new copies first, then let the thread drain what is already in the ring.
    programs.pause()?;
    stop.store(true, Ordering::Relaxed);
    let finished = match done_rx.await {
        Ok(result) => result,
        Err(_) => Err(anyhow::anyhow!("the capture thread panicked")),
    };
    let _ = thread.join();
    kernel.update(&programs);
    metrics.attached_interfaces.set(0);
    // Dropping the programs detaches every TCX and XDP link.
    drop(programs);
    outcome.and(finished)
}

fn direction_name(args: &RunArgs) -> &'static str {
    match (args.direction.ingress(), args.direction.egress()) {
        (true, true) => "both directions",
        (true, false) => "ingress",
        _ => "egress",
    }
}

fn sender(args: &RunArgs, targets: &[Target], metrics: &Metrics) -> anyhow::Result<Sender> {
    let tunnel = args.tunnel.name();
    let mut destinations = Vec::new();
    for target in targets {
        let (sent_packets, sent_bytes) = metrics.sent(tunnel, &target.label());
        let encap = Encap::new(&target.tunnel, target.route.source, target.addr.ip())
            .map_err(|e| UsageError(format!("--remote {}: {e}", target.addr.ip())))?;
        destinations.push(Destination {
            max_inner: encap.max_inner_len(target.route.mtu),
            encap,
            addr: target.addr,
            sent_packets,
            sent_bytes,
        });
    }
    let options = SendOptions {
        snaplen: args.snaplen.map(|s| s as usize),
        oversize: match args.oversize {
            OversizeArg::Truncate => Oversize::Truncate,
            OversizeArg::Drop => Oversize::Drop,
        },
        balance: match args.balance {
            BalanceArg::Replicate => Balance::Replicate,
            BalanceArg::Flow => Balance::Flow,
        },
    };
    let counters = SendCounters {
        too_big: metrics.dropped(DropReason::TooBig),
        send_error: metrics.dropped(DropReason::SendError),
        truncated_snaplen: metrics.truncated("snaplen"),
        truncated_mtu: metrics.truncated("mtu"),
    };
    Sender::new(destinations, options, counters, BATCH, args.agent_mark)
        .context("opening the raw send sockets")
}

fn attach_all(
    programs: &mut Programs,
    args: &RunArgs,
    ifaces: &[Iface],
    metrics: &Metrics,
) -> anyhow::Result<()> {
    for iface in ifaces {
        programs.attach_mirror(
            &iface.name,
            args.direction.ingress(),
            args.direction.egress(),
        )?;
        metrics.attached_interfaces.inc();
    }
    Ok(())
}

/// Waits for SIGINT or SIGTERM (`Ok`) or the end of the capture thread (its error).
async fn wait(
    done: &mut tokio::sync::oneshot::Receiver<anyhow::Result<()>>,
    programs: &Programs,
    kernel: &mut KernelCounters,
) -> anyhow::Result<()> {
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = sigint.recv() => return Ok(()),
            _ = sigterm.recv() => return Ok(()),
            result = &mut *done => {
                return result
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("the capture thread panicked")))
                    .and_then(|()| Err(anyhow::anyhow!("the capture thread stopped")));
            }
            _ = tick.tick() => kernel.update(programs),
        }
    }
}

/// Kernel-side drop counters, carried into the metrics as deltas.
struct KernelCounters {
    sources: Vec<(KernelCounter, prometheus::IntCounter, u64)>,
}

impl KernelCounters {
    fn new(metrics: &Metrics) -> Self {
        let sources = [
            (KernelCounter::CloneFailed, DropReason::CloneFailed),
            (KernelCounter::TagFailed, DropReason::CloneFailed),
            (KernelCounter::TooBig, DropReason::TooBig),
        ];
        Self {
            sources: sources
                .into_iter()
                .map(|(k, r)| (k, metrics.dropped(r), 0))
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
