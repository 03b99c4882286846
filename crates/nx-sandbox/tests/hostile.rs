//! The hostile-server faults, read byte by byte off a raw TCP connection: heads and bodies that
//! trickle, trailers and `102 Processing` that never end, 1-byte chunks, 206 and 204, and that
//! each of them ends (hold limit, shutdown).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::Request;
use http_body_util::{BodyExt, Full};
use nx_sandbox::{DEMO_BUSINESS_PHONE, Fault, FaultRule, Route, Sandbox, SandboxConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const FILE: &[u8] = b"0123456789";

/// A sandbox holding [`FILE`] (and a 1000-byte file), with faults held at most `hold`.
async fn sandbox_with(hold: Duration) -> (Sandbox, String, String) {
    let sandbox = Sandbox::start(SandboxConfig::default().fault_hold_limit(hold)).unwrap();
    let small = upload(&sandbox, "text/plain", "a.txt", FILE).await;
    let big: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    let big = upload(&sandbox, "application/pdf", "b.pdf", &big).await;
    let small = download_path(&sandbox, &small).await;
    let big = download_path(&sandbox, &big).await;
    (sandbox, small, big)
}

async fn download_path(sandbox: &Sandbox, id: &str) -> String {
    let answer = get_media(sandbox, DEMO_BUSINESS_PHONE, id).await;
    path_of(answer.json()["data"]["url"].as_str().unwrap())
}

/// What came back on one connection.
struct Wire {
    bytes: Vec<u8>,
    /// How many reads returned data.
    reads: usize,
    /// Whether the sandbox closed the connection (otherwise the budget ran out).
    closed: bool,
    elapsed: Duration,
}

impl Wire {
    /// The sandbox closed the connection when the fault's hold limit passed.
    fn assert_cut_at(&self, hold: Duration) {
        assert!(self.closed, "closed by the sandbox");
        let (early, late) = (
            hold - Duration::from_millis(50),
            hold + Duration::from_secs(3),
        );
        assert!(
            (early..late).contains(&self.elapsed),
            "closed after {:?}; the hold limit is {hold:?}",
            self.elapsed
        );
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    /// The head (through the empty line) and what follows it.
    fn split(&self) -> (String, &[u8]) {
        let end = self
            .bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no end of head in {:?}", self.text()))
            + 4;
        (
            String::from_utf8_lossy(&self.bytes[..end]).into_owned(),
            &self.bytes[end..],
        )
    }
}

/// Writes `request` on a new connection and reads until the sandbox closes it or `budget`
/// passes.
async fn exchange(addr: SocketAddr, request: &[u8], budget: Duration) -> Wire {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let started = Instant::now();
    let mut wire = Wire {
        bytes: Vec::new(),
        reads: 0,
        closed: false,
        elapsed: Duration::ZERO,
    };
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + budget;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                wire.closed = true;
                break;
            }
            Ok(Ok(n)) => {
                wire.bytes.extend_from_slice(&buf[..n]);
                wire.reads += 1;
            }
            Err(_) => break,
        }
    }
    wire.elapsed = started.elapsed();
    wire
}

/// Puts `fault` on every download, then GETs `path` on a raw connection.
async fn download_under(sandbox: &Sandbox, fault: Fault, path: &str, budget: Duration) -> Wire {
    sandbox
        .faults()
        .add(FaultRule::new(Route::OssDownload, fault));
    exchange(sandbox.addr(), &get_request(path), budget).await
}

fn get_request(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").into_bytes()
}

/// A request as HTTP/1.1 bytes (with `Content-Length`).
async fn to_wire(request: Request<Full<Bytes>>) -> Vec<u8> {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(never) => match never {},
    };
    let mut out = format!("{} {} HTTP/1.1\r\n", parts.method, parts.uri).into_bytes();
    for (name, value) in &parts.headers {
        out.extend_from_slice(format!("{name}: ").as_bytes());
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(&body);
    out
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.split("\r\n").skip(1).find_map(|line| {
        let (n, v) = line.split_once(": ")?;
        n.eq_ignore_ascii_case(name).then_some(v)
    })
}

