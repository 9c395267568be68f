//! packet-agent's plugin configurations, from JSON text to the `mirror` command line they
//! become.
//!
//! The input is a `--proto-config` text, optionally followed by a NUL byte and a
//! `--monitor-config` text. Checked: a refusal is one line; what is read agrees with itself
//! (collectors listed once, with an address and a port); and a whole `pktminerg -f FILE` command
//! line with these configurations, once translated, is accepted by mirror's own command line
//! with the tunnel, remotes and collectors the configurations name.
#![no_main]

use std::net::IpAddr;

use clap::Parser as _;
use libfuzzer_sys::fuzz_target;
use mirror::{
    cli::{Cli, Command},
    netflow::collector::NetflowVersion,
    tunnel::TunnelKind,
    pktminerg::{
        TranslateError,
        config::{self, Plugin},
        route::Routes,
        translate_with,
    },
};

/// The remote given with `-r` when the configuration names none.
const REMOTE: &str = "198.18.0.2";

/// Every route leaves through `device`.
struct OneDevice(String);

impl Routes for OneDevice {
    fn device_towards(&self, _: IpAddr) -> Result<String, String> {
        Ok(self.0.clone())
    }
}

fuzz_target!(|data: &[u8]| {
    let (proto, monitor) = match data.iter().position(|&b| b == 0) {
        Some(nul) => (&data[..nul], Some(&data[nul + 1..])),
        None => (data, None),
    };
    let Ok(proto) = std::str::from_utf8(proto) else {
        return;
    };
    let monitor = match monitor.map(std::str::from_utf8) {
        Some(Ok(text)) => Some(text),
        Some(Err(_)) => return,
        None => None,
    };

    let proto_config = config::proto(proto).map_err(one_line);
    let monitor_config = monitor.map(|text| config::monitor(text).map_err(one_line));
    if let Some(Ok(monitor)) = &monitor_config {
        let collectors = &monitor.collectors;
        assert!(!collectors.is_empty());
        for (i, collector) in collectors.iter().enumerate() {
            assert!(collector.port() != 0 && !collector.ip().is_unspecified());
            assert!(!collectors[..i].contains(collector), "{collector} twice");
        }
    }
    let Ok(proto_config) = proto_config else {
        return;
    };

    let mut args = vec!["-f", "in.pcap", "--proto-config", proto];
    if proto_config.remotes.is_empty() {
        args.extend(["-r", REMOTE]);
    }
    if let Some(text) = monitor {
        args.extend(["--monitor-config", text]);
    }
    let args: Vec<String> = args.into_iter().map(str::to_owned).collect();
    let device = proto_config
        .bind_device
        .clone()
        .unwrap_or_else(|| "eth0".to_owned());
    let Ok(native) = translate_with(&args, &OneDevice(device)).map_err(one_line) else {
        return;
    };
    let monitor_config = monitor_config.map(|m| m.expect("translated with a refused monitor"));

    let cli = Cli::try_parse_from(std::iter::once("mirror".to_owned()).chain(native.clone()))
        .unwrap_or_else(|e| panic!("mirror refuses the translation {native:?}: {e}"));
    let Command::Replay(replay) = cli.command else {
        panic!("-f became {native:?}");
    };
    let output = &replay.output;
    output
        .tunnel()
        .unwrap_or_else(|e| panic!("mirror refuses the tunnel of {native:?}: {e}"));
    let expected = match proto_config.plugin {
        Plugin::Gre => TunnelKind::Gre,
        Plugin::Vxlan => TunnelKind::Vxlan,
        Plugin::Erspan1 => TunnelKind::Erspan1,
        Plugin::Erspan2 => TunnelKind::Erspan2,
        Plugin::Erspan3 => TunnelKind::Erspan3,
    };
    assert_eq!(output.tunnel, expected);
    let remotes: Vec<IpAddr> = output.remotes.iter().map(|r| r.ip).collect();
    if proto_config.remotes.is_empty() {
        assert_eq!(remotes, [REMOTE.parse::<IpAddr>().unwrap()]);
    } else {
        assert_eq!(remotes, proto_config.remotes);
    }
    assert!(output.remotes.iter().all(|r| r.port.is_none()));
    let collectors = monitor_config.map(|m| m.collectors).unwrap_or_default();
    // libmonitor_netflow.so maps to NetFlow v5 collectors: plain IP:PORT, version 5.
    let netflow: Vec<_> = output.netflow_collectors();
    let v5: Vec<_> = collectors
        .into_iter()
        .map(|addr| (addr, NetflowVersion::V5))
        .collect();
    assert_eq!(netflow, v5);
    assert!(output.netflow.iter().all(|c| c.version.is_none()));
});

/// Every refusal is one line: the binary prints it after `error: ` and exits with 2.
fn one_line(error: TranslateError) -> TranslateError {
    let message = error.to_string();
    assert!(
        !message.contains('\n') && !message.trim().is_empty(),
        "{message:?}"
    );
    error
}
