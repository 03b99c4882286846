//! getMedia and deleteMedia.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::code::BizType;
use crate::error::{DataError, InvalidInput};
use crate::operation::{Json, Operation, RequestBody, deserialize_data, json_concat};
use crate::wa::url::DownloadUrl;
use crate::wa::validate::{validate_media_id, validate_phone};

/// `messaging_product`: always `whatsapp`.
pub const MESSAGING_PRODUCT: &str = "whatsapp";

/// The JSON body getMedia and deleteMedia share, in the spec's field order:
/// `{"business_phone":..,"Media-ID":..,"messaging_product":"whatsapp"}`. Note the field name
/// `Media-ID`, with a hyphen and capitals. Written directly, byte for byte as `serde_json`
/// writes it (a test checks both agree), in one allocation of its exact size.
fn media_body(phone: &str, media_id: &str) -> Result<RequestBody, InvalidInput> {
    validate_phone(phone)?;
    validate_media_id(media_id)?;
    Ok(RequestBody::Json(json_concat(&[
        Json::Raw(r#"{"business_phone":"#),
        Json::Str(phone),
        Json::Raw(r#","Media-ID":"#),
        Json::Str(media_id),
        // `MESSAGING_PRODUCT` as a JSON string: a constant with nothing to escape.
        Json::Raw(r#","messaging_product":"whatsapp"}"#),
    ])))
}

/// `POST /api/wa/getMedia`: a media file's metadata and download URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetMedia {
    business_phone: String,
    media_id: String,
}

impl GetMedia {
    /// getMedia for `media_id` on the merchant number `business_phone` (digits only).
    pub fn new(business_phone: impl Into<String>, media_id: impl Into<String>) -> Self {
        Self {
            business_phone: business_phone.into(),
            media_id: media_id.into(),
        }
    }

    /// The media id.
    pub fn media_id(&self) -> &str {
        &self.media_id
    }

    /// The merchant number.
    pub fn business_phone(&self) -> &str {
        &self.business_phone
    }
}

/// What getMedia answers: a file's MIME type, its name and its download URL.
///
/// Held in one allocation (the URL, then the MIME type and the file name), so reading an
/// answer copies its text once; [`MediaInfo::into_url`] keeps the URL without a copy. `Debug`
/// shows the URL as [`DownloadUrl`] does, its query redacted. Serde reads and writes it as
/// `{"mime_type":..,"file_name":..,"url":..}`.
#[derive(Clone, Deserialize)]
#[serde(from = "wire::MediaInfo")]
pub struct MediaInfo {
    /// The URL, with the MIME type and the file name after it (its tail).
    url: DownloadUrl,
    /// The MIME type's length: where the file name starts in the URL's tail.
    mime_len: usize,
}

/// `MediaInfo` as serde reads and writes it: three fields. Named `MediaInfo` too, so that
/// serde's messages (`expected struct MediaInfo ...`) are what they were when `MediaInfo`
/// itself had these fields.
mod wire {
    use serde::{Deserialize, Serialize};

    use crate::wa::url::DownloadUrl;

    #[derive(Deserialize)]
    pub(super) struct MediaInfo {
        pub(super) mime_type: String,
        #[serde(default, deserialize_with = "crate::lenient::null_as_empty")]
        pub(super) file_name: String,
        pub(super) url: DownloadUrl,
    }

    /// What `MediaInfo` writes: the same fields, in the same order, borrowed.
    #[derive(Serialize)]
    #[serde(rename = "MediaInfo")]
    pub(super) struct MediaInfoRef<'a> {
        pub(super) mime_type: &'a str,
        pub(super) file_name: &'a str,
        pub(super) url: &'a DownloadUrl,
    }
}

impl From<wire::MediaInfo> for MediaInfo {
    fn from(fields: wire::MediaInfo) -> Self {
        MediaInfo::new(fields.mime_type, fields.file_name, fields.url)
    }
}

impl Serialize for MediaInfo {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        wire::MediaInfoRef {
            mime_type: self.mime_type(),
            file_name: self.file_name(),
            url: self.url(),
        }
        .serialize(s)
    }
}

impl MediaInfo {
    /// An answer with these fields (for tests and for answers read elsewhere).
    pub fn new(
        mime_type: impl Into<String>,
        file_name: impl Into<String>,
        url: DownloadUrl,
    ) -> Self {
        let (mime_type, file_name) = (mime_type.into(), file_name.into());
        Self {
            url: url.replace_tail([&mime_type, &file_name]),
            mime_len: mime_type.len(),
        }
    }

    /// e.g. `image/webp`.
    pub fn mime_type(&self) -> &str {
        &self.url.tail()[..self.mime_len]
    }

