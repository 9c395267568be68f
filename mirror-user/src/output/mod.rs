//! Where copies go: the remotes, their tunnels and routes, and the sender that serves them.
//! Shared by `mirror run` and `mirror replay`; [`args`] holds their options.
pub mod args;

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use anyhow::Context as _;

use self::args::{BalanceArg, OutputArgs, OversizeArg};
use crate::{
    UsageError,
    capture::BATCH,
    filter::Filter,
    metrics::{DropReason, Metrics},
    netflow::collector::{Collectors, FlowExport, FlowSettings},
    remote::{Remote, route_to},
    send::{Balance, Oversize, RemoteEncap, SendCounters, SendOptions, Sender},
    tunnel::{Encap, Tunnel},
};

/// Checks every `--remote` and asks the kernel for its route.
pub fn resolve_remotes(args: &OutputArgs) -> anyhow::Result<Vec<Remote>> {
    let tunnel = args.tunnel().map_err(UsageError)?;
    let mut resolved = Vec::new();
    for remote in &args.remotes {
        let unicast = match remote.ip {
            IpAddr::V4(ip) => !(ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast()),
            IpAddr::V6(ip) => !(ip.is_unspecified() || ip.is_multicast()),
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
        resolved.push(Remote {
            addr,
            tunnel,
            route,
        });
    }
    Ok(resolved)
}

/// The compiled `--filter`, if one is given; a bad expression is a usage error.
pub fn filter(args: &OutputArgs) -> anyhow::Result<Option<Filter>> {
    let Some(expression) = &args.filter else {
        return Ok(None);
    };
    Filter::compile(expression).map_err(|e| UsageError(e.to_string()).into())
}

/// The NetFlow exporter of `--netflow`, if any collector is given.
pub fn flow_export(args: &OutputArgs, metrics: &Metrics) -> anyhow::Result<Option<FlowExport>> {
    if args.netflow.is_empty() {
        return Ok(None);
    }
    let collectors = Collectors::connect(&args.netflow_collectors(), args.agent_mark, metrics)
        .context("opening the NetFlow export sockets")?;
    let settings = FlowSettings {
        ipfix_domain: args.ipfix_domain,
        inactive: Duration::from_secs(args.netflow_inactive_timeout.into()),
        active: Duration::from_secs(args.netflow_active_timeout.into()),
        max_flows: args.flow_cache_size as usize,
        engine_type: args.netflow_engine_type,
        engine_id: args.netflow_engine_id,
        sample: args.sample,
    };
    FlowExport::new(settings, collectors, metrics).map(Some)
}

/// The sender for these remotes, with the size and balancing options.
pub fn sender(args: &OutputArgs, remotes: &[Remote], metrics: &Metrics) -> anyhow::Result<Sender> {
    let tunnel = args.tunnel.name();
    let mut encaps = Vec::new();
    for remote in remotes {
        let (sent_packets, sent_bytes) = metrics.sent(tunnel, &remote.label());
        let encap = Encap::new(&remote.tunnel, remote.route.source, remote.addr.ip())
            .map_err(|e| UsageError(format!("--remote {}: {e}", remote.addr.ip())))?;
        encaps.push(RemoteEncap {
            max_inner: encap.max_inner_len(remote.route.mtu),
            mtu: remote.route.mtu as usize,
            encap,
            addr: remote.addr,
            sent_packets,
            sent_bytes,
        });
    }
    let options = SendOptions {
        snaplen: args.snaplen.map(|s| s as usize),
        oversize: match args.oversize {
            OversizeArg::Truncate => Oversize::Truncate,
            OversizeArg::Drop => Oversize::Drop,
            OversizeArg::Fragment => Oversize::Fragment,
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
        fragmented: metrics.fragmented.clone(),
    };
    Sender::new(encaps, options, counters, BATCH, args.agent_mark)
        .context("opening the raw send sockets")
}
