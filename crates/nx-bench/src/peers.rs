//! Item 8 (issue 20, bar 4): the SDK beside what a user would write instead, against the same
//! `nx-bench serve` server: nx-async against reqwest and nx-blocking against plain ureq, both
//! with NXCloud's signature and JSON envelope done by hand ([`crate::hand`]), and a verified
//! 256 MiB download against reqwest hashing by hand.
//!
//! Every run of these items starts with [`self_test`]: the hand-written clients must sign
//! exactly what nx-protocol signs, or the comparison would be against a client that does less.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nx_protocol::AccessSecret;
use nx_protocol::sign::{SignableBody, SignableRequest};
use nx_sandbox::{Inbound, Sandbox, SandboxConfig};
use sha2::{Digest as _, Sha256};

use crate::child::Case;
use crate::fixtures::{
    ACCESS_KEY, ACCESS_SECRET, MEDIA_ID, PHONE, async_client, blocking_client, pattern_sha256,
    runtime, size_text,
};
use crate::hand::{Account, ReqwestGetMedia, UreqGetMedia};
use crate::procfs::{load_average, load_since};
use crate::report::{Bar, Comparison, Section};
use crate::requests::{
    Contender, Only, RequestParams, comparisons, run_interleaved, sdk_async_call,
    sdk_blocking_call, usage_rows,
};
use crate::server::ServerProcess;
use crate::transfer::{child_runs, index, rss_measures};

/// The bench account as the hand-written clients hold it.
pub fn account() -> Account {
    Account {
        access_key: ACCESS_KEY.to_owned(),
        access_secret: ACCESS_SECRET.to_owned(),
        business_phone: PHONE.to_owned(),
    }
}

/// ureq as a user wanting a deadline configures it: `timeout_global` (ureq 3.5 then starts a
/// resolver thread per request, see BENCHMARKS.md item 3).
pub fn ureq_with_timeout_global() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent()
}

fn nx_sign(params: &[(&str, &str)], body: &[u8], secret: &str) -> Result<String, String> {
    let request = SignableRequest::new(params, SignableBody::Json(body));
    nx_protocol::sign::sign(&request, &AccessSecret::new(secret))
        .map(|s| s.as_str().to_owned())
        .map_err(|e| e.to_string())
}

/// One input of the signers: access key, action, bizType, ts, JSON body, secret.
type SignInput<'a> = (&'a str, &'a str, &'a str, &'a str, &'a [u8], &'a str);

/// The hand-written signer against `nx_protocol::sign` on the vendor's worked example, a
/// getMedia body and an empty body; the number of inputs compared.
fn compare_signers() -> Result<usize, String> {
    let vendor_body = r#"{"name":"牛小信","id":10001}"#.as_bytes();
    let get_media = format!(
        r#"{{"business_phone":"{PHONE}","Media-ID":"{MEDIA_ID}","messaging_product":"whatsapp"}}"#
    );
    let cases: [SignInput<'_>; 3] = [
        (
            "fme2na3kdi3ki",
            "send",
            "1",
            "1655710885431",
            vendor_body,
            "abciiiko2k3",
        ),
        (
            ACCESS_KEY,
            "getMedia",
            "2",
            "1700000000000",
            get_media.as_bytes(),
            ACCESS_SECRET,
        ),
        (ACCESS_KEY, "deleteMedia", "2", "1", b"", ACCESS_SECRET),
    ];
    for (key, action, biz, ts, body, secret) in cases {
        let hand = crate::hand::sign(key, action, biz, ts, body, secret);
        // nx-protocol's order of the parameters is its own business: give them unsorted.
        let params = [
            ("ts", ts),
            ("bizType", biz),
            ("action", action),
            ("accessKey", key),
        ];
        let sdk = nx_sign(&params, body, secret)?;
        if hand != sdk {
            return Err(format!(
                "self-test: the hand-written signature of `{action}` differs from nx_protocol::sign's"
            ));
        }
    }
    let (key, action, biz, ts, body, secret) = cases[0];
    if crate::hand::sign(key, action, biz, ts, body, secret) != "87c3560d3331ae23f1021e2025722354" {
        return Err("self-test: the vendor's worked example signs differently".into());
    }
    Ok(cases.len())
}

