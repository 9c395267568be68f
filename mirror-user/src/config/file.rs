//! Reading a config file into its top-level entries: TOML or YAML, chosen by the extension.
//!
//! Values are kept as the command line would spell them (numbers as text): clap parses them.

use std::path::Path;

use super::ConfigError;

/// The file formats, by extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Toml,
    Yaml,
}

impl Format {
    /// `.toml`, `.yaml` or `.yml` (any case); `None` for anything else.
    pub fn of(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "toml" => Some(Self::Toml),
            "yaml" | "yml" => Some(Self::Yaml),
            _ => None,
        }
    }
}

/// One value of the file.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Bool(bool),
    /// A string or a number, spelled as on the command line.
    Scalar(String),
    List(Vec<Value>),
    /// Something no option takes (a table, null, a date, a tagged value): what it is, for the
    /// error.
    Other(&'static str),
}

/// A top-level `key = value` of the file, in the file's order (TOML's sorted by key).
pub type Entry = (String, Value);

/// Parses `text`, the contents of `path`, in the format its extension names.
pub fn parse(path: &Path, text: &str) -> Result<Vec<Entry>, ConfigError> {
    match Format::of(path) {
        Some(Format::Toml) => parse_toml(path, text),
        Some(Format::Yaml) => parse_yaml(path, text),
        None => Err(ConfigError::Format {
            path: path.to_owned(),
        }),
    }
}

fn parse_toml(path: &Path, text: &str) -> Result<Vec<Entry>, ConfigError> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let (line, column) = e
            .span()
            .map_or((1, 1), |span| line_and_column(text, span.start));
        ConfigError::Syntax {
            path: path.to_owned(),
            line,
            column,
            message: first_line(e.message()),
        }
    })?;
    Ok(table
        .into_iter()
        .map(|(key, value)| (key, from_toml(value)))
        .collect())
}

fn from_toml(value: toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::Scalar(s),
        toml::Value::Integer(n) => Value::Scalar(n.to_string()),
        toml::Value::Float(x) => Value::Scalar(x.to_string()),
        toml::Value::Boolean(b) => Value::Bool(b),
        toml::Value::Array(items) => Value::List(items.into_iter().map(from_toml).collect()),
        toml::Value::Table(_) => Value::Other("a table"),
        toml::Value::Datetime(_) => Value::Other("a date"),
    }
}

fn parse_yaml(path: &Path, text: &str) -> Result<Vec<Entry>, ConfigError> {
    let document: serde_norway::Value = serde_norway::from_str(text).map_err(|e| {
        let (line, column) = e.location().map_or((1, 1), |at| (at.line(), at.column()));
        ConfigError::Syntax {
            path: path.to_owned(),
            line,
            column,
            message: first_line(&without_location(&e.to_string())),
        }
    })?;
    let mapping = match document {
        // An empty file (or one of comments only) sets nothing.
        serde_norway::Value::Null => return Ok(Vec::new()),
        serde_norway::Value::Mapping(mapping) => mapping,
        _ => {
            return Err(ConfigError::NotAMapping {
                path: path.to_owned(),
            });
        }
    };
    mapping
        .into_iter()
        .map(|(key, value)| match key {
            serde_norway::Value::String(key) => Ok((key, from_yaml(value))),
            other => Err(ConfigError::BadKey {
                path: path.to_owned(),
                key: yaml_scalar(&other).unwrap_or_else(|| "(not a name)".to_owned()),
            }),
        })
        .collect()
}

fn from_yaml(value: serde_norway::Value) -> Value {
    match value {
        serde_norway::Value::Bool(b) => Value::Bool(b),
        serde_norway::Value::Sequence(items) => {
            Value::List(items.into_iter().map(from_yaml).collect())
        }
        serde_norway::Value::Null => Value::Other("an empty value"),
        serde_norway::Value::Mapping(_) => Value::Other("a mapping"),
        serde_norway::Value::Tagged(_) => Value::Other("a tagged value"),
        scalar => yaml_scalar(&scalar).map_or(Value::Other("a value"), Value::Scalar),
    }
}

