//! The hyper side: connector, TLS, sending a request, reading a capped answer, streaming bodies.

use std::error::Error as StdError;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use nx_protocol::client::{Error, RootStore, TransportConfig};
use nx_protocol::{OutgoingBody, StreamedBody};
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::connect::Connector;
use crate::upload::UploadSource;

/// The request body type every call uses.
pub(crate) type Body = UnsyncBoxBody<Bytes, io::Error>;
/// The pooled hyper client and what every request carries.
#[derive(Clone, Debug)]
pub(crate) struct Http {
    client: HyperClient<HttpsConnector<Connector>, Body>,
    /// Checked once at construction ([`TransportConfig::user_agent_header`]).
    user_agent: http::HeaderValue,
}

/// Bytes read from a streamed source at a time.
pub(crate) const CHUNK: usize = 64 * 1024;

/// A pooled, keep-alive HTTP/1.1 client over rustls (the crate's crypto provider, the
/// configured root store plus the extra roots), connecting directly or through the proxy the
/// configuration's rules name for each target.
pub(crate) fn http_client(config: &TransportConfig) -> Result<Http, Error> {
    let user_agent = config.user_agent_header()?;
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
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(Connector::new(http, proxies));
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
    nx_protocol::client::native_roots(found.certs, &found.errors)
}

#[cfg(not(feature = "native-roots"))]
fn native_roots() -> Result<Vec<CertificateDer<'static>>, Error> {
    Err(nx_protocol::client::native_roots_missing("nx-async"))
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

/// When bytes last moved, so a streamed transfer is limited by its idle time rather than its
/// total time (a large file on a slow link is fine; a stalled one is not).
#[derive(Clone, Debug)]
pub(crate) struct Activity {
    start: Instant,
    last_ms: Arc<AtomicU64>,
}

