//! The conformance harness: one [`Driver`] trait over the async and the blocking client, so every
//! behavioural case in `tests/tests/` is written once and run against both transports, each
//! against a fresh in-process [`nx_sandbox::Sandbox`].
//!
//! A case that one transport passes and the other fails is a bug in that transport.
//!
//! [`proxy`] is a real HTTP `CONNECT` proxy for the cases that go through one.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod proxy;

/// A `#[test]` per case and transport: `conformance!(AsyncDriver, BlockingDriver; a, b)` runs
/// the generic cases `a::<AsyncDriver>` and so on in a module `async_client`, and the same
/// with `BlockingDriver` in `blocking_client`; the names are those of the calling file.
///
/// The second form, `conformance! { name => expression; ... }`, makes a test `name` of each
/// expression, written over `D` and `O`: the transport's NXCloud and On-Premises drivers.
#[macro_export]
macro_rules! conformance {
    ($async_driver:ident, $blocking_driver:ident; $($case:ident),* $(,)?) => {
        mod async_client {
            $( #[test] fn $case() { super::$case::<super::$async_driver>() } )*
        }
        mod blocking_client {
            $( #[test] fn $case() { super::$case::<super::$blocking_driver>() } )*
        }
    };
    ($($name:ident => $body:expr;)*) => {
        mod async_client {
            use super::*;
            type D = $crate::AsyncDriver;
            type O = $crate::AsyncDriverOnPrem;
            $( #[test] fn $name() { $body } )*
        }
        mod blocking_client {
            use super::*;
            type D = $crate::BlockingDriver;
            type O = $crate::BlockingDriverOnPrem;
            $( #[test] fn $name() { $body } )*
        }
    };
}

use std::io::Cursor;
use std::path::Path;
use std::time::Duration;

use nx_protocol::Credentials;
use nx_protocol::config::{
    ClientConfig, FromConfig, OnPremConfig, OnPremLogin, TransportConfig, certificates_from_pem,
};
use nx_protocol::download::{Sha256Digest, Verified};
use nx_protocol::error::Error;
use nx_protocol::onprem::{self, DownloadRequested, MediaItemStatus, Retrieved, Token};
use nx_protocol::operation::{BaseUrl, Operation};
use nx_protocol::policy::clock::ClockOffset;
use nx_protocol::policy::retry::RetryPolicy;
use nx_protocol::proxy::{ProxyConfig, ProxyRules, ProxyUrl};
use nx_protocol::wa::{
    Deleted, MediaInfo, MessageDetails, SendMedia, SentMessage, UploadedAndSent, UploadedMedia,
};
use nx_sandbox::{DEMO_ACCESS_KEY, DEMO_ACCESS_SECRET, DEMO_APPKEY, Sandbox, SandboxConfig};

/// Where an upload comes from, in a transport-neutral form.
#[derive(Debug, Clone)]
pub enum Source<'a> {
    /// A file on disk.
    Path(&'a Path),
    /// Bytes in memory, with a file name.
    Bytes(Vec<u8>, &'a str),
    /// A one-shot reader over these bytes (not retried).
    Reader(Vec<u8>, &'a str),
    /// A file on disk that changes as soon as the upload has read its first bytes (on the first
    /// progress report, so with no timing: every later read sees the change).
    Changing(&'a Path, Change),
}

/// How a [`Source::Changing`] file changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// This many bytes are appended.
    Grow(usize),
    /// It is cut to this many bytes.
    ShrinkTo(u64),
}

impl Change {
    /// A progress callback making this change to `path`, once.
    fn on_first_report(self, path: &Path) -> impl Fn(u64, u64) + Send + Sync + 'static {
        let path = path.to_path_buf();
        let done = std::sync::atomic::AtomicBool::new(false);
        move |_, _| {
            if done.swap(true, std::sync::atomic::Ordering::Relaxed) {
                return;
            }
            let file = std::fs::OpenOptions::new().append(true).open(&path);
            let file = file.expect("the changing file opens");
            match self {
                Change::Grow(n) => std::io::Write::write_all(&mut &file, &vec![b'+'; n]),
                Change::ShrinkTo(len) => file.set_len(len),
            }
            .expect("the file changes");
        }
    }
}

/// A caller's writer that takes `room` bytes, then refuses every write as a full disk would:
/// a `std::io::Write` for nx-blocking and a tokio `AsyncWrite` for nx-async.
#[derive(Debug)]
pub struct FullWriter {
    /// What it took.
    pub taken: Vec<u8>,
    room: usize,
}

impl FullWriter {
    /// Takes `room` bytes at most.
    pub fn new(room: usize) -> Self {
        Self {
            taken: Vec::new(),
            room,
        }
    }

    fn take(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let n = bytes.len().min(self.room - self.taken.len());
        if n == 0 && !bytes.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                "the test's writer is full",
            ));
        }
        self.taken.extend_from_slice(&bytes[..n]);
        Ok(n)
    }
}

impl std::io::Write for FullWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.take(bytes)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl tokio::io::AsyncWrite for FullWriter {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        bytes: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::Poll::Ready(self.get_mut().take(bytes))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// One client, driven synchronously.
pub trait Driver: Sized {
    /// The transport's name, for messages.
    const NAME: &'static str;
    /// Builds the client.
    fn new(config: ClientConfig) -> Result<Self, Error>;
    /// Any operation (the generic entry point).
    fn execute<O>(&self, op: &O) -> Result<O::Output, Error>
    where
        O: Operation + Sync,
        O::Output: Send;
    /// getMedia.
    fn get_media(&self, phone: &str, id: &str) -> Result<MediaInfo, Error>;
    /// deleteMedia.
    fn delete_media(&self, phone: &str, id: &str) -> Result<Deleted, Error>;
    /// uploadMedia.
    fn upload_media(
        &self,
        phone: &str,
        mime: &str,
        source: Source<'_>,
    ) -> Result<UploadedMedia, Error>;
    /// Downloads by `MediaInfo` (no refresh) into memory.
    fn download(
        &self,
        info: &MediaInfo,
        sha256: Option<Sha256Digest>,
    ) -> Result<(Vec<u8>, Verified), Error>;
    /// Downloads by `MediaInfo` (no refresh) into `sink` (which may refuse to take it all).
    fn download_into(
        &self,
        info: &MediaInfo,
        sink: &mut FullWriter,
        sha256: Option<Sha256Digest>,
    ) -> Result<Verified, Error>;
    /// getMedia + download into memory (refreshing an expired URL once).
    fn download_media(
        &self,
        phone: &str,
        id: &str,
        sha256: Option<Sha256Digest>,
    ) -> Result<(Vec<u8>, Verified), Error>;
    /// getMedia + download into a file via a temporary file.
    fn download_media_to_path(
        &self,
        phone: &str,
        id: &str,
        path: &Path,
        sha256: Option<Sha256Digest>,
    ) -> Result<Verified, Error>;
    /// mt: sends a media message (the client's appkey unless the message names one).
    fn send_media(&self, send: SendMedia) -> Result<SentMessage, Error>;
    /// uploadMedia, then mt by the new id.
    fn upload_and_send(
        &self,
        phone: &str,
        to: &str,
        mime: &str,
        source: Source<'_>,
        details: MessageDetails,
    ) -> Result<UploadedAndSent, Error>;
    /// The clock correction learned so far.
    fn clock_offset(&self) -> ClockOffset;
}

/// The async client, on a runtime of its own.
#[derive(Debug)]
pub struct AsyncDriver {
    rt: tokio::runtime::Runtime,
    client: nx_async::Client,
}

impl Driver for AsyncDriver {
    const NAME: &'static str = "nx-async";

    fn new(config: ClientConfig) -> Result<Self, Error> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting a tokio runtime", e))?;
        let client = rt.block_on(async { nx_async::Client::from_config(config) })?;
        Ok(Self { rt, client })
    }

    fn execute<O>(&self, op: &O) -> Result<O::Output, Error>
    where
        O: Operation + Sync,
        O::Output: Send,
    {
        self.rt.block_on(self.client.execute(op))
    }

    fn get_media(&self, phone: &str, id: &str) -> Result<MediaInfo, Error> {
        self.rt.block_on(self.client.get_media(phone, id))
    }

    fn delete_media(&self, phone: &str, id: &str) -> Result<Deleted, Error> {
        self.rt.block_on(self.client.delete_media(phone, id))
    }

    fn upload_media(
        &self,
        phone: &str,
        mime: &str,
        source: Source<'_>,
    ) -> Result<UploadedMedia, Error> {
        self.rt
            .block_on(self.client.upload_media(phone, mime, async_source(source)))
    }

    fn download(
        &self,
        info: &MediaInfo,
        sha256: Option<Sha256Digest>,
    ) -> Result<(Vec<u8>, Verified), Error> {
        let mut out = Vec::new();
        let verified =
            self.rt
                .block_on(self.client.download(info, &mut out, async_options(sha256)))?;
        Ok((out, verified))
    }

    fn download_into(
        &self,
        info: &MediaInfo,
        sink: &mut FullWriter,
        sha256: Option<Sha256Digest>,
    ) -> Result<Verified, Error> {
        self.rt
            .block_on(self.client.download(info, sink, async_options(sha256)))
    }

    fn download_media(
        &self,
        phone: &str,
        id: &str,
        sha256: Option<Sha256Digest>,
    ) -> Result<(Vec<u8>, Verified), Error> {
        let mut out = Vec::new();
        let verified = self.rt.block_on(self.client.download_media(
            phone,
            id,
            &mut out,
            async_options(sha256),
        ))?;
        Ok((out, verified))
    }

    fn download_media_to_path(
        &self,
        phone: &str,
        id: &str,
        path: &Path,
        sha256: Option<Sha256Digest>,
    ) -> Result<Verified, Error> {
        self.rt.block_on(
            self.client
                .download_media_to_path(phone, id, path, async_options(sha256)),
        )
    }

    fn send_media(&self, send: SendMedia) -> Result<SentMessage, Error> {
        self.rt.block_on(self.client.send_media(send))
    }

    fn upload_and_send(
        &self,
        phone: &str,
        to: &str,
        mime: &str,
        source: Source<'_>,
        details: MessageDetails,
    ) -> Result<UploadedAndSent, Error> {
        self.rt.block_on(self.client.upload_and_send(
            phone,
            to,
            mime,
            async_source(source),
            details,
        ))
    }

    fn clock_offset(&self) -> ClockOffset {
        self.client.clock_offset()
    }
}

fn async_options(sha256: Option<Sha256Digest>) -> nx_async::DownloadOptions {
    let options = nx_async::DownloadOptions::new();
    match sha256 {
        Some(d) => options.sha256(d),
        None => options,
    }
}

fn blocking_options(sha256: Option<Sha256Digest>) -> nx_blocking::DownloadOptions {
    let options = nx_blocking::DownloadOptions::new();
    match sha256 {
        Some(d) => options.sha256(d),
        None => options,
    }
}

/// The blocking client.
#[derive(Debug)]
pub struct BlockingDriver {
    client: nx_blocking::Client,
}

impl Driver for BlockingDriver {
    const NAME: &'static str = "nx-blocking";

    fn new(config: ClientConfig) -> Result<Self, Error> {
        Ok(Self {
            client: nx_blocking::Client::from_config(config)?,
        })
    }

    fn execute<O>(&self, op: &O) -> Result<O::Output, Error>
    where
        O: Operation + Sync,
        O::Output: Send,
    {
        self.client.execute(op)
    }

    fn get_media(&self, phone: &str, id: &str) -> Result<MediaInfo, Error> {
        self.client.get_media(phone, id)
    }

    fn delete_media(&self, phone: &str, id: &str) -> Result<Deleted, Error> {
        self.client.delete_media(phone, id)
    }

    fn upload_media(
        &self,
        phone: &str,
        mime: &str,
        source: Source<'_>,
    ) -> Result<UploadedMedia, Error> {
        self.client
            .upload_media(phone, mime, blocking_source(source))
    }

    fn download(
        &self,
        info: &MediaInfo,
        sha256: Option<Sha256Digest>,
    ) -> Result<(Vec<u8>, Verified), Error> {
        let mut out = Vec::new();
        let verified = self
            .client
            .download(info, &mut out, blocking_options(sha256))?;
        Ok((out, verified))
    }

    fn download_into(
        &self,
        info: &MediaInfo,
        sink: &mut FullWriter,
        sha256: Option<Sha256Digest>,
    ) -> Result<Verified, Error> {
        self.client.download(info, sink, blocking_options(sha256))
    }

    fn download_media(
        &self,
        phone: &str,
        id: &str,
        sha256: Option<Sha256Digest>,
    ) -> Result<(Vec<u8>, Verified), Error> {
        let mut out = Vec::new();
        let verified = self
            .client
            .download_media(phone, id, &mut out, blocking_options(sha256))?;
        Ok((out, verified))
    }

    fn download_media_to_path(
        &self,
        phone: &str,
        id: &str,
        path: &Path,
        sha256: Option<Sha256Digest>,
    ) -> Result<Verified, Error> {
        self.client
            .download_media_to_path(phone, id, path, blocking_options(sha256))
    }

    fn send_media(&self, send: SendMedia) -> Result<SentMessage, Error> {
        self.client.send_media(send)
    }

    fn upload_and_send(
        &self,
        phone: &str,
        to: &str,
        mime: &str,
        source: Source<'_>,
        details: MessageDetails,
    ) -> Result<UploadedAndSent, Error> {
        self.client
            .upload_and_send(phone, to, mime, blocking_source(source), details)
    }

    fn clock_offset(&self) -> ClockOffset {
        self.client.clock_offset()
    }
}

/// A fresh sandbox and a client of transport `D` pointed at it.
#[derive(Debug)]
pub struct World<D> {
    /// The sandbox (stops when dropped).
    pub sandbox: Sandbox,
    /// The client.
    pub client: D,
}

/// Settings for tests: the demo account (and its appkey) against `sandbox`, short timeouts,
/// quick retries; the sandbox's CA trusted when it serves HTTPS; no proxy, whatever the
/// environment says (a test reaches only the addresses it names).
pub fn test_config(sandbox: &Sandbox) -> ClientConfig {
    let mut config = ClientConfig::new(
        Credentials::new(DEMO_ACCESS_KEY, DEMO_ACCESS_SECRET),
        "nx-conformance",
    );
    config.base_url = BaseUrl::parse(sandbox.base_url()).expect("the sandbox URL is valid");
    config.appkey = Some(DEMO_APPKEY.to_owned());
    config.transport.connect_timeout = Duration::from_secs(2);
    config.transport.request_timeout = Duration::from_secs(5);
    config.transport.overall_timeout = Duration::from_secs(30);
    config.transport.retry =
        RetryPolicy::new(3, Duration::from_millis(10), Duration::from_millis(50));
    config.transport.proxy = ProxyConfig::Off;
    if let Some(pem) = sandbox.ca_pem() {
        config.transport.extra_roots_der =
            certificates_from_pem(pem.as_bytes()).expect("the sandbox's CA is PEM");
    }
    config
}

/// Tunnels every connection of `config` through the proxy at `url`.
pub fn through_proxy(config: &mut TransportConfig, url: &str) {
    let proxy = ProxyUrl::parse(url).expect("a valid proxy URL");
    config.proxy = ProxyConfig::Rules(ProxyRules::all(proxy));
}

impl<D: Driver> World<D> {
    /// The default sandbox and the test settings.
    pub fn new() -> Self {
        Self::with(SandboxConfig::default(), |_| {})
    }

    /// A sandbox from `sandbox_config`, and the test settings changed by `edit`.
    pub fn with(sandbox_config: SandboxConfig, edit: impl FnOnce(&mut ClientConfig)) -> Self {
        let sandbox = Sandbox::start(sandbox_config).expect("the sandbox starts");
        let mut config = test_config(&sandbox);
        edit(&mut config);
        let client = D::new(config).expect("the client builds");
        Self { sandbox, client }
    }

    /// Another client of the same transport against the same sandbox.
    pub fn client_with(&self, edit: impl FnOnce(&mut ClientConfig)) -> D {
        let mut config = test_config(&self.sandbox);
        edit(&mut config);
        D::new(config).expect("the client builds")
    }
}

impl<D: Driver> Default for World<D> {
    fn default() -> Self {
        Self::new()
    }
}

/// A small valid PNG (8-bit RGBA, 1x1), for uploads.
pub const PNG_1X1: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0xf8, 0xcf, 0xc0, 0xf0,
    0x1f, 0x00, 0x05, 0x00, 0x01, 0xff, 0x89, 0x99, 0x3d, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45,
    0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// `len` bytes of a deterministic pattern (so a corrupted byte changes the digest).
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
        .collect()
}

/// Files in `dir` (to check no temporary file was left behind).
pub fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// One On-Premises client, driven synchronously, with its transport's notification hub.
pub trait OnPremDriver: Sized + std::fmt::Debug {
    /// The transport's name, for messages.
    const NAME: &'static str;
    /// Builds the client.
    fn new(config: OnPremConfig) -> Result<Self, Error>;
    /// Logs in now.
    fn login(&self) -> Result<Token, Error>;
    /// The first login of a fresh installation's admin, setting `new_password`.
    fn first_login(&self, new_password: &str) -> Result<Token, Error>;
    /// `POST /v1/media`.
    fn upload_media(&self, mime: &str, source: Source<'_>) -> Result<onprem::UploadedMedia, Error>;
    /// `GET /v1/media/{id}` into memory.
    fn retrieve_media(
        &self,
        id: &str,
        sha256: Option<Sha256Digest>,
    ) -> Result<(Vec<u8>, Retrieved), Error>;
    /// `GET /v1/media/{id}` into a file via a temporary file.
    fn retrieve_media_to_path(
        &self,
        id: &str,
        path: &Path,
        sha256: Option<Sha256Digest>,
    ) -> Result<Retrieved, Error>;
    /// `DELETE /v1/media/{id}`.
    fn delete_media(&self, id: &str) -> Result<(), Error>;
    /// `GET /v1/media/{id}/download`.
    fn retry_download(&self, id: &str) -> Result<DownloadRequested, Error>;
    /// Starts waiting (on the transport's hub) for the notification about `id`; the returned
    /// function waits up to the given time.
    fn expect(&self, id: &str) -> Box<dyn FnOnce(Duration) -> Result<MediaItemStatus, Error> + '_>;
    /// Feeds a notification body to the transport's hub; returns how many waits it completed.
    fn feed(&self, body: &[u8]) -> usize;
}

impl OnPremDriver for AsyncDriverOnPrem {
    const NAME: &'static str = "nx-async";

    fn new(config: OnPremConfig) -> Result<Self, Error> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting a tokio runtime", e))?;
        let client = nx_async::OnPremClient::from_config(config)?;
        Ok(Self {
            rt,
            client,
            hub: nx_async::NotificationHub::new(),
        })
    }

    fn login(&self) -> Result<Token, Error> {
        self.rt.block_on(self.client.login())
    }

    fn first_login(&self, new_password: &str) -> Result<Token, Error> {
        self.rt.block_on(self.client.first_login(new_password))
    }

    fn upload_media(&self, mime: &str, source: Source<'_>) -> Result<onprem::UploadedMedia, Error> {
        self.rt
            .block_on(self.client.upload_media(mime, async_source(source)))
    }

    fn retrieve_media(
        &self,
        id: &str,
        sha256: Option<Sha256Digest>,
    ) -> Result<(Vec<u8>, Retrieved), Error> {
        let mut out = Vec::new();
        let retrieved = self.rt.block_on(self.client.retrieve_media(
            id,
            &mut out,
            async_options(sha256),
        ))?;
        Ok((out, retrieved))
    }

    fn retrieve_media_to_path(
        &self,
        id: &str,
        path: &Path,
        sha256: Option<Sha256Digest>,
    ) -> Result<Retrieved, Error> {
        self.rt.block_on(
            self.client
                .retrieve_media_to_path(id, path, async_options(sha256)),
        )
    }

    fn delete_media(&self, id: &str) -> Result<(), Error> {
        self.rt.block_on(self.client.delete_media(id))
    }

    fn retry_download(&self, id: &str) -> Result<DownloadRequested, Error> {
        self.rt.block_on(self.client.retry_download(id))
    }

    fn expect(&self, id: &str) -> Box<dyn FnOnce(Duration) -> Result<MediaItemStatus, Error> + '_> {
        let expected = self.hub.expect(id);
        Box::new(move |timeout| self.rt.block_on(expected.wait(timeout)))
    }

    fn feed(&self, body: &[u8]) -> usize {
        self.hub.feed(body).expect("a valid notification")
    }
}

