//! The call machine, driven by hand: every rule it owns, without a network.

use std::time::Duration;

use http::{HeaderMap, StatusCode};

use super::*;
use crate::config::{OnPremLogin, TransportConfig};
use crate::download::{IntegrityError, Sha256Digest};
use crate::onprem::{DeleteMedia, UploadMedia as OnPremUpload};
use crate::operation::BaseUrl;
use crate::wa::{DownloadUrl, GetMedia, UploadMedia};
use crate::{Credentials, Snippet};

const WALL: u64 = 1_700_000_000_000;

fn at(ms: u64) -> Now {
    Now {
        at: Duration::from_millis(ms),
        wall: Timestamp::from_millis(WALL + ms),
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn client() -> ClientConfig {
    let mut config = ClientConfig::new(Credentials::new("k", "s"), "test/1");
    config.transport.retry.base_delay = Duration::from_millis(10);
    config
}

fn onprem_config(login: OnPremLogin) -> OnPremConfig {
    OnPremConfig::new(
        BaseUrl::parse("https://wa.example:9090").unwrap(),
        login,
        "test/1",
    )
}

fn http_error(status: u16) -> Error {
    Error::Response(crate::ResponseError::Http {
        status: StatusCode::from_u16(status).unwrap(),
        snippet: Snippet::of(b""),
    })
}

fn connect() -> Error {
    Error::Connect {
        host: "oss.example".into(),
        source: "refused".into(),
    }
}

/// Polls until the machine asks to send; sleeps are skipped. The time it sent at.
fn send<K: Kind>(call: &mut Call<K>, mut now: u64) -> (http::Request<OutgoingBody>, u64)
where
    K::Output: std::fmt::Debug,
{
    loop {
        match call.poll(at(now)) {
            Step::Send(request) => return (request, now),
            Step::Sleep(until) => now = until.as_millis() as u64 + 1,
            other => panic!("expected a request, got {other:?}"),
        }
    }
}

fn done<K: Kind>(call: &mut Call<K>, now: u64) -> Result<K::Output, Error>
where
    K::Output: std::fmt::Debug,
{
    match call.poll(at(now)) {
        Step::Done(result) => result,
        other => panic!("expected the end, got {other:?}"),
    }
}

/// A whole answer to the attempt in flight.
fn answer<K: Kind>(call: &mut Call<K>, status: u16, body: &[u8], now: u64) {
    let status = StatusCode::from_u16(status).unwrap();
    let headers = HeaderMap::new();
    let read = call.head(status, &headers, at(now).at);
    assert!(matches!(read, Read::Whole { .. }), "{read:?}");
    call.whole(status, &headers, body, at(now).at);
}

const MEDIA_OK: &[u8] = br#"{"code":0,"message":"ok","data":{"mime_type":"image/webp","file_name":"a.webp","url":"https://oss.example/a.webp?Expires=2000000000&Signature=s"}}"#;

#[test]
fn an_api_call_retries_a_503_and_parses_the_answer() {
    let config = client();
    let op = GetMedia::new("8615800001795", "m1");
    let mut call = Call::api(&op, &config, Upload::default());
    call.set_seed(7);
    let (request, t) = send(&mut call, 0);
    assert_eq!(request.uri().path(), "/api/wa/getMedia");
    assert_eq!(call.attempt(), 1);
    answer(&mut call, 503, b"<html>busy</html>", t + 5);
    let Step::Sleep(until) = call.poll(at(t + 5)) else {
        panic!("a 503 is retried after a wait")
    };
    assert!(until <= at(t + 5 + 10).at);
    let (_, t) = send(&mut call, until.as_millis() as u64 + 1);
    assert_eq!(call.attempt(), 2);
    answer(&mut call, 200, MEDIA_OK, t + 5);
    let info = done(&mut call, t + 5).unwrap();
    assert_eq!(info.mime_type(), "image/webp");
    assert!(call.clock_changed().is_none());
}

#[test]
fn take_result_gives_an_ended_call_s_result_once_and_nothing_before() {
    let config = client();
    let op = GetMedia::new("8615800001795", "m1");
    let mut call = Call::api(&op, &config, Upload::default());
    call.set_seed(7);
    assert!(call.take_result().is_none(), "before the first poll");
    let (_, t) = send(&mut call, 0);
    assert!(call.take_result().is_none(), "in flight");
    answer(&mut call, 503, b"<html>busy</html>", t + 5);
    assert!(
        call.take_result().is_none(),
        "a failed attempt that is retried"
    );
    let (_, t) = send(&mut call, 1_000);
    answer(&mut call, 200, MEDIA_OK, t + 5);
    let info = call.take_result().expect("ended").unwrap();
    assert_eq!(info.mime_type(), "image/webp");
    assert!(call.take_result().is_none(), "taken once");
    let again = done(&mut call, t + 5).unwrap_err();
    assert!(matches!(again, Error::Config(_)), "{again:?}");
    // A failed attempt is decided at the next poll (whether to retry needs the clock): there
    // is nothing to take before it, even when it ends the call.
    let mut call = Call::api(&op, &config, Upload::default());
    let (_, t) = send(&mut call, 0);
    answer(&mut call, 400, b"{}", t + 5);
    assert!(call.take_result().is_none());
    let failed = done(&mut call, t + 5).unwrap_err();
    assert_eq!(failed.status(), Some(StatusCode::BAD_REQUEST));
}

#[test]
fn a_1004_corrects_the_clock_once_from_the_date_header() {
    let config = client();
    let op = GetMedia::new("8615800001795", "m1");
    let mut call = Call::api(&op, &config, Upload::default());
    let (first, t) = send(&mut call, 0);
    let skewed = b"{\"code\":1004,\"message\":\"timestamp expired\"}";
    let mut headers = HeaderMap::new();
    // The server's clock is 10 minutes ahead.
    let server = std::time::UNIX_EPOCH + Duration::from_millis(WALL + 600_000);
    headers.insert(
        http::header::DATE,
        httpdate::fmt_http_date(server).parse().unwrap(),
    );
    call.head(StatusCode::OK, &headers, at(t).at);
    call.whole(StatusCode::OK, &headers, skewed, at(t).at);
    let (second, _) = send(&mut call, t);
    let ts = |r: &http::Request<OutgoingBody>| r.headers()["ts"].to_str().unwrap().to_owned();
    let gap = ts(&second).parse::<u64>().unwrap() - ts(&first).parse::<u64>().unwrap();
    assert!((599_000..=601_000).contains(&gap), "{gap}");
    assert_eq!(
        call.clock_changed().map(|c| c.as_millis() / 1000),
        Some(600)
    );
    // A second 1004 is final.
    call.head(StatusCode::OK, &headers, at(t).at);
    call.whole(StatusCode::OK, &headers, skewed, at(t).at);
    assert!(done(&mut call, t).unwrap_err().api_code().is_some());
}

/// "A retry is a new request: new ts, new sign", also when the retry's wait (full jitter may
/// draw 0) leaves the wall clock in the same millisecond, or the wall clock steps back.
#[test]
fn every_attempt_has_its_own_ts_and_sign_whatever_the_wall_clock_does() {
    let config = client();
    let op = GetMedia::new("8615800001795", "m1");
    let mut call = Call::api(&op, &config, Upload::default());
    let mut monotonic = 0;
    let mut stamps = Vec::new();
    for wall in [WALL, WALL, WALL - 5_000] {
        let request = loop {
            let now = Now {
                at: Duration::from_millis(monotonic),
                wall: Timestamp::from_millis(wall),
            };
            match call.poll(now) {
                Step::Send(request) => break request,
                Step::Sleep(until) => monotonic = until.as_millis() as u64 + 1,
                other => panic!("expected a request, got {other:?}"),
            }
        };
        let header = |name: &str| request.headers()[name].to_str().unwrap().to_owned();
        stamps.push((header("ts").parse::<u64>().unwrap(), header("sign")));
        call.failed(connect());
    }
    let ts: Vec<u64> = stamps.iter().map(|(ts, _)| *ts).collect();
    assert_eq!(ts, [WALL, WALL + 1, WALL + 2]);
    assert_ne!(stamps[0].1, stamps[1].1);
    assert_ne!(stamps[1].1, stamps[2].1);
}

#[test]
fn a_clock_correction_set_before_the_first_poll_stamps_the_first_attempt() {
    let config = client();
    let op = GetMedia::new("8615800001795", "m1");
    let mut call = Call::api(&op, &config, Upload::default());
    call.set_seed(1)
        .set_clock(ClockOffset::from_millis(600_000));
    let (request, t) = send(&mut call, 0);
    let ts: u64 = request.headers()["ts"].to_str().unwrap().parse().unwrap();
    assert_eq!(ts, WALL + t + 600_000);
    // Carried from the client, not learned: nothing new for the client to keep.
    assert!(call.clock_changed().is_none());
}

#[test]
fn no_wait_is_begun_past_the_call_deadline_and_attempts_end_at_it() {
    let mut config = client();
    config.transport.overall_timeout = secs(2);
    config.transport.request_timeout = secs(30);
    config.transport.retry.base_delay = secs(5);
    config.transport.retry.max_delay = secs(5);
    let op = GetMedia::new("8615800001795", "m1");
    let mut call = Call::api(&op, &config, Upload::default());
    call.set_seed(u64::MAX);
    send(&mut call, 0);
    // The attempt's limit is the call's deadline, not request_timeout.
    assert_eq!(call.watch().deadline(), secs(2));
    call.timed_out(secs(2));
    let error = done(&mut call, 2000).unwrap_err();
    assert!(
        matches!(
            error,
            Error::Timeout {
                phase: Phase::Headers,
                limit: Limit::Call,
                after,
                ..
            } if after == secs(2)
        ),
        "{error:?}"
    );
    // A retry whose wait would end past the deadline is not begun.
    let mut call = Call::api(&op, &config, Upload::default());
    call.set_seed(u64::MAX);
    send(&mut call, 0);
    call.failed(connect());
    assert!(matches!(done(&mut call, 100), Err(Error::Connect { .. })));
}

#[test]
fn an_attempt_is_limited_by_request_timeout_within_the_call() {
    let config = client();
    let op = GetMedia::new("8615800001795", "m1");
    let mut call = Call::api(&op, &config, Upload::default());
    send(&mut call, 0);
    assert_eq!(call.watch().deadline(), secs(30));
    assert!(call.tick(Duration::from_millis(29_999)));
    assert!(!call.tick(secs(30)));
    assert!(matches!(
        call.failure(),
        Some(Error::Timeout {
            phase: Phase::Headers,
            limit: Limit::Attempt,
            ..
        })
    ));
    let Step::Sleep(_) = call.poll(at(30_000)) else {
        panic!("a timed-out idempotent attempt is retried")
    };
}

#[test]
fn a_one_shot_body_is_never_resent() {
    let config = client();
    let op = UploadMedia::new("8615800001795", "image/png", "a.png", 5);
    // Reopenable: a refused connection is retried.
    let mut call = Call::api(&op, &config, Upload::default());
    send(&mut call, 0);
    call.failed(connect());
    send(&mut call, 0);
    assert_eq!(call.attempt(), 2);
    // One-shot: the same failure ends the call with itself.
    for error in [connect(), http_error(503)] {
        let mut call = Call::api(&op, &config, Upload { one_shot: true });
        send(&mut call, 0);
        call.failed(error);
        assert!(done(&mut call, 0).is_err());
        assert_eq!(call.attempt(), 1);
    }
}

#[test]
fn an_upload_gets_a_transfer_budget_and_stall_protection() {
    let config = client();
    let len = 10 * 1024 * 1024;
    let op = UploadMedia::new("8615800001795", "video/mp4", "a.mp4", len);
    let mut call = Call::api(&op, &config, Upload::default());
    send(&mut call, 0);
    // 120 s, plus 10 MiB at 256 KiB/s (and the form's few hundred bytes).
    let deadline = call.watch().deadline();
    assert!(
        deadline >= secs(160) && deadline < secs(161),
        "{deadline:?}"
    );
    assert_eq!(call.watch().head_timeout(), Some(secs(30)));
    // A body dripping one byte every two seconds fails after the 20 s grace period.
    let mut t = 0;
    while call.progress(1, Duration::from_millis(t)) {
        t += 2000;
        assert!(t <= 22_000, "not stalled after {t} ms");
    }
    assert!(t >= 20_000, "stalled after {t} ms");
    assert!(matches!(
        call.failure(),
        Some(Error::Timeout {
            phase: Phase::Request,
            limit: Limit::Stall,
            ..
        })
    ));
}

#[test]
fn a_sent_upload_waits_for_its_head_at_most_request_timeout() {
    let config = client();
    let op = UploadMedia::new("8615800001795", "image/png", "a.png", 5);
    let mut call = Call::api(&op, &config, Upload::default());
    send(&mut call, 0);
    call.sent(secs(50));
    assert_eq!(call.watch().wake_at(), secs(80));
    assert!(call.tick(secs(79)));
    assert!(!call.tick(secs(80)));
    assert!(matches!(
        call.failure(),
        Some(Error::Timeout {
            phase: Phase::Headers,
            limit: Limit::Attempt,
            ..
        })
    ));
}

fn info(url: &str) -> MediaInfo {
    MediaInfo::new("image/webp", "", DownloadUrl::parse(url).unwrap())
}

fn fresh() -> MediaInfo {
    info("https://oss.example/f?Expires=2000000000&Signature=s")
}

fn expired() -> MediaInfo {
    info(&format!(
        "https://oss.example/f?Expires={}&Signature=s",
        WALL / 1000
    ))
}

fn media_head(len: Option<u64>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(len) = len {
        headers.insert(http::header::CONTENT_LENGTH, len.into());
    }
    headers
}

fn download(config: &ClientConfig, info: MediaInfo, refresh: bool) -> Call<Fetch<'_>> {
    Call::download(info, config, DownloadOptions::new(), refresh, false)
}

#[test]
fn a_download_streams_through_its_checks() {
    let config = client();
    let options = DownloadOptions::new().sha256(Sha256Digest::of(b"hello"));
    let mut call = Call::download(fresh(), &config, options, false, false);
    let (request, _) = send(&mut call, 0);
    assert_eq!(request.method(), http::Method::GET);
    assert_eq!(request.body(), &OutgoingBody::Empty);
    let read = call.head(StatusCode::OK, &media_head(Some(5)), secs(0));
    assert_eq!(read, Read::Stream);
    assert!(call.chunk(b"hel", secs(0)));
    assert_eq!(call.watch().phase(), Phase::Body);
    assert!(call.chunk(b"lo", secs(0)));
    assert_eq!(call.watch().phase(), Phase::Trailers);
    assert!(call.end(secs(0)));
    assert_eq!(done(&mut call, 0).unwrap().len, 5);
}

#[test]
fn an_expired_url_is_refreshed_once_before_sending() {
    let config = client();
    let mut call = download(&config, expired(), true);
    assert!(matches!(call.poll(at(0)), Step::RefreshUrl));
    call.refreshed(Ok(expired()));
    // Once: the next attempt goes out with what it has.
    let (_, _) = send(&mut call, 0);
    // Without a media id there is nothing to refresh with.
    let mut plain = download(&config, expired(), false);
    send(&mut plain, 0);
}

#[test]
fn a_403_refreshes_once_then_gives_up() {
    let config = client();
    let mut call = download(&config, fresh(), true);
    send(&mut call, 0);
    answer(&mut call, 403, b"<Error>AccessDenied</Error>", 0);
    assert!(matches!(call.poll(at(0)), Step::RefreshUrl));
    call.refreshed(Ok(fresh()));
    send(&mut call, 0);
    answer(&mut call, 403, b"", 0);
    let error = done(&mut call, 0).unwrap_err();
    assert_eq!(error.status(), Some(StatusCode::FORBIDDEN));

    let mut plain = download(&config, fresh(), false);
    send(&mut plain, 0);
    answer(&mut plain, 403, b"", 0);
    assert!(done(&mut plain, 0).is_err());
}

#[test]
fn nothing_is_resent_once_bytes_reached_the_caller_s_writer() {
    let config = client();
    let mut call = download(&config, fresh(), false);
    send(&mut call, 0);
    assert_eq!(
        call.head(StatusCode::OK, &media_head(None), secs(0)),
        Read::Stream
    );
    assert!(call.chunk(b"part", secs(0)));
    call.failed(connect());
    assert!(matches!(done(&mut call, 0), Err(Error::Connect { .. })));
    // A temporary file per attempt can be rewound: the same failure is retried.
    let mut call = Call::download(fresh(), &config, DownloadOptions::new(), false, true);
    send(&mut call, 0);
    call.head(StatusCode::OK, &media_head(None), secs(0));
    assert!(call.chunk(b"part", secs(0)));
    call.failed(connect());
    send(&mut call, 0);
    assert_eq!(call.attempt(), 2);
}

#[test]
fn only_a_200_is_the_whole_file() {
    let config = client();
    for status in [206, 204, 203] {
        let mut call = download(&config, fresh(), true);
        send(&mut call, 0);
        let status = StatusCode::from_u16(status).unwrap();
        assert_eq!(
            call.head(status, &media_head(Some(100)), secs(0)),
            Read::Skip
        );
        let error = done(&mut call, 0).unwrap_err();
        assert!(
            matches!(&error, Error::Response(crate::ResponseError::Malformed { status: s, .. }) if *s == status),
            "{error:?}"
        );
        assert_eq!(call.attempt(), 1, "not retried");
    }
    // An error status's body is read (capped) for its message.
    let mut call = download(&config, fresh(), false);
    send(&mut call, 0);
    assert_eq!(
        call.head(StatusCode::BAD_GATEWAY, &HeaderMap::new(), secs(0)),
        Read::Whole {
            max: DOWNLOAD_ERROR_BODY
        }
    );
}

#[test]
fn a_plain_http_url_to_a_remote_host_is_refused_before_sending() {
    let mut config = client();
    let remote = info("http://oss.example/f?Expires=2000000000&Signature=secret");
    let mut call = download(&config, remote.clone(), false);
    let error = done(&mut call, 0).unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, Error::InvalidInput(_)), "{error:?}");
    assert!(
        text.contains("plain http") && !text.contains("secret"),
        "{text}"
    );
    // Loopback is harmless, and the caller may allow it explicitly.
    let local = info("http://127.0.0.1:9000/f?Signature=s");
    send(&mut download(&config, local, false), 0);
    config.transport.allow_insecure_http = true;
    send(&mut download(&config, remote, false), 0);
}

