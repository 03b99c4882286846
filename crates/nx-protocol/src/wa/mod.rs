//! NXCloud's WhatsApp media API (bizType 2): getMedia, deleteMedia, uploadMedia, mt (sending a
//! media message), and the inbound webhook that hands out media ids.
//!
//! The usual inbound flow: the webhook gives id + sha256 ([`parse_inbound_webhook`]) ->
//! [`GetMedia`] gives a [`DownloadUrl`] -> GET it -> check with
//! [`crate::download::DownloadCheck`] -> store -> [`DeleteMedia`]. The outbound one:
//! [`UploadMedia`] gives a media id -> [`SendMedia`] sends it to a customer.

mod kind;
pub(crate) mod media;
mod send;
mod upload;
pub(crate) mod url;
mod validate;
mod webhook;
mod whatsapp_error;

pub use kind::{KB, MB, MediaKind};
pub use media::{DeleteMedia, Deleted, GetMedia, MESSAGING_PRODUCT, MediaInfo};
pub use send::{
    MAX_CAPTION_CHARS, MAX_KEY_LEN, MediaSource, MessageDetails, RECIPIENT_TYPE, SendMedia,
    SentMessage, UploadedAndSent,
};
pub use upload::{UploadMedia, UploadedMedia};
pub use url::DownloadUrl;
pub use validate::{MAX_MEDIA_ID_LEN, validate_media_id, validate_phone};
pub use webhook::{
    InboundMedia, InboundWebhook, MEDIA_MESSAGE_TYPES, RejectedMessage, WebhookError,
    parse_inbound_webhook,
};
pub use whatsapp_error::{MetaErrorCode, WhatsAppError};
