//! The client: one generic entry point for any NXCloud operation, and the media calls on top.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use nx_protocol::Timestamp;
use nx_protocol::call::{Call, Upload};
use nx_protocol::config::{ClientBuilder, ClientConfig, FromConfig};
use nx_protocol::error::Error;
use nx_protocol::operation::Operation;
use nx_protocol::policy::clock::ClockOffset;
use nx_protocol::wa::{
    DeleteMedia, Deleted, GetMedia, MediaInfo, MediaSource, MessageDetails, SendMedia, SentMessage,
    UploadMedia, UploadedAndSent, UploadedMedia,
};

use crate::drive::drive;
use crate::sink::Target;
use crate::transport::Http;
use crate::upload::UploadSource;

/// The `User-Agent` this crate sends.
pub const USER_AGENT: &str = concat!("nx-blocking/", env!("CARGO_PKG_VERSION"));

/// A blocking NXCloud client. Cheap to clone (an `Arc` inside) and usable from many threads;
/// connections are pooled and kept alive (up to 32 idle per host, for 60 s).
///
/// ```no_run
/// # fn run() -> Result<(), nx_blocking::Error> {
/// let client = nx_blocking::Client::builder()
///     .credentials("your-access-key", "your-secret")
///     .build()?;
/// let info = client.get_media("8615800001795", "fd81acff-eea8-4d9d-acc9-6c62904d6615")?;
/// println!("{} {}", info.mime_type(), info.url()); // the URL's query prints as <redacted>
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

/// The settings (base URL, access key, timeouts, retry policy, limits; secrets redacted), not the
/// HTTP stack's state, whose TLS roots alone run to thousands of characters.
impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Client").field(&self.inner.config).finish()
    }
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: ClientConfig,
    pub(crate) http: Http,
    /// Server clock minus ours, in ms, learned from a 1004 answer's `Date`.
    clock_ms: AtomicI64,
}

impl FromConfig<ClientConfig> for Client {
    fn from_config(mut config: ClientConfig) -> Result<Self, Error> {
        // The settings the client keeps say which proxy is used: the call machine names it
        // in a timeout.
        config
            .transport
            .resolve_proxy(|name| std::env::var(name).ok())?;
        config.check()?;
        let http = Http::new(&config.transport)?;
        Ok(Client {
            inner: Arc::new(Inner {
                config,
                http,
                clock_ms: AtomicI64::new(0),
            }),
        })
    }
}

/// The monotonic clock as the call machine reads it: the time since this process first asked.
pub(crate) fn mono() -> Duration {
    origin().elapsed()
}

/// The instant the call machine means by `at` (a time of [`mono`]'s line).
pub(crate) fn instant(at: Duration) -> Instant {
    origin() + at
}

fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// The local clock as a [`Timestamp`].
pub(crate) fn now() -> Timestamp {
    Timestamp::from_system_time(SystemTime::now())
}

impl Client {
    /// A builder: credentials (or `NXCLOUD_ACCESS_KEY` / `NXCLOUD_ACCESS_SECRET`), base URL (or
    /// `NXCLOUD_BASE_URL`, default `https://api2.nxcloud.com`), timeouts, retry policy, limits.
    pub fn builder() -> ClientBuilder<Client> {
        ClientBuilder::new(USER_AGENT)
    }

    /// The settings in force.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The clock correction learned so far (server minus local).
    pub fn clock_offset(&self) -> ClockOffset {
        ClockOffset::from_millis(self.inner.clock_ms.load(Ordering::Relaxed))
    }

    /// Executes any NXCloud operation whose body is not streamed: signs it with a fresh `ts`
    /// on every attempt, retries as the policy allows, parses the answer.
    pub fn execute<O: Operation + ?Sized>(&self, op: &O) -> Result<O::Output, Error> {
        self.run(op, None)
    }

    /// getMedia: a media file's metadata and its pre-signed download URL.
    pub fn get_media(&self, business_phone: &str, media_id: &str) -> Result<MediaInfo, Error> {
        self.execute(&GetMedia::new(business_phone, media_id))
    }

    /// deleteMedia.
    pub fn delete_media(&self, business_phone: &str, media_id: &str) -> Result<Deleted, Error> {
        self.execute(&DeleteMedia::new(business_phone, media_id))
    }

    /// uploadMedia, streaming the file: memory use does not grow with its size. `mime_type` is
    /// checked against WhatsApp's media table (and the size against its kind's limit) before any
    /// byte is sent. A failed attempt is retried only when the source can be reopened (a path
    /// or bytes, not a one-shot reader).
    pub fn upload_media(
        &self,
        business_phone: &str,
        mime_type: &str,
        source: UploadSource,
    ) -> Result<UploadedMedia, Error> {
        let len = crate::upload::len(&source)?;
        let op = UploadMedia::new(business_phone, mime_type, source.file_name(), len)
            .with_boundary(nx_protocol::multipart::boundary_from(fastrand::u128(..)));
        self.run(&op, Some(source))
    }

    /// mt: sends a media message, with the client's appkey unless the message names its own.
    ///
    /// Not idempotent: a failed send is resent only when it certainly did not reach NXCloud (no
    /// connection could be made, or the answer says it was refused before being carried out,
    /// as a 1004 does). After a reset, a timeout, a 5xx or a 9001 the error is returned and
    /// nothing is resent, since the customer may already have the message; a `cus_message_id`
    /// does not change that (see [`MessageDetails::message_id`]).
    pub fn send_media(&self, send: SendMedia) -> Result<SentMessage, Error> {
        self.execute(&send.with_default_appkey(self.inner.config.appkey.as_deref()))
    }

    /// uploadMedia, then mt by the new media id: a message of the kind `mime_type` belongs to.
    /// The message is checked before the upload ([`SendMedia::for_upload`]), so one that would
    /// be refused costs no upload. If the send fails after the upload succeeded, the error is
    /// returned and the uploaded media stays on WhatsApp's storage (an unused media id expires;
    /// its id is in the `nx.call` debug log).
    pub fn upload_and_send(
        &self,
        business_phone: &str,
        to: &str,
        mime_type: &str,
        source: UploadSource,
        details: MessageDetails,
    ) -> Result<UploadedAndSent, Error> {
        let send = SendMedia::for_upload(
            business_phone,
            to,
            mime_type,
            details,
            self.inner.config.appkey.as_deref(),
        )?;
        let uploaded = self.upload_media(business_phone, mime_type, source)?;
        tracing::debug!(media_id = %uploaded.id, "uploaded; sending it");
        let message = self.execute(&send.with_media(MediaSource::id(uploaded.id.clone())))?;
        Ok(UploadedAndSent::new(uploaded.id, message))
    }

    /// One call of `op`: the [`Call`] machine decides, [`drive`] sends, reads and sleeps.
    fn run<O: Operation + ?Sized>(
        &self,
        op: &O,
        mut source: Option<UploadSource>,
    ) -> Result<O::Output, Error> {
        let upload = Upload {
            one_shot: source.as_ref().is_some_and(|s| !s.reopenable()),
        };
        let mut call = Call::api(op, &self.inner.config, upload);
        call.set_seed(fastrand::u64(..))
            .set_clock(self.clock_offset());
        let span = tracing::info_span!("nx.call", action = op.action());
        let step = span.in_scope(|| {
            drive(
                &self.inner.http,
                &mut call,
                source.as_mut(),
                &mut Target::none(),
            )
        });
        if let Some(clock) = call.clock_changed() {
            self.inner
                .clock_ms
                .store(clock.as_millis(), Ordering::Relaxed);
        }
        step.into_result()
    }
}
