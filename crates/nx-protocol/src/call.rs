//! The retry loop of one API call as a sans-IO state machine, so the async and the blocking
//! transports run the same loop and differ only in how they send and sleep.
//!
//! A transport calls [`CallState::begin_attempt`], sends the request stamped with
//! [`CallState::timestamp`], and on failure asks [`CallState::after_error`] what to do next.
//!
//! ```
//! use std::time::Duration;
//! use nx_protocol::call::{CallState, Next};
//! use nx_protocol::client::Error;
//! use nx_protocol::policy::retry::RetryPolicy;
//! use nx_protocol::Timestamp;
//!
//! let mut call = CallState::new(RetryPolicy::default(), true, Duration::from_secs(60));
//! call.begin_attempt();
//! let err = Error::Timeout { during: "waiting for the answer", after: Duration::from_secs(30) };
//! let next = call.after_error(&err, None, Timestamp::from_millis(0), Duration::from_secs(30), 7);
//! assert!(matches!(next, Next::Retry { .. }));
//! ```
//!
//! Downloads run the same loop through [`DownloadCall`], which adds the one-time refresh of an
//! expired download URL and never resends once bytes have reached the caller's writer.

use std::time::Duration;

use crate::client::Error;
use crate::download::needs_fresh_url;
use crate::policy::clock::{ClockOffset, correction_after_1004};
use crate::policy::retry::{AttemptFailure, RetryContext, RetryDecision, RetryPolicy};
use crate::time::Timestamp;
use crate::wa::DownloadUrl;

/// What the transport does after a failed attempt.
#[derive(Debug)]
pub enum Next {
    /// Sleep `delay`, then send a new attempt (re-signed with a fresh `ts`).
    Retry {
        /// How long to wait first.
        delay: Duration,
    },
    /// Log in again (On-Premises), then send a new attempt.
    Reauthenticate,
    /// Stop and return the error the attempt failed with.
    GiveUp,
    /// Stop and return this error instead (e.g. the clock could not be corrected).
    Fail(Error),
}

/// The state of one call across its attempts.
#[derive(Debug, Clone)]
pub struct CallState {
    policy: RetryPolicy,
    overall: Duration,
    attempt: u32,
    ctx: RetryContext,
    clock: ClockOffset,
    /// The body can be sent again (no one-shot reader was consumed).
    resendable: bool,
}

impl CallState {
    /// A call under `policy`, allowed `overall` in total; `idempotent` says whether it may be
    /// resent after a failure that may have reached the server.
    pub fn new(policy: RetryPolicy, idempotent: bool, overall: Duration) -> Self {
        let ctx = RetryContext {
            idempotent,
            ..RetryContext::default()
        };
        Self {
            policy,
            overall,
            attempt: 0,
            ctx,
            clock: ClockOffset::ZERO,
            resendable: true,
        }
    }

    /// Says whether the call's body can be read again from the start. A one-shot body (a
    /// reader) makes the call non-idempotent, and once an attempt has consumed it nothing is
    /// resent, whatever the failure (a refused connection, a 401, a 1004): the call ends with
    /// that failure rather than with "cannot be sent twice".
    pub fn with_body(mut self, reopenable: bool) -> Self {
        if !reopenable {
            self.ctx.idempotent = false;
            self.resendable = false;
        }
        self
    }

    /// The state of a call to the On-Premises API, whose retry rules differ for bare 4xx
    /// answers ([`RetryContext::on_premises`]).
    pub fn on_premises(policy: RetryPolicy, idempotent: bool, overall: Duration) -> Self {
        let mut call = Self::new(policy, idempotent, overall);
        call.ctx.on_premises = true;
        call
    }

    /// Starts with the client's current clock correction.
    pub fn with_clock(mut self, clock: ClockOffset) -> Self {
        self.clock = clock;
        self
    }

    /// Counts a new attempt and returns its number (1-based).
    pub fn begin_attempt(&mut self) -> u32 {
        self.attempt += 1;
        self.attempt
    }

    /// The attempt in progress.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The clock correction in force (updated after a 1004); the client keeps it for later calls.
    pub fn clock(&self) -> ClockOffset {
        self.clock
    }

    /// The `ts` for an attempt sent at `local_now`, corrected for the server's clock.
    pub fn timestamp(&self, local_now: Timestamp) -> Timestamp {
        self.clock.apply(local_now)
    }

