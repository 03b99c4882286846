//! The media notification the client POSTs to the business's webhook when a (re-)download
//! finished, and the matching of those notifications to the downloads a caller asked for.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::download::Sha256Digest;
use crate::onprem::error::{MetaError, errors_of};
use crate::time::Timestamp;

/// The `status` of a stored media item.
pub const DOWNLOADED: &str = "downloaded";

/// The values of an item's `type`, each naming the key of the item's inner media object.
pub const NOTIFICATION_MEDIA_TYPES: [&str; 6] =
    ["image", "video", "audio", "document", "sticker", "voice"];

/// The outcome of one `media_items` entry of a media notification.
///
/// Both the enum and its variants may grow: match with `..` and a wildcard arm.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MediaItemStatus {
    /// The item carries no errors, names its media, and its `status` is `downloaded` (or absent):
    /// the client stored it.
    #[non_exhaustive]
    Downloaded {
        /// The media id.
        id: String,
        /// The item's `type` (image, video, audio, document, sticker, voice, or one this
        /// library does not know).
        kind: String,
        /// The MIME type, when given.
        mime_type: Option<String>,
        /// The file's SHA-256, when given as 64 hex characters: check the download against it.
        sha256: Option<Sha256Digest>,
        /// The `status` as the client wrote it (`downloaded`), when given.
        status: Option<String>,
    },
    /// The item carries an `errors` array, has a `status` other than `downloaded` (e.g. the
    /// media is no longer available), or does not say which media it is about: nothing says
    /// the media was stored.
    #[non_exhaustive]
    Failed {
        /// The media id, unless the item lacks its inner object (or the object its id).
        id: Option<String>,
        /// The item's `type`, when given.
        kind: Option<String>,
        /// The error objects that could be read (empty if there were none, or none readable).
        errors: Vec<MetaError>,
        /// The `status` as the client wrote it, when given (a failed item may still say
        /// `downloaded`, as in Meta's own example of a failure).
        status: Option<String>,
    },
}

impl MediaItemStatus {
    /// A stored media `id` of type `kind`, without MIME type, digest or `status`.
    pub fn downloaded(id: impl Into<String>, kind: impl Into<String>) -> Self {
        MediaItemStatus::Downloaded {
            id: id.into(),
            kind: kind.into(),
            mime_type: None,
            sha256: None,
            status: None,
        }
    }

    /// A failed item about `id` (if known) with these errors, without type or `status`.
    pub fn failed(id: Option<String>, errors: Vec<MetaError>) -> Self {
        MediaItemStatus::Failed {
            id,
            kind: None,
            errors,
            status: None,
        }
    }

    /// The media id, if the item names one.
    pub fn id(&self) -> Option<&str> {
        match self {
            MediaItemStatus::Downloaded { id, .. } => Some(id),
            MediaItemStatus::Failed { id, .. } => id.as_deref(),
        }
    }

    /// The item's `type`, if known.
    pub fn kind(&self) -> Option<&str> {
        match self {
            MediaItemStatus::Downloaded { kind, .. } => Some(kind),
            MediaItemStatus::Failed { kind, .. } => kind.as_deref(),
        }
    }

    /// Whether the media was stored.
    pub fn is_downloaded(&self) -> bool {
        matches!(self, MediaItemStatus::Downloaded { .. })
    }
}

/// Why a notification body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotificationError {
    /// Not JSON, or not an object with a `media_items` array.
    #[error("not a WhatsApp On-Premises media notification: {0}")]
    Shape(String),
    /// A `media_items` entry is not a JSON object.
    #[error("media_items[{index}] is not a JSON object")]
    Item {
        /// The entry's index.
        index: usize,
    },
}

fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn has_errors(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null) => false,
        Some(Value::Array(items)) => !items.is_empty(),
        Some(_) => true,
    }
}

