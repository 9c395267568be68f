//! Outer headers of the tunnels that carry the copies to remote analysers.
//!
//! One [`Encap`] per remote writes, per copy, every header in front of the inner Ethernet
//! frame (outer IPv4 or IPv6, then UDP + VXLAN, or GRE, or GRE + ERSPAN) into a fixed buffer;
//! the sender sends that buffer and the inner frame as two iovecs through a raw socket. Each
//! `Encap` keeps a template of the headers, built once, and patches a copy of it per packet:
//! no allocation, and no pass over the inner frame except the flow hash (VXLAN, and IPv6's flow
//! label) and the UDP checksum (VXLAN over IPv6).
//!
//! | tunnel | IPv4 | IPv6 | after the IP header |
//! |---|---|---|---|
//! | VXLAN | 36 | 56 | UDP 8, VXLAN 8 |
//! | GRE | 24-32 | 44-52 | GRE 4, key 4 if set, sequence 4 if set |
//! | ERSPAN I | 24 | 44 | GRE 4 |
//! | ERSPAN II | 36 | 56 | GRE 8 (sequence), ERSPAN 8 |
//! | ERSPAN III | 40 or 48 | 60 or 68 | GRE 8 (sequence), ERSPAN 12, platform subheader 8 |

mod erspan;
pub mod fragment;
mod gre;
mod kind;
mod outer;
mod vxlan;

use core::net::IpAddr;

use etherparse::IpNumber;

pub use self::kind::TunnelKind;
use self::outer::OuterIp;
pub use crate::wire::erspan::Granularity;
use crate::{
    flow_hash::flow_hash,
    wire::{
        self,
        erspan::{HW_ID_MAX, INDEX_MAX, SESSION_MAX},
        vxlan::Vni,
    },
};

/// Room for any outer header: the longest written is 68 (IPv6 40 + GRE 8 + ERSPAN III 12 +
/// platform subheader 8); even GRE with every option (16) would fit.
pub const MAX_HEADER_LEN: usize = 96;

const _: () = assert!(
    etherparse::Ipv6Header::LEN
        + wire::gre::MAX_HEADER_LEN
        + wire::erspan::TYPE_III_HEADER_LEN
        + wire::erspan::PLATFORM_LEN
        <= MAX_HEADER_LEN
);

/// What a tunnel header needs besides the inner frame's bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CopyMeta {
    /// Direction the copy was captured in (ERSPAN III D bit: false ingress, true egress).
    pub egress: bool,
    /// Capture time, Unix epoch nanoseconds (ERSPAN III timestamp).
    pub timestamp_ns: u64,
    /// The inner frame was cut (snaplen, oversize): ERSPAN II/III T bit.
    pub truncated: bool,
}

/// A tunnel and its options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tunnel {
    /// VXLAN over UDP (RFC 7348): the source port comes from the inner flow hash.
    Vxlan { vni: Vni, dst_port: u16 },
    /// GRE with Transparent Ethernet Bridging (protocol 0x6558, RFC 1701 §3 / RFC 2784): an
    /// optional key (RFC 2890), and optionally a sequence number that counts the copies to
    /// this remote, from 0, wrapping at 2^32.
    Gre { key: Option<u32>, sequence: bool },
    /// ERSPAN Type I: a bare GRE header with protocol 0x88BE and no sequence number.
    Erspan1,
    /// ERSPAN Type II: GRE with a sequence number (from 0, per remote), protocol 0x88BE, an
    /// ERSPAN version 1 header. `session` has 10 bits, `index` 20.
    Erspan2 { session: u16, index: u32 },
    /// ERSPAN Type III: GRE with a sequence number (from 0, per remote), protocol 0x22EB, an
    /// ERSPAN version 2 header. `session` has 10 bits, `hw_id` 6; `sgt` is the security group
    /// tag. `granularity` is the timestamp's unit, see [`Encap`].
    Erspan3 {
        session: u16,
        hw_id: u8,
        sgt: u16,
        granularity: Granularity,
    },
}

