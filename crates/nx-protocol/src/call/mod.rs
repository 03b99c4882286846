//! The call machine: one API call, download or retrieve, from its first request to its result,
//! as a sans-IO state machine both transports drive (in the spirit of quinn-proto's
//! `Connection` and ureq-proto's `Call`). For writing a transport.
//!
//! The machine owns every decision: building and signing each attempt's request, the clock
//! correction, which token to send and when to log in, when to fetch a fresh download URL,
//! parsing answers, the download checks, the retry policy, never resending once a body's bytes
//! reached a writer that cannot be rewound or once a one-shot upload was read, and every time
//! limit ([`timing`]). The driver carries out its [`Step`]s and feeds back what happened:
//!
//! ```text
//! loop {
//!     match call.poll(now) {
//!         Step::Send(request) => {
//!             send it (a streamed part from the upload source), under call.watch()'s deadline
//!             call.sent(now)            -- the request body went out (streamed uploads)
//!             match call.head(status, headers, now) {
//!                 Read::Whole { max } => call.whole(status, headers, body of at most max bytes, now)
//!                 Read::Stream => for chunk { call.chunk(chunk, now)?; write it };
//!                                 if call.end(now) { finish the writer }
//!             }
//!             (any failure: call.failed(error); a timer or the stack's timeout: call.timed_out(now);
//!              a new connection not ready by watch.connect_deadline(): call.connect_timed_out())
//!             if let Some(result) = call.take_result() { return result }  -- ended: no poll needed
//!         }
//!         Step::Sleep(until) => sleep until then
//!         Step::Token(rejected) => lock the client's TokenSlot, log in if it says so; call.token(..)
//!         Step::RefreshUrl => getMedia; call.refreshed(..)
//!         Step::Done(result) => return result
//!     }
//! }
//! ```
//!
//! Time comes in as arguments ([`Now`], `Duration`s): nothing here reads a clock.
//!
//! ```
//! use std::time::Duration;
//! use nx_protocol::call::{Call, Now, Read, Step};
//! use nx_protocol::config::ClientConfig;
//! use nx_protocol::error::Error;
//! use nx_protocol::wa::GetMedia;
//! use nx_protocol::{Credentials, Timestamp};
//!
//! let config = ClientConfig::new(Credentials::new("key", "secret"), "doc/1.0");
//! let op = GetMedia::new("8615800001795", "fd81acff-eea8-4d9d-acc9-6c62904d6615");
//! let mut call = Call::api(&op, &config, Default::default());
//! // The monotonic clock as the time since an origin the driver fixed; the wall clock.
//! let now = |ms: u64| Now { at: Duration::from_millis(ms), wall: Timestamp::from_millis(1_700_000_000_000 + ms) };
//!
//! let Step::Send(request) = call.poll(now(0)) else { unreachable!() };
//! assert_eq!(request.uri().path(), "/api/wa/getMedia");
//! // The gateway answers 503: retried after a short wait.
//! let head = http::HeaderMap::new();
//! let Read::Whole { max } = call.head(http::StatusCode::SERVICE_UNAVAILABLE, &head, now(5).at) else { unreachable!() };
//! assert_eq!(max, 1024 * 1024);
//! call.whole(http::StatusCode::SERVICE_UNAVAILABLE, &head, b"<html>busy</html>", now(5).at);
//! let Step::Sleep(until) = call.poll(now(5)) else { unreachable!() };
//! assert!(until <= now(205).at);
//! let Step::Send(_) = call.poll(now(205)) else { unreachable!() };
//! // The second attempt gets no answer: its timer fires at the watch's deadline.
//! let deadline = call.watch().deadline();
//! assert_eq!(deadline, now(205).at + Duration::from_secs(30));
//! call.timed_out(deadline);
//! let Step::Sleep(_) = call.poll(now(30_205)) else { unreachable!() };
//! ```

pub mod framing;
mod kind;
pub mod timing;

#[cfg(test)]
mod tests;

use std::time::Duration;

use http::{HeaderMap, StatusCode};

