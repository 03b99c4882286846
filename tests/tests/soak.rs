//! Soak: many calls, 32 at a time, against one sandbox that injects seeded random faults on
//! about 10% of requests, with both transports and both APIs at once.
//!
//! Every call must end (within the overall timeout plus a margin) with either a correct result
//! (metadata as uploaded, downloaded bytes equal to the uploaded ones, and so on) or a typed
//! error of a kind the injected faults can cause; no panic. Open file descriptors and resident
//! memory after the run must be within a small bound of their values after the warm-up.
//!
//! The size comes from `NX_SOAK_CALLS` (default [`DEFAULT_CALLS`], about 10 s in a debug build
//! on 2 cores); the figures of the full run, printed by this command, are in RELIABILITY.md:
//!
//! ```sh
//! NX_SOAK_CALLS=100000 cargo test -p nx-conformance --test soak -- --nocapture
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use nx_conformance::{
    AsyncDriver, AsyncDriverOnPrem, BlockingDriver, BlockingDriverOnPrem, Driver, OnPremDriver,
    Source, demo_login, files_in, onprem_test_config, test_config,
};
use nx_protocol::ResponseError;
use nx_protocol::config::TransportConfig;
use nx_protocol::download::{IntegrityError, Sha256Digest};
use nx_protocol::error::Error;
use nx_protocol::policy::retry::RetryPolicy;
use nx_sandbox::{
    DEMO_BUSINESS_PHONE as PHONE, Fault, FaultId, FaultRule, Route, Sandbox, SandboxConfig, Target,
};

/// Calls when `NX_SOAK_CALLS` is not set.
const DEFAULT_CALLS: u64 = 10_000;
/// Calls in flight at once (8 per client: NXCloud and On-Premises, async and blocking).
const CONCURRENCY: usize = 32;
/// The share of the calls made before the warm-up measurement.
const WARM_UP_SHARE: u64 = 10;
/// How much the open file descriptors may grow between the warm-up and the end.
const FD_BOUND: i64 = 8;
/// How much resident memory may grow between the warm-up and the end, in KiB.
const RSS_BOUND_KIB: i64 = 8 * 1024;
/// How far past its overall timeout a call may end.
const MARGIN: Duration = Duration::from_secs(2);

fn calls() -> u64 {
    std::env::var("NX_SOAK_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CALLS)
        .max(CONCURRENCY as u64 * 2)
}

fn open_fds() -> i64 {
    std::fs::read_dir("/proc/self/fd").map_or(-1, |d| d.count() as i64)
}

fn rss_kib() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(-1)
}

/// The faults, each drawn independently per request from its own seed (the first that fires
/// wins): about 11% of requests in all. Only faults after which a retry or a typed error is
/// the right outcome: no stalls, slow drips or endless streams (endless trailers, endless 102,
/// endless 1-byte chunks: each would only cost a call its deadline; the fault matrix checks
/// they end on time), and wrong bytes only on the media routes, where SHA-256 can tell (a
/// flipped bit in a JSON string is undetectable). A head or a 503 page trickling at 1 byte/ms
/// is a slow but valid answer (the head drip closes the connection after it).
fn add_faults(sandbox: &Sandbox) -> Vec<FaultId> {
    let mut ids = Vec::new();
    let any: [(Fault, f64); 12] = [
        (Fault::ServiceUnavailable, 0.02),
        (Fault::BadGateway, 0.015),
        (Fault::Reset, 0.02),
        (Fault::ResetAfterProcessing, 0.01),
        (Fault::Truncated, 0.01),
        (Fault::Latency(Duration::from_millis(25)), 0.01),
        (Fault::EmptyBody, 0.005),
        (Fault::InvalidJson, 0.005),
        (Fault::HeaderDrip(Duration::from_millis(1)), 0.005),
        (
            Fault::ServiceUnavailableDrip(Duration::from_millis(1)),
            0.005,
        ),
        (Fault::PartialContent, 0.005),
        (Fault::NoContent, 0.005),
    ];
    for (seed, (fault, p)) in any.into_iter().enumerate() {
        ids.push(
            sandbox
                .faults()
                .add(FaultRule::new(Target::Any, fault).with_probability(p, 1000 + seed as u64)),
        );
    }
    for (seed, route) in [Route::OssDownload, Route::OnPremGetMedia]
        .into_iter()
        .enumerate()
    {
        ids.push(sandbox.faults().add(
            FaultRule::new(route, Fault::CorruptBody).with_probability(0.02, 2000 + seed as u64),
        ));
    }
    ids
}

