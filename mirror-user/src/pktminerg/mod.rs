//! `mirror pktminerg ARGS` (and the binary run under the name `pktminerg`): packet-agent's
//! command line, translated into `mirror run` or `mirror replay` options, which are then parsed
//! and checked like any other command line.
//!
//! # What packet-agent was
//!
//! `pktminerg` of Netis packet-agent (github.com/Netis/packet-agent, later renamed
//! Netis/cloud-probe), the release line with tunnel and monitor plugins (0.3.x-0.4.x). Read for
//! this module:
//!
//! - `src/pktminerg.cpp`: the options (Boost.Program_options, default style) and their defaults:
//!   `-k/--keybit` 1, `-s/--snaplen` 2048, `-t/--timeout` 3, `-b/--buffsize` 256, `-c/--count` 0;
//!   positional words are `--expression`; `-i` and `-f` exclude each other; the live capture
//!   filter `not host <remote>` for every remote and collector unless `--nofilter`; without
//!   `--proto-config`, GRE with the key `keybit` (`src/socketgre.cpp`: flags 0x2000, protocol
//!   0x6558, no sequence number). In the plugin release, `--proto-config` makes pktminerg ignore
//!   `-r`, `-B` and `-M` ("If set, -r, -B, -M is ignore") and take `ext_params.remoteips`,
//!   `bind_device` and `pmtudisc_option`; the release before it passed `-r`, `-B` and `-M` to the
//!   plugin instead (`src/pcapexport_extension.cpp`, USAGE.md of that time, spelled
//!   `--proto_config`).
//! - The plugins' sources and READMEs, `ext/<plugin>/main.cpp`: `libproto_gre.so`
//!   (`use_default_header`, `enable_key`, `key`, `enable_sequence`, `sequence_begin`),
//!   `libproto_vxlan.so` (`use_default_header`, `vni`, default 0; UDP port 4789),
//!   `libproto_erspan_type1.so`, `libproto_erspan_type2.so` (`enable_spanid`, `spanid`,
//!   `enable_sequence`, `sequence_begin`), `libproto_erspan_type3.so` (and `enable_timestamp`,
//!   `timestamp_type`, `enable_security_grp_tag`, `security_grp_tag`, `enable_hw_id`, `hw_id`;
//!   the first ERSPAN plugins had `enable_vlan`, `vlan`), all with `remoteips`, `bind_device`
//!   and `pmtudisc_option`; `libmonitor_netflow.so` (`collectors_ipport` `[{ip, port}]`,
//!   `interface`, `netflow_version` 1, 5 or 7, default 5).
//! - docs/基于K8S_Flannel网络的远程流量镜像方案.md ("a remote traffic mirror for K8S Flannel
//!   networks"): `pktminerg -i veth --proto-config "$JSON_STR" --monitor-config "$MON_STR"`
//!   and `pktminerg -f pod1.pcap --proto-config "$JSON_STR"`, with the VxLAN plugin (`vni`
//!   3310, `bind_device` eth0, `pmtudisc_option` dont) and the NetFlow plugin (two collectors,
//!   the second without `ip`). Both run here as they are (see the tests).
//!
//! No release found has `--dir`, nor `ext_protos`/`ext_monitors` arrays: one `--proto-config`
//! holds one plugin. `--dir in|out|inout` is accepted as libpcap's `pcap_setdirection` would
//! read it; `ext_protos` and `ext_monitors` are refused as unknown keys. Options of the later
//! cloud-probe releases (`-z/--zmq_port`, `-m/--zmq_hwm`, `-n/--vni`, `--control`,
//! `--interval`) are refused by name.
//!
//! # The mapping
//!
//! | packet-agent | mirror |
//! |---|---|
//! | `-i NIC` | `run --iface NIC` (one interface, as packet-agent) |
//! | `-f FILE` | `replay --pcap FILE`, as fast as possible (as packet-agent) |
//! | `-r IP,IP,...` | `--remote IP` each (IPv4 or IPv6) |
//! | no `--proto-config`, `-k BIT` (default 1) | `--tunnel gre --gre-key BIT` (a negative BIT wraps to 32 bits, as in packet-agent) |
//! | `-B DEV`, `bind_device` | checked, not forced: the route to every remote must leave through DEV, else refused |
//! | `-M do`, `pmtudisc_option: do` | `--oversize drop` (DF set; a copy too big for the path was lost) |
//! | `-M dont`/`want` | `--oversize fragment`: a copy too big for the path leaves in IP fragments, as packet-agent's kernel sent it |
//! | `-s N` (default 2048) | `--snaplen N`; live capture gets `--snaplen 2048` when `-s` is not given; `-s 0`, negative or above 65535: `--snaplen 65535` (packet-agent sent at most 65535 bytes of a frame); 1-13 refused; with `-f`, packet-agent ignored `-s`, mirror applies it |
//! | `-c N` | `N <= 0` (unlimited) accepted; `N > 0` refused: mirror has no packet count |
//! | `-t`, `-b`, `-p` | checked (a whole number where one is due) and without effect: libpcap's buffer timeout and size and scheduling priority change no copy |
//! | `--cpu ID` | checked (a whole number); live capture: `--cpus ID` (one capture thread, pinned to that CPU, as pktminerg pinned itself); with `-f` without effect |
//! | `--nofilter` | accepted: mirror never excludes hosts (see below) |
//! | `--expression F`, positional words | `--filter F` (all of them joined with spaces; libpcap compiles both) |
//! | `--dump` | refused |
//! | `--dir in`/`out`/`inout` | `--direction ingress`/`egress`/`both` (what the interface receives / sends); live only |
//! | `-v`, `-h` | `mirror --version`; this mapping |
//! | `--proto-config` `libproto_vxlan.so` | `--tunnel vxlan --vni VNI --vxlan-port 4789` (VNI 0 unless `vni`) |
//! | `libproto_gre.so` | `--tunnel gre`, `--gre-key KEY` if `enable_key`, `--gre-seq` if `enable_sequence` |
//! | `libproto_erspan_type1.so` | `--tunnel erspan1` |
//! | `libproto_erspan_type2.so` | `--tunnel erspan2`, `--erspan-session SPANID` if `enable_spanid` |
//! | `libproto_erspan_type3.so` | `--tunnel erspan3`, `--erspan-session`, `--erspan-hwid HW_ID`, `--erspan-sgt SECURITY_GRP_TAG` each if enabled |
//! | `remoteips` | `--remote` each; refused together with `-r` |
//! | `--monitor-config` `libmonitor_netflow.so` | `--netflow IP:PORT` per `collectors_ipport` entry |
//! | `netflow_version` | 5 accepted, others refused |
//! | `interface` (NetFlow) | accepted, without effect: the plugin never passed it on |
//!
//! Any other option, plugin or key is refused by name. So is a key that has no effect where it
//! stands: a header key with `use_default_header: true`, `key` without `enable_key: true`
//! (likewise `spanid`, `sequence_begin`, `hw_id`, `security_grp_tag`, `timestamp_type`), and `-k`
//! with `--proto-config`. Refused as well: `sequence_begin` other than 0 (mirror numbers from 0),
//! `timestamp_type` other than 0, an ERSPAN `vlan` other than 0, `-r` together with `remoteips`
//! (and `-B` with `bind_device`, `-M` with `pmtudisc_option`: the releases disagree on which
//! one wins).
//!
//! # Where mirror differs on purpose
//!
//! - packet-agent's live capture filter excluded *all* traffic to and from the remotes and
//!   collectors (`not host ...`), its way of not capturing its own packets. Mirror excludes only
//!   its own packets (by socket mark), so the mirrored interface's other traffic with those hosts
//!   is copied too.
//! - Sequence numbers: the GRE plugin numbered from `sequence_begin + 1`, and not at all (the
//!   same number on every packet) when `use_default_header` was absent; the ERSPAN plugins sent a
//!   constant number unless `enable_sequence`. Mirror numbers GRE (with `enable_sequence`) and
//!   every ERSPAN II/III packet from 0 per remote.
//! - ERSPAN III timestamps: the plugin wrote 0, or with `enable_timestamp` 100 µs units since
//!   it started; mirror writes 100 µs units of Unix time, as Linux does.
//! - A NetFlow collector entry without `ip` took the previous entry's address in the plugin;
//!   mirror does the same but sends once to each distinct collector, where the plugin sent twice.
//! - The GRE plugin read `key` as 16 bits; mirror takes the whole 32-bit key.