    /// Decides what follows a failed transfer (a download or retrieve): once bytes reached the
    /// caller's writer nothing is resent, since a writer cannot be rewound; otherwise as
    /// [`CallState::after_error`].
    pub fn after_transfer(
        &mut self,
        failure: &TransferFailure,
        local_now: Timestamp,
        elapsed: Duration,
        random: u64,
    ) -> Next {
        if failure.wrote {
            return Next::GiveUp;
        }
        self.after_error(&failure.error, None, local_now, elapsed, random)
    }

    /// Decides what follows a failed attempt. `date` is the answer's `Date` header, if any;
    /// `elapsed` the time since the call began; `random` any random value (for jitter).
    pub fn after_error(
        &mut self,
        error: &Error,
        date: Option<&str>,
        local_now: Timestamp,
        elapsed: Duration,
        random: u64,
    ) -> Next {
        let Some(failure) = error.attempt_failure() else {
            return Next::GiveUp;
        };
        if !self.resendable {
            return Next::GiveUp;
        }
        match self.policy.decide(self.attempt, failure, self.ctx, random) {
            RetryDecision::GiveUp => Next::GiveUp,
            RetryDecision::Retry { delay } if elapsed + delay >= self.overall => Next::GiveUp,
            RetryDecision::Retry { delay } => Next::Retry { delay },
            RetryDecision::CorrectClockAndRetry => {
                self.ctx.clock_corrected = true;
                match correction_after_1004(date, local_now) {
                    Ok(offset) => {
                        self.clock = offset;
                        Next::Retry {
                            delay: Duration::ZERO,
                        }
                    }
                    Err(e) => Next::Fail(Error::Clock(e)),
                }
            }
            RetryDecision::ReauthenticateAndRetry => {
                self.ctx.reauthenticated = true;
                Next::Reauthenticate
            }
            // RetryDecision is non-exhaustive: a decision we do not know is not acted on.
            #[allow(unreachable_patterns)]
            _ => Next::GiveUp,
        }
    }
}

/// What a download transport does after a failed fetch.
#[derive(Debug)]
pub enum DownloadNext {
    /// Fetch a fresh URL (getMedia), then fetch again at once.
    RefreshUrl,
    /// Sleep `delay`, then fetch again.
    Retry {
        /// How long to wait first.
        delay: Duration,
    },
    /// Stop and return the error the fetch failed with.
    GiveUp,
    /// Stop and return this error instead.
    Fail(Error),
}

/// The retry loop of one download (a plain GET of a pre-signed URL, see
/// [`crate::download::DownloadCheck`]) as a sans-IO state machine, shared by both transports.
///
/// On top of [`CallState`]'s policy (downloads are idempotent), it decides when to fetch a fresh
/// URL (once per download, via [`needs_fresh_url`]: the URL has expired or is about to, or the
/// storage answered 403), and it never resends once bytes reached the caller's writer, since
/// they cannot be taken back.
///
/// ```
/// use std::time::Duration;
/// use nx_protocol::call::{DownloadCall, DownloadNext};
/// use nx_protocol::client::Error;
/// use nx_protocol::policy::retry::RetryPolicy;
/// use nx_protocol::wa::DownloadUrl;
/// use nx_protocol::{ResponseError, Snippet, Timestamp};
///
/// let url = DownloadUrl::parse("https://oss.example/f?Expires=2000000000&Signature=s").unwrap();
/// let now = Timestamp::from_millis(1_700_000_000_000);
/// let mut call = DownloadCall::new(RetryPolicy::default(), Duration::from_secs(60), true);
/// assert!(!call.begin_attempt(&url, now)); // not expired: no getMedia first
/// let forbidden = Error::Response(ResponseError::Http {
///     status: http::StatusCode::FORBIDDEN,
///     snippet: Snippet::of(b""),
/// });
/// let next = call.after_error(&url, &forbidden, false, now, Duration::ZERO, 7);
/// assert!(matches!(next, DownloadNext::RefreshUrl)); // once
/// assert!(!call.begin_attempt(&url, now));
/// let next = call.after_error(&url, &forbidden, false, now, Duration::ZERO, 7);
/// assert!(matches!(next, DownloadNext::GiveUp)); // a 403 is not retried
/// ```
#[derive(Debug, Clone)]
pub struct DownloadCall {
    call: CallState,
    /// A fresh URL was fetched already, or none can be (the caller gave only a URL).
    refreshed: bool,
}

