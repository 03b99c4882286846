//! The sans-IO request machinery every NXCloud API call goes through.
//!
//! An [`Operation`] says what it is (business line, action, path), how its body is produced and
//! how its `data` is parsed. [`build_request`] turns it, a [`BaseUrl`], [`Credentials`] and a
//! [`Timestamp`] into a signed `http::Request` whose body bytes are exactly the bytes that were
//! signed; [`parse_response`] turns status + body bytes into the typed output or a
//! [`ResponseError`]. Transports only move bytes.
//!
//! Adding another NXCloud API (SMS, voice, ...) is implementing [`Operation`]:
//!
//! ```
//! use nx_protocol::operation::{build_request, deserialize_data, parse_response, BaseUrl, Operation, RequestBody};
//! use nx_protocol::{BizType, Credentials, DataError, InvalidInput, Timestamp};
//!
//! /// A hypothetical SMS send call.
//! struct SendSms<'a> { phone: &'a str, text: &'a str }
//!
//! #[derive(serde::Deserialize)]
//! struct Sent { message_id: String }
//!
//! impl Operation for SendSms<'_> {
//!     type Output = Sent;
//!     fn biz_type(&self) -> BizType { BizType::SMS }
//!     fn action(&self) -> &str { "send" }
//!     fn path(&self) -> &str { "/api/sms/send" }
//!     fn body(&self) -> Result<RequestBody, InvalidInput> {
//!         RequestBody::json(&serde_json::json!({ "phone": self.phone, "content": self.text }))
//!     }
//!     fn parse_data(&self, data: Option<&serde_json::value::RawValue>) -> Result<Sent, DataError> {
//!         deserialize_data(data)
//!     }
//! }
//!
//! let op = SendSms { phone: "8613800000000", text: "hi" };
//! let creds = Credentials::new("key", "secret");
//! let base = BaseUrl::parse("https://api2.nxcloud.com").unwrap();
//! let request = build_request(&op, &base, &creds, Timestamp::from_millis(1_700_000_000_000)).unwrap();
//! assert_eq!(request.uri(), "https://api2.nxcloud.com/api/sms/send");
//! assert_eq!(request.headers()["action"], "send");
//! assert_eq!(request.headers()["sign"].len(), 32);
//!
//! let answer = br#"{"code":0,"message":"ok","data":{"message_id":"m1"}}"#;
//! let sent = parse_response(&op, http::StatusCode::OK, answer).unwrap();
//! assert_eq!(sent.message_id, "m1");
//! ```

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::uri::{Authority, Parts, PathAndQuery, Scheme};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::body::{OutgoingBody, StreamedBody};
use crate::code::BizType;
use crate::envelope::{Wire, WireWith};
use crate::error::{DataError, InvalidInput, ResponseError, Snippet};
use crate::secret::Credentials;
use crate::sign::{self, SignableBody, SignableRequest};
use crate::time::{Digits, Timestamp};

/// `Content-Type` of NXCloud's JSON requests.
pub const JSON_CONTENT_TYPE: &str = "application/json";

/// The names of NXCloud's common headers.
pub mod headers {
    /// The account's public key id.
    pub const ACCESS_KEY: &str = "accessKey";
    /// Request time in milliseconds.
    pub const TS: &str = "ts";
    /// Business line.
    pub const BIZ_TYPE: &str = "bizType";
    /// Operation.
    pub const ACTION: &str = "action";
    /// The signature.
    pub const SIGN: &str = crate::sign::SIGN_HEADER;
}

/// How an operation's request body is produced.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RequestBody {
    /// No body.
    Empty,
    /// JSON bytes, serialized once: they are signed and sent as they are.
    Json(Bytes),
    /// A `multipart/form-data` body (never signed), with its `Content-Type` (boundary included).
    Multipart {
        /// `multipart/form-data; boundary=...`.
        content_type: String,
        /// The form, its file part streamed by the transport.
        body: StreamedBody,
    },
}

impl RequestBody {
    /// Serializes `value` as compact JSON, once.
    pub fn json(value: &impl serde::Serialize) -> Result<Self, InvalidInput> {
        json_bytes(value).map(RequestBody::Json)
    }
}