#[test]
fn integrity_failures_and_exhausted_budgets_give_up() {
    let config = client();
    let mut call = download(&config, fresh(), true);
    send(&mut call, 0);
    call.head(StatusCode::OK, &media_head(Some(10)), secs(0));
    assert!(call.chunk(b"12345", secs(0)));
    assert!(!call.end(secs(0)));
    assert!(matches!(
        done(&mut call, 0),
        Err(Error::Integrity(IntegrityError::LengthMismatch { .. }))
    ));

    let mut call = download(&config, fresh(), false);
    for _ in 0..TransportConfig::new("t").retry.max_attempts {
        send(&mut call, 0);
        call.failed(connect());
    }
    assert!(matches!(done(&mut call, 0), Err(Error::Connect { .. })));
    assert_eq!(call.attempt(), 3);
}

#[test]
fn a_download_s_deadline_is_its_size_cap_at_the_floor_rate() {
    let mut config = client();
    let mut call = download(&config, fresh(), false);
    send(&mut call, 0);
    // 120 s + 100 MiB at 256 KiB/s.
    assert_eq!(call.watch().deadline(), secs(120 + 400));
    config.transport.min_transfer_rate = None;
    let mut call = Call::download(
        fresh(),
        &config,
        DownloadOptions::new().max_bytes(1 << 30),
        false,
        false,
    );
    send(&mut call, 0);
    assert_eq!(call.watch().deadline(), secs(120));
}

