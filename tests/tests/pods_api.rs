//! `mirror run` with the Kubernetes API: `--pod NAMESPACE/NAME` resolved through it,
//! `--pod-selector`, `--wait-for-pods`, and the errors and fall-backs around them.
//!
//! No cluster runs here: a fake API server ([`FakeApi`]) answers on 127.0.0.1 inside the test
//! world's node namespace, over plain HTTP, from a kubeconfig the agent gets with `--kubeconfig`.
//! The pods it reports are fake pods on the node ([`FakePod`]: namespaces whose hostname is the
//! pod name) with the IPs the fake API gives. To show that a pod is found through the API and
//! not by its hostname, the API's pod is a fake pod with *another* hostname, while a decoy pod's
//! hostname is the API's pod name.

use std::{
    process::Command,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Result, ensure};
use mirror_tests::{
    Agent, AgentArgs, Background, Capture, Direction, World,
    agent::run_rejected,
    attachments::{Hook, tcx_prog_count},
    diff_frames, existing_mirror_bin, is_root,
    kube_api::{ApiPod, FakeApi},
    netns::unique_prefix,
    pod::FakePod,
    scratch::ScratchDir,
    skip_unless_root,
    world::{NODE_POD_IF, REMOTE_IP, REMOTE_VTEP_IF},
};

const VNI: u32 = 42;
/// The node's name as the agent is told (`--node-name`) and the fake API places pods.
const NODE: &str = "test-node";
const ELSEWHERE: &str = "other-node";
const PINGS: usize = 20;
/// Each echo request and its reply.
const FRAMES: usize = 2 * PINGS;
/// How soon a pod the API reports (or that appears) must be mirrored.
const ATTACH: Duration = Duration::from_secs(2);

/// A pod name unique to this test run: `BASE-mtPIDxN`.
fn pod_name(base: &str) -> String {
    format!("{base}-{}", unique_prefix())
}

fn count(n: usize) -> u64 {
    u64::try_from(n).expect("usize fits in u64")
}

/// `--kubeconfig FILE --node-name NODE` and `options`.
fn with_api(api: &FakeApi, options: &[&str]) -> Vec<String> {
    let mut all = vec![
        "--kubeconfig".to_owned(),
        api.kubeconfig().display().to_string(),
        "--node-name".to_owned(),
        NODE.to_owned(),
    ];
    all.extend(options.iter().map(ToString::to_string));
    all
}

fn agent(world: &World, options: Vec<String>) -> Result<Agent<'_>> {
    let mut args = AgentArgs::vxlan(world, &[]);
    args.extra = options;
    Agent::start(&world.node, &args)
}

/// TCX programs on `dev` in the node, ingress and egress.
fn tcx(world: &World, dev: &str) -> Result<(u32, u32)> {
    Ok((
        tcx_prog_count(&world.node, dev, Hook::Ingress)?,
        tcx_prog_count(&world.node, dev, Hook::Egress)?,
    ))
}

/// Waits (up to 3 × [`ATTACH`]) for the `n`th attachment and checks it came within [`ATTACH`]
/// of `since`.
fn attached_within(agent: &Agent<'_>, n: usize, since: Instant, what: &str) -> Result<()> {
    let metrics = agent.wait_for_metrics(ATTACH * 3, |m| {
        m.total("mirror_attach_total", &[]) >= count(n)
    })?;
    let took = since.elapsed();
    println!("{what}: attached {took:?} after it appeared");
    ensure!(
        metrics.total("mirror_attach_total", &[]) == count(n),
        "{what}: mirror_attach_total is {}, expected {n}; agent said {:?}",
        metrics.total("mirror_attach_total", &[]),
        agent.stderr_lines()
    );
    ensure!(
        took <= ATTACH,
        "{what} was attached {took:?} after it appeared, more than {ATTACH:?}"
    );
    Ok(())
}

/// `others` ping, then `pod`: exactly the frames of `pod` reach the remote.
fn mirrors(world: &World, others: &[&FakePod], pod: &FakePod) -> Result<()> {
    let mut local = Capture::start(&world.node, pod.host_if(), Direction::InOut, None)?;
    let mut remote = Capture::start(&world.remote, REMOTE_VTEP_IF, Direction::In, None)?;
    for other in others {
        other.ping_node(PINGS)?;
    }
    pod.ping_node(PINGS)?;
    remote.wait_for_frames(FRAMES, Duration::from_secs(10), Duration::from_millis(500));
    let sent = local.finish()?;
    let arrived = remote.finish()?;
    ensure!(
        sent.len() == FRAMES,
        "{} saw {} frames, not {FRAMES}: the world is not quiet",
        pod.host_if(),
        sent.len()
    );
    if let Some(diff) = diff_frames(&sent, &arrived) {
        anyhow::bail!(
            "the remote did not receive exactly the frames of {}: {diff}",
            pod.name()
        );
    }
    Ok(())
}

