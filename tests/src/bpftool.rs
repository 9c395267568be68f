//! Reading an attached XDP program's maps: the program's id from `ip -d -j link show`, its maps
//! from `bpftool prog show`, their entries from `bpftool map dump` (raw bytes: no BTF needed).

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::{
    netns::Netns,
    proc::{command, run_stdout},
};

/// The id of the XDP program attached to `dev` in `ns`, if any.
pub fn xdp_prog_id(ns: &Netns, dev: &str) -> Result<Option<u64>> {
    let json = ns.ip(["-d", "-j", "link", "show", "dev", dev])?;
    let links: Value = serde_json::from_str(&json)
        .with_context(|| format!("parsing `ip -d -j link show dev {dev}`"))?;
    Ok(links.pointer("/0/xdp/prog/id").and_then(Value::as_u64))
}

/// The ids of the maps program `prog` uses.
pub fn prog_map_ids(prog: u64) -> Result<Vec<u64>> {
    let id = prog.to_string();
    let json = run_stdout(&mut command("bpftool", ["-j", "prog", "show", "id", &id]))?;
    let info: Value = serde_json::from_str(&json)
        .with_context(|| format!("parsing `bpftool -j prog show id {id}`"))?;
    Ok(info
        .get("map_ids")
        .and_then(Value::as_array)
        .map(|ids| ids.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default())
}

/// Every entry of map `map` as (key bytes, value bytes).
pub fn map_dump(map: u64) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let id = map.to_string();
    let json = run_stdout(&mut command("bpftool", ["-j", "map", "dump", "id", &id]))?;
    parse_dump(&json).with_context(|| format!("parsing `bpftool -j map dump id {id}`"))
}

fn parse_dump(json: &str) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let entries: Value = serde_json::from_str(json)?;
    let Some(entries) = entries.as_array() else {
        bail!("not a JSON array: {json}");
    };
    entries
        .iter()
        .map(|entry| Ok((bytes(entry.get("key"))?, bytes(entry.get("value"))?)))
        .collect()
}

/// `["0x01", "0x2a"]` as bytes.
fn bytes(value: Option<&Value>) -> Result<Vec<u8>> {
    let Some(items) = value.and_then(Value::as_array) else {
        bail!("no byte array in {value:?}");
    };
    items
        .iter()
        .map(|item| {
            let text = item.as_str().unwrap_or_default();
            u8::from_str_radix(text.trim_start_matches("0x"), 16)
                .with_context(|| format!("byte {item}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_raw_entries_whatever_the_btf() {
        let json = r#"[{"key":["0x01","0x00","0xb5","0x12","0x2a","0x00","0x00","0x00"],
            "value":["0x08","0x00","0x00","0x00","0x00","0x00","0x00","0x00"],
            "formatted":{"key":{"kind":1,"pad":0,"port":4789,"id":42},"value":8}}]"#;
        assert_eq!(
            parse_dump(json).unwrap(),
            [(
                vec![1, 0, 0xb5, 0x12, 42, 0, 0, 0],
                vec![8, 0, 0, 0, 0, 0, 0, 0]
            )]
        );
        assert_eq!(parse_dump("[]").unwrap(), []);
        assert!(parse_dump(r#"[{"key":["zz"],"value":[]}]"#).is_err());
    }
}
