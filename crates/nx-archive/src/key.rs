//! Object keys: `<prefix>/<sha256 hex>.<extension>`, so the same bytes always land on the same
//! key, whoever stores them and however often.

use nx_protocol::download::Sha256Digest;
use object_store::path::Path;

/// The extension of each type in WhatsApp's media table (and of a few types servers also
/// send); anything else is stored as `.bin`.
const EXTENSIONS: &[(&str, &str)] = &[
    ("image/jpeg", "jpg"),
    ("image/png", "png"),
    ("image/webp", "webp"),
    ("audio/aac", "aac"),
    ("audio/mp4", "m4a"),
    ("audio/mpeg", "mp3"),
    ("audio/amr", "amr"),
    ("audio/ogg", "ogg"),
    ("video/mp4", "mp4"),
    ("video/3gp", "3gp"),
    ("video/3gpp", "3gp"),
    ("text/plain", "txt"),
    ("application/pdf", "pdf"),
    ("application/vnd.ms-powerpoint", "ppt"),
    ("application/msword", "doc"),
    ("application/vnd.ms-excel", "xls"),
    (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "docx",
    ),
    (
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "pptx",
    ),
    (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "xlsx",
    ),
];

/// The file extension for a MIME type (its parameters and case ignored); `bin` when unknown.
///
/// ```
/// assert_eq!(nx_archive::extension("audio/ogg; codecs=opus"), "ogg");
/// assert_eq!(nx_archive::extension("Image/JPEG"), "jpg");
/// assert_eq!(nx_archive::extension("application/x-unknown"), "bin");
/// ```
pub fn extension(mime: &str) -> &'static str {
    let essence = mime.split(';').next().unwrap_or("").trim();
    EXTENSIONS
        .iter()
        .find(|(m, _)| m.eq_ignore_ascii_case(essence))
        .map_or("bin", |(_, ext)| ext)
}

/// The key of a file with this digest and MIME type (`None`: unknown, `.bin`) under `prefix`.
///
/// ```
/// use nx_protocol::download::Sha256Digest;
/// let key = nx_archive::object_key(&"media/2026".into(), &Sha256Digest::of(b"hi"), Some("image/png"));
/// assert_eq!(key.as_ref(), "media/2026/8f434346648f6b96df89dda901c5176b10a6d83961dd3c1ac88b59b2dc327aa4.png");
/// ```
pub fn object_key(prefix: &Path, sha256: &Sha256Digest, mime: Option<&str>) -> Path {
    prefix
        .clone()
        .join(format!("{sha256}.{}", mime.map_or("bin", extension)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_media_table_type_has_its_extension() {
        for kind in nx_protocol::wa::MediaKind::ALL {
            for mime in kind.mime_types() {
                assert_ne!(extension(mime), "bin", "{mime}");
            }
        }
    }

    #[test]
    fn an_empty_prefix_puts_keys_at_the_root() {
        let key = object_key(&Path::default(), &Sha256Digest::of(b""), None);
        assert_eq!(
            key.as_ref(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855.bin"
        );
    }
}