#[tokio::test]
async fn header_drip_trickles_the_head_then_sends_the_body_and_closes() {
    let (sandbox, small, _) = sandbox_with(Duration::from_secs(60)).await;
    let interval = Duration::from_millis(15);
    let wire = download_under(
        &sandbox,
        Fault::HeaderDrip(interval),
        &small,
        Duration::from_secs(30),
    )
    .await;
    assert!(wire.closed, "closed after the answer");
    let (head, body) = wire.split();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(header(&head, "content-length"), Some("10"));
    assert_eq!(header(&head, "content-type"), Some("text/plain"));
    assert_eq!(header(&head, "connection"), Some("close"));
    assert!(header(&head, "date").is_some());
    assert_eq!(body, FILE);
    // One byte per interval: the head took its length in intervals, in many reads.
    let floor = interval * (head.len() as u32 - 1);
    assert!(wire.elapsed >= floor, "{:?} < {floor:?}", wire.elapsed);
    // (Reads coalesce bytes on a loaded machine; the time floor above is what proves the pace.)
    assert!(wire.reads >= 10, "{} reads", wire.reads);
    let entry = sandbox.log().last().unwrap();
    assert_eq!(
        (entry.fault, entry.status),
        (Some("header-drip"), Some(200))
    );
}

#[tokio::test]
async fn header_drip_on_an_api_route_is_a_valid_answer_for_a_patient_client() {
    let (sandbox, _, _) = sandbox_with(Duration::from_secs(60)).await;
    let id = upload(&sandbox, "text/plain", "c.txt", b"c").await;
    sandbox.faults().add(FaultRule::new(
        Route::GetMedia,
        Fault::HeaderDrip(Duration::from_millis(2)),
    ));
    let started = Instant::now();
    let answer = get_media(&sandbox, DEMO_BUSINESS_PHONE, &id).await;
    assert_eq!(answer.code(), 0);
    assert_eq!(answer.json()["data"]["file_name"], "c.txt");
    assert!(started.elapsed() >= Duration::from_millis(2 * 100));
}

#[tokio::test]
async fn endless_trailers_follow_the_last_chunk_until_the_hold_limit() {
    let hold = Duration::from_millis(800);
    let (sandbox, small, _) = sandbox_with(hold).await;
    let wire = download_under(
        &sandbox,
        Fault::EndlessTrailers(Duration::from_millis(5)),
        &small,
        Duration::from_secs(10),
    )
    .await;
    wire.assert_cut_at(hold);
    let (head, rest) = wire.split();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(header(&head, "transfer-encoding"), Some("chunked"));
    assert_eq!(header(&head, "content-length"), None);
    let trailers = rest
        .strip_prefix(b"a\r\n0123456789\r\n0\r\n".as_slice())
        .unwrap_or_else(|| panic!("{:?}", String::from_utf8_lossy(rest)));
    // Whole 64-byte lines, numbered from 1, and never the empty line that would end them.
    let lines: Vec<&[u8]> = trailers.chunks(64).collect();
    assert!(lines.len() >= 10, "{} lines", lines.len());
    for (i, line) in lines.iter().enumerate().take(lines.len() - 1) {
        let start = format!("x-sandbox-trailer-{}: aa", i + 1);
        assert!(
            line.starts_with(start.as_bytes()),
            "{:?}",
            String::from_utf8_lossy(line)
        );
        assert!(line.ends_with(b"aa\r\n"));
    }
    assert!(!trailers.windows(4).any(|w| w == b"\r\n\r\n"));
}

#[tokio::test]
async fn endless_processing_sends_only_102_heads_until_the_hold_limit() {
    let hold = Duration::from_millis(600);
    let (sandbox, _, _) = sandbox_with(hold).await;
    let id = upload(&sandbox, "text/plain", "c.txt", b"c").await;
    sandbox.faults().add(FaultRule::new(
        Route::DeleteMedia,
        Fault::EndlessProcessing(Duration::from_millis(20)),
    ));
    let signed = Signed::new(&sandbox, "deleteMedia");
    let request = to_wire(signed.json(
        sandbox.addr(),
        "/api/wa/deleteMedia",
        &media_body(DEMO_BUSINESS_PHONE, &id),
    ))
    .await;
    let wire = exchange(sandbox.addr(), &request, Duration::from_secs(10)).await;
    wire.assert_cut_at(hold);
    let interim = b"HTTP/1.1 102 Processing\r\n\r\n";
    assert_eq!(wire.bytes.len() % interim.len(), 0, "{}", wire.text());
    let count = wire.bytes.len() / interim.len();
    assert!(count >= 5, "{count} heads");
    assert!(wire.bytes.chunks(interim.len()).all(|c| c == interim));
    // The request was never handled: the media is still there.
    assert_eq!(
        get_media(&sandbox, DEMO_BUSINESS_PHONE, &id).await.code(),
        0
    );
}

