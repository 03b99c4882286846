//! mt: sending a media message (image, video, audio, document, sticker) to a customer, by the
//! media id of an upload or by a link the platform fetches. A 9099 answer's Meta error is
//! [`crate::wa::WhatsAppError`].
//!
//! A send is **not idempotent** ([`Operation::is_idempotent`] is false): an answer lost after
//! the request reached NXCloud may mean the customer already has the message, so it is resent
//! only when it certainly was not carried out: no connection was made, or the answer says the
//! request was refused before anything was done (a 1004). This SDK's reading of the spec's
//! "retry only what certainly did not reach the server": a 1004 reached the server, but as a
//! refusal of the signature check it cannot have sent anything, so the clock is corrected and
//! the message sent once (see [`crate::policy::retry::RetryPolicy::decide`]).

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::code::BizType;
use crate::error::{DataError, InvalidInput};
use crate::operation::{Operation, RequestBody, deserialize_data, strip_query};
use crate::redact::redact_urls;
use crate::wa::kind::MediaKind;
use crate::wa::media::MESSAGING_PRODUCT;
use crate::wa::validate::{http_url_problem, recipient_problem, validate_media_id, validate_phone};

/// `recipient_type`: always `individual`.
pub const RECIPIENT_TYPE: &str = "individual";

/// The longest `appkey` and `cus_message_id` accepted, in bytes: both are short identifiers,
/// and a longer one is a caller bug.
pub const MAX_KEY_LEN: usize = 256;

/// The longest caption accepted, in characters (Meta's limit for media captions).
pub const MAX_CAPTION_CHARS: usize = 1024;

/// Where the platform takes the media from: exactly one of the two, as the spec requires.
/// `Debug` shows a link without its query (often a pre-signed URL's signature).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MediaSource {
    /// A media id from uploadMedia (or from an inbound webhook) on the same business phone.
    Id(String),
    /// An `http`/`https` URL the platform fetches the file from.
    Link(String),
}

impl fmt::Debug for MediaSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MediaSource::Id(id) => f.debug_tuple("Id").field(id).finish(),
            MediaSource::Link(url) => f.debug_tuple("Link").field(&redact_urls(url)).finish(),
        }
    }
}

impl MediaSource {
    /// By media id.
    pub fn id(id: impl Into<String>) -> Self {
        MediaSource::Id(id.into())
    }

    /// By link.
    pub fn link(url: impl Into<String>) -> Self {
        MediaSource::Link(url.into())
    }
}

/// The optional parts of a media message. Which ones a kind takes is checked when the request
/// is built: a caption only for image and video, a file name only for a document. `Debug`
/// shows the status webhook without its query.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct MessageDetails {
    caption: Option<String>,
    filename: Option<String>,
    cus_message_id: Option<String>,
    dr_webhook: Option<String>,
    appkey: Option<String>,
}

impl fmt::Debug for MessageDetails {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageDetails")
            .field("caption", &self.caption)
            .field("filename", &self.filename)
            .field("cus_message_id", &self.cus_message_id)
            .field("dr_webhook", &self.dr_webhook.as_deref().map(redact_urls))
            .field("appkey", &self.appkey)
            .finish()
    }
}

impl MessageDetails {
    /// No caption, file name, message id, status webhook or appkey.
    pub fn new() -> Self {
        Self::default()
    }

    /// The caption under an image or a video.
    pub fn caption(mut self, caption: impl Into<String>) -> Self {
        self.caption = Some(caption.into());
        self
    }

    /// The file name a document is shown with.
    pub fn filename(mut self, filename: impl Into<String>) -> Self {
        self.filename = Some(filename.into());
        self
    }

    /// `cus_message_id`: the caller's own message id, returned as the message id in the answer
    /// and in status callbacks; the spec says it must be globally unique.
    ///
    /// It does not make a send retryable: the spec does not say what NXCloud does with a
    /// repeated id (refuse it, or send again), so this SDK's reading is the safe one, and a
    /// send with a `cus_message_id` is resent exactly as rarely as one without.
    pub fn message_id(mut self, id: impl Into<String>) -> Self {
        self.cus_message_id = Some(id.into());
        self
    }

