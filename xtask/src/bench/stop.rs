//! Ctrl-C and SIGTERM: instead of dying where it stands, which would leave its namespaces (and
//! the processes in them) behind, the bench stops before its next measurement and returns an
//! error, so that every world is dropped and removed on the way out.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Result, bail};

static ASKED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    ASKED.store(true, Ordering::Relaxed);
}

/// From now on SIGINT and SIGTERM ask the bench to stop.
pub fn catch() -> Result<()> {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        if unsafe { libc::signal(signal, handler) } == libc::SIG_ERR {
            bail!(
                "catching signal {signal}: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    Ok(())
}

/// The error of a bench that stopped when asked to; `cargo xtask` exits with 130 for it, as a
/// shell does for a command Ctrl-C ended.
#[derive(Debug)]
pub struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted: the bench stopped and removed its namespaces")
    }
}

impl std::error::Error for Interrupted {}

/// [`Interrupted`] once a stop was asked for.
pub fn check() -> Result<()> {
    if ASKED.load(Ordering::Relaxed) {
        return Err(Interrupted.into());
    }
    Ok(())
}
