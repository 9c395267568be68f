//! packet-agent's plugin configurations: `--proto-config` (a tunnel plugin) and
//! `--monitor-config` (the NetFlow plugin), each one JSON object
//! `{"ext_file_path": "<path>/lib<plugin>.so", "ext_params": {...}}`.
//!
//! Each key is read as the plugin read it (see the module documentation of [`super`] for the
//! sources); a key no plugin knows, a key the named plugin does not know, a key given twice, and
//! a key that has no effect where it stands are refused by name.

use std::net::{IpAddr, SocketAddr};

use super::{
    TranslateError,
    json::{self, Value},
};

/// The UDP port packet-agent's VxLAN plugin sends to (`VXLAN_DST_PORT`).
pub const VXLAN_PORT: u16 = 4789;

/// Socket keys every tunnel plugin reads.
const SOCKET_KEYS: [&str; 3] = ["remoteips", "bind_device", "pmtudisc_option"];

/// A tunnel plugin, by the file name of its library.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plugin {
    Gre,
    Vxlan,
    Erspan1,
    Erspan2,
    Erspan3,
}

const PLUGINS: [(&str, Plugin); 5] = [
    ("libproto_gre.so", Plugin::Gre),
    ("libproto_vxlan.so", Plugin::Vxlan),
    ("libproto_erspan_type1.so", Plugin::Erspan1),
    ("libproto_erspan_type2.so", Plugin::Erspan2),
    ("libproto_erspan_type3.so", Plugin::Erspan3),
];

/// The monitor plugin.
pub const NETFLOW_PLUGIN: &str = "libmonitor_netflow.so";

impl Plugin {
    /// `ext_params` keys of the plugin besides [`SOCKET_KEYS`].
    fn header_keys(self) -> &'static [&'static str] {
        match self {
            Self::Gre => &[
                "use_default_header",
                "enable_key",
                "key",
                "enable_sequence",
                "sequence_begin",
            ],
            Self::Vxlan => &["use_default_header", "vni"],
            Self::Erspan1 => &["use_default_header"],
            // enable_vlan and vlan: the first ERSPAN plugins' only header options.
            Self::Erspan2 => &[
                "use_default_header",
                "enable_spanid",
                "spanid",
                "enable_sequence",
                "sequence_begin",
                "enable_vlan",
                "vlan",
            ],
            Self::Erspan3 => &[
                "use_default_header",
                "enable_spanid",
                "spanid",
                "enable_sequence",
                "sequence_begin",
                "enable_timestamp",
                "timestamp_type",
                "enable_security_grp_tag",
                "security_grp_tag",
                "enable_hw_id",
                "hw_id",
                "enable_vlan",
                "vlan",
            ],
        }
    }
}

/// packet-agent's `pmtudisc_option` / `-M`: the `IP_MTU_DISCOVER` mode of its sockets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pmtudisc {
    /// `IP_PMTUDISC_DO`: DF set, never fragment; a too-big copy fails to send (is lost).
    Do,
    /// `IP_PMTUDISC_DONT`: DF clear, the kernel fragments.
    Dont,
    /// `IP_PMTUDISC_WANT`: DF set when the packet fits, fragment locally when it does not.
    Want,
}

impl Pmtudisc {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "do" => Some(Self::Do),
            "dont" => Some(Self::Dont),
            "want" => Some(Self::Want),
            _ => None,
        }
    }
}

/// A `--proto-config`, read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtoConfig {
    pub plugin: Plugin,
    /// The native tunnel options: `--tunnel ...` and its options.
    pub tunnel_args: Vec<String>,
    /// `ext_params.remoteips`, in order.
    pub remotes: Vec<IpAddr>,
    /// `ext_params.bind_device` (an empty string counts as absent, as in the plugins).
    pub bind_device: Option<String>,
    pub pmtudisc: Option<Pmtudisc>,
}

/// A `--monitor-config`, read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MonitorConfig {
    /// `ext_params.collectors_ipport`, in order, without the duplicates that an entry with no
    /// `ip` makes (the plugin took the previous entry's address).
    pub collectors: Vec<SocketAddr>,
}

const PROTO: &str = "--proto-config";
const MONITOR: &str = "--monitor-config";

