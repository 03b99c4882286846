//! The state shared by every connection, and the pieces every handler uses.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tokio::sync::watch;

use crate::body::{self, Body};
use crate::clock::Clock;
use crate::config::{Account, SandboxConfig};
use crate::fault::Faults;
use crate::log::{LogEntry, RequestLog, Route};
use crate::outbound::{self, Delivery, LoopbackUrl};
use crate::store::Store;

/// The largest request body the sandbox reads at all: the largest media file (100 MB) plus room
/// for a multipart form's other parts. Anything announced larger is answered 413 unread.
pub(crate) const MAX_UPLOAD_BODY: u64 = 100 * 1024 * 1024 + 1024 * 1024;

pub(crate) struct Token {
    pub(crate) expires_ms: u64,
}

pub(crate) struct State {
    pub(crate) config: SandboxConfig,
    pub(crate) clock: Clock,
    pub(crate) store: Arc<Store>,
    pub(crate) faults: Faults,
    pub(crate) log: RequestLog,
    /// The messages mt accepted.
    pub(crate) outbox: crate::send::Outbox,
    pub(crate) base_url: String,
    pub(crate) oss_key: [u8; 32],
    pub(crate) rng: Mutex<fastrand::Rng>,
    pub(crate) tokens: Mutex<HashMap<String, Token>>,
    /// Current On-Prem passwords by user (`new_password` changes them).
    pub(crate) passwords: Mutex<HashMap<String, String>>,
    /// Users whose next login must set a new password ([`crate::OnPremUser::must_change_password`]).
    pub(crate) must_change_password: Mutex<HashSet<String>>,
    pub(crate) webhook_url: Mutex<Option<LoopbackUrl>>,
    pub(crate) callback_url: Mutex<Option<LoopbackUrl>>,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) runtime: tokio::runtime::Handle,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl State {
    pub(crate) fn account(&self, access_key: &[u8]) -> Option<&Account> {
        self.config
            .accounts
            .iter()
            .find(|a| a.access_key.as_bytes() == access_key)
    }

    pub(crate) fn random_u128(&self) -> u128 {
        lock(&self.rng).u128(..)
    }

    /// POSTs `body` to a configured URL (webhook or callback) and logs it.
    pub(crate) async fn deliver(
        &self,
        route: Route,
        url: Option<LoopbackUrl>,
        body: Bytes,
    ) -> Delivery {
        let Some(url) = url else {
            self.log.push(LogEntry {
                seq: 0,
                route,
                method: "POST".into(),
                // Nowhere to send it: the log line says so instead of showing an empty path.
                path: "-".into(),
                action: None,
                ts: None,
                status: None,
                code: None,
                latency: std::time::Duration::ZERO,
                fault: None,
                note: Some("no URL configured: not sent".into()),
            });
            return Delivery::NotConfigured;
        };
        let (delivery, latency) = outbound::post_json(&url, body).await;
        let (status, note) = match &delivery {
            Delivery::Delivered { status } => (Some(*status), None),
            Delivery::Failed(why) => (None, Some(why.clone())),
            Delivery::NotConfigured => (None, None),
        };
        self.log.push(LogEntry {
            seq: 0,
            route,
            method: "POST".into(),
            path: url.path().to_owned(),
            action: None,
            ts: None,
            status,
            code: None,
            latency,
            fault: None,
            note,
        });
        delivery
    }
}

/// A handler's answer plus what the log should say about it.
pub(crate) struct Outcome {
    pub(crate) response: Response<Body>,
    pub(crate) code: Option<i64>,
    pub(crate) note: Option<String>,
}

impl Outcome {
    pub(crate) fn new(response: Response<Body>) -> Self {
        Self {
            response,
            code: None,
            note: None,
        }
    }

    pub(crate) fn code(mut self, code: i64) -> Self {
        self.code = Some(code);
        self
    }

    pub(crate) fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    /// Adds `Connection: close` (the request body was not read to its end).
    pub(crate) fn close(mut self) -> Self {
        self.response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        self
    }
}

/// A response with a whole body, its `Content-Type` and `Content-Length`.
pub(crate) fn respond(
    status: StatusCode,
    content_type: &'static str,
    bytes: Bytes,
) -> Response<Body> {
    let len = bytes.len();
    let mut response = Response::new(body::full(bytes));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    response
}

pub(crate) fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    respond(status, "application/json", Bytes::from(bytes))
}

pub(crate) fn text(status: StatusCode, text: &str) -> Response<Body> {
    respond(
        status,
        "text/plain; charset=utf-8",
        Bytes::from(text.to_owned()),
    )
}

/// An nginx-style HTML error page.
pub(crate) fn html_error(status: StatusCode) -> Response<Body> {
    let line = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    let page = format!(
        "<html>\r\n<head><title>{line}</title></head>\r\n<body>\r\n<center><h1>{line}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    );
    respond(status, "text/html", Bytes::from(page))
}

/// 413 for a body over a limit; the connection is closed since the body is not read.
pub(crate) fn too_large(limit: u64) -> Outcome {
    Outcome::new(html_error(StatusCode::PAYLOAD_TOO_LARGE))
        .note(format!("request body over {limit} bytes"))
        .close()
}

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

/// Whether `s` is non-empty and ASCII digits only.
pub(crate) fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Reads a query string's parameters (percent-decoded; `+` is kept as is).
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
    percent_encoding::percent_decode_str(s)
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
