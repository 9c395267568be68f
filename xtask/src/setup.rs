//! `cargo xtask setup`: check, then install only what is missing. Every other command runs it
//! first, so it must stay fast when everything is there.

use std::{
    collections::BTreeSet,
    path::PathBuf,
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};
use mirror_tests::{agent::workspace_root, is_root};

use crate::cargo::{cargo, status};

/// Debian packages: the C side of xsk-rs (libbpf, libxdp), and the tools the tests and the demo
/// drive.
const PACKAGES: &[&str] = &[
    "libelf-dev",
    "zlib1g-dev",
    "pkg-config",
    "clang",
    "llvm",
    "m4",
    "libpcap-dev",
    "gcc-multilib",
    "iproute2",
    "tcpdump",
    "tshark",
    "iperf3",
    "iputils-ping",
    "ethtool",
    "bpftool",
    "curl",
    "python3-venv",
    "nfdump",
    "softflowd",
    "tcpreplay",
    // nft logs packets to NFLOG for tcpdump's nflog: captures (tests/replay.rs).
    "nftables",
    // promtool lints the metrics, and a real server scrapes and queries them (tests/metrics.rs).
    "prometheus",
    // The runtime image is built with podman (FROM scratch, nothing pulled), and the agent is
    // started from its root filesystem through capsh's chroot with the DaemonSet's capabilities
    // (tests/image.rs).
    "podman",
    "libcap2-bin",
];

/// The toolchain that builds `mirror-ebpf` (with `-Z build-std`, hence rust-src).
const NIGHTLY: &str = "nightly";
/// Its LLVM must match the nightly's; this version loads rustup's libLLVM at run time.
const BPF_LINKER_VERSION: &str = "0.10.4";

pub fn setup() -> Result<()> {
    let missing = missing_packages()?;
    if !missing.is_empty() {
        install_packages(&missing)?;
    }
    ensure_rust_src()?;
    ensure_kubernetes_validate()?;
    let linker = ensure_bpf_linker()?;
    ensure_cargo_fuzz()?;
    println!(
        "setup: {} Debian packages, {NIGHTLY} rust-src and {linker} present",
        PACKAGES.len()
    );
    Ok(())
}

/// The packages of [`PACKAGES`] that dpkg does not report as installed.
fn missing_packages() -> Result<Vec<&'static str>> {
    let output = Command::new("dpkg-query")
        .args(["-W", "-f=${Package} ${Status}\n"])
        .args(PACKAGES)
        .stderr(Stdio::null())
        .output()
        .context("running dpkg-query (setup supports Debian-based machines)")?;
    // dpkg-query exits 1 when some package is unknown to it, and still lists the others.
    let stdout = std::str::from_utf8(&output.stdout).context("dpkg-query output is not UTF-8")?;
    Ok(not_installed(PACKAGES, stdout))
}

/// The `wanted` packages that `dpkg-query -W -f='${Package} ${Status}\n'` output does not show
/// as installed (unknown ones are missing from the output; removed ones say `deinstall`).
fn not_installed<'a>(wanted: &[&'a str], dpkg_output: &str) -> Vec<&'a str> {
    let installed: BTreeSet<&str> = dpkg_output
        .lines()
        .filter_map(|l| l.strip_suffix(" install ok installed"))
        .map(|name| name.split(':').next().unwrap_or(name))
        .collect();
    wanted
        .iter()
        .copied()
        .filter(|p| !installed.contains(p))
        .collect()
}

/// `apt-get update` once, then installs `packages`.
fn install_packages(packages: &[&str]) -> Result<()> {
    println!("setup: installing Debian packages {}", packages.join(" "));
    status(&mut apt_get(&["update"]), "apt-get update")?;
    let mut install = apt_get(&["install", "-y", "--no-install-recommends"]);
    install.args(packages);
    status(
        &mut install,
        &format!("apt-get install {}", packages.join(" ")),
    )
}

/// `apt-get ARGS` without questions; through sudo when not root.
fn apt_get(args: &[&str]) -> Command {
    let mut cmd = if is_root() {
        let mut cmd = Command::new("apt-get");
        cmd.env("DEBIAN_FRONTEND", "noninteractive");
        cmd
    } else {
        // sudo resets the environment: pass the frontend through env(1).
        let mut cmd = Command::new("sudo");
        cmd.args(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]);
        cmd
    };
    cmd.args(args);
    cmd
}

