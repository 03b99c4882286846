//! Reading requests: capped body reads and drains, single-valued headers, and query-string
//! parameters.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, header::AsHeaderName};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::response::Outcome;

/// The largest request body the sandbox reads at all: the largest media file (100 MB) plus room
/// for a multipart form's other parts. Anything announced larger is answered 413 unread.
pub(crate) const MAX_UPLOAD_BODY: u64 = 100 * 1024 * 1024 + 1024 * 1024;

/// The announced `Content-Length` (0 when absent or chunked).
pub(crate) fn announced_len(body: &Incoming) -> u64 {
    hyper::body::Body::size_hint(body).lower()
}

/// Why a capped read stopped.
pub(crate) enum ReadError {
    TooLarge,
    Broken,
}

/// Reads a whole body of at most `max` bytes.
pub(crate) async fn read_capped(body: Incoming, max: usize) -> Result<Bytes, ReadError> {
    if announced_len(&body) > max as u64 {
        return Err(ReadError::TooLarge);
    }
    match Limited::new(body, max).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ReadError::TooLarge),
        Err(_) => Err(ReadError::Broken),
    }
}

/// Reads and discards a body, at most `max` bytes; whether it ended within that.
pub(crate) async fn drain(mut body: Incoming, max: u64) -> bool {
    if announced_len(&body) > max {
        return false;
    }
    let mut read = 0u64;
    loop {
        match body.frame().await {
            None => return true,
            Some(Err(_)) => return false,
            Some(Ok(frame)) => {
                read += frame.data_ref().map_or(0, |d| d.len() as u64);
                if read > max {
                    return false;
                }
            }
        }
    }
}

/// Reads and discards the rest of an upload body (at most [`MAX_UPLOAD_BODY`]) before answering
/// `out`; closes when it cannot.
pub(crate) async fn drained(body: Incoming, out: Outcome) -> Outcome {
    if drain(body, MAX_UPLOAD_BODY).await {
        out
    } else {
        out.close()
    }
}

/// A header that may be sent at most once (`Content-Type`, `Authorization`) was sent more than
/// once.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Repeated;

/// The one value of a header that HTTP allows only once (RFC 9110 §5.3: a field that is not a
/// comma-separated list must not be repeated): `None` when absent, [`Repeated`] when sent
/// twice, in whatever case, since a server cannot know which one the client meant. The sandbox
/// refuses such a request instead of taking the first value.
pub(crate) fn single_header<K: AsHeaderName>(
    headers: &HeaderMap,
    name: K,
) -> Result<Option<&HeaderValue>, Repeated> {
    let mut values = headers.get_all(name).into_iter();
    let first = values.next();
    match values.next() {
        Some(_) => Err(Repeated),
        None => Ok(first),
    }
}

/// Reads a query string's parameters, percent-decoded as `application/x-www-form-urlencoded`
/// (a `+` is a space), the way object storage reads a pre-signed URL's query: a client that
/// decodes the query and sends a signature's `+` unencoded sends a space instead.
pub(crate) fn query_params(query: Option<&str>) -> Vec<(String, String)> {
    let Some(query) = query else {
        return Vec::new();
    };
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .take(64)
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let s = s.replace('+', " ");
    percent_encoding::percent_decode_str(&s)
        .decode_utf8_lossy()
        .into_owned()
}

/// The one value of a parameter; `None` when absent or repeated.
pub(crate) fn single<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    let mut values = params.iter().filter(|(k, _)| k == name);
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    Some(first.1.as_str())
}
