//! Fault injection, shutdown and the log's fault counts.

mod common;

use std::time::{Duration, Instant};

use common::*;
use http::StatusCode;
use nx_sandbox::{DEMO_BUSINESS_PHONE, Fault, FaultRule, Route, Sandbox, SandboxConfig, Target};

fn start() -> Sandbox {
    Sandbox::start(SandboxConfig::default()).unwrap()
}

async fn try_get_media(sandbox: &Sandbox, id: &str) -> Result<Answer, String> {
    let signed = Signed::new(sandbox, "getMedia");
    send(
        sandbox.addr(),
        signed.json(
            sandbox.addr(),
            "/api/wa/getMedia",
            &media_body(DEMO_BUSINESS_PHONE, id),
        ),
    )
    .await
}

async fn url_path(sandbox: &Sandbox, id: &str) -> String {
    path_of(
        get_media(sandbox, DEMO_BUSINESS_PHONE, id).await.json()["data"]["url"]
            .as_str()
            .unwrap(),
    )
}

#[tokio::test]
async fn nth_request_gets_503_then_502_then_through() {
    let sandbox = start();
    let id = upload(&sandbox, "text/plain", "a.txt", b"x").await;
    let a = sandbox
        .faults()
        .add(FaultRule::new(Route::GetMedia, Fault::ServiceUnavailable).on_nth([1, 2]));
    let b = sandbox
        .faults()
        .add(FaultRule::new(Route::GetMedia, Fault::BadGateway).on_nth([3]));
    for expected in [503, 503, 502] {
        let answer = try_get_media(&sandbox, &id).await.unwrap();
        assert_eq!(answer.status.as_u16(), expected);
        assert_eq!(answer.header("content-type"), Some("text/html"));
        assert!(String::from_utf8_lossy(&answer.body).contains(&expected.to_string()));
        assert!(answer.header("date").is_some());
    }
    assert_eq!(try_get_media(&sandbox, &id).await.unwrap().code(), 0);
    assert_eq!(
        (sandbox.faults().fired(a), sandbox.faults().fired(b)),
        (2, 1)
    );
    assert_eq!(sandbox.faults().seen(a), 4);
    // Other routes were not affected, and the log counts each fault.
    assert_eq!(
        delete_media(&sandbox, DEMO_BUSINESS_PHONE, &id)
            .await
            .code(),
        0
    );
    let counts = sandbox.log().fault_counts();
    assert_eq!(counts.get("503"), Some(&2));
    assert_eq!(counts.get("502"), Some(&1));
    assert_eq!(sandbox.log().faults_fired(), 3);
    let faulted: Vec<_> = sandbox
        .log()
        .entries()
        .into_iter()
        .filter(|e| e.fault.is_some())
        .collect();
    assert_eq!(faulted.len(), 3);
    assert!(
        faulted
            .iter()
            .all(|e| e.route == Route::GetMedia && e.code.is_none())
    );
}

