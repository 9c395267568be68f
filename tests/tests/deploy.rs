//! `deploy/`: the manifests validate offline against the Kubernetes schemas, the DaemonSet's
//! capabilities are enough for the agent (and it runs with exactly those), and the Grafana
//! dashboard only queries metrics the agent serves.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{Context as _, Result, bail, ensure};
use mirror_tests::{
    Agent, AgentArgs, Capture, Direction, World,
    agent::workspace_root,
    caps::{CapsWrapper, ProcessCaps, daemonset_capabilities, mask},
    kube_api::{ApiPod, FakeApi},
    netns::unique_prefix,
    pod::FakePod,
    proc::{describe, run_unchecked},
    report, skip_unless_root,
    world::{NODE_POD_IF, REMOTE_IP, REMOTE_VTEP_IF},
};

/// Overrides where `kubernetes-validate` (PyPI) is taken from.
const VALIDATOR_ENV: &str = "KUBERNETES_VALIDATE";
/// The manifests `kubectl apply -k deploy/` applies.
const MANIFESTS: [&str; 4] = [
    "namespace.yaml",
    "rbac.yaml",
    "configmap.yaml",
    "daemonset.yaml",
];
/// The oldest Kubernetes release the manifests are meant for, and a recent one.
const KUBERNETES_VERSIONS: [&str; 2] = ["1.29.0", "1.33.0"];

fn deploy_dir() -> PathBuf {
    workspace_root().join("deploy")
}

/// `$KUBERNETES_VALIDATE`, else `kubernetes-validate` from `PATH`.
fn validator() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(VALIDATOR_ENV) {
        return Some(PathBuf::from(path));
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("kubernetes-validate"))
            .find(|candidate| candidate.is_file())
    })
}

#[test]
fn manifests_validate_offline() -> Result<()> {
    // `cargo xtask setup` installs it; a missing validator is a failure, not a skip.
    let Some(validator) = validator() else {
        anyhow::bail!(
            "kubernetes-validate (PyPI) is not installed: run `cargo xtask setup`, \
             or `pip install kubernetes-validate`, or point {VALIDATOR_ENV} at it"
        );
    };
    let dir = deploy_dir();
    for version in KUBERNETES_VERSIONS {
        let mut cmd = Command::new(&validator);
        cmd.args(["--strict", "--kubernetes-version", version])
            .args(MANIFESTS.iter().map(|m| dir.join(m)));
        let output = run_unchecked(&mut cmd)?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        ensure!(
            output.status.success() && !text.contains("ERROR"),
            "`{}` failed ({}):\n{text}",
            describe(&cmd),
            output.status
        );
        // namespace, service account, cluster role, binding, config map, daemon set.
        let passed = text.lines().filter(|l| l.contains(" passed ")).count();
        ensure!(
            passed == 6,
            "expected 6 resources to pass against Kubernetes {version}, got {passed}:\n{text}"
        );
    }
    Ok(())
}

#[test]
fn daemonset_capabilities_suffice() -> Result<()> {
    if skip_unless_root("daemonset_capabilities_suffice") {
        return Ok(());
    }
    let caps = daemonset_capabilities()?;
    report(&format!(
        "daemonset_capabilities_suffice: the agent runs with {}",
        caps.join(", ")
    ));
    let wrapper = CapsWrapper::new(&caps)?;
    let world = World::new(42)?;
    // Like a pause process: another user's, not dumpable; found through the API by its IP.
    let pod = FakePod::start_as(
        &world.node,
        &format!("coffee-{}", unique_prefix()),
        "vethcoffee",
        11,
        Some(65535),
    )?;
    let api = FakeApi::start(&world.node)?;
    api.put(&ApiPod::running("shop", pod.name(), "test-node", &pod.ip()));
    let remote = Capture::start(&world.remote, REMOTE_VTEP_IF, Direction::In, None)?;
    let mut args = AgentArgs::vxlan(&world, &[]);
    args.extra = vec![
        "--kubeconfig".into(),
        api.kubeconfig().display().to_string(),
        "--node-name".into(),
        "test-node".into(),
        "--pod".into(),
        format!("shop/{}", pod.name()),
    ];
    let agent = Agent::start_bin(&world.node, &wrapper.path, &args)
        .context("the agent did not start with the DaemonSet's capabilities")?;
    ProcessCaps::of(agent.pid())?
        .check_exactly(mask(&caps)?)
        .context("setpriv did not drop the other capabilities")?;
    pod.ping_node(10)?;
    let arrived = remote.wait_for_frames(20, Duration::from_secs(10), Duration::from_millis(300));
    ensure!(
        arrived == 20,
        "with the DaemonSet's capabilities {arrived} copies of 20 frames arrived"
    );
    drop(agent);
    Ok(())
}

/// The `mirror_*` names in a PromQL expression.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find("mirror_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

fn dashboard_exprs(dashboard: &serde_json::Value) -> Vec<String> {
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                exprs.push(expr.to_owned());
            }
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(query) = variable["query"]["query"].as_str() {
            exprs.push(query.to_owned());
        }
    }
    exprs
}

#[test]
fn dashboard_queries_only_served_metrics() -> Result<()> {
    let path = deploy_dir().join("grafana-dashboard.json");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let dashboard: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let exprs = dashboard_exprs(&dashboard);
    ensure!(
        exprs.len() > 10,
        "the dashboard has only {} queries",
        exprs.len()
    );
    let used: BTreeSet<String> = exprs.iter().flat_map(|e| metric_names(e)).collect();
    if skip_unless_root("dashboard_queries_only_served_metrics (against a live agent)") {
        return Ok(());
    }
    let world = World::new(42)?;
    // With a NetFlow collector, so that the NetFlow series exist too (nothing listens there).
    let mut args = AgentArgs::vxlan(&world, &[NODE_POD_IF]);
    args.extra = vec!["--netflow".into(), format!("{REMOTE_IP}:2055")];
    let agent = Agent::start(&world.node, &args)?;
    let served: BTreeSet<String> = agent
        .metrics_text()?
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    let unknown: Vec<_> = used.difference(&served).collect();
    if !unknown.is_empty() {
        bail!(
            "{} queries metrics the agent does not serve: {unknown:?} (served: {served:?})",
            path.display()
        );
    }
    Ok(())
}

#[test]
fn metric_names_are_found_in_promql() {
    let names = metric_names(
        "8 * sum by (pod) (rate(mirror_captured_bytes_total{pod=~\"$pod\"}[5m])) / mirror_x",
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["mirror_captured_bytes_total", "mirror_x"]
    );
    assert!(Path::new(&deploy_dir()).is_dir());
}