    /// The file's name (empty when the server gives none: absent or `null`).
    pub fn file_name(&self) -> &str {
        &self.url.tail()[self.mime_len..]
    }

    /// The pre-signed download URL (a secret until it expires).
    pub fn url(&self) -> &DownloadUrl {
        &self.url
    }

    /// The download URL, owned, without a copy (it keeps the allocation it shares with the
    /// MIME type and file name, which it ignores).
    pub fn into_url(self) -> DownloadUrl {
        self.url
    }
}

impl PartialEq for MediaInfo {
    fn eq(&self, other: &Self) -> bool {
        (self.mime_type(), self.file_name(), self.url())
            == (other.mime_type(), other.file_name(), other.url())
    }
}

impl Eq for MediaInfo {}

impl fmt::Debug for MediaInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MediaInfo")
            .field("mime_type", &self.mime_type())
            .field("file_name", &self.file_name())
            .field("url", self.url())
            .finish()
    }
}

impl Operation for GetMedia {
    type Output = MediaInfo;

    fn biz_type(&self) -> BizType {
        BizType::WHATSAPP
    }
    fn action(&self) -> &str {
        "getMedia"
    }
    fn path(&self) -> &str {
        "/api/wa/getMedia"
    }
    fn body(&self) -> Result<RequestBody, InvalidInput> {
        media_body(&self.business_phone, &self.media_id)
    }
    fn parse_data(&self, data: Option<&RawValue>) -> Result<MediaInfo, DataError> {
        deserialize_data(data)
    }
    /// `parse_data` is `deserialize_data`: a success answer of the plain form is read straight
    /// from its bytes (`plain_answer`, crate-private), any other in the envelope's serde pass.
    fn parse_answer(
        &self,
        status: http::StatusCode,
        body: &[u8],
    ) -> Result<MediaInfo, crate::ResponseError> {
        if status.is_success()
            && let Some(info) = plain_answer(body)
        {
            return Ok(info);
        }
        crate::operation::parse_in_one_pass(self, status, body)
    }
}

/// A getMedia success answer of the plain form ([`crate::envelope::plain`]) as the serde reading
/// has it: `mime_type` and `url` strings, `file_name` a string, `null` or absent (empty), the
/// URL one [`DownloadUrl::parse`] accepts. `None` for any other answer, left to serde.
pub(crate) fn plain_answer(body: &[u8]) -> Option<MediaInfo> {
    use crate::envelope::plain::{Field, success_data};
    let [Field::Str(mime_type), file_name, Field::Str(url)] =
        success_data(body, ["mime_type", "file_name", "url"])?
    else {
        return None;
    };
    let file_name = match file_name {
        Field::Str(name) => name,
        Field::Null | Field::Absent => "",
    };
    // The URL is checked before anything is copied, then the three are copied into one
    // allocation.
    let url = DownloadUrl::with_tail(url, [mime_type, file_name]).ok()?;
    Some(MediaInfo {
        url,
        mime_len: mime_type.len(),
    })
}

/// `POST /api/wa/deleteMedia`: deletes a media file from WhatsApp's storage.
///
/// Idempotent in effect, so it is retried; but if a first attempt deleted the file and its
/// answer was lost, the retry finds no file. The spec does not say what is answered then; this
/// SDK's reading (not the spec's) is that it is -1 ("request failed"), as observed for an unknown
/// or already deleted id: the file is gone either way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteMedia {
    business_phone: String,
    media_id: String,
}

impl DeleteMedia {
    /// deleteMedia for `media_id` on the merchant number `business_phone` (digits only).
    pub fn new(business_phone: impl Into<String>, media_id: impl Into<String>) -> Self {
        Self {
            business_phone: business_phone.into(),
            media_id: media_id.into(),
        }
    }
}

/// deleteMedia's `data`: `{"success": true}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[non_exhaustive]
pub struct Deleted {
    /// Always true in a value this crate returns: an answer of code 0 whose `success` is false
    /// is refused as malformed, since the deletion cannot be taken as done.
    pub success: bool,
}

impl Deleted {
    /// `{"success": true}`: what a deleteMedia call returns.
    pub const DONE: Deleted = Deleted { success: true };
}

impl Operation for DeleteMedia {
    type Output = Deleted;