/// `value` as compact JSON bytes, serialized once: the one serialization of both APIs' bodies.
pub(crate) fn json_bytes(value: &impl serde::Serialize) -> Result<Bytes, InvalidInput> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| InvalidInput::Serialize(e.to_string()))
}

/// A piece of JSON text for [`json_concat`].
#[derive(Clone, Copy)]
pub(crate) enum Json<'a> {
    /// JSON text, written as it is (names, punctuation, constants).
    Raw(&'a str),
    /// A string value, written as a JSON string.
    Str(&'a str),
}

/// `pieces` as one JSON text, each string written byte for byte as `serde_json` writes it
/// (only `"`, `\` and the control characters below U+0020 escaped; `/`, U+2028 and the rest
/// as they are), into a buffer of its exact size: one allocation, and none more when it
/// becomes `Bytes`, where `serde_json::to_vec` grows a buffer and `Bytes` then adds a second.
pub(crate) fn json_concat(pieces: &[Json<'_>]) -> Bytes {
    // Whether any string needs an escape: when none does (the usual case), each is written
    // between quotes as it is, without being scanned a second time.
    let mut escapes = false;
    let len = pieces
        .iter()
        .map(|piece| match piece {
            Json::Raw(text) => text.len(),
            Json::Str(text) if !needs_escape(text) => text.len() + 2,
            Json::Str(text) => {
                escapes = true;
                escaped_len(text)
            }
        })
        .sum();
    let mut out = Vec::with_capacity(len);
    for piece in pieces {
        match piece {
            Json::Raw(text) => out.extend_from_slice(text.as_bytes()),
            Json::Str(text) if !escapes => {
                out.push(b'"');
                out.extend_from_slice(text.as_bytes());
                out.push(b'"');
            }
            Json::Str(text) => write_escaped(&mut out, text),
        }
    }
    debug_assert_eq!(out.len(), len);
    Bytes::from(out)
}

/// How `serde_json` escapes a byte of a string: `None` for none (every byte but `"`, `\` and
/// the controls below 0x20), else the escape's second character (`u` for `\u00XX`).
fn escape(byte: u8) -> Option<u8> {
    Some(match byte {
        b'"' => b'"',
        b'\\' => b'\\',
        0x08 => b'b',
        0x0c => b'f',
        b'\n' => b'n',
        b'\r' => b'r',
        b'\t' => b't',
        0x00..=0x1f => b'u',
        _ => return None,
    })
}

/// Whether any byte of `s` must be escaped (no early exit, so that the loop vectorizes).
fn needs_escape(s: &str) -> bool {
    let mut any = false;
    for &b in s.as_bytes() {
        any |= (b < 0x20) | (b == b'"') | (b == b'\\');
    }
    any
}

/// The length of `s` as a JSON string, quotes included.
fn escaped_len(s: &str) -> usize {
    if !needs_escape(s) {
        return s.len() + 2;
    }
    s.bytes()
        .map(|b| match escape(b) {
            None => 1,
            Some(b'u') => 6,
            Some(_) => 2,
        })
        .sum::<usize>()
        + 2
}

/// `s` as a JSON string, quotes included.
fn write_escaped(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    if !needs_escape(s) {
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return;
    }
    let mut plain = 0;
    for (i, byte) in s.bytes().enumerate() {
        let Some(code) = escape(byte) else { continue };
        out.extend_from_slice(&s.as_bytes()[plain..i]);
        plain = i + 1;
        match code {
            b'u' => out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xf)],
            ]),
            code => out.extend_from_slice(&[b'\\', code]),
        }
    }
    out.extend_from_slice(&s.as_bytes()[plain..]);
    out.push(b'"');
}

/// One NXCloud open-platform API call, described without any I/O.
pub trait Operation {
    /// The typed `data` of a successful answer.
    type Output;

    /// The `bizType` header.
    fn biz_type(&self) -> BizType;

    /// The `action` header.
    fn action(&self) -> &str;

    /// The path below the base URL, e.g. `/api/wa/getMedia`.
    fn path(&self) -> &str;

    /// The request body. Validation of the call's inputs happens here, before anything is sent.
    fn body(&self) -> Result<RequestBody, InvalidInput>;

    /// Parses a successful answer's `data` (`None` when it is absent or `null`); the error says
    /// what is wrong with it. [`deserialize_data`] is the usual body.
    fn parse_data(&self, data: Option<&RawValue>) -> Result<Self::Output, DataError>;