#[tokio::test]
async fn tiny_chunks_are_one_byte_each_the_answer_then_spaces() {
    let hold = Duration::from_millis(500);
    let (sandbox, small, _) = sandbox_with(hold).await;
    let wire = download_under(
        &sandbox,
        Fault::TinyChunks(Duration::ZERO),
        &small,
        Duration::from_secs(10),
    )
    .await;
    wire.assert_cut_at(hold);
    let (head, mut rest) = wire.split();
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(header(&head, "transfer-encoding"), Some("chunked"));
    assert_eq!(header(&head, "content-length"), None);
    let mut decoded = Vec::new();
    while let Some(chunk) = rest.get(..6) {
        assert_eq!(
            (&chunk[..3], &chunk[4..]),
            (b"1\r\n".as_slice(), b"\r\n".as_slice()),
            "{:?}",
            String::from_utf8_lossy(chunk)
        );
        decoded.push(chunk[3]);
        rest = &rest[6..];
    }
    // The connection is cut mid-stream: at most a partial chunk, never the last (`0`) chunk.
    assert!(rest.len() < 6 && !rest.starts_with(b"0\r\n"));
    assert!(decoded.len() > 100, "{} chunks", decoded.len());
    assert_eq!(&decoded[..10], FILE);
    assert!(decoded[10..].iter().all(|&b| b == b' '));
}

#[tokio::test]
async fn partial_content_is_a_clean_206_with_the_first_bytes() {
    let (sandbox, small, big) = sandbox_with(Duration::from_secs(60)).await;
    sandbox
        .faults()
        .add(FaultRule::new(Route::OssDownload, Fault::PartialContent));
    let big_bytes: Vec<u8> = (0..1000u32).map(|i| (i % 251) as u8).collect();
    for (path, range, body) in [
        (&big, "bytes 0-99/1000", &big_bytes[..100]),
        (&small, "bytes 0-4/10", &FILE[..5]),
    ] {
        let wire = exchange(sandbox.addr(), &get_request(path), Duration::from_secs(10)).await;
        assert!(wire.closed);
        let (head, rest) = wire.split();
        assert!(
            head.starts_with("HTTP/1.1 206 Partial Content\r\n"),
            "{head}"
        );
        assert_eq!(header(&head, "content-range"), Some(range));
        assert_eq!(
            header(&head, "content-length"),
            Some(body.len().to_string().as_str())
        );
        assert_eq!(rest, body);
    }
}

#[tokio::test]
async fn no_content_is_a_204_without_a_body_after_handling() {
    let (sandbox, small, _) = sandbox_with(Duration::from_secs(60)).await;
    sandbox
        .faults()
        .add(FaultRule::new(Route::OssDownload, Fault::NoContent).first(1));
    let wire = exchange(
        sandbox.addr(),
        &get_request(&small),
        Duration::from_secs(10),
    )
    .await;
    let (head, rest) = wire.split();
    assert!(head.starts_with("HTTP/1.1 204 No Content\r\n"), "{head}");
    assert_eq!(header(&head, "content-length"), None);
    assert_eq!(header(&head, "transfer-encoding"), None);
    assert!(rest.is_empty());

    // On deleteMedia the delete happens: the next one finds nothing.
    let id = upload(&sandbox, "text/plain", "d.txt", b"d").await;
    sandbox
        .faults()
        .add(FaultRule::new(Route::DeleteMedia, Fault::NoContent).first(1));
    let signed = Signed::new(&sandbox, "deleteMedia");
    let answer = send(
        sandbox.addr(),
        signed.json(
            sandbox.addr(),
            "/api/wa/deleteMedia",
            &media_body(DEMO_BUSINESS_PHONE, &id),
        ),
    )
    .await
    .unwrap();
    assert_eq!(answer.status.as_u16(), 204);
    assert!(answer.body.is_empty());
    assert_eq!(
        delete_media(&sandbox, DEMO_BUSINESS_PHONE, &id)
            .await
            .code(),
        -1
    );
}

