//! How a call fails: [`Error`], the one error both transports return, and its two kinds that
//! nx-protocol finds itself (input refused before sending, an answer that is not a success).

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use http::StatusCode;

use crate::code::ApiCode;
use crate::download::IntegrityError;
use crate::onprem::MetaError;
use crate::policy::clock::ClockError;
use crate::redact::{redact_urls, server_text};
use crate::sign::SigningError;
use crate::wa::WhatsAppError;

/// Input refused before any byte is sent. Each variant names the field and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidInput {
    /// `business_phone` is not 6 to 20 ASCII digits.
    #[error(
        "business_phone must be 6 to 20 digits with the country code and no `+` or spaces (e.g. 8615800001795); got {len} characters: {reason}"
    )]
    Phone {
        /// Why it was refused.
        reason: &'static str,
        /// How many characters it had.
        len: usize,
    },
    /// The media id is empty, too long, or holds control characters.
    #[error("media id {reason}")]
    MediaId {
        /// Why it was refused.
        reason: &'static str,
    },
    /// The MIME type is not in WhatsApp's media table.
    #[error("MIME type `{mime}` is not accepted by WhatsApp; accepted: {accepted}")]
    MimeType {
        /// The type given (printable characters only).
        mime: String,
        /// The accepted types.
        accepted: &'static str,
    },
    /// The file is larger than its kind allows.
    #[error("{kind} files may be at most {limit} bytes; this one has {actual} bytes")]
    TooLarge {
        /// The media kind (`image`, `sticker`, ...).
        kind: &'static str,
        /// Its limit in bytes.
        limit: u64,
        /// The file's size in bytes.
        actual: u64,
    },
    /// The file is empty.
    #[error("the file is empty; WhatsApp does not accept empty media")]
    EmptyFile,
    /// A URL the caller gave cannot be used.
    #[error("URL `{url}` is not usable: {reason}")]
    Url {
        /// The URL, with any query removed.
        url: String,
        /// Why.
        reason: &'static str,
    },
    /// A header value holds characters HTTP does not allow (control characters, non-ASCII).
    #[error("header `{name}` holds characters that HTTP headers cannot carry")]
    HeaderValue {
        /// The header's name.
        name: String,
    },
    /// A header value the server would read otherwise than it is sent: empty, or with white
    /// space at either end, which an HTTP server strips before the value is read. A signed
    /// parameter (`accessKey`, `action`) would be signed as one value and checked as another
    /// (code 1003, which would not say why); an On-Premises token would be refused (a 401).
    #[error("header `{name}` {reason}")]
    StrippedValue {
        /// The parameter's name.
        name: String,
        /// What is wrong with its value.
        reason: &'static str,
    },
    /// The request could not be signed.
    #[error(transparent)]
    Signing(#[from] SigningError),
    /// A request field could not be serialized.
    #[error("request body could not be serialized: {0}")]
    Serialize(String),
    /// A field of a message to send is missing, not allowed for its kind, or not usable.
    #[error("message field `{field}` {reason}")]
    MessageField {
        /// The field's name as the API spells it (`to`, `appkey`, `caption`, ...).
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The new password of an On-Premises first login is not usable.
    #[error("the new password {reason}")]
    NewPassword {
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// Why a success answer's payload cannot be the call's result: what
/// [`crate::operation::Operation::parse_data`] and
/// [`crate::onprem::OnPremOperation::parse_output`] return. The `parse_response` functions turn
/// it into [`ResponseError::Malformed`], whose `what` is this error's message.
///
/// ```
/// use nx_protocol::DataError;
/// let bad = serde_json::from_str::<u32>("\"x\"").unwrap_err();
/// assert_eq!(DataError::Missing.to_string(), "success answer without `data`");
/// assert!(DataError::json("`data`", &bad).to_string().starts_with("`data` is not the expected JSON: "));
/// assert_eq!(DataError::invalid("`media` is empty").to_string(), "`media` is empty");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// A success answer without the payload the call needs (`data` absent or `null`).
    #[error("success answer without `data`")]
    Missing,
    /// The payload is not the JSON the call expects.
    #[error("{part} is not the expected JSON: {reason}")]
    Json {
        /// What was read, e.g. "`data`" or "the login answer".
        part: &'static str,
        /// What the parser found wrong, and where (serde_json's message, URLs redacted).
        reason: String,
    },
    /// The payload is well-formed but cannot be taken as the result: an empty id, a
    /// `success: false`, a header that is not a number, ...
    #[error("{0}")]
    Invalid(Cow<'static, str>),
}

impl DataError {
    /// `part` could not be read as the expected JSON. The parser's message may quote the
    /// answer (a download URL, say), so URLs in it are redacted ([`crate::redact_urls`]).
    pub fn json(part: &'static str, error: &serde_json::Error) -> Self {
        DataError::Json {
            part,
            reason: server_text(&error.to_string()).into_owned(),
        }
    }

    /// A well-formed payload that cannot be the result, and why.
    pub fn invalid(reason: impl Into<Cow<'static, str>>) -> Self {
        DataError::Invalid(reason.into())
    }
}

/// A short, printable excerpt of an answer body for error messages: at most 200 characters,
/// control characters escaped, every URL's query and user info replaced by `<redacted>`
/// ([`redact_urls`], before anything is kept), never a panic on any bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Snippet(String);

impl Snippet {
    const MAX_CHARS: usize = 200;

    /// The excerpt of `body`.
    pub fn of(body: &[u8]) -> Self {
        let text = String::from_utf8_lossy(&body[..body.len().min(Self::MAX_CHARS * 4)]);
        // Redacted before it is cut short, so that a cut never leaves part of a query.
        let text = redact_urls(&text);
        let mut out = String::new();
        for (i, c) in text.chars().enumerate() {
            if i == Self::MAX_CHARS {
                out.push('…');
                return Self(out);
            }
            if c.is_control() {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        if body.len() > Self::MAX_CHARS * 4 {
            out.push('…');
        }
        Self(out)
    }

    /// The excerpt.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Snippet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("(empty body)")
        } else {
            f.write_str(&self.0)
        }
    }
}

impl fmt::Debug for Snippet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// An answer that is not a success.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResponseError {
    /// NXCloud answered its envelope with a non-zero code.
    #[error("NXCloud answered code {code}{}{}", message_suffix(message), whatsapp_suffix(whatsapp.as_deref()))]
    Api {
        /// The code (unknown ones keep their number).
        code: ApiCode,
        /// The envelope's `message`, as sent but for any URL's query and user info
        /// ([`redact_urls`]); `Display` shows it with control characters escaped.
        message: String,
        /// The HTTP status it came with.
        status: StatusCode,
        /// With code 9099 ([`ApiCode::WHATSAPP_ERROR`]): Meta's error object from `data.error`,
        /// when the answer carried one.
        whatsapp: Option<Box<WhatsAppError>>,
    },
    /// The On-Premises API answered its error shape.
    #[error("WhatsApp On-Premises answered HTTP {status}: {error}")]
    OnPrem {
        /// The HTTP status.
        status: StatusCode,
        /// The first error object.
        error: MetaError,
    },
    /// An HTTP error status without a body we understand (a gateway's HTML page, an empty 502, a
    /// 404 with no body).
    #[error("HTTP {status} with a body that is not the API's answer: {snippet}")]
    Http {
        /// The status.
        status: StatusCode,
        /// What the body began with.
        snippet: Snippet,
    },
    /// A success status whose body is not the answer's expected shape.
    #[error("HTTP {status}: the answer is not valid ({what}): {snippet}")]
    Malformed {
        /// The status.
        status: StatusCode,
        /// What is wrong with it (a parser's words may quote the answer: URLs in it are
        /// redacted where it is made).
        what: String,
        /// What the body began with.
        snippet: Snippet,
    },
}

fn message_suffix(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        // Server text: no ESC sequence or CR/LF reaches a terminal or a log through it.
        format!(
            " (server said: {})",
            crate::redact::escape_controls(message)
        )
    }
}

fn whatsapp_suffix(error: Option<&WhatsAppError>) -> String {
    error.map_or_else(String::new, |e| format!("; {e}"))
}

impl ResponseError {
    /// The HTTP status the answer came with.
    pub fn status(&self) -> StatusCode {
        match self {
            ResponseError::Api { status, .. }
            | ResponseError::OnPrem { status, .. }
            | ResponseError::Http { status, .. }
            | ResponseError::Malformed { status, .. } => *status,
        }
    }

    /// The NXCloud code, if the answer carried one.
    pub fn api_code(&self) -> Option<ApiCode> {
        match self {
            ResponseError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Meta's error object of a 9099 answer, if it carried one.
    pub fn whatsapp_error(&self) -> Option<&WhatsAppError> {
        match self {
            ResponseError::Api { whatsapp, .. } => whatsapp.as_deref(),
            _ => None,
        }
    }

    /// A payload that could not be read, as the answer's error.
    pub(crate) fn bad_data(status: StatusCode, error: DataError, body: &[u8]) -> Self {
        Self::malformed(status, error.to_string(), body)
    }

    /// A [`ResponseError::Malformed`]: `what` (which may quote the answer, e.g. serde's
    /// "invalid type: string \"https://...\"") and the excerpt of `body`, both redacted.
    pub(crate) fn malformed(status: StatusCode, what: impl Into<String>, body: &[u8]) -> Self {
        let what = what.into();
        ResponseError::Malformed {
            status,
            what: server_text(&what).into_owned(),
            snippet: Snippet::of(body),
        }
    }

    /// A [`ResponseError::Api`], its `message` redacted.
    pub(crate) fn api(
        code: ApiCode,
        message: &str,
        status: StatusCode,
        whatsapp: Option<Box<WhatsAppError>>,
    ) -> Self {
        ResponseError::Api {
            code,
            message: redact_urls(message).into_owned(),
            status,
            whatsapp,
        }
    }
}

/// Everything a call can fail with, in kinds a caller can match on. Every message says what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input was refused before anything was sent.
    #[error("invalid input: {0}")]
    InvalidInput(#[from] InvalidInput),
    /// The server answered with an error (an NXCloud code, a Meta error, an HTTP status, or an
    /// answer that is not valid).
    #[error(transparent)]
    Response(#[from] ResponseError),
    /// A time limit passed: which one, after how long, what the call was doing, and who it was
    /// waiting on (the server, and the proxy the connection went through).
    #[error(
        "timed out {phase}{}: {limit} of {after:?} passed; the server or network is slow or stalled; retry later or raise the timeout",
        Waited { phase: *phase, host: host.as_deref(), proxy: proxy.as_deref() }
    )]
    Timeout {
        /// What the call was doing.
        phase: crate::call::Phase,
        /// Which limit passed.
        limit: crate::call::Limit,
        /// How long that limit was.
        after: Duration,
        /// The server the call was talking to, host and port as [`Error::Connect`] names it
        /// ([`peer`]: the origin, also through a proxy): the API host, or a download URL's
        /// host. `None` where no server was waited on ([`crate::call::Phase::Notification`]).
        host: Option<String>,
        /// The proxy the connection went through (its host and port, never its credentials:
        /// [`crate::proxy::ProxyUrl::authority`]); `None` for a direct connection.
        proxy: Option<String>,
    },
    /// No connection could be made.
    #[error("could not connect to {host}: {source}; check the base URL and the network")]
    Connect {
        /// The host and port ([`peer`]).
        host: String,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// TLS failed (certificate, handshake).
    #[error(
        "TLS with {host} failed: {source}; check the certificate (a private CA must be added as a root)"
    )]
    Tls {
        /// The host and port ([`peer`]).
        host: String,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// The connection broke after the request was sent (reset, truncated answer, protocol error).
    #[error("the connection failed during the call: {source}; retry")]
    Transport {
        /// Why.
        #[source]
        source: BoxError,
    },
    /// A JSON answer was larger than allowed; it was not buffered.
    #[error(
        "the answer is larger than {limit} bytes and was refused; a JSON answer should be small, so the server is misbehaving (raise max_answer_bytes only if you expect this)"
    )]
    AnswerTooLarge {
        /// The limit.
        limit: u64,
    },
    /// Downloaded bytes failed a check; nothing was kept at the target path.
    #[error(transparent)]
    Integrity(#[from] IntegrityError),
    /// The server rejected our clock and we could not correct it.
    #[error(transparent)]
    Clock(#[from] ClockError),
    /// The upload's source did not hold the length declared for it while it was sent; the
    /// request was abandoned before its end and is not retried.
    #[error(transparent)]
    SourceChanged(#[from] crate::body::SourceChanged),
    /// Local file or stream I/O failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing, e.g. "reading /path/to/file".
        context: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The client is misconfigured.
    #[error("configuration: {0}")]
    Config(String),
}

/// The peer a connect or TLS error names: host and port (the URI's, else the scheme's default),
/// never user info, path or query. "could not connect to 127.0.0.1" without the port would not
/// tell which server was down.
///
/// ```
/// use nx_protocol::error::peer;
/// assert_eq!(peer(&"http://127.0.0.1:8080/api?x=1".parse().unwrap()), "127.0.0.1:8080");
/// assert_eq!(peer(&"https://u:p@oss.example/a".parse().unwrap()), "oss.example:443");
/// assert_eq!(peer(&"http://[::1]/".parse().unwrap()), "[::1]:80");
/// ```
pub fn peer(uri: &http::Uri) -> String {
    let host = uri.host().unwrap_or_default();
    let port = uri.port_u16().or_else(|| match uri.scheme_str() {
        Some("https") => Some(443),
        Some("http") => Some(80),
        _ => None,
    });
    match port {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// The words of a [`Error::Timeout`] that name who was waited on: " to HOST" while connecting
/// or sending, " from HOST" while the answer was awaited or read, then " through proxy PROXY".
struct Waited<'a> {
    phase: crate::call::Phase,
    host: Option<&'a str>,
    proxy: Option<&'a str>,
}

impl fmt::Display for Waited<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::call::Phase;
        if let Some(host) = self.host {
            let to = matches!(self.phase, Phase::Connect | Phase::Request);
            write!(f, " {} {host}", if to { "to" } else { "from" })?;
        }
        if let Some(proxy) = self.proxy {
            write!(f, " through proxy {proxy}")?;
        }
        Ok(())
    }
}

/// A boxed error from the transport's HTTP stack.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// How many causes of a transport's error [`RedactedError`] keeps (the stacks nest 2 to 5).
const MAX_CAUSES: usize = 16;

/// A transport's own error as the SDK returns it, in [`Error::Connect`], [`Error::Tls`] and
/// [`Error::Transport`]: its `Display`, its `Debug` and those of every cause in its `source()`
/// chain, each passed through [`redact_urls`] (and control characters escaped) when the error
/// reached the call machine ([`crate::call::Call::failed`]).
///
/// An HTTP stack's errors may quote the request's URL (ureq's `Error::BadUri` holds it whole),
/// and a download URL's query is its signature: wrapped once where every transport hands its
/// errors over, none of them can print a query or user info, whichever transport made it and
/// however it is printed (a chain walked by `source()` included).
///
/// ```
/// use nx_protocol::error::RedactedError;
/// let raw = std::io::Error::other("bad uri: https://u:pw@oss.example/a?Signature=s is missing host");
/// let wrapped = RedactedError::wrap(Box::new(raw));
/// assert_eq!(wrapped.to_string(), "bad uri: https://<redacted>@oss.example/a?<redacted> is missing host");
/// assert!(!format!("{wrapped:?}").contains("Signature"));
/// // The transport's error itself, for matching on its type:
/// let redacted = wrapped.downcast_ref::<RedactedError>().unwrap();
/// assert!(redacted.inner().is::<std::io::Error>());
/// ```
pub struct RedactedError {
    display: String,
    debug: String,
    cause: Option<Box<RedactedError>>,
    /// The error itself, at the top of the chain only (its causes are borrowed from it).
    inner: Option<BoxError>,
}

impl RedactedError {
    /// `error` with its texts and its causes' texts redacted, boxed again. An error that is
    /// already a `RedactedError` is returned as it is.
    pub fn wrap(error: BoxError) -> BoxError {
        if error.is::<RedactedError>() {
            return error;
        }
        let mut redacted = Self::describe(&*error, MAX_CAUSES);
        redacted.inner = Some(error);
        Box::new(redacted)
    }

    fn describe(error: &(dyn std::error::Error + 'static), causes: usize) -> Self {
        Self {
            display: server_text(&error.to_string()).into_owned(),
            debug: server_text(&format!("{error:?}")).into_owned(),
            cause: error
                .source()
                .filter(|_| causes > 0)
                .map(|cause| Box::new(Self::describe(cause, causes - 1))),
            inner: None,
        }
    }

    /// The transport's error as it was, for matching on its type (`downcast_ref`). Its own
    /// `Display` and `Debug` are not redacted: do not print it.
    pub fn inner(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        match &self.inner {
            Some(inner) => &**inner,
            None => self,
        }
    }
}

impl fmt::Display for RedactedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display)
    }
}

