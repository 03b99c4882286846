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

use std::time::Duration;

use crate::client::Error;
use crate::policy::clock::{ClockOffset, correction_after_1004};
use crate::policy::retry::{AttemptFailure, RetryContext, RetryDecision, RetryPolicy};
use crate::time::Timestamp;

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
        }
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
