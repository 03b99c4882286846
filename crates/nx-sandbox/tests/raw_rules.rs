//! Rules of the four specs probed the way an independent client meets them: raw bytes on a
//! TCP connection (no HTTP library that could tidy a request up: repeated headers stay
//! repeated, a `HEAD` is a `HEAD`), and the exact answer asserted (status, code, message,
//! head, body). Each test names the rule; the ones marked "was" pin a leniency the audit found.

mod common;

use std::net::SocketAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{md5_sign, media_body, multipart_type, path_of, raw, upload, upload_form};
use nx_sandbox::{
    DEMO_ACCESS_KEY, DEMO_ACCESS_SECRET, DEMO_BUSINESS_PHONE, DEMO_ONPREM_PASSWORD,
    DEMO_ONPREM_USER, OnPremUser, Sandbox, SandboxConfig,
};

/// An answer as it came off the wire.
#[derive(Debug)]
struct Wire {
    status: u16,
    /// Names lower-cased, in the order sent.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Wire {
    fn parse(bytes: &[u8]) -> Wire {
        let end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no end of head in {:?}", String::from_utf8_lossy(bytes)));
        let head = std::str::from_utf8(&bytes[..end]).expect("a head in ASCII");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let status = status_line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|s| s.get(..3))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("status line {status_line:?}"));
        let headers = lines
            .map(|line| {
                let (name, value) = line.split_once(':').unwrap();
                (name.to_ascii_lowercase(), value.trim().to_owned())
            })
            .collect();
        Wire {
            status,
            headers,
            body: bytes[end + 4..].to_vec(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        let mut values = self.headers.iter().filter(|(n, _)| n == name);
        let first = values.next().map(|(_, v)| v.as_str());
        assert!(
            values.next().is_none(),
            "{name} twice in {:?}",
            self.headers
        );
        first
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// The NXCloud envelope: HTTP 200, then `(code, message)`, `data` null on failure.
    fn envelope(&self) -> (i64, String) {
        assert_eq!(self.status, 200, "{self:?}");
        let json = self.json();
        let code = json["code"].as_i64().unwrap();
        if code != 0 {
            assert!(json["data"].is_null(), "{json}");
        }
        (code, json["message"].as_str().unwrap().to_owned())
    }

    /// Meta's error shape: `(code, details)`.
    fn meta_error(&self) -> (i64, String) {
        let json = self.json();
        assert_eq!(json["meta"]["api_status"], "stable", "{json}");
        let error = &json["errors"][0];
        assert!(error["title"].is_string(), "{json}");
        (
            error["code"].as_i64().unwrap(),
            error["details"].as_str().unwrap().to_owned(),
        )
    }
}

/// Sends `head` (request line and header lines, each ending in CRLF) plus `Connection: close`,
/// `Content-Length` and `body`; the whole answer.
async fn exchange(addr: SocketAddr, head: &str, body: &[u8]) -> Wire {
    let mut request = format!(
        "{head}Host: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    Wire::parse(&raw(addr, &request).await)
}

/// The common NXCloud header lines for `action` at `ts`, signed over `signed_body` (`None`:
/// without a body, as multipart is).
fn nx_headers(action: &str, ts: u64, signed_body: Option<&[u8]>) -> String {
    let ts = ts.to_string();
    let sign = md5_sign(
        DEMO_ACCESS_KEY,
        action,
        "2",
        &ts,
        signed_body,
        DEMO_ACCESS_SECRET,
    );
    format!(
        "accessKey: {DEMO_ACCESS_KEY}\r\nts: {ts}\r\nbizType: 2\r\naction: {action}\r\nsign: {sign}\r\n"
    )
}

fn basic() -> String {
    let pair = format!("{DEMO_ONPREM_USER}:{DEMO_ONPREM_PASSWORD}");
    format!("Basic {}", STANDARD.encode(pair))
}

/// Logs in; the token and `expires_after`.
async fn login(sandbox: &Sandbox) -> (String, String) {
    let head = format!(
        "POST /v1/users/login HTTP/1.1\r\nAuthorization: {}\r\nContent-Type: application/json\r\n",
        basic()
    );
    let answer = exchange(sandbox.addr(), &head, b"{}").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let user = &answer.json()["users"][0];
    (
        user["token"].as_str().unwrap().to_owned(),
        user["expires_after"].as_str().unwrap().to_owned(),
    )
}

/// Uploads `bytes` with `POST /v1/media`; the id.
async fn onprem_upload(sandbox: &Sandbox, token: &str, mime: &str, bytes: &[u8]) -> String {
    let head = format!(
        "POST /v1/media HTTP/1.1\r\nAuthorization: Bearer {token}\r\nContent-Type: {mime}\r\n"
    );
    let answer = exchange(sandbox.addr(), &head, bytes).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    answer.json()["media"][0]["id"].as_str().unwrap().to_owned()
}

/// nxcloud-signing.md: "For an `application/json` request": a JSON call has one Content-Type.
/// Was: a second `Content-Type` (here `text/plain` after `application/json`) was ignored and
/// the call served. Now 1003, like a wrong Content-Type; the same for uploadMedia.
#[tokio::test]
async fn content_type_is_sent_once_to_nxcloud() {
    let sandbox = Sandbox::start(SandboxConfig::default()).unwrap();
    let addr = sandbox.addr();
    let body = media_body(DEMO_BUSINESS_PHONE, "no-such-id");
    let request = |extra: &str| {
        format!(
            "POST /api/wa/getMedia HTTP/1.1\r\n{}Content-Type: application/json\r\n{extra}",
            nx_headers("getMedia", sandbox.now_millis(), Some(&body))
        )
    };
    // The well-formed call reaches the media lookup (-1 for an unknown id).
    let (code, _) = exchange(addr, &request(""), &body).await.envelope();
    assert_eq!(code, -1);
    for extra in [
        "Content-Type: text/plain\r\n",
        "content-type: application/json\r\n",
    ] {
        let (code, message) = exchange(addr, &request(extra), &body).await.envelope();
        assert_eq!(code, 1003, "{extra:?}");
        assert_eq!(
            message,
            "Invalid signature: Content-Type must be application/json, sent once"
        );
    }

    let form = upload_form("text/plain", "a.txt", b"x");
    let head = |extra: &str| {
        format!(
            "POST /api/wa/uploadMedia HTTP/1.1\r\n{}Content-Type: {}\r\n{extra}",
            nx_headers("uploadMedia", sandbox.now_millis(), None),
            multipart_type()
        )
    };
    let (code, _) = exchange(addr, &head(""), &form).await.envelope();
    assert_eq!(code, 0);
    let (code, message) = exchange(addr, &head("Content-Type: application/json\r\n"), &form)
        .await
        .envelope();
    assert_eq!(code, 1003);
    assert_eq!(
        message,
        "Invalid signature: Content-Type must be multipart/form-data with a boundary, sent once"
    );
    assert_eq!(sandbox.media_count(), 1);
}

/// nxcloud-signing.md: ts within 60 000 ms of the server clock (a difference of more than
/// that is 1004). Held: a ts exactly 60 000 ms ahead is accepted (time only shrinks the
/// difference while the request travels), 60 001 ms behind is refused.
#[tokio::test]
async fn ts_window_edges() {
    let sandbox = Sandbox::start(SandboxConfig::default()).unwrap();
    let addr = sandbox.addr();
    let body = media_body(DEMO_BUSINESS_PHONE, "no-such-id");
    let call = |ts: u64| {
        format!(
            "POST /api/wa/getMedia HTTP/1.1\r\n{}Content-Type: application/json\r\n",
            nx_headers("getMedia", ts, Some(&body))
        )
    };
    let ahead = exchange(addr, &call(sandbox.now_millis() + 60_000), &body).await;
    assert_eq!(
        ahead.envelope().0,
        -1,
        "60 000 ms ahead is within the window"
    );
    let behind = exchange(addr, &call(sandbox.now_millis() - 60_001), &body).await;
    let (code, message) = behind.envelope();
    assert_eq!(code, 1004);
    assert!(message.starts_with("Timestamp expired: "), "{message}");
    // Seconds instead of milliseconds.
    let seconds = exchange(addr, &call(sandbox.now_millis() / 1000), &body).await;
    assert_eq!(seconds.envelope().0, 1004);
}

/// nxcloud-signing.md: the body is signed "exactly as the bytes that go on the wire (same
/// escaping; UTF-8)". Held: raw UTF-8 signed as sent passes; the same text sent with `\u`
/// escapes but signed in its raw form is 1003 (the server hashes the bytes, not the value).
#[tokio::test]
async fn non_ascii_bodies_are_signed_as_sent() {
    let sandbox = Sandbox::start(SandboxConfig::default()).unwrap();
    let addr = sandbox.addr();
    let utf8 = media_body(DEMO_BUSINESS_PHONE, "牛小信");
    let escaped = media_body(DEMO_BUSINESS_PHONE, r"\u725b\u5c0f\u4fe1");
    let head = |signed: &[u8]| {
        format!(
            "POST /api/wa/getMedia HTTP/1.1\r\n{}Content-Type: application/json; charset=utf-8\r\n",
            nx_headers("getMedia", sandbox.now_millis(), Some(signed))
        )
    };
    assert_eq!(exchange(addr, &head(&utf8), &utf8).await.envelope().0, -1);
    assert_eq!(
        exchange(addr, &head(&escaped), &escaped).await.envelope().0,
        -1
    );
    let (code, message) = exchange(addr, &head(&utf8), &escaped).await.envelope();
    assert_eq!(code, 1003);
    assert!(message.starts_with("Invalid signature: sign does not match"));
}

/// The download URL (nxcloud-wa-media.md: "fetched with a plain GET"). Was: any other method
/// was 405 with `Allow: GET`; the URL's signature covers the verb, as object storage's
/// pre-signed URLs do, so another method, HEAD included, is 403 `SignatureDoesNotMatch` (HEAD
/// without a body).
#[tokio::test]
async fn download_urls_are_signed_for_get_only() {
    let sandbox = Sandbox::start(SandboxConfig::default()).unwrap();
    let addr = sandbox.addr();
    let id = upload(&sandbox, "text/plain", "a.txt", b"hello").await;
    let url = common::get_media(&sandbox, DEMO_BUSINESS_PHONE, &id)
        .await
        .json()["data"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = path_of(&url);
    let get = exchange(addr, &format!("GET {path} HTTP/1.1\r\n"), b"").await;
    assert_eq!(get.status, 200);
    assert_eq!(get.body, b"hello");
    assert_eq!(get.header("content-type"), Some("text/plain"));
    for method in ["POST", "PUT", "DELETE"] {
        let answer = exchange(addr, &format!("{method} {path} HTTP/1.1\r\n"), b"").await;
        assert_eq!(answer.status, 403, "{method}");
        assert_eq!(answer.header("content-type"), Some("application/xml"));
        let xml = String::from_utf8(answer.body).unwrap();
        assert!(
            xml.contains("<Code>SignatureDoesNotMatch</Code>"),
            "{method}: {xml}"
        );
    }
    let head = exchange(addr, &format!("HEAD {path} HTTP/1.1\r\n"), b"").await;
    assert_eq!(head.status, 403);
    assert!(head.body.is_empty(), "a HEAD answer has no body");
    // The media is still there.
    let again = exchange(addr, &format!("GET {path} HTTP/1.1\r\n"), b"").await;
    assert_eq!(again.status, 200);
}

/// The download URL's query. Was: the sandbox read a raw `+` in the query as `+`, so a client
/// that decoded the URL (`%2B` -> `+`) and sent it so was served. Object storage reads the query
/// form-encoded, `+` a space, and refuses such a signature: now 403 `SignatureDoesNotMatch`.
/// Percent-escapes in either hex case are the same bytes.
#[tokio::test]
async fn a_signature_plus_sent_unencoded_is_a_space() {
    let sandbox = Sandbox::start(SandboxConfig::default()).unwrap();
    let addr = sandbox.addr();
    let id = upload(&sandbox, "text/plain", "a.txt", b"hello").await;
    // About half of the signatures hold a `+`; each second of the clock gives a new one.
    let mut path = None;
    for second in 0..200 {
        sandbox.set_clock_offset_ms(second * 1000);
        let url = common::get_media(&sandbox, DEMO_BUSINESS_PHONE, &id)
            .await
            .json()["data"]["url"]
            .as_str()
            .unwrap()
            .to_owned();
        if url.contains("%2B") {
            path = Some(path_of(&url));
            break;
        }
    }
    let path = path.expect("a signature with a `+` within 200 tries");
    let plus = path.replace("%2B", "+");
    let answer = exchange(addr, &format!("GET {plus} HTTP/1.1\r\n"), b"").await;
    assert_eq!(answer.status, 403);
    assert!(
        String::from_utf8(answer.body)
            .unwrap()
            .contains("<Code>SignatureDoesNotMatch</Code>")
    );
    let lower = path.replace("%2B", "%2b");
    let answer = exchange(addr, &format!("GET {lower} HTTP/1.1\r\n"), b"").await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, b"hello");
}

/// HTTP allows `Authorization` once. Was: a second one was ignored, so a request with a valid
/// token first and any other credentials after it was served. Now 401, code 1005, for the
/// media routes and the login alike.
#[tokio::test]
async fn authorization_is_sent_once_to_onprem() {
    let sandbox = Sandbox::start(SandboxConfig::default()).unwrap();
    let addr = sandbox.addr();
    let (token, _) = login(&sandbox).await;
    let id = onprem_upload(&sandbox, &token, "text/plain", b"hello").await;
    let once = exchange(
        addr,
        &format!("GET /v1/media/{id} HTTP/1.1\r\nAuthorization: Bearer {token}\r\n"),
        b"",
    )
    .await;
    assert_eq!(once.status, 200);
    assert_eq!(once.body, b"hello");
    let twice = exchange(
        addr,
        &format!(
            "GET /v1/media/{id} HTTP/1.1\r\nAuthorization: Bearer {token}\r\nAuthorization: Bearer other\r\n"
        ),
        b"",
    )
    .await;
    assert_eq!(twice.status, 401);
    assert_eq!(
        twice.meta_error(),
        (1005, "Authorization must be sent once.".to_owned())
    );
    let login_twice = exchange(
        addr,
        &format!(
            "POST /v1/users/login HTTP/1.1\r\nAuthorization: {0}\r\nAuthorization: {0}\r\n",
            basic()
        ),
        b"",
    )
    .await;
    assert_eq!(login_twice.status, 401);
    assert_eq!(login_twice.meta_error().0, 1005);
}

/// whatsapp-onprem-media.md: upload's `Content-Type` is the file's MIME type. Was: with two
/// (`image/jpeg`, `image/png`) the first was taken and the file stored. Now 400, code 1009,
/// nothing stored.
#[tokio::test]
async fn upload_content_type_is_sent_once_to_onprem() {
    let sandbox = Sandbox::start(SandboxConfig::default()).unwrap();
    let (token, _) = login(&sandbox).await;
    let answer = exchange(
        sandbox.addr(),
        &format!(
            "POST /v1/media HTTP/1.1\r\nAuthorization: Bearer {token}\r\nContent-Type: image/jpeg\r\nContent-Type: image/png\r\n"
        ),
        b"\xff\xd8\xff",
    )
    .await;
    assert_eq!(answer.status, 400);
    assert_eq!(
        answer.meta_error(),
        (
            1009,
            "Content-Type must be sent once: the file's MIME type.".to_owned()
        )
    );
    assert_eq!(sandbox.media_count(), 0);
}

/// whatsapp-onprem-media.md: retrieve answers 200 with `Content-Type` and `Content-Length`, a
/// missing id 404 with no body. Was: `HEAD` on the same path was 404 code 1006 "URL path not
/// found"; HTTP's HEAD is GET without the body (RFC 9110 §9.3.2), so now it answers the same
/// head.
#[tokio::test]
async fn head_on_retrieve_is_get_without_the_body() {
    let sandbox = Sandbox::start(SandboxConfig::default()).unwrap();
    let addr = sandbox.addr();
    let (token, _) = login(&sandbox).await;
    let id = onprem_upload(&sandbox, &token, "image/png", b"\x89PNG\r\n\x1a\nxyz").await;
    let auth = format!("Authorization: Bearer {token}\r\n");
    let head = exchange(
        addr,
        &format!("HEAD /v1/media/{id} HTTP/1.1\r\n{auth}"),
        b"",
    )
    .await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-type"), Some("image/png"));
    assert_eq!(head.header("content-length"), Some("11"));
    assert!(head.body.is_empty());
    let missing = exchange(
        addr,
        &format!("HEAD /v1/media/nope HTTP/1.1\r\n{auth}"),
        b"",
    )
    .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.header("content-type"), None);
    assert!(missing.body.is_empty());
    let get_missing = exchange(addr, &format!("GET /v1/media/nope HTTP/1.1\r\n{auth}"), b"").await;
    assert_eq!(get_missing.status, 404);
    assert_eq!(get_missing.header("content-length"), Some("0"));
    assert!(get_missing.body.is_empty(), "404 with no body");
    // Without a token, HEAD is refused like GET.
    let anonymous = exchange(addr, &format!("HEAD /v1/media/{id} HTTP/1.1\r\n"), b"").await;
    assert_eq!(anonymous.status, 401);
}

/// whatsapp-onprem-media.md: "A token is good until `expires_after`" (whole seconds). Was:
/// the token lived to the millisecond of its lifetime, up to 999 ms past the second
/// `expires_after` named. Now it is refused from that second on.
#[tokio::test]
async fn tokens_end_at_expires_after() {
    let sandbox = Sandbox::start(SandboxConfig::default()).unwrap();
    let addr = sandbox.addr();
    let (token, expires_after) = login(&sandbox).await;
    let (date, offset) = expires_after.split_at(19);
    assert_eq!(offset, "+00:00");
    let expires_ms = unix_secs(date) * 1000;
    assert!(expires_ms > sandbox.now_millis(), "{expires_after}");
    let retrieve = format!("GET /v1/media/nope HTTP/1.1\r\nAuthorization: Bearer {token}\r\n");
    let set_clock = |at_ms: u64| {
        let shift = at_ms as i64 - sandbox.now_millis() as i64;
        sandbox.set_clock_offset_ms(sandbox.clock_offset_ms() + shift);
    };
    // 900 ms before: the token is still good (404: the id is unknown, the call authorized).
    set_clock(expires_ms - 900);
    assert_eq!(exchange(addr, &retrieve, b"").await.status, 404);
    set_clock(expires_ms);
    let expired = exchange(addr, &retrieve, b"").await;
    assert_eq!(expired.status, 401);
    assert_eq!(expired.meta_error(), (1005, "Token expired.".to_owned()));
}

/// Unix seconds of `YYYY-MM-DD HH:MM:SS` (UTC), by Howard Hinnant's days-from-civil.
fn unix_secs(date: &str) -> u64 {
    let field = |r: std::ops::Range<usize>| date[r].parse::<i64>().unwrap();
    let (y, m, d) = (field(0..4), field(5..7), field(8..10));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + field(11..13) * 3600 + field(14..16) * 60 + field(17..19);
    u64::try_from(secs).unwrap()
}

/// whatsapp-onprem-media.md: retry-download is asynchronous; the answer only acknowledges it.
/// Was 200; now 202 Accepted (our reading: "the request is being processed"), with exactly
/// `{"media_items":[{"id"}],"meta"}`. An id that cannot be stored is 404 code 1006 at once.
#[tokio::test]
async fn retry_download_is_acknowledged_with_202() {
    let sandbox = Sandbox::start(SandboxConfig::default()).unwrap();
    let addr = sandbox.addr();
    let (token, _) = login(&sandbox).await;
    let id = onprem_upload(&sandbox, &token, "text/plain", b"hello").await;
    let auth = format!("Authorization: Bearer {token}\r\n");
    let ack = exchange(
        addr,
        &format!("GET /v1/media/{id}/download HTTP/1.1\r\n{auth}"),
        b"",
    )
    .await;
    assert_eq!(ack.status, 202);
    assert_eq!(ack.header("content-type"), Some("application/json"));
    assert_eq!(
        String::from_utf8(ack.body).unwrap(),
        format!(
            r#"{{"media_items":[{{"id":"{id}"}}],"meta":{{"api_status":"stable","version":"3.0.0.0"}}}}"#
        )
    );
    let unknown = exchange(
        addr,
        &format!("GET /v1/media/nope/download HTTP/1.1\r\n{auth}"),
        b"",
    )
    .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.meta_error(), (1006, "Media not found.".to_owned()));
}