/// Why a tunnel to a remote cannot be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("source {src} and remote {dst} are not of the same IP version")]
    MixedFamilies { src: IpAddr, dst: IpAddr },
    #[error("ERSPAN session ID {0} is above 1023 (10 bits)")]
    Session(u16),
    #[error("ERSPAN index {0} is above 1048575 (20 bits)")]
    Index(u32),
    #[error("ERSPAN hardware ID {0} is above 63 (6 bits)")]
    HwId(u8),
    #[error(
        "ERSPAN timestamp granularity {0:?} has no unit the mirror can write \
         (100 µs, 100 ns or IEEE 1588 nanoseconds)"
    )]
    Granularity(Granularity),
    #[error("tunnel header: {0}")]
    Header(#[from] wire::Error),
}

/// Writes the outer headers of the copies to one remote: an outer IPv4 or IPv6 template, the
/// tunnel's, and its state (the GRE sequence number).
///
/// ERSPAN III timestamps: [`Granularity::Micros100`] writes the capture time in units of
/// 100 µs since the Unix epoch, its lower 32 bits only (it wraps every 4.97 days), without a
/// platform subheader: what Linux sends, and what Linux receivers decode (they ignore the O bit
/// and would take a subheader for the start of the inner frame). [`Granularity::Nanos100`]
/// (units of 100 ns) and [`Granularity::Ieee1588`] (nanoseconds) would wrap every 7 minutes and
/// 4.3 seconds, so they also set O and put the upper 32 bits in a Platform ID 0x3 subheader
/// (port index 0). [`Granularity::Custom`] is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encap {
    /// Every outer header, lengths, checksums and per-packet fields zero.
    template: [u8; MAX_HEADER_LEN],
    header_len: usize,
    ip: OuterIp,
    kind: Kind,
    /// The next GRE sequence number, for tunnels that send one.
    sequence: u32,
    /// What it was made from, to make it again for another source address.
    tunnel: Tunnel,
    src: IpAddr,
    dst: IpAddr,
}

/// Where the tunnel headers start in the template, and what each packet changes in them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Vxlan {
        at: usize,
        /// Over IPv6: the unfolded sum of the UDP checksum's constant part.
        checksum_base: Option<u64>,
    },
    /// GRE and ERSPAN I.
    Gre {
        at: usize,
        sequenced: bool,
    },
    Erspan2 {
        gre_at: usize,
        erspan_at: usize,
    },
    Erspan3 {
        gre_at: usize,
        erspan_at: usize,
        granularity: Granularity,
    },
}

impl Encap {
    /// Outer headers of `tunnel` copies from `src` to `dst`, which must be of the same family.
    pub fn new(tunnel: &Tunnel, src: IpAddr, dst: IpAddr) -> Result<Self, Error> {
        let mut template = [0_u8; MAX_HEADER_LEN];
        let protocol = match tunnel {
            Tunnel::Vxlan { .. } => IpNumber::UDP,
            _ => IpNumber::GRE,
        };
        let ip = OuterIp::new(src, dst, protocol, &mut template)?;
        let at = ip.len();
        let rest = template.get_mut(at..).unwrap_or_default();
        let (kind, len) = match *tunnel {
            Tunnel::Vxlan { vni, dst_port } => {
                let constant_sum = vxlan::write_template(rest, dst_port, vni);
                let checksum_base = ip
                    .udp_pseudo_sum()
                    .map(|pseudo| wire::checksum::add(pseudo, constant_sum));
                (Kind::Vxlan { at, checksum_base }, vxlan::LEN)
            }
            Tunnel::Gre { key, sequence } => {
                let len = gre::write_template(rest, wire::gre::ETHERTYPE_TEB, key, sequence);
                let sequenced = sequence;
                (Kind::Gre { at, sequenced }, len)
            }
            Tunnel::Erspan1 => {
                let len = gre::write_template(rest, wire::gre::ERSPAN_I_II, None, false);
                let sequenced = false;
                (Kind::Gre { at, sequenced }, len)
            }
            Tunnel::Erspan2 { session, index } => {
                check_session(session)?;
                if index > INDEX_MAX {
                    return Err(Error::Index(index));
                }
                let gre_len = gre::write_template(rest, wire::gre::ERSPAN_I_II, None, true);
                let erspan = rest.get_mut(gre_len..).unwrap_or_default();
                let erspan_len = erspan::write_type_ii(erspan, session, index)?;
                let erspan_at = at + gre_len;
                (
                    Kind::Erspan2 {
                        gre_at: at,
                        erspan_at,
                    },
                    gre_len + erspan_len,
                )
            }
            Tunnel::Erspan3 {
                session,
                hw_id,
                sgt,
                granularity,
            } => {
                check_session(session)?;
                if hw_id > HW_ID_MAX {
                    return Err(Error::HwId(hw_id));
                }
                if granularity == Granularity::Custom {
                    return Err(Error::Granularity(granularity));
                }
                let gre_len = gre::write_template(rest, wire::gre::ERSPAN_III, None, true);
                let erspan = rest.get_mut(gre_len..).unwrap_or_default();
                let erspan_len = erspan::write_type_iii(erspan, session, hw_id, sgt, granularity)?;
                let erspan_at = at + gre_len;
                (
                    Kind::Erspan3 {
                        gre_at: at,
                        erspan_at,
                        granularity,
                    },
                    gre_len + erspan_len,
                )
            }
        };
        Ok(Encap {
            template,
            header_len: at + len,
            ip,
            kind,
            sequence: 0,
            tunnel: *tunnel,
            src,
            dst,
        })
    }