fn item_status(item: &Map<String, Value>) -> MediaItemStatus {
    let declared = item.get("type").and_then(Value::as_str);
    // The inner object's key is the value of `type`; without a `type`, the first known kind
    // whose key holds an object.
    let (kind, inner) = match declared {
        Some(kind) => (Some(kind), item.get(kind).and_then(Value::as_object)),
        None => NOTIFICATION_MEDIA_TYPES
            .iter()
            .find_map(|&kind| item.get(kind)?.as_object().map(|inner| (kind, inner)))
            .map_or((None, None), |(kind, inner)| (Some(kind), Some(inner))),
    };
    let id = inner.and_then(|o| text(o.get("id")));
    let inner_errors = inner.and_then(|o| o.get("errors"));
    let status = inner.and_then(|o| text(o.get("status")));
    // Reading: `downloaded` (any ASCII case) or no `status` at all means stored, as long as no
    // `errors` say otherwise; any other status (the spec names the case "the media is
    // unavailable") means it was not.
    let not_stored = status
        .as_deref()
        .is_some_and(|s| !s.eq_ignore_ascii_case(DOWNLOADED));
    let failed = has_errors(item.get("errors")) || has_errors(inner_errors) || not_stored;
    match (id, kind, inner) {
        (Some(id), Some(kind), Some(inner)) if !failed => MediaItemStatus::Downloaded {
            id,
            kind: kind.to_owned(),
            mime_type: text(inner.get("mime_type")),
            sha256: inner
                .get("sha256")
                .and_then(Value::as_str)
                .and_then(Sha256Digest::from_hex),
            status,
        },
        (id, kind, _) => {
            let mut errors = item.get("errors").map(errors_of).unwrap_or_default();
            errors.extend(inner_errors.map(errors_of).unwrap_or_default());
            MediaItemStatus::Failed {
                id,
                kind: kind.map(str::to_owned),
                errors,
                status,
            }
        }
    }
}

/// Parses a media notification the On-Premises client POSTed to the webhook:
/// `{"media_items":[{"image":{"id":..,"mime_type":..,"sha256":..,"status":"downloaded"},"type":"image"}]}`,
/// an item that also carries an `errors` array being a failure. One [`MediaItemStatus`] per item,
/// in order.
///
/// Accepted: unknown extra fields, a `status` other than `downloaded` (the item is then
/// [`MediaItemStatus::Failed`], keeping the status), a missing inner object (the item is then
/// [`MediaItemStatus::Failed`] with an unknown id), a `sha256` that is not 64
/// hex characters (read as absent). Refused with an error: anything that is not a JSON object
/// with a `media_items` array of objects, including Meta's own (invalid JSON) examples. Never
/// panics.
///
/// ```
/// use nx_protocol::onprem::{parse_media_notification, MediaItemStatus, MetaCode};
/// let body = br#"{"media_items":[
///   {"image":{"id":"m1","mime_type":"image/jpeg","status":"downloaded",
///     "sha256":"0ed3d9d4db83ed7751314af5f2e9bf008edc49a101bebb9054a97f824cf2136b"},"type":"image"},
///   {"errors":[{"code":400,"title":"Parameter not valid","details":"Media not found in the datastore."}],
///    "voice":{"id":"m2","mime_type":"audio/ogg","sha256":"","status":"downloaded"},"type":"voice"}]}"#;
/// let items = parse_media_notification(body).unwrap();
/// assert!(matches!(&items[0], MediaItemStatus::Downloaded { id, sha256: Some(_), .. } if id == "m1"));
/// let MediaItemStatus::Failed { id, errors, .. } = &items[1] else { panic!() };
/// assert_eq!(id.as_deref(), Some("m2"));
/// assert_eq!(errors[0].code, MetaCode::new(400));
/// ```
pub fn parse_media_notification(body: &[u8]) -> Result<Vec<MediaItemStatus>, NotificationError> {
    #[derive(Deserialize)]
    struct Body {
        media_items: Vec<Value>,
    }
    let body: Body =
        serde_json::from_slice(body).map_err(|e| NotificationError::Shape(e.to_string()))?;
    body.media_items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            item.as_object()
                .map(item_status)
                .ok_or(NotificationError::Item { index })
        })
        .collect()
}

