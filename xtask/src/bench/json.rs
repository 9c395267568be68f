//! Just enough JSON for the bench's summaries (xtask has no serde): values built in code and
//! written pretty-printed.

use std::fmt::Write as _;

/// A JSON value.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    /// Written with `decimals` digits after the point; a non-finite number is written as null.
    Num(f64, usize),
    Int(u64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    /// An object from `(key, value)` pairs, in order.
    pub fn obj<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Json)>) -> Self {
        Self::Obj(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    pub fn str(text: impl Into<String>) -> Self {
        Self::Str(text.into())
    }

    /// A number with 3 decimals, or null.
    pub fn num(value: Option<f64>) -> Self {
        value.map_or(Self::Null, |v| Self::Num(v, 3))
    }

    pub fn int(value: Option<u64>) -> Self {
        value.map_or(Self::Null, Self::Int)
    }

    /// Pretty-printed, two spaces per level; arrays of scalars and small objects stay on one line.
    pub fn pretty(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, 0);
        out.push('\n');
        out
    }

    fn write(&self, out: &mut String, level: usize) {
        match self {
            Self::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Self::Num(v, decimals) if v.is_finite() => {
                let _ = write!(out, "{v:.decimals$}");
            }
            Self::Null | Self::Num(..) => out.push_str("null"),
            Self::Int(v) => {
                let _ = write!(out, "{v}");
            }
            Self::Str(s) => write_str(out, s),
            Self::Arr(items) if items.is_empty() => out.push_str("[]"),
            Self::Obj(pairs) if pairs.is_empty() => out.push_str("{}"),
            _ if self.is_flat() => self.write_inline(out),
            Self::Arr(items) => {
                out.push_str("[\n");
                for (i, item) in items.iter().enumerate() {
                    indent(out, level + 1);
                    item.write(out, level + 1);
                    out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
                }
                indent(out, level);
                out.push(']');
            }
            Self::Obj(pairs) => {
                out.push_str("{\n");
                for (i, (key, value)) in pairs.iter().enumerate() {
                    indent(out, level + 1);
                    write_str(out, key);
                    out.push_str(": ");
                    value.write(out, level + 1);
                    out.push_str(if i + 1 < pairs.len() { ",\n" } else { "\n" });
                }
                indent(out, level);
                out.push('}');
            }
        }
    }

    /// Arrays and objects of scalars only: one line.
    fn is_flat(&self) -> bool {
        let scalar = |v: &Json| !matches!(v, Self::Arr(_) | Self::Obj(_));
        match self {
            Self::Arr(items) => items.iter().all(scalar),
            Self::Obj(pairs) => pairs.iter().all(|(_, v)| scalar(v)),
            _ => true,
        }
    }

    fn write_inline(&self, out: &mut String) {
        match self {
            Self::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.write(out, 0);
                }
                out.push(']');
            }
            Self::Obj(pairs) => {
                out.push('{');
                for (i, (key, value)) in pairs.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write_str(out, key);
                    out.push_str(": ");
                    value.write(out, 0);
                }
                out.push('}');
            }
            scalar => scalar.write(out, 0),
        }
    }
}

fn indent(out: &mut String, level: usize) {
    for _ in 0..level {
        out.push_str("  ");
    }
}

fn write_str(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_nested_values() {
        let value = Json::obj([
            ("name", Json::str("a \"b\"\\\n")),
            ("n", Json::Num(1.23456, 2)),
            ("nan", Json::Num(f64::NAN, 2)),
            ("none", Json::num(None)),
            ("list", Json::Arr(vec![Json::Int(1), Json::Bool(true)])),
            ("rows", Json::Arr(vec![Json::obj([("x", Json::Int(2))])])),
            ("empty", Json::Arr(Vec::new())),
        ]);
        assert_eq!(
            value.pretty(),
            "{\n  \"name\": \"a \\\"b\\\"\\\\\\n\",\n  \"n\": 1.23,\n  \"nan\": null,\n  \"none\": null,\n  \
             \"list\": [1, true],\n  \"rows\": [\n    {\"x\": 2}\n  ],\n  \"empty\": []\n}\n"
        );
    }
}
