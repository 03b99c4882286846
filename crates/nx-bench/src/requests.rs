//! Items 2 and 3: getMedia through the SDK against a raw client sending an identical pre-built
//! request to the same fixed-answer server ([`crate::server`], in a child process).

use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::fixtures::{ACCESS_KEY, ACCESS_SECRET, MEDIA_ID, PHONE, Prebuilt};
use crate::procfs::{cpu_time, load_average, load_since};
use crate::report::{Bar, Comparison, Measure, Section};
use crate::server::ServerProcess;

/// How long to run.
#[derive(Clone, Debug)]
pub struct RequestParams {
    /// Paired runs per concurrency.
    pub runs: usize,
    /// Requests per run (rounded down to a multiple of the concurrency).
    pub requests: usize,
    /// The concurrency levels.
    pub concurrency: Vec<usize>,
    /// Threads of the server child.
    pub server_workers: usize,
    /// Run one side only (`sdk`, `raw`, or for item 2 `hand`: nx-protocol by hand over raw
    /// hyper-util), for profiling; the figures of the other sides are then missing and the
    /// section is not sane. `hand-timeout` is `hand` under a `tokio::time::timeout`, as
    /// nx-async runs each attempt. Any other value (e.g. `none`) runs only the warm-up and the
    /// sans-IO loops: the fixed cost to subtract from a profiled run's total.
    pub only: Option<String>,
}

impl Default for RequestParams {
    fn default() -> Self {
        Self {
            runs: 7,
            requests: 20_000,
            concurrency: vec![1, 64],
            server_workers: 2,
            only: None,
        }
    }
}

impl RequestParams {
    pub(crate) fn runs_side(&self, side: &str) -> bool {
        self.only.as_deref().is_none_or(|only| only == side)
    }
}

/// One timed run: wall time and this process's CPU time.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Run {
    wall: Duration,
    cpu: Duration,
}

/// Figures of one side at one concurrency.
#[derive(Clone, Debug, Default)]
pub(crate) struct Side {
    pub(crate) per_sec: Vec<f64>,
    pub(crate) cpu_us: Vec<f64>,
}

impl Side {
    pub(crate) fn push(&mut self, run: Run, requests: usize) {
        self.per_sec.push(requests as f64 / run.wall.as_secs_f64());
        self.cpu_us
            .push(run.cpu.as_secs_f64() * 1e6 / requests as f64);
    }
}

pub(crate) fn timed(f: impl FnOnce() -> Result<Duration, String>) -> Result<Run, String> {
    let cpu0 = cpu_time().map_err(|e| e.to_string())?;
    let wall = f()?;
    let cpu1 = cpu_time().map_err(|e| e.to_string())?;
    Ok(Run {
        wall,
        cpu: cpu1.saturating_sub(cpu0),
    })
}

/// One A/B pair of run number `run`, each side a [`Side`] and the closure that times it over
/// `total` requests: the SDK then the baseline on even runs, the baseline then the SDK on
/// odd runs, so each goes first half the time. Under `--only` the named side alone (`sdk` or
/// the baseline's name, `raw` in items 2 and 3); any other value runs neither.
pub(crate) fn interleaved(
    run: usize,
    params: &RequestParams,
    total: usize,
    sdk: (&mut Side, impl FnOnce() -> Result<Run, String>),
    raw: (&str, &mut Side, impl FnOnce() -> Result<Run, String>),
) -> Result<(), String> {
    let ((sdk_side, sdk_run), (raw_name, raw_side, raw_run)) = (sdk, raw);
    if params.only.is_some() {
        if params.runs_side("sdk") {
            sdk_side.push(sdk_run()?, total);
        } else if params.runs_side(raw_name) {
            raw_side.push(raw_run()?, total);
        }
    } else if run.is_multiple_of(2) {
        sdk_side.push(sdk_run()?, total);
        raw_side.push(raw_run()?, total);
    } else {
        raw_side.push(raw_run()?, total);
        sdk_side.push(sdk_run()?, total);
    }
    Ok(())
}

/// `total / concurrency` calls on each of `concurrency` tasks; the wall time of them all.
pub(crate) async fn drive<C, F, Fut>(
    client: C,
    concurrency: usize,
    total: usize,
    call: F,
) -> Result<Duration, String>
where
    C: Clone + Send + 'static,
    F: Fn(C) -> Fut + Copy + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let per_task = total / concurrency;
    let start = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                for _ in 0..per_task {
                    call(client.clone()).await?;
                }
                Ok::<(), String>(())
            })
        })
        .collect();
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    Ok(start.elapsed())
}