impl DownloadCall {
    /// A download under `policy`, allowed `overall` in total; `can_refresh` says whether a fresh
    /// URL can be fetched (the caller gave a media id, not just a URL).
    pub fn new(policy: RetryPolicy, overall: Duration, can_refresh: bool) -> Self {
        Self {
            call: CallState::new(policy, true, overall),
            refreshed: !can_refresh,
        }
    }

    /// Counts a new attempt; `true` when a fresh URL must be fetched before it, because `url`
    /// has expired (or will within [`crate::download::URL_EXPIRY_MARGIN_SECS`]) at `now`.
    pub fn begin_attempt(&mut self, url: &DownloadUrl, now: Timestamp) -> bool {
        self.call.begin_attempt();
        self.refresh_if(needs_fresh_url(url, None, now, self.refreshed))
    }

    /// The attempt in progress (1-based).
    pub fn attempt(&self) -> u32 {
        self.call.attempt()
    }

    /// Decides what follows a fetch of `url` that failed with `error`; `wrote` says whether
    /// bytes had already reached the caller's writer. `elapsed` is the time since the download
    /// began; `random` any random value (for jitter).
    pub fn after_error(
        &mut self,
        url: &DownloadUrl,
        error: &Error,
        wrote: bool,
        now: Timestamp,
        elapsed: Duration,
        random: u64,
    ) -> DownloadNext {
        if wrote {
            // The rule of [`CallState::after_transfer`]: a writer cannot be rewound.
            return DownloadNext::GiveUp;
        }
        if self.refresh_if(needs_fresh_url(url, error.status(), now, self.refreshed)) {
            return DownloadNext::RefreshUrl;
        }
        match self.call.after_error(error, None, now, elapsed, random) {
            Next::Retry { delay } => DownloadNext::Retry { delay },
            Next::Fail(error) => DownloadNext::Fail(error),
            Next::Reauthenticate | Next::GiveUp => DownloadNext::GiveUp,
        }
    }

    fn refresh_if(&mut self, needed: bool) -> bool {
        if needed {
            self.refreshed = true;
        }
        needed
    }
}

/// A transfer attempt that failed, and whether bytes had already reached the caller's writer
/// (then it cannot be retried: a writer cannot be rewound).
#[derive(Debug)]
pub struct TransferFailure {
    /// What went wrong.
    pub error: Error,
    /// Whether bytes reached the caller's writer before it did.
    pub wrote: bool,
}

impl From<Error> for TransferFailure {
    fn from(error: Error) -> Self {
        TransferFailure {
            error,
            wrote: false,
        }
    }
}

impl From<crate::download::IntegrityError> for TransferFailure {
    fn from(error: crate::download::IntegrityError) -> Self {
        Error::from(error).into()
    }
}