    /// The outer source address.
    pub fn source(&self) -> IpAddr {
        self.src
    }

    /// Writes `src` as the outer source address from now on (the kernel picked another one);
    /// the sequence numbers go on. Keeps the old one if `src` is of the other IP version.
    pub fn set_source(&mut self, src: IpAddr) {
        if let Ok(mut encap) = Self::new(&self.tunnel, src, self.dst) {
            encap.sequence = self.sequence;
            *self = encap;
        }
    }

    /// Length of the outer headers, the same for every packet.
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// Writes every outer header for `inner` (a whole Ethernet frame) into the start of `out`;
    /// returns the number of bytes written, [`Encap::header_len`]. The rest of `out` is left
    /// alone.
    ///
    /// `inner` must be at most [`Encap::max_inner_len`] long for any MTU; longer frames get
    /// saturated lengths (and could not be sent anyway). Tunnels with a sequence number count
    /// this packet.
    pub fn write_header(
        &mut self,
        inner: &[u8],
        meta: &CopyMeta,
        out: &mut [u8; MAX_HEADER_LEN],
    ) -> usize {
        let hash = if self.needs_hash() {
            flow_hash(inner)
        } else {
            0
        };
        self.write_header_hashed(inner, meta, hash, out)
    }

    /// Whether the headers depend on the inner flow hash (VXLAN's source port, IPv6's flow
    /// label).
    pub fn needs_hash(&self) -> bool {
        matches!(self.ip, OuterIp::V6 { .. }) || matches!(self.kind, Kind::Vxlan { .. })
    }

    /// [`Encap::write_header`] with `hash`, the inner frame's [`flow_hash`], computed by the
    /// caller once for every remote (ignored where [`Encap::needs_hash`] is false), into any
    /// `out` of at least [`Encap::header_len`] bytes (else nothing is written and 0 returned).
    pub fn write_header_hashed(
        &mut self,
        inner: &[u8],
        meta: &CopyMeta,
        hash: u32,
        out: &mut [u8],
    ) -> usize {
        let len = self.header_len;
        let (Some(header), Some(template)) = (out.get_mut(..len), self.template.get(..len)) else {
            return 0;
        };
        header.copy_from_slice(template);
        let ip_payload_len = (len - self.ip.len()).saturating_add(inner.len());
        self.ip.patch(header, ip_payload_len, hash);
        match self.kind {
            Kind::Vxlan { at, checksum_base } => {
                let udp = header.get_mut(at..).unwrap_or_default();
                vxlan::patch(udp, inner, hash, checksum_base);
            }
            Kind::Gre { at, sequenced } => {
                if sequenced {
                    let sequence = self.next_sequence();
                    gre::set_sequence(header.get_mut(at..).unwrap_or_default(), sequence);
                }
            }
            Kind::Erspan2 { gre_at, erspan_at } => {
                let sequence = self.next_sequence();
                gre::set_sequence(header.get_mut(gre_at..).unwrap_or_default(), sequence);
                let erspan = header.get_mut(erspan_at..).unwrap_or_default();
                erspan::patch_type_ii(erspan, inner, meta);
            }
            Kind::Erspan3 {
                gre_at,
                erspan_at,
                granularity,
            } => {
                let sequence = self.next_sequence();
                gre::set_sequence(header.get_mut(gre_at..).unwrap_or_default(), sequence);
                let erspan = header.get_mut(erspan_at..).unwrap_or_default();
                erspan::patch_type_iii(erspan, inner, meta, granularity);
            }
        }
        len
    }

