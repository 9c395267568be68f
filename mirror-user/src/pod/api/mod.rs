//! Pods through the Kubernetes API: which pods to mirror, and their IPs. The veths are still
//! found on the node: the IPs go to the node-local resolver as `--pod-ip` would.
//!
//! - [`config`]: which API (`--kubeconfig`, the in-cluster service account, or none) and which
//!   node (`--node-name`, else the hostname);
//! - [`client`]: at start, where each `--pod` runs (a pod on another node, or none, is an
//!   error unless `--wait-for-pods`);
//! - [`selector`]: `--pod-selector` as the API server parses it;
//! - [`watch`]: one kube `watcher` per `--pod` and per `--pod-selector`, restricted to this
//!   node, turning the pods that come and go into [`PodUpdate`]s for the follower.
//!
//! The agent only reads pods: get, list and watch (`deploy/rbac.yaml`).

pub mod client;
pub mod config;
pub mod selector;
pub mod watch;

use std::{error::Error as _, net::IpAddr, path::PathBuf};

pub use self::{client::Api, selector::LabelSelector, watch::PodUpdates};

/// What the API says of one pod, as one watch sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodUpdate {
    /// The watch: one per `--pod` (in order), then one per `--pod-selector`.
    pub watch: usize,
    pub namespace: String,
    pub name: String,
    /// The pod's IPs while it runs on this node; `None` once it is deleted, stopped, moved or
    /// no longer selected.
    pub ips: Option<Vec<IpAddr>>,
}

/// Why the API cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("--kubeconfig {}: {problem}", path.display())]
    Kubeconfig { path: PathBuf, problem: String },
    #[error("the in-cluster Kubernetes configuration: {0}")]
    InCluster(String),
    #[error("the Kubernetes API client: {0}")]
    Client(String),
    #[error("cannot tell this node's name: give --node-name (or NODE_NAME)")]
    NodeName,
    #[error("the Kubernetes API at {url}: {problem}")]
    Request { url: String, problem: String },
}

/// A kube error in one line: the API's own status, or the chain of causes of a failed request
/// (`connection refused`), without kube's debug dumps.
pub fn describe(error: &kube::Error) -> String {
    if let kube::Error::Api(status) = error {
        return match (status.reason.as_str(), status.message.as_str()) {
            ("", "") => format!("HTTP {}", status.code),
            (reason, "") => format!("HTTP {} {reason}", status.code),
            (_, message) => format!("HTTP {}: {message}", status.code),
        };
    }
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
