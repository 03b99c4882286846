//! WhatsApp Business On-Premises API: media endpoints (a separate API with its own auth and its
//! own error code space).
//!
//! The On-Premises API is a self-hosted client a business runs at its own base URL. Unlike
//! NXCloud's API nothing is signed: a [`Login`] with the user name and password (Basic auth)
//! answers a bearer [`Token`], which every other call carries. Each call is an
//! [`OnPremOperation`]; [`build_request`] turns it into an `http::Request` and [`parse_response`]
//! turns the answer into its output or a [`crate::ResponseError`] (Meta's error shape becomes
//! [`crate::ResponseError::OnPrem`] with a [`MetaError`], whose [`MetaCode`] is Meta's code
//! space, not NXCloud's [`crate::ApiCode`]).
//!
//! | call | request | output |
//! | --- | --- | --- |
//! | [`Login`] | `POST /v1/users/login` | [`Token`] |
//! | [`UploadMedia`] | `POST /v1/media`, the raw file streamed | [`UploadedMedia`] |
//! | [`RetrieveMedia`] | `GET /v1/media/{id}`, the file streamed back | [`RetrievedMedia`] (see [`RetrieveMedia::classify`]) |
//! | [`DeleteMedia`] | `DELETE /v1/media/{id}` | `()` |
//! | [`RetryDownload`] | `GET /v1/media/{id}/download` | [`DownloadRequested`] |
//!
//! Media ids are percent-encoded as one path segment ([`media_path`]): no id can reach another
//! path.
//!
//! A retry-download only starts the download; its outcome arrives at the business's webhook as a
//! notification ([`parse_media_notification`]), which [`PendingDownloads`] matches to the ids
//! that were asked for:
//!
//! ```
//! use nx_protocol::onprem::{
//!     build_request, parse_media_notification, parse_response, Auth, MediaItemStatus,
//!     PendingDownloads, RetryDownload, Token,
//! };
//! use nx_protocol::operation::BaseUrl;
//! use nx_protocol::{OutgoingBody, Timestamp};
//!
//! let base = BaseUrl::parse("https://wa.example.internal:9090").unwrap();
//! let token = Token::from_parts("eyJhbGciOi", None);
//! let id = "f043afd0-f0ae-4b9c-ab3d-696fb4c8cd68";
//!
//! // 1. Ask the client to download the media again.
//! let op = RetryDownload::new(id);
//! let request = build_request(&op, &base, Auth::Bearer(&token)).unwrap();
//! assert_eq!(request.method(), http::Method::GET);
//! assert_eq!(request.uri().path(), format!("/v1/media/{id}/download"));
//! assert_eq!(request.headers()["authorization"], "Bearer eyJhbGciOi");
//! assert_eq!(request.body(), &OutgoingBody::Empty);
//!
//! // 2. ... send it with any HTTP client; the answer acknowledges the request.
//! let answer = format!(r#"{{"media_items":[{{"id":"{id}"}}],"meta":{{"api_status":"stable","version":"3.0.0.0"}}}}"#);
//! let ack = parse_response(&op, http::StatusCode::OK, &http::HeaderMap::new(), answer.as_bytes())
//!     .unwrap();
//! let mut pending = PendingDownloads::new();
//! for id in ack.ids {
//!     pending.register_until(id, Timestamp::from_millis(1_700_000_600_000));
//! }
//!
//! // 3. Later, the webhook receives the notification.
//! let notification = format!(
//!     r#"{{"media_items":[{{"image":{{"id":"{id}","mime_type":"image/jpeg",
//!       "sha256":"0ed3d9d4db83ed7751314af5f2e9bf008edc49a101bebb9054a97f824cf2136b",
//!       "status":"downloaded"}},"type":"image"}}]}}"#
//! );
//! let items = parse_media_notification(notification.as_bytes()).unwrap();
//! let done = pending.feed(items);
//! let [MediaItemStatus::Downloaded { mime_type, sha256, .. }] = done.as_slice() else {
//!     panic!("the download failed: {done:?}");
//! };
//! assert_eq!(mime_type.as_deref(), Some("image/jpeg"));
//! assert!(sha256.is_some()); // check the retrieved file against it
//! assert!(pending.is_empty());
//! ```

mod error;
mod login;
mod media;
mod notification;
mod operation;
mod token;

#[cfg(test)]
mod tests;

pub use error::{MetaCode, MetaError, parse_errors};
pub use login::{Login, format_expires_after, parse_expires_after};
pub use media::{
    DeleteMedia, DownloadRequested, RetrieveHead, RetrieveMedia, Retrieved, RetrievedMedia,
    RetryDownload, UploadMedia, UploadedMedia,
};
pub use notification::{
    DOWNLOADED, MediaItemStatus, NOTIFICATION_MEDIA_TYPES, NotificationError, PendingDownloads,
    Waiters, parse_media_notification,
};
pub use operation::{
    Auth, AuthKind, MAX_ERROR_BODY, OnPremBody, OnPremOperation, build_request, media_path,
    parse_response,
};
pub use token::{AfterRejection, NextToken, Token, TokenSlot};
