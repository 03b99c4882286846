//! An upload's MIME type: guessed from the file's extension when not given (from its leading
//! bytes when the name has no known extension), then checked against the file's leading bytes
//! (with `infer`), so a mislabelled file is refused before it is sent.
//! Whether the type is accepted at all, and the size limits, are `nx_protocol`'s media table.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use nx_blocking::UploadSource;
use nx_protocol::wa::MediaKind;

use crate::exit::CliError;
use crate::{input, terminal};

/// How many leading bytes are read to recognise a file (OOXML needs a look inside the zip).
const HEAD: u64 = 64 * 1024;

/// The extensions [`EXTENSIONS`] knows, space separated (for hints).
fn accepted_extensions() -> String {
    EXTENSIONS
        .iter()
        .map(|(ext, _)| *ext)
        .collect::<Vec<_>>()
        .join(" ")
}

/// File extensions of the media table's types.
const EXTENSIONS: &[(&str, &str)] = &[
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("jpe", "image/jpeg"),
    ("png", "image/png"),
    ("webp", "image/webp"),
    ("aac", "audio/aac"),
    ("m4a", "audio/mp4"),
    ("mp3", "audio/mpeg"),
    ("amr", "audio/amr"),
    ("ogg", "audio/ogg"),
    ("oga", "audio/ogg"),
    ("opus", "audio/ogg"),
    ("mp4", "video/mp4"),
    ("3gp", "video/3gp"),
    ("txt", "text/plain"),
    ("pdf", "application/pdf"),
    ("ppt", "application/vnd.ms-powerpoint"),
    ("doc", "application/msword"),
    ("xls", "application/vnd.ms-excel"),
    (
        "docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
    (
        "pptx",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ),
    (
        "xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ),
];

const LEGACY_OFFICE: &[&str] = &[
    "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint",
];
const OOXML: &[&str] = &[
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
];
const ISO_MEDIA: &[&str] = &["video/mp4", "video/3gp", "audio/mp4"];

/// Types whose files always start with a signature `infer` knows: a file of one of these types
/// that shows no known signature is not what it claims to be.
const ALWAYS_RECOGNISED: &[&str] = &["image/jpeg", "image/png", "image/webp", "application/pdf"];

/// The media table type of a file name's extension (case is ignored).
pub(crate) fn from_extension(path: &Path) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?;
    EXTENSIONS
        .iter()
        .find(|(e, _)| e.eq_ignore_ascii_case(ext))
        .map(|(_, mime)| *mime)
}

/// The media table types a type `infer` detected may be declared as.
fn declarable_as(detected: &str) -> &'static [&'static str] {
    match detected {
        "image/jpeg" => &["image/jpeg"],
        "image/png" => &["image/png"],
        "image/webp" => &["image/webp"],
        "audio/aac" => &["audio/aac"],
        "audio/m4a" => &["audio/mp4"],
        "audio/mpeg" => &["audio/mpeg"],
        "audio/amr" => &["audio/amr"],
        "audio/ogg" | "audio/opus" => &["audio/ogg"],
        "video/mp4" | "video/x-m4v" => ISO_MEDIA,
        "application/pdf" => &["application/pdf"],
        "application/msword" => &["application/msword"],
        "application/vnd.ms-excel" => &["application/vnd.ms-excel"],
        "application/vnd.ms-powerpoint" => &["application/vnd.ms-powerpoint"],
        // An OLE2 container: one of the legacy Office formats, which one needs a deeper look.
        "application/x-ole-storage" => LEGACY_OFFICE,
        ooxml if OOXML.contains(&ooxml) => {
            &OOXML[OOXML.iter().position(|t| *t == ooxml).unwrap_or(0)..][..1]
        }
        // A zip whose contents were not recognised: possibly an OOXML document.
        "application/zip" => OOXML,
        _ => &[],
    }
}

/// Checks that `head` (a file's leading bytes) agrees with `declared` (a media table type, in the
/// table's spelling). The error names both.
pub(crate) fn check_leading_bytes(declared: &str, head: &[u8]) -> Result<(), String> {
    match infer::get(head).map(|t| t.mime_type()) {
        Some(detected) if declarable_as(detected).contains(&declared) => Ok(()),
        Some(detected) => Err(format!(
            "the type is {declared} but the file's leading bytes are {detected}"
        )),
        None if ALWAYS_RECOGNISED.contains(&declared) => Err(format!(
            "the type is {declared} but the file's leading bytes are not {declared} (no known file signature)"
        )),
        None => Ok(()),
    }
}

/// The media table type `head` (a file's leading bytes) shows, when it shows exactly one: the
/// detected type itself when the table has it, else the one type it may be declared as. `Err`
/// names what was seen when it is ambiguous (a zip or OLE2 container, ISO media) or unknown.
pub(crate) fn sniff(head: &[u8]) -> Result<&'static str, String> {
    let Some(detected) = infer::get(head).map(|t| t.mime_type()) else {
        return Err("its leading bytes show no known file signature".to_owned());
    };
    let candidates = declarable_as(detected);
    if let Some(exact) = candidates.iter().find(|c| **c == detected) {
        return Ok(exact);
    }
    match candidates {
        [only] => Ok(only),
        [] => Err(format!(
            "its leading bytes are {detected}, which WhatsApp does not accept"
        )),
        several => Err(format!(
            "its leading bytes are {detected}, which may be any of {}",
            several.join(", ")
        )),
    }
}