/// The same on `concurrency` threads, timed from when all are ready.
pub(crate) fn drive_threads<C, F>(
    client: &C,
    concurrency: usize,
    total: usize,
    call: F,
) -> Result<Duration, String>
where
    C: Sync,
    F: Fn(&C) -> Result<(), String> + Sync,
{
    let per_thread = total / concurrency;
    let ready = Barrier::new(concurrency + 1);
    std::thread::scope(|s| {
        let threads: Vec<_> = (0..concurrency)
            .map(|_| {
                s.spawn(|| {
                    ready.wait();
                    for _ in 0..per_thread {
                        call(client)?;
                    }
                    Ok::<(), String>(())
                })
            })
            .collect();
        ready.wait();
        let start = Instant::now();
        for thread in threads {
            thread
                .join()
                .map_err(|_| "a request thread panicked".to_owned())??;
        }
        Ok(start.elapsed())
    })
}

type RawAsync = HyperClient<HttpConnector, Full<Bytes>>;

/// The raw hyper-util client: the legacy pooled client over a plain `HttpConnector`, with
/// `TCP_NODELAY` as the SDK sets it.
pub fn raw_hyper_client<B>() -> HyperClient<HttpConnector, B>
where
    B: hyper::body::Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    HyperClient::builder(TokioExecutor::new()).build(http)
}

async fn raw_async_call(raw: Arc<(RawAsync, Prebuilt)>) -> Result<(), String> {
    let (client, prebuilt) = &*raw;
    let request = prebuilt.request(Full::new(prebuilt.head.clone()));
    let response = client.request(request).await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("status {}", response.status()));
    }
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    std::hint::black_box(body);
    Ok(())
}

/// What the by-hand client needs: the raw client, the base URL, the credentials and the
/// `User-Agent` value the SDK sends.
type ByHand = (
    RawAsync,
    nx_protocol::operation::BaseUrl,
    nx_protocol::Credentials,
    http::HeaderValue,
);

/// A raw hyper-util client with nx-protocol used by hand: `build_request` (fresh `ts`,
/// signature) for every request and `parse_response` on every answer, nothing else.
async fn sans_io_async_call(by_hand: Arc<ByHand>) -> Result<(), String> {
    use nx_protocol::OutgoingBody;
    use nx_protocol::operation::{build_request, parse_response};
    use nx_protocol::wa::GetMedia;
    let (client, base, credentials, user_agent) = &*by_hand;
    let op = GetMedia::new(PHONE, MEDIA_ID);
    let request =
        build_request(&op, base, credentials, crate::fixtures::now()).map_err(|e| e.to_string())?;
    let (mut parts, body) = request.into_parts();
    let OutgoingBody::Bytes(body) = body else {
        return Err("getMedia has a JSON body".into());
    };
    parts
        .headers
        .insert(http::header::USER_AGENT, user_agent.clone());
    let response = client
        .request(http::Request::from_parts(parts, Full::new(body)))
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    let info = parse_response(&op, status, &body).map_err(|e| e.to_string())?;
    std::hint::black_box(info);
    Ok(())
}

/// [`sans_io_async_call`] under a `tokio::time::timeout`, as nx-async runs each attempt
/// (diagnostic, `--only hand-timeout`).
async fn sans_io_timeout_async_call(by_hand: Arc<ByHand>) -> Result<(), String> {
    tokio::time::timeout(Duration::from_secs(30), sans_io_async_call(by_hand))
        .await
        .map_err(|_| "timed out".to_owned())?
}

pub(crate) async fn sdk_async_call(client: nx_async::Client) -> Result<(), String> {
    let info = client
        .get_media(PHONE, MEDIA_ID)
        .await
        .map_err(|e| e.to_string())?;
    if info.mime_type != "image/jpeg" {
        return Err(format!("unexpected answer {info:?}"));
    }
    std::hint::black_box(info);
    Ok(())
}

