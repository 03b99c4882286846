//! The fault matrix: every fault of the reliability issue against every operation of both APIs,
//! run against both transports (one test per transport, the cells in parallel, each on a fresh
//! sandbox).
//!
//! Each cell asserts: the outcome is one of the expected kinds (a typed error, or the correct
//! result after a permitted retry); the call ended within the configured overall timeout plus a
//! small margin; no panic; and for the calls that write a file, nothing is at the target path
//! (nor any temporary file beside it) unless the file is complete and verified.
//!
//! The table (fault x operation -> outcome, `xN` = requests the faulted route received, and the
//! time the call took) is written to stdout:
//!
//! ```sh
//! cargo test -p nx-conformance --test fault_matrix -- --nocapture --test-threads 1
//! ```

use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nx_conformance::{
    AsyncDriver, AsyncDriverOnPrem, BlockingDriver, BlockingDriverOnPrem, Driver, OnPremDriver,
    OnPremWorld, Source, World, files_in, pattern,
};
use nx_protocol::ResponseError;
use nx_protocol::config::TransportConfig;
use nx_protocol::download::{IntegrityError, Sha256Digest};
use nx_protocol::error::Error;
use nx_protocol::policy::retry::RetryPolicy;
use nx_protocol::wa::{MediaKind, MediaSource, SendMedia};
use nx_sandbox::{
    DEMO_BUSINESS_PHONE as PHONE, DEMO_CUSTOMER_PHONE as CUSTOMER, Fault, FaultRule, Route,
    SandboxConfig,
};

/// One attempt's limit in the matrix.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(500);
/// A whole call's limit in the matrix (3 attempts of 500 ms plus backoff fit in it).
const OVERALL_TIMEOUT: Duration = Duration::from_secs(2);
/// How far past its overall timeout a call may end (scheduling on a loaded 2-core machine).
const MARGIN: Duration = Duration::from_secs(1);
/// The largest download the matrix clients accept (the oversize fault sends 100 MiB; the media
/// is 3 000 bytes). Small, so reading up to the cap (hashed and written, in a debug build) stays
/// far inside the 500 ms attempt limit on a loaded machine: at 1 MiB it took up to 0.5 s.
const MAX_DOWNLOAD: u64 = 64 * 1024;
/// How many cells run at once.
const PARALLEL_CELLS: usize = 12;
/// The oversize answer: 100 MiB of JSON, chunked (so only a reader that caps what it reads
/// notices).
const OVERSIZE_BYTES: u64 = 100 * 1024 * 1024;
/// The code of the unknown-code fault.
const UNKNOWN_CODE: i64 = 31_337;
/// NXCloud's "system business error", retried by idempotent calls only.
const BUSY_CODE: i64 = 9001;
/// How long the sandbox holds the expired-URL cell's download (past the URL's 1 s lifetime,
/// which `Expires` states in whole seconds, so that it expires in flight).
const EXPIRED_HOLD: Duration = Duration::from_millis(2100);
/// The expired-URL cell's attempt limit: far past [`EXPIRED_HOLD`], as a loaded machine adds
/// its delays to the hold (5 s, 2.4 times the hold, was too close).
const EXPIRED_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The expired-URL cell's call limit: room for the URL's refresh and the held fetch.
const EXPIRED_OVERALL_TIMEOUT: Duration = Duration::from_secs(20);
/// How long past a cell's bound the sandbox keeps misbehaving at most
/// (`SandboxConfig::fault_hold_limit`), so a client that does not end on time still ends.
const HOLD_PAST_BOUND: Duration = Duration::from_secs(1);

/// The operations, NXCloud's then On-Premises'.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    GetMedia,
    DeleteMedia,
    UploadMedia,
    /// getMedia, then the download of its URL into a file (with the SHA-256 the webhook gives).
    Download,
    /// mt: the uploaded document sent to the demo customer by id. Not idempotent: resent only
    /// when it certainly was not carried out (after a 1004, with the clock corrected).
    SendMedia,
    Login,
    OnPremUpload,
    /// `GET /v1/media/{id}` into a file, with the SHA-256.
    Retrieve,
    OnPremDelete,
    RetryDownload,
}

impl Op {
    const ALL: [Op; 10] = [
        Op::GetMedia,
        Op::DeleteMedia,
        Op::UploadMedia,
        Op::Download,
        Op::SendMedia,
        Op::Login,
        Op::OnPremUpload,
        Op::Retrieve,
        Op::OnPremDelete,
        Op::RetryDownload,
    ];

