//! Retry, backoff and clock-skew policy as plain functions: the transports ask, these answer.
