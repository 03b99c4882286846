//! When to send a failed call again, and how long to wait first.
//!
//! Both transports run it through the call machine ([`crate::call::Call`]), which adds the call's
//! deadline, the one-shot and never-resend rules and the repairs themselves (clock, login). A
//! client of one's own can run the decision alone, in a loop like this one:
//!
//! ```
//! use std::time::Duration;
//! use nx_protocol::policy::retry::{AttemptFailure, RetryContext, RetryDecision, RetryPolicy};
//!
//! let policy = RetryPolicy::default();
//! let mut ctx = RetryContext::new(true); // an idempotent NXCloud call
//! let mut attempt = 1; // the number of requests sent so far in this call
//! loop {
//!     // ... build (new ts, new sign) and send request number `attempt`; say it failed:
//!     let failure = AttemptFailure::Connect;
//!     match policy.decide(attempt, failure, ctx, 0x5eed /* a fresh random u64 */) {
//!         RetryDecision::Retry { delay } => assert!(delay <= policy.max_delay), // sleep `delay`
//!         RetryDecision::CorrectClockAndRetry => ctx.clock_corrected = true, // see policy::clock
//!         RetryDecision::ReauthenticateAndRetry => ctx.reauthenticated = true, // log in again
//!         RetryDecision::GiveUp => break, // report the last failure
//!     }
//!     attempt += 1;
//! }
//! assert_eq!(attempt, 3); // max_attempts = 3 requests in all
//! ```
//!
//! Nothing here reads a clock, sleeps or draws random numbers: the delay is returned, and the
//! randomness for jitter comes in as an argument.

use std::time::Duration;

use http::StatusCode;

use crate::error::ResponseError;

/// How often and how patiently a call is retried.
///
/// `max_attempts` bounds the requests sent because of *transient* failures; the two one-time
/// repairs ([`RetryDecision::CorrectClockAndRetry`], [`RetryDecision::ReauthenticateAndRetry`])
/// come on top, so a call sends at most `max_attempts + 2` requests. See [`RetryPolicy::decide`].
///
/// ```
/// use std::time::Duration;
/// use nx_protocol::policy::retry::RetryPolicy;
/// let patient = RetryPolicy::new(5, Duration::from_millis(500), Duration::from_secs(30));
/// assert_eq!(patient, RetryPolicy::default().with_max_attempts(5)
///     .with_base_delay(Duration::from_millis(500)).with_max_delay(Duration::from_secs(30)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Total attempts, the first one included (default 3). 0 is read as 1: the first attempt
    /// always happens.
    pub max_attempts: u32,
    /// The backoff cap after the first failure; it doubles with every further failure
    /// (default 200 ms).
    pub base_delay: Duration,
    /// The largest backoff cap (default 5 s).
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 3 attempts, 200 ms base, 5 s cap: a transient failure (a restart, a short overload) is
    /// ridden out in well under ten seconds, and a real outage is reported quickly.
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

/// What is known about the call whose attempt failed. Start from [`RetryContext::new`] and set
/// the flags as the call goes.
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct RetryContext {
    /// Sending the call twice has the same effect as sending it once
    /// ([`crate::operation::Operation::is_idempotent`]).
    pub idempotent: bool,
    /// A clock correction was already done in this call.
    pub clock_corrected: bool,
    /// A re-login was already done in this call (On-Premises).
    pub reauthenticated: bool,
    /// The call goes to the On-Premises API, whose documentation says not to retry 4xx
    /// answers other than its listed codes ("some hosts block a number after repeated error
    /// answers"): a bare 429 is then final, where NXCloud's gateway may be retried after one.
    pub on_premises: bool,
}

/// How an attempt failed.
#[non_exhaustive]
#[derive(Clone, Copy, Debug)]
pub enum AttemptFailure<'a> {
    /// The connection could not be made (DNS, refused, not ready within `connect_timeout`):
    /// nothing was sent, so it is always safe to retry.
    Connect,
    /// Sent (perhaps partly) and no complete answer in time: the request may have reached the
    /// server.
    Timeout,
    /// Reset, broken pipe or truncated answer after sending: the request may have reached the
    /// server.
    Transport,
    /// A complete answer that is an error.
    Response(&'a ResponseError),
}

