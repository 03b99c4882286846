//! Waiting for On-Premises media notifications: the SDK runs no web server; the caller's webhook
//! handler feeds each notification body in, and the retry-downloads waiting for it wake up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use nx_protocol::client::Error;
use nx_protocol::onprem::{
    MediaItemStatus, NotificationError, PendingDownloads, parse_media_notification,
};
use tokio::sync::oneshot;

/// Matches media notifications to the ids being waited for (the matching itself is
/// [`PendingDownloads`], in nx-protocol). Cheap to clone; share one between the code that
/// waits and the webhook handler.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// let hub = nx_async::NotificationHub::new();
/// let expected = hub.expect("media-1"); // before asking for the retry-download
/// // ... in the webhook handler:
/// let body = br#"{"media_items":[{"image":{"id":"media-1","mime_type":"image/jpeg","status":"downloaded"},"type":"image"}]}"#;
/// assert_eq!(hub.feed(body).unwrap(), 1);
/// let status = expected.wait(Duration::from_secs(1)).await.unwrap();
/// assert!(status.is_downloaded());
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct NotificationHub {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    pending: PendingDownloads,
    /// Each id's waiter, with the number of the [`Expected`] that owns it.
    waiters: HashMap<String, (u64, oneshot::Sender<MediaItemStatus>)>,
    next: u64,
}

/// A notification being waited for; see [`NotificationHub::expect`].
#[derive(Debug)]
pub struct Expected {
    id: String,
    number: u64,
    receiver: oneshot::Receiver<MediaItemStatus>,
    hub: NotificationHub,
}

impl NotificationHub {
    /// An empty hub.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts waiting for the notification about `id`. Call it before asking for the
    /// retry-download, so a fast notification cannot be missed. Waiting again for the same id
    /// replaces the earlier wait.
    pub fn expect(&self, id: impl Into<String>) -> Expected {
        let id = id.into();
        let (sender, receiver) = oneshot::channel();
        let mut state = self.state();
        state.next += 1;
        let number = state.next;
        state.pending.register(id.clone());
        state.waiters.insert(id.clone(), (number, sender));
        Expected {
            id,
            number,
            receiver,
            hub: self.clone(),
        }
    }

    /// Feeds one webhook body; returns how many waits it completed. Items for ids nobody waits
    /// for are ignored.
    pub fn feed(&self, body: &[u8]) -> Result<usize, NotificationError> {
        let items = parse_media_notification(body)?;
        let mut state = self.state();
        let done = state.pending.feed(items);
        let mut completed = 0;
        for item in done {
            let waiter = item.id().and_then(|id| state.waiters.remove(id));
            if let Some((_, sender)) = waiter {
                completed += usize::from(sender.send(item).is_ok());
            }
        }
        Ok(completed)
    }

    /// How many ids are being waited for.
    pub fn pending(&self) -> usize {
        self.state().pending.len()
    }

    /// Stops waiting for `id` if wait `number` still owns it.
    fn cancel(&self, id: &str, number: u64) {
        let mut state = self.state();
        if state.waiters.get(id).is_some_and(|(n, _)| *n == number) {
            state.waiters.remove(id);
            state.pending.cancel(id);
        }
    }
}

impl Expected {
    /// The media id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Waits up to `timeout` for the notification.
    pub async fn wait(mut self, timeout: Duration) -> Result<MediaItemStatus, Error> {
        match tokio::time::timeout(timeout, &mut self.receiver).await {
            Ok(Ok(status)) => Ok(status),
            Ok(Err(_)) => Err(Error::Config(format!(
                "the wait for media {} was replaced by a newer one",
                self.id
            ))),
            Err(_) => Err(Error::Timeout {
                during: "waiting for the media notification",
                after: timeout,
            }),
        }
    }
}

impl Drop for Expected {
    fn drop(&mut self) {
        self.hub.cancel(&self.id, self.number);
    }
}