/// µs per call of the SDK's sans-IO work for one getMedia: `build_request` (JSON body,
/// signature, URL, headers) and `parse_response` (envelope, `MediaInfo`, download URL).
fn sans_io_us(base: &str, iters: u32) -> Result<(f64, f64), String> {
    use nx_protocol::operation::{BaseUrl, build_request, parse_response};
    use nx_protocol::wa::GetMedia;
    let base = BaseUrl::parse(base).map_err(|e| e.to_string())?;
    let credentials = crate::fixtures::credentials();
    let op = GetMedia::new(PHONE, MEDIA_ID);
    let start = Instant::now();
    for _ in 0..iters {
        let request = build_request(
            std::hint::black_box(&op),
            &base,
            &credentials,
            crate::fixtures::now(),
        )
        .map_err(|e| e.to_string())?;
        std::hint::black_box(request);
    }
    let build = start.elapsed().as_secs_f64() * 1e6 / f64::from(iters);
    let answer = crate::server::MEDIA_ENVELOPE.as_bytes();
    let start = Instant::now();
    for _ in 0..iters {
        let info = parse_response(&op, http::StatusCode::OK, std::hint::black_box(answer))
            .map_err(|e| e.to_string())?;
        std::hint::black_box(info);
    }
    let parse = start.elapsed().as_secs_f64() * 1e6 / f64::from(iters);
    Ok((build, parse))
}

/// µs per call of the floor under `build_request` for getMedia: what any correct client must
/// do for each request once everything else is prepared in advance. The MD5 of the very string
/// `build_request` signs (taken from one real request, secret included) and its hex digits,
/// and an `http::Request` assembled from a pre-parsed URI and the same header names and values
/// (the values pre-validated, the `sign` value checked as it must be). Serializing the body,
/// the fresh `ts` and writing the string to sign are left out, so the floor is below any
/// real build.
fn build_floor_us(base: &str, iters: u32) -> Result<f64, String> {
    use md5::{Digest as _, Md5};
    use nx_protocol::operation::{BaseUrl, build_request};
    use nx_protocol::wa::GetMedia;
    let base = BaseUrl::parse(base).map_err(|e| e.to_string())?;
    let credentials = crate::fixtures::credentials();
    let op = GetMedia::new(PHONE, MEDIA_ID);
    let at = crate::fixtures::now();
    let request = build_request(&op, &base, &credentials, at).map_err(|e| e.to_string())?;
    let nx_protocol::OutgoingBody::Bytes(body) = request.body() else {
        return Err("getMedia has a JSON body".into());
    };
    let body = body.clone();
    let header = |name: &str| {
        request.headers()[name]
            .to_str()
            .map(str::to_owned)
            .map_err(|e| e.to_string())
    };
    let (key, action, biz, ts) = (
        header("accesskey")?,
        header("action")?,
        header("biztype")?,
        header("ts")?,
    );
    // nx-protocol's own string to sign (shown with the secret redacted), the secret put back.
    let params = [
        ("accessKey", key.as_str()),
        ("action", action.as_str()),
        ("bizType", biz.as_str()),
        ("ts", ts.as_str()),
    ];
    let shown = nx_protocol::sign::canonical_string(&nx_protocol::sign::SignableRequest::new(
        &params,
        nx_protocol::sign::SignableBody::Json(&body),
    ))
    .map_err(|e| e.to_string())?;
    let mut canonical = shown
        .strip_suffix(nx_protocol::REDACTED)
        .ok_or("the string to sign ends with the secret")?
        .as_bytes()
        .to_vec();
    canonical.extend_from_slice(crate::fixtures::ACCESS_SECRET.as_bytes());
    if hex::encode(Md5::digest(&canonical)) != header("sign")? {
        return Err("the floor's string to sign is not the one build_request signs".into());
    }
    let uri = request.uri().clone();
    let headers: Vec<(http::HeaderName, http::HeaderValue)> = request
        .headers()
        .iter()
        .filter(|(name, _)| name.as_str() != "sign")
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let sign = http::HeaderName::from_static("sign");
    let start = Instant::now();
    for _ in 0..iters {
        let digest = Md5::digest(std::hint::black_box(&canonical[..]));
        let mut hex_digits = [0u8; 32];
        hex::encode_to_slice(digest, &mut hex_digits).map_err(|e| e.to_string())?;
        let mut builder = http::Request::post(uri.clone());
        let map = builder.headers_mut().ok_or("no header map")?;
        map.reserve(headers.len() + 1);
        for (name, value) in &headers {
            map.insert(name.clone(), value.clone());
        }
        map.insert(
            sign.clone(),
            http::HeaderValue::from_bytes(&hex_digits).map_err(|e| e.to_string())?,
        );
        let built = builder.body(body.clone()).map_err(|e| e.to_string())?;
        std::hint::black_box(built);
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / f64::from(iters))
}