/// The async On-Premises client, on a runtime of its own.
#[derive(Debug)]
pub struct AsyncDriverOnPrem {
    rt: tokio::runtime::Runtime,
    client: nx_async::OnPremClient,
    hub: nx_async::NotificationHub,
}

fn async_source(source: Source<'_>) -> nx_async::UploadSource {
    match source {
        Source::Path(p) => nx_async::UploadSource::path(p),
        Source::Changing(p, change) => {
            nx_async::UploadSource::path(p).progress(change.on_first_report(p))
        }
        Source::Bytes(b, name) => nx_async::UploadSource::bytes(b, name),
        Source::Reader(b, name) => {
            let len = b.len() as u64;
            nx_async::UploadSource::reader(Box::new(Cursor::new(b)), len, name)
        }
    }
}

fn blocking_source(source: Source<'_>) -> nx_blocking::UploadSource {
    match source {
        Source::Path(p) => nx_blocking::UploadSource::path(p),
        Source::Changing(p, change) => {
            nx_blocking::UploadSource::path(p).progress(change.on_first_report(p))
        }
        Source::Bytes(b, name) => nx_blocking::UploadSource::bytes(b, name),
        Source::Reader(b, name) => {
            let len = b.len() as u64;
            nx_blocking::UploadSource::reader(Box::new(Cursor::new(b)), len, name)
        }
    }
}