impl Error {
    /// How the retry policy sees this error; `None` for errors no retry can help (bad input,
    /// TLS, local I/O, integrity, configuration, an oversize answer).
    pub fn attempt_failure(&self) -> Option<AttemptFailure<'_>> {
        match self {
            Error::Connect { .. } => Some(AttemptFailure::Connect),
            Error::Timeout { .. } => Some(AttemptFailure::Timeout),
            Error::Transport { .. } => Some(AttemptFailure::Transport),
            Error::Response(response) => Some(AttemptFailure::Response(response)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::download::IntegrityError;
    use crate::error::{ResponseError, Snippet};

    const NOW: Timestamp = Timestamp::from_millis(1_700_000_000_000);

    fn url(expires: u64) -> DownloadUrl {
        DownloadUrl::parse(&format!(
            "https://oss.example/f?Expires={expires}&Signature=s"
        ))
        .unwrap()
    }

    fn http(status: u16) -> Error {
        Error::Response(ResponseError::Http {
            status: http::StatusCode::from_u16(status).unwrap(),
            snippet: Snippet::of(b""),
        })
    }

    fn connect() -> Error {
        Error::Connect {
            host: "oss.example".into(),
            source: "refused".into(),
        }
    }

    #[test]
    fn a_one_shot_body_is_never_resent() {
        let policy = RetryPolicy::default();
        let minute = Duration::from_secs(60);
        // Reopenable: a refused connection is retried, a 401 (On-Premises) logs in again.
        let mut call = CallState::on_premises(policy.clone(), false, minute).with_body(true);
        call.begin_attempt();
        assert!(matches!(
            call.after_error(&connect(), None, NOW, Duration::ZERO, 1),
            Next::Retry { .. }
        ));
        assert!(matches!(
            call.after_error(&http(401), None, NOW, Duration::ZERO, 1),
            Next::Reauthenticate
        ));
        // One-shot: the same failures end the call with themselves.
        for error in [connect(), http(401), http(503)] {
            let mut call = CallState::on_premises(policy.clone(), true, minute).with_body(false);
            call.begin_attempt();
            assert!(
                matches!(
                    call.after_error(&error, None, NOW, Duration::ZERO, 1),
                    Next::GiveUp
                ),
                "{error}"
            );
        }
    }

    #[test]
    fn a_transfer_that_reached_the_writer_is_never_resent() {
        let mut call = CallState::new(RetryPolicy::default(), true, Duration::from_secs(60));
        call.begin_attempt();
        let wrote = TransferFailure {
            error: connect(),
            wrote: true,
        };
        assert!(matches!(
            call.after_transfer(&wrote, NOW, Duration::ZERO, 1),
            Next::GiveUp
        ));
        let clean = TransferFailure::from(connect());
        assert!(matches!(
            call.after_transfer(&clean, NOW, Duration::ZERO, 1),
            Next::Retry { .. }
        ));
    }

    fn download(can_refresh: bool) -> DownloadCall {
        DownloadCall::new(RetryPolicy::default(), Duration::from_secs(60), can_refresh)
    }

    #[test]
    fn an_expired_url_is_refreshed_once_before_sending() {
        let expired = url(NOW.as_secs());
        let mut call = download(true);
        assert!(call.begin_attempt(&expired, NOW));
        assert!(!call.begin_attempt(&expired, NOW));
        assert_eq!(call.attempt(), 2);
        // Without a media id there is nothing to refresh with.
        assert!(!download(false).begin_attempt(&expired, NOW));
    }

    #[test]
    fn a_403_refreshes_once_then_gives_up() {
        let fresh = url(NOW.as_secs() + 3600);
        let mut call = download(true);
        assert!(!call.begin_attempt(&fresh, NOW));
        let next = call.after_error(&fresh, &http(403), false, NOW, Duration::ZERO, 1);
        assert!(matches!(next, DownloadNext::RefreshUrl));
        assert!(!call.begin_attempt(&fresh, NOW));
        let next = call.after_error(&fresh, &http(403), false, NOW, Duration::ZERO, 1);
        assert!(matches!(next, DownloadNext::GiveUp));

        let mut plain = download(false);
        plain.begin_attempt(&fresh, NOW);
        let next = plain.after_error(&fresh, &http(403), false, NOW, Duration::ZERO, 1);
        assert!(matches!(next, DownloadNext::GiveUp));
    }

    #[test]
    fn transient_failures_are_retried_until_bytes_were_written() {
        let fresh = url(NOW.as_secs() + 3600);
        let mut call = download(false);
        call.begin_attempt(&fresh, NOW);
        let next = call.after_error(&fresh, &http(503), false, NOW, Duration::ZERO, 1);
        assert!(matches!(next, DownloadNext::Retry { .. }));
        call.begin_attempt(&fresh, NOW);
        let next = call.after_error(&fresh, &connect(), true, NOW, Duration::ZERO, 1);
        assert!(matches!(next, DownloadNext::GiveUp));
    }

    #[test]
    fn integrity_failures_and_exhausted_budgets_give_up() {
        let fresh = url(NOW.as_secs() + 3600);
        let mut call = download(true);
        call.begin_attempt(&fresh, NOW);
        let bad = Error::Integrity(IntegrityError::LengthMismatch {
            expected: 10,
            received: 5,
        });
        let next = call.after_error(&fresh, &bad, false, NOW, Duration::ZERO, 1);
        assert!(matches!(next, DownloadNext::GiveUp));

        let mut call = download(false);
        for _ in 0..RetryPolicy::default().max_attempts - 1 {
            call.begin_attempt(&fresh, NOW);
            let next = call.after_error(&fresh, &connect(), false, NOW, Duration::ZERO, 1);
            assert!(matches!(next, DownloadNext::Retry { .. }));
        }
        call.begin_attempt(&fresh, NOW);
        let next = call.after_error(&fresh, &connect(), false, NOW, Duration::ZERO, 1);
        assert!(matches!(next, DownloadNext::GiveUp));

        // The overall limit counts too.
        let mut call = download(false);
        call.begin_attempt(&fresh, NOW);
        let late = Duration::from_secs(60);
        let next = call.after_error(&fresh, &connect(), false, NOW, late, 1);
        assert!(matches!(next, DownloadNext::GiveUp));
    }
}