impl Activity {
    pub(crate) fn new() -> Self {
        Self {
            start: Instant::now(),
            last_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Records that bytes moved now.
    pub(crate) fn touch(&self) {
        self.last_ms
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Resolves once nothing has moved for `idle`.
    pub(crate) async fn idle_for(&self, idle: Duration) {
        loop {
            let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let quiet = self.start.elapsed().saturating_sub(last);
            if quiet >= idle {
                return;
            }
            tokio::time::sleep(idle - quiet).await;
        }
    }
}

/// `head`, then exactly `stream_len` bytes of `reader`, then `tail`, one chunk in memory at a
/// time; every chunk handed to hyper touches `activity`.
pub(crate) fn streamed(
    body: StreamedBody,
    reader: Box<dyn AsyncRead + Send + Unpin>,
    activity: Activity,
) -> Body {
    enum State {
        Head(StreamedBody, Box<dyn AsyncRead + Send + Unpin>),
        File(u64, Bytes, Box<dyn AsyncRead + Send + Unpin>),
        Done,
    }
    let stream = futures_util::stream::unfold(State::Head(body, reader), move |state| {
        activity.touch();
        async move {
            match state {
                State::Head(b, reader) => {
                    let next = State::File(b.stream_len, b.tail, reader);
                    Some((Ok(Frame::data(b.head)), next))
                }
                State::File(0, tail, _) => Some((Ok(Frame::data(tail)), State::Done)),
                State::File(remaining, tail, mut reader) => {
                    let want = remaining.min(CHUNK as u64) as usize;
                    let mut buf = BytesMut::zeroed(want);
                    match reader.read(&mut buf).await {
                        Ok(0) => Some((
                            Err(io::Error::new(
                                io::ErrorKind::UnexpectedEof,
                                format!(
                                    "the upload source ended {remaining} bytes before its declared length"
                                ),
                            )),
                            State::Done,
                        )),
                        Ok(n) => {
                            buf.truncate(n);
                            Some((
                                Ok(Frame::data(buf.freeze())),
                                State::File(remaining - n as u64, tail, reader),
                            ))
                        }
                        Err(e) => Some((Err(e), State::Done)),
                    }
                }
                State::Done => None,
            }
        }
    });
    BodyExt::boxed_unsync(StreamBody::new(stream))
}

/// The body for a built request: bytes as they are, streamed parts from `reader`.
pub(crate) fn body_of(
    outgoing: OutgoingBody,
    reader: Option<Box<dyn AsyncRead + Send + Unpin>>,
    activity: &Activity,
) -> Result<Body, Error> {
    Ok(match (outgoing, reader) {
        (OutgoingBody::Empty, _) => empty(),
        (OutgoingBody::Bytes(bytes), _) => full(bytes),
        (OutgoingBody::Streamed(s), Some(reader)) => streamed(s, reader, activity.clone()),
        (OutgoingBody::Streamed(_), None) => {
            return Err(Error::Config(
                "this operation streams a body: call it with a source".into(),
            ));
        }
    })
}

/// Sends `request` with the client's `User-Agent`, mapping hyper's errors to the shared kinds.
pub(crate) async fn send(
    http: &Http,
    mut request: http::Request<Body>,
) -> Result<http::Response<Incoming>, Error> {
    request
        .headers_mut()
        .insert(http::header::USER_AGENT, http.user_agent.clone());
    // The URI is cheap to keep (shared bytes); the host is copied only for an error message.
    let uri = request.uri().clone();
    http.client
        .request(request)
        .await
        .map_err(|e| classify(e, nx_protocol::client::peer(&uri)))
}

fn classify(e: hyper_util::client::legacy::Error, host: String) -> Error {
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

/// Reads a whole answer of at most `limit` bytes; a larger one is refused as soon as it is
/// announced or exceeded, without buffering it.
pub(crate) async fn read_capped(
    response: http::Response<Incoming>,
    limit: u64,
) -> Result<Bytes, Error> {
    Ok(read_answer(response, limit).await?.body)
}

/// Reads a whole answer (status, headers, body of at most `limit` bytes), without copying the
/// headers.
pub(crate) async fn read_answer(
    response: http::Response<Incoming>,
    limit: u64,
) -> Result<Answer, Error> {
    let (parts, mut body) = response.into_parts();
    let announced = nx_protocol::head::content_length(&parts.headers);
    if announced.is_some_and(|len| len > limit) {
        return Err(Error::AnswerTooLarge { limit });
    }
    let mut out = BytesMut::with_capacity(announced.unwrap_or(1024).min(limit) as usize);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Error::Transport {
            source: Box::new(e),
        })?;
        if let Ok(data) = frame.into_data() {
            if out.len() as u64 + data.len() as u64 > limit {
                return Err(Error::AnswerTooLarge { limit });
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(Answer {
        status: parts.status,
        headers: parts.headers,
        body: out.freeze(),
    })
}

/// Runs `exchange` under the attempt's limit: a total of `limit` for a complete body, or `limit`
/// of idleness for a streamed one (watched through `activity`).
pub(crate) async fn limited<T>(
    exchange: impl std::future::Future<Output = Result<T, Error>>,
    streamed: bool,
    activity: &Activity,
    limit: Duration,
) -> Result<T, Error> {
    let timeout = |during| Error::Timeout {
        during,
        after: limit,
    };
    if !streamed {
        return tokio::time::timeout(limit, exchange)
            .await
            .unwrap_or_else(|_| Err(timeout("waiting for the answer")));
    }
    activity.touch();
    tokio::select! {
        result = exchange => result,
        () = activity.idle_for(limit) => Err(timeout("sending the upload (no progress)")),
    }
}

/// A complete answer: status, headers and the (capped) body.
pub(crate) struct Answer {
    pub(crate) status: http::StatusCode,
    pub(crate) headers: http::HeaderMap,
    pub(crate) body: Bytes,
}

/// One attempt of a call: sends `request` (streaming `source` for a streamed body), under the
/// attempt's limit, and reads the answer of at most `max_answer_bytes`.
pub(crate) async fn exchange(
    http: &Http,
    config: &TransportConfig,
    request: http::Request<OutgoingBody>,
    source: Option<&mut UploadSource>,
) -> Result<Answer, Error> {
    let (parts, outgoing) = request.into_parts();
    let reader = match (&outgoing, source) {
        (OutgoingBody::Streamed(_), Some(source)) => Some(crate::upload::open(source).await?),
        _ => None,
    };
    let streamed = matches!(outgoing, OutgoingBody::Streamed(_));
    let activity = Activity::new();
    let request = http::Request::from_parts(parts, body_of(outgoing, reader, &activity)?);
    let exchange = async { read_answer(send(http, request).await?, config.max_answer_bytes).await };
    limited(exchange, streamed, &activity, config.request_timeout).await
}

/// Sends a request without a streamed body and returns the answer once its head has arrived
/// (within `request_timeout`), leaving the body to be streamed.
pub(crate) async fn start(
    http: &Http,
    config: &TransportConfig,
    request: http::Request<OutgoingBody>,
) -> Result<http::Response<Incoming>, Error> {
    let (parts, outgoing) = request.into_parts();
    let request = http::Request::from_parts(parts, body_of(outgoing, None, &Activity::new())?);
    let limit = config.request_timeout;
    tokio::time::timeout(limit, send(http, request))
        .await
        .map_err(|_| Error::Timeout {
            during: "waiting for the answer to start",
            after: limit,
        })?
}

/// Reads an error answer's body (at most `max` bytes, within the request timeout); a body that
/// cannot be read is treated as empty, since the status already says what went wrong.
pub(crate) async fn error_body(
    response: http::Response<Incoming>,
    max: u64,
    limit: Duration,
) -> Bytes {
    match tokio::time::timeout(limit, read_capped(response, max)).await {
        Ok(Ok(body)) => body,
        _ => Bytes::new(),
    }
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