    /// `dr_webhook`: a URL that receives this message's status callbacks first.
    pub fn dr_webhook(mut self, url: impl Into<String>) -> Self {
        self.dr_webhook = Some(url.into());
        self
    }

    /// The application's `appkey` for this message, in place of the client's.
    pub fn appkey(mut self, appkey: impl Into<String>) -> Self {
        self.appkey = Some(appkey.into());
        self
    }

    /// The appkey given to this message, if any.
    pub fn appkey_override(&self) -> Option<&str> {
        self.appkey.as_deref()
    }
}

/// `POST /api/wa/mt` with a media message: `kind` from `business_phone` to `to`.
///
/// The body's keys go out in the order of the spec's example (`appkey`, `business_phone`,
/// `messaging_product`, `recipient_type`, `to`, `type`, then the object named by `type`); the
/// optional `cus_message_id` and `dr_webhook`, which the example does not show, come after
/// `type` in the order of the spec's table. Serialized once: those bytes are what is signed.
///
/// ```
/// use nx_protocol::operation::{Operation, RequestBody};
/// use nx_protocol::wa::{MediaKind, MediaSource, MessageDetails, SendMedia};
/// let op = SendMedia::new(
///     "8618500008399",
///     "8613600009759",
///     MediaKind::Image,
///     MediaSource::id("5867096a-a9be-4a56-94d6-89377623b4ac"),
/// )
/// .with_details(MessageDetails::new().caption("image test").appkey("f543ertg"));
/// let RequestBody::Json(body) = op.body().unwrap() else { unreachable!() };
/// assert_eq!(
///     std::str::from_utf8(&body).unwrap(),
///     r#"{"appkey":"f543ertg","business_phone":"8618500008399","messaging_product":"whatsapp","recipient_type":"individual","to":"8613600009759","type":"image","image":{"id":"5867096a-a9be-4a56-94d6-89377623b4ac","caption":"image test"}}"#
/// );
/// // A caption on audio is refused before anything is sent.
/// let audio = SendMedia::new("8618500008399", "8613600009759", MediaKind::Audio, MediaSource::id("a1"))
///     .with_details(MessageDetails::new().caption("no").appkey("f543ertg"));
/// assert!(audio.body().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendMedia {
    business_phone: String,
    to: String,
    kind: MediaKind,
    media: MediaSource,
    details: MessageDetails,
}

impl SendMedia {
    /// A `kind` message of `media` from the merchant number `business_phone` to the customer
    /// number `to` (both digits with the country code).
    pub fn new(
        business_phone: impl Into<String>,
        to: impl Into<String>,
        kind: MediaKind,
        media: MediaSource,
    ) -> Self {
        Self {
            business_phone: business_phone.into(),
            to: to.into(),
            kind,
            media,
            details: MessageDetails::default(),
        }
    }

    /// Sets the caption, file name, message id, status webhook or appkey.
    pub fn with_details(mut self, details: MessageDetails) -> Self {
        self.details = details;
        self
    }

    /// Uses `appkey` unless the message was given one ([`MessageDetails::appkey`]): how a
    /// client applies its configured appkey.
    pub fn with_default_appkey(mut self, appkey: Option<&str>) -> Self {
        if self.details.appkey.is_none() {
            self.details.appkey = appkey.map(str::to_owned);
        }
        self
    }

