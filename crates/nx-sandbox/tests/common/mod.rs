//! Test helpers: a raw HTTP/1 client, hand-computed NXCloud signatures, multipart bodies and a
//! webhook receiver on 127.0.0.1. Nothing here uses the SDK's own client or signer.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use md5::{Digest, Md5};
use nx_sandbox::{DEMO_ACCESS_KEY, DEMO_ACCESS_SECRET, DEMO_BUSINESS_PHONE, Sandbox};
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// An answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// The NXCloud envelope code.
    pub fn code(&self) -> i64 {
        assert_eq!(self.status, StatusCode::OK, "envelope answers are HTTP 200");
        self.json()["code"].as_i64().expect("code is an integer")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Sends one request on a new connection and reads the whole answer.
pub async fn send(addr: SocketAddr, request: Request<Full<Bytes>>) -> Result<Answer, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let conn = tokio::spawn(conn);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    conn.abort();
    Ok(Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

pub async fn get(addr: SocketAddr, uri: &str) -> Answer {
    let request = Request::get(uri)
        .header("host", addr.to_string())
        .body(Full::new(Bytes::new()))
        .unwrap();
    send(addr, request).await.unwrap()
}

/// Writes raw bytes and reads until the server closes (or 5 s pass).
pub async fn raw(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    out
}

/// The NXCloud signature, computed here by hand: the four headers in ASCII order, then
/// `&body=` for a non-empty JSON body, then `&accessSecret=`.
pub fn md5_sign(
    key: &str,
    action: &str,
    biz: &str,
    ts: &str,
    body: Option<&[u8]>,
    secret: &str,
) -> String {
    let mut s = format!("accessKey={key}&action={action}&bizType={biz}&ts={ts}").into_bytes();
    if let Some(body) = body.filter(|b| !b.is_empty()) {
        s.extend_from_slice(b"&body=");
        s.extend_from_slice(body);
    }
    s.extend_from_slice(b"&accessSecret=");
    s.extend_from_slice(secret.as_bytes());
    hex::encode(Md5::digest(&s))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Common headers of a signed NXCloud request; each may be overridden or removed.
#[derive(Clone)]
pub struct Signed {
    pub key: String,
    pub secret: String,
    pub biz: String,
    pub action: String,
    pub ts: String,
    pub content_type: Option<String>,
    pub sign: Option<String>,
    pub omit: Vec<&'static str>,
    pub extra: Vec<(&'static str, String)>,
}

impl Signed {
    pub fn new(sandbox: &Sandbox, action: &str) -> Self {
        Self {
            key: DEMO_ACCESS_KEY.into(),
            secret: DEMO_ACCESS_SECRET.into(),
            biz: "2".into(),
            action: action.into(),
            ts: sandbox.now_millis().to_string(),
            content_type: Some("application/json".into()),
            sign: None,
            omit: Vec::new(),
            extra: Vec::new(),
        }
    }

    /// A JSON request whose sign covers `body`.
    pub fn json(&self, addr: SocketAddr, path: &str, body: &[u8]) -> Request<Full<Bytes>> {
        let sign = self.sign.clone().unwrap_or_else(|| {
            md5_sign(
                &self.key,
                &self.action,
                &self.biz,
                &self.ts,
                Some(body),
                &self.secret,
            )
        });
        self.build(addr, path, sign, Bytes::copy_from_slice(body))
    }

    /// A multipart request signed without its body.
    pub fn multipart(&self, addr: SocketAddr, body: Vec<u8>) -> Request<Full<Bytes>> {
        let sign = self.sign.clone().unwrap_or_else(|| {
            md5_sign(
                &self.key,
                &self.action,
                &self.biz,
                &self.ts,
                None,
                &self.secret,
            )
        });
        self.build(addr, "/api/wa/uploadMedia", sign, Bytes::from(body))
    }

    fn build(
        &self,
        addr: SocketAddr,
        path: &str,
        sign: String,
        body: Bytes,
    ) -> Request<Full<Bytes>> {
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header("host", addr.to_string());
        for (name, value) in [
            ("accessKey", &self.key),
            ("ts", &self.ts),
            ("bizType", &self.biz),
            ("action", &self.action),
            ("sign", &sign),
        ] {
            if !self.omit.contains(&name) {
                builder = builder.header(name, value.as_str());
            }
        }
        if let Some(ct) = &self.content_type {
            builder = builder.header("content-type", ct.as_str());
        }
        for (name, value) in &self.extra {
            builder = builder.header(*name, value.as_str());
        }
        builder.body(Full::new(body)).unwrap()
    }
}

/// `{"business_phone":..,"Media-ID":..,"messaging_product":"whatsapp"}`.
pub fn media_body(phone: &str, id: &str) -> Vec<u8> {
    format!(r#"{{"business_phone":"{phone}","Media-ID":"{id}","messaging_product":"whatsapp"}}"#)
        .into_bytes()
}

pub const BOUNDARY: &str = "test-boundary-7MA4YWxkTrZu0gW";

/// A multipart form of text fields and an optional file, in the order given.
pub fn form(parts: &[(&str, &str)], file: Option<(&str, &str, &[u8])>) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in parts {
        out.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    if let Some((name, mime, bytes)) = file {
        out.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: {mime}\r\n\r\n"
            )
            .as_bytes(),
        );
        out.extend_from_slice(bytes);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    out
}

pub fn multipart_type() -> String {
    format!("multipart/form-data; boundary={BOUNDARY}")
}

/// The standard upload form.
pub fn upload_form(mime: &str, name: &str, bytes: &[u8]) -> Vec<u8> {
    form(
        &[
            ("messaging_product", "whatsapp"),
            ("business_phone", DEMO_BUSINESS_PHONE),
            ("type", mime),
        ],
        Some((name, mime, bytes)),
    )
}

/// Uploads through uploadMedia; the media id.
pub async fn upload(sandbox: &Sandbox, mime: &str, name: &str, bytes: &[u8]) -> String {
    let mut signed = Signed::new(sandbox, "uploadMedia");
    signed.content_type = Some(multipart_type());
    let answer = send(
        sandbox.addr(),
        signed.multipart(sandbox.addr(), upload_form(mime, name, bytes)),
    )
    .await
    .unwrap();
    let json = answer.json();
    assert_eq!(json["code"], 0, "{json}");
    assert_eq!(json["message"], "Request successful");
    json["data"]["id"].as_str().unwrap().to_owned()
}

/// getMedia; the whole answer.
pub async fn get_media(sandbox: &Sandbox, phone: &str, id: &str) -> Answer {
    let signed = Signed::new(sandbox, "getMedia");
    send(
        sandbox.addr(),
        signed.json(sandbox.addr(), "/api/wa/getMedia", &media_body(phone, id)),
    )
    .await
    .unwrap()
}

/// deleteMedia; the whole answer.
pub async fn delete_media(sandbox: &Sandbox, phone: &str, id: &str) -> Answer {
    let signed = Signed::new(sandbox, "deleteMedia");
    send(
        sandbox.addr(),
        signed.json(
            sandbox.addr(),
            "/api/wa/deleteMedia",
            &media_body(phone, id),
        ),
    )
    .await
    .unwrap()
}

/// The path and query of an absolute URL on the sandbox.
pub fn path_of(url: &str) -> String {
    let rest = url.strip_prefix("http://").unwrap();
    rest[rest.find('/').unwrap()..].to_owned()
}

/// A request a receiver got.
#[derive(Debug)]
pub struct Received {
    pub path: String,
    pub content_type: Option<String>,
    pub body: Bytes,
}

/// A webhook receiver on 127.0.0.1 answering 200; stops when dropped.
pub struct Receiver {
    pub url: String,
    pub rx: mpsc::UnboundedReceiver<Received>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    pub async fn start(status: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook?secret=q", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let tx = tx.clone();
                conns.spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let tx = tx.clone();
                            async move {
                                let path = req.uri().path().to_owned();
                                let content_type = req
                                    .headers()
                                    .get("content-type")
                                    .and_then(|v| v.to_str().ok())
                                    .map(str::to_owned);
                                let body = req.into_body().collect().await?.to_bytes();
                                let _ = tx.send(Received {
                                    path,
                                    content_type,
                                    body,
                                });
                                let mut response =
                                    hyper::Response::new(Full::new(Bytes::from_static(b"ok")));
                                *response.status_mut() = StatusCode::from_u16(status).unwrap();
                                Ok::<_, hyper::Error>(response)
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self { url, rx, task }
    }

    /// The next request, within 5 s.
    pub async fn next(&mut self) -> Received {
        tokio::time::timeout(Duration::from_secs(5), self.rx.recv())
            .await
            .expect("a request arrives within 5 s")
            .expect("the receiver is running")
    }
}
