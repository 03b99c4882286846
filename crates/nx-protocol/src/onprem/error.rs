//! The On-Premises error shape and Meta's codes.

use std::fmt;

use serde::Deserialize;
use serde_json::Value;

/// A code in Meta's On-Premises code space.
///
/// This is **not** NXCloud's code space ([`crate::ApiCode`]): the two APIs number their errors
/// independently and the numbers collide with different meanings (Meta's 1005 is "access
/// denied", NXCloud's 1005 is "insufficient permissions" of an access key; Meta's 1004 is
/// "already exists", NXCloud's is "timestamp expired"). Keeping them in separate types makes it
/// impossible to test one against the other's constants by mistake.
///
/// Like [`crate::ApiCode`] it is an open newtype: a code this library has never heard of keeps
/// its number, and the constants are only the ones that matter for media.
///
/// ```
/// use nx_protocol::onprem::MetaCode;
/// let code = MetaCode::new(1015);
/// assert_eq!(code, MetaCode::TOO_MANY_REQUESTS);
/// assert!(code.is_retryable());
/// assert!(!MetaCode::NOT_FOUND.is_retryable());
/// assert!(code.to_string().starts_with("1015 too many requests"));
/// assert!(MetaCode::new(4242).to_string().starts_with("4242 "));
/// ```
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct MetaCode(i64);

impl MetaCode {
    /// 1000: a generic error; the title and details say more.
    pub const GENERIC: Self = Self(1000);
    /// 1004: the resource already exists.
    pub const ALREADY_EXISTS: Self = Self(1004);
    /// 1005: access denied (the user lacks permission for this call).
    pub const ACCESS_DENIED: Self = Self(1005);
    /// 1006: not found (an unknown media id, or a path the client does not serve).
    pub const NOT_FOUND: Self = Self(1006);
    /// 1008: a required parameter is missing.
    pub const PARAMETER_MISSING: Self = Self(1008);
    /// 1009: a parameter value is not valid.
    pub const PARAMETER_INVALID: Self = Self(1009);
    /// 1011: the service is not ready yet.
    pub const SERVICE_NOT_READY: Self = Self(1011);
    /// 1014: an internal error of the client.
    pub const INTERNAL_ERROR: Self = Self(1014);
    /// 1015: too many requests (rate limited).
    pub const TOO_MANY_REQUESTS: Self = Self(1015);
    /// 1016: the system is overloaded.
    pub const SYSTEM_OVERLOADED: Self = Self(1016);
    /// 1017: the node that answered is not the primary master.
    pub const NOT_PRIMARY_MASTER: Self = Self(1017);
    /// 1018: the coreapp that answered is not the primary one.
    pub const NOT_PRIMARY_COREAPP: Self = Self(1018);

    /// Wraps any code.
    pub const fn new(code: i64) -> Self {
        Self(code)
    }

    /// The number.
    pub const fn get(self) -> i64 {
        self.0
    }

    /// Whether the same request may succeed if simply sent again (after a backoff).
    ///
    /// - 1011 (service not ready): the client is starting up or re-registering; it will be
    ///   ready later, so retry with backoff.
    /// - 1015 (too many requests): a rate limit; it lifts with time, so retry with backoff.
    /// - 1016 (system overloaded): a transient load problem; retry with backoff.
    /// - 1017 (not primary master) and 1018 (not primary coreapp): a high-availability or
    ///   multiconnect setup is failing over; the next attempt reaches the new primary, so retry.
    ///
    /// Everything else describes the request, the resource or a bug on the server (1014); sending
    /// the same request again gives the same answer, and Meta warns that hosts may block a number
    /// after repeated error answers. Unknown codes: no (we do not guess).
    pub const fn is_retryable(self) -> bool {
        matches!(self.0, 1011 | 1015..=1018)
    }

    /// Whether this is 1006 (not found).
    pub const fn is_not_found(self) -> bool {
        self.0 == Self::NOT_FOUND.0
    }