fn transport(t: &mut TransportConfig) {
    t.request_timeout = Duration::from_secs(5);
    t.overall_timeout = Duration::from_secs(15);
    t.retry = RetryPolicy::new(3, Duration::from_millis(5), Duration::from_millis(20));
}

/// What the calls ended with, per client and kind; and the slowest call.
#[derive(Default)]
struct Tally {
    kinds: Mutex<BTreeMap<(&'static str, String), u64>>,
    wrong: Mutex<Vec<String>>,
    slowest_ms: AtomicU64,
    calls: AtomicU64,
}

impl Tally {
    fn record<T>(
        &self,
        client: &'static str,
        op: &str,
        started: Instant,
        result: &Result<T, Error>,
    ) {
        let ms = started.elapsed().as_millis() as u64;
        self.slowest_ms.fetch_max(ms, Ordering::Relaxed);
        self.calls.fetch_add(1, Ordering::Relaxed);
        let kind = match result {
            Ok(_) => "ok".to_owned(),
            Err(e) => match allowed(e) {
                Some(kind) => kind,
                None => {
                    self.wrong(format!("{client} {op}: an error no fault explains: {e:?}"));
                    "UNEXPECTED".to_owned()
                }
            },
        };
        *self
            .kinds
            .lock()
            .unwrap()
            .entry((client, format!("{op} {kind}")))
            .or_default() += 1;
    }

    fn wrong(&self, what: String) {
        self.wrong.lock().unwrap().push(what);
    }
}

/// The kind of an error the injected faults can cause; `None` for any other error.
fn allowed(e: &Error) -> Option<String> {
    Some(match e {
        Error::Transport { .. } => "Transport".into(),
        Error::Connect { .. } => "Connect".into(),
        Error::Timeout { .. } => "Timeout".into(),
        Error::Integrity(IntegrityError::Sha256Mismatch { .. }) => "Sha256Mismatch".into(),
        Error::Integrity(IntegrityError::LengthMismatch { .. }) => "LengthMismatch".into(),
        // 206 and 204: what a transport that refuses them as a download's answer may say.
        Error::Response(ResponseError::Http { status, .. })
            if [204, 206, 502, 503].contains(&status.as_u16()) =>
        {
            format!("Http {status}")
        }
        Error::Response(ResponseError::Malformed { .. }) => "Malformed".into(),
        // A delete that took effect but whose answer was lost, then retried.
        Error::Response(ResponseError::Api { code, .. }) if code.get() == -1 => "Api -1".into(),
        Error::Response(r) if r.is_not_found() => "not found".into(),
        _ => return None,
    })
}

/// Deterministic media of `len` bytes from `seed`.
fn media(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..len).map(|_| rng.u8(..)).collect()
}

/// One NXCloud worker: uploads, looks up, downloads (to memory or to a path) and deletes its
/// own media.
fn nxcloud_worker<D: Driver>(
    client: &D,
    seed: u64,
    phases: [u64; 2],
    barrier: &Barrier,
    dir: &Path,
    tally: &Tally,
) {
    let name = D::NAME;
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut owned: Vec<(String, Vec<u8>)> = Vec::new();
    for (phase, calls) in phases.into_iter().enumerate() {
        if phase == 1 {
            barrier.wait();
            barrier.wait();
        }
        for _ in 0..calls {
            let pick = rng.u8(..100);
            if owned.is_empty() || pick < 25 {
                let data = media(rng.u64(..), rng.usize(1..16 * 1024));
                let started = Instant::now();
                let result = client.upload_media(
                    PHONE,
                    "application/pdf",
                    Source::Bytes(data.clone(), "soak.pdf"),
                );
                tally.record(name, "upload", started, &result);
                if let Ok(up) = result {
                    owned.push((up.id, data));
                }
                if owned.len() > 8 {
                    // Keep the store small: forget the oldest (it is deleted below if picked).
                    let (id, _) = owned.remove(0);
                    let _ = client.delete_media(PHONE, &id);
                }
                continue;
            }
            let at = rng.usize(..owned.len());
            let (id, data) = owned[at].clone();
            let started = Instant::now();
            match pick {
                25..=49 => {
                    let result = client.get_media(PHONE, &id);
                    tally.record(name, "getMedia", started, &result);
                    if let Ok(info) = result
                        && (info.mime_type() != "application/pdf" || info.file_name() != "soak.pdf")
                    {
                        tally.wrong(format!("{name} getMedia {id}: {info:?}"));
                    }
                }
                50..=69 => {
                    let result = client.download_media(PHONE, &id, Some(Sha256Digest::of(&data)));
                    tally.record(name, "download", started, &result);
                    if let Ok((bytes, _)) = result
                        && bytes != data
                    {
                        tally.wrong(format!("{name} download {id}: wrong bytes"));
                    }
                }
                70..=79 => {
                    let target = dir.join("target.pdf");
                    let result = client.download_media_to_path(
                        PHONE,
                        &id,
                        &target,
                        Some(Sha256Digest::of(&data)),
                    );
                    tally.record(name, "download to path", started, &result);
                    check_dir(name, dir, &target, result.is_ok(), &data, tally);
                }
                _ => {
                    let result = client.delete_media(PHONE, &id);
                    tally.record(name, "deleteMedia", started, &result);
                    if let Ok(deleted) = &result
                        && !deleted.success
                    {
                        tally.wrong(format!("{name} deleteMedia {id}: {deleted:?}"));
                    }
                    // Deleted or not, it is no longer ours to use.
                    owned.remove(at);
                }
            }
        }
    }
    for (id, _) in owned {
        let _ = client.delete_media(PHONE, &id);
    }
}

