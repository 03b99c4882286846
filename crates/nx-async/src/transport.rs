//! The hyper side: connector, TLS, sending a request, reading a capped answer, streaming bodies.

use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::{Client as HyperClient, ResponseFuture};
use hyper_util::rt::TokioExecutor;
use nx_protocol::body::{LengthCheck, Read as ReadNext, SourceChanged};
use nx_protocol::config::{RootStore, TransportConfig};
use nx_protocol::error::Error;
use nx_protocol::{OutgoingBody, StreamedBody};
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::connect::{Bounded, ConnectTimedOut, Connector, Shared};

/// The request body type every call uses. Boxed, an in-memory body too: an unboxed one
/// (`Either<Full<Bytes>, _>`) saves its allocation (about 210 instructions per getMedia) but
/// makes every one of hyper-util's futures that holds the request larger, and their moves cost
/// more than that (about 500; callgrind, issue 20).
pub(crate) type Body = UnsyncBoxBody<Bytes, io::Error>;
/// The pooled hyper client and what every request carries.
#[derive(Clone, Debug)]
pub(crate) struct Http {
    client: HyperClient<Bounded<Shared<HttpsConnector<Connector>>>, Body>,
    /// Checked once at construction ([`TransportConfig::user_agent_header`]), or the crate's
    /// constant one.
    user_agent: http::HeaderValue,
}

/// Bytes read from a streamed source at a time.
pub(crate) const CHUNK: usize = 64 * 1024;

/// A pooled, keep-alive HTTP/1.1 client over rustls (the crate's crypto provider, the
/// configured root store plus the extra roots), connecting directly or through the proxy the
/// configuration's rules name for each target.
pub(crate) fn http_client(config: &TransportConfig) -> Result<Http, Error> {
    // The crate's own name as a constant: a value made at run time is shared bytes, whose clone
    // on every request is an atomic on a counter all worker threads share (issue 20).
    let user_agent = if config.user_agent == crate::USER_AGENT {
        http::HeaderValue::from_static(crate::USER_AGENT)
    } else {
        config.user_agent_header()?
    };
    let mut roots = rustls::RootCertStore::empty();
    match config.root_store {
        // An OS store may hold a certificate rustls cannot use: skipped, as curl does.
        RootStore::Native => drop(roots.add_parsable_certificates(native_roots()?)),
        _ => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    for der in &config.extra_roots_der {
        roots
            .add(CertificateDer::from(der.clone()))
            .map_err(|e| Error::Config(format!("root certificate refused: {e}")))?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(config.connect_timeout));
    http.set_nodelay(true);
    let proxies = config.proxy.resolve(|name| std::env::var(name).ok())?;
    let tls = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(Connector::new(http, proxies));
    // TCP (or the tunnel) and TLS, all within the attempt's connect deadline; behind one `Arc`
    // (hyper-util clones its connector for every request).
    let connector = Bounded::new(Shared::new(tls), config.connect_timeout);
    let client = HyperClient::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .build(connector);
    Ok(Http { client, user_agent })
}

/// rustls' crypto provider: ring, or aws-lc-rs with the `aws-lc-rs` feature. Chosen explicitly,
/// whatever process-wide default another crate may have installed.
fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    #[cfg(feature = "aws-lc-rs")]
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    #[cfg(not(feature = "aws-lc-rs"))]
    let provider = rustls::crypto::ring::default_provider();
    Arc::new(provider)
}

/// The operating system's root certificates.
#[cfg(feature = "native-roots")]
fn native_roots() -> Result<Vec<CertificateDer<'static>>, Error> {
    let found = rustls_native_certs::load_native_certs();
    nx_protocol::config::native_roots(found.certs, &found.errors)
}

#[cfg(not(feature = "native-roots"))]
fn native_roots() -> Result<Vec<CertificateDer<'static>>, Error> {
    Err(nx_protocol::config::native_roots_missing("nx-async"))
}

