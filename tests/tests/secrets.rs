//! Secrets: run conformance-style calls (successes, faults, refusals, re-logins, clock
//! corrections) for both transports and both APIs with every log switched on, capture all of
//! it, and scan every captured byte for anything that grants access: the access secret, any
//! `sign` value that was sent, the On-Premises password (and its Basic header), any token the
//! sandbox issued, and any download URL's signature.
//!
//! Captured: the SDK's `tracing` events and spans at TRACE (a `tracing-subscriber` writing to a
//! buffer), the `log` records ureq emits (a `log` logger writing to the same buffer), every
//! error's `Display` and `Debug`, the `Debug` of every value the calls returned, and the
//! sandbox's request log. The `Debug` of every public type that holds a secret is pinned below.
//!
//! The one exception is kept apart and documented: ureq's own TRACE records carry download URLs
//! whole (see `ureq_trace_records_carry_download_urls_whole`, ignored until decided), so the
//! main scan reads ureq's records only for the other secrets.
//!
//! ```sh
//! cargo test -p nx-conformance --test secrets -- --nocapture
//! ```

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Mutex, Once};
use std::time::Duration;

use nx_conformance::proxy::ConnectProxy;
use nx_conformance::{
    AsyncDriver, AsyncDriverOnPrem, BlockingDriver, BlockingDriverOnPrem, CannedServer, Driver,
    OnPremDriver, OnPremWorld, PNG_1X1, Source, World, demo_basic_header, demo_login,
    malformed_answers_with_url, pattern, through_proxy,
};
use nx_protocol::call::{Call, Now, Step};
use nx_protocol::config::{ClientConfig, OnPremConfig, OnPremLogin};
use nx_protocol::download::DownloadOptions;
use nx_protocol::download::Sha256Digest;
use nx_protocol::error::Error;
use nx_protocol::onprem::{Auth, Token};
use nx_protocol::operation::{BaseUrl, Operation, build_request};
use nx_protocol::wa::{DeleteMedia, DownloadUrl, GetMedia, MediaInfo};
use nx_protocol::{AccessSecret, Credentials, Timestamp};
use nx_sandbox::{
    DEMO_ACCESS_KEY, DEMO_ACCESS_SECRET, DEMO_BUSINESS_PHONE as PHONE, DEMO_ONPREM_PASSWORD,
    DEMO_ONPREM_USER, Fault, FaultRule, OnPremUser, Route, Sandbox, SandboxConfig,
};

// ---------------------------------------------------------------------------------------------
// Capture
// ---------------------------------------------------------------------------------------------

/// Everything captured: the SDK's tracing output and everything else but ureq's records.
static CAPTURED: Mutex<Vec<u8>> = Mutex::new(Vec::new());
/// ureq's (and any other dependency's) `log` records.
static LOG_RECORDS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

fn lock(m: &Mutex<Vec<u8>>) -> std::sync::MutexGuard<'_, Vec<u8>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn capture(text: &str) {
    let mut buf = lock(&CAPTURED);
    buf.extend_from_slice(text.as_bytes());
    buf.push(b'\n');
}

struct Writer;

impl Write for Writer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        lock(&CAPTURED).extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Records;

impl log::Log for Records {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let line = format!("{} {} {}\n", record.level(), record.target(), record.args());
        lock(&LOG_RECORDS).extend_from_slice(line.as_bytes());
    }
    fn flush(&self) {}
}

fn capture_everything() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_target(true)
            .with_writer(|| Writer)
            .init();
        log::set_logger(&Records).expect("no other logger");
        log::set_max_level(log::LevelFilter::Trace);
    });
}

// ---------------------------------------------------------------------------------------------
// What must never appear
// ---------------------------------------------------------------------------------------------

/// The secrets seen so far, with a name for reports; the `sign` values apart (there are many:
/// they are looked up among the 32-hex-digit words of the text).
#[derive(Default)]
struct Secrets(Vec<(String, String)>, std::collections::HashSet<String>);

impl Secrets {
    fn add_sign(&mut self, sign: String) {
        self.1.insert(sign);
    }

    fn add(&mut self, what: impl Into<String>, value: impl Into<String>) {
        let value = value.into();
        if value.len() >= 8 {
            self.0.push((what.into(), value));
        }
    }

    /// A download URL's signature, as sent (percent-encoded) and decoded, and its whole query.
    fn add_url(&mut self, url: &DownloadUrl) {
        let raw = url.expose();
        if let Some((_, query)) = raw.split_once('?') {
            self.add("a download URL's query", query);
            for pair in query.split('&') {
                if let Some(sig) = pair.strip_prefix("Signature=") {
                    self.add("a download URL's signature", sig);
                    let decoded = percent_decode(sig);
                    self.add("a download URL's signature (decoded)", decoded);
                }
            }
        }
    }

