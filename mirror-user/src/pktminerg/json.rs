//! A small, strict JSON reader (RFC 8259) for packet-agent's `--proto-config` and
//! `--monitor-config` strings.
//!
//! Objects keep their members in order and keep duplicates, so that the caller can name a key
//! given twice instead of silently taking one of them. Numbers keep their text: packet-agent read
//! its configuration with Boost's property tree, which stores every value as text and converts it
//! on use, so `"vni": 3310` and `"vni": "3310"` meant the same; the accessors here accept both
//! (and `true`/`false`/`1`/`0`, as text or not, for booleans), and nothing looser.

use std::fmt;

/// How deep arrays and objects may nest: far more than any packet-agent configuration needs.
const MAX_DEPTH: usize = 32;

/// A JSON value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Null,
    Bool(bool),
    /// The number as written.
    Number(String),
    String(String),
    Array(Vec<Value>),
    /// Members in the order written, duplicates kept.
    Object(Vec<(String, Value)>),
}

/// Why a text is not JSON: what, and the byte offset where it was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub offset: usize,
    pub what: &'static str,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not valid JSON: {} at byte {}", self.what, self.offset)
    }
}

/// Parses a whole JSON text (one value, surrounded by optional whitespace).
pub fn parse(text: &str) -> Result<Value, Error> {
    let mut parser = Parser {
        bytes: text.as_bytes(),
        at: 0,
    };
    let value = parser.value(0)?;
    parser.skip_whitespace();
    if parser.at != parser.bytes.len() {
        return Err(parser.error("text after the JSON value"));
    }
    Ok(value)
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
            Self::Number(s) | Self::String(s) => match s.as_str() {
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
            Self::Number(s) | Self::String(s) if !s.is_empty() => s
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

struct Parser<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn error(&self, what: &'static str) -> Error {
        Error {
            offset: self.at,
            what,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn literal(&mut self, word: &'static str, value: Value) -> Result<Value, Error> {
        if self.bytes[self.at..].starts_with(word.as_bytes()) {
            self.at += word.len();
            Ok(value)
        } else {
            Err(self.error("an unknown word"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, Error> {
        self.skip_whitespace();
        match self.peek() {
            None => Err(self.error("a missing value")),
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => self.string().map(Value::String),
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'n') => self.literal("null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.error("an unexpected character")),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, Error> {
        if depth > MAX_DEPTH {
            return Err(self.error("too deep a nesting"));
        }
        self.at += 1;
        let mut members = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok(Value::Object(members));
        }
        loop {
            self.skip_whitespace();
            if self.peek() != Some(b'"') {
                return Err(self.error("a missing member name (a string)"));
            }
            let name = self.string()?;
            self.skip_whitespace();
            if self.peek() != Some(b':') {
                return Err(self.error("a missing ':' after a member name"));
            }
            self.at += 1;
            let value = self.value(depth)?;
            members.push((name, value));
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(Value::Object(members));
                }
                _ => return Err(self.error("a missing ',' or '}' in an object")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, Error> {
        if depth > MAX_DEPTH {
            return Err(self.error("too deep a nesting"));
        }
        self.at += 1;
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.value(depth)?);
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.error("a missing ',' or ']' in an array")),
            }
        }
    }

    fn number(&mut self) -> Result<Value, Error> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek() {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.error("a number without digits")),
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.error("a number without digits after '.'"));
            }
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.error("a number without exponent digits"));
            }
            self.digits();
        }
        // Only ASCII was consumed.
        let text = String::from_utf8_lossy(&self.bytes[start..self.at]).into_owned();
        Ok(Value::Number(text))
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
    }

    fn string(&mut self) -> Result<String, Error> {
        self.at += 1;
        let mut out = String::new();
        loop {
            let Some(byte) = self.peek() else {
                return Err(self.error("an unterminated string"));
            };
            match byte {
                b'"' => {
                    self.at += 1;
                    return Ok(out);
                }
                b'\\' => {
                    self.at += 1;
                    self.escape(&mut out)?;
                }
                0..=0x1f => return Err(self.error("a control character in a string")),
                _ => {
                    // Copy one UTF-8 character: the input is a &str, so it is whole.
                    let len = utf8_len(byte);
                    let end = (self.at + len).min(self.bytes.len());
                    out.push_str(&String::from_utf8_lossy(&self.bytes[self.at..end]));
                    self.at = end;
                }
            }
        }
    }

    fn escape(&mut self, out: &mut String) -> Result<(), Error> {
        let Some(byte) = self.peek() else {
            return Err(self.error("an unterminated string"));
        };
        self.at += 1;
        let c = match byte {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let high = self.hex4()?;
                let code = if (0xD800..0xDC00).contains(&high) {
                    if !self.bytes[self.at..].starts_with(b"\\u") {
                        return Err(self.error("a lone UTF-16 surrogate"));
                    }
                    self.at += 2;
                    let low = self.hex4()?;
                    if !(0xDC00..0xE000).contains(&low) {
                        return Err(self.error("a lone UTF-16 surrogate"));
                    }
                    0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                } else {
                    high
                };
                char::from_u32(code).ok_or_else(|| self.error("a lone UTF-16 surrogate"))?
            }
            _ => {
                self.at -= 1;
                return Err(self.error("an unknown escape"));
            }
        };
        out.push(c);
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, Error> {
        let digits = self
            .bytes
            .get(self.at..self.at + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| self.error("a \\u escape without 4 hex digits"))?;
        let value = u32::from_str_radix(digits, 16).map_err(|_| self.error("a bad \\u escape"))?;
        self.at += 4;
        Ok(value)
    }
}

