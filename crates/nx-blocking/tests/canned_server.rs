//! nx-blocking against a tiny hand-written HTTP/1.1 server on 127.0.0.1 that answers canned
//! bytes: what ureq puts on the wire, and how its failures come back.
//!
//! Each server handles a fixed list of connections (one request each, answered with
//! `Connection: close`), then stops; it also stops by itself after a few seconds.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nx_blocking::{
    Client, DownloadOptions, Error, IntegrityError, MediaInfo, ResponseError, RetryPolicy,
    Sha256Digest, UploadSource,
};
use nx_protocol::sign::{SignableBody, SignableRequest, sign};
use nx_protocol::wa::DownloadUrl;
use nx_protocol::{AccessSecret, ApiCode};

const KEY: &str = "fme2na3kdi3ki";
const SECRET: &str = "abciiiko2k3";
const PHONE: &str = "8615800001795";
const MEDIA_ID: &str = "fd81acff-eea8-4d9d-acc9-6c62904d6615";
/// How long a test server waits for its connections before it stops by itself.
const SERVER_LIFETIME: Duration = Duration::from_secs(10);

/// One request as the server read it.
#[derive(Clone, Debug)]
struct Recorded {
    method: String,
    target: String,
    /// Header names lower-cased, in arrival order.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

type Handler = Box<dyn FnOnce(&Recorded, &mut TcpStream) + Send>;

struct Server {
    addr: SocketAddr,
    listener: Option<TcpListener>,
    requests: Arc<Mutex<Vec<Recorded>>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn bind() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        Self {
            addr: listener.local_addr().unwrap(),
            listener: Some(listener),
            requests: Arc::default(),
            thread: None,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Serves one connection per handler, in order, then stops.
    fn serve(mut self, handlers: Vec<Handler>) -> Self {
        let listener = self.listener.take().unwrap();
        listener.set_nonblocking(true).unwrap();
        let requests = self.requests.clone();
        self.thread = Some(std::thread::spawn(move || {
            let deadline = Instant::now() + SERVER_LIFETIME;
            let mut handlers = handlers.into_iter();
            let mut next = handlers.next();
            while let Some(handler) = next.take() {
                if Instant::now() > deadline {
                    return;
                }
                let mut stream = match listener.accept() {
                    Ok((stream, _)) => stream,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(2));
                        next = Some(handler);
                        continue;
                    }
                    Err(_) => return,
                };
                stream.set_nonblocking(false).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                match read_request(&mut stream) {
                    Some(request) => {
                        requests.lock().unwrap().push(request.clone());
                        handler(&request, &mut stream);
                        let _ = stream.flush();
                        next = handlers.next();
                    }
                    // The client gave up before its request was complete: keep this handler
                    // for the next connection.
                    None => next = Some(handler),
                }
            }
        }));
        self
    }

    /// Waits for the server to stop and returns what it received.
    fn finish(mut self) -> Vec<Recorded> {
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
        self.requests.lock().unwrap().clone()
    }
}

fn read_request(stream: &mut TcpStream) -> Option<Recorded> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map_or(0, |(_, v)| v.parse().unwrap());
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    Some(Recorded {
        method,
        target,
        headers,
        body,
    })
}

