//! The mirror agent.

pub mod capture;
pub mod cli;
pub mod clock;
pub mod config;
pub mod filter;
pub mod flow_hash;
pub mod gather;
pub mod kernel;
pub mod metrics;
pub mod netflow;
pub mod output;
pub mod pktminerg;
pub mod pod;
pub mod receive;
pub mod remote;
pub mod replay;
pub mod run;
pub mod send;
pub mod sockopt;
pub mod transmit;
pub mod tunnel;
pub mod wire;

/// Bad usage, configuration or input: the binary exits with code 2 and this one line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);
