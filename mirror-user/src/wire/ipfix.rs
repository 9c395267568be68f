//! IPFIX (RFC 7011) messages: a 16-byte header, then sets, each a 4-byte set header and
//! records; all fields in network byte order.
//!
//! ```text
//! message header               set header          template record
//! off len field                off len field       off len field
//!   0   2 version (10)           0   2 set id        0   2 template id (>= 256)
//!   2   2 length (message)       2   2 length        2   2 field count
//!   4   4 export time (s)                            4   4 per field: element id, length
//!   8   4 sequence number
//!  12   4 observation domain
//! ```
//!
//! Set id 2 holds template records, a set id of 256 or more holds data records laid out as that
//! template says. The mirror writes two templates, [`TEMPLATE_V4`] and [`TEMPLATE_V6`], with the
//! RFC 7012 elements of [`FIELDS_V4`] and [`FIELDS_V6`]; [`FlowRecordRepr`] emits a record for
//! one of them and parses a record of any template made of those elements (in any order, at
//! any reduced size), which is what a collector does.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{Error, Result};

/// The version number of IPFIX.
pub const VERSION: u16 = 10;
/// Length of the message header.
pub const HEADER_LEN: usize = 16;
/// Length of a set header.
pub const SET_HEADER_LEN: usize = 4;
/// Set id of a template set.
pub const TEMPLATE_SET_ID: u16 = 2;
/// Set ids below this are reserved: data sets use template ids from here on.
pub const MIN_DATA_SET_ID: u16 = 256;
/// Template id of IPv4 flow records.
pub const TEMPLATE_V4: u16 = 256;
/// Template id of IPv6 flow records.
pub const TEMPLATE_V6: u16 = 257;
/// A field length meaning "variable: the length comes first in the record".
pub const VARIABLE_LEN: u16 = 0xffff;

/// The information elements (RFC 7012, IANA "IPFIX Information Elements") the mirror exports.
pub mod ie {
    pub const OCTET_DELTA_COUNT: u16 = 1;
    pub const PACKET_DELTA_COUNT: u16 = 2;
    pub const PROTOCOL_IDENTIFIER: u16 = 4;
    pub const IP_CLASS_OF_SERVICE: u16 = 5;
    pub const TCP_CONTROL_BITS: u16 = 6;
    pub const SOURCE_TRANSPORT_PORT: u16 = 7;
    pub const SOURCE_IPV4_ADDRESS: u16 = 8;
    pub const INGRESS_INTERFACE: u16 = 10;
    pub const DESTINATION_TRANSPORT_PORT: u16 = 11;
    pub const DESTINATION_IPV4_ADDRESS: u16 = 12;
    pub const EGRESS_INTERFACE: u16 = 14;
    pub const SOURCE_IPV6_ADDRESS: u16 = 27;
    pub const DESTINATION_IPV6_ADDRESS: u16 = 28;
    pub const FLOW_END_REASON: u16 = 136;
    pub const FLOW_START_MILLISECONDS: u16 = 152;
    pub const FLOW_END_MILLISECONDS: u16 = 153;
}

/// The fields after the addresses, common to both templates: (element, length).
const COMMON_FIELDS: [(u16, u16); 12] = [
    (ie::SOURCE_TRANSPORT_PORT, 2),
    (ie::DESTINATION_TRANSPORT_PORT, 2),
    (ie::PROTOCOL_IDENTIFIER, 1),
    (ie::IP_CLASS_OF_SERVICE, 1),
    (ie::TCP_CONTROL_BITS, 2),
    (ie::FLOW_END_REASON, 1),
    (ie::INGRESS_INTERFACE, 4),
    (ie::EGRESS_INTERFACE, 4),
    (ie::PACKET_DELTA_COUNT, 8),
    (ie::OCTET_DELTA_COUNT, 8),
    (ie::FLOW_START_MILLISECONDS, 8),
    (ie::FLOW_END_MILLISECONDS, 8),
];

