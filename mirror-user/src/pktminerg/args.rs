//! packet-agent's command line as `pktminerg` parsed it: Boost.Program_options with its default
//! style, so `-i eth0`, `-ieth0`, `--interface eth0`, `--interface=eth0`, unambiguous
//! abbreviations of long names (`--inter eth0`), clustered flags (`-ph`), and every word that is
//! not an option (or that follows `--`) is part of the capture filter (`--expression`).
//!
//! Nothing is interpreted here beyond the syntax: [`super::translate`] decides what each option
//! means for the mirror.

use super::TranslateError;

/// An option of `pktminerg` (the version with `--proto-config` and `--monitor-config`), plus the
/// options of other packet-agent versions that are refused by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Opt {
    Interface,
    BindDevice,
    Pmtudisc,
    PcapFile,
    RemoteIp,
    KeyBit,
    Snaplen,
    Timeout,
    BuffSize,
    Count,
    Priority,
    Cpu,
    Expression,
    Dump,
    NoFilter,
    ProtoConfig,
    MonitorConfig,
    /// `--dir in|out|inout`: capture direction (libpcap's `pcap_setdirection`).
    Dir,
    Version,
    Help,
    /// Options of later packet-agent releases (renamed cloud-probe), refused by name.
    ZmqPort,
    ZmqHwm,
    Vni,
    Control,
    Interval,
}

/// Whether an option takes a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Arity {
    Flag,
    Value,
}

/// Long names (aliases included), short names, and arity of every option.
const OPTIONS: &[(Opt, &[&str], Option<char>, Arity)] = &[
    (Opt::Interface, &["interface"], Some('i'), Arity::Value),
    (Opt::BindDevice, &["bind_device"], Some('B'), Arity::Value),
    (Opt::Pmtudisc, &["pmtudisc_option"], Some('M'), Arity::Value),
    (Opt::PcapFile, &["pcapfile"], Some('f'), Arity::Value),
    (Opt::RemoteIp, &["remoteip"], Some('r'), Arity::Value),
    (Opt::KeyBit, &["keybit"], Some('k'), Arity::Value),
    (Opt::Snaplen, &["snaplen"], Some('s'), Arity::Value),
    (Opt::Timeout, &["timeout"], Some('t'), Arity::Value),
    (Opt::BuffSize, &["buffsize"], Some('b'), Arity::Value),
    (Opt::Count, &["count"], Some('c'), Arity::Value),
    (Opt::Priority, &["priority"], Some('p'), Arity::Flag),
    (Opt::Cpu, &["cpu"], None, Arity::Value),
    (Opt::Expression, &["expression"], None, Arity::Value),
    (Opt::Dump, &["dump"], None, Arity::Flag),
    (Opt::NoFilter, &["nofilter"], None, Arity::Flag),
    // USAGE.md spelled it `--proto_config`; the code (and the Flannel article) `--proto-config`.
    (
        Opt::ProtoConfig,
        &["proto-config", "proto_config"],
        None,
        Arity::Value,
    ),
    (
        Opt::MonitorConfig,
        &["monitor-config", "monitor_config"],
        None,
        Arity::Value,
    ),
    (Opt::Dir, &["dir"], None, Arity::Value),
    (Opt::Version, &["version"], Some('v'), Arity::Flag),
    (Opt::Help, &["help"], Some('h'), Arity::Flag),
    (Opt::ZmqPort, &["zmq_port"], Some('z'), Arity::Value),
    (Opt::ZmqHwm, &["zmq_hwm"], Some('m'), Arity::Value),
    (Opt::Vni, &["vni"], Some('n'), Arity::Value),
    (Opt::Control, &["control"], None, Arity::Value),
    (Opt::Interval, &["interval"], None, Arity::Value),
];

impl Opt {
    fn spec(self) -> (&'static [&'static str], Option<char>, Arity) {
        OPTIONS
            .iter()
            .find(|(opt, ..)| *opt == self)
            .map_or((&[], None, Arity::Flag), |&(_, long, short, arity)| {
                (long, short, arity)
            })
    }

    /// How messages name the option: `-k/--keybit`, or `--cpu` for a long-only one.
    pub fn label(self) -> String {
        let (long, short, _) = self.spec();
        let long = long.first().copied().unwrap_or("?");
        match short {
            Some(short) => format!("-{short}/--{long}"),
            None => format!("--{long}"),
        }
    }

    fn arity(self) -> Arity {
        self.spec().2
    }

    /// Whether an abbreviation may stand for the option: only for pktminerg's own options, so
    /// that an abbreviation means what it meant to pktminerg (`--inter` is `--interface`, not
    /// ambiguous with a later release's `--interval`).
    fn guessable(self) -> bool {
        !matches!(
            self,
            Self::Dir | Self::ZmqPort | Self::ZmqHwm | Self::Vni | Self::Control | Self::Interval
        )
    }
}