#[test]
fn a_dripping_body_stalls_after_the_grace_period_a_steady_one_never() {
    let config = client();
    let mut call = download(&config, fresh(), false);
    send(&mut call, 0);
    call.head(StatusCode::OK, &media_head(Some(1000)), secs(1));
    let mut t = 1000;
    while call.chunk(b"x", Duration::from_millis(t)) {
        t += 2000;
        assert!(t < 24_000, "not stalled after {t} ms");
    }
    assert!(t >= 21_000, "stalled after {t} ms");
    let error = done(&mut call, t).unwrap_err();
    assert!(
        matches!(
            error,
            Error::Timeout {
                phase: Phase::Body,
                limit: Limit::Stall,
                after,
                ..
            } if after == secs(20)
        ),
        "{error:?}"
    );

    // Nothing at all: the stall is noticed when the driver's timer comes.
    let mut call = download(&config, fresh(), false);
    send(&mut call, 0);
    call.head(StatusCode::OK, &media_head(None), secs(0));
    let stalled_at = loop {
        let t = call.watch().wake_at();
        if !call.tick(t) {
            break t;
        }
    };
    assert_eq!(stalled_at, secs(20));

    // A stall ends the call, even where a retry could start over (a download to a path, whose
    // writer is rewound with a fresh temporary file): the grace period is the bound.
    let mut call = Call::download(fresh(), &config, DownloadOptions::new(), false, true);
    send(&mut call, 0);
    call.head(StatusCode::OK, &media_head(Some(1000)), secs(0));
    let stalled_at = loop {
        let t = call.watch().wake_at();
        if !call.tick(t) {
            break t;
        }
    };
    let error = done(&mut call, stalled_at.as_millis() as u64).unwrap_err();
    assert!(
        matches!(
            error,
            Error::Timeout {
                limit: Limit::Stall,
                ..
            }
        ),
        "{error:?}"
    );

    // Slow but above the floor (a byte every 0.9 s) is not a stall.
    let mut call = download(&config, fresh(), false);
    send(&mut call, 0);
    call.head(StatusCode::OK, &media_head(None), secs(0));
    for i in 0..130 {
        assert!(call.chunk(b"x", Duration::from_millis(i * 900)), "at {i}");
    }
}