/// whatsapp-onprem-media.md: "on the very first admin login the body `{"new_password":"..."}`
/// is required". Held: without it 400 code 1005; an empty new password 400 code 1009; with it
/// 200 and a token, the old password refused from then on, the new one needing no change.
#[tokio::test]
async fn first_login_changes_the_password() {
    let sandbox = Sandbox::start(
        SandboxConfig::default().onprem_users([OnPremUser::demo().must_change_password()]),
    )
    .unwrap();
    let addr = sandbox.addr();
    let login_as = |password: &str| {
        let pair = format!("{DEMO_ONPREM_USER}:{password}");
        format!(
            "POST /v1/users/login HTTP/1.1\r\nAuthorization: Basic {}\r\nContent-Type: application/json\r\n",
            STANDARD.encode(pair)
        )
    };
    let refused = exchange(addr, &login_as(DEMO_ONPREM_PASSWORD), b"{}").await;
    assert_eq!(refused.status, 400);
    assert_eq!(
        refused.meta_error(),
        (
            1005,
            "The password must be changed on the first login: send {\"new_password\":\"...\"}."
                .to_owned()
        )
    );
    let empty = exchange(
        addr,
        &login_as(DEMO_ONPREM_PASSWORD),
        br#"{"new_password":""}"#,
    )
    .await;
    assert_eq!(empty.status, 400);
    assert_eq!(empty.meta_error().0, 1009);
    let changed = exchange(
        addr,
        &login_as(DEMO_ONPREM_PASSWORD),
        br#"{"new_password":"n3w-Passw0rd"}"#,
    )
    .await;
    assert_eq!(changed.status, 200);
    let token = changed.json()["users"][0]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let retrieve = format!("GET /v1/media/nope HTTP/1.1\r\nAuthorization: Bearer {token}\r\n");
    assert_eq!(exchange(addr, &retrieve, b"").await.status, 404);
    let old = exchange(addr, &login_as(DEMO_ONPREM_PASSWORD), b"").await;
    assert_eq!(old.status, 401);
    assert_eq!(old.meta_error().0, 1005);
    assert_eq!(
        exchange(addr, &login_as("n3w-Passw0rd"), b"").await.status,
        200
    );
}

