//! `--config` end to end through [`parse_cli_with`]: files of both formats, precedence, errors,
//! and the sample deploy/configmap.yaml with the DaemonSet's own arguments.

use std::{
    ffi::OsString,
    fs, io,
    path::{Path, PathBuf},
};

use super::*;
use crate::{
    cli::Command,
    output::args::OutputArgs,
    run::args::{DirectionArg, RunArgs},
    tunnel::TunnelKind,
};

fn argv(args: &[&str]) -> Vec<OsString> {
    ["mirror"].iter().chain(args).map(OsString::from).collect()
}

/// Parses `args` with `text` as the contents of whatever file `--config` names.
fn parse_with_file(args: &[&str], text: &str) -> Result<Cli, ParseError> {
    parse_cli_with(argv(args), |_| Ok(text.to_owned()))
}

fn run(cli: Cli) -> RunArgs {
    match cli.command {
        Command::Run(run) => run,
        other => panic!("not `run`: {other:?}"),
    }
}

fn config_error(result: Result<Cli, ParseError>) -> String {
    match result {
        Err(ParseError::Config(e)) => e.to_string(),
        other => panic!("expected a config error, got {other:?}"),
    }
}

fn remotes(output: &OutputArgs) -> Vec<String> {
    output.remotes.iter().map(ToString::to_string).collect()
}

const TOML: &str = r#"
iface = ["vethpod", "eth1"]
remote = ["198.18.0.2", "198.18.0.3:8472"]
tunnel = "vxlan"
vni = 42
vxlan-port = 8472
direction = "ingress"
metrics = "127.0.0.1:9400"
netflow = ["198.18.0.4:2055"]
agent-mark = 0x10
inner-dst-mac = "02:00:00:00:00:01"
"#;

const YAML: &str = "
iface: [vethpod, eth1]
remote:
  - 198.18.0.2
  - 198.18.0.3:8472
tunnel: vxlan
vni: 42
vxlan-port: 8472
direction: ingress
metrics: 127.0.0.1:9400
netflow: [198.18.0.4:2055]
agent-mark: 0x10
inner-dst-mac: 02:00:00:00:00:01
";

#[test]
fn toml_and_yaml_set_the_same_options() {
    for (name, text) in [("mirror.toml", TOML), ("mirror.yml", YAML)] {
        let run = run(parse_with_file(&["run", "--config", name], text).unwrap());
        assert_eq!(run.ifaces, ["vethpod", "eth1"], "{name}");
        assert_eq!(run.direction, DirectionArg::Ingress, "{name}");
        let out = &run.output;
        assert_eq!(remotes(out), ["198.18.0.2", "198.18.0.3:8472"], "{name}");
        assert_eq!(out.tunnel, TunnelKind::Vxlan);
        assert_eq!(out.vni.get(), 42);
        assert_eq!(out.vxlan_port, 8472);
        assert_eq!(out.metrics, Some("127.0.0.1:9400".parse().unwrap()));
        assert_eq!(out.netflow, ["198.18.0.4:2055".parse().unwrap()]);
        assert_eq!(out.agent_mark, 0x10);
        assert_eq!(out.inner_dst_mac, Some([2, 0, 0, 0, 0, 1]));
        assert_eq!(out.config, Some(PathBuf::from(name)));
        // Not in the file: clap's defaults.
        assert_eq!(out.sample, 1);
    }
}

#[test]
fn the_command_line_wins() {
    let run = run(parse_with_file(
        &[
            "run",
            "--vni",
            "7",
            "--config",
            "m.toml",
            "--remote",
            "198.18.0.9",
            "--direction",
            "both",
        ],
        TOML,
    )
    .unwrap());
    let out = &run.output;
    assert_eq!(out.vni.get(), 7);
    // A repeatable option: the command line's list replaces the file's.
    assert_eq!(remotes(out), ["198.18.0.9"]);
    assert_eq!(run.direction, DirectionArg::Both);
    // The rest still comes from the file.
    assert_eq!(run.ifaces, ["vethpod", "eth1"]);
    assert_eq!(out.vxlan_port, 8472);
}