/// What to do after a failed attempt.
///
/// Exhaustive on purpose: a retry loop acts on every decision, so a new one must fail to compile rather than fall into a
/// wildcard arm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryDecision {
    /// Wait `delay`, then send the call again (a new request: new `ts`, new `sign`).
    Retry {
        /// How long to wait first.
        delay: Duration,
    },
    /// The server refused `ts` (NXCloud code 1004): compute a [`crate::policy::clock::ClockOffset`]
    /// with [`crate::policy::clock::correction_after_1004`] from the answer's `Date` header, then
    /// send again at once with the corrected time and set [`RetryContext::clock_corrected`].
    /// If no correction can be computed, report the [`crate::policy::clock::ClockError`].
    CorrectClockAndRetry,
    /// The token was refused (HTTP 401, On-Premises): log in again, then send again at once and
    /// set [`RetryContext::reauthenticated`]. A transport without a login (NXCloud's signed
    /// calls) has nothing to renew and reads this as [`RetryDecision::GiveUp`].
    ReauthenticateAndRetry,
    /// Report the failure.
    GiveUp,
}

impl RetryContext {
    /// A call's context before its first attempt: no repair done yet, NXCloud's API.
    pub fn new(idempotent: bool) -> Self {
        Self {
            idempotent,
            ..Self::default()
        }
    }

    /// The same, for a call to the On-Premises API (see [`RetryContext::on_premises`]).
    pub fn for_on_premises(mut self) -> Self {
        self.on_premises = true;
        self
    }
}

impl RetryPolicy {
    /// `max_attempts` attempts in all, with backoff caps from `base_delay` doubling up to
    /// `max_delay` (see the fields).
    pub const fn new(max_attempts: u32, base_delay: Duration, max_delay: Duration) -> Self {
        Self {
            max_attempts,
            base_delay,
            max_delay,
        }
    }

    /// The same policy with `max_attempts` attempts.
    pub const fn with_max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    /// The same policy with this first backoff cap.
    pub const fn with_base_delay(mut self, base_delay: Duration) -> Self {
        self.base_delay = base_delay;
        self
    }

