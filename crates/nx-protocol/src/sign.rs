//! NXCloud's MD5 request signature, for every NXCloud open-platform API.
//!
//! The string to sign is
//! `name1=value1&name2=value2...[&body=<json bytes>]&accessSecret=<secret>`, with the header
//! parameters sorted by name in ascending ASCII order and `sign` itself left out; the `&body=`
//! segment is present only for a non-empty JSON body. `sign` is the lower-case hex MD5 of it.
//!
//! Like aws-sigv4, the signer takes a borrowed, client-neutral view of the request
//! ([`SignableRequest`]) and returns a [`Signature`] instead of touching any client's request.
//! The string to sign is never built on the heap: its public pieces are gathered in a stack
//! buffer and hashed in one update (an update per piece cost more than a quarter of the MD5
//! work again), the secret last and straight into the hash, so the buffer never holds it.
//!
//! ```
//! use nx_protocol::sign::{sign, SignableBody, SignableRequest};
//! use nx_protocol::AccessSecret;
//!
//! // The vendor's worked example.
//! let params = [
//!     ("accessKey", "fme2na3kdi3ki"),
//!     ("ts", "1655710885431"),
//!     ("bizType", "1"),
//!     ("action", "send"),
//! ];
//! let body = r#"{"name":"牛小信","id":10001}"#.as_bytes();
//! let request = SignableRequest::new(&params, SignableBody::Json(body));
//! let signature = sign(&request, &AccessSecret::new("abciiiko2k3")).unwrap();
//! assert_eq!(signature.as_str(), "87c3560d3331ae23f1021e2025722354");
//! ```

use std::fmt;

use md5::{Digest, Md5};

use crate::secret::{AccessSecret, REDACTED};

/// The header parameter that carries the signature; never part of the string to sign.
pub const SIGN_HEADER: &str = "sign";

/// The request body as the signer sees it.
///
/// Exhaustive on purpose: these are the three body cases of NXCloud's signing rules, so a new one must fail to compile rather than fall into a
/// wildcard arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignableBody<'a> {
    /// An `application/json` body: exactly the bytes that go on the wire. An empty slice is
    /// treated like [`SignableBody::Empty`].
    Json(&'a [u8]),
    /// No body.
    Empty,
    /// A `multipart/form-data` body, which is never part of the signature.
    Multipart,
}

impl<'a> SignableBody<'a> {
    /// The bytes that the `&body=` segment carries, if the segment is present.
    fn signed_bytes(self) -> Option<&'a [u8]> {
        match self {
            SignableBody::Json(bytes) if !bytes.is_empty() => Some(bytes),
            _ => None,
        }
    }
}

/// A borrowed, client-neutral view of what NXCloud signs: the header parameters that are sent
/// (in any order; a parameter named `sign` is skipped) and the body.
#[derive(Clone, Copy, Debug)]
pub struct SignableRequest<'a> {
    params: &'a [(&'a str, &'a str)],
    body: SignableBody<'a>,
    /// The names are known to be in strictly ascending order without `sign` (set only by the
    /// crate, for constant names), so they are fed as they are, neither compared nor sorted.
    in_order: bool,
}

/// Why a request cannot be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SigningError {
    /// Two header parameters share a name, so their order in the string to sign is undefined.
    #[error("header parameter `{0}` is given twice; each parameter may appear once")]
    DuplicateParam(String),
}

impl<'a> SignableRequest<'a> {
    /// A request with these header parameters and this body.
    pub fn new(params: &'a [(&'a str, &'a str)], body: SignableBody<'a>) -> Self {
        Self {
            params,
            body,
            in_order: false,
        }
    }

    /// [`SignableRequest::new`] for parameters whose names the caller knows to be in strictly
    /// ascending order without `sign` (constants, as in [`crate::operation::build_request`]):
    /// the order is not checked again on each call, except in debug builds.
    pub(crate) fn new_in_order(params: &'a [(&'a str, &'a str)], body: SignableBody<'a>) -> Self {
        debug_assert!(
            params
                .windows(2)
                .all(|pair| pair[0].0 < pair[1].0 && pair[1].0 != SIGN_HEADER)
                && params.first().is_none_or(|first| first.0 != SIGN_HEADER)
        );
        Self {
            params,
            body,
            in_order: true,
        }
    }

