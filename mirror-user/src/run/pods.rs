//! The pods `mirror run` starts with. With the Kubernetes API: where each `--pod` runs (another
//! node, or none, is an error unless `--wait-for-pods`), then one watch per `--pod` and per
//! `--pod-selector` whose first lists give the pods' IPs. Without it (none configured, or the
//! API does not answer: one warning), `--pod` is found by hostname. Either way the veths are then
//! looked for once: by IP from the node's side, by hostname in the node's namespaces.
use anyhow::Context as _;

use super::args::RunArgs;
use crate::{
    UsageError,
    pod::{
        self, Resolution, Wanted,
        api::{
            Api, ApiError, PodUpdates,
            client::{Misplaced, check_placement},
            config::{self, Source},
            watch::WatchSpec,
        },
        wanted::WantedSet,
    },
};

/// The pods found at start, and the API's updates to come.
pub struct Pods {
    pub wanted: WantedSet,
    pub found: Resolution,
    pub updates: PodUpdates,
}

pub async fn find(args: &RunArgs) -> anyhow::Result<Pods> {
    let mut api = connect(args).await?;
    let mut wanted = WantedSet::default();
    // The ids that must be found now, unless --wait-for-pods.
    let mut required = Vec::new();
    let mut specs = Vec::new();
    if let Some(client) = &api
        && !args.pods.is_empty()
    {
        match place(client, args).await {
            Ok(()) => specs.extend(args.pods.iter().map(|p| WatchSpec::pod(p, client.node()))),
            Err(Placing::Usage(e)) => return Err(e.into()),
            Err(Placing::Api(e)) if args.pod_selectors.is_empty() => {
                tracing::warn!(
                    "mirror: warning: {e}; finding --pod by hostname on this node instead"
                );
                api = None;
            }
            Err(Placing::Api(e)) => return Err(e.into()),
        }
    }
    if api.is_none() {
        required.extend(
            args.pods
                .iter()
                .map(|p| wanted.add(Wanted::Name(p.clone()))),
        );
    }
    required.extend(args.pod_ips.iter().map(|ip| wanted.add(Wanted::Ip(*ip))));
    let mut updates = PodUpdates::default();
    if let Some(client) = &api {
        let pod_watches = specs.len();
        specs.extend(
            args.pod_selectors
                .iter()
                .map(|s| WatchSpec::selector(s, client.node())),
        );
        let (running, first) = PodUpdates::start(client, &specs).await?;
        for update in first {
            let from_pod = update.watch < pod_watches;
            if let Some(id) = wanted.apply(update).added
                && from_pod
            {
                required.push(id);
            }
        }
        updates = running;
    }
    let found = if wanted.is_empty() {
        Resolution::default()
    } else {
        pod::resolve_now(wanted.snapshot())
            .await
            .context("looking for the pods on this node")?
    };
    let required: Vec<(usize, Wanted)> = wanted
        .snapshot()
        .iter()
        .filter(|(id, _)| required.contains(id))
        .cloned()
        .collect();
    if args.wait_for_pods {
        for one in required.chunks(1) {
            if let Err(e) = found.check_all_found(one) {
                tracing::info!("mirror: waiting: {e}");
            }
        }
    } else {
        found.check_all_found(&required)?;
    }
    Ok(Pods {
        wanted,
        found,
        updates,
    })
}

/// Before anything is set up: `--pod-selector` needs the Kubernetes API.
pub fn check_usage(args: &RunArgs) -> Result<(), UsageError> {
    match args.pod_selectors.first() {
        Some(selector) if Source::from_env(args.kubeconfig.as_deref()).is_none() => {
            Err(UsageError(format!(
                "--pod-selector {selector}: needs the Kubernetes API: give --kubeconfig FILE, or run the agent in a pod with a service account"
            )))
        }
        _ => Ok(()),
    }
}

/// The API client, when one is configured and needed; a kubeconfig that cannot be used is a
/// usage error.
async fn connect(args: &RunArgs) -> anyhow::Result<Option<Api>> {
    if args.pods.is_empty() && args.pod_selectors.is_empty() {
        return Ok(None);
    }
    check_usage(args)?;
    let Some(source) = Source::from_env(args.kubeconfig.as_deref()) else {
        return Ok(None);
    };
    let node =
        config::node_name(args.node_name.as_deref()).map_err(|e| UsageError(e.to_string()))?;
    match Api::connect(&source, node).await {
        Ok(api) => Ok(Some(api)),
        Err(e @ (ApiError::Kubeconfig { .. } | ApiError::NodeName)) => {
            Err(UsageError(e.to_string()).into())
        }
        Err(e) if args.pod_selectors.is_empty() => {
            tracing::warn!("mirror: warning: {e}; finding --pod by hostname on this node instead");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

enum Placing {
    /// A `--pod` that cannot be mirrored here.
    Usage(UsageError),
    /// The API did not answer, or refused.
    Api(ApiError),
}

/// Checks where each `--pod` runs; with `--wait-for-pods`, one that is not here yet is waited
/// for (one line each).
async fn place(api: &Api, args: &RunArgs) -> Result<(), Placing> {
    for asked in &args.pods {
        let pods = api.lookup(asked).await.map_err(Placing::Api)?;
        match check_placement(asked, &pods, api.node(), api.url()) {
            Ok(()) => {}
            Err(Misplaced::NotYet(why)) if args.wait_for_pods => {
                tracing::info!("mirror: waiting: {why}");
            }
            Err(Misplaced::NotYet(why) | Misplaced::Never(why)) => {
                return Err(Placing::Usage(UsageError(why)));
            }
        }
    }
    Ok(())
}