/// Settings for On-Premises tests: the sandbox's demo user, short timeouts, quick retries.
pub fn onprem_test_config(sandbox: &Sandbox, login: OnPremLogin) -> OnPremConfig {
    let base = BaseUrl::parse(sandbox.base_url()).expect("the sandbox URL is valid");
    let mut config = OnPremConfig::new(base, login, "nx-conformance");
    config.transport = test_config(sandbox).transport;
    config
}

/// The sandbox's demo user name and password.
pub fn demo_login() -> OnPremLogin {
    OnPremLogin::Password {
        username: nx_sandbox::DEMO_ONPREM_USER.into(),
        password: nx_protocol::AccessSecret::new(nx_sandbox::DEMO_ONPREM_PASSWORD),
    }
}

/// The `Authorization` header value the sandbox's demo On-Premises user logs in with:
/// `Basic base64(user:password)`, built here independently of the SDK's own encoding.
pub fn demo_basic_header() -> String {
    use base64::Engine as _;
    let pair = format!(
        "{}:{}",
        nx_sandbox::DEMO_ONPREM_USER,
        nx_sandbox::DEMO_ONPREM_PASSWORD
    );
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// A fresh sandbox and an On-Premises client of transport `D` pointed at it.
#[derive(Debug)]
pub struct OnPremWorld<D> {
    /// The sandbox.
    pub sandbox: Sandbox,
    /// The client.
    pub client: D,
}

impl<D: OnPremDriver> OnPremWorld<D> {
    /// The default sandbox, the demo login and the test settings.
    pub fn new() -> Self {
        Self::with(SandboxConfig::default(), |_| {})
    }

    /// A sandbox from `sandbox_config`, the demo login, and the test settings changed by `edit`.
    pub fn with(sandbox_config: SandboxConfig, edit: impl FnOnce(&mut OnPremConfig)) -> Self {
        let sandbox = Sandbox::start(sandbox_config).expect("the sandbox starts");
        let mut config = onprem_test_config(&sandbox, demo_login());
        edit(&mut config);
        let client = D::new(config).expect("the client builds");
        Self { sandbox, client }
    }

    /// Another client of the same transport against the same sandbox.
    pub fn client_with(&self, login: OnPremLogin) -> D {
        D::new(onprem_test_config(&self.sandbox, login)).expect("the client builds")
    }
}

impl<D: OnPremDriver> Default for OnPremWorld<D> {
    fn default() -> Self {
        Self::new()
    }
}

/// Reads one HTTP/1 request from `stream` (a test server's side) and returns its body (at most
/// 1 MiB, by `Content-Length`); `None` if the request cannot be read within 5 s.
pub fn read_request_body(stream: &std::net::TcpStream) -> Option<Vec<u8>> {
    read_request(stream).map(|(_, body)| body)
}

/// Reads one HTTP/1.1 request: its head (request line and header lines, as sent) and its
/// `Content-Length` body.
pub fn read_request(stream: &std::net::TcpStream) -> Option<(String, Vec<u8>)> {
    use std::io::{BufRead, BufReader, Read};
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream);
    let mut length = 0usize;
    let mut head = String::new();
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
        head.push_str(&line);
        line.clear();
    }
    let mut body = vec![0; length.min(1 << 20)];
    reader.read_exact(&mut body).ok()?;
    Some((head, body))
}

