//! Ctrl-C (SIGINT), SIGTERM and SIGHUP during a download: the staging directory of the download
//! under way is removed before the process ends by that signal (a shell reports 130, 143 or
//! 129: 128 + the signal's number; [`die_by`]), so an interrupted download leaves nothing beside
//! its target; the end is reported as every failure is (with `--json`, one line of
//! `"kind":"interrupted"`). A command
//! that stops itself cleanly on a signal (the archive, which aborts its uploads in flight and
//! records what was verified) waits for the same signals with [`Signals`] instead.
//!
//! The registry holds the staging directories that exist right now (one per download; the CLI
//! runs one at a time). A [`Registered`] directory is removed under the registry's lock, both on
//! drop and by the signal thread, so the two can never race: whichever takes the lock first
//! removes it, and the other finds nothing to do. The signals are waited for on a thread of its
//! own with tokio's signal support (already the sandbox's), installed before the first request.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use crate::exit::{CliError, Exit};
use crate::output::Output;

/// The staging directories to remove if a signal arrives.
static REGISTRY: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn registry() -> MutexGuard<'static, Vec<PathBuf>> {
    // A panic elsewhere cannot leave the list half-changed (pushes and retains are whole).
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A temporary directory that a signal removes too; dropping it removes it.
pub(crate) struct Registered(Option<tempfile::TempDir>);

impl Registered {
    /// Registers `dir`.
    pub(crate) fn new(dir: tempfile::TempDir) -> Self {
        registry().push(dir.path().to_path_buf());
        Self(Some(dir))
    }

    /// The directory's path.
    pub(crate) fn path(&self) -> &std::path::Path {
        self.0
            .as_ref()
            .map_or(std::path::Path::new(""), |d| d.path())
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut list = registry();
        if let Some(dir) = self.0.take() {
            list.retain(|p| p != dir.path());
            // Removed while the lock is held: the signal thread cannot exit half-way through.
            let _ = dir.close();
        }
    }
}

/// Removes every registered directory, reports the interruption on `out` and exits with
/// `code`.
fn clean_up_and_exit(code: u8, out: Output) -> ! {
    let list = registry();
    for dir in list.iter() {
        let _ = std::fs::remove_dir_all(dir);
    }
    let signal = match code {
        130 => "SIGINT",
        143 => "SIGTERM",
        _ => "SIGHUP",
    };
    // The lock is kept: the command cannot finish (and print a result) while this is printed.
    out.error(&CliError::new(
        Exit::Signal(code),
        format!("stopped by {signal} before the transfer finished"),
    ));
    die_by(code)
}

/// Ends the process by the signal whose exit `code` (128 + its number) it reports, once the
/// command has cleaned up: the default action of that signal, so the parent sees a process
/// killed by it, not one that exited. A shell waiting in a loop (`for id in ...; do nxcloud
/// ...; done`) stops the loop only then; an exit with 130 reads as a command that handled the
/// signal and carried on. Falls back to exiting with `code`.
pub(crate) fn die_by(code: u8) -> ! {
    #[cfg(unix)]
    let _ = signal_hook::low_level::emulate_default_handler(i32::from(code) - 128);
    std::process::exit(i32::from(code))
}

/// Installs the handlers (once per process): from now on SIGINT, SIGTERM and SIGHUP remove the
/// registered directories, report it on `out` and end the process by the signal ([`die_by`]).
pub(crate) fn install(out: Output) -> Result<(), CliError> {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    if INSTALLED.get().is_some() {
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| CliError::io("starting the signal handler", e))?;
    #[cfg(unix)]
    let wait = {
        use tokio::signal::unix::{SignalKind, signal};
        let _entered = runtime.enter();
        let listen =
            |kind| signal(kind).map_err(|e| CliError::io("installing a signal handler", e));
        // Each stream is registered here, before any request is sent.
        let (mut int, mut term, mut hup) = (
            listen(SignalKind::interrupt())?,
            listen(SignalKind::terminate())?,
            listen(SignalKind::hangup())?,
        );
        async move {
            tokio::select! {
                _ = int.recv() => 130u8,
                _ = term.recv() => 143,
                _ = hup.recv() => 129,
            }
        }
    };
    #[cfg(not(unix))]
    let wait = async {
        let _ = tokio::signal::ctrl_c().await;
        130u8
    };
    std::thread::Builder::new()
        .name("nxcloud-signals".into())
        .spawn(move || clean_up_and_exit(runtime.block_on(wait), out))
        .map_err(|e| CliError::io("starting the signal handler", e))?;
    let _ = INSTALLED.set(());
    Ok(())
}

/// SIGINT, SIGTERM and SIGHUP as a stream, for a command that stops itself on one (in a tokio
/// runtime). Registered when made: a signal that arrives after that is never lost.
pub(crate) struct Signals {
    #[cfg(unix)]
    streams: [tokio::signal::unix::Signal; 3],
}

impl Signals {
    /// Registers the handlers (inside a runtime).
    pub(crate) fn new() -> Result<Self, CliError> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let listen =
                |kind| signal(kind).map_err(|e| CliError::io("installing a signal handler", e));
            Ok(Self {
                streams: [
                    listen(SignalKind::interrupt())?,
                    listen(SignalKind::terminate())?,
                    listen(SignalKind::hangup())?,
                ],
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Waits for the next signal: the code to exit with (130, 143, 129).
    pub(crate) async fn next(&mut self) -> u8 {
        #[cfg(unix)]
        {
            let [int, term, hup] = &mut self.streams;
            tokio::select! {
                _ = int.recv() => 130,
                _ = term.recv() => 143,
                _ = hup.recv() => 129,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            130
        }
    }
}