/// A complete answer: the status line, `headers`, `Content-Length` (unless given) and
/// `Connection: close`, then `body`.
fn answer(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    if !headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-length"))
    {
        out.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

fn reply(
    status: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: Vec<u8>,
) -> Handler {
    Box::new(move |_, stream| {
        let _ = stream.write_all(&answer(status, headers, &body));
    })
}

fn json(body: String) -> Handler {
    Box::new(move |_, stream| {
        let _ = stream.write_all(&answer(
            "200 OK",
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        ));
    })
}

fn media_answer(url: &str) -> String {
    format!(
        r#"{{"code":0,"message":"Request successful","data":{{"mime_type":"image/webp","file_name":"a.webp","url":"{url}"}}}}"#
    )
}

/// An `Expires` an hour from now, so the URL is fresh.
fn fresh_expiry() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600
}

fn client(server: &Server) -> Client {
    builder(server).build().unwrap()
}

fn builder(server: &Server) -> nx_blocking::ClientBuilder<Client> {
    Client::builder()
        .credentials(KEY, SECRET)
        .base_url(server.url(""))
        .retry(RetryPolicy::new(
            3,
            Duration::from_millis(1),
            Duration::from_millis(5),
        ))
        .request_timeout(Duration::from_secs(5))
}

fn media_info(server: &Server, path: &str) -> MediaInfo {
    MediaInfo::new(
        "image/webp",
        "a.webp",
        DownloadUrl::parse(&server.url(&format!(
            "{path}?Expires={}&OSSAccessKeyId=k&Signature=s",
            fresh_expiry()
        )))
        .unwrap(),
    )
}

/// Checks `request`'s signature against its own `ts` and body bytes.
fn assert_signed(request: &Recorded, action: &str, json_body: bool) {
    let ts = request.header("ts").unwrap();
    assert!(ts.bytes().all(|b| b.is_ascii_digit()), "ts {ts}");
    let params = [
        ("accessKey", request.header("accesskey").unwrap()),
        ("action", request.header("action").unwrap()),
        ("bizType", request.header("biztype").unwrap()),
        ("ts", ts),
    ];
    assert_eq!(params[0].1, KEY);
    assert_eq!(params[1].1, action);
    assert_eq!(params[2].1, "2");
    let body = if json_body {
        SignableBody::Json(&request.body)
    } else {
        SignableBody::Multipart
    };
    let expected = sign(
        &SignableRequest::new(&params, body),
        &AccessSecret::new(SECRET),
    )
    .unwrap();
    assert_eq!(request.header("sign"), Some(expected.as_str()));
}

#[test]
fn get_media_sends_the_signed_bytes_and_parses_the_answer() {
    let server = Server::bind();
    let oss = format!(
        "https://oss.example/a.webp?Expires={}&OSSAccessKeyId=k&Signature=s",
        fresh_expiry()
    );
    let server = server.serve(vec![json(media_answer(&oss))]);
    let client = client(&server);
    let info = client.get_media(PHONE, MEDIA_ID).unwrap();
    assert_eq!(info.mime_type(), "image/webp");
    assert_eq!(info.file_name(), "a.webp");
    assert_eq!(info.url().expose(), oss);
    assert_eq!(
        info.url().to_string(),
        "https://oss.example/a.webp?<redacted>"
    );

    let requests = server.finish();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.target, "/api/wa/getMedia");
    assert_eq!(
        request.body,
        format!(
            r#"{{"business_phone":"{PHONE}","Media-ID":"{MEDIA_ID}","messaging_product":"whatsapp"}}"#
        )
        .as_bytes()
    );
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.header("content-length"),
        Some(request.body.len().to_string().as_str())
    );
    assert_eq!(request.header("transfer-encoding"), None);
    assert_eq!(request.header("user-agent"), Some(nx_blocking::USER_AGENT));
    assert!(nx_blocking::USER_AGENT.starts_with("nx-blocking/"));
    // Nothing that ureq would add on its own besides Host.
    assert_eq!(request.header("accept"), None);
    assert_eq!(request.header("accept-encoding"), None);
    assert_signed(request, "getMedia", true);
}

#[test]
fn an_answer_over_the_cap_is_refused_announced_or_not() {
    let big = format!(
        r#"{{"code":0,"message":"{}","data":null}}"#,
        "x".repeat(4096)
    );
    let server = Server::bind().serve(vec![
        reply("200 OK", &[], big.clone().into_bytes()),
        // No Content-Length: the body ends when the connection closes.
        Box::new(move |_, stream| {
            let head = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n";
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(big.as_bytes());
        }),
    ]);
    let client = builder(&server).max_answer_bytes(1024).build().unwrap();
    for _ in 0..2 {
        let err = client.get_media(PHONE, MEDIA_ID).unwrap_err();
        assert!(
            matches!(err, Error::AnswerTooLarge { limit: 1024 }),
            "{err:?}"
        );
    }
    // Refused, not retried.
    assert_eq!(server.finish().len(), 2);
}

#[test]
fn a_503_is_retried_with_a_new_ts_and_sign() {
    let server = Server::bind();
    let oss = format!("https://oss.example/a?Expires={}", fresh_expiry());
    let server = server.serve(vec![
        Box::new(|_, stream| {
            // Long enough that the retry's `ts` (in ms) cannot be the same.
            std::thread::sleep(Duration::from_millis(5));
            let _ = stream.write_all(&answer("503 Service Unavailable", &[], b"busy"));
        }),
        json(media_answer(&oss)),
    ]);
    let client = client(&server);
    let info = client.get_media(PHONE, MEDIA_ID).unwrap();
    assert_eq!(info.url().expose(), oss);

    let requests = server.finish();
    assert_eq!(requests.len(), 2);
    assert_ne!(requests[0].header("ts"), requests[1].header("ts"));
    assert_ne!(requests[0].header("sign"), requests[1].header("sign"));
    assert_eq!(requests[0].body, requests[1].body);
    for request in &requests {
        assert_signed(request, "getMedia", true);
    }
}

