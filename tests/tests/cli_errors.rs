//! Bad input makes `mirror run` print exactly one line, starting with `error:` and naming what is
//! wrong, and exit with code 2.
//!
//! As root every case runs inside a fresh node netns, so an agent that wrongly accepted its input
//! could touch nothing but that namespace. Without root, the address and VNI cases run here: they
//! must be rejected before anything privileged happens. The unknown-interface case needs the netns.

use anyhow::{Result, ensure};
use mirror_tests::{
    World,
    agent::usage_error_line,
    is_root, skip_unless_root,
    world::{NODE_POD_IF, REMOTE_IP},
};

/// A valid command line with one option replaced.
fn args(iface: &str, remote: &str, vni: &str) -> Vec<String> {
    [
        "run",
        "--iface",
        iface,
        "--tunnel",
        "vxlan",
        "--remote",
        remote,
        "--vni",
        vni,
        "--vxlan-port",
        "4789",
        "--metrics",
        "127.0.0.1:9464",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Runs the agent with `argv` (in `world`'s node netns when given) and checks the contract;
/// `culprit` must appear in the error line.
fn rejects(world: Option<&World>, argv: &[String], culprit: &str) -> Result<()> {
    let line = usage_error_line(world, argv)?;
    ensure!(
        line.contains(culprit),
        "the error line `{line}` does not name `{culprit}`"
    );
    Ok(())
}

#[test]
fn bad_remote_address_is_rejected() -> Result<()> {
    let world = if is_root() {
        Some(World::new(1)?)
    } else {
        None
    };
    rejects(
        world.as_ref(),
        &args(NODE_POD_IF, "300.1.2.3", "1"),
        "300.1.2.3",
    )
}

#[test]
fn vni_out_of_range_is_rejected() -> Result<()> {
    let world = if is_root() {
        Some(World::new(1)?)
    } else {
        None
    };
    rejects(
        world.as_ref(),
        &args(NODE_POD_IF, REMOTE_IP, "16777216"),
        "16777216",
    )
}

#[test]
fn unknown_interface_is_rejected() -> Result<()> {
    if skip_unless_root("unknown_interface_is_rejected") {
        return Ok(());
    }
    let world = World::new(1)?;
    rejects(
        Some(&world),
        &args("nosuchif0", REMOTE_IP, "1"),
        "nosuchif0",
    )
}

#[test]
fn log_format_is_checked_and_usage_errors_stay_plain_in_json() -> Result<()> {
    let world = if is_root() {
        Some(World::new(1)?)
    } else {
        None
    };
    let mut xml = vec!["--log-format".to_owned(), "xml".to_owned()];
    xml.extend(args(NODE_POD_IF, REMOTE_IP, "1"));
    rejects(world.as_ref(), &xml, "xml")?;
    // A log pipeline may get JSON, but bad input is still the one `error:` line of the contract.
    let mut json = args(NODE_POD_IF, "300.1.2.3", "1");
    json.extend(["--log-format".to_owned(), "json".to_owned()]);
    rejects(world.as_ref(), &json, "300.1.2.3")
}

#[test]
fn bad_rust_log_is_a_usage_error() -> Result<()> {
    let bin = mirror_tests::agent::existing_mirror_bin()?;
    let mut cmd = std::process::Command::new(&bin);
    cmd.args(args(NODE_POD_IF, REMOTE_IP, "1"))
        .env("RUST_LOG", "mirror=loud");
    let mut agent = mirror_tests::proc::Background::spawn("mirror", &mut cmd)?;
    let status = agent.wait(std::time::Duration::from_secs(30))?;
    let stderr = agent.stderr_lines();
    ensure!(
        status.code() == Some(2) && stderr.len() == 1 && stderr[0].starts_with("error: RUST_LOG="),
        "RUST_LOG=mirror=loud: exit {status}, stderr {stderr:?}; expected exit 2 and one `error: RUST_LOG=` line"
    );
    Ok(())
}