/// [`sans_io_us`] over `runs` runs, as measures.
fn sans_io_measures(base: &str, runs: usize, iters: usize) -> Result<Vec<Measure>, String> {
    let (mut build, mut parse, mut floor) = (Vec::new(), Vec::new(), Vec::new());
    let iters = u32::try_from(iters.max(1)).unwrap_or(u32::MAX);
    for _ in 0..runs {
        let (b, p) = sans_io_us(base, iters)?;
        build.push(b);
        parse.push(p);
        floor.push(build_floor_us(base, iters)?);
    }
    Ok(vec![
        Measure::new(
            "SDK work per getMedia, part 1: `nx_protocol::operation::build_request` (JSON body, MD5 signature, URL, headers), alone in a loop",
            "µs",
            &build,
            Bar::AtMost(0.8),
        ),
        Measure::new(
            "floor under part 1: MD5 of the same string to sign, its hex, and an `http::Request` assembled from the same URI and header values prepared in advance, alone in a loop",
            "µs",
            &floor,
            Bar::Info,
        ),
        Measure::new(
            "SDK work per getMedia, part 2: `nx_protocol::operation::parse_response` (envelope, `MediaInfo`, download URL), alone in a loop",
            "µs",
            &parse,
            Bar::AtMost(0.35),
        ),
    ])
}

pub(crate) fn comparisons(
    label: &str,
    concurrency: &[usize],
    sdk: &[Side],
    raw: &[Side],
    bar: impl Fn(usize) -> f64,
) -> Vec<Comparison> {
    let mut out = Vec::new();
    for (i, c) in concurrency.iter().enumerate() {
        out.push(Comparison::new(
            format!("{label}, concurrency {c}: throughput"),
            "req/s",
            &sdk[i].per_sec,
            &raw[i].per_sec,
            Bar::AtLeast(bar(*c)),
        ));
    }
    for (i, c) in concurrency.iter().enumerate() {
        out.push(Comparison::new(
            format!("{label}, concurrency {c}: client CPU per request"),
            "µs",
            &sdk[i].cpu_us,
            &raw[i].cpu_us,
            Bar::Info,
        ));
    }
    out
}

