//! pktminerg command lines in, mirror command lines out; and every refusal, by name.

use std::{collections::HashMap, net::IpAddr};

use clap::Parser as _;

use super::*;
use crate::{
    cli::{Cli, Command},
    output::args::OversizeArg,
    replay::ReplayArgs,
    run::args::{DirectionArg, RunArgs},
    tunnel::TunnelKind,
};

/// Routes of a test: the remote's address to the outgoing device.
struct FakeRoutes(HashMap<IpAddr, &'static str>);

impl Routes for FakeRoutes {
    fn device_towards(&self, ip: IpAddr) -> Result<String, String> {
        self.0
            .get(&ip)
            .map(|d| (*d).to_owned())
            .ok_or_else(|| format!("no route to {ip}"))
    }
}

/// 198.18.0.2 and 198.18.0.3 through `eth0`, 198.18.1.2 through `eth1`.
fn routes() -> FakeRoutes {
    FakeRoutes(HashMap::from([
        ("198.18.0.2".parse().unwrap(), "eth0"),
        ("198.18.0.3".parse().unwrap(), "eth0"),
        ("198.18.1.2".parse().unwrap(), "eth1"),
    ]))
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(ToString::to_string).collect()
}

fn tr(args: &[&str]) -> Result<Vec<String>, TranslateError> {
    translate_with(&strings(args), &routes())
}

/// The translation, as one string.
fn ok(args: &[&str]) -> String {
    match tr(args) {
        Ok(native) => native.join(" "),
        Err(e) => panic!("{args:?}: {e}"),
    }
}

/// The error message.
fn err(args: &[&str]) -> String {
    match tr(args) {
        Ok(native) => panic!("{args:?} was translated to {native:?}"),
        Err(e) => e.to_string(),
    }
}

fn assert_err(args: &[&str], message: &str) {
    let got = err(args);
    assert!(
        got.contains(message),
        "{args:?}:\n  got  {got}\n  want {message}"
    );
}

/// The translation parsed by mirror's own command line (`run`), as the binary will.
fn native_run(args: &[&str]) -> RunArgs {
    let native = tr(args).unwrap();
    match Cli::try_parse_from(std::iter::once("mirror".to_owned()).chain(native)) {
        Ok(Cli {
            command: Command::Run(run),
            ..
        }) => run,
        Ok(other) => panic!("{args:?}: not `run`: {other:?}"),
        Err(e) => panic!("{args:?}: mirror refuses the translation: {e}"),
    }
}

/// The translation parsed as `mirror replay` options.
fn native_replay(args: &[&str]) -> ReplayArgs {
    #[derive(Debug, clap::Parser)]
    struct Replay {
        #[command(flatten)]
        args: ReplayArgs,
    }
    let native = tr(args).unwrap();
    assert_eq!(native[0], "replay", "{native:?}");
    Replay::try_parse_from(native)
        .unwrap_or_else(|e| panic!("{args:?}: mirror refuses the translation: {e}"))
        .args
}

// ---------------------------------------------------------------------------------------------
// The Flannel article's two command lines, verbatim but for the addresses (10.1.1.37 is the
// remote host, 140.2.6.8 the collector; here 198.18.0.2 and 198.18.0.3).
// ---------------------------------------------------------------------------------------------

const FLANNEL_JSON_STR: &str = r#"{
    "ext_file_path": "libproto_vxlan.so",
    "ext_params": {
        "remoteips": [
            "198.18.0.2"   
        ],
        "bind_device": "eth0",
        "pmtudisc_option": "dont",
        "use_default_header": false,
        "vni": 3310
    }
}"#;

const FLANNEL_MON_STR: &str = r#"{
    "ext_file_path": "libmonitor_netflow.so",
    "ext_params": {
        "collectors_ipport": [
            {
                "ip": "198.18.0.3",   
                "port": 2055
            },
            {
                "port": 2055
            }
        ],
        "netflow_version": 5
    }
}"#;

