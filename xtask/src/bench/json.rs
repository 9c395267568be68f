//! The bench's summaries: values built in code, members in the order given, numbers rounded to
//! the decimals each figure deserves; serde_json writes them.

use serde::ser::{Serialize, SerializeMap as _, SerializeSeq as _, Serializer};

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

    /// Pretty-printed, two spaces per level.
    pub fn pretty(&self) -> String {
        let mut out = serde_json::to_string_pretty(self).unwrap_or_else(|_| "null".to_owned());
        out.push('\n');
        out
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Bool(b) => serializer.serialize_bool(*b),
            Self::Num(v, decimals) if v.is_finite() => {
                let scale = 10_f64.powi(i32::try_from(*decimals).unwrap_or(i32::MAX));
                serializer.serialize_f64((v * scale).round() / scale)
            }
            Self::Null | Self::Num(..) => serializer.serialize_unit(),
            Self::Int(v) => serializer.serialize_u64(*v),
            Self::Str(s) => serializer.serialize_str(s),
            Self::Arr(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Self::Obj(pairs) => {
                let mut map = serializer.serialize_map(Some(pairs.len()))?;
                for (key, value) in pairs {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
        }
    }
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
             \"list\": [\n    1,\n    true\n  ],\n  \"rows\": [\n    {\n      \"x\": 2\n    }\n  ],\n  \"empty\": []\n}\n"
        );
    }
}
