//! The network options against an HTTPS sandbox with a private CA and a real CONNECT proxy
//! (both on 127.0.0.1): `--ca-bundle` / `NXCLOUD_CA_BUNDLE`, the TLS hints, `--proxy`, the
//! proxy environment variables, `--no-proxy` and `--allow-insecure-http`'s warning.
//! (`nxcloud sandbox --tls` is with the other sandbox tests, in `cli.rs`.)

use std::net::TcpListener;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use nx_conformance::proxy::ConnectProxy;
use nx_sandbox::{
    DEMO_ACCESS_KEY, DEMO_ACCESS_SECRET, DEMO_BUSINESS_PHONE as PHONE, DEMO_ONPREM_PASSWORD,
    DEMO_ONPREM_USER, Route, Sandbox, SandboxConfig,
};

mod common;
use common::*;

/// The command with the demo account's key and secret, nothing from the test's environment.
fn nxcloud() -> Command {
    let mut cmd = common::nxcloud();
    cmd.env("NXCLOUD_ACCESS_SECRET", DEMO_ACCESS_SECRET)
        .args(["--access-key", DEMO_ACCESS_KEY]);
    cmd
}

/// The command pointed at `sandbox`.
fn against(sandbox: &Sandbox) -> Command {
    let mut cmd = nxcloud();
    cmd.args(["--base-url", sandbox.base_url()]);
    cmd
}

fn https_sandbox() -> Sandbox {
    Sandbox::start(SandboxConfig::default().tls(true)).expect("the sandbox starts")
}

/// The sandbox's CA in a file of `dir`.
fn ca_file(sandbox: &Sandbox, dir: &Path) -> PathBuf {
    let path = dir.join("ca.pem");
    std::fs::write(&path, sandbox.ca_pem().expect("a TLS sandbox has a CA")).unwrap();
    path
}

fn png(dir: &Path) -> PathBuf {
    let path = dir.join("p.png");
    std::fs::write(&path, PNG).unwrap();
    path
}

/// A loopback port nothing listens on: a proxy there can only fail.
fn dead_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_private_ca_is_trusted_through_ca_bundle() {
    let sandbox = https_sandbox();
    let dir = tempfile::tempdir().unwrap();
    let png = png(dir.path());
    let refused = expect(
        against(&sandbox)
            .args(["media", "upload", "--phone", PHONE])
            .arg(&png),
        4,
    );
    assert!(refused.stderr.contains("TLS"), "{}", refused.stderr);
    assert!(refused.stderr.contains("--ca-bundle"), "{}", refused.stderr);
    assert!(sandbox.log().entries().is_empty(), "no request got through");

    let ca = ca_file(&sandbox, dir.path());
    let up = expect(
        against(&sandbox)
            .arg("--ca-bundle")
            .arg(&ca)
            .args(["media", "upload", "--phone", PHONE])
            .arg(&png),
        0,
    );
    let id = up.stdout.trim().to_owned();
    // The download URL is https too: the bundle covers every connection of the command.
    let copy = dir.path().join("copy.png");
    expect(
        against(&sandbox)
            .env("NXCLOUD_CA_BUNDLE", &ca)
            .args([
                "media", "download", "--phone", PHONE, "--id", &id, "--output",
            ])
            .arg(&copy),
        0,
    );
    assert_eq!(std::fs::read(&copy).unwrap(), PNG);
    assert_eq!(sandbox.log().for_route(Route::OssDownload).len(), 1);
}

#[test]
fn onprem_tls_failures_say_installations_are_self_signed() {
    let sandbox = https_sandbox();
    let onprem = |cmd: &mut Command| {
        cmd.env("WA_ONPREM_PASSWORD", DEMO_ONPREM_PASSWORD).args([
            "onprem",
            "--url",
            sandbox.base_url(),
            "--username",
            DEMO_ONPREM_USER,
            "login",
        ]);
    };
    let mut cmd = against(&sandbox);
    onprem(&mut cmd);
    let refused = expect(&mut cmd, 4);
    assert!(refused.stderr.contains("self-signed"), "{}", refused.stderr);
    assert!(refused.stderr.contains("--ca-bundle"), "{}", refused.stderr);

    let dir = tempfile::tempdir().unwrap();
    let mut cmd = against(&sandbox);
    cmd.arg("--ca-bundle").arg(ca_file(&sandbox, dir.path()));
    onprem(&mut cmd);
    let token = expect(&mut cmd, 0).stdout;
    assert!(!token.trim().is_empty());
}

#[test]
fn an_unusable_ca_bundle_is_a_usage_error_naming_the_file() {
    let sandbox = https_sandbox();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let not_pem = dir.path().join("key.txt");
    std::fs::write(&not_pem, "just text\n").unwrap();
    for file in [&missing, &empty, &not_pem] {
        let refused = expect(
            against(&sandbox)
                .arg("--ca-bundle")
                .arg(file)
                .args(["media", "get", "--phone", PHONE, "--id", "x"]),
            2,
        );
        assert!(
            refused.stderr.contains(&file.display().to_string()),
            "{}",
            refused.stderr
        );
    }
    assert!(sandbox.log().entries().is_empty());
}