    /// Longest inner frame whose copy fits in `path_mtu` (the outer IP packet):
    /// `path_mtu - header_len()`, 0 if even the headers do not fit, and never beyond what the IP
    /// length field can hold (loopback's MTU is 65536).
    pub fn max_inner_len(&self, path_mtu: u32) -> usize {
        let tunnel_len = self.header_len - self.ip.len();
        usize::try_from(path_mtu)
            .unwrap_or(usize::MAX)
            .saturating_sub(self.header_len)
            .min(self.ip.max_payload_len() - tunnel_len)
    }

    fn next_sequence(&mut self) -> u32 {
        let sequence = self.sequence;
        self.sequence = sequence.wrapping_add(1);
        sequence
    }
}

fn check_session(session: u16) -> Result<(), Error> {
    if session > SESSION_MAX {
        Err(Error::Session(session))
    } else {
        Ok(())
    }
}

/// Helpers the tunnel tests share.
#[cfg(test)]
pub(crate) mod testing {
    use core::net::{Ipv4Addr, Ipv6Addr};

    use etherparse::{PacketBuilder, VlanId};

    use super::*;

    pub const SRC4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    pub const DST4: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
    pub const SRC6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    pub const DST6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);

    /// The source and remote of a test tunnel, IPv4 or IPv6.
    pub fn addrs(v6: bool) -> (IpAddr, IpAddr) {
        if v6 {
            (SRC6.into(), DST6.into())
        } else {
            (SRC4.into(), DST4.into())
        }
    }

    /// An Ethernet/IPv4/UDP frame of 14 + 20 + 8 + `payload_len` bytes.
    pub fn inner_frame(payload_len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4([192, 168, 1, 1], [192, 168, 1, 2], 64)
            .udp(5000, 6000)
            .write_to_vec(&mut out, &vec![0xab; payload_len])
            .unwrap();
        out
    }

    /// An Ethernet/802.1Q/IPv4/UDP frame tagged with VLAN `vid` and priority `pcp`.
    pub fn tagged_frame(vid: u16, pcp: u8, payload_len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .single_vlan(VlanId::try_new(vid).unwrap())
            .ipv4([192, 168, 1, 1], [192, 168, 1, 2], 64)
            .udp(5000, 6000)
            .write_to_vec(&mut out, &vec![0xcd; payload_len])
            .unwrap();
        // PacketBuilder writes priority 0; set the PCP bits of the TCI.
        out[14] |= pcp << 5;
        out
    }

    /// The outer headers `encap` writes for `inner`.
    pub fn headers(encap: &mut Encap, inner: &[u8], meta: &CopyMeta) -> Vec<u8> {
        let mut out = [0x99_u8; MAX_HEADER_LEN];
        let len = encap.write_header(inner, meta, &mut out);
        assert_eq!(len, encap.header_len());
        out[..len].to_vec()
    }

    /// The whole packet on the wire: outer headers then the inner frame.
    pub fn packet(encap: &mut Encap, inner: &[u8], meta: &CopyMeta) -> Vec<u8> {
        let mut packet = headers(encap, inner, meta);
        packet.extend_from_slice(inner);
        packet
    }
}

#[cfg(test)]
mod tests {
    use etherparse::{NetSlice, SlicedPacket};

    use super::{testing::*, *};

    fn every_tunnel() -> Vec<Tunnel> {
        vec![
            Tunnel::Vxlan {
                vni: Vni::new(77).unwrap(),
                dst_port: 4789,
            },
            Tunnel::Gre {
                key: None,
                sequence: false,
            },
            Tunnel::Gre {
                key: Some(7),
                sequence: true,
            },
            Tunnel::Erspan1,
            Tunnel::Erspan2 {
                session: 1,
                index: 2,
            },
            Tunnel::Erspan3 {
                session: 1,
                hw_id: 2,
                sgt: 3,
                granularity: Granularity::Micros100,
            },
            Tunnel::Erspan3 {
                session: 1,
                hw_id: 2,
                sgt: 3,
                granularity: Granularity::Ieee1588,
            },
        ]
    }

