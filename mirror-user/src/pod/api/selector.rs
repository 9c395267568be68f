//! `--pod-selector LABELS`: a Kubernetes label selector, checked here as the API server checks
//! it (`k8s.io/apimachinery/pkg/labels.Parse`), so a typo is one line at start rather than an
//! error from the API later.
//!
//! ```text
//! app=web,tier!=db        equality (`=` or `==`) and inequality
//! env in (prod,staging)   set membership (and `notin`)
//! canary, !legacy         the label exists / does not
//! replicas>2              integer comparison (also `<`)
//! ```
//! All requirements of one selector must hold (they are ANDed).
use std::{fmt, str::FromStr};

/// The longest label name and value (a DNS label).
const NAME_MAX: usize = 63;
/// The longest prefix of a label key (a DNS subdomain).
const PREFIX_MAX: usize = 253;

/// One label selector, its requirements in the order given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelSelector(Vec<Requirement>);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
    GreaterThan(String, i64),
    LessThan(String, i64),
}

impl fmt::Display for LabelSelector {
    /// The canonical text, as sent to the API (`app=web,env in (a,b)`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, requirement) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match requirement {
                Requirement::Equals(key, value) => write!(f, "{key}={value}")?,
                Requirement::NotEquals(key, value) => write!(f, "{key}!={value}")?,
                Requirement::In(key, values) => write!(f, "{key} in ({})", values.join(","))?,
                Requirement::NotIn(key, values) => {
                    write!(f, "{key} notin ({})", values.join(","))?;
                }
                Requirement::Exists(key) => f.write_str(key)?,
                Requirement::DoesNotExist(key) => write!(f, "!{key}")?,
                Requirement::GreaterThan(key, n) => write!(f, "{key}>{n}")?,
                Requirement::LessThan(key, n) => write!(f, "{key}<{n}")?,
            }
        }
        Ok(())
    }
}

impl FromStr for LabelSelector {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.trim().is_empty() {
            return Err(
                "an empty selector would select every pod of the node: name a label, e.g. app=web"
                    .to_owned(),
            );
        }
        split_top_level(text)?
            .into_iter()
            .map(|part| requirement(part.trim()).map_err(|why| format!("`{}`: {why}", part.trim())))
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

/// The requirements of `text`: split at commas outside parentheses.
fn split_top_level(text: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0_u32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' if depth == 0 => depth = 1,
            '(' => return Err("nested parentheses".to_owned()),
            ')' if depth == 1 => depth = 0,
            ')' => return Err("a `)` without its `(`".to_owned()),
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth > 0 {
        return Err("a `(` without its `)`".to_owned());
    }
    parts.push(&text[start..]);
    Ok(parts)
}

fn requirement(text: &str) -> Result<Requirement, String> {
    if text.is_empty() {
        return Err("empty requirement (two commas, or one at an end)".to_owned());
    }
    if let Some(key) = text.strip_prefix('!') {
        let key = key.trim();
        check_key(key)?;
        return Ok(Requirement::DoesNotExist(key.to_owned()));
    }
    let key_end = text
        .find(|c: char| c.is_whitespace() || "=!<>(".contains(c))
        .unwrap_or(text.len());
    let (key, rest) = (&text[..key_end], text[key_end..].trim_start());
    check_key(key)?;
    let key = key.to_owned();
    if rest.is_empty() {
        return Ok(Requirement::Exists(key));
    }
    if let Some(value) = rest.strip_prefix("!=") {
        return Ok(Requirement::NotEquals(key, value_of(value)?));
    }
    if let Some(value) = rest.strip_prefix("==").or_else(|| rest.strip_prefix('=')) {
        return Ok(Requirement::Equals(key, value_of(value)?));
    }
    for (op, greater) in [('>', true), ('<', false)] {
        if let Some(number) = rest.strip_prefix(op) {
            let number: i64 = number
                .trim()
                .parse()
                .map_err(|_| format!("`{op}` takes an integer, not `{}`", number.trim()))?;
            return Ok(if greater {
                Requirement::GreaterThan(key, number)
            } else {
                Requirement::LessThan(key, number)
            });
        }
    }
    for (word, negated) in [("notin", true), ("in", false)] {
        if let Some(set) = rest.strip_prefix(word)
            && (set.starts_with(char::is_whitespace) || set.starts_with('('))
        {
            let values = value_set(set.trim())?;
            return Ok(if negated {
                Requirement::NotIn(key, values)
            } else {
                Requirement::In(key, values)
            });
        }
    }
    Err(format!(
        "expected `=`, `==`, `!=`, `in (..)`, `notin (..)`, `>` or `<` after `{key}`"
    ))
}

/// `(a, b, c)`: at least one value.
fn value_set(text: &str) -> Result<Vec<String>, String> {
    let inner = text
        .strip_prefix('(')
        .and_then(|t| t.strip_suffix(')'))
        .ok_or_else(|| "`in` and `notin` take a list in parentheses: `in (a,b)`".to_owned())?;
    let values = inner
        .split(',')
        .map(value_of)
        .collect::<Result<Vec<_>, _>>()?;
    if values.iter().all(String::is_empty) {
        return Err("an empty value list".to_owned());
    }
    Ok(values)
}

/// A label value: empty, or up to 63 of `[A-Za-z0-9._-]` starting and ending alphanumeric.
fn value_of(text: &str) -> Result<String, String> {
    let value = text.trim();
    if !value.is_empty() {
        check_name(value).map_err(|why| format!("value `{value}` {why}"))?;
    }
    Ok(value.to_owned())
}

/// A label key: `[PREFIX/]NAME`, the prefix a DNS subdomain.
fn check_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        let labels_ok = prefix.split('.').all(|label| {
            label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && label
                    .bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_alphanumeric())
                && label
                    .bytes()
                    .last()
                    .is_some_and(|b| b.is_ascii_alphanumeric())
        });
        if prefix.len() > PREFIX_MAX || !labels_ok {
            return Err(format!(
                "key prefix `{prefix}` is not a DNS subdomain (lower-case letters, digits, '-' and '.')"
            ));
        }
    }
    if name.is_empty() {
        return Err("a label key is missing".to_owned());
    }
    check_name(name).map_err(|why| format!("key `{key}` {why}"))
}

