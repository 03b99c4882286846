//! Waiting for On-Premises media notifications: the SDK runs no web server; the caller's webhook
//! handler feeds each notification body in, and the retry-downloads waiting for it wake up.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use nx_protocol::error::Error;
use nx_protocol::onprem::{MediaItemStatus, NotificationError, Waiters, parse_media_notification};
use tokio::sync::oneshot;

/// Matches media notifications to the ids being waited for (the matching itself is
/// [`Waiters`], in nx-protocol). Cheap to clone; share one between the code that
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
    waiters: Arc<Mutex<Waiters<oneshot::Sender<MediaItemStatus>>>>,
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

    fn waiters(&self) -> MutexGuard<'_, Waiters<oneshot::Sender<MediaItemStatus>>> {
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts waiting for the notification about `id`. Call it before asking for the
    /// retry-download, so a fast notification cannot be missed. Waiting again for the same id
    /// replaces the earlier wait (which then ends with an error).
    pub fn expect(&self, id: impl Into<String>) -> Expected {
        let id = id.into();
        let (sender, receiver) = oneshot::channel();
        // The replaced sender is dropped here, which ends the earlier wait.
        let (number, _replaced) = self.waiters().expect(id.clone(), sender);
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
        let done = self.waiters().feed(items);
        let mut completed = 0;
        for (sender, item) in done {
            completed += usize::from(sender.send(item).is_ok());
        }
        Ok(completed)
    }

    /// How many ids are being waited for.
    pub fn pending(&self) -> usize {
        self.waiters().len()
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
                phase: nx_protocol::call::Phase::Notification,
                limit: nx_protocol::call::Limit::Wait,
                after: timeout,
                // A notification comes from no server the client waits on.
                host: None,
                proxy: None,
            }),
        }
    }
}

impl Drop for Expected {
    fn drop(&mut self) {
        self.hub.waiters().cancel(&self.id, self.number);
    }
}