/// The re-downloads a caller is waiting for, matched against incoming notifications. Sans-IO:
/// the caller registers the ids it asked a [`crate::onprem::RetryDownload`] for, feeds every
/// parsed notification, and gets back the outcomes of registered ids, each id once. Transports
/// wrap it with channels and timers.
///
/// ```
/// use nx_protocol::onprem::{parse_media_notification, PendingDownloads};
/// use nx_protocol::Timestamp;
///
/// let mut pending = PendingDownloads::new();
/// pending.register("m1");
/// pending.register_until("m2", Timestamp::from_millis(60_000));
///
/// let body = br#"{"media_items":[
///   {"image":{"id":"other","status":"downloaded"},"type":"image"},
///   {"image":{"id":"m1","mime_type":"image/jpeg","status":"downloaded"},"type":"image"}]}"#;
/// let done = pending.feed(parse_media_notification(body).unwrap());
/// assert_eq!(done.len(), 1); // "other" was not asked for
/// assert_eq!(done[0].id(), Some("m1"));
/// assert!(done[0].is_downloaded());
///
/// // The same notification again completes nothing: each id completes once.
/// assert!(pending.feed(parse_media_notification(body).unwrap()).is_empty());
///
/// // "m2" never came: give up on it at its deadline.
/// assert_eq!(pending.next_deadline(), Some(Timestamp::from_millis(60_000)));
/// assert_eq!(pending.take_expired(Timestamp::from_millis(60_000)), ["m2"]);
/// assert!(pending.is_empty());
/// ```
#[derive(Clone, Debug, Default)]
pub struct PendingDownloads {
    /// Pending id -> the instant to give up waiting, if any.
    pending: BTreeMap<String, Option<Timestamp>>,
}

impl PendingDownloads {
    /// Nothing pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits for the outcome of `id`, without a deadline. Returns whether it was not already
    /// pending (an id is pending at most once; registering it again keeps a single wait and
    /// removes any deadline).
    pub fn register(&mut self, id: impl Into<String>) -> bool {
        self.pending.insert(id.into(), None).is_none()
    }

    /// Waits for the outcome of `id` until `deadline` (see [`PendingDownloads::take_expired`]).
    /// Returns whether it was not already pending; if it was, the deadline is replaced.
    pub fn register_until(&mut self, id: impl Into<String>, deadline: Timestamp) -> bool {
        self.pending.insert(id.into(), Some(deadline)).is_none()
    }

    /// Stops waiting for `id`; returns whether it was pending.
    pub fn cancel(&mut self, id: &str) -> bool {
        self.pending.remove(id).is_some()
    }

    /// Whether `id` is pending.
    pub fn is_pending(&self, id: &str) -> bool {
        self.pending.contains_key(id)
    }

    /// How many ids are pending.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The pending ids, in ascending order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.pending.keys().map(String::as_str)
    }

    /// Takes in the items of a notification and returns those that complete a pending id, in
    /// order; those ids stop being pending. Items of ids nobody registered, items without an
    /// id, and a second item for an id completed earlier are ignored.
    pub fn feed(
        &mut self,
        items: impl IntoIterator<Item = MediaItemStatus>,
    ) -> Vec<MediaItemStatus> {
        items
            .into_iter()
            .filter(|item| {
                item.id()
                    .is_some_and(|id| self.pending.remove(id).is_some())
            })
            .collect()
    }

    /// The earliest deadline of the pending ids, if any has one: when to call
    /// [`PendingDownloads::take_expired`] next.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.pending.values().flatten().min().copied()
    }

    /// Removes and returns the ids whose deadline is at or before `now`, in ascending order.
    pub fn take_expired(&mut self, now: Timestamp) -> Vec<String> {
        let expired: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, deadline)| deadline.is_some_and(|d| d <= now))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            self.pending.remove(id);
        }
        expired
    }
}