use crate::body::OutgoingBody;
use crate::config::{ClientConfig, OnPremConfig};
use crate::download::{DownloadCheck, DownloadOptions, Sha256State};
use crate::error::{Error, ResponseError};
use crate::onprem::{Login, OnPremOperation, RetrieveMedia, Token};
use crate::operation::Operation;
use crate::policy::clock::{ClockOffset, correction_after_1004};
use crate::policy::retry::{AttemptFailure, RetryContext, RetryDecision, RetryPolicy};
use crate::time::Timestamp;
use crate::wa::MediaInfo;

pub use kind::{Api, DOWNLOAD_ERROR_BODY, Fetch, Kind, OnPrem, Retrieve};
pub use timing::{Limit, Phase, StallProtection, Timing, Watch};

/// The time as the driver read it for a step: the monotonic clock for limits, the wall clock for
/// signatures, URL and token expiry.
#[derive(Clone, Copy, Debug)]
pub struct Now {
    /// The monotonic clock: the time since an origin the driver fixed (every instant this
    /// machine hands back, a deadline or a wake time, is on the same line).
    pub at: Duration,
    /// The wall clock.
    pub wall: Timestamp,
}

/// What the driver does next.
#[derive(Debug)]
#[must_use]
// `Send` is the step of every attempt: boxing its request would allocate once per attempt.
#[allow(clippy::large_enum_variant)]
pub enum Step<T> {
    /// Send this request (a streamed part from the call's upload source) within
    /// [`Call::watch`]'s limits, then feed [`Call::head`] or [`Call::failed`].
    Send(http::Request<OutgoingBody>),
    /// Sleep until then, and poll again.
    Sleep(Duration),
    /// On-Premises: find the token to send (logging in if the client's
    /// [`crate::onprem::TokenSlot`] says so; `rejected` is the one a 401 refused) and feed it to
    /// [`Call::token`].
    Token {
        /// The token the server refused, if this follows a 401.
        rejected: Option<Token>,
    },
    /// NXCloud download: fetch a fresh URL (getMedia) and feed it to [`Call::refreshed`].
    RefreshUrl,
    /// The call ended.
    Done(Result<T, Error>),
}

impl<T> Step<T> {
    /// The result of a call whose driving ended with this step: a [`Step::Done`]'s, or an error
    /// for a step the driver could not take (a call that asks for a token or a URL where its
    /// client has none to give).
    pub fn into_result(self) -> Result<T, Error> {
        match self {
            Step::Done(result) => result,
            _ => Err(Error::Config(
                "the call asked for a step its client cannot take (a transport bug)".into(),
            )),
        }
    }
}

/// How to read an answer's body, after its head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    /// Read it whole, at most `max` bytes (more is [`Error::AnswerTooLarge`]), and feed it to
    /// [`Call::whole`].
    Whole {
        /// The most bytes to read.
        max: u64,
    },
    /// Stream it: feed each chunk to [`Call::chunk`] before writing it, then [`Call::end`].
    Stream,
    /// Do not read it: the call knows already (poll).
    Skip,
}

/// Where a call is.
#[derive(Debug)]
enum State<T> {
    Start,
    Ready,
    Sleeping(Duration),
    InFlight,
    /// The attempt failed; with the answer's `Date` header (for a 1004).
    Failed(Error, Option<String>),
    /// A token must be found before the next attempt (after a 401: with the error to report if
    /// none can be).
    NeedToken(Option<Token>, Option<Error>),
    NeedUrl,
    Done(Result<T, Error>),
    Taken,
}