pub mod args;
pub mod config;
pub mod json;
pub mod route;

use std::{ffi::OsString, net::IpAddr, path::Path};

use self::{
    args::{Opt, Parsed},
    config::{MonitorConfig, Pmtudisc, ProtoConfig},
    route::{KernelRoutes, Routes},
};

/// What `pktminerg --help` prints.
pub const HELP: &str = "\
pktminerg (mirror): packet-agent's pktminerg command line, run by mirror.

Usage: pktminerg -i NIC | -f PCAP  [-r IP[,IP...]] [-k KEY] [options]
       mirror pktminerg ...

  -i, --interface NIC       mirror NIC live (both directions)          -> run --iface NIC
  -f, --pcapfile PATH       send a capture file, as fast as possible   -> replay --pcap PATH
  -r, --remoteip IPs        tunnel destinations, comma separated       -> --remote IP ...
  -k, --keybit KEY (=1)     GRE key, without --proto-config            -> --tunnel gre --gre-key KEY
  -s, --snaplen N (=2048)   cut copies to N bytes                      -> --snaplen N
  -M, --pmtudisc_option do|dont|want                                   -> --oversize drop|fragment|fragment
  -B, --bind_device DEV     checked: the routes to the remotes must leave through DEV
  --dir in|out|inout        what the interface receives / sends / both -> --direction
  --proto-config JSON       tunnel plugin: libproto_gre.so, libproto_vxlan.so,
                            libproto_erspan_type1.so, _type2.so, _type3.so
  --monitor-config JSON     libmonitor_netflow.so: collectors_ipport   -> --netflow IP:PORT ...
  --cpu ID                  pin the capture to CPU ID                  -> run --cpus ID
  -t, -b, -p, --nofilter    accepted, without effect here
  --expression F, filter words  the capture filter                        -> --filter F
  -c N>0, --dump            refused: mirror has no such feature
  -v, --version             mirror's version
  -h, --help                this text