#[test]
fn pod_through_the_api_is_found_by_its_ip() -> Result<()> {
    if skip_unless_root("pod_through_the_api_is_found_by_its_ip") {
        return Ok(());
    }
    let world = World::new(VNI)?;
    // The decoy's hostname is the API pod's name: a resolver by hostname would take it.
    let decoy = FakePod::start(&world.node, &pod_name("latte"), "vethdecoy", 11)?;
    let tea = FakePod::start(&world.node, &pod_name("tea"), "vethtea", 12)?;
    let coffee = FakePod::start(&world.node, &pod_name("coffee"), "vethcoffee", 13)?;
    let api = FakeApi::start(&world.node)?;
    let name = decoy.name().to_owned();
    api.put(&ApiPod::running("cafe", &name, NODE, &tea.ip()));
    api.put(&ApiPod::running(
        "cafe",
        coffee.name(),
        ELSEWHERE,
        &coffee.ip(),
    ));
    let wanted = format!("cafe/{name}");
    let agent = agent(&world, with_api(&api, &["--pod", &wanted]))?;
    ensure!(
        agent
            .ready_line()
            .contains(&format!("pod {wanted} on vethtea")),
        "the ready line does not name the API's pod on vethtea: {}",
        agent.ready_line()
    );
    ensure!(tcx(&world, "vethtea")? == (1, 1), "vethtea is not attached");
    for other in ["vethdecoy", "vethcoffee", NODE_POD_IF] {
        ensure!(
            tcx(&world, other)? == (0, 0),
            "{other} is attached: the agent took the wrong veth"
        );
    }
    mirrors(&world, &[&decoy, &coffee], &tea)?;

    let metrics = agent.wait_for_metric(
        "mirror_captured_packets_total",
        &[("pod", &name)],
        count(FRAMES),
        Duration::from_secs(5),
    )?;
    for direction in ["ingress", "egress"] {
        let labels = [
            ("pod", name.as_str()),
            ("namespace", "cafe"),
            ("iface", "vethtea"),
            ("direction", direction),
        ];
        let captured = metrics.total("mirror_captured_packets_total", &labels);
        ensure!(
            captured == count(PINGS),
            "mirror_captured_packets_total{labels:?} is {captured}, expected {PINGS}"
        );
    }
    let requests = api.requests();
    ensure!(
        requests
            .iter()
            .any(|r| r.starts_with(&format!("GET /api/v1/namespaces/cafe/pods/{name}?"))),
        "the agent did not get the pod from the API: {requests:?}"
    );
    ensure!(
        requests.iter().any(|r| r.contains("watch=true")
            && r.contains(&format!(
                "fieldSelector=metadata.name={name},spec.nodeName={NODE}"
            ))),
        "the agent does not watch the pod on this node: {requests:?}"
    );
    Ok(())
}

