//! The few things transports read from an answer's headers, read one way for both.

use http::HeaderMap;
use http::header::{CONTENT_LENGTH, DATE, TRANSFER_ENCODING};

/// The `Content-Length`, if present and a number (a missing or unreadable one is treated as
/// unannounced; the download checks then go by what arrives).
///
/// ```
/// let mut headers = http::HeaderMap::new();
/// headers.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from_static("42"));
/// assert_eq!(nx_protocol::head::content_length(&headers), Some(42));
/// ```
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    announced_length(headers).ok().flatten()
}

/// The `Content-Length`: `None` when absent, an error when present but not a number (where an
/// answer with such a header is refused rather than read by what arrives).
///
/// ```
/// let mut headers = http::HeaderMap::new();
/// assert_eq!(nx_protocol::head::announced_length(&headers), Ok(None));
/// headers.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from_static("12x"));
/// assert!(nx_protocol::head::announced_length(&headers).is_err());
/// assert_eq!(nx_protocol::head::content_length(&headers), None);
/// ```
pub fn announced_length(headers: &HeaderMap) -> Result<Option<u64>, &'static str> {
    headers
        .get(CONTENT_LENGTH)
        .map(|value| {
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or("the Content-Length is not a number")
        })
        .transpose()
}

/// The `Date` header, if present and text: what [`crate::policy::clock`] corrects the clock from
/// after a 1004.
pub fn date(headers: &HeaderMap) -> Option<&str> {
    headers.get(DATE)?.to_str().ok()
}

