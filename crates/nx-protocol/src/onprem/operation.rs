//! The sans-IO request machinery of the On-Premises API: the [`OnPremOperation`] trait,
//! [`build_request`] and [`parse_response`].

use std::fmt;

use base64::Engine as _;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use zeroize::Zeroizing;

use crate::body::{OutgoingBody, StreamedBody};
use crate::error::{DataError, InvalidInput, ResponseError, Snippet};
use crate::onprem::error::{MetaCode, MetaError, parse_errors};
use crate::onprem::token::{Redacted, Token};
use crate::operation::{BaseUrl, JSON_CONTENT_TYPE};
use crate::wa::validate_media_id;

/// The most bytes of an error answer's body a transport should read before handing it to
/// [`parse_response`] (an error body is a small JSON object; a larger one is cut, which at worst
/// turns an [`ResponseError::OnPrem`] into an [`ResponseError::Http`] with a snippet).
pub const MAX_ERROR_BODY: usize = 64 * 1024;

/// Which credentials a call authenticates with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthKind {
    /// `Authorization: Basic base64(username:password)`: only the login call.
    Basic,
    /// `Authorization: Bearer <token>`: every other call.
    Bearer,
}

/// The credentials [`build_request`] puts in the `Authorization` header.
///
/// `Debug` never shows the password or the token.
///
/// ```
/// use nx_protocol::onprem::Auth;
/// let auth = Auth::Basic { username: "admin", password: "hunter2" };
/// assert_eq!(format!("{auth:?}"), r#"Basic { username: "admin", password: <redacted> }"#);
/// ```
#[derive(Clone, Copy)]
#[non_exhaustive]
pub enum Auth<'a> {
    /// A user name and password, for [`crate::onprem::Login`].
    Basic {
        /// The user name (it must not contain `:`, which Basic auth cannot carry).
        username: &'a str,
        /// The password.
        password: &'a str,
    },
    /// The token a login answered, for every other call.
    Bearer(&'a Token),
}

impl Auth<'_> {
    /// Which kind of credentials these are.
    pub fn kind(&self) -> AuthKind {
        match self {
            Auth::Basic { .. } => AuthKind::Basic,
            Auth::Bearer(_) => AuthKind::Bearer,
        }
    }

    /// The `Authorization` header value, marked sensitive (HTTP libraries then keep it out of
    /// their logs).
    fn header_value(&self) -> Result<HeaderValue, InvalidInput> {
        let bad = || InvalidInput::HeaderValue {
            name: AUTHORIZATION.to_string(),
        };
        let text = match self {
            Auth::Basic { username, password } => {
                if username.contains(':') {
                    return Err(bad());
                }
                let pair = Zeroizing::new(format!("{username}:{password}"));
                let encoded =
                    Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(&*pair));
                Zeroizing::new(format!("Basic {}", &*encoded))
            }
            Auth::Bearer(token) => {
                let token = token.expose();
                // The server would read another token (it strips white space at the edges;
                // an empty one leaves `Bearer` alone) and answer a 401 that would not say why.
                if let Some(reason) = crate::operation::value_problem(token) {
                    return Err(InvalidInput::StrippedValue {
                        name: AUTHORIZATION.to_string(),
                        reason,
                    });
                }
                Zeroizing::new(format!("Bearer {token}"))
            }
        };
        let mut value = HeaderValue::from_str(&text).map_err(|_| bad())?;
        value.set_sensitive(true);
        Ok(value)
    }
}

impl fmt::Debug for Auth<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &Redacted)
                .finish(),
            Auth::Bearer(token) => f.debug_tuple("Bearer").field(token).finish(),
        }
    }
}

/// How an On-Premises request body is produced.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnPremBody {
    /// No body.
    Empty,
    /// JSON bytes (`Content-Type: application/json`).
    Json(Bytes),
    /// Raw bytes streamed by the transport from the caller's source, with their `Content-Type`.
    Raw {
        /// The body's MIME type, e.g. `image/jpeg`.
        content_type: String,
        /// The streamed body (see [`StreamedBody::raw`]).
        body: StreamedBody,
    },
}

