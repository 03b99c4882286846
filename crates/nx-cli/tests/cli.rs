//! The built `nxcloud` binary against an in-process sandbox on 127.0.0.1: every command, its
//! exit codes, its `--json` output, and that the secret is never printed.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use assert_cmd::Command;
use nx_sandbox::{
    DEMO_ACCESS_KEY, DEMO_ACCESS_SECRET, DEMO_BUSINESS_PHONE, DEMO_ONPREM_PASSWORD,
    DEMO_ONPREM_USER, Inbound, OnPremUser, Route, Sandbox, SandboxConfig,
};
use serde_json::Value;

mod common;
use common::*;

const PHONE: &str = DEMO_BUSINESS_PHONE;
const JPEG: &[u8] = b"\xff\xd8\xff\xe0\0\x10JFIF\0\x01\x01 sample jpeg bytes";

/// The command pointed at `sandbox` with the demo account.
fn against(sandbox: &Sandbox) -> Command {
    let mut cmd = nxcloud();
    cmd.args([
        "--base-url",
        sandbox.base_url(),
        "--access-key",
        DEMO_ACCESS_KEY,
        "--access-secret",
        DEMO_ACCESS_SECRET,
    ]);
    cmd
}

fn upload(sandbox: &Sandbox, dir: &Path, name: &str, bytes: &[u8]) -> String {
    common::upload(against(sandbox), dir, name, bytes)
}

fn sha256_hex(bytes: &[u8]) -> String {
    nx_protocol::download::Sha256Digest::of(bytes).to_string()
}

fn uploads_logged(sandbox: &Sandbox) -> usize {
    sandbox.log().for_route(Route::UploadMedia).len()
}

// ---- sign -----------------------------------------------------------------------------------

fn vendor_sign() -> Command {
    let mut cmd = nxcloud();
    cmd.args([
        "sign",
        "--access-key",
        "fme2na3kdi3ki",
        "--access-secret",
        "abciiiko2k3",
        "--biz-type",
        "1",
        "--action",
        "send",
        "--ts",
        "1655710885431",
        "--body",
        r#"{"name":"牛小信","id":10001}"#,
    ]);
    cmd
}

#[test]
fn sign_prints_the_vendor_signature_alone() {
    let run = expect(&mut vendor_sign(), 0);
    assert_eq!(run.stdout, "87c3560d3331ae23f1021e2025722354\n");
    assert_eq!(run.stderr, "");
}

#[test]
fn sign_explain_prints_the_stages_on_stderr_with_the_secret_masked() {
    let run = expect(vendor_sign().arg("--explain"), 0);
    assert_eq!(run.stdout, "87c3560d3331ae23f1021e2025722354\n");
    let headers = "accessKey=fme2na3kdi3ki&action=send&bizType=1&ts=1655710885431";
    let body = r#"&body={"name":"牛小信","id":10001}"#;
    assert!(run.stderr.contains(headers), "{}", run.stderr);
    assert!(run.stderr.contains(body), "{}", run.stderr);
    assert!(
        run.stderr
            .contains(&format!("{headers}{body}&accessSecret=<redacted>")),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("abciiiko2k3"));

    let run = expect(vendor_sign().args(["--explain", "--json"]), 0);
    let json = run.json();
    assert_eq!(json["signature"], "87c3560d3331ae23f1021e2025722354");
    assert_eq!(json["header_string"], headers);
    assert_eq!(json["body_segment"], body);
    assert_eq!(
        json["canonical_string"],
        format!("{headers}{body}&accessSecret=<redacted>")
    );
    assert!(!run.stdout.contains("abciiiko2k3") && !run.stderr.contains("abciiiko2k3"));
}

#[test]
fn sign_multipart_and_body_files() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "sign",
        "--access-key",
        "k",
        "--access-secret",
        "s3cr3t-value",
        "--biz-type",
        "2",
        "--action",
        "uploadMedia",
        "--ts",
        "1700000000000",
    ];
    // Multipart: no body part; equal to signing with no body.
    let multipart = expect(nxcloud().args(args).args(["--multipart", "--explain"]), 0);
    let empty = expect(nxcloud().args(args), 0);
    assert_eq!(multipart.stdout, empty.stdout);
    assert_eq!(multipart.stdout.trim().len(), 32);
    assert!(multipart.stderr.contains(
        "accessKey=k&action=uploadMedia&bizType=2&ts=1700000000000&accessSecret=<redacted>"
    ));
    assert!(!multipart.stderr.contains("s3cr3t-value"));

    // A body file is signed byte for byte, trailing newline included, and a note says so.
    let file = dir.path().join("body.json");
    std::fs::write(&file, "{}\n").unwrap();
    let from_file = expect(
        nxcloud()
            .args(args)
            .arg("--body-file")
            .arg(&file)
            .arg("--explain"),
        0,
    );
    let inline = expect(nxcloud().args(args).args(["--body", "{}\n"]), 0);
    let trimmed = expect(nxcloud().args(args).args(["--body", "{}"]), 0);
    assert_eq!(from_file.stdout, inline.stdout);
    assert_ne!(from_file.stdout, trimmed.stdout);
    assert!(from_file.stderr.contains("ends with whitespace"));
    // Said without --explain too (stderr; stdout stays the signature alone).
    assert!(
        inline.stderr.contains("ends with whitespace"),
        "{}",
        inline.stderr
    );
    assert_eq!(inline.stdout.lines().count(), 1);
    assert!(!trimmed.stderr.contains("ends with whitespace"));
    let stdin = expect(
        nxcloud()
            .args(args)
            .args(["--body-file", "-"])
            .write_stdin("{}\n"),
        0,
    );
    assert_eq!(stdin.stdout, inline.stdout);

    // A ts in seconds is signed but warned about.
    let seconds = expect(
        nxcloud().args([
            "sign",
            "--access-key",
            "k",
            "--access-secret",
            "s",
            "--biz-type",
            "2",
            "--action",
            "getMedia",
            "--ts",
            "1700000000",
        ]),
        0,
    );
    assert!(
        seconds.stderr.contains("looks like seconds"),
        "{}",
        seconds.stderr
    );
}

#[test]
fn usage_errors_exit_2() {
    // No command, an unknown option, a missing required option, conflicting options.
    expect(&mut nxcloud(), 2);
    expect(nxcloud().args(["media", "get", "--bogus"]), 2);
    expect(
        nxcloud().args([
            "sign",
            "--access-key",
            "k",
            "--access-secret",
            "s",
            "--biz-type",
            "2",
            "--action",
            "a",
        ]),
        2,
    );
    expect(vendor_sign().arg("--multipart"), 2);
    expect(
        nxcloud().args([
            "sign",
            "--access-key",
            "k",
            "--access-secret",
            "s",
            "--biz-type",
            "2",
            "--action",
            "a",
            "--ts",
            "soon",
        ]),
        2,
    );
    // No credentials: named, with the variable.
    let run = expect(
        nxcloud().args([
            "sign",
            "--biz-type",
            "2",
            "--action",
            "a",
            "--ts",
            "1700000000000",
        ]),
        2,
    );
    assert!(run.stderr.contains("NXCLOUD_ACCESS_KEY"), "{}", run.stderr);
    // A malformed --sha256 (credentials given, so it is the digest that is refused).
    let bad_digest = expect(
        nxcloud()
            .args(["--access-key", "k", "--access-secret", "s"])
            .args([
                "media", "download", "--phone", PHONE, "--id", "x", "-o", "f", "--sha256", "abc",
            ]),
        2,
    );
    assert!(
        bad_digest.stderr.contains("--sha256"),
        "{}",
        bad_digest.stderr
    );
    // --help and --version succeed.
    expect(nxcloud().arg("--help"), 0);
    expect(nxcloud().arg("--version"), 0);
}

