//! Stopping on SIGINT or SIGTERM: a small thread waits for either and raises a flag that the
//! receive loop checks between packets (a receive waits at most
//! [`super::socket::POLL_INTERVAL`]).

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
};

use anyhow::Context as _;
use tokio::{
    signal::unix::{SignalKind, signal},
    sync::oneshot,
};

/// Raised by SIGINT or SIGTERM while it lives.
#[derive(Debug)]
pub struct StopOnSignal {
    requested: Arc<AtomicBool>,
    quit: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl StopOnSignal {
    /// Install the handlers (they are in place when this returns) and start the thread.
    pub fn install() -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the tokio runtime for signals")?;
        let (mut sigint, mut sigterm) = runtime.block_on(async {
            let sigint =
                signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
            let sigterm =
                signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
            anyhow::Ok((sigint, sigterm))
        })?;
        let requested = Arc::new(AtomicBool::new(false));
        let (quit, mut quit_rx) = oneshot::channel();
        let flag = Arc::clone(&requested);
        let thread = std::thread::Builder::new()
            .name("mirror-signals".into())
            .spawn(move || {
                runtime.block_on(async {
                    tokio::select! {
                        _ = sigint.recv() => flag.store(true, Ordering::Relaxed),
                        _ = sigterm.recv() => flag.store(true, Ordering::Relaxed),
                        _ = &mut quit_rx => {}
                    }
                });
            })
            .context("starting the signal thread")?;
        Ok(Self {
            requested,
            quit: Some(quit),
            thread: Some(thread),
        })
    }

    /// Whether a signal asked to stop.
    pub fn requested(&self) -> bool {
        self.requested.load(Ordering::Relaxed)
    }
}

impl Drop for StopOnSignal {
    fn drop(&mut self) {
        if let Some(quit) = self.quit.take() {
            let _ = quit.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