/// The length of the UTF-8 sequence that starts with `first`.
fn utf8_len(first: u8) -> usize {
    match first {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn num(s: &str) -> Value {
        Value::Number(s.to_owned())
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
        assert_eq!(params[2].1, num("3310"));
    }

    #[test]
    fn scalars_and_nesting() {
        assert_eq!(parse(" null "), Ok(Value::Null));
        assert_eq!(parse("true"), Ok(Value::Bool(true)));
        assert_eq!(parse("-0.5e+3"), Ok(num("-0.5e+3")));
        assert_eq!(parse("[]"), Ok(Value::Array(vec![])));
        assert_eq!(parse("{}"), Ok(Value::Object(vec![])));
        assert_eq!(
            parse(r#"[1, [2], {"a": {}}]"#),
            Ok(Value::Array(vec![
                num("1"),
                Value::Array(vec![num("2")]),
                Value::Object(vec![("a".to_owned(), Value::Object(vec![]))]),
            ]))
        );
    }

    #[test]
    fn duplicates_are_kept() {
        let Ok(Value::Object(members)) = parse(r#"{"vni": 1, "vni": 2}"#) else {
            panic!("not an object")
        };
        assert_eq!(members.len(), 2);
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(
            parse(r#""a\"b\\c\/d\n\t\u00e9\ud83d\ude00é""#),
            Ok(Value::String("a\"b\\c/d\n\té😀é".to_owned()))
        );
    }

    #[test]
    fn errors_say_where() {
        for (text, offset) in [
            ("", 0),
            ("{", 1),
            (r#"{"a" 1}"#, 5),
            (r#"{"a": 1,}"#, 8),
            ("[1 2]", 3),
            ("01", 1),
            ("1.", 2),
            ("tru", 0),
            (r#""\x""#, 2),
            ("\"\u{1}\"", 1),
            (r#""\ud800""#, 7),
            (r#""abc"#, 4),
            ("{} {}", 3),
            ("{'a': 1}", 1),
        ] {
            let err = parse(text).unwrap_err();
            assert_eq!(err.offset, offset, "{text:?}: {err}");
        }
        let deep = "[".repeat(MAX_DEPTH + 1);
        assert_eq!(parse(&deep).unwrap_err().what, "too deep a nesting");
        assert_eq!(
            parse("[1 2]").unwrap_err().to_string(),
            "not valid JSON: a missing ',' or ']' in an array at byte 3"
        );
    }

    #[test]
    fn lenient_accessors_as_boost_property_tree() {
        assert_eq!(num("3310").as_u64(), Some(3310));
        assert_eq!(Value::String("3310".to_owned()).as_u64(), Some(3310));
        for not_u64 in [
            num("-1"),
            num("1.0"),
            num("1e3"),
            Value::String(String::new()),
            Value::String(" 1".to_owned()),
            Value::Bool(true),
            num("99999999999999999999999"),
        ] {
            assert_eq!(not_u64.as_u64(), None, "{not_u64:?}");
        }
        assert_eq!(Value::Bool(true).as_bool(), Some(true));
        assert_eq!(Value::String("false".to_owned()).as_bool(), Some(false));
        assert_eq!(num("1").as_bool(), Some(true));
        assert_eq!(num("2").as_bool(), None);
        assert_eq!(Value::String("yes".to_owned()).as_bool(), None);
        assert_eq!(num("1").as_str(), None);
    }
}