    /// The parameters that are signed, in signing order (ascending ASCII by name, `sign` skipped).
    ///
    /// Parameters given in that order already (as [`crate::operation::build_request`] gives
    /// them) are taken as they are: strictly ascending names hold no duplicate. Any other order
    /// is sorted by repeated selection over the borrowed slice, so it needs no allocation; the
    /// handful of parameters a request carries makes the quadratic cost irrelevant.
    fn sorted(&self) -> Result<SortedParams<'a>, SigningError> {
        let signed = |(name, _): &&(&str, &str)| *name != SIGN_HEADER;
        let mut names = self.params.iter().filter(signed).map(|(name, _)| *name);
        let in_order = names.next().is_none_or(|first| {
            names
                .try_fold(first, |last, name| (last < name).then_some(name))
                .is_some()
        });
        if !in_order {
            for (i, (name, _)) in self.params.iter().enumerate().filter(|(_, p)| signed(p)) {
                if self.params[i + 1..].iter().any(|(other, _)| other == name) {
                    return Err(SigningError::DuplicateParam((*name).to_owned()));
                }
            }
        }
        Ok(SortedParams {
            params: self.params,
            in_order,
            last: None,
        })
    }

    /// Stage 1: the sorted `name=value&...` header string.
    pub fn header_string(&self) -> Result<String, SigningError> {
        let mut out = Vec::new();
        self.feed_headers(&mut out)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// Stage 2: the body segment, `&body=<bytes>` or nothing.
    pub fn body_segment(&self) -> String {
        match self.body.signed_bytes() {
            Some(bytes) => format!("&body={}", String::from_utf8_lossy(bytes)),
            None => String::new(),
        }
    }

    fn feed_headers(&self, sink: &mut impl Sink) -> Result<(), SigningError> {
        let mut put = |i: usize, (name, value): (&str, &str)| {
            if i > 0 {
                sink.put(b"&");
            }
            sink.put(name.as_bytes());
            sink.put(b"=");
            sink.put(value.as_bytes());
        };
        if self.in_order {
            // Known to be in order without `sign`: as they are, without a sorting iterator.
            self.params
                .iter()
                .copied()
                .enumerate()
                .for_each(|(i, p)| put(i, p));
        } else {
            self.sorted()?.enumerate().for_each(|(i, p)| put(i, p));
        }
        Ok(())
    }

    /// Feeds the whole string to sign, with `secret` in the secret's place, to `sink`.
    /// The one definition of the string: the hash, the masked string and the tests all use it.
    fn feed(&self, secret: &[u8], sink: &mut impl Sink) -> Result<(), SigningError> {
        self.feed_public(sink)?;
        sink.put(secret);
        Ok(())
    }

    /// What [`SignableRequest::feed`] gives before the secret.
    fn feed_public(&self, sink: &mut impl Sink) -> Result<(), SigningError> {
        self.feed_headers(sink)?;
        if let Some(body) = self.body.signed_bytes() {
            sink.put(b"&body=");
            sink.put(body);
        }
        sink.put(b"&accessSecret=");
        Ok(())
    }
}

/// Where [`SignableRequest::feed`] writes the string to sign, piece by piece.
trait Sink {
    fn put(&mut self, bytes: &[u8]);
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes);
    }
}

/// How many bytes [`Staged`] gathers before it updates the hash: all of a getMedia's string
/// to sign but the secret (about 190 bytes), in one update.
const STAGED: usize = 256;

/// An MD5 fed through a stack buffer.
struct Staged {
    md5: Md5,
    buf: [u8; STAGED],
    len: usize,
}

impl Sink for Staged {
    /// Inlined at each call, so that the constant separators are single stores.
    #[inline(always)]
    fn put(&mut self, bytes: &[u8]) {
        if bytes.len() > STAGED - self.len {
            self.md5.update(&self.buf[..self.len]);
            self.len = 0;
            if bytes.len() > STAGED {
                self.md5.update(bytes);
                return;
            }
        }
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }
}

/// Iterator over parameters in ascending name order, skipping `sign`.
struct SortedParams<'a> {
    /// The parameters not yet given when `in_order`; all of them otherwise.
    params: &'a [(&'a str, &'a str)],
    /// The parameters are in ascending order already: they are given as they come.
    in_order: bool,
    last: Option<&'a str>,
}

impl<'a> Iterator for SortedParams<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        if self.in_order {
            while let [(name, value), rest @ ..] = self.params {
                self.params = rest;
                if *name != SIGN_HEADER {
                    return Some((name, value));
                }
            }
            return None;
        }
        let next = self
            .params
            .iter()
            .filter(|(name, _)| *name != SIGN_HEADER && self.last.is_none_or(|last| *name > last))
            .min_by(|a, b| a.0.cmp(b.0))
            .copied()?;
        self.last = Some(next.0);
        Some(next)
    }
}

/// An NXCloud signature: 32 lower-case hex characters, held inline (no heap).
///
/// `Debug` is redacted so that a signature never lands in a log by accident; use
/// [`Signature::as_str`] to send or print it on purpose.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature([u8; 32]);

impl Signature {
    fn from_digest(digest: &[u8]) -> Self {
        let mut hex = [0u8; 32];
        // Both lengths are fixed (16 bytes in, 32 out), so encoding cannot fail.
        let _ = hex::encode_to_slice(digest, &mut hex);
        Self(hex)
    }

