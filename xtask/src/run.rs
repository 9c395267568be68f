//! `cargo xtask run -- ARGS`: build the agent and exec `mirror run ARGS`.

use std::{os::unix::process::CommandExt as _, process::Command};

use anyhow::{Context as _, Result};

use crate::{cargo::build_mirror, setup::setup};

pub fn run(args: &[String]) -> Result<()> {
    setup()?;
    let bin = build_mirror()?;
    let err = Command::new(&bin).arg("run").args(args).exec();
    Err(err).with_context(|| format!("executing {} run", bin.display()))
}
