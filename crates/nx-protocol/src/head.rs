//! The few things transports read from an answer's headers, read one way for both.

use http::HeaderMap;
use http::header::{CONTENT_LENGTH, DATE};

/// The `Content-Length`, if present and a number (a missing or unreadable one is treated as
/// unannounced; the download checks then go by what arrives).
///
/// ```
/// let mut headers = http::HeaderMap::new();
/// headers.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from_static("42"));
/// assert_eq!(nx_protocol::head::content_length(&headers), Some(42));
/// ```
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    announced_length(headers).ok().flatten()
}

/// The `Content-Length`: `None` when absent, an error when present but not a number (where an
/// answer with such a header is refused rather than read by what arrives).
///
/// ```
/// let mut headers = http::HeaderMap::new();
/// assert_eq!(nx_protocol::head::announced_length(&headers), Ok(None));
/// headers.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from_static("12x"));
/// assert!(nx_protocol::head::announced_length(&headers).is_err());
/// assert_eq!(nx_protocol::head::content_length(&headers), None);
/// ```
pub fn announced_length(headers: &HeaderMap) -> Result<Option<u64>, &'static str> {
    headers
        .get(CONTENT_LENGTH)
        .map(|value| {
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or("the Content-Length is not a number")
        })
        .transpose()
}

/// The `Date` header, if present and text: what [`crate::policy::clock`] corrects the clock from
/// after a 1004.
pub fn date(headers: &HeaderMap) -> Option<&str> {
    headers.get(DATE)?.to_str().ok()
}