/// One call, from its first request to its result. Make one with [`Call::api`],
/// [`Call::onprem`], [`Call::login`], [`Call::download`] or [`Call::retrieve`], and drive it
/// as the [module](self) shows.
#[derive(Debug)]
pub struct Call<K: Kind> {
    kind: K,
    timing: Timing,
    policy: RetryPolicy,
    ctx: RetryContext,
    /// The body can be sent again (no one-shot reader was consumed).
    resendable: bool,
    /// A media transfer, and the most bytes it may move (the size for its deadline).
    transfer: Option<u64>,
    streams_body: bool,
    /// A failed attempt's bytes can be taken back (a temporary file per attempt).
    rewindable: bool,
    /// Bytes reached a writer that cannot be rewound.
    delivered: bool,
    attempt: u32,
    /// The jitter's random state.
    seed: u64,
    clock: ClockOffset,
    clock_changed: bool,
    /// The previous attempt's `ts` under the current clock offset (see [`Call::stamp`]).
    last_ts: Option<Timestamp>,
    token: Option<Token>,
    /// When the call began (its first poll).
    started: Option<Duration>,
    /// The call's deadline, and its budget (fixed with the first request).
    deadline: Option<(Duration, Duration)>,
    /// The limits of the attempt in progress (idle before the first: `attempt` is 0).
    watch: Watch,
    state: State<K::Output>,
    /// A download's checks and the caller's options.
    check: Option<DownloadCheck>,
    options: Option<(DownloadOptions, u64)>,
    /// An error answer's head of a transfer, whose body is read only for the message.
    error_head: Option<(StatusCode, HeaderMap)>,
}

/// What a call needs to know about its client besides the operation.
#[derive(Clone, Copy, Debug, Default)]
pub struct Upload {
    /// The body streams a caller's source that cannot be read twice (a one-shot reader).
    pub one_shot: bool,
}

impl<'a, O: Operation + ?Sized> Call<Api<'a, O>> {
    /// A call of any NXCloud `op` with `config`'s credentials and limits. `upload` says whether
    /// its streamed body can be read again.
    pub fn api(op: &'a O, config: &'a ClientConfig, upload: Upload) -> Self {
        let idempotent = op.is_idempotent();
        Call::new(
            Api::new(op, config),
            &config.transport,
            idempotent,
            false,
            upload,
        )
    }

    /// Starts with the client's clock correction (learned from earlier calls).
    ///
    /// A setter rather than a by-value builder: the machine is large, and each move of it
    /// costs a copy per call.
    pub fn set_clock(&mut self, clock: ClockOffset) -> &mut Self {
        self.clock = clock;
        self
    }

    /// The clock correction, when this call changed it (after a 1004): the client keeps it.
    pub fn clock_changed(&self) -> Option<ClockOffset> {
        self.clock_changed.then_some(self.clock)
    }
}

impl<'a, O: OnPremOperation + ?Sized> Call<OnPrem<'a, O>> {
    /// A call of any On-Premises `op` carrying the client's token ([`Step::Token`]).
    pub fn onprem(op: &'a O, config: &'a OnPremConfig, upload: Upload) -> Self {
        let kind = OnPrem::bearer(op, config);
        Call::new(kind, &config.transport, op.is_idempotent(), true, upload)
    }
}

impl<'a> Call<OnPrem<'a, Login>> {
    /// A login with `username` and `password` (Basic auth).
    pub fn login(
        op: &'a Login,
        config: &'a OnPremConfig,
        username: &'a str,
        password: &'a crate::AccessSecret,
    ) -> Self {
        let kind = OnPrem::basic(op, config, username, password);
        Call::new(
            kind,
            &config.transport,
            op.is_idempotent(),
            true,
            Upload::default(),
        )
    }
}

impl<'a> Call<Fetch<'a>> {
    /// A download of `info`'s URL with `config`'s limits; `refresh` when a fresh URL can be
    /// fetched (the caller gave a media id), `rewindable` when the target is a fresh temporary
    /// file per attempt (then a failed attempt can be retried whatever it wrote).
    pub fn download(
        info: MediaInfo,
        config: &'a ClientConfig,
        options: DownloadOptions,
        refresh: bool,
        rewindable: bool,
    ) -> Self {
        let max = config.transport.max_download_bytes;
        let kind = Fetch::new(info, &config.transport, refresh);
        let mut call = Call::new(kind, &config.transport, true, false, Upload::default());
        call.set_download(options, max, rewindable);
        call
    }
}

