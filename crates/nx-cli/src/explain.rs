//! The stages of NXCloud's string to sign, for `sign --explain` and for the demo's request
//! views. The strings come from `nx_protocol::sign`; the secret appears only as `<redacted>`.

use nx_protocol::operation::headers;
use nx_protocol::sign::{self, SignableBody, SignableRequest, SigningError};
use nx_protocol::{AccessSecret, OutgoingBody};
use serde::Serialize;

/// The string to sign, stage by stage, and the signature.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Stages {
    /// Stage 1: the sorted `name=value&...` header string.
    pub(crate) header_string: String,
    /// Stage 2: `&body=<bytes>`, or empty (no body, or multipart).
    pub(crate) body_segment: String,
    /// Stage 3: the whole string with the secret replaced by `<redacted>`.
    pub(crate) canonical_string: String,
    /// The signature (32 lower-case hex characters).
    pub(crate) signature: String,
}

/// The stages of signing `params` and `body` with `secret`.
pub(crate) fn stages(
    params: &[(&str, &str)],
    body: SignableBody<'_>,
    secret: &AccessSecret,
) -> Result<Stages, SigningError> {
    let request = SignableRequest::new(params, body);
    Ok(Stages {
        header_string: request.header_string()?,
        body_segment: request.body_segment(),
        canonical_string: sign::canonical_string(&request)?,
        signature: sign::sign(&request, secret)?.as_str().to_owned(),
    })
}

/// A signed NXCloud request as the demo shows it: method, path, the common headers and `sign`,
/// and the string to sign with the secret masked. Never the secret, never a URL query.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct RequestView {
    /// `POST`.
    pub(crate) method: String,
    /// The path (NXCloud's paths carry no query).
    pub(crate) path: String,
    /// accessKey, action, bizType, ts and sign, as sent.
    pub(crate) headers: Vec<(String, String)>,
    /// The string that was hashed, the secret replaced by `<redacted>`.
    pub(crate) canonical_string: String,
}

impl RequestView {
    /// The view of a request built by `nx_protocol::operation::build_request`.
    pub(crate) fn of(request: &http::Request<OutgoingBody>) -> Result<Self, SigningError> {
        let header = |name: &str| {
            request
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        let names = [
            headers::ACCESS_KEY,
            headers::ACTION,
            headers::BIZ_TYPE,
            headers::TS,
        ];
        let values: Vec<String> = names.iter().map(|n| header(n)).collect();
        let params: Vec<(&str, &str)> = names
            .iter()
            .copied()
            .zip(values.iter().map(String::as_str))
            .collect();
        let body = match request.body() {
            OutgoingBody::Bytes(bytes) => SignableBody::Json(bytes),
            OutgoingBody::Streamed(_) => SignableBody::Multipart,
            _ => SignableBody::Empty,
        };
        let canonical_string = sign::canonical_string(&SignableRequest::new(&params, body))?;
        let mut shown: Vec<(String, String)> = params
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        shown.push((headers::SIGN.to_owned(), header(headers::SIGN)));
        Ok(Self {
            method: request.method().to_string(),
            path: request.uri().path().to_owned(),
            headers: shown,
            canonical_string,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vendor_example_in_stages() {
        let params = [
            ("accessKey", "fme2na3kdi3ki"),
            ("ts", "1655710885431"),
            ("bizType", "1"),
            ("action", "send"),
        ];
        let body = r#"{"name":"牛小信","id":10001}"#;
        let secret = AccessSecret::new("abciiiko2k3");
        let s = stages(&params, SignableBody::Json(body.as_bytes()), &secret).unwrap();
        assert_eq!(
            s.header_string,
            "accessKey=fme2na3kdi3ki&action=send&bizType=1&ts=1655710885431"
        );
        assert_eq!(s.body_segment, format!("&body={body}"));
        assert_eq!(
            s.canonical_string,
            format!(
                "{}{}&accessSecret=<redacted>",
                s.header_string, s.body_segment
            )
        );
        assert_eq!(s.signature, "87c3560d3331ae23f1021e2025722354");
        assert!(!format!("{s:?}").contains("abciiiko2k3"));
    }
}
