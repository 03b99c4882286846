//! The production network path, for both transports: the sandbox serving HTTPS with a throwaway
//! CA (trusted as an extra root), directly and through a real `CONNECT` proxy
//! ([`nx_conformance::proxy`]), for a representative set of NXCloud and On-Premises cases.

use std::time::{Duration, Instant};

use nx_conformance::proxy::ConnectProxy;
use nx_conformance::{
    AsyncDriver, AsyncDriverOnPrem, BlockingDriver, BlockingDriverOnPrem, Driver, OnPremDriver,
    OnPremWorld, PNG_1X1, Source, World, pattern, through_proxy,
};
use nx_protocol::ResponseError;
use nx_protocol::call::{Limit, Phase};
use nx_protocol::download::Sha256Digest;
use nx_protocol::error::Error;
use nx_sandbox::{DEMO_BUSINESS_PHONE as PHONE, Fault, FaultRule, Route, SandboxConfig};

/// How the client reaches the HTTPS sandbox.
#[derive(Clone, Copy, Debug)]
enum Path {
    Direct,
    Proxy,
    /// Through a proxy that requires credentials, which the client gives.
    AuthProxy,
}

const PROXY_USER: &str = "proxy-user-7f3a";
const PROXY_PASSWORD: &str = "proxy-pass-91c2";

fn proxy_for(path: Path) -> Option<ConnectProxy> {
    match path {
        Path::Direct => None,
        Path::Proxy => Some(ConnectProxy::start()),
        Path::AuthProxy => Some(ConnectProxy::with_credentials(PROXY_USER, PROXY_PASSWORD)),
    }
}

fn proxy_url(proxy: &ConnectProxy, path: Path) -> String {
    match path {
        Path::AuthProxy => proxy.url_with(PROXY_USER, PROXY_PASSWORD),
        _ => proxy.url(),
    }
}

/// Every tunnel the proxy opened went to the sandbox, and at least one was opened.
fn tunnelled_to(proxy: &Option<ConnectProxy>, sandbox_addr: std::net::SocketAddr) {
    let Some(proxy) = proxy else { return };
    let connects = proxy.connects();
    assert!(proxy.tunnels() >= 1, "nothing went through the proxy");
    for connect in connects {
        assert_eq!(connect.status, 200, "{connect:?}");
        assert_eq!(connect.target, sandbox_addr.to_string());
    }
}

/// NXCloud over HTTPS: upload, getMedia (an https download URL), download, the expired URL
/// refused then refreshed once, delete.
fn nxcloud_over_https<D: Driver>(path: Path) {
    let proxy = proxy_for(path);
    let sandbox = SandboxConfig::default()
        .tls(true)
        .url_lifetime(Duration::from_secs(30));
    let world = World::<D>::with(sandbox, |config| {
        if let Some(proxy) = &proxy {
            through_proxy(&mut config.transport, &proxy_url(proxy, path));
        }
    });
    assert!(world.sandbox.base_url().starts_with("https://127.0.0.1:"));
    let data = pattern(200_000);
    let id = world
        .client
        .upload_media(
            PHONE,
            "application/pdf",
            Source::Bytes(data.clone(), "a.pdf"),
        )
        .expect("upload over https")
        .id;
    let info = world.client.get_media(PHONE, &id).unwrap();
    assert!(info.url().expose().starts_with("https://127.0.0.1:"));
    let digest = Some(Sha256Digest::of(&data));
    let (bytes, _) = world.client.download(&info, digest).unwrap();
    assert_eq!(bytes, data);

    // Past the URL's lifetime by the sandbox clock, still within the 60 s `ts` window: the
    // storage refuses the URL, the fresh one is valid for the client's clock too.
    world.sandbox.set_clock_offset_ms(45_000);
    match world.client.download(&info, None) {
        Err(Error::Response(ResponseError::Http { status, .. })) => assert_eq!(status, 403),
        other => panic!("an expired URL must be refused: {other:?}"),
    }
    let (bytes, _) = world.client.download_media(PHONE, &id, digest).unwrap();
    assert_eq!(bytes, data);
    assert_eq!(world.sandbox.log().for_route(Route::GetMedia).len(), 2);

    assert!(world.client.delete_media(PHONE, &id).unwrap().success);
    tunnelled_to(&proxy, world.sandbox.addr());
}

