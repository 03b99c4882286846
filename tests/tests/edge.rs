//! Input validation at the edge and time: the cases of issue 9 (items 5 and 6) that
//! `nxcloud.rs` and `onprem.rs` do not cover already, run against both transports.
//!
//! Already covered there: NXCloud phones with `+`, spaces, letters; empty, control-character and
//! 4 KiB media ids; `/ ? # % ..` in ids sent as data; MIME types outside the table and files over
//! the limit (both APIs); On-Premises ids with `/ ? # % ..` kept in one path segment; a client
//! clock 5 minutes off recovering after one 1004; a skewed `Date` followed once.

use std::io::Write;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nx_conformance::{
    AsyncDriver, AsyncDriverOnPrem, BlockingDriver, BlockingDriverOnPrem, Driver, OnPremDriver,
    OnPremWorld, read_request, test_config,
};
use nx_protocol::InvalidInput;
use nx_protocol::config::OnPremLogin;
use nx_protocol::error::Error;
use nx_protocol::operation::BaseUrl;
use nx_protocol::policy::clock::ClockError;
use nx_sandbox::{DEMO_BUSINESS_PHONE as PHONE, Route, Sandbox, SandboxConfig};

/// A server on 127.0.0.1:0 that answers every request with the same raw HTTP answer and counts
/// the requests; it stops when dropped. Unlike the sandbox (whose HTTP stack always sends a
/// `Date`), it sends exactly the head it is given.
struct Scripted {
    addr: std::net::SocketAddr,
    requests: Arc<AtomicUsize>,
    heads: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Scripted {
    fn start(answer: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let (counted, stopping, seen) = (requests.clone(), stop.clone(), heads.clone());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stopping.load(Ordering::Relaxed) && Instant::now() < deadline {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                if let Some((head, _)) = read_request(&stream) {
                    seen.lock().unwrap().push(head);
                }
                counted.fetch_add(1, Ordering::Relaxed);
                let _ = (&stream).write_all(answer.as_bytes());
            }
        });
        Self {
            addr,
            requests,
            heads,
            stop,
            thread: Some(thread),
        }
    }

    fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::Relaxed)
    }

    /// The heads of the requests received so far, as sent.
    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// NXCloud's 1004 answer with these extra header lines (none: no `Date` at all).
fn answer_1004(extra_headers: &str) -> String {
    let body = r#"{"code":1004,"message":"Timestamp expired","data":null}"#;
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n{extra_headers}\r\n{body}",
        body.len()
    )
}

/// A client of transport `D` against `server` (the sandbox only lends its settings).
fn client_for<D: Driver>(server: &Scripted) -> D {
    client_with::<D>(server, |_| {}).unwrap()
}

fn client_with<D: Driver>(
    server: &Scripted,
    edit: impl FnOnce(&mut nx_protocol::config::ClientConfig),
) -> Result<D, Error> {
    let sandbox = Sandbox::start(SandboxConfig::default()).unwrap();
    let mut config = test_config(&sandbox);
    config.base_url = BaseUrl::parse(&server.base_url()).unwrap();
    edit(&mut config);
    D::new(config)
}

/// An On-Premises client of transport `P` against `server`, logging in with `login` (the
/// sandbox only lends its test settings: 3 attempts, quick retries).
fn onprem_client_for<P: OnPremDriver>(server: &Scripted, login: OnPremLogin) -> P {
    let sandbox = Sandbox::start(SandboxConfig::default()).unwrap();
    let mut config = nx_conformance::onprem_test_config(&sandbox, login);
    config.base_url = BaseUrl::parse(&server.base_url()).unwrap();
    assert_eq!(config.transport.retry.max_attempts, 3);
    P::new(config).unwrap()
}

/// The configured `User-Agent` goes out once on every request, exactly as given; one that
/// cannot be a header value is refused when the client is built, naming what is wrong, rather
/// than replaced or failing each call.
fn user_agent_is_sent_as_given_and_a_bad_one_refused<D: Driver>() {
    let server = Scripted::start(answer_1004(""));
    for bad in ["app\n1.0", "app\r\nX-Injected: 1", "caf\u{e9}\u{7f}"] {
        match client_with::<D>(&server, |c| c.transport.user_agent = bad.to_owned()) {
            Err(Error::Config(message)) => assert!(message.contains("User-Agent"), "{message}"),
            other => panic!("{bad:?}: {:?}", other.map(|_| ())),
        }
    }
    assert_eq!(server.requests(), 0, "a refused client sends nothing");
    let client = client_with::<D>(&server, |c| {
        c.transport.user_agent = "shop-backend/2.3 (ops@example.com)".to_owned()
    })
    .unwrap();
    let _ = client.get_media(PHONE, "any");
    let heads = server.heads();
    assert_eq!(heads.len(), 1, "{heads:?}");
    let agents: Vec<&str> = heads[0]
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(name, _)| name.eq_ignore_ascii_case("user-agent"))
        .map(|(_, value)| value.trim())
        .collect();
    assert_eq!(
        agents,
        ["shop-backend/2.3 (ops@example.com)"],
        "{}",
        heads[0]
    );
}

