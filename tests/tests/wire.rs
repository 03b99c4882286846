//! Every byte on the wire, as each transport sends it, read by a raw TCP server on 127.0.0.1:0
//! (not our HTTP stack, not the sandbox's parser) and checked against the specs by code written
//! here, independently of nx-protocol: the request line, the header set, the JSON and multipart
//! bodies byte for byte, and `sign` recomputed with MD5 over the bytes that arrived.
//!
//! Readings pinned here (the specs leave them open):
//! - "the header parameters that are sent" are NXCloud's four common headers; HTTP's own headers
//!   (`Host`, `User-Agent`, `Content-Type`, `Content-Length`) are not signed;
//! - the On-Premises login's "empty JSON body" is the two bytes `{}` with
//!   `Content-Type: application/json` (not an empty body);
//! - a body goes with a `Content-Length`, never chunked, so that the bytes signed are the bytes
//!   framed;
//! - header names may travel in any case (HTTP's names are case-insensitive; both transports
//!   send lower case), while the string to sign spells them as the spec does (`accessKey`);
//! - a send (mt) whose answer was lost is not sent again; a 1004 is (the signature check refused
//!   it before anything was done), once, on the server's clock.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use md5::{Digest, Md5};
use nx_conformance::{
    AsyncDriver, AsyncDriverOnPrem, BlockingDriver, BlockingDriverOnPrem, Driver, OnPremDriver,
    PNG_1X1, Source,
};
use nx_protocol::config::{ClientConfig, OnPremConfig, OnPremLogin};
use nx_protocol::operation::BaseUrl;
use nx_protocol::policy::retry::RetryPolicy;
use nx_protocol::proxy::ProxyConfig;
use nx_protocol::wa::{MediaKind, MediaSource, MessageDetails, SendMedia};
use nx_protocol::{AccessSecret, Credentials};

const KEY: &str = "fme2na3kdi3ki";
const SECRET: &str = "abciiiko2k3";
const APPKEY: &str = "f543ertg";
const PHONE: &str = "8615800001795";
const TO: &str = "8613600009759";

/// One request as it arrived: the head's bytes and the body (de-chunked if it was chunked).
#[derive(Clone, Debug)]
struct Captured {
    /// The request line.
    line: String,
    /// Header lines in the order sent, names as sent.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    chunked: bool,
    /// The wall clock when the head had arrived, in Unix milliseconds.
    received_ms: u64,
}

impl Captured {
    /// Every value of header `name` (any case).
    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The one value of header `name`; panics if it is absent or repeated.
    fn one(&self, name: &str) -> &str {
        match self.all(name)[..] {
            [value] => value,
            ref other => panic!("{name}: {other:?} in {:#?}", self.headers),
        }
    }
}

/// What the server answers to request number `n` (0-based): the raw answer, sent after `delay`.
type Script = dyn Fn(usize, &Captured) -> (Duration, Vec<u8>) + Send + Sync;

/// A raw HTTP/1.1 server on 127.0.0.1:0: reads each request with its own small parser, keeps
/// it, and answers with `connection: close`. It stops when dropped (or after a minute).
struct Capture {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Captured>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Reads one request from `stream`: `None` if it does not arrive whole within 5 s.
fn read_one(stream: &mut TcpStream) -> Option<Captured> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut buf = Vec::new();
    let mut byte = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = stream.read(&mut byte).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&byte[..n]);
    };
    let received_ms = now_ms();
    let head = std::str::from_utf8(&buf[..head_end]).ok()?.to_owned();
    let mut rest = buf[head_end + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let line = lines.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (name, value) = l.split_once(':').expect("a header line has a colon");
            (name.to_owned(), value.trim().to_owned())
        })
        .collect();
    let mut fill = |rest: &mut Vec<u8>, want: usize| -> Option<()> {
        while rest.len() < want {
            let n = stream.read(&mut byte).ok()?;
            if n == 0 {
                return None;
            }
            rest.extend_from_slice(&byte[..n]);
        }
        Some(())
    };
    let get = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let chunked = get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        let mut body = Vec::new();
        loop {
            let at = loop {
                if let Some(at) = rest.windows(2).position(|w| w == b"\r\n") {
                    break at;
                }
                let more = rest.len() + 1;
                fill(&mut rest, more)?;
            };
            let size_line = std::str::from_utf8(&rest[..at]).ok()?;
            let size = usize::from_str_radix(size_line.split(';').next()?.trim(), 16).ok()?;
            rest.drain(..at + 2);
            fill(&mut rest, size + 2)?;
            body.extend_from_slice(&rest[..size]);
            rest.drain(..size + 2);
            if size == 0 {
                break body;
            }
        }
    } else {
        let length: usize = get("content-length").map_or(Some(0), |v| v.parse().ok())?;
        fill(&mut rest, length)?;
        rest.truncate(length);
        rest
    };
    Some(Captured {
        line,
        headers,
        body,
        chunked,
        received_ms,
    })
}