#[test]
fn help_never_shows_the_secret_from_the_environment() {
    for args in [
        &["--help"][..],
        &["media", "get", "--help"],
        &["sign", "--help"],
    ] {
        let run = expect(
            nxcloud()
                .args(args)
                .env("NXCLOUD_ACCESS_SECRET", DEMO_ACCESS_SECRET)
                .env("WA_ONPREM_PASSWORD", DEMO_ACCESS_SECRET),
            0,
        );
        assert!(run.stdout.contains("NXCLOUD_ACCESS_SECRET") || args.len() > 1);
    }
}

// ---- media ----------------------------------------------------------------------------------

#[test]
fn media_lifecycle_with_text_and_json_output() {
    let sandbox = sandbox();
    let dir = tempfile::tempdir().unwrap();
    let id = upload(&sandbox, dir.path(), "photo.png", PNG);

    // get, as text and as JSON.
    let text = expect(
        against(&sandbox).args(["media", "get", "--phone", PHONE, "--id", &id]),
        0,
    );
    assert!(text.stdout.contains("image/png") && text.stdout.contains("photo.png"));
    let json = expect(
        against(&sandbox).args(["media", "get", "--phone", PHONE, "--id", &id, "--json"]),
        0,
    )
    .json();
    assert_eq!(json["mime_type"], "image/png");
    assert_eq!(json["file_name"], "photo.png");
    let url = json["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!("{}/oss/", sandbox.base_url())),
        "{url}"
    );
    assert!(url.contains("Expires="), "{url}");
    assert!(json["expires_at"].as_u64().is_some());

    // download, checked against the right digest, as JSON.
    let out = dir.path().join("copy.png");
    let saved = expect(
        against(&sandbox)
            .args([
                "--json", "media", "download", "--phone", PHONE, "--id", &id, "-o",
            ])
            .arg(&out)
            .args(["--sha256", &sha256_hex(PNG)]),
        0,
    );
    // Piped stderr: no progress bar.
    assert_eq!(saved.stderr, "");
    let saved = saved.json();
    assert_eq!(saved["bytes"], PNG.len());
    assert_eq!(saved["sha256"], sha256_hex(PNG));
    assert_eq!(saved["sha256_verified"], true);
    assert_eq!(std::fs::read(&out).unwrap(), PNG);

    // and as text, without a digest.
    let out2 = dir.path().join("copy2.png");
    let text = expect(
        against(&sandbox)
            .args([
                "media", "download", "--phone", PHONE, "--id", &id, "--output",
            ])
            .arg(&out2),
        0,
    );
    assert!(
        text.stdout
            .starts_with(&format!("saved {} bytes to ", PNG.len()))
    );
    assert_eq!(std::fs::read(&out2).unwrap(), PNG);

    // delete, then getMedia answers -1: exit 3 with the code, its meaning and what to do.
    let deleted = expect(
        against(&sandbox).args(["media", "delete", "--phone", PHONE, "--id", &id, "--json"]),
        0,
    )
    .json();
    assert_eq!(deleted["id"], id.as_str());
    assert_eq!(deleted["deleted"], true);
    let gone = expect(
        against(&sandbox).args(["media", "get", "--phone", PHONE, "--id", &id]),
        3,
    );
    assert_eq!(gone.stdout, "");
    assert!(
        gone.stderr.starts_with("error: NXCloud answered code -1"),
        "{}",
        gone.stderr
    );
    assert!(
        gone.stderr.contains("\nhint: code -1 means request failed"),
        "{}",
        gone.stderr
    );
    assert!(gone.stderr.contains("check the id"), "{}", gone.stderr);
}

#[test]
fn an_unknown_media_id_exits_3_with_a_json_error() {
    let sandbox = sandbox();
    let run = expect(
        against(&sandbox).args([
            "--json",
            "media",
            "get",
            "--phone",
            PHONE,
            "--id",
            "00000000-0000-0000-0000-000000000000",
        ]),
        3,
    );
    assert_eq!(run.stdout, "");
    let error = run.json_error();
    assert_eq!(error["exit_code"], 3);
    assert_eq!(error["kind"], "api");
    assert_eq!(error["api_code"], -1);
    assert!(error["hint"].as_str().unwrap().contains("check the id"));

    // A wrong secret: 1003, the signature's meaning.
    let run = expect(
        nxcloud().args([
            "--base-url",
            sandbox.base_url(),
            "--access-key",
            DEMO_ACCESS_KEY,
            "--access-secret",
            "not-the-secret",
            "media",
            "delete",
            "--phone",
            PHONE,
            "--id",
            "x",
        ]),
        6,
    );
    assert!(run.stderr.contains("code 1003"), "{}", run.stderr);
    assert!(run.stderr.contains("invalid signature"), "{}", run.stderr);
}