    /// Whether sending the call twice has the same effect as sending it once. Only such calls
    /// are retried after a failure that may have reached the server (a reset, a timeout, a 5xx,
    /// a 9001); one that is not (a message send) is resent only when it certainly was not
    /// carried out (see [`crate::policy::retry::RetryPolicy::decide`]).
    fn is_idempotent(&self) -> bool {
        true
    }

    /// Parses an answer to this call from its status and body bytes; [`parse_response`] calls
    /// it. By default the envelope, then [`Operation::parse_data`] on a success's `data`. An
    /// operation overrides it only to read the same answers faster with the same results (as
    /// [`crate::wa::GetMedia`] reads `data` in the envelope's pass), never to accept others.
    fn parse_answer(&self, status: StatusCode, body: &[u8]) -> Result<Self::Output, ResponseError> {
        parse_envelope(self, status, body)
    }
}

/// A validated base URL (`http` or `https`, no query or fragment), e.g. `https://api2.nxcloud.com`.
#[derive(Clone, PartialEq, Eq)]
pub struct BaseUrl {
    /// Scheme and authority with any path prefix, without a trailing `/`.
    prefix: String,
    /// The parsed parts [`BaseUrl::join`] puts together, so that a call parses only its path.
    scheme: Scheme,
    authority: Authority,
    /// The path prefix without a trailing `/` (empty for none).
    path: String,
}

impl BaseUrl {
    /// Parses and checks a base URL.
    pub fn parse(url: &str) -> Result<Self, InvalidInput> {
        let bad = |reason| InvalidInput::Url {
            url: crate::redact::redact_urls(strip_query(url)).into_owned(),
            reason,
        };
        let uri: Uri = url
            .parse()
            .map_err(|_| bad("it is not a valid absolute URL"))?;
        let scheme = match uri.scheme_str() {
            Some("https") => Scheme::HTTPS,
            Some("http") => Scheme::HTTP,
            _ => return Err(bad("the scheme must be http or https")),
        };
        let authority = uri.authority().ok_or_else(|| bad("it has no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad("credentials in the URL are not supported"));
        }
        if uri.query().is_some() || url.contains('#') {
            return Err(bad("a base URL cannot have a query or fragment"));
        }
        let path = uri.path().trim_end_matches('/');
        Ok(Self {
            prefix: format!("{scheme}://{authority}{path}"),
            authority: authority.clone(),
            path: path.to_owned(),
            scheme,
        })
    }

    /// Whether it is `https`.
    pub fn is_https(&self) -> bool {
        self.scheme == Scheme::HTTPS
    }

    /// The host, without port (an IPv6 address without its brackets).
    ///
    /// ```
    /// use nx_protocol::operation::BaseUrl;
    /// let v6 = BaseUrl::parse("http://[::1]:8443/nx").unwrap();
    /// assert_eq!((v6.host(), v6.is_https(), v6.is_loopback()), ("::1", false, true));
    /// let local = BaseUrl::parse("http://LocalHost:9000").unwrap();
    /// assert!(local.is_loopback());
    /// let prod = BaseUrl::parse("https://api2.nxcloud.com").unwrap();
    /// assert_eq!((prod.host(), prod.is_https(), prod.is_loopback()), ("api2.nxcloud.com", true, false));
    /// assert!(!BaseUrl::parse("http://127.0.0.1.example").unwrap().is_loopback());
    /// ```
    pub fn host(&self) -> &str {
        let host = self.authority.host();
        host.strip_prefix('[')
            .and_then(|v6| v6.strip_suffix(']'))
            .unwrap_or(host)
    }

    /// Whether the host is a loopback address (`localhost`, 127.0.0.0/8, `::1`), where plain
    /// HTTP is harmless.
    pub fn is_loopback(&self) -> bool {
        is_loopback_host(self.host())
    }

    /// The URL of `path_and_query` (which starts with `/`) below this base.
    ///
    /// ```
    /// use nx_protocol::operation::BaseUrl;
    /// let base = BaseUrl::parse("https://gw.example:8443/nx/").unwrap();
    /// assert_eq!(base.join("/api/wa/getMedia").unwrap(), "https://gw.example:8443/nx/api/wa/getMedia");
    /// let bare = BaseUrl::parse("http://127.0.0.1:9000").unwrap();
    /// assert_eq!(bare.join("/v1/media/1?x=y").unwrap(), "http://127.0.0.1:9000/v1/media/1?x=y");
    /// // What cannot be a path is a typed error naming the URL, never a panic.
    /// for bad in ["api/wa", "/a b", "/a\nb", ""] {
    ///     let err = bare.join(bad).unwrap_err().to_string();
    ///     assert!(err.contains("http://127.0.0.1:9000"), "{err}");
    /// }
    /// ```
    pub fn join(&self, path_and_query: &str) -> Result<Uri, InvalidInput> {
        let path = if self.path.is_empty() {
            PathAndQuery::try_from(path_and_query)
        } else {
            PathAndQuery::try_from(format!("{}{path_and_query}", self.path))
        };
        self.uri_of(path_and_query, path)
    }

    /// The URL of `path_and_query` below this base, given the path prefix and `path_and_query`
    /// already parsed together as `path`. Scheme and authority were checked once by `parse`:
    /// only the path is parsed per call.
    fn uri_of(
        &self,
        path_and_query: &str,
        path: Result<PathAndQuery, http::uri::InvalidUri>,
    ) -> Result<Uri, InvalidInput> {
        let bad = || InvalidInput::Url {
            url: format!("{}{}", self.prefix, strip_query(path_and_query)),
            reason: "the path does not form a valid URL",
        };
        if !path_and_query.starts_with('/') {
            return Err(bad());
        }
        let mut parts = Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(path.map_err(|_| bad())?);
        Uri::from_parts(parts).map_err(|_| bad())
    }

    /// The base as text.
    pub fn as_str(&self) -> &str {
        &self.prefix
    }
}

impl std::fmt::Debug for BaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BaseUrl({})", self.prefix)
    }
}