    fn column(self) -> &'static str {
        match self {
            Op::GetMedia => "getMedia",
            Op::DeleteMedia => "deleteMedia",
            Op::UploadMedia => "uploadMedia",
            Op::Download => "download",
            Op::SendMedia => "mt",
            Op::Login => "op login",
            Op::OnPremUpload => "op upload",
            Op::Retrieve => "op retrieve",
            Op::OnPremDelete => "op delete",
            Op::RetryDownload => "op retry-dl",
        }
    }

    /// The route the fault is put on.
    fn route(self) -> Route {
        match self {
            Op::GetMedia => Route::GetMedia,
            Op::DeleteMedia => Route::DeleteMedia,
            Op::UploadMedia => Route::UploadMedia,
            Op::Download => Route::OssDownload,
            Op::SendMedia => Route::SendMessage,
            Op::Login => Route::OnPremLogin,
            Op::OnPremUpload => Route::OnPremUpload,
            Op::Retrieve => Route::OnPremGetMedia,
            Op::OnPremDelete => Route::OnPremDeleteMedia,
            Op::RetryDownload => Route::OnPremRetryDownload,
        }
    }

    /// Whether the call goes to one of NXCloud's signed API routes (not the object storage).
    fn is_nxcloud_api(self) -> bool {
        matches!(
            self,
            Op::GetMedia | Op::DeleteMedia | Op::UploadMedia | Op::SendMedia
        )
    }

    fn is_onprem(self) -> bool {
        matches!(
            self,
            Op::Login | Op::OnPremUpload | Op::Retrieve | Op::OnPremDelete | Op::RetryDownload
        )
    }

    /// Whether the call streams a media file into a target path.
    fn writes_file(self) -> bool {
        matches!(self, Op::Download | Op::Retrieve)
    }

    /// The path (below the base URL) the call requests, for a redirect to itself; `url` is the
    /// download URL or the media id where the path needs one.
    fn own_path(self, id: &str, url: &str) -> String {
        match self {
            Op::GetMedia => "/api/wa/getMedia".into(),
            Op::DeleteMedia => "/api/wa/deleteMedia".into(),
            Op::UploadMedia => "/api/wa/uploadMedia".into(),
            Op::Download => url.to_owned(),
            Op::SendMedia => "/api/wa/mt".into(),
            Op::Login => "/v1/users/login".into(),
            Op::OnPremUpload => "/v1/media".into(),
            Op::Retrieve | Op::OnPremDelete => format!("/v1/media/{id}"),
            Op::RetryDownload => format!("/v1/media/{id}/download"),
        }
    }
}

/// What a call ended with, by kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Ok,
    Timeout,
    Transport,
    Connect,
    Http(u16),
    Malformed,
    AnswerTooLarge,
    Sha256Mismatch,
    LengthMismatch,
    DownloadTooLarge,
    Api(i64),
    OnPrem(i64),
    Other,
}

impl Kind {
    fn of<T>(result: &Result<T, Error>) -> Kind {
        match result {
            Ok(_) => Kind::Ok,
            Err(Error::Timeout { .. }) => Kind::Timeout,
            Err(Error::Transport { .. }) => Kind::Transport,
            Err(Error::Connect { .. }) => Kind::Connect,
            Err(Error::AnswerTooLarge { .. }) => Kind::AnswerTooLarge,
            Err(Error::Integrity(IntegrityError::Sha256Mismatch { .. })) => Kind::Sha256Mismatch,
            Err(Error::Integrity(IntegrityError::LengthMismatch { .. })) => Kind::LengthMismatch,
            Err(Error::Integrity(IntegrityError::TooLarge { .. })) => Kind::DownloadTooLarge,
            Err(Error::Response(ResponseError::Api { code, .. })) => Kind::Api(code.get()),
            Err(Error::Response(ResponseError::OnPrem { error, .. })) => {
                Kind::OnPrem(error.code.get())
            }
            Err(Error::Response(ResponseError::Http { status, .. })) => Kind::Http(status.as_u16()),
            Err(Error::Response(ResponseError::Malformed { .. })) => Kind::Malformed,
            Err(_) => Kind::Other,
        }
    }

    fn label(self) -> String {
        match self {
            Kind::Ok => "ok".into(),
            Kind::Timeout => "Timeout".into(),
            Kind::Transport => "Transport".into(),
            Kind::Connect => "Connect".into(),
            Kind::Http(s) => format!("Http {s}"),
            Kind::Malformed => "Malformed".into(),
            Kind::AnswerTooLarge => "AnswerTooLarge".into(),
            Kind::Sha256Mismatch => "Sha256Mismatch".into(),
            Kind::LengthMismatch => "LengthMismatch".into(),
            Kind::DownloadTooLarge => "TooLarge (download)".into(),
            Kind::Api(c) => format!("Api {c}"),
            Kind::OnPrem(c) => format!("OnPrem {c}"),
            Kind::Other => "other".into(),
        }
    }
}

