//! `--config FILE` of `mirror run` and `mirror replay`: options from a TOML or YAML file.
//!
//! The file's keys are the subcommand's long option names (`tunnel = "vxlan"`,
//! `remote = ["198.18.0.2"]`) and each entry becomes `--KEY=VALUE` arguments put before the
//! command line's own, so the file goes through the same clap parsers and checks as the command
//! line and cannot drift from it. An option that the command line gives is not taken from the
//! file; for a repeatable option the command line's values replace the file's list.

pub mod args;
pub mod file;
#[cfg(test)]
mod tests;

use std::{
    ffi::OsString,
    io,
    path::{Path, PathBuf},
};

use clap::{CommandFactory as _, Parser as _};

use crate::cli::Cli;

/// A config file that cannot be used: each names the file, and the key where there is one.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read the config file: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error(
        "{}: unknown config format: name the file .toml, .yaml or .yml",
        path.display()
    )]
    Format { path: PathBuf },
    #[error("{}:{line}:{column}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: expected option names and their values (a mapping)", path.display())]
    NotAMapping { path: PathBuf },
    // Keys are shown escaped (`a\nb`): a message is one line.
    #[error("{}: key `{}` is not an option name", path.display(), key.escape_debug())]
    BadKey { path: PathBuf, key: String },
    #[error(
        "{}: unknown key `{}` (not an option of `mirror {subcommand}`)",
        path.display(),
        key.escape_debug()
    )]
    UnknownKey {
        path: PathBuf,
        key: String,
        subcommand: String,
    },
    #[error("{}: key `{}`: {problem}", path.display(), key.escape_debug())]
    Value {
        path: PathBuf,
        key: String,
        problem: String,
    },
}

/// Why the command line (with its config file) gave no [`Cli`].
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// clap's own: help or version to print, or a bad command line.
    #[error(transparent)]
    Clap(#[from] clap::Error),
    /// The config file, or one of its values.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// Parses `argv` (program name first) like [`Cli::try_parse_from`], with the options of a
/// `--config FILE` that it names.
pub fn parse_cli(argv: Vec<OsString>) -> Result<Cli, ParseError> {
    parse_cli_with(argv, |path| std::fs::read_to_string(path))
}

/// [`parse_cli`] reading the file with `read`.
pub fn parse_cli_with(
    argv: Vec<OsString>,
    read: impl FnOnce(&Path) -> io::Result<String>,
) -> Result<Cli, ParseError> {
    let Some(request) = args::find_config(Cli::command(), &argv) else {
        return Ok(Cli::try_parse_from(argv)?);
    };
    let path = &request.path;
    let text = read(path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    let entries = file::parse(path, &text)?;
    let mut cli = Cli::command();
    cli.build();
    let sub = cli
        .find_subcommand(&request.subcommand)
        .expect("find_config returns a subcommand of the Cli");
    let from_file = args::file_args(sub, path, entries, &request.given)?;
    let mut full = argv;
    let at = request.position + 1;
    full.splice(at..at, from_file.args.iter().cloned());
    Cli::try_parse_from(full).map_err(|err| match args::blame_file(&err, path, &from_file) {
        Some(config) => config.into(),
        None => err.into(),
    })
}