#[expect(
    clippy::indexing_slicing,
    reason = "evaluated at compile time only: an index out of range fails the build"
)]
const fn with_addresses(src: u16, dst: u16, len: u16) -> [(u16, u16); 14] {
    let mut fields = [(src, len); 14];
    fields[1] = (dst, len);
    let mut i = 0;
    while i < COMMON_FIELDS.len() {
        fields[i + 2] = COMMON_FIELDS[i];
        i += 1;
    }
    fields
}

/// The IPv4 template's fields, in order.
pub const FIELDS_V4: [(u16, u16); 14] =
    with_addresses(ie::SOURCE_IPV4_ADDRESS, ie::DESTINATION_IPV4_ADDRESS, 4);
/// The IPv6 template's fields, in order.
pub const FIELDS_V6: [(u16, u16); 14] =
    with_addresses(ie::SOURCE_IPV6_ADDRESS, ie::DESTINATION_IPV6_ADDRESS, 16);

#[expect(
    clippy::indexing_slicing,
    reason = "evaluated at compile time only: an index out of range fails the build"
)]
const fn record_len(fields: &[(u16, u16)]) -> usize {
    let mut len = 0;
    let mut i = 0;
    while i < fields.len() {
        len += fields[i].1 as usize;
        i += 1;
    }
    len
}

/// Length of an IPv4 data record: 57 bytes.
pub const RECORD_LEN_V4: usize = record_len(&FIELDS_V4);
/// Length of an IPv6 data record: 81 bytes.
pub const RECORD_LEN_V6: usize = record_len(&FIELDS_V6);
/// Length of the template set describing both templates: 124 bytes.
pub const TEMPLATE_SET_LEN: usize = SET_HEADER_LEN + 2 * (4 + 4 * FIELDS_V4.len());

/// `flowEndReason` values (RFC 7012 section 7.1: "ipfix-flow-end-reason").
pub mod end_reason {
    pub const IDLE_TIMEOUT: u8 = 1;
    pub const ACTIVE_TIMEOUT: u8 = 2;
    pub const END_OF_FLOW: u8 = 3;
    pub const FORCED_END: u8 = 4;
    pub const LACK_OF_RESOURCES: u8 = 5;
}

fn be(bytes: &[u8], range: core::ops::Range<usize>) -> Result<u64> {
    let got = bytes.len();
    let field = bytes.get(range.clone()).ok_or(Error::Truncated {
        needed: range.end,
        got,
    })?;
    Ok(field
        .iter()
        .fold(0_u64, |acc, &b| (acc << 8) | u64::from(b)))
}

/// The message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HeaderRepr {
    /// Bytes of the whole message, header included.
    pub length: u16,
    /// Seconds since the Unix epoch when the message left.
    pub export_time: u32,
    /// Data records sent before this message by this observation domain, modulo 2^32.
    pub sequence: u32,
    pub domain: u32,
}

impl HeaderRepr {
    /// Read the header of `message`, checking the version and that the length fits the buffer.
    pub fn parse(message: &[u8]) -> Result<HeaderRepr> {
        let header = message.get(..HEADER_LEN).ok_or(Error::Truncated {
            needed: HEADER_LEN,
            got: message.len(),
        })?;
        if be(header, 0..2)? != u64::from(VERSION) {
            return Err(Error::Malformed("IPFIX version is not 10"));
        }
        let repr = HeaderRepr {
            length: be(header, 2..4)? as u16,
            export_time: be(header, 4..8)? as u32,
            sequence: be(header, 8..12)? as u32,
            domain: be(header, 12..16)? as u32,
        };
        let length = usize::from(repr.length);
        if length < HEADER_LEN {
            return Err(Error::Malformed("IPFIX message length below the header's"));
        }
        if length > message.len() {
            return Err(Error::Truncated {
                needed: length,
                got: message.len(),
            });
        }
        Ok(repr)
    }

