//! Reading the Prometheus text format the agent serves.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result, bail};

/// One sample line: `name{label="value",...} number`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// All samples of one scrape.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics {
    pub samples: Vec<Sample>,
}

impl Metrics {
    /// Parses the text exposition format (comments and blank lines skipped).
    pub fn parse(text: &str) -> Result<Self> {
        let samples = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| parse_sample(l).with_context(|| format!("parsing metrics line `{l}`")))
            .collect::<Result<_>>()?;
        Ok(Self { samples })
    }

    /// Samples called `name` whose labels include every pair of `labels`.
    pub fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&str, &str)],
    ) -> impl Iterator<Item = &'a Sample> {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).is_some_and(|have| have == v))
        })
    }

    /// Sum of the samples [`Metrics::matching`] selects (0 when there are none).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    /// [`Metrics::sum`] of counters, as an integer (negative or fractional sums are clamped and
    /// rounded, which counters never need).
    #[expect(clippy::cast_sign_loss, reason = "clamped to zero first")]
    pub fn total(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.sum(name, labels).max(0.0).round() as u64
    }

    /// Whether any sample is called `name`.
    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|s| s.name == name)
    }

    /// The sample lines whose name starts with `prefix`, for printing.
    pub fn lines_with_prefix(text: &str, prefix: &str) -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .map(str::to_owned)
            .collect()
    }
}

fn parse_sample(line: &str) -> Result<Sample> {
    let (head, rest) = match line.find('{') {
        Some(open) => {
            let close = line.rfind('}').context("`{` without `}`")?;
            (
                &line[..open],
                Some((&line[open + 1..close], &line[close + 1..])),
            )
        }
        None => (line.split_whitespace().next().unwrap_or_default(), None),
    };
    let (labels, after) = match rest {
        Some((labels, after)) => (parse_labels(labels)?, after),
        None => (BTreeMap::new(), &line[head.len()..]),
    };
    let value = after.split_whitespace().next().context("no value")?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().with_context(|| format!("value `{v}`"))?,
    };
    Ok(Sample {
        name: head.trim().to_owned(),
        labels,
        value,
    })
}

fn parse_labels(text: &str) -> Result<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(labels);
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if chars.next() != Some('"') {
            bail!("label `{key}` has no quoted value");
        }
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('"') => break,
                Some('\\') => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(c) => value.push(c),
                    None => bail!("unterminated escape in label `{key}`"),
                },
                Some(c) => value.push(c),
                None => bail!("unterminated value of label `{key}`"),
            }
        }
        labels.insert(key.trim().to_owned(), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_samples_with_and_without_labels() {
        let text = "# HELP mirror_sent_packets_total Sent\n# TYPE mirror_sent_packets_total counter\n\
                    mirror_sent_packets_total{tunnel=\"vxlan\",remote=\"198.18.0.2:4789\"} 200\n\
                    mirror_captured_packets_total{iface=\"vethpod\",direction=\"ingress\"} 100\n\
                    mirror_captured_packets_total{iface=\"vethpod\",direction=\"egress\"} 100\n\
                    mirror_active_flows 3\n";
        let metrics = Metrics::parse(text).unwrap();
        assert_eq!(metrics.samples.len(), 4);
        assert!(
            (metrics.sum("mirror_captured_packets_total", &[("iface", "vethpod")]) - 200.0).abs()
                < 0.5
        );
        assert!(
            (metrics.sum("mirror_sent_packets_total", &[("tunnel", "vxlan")]) - 200.0).abs() < 0.5
        );
        assert!((metrics.sum("mirror_active_flows", &[]) - 3.0).abs() < 0.5);
        assert!(
            metrics
                .sum("mirror_captured_packets_total", &[("iface", "uplink")])
                .abs()
                < 0.5
        );
        assert_eq!(
            metrics.total("mirror_captured_packets_total", &[("direction", "egress")]),
            100
        );
        assert_eq!(metrics.samples[0].labels["remote"], "198.18.0.2:4789");
    }

    #[test]
    fn parses_escaped_label_values() {
        let sample = parse_sample(r#"m{a="x\"y",b="1,2"} 1.5e3"#).unwrap();
        assert_eq!(sample.labels["a"], "x\"y");
        assert_eq!(sample.labels["b"], "1,2");
        assert!((sample.value - 1500.0).abs() < f64::EPSILON);
    }
}
