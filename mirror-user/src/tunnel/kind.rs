//! The tunnel kinds, by the names the command line and the metrics use.
use clap::ValueEnum;

/// Which tunnel, as `--tunnel` names it (of `mirror run`, `replay` and `receive`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TunnelKind {
    /// VxLAN over UDP (RFC 7348).
    Vxlan,
    /// GRE, Transparent Ethernet Bridging (RFC 2784, 2890).
    Gre,
    /// ERSPAN Type I: GRE protocol 0x88BE, no ERSPAN header.
    Erspan1,
    /// ERSPAN Type II: GRE 0x88BE with sequence numbers and the version 1 header.
    Erspan2,
    /// ERSPAN Type III: GRE 0x22EB with sequence numbers and the version 2 header.
    Erspan3,
}

impl TunnelKind {
    /// The `tunnel` label of the metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::Vxlan => "vxlan",
            Self::Gre => "gre",
            Self::Erspan1 => "erspan1",
            Self::Erspan2 => "erspan2",
            Self::Erspan3 => "erspan3",
        }
    }
}