#[test]
fn an_onprem_call_asks_for_a_token_and_logs_in_again_after_a_401() {
    let config = onprem_config(OnPremLogin::Password {
        username: "admin".into(),
        password: crate::AccessSecret::new("pw"),
    });
    let op = DeleteMedia::new("m1");
    let mut call = Call::onprem(&op, &config, Upload::default());
    assert!(matches!(call.poll(at(0)), Step::Token { rejected: None }));
    let first = Token::from_parts("t1", None);
    call.token(Ok(Some(first.clone())));
    let (request, _) = send(&mut call, 0);
    assert_eq!(request.headers()["authorization"], "Bearer t1");
    answer(&mut call, 401, b"", 0);
    let Step::Token { rejected } = call.poll(at(0)) else {
        panic!("a 401 asks for a new token")
    };
    assert_eq!(rejected, Some(first));
    call.token(Ok(Some(Token::from_parts("t2", None))));
    let (request, _) = send(&mut call, 0);
    assert_eq!(request.headers()["authorization"], "Bearer t2");
    answer(&mut call, 200, b"", 0);
    done(&mut call, 0).unwrap();

    // A given token that is refused: nothing to log in with, the 401 is the answer.
    let mut call = Call::onprem(&op, &config, Upload::default());
    let _ = call.poll(at(0));
    call.token(Ok(Some(Token::from_parts("given", None))));
    send(&mut call, 0);
    answer(&mut call, 401, b"", 0);
    assert!(matches!(call.poll(at(0)), Step::Token { .. }));
    call.token(Ok(None));
    assert_eq!(
        done(&mut call, 0).unwrap_err().status(),
        Some(StatusCode::UNAUTHORIZED)
    );
}