#[test]
fn pod_selector_follows_pods_as_they_come_and_go() -> Result<()> {
    if skip_unless_root("pod_selector_follows_pods_as_they_come_and_go") {
        return Ok(());
    }
    let world = World::new(VNI)?;
    let web_a = FakePod::start(&world.node, &pod_name("web-a"), "vethweba", 21)?;
    let web_b = FakePod::start(&world.node, &pod_name("web-b"), "vethwebb", 22)?;
    let db = FakePod::start(&world.node, &pod_name("db"), "vethdb", 23)?;
    let api = FakeApi::start(&world.node)?;
    let web =
        |pod: &FakePod| ApiPod::running("shop", pod.name(), NODE, &pod.ip()).label("app", "web");
    api.put(&web(&web_a));
    api.put(&web(&web_b));
    api.put(&ApiPod::running("shop", db.name(), NODE, &db.ip()).label("app", "db"));
    // A matching pod of another node, with db's IP: only the node's own pods count.
    api.put(&ApiPod::running("shop", "web-far", ELSEWHERE, &db.ip()).label("app", "web"));
    let agent = agent(&world, with_api(&api, &["--pod-selector", "app=web"]))?;
    for pod in [&web_a, &web_b] {
        ensure!(
            agent
                .ready_line()
                .contains(&format!("pod shop/{} on {}", pod.name(), pod.host_if())),
            "the ready line does not name {}: {}",
            pod.name(),
            agent.ready_line()
        );
        ensure!(
            tcx(&world, pod.host_if())? == (1, 1),
            "{} not attached",
            pod.host_if()
        );
    }
    ensure!(tcx(&world, "vethdb")? == (0, 0), "vethdb attached");

    // A new pod: its veth is there first (as a CNI does it), then the API reports it running.
    let web_c = FakePod::start(&world.node, &pod_name("web-c"), "vethwebc", 24)?;
    thread::sleep(Duration::from_millis(300));
    ensure!(
        tcx(&world, "vethwebc")? == (0, 0),
        "vethwebc attached before the API reported its pod"
    );
    let reported = Instant::now();
    api.put(&web(&web_c));
    attached_within(&agent, 3, reported, "a new pod of the selector")?;
    ensure!(tcx(&world, "vethwebc")? == (1, 1), "vethwebc not attached");
    mirrors(&world, &[], &web_c)?;
    let metrics = agent.wait_for_metric(
        "mirror_captured_packets_total",
        &[("pod", web_c.name()), ("namespace", "shop")],
        count(FRAMES),
        Duration::from_secs(5),
    )?;
    let captured = metrics.total(
        "mirror_captured_packets_total",
        &[
            ("pod", web_c.name()),
            ("namespace", "shop"),
            ("iface", "vethwebc"),
        ],
    );
    ensure!(
        captured == count(FRAMES),
        "the new pod's copies counted {captured}, expected {FRAMES}"
    );

    // web-b is deleted in the API (its veth stays a moment longer, as during a pod's
    // termination): detached and counted; its traffic is no longer copied, web-a's still is.
    ensure!(api.delete("shop", web_b.name()), "web-b was not in the API");
    let metrics = agent.wait_for_metrics(Duration::from_secs(5), |m| {
        m.total("mirror_detach_total", &[("reason", "gone")]) == 1
    })?;
    ensure!(
        metrics.total("mirror_detach_total", &[("reason", "gone")]) == 1
            && metrics.total("mirror_attached_interfaces", &[]) == 2,
        "after web-b's deletion: detach_total {}, attached {}; agent said {:?}",
        metrics.total("mirror_detach_total", &[("reason", "gone")]),
        metrics.total("mirror_attached_interfaces", &[]),
        agent.stderr_lines()
    );
    ensure!(
        tcx(&world, "vethwebb")? == (0, 0),
        "vethwebb still attached"
    );
    mirrors(&world, &[&web_b], &web_a)?;
    ensure!(
        agent.stderr_lines().iter().any(|l| l.starts_with(&format!(
            "mirror: detached pod shop/{} on vethwebb",
            web_b.name()
        ))),
        "the agent did not say it detached web-b: {:?}",
        agent.stderr_lines()
    );
    Ok(())
}

#[test]
fn a_pod_of_another_node_is_refused_or_waited_for() -> Result<()> {
    if skip_unless_root("a_pod_of_another_node_is_refused_or_waited_for") {
        return Ok(());
    }
    let world = World::new(VNI)?;
    let mocha = FakePod::start(&world.node, &pod_name("mocha"), "vethmocha", 31)?;
    let api = FakeApi::start(&world.node)?;
    let name = pod_name("moved");
    api.put(&ApiPod::running("cafe", &name, ELSEWHERE, "198.19.250.2"));
    let wanted = format!("cafe/{name}");
    run_rejected(
        &world,
        &with_api(&api, &["--pod", &wanted]),
        &format!("error: --pod {wanted}: runs on node {ELSEWHERE}, not on this node ({NODE})"),
    )?;
    let missing = pod_name("nosuchpod");
    run_rejected(
        &world,
        &with_api(&api, &["--pod", &format!("cafe/{missing}")]),
        &format!(
            "error: --pod cafe/{missing}: the Kubernetes API at {}/ has no pod {missing} in namespace cafe",
            api.url()
        ),
    )?;
    let scratch = ScratchDir::new()?;
    let broken = scratch.join("kubeconfig.yaml");
    std::fs::write(&broken, "clusters: [")?;
    run_rejected(
        &world,
        &[
            "--kubeconfig",
            &broken.display().to_string(),
            "--pod-selector",
            "app=web",
        ]
        .map(str::to_owned),
        &format!("error: --kubeconfig {}: ", broken.display()),
    )?;

    // With --wait-for-pods the agent starts, and mirrors the pod once it runs here.
    let agent = agent(
        &world,
        with_api(&api, &["--pod", &wanted, "--wait-for-pods"]),
    )?;
    ensure!(
        agent
            .ready_line()
            .contains("copying nothing yet, waiting for pods"),
        "ready line: {}",
        agent.ready_line()
    );
    let said = agent.stderr_lines();
    ensure!(
        said.iter().any(|l| l
            == &format!("mirror: waiting: --pod {wanted}: runs on node {ELSEWHERE}, not on this node ({NODE})")),
        "the agent did not say what it waits for: {said:?}"
    );
    let moved = Instant::now();
    api.put(&ApiPod::running("cafe", &name, NODE, &mocha.ip()));
    attached_within(&agent, 1, moved, "the pod that moved to this node")?;
    ensure!(
        tcx(&world, "vethmocha")? == (1, 1),
        "vethmocha not attached"
    );
    mirrors(&world, &[], &mocha)
}

