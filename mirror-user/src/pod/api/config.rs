//! Which Kubernetes API to ask, if any, and which node the agent is on.
//!
//! `--kubeconfig FILE` first; else the in-cluster service account of a pod (the environment
//! variable `KUBERNETES_SERVICE_HOST` and the token file that kubelet mounts); else none, and pods
//! are found on the node alone. `~/.kube/config` and `$KUBECONFIG` are not looked at: an agent on a
//! developer's machine must not start asking the cluster its user happens to point at.
use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use super::ApiError;

/// Where kubelet mounts a pod's service account token.
pub const SERVICE_ACCOUNT_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
/// Set in every container of a cluster: the API server's service address.
pub const SERVICE_HOST_ENV: &str = "KUBERNETES_SERVICE_HOST";
/// How long to wait for the API server's TCP (and TLS) handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the API's address and credentials come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Kubeconfig(PathBuf),
    InCluster,
}

impl Source {
    /// The source the agent uses: `kubeconfig` when given; in a pod with a service account,
    /// in-cluster; else `None`.
    pub fn select(
        kubeconfig: Option<&Path>,
        service_host: Option<&str>,
        token_exists: bool,
    ) -> Option<Self> {
        match (kubeconfig, service_host) {
            (Some(path), _) => Some(Self::Kubeconfig(path.to_owned())),
            (None, Some(host)) if !host.is_empty() && token_exists => Some(Self::InCluster),
            _ => None,
        }
    }

    /// [`Source::select`] with this process's environment.
    pub fn from_env(kubeconfig: Option<&Path>) -> Option<Self> {
        let host = std::env::var(SERVICE_HOST_ENV).ok();
        Self::select(
            kubeconfig,
            host.as_deref(),
            Path::new(SERVICE_ACCOUNT_TOKEN).is_file(),
        )
    }

    /// The client configuration; a kubeconfig that cannot be read or used is the user's to fix.
    pub async fn config(&self) -> Result<kube::Config, ApiError> {
        let mut config = match self {
            Self::Kubeconfig(path) => {
                let file = kube::config::Kubeconfig::read_from(path).map_err(|e| {
                    ApiError::Kubeconfig {
                        path: path.clone(),
                        problem: first_line(&e),
                    }
                })?;
                kube::Config::from_custom_kubeconfig(
                    file,
                    &kube::config::KubeConfigOptions::default(),
                )
                .await
                .map_err(|e| ApiError::Kubeconfig {
                    path: path.clone(),
                    problem: first_line(&e),
                })?
            }
            Self::InCluster => {
                kube::Config::incluster().map_err(|e| ApiError::InCluster(e.to_string()))?
            }
        };
        config.connect_timeout = Some(CONNECT_TIMEOUT);
        Ok(config)
    }
}

/// The first line of `error`: YAML errors go on with a picture of the file.
fn first_line(error: &impl std::fmt::Display) -> String {
    let text = error.to_string();
    text.lines()
        .next()
        .unwrap_or_default()
        .trim_end()
        .to_owned()
}

/// The node the agent runs on: `--node-name` (the DaemonSet sets `NODE_NAME` from
/// `spec.nodeName`), else the hostname, which is the node's name on most clusters.
pub fn node_name(given: Option<&str>) -> Result<String, ApiError> {
    match given {
        Some(name) if !name.is_empty() => Ok(name.to_owned()),
        _ => hostname(),
    }
}

fn hostname() -> Result<String, ApiError> {
    let mut buf = [0_u8; 256];
    // SAFETY: gethostname(2) writes at most `buf.len()` bytes into the live buffer.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..end]) {
        Ok(name) if rc == 0 && !name.is_empty() => Ok(name.to_owned()),
        _ => Err(ApiError::NodeName),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubeconfig_first_then_in_cluster_then_none() {
        let file = Path::new("/etc/mirror/kubeconfig");
        assert_eq!(
            Source::select(Some(file), Some("10.96.0.1"), true),
            Some(Source::Kubeconfig(file.to_owned()))
        );
        assert_eq!(
            Source::select(Some(file), None, false),
            Some(Source::Kubeconfig(file.to_owned()))
        );
        assert_eq!(
            Source::select(None, Some("10.96.0.1"), true),
            Some(Source::InCluster)
        );
        // A pod without a mounted token (automountServiceAccountToken: false), or no cluster.
        assert_eq!(Source::select(None, Some("10.96.0.1"), false), None);
        assert_eq!(Source::select(None, Some(""), true), None);
        assert_eq!(Source::select(None, None, true), None);
    }

    #[test]
    fn node_name_is_given_or_the_hostname() {
        assert_eq!(node_name(Some("worker-1")).unwrap(), "worker-1");
        let host = node_name(None).unwrap();
        assert!(!host.is_empty());
        assert_eq!(node_name(Some("")).unwrap(), host);
    }

    #[tokio::test]
    async fn a_broken_kubeconfig_names_the_file() {
        let dir = std::env::temp_dir().join(format!("mirror-kubeconfig-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.yaml");
        let err = Source::Kubeconfig(missing.clone())
            .config()
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("--kubeconfig {}: ", missing.display())),
            "{err}"
        );
        let broken = dir.join("broken.yaml");
        std::fs::write(&broken, "apiVersion: v1\nclusters: [\n").unwrap();
        let err = Source::Kubeconfig(broken.clone())
            .config()
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("--kubeconfig {}: ", broken.display())) && !err.contains('\n'),
            "{err}"
        );
        let empty = dir.join("empty.yaml");
        std::fs::write(
            &empty,
            "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n",
        )
        .unwrap();
        let err = Source::Kubeconfig(empty.clone())
            .config()
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("--kubeconfig {}: ", empty.display())),
            "{err}"
        );
        let good = dir.join("good.yaml");
        std::fs::write(
            &good,
            "apiVersion: v1\nkind: Config\ncurrent-context: test\n\
             clusters: [{name: test, cluster: {server: 'http://127.0.0.1:6443'}}]\n\
             contexts: [{name: test, context: {cluster: test, user: test}}]\n\
             users: [{name: test, user: {}}]\n",
        )
        .unwrap();
        let config = Source::Kubeconfig(good).config().await.unwrap();
        assert_eq!(config.cluster_url.to_string(), "http://127.0.0.1:6443/");
        assert_eq!(config.connect_timeout, Some(CONNECT_TIMEOUT));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