/// A YAML string or number as text.
fn yaml_scalar(value: &serde_norway::Value) -> Option<String> {
    match value {
        serde_norway::Value::String(s) => Some(s.clone()),
        serde_norway::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// 1-based line and column of byte `offset` of `text`.
fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().trim().to_owned()
}

/// serde_norway's message without its ` at line L column C` (the error shows `FILE:L:C`).
fn without_location(message: &str) -> String {
    match message.find(" at line ") {
        Some(at) => {
            let rest = &message[at + " at line ".len()..];
            // Keep what follows the position (", while parsing a block mapping").
            let tail = rest.find(',').map_or("", |comma| &rest[comma..]);
            format!("{}{tail}", &message[..at])
        }
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar(s: &str) -> Value {
        Value::Scalar(s.to_owned())
    }

    #[test]
    fn formats_by_extension() {
        assert_eq!(Format::of(Path::new("a/mirror.toml")), Some(Format::Toml));
        assert_eq!(Format::of(Path::new("mirror.yaml")), Some(Format::Yaml));
        assert_eq!(Format::of(Path::new("mirror.YML")), Some(Format::Yaml));
        assert_eq!(Format::of(Path::new("mirror.json")), None);
        assert_eq!(Format::of(Path::new("mirror")), None);
        let err = parse(Path::new("mirror.conf"), "").unwrap_err();
        assert_eq!(
            err.to_string(),
            "mirror.conf: unknown config format: name the file .toml, .yaml or .yml"
        );
    }

    #[test]
    fn toml_values() {
        let text = "tunnel = \"vxlan\"\nvni = 42\nspeed = 0.5\ngre-seq = true\n\
                    remote = [\"198.18.0.2\", \"198.18.0.3:8472\"]\n";
        let entries = parse(Path::new("m.toml"), text).unwrap();
        assert_eq!(
            entries,
            [
                ("gre-seq".to_owned(), Value::Bool(true)),
                (
                    "remote".to_owned(),
                    Value::List(vec![scalar("198.18.0.2"), scalar("198.18.0.3:8472")])
                ),
                ("speed".to_owned(), scalar("0.5")),
                ("tunnel".to_owned(), scalar("vxlan")),
                ("vni".to_owned(), scalar("42")),
            ]
        );
        let entries = parse(Path::new("m.toml"), "[metrics]\nx = 1\n").unwrap();
        assert_eq!(entries, [("metrics".to_owned(), Value::Other("a table"))]);
        let entries = parse(Path::new("m.toml"), "when = 1979-05-27\n").unwrap();
        assert_eq!(entries, [("when".to_owned(), Value::Other("a date"))]);
    }

    #[test]
    fn yaml_values_keep_the_file_order() {
        let text = "# comment\ntunnel: vxlan\nvni: 42\nspeed: 0.5\ngre-seq: true\n\
                    remote:\n  - 198.18.0.2\n  - \"198.18.0.3:8472\"\nsnaplen: ~\nnested: {a: 1}\n";
        let entries = parse(Path::new("m.yaml"), text).unwrap();
        assert_eq!(
            entries,
            [
                ("tunnel".to_owned(), scalar("vxlan")),
                ("vni".to_owned(), scalar("42")),
                ("speed".to_owned(), scalar("0.5")),
                ("gre-seq".to_owned(), Value::Bool(true)),
                (
                    "remote".to_owned(),
                    Value::List(vec![scalar("198.18.0.2"), scalar("198.18.0.3:8472")])
                ),
                ("snaplen".to_owned(), Value::Other("an empty value")),
                ("nested".to_owned(), Value::Other("a mapping")),
            ]
        );
        assert_eq!(parse(Path::new("m.yml"), "# nothing\n").unwrap(), []);
    }

    #[test]
    fn syntax_errors_are_one_line_with_the_position() {
        let err = parse(Path::new("m.toml"), "vni = 1\ntunnel = \n").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("m.toml:2:"), "{text}");
        assert_eq!(text.lines().count(), 1, "{text}");

        let err = parse(Path::new("m.toml"), "vni = 1\nvni = 2\n").unwrap_err();
        assert!(err.to_string().starts_with("m.toml:2:"), "{err}");

        let err = parse(Path::new("m.yaml"), "vni: 1\n  tunnel: [\n").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("m.yaml:"), "{text}");
        assert!(!text.contains(" at line "), "{text}");
        assert_eq!(text.lines().count(), 1, "{text}");

        let err = parse(Path::new("m.yaml"), "vni: 1\nvni: 2\n").unwrap_err();
        assert!(err.to_string().contains("duplicate"), "{err}");
    }

    #[test]
    fn yaml_must_be_a_mapping_of_names() {
        let err = parse(Path::new("m.yaml"), "- vni\n- 1\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "m.yaml: expected option names and their values (a mapping)"
        );
        let err = parse(Path::new("m.yaml"), "7: x\n").unwrap_err();
        assert_eq!(err.to_string(), "m.yaml: key `7` is not an option name");
    }

    #[test]
    fn positions() {
        assert_eq!(line_and_column("ab\ncd", 0), (1, 1));
        assert_eq!(line_and_column("ab\ncd", 4), (2, 2));
        assert_eq!(line_and_column("ab", 99), (1, 3));
        assert_eq!(
            without_location("bad thing at line 2 column 3, while parsing a map"),
            "bad thing, while parsing a map"
        );
        assert_eq!(
            without_location("bad thing at line 2 column 3"),
            "bad thing"
        );
    }
}