/// Reads a `--proto-config` JSON string.
pub fn proto(text: &str) -> Result<ProtoConfig, TranslateError> {
    let (file, params) = top_level(PROTO, text)?;
    let params = Object::new(PROTO, "ext_params".to_owned(), &params)?;
    let plugin = PLUGINS
        .iter()
        .find(|(name, _)| *name == file)
        .map(|&(_, plugin)| plugin)
        .ok_or_else(|| {
            let why = if file == NETFLOW_PLUGIN {
                format!("{file} is the NetFlow monitor plugin: give it with {MONITOR}")
            } else {
                format!(
                    "unknown tunnel plugin {file}; mirror knows {}",
                    PLUGINS.map(|(name, _)| name).join(", ")
                )
            };
            TranslateError::unsupported(format!("{PROTO} ext_file_path"), why)
        })?;
    let known: Vec<&str> = SOCKET_KEYS
        .iter()
        .chain(plugin.header_keys())
        .copied()
        .collect();
    params.check_known(&known, &file)?;

    let remotes = match params.get("remoteips") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let what = format!("{PROTO} ext_params.remoteips[{i}]");
                let text = item.as_str().ok_or_else(|| {
                    TranslateError::invalid(&what, format!("{} is not a string", item.kind()))
                })?;
                text.parse().map_err(|_| {
                    TranslateError::invalid(&what, format!("'{text}' is not an IP address"))
                })
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(TranslateError::invalid(
                params.what("remoteips"),
                format!("{} is not an array of addresses", other.kind()),
            ));
        }
    };
    let bind_device = params
        .str("bind_device")?
        .filter(|d| !d.is_empty())
        .map(str::to_owned);
    let pmtudisc = params
        .str("pmtudisc_option")?
        .map(|s| {
            Pmtudisc::parse(s).ok_or_else(|| {
                TranslateError::invalid(
                    params.what("pmtudisc_option"),
                    format!("'{s}' is not do, dont or want"),
                )
            })
        })
        .transpose()?;

    let header = Header::read(&params, plugin)?;
    Ok(ProtoConfig {
        plugin,
        tunnel_args: header.tunnel_args(plugin, &params)?,
        remotes,
        bind_device,
        pmtudisc,
    })
}

/// The header keys of a tunnel plugin.
struct Header {
    /// `use_default_header: true`: every other header key is without effect.
    defaults: bool,
}

impl Header {
    fn read(params: &Object<'_>, plugin: Plugin) -> Result<Self, TranslateError> {
        let defaults = params.bool("use_default_header")?.unwrap_or(false);
        if defaults
            && let Some(key) = plugin
                .header_keys()
                .iter()
                .find(|&&k| k != "use_default_header" && params.get(k).is_some())
        {
            return Err(TranslateError::invalid(
                params.what(key),
                "has no effect with use_default_header: true (packet-agent then writes its \
                 default header); remove one of them",
            ));
        }
        Ok(Self { defaults })
    }

    fn tunnel_args(
        &self,
        plugin: Plugin,
        params: &Object<'_>,
    ) -> Result<Vec<String>, TranslateError> {
        let mut args: Vec<String> = Vec::new();
        let mut push = |option: &str, value: Option<String>| {
            args.push(option.to_owned());
            args.extend(value);
        };
        match plugin {
            Plugin::Vxlan => {
                // The plugin's VNI is 0 unless set (the mirror's default is 1).
                let vni = if self.defaults {
                    0
                } else {
                    params
                        .number("vni", 0xFF_FFFF, "16777215 (24 bits)")?
                        .unwrap_or(0)
                };
                push("--tunnel", Some("vxlan".into()));
                push("--vni", Some(vni.to_string()));
                push("--vxlan-port", Some(VXLAN_PORT.to_string()));
            }
            Plugin::Gre => {
                push("--tunnel", Some("gre".into()));
                if let Some(key) =
                    params.enabled_number("enable_key", "key", u64::from(u32::MAX), "4294967295")?
                {
                    push("--gre-key", Some(key.to_string()));
                }
                if sequence(params)? {
                    push("--gre-seq", None);
                }
            }
            Plugin::Erspan1 => push("--tunnel", Some("erspan1".into())),
            Plugin::Erspan2 | Plugin::Erspan3 => {
                let type3 = plugin == Plugin::Erspan3;
                push(
                    "--tunnel",
                    Some(if type3 { "erspan3" } else { "erspan2" }.into()),
                );
                // ERSPAN II and III always carry sequence numbers, counted from 0 per remote.
                sequence(params)?;
                vlan(params)?;
                if let Some(session) =
                    params.enabled_number("enable_spanid", "spanid", 1023, "1023 (10 bits)")?
                {
                    push("--erspan-session", Some(session.to_string()));
                }
                if type3 {
                    if let Some(hwid) =
                        params.enabled_number("enable_hw_id", "hw_id", 63, "63 (6 bits)")?
                    {
                        push("--erspan-hwid", Some(hwid.to_string()));
                    }
                    if let Some(sgt) = params.enabled_number(
                        "enable_security_grp_tag",
                        "security_grp_tag",
                        u64::from(u16::MAX),
                        "65535 (16 bits)",
                    )? {
                        push("--erspan-sgt", Some(sgt.to_string()));
                    }
                    timestamp(params)?;
                }
            }
        }
        Ok(args)
    }
}

