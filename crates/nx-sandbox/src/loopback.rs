//! Webhook and callback URLs: `http://` on a loopback address only, so the sandbox never sends
//! anything off this machine.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use http::Uri;

use crate::text::{shown_url, strip_query};

/// An `http://` URL on a loopback address, without user info. `Debug` leaves out the query
/// (which may carry a token).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct LoopbackUrl {
    pub(crate) addr: SocketAddr,
    pub(crate) authority: String,
    pub(crate) path_and_query: String,
}

impl LoopbackUrl {
    pub(crate) fn parse(url: &str) -> Result<Self, String> {
        let shown = shown_url(url);
        let uri: Uri = url
            .parse()
            .map_err(|_| format!("`{shown}` is not a valid URL"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!(
                "`{shown}`: webhook URLs must use http:// (the sandbox only talks to this machine)"
            ));
        }
        let host = uri.host().unwrap_or("");
        let ip = if host.eq_ignore_ascii_case("localhost") {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .map_err(|_| format!("`{shown}`: the host must be 127.0.0.1, [::1] or localhost"))?
        };
        if !ip.is_loopback() {
            return Err(format!(
                "`{shown}`: the sandbox only sends to loopback addresses (127.0.0.0/8, [::1])"
            ));
        }
        let port = uri.port_u16().unwrap_or(80);
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_default();
        if authority.contains('@') {
            // It would go out in `Host`, which has no room for credentials.
            return Err(format!(
                "`{shown}`: user info (user:password@) in a webhook URL is not supported"
            ));
        }
        let path_and_query = uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/".to_owned());
        Ok(Self {
            addr: SocketAddr::new(ip, port),
            authority,
            path_and_query,
        })
    }

    /// The path without the query, for the log.
    pub(crate) fn path(&self) -> &str {
        strip_query(&self.path_and_query)
    }
}

impl std::fmt::Debug for LoopbackUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoopbackUrl")
            .field("addr", &self.addr)
            .field("path", &self.path())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_http() {
        for ok in [
            "http://127.0.0.1:9/hook",
            "http://127.1.2.3/",
            "http://localhost:8080/a?b=c",
            "http://[::1]:80/x",
        ] {
            assert!(LoopbackUrl::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "https://127.0.0.1/hook",
            "http://10.0.0.1/hook",
            "http://example.com/hook",
            "http://192.168.1.1/",
            "127.0.0.1:80/hook",
            "",
            "http://",
        ] {
            assert!(LoopbackUrl::parse(bad).is_err(), "{bad}");
        }
        let url = LoopbackUrl::parse("http://127.0.0.1:9/hook?token=secret").unwrap();
        assert_eq!(url.path(), "/hook");
        assert!(!format!("{url:?}").contains("secret"));
        let error = LoopbackUrl::parse("http://user:secret@127.0.0.1:9/hook").unwrap_err();
        assert!(error.contains("user info"), "{error}");
        assert!(!error.contains("secret"), "{error}");
        let error = LoopbackUrl::parse("http://user:secret@10.0.0.1/hook?t=secret").unwrap_err();
        assert!(!error.contains("secret"), "{error}");
    }
}