/// The waits for notifications a transport keeps: for each id, the transport's wake-up handle
/// `S` (a channel sender, a condition slot) and the number of the wait that owns it, so a
/// replaced or abandoned wait can only cancel itself. Matching follows [`PendingDownloads`]'
/// rule: items nobody waits for are ignored, and each wait completes once.
#[derive(Debug)]
pub struct Waiters<S> {
    waiters: std::collections::HashMap<String, (u64, S)>,
    next: u64,
}

impl<S> Default for Waiters<S> {
    fn default() -> Self {
        Self {
            waiters: Default::default(),
            next: 0,
        }
    }
}

impl<S> Waiters<S> {
    /// No waits.
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits for `id` with `handle`; returns the wait's number and the handle of the wait it
    /// replaced, if any (whose owner should be told it was replaced).
    pub fn expect(&mut self, id: impl Into<String>, handle: S) -> (u64, Option<S>) {
        let id = id.into();
        self.next += 1;
        let replaced = self.waiters.insert(id, (self.next, handle)).map(|(_, h)| h);
        (self.next, replaced)
    }

    /// Matches notification items to the waits; returns each completed wait's handle with its
    /// item. Items nobody waits for are ignored; each wait completes once.
    pub fn feed(
        &mut self,
        items: impl IntoIterator<Item = MediaItemStatus>,
    ) -> Vec<(S, MediaItemStatus)> {
        items
            .into_iter()
            .filter_map(|item| {
                let (_, handle) = self.waiters.remove(item.id()?)?;
                Some((handle, item))
            })
            .collect()
    }

    /// Ends wait `number` on `id`, if it still owns that id.
    pub fn cancel(&mut self, id: &str, number: u64) -> bool {
        if self.waiters.get(id).is_some_and(|(n, _)| *n == number) {
            self.waiters.remove(id);
            return true;
        }
        false
    }

    /// How many ids are waited for.
    pub fn len(&self) -> usize {
        self.waiters.len()
    }

    /// Whether nothing is waited for.
    pub fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::onprem::error::MetaCode;

    const SHA: &str = "0ed3d9d4db83ed7751314af5f2e9bf008edc49a101bebb9054a97f824cf2136b";

