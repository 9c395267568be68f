//! Reading a capture with tshark's dissectors: Wireshark is the independent judge of the
//! headers the mirror writes.

use std::path::Path;

use anyhow::{Context as _, Result, bail};

use crate::proc::{command, run_stdout};

/// `tshark -r FILE -T fields -e F...`: one row per packet, one value per field (the field's
/// first occurrence; empty when the packet lacks it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fields {
    pub names: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Fields {
    /// Runs tshark on `path` with the optional display filter `filter`.
    pub fn read(path: &Path, filter: Option<&str>, names: &[&str]) -> Result<Self> {
        let mut args: Vec<String> = [
            "-r",
            &path.to_string_lossy(),
            "-n",
            "-T",
            "fields",
            "-E",
            "separator=/t",
            "-E",
            "occurrence=f",
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        if let Some(filter) = filter {
            args.extend(["-Y".to_owned(), filter.to_owned()]);
        }
        for name in names {
            args.extend(["-e".to_owned(), (*name).to_owned()]);
        }
        let text = run_stdout(&mut command("tshark", &args))
            .with_context(|| format!("dissecting {} with tshark", path.display()))?;
        let rows = text
            .lines()
            .map(|line| line.split('\t').map(str::to_owned).collect::<Vec<_>>())
            .collect::<Vec<_>>();
        for (i, row) in rows.iter().enumerate() {
            if row.len() != names.len() {
                bail!(
                    "tshark row {} has {} fields, {} asked for: {row:?}",
                    i + 1,
                    row.len(),
                    names.len()
                );
            }
        }
        Ok(Self {
            names: names.iter().map(ToString::to_string).collect(),
            rows,
        })
    }

    /// The text of `field` in `row` (panics on a field that was not asked for: a test bug).
    pub fn text(&self, row: usize, field: &str) -> &str {
        let column = self
            .names
            .iter()
            .position(|n| n == field)
            .unwrap_or_else(|| panic!("field {field} was not asked of tshark"));
        &self.rows[row][column]
    }

    /// `field` of `row` as a number (decimal, or hex with `0x`); `None` when the packet lacks it.
    pub fn number(&self, row: usize, field: &str) -> Result<Option<u64>> {
        let text = self.text(row, field);
        parse_number(text)
            .with_context(|| format!("tshark gave `{text}` for {field} of packet {}", row + 1))
    }

    /// Fails unless [`Fields::number`] of `field` in `row` is `want`.
    pub fn expect_number(&self, row: usize, field: &str, want: Option<u64>) -> Result<()> {
        let got = self.number(row, field)?;
        if got != want {
            bail!(
                "tshark, packet {}: {field} is {got:?}, expected {want:?} (all fields: {:?})",
                row + 1,
                self.rows[row]
            );
        }
        Ok(())
    }

    /// Fails unless [`Fields::flag`] of `field` in `row` is `Some(want)`.
    pub fn expect_flag(&self, row: usize, field: &str, want: bool) -> Result<()> {
        let got = self.flag(row, field)?;
        if got != Some(want) {
            bail!(
                "tshark, packet {}: {field} is {got:?}, expected {want} (all fields: {:?})",
                row + 1,
                self.rows[row]
            );
        }
        Ok(())
    }

    /// `field` of `row` as a boolean (tshark writes `1`/`0` or `True`/`False`).
    pub fn flag(&self, row: usize, field: &str) -> Result<Option<bool>> {
        let text = self.text(row, field);
        Ok(match text {
            "" => None,
            "1" | "True" | "true" => Some(true),
            "0" | "False" | "false" => Some(false),
            other => bail!(
                "tshark gave `{other}` for the flag {field} of packet {}",
                row + 1
            ),
        })
    }
}

fn parse_number(text: &str) -> Result<Option<u64>> {
    if text.is_empty() {
        return Ok(None);
    }
    let value = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16)?,
        None => text.parse()?,
    };
    Ok(Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_decimal_and_hex() {
        assert_eq!(parse_number("").unwrap(), None);
        assert_eq!(parse_number("12345").unwrap(), Some(12345));
        assert_eq!(parse_number("0x00006558").unwrap(), Some(0x6558));
        assert!(parse_number("x").is_err());
    }
}