/// The media table's limits (5 MB image, 100 KB sticker; binary units, inclusive). Held, for
/// both APIs: exactly the limit is stored, one byte more is refused by the kind's limit
/// (NXCloud 1002, On-Premises 400 code 1009) and nothing is stored.
#[tokio::test]
async fn size_limits_are_inclusive_to_the_byte() {
    let sandbox = Sandbox::start(SandboxConfig::default()).unwrap();
    let addr = sandbox.addr();
    let image = 5 * 1024 * 1024;
    let upload_head = || {
        format!(
            "POST /api/wa/uploadMedia HTTP/1.1\r\n{}Content-Type: {}\r\n",
            nx_headers("uploadMedia", sandbox.now_millis(), None),
            multipart_type()
        )
    };
    let at = upload_form("image/jpeg", "a.jpg", &vec![0xff; image]);
    assert_eq!(exchange(addr, &upload_head(), &at).await.envelope().0, 0);
    let over = upload_form("image/jpeg", "a.jpg", &vec![0xff; image + 1]);
    assert_eq!(
        exchange(addr, &upload_head(), &over).await.envelope(),
        (
            1002,
            "Parameter error: image files may be at most 5242880 bytes; this one has 5242881 bytes"
                .to_owned()
        )
    );
    assert_eq!(sandbox.media_count(), 1);

    let (token, _) = login(&sandbox).await;
    let sticker = 100 * 1024;
    let head = format!(
        "POST /v1/media HTTP/1.1\r\nAuthorization: Bearer {token}\r\nContent-Type: image/webp\r\n"
    );
    assert_eq!(
        exchange(addr, &head, &vec![b'w'; sticker]).await.status,
        200
    );
    let over = exchange(addr, &head, &vec![b'w'; sticker + 1]).await;
    assert_eq!(over.status, 400);
    assert_eq!(
        over.meta_error(),
        (
            1009,
            "sticker files may be at most 102400 bytes; this one has 102401 bytes".to_owned()
        )
    );
    assert_eq!(sandbox.media_count(), 2);
}

