//! Meta's error object, as mt's 9099 answer carries it in `data.error`: read leniently (any shape
//! is kept as far as it goes, never a parse failure) and bounded.

use std::fmt;

use serde_json::Value;

/// Meta's error object, as a 9099 answer carries it in `data.error`. Every part is optional
/// (a missing or oddly typed part is `None`, never a parse failure) and every text is cut to
/// [`WhatsAppError::MAX_CHARS`] characters; the texts are kept as sent, unescaped, so whoever
/// shows them to a terminal must escape them.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WhatsAppError {
    /// `code`: the vendor's table calls it a string, its example shows a number; both are read.
    pub code: Option<MetaErrorCode>,
    /// `type`, e.g. `OAuthException`.
    pub error_type: Option<String>,
    /// `message`, e.g. `(#100) Invalid parameter`.
    pub message: Option<String>,
    /// `error_data.details`.
    pub details: Option<String>,
    /// `fbtrace_id`: what Meta's support asks for.
    pub fbtrace_id: Option<String>,
}

/// Meta's error code: a number, or a text that is not one.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetaErrorCode {
    /// A JSON number, or a string of one (`"100"`).
    Number(i64),
    /// Any other code, as sent (cut to [`WhatsAppError::MAX_CHARS`]).
    Text(String),
}

impl fmt::Display for MetaErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetaErrorCode::Number(n) => write!(f, "{n}"),
            MetaErrorCode::Text(t) => f.write_str(&crate::redact::escape_controls(t)),
        }
    }
}

impl WhatsAppError {
    /// The most characters kept of each text.
    pub const MAX_CHARS: usize = 500;

    /// Reads `data.error` of a 9099 answer's `data`; `None` when there is no such object.
    ///
    /// ```
    /// use nx_protocol::wa::{MetaErrorCode, WhatsAppError};
    /// let data = r#"{"error":{"code":"131026","message":"Message undeliverable","type":"OAuthException",
    ///     "fbtrace_id":"Ab1","error_data":{"messaging_product":"whatsapp","details":"not on WhatsApp"}}}"#;
    /// let e = WhatsAppError::from_data(data).unwrap();
    /// assert_eq!(e.code, Some(MetaErrorCode::Number(131026)));
    /// assert_eq!(e.details.as_deref(), Some("not on WhatsApp"));
    /// assert_eq!(e.to_string(), "WhatsApp error 131026 OAuthException: Message undeliverable (details: not on WhatsApp; fbtrace_id Ab1)");
    /// assert_eq!(WhatsAppError::from_data(r#"{"error":[1]}"#), None);
    /// ```
    pub fn from_data(data: &str) -> Option<Self> {
        let value: Value = serde_json::from_str(data).ok()?;
        let error = value.get("error")?.as_object()?;
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(cut);
        let code = error.get("code").and_then(|code| match code {
            Value::Number(n) => Some(n.as_i64().map_or_else(
                || MetaErrorCode::Text(cut(&n.to_string())),
                MetaErrorCode::Number,
            )),
            Value::String(s) => Some(
                s.parse::<i64>()
                    .map_or_else(|_| MetaErrorCode::Text(cut(s)), MetaErrorCode::Number),
            ),
            _ => None,
        });
        Some(Self {
            code,
            error_type: text(error.get("type")),
            message: text(error.get("message")),
            details: text(error.get("error_data").and_then(|d| d.get("details"))),
            fbtrace_id: text(error.get("fbtrace_id")),
        })
    }
}

/// At most [`WhatsAppError::MAX_CHARS`] characters of `s`, with `…` when cut; any URL's query
/// and user info redacted first (the texts end up in error messages), so a cut never leaves
/// part of a query.
fn cut(s: &str) -> String {
    let s = crate::redact::redact_urls(s);
    match s.char_indices().nth(WhatsAppError::MAX_CHARS) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.into_owned(),
    }
}

impl fmt::Display for WhatsAppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Meta's texts as sent: control characters escaped where they are shown.
        use crate::redact::escape_controls as shown;
        f.write_str("WhatsApp error")?;
        if let Some(code) = &self.code {
            write!(f, " {code}")?;
        }
        if let Some(kind) = &self.error_type {
            write!(f, " {}", shown(kind))?;
        }
        if let Some(message) = &self.message {
            write!(f, ": {}", shown(message))?;
        }
        let mut extra = Vec::new();
        if let Some(details) = &self.details {
            extra.push(format!("details: {}", shown(details)));
        }
        if let Some(trace) = &self.fbtrace_id {
            extra.push(format!("fbtrace_id {}", shown(trace)));
        }
        if !extra.is_empty() {
            write!(f, " ({})", extra.join("; "))?;
        }
        Ok(())
    }
}