impl<'a> Call<Retrieve<'a>> {
    /// An On-Premises retrieve, as [`Call::download`] (the token as [`Call::onprem`]).
    pub fn retrieve(
        op: &'a RetrieveMedia,
        config: &'a OnPremConfig,
        options: DownloadOptions,
        rewindable: bool,
    ) -> Self {
        let max = config.transport.max_download_bytes;
        let kind = Retrieve::new(op, config);
        let mut call = Call::new(kind, &config.transport, true, true, Upload::default());
        call.set_download(options, max, rewindable);
        call
    }
}

impl<K: Kind> Call<K> {
    /// The one constructor the public ones share. `upload`: a one-shot body makes the call
    /// non-idempotent, and once an attempt consumed it nothing is resent, whatever the failure:
    /// the call ends with that failure rather than with "cannot be sent twice".
    fn new(
        kind: K,
        transport: &crate::config::TransportConfig,
        idempotent: bool,
        on_premises: bool,
        upload: Upload,
    ) -> Self {
        let timing = Timing::of(transport);
        Self {
            kind,
            watch: Watch::idle(&timing),
            timing,
            policy: transport.retry.clone(),
            ctx: RetryContext {
                idempotent: idempotent && !upload.one_shot,
                on_premises,
                ..RetryContext::default()
            },
            resendable: !upload.one_shot,
            transfer: None,
            streams_body: false,
            rewindable: false,
            delivered: false,
            attempt: 0,
            seed: 0,
            clock: ClockOffset::ZERO,
            clock_changed: false,
            last_ts: None,
            token: None,
            started: None,
            deadline: None,
            state: State::Start,
            check: None,
            options: None,
            error_head: None,
        }
    }

    fn set_download(&mut self, options: DownloadOptions, max: u64, rewindable: bool) {
        self.transfer = Some(options.max_bytes_or(max));
        self.options = Some((options, max));
        self.rewindable = rewindable;
    }

    /// Seeds the retry waits' jitter (pass a fresh random `u64` per call: calls that failed
    /// together must not come back together). Set it before the first poll.
    pub fn set_seed(&mut self, seed: u64) -> &mut Self {
        self.seed = seed;
        self
    }

    /// The URL a download fetches (it shows its query as `<redacted>`), for the driver's log.
    pub fn download_url(&self) -> Option<&crate::wa::DownloadUrl> {
        self.kind.url()
    }

    /// The attempt in progress (1-based; 0 before the first).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The limits of the attempt in progress.
    ///
    /// # Panics
    ///
    /// Before the first [`Step::Send`] (a driver bug).
    pub fn watch(&mut self) -> &mut Watch {
        assert!(
            self.attempt > 0,
            "Call::watch is asked for after Step::Send"
        );
        &mut self.watch
    }

    /// What to do next, at `now`.
    pub fn poll(&mut self, now: Now) -> Step<K::Output> {
        loop {
            match std::mem::replace(&mut self.state, State::Taken) {
                // The first poll goes on to its first attempt in the same pass.
                State::Start | State::Ready => {
                    self.started.get_or_insert(now.at);
                    if self.kind.bearer() && self.token.is_none() {
                        self.state = State::NeedToken(None, None);
                        continue;
                    }
                    if self.kind.wants_fresh_url(None, now.wall) {
                        self.state = State::NeedUrl;
                        continue;
                    }
                    return self.send(now);
                }
                State::Sleeping(until) if now.at < until => {
                    self.state = State::Sleeping(until);
                    return Step::Sleep(until);
                }
                State::Sleeping(_) => self.state = State::Ready,
                State::Failed(error, date) => self.decide(error, date.as_deref(), now),
                State::NeedToken(rejected, error) => {
                    self.state = State::NeedToken(None, error);
                    return Step::Token { rejected };
                }
                State::NeedUrl => {
                    self.state = State::NeedUrl;
                    return Step::RefreshUrl;
                }
                State::Done(result) => return Step::Done(result),
                State::InFlight | State::Taken => {
                    return Step::Done(Err(Error::Config(
                        "the call was polled while an attempt was in flight, or after its \
                         result was taken (a transport bug)"
                            .into(),
                    )));
                }
            }
        }
    }

