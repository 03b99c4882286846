//! The NXCloud signature as the sandbox checks it.
//!
//! This is written independently of `nx_protocol::sign` on purpose: the sandbox is the judge of
//! the client's signer, so a bug in the client's signer must not hide behind the same bug in the
//! verifier. The string to sign is built here from the rule in the vendor's documentation:
//!
//! 1. the header parameters that are sent, except `sign`, sorted by name in ascending ASCII
//!    order, joined as `name=value` with `&`;
//! 2. for an `application/json` request with a non-empty body, `&body=` and the body bytes
//!    exactly as received; nothing for multipart or an empty body;
//! 3. `&accessSecret=` and the secret;
//! 4. the lower-case hex MD5 of those bytes.
//!
//! ```
//! // The vendor's worked example.
//! let sign = nx_sandbox::signing::sign(
//!     "fme2na3kdi3ki",
//!     "send",
//!     "1",
//!     "1655710885431",
//!     Some(r#"{"name":"牛小信","id":10001}"#.as_bytes()),
//!     "abciiiko2k3",
//! );
//! assert_eq!(sign, "87c3560d3331ae23f1021e2025722354");
//! ```

use md5::{Digest, Md5};

/// The bytes that are hashed: sorted header pairs, the body (when given and non-empty) and the
/// secret. Header values are taken as raw bytes, exactly as received.
pub fn string_to_sign(
    access_key: impl AsRef<[u8]>,
    action: impl AsRef<[u8]>,
    biz_type: impl AsRef<[u8]>,
    ts: impl AsRef<[u8]>,
    json_body: Option<&[u8]>,
    secret: impl AsRef<[u8]>,
) -> Vec<u8> {
    let mut pairs: [(&[u8], &[u8]); 4] = [
        (b"ts", ts.as_ref()),
        (b"bizType", biz_type.as_ref()),
        (b"action", action.as_ref()),
        (b"accessKey", access_key.as_ref()),
    ];
    // Byte-wise comparison of the names is ASCII order.
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = Vec::with_capacity(128 + json_body.map_or(0, <[u8]>::len));
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(b'&');
        }
        out.extend_from_slice(name);
        out.push(b'=');
        out.extend_from_slice(value);
    }
    if let Some(body) = json_body.filter(|b| !b.is_empty()) {
        out.extend_from_slice(b"&body=");
        out.extend_from_slice(body);
    }
    out.extend_from_slice(b"&accessSecret=");
    out.extend_from_slice(secret.as_ref());
    out
}

/// The expected `sign` header: lower-case hex MD5 of [`string_to_sign`].
pub fn sign(
    access_key: impl AsRef<[u8]>,
    action: impl AsRef<[u8]>,
    biz_type: impl AsRef<[u8]>,
    ts: impl AsRef<[u8]>,
    json_body: Option<&[u8]>,
    secret: impl AsRef<[u8]>,
) -> String {
    let input = string_to_sign(access_key, action, biz_type, ts, json_body, secret);
    hex::encode(Md5::digest(&input))
}

/// Compares a received `sign` with the expected one without stopping at the first difference.
/// The comparison is exact: an upper-case hex signature does not match (the vendor specifies
/// lower case).
pub(crate) fn matches(received: &[u8], expected: &str) -> bool {
    let expected = expected.as_bytes();
    received.len() == expected.len()
        && received
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_vector() {
        let body = r#"{"name":"牛小信","id":10001}"#.as_bytes();
        let s = string_to_sign(
            "fme2na3kdi3ki",
            "send",
            "1",
            "1655710885431",
            Some(body),
            "abciiiko2k3",
        );
        assert_eq!(
            String::from_utf8(s).unwrap(),
            r#"accessKey=fme2na3kdi3ki&action=send&bizType=1&ts=1655710885431&body={"name":"牛小信","id":10001}&accessSecret=abciiiko2k3"#
        );
        assert_eq!(
            sign(
                "fme2na3kdi3ki",
                "send",
                "1",
                "1655710885431",
                Some(body),
                "abciiiko2k3"
            ),
            "87c3560d3331ae23f1021e2025722354"
        );
    }

    #[test]
    fn hand_written_canonical_strings() {
        // Multipart and empty bodies are signed without `&body=`.
        let s = string_to_sign("k", "uploadMedia", "2", "1700000000000", None, "s");
        assert_eq!(
            s,
            b"accessKey=k&action=uploadMedia&bizType=2&ts=1700000000000&accessSecret=s"
        );
        let empty = string_to_sign("k", "getMedia", "2", "1", Some(b""), "s");
        assert_eq!(
            empty,
            b"accessKey=k&action=getMedia&bizType=2&ts=1&accessSecret=s"
        );
        // MD5("abc") = 900150983cd24fb0d6963f7d28e17f72 (RFC 1321): check the hash itself.
        assert_eq!(
            hex::encode(Md5::digest(b"abc")),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        // Body bytes are hashed as received, even when they are not UTF-8.
        let raw = string_to_sign("k", "a", "2", "1", Some(&[0xff, b'{']), "s");
        assert_eq!(
            raw,
            b"accessKey=k&action=a&bizType=2&ts=1&body=\xff{&accessSecret=s"
        );
    }

    #[test]
    fn comparison_is_exact() {
        let expected = "87c3560d3331ae23f1021e2025722354";
        assert!(matches(expected.as_bytes(), expected));
        assert!(!matches(b"87C3560D3331AE23F1021E2025722354", expected));
        assert!(!matches(b"87c3560d3331ae23f1021e202572235", expected));
        assert!(!matches(b"", expected));
    }
}