/// The largest file the media table accepts (a document): the cap of an upload source whose
/// size is not known up front.
fn max_upload() -> u64 {
    MediaKind::Document.max_bytes()
}

/// What an upload will be sent as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct UploadType {
    /// The MIME type in the media table's spelling.
    pub(crate) mime: &'static str,
    /// Its kind.
    pub(crate) kind: MediaKind,
    /// The file's size.
    pub(crate) len: u64,
    /// The whole content, when the source is not a regular file (a FIFO, a device): read once,
    /// within the media table's largest limit, and sent from memory.
    pub(crate) data: Option<Vec<u8>>,
}

impl UploadType {
    /// The SDK's source for `path`: the file itself (reopened for each attempt), or the bytes
    /// read from a source that is not a regular file.
    /// (The bytes move into the source.)
    pub(crate) fn source(&mut self, path: &Path) -> UploadSource {
        match self.data.take() {
            Some(bytes) => {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "upload".to_owned());
                UploadSource::bytes(bytes, name)
            }
            None => UploadSource::path(path),
        }
    }
}

/// The type an upload is sent as: `explicit` (given with the option `flag`), or the extension's,
/// or (when the name tells nothing) the one its leading bytes show; accepted by the media table for the file's size,
/// and in agreement with the file's leading bytes. Every refusal is a usage error, before any
/// byte is sent. A source that is not a regular file is read whole (capped) first, since its
/// size is not known.
pub(crate) fn upload_type(
    path: &Path,
    explicit: Option<&str>,
    flag: &str,
) -> Result<UploadType, CliError> {
    let shown = terminal::shown(&path.to_string_lossy()).to_string();
    let mut file = File::open(path).map_err(|e| CliError::io(format!("opening {shown}"), e))?;
    let meta = file
        .metadata()
        .map_err(|e| CliError::io(format!("reading {shown}"), e))?;
    let (len, head, data) = if meta.is_file() {
        let mut head = Vec::new();
        file.by_ref()
            .take(HEAD)
            .read_to_end(&mut head)
            .map_err(|e| CliError::io(format!("reading {shown}"), e))?;
        (meta.len(), head, None)
    } else {
        let what = format!(
            "{shown} is not a regular file, so it is read whole before the upload, up to the largest size WhatsApp accepts (a document's)"
        );
        let bytes = input::read_capped_from(file, max_upload(), &shown, &what)?;
        let head = bytes[..bytes.len().min(HEAD as usize)].to_vec();
        (bytes.len() as u64, head, Some(bytes))
    };
    let (given, source) = match explicit {
        Some(mime) => (mime, flag),
        None => match from_extension(path) {
            Some(mime) => (mime, "its extension"),
            None => (
                sniff(&head).map_err(|why| {
                    CliError::usage(format!(
                        "cannot tell the MIME type of {shown}: its name has no known extension and {why}; pass {flag} MIME"
                    ))
                    .with_hint(format!("accepted extensions: {}", accepted_extensions()))
                })?,
                "its leading bytes",
            ),
        },
    };
    let kind =
        MediaKind::check(given, len).map_err(|e| CliError::usage(format!("{shown}: {e}")))?;
    let mime = MediaKind::canonical_mime(given).map_or(kind.mime_types()[0], |(_, m)| m);
    check_leading_bytes(mime, &head).map_err(|mismatch| {
        CliError::usage(format!("{shown}: {mismatch} (type from {source})")).with_hint(format!(
            "pass the file's real type with {flag}, or upload the right file"
        ))
    })?;
    tracing::debug!(file = %shown, mime, kind = %kind, len, source, "upload type checked");
    Ok(UploadType {
        mime,
        kind,
        len,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    const JPEG: &[u8] = b"\xff\xd8\xff\xe0\0\x10JFIF\0";

    #[test]
    fn extensions_map_into_the_media_table() {
        for (ext, mime) in EXTENSIONS {
            assert!(MediaKind::from_mime(mime).is_some(), "{ext} -> {mime}");
        }
        assert_eq!(from_extension(Path::new("a/B.JPG")), Some("image/jpeg"));
        assert_eq!(from_extension(Path::new("noext")), None);
        assert_eq!(from_extension(Path::new("x.gif")), None);
    }

    #[test]
    fn leading_bytes_must_agree() {
        assert!(check_leading_bytes("image/png", PNG).is_ok());
        let err = check_leading_bytes("image/png", JPEG).unwrap_err();
        assert!(
            err.contains("image/png") && err.contains("image/jpeg"),
            "{err}"
        );
        assert!(check_leading_bytes("image/jpeg", b"plain text").is_err());
        // Text has no signature: accepted.
        assert!(check_leading_bytes("text/plain", b"plain text").is_ok());
        assert!(check_leading_bytes("text/plain", PNG).is_err());
    }

    #[test]
    fn leading_bytes_tell_the_type_when_they_tell_one() {
        assert_eq!(sniff(PNG), Ok("image/png"));
        assert_eq!(sniff(JPEG), Ok("image/jpeg"));
        assert_eq!(sniff(b"%PDF-1.7\n"), Ok("application/pdf"));
        let text = sniff(b"plain text").unwrap_err();
        assert!(text.contains("no known file signature"), "{text}");
        let gif = sniff(b"GIF89a\x01\0\x01\0").unwrap_err();
        assert!(gif.contains("image/gif"), "{gif}");
        let zip = sniff(b"PK\x03\x04\x14\0\0\0\0\0").unwrap_err();
        assert!(zip.contains("may be any of"), "{zip}");
    }
}