#[test]
fn a_login_carries_basic_credentials_and_a_401_is_final() {
    let config = onprem_config(OnPremLogin::Token(Token::from_parts("x", None)));
    let login = Login::new();
    let password = crate::AccessSecret::new("pw");
    let mut call = Call::login(&login, &config, "admin", &password);
    let (request, _) = send(&mut call, 0);
    assert!(
        request.headers()["authorization"]
            .to_str()
            .unwrap()
            .starts_with("Basic ")
    );
    answer(&mut call, 401, b"", 0);
    assert_eq!(
        done(&mut call, 0).unwrap_err().status(),
        Some(StatusCode::UNAUTHORIZED)
    );
}

#[test]
fn a_retrieve_is_a_transfer_with_a_token() {
    let config = onprem_config(OnPremLogin::Token(Token::from_parts("x", None)));
    let op = RetrieveMedia::new("m1");
    let mut call = Call::retrieve(&op, &config, DownloadOptions::new(), false);
    assert!(matches!(call.poll(at(0)), Step::Token { .. }));
    call.token(Ok(Some(Token::from_parts("x", None))));
    send(&mut call, 0);
    assert_eq!(call.watch().head_timeout(), Some(secs(30)));
    let mut headers = media_head(Some(3));
    headers.insert(http::header::CONTENT_TYPE, "image/png".parse().unwrap());
    assert_eq!(call.head(StatusCode::OK, &headers, secs(0)), Read::Stream);
    assert!(call.chunk(b"png", secs(0)));
    assert!(call.end(secs(0)));
    let retrieved = done(&mut call, 0).unwrap();
    assert_eq!(retrieved.media.content_type.as_deref(), Some("image/png"));
    assert_eq!(retrieved.verified.len, 3);

    // 206 is not the file.
    let mut call = Call::retrieve(&op, &config, DownloadOptions::new(), false);
    let _ = call.poll(at(0));
    call.token(Ok(Some(Token::from_parts("x", None))));
    send(&mut call, 0);
    assert_eq!(
        call.head(StatusCode::PARTIAL_CONTENT, &headers, secs(0)),
        Read::Skip
    );
    assert!(matches!(
        done(&mut call, 0),
        Err(Error::Response(crate::ResponseError::Malformed { .. }))
    ));
    // An error answer's body that cannot be read still gives the status.
    let mut call = Call::retrieve(&op, &config, DownloadOptions::new(), false);
    let _ = call.poll(at(0));
    call.token(Ok(Some(Token::from_parts("x", None))));
    send(&mut call, 0);
    let read = call.head(StatusCode::NOT_FOUND, &HeaderMap::new(), secs(0));
    assert!(matches!(read, Read::Whole { .. }));
    call.failed(Error::Transport {
        source: "reset".into(),
    });
    let error = done(&mut call, 0).unwrap_err();
    assert!(
        matches!(&error, Error::Response(r) if r.is_not_found()),
        "{error:?}"
    );
}

