//! The media table: which MIME types WhatsApp accepts, and how large each kind may be.

use std::fmt;

use crate::error::InvalidInput;

/// One megabyte as the media table counts it.
///
/// The vendors write "5 MB", "100 KB" without saying which megabyte. We read them as binary
/// units (1 MB = 1 048 576 bytes, 1 KB = 1 024 bytes), as Meta's own limits behave; this is the
/// one place to change if NXCloud is found to count in decimal units.
pub const MB: u64 = 1024 * 1024;
/// One kilobyte as the media table counts it (see [`MB`]).
pub const KB: u64 = 1024;

/// A kind of WhatsApp media.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MediaKind {
    /// JPEG or PNG, 5 MB.
    Image,
    /// AAC, MP4, MPEG, AMR or OGG (opus) audio, 16 MB.
    Audio,
    /// MP4 or 3GP video, 16 MB.
    Video,
    /// Text, PDF and Office documents, 100 MB.
    Document,
    /// WebP sticker, 100 KB.
    Sticker,
}

const IMAGE: &[&str] = &["image/jpeg", "image/png"];
const AUDIO: &[&str] = &[
    "audio/aac",
    "audio/mp4",
    "audio/mpeg",
    "audio/amr",
    "audio/ogg",
];
const VIDEO: &[&str] = &["video/mp4", "video/3gp"];
const DOCUMENT: &[&str] = &[
    "text/plain",
    "application/pdf",
    "application/vnd.ms-powerpoint",
    "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
];
const STICKER: &[&str] = &["image/webp"];

const ACCEPTED: &str = "image/jpeg, image/png, audio/aac, audio/mp4, audio/mpeg, audio/amr, audio/ogg, video/mp4, video/3gp, text/plain, application/pdf, application/vnd.ms-powerpoint, application/msword, application/vnd.ms-excel, the OOXML document/presentation/sheet types, image/webp";

impl MediaKind {
    /// Every kind, in table order.
    pub const ALL: [MediaKind; 5] = [
        MediaKind::Image,
        MediaKind::Audio,
        MediaKind::Video,
        MediaKind::Document,
        MediaKind::Sticker,
    ];

    /// The kind's name as WhatsApp writes it.
    pub fn name(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
            MediaKind::Document => "document",
            MediaKind::Sticker => "sticker",
        }
    }

    /// The MIME types of this kind.
    pub fn mime_types(self) -> &'static [&'static str] {
        match self {
            MediaKind::Image => IMAGE,
            MediaKind::Audio => AUDIO,
            MediaKind::Video => VIDEO,
            MediaKind::Document => DOCUMENT,
            MediaKind::Sticker => STICKER,
        }
    }

    /// The size limit in bytes.
    pub fn max_bytes(self) -> u64 {
        match self {
            MediaKind::Image => 5 * MB,
            MediaKind::Audio | MediaKind::Video => 16 * MB,
            MediaKind::Document => 100 * MB,
            MediaKind::Sticker => 100 * KB,
        }
    }

    /// The kind of a MIME type, by its essence (parameters such as `; codecs=opus` are ignored,
    /// case is ignored). `image/webp` is a sticker: it is the only kind that takes WebP.
    ///
    /// ```
    /// use nx_protocol::wa::MediaKind;
    /// assert_eq!(MediaKind::from_mime("image/JPEG"), Some(MediaKind::Image));
    /// assert_eq!(MediaKind::from_mime("audio/ogg; codecs=opus"), Some(MediaKind::Audio));
    /// assert_eq!(MediaKind::from_mime("image/gif"), None);
    /// ```
    pub fn from_mime(mime: &str) -> Option<MediaKind> {
        Self::canonical_mime(mime).map(|(kind, _)| kind)
    }

    /// The kind and the table's own spelling of a MIME type (lower case, no parameters), which
    /// is what goes on the wire: a server comparing strings sees exactly the documented type.
    ///
    /// ```
    /// use nx_protocol::wa::MediaKind;
    /// assert_eq!(MediaKind::canonical_mime("Audio/OGG; codecs=opus"), Some((MediaKind::Audio, "audio/ogg")));
    /// ```
    pub fn canonical_mime(mime: &str) -> Option<(MediaKind, &'static str)> {
        let essence = mime.split(';').next().unwrap_or("").trim();
        MediaKind::ALL.into_iter().find_map(|kind| {
            let found = kind
                .mime_types()
                .iter()
                .find(|m| m.eq_ignore_ascii_case(essence))?;
            Some((kind, *found))
        })
    }

    /// Checks a MIME type and a size against the table: the kind, or an error that names the
    /// kind, the limit and the actual size.
    ///
    /// ```
    /// use nx_protocol::wa::MediaKind;
    /// let err = MediaKind::check("image/webp", 200 * 1024).unwrap_err();
    /// assert_eq!(err.to_string(), "sticker files may be at most 102400 bytes; this one has 204800 bytes");
    /// ```
    pub fn check(mime: &str, size: u64) -> Result<MediaKind, InvalidInput> {
        let kind = MediaKind::from_mime(mime).filter(|_| !mime.chars().any(char::is_control));
        let kind = kind.ok_or_else(|| InvalidInput::MimeType {
            mime: mime.chars().filter(|c| !c.is_control()).take(100).collect(),
            accepted: ACCEPTED,
        })?;
        if size == 0 {
            return Err(InvalidInput::EmptyFile);
        }
        if size > kind.max_bytes() {
            return Err(InvalidInput::TooLarge {
                kind: kind.name(),
                limit: kind.max_bytes(),
                actual: size,
            });
        }
        Ok(kind)
    }
}

impl fmt::Display for MediaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reading of "5 MB" / "100 KB" pinned as numbers: binary units.
    #[test]
    fn limits_are_read_as_binary_units() {
        let limits: Vec<u64> = MediaKind::ALL
            .into_iter()
            .map(MediaKind::max_bytes)
            .collect();
        assert_eq!(
            limits,
            [5_242_880, 16_777_216, 16_777_216, 104_857_600, 102_400]
        );
        // A "5 MB" image in decimal units and a little over is accepted; one byte over 5 MiB is not.
        assert_eq!(
            MediaKind::check("image/jpeg", 5_000_001),
            Ok(MediaKind::Image)
        );
        assert!(MediaKind::check("image/jpeg", 5_242_881).is_err());
    }

    #[test]
    fn limits_are_inclusive() {
        for kind in MediaKind::ALL {
            for mime in kind.mime_types() {
                assert_eq!(MediaKind::check(mime, kind.max_bytes()), Ok(kind));
                assert!(matches!(
                    MediaKind::check(mime, kind.max_bytes() + 1),
                    Err(InvalidInput::TooLarge { .. })
                ));
            }
        }
        assert_eq!(
            MediaKind::check("image/png", 0),
            Err(InvalidInput::EmptyFile)
        );
        assert!(matches!(
            MediaKind::check("video/quicktime", 1),
            Err(InvalidInput::MimeType { .. })
        ));
        // Parameters may not smuggle a header into the multipart form.
        assert!(matches!(
            MediaKind::check("image/png; x=\r\nEvil: 1", 1),
            Err(InvalidInput::MimeType { .. })
        ));
    }
}