impl Capture {
    fn start(
        script: impl Fn(usize, &Captured) -> (Duration, Vec<u8>) + Send + Sync + 'static,
    ) -> Self {
        let script: Box<Script> = Box::new(script);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (kept, stopping) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stopping.load(Ordering::Relaxed) && Instant::now() < deadline {
                let Ok((mut stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                };
                let Some(request) = read_one(&mut stream) else {
                    continue;
                };
                let n = {
                    let mut kept = kept.lock().unwrap();
                    kept.push(request.clone());
                    kept.len() - 1
                };
                let (delay, answer) = script(n, &request);
                std::thread::sleep(delay);
                let _ = stream.write_all(&answer);
                let _ = stream.flush();
            }
        });
        Self {
            addr,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn requests(&self) -> Vec<Captured> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A complete HTTP answer with `body` as JSON.
fn json_answer(status: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn ok(data: &str) -> Vec<u8> {
    json_answer(
        "200 OK",
        &format!(r#"{{"code":0,"message":"Request successful","data":{data}}}"#),
    )
}

fn transport_settings(config: &mut nx_protocol::config::TransportConfig) {
    config.connect_timeout = Duration::from_secs(2);
    config.request_timeout = Duration::from_secs(5);
    config.overall_timeout = Duration::from_secs(30);
    config.retry = RetryPolicy::new(3, Duration::from_millis(10), Duration::from_millis(50));
    config.proxy = ProxyConfig::Off;
}

fn nxcloud<D: Driver>(server: &Capture) -> D {
    let mut config = ClientConfig::new(Credentials::new(KEY, SECRET), "nx-wire");
    config.base_url = BaseUrl::parse(&server.url()).unwrap();
    config.appkey = Some(APPKEY.to_owned());
    transport_settings(&mut config.transport);
    D::new(config).expect("the client builds")
}

/// Lower-case hex MD5.
fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `s` as a JSON string, by serde_json (not by the SDK's own writer).
fn js(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// Checks one NXCloud request against nxcloud-signing.md and returns its `ts`: the five common
/// headers once each, `ts` in milliseconds near the wall clock, `sign` the MD5 of the string to
/// sign built here from the headers and body bytes that arrived, `&body=` only for a non-empty
/// JSON body (`json`), never for multipart.
fn check_signed(request: &Captured, action: &str, path: &str, json: bool) -> u64 {
    assert_eq!(request.line, format!("POST {path} HTTP/1.1"));
    assert!(!request.chunked, "a body is sent with its length");
    assert_eq!(request.one("accessKey"), KEY);
    assert_eq!(request.one("action"), action);
    assert_eq!(request.one("bizType"), "2");
    let ts = request.one("ts");
    assert!(
        ts.len() == 13 && ts.bytes().all(|b| b.is_ascii_digit()),
        "ts in milliseconds: {ts}"
    );
    let ts: u64 = ts.parse().unwrap();
    assert!(
        ts.abs_diff(request.received_ms) < 10_000,
        "ts {ts} vs the clock {}",
        request.received_ms
    );
    assert_eq!(
        request.one("content-length"),
        request.body.len().to_string(),
        "Content-Length is the body's length"
    );
    let mut string = format!("accessKey={KEY}&action={action}&bizType=2&ts={ts}").into_bytes();
    if json {
        assert_eq!(request.one("content-type"), "application/json");
        assert!(!request.body.is_empty());
        string.extend_from_slice(b"&body=");
        string.extend_from_slice(&request.body);
    }
    string.extend_from_slice(format!("&accessSecret={SECRET}").as_bytes());
    let sign = request.one("sign");
    assert_eq!(sign, md5_hex(&string), "sign over the bytes that arrived");
    // The secret never travels.
    let sent = format!("{} {:?}", request.line, request.headers).into_bytes();
    for bytes in [&sent, &request.body] {
        assert!(!bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()));
    }
    // Nothing else that could be mistaken for a signed parameter goes out.
    for (name, _) in &request.headers {
        let lower = name.to_ascii_lowercase();
        assert!(
            [
                "accesskey",
                "action",
                "biztype",
                "ts",
                "sign",
                "content-type",
                "content-length",
                "host",
                "user-agent",
                "accept",
                "accept-encoding",
                "connection",
            ]
            .contains(&lower.as_str()),
            "unexpected header {name}"
        );
    }
    ts
}

/// A Media-ID that needs every kind of JSON care: quotes, backslashes, a slash, U+2028 and
/// U+2029 (raw in JSON, escaped in JavaScript), emoji, CJK, `%` and `&body=`-like text.
const HOSTILE_ID: &str = "a\"b\\c/d\u{2028}e\u{2029}f😀牛小信%2F&body=x&accessSecret=y";

/// getMedia and deleteMedia: the body is `{"business_phone":..,"Media-ID":..,
/// "messaging_product":"whatsapp"}` in that order, serde_json's escaping, signed as sent.
fn media_bodies_are_signed_as_sent<D: Driver>() {
    let url = "https://oss.example/f.png?Expires=1663747602&OSSAccessKeyId=k&Signature=s";
    let server = Capture::start(move |_, request| {
        let data = if request.line.contains("getMedia") {
            format!(r#"{{"mime_type":"image/png","file_name":"f.png","url":"{url}"}}"#)
        } else {
            r#"{"success":true}"#.to_owned()
        };
        (Duration::ZERO, ok(&data))
    });
    let client = nxcloud::<D>(&server);
    for id in ["fd81acff-eea8-4d9d-acc9-6c62904d6615", HOSTILE_ID] {
        let info = client.get_media(PHONE, id).expect("getMedia");
        assert_eq!(info.url().expose(), url);
        client.delete_media(PHONE, id).expect("deleteMedia");
    }
    let requests = server.requests();
    assert_eq!(requests.len(), 4, "{} requests", requests.len());
    for (i, request) in requests.iter().enumerate() {
        let id = if i < 2 {
            "fd81acff-eea8-4d9d-acc9-6c62904d6615"
        } else {
            HOSTILE_ID
        };
        let action = ["getMedia", "deleteMedia"][i % 2];
        check_signed(request, action, &format!("/api/wa/{action}"), true);
        let expected = format!(
            r#"{{"business_phone":{},"Media-ID":{},"messaging_product":"whatsapp"}}"#,
            js(PHONE),
            js(id)
        );
        assert_eq!(
            String::from_utf8_lossy(&request.body),
            expected,
            "{} body",
            D::NAME
        );
        let parsed: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(parsed["Media-ID"], id);
    }
}

/// mt with captions and file names full of escapes and control characters: key order as in the
/// spec's example, one of `id` / `link`, serde_json's escaping, signed as sent.
fn send_bodies_are_signed_as_sent<D: Driver>() {
    let server = Capture::start(|_, _| {
        (
            Duration::ZERO,
            ok(r#"{"messaging_product":"whatsapp","messages":[{"id":"wamid.1"}]}"#),
        )
    });
    let client = nxcloud::<D>(&server);
    let caption = "q\"uote\\ \u{1}\u{1f}\t\n\r\u{7f}\u{2028}😀牛小信 </script>";
    let filename = "say \"hi\"\\..\\C:\\x\u{2029}.pdf";
    let link = "https://cdn.example/a%20b/c?x=1&Signature=s%2B";
    // The longest caption (1024 characters, 4 KiB of UTF-8): the head and a larger body.
    let long = "😀".repeat(nx_protocol::wa::MAX_CAPTION_CHARS);
    let sends = [
        (
            SendMedia::new(PHONE, TO, MediaKind::Video, MediaSource::id("v1"))
                .with_details(MessageDetails::new().caption(long.clone())),
            format!(r#""type":"video","video":{{"id":"v1","caption":"{long}"}}}}"#),
        ),
        (
            SendMedia::new(PHONE, TO, MediaKind::Image, MediaSource::id(HOSTILE_ID))
                .with_details(MessageDetails::new().caption(caption)),
            format!(
                r#""type":"image","image":{{"id":{},"caption":{}}}}}"#,
                js(HOSTILE_ID),
                js(caption)
            ),
        ),
        (
            SendMedia::new(PHONE, TO, MediaKind::Document, MediaSource::link(link)).with_details(
                MessageDetails::new()
                    .filename(filename)
                    .message_id("order-7 \"x\"")
                    .dr_webhook("https://hooks.example/dr?k=1"),
            ),
            format!(
                r#""type":"document","cus_message_id":{},"dr_webhook":"https://hooks.example/dr?k=1","document":{{"link":{},"filename":{}}}}}"#,
                js("order-7 \"x\""),
                js(link),
                js(filename)
            ),
        ),
    ];
    for (send, _) in &sends {
        assert_eq!(client.send_media(send.clone()).expect("mt").id, "wamid.1");
    }
    let requests = server.requests();
    assert_eq!(requests.len(), sends.len());
    for (request, (_, tail)) in requests.iter().zip(&sends) {
        check_signed(request, "mt", "/api/wa/mt", true);
        let expected = format!(
            r#"{{"appkey":"{APPKEY}","business_phone":"{PHONE}","messaging_product":"whatsapp","recipient_type":"individual","to":"{TO}",{tail}"#
        );
        assert_eq!(
            String::from_utf8_lossy(&request.body),
            expected,
            "{}",
            D::NAME
        );
    }
}

/// A retry is a new request: a `ts` read when it is sent (after the first answer came, 150 ms
/// late) and a `sign` over it; a send (not idempotent) is not resent after a 9001.
fn each_retry_is_signed_afresh<D: Driver>() {
    let url = "https://oss.example/f.png?Expires=1663747602&Signature=s";
    let server = Capture::start(move |n, request| {
        if n == 0 || request.line.contains("/mt") {
            let busy = r#"{"code":9001,"message":"system business error","data":null}"#;
            (Duration::from_millis(150), json_answer("200 OK", busy))
        } else {
            (
                Duration::ZERO,
                ok(&format!(
                    r#"{{"mime_type":"image/png","file_name":"f.png","url":"{url}"}}"#
                )),
            )
        }
    });
    let client = nxcloud::<D>(&server);
    client.get_media(PHONE, "m1").expect("the retry succeeds");
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let first = check_signed(&requests[0], "getMedia", "/api/wa/getMedia", true);
    let second = check_signed(&requests[1], "getMedia", "/api/wa/getMedia", true);
    assert!(
        second >= first + 150,
        "the retry's ts ({second}) is read after the first answer ({first} + 150 ms)"
    );
    assert_ne!(requests[0].one("sign"), requests[1].one("sign"));
    assert_eq!(requests[0].body, requests[1].body);

    let send = SendMedia::new(PHONE, TO, MediaKind::Sticker, MediaSource::id("m1"));
    let error = client.send_media(send).unwrap_err();
    assert!(error.to_string().contains("9001"), "{error}");
    assert_eq!(
        server.requests().len(),
        3,
        "a send is not resent after 9001"
    );
}

/// uploadMedia: `multipart/form-data` with the fields `messaging_product`, `business_phone`,
/// `type`, `file` in that order, the table's spelling of the MIME type, the file name escaped
/// (`"` `\` CR LF and other ASCII controls as `%XX`, UTF-8 as it is), signed without the body.
fn upload_form_is_exact_and_unsigned<D: Driver>() {
    let server = Capture::start(|_, _| (Duration::ZERO, ok(r#"{"id":"new-id"}"#)));
    let client = nxcloud::<D>(&server);
    let names = [
        ("logo.png", "logo.png"),
        // No name: the part still has one (a file part without `filename` is a text field).
        ("", "file"),
        ("牛小信 😀.png", "牛小信 😀.png"),
        (
            "a\"b\\c\r\nContent-Type: text/html\t%.png",
            "a%22b%5Cc%0D%0AContent-Type: text/html%09%.png",
        ),
    ];
    for (name, _) in names {
        let uploaded = client
            .upload_media(PHONE, "IMAGE/PNG", Source::Bytes(PNG_1X1.to_vec(), name))
            .expect("uploadMedia");
        assert_eq!(uploaded.id, "new-id");
    }
    let requests = server.requests();
    assert_eq!(requests.len(), names.len());
    for (request, (_, sent)) in requests.iter().zip(names) {
        check_signed(request, "uploadMedia", "/api/wa/uploadMedia", false);
        let content_type = request.one("content-type");
        let boundary = content_type
            .strip_prefix("multipart/form-data; boundary=")
            .unwrap_or_else(|| panic!("{content_type}"));
        assert!(
            !boundary.is_empty()
                && boundary.len() <= 70
                && boundary
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-'),
            "{boundary}"
        );
        let field = |name: &str, value: &str| {
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
        };
        let mut expected = [
            field("messaging_product", "whatsapp"),
            field("business_phone", PHONE),
            field("type", "image/png"),
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{sent}\"\r\nContent-Type: image/png\r\n\r\n"
            ),
        ]
        .concat()
        .into_bytes();
        expected.extend_from_slice(PNG_1X1);
        expected.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        assert_eq!(
            String::from_utf8_lossy(&request.body),
            String::from_utf8_lossy(&expected),
            "{}",
            D::NAME
        );
        assert_eq!(request.body, expected);
    }
}

// ---------------------------------------------------------------------------------------------
// On-Premises
// ---------------------------------------------------------------------------------------------

const USER: &str = "admin";
const PASSWORD: &str = "p:ss wörd\"";
const TOKEN: &str = "eyJhbGciOi.payload.sig";

fn onprem<P: OnPremDriver>(server: &Capture) -> P {
    let login = OnPremLogin::Password {
        username: USER.into(),
        password: AccessSecret::new(PASSWORD),
    };
    let mut config = OnPremConfig::new(BaseUrl::parse(&server.url()).unwrap(), login, "nx-wire");
    transport_settings(&mut config.transport);
    P::new(config).expect("the client builds")
}

/// Percent-encodes `id` as one path segment, written here from RFC 3986: every byte outside the
/// unreserved set as `%XX` (upper case), and a segment of dots only as `%2E` each.
fn segment(id: &str) -> String {
    if id.bytes().all(|b| b == b'.') {
        return "%2E".repeat(id.len());
    }
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The login is `POST /v1/users/login` with `Authorization: Basic base64(user:password)`,
/// `Content-Type: application/json` and the body `{}` (this SDK's reading of "an empty JSON
/// body"); the first admin login sends `{"new_password":..}`; every other call sends
/// `Authorization: Bearer <token>`, and a GET or DELETE carries no body and no length. Media ids
/// stay one path segment whatever they hold.
fn onprem_requests_are_exact<P: OnPremDriver>() {
    let server = Capture::start(|_, request| {
        let answer = if request.line.starts_with("POST /v1/users/login ") {
            json_answer(
                "200 OK",
                &format!(
                    r#"{{"users":[{{"token":"{TOKEN}","expires_after":"2099-03-01 15:29:26+05:30"}}]}}"#
                ),
            )
        } else if request.line.starts_with("POST /v1/media ") {
            json_answer(
                "201 Created",
                r#"{"media":[{"id":"up-1"}],"meta":{"api_status":"stable","version":"3.0.0.0"}}"#,
            )
        } else if request.line.starts_with("DELETE ") {
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_vec()
        } else {
            let mut answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: image/png\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                PNG_1X1.len()
            )
            .into_bytes();
            answer.extend_from_slice(PNG_1X1);
            answer
        };
        (Duration::ZERO, answer)
    });
    let client = onprem::<P>(&server);
    let ids = [
        "f043afd0-f0ae",
        "a/b",
        "a?b#c",
        "%2e%2E",
        "..",
        ".",
        "../users",
        "牛 😀;=&+",
    ];
    for id in ids {
        let (bytes, _) = client.retrieve_media(id, None).expect("retrieve");
        assert_eq!(bytes, PNG_1X1);
        client.delete_media(id).expect("delete");
    }
    let file = nx_conformance::pattern(70_000);
    let uploaded = client
        .upload_media(
            "audio/ogg; codecs=opus",
            Source::Bytes(file.clone(), "a.ogg"),
        )
        .expect("upload");
    assert_eq!(uploaded.id, "up-1");
    client.first_login("N3w \"pass\"\\").expect("first login");

    let requests = server.requests();
    assert_eq!(
        requests.len(),
        3 + 2 * ids.len(),
        "one login, the calls, the upload and the first login"
    );
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{USER}:{PASSWORD}")
        )
    );
    let login = &requests[0];
    assert_eq!(login.line, "POST /v1/users/login HTTP/1.1");
    assert_eq!(login.one("authorization"), basic);
    assert_eq!(login.one("content-type"), "application/json");
    assert_eq!(login.one("content-length"), "2");
    assert_eq!(login.body, b"{}");
    assert!(!login.chunked);
    for (pair, id) in requests[1..].chunks(2).zip(ids) {
        let path = format!("/v1/media/{}", segment(id));
        assert_eq!(pair[0].line, format!("GET {path} HTTP/1.1"), "{id:?}");
        assert_eq!(pair[1].line, format!("DELETE {path} HTTP/1.1"), "{id:?}");
        for request in pair {
            assert_eq!(request.one("authorization"), format!("Bearer {TOKEN}"));
            assert!(request.body.is_empty() && !request.chunked);
            assert!(
                request.all("content-length").is_empty(),
                "{:?}",
                request.headers
            );
        }
    }
    // The upload is the file's raw bytes (not multipart), with its MIME type as given.
    let upload = &requests[requests.len() - 2];
    assert_eq!(upload.line, "POST /v1/media HTTP/1.1");
    assert_eq!(upload.one("authorization"), format!("Bearer {TOKEN}"));
    assert_eq!(upload.one("content-type"), "audio/ogg; codecs=opus");
    assert_eq!(upload.one("content-length"), file.len().to_string());
    assert!(!upload.chunked && upload.body == file);
    let first = requests.last().unwrap();
    assert_eq!(first.line, "POST /v1/users/login HTTP/1.1");
    assert_eq!(first.one("authorization"), basic);
    assert_eq!(first.body, br#"{"new_password":"N3w \"pass\"\\"}"#);
}

/// The download: a plain GET of the pre-signed URL exactly as getMedia answered it (its query's
/// percent-escapes, `+` and order untouched), with none of NXCloud's headers.
fn downloads_are_plain_gets_of_the_url_as_given<D: Driver>() {
    const TARGET: &str = "/oss/%E7%89%9B%20f.png?Expires=99999999999&OSSAccessKeyId=k%2Fk&Signature=a%2Bb%3D%2f+c&x=%7e~";
    let server = Capture::start(|_, request| {
        let answer = if request.line.starts_with("POST ") {
            let base = format!("http://{}", request.one("host"));
            ok(&format!(
                r#"{{"mime_type":"image/png","file_name":"牛 f.png","url":"{base}{TARGET}"}}"#
            ))
        } else {
            raw_answer("200 OK", "content-type: image/png\r\n", PNG_1X1, true)
        };
        (Duration::ZERO, answer)
    });
    let client = nxcloud::<D>(&server);
    let (bytes, _) = client.download_media(PHONE, "m1", None).expect("download");
    assert_eq!(bytes, PNG_1X1);
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let get = &requests[1];
    assert_eq!(get.line, format!("GET {TARGET} HTTP/1.1"), "{}", D::NAME);
    for name in [
        "accessKey",
        "ts",
        "bizType",
        "action",
        "sign",
        "authorization",
        "content-type",
    ] {
        assert!(
            get.all(name).is_empty(),
            "{name} on the download: {:?}",
            get.headers
        );
    }
    assert!(get.body.is_empty() && !get.chunked);
}

/// The send retry reading: a connection closed after the request arrived, with no answer, may
/// mean the message went out, so mt is not sent again, where getMedia (idempotent) is. Answers
/// ending with the connection (no `Content-Length`) or chunked are read whole.
fn a_lost_answer_resends_only_what_is_idempotent<D: Driver>() {
    let url = "https://oss.example/f.png?Expires=99999999999&Signature=s";
    let server = Capture::start(move |n, _| {
        let data = format!(r#"{{"mime_type":"image/png","file_name":"f.png","url":"{url}"}}"#);
        let envelope = format!(r#"{{"code":0,"message":"ok","data":{data}}}"#);
        let answer = match n {
            // getMedia: no answer, then one ending with the connection.
            0 => Vec::new(),
            1 => raw_answer("200 OK", "", envelope.as_bytes(), false),
            // getMedia: chunked, in three chunks.
            2 => {
                let (a, b) = envelope.split_at(10);
                format!(
                    "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
                    a.len(),
                    b.len()
                )
                .into_bytes()
            }
            // mt: no answer.
            _ => Vec::new(),
        };
        (Duration::ZERO, answer)
    });
    let client = nxcloud::<D>(&server);
    for _ in 0..2 {
        let info = client.get_media(PHONE, "m1").expect("getMedia");
        assert_eq!(info.url().expose(), url);
    }
    assert_eq!(server.requests().len(), 3);
    let send = SendMedia::new(PHONE, TO, MediaKind::Image, MediaSource::id("m1"));
    match client.send_media(send) {
        Err(nx_protocol::error::Error::Transport { .. }) => {}
        other => panic!("{} {other:?}", D::NAME),
    }
    assert_eq!(
        server.requests().len(),
        4,
        "mt is not resent after a lost answer"
    );
}

/// `unix_secs` as an HTTP date (IMF-fixdate), written here from RFC 9110 5.6.7.
fn http_date(unix_secs: u64) -> String {
    let text = nx_protocol::onprem::format_expires_after(nx_protocol::Timestamp::from_millis(
        unix_secs * 1000,
    ));
    // "YYYY-MM-DD HH:MM:SS+00:00"
    let (date, time) = (&text[..10], &text[11..19]);
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][date[5..7].parse::<usize>().unwrap() - 1];
    // 1970-01-01 was a Thursday.
    let weekday =
        ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(unix_secs / 86_400 % 7) as usize];
    format!(
        "{weekday}, {} {month} {} {time} GMT",
        &date[8..10],
        &date[..4]
    )
}

/// A 1004 whose `Date` is 10 minutes ahead: the request is sent once more with a `ts` on the
/// server's clock (within the `Date`'s second), signed over that `ts`.
fn a_1004_resends_on_the_servers_clock<D: Driver>() {
    const AHEAD_MS: u64 = 600_000;
    // RFC 9110's own example.
    assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
    let server = Capture::start(|n, _| {
        let answer = if n == 0 {
            let date = http_date((now_ms() + AHEAD_MS) / 1000);
            let body = r#"{"code":1004,"message":"Timestamp expired","data":null}"#;
            raw_answer(
                "200 OK",
                &format!("content-type: application/json\r\ndate: {date}\r\n"),
                body.as_bytes(),
                true,
            )
        } else {
            ok(r#"{"success":true}"#)
        };
        (Duration::ZERO, answer)
    });
    let client = nxcloud::<D>(&server);
    client
        .delete_media(PHONE, "m1")
        .expect("after one correction");
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    // `check_signed` allows 10 s of drift around the local clock: check by hand here.
    let ts = |r: &Captured| r.one("ts").parse::<u64>().unwrap();
    assert!(ts(&requests[0]).abs_diff(requests[0].received_ms) < 10_000);
    let corrected = ts(&requests[1]);
    let server_now = requests[1].received_ms + AHEAD_MS;
    assert!(
        corrected.abs_diff(server_now) < 3_000,
        "{} ts {corrected} vs the server's clock {server_now}",
        D::NAME
    );
    let string = format!(
        "accessKey={KEY}&action=deleteMedia&bizType=2&ts={corrected}&body={}&accessSecret={SECRET}",
        String::from_utf8_lossy(&requests[1].body)
    );
    assert_eq!(requests[1].one("sign"), md5_hex(string.as_bytes()));
}

/// A raw answer: status line, extra header lines, body; `length` says whether a
/// `Content-Length` is sent (without one the body ends with the connection).
fn raw_answer(status: &str, headers: &str, body: &[u8], length: bool) -> Vec<u8> {
    let length = if length {
        format!("content-length: {}\r\n", body.len())
    } else {
        String::new()
    };
    let mut answer =
        format!("HTTP/1.1 {status}\r\n{headers}{length}connection: close\r\n\r\n").into_bytes();
    answer.extend_from_slice(body);
    answer
}

fn login_answer(token: &str) -> Vec<u8> {
    json_answer(
        "200 OK",
        &format!(
            r#"{{"users":[{{"token":"{token}","expires_after":"2099-01-01 00:00:00-03:00"}}]}}"#
        ),
    )
}

/// On-Premises answers as servers frame them: a missing id's 404 with no body (with a zero
/// length, or none and the connection closed), a delete's 200 with nothing, with the `meta`
/// object or with a close-delimited body, the retry-download acknowledgement with unknown
/// fields. Then a 401: one login again and one retry with the new token; a 400 with a Meta
/// code not in the retry table is not retried, one with 1015 is.
fn onprem_answers_in_every_framing<P: OnPremDriver>() {
    const META: &str = r#"{"meta":{"api_status":"stable","version":"3.0.0.0"}}"#;
    let server = Capture::start(|n, request| {
        let line = request.line.as_str();
        let answer = match n {
            _ if line.starts_with("POST /v1/users/login ") => {
                login_answer(if n == 0 { "tok-1" } else { "tok-2" })
            }
            1 => raw_answer("404 Not Found", "", b"", true),
            2 => raw_answer("404 Not Found", "", b"", false),
            3 => raw_answer("200 OK", "", b"", true),
            4 => raw_answer("200 OK", "content-type: application/json\r\n", META.as_bytes(), true),
            5 => raw_answer("200 OK", "content-type: application/json\r\n", META.as_bytes(), false),
            6 => raw_answer(
                "200 OK",
                "content-type: application/json\r\n",
                br#"{"media_items":[{"id":"m1","extra":{"x":[1]}}],"meta":{"api_status":"deprecated","version":"2.0"},"more":null}"#,
                true,
            ),
            // The token is refused once: the next request is a login, then the retry.
            7 => raw_answer("401 Unauthorized", "", b"", true),
            9 => raw_answer("200 OK", "content-type: image/png\r\n", PNG_1X1, true),
            10 => json_answer(
                "400 Bad Request",
                r#"{"errors":[{"code":1009,"title":"Parameter value is not valid"}]}"#,
            ),
            11 => json_answer(
                "429 Too Many Requests",
                r#"{"errors":[{"code":1015,"title":"Too many requests"}]}"#,
            ),
            _ => raw_answer("200 OK", "", b"", true),
        };
        (Duration::ZERO, answer)
    });
    let client = onprem::<P>(&server);
    for _ in 0..2 {
        match client.retrieve_media("gone", None) {
            Err(nx_protocol::error::Error::Response(e)) => {
                assert!(e.is_not_found() && e.status() == 404, "{e:?}")
            }
            other => panic!("{} {other:?}", P::NAME),
        }
    }
    for _ in 0..3 {
        client.delete_media("m1").expect("a 200 is a deletion");
    }
    assert_eq!(
        client.retry_download("m1").expect("acknowledged").ids,
        ["m1"]
    );
    let (bytes, _) = client
        .retrieve_media("m1", None)
        .expect("after one re-login");
    assert_eq!(bytes, PNG_1X1);
    match client.delete_media("m1") {
        Err(nx_protocol::error::Error::Response(e)) => {
            assert_eq!(e.meta_code().map(|c| c.get()), Some(1009), "{e:?}")
        }
        other => panic!("{} {other:?}", P::NAME),
    }
    client.delete_media("m1").expect("1015 is retried");

    let lines: Vec<String> = server.requests().into_iter().map(|r| r.line).collect();
    let bearer: Vec<String> = server
        .requests()
        .iter()
        .map(|r| r.all("authorization").join(","))
        .collect();
    assert_eq!(
        lines,
        [
            "POST /v1/users/login HTTP/1.1",
            "GET /v1/media/gone HTTP/1.1",
            "GET /v1/media/gone HTTP/1.1",
            "DELETE /v1/media/m1 HTTP/1.1",
            "DELETE /v1/media/m1 HTTP/1.1",
            "DELETE /v1/media/m1 HTTP/1.1",
            "GET /v1/media/m1/download HTTP/1.1",
            "GET /v1/media/m1 HTTP/1.1",
            "POST /v1/users/login HTTP/1.1",
            "GET /v1/media/m1 HTTP/1.1",
            "DELETE /v1/media/m1 HTTP/1.1",
            "DELETE /v1/media/m1 HTTP/1.1",
            "DELETE /v1/media/m1 HTTP/1.1",
        ],
        "{}",
        P::NAME
    );
    assert_eq!(bearer[7], "Bearer tok-1");
    assert!(bearer[8].starts_with("Basic "));
    assert_eq!(bearer[9..], ["Bearer tok-2"; 4]);
}

/// `unix_ms` as `expires_after` writes it at the UTC offset `offset_secs` (`+HH:MM`).
fn expires_after_at(unix_ms: u64, offset_secs: i64) -> String {
    let local = (unix_ms as i64 + offset_secs * 1000) as u64;
    let text =
        nx_protocol::onprem::format_expires_after(nx_protocol::Timestamp::from_millis(local));
    let sign = if offset_secs < 0 { '-' } else { '+' };
    let abs = offset_secs.unsigned_abs();
    format!(
        "{}{sign}{:02}:{:02}",
        &text[..19],
        abs / 3600,
        abs % 3600 / 60
    )
}

/// `expires_after` read with its offset, end to end: a token that expires in 30 s, written at
/// +05:30, is renewed before the next call (the margin is 60 s); one that expires in two hours,
/// written at -03:00, is kept.
fn tokens_are_renewed_by_their_offset_expiry<P: OnPremDriver>() {
    assert_eq!(
        expires_after_at(1_519_918_166_000, 19_800),
        "2018-03-01 20:59:26+05:30"
    );
    let logins = Arc::new(Mutex::new(0));
    let counted = logins.clone();
    let server = Capture::start(move |_, request| {
        let answer = if request.line.starts_with("POST /v1/users/login ") {
            let mut logins = counted.lock().unwrap();
            *logins += 1;
            let expiry = if *logins == 1 {
                expires_after_at(now_ms() + 30_000, 19_800)
            } else {
                expires_after_at(now_ms() + 7_200_000, -10_800)
            };
            json_answer(
                "200 OK",
                &format!(r#"{{"users":[{{"token":"t{logins}","expires_after":"{expiry}"}}]}}"#),
            )
        } else {
            raw_answer("200 OK", "content-type: image/png\r\n", PNG_1X1, true)
        };
        (Duration::ZERO, answer)
    });
    let client = onprem::<P>(&server);
    for _ in 0..3 {
        client.retrieve_media("m1", None).expect("retrieve");
    }
    let seen: Vec<(String, String)> = server
        .requests()
        .into_iter()
        .map(|r| (r.line.clone(), r.all("authorization").join(",")))
        .collect();
    let lines: Vec<&str> = seen.iter().map(|(line, _)| line.as_str()).collect();
    assert_eq!(
        lines,
        [
            "POST /v1/users/login HTTP/1.1",
            "GET /v1/media/m1 HTTP/1.1",
            "POST /v1/users/login HTTP/1.1",
            "GET /v1/media/m1 HTTP/1.1",
            "GET /v1/media/m1 HTTP/1.1",
        ],
        "{}",
        P::NAME
    );
    assert_eq!(seen[1].1, "Bearer t1");
    assert_eq!(
        (seen[3].1.as_str(), seen[4].1.as_str()),
        ("Bearer t2", "Bearer t2")
    );
}

/// An upload retried after a 9001 is re-streamed whole and signed afresh, its length exact.
fn upload_retries_resend_the_same_form<D: Driver>() {
    let server = Capture::start(|n, _| {
        let answer = if n == 0 {
            json_answer("200 OK", r#"{"code":9001,"message":"busy","data":null}"#)
        } else {
            ok(r#"{"id":"new-id"}"#)
        };
        (Duration::from_millis(if n == 0 { 20 } else { 0 }), answer)
    });
    let client = nxcloud::<D>(&server);
    let file = nx_conformance::pattern(300_000);
    let uploaded = client
        .upload_media(
            PHONE,
            "application/pdf",
            Source::Bytes(file.clone(), "q3.pdf"),
        )
        .expect("the retry succeeds");
    assert_eq!(uploaded.id, "new-id");
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let first = check_signed(&requests[0], "uploadMedia", "/api/wa/uploadMedia", false);
    let second = check_signed(&requests[1], "uploadMedia", "/api/wa/uploadMedia", false);
    assert!(second >= first + 20, "{first} {second}");
    for request in &requests {
        assert!(
            request.body.windows(file.len()).any(|w| w == &file[..]),
            "the whole file in each attempt"
        );
    }
}

nx_conformance::conformance!(AsyncDriver, BlockingDriver;
    media_bodies_are_signed_as_sent,
    send_bodies_are_signed_as_sent,
    each_retry_is_signed_afresh,
    upload_form_is_exact_and_unsigned,
    upload_retries_resend_the_same_form,
    downloads_are_plain_gets_of_the_url_as_given,
    a_lost_answer_resends_only_what_is_idempotent,
    a_1004_resends_on_the_servers_clock,
);

mod onprem_wire {
    use super::*;
    nx_conformance::conformance!(AsyncDriverOnPrem, BlockingDriverOnPrem;
        onprem_requests_are_exact,
        onprem_answers_in_every_framing,
        tokens_are_renewed_by_their_offset_expiry,
    );
}