#[test]
fn an_onprem_upload_is_streamed_and_its_timeouts_name_the_phase() {
    let config = onprem_config(OnPremLogin::Token(Token::from_parts("x", None)));
    let op = OnPremUpload::new("video/mp4", 200 * 1024);
    let mut call = Call::onprem(&op, &config, Upload { one_shot: true });
    let _ = call.poll(at(0));
    call.token(Ok(Some(Token::from_parts("x", None))));
    send(&mut call, 0);
    assert_eq!(call.watch().phase(), Phase::Request);
    // Slow but steady (1 KiB/s): the call's deadline (120 s, and 200 KiB at 256 KiB/s) ends it.
    for t in 0..120 {
        assert!(call.progress(1024, secs(t)));
    }
    let deadline = call.watch().deadline();
    assert!(
        deadline >= secs(120) && deadline < secs(121),
        "{deadline:?}"
    );
    call.timed_out(deadline);
    let error = done(&mut call, 121_000).unwrap_err();
    assert!(
        matches!(
            error,
            Error::Timeout {
                phase: Phase::Request,
                limit: Limit::Call,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("sending the request"), "{error}");
}

/// An HTTP stack's error that quotes the URL it refused, with the quote one cause down (as ureq
/// wraps its errors in `io::Error`).
#[derive(Debug)]
struct QuotesTheUrl(std::io::Error);

impl std::fmt::Display for QuotesTheUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request failed")
    }
}

