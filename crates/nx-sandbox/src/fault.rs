//! Deterministic fault injection: rules that make chosen requests fail in chosen ways.
//!
//! ```
//! use std::time::Duration;
//! use nx_sandbox::{Fault, FaultRule, Route, Sandbox, SandboxConfig, Target};
//!
//! let sandbox = Sandbox::start(SandboxConfig::default()).unwrap();
//! // The 1st and 2nd getMedia are answered 503; the 3rd goes through.
//! sandbox.faults().add(FaultRule::new(Route::GetMedia, Fault::ServiceUnavailable).on_nth([1, 2]));
//! // Every request of any route has a reproducible 10% chance of 200 ms more latency.
//! sandbox.faults().add(
//!     FaultRule::new(Target::Any, Fault::Latency(Duration::from_millis(200))).with_probability(0.1, 42),
//! );
//! ```
//!
//! Each rule counts the requests its target matches (from 1, whether it fired or not). For one
//! request the rules are consulted in the order they were added; every matching rule counts the
//! request, and the first one whose trigger says yes fires. Admin routes (`/_sandbox/...`) and
//! unknown paths are never faulted.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::log::Route;

/// How long a fault holds one connection at most by default ([`Fault::Stall`], the drips, the
/// endless streams): the default of [`SandboxConfig::fault_hold_limit`](crate::SandboxConfig::fault_hold_limit).
/// Every such fault also ends at once on shutdown, and as soon as the sandbox notices the client
/// has gone (its next write fails, or, for the faults that write the answer by hand, the client
/// closes the connection). One case escapes the limit: a client that keeps the connection open
/// but stops reading, under a body fault hyper writes ([`Fault::Drip`], [`Fault::TinyChunks`],
/// [`Fault::ServiceUnavailableDrip`]) fast enough to fill the socket's buffers, holds it until it
/// reads or closes (hyper has no write timeout); nothing runs meanwhile.
pub const STALL_LIMIT: Duration = Duration::from_secs(300);

/// The body [`Fault::WrongTypes`] answers with: every field the clients read, with a value of
/// another JSON type than the APIs send (the envelope's `code` and `message` stay valid, so a
/// parser gets as far as `data`).
pub const WRONG_TYPES_BODY: &str = concat!(
    r#"{"code":0,"message":"Request successful","#,
    r#""data":{"mime_type":7,"file_name":["a"],"url":{"href":"http://x"},"success":"true","id":42},"#,
    r#""media":[{"id":1}],"media_items":[{"id":false}],"#,
    r#""users":[{"token":2,"expires_after":3}],"meta":"stable"}"#
);

/// Meta's error object of the vendor's 9099 example, for [`Fault::WhatsAppError`].
pub const META_INVALID_PARAMETER: &str = concat!(
    r#"{"code":100,"message":"(#100) Invalid parameter","type":"OAuthException","#,
    r#""fbtrace_id":"AmCuD7sOjcEDetBNhlT2cJm","#,
    r#""error_data":{"messaging_product":"whatsapp","details":"Invalid parameter"}}"#
);

