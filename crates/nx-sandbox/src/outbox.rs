//! The messages `POST /api/wa/mt` accepted ([`crate::Sandbox::sent_messages`],
//! `GET /_sandbox/messages`).

use std::collections::HashSet;
use std::sync::Mutex;

use serde_json::{Value, json};

use crate::sync::lock;

/// The most messages the sandbox records; further sends answer 9001.
pub const MAX_SENT: usize = 100_000;

/// A message the sandbox accepted on `POST /api/wa/mt`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SentMessage {
    /// The message id answered (the `cus_message_id` when one was given).
    pub id: String,
    /// The application's appkey.
    pub appkey: String,
    /// The sending merchant number.
    pub business_phone: String,
    /// The recipient.
    pub to: String,
    /// `image`, `video`, `audio`, `document` or `sticker`.
    pub kind: String,
    /// The media id, when sent by id.
    pub media_id: Option<String>,
    /// The link, when sent by link (with its query: the sandbox keeps what it was given).
    pub link: Option<String>,
    /// The caption (image, video).
    pub caption: Option<String>,
    /// The file name (document).
    pub filename: Option<String>,
    /// The caller's own message id.
    pub cus_message_id: Option<String>,
    /// The status webhook URL.
    pub dr_webhook: Option<String>,
    /// When it was accepted, on the sandbox clock (Unix milliseconds).
    pub at_ms: u64,
}

impl SentMessage {
    /// The message as `GET /_sandbox/messages` lists it.
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "appkey": self.appkey,
            "business_phone": self.business_phone,
            "to": self.to,
            "type": self.kind,
            "media_id": self.media_id,
            "link": self.link,
            "caption": self.caption,
            "filename": self.filename,
            "cus_message_id": self.cus_message_id,
            "dr_webhook": self.dr_webhook,
            "at_ms": self.at_ms,
        })
    }
}

#[derive(Default)]
struct Sent {
    messages: Vec<SentMessage>,
    cus_message_ids: HashSet<String>,
}

/// The messages sent so far.
#[derive(Default)]
pub(crate) struct Outbox {
    sent: Mutex<Sent>,
}

impl Outbox {
    pub(crate) fn messages(&self) -> Vec<SentMessage> {
        lock(&self.sent).messages.clone()
    }

    /// Records `message`, or says why not.
    pub(crate) fn record(&self, message: SentMessage) -> Result<(), Unrecorded> {
        let mut sent = lock(&self.sent);
        if sent.messages.len() >= MAX_SENT {
            return Err(Unrecorded::Full);
        }
        if let Some(id) = &message.cus_message_id
            && !sent.cus_message_ids.insert(id.clone())
        {
            return Err(Unrecorded::CusMessageIdUsed);
        }
        sent.messages.push(message);
        Ok(())
    }
}

/// Why [`Outbox::record`] did not record a message.
pub(crate) enum Unrecorded {
    /// It holds [`MAX_SENT`] messages.
    Full,
    /// The message's `cus_message_id` was used by an earlier one.
    CusMessageIdUsed,
}
