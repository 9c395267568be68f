//! The mirror agent.
//!
//! The data path and the parsers of untrusted bytes never unwrap, index unchecked or panic: the
//! modules marked `deny(clippy::unwrap_used, ...)` below (tests may: see `clippy.toml`).
#[deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
pub mod capture;
pub mod cli;
pub mod clock;
pub mod config;
pub mod filter;
#[deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
pub mod flow_hash;
#[deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
pub mod gather;
pub mod kernel;
pub mod log;
pub mod metrics;
#[deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
pub mod netflow;
pub mod output;
pub mod pktminerg;
pub mod pod;
#[deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
pub mod receive;
pub mod remote;
#[deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
pub mod replay;
pub mod run;
#[deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
pub mod send;
pub mod sockopt;
pub mod transmit;
#[deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
pub mod tunnel;
#[deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
pub mod wire;

/// Bad usage, configuration or input: the binary exits with code 2 and this one line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);
