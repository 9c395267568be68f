//! The JSON reader of `mirror pktminerg`'s `--proto-config` and `--monitor-config`.
//!
//! Checked: whatever it reads, written back out as JSON, reads back the same; it accepts what
//! serde_json's own `Value` accepts and nothing else, with the same values (members in order and
//! duplicates kept besides); an error is one line; the number and boolean accessors say what the
//! text says.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mirror::pktminerg::json::{self, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let ours = json::parse(text);
    let theirs = serde_json::from_str::<serde_json::Value>(text);
    match (&ours, &theirs) {
        (Ok(value), Ok(reference)) => {
            assert_eq!(
                to_serde(value),
                *reference,
                "a different value than serde_json's"
            );
            let written = write(value);
            assert_eq!(
                json::parse(&written).ok().as_ref(),
                Some(value),
                "written as {written}"
            );
            check_accessors(value);
        }
        (Ok(value), Err(e)) => panic!("accepted what serde_json refuses ({e}): {value:?}"),
        (Err(error), Ok(_)) => panic!("refused what serde_json accepts: {error}"),
        (Err(_), Err(_)) => {}
    }
    if let Err(error) = ours {
        assert!(!error.to_string().contains('\n'));
    }
});

/// The value as serde_json holds it: objects keep the last of duplicate keys.
fn to_serde(value: &Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Number(n) => serde_json::Value::Number(n.clone()),
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Array(items) => serde_json::Value::Array(items.iter().map(to_serde).collect()),
        Value::Object(members) => serde_json::Value::Object(
            members
                .iter()
                .map(|(name, value)| (name.clone(), to_serde(value)))
                .collect(),
        ),
    }
}

/// JSON text of `value`, members in order and duplicates kept.
fn write(value: &Value) -> String {
    let mut out = String::new();
    write_into(value, &mut out);
    out
}

fn write_into(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_into(item, out);
            }
            out.push(']');
        }
        Value::Object(members) => {
            out.push_str("{ ");
            for (i, (name, value)) in members.iter().enumerate() {
                if i > 0 {
                    out.push_str(",\n");
                }
                write_string(name, out);
                out.push_str(" :\t");
                write_into(value, out);
            }
            out.push_str("\r\n}");
        }
    }
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            // Astral characters as surrogate pairs, to read those back too.
            c if u32::from(c) > 0xffff => {
                let mut units = [0; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04X}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `as_u64` and `as_bool` read what they should, everywhere in the value.
fn check_accessors(value: &Value) {
    match value {
        Value::Number(n) => check_text(value, &n.to_string()),
        Value::String(s) => check_text(value, s),
        Value::Bool(b) => assert_eq!(value.as_bool(), Some(*b)),
        Value::Null => assert_eq!((value.as_bool(), value.as_u64()), (None, None)),
        Value::Array(items) => items.iter().for_each(check_accessors),
        Value::Object(members) => members.iter().for_each(|(_, v)| check_accessors(v)),
    }
}

/// A number (as written: serde_json keeps the text here) or a string reads as its text says.
fn check_text(value: &Value, s: &str) {
    let digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    assert_eq!(value.as_u64(), s.parse().ok().filter(|_| digits));
    let expected = match s {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    };
    assert_eq!(value.as_bool(), expected);
    assert_eq!(value.as_str().is_some(), matches!(value, Value::String(_)));
}
