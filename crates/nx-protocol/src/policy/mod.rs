//! Retry, backoff and clock-skew policy as plain functions: the transports ask, these answer.
//!
//! [`retry`] decides whether and when a failed attempt is sent again; [`clock`] computes the
//! correction for NXCloud's 60-second `ts` window. Both transports use these, so the async and
//! blocking clients can never disagree on policy.

pub mod clock;
pub mod retry;