#[tokio::test]
async fn canned_bodies() {
    let sandbox = start();
    let id = upload(&sandbox, "text/plain", "a.txt", b"x").await;
    let f = sandbox.faults();

    let rule = f.add(FaultRule::new(Route::GetMedia, Fault::EmptyBody));
    let answer = try_get_media(&sandbox, &id).await.unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.body.is_empty());
    f.remove(rule);

    let rule = f.add(FaultRule::new(Route::GetMedia, Fault::InvalidJson));
    let answer = try_get_media(&sandbox, &id).await.unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert!(serde_json::from_slice::<serde_json::Value>(&answer.body).is_err());
    f.remove(rule);

    let rule = f.add(FaultRule::new(
        Route::GetMedia,
        Fault::ClockSkew { skew_ms: 600_000 },
    ));
    let answer = try_get_media(&sandbox, &id).await.unwrap();
    assert_eq!(answer.code(), 1004);
    let date = httpdate::parse_http_date(answer.header("date").unwrap()).unwrap();
    let date_ms = date
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    assert!(date_ms.abs_diff(sandbox.now_millis() + 600_000) < 5_000);
    f.remove(rule);

    let rule = f.add(FaultRule::new(
        Route::GetMedia,
        Fault::Oversize {
            bytes: 3 << 20,
            content_length: true,
        },
    ));
    let answer = try_get_media(&sandbox, &id).await.unwrap();
    assert_eq!(answer.header("content-length"), Some("3145728"));
    assert_eq!(answer.body.len(), 3 << 20);
    assert_eq!(answer.json()["code"], 0);
    f.remove(rule);
    let rule = f.add(FaultRule::new(
        Route::GetMedia,
        Fault::Oversize {
            bytes: 1 << 20,
            content_length: false,
        },
    ));
    let answer = try_get_media(&sandbox, &id).await.unwrap();
    assert!(answer.header("content-length").is_none());
    assert_eq!(answer.header("transfer-encoding"), Some("chunked"));
    assert_eq!(answer.body.len(), 1 << 20);
    f.remove(rule);

    let path = url_path(&sandbox, &id).await;
    f.add(FaultRule::new(
        Route::OssDownload,
        Fault::Redirect {
            location: "http://127.0.0.1:9/elsewhere".into(),
        },
    ));
    let answer = get(sandbox.addr(), &path).await;
    assert_eq!(answer.status, StatusCode::FOUND);
    assert_eq!(
        answer.header("location"),
        Some("http://127.0.0.1:9/elsewhere")
    );
}

#[tokio::test]
async fn latency_reset_and_reset_after_processing() {
    let sandbox = start();
    let id = upload(&sandbox, "text/plain", "a.txt", b"x").await;
    let f = sandbox.faults();

    let rule = f.add(FaultRule::new(
        Route::GetMedia,
        Fault::Latency(Duration::from_millis(300)),
    ));
    let started = Instant::now();
    assert_eq!(try_get_media(&sandbox, &id).await.unwrap().code(), 0);
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(sandbox.log().last().unwrap().latency >= Duration::from_millis(300));
    f.remove(rule);

    let rule = f.add(FaultRule::new(Route::GetMedia, Fault::Reset).first(1));
    assert!(
        try_get_media(&sandbox, &id).await.is_err(),
        "closed without an answer"
    );
    assert_eq!(try_get_media(&sandbox, &id).await.unwrap().code(), 0);
    f.remove(rule);
    let entry = sandbox
        .log()
        .for_route(Route::GetMedia)
        .into_iter()
        .find(|e| e.fault == Some("reset"))
        .unwrap();
    assert_eq!(entry.status, None);

    // The delete happens, the answer is lost: a retry sees -1.
    f.add(FaultRule::new(Route::DeleteMedia, Fault::ResetAfterProcessing).first(1));
    let signed = Signed::new(&sandbox, "deleteMedia");
    let lost = send(
        sandbox.addr(),
        signed.json(
            sandbox.addr(),
            "/api/wa/deleteMedia",
            &media_body(DEMO_BUSINESS_PHONE, &id),
        ),
    )
    .await;
    assert!(lost.is_err());
    assert_eq!(
        delete_media(&sandbox, DEMO_BUSINESS_PHONE, &id)
            .await
            .code(),
        -1
    );
}