    /// What the code means and what to do, in a few words.
    pub fn meaning(self) -> &'static str {
        match self.0 {
            1000 => "generic error: see the error's title and details",
            1004 => "resource already exists",
            1005 => "access denied: the user lacks permission for this call",
            1006 => "not found: the resource (e.g. the media id) does not exist",
            1008 => "required parameter missing",
            1009 => "parameter value not valid",
            1011 => "service not ready: the client is starting up; retry with backoff",
            1014 => "internal error of the WhatsApp Business API client",
            1015 => "too many requests: rate limited; retry with backoff",
            1016 => "system overloaded: retry with backoff",
            1017 => "not primary master: a failover is in progress; retry",
            1018 => "not primary coreapp: a failover is in progress; retry",
            _ => "unknown On-Premises code: see Meta's documentation",
        }
    }
}

impl fmt::Display for MetaCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0, self.meaning())
    }
}

/// One object of the On-Premises `errors` array: `{"code":1006,"title":"...","details":"..."}`.
///
/// `title` may be absent (read as empty), `details` may be absent; unknown fields (`href`, ...)
/// are ignored.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct MetaError {
    /// The code.
    pub code: MetaCode,
    /// A short title (any URL's query and user info redacted, as in `details`; `Display` escapes
    /// control characters in both).
    #[serde(default, deserialize_with = "crate::lenient::redacted_or_empty")]
    pub title: String,
    /// Details, when given; a URL in them has its query and user info replaced by
    /// `<redacted>` when read, since they end up in error messages.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::lenient::redacted"
    )]
    pub details: Option<String>,
}

impl MetaError {
    /// An error object with this code and title, without details.
    pub fn new(code: MetaCode, title: impl Into<String>) -> Self {
        Self {
            code,
            title: title.into(),
            details: None,
        }
    }

    /// The same error with these details.
    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = Some(details.into());
        self
    }
}

impl fmt::Display for MetaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::redact::escape_controls;
        write!(f, "code {} {}", self.code.0, escape_controls(&self.title))?;
        if let Some(details) = &self.details {
            write!(f, ": {}", escape_controls(details))?;
        }
        Ok(())
    }
}

/// Reads the error objects of an `errors` array value, skipping entries that are not error
/// objects (no integer `code`).
pub(crate) fn errors_of(value: &Value) -> Vec<MetaError> {
    match value {
        Value::Array(items) => items
            .iter()
            .filter_map(|item| MetaError::deserialize(item).ok())
            .collect(),
        _ => Vec::new(),
    }
}