/// The faults (rows).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Row {
    StallBeforeHeaders,
    StallMidBody,
    Drip,
    Reset,
    ResetOnce,
    ResetAfterProcessingOnce,
    BadGateway,
    ServiceUnavailable,
    ServiceUnavailableOnce,
    EmptyBody,
    InvalidJson,
    WrongTypes,
    UnknownCode,
    BusyOnce,
    ClockSkewOnce,
    Truncated,
    Oversize,
    WrongBytes,
    ExpiredUrl,
    RedirectToFile,
    RedirectLoop,
    HeaderDrip,
    DripUnderIdle,
    EndlessTrailers,
    EndlessProcessing,
    TinyChunks,
    PartialContent,
    NoContent,
    ServiceUnavailableDrip,
}

impl Row {
    const ALL: [Row; 29] = [
        Row::StallBeforeHeaders,
        Row::StallMidBody,
        Row::Drip,
        Row::Reset,
        Row::ResetOnce,
        Row::ResetAfterProcessingOnce,
        Row::BadGateway,
        Row::ServiceUnavailable,
        Row::ServiceUnavailableOnce,
        Row::EmptyBody,
        Row::InvalidJson,
        Row::WrongTypes,
        Row::UnknownCode,
        Row::BusyOnce,
        Row::ClockSkewOnce,
        Row::Truncated,
        Row::Oversize,
        Row::WrongBytes,
        Row::ExpiredUrl,
        Row::RedirectToFile,
        Row::RedirectLoop,
        Row::HeaderDrip,
        Row::DripUnderIdle,
        Row::EndlessTrailers,
        Row::EndlessProcessing,
        Row::TinyChunks,
        Row::PartialContent,
        Row::NoContent,
        Row::ServiceUnavailableDrip,
    ];

