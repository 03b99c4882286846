//! Waiting for the sandbox to stop: every long wait (accept, stalls, drips) races this.

use tokio::sync::watch;

/// Returns once shutdown was asked for (or the sender is gone).
pub(crate) async fn wait_shutdown(rx: &mut watch::Receiver<bool>) {
    // A dropped sender also means shutdown.
    let _ = rx.wait_for(|stop| *stop).await;
}