/// A webhook receiver on 127.0.0.1:0 that answers every POST with 200 and hands over the
/// bodies. It stops when dropped.
#[derive(Debug)]
pub struct CallbackServer {
    url: String,
    bodies: std::sync::mpsc::Receiver<Vec<u8>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CallbackServer {
    /// Starts the receiver.
    pub fn start() -> Self {
        use std::io::Write;
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let url = format!(
            "http://{}/webhook",
            listener.local_addr().expect("local address")
        );
        let (sender, bodies) = std::sync::mpsc::channel();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                if let Some(body) = read_request_body(&stream) {
                    let _ = sender.send(body);
                }
                let _ = (&stream).write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            }
        });
        Self {
            url,
            bodies,
            stop,
            thread: Some(thread),
        }
    }

    /// Where to POST.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The next body received within `timeout`.
    pub fn next_body(&self, timeout: Duration) -> Option<Vec<u8>> {
        self.bodies.recv_timeout(timeout).ok()
    }
}

impl Drop for CallbackServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A canned answer of [`CannedServer`]: status, `Content-Type`, body.
pub type Canned = (u16, &'static str, Vec<u8>);

/// A hostile (or just scripted) HTTP/1.1 server on 127.0.0.1:0: every request is answered by
/// `answer(request line, the server's base URL)` with `Connection: close`. It stops when dropped.
pub struct CannedServer {
    url: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CannedServer {
    /// Starts the server.
    pub fn start(answer: impl Fn(&str, &str) -> Canned + Send + 'static) -> Self {
        use std::io::Write;
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        let base = url.clone();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stopping.load(Ordering::Relaxed) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let Some((head, _)) = read_request(&stream) else {
                    continue;
                };
                let line = head.lines().next().unwrap_or_default();
                let (status, content_type, body) = answer(line, &base);
                let head = format!(
                    "HTTP/1.1 {status} Canned\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = (&stream).write_all(head.as_bytes());
                let _ = (&stream).write_all(&body);
            }
        });
        Self {
            url,
            stop,
            thread: Some(thread),
        }
    }

    /// The base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for CannedServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// getMedia answers that carry a valid pre-signed URL (`{base}/oss/m.png?...&Signature={sig}`)
/// but are malformed the ways servers get it wrong: a UTF-8 BOM, a code as a string, duplicate
/// keys, a raw NUL, a wrong type beside the URL, the URL in an error's message, an HTML page
/// quoting it. Each is (what, body).
pub fn malformed_answers_with_url(base: &str, sig: &str) -> Vec<(&'static str, String)> {
    let url = format!("{base}/oss/m.png?Expires=4102444800&OSSAccessKeyId=k&Signature={sig}");
    let data = format!(r#"{{"mime_type":"image/png","file_name":"m.png","url":"{url}"}}"#);
    vec![
        (
            "a BOM",
            format!("\u{feff}{{\"code\":0,\"message\":\"ok\",\"data\":{data}}}"),
        ),
        (
            "a code as a string",
            format!(r#"{{"code":"0","message":"ok","data":{data}}}"#),
        ),
        (
            "duplicate keys",
            format!(r#"{{"code":0,"code":0,"message":"ok","data":{data}}}"#),
        ),
        (
            "a raw NUL",
            format!("{{\"code\":0,\0\"message\":\"ok\",\"data\":{data}}}"),
        ),
        (
            "a wrong type",
            format!(r#"{{"code":0,"data":{{"mime_type":5,"file_name":"m","url":"{url}"}}}}"#),
        ),
        (
            "an error quoting it",
            format!(r#"{{"code":-1,"message":"see {url}","data":null}}"#),
        ),
        (
            "an HTML page",
            format!("<html><a href=\"{url}\">{url}</a></html>"),
        ),
    ]
}

/// The blocking On-Premises client.
#[derive(Debug)]
pub struct BlockingDriverOnPrem {
    client: nx_blocking::OnPremClient,
    hub: nx_blocking::NotificationHub,
}

impl OnPremDriver for BlockingDriverOnPrem {
    const NAME: &'static str = "nx-blocking";

    fn new(config: OnPremConfig) -> Result<Self, Error> {
        let client = nx_blocking::OnPremClient::from_config(config)?;
        Ok(Self {
            client,
            hub: nx_blocking::NotificationHub::new(),
        })
    }

    fn login(&self) -> Result<Token, Error> {
        self.client.login()
    }

    fn first_login(&self, new_password: &str) -> Result<Token, Error> {
        self.client.first_login(new_password)
    }

    fn upload_media(&self, mime: &str, source: Source<'_>) -> Result<onprem::UploadedMedia, Error> {
        self.client.upload_media(mime, blocking_source(source))
    }

    fn retrieve_media(
        &self,
        id: &str,
        sha256: Option<Sha256Digest>,
    ) -> Result<(Vec<u8>, Retrieved), Error> {
        let mut out = Vec::new();
        let retrieved = self
            .client
            .retrieve_media(id, &mut out, blocking_options(sha256))?;
        Ok((out, retrieved))
    }

    fn retrieve_media_to_path(
        &self,
        id: &str,
        path: &Path,
        sha256: Option<Sha256Digest>,
    ) -> Result<Retrieved, Error> {
        self.client
            .retrieve_media_to_path(id, path, blocking_options(sha256))
    }

    fn delete_media(&self, id: &str) -> Result<(), Error> {
        self.client.delete_media(id)
    }

    fn retry_download(&self, id: &str) -> Result<DownloadRequested, Error> {
        self.client.retry_download(id)
    }

    fn expect(&self, id: &str) -> Box<dyn FnOnce(Duration) -> Result<MediaItemStatus, Error> + '_> {
        let expected = self.hub.expect(id);
        Box::new(move |timeout| expected.wait(timeout))
    }

    fn feed(&self, body: &[u8]) -> usize {
        self.hub.feed(body).expect("a valid notification")
    }
}

/// The workspace README, whose Rust snippets `cargo test` compiles and runs like any doctest.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
