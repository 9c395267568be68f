//! The clap side of `--config`: which options the command line gave, and the file's entries as
//! `--KEY=VALUE` arguments for the options it did not.
//!
//! The valid keys and how each takes its value (one, a list, a switch) are read from the clap
//! `Command` itself, so they follow every change to the options.

use std::{
    collections::BTreeSet,
    ffi::OsString,
    path::{Path, PathBuf},
};

use clap::{
    ArgAction, Command,
    builder::ValueParser,
    error::{ContextKind, ContextValue, ErrorKind},
    parser::ValueSource,
};

use super::{
    ConfigError,
    file::{Entry, Value},
};

/// The id (and long name) of the option that names the file.
pub const CONFIG: &str = "config";

/// `--config FILE` found on a command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub path: PathBuf,
    /// The subcommand (`run`, `replay`), and where its name is in `argv`.
    pub subcommand: String,
    pub position: usize,
    /// Ids of the subcommand's options that the command line gave.
    pub given: BTreeSet<String>,
}

/// Looks for `--config FILE` in `argv` (program name first) as parsed by `cli`. `None` when
/// there is none, or when the command line does not parse far enough to tell (help, version,
/// no subcommand): then the command line is parsed as it is, and clap reports what it reports.
pub fn find_config(cli: Command, argv: &[OsString]) -> Option<Request> {
    // A lenient pass: no required options, every value taken as text, parse errors skipped.
    // Only which options appear matters here; the real parse checks everything.
    let lenient = cli.ignore_errors(true).mut_subcommands(|sub| {
        sub.mut_args(|arg| {
            if arg.get_action().takes_values() {
                arg.value_parser(ValueParser::os_string())
            } else {
                arg
            }
        })
    });
    let matches = lenient.clone().try_get_matches_from(argv).ok()?;
    let (name, sub_matches) = matches.subcommand()?;
    let path = sub_matches.try_get_one::<OsString>(CONFIG).ok().flatten()?;
    let sub = lenient.find_subcommand(name)?;
    let given = sub
        .get_arguments()
        .map(|arg| arg.get_id().as_str())
        .filter(|id| {
            sub_matches
                .value_source(id)
                .is_some_and(|source| source != ValueSource::DefaultValue)
        })
        .map(str::to_owned)
        .collect();
    let position = argv.iter().skip(1).position(|a| a == name)? + 1;
    Some(Request {
        path: PathBuf::from(path),
        subcommand: name.to_owned(),
        position,
        given,
    })
}

/// The file's entries as arguments of `sub`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileArgs {
    /// `--KEY=VALUE` and `--SWITCH`, in the file's order.
    pub args: Vec<OsString>,
    /// The keys that became arguments.
    pub keys: BTreeSet<String>,
}

/// Turns `entries` of the file `path` into arguments of `sub`, leaving out the options of
/// `given` (the command line's). Unknown keys and values of the wrong shape are refused by name.
pub fn file_args(
    sub: &Command,
    path: &Path,
    entries: Vec<Entry>,
    given: &BTreeSet<String>,
) -> Result<FileArgs, ConfigError> {
    let mut out = FileArgs::default();
    for (key, value) in entries {
        let problem = |problem: &str| ConfigError::Value {
            path: path.to_owned(),
            key: key.clone(),
            problem: problem.to_owned(),
        };
        if key == CONFIG {
            return Err(problem("a config file cannot name another one"));
        }
        let Some(arg) = sub.get_arguments().find(|arg| {
            arg.get_long() == Some(key.as_str())
                && !matches!(arg.get_action(), ArgAction::Help | ArgAction::Version)
        }) else {
            return Err(ConfigError::UnknownKey {
                path: path.to_owned(),
                key,
                subcommand: sub.get_name().to_owned(),
            });
        };
        if given.contains(arg.get_id().as_str()) {
            continue;
        }
        let option = |text: &str| OsString::from(format!("--{key}={text}"));
        match arg.get_action() {
            ArgAction::SetTrue | ArgAction::SetFalse => {
                let Value::Bool(on) = value else {
                    return Err(problem("a switch: give true or false"));
                };
                // `true` for a SetTrue switch is the switch given; `false` its default.
                if on == matches!(arg.get_action(), ArgAction::SetTrue) {
                    out.args.push(OsString::from(format!("--{key}")));
                }
            }
            ArgAction::Append => {
                let items = match value {
                    Value::List(items) => items,
                    one => vec![one],
                };
                for item in items {
                    out.args
                        .push(option(&one_value(item).map_err(|p| problem(&p))?));
                }
            }
            action if action.takes_values() => {
                if matches!(value, Value::List(_)) {
                    return Err(problem("takes one value, not a list"));
                }
                out.args
                    .push(option(&one_value(value).map_err(|p| problem(&p))?));
            }
            _ => {
                return Err(ConfigError::UnknownKey {
                    path: path.to_owned(),
                    key,
                    subcommand: sub.get_name().to_owned(),
                });
            }
        }
        out.keys
            .insert(arg.get_long().unwrap_or_default().to_owned());
    }
    Ok(out)
}

/// The text of one value of an option.
fn one_value(value: Value) -> Result<String, String> {
    match value {
        Value::Scalar(text) => Ok(text),
        Value::Bool(on) => Ok(on.to_string()),
        Value::List(_) => Err("a list of values, not of lists".to_owned()),
        Value::Other(what) => Err(format!("takes a value, not {what}")),
    }
}