#[tokio::test]
async fn a_503_whose_body_trickles() {
    let (sandbox, small, _) = sandbox_with(Duration::from_secs(60)).await;
    let f = sandbox.faults();
    let plain = f.add(FaultRule::new(
        Route::OssDownload,
        Fault::ServiceUnavailable,
    ));
    let whole = exchange(
        sandbox.addr(),
        &get_request(&small),
        Duration::from_secs(10),
    )
    .await;
    f.remove(plain);
    let interval = Duration::from_millis(3);
    f.add(FaultRule::new(
        Route::OssDownload,
        Fault::ServiceUnavailableDrip(interval),
    ));
    let wire = exchange(
        sandbox.addr(),
        &get_request(&small),
        Duration::from_secs(30),
    )
    .await;
    let (head, body) = wire.split();
    assert!(
        head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{head}"
    );
    let (_, page) = whole.split();
    assert_eq!(body, page, "the same page, byte for byte");
    assert_eq!(
        header(&head, "content-length"),
        Some(page.len().to_string().as_str())
    );
    assert!(wire.elapsed >= interval * page.len() as u32);
    assert!(wire.reads >= 10, "{} reads", wire.reads);
}

#[tokio::test]
async fn a_body_drip_is_cut_at_the_hold_limit() {
    let hold = Duration::from_millis(500);
    let (sandbox, _, big) = sandbox_with(hold).await;
    let drip = Fault::Drip(Duration::from_millis(50));
    let wire = download_under(&sandbox, drip, &big, Duration::from_secs(10)).await;
    wire.assert_cut_at(hold);
    let (head, body) = wire.split();
    assert_eq!(header(&head, "content-length"), Some("1000"));
    assert!((3..=12).contains(&body.len()), "{} bytes", body.len());
}

#[tokio::test]
async fn shutdown_ends_every_hand_written_fault_at_once() {
    let (sandbox, small, _) = sandbox_with(Duration::from_secs(300)).await;
    let addr = sandbox.addr();
    sandbox.faults().add(
        FaultRule::new(
            Route::OssDownload,
            Fault::EndlessProcessing(Duration::from_millis(50)),
        )
        .first(1),
    );
    sandbox.faults().add(FaultRule::new(
        Route::OssDownload,
        Fault::HeaderDrip(Duration::from_secs(10)),
    ));
    let request = get_request(&small);
    let (a, b) = (request.clone(), request);
    let endless = tokio::spawn(async move { exchange(addr, &a, Duration::from_secs(20)).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let dripping = tokio::spawn(async move { exchange(addr, &b, Duration::from_secs(20)).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    drop(sandbox);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    for task in [endless, dripping] {
        let wire = task.await.unwrap();
        assert!(wire.closed, "cut by shutdown");
        assert!(wire.elapsed < Duration::from_secs(5), "{:?}", wire.elapsed);
    }
}

#[tokio::test]
async fn a_hand_written_fault_ends_when_the_client_closes_its_side() {
    let (sandbox, small, _) = sandbox_with(Duration::from_secs(60)).await;
    sandbox.faults().add(FaultRule::new(
        Route::OssDownload,
        Fault::EndlessProcessing(Duration::from_millis(20)),
    ));
    let mut stream = TcpStream::connect(sandbox.addr()).await.unwrap();
    stream.write_all(&get_request(&small)).await.unwrap();
    let mut buf = [0u8; 27];
    stream.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"HTTP/1.1 102 Processing\r\n\r\n");
    // The client is done sending: the sandbox sees the end of its input and closes at once
    // instead of writing 102s for the 60 s hold limit.
    stream.shutdown().await.unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest))
        .await
        .expect("closed by the sandbox")
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}
