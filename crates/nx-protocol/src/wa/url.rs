//! The pre-signed download URL getMedia answers with.

use std::fmt;

use http::Uri;

use crate::error::InvalidInput;
use crate::operation::strip_query;
use crate::secret::REDACTED;
use crate::time::Timestamp;

/// A pre-signed object-storage URL (`...?Expires=<unix secs>&OSSAccessKeyId=..&Signature=..`).
///
/// It grants access until it expires, so it is treated as a secret: `Debug` and `Display` show
/// only scheme, host and path, with the query replaced by [`REDACTED`].
#[derive(Clone)]
pub struct DownloadUrl {
    /// The URL, then, in a [`MediaInfo`](super::MediaInfo)'s URL, that answer's MIME type and
    /// file name: a getMedia answer is one allocation (as `url::Url` keeps its parts in one
    /// string). The tail is not part of the URL: equality and every view ignore it.
    text: Box<str>,
    /// Where the URL ends in `text`.
    end: usize,
    expires_at: Option<u64>,
}

impl PartialEq for DownloadUrl {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose() && self.expires_at == other.expires_at
    }
}

impl Eq for DownloadUrl {}

impl DownloadUrl {
    /// Parses an `http`/`https` URL and its `Expires` parameter, if any.
    ///
    /// ```
    /// use nx_protocol::wa::DownloadUrl;
    /// use nx_protocol::Timestamp;
    /// let url = DownloadUrl::parse("https://oss.example/f?Expires=1663747602&Signature=abc").unwrap();
    /// assert_eq!(url.expires_at(), Some(1663747602));
    /// assert!(url.is_expired(Timestamp::from_millis(1_663_747_602_000), 0));
    /// assert!(!url.is_expired(Timestamp::from_millis(1_663_747_000_000), 30));
    /// assert_eq!(format!("{url:?}"), "DownloadUrl(https://oss.example/f?<redacted>)");
    /// // What is not the query is shown, so it must be scheme, host, port and path only.
    /// assert!(DownloadUrl::parse("https://[::1]:4Signature=x?Expires=1").is_err());
    /// assert!(DownloadUrl::parse("https://Signature=x@oss.example/f").is_err());
    /// ```
    pub fn parse(url: &str) -> Result<Self, InvalidInput> {
        Self::with_tail(url, ["", ""])
    }

    /// [`DownloadUrl::parse`] of `url`, with `tail` after it in the same allocation (see
    /// `text`), copied only once the URL is accepted.
    pub(super) fn with_tail(url: &str, tail: [&str; 2]) -> Result<Self, InvalidInput> {
        let expires_at = Self::expiry(url)?;
        let mut text = String::with_capacity(url.len() + tail[0].len() + tail[1].len());
        text.push_str(url);
        text.push_str(tail[0]);
        text.push_str(tail[1]);
        Ok(Self {
            // Of its exact capacity: no reallocation.
            text: text.into_boxed_str(),
            end: url.len(),
            expires_at,
        })
    }

    /// This URL with `tail` after it instead of its own (one reallocation at most).
    pub(super) fn replace_tail(self, tail: [&str; 2]) -> Self {
        let mut text = self.text.into_string();
        text.truncate(self.end);
        text.reserve_exact(tail[0].len() + tail[1].len());
        text.push_str(tail[0]);
        text.push_str(tail[1]);
        Self {
            text: text.into_boxed_str(),
            ..self
        }
    }

    /// What follows the URL in its allocation (see `text`).
    pub(super) fn tail(&self) -> &str {
        &self.text[self.end..]
    }

    /// [`DownloadUrl::parse`] of a `String` that is kept as it is (no copy).
    fn from_string(url: String) -> Result<Self, InvalidInput> {
        Ok(Self {
            expires_at: Self::expiry(&url)?,
            end: url.len(),
            text: url.into_boxed_str(),
        })
    }

    /// The `Expires` of a URL [`DownloadUrl::parse`] accepts, or why it refuses it.
    fn expiry(url: &str) -> Result<Option<u64>, InvalidInput> {
        match plain(url) {
            Some(views) => Ok(views.query.and_then(expires)),
            None => Self::check(url),
        }
    }

