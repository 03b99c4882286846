//! Every time limit of a call, decided once for both transports: what bounds a call, an attempt,
//! an answer's head and a stalled stream, and which limit a timeout was.
//!
//! The bounds (defaults in [`crate::config::TransportConfig`]):
//!
//! | bound | setting | what it limits |
//! | --- | --- | --- |
//! | connect | `connect_timeout` (10 s) | a new connection: everything before the request's first byte can be written (below) |
//! | attempt | `request_timeout` (30 s) | an API call's attempt, from sending to the answer's last byte; a media transfer's answer head after the request was sent, and an error answer's body |
//! | stall | `stalled_stream` (20 s below 1 B/s) | a media body (upload or download) moving slower than the floor over the grace period |
//! | call | `overall_timeout` (120 s) | the whole call: every attempt, retry wait and transfer |
//! | transfer | `min_transfer_rate` (256 KiB/s) | a media transfer's call deadline is `overall_timeout` plus its size at this rate: an upload's length; a download's announced length (none if unannounced) |
//!
//! Why a rate and not one more timeout: a large file on a slow link needs more than a small
//! API call, and a deadline that grows with the size keeps both bounded by one rule. Any
//! transfer that sustains the floor rate fits; a server that drips, stalls or sends bytes
//! without end is cut at a deadline that its own announced length fixed (a body of unannounced
//! length, such as an endless chunked stream, gets `overall_timeout` alone). Until a download's
//! head arrives its deadline is the loosest its size cap allows; the head narrows it.
//!
//! The connect limit covers resolving the host, TCP, a proxy's `CONNECT` request and its whole
//! answer head, and the TLS handshake (with the origin, through the tunnel): a silent TLS peer,
//! a proxy that never answers, or a middlebox that stalls a handshake fails at
//! `connect_timeout`, in [`Phase::Connect`], not at the answer's limit. It runs from the
//! attempt's start (a transport's connector starts then), capped at the attempt's deadline as
//! every limit is: [`Watch::connect_deadline`]. Only the transport knows whether an attempt
//! opens a connection (a pooled one is reused silently, and has no connect phase), so it bounds
//! its connector itself and reports its expiry ([`crate::call::Call::connect_timed_out`]); the
//! watch names the limit. Once connected, the attempt's other limits run on as before.
//!
//! A transport hands the attempt's [`Watch::deadline`] to its HTTP stack as a hard limit (ureq's
//! global timeout, a tokio timer) and wakes at [`Watch::wake_at`] to let the watch check the
//! others, so a call ends with an [`Error::Timeout`] naming the phase, the limit and the server
//! soon after the limit passed, whatever the server does.

use std::fmt;
use std::time::Duration;

use crate::config::TransportConfig;
use crate::error::Error;

/// Stalled-stream protection, as aws-sdk-rust's `StalledStreamProtectionConfig` has it: a media
/// body (an upload's request body or a download's answer body) that moves fewer than
/// `min_bytes_per_sec` on average over `grace` fails with a [`Limit::Stall`] timeout. A body that
/// drips one byte every two seconds fails after the grace period, not at the call's deadline.
///
/// Throughput is measured in tenths of the grace period, so a stall is noticed at most a tenth
/// of `grace` after the window in which it happened ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct StallProtection {
    /// How long a body may move slower than `min_bytes_per_sec` (default 20 s).
    pub grace: Duration,
    /// The floor, in bytes per second (default 1).
    pub min_bytes_per_sec: u64,
}

impl StallProtection {
    /// aws-sdk-rust's defaults: 20 s below 1 B/s.
    pub const DEFAULT: Self = Self {
        grace: Duration::from_secs(20),
        min_bytes_per_sec: 1,
    };

    /// Fails a body moving fewer than `min_bytes_per_sec` on average over `grace`.
    pub const fn new(grace: Duration, min_bytes_per_sec: u64) -> Self {
        Self {
            grace,
            min_bytes_per_sec,
        }
    }

    /// Bytes a window of `grace` must see.
    fn need(&self) -> u64 {
        let millis = u64::try_from(self.grace.as_millis()).unwrap_or(u64::MAX);
        self.min_bytes_per_sec.saturating_mul(millis) / 1000
    }
}