impl std::fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.prefix)
    }
}

pub(crate) fn strip_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// Builds the signed request for `op`: `POST base + path`, the four common headers plus `sign`,
/// `Content-Type` and `Content-Length`, and the body whose bytes were signed.
pub fn build_request<O: Operation + ?Sized>(
    op: &O,
    base: &BaseUrl,
    credentials: &Credentials,
    ts: Timestamp,
) -> Result<http::Request<OutgoingBody>, InvalidInput> {
    const JSON: HeaderValue = HeaderValue::from_static(JSON_CONTENT_TYPE);
    // The body is moved into the request, not cloned: a clone of fresh `Bytes` allocates.
    let (outgoing, content_type) = match op.body()? {
        RequestBody::Empty => (OutgoingBody::Empty, None),
        RequestBody::Json(bytes) => (OutgoingBody::Bytes(bytes), Some(JSON)),
        RequestBody::Multipart { content_type, body } => (
            OutgoingBody::Streamed(body),
            Some(
                HeaderValue::from_str(&content_type).map_err(|_| InvalidInput::HeaderValue {
                    name: CONTENT_TYPE.to_string(),
                })?,
            ),
        ),
    };
    let signable = match &outgoing {
        OutgoingBody::Empty => SignableBody::Empty,
        OutgoingBody::Bytes(bytes) => SignableBody::Json(bytes),
        OutgoingBody::Streamed(_) => SignableBody::Multipart,
    };
    // Reading of "the header parameters that are sent": NXCloud's four common headers. HTTP's
    // own headers (`Content-Type`, `Content-Length`, and `Host`, `User-Agent` that transports
    // add) are not parameters and are not signed, as in the vendor's worked example.
    let ts_digits = ts.digits();
    let biz_digits = op.biz_type().digits();
    let params = [
        (headers::ACCESS_KEY, credentials.access_key()),
        (headers::ACTION, op.action()),
        (headers::BIZ_TYPE, biz_digits.as_str()),
        (headers::TS, ts_digits.as_str()),
    ];
    // The two free-form values; the others are digits (ts, bizType) and hex (sign).
    if params[..2]
        .iter()
        .any(|(_, value)| value.is_empty() || blank_edged(value))
    {
        return Err(stripped_value(&params[..2]));
    }
    // Constant names, in ascending order: the signer need not sort them.
    let signed = sign::instructions(
        &SignableRequest::new_in_order(&params, signable),
        credentials.access_secret(),
    )?;
    let length = Digits::new(outgoing.content_length());

    // The five values, the `Content-Length` and the path, sliced from one buffer: one
    // allocation for them all instead of one each.
    let [access_key, action, biz_type, ts, sign, length, path] = shared([
        &[params[0].1.as_bytes()],
        &[params[1].1.as_bytes()],
        &[params[2].1.as_bytes()],
        &[params[3].1.as_bytes()],
        &[signed.signature().as_bytes()],
        &[length.as_bytes()],
        &[base.path.as_bytes(), op.path().as_bytes()],
    ]);
    // Lower case: HTTP header names are case-insensitive and travel in lower case.
    const NAMES: [(HeaderName, &str); 5] = [
        (HeaderName::from_static("accesskey"), headers::ACCESS_KEY),
        (HeaderName::from_static("action"), headers::ACTION),
        (HeaderName::from_static("biztype"), headers::BIZ_TYPE),
        (HeaderName::from_static("ts"), headers::TS),
        (HeaderName::from_static("sign"), headers::SIGN),
    ];
    // Seven distinct names into an empty map: `append` is `insert` without looking for an
    // old value to return.
    let mut headers = HeaderMap::with_capacity(8);
    for ((name, shown), value) in NAMES
        .into_iter()
        .zip([access_key, action, biz_type, ts, sign])
    {
        // The same check as `HeaderValue::from_str`, on the shared bytes without a copy.
        let value =
            HeaderValue::from_maybe_shared(value).map_err(|_| InvalidInput::HeaderValue {
                name: shown.to_owned(),
            })?;
        headers.append(name, value);
    }
    if let Some(content_type) = content_type {
        headers.append(CONTENT_TYPE, content_type);
    }
    // Digits only: always a valid value.
    if let Ok(length) = HeaderValue::from_maybe_shared(length) {
        headers.append(CONTENT_LENGTH, length);
    }
    let mut request = http::Request::new(outgoing);
    *request.method_mut() = Method::POST;
    *request.uri_mut() = base.uri_of(op.path(), PathAndQuery::from_maybe_shared(path))?;
    *request.headers_mut() = headers;
    Ok(request)
}