    fn label(self) -> &'static str {
        match self {
            Row::StallBeforeHeaders => "stall before headers",
            Row::StallMidBody => "stall mid-body (Drip 30 s)",
            Row::Drip => "drip 1 byte/s",
            Row::Reset => "connection reset",
            Row::ResetOnce => "reset, 1st attempt only",
            Row::ResetAfterProcessingOnce => "reset after processing, 1st only",
            Row::BadGateway => "502 HTML",
            Row::ServiceUnavailable => "503 HTML",
            Row::ServiceUnavailableOnce => "503 HTML, 1st attempt only",
            Row::EmptyBody => "200, empty body",
            Row::InvalidJson => "200, invalid JSON",
            Row::WrongTypes => "200, JSON with wrong types",
            Row::UnknownCode => "unknown code (31337)",
            Row::BusyOnce => "9001 (system busy), 1st attempt only",
            Row::ClockSkewOnce => "1004 (ts refused), 1st attempt only",
            Row::Truncated => "truncated (short of Content-Length)",
            Row::Oversize => "oversize (100 MiB JSON, chunked)",
            Row::WrongBytes => "wrong bytes (SHA-256)",
            Row::ExpiredUrl => "expired URL (expires in flight)",
            Row::RedirectToFile => "redirect to file:///etc/passwd",
            Row::RedirectLoop => "redirect loop (to itself)",
            Row::HeaderDrip => "head drip 1 byte / 200 ms",
            Row::DripUnderIdle => "body drip 1 byte / 400 ms (under the idle limit)",
            Row::EndlessTrailers => "endless trailers (64-byte line / 1 ms)",
            Row::EndlessProcessing => "endless 102 Processing (every 100 ms)",
            Row::TinyChunks => "endless 1-byte chunks (1 / ms)",
            Row::PartialContent => "206 Partial Content (bytes 0-99)",
            Row::NoContent => "204 No Content",
            Row::ServiceUnavailableDrip => "503, its body 1 byte / 400 ms",
        }
    }

    /// The fault and on which attempts it fires (`None`: every one); `None` when the fault
    /// does not apply to `op`. `own` is the URL of the call itself (for the redirect loop).
    fn fault(self, op: Op, own: &str) -> Option<(Fault, Option<u64>)> {
        let always = |f| Some((f, None));
        match self {
            Row::StallBeforeHeaders => always(Fault::Stall),
            Row::StallMidBody => always(Fault::Drip(Duration::from_secs(30))),
            Row::Drip => always(Fault::Drip(Duration::from_secs(1))),
            Row::Reset => always(Fault::Reset),
            Row::ResetOnce => Some((Fault::Reset, Some(1))),
            Row::ResetAfterProcessingOnce => Some((Fault::ResetAfterProcessing, Some(1))),
            Row::BadGateway => always(Fault::BadGateway),
            Row::ServiceUnavailable => always(Fault::ServiceUnavailable),
            Row::ServiceUnavailableOnce => Some((Fault::ServiceUnavailable, Some(1))),
            Row::EmptyBody => always(Fault::EmptyBody),
            Row::InvalidJson => always(Fault::InvalidJson),
            Row::WrongTypes => always(Fault::WrongTypes),
            Row::UnknownCode => always(Fault::UnknownCode(UNKNOWN_CODE)),
            // NXCloud's own answers: only its API routes give them.
            Row::BusyOnce | Row::ClockSkewOnce if !op.is_nxcloud_api() => None,
            Row::BusyOnce => Some((Fault::Code(BUSY_CODE), Some(1))),
            // The sandbox's own clock in `Date`: the client's correction is about zero, and the
            // repaired request is accepted.
            Row::ClockSkewOnce => Some((Fault::ClockSkew { skew_ms: 0 }, Some(1))),
            Row::Truncated => always(Fault::Truncated),
            Row::Oversize => always(Fault::Oversize {
                bytes: OVERSIZE_BYTES,
                content_length: false,
            }),
            Row::WrongBytes if op.writes_file() => always(Fault::CorruptBody),
            Row::ExpiredUrl if op == Op::Download => always(Fault::Latency(EXPIRED_HOLD)),
            Row::WrongBytes | Row::ExpiredUrl => None,
            Row::RedirectToFile => always(Fault::Redirect {
                location: "file:///etc/passwd".into(),
            }),
            Row::RedirectLoop => always(Fault::Redirect {
                location: own.to_owned(),
            }),
            Row::HeaderDrip => always(Fault::HeaderDrip(Duration::from_millis(200))),
            Row::DripUnderIdle => always(Fault::Drip(Duration::from_millis(400))),
            Row::EndlessTrailers => always(Fault::EndlessTrailers(Duration::from_millis(1))),
            Row::EndlessProcessing => always(Fault::EndlessProcessing(Duration::from_millis(100))),
            Row::TinyChunks => always(Fault::TinyChunks(Duration::from_millis(1))),
            Row::PartialContent => always(Fault::PartialContent),
            Row::NoContent => always(Fault::NoContent),
            Row::ServiceUnavailableDrip => {
                always(Fault::ServiceUnavailableDrip(Duration::from_millis(400)))
            }
        }
    }

    /// The outcomes that are right for `op` under this fault.
    fn expected(self, op: Op) -> Vec<Kind> {
        use Kind::*;
        let file = op.writes_file();
        match self {
            Row::StallBeforeHeaders | Row::StallMidBody | Row::Drip => vec![Timeout],
            // The request went out whole: a send may have been carried out, so it is not
            // resent and the failure is reported (`RetryPolicy::decide`).
            Row::ResetOnce | Row::ResetAfterProcessingOnce if op == Op::SendMedia => {
                vec![Transport]
            }
            Row::ServiceUnavailableOnce if op == Op::SendMedia => vec![Http(503)],
            Row::BusyOnce if op == Op::SendMedia => vec![Api(BUSY_CODE)],
            // 1004 is the one refusal before anything was done that a send is repaired after.
            Row::BusyOnce | Row::ClockSkewOnce => vec![Ok],
            Row::Reset => vec![Transport, Connect],
            Row::ResetOnce | Row::ServiceUnavailableOnce => vec![Ok],
            // The first attempt took effect: a repeated delete finds nothing.
            Row::ResetAfterProcessingOnce => match op {
                Op::DeleteMedia => vec![Api(-1)],
                Op::OnPremDelete => vec![OnPrem(1006)],
                _ => vec![Ok],
            },
            Row::BadGateway => vec![Http(502)],
            Row::ServiceUnavailable => vec![Http(503)],
            // The sandbox sends these with `Content-Type: application/json`: an On-Premises
            // retrieve reads such an answer as one (JSON is not a media file), and it is not
            // Meta's error shape; the NXCloud download streams it and its SHA-256 fails.
            Row::EmptyBody | Row::InvalidJson | Row::WrongTypes | Row::Oversize
                if op == Op::Retrieve =>
            {
                vec![Malformed]
            }
            Row::EmptyBody | Row::InvalidJson | Row::WrongTypes if file => vec![Sha256Mismatch],
            // A 200 is a delete's success; its body, if any, is a JSON object or nothing.
            Row::EmptyBody | Row::WrongTypes if op == Op::OnPremDelete => vec![Ok],
            Row::EmptyBody | Row::InvalidJson | Row::WrongTypes => vec![Malformed],
            Row::UnknownCode => match op {
                Op::GetMedia | Op::DeleteMedia | Op::UploadMedia | Op::SendMedia => {
                    vec![Api(UNKNOWN_CODE)]
                }
                Op::Download => vec![Sha256Mismatch],
                _ => vec![OnPrem(UNKNOWN_CODE)],
            },
            Row::Truncated if file => vec![Transport, LengthMismatch],
            Row::Truncated => vec![Transport],
            Row::Oversize if file => vec![DownloadTooLarge],
            Row::Oversize => vec![AnswerTooLarge],
            Row::WrongBytes => vec![Sha256Mismatch],
            Row::ExpiredUrl => vec![Http(403)],
            Row::RedirectToFile | Row::RedirectLoop => vec![Http(302)],
            // Each trickles within the idle limit, or never ends: only the deadline ends it
            // (or, for a head, trailers or 1xx answers, a cap on their size or count).
            Row::HeaderDrip | Row::DripUnderIdle => vec![Timeout],
            Row::EndlessTrailers | Row::EndlessProcessing => vec![Timeout, Transport, Malformed],
            // The answer's bytes then spaces, endlessly: a download grows past the media.
            Row::TinyChunks if file => vec![Timeout, LengthMismatch, DownloadTooLarge],
            Row::TinyChunks => vec![Timeout],
            // Only a whole 200 is a file: any other answer is a typed error (by status, or as
            // not the answer's shape) and nothing is saved (`check_target`). 204 is a fine
            // answer to a DELETE.
            Row::PartialContent => vec![Http(206), Malformed],
            Row::NoContent if op == Op::OnPremDelete => vec![Ok, Http(204)],
            Row::NoContent => vec![Http(204), Malformed],
            Row::ServiceUnavailableDrip => vec![Timeout, Http(503)],
        }
    }

    /// How many requests the faulted route must receive, where the count is part of the
    /// promise: a send is never resent after a fault that may have reached the server (one
    /// request), and is repaired once after a 1004 (two); the one-shot NXCloud codes are retried
    /// once by the idempotent calls. `None`: the count is shown, not asserted (a timeout may cut
    /// a third attempt short).
    fn requests(self, op: Op) -> Option<u64> {
        match (self, op) {
            (Row::ClockSkewOnce, _) => Some(2),
            (_, Op::SendMedia) => Some(1),
            (Row::BusyOnce, _) => Some(2),
            _ => None,
        }
    }

    /// Whether the sandbox carries a send out before the fault shows (the handler runs, then
    /// the answer is cut, trickled or bent), so the message is recorded although the call fails.
    fn carried_out(self) -> bool {
        matches!(
            self,
            Row::StallMidBody
                | Row::Drip
                | Row::ResetAfterProcessingOnce
                | Row::Truncated
                | Row::HeaderDrip
                | Row::DripUnderIdle
                | Row::EndlessTrailers
                | Row::TinyChunks
                | Row::PartialContent
                | Row::NoContent
        )
    }

    /// Whether a file target is written without an expected SHA-256, so that only the
    /// transport's own checks stand between a wrong answer and a saved file.
    fn unverified(self) -> bool {
        matches!(self, Row::PartialContent | Row::NoContent)
    }

    fn sandbox_config(self) -> SandboxConfig {
        let config = SandboxConfig::default()
            .shutdown_grace(Duration::from_millis(100))
            .fault_hold_limit(self.bound() + HOLD_PAST_BOUND);
        match self {
            Row::ExpiredUrl => config.url_lifetime(Duration::from_secs(1)),
            _ => config,
        }
    }

    /// How long a call may take: its overall timeout plus [`MARGIN`].
    fn bound(self) -> Duration {
        let mut t = TransportConfig::new("x");
        self.transport(&mut t);
        t.overall_timeout + MARGIN
    }

    fn transport(self, transport: &mut TransportConfig) {
        transport.request_timeout = REQUEST_TIMEOUT;
        transport.overall_timeout = OVERALL_TIMEOUT;
        transport.max_download_bytes = MAX_DOWNLOAD;
        transport.retry = RetryPolicy::new(3, Duration::from_millis(10), Duration::from_millis(50));
        if self == Row::ExpiredUrl {
            transport.request_timeout = EXPIRED_REQUEST_TIMEOUT;
            transport.overall_timeout = EXPIRED_OVERALL_TIMEOUT;
        }
    }
}