impl Default for StallProtection {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Where a call was when a limit passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// Making a new connection: resolving the host, TCP, a proxy's `CONNECT` exchange and the
    /// TLS handshake; everything before the request's first byte can be written. Bounded by
    /// `connect_timeout` ([`Limit::Connect`]). A reused (pooled) connection has no such phase.
    Connect,
    /// Sending the request and its body.
    Request,
    /// Waiting for the answer's status line and headers (1xx answers included).
    Headers,
    /// Receiving the answer's body.
    Body,
    /// The announced body had arrived; reading what follows it (chunked trailers).
    Trailers,
    /// Waiting for an On-Premises media notification (not an HTTP call).
    Notification,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Connect => "connecting",
            Phase::Request => "sending the request",
            Phase::Headers => "waiting for the answer's headers",
            Phase::Body => "receiving the answer's body",
            Phase::Trailers => "reading the answer's trailers",
            Phase::Notification => "waiting for the media notification",
        })
    }
}

/// Which limit passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Limit {
    /// `connect_timeout`: a new connection, up to the request's first byte ([`Phase::Connect`]).
    Connect,
    /// `request_timeout`: one attempt, or a transfer's answer head.
    Attempt,
    /// The call's deadline: `overall_timeout`, plus a transfer's allowance.
    Call,
    /// Stalled-stream protection: the body moved too slowly for the grace period.
    Stall,
    /// The limit the caller gave this wait.
    Wait,
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Limit::Connect => "the connect limit (connect_timeout)",
            Limit::Attempt => "the attempt's limit (request_timeout)",
            Limit::Call => "the call's deadline (overall_timeout)",
            Limit::Stall => "the stalled-stream grace period",
            Limit::Wait => "the wait's limit",
        })
    }
}

/// The time limits of a client, read once from its [`TransportConfig`].
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    connect: Duration,
    attempt: Duration,
    overall: Duration,
    min_transfer_rate: Option<u64>,
    stall: Option<StallProtection>,
}

impl Timing {
    /// The limits `config` sets.
    pub fn of(config: &TransportConfig) -> Self {
        Self {
            connect: config.connect_timeout,
            attempt: config.request_timeout,
            overall: config.overall_timeout,
            min_transfer_rate: config.min_transfer_rate.filter(|rate| *rate > 0),
            stall: config.stalled_stream,
        }
    }

    /// How long a call may take: `overall_timeout`, plus `transfer` bytes at the floor rate.
    pub fn call_budget(&self, transfer: Option<u64>) -> Duration {
        let extra = match (transfer, self.min_transfer_rate) {
            (Some(bytes), Some(rate)) => Duration::from_millis(bytes.saturating_mul(1000) / rate),
            _ => Duration::ZERO,
        };
        self.overall.saturating_add(extra)
    }

    /// The stalled-stream protection in force, if any.
    pub fn stall(&self) -> Option<StallProtection> {
        self.stall
    }
}

/// The limits of one attempt, as the driver carries them out: one hard [`Watch::deadline`]
/// (hand it to the HTTP stack), and [`Watch::wake_at`], the next instant to check back if
/// nothing happens before it. The driver reports what moved; [`Watch::check`] says whether a
/// limit passed.
#[derive(Clone, Debug)]
pub struct Watch {
    deadline: Duration,
    /// What the deadline is, and how long it was.
    deadline_limit: (Limit, Duration),
    /// When a connection the attempt opens must be ready, and the connect limit.
    connect_by: Duration,
    connect: Duration,
    attempt: Duration,
    /// A media transfer: its head is limited after sending, its bodies are stall-protected.
    transfer: bool,
    head_by: Option<Duration>,
    phase: Phase,
    /// Bytes of the streamed request body not yet sent.
    body_left: u64,
    announced: Option<u64>,
    received: u64,
    meter: Option<Meter>,
    stall: Option<StallProtection>,
}

impl Watch {
    /// A watch before any attempt, whose limits never pass: [`Watch::begin`] sets it up for
    /// each.
    pub(crate) fn idle(timing: &Timing) -> Self {
        Self {
            deadline: Duration::MAX,
            deadline_limit: (Limit::Call, Duration::MAX),
            connect_by: Duration::MAX,
            connect: timing.connect,
            attempt: timing.attempt,
            transfer: false,
            head_by: None,
            phase: Phase::Request,
            body_left: 0,
            announced: None,
            received: 0,
            meter: None,
            stall: None,
        }
    }

