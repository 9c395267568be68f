//! `--config FILE` of `mirror run` and `mirror replay`: a TOML or YAML file read into options.
//!
//! The input is one byte of choices (the file's format, the subcommand, whether the command
//! line gives a remote too) and the file's text. Checked: a refusal of the file is one line
//! and a syntax error points at a line and column; what the file says, written in the other
//! format, reads back the same; and a TOML file and its YAML translation make the same command
//! line, or the same refusal.
#![no_main]

use std::{ffi::OsString, fmt::Write as _, path::Path};

use libfuzzer_sys::fuzz_target;
use mirror::config::{
    ConfigError, ParseError,
    file::{self, Entry, Value},
    parse_cli_with,
};

const TOML: &str = "mirror.toml";
const YAML: &str = "mirror.yaml";

fuzz_target!(|data: &[u8]| {
    let Some((&choices, text)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let yaml = choices & 1 == 1;
    let subcommand = if choices & 2 == 0 { "run" } else { "replay" };
    let remote = choices & 4 != 0;
    let (path, other) = if yaml { (YAML, TOML) } else { (TOML, YAML) };

    let result = parse(path, subcommand, remote, text);
    let entries = match file::parse(Path::new(path), text) {
        Ok(entries) => entries,
        Err(error) => {
            check_refusal(&error, text);
            return;
        }
    };
    // Written in the other format, the file says the same. Values no option takes (tables,
    // dates...) have no common spelling: such files are left out.
    if entries.iter().any(|(_, v)| !writable(v)) {
        return;
    }
    let translated = if yaml {
        to_toml(&entries)
    } else {
        to_yaml(&entries)
    };
    let mut again = match file::parse(Path::new(other), &translated) {
        Ok(again) => again,
        Err(e) if yaml && has_duplicates(&entries) => {
            // TOML refuses a key given twice; YAML files may repeat one.
            assert!(matches!(e, ConfigError::Syntax { .. }), "{e}");
            return;
        }
        Err(e) => panic!("{e}: the translation\n{translated}\nof {entries:?}"),
    };
    let mut entries = entries;
    if yaml {
        // TOML tables come sorted by key.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        again.sort_by(|a, b| a.0.cmp(&b.0));
    }
    assert_eq!(again, entries, "{translated}");
    // The same options from either format (TOML's order is the YAML translation's).
    if !yaml {
        let from_yaml = parse(YAML, subcommand, remote, &translated);
        assert_eq!(
            normalized(&from_yaml),
            normalized(&result),
            "TOML and its YAML translation\n{translated}"
        );
    }
});

/// `mirror SUBCOMMAND --config PATH [--remote 198.18.0.2]` with `text` as the file.
fn parse(
    path: &str,
    subcommand: &str,
    remote: bool,
    text: &str,
) -> Result<mirror::cli::Cli, ParseError> {
    let mut argv: Vec<OsString> = ["mirror", subcommand, "--config", path]
        .iter()
        .map(OsString::from)
        .collect();
    if remote {
        argv.extend(["--remote", "198.18.0.2"].map(OsString::from));
    }
    let result = parse_cli_with(argv, |_| Ok(text.to_owned()));
    if let Err(ParseError::Config(error)) = &result {
        check_refusal(error, text);
    }
    result
}

/// A refusal of the file is one line; a syntax error's position is inside the text (or just
/// after it).
fn check_refusal(error: &ConfigError, text: &str) {
    let message = error.to_string();
    assert!(!message.contains('\n'), "{message:?}");
    if let ConfigError::Syntax { line, column, .. } = error {
        assert!(*line >= 1 && *column >= 1, "{message}");
        // libyaml counts a line after a last one without a line break.
        assert!(*line <= lines(text) + 1, "{message}");
    }
}

/// Lines of `text`, with every line break YAML 1.1 knows (CR LF, CR, LF, NEL, LS, PS).
fn lines(text: &str) -> usize {
    1 + text
        .replace("\r\n", "\n")
        .matches(['\r', '\n', '\u{85}', '\u{2028}', '\u{2029}'])
        .count()
}

/// The outcome as text, the file's name left out: the formats' parsers word their syntax
/// errors differently, so those only count as "refused".
fn normalized(result: &Result<mirror::cli::Cli, ParseError>) -> String {
    let text = match result {
        Ok(cli) => format!("{cli:?}"),
        Err(ParseError::Config(ConfigError::Syntax { .. })) => "syntax error".to_owned(),
        Err(ParseError::Config(e)) => e.to_string(),
        Err(ParseError::Clap(e)) => e.render().to_string(),
    };
    text.replace(YAML, TOML)
}

fn writable(value: &Value) -> bool {
    match value {
        Value::Bool(_) | Value::Scalar(_) => true,
        Value::List(items) => items.iter().all(writable),
        Value::Other(_) => false,
    }
}

fn has_duplicates(entries: &[Entry]) -> bool {
    entries
        .iter()
        .enumerate()
        .any(|(i, (key, _))| entries[..i].iter().any(|(k, _)| k == key))
}

fn to_toml(entries: &[Entry]) -> String {
    let mut out = String::new();
    for (key, value) in entries {
        quoted(key, &mut out);
        out.push_str(" = ");
        inline(value, &mut out);
        out.push('\n');
    }
    out
}

fn to_yaml(entries: &[Entry]) -> String {
    let mut out = String::new();
    for (key, value) in entries {
        quoted(key, &mut out);
        out.push_str(": ");
        inline(value, &mut out);
        out.push('\n');
    }
    out
}

/// A value as both TOML and YAML flow syntax write it: scalars quoted, so that they stay text.
fn inline(value: &Value, out: &mut String) {
    match value {
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Scalar(s) => quoted(s, out),
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                inline(item, out);
            }
            out.push(']');
        }
        Value::Other(_) => unreachable!("left out by writable()"),
    }
}

/// A double-quoted string both TOML and YAML read the same: printable ASCII as is, the rest
/// escaped.
fn quoted(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            c if u32::from(c) <= 0xffff => write!(out, "\\u{:04X}", u32::from(c)).unwrap(),
            c => write!(out, "\\U{:08X}", u32::from(c)).unwrap(),
        }
    }
    out.push('"');
}