/// On-Premises over HTTPS: login, upload, retrieve checked, a 401 after the tokens are revoked
/// answered by one re-login, delete.
fn onprem_over_https<D: OnPremDriver>(path: Path) {
    let proxy = proxy_for(path);
    let world = OnPremWorld::<D>::with(SandboxConfig::default().tls(true), |config| {
        if let Some(proxy) = &proxy {
            through_proxy(&mut config.transport, &proxy_url(proxy, path));
        }
    });
    let id = world
        .client
        .upload_media("image/png", Source::Bytes(PNG_1X1.to_vec(), "p.png"))
        .unwrap()
        .id;
    let digest = Some(Sha256Digest::of(PNG_1X1));
    let (bytes, _) = world.client.retrieve_media(&id, digest).unwrap();
    assert_eq!(bytes, PNG_1X1);

    world.sandbox.revoke_onprem_tokens();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("p.png");
    world
        .client
        .retrieve_media_to_path(&id, &target, digest)
        .unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), PNG_1X1);
    let log = world.sandbox.log();
    assert_eq!(log.for_route(Route::OnPremLogin).len(), 2, "one re-login");
    assert_eq!(
        log.entries()
            .iter()
            .filter(|e| e.status == Some(401))
            .count(),
        1
    );

    world.client.delete_media(&id).unwrap();
    tunnelled_to(&proxy, world.sandbox.addr());
}

