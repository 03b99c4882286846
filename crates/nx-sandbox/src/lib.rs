//! A strict local emulator of NXCloud's WhatsApp media API and the WhatsApp Business
//! On-Premises media API, for trying the SDK without credentials and for testing it without a
//! network.
//!
//! ```
//! use nx_sandbox::{Sandbox, SandboxConfig, DEMO_ACCESS_KEY, DEMO_BUSINESS_PHONE};
//!
//! let sandbox = Sandbox::start(SandboxConfig::default()).expect("the sandbox starts");
//! println!("NXCloud and On-Premises sandbox at {}", sandbox.base_url());
//! println!("access key {DEMO_ACCESS_KEY}, business phone {DEMO_BUSINESS_PHONE}");
//! assert!(sandbox.base_url().starts_with("http://127.0.0.1:"));
//! // Stops when dropped (or with `sandbox.shutdown()`).
//! ```
//!
//! # What it serves
//!
//! - NXCloud (signed with the MD5 scheme, answered in the `{code,message,data}` envelope):
//!   `POST /api/wa/getMedia`, `/api/wa/deleteMedia`, `/api/wa/uploadMedia`. The checks, their
//!   order and their codes are listed under [NXCloud checks](#nxcloud-checks) below.
//! - `POST /api/wa/mt` for media messages (image, video, audio, document, sticker by `id` or
//!   `link`), checked field by field after the same signature checks, the `appkey` against the
//!   account's applications ([`Account::appkey`], [`DEMO_APPKEY`]) and an `id` against the
//!   business phone's media and its kind; accepted messages are recorded
//!   ([`Sandbox::sent_messages`]). [`Fault::Code`] and [`Fault::WhatsAppError`] make it answer
//!   9003, 9005, 9099 and the like.
//! - The download URLs getMedia answers with: `GET /oss/<key>?Expires=..&OSSAccessKeyId=..&Signature=..`,
//!   HMAC-signed for `GET` (the query read form-encoded, as object storage reads it), 403 when
//!   expired, tampered, unsigned or asked with another method, 404 once the media is deleted,
//!   streamed.
//! - On-Premises: `POST /v1/users/login`, `POST /v1/users/logout`, `POST /v1/media`,
//!   `GET`/`HEAD`/`DELETE /v1/media/{id}`, `GET /v1/media/{id}/download` (202, with the
//!   asynchronous notification to the callback URL). `Authorization` and an upload's
//!   `Content-Type` must be sent once; a token ends at the second its `expires_after` names.
//! - Its own admin endpoints under `/_sandbox/` (inbound simulation, expiry, clock, log, sent
//!   messages).
//!
//! It runs on its own thread with its own tokio runtime, so it serves async and blocking
//! clients alike, and stops (within [`SandboxConfig::shutdown_grace`]) when dropped.
//!
//! # HTTPS
//!
//! With [`SandboxConfig::tls`] it serves HTTPS only: at start it makes a throwaway CA and a
//! certificate that CA signed for the listening IP (rcgen, ECDSA P-256; the only name is the IP,
//! since clients reach it by IP literal), and [`Sandbox::ca_pem`] gives the CA's certificate for
//! clients to trust. The keys never leave the process. A handshake must complete within 10 s.
//!
//! ```
//! use nx_sandbox::{Sandbox, SandboxConfig};
//! let sandbox = Sandbox::start(SandboxConfig::default().tls(true)).unwrap();
//! assert!(sandbox.base_url().starts_with("https://127.0.0.1:"));
//! assert!(sandbox.ca_pem().unwrap().starts_with("-----BEGIN CERTIFICATE-----"));
//! ```
//!
//! No cargo features.
//!
//! # Storage
//!
//! Media bytes are always written to a temporary directory owned by the sandbox
//! (`tempfile::TempDir`, removed when it stops), chunk by chunk as they arrive; downloads are
//! streamed from there. Only metadata (id, MIME, name, size, SHA-256) is in memory.
//!
//! Who sees what: uploadMedia media is visible to NXCloud calls on the uploading phone;
//! `POST /v1/media` media to the On-Premises routes; inbound (customer) media to NXCloud calls on
//! the receiving merchant phone and to the On-Premises routes.
//!
//! # NXCloud checks
//!
//! In this order; the first failing check answers:
//!
//! | check | answer |
//! | --- | --- |
//! | JSON routes: body over [`SandboxConfig::max_json_body`] (announced or read); uploadMedia: body announced over 101 MiB | HTTP 413 (connection closed) |
//! | a common header (accessKey, ts, bizType, action, sign) absent or empty | 1001 |
//! | a common header repeated; bizType not `2`; action not the path's | 1002 |
//! | unknown accessKey | 1005 |
//! | ts not decimal milliseconds within 60 000 ms of the sandbox clock | 1004 |
//! | wrong, absent or repeated Content-Type (`application/json` for getMedia/deleteMedia, `multipart/form-data` with a boundary for uploadMedia) | 1003 |
//! | sign mismatch (JSON: over the raw body bytes as received; multipart: without the body) | 1003 |
//! | invalid JSON, not a JSON object / malformed form | 9000 |
//! | a known field sent twice (JSON: a repeated key), over 1 KiB, or (form) not UTF-8 | 1002 |
//! | a field missing or empty (JSON: or `null`) | 9000 |
//! | a field not a string (JSON); messaging_product not exactly `whatsapp` | 1002 |
//! | business_phone not digits | 9002 |
//! | business_phone not bound to the account | 9006 |
//! | upload: type not spelled exactly as in the media table, or the file over its kind's limit | 1002, the message names the accepted types or the limit |
//! | upload: empty file | 9000 |
//! | upload: sandbox storage full | 9001 |
//! | unknown (or deleted, or another phone's) media id | -1 |
//!
//! 9000 ("a required body field is missing") is for what is absent or empty, 1002 ("a wrong
//! body parameter") for what is there with a wrong value. Values are judged as sent: form
//! fields are not trimmed, and `type` is compared byte for byte with the spec's media table
//! (no case folding, no `; codecs=...` parameters). The sandbox keeps its own copy of that
//! table, with nx-protocol's reading of "MB" (1 MB = 1024 × 1024 bytes).
//!
//! Envelope answers use HTTP 200 whatever the code (our reading of the vendor's documentation)
//! and carry a `Date` header from the sandbox clock, offset included, so a client can correct
//! its clock after 1004.
//!
//! # Faults, log, inbound simulation
//!
//! [`Sandbox::faults`] takes [`FaultRule`]s (see [`Faults`] and [`Fault`]), [`Sandbox::log`] shows
//! what was asked and answered, and [`Sandbox::receive_inbound`] simulates a customer sending
//! media (stored, then announced by NXCloud's webhook).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