mirror never fragments a copy: one too big for the path MTU is cut to fit (-M dont/want, the
default) or dropped (-M do). Unknown options, plugins and keys are refused by name.
The whole mapping: mirror's README, section pktminerg.
";

/// The packet-agent command line cannot be run as it is: the binary prints one line and exits
/// with 2. [`TranslateError::Help`] is the exception: print [`HELP`] and exit with 0.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// `-h`/`--help` was given.
    #[error("pktminerg: help requested")]
    Help,
    /// Not a command line pktminerg would parse: unknown option, missing value...
    #[error("pktminerg: {0}")]
    Usage(String),
    /// A value pktminerg would not take either, or one that contradicts another.
    #[error("pktminerg: {what}: {why}")]
    Invalid { what: String, why: String },
    /// Something pktminerg did that mirror does not do: named, never ignored.
    #[error("pktminerg: {what}: {why}")]
    Unsupported { what: String, why: String },
}

impl TranslateError {
    pub(crate) fn usage(why: impl Into<String>) -> Self {
        Self::Usage(one_line(why.into()))
    }

    pub(crate) fn invalid(what: impl Into<String>, why: impl Into<String>) -> Self {
        Self::Invalid {
            what: one_line(what.into()),
            why: one_line(why.into()),
        }
    }

    pub(crate) fn unsupported(what: impl Into<String>, why: impl Into<String>) -> Self {
        Self::Unsupported {
            what: one_line(what.into()),
            why: one_line(why.into()),
        }
    }
}

