//! The options of `mirror replay`.
use std::path::PathBuf;

use clap::Args;

use super::pacing::Pace;
use crate::output::args::OutputArgs;

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The capture file to send: pcap (micro- or nanosecond timestamps) or pcapng, of Ethernet,
    /// Linux cooked (SLL, SLL2) or raw IP packets. Each packet is sent as a copy captured on
    /// ingress, stamped with its time in the file.
    #[arg(long, value_name = "FILE")]
    pub pcap: PathBuf,

    /// Keep the capture's own timing, X times faster (2 is twice as fast, 0.5 half as fast).
    /// Without --speed or --pps the packets go as fast as they can be sent.
    #[arg(long, value_name = "X", value_parser = parse_rate, conflicts_with = "pps")]
    pub speed: Option<f64>,

    /// Send N packets per second, evenly spaced, whatever the capture's timing (fractions
    /// such as 0.5 are allowed).
    #[arg(long, value_name = "N", value_parser = parse_rate)]
    pub pps: Option<f64>,

    /// Play the file N times. Each pass continues the timestamps of the previous one, shifted
    /// by the file's span, so time never goes backwards for the receiver.
    #[arg(long = "loop", value_name = "N", default_value_t = 1, value_parser = parse_loops)]
    pub loops: u32,

    /// The `iface` label of the replayed packets in the metrics (default: the file's name).
    #[arg(long, value_name = "NAME")]
    pub iface_name: Option<String>,

    #[command(flatten)]
    pub output: OutputArgs,
}

impl ReplayArgs {
    pub fn pace(&self) -> Pace {
        match (self.speed, self.pps) {
            (Some(speed), _) => Pace::Speed(speed),
            (None, Some(pps)) => Pace::Pps(pps),
            (None, None) => Pace::Asap,
        }
    }

    /// The file's name, as messages and the default `iface` label show it.
    pub fn file_name(&self) -> String {
        self.pcap.file_name().map_or_else(
            || self.pcap.display().to_string(),
            |name| name.to_string_lossy().into_owned(),
        )
    }

    /// The `iface` label of the captured-packet metrics.
    pub fn iface_label(&self) -> String {
        self.iface_name.clone().unwrap_or_else(|| self.file_name())
    }
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        Ok(_) => Err(format!("'{s}' must be a number above 0")),
        Err(_) => Err(format!("'{s}' is not a number")),
    }
}

fn parse_loops(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(0) => Err("0 would play nothing; give 1 or more".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!(
            "'{s}' is not a whole number from 1 to {}",
            u32::MAX
        )),
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser, error::ErrorKind};

    use super::*;

    /// `mirror replay` as the lead wires it: the same arguments under a subcommand.
    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: ReplayArgs,
    }

    fn parse(args: &[&str]) -> Result<ReplayArgs, clap::Error> {
        let base = [
            "replay",
            "--pcap",
            "/tmp/capture.pcap",
            "--remote",
            "198.18.0.2",
        ];
        Cli::try_parse_from(base.iter().chain(args)).map(|cli| cli.args)
    }

    #[test]
    fn args_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.pace(), Pace::Asap);
        assert_eq!(args.loops, 1);
        assert_eq!(args.iface_label(), "capture.pcap");
        assert_eq!(args.output.vxlan_port, 4789);
        let named = parse(&["--iface-name", "eth0"]).unwrap();
        assert_eq!(named.iface_label(), "eth0");
    }

    #[test]
    fn pacing_options() {
        assert_eq!(parse(&["--speed", "2"]).unwrap().pace(), Pace::Speed(2.0));
        assert_eq!(
            parse(&["--speed", "0.25"]).unwrap().pace(),
            Pace::Speed(0.25)
        );
        assert_eq!(parse(&["--pps", "1000"]).unwrap().pace(), Pace::Pps(1000.0));
        let both = parse(&["--speed", "2", "--pps", "10"]).unwrap_err();
        assert_eq!(both.kind(), ErrorKind::ArgumentConflict);
        for bad in ["0", "-1", "inf", "NaN", "fast", ""] {
            for option in ["--speed", "--pps"] {
                let err = parse(&[&format!("{option}={bad}")]).unwrap_err();
                assert_eq!(err.kind(), ErrorKind::ValueValidation, "{option} {bad}");
            }
        }
    }

    #[test]
    fn loops() {
        assert_eq!(parse(&["--loop", "3"]).unwrap().loops, 3);
        let err = parse(&["--loop", "0"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ValueValidation);
        assert!(err.to_string().contains("0 would play nothing"), "{err}");
        assert!(parse(&["--loop", "-1"]).is_err());
    }

    #[test]
    fn the_file_is_required() {
        let err = Cli::try_parse_from(["replay", "--remote", "198.18.0.2"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
    }
}