    fn hits(&self, haystack: &[u8]) -> Vec<String> {
        let text = String::from_utf8_lossy(haystack);
        let mut hits: Vec<String> = self
            .0
            .iter()
            .filter(|(_, value)| text.contains(value.as_str()))
            .map(|(what, value)| format!("{what}: {value}"))
            .collect();
        let mut word = String::new();
        for c in text.chars().chain(std::iter::once(' ')) {
            if c.is_ascii_hexdigit() && !c.is_ascii_uppercase() {
                word.push(c);
                continue;
            }
            if word.len() == 32 && self.1.contains(&word) {
                hits.push(format!("a sign value: {word}"));
            }
            word.clear();
        }
        for marker in ["Signature=", "accessSecret="] {
            if text.contains(marker) {
                hits.push(format!("the text `{marker}`"));
            }
        }
        hits.sort();
        hits.dedup();
        hits
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The demo user's Basic credentials as sent: the header value without its `Basic ` prefix, so
/// that the encoded pair is found on its own too.
fn basic_header() -> String {
    let header = demo_basic_header();
    header
        .strip_prefix("Basic ")
        .expect("a Basic header")
        .to_owned()
}

/// Every `sign` the sandbox received: recomputed from each logged NXCloud request's action and
/// `ts` and the bodies the calls could have sent (`ids` on `phones`).
fn signs(sandbox: &Sandbox, ids: &[String], phones: &[&str], secrets: &mut Secrets) {
    let base = BaseUrl::parse(sandbox.base_url()).unwrap();
    for entry in sandbox.log().entries() {
        let (Some(action), Some(ts)) = (entry.action.as_deref(), entry.ts.as_deref()) else {
            continue;
        };
        let Ok(ms) = ts.parse::<u64>() else { continue };
        let ts = Timestamp::from_millis(ms);
        if action == "uploadMedia" {
            secrets.add_sign(nx_sandbox::signing::sign(
                DEMO_ACCESS_KEY,
                action,
                "2",
                entry.ts.as_deref().unwrap_or(""),
                None,
                DEMO_ACCESS_SECRET,
            ));
            continue;
        }
        for secret in [DEMO_ACCESS_SECRET, WRONG_SECRET] {
            let creds = Credentials::new(DEMO_ACCESS_KEY, secret);
            for phone in phones {
                for id in ids {
                    let request = match action {
                        "deleteMedia" => {
                            build(&DeleteMedia::new(*phone, id.as_str()), &base, &creds, ts)
                        }
                        _ => build(&GetMedia::new(*phone, id.as_str()), &base, &creds, ts),
                    };
                    if let Some(sign) = request {
                        secrets.add_sign(sign);
                    }
                }
            }
        }
    }
}

fn build<O: Operation>(
    op: &O,
    base: &BaseUrl,
    creds: &Credentials,
    ts: Timestamp,
) -> Option<String> {
    let request = build_request(op, base, creds, ts).ok()?;
    Some(request.headers().get("sign")?.to_str().ok()?.to_owned())
}

/// A wrong secret some calls use (it must not leak either).
const WRONG_SECRET: &str = "wrong-secret-for-the-scan";

// ---------------------------------------------------------------------------------------------
// The calls
// ---------------------------------------------------------------------------------------------

fn record<T: std::fmt::Debug>(what: &str, result: Result<T, Error>) -> Option<T> {
    match result {
        Ok(value) => {
            capture(&format!("{what}: ok {value:?}"));
            Some(value)
        }
        Err(e) => {
            capture(&format!("{what}: error {e} / {e:?}"));
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                capture(&format!("  caused by {cause} / {cause:?}"));
                source = cause.source();
            }
            None
        }
    }
}

/// NXCloud calls of every kind, with faults; returns the ids used and the URLs seen.
fn nxcloud_calls<D: Driver>(secrets: &mut Secrets) {
    let world = World::<D>::with(
        SandboxConfig::default().url_lifetime(Duration::from_secs(1)),
        |c| c.transport.request_timeout = Duration::from_secs(1),
    );
    let name = D::NAME;
    let data = pattern(70_000);
    let digest = Sha256Digest::of(&data);
    let mut ids = vec!["no-such-id".to_owned()];
    let id = record(
        &format!("{name} upload"),
        world.client.upload_media(
            PHONE,
            "application/pdf",
            Source::Bytes(data.clone(), "s.pdf"),
        ),
    )
    .map(|u| u.id)
    .expect("the upload works");
    ids.push(id.clone());
    let faults = world.sandbox.faults();
    if let Some(info) = record(
        &format!("{name} getMedia"),
        world.client.get_media(PHONE, &id),
    ) {
        secrets.add_url(info.url());
        record(
            &format!("{name} download"),
            world.client.download(&info, Some(digest)),
        );
        // The URL expires (1 s lifetime): a typed 403, its snippet included.
        std::thread::sleep(Duration::from_millis(2100));
        record(
            &format!("{name} expired download"),
            world.client.download(&info, None),
        );
    }
    faults.add(FaultRule::new(Route::GetMedia, Fault::ServiceUnavailable).first(1));
    faults.add(FaultRule::new(Route::GetMedia, Fault::ClockSkew { skew_ms: 200_000 }).on_nth([3]));
    for _ in 0..3 {
        record(
            &format!("{name} getMedia with faults"),
            world.client.get_media(PHONE, &id),
        );
    }
    faults.clear();
    faults.add(FaultRule::new(Route::OssDownload, Fault::CorruptBody).first(1));
    faults.add(FaultRule::new(Route::OssDownload, Fault::Truncated).on_nth([2]));
    faults.add(
        FaultRule::new(
            Route::OssDownload,
            Fault::Redirect {
                location: "file:///etc/passwd".into(),
            },
        )
        .on_nth([3]),
    );
    let dir = tempfile::tempdir().unwrap();
    for round in 0..4 {
        record(
            &format!("{name} download_media_to_path {round}"),
            world.client.download_media_to_path(
                PHONE,
                &id,
                &dir.path().join("f.pdf"),
                Some(digest),
            ),
        );
        record(
            &format!("{name} download_media {round}"),
            world.client.download_media(PHONE, &id, None),
        );
    }
    faults.clear();
    faults.add(FaultRule::new(Route::GetMedia, Fault::InvalidJson).first(1));
    faults.add(
        FaultRule::new(
            Route::GetMedia,
            Fault::Oversize {
                bytes: 2 << 20,
                content_length: false,
            },
        )
        .on_nth([2]),
    );
    faults.add(FaultRule::new(Route::GetMedia, Fault::Stall).on_nth([3]));
    faults.add(FaultRule::new(Route::DeleteMedia, Fault::Reset).first(1));
    for _ in 0..3 {
        record(
            &format!("{name} getMedia, bad answers"),
            world.client.get_media(PHONE, "no-such-id"),
        );
    }
    faults.clear();
    let wrong = world.client_with(|c| {
        c.credentials = Credentials::new(DEMO_ACCESS_KEY, WRONG_SECRET);
    });
    record(&format!("{name} wrong secret"), wrong.get_media(PHONE, &id));
    record(
        &format!("{name} refused input"),
        world.client.get_media("+86 138", "a\nb"),
    );
    record(
        &format!("{name} refused upload"),
        world
            .client
            .upload_media(PHONE, "image/gif", Source::Bytes(vec![1; 8], "g.gif")),
    );
    record(
        &format!("{name} delete"),
        world.client.delete_media(PHONE, &id),
    );
    record(
        &format!("{name} delete again"),
        world.client.delete_media(PHONE, &id),
    );
    signs(&world.sandbox, &ids, &[PHONE, "+86 138"], secrets);
    capture(&format!(
        "{name} sandbox log: {:?}",
        world.sandbox.log().entries()
    ));
    capture(&format!("{name} sandbox: {:?}", world.sandbox));
}

/// The signature of the URLs in the hostile answers ([`malformed_answers_with_url`]).
const HOSTILE_SIGNATURE: &str = "H0stileSignatureValue%2Bq7";

/// A server whose getMedia answers carry a valid signed URL but are malformed (a BOM, a code as
/// a string, duplicate keys, a raw NUL, ...): the answer is never shown raw.
fn hostile_server() -> CannedServer {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let next = AtomicUsize::new(0);
    CannedServer::start(move |line, base| {
        if !line.contains("/api/wa/getMedia") {
            return (404, "text/plain", Vec::new());
        }
        let answers = malformed_answers_with_url(base, HOSTILE_SIGNATURE);
        let (what, body) = &answers[next.fetch_add(1, Ordering::Relaxed) % answers.len()];
        let status = if *what == "an HTML page" { 502 } else { 200 };
        (status, "application/json", body.clone().into_bytes())
    })
}

/// NXCloud calls against [`hostile_server`], every malformed answer twice over.
fn hostile_calls<D: Driver>(secrets: &mut Secrets) {
    secrets.add("a hostile answer's URL signature", HOSTILE_SIGNATURE);
    secrets.add(
        "a hostile answer's URL signature (decoded)",
        percent_decode(HOSTILE_SIGNATURE),
    );
    let server = hostile_server();
    let world = World::<D>::new();
    let client = world.client_with(|c| {
        c.base_url = BaseUrl::parse(server.url()).unwrap();
        c.transport.request_timeout = Duration::from_millis(500);
    });
    let dir = tempfile::tempdir().unwrap();
    let count = malformed_answers_with_url("", "").len();
    for round in 0..count {
        let name = D::NAME;
        record(
            &format!("{name} hostile getMedia {round}"),
            client.get_media(PHONE, "m"),
        );
        record(
            &format!("{name} hostile download_media_to_path {round}"),
            client.download_media_to_path(PHONE, "m", &dir.path().join("m.png"), None),
        );
    }
}

/// The signature of the download URLs the transports refuse ([`refused_download_urls`]).
const REFUSED_SIGNATURE: &str = "RefusedUrlSignature%2Fz9";

/// Download URLs each transport refuses, with a signature in the query: a port where nothing
/// listens (a connect error), https to a plain-http server (a TLS or protocol error); and,
/// through the call machine every transport hands its errors to, ureq's own `BadUri`, whose
/// text is the whole URL (with user info, too). Every error chain is recorded.
fn refused_download_urls<D: Driver>(secrets: &mut Secrets) {
    secrets.add("a refused download URL's signature", REFUSED_SIGNATURE);
    secrets.add(
        "a refused download URL's signature (decoded)",
        percent_decode(REFUSED_SIGNATURE),
    );
    secrets.add("a refused download URL's user info", "refused-user:pw");
    let plain = CannedServer::start(|_, _| (200, "text/plain", b"not TLS".to_vec()));
    let query = format!("?Expires=2000000000&OSSAccessKeyId=K&Signature={REFUSED_SIGNATURE}");
    let plain_https = plain.url().replacen("http://", "https://", 1);
    let urls = [
        format!("http://127.0.0.1:1/oss/m.png{query}"),
        format!("{plain_https}/oss/m.png{query}"),
    ];
    let world = World::<D>::new();
    let client = world.client_with(|c| c.transport.request_timeout = Duration::from_millis(500));
    let name = D::NAME;
    for url in &urls {
        let info = MediaInfo::new("image/png", "m.png", DownloadUrl::parse(url).unwrap());
        let result = client.download(&info, None);
        assert!(result.is_err(), "{name}: a refused URL was downloaded");
        record(&format!("{name} refused download"), result);
    }

    let config = nx_conformance::test_config(&world.sandbox);
    let url = format!("https://oss.example/oss/m.png{query}");
    let quoted = [
        format!("{url} is missing host"),
        "https://refused-user:pw@oss.example/m.png is missing host".to_owned(),
    ];
    for text in quoted {
        let info = MediaInfo::new("image/png", "m.png", DownloadUrl::parse(&url).unwrap());
        let mut call = Call::download(info, &config, DownloadOptions::new(), false, false);
        let now = |at: Duration| Now {
            at,
            wall: Timestamp::from_millis(1_700_000_000_000 + at.as_millis() as u64),
        };
        // Every attempt fails as ureq refusing the URL would; the machine retries, then ends.
        let mut at = Duration::ZERO;
        let mut attempts = 0;
        let result = loop {
            match call.poll(now(at)) {
                Step::Done(result) => break result,
                Step::Send(_) => {
                    attempts += 1;
                    call.failed(Error::Transport {
                        source: Box::new(ureq::Error::BadUri(text.clone())),
                    });
                }
                Step::Sleep(until) => at = until,
                other => panic!("a download asks for no {other:?}"),
            }
        };
        assert!(attempts >= 1 && result.is_err(), "{result:?}");
        record("ureq's BadUri through the call machine", result);
    }
}

/// On-Premises calls of every kind, with faults, a revoked token and a wrong password.
fn onprem_calls<P: OnPremDriver>(secrets: &mut Secrets) {
    let world = OnPremWorld::<P>::with(SandboxConfig::default(), |c| {
        c.transport.request_timeout = Duration::from_secs(1)
    });
    let name = P::NAME;
    if let Some(token) = record(&format!("{name} login"), world.client.login()) {
        secrets.add("an On-Premises token", token.expose());
    }
    let data = pattern(50_000);
    let digest = Sha256Digest::of(&data);
    let id = record(
        &format!("{name} upload"),
        world
            .client
            .upload_media("application/pdf", Source::Bytes(data.clone(), "o.pdf")),
    )
    .map(|u| u.id)
    .expect("the upload works");
    record(
        &format!("{name} retrieve"),
        world
            .client
            .retrieve_media(&id, Some(digest))
            .map(|(b, r)| (b.len(), r)),
    );
    let faults = world.sandbox.faults();
    faults.add(FaultRule::new(Route::OnPremGetMedia, Fault::CorruptBody).first(1));
    faults.add(FaultRule::new(Route::OnPremGetMedia, Fault::BadGateway).on_nth([2, 3, 4]));
    let dir = tempfile::tempdir().unwrap();
    for round in 0..3 {
        record(
            &format!("{name} retrieve_media_to_path {round}"),
            world
                .client
                .retrieve_media_to_path(&id, &dir.path().join("o.pdf"), Some(digest)),
        );
    }
    faults.clear();
    world.sandbox.revoke_onprem_tokens();
    record(
        &format!("{name} retry-download after revoke"),
        world.client.retry_download(&id),
    );
    faults.add(FaultRule::new(Route::OnPremLogin, Fault::UnknownCode(4242)).first(1));
    world.sandbox.revoke_onprem_tokens();
    record(
        &format!("{name} delete, login refused"),
        world.client.delete_media(&id),
    );
    faults.clear();
    record(&format!("{name} delete"), world.client.delete_media(&id));
    record(
        &format!("{name} retrieve missing"),
        world.client.retrieve_media(&id, None).map(|(b, _)| b.len()),
    );
    let wrong = world.client_with(OnPremLogin::Password {
        username: DEMO_ONPREM_USER.into(),
        password: AccessSecret::new("wrong-password-for-the-scan"),
    });
    secrets.add(
        "a wrong On-Premises password",
        "wrong-password-for-the-scan",
    );
    record(&format!("{name} wrong password"), wrong.delete_media(&id));
    let given = world.client_with(OnPremLogin::Token(Token::from_parts(
        "sbxnot-a-real-token-0001",
        None,
    )));
    secrets.add("a given On-Premises token", "sbxnot-a-real-token-0001");
    record(&format!("{name} rejected token"), given.retry_download(&id));

    // A fresh installation's first login sets a new password, which later logins send.
    let fresh = OnPremWorld::<P>::with(
        SandboxConfig::default().onprem_users([OnPremUser::demo().must_change_password()]),
        |_| {},
    );
    secrets.add("a new On-Premises password", "new-password-for-the-scan");
    record(
        &format!("{name} login before the first login"),
        fresh.client.login(),
    );
    if let Some(token) = record(
        &format!("{name} first login"),
        fresh.client.first_login("new-password-for-the-scan"),
    ) {
        secrets.add("an On-Premises token", token.expose());
    }
    fresh.sandbox.revoke_onprem_tokens();
    record(
        &format!("{name} re-login with the new password"),
        fresh.client.retry_download(&id),
    );
    capture(&format!(
        "{name} client after a first login: {:?}",
        fresh.client
    ));
    capture(&format!(
        "{name} fresh sandbox log: {:?}",
        fresh.sandbox.log().entries()
    ));
    capture(&format!(
        "{name} sandbox log: {:?}",
        world.sandbox.log().entries()
    ));
}

const PROXY_USER: &str = "proxy-user-4e1b";
const PROXY_PASSWORD: &str = "proxy-pass-c0ffee";
const WRONG_PROXY_PASSWORD: &str = "proxy-wrong-d00d";

/// The base64 of `Basic` proxy credentials, as a proxy receives them.
fn proxy_basic() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("{PROXY_USER}:{PROXY_PASSWORD}"))
}