#[test]
fn flannel_live_command_line() {
    // ./pktminerg -i veth --proto-config "${JSON_STR}" --monitor-config "${MON_STR}"
    let args = [
        "-i",
        "veth",
        "--proto-config",
        FLANNEL_JSON_STR,
        "--monitor-config",
        FLANNEL_MON_STR,
    ];
    assert_eq!(
        ok(&args),
        "run --iface veth --tunnel vxlan --vni 3310 --vxlan-port 4789 --remote 198.18.0.2 \
         --snaplen 2048 --oversize fragment --netflow 198.18.0.3:2055"
    );
    let run = native_run(&args);
    assert_eq!(run.ifaces, ["veth"]);
    assert_eq!(run.direction, DirectionArg::Both);
    let out = run.output;
    assert_eq!(out.tunnel, TunnelKind::Vxlan);
    assert_eq!(out.vni.to_string(), "3310");
    assert_eq!(out.vxlan_port, 4789);
    assert_eq!(out.remotes.len(), 1);
    assert_eq!(out.snaplen, Some(2048));
    assert_eq!(out.oversize, OversizeArg::Fragment);
    assert_eq!(out.netflow, ["198.18.0.3:2055".parse().unwrap()]);
    out.tunnel().unwrap();
}

#[test]
fn flannel_offline_command_line() {
    // ./pktminerg -f pod1.pcap --proto-config "${JSON_STR}"
    let args = ["-f", "pod1.pcap", "--proto-config", FLANNEL_JSON_STR];
    assert_eq!(
        ok(&args),
        "replay --pcap pod1.pcap --tunnel vxlan --vni 3310 --vxlan-port 4789 --remote 198.18.0.2 \
         --oversize fragment"
    );
    let replay = native_replay(&args);
    assert_eq!(replay.pcap.to_str(), Some("pod1.pcap"));
    assert_eq!(replay.output.snaplen, None);
    replay.output.tunnel().unwrap();
}

#[test]
fn flannel_bind_device_must_be_the_route() {
    // The same configuration where 198.18.0.2 is routed through another device.
    let json = FLANNEL_JSON_STR.replace("\"eth0\"", "\"eth1\"");
    assert_err(
        &["-i", "veth", "--proto-config", &json],
        "pktminerg: --proto-config ext_params.bind_device eth1: the route to 198.18.0.2 leaves \
         through eth0, and mirror sends along the routing table: it cannot bind its packets to eth1",
    );
}

// ---------------------------------------------------------------------------------------------
// Options.
// ---------------------------------------------------------------------------------------------

#[test]
fn classic_gre_with_key_1_by_default() {
    assert_eq!(
        ok(&["-i", "eth0", "-r", "198.18.0.2"]),
        "run --iface eth0 --tunnel gre --gre-key 1 --remote 198.18.0.2 --snaplen 2048"
    );
    let out = native_run(&["-i", "eth0", "-r", "198.18.0.2"]).output;
    assert_eq!(out.tunnel, TunnelKind::Gre);
    assert_eq!(out.gre_key, Some(1));
    assert!(!out.gre_seq);
    out.tunnel().unwrap();
}

#[test]
fn keybit() {
    assert_eq!(
        ok(&["-i", "vethpod", "-r", "198.18.0.2", "-k", "3"]),
        "run --iface vethpod --tunnel gre --gre-key 3 --remote 198.18.0.2 --snaplen 2048"
    );
    assert!(ok(&["-ivethpod", "-r198.18.0.2", "--keybit=0"]).contains("--gre-key 0 "));
    assert!(
        ok(&["-i", "e", "-r", "198.18.0.2", "-k", "2147483647"]).contains("--gre-key 2147483647 ")
    );
    // pktminerg's int, passed on as uint32_t.
    assert!(ok(&["-i", "e", "-r", "198.18.0.2", "-k", "-1"]).contains("--gre-key 4294967295 "));
    assert_err(
        &["-i", "e", "-r", "198.18.0.2", "-k", "2147483648"],
        "pktminerg: -k/--keybit: '2147483648' is not a whole number",
    );
    assert_err(
        &["-i", "e", "-r", "198.18.0.2", "-k", "three"],
        "-k/--keybit: 'three'",
    );
    assert_err(
        &[
            "-i",
            "e",
            "-k",
            "3",
            "--proto-config",
            r#"{"ext_file_path": "libproto_gre.so", "ext_params": {"remoteips": ["198.18.0.2"]}}"#,
        ],
        "pktminerg: -k/--keybit: has no effect with --proto-config",
    );
}