/// A complete body.
pub(crate) fn full(bytes: Bytes) -> Body {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// No body.
pub(crate) fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// How far a streamed request body got, shared between the body (hyper polls it) and the
/// driver's watch: bytes handed to hyper, and whether the last one was.
#[derive(Debug)]
pub(crate) struct Progress {
    /// The body's length: hyper stops polling once it sent that many bytes.
    len: u64,
    bytes: AtomicU64,
    done: AtomicBool,
    finished: tokio::sync::Notify,
}

impl Progress {
    /// For a body of `len` bytes.
    pub(crate) fn new(len: u64) -> Self {
        Self {
            len,
            bytes: AtomicU64::new(0),
            done: AtomicBool::new(false),
            finished: tokio::sync::Notify::new(),
        }
    }

    fn moved(&self, n: usize) {
        let total = self.bytes.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        if total >= self.len {
            self.finish();
        }
    }

    fn finish(&self) {
        self.done.store(true, Ordering::Release);
        self.finished.notify_one();
    }

    /// Bytes moved since the last call, and whether the body was all sent.
    pub(crate) fn take(&self, seen: &mut u64) -> (u64, bool) {
        let now = self.bytes.load(Ordering::Relaxed);
        let moved = now - *seen;
        *seen = now;
        (moved, self.done.load(Ordering::Acquire))
    }

    /// Resolves once the body was all sent.
    pub(crate) async fn sent(&self) {
        while !self.done.load(Ordering::Acquire) {
            self.finished.notified().await;
        }
    }
}

/// `head`, then exactly `stream_len` bytes of `reader`, then `tail`, one chunk in memory at a
/// time; every chunk handed to hyper is counted in `progress`. The source is read by
/// nx-protocol's rule ([`LengthCheck`]): a source that ends early or holds more is a
/// [`SourceChanged`] (inside the stream's `io::Error`, which [`classify`] finds), found before
/// the chunk that completes the length is handed on, so hyper never sends the whole body and
/// drops the connection.
pub(crate) fn streamed(
    body: StreamedBody,
    reader: Box<dyn AsyncRead + Send + Unpin>,
    progress: Arc<Progress>,
    path: Option<&Path>,
) -> Body {
    enum State {
        Head(StreamedBody, Box<dyn AsyncRead + Send + Unpin>),
        File(LengthCheck, Bytes, Box<dyn AsyncRead + Send + Unpin>),
        Done,
    }
    // The file's name for the error that says it changed (the source is gone by then).
    let path: Option<Arc<Path>> = path.map(Arc::from);
    let stream = futures_util::stream::unfold(State::Head(body, reader), move |state| {
        let progress = progress.clone();
        let path = path.clone();
        async move {
            let (item, next) = match state {
                State::Head(b, reader) => {
                    let next = State::File(LengthCheck::new(b.stream_len), b.tail, reader);
                    (Ok(Frame::data(b.head)), next)
                }
                State::File(check, tail, _) if check.is_done() => {
                    (Ok(Frame::data(tail)), State::Done)
                }
                State::File(mut check, tail, mut reader) => {
                    match read_checked(&mut check, &mut reader, path.as_deref()).await {
                        Ok(chunk) => (Ok(Frame::data(chunk)), State::File(check, tail, reader)),
                        Err(e) => (Err(e), State::Done),
                    }
                }
                State::Done => {
                    progress.finish();
                    return None;
                }
            };
            if let Ok(frame) = &item {
                progress.moved(frame.data_ref().map_or(0, Bytes::len));
            }
            Some((item, next))
        }
    });
    BodyExt::boxed_unsync(StreamBody::new(stream))
}

/// The next chunk of a streamed part, at most [`CHUNK`] bytes, by `check`'s rule (the chunk
/// that completes the length only once a probe found the source's end).
async fn read_checked(
    check: &mut LengthCheck,
    reader: &mut (dyn AsyncRead + Send + Unpin),
    path: Option<&Path>,
) -> io::Result<Bytes> {
    let changed = |c: SourceChanged| io::Error::new(io::ErrorKind::InvalidData, c.at(path));
    let mut buf = BytesMut::zeroed(check.want(CHUNK));
    let n = reader.read(&mut buf).await?;
    buf.truncate(n);
    if check.read(n).map_err(changed)? == ReadNext::ProbeThenDeliver {
        let more = reader.read(&mut [0; 1]).await?;
        check.probed(more).map_err(changed)?;
    }
    Ok(buf.freeze())
}

/// A built request on its way: an in-memory body is handed to hyper at once ([`Start::Sent`]);
/// a streamed one waits for its source to open. Boxed then: an upload's attempt is rare, and
/// the request is some 300 bytes that every API call's future would otherwise hold and copy.
pub(crate) enum Start {
    /// Handed to hyper.
    Sent(Sending),
    /// The head and the streamed body's description, to send once the source is open, and
    /// when a new connection for it must be ready.
    Upload(Box<(http::request::Parts, StreamedBody, tokio::time::Instant)>),
}

impl Start {
    /// Starts sending `request` if its body is in memory; a new connection for it must be ready
    /// by `connect_by`.
    pub(crate) fn of(
        http: &Http,
        request: http::Request<OutgoingBody>,
        connect_by: tokio::time::Instant,
    ) -> Self {
        let (parts, outgoing) = request.into_parts();
        let body = match outgoing {
            OutgoingBody::Empty => empty(),
            OutgoingBody::Bytes(bytes) => full(bytes),
            OutgoingBody::Streamed(body) => {
                return Start::Upload(Box::new((parts, body, connect_by)));
            }
        };
        Start::Sent(send(
            http,
            http::Request::from_parts(parts, body),
            connect_by,
        ))
    }
}

/// The error for a streamed body without a source to read it from.
pub(crate) fn no_source() -> Error {
    Error::Config("this operation streams a body: call it with a source".into())
}

/// Sends `request` with the client's `User-Agent`, mapping hyper's errors to the shared kinds.
/// The request is handed to hyper at once: the future holds only hyper's (boxed) one, not the
/// request, nor its URI (the call machine names the host of a connect or TLS error from its
/// own URL, [`nx_protocol::call::Call::failed`]: keeping a copy of the URI cost two atomics a
/// call).
pub(crate) fn send(
    http: &Http,
    mut request: http::Request<Body>,
    connect_by: tokio::time::Instant,
) -> Sending {
    request
        .headers_mut()
        .insert(http::header::USER_AGENT, http.user_agent.clone());
    Sending {
        response: http.client.request(request),
        connect_by,
    }
}

/// The answer's head of a request handed to hyper ([`send`]).
pub(crate) struct Sending {
    response: ResponseFuture,
    /// When a connection hyper opens for it must be ready
    /// ([`nx_protocol::call::Watch::connect_deadline`]).
    connect_by: tokio::time::Instant,
}

/// How an attempt's work failed.
#[derive(Debug)]
pub(crate) enum SendError {
    /// With this error.
    Failed(Error),
    /// The new connection it waited for was not ready by the connect deadline: the call
    /// machine names the limit (and the phase: no connection was made, whichever limit capped
    /// the connect limit).
    ConnectTimedOut,
}

impl From<Error> for SendError {
    fn from(error: Error) -> Self {
        SendError::Failed(error)
    }
}

impl Future for Sending {
    type Output = Result<http::Response<Incoming>, SendError>;

    /// A request still waiting for its new connection once the connect deadline has passed is a
    /// connect timeout, whichever timer woke it: when a nearer limit (the attempt's, the call's)
    /// caps the connect limit, the connector's timer and the call's come at the same instant,
    /// and the driver polls the request once more before it checks the call's limits.
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let mut connecting = false;
        let polled = crate::connect::polling(this.connect_by, &mut connecting, || {
            Pin::new(&mut this.response).poll(cx)
        });
        match polled {
            Poll::Pending if connecting && tokio::time::Instant::now() >= this.connect_by => {
                Poll::Ready(Err(SendError::ConnectTimedOut))
            }
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) if e.is_connect() && has::<ConnectTimedOut>(&e) => {
                Poll::Ready(Err(SendError::ConnectTimedOut))
            }
            Poll::Ready(result) => Poll::Ready(result.map_err(|e| SendError::Failed(classify(e)))),
        }
    }
}