    /// An attempt's `ts`: the wall clock with the client's correction, and later than the
    /// previous attempt's. "A retry is a new request: new `ts`, new `sign`"
    /// (nxcloud-signing.md), also when a retry's wait (full jitter, which may be 0) or a wall
    /// clock stepped back would give it the previous attempt's millisecond: it then takes the
    /// next one, which stays far inside the server's 60 s window.
    fn stamp(&mut self, wall: Timestamp) -> Timestamp {
        let ts = match (self.clock.apply(wall), self.last_ts) {
            (ts, Some(last)) if ts <= last => Timestamp::from_millis(last.as_millis() + 1),
            (ts, _) => ts,
        };
        self.last_ts = Some(ts);
        ts
    }

    fn send(&mut self, now: Now) -> Step<K::Output> {
        self.attempt += 1;
        self.check = None;
        self.error_head = None;
        let ts = self.stamp(now.wall);
        let request = match self.kind.request(ts, self.token.as_ref()) {
            Ok(request) => request,
            Err(error) => return Step::Done(Err(error)),
        };
        let deadline = match self.deadline {
            Some(deadline) => deadline,
            None => {
                // A streamed request body is a media upload: a transfer of its length.
                if let OutgoingBody::Streamed(body) = request.body() {
                    self.streams_body = true;
                    self.transfer = Some(body.content_length());
                }
                let budget = self.timing.call_budget(self.transfer);
                let deadline = (self.started.unwrap_or(now.at) + budget, budget);
                self.deadline = Some(deadline);
                deadline
            }
        };
        self.watch.begin(
            &self.timing,
            now.at,
            deadline,
            self.transfer.is_some(),
            self.transfer.filter(|_| self.streams_body),
        );
        self.state = State::InFlight;
        Step::Send(request)
    }

    /// What follows the failed attempt.
    fn decide(&mut self, error: Error, date: Option<&str>, now: Now) {
        self.state = State::Ready;
        // Each attempt asks for the token afresh (it may have been renewed meanwhile).
        let sent_token = self.token.take();
        if self.delivered {
            // A writer cannot be rewound: nothing is resent once bytes reached it.
            return self.finish(Err(error));
        }
        if self.kind.wants_fresh_url(error.status(), now.wall) {
            self.state = State::NeedUrl;
            return;
        }
        let Some(failure) = error.attempt_failure() else {
            return self.finish(Err(error));
        };
        if !self.resendable {
            return self.finish(Err(error));
        }
        let (deadline, _) = self.deadline.unwrap_or((now.at, Duration::ZERO));
        match self
            .policy
            .decide(self.attempt, failure, self.ctx, splitmix(&mut self.seed))
        {
            RetryDecision::GiveUp => self.finish(Err(error)),
            RetryDecision::Retry { delay } if now.at + delay >= deadline => {
                self.finish(Err(error));
            }
            RetryDecision::Retry { delay } => self.state = State::Sleeping(now.at + delay),
            RetryDecision::CorrectClockAndRetry => {
                self.ctx.clock_corrected = true;
                match correction_after_1004(date, now.wall) {
                    Ok(offset) => {
                        self.clock = offset;
                        self.clock_changed = true;
                        // The new offset rules the next `ts` alone, even when it moves it back.
                        self.last_ts = None;
                    }
                    Err(e) => self.finish(Err(Error::Clock(e))),
                }
            }
            RetryDecision::ReauthenticateAndRetry => {
                self.ctx.reauthenticated = true;
                match sent_token {
                    Some(rejected) if self.kind.bearer() => {
                        self.state = State::NeedToken(Some(rejected), Some(error));
                    }
                    _ => self.finish(Err(error)),
                }
            }
        }
    }

    fn finish(&mut self, result: Result<K::Output, Error>) {
        self.state = State::Done(result);
    }

    fn fail(&mut self, error: Error, date: Option<String>) {
        if matches!(self.state, State::InFlight) {
            self.state = State::Failed(self.named(error), date);
        }
    }

