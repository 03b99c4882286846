//! Ctrl-C (SIGINT), SIGTERM and SIGHUP during a transfer: the staging directory of a download
//! under way is removed before the process ends by that signal (a shell reports 130, 143 or
//! 129: 128 + the signal's number; [`die_by`]), so an interrupted download leaves nothing beside
//! its target; the end is reported as every failure is (with `--json`, one line of
//! `"kind":"interrupted"`), saying what is true of what was [`Underway`]: an upload or a send
//! leaves nothing locally, but may or may not have reached the server. A command
//! that stops itself cleanly on a signal (the archive, which aborts its uploads in flight and
//! records what was verified) waits for the same signals with [`Signals`] instead.
//!
//! The registry holds what is under way and the staging directories that exist right now (one
//! per download; the CLI runs one at a time). A [`Registered`] directory is removed under the
//! registry's lock, both on drop and by the signal thread, so the two can never race: whichever
//! takes the lock first removes it, and the other finds nothing to do. The signals are waited for on a thread of its
//! own with tokio's signal support (already the sandbox's), installed before the first request.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use crate::exit::{CliError, Exit};
use crate::output::Output;

/// What a signal stops, for the report of it.
#[derive(Debug)]
pub(crate) enum Underway {
    /// A download (its staging directory, if any, is removed).
    Download,
    /// An upload (`media upload`, `onprem media upload`).
    Upload,
    /// The upload of `media send FILE`, before its message is sent.
    UploadToSend,
    /// Sending a message (`media send`); `media_id` is the file `media send FILE` uploaded for it.
    Send {
        /// The media id the upload step received.
        media_id: Option<String>,
    },
}

/// What a signal finds.
struct Registry {
    /// The staging directories to remove.
    staged: Vec<PathBuf>,
    /// What the report says was stopped.
    underway: Underway,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    staged: Vec::new(),
    underway: Underway::Download,
});

fn registry() -> MutexGuard<'static, Registry> {
    // A panic elsewhere cannot leave the registry half-changed (each change is whole).
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A temporary directory that a signal removes too; dropping it removes it.
pub(crate) struct Registered(Option<tempfile::TempDir>);

impl Registered {
    /// Registers `dir`.
    pub(crate) fn new(dir: tempfile::TempDir) -> Self {
        registry().staged.push(dir.path().to_path_buf());
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
        let mut registry = registry();
        if let Some(dir) = self.0.take() {
            registry.staged.retain(|p| p != dir.path());
            // Removed while the lock is held: the signal thread cannot exit half-way through.
            let _ = dir.close();
        }
    }
}

/// Removes every registered directory, reports the interruption on `out` and exits with
/// `code`.
fn clean_up_and_exit(code: u8, out: Output) -> ! {
    let registry = registry();
    for dir in &registry.staged {
        let _ = std::fs::remove_dir_all(dir);
    }
    // The lock is kept: the command cannot finish (and print a result) while this is printed.
    out.error(&report(code, &registry.underway));
    die_by(code)
}

/// The report of a stop by the signal whose exit `code` it is, during `underway`: what is left
/// and what may have happened on the server. An upload or a send is one request whose answer
/// never came: the server may have carried it out (the body had reached it) or not.
fn report(code: u8, underway: &Underway) -> CliError {
    let signal = match code {
        130 => "SIGINT",
        143 => "SIGTERM",
        _ => "SIGHUP",
    };
    let stopped = |message: String| CliError::new(Exit::Signal(code), message);
    match underway {
        Underway::Download => stopped(format!(
            "stopped by {signal} before the transfer finished"
        )),
        Underway::Upload => stopped(format!(
            "stopped by {signal} during the upload: the file may or may not have reached the server"
        ))
        .with_hint(
            "nothing was left locally; a media id the server may have made never arrived: upload the file again",
        ),
        Underway::UploadToSend => stopped(format!(
            "stopped by {signal} while uploading the file (step 1/2): it may or may not have reached the server; no message was sent"
        ))
        .with_hint("nothing was left locally: run the same command again"),
        Underway::Send { media_id } => {
            let mut hint = "check whether it went out before sending it again (its status callbacks reach the account's webhook, or the --dr-webhook URL): a second send may deliver it twice".to_owned();
            if let Some(id) = media_id {
                hint.push_str(&format!(
                    "; the file stays uploaded as media id {id} (`nxcloud media get --id {id}` shows it): send that with --id rather than uploading it again"
                ));
            }
            stopped(format!(
                "stopped by {signal} while sending the message: it may or may not have been delivered"
            ))
            .with_hint(hint)
        }
    }
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

/// Notes that `underway` is what runs now and installs the handlers (once per process; a
/// command with several steps calls this before each): from now on SIGINT, SIGTERM and SIGHUP
/// remove the registered directories, report what they stopped on `out` and end the process by
/// the signal ([`die_by`]).
pub(crate) fn install(out: Output, underway: Underway) -> Result<(), CliError> {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    registry().underway = underway;
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