#[test]
fn remote_lists() {
    assert_eq!(
        ok(&[
            "-f",
            "a.pcap",
            "-r",
            "198.18.0.2,198.18.0.3, fd00:198:18::2"
        ]),
        "replay --pcap a.pcap --tunnel gre --gre-key 1 --remote 198.18.0.2 --remote 198.18.0.3 \
         --remote fd00:198:18::2"
    );
    let out = native_replay(&["-f", "a.pcap", "-r", "198.18.0.2,fd00:198:18::2"]).output;
    assert_eq!(out.remotes.len(), 2);
    assert_err(&["-i", "e"], "pktminerg: no remote: give -r IP[,IP...]");
    assert_err(
        &["-i", "e", "-r", "198.18.0.2,"],
        "-r/--remoteip: '' is not an IP address",
    );
    assert_err(
        &["-i", "e", "-r", "remote-host"],
        "'remote-host' is not an IP address",
    );
    assert_err(
        &["-i", "e", "-r", "198.18.0.2:4789"],
        "'198.18.0.2:4789' is not an IP address",
    );
    assert_err(
        &["-i", "e", "-r", "198.18.0.2,198.18.0.2"],
        "remote: 198.18.0.2 is listed twice",
    );
    assert_err(
        &["-i", "e", "-r", "0.0.0.0"],
        "remote: 0.0.0.0 is not a tunnel destination",
    );
    assert_err(
        &["-i", "e", "-r", "224.0.0.1"],
        "224.0.0.1 is not a tunnel destination",
    );
}

#[test]
fn interface_or_file() {
    assert_err(
        &["-i", "e", "-f", "a.pcap", "-r", "198.18.0.2"],
        "pktminerg: give only one of -i (an interface) and -f (a capture file)",
    );
    assert_err(
        &["-r", "198.18.0.2"],
        "give -i NIC to mirror an interface or -f PCAP",
    );
    assert_err(&["-i", "", "-r", "198.18.0.2"], "-i/--interface: is empty");
    assert_err(
        &["--pcapfile=", "-r", "198.18.0.2"],
        "-f/--pcapfile: is empty",
    );
    assert_eq!(
        ok(&["--pcapfile", "/tmp/x y.pcap", "--remoteip", "198.18.0.2"]),
        "replay --pcap /tmp/x y.pcap --tunnel gre --gre-key 1 --remote 198.18.0.2"
    );
}

#[test]
fn bind_device() {
    assert_eq!(
        ok(&["-i", "e", "-r", "198.18.0.2,198.18.0.3", "-B", "eth0"]),
        "run --iface e --tunnel gre --gre-key 1 --remote 198.18.0.2 --remote 198.18.0.3 --snaplen 2048"
    );
    assert_err(
        &["-i", "e", "-r", "198.18.0.2,198.18.1.2", "-B", "eth0"],
        "pktminerg: -B/--bind_device eth0: the route to 198.18.1.2 leaves through eth1, and \
         mirror sends along the routing table: it cannot bind its packets to eth0; route \
         198.18.1.2 through eth0, or remove the binding",
    );
    assert_err(
        &["-i", "e", "-r", "198.18.9.9", "-B", "eth0"],
        "-B/--bind_device eth0: cannot check the route to 198.18.9.9: no route to 198.18.9.9",
    );
    // An empty device is no binding, as in packet-agent.
    assert!(ok(&["-i", "e", "-r", "198.18.1.2", "-B", ""]).contains("--remote 198.18.1.2"));
    assert_err(
        &["-i", "e", "-B", "eth0", "--proto-config", FLANNEL_JSON_STR],
        "-B/--bind_device: given together with --proto-config ext_params.bind_device",
    );
}