impl OnPremBody {
    /// Serializes `value` as compact JSON.
    pub fn json(value: &impl serde::Serialize) -> Result<Self, InvalidInput> {
        crate::operation::json_bytes(value).map(OnPremBody::Json)
    }
}

/// One call of the WhatsApp Business On-Premises API, described without any I/O. The
/// counterpart of [`crate::operation::Operation`] (which is NXCloud's signed API): no signature,
/// a method and a path per call, and an `Authorization` header instead.
pub trait OnPremOperation {
    /// The typed result of a successful answer.
    type Output;

    /// The HTTP method.
    fn method(&self) -> Method;

    /// The path below the base URL, percent-encoded, e.g. `/v1/media/<encoded id>`. Ids are
    /// validated here, before anything is sent (see [`media_path`]).
    fn path(&self) -> Result<String, InvalidInput>;

    /// Which credentials the call needs.
    fn auth_kind(&self) -> AuthKind {
        AuthKind::Bearer
    }

    /// The request body. Validation of the call's inputs happens here, before anything is sent.
    fn body(&self) -> Result<OnPremBody, InvalidInput>;

    /// Parses a successful (2xx) answer that is not the error shape; the error says what is
    /// wrong with it and becomes [`ResponseError::Malformed`].
    fn parse_output(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Self::Output, DataError>;

    /// Whether sending the call twice has the same effect as sending it once. Only such calls
    /// are retried after a failure that may have reached the server (a reset, a timeout).
    fn is_idempotent(&self) -> bool {
        true
    }
}

/// Characters kept as they are in a path segment: RFC 3986's unreserved set. Everything else,
/// `/`, `?`, `#`, `%`, `;` and every non-ASCII byte included, is percent-encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes `segment` so that it stays exactly one path segment: every byte outside
/// RFC 3986's unreserved set is encoded, and a segment made only of dots (`.`, `..`, which a
/// client or proxy would resolve as "this" or "parent" directory) has its dots encoded as `%2E`.
fn encode_segment(segment: &str) -> String {
    if segment.bytes().all(|b| b == b'.') {
        return "%2E".repeat(segment.len());
    }
    utf8_percent_encode(segment, SEGMENT).to_string()
}

/// `/v1/media/<id>` followed by `suffix` (`""` or e.g. `"/download"`), the id validated with
/// [`validate_media_id`] and percent-encoded as one path segment: whatever the id holds (`/`,
/// `?`, `#`, `%2e`, `..`), it cannot change the path.
///
/// ```
/// use nx_protocol::onprem::media_path;
/// assert_eq!(media_path("f043afd0-f0ae", "").unwrap(), "/v1/media/f043afd0-f0ae");
/// assert_eq!(media_path("../users", "/download").unwrap(), "/v1/media/..%2Fusers/download");
/// assert_eq!(media_path("..", "").unwrap(), "/v1/media/%2E%2E");
/// assert_eq!(media_path("a/b?c#d", "").unwrap(), "/v1/media/a%2Fb%3Fc%23d");
/// assert!(media_path("", "").is_err());
/// ```
pub fn media_path(id: &str, suffix: &str) -> Result<String, InvalidInput> {
    validate_media_id(id)?;
    Ok(format!("/v1/media/{}{suffix}", encode_segment(id)))
}

/// Builds the request for `op`: its method, `base + path`, `Authorization`, `Content-Type` and
/// `Content-Length` when there is a body, and the body (a raw upload is
/// [`OutgoingBody::Streamed`]: the transport copies the file's bytes).
///
/// The credentials must be of the kind the call needs ([`OnPremOperation::auth_kind`]): a
/// mismatch, a user name holding `:`, or a token holding characters a header cannot carry is
/// refused as [`InvalidInput::HeaderValue`] for `authorization`, before anything is sent.
pub fn build_request<O: OnPremOperation + ?Sized>(
    op: &O,
    base: &BaseUrl,
    auth: Auth<'_>,
) -> Result<http::Request<OutgoingBody>, InvalidInput> {
    if auth.kind() != op.auth_kind() {
        return Err(InvalidInput::HeaderValue {
            name: AUTHORIZATION.to_string(),
        });
    }
    let method = op.method();
    let uri = base.join(&op.path()?)?;
    let (content_type, outgoing) = match op.body()? {
        OnPremBody::Empty => (None, OutgoingBody::Empty),
        OnPremBody::Json(bytes) => (
            Some(JSON_CONTENT_TYPE.to_owned()),
            OutgoingBody::Bytes(bytes),
        ),
        OnPremBody::Raw { content_type, body } => {
            (Some(content_type), OutgoingBody::Streamed(body))
        }
    };

    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, auth.header_value()?);
    if let Some(content_type) = content_type {
        let value =
            HeaderValue::from_str(&content_type).map_err(|_| InvalidInput::HeaderValue {
                name: CONTENT_TYPE.to_string(),
            })?;
        headers.insert(CONTENT_TYPE, value);
    }
    // A GET or DELETE without a body carries no Content-Length (RFC 9110 §8.6).
    if !matches!(outgoing, OutgoingBody::Empty) || method == Method::POST {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(outgoing.content_length()));
    }

    let mut request = http::Request::new(outgoing);
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    Ok(request)
}