/// The options given, each with its value (empty for a flag), in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    pub given: Vec<(Opt, String)>,
}

impl Parsed {
    /// The value of `opt`, if given (options other than `--expression` are given once at most).
    pub fn value(&self, opt: Opt) -> Option<&str> {
        self.given
            .iter()
            .find(|(o, _)| *o == opt)
            .map(|(_, v)| v.as_str())
    }

    pub fn has(&self, opt: Opt) -> bool {
        self.given.iter().any(|(o, _)| *o == opt)
    }

    /// Every `--expression` and every positional word, joined with spaces, as pktminerg did.
    pub fn expression(&self) -> String {
        let words: Vec<&str> = self
            .given
            .iter()
            .filter(|(o, _)| *o == Opt::Expression)
            .map(|(_, v)| v.as_str())
            .collect();
        words.join(" ")
    }
}

/// Splits `args` (without the program name) into options and values.
pub fn parse(args: &[String]) -> Result<Parsed, TranslateError> {
    let mut parsed = Parsed::default();
    let mut words = args.iter();
    while let Some(word) = words.next() {
        if word == "--" {
            parsed
                .given
                .extend(words.by_ref().map(|w| (Opt::Expression, w.clone())));
        } else if let Some(long) = word.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((name, value)) => (name, Some(value.to_owned())),
                None => (long, None),
            };
            let opt = long_option(name)?;
            let value = match (opt.arity(), inline) {
                (Arity::Flag, None) => String::new(),
                (Arity::Flag, Some(_)) => {
                    return Err(TranslateError::usage(format!(
                        "{} takes no value",
                        opt.label()
                    )));
                }
                (Arity::Value, Some(value)) => value,
                (Arity::Value, None) => next_value(opt, &mut words)?,
            };
            add(&mut parsed, opt, value)?;
        } else if let Some(cluster) = word.strip_prefix('-').filter(|c| !c.is_empty()) {
            short_cluster(&mut parsed, cluster, &mut words)?;
        } else {
            parsed.given.push((Opt::Expression, word.clone()));
        }
    }
    Ok(parsed)
}

/// `-p`, `-ph`, `-ieth0`, `-i eth0`, `-pieth0`: flags, then at most one option with a value,
/// which takes the rest of the word or else the next word.
fn short_cluster<'a>(
    parsed: &mut Parsed,
    cluster: &str,
    words: &mut impl Iterator<Item = &'a String>,
) -> Result<(), TranslateError> {
    for (at, c) in cluster.char_indices() {
        let opt = OPTIONS
            .iter()
            .find(|(.., short, _)| *short == Some(c))
            .map(|&(opt, ..)| opt)
            .ok_or_else(|| {
                TranslateError::usage(format!("unknown option -{c} (see `pktminerg --help`)"))
            })?;
        match opt.arity() {
            Arity::Flag => add(parsed, opt, String::new())?,
            Arity::Value => {
                let rest = &cluster[at + c.len_utf8()..];
                let value = if rest.is_empty() {
                    next_value(opt, words)?
                } else {
                    rest.to_owned()
                };
                return add(parsed, opt, value);
            }
        }
    }
    Ok(())
}

fn next_value<'a>(
    opt: Opt,
    words: &mut impl Iterator<Item = &'a String>,
) -> Result<String, TranslateError> {
    words
        .next()
        .cloned()
        .ok_or_else(|| TranslateError::usage(format!("{} needs a value", opt.label())))
}