/// Methods the specs do not give. Held: NXCloud's routes are POST only (405 with `Allow:
/// POST`, HEAD too, without a body); an On-Premises path with another method is Meta's 404
/// code 1006 "URL path not found." (after the token check).
#[tokio::test]
async fn other_methods_are_refused() {
    let sandbox = Sandbox::start(SandboxConfig::default()).unwrap();
    let addr = sandbox.addr();
    for method in ["GET", "HEAD", "PUT"] {
        let answer = exchange(
            addr,
            &format!("{method} /api/wa/getMedia HTTP/1.1\r\n"),
            b"",
        )
        .await;
        assert_eq!(answer.status, 405, "{method}");
        assert_eq!(answer.header("allow"), Some("POST"));
        assert_eq!(answer.body.is_empty(), method == "HEAD");
    }
    let (token, _) = login(&sandbox).await;
    for (method, path) in [
        ("PUT", "/v1/media/x"),
        ("POST", "/v1/media/x"),
        ("POST", "/v1/media/x/download"),
        ("GET", "/v1/media"),
    ] {
        let answer = exchange(
            addr,
            &format!("{method} {path} HTTP/1.1\r\nAuthorization: Bearer {token}\r\n"),
            b"",
        )
        .await;
        assert_eq!(answer.status, 404, "{method} {path}");
        assert_eq!(
            answer.meta_error(),
            (1006, "URL path not found.".to_owned()),
            "{method} {path}"
        );
    }
}

