//! Invoking cargo on the workspace.

use std::{path::PathBuf, process::Command};

use anyhow::{Context as _, Result, bail};
use mirror_tests::agent::{built_mirror_bin, target_dir, workspace_root};

/// The cargo that runs us (`$CARGO`), else `cargo` from PATH, in the workspace root.
pub fn cargo<const N: usize>(args: [&str; N]) -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.args(args).current_dir(workspace_root());
    cmd
}

/// Runs `cmd` with inherited stdio; fails unless it exits 0.
pub fn status(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd.status().with_context(|| format!("starting {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// Builds the `mirror` binary (debug) and returns its path.
pub fn build_mirror() -> Result<PathBuf> {
    status(
        &mut cargo(["build", "-p", "mirror-user", "--bin", "mirror"]),
        "building the mirror binary (cargo build -p mirror-user --bin mirror)",
    )?;
    let bin = built_mirror_bin();
    if !bin.is_file() {
        bail!(
            "cargo built the mirror binary, but {} does not exist",
            bin.display()
        );
    }
    Ok(bin)
}

/// Builds the release `mirror` binary (what the bench and the soak measure) and returns its
/// path.
pub fn build_release_mirror() -> Result<PathBuf> {
    println!("== building the release binary (cargo build --release -p mirror-user --bin mirror)");
    status(
        &mut cargo(["build", "--release", "-p", "mirror-user", "--bin", "mirror"]),
        "building the release mirror binary",
    )?;
    let bin = target_dir().join("release").join("mirror");
    if !bin.is_file() {
        bail!("{} was not built", bin.display());
    }
    Ok(bin)
}
