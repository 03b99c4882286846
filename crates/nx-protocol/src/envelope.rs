//! NXCloud's answer envelope: `{"code": <int>, "message": <string>, "data": <object or null>}`.
//!
//! The media API names the text `message`; other NXCloud open-platform APIs (SMS, voice, ...)
//! answer `{"code":88,"msg":"..."}`. Both are read, so an operation for another API keeps the
//! server's text (see [`RawEnvelope::message`] for which one wins when both are sent).

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::code::ApiCode;

pub(crate) mod plain;

#[cfg(test)]
mod operations;

/// The envelope with `data` left unparsed, so it is parsed only once the code says success
/// (a failure's `data` may be anything, or absent).
///
/// Only `code` must have its documented type: a `message` of an unexpected type never costs the
/// code (unknown codes must be kept, never dropped).
///
/// ```
/// use nx_protocol::envelope::RawEnvelope;
/// let env = RawEnvelope::parse(br#"{"code":9001,"message":{"x": 1},"data":null}"#).unwrap();
/// assert_eq!(env.code.get(), 9001);
/// assert_eq!(env.message.as_deref(), Some(r#"{"x":1}"#));
/// // Another NXCloud API's shape: the text is under `msg`.
/// let sms = RawEnvelope::parse(br#"{"code":88,"msg":"number blocked"}"#).unwrap();
/// assert_eq!((sms.code.get(), sms.message.as_deref()), (88, Some("number blocked")));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct RawEnvelope<'a> {
    /// The code; 0 is success.
    pub code: ApiCode,
    /// The server's message: `message`, or `msg` when `message` is absent or `null` (the
    /// media API documents `message`, so it wins when an answer carries both; `msg` is
    /// read so that other NXCloud APIs' text is not lost). A JSON string is taken as is
    /// (borrowed from the answer bytes when it has no escapes); absent or `null` is `None`; any
    /// other JSON value (a number, an object, ...) is kept as its compact JSON text.
    pub message: Option<Cow<'a, str>>,
    /// The payload, borrowed from the answer bytes; `None` for absent or `null`.
    pub data: Option<&'a RawValue>,
}

/// The envelope as it is on the wire, both names of the text kept apart and unread: the text
/// matters only when the code is not success, so it is read ([`Wire::message`]) only then.
#[derive(Deserialize)]
pub(crate) struct Wire<'a> {
    pub(crate) code: ApiCode,
    #[serde(borrow, default)]
    message: Option<&'a RawValue>,
    #[serde(borrow, default)]
    msg: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub(crate) data: Option<&'a RawValue>,
}

impl<'a> Wire<'a> {
    /// Parses an envelope, borrowing every field from `body`.
    pub(crate) fn parse(body: &'a [u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }

    /// The server's message, as [`RawEnvelope::message`] has it.
    pub(crate) fn message(&self) -> Option<Cow<'a, str>> {
        self.message.or(self.msg).and_then(message_text)
    }
}

/// An envelope whose `data` is read as `T` in the same pass, for
/// [`crate::operation::parse_in_one_pass`]; otherwise as strict as [`Wire`].
#[derive(Deserialize)]
pub(crate) struct WireWith<'a, T> {
    pub(crate) code: ApiCode,
    #[serde(borrow, default, rename = "message")]
    _message: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "msg")]
    _msg: Option<&'a RawValue>,
    #[serde(default = "Option::default")]
    pub(crate) data: Option<T>,
}

impl<'de> Deserialize<'de> for RawEnvelope<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = Wire::deserialize(deserializer)?;
        Ok(RawEnvelope {
            code: wire.code,
            message: wire.message(),
            data: wire.data,
        })
    }
}

impl<'a> RawEnvelope<'a> {
    /// Parses an envelope, borrowing `data` (and `message` where it can) from `body`.
    pub fn parse(body: &'a [u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }
}

/// The text of a `message` value (see [`RawEnvelope::message`]).
fn message_text(raw: &RawValue) -> Option<Cow<'_, str>> {
    let text = raw.get();
    Some(match text.as_bytes().first() {
        Some(b'n') if text == "null" => return None,
        // A string without escapes is borrowed as it is; one with escapes is unescaped. A string
        // serde_json cannot unescape (a lone surrogate) is kept as its JSON text.
        Some(b'"') => match serde_json::from_str::<&str>(text) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => serde_json::from_str::<String>(text).map_or(Cow::Borrowed(text), Cow::Owned),
        },
        // An object or array may hold white space: made compact, its numbers and strings kept
        // exactly as sent (a parse into a `Value` could round floats or fail on 1e400).
        Some(b'{' | b'[') => compact(text),
        // A number or boolean: its JSON text has no white space.
        _ => Cow::Borrowed(text),
    })
}