    /// The same policy with this largest backoff cap.
    pub const fn with_max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = max_delay;
        self
    }

    /// One attempt: transient failures are never retried. (The one-time clock correction and
    /// re-login of [`RetryPolicy::decide`] still apply: they repair the request rather than
    /// repeat it.)
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The wait before the next attempt after attempt number `failed_attempt` (1-based) failed:
    /// "full jitter" (as in AWS's backoff study), uniform in
    /// `[0, min(max_delay, base_delay * 2^(failed_attempt - 1))]`, taking its randomness from
    /// `random` (pass a fresh random `u64` per call).
    ///
    /// Full jitter rather than a fixed exponential delay so that many clients failing at the same
    /// moment (a gateway restart) do not all come back at the same moment. Computed in 128-bit
    /// nanoseconds, it never overflows or panics for any inputs; `failed_attempt` 0 is read as 1.
    ///
    /// ```
    /// use std::time::Duration;
    /// use nx_protocol::policy::retry::RetryPolicy;
    /// let policy = RetryPolicy::default();
    /// assert_eq!(policy.backoff(1, 0), Duration::ZERO);
    /// assert!(policy.backoff(1, u64::MAX) <= Duration::from_millis(200));
    /// assert!(policy.backoff(3, u64::MAX) <= Duration::from_millis(800));
    /// assert!(policy.backoff(u32::MAX, u64::MAX) <= Duration::from_secs(5));
    /// ```
    pub fn backoff(&self, failed_attempt: u32, random: u64) -> Duration {
        let cap = self.cap_nanos(failed_attempt);
        // Scale `random` (a fraction in [0, 1) of 2^64) onto [0, cap]:
        // (random * (cap + 1)) >> 64, split so that no product exceeds 128 bits.
        let range = cap + 1; // cap <= Duration::MAX in nanos (< 2^94), so no overflow
        let (hi, lo) = (range >> 64, range & u128::from(u64::MAX));
        let random = u128::from(random);
        let nanos = random * hi + ((random * lo) >> 64);
        duration_from_nanos(nanos.min(cap))
    }

    /// `min(max_delay, base_delay * 2^(failed_attempt - 1))` in nanoseconds.
    fn cap_nanos(&self, failed_attempt: u32) -> u128 {
        let max = self.max_delay.as_nanos();
        let base = self.base_delay.as_nanos();
        let doublings = failed_attempt.max(1) - 1;
        if base == 0 {
            return 0;
        }
        if doublings >= base.leading_zeros() {
            // base * 2^doublings would not fit in 128 bits: far above any Duration.
            return max;
        }
        (base << doublings).min(max)
    }

    /// What to do after attempt number `failed_attempt` (1-based: the number of requests sent so
    /// far in this call, counting every one of them) failed with `failure`.
    ///
    /// The rules, and why:
    ///
    /// - **Budget.** A transient failure is retried only while fewer than `max_attempts`
    ///   requests have been sent, not counting the at most two requests that followed a clock
    ///   correction or a re-login (`failed_attempt < max_attempts + corrections done`). Those two
    ///   repairs are not retries of a flaky request but fixes of the request itself, so they do
    ///   not eat into the budget the caller chose, and each happens at most once per call (the
    ///   flags in [`RetryContext`]), so a call sends at most `max_attempts + 2` requests.
    /// - **[`AttemptFailure::Connect`]: retry.** Nothing was sent, so sending again cannot
    ///   duplicate anything.
    /// - **[`AttemptFailure::Timeout`], [`AttemptFailure::Transport`]: retry only if
    ///   idempotent.** The request may have been carried out; only a call whose repetition is
    ///   harmless may be sent again.
    /// - **A call that is not idempotent (a message send, a password change) is resent only when
    ///   it certainly was not carried out:** the connection was never made
    ///   ([`AttemptFailure::Connect`]), or the answer itself says the request was refused before
    ///   anything was done: 1004 (the signature check refused `ts`), a 401 (the token was
    ///   refused), Meta's "not ready / rate limited / overloaded / not primary" codes. A 9001,
    ///   a bare 429 or 5xx, a reset or a timeout leave open whether the message went out, so
    ///   they are reported, never resent: the caller decides, knowing a resend may deliver the
    ///   message twice.
    /// - **NXCloud code with [`crate::ApiCode::is_retryable`] (9001): retry if idempotent.** A
    ///   transient vendor-side failure, which may have come after the request was carried out.
    /// - **NXCloud code 1004 ([`crate::ApiCode::is_clock_skew`]): correct the clock and retry,
    ///   once.** The server refused `ts` because the clocks disagree by over 60 s; its `Date`
    ///   header tells by how much. If it still refuses after a correction, the clock is not the
    ///   cause (or the `Date` header is wrong), and repeating cannot help: give up.
    /// - **Other NXCloud codes: give up.** They describe the request or the account (bad
    ///   signature, unknown number, unknown id); sending it again gives the same answer.
    /// - **On-Premises 401: log in again and retry, once.** The token expired or was revoked;
    ///   a second 401 right after a fresh login means the credentials themselves are refused.
    /// - **On-Premises codes 1011, 1015, 1016, 1017, 1018
    ///   ([`crate::onprem::MetaCode::is_retryable`]): retry.** Meta marks them as transient (not
    ///   ready, rate limited, overloaded, not the primary): the request was not carried out.
    ///   Every other Meta code gives up: Meta's code is the more specific answer, so it is
    ///   trusted over the HTTP status it came with.
    /// - **HTTP 401 without an API body: log in again and retry, once** (as above).
    /// - **HTTP 429, 502, 503, 504 without an API body: retry if idempotent.** Rate limiting,
    ///   or a gateway in front of the API that could not reach it or is restarting; but a
    ///   gateway may also answer so after the API carried the request out (a 504 after a slow
    ///   send), so a call that is not idempotent is not resent.
    /// - **HTTP 500 without an API body: retry only if idempotent.** The server failed while
    ///   handling the request, perhaps after carrying it out.
    /// - **Any other HTTP status: give up.** Another 4xx says the request is wrong; repeating
    ///   error-causing requests can get a number blocked by some hosts (Meta's warning), and
    ///   other 5xx (501, 505, ...) do not go away on their own.
    /// - **[`ResponseError::Malformed`]: give up.** A success status with an answer we cannot
    ///   read: the call probably succeeded, and repeating it will not make the answer readable.
    pub fn decide(
        &self,
        failed_attempt: u32,
        failure: AttemptFailure<'_>,
        ctx: RetryContext,
        random: u64,
    ) -> RetryDecision {
        let retry = || {
            let repairs = u32::from(ctx.clock_corrected) + u32::from(ctx.reauthenticated);
            let budget = self.max_attempts.max(1).saturating_add(repairs);
            if failed_attempt < budget {
                RetryDecision::Retry {
                    delay: self.backoff(failed_attempt, random),
                }
            } else {
                RetryDecision::GiveUp
            }
        };
        let reauthenticate = || {
            if ctx.reauthenticated {
                RetryDecision::GiveUp
            } else {
                RetryDecision::ReauthenticateAndRetry
            }
        };
        let retry_if = |yes: bool| if yes { retry() } else { RetryDecision::GiveUp };

        match failure {
            AttemptFailure::Connect => retry(),
            AttemptFailure::Timeout | AttemptFailure::Transport => retry_if(ctx.idempotent),
            AttemptFailure::Response(error) => match error {
                ResponseError::Api { code, .. } if code.is_clock_skew() => {
                    if ctx.clock_corrected {
                        RetryDecision::GiveUp
                    } else {
                        RetryDecision::CorrectClockAndRetry
                    }
                }
                ResponseError::Api { code, .. } => retry_if(ctx.idempotent && code.is_retryable()),
                ResponseError::OnPrem { status, .. } | ResponseError::Http { status, .. }
                    if *status == StatusCode::UNAUTHORIZED =>
                {
                    reauthenticate()
                }
                ResponseError::OnPrem { error, .. } => retry_if(error.code.is_retryable()),
                ResponseError::Http { status, .. } => match *status {
                    StatusCode::TOO_MANY_REQUESTS => retry_if(ctx.idempotent && !ctx.on_premises),
                    StatusCode::BAD_GATEWAY
                    | StatusCode::SERVICE_UNAVAILABLE
                    | StatusCode::GATEWAY_TIMEOUT => retry_if(ctx.idempotent),
                    StatusCode::INTERNAL_SERVER_ERROR => retry_if(ctx.idempotent),
                    _ => RetryDecision::GiveUp,
                },
                ResponseError::Malformed { .. } => RetryDecision::GiveUp,
            },
        }
    }
}