/// What a cell found.
struct Cell {
    row: Row,
    op: Op,
    /// `None`: the fault does not apply.
    kind: Option<Kind>,
    requests: u64,
    elapsed: Duration,
    bound: Duration,
    problems: Vec<String>,
}

impl Cell {
    fn text(&self) -> String {
        match self.kind {
            None => "n/a".into(),
            Some(kind) => format!(
                "{} x{} {:.1}s{}",
                kind.label(),
                self.requests,
                self.elapsed.as_secs_f64(),
                if self.problems.is_empty() {
                    ""
                } else {
                    " (fails)"
                }
            ),
        }
    }
}

/// The bytes every cell uploads and downloads.
fn media() -> Vec<u8> {
    pattern(3_000)
}

/// Runs `call`, catching a panic as a problem.
fn guarded<T>(call: impl FnOnce() -> Result<T, Error>) -> Result<Result<T, Error>, String> {
    catch_unwind(AssertUnwindSafe(call)).map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default()
    })
}

/// After a call that writes `target`: a complete, verified file there on success, nothing (not
/// even a temporary file) otherwise.
fn check_target(dir: &Path, target: &Path, ok: bool, problems: &mut Vec<String>) {
    let files = files_in(dir);
    if ok {
        if std::fs::read(target).ok() != Some(media()) {
            problems.push("the file at the target is not the media".into());
        }
        if files != ["target.bin"] {
            problems.push(format!("files beside the target: {files:?}"));
        }
    } else if !files.is_empty() {
        problems.push(format!("files left after a failure: {files:?}"));
    }
}