#[test]
fn proxies_from_the_option_and_the_environment_tunnel_every_connection() {
    let sandbox = https_sandbox();
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_file(&sandbox, dir.path());
    let png = png(dir.path());

    let proxy = ConnectProxy::with_credentials("cli-user", "cli-pass-5150");
    let up = expect(
        against(&sandbox)
            .arg("--ca-bundle")
            .arg(&ca)
            .args(["--proxy", &proxy.url_with("cli-user", "cli-pass-5150")])
            .args(["media", "upload", "--phone", PHONE])
            .arg(&png),
        0,
    );
    let id = up.stdout.trim().to_owned();
    assert_eq!(proxy.tunnels(), 1);
    assert!(!up.stderr.contains("cli-pass-5150"));

    // HTTPS_PROXY, read as curl does; the download URL goes through it too.
    let env_proxy = ConnectProxy::start();
    let copy = dir.path().join("copy.png");
    expect(
        against(&sandbox)
            .env("HTTPS_PROXY", env_proxy.url())
            .arg("--ca-bundle")
            .arg(&ca)
            .args([
                "media", "download", "--phone", PHONE, "--id", &id, "--output",
            ])
            .arg(&copy),
        0,
    );
    assert_eq!(std::fs::read(&copy).unwrap(), PNG);
    assert!(env_proxy.tunnels() >= 1);
    for connect in env_proxy.connects() {
        assert_eq!(connect.target, sandbox.addr().to_string());
    }

    // A dead proxy in the environment: --no-proxy and NO_PROXY both go direct; without them
    // the call fails as a network error.
    let dead = format!("http://127.0.0.1:{}", dead_port());
    let get = |cmd: &mut Command| {
        cmd.env("HTTPS_PROXY", &dead)
            .arg("--ca-bundle")
            .arg(&ca)
            .args(["media", "get", "--phone", PHONE, "--id", &id]);
    };
    let mut cmd = against(&sandbox);
    get(&mut cmd);
    expect(&mut cmd, 4);
    let mut cmd = against(&sandbox);
    get(&mut cmd);
    expect(cmd.arg("--no-proxy"), 0);
    let mut cmd = against(&sandbox);
    get(&mut cmd);
    expect(cmd.env("NO_PROXY", "127.0.0.1"), 0);
    // A proxy URL the CLI cannot use is a usage error that does not repeat it.
    let refused = expect(
        against(&sandbox)
            .args([
                "--proxy",
                "socks5://u:hidden-pw@127.0.0.1:1",
                "media",
                "get",
            ])
            .args(["--phone", PHONE, "--id", &id]),
        2,
    );
    assert!(refused.stderr.contains("--proxy") && !refused.stderr.contains("hidden-pw"));
}

#[test]
fn allow_insecure_http_warns_on_every_run() {
    let sandbox = Sandbox::start(SandboxConfig::default()).unwrap();
    let ran = expect(
        against(&sandbox).arg("--allow-insecure-http").args([
            "media",
            "get",
            "--phone",
            PHONE,
            "--id",
            "no-such-id",
        ]),
        3,
    );
    let warnings: Vec<&str> = ran
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning: --allow-insecure-http"))
        .collect();
    assert_eq!(warnings.len(), 1, "{}", ran.stderr);
    // Without it, plain http to a host that is not loopback is refused before any connection
    // (192.0.2.1 is TEST-NET-1: never contacted, the refusal comes first).
    let refused = expect(
        nxcloud().args([
            "--base-url",
            "http://192.0.2.1:9",
            "media",
            "get",
            "--phone",
            PHONE,
            "--id",
            "x",
        ]),
        2,
    );
    assert!(refused.stderr.contains("plain http"), "{}", refused.stderr);
}

#[test]
fn the_operating_systems_store_is_read_with_root_store_native() {
    let sandbox = https_sandbox();
    let dir = tempfile::tempdir().unwrap();
    let ca = ca_file(&sandbox, dir.path());
    // rustls-native-certs reads SSL_CERT_FILE as the store (openssl's convention): the test's
    // "operating system store" is the sandbox's CA alone, so no --ca-bundle is needed.
    let get = |store: &str| {
        let mut cmd = against(&sandbox);
        cmd.env("SSL_CERT_FILE", &ca)
            .env_remove("SSL_CERT_DIR")
            .args(["--root-store", store])
            .args(["media", "get", "--phone", PHONE, "--id", "no-such-id"]);
        cmd
    };
    // The API's answer (code -1) means the TLS handshake succeeded.
    expect(&mut get("native"), 3);
    expect(get("native").env("NXCLOUD_ROOT_STORE", "webpki"), 3);
    let refused = expect(&mut get("webpki"), 4);
    assert!(
        refused.stderr.contains("--root-store native"),
        "{}",
        refused.stderr
    );
    expect(
        against(&sandbox)
            .env("SSL_CERT_FILE", &ca)
            .env("NXCLOUD_ROOT_STORE", "native")
            .args(["media", "get", "--phone", PHONE, "--id", "no-such-id"]),
        3,
    );
}