/// What [`self_test`] checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelfTest {
    /// Inputs on which the hand-written signer and `nx_protocol::sign` agreed.
    pub signatures_compared: usize,
    /// getMedia calls the strict sandbox verified and answered, one per hand-written client.
    pub sandbox_calls: usize,
    /// Bytes the reqwest download fetched from the sandbox's URL and verified, in each mode.
    pub downloaded: u64,
}

/// Proves the hand-written clients do the SDK's work: their signer agrees with
/// `nx_protocol::sign` (and the vendor's example); each getMedia client (reqwest, ureq with
/// defaults, ureq with `timeout_global`) is verified and answered by the strict sandbox
/// ([`nx_sandbox`] refuses a wrong signature with 1003, which a client with a wrong secret must
/// meet here); its answer matches nx-async's; and the reqwest download fetches the media from
/// the URL, verifies its SHA-256 (both modes) and refuses a wrong digest, leaving no file.
pub fn self_test() -> Result<SelfTest, String> {
    let signatures_compared = compare_signers()?;
    let sandbox = Sandbox::start(SandboxConfig::default()).map_err(|e| e.to_string())?;
    let bytes: Vec<u8> = (0..100_000u32).map(|i| (i * 7 + i / 256) as u8).collect();
    let stored = sandbox
        .receive_inbound(Inbound::new("image", "image/jpeg", bytes.clone()))
        .map_err(|e| e.to_string())?;
    let sha256: [u8; 32] = Sha256::digest(&bytes).into();
    let base = sandbox.base_url().to_owned();
    let id = stored.media_id.as_str();
    let runtime = runtime()?;
    let sdk = async_client(&base)?;
    let expected = runtime
        .block_on(sdk.get_media(PHONE, id))
        .map_err(|e| format!("self-test: nx-async's getMedia: {e}"))?;
    let same = |who: &str, got: crate::hand::Media| {
        if got.mime_type == expected.mime_type() && got.file_name == expected.file_name() {
            Ok(got)
        } else {
            Err(format!(
                "self-test: {who} read {got:?}, nx-async {expected:?}"
            ))
        }
    };
    let reqwest = ReqwestGetMedia::new(&base, account())?;
    let media = runtime
        .block_on(reqwest.get_media(id))
        .map_err(|e| format!("self-test: reqwest by hand: {e}"))?;
    let media = same("reqwest by hand", media)?;
    for (who, agent) in [
        ("ureq by hand", ureq::Agent::new_with_defaults()),
        (
            "ureq by hand with timeout_global",
            ureq_with_timeout_global(),
        ),
    ] {
        let got = UreqGetMedia::new(&base, account(), agent)?
            .get_media(id)
            .map_err(|e| format!("self-test: {who}: {e}"))?;
        same(who, got)?;
    }
    let wrong = Account {
        access_secret: format!("{ACCESS_SECRET}x"),
        ..account()
    };
    match runtime.block_on(ReqwestGetMedia::new(&base, wrong)?.get_media(id)) {
        Err(e) if e.contains("code 1003") => {}
        other => {
            return Err(format!(
                "self-test: a wrong secret must be refused with 1003 by the sandbox, got {other:?}"
            ));
        }
    }

    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let client = crate::hand::reqwest_client()?;
    for durable in [false, true] {
        let path = dir.path().join(format!("media-{durable}.jpg"));
        let len = runtime.block_on(crate::hand::reqwest_download(
            &client, &media.url, &path, &sha256, durable,
        ))?;
        let on_disk = std::fs::read(&path).map_err(|e| e.to_string())?;
        if len != bytes.len() as u64 || on_disk != bytes {
            return Err(format!(
                "self-test: the reqwest download (durable: {durable}) wrote {} bytes, not the media's {}",
                on_disk.len(),
                bytes.len()
            ));
        }
        let bad = dir.path().join(format!("bad-{durable}.jpg"));
        let mut wrong = sha256;
        wrong[0] ^= 1;
        let refused = runtime
            .block_on(crate::hand::reqwest_download(
                &client, &media.url, &bad, &wrong, durable,
            ))
            .is_err();
        if !refused || bad.exists() || bad.with_extension("part").exists() {
            return Err(format!(
                "self-test: the reqwest download (durable: {durable}) did not refuse a wrong SHA-256 cleanly"
            ));
        }
    }
    Ok(SelfTest {
        signatures_compared,
        sandbox_calls: 3,
        downloaded: bytes.len() as u64,
    })
}