/// What a fault does to the request it fires on.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Fault {
    /// Wait this long, then handle the request normally.
    Latency(Duration),
    /// Never answer: hold the connection until the client gives up (closes are noticed only when
    /// the sandbox next writes), the sandbox shuts down, or the hold limit ([`STALL_LIMIT`] by
    /// default) passes; then close.
    Stall,
    /// Close the connection without answering, before the request is handled.
    Reset,
    /// Handle the request (it takes effect: an upload is stored, a delete deletes), then close
    /// the connection without answering: the "did my call happen?" case.
    ResetAfterProcessing,
    /// Answer `503 Service Temporarily Unavailable` with an HTML page, as a proxy would.
    ServiceUnavailable,
    /// Answer `502 Bad Gateway` with an HTML page, as a proxy would.
    BadGateway,
    /// Answer 200 with `Content-Type: application/json` and an empty body.
    EmptyBody,
    /// Answer 200 with `Content-Type: application/json` and a body that is not valid JSON.
    InvalidJson,
    /// Answer 200 with `Content-Type: application/json` and a JSON body of the right shape whose
    /// fields hold values of the wrong JSON types: an NXCloud envelope with code 0 whose `data`
    /// fields (`mime_type`, `file_name`, `url`, `success`, `id`) are numbers, arrays, objects or
    /// strings where the API has other types, plus the On-Premises answer keys (`media`,
    /// `media_items`, `users`, `meta`) with wrongly typed contents: [`WRONG_TYPES_BODY`].
    WrongTypes,
    /// Answer the API's error shape with this code, as a server whose code list is newer than
    /// the client's would: on the NXCloud routes and the oss download, HTTP 200 with the envelope
    /// `{"code":N,"message":..,"data":null}`; on the On-Premises routes, HTTP 400 with Meta's
    /// `{"meta":..,"errors":[{"code":N,"title":..,"details":..}]}`.
    UnknownCode(i64),
    /// Handle the request, announce the answer's full `Content-Length`, send half of the body,
    /// then close the connection.
    Truncated,
    /// Handle the request, then send the answer's head at once and its body one byte per
    /// interval (the first after one interval). Ends when the body is sent, the client has gone
    /// (the next byte's write fails), on shutdown, or when the hold limit passes (the connection
    /// is then closed mid-body). One byte per 2 s is below the 1 B/s floor of stalled-stream
    /// protection; one byte per 400 ms keeps a client with a 500 ms idle limit reading.
    Drip(Duration),
    /// Handle the request, then write the answer's status line and headers one byte per interval
    /// (with `Connection: close`), then its body at once, and close. The head is written by the
    /// sandbox itself, not hyper, so it really trickles; a typical head is 100-200 bytes, so one
    /// byte per 200 ms holds a client 20-40 s in the head phase. Ends early when the client closes
    /// the connection, on shutdown, or when the hold limit passes. The request body is read (and
    /// thrown away) meanwhile, so an upload finishes sending and waits for the head.
    HeaderDrip(Duration),
    /// Handle the request, then send its answer with `Transfer-Encoding: chunked` (no
    /// `Content-Length`): the body's chunks, the last (`0`) chunk, then trailer lines
    /// (`x-sandbox-trailer-N: aaa...`, 64 bytes each), one per interval (back to back for a zero
    /// interval), never the empty line that ends them. Written by the sandbox itself; ends when the
    /// client closes the connection, on shutdown, or when the hold limit passes.
    EndlessTrailers(Duration),
    /// Never answer finally: write `HTTP/1.1 102 Processing` interim heads, one per interval
    /// (the first at once), forever. Written by the sandbox itself (the request is not handled;
    /// its body is read and thrown away); ends when the client closes the connection, on
    /// shutdown, or when the hold limit passes.
    EndlessProcessing(Duration),
    /// Handle the request, then send the answer's status and headers without `Content-Length`
    /// (so chunked) and a body of 1-byte chunks, one per interval (back to back for a zero
    /// interval): the answer's bytes, then spaces, endlessly (JSON answers stay valid JSON at
    /// every length; a download grows past its size). Ends when the client has gone (a write
    /// fails), on shutdown, or when the hold limit passes (the connection is then closed).
    TinyChunks(Duration),
    /// Handle the request, then answer `206 Partial Content` with the first part of its answer:
    /// `Content-Range: bytes 0-(k-1)/len` and `Content-Length: k`, where `len` is the answer's
    /// `Content-Length` and `k` is 100, or half of `len` for answers of 200 bytes or fewer (at
    /// least 1 byte; an empty answer becomes `bytes */0` with no body). The body ends cleanly
    /// after `k` bytes: only the status says it is not the whole representation.
    PartialContent,
    /// Handle the request (it takes effect), then answer `204 No Content` with no body, no
    /// `Content-Length` and the answer's other headers.
    NoContent,
    /// Answer `503 Service Temporarily Unavailable` with the HTML page of
    /// [`Fault::ServiceUnavailable`] (its full `Content-Length` announced), the body one byte per
    /// interval. Ends like [`Fault::Drip`].
    ServiceUnavailableDrip(Duration),
    /// Handle the request, then flip one bit of the byte in the middle of the answer's body
    /// (same length, different SHA-256): for downloads.
    CorruptBody,
    /// Answer NXCloud's 1004 (timestamp expired) with a `Date` header this many milliseconds
    /// away from the sandbox clock, as a server whose clock is off would.
    ClockSkew {
        /// How far the `Date` is from the sandbox clock (positive: ahead).
        skew_ms: i64,
    },
    /// Answer 200 with a JSON body of `bytes` bytes, streamed.
    Oversize {
        /// The body's size in bytes.
        bytes: u64,
        /// Whether to announce it with `Content-Length` (otherwise chunked, so only a reader
        /// that caps what it reads notices).
        content_length: bool,
    },
    /// Answer NXCloud's envelope with this code and the vendor's message for it, as the real
    /// service would: e.g. 9003 (application unavailable) or 9005 (insufficient balance) for
    /// mt. Unlike [`Fault::UnknownCode`], meant for codes the vendor documents.
    Code(i64),
    /// Answer mt's 9099 (a WhatsApp error) with this JSON text as Meta's error object in
    /// `data.error`, byte for byte (so a test can send odd shapes); [`META_INVALID_PARAMETER`]
    /// is the vendor's example.
    WhatsAppError(String),
    /// Answer `302 Found` with this `Location` (for the oss download).
    Redirect {
        /// Where to.
        location: String,
    },
}