/// Parses an answer to `op` from its status, headers and body bytes. Never panics, whatever the
/// bytes.
///
/// - A body in the error shape (`{"errors":[...]}`) is [`ResponseError::OnPrem`] with the first
///   error object, whatever the status (2xx included). A 401 (the token expired or was
///   revoked) keeps Meta's error when it sends one, so the message says what the server said;
///   the retry policy logs in again (once) on a 401 whatever its body;
/// - any other non-2xx status is [`ResponseError::Http`] with a snippet of the body (e.g. a 404
///   with no body: ask [`ResponseError::is_not_found`]);
/// - a 2xx body that is not the expected shape is [`ResponseError::Malformed`].
pub fn parse_response<O: OnPremOperation + ?Sized>(
    op: &O,
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<O::Output, ResponseError> {
    let http_error = || ResponseError::Http {
        status,
        snippet: Snippet::of(body),
    };
    if let Some(mut errors) = parse_errors(body) {
        let error = errors.swap_remove(0);
        return Err(ResponseError::OnPrem { status, error });
    }
    if !status.is_success() {
        return Err(http_error());
    }
    op.parse_output(status, headers, body)
        .map_err(|error| ResponseError::bad_data(status, error, body))
}

impl ResponseError {
    /// Whether the answer says the resource does not exist: On-Premises code 1006, or HTTP 404
    /// (the On-Premises API answers a missing media id with a 404 and no body).
    ///
    /// ```
    /// use nx_protocol::onprem::{parse_response, RetrieveMedia};
    /// let op = RetrieveMedia::new("gone");
    /// let err = parse_response(&op, http::StatusCode::NOT_FOUND, &http::HeaderMap::new(), b"")
    ///     .unwrap_err();
    /// assert!(err.is_not_found());
    /// ```
    pub fn is_not_found(&self) -> bool {
        match self {
            ResponseError::OnPrem { status, error } => {
                error.code.is_not_found() || *status == StatusCode::NOT_FOUND
            }
            other => other.status() == StatusCode::NOT_FOUND,
        }
    }

    /// The On-Premises error object, if the answer was the On-Premises error shape.
    pub fn meta_error(&self) -> Option<&MetaError> {
        match self {
            ResponseError::OnPrem { error, .. } => Some(error),
            _ => None,
        }
    }

    /// The On-Premises code, if the answer carried one.
    pub fn meta_code(&self) -> Option<MetaCode> {
        self.meta_error().map(|e| e.code)
    }
}