    /// Sets the watch up for an attempt begun at `now` of a call whose deadline is
    /// `call_deadline` (which was `budget` after its start); `transfer` for a media transfer,
    /// `streamed` the length of the streamed request body it sends, if any. Every field is
    /// set afresh, in place: the watch is a few hundred bytes, and an attempt should not cost
    /// a copy of it.
    pub(crate) fn begin(
        &mut self,
        timing: &Timing,
        now: Duration,
        (call_deadline, budget): (Duration, Duration),
        transfer: bool,
        streamed: Option<u64>,
    ) {
        self.deadline = call_deadline;
        self.deadline_limit = (Limit::Call, budget);
        self.connect_by = now.saturating_add(timing.connect);
        self.connect = timing.connect;
        self.attempt = timing.attempt;
        self.transfer = transfer;
        self.head_by = None;
        self.phase = Phase::Request;
        self.body_left = streamed.unwrap_or(0);
        self.announced = None;
        self.received = 0;
        self.meter = None;
        self.stall = timing.stall.filter(|_| transfer);
        if transfer {
            if streamed.is_some() {
                self.meter = self.stall.map(|s| Meter::new(s, now));
            } else {
                self.sent(now);
            }
        } else {
            // A small request: once connected it is out at once.
            self.phase = Phase::Headers;
            self.limit_to(now + timing.attempt);
        }
    }

    fn limit_to(&mut self, end: Duration) {
        if end < self.deadline {
            self.deadline = end;
            self.deadline_limit = (Limit::Attempt, self.attempt);
        }
    }

    /// A call deadline nearer than the one the attempt began with (a download's announced
    /// length is smaller than its size cap).
    pub(crate) fn narrow_to(&mut self, (deadline, budget): (Duration, Duration)) {
        if deadline < self.deadline {
            self.deadline = deadline;
            self.deadline_limit = (Limit::Call, budget);
        }
    }

    /// Nothing of the attempt may run past this: the call's deadline, or for an API call the
    /// attempt's limit if that ends first. A download's begins as the loosest its size cap
    /// allows and narrows when its head announces its length ([`Watch::head`]): hand the
    /// deadline to the HTTP stack again after the head if it can take it.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// When a connection this attempt opens must be ready to take the request's first byte:
    /// `connect_timeout` after the attempt began, or the deadline if that comes first. Hand it
    /// to the connector (TCP, a proxy's `CONNECT`, TLS); when it passes there, feed
    /// [`crate::call::Call::connect_timed_out`]. (The attempt's other limits keep running from
    /// its start: connecting counts against them too.)
    pub fn connect_deadline(&self) -> Duration {
        self.connect_by.min(self.deadline)
    }

    /// The error for a connection not ready by [`Watch::connect_deadline`]: a
    /// [`Phase::Connect`] timeout naming the connect limit, or the deadline's limit when that
    /// was the nearer one. The watch knows no server: the call names it (host, and proxy) as
    /// the attempt fails, as for every timeout the watch makes.
    pub fn connect_expired(&self) -> Error {
        let (limit, after) = if self.connect_by <= self.deadline {
            (Limit::Connect, self.connect)
        } else {
            self.deadline_limit
        };
        Error::Timeout {
            phase: Phase::Connect,
            limit,
            after,
            host: None,
            proxy: None,
        }
    }

    /// The nearest limit that ends the attempt whatever happens meanwhile: the deadline, or the
    /// head's limit once it runs. (A stall is noticed as bytes move, or at [`Watch::wake_at`].)
    pub fn hard_limit(&self) -> Duration {
        self.head_by
            .map_or(self.deadline, |head| head.min(self.deadline))
    }

    /// The answer head's limit of a transfer, counted from when the request was sent.
    pub fn head_timeout(&self) -> Option<Duration> {
        self.transfer.then_some(self.attempt)
    }

    /// Stalled-stream protection for the bodies of this attempt, if any.
    pub fn stall(&self) -> Option<StallProtection> {
        self.stall
    }

    /// When to check back if nothing happens before: the deadline, the head's limit, or the
    /// end of the stall meter's current tenth.
    pub fn wake_at(&self) -> Duration {
        let mut at = self.deadline;
        if let Some(head) = self.head_by {
            at = at.min(head);
        }
        if let Some(meter) = &self.meter {
            at = at.min(meter.next_check());
        }
        at
    }

    /// The request, body included, was sent at `now`: the head's limit starts.
    pub fn sent(&mut self, now: Duration) {
        if self.phase != Phase::Request {
            return;
        }
        self.phase = Phase::Headers;
        self.meter = None;
        if self.transfer {
            self.head_by = Some(now + self.attempt);
        }
    }

    /// The answer's head arrived at `now`; its body follows, announced as `announced` bytes.
    /// `media`: the body is a streamed media file (stall-protected, bounded by the call's
    /// deadline); otherwise a small answer, bounded by the attempt's limit as well.
    pub fn head(&mut self, now: Duration, announced: Option<u64>, media: bool) {
        self.phase = Phase::Body;
        self.head_by = None;
        self.announced = announced;
        if media {
            self.meter = self.stall.map(|s| Meter::new(s, now));
        } else {
            self.meter = None;
            if self.transfer {
                self.limit_to(now + self.attempt);
            }
        }
    }

