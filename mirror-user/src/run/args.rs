//! The options of `mirror run`: what to mirror and how it is captured; where the copies go is
//! [`OutputArgs`].
use clap::{Args, ValueEnum};

use super::cpus::{self, CpuList};
use crate::{
    output::args::OutputArgs,
    pod::{PodName, Wanted, api::LabelSelector},
};

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Interface to mirror, e.g. a pod's host-side veth or eth0 (repeatable; at least one
    /// --iface, --pod, --pod-ip or --pod-selector). Attached again if it is deleted and comes back
    /// under the same name.
    #[arg(long = "iface", value_name = "NAME")]
    pub ifaces: Vec<String>,

    /// Pod on this node to mirror (its host-side veth), followed through restarts (repeatable).
    /// With the Kubernetes API (--kubeconfig, or a service account), the API says where it runs
    /// and its IPs, and a bare NAME means that name in any namespace. Without it, the pod is found
    /// by its hostname (its name, unless the pod sets `hostname`: then use --pod-ip), and the
    /// NAMESPACE only labels the metrics.
    #[arg(long = "pod", value_name = "[NAMESPACE/]NAME")]
    pub pods: Vec<PodName>,

    /// Pod on this node to mirror, by an IP address of its eth0 (repeatable).
    #[arg(long = "pod-ip", value_name = "IP")]
    pub pod_ips: Vec<std::net::IpAddr>,

    /// Mirror every pod of this node whose labels match, as such pods come and go (Kubernetes
    /// syntax: `app=web,tier in (a,b),!legacy`; repeatable: a pod matching any is mirrored).
    /// Needs the Kubernetes API.
    #[arg(long = "pod-selector", value_name = "LABELS")]
    pub pod_selectors: Vec<LabelSelector>,

    /// Kubernetes API access from this kubeconfig file. Without it, a pod's service account is
    /// used when the agent runs in one; else pods are found on the node alone.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<std::path::PathBuf>,

    /// This node's name in Kubernetes (the pods' spec.nodeName); default: the hostname.
    #[arg(long, value_name = "NAME", env = "NODE_NAME")]
    pub node_name: Option<String>,

    /// A --pod that is not on this node is waited for, and mirrored when it appears here,
    /// instead of an exit with code 2 (for a DaemonSet, whose agents run on every node).
    #[arg(long)]
    pub wait_for_pods: bool,

    /// Which packets of each interface to copy, as the interface sees them: `ingress` is what it
    /// receives (for a pod's host-side veth: what the pod sends), `egress` what it transmits.
    #[arg(long, value_enum, default_value_t = DirectionArg::Both)]
    pub direction: DirectionArg,

    /// Receive the copies in a kernel thread pinned to the agent's CPUs (threaded NAPI on the
    /// mirror veth's far end) instead of on the mirrored pods' cores: the pods keep more of
    /// their own throughput, at more CPU per copy and, with one agent CPU, more copies lost.
    #[arg(long)]
    pub threaded_napi: bool,

    /// Where `--filter` runs: `kernel` translates it into the classifier, so a packet it
    /// leaves out is never cloned (user space still filters the copies the kernel cannot: a
    /// VLAN tag held out of band, or a program the kernel refuses, said at start); `user`
    /// filters every copy after capture, counted per interface.
    #[arg(long, value_enum, default_value_t = FilterPathArg::Kernel)]
    pub filter_path: FilterPathArg,

    /// How a copy reaches the agent: `ring` writes it from the classifier straight into a BPF
    /// ring buffer (frames up to 2048 bytes, and TCP super-frames up to 64 KB, which the agent
    /// cuts into their segments) and clones only the rest (jumbo frames, UDP and tunnel
    /// super-frames) into the mirror veth; `clone` clones every whole copy. Copies are sent in
    /// the order they were taken, except that a clone still on its way through the veth can be
    /// overtaken by a later copy from the ring.
    #[arg(long, value_enum, default_value_t = CapturePathArg::Ring)]
    pub capture_path: CapturePathArg,

    /// CPUs of the capture threads, one pinned to each (e.g. `0-3,6`; at most 8). Copies taken
    /// on CPU c go to the (c mod N)-th thread, which sends them from its own queue of each uplink
    /// (queue i for the i-th; a device with fewer queues gets the raw socket from the threads
    /// beyond). Default: every CPU the agent may run on. One thread with `--capture-path clone`
    /// for tunnels that number their packets (GRE sequence numbers, ERSPAN II and III) and with
    /// `--netflow` (a flow meter needs the packets in wire order).
    #[arg(long, value_name = "LIST", value_parser = cpus::parse)]
    pub cpus: Option<CpuList>,

    #[command(flatten)]
    pub output: OutputArgs,
}

impl RunArgs {
    /// `--pod` then `--pod-ip`, in the order given.
    pub fn wanted_pods(&self) -> Vec<Wanted> {
        self.pods
            .iter()
            .cloned()
            .map(Wanted::Name)
            .chain(self.pod_ips.iter().copied().map(Wanted::Ip))
            .collect()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DirectionArg {
    Ingress,
    Egress,
    Both,
}

impl DirectionArg {
    pub fn ingress(self) -> bool {
        self != Self::Egress
    }

    pub fn egress(self) -> bool {
        self != Self::Ingress
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FilterPathArg {
    Kernel,
    User,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CapturePathArg {
    Ring,
    Clone,
}