fn nxcloud_cell<D: Driver>(row: Row, op: Op) -> Cell {
    let world = World::<D>::with(row.sandbox_config(), |c| row.transport(&mut c.transport));
    let bound = row.bound();
    let data = media();
    // Without an expected digest, `check_target` still compares a saved file with the media.
    let expect = (!row.unverified()).then(|| Sha256Digest::of(&data));
    let mut problems = Vec::new();
    // The setup runs on a client with the test settings, not the cell's tight limits: on a
    // loaded machine those may cut a setup call, which is not what the cell is about. (An
    // On-Premises cell keeps one client: its token is part of what the cell exercises.)
    let setup = world.client_with(|_| {});
    let id = match op {
        Op::UploadMedia => String::new(),
        _ => {
            setup
                .upload_media(
                    PHONE,
                    "application/pdf",
                    Source::Bytes(data.clone(), "m.pdf"),
                )
                .expect("the setup upload")
                .id
        }
    };
    let url_path = match op {
        Op::Download => {
            let info = setup.get_media(PHONE, &id).expect("the setup lookup");
            let url = info.url().expose().to_owned();
            url.strip_prefix(world.sandbox.base_url())
                .unwrap_or(&url)
                .to_owned()
        }
        _ => String::new(),
    };
    let own = format!(
        "{}{}",
        world.sandbox.base_url(),
        op.own_path(&id, &url_path)
    );
    let Some((fault, first)) = row.fault(op, &own) else {
        return Cell {
            row,
            op,
            kind: None,
            requests: 0,
            elapsed: Duration::ZERO,
            bound,
            problems,
        };
    };
    let rule = FaultRule::new(op.route(), fault);
    let rule = world.sandbox.faults().add(match first {
        Some(n) => rule.first(n),
        None => rule,
    });
    let gets_before = world.sandbox.log().for_route(Route::GetMedia).len();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target.bin");
    let started = Instant::now();
    let outcome = guarded(|| -> Result<(), Error> {
        match op {
            Op::GetMedia => {
                let info = world.client.get_media(PHONE, &id)?;
                if info.mime_type() != "application/pdf" || info.file_name() != "m.pdf" {
                    return Err(Error::Config(format!("wrong answer: {info:?}")));
                }
            }
            Op::DeleteMedia => {
                if !world.client.delete_media(PHONE, &id)?.success {
                    return Err(Error::Config("delete answered success=false".into()));
                }
            }
            Op::UploadMedia => {
                let id = world
                    .client
                    .upload_media(
                        PHONE,
                        "application/pdf",
                        Source::Bytes(data.clone(), "m.pdf"),
                    )?
                    .id;
                if id.is_empty() {
                    return Err(Error::Config("empty id".into()));
                }
            }
            Op::Download => {
                let verified = world
                    .client
                    .download_media_to_path(PHONE, &id, &target, expect)?;
                if verified.sha256 != expect {
                    return Err(Error::Config("not verified".into()));
                }
            }
            Op::SendMedia => {
                let send =
                    SendMedia::new(PHONE, CUSTOMER, MediaKind::Document, MediaSource::id(&id));
                let sent = world.client.send_media(send)?;
                let recorded = world.sandbox.sent_messages();
                if recorded.len() != 1 || recorded[0].id != sent.id {
                    return Err(Error::Config(format!(
                        "sent {:?}, the sandbox recorded {recorded:?}",
                        sent.id
                    )));
                }
            }
            _ => unreachable!("an On-Premises operation"),
        }
        Ok(())
    });
    let elapsed = started.elapsed();
    let kind = match &outcome {
        Ok(result) => Kind::of(result),
        Err(panic) => {
            problems.push(format!("panicked: {panic}"));
            Kind::Other
        }
    };
    if let Ok(Err(e @ Error::Config(_))) = &outcome {
        problems.push(format!("wrong result: {e}"));
    }
    if op == Op::Download {
        check_target(dir.path(), &target, kind == Kind::Ok, &mut problems);
    }
    if row == Row::ExpiredUrl {
        let gets = world.sandbox.log().for_route(Route::GetMedia).len() - gets_before;
        if gets != 2 {
            problems.push(format!("{gets} getMedia calls; expected 2 (one refresh)"));
        }
    }
    if op == Op::SendMedia {
        // At most one message, and exactly one when the sandbox carried the request out.
        let messages = world.sandbox.sent_messages().len();
        let expected = usize::from(kind == Kind::Ok || row.carried_out());
        if messages != expected {
            problems.push(format!(
                "the sandbox recorded {messages} messages; expected {expected}"
            ));
        }
    }
    let requests = world.sandbox.faults().seen(rule);
    finish(row, op, kind, requests, elapsed, bound, problems, &outcome)
}

