//! uploadMedia: a multipart form, signed without its body, whose file part is streamed.

use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::code::BizType;
use crate::error::{DataError, InvalidInput};
use crate::multipart::{Form, boundary_from};
use crate::operation::{Operation, RequestBody, deserialize_data};
use crate::wa::kind::MediaKind;
use crate::wa::media::MESSAGING_PRODUCT;
use crate::wa::validate::validate_phone;

/// `POST /api/wa/uploadMedia`: uploads a file of known length.
///
/// The form's fields, in order: `messaging_product`, `business_phone`, `type`, `file`. The file
/// part comes last so transports stream it between the form's fixed head and tail.
///
/// ```
/// use nx_protocol::operation::{Operation, RequestBody};
/// use nx_protocol::wa::UploadMedia;
/// let op = UploadMedia::new("8615800001795", "image/png", "logo.png", 2048).with_boundary("B");
/// let RequestBody::Multipart { content_type, body } = op.body().unwrap() else { unreachable!() };
/// assert_eq!(content_type, "multipart/form-data; boundary=B");
/// assert_eq!(body.stream_len, 2048);
/// // Larger than the 5 MB image limit: refused before any byte is sent.
/// let too_big = UploadMedia::new("8615800001795", "image/png", "big.png", 6 << 20);
/// assert!(too_big.body().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UploadMedia {
    business_phone: String,
    mime_type: String,
    file_name: String,
    len: u64,
    boundary: Option<String>,
}

impl UploadMedia {
    /// Upload `len` bytes of `mime_type` named `file_name` for the merchant `business_phone`.
    pub fn new(
        business_phone: impl Into<String>,
        mime_type: impl Into<String>,
        file_name: impl Into<String>,
        len: u64,
    ) -> Self {
        Self {
            business_phone: business_phone.into(),
            mime_type: mime_type.into(),
            file_name: file_name.into(),
            len,
            boundary: None,
        }
    }

    /// Uses this multipart boundary (transports pass a random one). Without it the boundary is
    /// derived from the call's fields, which is deterministic but still unlikely to occur in a file.
    pub fn with_boundary(mut self, boundary: impl Into<String>) -> Self {
        self.boundary = Some(boundary.into());
        self
    }

    /// The file's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file is empty (refused when the body is built).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The MIME type.
    pub fn mime_type(&self) -> &str {
        &self.mime_type
    }

    /// The media kind, if the MIME type is in the table.
    pub fn kind(&self) -> Option<MediaKind> {
        MediaKind::from_mime(&self.mime_type)
    }

    fn boundary(&self) -> String {
        self.boundary.clone().unwrap_or_else(|| {
            let mut h = Md5::new();
            for field in [&self.business_phone, &self.mime_type, &self.file_name] {
                h.update(field.as_bytes());
                h.update([0]);
            }
            h.update(self.len.to_le_bytes());
            boundary_from(u128::from_le_bytes(h.finalize().into()))
        })
    }
}

/// uploadMedia's `data`: the new media id.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[non_exhaustive]
pub struct UploadedMedia {
    /// The media id, for sending the media or for getMedia/deleteMedia.
    pub id: String,
}

impl UploadedMedia {
    /// The answer for the media `id`.
    pub fn new(id: impl Into<String>) -> Self {
        Self { id: id.into() }
    }
}

impl Operation for UploadMedia {
    type Output = UploadedMedia;

    fn biz_type(&self) -> BizType {
        BizType::WHATSAPP
    }
    fn action(&self) -> &str {
        "uploadMedia"
    }
    fn path(&self) -> &str {
        "/api/wa/uploadMedia"
    }
    fn body(&self) -> Result<RequestBody, InvalidInput> {
        validate_phone(&self.business_phone)?;
        let kind = MediaKind::check(&self.mime_type, self.len)?;
        // `check` accepted it, so the table has it: send the table's spelling.
        let mime =
            MediaKind::canonical_mime(&self.mime_type).map_or(kind.mime_types()[0], |(_, m)| m);
        let file_name = if self.file_name.is_empty() {
            "file"
        } else {
            self.file_name.as_str()
        };
        let form = Form::new(self.boundary())
            .text("messaging_product", MESSAGING_PRODUCT)
            .text("business_phone", &self.business_phone)
            .text("type", mime)
            .file("file", file_name, mime, self.len);
        Ok(RequestBody::Multipart {
            content_type: form.content_type(),
            body: form.finish(),
        })
    }
    fn parse_data(&self, data: Option<&RawValue>) -> Result<UploadedMedia, DataError> {
        let uploaded: UploadedMedia = deserialize_data(data)?;
        if uploaded.id.is_empty() {
            return Err(DataError::invalid("uploadMedia answered an empty media id"));
        }
        Ok(uploaded)
    }
    /// A repeated upload stores the file twice, but that is harmless (an unused media id
    /// expires); losing an upload is not. So uploads are retried, re-streamed from the start.
    fn is_idempotent(&self) -> bool {
        true
    }
}