/// Calls over HTTPS through a proxy that requires credentials: with them, with a wrong
/// password, and without any; the settings' and the client's `Debug` captured too.
fn proxy_calls<D: Driver + std::fmt::Debug>() {
    let proxy = ConnectProxy::with_credentials(PROXY_USER, PROXY_PASSWORD);
    let name = D::NAME;
    let good = proxy.url_with(PROXY_USER, PROXY_PASSWORD);
    let world = World::<D>::with(SandboxConfig::default().tls(true), |c| {
        through_proxy(&mut c.transport, &good);
        capture(&format!("{name} settings with a proxy: {c:?}"));
    });
    capture(&format!("{name} client with a proxy: {:?}", world.client));
    let id = record(
        &format!("{name} upload through the proxy"),
        world
            .client
            .upload_media(PHONE, "image/png", Source::Bytes(PNG_1X1.to_vec(), "p.png")),
    )
    .map(|u| u.id)
    .expect("the upload through the proxy works");
    record(
        &format!("{name} download through the proxy"),
        world.client.download_media(PHONE, &id, None),
    );
    let wrong = world.client_with(|c| {
        through_proxy(
            &mut c.transport,
            &proxy.url_with(PROXY_USER, WRONG_PROXY_PASSWORD),
        )
    });
    let refused = record(
        &format!("{name} wrong proxy password"),
        wrong.get_media(PHONE, &id),
    );
    assert!(refused.is_none(), "a wrong proxy password must fail");
    let anonymous = world.client_with(|c| through_proxy(&mut c.transport, &proxy.url()));
    assert!(
        record(
            &format!("{name} no proxy credentials"),
            anonymous.get_media(PHONE, &id)
        )
        .is_none()
    );
    // A download whose body stalls, through the proxy with credentials: the timeout names the
    // storage's host and the proxy's host and port, never the credentials nor the URL's query.
    let stalling = world.client_with(|c| {
        through_proxy(&mut c.transport, &good);
        c.transport.stalled_stream = Some(nx_protocol::call::StallProtection::new(
            Duration::from_millis(500),
            1,
        ));
        c.transport.overall_timeout = Duration::from_secs(5);
    });
    world
        .sandbox
        .faults()
        .add(FaultRule::new(Route::OssDownload, Fault::Drip(Duration::from_secs(30))).first(1));
    let error = stalling
        .download_media(PHONE, &id, None)
        .expect_err("a stalled download fails");
    let shown = format!("{error} / {error:?}");
    capture(&format!(
        "{name} stalled download through the proxy: {shown}"
    ));
    let proxy_at = nx_protocol::proxy::ProxyUrl::parse(&good)
        .unwrap()
        .authority();
    assert!(
        matches!(&error, Error::Timeout { host: Some(_), proxy: Some(p), .. } if *p == proxy_at),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("through proxy {proxy_at}")),
        "{shown}"
    );
    world.sandbox.faults().clear();
    assert!(proxy.connects().iter().any(|c| c.status == 407));
    assert!(proxy.tunnels() >= 1);
}