    /// The message that sends a file about to be uploaded as `mime_type` (its kind is the MIME
    /// type's), checked now, before the upload: everything but the media id, which the upload
    /// will give ([`SendMedia::with_media`]). A client's upload-and-send uses it so that a
    /// message that would be refused costs no upload.
    ///
    /// ```
    /// use nx_protocol::wa::{MediaKind, MediaSource, MessageDetails, SendMedia};
    /// let send = SendMedia::for_upload("8618500008399", "8613600009759", "application/pdf",
    ///     MessageDetails::new().filename("q3.pdf"), Some("appkey1")).unwrap();
    /// assert_eq!(send.kind(), MediaKind::Document);
    /// let send = send.with_media(MediaSource::id("m1"));
    /// assert_eq!(send.media(), &MediaSource::id("m1"));
    /// // A caption on a document is refused before anything is uploaded.
    /// assert!(SendMedia::for_upload("8618500008399", "8613600009759", "application/pdf",
    ///     MessageDetails::new().caption("no"), Some("appkey1")).is_err());
    /// ```
    pub fn for_upload(
        business_phone: &str,
        to: &str,
        mime_type: &str,
        details: MessageDetails,
        default_appkey: Option<&str>,
    ) -> Result<Self, InvalidInput> {
        // `check` with a size of 1 refuses exactly the MIME types the media table lacks; the
        // upload checks the real size.
        let kind = MediaKind::check(mime_type, 1)?;
        let send = SendMedia::new(business_phone, to, kind, MediaSource::id("to-be-uploaded"))
            .with_details(details)
            .with_default_appkey(default_appkey);
        send.check()?;
        Ok(send)
    }

    /// The same message with another media source (the id an upload answered).
    pub fn with_media(mut self, media: MediaSource) -> Self {
        self.media = media;
        self
    }

    /// The media kind.
    pub fn kind(&self) -> MediaKind {
        self.kind
    }

    /// Where the media comes from.
    pub fn media(&self) -> &MediaSource {
        &self.media
    }

    /// The optional parts.
    pub fn details(&self) -> &MessageDetails {
        &self.details
    }

    /// The recipient.
    pub fn to(&self) -> &str {
        &self.to
    }

    /// Every check of the spec that can be made before sending.
    fn check(&self) -> Result<&str, InvalidInput> {
        let field = |field, reason| InvalidInput::MessageField { field, reason };
        let appkey = self.details.appkey.as_deref().ok_or(field(
            "appkey",
            "is not set: give the client an appkey (builder or NXCLOUD_APPKEY) or give one to the message",
        ))?;
        key_problem(appkey).map_or(Ok(()), |reason| Err(field("appkey", reason)))?;
        validate_phone(&self.business_phone)?;
        recipient_problem(&self.to).map_or(Ok(()), |reason| Err(field("to", reason)))?;
        match &self.media {
            MediaSource::Id(id) => validate_media_id(id)?,
            MediaSource::Link(url) => {
                if let Some(reason) = http_url_problem(url) {
                    return Err(InvalidInput::Url {
                        url: strip_query(url)
                            .chars()
                            .filter(|c| !c.is_control())
                            .collect(),
                        reason,
                    });
                }
            }
        }
        if self.details.caption.is_some()
            && !matches!(self.kind, MediaKind::Image | MediaKind::Video)
        {
            return Err(field("caption", "is only for image and video messages"));
        }
        if self.details.filename.is_some() && self.kind != MediaKind::Document {
            return Err(field("filename", "is only for document messages"));
        }
        // The spec gives no lengths; Meta's media messages take a caption of at most 1024
        // characters, and an empty caption or file name is a caller bug (the sandbox refuses
        // the same), so a message that would be refused is refused before any upload.
        if let Some(caption) = &self.details.caption {
            if caption.is_empty() {
                return Err(field("caption", "is empty (leave it out instead)"));
            }
            if caption.chars().count() > MAX_CAPTION_CHARS {
                return Err(field("caption", "is longer than 1024 characters"));
            }
        }
        if self.details.filename.as_deref() == Some("") {
            return Err(field("filename", "is empty (leave it out instead)"));
        }
        if let Some(id) = &self.details.cus_message_id {
            key_problem(id).map_or(Ok(()), |reason| Err(field("cus_message_id", reason)))?;
        }
        if let Some(url) = &self.details.dr_webhook {
            http_url_problem(url).map_or(Ok(()), |reason| Err(field("dr_webhook", reason)))?;
        }
        Ok(appkey)
    }
}

/// What is wrong with an `appkey` or a `cus_message_id`, if anything.
fn key_problem(key: &str) -> Option<&'static str> {
    if key.is_empty() {
        Some("is empty")
    } else if key.len() > MAX_KEY_LEN {
        Some("is longer than 256 bytes")
    } else if key.chars().any(char::is_control) {
        Some("holds control characters")
    } else if key.trim() != key {
        Some("has leading or trailing white space")
    } else {
        None
    }
}