    /// The 32 lower-case hex characters, as bytes (no UTF-8 check, unlike
    /// [`Signature::as_str`]).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 32 lower-case hex characters.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// Compares with a received `sign` value exactly, in constant time (for a value of the
    /// right length). The spec's `sign` is 32 *lower-case* hex characters, so only that exact
    /// text matches: the same digest in upper case does not.
    ///
    /// ```
    /// use nx_protocol::sign::{sign, SignableBody, SignableRequest};
    /// use nx_protocol::AccessSecret;
    /// let params = [("accessKey", "k"), ("action", "getMedia"), ("bizType", "2"), ("ts", "1")];
    /// let sig = sign(&SignableRequest::new(&params, SignableBody::Empty), &AccessSecret::new("s")).unwrap();
    /// assert!(sig.matches(sig.as_str()));
    /// assert!(!sig.matches(&sig.as_str().to_ascii_uppercase()));
    /// ```
    pub fn matches(&self, received: &str) -> bool {
        let received = received.as_bytes();
        if received.len() != self.0.len() {
            return false;
        }
        let diff = self
            .0
            .iter()
            .zip(received)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        diff == 0
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({REDACTED})")
    }
}

/// Signs `request` with `secret`: lower-case hex MD5 of the string to sign, streamed into the hash.
pub fn sign(
    request: &SignableRequest<'_>,
    secret: &AccessSecret,
) -> Result<Signature, SigningError> {
    let mut staged = Staged {
        md5: Md5::new(),
        buf: [0; STAGED],
        len: 0,
    };
    request.feed_public(&mut staged)?;
    staged.md5.update(&staged.buf[..staged.len]);
    // What `feed` gives last, straight into the hash: the stack buffer never holds the secret.
    staged.md5.update(secret.expose().as_bytes());
    Ok(Signature::from_digest(&staged.md5.finalize()))
}

/// What to add to a request after signing it: the signed parameters as headers, plus `sign`.
/// Returned instead of mutating any client's request, so any HTTP stack can apply it.
#[derive(Clone, Copy, Debug)]
pub struct SigningInstructions<'a> {
    params: &'a [(&'a str, &'a str)],
    signature: Signature,
}

impl<'a> SigningInstructions<'a> {
    /// The signature.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// Every header to send: the signed parameters (a `sign` among them is skipped), then
    /// `sign` itself.
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &str)> + '_ {
        self.params
            .iter()
            .copied()
            .filter(|(name, _)| *name != SIGN_HEADER)
            .chain([(SIGN_HEADER, self.signature.as_str())])
    }
}

/// Signs `request` and says which headers to send: [`sign`] plus the header set to apply.
///
/// ```
/// use nx_protocol::sign::{instructions, SignableBody, SignableRequest};
/// use nx_protocol::AccessSecret;
/// let params = [("accessKey", "k"), ("action", "getMedia"), ("bizType", "2"), ("ts", "1")];
/// let request = SignableRequest::new(&params, SignableBody::Json(b"{}"));
/// let signed = instructions(&request, &AccessSecret::new("s")).unwrap();
/// let names: Vec<&str> = signed.headers().map(|(name, _)| name).collect();
/// assert_eq!(names, ["accessKey", "action", "bizType", "ts", "sign"]);
/// ```
pub fn instructions<'a>(
    request: &SignableRequest<'a>,
    secret: &AccessSecret,
) -> Result<SigningInstructions<'a>, SigningError> {
    Ok(SigningInstructions {
        params: request.params,
        signature: sign(request, secret)?,
    })
}

/// The whole string to sign with the secret replaced by [`REDACTED`]: for debugging a 1003
/// ("invalid signature") answer. Non-UTF-8 body bytes are shown lossily.
///
/// ```
/// use nx_protocol::sign::{canonical_string, SignableBody, SignableRequest};
/// let params = [("ts", "1"), ("accessKey", "k"), ("action", "getMedia"), ("bizType", "2")];
/// let request = SignableRequest::new(&params, SignableBody::Json(b"{}"));
/// assert_eq!(
///     canonical_string(&request).unwrap(),
///     "accessKey=k&action=getMedia&bizType=2&ts=1&body={}&accessSecret=<redacted>"
/// );
/// ```
pub fn canonical_string(request: &SignableRequest<'_>) -> Result<String, SigningError> {
    let mut out = Vec::new();
    request.feed(REDACTED.as_bytes(), &mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The string to sign with the real secret in it. Test-only: it must never reach a log.
#[cfg(test)]
pub(crate) fn canonical_string_unmasked(
    request: &SignableRequest<'_>,
    secret: &AccessSecret,
) -> Result<Vec<u8>, SigningError> {
    let mut out = Vec::new();
    request.feed(secret.expose().as_bytes(), &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests;