    /// `error` naming the attempt's server where it should and does not yet: a timeout's
    /// host and proxy, and the host of a connect or TLS error a transport left empty (it need
    /// not keep the request's URI for that). Built here, from the call's own URL, only when an
    /// attempt failed: a call that succeeds never builds a host's name.
    fn named(&self, error: Error) -> Error {
        let target = || self.kind.origin();
        match error {
            Error::Timeout {
                phase,
                limit,
                after,
                host: None,
                proxy: _,
            } if phase != Phase::Notification => {
                let target = target();
                Error::Timeout {
                    phase,
                    limit,
                    after,
                    host: target.as_ref().map(crate::error::peer),
                    proxy: target.as_ref().and_then(|target| {
                        let proxy = self.kind.transport().proxy.proxy_for(target);
                        proxy.map(crate::proxy::ProxyUrl::authority)
                    }),
                }
            }
            Error::Connect { host, source } if host.is_empty() => Error::Connect {
                host: target().map_or(host, |target| crate::error::peer(&target)),
                source,
            },
            Error::Tls { host, source } if host.is_empty() => Error::Tls {
                host: target().map_or(host, |target| crate::error::peer(&target)),
                source,
            },
            error => error,
        }
    }

    /// The token to send ([`Step::Token`]): `Ok(None)` when there is none to be had (a token
    /// the caller gave was refused), an error when logging in failed.
    pub fn token(&mut self, token: Result<Option<Token>, Error>) {
        let State::NeedToken(_, refused) = std::mem::replace(&mut self.state, State::Ready) else {
            return;
        };
        match token {
            Ok(Some(token)) => self.token = Some(token),
            Ok(None) => {
                self.finish(Err(refused.unwrap_or_else(|| {
                    Error::Config("no On-Premises token to send".into())
                })))
            }
            Err(error) => self.finish(Err(error)),
        }
    }

    /// The fresh URL ([`Step::RefreshUrl`]), or why getMedia failed.
    pub fn refreshed(&mut self, info: Result<MediaInfo, Error>) {
        if !matches!(self.state, State::NeedUrl) {
            return;
        }
        match info {
            Ok(info) => {
                self.kind.refreshed(info);
                self.state = State::Ready;
            }
            Err(error) => self.finish(Err(error)),
        }
    }

    /// The request's body was sent at `now` (a streamed upload's last byte went out).
    pub fn sent(&mut self, now: Duration) {
        self.watch.sent(now);
    }

    /// `n` more bytes of the request's streamed body went out by `now`: `false` when a limit
    /// passed (stalled-stream protection) and the attempt failed.
    pub fn progress(&mut self, n: u64, now: Duration) -> bool {
        match self.watch.moved(n, now) {
            Err(error) => {
                self.fail(error, None);
                false
            }
            Ok(()) => true,
        }
    }

    /// The call's result, once it ended: what the next [`Call::poll`] would return as
    /// [`Step::Done`], taken without one (so without reading the clock for it). A driver asks
    /// after feeding an attempt's answer; `None` while the call goes on, and after a failed
    /// attempt, which the next poll decides on (retry or end).
    pub fn take_result(&mut self) -> Option<Result<K::Output, Error>> {
        if !matches!(self.state, State::Done(_)) {
            return None;
        }
        match std::mem::replace(&mut self.state, State::Taken) {
            State::Done(result) => Some(result),
            _ => None,
        }
    }

    /// The error the last attempt failed with, while the call goes on or once it ended with
    /// it (for the driver's log).
    pub fn failure(&self) -> Option<&Error> {
        match &self.state {
            State::Failed(error, _) | State::Done(Err(error)) => Some(error),
            _ => None,
        }
    }

