//! `mirror replay`: a pcap or pcapng file through the same send path as live copies.
//!
//! The file's packets enter where the capture thread's would: each becomes an Ethernet frame
//! ([`link`]), tagged as an ingress copy stamped with its time in the file, and goes to the
//! sender in batches ([`play`]), as fast as possible or paced ([`pacing`]).
//!
//! Exit codes follow `mirror run`: a file that is missing, unreadable, not a capture, of a link
//! type that has no Ethernet form, or damaged is bad input (2, one line naming the file and,
//! for damage, the byte offset where it starts; every packet before the damage is sent first);
//! SIGINT and SIGTERM end the replay after a flush, with success.

pub mod args;
pub mod batch;
pub mod link;
pub mod pacing;
pub mod play;
pub mod progress;
pub mod reader;
#[cfg(test)]
mod testing;

use std::{
    fs::File,
    io::IsTerminal as _,
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};

pub use self::args::ReplayArgs;
use self::{
    play::{Counters, Player, ReplayFlows},
    progress::Progress,
    reader::Reader,
};
use crate::{
    UsageError,
    metrics::{self, DropReason, Metrics},
    output::{self, args::SendPathArg, flow_export, resolve_remotes, sender},
    remote::Remote,
    transmit,
};

/// Runs `mirror replay`.
pub fn replay(args: &ReplayArgs) -> anyhow::Result<()> {
    // The file first: a bad file is reported before anything needs privileges.
    let (reader, len) = open(&args.pcap, args.loops)?;
    if args.output.sample > 1 {
        return Err(UsageError(
            "--sample is done by the kernel on live traffic; replay sends every packet".into(),
        )
        .into());
    }
    let remotes = resolve_remotes(&args.output)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(replay_async(args, reader, len, &remotes))
}

/// Opens the capture and reads its header; returns the reader and the file's length (0 when
/// it has none, as a pipe).
fn open(path: &Path, loops: u32) -> anyhow::Result<(Reader<File>, u64)> {
    let shown = path.display();
    let file = File::open(path).map_err(|e| UsageError(format!("{shown}: cannot open: {e}")))?;
    let metadata = file
        .metadata()
        .map_err(|e| UsageError(format!("{shown}: cannot open: {e}")))?;
    if metadata.is_dir() {
        return Err(UsageError(format!("{shown}: a directory, not a capture file")).into());
    }
    if loops > 1 && !metadata.is_file() {
        return Err(UsageError(format!(
            "{shown}: --loop needs a regular file to read again; this is not one"
        ))
        .into());
    }
    let reader = Reader::new(file).map_err(|e| read_error(path, e))?;
    Ok((
        reader,
        if metadata.is_file() {
            metadata.len()
        } else {
            0
        },
    ))
}

/// A damaged or unsupported file is bad input (exit code 2); an I/O error is the system's.
fn read_error(path: &Path, error: reader::Error) -> anyhow::Error {
    let shown = path.display();
    match error {
        reader::Error::Io(e) => anyhow::Error::new(e).context(format!("reading {shown}")),
        input => UsageError(format!("{shown}: {input}")).into(),
    }
}

async fn replay_async(
    args: &ReplayArgs,
    reader: Reader<File>,
    len: u64,
    remotes: &[Remote],
) -> anyhow::Result<()> {
    let metrics = Metrics::new()?;
    let _server = match args.output.metrics {
        Some(addr) => Some(metrics::serve(addr, metrics.clone()).await?),
        None => None,
    };
    let filter = output::filter(&args.output)?;
    let mut sender = sender(&args.output, remotes, &metrics)?;
    let af_xdp = args.output.send_path == SendPathArg::AfXdp;
    let labelled: Vec<_> = remotes.iter().map(|r| (r.addr.ip(), r.label())).collect();
    let follow = transmit::start_own_umem(af_xdp, &mut sender, &labelled, &metrics).await?;
    let name = args.file_name();
    let (packets, bytes) = metrics.captured(&args.iface_label(), "ingress");
    let mut player = Player {
        sink: sender,
        pace: args.pace(),
        passes: args.loops,
        inner_dst_mac: args.output.inner_dst_mac,
        counters: Counters {
            copies: packets,
            bytes,
            malformed: metrics.dropped(DropReason::Malformed),
            filtered: metrics.dropped(DropReason::Filtered),
        },
        progress: std::io::stderr()
            .is_terminal()
            .then(|| Progress::new(name.clone(), len, args.loops)),
        netflow: flow_export(&args.output, &metrics)?.map(ReplayFlows::new),
        filter,
    };
    // Before the thread starts, so that a signal never meets the default action.
    let mut sigint = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let stop = Arc::new(AtomicBool::new(false));
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("mirror-replay".into())
        .spawn({
            let stop = Arc::clone(&stop);
            move || {
                let _ = done_tx.send(player.play(reader, &stop));
            }
        })
        .context("starting the replay thread")?;
    let done = tokio::select! {
        done = &mut done_rx => done,
        _ = sigint.recv() => {
            stop.store(true, Ordering::Relaxed);
            done_rx.await
        }
        _ = sigterm.recv() => {
            stop.store(true, Ordering::Relaxed);
            done_rx.await
        }
    };
    let _ = thread.join();
    if let Some(follow) = follow {
        follow.stop().await;
    }
    match done {
        Ok(Ok(summary)) => {
            tracing::info!("{}", progress::summary(&name, &summary));
            Ok(())
        }
        Ok(Err(e)) => Err(read_error(&args.pcap, e)),
        Err(_) => Err(anyhow::anyhow!("the replay thread panicked")),
    }
}