fn onprem_cell<P: OnPremDriver>(row: Row, op: Op) -> Cell {
    let world = OnPremWorld::<P>::with(row.sandbox_config(), |c| row.transport(&mut c.transport));
    let bound = row.bound();
    let data = media();
    // Without an expected digest, `check_target` still compares a saved file with the media.
    let expect = (!row.unverified()).then(|| Sha256Digest::of(&data));
    let mut problems = Vec::new();
    let id = match op {
        Op::Login | Op::OnPremUpload => String::new(),
        _ => {
            world
                .client
                .upload_media("application/pdf", Source::Bytes(data.clone(), "m.pdf"))
                .expect("the setup upload")
                .id
        }
    };
    let own = format!("{}{}", world.sandbox.base_url(), op.own_path(&id, ""));
    let Some((fault, first)) = row.fault(op, &own) else {
        return Cell {
            row,
            op,
            kind: None,
            requests: 0,
            elapsed: Duration::ZERO,
            bound,
            problems,
        };
    };
    let rule = FaultRule::new(op.route(), fault);
    let rule = world.sandbox.faults().add(match first {
        Some(n) => rule.first(n),
        None => rule,
    });
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target.bin");
    let started = Instant::now();
    let outcome = guarded(|| -> Result<(), Error> {
        match op {
            Op::Login => {
                let token = world.client.login()?;
                if token.expose().is_empty() {
                    return Err(Error::Config("no token".into()));
                }
            }
            Op::OnPremUpload => {
                let id = world
                    .client
                    .upload_media("application/pdf", Source::Bytes(data.clone(), "m.pdf"))?
                    .id;
                if id.is_empty() {
                    return Err(Error::Config("empty id".into()));
                }
            }
            Op::Retrieve => {
                let retrieved = world.client.retrieve_media_to_path(&id, &target, expect)?;
                if retrieved.verified.sha256 != expect {
                    return Err(Error::Config("not verified".into()));
                }
            }
            Op::OnPremDelete => world.client.delete_media(&id)?,
            Op::RetryDownload => {
                let ack = world.client.retry_download(&id)?;
                if ack.ids != std::slice::from_ref(&id) {
                    return Err(Error::Config(format!("acknowledged {:?}", ack.ids)));
                }
            }
            _ => unreachable!("an NXCloud operation"),
        }
        Ok(())
    });
    let elapsed = started.elapsed();
    let kind = match &outcome {
        Ok(result) => Kind::of(result),
        Err(panic) => {
            problems.push(format!("panicked: {panic}"));
            Kind::Other
        }
    };
    if let Ok(Err(e @ Error::Config(_))) = &outcome {
        problems.push(format!("wrong result: {e}"));
    }
    if op == Op::Retrieve {
        check_target(dir.path(), &target, kind == Kind::Ok, &mut problems);
    }
    let requests = world.sandbox.faults().seen(rule);
    finish(row, op, kind, requests, elapsed, bound, problems, &outcome)
}

