//! NXCloud routes driven with raw HTTP: the happy path, every error code path, the download URL.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use http_body_util::Full;
use nx_sandbox::{Account, DEMO_ACCESS_SECRET, DEMO_BUSINESS_PHONE, Route, Sandbox, SandboxConfig};

fn start() -> Sandbox {
    Sandbox::start(SandboxConfig::default()).unwrap()
}

#[tokio::test]
async fn upload_get_fetch_verify_delete() {
    let sandbox = start();
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let id = upload(&sandbox, "image/png", "logo.png", &bytes).await;
    assert_eq!(id.len(), 36, "uuid-like id: {id}");

    let answer = get_media(&sandbox, DEMO_BUSINESS_PHONE, &id).await;
    assert!(answer.header("date").is_some());
    assert!(
        answer
            .header("content-type")
            .unwrap()
            .starts_with("application/json")
    );
    let json = answer.json();
    assert_eq!(json["code"], 0);
    assert_eq!(json["message"], "Request successful");
    assert_eq!(json["data"]["mime_type"], "image/png");
    assert_eq!(json["data"]["file_name"], "logo.png");
    let url = json["data"]["url"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with(&format!("{}/oss/", sandbox.base_url())),
        "{url}"
    );
    assert!(
        url.contains("?Expires=")
            && url.contains("&OSSAccessKeyId=")
            && url.contains("&Signature=")
    );
    let expires: u64 = url
        .split("Expires=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let now = sandbox.now_millis() / 1000;
    assert!(
        (now + 295..=now + 301).contains(&expires),
        "default lifetime 300 s"
    );

    // A plain GET with no NXCloud headers.
    let download = get(sandbox.addr(), &path_of(&url)).await;
    assert_eq!(download.status, StatusCode::OK);
    assert_eq!(download.header("content-type"), Some("image/png"));
    assert_eq!(download.header("content-length"), Some("300000"));
    assert_eq!(sha256_hex(&download.body), sha256_hex(&bytes));

    let deleted = delete_media(&sandbox, DEMO_BUSINESS_PHONE, &id).await;
    assert_eq!(deleted.json()["code"], 0);
    assert_eq!(deleted.json()["data"]["success"], true);

    let gone = get_media(&sandbox, DEMO_BUSINESS_PHONE, &id).await;
    assert_eq!(gone.code(), -1);
    assert!(
        gone.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("Request failed")
    );
    assert!(gone.json()["data"].is_null());
    assert_eq!(
        delete_media(&sandbox, DEMO_BUSINESS_PHONE, &id)
            .await
            .code(),
        -1
    );
    // The old URL now finds nothing.
    let after = get(sandbox.addr(), &path_of(&url)).await;
    assert_eq!(after.status, StatusCode::NOT_FOUND);
    assert!(String::from_utf8_lossy(&after.body).contains("NoSuchKey"));
    assert_eq!(sandbox.media_count(), 0);
}

#[tokio::test]
async fn download_urls_expire_and_refuse_tampering() {
    let sandbox =
        Sandbox::start(SandboxConfig::default().url_lifetime(Duration::from_secs(60))).unwrap();
    let id = upload(&sandbox, "text/plain", "a.txt", b"hello").await;
    let url = get_media(&sandbox, DEMO_BUSINESS_PHONE, &id).await.json()["data"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = path_of(&url);
    assert_eq!(get(sandbox.addr(), &path).await.body, &b"hello"[..]);

    let forbidden = |a: &Answer, code: &str| {
        assert_eq!(
            a.status,
            StatusCode::FORBIDDEN,
            "{}",
            String::from_utf8_lossy(&a.body)
        );
        assert!(
            String::from_utf8_lossy(&a.body).contains(code),
            "{}",
            String::from_utf8_lossy(&a.body)
        );
    };
    // Tampered signature, tampered expiry, tampered key, wrong key id, missing or repeated params.
    let sig_at = path.find("Signature=").unwrap() + "Signature=".len();
    let mut bad_sig = path.clone();
    let c = if &bad_sig[sig_at..sig_at + 1] == "A" {
        "B"
    } else {
        "A"
    };
    bad_sig.replace_range(sig_at..sig_at + 1, c);
    forbidden(
        &get(sandbox.addr(), &bad_sig).await,
        "SignatureDoesNotMatch",
    );
    let later = path.replace("Expires=", "Expires=1");
    forbidden(&get(sandbox.addr(), &later).await, "SignatureDoesNotMatch");
    let key_at = "/oss/".len();
    let mut other_key = path.clone();
    let k = if &other_key[key_at..key_at + 1] == "0" {
        "1"
    } else {
        "0"
    };
    other_key.replace_range(key_at..key_at + 1, k);
    forbidden(
        &get(sandbox.addr(), &other_key).await,
        "SignatureDoesNotMatch",
    );
    forbidden(
        &get(
            sandbox.addr(),
            &path.replace("OSSAccessKeyId=", "OSSAccessKeyId=x"),
        )
        .await,
        "InvalidAccessKeyId",
    );
    forbidden(
        &get(sandbox.addr(), path.split('?').next().unwrap()).await,
        "AccessDenied",
    );
    forbidden(
        &get(sandbox.addr(), &format!("{path}&Expires=1")).await,
        "AccessDenied",
    );
    // A client that decodes the percent-encoded signature breaks it (when it has such bytes).
    if path.contains('%') {
        let decoded = path
            .replace("%2B", "+")
            .replace("%2F", "/")
            .replace("%3D", "=");
        let answer = get(sandbox.addr(), &decoded).await;
        let url_has_plus = decoded[sig_at..].contains('+');
        if url_has_plus {
            // The query is form-encoded: the `+` arrives as a space.
            forbidden(&answer, "SignatureDoesNotMatch");
        } else {
            assert_eq!(
                answer.status,
                StatusCode::OK,
                "unreserved decoding is harmless"
            );
        }
    }

    // Expiry by the sandbox clock: 50 s later still fine, 61.5 s later refused.
    sandbox.set_clock_offset_ms(50_000);
    assert_eq!(get(sandbox.addr(), &path).await.status, StatusCode::OK);
    sandbox.set_clock_offset_ms(61_500);
    forbidden(&get(sandbox.addr(), &path).await, "Request has expired");

    // Another method: the URL is signed for GET, and the verb is signed.
    let post = Request::post(&path)
        .header("host", "x")
        .body(Full::new(Bytes::new()))
        .unwrap();
    forbidden(
        &send(sandbox.addr(), post).await.unwrap(),
        "SignatureDoesNotMatch",
    );
    // A key of any form, unsigned: 403 before any lookup (404 would tell which keys exist).
    for unsigned in ["/oss/../api", "/oss/", "/oss/nosuchkey"] {
        forbidden(&get(sandbox.addr(), unsigned).await, "AccessDenied");
    }
    // A signed URL whose key was changed to an odd one: its signature no longer matches.
    let odd = path.replacen("/oss/", "/oss/..%2F", 1);
    forbidden(&get(sandbox.addr(), &odd).await, "SignatureDoesNotMatch");
}

#[tokio::test]
async fn authentication_codes_in_order() {
    let sandbox = start();
    let addr = sandbox.addr();
    let id = upload(&sandbox, "image/jpeg", "a.jpg", b"\xff\xd8\xffjpeg").await;
    let body = media_body(DEMO_BUSINESS_PHONE, &id);
    let path = "/api/wa/getMedia";
    let base = Signed::new(&sandbox, "getMedia");
    let code = |signed: Signed, body: Vec<u8>| async move {
        let answer = send(addr, signed.json(addr, path, &body)).await.unwrap();
        assert!(answer.header("date").is_some());
        (
            answer.code(),
            answer.json()["message"].as_str().unwrap().to_owned(),
        )
    };

    assert_eq!(code(base.clone(), body.clone()).await.0, 0);

    for header in ["accessKey", "ts", "bizType", "action", "sign"] {
        let mut s = base.clone();
        s.omit.push(header);
        let (c, message) = code(s, body.clone()).await;
        assert_eq!(c, 1001, "missing {header}");
        assert!(message.contains(header), "{message}");
    }
    // An empty header counts as absent.
    let mut s = base.clone();
    s.ts = String::new();
    assert_eq!(code(s, body.clone()).await.0, 1001);
    // 1001 comes before 1002: missing sign and a wrong bizType.
    let mut s = base.clone();
    s.omit.push("sign");
    s.biz = "1".into();
    assert_eq!(code(s, body.clone()).await.0, 1001);

    let mut s = base.clone();
    s.biz = "1".into();
    assert_eq!(code(s, body.clone()).await.0, 1002);
    let mut s = base.clone();
    s.action = "deleteMedia".into();
    assert_eq!(
        code(s, body.clone()).await.0,
        1002,
        "action must match the path"
    );
    let mut s = base.clone();
    s.extra.push(("accessKey", "demo-access-key".into()));
    assert_eq!(code(s, body.clone()).await.0, 1002, "repeated header");
    // 1002 before 1005.
    let mut s = base.clone();
    s.biz = "3".into();
    s.key = "nobody".into();
    assert_eq!(code(s, body.clone()).await.0, 1002);

    let mut s = base.clone();
    s.key = "nobody".into();
    assert_eq!(code(s, body.clone()).await.0, 1005);
    // 1005 before 1004.
    let mut s = base.clone();
    s.key = "nobody".into();
    s.ts = "1".into();
    assert_eq!(code(s, body.clone()).await.0, 1005);

    // ts in seconds, skewed, garbage.
    for ts in [
        (sandbox.now_millis() / 1000).to_string(),
        (sandbox.now_millis() - 70_000).to_string(),
        (sandbox.now_millis() + 70_000).to_string(),
        "abc".to_owned(),
        "-5".to_owned(),
        "99999999999999999999999".to_owned(),
    ] {
        let mut s = base.clone();
        s.ts = ts.clone();
        assert_eq!(code(s, body.clone()).await.0, 1004, "ts {ts}");
    }
    let mut s = base.clone();
    s.ts = (sandbox.now_millis() - 50_000).to_string();
    assert_eq!(
        code(s, body.clone()).await.0,
        0,
        "50 s of skew is within the window"
    );
    // 1004 before 1003.
    let mut s = base.clone();
    s.ts = "1".into();
    s.sign = Some("0".repeat(32));
    assert_eq!(code(s, body.clone()).await.0, 1004);

    // Wrong secret, body signed differently from the body sent, upper case, wrong content type.
    let mut s = base.clone();
    s.secret = "not-the-secret".into();
    assert_eq!(code(s, body.clone()).await.0, 1003);
    let mut s = base.clone();
    let pretty = format!(
        "{{\n  \"business_phone\": \"{DEMO_BUSINESS_PHONE}\",\n  \"Media-ID\": \"{id}\",\n  \"messaging_product\": \"whatsapp\"\n}}"
    );
    s.sign = Some(md5_sign(
        &s.key,
        "getMedia",
        "2",
        &s.ts,
        Some(pretty.as_bytes()),
        DEMO_ACCESS_SECRET,
    ));
    assert_eq!(
        code(s, body.clone()).await.0,
        1003,
        "signed bytes differ from sent bytes"
    );
    let mut s = base.clone();
    s.sign = Some(
        md5_sign(
            &s.key,
            "getMedia",
            "2",
            &s.ts,
            Some(&body),
            DEMO_ACCESS_SECRET,
        )
        .to_uppercase(),
    );
    assert_eq!(code(s, body.clone()).await.0, 1003, "upper-case hex");
    let mut s = base.clone();
    s.sign = Some(md5_sign(
        &s.key,
        "getMedia",
        "2",
        &s.ts,
        None,
        DEMO_ACCESS_SECRET,
    ));
    assert_eq!(
        code(s, body.clone()).await.0,
        1003,
        "JSON bodies are signed with the body"
    );
    let mut s = base.clone();
    s.content_type = Some("text/plain".into());
    let (c, message) = code(s, body.clone()).await;
    assert_eq!(c, 1003);
    assert!(message.contains("Content-Type"), "{message}");
    let mut s = base.clone();
    s.content_type = None;
    assert_eq!(code(s, body.clone()).await.0, 1003);
    let mut s = base.clone();
    s.content_type = Some("Application/JSON; charset=utf-8".into());
    assert_eq!(
        code(s, body.clone()).await.0,
        0,
        "parameters and case are fine"
    );
    // A trailing newline after signing is a different body.
    let mut s = base.clone();
    s.sign = Some(md5_sign(
        &s.key,
        "getMedia",
        "2",
        &s.ts,
        Some(&body),
        DEMO_ACCESS_SECRET,
    ));
    let mut with_newline = body.clone();
    with_newline.push(b'\n');
    assert_eq!(code(s, with_newline).await.0, 1003);
}

#[tokio::test]
async fn body_field_codes() {
    let sandbox = Sandbox::start(
        SandboxConfig::default()
            .account(Account::new("other-key", "other-secret").phone("8613700137000")),
    )
    .unwrap();
    let addr = sandbox.addr();
    let id = upload(&sandbox, "image/jpeg", "a.jpg", b"\xff\xd8\xffjpeg").await;
    let base = Signed::new(&sandbox, "deleteMedia");
    let code = |body: String| {
        let base = base.clone();
        async move {
            let answer = send(
                addr,
                base.json(addr, "/api/wa/deleteMedia", body.as_bytes()),
            )
            .await
            .unwrap();
            answer.code()
        }
    };
    let p = DEMO_BUSINESS_PHONE;
    assert_eq!(code(String::new()).await, 9000, "empty body");
    assert_eq!(code("{not json".into()).await, 9000);
    assert_eq!(code("[1,2]".into()).await, 9000);
    assert_eq!(
        code(format!(
            r#"{{"business_phone":"{p}","media_id":"{id}","messaging_product":"whatsapp"}}"#
        ))
        .await,
        9000,
        "the key is Media-ID, exactly"
    );
    assert_eq!(
        code(format!(
            r#"{{"business_phone":"{p}","media-id":"{id}","messaging_product":"whatsapp"}}"#
        ))
        .await,
        9000
    );
    assert_eq!(
        code(format!(r#"{{"business_phone":"{p}","Media-ID":"{id}"}}"#)).await,
        9000
    );
    assert_eq!(
        code(format!(
            r#"{{"business_phone":"{p}","Media-ID":"{id}","messaging_product":"sms"}}"#
        ))
        .await,
        1002,
        "present but wrong: a wrong body parameter"
    );
    assert_eq!(
        code(format!(
            r#"{{"business_phone":"{p}","Media-ID":"","messaging_product":"whatsapp"}}"#
        ))
        .await,
        9000
    );
    assert_eq!(
        code(format!(
            r#"{{"business_phone":8613800138000,"Media-ID":"{id}","messaging_product":"whatsapp"}}"#
        ))
        .await,
        1002,
        "numbers are not strings: present but wrong"
    );
    assert_eq!(
        code(format!(
            r#"{{"business_phone":"+{p}","Media-ID":"{id}","messaging_product":"whatsapp"}}"#
        ))
        .await,
        9002
    );
    assert_eq!(
        code(format!(
            r#"{{"business_phone":"86 138","Media-ID":"{id}","messaging_product":"whatsapp"}}"#
        ))
        .await,
        9002
    );
    assert_eq!(
        code(String::from_utf8(media_body("8613700137000", &id)).unwrap()).await,
        9006,
        "bound to another account"
    );
    assert_eq!(
        code(String::from_utf8(media_body("123456", &id)).unwrap()).await,
        9006
    );
    assert_eq!(
        code(String::from_utf8(media_body(p, "no-such-id")).unwrap()).await,
        -1
    );
    assert_eq!(
        code(String::from_utf8(media_body(p, &id)).unwrap()).await,
        0
    );
}

/// getMedia with `body` (signed over exactly those bytes): the code and the message.
async fn json_code(sandbox: &Sandbox, body: &str) -> (i64, String) {
    let addr = sandbox.addr();
    let signed = Signed::new(sandbox, "getMedia");
    let answer = send(addr, signed.json(addr, "/api/wa/getMedia", body.as_bytes()))
        .await
        .unwrap();
    let message = answer.json()["message"].as_str().unwrap().to_owned();
    (answer.code(), message)
}

#[tokio::test]
async fn wrong_values_are_1002_missing_ones_9000() {
    let sandbox = start();
    let id = upload(&sandbox, "image/jpeg", "a.jpg", b"\xff\xd8\xffjpeg").await;
    let p = DEMO_BUSINESS_PHONE;
    for product in ["sms", "WhatsApp", " whatsapp", "whatsapp\n"] {
        let product = serde_json::to_string(product).unwrap();
        let (c, message) = json_code(
            &sandbox,
            &format!(
                r#"{{"business_phone":"{p}","Media-ID":"{id}","messaging_product":{product}}}"#
            ),
        )
        .await;
        assert_eq!(c, 1002, "{product}: {message}");
        assert!(message.contains("messaging_product"), "{message}");
    }
    for product in [r#""""#, "null"] {
        let (c, message) = json_code(
            &sandbox,
            &format!(
                r#"{{"business_phone":"{p}","Media-ID":"{id}","messaging_product":{product}}}"#
            ),
        )
        .await;
        assert_eq!(c, 9000, "{product}: {message}");
    }
    let (c, _) = json_code(
        &sandbox,
        &format!(
            r#"{{"business_phone":"{p}","Media-ID":["{id}"],"messaging_product":"whatsapp"}}"#
        ),
    )
    .await;
    assert_eq!(c, 1002, "an array is not a string");
    // Missing comes before wrong: 9000 although messaging_product is also wrong.
    let (c, message) = json_code(
        &sandbox,
        &format!(r#"{{"business_phone":"{p}","messaging_product":"sms"}}"#),
    )
    .await;
    assert_eq!(c, 9000, "{message}");
    assert!(message.contains("Media-ID"), "{message}");
}

#[tokio::test]
async fn json_duplicate_keys_and_long_values_are_refused() {
    let sandbox = start();
    let id = upload(&sandbox, "image/jpeg", "a.jpg", b"\xff\xd8\xffjpeg").await;
    let p = DEMO_BUSINESS_PHONE;
    // serde_json's maps would keep the last value of each of these, which is the right one.
    let repeated = [
        format!(
            r#"{{"business_phone":"{p}","Media-ID":"{id}","messaging_product":"sms","messaging_product":"whatsapp"}}"#
        ),
        format!(
            r#"{{"business_phone":"{p}","Media-ID":"other","Media-ID":"{id}","messaging_product":"whatsapp"}}"#
        ),
        format!(
            r#"{{"business_phone":"8613700137000","Media-ID":"{id}","messaging_product":"whatsapp","business_phone":"{p}"}}"#
        ),
        // The same key once escaped: still the same key.
        format!(
            r#"{{"business_phone":"{p}","Media\u002dID":"{id}","Media-ID":"{id}","messaging_product":"whatsapp"}}"#
        ),
    ];
    for body in &repeated {
        let (c, message) = json_code(&sandbox, body).await;
        assert_eq!(c, 1002, "{body}: {message}");
        assert!(message.contains("more than once"), "{message}");
    }
    // Keys the sandbox does not read may repeat and nest; values at 1 KiB are read.
    let (c, message) = json_code(
        &sandbox,
        &format!(
            r#"{{"x":1,"business_phone":"{p}","x":[{{"x":null}}],"Media-ID":"{id}","messaging_product":"whatsapp","x":"{}"}}"#,
            "y".repeat(5000)
        ),
    )
    .await;
    assert_eq!(c, 0, "{message}");
    let at_limit = "m".repeat(1024);
    let (c, message) = json_code(
        &sandbox,
        &format!(
            r#"{{"business_phone":"{p}","Media-ID":"{at_limit}","messaging_product":"whatsapp"}}"#
        ),
    )
    .await;
    assert_eq!(c, -1, "read, then not found: {message}");
    // Over 1 KiB: refused before it is looked up.
    let over = "m".repeat(1025);
    let (c, message) = json_code(
        &sandbox,
        &format!(
            r#"{{"business_phone":"{p}","Media-ID":"{over}","messaging_product":"whatsapp"}}"#
        ),
    )
    .await;
    assert_eq!(c, 1002, "{message}");
    assert!(message.contains("longer than 1024 bytes"), "{message}");
    let long_phone = "8".repeat(1025);
    let (c, message) = json_code(
        &sandbox,
        &format!(r#"{{"business_phone":"{long_phone}","Media-ID":"{id}","messaging_product":"whatsapp"}}"#),
    )
    .await;
    assert_eq!(c, 1002, "{message}");
    assert!(message.contains("business_phone"), "{message}");
    // Nothing was deleted or changed by the refused calls.
    assert_eq!(get_media(&sandbox, p, &id).await.code(), 0);
}

#[tokio::test]
async fn form_values_are_judged_as_sent() {
    let sandbox = start();
    let addr = sandbox.addr();
    let phone = DEMO_BUSINESS_PHONE;
    let send_form = |body: Vec<u8>| {
        let signed = upload_signed(&sandbox);
        async move {
            let answer = send(addr, signed.multipart(addr, body)).await.unwrap();
            (
                answer.code(),
                answer.json()["message"].as_str().unwrap().to_owned(),
            )
        }
    };
    let with = |product: &str, phone: &str, mime: &str| {
        form(
            &[
                ("messaging_product", product),
                ("business_phone", phone),
                ("type", mime),
            ],
            Some(("a.ogg", "audio/ogg", b"OggS")),
        )
    };
    let cases = [
        (
            with(" whatsapp", phone, "audio/ogg"),
            1002,
            "messaging_product",
        ),
        (
            with("whatsapp ", phone, "audio/ogg"),
            1002,
            "messaging_product",
        ),
        (
            with("whatsapp\r\n", phone, "audio/ogg"),
            1002,
            "messaging_product",
        ),
        (
            with("\twhatsapp", phone, "audio/ogg"),
            1002,
            "messaging_product",
        ),
        (
            with("WHATSAPP", phone, "audio/ogg"),
            1002,
            "messaging_product",
        ),
        (
            with("whatsapp", &format!(" {phone}"), "audio/ogg"),
            9002,
            "business_phone",
        ),
        (
            with("whatsapp", &format!("{phone}\r\n"), "audio/ogg"),
            9002,
            "business_phone",
        ),
        (
            with("whatsapp", phone, "audio/ogg "),
            1002,
            "not in the media table",
        ),
        (
            with("whatsapp", phone, "\r\naudio/ogg"),
            1002,
            "not in the media table",
        ),
        (
            with("whatsapp", phone, "Audio/OGG"),
            1002,
            "not in the media table",
        ),
        (
            with("whatsapp", phone, "audio/ogg; codecs=opus"),
            1002,
            "not in the media table",
        ),
        (
            with("whatsapp", phone, "audio/ogg;codecs=opus"),
            1002,
            "not in the media table",
        ),
        (
            with("whatsapp", phone, &"a".repeat(1025)),
            1002,
            "longer than 1024 bytes",
        ),
        (with("", phone, "audio/ogg"), 9000, "messaging_product"),
    ];
    for (body, expected, needle) in cases {
        let (c, message) = send_form(body).await;
        assert_eq!(c, expected, "{message}");
        assert!(
            message.contains(needle),
            "{message} should mention {needle}"
        );
    }
    assert_eq!(sandbox.media_count(), 0, "nothing refused was kept");
    // The table's own spellings are accepted.
    let (c, message) = send_form(with("whatsapp", phone, "audio/ogg")).await;
    assert_eq!(c, 0, "{message}");
}

#[tokio::test]
async fn media_belongs_to_its_phone() {
    let sandbox =
        Sandbox::start(SandboxConfig::default().accounts([Account::demo().phone("8613600136000")]))
            .unwrap();
    let id = upload(&sandbox, "text/plain", "a.txt", b"x").await;
    assert_eq!(get_media(&sandbox, "8613600136000", &id).await.code(), -1);
    assert_eq!(
        get_media(&sandbox, DEMO_BUSINESS_PHONE, &id).await.code(),
        0
    );
}

#[tokio::test]
async fn oversized_json_bodies_are_refused_unread() {
    let sandbox = Sandbox::start(SandboxConfig::default().max_json_body(1024)).unwrap();
    let addr = sandbox.addr();
    let signed = Signed::new(&sandbox, "getMedia");
    let big = vec![b' '; 2048];
    let answer = send(addr, signed.json(addr, "/api/wa/getMedia", &big))
        .await
        .unwrap();
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    // Announced as huge but never sent: answered at once from the Content-Length.
    let head = "POST /api/wa/getMedia HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n{";
    let reply = raw(addr, head.as_bytes()).await;
    assert!(
        String::from_utf8_lossy(&reply).starts_with("HTTP/1.1 413"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    // Chunked without a length: capped while reading.
    let mut chunked = b"POST /api/wa/getMedia HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..4 {
        chunked.extend_from_slice(b"200\r\n");
        chunked.extend_from_slice(&[b' '; 512]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let reply = raw(addr, &chunked).await;
    assert!(String::from_utf8_lossy(&reply).starts_with("HTTP/1.1 413"));
    // At the limit it is read (and then judged on its merits).
    let at_limit = vec![b' '; 1024];
    let answer = send(addr, signed.json(addr, "/api/wa/getMedia", &at_limit))
        .await
        .unwrap();
    assert_eq!(answer.code(), 9000);
}

#[tokio::test]
async fn clock_offset_shows_in_date_and_ts_checks() {
    let sandbox = Sandbox::start(SandboxConfig::default().clock_offset_ms(3_600_000)).unwrap();
    let id = upload(&sandbox, "text/plain", "a.txt", b"x").await;
    let addr = sandbox.addr();
    let mut signed = Signed::new(&sandbox, "getMedia");
    let real_now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    signed.ts = real_now.to_string();
    let answer = send(
        addr,
        signed.json(
            addr,
            "/api/wa/getMedia",
            &media_body(DEMO_BUSINESS_PHONE, &id),
        ),
    )
    .await
    .unwrap();
    assert_eq!(answer.code(), 1004);
    let date = httpdate::parse_http_date(answer.header("date").unwrap()).unwrap();
    let date_ms = date.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    assert!(
        date_ms.abs_diff(real_now + 3_600_000) < 5_000,
        "Date shows the sandbox clock"
    );
    // A client that corrects its clock from Date succeeds.
    signed.ts = date_ms.to_string();
    let answer = send(
        addr,
        signed.json(
            addr,
            "/api/wa/getMedia",
            &media_body(DEMO_BUSINESS_PHONE, &id),
        ),
    )
    .await
    .unwrap();
    assert_eq!(answer.code(), 0);
    sandbox.set_clock_offset_ms(0);
    assert_eq!(sandbox.clock_offset_ms(), 0);
}

fn upload_signed(sandbox: &Sandbox) -> Signed {
    let mut signed = Signed::new(sandbox, "uploadMedia");
    signed.content_type = Some(multipart_type());
    signed
}

#[tokio::test]
async fn upload_codes() {
    let sandbox = start();
    let addr = sandbox.addr();
    let phone = DEMO_BUSINESS_PHONE;
    let send_form = |signed: Signed, body: Vec<u8>| async move {
        let answer = send(addr, signed.multipart(addr, body)).await.unwrap();
        (
            answer.code(),
            answer.json()["message"].as_str().unwrap().to_owned(),
        )
    };
    let ok = upload_form("image/jpeg", "a.jpg", b"jpeg");
    assert_eq!(send_form(upload_signed(&sandbox), ok.clone()).await.0, 0);

    // Signed with the body (wrong for multipart), wrong content type, missing boundary.
    let mut s = upload_signed(&sandbox);
    s.sign = Some(md5_sign(
        &s.key,
        "uploadMedia",
        "2",
        &s.ts,
        Some(&ok),
        DEMO_ACCESS_SECRET,
    ));
    assert_eq!(send_form(s, ok.clone()).await.0, 1003);
    let mut s = upload_signed(&sandbox);
    s.content_type = Some("application/json".into());
    assert_eq!(send_form(s, ok.clone()).await.0, 1003);
    let mut s = upload_signed(&sandbox);
    s.content_type = Some("multipart/form-data".into());
    assert_eq!(send_form(s, ok.clone()).await.0, 1003);
    let mut s = upload_signed(&sandbox);
    s.action = "getMedia".into();
    assert_eq!(send_form(s, ok.clone()).await.0, 1002);
    let mut s = upload_signed(&sandbox);
    s.omit.push("ts");
    assert_eq!(send_form(s, ok.clone()).await.0, 1001);

    let fields = |product: &str, phone: &str, mime: &str| {
        vec![
            ("messaging_product", product.to_owned()),
            ("business_phone", phone.to_owned()),
            ("type", mime.to_owned()),
        ]
    };
    let build = |fields: Vec<(&'static str, String)>, file: Option<(&str, &str, &[u8])>| {
        let refs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        form(&refs, file)
    };
    let jpeg: &[u8] = b"jpeg";
    let cases: Vec<(Vec<u8>, i64, &str)> = vec![
        (
            build(fields("whatsapp", phone, "image/jpeg"), None),
            9000,
            "file",
        ),
        (
            build(
                fields("whatsapp", phone, "image/jpeg")[1..].to_vec(),
                Some(("a", "image/jpeg", jpeg)),
            ),
            9000,
            "messaging_product",
        ),
        (
            build(
                fields("sms", phone, "image/jpeg"),
                Some(("a", "image/jpeg", jpeg)),
            ),
            1002,
            "whatsapp",
        ),
        (
            build(
                fields("whatsapp", "+86138", "image/jpeg"),
                Some(("a", "image/jpeg", jpeg)),
            ),
            9002,
            "",
        ),
        (
            build(
                fields("whatsapp", "123456", "image/jpeg"),
                Some(("a", "image/jpeg", jpeg)),
            ),
            9006,
            "",
        ),
        (
            build(
                fields("whatsapp", phone, "image/gif"),
                Some(("a", "image/gif", jpeg)),
            ),
            1002,
            "image/gif",
        ),
        (
            build(
                fields("whatsapp", phone, "image"),
                Some(("a", "image/jpeg", jpeg)),
            ),
            1002,
            "accepted",
        ),
        (
            build(
                fields("whatsapp", phone, "image/jpeg"),
                Some(("a", "image/jpeg", b"")),
            ),
            9000,
            "empty",
        ),
        (
            build(
                fields("whatsapp", phone, "image/webp"),
                Some(("s.webp", "image/webp", &vec![0u8; 100 * 1024 + 1])),
            ),
            1002,
            "at most 102400 bytes",
        ),
        (
            {
                let mut f = fields("whatsapp", phone, "image/jpeg");
                f.push(("type", "image/png".into()));
                build(f, Some(("a", "image/jpeg", jpeg)))
            },
            1002,
            "more than once",
        ),
        (b"this is not a multipart body".to_vec(), 9000, "malformed"),
    ];
    for (body, expected, needle) in cases {
        let (c, message) = send_form(upload_signed(&sandbox), body).await;
        assert_eq!(c, expected, "{message}");
        assert!(
            message.contains(needle),
            "{message} should mention {needle}"
        );
    }
    // A sticker exactly at the limit is fine; the file may come before the type.
    let at_limit = vec![7u8; 100 * 1024];
    let body = form(
        &[("messaging_product", "whatsapp"), ("business_phone", phone)],
        Some(("s.webp", "image/webp", &at_limit)),
    );
    let mut body = body[..body.len() - format!("--{BOUNDARY}--\r\n").len()].to_vec();
    body.extend_from_slice(format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\nimage/webp\r\n--{BOUNDARY}--\r\n").as_bytes());
    let (c, message) = send_form(upload_signed(&sandbox), body).await;
    assert_eq!(c, 0, "{message}");
    // Only the successful uploads were kept.
    assert_eq!(sandbox.media_count(), 2);
    assert!(sandbox.log().for_route(Route::UploadMedia).len() >= 17);
}

#[tokio::test]
async fn large_upload_is_streamed_and_checked() {
    let sandbox = start();
    let addr = sandbox.addr();
    // 17 MB of video: over the 16 MB limit, refused with the limit in the message.
    let video = vec![1u8; 17 * 1024 * 1024];
    let answer = send(
        addr,
        upload_signed(&sandbox).multipart(addr, upload_form("video/mp4", "v.mp4", &video)),
    )
    .await
    .unwrap();
    assert_eq!(answer.code(), 1002, "over the limit: a wrong file");
    assert!(
        answer.json()["message"]
            .as_str()
            .unwrap()
            .contains("16777216")
    );
    // 20 MB document: stored and served back intact.
    let doc: Vec<u8> = (0..20 * 1024 * 1024u32)
        .map(|i| (i * 7 % 256) as u8)
        .collect();
    let id = upload(&sandbox, "application/pdf", "big.pdf", &doc).await;
    let url = get_media(&sandbox, DEMO_BUSINESS_PHONE, &id).await.json()["data"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let download = get(addr, &path_of(&url)).await;
    assert_eq!(download.body.len(), doc.len());
    assert_eq!(sha256_hex(&download.body), sha256_hex(&doc));
    assert_eq!(sandbox.media_count(), 1);
}

#[tokio::test]
async fn other_methods_and_paths() {
    let sandbox = start();
    let answer = get(sandbox.addr(), "/api/wa/getMedia").await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        get(sandbox.addr(), "/api/wa/sendMessage").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(get(sandbox.addr(), "/").await.status, StatusCode::NOT_FOUND);
}

/// `Debug` of the configuration and of a running sandbox: no secret, no password, no webhook
/// token or user info; a webhook URL with user info is refused without showing it.
#[test]
fn debug_output_never_holds_secrets() {
    let config = SandboxConfig::default()
        .account(Account::new("k", "account-secret").phone("8613800138000"))
        .webhook_url("http://127.0.0.1:9/hook?token=hook-secret")
        .onprem_callback_url("http://127.0.0.1:9/cb#frag-secret");
    let shown = format!("{config:?}");
    let sandbox = Sandbox::start(config).unwrap();
    let shown = format!("{shown} {sandbox:?}");
    for secret in [
        "account-secret",
        DEMO_ACCESS_SECRET,
        nx_sandbox::DEMO_ONPREM_PASSWORD,
        "hook-secret",
        "frag-secret",
    ] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert!(shown.contains("http://127.0.0.1:9/hook"), "{shown}");
    let error = Sandbox::start(
        SandboxConfig::default().webhook_url("http://user:user-secret@127.0.0.1:9/hook"),
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("user info"), "{error}");
    assert!(!error.contains("user-secret"), "{error}");
    let error = sandbox
        .set_webhook_url(Some("http://user:user-secret@127.0.0.1:9/hook"))
        .unwrap_err()
        .to_string();
    assert!(!error.contains("user-secret"), "{error}");
}

#[tokio::test]
async fn the_log_never_holds_secrets() {
    let sandbox = start();
    let id = upload(&sandbox, "text/plain", "a.txt", b"x").await;
    let answer = get_media(&sandbox, DEMO_BUSINESS_PHONE, &id).await;
    let url = answer.json()["data"]["url"].as_str().unwrap().to_owned();
    get(sandbox.addr(), &path_of(&url)).await;
    let mut bad = Signed::new(&sandbox, "getMedia");
    bad.secret = "wrong".into();
    send(
        sandbox.addr(),
        bad.json(
            sandbox.addr(),
            "/api/wa/getMedia",
            &media_body(DEMO_BUSINESS_PHONE, &id),
        ),
    )
    .await
    .unwrap();
    let entries = sandbox.log().entries();
    assert_eq!(entries.len(), 4);
    assert_eq!(entries[1].action.as_deref(), Some("getMedia"));
    assert_eq!(entries[1].code, Some(0));
    assert_eq!(entries[3].code, Some(1003));
    assert_eq!(entries[2].route, Route::OssDownload);
    assert_eq!(entries[2].status, Some(200));
    let signature = url.split("Signature=").nth(1).unwrap();
    let text = format!(
        "{entries:?} {}",
        entries
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
    for secret in [DEMO_ACCESS_SECRET, "Signature", "Expires", signature, "?"] {
        assert!(!text.contains(secret), "log leaks {secret}: {text}");
    }
    let debug = format!("{sandbox:?}");
    assert!(
        !debug.contains(DEMO_ACCESS_SECRET) && !debug.contains("demo-password"),
        "{debug}"
    );
}

#[tokio::test]
async fn concurrent_clients() {
    let sandbox = start();
    let id = upload(&sandbox, "text/plain", "a.txt", b"shared").await;
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let addr = sandbox.addr();
        let signed = Signed::new(&sandbox, "getMedia");
        let body = media_body(DEMO_BUSINESS_PHONE, &id);
        tasks.push(tokio::spawn(async move {
            send(addr, signed.json(addr, "/api/wa/getMedia", &body))
                .await
                .unwrap()
                .code()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 0);
    }
}

#[tokio::test]
async fn malformed_forms_fail_without_buffering_them() {
    let sandbox = start();
    let addr = sandbox.addr();
    // 12 MiB with no boundary at all, and a part whose headers never end.
    let no_boundary = vec![b'x'; 12 << 20];
    let mut endless_headers =
        format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"\r\n").into_bytes();
    while endless_headers.len() < 12 << 20 {
        endless_headers
            .extend_from_slice(b"X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    for body in [no_boundary, endless_headers] {
        let answer = send(addr, upload_signed(&sandbox).multipart(addr, body)).await;
        // The sandbox reads the rest (discarding it), then answers 9000; nothing is stored.
        let answer = answer.unwrap();
        assert_eq!(answer.code(), 9000);
        assert!(
            answer.json()["message"]
                .as_str()
                .unwrap()
                .contains("malformed")
        );
    }
    assert_eq!(sandbox.media_count(), 0);
    assert!(
        sandbox
            .log()
            .for_route(Route::UploadMedia)
            .iter()
            .all(|e| e.code == Some(9000))
    );
}