/// When clap refused an option that came from the file, the same message under the file's
/// name and the key; `None` for errors about the command line.
pub fn blame_file(err: &clap::Error, path: &Path, file: &FileArgs) -> Option<ConfigError> {
    if matches!(
        err.kind(),
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
    ) {
        return None;
    }
    let Some(ContextValue::String(culprit)) = err.get(ContextKind::InvalidArg) else {
        return None;
    };
    // clap names an option `--vni <N>`.
    let key = culprit.strip_prefix("--")?.split([' ', '=']).next()?;
    if !file.keys.contains(key) {
        return None;
    }
    let rendered = err.render().to_string();
    let message = rendered.lines().next().unwrap_or_default();
    Some(ConfigError::Value {
        path: path.to_owned(),
        key: key.to_owned(),
        problem: message
            .strip_prefix("error: ")
            .unwrap_or(message)
            .to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;
    use crate::cli::Cli;

    fn argv(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn run_command() -> Command {
        let mut cli = Cli::command();
        cli.build();
        cli.find_subcommand("run").unwrap().clone()
    }

    fn scalar(s: &str) -> Value {
        Value::Scalar(s.to_owned())
    }

    #[test]
    fn finds_the_file_and_what_the_command_line_gave() {
        let request = find_config(
            Cli::command(),
            &argv(&[
                "mirror",
                "run",
                "--config",
                "m.toml",
                "--iface",
                "a",
                "--vni",
                "x",
                "--gre-seq",
            ]),
        )
        .unwrap();
        assert_eq!(request.path, PathBuf::from("m.toml"));
        assert_eq!(request.subcommand, "run");
        assert_eq!(request.position, 1);
        // `--vni x` is a bad value and no remote is given: the lenient pass still sees them.
        assert_eq!(
            request.given,
            ["config", "gre_seq", "ifaces", "vni"]
                .map(str::to_owned)
                .into()
        );
        let request = find_config(
            Cli::command(),
            &argv(&["mirror", "replay", "--loop", "2", "--config=r.yaml"]),
        )
        .unwrap();
        assert_eq!(request.subcommand, "replay");
        assert_eq!(request.path, PathBuf::from("r.yaml"));
        assert!(request.given.contains("loops"));
    }

    #[test]
    fn no_file_no_request() {
        for args in [
            &["mirror", "run", "--iface", "a", "--remote", "198.18.0.2"][..],
            &["mirror", "run", "--help"],
            &["mirror", "--version"],
            &["mirror"],
            &["mirror", "receive", "--config", "m.toml"],
        ] {
            assert_eq!(find_config(Cli::command(), &argv(args)), None, "{args:?}");
        }
    }

    #[test]
    fn entries_become_arguments() {
        let entries = vec![
            ("tunnel".to_owned(), scalar("gre")),
            (
                "remote".to_owned(),
                Value::List(vec![scalar("198.18.0.2"), scalar("198.18.0.3")]),
            ),
            ("iface".to_owned(), scalar("eth0")),
            ("gre-seq".to_owned(), Value::Bool(true)),
            ("gre-key".to_owned(), scalar("7")),
        ];
        let args = file_args(
            &run_command(),
            Path::new("m.toml"),
            entries,
            &BTreeSet::new(),
        )
        .unwrap();
        assert_eq!(
            args.args,
            argv(&[
                "--tunnel=gre",
                "--remote=198.18.0.2",
                "--remote=198.18.0.3",
                "--iface=eth0",
                "--gre-seq",
                "--gre-key=7",
            ])
        );
        assert_eq!(
            args.keys,
            ["gre-key", "gre-seq", "iface", "remote", "tunnel"]
                .map(str::to_owned)
                .into()
        );
    }

    #[test]
    fn the_command_line_wins() {
        let entries = vec![
            ("remote".to_owned(), Value::List(vec![scalar("198.18.0.2")])),
            ("vni".to_owned(), scalar("5")),
            ("gre-seq".to_owned(), Value::Bool(false)),
        ];
        let given = ["remotes".to_owned()].into();
        let args = file_args(&run_command(), Path::new("m.toml"), entries, &given).unwrap();
        assert_eq!(args.args, argv(&["--vni=5"]));
        assert_eq!(args.keys, ["gre-seq", "vni"].map(str::to_owned).into());
    }

    #[test]
    fn bad_entries_are_named() {
        let refuse = |key: &str, value: Value| {
            file_args(
                &run_command(),
                Path::new("m.toml"),
                vec![(key.to_owned(), value)],
                &BTreeSet::new(),
            )
            .unwrap_err()
            .to_string()
        };
        assert_eq!(
            refuse("remotes", scalar("198.18.0.2")),
            "m.toml: unknown key `remotes` (not an option of `mirror run`)"
        );
        assert_eq!(
            refuse("help", Value::Bool(true)),
            "m.toml: unknown key `help` (not an option of `mirror run`)"
        );
        assert_eq!(
            refuse("pcap", scalar("x.pcap")),
            "m.toml: unknown key `pcap` (not an option of `mirror run`)"
        );
        assert_eq!(
            refuse("vni", Value::List(vec![scalar("1")])),
            "m.toml: key `vni`: takes one value, not a list"
        );
        assert_eq!(
            refuse("gre-seq", scalar("yes")),
            "m.toml: key `gre-seq`: a switch: give true or false"
        );
        assert_eq!(
            refuse("metrics", Value::Other("a table")),
            "m.toml: key `metrics`: takes a value, not a table"
        );
        assert_eq!(
            refuse("remote", Value::List(vec![Value::List(vec![])])),
            "m.toml: key `remote`: a list of values, not of lists"
        );
        assert_eq!(
            refuse("config", scalar("other.toml")),
            "m.toml: key `config`: a config file cannot name another one"
        );
    }
}