/// A server that never sends `Date` and answers 1004: one request, then `Error::Clock` whose
/// message says to check the clock; not a loop, not a retry.
fn no_date_header_is_a_clock_error_not_a_loop<D: Driver>() {
    let server = Scripted::start(answer_1004(""));
    let client = client_for::<D>(&server);
    let started = Instant::now();
    match client.get_media(PHONE, "any") {
        Err(e @ Error::Clock(ClockError::NoDate)) => {
            let message = e.to_string();
            assert!(
                message.contains("clock") && message.contains("1004"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        server.requests(),
        1,
        "no retry without a Date to correct from"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// A `Date` that is not an HTTP date: the same, with the value shown.
fn unreadable_date_header_is_a_clock_error<D: Driver>() {
    let server = Scripted::start(answer_1004("date: yesterday at noon\r\n"));
    let client = client_for::<D>(&server);
    match client.get_media(PHONE, "any") {
        Err(e @ Error::Clock(ClockError::BadDate(_))) => {
            let message = e.to_string();
            assert!(
                message.contains("yesterday") && message.contains("clock"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.requests(), 1);
}

const BARE_429: &str =
    "HTTP/1.1 429 Too Many Requests\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

/// A bare 429 from NXCloud's gateway (no envelope) is retried, as the other transient statuses.
fn bare_429_is_retried_for_nxcloud<D: Driver>() {
    let server = Scripted::start(BARE_429.to_owned());
    let client = client_for::<D>(&server);
    match client.get_media(PHONE, "any") {
        Err(Error::Response(e)) => assert_eq!(e.status().as_u16(), 429),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.requests(), 3, "every attempt of the policy");
}

/// The same on the On-Premises API is final: its documentation says not to retry 4xx answers
/// other than its listed codes, since some hosts block a number after repeated error answers.
fn bare_429_is_final_on_premises<P: OnPremDriver>() {
    let server = Scripted::start(BARE_429.to_owned());
    let client = onprem_client_for::<P>(&server, nx_conformance::demo_login());
    match client.login() {
        Err(Error::Response(e)) => assert_eq!(e.status().as_u16(), 429),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.requests(), 1, "not retried");
}

/// A retrieve answered 200 with Meta's error shape as JSON (as a proxy or a confused
/// installation might): the error, not a media file holding the error's text.
fn json_200_on_retrieve_is_the_error_not_the_file<P: OnPremDriver>() {
    let body = r#"{"meta":{"api_status":"stable","version":"3.0.0.0"},"errors":[{"code":1006,"title":"Resource not found","details":"Media not found."}]}"#;
    let server = Scripted::start(format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ));
    let given = OnPremLogin::Token(nx_protocol::onprem::Token::from_parts("given-token", None));
    let client = onprem_client_for::<P>(&server, given);
    match client.retrieve_media("m1", None) {
        Err(Error::Response(e)) => assert!(e.is_not_found(), "{e}"),
        other => panic!(
            "{:?}",
            other.map(|(bytes, _)| String::from_utf8_lossy(&bytes).into_owned())
        ),
    }
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("m1.bin");
    match client.retrieve_media_to_path("m1", &target, None) {
        Err(Error::Response(e)) => assert!(e.is_not_found(), "{e}"),
        other => panic!("{other:?}"),
    }
    assert!(nx_conformance::files_in(dir.path()).is_empty());
}

/// On-Premises ids with control characters, empty or 4 KiB long are refused before the media
/// request is sent (the login that precedes it is the only request).
fn onprem_ids_are_checked_before_sending<P: OnPremDriver>() {
    let world = OnPremWorld::<P>::new();
    let long = "a".repeat(4096);
    for id in ["", "a\nb", "a\u{7f}b", "tab\there", long.as_str()] {
        let refused = |result: Result<(), Error>| {
            assert!(
                matches!(
                    result,
                    Err(Error::InvalidInput(InvalidInput::MediaId { .. }))
                ),
                "{id:?}: {result:?}"
            );
        };
        refused(world.client.retrieve_media(id, None).map(drop));
        refused(world.client.delete_media(id));
        refused(world.client.retry_download(id).map(drop));
        let dir = tempfile::tempdir().unwrap();
        refused(
            world
                .client
                .retrieve_media_to_path(id, &dir.path().join("x"), None)
                .map(drop),
        );
        assert!(nx_conformance::files_in(dir.path()).is_empty());
    }
    let routes: Vec<Route> = world
        .sandbox
        .log()
        .entries()
        .iter()
        .map(|e| e.route)
        .collect();
    assert!(
        routes.iter().all(|r| *r == Route::OnPremLogin),
        "only logins went out: {routes:?}"
    );
}

macro_rules! both {
    ($driver_async:ident, $driver_blocking:ident: $($case:ident),* $(,)?) => {
        $(
            mod $case {
                #[test]
                fn async_client() {
                    super::$case::<super::$driver_async>()
                }
                #[test]
                fn blocking_client() {
                    super::$case::<super::$driver_blocking>()
                }
            }
        )*
    };
}

both!(AsyncDriver, BlockingDriver:
    user_agent_is_sent_as_given_and_a_bad_one_refused,
    bare_429_is_retried_for_nxcloud,
    no_date_header_is_a_clock_error_not_a_loop,
    unreadable_date_header_is_a_clock_error,
);
both!(AsyncDriverOnPrem, BlockingDriverOnPrem:
    onprem_ids_are_checked_before_sending,
    bare_429_is_final_on_premises,
    json_200_on_retrieve_is_the_error_not_the_file,
);