    fn biz_type(&self) -> BizType {
        BizType::WHATSAPP
    }
    fn action(&self) -> &str {
        "deleteMedia"
    }
    fn path(&self) -> &str {
        "/api/wa/deleteMedia"
    }
    fn body(&self) -> Result<RequestBody, InvalidInput> {
        media_body(&self.business_phone, &self.media_id)
    }
    fn parse_data(&self, data: Option<&RawValue>) -> Result<Deleted, DataError> {
        let deleted: Deleted = deserialize_data(data)?;
        if deleted.success {
            Ok(deleted)
        } else {
            Err(DataError::invalid(
                "deleteMedia answered code 0 with `success: false`; the media may still exist",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operation::parse_response;
    use http::StatusCode;

    fn get(data: &str) -> Result<MediaInfo, crate::ResponseError> {
        let body = format!(r#"{{"code":0,"message":"ok","data":{data}}}"#);
        parse_response(
            &GetMedia::new("8615800001795", "m1"),
            StatusCode::OK,
            body.as_bytes(),
        )
    }

    const URL: &str = "https://oss.example/f?Expires=1663747602&Signature=x";

    #[test]
    fn file_name_null_or_absent_is_empty_the_rest_stays_required() {
        for file_name in [r#","file_name":null"#, ""] {
            let info = get(&format!(
                r#"{{"mime_type":"image/webp"{file_name},"url":"{URL}"}}"#
            ))
            .unwrap();
            assert_eq!(info.file_name(), "", "{file_name}");
            assert_eq!(info.mime_type(), "image/webp");
            assert_eq!(info.url().expose(), URL);
        }
        let named = get(&format!(
            r#"{{"mime_type":"image/webp","file_name":"a.webp","url":"{URL}"}}"#
        ))
        .unwrap();
        assert_eq!(named.file_name(), "a.webp");

        // mime_type and url stay required; a file name of another type is still refused.
        for data in [
            format!(r#"{{"mime_type":null,"file_name":"a","url":"{URL}"}}"#),
            format!(r#"{{"file_name":"a","url":"{URL}"}}"#),
            r#"{"mime_type":"image/webp","file_name":"a","url":null}"#.to_owned(),
            r#"{"mime_type":"image/webp","file_name":"a"}"#.to_owned(),
            format!(r#"{{"mime_type":"image/webp","file_name":7,"url":"{URL}"}}"#),
        ] {
            let err = get(&data).unwrap_err();
            assert!(
                matches!(err, crate::ResponseError::Malformed { .. }),
                "{data}: {err:?}"
            );
        }
    }

    #[test]
    fn one_buffer_reads_as_three_fields() {
        let url = DownloadUrl::parse(URL).unwrap();
        let info = MediaInfo::new("image/webp", "a.webp", url.clone());
        assert_eq!(
            (info.mime_type(), info.file_name(), info.url()),
            ("image/webp", "a.webp", &url)
        );
        // Read from an answer (the plain reader) or built: the same value, whatever the
        // layout; the URL taken out is the URL alone.
        let read = get(&format!(
            r#"{{"mime_type":"image/webp","file_name":"a.webp","url":"{URL}"}}"#
        ))
        .unwrap();
        assert_eq!(read, info);
        assert_ne!(read, MediaInfo::new("image/webp", "b.webp", url.clone()));
        assert_ne!(read, MediaInfo::new("image/web", "pa.webp", url.clone()));
        let taken = read.clone().into_url();
        assert_eq!((taken.expose(), &taken), (URL, &url));
        assert_eq!(taken.to_string(), "https://oss.example/f?<redacted>");
        // A new MIME type and file name replace the URL's tail rather than follow it.
        let again = MediaInfo::new("", "", read.into_url());
        assert_eq!((again.mime_type(), again.file_name()), ("", ""));
        assert_eq!(again.url().expose(), URL);
        assert_eq!(
            format!("{info:?}"),
            r#"MediaInfo { mime_type: "image/webp", file_name: "a.webp", url: DownloadUrl(https://oss.example/f?<redacted>) }"#
        );
    }

    #[test]
    fn serde_writes_and_reads_the_three_fields() {
        let info = MediaInfo::new("image/webp", "", DownloadUrl::parse(URL).unwrap());
        let json = serde_json::to_string(&info).unwrap();
        assert_eq!(
            json,
            format!(r#"{{"mime_type":"image/webp","file_name":"","url":"{URL}"}}"#)
        );
        assert_eq!(serde_json::from_str::<MediaInfo>(&json).unwrap(), info);
        // The reading's errors name the struct and its fields as before.
        let err = serde_json::from_str::<MediaInfo>("[]")
            .unwrap_err()
            .to_string();
        assert!(err.contains("struct MediaInfo"), "{err}");
        let err = serde_json::from_str::<MediaInfo>(r#"{"mime_type":"a"}"#).unwrap_err();
        assert!(err.to_string().contains("missing field `url`"), "{err}");
    }
}
