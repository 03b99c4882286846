//! Waiting for On-Premises media notifications: the SDK runs no web server; the caller's webhook
//! handler feeds each notification body in, and the threads waiting for it wake up.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use nx_protocol::error::Error;
use nx_protocol::onprem::{MediaItemStatus, NotificationError, Waiters, parse_media_notification};

/// Matches media notifications to the ids being waited for (the matching itself is
/// [`Waiters`], in nx-protocol). Cheap to clone; share one between the code that
/// waits and the webhook handler (they may run on different threads).
///
/// ```
/// use std::time::Duration;
/// let hub = nx_blocking::NotificationHub::new();
/// let expected = hub.expect("media-1"); // before asking for the retry-download
/// // ... in the webhook handler:
/// let body = br#"{"media_items":[{"image":{"id":"media-1","mime_type":"image/jpeg","status":"downloaded"},"type":"image"}]}"#;
/// assert_eq!(hub.feed(body).unwrap(), 1);
/// let status = expected.wait(Duration::from_secs(1)).unwrap();
/// assert!(status.is_downloaded());
/// ```
#[derive(Clone, Debug, Default)]
pub struct NotificationHub {
    waiters: Arc<Mutex<Waiters<Arc<Slot>>>>,
}

/// Where one wait's outcome is delivered.
#[derive(Debug, Default)]
struct Slot {
    outcome: Mutex<Outcome>,
    ready: Condvar,
}

#[derive(Debug, Default)]
enum Outcome {
    #[default]
    Waiting,
    Notified(MediaItemStatus),
    /// A newer [`NotificationHub::expect`] for the same id took over.
    Replaced,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, Outcome> {
        self.outcome.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Settles the wait (once: a later outcome does not overwrite the first) and wakes it.
    fn settle(&self, outcome: Outcome) {
        let mut current = self.lock();
        if matches!(*current, Outcome::Waiting) {
            *current = outcome;
        }
        self.ready.notify_all();
    }
}

/// A notification being waited for; see [`NotificationHub::expect`]. Dropping it without
/// waiting stops the wait.
#[derive(Debug)]
pub struct Expected {
    id: String,
    number: u64,
    slot: Arc<Slot>,
    hub: NotificationHub,
}

impl NotificationHub {
    /// An empty hub.
    pub fn new() -> Self {
        Self::default()
    }

    fn waiters(&self) -> MutexGuard<'_, Waiters<Arc<Slot>>> {
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts waiting for the notification about `id`. Call it before asking for the
    /// retry-download, so a fast notification cannot be missed. Waiting again for the same id
    /// replaces the earlier wait.
    pub fn expect(&self, id: impl Into<String>) -> Expected {
        let id = id.into();
        let slot = Arc::new(Slot::default());
        let (number, replaced) = self.waiters().expect(id.clone(), slot.clone());
        if let Some(earlier) = replaced {
            earlier.settle(Outcome::Replaced);
        }
        Expected {
            id,
            number,
            slot,
            hub: self.clone(),
        }
    }