#[test]
fn pmtudisc() {
    let base = ["-i", "e", "-r", "198.18.0.2", "-M"];
    let with = |mode: &str| ok(&[&base[..], &[mode]].concat());
    assert!(with("do").ends_with("--snaplen 2048 --oversize drop"));
    assert!(with("dont").ends_with("--oversize fragment"));
    assert!(with("want").ends_with("--oversize fragment"));
    assert_eq!(
        native_run(&[&base[..], &["do"]].concat()).output.oversize,
        OversizeArg::Drop
    );
    assert_err(
        &[&base[..], &["maybe"]].concat(),
        "-M/--pmtudisc_option: 'maybe' is not do, dont or want",
    );
    let json = r#"{"ext_file_path": "libproto_erspan_type1.so", "ext_params": {"remoteips": ["198.18.0.2"], "pmtudisc_option": "do"}}"#;
    assert!(ok(&["-i", "e", "--proto-config", json]).ends_with("--oversize drop"));
    assert_err(
        &["-i", "e", "-M", "do", "--proto-config", json],
        "-M/--pmtudisc_option: given together with --proto-config ext_params.pmtudisc_option",
    );
}

#[test]
fn snaplen() {
    let live = |s: &str| ok(&["-i", "e", "-r", "198.18.0.2", "-s", s]);
    assert!(live("128").ends_with("--snaplen 128"));
    assert!(live("14").ends_with("--snaplen 14"));
    assert!(live("65534").ends_with("--snaplen 65534"));
    for unlimited in ["0", "-1", "65535", "262144"] {
        assert!(live(unlimited).ends_with("--snaplen 65535"), "{unlimited}");
    }
    assert_err(
        &["-i", "e", "-r", "198.18.0.2", "-s", "13"],
        "-s/--snaplen: 13: mirror keeps at least the 14-byte Ethernet header",
    );
    assert_err(
        &["-i", "e", "-r", "198.18.0.2", "-s", "big"],
        "-s/--snaplen: 'big' is not a whole number",
    );
    // A capture file: no snaplen unless given.
    assert!(!ok(&["-f", "a.pcap", "-r", "198.18.0.2"]).contains("--snaplen"));
    assert!(ok(&["-f", "a.pcap", "-r", "198.18.0.2", "-s", "96"]).ends_with("--snaplen 96"));
    assert_eq!(
        native_run(&["-i", "e", "-r", "198.18.0.2", "-s", "0"])
            .output
            .snaplen,
        Some(65535)
    );
}

#[test]
fn count() {
    for unlimited in ["0", "-5"] {
        assert!(!ok(&["-i", "e", "-r", "198.18.0.2", "-c", unlimited]).contains("count"));
    }
    assert_err(
        &["-i", "e", "-r", "198.18.0.2", "-c", "100"],
        "pktminerg: -c/--count: mirror has no packet count: it runs until SIGINT or SIGTERM",
    );
    assert_err(
        &["-i", "e", "-r", "198.18.0.2", "--count=x"],
        "-c/--count: 'x' is not a whole number",
    );
}

#[test]
fn knobs_without_effect_are_checked_and_accepted() {
    let plain = ok(&["-i", "e", "-r", "198.18.0.2"]);
    assert_eq!(
        ok(&[
            "-i",
            "e",
            "-r",
            "198.18.0.2",
            "-t",
            "5",
            "-b",
            "512",
            "-p",
            "--nofilter"
        ]),
        plain
    );
    assert_eq!(
        ok(&["-i", "e", "-r", "198.18.0.2", "--cpu", "1"]),
        format!("{plain} --cpus 1")
    );
    assert_eq!(ok(&["-pie", "-r", "198.18.0.2", "-t0"]), plain);
    for (option, message) in [
        ("-t", "-t/--timeout: 'x' is not a whole number"),
        ("-b", "-b/--buffsize: 'x' is not a whole number"),
        ("--cpu", "--cpu: 'x' is not a whole number"),
    ] {
        assert_err(&["-i", "e", "-r", "198.18.0.2", option, "x"], message);
    }
    assert_err(
        &["-i", "e", "-r", "198.18.0.2", "--cpu", "-1"],
        "--cpu: '-1' is no CPU",
    );
    // A replay is not pinned: the CPU is checked and has no effect.
    assert!(!ok(&["-f", "t.pcap", "-r", "198.18.0.2", "--cpu", "1"]).contains("--cpus"));
}