/// `enable_sequence` and `sequence_begin`: whether to number the packets. The mirror numbers
/// them from 0, so only a `sequence_begin` of 0 can be honoured.
fn sequence(params: &Object<'_>) -> Result<bool, TranslateError> {
    let begin = params.enabled_number(
        "enable_sequence",
        "sequence_begin",
        u64::from(u32::MAX),
        "4294967295",
    )?;
    if let Some(begin) = begin.filter(|&b| b != 0) {
        return Err(TranslateError::unsupported(
            params.what("sequence_begin"),
            format!(
                "{begin}: mirror numbers the packets to each remote from 0; remove \
                 sequence_begin or set it to 0"
            ),
        ));
    }
    Ok(begin.is_some())
}

/// `enable_vlan` and `vlan` (the first ERSPAN plugins): the mirror writes VLAN 0.
fn vlan(params: &Object<'_>) -> Result<(), TranslateError> {
    let vlan = params.number("vlan", 4095, "4095 (12 bits)")?;
    if let Some(vlan) = vlan.filter(|&v| v != 0) {
        return Err(TranslateError::unsupported(
            params.what("vlan"),
            format!(
                "{vlan}: mirror writes VLAN 0 in the ERSPAN header (the inner frame keeps its own tags)"
            ),
        ));
    }
    params.bool("enable_vlan")?;
    Ok(())
}

/// `enable_timestamp` and `timestamp_type`: the plugin knew type 0 only (100 µs units), which
/// is what the mirror writes.
fn timestamp(params: &Object<'_>) -> Result<(), TranslateError> {
    if let Some(kind) = params.enabled_number("enable_timestamp", "timestamp_type", 3, "3")?
        && kind != 0
    {
        return Err(TranslateError::unsupported(
            params.what("timestamp_type"),
            format!("{kind}: mirror writes ERSPAN III timestamps in 100 µs units (type 0) only"),
        ));
    }
    Ok(())
}

/// Reads a `--monitor-config` JSON string.
pub fn monitor(text: &str) -> Result<MonitorConfig, TranslateError> {
    let (file, params) = top_level(MONITOR, text)?;
    let params = Object::new(MONITOR, "ext_params".to_owned(), &params)?;
    if file != NETFLOW_PLUGIN {
        let why = if PLUGINS.iter().any(|(name, _)| *name == file) {
            format!("{file} is a tunnel plugin: give it with {PROTO}")
        } else {
            format!("unknown monitor plugin {file}; mirror knows {NETFLOW_PLUGIN}")
        };
        return Err(TranslateError::unsupported(
            format!("{MONITOR} ext_file_path"),
            why,
        ));
    }
    params.check_known(
        &["collectors_ipport", "interface", "netflow_version"],
        NETFLOW_PLUGIN,
    )?;
    if let Some(version) = params.number("netflow_version", u64::from(u16::MAX), "65535")?
        && version != 5
    {
        return Err(TranslateError::unsupported(
            params.what("netflow_version"),
            format!(
                "{version}: libmonitor_netflow.so maps to NetFlow version 5 only (IPFIX is --netflow ipfix://IP:PORT)"
            ),
        ));
    }
    // `interface` only labelled the plugin's log: it never reached the exporter.
    params.str("interface")?;
    let collectors = read_collectors(&params)?;
    Ok(MonitorConfig { collectors })
}

