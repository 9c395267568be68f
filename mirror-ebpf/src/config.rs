//! The agent's settings, written once before it attaches anything.
use aya_ebpf::{macros::map, maps::Array};
use mirror_common::Config;

#[map]
pub static CONFIG: Array<Config> = Array::with_max_entries(1, 0);