    /// Write the header into the first [`HEADER_LEN`] bytes of `buffer`; does nothing if it is
    /// shorter.
    pub fn emit(&self, buffer: &mut [u8]) {
        if let Some(header) = buffer.get_mut(..HEADER_LEN) {
            let fields = VERSION
                .to_be_bytes()
                .into_iter()
                .chain(self.length.to_be_bytes());
            let fields = fields
                .chain(self.export_time.to_be_bytes())
                .chain(self.sequence.to_be_bytes())
                .chain(self.domain.to_be_bytes());
            for (byte, value) in header.iter_mut().zip(fields) {
                *byte = value;
            }
        }
    }
}

/// One set of a message: its id and the records after its header (padding included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Set<'a> {
    pub id: u16,
    pub body: &'a [u8],
}

/// The sets of a message whose header has been checked by [`HeaderRepr::parse`]; a set whose
/// length is short of its header or runs past the message ends the walk with an error.
pub fn sets(message: &[u8]) -> impl Iterator<Item = Result<Set<'_>>> {
    let length = HeaderRepr::parse(message).map_or(0, |h| usize::from(h.length));
    let mut rest = message.get(HEADER_LEN..length).unwrap_or_default();
    core::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let set = (|| {
            let id = be(rest, 0..2)? as u16;
            let len = be(rest, 2..4)? as usize;
            if len < SET_HEADER_LEN {
                return Err(Error::Malformed("IPFIX set length below the set header's"));
            }
            let body = rest.get(SET_HEADER_LEN..len).ok_or(Error::Truncated {
                needed: len,
                got: rest.len(),
            })?;
            rest = rest.get(len..).unwrap_or_default();
            Ok(Set { id, body })
        })();
        if set.is_err() {
            rest = &[];
        }
        Some(set)
    })
}

/// A field specifier of a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    /// The element id, without the enterprise bit.
    pub element: u16,
    /// Bytes in each record, or [`VARIABLE_LEN`].
    pub len: u16,
    /// The enterprise number of an enterprise-specific element.
    pub enterprise: Option<u32>,
}

/// A template record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub id: u16,
    /// No fields: the template is withdrawn.
    pub fields: Vec<Field>,
}

impl Template {
    /// The fixed length of its records, or `None` if a field has a variable length.
    pub fn record_len(&self) -> Option<usize> {
        self.fields
            .iter()
            .map(|f| (f.len != VARIABLE_LEN).then_some(usize::from(f.len)))
            .sum()
    }

    /// Read the template records of a template set's body; padding (fewer than 4 bytes left)
    /// ends it.
    pub fn parse_set(mut body: &[u8]) -> Result<Vec<Template>> {
        let mut templates = Vec::new();
        while body.len() >= 4 {
            let id = be(body, 0..2)? as u16;
            let count = be(body, 2..4)? as usize;
            if id < MIN_DATA_SET_ID {
                return Err(Error::Malformed("IPFIX template id below 256"));
            }
            let mut at = 4;
            let mut fields = Vec::with_capacity(count.min(64));
            for _ in 0..count {
                let element = be(body, at..at + 2)? as u16;
                let len = be(body, at + 2..at + 4)? as u16;
                at += 4;
                let enterprise = if element & 0x8000 == 0 {
                    None
                } else {
                    at += 4;
                    Some(be(body, at - 4..at)? as u32)
                };
                fields.push(Field {
                    element: element & 0x7fff,
                    len,
                    enterprise,
                });
            }
            templates.push(Template { id, fields });
            body = body.get(at..).unwrap_or_default();
        }
        Ok(templates)
    }

    /// Split a data set's body into records of this template; trailing padding shorter than a
    /// record is left out. `None` if the records have no fixed length.
    pub fn records<'a>(&self, body: &'a [u8]) -> Option<impl Iterator<Item = &'a [u8]>> {
        let len = self.record_len().filter(|&n| n > 0)?;
        Some(body.chunks_exact(len))
    }
}

