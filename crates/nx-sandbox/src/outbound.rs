//! The sandbox's only outgoing traffic: webhook and callback POSTs, to loopback addresses only.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, Uri, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use crate::config::{SandboxError, strip_query};

/// How long one webhook delivery may take (connect, send, read the status).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// How much of a webhook receiver's answer body is read (and thrown away).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// What became of a webhook or callback POST.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Delivery {
    /// No URL is configured: nothing was sent.
    NotConfigured,
    /// The receiver answered with this HTTP status.
    Delivered {
        /// The status.
        status: u16,
    },
    /// Nothing usable came back (refused, timed out, broken answer).
    Failed(String),
}

impl Delivery {
    /// Whether the receiver answered 2xx.
    pub fn is_success(&self) -> bool {
        matches!(self, Delivery::Delivered { status } if (200..300).contains(status))
    }
}

/// An optional webhook or callback URL, parsed as a [`LoopbackUrl`]; a bad one is a
/// configuration error.
pub(crate) fn parse_loopback(url: Option<&str>) -> Result<Option<LoopbackUrl>, SandboxError> {
    url.map(LoopbackUrl::parse)
        .transpose()
        .map_err(SandboxError::Config)
}

/// An `http://` URL on a loopback address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LoopbackUrl {
    addr: SocketAddr,
    authority: String,
    path_and_query: String,
}

impl LoopbackUrl {
    pub(crate) fn parse(url: &str) -> Result<Self, String> {
        let shown = strip_query(url);
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

/// POSTs a JSON body; returns the outcome and how long it took.
pub(crate) async fn post_json(url: &LoopbackUrl, body: Bytes) -> (Delivery, Duration) {
    let started = Instant::now();
    let outcome = tokio::time::timeout(DELIVERY_TIMEOUT, post(url, body))
        .await
        .unwrap_or_else(|_| Delivery::Failed("timed out".into()));
    (outcome, started.elapsed())
}

async fn post(url: &LoopbackUrl, body: Bytes) -> Delivery {
    let stream = match tokio::net::TcpStream::connect(url.addr).await {
        Ok(s) => s,
        Err(e) => return Delivery::Failed(format!("connect: {e}")),
    };
    let (mut sender, conn) =
        match hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream)).await {
            Ok(x) => x,
            Err(e) => return Delivery::Failed(format!("handshake: {e}")),
        };
    let conn = tokio::spawn(conn);
    let len = body.len();
    let request = Request::builder()
        .method(Method::POST)
        .uri(url.path_and_query.as_str())
        .header(header::HOST, url.authority.as_str())
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, len)
        .header(header::USER_AGENT, "nx-sandbox")
        .body(Full::new(body));
    let request = match request {
        Ok(r) => r,
        Err(e) => return Delivery::Failed(format!("request: {e}")),
    };
    let outcome = match sender.send_request(request).await {
        Ok(response) => {
            let status = response.status().as_u16();
            // Read a bounded amount of the answer so the receiver is not cut mid-write.
            let mut body = response.into_body();
            let mut read = 0usize;
            while read < MAX_ANSWER_BYTES {
                match body.frame().await {
                    Some(Ok(frame)) => read += frame.data_ref().map_or(0, Bytes::len),
                    _ => break,
                }
            }
            Delivery::Delivered { status }
        }
        Err(e) => Delivery::Failed(format!("send: {e}")),
    };
    conn.abort();
    outcome
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
    }
}
