//! Where a process accepts connections or datagrams: its listening TCP sockets and unconnected
//! UDP sockets in a namespace, as `ss` reports them.

use anyhow::Result;

use crate::netns::Netns;

/// `tcp 127.0.0.1:9464`, `udp 0.0.0.0:2055`: the listening TCP and bound, unconnected UDP
/// sockets of process `pid` in `ns`.
pub fn listening(ns: &Netns, pid: u32) -> Result<Vec<String>> {
    let text = ns.run("ss", ["-H", "-l", "-n", "-p", "-t", "-u"])?;
    Ok(parse(&text, pid))
}

fn parse(text: &str, pid: u32) -> Vec<String> {
    let owner = format!("pid={pid},");
    text.lines()
        .filter(|l| l.contains(&owner))
        .filter_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            Some(format!("{} {}", fields.first()?, fields.get(4)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_process_sockets() {
        let text = "tcp   LISTEN 0      1024       127.0.0.1:9464      0.0.0.0:*    users:((\"mirror\",pid=77,fd=9))\n\
                    udp   UNCONN 0      0            0.0.0.0:5353      0.0.0.0:*    users:((\"other\",pid=771,fd=3))\n";
        assert_eq!(parse(text, 77), ["tcp 127.0.0.1:9464"]);
        assert!(parse(text, 7).is_empty());
    }
}