/// Write the template set announcing [`TEMPLATE_V4`] and [`TEMPLATE_V6`] into the first
/// [`TEMPLATE_SET_LEN`] bytes of `buffer`; does nothing if it is shorter.
pub fn emit_template_set(buffer: &mut [u8]) {
    let Some(out) = buffer.get_mut(..TEMPLATE_SET_LEN) else {
        return;
    };
    let header = [TEMPLATE_SET_ID, TEMPLATE_SET_LEN as u16];
    let words = header.into_iter().chain(
        [(TEMPLATE_V4, &FIELDS_V4), (TEMPLATE_V6, &FIELDS_V6)]
            .into_iter()
            .flat_map(|(id, fields)| {
                [id, fields.len() as u16]
                    .into_iter()
                    .chain(fields.iter().flat_map(|&(element, len)| [element, len]))
            }),
    );
    for (pair, word) in out.chunks_exact_mut(2).zip(words) {
        pair.copy_from_slice(&word.to_be_bytes());
    }
}

/// One flow as the mirror exports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowRecordRepr {
    /// Both addresses are of one family, which picks the template.
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    /// For ICMP and ICMPv6: type * 256 + code, as NetFlow v5 writes it.
    pub dst_port: u16,
    pub protocol: u8,
    /// IPv4 ToS or IPv6 traffic class.
    pub tos: u8,
    pub tcp_flags: u16,
    /// One of [`end_reason`].
    pub end_reason: u8,
    pub ingress: u32,
    pub egress: u32,
    pub packets: u64,
    pub octets: u64,
    /// Milliseconds since the Unix epoch.
    pub start_ms: u64,
    pub end_ms: u64,
}

impl FlowRecordRepr {
    /// The template this record is written with.
    pub const fn template_id(&self) -> u16 {
        match self.src {
            IpAddr::V4(_) => TEMPLATE_V4,
            IpAddr::V6(_) => TEMPLATE_V6,
        }
    }

    /// Bytes this record takes in a data set.
    pub const fn buffer_len(&self) -> usize {
        match self.src {
            IpAddr::V4(_) => RECORD_LEN_V4,
            IpAddr::V6(_) => RECORD_LEN_V6,
        }
    }

    /// Read a data record of `template`, whichever of the mirror's elements it holds, in any
    /// order and at any length from 1 to 8 bytes for counters (reduced-size encoding); others
    /// are skipped. Both addresses must be present.
    pub fn parse(template: &Template, record: &[u8]) -> Result<FlowRecordRepr> {
        let (mut src, mut dst) = (None, None);
        let mut repr = FlowRecordRepr {
            src: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            dst: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            src_port: 0,
            dst_port: 0,
            protocol: 0,
            tos: 0,
            tcp_flags: 0,
            end_reason: 0,
            ingress: 0,
            egress: 0,
            packets: 0,
            octets: 0,
            start_ms: 0,
            end_ms: 0,
        };
        let mut at = 0;
        for field in &template.fields {
            let len = if field.len == VARIABLE_LEN {
                let first = be(record, at..at + 1)? as usize;
                at += 1;
                if first == 255 {
                    at += 2;
                    be(record, at - 2..at)? as usize
                } else {
                    first
                }
            } else {
                usize::from(field.len)
            };
            let value = record.get(at..at + len).ok_or(Error::Truncated {
                needed: at + len,
                got: record.len(),
            })?;
            at += len;
            if field.enterprise.is_some() {
                continue;
            }
            let uint = || {
                if (1..=8).contains(&len) {
                    be(value, 0..len)
                } else {
                    Err(Error::Malformed(
                        "IPFIX unsigned field not 1 to 8 bytes long",
                    ))
                }
            };
            let v4 = || {
                <[u8; 4]>::try_from(value)
                    .map(|a| IpAddr::V4(Ipv4Addr::from(a)))
                    .map_err(|_| Error::Malformed("IPv4 address field not 4 bytes long"))
            };
            let v6 = || {
                <[u8; 16]>::try_from(value)
                    .map(|a| IpAddr::V6(Ipv6Addr::from(a)))
                    .map_err(|_| Error::Malformed("IPv6 address field not 16 bytes long"))
            };
            match field.element {
                ie::SOURCE_IPV4_ADDRESS => src = Some(v4()?),
                ie::DESTINATION_IPV4_ADDRESS => dst = Some(v4()?),
                ie::SOURCE_IPV6_ADDRESS => src = Some(v6()?),
                ie::DESTINATION_IPV6_ADDRESS => dst = Some(v6()?),
                ie::SOURCE_TRANSPORT_PORT => repr.src_port = uint()? as u16,
                ie::DESTINATION_TRANSPORT_PORT => repr.dst_port = uint()? as u16,
                ie::PROTOCOL_IDENTIFIER => repr.protocol = uint()? as u8,
                ie::IP_CLASS_OF_SERVICE => repr.tos = uint()? as u8,
                ie::TCP_CONTROL_BITS => repr.tcp_flags = uint()? as u16,
                ie::FLOW_END_REASON => repr.end_reason = uint()? as u8,
                ie::INGRESS_INTERFACE => repr.ingress = uint()? as u32,
                ie::EGRESS_INTERFACE => repr.egress = uint()? as u32,
                ie::PACKET_DELTA_COUNT => repr.packets = uint()?,
                ie::OCTET_DELTA_COUNT => repr.octets = uint()?,
                ie::FLOW_START_MILLISECONDS => repr.start_ms = uint()?,
                ie::FLOW_END_MILLISECONDS => repr.end_ms = uint()?,
                _ => {}
            }
        }
        match (src, dst) {
            (Some(src), Some(dst)) if src.is_ipv4() == dst.is_ipv4() => {
                Ok(FlowRecordRepr { src, dst, ..repr })
            }
            _ => Err(Error::Malformed(
                "IPFIX record without two addresses of one family",
            )),
        }
    }