/// Why an answer's framing is refused: a `Transfer-Encoding` other than `chunked` alone (no
/// transport decodes transfer codings, so the bytes inside would be taken for the answer), a
/// `Transfer-Encoding` beside a `Content-Length` (RFC 9112, section 6.3: a sign of response
/// splitting "ought to be handled as an error"), or `Content-Length`s that differ. HTTP stacks
/// refuse some of these and read others one way or the other; every transport asks this
/// instead, before reading the body ([`crate::call::Call::head`]).
///
/// ```
/// use http::{HeaderMap, HeaderValue, header};
/// use nx_protocol::head::framing;
/// let mut headers = HeaderMap::new();
/// headers.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
/// assert_eq!(framing(&headers), Ok(()));
/// headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
/// assert!(framing(&headers).is_err());
/// headers.remove(header::CONTENT_LENGTH);
/// headers.insert(header::TRANSFER_ENCODING, HeaderValue::from_static("gzip, chunked"));
/// assert!(framing(&headers).is_err());
/// ```
pub fn framing(headers: &HeaderMap) -> Result<(), &'static str> {
    /// A header value's comma-separated parts, trimmed.
    fn parts(value: &http::HeaderValue) -> impl Iterator<Item = &[u8]> {
        value
            .as_bytes()
            .split(|&b| b == b',')
            .map(<[u8]>::trim_ascii)
    }
    // One pass over the head (a handful of headers), rather than a lookup per name: the two
    // lookups and their iterators cost some 440 instructions per answer (callgrind, issue 20).
    // The map yields a name's values together and in order, so what each name says is read as
    // by a lookup of it.
    let mut coding: Option<bool> = None; // the first transfer coding: whether it is `chunked`
    let mut more_codings = false;
    let mut length: Option<&[u8]> = None;
    let mut lengths_differ = false;
    for (name, value) in headers {
        if name == TRANSFER_ENCODING {
            for part in parts(value).filter(|part| !part.is_empty()) {
                match coding {
                    None => coding = Some(part.eq_ignore_ascii_case(b"chunked")),
                    Some(_) => more_codings = true,
                }
            }
        } else if name == CONTENT_LENGTH {
            for part in parts(value) {
                match length {
                    None => length = Some(part),
                    Some(first) => lengths_differ |= part != first,
                }
            }
        }
    }
    if let Some(chunked) = coding {
        if !chunked || more_codings {
            return Err(
                "its Transfer-Encoding is not chunked alone (transfer codings are not decoded)",
            );
        }
        if length.is_some() {
            return Err("it has both a Content-Length and a Transfer-Encoding");
        }
    }
    if lengths_differ {
        return Err("its Content-Length headers differ");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::framing;
    use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
    use http::{HeaderMap, HeaderValue};

    fn headers(pairs: &[(http::header::HeaderName, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn framing_is_refused_where_a_reader_would_have_to_guess() {
        let ok: &[&[(http::header::HeaderName, &str)]] = &[
            &[],
            &[(CONTENT_LENGTH, "5")],
            &[(CONTENT_LENGTH, "5"), (CONTENT_LENGTH, "5")],
            &[(CONTENT_LENGTH, "5, 5")],
            &[(TRANSFER_ENCODING, "chunked")],
            &[(TRANSFER_ENCODING, "Chunked ")],
        ];
        for pairs in ok {
            assert_eq!(framing(&headers(pairs)), Ok(()), "{pairs:?}");
        }
        let refused: &[&[(http::header::HeaderName, &str)]] = &[
            &[(CONTENT_LENGTH, "5"), (CONTENT_LENGTH, "7")],
            &[(CONTENT_LENGTH, "5, 7")],
            &[(CONTENT_LENGTH, "5"), (TRANSFER_ENCODING, "chunked")],
            &[(TRANSFER_ENCODING, "gzip, chunked")],
            &[(TRANSFER_ENCODING, "gzip"), (TRANSFER_ENCODING, "chunked")],
            &[
                (TRANSFER_ENCODING, "chunked"),
                (TRANSFER_ENCODING, "chunked"),
            ],
            &[(TRANSFER_ENCODING, "identity")],
        ];
        for pairs in refused {
            assert!(framing(&headers(pairs)).is_err(), "{pairs:?}");
        }
    }

    /// The reading by a lookup of each name (how `framing` read the head before its one pass).
    fn by_lookup(headers: &HeaderMap) -> Result<(), &'static str> {
        let mut codings = headers
            .get_all(TRANSFER_ENCODING)
            .iter()
            .flat_map(|value| value.as_bytes().split(|&b| b == b','))
            .map(<[u8]>::trim_ascii)
            .filter(|coding| !coding.is_empty());
        if let Some(first) = codings.next() {
            if !first.eq_ignore_ascii_case(b"chunked") || codings.next().is_some() {
                return Err(
                    "its Transfer-Encoding is not chunked alone (transfer codings are not decoded)",
                );
            }
            if headers.contains_key(CONTENT_LENGTH) {
                return Err("it has both a Content-Length and a Transfer-Encoding");
            }
        }
        let mut lengths = headers
            .get_all(CONTENT_LENGTH)
            .iter()
            .flat_map(|value| value.as_bytes().split(|&b| b == b','))
            .map(<[u8]>::trim_ascii);
        if let Some(first) = lengths.next()
            && lengths.any(|other| other != first)
        {
            return Err("its Content-Length headers differ");
        }
        Ok(())
    }

    #[test]
    fn the_one_pass_reads_as_a_lookup_of_each_name() {
        use http::header::{CONTENT_TYPE, DATE};
        let values = [
            "",
            " ",
            "chunked",
            "CHUNKED ",
            "gzip",
            "gzip, chunked",
            ",",
            "5",
            "5, 5",
            "7",
        ];
        let names = [TRANSFER_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, DATE];
        let mut checked = 0;
        // Every head of up to three headers from these names and values, in every order.
        for a in 0..names.len() * values.len() {
            for b in 0..=names.len() * values.len() {
                for c in 0..=names.len() * values.len() {
                    let mut head = HeaderMap::new();
                    for i in [a, b, c] {
                        if let (Some(name), Some(value)) =
                            (names.get(i / values.len()), values.get(i % values.len()))
                        {
                            head.append(name, HeaderValue::from_static(value));
                        }
                    }
                    assert_eq!(framing(&head), by_lookup(&head), "{head:?}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 60_000, "{checked}");
    }
}