#[cfg(test)]
mod tests {
    use std::{net::UdpSocket, time::Duration};

    use clap::Parser;
    use pcap_file::{DataLink, Endianness, TsResolution};

    use super::*;
    use crate::replay::testing::{self, Record, TempDir, frame};

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: ReplayArgs,
    }

    fn args(pcap: &Path, remote: &str, more: &[&str]) -> ReplayArgs {
        let pcap = pcap.to_str().unwrap();
        let base = ["replay", "--pcap", pcap, "--remote", remote];
        Cli::try_parse_from(base.iter().chain(more)).unwrap().args
    }

    fn usage_error(result: anyhow::Result<()>) -> String {
        let err = result.unwrap_err();
        assert!(
            err.downcast_ref::<UsageError>().is_some(),
            "exit code 2: {err:#}"
        );
        err.to_string()
    }

    #[test]
    fn bad_files_are_bad_input() {
        let dir = TempDir::new("bad-files");
        // Refused before any remote or privilege is needed: the remote here is unreachable.
        let missing = dir.path().join("missing.pcap");
        let text = usage_error(replay(&args(&missing, "192.0.2.1", &[])));
        assert!(
            text.starts_with(&format!("{}: cannot open: ", missing.display())),
            "{text}"
        );
        let text = usage_error(replay(&args(dir.path(), "192.0.2.1", &[])));
        assert!(text.ends_with("a directory, not a capture file"), "{text}");
        let garbage = dir.file("notes.txt", b"hello, world\n");
        let text = usage_error(replay(&args(&garbage, "192.0.2.1", &[])));
        assert_eq!(
            text,
            format!(
                "{}: not a pcap or pcapng file (it starts with 0x68656c6c)",
                garbage.display()
            )
        );
        let usb = testing::pcap(
            DataLink::USB_LINUX,
            TsResolution::MicroSecond,
            Endianness::Little,
            &[],
        );
        let usb = dir.file("usb.pcap", &usb.bytes);
        let text = usage_error(replay(&args(&usb, "192.0.2.1", &[])));
        assert!(
            text.contains(": link type 189 (USB_LINUX) cannot be replayed"),
            "{text}"
        );
        let text = usage_error(replay(&args(
            Path::new("/dev/null"),
            "192.0.2.1",
            &["--loop", "2"],
        )));
        assert!(text.contains("--loop needs a regular file"), "{text}");
    }

    /// Sending needs raw sockets: root (CAP_NET_RAW and, for SO_MARK, CAP_NET_ADMIN).
    fn can_send() -> bool {
        // SAFETY: no arguments, no failure.
        if unsafe { libc::geteuid() } == 0 {
            return true;
        }
        eprintln!("skipped: sending needs root for raw sockets; run the tests as root");
        false
    }

    /// The inner frames of the VxLAN packets that reach `socket` until it has been quiet.
    fn receive_vxlan(socket: &UdpSocket) -> Vec<Vec<u8>> {
        socket
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut frames = Vec::new();
        let mut buf = vec![0; 65536];
        while let Ok(len) = socket.recv(&mut buf) {
            let vxlan = crate::wire::vxlan::Packet::new_checked(&buf[..len]).unwrap();
            assert_eq!(vxlan.vni().get(), 1);
            frames.push(vxlan.payload().to_vec());
        }
        frames
    }

    #[test]
    fn replays_to_a_vxlan_remote_on_loopback() {
        if !can_send() {
            return;
        }
        let records: Vec<Record> = (0..100)
            .map(|i| Record::new(1_700_000_000_000_000_000 + i * 1000, frame(i as u16, 64)))
            .collect();
        let dir = TempDir::new("e2e");
        let written = testing::pcap(
            DataLink::ETHERNET,
            TsResolution::MicroSecond,
            Endianness::Little,
            &records,
        );
        let path = dir.file("capture.pcap", &written.bytes);
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        let remote = socket.local_addr().unwrap().to_string();

        replay(&args(&path, &remote, &["--loop", "2"])).unwrap();
        let frames = receive_vxlan(&socket);
        let expected: Vec<Vec<u8>> = records
            .iter()
            .chain(&records)
            .map(|r| r.data.clone())
            .collect();
        assert_eq!(frames.len(), expected.len());
        assert_eq!(frames, expected);

        // A damaged file: everything before the damage arrives, then the error names it.
        let cut = written.offsets[60] as usize + 20;
        let damaged = dir.file("damaged.pcap", &written.bytes[..cut]);
        let text = usage_error(replay(&args(&damaged, &remote, &[])));
        assert_eq!(
            text,
            format!(
                "{}: truncated packet record at byte {}",
                damaged.display(),
                written.offsets[60]
            )
        );
        let frames = receive_vxlan(&socket);
        assert_eq!(frames, expected[..60]);
    }
}