/// The error for the first of `params` that is empty or has white space at either end
/// ([`blank_edged`]), so that the server would check the signature over another value. Out of
/// line: the hot path only tests the values.
#[cold]
fn stripped_value(params: &[(&str, &str)]) -> InvalidInput {
    let (name, reason) = params
        .iter()
        .find_map(|(name, value)| value_problem(value).map(|reason| (*name, reason)))
        .unwrap_or(("", "is not valid"));
    InvalidInput::StrippedValue {
        name: name.to_owned(),
        reason,
    }
}

/// What the server would read otherwise in a header value, if anything (the reason of an
/// [`InvalidInput::StrippedValue`]; it never shows the value): empty, or [`blank_edged`].
pub(crate) fn value_problem(value: &str) -> Option<&'static str> {
    if value.is_empty() {
        Some("is empty")
    } else if blank_edged(value) {
        Some("has white space at either end, which the server strips before it reads the value")
    } else {
        None
    }
}

/// Whether `value` starts or ends with white space (space, tab), which HTTP strips from a
/// field value before it is read (RFC 9110 5.5): the server would read another value.
#[inline]
pub(crate) fn blank_edged(value: &str) -> bool {
    let blank = |b: &u8| matches!(b, b' ' | b'\t');
    let bytes = value.as_bytes();
    bytes.first().is_some_and(blank) || bytes.last().is_some_and(blank)
}

/// How many bytes [`shared`] keeps in its one allocation before it needs a second one: enough
/// for a request's header values and path with any real access key.
const INLINE: usize = 256;

/// Bytes kept inline in the allocation [`Bytes::from_owner`] makes for them.
struct Inline {
    bytes: [u8; INLINE],
    len: usize,
}

