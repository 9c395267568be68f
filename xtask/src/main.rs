//! `cargo xtask setup | run | demo | test | bench | soak | fuzz | image`: orchestration only.

mod bench;
mod cargo;
mod demo;
mod fuzz;
mod image;
mod run;
mod setup;
mod soak;
mod test;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "xtask",
    bin_name = "cargo xtask",
    about = "Build, run, demonstrate and test the mirror"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install what building and testing need (Debian packages, rust-src, bpf-linker); fast when done.
    Setup,
    /// Build the agent and run `mirror run ARGS` on this machine (needs root).
    Run {
        /// Arguments of `mirror run`, after `--`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Show the mirror at work in a throwaway world of network namespaces (needs root).
    Demo,
    /// Unit tests, then the privileged integration tests one at a time.
    Test {
        /// Passed to the integration tests' harness (e.g. a test name filter).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Throughput in a world of network namespaces, against the kernel on the same job (needs root).
    Bench(bench::BenchArgs),
    /// Run the cargo-fuzz targets of fuzz/ (nightly); fails on any finding.
    Fuzz(fuzz::FuzzArgs),
    /// Leak check: the agent under traffic while its pod comes and goes (needs root).
    Soak(soak::SoakArgs),
    /// Build the agent's runtime image from the local release binary, pulling nothing (podman).
    Image(image::ImageArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Setup => setup::setup(),
        Command::Run { args } => run::run(&args),
        Command::Demo => demo::demo(),
        Command::Test { args } => test::test(&args),
        Command::Bench(args) => bench::bench(args),
        Command::Fuzz(args) => fuzz::fuzz(&args),
        Command::Soak(args) => soak::soak(&args),
        Command::Image(args) => image::image(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            if err.downcast_ref::<bench::Interrupted>().is_some() {
                ExitCode::from(130)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