#[test]
fn switches_and_tunnel_options() {
    let text = "tunnel = \"gre\"\ngre-key = 7\ngre-seq = true\nremote = \"198.18.0.2\"\n\
                iface = \"a\"\n";
    let run = run(parse_with_file(&["run", "--config", "m.toml"], text).unwrap());
    assert_eq!(remotes(&run.output), ["198.18.0.2"]);
    assert_eq!(
        run.output.tunnel(),
        Ok(crate::tunnel::Tunnel::Gre {
            key: Some(7),
            sequence: true
        })
    );
    let off = text.replace("gre-seq = true", "gre-seq = false");
    let run = run_args(&off);
    assert!(!run.output.gre_seq);
}

fn run_args(text: &str) -> RunArgs {
    run(parse_with_file(&["run", "--config", "m.toml"], text).unwrap())
}

#[test]
fn file_values_get_the_command_lines_checks() {
    let base = "iface = [\"a\"]\nremote = [\"198.18.0.2\"]\n";
    let bad = |line: &str| {
        config_error(parse_with_file(
            &["run", "--config", "m.toml"],
            &format!("{base}{line}\n"),
        ))
    };
    let err = bad("vni = 16777216");
    assert!(
        err.starts_with("m.toml: key `vni`: invalid value '16777216'"),
        "{err}"
    );
    let err = bad("sample = 0");
    assert!(err.starts_with("m.toml: key `sample`: "), "{err}");
    let err = bad("tunnel = \"vxlan2\"");
    assert!(
        err.starts_with("m.toml: key `tunnel`: invalid value 'vxlan2'"),
        "{err}"
    );
    let err = bad("agent-mark = 0");
    assert!(err.contains("0 means no mark"), "{err}");
    let err = bad("inner-dst-mac = 5");
    assert!(err.starts_with("m.toml: key `inner-dst-mac`: "), "{err}");
    let err = config_error(parse_with_file(
        &["run", "--config", "m.toml"],
        "iface = [\"a\"]\nremote = [\"300.1.2.3\"]\n",
    ));
    assert!(
        err.starts_with("m.toml: key `remote`: invalid value '300.1.2.3'"),
        "{err}"
    );
    for err in [&err, &bad("vni = 16777216")] {
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    // Still valid at the limit.
    assert_eq!(
        run_args(&format!("{base}vni = 16777215\n"))
            .output
            .vni
            .get(),
        16_777_215
    );
}

#[test]
fn unknown_keys_are_refused_by_name() {
    let err = config_error(parse_with_file(
        &["run", "--config", "/etc/mirror/mirror.yaml"],
        "iface: [a]\nremotes: [198.18.0.2]\n",
    ));
    assert_eq!(
        err,
        "/etc/mirror/mirror.yaml: unknown key `remotes` (not an option of `mirror run`)"
    );
    // `replay` has no --iface.
    let err = config_error(parse_with_file(
        &["replay", "--config", "r.toml", "--pcap", "x.pcap"],
        "iface = [\"a\"]\n",
    ));
    assert_eq!(
        err,
        "r.toml: unknown key `iface` (not an option of `mirror replay`)"
    );
}

#[test]
fn the_command_lines_own_errors_stay_clap_errors() {
    let result = parse_with_file(&["run", "--config", "m.toml", "--vni", "16777216"], TOML);
    match result {
        Err(ParseError::Clap(e)) => assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation),
        other => panic!("expected clap's error, got {other:?}"),
    }
    // Nothing to mirror: neither the file nor the command line names a remote.
    let result = parse_with_file(&["run", "--config", "m.toml"], "iface = [\"a\"]\n");
    assert!(matches!(result, Err(ParseError::Clap(_))), "{result:?}");
}

#[test]
fn replay_takes_its_options_from_a_file() {
    let text = "pcap: pod1.pcap\nloop: 3\nspeed: 0.5\nremote: [198.18.0.2]\nvni: 9\n";
    let cli = parse_with_file(&["replay", "--config", "r.yaml"], text).unwrap();
    let Command::Replay(replay) = cli.command else {
        panic!("not replay");
    };
    assert_eq!(replay.pcap, PathBuf::from("pod1.pcap"));
    assert_eq!(replay.loops, 3);
    assert_eq!(replay.speed, Some(0.5));
    assert_eq!(replay.output.vni.get(), 9);
    // Conflicting options in the file are refused like on the command line.
    let err = config_error(parse_with_file(
        &["replay", "--config", "r.yaml"],
        &format!("{text}pps: 10\n"),
    ));
    assert!(err.starts_with("r.yaml: key `"), "{err}");
    assert!(err.contains("cannot be used with"), "{err}");
}