/// Runs item 2: `nx_async::Client::get_media` against a raw hyper-util client.
pub fn bench_async(exe: &Path, params: &RequestParams, command: &str) -> Result<Section, String> {
    let load_start = load_average().ok();
    let server = ServerProcess::spawn(exe, params.server_workers)?;
    let base = server.base_url();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let sdk = nx_async::Client::builder()
        .credentials(ACCESS_KEY, ACCESS_SECRET)
        .base_url(&base)
        .build()
        .map_err(|e| e.to_string())?;
    let raw = Arc::new((
        raw_hyper_client::<Full<Bytes>>(),
        Prebuilt::get_media(&base, nx_async::USER_AGENT)?,
    ));
    let by_hand = Arc::new((
        raw.0.clone(),
        nx_protocol::operation::BaseUrl::parse(&base).map_err(|e| e.to_string())?,
        crate::fixtures::credentials(),
        http::HeaderValue::from_static(nx_async::USER_AGENT),
    ));
    let mut sdk_sides = vec![Side::default(); params.concurrency.len()];
    let mut raw_sides = vec![Side::default(); params.concurrency.len()];
    let mut by_hand_sides = vec![Side::default(); params.concurrency.len()];
    runtime.block_on(async {
        // Warm up: open every connection each side will use.
        for &c in &params.concurrency {
            drive(sdk.clone(), c, c * 20, sdk_async_call).await?;
            drive(raw.clone(), c, c * 20, raw_async_call).await?;
            drive(by_hand.clone(), c, c * 20, sans_io_async_call).await?;
        }
        Ok::<(), String>(())
    })?;
    for run in 0..params.runs {
        for (i, &c) in params.concurrency.iter().enumerate() {
            let total = params.requests / c * c;
            let sdk_run =
                || timed(|| runtime.block_on(drive(sdk.clone(), c, total, sdk_async_call)));
            let raw_run =
                || timed(|| runtime.block_on(drive(raw.clone(), c, total, raw_async_call)));
            interleaved(
                run,
                params,
                total,
                (&mut sdk_sides[i], sdk_run),
                ("raw", &mut raw_sides[i], raw_run),
            )?;
            if params.only.as_deref() == Some("hand-timeout") {
                by_hand_sides[i].push(
                    timed(|| {
                        runtime.block_on(drive(
                            by_hand.clone(),
                            c,
                            total,
                            sans_io_timeout_async_call,
                        ))
                    })?,
                    total,
                );
            }
            if params.runs_side("hand") {
                by_hand_sides[i].push(
                    timed(|| {
                        runtime.block_on(drive(by_hand.clone(), c, total, sans_io_async_call))
                    })?,
                    total,
                );
            }
        }
    }
    let mut comparisons = comparisons(
        "getMedia",
        &params.concurrency,
        &sdk_sides,
        &raw_sides,
        // Issue 20: 0.95 where wake-up latency dominates, 0.90 where the client is CPU-bound.
        |c| if c == 1 { 0.95 } else { 0.90 },
    );
    for (i, c) in params.concurrency.iter().enumerate() {
        comparisons.push(Comparison::new(
            format!("diagnostic: raw hyper-util + nx-protocol by hand (`build_request` and `parse_response` per call) vs raw hyper-util, concurrency {c}"),
            "req/s",
            &by_hand_sides[i].per_sec,
            &raw_sides[i].per_sec,
            Bar::Info,
        ));
        comparisons.push(Comparison::new(
            format!(
                "diagnostic: nx-async vs raw hyper-util + nx-protocol by hand, concurrency {c}"
            ),
            "req/s",
            &sdk_sides[i].per_sec,
            &by_hand_sides[i].per_sec,
            // nx-async's own layer (issue 20).
            Bar::AtLeast(0.97),
        ));
    }
    let measures = sans_io_measures(&base, params.runs, params.requests)?;
    let load = load_since(load_start);
    Ok(Section {
        title: "2. Request overhead, async: getMedia through nx-async vs raw hyper-util".into(),
        command: command.into(),
        runs: params.runs,
        load,
        sdk_label: "nx-async `Client::get_media`".into(),
        baseline_label: "raw hyper-util, pre-built request".into(),
        comparisons,
        measures,
        notes: vec![
            format!(
                "{} requests per run at each concurrency (tasks on a 2-worker tokio runtime sharing one client); the server is `nx-bench serve` in a child process with {} worker threads, answering a fixed {} B envelope without verifying anything.",
                params.requests,
                params.server_workers,
                crate::server::MEDIA_ENVELOPE.len()
            ),
            "The SDK signs each request afresh (JSON serialization, MD5 signature, fresh `ts`), goes through its retry loop, timeout and tracing span, and parses the envelope and `MediaInfo`; the baseline clones a request signed once and only reads the answer's bytes.".into(),
            "Client CPU per request is this process's user+system CPU time (from /proc/self/stat, 10 ms ticks) over the run, divided by the requests; the server is another process, so it is the client stack's own cost.".into(),
            "Diagnostic rows: the first column is the named client, the second the named baseline, measured in the same runs (the by-hand client runs after each A/B pair). \"nx-protocol by hand\" is what a user of the sans-IO core with their own hyper client does: it splits the SDK's overhead into the protocol work every correct client must do and what nx-async adds around it.".into(),
        ],
    })
}

fn raw_ureq_call(raw: &(ureq::Agent, Prebuilt)) -> Result<(), String> {
    let (agent, prebuilt) = raw;
    let request = prebuilt.request(&prebuilt.head[..]);
    let response = agent.run(request).map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("status {}", response.status()));
    }
    let body = response
        .into_body()
        .read_to_vec()
        .map_err(|e| e.to_string())?;
    std::hint::black_box(body);
    Ok(())
}

pub(crate) fn sdk_blocking_call(client: &nx_blocking::Client) -> Result<(), String> {
    let info = client
        .get_media(PHONE, MEDIA_ID)
        .map_err(|e| e.to_string())?;
    if info.mime_type != "image/jpeg" {
        return Err(format!("unexpected answer {info:?}"));
    }
    std::hint::black_box(info);
    Ok(())
}

