//! On-Premises routes and the inbound simulation, driven with raw HTTP.

mod common;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use common::*;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use nx_sandbox::{
    DEMO_BUSINESS_PHONE, DEMO_CUSTOMER_PHONE, DEMO_ONPREM_PASSWORD, DEMO_ONPREM_USER, Delivery,
    Inbound, OnPremUser, Route, Sandbox, SandboxConfig, SandboxError,
};

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

async fn login_with(sandbox: &Sandbox, authorization: &str, body: &'static [u8]) -> Answer {
    let request = Request::post("/v1/users/login")
        .header("host", "x")
        .header("authorization", authorization)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(body)))
        .unwrap();
    send(sandbox.addr(), request).await.unwrap()
}

async fn login(sandbox: &Sandbox) -> String {
    let answer = login_with(
        sandbox,
        &basic(DEMO_ONPREM_USER, DEMO_ONPREM_PASSWORD),
        b"{}",
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    let json = answer.json();
    let expires = json["users"][0]["expires_after"].as_str().unwrap();
    // YYYY-MM-DD HH:MM:SS+00:00
    assert_eq!(expires.len(), 25, "{expires}");
    assert!(
        expires.ends_with("+00:00") && &expires[10..11] == " ",
        "{expires}"
    );
    json["users"][0]["token"].as_str().unwrap().to_owned()
}

async fn call(
    sandbox: &Sandbox,
    method: Method,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Answer {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "x");
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    if let Some(ct) = content_type {
        builder = builder.header("content-type", ct);
    }
    send(
        sandbox.addr(),
        builder.body(Full::new(Bytes::from(body))).unwrap(),
    )
    .await
    .unwrap()
}

/// The first Meta error code, checking the error shape.
fn meta_code(answer: &Answer) -> i64 {
    let json = answer.json();
    assert_eq!(json["meta"]["api_status"], "stable", "{json}");
    assert!(json["meta"]["version"].is_string());
    assert!(json["errors"][0]["title"].is_string());
    json["errors"][0]["code"].as_i64().unwrap()
}

#[tokio::test]
async fn login_and_tokens() {
    let sandbox = Sandbox::start(
        SandboxConfig::default()
            .token_lifetime(Duration::from_secs(60))
            .onprem_user(OnPremUser::new("ops", "first")),
    )
    .unwrap();
    let token = login(&sandbox).await;
    let empty_body = login_with(
        &sandbox,
        &basic(DEMO_ONPREM_USER, DEMO_ONPREM_PASSWORD),
        b"",
    )
    .await;
    assert_eq!(empty_body.status, StatusCode::OK);

    for (auth, body) in [
        (basic(DEMO_ONPREM_USER, "wrong"), &b"{}"[..]),
        (basic("nobody", DEMO_ONPREM_PASSWORD), b"{}"),
        ("Basic !!!".to_owned(), b"{}"),
        ("Bearer abc".to_owned(), b"{}"),
    ] {
        let answer = login_with(&sandbox, &auth, body).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(meta_code(&answer), 1005);
    }
    let no_auth = call(
        &sandbox,
        Method::POST,
        "/v1/users/login",
        None,
        Some("application/json"),
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(no_auth.status, StatusCode::UNAUTHORIZED);
    let bad_body = login_with(
        &sandbox,
        &basic(DEMO_ONPREM_USER, DEMO_ONPREM_PASSWORD),
        b"[1]",
    )
    .await;
    assert_eq!(bad_body.status, StatusCode::BAD_REQUEST);
    assert_eq!(meta_code(&bad_body), 1009);

    // new_password changes the password.
    let changed = login_with(
        &sandbox,
        &basic("ops", "first"),
        br#"{"new_password":"second"}"#,
    )
    .await;
    assert_eq!(changed.status, StatusCode::OK);
    assert_eq!(
        login_with(&sandbox, &basic("ops", "first"), b"{}")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login_with(&sandbox, &basic("ops", "second"), b"{}")
            .await
            .status,
        StatusCode::OK
    );

    // Every other /v1 route wants a valid Bearer token.
    let missing = call(&sandbox, Method::GET, "/v1/media/x", None, None, vec![]).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(meta_code(&missing), 1005);
    let unknown = call(
        &sandbox,
        Method::GET,
        "/v1/media/x",
        Some("not-a-token"),
        None,
        vec![],
    )
    .await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(meta_code(&unknown), 1005);
    let fine = call(
        &sandbox,
        Method::GET,
        "/v1/media/x",
        Some(&token),
        None,
        vec![],
    )
    .await;
    assert_eq!(
        fine.status,
        StatusCode::NOT_FOUND,
        "authorized, the id is just unknown"
    );

    // The token expires when the sandbox clock passes its lifetime ...
    sandbox.set_clock_offset_ms(61_000);
    let expired = call(
        &sandbox,
        Method::GET,
        "/v1/media/x",
        Some(&token),
        None,
        vec![],
    )
    .await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    assert!(
        expired.json()["errors"][0]["details"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    sandbox.set_clock_offset_ms(0);
    // ... and by the real clock with a tiny lifetime.
    let quick = Sandbox::start(SandboxConfig::default().token_lifetime(Duration::from_millis(200)))
        .unwrap();
    let token = login(&quick).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let expired = call(
        &quick,
        Method::GET,
        "/v1/media/x",
        Some(&token),
        None,
        vec![],
    )
    .await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
    assert_eq!(meta_code(&expired), 1005);

    // Logout and revocation.
    let token = login(&sandbox).await;
    let out = call(
        &sandbox,
        Method::POST,
        "/v1/users/logout",
        Some(&token),
        None,
        vec![],
    )
    .await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(
        call(
            &sandbox,
            Method::GET,
            "/v1/media/x",
            Some(&token),
            None,
            vec![]
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );
    let token = login(&sandbox).await;
    sandbox.revoke_onprem_tokens();
    assert_eq!(
        call(
            &sandbox,
            Method::GET,
            "/v1/media/x",
            Some(&token),
            None,
            vec![]
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn upload_retrieve_delete() {
    let sandbox = Sandbox::start(SandboxConfig::default()).unwrap();
    let token = login(&sandbox).await;
    let t = Some(token.as_str());
    let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    let up = call(
        &sandbox,
        Method::POST,
        "/v1/media",
        t,
        Some("image/png"),
        bytes.clone(),
    )
    .await;
    assert_eq!(up.status, StatusCode::OK);
    let json = up.json();
    assert_eq!(json["meta"]["api_status"], "stable");
    let id = json["media"][0]["id"].as_str().unwrap().to_owned();

    let got = call(
        &sandbox,
        Method::GET,
        &format!("/v1/media/{id}"),
        t,
        None,
        vec![],
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.header("content-type"), Some("image/png"));
    assert_eq!(got.header("content-length"), Some("200000"));
    assert_eq!(sha256_hex(&got.body), sha256_hex(&bytes));

    let deleted = call(
        &sandbox,
        Method::DELETE,
        &format!("/v1/media/{id}"),
        t,
        None,
        vec![],
    )
    .await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert_eq!(deleted.json()["meta"]["api_status"], "stable");

    let missing = call(
        &sandbox,
        Method::GET,
        &format!("/v1/media/{id}"),
        t,
        None,
        vec![],
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.body.is_empty(), "404 with no body");
    assert_eq!(missing.header("content-length"), Some("0"));
    let again = call(
        &sandbox,
        Method::DELETE,
        &format!("/v1/media/{id}"),
        t,
        None,
        vec![],
    )
    .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    assert_eq!(meta_code(&again), 1006);

    // On-Prem media is not NXCloud media.
    let up = call(
        &sandbox,
        Method::POST,
        "/v1/media",
        t,
        Some("text/plain"),
        b"doc".to_vec(),
    )
    .await;
    let id = up.json()["media"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        get_media(&sandbox, DEMO_BUSINESS_PHONE, &id).await.code(),
        -1
    );

    // Upload refusals.
    for (ct, body, status, code) in [
        (None, b"x".to_vec(), 400, 1008),
        (Some("image/gif"), b"x".to_vec(), 400, 1009),
        (
            Some("multipart/form-data; boundary=x"),
            b"x".to_vec(),
            400,
            1009,
        ),
        (Some("image/jpeg"), vec![], 400, 1008),
        (Some("image/webp"), vec![0u8; 100 * 1024 + 1], 400, 1009),
    ] {
        let answer = call(&sandbox, Method::POST, "/v1/media", t, ct, body).await;
        assert_eq!(answer.status.as_u16(), status, "{ct:?}");
        assert_eq!(meta_code(&answer), code, "{ct:?}");
    }
    let answer = call(
        &sandbox,
        Method::POST,
        "/v1/media",
        t,
        Some("image/webp"),
        vec![0u8; 100 * 1024 + 1],
    )
    .await;
    assert!(
        answer.json()["errors"][0]["details"]
            .as_str()
            .unwrap()
            .contains("102400")
    );
    // Without a token nothing is stored.
    let answer = call(
        &sandbox,
        Method::POST,
        "/v1/media",
        None,
        Some("image/png"),
        b"png".to_vec(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(sandbox.media_count(), 1);
}

#[tokio::test]
async fn media_ids_never_route_elsewhere() {
    let sandbox = Sandbox::start(SandboxConfig::default()).unwrap();
    let token = login(&sandbox).await;
    let t = Some(token.as_str());
    // A literal `..` segment is not normalised: it is an unknown path.
    let answer = call(&sandbox, Method::GET, "/v1/media/../users", t, None, vec![]).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(meta_code(&answer), 1006);
    let reply = raw(
        sandbox.addr(),
        format!("GET /v1/media/../users/login HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await;
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 404"), "{reply}");
    assert!(reply.contains("1006"), "{reply}");
    // An encoded slash is part of the id: a missing media, 404 with no body.
    let answer = call(
        &sandbox,
        Method::GET,
        "/v1/media/..%2Fusers",
        t,
        None,
        vec![],
    )
    .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert!(answer.body.is_empty());
    let answer = call(
        &sandbox,
        Method::DELETE,
        "/v1/media/..%2Fusers%2Flogin",
        t,
        None,
        vec![],
    )
    .await;
    assert_eq!(meta_code(&answer), 1006);
    let answer = call(&sandbox, Method::GET, "/v1/media/%ff%fe", t, None, vec![]).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    // Unknown /v1 paths and methods.
    let answer = call(&sandbox, Method::PUT, "/v1/media/abc", t, None, vec![]).await;
    assert_eq!(meta_code(&answer), 1006);
    let answer = call(&sandbox, Method::GET, "/v1/settings", t, None, vec![]).await;
    assert_eq!(meta_code(&answer), 1006);

    // An id with an encoded slash round-trips when it exists: inbound ids are UUIDs, so check
    // that a real id encoded fully still works.
    let message = sandbox
        .receive_inbound(Inbound::new(
            "document",
            "application/pdf",
            b"%PDF-1.4".to_vec(),
        ))
        .unwrap();
    let encoded: String = message
        .media_id
        .bytes()
        .map(|b| format!("%{b:02X}"))
        .collect();
    let answer = call(
        &sandbox,
        Method::GET,
        &format!("/v1/media/{encoded}"),
        t,
        None,
        vec![],
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(&answer.body[..], b"%PDF-1.4");
}

#[tokio::test]
async fn inbound_webhook_and_retry_download() {
    let mut webhook = Receiver::start(200).await;
    let mut callback = Receiver::start(200).await;
    let sandbox = Sandbox::start(
        SandboxConfig::default()
            .webhook_url(&webhook.url)
            .onprem_callback_url(&callback.url),
    )
    .unwrap();
    let photo = b"\xff\xd8\xff\xe0 a customer's photo".to_vec();
    let message = sandbox
        .receive_inbound(
            Inbound::new("image", "image/jpeg", photo.clone())
                .caption("look")
                .from_phone("8613500135000"),
        )
        .unwrap();
    assert_eq!(message.sha256.to_string(), sha256_hex(&photo));
    assert_eq!(message.merchant_phone, DEMO_BUSINESS_PHONE);

    // The webhook arrives at the test's own server, exactly as returned.
    let hook = webhook.next().await;
    assert_eq!(hook.path, "/hook");
    assert_eq!(hook.content_type.as_deref(), Some("application/json"));
    assert_eq!(hook.body, message.webhook_body.as_bytes());
    let json: serde_json::Value = serde_json::from_slice(&hook.body).unwrap();
    assert_eq!(json["messaging_product"], "whatsapp");
    assert_eq!(json["merchant_phone"], DEMO_BUSINESS_PHONE);
    assert_eq!(json["contacts"][0]["wa_id"], "8613500135000");
    let m = &json["messages"][0];
    assert_eq!(m["from"], "8613500135000");
    assert_eq!(m["type"], "image");
    assert!(m["timestamp"].as_str().unwrap().parse::<u64>().is_ok());
    assert_eq!(m["image"]["id"], message.media_id.as_str());
    assert_eq!(m["image"]["mime_type"], "image/jpeg");
    assert_eq!(m["image"]["sha256"], sha256_hex(&photo).as_str());
    assert_eq!(m["image"]["caption"], "look");

    // The usual flow: getMedia, GET the URL, check sha256, deleteMedia.
    let info = get_media(&sandbox, DEMO_BUSINESS_PHONE, &message.media_id)
        .await
        .json();
    assert_eq!(info["code"], 0);
    let bytes = get(
        sandbox.addr(),
        &path_of(info["data"]["url"].as_str().unwrap()),
    )
    .await
    .body;
    assert_eq!(sha256_hex(&bytes), m["image"]["sha256"].as_str().unwrap());
    assert_eq!(
        delete_media(&sandbox, DEMO_BUSINESS_PHONE, &message.media_id)
            .await
            .code(),
        0
    );
    assert_eq!(
        get_media(&sandbox, DEMO_BUSINESS_PHONE, &message.media_id)
            .await
            .code(),
        -1
    );

    // On-Prem: retry-download puts it back and notifies `downloaded`.
    let token = login(&sandbox).await;
    let t = Some(token.as_str());
    let path = format!("/v1/media/{}", message.media_id);
    assert_eq!(
        call(&sandbox, Method::GET, &path, t, None, vec![])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let ack = call(
        &sandbox,
        Method::GET,
        &format!("{path}/download"),
        t,
        None,
        vec![],
    )
    .await;
    assert_eq!(ack.status, StatusCode::ACCEPTED);
    assert_eq!(
        ack.json()["media_items"][0]["id"],
        message.media_id.as_str()
    );
    assert_eq!(ack.json()["meta"]["api_status"], "stable");
    let note = callback.next().await;
    let note: serde_json::Value = serde_json::from_slice(&note.body).unwrap();
    let item = &note["media_items"][0];
    assert_eq!(item["type"], "image");
    assert_eq!(item["image"]["id"], message.media_id.as_str());
    assert_eq!(item["image"]["mime_type"], "image/jpeg");
    assert_eq!(item["image"]["sha256"], sha256_hex(&photo).as_str());
    assert_eq!(item["image"]["status"], "downloaded");
    assert!(item.get("errors").is_none());
    let got = call(&sandbox, Method::GET, &path, t, None, vec![]).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(&got.body[..], &photo[..]);

    // Gone from WhatsApp's servers: acknowledged, then notified with errors.
    let voice = sandbox
        .receive_inbound(Inbound::new(
            "voice",
            "audio/ogg; codecs=opus",
            b"OggS voice".to_vec(),
        ))
        .unwrap();
    let _ = webhook.next().await;
    assert!(sandbox.expire_inbound(&voice.media_id));
    let ack = call(
        &sandbox,
        Method::GET,
        &format!("/v1/media/{}/download", voice.media_id),
        t,
        None,
        vec![],
    )
    .await;
    assert_eq!(ack.status, StatusCode::ACCEPTED);
    let note: serde_json::Value = serde_json::from_slice(&callback.next().await.body).unwrap();
    let item = &note["media_items"][0];
    assert_eq!(item["type"], "voice");
    assert_eq!(item["voice"]["id"], voice.media_id.as_str());
    assert_eq!(item["errors"][0]["code"], 400);
    assert_eq!(item["errors"][0]["title"], "Parameter not valid");
    assert_eq!(
        item["errors"][0]["details"],
        "Media not found in the datastore."
    );

    // Unknown ids: storing cannot even start.
    let unknown = call(
        &sandbox,
        Method::GET,
        "/v1/media/no-such-id/download",
        t,
        None,
        vec![],
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(meta_code(&unknown), 1006);
    assert!(!sandbox.expire_inbound("no-such-id"));

    // Deliveries are logged, without the URL's query. A delivery is logged once the hook has
    // answered, which may be just after the hook's side above read its body: wait for it.
    let waited = std::time::Instant::now();
    let deliveries = loop {
        let deliveries = sandbox.log().for_route(Route::OnPremCallback);
        if deliveries.len() >= 2 || waited.elapsed() > Duration::from_secs(10) {
            break deliveries;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(deliveries.len(), 2);
    assert!(
        deliveries
            .iter()
            .all(|e| e.status == Some(200) && e.path == "/hook")
    );
}

#[tokio::test]
async fn inbound_validation_and_delivery_outcomes() {
    let sandbox = Sandbox::start(SandboxConfig::default()).unwrap();
    // No webhook configured: stored, not sent.
    let (message, delivery) = sandbox
        .deliver_inbound(Inbound::new("sticker", "image/webp", b"RIFFwebp".to_vec()))
        .await
        .unwrap();
    assert_eq!(delivery, Delivery::NotConfigured);
    assert_eq!(message.from, DEMO_CUSTOMER_PHONE);
    assert_eq!(
        get_media(&sandbox, DEMO_BUSINESS_PHONE, &message.media_id)
            .await
            .code(),
        0
    );

    // Each refusal is the inbound kind and names what is wrong.
    for (bad, named) in [
        (Inbound::new("text", "text/plain", b"x".to_vec()), "text"),
        (
            Inbound::new("image", "image/gif", b"x".to_vec()),
            "image/gif",
        ),
        (
            Inbound::new("image", "application/pdf", b"x".to_vec()),
            "application/pdf",
        ),
        (
            Inbound::new("voice", "image/jpeg", b"x".to_vec()),
            "image/jpeg",
        ),
        (Inbound::new("image", "image/jpeg", Vec::new()), "empty"),
        (
            Inbound::new("sticker", "image/webp", vec![0u8; 100 * 1024 + 1]),
            "102401",
        ),
        (
            Inbound::new("image", "image/jpeg", b"x".to_vec()).merchant_phone("123456"),
            "merchant phone",
        ),
        (
            Inbound::new("image", "image/jpeg", b"x".to_vec()).from_phone("+86"),
            "digits only",
        ),
    ] {
        match sandbox.receive_inbound(bad.clone()) {
            Err(SandboxError::Inbound(message)) => {
                assert!(message.contains(named), "{bad:?}: {message}")
            }
            other => panic!("{bad:?}: {other:?}"),
        }
    }

    // A receiver that answers 500, then a URL where nobody listens.
    let receiver = Receiver::start(500).await;
    sandbox.set_webhook_url(Some(&receiver.url)).unwrap();
    let (_, delivery) = sandbox
        .deliver_inbound(
            Inbound::new("document", "application/pdf", b"%PDF".to_vec()).file_name("invoice.pdf"),
        )
        .await
        .unwrap();
    assert_eq!(delivery, Delivery::Delivered { status: 500 });
    assert!(!delivery.is_success());
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    sandbox
        .set_webhook_url(Some(&format!("http://127.0.0.1:{port}/gone")))
        .unwrap();
    let (_, delivery) = sandbox
        .deliver_inbound(Inbound::new("audio", "audio/mpeg", b"ID3".to_vec()))
        .await
        .unwrap();
    assert!(matches!(delivery, Delivery::Failed(_)), "{delivery:?}");
    // Only loopback URLs.
    assert!(
        sandbox
            .set_webhook_url(Some("http://example.com/hook"))
            .is_err()
    );
    assert!(
        sandbox
            .set_onprem_callback_url(Some("https://127.0.0.1/hook"))
            .is_err()
    );
    assert!(Sandbox::start(SandboxConfig::default().webhook_url("http://10.1.2.3/x")).is_err());
    let log = sandbox.log().for_route(Route::InboundWebhook);
    assert_eq!(log.len(), 3);
    assert_eq!(log[1].status, Some(500));
    assert!(log[2].status.is_none() && log[2].note.is_some());
}

#[tokio::test]
async fn admin_endpoints() {
    let mut webhook = Receiver::start(200).await;
    let sandbox = Sandbox::start(SandboxConfig::default().webhook_url(&webhook.url)).unwrap();
    let request = Request::post("/_sandbox/inbound?type=document&mime=application%2Fpdf&file_name=r%C3%A9sum%C3%A9.pdf&from=8613100131000")
        .header("host", "x")
        .body(Full::new(Bytes::from_static(b"%PDF-1.7 admin")))
        .unwrap();
    let answer = send(sandbox.addr(), request).await.unwrap();
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(answer.header("x-sandbox-webhook"), Some("delivered 200"));
    let id = answer.header("x-sandbox-media-id").unwrap().to_owned();
    let sent = webhook.next().await;
    assert_eq!(sent.body, answer.body, "answers the body it sent");
    let json = answer.json();
    assert_eq!(json["messages"][0]["document"]["filename"], "résumé.pdf");
    assert_eq!(json["messages"][0]["from"], "8613100131000");
    let info = get_media(&sandbox, DEMO_BUSINESS_PHONE, &id).await.json();
    assert_eq!(info["data"]["file_name"], "résumé.pdf");

    let refused = Request::post("/_sandbox/inbound?type=image&mime=image/gif")
        .header("host", "x")
        .body(Full::new(Bytes::from_static(b"GIF89a")))
        .unwrap();
    assert_eq!(
        send(sandbox.addr(), refused).await.unwrap().status,
        StatusCode::BAD_REQUEST
    );

    let expire = Request::post(format!("/_sandbox/expire?id={id}"))
        .header("host", "x")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(
        send(sandbox.addr(), expire).await.unwrap().status,
        StatusCode::NO_CONTENT
    );
    let clock = Request::post("/_sandbox/clock?offset_ms=-5000")
        .header("host", "x")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert_eq!(
        send(sandbox.addr(), clock).await.unwrap().status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(sandbox.clock_offset_ms(), -5000);
    let log = get(sandbox.addr(), "/_sandbox/log").await.json();
    assert!(
        log.as_array()
            .unwrap()
            .iter()
            .any(|e| e["route"] == "getMedia" && e["code"] == 0)
    );
}
