//! `--pod NAME` and `--pod NAMESPACE/NAME`, checked as Kubernetes checks them.
use std::{fmt, str::FromStr};

/// The longest hostname: kubelet cuts longer pod names to this (a DNS label).
pub const HOSTNAME_MAX: usize = 63;
/// The longest pod name (a DNS subdomain).
const NAME_MAX: usize = 253;

/// A pod as the user names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodName {
    namespace: Option<String>,
    name: String,
}

impl PodName {
    /// The pod's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The Kubernetes namespace, when given (node-local resolution cannot check it).
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// The hostname kubelet gives the pod: its name, cut to 63 characters without a trailing `-`
    /// or `.` when longer (kubelet's `truncatePodHostnameIfNeeded`).
    pub fn hostname(&self) -> &str {
        match self.name.get(..HOSTNAME_MAX) {
            Some(cut) if self.name.len() > HOSTNAME_MAX => cut.trim_end_matches(['-', '.']),
            _ => &self.name,
        }
    }
}

impl fmt::Display for PodName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{namespace}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

impl FromStr for PodName {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (namespace, name) = match text.split_once('/') {
            Some((namespace, name)) => (Some(namespace), name),
            None => (None, text),
        };
        if let Some(namespace) = namespace {
            check_dns(namespace, HOSTNAME_MAX, false)
                .map_err(|why| format!("namespace `{namespace}` {why}"))?;
        }
        check_dns(name, NAME_MAX, true).map_err(|why| format!("pod name `{name}` {why}"))?;
        Ok(Self {
            namespace: namespace.map(str::to_owned),
            name: name.to_owned(),
        })
    }
}

/// RFC 1123 as Kubernetes applies it: a label (`dots` false) or a subdomain of labels.
fn check_dns(text: &str, max: usize, dots: bool) -> Result<(), String> {
    if text.is_empty() {
        return Err("is empty".to_owned());
    }
    if text.len() > max {
        return Err(format!("is longer than {max} characters"));
    }
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    let parts: Vec<&str> = if dots {
        text.split('.').collect()
    } else {
        vec![text]
    };
    for part in parts {
        let edges_ok = part
            .chars()
            .next()
            .zip(part.chars().last())
            .is_some_and(|(a, z)| a.is_ascii_alphanumeric() && z.is_ascii_alphanumeric());
        if !part.chars().all(allowed) || !edges_ok {
            return Err(format!(
                "is not a valid name: lower-case letters, digits and '-'{}, starting and ending with a letter or digit",
                if dots { " (and '.')" } else { "" }
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_namespaces() {
        let pod: PodName = "coffee-67c6f7c5fd-2pfr4".parse().unwrap();
        assert_eq!(pod.name(), "coffee-67c6f7c5fd-2pfr4");
        assert_eq!(pod.namespace(), None);
        assert_eq!(pod.to_string(), "coffee-67c6f7c5fd-2pfr4");
        let pod: PodName = "shop/coffee".parse().unwrap();
        assert_eq!((pod.namespace(), pod.name()), (Some("shop"), "coffee"));
        assert_eq!(pod.to_string(), "shop/coffee");
        assert!("web.v2".parse::<PodName>().is_ok());
        for bad in [
            "",
            "/coffee",
            "shop/",
            "Coffee",
            "coffee_1",
            "-coffee",
            "coffee-",
            "a/b/c",
            "sh.op/coffee",
            "web..v2",
        ] {
            assert!(bad.parse::<PodName>().is_err(), "{bad}");
        }
        assert!(
            "x".repeat(254)
                .parse::<PodName>()
                .unwrap_err()
                .contains("longer than 253")
        );
    }

    #[test]
    fn hostname_is_cut_like_kubelet_does() {
        let short: PodName = "coffee".parse().unwrap();
        assert_eq!(short.hostname(), "coffee");
        let name = format!("{}-{}", "a".repeat(62), "b".repeat(10));
        let long: PodName = name.parse().unwrap();
        assert_eq!(
            long.hostname(),
            "a".repeat(62),
            "cut at 63, trailing '-' dropped"
        );
        let exact: PodName = "c".repeat(63).parse().unwrap();
        assert_eq!(exact.hostname(), "c".repeat(63));
    }
}
