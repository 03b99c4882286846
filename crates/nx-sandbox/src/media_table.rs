//! The media table of the NXCloud media spec (`nxcloud-wa-media.md`, "Accepted media"; the
//! On-Premises spec gives the same limits): the sandbox's own copy.
//!
//! Written from the spec rather than imported from `nx_protocol::wa::MediaKind`, for the same
//! reason as [`crate::signing`]: an emulator that shared the client's table would agree with
//! the client's mistakes instead of catching them. A unit test compares the two copies, so that
//! a difference is a decision and never a silent drift.
//!
//! # Units
//!
//! The spec writes "5 MB" and "100 KB" without saying which megabyte. The sandbox takes the
//! same reading as nx-protocol (`nx_protocol::wa::MB`): binary units, 1 MB = 1024 × 1024 bytes
//! and 1 KB = 1024 bytes. Limits are inclusive (a file of exactly the limit is accepted).
//!
//! # Spelling
//!
//! [`exact`] is the sandbox's strict reading of uploadMedia's `type` form field: the value must
//! be one of the table's spellings byte for byte. No case folding, no surrounding whitespace and
//! no parameters (`audio/ogg; codecs=opus` is refused; the table says `audio/ogg`). [`essence`]
//! is the lenient lookup, for MIME types taken from a `Content-Type` header (the inbound
//! simulation, file name extensions), where parameters and case are legitimate.

use std::fmt;

/// One megabyte as the table counts it (binary; see the module docs).
pub(crate) const MB: u64 = 1024 * 1024;
/// One kilobyte as the table counts it (binary; see the module docs).
pub(crate) const KB: u64 = 1024;

/// A row of the table: a kind of media, its MIME types and its size limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Kind {
    /// The kind's name as WhatsApp writes it (`image`, `audio`, ...).
    pub(crate) name: &'static str,
    /// Its MIME types, spelled as in the spec.
    pub(crate) mime_types: &'static [&'static str],
    /// Its size limit in bytes (inclusive).
    pub(crate) max_bytes: u64,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// The table, in the spec's order.
pub(crate) const TABLE: [Kind; 5] = [
    Kind {
        name: "image",
        mime_types: &["image/jpeg", "image/png"],
        max_bytes: 5 * MB,
    },
    Kind {
        name: "audio",
        mime_types: &[
            "audio/aac",
            "audio/mp4",
            "audio/mpeg",
            "audio/amr",
            "audio/ogg",
        ],
        max_bytes: 16 * MB,
    },
    Kind {
        name: "video",
        mime_types: &["video/mp4", "video/3gp"],
        max_bytes: 16 * MB,
    },
    Kind {
        name: "document",
        mime_types: &[
            "text/plain",
            "application/pdf",
            "application/vnd.ms-powerpoint",
            "application/msword",
            "application/vnd.ms-excel",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ],
        max_bytes: 100 * MB,
    },
    Kind {
        name: "sticker",
        mime_types: &["image/webp"],
        max_bytes: 100 * KB,
    },
];

/// The kind whose table spelling is exactly `mime` (the strict reading of the `type` field).
pub(crate) fn exact(mime: &str) -> Option<Kind> {
    TABLE
        .into_iter()
        .find(|kind| kind.mime_types.contains(&mime))
}

/// The kind of a `Content-Type`-style MIME type: its essence (before `;`, trimmed) compared
/// without ASCII case. A type holding control characters has no kind (it could not be sent
/// back as a header).
pub(crate) fn essence(mime: &str) -> Option<Kind> {
    if mime.chars().any(char::is_control) {
        return None;
    }
    let essence = mime.split(';').next().unwrap_or("").trim();
    TABLE.into_iter().find(|kind| {
        kind.mime_types
            .iter()
            .any(|m| m.eq_ignore_ascii_case(essence))
    })
}

/// The largest limit of any kind (documents, 100 MB).
pub(crate) fn largest() -> u64 {
    TABLE
        .into_iter()
        .map(|kind| kind.max_bytes)
        .max()
        .unwrap_or(0)
}

/// Every accepted MIME type, comma separated (for messages).
pub(crate) fn accepted() -> String {
    TABLE
        .iter()
        .flat_map(|kind| kind.mime_types.iter().copied())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a file was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The MIME type is not in the table (printable characters of it, at most 100).
    Type(String),
    /// The file is empty.
    Empty,
    /// The file is over its kind's limit.
    TooLarge {
        /// The kind.
        kind: Kind,
        /// The file's size.
        actual: u64,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Type(mime) => write!(
                f,
                "MIME type `{mime}` is not in the media table; accepted (spelled exactly so): {}",
                accepted()
            ),
            Refusal::Empty => {
                f.write_str("the file is empty; WhatsApp does not accept empty media")
            }
            Refusal::TooLarge { kind, actual } => write!(
                f,
                "{kind} files may be at most {} bytes; this one has {actual} bytes",
                kind.max_bytes
            ),
        }
    }
}

