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

use nx_protocol::wa::{GetMedia, MediaInfo};

use crate::fixtures::{MEDIA_ID, PHONE, Prebuilt, async_client, blocking_client, runtime};
use crate::procfs::{Usage, load_average, load_since, usage};
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
    /// Run one side only (`sdk`, `raw`, or `hand`: nx-protocol by hand over raw hyper-util
    /// for item 2, over raw ureq for item 3), for profiling; the figures of the other sides
    /// are then missing and the section is not sane. `hand-timeout` (item 2) is `hand` under a
    /// `tokio::time::timeout`, as nx-async runs each attempt. Any other value (e.g. `none`) runs
    /// only the warm-up and the sans-IO loops: the fixed cost to subtract from a profiled run's
    /// total.
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

/// One timed run: wall time and what this process spent meanwhile.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Run {
    wall: Duration,
    usage: Usage,
}

/// Figures of one side at one concurrency, one value per run (all but throughput per request).
#[derive(Clone, Debug, Default)]
pub(crate) struct Side {
    pub(crate) per_sec: Vec<f64>,
    /// User plus system CPU time, µs.
    pub(crate) cpu_us: Vec<f64>,
    pub(crate) user_us: Vec<f64>,
    pub(crate) system_us: Vec<f64>,
    pub(crate) voluntary: Vec<f64>,
    pub(crate) involuntary: Vec<f64>,
}

impl Side {
    fn push(&mut self, run: Run, requests: usize) {
        let n = requests as f64;
        let us = |d: Duration| d.as_secs_f64() * 1e6 / n;
        self.per_sec.push(n / run.wall.as_secs_f64());
        self.cpu_us.push(us(run.usage.user + run.usage.system));
        self.user_us.push(us(run.usage.user));
        self.system_us.push(us(run.usage.system));
        self.voluntary.push(run.usage.voluntary as f64 / n);
        self.involuntary.push(run.usage.involuntary as f64 / n);
    }
}

fn timed(f: impl FnOnce() -> Result<Duration, String>) -> Result<Run, String> {
    let before = usage().map_err(|e| e.to_string())?;
    let wall = f()?;
    let after = usage().map_err(|e| e.to_string())?;
    Ok(Run {
        wall,
        usage: after.since(&before),
    })
}

/// Which `--only` values run a [`Contender`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum Only {
    /// A full run, and `--only <name>`.
    Or(&'static str),
    /// A full run alone: a diagnostic without a name of its own.
    Never,
    /// `--only <name>` alone: a profiling variant over the client of another contender, whose
    /// warm-up opens its connections (it has none of its own).
    Alone(&'static str),
}

/// One client under test: when it runs, and how it makes `total` requests at concurrency `c`
/// (returning their wall time).
pub(crate) struct Contender<'a> {
    only: Only,
    drive: Box<dyn Fn(usize, usize) -> Result<Duration, String> + 'a>,
}

impl<'a> Contender<'a> {
    /// `client` making `call`s on tasks of `runtime` ([`drive`]).
    pub(crate) fn tasks<C, F, Fut>(
        only: Only,
        runtime: &'a tokio::runtime::Runtime,
        client: C,
        call: F,
    ) -> Self
    where
        C: Clone + Send + 'static,
        F: Fn(C) -> Fut + Copy + Send + 'static,
        Fut: Future<Output = Result<(), String>> + Send,
    {
        Self {
            only,
            drive: Box::new(move |c, total| {
                runtime.block_on(drive(client.clone(), c, total, call))
            }),
        }
    }

