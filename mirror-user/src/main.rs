//! `mirror`: exit code 0 on success, 2 for bad usage, configuration or input, 1 for a runtime
//! failure; errors are one line on stderr.
use std::process::ExitCode;

use clap::error::ErrorKind;
use mirror::{
    UsageError,
    cli::Command,
    config::{self, ParseError},
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
    let cli = match config::parse_cli(argv) {
        Ok(cli) => cli,
        Err(ParseError::Config(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
        Err(ParseError::Clap(e))
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) =>
        {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(ParseError::Clap(e)) => {
            // clap adds a usage hint after a blank line; the first line says what is wrong.
            let text = e.render().to_string();
            eprintln!("{}", text.lines().next().unwrap_or("error: bad usage"));
            return ExitCode::from(2);
        }
    };
    if let Err(e) = mirror::log::init(cli.log_format) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
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