/// `collectors_ipport`: `[{"ip": IP, "port": PORT}, ...]`, at least one.
///
/// The plugin kept one entry variable across the loop and reset only its port: an entry without
/// `ip` took the previous entry's address (the Flannel article's second entry, `{"port": 2055}`,
/// is the first collector again). That address is kept here; the duplicate it makes is dropped,
/// where packet-agent sent every NetFlow datagram twice to that collector, which then counted
/// every flow twice.
fn read_collectors(params: &Object<'_>) -> Result<Vec<SocketAddr>, TranslateError> {
    let what = params.what("collectors_ipport");
    let entries = match params.get("collectors_ipport") {
        Some(Value::Array(entries)) if !entries.is_empty() => entries,
        Some(Value::Array(_)) | None => {
            return Err(TranslateError::invalid(
                what,
                "needs at least one collector {\"ip\": ..., \"port\": ...}",
            ));
        }
        Some(other) => {
            return Err(TranslateError::invalid(
                what,
                format!("{} is not an array of collectors", other.kind()),
            ));
        }
    };
    let mut collectors: Vec<SocketAddr> = Vec::new();
    let mut previous_ip: Option<IpAddr> = None;
    for (i, entry) in entries.iter().enumerate() {
        let entry = Object::new(MONITOR, format!("ext_params.collectors_ipport[{i}]"), entry)?;
        entry.check_known(&["ip", "port"], NETFLOW_PLUGIN)?;
        let ip = match entry.str("ip")? {
            Some(text) => text.parse().map_err(|_| {
                TranslateError::invalid(entry.what("ip"), format!("'{text}' is not an IP address"))
            })?,
            None => previous_ip.ok_or_else(|| {
                TranslateError::invalid(
                    entry.what("ip"),
                    "is missing (and no entry before gives one)",
                )
            })?,
        };
        let port = entry
            .number("port", u64::from(u16::MAX), "65535")?
            .filter(|&p| p != 0)
            .ok_or_else(|| {
                TranslateError::invalid(entry.what("port"), "needs a port from 1 to 65535")
            })?;
        let addr = SocketAddr::new(ip, port as u16);
        if ip.is_unspecified() {
            return Err(TranslateError::invalid(
                entry.what("ip"),
                format!("{ip} is not a collector address"),
            ));
        }
        if collectors.contains(&addr) {
            if entry.get("ip").is_some() {
                return Err(TranslateError::invalid(
                    entry.what("ip"),
                    format!("{addr} is listed twice"),
                ));
            }
        } else {
            collectors.push(addr);
        }
        previous_ip = Some(ip);
    }
    Ok(collectors)
}

/// Parses `text` and checks its top level: `ext_file_path` (the plugin, by file name) and
/// `ext_params` (an object; none counts as empty, as in the plugins).
fn top_level(option: &'static str, text: &str) -> Result<(String, Value), TranslateError> {
    let value = json::parse(text).map_err(|e| TranslateError::invalid(option, e.to_string()))?;
    let top = Object::new(option, String::new(), &value)?;
    top.check_known(&["ext_file_path", "ext_params"], "packet-agent")?;
    let path = top.str("ext_file_path")?.ok_or_else(|| {
        TranslateError::invalid(
            option,
            "needs \"ext_file_path\", the plugin's library (e.g. libproto_vxlan.so)",
        )
    })?;
    let file = path.rsplit('/').next().unwrap_or(path).to_owned();
    let params = top
        .get("ext_params")
        .cloned()
        .unwrap_or(Value::Object(Vec::new()));
    Ok((file, params))
}

/// A JSON object of a configuration, with where it is for messages.
struct Object<'v> {
    option: &'static str,
    /// `ext_params`, `ext_params.collectors_ipport[1]`, or empty for the top level.
    path: String,
    members: &'v [(String, Value)],
}

impl<'v> Object<'v> {
    fn new(option: &'static str, path: String, value: &'v Value) -> Result<Self, TranslateError> {
        let Value::Object(members) = value else {
            let place = if path.is_empty() {
                "the configuration"
            } else {
                path.as_str()
            };
            return Err(TranslateError::invalid(
                option,
                format!("{place} is {}, not a JSON object", value.kind()),
            ));
        };
        for (i, (key, _)) in members.iter().enumerate() {
            if members[..i].iter().any(|(k, _)| k == key) {
                let object = Self {
                    option,
                    path: path.clone(),
                    members,
                };
                return Err(TranslateError::invalid(object.what(key), "is given twice"));
            }
        }
        Ok(Self {
            option,
            path,
            members,
        })
    }

    /// `--proto-config ext_params.vni`.
    fn what(&self, key: &str) -> String {
        if self.path.is_empty() {
            format!("{} {key}", self.option)
        } else {
            format!("{} {}.{key}", self.option, self.path)
        }
    }