/// Parses the On-Premises error shape,
/// `{"meta":{...},"errors":[{"code":1006,"title":"...","details":"..."}]}`: the error objects,
/// or `None` when `body` is not that shape (not JSON, not an object, no `errors` array, or no
/// entry in it that is an error object). `meta` and unknown fields are ignored. Never panics.
///
/// ```
/// use nx_protocol::onprem::{parse_errors, MetaCode};
/// let body = br#"{"meta":{"api_status":"stable","version":"3.0.0.0"},
///   "errors":[{"code":1006,"title":"Resource not found","details":"URL path not found."}]}"#;
/// let errors = parse_errors(body).unwrap();
/// assert_eq!(errors[0].code, MetaCode::NOT_FOUND);
/// assert_eq!(errors[0].details.as_deref(), Some("URL path not found."));
/// assert!(parse_errors(b"").is_none());
/// assert!(parse_errors(br#"{"media":[{"id":"x"}]}"#).is_none());
/// ```
pub fn parse_errors(body: &[u8]) -> Option<Vec<MetaError>> {
    #[derive(Deserialize)]
    struct Shape {
        errors: Value,
    }
    let shape: Shape = serde_json::from_slice(body).ok()?;
    let errors = errors_of(&shape.errors);
    (!errors.is_empty()).then_some(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Meta's texts (and WhatsApp's, in a 9099) are kept as sent, redacted, and shown with
    /// control characters escaped: no ESC sequence or forged line reaches a terminal or a log.
    #[test]
    fn server_texts_are_kept_and_shown_escaped() {
        let nasty = r"a\u001b[2J\r\nforged\u0007";
        let body =
            format!(r#"{{"errors":[{{"code":1006,"title":"{nasty}","details":"{nasty}"}}]}}"#);
        let value: Value = serde_json::from_str(&body).unwrap();
        let errors = errors_of(&value["errors"]);
        assert_eq!(errors[0].title, "a\u{1b}[2J\r\nforged\u{7}");
        assert_eq!(
            errors[0].to_string(),
            r"code 1006 a\u{1b}[2J\r\nforged\u{7}: a\u{1b}[2J\r\nforged\u{7}"
        );
        let data = format!(
            r#"{{"error":{{"code":"{nasty}","type":"{nasty}","message":"{nasty}","error_data":{{"details":"{nasty}"}},"fbtrace_id":"{nasty}"}}}}"#
        );
        let whatsapp = crate::wa::WhatsAppError::from_data(&data).unwrap();
        assert_eq!(
            whatsapp.message.as_deref(),
            Some("a\u{1b}[2J\r\nforged\u{7}")
        );
        let shown = whatsapp.to_string();
        assert!(!shown.chars().any(char::is_control), "{shown}");
        assert_eq!(
            shown.matches(r"a\u{1b}[2J\r\nforged\u{7}").count(),
            5,
            "{shown}"
        );
    }

    #[test]
    fn retryable_codes_are_exactly_the_documented_ones() {
        let retryable: Vec<i64> = (900..1100)
            .chain([-1, 0, 400, 500])
            .filter(|&n| MetaCode::new(n).is_retryable())
            .collect();
        assert_eq!(retryable, [1011, 1015, 1016, 1017, 1018]);
        for code in [
            MetaCode::SERVICE_NOT_READY,
            MetaCode::TOO_MANY_REQUESTS,
            MetaCode::SYSTEM_OVERLOADED,
            MetaCode::NOT_PRIMARY_MASTER,
            MetaCode::NOT_PRIMARY_COREAPP,
        ] {
            assert!(code.is_retryable(), "{code}");
        }
    }

    #[test]
    fn constants_and_meanings() {
        let table = [
            (MetaCode::GENERIC, 1000),
            (MetaCode::ALREADY_EXISTS, 1004),
            (MetaCode::ACCESS_DENIED, 1005),
            (MetaCode::NOT_FOUND, 1006),
            (MetaCode::PARAMETER_MISSING, 1008),
            (MetaCode::PARAMETER_INVALID, 1009),
            (MetaCode::SERVICE_NOT_READY, 1011),
            (MetaCode::INTERNAL_ERROR, 1014),
            (MetaCode::TOO_MANY_REQUESTS, 1015),
            (MetaCode::SYSTEM_OVERLOADED, 1016),
            (MetaCode::NOT_PRIMARY_MASTER, 1017),
            (MetaCode::NOT_PRIMARY_COREAPP, 1018),
        ];
        let unknown = MetaCode::new(1_234_567).meaning();
        for (code, n) in table {
            assert_eq!(code.get(), n);
            assert_ne!(code.meaning(), unknown, "{n}");
            assert!(code.to_string().starts_with(&format!("{n} ")));
        }
        assert_eq!(
            MetaCode::ACCESS_DENIED.to_string(),
            "1005 access denied: the user lacks permission for this call"
        );
        assert!(MetaCode::NOT_FOUND.is_not_found());
    }

    #[test]
    fn error_shape() {
        let body = br#"{"meta":{"api_status":"stable","version":"3.0.0.0"},
            "errors":[{"code":1006,"title":"Resource not found","details":"URL path not found.","href":"x"},
                      {"code":1000,"title":"second"}]}"#;
        let errors = parse_errors(body).unwrap();
        assert_eq!(errors.len(), 2);
        assert_eq!(
            errors[0],
            MetaError {
                code: MetaCode::NOT_FOUND,
                title: "Resource not found".into(),
                details: Some("URL path not found.".into()),
            }
        );
        assert_eq!(errors[1].details, None);
        assert_eq!(
            errors[0].to_string(),
            "code 1006 Resource not found: URL path not found."
        );

        // Details and title optional, null tolerated.
        let minimal =
            parse_errors(br#"{"errors":[{"code":1015,"title":null,"details":null}]}"#).unwrap();
        assert_eq!(minimal[0].code, MetaCode::TOO_MANY_REQUESTS);
        assert_eq!(minimal[0].title, "");

        for not_errors in [
            &b""[..],
            b"null",
            b"[]",
            b"{}",
            br#"{"errors":[]}"#,
            br#"{"errors":{}}"#,
            br#"{"errors":[{"title":"no code"}]}"#,
            br#"{"errors":[{"code":"1006"}]}"#,
            b"<html>502</html>",
            br#"{"errors":[{"code":1006}]"#,
        ] {
            assert!(
                parse_errors(not_errors).is_none(),
                "{}",
                String::from_utf8_lossy(not_errors)
            );
        }
    }
}