    #[test]
    fn header_lengths() {
        let expected = [
            (36, 56),
            (24, 44),
            (32, 52),
            (24, 44),
            (36, 56),
            (40, 60),
            (48, 68),
        ];
        for (tunnel, (v4, v6)) in every_tunnel().iter().zip(expected) {
            let (src, dst) = addrs(false);
            assert_eq!(
                Encap::new(tunnel, src, dst).unwrap().header_len(),
                v4,
                "{tunnel:?}"
            );
            let (src, dst) = addrs(true);
            assert_eq!(
                Encap::new(tunnel, src, dst).unwrap().header_len(),
                v6,
                "{tunnel:?}"
            );
        }
    }

    #[test]
    fn mixed_families_rejected() {
        for tunnel in every_tunnel() {
            let err = Encap::new(&tunnel, SRC4.into(), DST6.into()).unwrap_err();
            assert_eq!(
                err.to_string(),
                "source 10.0.0.1 and remote 2001:db8::2 are not of the same IP version"
            );
            assert!(Encap::new(&tunnel, SRC6.into(), DST4.into()).is_err());
        }
    }

    #[test]
    fn out_of_range_options_rejected() {
        let (src, dst) = addrs(false);
        let erspan3 = |session, hw_id, granularity| Tunnel::Erspan3 {
            session,
            hw_id,
            sgt: 0,
            granularity,
        };
        let cases = [
            (
                Tunnel::Erspan2 {
                    session: 1024,
                    index: 0,
                },
                "ERSPAN session ID 1024 is above 1023 (10 bits)",
            ),
            (
                Tunnel::Erspan2 {
                    session: 0,
                    index: 0x10_0000,
                },
                "ERSPAN index 1048576 is above 1048575 (20 bits)",
            ),
            (
                erspan3(1024, 0, Granularity::Micros100),
                "ERSPAN session ID 1024 is above 1023 (10 bits)",
            ),
            (
                erspan3(0, 64, Granularity::Micros100),
                "ERSPAN hardware ID 64 is above 63 (6 bits)",
            ),
            (
                erspan3(0, 0, Granularity::Custom),
                "ERSPAN timestamp granularity Custom has no unit the mirror can write \
                 (100 µs, 100 ns or IEEE 1588 nanoseconds)",
            ),
        ];
        for (tunnel, message) in cases {
            assert_eq!(
                Encap::new(&tunnel, src, dst).unwrap_err().to_string(),
                message
            );
        }
        // The largest values are fine.
        Encap::new(&erspan3(1023, 63, Granularity::Nanos100), src, dst).unwrap();
        let erspan2 = Tunnel::Erspan2 {
            session: 1023,
            index: 0xf_ffff,
        };
        Encap::new(&erspan2, src, dst).unwrap();
    }

    #[test]
    fn max_inner_len() {
        let vxlan = every_tunnel()[0];
        let (src, dst) = addrs(false);
        let v4 = Encap::new(&vxlan, src, dst).unwrap();
        assert_eq!(v4.max_inner_len(1500), 1464);
        assert_eq!(v4.max_inner_len(9000), 8964);
        assert_eq!(v4.max_inner_len(36), 0);
        assert_eq!(v4.max_inner_len(35), 0);
        assert_eq!(v4.max_inner_len(0), 0);
        assert_eq!(v4.max_inner_len(65_535), 65_499);
        assert_eq!(v4.max_inner_len(65_536), 65_499);
        assert_eq!(v4.max_inner_len(u32::MAX), 65_499);
        let (src, dst) = addrs(true);
        let v6 = Encap::new(&vxlan, src, dst).unwrap();
        assert_eq!(v6.max_inner_len(1500), 1444);
        assert_eq!(v6.max_inner_len(1280), 1224);
        assert_eq!(v6.max_inner_len(56), 0);
        assert_eq!(v6.max_inner_len(65_536), 65_480);
        // IPv6's payload length excludes its own header: 65535 - 16.
        assert_eq!(v6.max_inner_len(70_000), 65_519);
        assert_eq!(v6.max_inner_len(u32::MAX), 65_519);
        let erspan3 = Encap::new(&every_tunnel()[6], src, dst).unwrap();
        assert_eq!(erspan3.max_inner_len(1500), 1432);
        assert_eq!(erspan3.max_inner_len(u32::MAX), 65_535 - 28);
    }

