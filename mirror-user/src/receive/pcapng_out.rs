//! The pcapng file the inner frames go to, with what the tunnel header knows kept: one interface
//! per ERSPAN session, VxLAN VNI or GRE key seen (named after it), the direction of ERSPAN III
//! copies (its D bit) in each packet's `epb_flags`, and a comment with the session, VLAN, COS and
//! truncation bit. Little-endian, nanosecond timestamps, Ethernet.

use std::{
    fs::File,
    io::{BufWriter, Write},
    path::{Path, PathBuf},
};

use anyhow::Context as _;

use super::{decap::Header, pcap_out::SNAPLEN};
use crate::UsageError;

const SECTION_HEADER_BLOCK: u32 = 0x0A0D_0D0A;
const INTERFACE_DESCRIPTION_BLOCK: u32 = 1;
const ENHANCED_PACKET_BLOCK: u32 = 6;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
const LINKTYPE_ETHERNET: u16 = 1;
const OPT_ENDOFOPT: u16 = 0;
const OPT_COMMENT: u16 = 1;
const SHB_USERAPPL: u16 = 4;
const IF_NAME: u16 = 2;
const IF_DESCRIPTION: u16 = 3;
const IF_TSRESOL: u16 = 9;
const EPB_FLAGS: u16 = 2;
/// `if_tsresol` of nanoseconds.
const NANOSECONDS: u8 = 9;
/// `epb_flags` bits 0-1: the direction.
const INBOUND: u32 = 0b01;
const OUTBOUND: u32 = 0b10;

/// Where a frame came from, as far as the tunnel header tells: one pcapng interface each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Vxlan { vni: u32 },
    Gre { key: Option<u32> },
    Erspan1,
    Erspan2 { session: u16 },
    Erspan3 { session: u16 },
}

impl Source {
    pub fn of(header: &Header) -> Self {
        match header {
            Header::Vxlan(vxlan) => Self::Vxlan {
                vni: vxlan.vni.get(),
            },
            Header::Gre(gre) => Self::Gre { key: gre.key },
            Header::Erspan1(_) => Self::Erspan1,
            Header::Erspan2(_, erspan) => Self::Erspan2 {
                session: erspan.session,
            },
            Header::Erspan3(_, erspan) => Self::Erspan3 {
                session: erspan.session,
            },
        }
    }

    /// The interface's `if_name`.
    pub fn name(self) -> String {
        match self {
            Self::Vxlan { vni } => format!("vxlan-vni-{vni}"),
            Self::Gre { key: Some(key) } => format!("gre-key-{key}"),
            Self::Gre { key: None } => "gre".into(),
            Self::Erspan1 => "erspan1".into(),
            Self::Erspan2 { session } => format!("erspan2-session-{session}"),
            Self::Erspan3 { session } => format!("erspan3-session-{session}"),
        }
    }

    /// The interface's `if_description`.
    fn description(self) -> String {
        match self {
            Self::Vxlan { vni } => format!("VxLAN VNI {vni}"),
            Self::Gre { key: Some(key) } => format!("GRE key {key}"),
            Self::Gre { key: None } => "GRE without key".into(),
            Self::Erspan1 => "ERSPAN Type I".into(),
            Self::Erspan2 { session } => format!("ERSPAN Type II session {session}"),
            Self::Erspan3 { session } => format!("ERSPAN Type III session {session}"),
        }
    }
}

/// The `epb_flags` direction bits of a frame: ERSPAN III tells ingress or egress; the other
/// headers tell nothing.
pub fn direction_flags(header: &Header) -> Option<u32> {
    match header {
        Header::Erspan3(_, erspan) if erspan.egress => Some(OUTBOUND),
        Header::Erspan3(..) => Some(INBOUND),
        _ => None,
    }
}

/// The packet's comment: what the ERSPAN header says of the mirrored frame. `None` for the
/// other tunnels, whose interface already says all they know.
pub fn comment(header: &Header) -> Option<String> {
    let (session, vlan, cos, truncated, direction) = match header {
        Header::Erspan2(_, e) => (e.session, e.vlan, e.cos, e.truncated, None),
        Header::Erspan3(_, e) => (
            e.session,
            e.vlan,
            e.cos,
            e.truncated,
            Some(if e.egress { "egress" } else { "ingress" }),
        ),
        _ => return None,
    };
    let mut text = format!("session {session} vlan {vlan} cos {cos}");
    if let Some(direction) = direction {
        text.push(' ');
        text.push_str(direction);
    }
    if truncated {
        text.push_str(" truncated");
    }
    Some(text)
}

/// A pcapng file being written.
#[derive(Debug)]
pub struct PcapNgOut {
    file: BufWriter<File>,
    path: PathBuf,
    /// The interfaces described so far; a frame's interface ID is its source's index.
    interfaces: Vec<Source>,
}