#[allow(clippy::too_many_arguments)]
fn finish(
    row: Row,
    op: Op,
    kind: Kind,
    requests: u64,
    elapsed: Duration,
    bound: Duration,
    mut problems: Vec<String>,
    outcome: &Result<Result<(), Error>, String>,
) -> Cell {
    let expected = row.expected(op);
    if !expected.contains(&kind) {
        problems.push(format!(
            "outcome {} ({outcome:?}); expected one of {:?}",
            kind.label(),
            expected.iter().map(|k| k.label()).collect::<Vec<_>>()
        ));
    }
    if elapsed > bound {
        problems.push(format!("took {elapsed:?}; the bound is {bound:?}"));
    }
    if let Some(want) = row.requests(op)
        && requests != want
    {
        problems.push(format!(
            "the route received {requests} requests; expected {want}"
        ));
    }
    Cell {
        row,
        op,
        kind: Some(kind),
        requests,
        elapsed,
        bound,
        problems,
    }
}

/// Runs every cell (in parallel), prints the table, and fails on any problem.
fn fault_matrix<D: Driver, P: OnPremDriver>() {
    let cells: Vec<(Row, Op)> = Row::ALL
        .iter()
        .flat_map(|&row| Op::ALL.iter().map(move |&op| (row, op)))
        .collect();
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL_CELLS {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(row, op)) = cells.get(i) else {
                        break;
                    };
                    let cell = if op.is_onprem() {
                        onprem_cell::<P>(row, op)
                    } else {
                        nxcloud_cell::<D>(row, op)
                    };
                    results.lock().unwrap().push(cell);
                }
            });
        }
    });
    let results = results.into_inner().unwrap();
    let find = |row: Row, op: Op| {
        results
            .iter()
            .find(|c| c.row == row && c.op == op)
            .expect("every cell ran")
    };

    let mut table = format!(
        "\n### {} (request_timeout {REQUEST_TIMEOUT:?}, overall_timeout {OVERALL_TIMEOUT:?}, 3 attempts)\n\n| fault |",
        D::NAME
    );
    for op in Op::ALL {
        let _ = write!(table, " {} |", op.column());
    }
    table.push_str("\n| --- |");
    for _ in Op::ALL {
        table.push_str(" --- |");
    }
    for row in Row::ALL {
        let _ = write!(table, "\n| {} |", row.label());
        for op in Op::ALL {
            let _ = write!(table, " {} |", find(row, op).text());
        }
    }
    let slowest = results
        .iter()
        .filter(|c| c.row != Row::ExpiredUrl)
        .max_by_key(|c| c.elapsed)
        .expect("cells ran");
    let _ = write!(
        table,
        "\n\n{} cells in {:.1?}. The slowest call took {:.2?} ({} x {}) \
         against a bound of {:?} (overall_timeout + {MARGIN:?}); the expired-URL cell \
         (request_timeout {EXPIRED_REQUEST_TIMEOUT:?}, overall_timeout \
         {EXPIRED_OVERALL_TIMEOUT:?}, the download held {EXPIRED_HOLD:?}) took {:.2?}.\n",
        results.iter().filter(|c| c.kind.is_some()).count(),
        started.elapsed(),
        slowest.elapsed,
        slowest.row.label(),
        slowest.op.column(),
        slowest.bound,
        find(Row::ExpiredUrl, Op::Download).elapsed,
    );
    let describe = |c: &Cell| {
        c.problems
            .iter()
            .map(move |p| format!("{} x {}: {p}", c.row.label(), c.op.column()))
            .collect::<Vec<_>>()
    };
    print!("{table}");

    let problems: Vec<String> = results.iter().flat_map(describe).collect();
    assert!(
        problems.is_empty(),
        "{}: {} problems:\n{}",
        D::NAME,
        problems.len(),
        problems.join("\n")
    );
}

macro_rules! matrix {
    ($($case:ident),* $(,)?) => {
        mod async_client {
            $( #[test] fn $case() {
                super::$case::<super::AsyncDriver, super::AsyncDriverOnPrem>()
            } )*
        }
        mod blocking_client {
            $( #[test] fn $case() {
                super::$case::<super::BlockingDriver, super::BlockingDriverOnPrem>()
            } )*
        }
    };
}

matrix!(fault_matrix);