/// `text` with its control characters escaped (`\n`, `\u{1b}`): messages quote what they were
/// given (a JSON string may hold a newline), and must stay the one line the binary prints.
fn one_line(text: String) -> String {
    if !text.contains(char::is_control) {
        return text;
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// What the binary should do with its command line.
#[derive(Debug, PartialEq, Eq)]
pub enum Invocation {
    /// Parse this with `Cli` (the program name first): the command line as it came, or the
    /// translation of a pktminerg one.
    Native(Vec<OsString>),
    /// Print this to stdout and exit 0.
    Help(&'static str),
    /// Print `error: {0}` and exit 2.
    Error(TranslateError),
}

/// Sorts out `argv` (program name first): `pktminerg ARGS` (the binary called by that name,
/// e.g. through a symlink) and `mirror pktminerg ARGS` are translated, anything else is passed
/// through unchanged.
pub fn invocation(argv: Vec<OsString>) -> Invocation {
    let called_pktminerg = argv
        .first()
        .and_then(|a| Path::new(a).file_name())
        .is_some_and(|name| name == "pktminerg");
    let skip = if called_pktminerg {
        1
    } else if argv.get(1).is_some_and(|a| a == "pktminerg") {
        2
    } else {
        return Invocation::Native(argv);
    };
    let mut args = Vec::with_capacity(argv.len().saturating_sub(skip));
    for (i, arg) in argv.iter().enumerate().skip(skip) {
        match arg.to_str() {
            Some(arg) => args.push(arg.to_owned()),
            None => {
                return Invocation::Error(TranslateError::usage(format!(
                    "argument {} ({}) is not valid UTF-8",
                    i + 1 - skip,
                    arg.to_string_lossy()
                )));
            }
        }
    }
    match translate(&args) {
        Ok(native) => Invocation::Native(
            std::iter::once(OsString::from("mirror"))
                .chain(native.into_iter().map(OsString::from))
                .collect(),
        ),
        Err(TranslateError::Help) => Invocation::Help(HELP),
        Err(e) => Invocation::Error(e),
    }
}

/// Translates pktminerg's arguments (without the program name) into mirror's
/// (`["run", "--iface", ...]` or `["replay", "--pcap", ...]`, without the program name), asking
/// the kernel's routes when a bind device has to be checked.
pub fn translate(args: &[String]) -> Result<Vec<String>, TranslateError> {
    translate_with(args, &KernelRoutes)
}

/// [`translate`] with the routes answered by `routes`.
pub fn translate_with(args: &[String], routes: &dyn Routes) -> Result<Vec<String>, TranslateError> {
    let parsed = args::parse(args)?;
    if parsed.has(Opt::Help) {
        return Err(TranslateError::Help);
    }
    if parsed.has(Opt::Version) {
        return Ok(vec!["--version".to_owned()]);
    }
    refuse_unsupported(&parsed)?;
    let source = source(&parsed)?;
    let live = matches!(source, Source::Live(_));
    let proto = parsed
        .value(Opt::ProtoConfig)
        .map(config::proto)
        .transpose()?;
    let monitor = parsed
        .value(Opt::MonitorConfig)
        .map(config::monitor)
        .transpose()?;

    let mut argv = match source {
        Source::Live(iface) => vec!["run".to_owned(), "--iface".to_owned(), iface.to_owned()],
        Source::File(file) => vec!["replay".to_owned(), "--pcap".to_owned(), file.to_owned()],
    };
    if let Some(direction) = direction(&parsed, live)? {
        argv.extend(["--direction".to_owned(), direction.to_owned()]);
    }
    argv.extend(tunnel(&parsed, proto.as_ref())?);
    let remotes = remotes(&parsed, proto.as_ref())?;
    check_bind_device(&parsed, proto.as_ref(), &remotes, routes)?;
    for remote in &remotes {
        argv.extend(["--remote".to_owned(), remote.to_string()]);
    }
    if let Some(snaplen) = snaplen(&parsed, live)? {
        argv.extend(["--snaplen".to_owned(), snaplen.to_string()]);
    }
    // pktminerg pinned its one capture thread to `--cpu`; so does `--cpus` of one CPU.
    if live && let Some(cpu) = parsed.value(Opt::Cpu) {
        let id = int(Opt::Cpu, cpu)?;
        if id < 0 {
            // pktminerg's affinity call failed on an empty CPU set and it stopped.
            return Err(TranslateError::invalid(
                Opt::Cpu.label(),
                format!("'{cpu}' is no CPU"),
            ));
        }
        argv.extend(["--cpus".to_owned(), id.to_string()]);
    }
    if let Some(oversize) = oversize(&parsed, proto.as_ref())? {
        argv.extend(["--oversize".to_owned(), oversize.to_owned()]);
    }
    for collector in monitor.iter().flat_map(|m: &MonitorConfig| &m.collectors) {
        argv.extend(["--netflow".to_owned(), collector.to_string()]);
    }
    // pktminerg handed the expression to libpcap; so does `--filter`. (Its own exclusion of the
    // remotes' traffic, which `--nofilter` turned off, is the agent's socket mark here.)
    let expression = parsed.expression();
    if !expression.trim().is_empty() {
        argv.extend(["--filter".to_owned(), expression.trim().to_owned()]);
    }
    Ok(argv)
}

/// Options refused whatever else is given.
fn refuse_unsupported(parsed: &Parsed) -> Result<(), TranslateError> {
    for (opt, value) in &parsed.given {
        let why = match opt {
            Opt::ZmqPort | Opt::ZmqHwm | Opt::Vni | Opt::Control | Opt::Interval => {
                "an option of later packet-agent (cloud-probe) releases, which mirror's pktminerg \
                 mode does not take; use mirror's own options (`mirror run --help`)"
            }
            Opt::Dump => {
                "mirror does not write pktminer_dump.pcap; record the copies at the remote with \
                 `mirror receive`"
            }
            Opt::Count if int(Opt::Count, value)? > 0 => {
                "mirror has no packet count: it runs until SIGINT or SIGTERM (a replay until the \
                 end of the file)"
            }
            Opt::Timeout | Opt::BuffSize | Opt::Cpu => {
                // Checked as pktminerg did, then without effect: libpcap's buffer timeout and
                // size change no copy (and `--cpu` becomes `--cpus` of a live capture).
                int(*opt, value)?;
                continue;
            }
            _ => continue,
        };
        return Err(TranslateError::unsupported(opt.label(), why));
    }
    Ok(())
}

/// Where the packets come from.
enum Source<'a> {
    /// `-i`: an interface.
    Live(&'a str),
    /// `-f`: a capture file.
    File(&'a str),
}

/// Exactly one of `-i` and `-f`, not empty.
fn source(parsed: &Parsed) -> Result<Source<'_>, TranslateError> {
    let given = |opt: Opt| {
        parsed
            .value(opt)
            .map(|value| {
                if value.is_empty() {
                    Err(TranslateError::invalid(opt.label(), "is empty"))
                } else {
                    Ok(value)
                }
            })
            .transpose()
    };
    match (given(Opt::Interface)?, given(Opt::PcapFile)?) {
        (Some(iface), None) => Ok(Source::Live(iface)),
        (None, Some(file)) => Ok(Source::File(file)),
        (Some(_), Some(_)) => Err(TranslateError::usage(
            "give only one of -i (an interface) and -f (a capture file)",
        )),
        (None, None) => Err(TranslateError::usage(
            "give -i NIC to mirror an interface or -f PCAP to send a capture file",
        )),
    }
}

/// `--dir`: live only.
fn direction(parsed: &Parsed, live: bool) -> Result<Option<&'static str>, TranslateError> {
    let Some(dir) = parsed.value(Opt::Dir) else {
        return Ok(None);
    };
    let direction = match dir {
        "in" => "ingress",
        "out" => "egress",
        "inout" => "both",
        other => {
            return Err(TranslateError::invalid(
                Opt::Dir.label(),
                format!("'{other}' is not in, out or inout"),
            ));
        }
    };
    if !live {
        return Err(TranslateError::unsupported(
            Opt::Dir.label(),
            "applies to a live interface (-i), not to a capture file (-f)",
        ));
    }
    Ok(Some(direction))
}

/// The tunnel: the plugin's, or packet-agent's classic GRE with key `-k` (default 1).
fn tunnel(parsed: &Parsed, proto: Option<&ProtoConfig>) -> Result<Vec<String>, TranslateError> {
    if let Some(proto) = proto {
        if parsed.has(Opt::KeyBit) {
            return Err(TranslateError::invalid(
                Opt::KeyBit.label(),
                "has no effect with --proto-config (packet-agent ignores it); for a GRE key use \
                 libproto_gre.so's enable_key and key",
            ));
        }
        return Ok(proto.tunnel_args.clone());
    }
    // pktminerg's `int keybit`, passed on as uint32_t: a negative one wraps.
    let key = match parsed.value(Opt::KeyBit) {
        Some(value) => int(Opt::KeyBit, value)?.cast_unsigned(),
        None => 1,
    };
    Ok(vec![
        "--tunnel".to_owned(),
        "gre".to_owned(),
        "--gre-key".to_owned(),
        key.to_string(),
    ])
}

/// `-r` or `ext_params.remoteips`: one of them, at least one address, none twice.
fn remotes(parsed: &Parsed, proto: Option<&ProtoConfig>) -> Result<Vec<IpAddr>, TranslateError> {
    let from_json = proto.map(|p| p.remotes.clone()).filter(|r| !r.is_empty());
    let remotes = match (parsed.value(Opt::RemoteIp), from_json) {
        (Some(_), Some(_)) => {
            return Err(TranslateError::invalid(
                Opt::RemoteIp.label(),
                "given together with --proto-config ext_params.remoteips; packet-agent releases \
                 disagree on which one wins: keep one",
            ));
        }
        (Some(list), None) => list
            .split(',')
            .map(|ip| {
                ip.trim().parse::<IpAddr>().map_err(|_| {
                    TranslateError::invalid(
                        Opt::RemoteIp.label(),
                        format!("'{ip}' is not an IP address (give IP[,IP...])"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
        (None, Some(remotes)) => remotes,
        (None, None) => {
            return Err(TranslateError::usage(if proto.is_some() {
                "no remote: give ext_params.remoteips in --proto-config (or -r IP[,IP...])"
            } else {
                "no remote: give -r IP[,IP...]"
            }));
        }
    };
    for (i, ip) in remotes.iter().enumerate() {
        if ip.is_unspecified() || ip.is_multicast() {
            return Err(TranslateError::invalid(
                "remote",
                format!("{ip} is not a tunnel destination"),
            ));
        }
        if remotes[..i].contains(ip) {
            return Err(TranslateError::invalid(
                "remote",
                format!("{ip} is listed twice"),
            ));
        }
    }
    Ok(remotes)
}

/// `-B` or `bind_device`: packet-agent bound its sockets to the device; mirror sends along the
/// routing table, which is the same when the route to every remote leaves through the device.
fn check_bind_device(
    parsed: &Parsed,
    proto: Option<&ProtoConfig>,
    remotes: &[IpAddr],
    routes: &dyn Routes,
) -> Result<(), TranslateError> {
    let from_json = proto.and_then(|p| p.bind_device.as_deref());
    let (what, device) = match (parsed.value(Opt::BindDevice), from_json) {
        (Some(_), Some(_)) => {
            return Err(TranslateError::invalid(
                Opt::BindDevice.label(),
                "given together with --proto-config ext_params.bind_device: keep one",
            ));
        }
        (Some(device), None) if !device.is_empty() => {
            (format!("{} {device}", Opt::BindDevice.label()), device)
        }
        (None, Some(device)) => (
            format!("--proto-config ext_params.bind_device {device}"),
            device,
        ),
        _ => return Ok(()),
    };
    for &remote in remotes {
        match routes.device_towards(remote) {
            Ok(out) if out == device => {}
            Ok(out) => {
                return Err(TranslateError::unsupported(
                    what,
                    format!(
                        "the route to {remote} leaves through {out}, and mirror sends along the \
                         routing table: it cannot bind its packets to {device}; route {remote} \
                         through {device}, or remove the binding"
                    ),
                ));
            }
            Err(why) => {
                return Err(TranslateError::invalid(
                    what,
                    format!("cannot check the route to {remote}: {why}"),
                ));
            }
        }
    }
    Ok(())
}

/// `-s`: packet-agent's snaplen, 2048 unless given (a capture file kept its own length).
fn snaplen(parsed: &Parsed, live: bool) -> Result<Option<u32>, TranslateError> {
    let snaplen = match parsed.value(Opt::Snaplen) {
        Some(value) => int(Opt::Snaplen, value)?,
        None if live => 2048,
        None => return Ok(None),
    };
    match snaplen {
        // libpcap took 0, a negative or a too large snaplen as its maximum, and pktminerg
        // sent at most 65535 bytes of a frame.
        ..=0 | 65535.. => Ok(Some(65535)),
        1..=13 => Err(TranslateError::unsupported(
            Opt::Snaplen.label(),
            format!(
                "{snaplen}: mirror keeps at least the 14-byte Ethernet header; give 14 or more"
            ),
        )),
        n => Ok(Some(n.unsigned_abs())),
    }
}

/// `-M` or `pmtudisc_option`, as `--oversize`.
fn oversize(
    parsed: &Parsed,
    proto: Option<&ProtoConfig>,
) -> Result<Option<&'static str>, TranslateError> {
    let from_cli = parsed
        .value(Opt::Pmtudisc)
        .map(|s| {
            Pmtudisc::parse(s).ok_or_else(|| {
                TranslateError::invalid(
                    Opt::Pmtudisc.label(),
                    format!("'{s}' is not do, dont or want"),
                )
            })
        })
        .transpose()?;
    let mode = match (from_cli, proto.and_then(|p| p.pmtudisc)) {
        (Some(_), Some(_)) => {
            return Err(TranslateError::invalid(
                Opt::Pmtudisc.label(),
                "given together with --proto-config ext_params.pmtudisc_option: keep one",
            ));
        }
        (Some(mode), None) | (None, Some(mode)) => mode,
        (None, None) => return Ok(None),
    };
    Ok(Some(match mode {
        Pmtudisc::Do => "drop",
        Pmtudisc::Dont | Pmtudisc::Want => "fragment",
    }))
}

/// A value of a pktminerg `int` option.
fn int(opt: Opt, value: &str) -> Result<i32, TranslateError> {
    value.trim().parse().map_err(|_| {
        TranslateError::invalid(opt.label(), format!("'{value}' is not a whole number"))
    })
}

#[cfg(test)]
mod tests;