impl PcapNgOut {
    /// Create (or truncate) `path` and write the section header. A file that cannot be created
    /// is bad input.
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let file = File::create(path).map_err(|e| {
            UsageError(format!(
                "--write {}: cannot create the file: {e}",
                path.display()
            ))
        })?;
        let mut out = Self {
            file: BufWriter::new(file),
            path: path.to_owned(),
            interfaces: Vec::new(),
        };
        let mut body = Vec::new();
        body.extend_from_slice(&BYTE_ORDER_MAGIC.to_le_bytes());
        body.extend_from_slice(&1_u16.to_le_bytes());
        body.extend_from_slice(&0_u16.to_le_bytes());
        // Section length: not known in advance.
        body.extend_from_slice(&(-1_i64).to_le_bytes());
        push_option(&mut body, SHB_USERAPPL, b"mirror receive");
        push_option(&mut body, OPT_ENDOFOPT, &[]);
        out.block(SECTION_HEADER_BLOCK, &body)?;
        Ok(out)
    }

    /// Append `frame` with the time `unix_ns`, on the interface of its tunnel header's source,
    /// with the direction and comment the header gives.
    pub fn write(&mut self, unix_ns: u64, header: &Header, frame: &[u8]) -> anyhow::Result<()> {
        let id = self.interface(Source::of(header))?;
        let len = u32::try_from(frame.len())
            .ok()
            .filter(|&len| len <= SNAPLEN)
            .with_context(|| format!("a frame of {} bytes is over the snaplen", frame.len()))?;
        let mut body = Vec::with_capacity(64 + frame.len());
        body.extend_from_slice(&id.to_le_bytes());
        body.extend_from_slice(&((unix_ns >> 32) as u32).to_le_bytes());
        body.extend_from_slice(&(unix_ns as u32).to_le_bytes());
        body.extend_from_slice(&len.to_le_bytes());
        body.extend_from_slice(&len.to_le_bytes());
        body.extend_from_slice(frame);
        body.resize(body.len().next_multiple_of(4), 0);
        let flags = direction_flags(header);
        let comment = comment(header);
        if let Some(flags) = flags {
            push_option(&mut body, EPB_FLAGS, &flags.to_le_bytes());
        }
        if let Some(comment) = &comment {
            push_option(&mut body, OPT_COMMENT, comment.as_bytes());
        }
        if flags.is_some() || comment.is_some() {
            push_option(&mut body, OPT_ENDOFOPT, &[]);
        }
        self.block(ENHANCED_PACKET_BLOCK, &body)
    }

    /// The interface ID of `source`, described in the file when first seen.
    fn interface(&mut self, source: Source) -> anyhow::Result<u32> {
        if let Some(id) = self.interfaces.iter().position(|&s| s == source) {
            return Ok(u32::try_from(id).unwrap_or(u32::MAX));
        }
        let mut body = Vec::new();
        body.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        body.extend_from_slice(&0_u16.to_le_bytes());
        body.extend_from_slice(&SNAPLEN.to_le_bytes());
        push_option(&mut body, IF_NAME, source.name().as_bytes());
        push_option(&mut body, IF_DESCRIPTION, source.description().as_bytes());
        push_option(&mut body, IF_TSRESOL, &[NANOSECONDS]);
        push_option(&mut body, OPT_ENDOFOPT, &[]);
        self.block(INTERFACE_DESCRIPTION_BLOCK, &body)?;
        self.interfaces.push(source);
        Ok(u32::try_from(self.interfaces.len() - 1).unwrap_or(u32::MAX))
    }

    /// Writes a block: type, total length, `body` (a multiple of 4 bytes), total length.
    fn block(&mut self, kind: u32, body: &[u8]) -> anyhow::Result<()> {
        let len = u32::try_from(body.len() + 12).unwrap_or(u32::MAX);
        let write = |file: &mut BufWriter<File>| -> std::io::Result<()> {
            file.write_all(&kind.to_le_bytes())?;
            file.write_all(&len.to_le_bytes())?;
            file.write_all(body)?;
            file.write_all(&len.to_le_bytes())
        };
        write(&mut self.file).with_context(|| format!("writing to {}", self.path.display()))
    }

    /// Push buffered blocks to the file, so that readers see them.
    pub fn flush(&mut self) -> anyhow::Result<()> {
        self.file
            .flush()
            .with_context(|| format!("writing to {}", self.path.display()))
    }

    /// Flush and close the file.
    pub fn finish(mut self) -> anyhow::Result<()> {
        self.flush()?;
        self.file
            .get_ref()
            .sync_all()
            .with_context(|| format!("syncing {}", self.path.display()))
    }
}