/// Well-formed JSON text without the white space between its tokens.
fn compact(text: &str) -> Cow<'_, str> {
    let blank = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r');
    if !text.contains(blank) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let (mut in_string, mut escaped) = (false, false);
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !blank(c) {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// An envelope as a server writes one (used by the sandbox and by tests).
#[derive(Debug, serde::Serialize)]
#[non_exhaustive]
pub struct Envelope<T> {
    /// The code.
    pub code: ApiCode,
    /// The message.
    pub message: String,
    /// The payload.
    pub data: Option<T>,
}

impl<T> Envelope<T> {
    /// `{"code": code, "message": message, "data": data}`.
    pub fn new(code: ApiCode, message: impl Into<String>, data: Option<T>) -> Self {
        Self {
            code,
            message: message.into(),
            data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The message of `{"code":<code>,"message":<message>,"data":null}`, as parsed.
    fn message_of(code: i64, message: &str) -> (i64, Option<String>, bool) {
        let body = format!(r#"{{"code":{code},"message":{message},"data":null}}"#);
        let env = RawEnvelope::parse(body.as_bytes()).unwrap_or_else(|e| panic!("{body}: {e}"));
        let borrowed = matches!(env.message, Some(Cow::Borrowed(_)));
        (env.code.get(), env.message.map(Cow::into_owned), borrowed)
    }

    #[test]
    fn message_of_any_json_type_keeps_the_code() {
        let table: [(&str, Option<&str>); 17] = [
            (r#""Request failed""#, Some("Request failed")),
            (r#""""#, Some("")),
            (r#""a\"b\u00e9\n""#, Some("a\"bé\n")),
            (r#""牛小信""#, Some("牛小信")),
            // serde_json refuses a lone surrogate as a Rust string: kept as its JSON text.
            (r#""\ud800""#, Some(r#""\ud800""#)),
            ("null", None),
            (r#"{"x":1}"#, Some(r#"{"x":1}"#)),
            (
                r#"{ "x" : [ 1, 2 ] , "y" : {} }"#,
                Some(r#"{"x":[1,2],"y":{}}"#),
            ),
            ("[]", Some("[]")),
            (r#"[ "a b\" c" , null ]"#, Some(r#"["a b\" c",null]"#)),
            (
                r#"{"f": -1.0299095336133063e+153}"#,
                Some(r#"{"f":-1.0299095336133063e+153}"#),
            ),
            ("123", Some("123")),
            ("-1.5e3", Some("-1.5e3")),
            ("1e400", Some("1e400")),
            (r#"[1e400]"#, Some("[1e400]")),
            ("true", Some("true")),
            ("false", Some("false")),
        ];
        for code in [-1, 0, 1003, 9001, 4242, i64::MIN, i64::MAX] {
            for (message, expected) in table {
                let (parsed, text, _) = message_of(code, message);
                assert_eq!(parsed, code, "{message}");
                assert_eq!(text.as_deref(), expected, "{message}");
            }
            // Absent.
            let body = format!(r#"{{"code":{code}}}"#);
            let env = RawEnvelope::parse(body.as_bytes()).unwrap();
            assert_eq!((env.code.get(), env.message), (code, None));
        }
    }

    #[test]
    fn msg_is_read_and_message_wins_over_it() {
        let text = |body: &str| {
            let env = RawEnvelope::parse(body.as_bytes()).unwrap_or_else(|e| panic!("{body}: {e}"));
            (env.code.get(), env.message.map(Cow::into_owned))
        };
        let some = |s: &str| Some(s.to_owned());
        assert_eq!(
            text(r#"{"code":88,"message":"from message"}"#),
            (88, some("from message"))
        );
        assert_eq!(
            text(r#"{"code":88,"msg":"from msg"}"#),
            (88, some("from msg"))
        );
        // Both: `message` (the media API's documented name) wins, in either order.
        assert_eq!(
            text(r#"{"code":88,"message":"m1","msg":"m2"}"#),
            (88, some("m1"))
        );
        assert_eq!(
            text(r#"{"code":88,"msg":"m2","message":"m1"}"#),
            (88, some("m1"))
        );
        // A `message` that is `null` gives way to `msg`; an empty string is a message.
        assert_eq!(
            text(r#"{"code":88,"message":null,"msg":"m2"}"#),
            (88, some("m2"))
        );
        assert_eq!(
            text(r#"{"code":88,"message":"","msg":"m2"}"#),
            (88, some(""))
        );
        // `msg` is as lenient as `message`: any JSON type, never costing the code.
        assert_eq!(
            text(r#"{"code":88,"msg":{ "a" : 1 }}"#),
            (88, some(r#"{"a":1}"#))
        );
        assert_eq!(text(r#"{"code":88,"msg":null}"#), (88, None));
        // Still refused: a duplicate of either name (serde's rule for any field).
        assert!(RawEnvelope::parse(br#"{"code":1,"msg":"a","msg":"b"}"#).is_err());
        let with_data = RawEnvelope::parse(br#"{"code":0,"msg":"ok","data":{"id":"x"}}"#).unwrap();
        assert_eq!(with_data.data.map(RawValue::get), Some(r#"{"id":"x"}"#));
    }

    #[test]
    fn plain_string_messages_are_borrowed() {
        assert!(message_of(9001, r#""system business error""#).2);
        assert!(message_of(9001, "42").2);
        assert!(!message_of(9001, r#""a\nb""#).2);
        let env = RawEnvelope::parse(br#"{"code":0,"message":"ok","data":{"a": 1}}"#).unwrap();
        assert_eq!(env.data.map(RawValue::get), Some(r#"{"a": 1}"#));
    }
}