#[test]
fn a_1004_corrects_the_clock_from_the_date_header() {
    let ahead = SystemTime::now() + Duration::from_secs(120);
    let date = httpdate::fmt_http_date(ahead);
    let oss = format!("https://oss.example/a?Expires={}", fresh_expiry());
    let server = Server::bind().serve(vec![
        Box::new(move |_, stream| {
            let body = br#"{"code":1004,"message":"timestamp expired","data":null}"#;
            let _ = stream.write_all(&answer("200 OK", &[("Date", &date)], body));
        }),
        json(media_answer(&oss)),
    ]);
    let client = client(&server);
    client.get_media(PHONE, MEDIA_ID).unwrap();
    let offset = client.clock_offset().as_millis();
    assert!((118_000..=122_000).contains(&offset), "offset {offset}");

    let requests = server.finish();
    let ts = |r: &Recorded| r.header("ts").unwrap().parse::<i64>().unwrap();
    let shift = ts(&requests[1]) - ts(&requests[0]);
    assert!((118_000..=122_000).contains(&shift), "shift {shift}");
}

#[test]
fn a_truncated_download_is_never_a_success() {
    let server = Server::bind();
    let info = media_info(&server, "/media/a.webp");
    let truncated = || -> Handler {
        Box::new(|_, stream| {
            let head = answer("200 OK", &[("Content-Length", "1000")], b"");
            let _ = stream.write_all(&head);
            let _ = stream.write_all(&[7u8; 400]);
            // Then the connection closes.
        })
    };
    // Into a writer: bytes reached it, so the download is not resent.
    // Into a path: every attempt writes a fresh temporary file, so it is retried (3 attempts).
    let server = server.serve(vec![truncated(), truncated(), truncated(), truncated()]);
    let client = client(&server);

    let mut sink = Vec::new();
    let err = client
        .download(&info, &mut sink, DownloadOptions::new())
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Transport { .. } | Error::Integrity(IntegrityError::LengthMismatch { .. })
        ),
        "{err:?}"
    );
    assert!(sink.len() <= 400);

    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("a.webp");
    let err = client
        .download_to_path(&info, &target, DownloadOptions::new())
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Transport { .. } | Error::Integrity(IntegrityError::LengthMismatch { .. })
        ),
        "{err:?}"
    );
    assert!(!target.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    let requests = server.finish();
    assert_eq!(requests.len(), 4);
    assert!(requests.iter().all(|r| r.method == "GET"));
    assert!(requests[0].target.starts_with("/media/a.webp?Expires="));
}

#[test]
fn a_sha256_mismatch_leaves_nothing_at_the_path() {
    let server = Server::bind();
    let info = media_info(&server, "/media/b.bin");
    let server = server.serve(vec![reply(
        "200 OK",
        &[],
        b"not the bytes you want".to_vec(),
    )]);
    let client = client(&server);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("b.bin");
    let err = client
        .download_to_path(
            &info,
            &target,
            DownloadOptions::new().sha256(Sha256Digest::of(b"the right bytes")),
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::Integrity(IntegrityError::Sha256Mismatch { .. })),
        "{err:?}"
    );
    assert!(!target.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    // An integrity failure is not retried.
    assert_eq!(server.finish().len(), 1);
}

#[test]
fn a_verified_download_lands_at_the_path_with_progress() {
    let server = Server::bind();
    let info = media_info(&server, "/media/c.bin");
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let server = server.serve(vec![reply("200 OK", &[], bytes.clone())]);
    let client = client(&server);
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("c.bin");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let verified = client
        .download_to_path(
            &info,
            &target,
            DownloadOptions::new()
                .sha256(Sha256Digest::of(&bytes))
                .progress(move |done, total| log.lock().unwrap().push((done, total))),
        )
        .unwrap();
    assert_eq!(verified.len, bytes.len() as u64);
    assert_eq!(verified.sha256, Some(Sha256Digest::of(&bytes)));
    assert_eq!(std::fs::read(&target).unwrap(), bytes);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.last(),
        Some(&(bytes.len() as u64, Some(bytes.len() as u64)))
    );
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0));
    server.finish();
}