impl AsRef<[u8]> for Inline {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Each of `values` (each the concatenation of its pieces) as `Bytes`, all sharing one
/// buffer: one allocation (two past [`INLINE`] bytes), where a `Bytes` of each would make one
/// each.
fn shared<const N: usize>(values: [&[&[u8]]; N]) -> [Bytes; N] {
    let mut ends = [0; N];
    let mut total = 0;
    for (pieces, end) in values.iter().zip(&mut ends) {
        total += pieces.iter().map(|p| p.len()).sum::<usize>();
        *end = total;
    }
    let pieces = values.iter().flat_map(|pieces| pieces.iter());
    let whole = if total <= INLINE {
        let mut inline = Inline {
            bytes: [0; INLINE],
            len: 0,
        };
        for piece in pieces {
            inline.bytes[inline.len..inline.len + piece.len()].copy_from_slice(piece);
            inline.len += piece.len();
        }
        Bytes::from_owner(inline)
    } else {
        let mut heap = Vec::with_capacity(total);
        pieces.for_each(|piece| heap.extend_from_slice(piece));
        Bytes::from(heap)
    };
    std::array::from_fn(|i| whole.slice(if i == 0 { 0 } else { ends[i - 1] }..ends[i]))
}

/// Deserializes a success answer's `data` as `T`, refusing an absent or `null` one
/// ([`DataError::Missing`]) and one of another shape ([`DataError::Json`]).
pub fn deserialize_data<T: DeserializeOwned>(data: Option<&RawValue>) -> Result<T, DataError> {
    let data = data.ok_or(DataError::Missing)?;
    serde_json::from_str(data.get()).map_err(|e| DataError::json("`data`", &e))
}

/// Parses an answer to `op` from its status and body bytes.
///
/// An envelope with a non-zero code is [`ResponseError::Api`] whatever the status; a body that is
/// not an envelope is [`ResponseError::Http`] on an error status and [`ResponseError::Malformed`]
/// on a success status. Never panics, whatever the bytes.
pub fn parse_response<O: Operation + ?Sized>(
    op: &O,
    status: StatusCode,
    body: &[u8],
) -> Result<O::Output, ResponseError> {
    op.parse_answer(status, body)
}

/// [`parse_response`] for an operation whose [`Operation::parse_data`] is [`deserialize_data`]
/// of its output: the `data` of a success answer is read in the same pass as the envelope
/// around it, instead of being scanned as a raw value first and parsed again. Any other
/// answer (an error status or code, a `data` that is absent or not an `O::Output`, a body
/// that is not UTF-8), and any answer that one pass cannot read, is parsed again the usual
/// way, so the result is always the usual one: one pass accepts nothing the usual way refuses
/// (the same reader reads the same bytes; only UTF-8 bodies are read in one pass, since
/// `serde_json` checks the UTF-8 of the values it keeps, not of those it skips), and a test
/// compares the two on random and hostile answers.
pub(crate) fn parse_in_one_pass<O>(
    op: &O,
    status: StatusCode,
    body: &[u8],
) -> Result<O::Output, ResponseError>
where
    O: Operation + ?Sized,
    O::Output: DeserializeOwned,
{
    if status.is_success()
        && let Ok(text) = std::str::from_utf8(body)
        && let Ok(WireWith {
            code,
            data: Some(output),
            ..
        }) = serde_json::from_str::<WireWith<'_, O::Output>>(text)
        && code.is_success()
    {
        return Ok(output);
    }
    parse_envelope(op, status, body)
}

/// The usual reading of an answer: the envelope with `data` left raw, then (for a success)
/// [`Operation::parse_data`].
pub(crate) fn parse_envelope<O: Operation + ?Sized>(
    op: &O,
    status: StatusCode,
    body: &[u8],
) -> Result<O::Output, ResponseError> {
    let envelope = match Wire::parse(body) {
        Ok(envelope) => envelope,
        Err(_) if !status.is_success() => {
            return Err(ResponseError::Http {
                status,
                snippet: Snippet::of(body),
            });
        }
        Err(e) => {
            return Err(ResponseError::malformed(
                status,
                format!("not an NXCloud envelope: {e}"),
                body,
            ));
        }
    };
    if !envelope.code.is_success() {
        // Only 9099 defines its `data` (Meta's error object); any other failure's `data` is
        // left unread.
        let whatsapp = (envelope.code == crate::ApiCode::WHATSAPP_ERROR)
            .then_some(envelope.data)
            .flatten()
            .and_then(|data| crate::wa::WhatsAppError::from_data(data.get()))
            .map(Box::new);
        return Err(ResponseError::api(
            envelope.code,
            envelope.message().as_deref().unwrap_or_default(),
            status,
            whatsapp,
        ));
    }
    if !status.is_success() {
        return Err(ResponseError::Http {
            status,
            snippet: Snippet::of(body),
        });
    }
    op.parse_data(envelope.data)
        .map_err(|error| ResponseError::bad_data(status, error, body))
}

/// Whether `host` (an IPv6 address without brackets) is loopback: `localhost`, 127.0.0.0/8,
/// `::1`, where plain HTTP is harmless.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ApiCode, Timestamp};