/// The tokens the sandbox issued during the run all start like this (`sbx` and 64 hex digits):
/// any `sbx` followed by 16 hex digits in the output is a leaked token.
fn sandbox_tokens(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    for (i, _) in text.match_indices("sbx") {
        let hex = bytes[i + 3..]
            .iter()
            .take_while(|b| b.is_ascii_hexdigit())
            .count();
        if hex >= 16 {
            found.push(text[i..i + 3 + hex].to_owned());
        }
    }
    found
}

#[test]
fn no_secret_reaches_any_output() {
    capture_everything();
    let mut secrets = Secrets::default();
    secrets.add("the access secret", DEMO_ACCESS_SECRET);
    secrets.add("a wrong access secret", WRONG_SECRET);
    secrets.add("the On-Premises password", DEMO_ONPREM_PASSWORD);
    secrets.add("the On-Premises Basic header", basic_header());
    secrets.add("the proxy user name", PROXY_USER);
    secrets.add("the proxy password", PROXY_PASSWORD);
    secrets.add("a wrong proxy password", WRONG_PROXY_PASSWORD);
    secrets.add("the Proxy-Authorization value", proxy_basic());

    nxcloud_calls::<AsyncDriver>(&mut secrets);
    nxcloud_calls::<BlockingDriver>(&mut secrets);
    onprem_calls::<AsyncDriverOnPrem>(&mut secrets);
    onprem_calls::<BlockingDriverOnPrem>(&mut secrets);
    proxy_calls::<AsyncDriver>();
    proxy_calls::<BlockingDriver>();
    hostile_calls::<AsyncDriver>(&mut secrets);
    hostile_calls::<BlockingDriver>(&mut secrets);
    refused_download_urls::<AsyncDriver>(&mut secrets);
    refused_download_urls::<BlockingDriver>(&mut secrets);
    let cli = cli_runs(&mut secrets);

    if std::env::var("NX_SECRETS_DUMP").is_ok() {
        let _ = std::fs::write("/tmp/secrets-captured.txt", &*lock(&CAPTURED));
        let _ = std::fs::write("/tmp/secrets-records.txt", &*lock(&LOG_RECORDS));
    }
    let captured = lock(&CAPTURED).clone();
    let records = lock(&LOG_RECORDS).clone();
    let text = String::from_utf8_lossy(&captured);
    let record_text = String::from_utf8_lossy(&records);
    let mut hits = secrets.hits(&captured);
    hits.extend(
        sandbox_tokens(&text)
            .into_iter()
            .map(|t| format!("a sandbox token: {t}")),
    );
    // ureq's records: its wire dumps (`ureq_proto::util`, TRACE) put the bytes sent back
    // together, and its request lines (`ureq::run`, DEBUG) carry download URLs whole; both are
    // known (the ignored test below) and left out here; every other record is scanned.
    let (known, other): (Vec<&str>, Vec<&str>) = record_text
        .lines()
        .partition(|l| l.contains(" ureq_proto::util ") || l.contains(" ureq::run "));
    let other = other.join("\n");
    let mut record_hits = secrets.hits(other.as_bytes());
    record_hits.extend(
        sandbox_tokens(&other)
            .into_iter()
            .map(|t| format!("a sandbox token: {t}")),
    );
    let known_hits = secrets.hits(wire_text(&known).as_bytes()).len();
    println!(
        "\nsecret scan: {} bytes of tracing output, errors, Debug and sandbox logs; {} bytes of `log` records ({} lines); {} CLI runs ({} bytes); {} secret values and {} sign values searched (+ `Signature=`, `accessSecret=`, sandbox tokens); hits: {} in the SDK's output and the CLI's, {} in the other log records; ureq's wire dumps and request lines (known, not counted): {} kinds of secret",
        captured.len(),
        records.len(),
        record_text.lines().count(),
        cli.0,
        cli.1,
        secrets.0.len(),
        secrets.1.len(),
        hits.len(),
        record_hits.len(),
        known_hits,
    );
    assert!(
        text.contains("nx.onprem") && text.contains("attempt"),
        "the SDK's tracing was captured"
    );
    assert!(
        record_text.contains("ureq"),
        "ureq's log records were captured"
    );
    assert!(hits.is_empty(), "secrets in the output: {hits:#?}");
    assert!(
        record_hits.is_empty(),
        "secrets in the log records: {record_hits:#?}"
    );
}

