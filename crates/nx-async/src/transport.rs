//! The hyper side: connector, TLS, sending a request, reading a capped answer, streaming bodies.

use std::error::Error as StdError;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use nx_protocol::client::{Error, TransportConfig};
use nx_protocol::{OutgoingBody, StreamedBody};
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The request body type every call uses.
pub(crate) type Body = UnsyncBoxBody<Bytes, io::Error>;
pub(crate) type Http = HyperClient<HttpsConnector<HttpConnector>, Body>;

/// Bytes read from a streamed source at a time.
pub(crate) const CHUNK: usize = 64 * 1024;

/// A pooled, keep-alive HTTP/1.1 client over rustls (ring provider, webpki roots plus the
/// configured extra roots).
pub(crate) fn http_client(config: &TransportConfig) -> Result<Http, Error> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for der in &config.extra_roots_der {
        roots
            .add(CertificateDer::from(der.clone()))
            .map_err(|e| Error::Config(format!("root certificate refused: {e}")))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(config.connect_timeout));
    http.set_nodelay(true);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(HyperClient::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .build(connector))
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

/// `head`, then exactly `stream_len` bytes of `reader`, then `tail`, one chunk in memory at a time.
pub(crate) fn streamed(body: StreamedBody, reader: Box<dyn AsyncRead + Send + Unpin>) -> Body {
    enum State {
        Head(StreamedBody, Box<dyn AsyncRead + Send + Unpin>),
        File(u64, Bytes, Box<dyn AsyncRead + Send + Unpin>),
        Done,
    }
    let stream = futures_util::stream::unfold(State::Head(body, reader), |state| async move {
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
    });
    BodyExt::boxed_unsync(StreamBody::new(stream))
}

/// The body for a built request: bytes as they are, streamed parts from `reader`.
pub(crate) fn body_of(
    outgoing: OutgoingBody,
    reader: Option<Box<dyn AsyncRead + Send + Unpin>>,
) -> Result<Body, Error> {
    Ok(match (outgoing, reader) {
        (OutgoingBody::Empty, _) => empty(),
        (OutgoingBody::Bytes(bytes), _) => full(bytes),
        (OutgoingBody::Streamed(s), Some(reader)) => streamed(s, reader),
        (OutgoingBody::Streamed(_), None) => {
            return Err(Error::Config(
                "this operation streams a body: call it with a source".into(),
            ));
        }
    })
}

/// Sends `request`, mapping hyper's errors to the shared kinds.
pub(crate) async fn send(
    http: &Http,
    request: http::Request<Body>,
) -> Result<http::Response<Incoming>, Error> {
    let host = request.uri().host().unwrap_or_default().to_owned();
    http.request(request).await.map_err(|e| classify(e, host))
}

fn classify(e: hyper_util::client::legacy::Error, host: String) -> Error {
    let mut tls = false;
    let mut next: Option<&(dyn StdError + 'static)> = Some(&e);
    while let Some(cause) = next {
        tls |= cause.downcast_ref::<rustls::Error>().is_some()
            || cause
                .downcast_ref::<io::Error>()
                .and_then(|io| io.get_ref())
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
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
    let announced = content_length(response.headers());
    if announced.is_some_and(|len| len > limit) {
        return Err(Error::AnswerTooLarge { limit });
    }
    let mut body = response.into_body();
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
    Ok(out.freeze())
}

/// The `Content-Length` header, if present and valid.
pub(crate) fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// The `Date` header, if present and text.
pub(crate) fn date(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get(http::header::DATE)?
        .to_str()
        .ok()
        .map(str::to_owned)
}