#[test]
fn filters_become_filter() {
    let line = ok(&[
        "-i",
        "e",
        "-r",
        "198.18.0.2",
        "--expression",
        "host 198.18.0.9",
    ]);
    assert!(line.ends_with(" --filter host 198.18.0.9"), "{line}");
    let argv = tr(&["-i", "e", "-r", "198.18.0.2", "tcp", "port", "80"]).unwrap();
    assert_eq!(argv[argv.len() - 2..], ["--filter", "tcp port 80"]);
    let argv = tr(&["-f", "a.pcap", "-r", "198.18.0.2", "--", "udp"]).unwrap();
    assert_eq!(argv[argv.len() - 2..], ["--filter", "udp"]);
    // A blank expression filters nothing.
    let argv = tr(&["-i", "e", "-r", "198.18.0.2", "--expression", " "]).unwrap();
    assert!(!argv.iter().any(|a| a == "--filter"), "{argv:?}");
}

#[test]
fn direction() {
    let dir = |d: &str| ok(&["-i", "vethpod", "-r", "198.18.0.2", "--dir", d]);
    assert!(dir("in").starts_with("run --iface vethpod --direction ingress --tunnel"));
    assert!(dir("out").contains("--direction egress"));
    assert!(dir("inout").contains("--direction both"));
    assert_eq!(
        native_run(&["-i", "vethpod", "-r", "198.18.0.2", "--dir", "in"]).direction,
        DirectionArg::Ingress
    );
    assert_err(
        &["-i", "e", "-r", "198.18.0.2", "--dir", "both"],
        "--dir: 'both' is not in, out or inout",
    );
    assert_err(
        &["-f", "a.pcap", "-r", "198.18.0.2", "--dir", "in"],
        "--dir: applies to a live interface (-i), not to a capture file (-f)",
    );
}

#[test]
fn refused_by_name() {
    for (args, message) in [
        (
            &["--dump"][..],
            "pktminerg: --dump: mirror does not write pktminer_dump.pcap",
        ),
        (
            &["-z", "5555"],
            "-z/--zmq_port: an option of later packet-agent (cloud-probe) releases",
        ),
        (
            &["--zmq_hwm", "10"],
            "-m/--zmq_hwm: an option of later packet-agent",
        ),
        (&["-n", "5"], "-n/--vni: an option of later packet-agent"),
        (
            &["--control", "5556"],
            "--control: an option of later packet-agent",
        ),
        (
            &["--interval", "60"],
            "--interval: an option of later packet-agent",
        ),
        (&["-C", "1"], "pktminerg: unknown option -C"),
        (&["--filter", "tcp"], "unknown option --filter"),
        (&["--tunnel", "vxlan"], "unknown option --tunnel"),
    ] {
        assert_err(&[&["-i", "e", "-r", "198.18.0.2"], args].concat(), message);
    }
}

#[test]
fn help_and_version() {
    assert_eq!(tr(&["-h"]), Err(TranslateError::Help));
    assert_eq!(tr(&["-i", "e", "--help"]), Err(TranslateError::Help));
    assert_eq!(tr(&["-v"]), Ok(strings(&["--version"])));
    assert!(HELP.contains("--proto-config JSON"));
}

// ---------------------------------------------------------------------------------------------
// --proto-config and --monitor-config (their keys: config.rs).
// ---------------------------------------------------------------------------------------------