fn duration_from_nanos(nanos: u128) -> Duration {
    const NANOS_PER_SEC: u128 = 1_000_000_000;
    let secs = u64::try_from(nanos / NANOS_PER_SEC).unwrap_or(u64::MAX);
    // The remainder is below 10^9, so it fits in u32.
    let sub = (nanos % NANOS_PER_SEC) as u32;
    Duration::new(secs, sub)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ApiCode;
    use crate::error::Snippet;
    use crate::onprem::{MetaCode, MetaError};

    fn ctx(idempotent: bool) -> RetryContext {
        RetryContext {
            idempotent,
            ..RetryContext::default()
        }
    }

    fn api(code: i64) -> ResponseError {
        ResponseError::Api {
            code: ApiCode::new(code),
            message: String::new(),
            status: StatusCode::OK,
            whatsapp: None,
        }
    }

    fn onprem(status: u16, code: i64) -> ResponseError {
        ResponseError::OnPrem {
            status: StatusCode::from_u16(status).unwrap(),
            error: MetaError {
                code: MetaCode::new(code),
                title: "t".into(),
                details: None,
            },
        }
    }

    fn http(status: u16) -> ResponseError {
        ResponseError::Http {
            status: StatusCode::from_u16(status).unwrap(),
            snippet: Snippet::of(b""),
        }
    }

    fn is_retry(d: RetryDecision) -> bool {
        matches!(d, RetryDecision::Retry { .. })
    }

    #[test]
    fn defaults() {
        let p = RetryPolicy::default();
        assert_eq!(p.max_attempts, 3);
        assert_eq!(p.base_delay, Duration::from_millis(200));
        assert_eq!(p.max_delay, Duration::from_secs(5));
        assert_eq!(RetryPolicy::none().max_attempts, 1);
    }

    #[test]
    fn backoff_caps_double_then_saturate() {
        let p = RetryPolicy::default();
        let top = |n| p.backoff(n, u64::MAX);
        assert!(top(1) <= Duration::from_millis(200) && top(1) > Duration::from_millis(199));
        assert!(top(2) <= Duration::from_millis(400) && top(2) > Duration::from_millis(399));
        assert!(top(5) <= Duration::from_millis(3200) && top(5) > Duration::from_millis(3199));
        assert!(top(6) <= Duration::from_secs(5) && top(6) > Duration::from_millis(4999));
        assert_eq!(p.backoff(0, u64::MAX), top(1));
        assert_eq!(p.backoff(7, 0), Duration::ZERO);
        // Half of the random range lands near half of the cap.
        let mid = p.backoff(2, 1 << 63);
        assert!(mid >= Duration::from_millis(199) && mid <= Duration::from_millis(201));
        let huge = RetryPolicy {
            max_attempts: u32::MAX,
            base_delay: Duration::MAX,
            max_delay: Duration::MAX,
        };
        // The extreme attempt and draw: the cap (Duration::MAX) less at most ~1 s of rounding,
        // not an overflowed, wrapped-around small value.
        assert!(huge.backoff(u32::MAX, u64::MAX) > Duration::from_secs(u64::MAX - 2));
        assert!(huge.backoff(1, u64::MAX) > Duration::from_secs(u64::MAX / 2));
        let zero = RetryPolicy {
            base_delay: Duration::ZERO,
            ..RetryPolicy::default()
        };
        assert_eq!(zero.backoff(40, u64::MAX), Duration::ZERO);
    }

    #[test]
    fn connect_is_retried_until_the_budget_is_spent() {
        let p = RetryPolicy::default();
        assert!(is_retry(p.decide(
            1,
            AttemptFailure::Connect,
            ctx(false),
            1
        )));
        assert!(is_retry(p.decide(
            2,
            AttemptFailure::Connect,
            ctx(false),
            1
        )));
        assert_eq!(
            p.decide(3, AttemptFailure::Connect, ctx(false), 1),
            RetryDecision::GiveUp
        );
        assert_eq!(
            RetryPolicy::none().decide(1, AttemptFailure::Connect, ctx(true), 1),
            RetryDecision::GiveUp
        );
        let zero = RetryPolicy {
            max_attempts: 0,
            ..RetryPolicy::default()
        };
        assert_eq!(
            zero.decide(1, AttemptFailure::Connect, ctx(true), 1),
            RetryDecision::GiveUp
        );
    }

    #[test]
    fn maybe_delivered_failures_need_idempotency() {
        let p = RetryPolicy::default();
        for f in [AttemptFailure::Timeout, AttemptFailure::Transport] {
            assert!(is_retry(p.decide(1, f, ctx(true), 7)));
            assert_eq!(p.decide(1, f, ctx(false), 7), RetryDecision::GiveUp);
        }
        let e500 = http(500);
        assert!(is_retry(p.decide(
            1,
            AttemptFailure::Response(&e500),
            ctx(true),
            7
        )));
        assert_eq!(
            p.decide(1, AttemptFailure::Response(&e500), ctx(false), 7),
            RetryDecision::GiveUp
        );
    }

    #[test]
    fn nxcloud_codes() {
        let p = RetryPolicy::default();
        let d = |e: &ResponseError, c| p.decide(1, AttemptFailure::Response(e), c, 0);
        assert!(is_retry(d(&api(9001), ctx(true))));
        // A send that may have gone out is not resent.
        assert_eq!(d(&api(9001), ctx(false)), RetryDecision::GiveUp);
        for code in [-1, 1001, 1002, 1003, 1005, 1042, 9000, 9002, 9006, 12345] {
            assert_eq!(d(&api(code), ctx(true)), RetryDecision::GiveUp, "{code}");
        }
        assert_eq!(
            d(&api(1004), ctx(true)),
            RetryDecision::CorrectClockAndRetry
        );
        let corrected = RetryContext {
            clock_corrected: true,
            ..ctx(true)
        };
        assert_eq!(d(&api(1004), corrected), RetryDecision::GiveUp);
        // The correction happens even with the budget spent, and then adds one attempt.
        assert_eq!(
            RetryPolicy::none().decide(1, AttemptFailure::Response(&api(1004)), ctx(true), 0),
            RetryDecision::CorrectClockAndRetry
        );
        assert!(is_retry(p.decide(3, AttemptFailure::Connect, corrected, 0)));
        assert_eq!(
            p.decide(4, AttemptFailure::Connect, corrected, 0),
            RetryDecision::GiveUp
        );
    }

    #[test]
    fn sends_are_resent_only_when_they_certainly_were_not_carried_out() {
        let p = RetryPolicy::default();
        let send = ctx(false);
        assert!(is_retry(p.decide(1, AttemptFailure::Connect, send, 0)));
        for f in [AttemptFailure::Timeout, AttemptFailure::Transport] {
            assert_eq!(p.decide(1, f, send, 0), RetryDecision::GiveUp);
        }
        let answers = [
            http(429),
            http(500),
            http(502),
            http(503),
            http(504),
            api(9001),
            api(9003),
            api(9005),
            api(9007),
            api(9099),
            api(-1),
        ];
        for e in &answers {
            assert_eq!(
                p.decide(1, AttemptFailure::Response(e), send, 0),
                RetryDecision::GiveUp,
                "{e}"
            );
        }
        // Refused before being carried out: repaired and sent again, once.
        assert_eq!(
            p.decide(1, AttemptFailure::Response(&api(1004)), send, 0),
            RetryDecision::CorrectClockAndRetry
        );
    }

    #[test]
    fn onprem_codes_and_401() {
        let p = RetryPolicy::default();
        let d = |e: &ResponseError, c| p.decide(1, AttemptFailure::Response(e), c, 0);
        for code in [1011, 1015, 1016, 1017, 1018] {
            assert!(is_retry(d(&onprem(503, code), ctx(false))), "{code}");
        }
        for code in [1000, 1004, 1005, 1006, 1008, 1009, 1014, 1019] {
            assert_eq!(
                d(&onprem(500, code), ctx(true)),
                RetryDecision::GiveUp,
                "{code}"
            );
        }
        let relogged = RetryContext {
            reauthenticated: true,
            ..ctx(true)
        };
        for e in [onprem(401, 1005), http(401)] {
            assert_eq!(d(&e, ctx(true)), RetryDecision::ReauthenticateAndRetry);
            assert_eq!(d(&e, relogged), RetryDecision::GiveUp);
        }
    }

    #[test]
    fn http_statuses() {
        let p = RetryPolicy::default();
        let d = |s| p.decide(1, AttemptFailure::Response(&http(s)), ctx(true), 0);
        for s in [429, 502, 503, 504] {
            assert!(is_retry(d(s)), "{s}");
            // A call that is not idempotent may have been carried out behind the gateway.
            assert_eq!(
                p.decide(1, AttemptFailure::Response(&http(s)), ctx(false), 0),
                RetryDecision::GiveUp,
                "{s}"
            );
        }
        // On-Premises: only Meta's listed codes are retried among 4xx answers, so a bare 429
        // is final there; 502/503/504 are not 4xx and stay retried.
        let on_prem = RetryContext {
            on_premises: true,
            ..ctx(true)
        };
        let d_on_prem = |s| p.decide(1, AttemptFailure::Response(&http(s)), on_prem, 0);
        assert_eq!(d_on_prem(429), RetryDecision::GiveUp);
        for s in [502, 503, 504] {
            assert!(is_retry(d_on_prem(s)), "{s}");
        }
        for s in [400, 403, 404, 405, 408, 409, 413, 422, 501, 505, 302, 200] {
            assert_eq!(d(s), RetryDecision::GiveUp, "{s}");
        }
        let malformed = ResponseError::malformed(StatusCode::OK, "x", b"{");
        assert_eq!(
            p.decide(1, AttemptFailure::Response(&malformed), ctx(true), 0),
            RetryDecision::GiveUp
        );
    }

    fn arb_duration() -> impl Strategy<Value = Duration> {
        prop_oneof![
            (0u64..10_000).prop_map(Duration::from_millis),
            (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
            Just(Duration::MAX),
            Just(Duration::ZERO),
        ]
    }

    fn arb_policy() -> impl Strategy<Value = RetryPolicy> {
        (
            prop_oneof![0u32..8, any::<u32>()],
            arb_duration(),
            arb_duration(),
        )
            .prop_map(|(max_attempts, base_delay, max_delay)| RetryPolicy {
                max_attempts,
                base_delay,
                max_delay,
            })
    }

    fn arb_error() -> impl Strategy<Value = ResponseError> {
        let status = prop_oneof![
            Just(200u16),
            Just(401),
            Just(429),
            Just(500),
            Just(502),
            Just(503),
            Just(504),
            100u16..600,
        ]
        .prop_map(|s| StatusCode::from_u16(s).unwrap());
        let code = prop_oneof![
            Just(1004i64),
            Just(9001),
            Just(1011),
            Just(1015),
            any::<i64>()
        ];
        (0u8..4, status, code).prop_map(|(variant, status, code)| match variant {
            0 => ResponseError::Api {
                code: ApiCode::new(code),
                message: String::new(),
                status,
                whatsapp: None,
            },
            1 => ResponseError::OnPrem {
                status,
                error: MetaError {
                    code: MetaCode::new(code),
                    title: String::new(),
                    details: None,
                },
            },
            2 => ResponseError::Http {
                status,
                snippet: Snippet::of(b""),
            },
            _ => ResponseError::malformed(status, "x", b""),
        })
    }

    /// Kinds 0-2 are transport failures (the error is ignored), the rest answers.
    fn arb_failures() -> impl Strategy<Value = Vec<(u8, ResponseError)>> {
        proptest::collection::vec((0u8..6, arb_error()), 1..12)
    }

    fn failure_of((kind, error): &(u8, ResponseError)) -> AttemptFailure<'_> {
        match kind {
            0 => AttemptFailure::Connect,
            1 => AttemptFailure::Timeout,
            2 => AttemptFailure::Transport,
            _ => AttemptFailure::Response(error),
        }
    }

    proptest! {
        #[test]
        fn backoff_never_exceeds_the_cap(
            policy in arb_policy(),
            attempt in prop_oneof![0u32..70, any::<u32>()],
            random in any::<u64>(),
        ) {
            let delay = policy.backoff(attempt, random);
            prop_assert!(delay <= policy.max_delay);
            let factor = 2u32.checked_pow(attempt.max(1) - 1);
            if let Some(factor) = factor.and_then(|f| policy.base_delay.checked_mul(f)) {
                prop_assert!(delay <= factor);
            }
            // More randomness never means a shorter wait.
            prop_assert!(policy.backoff(attempt, random.saturating_add(1)) >= delay);
        }

        #[test]
        fn decisions_are_bounded(
            policy in arb_policy().prop_map(|p| RetryPolicy { max_attempts: p.max_attempts % 10, ..p }),
            failures in arb_failures(),
            idempotent in any::<bool>(),
            random in any::<u64>(),
        ) {
            let mut ctx = ctx(idempotent);
            let bound = policy.max_attempts.max(1) + 2;
            // Drive the loop with the failure sequence, repeating it as long as needed; `attempt`
            // counts every request sent, as a transport does.
            for (attempt, failure) in (1u32..).zip(failures.iter().cycle()) {
                prop_assert!(attempt <= bound, "attempt {attempt} > {bound}");
                let decision = policy.decide(attempt, failure_of(failure), ctx, random);
                if !idempotent && matches!(decision, RetryDecision::Retry { .. }) {
                    // Resent only when certainly not carried out.
                    let refused = matches!(
                        failure,
                        (3.., ResponseError::OnPrem { error, .. }) if error.code.is_retryable()
                    );
                    prop_assert!(failure.0 == 0 || refused, "{failure:?} resent");
                }
                match decision {
                    RetryDecision::GiveUp => break,
                    RetryDecision::Retry { delay } => prop_assert!(delay <= policy.max_delay),
                    RetryDecision::CorrectClockAndRetry => {
                        prop_assert!(!ctx.clock_corrected);
                        ctx.clock_corrected = true;
                    }
                    RetryDecision::ReauthenticateAndRetry => {
                        prop_assert!(!ctx.reauthenticated);
                        ctx.reauthenticated = true;
                    }
                }
            }
        }
    }
}