fn self_test_note(test: &SelfTest) -> String {
    format!(
        "Self-test before timing (`nx_bench::peers::self_test`, also in the smoke run): the hand-written signer agreed with `nx_protocol::sign` on {} inputs (the vendor's worked example among them); each hand-written getMedia client (reqwest, ureq with defaults, ureq with `timeout_global`) was verified and answered by the strict `nx-sandbox` ({} calls), its answer the same as nx-async's, and the same client with a wrong secret was refused with 1003; the reqwest download fetched and verified {} bytes from the sandbox's URL in both modes and refused a wrong SHA-256, leaving no file.",
        test.signatures_compared, test.sandbox_calls, test.downloaded
    )
}

async fn reqwest_call(peer: Arc<ReqwestGetMedia>) -> Result<(), String> {
    let media = peer.get_media(MEDIA_ID).await?;
    if media.mime_type != "image/jpeg" {
        return Err(format!("unexpected answer {media:?}"));
    }
    std::hint::black_box(media);
    Ok(())
}

fn ureq_call(peer: &UreqGetMedia) -> Result<(), String> {
    let media = peer.get_media(MEDIA_ID)?;
    if media.mime_type != "image/jpeg" {
        return Err(format!("unexpected answer {media:?}"));
    }
    std::hint::black_box(media);
    Ok(())
}

/// The shared notes of 8a and 8b.
fn request_notes(params: &RequestParams, threads: &str) -> Vec<String> {
    vec![
        format!(
            "{} requests per run at each concurrency ({threads}); the server is `nx-bench serve` in a child process with {} worker threads, answering a fixed {} B envelope without verifying anything; runs interleaved (SDK first on even runs, the peer first on odd ones), ratios the median of the per-run ratios.",
            params.requests,
            params.server_workers,
            crate::server::MEDIA_ENVELOPE.len()
        ),
        "Both sides do the same protocol work per request: a fresh `ts`, the JSON body serialized and MD5-signed, the five NXCloud headers, the envelope and getMedia's `data` parsed. The peer is `crates/nx-bench/src/hand.rs`: serde derive structs, the string to sign concatenated into a `Vec` and MD5'd (md-5), hex-encoded; the endpoint URL parsed once. It does not use nx-protocol.".into(),
        crate::requests::CPU_NOTE.into(),
    ]
}

/// Runs item 8a: `nx_async::Client::get_media` against reqwest with the signing and parsing
/// written by hand (`--only sdk|reqwest|none` for profiling).
pub fn bench_async(exe: &Path, params: &RequestParams, command: &str) -> Result<Section, String> {
    let self_test = self_test()?;
    let load_start = load_average().ok();
    let server = ServerProcess::spawn(exe, params.server_workers)?;
    let base = server.base_url();
    let runtime = runtime()?;
    let sdk = async_client(&base)?;
    let peer = Arc::new(ReqwestGetMedia::new(&base, account())?);
    let sides = run_interleaved(
        params,
        &[
            Contender::tasks(Only::Or("sdk"), &runtime, sdk, sdk_async_call),
            Contender::tasks(Only::Or("reqwest"), &runtime, peer, reqwest_call),
        ],
    )?;
    let mut comparisons = comparisons(
        "getMedia",
        &params.concurrency,
        &sides[0],
        &sides[1],
        |_| 1.0,
    );
    comparisons.extend(usage_rows(
        "getMedia",
        &params.concurrency,
        &sides[0],
        &sides[1],
    ));
    let load = load_since(load_start);
    let mut notes = request_notes(
        params,
        "tasks on a 2-worker tokio runtime, each side one shared client",
    );
    notes.push("reqwest 0.13 as a user configures it for rustls: `default-features = false`, TLS from `rustls-no-provider` with ring installed as the process's provider (`rustls` would build aws-lc-rs; the runs are plain HTTP on 127.0.0.1 either way), `Client::builder().build()` with its defaults (pooled, `TCP_NODELAY`, no timeout).".into());
    notes.push(self_test_note(&self_test));
    Ok(Section {
        title: "8a. The peers, async: nx-async vs reqwest with the signature and JSON by hand"
            .into(),
        command: command.into(),
        runs: params.runs,
        load,
        sdk_label: "nx-async `Client::get_media`".into(),
        baseline_label: "reqwest + signing and parsing by hand".into(),
        comparisons,
        measures: Vec::new(),
        notes,
    })
}