/// Without the sandbox's CA the handshake fails as a TLS error, and nothing is retried into a
/// request: the server never logs one.
fn an_unknown_ca_is_a_tls_error<D: Driver>() {
    let world = World::<D>::with(SandboxConfig::default().tls(true), |_| {});
    let untrusting = world.client_with(|config| config.transport.extra_roots_der.clear());
    match untrusting.get_media(PHONE, "any") {
        // The peer is named with its port (`nx_protocol::error::peer`).
        Err(Error::Tls { host, .. }) => {
            assert_eq!(host, format!("127.0.0.1:{}", world.sandbox.addr().port()))
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
    assert!(world.sandbox.log().entries().is_empty());
}

/// The faults the sandbox writes by hand on the connection it takes back from hyper work over
/// TLS too: a head trickling 1 byte/ms (about 120 bytes, each in a TLS record of its own: a
/// fraction of a second) is a slow but valid answer, under the test settings' 5 s
/// `request_timeout` (it failed once under a 500 ms one on a loaded machine); endless
/// `102 Processing` ends the call at its deadline, by a client whose limits are short (500 ms
/// an attempt, 2 s the call): waiting for the head, in no less than one attempt's limit and
/// within the deadline plus a generous 3 s.
fn hand_written_faults_over_https<D: Driver>() {
    let world = World::<D>::with(SandboxConfig::default().tls(true), |_| {});
    let id = world
        .client
        .upload_media(PHONE, "image/png", Source::Bytes(PNG_1X1.to_vec(), "p.png"))
        .unwrap()
        .id;
    let faults = world.sandbox.faults();
    let drip = faults.add(FaultRule::new(
        Route::GetMedia,
        Fault::HeaderDrip(Duration::from_millis(1)),
    ));
    let info = world.client.get_media(PHONE, &id).unwrap();
    assert_eq!(info.file_name(), "p.png");
    assert_eq!(faults.fired(drip), 1);
    faults.remove(drip);
    faults.add(FaultRule::new(
        Route::GetMedia,
        Fault::EndlessProcessing(Duration::from_millis(50)),
    ));
    let (attempt, deadline) = (Duration::from_millis(500), Duration::from_secs(2));
    let short = world.client_with(|config| {
        config.transport.request_timeout = attempt;
        config.transport.overall_timeout = deadline;
    });
    let started = Instant::now();
    let err = short.get_media(PHONE, &id).unwrap_err();
    let took = started.elapsed();
    // Each attempt ends at its limit (the 102s never extend it); the retries end by the last
    // one's, or by the call's deadline when a loaded machine started it late.
    assert!(
        matches!(
            err,
            Error::Timeout {
                phase: Phase::Headers,
                limit: Limit::Attempt | Limit::Call,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        took >= attempt && took < deadline + Duration::from_secs(3),
        "{took:?}"
    );
}

/// A proxy that wants credentials refuses a client without them (407, a connect error that
/// names the proxy) and never learns a password it was not sent; with them it tunnels.
fn proxy_credentials_are_checked<D: Driver>() {
    let proxy = ConnectProxy::with_credentials(PROXY_USER, PROXY_PASSWORD);
    let world = World::<D>::with(SandboxConfig::default().tls(true), |config| {
        through_proxy(&mut config.transport, &proxy.url());
    });
    let err = world.client.get_media(PHONE, "any").unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err:?}");
    let mut chain = err.to_string();
    let mut cause = std::error::Error::source(&err);
    while let Some(c) = cause {
        chain.push_str(&format!(": {c}"));
        cause = c.source();
    }
    assert!(
        chain.contains("proxy"),
        "the error says the proxy refused: {chain}"
    );
    assert!(proxy.connects().iter().all(|c| c.status == 407));
    assert!(world.sandbox.log().entries().is_empty());

    let wrong = world.client_with(|config| {
        through_proxy(
            &mut config.transport,
            &proxy.url_with(PROXY_USER, "wrong-pw-55"),
        );
    });
    let err = wrong.get_media(PHONE, "any").unwrap_err();
    let shown = format!("{err} {err:?} {:?}", std::error::Error::source(&err));
    assert!(
        !shown.contains("wrong-pw-55") && !shown.contains(PROXY_USER),
        "{shown}"
    );
}

/// An `http` target through the proxy is tunnelled too (CONNECT to port 80 semantics: the
/// tunnel target names the port).
fn plain_http_is_tunnelled<D: Driver>() {
    let proxy = ConnectProxy::start();
    let world = World::<D>::with(SandboxConfig::default(), |config| {
        through_proxy(&mut config.transport, &proxy.url());
    });
    let id = world
        .client
        .upload_media(PHONE, "image/png", Source::Bytes(PNG_1X1.to_vec(), "p.png"))
        .unwrap()
        .id;
    let (bytes, _) = world.client.download_media(PHONE, &id, None).unwrap();
    assert_eq!(bytes, PNG_1X1);
    tunnelled_to(&Some(proxy), world.sandbox.addr());
}

macro_rules! transports {
    ($driver:ident, $onprem:ident) => {
        use super::*;

        #[test]
        fn nxcloud_direct() {
            nxcloud_over_https::<$driver>(Path::Direct)
        }
        #[test]
        fn nxcloud_through_a_proxy() {
            nxcloud_over_https::<$driver>(Path::Proxy)
        }
        #[test]
        fn nxcloud_through_an_authenticating_proxy() {
            nxcloud_over_https::<$driver>(Path::AuthProxy)
        }
        #[test]
        fn onprem_direct() {
            onprem_over_https::<$onprem>(Path::Direct)
        }
        #[test]
        fn onprem_through_a_proxy() {
            onprem_over_https::<$onprem>(Path::Proxy)
        }
        #[test]
        fn onprem_through_an_authenticating_proxy() {
            onprem_over_https::<$onprem>(Path::AuthProxy)
        }
        #[test]
        fn unknown_ca() {
            an_unknown_ca_is_a_tls_error::<$driver>()
        }
        #[test]
        fn proxy_credentials() {
            proxy_credentials_are_checked::<$driver>()
        }
        #[test]
        fn plain_http_through_a_proxy() {
            plain_http_is_tunnelled::<$driver>()
        }
        #[test]
        fn hand_written_faults() {
            hand_written_faults_over_https::<$driver>()
        }
    };
}

mod async_transport {
    transports!(AsyncDriver, AsyncDriverOnPrem);
}

mod blocking_transport {
    transports!(BlockingDriver, BlockingDriverOnPrem);
}