#[test]
fn a_closed_port_exits_4() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let run = expect(
        nxcloud().args([
            "--base-url",
            &format!("http://127.0.0.1:{port}"),
            "--access-key",
            DEMO_ACCESS_KEY,
            "--access-secret",
            DEMO_ACCESS_SECRET,
            "--timeout",
            "10",
            "media",
            "get",
            "--phone",
            PHONE,
            "--id",
            "x",
        ]),
        4,
    );
    assert!(
        run.stderr.starts_with("error: could not connect"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_wrong_sha256_exits_5_and_leaves_no_file() {
    let sandbox = sandbox();
    let dir = tempfile::tempdir().unwrap();
    let id = upload(&sandbox, dir.path(), "photo.png", PNG);
    let target = tempfile::tempdir().unwrap();
    let out = target.path().join("photo.png");
    let run = expect(
        against(&sandbox)
            .args(["media", "download", "--phone", PHONE, "--id", &id, "-o"])
            .arg(&out)
            .args(["--sha256", &sha256_hex(b"something else")]),
        5,
    );
    assert!(run.stderr.contains("SHA-256 mismatch"), "{}", run.stderr);
    assert!(!out.exists());
    let left: Vec<_> = std::fs::read_dir(target.path()).unwrap().collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
}

#[test]
fn uploads_are_refused_before_sending() {
    let sandbox = sandbox();
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };

    // The extension says PNG, the bytes say JPEG: both are named.
    let run = expect(
        against(&sandbox)
            .args(["media", "upload", "--phone", PHONE])
            .arg(file("photo.png", JPEG)),
        2,
    );
    assert!(
        run.stderr.contains("image/png") && run.stderr.contains("image/jpeg"),
        "{}",
        run.stderr
    );
    // --type against the bytes.
    let run = expect(
        against(&sandbox)
            .args(["media", "upload", "--phone", PHONE, "--type", "image/jpeg"])
            .arg(file("photo.bin", PNG)),
        2,
    );
    assert!(run.stderr.contains("image/png") && run.stderr.contains("image/jpeg"));
    // An unknown extension without --type.
    let run = expect(
        against(&sandbox)
            .args(["media", "upload", "--phone", PHONE])
            .arg(file("photo.gif", b"GIF89a")),
        2,
    );
    assert!(run.stderr.contains("--type"), "{}", run.stderr);
    // The hint lists every extension the CLI knows, from its table.
    assert!(
        run.stderr.contains("jpg jpeg jpe png") && run.stderr.contains("xlsx"),
        "{}",
        run.stderr
    );
    // A type outside the media table.
    let run = expect(
        against(&sandbox)
            .args(["media", "upload", "--phone", PHONE, "--type", "image/gif"])
            .arg(file("photo.gif", b"GIF89a")),
        2,
    );
    assert!(run.stderr.contains("image/gif"), "{}", run.stderr);
    // Over the sticker limit (100 KB).
    let mut webp = b"RIFF\x00\x00\x00\x00WEBPVP8 ".to_vec();
    webp.resize(100 * 1024 + 1, 0);
    let run = expect(
        against(&sandbox)
            .args(["media", "upload", "--phone", PHONE])
            .arg(file("sticker.webp", &webp)),
        2,
    );
    assert!(run.stderr.contains("102400"), "{}", run.stderr);
    // An empty file, a malformed phone.
    let run = expect(
        against(&sandbox)
            .args(["media", "upload", "--phone", PHONE])
            .arg(file("empty.txt", b"")),
        2,
    );
    assert!(run.stderr.contains("empty"), "{}", run.stderr);
    file("photo.png", PNG);
    for args in [
        &["media", "upload", "--phone", "+86 138", "photo.png"][..],
        &["media", "get", "--phone", "+86 138", "--id", "x"],
    ] {
        let run = expect(against(&sandbox).current_dir(dir.path()).args(args), 2);
        assert!(run.stderr.contains("phone"), "{}", run.stderr);
    }
    assert_eq!(uploads_logged(&sandbox), 0, "{:?}", sandbox.log().entries());
    assert!(sandbox.log().is_empty(), "{:?}", sandbox.log().entries());

    // A correct JPEG, typed by its extension, goes through.
    let id = upload(&sandbox, dir.path(), "photo.jpg", JPEG);
    let json = expect(
        against(&sandbox).args(["media", "get", "--phone", PHONE, "--id", &id, "--json"]),
        0,
    )
    .json();
    assert_eq!(json["mime_type"], "image/jpeg");
    assert_eq!(uploads_logged(&sandbox), 1);
}

#[test]
fn upload_json_and_verbose_logs_without_secrets() {
    let sandbox = sandbox();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "plain text notes").unwrap();
    let run = expect(
        against(&sandbox)
            .args(["-v", "--json", "media", "upload", "--phone", PHONE])
            .arg(&path),
        0,
    );
    let json = run.json();
    assert_eq!(json["mime_type"], "text/plain");
    assert_eq!(json["kind"], "document");
    assert_eq!(json["bytes"], 16);
    let id = json["id"].as_str().unwrap();
    assert!(run.stderr.contains("DEBUG"), "{}", run.stderr);

    // -v on a download: the URL is logged with its query redacted.
    let out = dir.path().join("copy.txt");
    let run = expect(
        against(&sandbox)
            .args([
                "-vv", "media", "download", "--phone", PHONE, "--id", id, "-o",
            ])
            .arg(&out),
        0,
    );
    assert!(run.stderr.contains("<redacted>"), "{}", run.stderr);
    assert!(!run.stderr.contains("Signature="), "{}", run.stderr);
}

// ---- webhook --------------------------------------------------------------------------------

const INBOUND: &str = r#"{"contacts":[{"profile":{"name":"Jay"},"wa_id":"8617600000819"}],
 "messages":[{"from":"8617600000819","id":"ABGH","timestamp":"1663053029","type":"image",
   "image":{"id":"2bc7102f-5491-40b1-a92f-338303eab9d3","mime_type":"image/jpeg",
     "sha256":"0ed3d9d4db83ed7751314af5f2e9bf008edc49a101bebb9054a97f824cf2136b","caption":"look"}},
   {"from":"8617600000819","id":"ABGI","timestamp":"1663053030","type":"text","text":{"body":"hi"}}],
 "merchant_phone":"8617600000001","messaging_product":"whatsapp"}"#;

const NOTIFICATION: &str = r#"{"media_items":[
  {"image":{"id":"m1","mime_type":"image/jpeg","status":"downloaded",
    "sha256":"0ed3d9d4db83ed7751314af5f2e9bf008edc49a101bebb9054a97f824cf2136b"},"type":"image"},
  {"errors":[{"code":400,"title":"Parameter not valid","details":"Media not found in the datastore."}],
   "voice":{"id":"m2","mime_type":"audio/ogg","sha256":"","status":"downloaded"},"type":"voice"}]}"#;

#[test]
fn webhook_parse_reads_inbound_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbound.json");
    std::fs::write(&path, INBOUND).unwrap();
    let text = expect(nxcloud().args(["webhook", "parse"]).arg(&path), 0);
    assert!(text.stdout.contains("8617600000001"), "{}", text.stdout);
    assert!(text.stdout.contains("2bc7102f-5491-40b1-a92f-338303eab9d3"));
    assert!(text.stdout.contains(
        "nxcloud media download --phone 8617600000001 --id 2bc7102f-5491-40b1-a92f-338303eab9d3 --sha256 0ed3d9d4db83ed7751314af5f2e9bf008edc49a101bebb9054a97f824cf2136b"
    ));

    // From stdin (the default), as JSON.
    let json = expect(
        nxcloud()
            .args(["webhook", "parse", "--json"])
            .write_stdin(INBOUND),
        0,
    )
    .json();
    assert_eq!(json["source"], "nxcloud_inbound");
    assert_eq!(json["merchant_phone"], "8617600000001");
    let media = json["media"].as_array().unwrap();
    assert_eq!(media.len(), 1, "the text message carries no media");
    assert_eq!(media[0]["type"], "image");
    assert_eq!(media[0]["id"], "2bc7102f-5491-40b1-a92f-338303eab9d3");
    assert_eq!(media[0]["mime_type"], "image/jpeg");
    assert_eq!(media[0]["caption"], "look");
    assert_eq!(media[0]["from"], "8617600000819");
    assert_eq!(
        media[0]["sha256"],
        "0ed3d9d4db83ed7751314af5f2e9bf008edc49a101bebb9054a97f824cf2136b"
    );
}

