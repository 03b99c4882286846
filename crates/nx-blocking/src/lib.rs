//! Blocking client for NXCloud's WhatsApp media API, on ureq 3 (no async runtime).
//!
//! A thin driver: signing, request building, answer parsing, integrity checks and retry policy
//! live in [`nx_protocol`]; this crate only does the I/O around them, so it behaves exactly like
//! the async client `nx-async` (same names, same errors, same retries).
//!
//! ```no_run
//! use nx_blocking::{Client, DownloadOptions, MediaKind, MediaSource, MessageDetails, SendMedia, UploadSource};
//!
//! # fn run() -> Result<(), nx_blocking::Error> {
//! let client = Client::builder().build()?; // NXCLOUD_ACCESS_KEY / NXCLOUD_ACCESS_SECRET / NXCLOUD_APPKEY
//! let phone = "8615800001795";
//! let uploaded = client.upload_media(phone, "image/png", UploadSource::path("logo.png"))?;
//! // Send it to a customer; not retried once it may have reached NXCloud.
//! let image = SendMedia::new(phone, "8613600009759", MediaKind::Image, MediaSource::id(&uploaded.id));
//! let sent = client.send_media(image.with_details(MessageDetails::new().caption("Our new logo")))?;
//! println!("message {}", sent.id);
//! let verified =
//!     client.download_media_to_path(phone, &uploaded.id, "copy.png", DownloadOptions::new())?;
//! println!("{} bytes", verified.len);
//! client.delete_media(phone, &uploaded.id)?;
//! # Ok(()) }
//! ```
//!
//! [`OnPremClient`] does the same for a WhatsApp Business On-Premises installation's media
//! endpoints (login and token renewal, upload, retrieve, delete, retry-download), and
//! [`NotificationHub`] matches the webhook's media notifications to the retry-downloads waiting
//! for them.
//!
//! One [`Client`] holds one `ureq::Agent`: connections are pooled and kept alive, so share the
//! client (it is cheap to clone and can be used from many threads).
//!
//! TLS: rustls with the `ring` provider (or aws-lc-rs, feature `aws-lc-rs`) and the webpki
//! (Mozilla) root set by default, so behaviour does not depend on the host's certificate store;
//! choose the operating system's store with [`RootStore::Native`] (feature `native-roots`), and
//! add a private CA with [`ClientBuilder::add_root_certificate_der`]. Verification is never
//! turned off. Plain `http` is refused except to loopback hosts unless explicitly allowed.
//! Redirects are not followed.
//!
//! Proxies: `https_proxy`/`HTTPS_PROXY`, `http_proxy`, `all_proxy`/`ALL_PROXY` and `NO_PROXY`
//! are read as curl reads them when the client is built (see [`nx_protocol::proxy`]); an
//! explicit [`ClientBuilder::proxy`] wins, [`ProxyConfig::Off`] turns proxies off. Every proxied
//! connection is an HTTP `CONNECT` tunnel; the proxy's credentials never appear in `Debug`,
//! logs or errors.
//!
//! # Cargo features
//!
//! | feature | default | what it does |
//! | --- | --- | --- |
//! | `native-roots` | off | [`RootStore::Native`]: the operating system's roots, read with `rustls-native-certs` (without it, asking for them is a configuration error) |
//! | `aws-lc-rs` | off | aws-lc-rs instead of ring as rustls' crypto provider; building it needs a C compiler, and cmake on some targets (ring needs neither) |
//!
//! Logging: this crate's own `tracing` events never carry the secret, a `sign` value, a token,
//! a password or a download URL's query. ureq itself logs through the `log` crate: at DEBUG it
//! redacts paths, queries and sensitive headers, but at TRACE (targets `ureq` and `ureq_proto`)
//! it dumps the wire, secrets included. Keep those two targets at DEBUG or below outside local
//! debugging; `tests/tests/ureq_debug_logs.rs` checks that DEBUG carries no secret.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod client;
mod cork;
mod deadline;
mod download;
mod drive;
mod notify;
mod onprem;
mod resolver;
mod sink;
mod transport;
mod upload;

pub use client::{Client, USER_AGENT};
pub use notify::{Expected, NotificationHub};
pub use onprem::OnPremClient;
pub use upload::{Reader, UploadSource};

pub use nx_protocol::call::{Limit, Phase, StallProtection};
pub use nx_protocol::config::{
    ClientBuilder, ClientConfig, OnPremBuilder, OnPremConfig, RootStore, TransportConfig,
};
pub use nx_protocol::download::{
    DownloadOptions, IntegrityError, Progress, Sha256Digest, Verified,
};
pub use nx_protocol::error::Error;
pub use nx_protocol::onprem::{DownloadRequested, MediaItemStatus, Retrieved, Token};
pub use nx_protocol::policy::retry::RetryPolicy;
pub use nx_protocol::proxy::{NoProxy, ProxyConfig, ProxyRules, ProxyUrl};
pub use nx_protocol::wa::{
    Deleted, MediaInfo, MediaKind, MediaSource, MessageDetails, SendMedia, SentMessage,
    UploadedAndSent, UploadedMedia, WhatsAppError,
};
pub use nx_protocol::{ApiCode, ResponseError};

/// The crate's README, whose example `cargo test` compiles and runs like any doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
