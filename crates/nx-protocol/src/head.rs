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
    headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The `Date` header, if present and text: what [`crate::policy::clock`] corrects the clock from
/// after a 1004.
pub fn date(headers: &HeaderMap) -> Option<&str> {
    headers.get(DATE)?.to_str().ok()
}