#[test]
fn an_announced_download_over_the_maximum_is_refused_before_reading() {
    let server = Server::bind();
    let info = media_info(&server, "/media/big");
    let server = server.serve(vec![reply("200 OK", &[], vec![0u8; 5000])]);
    let client = client(&server);
    let mut sink = Vec::new();
    let err = client
        .download(&info, &mut sink, DownloadOptions::new().max_bytes(4096))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Integrity(IntegrityError::TooLarge {
                limit: 4096,
                size: 5000
            })
        ),
        "{err:?}"
    );
    assert!(sink.is_empty());
    server.finish();
}

#[test]
fn an_expired_url_is_refreshed_once_after_a_403() {
    let server = Server::bind();
    let first = media_info(&server, "/media/old").into_url();
    let second = media_info(&server, "/media/new").into_url();
    let server = server.serve(vec![
        json(media_answer(first.expose())),
        reply(
            "403 Forbidden",
            &[],
            b"<Error>AccessDenied</Error>".to_vec(),
        ),
        json(media_answer(second.expose())),
        reply("200 OK", &[], b"fresh bytes".to_vec()),
    ]);
    let client = client(&server);
    let mut sink = Vec::new();
    let verified = client
        .download_media(PHONE, MEDIA_ID, &mut sink, DownloadOptions::new())
        .unwrap();
    assert_eq!(verified.len, 11);
    assert_eq!(sink, b"fresh bytes");
    let requests = server.finish();
    let targets: Vec<&str> = requests
        .iter()
        .map(|r| r.target.split('?').next().unwrap())
        .collect();
    assert_eq!(
        targets,
        [
            "/api/wa/getMedia",
            "/media/old",
            "/api/wa/getMedia",
            "/media/new"
        ]
    );
}

#[test]
fn an_upload_streams_the_form_with_an_exact_content_length() {
    let file: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("photo.jpg");
    std::fs::write(&path, &file).unwrap();
    let uploaded = br#"{"code":0,"message":"Request successful","data":{"id":"m-1"}}"#;
    let server = Server::bind().serve(vec![
        // A path can be reopened: a failed attempt is sent again, from the start.
        reply("502 Bad Gateway", &[], Vec::new()),
        reply("200 OK", &[], uploaded.to_vec()),
    ]);
    let client = client(&server);
    let id = client
        .upload_media(PHONE, "image/jpeg", UploadSource::path(&path))
        .unwrap()
        .id;
    assert_eq!(id, "m-1");

    let requests = server.finish();
    assert_eq!(requests.len(), 2);
    for request in &requests {
        assert_eq!(request.target, "/api/wa/uploadMedia");
        assert_eq!(request.header("transfer-encoding"), None);
        assert_eq!(
            request.header("content-length"),
            Some(request.body.len().to_string().as_str())
        );
        let content_type = request.header("content-type").unwrap();
        let boundary = content_type
            .strip_prefix("multipart/form-data; boundary=")
            .unwrap();
        assert!(boundary.starts_with("nx-sdk-"));
        let head = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"messaging_product\"\r\n\r\nwhatsapp\r\n"
        );
        assert!(request.body.starts_with(head.as_bytes()));
        let file_head = b"filename=\"photo.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n";
        let at = find(&request.body, file_head).unwrap() + file_head.len();
        let tail = format!("\r\n--{boundary}--\r\n");
        assert_eq!(&request.body[at..at + file.len()], &file[..]);
        assert_eq!(&request.body[at + file.len()..], tail.as_bytes());
        assert_signed(request, "uploadMedia", false);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn a_short_upload_reader_fails_as_a_changed_source() {
    let server = Server::bind().serve(vec![reply("200 OK", &[], Vec::new())]);
    let client = client(&server);
    let source = UploadSource::reader(Box::new(std::io::Cursor::new(vec![1u8; 10])), 20, "a.txt");
    let err = client
        .upload_media(PHONE, "text/plain", source)
        .unwrap_err();
    let Error::SourceChanged(changed) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(changed.path, None, "a reader has no path");
    assert_eq!(changed.declared, 20);
    assert_eq!(changed.found, nx_protocol::body::FoundLength::Shorter(10));
    drop(server);
}

#[test]
fn a_refused_connection_is_a_connect_error() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let client = Client::builder()
        .credentials(KEY, SECRET)
        .base_url(format!("http://127.0.0.1:{port}"))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let err = client.get_media(PHONE, MEDIA_ID).unwrap_err();
    assert!(
        matches!(&err, Error::Connect { host, .. } if *host == format!("127.0.0.1:{port}")),
        "{err:?}"
    );
}

