//! The inbound-message webhook NXCloud POSTs to the merchant: where media ids come from.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::download::Sha256Digest;

/// Message types that carry a media object under the key named by `type`.
pub const MEDIA_MESSAGE_TYPES: [&str; 6] =
    ["image", "video", "voice", "audio", "document", "sticker"];

/// A media file a customer sent, as the webhook describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
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
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct InboundWebhook {
    /// The merchant number the messages came to.
    pub merchant_phone: Option<String>,
    /// The media references, in message order; text, location and unknown types are skipped.
    pub media: Vec<InboundMedia>,
}

/// Why a webhook body was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// Not JSON, or not the webhook's shape.
    #[error("not an NXCloud inbound webhook body: {0}")]
    Shape(String),
    /// A media message lacks what it needs.
    #[error("messages[{index}] ({kind}): {what}")]
    Media {
        /// The message's index.
        index: usize,
        /// Its type.
        kind: String,
        /// What is wrong.
        what: &'static str,
    },
}

#[derive(Deserialize)]
struct Body {
    #[serde(default)]
    merchant_phone: Option<Value>,
    #[serde(default)]
    messages: Vec<Map<String, Value>>,
}

fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Parses an inbound webhook body and returns the media references it holds.
///
/// ```
/// let body = br#"{"contacts":[{"profile":{"name":"Jay"},"wa_id":"86176xxxx0819"}],
///   "messages":[{"from":"86176xxxx0819","id":"ABGH","timestamp":"1663053029","type":"image",
///     "image":{"id":"2bc7102f-5491-40b1-a92f-338303eab9d3","mime_type":"image/jpeg",
///       "sha256":"0ed3d9d4db83ed7751314af5f2e9bf008edc49a101bebb9054a97f824cf2136b"}},
///     {"from":"86176xxxx0819","id":"ABGI","timestamp":"1663053030","type":"text","text":{"body":"hi"}}],
///   "merchant_phone":"86176xxxx0819","messaging_product":"whatsapp"}"#;
/// let hook = nx_protocol::wa::parse_inbound_webhook(body).unwrap();
/// assert_eq!(hook.media.len(), 1);
/// assert_eq!(hook.media[0].id, "2bc7102f-5491-40b1-a92f-338303eab9d3");
/// assert!(hook.media[0].sha256.is_some());
/// ```
pub fn parse_inbound_webhook(body: &[u8]) -> Result<InboundWebhook, WebhookError> {
    let body: Body =
        serde_json::from_slice(body).map_err(|e| WebhookError::Shape(e.to_string()))?;
    let mut media = Vec::new();
    for (index, message) in body.messages.iter().enumerate() {
        let Some(kind) = message.get("type").and_then(Value::as_str) else {
            continue;
        };
        if !MEDIA_MESSAGE_TYPES.contains(&kind) {
            continue;
        }
        let err = |what| WebhookError::Media {
            index,
            kind: kind.to_owned(),
            what,
        };
        let object = message
            .get(kind)
            .and_then(Value::as_object)
            .ok_or_else(|| err("no media object under its type"))?;
        let id = text(object.get("id"))
            .filter(|id| !id.is_empty())
            .ok_or_else(|| err("media object has no id"))?;
        let sha256 = match object.get("sha256") {
            None | Some(Value::Null) => None,
            Some(Value::String(hex)) => Some(
                Sha256Digest::from_hex(hex)
                    .ok_or_else(|| err("sha256 is not 64 hex characters"))?,
            ),
            Some(_) => return Err(err("sha256 is not a string")),
        };
        media.push(InboundMedia {
            kind: kind.to_owned(),
            id,
            mime_type: text(object.get("mime_type")),
            sha256,
            caption: text(object.get("caption")),
            filename: text(object.get("filename")),
            from: text(message.get("from")),
            message_id: text(message.get("id")),
            timestamp: text(message.get("timestamp")),
        });
    }
    Ok(InboundWebhook {
        merchant_phone: text(body.merchant_phone.as_ref()),
        media,
    })
}