// Layers, top first: a module uses modules of its own layer or lower ones, never of a higher
// one, and no uses form a circle (`layers.rs` checks both).
//
// Routes: the server (accept loop, routing, faults) and one handler module per API.
mod admin;
mod inbound;
mod nxcloud;
mod onprem;
mod oss;
mod send;
mod server;
// The state every handler shares.
mod state;
// The domain: what the sandbox knows and decides.
mod clock;
mod config;
mod fault;
mod log;
mod loopback;
mod media_table;
mod outbound;
mod outbox;
pub mod signing;
mod store;
mod tls;
// HTTP primitives: reading requests, building answers and their bodies.
mod body;
mod paced;
mod raw;
mod request;
mod response;
// Shared helpers.
mod pace;
mod shutdown;
mod sync;
mod text;
// Beside the sandbox: a real S3 API (moto) for tests of the archive.
mod s3;

#[cfg(test)]
mod layers;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{oneshot, watch};

pub use config::{
    Account, DEFAULT_MAX_JSON_BODY, DEFAULT_MAX_STORAGE_BYTES, DEFAULT_TOKEN_LIFETIME,
    DEFAULT_URL_LIFETIME, DEMO_ACCESS_KEY, DEMO_ACCESS_SECRET, DEMO_APPKEY, DEMO_BUSINESS_PHONE,
    DEMO_CUSTOMER_PHONE, DEMO_ONPREM_PASSWORD, DEMO_ONPREM_USER, ONPREM_API_VERSION,
    OSS_ACCESS_KEY_ID, OnPremUser, SandboxConfig, SandboxError, TS_WINDOW_MS,
};
pub use fault::{
    Fault, FaultId, FaultRule, Faults, META_INVALID_PARAMETER, STALL_LIMIT, Target, Trigger,
    WRONG_TYPES_BODY,
};
pub use inbound::{INBOUND_TYPES, Inbound, InboundMessage};
pub use log::{LOG_CAPACITY, LogEntry, RequestLog, Route};
pub use outbound::Delivery;
pub use outbox::{MAX_SENT, SentMessage};
pub use s3::{S3_ACCESS_KEY_ID, S3_REGION, S3_SECRET_ACCESS_KEY, S3Server, S3ServerError};

use crate::config::parse_loopback;
use crate::state::State;
use crate::store::{NewMedia, Origin, Store, StoreError};
use crate::sync::lock;

/// A running sandbox. Stops when dropped.
pub struct Sandbox {
    state: Arc<State>,
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    done: Option<oneshot::Receiver<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    ca_pem: Option<String>,
}