impl fmt::Debug for RedactedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.debug)
    }
}

impl std::error::Error for RedactedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|cause| cause as &(dyn std::error::Error + 'static))
    }
}

impl Error {
    /// The NXCloud code, when the server answered one.
    pub fn api_code(&self) -> Option<crate::ApiCode> {
        match self {
            Error::Response(r) => r.api_code(),
            _ => None,
        }
    }

    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<http::StatusCode> {
        match self {
            Error::Response(r) => Some(r.status()),
            _ => None,
        }
    }

    /// An I/O error with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// The same error, a transport's own error inside it made a [`RedactedError`].
    pub(crate) fn with_redacted_source(self) -> Self {
        match self {
            Error::Connect { host, source } => Error::Connect {
                host,
                source: RedactedError::wrap(source),
            },
            Error::Tls { host, source } => Error::Tls {
                host,
                source: RedactedError::wrap(source),
            },
            Error::Transport { source } => Error::Transport {
                source: RedactedError::wrap(source),
            },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_errors_redact_urls_the_parser_quotes() {
        let quoted =
            serde_json::from_str::<u32>(r#""https://oss.example/a?Signature=s3cr3t""#).unwrap_err();
        let shown = DataError::json("`data`", &quoted).to_string();
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(
            shown.contains("https://oss.example/a?<redacted>"),
            "{shown}"
        );
    }

    #[test]
    fn snippet_is_short_printable_and_total() {
        assert_eq!(Snippet::of(b"").to_string(), "(empty body)");
        assert_eq!(Snippet::of(b"<html>\r\n").as_str(), "<html>\\r\\n");
        let long = vec![b'a'; 10_000];
        assert_eq!(Snippet::of(&long).as_str().chars().count(), 201);
        assert_eq!(
            Snippet::of(&[0xff, 0xfe, b'x']).as_str(),
            "\u{fffd}\u{fffd}x"
        );
        // A URL's query never survives, not even cut short at the 200th character.
        let body = format!(r#"{}"u":"https://h/a?Signature=s3cret""#, "x".repeat(150));
        let snippet = Snippet::of(body.as_bytes());
        assert!(!snippet.as_str().contains("Sig"), "{snippet}");
        assert!(snippet.as_str().contains("https://h/a"), "{snippet}");
    }
}