/// Runs item 8b: `nx_blocking::Client::get_media` against plain ureq with the signing and
/// parsing written by hand, on threads; and ureq with `timeout_global` as a diagnostic
/// (`--only sdk|ureq-hand|ureq-timeout|none` for profiling).
pub fn bench_blocking(
    exe: &Path,
    params: &RequestParams,
    command: &str,
) -> Result<Section, String> {
    let self_test = self_test()?;
    let load_start = load_average().ok();
    let server = ServerProcess::spawn(exe, params.server_workers)?;
    let base = server.base_url();
    let sdk = blocking_client(&base)?;
    let peer = UreqGetMedia::new(&base, account(), ureq::Agent::new_with_defaults())?;
    let with_timeout = UreqGetMedia::new(&base, account(), ureq_with_timeout_global())?;
    let sides = run_interleaved(
        params,
        &[
            Contender::threads(Only::Or("sdk"), &sdk, sdk_blocking_call),
            Contender::threads(Only::Or("ureq-hand"), &peer, ureq_call),
            Contender::threads(Only::Or("ureq-timeout"), &with_timeout, ureq_call),
        ],
    )?;
    let (sdk_sides, peer_sides, timeout_sides) = (&sides[0], &sides[1], &sides[2]);
    let mut comparisons = comparisons(
        "getMedia",
        &params.concurrency,
        sdk_sides,
        peer_sides,
        |_| 1.0,
    );
    for (i, c) in params.concurrency.iter().enumerate() {
        comparisons.push(Comparison::new(
            format!("diagnostic: nx-blocking vs ureq + `timeout_global(Some(30 s))` + signing and parsing by hand, concurrency {c}"),
            "req/s",
            &sdk_sides[i].per_sec,
            &timeout_sides[i].per_sec,
            Bar::Info,
        ));
    }
    comparisons.extend(usage_rows(
        "getMedia",
        &params.concurrency,
        sdk_sides,
        peer_sides,
    ));
    let load = load_since(load_start);
    let mut notes = request_notes(
        params,
        "spread over that many threads, each side one shared client (one agent)",
    );
    notes.push("The peer is plain ureq 3 with its defaults (`Agent::new_with_defaults()`), as nx-blocking builds on it. The diagnostic rows hold nx-blocking against the same hand-written client on an agent with `timeout_global` set, as a user wanting a deadline configures it (it runs after each pair); ureq 3.5 then starts a resolver thread for every request (see item 3).".into());
    notes.push(self_test_note(&self_test));
    Ok(Section {
        title: "8b. The peers, blocking: nx-blocking vs ureq with the signature and JSON by hand"
            .into(),
        command: command.into(),
        runs: params.runs,
        load,
        sdk_label: "nx-blocking `Client::get_media`".into(),
        baseline_label: "ureq (defaults) + signing and parsing by hand".into(),
        comparisons,
        measures: Vec::new(),
        notes,
    })
}

/// How to run item 8c.
#[derive(Clone, Debug)]
pub struct PeersDownloadParams {
    /// Runs per case.
    pub runs: usize,
    /// The file's size.
    pub size: u64,
    /// Where the downloaded files go.
    pub dir: PathBuf,
    /// Threads of the server child.
    pub server_workers: usize,
}