#[test]
fn without_config_nothing_changes() {
    let cli = parse_cli_with(
        argv(&["run", "--iface", "a", "--remote", "198.18.0.2"]),
        |_| panic!("no file to read"),
    )
    .unwrap();
    assert_eq!(run(cli).ifaces, ["a"]);
}

#[test]
fn files_are_read_from_disk() {
    let dir = std::env::temp_dir().join(format!("mirror-config-test-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join("mirror.toml");
    fs::write(&path, TOML).unwrap();
    let shown = path.to_str().unwrap();
    let result = parse_cli(argv(&["run", "--config", shown]));
    let missing = dir.join("missing.toml");
    let missing_result = parse_cli(argv(&["run", "--config", missing.to_str().unwrap()]));
    fs::remove_dir_all(&dir).unwrap();
    assert_eq!(run(result.unwrap()).output.vni.get(), 42);
    let err = config_error(missing_result);
    assert!(
        err.starts_with(&format!(
            "{}: cannot read the config file: ",
            missing.display()
        )),
        "{err}"
    );
}

/// The repository's deploy/ directory.
fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn read_yaml(name: &str) -> serde_norway::Value {
    let path = deploy_dir().join(name);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The sample ConfigMap's file, read the way the DaemonSet hands it to the agent: its own
/// arguments (`$(NODE_IP)` as the kubelet expands it) and the file at its mount path.
#[test]
fn the_sample_configmap_parses_as_the_daemonset_runs_it() {
    let configmap = read_yaml("configmap.yaml");
    let daemonset = read_yaml("daemonset.yaml");
    let file = configmap["data"]["mirror.yaml"]
        .as_str()
        .expect("configmap.yaml holds data.mirror.yaml");
    let pod = &daemonset["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let args: Vec<String> = container["args"]
        .as_sequence()
        .expect("the container has args")
        .iter()
        .map(|a| a.as_str().unwrap().replace("$(NODE_IP)", "198.18.0.1"))
        .collect();
    // The mount of the ConfigMap's volume, where the kubelet puts data.mirror.yaml.
    let volume = pod["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["configMap"]["name"].as_str() == Some("mirror"))
        .expect("the DaemonSet mounts the ConfigMap");
    let mount = container["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| m["name"] == volume["name"])
        .expect("the container mounts the ConfigMap's volume");
    let mounted = Path::new(mount["mountPath"].as_str().unwrap()).join("mirror.yaml");

    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let cli = parse_cli_with(argv(&args), |path| {
        if path == mounted {
            Ok(file.to_owned())
        } else {
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "the DaemonSet passes {}, the file is at {}",
                    path.display(),
                    mounted.display()
                ),
            ))
        }
    })
    .unwrap();
    let run = run(cli);
    let pods: Vec<String> = run.pods.iter().map(ToString::to_string).collect();
    assert_eq!(pods, ["default/coffee"]);
    assert!(run.ifaces.is_empty() && run.pod_ips.is_empty());
    let out = &run.output;
    assert_eq!(remotes(out), ["192.0.2.10"]);
    assert_eq!(out.tunnel, TunnelKind::Vxlan);
    assert_eq!(out.vni.get(), 1);
    assert_eq!(out.metrics, Some("198.18.0.1:9464".parse().unwrap()));
    let annotated = &daemonset["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"];
    assert_eq!(
        annotated.as_str(),
        Some("9464"),
        "the scrape annotation's port"
    );
    assert_eq!(out.config, Some(mounted));
    assert!(out.tunnel().is_ok());
}

/// Found by the `config_file` fuzz target: a key with a line break made the binary's one error
/// line two.
#[test]
fn a_key_with_a_line_break_stays_on_one_line() {
    for (name, text) in [("m.toml", "\"a\\nb\" = 1\n"), ("m.yaml", "\"a\\nb\": 1\n")] {
        assert_eq!(
            config_error(parse_with_file(&["run", "--config", name], text)),
            format!("{name}: unknown key `a\\nb` (not an option of `mirror run`)")
        );
    }
}
