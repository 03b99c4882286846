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
use crate::envelope::RawEnvelope;
use crate::error::{DataError, InvalidInput, ResponseError, Snippet};
use crate::secret::Credentials;
use crate::sign::{self, SignableBody, SignableRequest};
use crate::time::Timestamp;

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
        // Scheme and authority were checked once by `parse`: only the path is parsed per call.
        let path = if self.path.is_empty() {
            PathAndQuery::try_from(path_and_query)
        } else {
            PathAndQuery::try_from(format!("{}{path_and_query}", self.path))
        };
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
    let body = op.body()?;
    const JSON: HeaderValue = HeaderValue::from_static(JSON_CONTENT_TYPE);
    let (signable, content_type, outgoing) = match &body {
        RequestBody::Empty => (SignableBody::Empty, None, OutgoingBody::Empty),
        RequestBody::Json(bytes) => (
            SignableBody::Json(bytes),
            Some(JSON),
            OutgoingBody::Bytes(bytes.clone()),
        ),
        RequestBody::Multipart { content_type, body } => (
            SignableBody::Multipart,
            Some(
                HeaderValue::from_str(content_type).map_err(|_| InvalidInput::HeaderValue {
                    name: CONTENT_TYPE.to_string(),
                })?,
            ),
            OutgoingBody::Streamed(body.clone()),
        ),
    };
    let ts_digits = ts.digits();
    let biz_digits = op.biz_type().digits();
    let params = [
        (headers::ACCESS_KEY, credentials.access_key()),
        (headers::ACTION, op.action()),
        (headers::BIZ_TYPE, biz_digits.as_str()),
        (headers::TS, ts_digits.as_str()),
    ];
    let signable = SignableRequest::new(&params, signable);
    let signed = sign::instructions(&signable, credentials.access_secret())?;

    let mut headers = HeaderMap::with_capacity(8);
    for (name, value) in signed.headers() {
        let bad = || InvalidInput::HeaderValue {
            name: name.to_owned(),
        };
        headers.insert(
            header_name(name).ok_or_else(bad)?,
            HeaderValue::from_str(value).map_err(|_| bad())?,
        );
    }
    if let Some(content_type) = content_type {
        headers.insert(CONTENT_TYPE, content_type);
    }
    headers.insert(CONTENT_LENGTH, HeaderValue::from(outgoing.content_length()));
    let mut request = http::Request::new(outgoing);
    *request.method_mut() = Method::POST;
    *request.uri_mut() = base.join(op.path())?;
    *request.headers_mut() = headers;
    Ok(request)
}

/// The header name for a signed parameter: NXCloud's own names without parsing (HTTP header
/// names are case-insensitive and travel in lower case), any other name checked.
fn header_name(name: &str) -> Option<HeaderName> {
    const ACCESS_KEY: HeaderName = HeaderName::from_static("accesskey");
    const ACTION: HeaderName = HeaderName::from_static("action");
    const BIZ_TYPE: HeaderName = HeaderName::from_static("biztype");
    const TS: HeaderName = HeaderName::from_static("ts");
    const SIGN: HeaderName = HeaderName::from_static("sign");
    Some(match name {
        headers::ACCESS_KEY => ACCESS_KEY,
        headers::ACTION => ACTION,
        headers::BIZ_TYPE => BIZ_TYPE,
        headers::TS => TS,
        headers::SIGN => SIGN,
        other => HeaderName::from_bytes(other.as_bytes()).ok()?,
    })
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
    let envelope = match RawEnvelope::parse(body) {
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
            envelope.message.as_deref().unwrap_or_default(),
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
    use crate::ApiCode;

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
