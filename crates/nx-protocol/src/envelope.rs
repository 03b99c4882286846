//! NXCloud's answer envelope: `{"code": <int>, "message": <string>, "data": <object or null>}`.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::code::ApiCode;

/// The envelope with `data` left unparsed, so it is parsed only once the code says success
/// (a failure's `data` may be anything, or absent).
#[derive(Debug, Deserialize)]
pub struct RawEnvelope<'a> {
    /// The code; 0 is success.
    pub code: ApiCode,
    /// The server's message. Absent is read as empty.
    #[serde(default)]
    pub message: Option<String>,
    /// The payload, borrowed from the answer bytes; `None` for absent or `null`.
    #[serde(borrow, default)]
    pub data: Option<&'a RawValue>,
}

impl<'a> RawEnvelope<'a> {
    /// Parses an envelope, borrowing `data` from `body`.
    pub fn parse(body: &'a [u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }
}

/// An envelope as a server writes one (used by the sandbox and by tests).
#[derive(Debug, serde::Serialize)]
pub struct Envelope<T> {
    /// The code.
    pub code: ApiCode,
    /// The message.
    pub message: String,
    /// The payload.
    pub data: Option<T>,
}