impl std::error::Error for QuotesTheUrl {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[test]
fn a_transport_error_never_shows_a_url_query_or_user_info() {
    let mut config = client();
    config.transport.retry = RetryPolicy::none();
    let url = "https://oss.example/f?Expires=2000000000&Signature=Sig5ecret";
    let quoted = |url: &str| std::io::Error::other(format!("bad uri: {url} is missing host"));
    let failures = [
        Error::Transport {
            source: Box::new(QuotesTheUrl(quoted(url))),
        },
        Error::Connect {
            host: "oss.example:443".into(),
            source: Box::new(quoted("http://user:pa55word@oss.example/f")),
        },
        Error::Tls {
            host: "oss.example:443".into(),
            source: format!("no certificate for {url}").into(),
        },
    ];
    for failure in failures {
        let mut call = download(&config, info(url), false);
        send(&mut call, 0);
        call.failed(failure);
        let error = done(&mut call, 1).unwrap_err();
        let mut shown = format!("{error} / {error:?}");
        let mut cause = std::error::Error::source(&error);
        let mut depth = 0;
        while let Some(c) = cause {
            shown.push_str(&format!(" / {c} / {c:?}"));
            cause = c.source();
            depth += 1;
        }
        for secret in ["Sig5ecret", "Signature", "pa55word", "user:"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("<redacted>"), "{shown}");
        // The chain keeps its causes, and the transport's error stays reachable by type.
        let source = std::error::Error::source(&error).unwrap();
        let redacted = source
            .downcast_ref::<crate::error::RedactedError>()
            .unwrap();
        if matches!(error, Error::Transport { .. }) {
            assert_eq!(depth, 2, "{shown}");
            assert!(redacted.inner().is::<QuotesTheUrl>());
        }
    }
}

/// The attempt failed with a connect-phase timeout of `limit`, `after` long.
fn assert_connect_timeout<K: Kind>(call: &Call<K>, limit: Limit, after: Duration) {
    let failure = call.failure();
    assert!(
        matches!(
            failure,
            Some(Error::Timeout { phase: Phase::Connect, limit: l, after: a, .. })
                if *l == limit && *a == after
        ),
        "{failure:?}"
    );
}

#[test]
fn a_new_connection_is_bounded_by_connect_timeout_within_the_attempt() {
    let mut config = client();
    config.transport.connect_timeout = secs(1);
    config.transport.request_timeout = secs(20);
    let op = GetMedia::new("8615800001795", "m1");
    let mut call = Call::api(&op, &config, Upload::default());
    send(&mut call, 5_000);
    // The connect limit runs from the attempt's start; the attempt's own limit is untouched.
    assert_eq!(call.watch().connect_deadline(), secs(6));
    assert_eq!(call.watch().deadline(), secs(25));
    call.connect_timed_out();
    assert_connect_timeout(&call, Limit::Connect, secs(1));
    assert!(
        call.failure()
            .unwrap()
            .to_string()
            .starts_with("timed out connecting to api2.nxcloud.com:443: the connect limit (connect_timeout) of 1s passed")
    );
    // Nothing was sent: retried like a refused connection, a send included.
    assert!(matches!(
        call.failure().and_then(Error::attempt_failure),
        Some(AttemptFailure::Connect)
    ));
    let (_, resent) = send(&mut call, 6_000);
    assert_eq!(call.watch().connect_deadline(), at(resent).at + secs(1));
    // Connected: a slow answer gets the attempt's limit, not the connect limit.
    assert!(call.tick(at(resent + 10_000).at));
    answer(&mut call, 200, MEDIA_OK, resent + 10_000);
    assert!(done(&mut call, resent + 10_000).is_ok());
}

#[test]
fn the_connect_limit_is_capped_by_the_deadline() {
    let mut config = client();
    config.transport.connect_timeout = secs(10);
    config.transport.request_timeout = secs(3);
    let op = GetMedia::new("8615800001795", "m1");
    let mut call = Call::api(&op, &config, Upload::default());
    send(&mut call, 0);
    assert_eq!(call.watch().connect_deadline(), secs(3));
    call.connect_timed_out();
    assert_connect_timeout(&call, Limit::Attempt, secs(3));
    // Outside an attempt it changes nothing.
    let mut idle = Call::api(&op, &config, Upload::default());
    idle.connect_timed_out();
    assert!(idle.failure().is_none());
}

/// The failure's host and proxy, if it is a timeout.
fn peer_of<K: Kind>(call: &Call<K>) -> (Option<String>, Option<String>) {
    match call.failure() {
        Some(Error::Timeout { host, proxy, .. }) => (host.clone(), proxy.clone()),
        other => panic!("not a timeout: {other:?}"),
    }
}

#[test]
fn a_timeout_names_the_server_and_the_proxy_it_waited_on() {
    use crate::proxy::{NoProxy, ProxyConfig, ProxyRules, ProxyUrl};
    let mut config = client();
    config.base_url = BaseUrl::parse("https://api.example:8443/nx").unwrap();
    let op = GetMedia::new("8615800001795", "m1");
    // Direct: the API host; the watch's own error named none.
    let mut call = Call::api(&op, &config, Upload::default());
    send(&mut call, 0);
    call.timed_out(secs(30));
    assert_eq!(peer_of(&call), (Some("api.example:8443".into()), None));
    // A download's stalled body names the download URL's host, not the API's, and never
    // its query.
    let mut call = download(&config, fresh(), false);
    send(&mut call, 0);
    assert_eq!(
        call.head(StatusCode::OK, &media_head(None), secs(1)),
        Read::Stream
    );
    call.stalled();
    assert_eq!(peer_of(&call), (Some("oss.example:443".into()), None));
    let shown = format!("{0} {0:?}", call.failure().unwrap());
    assert!(
        shown.contains("receiving the answer's body from oss.example:443"),
        "{shown}"
    );
    assert!(!shown.contains("Signature"), "{shown}");
    // Through a proxy with credentials: its host and port, never the credentials; a host
    // its NO_PROXY exempts is reached directly.
    let proxy = ProxyUrl::parse("http://user:pa55word@10.0.0.1:3128").unwrap();
    let mut rules = ProxyRules::all(proxy);
    rules.no_proxy = NoProxy::parse("oss.example");
    config.transport.proxy = ProxyConfig::Rules(rules);
    let mut call = Call::api(&op, &config, Upload::default());
    send(&mut call, 0);
    call.connect_timed_out();
    assert_eq!(
        peer_of(&call),
        (
            Some("api.example:8443".into()),
            Some("10.0.0.1:3128".into())
        )
    );
    let shown = format!("{0} {0:?}", call.failure().unwrap());
    assert!(
        shown.starts_with("timed out connecting to api.example:8443 through proxy 10.0.0.1:3128: "),
        "{shown}"
    );
    assert!(
        !shown.contains("pa55word") && !shown.contains("user"),
        "{shown}"
    );
    let mut call = download(&config, fresh(), false);
    send(&mut call, 0);
    call.timed_out(secs(30));
    assert_eq!(peer_of(&call), (Some("oss.example:443".into()), None));
    // A transport's connect error without its host gets the attempt's; one with it keeps it.
    let mut call = Call::api(&op, &config, Upload::default());
    send(&mut call, 0);
    call.failed(Error::Connect {
        host: String::new(),
        source: "refused".into(),
    });
    assert!(
        matches!(call.failure(), Some(Error::Connect { host, .. }) if host == "api.example:8443"),
        "{:?}",
        call.failure()
    );
    let mut call = download(&config, fresh(), false);
    send(&mut call, 0);
    call.failed(connect());
    assert!(
        matches!(call.failure(), Some(Error::Connect { host, .. }) if host == "oss.example"),
        "{:?}",
        call.failure()
    );
}