    /// The answer's head arrived at `now`: how to read its body.
    pub fn head(&mut self, status: StatusCode, headers: &HeaderMap, now: Duration) -> Read {
        if !matches!(self.state, State::InFlight) {
            return Read::Skip;
        }
        if let Err(what) = crate::head::framing(headers) {
            self.fail(ResponseError::malformed(status, what, b"").into(), None);
            return Read::Skip;
        }
        let read = self.kind.head(status, headers);
        let media = matches!(read, Ok(Read::Stream));
        // Only a streamed body's announced length is read: it sizes the download checks and
        // narrows the deadline, and its phase turns to trailers once that much arrived. A body
        // read whole is capped by `max` and the attempt's limit, and nothing counts its bytes
        // (its phase stays `Body`), so its `Content-Length` would change nothing.
        let announced = if media {
            crate::head::content_length(headers)
        } else {
            None
        };
        self.watch.head(now, announced, media);
        match read {
            Ok(Read::Stream) => match &self.options {
                Some((options, max)) => match options.check(*max, announced) {
                    Ok(check) => {
                        self.check = Some(check);
                        self.narrow_to(announced);
                        Read::Stream
                    }
                    Err(e) => {
                        self.fail(e.into(), None);
                        Read::Skip
                    }
                },
                None => {
                    self.fail(
                        Error::Config("a stream without download options".into()),
                        None,
                    );
                    Read::Skip
                }
            },
            Ok(Read::Whole { max }) => {
                if self.options.is_some() {
                    self.error_head = Some((status, headers.clone()));
                }
                Read::Whole { max }
            }
            Ok(Read::Skip) => Read::Skip,
            Err(error) => {
                self.fail(error, None);
                Read::Skip
            }
        }
    }

    /// A download's deadline once its length is known: `overall_timeout` plus the announced
    /// length (none when unannounced) at the floor rate, rather than its size cap's.
    fn narrow_to(&mut self, announced: Option<u64>) {
        let (Some(started), Some(cap)) = (self.started, self.transfer) else {
            return;
        };
        let budget = self
            .timing
            .call_budget(Some(announced.map_or(0, |len| len.min(cap))));
        let deadline = (started + budget, budget);
        if self
            .deadline
            .is_some_and(|(current, _)| deadline.0 < current)
        {
            self.deadline = Some(deadline);
        }
        self.watch.narrow_to(deadline);
    }

    /// The whole body of an answer [`Read::Whole`] asked for.
    pub fn whole(&mut self, status: StatusCode, headers: &HeaderMap, body: &[u8], now: Duration) {
        if !matches!(self.state, State::InFlight) {
            return;
        }
        if let Err(error) = self.watch.check(now) {
            return self.fail(error, None);
        }
        match self.kind.whole(status, headers, body) {
            Ok(output) => self.finish(Ok(output)),
            Err(error) => {
                let date = match &error {
                    Error::Response(r) if r.api_code().is_some_and(|c| c.is_clock_skew()) => {
                        crate::head::date(headers).map(str::to_owned)
                    }
                    _ => None,
                };
                self.fail(error, date);
            }
        }
    }

    /// A chunk of a streamed body arrived at `now`: `true` when the driver may write it (the
    /// checks and limits passed), `false` when the attempt failed (poll).
    pub fn chunk(&mut self, chunk: &[u8], now: Duration) -> bool {
        let Some(check) = &mut self.check else {
            return false;
        };
        if let Err(e) = check.update(chunk) {
            self.fail(e.into(), None);
            return false;
        }
        if let Err(error) = self.watch.moved(chunk.len() as u64, now) {
            self.fail(error, None);
            return false;
        }
        if let Some((options, _)) = &mut self.options {
            options.report(check);
        }
        self.delivered |= !self.rewindable;
        true
    }

    /// Takes the streamed download's running SHA-256 out (`None` when none is computed, or no
    /// body is being read), for a driver that computes it on another thread: [`Call::chunk`]
    /// then checks lengths and limits only, and [`Call::end`] fails the attempt unless
    /// [`Call::give_sha256`] handed it back, fed every byte since, in order.
    pub fn take_sha256(&mut self) -> Option<Sha256State> {
        self.check.as_mut()?.take_sha256()
    }

    /// Hands back the SHA-256 [`Call::take_sha256`] took out, before [`Call::end`].
    pub fn give_sha256(&mut self, sha256: Sha256State) {
        if let Some(check) = &mut self.check {
            check.give_sha256(sha256);
        }
    }