#[test]
fn webhook_parse_reports_a_bad_message_and_keeps_the_rest() {
    let body = r#"{"messages":[
       {"id":"ABGX","type":"image","image":{"id":"m0","sha256":"not hex"}},
       {"id":"ABGH","type":"image","image":{"id":"m1","mime_type":"image/jpeg"}}],
     "merchant_phone":"8617600000001"}"#;
    let json = expect(
        nxcloud()
            .args(["--json", "webhook", "parse"])
            .write_stdin(body),
        0,
    )
    .json();
    let media = json["media"].as_array().unwrap();
    assert_eq!(media.len(), 1);
    assert_eq!(media[0]["id"], "m1");
    assert_eq!(json["rejected"][0]["index"], 0);
    assert_eq!(json["rejected"][0]["message_id"], "ABGX");
    assert_eq!(
        json["rejected"][0]["reason"],
        "sha256 is not 64 hex characters"
    );

    let text = expect(nxcloud().args(["webhook", "parse"]).write_stdin(body), 0);
    assert!(text.stdout.contains("--id m1"), "{}", text.stdout);
    assert!(
        text.stdout
            .contains("messages[0] (image) id ABGX: sha256 is not 64 hex characters"),
        "{}",
        text.stdout
    );
}

#[test]
fn webhook_parse_reads_onprem_notifications() {
    let json = expect(
        nxcloud()
            .args(["--json", "webhook", "parse", "-"])
            .write_stdin(NOTIFICATION),
        0,
    )
    .json();
    assert_eq!(json["source"], "onprem_notification");
    let items = json["media"].as_array().unwrap();
    assert_eq!(items[0]["status"], "downloaded");
    assert_eq!(items[0]["id"], "m1");
    assert_eq!(items[0]["type"], "image");
    assert_eq!(items[0]["state"], "downloaded");
    assert_eq!(items[1]["status"], "failed");
    assert_eq!(items[1]["id"], "m2");
    assert_eq!(items[1]["errors"][0]["code"], 400);

    let text = expect(
        nxcloud()
            .args(["webhook", "parse"])
            .write_stdin(NOTIFICATION),
        0,
    );
    assert!(
        text.stdout.contains("1. downloaded image m1"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("2. failed voice m2"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("Media not found in the datastore."));
}

#[test]
fn webhook_parse_refuses_other_bodies() {
    for body in [
        "not json",
        r#"{"hello":"world"}"#,
        r#"{"media_items":"no"}"#,
        "[]",
    ] {
        let run = expect(nxcloud().args(["webhook", "parse"]).write_stdin(body), 2);
        assert!(run.stderr.starts_with("error: "), "{body}: {}", run.stderr);
    }
    expect(
        nxcloud().args(["webhook", "parse", "/nonexistent/nxcloud/body.json"]),
        1,
    );
}

// ---- media send ------------------------------------------------------------------------------

const CUSTOMER: &str = nx_sandbox::DEMO_CUSTOMER_PHONE;

/// `nxcloud media send` against `sandbox` with the demo appkey.
fn send_cmd(sandbox: &Sandbox) -> Command {
    let mut cmd = against(sandbox);
    cmd.args([
        "media",
        "send",
        "--phone",
        PHONE,
        "--to",
        CUSTOMER,
        "--appkey",
        nx_sandbox::DEMO_APPKEY,
    ]);
    cmd
}

#[test]
fn media_send_by_file_id_and_link() {
    let sandbox = sandbox();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("logo.png");
    std::fs::write(&path, PNG).unwrap();

    // FILE: uploaded, then sent; both steps shown on stderr, the message id on stdout.
    let run = expect(send_cmd(&sandbox).arg(&path).args(["--caption", "hi"]), 0);
    let sent = sandbox.sent_messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(run.stdout.trim(), sent[0].id);
    assert_eq!(sent[0].kind, "image");
    assert_eq!(sent[0].caption.as_deref(), Some("hi"));
    let media_id = sent[0].media_id.clone().unwrap();
    assert!(run.stderr.contains("[1/2] uploading"), "{}", run.stderr);
    assert!(run.stderr.contains(&media_id), "{}", run.stderr);
    assert!(
        run.stderr.contains("[2/2] sending it as image"),
        "{}",
        run.stderr
    );

    // --id without --type: the kind comes from getMedia; --json prints {"id": ..}.
    let run = expect(
        send_cmd(&sandbox).args(["--id", &media_id, "--message-id", "order-1", "--json"]),
        0,
    );
    assert_eq!(run.json(), serde_json::json!({ "id": "order-1" }));
    assert_eq!(sandbox.log().for_route(Route::GetMedia).len(), 1);
    assert_eq!(
        sandbox.sent_messages()[1].cus_message_id.as_deref(),
        Some("order-1")
    );

    // --link: the kind from the link's extension, or --type.
    let run = expect(
        send_cmd(&sandbox).args([
            "--link",
            "https://cdn.example/q3.pdf?sig=x",
            "--filename",
            "Q3.pdf",
        ]),
        0,
    );
    let doc = &sandbox.sent_messages()[2];
    assert_eq!(run.stdout.trim(), doc.id);
    assert_eq!(
        (doc.kind.as_str(), doc.filename.as_deref()),
        ("document", Some("Q3.pdf"))
    );
    expect(
        send_cmd(&sandbox).args(["--link", "https://cdn.example/clip", "--type", "video"]),
        0,
    );
    assert_eq!(sandbox.sent_messages()[3].kind, "video");

    // FILE with --json: the message id and the upload's media id, nothing on stderr.
    let run = expect(send_cmd(&sandbox).arg(&path).arg("--json"), 0);
    let json = run.json();
    assert_eq!(json["id"], sandbox.sent_messages()[4].id.as_str());
    assert!(
        json["media_id"].as_str().is_some_and(|m| !m.is_empty()),
        "{json}"
    );
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    // The appkey can come from the environment.
    let mut cmd = against(&sandbox);
    cmd.env("NXCLOUD_APPKEY", nx_sandbox::DEMO_APPKEY).args([
        "media", "send", "--phone", PHONE, "--to", CUSTOMER, "--id", &media_id, "--type", "image",
    ]);
    expect(&mut cmd, 0);
    assert_eq!(sandbox.sent_messages().len(), 6);
}

#[test]
fn media_send_refusals() {
    let sandbox = sandbox();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("logo.png");
    std::fs::write(&path, PNG).unwrap();
    let usage = |cmd: &mut Command, what: &str| {
        let run = expect(cmd, 2);
        assert!(run.stderr.contains(what), "{what}: {}", run.stderr);
    };
    usage(
        send_cmd(&sandbox).args(["--id", "a", "--link", "https://cdn.example/a.png"]),
        "cannot be used with",
    );
    usage(
        send_cmd(&sandbox).args(["--id", "a"]).arg(&path),
        "cannot be used with",
    );
    usage(&mut send_cmd(&sandbox), "required");
    usage(
        send_cmd(&sandbox).args(["--link", "https://cdn.example/download"]),
        "--type is required",
    );
    usage(
        send_cmd(&sandbox).args(["--link", "https://cdn.example/a.png", "--type", "gif"]),
        "invalid value",
    );
    usage(
        send_cmd(&sandbox).arg(&path).args(["--type", "document"]),
        "does not match",
    );
    usage(
        send_cmd(&sandbox).arg(&path).args(["--filename", "x.png"]),
        "filename",
    );
    usage(
        send_cmd(&sandbox).args(["--link", "ftp://cdn.example/a.png"]),
        "http or https",
    );
    usage(
        send_cmd(&sandbox).args(["--id", "a", "--mime", "image/png"]),
        "--mime",
    );
    // Nothing was uploaded or sent for any of them.
    assert_eq!(sandbox.log().for_route(Route::UploadMedia).len(), 0);
    assert_eq!(sandbox.log().for_route(Route::SendMessage).len(), 0);

    // No appkey anywhere: a usage error naming the variable, nothing sent.
    let mut cmd = against(&sandbox);
    cmd.args([
        "media",
        "send",
        "--phone",
        PHONE,
        "--to",
        CUSTOMER,
        "--link",
        "https://cdn.example/a.png",
    ]);
    usage(&mut cmd, "NXCLOUD_APPKEY");
    assert_eq!(sandbox.log().for_route(Route::SendMessage).len(), 0);
}

#[test]
fn media_send_shows_metas_error_escaped_and_is_not_retried() {
    let sandbox = sandbox();
    let meta = r#"{"code":"131026","message":"undeliverable \u001b[2J\nfake: line","type":"OAuthException","fbtrace_id":"T1","error_data":{"details":"not on WhatsApp"}}"#;
    sandbox.faults().add(nx_sandbox::FaultRule::new(
        Route::SendMessage,
        nx_sandbox::Fault::WhatsAppError(meta.into()),
    ));
    let run = expect(
        send_cmd(&sandbox).args(["--link", "https://cdn.example/a.png"]),
        3,
    );
    assert!(run.stderr.contains("code 9099"), "{}", run.stderr);
    assert!(
        run.stderr.contains(r"WhatsApp error 131026 OAuthException: undeliverable \u{1b}[2J\nfake: line (details: not on WhatsApp; fbtrace_id T1)"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains('\u{1b}'),
        "an escape sequence reached the terminal"
    );
    assert!(
        run.stderr
            .contains("hint: code 9099 means WhatsApp (Meta) error"),
        "{}",
        run.stderr
    );
    let run = expect(
        send_cmd(&sandbox).args(["--link", "https://cdn.example/a.png", "--json"]),
        3,
    );
    let error = run.json_error();
    assert_eq!(error["api_code"], 9099);
    assert!(error["message"].as_str().unwrap().contains("fbtrace_id T1"));
    // A 503 is not resent: one request each.
    sandbox.faults().clear();
    sandbox.faults().add(nx_sandbox::FaultRule::new(
        Route::SendMessage,
        nx_sandbox::Fault::ServiceUnavailable,
    ));
    expect(
        send_cmd(&sandbox).args(["--link", "https://cdn.example/a.png"]),
        3,
    );
    assert_eq!(sandbox.log().for_route(Route::SendMessage).len(), 3);
    assert!(sandbox.sent_messages().is_empty());

    // A send refused after its upload: the media id is not lost (here with --json).
    sandbox.faults().clear();
    sandbox.faults().add(nx_sandbox::FaultRule::new(
        Route::SendMessage,
        nx_sandbox::Fault::Code(9005),
    ));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("logo.png");
    std::fs::write(&path, PNG).unwrap();
    let run = expect(send_cmd(&sandbox).arg(&path).arg("--json"), 3);
    let error = run.json_error();
    assert_eq!(error["api_code"], 9005);
    let hint = error["hint"].as_str().unwrap();
    assert!(
        hint.starts_with("code 9005 means insufficient account balance"),
        "{hint}"
    );
    let id = hint
        .split("stays uploaded as media id ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .unwrap_or_else(|| panic!("{hint}"));
    let run = expect(
        against(&sandbox).args(["media", "get", "--phone", PHONE, "--id", id, "--json"]),
        0,
    );
    assert_eq!(run.json()["mime_type"], "image/png");
}

// ---- demo and sandbox -----------------------------------------------------------------------

#[test]
fn demo_walks_the_lifecycle_without_printing_the_secret() {
    let run = expect(nxcloud().arg("demo"), 0);
    for step in 1..=9 {
        assert!(
            run.stdout.contains(&format!("[{step}/9]")),
            "{}",
            run.stdout
        );
    }
    assert!(
        run.stdout
            .contains("POST /api/wa/uploadMedia -> HTTP 200, code 0")
    );
    assert!(run.stdout.contains("&accessSecret=<redacted>"));
    assert!(
        run.stdout.contains("POST /api/wa/mt -> HTTP 200, code 0"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("code -1"), "{}", run.stdout);
    assert!(
        !run.stdout.contains("Signature="),
        "a download URL's query was printed"
    );

    let run = expect(nxcloud().args(["demo", "--json"]), 0);
    let steps: Vec<Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(steps.len(), 9);
    let first = &steps[0]["requests"][0];
    assert_eq!(first["path"], "/api/wa/uploadMedia");
    assert_eq!(first["headers"]["accessKey"], DEMO_ACCESS_KEY);
    assert_eq!(first["headers"]["bizType"], "2");
    assert_eq!(first["headers"]["sign"].as_str().unwrap().len(), 32);
    assert!(
        first["canonical_string"]
            .as_str()
            .unwrap()
            .ends_with("&accessSecret=<redacted>")
    );
    let send = &steps[1];
    assert_eq!(send["requests"][0]["path"], "/api/wa/mt");
    assert_eq!(send["requests"][0]["headers"]["action"], "mt");
    let signed = send["requests"][0]["canonical_string"].as_str().unwrap();
    assert!(
        signed.contains(r#"&body={"appkey":"demo-appkey","business_phone":"#),
        "{signed}"
    );
    assert_eq!(send["result"]["type"], "image");
    assert_eq!(send["result"]["to"], nx_sandbox::DEMO_CUSTOMER_PHONE);
    assert_eq!(send["result"]["media_id"], steps[0]["result"]["id"]);
    assert_eq!(steps[8]["result"]["code"], -1);
}

/// `kill -TERM`, then the exit status.
fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    for _ in 0..100 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("the sandbox did not stop on SIGTERM");
}

#[test]
fn sandbox_prints_its_address_first_and_serves() {
    let mut child = process()
        .args(["sandbox", "--addr", "127.0.0.1:0"])
        .env_remove("NXCLOUD_ACCESS_KEY")
        .env_remove("NXCLOUD_ACCESS_SECRET")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("nxcloud sandbox starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let base = first
        .trim_end()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line: {first:?}"))
        .to_owned();
    let port: u16 = base
        .strip_prefix("http://127.0.0.1:")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("first line: {first:?}"));
    assert_ne!(port, 0);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("photo.png");
    std::fs::write(&path, PNG).unwrap();
    let run = expect(
        nxcloud()
            .env("NXCLOUD_BASE_URL", &base)
            .env("NXCLOUD_ACCESS_KEY", DEMO_ACCESS_KEY)
            .env("NXCLOUD_ACCESS_SECRET", DEMO_ACCESS_SECRET)
            .args(["media", "upload", "--phone", PHONE])
            .arg(&path),
        0,
    );
    let id = run.stdout.trim();
    expect(
        nxcloud()
            .env("NXCLOUD_BASE_URL", &base)
            .env("NXCLOUD_ACCESS_KEY", DEMO_ACCESS_KEY)
            .env("NXCLOUD_ACCESS_SECRET", DEMO_ACCESS_SECRET)
            .args(["media", "delete", "--phone", PHONE, "--id", id]),
        0,
    );

    // It logs each request it answered; read until the delete shows up.
    let mut seen = String::new();
    for line in (&mut stdout).lines() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("/api/wa/deleteMedia") {
            break;
        }
    }
    assert!(seen.contains("/api/wa/uploadMedia"), "{seen}");
    assert!(!seen.contains(DEMO_ACCESS_SECRET), "{seen}");
    let status = terminate(&mut child);
    assert!(status.success(), "{status:?}");
}

#[test]
fn sandbox_tls_names_its_ca_file_and_removes_it_when_stopped() {
    let mut child = process()
        .args(["sandbox", "--tls", "--addr", "127.0.0.1:0"])
        .env_remove("NXCLOUD_ACCESS_KEY")
        .env_remove("NXCLOUD_ACCESS_SECRET")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("nxcloud sandbox starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = |what: &str| {
        let mut text = String::new();
        stdout.read_line(&mut text).unwrap();
        text.trim_end()
            .strip_prefix(what)
            .unwrap_or_else(|| panic!("expected {what:?}, got {text:?}"))
            .to_owned()
    };
    let base = line("listening on ");
    assert!(base.starts_with("https://127.0.0.1:"), "{base}");
    let ca = line("CA certificate: ");
    assert!(
        std::fs::read_to_string(&ca)
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("photo.png");
    std::fs::write(&path, PNG).unwrap();
    let run = expect(
        nxcloud()
            .env("NXCLOUD_BASE_URL", &base)
            .env("NXCLOUD_ACCESS_KEY", DEMO_ACCESS_KEY)
            .env("NXCLOUD_ACCESS_SECRET", DEMO_ACCESS_SECRET)
            .args(["--ca-bundle", &ca, "media", "upload", "--phone", PHONE])
            .arg(&path),
        0,
    );
    assert!(!run.stdout.trim().is_empty());
    let status = terminate(&mut child);
    assert!(status.success(), "{status:?}");
    assert!(
        !Path::new(&ca).exists(),
        "the CA file is removed with the sandbox"
    );
}

#[test]
fn sandbox_refuses_unusable_settings() {
    expect(nxcloud().args(["sandbox", "--addr", "0.0.0.0:0"]), 2);
    expect(
        nxcloud().args(["sandbox", "--addr", "127.0.0.1:0", "--phone", "+86"]),
        2,
    );
    expect(
        nxcloud().args([
            "sandbox",
            "--addr",
            "127.0.0.1:0",
            "--webhook",
            "http://example.com/hook",
        ]),
        2,
    );
    // The port is taken: exit 1.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    expect(nxcloud().args(["sandbox", "--addr", &addr]), 1);
}

#[test]
fn inbound_media_from_the_sandbox_can_be_fetched_by_the_webhook_id() {
    let sandbox = sandbox();
    let sent = sandbox
        .receive_inbound(Inbound::new("image", "image/jpeg", JPEG.to_vec()))
        .unwrap();
    let json = expect(
        nxcloud()
            .args(["--json", "webhook", "parse"])
            .write_stdin(sent.webhook_body.clone()),
        0,
    )
    .json();
    let media = &json["media"][0];
    let id = media["id"].as_str().unwrap();
    let sha = media["sha256"].as_str().unwrap();
    let merchant = json["merchant_phone"].as_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("in.jpg");
    expect(
        against(&sandbox)
            .args([
                "media", "download", "--phone", merchant, "--id", id, "--sha256", sha, "-o",
            ])
            .arg(&out),
        0,
    );
    assert_eq!(std::fs::read(&out).unwrap(), JPEG);
}

// ---- onprem ---------------------------------------------------------------------------------

/// `nxcloud onprem` against `sandbox`, with the demo user.
fn onprem(sandbox: &Sandbox) -> Command {
    let mut cmd = nxcloud();
    cmd.args([
        "onprem",
        "--url",
        sandbox.base_url(),
        "--username",
        DEMO_ONPREM_USER,
    ])
    .env("WA_ONPREM_PASSWORD", DEMO_ONPREM_PASSWORD);
    cmd
}

#[test]
fn json_usage_errors_are_one_json_line_too() {
    for args in [
        &["--json", "media", "get", "--phone", "8613800138000"][..],
        &[
            "media", "download", "--json", "--phone", "1", "--id", "x", "-o", "f", "--sha256", "zz",
        ],
        &[
            "--json",
            "--timeout",
            "0",
            "media",
            "get",
            "--phone",
            "1",
            "--id",
            "x",
        ],
    ] {
        let run = expect(nxcloud().args(args), 2);
        let lines: Vec<&str> = run.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{}", run.stderr);
        let json: Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(json["error"]["exit_code"], 2, "{json}");
        assert_eq!(json["error"]["kind"], "usage", "{json}");
        assert!(
            json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    // Without --json, clap's own text; --help is not an error.
    let text = expect(nxcloud().args(["media", "get", "--phone", "1"]), 2);
    assert!(text.stderr.contains("--id"), "{}", text.stderr);
    expect(nxcloud().args(["--json", "--help"]), 0);
}

#[test]
fn onprem_first_login_sets_the_new_password() {
    let sandbox = Sandbox::start(
        SandboxConfig::default().onprem_users([OnPremUser::demo().must_change_password()]),
    )
    .unwrap();
    // A fresh installation refuses a plain login: an authentication error (6), with Meta's
    // code shown.
    let refused = expect(onprem(&sandbox).arg("login"), 6);
    assert!(refused.stderr.contains("1005"), "{}", refused.stderr);
    let token = expect(
        onprem(&sandbox)
            .arg("login")
            .env("WA_ONPREM_NEW_PASSWORD", "a-long-new-password"),
        0,
    )
    .stdout;
    assert!(!token.trim().is_empty());
    // The new password is never echoed.
    let again = run(onprem(&sandbox)
        .env("WA_ONPREM_PASSWORD", "a-long-new-password")
        .arg("login"));
    assert_eq!(again.code, Some(0), "{}", again.stderr);
    assert!(
        !again.stdout.contains("a-long-new-password")
            && !again.stderr.contains("a-long-new-password")
    );
    // The old password is refused now.
    expect(onprem(&sandbox).arg("login"), 6);
}

#[test]
fn onprem_login_prints_a_token_that_the_other_commands_take() {
    let sandbox = sandbox();
    let token = expect(onprem(&sandbox).arg("login"), 0)
        .stdout
        .trim()
        .to_owned();
    assert!(!token.is_empty() && !token.contains(char::is_whitespace));
    let json = expect(onprem(&sandbox).args(["login", "--json"]), 0).json();
    assert!(json["token"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(
        json["expires_after"]
            .as_str()
            .is_some_and(|t| t.ends_with("+00:00"))
    );

    // The token alone (from the environment) is enough for a call.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("photo.png");
    std::fs::write(&path, PNG).unwrap();
    let run = expect(
        nxcloud()
            .env("WA_ONPREM_URL", sandbox.base_url())
            .env("WA_ONPREM_TOKEN", &token)
            .args(["onprem", "media", "upload"])
            .arg(&path),
        0,
    );
    assert!(!run.stdout.trim().is_empty());
    assert!(
        !run.stdout.contains(DEMO_ONPREM_PASSWORD) && !run.stderr.contains(DEMO_ONPREM_PASSWORD)
    );

    // A login without a password, or with a wrong one; a refused token.
    expect(
        nxcloud().args(["onprem", "--url", sandbox.base_url(), "login"]),
        2,
    );
    let run = expect(
        nxcloud().args([
            "onprem",
            "--url",
            sandbox.base_url(),
            "--username",
            DEMO_ONPREM_USER,
            "--password",
            "wrong",
            "login",
        ]),
        6,
    );
    assert!(run.stderr.contains("401"), "{}", run.stderr);
    expect(
        nxcloud()
            .args(["onprem", "--url", sandbox.base_url(), "--token", "bogus"])
            .args(["media", "delete", "x"]),
        6,
    );
    // No URL, no login.
    let run = expect(
        nxcloud().args(["onprem", "--token", "t", "media", "delete", "x"]),
        2,
    );
    assert!(run.stderr.contains("WA_ONPREM_URL"), "{}", run.stderr);
    let run = expect(
        nxcloud().args([
            "onprem",
            "--url",
            sandbox.base_url(),
            "media",
            "delete",
            "x",
        ]),
        2,
    );
    assert!(run.stderr.contains("WA_ONPREM_TOKEN"), "{}", run.stderr);
}

#[test]
fn onprem_media_lifecycle() {
    let sandbox = sandbox();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("photo.jpg");
    std::fs::write(&path, JPEG).unwrap();

    // A mislabelled file is refused before anything is sent.
    let wrong = dir.path().join("photo.png");
    std::fs::write(&wrong, JPEG).unwrap();
    expect(onprem(&sandbox).args(["media", "upload"]).arg(&wrong), 2);
    assert!(sandbox.log().is_empty(), "{:?}", sandbox.log().entries());

    let uploaded = expect(
        onprem(&sandbox)
            .args(["--json", "media", "upload"])
            .arg(&path),
        0,
    )
    .json();
    assert_eq!(uploaded["mime_type"], "image/jpeg");
    let id = uploaded["id"].as_str().unwrap().to_owned();

    let out = dir.path().join("copy.jpg");
    let got = expect(
        onprem(&sandbox)
            .args(["--json", "media", "get", &id, "-o"])
            .arg(&out)
            .args(["--sha256", &sha256_hex(JPEG)]),
        0,
    )
    .json();
    assert_eq!(got["bytes"], JPEG.len());
    assert_eq!(got["sha256_verified"], true);
    assert_eq!(got["mime_type"], "image/jpeg");
    assert_eq!(std::fs::read(&out).unwrap(), JPEG);

    // A wrong digest: exit 5, nothing left.
    let target = tempfile::tempdir().unwrap();
    let bad = target.path().join("bad.jpg");
    expect(
        onprem(&sandbox)
            .args(["media", "get", &id, "-o"])
            .arg(&bad)
            .args(["--sha256", &sha256_hex(b"other")]),
        5,
    );
    assert_eq!(std::fs::read_dir(target.path()).unwrap().count(), 0);

    let requested = expect(
        onprem(&sandbox).args(["--json", "media", "retry-download", &id]),
        0,
    )
    .json();
    assert_eq!(requested["requested"][0], id.as_str());

    let run = expect(onprem(&sandbox).args(["media", "delete", &id]), 0);
    assert_eq!(run.stdout.trim(), format!("deleted {id}"));
    let run = expect(
        onprem(&sandbox).args(["media", "get", &id, "-o"]).arg(&bad),
        3,
    );
    assert!(run.stderr.contains("404"), "{}", run.stderr);
    assert!(!bad.exists());
}

// ---- secrets from a file or stdin -----------------------------------------------------------

/// `secret` as a file in `dir` (a trailing newline added, as `echo` writes it).
fn secret_file(dir: &Path, name: &str, secret: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("{secret}\n")).unwrap();
    path
}

/// The command pointed at `sandbox` with the demo access key and no secret.
fn keyed(sandbox: &Sandbox) -> Command {
    let mut cmd = nxcloud();
    cmd.args(["--base-url", sandbox.base_url()])
        .args(["--access-key", DEMO_ACCESS_KEY]);
    cmd
}

/// [`expect`], and `secret` appears nowhere in what was printed.
fn expect_unshown(cmd: &mut Command, code: i32, secret: &str) -> Run {
    let run = expect(cmd, code);
    assert!(
        !run.stdout.contains(secret) && !run.stderr.contains(secret),
        "{secret:?} was printed:\n{}\n{}",
        run.stdout,
        run.stderr
    );
    run
}

#[test]
fn access_secret_from_a_file_or_stdin_signs_and_a_wrong_one_exits_6() {
    let sandbox = sandbox();
    let dir = tempfile::tempdir().unwrap();
    let good = secret_file(dir.path(), "good", DEMO_ACCESS_SECRET);
    let wrong = secret_file(dir.path(), "wrong", "not-the-demo-secret");
    let png = dir.path().join("a.png");
    std::fs::write(&png, PNG).unwrap();

    // From a file (with -vv: the trace logs hold no secret either).
    let id = expect(
        keyed(&sandbox)
            .args(["-vv", "--access-secret-file"])
            .arg(&good)
            .args(["media", "upload", "--phone", PHONE])
            .arg(&png),
        0,
    )
    .stdout
    .trim()
    .to_owned();
    assert!(!id.is_empty());
    // From stdin, with a Windows line ending.
    let got = expect(
        keyed(&sandbox)
            .args(["--json", "media", "get", "--phone", PHONE, "--id", &id])
            .args(["--access-secret-file", "-"])
            .write_stdin(format!("{DEMO_ACCESS_SECRET}\r\n")),
        0,
    );
    assert_eq!(got.json()["file_name"], "a.png", "{}", got.stdout);
    // A wrong secret, from a file or stdin, is refused by the server's signature check.
    for (mut cmd, how) in [(keyed(&sandbox), "file"), (keyed(&sandbox), "stdin")] {
        cmd.args(["--json", "media", "get", "--phone", PHONE, "--id", &id]);
        if how == "file" {
            cmd.arg("--access-secret-file").arg(&wrong);
        } else {
            cmd.args(["--access-secret-file", "-"])
                .write_stdin("not-the-demo-secret\n");
        }
        let run = expect_unshown(&mut cmd, 6, "not-the-demo-secret");
        assert_eq!(run.json_error()["api_code"], 1003, "{how}: {}", run.stderr);
    }
    // Help shows neither the file's content nor a secret from the environment.
    for args in [&["--help"][..], &["media", "get", "--help"]] {
        let run = expect_unshown(
            keyed(&sandbox)
                .arg("--access-secret-file")
                .arg(&wrong)
                .args(args)
                .env("NXCLOUD_ACCESS_SECRET", "not-the-demo-secret"),
            0,
            "not-the-demo-secret",
        );
        assert!(
            run.stdout.contains("--access-secret-file <PATH>")
                && run.stdout.contains("prefer --access-secret-file"),
            "{}",
            run.stdout
        );
    }
}

#[test]
fn onprem_password_token_and_new_password_from_files_or_stdin() {
    let sandbox = Sandbox::start(
        SandboxConfig::default().onprem_users([OnPremUser::demo().must_change_password()]),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let base = || {
        let mut cmd = nxcloud();
        cmd.args(["onprem", "--url", sandbox.base_url()]);
        cmd
    };
    let old = secret_file(dir.path(), "old", DEMO_ONPREM_PASSWORD);
    let new = "a-long-new-password";
    // The first login: the password from a file, the new one from stdin.
    let token = expect_unshown(
        base()
            .args(["--username", DEMO_ONPREM_USER, "--password-file"])
            .arg(&old)
            .args(["login", "--new-password-file", "-"])
            .write_stdin(format!("{new}\n")),
        0,
        new,
    )
    .stdout
    .trim()
    .to_owned();
    assert!(!token.is_empty());
    // The old password is refused now (6); the new one, from stdin, logs in.
    expect_unshown(
        base()
            .args(["--username", DEMO_ONPREM_USER, "--password-file"])
            .arg(&old)
            .arg("login"),
        6,
        DEMO_ONPREM_PASSWORD,
    );
    expect_unshown(
        base()
            .args([
                "--username",
                DEMO_ONPREM_USER,
                "--password-file",
                "-",
                "login",
            ])
            .write_stdin(format!("{new}\n")),
        0,
        new,
    );
    // The token, from stdin and from a file: an upload succeeds; a wrong token exits 6.
    let png = dir.path().join("a.png");
    std::fs::write(&png, PNG).unwrap();
    let run = expect(
        base()
            .args(["--token-file", "-", "media", "upload"])
            .arg(&png)
            .write_stdin(format!("{token}\n")),
        0,
    );
    assert!(!run.stdout.contains(&token), "{}", run.stdout);
    let id = run.stdout.trim().to_owned();
    let token_file = secret_file(dir.path(), "token", &token);
    expect(
        base()
            .arg("--token-file")
            .arg(&token_file)
            .args(["media", "delete", &id]),
        0,
    );
    let wrong = secret_file(dir.path(), "wrong", "not-a-token");
    expect_unshown(
        base()
            .arg("--token-file")
            .arg(&wrong)
            .args(["media", "delete", &id]),
        6,
        "not-a-token",
    );
}

#[test]
fn secret_files_that_cannot_be_used_are_usage_errors() {
    let sandbox = sandbox();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let get = |file: &Path| {
        let mut cmd = keyed(&sandbox);
        cmd.arg("--access-secret-file")
            .arg(file)
            .args(["media", "get", "--phone", PHONE, "--id", "x"]);
        cmd
    };
    let shown = |path: &Path| path.display().to_string();
    let missing = dir.path().join("missing");
    for (file, says) in [
        (write("empty", b""), "is empty".to_owned()),
        (write("newline", b"\n"), "is empty".to_owned()),
        (
            write("two-lines", b"hidden-value\nhidden-value\n"),
            "holds a control character (character 13)".to_owned(),
        ),
        (
            write("two-newlines", b"hidden-value\n\n"),
            "holds a control character (character 13)".to_owned(),
        ),
        (
            write("tab", b"hidden\tvalue"),
            "holds a control character (character 7)".to_owned(),
        ),
        (
            write("binary", b"hidden-value\xff"),
            "is not UTF-8 text".to_owned(),
        ),
        (missing.clone(), format!("opening {}: ", shown(&missing))),
        (
            dir.path().to_owned(),
            format!("reading {}: ", shown(dir.path())),
        ),
    ] {
        let run = expect_unshown(&mut get(&file), 2, "hidden");
        assert!(
            run.stderr.starts_with("error: --access-secret-file: ") && run.stderr.contains(&says),
            "{says}: {}",
            run.stderr
        );
    }
    // Nothing was sent.
    assert!(sandbox.log().for_route(Route::GetMedia).is_empty());

    // Two readers of stdin: refused before either is read.
    let run = expect(
        nxcloud()
            .args(["onprem", "--url", sandbox.base_url(), "--token-file", "-"])
            .args([
                "--username",
                DEMO_ONPREM_USER,
                "--password-file",
                "-",
                "login",
            ])
            .write_stdin("hidden\n"),
        2,
    );
    assert!(
        run.stderr
            .contains("--token-file and --password-file both read stdin"),
        "{}",
        run.stderr
    );
    let run = expect(
        keyed(&sandbox)
            .args(["--access-secret-file", "-", "sign", "--biz-type", "2"])
            .args(["--action", "getMedia", "--ts", "1", "--body-file", "-"])
            .write_stdin("hidden\n"),
        2,
    );
    assert!(
        run.stderr
            .contains("--access-secret-file and --body-file both read stdin"),
        "{}",
        run.stderr
    );
    // The flag (or its variable) and the file: clap's conflict.
    let good = secret_file(dir.path(), "good", DEMO_ACCESS_SECRET);
    for flag in [true, false] {
        let mut cmd = keyed(&sandbox);
        cmd.arg("--access-secret-file").arg(&good);
        cmd.args(["media", "get", "--phone", PHONE, "--id", "x"]);
        if flag {
            cmd.args(["--access-secret", "hidden"]);
        } else {
            cmd.env("NXCLOUD_ACCESS_SECRET", "hidden");
        }
        let run = expect_unshown(&mut cmd, 2, "hidden");
        assert!(run.stderr.contains("cannot be used with"), "{}", run.stderr);
    }
}