    /// What [`DownloadUrl::parse`] checks, read by `http::Uri` (for a URL that is not
    /// [`plain`]): the `Expires`, or why the URL is refused.
    fn check(url: &str) -> Result<Option<u64>, InvalidInput> {
        let bad = |reason| InvalidInput::Url {
            url: crate::redact::redact_urls(strip_query(url)).into_owned(),
            reason,
        };
        let uri: Uri = url.parse().map_err(|_| bad("it is not a valid URL"))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(bad("a download URL must be an absolute http or https URL"));
        }
        // `http::Uri` takes any text after the host's `:` as the port and keeps user info:
        // refuse both, so that what `Display` shows (all but the query) is only scheme, host,
        // port and path, never a parameter that ended up before the `?`.
        let authority = uri.authority().map_or("", |a| a.as_str());
        // Refused here, the URL is shown as scheme and host only: the rest is what is wrong.
        let bad = |reason| InvalidInput::Url {
            url: format!(
                "{}://{}",
                uri.scheme_str().unwrap_or(""),
                uri.host().unwrap_or("")
            ),
            reason,
        };
        if authority.contains('@') {
            return Err(bad("a download URL cannot carry user info"));
        }
        if !super::validate::port_is_valid(&uri) {
            return Err(bad("the port is not a number"));
        }
        Ok(uri.query().and_then(expires))
    }

    /// The full URL, query included. It is a secret until it expires: do not log it.
    pub fn expose(&self) -> &str {
        &self.text[..self.end]
    }

    /// Whether the URL is `https`.
    pub fn is_https(&self) -> bool {
        self.expose()
            .get(..8)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
    }

    /// Whether the URL's host is loopback, where plain `http` is harmless.
    ///
    /// ```
    /// use nx_protocol::wa::DownloadUrl;
    /// let local = DownloadUrl::parse("http://127.0.0.1:9000/f?Signature=s").unwrap();
    /// assert!(local.is_loopback() && !local.is_https());
    /// let remote = DownloadUrl::parse("HTTPS://[2001:db8::1]/f").unwrap();
    /// assert!(!remote.is_loopback() && remote.is_https());
    /// ```
    pub fn is_loopback(&self) -> bool {
        let host = match plain(self.expose()) {
            Some(views) => views.host,
            None => match self.expose().parse::<Uri>() {
                Ok(uri) => return uri.host().is_some_and(is_loopback),
                Err(_) => return false,
            },
        };
        is_loopback(host)
    }

    /// The `Expires` parameter: Unix seconds after which the storage refuses the URL.
    pub fn expires_at(&self) -> Option<u64> {
        self.expires_at
    }

    /// Whether the URL has expired at `now`, or will within `margin_secs` (so a download that
    /// takes a while does not start on a URL about to die). Unknown expiry: never.
    pub fn is_expired(&self, now: Timestamp, margin_secs: u64) -> bool {
        self.expires_at
            .is_some_and(|at| now.as_secs().saturating_add(margin_secs) >= at)
    }
}

#[cfg(test)]
impl DownloadUrl {
    /// [`DownloadUrl::parse`] without the shortcut: every URL read by `http::Uri`.
    pub(crate) fn check_by_uri(url: &str) -> Result<Self, InvalidInput> {
        Ok(Self {
            expires_at: Self::check(url)?,
            text: url.into(),
            end: url.len(),
        })
    }
}

/// Whether `url` is read by [`plain`] rather than by `http::Uri`.
#[cfg(test)]
pub(crate) fn takes_the_shortcut(url: &str) -> bool {
    plain(url).is_some()
}

/// Whether `host` (an IPv6 address in its brackets) is loopback.
fn is_loopback(host: &str) -> bool {
    let host = host
        .strip_prefix('[')
        .and_then(|v6| v6.strip_suffix(']'))
        .unwrap_or(host);
    crate::operation::is_loopback_host(host)
}

/// The first `Expires` parameter of a query (a `&`-separated pair whose name before its first
/// `=` is `Expires`), if its value is a number.
fn expires(query: &str) -> Option<u64> {
    let mut rest = query;
    loop {
        // `&` is ASCII: where it is found is a character boundary.
        let end = crate::scan::find_byte(b'&', rest.as_bytes()).unwrap_or(rest.len());
        let (pair, tail) = rest.split_at(end);
        if let Some(value) = pair.strip_prefix("Expires=") {
            return value.parse().ok();
        }
        rest = tail.get(1..)?;
    }
}

/// The parts of a URL that [`DownloadUrl`] reads, as views into it.
#[derive(Debug, PartialEq, Eq)]
struct Views<'a> {
    host: &'a str,
    query: Option<&'a str>,
}

/// The longest URL [`plain`] reads (longer ones go through `http::Uri`, whose limit is 64 KiB).
const MAX_PLAIN: usize = 8 * 1024;