impl Fault {
    /// The fault's name in the log.
    pub fn name(&self) -> &'static str {
        match self {
            Fault::Latency(_) => "latency",
            Fault::Stall => "stall",
            Fault::Reset => "reset",
            Fault::ResetAfterProcessing => "reset-after-processing",
            Fault::ServiceUnavailable => "503",
            Fault::BadGateway => "502",
            Fault::EmptyBody => "empty-body",
            Fault::InvalidJson => "invalid-json",
            Fault::WrongTypes => "wrong-types",
            Fault::UnknownCode(_) => "unknown-code",
            Fault::Truncated => "truncated",
            Fault::Drip(_) => "drip",
            Fault::HeaderDrip(_) => "header-drip",
            Fault::EndlessTrailers(_) => "endless-trailers",
            Fault::EndlessProcessing(_) => "endless-102",
            Fault::TinyChunks(_) => "tiny-chunks",
            Fault::PartialContent => "206",
            Fault::NoContent => "204",
            Fault::ServiceUnavailableDrip(_) => "503-drip",
            Fault::CorruptBody => "corrupt-body",
            Fault::ClockSkew { .. } => "clock-skew",
            Fault::Oversize { .. } => "oversize",
            Fault::Redirect { .. } => "redirect",
            Fault::Code(_) => "code",
            Fault::WhatsAppError(_) => "whatsapp-error",
        }
    }
}

/// Which requests a rule looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Target {
    /// Every request of an emulated route ([`Route::EMULATED`]).
    Any,
    /// The requests of one route.
    Route(Route),
}

impl From<Route> for Target {
    fn from(route: Route) -> Self {
        Target::Route(route)
    }
}

impl Target {
    fn matches(self, route: Route) -> bool {
        route.is_emulated()
            && match self {
                Target::Any => true,
                Target::Route(r) => r == route,
            }
    }
}

/// When a rule fires among the requests its target matches.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Trigger {
    /// On every matching request.
    Always,
    /// On the listed matching requests (1 = the first one the rule sees).
    Nth(Vec<u64>),
    /// On each matching request with probability `p`, drawn from a `fastrand` generator seeded
    /// with `seed`: the same sequence of requests fires the same way every run.
    Probability {
        /// Between 0 and 1.
        p: f64,
        /// The seed.
        seed: u64,
    },
}

/// A fault rule: target, trigger, fault.
#[derive(Clone, Debug, PartialEq)]
pub struct FaultRule {
    target: Target,
    trigger: Trigger,
    fault: Fault,
}

impl FaultRule {
    /// `fault` on every request of `target` (narrow it with the methods below).
    pub fn new(target: impl Into<Target>, fault: Fault) -> Self {
        Self {
            target: target.into(),
            trigger: Trigger::Always,
            fault,
        }
    }

    /// Fires on these matching requests only (1-based).
    pub fn on_nth(mut self, nths: impl IntoIterator<Item = u64>) -> Self {
        self.trigger = Trigger::Nth(nths.into_iter().collect());
        self
    }

    /// Fires on the first `n` matching requests.
    pub fn first(self, n: u64) -> Self {
        self.on_nth(1..=n)
    }

    /// Fires with probability `p` (clamped to 0..=1), reproducibly from `seed`.
    pub fn with_probability(mut self, p: f64, seed: u64) -> Self {
        let p = if p.is_nan() { 0.0 } else { p.clamp(0.0, 1.0) };
        self.trigger = Trigger::Probability { p, seed };
        self
    }

    /// The target.
    pub fn target(&self) -> Target {
        self.target
    }

    /// The trigger.
    pub fn trigger(&self) -> &Trigger {
        &self.trigger
    }

    /// The fault.
    pub fn fault(&self) -> &Fault {
        &self.fault
    }
}

/// Names a rule added with [`Faults::add`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FaultId(u64);

struct Active {
    id: FaultId,
    rule: FaultRule,
    seen: u64,
    fired: u64,
    rng: Option<fastrand::Rng>,
}

#[derive(Default)]
struct Inner {
    rules: Vec<Active>,
    next_id: u64,
}

/// The fault rules of a running sandbox; cheap to clone, shared with the server.
#[derive(Clone, Default)]
pub struct Faults {
    inner: Arc<Mutex<Inner>>,
}