#[tokio::test]
async fn download_faults_truncate_drip_corrupt() {
    let sandbox = start();
    let bytes: Vec<u8> = (0..1000u32).map(|i| (i % 256) as u8).collect();
    let id = upload(&sandbox, "application/pdf", "a.pdf", &bytes).await;
    let path = url_path(&sandbox, &id).await;
    let f = sandbox.faults();

    // Truncated: Content-Length 1000 announced, 500 bytes sent, then the connection closes.
    let rule = f.add(FaultRule::new(Route::OssDownload, Fault::Truncated));
    let reply = raw(
        sandbox.addr(),
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )
    .await;
    let text = String::from_utf8_lossy(&reply);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.to_ascii_lowercase().contains("content-length: 1000"));
    let body_at = reply.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(reply.len() - body_at, 500);
    assert_eq!(&reply[body_at..], &bytes[..500]);
    assert!(
        send(
            sandbox.addr(),
            http::Request::get(&path)
                .header("host", "x")
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap()
        )
        .await
        .is_err()
    );
    f.remove(rule);

    // Corrupt: same length, one bit flipped, different SHA-256.
    let rule = f.add(FaultRule::new(Route::OssDownload, Fault::CorruptBody));
    let answer = get(sandbox.addr(), &path).await;
    assert_eq!(answer.body.len(), 1000);
    assert_ne!(sha256_hex(&answer.body), sha256_hex(&bytes));
    let differing: Vec<usize> = (0..1000).filter(|&i| answer.body[i] != bytes[i]).collect();
    assert_eq!(differing, [500]);
    f.remove(rule);

    // Drip: one byte per 2 ms, intact.
    let small = upload(&sandbox, "text/plain", "s.txt", b"0123456789abcdefghij").await;
    let small_path = url_path(&sandbox, &small).await;
    let rule = f.add(FaultRule::new(
        Route::OssDownload,
        Fault::Drip(Duration::from_millis(20)),
    ));
    let started = Instant::now();
    let answer = get(sandbox.addr(), &small_path).await;
    assert_eq!(&answer.body[..], b"0123456789abcdefghij");
    assert!(
        started.elapsed() >= Duration::from_millis(380),
        "{:?}",
        started.elapsed()
    );
    f.remove(rule);

    // Truncated JSON answers too.
    f.add(FaultRule::new(Route::GetMedia, Fault::Truncated));
    assert!(try_get_media(&sandbox, &id).await.is_err());
}

#[tokio::test]
async fn faults_on_uploads_drain_the_body_first() {
    let sandbox = start();
    sandbox
        .faults()
        .add(FaultRule::new(Route::UploadMedia, Fault::ServiceUnavailable).first(1));
    let mut signed = Signed::new(&sandbox, "uploadMedia");
    signed.content_type = Some(multipart_type());
    let big = vec![9u8; 4 << 20];
    let answer = send(
        sandbox.addr(),
        signed.multipart(sandbox.addr(), upload_form("image/jpeg", "a.jpg", &big)),
    )
    .await
    .unwrap();
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(sandbox.media_count(), 0, "not processed");
    upload(&sandbox, "image/jpeg", "a.jpg", &big).await;
    assert_eq!(sandbox.media_count(), 1);
}

#[tokio::test]
async fn any_target_and_on_prem_routes() {
    let sandbox = start();
    sandbox
        .faults()
        .add(FaultRule::new(Target::Any, Fault::BadGateway).on_nth([2]));
    assert_eq!(
        get(sandbox.addr(), "/_sandbox/log").await.status,
        StatusCode::OK,
        "admin is never faulted"
    );
    let login = || {
        let request = http::Request::post("/v1/users/login")
            .header("host", "x")
            .header("authorization", "Basic YWRtaW46ZGVtby1wYXNzd29yZA==")
            .body(http_body_util::Full::new(bytes::Bytes::from_static(b"{}")))
            .unwrap();
        send(sandbox.addr(), request)
    };
    assert_eq!(login().await.unwrap().status, StatusCode::OK);
    assert_eq!(login().await.unwrap().status, StatusCode::BAD_GATEWAY);
    assert_eq!(login().await.unwrap().status, StatusCode::OK);
}

#[tokio::test]
async fn probability_is_reproducible_across_sandboxes() {
    let run = || async {
        let sandbox = start();
        sandbox
            .faults()
            .add(FaultRule::new(Route::GetMedia, Fault::EmptyBody).with_probability(0.5, 1234));
        let mut pattern = Vec::new();
        for _ in 0..16 {
            pattern.push(try_get_media(&sandbox, "x").await.unwrap().body.is_empty());
        }
        pattern
    };
    let first = run().await;
    assert_eq!(first, run().await);
    assert!(first.contains(&true) && first.contains(&false), "{first:?}");
}