impl Default for PeersDownloadParams {
    fn default() -> Self {
        Self {
            runs: 5,
            size: 256 << 20,
            dir: std::env::temp_dir(),
            server_workers: 1,
        }
    }
}

/// Runs item 8c: a verified download through the SDK (both transports) against reqwest
/// streaming to a file with SHA-256 by hand, each run a child process of its own.
pub fn bench_download(
    exe: &Path,
    params: &PeersDownloadParams,
    command: &str,
) -> Result<Section, String> {
    let self_test = self_test()?;
    let load_start = load_average().ok();
    let server = ServerProcess::spawn(exe, params.server_workers)?;
    let base = server.base_url();
    let dir = tempfile::Builder::new()
        .prefix("nx-bench-peers-")
        .tempdir_in(&params.dir)
        .map_err(|e| format!("a temporary directory in {}: {e}", params.dir.display()))?;
    let sha = hex::encode(pattern_sha256(params.size));
    let figures = child_runs(exe, params.runs, &Case::PEERS_DOWNLOAD, |case| {
        vec![
            "download".to_owned(),
            case.name().to_owned(),
            base.clone(),
            params.size.to_string(),
            sha.clone(),
            dir.path().display().to_string(),
        ]
    })?;
    let size = size_text(params.size);
    let mut comparisons = Vec::new();
    let rows = [
        (
            "",
            [Case::SdkAsync, Case::SdkBlocking],
            Case::PeerReqwest,
            Bar::AtLeast(1.0),
            " (SHA-256 of every chunk, compared at the end)",
        ),
        (
            "diagnostic: ",
            [Case::SdkAsyncToFile, Case::SdkBlockingToFile],
            Case::PeerReqwest,
            Bar::Info,
            ", the same work (the SDK's `download` into a file the caller opened: no temporary file, fsync or rename)",
        ),
        (
            "diagnostic: ",
            [Case::SdkAsync, Case::SdkBlocking],
            Case::PeerReqwestDurable,
            Bar::Info,
            ", the same guarantees (the peer also writes a `.part` file, fsyncs, renames)",
        ),
    ];
    for (prefix, sdks, peer, bar, what) in rows {
        for sdk in sdks {
            comparisons.push(Comparison::new(
                format!("{size}: {prefix}{} vs {}{what}", sdk.name(), peer.name()),
                "MiB/s",
                &figures[index(sdk)].mib_per_sec,
                &figures[index(peer)].mib_per_sec,
                bar,
            ));
        }
    }
    let measures = rss_measures(&size, &Case::PEERS_DOWNLOAD, &figures);
    let load = load_since(load_start);
    Ok(Section {
        title: "8c. The peers, download: the SDK vs reqwest with SHA-256 by hand".into(),
        command: command.into(),
        runs: params.runs,
        load,
        sdk_label: "SDK".into(),
        baseline_label: "reqwest by hand".into(),
        comparisons,
        measures,
        notes: vec![
            format!(
                "Each run is a fresh `nx-bench child download` process (client built, one GET, exit), the {} cases rotated run by run; the server is `nx-bench serve` ({} worker thread) streaming a repeated 64 KiB pattern with a Content-Length. Files go to {}.",
                Case::PEERS_DOWNLOAD.len(),
                params.server_workers,
                params.dir.display()
            ),
            "The SDK side is `Client::download_to_path` with an expected SHA-256, as in item 4 (temporary file beside the target, every chunk hashed, length and digest checked, fsync, rename); `-to-file` is `Client::download` with the same options into a file the caller created and flushes. The peer (`crates/nx-bench/src/hand.rs`, `reqwest_download`) is reqwest (defaults, as in 8a) reading `Response::chunk` into a `tokio::fs::File`, each chunk hashed with sha2 on the way, the digest compared at the end (a mismatch removes the file); `reqwest+sha256+fsync+rename` also writes to `<file>.part`, fsyncs and renames.".into(),
            "Peak RSS is the child's `VmHWM` from /proc/self/status at exit. The bar (32 MiB) applies to the SDK rows.".into(),
            self_test_note(&self_test),
        ],
    })
}