/// The bytes ureq's wire dumps show, put back together: each `ureq_proto::util` TRACE record is
/// one row of up to 16 bytes, hex then text (non-printable bytes and spaces as `.`).
fn wire_text(lines: &[&str]) -> String {
    lines
        .iter()
        .filter_map(|l| l.split_once(" ureq_proto::util ").map(|(_, row)| row))
        .filter_map(|row| row.split_once("  ").map(|(_, text)| text))
        .collect()
}

/// ureq logs through the `log` crate: at DEBUG (`ureq::run`) each request's method and URI,
/// query included, and at TRACE (`ureq_proto::util`) a hex dump of every byte it sends and
/// receives, headers included. So a `log` logger at those levels in an application using
/// nx-blocking receives download URLs' signatures, every `sign` header, `Authorization: Bearer`
/// tokens and the On-Premises `Authorization: Basic` password. (The SDK's own tracing redacts all
/// of them, and `ureq::run`'s header dump redacts the headers.) Ignored until it is decided how
/// to keep ureq's records out of reach (RELIABILITY.md, section 4); run it with `--ignored` to
/// see the evidence.
#[test]
#[ignore = "known: ureq's DEBUG/TRACE log records carry URLs and headers; see RELIABILITY.md"]
fn ureq_log_records_carry_secrets() {
    capture_everything();
    let world = OnPremWorld::<BlockingDriverOnPrem>::new();
    let token = world.client.login().unwrap();
    let nx = World::<BlockingDriver>::new();
    let id = nx
        .client
        .upload_media(PHONE, "image/png", Source::Bytes(PNG_1X1.to_vec(), "p.png"))
        .unwrap()
        .id;
    let info = nx.client.get_media(PHONE, &id).unwrap();
    nx.client.download(&info, None).unwrap();
    let mut secrets = Secrets::default();
    secrets.add_url(info.url());
    secrets.add("an On-Premises token", token.expose());
    secrets.add("the On-Premises Basic header", basic_header());
    secrets.add("the proxy user name", PROXY_USER);
    secrets.add("the proxy password", PROXY_PASSWORD);
    secrets.add("a wrong proxy password", WRONG_PROXY_PASSWORD);
    secrets.add("the Proxy-Authorization value", proxy_basic());
    signs(&nx.sandbox, &[id], &[PHONE], &mut secrets);
    let records = String::from_utf8_lossy(&lock(&LOG_RECORDS)).into_owned();
    let lines: Vec<&str> = records.lines().collect();
    let wire = wire_text(&lines);
    let mut hits = secrets.hits(records.as_bytes());
    hits.extend(secrets.hits(wire.as_bytes()));
    hits.sort();
    hits.dedup();
    let evidence: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains("Signature="))
        .take(2)
        .collect();
    let sent: Vec<&str> = wire
        .split("..")
        .filter(|h| h.starts_with("sign:") || h.starts_with("authorization:"))
        .take(3)
        .collect();
    assert!(
        hits.is_empty(),
        "{hits:#?}\n{evidence:#?}\nfrom the wire dumps: {sent:#?}"
    );
}

