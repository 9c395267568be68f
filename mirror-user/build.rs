//! Builds the eBPF programs of `mirror-ebpf` and leaves them in `OUT_DIR` for `include_bytes!`.
//!
//! Without bpf-linker (or with `AYA_BUILD_SKIP=1`) an empty object is embedded instead, so the
//! pure-code unit tests build anywhere; the agent then refuses to start and says why.
use std::{env, fs, path::PathBuf};

use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").ok_or_else(|| anyhow!("OUT_DIR not set"))?);
    let object = out_dir.join("mirror-ebpf");
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    let skip = env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    if skip || which::which("bpf-linker").is_err() {
        println!(
            "cargo:warning=building without the eBPF programs (bpf-linker missing or AYA_BUILD_SKIP set): \
             run `cargo xtask setup` for an agent that can capture"
        );
        fs::write(&object, []).with_context(|| format!("writing {}", object.display()))?;
        return Ok(());
    }
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../mirror-ebpf");
    let root = root.to_str().ok_or_else(|| anyhow!("non-UTF-8 path"))?;
    aya_build::build_ebpf(
        [Package {
            name: "mirror-ebpf",
            root_dir: root,
            ..Default::default()
        }],
        Toolchain::default(),
    )
    .context("building the eBPF programs of mirror-ebpf")
}