/// One On-Premises worker: uploads, retrieves (to memory or to a path) and deletes its own
/// media.
fn onprem_worker<P: OnPremDriver>(
    client: &P,
    seed: u64,
    phases: [u64; 2],
    barrier: &Barrier,
    dir: &Path,
    tally: &Tally,
) {
    let name = match P::NAME {
        "nx-async" => "nx-async On-Prem",
        _ => "nx-blocking On-Prem",
    };
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut owned: Vec<(String, Vec<u8>)> = Vec::new();
    for (phase, calls) in phases.into_iter().enumerate() {
        if phase == 1 {
            barrier.wait();
            barrier.wait();
        }
        for _ in 0..calls {
            let pick = rng.u8(..100);
            if owned.is_empty() || pick < 30 {
                let data = media(rng.u64(..), rng.usize(1..16 * 1024));
                let started = Instant::now();
                let result =
                    client.upload_media("application/pdf", Source::Bytes(data.clone(), "s.pdf"));
                tally.record(name, "upload", started, &result);
                if let Ok(up) = result {
                    owned.push((up.id, data));
                }
                if owned.len() > 8 {
                    let (id, _) = owned.remove(0);
                    let _ = client.delete_media(&id);
                }
                continue;
            }
            let at = rng.usize(..owned.len());
            let (id, data) = owned[at].clone();
            let started = Instant::now();
            match pick {
                30..=59 => {
                    let result = client.retrieve_media(&id, Some(Sha256Digest::of(&data)));
                    tally.record(name, "retrieve", started, &result);
                    if let Ok((bytes, _)) = result
                        && bytes != data
                    {
                        tally.wrong(format!("{name} retrieve {id}: wrong bytes"));
                    }
                }
                60..=79 => {
                    let target = dir.join("target.pdf");
                    let result =
                        client.retrieve_media_to_path(&id, &target, Some(Sha256Digest::of(&data)));
                    tally.record(name, "retrieve to path", started, &result);
                    check_dir(name, dir, &target, result.is_ok(), &data, tally);
                }
                _ => {
                    let result = client.delete_media(&id);
                    tally.record(name, "delete", started, &result);
                    owned.remove(at);
                }
            }
        }
    }
    for (id, _) in owned {
        let _ = client.delete_media(&id);
    }
}

/// After a download to `target`: the verified file on success, nothing at all otherwise; then
/// the directory is emptied for the next call.
fn check_dir(name: &str, dir: &Path, target: &Path, ok: bool, data: &[u8], tally: &Tally) {
    let files = files_in(dir);
    if ok {
        if std::fs::read(target).ok().as_deref() != Some(data) {
            tally.wrong(format!("{name}: the file at the target is not the media"));
        }
        if files != ["target.pdf"] {
            tally.wrong(format!("{name}: files beside the target: {files:?}"));
        }
        let _ = std::fs::remove_file(target);
    } else if !files.is_empty() {
        tally.wrong(format!(
            "{name}: files left after a failed download: {files:?}"
        ));
    }
}