impl Refusal {
    /// The refused type as it may be shown: control characters escaped (`image/jpeg\r\n`
    /// shows as such, not as a `image/jpeg` that seems to be in the table), at most 100
    /// characters.
    fn mime(mime: &str) -> Refusal {
        Refusal::Type(
            mime.chars()
                .take(100)
                .map(|c| {
                    if c.is_control() {
                        c.escape_default().collect()
                    } else {
                        c.to_string()
                    }
                })
                .collect(),
        )
    }
}

/// Checks a size against a kind's limit: empty files and files over the limit are refused.
pub(crate) fn check_size(kind: Kind, len: u64) -> Result<Kind, Refusal> {
    if len == 0 {
        Err(Refusal::Empty)
    } else if len > kind.max_bytes {
        Err(Refusal::TooLarge { kind, actual: len })
    } else {
        Ok(kind)
    }
}

/// [`exact`], then [`check_size`].
pub(crate) fn check_exact(mime: &str, len: u64) -> Result<Kind, Refusal> {
    let kind = exact(mime).ok_or_else(|| Refusal::mime(mime))?;
    check_size(kind, len)
}

/// [`essence`], then [`check_size`].
pub(crate) fn check_essence(mime: &str, len: u64) -> Result<Kind, Refusal> {
    let kind = essence(mime).ok_or_else(|| Refusal::mime(mime))?;
    check_size(kind, len)
}

#[cfg(test)]
mod tests {
    use nx_protocol::wa::MediaKind;

    use super::*;

    /// The sandbox's copy, written from the spec, and nx-protocol's agree on every kind, MIME
    /// type (same spelling, same order) and limit. If this fails, one copy misread the spec:
    /// find out which before changing either.
    #[test]
    fn agrees_with_nx_protocol() {
        assert_eq!(
            TABLE.len(),
            MediaKind::ALL.len(),
            "the same number of kinds"
        );
        for (ours, theirs) in TABLE.iter().zip(MediaKind::ALL) {
            assert_eq!(ours.name, theirs.name());
            assert_eq!(ours.mime_types, theirs.mime_types(), "{theirs} MIME types");
            assert_eq!(ours.max_bytes, theirs.max_bytes(), "{theirs} limit");
            for mime in ours.mime_types {
                assert_eq!(MediaKind::from_mime(mime), Some(theirs), "{mime}");
                assert_eq!(exact(mime), Some(*ours));
            }
        }
        assert_eq!((MB, KB), (nx_protocol::wa::MB, nx_protocol::wa::KB));
        assert_eq!(
            largest(),
            MediaKind::ALL
                .map(MediaKind::max_bytes)
                .into_iter()
                .max()
                .unwrap()
        );
    }

    #[test]
    fn exact_is_strict_essence_is_not() {
        for mime in [
            "image/JPEG",
            " image/jpeg",
            "image/jpeg ",
            "image/jpeg\r\n",
            "audio/ogg; codecs=opus",
            "audio/ogg;codecs=opus",
            "image",
            "",
        ] {
            assert_eq!(exact(mime), None, "{mime:?}");
        }
        assert_eq!(essence("image/JPEG").map(|k| k.name), Some("image"));
        assert_eq!(
            essence("audio/ogg; codecs=opus").map(|k| k.name),
            Some("audio")
        );
        assert_eq!(essence("image/png\r\nEvil: 1"), None);
        assert_eq!(essence("image/gif"), None);
    }

    #[test]
    fn limits_are_inclusive() {
        for kind in TABLE {
            for mime in kind.mime_types {
                assert_eq!(check_exact(mime, kind.max_bytes), Ok(kind));
                assert_eq!(
                    check_exact(mime, kind.max_bytes + 1),
                    Err(Refusal::TooLarge {
                        kind,
                        actual: kind.max_bytes + 1
                    })
                );
                assert_eq!(check_exact(mime, 0), Err(Refusal::Empty));
            }
        }
        assert_eq!(
            check_exact("image/webp", 200 * 1024)
                .unwrap_err()
                .to_string(),
            "sticker files may be at most 102400 bytes; this one has 204800 bytes"
        );
        assert!(matches!(
            check_exact("video/quicktime", 1),
            Err(Refusal::Type(_))
        ));
        assert_eq!(
            check_exact("image/jpeg\r\n", 1),
            Err(Refusal::Type(r"image/jpeg\r\n".to_owned()))
        );
    }
}