/// The body, in the spec's key order.
#[derive(Serialize)]
struct Body<'a> {
    appkey: &'a str,
    business_phone: &'a str,
    messaging_product: &'static str,
    recipient_type: &'static str,
    to: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cus_message_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dr_webhook: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    image: Option<Object<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    video: Option<Object<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    audio: Option<Object<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    document: Option<Object<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sticker: Option<Object<'a>>,
}

/// The object named by `type`: `id` or `link`, then `caption` or `filename`.
#[derive(Serialize)]
struct Object<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    link: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    caption: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    filename: Option<&'a str>,
}

/// mt's `data`: the message id (the `cus_message_id` when one was given).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct SentMessage {
    /// The message id, as the server wrote it (status callbacks name it).
    pub id: String,
}

/// What an upload-and-send did: the media id of the upload, and the message that sent it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct UploadedAndSent {
    /// The upload's media id (usable again for other sends, or deleted with deleteMedia).
    pub media_id: String,
    /// The message.
    pub message: SentMessage,
}

impl SentMessage {
    /// The message `id`.
    pub fn new(id: impl Into<String>) -> Self {
        Self { id: id.into() }
    }
}

impl UploadedAndSent {
    /// The upload `media_id` and the `message` that sent it.
    pub fn new(media_id: impl Into<String>, message: SentMessage) -> Self {
        Self {
            media_id: media_id.into(),
            message,
        }
    }
}

/// The longest message id accepted from the server, in bytes.
const MAX_MESSAGE_ID_LEN: usize = 1024;

#[derive(Deserialize)]
struct SentData {
    messages: Vec<SentEntry>,
}

#[derive(Deserialize)]
struct SentEntry {
    id: String,
}

impl Operation for SendMedia {
    type Output = SentMessage;

