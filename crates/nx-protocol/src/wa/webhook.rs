//! The inbound-message webhook NXCloud POSTs to the merchant: where media ids come from.

use std::fmt;

use serde::Deserialize;
use serde_json::Value;

use crate::download::Sha256Digest;

/// Message types that carry a media object under the key named by `type`.
pub const MEDIA_MESSAGE_TYPES: [&str; 6] =
    ["image", "video", "voice", "audio", "document", "sticker"];

/// A media file a customer sent, as the webhook describes it.
///
/// Build one with [`InboundMedia::new`] and set the optional fields.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct InboundMedia {
    /// The message `type`: image, video, voice, audio, document or sticker.
    pub kind: String,
    /// The media id, for getMedia.
    pub id: String,
    /// The MIME type, when given.
    pub mime_type: Option<String>,
    /// SHA-256 of the file, when given: check the download against it.
    pub sha256: Option<Sha256Digest>,
    /// The caption, when given.
    pub caption: Option<String>,
    /// The file name (documents), when given.
    pub filename: Option<String>,
    /// The customer's number (`from`).
    pub from: Option<String>,
    /// The message id.
    pub message_id: Option<String>,
    /// The message timestamp (Unix seconds, as sent).
    pub timestamp: Option<String>,
}

/// An NXCloud inbound webhook body, reduced to what matters for media.
///
/// Each element of `messages` is read on its own: one that cannot be read does not void the
/// batch, and is reported in [`InboundWebhook::rejected`] rather than dropped silently.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct InboundWebhook {
    /// The merchant number the messages came to.
    pub merchant_phone: Option<String>,
    /// The media references, in message order; text, location and unknown types are skipped.
    pub media: Vec<InboundMedia>,
    /// The messages that could not be read, in message order: not a JSON object, no `type`, or
    /// a media message without a usable media object (no id, a malformed sha256, ...).
    pub rejected: Vec<RejectedMessage>,
}

/// An element of the webhook's `messages` that could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RejectedMessage {
    /// Its index in `messages`.
    pub index: usize,
    /// Its `type`, when it has one.
    pub kind: Option<String>,
    /// Its message id (`id`), when it has one.
    pub message_id: Option<String>,
    /// What is wrong.
    pub reason: &'static str,
}

impl InboundMedia {
    /// A media reference of message type `kind` (image, video, ...) with the media `id`, every
    /// optional field `None`.
    pub fn new(kind: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            id: id.into(),
            mime_type: None,
            sha256: None,
            caption: None,
            filename: None,
            from: None,
            message_id: None,
            timestamp: None,
        }
    }
}

impl RejectedMessage {
    /// Message number `index` of `messages`, refused for `reason`; no type or id known.
    pub fn new(index: usize, reason: &'static str) -> Self {
        Self {
            index,
            kind: None,
            message_id: None,
            reason,
        }
    }
}