/// `url` read in one pass over its bytes, if it has the plain form object storages answer
/// with: `http://` or `https://` (in any case), a host of ASCII letters, digits, `.` and `-`
/// (no user info, no IPv6 literal, no percent sign), an optional port of digits that fits a
/// `u16`, then a path and query of RFC 3986's unreserved and sub-delimiter characters and
/// `%:@/?` only (no fragment, no space, nothing else). `http::Uri` accepts every URL of that
/// form, reading the same host and query (a test compares the two on random and hostile
/// input); any other URL is `None` and is read by `http::Uri` ([`DownloadUrl::check`]), so
/// which URLs are refused, and how, stays `http::Uri`'s reading either way.
fn plain(url: &str) -> Option<Views<'_>> {
    if url.len() > MAX_PLAIN {
        return None;
    }
    let bytes = url.as_bytes();
    if !bytes
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"http"))
    {
        return None;
    }
    let secure = matches!(bytes.get(4), Some(b's' | b'S'));
    let host_start = if secure { 8 } else { 7 };
    if bytes.get(host_start - 3..host_start) != Some(b"://") {
        return None;
    }
    let rest = &bytes[host_start..];
    let host_byte = |b: &u8| b.is_ascii_alphanumeric() || *b == b'.' || *b == b'-';
    let host_len = rest
        .iter()
        .position(|b| !host_byte(b))
        .unwrap_or(rest.len());
    let mut tail = &rest[host_len..];
    if let [b':', after @ ..] = tail {
        // A port of digits whose value fits a `u16`, as `u16::from_str` reads digits.
        let digits = after
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(after.len());
        let port = after[..digits].iter().try_fold(0u16, |port, &digit| {
            port.checked_mul(10)?.checked_add(u16::from(digit - b'0'))
        });
        if digits == 0 || port.is_none() {
            return None;
        }
        tail = &after[digits..];
    }
    // The authority ends at the path or query, or with the URL.
    if host_len == 0 || !matches!(tail.first(), None | Some(b'/' | b'?')) {
        return None;
    }
    if any_refused(tail) {
        return None;
    }
    let tail_start = url.len() - tail.len();
    // `?` is ASCII: where it is found, and the host's ends, are character boundaries.
    let query = crate::scan::find_byte(b'?', tail).and_then(|at| url.get(tail_start + at + 1..));
    Some(Views {
        host: url.get(host_start..host_start + host_len)?,
        query,
    })
}

/// Whether `bytes` holds a byte [`refused`] refuses, read 16 bytes at a time with no early
/// exit in a block, so that each block is a few vector instructions: whole blocks, then the
/// last 16 bytes again (a byte read twice changes nothing); fewer than 16 bytes are padded
/// with `/`, which is taken.
fn any_refused(bytes: &[u8]) -> bool {
    fn block(block: &[u8; 16]) -> bool {
        block.iter().fold(false, |any, &b| any | refused(b))
    }
    let Some(last) = bytes.last_chunk::<16>() else {
        let mut padded = [b'/'; 16];
        padded[..bytes.len()].copy_from_slice(bytes);
        return block(&padded);
    };
    let (blocks, _) = bytes.as_chunks::<16>();
    blocks.iter().fold(block(last), |any, b| any | block(b))
}

/// Whether [`plain`] refuses `b` in a path or query. It takes RFC 3986's unreserved characters
/// (`A-Z a-z 0-9 - . _ ~`), its sub-delimiters (`! $ & ' ( ) * + , ; =`) and `% : @ / ?`, that
/// is every visible ASCII character (`!` to `~`) but `"`, `#`, `<`, `>`, `[`, `\`, `]`, `^`,
/// `{`, `|`, `}` and the backtick. Comparisons joined by `|`, no branch, so that a loop of it
/// vectorizes for the baseline x86-64 target (a table cannot: SSE2 has no byte lookup); a test
/// checks it against that list for every byte.
const fn refused(b: u8) -> bool {
    // Not visible ASCII: a space, a control character, DEL, anything not ASCII.
    (b.wrapping_sub(b'!') > b'~' - b'!')
        // `"` and `#`: 0x22 and 0x23.
        | (b & !1 == b'"')
        // `<` and `>`: 0x3c and 0x3e.
        | (b | 2 == b'>')
        // `[`, `\`, `]` (0x5b to 0x5d) and `{`, `|`, `}` (0x7b to 0x7d): the same with bit 5
        // cleared, which maps no other byte there.
        | ((b & !0x20).wrapping_sub(b'[') <= b']' - b'[')
        | (b == b'^')
        | (b == b'`')
}

impl fmt::Display for DownloadUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = self.expose();
        let base = strip_query(url);
        if base.len() == url.len() {
            f.write_str(base)
        } else {
            write!(f, "{base}?{REDACTED}")
        }
    }
}

impl fmt::Debug for DownloadUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DownloadUrl({self})")
    }
}

impl<'de> serde::Deserialize<'de> for DownloadUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // A `String`, kept: serde's `Cow<str>` would allocate one too, and `parse` another.
        DownloadUrl::from_string(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for DownloadUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.expose())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_path_and_query_bytes_refused_are_the_documented_ones() {
        let refused_visible = b"\"#<>[\\]^`{|}";
        for b in 0..=u8::MAX {
            let documented = !(b'!'..=b'~').contains(&b) || refused_visible.contains(&b);
            assert_eq!(super::refused(b), documented, "{b:#04x}");
        }
    }
}