fn check_name(name: &str) -> Result<(), String> {
    if name.len() > NAME_MAX {
        return Err(format!("is longer than {NAME_MAX} characters"));
    }
    let inner_ok = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    let edges_ok = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if inner_ok && edges_ok {
        Ok(())
    } else {
        Err(
            "may hold only letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
                .to_owned(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canonical(text: &str) -> String {
        text.parse::<LabelSelector>()
            .unwrap_or_else(|e| panic!("{text}: {e}"))
            .to_string()
    }

    #[test]
    fn kubernetes_syntax_round_trips() {
        for (given, sent) in [
            ("app=web", "app=web"),
            ("app==web", "app=web"),
            ("app = web , tier!=db", "app=web,tier!=db"),
            (
                "env in (prod, staging),track notin(canary)",
                "env in (prod,staging),track notin (canary)",
            ),
            ("canary,!legacy", "canary,!legacy"),
            ("! legacy", "!legacy"),
            ("replicas>2,replicas<10", "replicas>2,replicas<10"),
            (
                "app.kubernetes.io/name=coffee",
                "app.kubernetes.io/name=coffee",
            ),
            ("release=", "release="),
            ("Tier_1.a=V-2", "Tier_1.a=V-2"),
            // `in` and `notin` are words: a key may start with them.
            ("index=1,notinuse", "index=1,notinuse"),
        ] {
            assert_eq!(canonical(given), sent, "{given}");
        }
    }

    #[test]
    fn mistakes_are_named() {
        for (bad, says) in [
            ("", "empty selector"),
            ("  ", "empty selector"),
            ("app=web,", "empty requirement"),
            (",app=web", "empty requirement"),
            ("app=we b", "value `we b`"),
            ("app=-web", "value `-web`"),
            ("app:web", "key `app:web`"),
            ("=web", "a label key is missing"),
            ("Example.com/app=web", "key prefix `Example.com`"),
            ("app in prod", "in parentheses"),
            ("app in ()", "empty value list"),
            ("app in (a,(b))", "nested parentheses"),
            ("app in (a", "without its `)`"),
            ("app)", "without its `(`"),
            ("app>two", "takes an integer"),
            ("app web", "expected `=`"),
            ("!app=web", "key `app=web`"),
        ] {
            let err = bad.parse::<LabelSelector>().unwrap_err();
            assert!(err.contains(says), "{bad:?}: {err}");
        }
        let long = format!("app={}", "v".repeat(64));
        assert!(
            long.parse::<LabelSelector>()
                .unwrap_err()
                .contains("longer than 63")
        );
    }
}