fn proto(params: &str, file: &str) -> String {
    format!(r#"{{"ext_file_path": "{file}", "ext_params": {params}}}"#)
}

#[test]
fn every_tunnel_plugin_parses_natively() {
    for (file, params, tunnel) in [
        (
            "libproto_gre.so",
            r#"{"use_default_header": false, "enable_key": true, "key": 3, "enable_sequence": true, "sequence_begin": 0}"#,
            TunnelKind::Gre,
        ),
        (
            "libproto_vxlan.so",
            r#"{"use_default_header": false, "vni": 3310}"#,
            TunnelKind::Vxlan,
        ),
        ("../libproto_erspan_type1.so", "{}", TunnelKind::Erspan1),
        (
            "libproto_erspan_type2.so",
            r#"{"enable_spanid": true, "spanid": 1022, "enable_sequence": true}"#,
            TunnelKind::Erspan2,
        ),
        (
            "libproto_erspan_type3.so",
            r#"{"enable_spanid": true, "spanid": 1020, "enable_timestamp": true, "timestamp_type": 0,
            "enable_security_grp_tag": true, "security_grp_tag": 32768, "enable_hw_id": true, "hw_id": 31}"#,
            TunnelKind::Erspan3,
        ),
    ] {
        let json = proto(params, file);
        let run = native_run(&["-i", "eth0", "-r", "198.18.0.2", "--proto-config", &json]);
        assert_eq!(run.output.tunnel, tunnel, "{file}");
        run.output
            .tunnel()
            .unwrap_or_else(|e| panic!("{file}: {e}"));
    }
    let out = native_run(&[
        "-i",
        "eth0",
        "--proto-config",
        &proto(
            r#"{"remoteips": ["198.18.0.2"], "enable_spanid": true, "spanid": 1020, "enable_security_grp_tag": true,
                "security_grp_tag": 32768, "enable_hw_id": true, "hw_id": 31}"#,
            "libproto_erspan_type3.so",
        ),
    ])
    .output;
    assert_eq!(
        (out.erspan_session, out.erspan_hwid, out.erspan_sgt),
        (1020, 31, 32768)
    );
    let out = native_run(&[
        "-i",
        "eth0",
        "-r",
        "198.18.0.2",
        "--proto_config",
        &proto("{}", "libproto_vxlan.so"),
    ])
    .output;
    assert_eq!(out.vni.to_string(), "0");
}