/// Whether an `E` is in `error`'s chain (hyper-util keeps the connector's error as a cause).
fn has<E: StdError + 'static>(error: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(cause) = next {
        if cause.is::<E>() {
            return true;
        }
        next = cause.source();
    }
    false
}

/// hyper's error as one of the shared kinds. A connect or TLS error's host is left empty: the
/// call machine names it ([`nx_protocol::call::Call::failed`]).
fn classify(e: hyper_util::client::legacy::Error) -> Error {
    let host = String::new();
    let mut tls = false;
    let mut next: Option<&(dyn StdError + 'static)> = Some(&e);
    while let Some(cause) = next {
        // hyper-rustls wraps tokio-rustls' `io::Error` in another one, and an `io::Error`'s
        // `source` skips the error it wraps: look inside each layer.
        let mut layer = cause;
        while let Some(inner) = layer
            .downcast_ref::<io::Error>()
            .and_then(|io| io.get_ref())
        {
            layer = inner;
        }
        tls |= cause.downcast_ref::<rustls::Error>().is_some()
            || layer.downcast_ref::<rustls::Error>().is_some();
        next = cause.source();
    }
    if let Some(changed) = source_changed(&e) {
        return Error::SourceChanged(changed);
    }
    if tls {
        Error::Tls {
            host,
            source: Box::new(e),
        }
    } else if e.is_connect() {
        Error::Connect {
            host,
            source: Box::new(e),
        }
    } else {
        Error::Transport {
            source: Box::new(e),
        }
    }
}

/// The upload source's change that failed the request's body ([`streamed`]), if that is what
/// failed it: hyper keeps the body's error as a cause.
fn source_changed(e: &hyper_util::client::legacy::Error) -> Option<SourceChanged> {
    let mut next: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(cause) = next {
        let found = cause
            .downcast_ref::<io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<SourceChanged>());
        if let Some(changed) = found {
            return Some(changed.clone());
        }
        next = cause.source();
    }
    None
}

// Only without `native-roots` (a workspace build may unify it on, through nx-cli).
#[cfg(all(test, not(feature = "native-roots")))]
mod tests {
    use super::*;

    #[test]
    fn the_os_store_needs_its_feature() {
        let mut config = TransportConfig::new("test");
        config.root_store = RootStore::Native;
        config.proxy = nx_protocol::proxy::ProxyConfig::Off;
        let built = http_client(&config);
        assert!(
            matches!(&built, Err(Error::Config(m)) if m.contains("native-roots")),
            "{built:?}"
        );
    }
}