    /// The driver's timer came ([`Watch::wake_at`]) with nothing new: `false` when a limit
    /// passed and the attempt failed (poll).
    pub fn tick(&mut self, now: Duration) -> bool {
        match self.watch.check(now) {
            Err(error) => {
                self.fail(error, None);
                false
            }
            Ok(()) => true,
        }
    }

    /// The streamed body ended at `now`: `true` when it passed every check (then finish the
    /// writer: flush, or commit the temporary file, and feed any failure to [`Call::failed`]).
    pub fn end(&mut self, now: Duration) -> bool {
        let Some(check) = self.check.take() else {
            return false;
        };
        if let Err(error) = self.watch.check(now) {
            self.fail(error, None);
            return false;
        }
        match check.finish() {
            Ok(verified) => {
                let output = self.kind.streamed(verified);
                let ok = output.is_ok();
                self.finish(output);
                ok
            }
            Err(e) => {
                self.fail(e.into(), None);
                false
            }
        }
    }

    /// The attempt failed with `error` (the connection, the body's I/O, the writer). A
    /// transport's own error inside it is kept as a [`crate::error::RedactedError`]: HTTP stacks
    /// may quote the URL, and a download URL's query is a secret. An [`Error::Connect`] or
    /// [`Error::Tls`] whose `host` is empty gets the attempt's (its URL's host and port), as
    /// every timeout gets its host and proxy.
    pub fn failed(&mut self, error: Error) {
        let error = error.with_redacted_source();
        if let State::Done(Ok(_)) = self.state {
            // The writer failed after the checks passed: the call fails with it.
            self.state = State::Done(Err(error));
            return;
        }
        if let Some((status, headers)) = self.error_head.take()
            && !matches!(error, Error::Timeout { .. })
        {
            // An error answer's body is read for its message only: without it, the status
            // still says what went wrong.
            let error = self
                .kind
                .whole(status, &headers, b"")
                .err()
                .unwrap_or(error);
            return self.fail(error, None);
        }
        self.fail(error, None);
    }

    /// A timer, or the HTTP stack's own timeout, fired at `now`: the attempt failed with the
    /// limit that passed.
    pub fn timed_out(&mut self, now: Duration) {
        if !matches!(self.state, State::InFlight) {
            return;
        }
        let error = self.watch.expired(now);
        self.fail(error, None);
    }

    /// The connection the attempt was opening (resolving, TCP, a proxy's `CONNECT`, TLS) was not
    /// ready by [`Watch::connect_deadline`]: the attempt failed in [`Phase::Connect`], before
    /// any byte of the request was written (so even a call that is not idempotent may be
    /// resent).
    pub fn connect_timed_out(&mut self) {
        if matches!(self.state, State::InFlight) {
            let error = self.watch.connect_expired();
            self.fail(error, None);
        }
    }

    /// The HTTP stack's per-read or per-write limit, set to the stall grace period, fired: the
    /// body moved nothing for that long.
    pub fn stalled(&mut self) {
        if matches!(self.state, State::InFlight) {
            let error = self.watch.stalled();
            self.fail(error, None);
        }
    }
}

/// The next value of a splitmix64 sequence: the jitter's randomness, from the seed the driver
/// gave ([`Call::set_seed`]).
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Error {
    /// How the retry policy sees this error; `None` for errors no retry can help (bad input,
    /// TLS, local I/O, integrity, configuration, an oversize answer) and for a stalled stream:
    /// a body that moved slower than the floor for the whole grace period ends the call there
    /// (issue 14: "fails within the grace period"), rather than being given the same wait again
    /// on each retry.
    pub fn attempt_failure(&self) -> Option<AttemptFailure<'_>> {
        match self {
            Error::Timeout {
                limit: Limit::Stall,
                ..
            } => None,
            // Nothing of the request was written before its connection was ready.
            Error::Connect { .. }
            | Error::Timeout {
                phase: Phase::Connect,
                ..
            } => Some(AttemptFailure::Connect),
            Error::Timeout { .. } => Some(AttemptFailure::Timeout),
            Error::Transport { .. } => Some(AttemptFailure::Transport),
            Error::Response(response) => Some(AttemptFailure::Response(response)),
            _ => None,
        }
    }
}
