//! NXCloud's answer envelope: `{"code": <int>, "message": <string>, "data": <object or null>}`.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::code::ApiCode;

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
/// ```
#[derive(Debug, Deserialize)]
pub struct RawEnvelope<'a> {
    /// The code; 0 is success.
    pub code: ApiCode,
    /// The server's message. A JSON string is taken as is (borrowed from the answer bytes when
    /// it has no escapes); absent or `null` is `None`; any other JSON value (a number, an
    /// object, ...) is kept as its compact JSON text.
    #[serde(borrow, default, deserialize_with = "lenient_message")]
    pub message: Option<Cow<'a, str>>,
    /// The payload, borrowed from the answer bytes; `None` for absent or `null`.
    #[serde(borrow, default)]
    pub data: Option<&'a RawValue>,
}

impl<'a> RawEnvelope<'a> {
    /// Parses an envelope, borrowing `data` (and `message` where it can) from `body`.
    pub fn parse(body: &'a [u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }
}

/// `message` whatever its JSON type: never an error once the value is well-formed JSON.
fn lenient_message<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Cow<'de, str>>, D::Error> {
    let raw = <&'de RawValue>::deserialize(deserializer)?;
    Ok(message_text(raw))
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
pub struct Envelope<T> {
    /// The code.
    pub code: ApiCode,
    /// The message.
    pub message: String,
    /// The payload.
    pub data: Option<T>,
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
    fn plain_string_messages_are_borrowed() {
        assert!(message_of(9001, r#""system business error""#).2);
        assert!(message_of(9001, "42").2);
        assert!(!message_of(9001, r#""a\nb""#).2);
        let env = RawEnvelope::parse(br#"{"code":0,"message":"ok","data":{"a": 1}}"#).unwrap();
        assert_eq!(env.data.map(RawValue::get), Some(r#"{"a": 1}"#));
    }
}