    #[test]
    fn the_documented_forms() {
        let ok = format!(
            r#"{{"media_items":[{{"image":{{"id":"m1","mime_type":"image/jpeg","sha256":"{SHA}","status":"downloaded"}},"type":"image"}}]}}"#
        );
        assert_eq!(
            parse_media_notification(ok.as_bytes()).unwrap(),
            [MediaItemStatus::Downloaded {
                id: "m1".into(),
                kind: "image".into(),
                mime_type: Some("image/jpeg".into()),
                sha256: Sha256Digest::from_hex(SHA),
                status: Some("downloaded".into()),
            }]
        );

        let failed = format!(
            r#"{{"media_items":[{{"errors":[{{"code":400,"title":"Parameter not valid","details":"Media not found in the datastore."}}],
                "image":{{"id":"m1","mime_type":"image/jpeg","sha256":"{SHA}","status":"downloaded"}},"type":"image"}}]}}"#
        );
        assert_eq!(
            parse_media_notification(failed.as_bytes()).unwrap(),
            [MediaItemStatus::Failed {
                id: Some("m1".into()),
                kind: Some("image".into()),
                errors: vec![MetaError {
                    code: MetaCode::new(400),
                    title: "Parameter not valid".into(),
                    details: Some("Media not found in the datastore.".into()),
                }],
                status: Some("downloaded".into()),
            }]
        );
    }

    #[test]
    fn every_kind_and_lenient_forms() {
        for kind in NOTIFICATION_MEDIA_TYPES {
            let body = format!(
                r#"{{"media_items":[{{"{kind}":{{"id":"x-{kind}","status":"downloaded"}},"type":"{kind}"}}]}}"#
            );
            let items = parse_media_notification(body.as_bytes()).unwrap();
            assert_eq!(items[0].id(), Some(format!("x-{kind}").as_str()));
            assert_eq!(items[0].kind(), Some(kind));
            assert!(items[0].is_downloaded());
        }

        let body = br#"{"extra":true,"media_items":[
            {"type":"video","video":{"id":"v","status":"unavailable","new":1},"more":[1,2]},
            {"type":"image"},
            {"type":"image","image":null,"errors":[{"code":1006,"title":"Not found"}]},
            {"document":{"id":42,"sha256":"nothex","mime_type":"application/pdf"}},
            {"type":"gif","gif":{"id":"g"}},
            {"type":"audio","audio":{"id":"a"},"errors":[]},
            {"type":"audio","audio":{"id":"b"},"errors":[{"title":"no code"}]},
            {"type":"audio","audio":{"id":"c","errors":[{"code":1014}]}},
            {"type":"image","image":{"id":""}},
            {}
        ]}"#;
        let items = parse_media_notification(body).unwrap();
        assert_eq!(items.len(), 10);
        // A status other than `downloaded` is not stored, and is kept as it is.
        assert!(matches!(&items[0],
            MediaItemStatus::Failed { id: Some(id), status: Some(s), errors, .. }
                if id == "v" && s == "unavailable" && errors.is_empty()));
        assert!(!items[0].is_downloaded());
        // Missing inner object: the id is unknown.
        assert_eq!(
            items[1],
            MediaItemStatus::Failed {
                id: None,
                kind: Some("image".into()),
                errors: vec![],
                status: None,
            }
        );
        assert!(matches!(&items[2],
            MediaItemStatus::Failed { id: None, errors, .. } if errors[0].code == MetaCode::NOT_FOUND));
        // No `type`: found under a known kind's key; numeric id; bad digest read as absent.
        assert!(matches!(&items[3],
            MediaItemStatus::Downloaded { id, kind, sha256: None, status: None, .. }
                if id == "42" && kind == "document"));
        // A `type` this library does not know still names its object.
        assert_eq!(items[4].id(), Some("g"));
        assert!(items[4].is_downloaded());
        // An empty `errors` array is no error; an unreadable one still is.
        assert!(items[5].is_downloaded());
        assert!(matches!(&items[6],
            MediaItemStatus::Failed { id: Some(id), errors, .. } if id == "b" && errors.is_empty()));
        assert!(matches!(&items[7],
            MediaItemStatus::Failed { errors, .. } if errors[0].code == MetaCode::INTERNAL_ERROR));
        assert_eq!(items[8].id(), None);
        assert_eq!(
            items[9],
            MediaItemStatus::Failed {
                id: None,
                kind: None,
                errors: vec![],
                status: None,
            }
        );

        assert_eq!(
            parse_media_notification(br#"{"media_items":[]}"#).unwrap(),
            []
        );

        // Stored only when the status says `downloaded` (any case) or says nothing.
        for (status, stored) in [
            (r#""downloaded""#, true),
            (r#""DOWNLOADED""#, true),
            ("null", true),
            (r#""unavailable""#, false),
            (r#""failed""#, false),
            (r#""""#, true),
            ("7", false),
        ] {
            let body = format!(
                r#"{{"media_items":[{{"type":"image","image":{{"id":"m","status":{status}}}}}]}}"#
            );
            let items = parse_media_notification(body.as_bytes()).unwrap();
            assert_eq!(items[0].is_downloaded(), stored, "status {status}");
            assert_eq!(items[0].id(), Some("m"));
        }
    }

    /// Meta's reference pages show these payloads without commas and quotes. They are not
    /// JSON, and are refused with an error.
    #[test]
    fn metas_invalid_examples_are_refused() {
        let success = br#"{
  "media_items": [
    {
      "image": {
        "id": "media-id"
        "mime_type": "image/jpeg"
        "sha256": "checksum"
        "status": "downloaded"
      },
      "type": "image"
    }
  ]
}"#;
        let failure = br#"{
  "media_items": [
    {
      "errors": [
        {
          "code": 400,
          "title": "Parameter not valid",
          "details": "Media not found in the datastore."
        }
      ]
      "image": {
        id: "media-id"
        mime_type: "image/jpeg"
        sha256: "checksum"
        status: "downloaded"
      },
      "type": "image"
    }
  ]
}"#;
        for body in [&success[..], &failure[..]] {
            assert!(matches!(
                parse_media_notification(body),
                Err(NotificationError::Shape(_))
            ));
        }
        for body in [
            &b""[..],
            b"null",
            b"[]",
            b"{}",
            br#"{"media_items":{}}"#,
            br#"{"media_items":null}"#,
            b"\xff\xfe\x00",
            br#"{"media_items":[{"image":{"id":"x"}}"#,
        ] {
            assert!(
                matches!(
                    parse_media_notification(body),
                    Err(NotificationError::Shape(_))
                ),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert_eq!(
            parse_media_notification(br#"{"media_items":[{},"x"]}"#),
            Err(NotificationError::Item { index: 1 })
        );
        // Deep nesting hits serde_json's recursion limit: an error, not a stack overflow.
        let deep = format!(
            r#"{{"media_items":[{{"x":{}1{}}}]}}"#,
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        assert!(parse_media_notification(deep.as_bytes()).is_err());
    }

    fn downloaded(id: &str) -> MediaItemStatus {
        MediaItemStatus::Downloaded {
            id: id.into(),
            kind: "image".into(),
            mime_type: None,
            sha256: None,
            status: Some("downloaded".into()),
        }
    }

    #[test]
    fn pending_downloads_complete_once() {
        let mut pending = PendingDownloads::new();
        assert!(pending.register("a"));
        assert!(pending.register("b"));
        assert!(!pending.register("a"));
        assert_eq!(pending.len(), 2);
        assert_eq!(pending.ids().collect::<Vec<_>>(), ["a", "b"]);

        let failed_b = MediaItemStatus::Failed {
            id: Some("b".into()),
            kind: Some("image".into()),
            errors: vec![],
            status: None,
        };
        let anonymous = MediaItemStatus::Failed {
            id: None,
            kind: None,
            errors: vec![],
            status: None,
        };
        let done = pending.feed([
            downloaded("x"),
            anonymous,
            failed_b.clone(),
            downloaded("b"), // b already completed by the item before
        ]);
        assert_eq!(done, [failed_b]);
        assert!(pending.is_pending("a") && !pending.is_pending("b"));

        assert!(pending.feed([downloaded("b")]).is_empty());
        assert_eq!(pending.feed([downloaded("a")]), [downloaded("a")]);
        assert!(pending.is_empty());

        // Registered again, it completes again.
        pending.register("a");
        assert_eq!(pending.feed([downloaded("a")]).len(), 1);

        assert!(pending.register("c") && pending.cancel("c") && !pending.cancel("c"));
        assert!(pending.feed([downloaded("c")]).is_empty());
    }

    #[test]
    fn pending_deadlines() {
        let at = Timestamp::from_millis;
        let mut pending = PendingDownloads::new();
        assert_eq!(pending.next_deadline(), None);
        pending.register("none");
        pending.register_until("late", at(200));
        pending.register_until("early", at(100));
        assert_eq!(pending.next_deadline(), Some(at(100)));
        assert!(pending.take_expired(at(99)).is_empty());
        assert_eq!(pending.take_expired(at(150)), ["early"]);
        assert!(!pending.register_until("late", at(300)));
        assert_eq!(pending.next_deadline(), Some(at(300)));
        assert_eq!(pending.take_expired(at(u64::MAX)), ["late"]);
        assert_eq!(pending.ids().collect::<Vec<_>>(), ["none"]);
        assert_eq!(pending.next_deadline(), None);
    }
}