#[test]
fn remotes_from_r_or_remoteips() {
    // The release before 0.4 took -r with a plugin; later ones take remoteips.
    let gre = proto(r#"{"enable_key": true, "key": 7}"#, "libproto_gre.so");
    assert_eq!(
        ok(&["-i", "eth0", "-r", "198.18.0.2", "--proto-config", &gre]),
        "run --iface eth0 --tunnel gre --gre-key 7 --remote 198.18.0.2 --snaplen 2048"
    );
    let with_ips = proto(
        r#"{"remoteips": ["198.18.0.2", "198.18.0.3"]}"#,
        "libproto_vxlan.so",
    );
    assert!(
        ok(&["-i", "eth0", "--proto-config", &with_ips])
            .contains("--remote 198.18.0.2 --remote 198.18.0.3")
    );
    assert_err(
        &[
            "-i",
            "eth0",
            "-r",
            "198.18.0.2",
            "--proto-config",
            &with_ips,
        ],
        "pktminerg: -r/--remoteip: given together with --proto-config ext_params.remoteips",
    );
    assert_err(
        &["-i", "eth0", "--proto-config", &gre],
        "pktminerg: no remote: give ext_params.remoteips in --proto-config (or -r IP[,IP...])",
    );
    assert_err(
        &[
            "-i",
            "eth0",
            "--proto-config",
            &proto(
                r#"{"remoteips": ["198.18.0.2", "198.18.0.2"]}"#,
                "libproto_gre.so",
            ),
        ],
        "remote: 198.18.0.2 is listed twice",
    );
}

#[test]
fn netflow_with_classic_gre() {
    let monitor = r#"{"ext_file_path": "libmonitor_netflow.so", "ext_params": {"collectors_ipport": [{"ip": "198.18.0.3", "port": 2055}, {"ip": "fd00:198:18::3", "port": 9995}]}}"#;
    assert_eq!(
        ok(&[
            "-i",
            "eth0",
            "-r",
            "198.18.0.2",
            "--monitor-config",
            monitor
        ]),
        "run --iface eth0 --tunnel gre --gre-key 1 --remote 198.18.0.2 --snaplen 2048 \
         --netflow 198.18.0.3:2055 --netflow [fd00:198:18::3]:9995"
    );
    assert_eq!(
        native_run(&[
            "-i",
            "eth0",
            "-r",
            "198.18.0.2",
            "--monitor-config",
            monitor
        ])
        .output
        .netflow
        .len(),
        2
    );
    assert_err(
        &[
            "-i",
            "eth0",
            "-r",
            "198.18.0.2",
            "--monitor-config",
            "{\"ext_file_path\": \"libmonitor_netflow.so\"}",
        ],
        "pktminerg: --monitor-config ext_params.collectors_ipport: needs at least one collector",
    );
}

#[test]
fn configuration_errors_reach_the_caller() {
    assert_err(
        &[
            "-i",
            "eth0",
            "--proto-config",
            "{\"ext_file_path\": \"libproto_sflow.so\"}",
        ],
        "pktminerg: --proto-config ext_file_path: unknown tunnel plugin libproto_sflow.so",
    );
    assert_err(
        &["-i", "eth0", "--proto-config", "{\"ext_protos\": []}"],
        "pktminerg: --proto-config ext_protos: not a key of packet-agent that mirror knows",
    );
    assert_err(
        &["-i", "eth0", "--proto-config", "{"],
        "pktminerg: --proto-config: not valid JSON",
    );
}

// ---------------------------------------------------------------------------------------------
// How the binary is called.
// ---------------------------------------------------------------------------------------------

fn os(args: &[&str]) -> Vec<OsString> {
    args.iter().map(OsString::from).collect()
}

#[test]
fn invocations() {
    // Other subcommands pass through untouched.
    let native = os(&["mirror", "run", "--iface", "e"]);
    assert_eq!(invocation(native.clone()), Invocation::Native(native));
    assert_eq!(
        invocation(os(&["mirror"])),
        Invocation::Native(os(&["mirror"]))
    );
    // `mirror pktminerg` and a `pktminerg` symlink.
    for argv in [
        os(&[
            "/usr/bin/mirror",
            "pktminerg",
            "-i",
            "e",
            "-r",
            "198.18.0.2",
        ]),
        os(&["/usr/local/bin/pktminerg", "-i", "e", "-r", "198.18.0.2"]),
        os(&["pktminerg", "-i", "e", "-r", "198.18.0.2"]),
    ] {
        assert_eq!(
            invocation(argv),
            Invocation::Native(os(&[
                "mirror",
                "run",
                "--iface",
                "e",
                "--tunnel",
                "gre",
                "--gre-key",
                "1",
                "--remote",
                "198.18.0.2",
                "--snaplen",
                "2048"
            ]))
        );
    }
    assert_eq!(invocation(os(&["pktminerg", "-h"])), Invocation::Help(HELP));
    assert_eq!(
        invocation(os(&["mirror", "pktminerg", "--version"])),
        Invocation::Native(os(&["mirror", "--version"]))
    );
    let Invocation::Error(e) = invocation(os(&["pktminerg", "-i", "e"])) else {
        panic!("no error")
    };
    assert_eq!(e.to_string(), "pktminerg: no remote: give -r IP[,IP...]");
    // A name that only ends in pktminerg is not pktminerg.
    let argv = os(&["not-pktminerg", "-i", "e"]);
    assert_eq!(invocation(argv.clone()), Invocation::Native(argv));
}

#[test]
fn non_utf8_arguments_are_named() {
    use std::os::unix::ffi::OsStringExt as _;
    let argv = vec![
        OsString::from("pktminerg"),
        OsString::from("-i"),
        OsString::from_vec(vec![b'e', 0xff]),
    ];
    let Invocation::Error(e) = invocation(argv) else {
        panic!("no error")
    };
    assert_eq!(
        e.to_string(),
        "pktminerg: argument 2 (e\u{fffd}) is not valid UTF-8"
    );
}

/// Found by the `pktminerg_config` fuzz target: a value quoted in a message kept its newline,
/// and the binary's one error line became two.
#[test]
fn messages_stay_one_line() {
    let json = r#"{"ext_file_path": "libproto_vxlan.so", "ext_params": {"pmtudisc_option": "d\nt\u001b"}}"#;
    assert_eq!(
        err(&["-f", "in.pcap", "-r", "198.18.0.2", "--proto-config", json]),
        "pktminerg: --proto-config ext_params.pmtudisc_option: 'd\\nt\\u{1b}' is not do, dont \
         or want"
    );
    let message = err(&["-i", "eth0", "-r", "198.18.0.2", "-c", "1\r\n"]);
    assert!(!message.contains(['\n', '\r']), "{message:?}");
}