impl fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sandbox")
            .field("base_url", &self.state.base_url)
            .field("config", &self.state.config)
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// Binds the configured address (`127.0.0.1:0` by default: a free port) and starts serving
    /// on a thread of its own. Can be called from async code or not.
    pub fn start(config: SandboxConfig) -> Result<Sandbox, SandboxError> {
        config.validate()?;
        let listener = std::net::TcpListener::bind(config.bind)
            .map_err(SandboxError::io("binding the listening address"))?;
        listener
            .set_nonblocking(true)
            .map_err(SandboxError::io("configuring the listener"))?;
        let addr = listener
            .local_addr()
            .map_err(SandboxError::io("reading the bound address"))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("nx-sandbox-worker")
            .enable_all()
            .build()
            .map_err(SandboxError::io("starting the runtime"))?;
        let listener = {
            let _entered = runtime.enter();
            tokio::net::TcpListener::from_std(listener)
                .map_err(SandboxError::io("registering the listener"))?
        };

        let tls = config
            .tls
            .then(|| tls::new(reachable(addr.ip())))
            .transpose()?;
        let seed = config.seed.unwrap_or_else(|| fastrand::u64(..));
        let mut rng = fastrand::Rng::with_seed(seed);
        let store = Store::new(
            config.storage_dir.as_deref(),
            config.max_storage_bytes,
            rng.u64(..),
        )?;
        let mut oss_key = [0u8; 32];
        rng.fill(&mut oss_key);
        let (shutdown, shutdown_rx) = watch::channel(false);
        let webhook_url = parse_loopback(config.webhook_url.as_deref())?;
        let callback_url = parse_loopback(config.onprem_callback_url.as_deref())?;
        let passwords: HashMap<String, String> = config
            .onprem_users
            .iter()
            .map(|u| (u.username.clone(), u.password.clone()))
            .collect();
        let must_change_password: HashSet<String> = config
            .onprem_users
            .iter()
            .filter(|u| u.must_change_password)
            .map(|u| u.username.clone())
            .collect();
        let state = Arc::new(State {
            clock: clock::Clock::new(config.clock_offset_ms),
            base_url: base_url(addr, tls.is_some()),
            config,
            store: Arc::new(store),
            faults: Faults::default(),
            log: RequestLog::default(),
            outbox: outbox::Outbox::default(),
            oss_key,
            rng: Mutex::new(rng),
            tokens: Mutex::new(HashMap::new()),
            passwords: Mutex::new(passwords),
            must_change_password: Mutex::new(must_change_password),
            webhook_url: Mutex::new(webhook_url),
            callback_url: Mutex::new(callback_url),
            shutdown: shutdown_rx,
            runtime: runtime.handle().clone(),
        });
        let (done_tx, done) = oneshot::channel();
        let server_state = Arc::clone(&state);
        let (acceptor, ca_pem) = tls.map(|t| (t.acceptor, t.ca_pem)).unzip();
        let thread = std::thread::Builder::new()
            .name("nx-sandbox".into())
            .spawn(move || {
                runtime.block_on(server::serve(listener, server_state, acceptor));
                runtime.shutdown_timeout(Duration::from_secs(1));
                let _ = done_tx.send(());
            })
            .map_err(SandboxError::io("starting the server thread"))?;
        Ok(Sandbox {
            state,
            addr,
            shutdown,
            done: Some(done),
            thread: Some(thread),
            ca_pem,
        })
    }

    /// With [`SandboxConfig::tls`], the PEM certificate of the throwaway CA that signed the
    /// server's certificate: the root a client must trust to reach [`Sandbox::base_url`].
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` (`https://` with [`SandboxConfig::tls`]; no trailing slash): the
    /// base URL for both APIs.
    pub fn base_url(&self) -> &str {
        &self.state.base_url
    }

    /// The fault rules.
    pub fn faults(&self) -> &Faults {
        &self.state.faults
    }

    /// The request log.
    pub fn log(&self) -> &RequestLog {
        &self.state.log
    }

    /// The messages `POST /api/wa/mt` accepted, oldest first (also `GET /_sandbox/messages`).
    pub fn sent_messages(&self) -> Vec<SentMessage> {
        self.state.outbox.messages()
    }

    /// The sandbox clock in Unix milliseconds (system time plus the offset): the time `ts`
    /// is checked against.
    pub fn now_millis(&self) -> u64 {
        self.state.clock.now_ms()
    }

    /// The clock offset in milliseconds.
    pub fn clock_offset_ms(&self) -> i64 {
        self.state.clock.offset_ms()
    }

    /// Moves the sandbox clock: `ts` checks, URL and token expiry and the `Date` header all
    /// follow it. Advancing it is how tests expire URLs and tokens without sleeping.
    pub fn set_clock_offset_ms(&self, offset_ms: i64) {
        self.state.clock.set_offset_ms(offset_ms);
    }

    /// Sets (or, with `None`, removes) the NXCloud inbound webhook URL (a loopback `http://`
    /// URL).
    pub fn set_webhook_url(&self, url: Option<&str>) -> Result<(), SandboxError> {
        let url = parse_loopback(url)?;
        *lock(&self.state.webhook_url) = url;
        Ok(())
    }

    /// Sets (or removes) the On-Premises callback URL (a loopback `http://` URL).
    pub fn set_onprem_callback_url(&self, url: Option<&str>) -> Result<(), SandboxError> {
        let url = parse_loopback(url)?;
        *lock(&self.state.callback_url) = url;
        Ok(())
    }

    /// Simulates a customer sending media: stores it (visible to getMedia on the merchant phone
    /// and to the On-Premises routes), and POSTs NXCloud's inbound webhook to the configured URL
    /// in the background (the log shows the delivery as [`Route::InboundWebhook`]). Returns at
    /// once with what was stored and the exact body sent.
    pub fn receive_inbound(&self, inbound: Inbound) -> Result<InboundMessage, SandboxError> {
        let message = self.store_inbound(&inbound)?;
        let url = lock(&self.state.webhook_url).clone();
        let state = Arc::clone(&self.state);
        let body = Bytes::from(message.webhook_body.clone());
        self.state.runtime.spawn(async move {
            state.deliver(Route::InboundWebhook, url, body).await;
        });
        Ok(message)
    }

    /// Like [`Sandbox::receive_inbound`], and waits for the webhook delivery's outcome.
    pub async fn deliver_inbound(
        &self,
        inbound: Inbound,
    ) -> Result<(InboundMessage, Delivery), SandboxError> {
        let message = self.store_inbound(&inbound)?;
        let url = lock(&self.state.webhook_url).clone();
        let state = Arc::clone(&self.state);
        let body = Bytes::from(message.webhook_body.clone());
        let delivery = self
            .state
            .runtime
            .spawn(async move { state.deliver(Route::InboundWebhook, url, body).await })
            .await
            .map_err(|_| SandboxError::Stopped)?;
        Ok((message, delivery))
    }

    fn store_inbound(&self, inbound: &Inbound) -> Result<InboundMessage, SandboxError> {
        let state = &self.state;
        let (_, merchant) = inbound::validate(
            state,
            &inbound.msg_type,
            &inbound.mime,
            inbound.bytes.len() as u64,
            &inbound.from,
            inbound.merchant_phone.as_deref(),
        )
        .map_err(SandboxError::Inbound)?;
        let media = state
            .store
            .insert_bytes(
                &inbound.bytes,
                NewMedia {
                    msg_type: inbound.msg_type.clone(),
                    mime: inbound.mime.clone(),
                    file_name: inbound.file_name.clone(),
                    origin: Origin::Inbound {
                        phone: merchant.clone(),
                    },
                },
            )
            .map_err(|e| match e {
                StoreError::Full => SandboxError::Inbound("the sandbox's storage is full".into()),
                StoreError::Io(source) => SandboxError::Io {
                    context: "storing inbound media",
                    source,
                },
            })?;
        Ok(inbound::webhook(
            state,
            &media,
            &inbound.from,
            &merchant,
            inbound.caption.as_deref(),
            &inbound.profile_name,
            inbound.file_name.is_some(),
        ))
    }

    /// Marks inbound media as gone from WhatsApp's servers: a later retry-download is
    /// acknowledged but notified with an `errors` array. False if no inbound media has that id.
    pub fn expire_inbound(&self, media_id: &str) -> bool {
        self.state.store.expire(media_id)
    }

    /// Revokes every On-Premises token (clients then get 401 and must log in again).
    pub fn revoke_onprem_tokens(&self) {
        lock(&self.state.tokens).clear();
    }

    /// How many media files are stored.
    pub fn media_count(&self) -> usize {
        self.state.store.count()
    }

    /// Runs until `shutdown` completes (e.g. Ctrl-C), then stops. For the command line:
    /// `Sandbox::start(config)?.run_until(ctrl_c).await`.
    pub async fn run_until<F: Future>(mut self, shutdown: F) {
        shutdown.await;
        let _ = self.shutdown.send(true);
        if let Some(done) = self.done.take() {
            let _ = done.await;
        }
        self.stop();
    }

    /// Stops serving: new connections are refused, in-flight requests get the grace period,
    /// stalled ones are cut. Returns when the server thread has ended.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The address clients reach a listener bound to `ip` at (loopback for an unspecified one).
fn reachable(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    }
}

fn base_url(addr: SocketAddr, https: bool) -> String {
    let scheme = if https { "https" } else { "http" };
    // SocketAddr's Display brackets an IPv6 address.
    format!(
        "{scheme}://{}",
        SocketAddr::new(reachable(addr.ip()), addr.port())
    )
}

/// The crate's README, whose example `cargo test` compiles and runs like any doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
