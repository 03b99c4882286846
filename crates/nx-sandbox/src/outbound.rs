//! The sandbox's only outgoing traffic: webhook and callback POSTs, to loopback addresses only.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use crate::loopback::LoopbackUrl;

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
