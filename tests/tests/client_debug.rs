//! `Debug` of every client is its settings, short and secret-free: base URL, access key or user,
//! timeouts and retry policy, never the secret, password or token, and never the HTTP stack's
//! state (ureq's configuration alone, with its ~140 root certificates, ran to 3,400 characters).

use std::time::Duration;

use nx_protocol::policy::retry::RetryPolicy;

const SECRET: &str = "s3cr3t-SECRET-value";
const PASSWORD: &str = "hunter2-PASSWORD";
const TOKEN: &str = "eyJ-TOKEN-value";
const PROXY_PASSWORD: &str = "PROXY-PASS-value";
/// A proxy with credentials: shown without them.
const PROXY: &str = "http://proxy-user:PROXY-PASS-value@127.0.0.1:3128";
/// Above what the settings take (470 characters, 760 with a proxy), far below the HTTP stack's dump.
const MAX_LEN: usize = 1_000;

fn retry() -> RetryPolicy {
    RetryPolicy::new(4, Duration::from_millis(250), Duration::from_secs(7))
}

/// Checks one client's `Debug` (plain and `{:#?}`) and returns the plain one.
fn check(shown: String, pretty: String, expected: &[&str]) -> String {
    for text in [&shown, &pretty] {
        for secret in [SECRET, PASSWORD, TOKEN, PROXY_PASSWORD, "proxy-user"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
    assert!(
        shown.len() <= MAX_LEN,
        "{} characters: {shown}",
        shown.len()
    );
    assert!(
        pretty.len() <= 2 * MAX_LEN,
        "{} characters: {pretty}",
        pretty.len()
    );
    for part in expected {
        assert!(shown.contains(part), "{part} missing from {shown}");
    }
    shown
}

const NXCLOUD_PARTS: &[&str] = &[
    "base_url: BaseUrl(http://127.0.0.1:9/nx)",
    r#"access_key: "the-access-key""#,
    "<redacted>",
    "connect_timeout: 3s",
    "request_timeout: 30s",
    "overall_timeout: 120s",
    "retry: RetryPolicy { max_attempts: 4, base_delay: 250ms, max_delay: 7s }",
    r#"host: "127.0.0.1", port: 3128, credentials: Some("<redacted>")"#,
];

const ONPREM_PARTS: &[&str] = &[
    "base_url: BaseUrl(http://127.0.0.1:9)",
    r#"username: "admin""#,
    "<redacted>",
    "connect_timeout: 3s",
    "retry: RetryPolicy { max_attempts: 4, base_delay: 250ms, max_delay: 7s }",
];

/// Both clients of one transport (`$krate`): short, secret-free `Debug`.
macro_rules! check_clients {
    ($krate:ident) => {{
        let client = $krate::Client::builder()
            .credentials("the-access-key", SECRET)
            .base_url("http://127.0.0.1:9/nx")
            .connect_timeout(Duration::from_secs(3))
            .retry(retry())
            .proxy(PROXY)
            .unwrap()
            .build()
            .unwrap();
        let shown = check(format!("{client:?}"), format!("{client:#?}"), NXCLOUD_PARTS);
        assert!(shown.starts_with("Client(ClientConfig {"), "{shown}");

        for (login, parts) in [(true, ONPREM_PARTS), (false, &ONPREM_PARTS[..1])] {
            let builder = $krate::OnPremClient::builder()
                .base_url("http://127.0.0.1:9")
                .connect_timeout(Duration::from_secs(3))
                .retry(retry());
            let builder = if login {
                builder.password("admin", PASSWORD)
            } else {
                builder.token(TOKEN)
            };
            let client = builder.build().unwrap();
            let shown = check(format!("{client:?}"), format!("{client:#?}"), parts);
            assert!(shown.starts_with("OnPremClient(OnPremConfig {"), "{shown}");
        }
    }};
}

#[test]
fn blocking_clients_debug_is_short_and_secret_free() {
    check_clients!(nx_blocking);
}

#[test]
fn async_clients_debug_is_short_and_secret_free() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let _entered = runtime.enter();
    check_clients!(nx_async);
}
