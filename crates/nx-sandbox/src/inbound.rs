//! Inbound traffic simulation: a customer sends media to a merchant. The file is stored
//! (visible to getMedia on the merchant phone and to the On-Premises routes) and NXCloud's
//! inbound-message webhook is POSTed to the configured webhook URL.

use std::fmt;

use bytes::Bytes;
use nx_protocol::download::Sha256Digest;
use serde_json::{Value, json};

use crate::config::DEMO_CUSTOMER_PHONE;
use crate::media_table::{self, Kind};
use crate::state::State;
use crate::store::Media;

/// The message types that carry media (as in NXCloud's webhook).
pub const INBOUND_TYPES: [&str; 6] = ["image", "video", "voice", "audio", "document", "sticker"];

/// A media message a simulated customer sends.
///
/// ```
/// use nx_sandbox::Inbound;
/// let message = Inbound::new("image", "image/jpeg", b"\xff\xd8\xff fake jpeg".to_vec())
///     .file_name("photo.jpg")
///     .caption("look")
///     .from_phone("8613900139000");
/// assert_eq!(message.len(), 13);
/// ```
#[derive(Clone)]
pub struct Inbound {
    pub(crate) msg_type: String,
    pub(crate) mime: String,
    pub(crate) bytes: Bytes,
    pub(crate) file_name: Option<String>,
    pub(crate) from: String,
    pub(crate) merchant_phone: Option<String>,
    pub(crate) caption: Option<String>,
    pub(crate) profile_name: String,
}

impl Inbound {
    /// A message of `msg_type` (image, video, voice, audio, document or sticker) carrying
    /// `bytes` of `mime`, from [`DEMO_CUSTOMER_PHONE`] to the first bound phone of the first
    /// account.
    pub fn new(
        msg_type: impl Into<String>,
        mime: impl Into<String>,
        bytes: impl Into<Bytes>,
    ) -> Self {
        Self {
            msg_type: msg_type.into(),
            mime: mime.into(),
            bytes: bytes.into(),
            file_name: None,
            from: DEMO_CUSTOMER_PHONE.to_owned(),
            merchant_phone: None,
            caption: None,
            profile_name: "Sandbox Customer".to_owned(),
        }
    }

    /// The file's name (sent as `filename` for documents, and by getMedia as `file_name`).
    pub fn file_name(mut self, name: impl Into<String>) -> Self {
        self.file_name = Some(name.into());
        self
    }

    /// The customer's number (digits).
    pub fn from_phone(mut self, phone: impl Into<String>) -> Self {
        self.from = phone.into();
        self
    }

    /// The merchant number the message goes to (must be bound to an account).
    pub fn merchant_phone(mut self, phone: impl Into<String>) -> Self {
        self.merchant_phone = Some(phone.into());
        self
    }

    /// A caption.
    pub fn caption(mut self, caption: impl Into<String>) -> Self {
        self.caption = Some(caption.into());
        self
    }

    /// The customer's profile name.
    pub fn profile_name(mut self, name: impl Into<String>) -> Self {
        self.profile_name = name.into();
        self
    }

    /// The file's size.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the file is empty (refused by the sandbox).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

impl fmt::Debug for Inbound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inbound")
            .field("msg_type", &self.msg_type)
            .field("mime", &self.mime)
            .field("len", &self.bytes.len())
            .field("file_name", &self.file_name)
            .field("from", &self.from)
            .field("merchant_phone", &self.merchant_phone)
            .finish_non_exhaustive()
    }
}

/// What the simulation stored and sent.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct InboundMessage {
    /// The media id (for getMedia or the On-Prem routes).
    pub media_id: String,
    /// The message id (`wamid....`).
    pub message_id: String,
    /// The message type.
    pub msg_type: String,
    /// The MIME type.
    pub mime_type: String,
    /// SHA-256 of the bytes.
    pub sha256: Sha256Digest,
    /// The size in bytes.
    pub len: u64,
    /// The customer's number.
    pub from: String,
    /// The merchant number.
    pub merchant_phone: String,
    /// The exact JSON body POSTed (or that would have been, without a webhook URL).
    pub webhook_body: String,
}

/// Checks type, MIME, size and phones; the kind and the merchant phone.
pub(crate) fn validate(
    state: &State,
    msg_type: &str,
    mime: &str,
    len: u64,
    from: &str,
    merchant_phone: Option<&str>,
) -> Result<(Kind, String), String> {
    if !INBOUND_TYPES.contains(&msg_type) {
        return Err(format!(
            "type `{}` is not a media message type ({})",
            crate::log::printable(msg_type.as_bytes(), 32),
            INBOUND_TYPES.join(", ")
        ));
    }
    // A simulated customer's MIME type is read like a Content-Type (`audio/ogg; codecs=opus`
    // is what WhatsApp sends for voice notes); uploadMedia's `type` field is read strictly.
    let kind = media_table::check_essence(mime, len).map_err(|e| e.to_string())?;
    let expected = if msg_type == "voice" {
        "audio"
    } else {
        msg_type
    };
    if kind.name != expected {
        return Err(format!(
            "MIME type {mime} is {kind} media, not {msg_type}",
            mime = crate::log::printable(mime.as_bytes(), 100)
        ));
    }
    if !crate::text::is_digits(from) {
        return Err("the customer's number must be digits only".into());
    }
    let merchant = match merchant_phone {
        Some(p) => p.to_owned(),
        None => state
            .config
            .accounts
            .iter()
            .flat_map(|a| a.phones.iter())
            .next()
            .cloned()
            .ok_or("no account has a bound phone to receive the message")?,
    };
    if !state
        .config
        .accounts
        .iter()
        .any(|a| a.phones.contains(&merchant))
    {
        return Err("the merchant phone is not bound to any account".into());
    }
    Ok((kind, merchant))
}

/// Builds NXCloud's inbound webhook body for stored media.
pub(crate) fn webhook(
    state: &State,
    media: &Media,
    from: &str,
    merchant_phone: &str,
    caption: Option<&str>,
    profile_name: &str,
    named: bool,
) -> InboundMessage {
    let message_id = format!("wamid.SBX{:032X}", state.random_u128());
    let mut object = serde_json::Map::new();
    object.insert("id".into(), Value::String(media.id.clone()));
    object.insert("mime_type".into(), Value::String(media.mime.clone()));
    object.insert("sha256".into(), Value::String(media.sha256.to_string()));
    if let Some(caption) = caption {
        object.insert("caption".into(), Value::String(caption.to_owned()));
    }
    if named && media.msg_type == "document" {
        object.insert("filename".into(), Value::String(media.file_name.clone()));
    }
    let mut message = serde_json::Map::new();
    message.insert("from".into(), Value::String(from.to_owned()));
    message.insert("id".into(), Value::String(message_id.clone()));
    message.insert(
        "timestamp".into(),
        Value::String(state.clock.now_secs().to_string()),
    );
    message.insert("type".into(), Value::String(media.msg_type.clone()));
    message.insert(media.msg_type.clone(), Value::Object(object));
    let body = json!({
        "contacts": [{ "profile": { "name": profile_name }, "wa_id": from }],
        "messages": [Value::Object(message)],
        "merchant_phone": merchant_phone,
        "messaging_product": "whatsapp",
    });
    InboundMessage {
        media_id: media.id.clone(),
        message_id,
        msg_type: media.msg_type.clone(),
        mime_type: media.mime.clone(),
        sha256: media.sha256,
        len: media.len,
        from: from.to_owned(),
        merchant_phone: merchant_phone.to_owned(),
        webhook_body: body.to_string(),
    }
}
