//! The sans-IO core of the NXCloud SDK.
//!
//! Like `quinn-proto`, this crate contains no networking code and reads no clock: time and bytes
//! come in as arguments, and requests and decisions come out. The transports (`nx-async`,
//! `nx-blocking`) do the I/O around it; a user with their own HTTP client can use it directly:
//!
//! ```
//! use nx_protocol::operation::{build_request, parse_response, BaseUrl};
//! use nx_protocol::wa::GetMedia;
//! use nx_protocol::{Credentials, OutgoingBody, Timestamp};
//!
//! let creds = Credentials::new("fme2na3kdi3ki", "abciiiko2k3");
//! let base = BaseUrl::parse("https://api2.nxcloud.com").unwrap();
//! let op = GetMedia::new("8615800001795", "fd81acff-eea8-4d9d-acc9-6c62904d6615");
//! let request = build_request(&op, &base, &creds, Timestamp::from_millis(1_663_747_000_000)).unwrap();
//!
//! assert_eq!(request.uri(), "https://api2.nxcloud.com/api/wa/getMedia");
//! assert_eq!(request.headers()["bizType"], "2");
//! let OutgoingBody::Bytes(body) = request.body() else { unreachable!() };
//! assert_eq!(
//!     &body[..],
//!     br#"{"business_phone":"8615800001795","Media-ID":"fd81acff-eea8-4d9d-acc9-6c62904d6615","messaging_product":"whatsapp"}"#
//! );
//!
//! // ... send it with any HTTP client, then:
//! let answer = br#"{"code":0,"message":"Request successful","data":{"mime_type":"image/webp","file_name":"a.webp","url":"https://oss.example/a.webp?Expires=1663747602&OSSAccessKeyId=k&Signature=s"}}"#;
//! let info = parse_response(&op, http::StatusCode::OK, answer).unwrap();
//! assert_eq!(info.mime_type, "image/webp");
//! assert_eq!(info.url.expires_at(), Some(1_663_747_602));
//! assert_eq!(info.url.to_string(), "https://oss.example/a.webp?<redacted>");
//! ```
//!
//! Modules: [`sign`] (the signer, reusable by every NXCloud API), [`operation`] (request building
//! and answer parsing for any [`operation::Operation`]), [`wa`] (WhatsApp media), [`onprem`]
//! (WhatsApp On-Premises media), [`policy`] (retry and clock skew), [`download`] (streamed
//! integrity checks), [`call`] (for writing a transport: the call machine both transports drive,
//! and every time limit of a call).
//!
//! No cargo features: everything here is pure, and always built.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod body;
mod calendar;
pub mod call;
pub mod client;
pub mod code;
pub mod download;
pub mod envelope;
pub mod error;
pub mod head;
mod lenient;
pub mod multipart;
pub mod onprem;
pub mod operation;
pub mod policy;
pub mod proxy;
mod redact;
pub mod secret;
pub mod sign;
pub mod time;
pub mod wa;

#[cfg(test)]
mod proptests;

pub use body::{OutgoingBody, StreamedBody};
pub use code::{ApiCode, BizType};
pub use error::{DataError, InvalidInput, ResponseError, Snippet};
pub use redact::redact_urls;
pub use secret::{AccessSecret, Credentials, REDACTED};
pub use sign::Signature;
pub use time::Timestamp;

/// The crate's README, whose example `cargo test` compiles and runs like any doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
