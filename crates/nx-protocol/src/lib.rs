//! The sans-IO core of the NXCloud SDK.
//!
//! Like `quinn-proto`, this crate contains no networking code and reads no clock: time and bytes
//! come in as arguments, and requests and decisions come out. The transports (`nx-async`,
//! `nx-blocking`) do the I/O around it; a user with their own HTTP client can use it directly:
//!
//! ```
//! use nx_protocol::wa::GetMedia;
//! use nx_protocol::{build_request, parse_response, BaseUrl, Credentials, OutgoingBody, Timestamp};
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
//! assert_eq!(info.mime_type(), "image/webp");
//! assert_eq!(info.url().expires_at(), Some(1_663_747_602));
//! assert_eq!(info.url().to_string(), "https://oss.example/a.webp?<redacted>");
//! ```
//!
//! ## In reading order
//!
//! - **Any NXCloud call**: [`Operation`], [`build_request`], [`parse_response`], [`BaseUrl`],
//!   [`Credentials`], [`Timestamp`]; the signer itself in [`sign`], reusable by every NXCloud API;
//!   [`redact_urls`] for text that may hold a signed URL.
//! - **The APIs**: [`wa`] (WhatsApp media and messages through NXCloud), [`onprem`] (the
//!   WhatsApp Business On-Premises media API, its login and notifications).
//! - **Settings and errors**: [`config`] ([`TransportConfig`]: timeouts, retries, limits, TLS,
//!   proxies; [`ClientConfig`], [`OnPremConfig`], the builders), and [`Error`], the one error both
//!   transports return ([`InvalidInput`] and [`ResponseError`] are what nx-protocol finds itself).
//! - **Downloads**: [`download`] (the checks a download passes, [`download::DownloadOptions`]).
//! - **Policy**: [`policy`] (when to retry, how to correct the clock), [`proxy`] (which proxy a
//!   URL goes through).
//! - **For writing a transport**: [`call`], the call machine both transports drive (every
//!   attempt, limit and check of a call), with what it reads and builds: [`head`], [`body`],
//!   [`multipart`], [`envelope`], [`code`], [`secret`], [`time`].
//!
//! No cargo features: everything here is pure, and always built.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

// The user's API.
pub mod config;
pub mod error;
pub mod onprem;
pub mod operation;
pub mod sign;
pub mod wa;

pub mod download;
pub mod policy;
pub mod proxy;

// For writing a transport.
pub mod body;
pub mod call;
pub mod code;
pub mod envelope;
pub mod head;
pub mod multipart;
pub mod secret;
pub mod time;

mod calendar;
mod lenient;
mod redact;
mod scan;

#[cfg(test)]
mod proptests;

pub use config::{ClientConfig, OnPremConfig, OnPremLogin, TransportConfig};
pub use error::{BoxError, DataError, Error, InvalidInput, ResponseError, Snippet};
pub use operation::{BaseUrl, Operation, build_request, parse_response};
pub use redact::redact_urls;
pub use secret::{AccessSecret, Credentials, REDACTED};
pub use sign::Signature;
pub use time::Timestamp;

pub use body::{OutgoingBody, StreamedBody};
pub use code::{ApiCode, BizType};

/// The old path of [`config`] and [`Error`] (the module was named `client`), kept so that code
/// written against it still builds.
#[doc(hidden)]
pub mod client {
    pub use crate::config::*;
    pub use crate::error::{BoxError, Error, peer};
}

/// The crate's README, whose example `cargo test` compiles and runs like any doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
