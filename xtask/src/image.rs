//! `cargo xtask image`: the agent's runtime image from a locally built binary, with nothing
//! pulled from a registry: `deploy/rootfs.sh` lays out the binary and the libraries it links in
//! `target/image/rootfs`, and `deploy/Dockerfile.prebuilt` (`FROM scratch`) copies them in.

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};
use clap::{Args, ValueEnum};
use mirror_tests::{
    agent::target_dir,
    image::{build, on_path, prepare_context},
};

use crate::{cargo::build_release_mirror, setup::setup};

/// Options of `cargo xtask image`.
#[derive(Args, Debug)]
pub struct ImageArgs {
    /// The image's name and tag.
    #[arg(long, default_value = "localhost/mirror:0.1.0")]
    pub tag: String,
    /// The tool that builds it.
    #[arg(long, value_enum, default_value_t = Engine::Podman)]
    pub engine: Engine,
    /// Put this `mirror` binary in the image instead of building the release one.
    #[arg(long, value_parser = existing_file)]
    pub bin: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Engine {
    Podman,
    Docker,
}

impl Engine {
    fn program(self) -> &'static str {
        match self {
            Self::Podman => "podman",
            Self::Docker => "docker",
        }
    }
}

/// `--bin`: a file that exists (a usage error, exit code 2, otherwise).
fn existing_file(path: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(path);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!("no file {}", path.display()))
    }
}

pub fn image(args: &ImageArgs) -> Result<()> {
    setup()?;
    let engine = args.engine.program();
    if on_path(engine).is_none() {
        bail!("{engine} is not installed (`cargo xtask setup` installs podman, not docker)");
    }
    let bin = match &args.bin {
        Some(bin) => bin.clone(),
        None => build_release_mirror()?,
    };
    let context = target_dir().join("image");
    println!(
        "== laying out the root filesystem of {} in {}",
        bin.display(),
        context.join("rootfs").display()
    );
    prepare_context(&bin, &context)?;
    println!(
        "== {engine} build (deploy/Dockerfile.prebuilt) -t {}",
        args.tag
    );
    build(engine, &context, &args.tag).context("building the image")?;
    println!("== built {}", args.tag);
    Ok(())
}