    /// `n` more bytes moved (sent, or received) at `now`; an error when a limit passed.
    pub fn moved(&mut self, n: u64, now: Duration) -> Result<(), Error> {
        if self.phase != Phase::Request {
            self.received += n;
        } else if n > 0 {
            self.body_left = self.body_left.saturating_sub(n);
            if self.body_left == 0 {
                // The whole body is out (a transport need not see its end).
                self.check(now)?;
                self.sent(now);
                return Ok(());
            }
        }
        if let Some(meter) = &mut self.meter {
            // Bins that ended before these bytes came are judged without them.
            if meter.stalled(now) {
                return Err(self.stalled());
            }
            meter.add(n);
        }
        self.check(now)
    }

    /// Whether a limit has passed at `now` (call it when [`Watch::wake_at`] comes).
    pub fn check(&mut self, now: Duration) -> Result<(), Error> {
        if let Some(meter) = &mut self.meter
            && meter.stalled(now)
        {
            return Err(self.stalled());
        }
        if self.head_by.is_some_and(|head| now >= head) {
            return Err(self.timeout(Limit::Attempt, self.attempt));
        }
        if now >= self.deadline {
            let (limit, after) = self.deadline_limit;
            return Err(self.timeout(limit, after));
        }
        Ok(())
    }

    /// The error for a limit the HTTP stack enforced (its timeout fired at `now`): whichever
    /// of ours has passed, else the deadline's (the stack's clock ran a little ahead).
    pub fn expired(&mut self, now: Duration) -> Error {
        match self.check(now) {
            Err(error) => error,
            Ok(()) => {
                let (limit, after) = self.deadline_limit;
                self.timeout(limit, after)
            }
        }
    }

    /// The error for a body that moved nothing for the whole grace period (the HTTP stack's
    /// per-read or per-write limit, set to [`StallProtection::grace`], fired).
    pub fn stalled(&self) -> Error {
        let grace = self.stall.map_or(self.attempt, |s| s.grace);
        self.timeout(Limit::Stall, grace)
    }

    /// The phase the attempt is in.
    pub fn phase(&self) -> Phase {
        match (self.phase, self.announced) {
            (Phase::Body, Some(len)) if self.received >= len => Phase::Trailers,
            (phase, _) => phase,
        }
    }

    fn timeout(&self, limit: Limit, after: Duration) -> Error {
        Error::Timeout {
            phase: self.phase(),
            limit,
            after,
            host: None,
            proxy: None,
        }
    }
}

/// Bins of a tenth of the grace period.
const BINS: usize = 10;

/// Throughput over the last grace period, in tenths: a window that saw fewer bytes than the
/// floor asks for is a stall. O(1) per chunk, no allocation.
#[derive(Clone, Debug)]
struct Meter {
    need: u64,
    width: Duration,
    /// When the current bin ends.
    bin_end: Duration,
    /// Bytes per finished bin (a ring), and in the current one.
    bins: [u64; BINS],
    next: usize,
    current: u64,
    /// Finished bins so far (the window is full at `BINS`).
    finished: usize,
}

impl Meter {
    fn new(stall: StallProtection, now: Duration) -> Self {
        let width = (stall.grace / BINS as u32).max(Duration::from_millis(1));
        Self {
            need: stall.need(),
            width,
            bin_end: now + width,
            bins: [0; BINS],
            next: 0,
            current: 0,
            finished: 0,
        }
    }

    fn add(&mut self, n: u64) {
        self.current = self.current.saturating_add(n);
    }

    fn next_check(&self) -> Duration {
        self.bin_end
    }

    /// Closes the bins that ended by `now` (the current one, then empty ones); a stall when the
    /// last full window saw fewer bytes than the floor asks for. Only empty bins are added after
    /// the current one, so checking at the last boundary misses no stall at an earlier one.
    fn stalled(&mut self, now: Duration) -> bool {
        if now < self.bin_end {
            return false;
        }
        let width = self.width.as_nanos().max(1);
        let ended = (now - self.bin_end).as_nanos() / width + 1;
        let ended = u32::try_from(ended).unwrap_or(u32::MAX);
        for i in 0..ended.min(BINS as u32 + 1) {
            self.bins[self.next] = if i == 0 { self.current } else { 0 };
            self.next = (self.next + 1) % BINS;
        }
        self.current = 0;
        self.finished = self.finished.saturating_add(ended as usize);
        self.bin_end += self.width.saturating_mul(ended);
        self.finished >= BINS && self.bins.iter().sum::<u64>() < self.need
    }
}