    /// A call of another NXCloud API whose `data` is an id that must not be empty.
    struct Probe;

    impl Operation for Probe {
        type Output = String;
        fn biz_type(&self) -> BizType {
            BizType::SMS
        }
        fn action(&self) -> &str {
            "probe"
        }
        fn path(&self) -> &str {
            "/api/sms/probe"
        }
        fn body(&self) -> Result<RequestBody, InvalidInput> {
            Ok(RequestBody::Empty)
        }
        fn parse_data(&self, data: Option<&RawValue>) -> Result<String, DataError> {
            let id: String = deserialize_data(data)?;
            if id.is_empty() {
                return Err(DataError::invalid("the id is empty"));
            }
            Ok(id)
        }
    }

    fn parse(body: &str) -> Result<String, ResponseError> {
        parse_response(&Probe, StatusCode::OK, body.as_bytes())
    }

    #[test]
    fn data_errors_are_typed_and_become_malformed_with_their_message() {
        assert_eq!(parse(r#"{"code":0,"data":"m1"}"#).unwrap(), "m1");
        let what = |body: &str| match parse(body) {
            Err(ResponseError::Malformed { what, status, .. }) => {
                assert_eq!(status, StatusCode::OK);
                what
            }
            other => panic!("{body}: {other:?}"),
        };
        for body in [r#"{"code":0}"#, r#"{"code":0,"data":null}"#] {
            assert_eq!(what(body), DataError::Missing.to_string(), "{body}");
        }
        let wrong = what(r#"{"code":0,"data":7}"#);
        assert!(
            wrong.starts_with("`data` is not the expected JSON: invalid type: integer `7`"),
            "{wrong}"
        );
        assert_eq!(what(r#"{"code":0,"data":""}"#), "the id is empty");
        let missing = Probe.parse_data(None).unwrap_err();
        assert_eq!(missing, DataError::Missing);
    }

    /// An HTTP server strips the white space around a header's value before anyone reads it,
    /// so a signed parameter with white space at either end (an access key pasted with a
    /// trailing space) would be signed as one value and checked as another: the server's 1003
    /// would not say why. Such a value, or an empty one, is refused before anything is sent.
    #[test]
    fn signed_values_with_white_space_at_either_end_are_refused() {
        let base = BaseUrl::parse("https://api2.nxcloud.com").unwrap();
        let ts = Timestamp::from_millis(1_655_710_885_431);
        for key in ["", " key", "key ", "\tkey", "key\t", " "] {
            let err = build_request(&Probe, &base, &Credentials::new(key, "s"), ts).unwrap_err();
            assert!(
                matches!(&err, InvalidInput::StrippedValue { name, .. } if name == "accessKey"),
                "{key:?}: {err:?}"
            );
            assert!(err.to_string().contains("accessKey"), "{err}");
        }
        // Inside a value, white space is part of it on both ends of the wire.
        let request = build_request(&Probe, &base, &Credentials::new("a b", "s"), ts).unwrap();
        assert_eq!(request.headers()["accesskey"], "a b");
    }

    #[test]
    fn an_error_code_keeps_the_text_of_msg_or_message() {
        for (body, text) in [
            (r#"{"code":88,"msg":"number blocked"}"#, "number blocked"),
            (
                r#"{"code":88,"message":"number blocked"}"#,
                "number blocked",
            ),
            (r#"{"code":88,"message":"m1","msg":"m2"}"#, "m1"),
        ] {
            match parse(body) {
                Err(ResponseError::Api { code, message, .. }) => {
                    assert_eq!((code, message.as_str()), (ApiCode::new(88), text), "{body}");
                }
                other => panic!("{body}: {other:?}"),
            }
        }
    }
}