    /// Feeds one webhook body; returns how many waits it completed. Items for ids nobody waits
    /// for are ignored.
    pub fn feed(&self, body: &[u8]) -> Result<usize, NotificationError> {
        let items = parse_media_notification(body)?;
        let done = self.waiters().feed(items);
        let completed = done.len();
        for (slot, item) in done {
            slot.settle(Outcome::Notified(item));
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

    /// Blocks up to `timeout` for the notification.
    pub fn wait(self, timeout: Duration) -> Result<MediaItemStatus, Error> {
        let outcome = {
            let guard = self.slot.lock();
            let (mut guard, _) = self
                .slot
                .ready
                .wait_timeout_while(guard, timeout, |o| matches!(o, Outcome::Waiting))
                .unwrap_or_else(PoisonError::into_inner);
            std::mem::take(&mut *guard)
        };
        match outcome {
            Outcome::Notified(status) => Ok(status),
            Outcome::Replaced => Err(Error::Config(format!(
                "the wait for media {} was replaced by a newer one",
                self.id
            ))),
            Outcome::Waiting => Err(Error::Timeout {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn downloaded(id: &str) -> Vec<u8> {
        format!(
            r#"{{"media_items":[{{"image":{{"id":"{id}","mime_type":"image/jpeg","status":"downloaded"}},"type":"image"}}]}}"#
        )
        .into_bytes()
    }

    #[test]
    fn a_notification_fed_after_expect_completes_the_wait() {
        let hub = NotificationHub::new();
        let expected = hub.expect("m1");
        assert_eq!(expected.id(), "m1");
        assert_eq!(hub.pending(), 1);
        assert_eq!(hub.feed(&downloaded("m1")).unwrap(), 1);
        assert_eq!(hub.pending(), 0);
        let status = expected.wait(Duration::from_secs(1)).unwrap();
        assert!(status.is_downloaded());
        assert_eq!(status.id(), Some("m1"));
    }

    #[test]
    fn a_waiting_thread_wakes_when_another_feeds() {
        let hub = NotificationHub::new();
        let expected = hub.expect("m2");
        let waiter = std::thread::spawn(move || expected.wait(Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(50));
        let started = Instant::now();
        assert_eq!(hub.feed(&downloaded("m2")).unwrap(), 1);
        let status = waiter.join().unwrap().unwrap();
        assert!(status.is_downloaded());
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_notification_fed_before_expect_is_not_kept() {
        let hub = NotificationHub::new();
        assert_eq!(hub.feed(&downloaded("early")).unwrap(), 0);
        let expected = hub.expect("early");
        let err = expected.wait(Duration::from_millis(20)).unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
        assert_eq!(hub.pending(), 0, "a timed-out wait is cancelled");
    }

    #[test]
    fn unknown_ids_are_ignored() {
        let hub = NotificationHub::new();
        let expected = hub.expect("mine");
        assert_eq!(hub.feed(&downloaded("someone-else")).unwrap(), 0);
        assert_eq!(hub.pending(), 1);
        // An item without an id, and a failed one for an unknown id.
        let body = br#"{"media_items":[{"type":"image"},{"errors":[{"code":400,"title":"x"}],"image":{"id":"other"},"type":"image"}]}"#;
        assert_eq!(hub.feed(body).unwrap(), 0);
        assert_eq!(hub.pending(), 1);
        assert_eq!(hub.feed(&downloaded("mine")).unwrap(), 1);
        assert!(
            expected
                .wait(Duration::from_secs(1))
                .unwrap()
                .is_downloaded()
        );
    }

    #[test]
    fn a_failed_download_is_delivered_as_failed() {
        let hub = NotificationHub::new();
        let expected = hub.expect("gone");
        let body = br#"{"media_items":[{"errors":[{"code":400,"title":"Parameter not valid","details":"Media not found in the datastore."}],"image":{"id":"gone","mime_type":"image/jpeg","status":"downloaded"},"type":"image"}]}"#;
        assert_eq!(hub.feed(body).unwrap(), 1);
        let status = expected.wait(Duration::from_secs(1)).unwrap();
        assert!(!status.is_downloaded());
        assert_eq!(status.id(), Some("gone"));
    }

    #[test]
    fn a_body_that_is_not_a_notification_is_refused() {
        let hub = NotificationHub::new();
        let _expected = hub.expect("m");
        assert!(hub.feed(b"not json").is_err());
        assert!(hub.feed(br#"{"messages":[]}"#).is_err());
        assert_eq!(hub.pending(), 1);
    }

    #[test]
    fn expecting_again_replaces_the_earlier_wait() {
        let hub = NotificationHub::new();
        let first = hub.expect("m3");
        let second = hub.expect("m3");
        assert_eq!(hub.pending(), 1);
        let err = first.wait(Duration::from_secs(5)).unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{err:?}");
        // Dropping the replaced wait does not cancel the newer one.
        assert_eq!(hub.pending(), 1);
        assert_eq!(hub.feed(&downloaded("m3")).unwrap(), 1);
        assert!(second.wait(Duration::from_secs(1)).unwrap().is_downloaded());
    }

    #[test]
    fn a_wait_times_out_and_dropping_cancels() {
        let hub = NotificationHub::new();
        let expected = hub.expect("slow");
        let started = Instant::now();
        let err = expected.wait(Duration::from_millis(100)).unwrap_err();
        assert!(started.elapsed() >= Duration::from_millis(100));
        assert!(
            matches!(err, Error::Timeout { after, .. } if after == Duration::from_millis(100)),
            "{err:?}"
        );
        assert_eq!(hub.pending(), 0);
        // A late notification completes nothing.
        assert_eq!(hub.feed(&downloaded("slow")).unwrap(), 0);

        let dropped = hub.expect("never");
        assert_eq!(hub.pending(), 1);
        drop(dropped);
        assert_eq!(hub.pending(), 0);
    }

    #[test]
    fn the_hub_and_its_waits_cross_threads() {
        fn shareable<T: Send + Sync + Clone>() {}
        fn sendable<T: Send + Sync>() {}
        shareable::<NotificationHub>();
        sendable::<Expected>();
    }
}