    fn check_known(&self, known: &[&str], owner: &str) -> Result<(), TranslateError> {
        match self
            .members
            .iter()
            .find(|(k, _)| !known.contains(&k.as_str()))
        {
            Some((key, _)) => Err(TranslateError::unsupported(
                self.what(key),
                format!(
                    "not a key of {owner} that mirror knows (known: {})",
                    known.join(", ")
                ),
            )),
            None => Ok(()),
        }
    }

    fn get(&self, key: &str) -> Option<&'v Value> {
        self.members.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, TranslateError> {
        self.get(key)
            .map(|v| {
                v.as_bool().ok_or_else(|| {
                    TranslateError::invalid(
                        self.what(key),
                        format!("{} is not true or false", describe(v)),
                    )
                })
            })
            .transpose()
    }

    fn str(&self, key: &str) -> Result<Option<&'v str>, TranslateError> {
        self.get(key)
            .map(|v| {
                v.as_str().ok_or_else(|| {
                    TranslateError::invalid(self.what(key), format!("{} is not a string", v.kind()))
                })
            })
            .transpose()
    }

    /// A whole number from 0 to `max` (`max_text` for the message).
    fn number(&self, key: &str, max: u64, max_text: &str) -> Result<Option<u64>, TranslateError> {
        self.get(key)
            .map(|v| {
                v.as_u64().filter(|&n| n <= max).ok_or_else(|| {
                    TranslateError::invalid(
                        self.what(key),
                        format!("{} is not a whole number from 0 to {max_text}", describe(v)),
                    )
                })
            })
            .transpose()
    }

    /// `value` when `enable` is true (0 when `value` is absent); `None` when `enable` is false
    /// or absent, where a `value` given anyway is refused: the plugins ignored it.
    fn enabled_number(
        &self,
        enable: &str,
        value: &str,
        max: u64,
        max_text: &str,
    ) -> Result<Option<u64>, TranslateError> {
        let enabled = self.bool(enable)?.unwrap_or(false);
        let number = self.number(value, max, max_text)?;
        match (enabled, number) {
            (true, number) => Ok(Some(number.unwrap_or(0))),
            (false, None) => Ok(None),
            (false, Some(_)) => Err(TranslateError::invalid(
                self.what(value),
                format!(
                    "has no effect without {enable}: true (packet-agent ignores it); set {enable} or remove {value}"
                ),
            )),
        }
    }
}