#[test]
fn soak_both_transports_both_apis_with_random_faults() {
    let total = calls();
    let per_worker = total.div_ceil(CONCURRENCY as u64);
    let warm = (per_worker / WARM_UP_SHARE).max(1);
    let phases = [warm, per_worker - warm];

    let sandbox = Sandbox::start(SandboxConfig::default().seed(7)).expect("the sandbox starts");
    let rules = add_faults(&sandbox);
    let mut config = test_config(&sandbox);
    transport(&mut config.transport);
    let overall = config.transport.overall_timeout;
    let nx_async = AsyncDriver::new(config.clone()).unwrap();
    let nx_blocking = BlockingDriver::new(config).unwrap();
    let mut onprem = onprem_test_config(&sandbox, demo_login());
    transport(&mut onprem.transport);
    let op_async = AsyncDriverOnPrem::new(onprem.clone()).unwrap();
    let op_blocking = BlockingDriverOnPrem::new(onprem).unwrap();

    let tally = Tally::default();
    let barrier = Barrier::new(CONCURRENCY + 1);
    let dirs: Vec<tempfile::TempDir> = (0..CONCURRENCY)
        .map(|_| tempfile::tempdir().unwrap())
        .collect();
    let started = Instant::now();
    let (warm_fds, warm_rss, warm_at) = std::thread::scope(|scope| {
        for (worker, dir) in dirs.iter().enumerate() {
            let (tally, barrier) = (&tally, &barrier);
            let (nx_async, nx_blocking, op_async, op_blocking) =
                (&nx_async, &nx_blocking, &op_async, &op_blocking);
            let seed = 0x50a4_0000 + worker as u64;
            std::thread::Builder::new()
                .stack_size(1 << 20)
                .spawn_scoped(scope, move || match worker % 4 {
                    0 => nxcloud_worker(nx_async, seed, phases, barrier, dir.path(), tally),
                    1 => nxcloud_worker(nx_blocking, seed, phases, barrier, dir.path(), tally),
                    2 => onprem_worker(op_async, seed, phases, barrier, dir.path(), tally),
                    _ => onprem_worker(op_blocking, seed, phases, barrier, dir.path(), tally),
                })
                .expect("a worker thread");
        }
        barrier.wait();
        let measured = (open_fds(), rss_kib(), started.elapsed());
        barrier.wait();
        measured
    });
    let elapsed = started.elapsed();
    let (end_fds, end_rss) = (open_fds(), rss_kib());

    // Every emulated request is counted by the first rule (its target is any route).
    let requests = sandbox.faults().seen(rules[0]);
    let fired: u64 = rules.iter().map(|&id| sandbox.faults().fired(id)).sum();
    let calls_done = tally.calls.load(Ordering::Relaxed);
    let slowest = Duration::from_millis(tally.slowest_ms.load(Ordering::Relaxed));
    let kinds = tally.kinds.into_inner().unwrap();
    let mut report = format!(
        "\nsoak: {calls_done} calls ({total} asked, {CONCURRENCY} at a time, 4 clients) in {elapsed:.1?} \
         ({:.0} calls/s); warm-up ({warm} calls per worker) ended at {warm_at:.1?}\n\
         requests to the sandbox: {requests}; faults fired on {fired} of them ({:.1}%)\n\
         open fds: {warm_fds} after warm-up, {end_fds} at the end (bound +{FD_BOUND})\n\
         VmRSS: {warm_rss} KiB after warm-up, {end_rss} KiB at the end (bound +{RSS_BOUND_KIB} KiB)\n\
         slowest call: {slowest:?} (bound {:?})\n\n| client | call and outcome | count |\n| --- | --- | --- |\n",
        calls_done as f64 / elapsed.as_secs_f64(),
        fired as f64 * 100.0 / requests.max(1) as f64,
        overall + MARGIN,
    );
    for ((client, what), n) in &kinds {
        report.push_str(&format!("| {client} | {what} | {n} |\n"));
    }
    print!("{report}");

    let wrong = tally.wrong.into_inner().unwrap();
    assert!(
        wrong.is_empty(),
        "{} wrong results:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert_eq!(
        calls_done,
        per_worker * CONCURRENCY as u64,
        "every call ended"
    );
    assert!(slowest <= overall + MARGIN, "slowest call {slowest:?}");
    assert!(
        end_fds - warm_fds <= FD_BOUND,
        "open fds grew from {warm_fds} to {end_fds}"
    );
    assert!(
        end_rss - warm_rss <= RSS_BOUND_KIB,
        "VmRSS grew from {warm_rss} KiB to {end_rss} KiB"
    );
    for dir in &dirs {
        assert!(
            files_in(dir.path()).is_empty(),
            "{:?}",
            files_in(dir.path())
        );
    }
}