/// nxcloud-wa-media.md lists uploadMedia's form fields without an order (nor does RFC 7578
/// give one). Was: a form whose `file` came before `messaging_product` or `business_phone`
/// was answered 9001 "system business error" (the sandbox had not stored the file while it
/// streamed). Now any order is stored; a wrong field after the file is still refused with its
/// own code, and nothing is kept.
#[tokio::test]
async fn upload_fields_come_in_any_order() {
    let sandbox = Sandbox::start(SandboxConfig::default()).unwrap();
    let addr = sandbox.addr();
    let part = |name: &str, value: &str| {
        format!(
            "--{}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n",
            common::BOUNDARY
        )
    };
    let file = format!(
        "--{}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"late.txt\"\r\nContent-Type: text/plain\r\n\r\nhello\r\n",
        common::BOUNDARY
    );
    let end = format!("--{}--\r\n", common::BOUNDARY);
    let head = || {
        format!(
            "POST /api/wa/uploadMedia HTTP/1.1\r\n{}Content-Type: {}\r\n",
            nx_headers("uploadMedia", sandbox.now_millis(), None),
            multipart_type()
        )
    };
    let product = part("messaging_product", "whatsapp");
    let phone = part("business_phone", DEMO_BUSINESS_PHONE);
    let mime = part("type", "text/plain");
    for (order, form) in [
        ("file first", format!("{file}{product}{phone}{mime}{end}")),
        ("phone last", format!("{product}{file}{mime}{phone}{end}")),
        ("type last", format!("{product}{phone}{file}{mime}{end}")),
    ] {
        let answer = exchange(addr, &head(), form.as_bytes()).await;
        let (code, message) = answer.envelope();
        assert_eq!(
            (code, message.as_str()),
            (0, "Request successful"),
            "{order}"
        );
        let id = answer.json()["data"]["id"].as_str().unwrap().to_owned();
        let media = common::get_media(&sandbox, DEMO_BUSINESS_PHONE, &id)
            .await
            .json();
        assert_eq!(media["data"]["file_name"], "late.txt", "{order}");
        assert_eq!(media["data"]["mime_type"], "text/plain", "{order}");
    }
    assert_eq!(sandbox.media_count(), 3);
    let unbound = part("business_phone", "8613800138999");
    let form = format!("{product}{file}{mime}{unbound}{end}");
    let (code, _) = exchange(addr, &head(), form.as_bytes()).await.envelope();
    assert_eq!(code, 9006);
    let wrong = part("messaging_product", "WhatsApp");
    let form = format!("{file}{wrong}{phone}{mime}{end}");
    let (code, _) = exchange(addr, &head(), form.as_bytes()).await.envelope();
    assert_eq!(code, 1002);
    assert_eq!(sandbox.media_count(), 3);
}

/// uploadMedia's `type` is judged as sent (not trimmed). Was: a `type` of `image/jpeg` plus a
/// stray CRLF was refused as "MIME type `image/jpeg` is not in the media table", the control
/// characters dropped from the message, which then named an accepted type; now they are shown
/// escaped.
#[tokio::test]
async fn a_refused_type_is_shown_as_sent() {
    let sandbox = Sandbox::start(SandboxConfig::default()).unwrap();
    let head = format!(
        "POST /api/wa/uploadMedia HTTP/1.1\r\n{}Content-Type: {}\r\n",
        nx_headers("uploadMedia", sandbox.now_millis(), None),
        multipart_type()
    );
    let form = upload_form("image/jpeg\r\n", "a.jpg", b"\xff\xd8\xff");
    let (code, message) = exchange(sandbox.addr(), &head, &form).await.envelope();
    assert_eq!(code, 1002);
    assert!(
        message.starts_with(r"Parameter error: MIME type `image/jpeg\r\n` is not in the media table; accepted (spelled exactly so): image/jpeg, "),
        "{message}"
    );
}