    /// `client` making `call`s on threads ([`drive_threads`]).
    pub(crate) fn threads<C, F>(only: Only, client: &'a C, call: F) -> Self
    where
        C: Sync,
        F: Fn(&C) -> Result<(), String> + Copy + Sync + 'a,
    {
        Self {
            only,
            drive: Box::new(move |c, total| drive_threads(client, c, total, call)),
        }
    }

    fn runs(&self, only: Option<&str>) -> bool {
        match (self.only, only) {
            (Only::Or(_) | Only::Never, None) => true,
            (Only::Or(name) | Only::Alone(name), Some(only)) => name == only,
            (Only::Never, Some(_)) | (Only::Alone(_), None) => false,
        }
    }
}

/// The runs of items 2, 3, 8a and 8b. First a warm-up: `20 × c` requests by each contender at
/// each concurrency `c`, opening every connection it will use. Then `params.runs` runs of
/// `params.requests` (rounded down to a multiple of `c`) per contender and concurrency: the
/// first two contenders (there must be two) are the A/B pair, the SDK then the baseline on
/// even runs, the baseline then the SDK on odd runs, so each goes first half the time; the
/// others run after the pair. The figures, `[contender][concurrency]`.
pub(crate) fn run_interleaved(
    params: &RequestParams,
    contenders: &[Contender<'_>],
) -> Result<Vec<Vec<Side>>, String> {
    for &c in &params.concurrency {
        for contender in contenders {
            if !matches!(contender.only, Only::Alone(_)) {
                (contender.drive)(c, c * 20)?;
            }
        }
    }
    let mut sides = vec![vec![Side::default(); params.concurrency.len()]; contenders.len()];
    for run in 0..params.runs {
        let pair = if run.is_multiple_of(2) {
            [0, 1]
        } else {
            [1, 0]
        };
        for (i, &c) in params.concurrency.iter().enumerate() {
            let total = params.requests / c * c;
            for k in pair.into_iter().chain(2..contenders.len()) {
                let contender = &contenders[k];
                if contender.runs(params.only.as_deref()) {
                    sides[k][i].push(timed(|| (contender.drive)(c, total))?, total);
                }
            }
        }
    }
    Ok(sides)
}

/// `total / concurrency` calls on each of `concurrency` tasks; the wall time of them all.
async fn drive<C, F, Fut>(
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
fn drive_threads<C, F>(
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

/// A raw client with nx-protocol used by hand (items 2 and 3): the client, and what
/// `build_request` needs besides the operation (the base URL, the credentials) plus the
/// `User-Agent` value the SDK sends.
pub(crate) struct ByHand<C> {
    client: C,
    base: nx_protocol::operation::BaseUrl,
    credentials: nx_protocol::Credentials,
    user_agent: http::HeaderValue,
    media_id: String,
}

impl<C> ByHand<C> {
    /// `client` asking `base` about `media_id` with the bench account, sending `user_agent`.
    fn new(
        client: C,
        base: &str,
        user_agent: &'static str,
        media_id: &str,
    ) -> Result<Self, String> {
        Ok(Self {
            client,
            base: nx_protocol::operation::BaseUrl::parse(base).map_err(|e| e.to_string())?,
            credentials: crate::fixtures::credentials(),
            user_agent: http::HeaderValue::from_static(user_agent),
            media_id: media_id.to_owned(),
        })
    }

    /// nx-protocol's work before a send, as the SDK does it per request: getMedia built by
    /// `build_request` (JSON body, fresh `ts`, MD5 signature, headers), the `User-Agent` added.
    /// The operation (to parse the answer with), the request's parts and its body.
    fn request(&self) -> Result<(GetMedia, http::request::Parts, Bytes), String> {
        let op = GetMedia::new(PHONE, self.media_id.as_str());
        let request = nx_protocol::operation::build_request(
            &op,
            &self.base,
            &self.credentials,
            crate::fixtures::now(),
        )
        .map_err(|e| e.to_string())?;
        let (mut parts, body) = request.into_parts();
        let nx_protocol::OutgoingBody::Bytes(body) = body else {
            return Err("getMedia has a JSON body".into());
        };
        parts
            .headers
            .insert(http::header::USER_AGENT, self.user_agent.clone());
        Ok((op, parts, body))
    }
}

/// nx-protocol's work after a send: `parse_response` of the answer (envelope, `MediaInfo`,
/// download URL).
fn parse_by_hand(
    op: &GetMedia,
    status: http::StatusCode,
    body: &[u8],
) -> Result<MediaInfo, String> {
    nx_protocol::operation::parse_response(op, status, body).map_err(|e| e.to_string())
}

/// A raw hyper-util client with nx-protocol used by hand: `build_request` (fresh `ts`,
/// signature) for every request and `parse_response` on every answer, nothing else.
async fn sans_io_async_call(by_hand: Arc<ByHand<RawAsync>>) -> Result<(), String> {
    let (op, parts, body) = by_hand.request()?;
    let response = by_hand
        .client
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
    std::hint::black_box(parse_by_hand(&op, status, &body)?);
    Ok(())
}

/// [`sans_io_async_call`] under a `tokio::time::timeout`, as nx-async runs each attempt
/// (diagnostic, `--only hand-timeout`).
async fn sans_io_timeout_async_call(by_hand: Arc<ByHand<RawAsync>>) -> Result<(), String> {
    tokio::time::timeout(Duration::from_secs(30), sans_io_async_call(by_hand))
        .await
        .map_err(|_| "timed out".to_owned())?
}

pub(crate) async fn sdk_async_call(client: nx_async::Client) -> Result<(), String> {
    let info = client
        .get_media(PHONE, MEDIA_ID)
        .await
        .map_err(|e| e.to_string())?;
    if info.mime_type() != "image/jpeg" {
        return Err(format!("unexpected answer {info:?}"));
    }
    std::hint::black_box(info);
    Ok(())
}

/// µs per call of the SDK's sans-IO work for one getMedia: `build_request` (JSON body,
/// signature, URL, headers) and `parse_response` (envelope, `MediaInfo`, download URL).
fn sans_io_us(base: &str, iters: u32) -> Result<(f64, f64), String> {
    use nx_protocol::operation::{BaseUrl, build_request, parse_response};
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

/// µs per call of the floor under `build_request` for getMedia, and of its MD5 part alone:
/// what any correct client must do for each request once everything else is prepared in
/// advance. The MD5 of the very string `build_request` signs (taken from one real request,
/// secret included, hashed in one update) and its hex digits; then an `http::Request` of the
/// same URI, body and seven headers made the cheapest way measured (issue 20): a clone of a
/// prepared map of the four constant headers (`accessKey`, `action`, `bizType`,
/// `Content-Type`), then `ts`, `Content-Length` (prepared too) and `sign` (the one value that
/// must be checked and copied each call) appended. Cloning beats seven inserts into a fresh map
/// of the right capacity (about 2.2k against 2.6k instructions). Serializing the body, the
/// fresh `ts` and writing the string to sign are left out, so the floor is below any real
/// build.
fn build_floor_us(base: &str, iters: u32) -> Result<(f64, f64), String> {
    use md5::{Digest as _, Md5};
    use nx_protocol::operation::{BaseUrl, build_request};
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
    let prepared = |wanted: &str| {
        request
            .headers()
            .iter()
            .find(|(name, _)| name.as_str() == wanted)
            .map(|(name, value)| (name.clone(), value.clone()))
            .ok_or(format!("no `{wanted}` header"))
    };
    let mut constant = http::HeaderMap::with_capacity(8);
    for name in ["accesskey", "action", "biztype", "content-type"] {
        let (name, value) = prepared(name)?;
        constant.append(name, value);
    }
    let (ts_name, ts_value) = prepared("ts")?;
    let (length_name, length_value) = prepared("content-length")?;
    let sign = http::HeaderName::from_static("sign");
    let md5_hex = || {
        let digest = Md5::digest(std::hint::black_box(&canonical[..]));
        let mut hex_digits = [0u8; 32];
        hex::encode_to_slice(digest, &mut hex_digits).map(|()| hex_digits)
    };
    let start = Instant::now();
    for _ in 0..iters {
        std::hint::black_box(md5_hex().map_err(|e| e.to_string())?);
    }
    let md5 = start.elapsed().as_secs_f64() * 1e6 / f64::from(iters);
    let floor = || {
        let hex_digits = md5_hex().map_err(|e| e.to_string())?;
        let mut headers = constant.clone();
        headers.append(ts_name.clone(), ts_value.clone());
        headers.append(length_name.clone(), length_value.clone());
        headers.append(
            sign.clone(),
            http::HeaderValue::from_bytes(&hex_digits).map_err(|e| e.to_string())?,
        );
        let mut built = http::Request::new(body.clone());
        *built.method_mut() = http::Method::POST;
        *built.uri_mut() = uri.clone();
        *built.headers_mut() = headers;
        Ok::<_, String>(built)
    };
    let built = floor()?;
    if (built.method(), built.uri(), built.headers(), built.body())
        != (request.method(), request.uri(), request.headers(), &body)
    {
        return Err("the floor's request is not the one build_request builds".into());
    }
    let start = Instant::now();
    for _ in 0..iters {
        std::hint::black_box(floor()?);
    }
    let floor = start.elapsed().as_secs_f64() * 1e6 / f64::from(iters);
    Ok((floor, md5))
}

/// µs per call of the floor under `parse_response` for getMedia: the cheapest parse a correct
/// client does of the same answer bytes. `serde_json::from_slice` into a borrowed envelope
/// (`code`, `data` with the three strings as `&str`; `message` skipped) and the three strings
/// copied into owned `String`s (as a user writes it), dropped each call: no check of the code's
/// meaning, the file name or the URL. Refused unless it reads what `parse_response` reads.
fn parse_floor_us(iters: u32) -> Result<f64, String> {
    use nx_protocol::operation::parse_response;
    #[derive(serde::Deserialize)]
    struct Envelope<'a> {
        code: i64,
        #[serde(borrow)]
        data: Data<'a>,
    }
    #[derive(serde::Deserialize)]
    struct Data<'a> {
        mime_type: &'a str,
        file_name: &'a str,
        url: &'a str,
    }
    let floor = |answer: &[u8]| -> Result<(i64, [String; 3]), String> {
        let Envelope { code, data } = serde_json::from_slice(answer).map_err(|e| e.to_string())?;
        Ok((
            code,
            [data.mime_type, data.file_name, data.url].map(str::to_owned),
        ))
    };
    let answer = crate::server::MEDIA_ENVELOPE.as_bytes();
    let info = parse_response(
        &GetMedia::new(PHONE, MEDIA_ID),
        http::StatusCode::OK,
        answer,
    )
    .map_err(|e| e.to_string())?;
    let (code, [mime_type, file_name, url]) = floor(answer)?;
    if (code, mime_type.as_str(), file_name.as_str(), url.as_str())
        != (0, info.mime_type(), info.file_name(), info.url().expose())
    {
        return Err("the parse floor does not read what parse_response reads".into());
    }
    let start = Instant::now();
    for _ in 0..iters {
        std::hint::black_box(floor(std::hint::black_box(answer))?);
    }
    Ok(start.elapsed().as_secs_f64() * 1e6 / f64::from(iters))
}

/// [`sans_io_us`] over `runs` runs, as measures.
fn sans_io_measures(base: &str, runs: usize, iters: usize) -> Result<Vec<Measure>, String> {
    let (mut build, mut parse) = (Vec::new(), Vec::new());
    let (mut floor, mut md5, mut parse_floor) = (Vec::new(), Vec::new(), Vec::new());
    let iters = u32::try_from(iters.max(1)).unwrap_or(u32::MAX);
    for _ in 0..runs {
        let (b, p) = sans_io_us(base, iters)?;
        build.push(b);
        parse.push(p);
        let (f, m) = build_floor_us(base, iters)?;
        floor.push(f);
        md5.push(m);
        parse_floor.push(parse_floor_us(iters)?);
    }
    Ok(vec![
        Measure::new(
            "SDK work per getMedia, part 1: `nx_protocol::operation::build_request` (JSON body, MD5 signature, URL, headers), alone in a loop",
            "µs",
            &build,
            Bar::AtMost(0.8),
        ),
        Measure::new(
            "floor under part 1: MD5 of the same string to sign, its hex, and an `http::Request` assembled from the same URI and header values prepared in advance (a prepared map of the constant headers cloned), alone in a loop",
            "µs",
            &floor,
            Bar::Info,
        ),
        Measure::new(
            "the floor's MD5 alone: MD5 of the same string to sign (prepared, one update) and its hex, alone in a loop",
            "µs",
            &md5,
            Bar::Info,
        ),
        Measure::new(
            "SDK work per getMedia, part 2: `nx_protocol::operation::parse_response` (envelope, `MediaInfo`, download URL), alone in a loop",
            "µs",
            &parse,
            Bar::AtMost(0.35),
        ),
        Measure::new(
            "floor under part 2: `serde_json::from_slice` of the same answer into a borrowed envelope, its three strings copied into `String`s (no check of code, file name or URL), alone in a loop",
            "µs",
            &parse_floor,
            Bar::Info,
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

/// How the CPU and context-switch rows are measured (items 2, 3, 8a, 8b).
pub(crate) const CPU_NOTE: &str = "Client CPU per request is this process's user plus system CPU time over the run (`getrusage(RUSAGE_SELF)`, all its threads, in µs; the server is another process, so it is the client stack's own cost), divided by the requests; the last rows split it into user and system time (the kernel splits its exact sum by its tick samples) and give the process's voluntary (a thread waited) and involuntary (it was preempted) context switches per request.";

/// Where [`comparisons`]' CPU time goes, at each concurrency: user and system CPU time and
/// voluntary and involuntary context switches per request, this process's (`getrusage`), SDK
/// beside baseline. Rows for information: at concurrency 1 a request is one loopback round
/// trip, and what it costs the kernel (system calls, wake-ups) is where two clients doing about
/// the same user-space work differ (issue 20).
pub(crate) fn usage_rows(
    label: &str,
    concurrency: &[usize],
    sdk: &[Side],
    raw: &[Side],
) -> Vec<Comparison> {
    type Of = fn(&Side) -> &[f64];
    let rows: [(&str, &str, Of); 4] = [
        ("client user CPU per request", "µs", |s| &s.user_us),
        ("client system CPU per request", "µs", |s| &s.system_us),
        ("voluntary context switches per request", "switches", |s| {
            &s.voluntary
        }),
        (
            "involuntary context switches per request",
            "switches",
            |s| &s.involuntary,
        ),
    ];
    let mut out = Vec::new();
    for (what, unit, of) in rows {
        for (i, c) in concurrency.iter().enumerate() {
            out.push(Comparison::new(
                format!("{label}, concurrency {c}: {what}"),
                unit,
                of(&sdk[i]),
                of(&raw[i]),
                Bar::Info,
            ));
        }
    }
    out
}

/// The two diagnostic rows of a by-hand client (items 2 and 3) at each concurrency, named
/// after `(sdk, stack)`: the by-hand client over the raw one (what the protocol work costs),
/// then the SDK over the by-hand client (what its own layer costs), held to `layer`.
fn by_hand_rows(
    (sdk, stack): (&str, &str),
    concurrency: &[usize],
    [sdk_sides, by_hand_sides, raw_sides]: [&[Side]; 3],
    layer: Bar,
) -> Vec<Comparison> {
    let mut out = Vec::new();
    for (i, c) in concurrency.iter().enumerate() {
        out.push(Comparison::new(
            format!("diagnostic: raw {stack} + nx-protocol by hand (`build_request` and `parse_response` per call) vs raw {stack}, concurrency {c}"),
            "req/s",
            &by_hand_sides[i].per_sec,
            &raw_sides[i].per_sec,
            Bar::Info,
        ));
        out.push(Comparison::new(
            format!("diagnostic: {sdk} vs raw {stack} + nx-protocol by hand, concurrency {c}"),
            "req/s",
            &sdk_sides[i].per_sec,
            &by_hand_sides[i].per_sec,
            layer,
        ));
    }
    out
}

/// Runs item 2: `nx_async::Client::get_media` against a raw hyper-util client.
pub fn bench_async(exe: &Path, params: &RequestParams, command: &str) -> Result<Section, String> {
    let load_start = load_average().ok();
    let server = ServerProcess::spawn(exe, params.server_workers)?;
    let base = server.base_url();
    let runtime = runtime()?;
    let sdk = async_client(&base)?;
    let raw = Arc::new((
        raw_hyper_client::<Full<Bytes>>(),
        Prebuilt::get_media(&base, nx_async::USER_AGENT)?,
    ));
    let by_hand = Arc::new(ByHand::new(
        raw.0.clone(),
        &base,
        nx_async::USER_AGENT,
        MEDIA_ID,
    )?);
    let sides = run_interleaved(
        params,
        &[
            Contender::tasks(Only::Or("sdk"), &runtime, sdk, sdk_async_call),
            Contender::tasks(Only::Or("raw"), &runtime, raw, raw_async_call),
            Contender::tasks(
                Only::Or("hand"),
                &runtime,
                by_hand.clone(),
                sans_io_async_call,
            ),
            Contender::tasks(
                Only::Alone("hand-timeout"),
                &runtime,
                by_hand,
                sans_io_timeout_async_call,
            ),
        ],
    )?;
    let (sdk_sides, raw_sides) = (&sides[0], &sides[1]);
    // `--only hand-timeout` times the by-hand client in the by-hand rows.
    let by_hand_sides = if params.only.as_deref() == Some("hand-timeout") {
        &sides[3]
    } else {
        &sides[2]
    };
    let mut comparisons = comparisons(
        "getMedia",
        &params.concurrency,
        sdk_sides,
        raw_sides,
        // Issue 20: 0.95 where wake-up latency dominates, 0.90 where the client is CPU-bound.
        |c| if c == 1 { 0.95 } else { 0.90 },
    );
    comparisons.extend(by_hand_rows(
        ("nx-async", "hyper-util"),
        &params.concurrency,
        [sdk_sides, by_hand_sides, raw_sides],
        // nx-async's own layer (issue 20).
        Bar::AtLeast(0.97),
    ));
    comparisons.extend(usage_rows(
        "getMedia",
        &params.concurrency,
        sdk_sides,
        raw_sides,
    ));
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
            CPU_NOTE.into(),
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

/// A raw ureq agent with nx-protocol used by hand, as [`sans_io_async_call`] over hyper-util:
/// `build_request` per request, the body sent from memory, the whole answer read and
/// `parse_response` run on it.
fn sans_io_blocking_get(by_hand: &ByHand<ureq::Agent>) -> Result<MediaInfo, String> {
    let (op, parts, body) = by_hand.request()?;
    let response = by_hand
        .client
        .run(http::Request::from_parts(parts, &body[..]))
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response
        .into_body()
        .read_to_vec()
        .map_err(|e| e.to_string())?;
    parse_by_hand(&op, status, &body)
}

fn sans_io_blocking_call(by_hand: &ByHand<ureq::Agent>) -> Result<(), String> {
    std::hint::black_box(sans_io_blocking_get(by_hand)?);
    Ok(())
}

/// ureq configured as nx-blocking configures its agent (`crates/nx-blocking/src/transport.rs`:
/// status codes as answers, no redirects, no proxy, its `User-Agent` and no `Accept`, its
/// connect timeout, 32 idle connections per host and 64 in all, kept 60 s), over ureq's own
/// connector and resolver, and without the two limits under which that resolver starts a
/// thread per request (`timeout_resolve` and `timeout_global`; nx-blocking has a resolver of its
/// own for that, see item 3's first round): like item 2's by-hand client, it bounds no call.
fn by_hand_agent(connect_timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .user_agent(nx_blocking::USER_AGENT)
        .accept("")
        .timeout_connect(Some(connect_timeout))
        .max_idle_age(Duration::from_secs(60))
        .max_idle_connections(64)
        .max_idle_connections_per_host(32)
        .build()
        .new_agent()
}

/// Before item 3 is timed: the by-hand ureq client's getMedia, sent to the strict sandbox, is
/// verified and answered, and reads what nx-blocking reads there; the same client with a wrong
/// secret is refused with 1003, so the sandbox did check. The fixed-answer server the timed
/// runs use checks nothing.
pub fn blocking_by_hand_self_test() -> Result<(), String> {
    use nx_sandbox::{Inbound, Sandbox, SandboxConfig};
    let sandbox = Sandbox::start(SandboxConfig::default()).map_err(|e| e.to_string())?;
    let stored = sandbox
        .receive_inbound(Inbound::new(
            "image",
            "image/jpeg",
            b"not really a jpeg".to_vec(),
        ))
        .map_err(|e| e.to_string())?;
    let base = sandbox.base_url().to_owned();
    let id = stored.media_id.as_str();
    let sdk = blocking_client(&base)?;
    let connect_timeout = sdk.config().transport.connect_timeout;
    let expected = sdk
        .get_media(PHONE, id)
        .map_err(|e| format!("self-test: nx-blocking's getMedia: {e}"))?;
    let by_hand = ByHand::new(
        by_hand_agent(connect_timeout),
        &base,
        nx_blocking::USER_AGENT,
        id,
    )?;
    let got = sans_io_blocking_get(&by_hand)
        .map_err(|e| format!("self-test: raw ureq + nx-protocol by hand: {e}"))?;
    // The URL is signed afresh on every call: the media's type and name must match.
    if (got.mime_type(), got.file_name()) != (expected.mime_type(), expected.file_name()) {
        return Err(format!(
            "self-test: raw ureq + nx-protocol by hand read {got:?}, nx-blocking {expected:?}"
        ));
    }
    let mut wrong = ByHand::new(
        by_hand_agent(connect_timeout),
        &base,
        nx_blocking::USER_AGENT,
        id,
    )?;
    wrong.credentials = nx_protocol::Credentials::new(
        crate::fixtures::ACCESS_KEY,
        format!("{}x", crate::fixtures::ACCESS_SECRET),
    );
    match sans_io_blocking_get(&wrong) {
        Err(e) if e.contains("1003") => Ok(()),
        other => Err(format!(
            "self-test: a wrong secret must be refused with 1003 by the sandbox, got {other:?}"
        )),
    }
}

pub(crate) fn sdk_blocking_call(client: &nx_blocking::Client) -> Result<(), String> {
    let info = client
        .get_media(PHONE, MEDIA_ID)
        .map_err(|e| e.to_string())?;
    if info.mime_type() != "image/jpeg" {
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
    blocking_by_hand_self_test()?;
    let load_start = load_average().ok();
    let server = ServerProcess::spawn(exe, params.server_workers)?;
    let base = server.base_url();
    let sdk = blocking_client(&base)?;
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
    let by_hand = ByHand::new(
        by_hand_agent(sdk.config().transport.connect_timeout),
        &base,
        nx_blocking::USER_AGENT,
        MEDIA_ID,
    )?;
    let mut contenders = vec![
        Contender::threads(Only::Or("sdk"), &sdk, sdk_blocking_call),
        Contender::threads(Only::Or("raw"), &raw, raw_ureq_call),
        Contender::threads(Only::Or("hand"), &by_hand, sans_io_blocking_call),
    ];
    contenders.extend(
        variants
            .iter()
            .map(|(_, variant)| Contender::threads(Only::Never, variant, raw_ureq_call)),
    );
    let sides = run_interleaved(params, &contenders)?;
    let (sdk_sides, raw_sides, by_hand_sides, variant_sides) =
        (&sides[0], &sides[1], &sides[2], &sides[3..]);
    let mut comparisons = comparisons(
        "getMedia",
        &params.concurrency,
        sdk_sides,
        raw_sides,
        |_| 0.95,
    );
    comparisons.extend(by_hand_rows(
        ("nx-blocking", "ureq"),
        &params.concurrency,
        [sdk_sides, by_hand_sides, raw_sides],
        // Issue 20 sets no bar on nx-blocking's own layer.
        Bar::Info,
    ));
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
    comparisons.extend(usage_rows(
        "getMedia",
        &params.concurrency,
        sdk_sides,
        raw_sides,
    ));
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
            "Diagnostic rows: the first column is the named client, the second the named baseline, measured in the same runs (the by-hand client and the variants run after each A/B pair). \"nx-protocol by hand\" is raw ureq configured as nx-blocking's agent is, less the two limits under which ureq's own resolver starts a thread per request (it bounds no call, like item 2's), doing nx-protocol's work per request: it splits the SDK's overhead into the protocol work every correct client must do and what nx-blocking adds around it. The other diagnostics are raw ureq with the one setting named changed from its defaults.".into(),
            "Self-test before timing (`nx_bench::requests::blocking_by_hand_self_test`, also in the smoke run): the by-hand client's getMedia was verified and answered by the strict `nx-sandbox`, reading what nx-blocking reads, and the same client with a wrong secret was refused with 1003.".into(),
        ],
    })
}