#[test]
fn a_redirect_is_an_answer_not_followed() {
    let server = Server::bind().serve(vec![reply(
        "302 Found",
        &[("Location", "http://127.0.0.1:9/elsewhere")],
        Vec::new(),
    )]);
    let client = client(&server);
    let err = client.delete_media(PHONE, MEDIA_ID).unwrap_err();
    assert!(
        matches!(&err, Error::Response(ResponseError::Http { status, .. }) if status.as_u16() == 302),
        "{err:?}"
    );
    assert_eq!(server.finish().len(), 1);
}

#[test]
fn an_api_error_keeps_its_code() {
    let body = br#"{"code":9006,"message":"not bound","data":null}"#;
    let server = Server::bind().serve(vec![reply("200 OK", &[], body.to_vec())]);
    let client = client(&server);
    let err = client.get_media(PHONE, MEDIA_ID).unwrap_err();
    assert_eq!(err.api_code(), Some(ApiCode::new(9006)));
    assert_eq!(server.finish().len(), 1);
}

#[test]
fn a_stalled_answer_times_out() {
    let server = Server::bind().serve(vec![Box::new(|_, stream| {
        std::thread::sleep(Duration::from_millis(1500));
        let _ = stream.write_all(&answer("200 OK", &[], b"{}"));
    })]);
    let client = builder(&server)
        .request_timeout(Duration::from_millis(300))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let started = Instant::now();
    let err = client.get_media(PHONE, MEDIA_ID).unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_millis(1400));
    server.finish();
}

#[test]
fn a_server_that_does_not_speak_tls_is_a_tls_error() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let thread = std::thread::spawn(move || {
        let deadline = Instant::now() + SERVER_LIFETIME;
        while Instant::now() < deadline {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    stream.set_nonblocking(false).unwrap();
                    let mut hello = [0u8; 512];
                    let _ = stream.read(&mut hello);
                    let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
                    return;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    });
    let client = Client::builder()
        .credentials(KEY, SECRET)
        .base_url(format!("https://127.0.0.1:{}", addr.port()))
        .retry(RetryPolicy::none())
        .build()
        .unwrap();
    let err = client.get_media(PHONE, MEDIA_ID).unwrap_err();
    assert!(matches!(&err, Error::Tls { .. }), "{err:?}");
    thread.join().unwrap();
}

#[test]
fn the_client_and_its_arguments_cross_threads() {
    fn shareable<T: Send + Sync + Clone>() {}
    fn sendable<T: Send>() {}
    shareable::<Client>();
    sendable::<UploadSource>();
    sendable::<DownloadOptions>();
    sendable::<Error>();
}

/// A `200` with `body` as JSON that leaves the connection open (no `Connection: close`).
fn kept_alive(body: &str) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// Pooling as nx-blocking leaves it to ureq (a connection returned as an answer's body ends is
/// probed only when next taken, `deadline.rs`): a connection kept alive is reused, and one the
/// server closed, or sent bytes nobody asked for on, is not, so no request is lost on it
/// (retries are off: a request sent on a spoiled connection would fail the call).
#[test]
fn a_kept_alive_connection_is_reused_and_a_spoiled_one_is_not() {
    let oss = format!(
        "https://oss.example/a.webp?Expires={}&OSSAccessKeyId=k&Signature=s",
        fresh_expiry()
    );
    let server = Server::bind();
    let answer = kept_alive(&media_answer(&oss));
    let (first, second) = (answer.clone(), answer);
    let server = server.serve(vec![
        // Two requests on the first connection, then the server closes it.
        Box::new(move |_, stream| {
            let _ = stream.write_all(&first);
            if read_request(stream).is_some() {
                let _ = stream.write_all(&first);
            }
        }),
        // One answer, then stray bytes on a connection the server keeps open.
        Box::new(move |_, stream| {
            let _ = stream.write_all(&second);
            let mut open = stream.try_clone().unwrap();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                let _ = open.write_all(b"HTTP/1.1 200 OK\r\n");
                std::thread::sleep(Duration::from_secs(3));
            });
        }),
        json(media_answer(&oss)),
    ]);
    let client = builder(&server).retry(RetryPolicy::none()).build().unwrap();
    for call in 1..=4 {
        let info = client
            .get_media(PHONE, MEDIA_ID)
            .unwrap_or_else(|e| panic!("call {call}: {e}"));
        assert_eq!(info.file_name(), "a.webp");
        // Time for the server's close or stray bytes to arrive before the next call.
        std::thread::sleep(Duration::from_millis(300));
    }
    // Four calls on three connections: the server records each connection's first request,
    // and has no fourth connection to give.
    let requests = server.finish();
    assert_eq!(requests.len(), 3);
    assert!(requests.iter().all(|r| r.target == "/api/wa/getMedia"));
}