impl fmt::Debug for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_list()
            .entries(inner.rules.iter().map(|a| (&a.rule, a.seen, a.fired)))
            .finish()
    }
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        crate::sync::lock(&self.inner)
    }

    /// Adds a rule after the existing ones.
    pub fn add(&self, rule: FaultRule) -> FaultId {
        let mut inner = self.lock();
        inner.next_id += 1;
        let id = FaultId(inner.next_id);
        let rng = match rule.trigger {
            Trigger::Probability { seed, .. } => Some(fastrand::Rng::with_seed(seed)),
            _ => None,
        };
        inner.rules.push(Active {
            id,
            rule,
            seen: 0,
            fired: 0,
            rng,
        });
        id
    }

    /// Removes a rule; whether it existed.
    pub fn remove(&self, id: FaultId) -> bool {
        let mut inner = self.lock();
        let before = inner.rules.len();
        inner.rules.retain(|a| a.id != id);
        inner.rules.len() != before
    }

    /// Removes every rule.
    pub fn clear(&self) {
        self.lock().rules.clear();
    }

    /// How many times a rule fired (0 for an unknown id).
    pub fn fired(&self, id: FaultId) -> u64 {
        self.lock()
            .rules
            .iter()
            .find(|a| a.id == id)
            .map_or(0, |a| a.fired)
    }

    /// How many requests a rule's target matched so far (0 for an unknown id).
    pub fn seen(&self, id: FaultId) -> u64 {
        self.lock()
            .rules
            .iter()
            .find(|a| a.id == id)
            .map_or(0, |a| a.seen)
    }

    /// Counts the request against every matching rule; the fault of the first that fires.
    pub(crate) fn decide(&self, route: Route) -> Option<Fault> {
        let mut inner = self.lock();
        let mut chosen = None;
        for active in inner.rules.iter_mut() {
            if !active.rule.target.matches(route) {
                continue;
            }
            active.seen += 1;
            let fires = match &active.rule.trigger {
                Trigger::Always => true,
                Trigger::Nth(nths) => nths.contains(&active.seen),
                Trigger::Probability { p, .. } => {
                    // Drawn for every matching request, so the sequence does not depend on
                    // earlier rules.
                    let draw = active.rng.as_mut().map_or(1.0, fastrand::Rng::f64);
                    draw < *p
                }
            };
            if fires && chosen.is_none() {
                active.fired += 1;
                chosen = Some(active.rule.fault.clone());
            }
        }
        chosen
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nth_counts_matching_requests_only() {
        let faults = Faults::default();
        let id = faults.add(FaultRule::new(Route::GetMedia, Fault::Reset).on_nth([1, 3]));
        let got: Vec<bool> = [
            Route::GetMedia,
            Route::DeleteMedia,
            Route::GetMedia,
            Route::GetMedia,
            Route::Admin,
        ]
        .into_iter()
        .map(|r| faults.decide(r).is_some())
        .collect();
        assert_eq!(got, [true, false, false, true, false]);
        assert_eq!(faults.fired(id), 2);
        assert_eq!(faults.seen(id), 3);
    }

    #[test]
    fn first_firing_rule_wins_and_all_count() {
        let faults = Faults::default();
        let a = faults.add(FaultRule::new(Target::Any, Fault::BadGateway).first(1));
        let b = faults.add(FaultRule::new(Route::OssDownload, Fault::Stall));
        assert_eq!(faults.decide(Route::OssDownload), Some(Fault::BadGateway));
        assert_eq!(faults.decide(Route::OssDownload), Some(Fault::Stall));
        assert_eq!((faults.seen(a), faults.seen(b)), (2, 2));
        assert_eq!((faults.fired(a), faults.fired(b)), (1, 1));
        assert!(faults.remove(b));
        assert!(!faults.remove(b));
        assert_eq!(faults.decide(Route::OssDownload), None);
        assert_eq!(faults.decide(Route::Unknown), None);
    }

    #[test]
    fn probability_is_reproducible() {
        let run = || {
            let faults = Faults::default();
            faults.add(FaultRule::new(Target::Any, Fault::Reset).with_probability(0.3, 7));
            (0..200)
                .map(|_| faults.decide(Route::GetMedia).is_some())
                .collect::<Vec<_>>()
        };
        let first = run();
        assert_eq!(first, run());
        let fired = first.iter().filter(|&&f| f).count();
        assert!((30..90).contains(&fired), "{fired}");
        let never = Faults::default();
        never.add(FaultRule::new(Target::Any, Fault::Reset).with_probability(f64::NAN, 1));
        assert!((0..50).all(|_| never.decide(Route::GetMedia).is_none()));
    }
}