/// The nightly toolchain with rust-src, for building the eBPF programs.
fn ensure_rust_src() -> Result<()> {
    let listed = Command::new("rustup")
        .args(["component", "list", "--installed", "--toolchain", NIGHTLY])
        .stderr(Stdio::null())
        .output()
        .context("running rustup component list")?;
    if !listed.status.success() {
        println!("setup: installing the {NIGHTLY} toolchain with rust-src");
        return status(
            Command::new("rustup").args([
                "toolchain",
                "install",
                NIGHTLY,
                "--profile",
                "minimal",
                "--component",
                "rust-src",
            ]),
            &format!("rustup toolchain install {NIGHTLY}"),
        );
    }
    let has_src = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .any(|l| l.starts_with("rust-src"));
    if !has_src {
        println!("setup: adding rust-src to {NIGHTLY}");
        status(
            Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", NIGHTLY]),
            &format!("rustup component add rust-src --toolchain {NIGHTLY}"),
        )?;
    }
    Ok(())
}

/// bpf-linker on PATH; returns its `--version` line.
/// `kubernetes-validate` (PyPI) in a virtualenv under `target/`, for the manifest tests: Debian's
/// Python refuses a plain `pip install`.
pub fn kubernetes_validate() -> PathBuf {
    workspace_root().join("target/tools/kv/bin/kubernetes-validate")
}

fn ensure_kubernetes_validate() -> Result<()> {
    let validator = kubernetes_validate();
    if validator.is_file() {
        return Ok(());
    }
    let venv = workspace_root().join("target/tools/kv");
    println!(
        "setup: installing kubernetes-validate into {}",
        venv.display()
    );
    let ok = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .context("running python3 -m venv")?
        .success();
    if !ok {
        bail!(
            "python3 -m venv {} failed (Debian package python3-venv)",
            venv.display()
        );
    }
    let ok = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "kubernetes-validate"])
        .status()
        .context("running pip install kubernetes-validate")?
        .success();
    if !ok {
        bail!("pip install kubernetes-validate failed");
    }
    Ok(())
}

fn ensure_bpf_linker() -> Result<String> {
    if let Some(version) = version_of(&PathBuf::from("bpf-linker")) {
        return Ok(version);
    }
    let installed = cargo_bin_dir().join("bpf-linker");
    if version_of(&installed).is_none() {
        println!("setup: installing bpf-linker {BPF_LINKER_VERSION} (takes a few minutes)");
        status(
            &mut cargo([
                "install",
                "bpf-linker",
                "--version",
                BPF_LINKER_VERSION,
                "--locked",
            ]),
            &format!("cargo install bpf-linker --version {BPF_LINKER_VERSION} --locked"),
        )?;
    }
    if let Some(version) = version_of(&PathBuf::from("bpf-linker")) {
        return Ok(version);
    }
    bail!(
        "bpf-linker is in {} but that directory is not on PATH: add it (the eBPF build looks for \
         bpf-linker on PATH)",
        installed.display()
    )
}

/// cargo-fuzz, for `cargo xtask fuzz` and the fuzz smoke run of `cargo xtask test`.
fn ensure_cargo_fuzz() -> Result<()> {
    let installed = cargo_bin_dir().join("cargo-fuzz");
    if version_of(&PathBuf::from("cargo-fuzz")).is_some() || version_of(&installed).is_some() {
        return Ok(());
    }
    println!("setup: installing cargo-fuzz (takes a few minutes)");
    status(
        &mut cargo(["install", "cargo-fuzz", "--locked"]),
        "cargo install cargo-fuzz --locked",
    )
}

/// The `--version` line of `bin`, if it runs.
fn version_of(bin: &PathBuf) -> Option<String> {
    let out = Command::new(bin)
        .arg("--version")
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `$CARGO_HOME/bin`, else `$HOME/.cargo/bin`.
fn cargo_bin_dir() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .unwrap_or_default()
        .join("bin")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_dpkg_query_status() {
        let output = "curl install ok installed\nlibelf-dev:amd64 install ok installed\n\
                      tshark deinstall ok config-files\n";
        assert_eq!(
            not_installed(&["curl", "libelf-dev", "tshark", "bpftool"], output),
            ["tshark", "bpftool"]
        );
    }
}