// ---------------------------------------------------------------------------------------------
// The CLI
// ---------------------------------------------------------------------------------------------

/// The `nxcloud` binary of this build, if it was built (`cargo test --workspace` builds it).
fn cli_binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?.parent()?;
    let bin = dir.join("nxcloud");
    bin.exists().then_some(bin)
}

/// Runs the CLI's commands with `-vv` against a sandbox and captures stderr (and stdout, except
/// what a command prints on purpose: `media get` prints the download URL and `onprem login`
/// the token, since that is what they are for). Returns (runs, bytes).
fn cli_runs(secrets: &mut Secrets) -> (usize, usize) {
    let Some(bin) = cli_binary() else {
        println!(
            "(the nxcloud binary is not built: run `cargo build -p nx-cli` or the workspace tests to scan the CLI too)"
        );
        return (0, 0);
    };
    let sandbox = Sandbox::start(SandboxConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("p.png");
    std::fs::write(&png, PNG_1X1).unwrap();
    let base = sandbox.base_url().to_owned();
    let nx = |args: &[&str]| {
        let mut cmd = std::process::Command::new(&bin);
        for var in [
            "NXCLOUD_BASE_URL",
            "NXCLOUD_ACCESS_KEY",
            "NXCLOUD_ACCESS_SECRET",
            "WA_ONPREM_URL",
            "WA_ONPREM_TOKEN",
            "WA_ONPREM_USERNAME",
            "WA_ONPREM_PASSWORD",
            "WA_ONPREM_NEW_PASSWORD",
            "http_proxy",
            "all_proxy",
            "ALL_PROXY",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("NXCLOUD_ACCESS_SECRET", DEMO_ACCESS_SECRET)
            .env("WA_ONPREM_PASSWORD", DEMO_ONPREM_PASSWORD)
            // The sandbox unless a run passes --base-url.
            .env("NXCLOUD_BASE_URL", &base)
            .args(["-vv", "--access-key", DEMO_ACCESS_KEY])
            .args(args);
        cmd.output().expect("the CLI runs")
    };
    let mut runs = 0;
    let mut bytes = 0;
    // Each run's exit status is checked, so that a CLI failing early cannot leave the scan
    // with nothing to read.
    let mut keep = |args: &[&str], stdout_too: bool, code: i32| -> String {
        let out = nx(args);
        runs += 1;
        bytes += out.stdout.len() + out.stderr.len();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(code),
            "nxcloud {args:?}\nstdout: {stdout}\nstderr: {stderr}"
        );
        // The label leaves out the proxy URL the test itself passed (it holds credentials).
        let args: Vec<&str> = args
            .iter()
            .map(|a| if a.contains('@') { "<proxy URL>" } else { a })
            .collect();
        capture(&format!("nxcloud {args:?} stderr: {stderr}"));
        if stdout_too {
            capture(&format!("nxcloud {args:?} stdout: {stdout}"));
        }
        stdout
    };
    let png_path = png.to_string_lossy().into_owned();
    let up = keep(
        &["--json", "media", "upload", "--phone", PHONE, &png_path],
        true,
        0,
    );
    let id = serde_json::from_str::<serde_json::Value>(up.trim())
        .ok()
        .and_then(|v| v["id"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "no-id".into());
    let got = keep(
        &["--json", "media", "get", "--phone", PHONE, "--id", &id],
        false,
        0,
    );
    if let Some(url) = serde_json::from_str::<serde_json::Value>(got.trim())
        .ok()
        .and_then(|v| v["url"].as_str().and_then(|u| DownloadUrl::parse(u).ok()))
    {
        secrets.add_url(&url);
    }
    let out = dir.path().join("copy.png").to_string_lossy().into_owned();
    keep(
        &[
            "media",
            "download",
            "--phone",
            PHONE,
            "--id",
            &id,
            "--output",
            &out,
            "--sha256",
            &Sha256Digest::of(PNG_1X1).to_string(),
        ],
        true,
        0,
    );
    keep(
        &[
            "media",
            "download",
            "--phone",
            PHONE,
            "--id",
            &id,
            "--output",
            &out,
            "--sha256",
            &"0".repeat(64),
        ],
        true,
        5,
    );
    keep(
        &["media", "get", "--phone", PHONE, "--id", "no-such-id"],
        true,
        3,
    );
    keep(&["media", "delete", "--phone", PHONE, "--id", &id], true, 0);
    let onprem = ["onprem", "--url", &base, "--username", DEMO_ONPREM_USER];
    let login = keep(&[&onprem[..], &["login"]].concat(), false, 0);
    for token in sandbox_tokens(&login) {
        secrets.add("a token the CLI printed", token);
    }
    let up = keep(
        &[&onprem[..], &["--json", "media", "upload", &png_path]].concat(),
        true,
        0,
    );
    let id = serde_json::from_str::<serde_json::Value>(up.trim())
        .ok()
        .and_then(|v| v["id"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "no-id".into());
    let out = dir.path().join("op.png").to_string_lossy().into_owned();
    keep(
        &[&onprem[..], &["media", "get", &id, "--output", &out]].concat(),
        true,
        0,
    );
    keep(
        &[&onprem[..], &["media", "retry-download", &id]].concat(),
        true,
        0,
    );
    keep(&[&onprem[..], &["media", "delete", &id]].concat(), true, 0);
    // Through a proxy that wants credentials: given on the command line, then wrong.
    let proxy = ConnectProxy::with_credentials(PROXY_USER, PROXY_PASSWORD);
    let good = proxy.url_with(PROXY_USER, PROXY_PASSWORD);
    keep(
        &[
            "--proxy", &good, "media", "upload", "--phone", PHONE, &png_path,
        ],
        true,
        0,
    );
    let wrong = proxy.url_with(PROXY_USER, WRONG_PROXY_PASSWORD);
    keep(
        &[
            "--proxy", &wrong, "media", "get", "--phone", PHONE, "--id", &id,
        ],
        true,
        4,
    );
    assert!(proxy.tunnels() >= 1, "the CLI went through the proxy");
    capture(&format!("cli sandbox log: {:?}", sandbox.log().entries()));
    assert_eq!(runs, 13, "every CLI run happened");
    // Against a server whose answers embed a signed URL in malformed JSON: never shown, in the
    // error (text or JSON) nor in `-vv`'s tracing.
    let hostile = hostile_server();
    let count = malformed_answers_with_url("", "").len();
    let out = dir.path().join("h.png").to_string_lossy().into_owned();
    for round in 0..count {
        let base = ["--base-url", hostile.url()];
        let get = [&base[..], &["media", "get", "--phone", PHONE, "--id", "m"]].concat();
        let json = [
            &base[..],
            &["--json", "media", "get", "--phone", PHONE, "--id", "m"],
        ]
        .concat();
        let download = [
            &base[..],
            &[
                "media", "download", "--phone", PHONE, "--id", "m", "-o", &out,
            ],
        ]
        .concat();
        for args in [get, json, download] {
            let run = nx(&args);
            runs += 1;
            bytes += run.stdout.len() + run.stderr.len();
            assert_eq!(
                run.status.code(),
                Some(3),
                "round {round}: nxcloud {args:?}"
            );
            capture(&format!(
                "nxcloud {args:?} (hostile) stdout: {} stderr: {}",
                String::from_utf8_lossy(&run.stdout),
                String::from_utf8_lossy(&run.stderr)
            ));
        }
    }
    assert_eq!(runs, 13 + 3 * count, "every hostile CLI run happened");
    (runs, bytes)
}

// ---------------------------------------------------------------------------------------------
// Debug of every public type that holds a secret, pinned
// ---------------------------------------------------------------------------------------------

#[test]
fn debug_of_secret_holders_is_pinned() {
    let secret = AccessSecret::new("s3cr3t-value");
    assert_eq!(format!("{secret:?}"), "AccessSecret(<redacted>)");
    assert_eq!(format!("{secret}"), "<redacted>");
    let creds = Credentials::new("key-1", "s3cr3t-value");
    assert_eq!(
        format!("{creds:?}"),
        r#"Credentials { access_key: "key-1", access_secret: AccessSecret(<redacted>) }"#
    );
    let token = Token::from_parts("tok3n-value-123", None);
    assert_eq!(
        format!("{token:?}"),
        "Token { token: <redacted>, expires_after: None }"
    );
    assert_eq!(
        format!("{:?}", Auth::Bearer(&token)),
        "Bearer(Token { token: <redacted>, expires_after: None })"
    );
    assert_eq!(
        format!(
            "{:?}",
            Auth::Basic {
                username: "admin",
                password: "pa55word-value"
            }
        ),
        r#"Basic { username: "admin", password: <redacted> }"#
    );
    let login = OnPremLogin::Password {
        username: "admin".into(),
        password: AccessSecret::new("pa55word-value"),
    };
    assert_eq!(
        format!("{login:?}"),
        r#"Password { username: "admin", password: AccessSecret(<redacted>) }"#
    );
    assert_eq!(
        format!("{:?}", OnPremLogin::Token(token.clone())),
        "Token(Token { token: <redacted>, expires_after: None })"
    );
    let url = DownloadUrl::parse(
        "https://oss.example/a.webp?Expires=1663747602&OSSAccessKeyId=k&Signature=s1gnature%2B",
    )
    .unwrap();
    assert_eq!(
        format!("{url:?}"),
        "DownloadUrl(https://oss.example/a.webp?<redacted>)"
    );
    let info = MediaInfo::new("image/webp", "a.webp", url);
    assert_eq!(
        format!("{info:?}"),
        r#"MediaInfo { mime_type: "image/webp", file_name: "a.webp", url: DownloadUrl(https://oss.example/a.webp?<redacted>) }"#
    );
    let signature = nx_protocol::sign::sign(
        &nx_protocol::sign::SignableRequest::new(
            &[
                ("accessKey", "key-1"),
                ("action", "getMedia"),
                ("bizType", "2"),
                ("ts", "1"),
            ],
            nx_protocol::sign::SignableBody::Empty,
        ),
        &secret,
    )
    .unwrap();
    assert_eq!(format!("{signature:?}"), "Signature(<redacted>)");

    let proxy =
        nx_protocol::proxy::ProxyUrl::parse("http://pr0xy-user:pr0xy-pass@10.0.0.1:3128").unwrap();
    assert_eq!(
        format!("{proxy:?}"),
        r#"ProxyUrl { host: "10.0.0.1", port: 3128, credentials: Some("<redacted>") }"#
    );
    assert_eq!(proxy.to_string(), "http://10.0.0.1:3128");
    assert_eq!(format!("{:?}", proxy.basic_auth().unwrap()), "Sensitive");

    // The configurations: whole structs, so pinned by what they must not and must show.
    let config = ClientConfig::new(creds, "agent");
    let shown = format!("{config:?}");
    assert!(
        !shown.contains("s3cr3t-value") && shown.contains("AccessSecret(<redacted>)"),
        "{shown}"
    );
    let onprem = OnPremConfig::new(
        BaseUrl::parse("https://wa.example:9090").unwrap(),
        login,
        "agent",
    );
    let shown = format!("{onprem:?}");
    assert!(
        !shown.contains("pa55word-value") && shown.contains("AccessSecret(<redacted>)"),
        "{shown}"
    );
    let onprem = OnPremConfig::new(
        BaseUrl::parse("https://wa.example:9090").unwrap(),
        OnPremLogin::Token(token),
        "agent",
    );
    let shown = format!("{onprem:?}");
    assert!(
        !shown.contains("tok3n-value-123") && shown.contains("token: <redacted>"),
        "{shown}"
    );
    // And the clients that hold them.
    let sandbox = Sandbox::start(SandboxConfig::default()).unwrap();
    let mut config = nx_conformance::test_config(&sandbox);
    config.credentials = Credentials::new(DEMO_ACCESS_KEY, "s3cr3t-value");
    let shown = format!(
        "{:?} {:?}",
        nx_blocking::Client::builder()
            .credentials(DEMO_ACCESS_KEY, "s3cr3t-value")
            .base_url(sandbox.base_url())
            .build()
            .unwrap(),
        nx_blocking::OnPremClient::builder()
            .base_url(sandbox.base_url())
            .password("admin", "pa55word-value")
            .build()
            .unwrap(),
    );
    assert!(
        !shown.contains("s3cr3t-value") && !shown.contains("pa55word-value"),
        "{shown}"
    );
    let _ = demo_login();
}
