//! The minimal loopback server both sides of a comparison talk to, so the server's cost is the
//! same for both. It verifies nothing:
//!
//! - `POST` anywhere: reads and discards the body, answers a fixed getMedia success envelope
//!   ([`MEDIA_ENVELOPE`]), or [`UPLOAD_ENVELOPE`] when the path ends in `/uploadMedia`;
//! - `GET /file/<n>`: streams `n` bytes of the repeated pattern ([`crate::fixtures::pattern_chunk`])
//!   with a `Content-Length`.
//!
//! It runs in a child process (`nx-bench serve`), so the client's CPU time and peak memory are
//! measured without it.

use std::convert::Infallible;
use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;

use crate::fixtures::pattern_chunk;

/// What the server answers to getMedia (and any other `POST`).
pub const MEDIA_ENVELOPE: &str = r#"{"code":0,"message":"Request successful","data":{"mime_type":"image/jpeg","file_name":"photo.jpg","url":"http://127.0.0.1:9/oss/fd81acff-eea8-4d9d-acc9-6c62904d6615?Expires=4102444800&OSSAccessKeyId=SANDBOXOSSKEYID&Signature=Zm9vYmFyYmF6cXV4"}}"#;
/// What the server answers to uploadMedia.
pub const UPLOAD_ENVELOPE: &str = r#"{"code":0,"message":"ok","data":{"id":"x"}}"#;

/// A body of `remaining` bytes made of `chunk` repeated (one frame per chunk, no copy).
#[derive(Debug)]
pub struct Answer {
    chunk: Bytes,
    remaining: u64,
}

impl Answer {
    /// Exactly these bytes.
    pub fn full(bytes: Bytes) -> Self {
        let remaining = bytes.len() as u64;
        Self {
            chunk: bytes,
            remaining,
        }
    }

    /// `len` bytes of `chunk` repeated.
    pub fn repeat(chunk: Bytes, len: u64) -> Self {
        Self {
            chunk,
            remaining: len,
        }
    }
}

impl Body for Answer {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 || self.chunk.is_empty() {
            return Poll::Ready(None);
        }
        let n = self.remaining.min(self.chunk.len() as u64) as usize;
        self.remaining -= n as u64;
        Poll::Ready(Some(Ok(Frame::data(self.chunk.slice(..n)))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

fn answer(status: StatusCode, content_type: &str, body: Answer) -> Response<Answer> {
    let len = body.remaining;
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if let Ok(value) = http::HeaderValue::from_str(content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(header::CONTENT_LENGTH, http::HeaderValue::from(len));
    response
}

async fn handle(
    request: Request<Incoming>,
    pattern: Bytes,
) -> Result<Response<Answer>, Infallible> {
    let path = request.uri().path().to_owned();
    if request.method() == Method::GET {
        let Some(len) = path.strip_prefix("/file/").and_then(|n| n.parse().ok()) else {
            return Ok(answer(
                StatusCode::NOT_FOUND,
                "text/plain",
                Answer::full(Bytes::from_static(b"not found")),
            ));
        };
        return Ok(answer(
            StatusCode::OK,
            "application/octet-stream",
            Answer::repeat(pattern, len),
        ));
    }
    let mut body = request.into_body();
    while let Some(frame) = body.frame().await {
        if frame.is_err() {
            return Ok(answer(
                StatusCode::BAD_REQUEST,
                "text/plain",
                Answer::full(Bytes::from_static(b"broken body")),
            ));
        }
    }
    let envelope = if path.ends_with("/uploadMedia") {
        UPLOAD_ENVELOPE
    } else {
        MEDIA_ENVELOPE
    };
    Ok(answer(
        StatusCode::OK,
        "application/json;charset=UTF-8",
        Answer::full(Bytes::from_static(envelope.as_bytes())),
    ))
}

/// Serves `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener) {
    let pattern = pattern_chunk();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let pattern = pattern.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| handle(request, pattern.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The body of `nx-bench serve`: binds a free loopback port, prints `listening <addr>`, serves
/// on `workers` threads, and exits when its standard input closes (when the parent ends).
pub fn run_child(workers: usize) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let mut stdout = std::io::stdout();
        writeln!(stdout, "listening {addr}")?;
        stdout.flush()?;
        std::thread::spawn(|| {
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
            std::process::exit(0);
        });
        serve(listener).await;
        Ok(())
    })
}

/// A running `nx-bench serve` child; ended when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    addr: SocketAddr,
}

impl ServerProcess {
    /// Starts `exe serve --workers <workers>` and waits for its address.
    pub fn spawn(exe: &Path, workers: usize) -> Result<Self, String> {
        let mut child = Command::new(exe)
            .args(["serve", "--workers", &workers.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting {} serve: {e}", exe.display()))?;
        let mut line = String::new();
        let read = child
            .stdout
            .take()
            .map(|out| BufReader::new(out).read_line(&mut line));
        let addr = match (read, line.trim().strip_prefix("listening ")) {
            (Some(Ok(_)), Some(addr)) => addr.parse().ok(),
            _ => None,
        };
        let Some(addr) = addr else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("the server child said `{}`", line.trim()));
        };
        Ok(Self { child, addr })
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