/// A value as the user wrote it, for messages.
fn describe(value: &Value) -> String {
    match value {
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("\"{s}\""),
        Value::Bool(b) => b.to_string(),
        other => other.kind().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proto_err(text: &str) -> String {
        proto(text).unwrap_err().to_string()
    }

    fn monitor_err(text: &str) -> String {
        monitor(text).unwrap_err().to_string()
    }

    fn tunnel(file: &str, params: &str) -> Vec<String> {
        proto(&format!(
            r#"{{"ext_file_path": "{file}", "ext_params": {params}}}"#
        ))
        .unwrap()
        .tunnel_args
    }

    fn strs(args: &[&str]) -> Vec<String> {
        args.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn vxlan() {
        let config = proto(
            r#"{"ext_file_path": "/usr/lib/libproto_vxlan.so",
                "ext_params": {"remoteips": ["198.18.0.2", "fd00:198:18::2"], "bind_device": "eth0",
                               "pmtudisc_option": "dont", "use_default_header": false, "vni": 3310}}"#,
        )
        .unwrap();
        assert_eq!(config.plugin, Plugin::Vxlan);
        assert_eq!(
            config.tunnel_args,
            strs(&["--tunnel", "vxlan", "--vni", "3310", "--vxlan-port", "4789"])
        );
        assert_eq!(
            config.remotes,
            vec![
                "198.18.0.2".parse::<IpAddr>().unwrap(),
                "fd00:198:18::2".parse().unwrap()
            ]
        );
        assert_eq!(config.bind_device.as_deref(), Some("eth0"));
        assert_eq!(config.pmtudisc, Some(Pmtudisc::Dont));
        // The plugin's VNI is 0 when absent, and with use_default_header.
        let zero = strs(&["--tunnel", "vxlan", "--vni", "0", "--vxlan-port", "4789"]);
        assert_eq!(tunnel("libproto_vxlan.so", "{}"), zero);
        assert_eq!(
            tunnel("libproto_vxlan.so", r#"{"use_default_header": true}"#),
            zero
        );
        // Boost's property tree read numbers and booleans from strings as well.
        assert_eq!(
            tunnel(
                "libproto_vxlan.so",
                r#"{"use_default_header": "false", "vni": "16777215"}"#
            )[3],
            "16777215"
        );
        assert!(proto_err(r#"{"ext_file_path": "libproto_vxlan.so", "ext_params": {"vni": 16777216}}"#)
            .contains("--proto-config ext_params.vni: 16777216 is not a whole number from 0 to 16777215"));
        assert!(
            proto_err(r#"{"ext_file_path": "libproto_vxlan.so", "ext_params": {"use_default_header": true, "vni": 5}}"#)
                .contains("ext_params.vni: has no effect with use_default_header: true")
        );
    }

    #[test]
    fn gre() {
        assert_eq!(tunnel("libproto_gre.so", "{}"), strs(&["--tunnel", "gre"]));
        assert_eq!(
            tunnel(
                "libproto_gre.so",
                r#"{"use_default_header": false, "enable_key": true, "key": 3, "enable_sequence": true, "sequence_begin": 0}"#
            ),
            strs(&["--tunnel", "gre", "--gre-key", "3", "--gre-seq"])
        );
        assert_eq!(
            tunnel(
                "libproto_gre.so",
                r#"{"enable_key": true, "enable_sequence": true}"#
            ),
            strs(&["--tunnel", "gre", "--gre-key", "0", "--gre-seq"])
        );
        assert_eq!(
            tunnel(
                "libproto_gre.so",
                r#"{"enable_key": false, "enable_sequence": false}"#
            ),
            strs(&["--tunnel", "gre"])
        );
        for (params, message) in [
            (
                r#"{"key": 3}"#,
                "ext_params.key: has no effect without enable_key: true",
            ),
            (
                r#"{"sequence_begin": 5}"#,
                "ext_params.sequence_begin: has no effect without enable_sequence: true",
            ),
            (
                r#"{"enable_sequence": true, "sequence_begin": 10000}"#,
                "ext_params.sequence_begin: 10000: mirror numbers the packets to each remote from 0",
            ),
            (
                r#"{"enable_key": true, "key": 4294967296}"#,
                "not a whole number from 0 to 4294967295",
            ),
            (
                r#"{"enable_key": "yes"}"#,
                "ext_params.enable_key: \"yes\" is not true or false",
            ),
            (
                r#"{"use_default_header": true, "enable_key": true}"#,
                "ext_params.enable_key: has no effect with use_default_header",
            ),
            (
                r#"{"vni": 3}"#,
                "ext_params.vni: not a key of libproto_gre.so that mirror knows",
            ),
        ] {
            let err = proto_err(&format!(
                r#"{{"ext_file_path": "libproto_gre.so", "ext_params": {params}}}"#
            ));
            assert!(err.contains(message), "{params}: {err}");
        }
    }

    #[test]
    fn erspan() {
        assert_eq!(
            tunnel("../libproto_erspan_type1.so", "{}"),
            strs(&["--tunnel", "erspan1"])
        );
        assert_eq!(
            tunnel(
                "libproto_erspan_type2.so",
                r#"{"use_default_header": false, "enable_spanid": true, "spanid": 1022, "enable_sequence": true}"#
            ),
            strs(&["--tunnel", "erspan2", "--erspan-session", "1022"])
        );
        assert_eq!(
            tunnel(
                "libproto_erspan_type3.so",
                r#"{"use_default_header": false, "enable_spanid": true, "spanid": 1020,
                    "enable_sequence": true, "enable_timestamp": true, "timestamp_type": 0,
                    "enable_security_grp_tag": true, "security_grp_tag": 32768,
                    "enable_hw_id": true, "hw_id": 31, "enable_vlan": false, "vlan": 0}"#
            ),
            strs(&[
                "--tunnel",
                "erspan3",
                "--erspan-session",
                "1020",
                "--erspan-hwid",
                "31",
                "--erspan-sgt",
                "32768"
            ])
        );
        for (file, params, message) in [
            (
                "libproto_erspan_type2.so",
                r#"{"enable_spanid": true, "spanid": 1024}"#,
                "spanid: 1024 is not a whole number from 0 to 1023",
            ),
            (
                "libproto_erspan_type2.so",
                r#"{"enable_timestamp": true}"#,
                "ext_params.enable_timestamp: not a key of libproto_erspan_type2.so",
            ),
            (
                "libproto_erspan_type2.so",
                r#"{"enable_vlan": true, "vlan": 10}"#,
                "ext_params.vlan: 10: mirror writes VLAN 0",
            ),
            (
                "libproto_erspan_type3.so",
                r#"{"enable_hw_id": true, "hw_id": 64}"#,
                "hw_id: 64 is not a whole number from 0 to 63",
            ),
            (
                "libproto_erspan_type3.so",
                r#"{"enable_timestamp": true, "timestamp_type": 1}"#,
                "ext_params.timestamp_type: 1: mirror writes ERSPAN III timestamps in 100 µs units",
            ),
            (
                "libproto_erspan_type3.so",
                r#"{"security_grp_tag": 3}"#,
                "security_grp_tag: has no effect without enable_security_grp_tag: true",
            ),
            (
                "libproto_erspan_type3.so",
                r#"{"enable_sequence": true, "sequence_begin": 10000}"#,
                "sequence_begin: 10000: mirror numbers",
            ),
            (
                "libproto_erspan_type1.so",
                r#"{"enable_spanid": true}"#,
                "ext_params.enable_spanid: not a key of libproto_erspan_type1.so",
            ),
        ] {
            let err = proto_err(&format!(
                r#"{{"ext_file_path": "{file}", "ext_params": {params}}}"#
            ));
            assert!(err.contains(message), "{file} {params}: {err}");
        }
    }

    #[test]
    fn proto_errors_name_what_is_wrong() {
        for (text, message) in [
            (
                "",
                "--proto-config: not valid JSON: EOF while parsing a value at line 1 column 0",
            ),
            (
                "[]",
                "--proto-config: the configuration is an array, not a JSON object",
            ),
            ("{}", "--proto-config: needs \"ext_file_path\""),
            (
                r#"{"ext_file_path": 5}"#,
                "--proto-config ext_file_path: a number is not a string",
            ),
            (
                r#"{"ext_file_path": "libproto_foo.so"}"#,
                "--proto-config ext_file_path: unknown tunnel plugin libproto_foo.so; mirror knows libproto_gre.so, libproto_vxlan.so",
            ),
            (
                r#"{"ext_file_path": "libmonitor_netflow.so"}"#,
                "libmonitor_netflow.so is the NetFlow monitor plugin: give it with --monitor-config",
            ),
            (
                r#"{"ext_file_path": "libproto_gre.so", "ext_protos": []}"#,
                "--proto-config ext_protos: not a key of packet-agent that mirror knows",
            ),
            (
                r#"{"ext_file_path": "libproto_gre.so", "ext_params": []}"#,
                "ext_params is an array, not a JSON object",
            ),
            (
                r#"{"ext_file_path": "libproto_gre.so", "ext_file_path": "libproto_gre.so"}"#,
                "--proto-config ext_file_path: is given twice",
            ),
            (
                r#"{"ext_file_path": "libproto_gre.so", "ext_params": {"remoteips": "198.18.0.2"}}"#,
                "ext_params.remoteips: a string is not an array of addresses",
            ),
            (
                r#"{"ext_file_path": "libproto_gre.so", "ext_params": {"remoteips": ["198.18.0.2", "host"]}}"#,
                "ext_params.remoteips[1]: 'host' is not an IP address",
            ),
            (
                r#"{"ext_file_path": "libproto_gre.so", "ext_params": {"pmtudisc_option": "maybe"}}"#,
                "ext_params.pmtudisc_option: 'maybe' is not do, dont or want",
            ),
            (
                r#"{"ext_file_path": "libproto_gre.so", "ext_params": {"bind_device": 1}}"#,
                "ext_params.bind_device: a number is not a string",
            ),
        ] {
            let err = proto_err(text);
            assert!(err.contains(message), "{text}: {err}");
        }
        // An empty bind_device is no binding, as in the plugins.
        let config =
            proto(r#"{"ext_file_path": "libproto_gre.so", "ext_params": {"bind_device": ""}}"#)
                .unwrap();
        assert_eq!(config.bind_device, None);
        // No ext_params at all: the plugin's defaults.
        assert_eq!(
            proto(r#"{"ext_file_path": "libproto_erspan_type1.so"}"#)
                .unwrap()
                .remotes,
            Vec::<IpAddr>::new()
        );
    }

    #[test]
    fn netflow() {
        let config = monitor(
            r#"{"ext_file_path": "libmonitor_netflow.so",
                "ext_params": {"collectors_ipport": [{"ip": "198.18.0.2", "port": 2055},
                                                     {"ip": "198.18.0.3", "port": "2056"}],
                               "interface": "eth0", "netflow_version": 5}}"#,
        )
        .unwrap();
        assert_eq!(
            config.collectors,
            vec![
                "198.18.0.2:2055".parse::<SocketAddr>().unwrap(),
                "198.18.0.3:2056".parse().unwrap()
            ]
        );
    }

    #[test]
    fn a_collector_without_ip_takes_the_previous_one() {
        // The Flannel article's configuration: the second entry has no ip.
        let config = monitor(
            r#"{"ext_file_path": "libmonitor_netflow.so",
                "ext_params": {"collectors_ipport": [{"ip": "198.18.0.2", "port": 2055}, {"port": 2055}],
                               "netflow_version": 5}}"#,
        )
        .unwrap();
        assert_eq!(
            config.collectors,
            vec!["198.18.0.2:2055".parse::<SocketAddr>().unwrap()]
        );
        // Another port makes it a second collector at the same address.
        let config = monitor(
            r#"{"ext_file_path": "libmonitor_netflow.so",
                "ext_params": {"collectors_ipport": [{"ip": "198.18.0.2", "port": 2055}, {"port": 9995}]}}"#,
        )
        .unwrap();
        assert_eq!(
            config.collectors,
            vec![
                "198.18.0.2:2055".parse::<SocketAddr>().unwrap(),
                "198.18.0.2:9995".parse().unwrap()
            ]
        );
    }

    #[test]
    fn monitor_errors_name_what_is_wrong() {
        for (params, message) in [
            (
                "{}",
                "--monitor-config ext_params.collectors_ipport: needs at least one collector",
            ),
            (
                r#"{"collectors_ipport": []}"#,
                "needs at least one collector",
            ),
            (
                r#"{"collectors_ipport": {}}"#,
                "collectors_ipport: an object is not an array of collectors",
            ),
            (
                r#"{"collectors_ipport": [{"port": 2055}]}"#,
                "collectors_ipport[0].ip: is missing (and no entry before gives one)",
            ),
            (
                r#"{"collectors_ipport": [{"ip": "198.18.0.2"}]}"#,
                "collectors_ipport[0].port: needs a port from 1 to 65535",
            ),
            (
                r#"{"collectors_ipport": [{"ip": "198.18.0.2", "port": 0}]}"#,
                "collectors_ipport[0].port: needs a port",
            ),
            (
                r#"{"collectors_ipport": [{"ip": "198.18.0.2", "port": 65536}]}"#,
                "port: 65536 is not a whole number from 0 to 65535",
            ),
            (
                r#"{"collectors_ipport": [{"ip": "collector", "port": 2055}]}"#,
                "collectors_ipport[0].ip: 'collector' is not an IP address",
            ),
            (
                r#"{"collectors_ipport": [{"ip": "0.0.0.0", "port": 2055}]}"#,
                "0.0.0.0 is not a collector address",
            ),
            (
                r#"{"collectors_ipport": [{"ip": "198.18.0.2", "port": 2055, "proto": "udp"}]}"#,
                "collectors_ipport[0].proto: not a key of libmonitor_netflow.so",
            ),
            (
                r#"{"collectors_ipport": [{"ip": "198.18.0.2", "port": 2055}, {"ip": "198.18.0.2", "port": 2055}]}"#,
                "collectors_ipport[1].ip: 198.18.0.2:2055 is listed twice",
            ),
            (
                r#"{"collectors_ipport": [{"ip": "198.18.0.2", "port": 2055}], "netflow_version": 9}"#,
                "ext_params.netflow_version: 9: libmonitor_netflow.so maps to NetFlow version 5 only (IPFIX is --netflow ipfix://IP:PORT)",
            ),
            (
                r#"{"collectors_ipport": [{"ip": "198.18.0.2", "port": 2055}], "sampling": 1}"#,
                "ext_params.sampling: not a key of libmonitor_netflow.so",
            ),
        ] {
            let err = monitor_err(&format!(
                r#"{{"ext_file_path": "libmonitor_netflow.so", "ext_params": {params}}}"#
            ));
            assert!(err.contains(message), "{params}: {err}");
        }
        assert!(
            monitor_err(r#"{"ext_file_path": "libproto_vxlan.so"}"#)
                .contains("libproto_vxlan.so is a tunnel plugin: give it with --proto-config")
        );
        assert!(
            monitor_err(r#"{"ext_file_path": "libmonitor_sflow.so"}"#).contains(
                "unknown monitor plugin libmonitor_sflow.so; mirror knows libmonitor_netflow.so"
            )
        );
    }
}
