//! Running commands: foreground with errors that name the command, background with kill-on-drop.

use std::{
    ffi::OsStr,
    io::{BufRead as _, BufReader, Read},
    process::{Child, Command, ExitStatus, Output, Stdio},
    sync::{
        Arc, Condvar, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

/// How long a background process gets to exit after SIGINT before it is killed.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

static ECHO: AtomicBool = AtomicBool::new(true);

/// Whether background processes started from now on echo their stderr (on by default, so that a
/// failing test shows what they said; `cargo xtask demo` turns it off and prints for itself).
pub fn set_echo(echo: bool) {
    ECHO.store(echo, Ordering::Relaxed);
}

/// `program arg1 arg2 ...` for messages.
pub fn describe(cmd: &Command) -> String {
    let mut text = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

/// A `Command` from a program and its arguments.
pub fn command<I, S>(program: &str, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(program);
    cmd.args(args);
    cmd
}

/// Runs `cmd` to completion; fails unless it exits 0, quoting its stderr.
pub fn run(cmd: &mut Command) -> Result<Output> {
    let output = run_unchecked(cmd)?;
    if !output.status.success() {
        bail!(
            "`{}` failed ({}): {}",
            describe(cmd),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(output)
}

/// Runs `cmd` to completion and returns its output whatever the exit status.
pub fn run_unchecked(cmd: &mut Command) -> Result<Output> {
    cmd.stdin(Stdio::null())
        .output()
        .with_context(|| format!("running `{}`", describe(cmd)))
}

/// Runs `cmd` to completion and returns its stdout as text.
pub fn run_stdout(cmd: &mut Command) -> Result<String> {
    let output = run(cmd)?;
    String::from_utf8(output.stdout)
        .with_context(|| format!("stdout of `{}` is not UTF-8", describe(cmd)))
}

/// Signals understood by [`Background::signal`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Int,
    Term,
    Kill,
}

impl Signal {
    fn raw(self) -> libc::c_int {
        match self {
            Self::Int => libc::SIGINT,
            Self::Term => libc::SIGTERM,
            Self::Kill => libc::SIGKILL,
        }
    }
}

/// Lines a background process printed, shared with the threads that read them.
#[derive(Default)]
struct Lines {
    lines: Mutex<Vec<String>>,
    changed: Condvar,
}

/// A process running in the background; on drop it gets SIGINT, then SIGKILL after [`STOP_TIMEOUT`].
///
/// Its stdout and stderr are collected line by line; stderr is also echoed (prefixed with `label`,
/// see [`set_echo`]) so that a failing test shows what the process said.
pub struct Background {
    label: String,
    description: String,
    child: Child,
    status: Option<ExitStatus>,
    stdout: Arc<Lines>,
    stderr: Arc<Lines>,
    readers: Vec<JoinHandle<()>>,
}

impl Background {
    /// Starts `cmd`; `label` prefixes its echoed stderr.
    pub fn spawn(label: &str, cmd: &mut Command) -> Result<Self> {
        let description = describe(cmd);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting `{description}`"))?;
        let stdout = Arc::new(Lines::default());
        let stderr = Arc::new(Lines::default());
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(collect(out, Arc::clone(&stdout), None));
        }
        if let Some(err) = child.stderr.take() {
            let echo = ECHO.load(Ordering::Relaxed).then(|| label.to_owned());
            readers.push(collect(err, Arc::clone(&stderr), echo));
        }
        Ok(Self {
            label: label.to_owned(),
            description,
            child,
            status: None,
            stdout,
            stderr,
            readers,
        })
    }

    /// The command line, for messages.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The process id (with `ip netns exec`, the program itself: ip execs it).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The lines printed on stderr so far.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lines.lock().expect("stderr lock").clone()
    }

    /// The lines printed on stdout so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lines.lock().expect("stdout lock").clone()
    }

    /// Waits until a stderr line satisfies `pred` and returns it; fails if the process exits first
    /// or `timeout` passes.
    pub fn wait_for_stderr(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Result<String> {
        let deadline = Instant::now() + timeout;
        let mut seen = 0;
        loop {
            {
                let lines = self.stderr.lines.lock().expect("stderr lock");
                if let Some(line) = lines[seen..].iter().find(|l| pred(l)) {
                    return Ok(line.clone());
                }
                seen = lines.len();
                let (_lines, _) = self
                    .stderr
                    .changed
                    .wait_timeout(lines, Duration::from_millis(20))
                    .expect("stderr lock");
            }
            if let Some(status) = self.try_wait()? {
                // Let the readers drain what the process printed last.
                self.join_readers();
                let lines = self.stderr_lines();
                if let Some(line) = lines[seen.min(lines.len())..].iter().find(|l| pred(l)) {
                    return Ok(line.clone());
                }
                bail!(
                    "`{}` exited ({status}) before {what}; its stderr:\n{}",
                    self.description,
                    lines.join("\n")
                );
            }
            if Instant::now() >= deadline {
                bail!(
                    "`{}` did not print {what} within {timeout:?}",
                    self.description
                );
            }
        }
    }

    /// The exit status if the process has exited.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = self
                .child
                .try_wait()
                .with_context(|| format!("checking whether `{}` exited", self.description))?;
        }
        Ok(self.status)
    }

    /// Sends `signal` (no-op once the process has been reaped).
    pub fn signal(&mut self, signal: Signal) -> Result<()> {
        if self.try_wait()?.is_some() {
            return Ok(());
        }
        let pid = libc::pid_t::try_from(self.child.id()).context("pid out of range")?;
        // SAFETY: kill(2) on a child we have not reaped yet, so the pid still names it.
        if unsafe { libc::kill(pid, signal.raw()) } != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("sending {signal:?} to `{}`", self.description));
        }
        Ok(())
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait()? {
                self.join_readers();
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the process to exit on its own, killing it after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> Result<ExitStatus> {
        if let Some(status) = self.wait_timeout(timeout)? {
            return Ok(status);
        }
        self.kill_and_reap()?;
        bail!(
            "`{}` did not exit within {timeout:?}; killed it",
            self.description
        )
    }

    /// Sends `signal` and waits for the exit, killing the process if it outlives [`STOP_TIMEOUT`].
    pub fn stop_with(&mut self, signal: Signal) -> Result<ExitStatus> {
        self.signal(signal)?;
        if let Some(status) = self.wait_timeout(STOP_TIMEOUT)? {
            return Ok(status);
        }
        self.kill_and_reap()?;
        bail!(
            "`{}` ignored {signal:?} for {STOP_TIMEOUT:?}; killed it",
            self.description
        )
    }

    /// SIGINT, then wait; see [`Background::stop_with`].
    pub fn stop(&mut self) -> Result<ExitStatus> {
        self.stop_with(Signal::Int)
    }

    fn kill_and_reap(&mut self) -> Result<()> {
        self.signal(Signal::Kill)?;
        let status = self
            .child
            .wait()
            .with_context(|| format!("reaping `{}`", self.description))?;
        self.status = Some(status);
        self.join_readers();
        Ok(())
    }

    fn join_readers(&mut self) {
        for reader in self.readers.drain(..) {
            // A reader only ends at EOF; a grandchild holding the pipe would block us, so give
            // up waiting after a while rather than hang the test.
            let deadline = Instant::now() + Duration::from_secs(2);
            while !reader.is_finished() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(5));
            }
            if reader.is_finished() {
                let _ = reader.join();
            }
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if matches!(self.try_wait(), Ok(Some(_))) {
            return;
        }
        if let Err(err) = self.stop() {
            eprintln!("[{}] cleanup: {err:#}", self.label);
        }
    }
}

fn collect(
    stream: impl Read + Send + 'static,
    into: Arc<Lines>,
    echo: Option<String>,
) -> JoinHandle<()> {
    thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if let Some(label) = &echo {
                eprintln!("[{label}] {line}");
            }
            into.lines.lock().expect("line lock").push(line);
            into.changed.notify_all();
        }
    })
}