/// An option: code, length, value padded to 32 bits.
fn push_option(body: &mut Vec<u8>, code: u16, value: &[u8]) {
    let len = u16::try_from(value.len()).unwrap_or(u16::MAX);
    body.extend_from_slice(&code.to_le_bytes());
    body.extend_from_slice(&len.to_le_bytes());
    body.extend_from_slice(value.get(..usize::from(len)).unwrap_or(value));
    body.resize(body.len().next_multiple_of(4), 0);
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use pcap_file::{
        DataLink,
        pcapng::{
            Block, PcapNgReader,
            blocks::{
                enhanced_packet::EnhancedPacketOption,
                interface_description::InterfaceDescriptionOption,
            },
        },
    };

    use super::*;
    use crate::{
        receive::decap::{Accept, decap},
        tunnel::{
            CopyMeta, Encap, Granularity, Tunnel,
            testing::{addrs, inner_frame, packet},
        },
        wire::vxlan::Vni,
    };

    /// The header `mirror receive` parses from `inner` sent in `tunnel` with `meta`.
    fn header(tunnel: &Tunnel, accept: Accept, inner: &[u8], meta: &CopyMeta) -> Header {
        let (src, dst) = addrs(false);
        let mut encap = Encap::new(tunnel, src, dst).unwrap();
        let whole = packet(&mut encap, inner, meta);
        let udp = if accept.is_udp() { 8 } else { 0 };
        decap(accept, &whole[20 + udp..]).unwrap().header
    }

    #[test]
    fn interfaces_directions_and_comments() {
        let frame = inner_frame(40);
        let vxlan = |vni| {
            let tunnel = Tunnel::Vxlan {
                vni: Vni::new(vni).unwrap(),
                dst_port: 4789,
            };
            header(
                &tunnel,
                Accept::Vxlan { vni: None },
                &frame,
                &CopyMeta::default(),
            )
        };
        let erspan3 = |egress, truncated| {
            let tunnel = Tunnel::Erspan3 {
                session: 300,
                hw_id: 5,
                sgt: 1234,
                granularity: Granularity::Nanos100,
            };
            let meta = CopyMeta {
                egress,
                timestamp_ns: 0,
                truncated,
            };
            header(&tunnel, Accept::Erspan3, &frame, &meta)
        };
        let gre = header(
            &Tunnel::Gre {
                key: Some(7),
                sequence: false,
            },
            Accept::Gre { key: None },
            &frame,
            &CopyMeta::default(),
        );
        let headers = [
            vxlan(42),
            vxlan(43),
            vxlan(42),
            gre,
            erspan3(true, true),
            erspan3(false, false),
        ];
        let path = std::env::temp_dir().join(format!(
            "mirror-receive-{}-interfaces.pcapng",
            std::process::id()
        ));
        let mut out = PcapNgOut::create(&path).unwrap();
        for (i, header) in headers.iter().enumerate() {
            out.write(1_700_000_000_000_000_000 + i as u64, header, &frame)
                .unwrap();
        }
        out.finish().unwrap();

        let (names, packets) = read_back(&path, &frame);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            names,
            [
                "vxlan-vni-42",
                "vxlan-vni-43",
                "gre-key-7",
                "erspan3-session-300"
            ]
        );
        let ids: Vec<u32> = packets.iter().map(|p| p.0).collect();
        assert_eq!(ids, [0, 1, 0, 2, 3, 3]);
        assert_eq!(packets[0].1, 1_700_000_000_000_000_000);
        assert_eq!(packets[5].1, 1_700_000_000_000_000_005);
        assert!(packets[..4].iter().all(|p| p.2.is_none() && p.3.is_none()));
        assert_eq!(packets[4].2, Some(OUTBOUND));
        assert_eq!(
            packets[4].3.as_deref(),
            Some("session 300 vlan 0 cos 0 egress truncated")
        );
        assert_eq!(packets[5].2, Some(INBOUND));
        assert_eq!(
            packets[5].3.as_deref(),
            Some("session 300 vlan 0 cos 0 ingress")
        );
    }

    /// A packet as read back: interface ID, timestamp, `epb_flags`, comment.
    type ReadPacket = (u32, u128, Option<u32>, Option<String>);

    /// The interface names and packets of the pcapng file at `path`, read with pcap-file's
    /// reader, which knows nothing of ours; every packet must hold `frame`.
    fn read_back(path: &Path, frame: &[u8]) -> (Vec<String>, Vec<ReadPacket>) {
        let mut reader = PcapNgReader::new(File::open(path).unwrap()).unwrap();
        let mut names = Vec::new();
        let mut packets = Vec::new();
        while let Some(block) = reader.next_block() {
            match block.unwrap() {
                Block::InterfaceDescription(idb) => {
                    assert_eq!(idb.linktype, DataLink::ETHERNET);
                    assert!(
                        idb.options
                            .contains(&InterfaceDescriptionOption::IfTsResol(9))
                    );
                    for option in idb.options {
                        if let InterfaceDescriptionOption::IfName(name) = option {
                            names.push(name.into_owned());
                        }
                    }
                }
                Block::EnhancedPacket(epb) => {
                    assert_eq!(epb.data.as_ref(), frame);
                    let mut flags = None;
                    let mut comment = None;
                    for option in &epb.options {
                        match option {
                            EnhancedPacketOption::Flags(f) => flags = Some(*f),
                            EnhancedPacketOption::Comment(c) => {
                                comment = Some(Cow::to_string(c));
                            }
                            other => panic!("{other:?}"),
                        }
                    }
                    packets.push((epb.interface_id, epb.timestamp.as_nanos(), flags, comment));
                }
                _ => {}
            }
        }
        (names, packets)
    }
}