/// An exact long name, else a prefix of exactly one option's names (Boost's `allow_guessing`).
fn long_option(name: &str) -> Result<Opt, TranslateError> {
    if name.is_empty() {
        return Err(TranslateError::usage("an empty option name `--=`"));
    }
    if let Some(&(opt, ..)) = OPTIONS.iter().find(|(_, long, ..)| long.contains(&name)) {
        return Ok(opt);
    }
    let mut candidates: Vec<Opt> = OPTIONS
        .iter()
        .filter(|(opt, long, ..)| opt.guessable() && long.iter().any(|l| l.starts_with(name)))
        .map(|&(opt, ..)| opt)
        .collect();
    candidates.dedup();
    match candidates.as_slice() {
        [opt] => Ok(*opt),
        [] => Err(TranslateError::usage(format!(
            "unknown option --{name} (see `pktminerg --help`)"
        ))),
        several => Err(TranslateError::usage(format!(
            "--{name} is ambiguous: {}",
            several
                .iter()
                .map(|o| o.label())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Records `opt`; as Boost, a single-valued option given twice is an error.
fn add(parsed: &mut Parsed, opt: Opt, value: String) -> Result<(), TranslateError> {
    if opt != Opt::Expression && parsed.has(opt) {
        return Err(TranslateError::usage(format!(
            "{} is given more than once",
            opt.label()
        )));
    }
    parsed.given.push((opt, value));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> Result<Parsed, TranslateError> {
        parse(&args.iter().map(ToString::to_string).collect::<Vec<_>>())
    }

    fn given(args: &[&str]) -> Vec<(Opt, String)> {
        parse_strs(args).unwrap().given
    }

    #[test]
    fn short_and_long_forms() {
        let want = vec![(Opt::Interface, "eth0".to_owned())];
        for form in [
            &["-i", "eth0"][..],
            &["-ieth0"],
            &["--interface", "eth0"],
            &["--interface=eth0"],
            &["--inter", "eth0"],
            &["--i=eth0"],
        ] {
            assert_eq!(given(form), want, "{form:?}");
        }
    }

    #[test]
    fn flags_cluster_and_end_with_a_value() {
        assert_eq!(
            given(&["-pieth0"]),
            vec![
                (Opt::Priority, String::new()),
                (Opt::Interface, "eth0".to_owned())
            ]
        );
        assert_eq!(
            given(&["-ph"]),
            vec![(Opt::Priority, String::new()), (Opt::Help, String::new())]
        );
        assert_eq!(given(&["-k", "-1"]), vec![(Opt::KeyBit, "-1".to_owned())]);
    }

    #[test]
    fn underscore_and_dash_spellings_of_the_configs() {
        assert_eq!(
            given(&["--proto_config", "{}"]),
            given(&["--proto-config", "{}"])
        );
        assert_eq!(
            given(&["--monitor_config={}"]),
            vec![(Opt::MonitorConfig, "{}".to_owned())]
        );
        // Both spellings are one option: a prefix of both is not ambiguous.
        assert_eq!(given(&["--proto", "{}"]), given(&["--proto-config", "{}"]));
    }

    #[test]
    fn positional_words_and_expressions_join() {
        let parsed = parse_strs(&[
            "-i",
            "eth0",
            "--expression",
            "host 198.18.0.9",
            "and",
            "--",
            "-not",
            "tcp",
        ])
        .unwrap();
        assert_eq!(parsed.expression(), "host 198.18.0.9 and -not tcp");
        assert_eq!(parsed.value(Opt::Interface), Some("eth0"));
    }

    #[test]
    fn usage_errors() {
        for (args, message) in [
            (&["-i"][..], "-i/--interface needs a value"),
            (&["--remoteip"], "-r/--remoteip needs a value"),
            (&["-X"], "unknown option -X"),
            (&["--frobnicate", "1"], "unknown option --frobnicate"),
            (
                &["--p", "1"],
                "--p is ambiguous: -M/--pmtudisc_option, -f/--pcapfile, -p/--priority, --proto-config",
            ),
            (&["--nofilter=yes"], "--nofilter takes no value"),
            (
                &["-i", "a", "-i", "b"],
                "-i/--interface is given more than once",
            ),
            (
                &["--interface=a", "-ib"],
                "-i/--interface is given more than once",
            ),
            (&["--=x"], "an empty option name"),
        ] {
            let err = parse_strs(args).unwrap_err().to_string();
            assert!(err.contains(message), "{args:?}: {err}");
        }
    }

    #[test]
    fn abbreviations_mean_what_they_meant_to_pktminerg() {
        // Not ambiguous with --dir or a later release's --interval.
        assert_eq!(given(&["--d"]), vec![(Opt::Dump, String::new())]);
        assert_eq!(
            given(&["--inte", "e"]),
            vec![(Opt::Interface, "e".to_owned())]
        );
        assert_eq!(
            given(&["--interval", "5"]),
            vec![(Opt::Interval, "5".to_owned())]
        );
        assert_eq!(given(&["--dir", "in"]), vec![(Opt::Dir, "in".to_owned())]);
    }

    #[test]
    fn labels() {
        assert_eq!(Opt::KeyBit.label(), "-k/--keybit");
        assert_eq!(Opt::ProtoConfig.label(), "--proto-config");
        assert_eq!(Opt::Vni.label(), "-n/--vni");
    }
}