#[tokio::test]
async fn a_stall_holds_until_the_client_gives_up_and_never_blocks_shutdown() {
    let sandbox =
        Sandbox::start(SandboxConfig::default().shutdown_grace(Duration::from_secs(5))).unwrap();
    sandbox
        .faults()
        .add(FaultRule::new(Route::GetMedia, Fault::Stall));
    let give_up =
        tokio::time::timeout(Duration::from_millis(300), try_get_media(&sandbox, "x")).await;
    assert!(give_up.is_err(), "no answer within 300 ms");
    // A second stalled request is still open when the sandbox stops.
    let addr = sandbox.addr();
    let signed = Signed::new(&sandbox, "getMedia");
    let pending = tokio::spawn(async move {
        send(
            addr,
            signed.json(
                addr,
                "/api/wa/getMedia",
                &media_body(DEMO_BUSINESS_PHONE, "x"),
            ),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    drop(sandbox);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "shutdown took {:?}",
        started.elapsed()
    );
    let outcome = tokio::time::timeout(Duration::from_secs(2), pending)
        .await
        .unwrap()
        .unwrap();
    assert!(outcome.is_err(), "closed without an answer");
    // Nothing listens any more.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn run_until_stops_the_sandbox() {
    let sandbox = start();
    let addr = sandbox.addr();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(sandbox.run_until(async {
        let _ = rx.await;
    }));
    assert_eq!(get(addr, "/").await.status, StatusCode::NOT_FOUND);
    tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn extreme_settings_do_not_panic() {
    let sandbox = Sandbox::start(
        SandboxConfig::default()
            .url_lifetime(Duration::MAX)
            .token_lifetime(Duration::MAX)
            .clock_offset_ms(i64::MAX),
    )
    .unwrap();
    let id = upload(&sandbox, "text/plain", "a.txt", b"x").await;
    let path = url_path(&sandbox, &id).await;
    assert_eq!(get(sandbox.addr(), &path).await.status, StatusCode::OK);
    let request = http::Request::post("/v1/users/login")
        .header("host", "x")
        .header("authorization", "Basic YWRtaW46ZGVtby1wYXNzd29yZA==")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    assert_eq!(
        send(sandbox.addr(), request).await.unwrap().status,
        StatusCode::OK
    );
    sandbox.set_clock_offset_ms(i64::MIN);
    assert!(get(sandbox.addr(), "/").await.header("date").is_some());
    sandbox.faults().add(FaultRule::new(
        Target::Any,
        Fault::ClockSkew { skew_ms: i64::MAX },
    ));
    assert!(
        try_get_media(&sandbox, &id)
            .await
            .unwrap()
            .header("date")
            .is_some()
    );
}

#[tokio::test]
async fn wrong_types_and_unknown_codes() {
    let sandbox = start();
    let id = upload(&sandbox, "text/plain", "a.txt", b"x").await;
    let f = sandbox.faults();

    let rule = f.add(FaultRule::new(Route::GetMedia, Fault::WrongTypes));
    let answer = try_get_media(&sandbox, &id).await.unwrap();
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, nx_sandbox::WRONG_TYPES_BODY.as_bytes());
    let json = answer.json();
    assert_eq!(json["code"], 0, "the envelope stays valid");
    assert!(json["data"]["mime_type"].is_number());
    assert!(json["data"]["url"].is_object());
    assert!(json["users"][0]["token"].is_number());
    f.remove(rule);

    let rule = f.add(FaultRule::new(Route::GetMedia, Fault::UnknownCode(31_337)));
    let answer = try_get_media(&sandbox, &id).await.unwrap();
    assert_eq!(answer.code(), 31_337);
    assert!(answer.json()["data"].is_null());
    f.remove(rule);

    f.add(FaultRule::new(
        Route::OnPremLogin,
        Fault::UnknownCode(4_242),
    ));
    let request = http::Request::post("/v1/users/login")
        .header("host", "x")
        .header("authorization", "Basic YWRtaW46ZGVtby1wYXNzd29yZA==")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(b"{}")))
        .unwrap();
    let answer = send(sandbox.addr(), request).await.unwrap();
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json()["errors"][0]["code"], 4_242);
    let log = sandbox.log().for_route(Route::OnPremLogin);
    assert_eq!(log.last().unwrap().fault, Some("unknown-code"));
    assert_eq!(log.last().unwrap().code, Some(4_242));
}