    #[test]
    fn every_tunnel_parses_as_ip_with_the_right_lengths() {
        let inner = inner_frame(100);
        let meta = CopyMeta::default();
        for tunnel in every_tunnel() {
            for v6 in [false, true] {
                let (src, dst) = addrs(v6);
                let mut encap = Encap::new(&tunnel, src, dst).unwrap();
                let packet = packet(&mut encap, &inner, &meta);
                let sliced = SlicedPacket::from_ip(&packet).unwrap();
                let (payload, protocol) = match &sliced.net {
                    Some(NetSlice::Ipv4(ip)) => {
                        assert!(!v6);
                        let h = ip.header();
                        assert_eq!(usize::from(h.total_len()), packet.len());
                        assert_eq!(h.header_checksum(), h.to_header().calc_header_checksum());
                        (ip.payload().payload, ip.payload().ip_number)
                    }
                    Some(NetSlice::Ipv6(ip)) => {
                        assert!(v6);
                        assert_eq!(usize::from(ip.header().payload_length()), packet.len() - 40);
                        assert_ne!(ip.header().flow_label().value(), 0);
                        (ip.payload().payload, ip.payload().ip_number)
                    }
                    other => panic!("{tunnel:?}: not IP: {other:?}"),
                };
                let expected = if matches!(tunnel, Tunnel::Vxlan { .. }) {
                    IpNumber::UDP
                } else {
                    IpNumber::GRE
                };
                assert_eq!(protocol, expected, "{tunnel:?}");
                assert!(payload.ends_with(&inner), "{tunnel:?}");
            }
        }
    }

    #[test]
    fn reusing_the_output_buffer_leaves_nothing_stale() {
        let meta = CopyMeta {
            egress: true,
            timestamp_ns: 1_700_000_000_123_456_789,
            truncated: true,
        };
        for tunnel in every_tunnel() {
            for v6 in [false, true] {
                let (src, dst) = addrs(v6);
                let mut encap = Encap::new(&tunnel, src, dst).unwrap();
                let mut twin = encap.clone();
                let small = inner_frame(0);
                let mut out = [0_u8; MAX_HEADER_LEN];
                encap.write_header(&tagged_frame(5, 7, 1000), &meta, &mut out);
                twin.write_header(&tagged_frame(5, 7, 1000), &meta, &mut [0; MAX_HEADER_LEN]);
                let len = encap.write_header(&small, &CopyMeta::default(), &mut out);
                assert_eq!(out[..len], headers(&mut twin, &small, &CopyMeta::default()));
            }
        }
    }

    #[test]
    fn flow_label_follows_the_inner_flow() {
        let (src, dst) = addrs(true);
        let mut encap = Encap::new(&every_tunnel()[1], src, dst).unwrap();
        let inner = inner_frame(10);
        let header = headers(&mut encap, &inner, &CopyMeta::default());
        let label = u32::from_be_bytes(header[..4].try_into().unwrap()) & 0xf_ffff;
        assert_eq!(label, outer::flow_label(flow_hash(&inner)));
        let other = tagged_frame(1, 0, 10);
        assert_eq!(
            headers(&mut encap, &other, &CopyMeta::default())[..4],
            header[..4],
            "a VLAN tag does not change the flow"
        );
    }

    #[test]
    fn oversized_inner_saturates_without_panicking() {
        let inner = vec![0_u8; 70_000];
        for tunnel in every_tunnel() {
            for v6 in [false, true] {
                let (src, dst) = addrs(v6);
                let mut encap = Encap::new(&tunnel, src, dst).unwrap();
                let header = headers(&mut encap, &inner, &CopyMeta::default());
                let length = if v6 { &header[4..6] } else { &header[2..4] };
                assert_eq!(length, [0xff, 0xff], "{tunnel:?}");
            }
        }
    }
}