    fn biz_type(&self) -> BizType {
        BizType::WHATSAPP
    }
    fn action(&self) -> &str {
        "mt"
    }
    fn path(&self) -> &str {
        "/api/wa/mt"
    }
    fn body(&self) -> Result<RequestBody, InvalidInput> {
        let appkey = self.check()?;
        let (id, link) = match &self.media {
            MediaSource::Id(id) => (Some(id.as_str()), None),
            MediaSource::Link(url) => (None, Some(url.as_str())),
        };
        let object = Some(Object {
            id,
            link,
            caption: self.details.caption.as_deref(),
            filename: self.details.filename.as_deref(),
        });
        let mut body = Body {
            appkey,
            business_phone: &self.business_phone,
            messaging_product: MESSAGING_PRODUCT,
            recipient_type: RECIPIENT_TYPE,
            to: &self.to,
            kind: self.kind.name(),
            cus_message_id: self.details.cus_message_id.as_deref(),
            dr_webhook: self.details.dr_webhook.as_deref(),
            image: None,
            video: None,
            audio: None,
            document: None,
            sticker: None,
        };
        let slot = match self.kind {
            MediaKind::Image => &mut body.image,
            MediaKind::Video => &mut body.video,
            MediaKind::Audio => &mut body.audio,
            MediaKind::Document => &mut body.document,
            MediaKind::Sticker => &mut body.sticker,
        };
        *slot = object;
        RequestBody::json(&body)
    }
    fn parse_data(&self, data: Option<&RawValue>) -> Result<SentMessage, DataError> {
        let data: SentData = deserialize_data(data)?;
        let first = data
            .messages
            .into_iter()
            .next()
            .ok_or(DataError::invalid("mt answered no message in `messages`"))?;
        if first.id.is_empty() {
            return Err(DataError::invalid("mt answered an empty message id"));
        }
        if first.id.len() > MAX_MESSAGE_ID_LEN {
            return Err(DataError::invalid(format!(
                "mt answered a message id longer than {MAX_MESSAGE_ID_LEN} bytes"
            )));
        }
        Ok(SentMessage { id: first.id })
    }
    /// A send repeated after its answer was lost may reach the customer twice.
    fn is_idempotent(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operation::parse_response;
    use crate::wa::{MetaErrorCode, WhatsAppError};
    use crate::{ApiCode, ResponseError};
    use http::StatusCode;

    const PHONE: &str = "8618500008399";
    const TO: &str = "8613600009759";

    fn op(kind: MediaKind, media: MediaSource, details: MessageDetails) -> SendMedia {
        SendMedia::new(PHONE, TO, kind, media).with_details(details.appkey("k1"))
    }

    fn body(op: &SendMedia) -> String {
        match op.body().unwrap() {
            RequestBody::Json(b) => String::from_utf8(b.to_vec()).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_kind_by_id_and_link_in_the_spec_order() {
        let base = r#"{"appkey":"k1","business_phone":"8618500008399","messaging_product":"whatsapp","recipient_type":"individual","to":"8613600009759","type":""#;
        for kind in MediaKind::ALL {
            let by_id = body(&op(kind, MediaSource::id("m1"), MessageDetails::new()));
            assert_eq!(
                by_id,
                format!(r#"{base}{kind}","{kind}":{{"id":"m1"}}}}"#),
                "{kind}"
            );
            let by_link = body(&op(
                kind,
                MediaSource::link("https://cdn.example/a?x=1"),
                MessageDetails::new(),
            ));
            assert_eq!(
                by_link,
                format!(r#"{base}{kind}","{kind}":{{"link":"https://cdn.example/a?x=1"}}}}"#)
            );
        }
        let full = body(&op(
            MediaKind::Document,
            MediaSource::id("m1"),
            MessageDetails::new()
                .filename("q3.pdf")
                .message_id("order-7")
                .dr_webhook("https://hooks.example/dr"),
        ));
        assert_eq!(
            full,
            format!(
                r#"{base}document","cus_message_id":"order-7","dr_webhook":"https://hooks.example/dr","document":{{"id":"m1","filename":"q3.pdf"}}}}"#
            )
        );
        let video = body(&op(
            MediaKind::Video,
            MediaSource::id("v"),
            MessageDetails::new().caption("牛小信 \"hi\"\n"),
        ));
        assert!(
            video.ends_with(r#""video":{"id":"v","caption":"牛小信 \"hi\"\n"}}"#),
            "{video}"
        );
    }

    #[test]
    fn refusals_name_the_field() {
        let refused = |op: SendMedia| op.body().unwrap_err().to_string();
        let no_key = SendMedia::new(PHONE, TO, MediaKind::Image, MediaSource::id("m"));
        assert!(refused(no_key.clone()).contains("appkey"));
        assert_eq!(
            no_key
                .clone()
                .with_default_appkey(Some("k"))
                .details()
                .appkey_override(),
            Some("k")
        );
        // The message's own appkey wins over the client's.
        let own = no_key
            .with_details(MessageDetails::new().appkey("mine"))
            .with_default_appkey(Some("client"));
        assert_eq!(own.details().appkey_override(), Some("mine"));

        let cases: Vec<(SendMedia, &str)> = vec![
            (
                SendMedia::new("+8618500008399", TO, MediaKind::Image, MediaSource::id("m"))
                    .with_default_appkey(Some("k")),
                "business_phone",
            ),
            (
                SendMedia::new(PHONE, "86 136", MediaKind::Image, MediaSource::id("m"))
                    .with_default_appkey(Some("k")),
                "`to`",
            ),
            (
                op(MediaKind::Image, MediaSource::id(""), MessageDetails::new()),
                "media id",
            ),
            (
                op(
                    MediaKind::Image,
                    MediaSource::link("ftp://x/a.png"),
                    MessageDetails::new(),
                ),
                "http or https",
            ),
            (
                op(
                    MediaKind::Image,
                    MediaSource::link("/a.png"),
                    MessageDetails::new(),
                ),
                "URL",
            ),
            (
                op(
                    MediaKind::Audio,
                    MediaSource::id("m"),
                    MessageDetails::new().caption("c"),
                ),
                "caption",
            ),
            (
                op(
                    MediaKind::Sticker,
                    MediaSource::id("m"),
                    MessageDetails::new().caption("c"),
                ),
                "caption",
            ),
            (
                op(
                    MediaKind::Image,
                    MediaSource::id("m"),
                    MessageDetails::new().filename("f"),
                ),
                "filename",
            ),
            (
                op(
                    MediaKind::Document,
                    MediaSource::id("m"),
                    MessageDetails::new().message_id(""),
                ),
                "cus_message_id",
            ),
            (
                op(
                    MediaKind::Document,
                    MediaSource::id("m"),
                    MessageDetails::new().dr_webhook("hooks.example"),
                ),
                "dr_webhook",
            ),
            (
                SendMedia::new(PHONE, TO, MediaKind::Image, MediaSource::id("m"))
                    .with_details(MessageDetails::new().appkey("a\nb")),
                "appkey",
            ),
        ];
        for (op, field) in cases {
            let err = refused(op.clone());
            assert!(err.contains(field), "{op:?}: {err}");
        }
        // A link's query (perhaps a signature) never appears in the refusal.
        let err = refused(op(
            MediaKind::Image,
            MediaSource::link("ftp://cdn.example/a.png?Signature=secret"),
            MessageDetails::new(),
        ));
        assert!(!err.contains("secret"), "{err}");
        // A port that is not a u16 is refused (http::Uri alone would take it).
        for url in [
            "https://cdn.example:abc/a.png",
            "https://cdn.example:99999/a.png",
            "https://cdn.example:/a.png",
        ] {
            let err = refused(op(
                MediaKind::Image,
                MediaSource::link(url),
                MessageDetails::new(),
            ));
            assert!(err.contains("port"), "{url}: {err}");
        }
        op(
            MediaKind::Image,
            MediaSource::link("https://cdn.example:8443/a.png"),
            MessageDetails::new(),
        )
        .body()
        .unwrap();
        // Captions and file names the sandbox would refuse are refused here first.
        for details in [
            MessageDetails::new().caption(""),
            MessageDetails::new().caption("é".repeat(MAX_CAPTION_CHARS + 1)),
        ] {
            let err = refused(op(MediaKind::Image, MediaSource::id("m"), details));
            assert!(err.contains("caption"), "{err}");
        }
        op(
            MediaKind::Image,
            MediaSource::id("m"),
            MessageDetails::new().caption("é".repeat(MAX_CAPTION_CHARS)),
        )
        .body()
        .unwrap();
        let err = refused(op(
            MediaKind::Document,
            MediaSource::id("m"),
            MessageDetails::new().filename(""),
        ));
        assert!(err.contains("filename"), "{err}");
        // Debug never shows a link's or a status webhook's query.
        let signed = op(
            MediaKind::Image,
            MediaSource::link("https://cdn.example/a.png?Signature=secret1"),
            MessageDetails::new().dr_webhook("https://hooks.example/dr?token=secret2"),
        );
        let shown = format!("{signed:?}");
        assert!(
            !shown.contains("secret1") && !shown.contains("secret2"),
            "{shown}"
        );
        assert!(
            shown.contains("https://cdn.example/a.png?<redacted>"),
            "{shown}"
        );
        // Captions and file names where they belong are accepted.
        for kind in [MediaKind::Image, MediaKind::Video] {
            op(
                kind,
                MediaSource::id("m"),
                MessageDetails::new().caption("c"),
            )
            .body()
            .unwrap();
        }
        op(
            MediaKind::Document,
            MediaSource::id("m"),
            MessageDetails::new().filename("f"),
        )
        .body()
        .unwrap();
    }

    fn parse(answer: &str) -> Result<SentMessage, ResponseError> {
        let op = op(
            MediaKind::Image,
            MediaSource::id("m"),
            MessageDetails::new(),
        );
        parse_response(&op, StatusCode::OK, answer.as_bytes())
    }

    #[test]
    fn answers() {
        let sent = parse(r#"{"code":0,"message":"ok","data":{"messaging_product":"whatsapp","messages":[{"id":"wamid.1"}]}}"#).unwrap();
        assert_eq!(sent.id, "wamid.1");
        for data in [
            "null",
            r#"{"messages":[]}"#,
            r#"{"messages":[{"id":""}]}"#,
            r#"{"messages":[{"id":7}]}"#,
            r#"{"messaging_product":"whatsapp"}"#,
        ] {
            let err = parse(&format!(r#"{{"code":0,"message":"ok","data":{data}}}"#)).unwrap_err();
            assert!(
                matches!(err, ResponseError::Malformed { .. }),
                "{data}: {err:?}"
            );
        }
        let long = "a".repeat(2000);
        let err = parse(&format!(
            r#"{{"code":0,"data":{{"messages":[{{"id":"{long}"}}]}}}}"#
        ))
        .unwrap_err();
        assert!(matches!(err, ResponseError::Malformed { .. }));
    }

    #[test]
    fn a_9099_answer_keeps_metas_error() {
        let answer = r#"{"code":9099,"message":"WhatsApp error","data":{"error":{"code":100,"message":"(#100) Invalid parameter","type":"OAuthException","fbtrace_id":"AmCuD7sOjcEDetBNhlT2cJm","error_data":{"messaging_product":"whatsapp","details":"Invalid parameter"}}}}"#;
        let err = parse(answer).unwrap_err();
        assert_eq!(err.api_code(), Some(ApiCode::WHATSAPP_ERROR));
        let meta = err.whatsapp_error().expect("Meta's error is kept");
        assert_eq!(meta.code, Some(MetaErrorCode::Number(100)));
        assert_eq!(meta.error_type.as_deref(), Some("OAuthException"));
        assert_eq!(meta.message.as_deref(), Some("(#100) Invalid parameter"));
        assert_eq!(meta.details.as_deref(), Some("Invalid parameter"));
        assert_eq!(meta.fbtrace_id.as_deref(), Some("AmCuD7sOjcEDetBNhlT2cJm"));
        let shown = err.to_string();
        assert!(
            shown.ends_with("(server said: WhatsApp error); WhatsApp error 100 OAuthException: (#100) Invalid parameter (details: Invalid parameter; fbtrace_id AmCuD7sOjcEDetBNhlT2cJm)"),
            "{shown}"
        );
    }

    #[test]
    fn odd_meta_errors_never_fail_the_answer() {
        let long = "x".repeat(10_000);
        let cases: Vec<(String, Option<WhatsAppError>)> = vec![
            (r#"null"#.into(), None),
            (r#"{"error":"boom"}"#.into(), None),
            (
                r#"{"error":{}}"#.into(),
                Some(WhatsAppError {
                    code: None,
                    error_type: None,
                    message: None,
                    details: None,
                    fbtrace_id: None,
                }),
            ),
            (
                r#"{"error":{"code":"E42","type":7,"message":["m"],"error_data":"d"}}"#.into(),
                Some(WhatsAppError {
                    code: Some(MetaErrorCode::Text("E42".into())),
                    error_type: None,
                    message: None,
                    details: None,
                    fbtrace_id: None,
                }),
            ),
            (
                r#"{"error":{"code":1.5,"error_data":{"details":null}}}"#.into(),
                Some(WhatsAppError {
                    code: Some(MetaErrorCode::Text("1.5".into())),
                    error_type: None,
                    message: None,
                    details: None,
                    fbtrace_id: None,
                }),
            ),
            (
                format!(r#"{{"error":{{"code":99999999999999999999,"message":"{long}"}}}}"#),
                Some(WhatsAppError {
                    code: Some(MetaErrorCode::Text("1e+20".into())),
                    error_type: None,
                    message: Some(format!("{}…", &long[..WhatsAppError::MAX_CHARS])),
                    details: None,
                    fbtrace_id: None,
                }),
            ),
        ];
        for (data, expected) in cases {
            let answer = format!(r#"{{"code":9099,"message":"m","data":{data}}}"#);
            let err = parse(&answer).unwrap_err();
            assert_eq!(err.api_code(), Some(ApiCode::WHATSAPP_ERROR), "{data}");
            assert_eq!(err.whatsapp_error(), expected.as_ref(), "{data}");
            assert!(err.to_string().chars().count() < 1200);
        }
        // Another code's `data.error` is not read as Meta's.
        let err = parse(r#"{"code":9001,"data":{"error":{"code":1}}}"#).unwrap_err();
        assert_eq!(err.whatsapp_error(), None);
    }
}