/// Runs item 3: `nx_blocking::Client::get_media` against raw ureq, on threads.
pub fn bench_blocking(
    exe: &Path,
    params: &RequestParams,
    command: &str,
) -> Result<Section, String> {
    let load_start = load_average().ok();
    let server = ServerProcess::spawn(exe, params.server_workers)?;
    let base = server.base_url();
    let sdk = nx_blocking::Client::builder()
        .credentials(ACCESS_KEY, ACCESS_SECRET)
        .base_url(&base)
        .build()
        .map_err(|e| e.to_string())?;
    let prebuilt = Prebuilt::get_media(&base, nx_blocking::USER_AGENT)?;
    // ureq's defaults, as a user who writes `Agent::new_with_defaults()` gets them.
    let raw = (ureq::Agent::new_with_defaults(), prebuilt.clone());

    // Diagnostics: raw ureq with one setting changed from its defaults.
    let max = params.concurrency.iter().copied().max().unwrap_or(1);
    let variants = [
        (
            "raw ureq + `timeout_resolve(Some(10 s))`, as nx-blocking configures its agent"
                .to_owned(),
            ureq::Agent::config_builder()
                .timeout_resolve(Some(Duration::from_secs(10)))
                .build()
                .new_agent(),
        ),
        (
            format!(
                "raw ureq with a pool of {} idle connections per host",
                max * 2
            ),
            ureq::Agent::config_builder()
                .max_idle_connections(max * 2)
                .max_idle_connections_per_host(max * 2)
                .build()
                .new_agent(),
        ),
    ]
    .map(|(name, agent)| (name, (agent, prebuilt.clone())));
    let n = params.concurrency.len();
    let (mut sdk_sides, mut raw_sides) = (vec![Side::default(); n], vec![Side::default(); n]);
    let mut variant_sides = vec![vec![Side::default(); n]; variants.len()];
    for &c in &params.concurrency {
        drive_threads(&sdk, c, c * 20, sdk_blocking_call)?;
        drive_threads(&raw, c, c * 20, raw_ureq_call)?;
        for (_, variant) in &variants {
            drive_threads(variant, c, c * 20, raw_ureq_call)?;
        }
    }
    for run in 0..params.runs {
        for (i, &c) in params.concurrency.iter().enumerate() {
            let total = params.requests / c * c;
            let sdk_run = || timed(|| drive_threads(&sdk, c, total, sdk_blocking_call));
            let raw_run = || timed(|| drive_threads(&raw, c, total, raw_ureq_call));
            interleaved(
                run,
                params,
                total,
                (&mut sdk_sides[i], sdk_run),
                ("raw", &mut raw_sides[i], raw_run),
            )?;
            if params.only.is_some() {
                continue;
            }
            for (v, (_, variant)) in variants.iter().enumerate() {
                variant_sides[v][i].push(
                    timed(|| drive_threads(variant, c, total, raw_ureq_call))?,
                    total,
                );
            }
        }
    }
    let mut comparisons = comparisons(
        "getMedia",
        &params.concurrency,
        &sdk_sides,
        &raw_sides,
        |_| 0.95,
    );
    for (v, (name, _)) in variants.iter().enumerate() {
        for (i, c) in params.concurrency.iter().enumerate() {
            comparisons.push(Comparison::new(
                format!("diagnostic: {name} vs raw ureq defaults, concurrency {c}"),
                "req/s",
                &variant_sides[v][i].per_sec,
                &raw_sides[i].per_sec,
                Bar::Info,
            ));
        }
    }
    let measures = sans_io_measures(&base, params.runs, params.requests)?;
    let load = load_since(load_start);
    Ok(Section {
        title: "3. Request overhead, blocking: getMedia through nx-blocking vs raw ureq".into(),
        command: command.into(),
        runs: params.runs,
        load,
        sdk_label: "nx-blocking `Client::get_media`".into(),
        baseline_label: "raw ureq (`Agent::new_with_defaults`), pre-built request".into(),
        comparisons,
        measures,
        notes: vec![
            format!(
                "{} requests per run at each concurrency, spread over that many threads sharing one client (one agent); the server is `nx-bench serve` in a child process with {} worker threads.",
                params.requests, params.server_workers
            ),
            "In the diagnostic rows the \"SDK\" column is raw ureq with the one setting named changed, and the \"baseline\" column is raw ureq with its defaults (measured in the same runs).".into(),
        ],
    })
}