impl fmt::Display for RejectedMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "messages[{}]", self.index)?;
        if let Some(kind) = &self.kind {
            write!(f, " ({kind})")?;
        }
        if let Some(id) = &self.message_id {
            write!(f, " id {id}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// Why a webhook body was refused as a whole. A single message that cannot be read is not an
/// error: see [`InboundWebhook::rejected`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// Not JSON, not a JSON object, or not the webhook's shape at the top level (e.g. a
    /// `messages` that is neither an array nor `null`).
    #[error("not an NXCloud inbound webhook body: {0}")]
    Shape(String),
}

#[derive(Deserialize)]
struct Body {
    #[serde(default)]
    merchant_phone: Option<Value>,
    /// `null` or absent: no messages.
    #[serde(default)]
    messages: Option<Vec<Value>>,
}

fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Reads one element of `messages`: the media it references, `None` for a message that carries
/// no media (text, location, an unknown type), or why it cannot be read.
fn read_message(index: usize, message: &Value) -> Result<Option<InboundMedia>, RejectedMessage> {
    let Value::Object(message) = message else {
        return Err(RejectedMessage {
            index,
            kind: None,
            message_id: None,
            reason: "not a JSON object",
        });
    };
    let kind = message.get("type").and_then(Value::as_str);
    let reject = |reason| RejectedMessage {
        index,
        kind: kind.map(str::to_owned),
        message_id: text(message.get("id")),
        reason,
    };
    let Some(kind) = kind else {
        return Err(reject("no `type` (or not a string)"));
    };
    if !MEDIA_MESSAGE_TYPES.contains(&kind) {
        return Ok(None);
    }
    let object = message
        .get(kind)
        .and_then(Value::as_object)
        .ok_or_else(|| reject("no media object under its type"))?;
    let id = text(object.get("id"))
        .filter(|id| !id.is_empty())
        .ok_or_else(|| reject("media object has no id"))?;
    let sha256 = match object.get("sha256") {
        None | Some(Value::Null) => None,
        Some(Value::String(hex)) => Some(
            Sha256Digest::from_hex(hex).ok_or_else(|| reject("sha256 is not 64 hex characters"))?,
        ),
        Some(_) => return Err(reject("sha256 is not a string")),
    };
    Ok(Some(InboundMedia {
        kind: kind.to_owned(),
        id,
        mime_type: text(object.get("mime_type")),
        sha256,
        caption: text(object.get("caption")),
        filename: text(object.get("filename")),
        from: text(message.get("from")),
        message_id: text(message.get("id")),
        timestamp: text(message.get("timestamp")),
    }))
}

/// Parses an inbound webhook body and returns the media references it holds.
///
/// The body must be a JSON object; `messages` may be absent or `null` (no messages). Each
/// message is read on its own: one that cannot be read is reported in
/// [`InboundWebhook::rejected`] and the others are still returned. Never panics.
///
/// ```
/// let body = br#"{"contacts":[{"profile":{"name":"Jay"},"wa_id":"86176xxxx0819"}],
///   "messages":[{"from":"86176xxxx0819","id":"ABGH","timestamp":"1663053029","type":"image",
///     "image":{"id":"2bc7102f-5491-40b1-a92f-338303eab9d3","mime_type":"image/jpeg",
///       "sha256":"0ed3d9d4db83ed7751314af5f2e9bf008edc49a101bebb9054a97f824cf2136b"}},
///     {"from":"86176xxxx0819","id":"ABGI","timestamp":"1663053030","type":"text","text":{"body":"hi"}},
///     {"from":"86176xxxx0819","id":"ABGJ","type":"image","image":{"id":"x","sha256":"not hex"}}],
///   "merchant_phone":"86176xxxx0819","messaging_product":"whatsapp"}"#;
/// let hook = nx_protocol::wa::parse_inbound_webhook(body).unwrap();
/// assert_eq!(hook.media.len(), 1);
/// assert_eq!(hook.media[0].id, "2bc7102f-5491-40b1-a92f-338303eab9d3");
/// assert!(hook.media[0].sha256.is_some());
/// // The third message is reported, not dropped, and does not void the first.
/// assert_eq!(hook.rejected.len(), 1);
/// assert_eq!(hook.rejected[0].to_string(), "messages[2] (image) id ABGJ: sha256 is not 64 hex characters");
/// ```
pub fn parse_inbound_webhook(body: &[u8]) -> Result<InboundWebhook, WebhookError> {
    // serde would also read a struct from a JSON array: only an object is a webhook body.
    let first = body
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if first.is_some_and(|&b| b != b'{') {
        return Err(WebhookError::Shape("the body is not a JSON object".into()));
    }
    let body: Body =
        serde_json::from_slice(body).map_err(|e| WebhookError::Shape(e.to_string()))?;
    let mut media = Vec::new();
    let mut rejected = Vec::new();
    for (index, message) in body.messages.iter().flatten().enumerate() {
        match read_message(index, message) {
            Ok(Some(found)) => media.push(found),
            Ok(None) => {}
            Err(rejection) => rejected.push(rejection),
        }
    }
    Ok(InboundWebhook {
        merchant_phone: text(body.merchant_phone.as_ref()),
        media,
        rejected,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0ed3d9d4db83ed7751314af5f2e9bf008edc49a101bebb9054a97f824cf2136b";

    fn parse(body: &str) -> Result<InboundWebhook, WebhookError> {
        parse_inbound_webhook(body.as_bytes())
    }

    fn image(id: &str, sha256: &str) -> String {
        format!(
            r#"{{"from":"8617600000819","id":"msg-{id}","timestamp":"1663053029","type":"image",
                "image":{{"id":"{id}","mime_type":"image/jpeg","sha256":"{sha256}"}}}}"#
        )
    }

    #[test]
    fn a_bad_message_does_not_void_the_batch() {
        let body = format!(
            r#"{{"messages":[{bad},{good},{{"type":"text","text":{{"body":"hi"}}}},
                 {{"type":"document","id":"msg-d","document":{{"mime_type":"application/pdf"}}}},
                 {{"type":"sticker","sticker":"not an object"}},
                 {{"type":"audio","audio":{{"id":"a1","sha256":7}}}}],
               "merchant_phone":"8617600000001"}}"#,
            bad = image("bad", "not hex"),
            good = image("good", SHA),
        );
        let hook = parse(&body).unwrap();
        assert_eq!(hook.merchant_phone.as_deref(), Some("8617600000001"));
        assert_eq!(hook.media.len(), 1);
        assert_eq!(hook.media[0].id, "good");
        assert_eq!(hook.media[0].message_id.as_deref(), Some("msg-good"));
        assert_eq!(hook.media[0].sha256.unwrap().to_string(), SHA);
        let rejected: Vec<(usize, Option<&str>, &str)> = hook
            .rejected
            .iter()
            .map(|r| (r.index, r.kind.as_deref(), r.reason))
            .collect();
        assert_eq!(
            rejected,
            [
                (0, Some("image"), "sha256 is not 64 hex characters"),
                (3, Some("document"), "media object has no id"),
                (4, Some("sticker"), "no media object under its type"),
                (5, Some("audio"), "sha256 is not a string"),
            ]
        );
        assert_eq!(hook.rejected[0].message_id.as_deref(), Some("msg-bad"));
        assert_eq!(
            hook.rejected[1].to_string(),
            "messages[3] (document) id msg-d: media object has no id"
        );
    }

    #[test]
    fn messages_null_or_absent_is_no_messages() {
        for body in [
            r#"{"messages":null,"merchant_phone":"8617600000001"}"#,
            r#"{"merchant_phone":"8617600000001"}"#,
            r#"{"messages":[],"merchant_phone":"8617600000001"}"#,
        ] {
            let hook = parse(body).unwrap_or_else(|e| panic!("{body}: {e}"));
            assert_eq!(hook.merchant_phone.as_deref(), Some("8617600000001"));
            assert!(hook.media.is_empty() && hook.rejected.is_empty(), "{body}");
        }
    }

    #[test]
    fn non_object_messages_are_reported() {
        let body = format!(
            r#"{{"messages":[null,1,"image",[{good}],{good},{{"id":"m7"}},{{"type":3}}]}}"#,
            good = image("good", SHA),
        );
        let hook = parse(&body).unwrap();
        assert_eq!(hook.media.len(), 1);
        assert_eq!(hook.media[0].id, "good");
        let rejected: Vec<(usize, &str)> =
            hook.rejected.iter().map(|r| (r.index, r.reason)).collect();
        assert_eq!(
            rejected,
            [
                (0, "not a JSON object"),
                (1, "not a JSON object"),
                (2, "not a JSON object"),
                (3, "not a JSON object"),
                (5, "no `type` (or not a string)"),
                (6, "no `type` (or not a string)"),
            ]
        );
        assert_eq!(
            hook.rejected[0].to_string(),
            "messages[0]: not a JSON object"
        );
        assert_eq!(hook.rejected[4].message_id.as_deref(), Some("m7"));
    }

    /// The spec's example as it is, and every `type` it names: the six media types each read
    /// from the object under their own key (`voice` included), text and location skipped; the
    /// sha256 hex in either case is the same digest; caption and file name come back unescaped.
    #[test]
    fn every_documented_type_and_the_spec_example() {
        let example = br#"{"contacts":[{"profile":{"name":"Jay"},"wa_id":"86176xxxx0819"}],
     "messages":[{"from":"86176xxxx0819","id":"ABGH...","timestamp":"1663053029","type":"image",
                  "image":{"id":"2bc7102f-5491-40b1-a92f-338303eab9d3","mime_type":"image/jpeg",
                           "sha256":"0ed3d9d4db83ed7751314af5f2e9bf008edc49a101bebb9054a97f824cf2136b"}}],
     "merchant_phone":"86176xxxx0819","messaging_product":"whatsapp"}"#;
        let hook = parse_inbound_webhook(example).unwrap();
        assert_eq!(hook.merchant_phone.as_deref(), Some("86176xxxx0819"));
        assert!(hook.rejected.is_empty());
        let [media] = &hook.media[..] else {
            panic!("{hook:?}")
        };
        assert_eq!(
            (
                media.kind.as_str(),
                media.id.as_str(),
                media.mime_type.as_deref()
            ),
            (
                "image",
                "2bc7102f-5491-40b1-a92f-338303eab9d3",
                Some("image/jpeg")
            )
        );
        assert_eq!(media.sha256.unwrap().to_string(), SHA);
        assert_eq!(
            (
                media.from.as_deref(),
                media.message_id.as_deref(),
                media.timestamp.as_deref()
            ),
            (Some("86176xxxx0819"), Some("ABGH..."), Some("1663053029"))
        );

        let upper = SHA.to_ascii_uppercase();
        let mixed: String = SHA
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i % 2 == 0 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect();
        let caption = "牛小信 \"hi\" \\ \u{2028} 😀\n";
        let filename = "say \"hi\"\\q3.pdf";
        let messages: Vec<String> = [
            ("text", r#""text":{"body":"hi"}"#.to_owned()),
            ("image", format!(r#""image":{{"id":"i1","sha256":"{SHA}","caption":{}}}"#, serde_json::to_string(caption).unwrap())),
            ("video", format!(r#""video":{{"id":"v1","sha256":"{upper}","caption":"c"}}"#)),
            ("voice", format!(r#""voice":{{"id":"o1","mime_type":"audio/ogg; codecs=opus","sha256":"{mixed}"}}"#)),
            ("audio", r#""audio":{"id":"a1","mime_type":"audio/mpeg"}"#.to_owned()),
            ("document", format!(r#""document":{{"id":"d1","filename":{},"mime_type":"application/pdf"}}"#, serde_json::to_string(filename).unwrap())),
            ("location", r#""location":{"latitude":1.5,"longitude":2.5}"#.to_owned()),
            ("sticker", r#""sticker":{"id":"s1","mime_type":"image/webp","animated":false}"#.to_owned()),
        ]
        .into_iter()
        .map(|(kind, object)| format!(r#"{{"from":"1","id":"msg-{kind}","type":"{kind}",{object}}}"#))
        .collect();
        let body = format!(r#"{{"messages":[{}]}}"#, messages.join(","));
        let hook = parse(&body).unwrap();
        assert!(hook.rejected.is_empty(), "{:?}", hook.rejected);
        let kinds: Vec<(&str, &str)> = hook
            .media
            .iter()
            .map(|m| (m.kind.as_str(), m.id.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("image", "i1"),
                ("video", "v1"),
                ("voice", "o1"),
                ("audio", "a1"),
                ("document", "d1"),
                ("sticker", "s1")
            ]
        );
        let digest = Sha256Digest::from_hex(SHA).unwrap();
        assert_eq!(
            hook.media.iter().map(|m| m.sha256).collect::<Vec<_>>(),
            [Some(digest), Some(digest), Some(digest), None, None, None]
        );
        assert_eq!(hook.media[0].caption.as_deref(), Some(caption));
        assert_eq!(hook.media[1].caption.as_deref(), Some("c"));
        assert_eq!(
            hook.media[2].mime_type.as_deref(),
            Some("audio/ogg; codecs=opus")
        );
        assert_eq!(hook.media[4].filename.as_deref(), Some(filename));
        assert!(
            hook.media
                .iter()
                .all(|m| m.kind == "image" || m.kind == "video" || m.caption.is_none())
        );
        assert_eq!(
            MEDIA_MESSAGE_TYPES,
            ["image", "video", "voice", "audio", "document", "sticker"]
        );
        // A media type whose object sits under another key is reported, not read from there.
        let hook = parse(r#"{"messages":[{"type":"voice","audio":{"id":"a1"}}]}"#).unwrap();
        assert!(hook.media.is_empty());
        assert_eq!(hook.rejected[0].reason, "no media object under its type");
    }

    #[test]
    fn a_body_that_is_not_a_webhook_object_is_still_an_error() {
        for body in [
            "",
            "not json",
            "[]",
            " [null, []]",
            "null",
            "7",
            r#""messages""#,
            r#"{"messages":{"0":{}}}"#,
            r#"{"messages":"none"}"#,
            r#"{"messages":[{"type":"image"}]"#,
        ] {
            assert!(
                matches!(parse(body), Err(WebhookError::Shape(_))),
                "{body}: {:?}",
                parse(body)
            );
        }
    }
}
