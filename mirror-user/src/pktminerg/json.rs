//! packet-agent's `--proto-config` and `--monitor-config` strings, read by serde_json into a
//! tree that keeps what serde_json's own `Value` drops.
//!
//! Objects keep their members in order and keep duplicates, so that the caller can name a key
//! given twice instead of silently taking one of them. packet-agent read its configuration with
//! Boost's property tree, which stores every value as text and converts it on use, so
//! `"vni": 3310` and `"vni": "3310"` meant the same; the accessors here accept both (and
//! `true`/`false`/`1`/`0`, as text or not, for booleans), and nothing looser.

use std::{fmt, str::FromStr as _};

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Number;

/// A JSON value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    Array(Vec<Value>),
    /// Members in the order written, duplicates kept.
    Object(Vec<(String, Value)>),
}

/// Why a text is not JSON, with serde_json's line and column.
#[derive(Debug)]
pub struct Error(serde_json::Error);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not valid JSON: {}", self.0)
    }
}

/// Parses a whole JSON text (one value, surrounded by optional whitespace).
pub fn parse(text: &str) -> Result<Value, Error> {
    serde_json::from_str(text).map_err(Error)
}

impl Value {
    /// What kind of value this is, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Null => "null",
            Self::Bool(_) => "a boolean",
            Self::Number(_) => "a number",
            Self::String(_) => "a string",
            Self::Array(_) => "an array",
            Self::Object(_) => "an object",
        }
    }

    /// `true`, `false`, `1` or `0`, as JSON or as a string.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Bool(b) => Some(*b),
            Self::Number(n) => match n.as_u64() {
                Some(1) => Some(true),
                Some(0) => Some(false),
                _ => None,
            },
            Self::String(s) => match s.as_str() {
                "true" | "1" => Some(true),
                "false" | "0" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }

    /// A non-negative integer, as a JSON number without fraction or exponent, or as a string
    /// of decimal digits.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Self::Number(n) => n.as_u64(),
            Self::String(s) if !s.is_empty() => s
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| s.parse().ok())?,
            _ => None,
        }
    }

    /// A JSON string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }
}

/// The key under which serde_json hands over a number's text when its `arbitrary_precision`
/// feature is on (the fuzz targets turn it on to compare texts); its own `Value` reads it so too.
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Value, E> {
        Number::from_f64(n)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number out of range"))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Vec::new();
        while let Some(name) = map.next_key::<String>()? {
            if members.is_empty() && name == NUMBER_TOKEN {
                let text: String = map.next_value()?;
                let number = Number::from_str(&text).map_err(de::Error::custom)?;
                return Ok(Value::Number(number));
            }
            members.push((name, map.next_value()?));
        }
        Ok(Value::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(n: u64) -> Value {
        Value::Number(n.into())
    }

    #[test]
    fn packet_agent_configuration() {
        let text = r#"
        {
            "ext_file_path": "libproto_vxlan.so",
            "ext_params": {
                "remoteips": [
                    "198.18.0.2"
                ],
                "use_default_header": false,
                "vni": 3310
            }
        }"#;
        let value = parse(text).unwrap();
        let Value::Object(members) = value else {
            panic!("not an object")
        };
        assert_eq!(members[0].0, "ext_file_path");
        assert_eq!(members[0].1, Value::String("libproto_vxlan.so".to_owned()));
        let Value::Object(params) = &members[1].1 else {
            panic!("ext_params not an object")
        };
        assert_eq!(
            params[0].1,
            Value::Array(vec![Value::String("198.18.0.2".to_owned())])
        );
        assert_eq!(params[1].1, Value::Bool(false));
        assert_eq!(params[2].1, num(3310));
    }

    #[test]
    fn members_keep_order_and_duplicates() {
        let Value::Object(members) = parse(r#"{"b": 1, "a": [], "b": {"c": null}}"#).unwrap()
        else {
            panic!("not an object")
        };
        let names: Vec<&str> = members.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["b", "a", "b"]);
        assert_eq!(members[0].1, num(1));
        assert_eq!(members[1].1, Value::Array(Vec::new()));
        assert_eq!(
            members[2].1,
            Value::Object(vec![("c".to_owned(), Value::Null)])
        );
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(
            parse(r#""a\"b\\c\/d\n\t\u00e9\ud83d\ude00é""#).unwrap(),
            Value::String("a\"b\\c/d\n\té😀é".to_owned())
        );
    }

    #[test]
    fn errors_are_one_line_saying_where() {
        for text in [
            "",
            "{",
            r#"{"a" 1}"#,
            r#"{"a": 1,}"#,
            "[1 2]",
            "01",
            "1.",
            "tru",
            r#""\x""#,
            "\"\u{1}\"",
            r#""\ud800""#,
            r#""abc"#,
            "{} {}",
            "{'a': 1}",
        ] {
            let message = parse(text).unwrap_err().to_string();
            assert!(
                message.starts_with("not valid JSON: "),
                "{text:?}: {message}"
            );
            assert!(message.contains(" line 1 column "), "{text:?}: {message}");
            assert!(!message.contains('\n'), "{text:?}: {message}");
        }
        assert_eq!(
            parse("[1 2]").unwrap_err().to_string(),
            "not valid JSON: expected `,` or `]` at line 1 column 4"
        );
    }

    #[test]
    fn lenient_accessors_as_boost_property_tree() {
        assert_eq!(num(3310).as_u64(), Some(3310));
        assert_eq!(Value::String("3310".to_owned()).as_u64(), Some(3310));
        for not_u64 in [
            "-1",
            "1.0",
            "1e3",
            "99999999999999999999999",
            "\"\"",
            "\" 1\"",
            "true",
        ] {
            let value = parse(not_u64).unwrap();
            assert_eq!(value.as_u64(), None, "{not_u64}");
        }
        assert_eq!(Value::Bool(true).as_bool(), Some(true));
        assert_eq!(Value::String("false".to_owned()).as_bool(), Some(false));
        assert_eq!(num(1).as_bool(), Some(true));
        assert_eq!(num(2).as_bool(), None);
        assert_eq!(parse("1.0").unwrap().as_bool(), None);
        assert_eq!(Value::String("yes".to_owned()).as_bool(), None);
        assert_eq!(num(1).as_str(), None);
    }
}
