//! `mirror`: exit code 0 on success, 2 for bad usage, configuration or input, 1 for a runtime
//! failure; errors are one line on stderr.
use std::process::ExitCode;

use clap::{Parser as _, error::ErrorKind};
use mirror::{
    UsageError,
    cli::{Cli, Command},
    pktminerg::{self, Invocation},
};

fn main() -> ExitCode {
    // `mirror pktminerg ...` or a `pktminerg` symlink: packet-agent's command line, translated.
    let argv = match pktminerg::invocation(std::env::args_os().collect()) {
        Invocation::Native(argv) => argv,
        Invocation::Help(text) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Invocation::Error(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let cli = match Cli::try_parse_from(argv) {
        Ok(cli) => cli,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // clap adds a usage hint after a blank line; the first line says what is wrong.
            let text = e.render().to_string();
            eprintln!("{}", text.lines().next().unwrap_or("error: bad usage"));
            return ExitCode::from(2);
        }
    };
    let result = match &cli.command {
        Command::Run(args) => mirror::run::run(args),
        Command::Receive(args) => mirror::receive::receive(args),
        Command::Replay(args) => mirror::replay::replay(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<UsageError>().is_some() => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