#[test]
fn waiting_without_the_api_follows_netlink() -> Result<()> {
    if skip_unless_root("waiting_without_the_api_follows_netlink") {
        return Ok(());
    }
    let world = World::new(VNI)?;
    let name = pod_name("later");
    let agent = agent(
        &world,
        vec!["--pod".into(), name.clone(), "--wait-for-pods".into()],
    )?;
    ensure!(
        agent
            .ready_line()
            .contains("copying nothing yet, waiting for pods"),
        "ready line: {}",
        agent.ready_line()
    );
    ensure!(
        agent.stderr_lines().iter().any(|l| l.starts_with(&format!(
            "mirror: waiting: --pod {name}: no pod with that name on this node"
        ))),
        "the agent did not say what it waits for: {:?}",
        agent.stderr_lines()
    );
    // No scan is due (the periodic one comes every 30 s): the new veth's link event must start it.
    let later = FakePod::start(&world.node, &name, "vethlater", 41)?;
    let started = Instant::now();
    attached_within(&agent, 1, started, "a pod that appeared on the node")?;
    mirrors(&world, &[], &later)
}

#[test]
fn an_unreachable_api_falls_back_to_the_node() -> Result<()> {
    if skip_unless_root("an_unreachable_api_falls_back_to_the_node") {
        return Ok(());
    }
    let world = World::new(VNI)?;
    let latte = FakePod::start(&world.node, &pod_name("latte"), "vethlatte", 51)?;
    // Nothing listens on port 1 of the node's loopback.
    let scratch = ScratchDir::new()?;
    let kubeconfig = scratch.join("kubeconfig.yaml");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n\
         clusters: [{name: c, cluster: {server: 'http://127.0.0.1:1'}}]\n\
         contexts: [{name: c, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {}}]\n",
    )?;
    let kubeconfig = kubeconfig.display().to_string();
    let options = |extra: &[&str]| {
        let mut all = vec!["--kubeconfig", kubeconfig.as_str(), "--node-name", NODE];
        all.extend(extra);
        all.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let agent = agent(&world, options(&["--pod", latte.name()]))?;
    let warnings: Vec<String> = agent
        .stderr_lines()
        .into_iter()
        .filter(|l| l.starts_with("mirror: warning: "))
        .collect();
    ensure!(
        warnings.len() == 1
            && warnings[0]
                .starts_with("mirror: warning: the Kubernetes API at http://127.0.0.1:1/: ")
            && warnings[0].ends_with("; finding --pod by hostname on this node instead"),
        "expected one warning about the API, got {warnings:?}"
    );
    ensure!(
        tcx(&world, "vethlatte")? == (1, 1),
        "vethlatte not attached"
    );
    mirrors(&world, &[], &latte)?;
    drop(agent);
    // A selector cannot fall back: a runtime failure, in one line.
    let bin = existing_mirror_bin()?;
    let mut argv = vec!["run".to_owned()];
    argv.extend(options(&[
        "--pod-selector",
        "app=web",
        "--remote",
        REMOTE_IP,
    ]));
    let mut failed = Background::spawn(
        "mirror",
        &mut world.node.command(&bin.to_string_lossy(), &argv),
    )?;
    let status = failed.wait(Duration::from_mins(1))?;
    let stderr = failed.stderr_lines();
    ensure!(
        status.code() == Some(1)
            && stderr.len() == 1
            && stderr[0].starts_with("error: the Kubernetes API at http://127.0.0.1:1/: --pod-selector app=web: listing pods: "),
        "an unreachable API with --pod-selector: exit {status}, stderr {stderr:?}"
    );
    Ok(())
}

#[test]
fn pod_selector_without_the_api_is_refused() -> Result<()> {
    let bin = existing_mirror_bin()?;
    let argv = ["run", "--pod-selector", "app=web", "--remote", REMOTE_IP].map(str::to_owned);
    let world = if is_root() {
        Some(World::new(VNI)?)
    } else {
        None
    };
    let mut cmd = if let Some(world) = &world {
        world.node.command(&bin.to_string_lossy(), &argv)
    } else {
        let mut cmd = Command::new(&bin);
        cmd.args(&argv);
        cmd
    };
    // Not in a pod: no service account.
    cmd.env_remove("KUBERNETES_SERVICE_HOST");
    let mut agent = Background::spawn("mirror", &mut cmd)?;
    let status = agent.wait(Duration::from_secs(30))?;
    let stderr = agent.stderr_lines();
    ensure!(
        status.code() == Some(2)
            && stderr
                == [
                    "error: --pod-selector app=web: needs the Kubernetes API: give --kubeconfig FILE, or run the agent in a pod with a service account"
                ],
        "--pod-selector without API access: exit {status}, stderr {stderr:?}"
    );
    Ok(())
}
