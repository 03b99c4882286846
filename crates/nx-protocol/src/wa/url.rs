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
#[derive(Clone, PartialEq, Eq)]
pub struct DownloadUrl {
    url: String,
    expires_at: Option<u64>,
}

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
        let expires_at = uri.query().and_then(|q| {
            q.split('&')
                .filter_map(|pair| pair.split_once('='))
                .find(|(k, _)| *k == "Expires")
                .and_then(|(_, v)| v.parse().ok())
        });
        Ok(Self {
            url: url.to_owned(),
            expires_at,
        })
    }

    /// The full URL, query included. It is a secret until it expires: do not log it.
    pub fn expose(&self) -> &str {
        &self.url
    }

    /// Whether the URL is `https`.
    pub fn is_https(&self) -> bool {
        self.url
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
        self.url.parse::<Uri>().ok().is_some_and(|uri| {
            let host = uri.host().unwrap_or_default();
            let host = host
                .strip_prefix('[')
                .and_then(|v6| v6.strip_suffix(']'))
                .unwrap_or(host);
            crate::operation::is_loopback_host(host)
        })
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

impl fmt::Display for DownloadUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let base = strip_query(&self.url);
        if base.len() == self.url.len() {
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
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        DownloadUrl::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for DownloadUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.url)
    }
}