    /// Write the record as its template ([`FlowRecordRepr::template_id`]) lays it out into the
    /// first [`FlowRecordRepr::buffer_len`] bytes of `buffer`; does nothing if it is shorter.
    /// A destination of the other family than the source is written as unspecified.
    pub fn emit(&self, buffer: &mut [u8]) {
        let Some(out) = buffer.get_mut(..self.buffer_len()) else {
            return;
        };
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            if let Some(field) = out.get_mut(at..at + bytes.len()) {
                field.copy_from_slice(bytes);
            }
            at += bytes.len();
        };
        match (self.src, self.dst) {
            (IpAddr::V4(src), dst) => {
                put(&src.octets());
                put(&match dst {
                    IpAddr::V4(dst) => dst.octets(),
                    IpAddr::V6(_) => [0; 4],
                });
            }
            (IpAddr::V6(src), dst) => {
                put(&src.octets());
                put(&match dst {
                    IpAddr::V6(dst) => dst.octets(),
                    IpAddr::V4(_) => [0; 16],
                });
            }
        }
        put(&self.src_port.to_be_bytes());
        put(&self.dst_port.to_be_bytes());
        put(&[self.protocol, self.tos]);
        put(&self.tcp_flags.to_be_bytes());
        put(&[self.end_reason]);
        put(&self.ingress.to_be_bytes());
        put(&self.egress.to_be_bytes());
        put(&self.packets.to_be_bytes());
        put(&self.octets.to_be_bytes());
        put(&self.start_ms.to_be_bytes());
        put(&self.end_ms.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record_v6() -> FlowRecordRepr {
        FlowRecordRepr {
            src: "fd00::1".parse().unwrap(),
            dst: "fd00::2".parse().unwrap(),
            src_port: 0,
            dst_port: 128 << 8,
            protocol: 58,
            tos: 0xb8,
            tcp_flags: 0,
            end_reason: end_reason::IDLE_TIMEOUT,
            ingress: 0,
            egress: 7,
            packets: 3,
            octets: 312,
            start_ms: 1_700_000_000_000,
            end_ms: 1_700_000_002_000,
        }
    }

    fn templates() -> Vec<Template> {
        let mut set = [0; TEMPLATE_SET_LEN];
        emit_template_set(&mut set);
        Template::parse_set(&set[SET_HEADER_LEN..]).unwrap()
    }

    #[test]
    fn golden_template_set() {
        let mut set = [0xee; TEMPLATE_SET_LEN + 1];
        emit_template_set(&mut set);
        #[rustfmt::skip]
        let v4_fields: [u8; 60] = [
            1, 0, 0, 14, // template 256, 14 fields
            0, 8, 0, 4, 0, 12, 0, 4, // sourceIPv4Address, destinationIPv4Address
            0, 7, 0, 2, 0, 11, 0, 2, // source and destination transport ports
            0, 4, 0, 1, 0, 5, 0, 1, // protocolIdentifier, ipClassOfService
            0, 6, 0, 2, 0, 136, 0, 1, // tcpControlBits, flowEndReason
            0, 10, 0, 4, 0, 14, 0, 4, // ingressInterface, egressInterface
            0, 2, 0, 8, 0, 1, 0, 8, // packetDeltaCount, octetDeltaCount
            0, 152, 0, 8, 0, 153, 0, 8, // flowStartMilliseconds, flowEndMilliseconds
        ];
        assert_eq!(set[..4], [0, 2, 0, 124]);
        assert_eq!(set[4..64], v4_fields);
        assert_eq!(set[64..72], [1, 1, 0, 14, 0, 27, 0, 16]);
        assert_eq!(set[72..76], [0, 28, 0, 16]);
        assert_eq!(set[76..124], v4_fields[12..]);
        assert_eq!(set[124], 0xee);

        let templates = Template::parse_set(&set[4..124]).unwrap();
        assert_eq!(templates.len(), 2);
        for (template, (id, fields, len)) in templates
            .iter()
            .zip([(TEMPLATE_V4, FIELDS_V4, 57), (TEMPLATE_V6, FIELDS_V6, 81)])
        {
            assert_eq!(template.id, id);
            let parsed: Vec<(u16, u16)> =
                template.fields.iter().map(|f| (f.element, f.len)).collect();
            assert_eq!(parsed, fields);
            assert!(template.fields.iter().all(|f| f.enterprise.is_none()));
            assert_eq!(template.record_len(), Some(len));
        }
    }

    #[test]
    fn golden_data_record_v4() {
        let record = FlowRecordRepr {
            src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            src_port: 1024,
            dst_port: 80,
            protocol: 6,
            tos: 0x10,
            tcp_flags: 0x1b,
            end_reason: end_reason::END_OF_FLOW,
            ingress: 4,
            egress: 0,
            packets: 2,
            octets: 120,
            start_ms: 0x0102_0304_0506,
            end_ms: 0x0102_0304_0a0b,
        };
        let mut buffer = [0; RECORD_LEN_V4];
        record.emit(&mut buffer);
        #[rustfmt::skip]
        let expected: [u8; 57] = [
            10, 0, 0, 1, 10, 0, 0, 2, // addresses
            0x04, 0x00, 0, 80, // ports
            6, 0x10, 0, 0x1b, 3, // protocol, ToS, TCP flags, end of flow detected
            0, 0, 0, 4, 0, 0, 0, 0, // ingress, egress
            0, 0, 0, 0, 0, 0, 0, 2, // packets
            0, 0, 0, 0, 0, 0, 0, 120, // octets
            0, 0, 1, 2, 3, 4, 5, 6, // start
            0, 0, 1, 2, 3, 4, 0x0a, 0x0b, // end
        ];
        assert_eq!(buffer, expected);
        assert_eq!(FlowRecordRepr::parse(&templates()[0], &buffer), Ok(record));
    }

    #[test]
    fn v6_round_trip_every_field() {
        let record = record_v6();
        assert_eq!((record.template_id(), record.buffer_len()), (257, 81));
        let mut buffer = [0; RECORD_LEN_V6];
        record.emit(&mut buffer);
        assert_eq!(buffer[..2], [0xfd, 0]);
        assert_eq!(buffer[15], 1);
        assert_eq!(buffer[31], 2);
        assert_eq!(buffer[34..36], [0x80, 0]);
        let parsed = FlowRecordRepr::parse(&templates()[1], &buffer).unwrap();
        assert_eq!(parsed, record);
        // Read as the IPv4 template, the bytes make no record of one family... or are refused.
        let short = FlowRecordRepr::parse(&templates()[1], &buffer[..80]);
        assert!(matches!(short, Err(Error::Truncated { .. })));
    }

    #[test]
    fn parses_other_exporters_templates() {
        // Reduced-size counters, another order, an enterprise field and a variable one.
        let template = Template {
            id: 300,
            fields: vec![
                Field {
                    element: 2,
                    len: 4,
                    enterprise: None,
                },
                Field {
                    element: 27,
                    len: 16,
                    enterprise: None,
                },
                Field {
                    element: 28,
                    len: 16,
                    enterprise: None,
                },
                Field {
                    element: 99,
                    len: 2,
                    enterprise: Some(29305),
                },
                Field {
                    element: 82,
                    len: VARIABLE_LEN,
                    enterprise: None,
                },
                Field {
                    element: 6,
                    len: 1,
                    enterprise: None,
                },
            ],
        };
        let mut record = vec![0, 0, 1, 0];
        record.extend_from_slice(&"fd00::1".parse::<Ipv6Addr>().unwrap().octets());
        record.extend_from_slice(&"fd00::2".parse::<Ipv6Addr>().unwrap().octets());
        record.extend_from_slice(&[9, 9, 3, b'e', b't', b'h', 0x12]);
        let parsed = FlowRecordRepr::parse(&template, &record).unwrap();
        assert_eq!(parsed.packets, 256);
        assert_eq!(parsed.tcp_flags, 0x12);
        assert_eq!(parsed.dst, "fd00::2".parse::<IpAddr>().unwrap());
        assert_eq!(template.record_len(), None);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(HeaderRepr::parse(&[0, 10, 0, 16]).is_err());
        let mut header = [0; HEADER_LEN];
        HeaderRepr {
            length: 20,
            ..HeaderRepr::default()
        }
        .emit(&mut header);
        assert!(matches!(
            HeaderRepr::parse(&header),
            Err(Error::Truncated { needed: 20, .. })
        ));
        let mut message = header.to_vec();
        message.extend_from_slice(&[1, 0, 0, 2]);
        let sets: Vec<_> = sets(&message).collect();
        assert_eq!(
            sets,
            [Err(Error::Malformed(
                "IPFIX set length below the set header's"
            ))]
        );
        assert!(Template::parse_set(&[0, 5, 0, 0]).is_err());
        assert!(Template::parse_set(&[1, 0, 0, 2, 0, 8, 0, 4]).is_err());
        let no_addresses = Template {
            id: 256,
            fields: vec![Field {
                element: 2,
                len: 8,
                enterprise: None,
            }],
        };
        assert!(FlowRecordRepr::parse(&no_addresses, &[0; 8]).is_err());
        let wide = Template {
            id: 256,
            fields: vec![Field {
                element: 2,
                len: 9,
                enterprise: None,
            }],
        };
        assert!(FlowRecordRepr::parse(&wide, &[0; 9]).is_err());
    }

    #[test]
    fn header_round_trip() {
        let header = HeaderRepr {
            length: 16,
            export_time: 0x6000_0001,
            sequence: u32::MAX,
            domain: 42,
        };
        let mut buffer = [0; HEADER_LEN];
        header.emit(&mut buffer);
        assert_eq!(
            buffer,
            [
                0, 10, 0, 16, 0x60, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 42
            ]
        );
        assert_eq!(HeaderRepr::parse(&buffer), Ok(header));
        assert_eq!(sets(&buffer).count(), 0);
    }
}
