//! Zero-copy views and representations of the headers the mirror writes, in smoltcp's style:
//! a `Packet<T>` view over a buffer with field accessors, and a `Repr` with `parse`/`emit`.

pub mod vxlan;

/// Why a buffer could not be read as a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The buffer is shorter than the header.
    #[error("truncated: {needed} bytes needed, {got} present")]
    Truncated { needed: usize, got: usize },
    /// A field holds a value the protocol does not allow.
    #[error("malformed: {0}")]
    Malformed(&'static str),
}

pub type Result<T> = core::result::Result<T, Error>;
